"""The lockfile: every rule's verdicts, pinned with the hashes they rest on.

``specs/verdicts.lock.json`` is written by ``checker gate --update`` and read by
``checker gate``. It holds

* ``model``: ``sha256`` of the model's encoding (:func:`model_sha256`) and the
  settings it was taken with (era, paths, vCPUs, depth bound);
* ``versions``: checker and z3, for information only (a version change alone never
  makes the lock stale; a hash that changes with it does);
* per rule: ``expression_sha256`` (:func:`expression_sha256`), ``formula`` (the
  rule translated into model terms, e.g. ``MW(old) && !MW(new)``), and per
  property its ``verdict`` with the evidence behind it: for a violation
  ``counterexample = {length, sha256, actions}`` (:func:`trace_sha256`), for a
  proof ``invariant = {sha256, lemmas}`` (:func:`invariant_sha256`).

The readable fields (``formula``, ``actions``, ``lemmas``) make a lock diff
reviewable; they are derived from the same results as the hashes and compared
with them. The file is canonical JSON (sorted keys, two-space indent, a final
newline, no timestamps): the same results give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checker.errors import InputError, quoted
from checker.rules.cexpr import strip_comments
from checker.verdict import Verdict, decided

if TYPE_CHECKING:
    from checker.engines.check import PropertyResult
    from checker.engines.invariant import Invariant
    from checker.engines.trace import Trace
    from checker.model import Paths
    from checker.rules.specs import Rule

SCHEMA = "checker.verdicts-lock/1"
LOCK_NAME = "verdicts.lock.json"
ABOUT = (
    "Verdicts of every rule in specs/rules, pinned by 'checker gate'. Regenerate with "
    "'checker gate --update' (or 'make lock') and commit; do not edit by hand."
)


class LockError(InputError):
    """A lockfile that cannot be read."""


def default_lock_path(specs: Path) -> Path:
    return specs / LOCK_NAME


# --- hashes -------------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_expression(expression: str) -> str:
    """The C text without comments or layout: whitespace is dropped, except one
    space between two word characters (``a && b``, ``a&&b`` and a two-line
    version with a comment all normalise to ``a&&b``)."""
    text = " ".join(strip_comments(expression).split())
    return re.sub(r"(?<!\w) | (?!\w)", "", text)


def expression_sha256(rule: Rule) -> str:
    """sha256 of :func:`normalise_expression` of the rule's C text."""
    return _sha256(normalise_expression(rule.expression))


def invariant_sha256(invariant: Invariant) -> str:
    """sha256 of the invariant's lemmas as canonical JSON."""
    return _sha256(json.dumps(invariant.to_json(), sort_keys=True))


def canonical_trace(trace: Trace) -> list[Any]:
    """A trace as plain values: every state (all fields, every TLB entry) and every
    action with the outcome it had. Nothing about versions, files or commands."""
    from checker.model.vocabulary import leaves

    def state(s: Any) -> dict[str, Any]:
        # the vocabulary's names (the era's model: its locals): with one SPTE and
        # one gfn, the fields of both by name, and each vCPU's TLB entry in "tlbs"
        values: dict[str, Any] = dict(
            zip(s.model.shared_names(s.shape), leaves(s.shared), strict=True)
        )
        tlbs = [[s.tlb(v, g).label for g in range(s.shape.gfns)] for v in range(s.vcpu_count)]
        values["tlbs"] = [t[0] for t in tlbs] if s.shape.gfns == 1 else tlbs
        if s.model.locals:
            values["locals"] = [list(record.local) for record in s.vcpus]
        return values

    steps: list[Any] = [state(trace.initial)]
    for step in trace.steps:
        out = step.outcome
        gfn = {} if step.action.gfn is None else {"gfn": step.action.gfn}
        steps.append(
            {
                **gfn,
                "operation": step.action.op,
                "vcpu": step.action.vcpu,
                "params": [[name, value] for name, value in step.action.params],
                "flush": out.flush,
                "rule_consulted": out.rule_consulted,
                "rule_flush": out.rule_flush if out.rule_consulted else False,
                "after": state(step.after),
            }
        )
    return steps


