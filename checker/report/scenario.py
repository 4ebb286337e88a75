"""A scenario's verdicts as text: the terminal table, and the write-up a KVM
developer reads (``counterexamples/<scenario>/README.md``), laid out like a kernel
commit message: the race as a table of CPUs, the conditions, the verdict per era
and MMU, the fixes with their proof status, and the commands behind every claim.

Everything here is a pure function from results to text; nothing in it depends
on the time or the machine, so the write-up is the same bytes on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from checker.engines.scenario import Cell, ScenarioResult
from checker.engines.semantics import State, Step
from checker.engines.trace import Trace
from checker.model import SPTE_FIELDS, LockMode, Tlb
from checker.model.operation import ActorKind, Hold
from checker.rules.formula import FIELD_ABBREVIATIONS
from checker.rules.scenarios import SHIPPED, Scenario
from checker.text import vcpu_count
from checker.verdict import Verdict


def variant_title(scenario: Scenario, variant: str) -> str:
    if variant == SHIPPED:
        return "as shipped"
    fix = scenario.fixes[variant]
    return f"fix {fix.label} {variant}"


def _verdicts(cell: Cell) -> str:
    if cell.inconclusive:
        return "INCONCLUSIVE: " + ", ".join(cell.inconclusive)
    return ", ".join(cell.violated) if cell.violated else "all hold"


def matrix_lines(result: ScenarioResult) -> list[str]:
    """One row per cell: era/MMU, rule, variant, the violated properties, and
    whether the scenario expects that."""
    mismatched = {id(m.cell): m for m in result.mismatches()}
    rows = [("era/MMU", "rule", "variant", "violated", "status")]
    for cell in result.cells:
        m = mismatched.get(id(cell))
        if m is None:
            status = "as expected"
        elif m.expected is None:
            status = "NOT STATED (add it to the scenario's [expect])"
        else:
            status = "NOT AS EXPECTED (expected " + (", ".join(m.expected) or "all hold") + ")"
        rows.append(
            (
                cell.label,
                cell.rule,
                variant_title(result.scenario, cell.variant),
                _verdicts(cell),
                status,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    bad = len(mismatched)
    lines.append(
        f"{len(result.cells)} cells: "
        + ("all as expected" if not bad else f"{bad} not as expected")
    )
    return lines


# --- the race, step by step ---------------------------------------------------------------


def actor_name(step: Step) -> str:
    op = step.operation
    if op.actor is ActorKind.HOST:
        return "host"
    return f"vCPU{step.action.vcpu or 0}"


def _gfn_name(shape_gfns: int, gfn: int) -> str:
    return f"gfn {gfn}" if shape_gfns > 1 else "the gfn"


def _lock_text(step: Step) -> str:
    """Where ``mmu_lock`` and ``slots_lock`` are while the step runs."""
    op = step.operation
    held = []
    slot_after = step.after.shared.slot
    slot_before = step.before.shared.slot
    pending_before = slot_before.harvest_flush_pending or slot_before.enable_flush_pending
    pending_after = slot_after.harvest_flush_pending or slot_after.enable_flush_pending
    if op.lock is LockMode.WRITE:
        held.append(
            "mmu_lock (write), dropped at the end" if op.hold is Hold.ATOMIC else "mmu_lock (write)"
        )
    elif op.lock is LockMode.READ:
        held.append("mmu_lock (read), dropped at the end")
    else:
        held.append("no lock")
    if op.actor is ActorKind.HOST and (
        pending_before or pending_after or op.lock is LockMode.WRITE
    ):
        held.insert(0, "slots_lock" + ("" if pending_after else ", dropped at the end"))
    elif pending_before or pending_after:
        held.append("host holds slots_lock")
    return "; ".join(held)


def _spte_name(state: State, index: int) -> str:
    shape = state.shape
    if index == shape.huge_spte:
        return "2M SPTE"
    gfns = [g for g in range(shape.gfns) if shape.spte(g) == index]
    return "4K SPTE of " + " and ".join(_gfn_name(shape.gfns, g) for g in gfns)


def _spte_text(before_spte: object, after_spte: object) -> list[str]:
    parts = []
    for f in SPTE_FIELDS:
        a, b = getattr(before_spte, f), getattr(after_spte, f)
        if a != b:
            parts.append(("+" if b else "-") + FIELD_ABBREVIATIONS[f])
    return parts


def changes(step: Step) -> list[str]:
    """What the step changed, in kernel terms: SPTE bits (``2M SPTE -W -MW``), TLB
    entries, write-tracking, dirty bits, the flushes owed, and a flush."""
    before, after = step.before, step.after
    shape = before.shape
    out = []
    for i, (a, b) in enumerate(zip(before.shared.sptes, after.shared.sptes, strict=True)):
        bits = _spte_text(a, b)
        if not bits:
            continue
        if not b.present:
            out.append(f"{_spte_name(before, i)} zapped")
        elif not a.present:
            shown = " ".join(FIELD_ABBREVIATIONS[f] for f in SPTE_FIELDS if getattr(b, f))
            out.append(f"{_spte_name(before, i)} made ({shown})")
        else:
            out.append(f"{_spte_name(before, i)} {' '.join(bits)}")
    for g, (fa, fb) in enumerate(zip(before.shared.frames, after.shared.frames, strict=True)):
        name = _gfn_name(shape.gfns, g)
        if fa.write_tracked != fb.write_tracked:
            out.append(f"{name} {'write-tracked' if fb.write_tracked else 'no longer tracked'}")
        if fa.dirty_bit != fb.dirty_bit:
            out.append(f"{name}'s dirty bit {'set' if fb.dirty_bit else 'cleared'}")
    sa, sb = before.shared.slot, after.shared.slot
    if sa.dirty_logging != sb.dirty_logging:
        out.append("logging " + ("on" if sb.dirty_logging else "off"))
    if sa.harvest_flush_pending != sb.harvest_flush_pending:
        out.append("flush owed" if sb.harvest_flush_pending else "the owed flush done")
    if sa.enable_flush_pending != sb.enable_flush_pending:
        out.append("flush owed" if sb.enable_flush_pending else "the owed flush done")
    if step.outcome.flush:
        out.append("every vCPU's TLB flushed")
    else:
        for v, (va, vb) in enumerate(zip(before.vcpus, after.vcpus, strict=True)):
            for g, (x, y) in enumerate(zip(va.tlbs, vb.tlbs, strict=True)):
                if x != y:
                    out.append(
                        f"vCPU{v} TLB {_gfn_name(shape.gfns, g)}: "
                        f"{Tlb.of(x).label} -> {Tlb.of(y).label}"
                    )
    return out or ["nothing changes"]


def race_table(trace: Trace) -> list[str]:
    """The trace as a Markdown table: one column per vCPU and one for the host,
    then the locks held and what changed."""
    actors = [f"vCPU{v}" for v in range(trace.vcpus)] + ["host"]
    lines = [
        "| # | " + " | ".join(actors) + " | locks | what changes |",
        "|---|" + "---|" * len(actors) + "---|---|",
    ]
    shape = trace.initial.shape
    for n, step in enumerate(trace.steps, start=1):
        op = step.operation
        where = ""
        if step.action.gfn is not None:
            where = f" ({_gfn_name(shape.gfns, step.action.gfn)})"
        params = [k.replace("_", " ") for k, v in step.action.params if v]
        what = f"{op.title}{where}" + (f" [{', '.join(params)}]" if params else "")
        what += f"<br>`{op.function}`"
        cells = [what if a == actor_name(step) else "" for a in actors]
        changed = changes(step)
        if n == len(trace.steps):
            changed.append(f"**{trace.prop.name} violated**")
        lines.append(
            f"| {n} | " + " | ".join(cells) + f" | {_lock_text(step)} | {'; '.join(changed)} |"
        )
    return lines


def _config(trace: Trace) -> str:
    slot = trace.initial.shared.slot
    return "with" if slot.ad_enabled else "without"


# --- the write-up ---------------------------------------------------------------------------


def writeup(
    result: ScenarioResult,
    traces: Mapping[tuple[str, str, str], Sequence[str]],
    everything: str,
    command: Callable[[str, str, str, str | None], str],
) -> str:
    """The scenario's README: ``traces`` maps (cell label, variant, property) to the
    files written for it (relative to the write-up); ``everything`` is the command
    line that checks the whole scenario, ``command(era, mmu, rule, fix)`` the one
    that checks one cell. The prose around the findings is the scenario's own
    (its ``[writeup]``); every verdict, trace and count is the model's."""
    scenario = result.scenario
    text = scenario.writeup
    question = text["question"]
    newest = scenario.fixes_in[-1] if scenario.fixes_in else result.cells[-1].era
    shipped = [c for c in result.cells if c.variant == SHIPPED]
    broken = [c for c in shipped if question in c.violated]
    out: list[str] = [f"# KVM: x86/mmu: {scenario.title}", ""]
    out += [*_wrap(scenario.summary), ""]
    race = next((c for c in broken if c.era == newest), broken[-1] if broken else None)
    if race is None:
        out += _wrap(
            f"No. {question} holds in every era and MMU this scenario applies to, as "
            "shipped: each is proved by an inductive invariant (see the verdicts below)."
        )
        out += [""]
    else:
        t = race.result(question).trace
        assert t is not None
        rule = text["rule"]
        window = [c for c in shipped if rule in c.violated]
        if window and all(c in broken for c in window):
            where = (
                f"violated {_where(shipped, window)}: there the documented rule ({rule}) "
                f"is broken too, and {question} is violated through it"
            )
        else:
            where = f"violated {_where(shipped, broken)}"
        alone = (
            " It needs no second vCPU: the vCPU that starts tracking the gfn can itself "
            "write through the entry it cached before the clear."
            if t.vcpus == 1
            else ""
        )
        out += _wrap(
            f"Yes. The model shows {question} {where}, with the rule each era "
            f"ships.{alone} The shortest trace in {race.label} (rule {race.rule}; "
            f"{vcpu_count(t.vcpus)} and a host thread; "
            f"{_config(t)} A/D bits), replayed through the step function:"
        )
        out += ["", *race_table(t), ""]
        out += [*_wrap(text["explanation"]), ""]
        if text["rule"] in race.violated:
            out += [*_wrap(text["rule_text"]), ""]
    out += ["## Conditions", ""]
    out += [f"- {line}" for line in text["conditions"]]
    out += ["", "## Verdicts, per era and MMU", ""]
    out += _wrap(
        "Each row is `checker check` of the era's own rule on this model, with the SMT "
        "engine: a violation is the shortest trace, replayed through the step function; "
        "a property that holds is proved by an inductive invariant, certified for every "
        "number of vCPUs."
    )
    out += ["", "| era/MMU | rule | variant | violated |", "|---|---|---|---|"]
    for cell in result.cells:
        out.append(
            f"| {cell.label} | {cell.rule} | {variant_title(scenario, cell.variant)} | "
            f"{_verdicts(cell)} |"
        )
    out += ["", *_wrap(text["before"]), "", "## Fixes", ""]
    for fix in scenario.fixes.values():
        cells = [c for c in result.cells if c.variant == fix.name]
        status = "; ".join(f"{c.label}: {_status(c)}" for c in cells)
        out += _wrap(f"- **{fix.label} `{fix.name}`**: {fix.title}. {status}.")
    out += ["", *_wrap(text["fixes"]), ""]
    for fix in scenario.fixes.values():
        for cell in (c for c in result.cells if c.variant == fix.name):
            for prop in cell.violated:
                trace = cell.result(prop).trace
                if trace is not None and prop not in (text["rule"], question):
                    out += [f"{fix.label}, {cell.label}, {prop}:", "", *race_table(trace), ""]
    out += ["## Reproduce", "", "```", everything]
    for cell in (c for c in result.cells if c.era == newest):
        out.append(command(cell.era, cell.mmu.value, cell.rule, _fix_of(cell)))
    out += ["```", ""]
    if traces:
        out += ["The traces (node-link JSON and GraphML; `checker show FILE` renders one):", ""]
        for (label, variant, prop), files in sorted(traces.items()):
            out.append(
                f"- {label}, {variant_title(scenario, variant)}, {prop}: "
                + ", ".join(f"`{f}`" for f in files)
            )
        out += [""]
    out += [*_wrap(text["limits"]), ""]
    return "\n".join(out)


