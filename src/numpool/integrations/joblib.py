"""joblib's ``"numpool"`` parallel backend: ``Parallel`` (and scikit-learn's ``n_jobs``)
on a :class:`numpool.Pool`.

::

    Parallel ─ batch ─▶ NumpoolBackend.submit ─ processes: cloudpickle, arrays of
                                                ≥ 1 MiB as ShmRef (one copy per
                                                array per Parallel call)
                                              ─ threads: the batch itself
             ─▶ Pool.submit ─▶ worker: _run(payload) ─▶ batch() ─▶ Future ─▶ callback

Like joblib's loky backend: worker processes by default (scikit-learn's ``fit``
holds the GIL), kept between ``Parallel`` calls (one pool, rebuilt only when
``n_jobs``, the BLAS budget or the kind of worker changes), and big arrays reach
the workers as read-only views of shared memory, not pickled (loky memory-maps
them from a temporary folder). The BLAS/OpenMP threads of each worker are
numpool's budget (``usable cores // n_jobs``) unless ``inner_max_num_threads`` is
given. ``Parallel`` inside a numpool worker runs sequentially (joblib's nested
backend), as numpool's own calls do there.

Options (``parallel_config(backend="numpool", ...)`` or ``Parallel(backend=...)``
with a ``NumpoolBackend(...)`` instance): ``numpool_backend="processes"``
(default) or ``"threads"``; ``inner_max_num_threads=k``: BLAS threads per worker.
"""

from __future__ import annotations

import io
import pickle
import threading
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import cloudpickle
import numpy as np
from joblib._parallel_backends import (
    AutoBatchingMixin,
    FallbackToBackend,
    ParallelBackendBase,
    SequentialBackend,
)
from joblib.parallel import register_parallel_backend

from .. import shm
from .._cpus import usable_cpus
from .._pool import Pool
from ..backends._worker import in_worker, resolve
from ..backends.processes import ProcessesBackend

__all__ = ["NumpoolBackend", "register"]

#: the kinds of worker a joblib batch may run on
KINDS = ("processes", "threads")

#: arrays at least this big travel through shared memory (joblib's max_nbytes="1M")
SHARE_BYTES = 1 << 20


def register() -> None:
    """Register the ``"numpool"`` backend with joblib.

    ``import numpool`` does this by itself when joblib is imported (before or
    after numpool), and so does importing this module; calling it again is
    harmless (after ``joblib.parallel_config`` replaced joblib's registry, say).

    Examples
    --------
    >>> import joblib, numpool.integrations.joblib
    >>> numpool.integrations.joblib.register()
    >>> with joblib.parallel_config(backend="numpool", n_jobs=2, numpool_backend="threads"):
    ...     joblib.Parallel()(joblib.delayed(abs)(i) for i in (-1, -2))
    [1, 2]
    """
    register_parallel_backend("numpool", NumpoolBackend)


class NumpoolBackend(AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc,unused-ignore]
    """joblib backend running batches on a :class:`numpool.Pool`.

    Parameters
    ----------
    numpool_backend : {"processes", "threads"}
        Worker processes (default: for code that holds the GIL, as most
        scikit-learn estimators' ``fit`` does) or threads.
    inner_max_num_threads : int, optional
        BLAS/OpenMP threads per worker; default: usable cores // n_jobs.
    """

    supports_retrieve_callback = True
    supports_inner_max_num_threads = True
    default_n_jobs = 1

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        numpool_backend: str = "processes",
        **backend_kwargs: Any,
    ) -> None:
        if numpool_backend not in KINDS:
            raise ValueError(
                f"numpool_backend must be one of {', '.join(map(repr, KINDS))} for the "
                f"joblib backend, got {numpool_backend!r}"
            )
        super().__init__(
            nesting_level=nesting_level,
            inner_max_num_threads=inner_max_num_threads,
            **backend_kwargs,
        )
        self.numpool_backend = numpool_backend
        self._pool: Pool | None = None
        self._shared: _Shared | None = None
        self._futures: weakref.WeakSet[Future[Any]] = weakref.WeakSet()

    @property
    def uses_threads(self) -> bool:
        return self.numpool_backend == "threads"

    @property
    def supports_sharedmem(self) -> bool:
        return self.numpool_backend == "threads"

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """Workers that will run: 1 inside a numpool worker (nested: sequential), and
        1 with a warning where no worker process can start (a daemonic process)."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None or in_worker():
            return 1
        if self.numpool_backend == "processes":
            why = ProcessesBackend.unavailable_here()
            if why is not None:  # a daemonic process (a multiprocessing worker): as loky
                if n_jobs != 1:
                    warnings.warn(f"numpool: {why}; setting n_jobs=1", stacklevel=3)
                return 1
        if n_jobs < 0:
            return max(usable_cpus() + 1 + n_jobs, 1)
        return int(n_jobs)

    def configure(
        self,
        n_jobs: int = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **backend_kwargs: Any,
    ) -> int:
        """Take the pool for ``n_jobs`` workers; 1 falls back to joblib's sequential backend."""
        n = self.effective_n_jobs(n_jobs)
        if n == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self.parallel = parallel
        self._pool = _pool_for(self.numpool_backend, n, self.inner_max_num_threads)
        return n

    def submit(self, func: Callable[[], Any], callback: Callable[..., Any] | None = None) -> Any:
        """Run one batch on a worker; ``callback`` (joblib's) gets its future."""
        if self._pool is None:
            raise RuntimeError(
                "numpool joblib backend: submit before configure (joblib's Parallel "
                "configures its backend first)"
            )
        if self.numpool_backend == "threads":
            future = self._pool.submit(func)
        else:
            if self._shared is None:
                self._shared = _Shared()
            future = self._pool.submit(_run, self._shared.dumps(func))
        self._futures.add(future)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future: Future[Any]) -> Any:
        return future.result()

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        """Parallel inside a batch runs sequentially: the workers are all taken."""
        return SequentialBackend(nesting_level=(self.nesting_level or 0) + 1), None

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A batch failed or timed out: cancel the batches not started, and stop the
        running ones as loky does (worker processes killed, threads left behind), so
        that the next call does not queue behind them."""
        futures = list(self._futures)
        for future in futures:
            future.cancel()
        if self._pool is not None and not self._pool.closed:
            self._pool._backends.get(self.numpool_backend).abandon(futures)
        self._release()

    def terminate(self) -> None:
        """End of a Parallel call: the pool stays for the next one; its arrays go."""
        self._release()
        self.reset_batch_stats()

    def _release(self) -> None:
        """Let go of the call's shared arrays (unlinked if a batch may still read them)."""
        running = any(not f.done() for f in list(self._futures))
        if self._shared is not None:
            self._shared.release(unlink=running)
            self._shared = None
        self._futures = weakref.WeakSet()


