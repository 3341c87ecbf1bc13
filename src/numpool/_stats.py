"""What one apply/map call did: ``Pool.last_stats`` and ``numpool.last_stats()``.

The engine fills a :class:`Stats` as the call runs: the blocks or tasks it
sent, the bytes that crossed a process boundary (copied into or out of
shared memory, or pickled), the caller's time spent copying them, and each
worker's busy time (measured inside the worker around ``func`` and its
result hand-off). ``backend="auto"`` adds the :class:`~numpool.Plan` it
followed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from ._plan import Plan

__all__ = ["Last", "Later", "Stats", "last", "resolved", "tiny", "worker_name"]


def worker_name() -> tuple[int, str]:
    """Who is running this block or task: (pid, thread name)."""
    return os.getpid(), threading.current_thread().name


@dataclass
class Stats:
    """Figures of one ``apply``/``map`` call.

    Attributes
    ----------
    kind : str
        ``"apply"`` or ``"map"``.
    backend : str
        The backend that ran the work (for ``auto``: the one it chose; a
        first call that measured several lists them, e.g. ``"serial+threads"``).
    tasks : int
        Blocks (apply) or tasks (map) run.
    wall_s : float
        Seconds from the call to its return.
    bytes_moved : int
        Array bytes that crossed a process boundary: copied into or out of
        shared memory, or pickled. 0 for serial and threads.
    move_s : float
        Seconds the caller spent copying arrays into or out of shared memory.
    busy_s : dict
        Seconds each worker spent running ``func`` (and handing its result
        over), by worker: a thread name, or ``"pid N"`` for a process.
    plan : Plan or None
        The plan ``backend="auto"`` followed.
    retries : int
        Times the tasks in flight ran again after a worker process died
        (``Pool(retries=N)``).
    """

    kind: str
    backend: str
    tasks: int = 0
    wall_s: float = 0.0
    bytes_moved: int = 0
    move_s: float = 0.0
    busy_s: dict[str, float] = field(default_factory=dict)
    plan: Plan | None = None
    retries: int = 0
    #: perf_counter when the first block started and the last one ended, on the workers
    first_start: float = field(default=float("inf"), repr=False)
    last_end: float = field(default=float("-inf"), repr=False)
    #: when given a list: (start, end) of every block, as the workers saw them
    intervals: list[tuple[float, float]] | None = field(default=None, repr=False)
    #: seconds func took on the call's first rows (``measure.FIRST_ROWS``), run alone
    #: in the caller before its blocks (in-process backends): what one call of func
    #: costs besides its rows, near enough (None: not run so)
    probe_s: float | None = field(default=None, repr=False)
    #: pulled blocks (threads): seconds the last helper block ended after the caller's
    #: last one (negative: before), and the first one started after the caller's
    #: first; None when the caller or no helper ran a block
    lag_s: float | None = field(default=None, repr=False)
    late_s: float | None = field(default=None, repr=False)

    @property
    def compute_s(self) -> float:
        """Total busy seconds over all workers."""
        return sum(self.busy_s.values())

    @property
    def parallelism(self) -> float:
        """Busy seconds per wall second: how many workers were kept busy on average."""
        return self.compute_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def span_s(self) -> float:
        """Seconds from the first block's start to the last block's end, as the
        workers saw them (the hand-off to idle workers left out)."""
        return max(0.0, self.last_end - self.first_start)

    def busy(self, who: tuple[int, str], start: float, end: float) -> None:
        """A block or batch ran on ``who`` from ``start`` to ``end`` (perf_counter)."""
        pid, thread = who
        key = thread if pid == os.getpid() else f"pid {pid}"
        self.busy_s[key] = self.busy_s.get(key, 0.0) + (end - start)
        self.tasks += 1
        self.first_start = min(self.first_start, start)
        self.last_end = max(self.last_end, end)
        if self.intervals is not None:
            self.intervals.append((start, end))

    def moved(self, nbytes: int, seconds: float = 0.0) -> None:
        self.bytes_moved += nbytes
        self.move_s += seconds

    def ran_on(self, backend: str) -> None:
        """Part of the call ran on ``backend``: named in ``backend`` ("serial+threads")."""
        if backend and backend not in self.backend.split("+"):
            self.backend = f"{self.backend}+{backend}" if self.backend else backend

    def absorb(self, other: Stats) -> None:
        """Add the figures of one stage of a call (auto runs several)."""
        self.ran_on(other.backend)
        self.tasks += other.tasks
        self.bytes_moved += other.bytes_moved
        self.move_s += other.move_s
        self.retries += other.retries
        self.first_start = min(self.first_start, other.first_start)
        self.last_end = max(self.last_end, other.last_end)
        if other.lag_s is not None:
            self.lag_s, self.late_s = other.lag_s, other.late_s
        for k, v in other.busy_s.items():
            self.busy_s[k] = self.busy_s.get(k, 0.0) + v

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "backend": self.backend,
            "tasks": self.tasks,
            "wall_s": self.wall_s,
            "bytes_moved": self.bytes_moved,
            "move_s": self.move_s,
            "compute_s": self.compute_s,
            "busy_s": dict(self.busy_s),
            "plan": self.plan.as_dict() if self.plan is not None else None,
            "retries": self.retries,
        }

    def __str__(self) -> str:
        workers = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(self.busy_s.items()))
        unit = "blocks" if self.kind in ("apply", "reduce") else "tasks"
        text = (
            f"{self.kind} on {self.backend}: {self.tasks} {unit} "
            f"in {self.wall_s * 1e3:.1f} ms; {_size(self.bytes_moved)} moved between processes "
            f"({self.move_s * 1e3:.1f} ms copying in the caller); busy ms per worker: "
            f"{workers or 'none'} (x{self.parallelism:.2f} parallel)"
        )
        if self.retries:
            text += f"; ran again {self.retries}x after a worker died"
        return text


def _size(n: int) -> str:
    x = float(n)
    for unit in ("B", "kB", "MB"):
        if x < 1000:
            return f"{x:.0f} B" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1000
    return f"{x:.1f} GB"


#: a plan worded only when asked for: a first call too small for any backend to win
#: settles without one (wording it costs tens of microseconds, several np.exp over 10k)
Later = Callable[[], "Plan"]


def resolved(plan: Plan | Later | None) -> Plan | None:
    """A plan, worded now if it was left for later."""
    return plan() if callable(plan) else plan


def tiny(plan: Plan | Later, wall_s: float, who: tuple[int, str] | None = None) -> Stats:
    """The Stats of a call that ran ``func(x)`` once, on a serial plan; ``who`` ran it
    (:func:`worker_name`), when known: its busy time."""
    if who is None:
        return Stats("apply", "serial", tasks=1, wall_s=wall_s, plan=resolved(plan))
    stats = Stats("apply", "serial", wall_s=wall_s, plan=resolved(plan))
    stats.busy(who, 0.0, wall_s)
    return stats


#: what a Pool or thread keeps as its last call: Stats, or (plan, wall_s) of a tiny
#: call, turned into Stats only when asked for (it costs ~1 us, 15% of np.exp on 10k);
#: a first call adds who ran it (plan, wall_s, who)
Last = Union[  # noqa: UP007 (3.10)
    Stats,
    tuple[Union["Plan", Later], float],
    tuple[Union["Plan", Later], float, tuple[int, str]],
    None,
]


def last(value: Last) -> Stats | None:
    return tiny(*value) if isinstance(value, tuple) else value
