"""backend="auto": measure on the start of the real input, choose, run the rest.

The planner never runs throw-away work. It walks through the input's rows
(apply) or tasks (map) in stages, and every stage's results are part of
the answer:

1. **serial**, growing blocks in the caller's thread (1, 2, 4, ... x a
   base size) until one takes ~1 ms or 1/16 of the input is done: the
   cost per item, hence the serial cost of the rest. Work that small runs
   serially to the end (a thread hand-off alone costs ~25 us).
2. **threads**, paired rounds: a serial block, then one block per worker
   (~3 ms each, up to half of what remains): the speed-up of threads over
   serial on the same kind of rows. NumPy code that releases the GIL comes
   close to the worker count; code that holds it (a Python loop, a
   GIL-holding C call) gets ~1x, and so does a BLAS call that already used
   every core serially.
3. **processes**, only when threads fell short *and* the estimate says
   processes could win: the rest of the work must outlast starting the
   workers, and the data's copy into shared memory must not eat the gain.
   Paired rounds of ~20 ms per worker.
4. The best measured speed-up wins (serial unless a parallel backend is at
   least 5% faster; processes over threads only when 5% faster); the rest
   of the input runs there with blocks sized from the measured cost.
5. A close call (the winner under 1.5x a runner-up) goes to a **run-off**:
   the next calls run whole on each contender in turn, timed, and the
   lowest wall time per item wins for good (see CLEAR_MARGIN).

The decision is cached (``numpool._plan.PlanCache``) per (function, input
class, size class, options), so later calls skip steps 1-3 entirely.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from . import _buffers, _engine, shm
from ._errors import annotate
from ._plan import Plan, PlanCache
from ._stats import Stats, worker_name
from .backends import Backend
from .backends._worker import apply_block

__all__ = [
    "ApplyWork",
    "MapWork",
    "apply_chunks",
    "apply_key",
    "cache",
    "decide",
    "finish",
    "map_chunksize",
    "map_key",
]

#: a serial probe block is timed until it takes this long
PROBE_S = 1e-3
#: ... or until this fraction of the input is done
PROBE_FRACTION = 1 / 16
#: remaining serial work below this is not worth a thread hand-off (~25 us each, measured)
SERIAL_BELOW_S = 0.25e-3
#: work per worker in the threads trial (enough to time, small enough to stay cheap)
THREADS_TRIAL_S = 3e-3
#: work per worker in the processes trial (a round trip costs ~0.3-0.5 ms, measured)
PROCESSES_TRIAL_S = 20e-3
#: work each new worker process does before a trial: fresh workers run slowly while
#: they copy the pages they touch (measured: a pure-Python loop at 2-3x its cost
#: for the first tens of ms of 2 concurrent workers)
WARM_S = 20e-3
#: a trial runs this many rounds and keeps the best
TRIAL_ROUNDS = {"threads": 3, "processes": 2}
#: a trial stage uses at most this fraction of what remains (it is real work: only
#: its serial halves run slower than the chosen backend would)
TRIAL_FRACTION = 1 / 2
#: threads at this fraction of the worker count: GIL released, nothing to gain elsewhere
GIL_FREE = 0.8
#: what processes reach at best, per worker, before moving data (measured 0.88-0.93)
PROCESS_EFFICIENCY = 0.9
#: a parallel backend must beat serial by this much; processes must beat threads by ...
PARALLEL_MARGIN = 1.05
PROCESSES_MARGIN = 1.05
#: the smallest block worth sending: threads (hand-off ~25 us, ~0.2-0.4 ms to wake an
#: idle vCPU), processes (~0.4 ms). Measured, np.exp over 10M on 2 threads: a 1 ms floor
#: gave 4 blocks, one thread busy 10 ms and the other 6.5 (0.89 of the default 10 blocks)
MIN_BLOCK_S = {"threads": 0.5e-3, "processes": 5e-3}

#: a decision whose winner is under this factor ahead of a runner-up is a close call.
#: Samples can't settle it: on this VM a threads trial of np.exp over 10M read 0.8-1.0x
#: in some processes, ~1.6x in others (the kernel left both pool threads on one vCPU
#: right after the caller's serial half), against a steady ~2x for whole calls. So
#: close calls go to a run-off: the next calls run whole on each contender in turn ...
CLEAR_MARGIN = 1.5
#: ... this many times each (in the order A B B A), and the lowest wall time per item
#: wins for good. The lowest, not the median: a call only ever runs slower than its
#: backend can (seen: one serial call of np.exp over 10M at 188 ms, the next at 11 ms)
RUNOFF_CALLS = 2
#: ... except that after one call each, a contender this many times slower than the
#: fastest is out (np.exp over 10M: serial ~11 ms against threads ~5.5 ms)
RUNOFF_DROP = 2.0

#: a serial half whose CPU time exceeds its wall time by this factor ran native threads
NATIVE_THREADS = 1.3
#: how long idle OpenBLAS threads spin before they sleep (THREAD_TIMEOUT: 2^28 cycles)
BLAS_SPIN_S = 0.1

#: seconds to start worker processes, until measured in this process
_startup_s = 0.15
#: a plan that did not start processes only because of their start-up is made again
#: once the same call has come back this many times (the start-up is then amortised)
REVISIT_AFTER = 3
#: a conservative memory-copy rate, only to decide whether processes are worth a trial
#: (which then measures the real copies); warm tmpfs writes ran at ~20 GB/s here
COPY_BYTES_PER_S = 5e9

cache = PlanCache()


def _func_key(func: Any) -> Hashable:
    """A function's identity for the cache: a lambda made anew in a loop keeps its code."""
    code = getattr(func, "__code__", None)
    if code is not None:
        return code
    try:
        hash(func)
    except TypeError:
        return id(func)
    return func


