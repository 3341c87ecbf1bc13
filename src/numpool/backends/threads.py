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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..blas import process_budget
from ._base import Backend

__all__ = ["ThreadsBackend"]


class ThreadsBackend(Backend):
    name = "threads"

    def __init__(self, workers: int, blas_threads: int | None) -> None:
        super().__init__(workers, blas_threads)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="numpool")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._executor.submit(fn, *args, **kwargs)

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return process_budget(self.blas_threads)

    def max_in_flight(self) -> int:
        # Threads share memory: nothing is staged per task, so keep every worker fed.
        return 1 << 30

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)
