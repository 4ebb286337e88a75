"""Proofs for every number of vCPUs: an invariant certified over an uninterpreted sort.

The vCPUs become an uninterpreted sort ``VCPU`` (any non-empty domain, so any
N >= 1), and each leaf of a vCPU's record (``tlb_cached``, ``tlb_writable``, its
locals) a function ``VCPU -> Bool``. A lemma with k slots is read as
``forall distinct v1..vk: clause``. The acting vCPU of a step is a constant
``actor``; after the step, the record of any vCPU w is the model's own frame

    vcpu'(w) = vcpu_after(flush, w = actor, actor', vcpu(w))

written into the primed lemmas directly, so no frame axiom needs a quantifier.
When the model tracks ``mmu_lock`` across steps, taking it asks every vCPU
(``forall v: not blocks(vcpu(v))``), a universal in a positive position.
Certification is the usual three queries, each UNSAT:

    initiation   init(s) and not I(s)
    consecution  I(s) and step(s, actor, s') and not I(s')    (one query, all operations)
    safety       I(s) and bad(s)  /  I(s) and step and bad(step)

The queries of every property share one solver, each asserted behind a literal
of its own and retired once answered, as in ``checker.engines.certify``.

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
from checker.engines.smt import (
    SEED,
    Answer,
    Budget,
    SharedSolver,
    Symbolic,
    application,
    conjunction,
    disjunction,
    implication,
    negation,
)
from checker.model import (
    PARAMS,
    Actor,
    ActorKind,
    Kind,
    Operation,
    Outcome,
    Property,
    Reach,
    Shared,
    System,
    Window,
    apply,
)
from checker.model.operation import blocks, shared_after, takes_lock, vcpu_after
from checker.model.vocabulary import equal, leaves_by_name, rebuild


@dataclass(frozen=True)
class AllVcpusCertificate:
    """The three queries' answers over the uninterpreted vCPU sort; ``reason``
    says why none was attempted, if so."""

    initiation: Answer
    consecution: Answer
    safety: Answer
    reason: str = ""

    @property
    def ok(self) -> bool:
        return all(a is Answer.UNSAT for a in (self.initiation, self.consecution, self.safety))


class _Vocabulary:
    """Symbols of one z3 context (a fresh one unless given), for ``system``'s shape."""

    def __init__(self, system: System, context: z3.Context | None = None) -> None:
        self.ctx = context if context is not None else z3.Context()
        self.logic = Symbolic(self.ctx)
        self.sort = z3.DeclareSort("VCPU", ctx=self.ctx)
        self.boolean = z3.BoolSort(ctx=self.ctx)
        self.shape = system.shape
        self.model = model = system.model
        self.shared_template = model.initial_shared(self.logic, self.shape)
        self.vcpu_template = model.initial_actor(self.logic, self.shape)
        self.shared_names = model.shared_names(self.shape)
        self.vcpu_names = model.vcpu_names(self.shape)

    def shared(self, tag: str) -> Shared[z3.BoolRef]:
        return rebuild(  # type: ignore[no-any-return]
            self.shared_template,
            iter([z3.Bool(f"{name}@{tag}", ctx=self.ctx) for name in self.shared_names]),
        )

    def records(self, tag: str) -> tuple[z3.FuncDeclRef, ...]:
        """One function per leaf of a vCPU's record."""
        return tuple(
            z3.Function(f"{name}@{tag}", self.sort, self.boolean) for name in self.vcpu_names
        )

    def record(self, functions: tuple[z3.FuncDeclRef, ...], v: z3.ExprRef) -> Actor[z3.BoolRef]:
        """vCPU ``v``'s record."""
        ctx = self.ctx
        return rebuild(  # type: ignore[no-any-return]
            self.vcpu_template, iter([application(fn, v, ctx) for fn in functions])
        )

    def vcpu(self, name: str) -> z3.ExprRef:
        return z3.Const(name, self.sort)


def _clause(
    vocab: _Vocabulary,
    lemma: Lemma,
    shared: dict[str, z3.BoolRef],
    records: list[dict[str, z3.BoolRef]],
) -> z3.BoolRef:
    """The lemma's clause over ``shared`` and the slots' ``records`` (each a leaf
    by its name)."""
    ctx = vocab.ctx
    lits = []
    for lit in lemma.literals:
        var = lit.var
        x = shared[var.field] if var.slot is None else records[var.slot][var.field]
        lits.append(x if lit.positive else negation(x, ctx))
    return disjunction(lits, ctx)


