"""Rule synthesis: the weakest safe flush condition of one MMU of one era.

A rule sees an update *class*: the old SPTE, the new SPTE and the A/D setting
(:class:`~checker.engines.diff.UpdateClass`), exactly what ``FlushRule.decide``
is given. A rule is therefore a set of classes, those where it flushes. Each class
the model reaches is asked about by some callers, each using the answer its own
way (:class:`~checker.model.Flush`):

* RULE or LATER (the caller *acts* on the answer): the flush may be needed;
* ASSERTED (``WARN_ON_ONCE``): the answer must be false, or the ``assertion``
  property breaks (KVM flushes anyway): the class *must not* flush;
* DEFERRED only: the answer is ignored, the class is free.

The classification, with ``vcpus`` vCPUs, by explicit exploration:

1. The *base* rule flushes on every class except those an asserting caller asks
   about (found by exploring until no new one turns up). The safety properties
   the base rule holds are the ones a rule can keep; any it violates is broken
   whatever the rule says on the classes callers act on (reported as such).
2. A class ``c`` a caller acts on is *needed* iff the base rule without ``c``
   violates one of those properties. The base rule and base-minus-``c`` differ
   only on ``c``, so every such violation goes through an update of ``c`` whose
   flush was skipped: the shortest one (breadth-first) is the witness, replayed
   through the step function. A class is *not needed* otherwise, at ``vcpus``
   vCPUs; what certifies it is the proof of the derived rule (next). Every class
   is explored on its own: nothing assumes that fewer flushes allow more
   behaviours (they need not: a later flush owed, ``Flush.LATER``, is a slot field
   that other steps read).
3. The derived rule flushes exactly on the needed classes and is free on every
   class no acting or asserting caller reaches; it is minimised as a C expression
   over the kernel's helpers (:mod:`checker.rules.minimise`) and then checked with
   the SMT engine for every property: a proof of each is an invariant certified
   for every number of vCPUs, which covers every not-needed class at once (the
   rule skips all of them together).
4. The derived rule is explored again: a class reachable under it but not under
   the base rule (fewer flushes leave more TLB entries alive) is added and the
   classification repeated, until none turns up.

The explorations of one era and MMU (a few dozen rules) share one state graph
(:mod:`checker.engines.rulegraph`): a step is computed once per distinct answers
of the rules to the classes it asks about, and reused by every rule that gives
those answers. Eras and MMUs whose paths are equal share it too.

Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from checker.engines import diff, explicit, rulegraph
from checker.engines.bmc import SmtTrace
from checker.engines.certify import replay
from checker.engines.check import Engine, Options, PropertyResult, Session, check_property
from checker.engines.hints import HintStore
from checker.engines.semantics import Action, State
from checker.engines.trace import Trace
from checker.model import (
    PROPERTIES,
    Flush,
    Paths,
    Property,
    Spte,
    System,
)
from checker.model.logic import CONCRETE, Logic
from checker.rules import formula as F
from checker.rules import minimise
from checker.rules.specs import Rule
from checker.verdict import Verdict

B = TypeVar("B")

#: the properties a skipped flush can break (precision counts flushes, not safety)
SAFETY: tuple[Property, ...] = tuple(p for p in PROPERTIES if p.safety)


class Need(enum.Enum):
    """What a reachable class asks of a rule."""

    #: skipping the flush breaks a safety property (with a witness)
    NEEDED = "needed"
    #: no safety property needs it (proved with the derived rule)
    NOT_NEEDED = "not needed"
    #: an asserting caller asks: a flush fires its WARN_ON_ONCE
    MUST_NOT = "must not flush"
    #: only callers that ignore the answer ask: free
    IGNORED = "ignored"
    #: needed by a caller that acts, and asserted false by another: no rule is safe
    CONFLICT = "conflict"

    @property
    def required(self) -> bool | None:
        """The answer a rule must give: True, False, or None (free)."""
        if self in (Need.NEEDED, Need.CONFLICT):
            return True
        if self in (Need.NOT_NEEDED, Need.MUST_NOT):
            return False
        return None


def _cube(cls: diff.UpdateClass) -> F.Formula:
    """The formula true on ``cls`` alone."""
    literals: list[F.Formula] = []
    for which, spte in (("old", cls.old), ("new", cls.new)):
        for name in spte.__dataclass_fields__:
            bit = F.Bit(which, name)  # type: ignore[arg-type]
            literals.append(bit if getattr(spte, name) else F.not_(bit))
    literals.append(F.AdEnabled() if cls.ad_enabled else F.not_(F.AdEnabled()))
    return F.and_(*literals)


@dataclass(frozen=True)
class TableRule(Rule):
    """A rule given by its classes: it flushes iff the class is in ``table``
    (``complement``: iff it is not). Its formula says the same, for the SMT
    engine; a concrete decision is a look-up."""

    table: frozenset[diff.UpdateClass] = frozenset()
    complement: bool = False

    @staticmethod
    def of(name: str, table: Iterable[diff.UpdateClass], complement: bool = False) -> TableRule:
        table = frozenset(table)
        formula = F.or_(*(_cube(c) for c in sorted(table)))
        if complement:
            formula = F.not_(formula)
        return TableRule(
            name=name,
            expression=f"<{'all but ' if complement else ''}{len(table)} update classes>",
            formula=formula,
            table=table,
            complement=complement,
        )

    def decide(self, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B:
        if isinstance(ad_enabled, bool):
            cls = diff.UpdateClass(old, new, ad_enabled)  # type: ignore[arg-type]
            return logic.const((cls in self.table) != self.complement)
        return F.evaluate(self.formula, logic, old, new, ad_enabled)


@dataclass(frozen=True)
class Witness:
    """A shortest trace under the base rule without the class: the property it
    violates, and the step (1-based) of the update whose flush was skipped."""

    trace: Trace
    skipped_step: int


@dataclass
class ClassInfo:
    update_class: diff.UpdateClass
    #: the operations that ask about it, and how each uses the answer
    callers: dict[str, Flush] = field(default_factory=dict)
    need: Need = Need.IGNORED
    witness: Witness | None = None
    #: reached only under the derived rule, not under the base rule
    late: bool = False

    @property
    def uses(self) -> frozenset[Flush]:
        return frozenset(self.callers.values())

    @property
    def acted(self) -> bool:
        return any(u.acts_on_rule for u in self.uses)

    @property
    def asserted(self) -> bool:
        return Flush.ASSERTED in self.uses


@dataclass
class Classification:
    """Every reachable class of one MMU of one era, classified at ``vcpus`` vCPUs."""

    label: str
    paths: Paths
    vcpus: int
    classes: dict[diff.UpdateClass, ClassInfo]
    #: safety properties the base rule itself violates: no rule keeps them (a trace each)
    broken: dict[str, Trace]
    #: states explored per exploration (the base rule's)
    states: int = 0
    explorations: int = 0

    def needing(self, need: Need) -> list[ClassInfo]:
        return [c for c in self.sorted() if c.need is need]

    def sorted(self) -> list[ClassInfo]:
        return [self.classes[k] for k in sorted(self.classes)]

    @property
    def required(self) -> dict[diff.UpdateClass, bool]:
        """The answer every constrained class requires (free ones left out)."""
        return {k: r for k, c in self.classes.items() if (r := c.need.required) is not None}


@dataclass(frozen=True)
class Derived:
    """A synthesised rule: the minimised rule and its check."""

    rule: Rule
    results: tuple[PropertyResult, ...]

    @property
    def holds(self) -> bool:
        """Every property the base rule could keep holds."""
        return all(r.verdict is Verdict.HOLDS for r in self.results)


@dataclass(frozen=True)
class Judgement:
    """How a given rule decides on one classified class."""

    info: ClassInfo
    flushes: bool

    @property
    def verdict(self) -> str:
        need = self.info.need
        if need is Need.IGNORED:
            return "free"
        required = need.required
        if required is None or required == self.flushes:
            return "ok"
        if need is Need.MUST_NOT:
            return "fires WARN"
        return "needless flush" if self.flushes else "MISSES a needed flush"


def rule_flushes(rule: Rule, cls: diff.UpdateClass) -> bool:
    return bool(rule.decide(CONCRETE, cls.old, cls.new, cls.ad_enabled))


def judge(rule: Rule, classification: Classification) -> list[Judgement]:
    """The rule's decision on every class, against what the class requires."""
    return [Judgement(c, rule_flushes(rule, c.update_class)) for c in classification.sorted()]


