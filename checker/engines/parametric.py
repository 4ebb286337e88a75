"""Proofs for every number of vCPUs: an invariant certified over an uninterpreted sort.

The vCPUs become an uninterpreted sort ``VCPU`` (any non-empty domain, so any
N >= 1), their TLB entries two functions ``tlb_cached, tlb_writable: VCPU -> Bool``.
A lemma with k slots is read as ``forall distinct v1..vk: clause``. The acting vCPU
of a step is a constant ``actor``; after the step, the entry of any vCPU w is

    tlb'(w) = none if flush, else actor_tlb' if w = actor, else tlb(w)

which is written into the primed lemmas directly, so no frame axiom needs a
quantifier. Certification is the usual three queries, each UNSAT:

    initiation   init(s) and not I(s)
    consecution  I(s) and step(s, actor, s') and not I(s')    (one query, all operations)
    safety       I(s) and bad(s)  /  I(s) and step and bad(step)

Negated lemmas are existential, so their vCPUs are fresh (Skolem) constants; the
only quantifiers left are the universal ones of I(s), over unary predicates and
constants: decidable, and z3's model-based instantiation decides it.

A state property's bad predicate must say "some vCPU ...": that is checked on two
symbolic entries before it is used with one Skolem vCPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from checker.engines.invariant import Invariant, Lemma
from checker.engines.smt import SEED, Answer, Budget, Symbolic
from checker.model import (
    GFN_FIELDS,
    OPERATIONS,
    PARAMS,
    SPTE_FIELDS,
    Gfn,
    Kind,
    Operation,
    Outcome,
    Property,
    Spte,
    System,
    TlbEntry,
    apply,
    initial_gfn,
)


@dataclass(frozen=True)
class AllVcpusCertificate:
    initiation: Answer
    consecution: Answer
    safety: Answer
    reason: str = ""

    @property
    def ok(self) -> bool:
        return all(a is Answer.UNSAT for a in (self.initiation, self.consecution, self.safety))


class _Vocabulary:
    """Symbols of one (fresh) z3 context."""

    def __init__(self) -> None:
        self.ctx = z3.Context()
        self.logic = Symbolic(self.ctx)
        self.sort = z3.DeclareSort("VCPU", ctx=self.ctx)
        self.boolean = z3.BoolSort(ctx=self.ctx)

    def gfn(self, tag: str) -> Gfn[z3.BoolRef]:
        def b(name: str) -> z3.BoolRef:
            return z3.Bool(f"{name}@{tag}", ctx=self.ctx)

        return Gfn(spte=Spte(**{f: b(f) for f in SPTE_FIELDS}), **{f: b(f) for f in GFN_FIELDS})

    def tlb(self, tag: str) -> tuple[z3.FuncDeclRef, z3.FuncDeclRef]:
        return (
            z3.Function(f"tlb_cached@{tag}", self.sort, self.boolean),
            z3.Function(f"tlb_writable@{tag}", self.sort, self.boolean),
        )

    def vcpu(self, name: str) -> z3.ExprRef:
        return z3.Const(name, self.sort)


def _clause(lemma: Lemma, gfn: Gfn[z3.BoolRef], entry: list[TlbEntry[z3.BoolRef]]) -> z3.BoolRef:
    lits = []
    for lit in lemma.literals:
        var = lit.var
        if var.slot is None:
            x = getattr(gfn.spte if var.field in SPTE_FIELDS else gfn, var.field)
        else:
            x = getattr(entry[var.slot], var.field)
        lits.append(x if lit.positive else z3.Not(x))
    return z3.Or(*lits)


def _entry(tlb: tuple[z3.FuncDeclRef, z3.FuncDeclRef], v: z3.ExprRef) -> TlbEntry[z3.BoolRef]:
    return TlbEntry(cached=tlb[0](v), writable=tlb[1](v))


def _holds(
    vocab: _Vocabulary,
    invariant: Invariant,
    gfn: Gfn[z3.BoolRef],
    tlb: tuple[z3.FuncDeclRef, z3.FuncDeclRef],
) -> z3.BoolRef:
    """I(s): every lemma, universally quantified over distinct vCPUs."""
    parts = []
    for n, lemma in enumerate(invariant.lemmas):
        vs = [z3.Const(f"v{n}_{i}", vocab.sort) for i in range(lemma.slots)]
        body = _clause(lemma, gfn, [_entry(tlb, v) for v in vs])
        if len(vs) >= 2:
            body = z3.Implies(z3.Distinct(*vs), body)
        parts.append(z3.ForAll(vs, body) if vs else body)
    return z3.And(*parts) if parts else vocab.logic.true


def _violated(
    vocab: _Vocabulary, invariant: Invariant, gfn: Gfn[z3.BoolRef], entry_of: object, tag: str
) -> z3.BoolRef:
    """not I(s'), with the vCPUs of each negated lemma as fresh constants."""
    parts = []
    for n, lemma in enumerate(invariant.lemmas):
        ws = [vocab.vcpu(f"w{n}_{i}@{tag}") for i in range(lemma.slots)]
        body = z3.Not(_clause(lemma, gfn, [entry_of(w) for w in ws]))  # type: ignore[operator]
        if len(ws) >= 2:
            body = z3.And(z3.Distinct(*ws), body)
        parts.append(body)
    return z3.Or(*parts) if parts else vocab.logic.false


class AllVcpus:
    """The transition system of ``system`` over an uninterpreted vCPU sort, built once
    and shared by the certification of every property."""

    def __init__(self, system: System) -> None:
        vocab = self.vocab = _Vocabulary()
        L = vocab.logic
        self.g0, self.g1 = vocab.gfn("0"), vocab.gfn("1")
        self.tlb0 = vocab.tlb("0")
        self.actor = actor = vocab.vcpu("actor")

        # initiation: the initial gfn, every TLB entry empty
        v = vocab.vcpu("v")
        self.init = z3.And(
            _gfn_equal(L, self.g0, initial_gfn(L, self.g0.ad_enabled)),
            z3.ForAll([v], z3.And(z3.Not(self.tlb0[0](v)), z3.Not(self.tlb0[1](v)))),
        )

        # one step of any operation, by ``actor`` with free parameters
        self.params = params = {p: z3.Bool(f"param_{p}", ctx=vocab.ctx) for p in PARAMS}
        actor_old = _entry(self.tlb0, actor)
        self.flush = z3.Bool("flush", ctx=vocab.ctx)
        self.actor_new = TlbEntry(
            z3.Bool("actor_cached", ctx=vocab.ctx), z3.Bool("actor_writable", ctx=vocab.ctx)
        )
        #: per operation: its outcome, and ``chosen``, the step constraint of that
        #: operation (enabled, ``g1``, ``flush`` and ``actor_new`` as it says)
        self.operations: list[tuple[Operation, Outcome[z3.BoolRef], z3.BoolRef]] = []
        for op in OPERATIONS:
            out = apply(L, system, op, self.g0, actor_old, {p: params[p] for p in op.params})
            chosen = z3.And(
                out.enabled,
                _gfn_equal(L, self.g1, out.gfn),
                self.flush == out.flush,
                self.actor_new.cached == out.actor_tlb.cached,
                self.actor_new.writable == out.actor_tlb.writable,
            )
            self.operations.append((op, out, chosen))
        self.step = z3.Or(*(chosen for _, _, chosen in self.operations))

    def after(self, w: z3.ExprRef) -> TlbEntry[z3.BoolRef]:
        """vCPU ``w``'s entry after the step."""
        kept = _entry(self.tlb0, w)
        new, flush, actor = self.actor_new, self.flush, self.actor
        return TlbEntry(
            cached=z3.And(z3.Not(flush), z3.If(w == actor, new.cached, kept.cached)),
            writable=z3.And(z3.Not(flush), z3.If(w == actor, new.writable, kept.writable)),
        )

    def bad_state(self, prop: Property) -> z3.BoolRef:
        """``prop`` violated in ``(g0, tlb0)`` by some vCPU ``culprit`` (a state property
        of the form 'some vCPU ...')."""
        assert prop.kind is Kind.STATE and prop.bad_state is not None
        culprit = self.vocab.vcpu("culprit")
        return prop.bad_state(self.vocab.logic, self.g0, [_entry(self.tlb0, culprit)])

    def bad_step(self, prop: Property, only: Operation | None = None) -> z3.BoolRef:
        """The step violates the step property ``prop``: some operation (``only``, if
        given) is chosen and is bad."""
        assert prop.kind is Kind.STEP and prop.bad_step is not None
        L = self.vocab.logic
        cases = [
            z3.And(chosen, prop.bad_step(L, op, self.g0, out))
            for op, out, chosen in self.operations
            if only is None or op is only
        ]
        return z3.Or(*cases) if cases else L.false

    def certify(self, prop: Property, invariant: Invariant, budget: Budget) -> AllVcpusCertificate:
        """Certify ``invariant`` (and ``prop``) for every number of vCPUs."""
        vocab = self.vocab
        if prop.kind is Kind.STATE and not _existential(vocab, prop):
            return AllVcpusCertificate(
                Answer.UNKNOWN,
                Answer.UNKNOWN,
                Answer.UNKNOWN,
                reason=f"{prop.name} is not of the form 'some vCPU ...'",
            )
        now = _holds(vocab, invariant, self.g0, self.tlb0)
        bad = self.bad_state(prop) if prop.kind is Kind.STATE else self.bad_step(prop)
        queries = {
            "initiation": z3.And(self.init, z3.Not(now)),
            "consecution": z3.And(
                now, self.step, _violated(vocab, invariant, self.g1, self.after, "1")
            ),
            "safety": z3.And(now, bad),
        }
        answers = {}
        for name, query in queries.items():
            solver = z3.Solver(ctx=vocab.ctx)
            solver.set("random_seed", SEED)
            solver.set("rlimit", budget.rlimit)
            solver.add(query)
            result = solver.check()
            answers[name] = (
                Answer.UNSAT
                if result == z3.unsat
                else Answer.SAT
                if result == z3.sat
                else Answer.UNKNOWN
            )
        return AllVcpusCertificate(answers["initiation"], answers["consecution"], answers["safety"])


def certify_all(
    system: System, prop: Property, invariant: Invariant, budget: Budget
) -> AllVcpusCertificate:
    """Certify ``invariant`` (and ``prop``) for every number of vCPUs (a one-off:
    build an :class:`AllVcpus` to certify several)."""
    return AllVcpus(system).certify(prop, invariant, budget)


def _gfn_equal(L: Symbolic, x: Gfn[z3.BoolRef], y: Gfn[z3.BoolRef]) -> z3.BoolRef:
    return L.and_(
        *(L.iff(getattr(x.spte, f), getattr(y.spte, f)) for f in SPTE_FIELDS),
        *(L.iff(getattr(x, f), getattr(y, f)) for f in GFN_FIELDS),
    )


def _existential(vocab: _Vocabulary, prop: Property) -> bool:
    """bad(g, [t1, t2]) == bad(g, [t1]) or bad(g, [t2]), and bad(g, [t, t]) == bad(g, [t])."""
    assert prop.bad_state is not None
    L = vocab.logic
    g = vocab.gfn("x")
    t1, t2 = (
        TlbEntry(z3.Bool(f"c{i}", ctx=vocab.ctx), z3.Bool(f"w{i}", ctx=vocab.ctx)) for i in (1, 2)
    )
    both = prop.bad_state(L, g, [t1, t2])
    each = z3.Or(prop.bad_state(L, g, [t1]), prop.bad_state(L, g, [t2]))
    solver = z3.Solver(ctx=vocab.ctx)
    solver.add(both != each)
    return bool(solver.check() == z3.unsat)
