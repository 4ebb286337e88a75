"""C flush conditions, parsed by pycparser and translated into a ``Formula``.

A flush condition is C over two 64-bit SPTE values, ``old_spte`` and ``new_spte``.
Values are typed as either a truth value (a ``Formula``) or a 64-bit word whose bits
are each a ``Formula`` or unknown (``None``). The SPTE words know exactly the bits
the model has, at the positions of the chosen layout (domain.md section 2); every
other bit (pfn, permissions the model does not track) is unknown, and a rule whose
truth depends on an unknown bit is rejected, never guessed. Masks are words too, and
may be symbolic: ``shadow_accessed_mask`` is zero when A/D bits are disabled.

Kernel helpers (``is_dirty_spte`` and friends) are expanded into their meaning in
the model, as the kernel defines them, e.g. ``is_dirty_spte(s)`` is ``s.D`` with A/D
bits and ``s.W`` without.

Each atomic test of the expression (a helper call, a mask test, a comparison) is
also kept with where it is written in the text (:class:`ParsedRule`), so that a
decision is explained on the text as written, from the same parse.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, cast

from checker.errors import InputError
from checker.model import BIT_POSITIONS, Layout, Spte
from checker.model.logic import CONCRETE
from checker.rules import formula as F
from checker.rules.formula import Formula

SPTE_NAMES = ("old_spte", "new_spte")
WIDTH = 64


@dataclass(frozen=True)
class Origin:
    """Where an expression's text starts: file (or ``--expr``), line and column."""

    source: str
    line: int = 1
    column: int = 1

    def at(self, line: int, column: int) -> str:
        """The position of (line, column) of the expression, in the source."""
        if line <= 1:
            return f"{self.source}:{self.line}:{self.column + max(column, 1) - 1}"
        return f"{self.source}:{self.line + line - 1}:{column}"


class CExprError(InputError):
    """The expression is not C we understand. The message names the position."""


@dataclass(frozen=True)
class Word:
    """A 64-bit value: bit i is a Formula, or None where the model does not know it."""

    bits: tuple[Formula | None, ...]

    @staticmethod
    def const(value: int) -> Word:
        return Word(tuple(F.Const(bool(value >> i & 1)) for i in range(WIDTH)))

    @staticmethod
    def single(position: int, value: Formula) -> Word:
        return Word(tuple(value if i == position else F.FALSE for i in range(WIDTH)))


Value = Formula | Word


# --- the vocabulary -----------------------------------------------------------------


def _spte_word(which: F.Which, layout: Layout) -> Word:
    at = {pos: F.Bit(which, field) for field, pos in BIT_POSITIONS[layout].items()}
    return Word(tuple(at.get(i) for i in range(WIDTH)))


def _mask(field: str, value: Formula = F.TRUE) -> Callable[[Layout], Word]:
    return lambda layout: Word.single(BIT_POSITIONS[layout][field], value)


AD = F.AdEnabled()

#: mask names: the bit(s) they cover in the model
MASKS: dict[str, Callable[[Layout], Word]] = {
    "PT_WRITABLE_MASK": _mask("writable"),
    "shadow_mmu_writable_mask": _mask("mmu_writable"),
    "SPTE_MMU_WRITEABLE": _mask("mmu_writable"),
    "SPTE_MMU_WRITABLE": _mask("mmu_writable"),
    "shadow_host_writable_mask": _mask("host_writable"),
    "SPTE_HOST_WRITEABLE": _mask("host_writable"),
    "SPTE_HOST_WRITABLE": _mask("host_writable"),
    "SPTE_MMU_PRESENT_MASK": _mask("present"),
    # zero when the MMU does not use hardware A/D bits
    "shadow_accessed_mask": _mask("accessed", AD),
    "shadow_dirty_mask": _mask("dirty", AD),
    "PT_ACCESSED_MASK": _mask("accessed"),
    "PT_DIRTY_MASK": _mask("dirty"),
}


def _bit(which: F.Which, field: str) -> Formula:
    return F.Bit(which, field)


#: one-SPTE predicates, as the kernel defines them, in model terms
PREDICATES: dict[str, Callable[[F.Which], Formula]] = {
    "is_writable_pte": lambda s: _bit(s, "writable"),
    "is_mmu_writable_spte": lambda s: _bit(s, "mmu_writable"),
    "is_shadow_present_pte": lambda s: _bit(s, "present"),
    "is_accessed_spte": lambda s: F.or_(
        F.and_(AD, _bit(s, "accessed")), F.and_(F.not_(AD), F.not_(_bit(s, "access_tracked")))
    ),
    "is_dirty_spte": lambda s: F.or_(
        F.and_(AD, _bit(s, "dirty")), F.and_(F.not_(AD), _bit(s, "writable"))
    ),
    "is_access_track_spte": lambda s: F.and_(F.not_(AD), _bit(s, "access_tracked")),
    "spte_ad_enabled": lambda s: AD,
    # older names: both host- and MMU-writable
    "spte_can_locklessly_be_made_writable": lambda s: F.and_(
        _bit(s, "host_writable"), _bit(s, "mmu_writable")
    ),
    "spte_is_locklessly_modifiable": lambda s: F.and_(
        _bit(s, "host_writable"), _bit(s, "mmu_writable")
    ),
}

