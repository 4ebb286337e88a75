"""The CI gate: re-check rules against their expected verdicts and the lockfile.

Inputs are values, so any source of rules can be gated (``specs/rules`` today, a
kernel tree's rule later): the rules, each rule's expected verdict per property
(by default the rule's ``[expect]`` table), the lock as read (``None`` when there is
no lockfile) and the settings. :func:`gate` re-checks every rule (with ``changed``,
only those; see below) and returns a :class:`GateReport`; it never prints.

Per (rule, property), with V the verdict just computed, E the expected verdict and
L the verdict in the lock (absent for a rule the lock does not have), the first
matching row decides:

====================  ===============================================  ============
status                condition                                        effect
====================  ===============================================  ============
INCONCLUSIVE          V inconclusive                                   fails; a
                                                                       warning with
                                                                       allow_inconclusive
REGRESSED             safety property, L holds, V violated             fails
VIOLATES EXPECTATION  E holds, V violated                              fails
UNEXPECTEDLY HOLDS    E violated, V holds                              warning
new                   no lock entry for the rule or property           lock stale
changed               V or its evidence differs from L                 lock stale
ok                    V and its evidence equal L                       -
====================  ===============================================  ============

* A REGRESSED row fails even if the rule's ``[expect]`` was edited to say
  violated: the lock, not the spec, remembers that the rule was safe.
* Precision is not a safety property: a regression there is a performance bug.
  It fails iff the rule's ``[expect]`` says precision holds (VIOLATES
  EXPECTATION); otherwise it is ``changed`` and reported as such.
* An inconclusive verdict is never compared with the lock (nothing was computed
  to compare) and can never be locked. A property the lock records as holding
  that comes back inconclusive is INCONCLUSIVE, not REGRESSED: it fails the gate
  unless ``allow_inconclusive`` asked to accept undecided verdicts.
* Improvements (violated -> holds) are not failures; they make the lock stale.

The lock is stale when there is no lockfile, the model hash differs, a rule was
added or removed, a rule's expression hash or formula differs, or a re-checked
conclusive verdict or its evidence (counterexample length and hash, invariant
hash) differs from the lock.

Exit code: 1 if any row fails; otherwise 2 if the lock is stale; otherwise 0. A
failure wins over staleness because it is the more important signal (a
regression usually also makes the lock stale, and refreshing the lock would not
fix it). Code 3 is not used: an inconclusive verdict is a failure or a warning.

``changed`` (from ``--changed-since``) limits re-checking to the named rules,
plus every rule the lock lacks or whose expression hash differs from the lock;
when the model hash differs from the lock's (or there is no lock), every rule is
re-checked regardless. (The command line passes ``changed=None``, i.e. every
rule, when the lockfile or the checker's own sources changed since the revision.)
A rule that is not re-checked is reported as such and its lock entry is kept.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from checker.engines.check import Options, PropertyResult, Session, check_property
from checker.model import PROPERTIES, Property, System
from checker.report.lock import (
    Lock,
    ModelLock,
    PropertyLock,
    RuleLock,
    expression_sha256,
    model_sha256,
    property_lock,
    rule_lock,
)
from checker.report.summary import PropertyVerdict, RuleVerdicts, Summary, verdicts
from checker.rules.specs import Rule, paths_table
from checker.verdict import Verdict

if TYPE_CHECKING:
    from checker.engines.hints import HintStore

REFRESH_COMMAND = "checker gate --update"
REFRESH_MAKE = "make lock"


class Status(enum.Enum):
    OK = "ok"
    NEW = "new"
    CHANGED = "changed"
    UNEXPECTEDLY_HOLDS = "UNEXPECTEDLY HOLDS"
    INCONCLUSIVE = "INCONCLUSIVE"
    VIOLATES_EXPECTATION = "VIOLATES EXPECTATION"
    REGRESSED = "REGRESSED"
    NOT_RECHECKED = "not re-checked"


class GateProgress(Protocol):
    """Told as each property of a re-checked rule starts and ends."""

    def started(self, what: str) -> None: ...

    def finished(self, what: str, outcome: str) -> None: ...


@dataclass(frozen=True)
class GateSettings:
    """How every rule is checked; the lock records the model part of it."""

    options: Options = field(default_factory=Options)
    #: the label of the paths' era and MMU (``options.paths`` are its paths; the
    #: default ``Paths()`` are those of v6.4-v6.12's shadow MMU)
    era: str = "v6.4-v6.12/shadow"
    allow_inconclusive: bool = False
    #: a lock is expected (specs/rules); False gates on expectations alone (a
    #: kernel tree with no lockfile named): nothing is new, nothing is stale
    require_lock: bool = True


def decide(
    prop: Property, verdict: Verdict, expected: Verdict | None, locked: Verdict | None
) -> Status | None:
    """The status of a re-checked property from the decision table, or None when
    nothing but the lock comparison is left to decide (``new``/``changed``/``ok``)."""
    if verdict is Verdict.INCONCLUSIVE:
        return Status.INCONCLUSIVE
    if prop.safety and locked is Verdict.HOLDS and verdict is Verdict.VIOLATED:
        return Status.REGRESSED
    if expected is Verdict.HOLDS and verdict is Verdict.VIOLATED:
        return Status.VIOLATES_EXPECTATION
    if expected is Verdict.VIOLATED and verdict is Verdict.HOLDS:
        return Status.UNEXPECTEDLY_HOLDS
    return None


@dataclass(frozen=True)
class PropertyOutcome:
    """One (rule, property) row of the gate."""

    rule: Rule
    prop: Property
    status: Status
    #: the check just made; None if the rule was not re-checked
    result: PropertyResult | None
    expected: Verdict | None
    locked: PropertyLock | None
    #: fails the gate
    failed: bool
    #: what the row means, in words ("" for ok)
    detail: str = ""
    #: how the result differs from the lock, in words
    differences: tuple[str, ...] = ()
    #: wall-clock seconds the check took (0 if not re-checked); for reports that
    #: show timings (JUnit), never part of a verdict or of equality
    seconds: float = field(default=0.0, compare=False)

    @property
    def verdict(self) -> Verdict | None:
        """The verdict just computed; None if the rule was not re-checked."""
        return self.result.verdict if self.result is not None else None

    @property
    def warning(self) -> bool:
        return not self.failed and self.status in (
            Status.INCONCLUSIVE,
            Status.UNEXPECTEDLY_HOLDS,
        )


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    rechecked: bool
    properties: tuple[PropertyOutcome, ...]
    #: the lock entry as read (None if the lock has none)
    locked: RuleLock | None
    #: the entry the lock should hold now; None if a verdict is inconclusive
    entry: RuleLock | None
    #: how the rule and its results differ from the lock, in words
    differences: tuple[str, ...]
    #: the command that reproduces the check
    command: str


@dataclass(frozen=True)
class GateReport:
    rules: tuple[RuleOutcome, ...]
    model: ModelLock
    lock: Lock | None
    lock_path: Path | None
    #: why the lock is stale; empty if it is not
    stale: tuple[str, ...]
    settings: GateSettings
    #: the revision of ``--changed-since``, if any
    since: str | None = None
    #: paths are shown relative to this directory (the repository root)
    root: Path | None = None
    #: how to refresh the lock, as the user runs it (``--specs``/``--lock`` included;
    #: ``make lock`` only where the project's Makefile is at hand)
    refresh: str = f"'{REFRESH_COMMAND}' (or '{REFRESH_MAKE}')"

    @property
    def outcomes(self) -> list[PropertyOutcome]:
        return [p for r in self.rules for p in r.properties]

    @property
    def failures(self) -> list[PropertyOutcome]:
        return [p for p in self.outcomes if p.failed]

    @property
    def warnings(self) -> list[PropertyOutcome]:
        return [p for p in self.outcomes if p.warning]

    @property
    def rechecked(self) -> list[Rule]:
        return [r.rule for r in self.rules if r.rechecked]

    @property
    def exit_code(self) -> int:
        if self.failures:
            return 1
        if self.stale:
            return 2
        return 0

    def updated_lock(self, versions: Mapping[str, str]) -> Lock:
        """The lock these results call for. Only meaningful when every rule was
        re-checked and no verdict is inconclusive (see :meth:`refusal`)."""
        rules = {}
        for outcome in self.rules:
            entry = outcome.entry if outcome.rechecked else outcome.locked
            if entry is not None:
                rules[outcome.rule.name] = entry
        return Lock(model=self.model, rules=rules, versions=dict(versions))

    def refusal(self) -> str | None:
        """Why the lock must not be refreshed from these results; None if it may."""
        if self.failures:
            return "the gate fails; fix the failures first (a refreshed lock cannot bless them)"
        undecided = [p for p in self.outcomes if p.status is Status.INCONCLUSIVE]
        if undecided:
            names = ", ".join(f"{p.rule.name}: {p.prop.name}" for p in undecided)
            return f"inconclusive verdicts cannot be locked ({names})"
        if any(not r.rechecked for r in self.rules):
            return "some rules were not re-checked"
        return None

    def display(self, path: Path) -> str:
        """``path`` relative to the repository root when it lies under it."""
        return display_path(path, self.root)

    def refresh_hint(self) -> str:
        where = self.display(self.lock_path) if self.lock_path else "the lockfile"
        return f"run {self.refresh} and commit {where}"

    def summary(self) -> str:
        """The final line: pass or fail, and why."""
        code = self.exit_code
        failures = self.failures
        if code == 1:
            kinds: dict[str, list[str]] = {}
            for p in failures:
                kinds.setdefault(p.status.value, []).append(f"{p.rule.name}: {p.prop.name}")
            why = "; ".join(f"{status} {', '.join(names)}" for status, names in kinds.items())
            also = " (the lockfile is also stale)" if self.stale else ""
            return f"gate: FAIL (exit 1): {why}{also}"
        if code == 2:
            return f"gate: FAIL (exit 2): the lockfile is stale; {self.refresh_hint()}"
        checked = len(self.rechecked)
        text = f"gate: pass: {checked} rule{'s' if checked != 1 else ''} re-checked"
        if self.since is not None and checked < len(self.rules):
            text += f" ({len(self.rules) - checked} unchanged since {self.since})"
        if self.warnings:
            text += f", {len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}"
        text += (
            " (no lockfile compared)" if not self.settings.require_lock else ", lockfile up to date"
        )
        # what the verdicts are, so that a pass with violations reads as intended
        words = self.verdicts().text
        return text + (f": {words}" if words else "")

    def verdicts(self) -> Summary:
        """The re-checked rules per category (see :func:`checker.report.summary.verdicts`)
        and the words for them."""
        return verdicts(
            [
                RuleVerdicts(
                    r.rule.name,
                    [
                        PropertyVerdict(p.prop.name, p.result.verdict, p.expected)
                        for p in r.properties
                        if p.result is not None
                    ],
                )
                for r in self.rules
                if r.rechecked
            ]
        )


def display_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` if it lies under it, else as given (POSIX)."""
    if root is not None:
        relative = Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
        if relative != ".." and not relative.startswith("../"):
            return relative
    return path.as_posix()


