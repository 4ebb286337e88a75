"""Running the kernel-history regression suite (``specs/history``).

Every entry is decided on both sides, each side one property of one rule in one
era's paths for one MMU, by the same check as ``checker check`` (so a violation's
trace is the shortest with the fewest vCPUs and has been replayed through the step
function). An entry is as expected when both sides give the verdicts it states.

Nothing here prints: results are values for the CLI to show.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from checker.engines.check import Options, PropertyResult, check_property
from checker.rules.history import Entry, Side
from checker.verdict import Verdict


class Status(enum.Enum):
    """What an entry's two verdicts say against its expectations."""

    AS_EXPECTED = "as expected"
    #: a side was decided, and not as the entry states
    NOT_AS_EXPECTED = "NOT AS EXPECTED"
    #: no side contradicts the entry, but one was not decided
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class SideResult:
    """One side of an entry, checked."""

    #: "before" or "after"
    name: str
    side: Side
    result: PropertyResult
    seconds: float

    @property
    def verdict(self) -> Verdict:
        return self.result.verdict

    @property
    def trace_length(self) -> int | None:
        """The violation's shortest trace, in steps; None without a trace."""
        return None if self.result.trace is None else self.result.trace.depth

    @property
    def as_expected(self) -> bool:
        return self.result.verdict is self.side.expect


@dataclass(frozen=True)
class EntryResult:
    """An entry with both its sides checked."""

    entry: Entry
    before: SideResult
    after: SideResult

    @property
    def sides(self) -> tuple[SideResult, SideResult]:
        return (self.before, self.after)

    @property
    def status(self) -> Status:
        """NOT AS EXPECTED if a decided side contradicts the entry (a definite
        regression outranks an undecided side), else INCONCLUSIVE if a side was not
        decided, else AS EXPECTED."""
        decided = [s for s in self.sides if s.verdict is not Verdict.INCONCLUSIVE]
        if any(not s.as_expected for s in decided):
            return Status.NOT_AS_EXPECTED
        if len(decided) < len(self.sides):
            return Status.INCONCLUSIVE
        return Status.AS_EXPECTED

    @property
    def shortest_trace(self) -> int | None:
        """The shortest violation trace of either side, in steps; None if neither
        side is violated."""
        lengths = [s.trace_length for s in self.sides if s.trace_length is not None]
        return min(lengths) if lengths else None

    @property
    def seconds(self) -> float:
        return self.before.seconds + self.after.seconds


def check_side(name: str, side: Side, entry: Entry, options: Options | None = None) -> SideResult:
    """``entry``'s property for ``side``'s rule in ``side``'s paths, decided with
    ``options`` (default: ``checker check``'s; their paths replaced by the side's),
    and how long it took."""
    chosen = dataclasses.replace(
        options or Options(), paths=side.paths, configuration=side.configuration
    )
    started = time.perf_counter()
    result = check_property(side.rule, entry.prop, chosen)
    return SideResult(name, side, result, time.perf_counter() - started)


def check_entry(entry: Entry, options: Options | None = None) -> EntryResult:
    """Both sides of ``entry``, decided."""
    before, after = (check_side(name, side, entry, options) for name, side in entry.sides)
    return EntryResult(entry, before, after)


def check_history(
    entries: Iterable[Entry],
    options: Options | None = None,
    checked: Callable[[EntryResult], None] | None = None,
) -> list[EntryResult]:
    """Every entry decided, in the order given (the loader sorts them by id);
    ``checked`` is called with each result as it comes (e.g. for progress)."""
    results = []
    for entry in entries:
        result = check_entry(entry, options)
        if checked is not None:
            checked(result)
        results.append(result)
    return results
