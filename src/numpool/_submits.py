"""Where auto's ``submit`` and ``map`` run a function: threads, until it is seen to
hold the GIL.

One ``submit`` has nothing to split and nothing to sample before it runs, so
``Pool()`` (auto) starts every function on threads, where a call costs no
start-up and no copies, and times its first calls there (:class:`Submits`).
When calls of it that ran side by side kept only about one core busy between
them while the machine had a core to spare, it holds the GIL and threads run
it one call at a time; once its calls are worth many round trips to a
process, its later calls go to worker processes, as ``ProcessPoolExecutor``'s
would. (A busy machine looks the same from inside the process, one core
used: the idle time of the machine's CPUs tells the two apart, and without
a spare core there is nothing processes could gain)::

    Pool.submit(fn, *args) ─▶ Submits.route ─▶ "threads" (timed while learning)
                                   ▲       └─▶ "processes" (fn holds the GIL)
                   samples ─▶ verdict()    (a pure function of the samples)

The rule is :func:`verdict`, a pure function a test feeds samples to. A call
whose arguments the function could change in place (a list, a writable
array: anything but plain values) stays on threads, so that the function's
effect on the caller's objects never depends on what auto has learned; what
a function does to module globals it cannot see (docs/promises.md).
"""

from __future__ import annotations

import functools
import threading
import time
import types
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from .planner.evidence import func_key

__all__ = [
    "GIL_CORES",
    "SAMPLES",
    "SPARE_CORES",
    "WORTH",
    "Processes",
    "Window",
    "Submits",
    "plain_values",
    "verdict",
]

#: calls of a function timed side by side before a verdict
SAMPLES = 6
#: calls that never run side by side tell nothing of the GIL: after this many,
#: the function stays on threads
PATIENCE = 64
#: side-by-side calls that kept at most this many cores busy between them hold the
#: GIL (1.0 exactly, plus the scheduler's slack) ...
GIL_CORES = 1.3
#: ... and at least this many: less is a function that waits (I/O, sleep, a lock),
#: which threads serve well
BUSY_CORES = 0.6
#: the machine's CPUs idle at least this many cores' worth while the calls ran (on
#: average over them): a core the function could have used was free (else the
#: machine was busy)
SPARE_CORES = 0.5
#: a call moves to a process only when its CPU time is worth this many of the
#: machine's measured round trips to one (the pickling of its arguments and result
#: is not measured here: a margin for it)
WORTH = 20.0


@dataclass(frozen=True)
class Window:
    """What the timed calls of one function showed, from the start of the first to
    the end of the last (the window).

    Attributes
    ----------
    calls : int
        Calls timed.
    wall_s : float
        The window's length.
    cpu_s : float
        The CPU time of the calls' threads, summed: over ``wall_s``, how many cores
        they kept busy between them.
    idle_s : float
        The machine's CPUs' idle time during the window (summed over CPUs): over
        ``wall_s``, how many cores sat idle.
    all_calls, all_cpu_s : int, float
        Calls timed and their CPU time, this window and the ones before (a window
        ends when no call of the function runs).
    """

    calls: int
    wall_s: float
    cpu_s: float
    idle_s: float
    all_calls: int = 0
    all_cpu_s: float = 0.0


def verdict(window: Window, process_task_s: float | None, processes_workers: int) -> str | None:
    """Where a function's later calls go: ``"processes"``, ``"threads"``;
    ``"measure"`` when it holds the GIL but the machine's round trip to a
    process (``process_task_s``) is not measured yet; None while the calls
    cannot tell (too few, not side by side, or on a busy machine)."""
    w = window
    if processes_workers < 2:
        return "threads"
    seen = max(w.all_calls, w.calls)
    if (
        process_task_s is not None
        and seen >= SAMPLES
        and max(w.all_cpu_s, w.cpu_s) / seen < WORTH * process_task_s
    ):
        return "threads"  # too short for a process, whatever the GIL does
    if w.calls < SAMPLES or w.wall_s <= 0 or w.idle_s < SPARE_CORES * w.wall_s:
        # too few calls side by side, or a busy machine: nothing to learn of the GIL
        return "threads" if seen >= PATIENCE else None
    cores = w.cpu_s / w.wall_s
    if not BUSY_CORES <= cores <= GIL_CORES:
        return "threads"  # it releases the GIL, or waits
    if process_task_s is None:
        return "measure"
    return "processes"


_VALUES = (type(None), bool, int, float, complex, str, bytes, range, np.generic)


