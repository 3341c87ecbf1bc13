"""backend="processes": persistent worker processes, arrays through shared memory.

For functions that hold the GIL (pure-Python loops, most non-NumPy code),
only separate processes run in parallel. The classic ``multiprocessing``
recipe pickles every array through a pipe, which is why it is often slower
than serial NumPy; here arrays travel by *name* (see ``numpool.shm``):

    caller ──ShmRef──▶ worker ──attach (cached)──▶ view ──▶ func ──▶ writes in place

Process management is the standard library's ``ProcessPoolExecutor`` over
the ``forkserver`` start method (``spawn`` where there is none): workers
are forked from a clean single-threaded server that has already imported
NumPy and numpool, never from the caller (which may be running threads).
Each worker applies the BLAS budget once, at start, with threadpoolctl.

A worker that dies (SIGKILL, OOM) breaks the stdlib executor; numpool turns
that into :class:`numpool.WorkerCrashedError` and starts a fresh executor on
the next call.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, ClassVar

from .. import shm
from ._base import Backend
from ._transport import Shared, Transport
from ._worker import init_worker

__all__ = ["ProcessesBackend"]

_MiB = 1 << 20


def _context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # Only effective before the forkserver starts; afterwards workers import on demand.
        ctx.set_forkserver_preload(["numpy", "numpool.backends._worker"])
        return ctx
    return mp.get_context("spawn")


class ProcessesBackend(Backend):
    name = "processes"
    transport: ClassVar[Transport] = Shared()
    in_process = False
    #: a task costs a pipe round trip through the executor's threads: measured on
    #: np.exp over 10M SharedArray, 2 workers: 4 blocks 1.80x serial, 8 1.74x, 19 1.55x
    block_bytes = 32 * _MiB
    blocks_per_worker = (4, 16)

    def __init__(self, workers: int, blas_threads: int | None) -> None:
        super().__init__(workers, blas_threads)
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        shm.arena().acquire()

    def _make_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=_context(),
            initializer=init_worker,
            initargs=(self.blas_threads, shm.shm_dir(), os.getpid()),
        )

    def executor(self) -> ProcessPoolExecutor:
        """The live executor, replacing one that a dead worker broke."""
        with self._lock:
            ex = self._executor
            if ex is None or getattr(ex, "_broken", False):
                if ex is not None:
                    ex.shutdown(wait=False, cancel_futures=True)
                ex = self._executor = self._make_executor()
            return ex

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.executor().submit(fn, *args, **kwargs)

    @property
    def started(self) -> bool:
        """Workers are running (a first call would not pay their start-up)."""
        ex = self._executor
        return ex is not None and not getattr(ex, "_broken", False)

    def default_chunksize(self, tasks: int) -> int:
        # One message per batch: fewer round trips for many small tasks.
        return max(1, tasks // (8 * self.workers))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            ex, self._executor = self._executor, None
            closed, self._closed = self._closed, True
        if ex is not None:
            ex.shutdown(wait=wait, cancel_futures=cancel_futures)
        if not closed:
            shm.arena().release()
