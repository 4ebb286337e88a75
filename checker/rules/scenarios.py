"""Scenarios: a model sized for one question, its fixes, and what it is expected to
say, as data (``specs/scenarios/<name>.toml``).

A scenario names a shape (:class:`checker.model.Shape`: how many gfns, and whether
a 2M SPTE maps them, which brings the operations that know SPTE levels), the eras
it applies to (those whose paths have the feature it is about), its fixes (each a
set of choices of :class:`checker.model.Paths` that replace the era's: the plug
points a patch would change), and, per era/MMU and per variant (the kernel as
shipped, or one fix), the properties expected to be violated. ``checker scenario``
checks every cell and compares; ``checker check --scenario NAME [--fix F]`` checks
one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checker.model import PROPERTIES, PROPERTY_BY_NAME, Paths, Shape
from checker.model.paths import CHOICES, HugeWriteProtect
from checker.rules.specs import _read_spec, _spec_files, _string, _table
from checker.verdict import Verdict

SCENARIOS_DIRECTORY = "scenarios"
#: the variant that is the kernel as its era ships it
SHIPPED = "shipped"

_FIELDS = (
    "name",
    "title",
    "summary",
    "gfns",
    "huge",
    "requires",
    "fixes_in",
    "fixes",
    "expect",
    "writeup",
)
#: the write-up's prose, around the model's findings
_WRITEUP_TEXTS = ("explanation", "rule_text", "before", "fixes", "limits")
_FIX_FIELDS = ("label", "title")
#: what a scenario may require of an era's paths, by name
REQUIREMENTS = {
    "initially_set_huge": (
        "manual-protect 'initially all set' dirty logging (v5.7 and later)",
        lambda paths: paths.huge_write_protect is not HugeWriteProtect.NONE,
    ),
}


@dataclass(frozen=True)
class Fix:
    """A plug point: choices of :class:`Paths` that replace the era's."""

    name: str
    label: str
    title: str
    changes: tuple[tuple[str, Any], ...]

    def apply(self, paths: Paths) -> Paths:
        return dataclasses.replace(paths, **dict(self.changes))


@dataclass(frozen=True)
class Expected:
    """What one era/MMU of a scenario is expected to show, with ``rule``: per
    variant (SHIPPED or a fix), the properties violated (every other one holds)."""

    rule: str
    violated: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    summary: str
    shape: Shape
    #: what an era's paths must have for the scenario to apply (a REQUIREMENTS key)
    requires: str
    fixes: dict[str, Fix]
    #: the eras the fixes are checked in (every MMU of each)
    fixes_in: tuple[str, ...] = ()
    #: per "ERA/MMU": the rule checked there and, per variant, the properties violated
    expect: dict[str, Expected] = field(default_factory=dict)
    #: the write-up's prose: ``question`` and ``rule`` (property names), the texts
    #: of _WRITEUP_TEXTS, and ``conditions`` (a list)
    writeup: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def applies(self, paths: Paths) -> bool:
        return bool(REQUIREMENTS[self.requires][1](paths))

    @property
    def requirement(self) -> str:
        return REQUIREMENTS[self.requires][0]

    @property
    def variants(self) -> tuple[str, ...]:
        return (SHIPPED, *self.fixes)

    def expected(self, era: str, mmu: str, fix: str | None, rule: str) -> dict[str, Verdict]:
        """The verdicts expected of the era's own rule on ``era``/``mmu`` with ``fix``
        (None: as shipped); none if the scenario states none for that cell."""
        cell = self.expect.get(f"{era}/{mmu}")
        stated = cell.violated.get(fix or SHIPPED) if cell is not None else None
        if cell is None or stated is None or rule != cell.rule:
            return {}
        return {p.name: Verdict.VIOLATED if p.name in stated else Verdict.HOLDS for p in PROPERTIES}


