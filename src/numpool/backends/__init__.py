"""numpool's backends: thin modules over one engine (``numpool._engine``).

========== ===========================================================
serial     in the caller's thread; the reference
threads    a thread pool; NumPy releases the GIL, arrays are shared
processes  worker processes; arrays travel through shared memory
pickle     worker processes; arrays pickled (the naive baseline)
dask       a Dask cluster (distributed); arrays scattered to its workers
========== ===========================================================

Every module of this package that does not start with ``_`` is a backend:
a :class:`Backend` subclass with a ``name`` registers itself when its module
is imported (``Backend.__init_subclass__``), so adding a backend is adding
one module. :class:`BackendSet` holds the live backends of one pool.

A child made by ``os.fork()`` inherits the parent's backends, with executors
whose threads do not exist in it, and the parent's shared memory.
:func:`_after_fork_in_child` gives it pools of its own: every live backend
forgets its workers, and the arenas forget the parent's segments, without
shutting down or unlinking anything of the parent's.

A pool dropped without ``shutdown()`` lets its workers end, as the stdlib's
executors do: :meth:`BackendSet.shutdown_when_dropped` hands its backends
to one daemon thread per process that shuts them down without waiting. The
collector may run in any thread, one holding a lock that shutdown takes
included, so the finalizer itself only puts them on a queue (as
``ThreadPoolExecutor``'s own weakref callback does)::

    pool garbage ─finalize─▶ SimpleQueue.put ─▶ numpool-reaper ─▶ BackendSet.shutdown(wait=False)
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import queue
import threading
import weakref
from typing import Any

from .. import _buffers, shm
from ..blas import budget_for
from ._base import BACKENDS, Backend, live

__all__ = ["BACKENDS", "Backend", "BackendSet", "auto_choices", "get", "names", "taking"]

_loaded = False


def _load() -> None:
    """Import every backend module once (each registers its class)."""
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True


def names() -> list[str]:
    _load()
    return sorted(BACKENDS)


def taking(option: str) -> list[str]:
    """The backends whose constructor takes the Pool option ``option`` (see
    ``Backend.options``), by name."""
    _load()
    return sorted(n for n, cls in BACKENDS.items() if option in cls.options)


def auto_choices() -> list[type[Backend]]:
    """The backends ``backend="auto"`` chooses among, simplest first (ties go to it)."""
    _load()
    chosen = [cls for cls in BACKENDS.values() if cls.auto]
    return sorted(chosen, key=lambda c: (not c.inline, not c.in_process, c.name))


def get(name: str, workers: int, blas_threads: int | None, **options: Any) -> Backend:
    """A new backend instance by name (``options``: those its class declares in
    ``Backend.options``, e.g. the dask backend's address and retries)."""
    _load()
    return BACKENDS[name](workers, blas_threads, **options)


class BackendSet:
    """The live backends of one pool: each created on first use with the pool's
    options, all shut down together; none is created after :meth:`shutdown`."""

    def __init__(
        self,
        workers: int,
        blas_threads: int | None,
        retries: int = 0,
        address: Any = None,
        connect_timeout: float | None = None,
        initializer: tuple[Any, tuple[Any, ...]] | None = None,
        mp_context: Any = None,
    ) -> None:
        self.workers = workers
        #: Pool(initializer=, initargs=), set on every backend made
        self.initializer = initializer
        self.mp_context = mp_context
        #: the user's blas_threads (None: budgeted per backend)
        self.given_blas = blas_threads
        self.retries = retries
        self.address = address
        self.connect_timeout = connect_timeout
        self.closed = False
        self._lock = threading.Lock()
        self._live: dict[str, Backend] = {}
        self._dropped: weakref.finalize | None = None

    def blas_for(self, name: str) -> int | None:
        """BLAS threads per worker: the user's, else none for serial (left as they are)
        and ``usable cores // workers`` for the others."""
        if self.given_blas is not None or name == "serial":
            return self.given_blas
        return budget_for(self.workers)

    def get(self, name: str) -> Backend:
        backend = self._live.get(name)
        if backend is not None:
            return backend
        with self._lock:
            if self.closed:
                raise RuntimeError("cannot schedule new work after the pool was shut down")
            backend = self._live.get(name)
            if backend is None:
                _load()
                given = {
                    "address": self.address,
                    "retries": self.retries,
                    "connect_timeout": self.connect_timeout,
                    "mp_context": self.mp_context,
                }
                # the Pool options its class declares it takes (those given)
                options = {
                    k: v
                    for k, v in given.items()
                    if k in BACKENDS[name].options and (v is not None or k == "address")
                }
                backend = get(name, self.workers, self.blas_for(name), **options)
                backend.retries = self.retries
                if self.initializer is not None:
                    try:
                        backend.set_initializer(*self.initializer)
                    except BaseException:
                        backend.shutdown(wait=False)
                        raise
                self._live[name] = backend
        return backend

    def peek(self, name: str) -> Backend | None:
        """The backend if it was created, without creating it."""
        return self._live.get(name)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._dropped is not None:
            self._dropped.detach()
        with self._lock:
            self.closed = True
            live = list(self._live.values())
        for backend in live:
            backend.shutdown(wait=wait, cancel_futures=cancel_futures)

    def shutdown_when_dropped(self, owner: object) -> None:
        """Once ``owner`` (the pool) is garbage, shut these backends down without
        waiting, in the reaper thread (see the module docstring): its queued work
        still runs, then its threads and worker processes end and the arenas it
        holds are released. Not at the interpreter's exit: concurrent.futures and
        numpool.shm end everything there."""
        _start_reaper()
        self._dropped = weakref.finalize(owner, _reap_soon, self)
        self._dropped.atexit = False


log = logging.getLogger("numpool")

#: backend sets of pools dropped without shutdown(), for the reaper thread
_drops: queue.SimpleQueue[BackendSet] = queue.SimpleQueue()
#: the process whose reaper thread reads _drops (a fork's child has none until it
#: makes a pool)
_reaper_pid: int | None = None
_reaper_lock = threading.Lock()


def _start_reaper() -> None:
    """Start this process's reaper thread, unless it runs (with a pool, never at GC)."""
    global _drops, _reaper_pid
    if _reaper_pid == os.getpid():
        return
    with _reaper_lock:
        if _reaper_pid == os.getpid():
            return
        # a fork's child: a queue of its own (the parent's may hold the parent's drops)
        drops: queue.SimpleQueue[BackendSet] = queue.SimpleQueue()
        threading.Thread(target=_reap, args=(drops,), name="numpool-reaper", daemon=True).start()
        _drops, _reaper_pid = drops, os.getpid()


def _reap_soon(backends: BackendSet) -> None:
    """The dropped pool's finalizer, in whatever thread the collector runs: maybe
    one holding a lock that shutdown takes (an executor's, while it starts a thread),
    so it only queues; ``SimpleQueue.put`` is safe there (documented as reentrant)."""
    if _reaper_pid == os.getpid():
        _drops.put(backends)
    else:  # (a fork's child that made no pool: there is no reaper to wake)
        backends.shutdown(wait=False)


def _reap(drops: queue.SimpleQueue[BackendSet]) -> None:
    while True:
        backends = drops.get()
        try:
            backends.shutdown(wait=False)
        except Exception:
            log.warning(
                "numpool: shutting down a pool dropped without shutdown() failed; its "
                "workers may stay until the interpreter exits",
                exc_info=True,
            )
        del backends


def _after_fork_in_child() -> None:
    """In a fork's child: each backend, and the shared-memory and private arenas,
    let go of what is the parent's (the module's default pools: ``numpool._api``)."""
    global _reaper_lock
    _reaper_lock = threading.Lock()  # (a parent's thread may have held it at the fork)
    shm.after_fork_in_child(_buffers.arena())
    for backend in live():
        backend.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
