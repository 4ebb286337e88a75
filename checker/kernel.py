"""The flush rule of a kernel tree, read from its source.

Where the rule lives:

* v6.13 and later: the body of ``leaf_spte_change_needs_tlb_flush()`` in
  ``arch/x86/kvm/mmu/spte.h``, a single ``return`` of the condition;
* earlier kernels: the flush clauses of ``mmu_spte_update()`` in
  ``arch/x86/kvm/mmu/mmu.c`` (``arch/x86/kvm/mmu.c`` before v5.9): several
  ``if (...) flush = true;`` (or ``ret = true;``) statements OR-ed together,
  including the Accessed/Dirty clauses of v4..v6.12, around early returns.

The function is found textually (comments blanked, braces matched), its text is
handed to pycparser with a ``#line`` directive so positions are the file's own, and
its body is executed symbolically: Boolean locals, assignments, ``|=``, ``if``/
``else`` and ``return`` give the returned value as a formula over the old and new
SPTE. Calls made for their side effects (``kvm_set_pfn_accessed()``, ``WARN_ON()``)
and statements on other variables are skipped; a condition that decides the
result but cannot be understood is an error naming its file and line, never a
guess.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checker import cexpr
from checker import formula as F
from checker.cexpr import CExprError, Origin
from checker.errors import InputError
from checker.files import FileError, read_text
from checker.formula import Formula

if TYPE_CHECKING:
    from checker.specs import Rule

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
        found = [(path / rel, fn) for rel, fn in CANDIDATES if (path / rel).is_file()]
        if not found:
            wanted = ", ".join(rel for rel, _ in CANDIDATES)
            raise KernelError(f"{path}: not a kernel tree (none of {wanted}); pass the tree's root")
        return found
    if os.path.lexists(path):
        # a file, or something that is not: reading it says which (never opens a FIFO)
        return [(path, fn) for fn in FUNCTIONS]
    raise KernelError(f"{path}: no such file or directory")


def extract(path: Path) -> KernelRule:
    """The flush rule of the kernel tree or file at ``path``."""
    tried = []
    for file, function in locate(path):
        try:
            text = read_text(file, what="a kernel tree or source file", errors="replace")
        except FileError as exc:
            raise KernelError(str(exc)) from None
        found = _find_function(text, function)
        if found is None:
            tried.append(f"{function}() in {file}")
            continue
        return _read(file, function, text, *found)
    raise KernelError(f"no flush rule found: looked for {', '.join(tried)}")


def _find_function(text: str, function: str) -> tuple[int, int, int] | None:
    """Offsets of the definition of ``function``: its name, its body's opening and
    closing braces (in the text with comments and preprocessor lines blanked)."""
    code = _blank_preprocessor(cexpr.strip_comments(text))
    for m in re.finditer(rf"\b{re.escape(function)}\s*\(", code):
        i = _matching(code, m.end() - 1, "(", ")")
        if i is None:
            continue
        body = re.match(r"\s*\{", code[i + 1 :])
        if body is None:  # a declaration or a call, not the definition
            continue
        opening = i + body.end()
        closing = _matching(code, opening, "{", "}")
        if closing is None:
            continue
        return m.start(), opening, closing
    return None


def _matching(code: str, at: int, opening: str, closing: str) -> int | None:
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
    attributes (``__always_inline``) and types pycparser does not know. A ``#line``
    directive keeps the body's positions those of the file.
    """
    from pycparser.c_parser import ParseError

    code = _blank_preprocessor(cexpr.strip_comments(text))
    line = text.count("\n", 0, name) + 1
    body_line = text.count("\n", 0, opening) + 1
    body = code[opening : closing + 1]
    delegate = "leaf_spte_change_needs_tlb_flush"
    if function != delegate and re.search(rf"\b{delegate}\s*\(", body):
        raise KernelError(
            f"{file}:{line}: {function}() asks {delegate}() (v6.13+), which is defined in "
            "arch/x86/kvm/mmu/spte.h: pass the kernel tree or that file"
        )
    source = (
        f"{_PRELUDE}\n"
        f"_Bool {function}(u64 *sptep, u64 old_spte, u64 new_spte);\n"
        f'# {body_line} "{file}"\n'
        f"_Bool {function}(u64 *sptep, u64 old_spte, u64 new_spte)"
        f"{body}\n"
    )
    try:
        ast = cexpr._parser().parse(source, filename=str(file))
    except ParseError as exc:
        raise KernelError(f"{function}() at {exc}; the checker reads plain C only") from None
    runner = _Runner(file, code)
    result = runner.run(ast.ext[-1].body)
    if result is None:
        raise KernelError(f"{file}:{line}: {function}() can end without returning")
    joined = _joined(runner.clauses, result)
    expression = joined if joined is not None else to_c(result)
    return KernelRule(
        file, function, line, tuple(runner.clauses), expression, joined is not None, result
    )


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

    def __init__(self, file: Path, code: str) -> None:
        self.file = file
        self.lines = code.split("\n")
        self.locals: dict[str, Formula | None] = {}
        self.returned: Formula = F.FALSE
        self.result: Formula = F.FALSE
        self.clauses: list[Clause] = []

    def translate(self, node: Any) -> Formula:
        return cexpr._Translator(Origin(str(self.file)), "x86", self.locals).truth(node)

    def run(self, body: Any) -> Formula | None:
        self.block(body, F.TRUE, ())
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
            case c_ast.Decl(name=name, init=init):
                if name in cexpr.SPTE_NAMES:
                    return
                if init is None:
                    self.locals[name] = F.FALSE  # assigned before use, or false
                    return
                self.assign(name, init, active, node, path)
            case c_ast.Assignment(op="=", lvalue=c_ast.ID(name=name), rvalue=value):
                if name not in cexpr.SPTE_NAMES:
                    self.assign(name, value, active, node, path)
            case c_ast.Assignment(op="|=", lvalue=c_ast.ID(name=name), rvalue=value):
                before, now = self.locals.get(name, F.FALSE), self._value(value)
                if before is None or now is None:
                    self.locals[name] = None
                    return
                self.locals[name] = F.or_(before, F.and_(active, now))
                self._clause(node, path, self.text_of(node), now)
            case c_ast.If(cond=cond, iftrue=then, iffalse=other):
                if not (self._matters(then) or self._matters(other)):
                    return
                c = self.translate(cond)
                text = self.text_of(node)
                self.statement(then, F.and_(pc, c), (*path, text))
                if other is not None:
                    self.statement(other, F.and_(pc, F.not_(c)), (*path, f"!({text})"))
            case c_ast.Return(expr=expr):
                if expr is None:
                    raise KernelError(f"{_at(node)}: a flush rule returns a truth value")
                value = self.translate(expr)
                self.result = F.or_(F.and_(active, value), F.and_(F.not_(active), self.result))
                self.returned = F.or_(self.returned, active)
                if not (isinstance(expr, c_ast.ID) and expr.name in self.locals):
                    self._clause(node, path, self.text_of(node), value)
            case c_ast.FuncCall() | c_ast.EmptyStatement() | c_ast.Assignment():
                return  # side effects the rule does not depend on
            case _:
                if self._matters(node):
                    kind = type(node).__name__
                    raise KernelError(f"{_at(node)}: unsupported control flow ({kind})")

    def assign(
        self, name: str, value: Any, active: Formula, node: Any, path: tuple[str, ...]
    ) -> None:
        now, before = self._value(value), self.locals.get(name, F.FALSE)
        if now is None or before is None:
            self.locals[name] = None  # an error only if the result depends on it
            return
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

        line, column = node.coord.line, node.coord.column or 1
        rest = "\n".join([self.lines[line - 1][column - 1 :], *self.lines[line:]])
        if isinstance(node, c_ast.If):
            opening = rest.index("(")
            closing = _matching(rest, opening, "(", ")")
            assert closing is not None
            text = rest[opening + 1 : closing]
        else:
            start = (
                rest.index("return") + len("return")
                if isinstance(node, c_ast.Return)
                else (rest.index("=") + 1)
            )
            text = rest[start : _statement_end(rest, start)]
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


def _at(node: Any) -> str:
    coord = node.coord
    return f"{coord.file}:{coord.line}"


def rule_from_kernel(path: Path) -> Rule:
    """The kernel's rule as a ``Rule``, located at its first clause."""
    from checker.specs import Rule

    found = extract(path)
    # the clauses' own formula reads better than the symbolic result, and is equal
    # to it wherever the rule is consulted
    formula = (
        cexpr.parse(found.expression, Origin(str(found.file)))
        if found.from_clauses
        else (found.formula)
    )
    return Rule(
        name="kernel",
        expression=found.expression,
        formula=formula,
        summary=f"{found.function}() in {found.file}",
        origin={"file": str(found.file), "function": f"{found.function}()"},
        path=found.file,
        line=found.clauses[0].line if found.clauses else found.line,
        selector=("--kernel", str(path)),
    )
