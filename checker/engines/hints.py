"""Hints: what Spacer found in an earlier run, kept to be checked again, never trusted.

Spacer's search is most of the cost of a proof, and of finding how few vCPUs show a
violation. For the same inputs it finds the same answer, so a run keeps what it
found, one small file per property, and the next run with the same inputs starts
from it:

* a proof: the invariant and the vCPUs Spacer searched with. The next run certifies
  that invariant at N vCPUs (initiation, consecution and safety, three plain
  queries) and then for every number of vCPUs, as it would Spacer's; only if it does
  not certify does Spacer run.
* a violation shown with one vCPU (the fewest there are): its shortest trace's
  length. The next run asks BMC for the shortest trace with one vCPU, searching no
  deeper than that length; only if BMC finds none does Spacer run. The trace is
  replayed through the step function as always.

So the verdict is decided in the run itself, by certification or by a replayed
trace: a hint changes what a run costs, never what it answers. A hint that is
false, stale, truncated, of another format or unreadable is ignored (the run
does what it does without one); writing one that fails is ignored too.

The key covers every input of the search: the checker's own source (every module,
hashed, so any change to the model, the encoding or the engines makes a new key),
z3's version, the rule's formula, the paths, the shape, the vCPUs, the property and
the z3 work budget. A hint found under the same key is what Spacer would find
again, so a run prints the same bytes with or without one.

Where: ``$CHECKER_CACHE_DIR``, else ``$XDG_CACHE_HOME/kvm-flush-checker``, else
``~/.cache/kvm-flush-checker``; ``CHECKER_CACHE=0`` turns hints off (so does the
CLI's ``--no-cache``). Files are canonical JSON, the same bytes for the same
hint, written atomically. A folder holds the hints of one version of the
checker's source; the most recent few are kept and older ones removed. The whole
cache may be deleted at any time. The same folders keep the parsed rule
expressions of :mod:`checker.rules.memo`, which go with them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.engines.invariant import SLOT_NAMES, Invariant, Lemma, Lit, Var
from checker.engines.smt import Budget, z3_version
from checker.files import FileError, read_text, write_text
from checker.limits import MAX_DEPTH
from checker.model import Property, System
from checker.model.declaration import model_for
from checker.rules.specs import Rule, paths_table
from checker.source import source_sha256

SCHEMA = "checker.hint/1"
#: the folder under the user's cache folder
CACHE_NAME = "kvm-flush-checker"
#: hints of this many versions of the checker's source are kept
KEEP_VERSIONS = 8
#: the largest hint file read (a shipped rule's is under 2 KiB)
MAX_HINT_BYTES = 1 << 20
#: the most lemmas a hint may hold, literals per lemma, and vCPUs a lemma is about
#: (a shipped rule's invariants have at most five lemmas, each about one vCPU)
MAX_LEMMAS = 1_000
MAX_LITERALS = 1_000
MAX_SLOTS = len(SLOT_NAMES) - 1
#: the most clauses a hint's invariant may become over N vCPUs (its lemmas times
#: the ways to pick their vCPUs among N): certifying a hint must not cost more
#: than a search would
MAX_CLAUSES = 1_000_000

_VERSION_FOLDER = re.compile(r"[0-9a-f]{16}")
_HINT_FILE = re.compile(r"[0-9a-f]{64}\.json")


@dataclass(frozen=True)
class ProofHint:
    """A proof's invariant and the vCPUs Spacer found it with."""

    invariant: Invariant
    found_with: int


@dataclass(frozen=True)
class ViolationHint:
    """A violation with one vCPU, whose shortest trace has ``length`` steps."""

    length: int


Hint = ProofHint | ViolationHint