def apply_key(func: Any, x: np.ndarray, out: Any, chunks: Any, options: Hashable) -> Hashable:
    return (
        "apply",
        _func_key(func),
        x.dtype,
        x.shape[1:],
        x.nbytes.bit_length(),
        shm.shared_ref(x) is not None,
        out is not None,
        chunks,
        options,
    )


def _arg_class(a: Any) -> Hashable:
    if isinstance(a, np.ndarray):
        return (a.dtype, a.ndim, a.nbytes.bit_length())
    return type(a).__qualname__


def map_key(
    func: Any, columns: Sequence[Sequence[Any]], chunksize: Any, options: Hashable
) -> Hashable:
    n = len(columns[0])
    first = tuple(_arg_class(c[0]) for c in columns) if n else ()
    return ("map", _func_key(func), n.bit_length(), first, chunksize, options)


def _name(func: Any) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if isinstance(func, np.ufunc):
        return f"np.{func.__name__}"
    return str(name) if name else type(func).__name__


def _ms(s: float) -> str:
    if s < 1e-6:
        return f"{s * 1e9:.1f} ns"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"


class _Work:
    """The input, walked in stages: items [0, done) are finished."""

    kind: str
    func: Callable[..., Any]
    n: int
    done: int = 0
    what: str
    #: the output is memory never written before (trials on it are not to be trusted)
    fresh: bool = False
    #: the serial probe's blocks were so small that numpool's own per-block cost was
    #: most of their time: its seconds per item are an upper bound
    overhead_bound: bool = False

    def prepare(self) -> None:
        """Before anything is timed: learn the output's layout (apply)."""

    def serial(self, a: int, b: int, direct: bool = False) -> float:
        """Run items a:b in the caller; seconds spent in ``func``. ``direct``: write
        straight into the (pre-touched) output, as a parallel block does."""
        raise NotImplementedError

    def sample(self, per_item: float) -> tuple[Any, ...] | None:
        """Small arguments (~WARM_S of work, a few MB) for warming up a worker, or None."""
        raise NotImplementedError

    def pretouch(self, a: int, b: int) -> None:
        """Fault in the output for items a:b, so that a trial times compute, not
        the kernel zeroing fresh (huge) pages, which the first writer pays."""

    def run(self, backend: Backend, a: int, b: int, size: int | None, stats: Stats) -> None:
        raise NotImplementedError

    def move_bytes(self) -> int:
        """Bytes per item that processes would copy (0 for data already shared)."""
        raise NotImplementedError

    def sizes(self, backend: Backend, item_s: float, items: int) -> int | None:
        """chunks (apply) or chunksize (map) for ``items``; ``item_s``: a worker's
        seconds per item on ``backend``."""
        raise NotImplementedError


