"""Rules as data: ``specs/rules/<name>.toml``, one file per rule.

A rule file holds the rule's name (its file name), its flush condition as C text
(the single place a rule is written), where it comes from, and its expected
verdict for every property::

    name = "new"
    expression = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"
    summary = "..."

    [origin]
    kernels = "v6.13+"
    commit = "081976992f43"
    function = "leaf_spte_change_needs_tlb_flush()"
    file = "arch/x86/kvm/mmu/spte.h"

    [expect]
    stale_w = "holds"
    ...

Loading validates every file and names the file and field of any problem.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from checker.errors import InputError
from checker.model import (
    PROPERTY_BY_NAME,
    Paths,
    Spte,
)
from checker.model.logic import Logic
from checker.model.paths import CHOICES, Mmu
from checker.rules import cexpr
from checker.rules import formula as F
from checker.rules import memo as parse_memo
from checker.verdict import Verdict, decided

B = TypeVar("B")

RULES_DIRECTORY = "rules"
ORIGIN_KEYS = ("kernels", "era", "commit", "function", "file", "note")
_NAME = re.compile(r"[a-z][a-z0-9_-]*")


class SpecError(InputError):
    """A malformed rule file."""


@dataclass(frozen=True)
class Rule:
    """A flush rule: ``mmu_spte_update`` flushes iff ``formula(old, new)``."""

    name: str
    expression: str
    formula: F.Formula
    summary: str = ""
    origin: dict[str, str] = field(default_factory=dict)
    #: the verdict expected per property, read from the ``[expect]`` table: in the
    #: rule's own era (``origin.era``), for every MMU of it
    expected: dict[str, Verdict] = field(default_factory=dict)
    #: per MMU, the verdicts that differ there (``[expect.tdp]``)
    expected_by_mmu: dict[str, dict[str, Verdict]] = field(default_factory=dict)

    def expected_for(self, era: str, mmu: str) -> dict[str, Verdict]:
        """The verdicts expected in ``era`` under ``mmu``: stated for the rule's own
        era only."""
        if era != self.origin.get("era"):
            return {}
        return {**self.expected, **self.expected_by_mmu.get(mmu, {})}

    #: the file the rule is written in (a spec or a kernel file) and its line
    path: Path | None = None
    line: int = 1
    #: how the command line names it again: ("--rule", name), ("--expr", text), ...
    selector: tuple[str, str] = ("--expr", "")
    #: ``expression`` parsed, where the rule's formula was parsed from it (see
    #: :attr:`parsed`)
    parsed_expression: cexpr.ParsedRule | None = field(default=None, compare=False, repr=False)

    @property
    def parsed(self) -> cexpr.ParsedRule:
        """``expression`` parsed, with where each of its tests is written (to explain
        a decision): from the rule's own parse, or parsed once when first asked for
        (a kernel rule written back as C from its formula)."""
        if self.parsed_expression is not None:
            return self.parsed_expression
        return cexpr.parsed(self.expression)

    def decide(self, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B:
        return F.evaluate(self.formula, logic, old, new, ad_enabled)


#: the distribution name in pyproject.toml; a checkout is recognised by it
PROJECT_NAME = "kvm-flush-checker"
#: where the wheel carries the checkout's top-level ``specs/`` (pyproject.toml's
#: force-include), beside the package's modules
PACKAGED_SPECS = "_specs"


def checkout_root() -> Path | None:
    """The root of the project checkout in use, or None outside any.

    A checkout is a directory holding a ``pyproject.toml`` that names this project
    and a ``specs/`` directory. The current directory and its parents are looked at
    first (an installed checker run inside a checkout, e.g. by a pre-commit hook,
    gates that checkout's rules), then the directory the package was imported from
    (an editable install run from anywhere), so that an edited rule takes effect at
    once. A wheel installed in site-packages has none."""
    candidates = []
    try:
        here = Path.cwd().resolve()
        candidates += [here, *here.parents]
    except OSError:
        pass  # the current directory was removed: only the package's own place is left
    candidates.append(Path(__file__).resolve().parents[2])
    for root in candidates:
        if _is_checkout(root):
            return root
    return None


def _is_checkout(root: Path) -> bool:
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        name = tomllib.loads(text).get("project", {}).get("name")
    except tomllib.TOMLDecodeError:
        return False
    return name == PROJECT_NAME and (root / "specs").is_dir()


def default_specs() -> Path:
    """The specs directory used when ``--specs`` is not given: the checkout's
    ``specs/`` when running from one (``specs`` when that is the current
    directory's, so messages stay short), else the copy shipped in the package."""
    root = checkout_root()
    if root is not None:
        specs = root / "specs"
        return Path("specs") if _same(Path("specs"), specs) else specs
    return packaged_specs()


def packaged_specs() -> Path:
    """The specs shipped inside the installed package (read with importlib.resources)."""
    from importlib import resources

    shipped = resources.files("checker").joinpath(PACKAGED_SPECS)
    if not isinstance(shipped, Path) or not shipped.is_dir():
        # a zip import or a wheel built without the specs: nothing to read them from
        raise SpecError(
            "the installed checker carries no specs directory (checker/_specs); "
            "pass --specs DIR or reinstall it from a wheel"
        )
    return shipped


def is_packaged(specs: Path) -> bool:
    """``specs`` is the copy installed with the package (never to be written to)."""
    try:
        return _same(specs, packaged_specs())
    except SpecError:
        return False


def specs_origin(specs: Path) -> str:
    """``specs`` and where it comes from, for messages: the checkout's, the copy
    installed with the package, or one given with --specs."""
    root = checkout_root()
    if root is not None and _same(specs, root / "specs"):
        return f"{specs} (the checkout's)"
    if is_packaged(specs):
        return f"{specs} (installed with the checker; --specs DIR for others)"
    return str(specs)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.is_dir() and a.resolve() == b.resolve()
    except OSError:
        return False


def rules_directory(specs: Path) -> Path:
    return specs / RULES_DIRECTORY


def load_rules(specs: Path, memo: Path | None = None) -> dict[str, Rule]:
    """Every rule under ``specs/rules``, by name."""
    directory = rules_directory(specs)
    if not directory.exists():
        raise SpecError(
            f"{directory}: no such directory; pass --specs DIR (the folder holding rules/)"
        )
    rules = {}
    for path in _spec_files(directory):
        rule = load_rule(path, memo)
        rules[rule.name] = rule
    if not rules:
        raise SpecError(
            f"{directory}: no rule files (*.toml); add one or pass --specs DIR for another "
            "specs directory"
        )
    return rules


def load_named_rule(specs: Path, name: str, memo: Path | None = None) -> Rule | None:
    """The rule ``name`` under ``specs/rules``, read alone (the others are not
    looked at); None if there is no such file. The directory is refused as
    :func:`load_rules` refuses it. ``memo``: as for :func:`load_rule`."""
    directory = rules_directory(specs)
    if not directory.exists():
        return load_rules(specs).get(name)  # the same error as reading them all
    files = _spec_files(directory)
    if not files:
        return load_rules(specs).get(name)
    path = directory / f"{name}.toml"
    return load_rule(path, memo) if _NAME.fullmatch(name) and path in files else None


def _spec_files(directory: Path) -> list[Path]:
    """The ``*.toml`` files of an existing ``directory``, sorted; a SpecError if it is
    not a directory or cannot be listed (glob would silently find nothing)."""
    if not directory.is_dir():
        raise SpecError(
            f"{directory}: not a directory (it should hold the *.toml files); "
            "pass --specs DIR for another specs directory"
        )
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError as exc:
        raise SpecError(
            f"{directory}: cannot list the directory: {exc.strerror or exc}; "
            "fix its permissions or pass --specs DIR"
        ) from None
    return [directory / name for name in names if name.endswith(".toml")]


def _read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its TOML, or a SpecError naming the file."""
    from checker.files import FileError, read_text

    try:
        text = read_text(path, what="a TOML spec file")
    except FileError as exc:
        raise SpecError(str(exc)) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None


#: how a spec loader reports a field it refuses: a one-line SpecError naming the
#: file and the field
Fail = Callable[[str, str], SpecError]


def _read_spec(path: Path, fields: Sequence[str]) -> tuple[str, dict[str, Any], Fail]:
    """A spec file's text and TOML, with its ``fail`` (a SpecError naming the file
    and a field), once its top-level fields are known to be among ``fields``."""
    text, data = _read_toml(path)

    def fail(key: str, problem: str) -> SpecError:
        return SpecError(f"{path}: field '{key}': {problem}")

    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise fail(unknown[0], f"unknown field (fields: {', '.join(fields)})")
    return text, data, fail


_RULE_FIELDS = ("name", "expression", "summary", "origin", "expect")


def load_rule(path: Path, memo: Path | None = None) -> Rule:
    """The rule in the spec file ``path``; its expression's parse is kept in (and
    read back from) the folder ``memo`` (:mod:`checker.rules.memo`; None: parsed,
    nothing kept)."""
    text, data, fail = _read_spec(path, _RULE_FIELDS)
    name = _string(data, "name", fail)
    if not _NAME.fullmatch(name):
        raise fail("name", f"{name!r} is not a rule name (lowercase letters, digits, '-', '_')")
    if name != path.stem:
        raise fail("name", f"{name!r} differs from the file name; rename one to match")
    expression = _string(data, "expression", fail)
    summary = _string(data, "summary", fail, required=False)
    origin = _table(data, "origin", fail, required=False)
    for key, value in origin.items():
        if key not in ORIGIN_KEYS:
            raise fail(f"origin.{key}", f"unknown field (fields: {', '.join(ORIGIN_KEYS)})")
        if not isinstance(value, str):
            raise fail(f"origin.{key}", "must be a string")
    table = _table(data, "expect", fail, required=True)
    # [expect.tdp]: where one MMU of the rule's era differs
    by_mmu = {
        key: _verdicts(value, f"expect.{key}", fail)
        for key, value in table.items()
        if key in MMU_NAMES and isinstance(value, dict)
    }
    expect = _verdicts({k: v for k, v in table.items() if k not in by_mmu}, "expect", fail)
    missing = [p for p in PROPERTY_BY_NAME if p not in expect]
    if missing:
        raise fail(f"expect.{missing[0]}", "missing: every property needs an expected verdict")

    line, column = _expression_position(text)
    parsed = parse_memo.parse_rule(expression, cexpr.Origin(str(path), line, column), memo)
    return Rule(
        name=name,
        expression=expression,
        formula=parsed.formula,
        summary=summary,
        origin=dict(origin),
        expected={p: expect[p] for p in PROPERTY_BY_NAME},
        expected_by_mmu=by_mmu,
        path=path,
        line=line,
        selector=("--rule", name),
        parsed_expression=parsed,
    )


def _string(data: dict[str, Any], key: str, fail: Any, required: bool = True) -> str:
    if key not in data:
        if required:
            raise fail(key, "missing")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise fail(key, "must be a string")
    if required and not value.strip():
        raise fail(key, "is empty")
    return value


def _table(data: dict[str, Any], key: str, fail: Any, required: bool) -> dict[str, Any]:
    if key not in data:
        if required:
            raise fail(key, "missing")
        return {}
    value = data[key]
    if not isinstance(value, dict):
        raise fail(key, "must be a table")
    return value


def _expression_position(text: str) -> tuple[int, int]:
    """Line and column where the expression's text starts in the TOML source."""
    for number, line in enumerate(text.splitlines(), start=1):
        m = re.match(r"\s*expression\s*=\s*('''|\"\"\"|'|\")", line)
        if m:
            column = m.end() + 1
            if len(m.group(1)) == 3 and not line[m.end() :].strip():
                # a multi-line string starting with a newline: TOML drops that newline
                return number + 1, 1
            return number, column
    return 1, 1