#: calls that are the identity on their argument
TRANSPARENT = ("likely", "unlikely", "READ_ONCE")
#: two-SPTE helpers of v3.x/v4.x: (old, new, mask)
BIT_HELPERS = ("spte_is_bit_cleared", "spte_is_bit_changed")
CONSTANT_MAKERS = ("BIT_ULL", "BIT")
BOOLEANS = {"true": F.TRUE, "false": F.FALSE}

KNOWN_NAMES: tuple[str, ...] = tuple(
    sorted(
        {*SPTE_NAMES, *MASKS, *PREDICATES, *TRANSPARENT, *BIT_HELPERS, *CONSTANT_MAKERS, *BOOLEANS}
    )
)


# --- parsing ------------------------------------------------------------------------

_PRELUDE = (
    "typedef unsigned long long u64; typedef _Bool bool; "
    "int __checker_rule(u64 old_spte, u64 new_spte) { return (\n"
)
_PRELUDE_LINES = _PRELUDE.count("\n")
_EPILOGUE = "\n); }\n"
_WRAPPER = "__checker_rule"

#: Limits on C text. Each is far above what a kernel's flush condition needs (the
#: longest, v6.12's mmu_spte_update(), has about 200 tokens nested 4 deep); beyond
#: them the text is refused in one line instead of exhausting the stack or memory.
#: tokens in a flush condition or in the kernel function read
MAX_TOKENS = 10_000
#: parentheses, brackets and braces open at once
MAX_BRACKETS = 100
#: operators and statements nested in the syntax tree; a chain of one operator
#: (``a && b && c``, ``a || b || c``) is one level, so such chains of any length pass
MAX_SYNTAX_DEPTH = 1_000
#: the rule's formula as a tree: nesting, and nodes (``a == b`` uses each side
#: twice, so nested comparisons grow exponentially)
MAX_FORMULA_DEPTH = 200
MAX_FORMULA_SIZE = 200_000
#: Python frames a syntax level may take (pycparser's descent for one parenthesis
#: is about 10): the recursion limit is raised by this much while C text is parsed
#: and translated, and restored afterwards
_FRAMES = 12 * MAX_BRACKETS + 5 * MAX_SYNTAX_DEPTH + 500

_COMMENT_START = re.compile(r"/\*|//")


def strip_comments(text: str) -> str:
    """Blank out C comments, keeping every other character (and newline) in place.

    Linear in the text: an unclosed ``/*`` is left as it is (the parser then
    refuses it), and once one is found no later ``/*`` is searched for a closing
    ``*/`` again.
    """
    out: list[str] = []
    position, closable = 0, True
    while (start := _COMMENT_START.search(text, position)) is not None:
        begin = start.start()
        if start.group() == "//":
            end = text.find("\n", begin)
            end = len(text) if end < 0 else end
        else:
            close = text.find("*/", begin + 2) if closable else -1
            if close < 0:
                closable = False
                out.append(text[position : begin + 1])
                position = begin + 1
                continue
            end = close + 2
        out.append(text[position:begin])
        out.append(re.sub(r"[^\n]", " ", text[begin:end]))
        position = end
    out.append(text[position:])
    return "".join(out)


@contextmanager
def stack_room() -> Iterator[None]:
    """Room on the stack for C text within the limits above.

    pycparser and the translators recurse once or more per syntax level; the
    limits bound the levels, and this raises Python's recursion limit by enough
    frames for them (pure Python frames, bounded), restoring it afterwards.
    """
    before = sys.getrecursionlimit()
    frame: FrameType | None = sys._getframe()
    depth = 0
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    sys.setrecursionlimit(max(before, depth + _FRAMES))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def check_tokens(text: str, origin: Origin, what: str) -> None:
    """Refuse C text the parser must not see: over :data:`MAX_TOKENS` tokens,
    brackets nested over :data:`MAX_BRACKETS` deep, a bracket that closes more than
    ``text`` opened (``x)); } int y; int f(void) { return (1`` would close our
    wrapper and declare more), or a preprocessor directive (``#line`` would move
    the positions). ``what`` names the text in messages ("the flush condition")."""
    from pycparser.c_lexer import CLexer

    hash_mark = text.find("#")
    if hash_mark >= 0:
        line = text.count("\n", 0, hash_mark) + 1
        column = hash_mark - (text.rfind("\n", 0, hash_mark) + 1) + 1
        raise CExprError(
            f"{origin.at(line, column)}: '#' (a preprocessor directive) is not C the "
            f"checker reads in {what}"
        )

    def lexing_error(message: str, line: int, column: int) -> None:
        # the lexer quotes the character it refuses: shown escaped if invisible
        shown = "".join(
            c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message
        )
        raise CExprError(f"{origin.at(line, column)}: {shown}")

    lexer = CLexer(lexing_error)
    lexer.input(text, "")
    closers = {"RPAREN": "LPAREN", "RBRACKET": "LBRACKET", "RBRACE": "LBRACE"}
    open_: list[str] = []
    count = 0
    while (token := lexer.token()) is not None:
        count += 1
        if count > MAX_TOKENS:
            raise CExprError(
                f"{origin.at(token.lineno, token.column)}: {what} is longer than "
                f"{MAX_TOKENS} tokens, the checker's limit"
            )
        if token.type in ("LPAREN", "LBRACKET", "LBRACE"):
            open_.append(token.type)
            if len(open_) > MAX_BRACKETS:
                raise CExprError(
                    f"{origin.at(token.lineno, token.column)}: {what} nests brackets more "
                    f"than {MAX_BRACKETS} deep, the checker's limit"
                )
        elif token.type in closers:
            if not open_ or open_[-1] != closers[token.type]:
                raise CExprError(
                    f"{origin.at(token.lineno, token.column)}: unbalanced '{token.value}': "
                    f"{what} must be exactly one C expression"
                    if what == FLUSH_CONDITION
                    else f"{origin.at(token.lineno, token.column)}: unbalanced "
                    f"'{token.value}' in {what}"
                )
            open_.pop()


FLUSH_CONDITION = "the flush condition"

#: characters C text may not hold anywhere, comments included: C0 and C1 controls
#: but tab and newline (a carriage return too: pycparser has never read one), and the invisible
#: characters that reorder or break a line on a terminal (bidirectional overrides
#: and isolates, line and paragraph separators). Written back to a terminal, a
#: trace file or a GraphML document, they would drive the terminal or break the file.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_characters(text: str, origin: Origin, what: str, offset: int = 0) -> None:
    """Refuse a control character anywhere in ``text`` from ``offset`` on, naming
    its position and the character escaped (``'\\x1b'``)."""
    m = _CONTROL.search(text, offset)
    if m is None:
        return
    at = m.start()
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    shown = m.group().encode("unicode_escape").decode("ascii")
    raise CExprError(
        f"{origin.at(line, column)}: a control character ('{shown}') in {what}: "
        "C text the checker reads holds printable characters, tabs and newlines only"
    )


def check_syntax_depth(node: Any, origin: Origin, where: Callable[[Any], str]) -> None:
    """Refuse a syntax tree nested over :data:`MAX_SYNTAX_DEPTH` levels (walked
    without recursion; a chain of ``&&`` or ``||`` is one level)."""
    from pycparser import c_ast

    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_SYNTAX_DEPTH:
            raise CExprError(
                f"{where(current)}: the C text is nested more than {MAX_SYNTAX_DEPTH} operators "
                "or statements deep, the checker's limit"
            )
        for _, child in current.children():
            chained = (
                isinstance(current, c_ast.BinaryOp)
                and isinstance(child, c_ast.BinaryOp)
                and child.op == current.op
                and current.op in ("&&", "||")
            )
            stack.append((child, depth if chained else depth + 1))


def check_formula(formula: Formula, where: str, why: str = "") -> None:
    """Refuse a formula over :data:`MAX_FORMULA_DEPTH` deep or
    :data:`MAX_FORMULA_SIZE` nodes (``where`` is the position to name, ``why`` what
    in the text tends to make formulas large)."""
    depth, size = F.measure(formula)
    if depth > MAX_FORMULA_DEPTH:
        raise CExprError(
            f"{where}: the rule's formula is nested more than {MAX_FORMULA_DEPTH} deep, "
            "the checker's limit"
        )
    if size > MAX_FORMULA_SIZE:
        raise CExprError(
            f"{where}: the rule's formula has more than {MAX_FORMULA_SIZE} terms{why}, "
            "the checker's limit"
        )


def too_deep(origin: Origin) -> CExprError:
    """The refusal for C that still exhausts the stack within the limits above
    (long runs of prefix operators such as ``!!!!``, which no bracket counts)."""
    return CExprError(
        f"{origin.at(1, 1)}: the C text is nested too deeply for the checker (limits: "
        f"{MAX_BRACKETS} brackets, {MAX_SYNTAX_DEPTH} operators or statements)"
    )


def _expression(text: str, origin: Origin, characters: bool = True) -> Any:
    """The syntax tree of the one C expression ``text``, checked against the limits.

    The expression is parsed inside a wrapper function of our own; the tokens are
    checked first so the text cannot close the wrapper, and the tree is checked to
    be exactly the wrapper returning one expression. With ``characters``, a control
    character anywhere is refused (:func:`check_characters`).
    """
    from pycparser import c_ast
    from pycparser.c_parser import ParseError

    if characters:
        check_characters(text, origin, FLUSH_CONDITION)
    body = strip_comments(text)
    if not body.strip():
        raise CExprError(f"{origin.at(1, 1)}: the flush condition is empty")
    unclosed = body.find("/*")
    if unclosed >= 0:
        line = body.count("\n", 0, unclosed) + 1
        column = unclosed - (body.rfind("\n", 0, unclosed) + 1) + 1
        raise CExprError(f"{origin.at(line, column)}: a '/*' comment is not closed")
    check_tokens(body, origin, FLUSH_CONDITION)
    source = _PRELUDE + body + _EPILOGUE
    try:
        ast = _parser().parse(source, filename="<rule>")
    except ParseError as exc:
        raise CExprError(_parse_error(str(exc), origin, body)) from None
    # the prelude's two typedefs, then the wrapper holding one return of one value
    function = ast.ext[-1] if len(ast.ext) == 3 else None
    items = function.body.block_items if isinstance(function, c_ast.FuncDef) else None
    if (
        function is None
        or function.decl.name != _WRAPPER
        or not items
        or len(items) != 1
        or not isinstance(items[0], c_ast.Return)
        or items[0].expr is None
    ):
        raise CExprError(f"{origin.at(1, 1)}: the flush condition must be one C expression")
    expression = items[0].expr
    check_syntax_depth(expression, origin, _Translator(origin, "x86")._where)
    return expression


def parse(text: str, origin: Origin, layout: Layout = "x86") -> Formula:
    """Translate the C expression ``text`` to a Formula over ``old_spte``/``new_spte``.

    Exactly one expression is accepted, within the limits above (:data:`MAX_TOKENS`
    and friends); anything else is a :class:`CExprError` naming the position.
    """
    return parse_rule(text, origin, layout).formula


def parse_rule(
    text: str, origin: Origin, layout: Layout = "x86", characters: bool = True
) -> ParsedRule:
    """:func:`parse`, keeping where each test of the expression is written (see
    :class:`ParsedRule`). With ``characters`` false, a control character is not
    refused (for text shown escaped, as a trace's expression read from a file is)."""
    try:
        with stack_room():
            expression = _expression(text, origin, characters)
            translator = _Translator(origin, layout)
            formula = translator.truth(expression)
            check_formula(formula, origin.at(1, 1), " ('==', '!=' and '^' repeat their operands)")
            tests = _Spans(strip_comments(text)).tests(expression, translator)
    except RecursionError:
        raise too_deep(origin) from None
    return ParsedRule(text, formula, tests)


@functools.lru_cache(maxsize=64)
def parsed(text: str) -> ParsedRule:
    """The rule expression ``text`` (as a trace records it), parsed once per text.

    For showing decisions: ``text`` must parse (a trace's expression did when the
    trace was replayed), but a control character is not refused: it can only be in
    a comment, and what is shown of the text is escaped."""
    return parse_rule(text, Origin("<explain>"), characters=False)


def _parser() -> Any:
    """pycparser's parser, made to say where an invalid expression starts.

    pycparser 3 reports "Invalid expression" without a position; the token it was
    looking at is the position. This uses two private methods, so it falls back
    to the plain message if they ever change.
    """
    from pycparser import c_parser

    class Parser(c_parser.CParser):  # type: ignore[misc]
        def _parse_error(self, msg: str, coord: Any) -> Any:
            if isinstance(coord, str):
                try:
                    token = self._peek()
                    if token is not None:
                        coord = self._tok_coord(token)
                except Exception:  # the private API moved: keep pycparser's message
                    pass
            return super()._parse_error(msg, coord)

    return Parser()


def _parse_error(message: str, origin: Origin, body: str) -> str:
    # "<rule>:LINE:COL: message" or "<rule>: message"
    m = re.match(r"<rule>(?::(\d+)(?::(\d+))?)?: (.*)", message, re.DOTALL)
    if not m:
        return f"{origin.at(1, 1)}: not a C expression ({message})"
    detail = m.group(3).strip()
    if m.group(1) is None:
        return f"{origin.at(1, 1)}: not a C expression ({detail})"
    line = int(m.group(1)) - _PRELUDE_LINES
    column = int(m.group(2) or 1)
    lines = body.splitlines() or [""]
    if line > len(lines) or line < 1:
        # the parser ran into our epilogue: the expression itself did not end well
        opened, closed = body.count("("), body.count(")")
        problem = (
            "unbalanced ')'"
            if closed > opened
            else "missing ')'"
            if opened > closed
            else "the C expression is incomplete"
        )
        return f"{origin.at(len(lines), len(lines[-1]) + 1)}: {problem}"
    if detail.startswith("before: "):
        detail = f"syntax error before '{detail.removeprefix('before: ')}'"
    elif detail == "Invalid expression":
        detail = "syntax error: expected an expression"
    return f"{origin.at(line, column)}: {detail}"


class _Translator:
    """C expression -> Formula. ``locals`` gives the current value of Boolean local
    variables (None: assigned something the checker cannot follow), for code read
    from function bodies."""

    def __init__(
        self, origin: Origin, layout: Layout, locals_: dict[str, Formula | None] | None = None
    ) -> None:
        self.origin = origin
        self.layout = layout
        self.locals = locals_ if locals_ is not None else {}

    # -- errors
    def _where(self, node: object) -> str:
        coord = getattr(node, "coord", None)
        if coord is None or coord.line is None:
            return self.origin.at(1, 1)
        if coord.file != "<rule>":  # a kernel file's body, parsed at its own lines
            return f"{self.origin.source}:{coord.line}:{coord.column or 1}"
        return self.origin.at(coord.line - _PRELUDE_LINES, coord.column or 1)

    def fail(self, node: object, message: str) -> CExprError:
        return CExprError(f"{self._where(node)}: {message}")

    def unknown(self, node: object, name: str) -> CExprError:
        import difflib  # only for a mistake: it takes a while to import

        guess = (
            difflib.get_close_matches(name, KNOWN_NAMES, n=1, cutoff=0.6)
            or [known for known in KNOWN_NAMES if known.startswith(name)][:1]
        )
        hint = f"; did you mean '{guess[0]}'?" if guess else ""
        return self.fail(node, f"unknown identifier '{name}'{hint}")

    # -- conversions
    def truth(self, node: object) -> Formula:
        """The C truth value of ``node`` (non-zero)."""
        value = self.value(node)
        if isinstance(value, Word):
            return self._nonzero(node, value)
        return value

    def word(self, node: object) -> Word:
        value = self.value(node)
        if isinstance(value, Word):
            return value
        # a truth value used as an integer is 0 or 1
        return Word((value,) + (F.FALSE,) * (WIDTH - 1))

    def _nonzero(self, node: object, value: Word) -> Formula:
        unknown = [i for i, b in enumerate(value.bits) if b is None]
        if unknown:
            raise self.fail(
                node,
                "the condition depends on SPTE bits the model does not have "
                f"(bit {_ranges(unknown)}); mask it with a known mask "
                f"(modelled {self.layout} bits: {_modelled(self.layout)})",
            )
        return F.or_(*cast(tuple[Formula, ...], value.bits))

    # -- the translation proper
    def value(self, node: object) -> Value:
        from pycparser import c_ast

        match node:
            case c_ast.BinaryOp(op="&&"):
                return F.and_(*(self.truth(term) for term in _chain(node)))
            case c_ast.BinaryOp(op="||"):
                return F.or_(*(self.truth(term) for term in _chain(node)))
            case c_ast.BinaryOp(op="&" | "|" | "^"):
                return self._bitwise(node.op, self.word(node.left), self.word(node.right))
            case c_ast.BinaryOp(op="==" | "!="):
                equal = self._equal(node, self.word(node.left), self.word(node.right))
                return equal if node.op == "==" else F.not_(equal)
            case c_ast.BinaryOp(op="<<"):
                value = self._integer(
                    node.left,
                    "a shift of anything but a constant is not a condition the checker "
                    "reads (shift constants, as in '1ULL << 10'; test an SPTE bit with a "
                    "mask, as in 'old_spte & BIT_ULL(10)')",
                )
                shift = self._integer(
                    node.right,
                    "a shift by anything but a constant is not a condition the checker reads",
                )
                if not 0 <= shift < WIDTH:
                    # undefined in C; refused, never reduced
                    raise self.fail(node.right, f"a shift by {shift} is outside 64 bits")
                # the bits shifted out of a 64-bit value are lost, as in C's u64
                return Word.const(value << shift & (1 << WIDTH) - 1)
            case c_ast.UnaryOp(op="!"):
                return F.not_(self.truth(node.expr))
            case c_ast.UnaryOp(op="~"):
                w = self.word(node.expr)
                return Word(tuple(None if b is None else F.not_(b) for b in w.bits))
            case c_ast.TernaryOp():
                cond = self.truth(node.cond)
                a, b = self.word(node.iftrue), self.word(node.iffalse)
                return Word(
                    tuple(
                        None
                        if x is None or y is None
                        else F.or_(F.and_(cond, x), F.and_(F.not_(cond), y))
                        for x, y in zip(a.bits, b.bits, strict=True)
                    )
                )
            case c_ast.Cast():
                return self.value(node.expr)
            case c_ast.Constant() if _is_integer(node):
                return Word.const(self._integer(node))
            case c_ast.ID(name=name):
                return self._identifier(node, name)
            case c_ast.FuncCall():
                return self._call(node)
        what = type(node).__name__
        if isinstance(node, (c_ast.BinaryOp, c_ast.UnaryOp)):
            what = f"operator '{node.op}'"
        raise self.fail(node, f"unsupported construct in a flush condition: {what}")

    def _identifier(self, node: object, name: str) -> Value:
        if name in self.locals:
            value = self.locals[name]
            if value is None:
                raise self.fail(node, f"'{name}' was assigned something the checker cannot follow")
            return value
        if name in SPTE_NAMES:
            return _spte_word(cast(F.Which, name.removesuffix("_spte")), self.layout)
        if name in MASKS:
            return MASKS[name](self.layout)
        if name in BOOLEANS:
            return BOOLEANS[name]
        if name in PREDICATES or name in BIT_HELPERS or name in CONSTANT_MAKERS:
            raise self.fail(node, f"'{name}' is a function: call it")
        raise self.unknown(node, name)

    def _call(self, node: object) -> Value:
        from pycparser import c_ast

        call = cast(c_ast.FuncCall, node)
        if not isinstance(call.name, c_ast.ID):
            raise self.fail(node, "only calls of named helpers are understood")
        name = call.name.name
        args = list(call.args.exprs) if call.args is not None else []

        def arity(n: int) -> None:
            if len(args) != n:
                raise self.fail(node, f"'{name}' takes {n} argument(s), got {len(args)}")

        if name in PREDICATES:
            arity(1)
            return PREDICATES[name](self._spte_argument(name, args[0]))
        if name in TRANSPARENT:
            arity(1)
            return self.value(args[0])
        if name in CONSTANT_MAKERS:
            arity(1)
            n = self._integer(args[0])
            if not 0 <= n < WIDTH:
                raise self.fail(args[0], f"{name}({n}) is outside a 64-bit SPTE")
            return Word.const(1 << n)
        if name in BIT_HELPERS:
            arity(3)
            old, new, mask = (self.word(a) for a in args)
            if name == "spte_is_bit_cleared":
                return F.and_(
                    self._nonzero(node, self._bitwise("&", old, mask)),
                    F.not_(self._nonzero(node, self._bitwise("&", new, mask))),
                )
            changed = self._bitwise("&", self._bitwise("^", old, new), mask)
            return self._nonzero(node, changed)
        if name in SPTE_NAMES or name in MASKS or name in BOOLEANS:
            raise self.fail(node, f"'{name}' is not a function")
        raise self.unknown(call.name, name)

    def _spte_argument(self, helper: str, node: object) -> F.Which:
        from pycparser import c_ast

        while isinstance(node, c_ast.Cast):
            node = node.expr
        if isinstance(node, c_ast.ID) and node.name in SPTE_NAMES:
            return cast(F.Which, node.name.removesuffix("_spte"))
        if isinstance(node, c_ast.ID):
            raise self.unknown(node, node.name)
        raise self.fail(node, f"'{helper}' takes old_spte or new_spte")

    def _integer(self, node: object, otherwise: str = "expected an integer constant") -> int:
        """The value of the constant ``node``; ``otherwise`` says what is wrong if it
        is not one."""
        from pycparser import c_ast

        if isinstance(node, c_ast.Constant) and _is_integer(node):
            digits = node.value.rstrip("uUlL")
            try:
                number = int(digits, 0) if not re.fullmatch(r"0[0-7]+", digits) else int(digits, 8)
            except ValueError:
                raise self.fail(node, f"not an integer constant: {_clip(node.value)}") from None
            if number >> WIDTH:
                # refused, never truncated: the text would not mean what it says
                raise self.fail(node, f"the constant {_clip(node.value)} does not fit in 64 bits")
            return number
        value = self.value(node)
        if isinstance(value, Word) and all(isinstance(b, F.Const) for b in value.bits):
            return sum(1 << i for i, b in enumerate(value.bits) if b == F.TRUE)
        raise self.fail(node, otherwise)

    @staticmethod
    def _bitwise(op: str, a: Word, b: Word) -> Word:
        def one(x: Formula | None, y: Formula | None) -> Formula | None:
            if op == "&":
                if x == F.FALSE or y == F.FALSE:
                    return F.FALSE
                return None if x is None or y is None else F.and_(x, y)
            if op == "|":
                if x == F.TRUE or y == F.TRUE:
                    return F.TRUE
                return None if x is None or y is None else F.or_(x, y)
            return None if x is None or y is None else F.not_(F.iff(x, y))

        return Word(tuple(one(x, y) for x, y in zip(a.bits, b.bits, strict=True)))

    def _equal(self, node: object, a: Word, b: Word) -> Formula:
        pairs = list(zip(a.bits, b.bits, strict=True))
        unknown = [i for i, (x, y) in enumerate(pairs) if x is None or y is None]
        if unknown:
            raise self.fail(
                node,
                "the comparison depends on SPTE bits the model does not have "
                f"(bit {_ranges(unknown)}); mask both sides with known masks",
            )
        return F.and_(*(F.iff(cast(Formula, x), cast(Formula, y)) for x, y in pairs))


