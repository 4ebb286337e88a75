"""The model as Promela, for SPIN: derived from the declaration, never written by hand.

The operations, the frame and the lock protocol are functions over the Boolean
algebra ``Logic[B]`` (``checker.model.logic``). :class:`Text` interprets them with
Promela expressions (:class:`Expr`, constants folded), as ``encode.py`` does with z3
terms: evaluated on variables named after the state's leaves, the model gives each
action's guard and each variable's new value as an expression over the state
before the step.

The Promela model (:func:`export`):

* one ``bool`` per leaf of the vocabulary, named from ``Model.shared_names`` and
  ``Model.vcpu_names`` (``writable[1]`` becomes ``writable_1``, ``host.x``
  ``host_x``); a vCPU's leaves are arrays indexed by vCPU (``tlb_writable[v]``);
* one ``init`` process whose body is a ``do ... od`` loop with one ``d_step``
  alternative per action instance (operation x acting vCPU x gfn x parameter
  values, in ``semantics.actions`` order), guarded by the action's ``enabled`` and
  the lock's availability (``apply``, ``blocks``); it prints the action's label (seen
  only when SPIN replays a trail), computes the flush into a scratch variable,
  asserts every step property on the step, then assigns every variable the step
  changes (``shared_after``, ``vcpu_after``) and asserts every state property on
  the state it reached;
* the initial states: SPIN has one, the model one per configuration it admits
  (A/D bits, and PML where the era has it: ``Model.configurations``). The
  variables start as the first (no A/D bits); for each other one, an alternative
  of the loop, enabled only in exactly the first initial state, moves to it and
  prints ``@initial <index>``. They add no state and no model step, so SPIN stores
  exactly the model's reachable states; a trail that takes one starts there
  (anything before it is a cycle back to the start).

Assertions are on ``hidden`` scratch variables (not part of SPIN's state, so the
state count is the model's): ``chk_violates_<property>`` is set when the property
is violated for the first time in the search and ``assert(!chk_violates_...)``
fails then, so with ``pan -c0 -e`` the search goes on to the end and writes at most
one trail per property, named by its failed assertion.

Two variants serve the referee (``spin.py``): ``muted`` starts some properties as
already reported, so that replaying one property's trail does not stop at another's
violation on the way; ``shortest`` is for SPIN's breadth-first search, which allows
no hidden variable (see :func:`export`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from checker.engines import semantics
from checker.engines.semantics import Action
from checker.model import (
    PROPERTIES,
    Actor,
    Kind,
    Property,
    Shared,
    System,
    apply,
)
from checker.model.operation import blocks, shared_after, takes_lock, vcpu_after
from checker.model.vocabulary import SPTE_FIELDS, Spte, leaves, rebuild
from checker.rules.specs import paths_table
from checker.text import one_line

# --- Promela expressions --------------------------------------------------------------


class Expr:
    """A Promela Boolean expression: its text, and its structure for folding.

    ``kind`` is ``var``, ``const``, ``not``, ``and``, ``or``, ``eq`` or ``cond``
    (``(c -> a : b)``); ``parts`` are the operands. Two expressions are equal iff
    their texts are. (Not a dataclass: the vocabulary's walk over records takes
    every dataclass for a record, and an expression is a leaf.)"""

    __slots__ = ("_read", "kind", "parts", "text")

    def __init__(self, text: str, kind: str = "var", parts: tuple[Expr, ...] = ()) -> None:
        self.text = text
        self.kind = kind
        self.parts = parts
        self._read: frozenset[str] | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text

    def variables(self) -> frozenset[str]:
        """The variables the expression reads."""
        if self._read is None:
            if self.kind == "var":
                self._read = frozenset((self.text,))
            else:
                self._read = frozenset().union(*(p.variables() for p in self.parts))
        return self._read


TRUE = Expr("true", "const")
FALSE = Expr("false", "const")


def var(name: str) -> Expr:
    return Expr(name)


def _wrapped(x: Expr) -> str:
    """``x`` as an operand of ``&&``, ``||``, ``==`` or ``!``."""
    return f"({x.text})" if x.kind in ("and", "or", "eq") else x.text


class Text:
    """``Logic[Expr]``: Promela expressions, folding constants, double negations,
    repeated and complementary operands of ``&&`` and ``||``, and trivial
    conditionals, so that an action's guard and updates read as the model's
    formulas do."""

    def const(self, value: bool) -> Expr:
        return TRUE if value else FALSE

    def not_(self, a: Expr) -> Expr:
        if a.kind == "const":
            return FALSE if a == TRUE else TRUE
        if a.kind == "not":
            return a.parts[0]
        return Expr("!" + _wrapped(a), "not", (a,))

    def and_(self, *xs: Expr) -> Expr:
        return self._join("and", " && ", TRUE, FALSE, xs)

    def or_(self, *xs: Expr) -> Expr:
        return self._join("or", " || ", FALSE, TRUE, xs)

    def _join(self, kind: str, op: str, unit: Expr, zero: Expr, xs: Sequence[Expr]) -> Expr:
        parts: list[Expr] = []
        seen: set[Expr] = set()
        for x in xs:
            for y in x.parts if x.kind == kind else (x,):
                if y == zero:
                    return zero
                if y == unit or y in seen:
                    continue
                seen.add(y)
                parts.append(y)
        if any(self.not_(y) in seen for y in parts):
            return zero
        if not parts:
            return unit
        if len(parts) == 1:
            return parts[0]
        return Expr(op.join(_wrapped(y) for y in parts), kind, tuple(parts))

    def ite(self, cond: Expr, then: Expr, other: Expr) -> Expr:
        if cond.kind == "const":
            return then if cond == TRUE else other
        if then == other:
            return then
        if then.kind == "const" or other.kind == "const":
            # (c -> 1 : b) = c || b, (c -> 0 : b) = !c && b, and the same for b
            if then == TRUE:
                return self.or_(cond, other)
            if then == FALSE:
                return self.and_(self.not_(cond), other)
            if other == TRUE:
                return self.or_(self.not_(cond), then)
            return self.and_(cond, then)
        return Expr(f"({cond.text} -> {then.text} : {other.text})", "cond", (cond, then, other))

    def iff(self, a: Expr, b: Expr) -> Expr:
        if a == b:
            return TRUE
        if a.kind == "const":
            return b if a == TRUE else self.not_(b)
        if b.kind == "const":
            return a if b == TRUE else self.not_(a)
        if self.not_(a) == b:
            return FALSE
        return Expr(f"{_wrapped(a)} == {_wrapped(b)}", "eq", (a, b))


TEXT = Text()


def substitute(x: Expr, names: dict[str, Expr]) -> Expr:
    """``x`` with the variables in ``names`` replaced, folded again."""
    if x.kind == "var":
        return names.get(x.text, x)
    if x.kind == "const":
        return x
    parts = [substitute(p, names) for p in x.parts]
    if x.kind == "not":
        return TEXT.not_(parts[0])
    if x.kind == "and":
        return TEXT.and_(*parts)
    if x.kind == "or":
        return TEXT.or_(*parts)
    if x.kind == "eq":
        return TEXT.iff(*parts)
    return TEXT.ite(*parts)


def _named(x: Expr, index: str) -> Expr:
    """``x`` with the placeholder vCPU ``[*]`` named ``index``: a renaming of
    variables, one to one, which changes no folding."""
    if "[*]" not in x.text:
        return x
    parts = tuple(_named(p, index) for p in x.parts)
    return Expr(x.text.replace("[*]", index), x.kind, parts)


# --- names ----------------------------------------------------------------------------

#: Promela's keywords and predefined names, which no variable may take
KEYWORDS = frozenset(
    """active assert atomic bit bool break byte c_code c_decl c_expr c_state c_track chan
    d_proctype d_step do else empty enabled eval false fi for full get_priority goto hidden
    if in init inline int len local ltl mtype nempty never nfull np_ od of pc_value print
    printf printm priority proctype provided run select set_priority short show skip
    timeout trace true typedef unless unsigned xr xs""".split()  # noqa: SIM905
)

#: the prefix of the scratch variables, which no state variable may take
SCRATCH = "chk_"


def identifier(name: str) -> str:
    """A vocabulary name as a Promela identifier: ``writable[1]`` is ``writable_1``,
    ``writable[2M]`` is ``writable_2M``, ``host.holds_mmu_lock_write`` is
    ``host_holds_mmu_lock_write``."""
    text = re.sub(r"\[(\d+M?)\]", r"_\1", name).replace(".", "_")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError(f"{name!r} has no Promela identifier")
    if text in KEYWORDS or text.startswith(SCRATCH):
        raise ValueError(f"{name!r} would be the Promela name {text!r}, which is taken")
    return text


# --- the model, evaluated -------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """What the export's header comment says of the check: the rule as the user
    named it, its C text, the paths' name, and the model's hash when the caller
    has it (``checker.report.lock.model_sha256``, computed above this layer)."""

    rule: str
    expression: str
    era: str = "default"
    model_sha256: str | None = None
    #: the command that writes the text again
    command: str | None = None


@dataclass(frozen=True)
class Alternative:
    """One action instance as a ``d_step``: its guard and its statements."""

    action: Action
    index: int
    guard: Expr
    statements: tuple[str, ...]


@dataclass(frozen=True)
class Export:
    """The Promela text of a system at ``vcpus`` vCPUs, and what reading SPIN's
    output back needs: each action by its index, each property by its
    assertion's variable."""

    text: str
    vcpus: int
    #: how many state variables (bools) there are
    variables: int
    actions: tuple[Action, ...]
    #: property name -> the scratch variable its assertion is on
    assertions: dict[str, str]


#: what an alternative prints when SPIN replays a trail: ``@action <index> <label>``,
#: and ``@initial <index>`` for the move to another initial state (its index in
#: ``semantics.initial_states``)
ACTION_LABEL = "@action"
INITIAL_LABEL = "@initial"


def violation_variable(prop: Property) -> str:
    return f"{SCRATCH}violates_{identifier(prop.name)}"


def reported_variable(prop: Property) -> str:
    return f"{SCRATCH}reported_{identifier(prop.name)}"


class _Vocabulary:
    """The system's state as Promela variables: the before-state's records with
    variables for leaves, the initial states, and the declarations."""

    def __init__(self, system: System, vcpus: int) -> None:
        model, shape = system.model, system.shape
        if shape.host_threads != 1:
            raise ValueError("the Promela export has one host thread")
        if vcpus < 1:
            raise ValueError("at least one vCPU")
        self.system, self.vcpus = system, vcpus
        L = TEXT
        self.shared_ids = tuple(identifier(n) for n in model.shared_names(shape))
        self.vcpu_ids = tuple(identifier(n) for n in model.vcpu_names(shape))
        every = [*self.shared_ids, *self.vcpu_ids]
        if len(set(every)) != len(every):
            raise ValueError("two state variables have the same Promela name")
        shared_template = model.initial_shared(L, shape)
        vcpu_template = model.initial_actor(L, shape)
        self.shared: Shared[Expr] = rebuild(shared_template, iter(map(var, self.shared_ids)))
        self.records: tuple[Actor[Expr], ...] = tuple(
            rebuild(vcpu_template, iter(var(f"{n}[{v}]") for n in self.vcpu_ids))
            for v in range(vcpus)
        )
        # the initial states (one per configuration, in canonical order), as constants
        self.initial = [
            (
                list(leaves(model.initial_shared(L, shape, {k: L.const(v) for k, v in c.items()}))),
                list(leaves(model.initial_actor(L, shape))),
            )
            for c in model.configurations()
        ]
        for shared, actor in self.initial:
            if any(x.kind != "const" for x in (*shared, *actor)):
                raise ValueError("an initial state that is not constant")
        self._bystanders: dict[str, list[Expr]] = {}

    def bystander(self, flush: Expr, vcpu: int) -> list[Expr]:
        """The leaves of ``vcpu``'s record after a step ``vcpu`` does not take, and
        which flushes iff ``flush`` (the frame, ``vcpu_after``, evaluated once per
        ``flush`` on a vCPU named ``*``, then named for each)."""
        if flush.text not in self._bystanders:
            anyone = self.records[0]
            template = rebuild(anyone, iter(var(f"{n}[*]") for n in self.vcpu_ids))
            self._bystanders[flush.text] = list(
                leaves(vcpu_after(TEXT, flush, FALSE, template, template))
            )
        return [_named(x, f"[{vcpu}]") for x in self._bystanders[flush.text]]

    def variables(self) -> list[Expr]:
        """Every state variable, shared first, then each vCPU's."""
        return [*leaves(self.shared), *leaves(self.records)]

    def initial_values(self, index: int) -> list[Expr]:
        shared, actor = self.initial[index]
        return [*shared, *(x for _ in range(self.vcpus) for x in actor)]

    def declarations(self) -> list[str]:
        shared, actor = self.initial[0]
        lines = [f"bool {n} = {x};" for n, x in zip(self.shared_ids, shared, strict=True)]
        lines += [
            f"bool {n}[{self.vcpus}] = {x};" for n, x in zip(self.vcpu_ids, actor, strict=True)
        ]
        return lines

    def to_other_initial(self) -> tuple[Expr, list[list[str]]]:
        """Being the first initial state, and for each other one (index 1, 2 ...) the
        assignments that make it that one."""
        L = TEXT
        before = self.variables()
        start = self.initial_values(0)
        here = L.and_(*(L.iff(x, v) for x, v in zip(before, start, strict=True)))
        moves = []
        for i in range(1, len(self.initial)):
            other = self.initial_values(i)
            changed = [(x, v) for x, v, s in zip(before, other, start, strict=True) if v != s]
            moves.append(_assignments(changed))
        return here, moves


def _assignments(targets: list[tuple[Expr, Expr]]) -> list[str]:
    """Promela statements that give every variable its new value at once: in an
    order where none is read after it is assigned, saving an old value to a
    scratch variable where the updates read each other in a cycle."""
    pending = list(targets)
    statements: list[str] = []
    saved = 0
    # how many other pending updates read each variable
    readers: dict[str, int] = {}
    for t, x in pending:
        for name in x.variables() - {t.text}:
            readers[name] = readers.get(name, 0) + 1
    while pending:
        # the first variable no other pending update reads (its own new value is
        # computed before it is assigned)
        ready = next((i for i, (t, _) in enumerate(pending) if not readers.get(t.text)), None)
        if ready is None:
            # a cycle: keep the first one's old value, read it from there
            target = pending[0][0]
            copy = var(f"{SCRATCH}old_{saved}")
            saved += 1
            statements.append(f"{copy} = {target};")
            pending = [(t, substitute(x, {target.text: copy})) for t, x in pending]
            readers[target.text] = 0
            # the copy is read where the target was; it is never assigned again
            readers[copy.text] = sum(copy.text in x.variables() for _, x in pending)
            continue
        t, x = pending.pop(ready)
        statements.append(f"{t} = {x};")
        for name in x.variables() - {t.text}:
            # a saved copy is read, never assigned: it has no count
            if name in readers:
                readers[name] -= 1
    return statements


def _alternatives(vocabulary: _Vocabulary, props: Sequence[Property]) -> list[Alternative]:
    """Every action's alternative (those never enabled left out): the guard, the
    label, the flush, the step properties' assertions, the updates. (The state
    properties' assertions are the caller's.)"""
    L = TEXT
    system, vcpus = vocabulary.system, vocabulary.vcpus
    model, shape = system.model, system.shape
    before = vocabulary.variables()
    found: list[Alternative] = []
    for index, action in enumerate(semantics.actions(vcpus, shape, model)):
        op = model.by_name(action.op)
        record = vocabulary.records[action.vcpu or 0] if op.by_vcpu else vocabulary.shared.hosts[0]
        window = model.window(L, shape, vocabulary.shared, record, action.gfn or 0)
        params = {name: L.const(value) for name, value in action.params}
        out = apply(L, system.rule, system.paths, op, window, params)
        available = []
        if takes_lock(op) and model.locals:
            holders = (*vocabulary.records, *vocabulary.shared.hosts)
            available = [L.not_(blocks(L, op.lock, r, model.locals)) for r in holders]
        guard = L.and_(out.enabled, *available)
        if guard == FALSE:
            continue
        statements = [f'printf("{ACTION_LABEL} {index} {_shown(action)}\\n");']
        flush = out.flush
        if flush.kind not in ("const", "var"):
            statements.append(f"{SCRATCH}flush = {flush};")
            flush = var(f"{SCRATCH}flush")
        for prop in props:
            if prop.kind is Kind.STEP and prop.bad_step is not None:
                bad = prop.bad_step(L, op, window, out)
                if bad != FALSE:
                    statements += _check(prop, bad)
        shared = shared_after(op, out, 0)
        # the frame: the actor's record as the step leaves it; every other vCPU's
        # as it was, but for a flush (evaluated once on a vCPU "*", then named)
        acting = action.vcpu if op.by_vcpu else None
        records: list[list[Expr]] = []
        for v, r in enumerate(vocabulary.records):
            if v == acting:
                mine = vcpu_after(L, flush, TRUE, out.window.actor, r)
                records.append(list(leaves(mine)))
            elif flush == FALSE:
                records.append(list(leaves(r)))
            else:
                records.append(vocabulary.bystander(flush, v))
        after = [*leaves(shared), *(x for r in records for x in r)]
        statements += _assignments([(x, v) for x, v in zip(before, after, strict=True) if v != x])
        found.append(Alternative(action, index, guard, tuple(statements)))
    return found


