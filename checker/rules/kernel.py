"""The flush rule of a kernel tree, read from its source.

Where the rule lives:

* v6.13 and later: the body of ``leaf_spte_change_needs_tlb_flush()`` in
  ``arch/x86/kvm/mmu/spte.h``, a single ``return`` of the condition;
* earlier kernels: the flush clauses of ``mmu_spte_update()`` in
  ``arch/x86/kvm/mmu/mmu.c`` (``arch/x86/kvm/mmu.c`` before v5.9): several
  ``if (...) flush = true;`` (or ``ret = true;``) statements OR-ed together,
  including the Accessed/Dirty clauses of v4..v6.12, around early returns.

The function is found textually (comments blanked, braces matched, in one linear
pass), its text is handed to pycparser at the file's own line numbers, and its body
is executed symbolically: Boolean locals, assignments, ``|=``, ``if``/
``else`` and ``return`` give the returned value as a formula over the old and new
SPTE. Calls made for their side effects (``kvm_set_pfn_accessed()``, ``WARN_ON()``)
and statements on other variables are skipped; a condition that decides the
result but cannot be understood is an error naming its file and line, never a
guess. So is any other statement that could change the result (a statement macro
such as ``RETURN_TRUE;``, a ``goto``, a local changed inside a call's arguments, an
SPTE variable set from anything but the entry itself). So is conditional
compilation (``#ifdef``) inside the function, unless each branch is whole
statements that are calls the execution skips (inside an expression or a statement
it always is), a definition inside an ``#if`` group (but the include guard), and two
definitions: which one a kernel builds is its configuration's choice. A control
character anywhere in the function, comments included, is refused.
The text read is bounded like any rule's C (:data:`checker.rules.cexpr.MAX_TOKENS` and
friends).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checker.errors import InputError
from checker.files import FileError, read_text
from checker.rules import cexpr
from checker.rules import formula as F
from checker.rules.cexpr import CExprError, Origin
from checker.rules.formula import Formula

if TYPE_CHECKING:
    from checker.rules.specs import Rule

#: where to look in a tree, newest layout first: (file, function)
CANDIDATES: tuple[tuple[str, str], ...] = (
    ("arch/x86/kvm/mmu/spte.h", "leaf_spte_change_needs_tlb_flush"),
    ("arch/x86/kvm/mmu/mmu.c", "mmu_spte_update"),
    ("arch/x86/kvm/mmu.c", "mmu_spte_update"),
)
FUNCTIONS = tuple(dict.fromkeys(function for _, function in CANDIDATES))

#: kernel integer and Boolean types a function body may declare locals with
_TYPES = (
    "u8",
    "u16",
    "u32",
    "u64",
    "s8",
    "s16",
    "s32",
    "s64",
    "gfn_t",
    "gpa_t",
    "hpa_t",
    "kvm_pfn_t",
)
_PRELUDE = "".join(f"typedef unsigned long long {t}; " for t in _TYPES) + "typedef _Bool bool; "


class KernelError(InputError):
    """The tree or file does not hold a flush rule the checker can read."""


@dataclass(frozen=True)
class Clause:
    """A condition under which the function asks for a flush, where it is written."""

    text: str
    line: int


@dataclass(frozen=True)
class KernelRule:
    file: Path
    function: str
    #: the line of the function's name
    line: int
    clauses: tuple[Clause, ...]
    #: the rule as one C expression: the clauses OR-ed when that is exactly the
    #: function's result (``from_clauses``), else the result written back as C
    expression: str
    from_clauses: bool
    #: the function's result, from symbolic execution
    formula: Formula


def locate(path: Path) -> list[tuple[Path, str]]:
    """The (file, function) pairs to try for ``path``: a kernel tree or one file."""
    if path.is_dir():
        # present at all, not only as a regular file: reading a FIFO or a directory
        # there says what it is, instead of "not a kernel tree"
        found = [(path / rel, fn) for rel, fn in CANDIDATES if os.path.lexists(path / rel)]
        if not found:
            wanted = ", ".join(rel for rel, _ in CANDIDATES)
            raise KernelError(
                f"{display(path)}: not a kernel tree (none of {wanted}); pass the tree's root"
            )
        return found
    if os.path.lexists(path):
        # a file, or something that is not: reading it says which (never opens a FIFO)
        return [(path, fn) for fn in FUNCTIONS]
    raise KernelError(f"{display(path)}: no such file or directory")


def extract(path: Path) -> KernelRule:
    """The flush rule of the kernel tree or file at ``path``."""
    tried = []
    for file, function in locate(path):
        try:
            text = read_text(file, what="a kernel tree or source file", errors="replace")
        except FileError as exc:
            raise KernelError(str(exc)) from None
        found = _find_function(text, function)
        if not found:
            tried.append(f"{function}() in {display(file)}")
            continue
        shown = display(file)
        lines = [text.count("\n", 0, name) + 1 for name, _, _ in found]
        if len(found) > 1:
            raise KernelError(
                f"{shown}:{lines[1]}: a second definition of {function}() (the first is at "
                f"{shown}:{lines[0]}): the checker does not guess which one your kernel "
                "builds; keep only that one and retry"
            )
        _refuse_conditional_definition(shown, function, text, found[0][0])
        return _read(file, function, text, *found[0])
    raise KernelError(f"no flush rule found: looked for {', '.join(tried)}")


def _find_function(text: str, function: str) -> list[tuple[int, int, int]]:
    """Offsets of the definitions of ``function`` (the first two): its name, its body's
    opening and closing braces (in the text with comments and preprocessor lines
    blanked)."""
    code = _blank_preprocessor(cexpr.strip_comments(text))
    # every bracket's partner, found once: looking each up from every mention of the
    # function made a file of unclosed 'mmu_spte_update(' quadratic
    parens, braces = _partners(code, "(", ")"), _partners(code, "{", "}")
    found: list[tuple[int, int, int]] = []
    for m in re.finditer(rf"\b{re.escape(function)}\s*\(", code):
        if found and m.start() < found[-1][2]:
            continue  # a call inside the definition found last
        i = parens.get(m.end() - 1)
        if i is None:
            continue
        body = _BODY.match(code, i + 1)
        if body is None:  # a declaration or a call, not the definition
            continue
        opening = body.end() - 1
        closing = braces.get(opening)
        if closing is None:
            continue
        found.append((m.start(), opening, closing))
        if len(found) == 2:  # one too many: enough to refuse
            break
    return found


_BODY = re.compile(r"\s*\{")


def _partners(code: str, opening: str, closing: str) -> dict[int, int]:
    """The offset of each matched ``opening`` bracket's ``closing`` partner, in one
    pass (unmatched ones are left out)."""
    partners: dict[int, int] = {}
    open_: list[int] = []
    for m in re.finditer(re.escape(opening) + "|" + re.escape(closing), code):
        if m.group() == opening:
            open_.append(m.start())
        elif open_:
            partners[open_.pop()] = m.start()
    return partners


def _matching(code: str, at: int, opening: str, closing: str) -> int | None:
    """The offset of the bracket closing the one at ``at`` (linear from ``at``)."""
    depth = 0
    for i in range(at, len(code)):
        if code[i] == opening:
            depth += 1
        elif code[i] == closing:
            depth -= 1
            if depth == 0:
                return i
    return None


def _blank_preprocessor(code: str) -> str:
    """Blank preprocessor lines (and their continuations), keeping positions."""
    lines = code.split("\n")
    out, continued = [], False
    for line in lines:
        directive = continued or line.lstrip().startswith("#")
        continued = directive and line.rstrip().endswith("\\")
        out.append(" " * len(line) if directive else line)
    return "\n".join(out)


def _read(
    file: Path, function: str, text: str, name: int, opening: int, closing: int
) -> KernelRule:
    """Parse the body of ``function`` and run it symbolically.

    Only the body is parsed, under a signature of our own: real declarations carry
    attributes (``__always_inline``) and types pycparser does not know. The body is
    placed at its own line in the parsed text, so positions are the file's; the
    file's name is never part of the C text (a path may hold any character).
    """
    from pycparser import c_ast
    from pycparser.c_parser import ParseError

    shown = display(file)
    comments_blanked = cexpr.strip_comments(text)
    code = _blank_preprocessor(comments_blanked)
    line = text.count("\n", 0, name) + 1
    body_line = text.count("\n", 0, opening) + 1
    body = code[opening : closing + 1]
    delegate = "leaf_spte_change_needs_tlb_flush"
    if function != delegate and re.search(rf"\b{delegate}\s*\(", body):
        raise KernelError(
            f"{shown}:{line}: {function}() asks {delegate}() (v6.13+), which is defined in "
            "arch/x86/kvm/mmu/spte.h: pass the kernel tree or that file"
        )
    start_of_line = text.rfind("\n", 0, name) + 1
    cexpr.check_characters(
        text[: closing + 1], Origin(shown), f"{function}()", offset=start_of_line
    )
    _refuse_conditional_code(shown, function, comments_blanked, name, closing)
    body_column = opening - (text.rfind("\n", 0, opening) + 1) + 1
    cexpr.check_tokens(body, Origin(shown, body_line, body_column), f"{function}()")
    signature = f"_Bool {function}(u64 *sptep, u64 old_spte, u64 new_spte)"
    before_body = f"{_PRELUDE}{signature};" + "\n" * (body_line - 1) + signature
    source = f"{before_body}{body}\n"  # the body starts at its own line
    # columns on that line are shifted by what precedes the body there
    shift = len(before_body) - (before_body.rfind("\n") + 1) - (body_column - 1)
    try:
        with cexpr.stack_room():
            try:
                ast = cexpr._parser().parse(source, filename=_PARSED)
            except ParseError as exc:
                message = str(exc).removeprefix(_PARSED)
                raise KernelError(
                    f"{function}() at {shown}{message}; the checker reads plain C only"
                ) from None
            definition = ast.ext[-1]
            if len(ast.ext) != len(_TYPES) + 3 or not isinstance(definition, c_ast.FuncDef):
                raise KernelError(f"{shown}:{line}: {function}() is not one C function body")
            runner = _Runner(shown, code, body_line, shift)
            cexpr.check_syntax_depth(definition.body, Origin(shown), runner.where)
            result = runner.run(definition.body, f"{shown}:{line}")
    except RecursionError:
        raise cexpr.too_deep(Origin(shown, body_line)) from None
    if result is None:
        raise KernelError(f"{shown}:{line}: {function}() can end without returning")
    cexpr.check_formula(result, f"{shown}:{line}", _REPEATS)
    joined = _joined(runner.clauses, result)
    expression = joined if joined is not None else to_c(result)
    return KernelRule(
        file, function, line, tuple(runner.clauses), expression, joined is not None, result
    )


_REPEATS = " (each early return or else-if repeats the conditions before it)"

#: the name the body is parsed under; messages name the real file instead
_PARSED = "<kernel>"


def display(path: Path) -> str:
    """``path`` for a one-line message: as it is, unless it holds a character that
    would break the line or be invisible (newline, tab, a byte that is not UTF-8),
    which are escaped as in a Python string."""
    text = str(path)
    if text.isprintable():
        return text
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


_CONDITIONAL = re.compile(
    r"^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|elifdef|elifndef|else|endif)\b", re.M
)
#: any preprocessor directive and its first word: ``#ifndef NAME`` -> (ifndef, NAME)
_DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(\w+)[ \t]*(\w*)", re.M)
#: what makes code inside #ifdef matter to the rule: a return, an assignment or an
#: increment, a control statement, or a local's address handed to a call
_DECIDES = re.compile(
    r"\b(?:return|if|else|for|while|do|switch|case|default|goto|break|continue)\b"
    r"|(?:<<|>>)=|(?<![=!<>])=(?!=)|\+\+|--|[(,]\s*&(?!&)"
)
#: ``#if`` groups nested at once inside the function (none of any kernel's is nested)
MAX_CONDITIONAL_DEPTH = 20


def _refuse_conditional_definition(shown: str, function: str, text: str, name: int) -> None:
    """Refuse a definition of ``function`` inside an ``#if`` group (other than the
    file's include guard): whether it is built at all is the configuration's choice."""
    code = cexpr.strip_comments(text)
    open_: list[re.Match[str]] = []
    deeper = 0  # groups open beyond MAX_CONDITIONAL_DEPTH, counted but not kept
    guard: re.Match[str] | None = None
    for index, m in enumerate(_DIRECTIVE.finditer(code, 0, name)):
        directive = m.group(1)
        if (
            index == 1
            and open_
            and open_[0].group(1) == "ifndef"
            and (directive, m.group(2)) == ("define", open_[0].group(2))
        ):
            guard = open_[0]  # '#ifndef X' then '#define X' first in the file
        if directive.startswith("if"):
            if len(open_) < MAX_CONDITIONAL_DEPTH:
                open_.append(m)
            else:
                deeper += 1
        elif directive == "endif" and deeper:
            deeper -= 1
        elif directive == "endif" and open_:
            if open_.pop() is guard:
                guard = None
        elif directive.startswith("el") and open_ and open_[-1] is guard and not deeper:
            guard = None  # an #else of the guard: not a guard
    enclosing = [m for m in open_ if m is not guard]
    if enclosing:
        where = code.count("\n", 0, enclosing[-1].start()) + 1
        line = code.count("\n", 0, name) + 1
        raise KernelError(
            f"{shown}:{line}: {function}() is defined inside the #{enclosing[-1].group(1)} at "
            f"line {where}: the checker does not guess whether your kernel builds it; "
            "keep only the definition your kernel builds and retry"
        )


def _refuse_conditional_code(shown: str, function: str, text: str, name: int, closing: int) -> None:
    """Refuse ``#if``/``#ifdef``/``#else`` inside the function unless each branch is
    whole statements that are calls the execution skips anyway (a ``WARN_ON()``
    under ``#ifdef CONFIG_KVM_PROVE_MMU``): such a group gives the same rule whichever
    branch is built, so it is read. Reading every branch in sequence would let the
    first one win, and a group inside an expression or a statement would be read as
    part of it; anything else names the directive's line.

    One pass over the function's directives: ``text`` has comments blanked.
    """
    code = _blank_preprocessor(text)
    # each open group's directive, and the last character of code before the group
    open_: list[tuple[re.Match[str], str]] = []
    last = "{"  # the last character of code before the directive at hand
    previous = name

    def refuse(start: re.Match[str], why: str) -> KernelError:
        where = text.count("\n", 0, start.start()) + 1
        return KernelError(
            f"{shown}:{where}: #{start.group(1)} inside {function}() {why}: the checker "
            "does not guess which branch your kernel builds; keep only that branch and retry"
        )

    for m in _CONDITIONAL.finditer(text, name, closing):
        between = code[previous : m.start()].rstrip()
        last = between[-1] if between else last
        previous = m.end()
        directive = m.group(1)
        if directive.startswith("if"):
            if len(open_) >= MAX_CONDITIONAL_DEPTH:
                raise refuse(m, f"is nested more than {MAX_CONDITIONAL_DEPTH} #if deep")
            open_.append((m, last))
            continue
        if not open_:
            raise refuse(m, "around code the rule depends on (its #if is before the function)")
        start, before = open_[-1]
        group = code[start.end() : m.start()]
        if group.strip():
            if before not in ";{}":
                raise refuse(start, "splits an expression or a statement")
            if not _ignored_calls(group):
                raise refuse(start, "around code the rule depends on")
        if directive == "endif":
            open_.pop()
        else:  # #else, #elif: the next branch starts here
            open_[-1] = (m, before)
            last = before
    if open_:
        start, _ = open_[-1]
        where = text.count("\n", 0, start.start()) + 1
        raise KernelError(
            f"{shown}:{where}: #{start.group(1)} inside {function}() is not closed before the "
            "function ends: the checker does not guess which branch your kernel builds"
        )


_CALL = re.compile(r"\s*[A-Za-z_]\w*\s*\(.*\)\s*", re.S)


def _ignored_calls(group: str) -> bool:
    """Whether the code between two directives is whole statements, each a call the
    execution skips (its result unused, no local assigned or handed by address)."""
    *statements, rest = group.split(";")
    if rest.strip() or not statements or _DECIDES.search(group):
        return False
    return all(_CALL.fullmatch(s) is not None and _balanced(s) for s in statements)


def _balanced(code: str) -> bool:
    depth = 0
    for c in code:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _joined(clauses: list[Clause], result: Formula) -> str | None:
    """The clauses OR-ed together, if that is exactly the function's result on a
    present old SPTE (the only case the model consults the rule)."""
    if not clauses:
        return None
    text = " || ".join(f"({c.text})" if len(clauses) > 1 else c.text for c in clauses)
    try:
        joined = cexpr.parse(text, Origin("<clauses>"))
    except CExprError:
        return None
    present = F.Bit("old", "present")
    return text if F.equivalent(joined, result, assuming=present) else None


#: how each SPTE field is written in C, for formulas turned back into C
_C_FIELDS = {
    "present": "is_shadow_present_pte({})",
    "writable": "is_writable_pte({})",
    "mmu_writable": "is_mmu_writable_spte({})",
    "host_writable": "({} & shadow_host_writable_mask)",
    "accessed": "({} & PT_ACCESSED_MASK)",
    "dirty": "({} & PT_DIRTY_MASK)",
    "access_tracked": "is_access_track_spte({})",
}


def to_c(f: Formula) -> str:
    """A C expression with the meaning of ``f``."""

    def atom(a: F.Bit | F.AdEnabled) -> str:
        if isinstance(a, F.AdEnabled):
            return "spte_ad_enabled(old_spte)"
        if a.field == "access_tracked":
            # is_access_track_spte() also requires A/D bits to be off
            return f"(!spte_ad_enabled({a.spte}_spte) && is_access_track_spte({a.spte}_spte))"
        return _C_FIELDS[a.field].format(f"{a.spte}_spte")

    return F.render(f, atom)


class _Runner:
    """Symbolic execution of a function body for its Boolean return value.

    ``returned`` is the condition under which the function has returned so far,
    ``result`` its value there; Boolean locals map to their value as a formula.
    ``path`` is the source text of the enclosing ``if`` conditions: a clause is the
    path plus whatever sets a flush (``flush = true``, ``flush |= c``, ``return c``).
    """

    def __init__(self, shown: str, code: str, body_line: int, shift: int) -> None:
        self.shown = shown
        self.code = code
        #: on the body's first line, parsed columns are ``shift`` past the file's
        self.body_line, self.shift = body_line, shift
        #: offset of each line's start in ``code``, to find a node's text directly
        self.line_starts = [0, *(m.end() for m in re.finditer("\n", code))]
        self.locals: dict[str, Formula | None] = {}
        self.returned: Formula = F.FALSE
        self.result: Formula = F.FALSE
        self.clauses: list[Clause] = []

    def translate(self, node: Any) -> Formula:
        return cexpr._Translator(Origin(self.shown), "x86", self.locals).truth(node)

    def where(self, node: Any) -> str:
        """``file:line`` of ``node``."""
        return f"{self.shown}:{node.coord.line}"

    def run(self, body: Any, where: str) -> Formula | None:
        """The function's result, or None if it can end without returning; ``where``
        (``file:line``) is named if the formulas outgrow the checker's limits."""
        self.block(body, F.TRUE, ())
        cexpr.check_formula(self.returned, where, _REPEATS)
        if not F.valid(self.returned):
            return None
        return self.result

    def block(self, node: Any, pc: Formula, path: tuple[str, ...]) -> None:
        for item in node.block_items or ():
            self.statement(item, pc, path)

    def statement(self, node: Any, pc: Formula, path: tuple[str, ...]) -> None:
        from pycparser import c_ast

        active = F.and_(pc, F.not_(self.returned))
        match node:
            case c_ast.Compound():
                self.block(node, pc, path)
            case c_ast.Decl(name=name, init=init) if isinstance(name, str):
                if name in cexpr.SPTE_NAMES:
                    self._spte_read(node, init)
                    return
                if name in self.locals:
                    raise self._refuse(node, f"declares '{name}' again")
                if init is None:
                    self.locals[name] = F.FALSE  # assigned before use, or false
                    return
                self.assign(name, init, active, node, path)
            case c_ast.Assignment(op="=", lvalue=c_ast.ID(name=name), rvalue=value):
                if name in cexpr.SPTE_NAMES:
                    self._spte_read(node, value)
                else:
                    self.assign(name, value, active, node, path)
            case c_ast.Assignment(op="|=", lvalue=c_ast.ID(name=name), rvalue=value) if (
                name not in cexpr.SPTE_NAMES
            ):
                self._no_hidden_writes(value)
                before, now = self.locals.get(name, F.FALSE), self._value(value)
                if before is None or now is None:
                    self.locals[name] = None
                    return
                self.locals[name] = F.or_(before, F.and_(active, now))
                self._clause(node, path, self.text_of(node), now)
            case (
                c_ast.Assignment(lvalue=c_ast.ID(name=name))
                | c_ast.UnaryOp(op="++" | "--" | "p++" | "p--", expr=c_ast.ID(name=name))
            ):
                # another compound assignment, or an increment: not followed; an error
                # only if the result depends on the variable
                if name in cexpr.SPTE_NAMES:
                    self._spte_read(node, None)
                if isinstance(node, c_ast.Assignment):
                    self._no_hidden_writes(node.rvalue)
                self.locals[name] = None
            case c_ast.If(cond=cond, iftrue=then, iffalse=other):
                if not (self._matters(then) or self._matters(other)):
                    # neither branch decides anything: the condition is not read, but
                    # what the branches do must be known to be irrelevant
                    self._no_hidden_writes(cond)
                    self.skip(then)
                    self.skip(other)
                    return
                c = self.translate(cond)
                text = self.text_of(node)
                self.statement(then, F.and_(pc, c), (*path, text))
                if other is not None:
                    self.statement(other, F.and_(pc, F.not_(c)), (*path, f"!({text})"))
            case c_ast.Return(expr=expr):
                if expr is None:
                    raise KernelError(f"{self.where(node)}: a flush rule returns a truth value")
                value = self.translate(expr)
                # ``active`` excludes every path that returned before, so the result is
                # the disjunction over returns; kept flat, it stays shallow however many
                # returns there are
                self.result = F.or_(self.result, F.and_(active, value))
                # returned || (pc && !returned) is returned || pc: flat, where the
                # former would hold the previous formula twice for every return
                self.returned = F.or_(self.returned, pc)
                if not (isinstance(expr, c_ast.ID) and expr.name in self.locals):
                    self._clause(node, path, self.text_of(node), value)
            case _:
                self.skip(node)

    def skip(self, node: Any) -> None:
        """Pass over a statement that does not decide the result: a call whose result
        is unused (``WARN_ON()``, ``kvm_set_pfn_accessed()``), an assignment through a
        pointer, an empty statement, or a block or ``if`` of those. Anything else
        could change the result (``RETURN_TRUE;``, a ``goto``) and is refused."""
        from pycparser import c_ast

        match node:
            case None | c_ast.EmptyStatement():
                return
            case c_ast.Compound():
                for item in node.block_items or ():
                    self.skip(item)
            case c_ast.If(cond=cond, iftrue=then, iffalse=other):
                self._no_hidden_writes(cond)
                self.skip(then)
                self.skip(other)
            case c_ast.FuncCall(name=c_ast.ID()):
                self._no_hidden_writes(node)
            case c_ast.Assignment(lvalue=lvalue) if not isinstance(lvalue, c_ast.ID):
                self._no_hidden_writes(node)  # *sptep = ..., as in __set_spte()
            case (
                c_ast.Assignment(lvalue=c_ast.ID(name=name))
                | c_ast.UnaryOp(op="++" | "--" | "p++" | "p--", expr=c_ast.ID(name=name))
            ) if name in cexpr.SPTE_NAMES:
                plain = isinstance(node, c_ast.Assignment) and node.op == "="
                self._spte_read(node, node.rvalue if plain else None)
            case c_ast.Decl(name=name) if name in cexpr.SPTE_NAMES:
                self._spte_read(node, node.init)
            case c_ast.Decl(name=name) if isinstance(name, str) and name not in self.locals:
                # a variable of a block the result does not depend on
                self._no_hidden_writes(node.init)
            case c_ast.For() | c_ast.While() | c_ast.DoWhile() | c_ast.Switch() | c_ast.Goto():
                kind = type(node).__name__
                raise KernelError(f"{self.where(node)}: unsupported control flow ({kind})")
            case c_ast.Label() | c_ast.Break() | c_ast.Continue() | c_ast.Case():
                kind = type(node).__name__
                raise KernelError(f"{self.where(node)}: unsupported control flow ({kind})")
            case _:
                raise self._refuse(node, "is a statement the checker does not understand")

    def _spte_read(self, node: Any, value: Any) -> None:
        """Accept an SPTE variable set from the SPTE itself, as kernels do (``u64
        old_spte = *sptep``, ``old_spte = __update_clear_spte_slow(sptep, new_spte)``,
        a call returning the entry it replaced); any other value (``old_spte =
        new_spte``, ``new_spte |= ...``) would change what the rule's conditions read."""
        from pycparser import c_ast

        if isinstance(value, c_ast.FuncCall) or (
            isinstance(value, c_ast.UnaryOp) and value.op == "*"
        ):
            self._no_hidden_writes(value)
        elif not (value is None and isinstance(node, c_ast.Decl)):  # 'u64 old_spte;'
            raise self._refuse(node, "changes an SPTE value the rule reads")

    def _refuse(self, node: Any, what: str) -> KernelError:
        from pycparser import c_generator

        text = " ".join(c_generator.CGenerator().visit(node).split())
        return KernelError(
            f"{self.where(node)}: '{cexpr._clip(text)}' {what}: it could change the result, "
            "and the checker does not guess"
        )

    def _no_hidden_writes(self, node: Any) -> None:
        """Refuse an assignment, increment or address taken of a variable other than
        the SPTEs inside an expression whose value is not read (a call's arguments,
        an ``if`` condition that is not read): it could change a local unseen."""
        from pycparser import c_ast

        pending = [node] if node is not None else []
        while pending:
            current = pending.pop()
            match current:
                case (
                    c_ast.Assignment(lvalue=c_ast.ID(name=name))
                    | c_ast.UnaryOp(op="++" | "--" | "p++" | "p--", expr=c_ast.ID(name=name))
                ) if name not in cexpr.SPTE_NAMES:
                    raise self._refuse(current, "changes a variable inside an expression")
                case c_ast.UnaryOp(op="&", expr=c_ast.ID(name=name)) if name in self.locals:
                    raise self._refuse(current, "hands a variable's address on")
            pending.extend(child for _, child in current.children())

    def assign(
        self, name: str, value: Any, active: Formula, node: Any, path: tuple[str, ...]
    ) -> None:
        self._no_hidden_writes(value)
        now, before = self._value(value), self.locals.get(name, F.FALSE)
        if now is None or before is None:
            self.locals[name] = None  # an error only if the result depends on it
            return
        if now == F.TRUE:  # (active && true) || (!active && before), kept flat
            self.locals[name] = F.or_(active, before)
        else:
            self.locals[name] = F.or_(F.and_(active, now), F.and_(F.not_(active), before))
        self._clause(node, path, self.text_of(node), now)

    def _value(self, node: Any) -> Formula | None:
        try:
            return self.translate(node)
        except CExprError:
            return None

    def _clause(self, node: Any, path: tuple[str, ...], text: str, value: Formula) -> None:
        """Record ``path && text`` as a flushing clause, unless ``text`` is false."""
        if value == F.FALSE:
            return
        parts = [*path] if value == F.TRUE else [*path, text]
        if not parts:
            parts = ["true"]
        text = " && ".join(f"({p})" if len(parts) > 1 and "||" in p else p for p in parts)
        self.clauses.append(Clause(text, node.coord.line))

    def text_of(self, node: Any) -> str:
        """The file's own text of an ``if`` condition, a returned value or an assigned
        one (comments blanked, whitespace collapsed)."""
        from pycparser import c_ast

        # from the node's own position: slicing the rest of the file for every node
        # made long functions quadratic
        line, column = node.coord.line, node.coord.column or 1
        column -= self.shift if line == self.body_line else 0
        at = self.line_starts[line - 1] + column - 1
        code = self.code
        if isinstance(node, c_ast.If):
            opening = code.index("(", at)
            closing = _matching(code, opening, "(", ")")
            assert closing is not None
            text = code[opening + 1 : closing]
        else:
            start = (
                code.index("return", at) + len("return")
                if isinstance(node, c_ast.Return)
                else (code.index("=", at) + 1)
            )
            text = code[start : _statement_end(code, start)]
        return " ".join(text.split())

    def _matters(self, node: Any) -> bool:
        """Whether ``node`` assigns a local or returns: only then do its conditions count."""
        from pycparser import c_ast

        if node is None:
            return False
        if isinstance(node, c_ast.Return):
            return True
        if isinstance(node, c_ast.Assignment) and isinstance(node.lvalue, c_ast.ID):
            return node.lvalue.name not in cexpr.SPTE_NAMES
        return any(self._matters(child) for _, child in node.children())


def _statement_end(text: str, start: int) -> int:
    """The offset of the ';' ending the statement whose value starts at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in "([{":
            depth += 1
        elif text[i] in ")]}":
            depth -= 1
        elif text[i] == ";" and depth == 0:
            return i
    return len(text)


def rule_from_kernel(path: Path) -> Rule:
    """The kernel's rule as a ``Rule``, located at its first clause."""
    from checker.rules.specs import Rule

    found = extract(path)
    # the clauses' own formula reads better than the symbolic result, and is equal
    # to it wherever the rule is consulted
    parsed = (
        cexpr.parse_rule(found.expression, Origin(str(found.file))) if found.from_clauses else None
    )
    origin = {"file": str(found.file), "function": f"{found.function}()"}
    release = tree_release(path)
    if release is not None:
        origin["release"] = f"{release[0]}.{release[1]}"
    return Rule(
        name="kernel",
        expression=found.expression,
        formula=found.formula if parsed is None else parsed.formula,
        summary=f"{found.function}() in {found.file}",
        origin=origin,
        path=found.file,
        line=found.clauses[0].line if found.clauses else found.line,
        selector=("--kernel", str(path)),
        parsed_expression=parsed,
    )


_MAKE_VARIABLE = re.compile(r"^(VERSION|PATCHLEVEL)\s*=\s*(\d+)\s*$", re.M)


def tree_release(path: Path) -> tuple[int, int] | None:
    """The release (VERSION, PATCHLEVEL) in the top Makefile of the kernel tree that
    holds ``path``: the first directory from ``path`` upwards whose Makefile sets
    both; None if none does."""
    start = path if path.is_dir() else path.parent
    for directory in (start, *start.parents):
        makefile = directory / "Makefile"
        try:
            text = makefile.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            continue
        found: dict[str, str] = {m.group(1): m.group(2) for m in _MAKE_VARIABLE.finditer(text)}
        if "VERSION" in found and "PATCHLEVEL" in found:
            return int(found["VERSION"]), int(found["PATCHLEVEL"])
    return None