def default_command(rule: Rule, vcpus: int) -> str:
    return f"checker check --rule {rule.name} --vcpus {vcpus}"


def gate(
    rules: Sequence[Rule],
    lock: Lock | None,
    settings: GateSettings,
    *,
    expectations: Mapping[str, Mapping[str, Verdict]] | None = None,
    changed: Collection[str] | None = None,
    complete: bool = True,
    lock_path: Path | None = None,
    since: str | None = None,
    root: Path | None = None,
    reproduce: Callable[[Rule], str] | None = None,
    refresh: str | None = None,
    progress: GateProgress | None = None,
    hints: HintStore | None = None,
) -> GateReport:
    """Gate ``rules`` (see the module docstring for the decision table).

    ``expectations``: the expected verdicts per rule name (a rule it does not name
    keeps its own ``[expect]``). ``complete``: ``rules`` is the whole rule set, so
    lock entries for other rules are stale. ``changed``: the rule names to
    re-check (None: all). ``reproduce`` gives each rule's reproduce command;
    ``refresh`` how to refresh the lock (default: ``checker gate --update`` or
    ``make lock``); ``progress`` is told as each property of a re-checked rule starts and ends.
    ``hints``: where what earlier runs found is kept, to be certified again (None: not
    used); it changes the cost of a re-check, never its result.
    """
    options = settings.options
    model = ModelLock(
        sha256=model_sha256(options.paths, options.vcpus, options.depth),
        era=settings.era,
        paths=paths_table(options.paths),
        vcpus=options.vcpus,
        depth_bound=options.depth,
    )
    stale: list[str] = []
    locked_rules: Mapping[str, RuleLock] = lock.rules if lock is not None else {}
    if lock is None:
        if settings.require_lock:
            stale.append("there is no lockfile")
    elif lock.model.sha256 != model.sha256:
        stale.append(
            f"the model changed (encoding sha256 {lock.model.sha256[:12]} -> "
            f"{model.sha256[:12]}): every rule is re-checked"
        )
    model_changed = lock is None or lock.model.sha256 != model.sha256

    def must_recheck(rule: Rule) -> bool:
        if changed is None or model_changed or rule.name in changed:
            return True
        entry = locked_rules.get(rule.name)
        return entry is None or entry.expression_sha256 != expression_sha256(rule)

    outcomes = []
    for rule in rules:
        given = expectations.get(rule.name) if expectations is not None else None
        # a spec's [expect] table is stated for the rule's own era
        era, _, mmu = settings.era.partition("/")
        own = rule.expected_for(era, mmu.split("+")[0])
        expected = dict(given if given is not None else own)
        command = reproduce(rule) if reproduce is not None else default_command(rule, options.vcpus)
        if must_recheck(rule):
            outcome = _recheck(
                rule, expected, locked_rules.get(rule.name), settings, command, progress, hints
            )
        else:
            outcome = _unchanged(rule, expected, locked_rules[rule.name], command, since)
        outcomes.append(outcome)
        if settings.require_lock:
            stale.extend(outcome.differences)
    if complete:
        gated = {r.name for r in rules}
        stale.extend(
            f"rule {name}: removed (in the lock, no longer a rule)"
            for name in sorted(locked_rules)
            if name not in gated
        )
    return GateReport(
        rules=tuple(outcomes),
        model=model,
        lock=lock,
        lock_path=lock_path,
        stale=tuple(stale),
        settings=settings,
        since=since,
        root=root,
        **({"refresh": refresh} if refresh is not None else {}),
    )


