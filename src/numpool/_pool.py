"""numpool.Pool: a concurrent.futures.Executor with apply() and map() for arrays."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np

from . import _engine, backends
from ._cpus import default_workers
from .blas import budget_for

__all__ = ["Pool"]


def check_backend(backend: Any) -> str:
    if not isinstance(backend, str) or backend not in backends.BACKENDS:
        raise ValueError(
            f"backend must be one of {', '.join(map(repr, backends.names()))}; got {backend!r}"
        )
    return backend


def check_count(name: str, value: Any, *, allow_none: bool = True) -> int | None:
    """A positive int (or None): what workers=, chunks=, chunksize=, blas_threads= take."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name} must be a positive int or None, got {type(value).__name__} {value!r}"
        )
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_func(where: str, func: Any) -> None:
    if not callable(func):
        raise TypeError(f"{where}: func must be callable, got {type(func).__name__} {func!r}")


def as_input_array(x: Any) -> np.ndarray:
    """``x`` as an ndarray with at least one axis, or a TypeError/ValueError saying why not."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        if x is None or isinstance(x, (str, bytes, dict, set)) or callable(x):
            raise TypeError(
                f"apply: x must be array-like (an ndarray, list, ...), got {type(x).__name__}"
            )
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"apply: x could not be converted to an array: {e}") from e
    if arr.ndim == 0:
        raise ValueError(
            f"apply: x must have at least one dimension (apply splits axis 0); "
            f"got a 0-d array {arr!r}. Call func(x) directly."
        )
    return arr


def check_out(x: np.ndarray) -> Callable[[np.ndarray | None, tuple[int, ...], np.dtype], None]:
    """A check of ``out=`` against the output shape/dtype the probe found."""

    def check(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> None:
        if out is None:
            return
        if not isinstance(out, np.ndarray):
            raise TypeError(f"apply: out must be a NumPy array, got {type(out).__name__}")
        if out.shape != shape:
            raise ValueError(
                f"apply: out has shape {out.shape}, expected {shape} "
                "(rows of x by the trailing shape of func(x[:1]))"
            )
        if out.dtype != dtype:
            raise TypeError(
                f"apply: out has dtype {out.dtype}, expected {dtype} (the dtype func returns)"
            )
        if not out.flags.writeable:
            raise ValueError("apply: out is read-only")
        same = (
            out.ctypes.data == x.ctypes.data and out.strides == x.strides and out.shape == x.shape
        )
        if not same and np.may_share_memory(out, x):
            raise ValueError(
                "apply: out overlaps x without being the same array; blocks "
                "could read rows another block already overwrote. Pass a "
                "separate out, or out=x itself for an in-place update"
            )

    return check


class Pool(Executor):
    """A pool of workers for NumPy work: a ``concurrent.futures.Executor`` plus
    :meth:`apply` and :meth:`map` for arrays.

    Parameters
    ----------
    backend : {"threads", "processes", "serial", "pickle"}
        ``threads`` (default): NumPy releases the GIL, so threads run NumPy
        code in parallel with no copies. ``processes``: worker processes, for
        code that holds the GIL; arrays travel through shared memory.
        ``serial``: the caller's thread. ``pickle``: processes that pickle
        every array (the naive baseline, to compare against).
    workers : int, optional
        Number of workers; default: usable cores (affinity and cgroup
        quota), at most the physical cores.
    blas_threads : int, optional
        BLAS/OpenMP threads per worker; default ``usable cores // workers``
        so the cores are never oversubscribed (serial: left alone).

    Examples
    --------
    >>> import numpy as np, numpool
    >>> with numpool.Pool("threads", workers=2) as pool:
    ...     y = pool.apply(np.sqrt, np.arange(10.0))
    ...     c = pool.map(np.dot, [np.eye(2)] * 3, [np.ones(2)] * 3)
    >>> float(y[4]), c[0].tolist()
    (2.0, [1.0, 1.0])
    """

    def __init__(
        self, backend: str = "threads", workers: int | None = None, blas_threads: int | None = None
    ) -> None:
        name = check_backend(backend)
        n = check_count("workers", workers) or default_workers()
        blas = check_count("blas_threads", blas_threads)
        if blas is None and name != "serial":
            blas = budget_for(n)
        self._backend = backends.get(name, n, blas)
        self._closed = False
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """Name of the backend running the work."""
        return self._backend.name

    @property
    def workers(self) -> int:
        return self._backend.workers

    @property
    def blas_threads(self) -> int | None:
        """BLAS/OpenMP threads per worker (None: not limited)."""
        return self._backend.blas_threads

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("cannot schedule new work after the pool was shut down")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a Future (the Executor API).

        Arguments are passed as the backend passes any object: shared in
        memory (serial, threads) or pickled (processes, pickle). Use
        :meth:`map` to send arrays through shared memory.
        """
        self._check_open()
        check_func("submit", fn)
        return self._backend.submit(fn, *args, **kwargs)

    def apply(
        self,
        func: Callable[..., Any],
        x: Any,
        *,
        out: np.ndarray | None = None,
        chunks: int | None = None,
    ) -> np.ndarray:
        """Apply a blockwise ``func`` over axis 0 of ``x``, into one output array.

        See :func:`numpool.apply`.
        """
        self._check_open()
        check_func("apply", func)
        arr = as_input_array(x)
        n = check_count("chunks", chunks)
        return _engine.apply(self._backend, func, arr, out, n, check_out(arr))

    def map(  # type: ignore[override]  # a list (all results, in order), not a lazy iterator
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> list[Any]:
        """``[func(*args) for args in zip(*iterables)]`` in parallel; a list, in order.

        Keeps ``Executor.map``'s signature; see :func:`numpool.map`.
        """
        self._check_open()
        check_func("map", func)
        columns = check_iterables(iterables)
        size = check_count("chunksize", chunksize)
        return _engine.map_tasks(self._backend, func, columns, size, timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers and release the pool's shared memory. Idempotent."""
        with self._lock:
            self._closed = True
        self._backend.shutdown(wait=wait, cancel_futures=cancel_futures)

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<numpool.Pool backend={self.backend!r} workers={self.workers} "
            f"blas_threads={self.blas_threads}{state}>"
        )


def check_iterables(iterables: tuple[Iterable[Any], ...]) -> list[list[Any]]:
    """Materialise map's iterables, refusing none, non-iterables and unequal lengths."""
    if not iterables:
        raise TypeError("map: needs at least one iterable of arguments after func")
    columns = []
    for i, it in enumerate(iterables):
        try:
            columns.append(list(it))
        except TypeError:
            raise TypeError(
                f"map: argument {i + 1} after func must be iterable, got {type(it).__name__}"
            ) from None
    lengths = [len(c) for c in columns]
    if len(set(lengths)) > 1:
        raise ValueError(
            f"map: the iterables have unequal lengths {lengths}; numpool.map "
            "zips them like Pool.starmap(func, zip(...)) and refuses to drop "
            "items silently"
        )
    return columns
