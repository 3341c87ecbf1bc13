"""A bench row: one variant of one experiment, its timings and where the time went.

Every figure a row holds is either measured or ``None`` (the report prints
``n/m``, not measured). What can be measured depends on how the row's data
crosses process boundaries, its *transport*:

==========  ===============================================  =======================
transport   how data crosses                                 measured
==========  ===============================================  =======================
none        it does not: one process (serial, threads)       pickling (finds ~0)
pipes       multiprocessing.Pool: every task and result      bytes, and seconds in
            pickled through a pipe                           the caller and workers
            (``pipes-unmetered``: B5, workers not metered)
shm         numpool processes: arrays through shared         copies (numpool Stats),
            memory, small messages pickled                   caller's pickling
tcp         numpool dask: arrays scattered/gathered over     bytes (numpool Stats)
            TCP by distributed's own serialisation
loky        joblib loky: results and small arguments         caller's pickling;
            pickled, arguments over 1 MB memmapped           memmapped bytes n/m
==========  ===============================================  =======================
"""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .meter import CpuWatch, PickleMeter

__all__ = ["AUTO_WARMUP_CALLS", "Row", "measure", "open_pool", "warm_auto"]

PEERS_HINT = (
    "not installed: python -m pip install '.[peers]' in numpool's source tree "
    "(numpool is not on PyPI)"
)

#: transports whose worker processes run with the pickle meter installed
METERED_WORKERS = ("pipes",)
#: transports with worker processes at all
PROCESS_TRANSPORTS = ("pipes", "pipes-unmetered", "shm", "tcp", "loky")

#: untimed calls an auto row gets before its timed runs (see :func:`warm_auto`)
AUTO_WARMUP_CALLS = 3


@dataclass
class Row:
    """One line of a bench table."""

    experiment: str  # "A" (matmul), "B" (exp), "B5" (grid)
    id: str  # "A1".."A4", "B1".."B4", or e.g. "numpool-threads", "joblib-loky"
    label: str  # the call, in full
    kind: str  # "reproduction" | "numpool" | "peer"
    name: str = ""  # short and readable, for plot axes and narrow terminals
    transport: str = "none"  # see the module docstring
    status: str = "ok"  # ok | not installed | skipped | failed
    note: str = ""
    times: list[float] = field(default_factory=list)
    runs_planned: int = 0
    short_reason: str = ""  # why fewer than runs_planned ran ("" when all did)
    pickled_bytes: float | None = None  # pickled through pipes per run (the caller's side)
    parent_pickle_s: float | None = None  # per run, in the calling process
    worker_pickle_s: float | None = None  # per run, summed over workers; None: n/m
    copied_bytes: float | None = None  # per run, numpool Stats.bytes_moved; None: n/m
    copy_s: float | None = None  # per run, numpool Stats.move_s (the caller copying)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def min(self) -> float | None:
        return min(self.times) if self.times else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["median_s"], d["min_s"] = self.median, self.min
        d["max_s"] = max(self.times) if self.times else None
        d["moved_bytes"], d["moved_complete"] = moved(self)
        return d


def moved(row: Row) -> tuple[float | None, bool]:
    """Bytes that crossed a process boundary per run, and whether that is all of them.

    Pickled messages (metered) plus arrays numpool copied through shared memory
    or over TCP (its Stats); the two never count the same bytes. joblib's
    memmapped arguments are not metered: the figure is a lower bound there.
    """
    parts = [b for b in (row.pickled_bytes, row.copied_bytes) if b is not None]
    if not parts:
        return None, False
    complete = row.transport != "loky" and (
        row.transport not in ("shm", "tcp") or row.copied_bytes is not None
    )
    return float(sum(parts)), complete


