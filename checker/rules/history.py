"""``specs/history/<id>.toml``: the kernel-history regression suite.

Each entry is one commit (or one event without a commit) that changed what the
rule has to do, stated as two checks of one property on one MMU: the rule and era
before the change, and the rule and era after it, each with the verdict the model
must give. Most commits fix a bug (violated before, holds after); a few are
recorded the other way round, e.g. the legacy rule that a commit made unsound
(holds before, violated after), so both expectations may be either verdict.

Entries are validated against the specs they live in: every era, rule, property
and MMU an entry names must exist, and each era must have that MMU. Errors are one
line naming the file and the field, as for rules and eras.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.model import PROPERTY_BY_NAME, Paths, Property
from checker.model.paths import Mmu
from checker.model.vocabulary import CONFIG_FIELDS
from checker.rules.specs import (
    Era,
    Rule,
    SpecError,
    _read_spec,
    _spec_files,
    _string,
    load_eras,
    load_rules,
)
from checker.verdict import Verdict, decided

HISTORY_DIRECTORY = "history"

#: an entry's fields, in the order a file lists them
FIELDS = (
    "id",
    "title",
    "mmu",
    "property",
    "rule_before",
    "era_before",
    "expect_before",
    "rule_after",
    "era_after",
    "expect_after",
    "configuration",
    "why",
)
#: a short commit id (``198c74f43f0f``), or a slug for an event without one, or a
#: commit id with a suffix when one commit has several entries
_ID = re.compile(r"[a-z0-9][a-z0-9.-]*")


@dataclass(frozen=True)
class Side:
    """One side of an entry: a rule checked in one era's paths for one MMU, and the
    verdict the model must give."""

    rule: Rule
    era: str
    paths: Paths
    expect: Verdict
    #: configuration fields held at one value on this side, as (field, value) pairs
    configuration: tuple[tuple[str, bool], ...] = ()

    @property
    def label(self) -> str:
        """``v6.13/tdp``: the era and MMU, as ``checker check`` labels its paths."""
        return f"{self.era}/{self.paths.mmu.value}"


@dataclass(frozen=True)
class Entry:
    """``specs/history/<id>.toml``: one change in the kernel's history as two checks
    of ``prop`` on ``mmu``."""

    id: str
    title: str
    mmu: Mmu
    prop: Property
    before: Side
    after: Side
    why: str
    path: Path | None = None

    @property
    def sides(self) -> tuple[tuple[str, Side], tuple[str, Side]]:
        """``("before", ...)`` and ``("after", ...)``, in that order."""
        return (("before", self.before), ("after", self.after))


def history_directory(specs: Path) -> Path:
    return specs / HISTORY_DIRECTORY


def load_history(
    specs: Path, eras: dict[str, Era] | None = None, rules: dict[str, Rule] | None = None
) -> tuple[Entry, ...]:
    """Every entry under ``specs/history``, sorted by id, each validated against
    ``eras`` and ``rules`` (by default the ones in ``specs``)."""
    directory = history_directory(specs)
    if not directory.exists():
        raise SpecError(
            f"{directory}: no such directory; pass --specs DIR (the folder holding history/)"
        )
    eras = load_eras(specs) if eras is None else eras
    rules = load_rules(specs) if rules is None else rules
    entries = [load_entry(path, eras, rules) for path in _spec_files(directory)]
    if not entries:
        raise SpecError(f"{directory}: no history entries (*.toml); add one or pass --specs DIR")
    # ids equal file stems, which are unique in one directory
    return tuple(sorted(entries, key=lambda e: e.id))


def load_entry(path: Path, eras: dict[str, Era], rules: dict[str, Rule]) -> Entry:
    """The entry in ``path``; a one-line SpecError naming the file and the field
    for anything it gets wrong, or anything it names that the specs lack."""
    _, data, fail = _read_spec(path, FIELDS)
    entry_id = _string(data, "id", fail)
    if not _ID.fullmatch(entry_id):
        raise fail(
            "id",
            f"{entry_id!r} is not a short commit id or slug (lowercase letters, digits, '.', '-')",
        )
    if entry_id != path.stem:
        raise fail("id", f"{entry_id!r} differs from the file name; rename one to match")
    mmu_names = [m.value for m in Mmu]
    mmu_name = _string(data, "mmu", fail)
    if mmu_name not in mmu_names:
        raise fail("mmu", f"unknown MMU {mmu_name!r} (MMUs: {', '.join(mmu_names)})")
    mmu = Mmu(mmu_name)
    prop_name = _string(data, "property", fail)
    if prop_name not in PROPERTY_BY_NAME:
        raise fail(
            "property",
            f"unknown property {prop_name!r} (properties: {', '.join(PROPERTY_BY_NAME)})",
        )
    configuration = _configuration(data, fail)
    before = _side(data, "before", mmu, eras, rules, fail, configuration)
    after = _side(data, "after", mmu, eras, rules, fail, configuration)
    if (before.rule.name, before.era) == (after.rule.name, after.era):
        # the same check twice cannot show a change
        raise fail(
            "era_after",
            "before and after check the same rule in the same era; change the rule or the era",
        )
    return Entry(
        id=entry_id,
        title=" ".join(_string(data, "title", fail).split()),
        mmu=mmu,
        prop=PROPERTY_BY_NAME[prop_name],
        before=before,
        after=after,
        why=" ".join(_string(data, "why", fail).split()),
        path=path,
    )


def _side(
    data: dict[str, Any],
    side: str,
    mmu: Mmu,
    eras: dict[str, Era],
    rules: dict[str, Rule],
    fail: Any,
    configuration: tuple[tuple[str, bool], ...] = (),
) -> Side:
    """The ``side`` ("before" or "after") of an entry: its rule, its era's paths for
    ``mmu``, and its expected verdict."""
    rule_key, era_key, expect_key = f"rule_{side}", f"era_{side}", f"expect_{side}"
    rule_name = _string(data, rule_key, fail)
    if rule_name not in rules:
        raise fail(rule_key, f"unknown rule {rule_name!r} (rules: {', '.join(sorted(rules))})")
    era_name = _string(data, era_key, fail)
    if era_name not in eras:
        raise fail(era_key, f"unknown era {era_name!r} (eras: {', '.join(eras)})")
    era = eras[era_name]
    if mmu not in era.paths:
        has = ", ".join(m.value for m in era.mmus)
        raise fail(era_key, f"era {era_name!r} has no {mmu.value} MMU (it has: {has})")
    if expect_key not in data:
        raise fail(expect_key, "missing")
    try:
        expect = decided(data[expect_key])
    except ValueError as exc:
        raise fail(expect_key, str(exc)) from None
    paths = era.paths[mmu]
    if dict(configuration).get("pml") and not paths.pml:
        raise fail("configuration", f"era {era_name!r} has no PML (its paths say pml = false)")
    return Side(
        rule=rules[rule_name],
        era=era_name,
        paths=paths,
        expect=expect,
        configuration=configuration,
    )


def _configuration(data: dict[str, Any], fail: Any) -> tuple[tuple[str, bool], ...]:
    """The optional ``configuration`` table: configuration fields (``ad_enabled``,
    ``pml``) held at one value on both sides, e.g. ``{ pml = true }`` for a bug that
    needs dirty logging by Dirty bits."""
    table = data.get("configuration", {})
    if not isinstance(table, dict):
        raise fail("configuration", "not a table (e.g. configuration = { pml = true })")
    found = []
    for name in CONFIG_FIELDS:
        if name in table:
            value = table[name]
            if not isinstance(value, bool):
                raise fail(f"configuration.{name}", "not true or false")
            found.append((name, value))
    unknown = sorted(set(table) - set(CONFIG_FIELDS))
    if unknown:
        raise fail(
            f"configuration.{unknown[0]}",
            f"unknown configuration field (fields: {', '.join(CONFIG_FIELDS)})",
        )
    return tuple(found)
