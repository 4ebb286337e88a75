"""The only module that constructs z3 solvers, plus the z3 interpretation of ``Logic``.

Every solver is ``SolverFor("QF_FD")``: the model is finite-state (Bools and small
bit-vectors), and the finite-domain solver is incremental SAT underneath, which keeps
learned clauses across ``check(assumptions)`` calls. Queries are retracted with
activation literals, never ``push``/``pop`` (``pop`` discards learned clauses).

Seeds are pinned so that a run is reproducible, and work is bounded with ``rlimit``
rather than ``timeout``: a wall-clock timeout stops at a different point on a loaded
CI runner, an rlimit stops at the same point everywhere.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import z3

from checker import interrupt

SEED = 0

#: rlimit of one check (z3's abstract work count: each check of a solver may do
#: this much work, counted from where the context's count stands, so a solver
#: shared by several queries gives each the whole budget). The full check of the
#: shipped rules at 32 vCPUs stays below 2% of this.
DEFAULT_RLIMIT = 2_000_000_000


class Answer(enum.Enum):
    SAT = "sat"
    UNSAT = "unsat"
    #: z3 said ``unknown``: rlimit exhausted, or incomplete
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Budget:
    """Work bound for every solver of one run."""

    rlimit: int = DEFAULT_RLIMIT


#: the thread making z3's main context ahead of its first use, once started
_making: threading.Thread | None = None


def make_main_context_ahead() -> None:
    """Start making z3's main context in a thread of its own.

    z3 takes 7-10 ms to make a context, in one foreign call that releases the GIL:
    a check starts this as soon as z3 is imported, and the context is made on the
    other core while the process imports the engines and reads its input. Its
    first user waits for it in :func:`main_context`; so does a fork
    (``os.register_at_fork``), so that no forked process starts with it half made
    (or with z3's allocator locked by the thread): each starts with it made, and
    uses its own copy. Until then nothing in the process may use the main context
    but through :func:`main_context` (the CLI reads its input meanwhile, which
    takes no z3, and waits for the thread when the command ends:
    :func:`wait_for_main_context`)."""
    global _making
    if _making is not None:
        return
    _making = threading.Thread(target=z3.main_ctx, name="z3 main context", daemon=True)
    _making.start()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=wait_for_main_context)


def wait_for_main_context() -> None:
    """Return once the thread making z3's main context, if any, is done."""
    if _making is not None:
        _making.join()


def main_context() -> z3.Context:
    """z3's main context: the one :func:`make_main_context_ahead` made (waited
    for), else made now, as ``z3.main_ctx()`` does."""
    wait_for_main_context()
    return z3.main_ctx()


def new_solver(budget: Budget, context: z3.Context | None = None) -> z3.Solver:
    """A fresh QF_FD solver with pinned seeds and the run's rlimit (in z3's main
    context unless given)."""
    solver = z3.SolverFor("QF_FD", ctx=context if context is not None else main_context())
    solver.set("random_seed", SEED)
    solver.set("rlimit", budget.rlimit)
    return solver


def check(solver: z3.Solver, *assumptions: z3.BoolRef) -> Answer:
    """``solver.check(assumptions)`` as an :class:`Answer`. Assumptions must be plain
    Bool constants (z3 4.15's QF_FD rejects compound ones). Ctrl-C during the call
    raises :class:`~checker.errors.Interrupted` (see ``checker.interrupt``)."""
    with interrupt.solving(solver.ctx):
        result = solver.check(*assumptions)
    if result == z3.sat:
        return Answer.SAT
    if result == z3.unsat:
        return Answer.UNSAT
    return Answer.UNKNOWN


def conjunction(xs: Sequence[z3.BoolRef], ctx: z3.Context) -> z3.BoolRef:
    """``z3.And(*xs)``: the same term, made without z3's checks (every ``x`` is
    already a Boolean of ``ctx``)."""
    return _made(z3.Z3_mk_and, xs, ctx)


def disjunction(xs: Sequence[z3.BoolRef], ctx: z3.Context) -> z3.BoolRef:
    """``z3.Or(*xs)``: the same term, made without z3's checks."""
    return _made(z3.Z3_mk_or, xs, ctx)


def negation(x: z3.BoolRef, ctx: z3.Context) -> z3.BoolRef:
    """``z3.Not(x)``: the same term, made without z3's checks."""
    return z3.BoolRef(z3.Z3_mk_not(ctx.ref(), x.ast), ctx)


def implication(x: z3.BoolRef, y: z3.BoolRef, ctx: z3.Context) -> z3.BoolRef:
    """``z3.Implies(x, y)``: the same term, made without z3's checks."""
    return z3.BoolRef(z3.Z3_mk_implies(ctx.ref(), x.ast, y.ast), ctx)


def application(f: z3.FuncDeclRef, x: z3.ExprRef, ctx: z3.Context) -> z3.BoolRef:
    """``f(x)`` for a unary Boolean function of ``ctx``: the same term, made without
    z3's checks of the argument's sort."""
    args = (z3.Ast * 1)()
    args[0] = x.ast
    return z3.BoolRef(z3.Z3_mk_app(ctx.ref(), f.ast, 1, args), ctx)


def truths(model: z3.ModelRef, xs: Iterable[z3.BoolRef]) -> list[bool]:
    """``[z3.is_true(model.eval(x, model_completion=True)) for x in xs]``, evaluated
    through z3's C API: decoding a state or a trace evaluates every leaf, and z3's
    own ``eval`` wraps each value in a Python term only to read it."""
    ref, found = model.ctx.ref(), model.model
    value = (z3.Ast * 1)()
    out = []
    for x in xs:
        if not z3.Z3_model_eval(ref, found, x.ast, True, value):
            raise z3.Z3Exception(f"the model does not evaluate {x}")
        # read at once: z3 keeps an API call's result until the next one
        out.append(z3.Z3_get_bool_value(ref, value[0]) == z3.Z3_L_TRUE)
    return out


def assert_all(solver: z3.Solver, *xs: z3.BoolRef) -> None:
    """``solver.add(*xs)`` for Booleans of the solver's context, without z3's casts."""
    ref = solver.ctx.ref()
    for x in xs:
        z3.Z3_solver_assert(ref, solver.solver, x.ast)


class SharedSolver:
    """One solver deciding many queries, each as a fresh solver would: a query is
    asserted behind a literal of its own, checked assuming it (and the literals
    given), then retired by asserting its literal false. Retired queries constrain
    nothing, and what the solver learned is implied by what it holds, so no query
    is decided differently for those before it. A query answered unknown (its
    budget cut it short) may leave the solver mid-way: ``spoiled`` is then set, and
    its owner drops it."""

    def __init__(self, solver: z3.Solver) -> None:
        self.solver = solver
        #: queries asserted so far, each with a literal of its own
        self.queries = 0
        self.spoiled = False

    def decide(self, name: str, query: z3.BoolRef, *assumptions: z3.BoolRef) -> Answer:
        ctx = self.solver.ctx
        self.queries += 1
        lit = z3.Bool(f"certify_{name}#{self.queries}", ctx=ctx)
        assert_all(self.solver, implication(lit, query, ctx))
        answer = check(self.solver, lit, *assumptions)
        assert_all(self.solver, negation(lit, ctx))
        self.spoiled = self.spoiled or answer is Answer.UNKNOWN
        return answer


def _made(make: object, xs: Sequence[z3.BoolRef], ctx: z3.Context) -> z3.BoolRef:
    # z3's own And/Or check and coerce every argument (a foreign call or two each),
    # about ten times the cost of making the term; certification builds its queries
    # from thousands of literals, so the term is made through the C API directly
    args = (z3.Ast * len(xs))()
    for i, x in enumerate(xs):
        args[i] = x.ast
    return z3.BoolRef(make(ctx.ref(), len(xs), args), ctx)  # type: ignore[operator]


def z3_version() -> str:
    return str(z3.get_full_version())


class Symbolic:
    """``Logic[z3.BoolRef]``, folding constants so formulas stay small.

    Constants are recognised by identity with the two cached ``BoolVal`` objects
    (every constant the model makes comes from :meth:`const`): asking z3 through
    ``is_true`` costs a foreign call per node, and the model builds thousands.
    """

    def __init__(self, context: z3.Context | None = None) -> None:
        self.context = context if context is not None else main_context()
        self.true = z3.BoolVal(True, ctx=self.context)
        self.false = z3.BoolVal(False, ctx=self.context)

    # z3's own And/Or/Not/If/== check and coerce every argument, about ten times the
    # cost of making the term; every argument here is already a Boolean of this
    # context, so the terms are made through the C API directly
    def _nary(self, make: object, xs: list[z3.BoolRef]) -> z3.BoolRef:
        return _made(make, xs, self.context)

    def const(self, value: bool) -> z3.BoolRef:
        return self.true if value else self.false

    def not_(self, a: z3.BoolRef) -> z3.BoolRef:
        if a is self.true:
            return self.false
        if a is self.false:
            return self.true
        return negation(a, self.context)

    def and_(self, *xs: z3.BoolRef) -> z3.BoolRef:
        kept = []
        for x in xs:
            if x is self.false:
                return self.false
            if x is not self.true:
                kept.append(x)
        if not kept:
            return self.true
        return kept[0] if len(kept) == 1 else self._nary(z3.Z3_mk_and, kept)

    def or_(self, *xs: z3.BoolRef) -> z3.BoolRef:
        kept = []
        for x in xs:
            if x is self.true:
                return self.true
            if x is not self.false:
                kept.append(x)
        if not kept:
            return self.false
        return kept[0] if len(kept) == 1 else self._nary(z3.Z3_mk_or, kept)

    def ite(self, cond: z3.BoolRef, then: z3.BoolRef, other: z3.BoolRef) -> z3.BoolRef:
        if cond is self.true or then is other:
            return then
        if cond is self.false:
            return other
        if then is self.true:
            return self.or_(cond, other)
        if then is self.false:
            return self.and_(self.not_(cond), other)
        if other is self.true:
            return self.or_(self.not_(cond), then)
        if other is self.false:
            return self.and_(cond, then)
        ref = self.context.ref()
        made = z3.Z3_mk_ite(ref, cond.as_ast(), then.as_ast(), other.as_ast())
        return z3.BoolRef(made, self.context)

    def iff(self, a: z3.BoolRef, b: z3.BoolRef) -> z3.BoolRef:
        if a is b:
            return self.true
        if a is self.true:
            return b
        if b is self.true:
            return a
        if a is self.false:
            return self.not_(b)
        if b is self.false:
            return self.not_(a)
        return z3.BoolRef(z3.Z3_mk_eq(self.context.ref(), a.as_ast(), b.as_ast()), self.context)
