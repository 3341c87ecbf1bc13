"""The module-level functions: apply, map, plan, last_stats, on lazily created shared pools."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import _stats
from ._checks import AUTO, BackendName, check_backend, check_count, check_retries, check_workers
from ._pool import Pool
from ._stats import Stats
from .planner.plan import Plan

__all__ = ["apply", "last_stats", "map", "plan", "shutdown_default_pools"]

_pools: dict[tuple[str, int | None, int | None, int], Pool] = {}
_lock = threading.Lock()
_local = threading.local()
#: the pool of apply(func, x) with every option left at its default: no lookup at all
_default: Pool | None = None


def last_stats() -> Stats | None:
    """Figures of this thread's last module-level :func:`apply` or :func:`map` call.

    Tasks, bytes moved between processes, time copying versus computing,
    busy time per worker, and for ``backend="auto"`` the :class:`Plan` it
    followed (``print(numpool.last_stats())``). ``Pool.last_stats`` gives
    the same for a pool's own calls.
    """
    return _stats.last(getattr(_local, "stats", None))


def _pool(backend: Any, workers: Any, blas_threads: Any, retries: Any = 0) -> Pool:
    """The pool for these options, created on first use and reused afterwards."""
    global _default
    if backend == AUTO and workers is None and blas_threads is None and retries == 0:
        pool = _default
        if pool is not None and not pool.closed:
            return pool
    key = (
        check_backend(backend),
        check_workers(workers),
        check_count("blas_threads", blas_threads),
        check_retries(retries),
    )
    with _lock:
        pool = _pools.get(key)
        if pool is None or pool.closed:
            pool = _pools[key] = Pool(key[0], key[1], key[2], retries=key[3])  # type: ignore[arg-type]
        if key == (AUTO, None, None, 0):
            _default = pool
        return pool


def shutdown_default_pools() -> None:
    """Shut down the pools that module-level apply()/map() created (also run at exit)."""
    global _default
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
        _default = None
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_default_pools)


def _forget_pools_after_fork() -> None:
    """In a child made by ``os.fork()``: the module's pools are the parent's. They are
    dropped, never shut down (that would join threads that do not exist here); the
    child's calls create pools of its own (``numpool.backends`` resets the backends)."""
    global _pools, _lock, _default
    _pools, _lock, _default = {}, threading.Lock(), None


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def apply(
    func: Callable[..., Any],
    x: Any,
    *,
    out: np.ndarray | None = None,
    chunks: int | None = None,
    backend: BackendName = "auto",
    workers: int | None = None,
    blas_threads: int | None = None,
    retries: int = 0,
) -> np.ndarray:
    """Apply a blockwise function over axis 0 of a big array, in parallel.

    ``x`` is split into ``chunks`` blocks of rows; ``func(block)`` runs on
    each and its result is written straight into one output array,
    allocated once (no list of partial results, no concatenate). For any
    function that works row-block by row-block (``np.exp``, ``np.sin``,
    ``lambda b: 2*b + 1``, a row-wise normalisation) the result equals
    ``func(x)`` exactly.

    Parameters
    ----------
    func : callable
        Takes an array of rows, returns an array with as many rows. Every
        row is passed to ``func`` exactly once: the first rows run in the
        caller's thread, and what they return gives the output's dtype and
        trailing shape. NumPy ufuncs write straight into ``out``.
    x : array_like
        At least one dimension. Any strides or order.
    out : ndarray, optional
        Where to write the result: x's rows by the trailing shape of what
        ``func`` returns, in its dtype. ``out=x`` updates in place. With the
        processes backend a :class:`~numpool.SharedArray` ``out`` costs no copy.
    chunks : int, optional
        Number of blocks the rows after the first are split into (capped at
        ``len(x)``). Default: from the measured cost per row, so that no
        block costs less than 10x what handing it to a worker costs on this
        machine, and at most 4 blocks per worker; work worth less than one
        such block runs in the caller.
    backend, workers, blas_threads, retries
        As for :class:`numpool.Pool`; ``backend="auto"`` (default) measures
        on the first rows, picks serial, threads or processes, and learns
        from every later call (see :func:`numpool.plan`). The pool is
        created on first use and reused by later calls with the same options.

    Returns
    -------
    ndarray
        ``out`` if given; else a new array (with the processes backend, a
        :class:`~numpool.SharedArray` that the next call can pass on freely).

    Raises
    ------
    TypeError, ValueError
        Bad arguments, or ``func`` returning rows of another shape/dtype.
    WorkerCrashedError
        A worker process died.

    Examples
    --------
    >>> import numpy as np, numpool
    >>> x = np.linspace(0, 1, 1_000_001)
    >>> y = numpool.apply(np.exp, x)
    >>> bool((y == np.exp(x)).all())
    True
    """
    pool = _default
    if (
        pool is None
        or backend != "auto"
        or workers is not None
        or blas_threads is not None
        or retries != 0
    ):
        pool = _pool(backend, workers, blas_threads, retries)
    if out is None and chunks is None and pool._tiny_ok and type(x) is np.ndarray:
        hit = pool._runner.tiny(func, x)  # (a shut-down pool is not _tiny_ok)
        if hit is not None:
            result, _local.stats = hit
            return result
    pool = _pool(backend, workers, blas_threads, retries)  # (a fresh one if it was shut down)
    result, _local.stats = pool.apply_with_stats(func, x, out=out, chunks=chunks)
    return result


def map(
    func: Callable[..., Any],
    *iterables: Iterable[Any],
    backend: BackendName = "auto",
    workers: int | None = None,
    chunksize: int | None = None,
    blas_threads: int | None = None,
    retries: int = 0,
) -> list[Any]:
    """Run ``func`` over zipped iterables in parallel, like ``Pool.starmap(func, zip(...))``.

    Parameters
    ----------
    func : callable
        Called as ``func(*args)`` for each tuple of arguments.
    *iterables
        Equal-length iterables of arguments. With the processes backend,
        array arguments travel through shared memory (each array once per
        call, however many tasks use it; a SharedArray not at all) and array
        results come back the same way, never pickled.
    backend, workers, blas_threads, retries
        As for :class:`numpool.Pool`.
    chunksize : int, optional
        Tasks sent to a worker in one message. Default: 1 (threads);
        ``tasks // (8 * workers)`` (processes); with ``auto``, also enough
        tasks for ~1 ms of measured work per message.

    Returns
    -------
    list
        ``func``'s results in the order of the arguments.

    Examples
    --------
    >>> import numpy as np, numpool
    >>> a = [np.ones((3, 3))] * 4
    >>> [float(r.sum()) for r in numpool.map(np.matmul, a, a)]
    [27.0, 27.0, 27.0, 27.0]
    """
    pool = _pool(backend, workers, blas_threads, retries)
    results, _local.stats = pool.map_with_stats(func, *iterables, chunksize=chunksize)
    return results


def plan(
    func: Callable[..., Any],
    *args: Any,
    kind: str | None = None,
    workers: int | None = None,
    blas_threads: int | None = None,
    chunks: int | None = None,
    chunksize: int | None = None,
) -> Plan:
    """How ``backend="auto"`` would run ``apply(func, x)`` or ``map(func, *iterables)``, and why.

    On the first call of a kind of work, auto measures on the start of the
    real input: the serial cost per row or task, and the speed-up of threads
    (does ``func`` release the GIL?). A cost model then predicts each
    backend's time from those figures and this machine's measured costs
    (handing work to a thread, a round trip to a worker process, starting
    one, copying into shared memory: ``numpool doctor`` shows them). Every
    later call of the same work (function, dtype, size class, options)
    measures nothing more: it records its own wall time, which corrects the
    prediction for the backend that ran it, and the decision changes only
    when another backend is predicted at least 5% faster. A backend with
    fewer than two whole calls, predicted within 1.25x of the best, runs
    one call to be measured.

    Parameters
    ----------
    func : callable
    *args
        One array (``apply``) or the iterables of ``map``.
    kind : {"apply", "map"}, optional
        Default: ``"apply"`` for a single ndarray, ``"map"`` otherwise.
    workers, blas_threads, chunks, chunksize
        As for :func:`apply` and :func:`map`.

    Returns
    -------
    Plan
        ``backend``, ``workers``, ``chunks``/``chunksize``, ``blas_threads``,
        the measured figures, and :meth:`Plan.explain` (``print(plan)``).

    Examples
    --------
    >>> import numpy as np, numpool
    >>> p = numpool.plan(np.exp, np.ones(10_000))
    >>> p.backend
    'serial'
    """
    return _pool(AUTO, workers, blas_threads).plan(
        func, *args, kind=kind, chunks=chunks, chunksize=chunksize
    )
