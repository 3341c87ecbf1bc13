"""numpool.Pool: a concurrent.futures.Executor with apply() and map_arrays() for arrays.

The Pool keeps the Executor's lifecycle (submit, map, shutdown, the context
manager) and hands array calls to its :class:`~numpool._runner.Runner`; the
backends it uses live in a :class:`~numpool.backends.BackendSet`::

    Pool ── submit / map / shutdown ──────────────────▶ BackendSet ─▶ backends
      └──── apply / reduce / map_arrays / plan ─▶ Runner ──┘ (engine, planner)
"""

from __future__ import annotations

import collections
import functools
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Executor, Future, as_completed
from typing import Any

import numpy as np

from ._checks import (
    AUTO,
    BackendName,
    as_input_array,
    check_any_rows,
    check_backend,
    check_block_info,
    check_chunks,
    check_combine,
    check_count,
    check_flag,
    check_func,
    check_iterables,
    check_retries,
    check_rows,
    check_workers,
)
from ._cpus import default_workers
from ._engine import deadline
from ._inputs import Inputs
from ._inputs import make as make_inputs
from ._progress import check_progress, track
from ._reduce import blocks as reduce_blocks
from ._runner import Runner, func_name
from ._stats import Last, Stats, last
from ._submits import Submits
from ._tiles import tiles
from .backends import BackendSet, auto_choices, names, taking
from .backends._base import init_here
from .backends._ship import new_call
from .backends._worker import run_chunk
from .planner.plan import Plan
from .planner.profile import store

__all__ = ["Pool"]