def trace_sha256(trace: Trace) -> str:
    """sha256 of :func:`canonical_trace` as canonical JSON."""
    return _sha256(json.dumps(canonical_trace(trace), sort_keys=True))


def action_labels(trace: Trace) -> list[str]:
    """``vcpu0 page_fault(host_writable)``, ``host aging``, ... one per step."""
    return [
        f"{'host' if s.action.vcpu is None else f'vcpu{s.action.vcpu}'} {s.action.label}"
        for s in trace.steps
    ]


class OpaqueRule:
    """A flush rule the model knows nothing about: ``decide`` is one uninterpreted
    Boolean function of every old and new SPTE field and ``ad_enabled``."""

    def decide(self, logic: Any, old: Any, new: Any, ad_enabled: Any) -> Any:
        import dataclasses

        import z3

        arguments = [
            *(getattr(old, f.name) for f in dataclasses.fields(old)),
            *(getattr(new, f.name) for f in dataclasses.fields(new)),
            ad_enabled,
        ]
        ctx = ad_enabled.ctx
        sorts = [z3.BoolSort(ctx)] * (len(arguments) + 1)
        return z3.Function("flush_rule", *sorts)(*arguments)


def model_sha256(paths: Paths, vcpus: int, depth: int) -> str:
    """sha256 of the model as the engines see it, independent of any rule.

    The text hashed is the settings (paths, vCPUs, depth bound) as JSON, then the
    s-expressions of ``init``, ``transition(0)`` and every property's bad predicate
    of the encoding of ``System(OpaqueRule(), paths)`` with ``vcpus`` vCPUs, built
    in a fresh z3 context. A change to an operation, a property, the paths or the
    encoding changes it; a change to a rule does not.
    """
    import z3

    from checker.engines.encode import Encoding
    from checker.model import PROPERTIES, Kind, System
    from checker.rules.specs import paths_table

    encoding = Encoding(System(OpaqueRule(), paths), vcpus, z3.Context())
    step = encoding.transition(0)
    settings = {"paths": paths_table(paths), "vcpus": vcpus, "depth_bound": depth}
    parts = [json.dumps(settings, sort_keys=True), encoding.init(step.before).sexpr()]
    parts.append(step.formula.sexpr())
    for prop in PROPERTIES:
        bad = (
            encoding.bad_state(prop, step.before)
            if prop.kind is Kind.STATE
            else encoding.bad_step(prop, step)
        )
        parts.append(f"{prop.name}: {bad.sexpr()}")
    return _sha256("\n".join(parts))


# --- the lock as values ---------------------------------------------------------------


@dataclass(frozen=True)
class PropertyLock:
    """A property's locked verdict and the evidence behind it."""

    #: holds or violated: an inconclusive verdict is never locked
    verdict: Verdict
    #: a violation: its shortest trace's length, hash and actions
    counterexample_length: int | None = None
    counterexample_sha256: str | None = None
    actions: tuple[str, ...] = ()
    #: a proof: its certified invariant's hash and lemmas
    invariant_sha256: str | None = None
    lemmas: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"verdict": self.verdict.value}
        if self.verdict is Verdict.VIOLATED:
            data["counterexample"] = {
                "length": self.counterexample_length,
                "sha256": self.counterexample_sha256,
                "actions": list(self.actions),
            }
        else:
            data["invariant"] = {"sha256": self.invariant_sha256, "lemmas": list(self.lemmas)}
        return data

    def differences(self, other: PropertyLock) -> list[str]:
        """How ``other`` (the newer) differs from this, in words; [] if equal."""
        if self.verdict != other.verdict:
            return [f"verdict {self.verdict.value} -> {other.verdict.value}"]
        found = []
        if self.counterexample_length != other.counterexample_length:
            found.append(
                f"counterexample {self.counterexample_length} -> "
                f"{other.counterexample_length} steps"
            )
        elif (self.counterexample_sha256, self.actions) != (
            other.counterexample_sha256,
            other.actions,
        ):
            found.append(f"counterexample changed (same length, {other.counterexample_length})")
        if (self.invariant_sha256, self.lemmas) != (other.invariant_sha256, other.lemmas):
            found.append("invariant changed")
        return found