def _recheck(
    rule: Rule,
    expected: Mapping[str, Verdict],
    locked: RuleLock | None,
    settings: GateSettings,
    command: str,
    progress: GateProgress | None = None,
    hints: HintStore | None = None,
) -> RuleOutcome:
    options = settings.options
    session = Session(System(rule, options.paths), hints=hints)
    rows: list[PropertyOutcome] = []
    computed: dict[str, PropertyLock] = {}
    differences: list[str] = []
    if locked is None:
        differences.append(f"rule {rule.name}: new (not in the lock)")
    else:
        fresh = rule_lock(rule, {})
        if fresh.expression_sha256 != locked.expression_sha256:
            differences.append(f"rule {rule.name}: expression changed")
        if fresh.formula != locked.formula:
            differences.append(f"rule {rule.name}: formula {locked.formula} -> {fresh.formula}")
    for prop in PROPERTIES:
        what = f"{rule.name}: {prop.name}"
        if progress is not None:
            progress.started(what)
        started = time.perf_counter()
        result = check_property(rule, prop, options, session)
        seconds = time.perf_counter() - started
        now = property_lock(result)
        before = locked.properties.get(prop.name) if locked is not None else None
        row = _row(rule, prop, result, now, expected.get(prop.name), before, locked, settings)
        row = replace(row, seconds=seconds)
        if progress is not None:
            progress.finished(what, f"{result.verdict.value} ({row.status.value}) {seconds:.2f}s")
        rows.append(row)
        differences.extend(f"rule {rule.name}: {prop.name}: {d}" for d in row.differences)
        if now is not None:
            computed[prop.name] = now
    if locked is not None:
        differences.extend(
            f"rule {rule.name}: {name}: no longer a property"
            for name in sorted(locked.properties)
            if name not in computed and all(p.name != name for p in PROPERTIES)
        )
    complete = len(computed) == len(PROPERTIES)
    return RuleOutcome(
        rule=rule,
        rechecked=True,
        properties=tuple(rows),
        locked=locked,
        entry=rule_lock(rule, computed) if complete else None,
        differences=tuple(differences),
        command=command,
    )


