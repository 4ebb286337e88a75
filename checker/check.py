"""Deciding each property of a rule: prove it for all depths, or show the shortest trace.

For a property P and N vCPUs:

0. A step property that no step from any state can violate is proved with the
   invariant ``true`` (one query), before anything more expensive.
1. Spacer looks for an inductive invariant with ``min(N, 2)`` vCPUs. Its lemmas
   are vCPU-symmetric schemas; instantiated over N vCPUs they must pass
   certification (``checker.certify``) at N. If they do not, Spacer runs again
   with N vCPUs and its own invariant must pass. P then holds for every depth.
2. If Spacer finds P reachable-violated, BMC at N gives the shortest canonical
   trace (a violation with fewer vCPUs is one with N: extra vCPUs stay idle), and
   the trace is replayed through the step function before it is reported.
3. If Spacer gives up, BMC still looks for a trace up to the depth bound; without
   one the verdict is inconclusive, never "holds".

Nothing here prints: results are values for the CLI to show.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import z3

from checker import bmc, spacer
from checker.certify import Certificate, certify, replay
from checker.encode import Encoding
from checker.errors import InternalError
from checker.invariant import Invariant
from checker.model import Kind, Paths, Property, System
from checker.smt import Answer, Budget
from checker.specs import Rule
from checker.trace import Trace

#: vCPUs with which invariants are searched before being lifted to N
LIFT_FROM = 2
DEFAULT_DEPTH = 30
MAX_VCPUS = 256


class Verdict(enum.Enum):
    HOLDS = "holds"
    VIOLATED = "violated"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Options:
    vcpus: int = 2
    #: the paths around the rule (dirty-log flushes, aging, prefetch)
    paths: Paths = field(default_factory=Paths)
    #: BMC bound: the longest counterexample searched for
    depth: int = DEFAULT_DEPTH
    budget: Budget = field(default_factory=Budget)


@dataclass(frozen=True)
class Proof:
    invariant: Invariant
    #: vCPUs Spacer searched with; the invariant was lifted from there
    found_with: int
    certificate: Certificate


@dataclass(frozen=True)
class PropertyResult:
    prop: Property
    verdict: Verdict
    engine: str
    proof: Proof | None = None
    trace: Trace | None = None
    reason: str = ""


class Encodings:
    """One encoding per vCPU count for a system, shared by every property and engine."""

    def __init__(self, system: System) -> None:
        self.system = system
        self._by_vcpus: dict[int, Encoding] = {}

    def __call__(self, vcpus: int) -> Encoding:
        if vcpus not in self._by_vcpus:
            self._by_vcpus[vcpus] = Encoding(self.system, vcpus)
        return self._by_vcpus[vcpus]


def check_property(
    rule: Rule, prop: Property, options: Options, encodings: Encodings | None = None
) -> PropertyResult:
    n = options.vcpus
    system = System(rule, options.paths)
    encoding = encodings or Encodings(system)
    if encoding.system.rule is not rule or encoding.system.paths != options.paths:
        raise ValueError("encodings of another rule or other paths")
    if prop.kind is Kind.STEP:
        # a step property may hold from every state (invariant "true"): one plain
        # query, much cheaper than a Spacer run
        certificate = certify(encoding(n), prop, Invariant(()), options.budget)
        if certificate.ok:
            proof = Proof(Invariant(()), n, certificate)
            return PropertyResult(prop, Verdict.HOLDS, "induction", proof=proof)
    # search with few vCPUs first and lift; if the lifted invariant is not inductive
    # at n, search again with n
    for searched in dict.fromkeys((min(n, LIFT_FROM), n)):
        # Spacer's search depends on the order z3 terms were created in, so it
        # gets a context of its own, built the same way every time: the same
        # invariant whatever ran before in this process
        found = spacer.prove(Encoding(system, searched, z3.Context()), prop, options.budget)
        if found.answer is not Answer.UNSAT:
            break
        assert found.invariant is not None
        certificate = certify(encoding(n), prop, found.invariant, options.budget)
        if certificate.ok:
            proof = Proof(found.invariant, searched, certificate)
            return PropertyResult(prop, Verdict.HOLDS, "spacer", proof=proof)
        if certificate.unknown:
            reason = "certification of the invariant ran out of budget"
            return PropertyResult(prop, Verdict.INCONCLUSIVE, "spacer", reason=reason)
    else:
        raise InternalError(f"{prop.name}: Spacer's invariant at {n} vCPUs failed certification")

    # violated, or Spacer gave up: look for the shortest trace
    depth = max(options.depth, found.trace_length or 0)
    result = bmc.shortest_counterexample(encoding(n), prop, depth, options.budget)
    if result.answer is Answer.SAT and result.trace is not None:
        trace = replay(system, rule.name, prop, result.trace)
        return PropertyResult(prop, Verdict.VIOLATED, "bmc", trace=trace)
    if found.answer is Answer.SAT and result.answer is Answer.UNSAT:
        raise InternalError(
            f"{prop.name}: Spacer found a violation with {searched} vCPUs that BMC "
            f"does not reach within {depth} steps with {n}"
        )
    reasons = [r for r in (found.reason, result.reason) if r]
    if result.answer is Answer.UNSAT:
        reasons.append(f"no violation within {depth} steps")
    return PropertyResult(prop, Verdict.INCONCLUSIVE, "spacer+bmc", reason="; ".join(reasons))


def exit_code(results: list[PropertyResult]) -> int:
    """0 every property holds, 1 a violation, 3 otherwise inconclusive."""
    verdicts = {r.verdict for r in results}
    if Verdict.VIOLATED in verdicts:
        return 1
    if Verdict.INCONCLUSIVE in verdicts:
        return 3
    return 0