class Pool(Executor):
    """A pool of workers for NumPy work: a ``concurrent.futures.Executor`` plus
    :meth:`apply`, :meth:`reduce` and :meth:`map_arrays` for arrays.

    Parameters
    ----------
    backend : {"auto", "threads", "processes", "serial", "pickle", "dask"}
        ``auto`` (default): measure on the start of the input and choose
        among serial, threads and processes, then learn from every call (see
        :func:`numpool.plan`). ``threads``: NumPy releases the GIL, so
        threads run NumPy code in parallel with no copies. ``processes``:
        worker processes, for code that holds the GIL; arrays travel
        through shared memory. ``serial``: the caller's thread. ``pickle``:
        processes that pickle every array (the naive baseline). ``dask``: a
        Dask cluster (``python -m pip install '.[dask]'`` in numpool's source tree),
        see ``address``.
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
        :class:`~numpool.WorkerCrashedError`. Only for idempotent ``func``.
        Default 0.
    connect_timeout : float, optional
        ``backend="dask"`` with an ``address`` only: seconds to reach the
        scheduler before :class:`~numpool.BackendUnavailableError` (default 10).
    max_workers : int, optional
        ``concurrent.futures``' name for ``workers`` (give one, or both equal).
    initializer, initargs : callable and tuple, optional
        As in ``concurrent.futures``: ``initializer(*initargs)`` runs once in
        every worker before its first task: each worker process (and each
        replacement after a crash), each worker thread, each Dask worker (a
        worker plugin, those that join later too); and once in each thread
        that calls :meth:`apply`, :meth:`reduce`, :meth:`map_arrays` or
        :meth:`plan`, which runs their first rows itself (never for
        :meth:`submit` and :meth:`map`). If it raises, the pool is broken as the stdlib's is:
        ``concurrent.futures.BrokenExecutor`` (``BrokenThreadPool``,
        ``BrokenProcessPool``; :class:`~numpool.WorkerCrashedError` from
        apply/map/reduce on processes, naming the initializer's error); on
        dask, when the pool is made.
    mp_context : multiprocessing context, optional
        ``backend="processes"`` (or ``"pickle"``) only: the start method of the
        worker processes, ``multiprocessing.get_context("forkserver")`` (the
        default where there is one) or ``"spawn"``. ``"fork"`` is refused: a
        worker forked from a threaded caller can hang on a lock.

    Attributes
    ----------
    last_stats : Stats or None
        Figures of the last apply/map_arrays call made through this pool:
        tasks, bytes moved between processes, copy time, busy time per
        worker, and for ``auto`` the :class:`~numpool.Plan` it followed.

    Examples
    --------
    >>> import numpy as np, numpool
    >>> with numpool.Pool("threads", workers=2) as pool:
    ...     y = pool.apply(np.sqrt, np.arange(10.0))
    ...     c = pool.map_arrays(np.dot, [np.eye(2)] * 3, [np.ones(2)] * 3)
    >>> float(y[4]), c[0].tolist()
    (2.0, [1.0, 1.0])
    """

    def __init__(
        self,
        backend: BackendName = "auto",
        workers: int | None = None,
        blas_threads: int | None = None,
        *,
        retries: int = 0,
        address: Any = None,
        connect_timeout: float | None = None,
        max_workers: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        mp_context: Any = None,
    ) -> None:
        name = check_backend(backend, names)
        workers = _max_workers_alias(workers, max_workers)
        init = _check_initializer(initializer, initargs)
        _check_mp_context(mp_context)
        options = (
            ("address", address),
            ("connect_timeout", connect_timeout),
            ("mp_context", mp_context),
        )
        for option, value in options:
            if value is not None and name not in taking(option):
                which = " or ".join(f"backend={b!r}" for b in taking(option))
                what = {
                    "address": " (a Dask scheduler)",
                    "mp_context": " (how worker processes start; the others have none)",
                }.get(option, "")
                raise ValueError(f"{option}= is for {which}{what}; got {backend!r}")
        if connect_timeout is not None:
            if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)):
                raise TypeError(f"connect_timeout must be seconds, got {connect_timeout!r}")
            if not connect_timeout > 0:
                raise ValueError(f"connect_timeout must be > 0 seconds, got {connect_timeout}")
        checked = check_workers(workers)  # (serial too: a bad count is an error anywhere)
        n = 1 if name == "serial" else (checked or default_workers())
        given = check_count("blas_threads", blas_threads)
        self._name = name
        self._backends = BackendSet(
            n, given, check_retries(retries), address, connect_timeout, init, mp_context
        )
        # dropped without shutdown(): its workers end, as a ThreadPoolExecutor's do
        self._backends.shutdown_when_dropped(self)
        self._runner = Runner(self._backends, name)
        #: auto: where each function's submit and map calls run, learned per function
        submits = Submits(_Processes(self._backends, self._runner)) if name == AUTO else None
        #: where submit and the executor maps send each call (no reference to the pool:
        #: a map iterator holds it, and a pool let go must still be collected)
        self._calls = _Calls(self._backends, name, submits)
        #: Pool(initializer=) for the calling threads, which run an array call's first
        #: rows themselves (the workers run it as they start: see the backends)
        self._init = init
        self._init_ran = threading.local()
        #: the one gate of every apply: the call run on its settled route, or None
        #: (``Runner.routed``; ``_unrouted`` once shut down)
        self._routed: Callable[..., tuple[np.ndarray, Last] | None] = self._runner.routed
        self._last: Last = None
        if name != AUTO:
            self._backends.get(name)  # a missing extra or a bad address fails here

    @property
    def last_stats(self) -> Stats | None:
        """Figures of the last apply/map_arrays call made through this pool."""
        return last(self._last)

    @property
    def backend(self) -> str:
        """Name of the backend (``"auto"``: see ``last_stats.plan`` for each call's choice)."""
        return self._name

    @property
    def workers(self) -> int:
        return self._backends.workers

    @property
    def _max_workers(self) -> int:
        """The workers :meth:`submit` runs on, under the name the stdlib's executors
        give it: Dask sizes its graph by it when the pool is its scheduler (the
        dask backend's are its cluster's threads)."""
        backend = self._backends.peek(self._executor_backend())
        return self._backends.workers if backend is None else backend.workers

    @property
    def blas_threads(self) -> int | None:
        """BLAS/OpenMP threads per worker (None: not limited)."""
        return self._backends.blas_for("threads" if self._name == AUTO else self._name)

    @property
    def closed(self) -> bool:
        return self._backends.closed

    def _check_open(self) -> None:
        if self._backends.closed:
            raise RuntimeError("cannot schedule new work after the pool was shut down")

    def _init_caller(self) -> None:
        """Pool(initializer=) in this thread, once, before it runs an array call's rows."""
        if self._init is not None:
            init_here(self._init_ran, *self._init)

    # --- the Executor -----------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a worker; return a Future (the Executor API).

        Arguments are passed as the backend passes any object: shared in
        memory (serial, threads) or pickled (processes, pickle). ``auto``
        runs a function's calls on threads and times them; once calls of it
        side by side are seen to hold the GIL (one core busy between them),
        and are long enough to be worth a process, its later calls whose
        arguments are plain values (numbers, strings, read-only arrays,
        tuples of these) go to worker processes. Use
        :meth:`map_arrays` to send arrays through shared memory.
        """
        self._check_open()
        check_func("submit", fn)
        new_call()
        return self._calls.submit(fn, args, kwargs)

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[Any]:
        """``Executor.map``: ``fn(*args)`` for the zipped iterables, as a lazy iterator.

        Every call is submitted now; results come in order as they are reached,
        each error is raised when its item is reached, and ``timeout`` counts
        from this call (a ``TimeoutError`` then, even while every worker is
        busy). It stops at the shortest iterable; ``chunksize`` items travel to
        a worker together (an error fails its whole chunk, as in the stdlib).
        Results are released as they are consumed; dropping the iterator
        cancels what has not started. ``buffersize`` (as in Python 3.14): the
        iterables are read lazily, at most ``buffersize`` calls (or chunks)
        submitted ahead of the one being consumed, the next submitted as each
        result is taken; for unbounded or huge inputs. For results as they
        complete, see :meth:`imap_unordered`; for numpool's eager, array-aware
        map (shared memory, a measured backend), see :meth:`map_arrays`.
        """
        self._check_open()
        check_func("map", fn)
        size = check_count("chunksize", chunksize, allow_none=False)
        ahead = check_count("buffersize", buffersize)
        end = None if timeout is None else time.monotonic() + timeout
        self._backends.get(self._executor_backend())  # (a closed pool fails here)
        new_call()
        calls = zip(*iterables, strict=False)  # Executor.map stops at the shortest
        submits: Iterator[Callable[[], Future[Any]]] = (
            functools.partial(self._calls.submit, fn, work, {}, size > 1)
            for work in (calls if size == 1 else _chunks(calls, size))
        )
        if ahead is None:
            return _MapIterator([s() for s in submits], end, size > 1, self._calls.abandon)
        first = [s() for s in itertools.islice(submits, ahead)]
        return _MapIterator(first, end, size > 1, self._calls.abandon, submits)

    def imap_unordered(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """:meth:`map`, with each result yielded as soon as its call completes
        (``multiprocessing.Pool.imap_unordered``'s order, ``as_completed``'s
        timing), for work of uneven cost.

        Every call is submitted now. ``timeout`` counts from this call; an error
        is raised when its call completes; ``chunksize`` calls travel together
        (their results come together). On a timeout, an error, ``close()`` or
        when dropped, what has not started is cancelled and what still runs is
        stopped, as by :meth:`map`.

        Examples
        --------
        >>> import numpool
        >>> with numpool.Pool("threads", workers=2) as pool:
        ...     sorted(pool.imap_unordered(pow, [2, 3, 4], [2, 2, 2]))
        [4, 9, 16]
        """
        self._check_open()
        check_func("imap_unordered", fn)
        size = check_count("chunksize", chunksize, allow_none=False)
        end = None if timeout is None else time.monotonic() + timeout
        self._backends.get(self._executor_backend())  # (a closed pool fails here)
        new_call()
        calls = zip(*iterables, strict=False)
        futures = [
            self._calls.submit(fn, work, {}, size > 1)
            for work in (calls if size == 1 else _chunks(calls, size))
        ]
        return _Unordered(futures, end, size > 1, self._calls.abandon)

    def _executor_backend(self) -> str:
        """Where submit and map run (auto's: threads, until a function is learned)."""
        return "threads" if self._name == AUTO else self._name

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers and release the pool's shared memory. Idempotent.

        A pool dropped without it (garbage) is shut down with ``wait=False``.
        """
        self._routed = _unrouted
        self._backends.shutdown(wait=wait, cancel_futures=cancel_futures)

    # --- arrays -------------------------------------------------------------------

    def apply(
        self,
        func: Callable[..., Any],
        x: Any,
        *arrays: Any,
        out: np.ndarray | None = None,
        chunks: int | None = None,
        progress: bool | Callable[[int, int], Any] = False,
        timeout: float | None = None,
        boundary: str | None = None,
        cval: float | None = None,
        block_info: bool = False,
        check_overlap: bool = False,
        rows: str = "same",
        overlap: int = 0,
        axis: int = 0,
    ) -> np.ndarray:
        """Apply a blockwise ``func`` over the rows of ``x`` (and of ``arrays``), into
        one output array.

        See :func:`numpool.apply`.
        """
        if self._init is not None:
            self._init_caller()
        hit = self._routed(
            func, x, arrays, out, chunks, progress, timeout, boundary, cval, block_info,
            check_overlap, rows, overlap, axis,
        )  # fmt: skip
        if hit is not None:  # its settled route
            result, self._last = hit
            return result
        result, self._last = self.apply_with_stats(
            func,
            x,
            *arrays,
            out=out,
            chunks=chunks,
            progress=progress,
            timeout=timeout,
            boundary=boundary,
            cval=cval,
            block_info=block_info,
            check_overlap=check_overlap,
            rows=rows,
            overlap=overlap,
            axis=axis,
        )
        return result

    def apply_with_stats(
        self,
        func: Callable[..., Any],
        x: Any,
        *arrays: Any,
        out: np.ndarray | None = None,
        chunks: int | None = None,
        progress: bool | Callable[[int, int], Any] = False,
        timeout: float | None = None,
        boundary: str | None = None,
        cval: float | None = None,
        block_info: bool = False,
        check_overlap: bool = False,
        rows: str = "same",
        overlap: int = 0,
        axis: int = 0,
    ) -> tuple[np.ndarray, Stats]:
        """:meth:`apply`, returning its :class:`~numpool.Stats` too (thread-safe)."""
        self._check_open()
        self._init_caller()
        check_func("apply", func)
        if isinstance(axis, (tuple, list)):
            func, axis, chunks, overlap, boundary, cval = _tiled(
                func, x, axis, chunks, overlap, boundary, cval, block_info, check_overlap, rows
            )
        if check_rows(rows, "apply") == "any":
            check_any_rows(out, overlap, boundary, block_info, check_overlap, "apply")
            inputs = _inputs(x, arrays, axis, 0, "apply", None, cval, False)
            blocks = reduce_blocks(inputs, check_chunks(chunks, inputs, "apply"))
            with (
                deadline(timeout),
                track(check_progress(progress), blocks, f"apply({func_name(func)})"),
            ):
                return self._runner.apply_any(func, inputs, blocks)
        inputs = _inputs(x, arrays, axis, overlap, "apply", boundary, cval, block_info)
        if inputs.info:
            check_block_info(func, "apply")
        size = check_chunks(chunks, inputs, "apply")
        check = check_flag("check_overlap", check_overlap, "apply")
        with (
            deadline(timeout),
            track(check_progress(progress), inputs.n, f"apply({func_name(func)})"),
        ):
            return self._runner.apply(func, inputs, out, size, check)

    def reduce(
        self,
        func: Callable[..., Any],
        x: Any,
        *arrays: Any,
        combine: Any = np.add,
        chunks: int | None = None,
        progress: bool | Callable[[int, int], Any] = False,
        axis: int = 0,
        timeout: float | None = None,
    ) -> Any:
        """Reduce ``func``'s per-block partial results with ``combine``, in block order.

        See :func:`numpool.reduce`.
        """
        result, self._last = self.reduce_with_stats(
            func,
            x,
            *arrays,
            combine=combine,
            chunks=chunks,
            progress=progress,
            axis=axis,
            timeout=timeout,
        )
        return result

    def reduce_with_stats(
        self,
        func: Callable[..., Any],
        x: Any,
        *arrays: Any,
        combine: Any = np.add,
        chunks: int | None = None,
        progress: bool | Callable[[int, int], Any] = False,
        axis: int = 0,
        timeout: float | None = None,
    ) -> tuple[Any, Stats]:
        """:meth:`reduce`, returning its :class:`~numpool.Stats` too (thread-safe)."""
        self._check_open()
        self._init_caller()
        check_func("reduce", func)
        check_combine(combine)
        inputs = _inputs(x, arrays, axis, 0, "reduce")
        size = check_chunks(chunks, inputs, "reduce")
        blocks = reduce_blocks(inputs, size)
        with (
            deadline(timeout),
            track(check_progress(progress), blocks, f"reduce({func_name(func)})"),
        ):
            return self._runner.reduce(func, inputs, combine, blocks)

    def map_arrays(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        progress: bool | Callable[[int, int], Any] = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """numpool's eager, array-aware map on this pool: see :func:`numpool.map`.

        A list of every result, in order; array arguments and results travel
        through shared memory on the processes backend. (:meth:`map` keeps
        ``Executor.map``'s contract instead.)
        """
        results, self._last = self.map_with_stats(
            func, *iterables, chunksize=chunksize, progress=progress, timeout=timeout
        )
        return results

    def map_with_stats(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        progress: bool | Callable[[int, int], Any] = False,
    ) -> tuple[list[Any], Stats]:
        """:meth:`map_arrays`, returning its :class:`~numpool.Stats` too (thread-safe)."""
        self._check_open()
        self._init_caller()
        check_func("map", func)
        columns = check_iterables(iterables)
        size = check_count("chunksize", chunksize)
        with (
            deadline(timeout),
            track(check_progress(progress), len(columns[0]), f"map({func_name(func)})"),
        ):
            return self._runner.map(func, columns, size, timeout)

    def plan(
        self,
        func: Callable[..., Any],
        *args: Any,
        kind: str | None = None,
        chunks: int | None = None,
        chunksize: int | None = None,
        overlap: int = 0,
        axis: int = 0,
        combine: Any = np.add,
        boundary: str | None = None,
        cval: float | None = None,
        block_info: bool = False,
        rows: str = "same",
    ) -> Plan:
        """What ``backend="auto"`` would do for ``apply(func, x, ...)``,
        ``reduce(func, x, ...)`` or ``map(func, *iterables)``.

        See :func:`numpool.plan`.
        """
        self._check_open()
        self._init_caller()
        check_func("plan", func)
        kind = _kind(kind, args)
        if check_rows(rows, "plan") != "same" and kind != "apply":
            raise ValueError(f"plan: rows= is for apply, not {kind}")
        runner = self._runner if self._name == AUTO else Runner(self._backends, AUTO)
        if kind in ("apply", "reduce"):
            if not args:
                raise TypeError(f"plan: {kind} takes at least one array after func")
            if kind == "reduce":
                if overlap or boundary is not None or block_info is not False:
                    raise ValueError(
                        "plan: overlap=, boundary= and block_info= are for apply, not reduce"
                    )
                check_combine(combine)
                inputs = _inputs(args[0], args[1:], axis, 0, "reduce")
                blocks = reduce_blocks(inputs, check_chunks(chunks, inputs, "plan"))
                return runner.plan_reduce(func, inputs, combine, blocks)
            if isinstance(axis, (tuple, list)):
                func, axis, chunks, overlap, boundary, cval = _tiled(
                    func, args[0], axis, chunks, overlap, boundary, cval, block_info, False, rows
                )
            if rows == "any":
                check_any_rows(None, overlap, boundary, block_info, False, "plan")
                inputs = _inputs(args[0], args[1:], axis, 0, "apply", None, cval, False)
                blocks = reduce_blocks(inputs, check_chunks(chunks, inputs, "plan"))
                return runner.plan_any(func, inputs, blocks)
            inputs = _inputs(args[0], args[1:], axis, overlap, "apply", boundary, cval, block_info)
            if inputs.info:
                check_block_info(func, "plan")
            size = check_chunks(chunks, inputs, "plan")
            return runner.plan(func, "apply", inputs, None, size, None)
        if overlap or axis or boundary is not None or cval is not None or block_info is not False:
            raise ValueError(
                "plan: overlap=, axis=, boundary= and block_info= are for apply and reduce "
                "(the first argument an "
                "ndarray, or kind='apply'/'reduce'), not map"
            )
        columns = check_iterables(args)
        return runner.plan(func, "map", None, columns, None, check_count("chunksize", chunksize))

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return (
            f"<numpool.Pool backend={self.backend!r} workers={self.workers} "
            f"blas_threads={self.blas_threads}{state}>"
        )


def _unrouted(*args: Any) -> None:
    """A shut-down pool's gate: every apply takes the planner's path (which says so)."""
    return None


def _max_workers_alias(workers: int | None, max_workers: int | None) -> int | None:
    """``max_workers=``, the stdlib executors' name for ``workers=``: one or the other,
    or both the same."""
    if max_workers is None:
        return workers
    if (
        isinstance(max_workers, (int, np.integer))
        and not isinstance(max_workers, bool)
        and max_workers <= 0
    ):  # (the stdlib executors' words: code may match them)
        raise ValueError(f"max_workers must be greater than 0, got {max_workers}")
    if workers is not None and workers != max_workers:
        raise TypeError(
            f"workers={workers!r} and max_workers={max_workers!r} name the same thing "
            "(max_workers= is concurrent.futures' name for it): give one"
        )
    return max_workers


def _check_initializer(
    initializer: Callable[..., Any] | None, initargs: Any
) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
    """Pool(initializer=, initargs=) as the stdlib's executors take them."""
    if initializer is None:
        if initargs != ():
            raise TypeError("initargs= is for initializer=, which was not given")
        return None
    if not callable(initializer):
        raise TypeError(f"initializer must be callable, got {initializer!r}")
    if not isinstance(initargs, tuple):
        raise TypeError(f"initargs must be a tuple, got {type(initargs).__name__}")
    return initializer, initargs


def _check_mp_context(ctx: Any) -> None:
    """Pool(mp_context=): a multiprocessing context that numpool's workers may start
    from ('forkserver' or 'spawn'; never 'fork')."""
    if ctx is None:
        return
    method = getattr(ctx, "get_start_method", None)
    if method is None:
        raise TypeError(
            f"mp_context must be a multiprocessing context (multiprocessing.get_context"
            f"('forkserver') or 'spawn'), got {ctx!r}"
        )
    if method() == "fork":
        raise ValueError(
            "mp_context with the 'fork' start method is refused: a worker forked from "
            "the caller inherits its threads' locks (a BLAS or numpool thread may hold "
            "one) and can hang; use multiprocessing.get_context('forkserver') (numpool's "
            "default where there is one) or 'spawn'"
        )


class _Calls:
    """Where a pool's ``submit`` and executor maps send each call: the pool's backend;
    under auto, the backend learned for the function (numpool._submits)."""

    def __init__(self, backends: BackendSet, name: str, submits: Submits | None) -> None:
        self._backends = backends
        self._name = name
        self.submits = submits
        #: auto: the backend of each future not yet done, for abandon()
        self._on: weakref.WeakKeyDictionary[Future[Any], str] = weakref.WeakKeyDictionary()

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        chunk: bool = False,
    ) -> Future[Any]:
        """``fn(*args, **kwargs)`` on its backend. ``chunk``: ``args`` are the argument
        tuples of several calls, run by run_chunk in the worker."""
        if self.submits is None:
            name, call = self._name, fn
        else:
            name, call = self.submits.route(fn, args, kwargs)
        backend = self._backends.get(name)
        if chunk:
            future = backend.submit_call(run_chunk, call, args)
        else:
            future = backend.submit_call(call, *args, **kwargs)
        if self.submits is not None and name != "threads":
            self._on[future] = name
        return future

    def abandon(self, futures: Iterable[Future[Any]]) -> None:
        """:meth:`Backend.abandon` for the futures of an executor map, on their backends."""
        if self.submits is None:
            self._backends.get(self._name).abandon(futures)
            return
        by: dict[str, list[Future[Any]]] = {}
        for f in futures:
            by.setdefault(self._on.get(f, "threads"), []).append(f)
        for name, group in by.items():
            backend = self._backends.peek(name)
            if backend is not None:
                backend.abandon(group)


class _Processes:
    """The pool's worker processes, as auto's :class:`~numpool._submits.Submits` asks
    of them."""

    def __init__(self, backends: BackendSet, runner: Runner) -> None:
        self._backends = backends
        self._runner = runner

    def round_trip(self) -> float | None:
        return store.get().process_task_s

    def workers(self) -> int:
        return self._backends.workers

    def unavailable(self, fn: Callable[..., Any]) -> str | None:
        if not any(cls.name == "processes" for cls in auto_choices()):
            return "auto does not choose processes here"
        return self._backends.get("processes").unavailable(fn)

    def ready(self) -> bool:
        backend = self._backends.get("processes")
        if backend.started:
            return True
        backend.start_soon()
        return False

    def measure(self, fn: Callable[..., Any]) -> None:
        self._runner.measure_soon("processes", fn)


def _chunks(calls: Iterator[tuple[Any, ...]], size: int) -> Iterator[tuple[Any, ...]]:
    """The calls in chunks of ``size`` (each a tuple of argument tuples)."""
    while chunk := tuple(itertools.islice(calls, size)):
        yield chunk


def _completed(
    futures: list[Future[Any]], left: set[Future[Any]], end: float | None, chunked: bool
) -> Generator[Any, None, None]:
    """The results of ``futures`` as they complete (each taken out of ``left``)."""
    wait = None if end is None else max(0.0, end - time.monotonic())
    for f in as_completed(futures, timeout=wait):
        left.discard(f)
        value = f.result()
        if chunked:
            yield from value
        else:
            yield value


class _Unordered(Iterator[Any]):
    """imap_unordered's iterator: results as their futures complete; whatever ends it
    early (an error, a timeout, close(), dropped, even before its first item) cancels
    what has not started and stops what runs, as :class:`_MapIterator` does."""

    def __init__(
        self,
        futures: list[Future[Any]],
        end: float | None,
        chunked: bool,
        abandon: Callable[[Iterable[Future[Any]]], None],
    ) -> None:
        self._left = set(futures)
        self._abandon = abandon
        # (a generator holding self would make a cycle: dropped, it would wait for gc)
        self._gen = _completed(futures, self._left, end, chunked)

    def __iter__(self) -> _Unordered:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._gen)
        except StopIteration:
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Cancel what has not started, stop what still runs; the iterator ends."""
        self._gen.close()
        left, self._left = self._left, set()
        for f in left:
            f.cancel()
        if left:
            self._abandon(left)

    def __del__(self) -> None:
        self.close()


class _MapIterator(Iterator[Any]):
    """Executor.map's iterator: each result as it is reached, none kept once yielded.
    On a timeout, an error, :meth:`close`, or when dropped (even before its first
    item), the futures not yet started are cancelled, as concurrent.futures' own
    ``result_iterator`` does once it has started; and, unlike it, the calls still
    running are stopped (:meth:`Backend.abandon`: worker processes killed, threads
    left behind). Nobody can receive their results any more, and a call that never
    returns would otherwise hold a worker for good: the next map would queue
    behind it, and ``shutdown(wait=True)`` and the interpreter's exit would hang."""

    __slots__ = ("_abandon", "_chunk", "_end", "_futures", "_more")

    def __init__(
        self,
        futures: list[Future[Any]],
        end: float | None,
        chunked: bool,
        abandon: Callable[[Iterable[Future[Any]]], None],
        more: Iterator[Callable[[], Future[Any]]] | None = None,
    ) -> None:
        self._futures = collections.deque(futures)
        self._end = end
        self._chunk: list[Any] | None = [] if chunked else None
        self._abandon = abandon
        #: map(buffersize=): the submits not made yet, one made per result taken
        self._more = more

    def __iter__(self) -> _MapIterator:
        return self

    def __next__(self) -> Any:
        if self._chunk:
            return self._chunk.pop()
        if not self._futures:
            raise StopIteration
        if self._more is not None:  # (as 3.14 does: the next one before this wait)
            submit = next(self._more, None)
            if submit is None:
                self._more = None
            else:
                self._futures.append(submit())
        f = self._futures.popleft()
        try:
            value = f.result(None if self._end is None else self._end - time.monotonic())
        except BaseException:
            self._futures.appendleft(f)  # (running after a timeout: close() stops it)
            self.close()
            raise
        if self._chunk is None:
            return value
        value.reverse()
        self._chunk = value
        return self._chunk.pop()

    def close(self) -> None:
        """Cancel what has not started, stop what still runs; the iterator ends."""
        futures, self._futures = list(self._futures), collections.deque()
        self._more = None
        for f in futures:
            f.cancel()
        if self._chunk:
            self._chunk.clear()
        if futures:
            self._abandon(futures)

    def __del__(self) -> None:
        self.close()


