"""backend="serial": everything runs in the caller's thread, in order.

The reference every other backend is compared with, and the right choice
for work too small to split. For apply and map a tiny synchronous executor
makes it just another backend (the idea of dask's ``local.py``); for
``Pool.submit`` and ``Pool.map`` it is one thread that runs the calls one at
a time, in order, so that the Executor contract holds (a future is pending
until its turn; cancel, timeouts and ``shutdown(cancel_futures=True)`` work).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import _fpe
from ._base import Backend, init_here

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    name = "serial"
    inline = True
    auto = True

    def __init__(self, workers: int, blas_threads: int | None) -> None:
        super().__init__(1, blas_threads)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        #: submit's thread, once it ran Pool(initializer=) (callers: see Pool)
        self._ran = threading.local()

    def submit_call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """``Pool.submit``: one call at a time, in order, on a thread of its own, so that
        futures are pending until their turn (cancel and timeouts work) and the caller
        stays free to wait on them; under the caller's NumPy error modes (see
        ``_fpe``)."""
        state = _fpe.here()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after the pool was shut down")
            if self._executor is None:
                init = self.initializer
                self._executor = ThreadPoolExecutor(
                    1,
                    thread_name_prefix="numpool-serial",
                    initializer=None
                    if init is None
                    else functools.partial(init_here, self._ran, *init),
                )
            return self._executor.submit(_fpe.run, state, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=wait, cancel_futures=cancel_futures)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        f: Future[Any] = Future()
        f.set_running_or_notify_cancel()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # a KeyboardInterrupt too: the engine re-raises it
            f.set_exception(e)
        return f

    def max_in_flight(self) -> int:
        return 1