def _row(
    rule: Rule,
    prop: Property,
    result: PropertyResult,
    now: PropertyLock | None,
    expected: Verdict | None,
    before: PropertyLock | None,
    locked_rule: RuleLock | None,
    settings: GateSettings,
) -> PropertyOutcome:
    locked = before.verdict if before is not None else None
    status = decide(prop, result.verdict, expected, locked)
    differences: tuple[str, ...] = ()
    if now is not None:
        if before is None:
            differences = ("not in the lock",) if locked_rule is not None else ()
        else:
            differences = tuple(before.differences(now))
    if status is None:
        if before is None:
            status = Status.NEW if settings.require_lock else Status.OK
        elif differences:
            status = Status.CHANGED
        else:
            status = Status.OK
    failed = status in (Status.REGRESSED, Status.VIOLATES_EXPECTATION) or (
        status is Status.INCONCLUSIVE and not settings.allow_inconclusive
    )
    return PropertyOutcome(
        rule=rule,
        prop=prop,
        status=status,
        result=result,
        expected=expected,
        locked=before,
        failed=failed,
        detail=_detail(status, result, expected, before, differences, rule),
        differences=differences,
    )


def expectation_source(rule: Rule) -> str:
    """Where ``rule``'s expected verdicts come from, as messages name it: a spec
    rule's ``[expect]`` table; for a kernel tree's rule (which has no spec file)
    the gate's own default, every property holds, unless ``--expect`` says otherwise."""
    kind = rule.selector[0]
    if kind == "--rule" and rule.path is not None:
        return f"{rule.path.name}'s [expect]"
    if kind == "--kernel":
        return "the kernel gate (every property holds unless --expect PROPERTY=violated)"
    return "the expectation"


