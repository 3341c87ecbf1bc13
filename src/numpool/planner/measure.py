"""Measuring func on the real input, on its first call: every result is kept.

A call's items (rows or tasks) are walked in order by a :class:`Walker`;
items ``[0, done)`` are finished, and nothing measured here is thrown away::

    head    the first items in the caller's thread, in blocks of 1, 4, 16, ...
            until one takes PROBE_S or PROBE_FRACTION of the input is done:
            serial seconds per item, and whether func ran native threads (BLAS)
    stage   rounds of: k items in the caller, then k items on each pool thread
            at once; the speed-up of threads is the lowest serial seconds per
            item over the lowest parallel ones (a slow moment of the machine
            only ever slows a half down, so the lowest figures are the truest);
            the output rows of each round are faulted in first, so that fresh
            pages, which later calls do not pay, are not what is timed

In a parallel half the blocks start together: each waits at a barrier until
every thread has woken, so the hand-off to idle threads (a millisecond on a
small VM; the machine profile prices it) is left out, and a func that holds
the GIL cannot hide it: its blocks then run one after the other. The half is
timed from the blocks' start to the last one's end, as the workers saw them,
and each block's thread reports its own CPU time. Their sum over the half's
span is how many cores the blocks used at once, and over the share of a core
the serial half just got, how many times one thread's worth (:func:`gil_free`):
a func that holds the GIL gets one thread's worth at most, however many
threads wait their turn; one that releases it gets more, even when memory
bandwidth leaves it little speed-up, and even when other programs keep the
cores busy (they slow both halves alike). A func that mostly waits (sleeps,
I/O) uses little CPU either way: then nothing is read (``gil_free`` None).
"""

from __future__ import annotations

import math
import mmap
import time
from dataclasses import dataclass
from typing import Any, Protocol

try:  # (not on Windows; RUSAGE_THREAD is Linux's)
    import resource

    _RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)
except ImportError:  # pragma: no cover
    _RUSAGE_THREAD = None

#: what one page fault brings in
PAGE_BYTES = mmap.PAGESIZE

__all__ = [
    "FIRST_ROWS",
    "Head",
    "Stage",
    "Walker",
    "call_from_probe",
    "gil_free",
    "head",
    "native",
    "per_row_and_call",
    "threads_stage",
    "warm_wall",
]

#: a head block is timed until it takes this long ...
PROBE_S = 1e-3
#: a call's first block (the one that gives the output's layout) has this many rows
#: when it can: a row alone is computed by other kernels than any longer block
#: (BLAS's matrix-vector product for ``b @ W``; a strided reduction for
#: ``b.sum(axis=1)`` of a Fortran-ordered x), so its bits could differ from
#: ``func(x)``'s where a block of two or more rows gives them exactly
FIRST_ROWS = 2
#: (a head block is timed until it takes PROBE_S) ... or until this fraction of the
#: input is done (a small input is then measured on blocks big enough to time func
#: rather than numpool's own cost per block)
PROBE_FRACTION = 1 / 2
#: each head block this many times the last
GROWTH = 4
#: a head block GROWTH times the rows of the one before that took less than this share
#: of GROWTH times as long: func's own cost per call (a setup, a table built, a loop of
#: NumPy calls per block) still outweighs its rows', and the head goes on growing ...
LINEAR_SHARE = 0.5
#: ... while its next block holds at most this share of the rows left
HEAD_SHARE = 0.1
#: func's cost per call, fitted on the head's last two blocks, counts only above this
#: share of the last block's time (below, it is the noise of two timings)
CALL_SHARE = 0.25
#: func's cost per call read off a later call's first rows counts from this share of
#: one of its blocks' rows (a 10th more per block, in every block; the dial's 3 ms
#: in blocks of 12.5 ms also made its NumPy calls wait for each other's GIL: 2x)
PROBE_SHARE = 0.1
#: least work per thread in a stage round (the scheduler's slices are milliseconds)
STAGE_BLOCK_S = 2e-3
#: rounds at most, and at most this fraction of what remains
STAGE_ROUNDS = 3
STAGE_FRACTION = 1 / 2
#: a serial block whose CPU time exceeds its wall time this much ran native threads
NATIVE_THREADS = 1.3
#: cores a parallel half used at once, over the share of a core its serial half got,
#: above which func released the GIL (one that holds it: at most 1; one that
#: releases it: 2 on 2 idle cores, about 1.3-2 when other programs are busy too)
GIL_FREE_CORES = 1.2
#: below this share of a core in the serial half, func mostly waits (sleeps, I/O) or
#: the machine is overloaded: CPU time then says nothing of the GIL (gil_free None)
MIN_SHARE = 0.5
#: how long idle OpenBLAS threads spin before sleeping (its THREAD_TIMEOUT, 2^28
#: cycles): a parallel half started sooner competes with them
BLAS_SPIN_S = 0.1