def _where(shipped: Sequence[Cell], broken: Sequence[Cell]) -> str:
    """Where a property is violated, per MMU: ``in every era from v5.14 on with the
    shadow MMU, ...`` when every later era of that MMU violates it too, else the
    cells by name."""
    parts: list[str] = []
    firsts: set[str] = set()
    mmus = dict.fromkeys(c.mmu for c in shipped)
    for mmu in mmus:
        mine = [c for c in shipped if c.mmu is mmu]
        hit = [c for c in mine if c in broken]
        if not hit:
            continue
        later = mine[mine.index(hit[0]) :]
        if all(c in broken for c in later):
            parts.append(f"in every era from {hit[0].era} on in the {mmu.value} MMU")
            firsts.add(hit[0].era)
        else:
            parts.append("in " + ", ".join(c.label for c in hit))
    if len(mmus) > 1 and len(firsts) == 1 and len(parts) == len(mmus):
        return f"in every era from {firsts.pop()} on, in both MMUs"
    return " and ".join(parts)


def _fix_of(cell: Cell) -> str | None:
    return None if cell.variant == SHIPPED else cell.variant


def _status(cell: Cell) -> str:
    if cell.inconclusive:
        return "inconclusive"
    if not cell.violated:
        every = all(
            r.proof is not None and r.proof.all_vcpus is not None and r.proof.all_vcpus.ok
            for r in cell.results
            if r.verdict is Verdict.HOLDS
        )
        return "proved, every property" + (" for every number of vCPUs" if every else "")
    return "violates " + ", ".join(cell.violated)


def _first_era_with(result: ScenarioResult, prop: str) -> str:
    for cell in result.cells:
        if cell.variant == SHIPPED and prop in cell.violated and cell.mmu.value == "shadow":
            return cell.era
    return "?"


def _wrap(text: str, width: int = 88) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines
