"""Parsed flush conditions, kept so that a run need not load the C parser again.

Parsing a rule's C text (pycparser's lexer and parser, then the translation into
a formula, :func:`checker.rules.cexpr.parse_rule`) is a deterministic function of
the text, the layout it is read in, the checker's own source and pycparser's
version. Loading pycparser alone takes longer than a warm ``checker check``'s own
decision of a property, so its result is kept, one small file per text, and a
later run with the same inputs reads it back instead:

* the key is every input: the checker's source hash
  (:func:`checker.source.source_sha256`), pycparser's version (read from its
  package without importing it), the layout and the exact text, which the file
  holds and is compared whole (no hash stands in for it);
* only a parse that succeeded is kept: a text that is refused is parsed, and
  refused with its message, every time;
* a file that is missing, unreadable, of another format, for another key or
  malformed is ignored, and the text is parsed; a file that cannot be written is
  not written. Without the checker's source hash or pycparser's version nothing
  is kept or read.

What is kept is the parse only: no verdict, no certificate, nothing a solver
answered (every run decides every property with its own queries). The files live
beside the hints (:mod:`checker.engines.hints`), in the folder of the checker's
source version, and go when that version's hints are pruned; the same switches
(``--no-cache``, ``CHECKER_CACHE=0``) turn both off.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from checker.files import FileError, read_text, write_text
from checker.model import Layout
from checker.model.vocabulary import SPTE_FIELDS
from checker.rules import cexpr
from checker.rules import formula as F
from checker.rules.cexpr import Origin, ParsedRule, Span, Test
from checker.source import source_sha256

SCHEMA = "checker.parsed-rule/1"
#: the largest memo file read (a shipped rule's is about 2 KiB)
MAX_MEMO_BYTES = 1 << 22

_VERSION = re.compile(r"""^__version__\s*=\s*['"]([^'"\n]+)['"]""", re.MULTILINE)


def parse_rule(text: str, origin: Origin, directory: Path | None) -> ParsedRule:
    """:func:`checker.rules.cexpr.parse_rule` of ``text`` (x86 layout), read from the
    memo in ``directory`` when it holds this parse, else parsed and kept there
    (``directory`` None: parsed, nothing kept)."""
    key = memo_key(text, "x86") if directory is not None else None
    if key is None or directory is None:
        return cexpr.parse_rule(text, origin)
    path = _path(directory, key)
    found = _recall(path, key)
    if found is not None:
        return found
    parsed = cexpr.parse_rule(text, origin)
    try:
        kept = render(key, parsed)
        # kept only if it reads back as this very parse (a field the format does
        # not know would otherwise be lost)
        faithful = _same(_parse(json.loads(kept), key), parsed)
    except Exception:
        faithful = False
    if faithful:
        # a memo that cannot be kept costs the next run a parse, nothing more
        with contextlib.suppress(FileError):
            write_text(path, kept)
    return parsed


def _same(a: ParsedRule, b: ParsedRule) -> bool:
    return (a.text, a.formula, a.tests) == (b.text, b.formula, b.tests)


def memo_key(text: str, layout: Layout) -> dict[str, Any] | None:
    """Everything the parse of ``text`` depends on; None when the checker's source
    or pycparser's version cannot be read (then nothing is kept)."""
    source = source_sha256()
    version = pycparser_version()
    if source is None or version is None:
        return None
    return {"checker_source_sha256": source, "pycparser": version, "layout": layout, "text": text}


def pycparser_version() -> str | None:
    """pycparser's ``__version__``, read from its package's ``__init__.py`` without
    importing it (importing it is what the memo spares); None if it is not found."""
    try:
        spec = importlib.util.find_spec("pycparser")
        if spec is None or spec.origin is None:
            return None
        found = _VERSION.search(Path(spec.origin).read_text(encoding="utf-8"))
    except (ImportError, OSError, UnicodeDecodeError, ValueError):
        return None
    return found.group(1) if found else None