def _chain(node: Any) -> list[Any]:
    """The operands of a chain of one operator, ``a && b && c`` -> [a, b, c], walked
    without recursion (the parser builds the chain nested to the left)."""
    from pycparser import c_ast

    operands = []
    while isinstance(node.left, c_ast.BinaryOp) and node.left.op == node.op:
        operands.append(node.right)
        node = node.left
    return [node.left, node.right, *reversed(operands)]


def _clip(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters, for messages that quote input."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _is_integer(node: Any) -> bool:
    """pycparser types integer literals by suffix: 'int', 'unsigned long long int', ..."""
    return str(node.type).endswith("int")


def _modelled(layout: Layout) -> str:
    abbreviation = F.FIELD_ABBREVIATIONS
    positions = sorted((pos, field) for field, pos in BIT_POSITIONS[layout].items())
    return ", ".join(f"{pos} {abbreviation[field]}" for pos, field in positions)


def _ranges(bits: list[int]) -> str:
    spans: list[str] = []
    start = prev = bits[0]
    for b in [*bits[1:], None]:
        if b is not None and b == prev + 1:
            prev = b
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if b is not None:
            start = prev = b
    return ", ".join(spans)


# --- where each test is written, and its value on an update ------------------------------


@dataclass(frozen=True)
class Span:
    """Characters ``start`` to ``end`` (exclusive) of an expression's text: the text
    as given, with its comments and line breaks."""

    start: int
    end: int


@dataclass(frozen=True)
class Test:
    """One atomic test of a flush condition: a helper call (``is_writable_pte(new_spte)``),
    a mask test or a comparison (``old_spte & PT_WRITABLE_MASK``, ``a != b``). The
    ``&&``, ``||``, ``!``, ``?:``, casts and ``likely()`` around tests are not tests."""

    #: what the test means in the model
    formula: Formula
    #: the test itself
    span: Span
    #: the test with what encloses it alone and keeps its value: parentheses, casts,
    #: ``likely()``/``unlikely()`` (``(old_spte & PT_WRITABLE_MASK)``,
    #: ``likely(is_writable_pte(old_spte))``); ``span`` if nothing does
    group: Span
    #: where each ``!`` applied to ``group`` is, innermost first (``!!x``: two); a
    #: ``!`` in front of parentheses around a ``!`` is not counted (``!(!x)``: one),
    #: so each ``!`` counted is written right before the next
    nots: tuple[int, ...]
    #: the test is an operator expression (``a & b``, ``a == b``), not a call
    operator: bool

    @property
    def shown(self) -> Span:
        """The group with its ``!``s: what the test's value is shown after."""
        return Span(self.nots[-1] if self.nots else self.group.start, self.group.end)

    @property
    def negated(self) -> bool:
        """The ``!``s turn the test's value around."""
        return len(self.nots) % 2 == 1


@dataclass(frozen=True, eq=False)
class ParsedRule:
    """A rule expression parsed: its formula and its atomic tests, in source order,
    each located in ``text`` (the expression as given: a spec's text, ``--expr``,
    the text a kernel rule was written back as, a trace's recorded expression)."""

    text: str
    formula: Formula
    tests: tuple[Test, ...]

    def source(self, span: Span) -> str:
        """The text of ``span``, comments dropped and white space runs as one space."""
        return " ".join(strip_comments(self.text[span.start : span.end]).split())

    def explain(self, old: Spte[bool], new: Spte[bool], ad_enabled: bool) -> Explanation:
        """The rule's decision on (old, new) and the value of each test."""

        def value(f: Formula) -> bool:
            return bool(F.evaluate(f, CONCRETE, old, new, ad_enabled))

        return Explanation(self, value(self.formula), tuple(value(t.formula) for t in self.tests))


@dataclass(frozen=True, eq=False)
class Explanation:
    """A rule's decision on an update, and the value of each of its tests there."""

    rule: ParsedRule
    decision: bool
    #: the value of each of ``rule.tests`` (the test's own, before its ``!``s)
    values: tuple[bool, ...]

    @property
    def terms(self) -> tuple[tuple[Test, bool], ...]:
        return tuple(zip(self.rule.tests, self.values, strict=True))


#: binary operators whose result is one test (the operands are its parts)
_TEST_OPERATORS = ("&", "|", "^", "==", "!=")


class _Spans:
    """Where each node of a parsed expression is written, as tokens of ``body`` (the
    expression's text with comments blanked, at the same offsets): the parser gives
    the position of names and constants only, and the rest follows from the
    tokens, the brackets matched among them, and the tree. The walks do not recurse:
    chains of ``&&`` are as deep as they are long (the translator, asked for each
    test's meaning, recurses as it does for the whole)."""

    def __init__(self, body: str) -> None:
        from pycparser.c_lexer import CLexer

        def refuse(message: str, line: int, column: int) -> None:
            # the text was lexed without error before it was parsed
            raise AssertionError(f"lexing a parsed expression: {line}:{column}: {message}")

        starts = [0, *(m.end() for m in re.finditer("\n", body))]
        lexer = CLexer(refuse)
        lexer.input(body, "")
        self.types: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        #: token index by (line, column), as the parser gives positions
        self.at: dict[tuple[int, int], int] = {}
        while (token := lexer.token()) is not None:
            start = starts[token.lineno - 1] + token.column - 1
            self.at[token.lineno, token.column] = len(self.types)
            self.types.append(token.type)
            self.starts.append(start)
            self.ends.append(start + len(token.value))
        #: the index of the bracket matching each parenthesis
        self.partner: dict[int, int] = {}
        opened: list[int] = []
        for i, kind in enumerate(self.types):
            if kind == "LPAREN":
                opened.append(i)
            elif kind == "RPAREN":
                self.partner[i] = opened[-1]
                self.partner[opened.pop()] = i
        #: first and last token of each node, without parentheses around it
        self.bare: dict[int, tuple[int, int]] = {}

    def span(self, tokens: tuple[int, int]) -> Span:
        return Span(self.starts[tokens[0]], self.ends[tokens[1]])

    def grouped(self, node: Any) -> tuple[int, int]:
        """The node's tokens with the parentheses that enclose it alone (not a call's)."""
        first, last = self.bare[id(node)]
        while (
            first > 0
            and self.types[first - 1] == "LPAREN"
            and self.partner[first - 1] == last + 1
            and not (first > 1 and self.types[first - 2] == "ID")  # a call's
        ):
            first, last = first - 1, last + 1
        return first, last

    def locate(self, expression: Any) -> None:
        """Fill :attr:`bare` for every node of ``expression``, children first."""
        from pycparser import c_ast

        stack: list[tuple[Any, bool]] = [(expression, False)]
        while stack:
            node, ready = stack.pop()
            operands = _operands(node)
            if operands and not ready:
                stack.append((node, True))
                stack.extend((operand, False) for operand in operands)
                continue
            match node:
                case c_ast.ID() | c_ast.Constant():
                    i = self.at[node.coord.line - _PRELUDE_LINES, node.coord.column]
                    tokens = (i, i)
                case c_ast.BinaryOp():
                    tokens = (self.grouped(node.left)[0], self.grouped(node.right)[1])
                case c_ast.UnaryOp():  # a prefix operator, right before its operand
                    first, last = self.grouped(node.expr)
                    tokens = (first - 1, last)
                case c_ast.Cast():  # '(type)' right before its operand
                    first, last = self.grouped(node.expr)
                    tokens = (self.partner[first - 1], last)
                case c_ast.TernaryOp():
                    tokens = (self.grouped(node.cond)[0], self.grouped(node.iffalse)[1])
                case c_ast.FuncCall():  # 'name(' ... ')'
                    first, last = self.bare[id(node.name)]
                    tokens = (first, self.partner[last + 1])
                case _:
                    raise AssertionError(f"no position for {type(node).__name__}")
            self.bare[id(node)] = tokens

    def tests(self, expression: Any, translator: _Translator) -> tuple[Test, ...]:
        """The expression's atomic tests in source order, each located."""
        from pycparser import c_ast

        self.locate(expression)
        parents: dict[int, Any] = {}
        found: list[Test] = []
        pending = [expression]
        while pending:
            node = pending.pop()
            if (isinstance(node, c_ast.FuncCall) and _callee(node) not in TRANSPARENT) or (
                isinstance(node, c_ast.BinaryOp) and node.op in _TEST_OPERATORS
            ):
                found.append(self._test(node, parents, translator))
                continue
            operands = _operands(node)
            for operand in operands:
                parents[id(operand)] = node
            pending.extend(reversed(operands))
        return tuple(found)

    def _test(self, node: Any, parents: dict[int, Any], translator: _Translator) -> Test:
        from pycparser import c_ast

        # the casts and likely() around the test alone
        group = node
        while isinstance(parent := parents.get(id(group)), c_ast.Cast) or (
            isinstance(parent, c_ast.FuncCall) and _callee(parent) in TRANSPARENT
        ):
            group = parent
        # the '!'s applied to it, up to parentheses around a '!'
        nots: list[int] = []
        negated = group
        while (
            isinstance(parent := parents.get(id(negated)), c_ast.UnaryOp)
            and parent.op == "!"
            and (negated is group or self.grouped(negated) == self.bare[id(negated)])
        ):
            nots.append(self.starts[self.bare[id(parent)][0]])
            negated = parent
        return Test(
            formula=translator.truth(node),
            span=self.span(self.bare[id(node)]),
            group=self.span(self.grouped(group)),
            nots=tuple(nots),
            operator=isinstance(node, c_ast.BinaryOp),
        )


def _operands(node: Any) -> list[Any]:
    """The expressions directly inside ``node``, in source order (a call's name first)."""
    from pycparser import c_ast

    match node:
        case c_ast.BinaryOp():
            return [node.left, node.right]
        case c_ast.UnaryOp() | c_ast.Cast():
            return [node.expr]
        case c_ast.TernaryOp():
            return [node.cond, node.iftrue, node.iffalse]
        case c_ast.FuncCall():
            return [node.name, *(node.args.exprs if node.args is not None else ())]
    return []


def _callee(node: Any) -> str | None:
    name = getattr(node, "name", None)
    return getattr(name, "name", None)
