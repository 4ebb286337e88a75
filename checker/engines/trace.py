"""A replayed counterexample: plain data, shared by every view and export."""

from __future__ import annotations

from dataclasses import dataclass

from checker.engines.semantics import State, Step
from checker.model import Layout, Paths, Property, spte_value


@dataclass(frozen=True)
class Trace:
    """``initial`` followed by ``steps``; the property is violated at the last one
    (in its state for a state property, by its step for a step property)."""

    rule_name: str
    prop: Property
    paths: Paths
    initial: State
    steps: tuple[Step, ...]

    @property
    def vcpus(self) -> int:
        return self.initial.vcpu_count

    @property
    def depth(self) -> int:
        return len(self.steps)

    @property
    def states(self) -> tuple[State, ...]:
        return (self.initial, *(s.after for s in self.steps))


def spte_hex(state: State, layout: Layout = "x86", spte: int = 0) -> str:
    """SPTE ``spte`` as hex in ``layout`` (domain.md section 2), e.g. ``0x0e06``."""
    return f"0x{spte_value(state.shared.sptes[spte], layout):04x}"