def measure(
    row: Row,
    fn: Callable[[], Any],
    repeat: int,
    budget_s: float,
    *,
    warmup: Callable[[], Any] | None = None,
    warmup_runs: int = 0,
    stats: Callable[[], Any] | None = None,
    on_run: Callable[[int, int], None] | None = None,
) -> Row:
    """Time ``fn`` ``repeat`` times, fewer once ``budget_s`` is spent (0: no budget).

    ``warmup`` (default ``fn``) runs ``warmup_runs`` times first, untimed: a
    fresh pool's first calls start its workers and map its buffers (numpool
    processes on np.exp over 10M: 249 ms, 43 ms, then a steady 10 ms).
    Every timed run is metered (bytes and seconds of pickling, the median over
    runs is kept); ``stats``, for numpool rows, returns the pool's
    ``last_stats`` after each run. A row that stops early says why; a failure
    marks the row failed with the reason.
    """
    t_row = time.perf_counter()
    row.runs_planned = repeat
    metered: list[dict[str, float]] = []
    seen: list[Any] = []
    watch = CpuWatch()
    try:
        for _ in range(warmup_runs):
            (warmup or fn)()
        row.extra["warmup_s"] = time.perf_counter() - t_row
        for i in range(repeat):
            if on_run:
                on_run(i, repeat)
            with watch, PickleMeter() as m:
                t = time.perf_counter()
                fn()
                row.times.append(time.perf_counter() - t)
            metered.append(m.result)
            if stats is not None and (s := stats()) is not None:
                seen.append(s)
            spent = sum(row.times)
            if budget_s and spent >= budget_s and i + 1 < repeat:
                row.short_reason = (
                    f"ran {i + 1} of {repeat}: {_plural(i + 1, 'run')} took {spent:.0f} s, "
                    f"over the {budget_s:g} s budget per row (--row-budget 0 runs all)"
                )
                break
    except Exception as e:  # a bench keeps going; the row says what happened
        row.status = "failed"
        row.note = f"{type(e).__name__}: {e}"
        row.extra["traceback"] = traceback.format_exc(limit=5)
    row.extra["warmup_runs"] = warmup_runs
    row.extra["row_s"] = time.perf_counter() - t_row
    row.extra["others_busy"] = watch.share()
    if metered:
        row.pickled_bytes = statistics.median(m["bytes_moved"] for m in metered)
        row.parent_pickle_s = statistics.median(m["parent_pickle_s"] for m in metered)
        if row.transport in METERED_WORKERS:
            row.worker_pickle_s = statistics.median(m["worker_pickle_s"] for m in metered)
    if seen:
        _take_stats(row, seen)
    return row


def _take_stats(row: Row, seen: list[Any]) -> None:
    """What numpool's own Stats say about the timed runs (median per run)."""
    backends = [s.backend for s in seen]
    row.extra["stats"] = seen[-1].as_dict()
    row.extra["backends"] = backends
    row.extra["tasks"] = statistics.median(s.tasks for s in seen)
    row.extra["busy_s"] = statistics.median(s.compute_s for s in seen)
    row.extra["parallelism"] = statistics.median(s.parallelism for s in seen)
    if row.transport == "auto":
        ran = {b for name in backends for b in name.split("+")}
        row.transport = "shm" if "processes" in ran else "none"
        row.extra["auto_ran"] = sorted(ran)
        plan = seen[-1].plan
        row.extra["auto_plan"] = plan.backend if plan is not None else None
    if row.transport != "none" or any(s.bytes_moved for s in seen):
        row.copied_bytes = statistics.median(s.bytes_moved for s in seen)
        row.copy_s = statistics.median(s.move_s for s in seen)
    else:  # numpool measured these too: nothing crossed a process boundary
        row.copied_bytes, row.copy_s = 0.0, 0.0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def warm_auto(fn: Callable[[], Any], calls: int = AUTO_WARMUP_CALLS) -> Callable[[], None]:
    """The warm-up of an auto row: ``calls`` untimed calls of ``fn``.

    ``backend="auto"`` learns from its calls (its first ones measure
    backends on the input). A program that calls it repeatedly gets what it
    settles on, so the timed runs come after a fixed number of calls, the
    same every run: deciding when "it has settled" by asking the plan would
    tie the bench to planner internals.
    """

    def warm() -> None:
        for _ in range(calls):
            fn()

    return warm


#: numpool's rows in experiments A and B (dask: a LocalCluster started for the row)
NUMPOOL_BACKENDS = ("threads", "processes", "auto", "dask")
#: how each numpool backend's data crosses process boundaries (auto: known after it ran)
NUMPOOL_TRANSPORT = {"threads": "none", "processes": "shm", "auto": "auto", "dask": "tcp"}
NUMPOOL_NAMES = {
    "threads": "numpool threads",
    "processes": "numpool processes",
    "auto": "numpool auto (default)",
    "dask": "numpool dask (LocalCluster)",
}


def numpool_row(experiment: str, backend: str, call: str) -> Row:
    """An empty row for numpool's ``backend``."""
    return Row(
        experiment,
        f"numpool-{backend}",
        f"numpool.Pool({backend!r}).{call}",
        "numpool",
        name=NUMPOOL_NAMES[backend],
        transport=NUMPOOL_TRANSPORT[backend],
    )


def open_pool(row: Row, backend: str, workers: int) -> Any:
    """The pool for a numpool row, or None with the row marked (an extra not installed)."""
    import numpool

    try:
        return numpool.Pool(backend, workers=workers)  # type: ignore[arg-type]
    except numpool.BackendUnavailableError as e:
        row.status, row.note = "not installed", str(e).split(";")[0]
        return None