class ApplyWork(_Work):
    kind = "apply"

    def __init__(
        self,
        func: Callable[..., Any],
        x: np.ndarray,
        out: np.ndarray | None,
        check_out: Callable[[np.ndarray | None, tuple[int, ...], np.dtype], None],
    ) -> None:
        self.func = func
        self.x = x
        self.n = x.shape[0]
        self.out = out
        self.check_out = check_out
        self.tail: tuple[int, ...] = ()
        self.dtype: np.dtype | None = None
        self.what = (
            f"apply({_name(func)}) over {self.n:,} rows of {x.dtype} "
            f"({x.nbytes / 1e6:.1f} MB{', shared' if shm.shared_ref(x) is not None else ''})"
        )

    def prepare(self) -> None:
        """Row 0 through the usual probe (output dtype and shape; ``out=`` checked),
        then the output, allocated before any timing starts."""
        first = _engine.probe(self.func, self.x)
        self.tail, self.dtype = first.shape[1:], first.dtype
        shape = (self.n, *self.tail)
        self.check_out(self.out, shape, first.dtype)
        if self.out is None:
            reused = _buffers.arena().reused
            self.out = _buffers.empty(shape, first.dtype)
            # fresh memory: whichever trial half writes first pays its page faults
            # (measured on np.exp over 10M: threads at 0.16x, or 15.9x, of serial)
            self.fresh = self.out.nbytes >= (1 << 20) and _buffers.arena().reused == reused
        self.out[:1] = first
        self.done = 1

    def serial(self, a: int, b: int, direct: bool = False) -> float:
        assert self.out is not None and self.dtype is not None
        if direct:
            where = f"block of rows {a}:{b}"
            _, _, busy = apply_block(
                self.func, self.x[a:b], self.out[a:b], where, self.tail, self.dtype
            )
            return float(busy)
        # into func's own temporary, like a plain call; the copy into out is not timed
        res, _, busy = apply_block(
            self.func, self.x[a:b], None, f"block of rows {a}:{b}", self.tail, self.dtype
        )
        np.copyto(self.out[a:b], res, casting="no")
        return float(busy)

    def sample(self, per_item: float) -> tuple[Any, ...] | None:
        row_bytes = max(1, self.x.nbytes // max(1, self.n))
        k = min(self.n, max(1, int(WARM_S / max(per_item, 1e-12))), max(1, (4 << 20) // row_bytes))
        return (np.ascontiguousarray(self.x[:k]),) if not self.x.dtype.hasobject else None

    def pretouch(self, a: int, b: int) -> None:
        assert self.out is not None
        # never over rows still to be read (out=x, an in-place update)
        if self.out[a:b].flags.writeable and not np.may_share_memory(self.out, self.x):
            self.out[a:b] = 0

    def run(self, backend: Backend, a: int, b: int, size: int | None, stats: Stats) -> None:
        assert self.out is not None and self.dtype is not None
        _engine.apply(
            backend,
            self.func,
            self.x[a:b],
            self.out[a:b],
            size,
            lambda *_: None,
            stats=stats,
            layout=(self.tail, self.dtype),
            row0=a,
        )

    def move_bytes(self) -> int:
        per_row = self.x.nbytes // max(1, self.n)
        return 0 if shm.shared_ref(self.x) is not None else per_row

    def sizes(self, backend: Backend, item_s: float, items: int) -> int | None:
        return apply_chunks(backend, items, self.x.nbytes * items // max(1, self.n), item_s)


class MapWork(_Work):
    kind = "map"

    def __init__(
        self,
        func: Callable[..., Any],
        columns: Sequence[Sequence[Any]],
        timeout: float | None = None,
    ) -> None:
        self.func = func
        self.columns = columns
        self.timeout = timeout
        self.n = len(columns[0])
        self.results: list[Any] = [None] * self.n
        self.what = f"map({_name(func)}) over {self.n:,} tasks"

    def serial(self, a: int, b: int, direct: bool = False) -> float:
        t0 = time.perf_counter()
        for i in range(a, b):
            try:
                self.results[i] = self.func(*(c[i] for c in self.columns))
            except Exception as e:
                raise annotate(e, f"task {i} of {self.n}") from None
        return time.perf_counter() - t0

    def run(self, backend: Backend, a: int, b: int, size: int | None, stats: Stats) -> None:
        cols = [c[a:b] for c in self.columns]
        res = _engine.map_tasks(
            backend, self.func, cols, size, self.timeout, stats, start=a, total=self.n
        )
        self.results[a:b] = res

    def sample(self, per_item: float) -> tuple[Any, ...] | None:
        args = tuple(c[0] for c in self.columns)
        small = sum(a.nbytes for a in args if isinstance(a, np.ndarray)) < (1 << 20)
        return args if per_item < WARM_S and small else None

    def move_bytes(self) -> int:
        """Array bytes per task: distinct unshared arguments, plus results."""
        done = max(1, self.done)
        seen: set[int] = set()
        total = 0
        for c in self.columns:
            for a in c[:done]:
                if isinstance(a, np.ndarray) and id(a) not in seen and shm.shared_ref(a) is None:
                    seen.add(id(a))
                    total += a.nbytes
        total += sum(r.nbytes for r in self.results[:done] if isinstance(r, np.ndarray))
        return total // done

    def sizes(self, backend: Backend, item_s: float, items: int) -> int | None:
        return map_chunksize(backend, items, item_s)


def apply_chunks(backend: Backend, rows: int, nbytes: int, item_s: float) -> int:
    """Blocks for ``rows`` on ``backend``: its default by bytes, but no block under
    MIN_BLOCK_S of work (``item_s``: a worker's seconds per row)."""
    if backend.name == "serial":
        return 1
    w = backend.workers
    by_bytes = backend.default_chunks(rows, nbytes)
    by_time = max(w, int(item_s * rows / MIN_BLOCK_S.get(backend.name, 1e-3)) // w * w)
    return max(1, min(rows, by_bytes, by_time))


def map_chunksize(backend: Backend, tasks: int, item_s: float) -> int | None:
    """Tasks per message: the backend's default, or enough for ~1 ms of work."""
    if backend.name == "serial":
        return None
    floor = math.ceil(MIN_BLOCK_S["threads"] / max(item_s, 1e-9))
    return max(1, backend.default_chunksize(tasks), min(floor, tasks // backend.workers or 1))


def _serial_probe(work: _Work, stats: Stats) -> float:
    """Stage 1: growing serial blocks; returns seconds per item."""
    n = work.n
    work.prepare()
    limit = max(1, int(n * PROBE_FRACTION))
    size = 1 if work.kind == "map" else max(1, n >> 12)
    per_item = 0.0
    previous = math.inf
    fixed = math.inf  # the fastest block of a few rows: numpool's own cost per block
    first = 0.0
    spent = 0.0
    blocks = 0
    while work.done < n:
        b = min(size, n - work.done)
        # into the output, its pages faulted in first: page faults of fresh memory are
        # paid once by whoever writes first, and would swamp the function's own cost
        work.pretouch(work.done, work.done + b)
        dt = work.serial(work.done, work.done + b, direct=True)
        stats.busy(worker_name(), dt)
        work.done += b
        spent += dt
        blocks += 1
        if work.kind == "apply":
            # The faster of the two biggest blocks: small blocks are dominated by the
            # call's fixed cost, and a block only ever runs slower than the function
            # (first-call warm-up, page faults in its temporaries, an interrupt).
            rate = dt / b
            per_item = min(rate, previous)
            previous = rate
            if b <= 8:
                fixed = min(fixed, dt)
            if (dt >= PROBE_S and blocks >= 2) or work.done >= limit:
                work.overhead_bound = dt / 2 < fixed < math.inf
                break
        else:  # tasks vary: average them, leaving out the first (it carries warm-up)
            first = first if blocks > 1 else dt
            per_item = (spent - first) / (work.done - 1) if work.done > 1 else spent
            if (spent >= PROBE_S and work.done >= min(2, limit)) or work.done >= limit:
                break
        size *= 2
    return per_item


def _trial(
    work: _Work, backend: Backend, per_item: float, per_worker_s: float, stats: Stats
) -> float | None:
    """Paired rounds: a serial block, then one block per worker on ``backend``, each
    pair timed back to back so that a slow phase of the machine hits both halves.
    Threads: the median of the pairs' speed-ups; processes: the best (the first
    round also pays the workers' warm-up).

    Bigger blocks beat more rounds: a hand-off to an idle core costs ~0.2-0.4 ms
    on a small VM (measured), which would swamp a short block. So a round takes
    up to the whole budget, and further rounds run only while budget is left."""
    w = backend.workers
    per_block = max(1, math.ceil(per_worker_s / max(per_item, 1e-12)))
    rounds = TRIAL_ROUNDS[backend.name]
    budget = max(w + 1, int((work.n - work.done) * TRIAL_FRACTION))
    ratios: list[float] = []
    grow = 6  # a round whose serial half is too short to time runs again with 2x the items
    while len(ratios) < rounds:
        a = work.done
        k = min(per_block, budget // (w + 1), (work.n - a) // (w + 1))
        if k < 1:
            break
        # No pretouch here: each half faults in its own output pages, as a real run
        # does. Measured: rows faulted in by the caller's thread were then written up
        # to 2x slower by the other threads (0.8x instead of 1.5x for np.exp).
        cpu0, wall0 = time.process_time(), time.perf_counter()
        t_serial = work.serial(a, a + k, direct=True)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stats.busy(worker_name(), t_serial)
        a = work.done = a + k
        budget -= k
        if cpu > NATIVE_THREADS * wall:
            # func ran on several cores by itself (BLAS, OpenMP), whose idle threads now
            # spin for a while and would slow the parallel half (measured: 2 matmuls of
            # 2000^2 on 2 threads at 0.90-0.94x right after a 2-thread one, 1.04-1.22x
            # after a pause): wait until they sleep, as they do between a user's calls
            time.sleep(BLAS_SPIN_S)
        if t_serial < per_worker_s / 2 and grow > 0 and k < budget // (w + 1):
            grow -= 1
            per_block = 2 * k
            continue
        items = w * k
        sub = Stats(work.kind, backend.name)
        t0 = time.perf_counter()
        work.run(backend, a, a + items, w if work.kind == "apply" else max(1, k), sub)
        dt = time.perf_counter() - t0
        work.done += items
        budget -= items
        stats.absorb(sub)
        if dt > 0 and t_serial > 0:
            ratios.append(t_serial * w / dt)
    if not ratios:
        return None
    if backend.name == "threads":
        return sorted(ratios)[len(ratios) // 2]
    return max(ratios)


def decide(
    work: _Work,
    get: Callable[[str], Backend],
    workers: int,
    blas_threads: int | None,
    processes_warm: Callable[[], bool],
    stats: Stats,
    repeated: bool = False,
) -> Plan:
    """Stages 1-3 on ``work``; returns the plan for the rest (and for later calls)."""
    global _startup_s
    t_start = time.perf_counter()
    serial = Stats(work.kind, "serial")
    per_item = _serial_probe(work, serial)
    stats.absorb(serial)
    reasons: list[str] = []
    speedups: dict[str, float] = {}
    move_s = startup = 0.0
    held_back = False
    rest = work.n - work.done
    serial_total = per_item * work.n
    rest_s = per_item * rest
    unit = "row" if work.kind == "apply" else "task"
    if work.overhead_bound:
        reasons.append(
            f"Serially, {_name(work.func)} took at most {_ms(per_item)} per {unit} (at most "
            f"~{_ms(serial_total)} for all {work.n:,}): on blocks this small, most of the "
            "time measured was numpool's own cost per block."
        )
    else:
        reasons.append(
            f"Serially, {_name(work.func)} took {_ms(per_item)} per {unit} "
            f"(~{_ms(serial_total)} for all {work.n:,})."
        )
    choice = "serial"

    if workers < 2:
        reasons.append("Only 1 worker allowed (workers=1): serial.")
    elif rest == 0:
        reasons.append("Measuring finished the whole input: nothing left to run in parallel.")
    elif rest_s < SERIAL_BELOW_S:
        reasons.append(
            f"The rest is ~{_ms(rest_s)} of work, under {_ms(SERIAL_BELOW_S)}: handing blocks "
            "to threads (~25 us each) or processes (~0.4 ms each) would cost more than it saves."
        )
    else:
        threads = get("threads")
        threads.start()
        sp = _trial(work, threads, per_item, THREADS_TRIAL_S, stats)
        if sp is not None:
            speedups["threads"] = sp
            if sp >= GIL_FREE * workers:
                gil = "it releases the GIL"
            elif sp >= PARALLEL_MARGIN:
                gil = (
                    "part of it runs in parallel (the rest holds the GIL, or the threads "
                    "share the memory bandwidth)"
                )
            else:
                gil = "it holds the GIL, or serial already kept the cores busy (BLAS)"
            reasons.append(
                f"{workers} threads ran {sp:.2f}x as fast as serial on a sample: {gil}"
                + (
                    f" (more than {workers} threads can give: the serial sample also paid "
                    "for faulting in fresh memory)."
                    if sp > 1.2 * workers
                    else "."
                )
            )
        best = max(1.0, speedups.get("threads", 1.0))
        rest = work.n - work.done
        rest_s = per_item * rest
        if speedups.get("threads", 0.0) < GIL_FREE * workers and rest > 0:
            move_s = work.move_bytes() * rest / COPY_BYTES_PER_S
            warm = processes_warm()
            startup = 0.0 if warm else _startup_s
            held_back = False
            hoped = rest_s / (workers * PROCESS_EFFICIENCY) + move_s
            if hoped >= rest_s / best / PROCESSES_MARGIN:
                reasons.append(
                    f"Processes would need ~{_ms(hoped)} at best for the rest (copying the "
                    f"data into shared memory ~{_ms(move_s)}), against ~{_ms(rest_s / best)}: "
                    "not tried."
                )
            elif rest_s < startup and not repeated:
                held_back = True
                reasons.append(
                    f"Starting {workers} worker processes (~{_ms(startup)}) costs more than the "
                    f"remaining ~{_ms(rest_s)} of work: not started (the plan is made again if "
                    f"this call repeats {REVISIT_AFTER} times)."
                )
            else:
                procs = get("processes")
                t0 = time.perf_counter()
                try:
                    # every worker loads func (imports its module); a cold pool starts here
                    procs.start(work.func, None if warm else work.sample(per_item))
                    sp = None
                except Exception as e:  # func cannot reach a worker process
                    reasons.append(
                        f"Processes cannot run {_name(work.func)} ({type(e).__name__}: {e}): "
                        "not tried. Define it at module level in an importable file to allow them."
                    )
                else:
                    if not warm:
                        startup = _startup_s = time.perf_counter() - t0
                    sp = _trial(work, procs, per_item, PROCESSES_TRIAL_S, stats)
                if sp is not None:
                    speedups["processes"] = sp
                    reasons.append(
                        f"{workers} processes ran {sp:.2f}x as fast as serial on a sample "
                        f"(copying into shared memory included; estimated ~{_ms(move_s)} for "
                        f"the rest{f'; starting them took {_ms(startup)}' if not warm else ''})."
                    )
        thr = speedups.get("threads", 0.0)
        prc = speedups.get("processes", 0.0)
        if max(thr, prc) < PARALLEL_MARGIN:
            reasons.append(
                f"No parallel backend beat serial by {PARALLEL_MARGIN - 1:.0%}: serial."
            )
        elif prc >= thr * PROCESSES_MARGIN:
            choice = "processes"
        else:
            choice = "threads"
            if prc:
                reasons.append(
                    f"Processes were not {PROCESSES_MARGIN - 1:.0%} faster than threads: threads "
                    "(no copies, no worker processes)."
                )

    contenders = _contenders(choice, speedups, work.fresh)
    if contenders:
        why = f"{choice} was not {CLEAR_MARGIN}x ahead of " + " and ".join(contenders[1:])
        if work.fresh:
            why += "; the output was fresh memory, whose page faults swamp a sample"
        reasons.append(
            f"Not settled by the sample ({why}): the next calls run whole on "
            f"{', '.join(contenders)} in turn, up to {RUNOFF_CALLS} each (one, for a backend "
            f"{RUNOFF_DROP:g}x slower than the fastest), and the lowest wall time per {unit} "
            "wins for good."
        )
    backend = get(choice)
    rest = work.n - work.done
    sp = speedups.get(choice, 1.0)
    # per-item cost on the chosen backend decides block sizes for this and later calls
    sp = min(sp, backend.workers)  # above it: the serial sample paid for fresh memory
    size = work.sizes(backend, per_item * workers / max(sp, 1e-9), max(rest, 1))
    plan = Plan(
        kind=work.kind,
        backend=choice,
        workers=backend.workers,
        chunks=size if work.kind == "apply" else None,
        chunksize=size if work.kind == "map" else None,
        blas_threads=backend.blas_threads,
        what=work.what,
        item_s=per_item,
        serial_s=serial_total,
        speedups=speedups,
        move_s=move_s,
        startup_s=startup,
        probe_s=time.perf_counter() - t_start,
        measured_items=work.done,
        revisit=held_back,
        contenders=contenders,
        reasons=tuple(reasons),
    )
    return plan


def _contenders(choice: str, speedups: dict[str, float], fresh: bool) -> tuple[str, ...]:
    """The backends of a run-off, the choice first; () when the choice is clear: it
    beat every other measured backend (serial counts as 1.0) by CLEAR_MARGIN.

    A sample on fresh output memory can read far off either way (np.exp over 10M:
    0.14x and 17x). Too high is harmless: the serial half paid the page faults, which
    only weigh on cheap functions, and those release the GIL. Too low is not: a
    serial choice made on fresh memory runs off against the runner-up."""
    if not speedups:
        return ()
    scores = {"serial": 1.0, **speedups}
    won = scores[choice]
    others = sorted((b for b in scores if b != choice), key=lambda b: -scores[b])
    close = [b for b in others if scores[b] * CLEAR_MARGIN > won]
    if fresh and choice == "serial" and not close:
        close = others[:1]
    return (choice, *close) if close else ()


def next_contender(plan: Plan) -> str:
    """The backend the next call of ``plan``'s run-off runs on: the one with the
    fewest whole calls, in the order A B B A ... so that a drift hits all alike."""
    done = {c: len(plan.runoff.get(c, ())) for c in plan.contenders}
    least = min(done.values())
    order = plan.contenders if least % 2 == 0 else plan.contenders[::-1]
    return next(c for c in order if done[c] == least)


def ran(
    plan: Plan,
    name: str,
    item_s: float,
    get: Callable[[str], Backend],
    sizes: Callable[[Backend, float], int | None],
) -> Plan:
    """``plan`` after a whole call on ``name`` took ``item_s`` wall seconds per item;
    settled once every contender still in has run RUNOFF_CALLS times. ``sizes(backend,
    worker_item_s)``: chunks/chunksize for the winner (None: keep the plan's)."""
    if name not in plan.contenders:  # settled meanwhile, by another thread's call
        return plan
    runoff = {**plan.runoff, name: (*plan.runoff.get(name, ()), item_s)}
    contenders = plan.contenders
    if all(c in runoff for c in contenders):  # one call each: the far slower ones are out
        fastest = min(min(runoff[c]) for c in contenders)
        contenders = tuple(c for c in contenders if min(runoff[c]) <= RUNOFF_DROP * fastest)
    if len(contenders) > 1 and any(len(runoff.get(c, ())) < RUNOFF_CALLS for c in contenders):
        return dataclasses.replace(plan, contenders=contenders, runoff=runoff)
    best_s = {c: min(v) for c, v in runoff.items()}
    best = min(best_s, key=lambda c: best_s[c])
    speedups = dict(plan.speedups)
    if "serial" in best_s:  # whole calls say more than the sample did
        for c, t in best_s.items():
            if c != "serial":
                speedups[c] = best_s["serial"] / max(t, 1e-12)
    backend = get(best)
    unit = "row" if plan.kind == "apply" else "task"
    settled = dataclasses.replace(
        plan,
        backend=best,
        workers=backend.workers,
        blas_threads=backend.blas_threads,
        speedups=speedups,
        contenders=(),
        runoff=runoff,
        reasons=(
            *plan.reasons,
            f"Run-off over whole calls (the best wall time per {unit} of up to "
            f"{RUNOFF_CALLS}): "
            + ", ".join(f"{c} {_ms(t)}" for c, t in sorted(best_s.items(), key=lambda ct: ct[1]))
            + f": {best}.",
        ),
    )
    size = sizes(backend, settled.worker_item_s_on(best, backend.workers))
    if size is None:
        return settled
    if plan.kind == "apply":
        return dataclasses.replace(settled, chunks=size)
    return dataclasses.replace(settled, chunksize=size)


def finish(work: _Work, plan: Plan, get: Callable[[str], Backend], stats: Stats) -> None:
    """Run what the stages left, on the plan's backend."""
    a = work.done
    if a >= work.n:
        return
    size = plan.chunks if work.kind == "apply" else plan.chunksize
    if plan.backend == "serial" and not (size and size > 1):
        serial = Stats(work.kind, "serial")
        serial.busy(worker_name(), work.serial(a, work.n, direct=True))
        stats.absorb(serial)
    else:  # (serial too when the user asked for chunks)
        backend = get(plan.backend)
        sub = Stats(work.kind, backend.name)
        if work.kind == "apply" and size is not None:
            size = min(size, work.n - a)
        work.run(backend, a, work.n, size, sub)
        stats.absorb(sub)
    work.done = work.n