def adhoc_rule(expression: str, name: str = "expr") -> Rule:
    """A rule given on the command line (``--expr``); no expectations."""
    parsed = cexpr.parse_rule(expression, cexpr.Origin("--expr"))
    return Rule(
        name=name,
        expression=expression,
        formula=parsed.formula,
        selector=("--expr", expression),
        parsed_expression=parsed,
    )


# --- eras: what each kernel era does around the rule, per MMU ---------------------------

ERAS_DIRECTORY = "eras"
#: the era of today's kernels: what --era defaults to for a rule that names none
DEFAULT_ERA = "v6.13"

_ERA_FIELDS = ("name", "kernels", "first", "last", "rule", "mmus", "summary", "verified")
_RELEASE = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True)
class Era:
    """``specs/eras/<name>.toml``: what the kernels of one era do around the rule, for
    each MMU they have, each choice with its source."""

    name: str
    #: the releases, in words ("v5.10 .. v5.14")
    kernels: str
    #: the first release (major, minor), and the last (None: up to today)
    first: tuple[int, int]
    last: tuple[int, int] | None
    #: the rule the era's mmu_spte_update used (a name in specs/rules)
    rule: str
    #: per MMU, the era's choices
    paths: dict[Mmu, Paths]
    #: per MMU, per choice, where in the kernel it was read
    sources: dict[Mmu, dict[str, str]]
    summary: str = ""
    #: which trees were read, and what was not
    verified: str = ""
    path: Path | None = None

    @property
    def mmus(self) -> tuple[Mmu, ...]:
        return tuple(self.paths)

    def covers(self, release: tuple[int, int]) -> bool:
        return self.first <= release and (self.last is None or release <= self.last)