#: a scratch copy of an old value, and a scratch variable a step assigns
_SAVED = re.compile(rf"\b{SCRATCH}old_\d+\b")
_SCRATCH_ASSIGNED = re.compile(rf"({SCRATCH}flush|{SCRATCH}old_\d+) = ")


def _assigned_scratch(statements: Sequence[str]) -> list[str]:
    """The flush and old-value copies ``statements`` assign, in order."""
    found = [m.group(1) for s in statements if (m := _SCRATCH_ASSIGNED.match(s))]
    return list(dict.fromkeys(found))


def _shown(action: Action) -> str:
    """The action's label as the step table shows it, with its vCPU."""
    return action.label + ("" if action.vcpu is None else f"@vcpu{action.vcpu}")


def _check(prop: Property, bad: Expr) -> list[str]:
    """Set the property's violation flag the first time ``bad`` holds, and assert it."""
    violates, reported = violation_variable(prop), reported_variable(prop)
    return [
        f"{violates} = !{reported} && {_wrapped(bad)};",
        f"{reported} = {reported} || {violates};",
        f"assert(!{violates});",
    ]


def rule_expression(system: System) -> Expr:
    """The rule's ``decide`` on SPTEs of variables ``old_<field>``, ``new_<field>``
    and ``ad_enabled``: what each alternative inlines, as one expression."""
    old = Spte(*(var(f"old_{f}") for f in SPTE_FIELDS))
    new = Spte(*(var(f"new_{f}") for f in SPTE_FIELDS))
    return system.rule.decide(TEXT, old, new, var("ad_enabled"))


