"""The interface every backend implements: an executor, a transport, a BLAS scope.

A backend is deliberately thin (see ``numpool/_engine.py`` for the one
engine that splits work, bounds what is in flight and collects results):

* ``submit(fn, *args)`` runs a callable somewhere and returns a Future;
* ``transport`` says how arrays reach ``fn`` (see ``_transport.py``);
* ``scope()`` is held around every apply/map call (the threads backend
  sets the process-wide BLAS limit there);
* ``default_chunks`` / ``default_chunksize`` size the work for that backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar

from ._transport import Transport

__all__ = ["Backend"]

_MiB = 1 << 20


def _warm(func: Any, args: tuple[Any, ...] | None) -> None:
    """A warm-up task: receiving ``func`` imports it in a worker process; running it
    on a small sample walks its code path once."""
    if func is not None and args is not None:
        func(*args)


class Backend:
    """Base class of numpool's backends."""

    name: ClassVar[str]
    transport: ClassVar[Transport] = Transport()
    #: workers run in this process and write into the caller's memory (serial, threads)
    in_process: ClassVar[bool] = True
    #: submit() runs the work in the caller's thread, at once (serial)
    inline: ClassVar[bool] = False
    #: bytes of input per apply block: fewer, larger blocks cost fewer hand-offs, but
    #: at least 4 blocks per worker keep the load balanced. Measured (np.exp, 10M
    #: float64, 2 threads): 8 blocks 2.2x serial, 16 2.1x, 76 1.8x.
    block_bytes: ClassVar[int] = 8 * _MiB

    def __init__(self, workers: int, blas_threads: int | None) -> None:
        self.workers = workers
        self.blas_threads = blas_threads
        #: times a call re-runs the tasks of a worker process that died (Pool(retries=))
        self.retries = 0

    def check_callable(self, func: Callable[..., Any]) -> None:
        """Raise TypeError when ``func`` cannot run on this backend's workers."""

    #: the engine runs a dead worker's jobs again itself (Pool(retries=))
    resubmits: ClassVar[bool] = True

    def is_crash(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from a job's future) means a worker died."""
        return isinstance(exc, BrokenProcessPool)

    def recover(self) -> None:
        """After a worker died: whatever the next submit needs (process backends)."""

    def crash_cause(self) -> str:
        """How a worker died, for WorkerCrashedError (process backends)."""
        return ""

    def interrupt(self) -> None:
        """Ctrl-C during a call: stop running tasks where that is possible (processes)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise NotImplementedError

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def start(
        self, func: Callable[..., Any] | None = None, args: tuple[Any, ...] | None = None
    ) -> None:
        """Start the workers and set up the BLAS scope now, not on the first call
        (so that a timed first call measures the work, not the start). With
        ``func``, each worker also loads it (a process imports its module), and
        with ``args`` runs ``func(*args)`` once: a forked worker's first run of
        a code path is slow while it copies the pages it touches (copy-on-write)."""
        if func is not None:
            self.check_callable(func)
        with self.scope():
            for f in [self.submit(_warm, func, args) for _ in range(self.workers)]:
                f.result()

    #: blocks per worker, at least and at most
    blocks_per_worker: ClassVar[tuple[int, int]] = (4, 64)

    def default_chunks(self, rows: int, nbytes: int) -> int:
        """Blocks for apply: ~block_bytes each, within blocks_per_worker, a multiple of
        the workers (9 equal blocks on 2 workers leave one idle for a ninth of the time)."""
        w = self.workers
        lo, hi = self.blocks_per_worker
        n = max(lo * w, min(hi * w, nbytes // self.block_bytes))
        return max(1, min(rows, -(-n // w) * w))

    def default_chunksize(self, tasks: int) -> int:
        return 1

    def max_in_flight(self) -> int:
        """Batches submitted ahead of completion (bounds staged memory)."""
        return 2 * self.workers

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass
