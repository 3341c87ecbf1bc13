"""Measure what crosses process boundaries: bytes pickled, time spent pickling.

Every message ``multiprocessing`` sends (``Pool`` tasks and results, and
``ProcessPoolExecutor``'s, which numpool's processes and pickle backends
use) goes through ``ForkingPickler.dumps`` and comes back through
``ForkingPickler.loads``. :class:`PickleMeter` wraps both, in this process
and in forked ``multiprocessing.Pool`` workers (which inherit the wrapper
and write into shared counters), or in spawned ones that call
:func:`install_in_worker` from their initializer.

Bytes moved = bytes pickled by the parent (tasks out) + bytes the parent
unpickled (results in): every message crosses a pipe once either way, so
this counts each once, whether or not the workers are metered.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from multiprocessing.reduction import ForkingPickler
from typing import Any

__all__ = ["CpuWatch", "PickleMeter", "install_in_worker"]

# Counters: 6 doubles per process slot, in shared memory without a process-wide
# lock. A lock shared across processes deadlocks the moment Pool.terminate()
# kills a worker that holds it (seen here), so each process adds only to its own
# slot (picked by pid), guarded by a lock of its own, and the parent sums slots.
# Per slot: [parent dumps bytes, parent dumps s, parent loads bytes, parent loads s,
#            worker dumps s, worker loads s]
SLOTS = 512
_counters: Any = None
_is_parent = True
_local_lock = threading.Lock()
_orig_dumps = ForkingPickler.__dict__["dumps"].__func__
_orig_loads = ForkingPickler.loads


def _dumps(cls: Any, obj: Any, protocol: Any = None) -> Any:
    t = time.perf_counter()
    buf = _orig_dumps(cls, obj, protocol)
    _add(0 if _is_parent else None, len(buf), 1 if _is_parent else 4, time.perf_counter() - t)
    return buf


def _loads(data: Any, *args: Any, **kwargs: Any) -> Any:
    t = time.perf_counter()
    obj = _orig_loads(data, *args, **kwargs)
    n = memoryview(data).nbytes
    _add(2 if _is_parent else None, n, 3 if _is_parent else 5, time.perf_counter() - t)
    return obj


def _add(i_bytes: int | None, n: int, i_time: int, seconds: float) -> None:
    c = _counters
    if c is None:
        return
    base = 0 if _is_parent else 6 * (1 + os.getpid() % (SLOTS - 1))
    with _local_lock:
        if i_bytes is not None:
            c[base + i_bytes] += n
        c[base + i_time] += seconds


def _set(dumps: Any, loads: Any) -> None:
    """Swap ForkingPickler's dumps/loads: the hooks every multiprocessing message uses."""
    cls: Any = ForkingPickler
    cls.dumps = dumps
    cls.loads = loads


def counters() -> Any:
    """The shared counters, created once (spawn context: usable by forked and spawned
    workers alike)."""
    global _shared
    if _shared is None:
        _shared = mp.get_context("spawn").RawArray("d", 6 * SLOTS)
    return _shared


_shared: Any = None


def install_in_worker(counters: Any) -> None:
    """Pool initializer for spawned workers: meter this process into ``counters``."""
    global _counters, _is_parent
    _counters, _is_parent = counters, False
    _set(classmethod(_dumps), staticmethod(_loads))


def _fork_child_hook() -> None:
    global _is_parent, _local_lock
    _is_parent = False
    _local_lock = threading.Lock()  # a copy of the parent's could be held


class PickleMeter:
    """Context manager: counts pickling while active; read the totals afterwards."""

    def __init__(self) -> None:
        self.counters = counters()
        self.result: dict[str, float] = {}

    def __enter__(self) -> PickleMeter:
        global _counters
        _counters = self.counters
        self.counters[:] = [0.0] * len(self.counters)
        _set(classmethod(_dumps), staticmethod(_loads))
        return self

    def __exit__(self, *exc: object) -> None:
        global _counters
        _set(classmethod(_orig_dumps), _orig_loads)
        slots = list(self.counters)
        c = [sum(slots[i::6]) for i in range(6)]
        _counters = None
        self.result = {
            "bytes_moved": c[0] + c[2],
            "parent_pickle_s": c[1] + c[3],
            "worker_pickle_s": c[4] + c[5],
        }


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fork_child_hook)


class CpuWatch:
    """How busy *other* programs kept the machine while something ran.

    The machine's busy CPU seconds (psutil, all cores) minus this process
    tree's (this process, its waited children, and every live descendant:
    pool workers, forkservers, clusters), over wall time x logical cores.
    The kernel counts CPU time in ticks (10 ms), so windows under ~0.2 s
    say little; :meth:`share` returns None for them.
    """

    def __init__(self) -> None:
        self.wall = 0.0
        self.others = 0.0
        self._start: tuple[float, float, float] | None = None

    @staticmethod
    def _now() -> tuple[float, float, float]:
        import resource

        import psutil

        t = psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        own = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            r = resource.getrusage(who)
            own += r.ru_utime + r.ru_stime
        try:
            for p in psutil.Process().children(recursive=True):
                try:
                    c = p.cpu_times()
                    own += c.user + c.system + c.children_user + c.children_system
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        return time.perf_counter(), busy, own

    def __enter__(self) -> CpuWatch:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._start is not None
        t1, busy1, own1 = self._now()
        t0, busy0, own0 = self._start
        self.wall += t1 - t0
        self.others += max(0.0, (busy1 - busy0) - (own1 - own0))

    def share(self) -> float | None:
        """Other programs' CPU seconds over wall x logical cores (None: too short to tell)."""
        if self.wall < 0.2:
            return None
        return min(1.0, self.others / (self.wall * (os.cpu_count() or 1)))