def plain_values(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a call's arguments are values no function can change in place:
    numbers, strings, bytes, None, read-only arrays, and tuples of these."""
    return all(_plain(a, 0) for a in args) and all(_plain(v, 0) for v in kwargs.values())


def _plain(a: Any, depth: int) -> bool:
    if isinstance(a, _VALUES):
        return True
    if type(a) is np.ndarray:
        return not a.flags.writeable and a.dtype.hasobject is False
    if type(a) in (tuple, frozenset) and depth < 4 and len(a) <= 1024:
        return all(_plain(v, depth + 1) for v in a)
    return False


class Processes(Protocol):
    """What :class:`Submits` asks of the pool's worker processes."""

    def round_trip(self) -> float | None:
        """The machine's measured round trip to a worker process (None: not yet)."""

    def workers(self) -> int: ...

    def unavailable(self, fn: Callable[..., Any]) -> str | None:
        """Why ``fn`` cannot run on them, or None."""

    def ready(self) -> bool:
        """They are running (when not, they are started in the background)."""

    def measure(self, fn: Callable[..., Any]) -> None:
        """Time their start and round trip, in the background."""


class _Learning:
    """What the timed calls of one function have shown so far (never the function
    itself: a bound method would keep its object alive)."""

    __slots__ = (
        "all_calls",
        "all_cpu_s",
        "calls",
        "cpu_s",
        "idle0",
        "pending",
        "t0",
        "where",
    )

    def __init__(self) -> None:
        self.all_calls = 0
        self.all_cpu_s = 0.0
        self.calls = 0
        self.cpu_s = 0.0
        #: timed calls submitted and not finished (waiting for a thread, or running)
        self.pending = 0
        #: when the window began, and the machine's idle seconds then
        self.t0: float | None = None
        self.idle0 = 0.0
        self.where: str | None = None


class Submits:
    """Auto's choice of backend for ``submit``/``map``, per function (thread-safe)."""

    def __init__(self, processes: Processes) -> None:
        self._processes = processes
        self._lock = threading.Lock()
        self._learned: dict[Hashable, _Learning] = {}

    def where(self, fn: Callable[..., Any]) -> str | None:
        """The function's verdict so far (None: still learning)."""
        learning = self._learned.get(learned_as(fn))
        return None if learning is None else learning.where

    def route(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, Callable[..., Any]]:
        """The backend for this call and the callable to submit there (``fn``
        itself, or ``fn`` timed while the function is learned)."""
        key = learned_as(fn)
        learning = self._learned.get(key)
        if learning is None:
            with self._lock:
                if len(self._learned) >= MOST_LEARNED:
                    self._learned.clear()  # (learned again, as routes are)
                learning = self._learned.setdefault(key, _Learning())
        where = learning.where
        if where == "processes":
            if plain_values(args, kwargs) and self._processes.ready():
                return "processes", fn
            return "threads", fn
        if where == "threads":
            return "threads", fn
        with self._lock:
            learning.pending += 1
        return "threads", _Timed(fn, learning, self)

    def _enter(self, learning: _Learning) -> None:
        with self._lock:
            if learning.t0 is None:  # a window begins
                learning.idle0, learning.t0 = _idle_s(), _now()

    def _leave(self, learning: _Learning, fn: Callable[..., Any], cpu: float) -> None:
        """A timed call ended: add it to the window, and give the verdict once the
        window can."""
        with self._lock:
            learning.pending -= 1
            if learning.where is not None or learning.t0 is None:
                return
            learning.calls += 1
            learning.cpu_s += cpu
            learning.all_calls += 1
            learning.all_cpu_s += cpu
            window = Window(
                learning.calls,
                _now() - learning.t0,
                learning.cpu_s,
                _idle_s() - learning.idle0,
                learning.all_calls,
                learning.all_cpu_s,
            )
            if learning.pending <= 0:  # none outstanding: the next call starts anew
                learning.t0 = None
                learning.calls = 0
                learning.cpu_s = 0.0
        p = self._processes
        where = verdict(window, p.round_trip(), p.workers())
        if where == "measure":
            p.measure(fn)
            return
        if where == "processes" and p.unavailable(fn) is not None:
            where = "threads"
        if where is not None:
            with self._lock:
                learning.where = where
            if where == "processes":
                p.ready()  # start them now, while its calls still go to threads


class _Timed:
    """``fn`` timed on a thread: its wall and CPU time and the calls beside it."""

    __slots__ = ("fn", "learning", "submits")

    def __init__(self, fn: Callable[..., Any], learning: _Learning, submits: Submits) -> None:
        self.fn = fn
        self.learning = learning
        self.submits = submits

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # (fn may take self=)
        self.submits._enter(self.learning)
        c0 = time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.submits._leave(self.learning, self.fn, time.thread_time() - c0)


#: functions learned at most; more, and what was learned is forgotten
MOST_LEARNED = 1024


def learned_as(fn: Any) -> Hashable:
    """What a function is learned under, holding no object a call may be given:
    its code (a bound method's, a partial's function's, a callable object's
    ``__call__``), a builtin by itself, a bound builtin by its class and name."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is not None:
        return code
    owner = getattr(fn, "__self__", None)
    if (
        isinstance(fn, types.BuiltinFunctionType)
        and owner is not None
        and not isinstance(owner, types.ModuleType)
    ):
        return (type(owner), fn.__name__)
    if isinstance(fn, (types.BuiltinFunctionType, np.ufunc, type)):
        return func_key(fn)
    call: Hashable | None = getattr(type(fn).__call__, "__code__", None)
    return call if call is not None else cast(Hashable, type(fn))


#: the clock of the windows (the tests set it)
_now = time.perf_counter


def _idle_s() -> float:
    """Seconds the machine's CPUs have been idle, summed (0.0 where it cannot say:
    never a spare core then, so the function stays on threads)."""
    try:
        import psutil  # (here: ~8 ms an import, only once a function's calls run)

        return float(psutil.cpu_times().idle)
    except Exception:
        return 0.0
