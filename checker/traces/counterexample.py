"""A counterexample ready to be shown: a replayed trace and where it comes from.

Every view and export starts here. :func:`checker.traces.load.load` reads one from
a file and :mod:`checker.traces.replay` replays it, so nothing is shown that the
model does not reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from checker.engines.trace import Trace
from checker.traces.graph import Provenance

if TYPE_CHECKING:
    from checker.traces.graph import TraceGraph


@dataclass(frozen=True)
class Counterexample:
    """A replayed trace, its provenance, and the file it was read from (if any)."""

    trace: Trace
    provenance: Provenance
    source: str | None = None

    def graph(self) -> TraceGraph:
        """The networkx graph of the trace, exactly as ``checker check`` writes it."""
        from checker.traces.graph import trace_graph

        return trace_graph(self.trace, self.provenance)