def export(
    system: System,
    vcpus: int,
    header: Header | None = None,
    props: Sequence[Property] = PROPERTIES,
    *,
    muted: Collection[str] = (),
    shortest: bool = False,
) -> Export:
    """``system`` at ``vcpus`` vCPUs as Promela, asserting ``props``.

    ``muted`` names properties whose assertions start as already reported (they
    never fail): replaying one property's trail must not stop at another's
    violation on the way. Only the initial values of scratch variables differ, so
    SPIN's trails of the unmuted text replay on it.

    ``shortest`` is the variant for a breadth-first search (``pan`` compiled with
    ``-DBFS``, whose first error is at the least depth): SPIN's BFS has no hidden
    variables, so the scratch ones are plain and reset to 0 at the end of every
    step (the states stored are the model's still, scratch all 0), and both
    initial states are chosen in a first step, so that a trail is one step longer
    than the trace it stands for, whatever its initial state. (The state count is
    then one more: the state before that choice.)
    """
    vocabulary = _Vocabulary(system, vcpus)
    alternatives = _alternatives(vocabulary, props)
    to_other_here, to_others = vocabulary.to_other_initial()
    # the scratch variables: the flush, the old values the updates save, the flags
    copies = sorted(
        {m for a in alternatives for s in a.statements for m in _SAVED.findall(s)}
        | {m for to_other in to_others for s in to_other for m in _SAVED.findall(s)}
    )
    scratch = [f"{SCRATCH}flush", *copies]
    for prop in props:
        scratch += [violation_variable(prop), reported_variable(prop)]
    lines = [*_header(system, vcpus, header, props, shortest), ""]
    lines += ["/* the state: one bool per leaf of the model's vocabulary */"]
    lines += vocabulary.declarations()
    if shortest:
        lines += ["", "/* scratch: 0 in every state stored */"]
    else:
        lines += ["", "/* scratch, not part of the state SPIN stores */"]
    reported = {reported_variable(p) for p in props if p.name in muted}
    for name in scratch:
        value = " = 1" if name in reported else ""
        lines.append(f"{'' if shortest else 'hidden '}byte {name}{value};")
    lines += ["", "/* the state properties, asserted in every state reached */"]
    lines += ["inline check_state() {"]
    body = []
    for prop in props:
        if prop.kind is Kind.STATE and prop.bad_state is not None:
            bad = prop.bad_state(TEXT, vocabulary.shared, vocabulary.records, system.shape)
            body += [f"/* {prop.name}: {_comment(prop.title)} */", *_check(prop, bad)]
    lines += [f"    {s}" for s in body or ["skip"]]
    lines += ["}", "", "init {"]
    initials = [
        [f'printf("{INITIAL_LABEL} {i}\\n");', *to_other]
        for i, to_other in enumerate(to_others, start=1)
    ]
    if shortest:
        lines += ["    /* the initial state: the first (no A/D bits), or another */", "    if"]
        lines.append("    :: d_step { check_state() }")
        for initial in initials:
            lines.append(f"    :: d_step {{ {' '.join(initial)} check_state() }}")
        lines.append("    fi;")
    lines += ["end:", "    do"]
    if not shortest:
        for i, initial in enumerate(initials, start=1):
            lines.append(f"    /* from the first initial state (no A/D bits) to initial {i} */")
            lines.append(f"    :: d_step {{ {to_other_here} ->")
            lines += [f"        {s}" for s in ["check_state();", *initial, "check_state();"]]
            lines.append("    }")
    for alt in alternatives:
        lines.append(f"    /* {_comment(_shown(alt.action))} */")
        lines.append(f"    :: d_step {{ {alt.guard} ->")
        statements = [*alt.statements, "check_state();"]
        if shortest:
            statements += [f"{n} = 0;" for n in _assigned_scratch(alt.statements)]
        lines += [f"        {s}" for s in statements]
        lines.append("    }")
    lines += ["    od", "}", ""]
    assertions = {p.name: violation_variable(p) for p in props}
    actions = semantics.actions(vcpus, system.shape, system.model)
    count = len(vocabulary.variables())
    return Export("\n".join(lines), vcpus, count, actions, assertions)


def _header(
    system: System, vcpus: int, header: Header | None, props: Sequence[Property], shortest: bool
) -> Iterable[str]:
    yield "/*"
    yield " * KVM x86 TLB-flush model, exported from its declaration (checker export-model)."
    if header is not None:
        yield f" * rule {_comment(header.rule)}: {_comment(header.expression)}"
    yield f" * the rule in Promela: {_comment(rule_expression(system).text)}"
    yield f" * paths: {_comment(header.era if header is not None else 'default')}"
    for key, value in paths_table(system.paths).items():
        yield f" *   {key} = {str(value).lower()}"
    shape = system.shape
    yield f" * vCPUs: {vcpus}; gfns: {shape.gfns}; SPTE of each gfn: {list(shape.spte_of or ())}"
    if header is not None and header.model_sha256 is not None:
        yield f" * model sha256: {header.model_sha256}"
        yield " *   (as the lockfile hashes the model: its encoding at these paths and vCPUs)"
    if header is not None and header.command is not None:
        yield f" * written by: {_comment(header.command)}"
    yield f" * properties: {', '.join(p.name for p in props)}"
    yield " *"
    if shortest:
        yield " * For a shortest trail: spin -a model.pml && cc -O2 -DSAFETY -DNOREDUCE -DBFS"
        yield " * -o pan pan.c && ./pan; replay it with spin -t -T model.pml."
    else:
        yield " * Run: spin -a model.pml && cc -O2 -DSAFETY -DNOREDUCE -o pan pan.c &&"
        yield " * ./pan -c0 -e -n: every violated property fails its assertion once, with a"
        yield " * trail (replay the first with spin -t1 -T model.pml). SPIN stores exactly the"
        yield " * model's reachable states: the first alternatives, from the first initial"
        yield " * state (no A/D bits) to each other one, add none."
    yield " */"


def _comment(text: str) -> str:
    """``text`` for a one-line comment: on one line, and unable to end the comment."""
    return one_line(text).replace("*/", "* /")
