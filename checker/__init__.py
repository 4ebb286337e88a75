"""A model checker for KVM x86's TLB-flush rule on leaf SPTE updates.

Importing the package is cheap: z3 and networkx load only when a command needs them.
"""

from __future__ import annotations

#: the one place the version is written (pyproject.toml reads it from here); kept
#: as a constant because importlib.metadata alone costs ~50 ms at start-up
__version__ = "0.1.0"


def version() -> str:
    return __version__
