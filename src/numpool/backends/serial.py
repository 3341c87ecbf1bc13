"""backend="serial": everything runs in the caller's thread, in order.

The reference every other backend is compared with, and the right choice
for work too small to split. A tiny synchronous Executor makes it just
another backend (the idea of dask's ``local.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ._base import Backend

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    name = "serial"
    inline = True
    auto = True

    def __init__(self, workers: int, blas_threads: int | None) -> None:
        super().__init__(1, blas_threads)

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