# --- the pool, kept between Parallel calls -------------------------------------------

_lock = threading.Lock()
_current: tuple[tuple[str, int, int | None], Pool] | None = None


def _pool_for(kind: str, n: int, blas: int | None) -> Pool:
    """The pool for these settings: the last one if they match, else a fresh one
    (the previous pool is shut down: one set of workers at a time, as loky)."""
    global _current
    key = (kind, n, blas)
    with _lock:
        if _current is not None and _current[0] == key and not _current[1].closed:
            return _current[1]
        old = _current
        _current = (key, Pool(kind, workers=n, blas_threads=blas))  # type: ignore[arg-type]
        pool = _current[1]
    if old is not None:
        old[1].shutdown(wait=False)
    return pool


def shutdown() -> None:
    """Stop the backend's workers now (they are stopped at exit anyway)."""
    global _current
    with _lock:
        old, _current = _current, None
    if old is not None:
        old[1].shutdown()


# --- arrays through shared memory --------------------------------------------------


class _Shared:
    """One Parallel call's arrays in shared memory: each big array is copied once,
    however many batches carry it (cross-validation sends the same X to every fold)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id -> (the caller's array, kept so the id stays its own; its shared copy)
        self._copies: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def ref(self, a: np.ndarray) -> shm.ShmRef | None:
        """Where ``a`` is in shared memory (copied there now if needed); None: pickle it."""
        if a.dtype.hasobject or a.nbytes < SHARE_BYTES:
            return None
        ref = shm.shared_ref(a)
        if ref is not None:
            return ref
        with self._lock:
            hit = self._copies.get(id(a))
            if hit is None:
                hit = self._copies[id(a)] = (a, shm.share(a))
        return shm.shared_ref(hit[1])

    def dumps(self, obj: Any) -> bytes:
        """``obj`` pickled by cloudpickle, its big arrays as names of shared memory."""
        buf = io.BytesIO()
        _Pickler(buf, self).dump(obj)
        return buf.getvalue()

    def release(self, unlink: bool) -> None:
        with self._lock:
            copies, self._copies = self._copies, {}
        for _, copy in copies.values():
            if unlink:
                copy.close()  # type: ignore[attr-defined]


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc,unused-ignore]
    """cloudpickle, with arrays of the call sent by name (see :class:`_Shared`)."""

    def __init__(self, file: io.BytesIO, shared: _Shared) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._shared = shared

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) in (np.ndarray, shm.SharedArray) or isinstance(obj, np.memmap):
            ref = self._shared.ref(obj)
            if ref is not None:
                return _attach, (ref,)
        return super().reducer_override(obj)


def _attach(ref: shm.ShmRef) -> np.ndarray:
    """In the worker: a read-only view of the shared array (as loky's memmaps are)."""
    a: np.ndarray = resolve(ref).view(np.ndarray)
    a.flags.writeable = False
    return a


def _run(payload: bytes) -> Any:
    """In the worker: unpickle a batch and run it."""
    return pickle.loads(payload)()


# importing this module is registering (numpool.integrations imports it when joblib is)
register()