def store_from_environment(environ: Mapping[str, str] | None = None) -> HintStore | None:
    """The store the environment names (see the module docstring); None when hints
    are turned off or no folder can be named."""
    env = os.environ if environ is None else environ
    if env.get("CHECKER_CACHE", "").strip().lower() in ("0", "false", "no", "off"):
        return None
    if env.get("CHECKER_CACHE_DIR"):
        return HintStore(Path(env["CHECKER_CACHE_DIR"]))
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return HintStore(Path(xdg) / CACHE_NAME)
    home = env.get("HOME", "")
    if home and os.path.isabs(home):
        return HintStore(Path(home) / ".cache" / CACHE_NAME)
    return None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class HintStore:
    """The hints kept in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def key(
        self, system: System, prop: Property, vcpus: int, budget: Budget
    ) -> dict[str, Any] | None:
        """Everything a hint for this search depends on; None if hints do not apply
        (a model or a rule other than the checker's own kind, declared by a test)."""
        source = source_sha256()
        if (
            source is None
            or system.model is not model_for(system.paths, system.shape.huge)
            or type(system.rule) is not Rule
        ):
            return None
        shape = system.shape
        return {
            "checker_source_sha256": source,
            "z3": z3_version(),
            "formula_sha256": _sha256(repr(system.rule.formula)),
            "paths": paths_table(system.paths),
            "shape": {
                "gfns": shape.gfns,
                "spte_of": list(shape.spte_of or ()),
                "host_threads": shape.host_threads,
                **({"huge": True} if shape.huge else {}),
            },
            "vcpus": vcpus,
            "property": prop.name,
            "rlimit": budget.rlimit,
        }

    def _path(self, key: dict[str, Any]) -> Path:
        name = _sha256(json.dumps(key, sort_keys=True))
        source: str = key["checker_source_sha256"]
        return self.directory / source[:16] / f"{name}.json"

    def recall(self, system: System, prop: Property, vcpus: int, budget: Budget) -> Hint | None:
        """The hint kept for this search, if there is a well-formed one."""
        key = self.key(system, prop, vcpus, budget)
        if key is None:
            return None
        try:
            text = read_text(self._path(key), MAX_HINT_BYTES, "a hint file")
        except FileError:
            return None
        try:
            return _parse(json.loads(text), key, system, vcpus)
        except Exception:
            # whatever is wrong with a hint file (bad JSON, wrong types, a lemma the
            # model has no variable for), it is not a hint: the search runs
            return None

    def keep(self, system: System, prop: Property, vcpus: int, budget: Budget, hint: Hint) -> None:
        """Keep ``hint`` for this search (nothing happens if it cannot be written)."""
        key = self.key(system, prop, vcpus, budget)
        if key is None:
            return
        path = self._path(key)
        new_version = not path.parent.is_dir()
        try:
            write_text(path, render(key, hint))
        except FileError:
            return
        if new_version:
            self._prune(path.parent)

    def _prune(self, current: Path) -> None:
        """Remove the hints of all but the most recent :data:`KEEP_VERSIONS` versions
        of the source. Only hint files and the folders they leave empty are removed;
        anything else is left where it is."""
        try:
            folders = [
                entry
                for entry in os.scandir(self.directory)
                if _VERSION_FOLDER.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
            ]
            folders.sort(key=lambda e: (e.stat(follow_symlinks=False).st_mtime, e.name))
        except OSError:
            return
        old = [Path(f.path) for f in folders if Path(f.path) != current]
        for folder in old[: max(0, len(old) - (KEEP_VERSIONS - 1))]:
            try:
                for entry in os.scandir(folder):
                    if _HINT_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path)
                folder.rmdir()
            except OSError:
                continue


def render(key: dict[str, Any], hint: Hint) -> str:
    """A hint file's text: canonical JSON, the same bytes for the same hint."""
    data: dict[str, Any] = {"schema": SCHEMA, "key": key}
    if isinstance(hint, ProofHint):
        data["proof"] = {"found_with": hint.found_with, "lemmas": hint.invariant.to_json()}
    else:
        data["violation"] = {"vcpus": 1, "length": hint.length}
    return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=True) + "\n"


def _int(value: Any, least: int, most: int) -> int:
    if type(value) is not int or not least <= value <= most:
        raise ValueError(f"{value!r} is not an integer in {least}..{most}")
    return value


def _parse(data: Any, key: dict[str, Any], system: System, vcpus: int) -> Hint:
    """The hint in ``data``; a ValueError (or TypeError, KeyError) for anything
    that is not exactly a hint of this format, for this key."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("key") != key:
        raise ValueError("not a hint for this search")
    if set(data) == {"schema", "key", "violation"}:
        violation = data["violation"]
        if not isinstance(violation, dict) or set(violation) != {"vcpus", "length"}:
            raise ValueError("malformed violation")
        _int(violation["vcpus"], 1, 1)
        return ViolationHint(_int(violation["length"], 1, MAX_DEPTH))
    if set(data) != {"schema", "key", "proof"}:
        raise ValueError("neither a proof nor a violation")
    proof = data["proof"]
    if not isinstance(proof, dict) or set(proof) != {"found_with", "lemmas"}:
        raise ValueError("malformed proof")
    found_with = _int(proof["found_with"], 1, vcpus)
    stored = proof["lemmas"]
    if not isinstance(stored, list) or len(stored) > MAX_LEMMAS:
        raise ValueError("malformed lemmas")
    shared = set(system.model.shared_names(system.shape))
    per_vcpu = set(system.model.vcpu_names(system.shape))
    lemmas = []
    clauses = 0
    for entry in stored:
        if not isinstance(entry, dict) or set(entry) != {"slots", "clause", "text"}:
            raise ValueError("malformed lemma")
        slots = _int(entry["slots"], 0, min(found_with, MAX_SLOTS))
        clauses += math.perm(vcpus, slots)
        if clauses > MAX_CLAUSES:
            raise ValueError("too many clauses")
        clause = entry["clause"]
        if not isinstance(clause, list) or not 0 < len(clause) <= MAX_LITERALS:
            raise ValueError("malformed clause")
        lits = []
        for lit in clause:
            if not isinstance(lit, dict) or set(lit) != {"var", "slot", "positive"}:
                raise ValueError("malformed literal")
            name, slot, positive = lit["var"], lit["slot"], lit["positive"]
            if slot is not None:
                slot = _int(slot, 0, slots - 1)
            if name not in (shared if slot is None else per_vcpu) or type(positive) is not bool:
                raise ValueError("unknown variable")
            lits.append(Lit(Var(name, slot), positive))
        lemma = Lemma(slots, tuple(lits))
        if entry["text"] != lemma.render():
            raise ValueError("the lemma's text is not its clause")
        lemmas.append(lemma)
    invariant = Invariant(tuple(lemmas))
    if Invariant.of(lemmas) != invariant:
        raise ValueError("the lemmas are not in canonical form")
    return ProofHint(invariant, found_with)