# --- classification ------------------------------------------------------------------------

#: the graphs explored so far, by paths and vCPUs: eras and MMUs whose paths are the
#: same share one (a graph keeps every step it computed, for every rule)
_GRAPHS: dict[tuple[Paths, int], rulegraph.RuleGraph] = {}
_KEPT_GRAPHS = 8


def graph_for(paths: Paths, vcpus: int) -> rulegraph.RuleGraph:
    """The state graph of ``paths`` with ``vcpus`` vCPUs, shared by every
    synthesis in the process (the few most recent ones are kept)."""
    key = (paths, vcpus)
    found = _GRAPHS.pop(key, None)
    if found is None:
        found = rulegraph.RuleGraph(paths, vcpus, SAFETY)
    _GRAPHS[key] = found
    while len(_GRAPHS) > _KEPT_GRAPHS:
        del _GRAPHS[next(iter(_GRAPHS))]
    return found


def _reach(
    graph: rulegraph.RuleGraph,
    rule: Rule,
    max_states: int | None,
    into: dict[diff.UpdateClass, ClassInfo],
) -> int:
    """Add every class reachable under ``rule`` to ``into`` with its callers; the
    number of concrete states explored."""
    found, states = rulegraph.reach(graph, rule, max_states)
    for cls, ops in found.items():
        info = into.setdefault(cls, ClassInfo(cls))
        for op in ops.values():
            info.callers[op.name] = op.flush
    return states


