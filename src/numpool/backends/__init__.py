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
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
from typing import Any

from .. import _buffers, shm
from ..blas import budget_for
from ._base import BACKENDS, Backend, live

__all__ = ["BACKENDS", "Backend", "BackendSet", "auto_choices", "get", "names"]

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


def auto_choices() -> list[type[Backend]]:
    """The backends ``backend="auto"`` chooses among, simplest first (ties go to it)."""
    _load()
    chosen = [cls for cls in BACKENDS.values() if cls.auto]
    return sorted(chosen, key=lambda c: (not c.inline, not c.in_process, c.name))


def get(name: str, workers: int, blas_threads: int | None, **options: Any) -> Backend:
    """A new backend instance by name (``options``: the dask backend's address, retries)."""
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
    ) -> None:
        self.workers = workers
        #: the user's blas_threads (None: budgeted per backend)
        self.given_blas = blas_threads
        self.retries = retries
        self.address = address
        self.connect_timeout = connect_timeout
        self.closed = False
        self._lock = threading.Lock()
        self._live: dict[str, Backend] = {}

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
                options: dict[str, Any] = {}
                if name == "dask":
                    options = {"address": self.address, "retries": self.retries}
                    if self.connect_timeout is not None:
                        options["connect_timeout"] = self.connect_timeout
                backend = get(name, self.workers, self.blas_for(name), **options)
                backend.retries = self.retries
                self._live[name] = backend
        return backend

    def peek(self, name: str) -> Backend | None:
        """The backend if it was created, without creating it."""
        return self._live.get(name)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self.closed = True
            live = list(self._live.values())
        for backend in live:
            backend.shutdown(wait=wait, cancel_futures=cancel_futures)


def _after_fork_in_child() -> None:
    """In a fork's child: each backend, and the shared-memory and private arenas,
    let go of what is the parent's (the module's default pools: ``numpool._api``)."""
    shm.after_fork_in_child(_buffers.arena())
    for backend in live():
        backend.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
