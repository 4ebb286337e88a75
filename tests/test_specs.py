"""Rule files: the shipped ones load, malformed ones are rejected by file and field."""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checker.errors import InputError
from checker.model import PROPERTY_BY_NAME, Paths
from checker.model.paths import CHOICES, Mmu
from checker.rules.specs import SpecError, load_era, load_eras, load_rule, load_rules

from .conftest import SPECS

GOOD = """\
name = "mine"
expression = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"

[expect]
stale_w = "holds"
write_tracking = "holds"
dirty_log = "holds"
encoding = "holds"
assertion = "holds"
precision = "holds"
"""


def write(tmp_path: Path, text: str, name: str = "mine") -> Path:
    path = tmp_path / "rules" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_shipped_rules_load_with_every_expectation() -> None:
    rules = load_rules(SPECS)
    assert set(rules) == {"old", "new", "legacy"}
    for rule in rules.values():
        assert set(rule.expected) == set(PROPERTY_BY_NAME)
        assert rule.path is not None and rule.path.name == f"{rule.name}.toml"
        assert rule.path.read_text().splitlines()[rule.line - 1].startswith("expression")


def test_a_good_file_loads(tmp_path: Path) -> None:
    rule = load_rule(write(tmp_path, GOOD))
    assert rule.name == "mine" and rule.line == 2


def test_multiline_expression_positions(tmp_path: Path) -> None:
    text = GOOD.replace(
        'expression = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"',
        "expression = '''\nis_mmu_writable_spte(old_spte) &&\n"
        "  !is_mmu_writeable_spte(new_spte)'''",
    )
    with pytest.raises(
        InputError, match=r"mine.toml:4:4: unknown identifier 'is_mmu_writeable_spte'"
    ):
        load_rule(write(tmp_path, text))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace('name = "mine"', 'name = "other"'),
            "field 'name': 'other' differs from the file name",
        ),
        (lambda t: t.replace('name = "mine"\n', ""), "field 'name': missing"),
        (lambda t: t.replace('name = "mine"', "name = 3"), "field 'name': must be a string"),
        (
            lambda t: t.replace(
                'expression = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"',
                'expression = "  "',
            ),
            "field 'expression': is empty",
        ),
        (
            lambda t: t.replace('precision = "holds"', 'precision = "maybe"'),
            "field 'expect.precision': expected 'holds' or 'violated', got 'maybe'",
        ),
        (
            lambda t: t.replace('precision = "holds"', 'precision = "inconclusive"'),
            "field 'expect.precision': expected 'holds' or 'violated', got 'inconclusive'",
        ),
        (lambda t: t.replace('precision = "holds"\n', ""), "field 'expect.precision': missing"),
        (lambda t: t + 'bogus = "holds"\n', "field 'expect.bogus': unknown property"),
        (lambda t: "colour = 1\n" + t, "field 'colour': unknown field"),
        (
            lambda t: t.replace("[expect]", "[origin]\ncommit = 5\n[expect]"),
            "field 'origin.commit': must be a string",
        ),
        (
            lambda t: t.replace("[expect]", "[origin]\nauthor = 'x'\n[expect]"),
            "field 'origin.author': unknown field",
        ),
        (lambda t: t[: t.index("[expect]")] + "expect = 1\n", "field 'expect': must be a table"),
        (lambda t: t.replace('= "holds"', "= holds", 1), "invalid TOML"),
        (
            lambda t: t.replace(
                "is_mmu_writable_spte(old_spte)", "is_mmu_writeable_spte(old_spte)"
            ),
            "mine.toml:2:15: unknown identifier 'is_mmu_writeable_spte'",
        ),
    ],
)
def test_malformed_files_name_file_and_field(tmp_path: Path, edit: object, message: str) -> None:
    path = write(tmp_path, edit(GOOD))  # type: ignore[operator]
    with pytest.raises(InputError) as info:
        load_rule(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_directory_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such directory; pass --specs DIR"):
        load_rules(tmp_path)


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    with pytest.raises(SpecError, match="no rule files"):
        load_rules(tmp_path)


def test_a_file_where_a_directory_should_be_says_so(tmp_path: Path) -> None:
    (tmp_path / "rules").write_text("")
    with pytest.raises(SpecError) as info:
        load_rules(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'rules'}: not a directory (it should hold the *.toml files); "
        "pass --specs DIR for another specs directory"
    )


def test_an_unreadable_directory_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000 (faked: root reads anyway): globbing found nothing and said "no rule
    files"."""
    for name in ("rules", "eras"):
        (tmp_path / name).mkdir()
    (tmp_path / "rules" / "new.toml").write_text((SPECS / "rules" / "new.toml").read_text())

    def denied(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", denied)
    for load in (load_rules, load_eras):
        with pytest.raises(SpecError) as info:
            load(tmp_path)
        assert str(info.value).endswith(
            ": cannot list the directory: Permission denied; fix its permissions or pass "
            "--specs DIR"
        )


def test_the_missing_path_named_does_not_depend_on_the_hash_seed() -> None:
    """An empty [paths] table: the field named came from iterating a set of strings.
    Seeds 0 and 2 ordered that set differently."""
    code = (
        "from checker.rules.specs import SpecError, paths_from\n"
        "try:\n    paths_from({}, lambda key, problem: SpecError(f'{key}: {problem}'))\n"
        "except SpecError as e:\n    print(e)\n"
    )
    named = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "2")
    }
    # the first choice, in CHOICES' order: the MMU
    assert named == {"mmu: missing\n"}


