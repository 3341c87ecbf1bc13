"""numpool's backends: thin modules over one engine (``numpool._engine``).

========== ===========================================================
serial     in the caller's thread; the reference
threads    a thread pool; NumPy releases the GIL, arrays are shared
processes  worker processes; arrays travel through shared memory
pickle     worker processes; arrays pickled (the naive baseline)
dask       a Dask cluster (distributed); arrays scattered to its workers
========== ===========================================================

A backend registers itself in ``BACKENDS`` by name; ``get`` builds one.
"""

from __future__ import annotations

from typing import Any

from ._base import Backend
from .dask import DaskBackend
from .pickled import PickleBackend
from .processes import ProcessesBackend
from .serial import SerialBackend
from .threads import ThreadsBackend

__all__ = ["BACKENDS", "Backend", "get", "names"]

BACKENDS: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Make a backend class available by its ``name``."""
    BACKENDS[cls.name] = cls
    return cls


for _cls in (SerialBackend, ThreadsBackend, ProcessesBackend, PickleBackend, DaskBackend):
    register(_cls)


def names() -> list[str]:
    return sorted(BACKENDS)


def get(name: str, workers: int, blas_threads: int | None, **options: Any) -> Backend:
    """A new backend instance by name (``options``: the dask backend's address, retries)."""
    return BACKENDS[name](workers, blas_threads, **options)