@dataclass(frozen=True)
class RuleLock:
    expression_sha256: str
    formula: str
    properties: dict[str, PropertyLock]

    def to_json(self) -> dict[str, Any]:
        return {
            "expression_sha256": self.expression_sha256,
            "formula": self.formula,
            "properties": {name: p.to_json() for name, p in self.properties.items()},
        }


@dataclass(frozen=True)
class ModelLock:
    sha256: str
    era: str
    paths: dict[str, Any]
    vcpus: int
    depth_bound: int

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "era": self.era,
            "paths": dict(self.paths),
            "vcpus": self.vcpus,
            "depth_bound": self.depth_bound,
        }


@dataclass(frozen=True)
class Lock:
    model: ModelLock
    rules: dict[str, RuleLock]
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "about": ABOUT,
            "model": self.model.to_json(),
            "versions": dict(self.versions),
            "rules": {name: r.to_json() for name, r in sorted(self.rules.items())},
        }


def property_lock(result: PropertyResult) -> PropertyLock | None:
    """What the lock records for ``result``; None for an inconclusive one."""
    if result.trace is not None:
        return PropertyLock(
            verdict=Verdict.VIOLATED,
            counterexample_length=result.trace.depth,
            counterexample_sha256=trace_sha256(result.trace),
            actions=tuple(action_labels(result.trace)),
        )
    if result.proof is not None:
        invariant = result.proof.invariant
        return PropertyLock(
            verdict=Verdict.HOLDS,
            invariant_sha256=invariant_sha256(invariant),
            lemmas=tuple(invariant.render()),
        )
    return None


def rule_lock(rule: Rule, properties: Mapping[str, PropertyLock]) -> RuleLock:
    from checker.rules import formula

    return RuleLock(
        expression_sha256=expression_sha256(rule),
        formula=formula.render(rule.formula),
        properties=dict(properties),
    )


# --- reading and writing ------------------------------------------------------------------