class Walker(Protocol):
    """A call's items, run in order; ``done`` advances as they finish."""

    n: int
    done: int
    #: CPU seconds of each block of the last ``parallel(..., together=True)``
    cpu: list[float]

    def serial(self, a: int, b: int) -> tuple[float, float]:
        """Run items a:b in the caller's thread: (wall seconds, CPU seconds)."""
        ...

    def warm(self, a: int, b: int) -> None:
        """Fault in what items a:b will write, so that timing them times func."""
        ...

    def remote(self, backend: Any, a: int, b: int) -> tuple[float, float]:
        """Run items a:b as one block on ``backend``'s workers: its seconds there."""
        ...

    def parallel(
        self, backend: Any, a: int, b: int, pieces: int, together: bool = False
    ) -> list[tuple[float, float]]:
        """Run items a:b on ``backend`` as ``pieces`` blocks: when each block started
        and ended, as the workers saw it (perf_counter). ``together``: the blocks
        wait for each other before starting (threads only)."""
        ...


@dataclass(frozen=True)
class Head:
    item_s: float
    bound: bool
    native: float
    seconds: float
    #: func's own seconds per call, besides its rows' (0.0: too little to tell)
    call_s: float = 0.0


@dataclass(frozen=True)
class Stage:
    speedup: float
    trusted: bool
    rounds: int
    serial_item_s: float
    #: the blocks' threads were on a core most of the time: func releases the GIL
    gil_free: bool | None


def head(
    walker: Walker, grow: bool = True, on: Any = None, fault_bytes_per_s: float = 0.0
) -> Head:
    """Run the first items in the caller until one block takes PROBE_S (see the module
    docstring); with ``grow=False`` just the first block (FIRST_ROWS items). Seconds
    per item come from the last (largest) block: the first ones carry the call's
    warm-up and numpool's own cost per block. ``on``: run the blocks on that
    backend's workers instead, timed as they saw them.

    A func may cost much per call besides its rows (a factorisation, a table or a
    tree built from a fixed argument, a Python loop of NumPy calls): then a block
    GROWTH times longer takes little more time. While so (:data:`LINEAR_SHARE`), and
    while the next block holds at most HEAD_SHARE of the rows left, the head goes on
    growing; a line through its smallest block (the first left out) and its last then
    gives the seconds per row and per call (``call_s``, counted above CALL_SHARE of the last
    block): block sizes must not pay that call again and again. A func of 1 us per
    row and 6.5 ms per call read 0.8 ms per row on its second block.

    ``fault_bytes_per_s`` (the machine's measured rate; 0: leave the time as it is):
    the pages the caller's thread faulted in during the last block are taken off
    its time (:func:`without_faults`). In a fresh process each block's temporaries
    are new memory: ``a * b + c`` over 300k rows read 14 ns per row cold, against
    0.5 ns warm, and later calls were cut into 8 blocks for 0.15 ms of work."""
    t_start = time.perf_counter()
    limit = walker.n if not grow else max(1, math.ceil(walker.n * PROBE_FRACTION))
    size = FIRST_ROWS
    first = walker.done
    wall = raw = cpu = 0.0
    k = 1
    prev: tuple[int, float] | None = None  # the block before, the first left out
    early: tuple[int, float] | None = None  # the smallest block but the first
    while True:
        a = walker.done
        k = max(1, min(size if grow else FIRST_ROWS, limit - a))
        if on is None:
            f0 = thread_faults()
            wall, cpu = walker.serial(a, a + k)
            raw = wall  # (cores from both with the faults: the kernel's CPU time)
            f1 = thread_faults()
            if f0 is not None and f1 is not None:
                wall = without_faults(wall, f1 - f0, fault_bytes_per_s)
        else:
            wall, cpu = walker.remote(on, a, a + k)
            raw = wall
        if not grow or walker.done >= limit:
            break
        if wall >= PROBE_S and a > first:  # (never the first block: it carries warm-up)
            rows_tell = prev is not None and wall >= LINEAR_SHARE * GROWTH * prev[1]
            if rows_tell or k * GROWTH > HEAD_SHARE * (walker.n - walker.done):
                break
        if a > first:
            prev = (k, wall)
            early = early or prev
        size *= GROWTH
    # the line from the smallest block to the last (the widest span: a func's cost per
    # call is as noisy as its rows', and rows may cost more once out of a cache); none
    # when the last is microseconds (numpool's and NumPy's own costs, the timer's noise)
    item_s, call_s = per_row_and_call(early if wall >= PROBE_S else None, k, wall)
    bound = grow and wall < PROBE_S / 10
    return Head(item_s, bound, native(cpu, raw), time.perf_counter() - t_start, call_s)


