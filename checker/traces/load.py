"""Read a counterexample file of any format this checker writes, and replay it.

A file is parsed (``graph.read_counterexample``, or ``itf.read_itf`` for an ITF
export) and then replayed (:mod:`checker.traces.replay`). A file that fails either
stage is an ``InputError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

from checker.traces import itf
from checker.traces.counterexample import Counterexample
from checker.traces.graph import Provenance, read_counterexample
from checker.traces.replay import replay_file


def load(path: Path) -> Counterexample:
    """Read ``path`` (node-link JSON, GraphML, or an ITF export ``*.itf.json``) and
    replay it.

    Raises ``InputError`` (exit 2) for a file that does not parse, is of an unknown
    format, or does not replay to a violation of its property.
    """
    if itf.is_itf_path(path):
        return itf.read_itf(path)
    loaded = read_counterexample(path)
    meta = loaded.graph.graph
    provenance = Provenance(
        expression=loaded.expression,
        command=str(meta.get("command", "")),
        checker_version=str(meta.get("checker_version", "unknown")),
        z3_version=str(meta.get("z3_version", "unknown")),
        era=loaded.era,
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