# --- eras ------------------------------------------------------------------------

ERA = """\
name = "mine"
kernels = "v9.0 .. v9.1"
first = "9.0"
last = "9.1"
rule = "new"
mmus = ["shadow"]
summary = "s"

[shadow]
harvest_flush = "reaped"
enable_flush = "always"
aging_without_ad = "access_track"
prefetch = "refresh"
sync = "changed_access"
fault_flush = "none"
write_protect = "mmu_writable"
aging_asserted = false
fast_page_fault = true
initially_set = true
pml = false
tdp_atomic_writes = true
huge_write_protect = "at_clear"
eager_split = "clear"
fast_huge = "refuse_logged"
huge_fault = "zap"

[shadow.sources]
harvest_flush = "a"
enable_flush = "b"
aging_without_ad = "c"
prefetch = "d"
sync = "e"
fault_flush = "f"
write_protect = "g"
aging_asserted = "h"
fast_page_fault = "i"
initially_set = "j"
pml = "k"
tdp_atomic_writes = "l"
huge_write_protect = "m"
eager_split = "n"
fast_huge = "o"
huge_fault = "p"
"""


def test_shipped_eras_state_their_sources() -> None:
    eras = load_eras(SPECS)
    assert {"v3.x", "v4.10-v5.6", "v6.0-v6.1", "v6.4-v6.12", "v6.13"} <= set(eras)
    assert "default" not in eras
    # oldest first, each release in at most one era
    firsts = [era.first for era in eras.values()]
    assert firsts == sorted(firsts)
    for before, after in itertools.pairwise(eras.values()):
        assert before.last is not None and before.last < after.first, before.name
    rules = load_rules(SPECS)
    for era in eras.values():
        assert era.summary and era.kernels and era.rule in rules, era.name
        for mmu, paths in era.paths.items():
            assert paths.mmu is mmu
            assert set(era.sources[mmu]) >= set(CHOICES) - {"mmu"}, (era.name, mmu)
    # Paths() is the shadow MMU of v6.4 .. v6.12, without PML (a smaller default)
    assert dataclasses.replace(eras["v6.4-v6.12"].paths[Mmu.SHADOW], pml=False) == Paths()
    # each rule's own era is a shipped era
    for rule in rules.values():
        assert rule.origin["era"] in eras, rule.name


def test_a_good_era_loads(tmp_path: Path) -> None:
    path = tmp_path / "eras" / "mine.toml"
    path.parent.mkdir()
    path.write_text(ERA)
    era = load_era(path)
    assert era.paths == {Mmu.SHADOW: Paths()} and era.mmus == (Mmu.SHADOW,)
    assert era.first == (9, 0) and era.last == (9, 1) and era.covers((9, 1))
    assert not era.covers((9, 2))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace('"reaped"', '"sometimes"'),
            "field 'shadow.harvest_flush': expected one of reaped, changed, always, never, locked",
        ),
        (
            lambda t: t.replace('enable_flush = "always"\n', ""),
            "field 'shadow.enable_flush': missing",
        ),
        (
            lambda t: t.replace("aging_asserted = false", 'aging_asserted = "no"'),
            "field 'shadow.aging_asserted': must be true or false",
        ),
        (
            lambda t: t.replace("[shadow.sources]", 'zap_flush = "never"\n[shadow.sources]'),
            "field 'shadow.zap_flush': unknown choice",
        ),
        (
            lambda t: t.replace('sync = "e"\n', ""),
            "field 'shadow.sources.sync': missing",
        ),
        (lambda t: t.replace('name = "mine"', 'name = "yours"'), "differs from the file name"),
        (lambda t: t.replace("[shadow]", "[pathz]"), "field 'pathz': unknown field"),
        (lambda t: t.replace('mmus = ["shadow"]', 'mmus = ["ept"]'), "field 'mmus'"),
        (
            lambda t: t.replace('mmus = ["shadow"]', 'mmus = ["shadow", "tdp"]'),
            "field 'tdp'",
        ),
        (lambda t: t.replace('last = "9.1"', 'last = "8.9"'), "comes before 'first'"),
        (lambda t: t.replace('first = "9.0"', 'first = "nine"'), "is not a release"),
    ],
)
def test_malformed_eras(tmp_path: Path, edit: object, message: str) -> None:
    path = tmp_path / "eras" / "mine.toml"
    path.parent.mkdir()
    path.write_text(edit(ERA))  # type: ignore[operator]
    with pytest.raises(SpecError) as info:
        load_era(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_fifo_rule_file_is_refused_not_waited_on(tmp_path: Path, deadline: None) -> None:
    (tmp_path / "rules").mkdir()
    os.mkfifo(tmp_path / "rules" / "new.toml")
    with pytest.raises(SpecError, match=r"new.toml: not a regular file \(a FIFO\)"):
        load_rules(tmp_path)
