"""Rule sets for the gate's tests: the shipped rules, edited the ways a change can go."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from checker.rules.specs import Rule
from checker.verdict import Verdict

NEW = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"
LEGACY = "is_writable_pte(old_spte) && !is_writable_pte(new_spte)"


def with_rules(shipped: dict[str, Rule], **replaced: Rule) -> list[Rule]:
    """The shipped rules, some replaced."""
    return [replaced.get(name, rule) for name, rule in shipped.items()]


def new_regressed(shipped: dict[str, Rule]) -> list[Rule]:
    """``new`` rewritten to the legacy condition, its expectation for stale_w edited
    to match: stale_w and write_tracking regress, precision violates its [expect]."""
    new = dataclasses.replace(
        shipped["new"],
        expression=LEGACY,
        formula=shipped["legacy"].formula,
        expected={**shipped["new"].expected, "stale_w": Verdict.VIOLATED},
    )
    return with_rules(shipped, new=new)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity and no user configuration."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "gate test",
        "GIT_AUTHOR_EMAIL": "gate@example.invalid",
        "GIT_COMMITTER_NAME": "gate test",
        "GIT_COMMITTER_EMAIL": "gate@example.invalid",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def scratch_repository(tmp_path: Path, specs: Path) -> Path:
    """A git repository at ``tmp_path/repo`` with a copy of ``specs`` committed."""
    repo = tmp_path / "repo"
    shutil.copytree(specs, repo / "specs")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "specs")
    return repo
