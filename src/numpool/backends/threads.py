"""backend="threads": a thread pool in the caller's process.

NumPy releases the GIL inside its loops and BLAS calls, so blocks run in
parallel and write straight into the output array: nothing is copied or
moved. Functions that hold the GIL (pure-Python loops) do not speed up here;
use ``processes`` for those.

BLAS: OpenBLAS's limit is process-wide, so the budget
(``workers * blas_threads <= usable cores``) is set once around each
apply/map call by :func:`numpool.blas.process_budget`.

A thread cannot be stopped. When a call ends with blocks still running
(Ctrl-C, a timeout, a ``Pool.map`` iterator closed early) the backend leaves
those threads behind and the next call gets a fresh executor
(:meth:`ThreadsBackend.interrupt`): a func that never returns then costs one
thread, never the pool, nor the interpreter's exit (see :class:`_DaemonThreads`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar

from .. import _buffers
from ..blas import process_budget
from . import _cpython, _fpe
from ._base import Backend, init_here
from ._transport import Transport

__all__ = ["ThreadsBackend"]


class _DaemonThreads(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose threads are daemon threads.

    Why: a thread left behind running a func that never returns must not keep the
    interpreter from exiting. At exit the interpreter joins every non-daemon thread
    (``threading._shutdown``), and concurrent.futures joins every thread of its
    executors (its ``_threads_queues`` registry). Taking a thread out of that
    registry alone is not enough for a non-daemon thread, and a running thread's
    daemon flag cannot be changed; so every thread here is a daemon from the start,
    and :func:`_leave_behind` takes abandoned ones out of the registry. Threads not
    left behind stay in it: at exit they finish their work, as the stdlib's do.

    How: a new thread is a daemon when the thread creating it is one (documented in
    ``threading``), and the executor creates its threads in ``submit``, in the
    caller's thread; so until all ``max_workers`` exist, they are created from a
    short-lived daemon thread. (``_adjust_thread_count``, ``_idle_semaphore``,
    ``_threads`` and ``_max_workers`` are private hooks of the stdlib's class: see
    ``_cpython.py``.)
    """

    def _adjust_thread_count(self) -> None:
        # An idle thread takes the work: no new thread, and no spawner thread started
        # and joined on every submit (~0.3 ms) while the pool has fewer threads than
        # max_workers, as it does for good when each call hands work to workers-1 of
        # them (the caller takes blocks too). The stdlib's method starts the same way.
        if self._idle_semaphore.acquire(timeout=0):
            return
        if len(self._threads) >= self._max_workers or threading.current_thread().daemon:
            super()._adjust_thread_count()
            return
        errors: list[BaseException] = []

        def create() -> None:
            # every missing thread at once: later submits never start a spawner again
            # (a helper's thread marks itself idle only after its future is done, so
            # a call that follows at once could find none idle and spawn every time)
            try:
                while len(self._threads) < self._max_workers:
                    ThreadPoolExecutor._adjust_thread_count(self)
            except BaseException as e:  # "can't start new thread": the caller's error
                errors.append(e)

        spawner = threading.Thread(target=create, name="numpool-spawn", daemon=True)
        spawner.start()
        spawner.join()
        if errors:
            raise errors[0]


def _leave_behind(ex: ThreadPoolExecutor) -> None:
    """Shut ``ex`` down without waiting (queued work still runs; running work goes on),
    and let the interpreter exit without joining its threads."""
    ex.shutdown(wait=False)
    _forget(ex)


def _forget(ex: ThreadPoolExecutor) -> None:
    """Take ``ex``'s threads out of concurrent.futures' exit registry."""
    _cpython.forget_thread_exit_registry(_cpython.executor_threads(ex))


class ThreadsBackend(Backend):
    name = "threads"
    auto = True
    #: a call wakes idle threads. Each further block costs a GIL hand-back, not just
    #: a queue hand-off: a thread that finished a block's NumPy work (GIL released)
    #: waits for the GIL like a thread woken from sleep. Measured on a 2-vCPU VM,
    #: ``a * b + c`` over 300k in 8 pulled blocks took 80 us more per extra block
    #: than in 2, where thread_task_s (a queue hand-off) read 8 us, thread_wake_s 38 us
    call_cost = "thread_wake_s"
    task_cost = "thread_wake_s"
    #: outputs in recycled warm memory: fresh pages cost bandwidth that threads
    #: cannot parallelise (np.exp 10M, 2 threads: 2.2x serial warm, 1.6x fresh)
    transport: ClassVar[Transport] = Transport(recycle=True)

    def __init__(self, workers: int, blas_threads: int | None) -> None:
        super().__init__(workers, blas_threads)
        _buffers.arena().acquire()  # (first: it may refuse a bad setting)
        #: reentrant: a dropped map iterator may abandon its work from a __del__ that
        #: the garbage collector runs while this thread holds the lock
        self._lock = threading.RLock()
        #: the worker threads that ran Pool(initializer=)
        self._ran = threading.local()
        self._executor = self._new_executor()
        self._closed = False

    def _new_executor(self) -> ThreadPoolExecutor:
        if self.initializer is None:
            return _DaemonThreads(self.workers, thread_name_prefix="numpool")
        return _DaemonThreads(
            self.workers,
            thread_name_prefix="numpool",
            initializer=init_here,
            initargs=(self._ran, *self.initializer),
        )

    def set_initializer(self, initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
        """Each worker thread runs it first (the executor's own initializer)."""
        super().set_initializer(initializer, initargs)
        with self._lock:
            old, self._executor = self._executor, self._new_executor()
        old.shutdown(wait=False)  # (no thread yet: nothing ran on it)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """``fn(*args, **kwargs)`` on a pool thread, under the caller's NumPy error
        modes (``np.errstate``: see ``_fpe``)."""
        ex = self._executor
        state = _fpe.here()
        try:
            return ex.submit(_fpe.run, state, fn, *args, **kwargs)
        except RuntimeError:
            # another thread's call left ``ex`` behind meanwhile: its successor takes it
            if self._closed or self._executor is ex:
                raise
            return self._executor.submit(_fpe.run, state, fn, *args, **kwargs)

    def interrupt(self) -> None:
        """Ctrl-C or an abandoned call: threads cannot be stopped, so the pool leaves
        the current ones behind (running blocks go on, work queued by other calls still
        runs on them) and takes fresh ones: a func that never returns cannot hold up
        the next call, ``shutdown(wait=True)`` or the interpreter's exit."""
        with self._lock:
            if self._closed:
                return
            old, self._executor = self._executor, self._new_executor()
        _leave_behind(old)

    def after_fork_in_child(self) -> None:
        """A fresh executor: the inherited one's threads do not exist in the child (it
        would queue work that nothing runs), and its locks may be held."""
        old = self._executor
        self._lock = threading.RLock()
        self._executor = self._new_executor()
        if self._closed:
            self._executor.shutdown(wait=False)  # (no thread yet: refuses, as before)
        _forget(old)

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
        with self._lock:
            closed, self._closed = self._closed, True
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)
        if not closed:
            _buffers.arena().release()
