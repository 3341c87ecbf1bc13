"""The interface every backend implements: an executor, a transport, a BLAS scope,
and the facts the planner needs, declared as class attributes.

A backend is deliberately thin (see ``numpool/_engine.py`` for the one
engine that splits work, bounds what is in flight and collects results, and
``numpool/_runner.py`` for what runs a call):

* ``submit(fn, *args)`` runs a callable somewhere and returns a Future;
* ``transport`` says how arrays reach ``fn`` (see ``_transport.py``);
* ``scope()`` is held around every apply/map call (the threads backend
  sets the process-wide BLAS limit there);
* ``in_process``, ``call_cost``, ``task_cost``, ``start_cost`` and ``auto``
  tell the planner what it costs (as fields of the machine profile) and
  whether ``backend="auto"`` may choose it. Block sizes come from the one
  rule in ``numpool.planner.model``; ``max_block_bytes`` caps them for
  backends that copy each block.

Adding a backend is one module in this package: a subclass with a ``name``.

Every live backend is known (:func:`live`) so that a child made by
``os.fork()`` can reset each one: see :meth:`Backend.after_fork_in_child`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, Future
from typing import TYPE_CHECKING, Any, ClassVar

from ._transport import Transport

if TYPE_CHECKING:
    from ..planner.profile import Profile

__all__ = ["BACKENDS", "Backend", "init_here", "live"]

#: every backend class by name; a subclass with a ``name`` of its own registers here
BACKENDS: dict[str, type[Backend]] = {}
#: every backend instance not yet garbage
_live: weakref.WeakSet[Backend] = weakref.WeakSet()


def live() -> list[Backend]:
    """The backend instances of this process (for a fork's child to reset)."""
    return list(_live)


def init_here(ran: threading.local, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Pool(initializer=) in this thread, once (a worker thread, or a caller's, which
    runs the first rows of an array call itself); a failure breaks the call as a failed
    initializer breaks an executor, with the initializer's error."""
    if getattr(ran, "done", False):
        return
    try:
        fn(*args)
    except Exception as e:
        raise BrokenExecutor(
            f"the pool's initializer {getattr(fn, '__qualname__', fn)!r} raised "
            f"{type(e).__name__}: {e}; the pool cannot run work until it succeeds "
            "(fix it, or make a new Pool)"
        ) from e
    ran.done = True


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
    #: submit() runs the work in the caller's thread (serial)
    inline: ClassVar[bool] = False
    #: backend="auto" may choose this backend
    auto: ClassVar[bool] = False
    #: what a call, each block or batch, and starting one worker cost: names of
    #: fields of the machine profile (numpool.planner.profile.Profile); None: free
    call_cost: ClassVar[str | None] = None
    task_cost: ClassVar[str | None] = None
    start_cost: ClassVar[str | None] = None
    #: the most bytes of input per apply block (backends that copy every block)
    max_block_bytes: ClassVar[int | None] = None
    #: the Pool options beyond workers and blas_threads that its constructor takes
    #: (``address``, ``retries``, ``connect_timeout``); Pool refuses the others for it
    options: ClassVar[frozenset[str]] = frozenset()

    #: Pool(initializer=, initargs=): run once in each worker before its first task
    #: (and in a replacement worker), and in a calling thread that runs blocks itself
    initializer: tuple[Callable[..., Any], tuple[Any, ...]] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            BACKENDS[cls.name] = cls

    def __init__(self, workers: int, blas_threads: int | None) -> None:
        self.workers = workers
        self.blas_threads = blas_threads
        #: times a call re-runs the tasks of a worker process that died (Pool(retries=))
        self.retries = 0
        _live.add(self)

    @classmethod
    def unavailable(cls, func: Callable[..., Any]) -> str | None:
        """Why this backend cannot run ``func`` here (None: it can)."""
        return cls.unavailable_here()

    @classmethod
    def unavailable_here(cls) -> str | None:
        """Why this backend cannot run anything in this process (None: it can), asked
        without ``func`` (cheap: the planner asks it of every call; whether ``func``
        itself can reach the workers is asked only of a backend it chooses)."""
        return None

    @property
    def started(self) -> bool:
        """Its workers are running: a call would not pay for starting them."""
        return True

    def task_seconds(self, profile: Profile) -> float:
        """What sending one block or batch costs (for block sizes)."""
        value = getattr(profile, self.task_cost) if self.task_cost else 0.0
        return float(value or 0.0)

    def set_initializer(self, initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
        """Pool(initializer=): set before the backend's first task (see ``initializer``)."""
        self.initializer = (initializer, initargs)

    def check_callable(self, func: Callable[..., Any]) -> None:
        """Raise TypeError when ``func`` cannot run on this backend's workers."""

    #: the engine runs a dead worker's jobs again itself (Pool(retries=))
    resubmits: ClassVar[bool] = True

    def is_crash(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from a job's future) means a worker died."""
        # (only a pool that imported concurrent.futures.process raises its error:
        # not imported here, it would cost every ``import numpool`` ~9 ms)
        process = sys.modules.get("concurrent.futures.process")
        return process is not None and isinstance(exc, process.BrokenProcessPool)

    def recover(self) -> None:
        """After a worker died: whatever the next submit needs (process backends)."""

    def crash_cause(self) -> str:
        """How a worker died, for WorkerCrashedError (process backends)."""
        return ""

    def interrupt(self) -> None:
        """Ctrl-C during a call: stop running tasks where that is possible (processes),
        else leave them behind (threads); the next call gets fresh workers."""

    def abandon(self, futures: Iterable[Future[Any]]) -> None:
        """The caller gave up on these futures (a timeout, a map iterator closed or
        dropped early) after cancelling them: those still running are stopped or left
        behind as by :meth:`interrupt`, so that the next call does not queue behind
        a func that never returns. Nothing to do when none is still running."""
        if any(not f.done() for f in futures):
            self.interrupt()

    def after_fork_in_child(self) -> None:
        """In a child made by ``os.fork()``: forget the parent's workers, threads and
        locks, without shutting anything down (they are the parent's; their threads
        do not exist here, and a lock may have been held by one at the fork); the next
        call starts workers of the child's own."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise NotImplementedError

    def submit_call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """``Pool.submit``: run the user's ``fn(*args, **kwargs)`` (numpool's own jobs go
        through :meth:`submit`)."""
        return self.submit(fn, *args, **kwargs)

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

    def start_soon(self, func: Callable[..., Any] | None = None) -> None:
        """Start the workers in the background, if they are not running (they are,
        unless the backend has a start-up cost: processes override this)."""

    def max_in_flight(self) -> int:
        """Batches submitted ahead of completion (bounds staged memory)."""
        return 2 * self.workers

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass
