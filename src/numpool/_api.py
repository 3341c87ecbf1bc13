"""The module-level functions: apply, map, share, on lazily created shared pools."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ._pool import Pool, check_backend, check_count

__all__ = ["apply", "map", "shutdown_default_pools"]

_pools: dict[tuple[str, int | None, int | None], Pool] = {}
_lock = threading.Lock()


def _pool(backend: Any, workers: Any, blas_threads: Any) -> Pool:
    """The pool for these options, created on first use and reused afterwards."""
    key = (
        check_backend(backend),
        check_count("workers", workers),
        check_count("blas_threads", blas_threads),
    )
    with _lock:
        pool = _pools.get(key)
        if pool is None or pool.closed:
            pool = _pools[key] = Pool(*key)
        return pool


def shutdown_default_pools() -> None:
    """Shut down the pools that module-level apply()/map() created (also run at exit)."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_default_pools)


def apply(
    func: Callable[..., Any],
    x: Any,
    *,
    out: np.ndarray | None = None,
    chunks: int | None = None,
    backend: str = "threads",
    workers: int | None = None,
    blas_threads: int | None = None,
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
        Takes an array of rows, returns an array with as many rows. numpool
        calls ``func(x[:1])`` once first to learn the output dtype and
        trailing shape. NumPy ufuncs write straight into ``out``.
    x : array_like
        At least one dimension. Any strides or order.
    out : ndarray, optional
        Where to write the result: shape ``(len(x), *func(x[:1]).shape[1:])``
        and func's dtype. ``out=x`` updates in place. With the processes
        backend a :class:`~numpool.SharedArray` ``out`` costs no copy.
    chunks : int, optional
        Number of blocks (capped at ``len(x)``). Default: ~1 MiB blocks,
        4 to 64 per worker (threads); ~4 MiB, 2 to 16 per worker (processes).
    backend, workers, blas_threads
        As for :class:`numpool.Pool`. The pool is created on first use and
        reused by later calls with the same options.

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
    return _pool(backend, workers, blas_threads).apply(func, x, out=out, chunks=chunks)


def map(
    func: Callable[..., Any],
    *iterables: Iterable[Any],
    backend: str = "threads",
    workers: int | None = None,
    chunksize: int | None = None,
    blas_threads: int | None = None,
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
    backend, workers, blas_threads
        As for :class:`numpool.Pool`.
    chunksize : int, optional
        Tasks sent to a worker in one message. Default: 1 (threads);
        ``tasks // (8 * workers)`` (processes).

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
    return _pool(backend, workers, blas_threads).map(func, *iterables, chunksize=chunksize)