def _tiled(
    func: Callable[..., Any],
    x: Any,
    axis: Any,
    chunks: Any,
    overlap: Any,
    boundary: Any,
    cval: Any,
    block_info: Any,
    check_overlap: Any,
    rows: Any,
) -> tuple[Callable[..., Any], int, Any, Any, Any, Any]:
    """apply's call with tiles (``axis=`` a tuple): the call along its first axis of
    func in tiles along the others (see numpool._tiles); what tiles cannot take is
    refused."""
    given = [
        name
        for name, left_out in (
            ("check_overlap=", check_overlap is False),
            ("rows='any'", rows == "same"),
        )
        if not left_out
    ]
    if given:
        raise ValueError(
            f"apply: tiles (axis={tuple(axis)!r}) do not take {', '.join(given)} yet: split "
            "one axis for them"
        )
    info = check_flag("block_info", block_info, "apply")
    if info:
        check_block_info(func, "apply")
    return tiles(func, np.ndim(x), tuple(axis), chunks, overlap, boundary, cval, info)


def _kind(kind: str | None, args: tuple[Any, ...]) -> str:
    """apply, reduce or map: given, or apply when the first argument is an ndarray
    (x, then more arrays or values) and map otherwise (iterables)."""
    if kind is None:
        return "apply" if args and isinstance(args[0], np.ndarray) else "map"
    if kind not in ("apply", "map", "reduce"):
        raise ValueError(f"plan: kind must be 'apply', 'reduce' or 'map', got {kind!r}")
    return kind


def _inputs(
    x: Any,
    arrays: tuple[Any, ...],
    axis: Any,
    overlap: Any,
    where: str,
    boundary: Any = None,
    cval: Any = None,
    block_info: Any = False,
) -> Inputs:
    """A call's checked inputs: x alone along axis 0 (the common case, at once), or
    x with more arrays, another axis, a halo or its options (see numpool._inputs)."""
    arr = as_input_array(x)
    if (
        not arrays
        and type(overlap) is int
        and type(axis) is int
        and overlap == axis == 0
        and boundary is None
        and cval is None
        and block_info is False
    ):
        return Inputs.one(arr)
    return make_inputs(arr, arrays, axis, overlap, where, boundary, cval, block_info)
