"""numpool.Pool: a concurrent.futures.Executor with apply() and map() for arrays."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Executor, Future
from time import perf_counter
from typing import Any, TypeVar

import numpy as np

from . import _engine, _planner, _stats, backends
from ._cpus import default_workers
from ._errors import annotate
from ._plan import Plan
from ._stats import Stats
from .blas import budget_for

__all__ = ["Pool"]

_T = TypeVar("_T")

AUTO = "auto"


def check_backend(backend: Any) -> str:
    if not isinstance(backend, str) or (backend not in backends.BACKENDS and backend != AUTO):
        choices = ", ".join(map(repr, [AUTO, *backends.names()]))
        raise ValueError(f"backend must be one of {choices}; got {backend!r}")
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


#: more workers than this many per usable core is a mistake, not a plan
MAX_WORKERS_PER_CORE = 32


def check_workers(value: Any) -> int | None:
    n = check_count("workers", value)
    cores = default_workers()
    if n is not None and n > max(64, MAX_WORKERS_PER_CORE * cores):
        raise ValueError(
            f"workers={n} is absurd for {cores} usable core{'s' * (cores != 1)}: each worker "
            "is a thread or a process with its own memory. Leave workers=None (one per core)."
        )
    return n


def check_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"retries must be an int >= 0, got {value!r}")
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
    backend : {"auto", "threads", "processes", "serial", "pickle", "dask"}
        ``auto`` (default): measure on the start of the input and choose
        among serial, threads and processes (see :func:`numpool.plan`);
        decisions are cached. ``threads``: NumPy releases the GIL, so
        threads run NumPy code in parallel with no copies. ``processes``:
        worker processes, for code that holds the GIL; arrays travel
        through shared memory. ``serial``: the caller's thread. ``pickle``:
        processes that pickle every array (the naive baseline). ``dask``: a
        Dask cluster (``pip install 'numpool[dask]'``), see ``address``.
    workers : int, optional
        Number of workers; default: usable cores (affinity and cgroup
        quota), at most the physical cores.
    blas_threads : int, optional
        BLAS/OpenMP threads per worker; default ``usable cores // workers``
        so the cores are never oversubscribed (serial: left alone).
    address : str, distributed.Client or cluster, optional
        ``backend="dask"`` only: the Dask scheduler to run on
        (``"tcp://host:8786"``), a ``distributed.Client``, or a cluster
        object. Default: ``$NUMPOOL_DASK_ADDRESS``, else a
        ``distributed.LocalCluster`` of ``workers`` processes started for
        this pool and closed with it.
    retries : int, optional
        When a worker process dies (killed by the out-of-memory killer, a
        crash in native code), run the tasks it took down again on fresh
        workers, up to this many times per call; then raise
        :class:`~numpool.WorkerCrashedError`. Only for idempotent ``func``
        (apply blocks always are: they rewrite the same rows). Default 0.

    Attributes
    ----------
    last_stats : Stats or None
        Figures of the last apply/map call made through this pool: tasks,
        bytes moved between processes, copy time, busy time per worker,
        and for ``auto`` the :class:`~numpool.Plan` it followed.

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
        self,
        backend: str = AUTO,
        workers: int | None = None,
        blas_threads: int | None = None,
        *,
        retries: int = 0,
        address: Any = None,
    ) -> None:
        name = check_backend(backend)
        if address is not None and name != "dask":
            raise ValueError(f"address= is for backend='dask' (a Dask scheduler); got {backend!r}")
        self._address = address
        n = check_workers(workers) or default_workers()
        self._retries = check_retries(retries)
        given = check_count("blas_threads", blas_threads)
        self._name = name
        self._workers = 1 if name == "serial" else n
        self._blas = given if (given is not None or name == "serial") else budget_for(n)
        self._given_blas = given
        self._opts = (self._workers, given)
        self._backends: dict[str, backends.Backend] = {}
        self._closed = False
        #: an open auto pool: apply may try ``_tiny`` (one flag, checked in ~20 ns)
        self._tiny_ok = name == AUTO
        self._lock = threading.Lock()
        self._last: _stats.Last = None
        if name != AUTO:
            self._get(name)

    def _get(self, name: str) -> backends.Backend:
        """The backend ``name`` of this pool, created on first use (auto creates several)."""
        backend = self._backends.get(name)
        if backend is None:
            with self._lock:
                self._check_open()
                backend = self._backends.get(name)
                if backend is None:
                    blas = self._given_blas if name == "serial" else self._blas
                    options = (
                        {"address": self._address, "retries": self._retries}
                        if name == "dask"
                        else {}
                    )
                    backend = self._backends[name] = backends.get(
                        name, self._workers, blas, **options
                    )
                    backend.retries = self._retries
        return backend

    def _processes_warm(self) -> bool:
        procs = self._backends.get("processes")
        return procs is not None and bool(getattr(procs, "started", False))

    @property
    def last_stats(self) -> Stats | None:
        """Figures of the last apply/map call made through this pool."""
        return _stats.last(self._last)

    @property
    def backend(self) -> str:
        """Name of the backend (``"auto"``: see ``last_stats.plan`` for each call's choice)."""
        return self._name

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def blas_threads(self) -> int | None:
        """BLAS/OpenMP threads per worker (None: not limited)."""
        return self._blas

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("cannot schedule new work after the pool was shut down")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a Future (the Executor API).

        Arguments are passed as the backend passes any object: shared in
        memory (serial, threads) or pickled (processes, pickle). ``auto``
        submits to threads: one call gives nothing to measure. Use
        :meth:`map` to send arrays through shared memory.
        """
        self._check_open()
        check_func("submit", fn)
        return self._get("threads" if self._name == AUTO else self._name).submit(
            fn, *args, **kwargs
        )

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
        if self._tiny_ok and out is None and chunks is None and type(x) is np.ndarray:
            hit = self._tiny(func, x)
            if hit is not None:
                result, self._last = hit
                return result
        result, self._last = self.apply_with_stats(func, x, out=out, chunks=chunks)
        return result

    def _tiny(
        self, func: Callable[..., Any], x: np.ndarray
    ) -> tuple[np.ndarray, tuple[Plan, float]] | None:
        """``func(x)`` at once, when auto already found inputs of ``x``'s exact dtype and
        shape too small to try anything (issue 4: auto costs at most 10% over ``func(x)``
        on small inputs; np.exp over 10k elements takes ~6 us, so every 100 ns here
        counts). Else None: take the usual path. Only for an open auto pool (``_tiny_ok``)."""
        t0 = perf_counter()
        # (no key matches a 0-d x: only inputs that passed apply's checks are kept)
        cache = _planner.cache
        hit = cache.last_tiny  # a loop's next call: four identity checks, not a hash
        if (
            hit[0] is not func
            or hit[1] is not x.dtype
            or hit[2] != x.shape
            or hit[3] is not self._opts
        ):
            key = (func, x.dtype, x.shape, self._opts)
            try:
                found = cache.tiny.get(key)
            except TypeError:  # an unhashable callable
                return None
            if found is None:
                return None
            hit = cache.last_tiny = (*key, *found)
        try:
            res = func(x)
        except Exception as e:
            raise annotate(e, f"the whole input (rows 0:{x.shape[0]}, run serially)") from None
        if not hit[5] and (
            type(res) is not np.ndarray or not res.ndim or res.shape[0] != x.shape[0]
        ):
            _engine.check_whole(func, x, res)  # raises the usual error
        return res, (hit[4], perf_counter() - t0)

    def apply_with_stats(
        self,
        func: Callable[..., Any],
        x: Any,
        *,
        out: np.ndarray | None = None,
        chunks: int | None = None,
    ) -> tuple[np.ndarray, Stats]:
        """:meth:`apply`, returning its :class:`~numpool.Stats` too (thread-safe)."""
        t0 = time.perf_counter()
        self._check_open()
        check_func("apply", func)
        arr = as_input_array(x)
        n = check_count("chunks", chunks)
        checker = check_out(arr)
        if self._name != AUTO:
            stats = Stats("apply", self._name)
            result = _engine.apply(self._get(self._name), func, arr, out, n, checker, stats)
        else:
            stats = Stats("apply", "")
            result = self._auto_apply(func, arr, out, n, checker, stats)
        stats.wall_s = time.perf_counter() - t0
        return result, stats

    def _auto_apply(
        self,
        func: Callable[..., Any],
        x: np.ndarray,
        out: np.ndarray | None,
        chunks: int | None,
        checker: Callable[[np.ndarray | None, tuple[int, ...], np.dtype], None],
        stats: Stats,
    ) -> np.ndarray:
        if x.shape[0] <= 1:  # nothing to measure or split
            stats.plan = _trivial_plan("apply", f"{x.shape[0]} row")
            return _engine.apply(self._get("serial"), func, x, out, None, checker, stats)
        key = _planner.apply_key(func, x, out, chunks, self._opts)
        plan, work = self._planned(
            key, lambda: _planner.ApplyWork(func, x, out, checker), chunks, stats
        )
        if isinstance(work, _planner.ApplyWork):  # measured now: finish what it started
            _planner.finish(work, plan, self._get, stats)
            assert work.out is not None
            return work.out
        stats.plan = plan
        rows, nbytes = x.shape[0], x.nbytes
        return self._follow(
            key,
            plan,
            rows,
            lambda name: self._apply_on(name, plan, func, x, out, chunks, checker, stats),
            lambda backend, item_s: chunks or _planner.apply_chunks(backend, rows, nbytes, item_s),
        )

    def _apply_on(
        self,
        name: str,
        plan: Plan,
        func: Callable[..., Any],
        x: np.ndarray,
        out: np.ndarray | None,
        chunks: int | None,
        checker: Callable[[np.ndarray | None, tuple[int, ...], np.dtype], None],
        stats: Stats,
    ) -> np.ndarray:
        """The call on backend ``name``, sized from ``plan``'s measurements."""
        stats.backend = name
        backend = self._get(name)
        if name == "serial" and out is None:
            stats.tasks = 1
            res = _engine.whole(func, x)
            if plan.settled and not plan.speedups and not plan.revisit and type(x) is np.ndarray:
                with contextlib.suppress(TypeError):  # from now on, Pool._tiny runs it
                    _planner.cache.remember_tiny(
                        _tiny_key(func, x, self._opts), (plan, _same_rows(func))
                    )
            return res
        if chunks is None:
            item_s = plan.worker_item_s_on(name, backend.workers)
            chunks = _planner.apply_chunks(backend, x.shape[0], x.nbytes, item_s)
        return _engine.apply(backend, func, x, out, chunks, checker, stats)

    def _follow(
        self,
        key: Hashable,
        plan: Plan,
        items: int,
        run: Callable[[str], _T],
        sizes: Callable[[backends.Backend, float], int | None],
    ) -> _T:
        """``run(backend)`` as ``plan`` says: on its backend, or in a run-off on the next
        contender, timed whole; the plan settles after the run-off's last call.
        ``sizes``: chunks/chunksize on the winner (see :func:`_planner.ran`)."""
        if plan.settled:
            return run(plan.backend)
        name = _planner.next_contender(plan)
        t0 = perf_counter()
        result = run(name)
        item_s = (perf_counter() - t0) / items
        _planner.cache.update(key, lambda p: _planner.ran(p, name, item_s, self._get, sizes))
        return result

    def _planned(
        self,
        key: Hashable,
        make_work: Callable[[], _planner._Work],
        size: int | None,
        stats: Stats,
    ) -> tuple[Plan, _planner._Work | None]:
        """The cached plan for ``key`` (and None), or a new decision with the work it
        measured on (its first items are done; :func:`_planner.finish` runs the rest)."""
        plan = _planner.cache.get(key, _planner.REVISIT_AFTER)
        if plan is not None:
            return plan, None
        work = make_work()
        plan = _planner.decide(
            work,
            self._get,
            self._workers,
            self._blas,
            self._processes_warm,
            stats,
            repeated=_planner.cache.repeated(key),
        )
        if size is not None:  # the user's chunks=/chunksize= win over the planner's
            if work.kind == "apply":
                plan = dataclasses.replace(plan, chunks=size)
            else:
                plan = dataclasses.replace(plan, chunksize=size)
        stats.plan = plan
        _planner.cache.put(key, plan)
        return plan, work

    def plan(
        self,
        func: Callable[..., Any],
        *args: Any,
        kind: str | None = None,
        chunks: int | None = None,
        chunksize: int | None = None,
    ) -> Plan:
        """What ``backend="auto"`` would do for ``apply(func, x)`` or ``map(func, *iterables)``.

        See :func:`numpool.plan`.
        """
        self._check_open()
        check_func("plan", func)
        kind = _kind(kind, args)
        stats = Stats(kind, "")
        if kind == "apply":
            if len(args) != 1:
                raise TypeError(f"plan: apply takes one array after func, got {len(args)}")
            x = as_input_array(args[0])
            n = check_count("chunks", chunks)
            if x.shape[0] <= 1:
                return _trivial_plan("apply", f"{x.shape[0]} row")
            key = _planner.apply_key(func, x, None, n, self._opts)
            make: Callable[[], _planner._Work] = functools.partial(
                _planner.ApplyWork, func, x, None, check_out(x)
            )
            size = n
        else:
            columns = check_iterables(args)
            size = check_count("chunksize", chunksize)
            if len(columns[0]) <= 1:
                return _trivial_plan("map", f"{len(columns[0])} task")
            key = _planner.map_key(func, columns, size, self._opts)
            make = functools.partial(_planner.MapWork, func, columns)
        return self._planned(key, make, size, stats)[0]

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
        results, self._last = self.map_with_stats(
            func, *iterables, timeout=timeout, chunksize=chunksize
        )
        return results

    def map_arrays(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        chunksize: int | None = None,
    ) -> list[Any]:
        """numpool's eager, array-aware map on this pool: see :func:`numpool.map`.

        A list of every result, in order; array arguments and results travel
        through shared memory on the processes backend. (:meth:`map` keeps
        ``Executor.map``'s contract instead.)
        """
        results, self._last = self.map_with_stats(func, *iterables, chunksize=chunksize)
        return results

    def map_with_stats(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> tuple[list[Any], Stats]:
        """:meth:`map`, returning its :class:`~numpool.Stats` too (thread-safe)."""
        t0 = time.perf_counter()
        self._check_open()
        check_func("map", func)
        columns = check_iterables(iterables)
        size = check_count("chunksize", chunksize)
        if self._name != AUTO:
            stats = Stats("map", self._name)
            backend = self._get(self._name)
            results = _engine.map_tasks(backend, func, columns, size, timeout, stats)
        else:
            stats = Stats("map", "")
            results = self._auto_map(func, columns, size, timeout, stats)
        stats.wall_s = time.perf_counter() - t0
        return results, stats

    def _auto_map(
        self,
        func: Callable[..., Any],
        columns: list[list[Any]],
        size: int | None,
        timeout: float | None,
        stats: Stats,
    ) -> list[Any]:
        tasks = len(columns[0])
        if tasks <= 1:
            stats.plan = _trivial_plan("map", f"{tasks} task")
            return _engine.map_tasks(self._get("serial"), func, columns, None, timeout, stats)
        key = _planner.map_key(func, columns, size, self._opts)
        plan, work = self._planned(
            key, lambda: _planner.MapWork(func, columns, timeout), size, stats
        )
        if isinstance(work, _planner.MapWork):  # measured now: finish what it started
            _planner.finish(work, plan, self._get, stats)
            return work.results
        stats.plan = plan
        return self._follow(
            key,
            plan,
            tasks,
            lambda name: self._map_on(name, plan, func, columns, size, timeout, stats),
            lambda backend, item_s: size or _planner.map_chunksize(backend, tasks, item_s),
        )

    def _map_on(
        self,
        name: str,
        plan: Plan,
        func: Callable[..., Any],
        columns: list[list[Any]],
        size: int | None,
        timeout: float | None,
        stats: Stats,
    ) -> list[Any]:
        """The call on backend ``name``, sized from ``plan``'s measurements."""
        stats.backend = name
        backend = self._get(name)
        if size is None:
            item_s = plan.worker_item_s_on(name, backend.workers)
            size = _planner.map_chunksize(backend, len(columns[0]), item_s)
        return _engine.map_tasks(backend, func, columns, size, timeout, stats)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers and release the pool's shared memory. Idempotent."""
        with self._lock:
            self._closed = True
            self._tiny_ok = False
            running = list(self._backends.values())
        for backend in running:
            backend.shutdown(wait=wait, cancel_futures=cancel_futures)

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<numpool.Pool backend={self.backend!r} workers={self.workers} "
            f"blas_threads={self.blas_threads}{state}>"
        )


def _tiny_key(func: Any, x: np.ndarray, options: Hashable) -> Hashable:
    """The key of ``Pool._tiny`` (which builds it inline). Whether x lies in shared
    memory is left out: it does not matter to work too small to try threads on."""
    return (func, x.dtype, x.shape, options)


def _same_rows(func: Any) -> bool:
    """Whether ``func(x)`` is sure to be an ndarray with x's rows for any ndarray x of
    1+ dimensions: a NumPy ufunc of one input and one output (Pool._tiny skips the
    check of its result)."""
    return type(func) is np.ufunc and func.nin == 1 and func.nout == 1


def _kind(kind: str | None, args: tuple[Any, ...]) -> str:
    """apply or map: given, or apply for one ndarray and map otherwise."""
    if kind is None:
        return "apply" if len(args) == 1 and isinstance(args[0], np.ndarray) else "map"
    if kind not in ("apply", "map"):
        raise ValueError(f"plan: kind must be 'apply' or 'map', got {kind!r}")
    return kind


def _trivial_plan(kind: str, what: str) -> Plan:
    return Plan(
        kind=kind,
        backend="serial",
        workers=1,
        chunks=1 if kind == "apply" else None,
        chunksize=None,
        blas_threads=None,
        what=f"{kind} over {what}",
        reasons=("One item or none: nothing to split or measure.",),
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