def _holds(
    vocab: _Vocabulary,
    invariant: Invariant,
    shared: Shared[z3.BoolRef],
    functions: tuple[z3.FuncDeclRef, ...],
) -> z3.BoolRef:
    """I(s): every lemma, universally quantified over distinct vCPUs."""
    ctx = vocab.ctx
    named = leaves_by_name(vocab.shared_names, shared)
    parts = []
    for n, lemma in enumerate(invariant.lemmas):
        vs = [z3.Const(f"v{n}_{i}", vocab.sort) for i in range(lemma.slots)]
        records = [leaves_by_name(vocab.vcpu_names, vocab.record(functions, v)) for v in vs]
        body = _clause(vocab, lemma, named, records)
        if len(vs) >= 2:
            body = implication(z3.Distinct(*vs), body, ctx)
        parts.append(z3.ForAll(vs, body) if vs else body)
    return conjunction(parts, ctx) if parts else vocab.logic.true


def _violated(
    vocab: _Vocabulary,
    invariant: Invariant,
    shared: Shared[z3.BoolRef],
    record_of: object,
    tag: str,
) -> z3.BoolRef:
    """not I(s'), with the vCPUs of each negated lemma as fresh constants."""
    ctx = vocab.ctx
    named = leaves_by_name(vocab.shared_names, shared)
    parts = []
    for n, lemma in enumerate(invariant.lemmas):
        ws = [vocab.vcpu(f"w{n}_{i}@{tag}") for i in range(lemma.slots)]
        records = [leaves_by_name(vocab.vcpu_names, record_of(w)) for w in ws]  # type: ignore[operator]
        body = negation(_clause(vocab, lemma, named, records), ctx)
        if len(ws) >= 2:
            body = conjunction([z3.Distinct(*ws), body], ctx)
        parts.append(body)
    return disjunction(parts, ctx) if parts else vocab.logic.false


@dataclass(frozen=True)
class _Case:
    """One operation's step from a window of vCPU records, as z3 terms."""

    op: Operation
    before: Window[z3.BoolRef]
    outcome: Outcome[z3.BoolRef]
    #: the step constraint of this case: enabled, ``g1``, ``flush`` and ``actor_new``
    #: as it says
    chosen: z3.BoolRef