def render(lock: Lock) -> str:
    """The lockfile's text: canonical JSON, byte-identical for equal locks."""
    return json.dumps(lock.to_json(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write(lock: Lock, path: Path) -> None:
    """Write ``lock`` to ``path`` atomically: readers see the old file or the new one."""
    from checker.files import FileError, write_text

    try:
        write_text(path, render(lock), "the lockfile")
    except FileError as exc:
        raise LockError(str(exc)) from None


def read(path: Path) -> Lock | None:
    """The lock in ``path``; None if there is no such file. A malformed file is an
    error naming the file and the field."""
    from checker.files import FileError, MissingFile, read_text

    try:
        text = read_text(path, what="a lockfile")
    except MissingFile:
        return None
    except FileError as exc:
        raise LockError(str(exc)) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise LockError(
            f"{path}: not a lockfile: nested too deeply; regenerate it with 'checker gate --update'"
        ) from None
    except json.JSONDecodeError as exc:
        raise LockError(
            f"{path}: not a lockfile: invalid JSON at line {exc.lineno}: {exc.msg}; "
            "regenerate it with 'checker gate --update'"
        ) from None
    return _parse(data, path)


#: a rule or property name (as ``specs`` allows them), or an era label
#: (``v6.13/shadow``, ``v6.13/shadow+harvest_flush=changed``)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=/-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _parse(data: Any, path: Path) -> Lock:
    """The lock in ``data``; every field is checked (type, range, known names) and
    a bad one is a ``LockError`` naming the file and the field."""
    from checker.limits import MAX_DEPTH, MAX_VCPUS
    from checker.model import PROPERTY_BY_NAME
    from checker.rules.specs import paths_from

    def fail(where: str, problem: str) -> LockError:
        return LockError(
            f"{path}: field '{where}': {problem}; regenerate it with 'checker gate --update'"
        )

    def table(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise fail(where, "must be an object")
        return value

    def get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if key not in obj:
            raise fail(f"{where}{key}", "missing")
        value = obj[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise fail(f"{where}{key}", "has the wrong type")
        return value

    def size(obj: dict[str, Any], key: str, least: int, most: int, where: str) -> int:
        value: int = get(obj, key, int, where)
        if not least <= value <= most:
            raise fail(f"{where}{key}", f"{value} is outside {least}..{most}")
        return value

    def digest(obj: dict[str, Any], key: str, where: str) -> str:
        value: str = get(obj, key, str, where)
        if not _SHA256.fullmatch(value):
            raise fail(f"{where}{key}", "is not a sha256 (64 lowercase hex digits)")
        return value

    def name(value: str, where: str, known: Any = None) -> str:
        if not _NAME.fullmatch(value) or (known is not None and value not in known):
            expected = f"one of {', '.join(known)}" if known is not None else "a rule name"
            raise fail(where, f"{quoted(value)} is not {expected}")
        return value

    def strings(value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise fail(where, "must be a list of strings")
        return tuple(value)

    top = table(data, "(top level)")
    if top.get("schema") != SCHEMA:
        raise fail("schema", f"expected {SCHEMA!r}, got {top.get('schema')!r}")
    model = table(get(top, "model", dict, ""), "model")
    versions = table(top.get("versions", {}), "versions")
    rules: dict[str, RuleLock] = {}
    for rule, entry in table(get(top, "rules", dict, ""), "rules").items():
        at = f"rules.{name(rule, 'rules')}."
        entry = table(entry, at[:-1])
        props: dict[str, PropertyLock] = {}
        for prop, value in table(get(entry, "properties", dict, at), f"{at}properties").items():
            where = f"{at}properties.{name(prop, f'{at}properties', PROPERTY_BY_NAME)}."
            value = table(value, where[:-1])
            try:
                verdict = decided(get(value, "verdict", str, where))
            except ValueError as exc:
                raise fail(f"{where}verdict", str(exc)) from None
            if verdict is Verdict.VIOLATED:
                cex = table(get(value, "counterexample", dict, where), f"{where}counterexample")
                props[prop] = PropertyLock(
                    verdict,
                    counterexample_length=size(
                        cex, "length", 0, MAX_DEPTH, f"{where}counterexample."
                    ),
                    counterexample_sha256=digest(cex, "sha256", f"{where}counterexample."),
                    actions=strings(cex.get("actions", []), f"{where}counterexample.actions"),
                )
            else:
                inv = table(get(value, "invariant", dict, where), f"{where}invariant")
                props[prop] = PropertyLock(
                    verdict,
                    invariant_sha256=digest(inv, "sha256", f"{where}invariant."),
                    lemmas=strings(inv.get("lemmas", []), f"{where}invariant.lemmas"),
                )
        rules[rule] = RuleLock(
            expression_sha256=digest(entry, "expression_sha256", at),
            formula=get(entry, "formula", str, at),
            properties=props,
        )
    paths = table(get(model, "paths", dict, "model."), "model.paths")
    paths_from(paths, lambda key, problem: fail(f"model.paths.{key}", problem))
    return Lock(
        model=ModelLock(
            sha256=digest(model, "sha256", "model."),
            era=name(get(model, "era", str, "model."), "model.era"),
            paths=paths,
            vcpus=size(model, "vcpus", 1, MAX_VCPUS, "model."),
            depth_bound=size(model, "depth_bound", 1, MAX_DEPTH, "model."),
        ),
        rules=rules,
        versions={str(k): str(v) for k, v in versions.items()},
    )
