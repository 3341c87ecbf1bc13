"""backend="threads": a thread pool in the caller's process.

NumPy releases the GIL inside its loops and BLAS calls, so blocks run in
parallel and write straight into the output array: nothing is copied or
moved. Functions that hold the GIL (pure-Python loops) do not speed up here;
use ``processes`` for those.

BLAS: OpenBLAS's limit is process-wide, so the budget
(``workers * blas_threads <= usable cores``) is set once around each
apply/map call by :func:`numpool.blas.process_budget`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar

from .. import _buffers
from ..blas import process_budget
from ._base import Backend
from ._transport import Transport

__all__ = ["ThreadsBackend"]


class ThreadsBackend(Backend):
    name = "threads"
    auto = True
    #: a call wakes idle threads; each further block is a queue hand-off
    call_cost = "thread_wake_s"
    task_cost = "thread_task_s"
    #: outputs in recycled warm memory: fresh pages cost bandwidth that threads
    #: cannot parallelise (np.exp 10M, 2 threads: 2.2x serial warm, 1.6x fresh)
    transport: ClassVar[Transport] = Transport(recycle=True)

    def __init__(self, workers: int, blas_threads: int | None) -> None:
        super().__init__(workers, blas_threads)
        _buffers.arena().acquire()  # (first: it may refuse a bad setting)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="numpool")
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._executor.submit(fn, *args, **kwargs)

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return process_budget(self.blas_threads)

    def start(
        self, func: Callable[..., Any] | None = None, args: tuple[Any, ...] | None = None
    ) -> None:
        """Start every thread now. The executor adds a thread only when no idle one is
        left, so instant warm-up tasks would all run on one thread: each task here
        waits until all ``workers`` are running at once."""
        barrier = threading.Barrier(self.workers)

        def meet() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)

        with self.scope():
            for f in [self.submit(meet) for _ in range(self.workers)]:
                f.result()

    def max_in_flight(self) -> int:
        # Threads share memory: nothing is staged per task, so keep every worker fed.
        return 1 << 30

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)
        if not self._closed:
            self._closed = True
            _buffers.arena().release()
