"""numpool: parallel NumPy that is faster than serial NumPy.

``apply`` a blockwise function over big arrays (several at once, along any
axis, with a halo for stencils), ``reduce`` them block by block, ``map`` a
function over independent array tasks, or hold a :class:`Pool` (a
``concurrent.futures.Executor``). Backends: ``auto`` (the default: measures
and chooses), ``threads`` (NumPy releases the GIL), ``processes`` (arrays
through shared memory, never pickled), ``serial`` and ``pickle`` (the
naive baseline). BLAS threads are budgeted so that workers never
oversubscribe the cores.

Layout::

    _api.py        apply / reduce / map / plan / last_stats, module-level pools
    _pool.py       Pool: the Executor (submit, map, shutdown) + array methods
    _runner.py     one apply/map call: tiny path, head, choose, run, observe
    _checks.py     argument checks
    _inputs.py     an apply/reduce call's arrays: which split, the axis, the
                   halo; cutting block a:b of each (ndarrays or references)
    _reduce.py     reduce's fixed blocks and the order partials are combined in
    stencil.py     overlap helpers: halo(), BlockInfo (block_info=), OverlapWarning
                   (check_overlap=)
    _tiles.py      axis=(0, 1): blocks along the first axis, tiles along the others
    _progress.py   progress=: the bar (or callback) of a long call
    _stats.py      Stats: what one call did (tasks, bytes moved, busy time)
    _engine.py     the one engine: split, submit, bound, collect, clean up
    planner/       backend="auto": machine profile, measurements, the cost
                   model (choose), evidence from every call, Plan.explain
    backends/      one thin module per backend + the transports
    shm.py         shared-memory segments, arena, SharedArray; FileRef for
                   memory-mapped files (workers map them themselves)
    blas.py        BLAS/OpenMP thread budgets (threadpoolctl)
    _cpus.py       usable and physical cores
    _errors.py     the exception hierarchy
    cli.py         the ``numpool`` command
    integrations/  joblib's "numpool" backend (registered when joblib is imported)

Logging: ``logging.getLogger("numpool")`` tells what auto decided (DEBUG) and
when workers were restarted or segments spilled to disk (WARNING). Nothing is
printed unless the application configures logging.
"""

import logging as _logging

from ._api import apply, last_stats, map, plan, reduce
from ._errors import (
    BackendUnavailableError,
    NumpoolError,
    RemoteError,
    SharedMemoryError,
    SharedMemoryWarning,
    WorkerCrashedError,
)
from ._pool import Pool
from ._stats import Stats
from ._version import __version__
from .blas import blas_threads
from .integrations import register_joblib_when_imported as _register_joblib
from .planner.plan import Plan
from .shm import SharedArray, share
from .stencil import BlockInfo, OverlapWarning, halo

_logging.getLogger("numpool").addHandler(_logging.NullHandler())

# joblib's "numpool" backend, registered once joblib is imported (joblib itself is
# not imported here: it is an optional extra, and would slow this import)
_register_joblib()

__all__ = [
    "BackendUnavailableError",
    "BlockInfo",
    "NumpoolError",
    "OverlapWarning",
    "Plan",
    "Pool",
    "RemoteError",
    "SharedArray",
    "SharedMemoryError",
    "SharedMemoryWarning",
    "Stats",
    "WorkerCrashedError",
    "__version__",
    "apply",
    "blas_threads",
    "halo",
    "last_stats",
    "map",
    "plan",
    "reduce",
    "share",
]
