"""A model checker for KVM x86's TLB-flush rule on leaf SPTE updates.

Importing the package is cheap: z3 and networkx load only when a command needs them.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "kvm-flush-checker"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"