def _detail(
    status: Status,
    result: PropertyResult,
    expected: Verdict | None,
    before: PropertyLock | None,
    differences: tuple[str, ...],
    rule: Rule,
) -> str:
    steps = f" in {result.trace.depth} steps" if result.trace is not None else ""
    spec = expectation_source(rule)
    if status is Status.INCONCLUSIVE:
        text = f"could not be decided: {result.reason or 'no reason given'}"
        if before is not None and before.verdict is Verdict.HOLDS:
            text += "; the lock records a proof that was not re-established"
        return text
    if status is Status.REGRESSED:
        return f"holds in the lock, now violated{steps}"
    if status is Status.VIOLATES_EXPECTATION:
        return f"violated{steps}; {spec} says it holds"
    if status is Status.UNEXPECTEDLY_HOLDS:
        return (
            f"holds, but {spec} says violated: check that the model still has the "
            "behaviour the expectation rests on, or correct the expectation"
        )
    if status is Status.CHANGED:
        text = "; ".join(differences)
        if (
            not result.prop.safety
            and before is not None
            and before.verdict is Verdict.HOLDS
            and result.verdict is Verdict.VIOLATED
        ):
            text += f" (a precision regression: unnecessary flushes; {spec} allows it)"
        return text
    if status is Status.NEW:
        return "not in the lock"
    return ""


def _unchanged(
    rule: Rule,
    expected: Mapping[str, Verdict],
    locked: RuleLock,
    command: str,
    since: str | None,
) -> RuleOutcome:
    detail = f"unchanged since {since}" if since is not None else "unchanged"
    rows = tuple(
        PropertyOutcome(
            rule=rule,
            prop=prop,
            status=Status.NOT_RECHECKED,
            result=None,
            expected=expected.get(prop.name),
            locked=locked.properties.get(prop.name),
            failed=False,
            detail=detail,
        )
        for prop in PROPERTIES
    )
    return RuleOutcome(
        rule=rule,
        rechecked=False,
        properties=rows,
        locked=locked,
        entry=locked,
        differences=(),
        command=command,
    )
