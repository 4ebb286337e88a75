"""Rule files: the shipped ones load, malformed ones are rejected by file and field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from checker.errors import InputError
from checker.model import PROPERTY_BY_NAME, Paths
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
    assert named == {"harvest_flush: missing\n"}


# --- eras ------------------------------------------------------------------------

PROFILE = """\
name = "mine"
summary = "s"
[paths]
harvest_flush = "reaped"
enable_flush = "always"
aging_without_ad = "access_track"
prefetch_refresh = true
"""


def test_shipped_profiles_state_their_assumptions() -> None:
    eras = load_eras(SPECS)
    assert {"default", "v6.13", "v4.10-v5.19", "v3.x"} <= set(eras)
    assert eras["default"].paths == Paths()
    for era in eras.values():
        assert era.summary and era.kernels and era.assumes, era.name


def test_a_good_profile_loads(tmp_path: Path) -> None:
    path = tmp_path / "eras" / "mine.toml"
    path.parent.mkdir()
    path.write_text(PROFILE)
    assert load_era(path).paths == Paths()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace('"reaped"', '"sometimes"'),
            "field 'paths.harvest_flush': expected one of reaped, changed, always, never, locked",
        ),
        (
            lambda t: t.replace('enable_flush = "always"\n', ""),
            "field 'paths.enable_flush': missing",
        ),
        (
            lambda t: t.replace("true", '"yes"'),
            "field 'paths.prefetch_refresh': must be true or false",
        ),
        (lambda t: t + 'zap_flush = "never"\n', "field 'paths.zap_flush': unknown path"),
        (lambda t: t.replace('name = "mine"', 'name = "yours"'), "differs from the file name"),
        (lambda t: t.replace("[paths]", "[pathz]"), "field 'pathz': unknown field"),
    ],
)
def test_malformed_profiles(tmp_path: Path, edit: object, message: str) -> None:
    path = tmp_path / "eras" / "mine.toml"
    path.parent.mkdir()
    path.write_text(edit(PROFILE))  # type: ignore[operator]
    with pytest.raises(SpecError) as info:
        load_era(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_fifo_rule_file_is_refused_not_waited_on(tmp_path: Path, deadline: None) -> None:
    (tmp_path / "rules").mkdir()
    os.mkfifo(tmp_path / "rules" / "new.toml")
    with pytest.raises(SpecError, match=r"new.toml: not a regular file \(a FIFO\)"):
        load_rules(tmp_path)
