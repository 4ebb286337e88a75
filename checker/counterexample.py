"""A counterexample ready to be shown: a replayed trace and where it comes from.

Every view and export starts here. A file is parsed (``graph.read_counterexample``,
or ``itf.read_itf`` for an ITF export) and then replayed through the step function
under the rule and paths it records (``certify.replay``), so nothing is shown that
the model does not reproduce. A file that fails either stage is an ``InputError``
naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from checker.errors import InputError
from checker.graph import Provenance
from checker.model import Paths, Property
from checker.semantics import Action, State
from checker.trace import Trace

if TYPE_CHECKING:
    from checker.graph import TraceGraph


@dataclass(frozen=True)
class Counterexample:
    """A replayed trace, its provenance, and the file it was read from (if any)."""

    trace: Trace
    provenance: Provenance
    source: str | None = None

    def graph(self) -> TraceGraph:
        """The networkx graph of the trace, exactly as ``checker check`` writes it."""
        from checker.graph import trace_graph

        return trace_graph(self.trace, self.provenance)


def load(path: Path) -> Counterexample:
    """Read ``path`` (node-link JSON, GraphML, or an ITF export ``*.itf.json``) and
    replay it.

    Raises ``InputError`` (exit 2) for a file that does not parse, is of an unknown
    format, or does not replay to a violation of its property.
    """
    from checker import itf
    from checker.graph import read_counterexample

    if itf.is_itf_path(path):
        return itf.read_itf(path)
    loaded = read_counterexample(path)
    meta = loaded.graph.graph
    provenance = Provenance(
        expression=loaded.expression,
        command=str(meta.get("command", "")),
        checker_version=str(meta.get("checker_version", "unknown")),
        z3_version=str(meta.get("z3_version", "unknown")),
        profile=loaded.profile,
    )
    trace = replay_file(
        path,
        loaded.rule_name,
        loaded.expression,
        loaded.prop,
        loaded.paths,
        loaded.actions,
        loaded.states,
    )
    return Counterexample(trace, provenance, str(path))


def replay_file(
    path: Path,
    rule_name: str,
    expression: str,
    prop: Property,
    paths: Paths,
    actions: Sequence[Action],
    states: Sequence[State],
) -> Trace:
    """Replay the actions and states a file records, under the rule ``expression``
    and ``paths``; an ``InputError`` naming ``path`` if they do not check out."""
    from checker.bmc import SmtTrace
    from checker.certify import replay
    from checker.model import System
    from checker.specs import adhoc_rule

    if len(states) != len(actions) + 1:
        raise InputError(f"{path}: {len(actions)} steps but {len(states)} states")
    try:
        rule = adhoc_rule(expression, rule_name)
    except InputError as exc:
        message = " ".join(str(exc).split())
        raise InputError(f"{path}: its rule expression does not parse ({message})") from None
    except RecursionError:
        # a crafted expression nested thousands deep: no rule is written like that
        raise InputError(
            f"{path}: its rule expression is nested too deeply to parse; "
            "regenerate it with the command in its metadata"
        ) from None
    try:
        return replay(
            System(rule, paths),
            rule_name,
            prop,
            SmtTrace(tuple(actions), tuple(states)),
            error=InputError,
        )
    except InputError as exc:
        raise InputError(f"{path}: {exc}; regenerate it with the command in its metadata") from None
    except RecursionError:
        raise InputError(
            f"{path}: its rule expression is nested too deeply to evaluate; "
            "regenerate it with the command in its metadata"
        ) from None
