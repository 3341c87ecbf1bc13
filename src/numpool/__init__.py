"""numpool: parallel NumPy that is faster than serial NumPy.

``apply`` a blockwise function over a big array, ``map`` a function over
independent array tasks, or hold a :class:`Pool` (a
``concurrent.futures.Executor``). Backends: ``threads`` (NumPy releases the
GIL), ``processes`` (arrays through shared memory, never pickled),
``serial`` and ``pickle`` (the naive baseline). BLAS threads are budgeted
so that workers never oversubscribe the cores.

Layout::

    _api.py        apply / map / share, module-level pools
    _pool.py       Pool (the Executor) and argument checks
    _engine.py     the one engine: split, submit, bound, collect, clean up
    backends/      one thin module per backend + the transports
    shm.py         shared-memory segments, arena, SharedArray
    blas.py        BLAS/OpenMP thread budgets (threadpoolctl)
    _cpus.py       usable and physical cores
    _errors.py     the exception hierarchy
    cli.py         the ``numpool`` command
"""

from ._api import apply, map
from ._errors import BackendUnavailableError, NumpoolError, SharedMemoryError, WorkerCrashedError
from ._pool import Pool
from .blas import blas_threads
from .shm import SharedArray, share

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "NumpoolError",
    "Pool",
    "SharedArray",
    "SharedMemoryError",
    "WorkerCrashedError",
    "__version__",
    "apply",
    "blas_threads",
    "map",
    "share",
]