def load_eras(specs: Path) -> dict[str, Era]:
    """Every era under ``specs/eras``, by name, oldest first."""
    directory = specs / ERAS_DIRECTORY
    eras = [load_era(path) for path in _spec_files(directory)] if directory.exists() else []
    eras.sort(key=lambda e: e.first)
    return {e.name: e for e in eras}


def load_named_era(specs: Path, name: str) -> Era | None:
    """The era ``name`` under ``specs/eras``, read alone (the others are not looked
    at); None if there is no such file."""
    directory = specs / ERAS_DIRECTORY
    if not directory.exists():
        return None
    path = directory / f"{name}.toml"
    if not _NAME.fullmatch(name.replace(".", "").replace("-", "")):
        return None
    return load_era(path) if path in _spec_files(directory) else None


def era_of_release(eras: dict[str, Era], release: tuple[int, int]) -> Era | None:
    """The era whose releases include ``release``, if one does."""
    return next((e for e in eras.values() if e.covers(release)), None)


def _release(text: str, fail: Any, key: str) -> tuple[int, int]:
    m = _RELEASE.fullmatch(text)
    if m is None:
        raise fail(key, f"{text!r} is not a release like '6.13'")
    return int(m.group(1)), int(m.group(2))


def load_era(path: Path) -> Era:
    mmu_names = [m.value for m in Mmu]
    _, data, fail = _read_spec(path, _ERA_FIELDS + tuple(mmu_names))
    name = _string(data, "name", fail)
    if not _NAME.fullmatch(name.replace(".", "").replace("-", "")):
        raise fail("name", f"{name!r} is not an era name")
    if name != path.stem:
        raise fail("name", f"{name!r} differs from the file name; rename one to match")
    first = _release(_string(data, "first", fail), fail, "first")
    last_text = _string(data, "last", fail, required=False)
    last = _release(last_text, fail, "last") if last_text else None
    if last is not None and last < first:
        raise fail("last", f"{last_text} comes before 'first'")
    mmus = data.get("mmus")
    if not isinstance(mmus, list) or not mmus or any(m not in mmu_names for m in mmus):
        raise fail("mmus", f"a non-empty list of {', '.join(mmu_names)}")
    paths: dict[Mmu, Paths] = {}
    sources: dict[Mmu, dict[str, str]] = {}
    for m in mmus:
        mmu = Mmu(m)
        table = _table(data, m, fail, required=True)
        table = dict(table)
        cited = table.pop("sources", None)
        paths[mmu] = paths_from(
            {"mmu": m, **table}, lambda key, problem, m=m: fail(f"{m}.{key}", problem)
        )
        if not isinstance(cited, dict):
            raise fail(f"{m}.sources", "missing: every choice names where it was read")
        for key in paths_table(paths[mmu]):
            if key != "mmu" and not isinstance(cited.get(key), str):
                raise fail(f"{m}.sources.{key}", "missing: say where the kernel does this")
        sources[mmu] = {k: " ".join(str(v).split()) for k, v in cited.items()}
    for m in mmu_names:
        if m in data and m not in mmus:
            raise fail(m, "a table for an MMU the era does not list in 'mmus'")
    return Era(
        name=name,
        kernels=_string(data, "kernels", fail),
        first=first,
        last=last,
        rule=_string(data, "rule", fail),
        paths=paths,
        sources=sources,
        summary=_string(data, "summary", fail, required=False),
        verified=_string(data, "verified", fail, required=False),
        path=path,
    )


