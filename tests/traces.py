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
from checker.model.paths import Mmu, Paths
from checker.rules.specs import adhoc_rule, load_eras
from checker.traces.counterexample import Counterexample
from checker.traces.graph import Provenance

from .conftest import ROOT

#: the era and MMU the hand-built traces run in: KVM v6.4 .. v6.12, shadow MMU
ERA = "v6.4-v6.12"
MMU = Mmu.SHADOW
LABEL = f"{ERA}/{MMU.value}"

LEGACY = "is_writable_pte(old_spte) && !is_writable_pte(new_spte)"

#: domain.md section 6 with a harvest: vCPU1 keeps a writable entry across the
#: harvest's unflushed write-protect, vCPU0 starts write-tracking without a flush,
#: vCPU1 writes the shadowed page table
CLASSIC = (
    Action("enable_dirty_logging", None, (("initially_set", False),)),
    Action("enable_flush"),
    Action("page_fault", 0, (("host_writable", True), ("write_fault", True))),
    Action("guest_access", 1),
    Action("harvest"),
    Action("write_protect", 0),
    Action("guest_write", 1),
)


def era_paths() -> Paths:
    return load_eras(ROOT / "specs")[ERA].paths[MMU]


def build(expression: str, prop: str, actions: tuple[Action, ...], vcpus: int = 2) -> Trace:
    """Replay ``actions`` from the A/D-disabled initial state under ``expression``,
    in the shadow MMU of v6.4 .. v6.12."""
    system = System(adhoc_rule(expression, "legacy"), era_paths())
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
        LEGACY,
        f"checker check --rule legacy --vcpus 2 --era {ERA} --mmu {MMU.value}",
        "0.1.0",
        "4.15.4",
        LABEL,
    )
    return Counterexample(trace, provenance, "classic.json")
