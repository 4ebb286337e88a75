"""Deciding each property of a rule: prove it, or show its shortest trace.

Two engines share no solver code: ``smt`` (Spacer, BMC, certification; z3) and
``explicit`` (breadth-first over the reachable states; pure Python). ``all`` runs
both and insists they agree.

SMT, for a property P and N vCPUs:

0. A step property that no step from any state can violate is proved with the
   invariant ``true`` (one query), before anything more expensive.
1. A hint kept from an earlier run with the same inputs (``checker.engines.hints``)
   is tried first: its invariant must pass certification at N and is then
   certified for every N, exactly as Spacer's would be; a violation's hint bounds
   the BMC search for its trace, which is replayed as always. Nothing is taken
   from a hint that is not checked here, and without a usable one:
   Spacer looks for an inductive invariant with ``min(N, 2)`` vCPUs. Its lemmas
   are vCPU-symmetric schemas; instantiated over N vCPUs they must pass
   certification (``checker.engines.certify``) at N. If they do not, Spacer runs again
   with N vCPUs and its own invariant must pass. P then holds for every depth;
   the same invariant is then certified over an uninterpreted vCPU sort
   (``checker.engines.parametric``) for every number of vCPUs.
2. If P is violated, the fewest vCPUs that show it are found (a violation with n
   vCPUs is one with any N >= n: extra vCPUs stay idle), and BMC gives the
   shortest canonical trace with that many, replayed through the step function
   before it is reported.
3. If Spacer gives up, BMC still looks for a trace up to the depth bound; without
   one the verdict is inconclusive, never "holds".

Explicit: breadth-first exploration at N vCPUs decides P for N (no invariant, no
claim beyond N); a violation's trace is the shortest, with the fewest vCPUs.

Nothing here prints: results are values for the CLI to show.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import z3

# Spacer, BMC and the explicit engine (with the step function and the traces it
# replays) are imported where they run: a run whose hints all certify needs none of
# them (about 5 ms of a short check's start)
from checker.engines import hints, parametric, smt
from checker.engines.certify import Certificate, certify, replay
from checker.engines.encode import Encoding
from checker.engines.invariant import Invariant
from checker.engines.smt import Answer, Budget
from checker.errors import InternalError
from checker.limits import DEFAULT_MAX_STATES, MAX_DEPTH
from checker.model import PROPERTIES, Kind, Paths, Property, Shape, System
from checker.rules.specs import Rule
from checker.text import vcpu_count
from checker.verdict import Verdict

if TYPE_CHECKING:
    from checker.engines import explicit, spacer
    from checker.engines.trace import Trace

#: vCPUs with which invariants are searched before being lifted to N. One: the
#: model treats vCPUs alike, and what one vCPU's search finds is most often
#: inductive with N too (certification decides; where it is not, Spacer searches
#: again with N). A search with one vCPU is the cheapest there is, and a violation
#: it finds is shown with the fewest vCPUs at once. Measured on the shipped
#: rules: the CPU time of 'check --all' without hints fell by a sixth, that of
#: 'scenario clear-dirty-log-init-set' (the 2M SPTE model, every era and fix) by
#: more than half, against searching with two.
LIFT_FROM = 1
DEFAULT_DEPTH = 30
#: how far BMC searches for the trace of a violation Spacer has shown to exist,
#: whatever --depth says (the CLI's own bound on --depth)
DEPTH_LIMIT = MAX_DEPTH


class Engine(enum.Enum):
    SMT = "smt"
    EXPLICIT = "explicit"
    ALL = "all"
    #: SPIN's exhaustive search of the model exported to Promela (engines/spin.py)
    SPIN = "spin"


@dataclass(frozen=True)
class Options:
    """How a rule is checked: the size of the model, the paths around the rule and
    the engine, with their budgets."""

    vcpus: int = 2
    #: the paths around the rule (dirty-log flushes, aging, prefetch)
    paths: Paths = field(default_factory=Paths)
    #: how many gfns and SPTEs the model holds
    shape: Shape = field(default_factory=Shape)
    #: BMC bound: the longest counterexample searched for
    depth: int = DEFAULT_DEPTH
    budget: Budget = field(default_factory=Budget)
    engine: Engine = Engine.SMT
    #: the explicit engine's budget, in stored states times vCPUs, before it is
    #: inconclusive
    max_states: int = DEFAULT_MAX_STATES
    #: configuration fields held at one value, as (field, value) pairs: only the
    #: initial states that have them are checked (e.g. a bug that needs PML)
    configuration: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True)
class Proof:
    """Why a property holds: the certified inductive invariant, and where it
    came from."""

    invariant: Invariant
    #: vCPUs Spacer searched with; the invariant was lifted from there
    found_with: int
    certificate: Certificate
    #: the invariant certified for every number of vCPUs (None: not attempted)
    all_vcpus: parametric.AllVcpusCertificate | None = None
    #: the invariant came from a hint (Spacer found it in an earlier run with the
    #: same inputs) and was certified in this run
    hinted: bool = False


@dataclass(frozen=True)
class Exploration:
    """What the explicit engine looked at."""

    vcpus: int
    raw_states: int
    reduced_states: int


@dataclass(frozen=True)
class PropertyResult:
    """A property's verdict, by which engine, with the proof or the trace behind
    it (or, inconclusive, the reason)."""

    prop: Property
    verdict: Verdict
    engine: str
    proof: Proof | None = None
    trace: Trace | None = None
    reason: str = ""
    exploration: Exploration | None = None

    @property
    def summary(self) -> tuple[Verdict, int | None, int | None]:
        """(verdict, trace length, trace vCPUs): what two engines must agree on."""
        if self.trace is None:
            return (self.verdict, None, None)
        return (self.verdict, self.trace.depth, self.trace.vcpus)


class EngineDisagreement(InternalError):
    """Two engines gave different answers: one of them is wrong."""


class Session:
    """What the checks of one system share: its SMT encodings and its explicit
    explorations, one per vCPU count, and where hints are kept (None: nowhere)."""

    def __init__(
        self,
        system: System,
        max_states: int = DEFAULT_MAX_STATES,
        hints: hints.HintStore | None = None,
    ) -> None:
        self.system = system
        self.max_states = max_states
        self.hints = hints
        self._encodings: dict[int, Encoding] = {}
        self._explored: dict[int, dict[str, explicit.ExplicitResult]] = {}
        #: explorations that ran out of states, so that they are not run again
        self._exceeded: dict[int, explicit.StateBudgetExceeded] = {}
        self._all_vcpus: parametric.AllVcpus | None = None
        self._stepper: explicit.Stepper | None = None

    def __call__(self, vcpus: int) -> Encoding:
        if vcpus not in self._encodings:
            self._encodings[vcpus] = Encoding(self.system, vcpus)
        return self._encodings[vcpus]

    @property
    def stepper(self) -> explicit.Stepper:
        """One stepper for every exploration (made on first use): the steps worked
        out with fewer vCPUs recur with more."""
        if self._stepper is None:
            from checker.engines import explicit

            self._stepper = explicit.Stepper(self.system)
        return self._stepper

    @property
    def all_vcpus(self) -> parametric.AllVcpus:
        """The system over an uninterpreted vCPU sort (built on first use)."""
        if self._all_vcpus is None:
            # in the context of the encodings (z3's main one): a context of its own
            # costs a process about 10 ms to make, more than most certifications.
            # Every query here is decided by its logic alone (on a solver that no
            # encoding shares), so the other terms of the context change no
            # answer; Spacer, whose search does depend on them, keeps a fresh one
            self._all_vcpus = parametric.AllVcpus(self.system, smt.main_context())
        return self._all_vcpus

    def explored(self, vcpus: int) -> dict[str, explicit.ExplicitResult]:
        """Every property's explicit result with ``vcpus`` vCPUs (one exploration);
        :class:`~checker.engines.explicit.StateBudgetExceeded` beyond ``max_states``."""
        if vcpus in self._exceeded:
            raise self._exceeded[vcpus]
        if vcpus not in self._explored:
            from checker.engines import explicit

            try:
                self._explored[vcpus] = explicit.check_all(
                    self.system, PROPERTIES, vcpus, max_states=self.max_states, stepper=self.stepper
                )
            except explicit.StateBudgetExceeded as exc:
                self._exceeded[vcpus] = exc
                raise
        return self._explored[vcpus]


def check_property(
    rule: Rule, prop: Property, options: Options, session: Session | None = None
) -> PropertyResult:
    system = System(rule, options.paths, options.shape, configuration=options.configuration)
    session = session or Session(system, options.max_states)
    given = session.system
    same = (given.rule, given.paths, given.shape, given.configuration)
    if same != (rule, options.paths, options.shape, options.configuration):
        raise ValueError("a session of another rule, other paths, shape or configuration")
    if options.engine is Engine.SMT:
        return _smt(rule.name, system, prop, options, session)
    if options.engine is Engine.EXPLICIT:
        return _explicit(rule.name, prop, options, session)
    if options.engine is Engine.SPIN:
        from checker.engines import spin  # SPIN and a C compiler: only when asked for

        found = spin.decide(system, prop, options.vcpus)
        return PropertyResult(prop, found.verdict, "spin", trace=found.trace, reason=found.reason)
    by_smt = _smt(rule.name, system, prop, options, session)
    by_explicit = _explicit(rule.name, prop, options, session)
    if by_explicit.verdict is Verdict.INCONCLUSIVE:
        # both engines were asked for and one has no answer: nothing to compare, and
        # the SMT answer alone is not what --engine all promises
        smt = by_smt.verdict.value + (f" ({by_smt.reason})" if by_smt.reason else "")
        reason = f"smt: {smt}; {by_explicit.reason}"
        return PropertyResult(prop, Verdict.INCONCLUSIVE, "smt+explicit", reason=reason)
    # an inconclusive SMT answer is not a disagreement: the explicit one stands beside it
    decided = by_smt.verdict is not Verdict.INCONCLUSIVE
    if decided and by_smt.summary != by_explicit.summary:
        raise EngineDisagreement(_disagreement(prop, by_smt, by_explicit))
    return PropertyResult(
        prop,
        by_smt.verdict,
        "smt+explicit",
        proof=by_smt.proof,
        trace=by_smt.trace,
        reason=by_smt.reason,
        exploration=by_explicit.exploration,
    )


def _disagreement(prop: Property, a: PropertyResult, b: PropertyResult) -> str:
    def answer(r: PropertyResult) -> str:
        if r.trace is None:
            return r.verdict.value
        steps = ", ".join(s.action.label + _at(s.action.vcpu) for s in r.trace.steps)
        vcpus = vcpu_count(r.trace.vcpus)
        return f"{r.verdict.value} in {r.trace.depth} steps with {vcpus}: {steps}"

    return f"engines disagree on {prop.name}: smt says {answer(a)}; explicit says {answer(b)}"


def _at(vcpu: int | None) -> str:
    return "" if vcpu is None else f"@vcpu{vcpu}"


# --- SMT ------------------------------------------------------------------------------


def _smt(
    name: str, system: System, prop: Property, options: Options, session: Session
) -> PropertyResult:
    n, budget = options.vcpus, options.budget
    if prop.kind is Kind.STEP:
        # a step property may hold from every state (invariant "true"): one plain
        # query, much cheaper than a Spacer run
        certificate = certify(session(n), prop, Invariant(()), budget)
        if certificate.ok:
            proof = _everywhere(session, prop, Proof(Invariant(()), n, certificate), budget)
            return PropertyResult(prop, Verdict.HOLDS, "induction", proof=proof)
    searches = tuple(dict.fromkeys((min(n, LIFT_FROM), n)))
    hinted = _hinted(name, system, prop, options, session, searches)
    if hinted is not None:
        return hinted
    # search with few vCPUs first and lift; if the lifted invariant is not inductive
    # at n, search again with n
    #: each search's answer by its vCPUs: one that proved the property with k vCPUs
    #: is not run again when the fewest vCPUs of a violation are looked for
    answers: dict[int, spacer.SpacerResult] = {}
    for searched in searches:
        found = answers[searched] = _spacer(system, searched, prop, budget)
        if found.answer is not Answer.UNSAT:
            break
        assert found.invariant is not None
        certificate = certify(session(n), prop, found.invariant, budget)
        if certificate.ok:
            proof = _everywhere(
                session, prop, Proof(found.invariant, searched, certificate), budget
            )
            _keep(session, prop, options, hints.ProofHint(found.invariant, searched))
            return PropertyResult(prop, Verdict.HOLDS, "spacer", proof=proof)
        if certificate.unknown:
            reason = "certification of the invariant ran out of budget"
            return PropertyResult(prop, Verdict.INCONCLUSIVE, "spacer", reason=reason)
    else:
        raise InternalError(f"{prop.name}: Spacer's invariant at {n} vCPUs failed certification")

    # violated, or Spacer gave up: look for the shortest trace with the fewest vCPUs
    fewest = searched if found.answer is Answer.SAT else n
    for k in range(1, fewest):
        fewer = answers.get(k) or _spacer(system, k, prop, budget)
        if fewer.answer is Answer.SAT:
            fewest, found = k, fewer
            break
    # --depth bounds the search only while no violation is known. Once Spacer has
    # shown one, the shortest trace exists and BMC (which stops at the first depth
    # that has one) goes on past --depth to find it: "inconclusive" would withhold
    # a verdict already decided, and the gate's verdicts must not depend on a bound.
    depth = DEPTH_LIMIT if found.answer is Answer.SAT else options.depth
    from checker.engines import bmc

    result = bmc.shortest_counterexample(session(fewest), prop, depth, budget)
    if result.answer is Answer.SAT and result.trace is not None:
        trace = replay(system, name, prop, result.trace)
        if found.answer is Answer.SAT and fewest == 1:
            _keep(session, prop, options, hints.ViolationHint(trace.depth))
        return _violated(prop, trace, options)
    if found.answer is Answer.SAT and result.answer is Answer.UNSAT:
        raise InternalError(
            f"{prop.name}: Spacer found a violation with {fewest} vCPUs that BMC "
            f"does not reach within {depth} steps"
        )
    reasons = [r for r in (found.reason, result.reason) if r]
    if result.answer is Answer.UNSAT:
        reasons.append(f"no violation within {depth} steps")
    return PropertyResult(prop, Verdict.INCONCLUSIVE, "spacer+bmc", reason="; ".join(reasons))


def _violated(prop: Property, trace: Trace, options: Options) -> PropertyResult:
    note = ""
    if trace.depth > options.depth:
        note = (
            f"the shortest trace ({trace.depth} steps) is longer than --depth "
            f"{options.depth}: searched on because Spacer showed a violation exists"
        )
    return PropertyResult(prop, Verdict.VIOLATED, "bmc", trace=trace, reason=note)


def _hinted(
    name: str,
    system: System,
    prop: Property,
    options: Options,
    session: Session,
    searches: tuple[int, ...],
) -> PropertyResult | None:
    """The result from the session's hint for ``prop``, checked here exactly as
    Spacer's own answer would be, and the same result; None without a hint, or if
    it does not check out (then Spacer decides)."""
    if session.hints is None:
        return None
    n, budget = options.vcpus, options.budget
    hint = session.hints.recall(system, prop, n, budget)
    if isinstance(hint, hints.ProofHint) and hint.found_with in searches:
        certificate = certify(session(n), prop, hint.invariant, budget)
        if certificate.ok:
            proof = Proof(hint.invariant, hint.found_with, certificate, hinted=True)
            proof = _everywhere(session, prop, proof, budget)
            return PropertyResult(prop, Verdict.HOLDS, "spacer", proof=proof)
    elif isinstance(hint, hints.ViolationHint):
        # one vCPU is the fewest there are; BMC stops at the shortest trace, which
        # is the one it finds searching up to DEPTH_LIMIT, as after a Spacer SAT
        from checker.engines import bmc

        found = bmc.shortest_counterexample(session(1), prop, hint.length, budget)
        if found.answer is Answer.SAT and found.trace is not None:
            return _violated(prop, replay(system, name, prop, found.trace), options)
    return None


def _keep(session: Session, prop: Property, options: Options, hint: hints.Hint) -> None:
    if session.hints is not None:
        session.hints.keep(session.system, prop, options.vcpus, options.budget, hint)


def _spacer(system: System, vcpus: int, prop: Property, budget: Budget) -> spacer.SpacerResult:
    from checker.engines import spacer

    # Spacer's search depends on the order z3 terms were created in, so it gets a
    # context of its own, built the same way every time: the same invariant
    # whatever ran before in this process. It depends on how long the Python side
    # keeps its terms too: keeping the encoding's init(s) for reuse changed the
    # invariant found for one shipped property, so its encoding is built as is
    return spacer.prove(Encoding(system, vcpus, z3.Context()), prop, budget)


def _everywhere(session: Session, prop: Property, proof: Proof, budget: Budget) -> Proof:
    """The proof, with its invariant certified for every number of vCPUs too."""
    everywhere = session.all_vcpus.certify(prop, proof.invariant, budget)
    return Proof(proof.invariant, proof.found_with, proof.certificate, everywhere, proof.hinted)


# --- explicit -------------------------------------------------------------------------


def _explicit(name: str, prop: Property, options: Options, session: Session) -> PropertyResult:
    from checker.engines import explicit

    n, system = options.vcpus, session.system
    try:
        result = session.explored(n)[prop.name]
    except explicit.StateBudgetExceeded as exc:
        return PropertyResult(prop, Verdict.INCONCLUSIVE, "explicit", reason=str(exc))
    seen = Exploration(n, result.exploration.raw_states, result.exploration.reduced_states)
    if not result.violated:
        return PropertyResult(prop, Verdict.HOLDS, "explicit", exploration=seen)
    for k in range(1, n + 1):
        fewest = session.explored(k)[prop.name]
        if fewest.violated:
            break
    assert fewest.initial is not None
    states = [fewest.initial]
    for action in fewest.actions:
        step = session.stepper.step(states[-1], action)
        assert step is not None
        states.append(step.after)
    from checker.engines.bmc import SmtTrace

    trace = replay(system, name, prop, SmtTrace(fewest.actions, tuple(states)))
    return PropertyResult(prop, Verdict.VIOLATED, "explicit", trace=trace, exploration=seen)


def exit_code(results: list[PropertyResult]) -> int:
    """0 every property holds, 1 a violation, 3 otherwise inconclusive."""
    verdicts = {r.verdict for r in results}
    if Verdict.VIOLATED in verdicts:
        return 1
    if Verdict.INCONCLUSIVE in verdicts:
        return 3
    return 0