def per_row_and_call(prev: tuple[int, float] | None, k: int, wall: float) -> tuple[float, float]:
    """(seconds per row, seconds per call) of a func whose last head block took
    ``wall`` for ``k`` rows, and the block before it ``prev`` (rows, seconds; None
    when there was none after the first): the line through the two, when the
    call's share of the last block is at least CALL_SHARE; else (wall / k, 0.0), as
    when the last block took no longer than the one before (a slow moment)."""
    k = max(1, k)
    if prev is None or prev[0] >= k or wall <= prev[1]:
        return wall / k, 0.0  # (more rows in no more time: a slow moment, not a line)
    pk, pw = prev
    call_s = wall - (wall - pw) / (k - pk) * k
    if call_s < CALL_SHARE * wall:
        return wall / k, 0.0
    call_s = min(call_s, wall * (1 - 1e-3))  # (rows that cost nothing still cost)
    return (wall - call_s) / k, call_s


def call_from_probe(
    probe_s: float,
    rows: int,
    row_s: float,
    blocks: int,
    task_s: float = 0.0,
    busy_s: float | None = None,
) -> float:
    """func's own seconds per call, from a call of ``rows`` rows in ``blocks`` blocks
    whose first FIRST_ROWS rows, run alone in the caller, took ``probe_s`` (a whole
    call takes ``row_s`` per row): the probe less its rows, when that is at least
    PROBE_SHARE of a block's rows, what handing a block over costs (``task_s``:
    below, the block rule's blocks already hold ten such calls' worth) and a tenth
    of PROBE_S (below, as in :func:`head`, it is NumPy's and numpool's own cost per
    call and the timer's noise), and at most half the whole call (above, the probe
    was slowed by something else: a call cost cannot be most of a call that pays it
    once); and when the blocks, busy ``busy_s`` seconds in all, show at least half
    of what the other blocks' calls would have added to the rows (a slow moment of
    the probe alone is not a cost every block pays); else 0.0.

    A func whose small inputs run whole on their first call has no head to tell its
    cost per call from; a later call's first rows do: the envelope's dial (1 us a
    row and 3-4 ms a call, 1e5 rows) took 3-4 ms on them, and its 8 blocks of
    12,500 rows paid 8 calls where a whole call paid one."""
    if blocks < 2 or rows <= FIRST_ROWS or row_s <= 0:
        return 0.0
    call_s = probe_s - FIRST_ROWS * row_s
    per_block = (rows - FIRST_ROWS) / (blocks - 1) * row_s
    least = max(PROBE_SHARE * per_block, task_s, PROBE_S / 10)
    if call_s < least or call_s > 0.5 * rows * row_s:
        return 0.0
    if busy_s is not None and busy_s - rows * row_s < 0.5 * (blocks - 1) * call_s:
        return 0.0
    return call_s


#: glibc's largest mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit): an array at
#: least this big is mapped anew by every allocation, and unmapped when freed, so
#: func(x) faults its output in every call; smaller ones come back from the heap
FRESH_ALLOC_BYTES = 32 << 20
#: what a first call's time may be lowered to at most, for its fresh output
WARM_FLOOR = 0.2


def warm_wall(
    wall: float, out_bytes: float, fault_bytes_per_s: float, faults: int | None = None
) -> float:
    """What a first whole call that took ``wall`` would take warm: the fresh memory it
    wrote, faulted in at the machine's measured rate, where later calls get it back
    from malloc's heap (when its output is under FRESH_ALLOC_BYTES; a bigger one is
    mapped anew every call, so it costs every call as much). ``faults``: the pages the
    call's thread was seen to fault in (:func:`thread_faults`), its temporaries'
    included; None where that cannot be read: then its whole output of
    ``out_bytes`` counts as fresh. Never below WARM_FLOOR of ``wall``: the rest of a
    cold call (caches, a first run of its code) is not modelled, only the part that
    can be named.

    Without it the first call of ``a * b + c`` over 300k float64 (2.1 ms: 2.4 MB of
    output faulted in at 1.5 GB/s) made serial look 7x its warm 0.15 ms, and auto
    kept threads at 0.7-1.4 ms for good. Counting the output alone, a 10k call whose
    output came warm from the heap read 2 us for 9."""
    if out_bytes <= 0 or out_bytes >= FRESH_ALLOC_BYTES or fault_bytes_per_s <= 0:
        return wall
    fresh = out_bytes if faults is None else faults * PAGE_BYTES
    return max(WARM_FLOOR * wall, wall - fresh / fault_bytes_per_s)


def thread_faults() -> int | None:
    """Minor page faults of the calling thread so far; None where the system cannot
    say (no RUSAGE_THREAD: not Linux)."""
    if _RUSAGE_THREAD is None:
        return None
    try:
        return int(resource.getrusage(_RUSAGE_THREAD).ru_minflt)
    except (OSError, ValueError):
        return None


def without_faults(wall: float, faults: int, fault_bytes_per_s: float) -> float:
    """A block's ``wall`` seconds without its ``faults`` fresh pages, priced at the
    machine's ``fault_bytes_per_s``; never below WARM_FLOOR of ``wall`` (see
    :func:`warm_wall`)."""
    if faults <= 0 or fault_bytes_per_s <= 0:
        return wall
    return max(WARM_FLOOR * wall, wall - faults * PAGE_BYTES / fault_bytes_per_s)


def native(cpu: float, wall: float) -> float:
    """Cores a serial block kept busy by itself: the process's CPU time over wall time,
    when a loaded BLAS/OpenMP pool may run several threads (else 1: what else used
    CPU meanwhile was not func; idle OpenBLAS threads spin for a while after a call)."""
    from ..blas import native_threads

    if wall <= 0 or cpu <= NATIVE_THREADS * wall:
        return 1.0
    return min(cpu / wall, float(native_threads()))


def threads_stage(
    walker: Walker, threads: Any, item_s: float, call_s: float = 0.0
) -> Stage | None:
    """Paired rounds on ``threads`` (see the module docstring); None when the input
    has too few items left for one round. ``call_s``: func's own cost per call (the
    head's), which every block of a round pays: its blocks then hold rows worth at
    least 1 / PROBE_SHARE of it, as the call's blocks will (a round of small blocks
    that are mostly the call measures the call, not the rows: the dial's loop of
    NumPy calls on a few rows each read 1.09x and "holds the GIL")."""
    w = threads.workers
    least = max(STAGE_BLOCK_S, call_s / PROBE_SHARE)
    k = max(1, math.ceil(least / max(item_s, 1e-12)))
    budget = int((walker.n - walker.done) * STAGE_FRACTION)
    serial_best = parallel_best = math.inf
    rounds = 0
    full = False
    cores: float | None = None
    while rounds < STAGE_ROUNDS:
        kk = min(k, budget // (w + 1), (walker.n - walker.done) // (w + 1))
        if kk < 1:
            break
        a = walker.done
        walker.warm(a, a + (w + 1) * kk)  # both halves of the round
        wall, cpu = walker.serial(a, a + kk)
        serial_best = min(serial_best, wall / kk)
        # the share of a core this process got just now (less on a busy machine);
        # a serial block that ran native threads counts as one whole core
        share = min(1.0, cpu / max(wall, 1e-12))
        if native(cpu, wall) > NATIVE_THREADS:
            time.sleep(BLAS_SPIN_S)
        a = walker.done
        walker.cpu.clear()
        spans = walker.parallel(threads, a, a + w * kk, w, together=True)
        span = max(end for _, end in spans) - min(start for start, _ in spans)
        if walker.cpu and share >= MIN_SHARE:  # (func computes: CPU time says where)
            cores = max(cores or 0.0, sum(walker.cpu) / max(span, 1e-12) / share)
        budget -= (w + 1) * kk
        rounds += 1
        full = full or kk == k
        parallel_best = min(parallel_best, span / (w * kk))
        if serial_best / parallel_best >= 0.8 * w:
            break  # clearly parallel: nothing more to learn
    if rounds == 0 or parallel_best <= 0:
        return None
    speedup = serial_best / parallel_best
    free = None if cores is None else gil_free(cores)
    return Stage(speedup, rounds >= 2 and full, rounds, serial_best, free)


def gil_free(cores: float) -> bool:
    """Whether a parallel half that used ``cores`` cores at once (its blocks' CPU
    seconds over its span, over the share of a core the serial half got) ran a func
    that releases the GIL."""
    return cores >= GIL_FREE_CORES