def _replayed(system: System, prop: Property, initial: State, actions: Sequence[Action]) -> Trace:
    stepper = explicit.Stepper(system)
    states = [initial]
    for action in actions:
        s = stepper.step(states[-1], action)
        assert s is not None, f"rebuilding a witness: {action.label} not enabled"
        states.append(s.after)
    return replay(system, system.rule.name, prop, SmtTrace(tuple(actions), tuple(states)))  # type: ignore[attr-defined]


def _skipped_step(trace: Trace, cls: diff.UpdateClass) -> int:
    """The last step of ``trace`` that asks about ``cls`` and acts on the answer."""
    for i in range(len(trace.steps), 0, -1):
        s = trace.steps[i - 1]
        if not s.outcome.rule_consulted or not s.operation.flush.acts_on_rule:
            continue
        window = s.before.window(s.action)
        before, after = window.shared.sptes, s.after.shared.sptes
        ad = window.slot.ad_enabled
        for old, new in zip(before, after, strict=True):
            if old.present and old != new and diff.UpdateClass(old, new, ad) == cls:
                return i
    raise AssertionError("a witness without an update of its class")


def classify(
    paths: Paths,
    vcpus: int = 2,
    max_states: int | None = explicit.DEFAULT_MAX_STATES,
    label: str = "",
    extra: Iterable[diff.UpdateClass] = (),
) -> Classification:
    """Every class reachable with ``vcpus`` vCPUs, classified (steps 1 and 2)."""
    graph = graph_for(paths, vcpus)
    classes: dict[diff.UpdateClass, ClassInfo] = {}
    exempt: frozenset[diff.UpdateClass] = frozenset()
    explorations = 0
    while True:
        base = TableRule.of("base", exempt, complement=True)
        states = _reach(graph, base, max_states, classes)
        explorations += 1
        asserted = frozenset(k for k, c in classes.items() if c.asserted and not c.acted)
        if asserted <= exempt:
            break
        exempt |= asserted
    for cls in extra:
        classes.setdefault(cls, ClassInfo(cls, late=True))
    # the properties the base rule keeps; the others no rule keeps
    broken: dict[str, Trace] = {}
    kept = list(SAFETY)
    while True:
        found = rulegraph.first_violation(graph, base, kept, max_states)
        explorations += 1
        if found is None:
            break
        prop, initial, actions = found
        broken[prop.name] = _replayed(System(base, paths), prop, initial, actions)
        kept.remove(prop)
    # every class a caller acts on, the base rule without it; a class only the
    # derived rule reaches (late) is not reached under the base rule, so removing
    # it changes nothing there
    for key in sorted(classes):
        info = classes[key]
        if info.acted:
            without = TableRule.of(f"base without class {len(exempt)}", exempt | {key}, True)
            hit = rulegraph.first_violation(graph, without, kept, max_states)
            explorations += 1
            if hit is None:
                info.need = Need.NOT_NEEDED
            else:
                prop, initial, actions = hit
                trace = _replayed(System(without, paths), prop, initial, actions)
                info.witness = Witness(trace, _skipped_step(trace, key))
                info.need = Need.CONFLICT if info.asserted else Need.NEEDED
        elif info.asserted:
            info.need = Need.MUST_NOT
        elif info.late:
            # reached only under the derived rule, by no caller the base rule saw:
            # its callers are filled in by the caller of classify
            info.need = Need.NOT_NEEDED
    return Classification(label, paths, vcpus, classes, broken, states, explorations)


# --- the derived rule ------------------------------------------------------------------------


def check_rule(
    rule: Rule,
    paths: Paths,
    vcpus: int,
    props: Sequence[Property] = PROPERTIES,
    hints: HintStore | None = None,
) -> tuple[PropertyResult, ...]:
    """Every property of ``rule``, proved (for every number of vCPUs) or violated
    with a shortest trace: the SMT engine, as ``checker check`` runs it (``hints``:
    where what earlier runs found is kept, certified again before use)."""
    options = Options(vcpus=vcpus, paths=paths, engine=Engine.SMT)
    session = Session(System(rule, paths), hints=hints)
    return tuple(check_property(rule, p, options, session) for p in props)