MMU_NAMES = tuple(m.value for m in Mmu)


def _verdicts(table: dict[str, Any], where: str, fail: Any) -> dict[str, Verdict]:
    found: dict[str, Verdict] = {}
    for key, value in table.items():
        if key not in PROPERTY_BY_NAME:
            raise fail(
                f"{where}.{key}", f"unknown property (properties: {', '.join(PROPERTY_BY_NAME)})"
            )
        try:
            found[key] = decided(value)
        except ValueError as exc:
            raise fail(f"{where}.{key}", str(exc)) from None
    return found


def paths_from(table: dict[str, Any], fail: Any) -> Paths:
    """Paths from ``{field: value}``; every field must be given."""
    values: dict[str, Any] = {}
    # a fixed order, so that the field named in an error does not depend on hashing:
    # unknown fields first (a misspelt one is the likely cause of a missing one)
    known = list(CHOICES)
    for key in [*sorted(k for k in table if k not in known), *known]:
        if key not in table:
            raise fail(key, "missing")
        value = table[key]
        kind = CHOICES.get(key)
        if kind is None:
            raise fail(key, f"unknown choice (choices: {', '.join(known)})")
        if kind is bool:
            if not isinstance(value, bool):
                raise fail(key, "must be true or false")
            values[key] = value
        else:
            choices = [c.value for c in kind]  # type: ignore[attr-defined]
            if value not in choices:
                raise fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
            values[key] = kind(value)
    return Paths(**values)


def paths_table(paths: Paths) -> dict[str, str | bool]:
    """``paths`` as plain values, the inverse of :func:`paths_from`."""
    return {
        key: value if isinstance(value, bool) else value.value
        for key, value in ((k, getattr(paths, k)) for k in CHOICES)
    }
