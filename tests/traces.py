"""Traces built by hand for the view and export tests.

The committed counterexamples are canonical (lexicographically least), so only
vcpu0 acts in them. The domain brief's classic race needs two vCPUs and the host:
it is built here by replaying the actions through the step function.
"""

from __future__ import annotations

from checker.engines import semantics
from checker.engines.semantics import Action
from checker.engines.trace import Trace
from checker.model import PROPERTY_BY_NAME, System
from checker.rules.specs import adhoc_rule
from checker.traces.counterexample import Counterexample
from checker.traces.graph import Provenance

LEGACY = "is_writable_pte(old_spte) && !is_writable_pte(new_spte)"

#: domain.md section 6 with a harvest: vCPU1 keeps a writable entry across the
#: harvest's unflushed write-protect, vCPU0 starts write-tracking without a flush,
#: vCPU1 writes the shadowed page table
CLASSIC = (
    Action("enable_dirty_logging"),
    Action("enable_flush"),
    Action("page_fault", 0, (("host_writable", True),)),
    Action("guest_access", 1),
    Action("harvest"),
    Action("write_protect", 0),
    Action("guest_write", 1),
)


def build(expression: str, prop: str, actions: tuple[Action, ...], vcpus: int = 2) -> Trace:
    """Replay ``actions`` from the A/D-disabled initial state under ``expression``."""
    system = System(adhoc_rule(expression, "legacy"))
    initial = semantics.initial_states(vcpus)[0]
    steps = []
    state = initial
    for action in actions:
        step = semantics.step(system, state, action)
        assert step is not None, f"{action.label} is not enabled"
        steps.append(step)
        state = step.after
    return Trace("legacy", PROPERTY_BY_NAME[prop], system.paths, initial, tuple(steps))


def classic() -> Counterexample:
    trace = build(LEGACY, "write_tracking", CLASSIC)
    provenance = Provenance(
        LEGACY, "checker check --rule legacy --vcpus 2", "0.1.0", "4.15.4", "default"
    )
    return Counterexample(trace, provenance, "classic.json")