def check_rule_timed(
    rule: Rule, paths: Paths, vcpus: int, hints: HintStore | None
) -> tuple[tuple[PropertyResult, ...], float]:
    """:func:`check_rule` of every property, and the seconds it took."""
    started = time.perf_counter()
    found = check_rule(rule, paths, vcpus, hints=hints)
    return found, time.perf_counter() - started


def derive(
    required: dict[diff.UpdateClass, bool], name: str = "derived"
) -> tuple[Rule, minimise.Minimised]:
    """The smallest C expression over the kernel's helpers that gives every class
    in ``required`` its answer (free elsewhere), as a rule."""
    from checker.rules.specs import adhoc_rule

    found = minimise.minimise(required)
    rule = adhoc_rule(found.expression, name)
    for cls, answer in required.items():
        if rule_flushes(rule, cls) != answer:
            raise AssertionError(f"the minimised rule disagrees on {cls}")
    return rule, found


@dataclass
class Synthesis:
    """One MMU of one era: its classes, the derived rule and its check."""

    classification: Classification
    rule: Rule
    minimised: minimise.Minimised
    results: tuple[PropertyResult, ...]

    @property
    def label(self) -> str:
        return self.classification.label

    @property
    def safe(self) -> bool:
        """The derived rule keeps every property the base rule keeps."""
        broken = self.classification.broken
        return all(
            r.verdict is Verdict.HOLDS
            for r in self.results
            if r.prop.name not in broken and r.prop.safety
        )

    @property
    def precise(self) -> bool:
        return all(r.verdict is Verdict.HOLDS for r in self.results if r.prop.name == "precision")


def synthesize(
    paths: Paths,
    vcpus: int = 2,
    max_states: int | None = explicit.DEFAULT_MAX_STATES,
    label: str = "",
    name: str = "derived",
    verify: bool = True,
    hints: HintStore | None = None,
) -> Synthesis:
    """Classify (steps 1, 2 and 4), derive, and check (step 3)."""
    extra: set[diff.UpdateClass] = set()
    while True:
        classification = classify(paths, vcpus, max_states, label, extra)
        rule, found = derive(classification.required, name)
        # the classes the derived rule reaches: any new one is classified in turn
        reached: dict[diff.UpdateClass, ClassInfo] = {}
        _reach(graph_for(paths, vcpus), rule, max_states, reached)
        classification.explorations += 1
        new = set(reached) - set(classification.classes)
        if not new:
            break
        extra |= new
    # callers of the classes only the derived rule reaches
    for key, info in classification.classes.items():
        if info.late and key in reached:
            info.callers = reached[key].callers
            info.need = (
                Need.MUST_NOT if info.asserted else Need.NOT_NEEDED if info.acted else Need.IGNORED
            )
    results = check_rule(rule, paths, vcpus, hints=hints) if verify else ()
    return Synthesis(classification, rule, found, results)


def synthesize_timed(
    paths: Paths,
    vcpus: int,
    max_states: int | None,
    label: str,
    name: str,
    hints: HintStore | None,
) -> tuple[Synthesis, float]:
    """:func:`synthesize`, and the seconds it took (for a progress line)."""
    started = time.perf_counter()
    found = synthesize(paths, vcpus, max_states, label, name, hints=hints)
    return found, time.perf_counter() - started


def relabelled(synthesis: Synthesis, label: str) -> Synthesis:
    """``synthesis`` under another label: for an era or MMU with the same paths,
    whose model, classes and verdicts are the same."""
    classification = dataclasses.replace(synthesis.classification, label=label)
    return dataclasses.replace(synthesis, classification=classification)


# --- several eras ------------------------------------------------------------------------


@dataclass(frozen=True)
class Combined:
    """The one rule for several MMUs and eras: it flushes where any needs it."""

    rule: Rule
    minimised: minimise.Minimised
    #: classes needed in one and asserted false in another
    conflicts: tuple[diff.UpdateClass, ...]


def combine(parts: Sequence[Classification], name: str = "derived") -> Combined:
    """The weakest rule safe in each of ``parts``: it flushes on every class needed
    in some part, and not on those only not needed or asserted false."""
    required: dict[diff.UpdateClass, bool] = {}
    asserted: set[diff.UpdateClass] = set()
    for part in parts:
        for cls, info in part.classes.items():
            answer = info.need.required
            if answer is not None:
                required[cls] = required.get(cls, False) or answer
            if info.asserted:
                asserted.add(cls)
    conflicts = tuple(sorted(c for c in asserted if required.get(c)))
    rule, found = derive(required, name)
    return Combined(rule, found, conflicts)
