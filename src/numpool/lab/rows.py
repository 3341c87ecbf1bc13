"""A bench row: one variant of one experiment, its timings and where the time went."""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .meter import PickleMeter

__all__ = ["Row", "measure"]

PEERS_HINT = "not installed: pip install 'numpool[peers]'"


@dataclass
class Row:
    """One line of a bench table."""

    experiment: str  # "A" (matmul), "B" (exp), "B5" (grid)
    id: str  # "A1".."A4", "B1".."B4", or e.g. "numpool-threads", "joblib-loky"
    label: str
    kind: str  # "reproduction" | "numpool" | "peer"
    status: str = "ok"  # ok | not installed | failed
    note: str = ""
    times: list[float] = field(default_factory=list)
    bytes_moved: float | None = None  # pickled through pipes per run
    parent_pickle_s: float | None = None  # per run, in the calling process
    worker_pickle_s: float | None = None  # per run, summed over workers (when metered)
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
        return d


def measure(
    row: Row,
    fn: Callable[[], Any],
    repeat: int,
    budget_s: float,
    metered: bool = True,
    on_repeat: Callable[[int], None] | None = None,
    warmup: Callable[[], Any] | None = None,
    warmup_runs: int = 0,
) -> Row:
    """Time ``fn`` up to ``repeat`` times (fewer once ``budget_s`` is spent).

    ``warmup`` (default ``fn``) runs ``warmup_runs`` times first, untimed: a
    fresh pool's first calls start its workers and map its buffers (numpool
    processes on np.exp over 10M: 249 ms, 43 ms, then a steady 10 ms).
    With ``metered``, bytes and seconds of pickling are recorded per run
    (the median over runs). A failure marks the row failed with the reason.
    """
    moved: list[dict[str, float]] = []
    try:
        for _ in range(warmup_runs):
            (warmup or fn)()
        for i in range(repeat):
            if on_repeat:
                on_repeat(i)
            if metered:
                with PickleMeter() as m:
                    t = time.perf_counter()
                    fn()
                    row.times.append(time.perf_counter() - t)
                moved.append(m.result)
            else:
                t = time.perf_counter()
                fn()
                row.times.append(time.perf_counter() - t)
            if sum(row.times) >= budget_s:
                break
    except Exception as e:  # a bench keeps going; the row says what happened
        row.status = "failed"
        row.note = f"{type(e).__name__}: {e}"
        row.extra["traceback"] = traceback.format_exc(limit=5)
    row.extra["warmup_runs"] = warmup_runs
    if moved:
        row.bytes_moved = statistics.median(m["bytes_moved"] for m in moved)
        row.parent_pickle_s = statistics.median(m["parent_pickle_s"] for m in moved)
        row.worker_pickle_s = statistics.median(m["worker_pickle_s"] for m in moved)
    return row


def attach_stats(row: Row, stats: Any) -> Row:
    """Add what numpool's last call did (``Pool.last_stats``) to a numpool row."""
    if stats is None:
        return row
    row.extra["stats"] = stats.as_dict()
    parts = [f"x{stats.parallelism:.2f} workers busy", f"{stats.bytes_moved / 1e6:.1f} MB moved"]
    if stats.plan is not None:
        parts.insert(0, f"auto chose {stats.plan.backend}")
    row.note = "; ".join([*filter(None, [row.note]), *parts])
    return row


#: numpool's rows in experiments A and B (dask: a LocalCluster started for the row)
NUMPOOL_BACKENDS = ("threads", "processes", "auto", "dask")


def settled(pool: Any, fn: Callable[[], Any], calls: int = 4) -> Callable[[], None]:
    """A warm-up for a numpool row: ``fn`` run ``calls`` times before the timed runs.
    An auto pool measures on its first call and may run one more call on each close
    contender to measure it; after that its calls show the choice it keeps."""

    def warm() -> None:
        for _ in range(calls if getattr(pool, "backend", "") == "auto" else 1):
            fn()

    return warm


def open_pool(row: Row, backend: str, workers: int) -> Any:
    """The pool for a numpool row, or None with the row marked (an extra not installed)."""
    import numpool

    try:
        return numpool.Pool(backend, workers=workers)  # type: ignore[arg-type]
    except numpool.BackendUnavailableError as e:
        row.status, row.note = "not installed", str(e).split(";")[0]
        return None