def _path(directory: Path, key: dict[str, Any]) -> Path:
    # a kind of its own in the key's hash, so that no hint's file name can be a
    # memo's; the version folder is the hints' (pruned with them)
    name = hashlib.sha256(
        json.dumps({"memo": SCHEMA, **key}, sort_keys=True).encode("utf-8")
    ).hexdigest()
    source: str = key["checker_source_sha256"]
    return directory / source[:16] / f"{name}.json"


def _recall(path: Path, key: dict[str, Any]) -> ParsedRule | None:
    try:
        text = read_text(path, MAX_MEMO_BYTES, "a parsed-rule memo")
    except FileError:
        return None
    try:
        return _parse(json.loads(text), key)
    except Exception:
        # whatever is wrong with the file, it is not this parse: parse the text
        return None


def render(key: dict[str, Any], parsed: ParsedRule) -> str:
    """A memo file's text: canonical JSON, the same bytes for the same parse."""
    data = {
        "schema": SCHEMA,
        "key": key,
        "formula": _formula_json(parsed.formula),
        "tests": [
            {
                "formula": _formula_json(t.formula),
                "span": [t.span.start, t.span.end],
                "group": [t.group.start, t.group.end],
                "nots": list(t.nots),
                "operator": t.operator,
            }
            for t in parsed.tests
        ],
    }
    return json.dumps(data, sort_keys=True, ensure_ascii=True) + "\n"


def _formula_json(f: F.Formula) -> Any:
    match f:
        case F.Const(value):
            return {"const": value}
        case F.Bit(spte, field):
            return {"bit": [spte, field]}
        case F.AdEnabled():
            return {"ad_enabled": True}
        case F.Not(arg):
            return {"not": _formula_json(arg)}
        case F.And(args):
            return {"and": [_formula_json(a) for a in args]}
        case F.Or(args):
            return {"or": [_formula_json(a) for a in args]}
    raise TypeError(f"not a formula: {f!r}")


def _parse(data: Any, key: dict[str, Any]) -> ParsedRule:
    """The parse in ``data``; an exception for anything that is not exactly a memo
    of this format, for this key."""
    if not isinstance(data, dict) or set(data) != {"schema", "key", "formula", "tests"}:
        raise ValueError("not a parsed-rule memo")
    if data["schema"] != SCHEMA or data["key"] != key:
        raise ValueError("a memo for another parse")
    text: str = key["text"]
    tests = data["tests"]
    if not isinstance(tests, list):
        raise ValueError("malformed tests")
    return ParsedRule(text, _formula(data["formula"]), tuple(_test(t, text) for t in tests))


def _test(value: Any, text: str) -> Test:
    if not isinstance(value, dict) or set(value) != {
        "formula",
        "span",
        "group",
        "nots",
        "operator",
    }:
        raise ValueError("malformed test")
    nots = value["nots"]
    if not isinstance(nots, list) or not all(type(n) is int and 0 <= n <= len(text) for n in nots):
        raise ValueError("malformed nots")
    if type(value["operator"]) is not bool:
        raise ValueError("malformed operator")
    return Test(
        _formula(value["formula"]),
        _span(value["span"], text),
        _span(value["group"], text),
        tuple(nots),
        value["operator"],
    )


def _span(value: Any, text: str) -> Span:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(type(x) is int for x in value)
        or not 0 <= value[0] <= value[1] <= len(text)
    ):
        raise ValueError("malformed span")
    return Span(value[0], value[1])


def _formula(value: Any) -> F.Formula:
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError("malformed formula")
    [(kind, arg)] = value.items()
    if kind == "const" and type(arg) is bool:
        return F.Const(arg)
    if kind == "bit" and isinstance(arg, list) and len(arg) == 2:
        spte, field = arg
        if spte in ("old", "new") and field in SPTE_FIELDS:
            return F.Bit(spte, field)
    if kind == "ad_enabled" and arg is True:
        return F.AdEnabled()
    if kind == "not":
        return F.Not(_formula(arg))
    if kind in ("and", "or") and isinstance(arg, list):
        args = tuple(_formula(a) for a in arg)
        return F.And(args) if kind == "and" else F.Or(args)
    raise ValueError("malformed formula")
