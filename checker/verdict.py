"""What a check says about a property: the one representation of a verdict.

A verdict is a :class:`Verdict` from the engine's result through the gate, the
lockfile and the reports; its word (``"holds"``, ``"violated"``,
``"inconclusive"``) appears only where a file, the command line or a JSON document
holds it, and is read back with :func:`decided` once, where it enters.

It sits below the model and the rules since every layer speaks of verdicts: a
spec's ``[expect]`` table (rules), a check's answer (engines), the gate and its
lockfile (report).
"""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    HOLDS = "holds"
    VIOLATED = "violated"
    #: z3 could not decide, or a budget ran out: never locked, never expected
    INCONCLUSIVE = "inconclusive"


#: the verdicts a spec may expect and a lockfile may record
DECIDED = (Verdict.HOLDS, Verdict.VIOLATED)


def decided(word: object) -> Verdict:
    """``word`` (from a file or the command line) as a decided verdict; otherwise
    ValueError, whose text is the one-line reason for the caller's message."""
    for verdict in DECIDED:
        if word == verdict.value:
            return verdict
    raise ValueError(f"expected 'holds' or 'violated', got {word!r}")