def load_scenarios(specs: Path) -> dict[str, Scenario]:
    """Every scenario under ``specs/scenarios``, by name."""
    directory = specs / SCENARIOS_DIRECTORY
    found = [load_scenario(p) for p in _spec_files(directory)] if directory.exists() else []
    return {s.name: s for s in sorted(found, key=lambda s: s.name)}


def load_scenario(path: Path) -> Scenario:
    _, data, fail = _read_spec(path, _FIELDS)
    name = _string(data, "name", fail)
    if name != path.stem:
        raise fail("name", f"{name!r} differs from the file name; rename one to match")
    gfns = data.get("gfns")
    if not isinstance(gfns, int) or isinstance(gfns, bool) or not 1 <= gfns <= 4:
        raise fail("gfns", "an integer in 1..4")
    huge = data.get("huge", False)
    if not isinstance(huge, bool):
        raise fail("huge", "must be true or false")
    requires = _string(data, "requires", fail)
    if requires not in REQUIREMENTS:
        raise fail("requires", f"expected one of {', '.join(REQUIREMENTS)}")
    fixes = {}
    for fix_name, table in _table(data, "fixes", fail, required=True).items():
        where = f"fixes.{fix_name}"
        if not isinstance(table, dict):
            raise fail(where, "a table of label, title and choices")
        changes = []
        for key, value in table.items():
            if key in _FIX_FIELDS:
                continue
            kind = CHOICES.get(key)
            if kind is None or key == "mmu":
                raise fail(f"{where}.{key}", "not a choice of an era's paths")
            choices = [c.value for c in kind] if kind is not bool else [True, False]  # type: ignore[attr-defined]
            if value not in choices:
                raise fail(f"{where}.{key}", f"expected one of {', '.join(map(str, choices))}")
            changes.append((key, value if kind is bool else kind(value)))
        if not changes:
            raise fail(where, "changes no choice")
        fixes[fix_name] = Fix(
            fix_name,
            _string(table, "label", lambda k, p, w=where: fail(f"{w}.{k}", p)),
            _string(table, "title", lambda k, p, w=where: fail(f"{w}.{k}", p)),
            tuple(changes),
        )
    fixes_in = data.get("fixes_in", [])
    if not isinstance(fixes_in, list) or not all(isinstance(x, str) for x in fixes_in):
        raise fail("fixes_in", "a list of era names")
    expect: dict[str, Expected] = {}
    for cell, variants in _table(data, "expect", fail, required=False).items():
        where = f"expect.{cell}"
        if not isinstance(variants, dict):
            raise fail(where, "a table: rule = NAME, then variant = [violated properties]")
        variants = dict(variants)
        rule = variants.pop("rule", None)
        if not isinstance(rule, str):
            raise fail(f"{where}.rule", "missing: the rule the cell is checked with")
        violated = {}
        for variant, props in variants.items():
            if variant != SHIPPED and variant not in fixes:
                raise fail(f"{where}.{variant}", f"not {SHIPPED} or a fix of this scenario")
            if not isinstance(props, list) or any(p not in PROPERTY_BY_NAME for p in props):
                raise fail(f"{where}.{variant}", "a list of property names")
            violated[variant] = tuple(props)
        expect[cell] = Expected(rule, violated)
    writeup = dict(_table(data, "writeup", fail, required=True))
    for key in ("question", "rule"):
        if writeup.get(key) not in PROPERTY_BY_NAME:
            raise fail(f"writeup.{key}", "a property name")
    for key in _WRITEUP_TEXTS:
        if not isinstance(writeup.get(key), str):
            raise fail(f"writeup.{key}", "missing: a text")
        writeup[key] = " ".join(writeup[key].split())
    conditions = writeup.get("conditions")
    if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
        raise fail("writeup.conditions", "a list of texts")
    return Scenario(
        name=name,
        title=_string(data, "title", fail),
        summary=" ".join(_string(data, "summary", fail).split()),
        shape=Shape(gfns=gfns, huge=huge),
        requires=requires,
        fixes=fixes,
        fixes_in=tuple(fixes_in),
        expect=expect,
        writeup=writeup,
        path=path,
    )