class AllVcpus:
    """The transition system of ``system`` over an uninterpreted vCPU sort, built once
    and shared by the certification of every property; its terms live in
    ``context`` (a fresh one unless given)."""

    def __init__(self, system: System, context: z3.Context | None = None) -> None:
        vocab = self.vocab = _Vocabulary(system, context)
        L = vocab.logic
        shape = system.shape
        if shape.host_threads != 1:
            raise ValueError("the parametric encoding has one host thread")
        self.g0, self.g1 = vocab.shared("0"), vocab.shared("1")
        self.tlb0 = vocab.records("0")
        self.actor = actor = vocab.vcpu("actor")

        # initiation: the initial shared state, every vCPU's record empty
        v = vocab.vcpu("v")
        model = system.model
        config = model.config_of(self.g0.slot)
        start = model.initial_shared(L, shape, config)
        empty = model.initial_actor(L, shape)
        self.init = z3.And(
            model.admits(L, config),
            equal(L, self.g0, start),
            z3.ForAll([v], equal(L, vocab.record(self.tlb0, v), empty)),
        )

        # one step of any operation, by ``actor`` with free parameters
        self.params = params = {p: z3.Bool(f"param_{p}", ctx=vocab.ctx) for p in PARAMS}
        actor_old = vocab.record(self.tlb0, actor)
        self.flush = z3.Bool("flush", ctx=vocab.ctx)
        self.actor_new: Actor[z3.BoolRef] = rebuild(
            vocab.vcpu_template,
            iter([z3.Bool(f"actor_{name}", ctx=vocab.ctx) for name in vocab.vcpu_names]),
        )
        available = self._available(vocab)
        #: per operation and gfn it reaches: its window, outcome and step constraint
        self.cases: list[_Case] = []
        for op in model.operations:
            vcpu_op = op.actor is ActorKind.VCPU
            record = actor_old if vcpu_op else self.g0.hosts[0]
            for g in range(shape.gfns) if op.reach is Reach.GFN else range(1):
                before = model.window(L, shape, self.g0, record, g)
                out = apply(
                    L, system.rule, system.paths, op, before, {p: params[p] for p in op.params}
                )
                mine = out.window.actor if vcpu_op else actor_old
                chosen = z3.And(
                    out.enabled,
                    *(available.get(op.lock, []) if takes_lock(op) else []),
                    equal(L, self.g1, shared_after(op, out, 0)),
                    self.flush == out.flush,
                    equal(L, self.actor_new, mine),
                )
                self.cases.append(_Case(op, before, out, chosen))
        self.step = z3.Or(*(c.chosen for c in self.cases))
        #: the solver the certifications share, by work budget (rlimit)
        self._solvers: dict[int, SharedSolver] = {}

    def _available(self, vocab: _Vocabulary) -> dict[object, list[z3.BoolRef]]:
        """Per lock mode: no vCPU and no host thread keeps a step from taking it."""
        found: dict[object, list[z3.BoolRef]] = {}
        L = vocab.logic
        held = vocab.model.locals
        for op in vocab.model.operations:
            # one constraint per mode, made by the first step that takes the lock in
            # it (a step inside a section it already holds asks nothing)
            if op.lock in found or not takes_lock(op) or not held:
                continue
            w = vocab.vcpu(f"holder_{op.lock.value}")
            holders = [blocks(L, op.lock, h, held) for h in self.g0.hosts]
            vcpus = z3.ForAll([w], z3.Not(blocks(L, op.lock, vocab.record(self.tlb0, w), held)))
            found[op.lock] = [vcpus, *(z3.Not(h) for h in holders)]
        return found

    def after(self, w: z3.ExprRef) -> Actor[z3.BoolRef]:
        """vCPU ``w``'s record after the step."""
        old = self.vocab.record(self.tlb0, w)
        return vcpu_after(self.vocab.logic, self.flush, w == self.actor, self.actor_new, old)

    def bad_state(self, prop: Property) -> z3.BoolRef:
        """``prop`` violated in ``g0`` by some vCPU ``culprit`` (a state property
        of the form 'some vCPU ...')."""
        assert prop.kind is Kind.STATE and prop.bad_state is not None
        culprit = self.vocab.vcpu("culprit")
        record = self.vocab.record(self.tlb0, culprit)
        return prop.bad_state(self.vocab.logic, self.g0, [record], self.vocab.shape)

    def bad_step(
        self, prop: Property, only: Operation | None = None, gfn: int | None = None
    ) -> z3.BoolRef:
        """The step violates the step property ``prop``: some operation (``only``, on
        ``gfn``, if given) is chosen and is bad."""
        assert prop.kind is Kind.STEP and prop.bad_step is not None
        L = self.vocab.logic
        ctx = self.vocab.ctx
        cases = [
            conjunction([c.chosen, prop.bad_step(L, c.op, c.before, c.outcome)], ctx)
            for c in self.cases
            if (only is None or c.op is only) and (gfn is None or c.before.gfn == gfn)
        ]
        return disjunction(cases, ctx) if cases else L.false

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
        ctx = vocab.ctx
        now = _holds(vocab, invariant, self.g0, self.tlb0)
        bad = self.bad_state(prop) if prop.kind is Kind.STATE else self.bad_step(prop)
        queries = {
            "initiation": conjunction([self.init, negation(now, ctx)], ctx),
            "consecution": conjunction(
                [now, self.step, _violated(vocab, invariant, self.g1, self.after, "1")], ctx
            ),
            "safety": conjunction([now, bad], ctx),
        }
        # one solver for every property's queries (with quantifiers: not QF_FD)
        shared = self._solvers.get(budget.rlimit)
        if shared is None:
            solver = z3.Solver(ctx=ctx)
            solver.set("random_seed", SEED)
            solver.set("rlimit", budget.rlimit)
            shared = self._solvers[budget.rlimit] = SharedSolver(solver)
        answers = {name: shared.decide(name, query) for name, query in queries.items()}
        if shared.spoiled:
            self._solvers.pop(budget.rlimit, None)  # not used again
        return AllVcpusCertificate(answers["initiation"], answers["consecution"], answers["safety"])


def certify_all(
    system: System, prop: Property, invariant: Invariant, budget: Budget
) -> AllVcpusCertificate:
    """Certify ``invariant`` (and ``prop``) for every number of vCPUs (a one-off:
    build an :class:`AllVcpus` to certify several)."""
    return AllVcpus(system).certify(prop, invariant, budget)


def _existential(vocab: _Vocabulary, prop: Property) -> bool:
    """bad(s, [r1, r2]) == bad(s, [r1]) or bad(s, [r2]) on arbitrary records: the
    property says "some vCPU ..."."""
    assert prop.bad_state is not None
    L = vocab.logic
    shape = vocab.shape
    g = vocab.shared("x")
    r1, r2 = (
        rebuild(
            vocab.vcpu_template,
            iter([z3.Bool(f"{name}#{i}", ctx=vocab.ctx) for name in vocab.vcpu_names]),
        )
        for i in (1, 2)
    )
    both = prop.bad_state(L, g, [r1, r2], shape)
    each = z3.Or(prop.bad_state(L, g, [r1], shape), prop.bad_state(L, g, [r2], shape))
    solver = z3.Solver(ctx=vocab.ctx)
    solver.add(both != each)
    return bool(solver.check() == z3.unsat)
