"""A scenario's verdicts: every era/MMU it applies to, as shipped and with each fix.

Each cell is ``checker check`` of the era's own rule on the scenario's model
(:func:`checker.engines.check.check_property`, the SMT engine: a proof for every
number of vCPUs, or the shortest trace, replayed). Cells with the same rule,
model and paths are decided once, in forked processes two at a time where the
machine has the cores (``checker.engines.forked``).

Nothing here prints: results are values for the CLI and the write-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from checker.engines import forked
from checker.engines.check import Options, PropertyResult, Session, check_property
from checker.engines.hints import HintStore
from checker.engines.smt import Budget
from checker.model import PROPERTIES, Model, Paths, Shape, System
from checker.model.paths import Mmu
from checker.rules.scenarios import SHIPPED, Scenario
from checker.rules.specs import Era, Rule
from checker.verdict import Verdict


@dataclass(frozen=True)
class Cell:
    """One era/MMU with one variant (SHIPPED or a fix), checked with ``rule``."""

    era: str
    mmu: Mmu
    variant: str
    rule: str
    paths: Paths
    results: tuple[PropertyResult, ...]

    @property
    def label(self) -> str:
        return f"{self.era}/{self.mmu.value}"

    @property
    def violated(self) -> tuple[str, ...]:
        return tuple(r.prop.name for r in self.results if r.verdict is Verdict.VIOLATED)

    @property
    def inconclusive(self) -> tuple[str, ...]:
        return tuple(r.prop.name for r in self.results if r.verdict is Verdict.INCONCLUSIVE)

    def result(self, prop: str) -> PropertyResult:
        return next(r for r in self.results if r.prop.name == prop)


@dataclass(frozen=True)
class Mismatch:
    cell: Cell
    #: the properties the scenario expects violated (None: it states nothing)
    expected: tuple[str, ...] | None


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    cells: tuple[Cell, ...]

    def mismatches(self) -> tuple[Mismatch, ...]:
        """Cells whose violated properties differ from the scenario's expectation,
        or that it states nothing for."""
        found = []
        for cell in self.cells:
            stated = self.scenario.expect.get(cell.label)
            wanted = stated.violated.get(cell.variant) if stated is not None else None
            if stated is None or wanted is None or stated.rule != cell.rule:
                found.append(Mismatch(cell, None))
            elif set(wanted) != set(cell.violated) or cell.inconclusive:
                found.append(Mismatch(cell, wanted))
        return tuple(found)

    @property
    def exit_code(self) -> int:
        if any(c.inconclusive for c in self.cells):
            return 3
        return 1 if self.mismatches() else 0


def cells_to_check(
    scenario: Scenario, eras: Mapping[str, Era], rule: str | None = None
) -> list[tuple[str, Mmu, str, str, Paths]]:
    """(era, MMU, variant, rule, paths) of every cell: each era/MMU the scenario
    applies to, as shipped, and with each fix in the eras the scenario checks
    fixes in. ``rule``: instead of each era's own."""
    found = []
    for era in eras.values():
        for mmu, paths in era.paths.items():
            if not scenario.applies(paths):
                continue
            name = rule or era.rule
            found.append((era.name, mmu, SHIPPED, name, paths))
            if era.name in scenario.fixes_in:
                for fix in scenario.fixes.values():
                    found.append((era.name, mmu, fix.name, name, fix.apply(paths)))
    return found


def run(
    scenario: Scenario,
    eras: Mapping[str, Era],
    rules: Mapping[str, Rule],
    vcpus: int = 2,
    budget: Budget | None = None,
    hints: HintStore | None = None,
    rule: str | None = None,
    jobs: int = 1,
) -> ScenarioResult:
    """Every cell of ``scenario`` (:func:`cells_to_check`), decided with the SMT
    engine at ``vcpus`` vCPUs (proofs for every number of vCPUs), each distinct
    system once, ``jobs`` of them at a time in forked processes (the answers are
    the same either way: each is deterministic)."""
    cells = cells_to_check(scenario, eras, rule)
    tasks: dict[tuple[str, Model, Paths], tuple[object, ...]] = {}
    keys = []
    for _, _, _, name, paths in cells:
        # the same rule, model and paths: one system, checked once (the fixes are
        # paths, read as the operations run, so the model alone does not say it)
        key = (name, System(rules[name], paths, scenario.shape).model, paths)
        keys.append(key)
        tasks.setdefault(key, (rules[name], paths, scenario.shape, vcpus, budget, hints))
    answers = dict(zip(tasks, forked.run(decide, list(tasks.values()), jobs), strict=True))
    return ScenarioResult(
        scenario,
        tuple(
            Cell(era, mmu, variant, name, paths, answers[key])
            for (era, mmu, variant, name, paths), key in zip(cells, keys, strict=True)
        ),
    )


def decide(
    rule: Rule,
    paths: Paths,
    shape: Shape,
    vcpus: int,
    budget: Budget | None,
    hints: HintStore | None,
) -> tuple[PropertyResult, ...]:
    """Every property of ``rule`` on the scenario's system: one cell's verdicts."""
    system = System(rule, paths, shape)
    options = Options(vcpus=vcpus, paths=paths, shape=shape, budget=budget or Budget())
    session = Session(system, options.max_states, hints)
    return tuple(check_property(rule, prop, options, session) for prop in PROPERTIES)
