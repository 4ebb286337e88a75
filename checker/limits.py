"""The sizes the checker accepts, from the command line and from files alike.

A trace file or a lockfile that records a size beyond these is refused before the
size is used: a crafted ``vcpus`` of 10**9 must not become 10**9 of anything.
"""

from __future__ import annotations

#: the most vCPUs a model is built or a trace read with
MAX_VCPUS = 256
#: the most guest frames a model is built or a trace read with
MAX_GFNS = 64
#: the longest counterexample searched for, and the most steps a trace file may hold
MAX_DEPTH = 1000

#: the largest trace file read: the longest trace (MAX_DEPTH steps) with the most
#: vCPUs (MAX_VCPUS TLB entries a state) takes about 26 MiB as ITF, 10 MiB as JSON or
#: GraphML; a larger file is refused before it is parsed
MAX_TRACE_BYTES = 32 * 1024 * 1024
#: the largest lockfile, spec file or kernel source file read (the biggest, mmu.c,
#: is about 200 KiB)
MAX_TEXT_BYTES = 8 * 1024 * 1024
#: an explicit exploration's default budget, in states × vCPUs: a stored state of N
#: vCPUs costs N, as its memory (its TLBs, its N-fold steps) and the time spent on
#: it grow with N. The default engines' uses fit (8 vCPUs: 3,345 states up to
#: symmetry, 26,760; the concrete graph of 5 vCPUs: at most 22,240 states, 111,200)
#: and a hopeless one (256 vCPUs: 1,562 states) stops within seconds instead of
#: running out of memory
DEFAULT_MAX_STATES = 400_000
