"""The module-level functions: apply, reduce, map, plan, last_stats, on lazily created
shared pools."""

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
from .backends import names
from .planner.plan import Plan

__all__ = ["apply", "last_stats", "map", "plan", "reduce", "shutdown_default_pools"]

_pools: dict[tuple[str, int | None, int | None, int], Pool] = {}
_lock = threading.Lock()
_local = threading.local()
#: the pool of apply(func, x) with every option left at its default: no lookup at all
_default: Pool | None = None


def last_stats() -> Stats | None:
    """Figures of this thread's last module-level :func:`apply`, :func:`reduce` or
    :func:`map` call.

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
        check_backend(backend, names),
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
    *arrays: Any,
    out: np.ndarray | None = None,
    chunks: int | None = None,
    backend: BackendName = "auto",
    workers: int | None = None,
    blas_threads: int | None = None,
    retries: int = 0,
    progress: bool | Callable[[int, int], Any] = False,
    overlap: int = 0,
    axis: int = 0,
    timeout: float | None = None,
    boundary: str | None = None,
    cval: float | None = None,
    block_info: bool = False,
    check_overlap: bool = False,
    rows: str = "same",
) -> np.ndarray:
    """Apply a blockwise function over the rows of big arrays, in parallel.

    ``x`` is split into ``chunks`` blocks of rows; ``func(block)`` runs on
    each and its result is written straight into one output array,
    allocated once (no list of partial results, no concatenate). For any
    function that works row-block by row-block (``np.exp``, ``np.sin``,
    ``lambda b: 2*b + 1``, a row-wise normalisation) the result equals
    ``func(x)`` exactly. With more arrays, ``func(xb, yb, ...)`` gets the
    same rows of each; with ``overlap=k``, each block also sees ``k`` rows
    on each side (a stencil, a filter), and the result still equals
    ``func(x)``.

    Parameters
    ----------
    func : callable
        Takes an array of rows (one per array argument), returns an array
        with as many rows. Every row is passed to ``func`` exactly once
        (plus its neighbours' halo with ``overlap``): the first rows run in
        the caller's thread, and what they return gives the output's dtype
        and trailing shape. NumPy ufuncs write straight into ``out``. Its
        arrays are read-only on every backend (``b = b.copy()`` to work in
        place); it must return a plain ndarray (a ``MaskedArray`` is refused).
    x : array_like
        At least one dimension. Any strides or order. An ``np.memmap`` (or
        ``np.load(..., mmap_mode="r")``) travels to worker processes as its
        file name and offset: they map the file themselves, nothing is
        copied into shared memory.
    *arrays : ndarray or any value
        More arguments for ``func``, after x. Arrays with x's length along
        the split axis are split into the same blocks (aligned with x from
        the right, as NumPy broadcasts). Arrays of length 1 there, or with
        too few dimensions to reach it, 0-d arrays and anything that is not
        an ndarray (scalars, options) are passed whole to every block.
        Another length along the split axis is a ValueError. With the
        processes backend every array travels by shared memory, as x does.
    out : ndarray, optional
        Where to write the result: x's rows by the trailing shape of what
        ``func`` returns, in its dtype. ``out=x`` updates in place. With the
        processes backend a :class:`~numpool.SharedArray` ``out`` costs no copy.
    chunks : int, optional
        Number of blocks (a count, not a block size as in dask) the rows
        after the first are split into; more than the rows means one row
        each. A count whose blocks would be too small to pay for their
        hand-off (more than 16 per usable core with blocks under 4 KiB)
        is a ValueError. Default: from the measured cost per row, so that no
        block costs less than 10x what handing it to a worker costs on this
        machine, and at most 4 blocks per worker; work worth less than one
        such block runs in the caller.
    backend, workers, blas_threads, retries
        As for :class:`numpool.Pool`; ``backend="auto"`` (default) measures
        on the first rows, picks serial, threads or processes, and learns
        from every later call (see :func:`numpool.plan`). The pool is
        created on first use and reused by later calls with the same options.
    progress : bool or callable, optional
        ``True`` draws a progress bar of the rows done, with the rate and the
        time left (rich's when rich is installed, else tqdm's, else a line on
        stderr; in a notebook, rich and tqdm draw it as a notebook display),
        from the calling thread. A callable is called as ``callable(done,
        total)`` instead, at most 5 times a second and once at the end.
        Default ``False``: nothing drawn, nothing measurable spent.
    overlap : int, optional
        Halo rows: each block is given ``overlap`` more rows on each side
        (fewer at the edges of the input) and only its own rows of what
        ``func`` returns are kept. Any ``func`` whose output row ``i``
        depends on input rows ``i-k..i+k`` (k <= overlap) then gives
        exactly ``func(x)``, however small the blocks. ``func`` must return
        as many rows as it is given. Default 0.
    axis : int, optional
        The axis to split (and along which the output has x's rows), e.g. 1
        for data laid out as (channels, rows, columns). Negative counts from
        the end. Default 0.
    timeout : float, optional
        Seconds for the whole call: past them, ``TimeoutError`` is raised and
        the blocks still running are stopped as ``Pool.map``'s timeout stops
        them (worker processes killed, threads left behind, Dask tasks
        cancelled). A block that runs in the caller's thread (serial, and
        the first rows on every backend) cannot be stopped: the deadline is
        checked after it. Default: none.
    boundary : {None, "reflect", "mirror", "nearest", "wrap", "constant"}, optional
        With ``overlap=k``: the ``k`` rows beyond each end of the array, made
        up as scipy.ndimage's ``mode`` of the same name extends an array
        (3 rows beyond ``a b c d``: reflect ``c b a | a b c d | d c b``;
        mirror ``d c b | a b c d | c b a``; nearest ``a a a | a b c d | d d
        d``; wrap ``b c d | a b c d | a b c``, the rows from the other end
        of the whole array; constant: ``cval``), and given to the blocks at the ends, along the
        split axis only. The result is then ``func`` on x padded so
        (``np.pad``), with those rows trimmed off, whatever the blocks:
        ``apply(lambda b: ndimage.correlate(b, w, mode=m), x, overlap=k,
        boundary=m)`` equals ``ndimage.correlate(x, w, mode=m)`` bit for bit
        when ``k`` covers ``w``'s rows (see :func:`numpool.stencil.halo`).
        ``None`` (default): the end blocks get only the rows that exist, and
        ``func``'s own edge handling applies there.
    cval : float, optional
        The value of the made-up rows with ``boundary="constant"`` (default
        0.0, as scipy.ndimage's): a number every split array's dtype holds
        exactly.
    block_info : bool, optional
        ``True`` calls ``func(..., block_info=info)``: a
        :class:`numpool.stencil.BlockInfo` saying where the block sits along
        the split axis (``info.rows``: its own rows of x; ``info.halo``: the
        rows it is given, below 0 and from ``info.n`` on for made-up rows;
        ``info.own``: its own rows within what it is given), the same on every
        backend. A whole call run at once gets one covering every row.
        Default False.
    check_overlap : bool, optional
        ``True`` first runs ``func`` on the first rows (at least 64) as one
        block and as two, and warns (:class:`numpool.stencil.OverlapWarning`)
        when they differ beyond rounding: ``overlap`` is too small for
        ``func``; the warning says which overlap makes them agree on that
        sample, when one does. Costs three more calls of ``func`` on the
        sample (more when they differ). Default False.
    rows : {"same", "any"}, optional
        ``"same"`` (default): ``func`` returns as many rows as it is given,
        and the result has x's rows. ``"any"``: each block's result may have
        any number of rows along the split axis (``b[b[:, 0] > 0]`` keeps
        some rows, ``b[::2]`` every other one, ``b.mean(0, keepdims=True)``
        one per block); they are joined in block order, in one copy. The
        blocks are fixed as :func:`reduce`'s are (by the input's size,
        ``chunks`` and the usable cores, never by timing), and every backend,
        serial included, runs those same blocks, so the result is the same
        everywhere; for a ``func`` whose rows depend on where a block starts
        (``b[::2]`` on blocks of odd length) it is the blocks' result, not
        ``func(x)``. Not with ``out``, ``overlap``, ``boundary``,
        ``block_info`` or ``check_overlap``.

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
    >>> a, b = np.ones(1000), np.arange(1000.0)
    >>> bool((numpool.apply(np.add, a, b) == a + b).all())
    True

    A 5 x 5 filter whose edges reflect, split into blocks of rows:

    >>> from scipy import ndimage
    >>> img = np.random.default_rng(0).random((500, 300))
    >>> f = lambda b: ndimage.median_filter(b, 5, mode="reflect")
    >>> r = numpool.apply(f, img, overlap=2, boundary="reflect", chunks=4)
    >>> bool((r == ndimage.median_filter(img, 5, mode="reflect")).all())
    True
    """
    pool = _default
    if (
        pool is None
        or timeout is not None
        or backend != "auto"
        or workers is not None
        or blas_threads is not None
        or retries != 0
    ):
        pool = _pool(backend, workers, blas_threads, retries)
    hit = pool._routed(
        func, x, arrays, out, chunks, progress, timeout, boundary, cval, block_info,
        check_overlap, rows, overlap, axis,
    )  # fmt: skip
    if hit is not None:  # its settled route
        result, _local.stats = hit
        return result
    pool = _pool(backend, workers, blas_threads, retries)  # (a fresh one if it was shut down)
    result, _local.stats = pool.apply_with_stats(
        func,
        x,
        *arrays,
        out=out,
        chunks=chunks,
        progress=progress,
        timeout=timeout,
        overlap=overlap,
        axis=axis,
        boundary=boundary,
        cval=cval,
        block_info=block_info,
        check_overlap=check_overlap,
        rows=rows,
    )
    return result


def reduce(
    func: Callable[..., Any],
    x: Any,
    *arrays: Any,
    combine: Any = np.add,
    chunks: int | None = None,
    backend: BackendName = "auto",
    workers: int | None = None,
    blas_threads: int | None = None,
    retries: int = 0,
    progress: bool | Callable[[int, int], Any] = False,
    axis: int = 0,
    timeout: float | None = None,
) -> Any:
    """Reduce big arrays in parallel: ``func`` per block, partials combined in order.

    The rows of ``x`` (and of ``arrays``, split as :func:`apply` splits
    them) are cut into fixed blocks; ``func(xb, ...)`` returns each block's
    partial result (a scalar, an array, or a tuple of them, e.g. the counts
    of ``np.histogram`` with fixed bins), and the partials are combined left
    to right in block order: ``combine(combine(p0, p1), p2)...``. Only one
    block's temporaries exist per worker at a time: ``np.exp(x).sum()`` as
    ``reduce(lambda b: np.exp(b).sum(), x)`` never makes an array the size
    of x.

    The same input and ``chunks`` give the same bits on every run and every
    backend: the blocks come from the input's size alone (at least about
    2 MiB of rows each, at most 32 blocks or 16 per usable core; or
    ``chunks``), never from timing, and the order of combining is fixed. The result can still
    differ from the serial ``func(x)`` in the last bits: NumPy sums a whole
    array pairwise (in blocks of 128 elements), while here each block is
    summed pairwise and the block sums are then added one after the other.
    For sums of positive float64 values the two differ by a relative error
    of the order of ``blocks * 1e-16``, far below 1e-12; sums that cancel
    (values of both signs) can differ more, as any reordering can.

    With ``backend="auto"`` the blocks are planned like the tasks of
    :func:`map`: the first call measures ``func`` on the first blocks (whose
    partials are kept), then chooses serial, threads or processes, and later
    calls decide from what earlier ones measured (see :func:`plan`, with
    ``kind="reduce"``).

    Parameters
    ----------
    func : callable
        ``func(xb, ...)``: a block's partial result. It must reduce a block
        to a value of fixed shape; one that returns rows (elementwise work)
        is a ValueError: use :func:`apply`.
    x : array_like
        At least one dimension (an np.memmap travels by its file, as in
        :func:`apply`).
    *arrays
        More arguments, split or passed whole as in :func:`apply`.
    combine : callable or tuple of callables, optional
        Combines two partials: ``np.add`` (default), ``np.maximum``,
        ``np.minimum``, ``np.logical_or``... Tuple partials are combined
        element by element, with ``combine`` or with the matching callable
        of a tuple of them (e.g. ``(np.add, np.maximum)``).
    chunks : int, optional
        Number of blocks (a count, not a size; capped at the rows; the same
        limit as :func:`apply`'s). Default: from the input's size.
    backend, workers, blas_threads, retries, progress
        As for :func:`apply` (progress counts blocks).
    axis : int, optional
        The axis to split. Default 0.
    timeout : float, optional
        As for :func:`apply`.

    Returns
    -------
    object
        The combined partials.

    Examples
    --------
    >>> import numpy as np, numpool
    >>> x = np.linspace(0, 1, 1_000_001)
    >>> s = numpool.reduce(lambda b: np.exp(b).sum(), x)
    >>> bool(abs(s - np.exp(x).sum()) <= 1e-12 * np.exp(x).sum())
    True
    >>> float(numpool.reduce(np.max, np.arange(10.0), combine=np.maximum, chunks=3))
    9.0
    """
    pool = _pool(backend, workers, blas_threads, retries)
    result, _local.stats = pool.reduce_with_stats(
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


def map(
    func: Callable[..., Any],
    *iterables: Iterable[Any],
    backend: BackendName = "auto",
    workers: int | None = None,
    chunksize: int | None = None,
    blas_threads: int | None = None,
    retries: int = 0,
    progress: bool | Callable[[int, int], Any] = False,
    timeout: float | None = None,
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
        results come back the same way (arrays of 4 KiB or less travel inside
        the task's message instead: cheaper than a segment each).
    backend, workers, blas_threads, retries
        As for :class:`numpool.Pool`.
    chunksize : int, optional
        Tasks sent to a worker in one message. Default: 1 (threads);
        ``tasks // (8 * workers)`` (processes); with ``auto``, also enough
        tasks for ~1 ms of measured work per message.
    progress : bool or callable, optional
        ``True`` draws a progress bar of the tasks done, with the rate and the
        time left (rich's when rich is installed, else tqdm's, else a line on
        stderr; in a notebook, rich and tqdm draw it as a notebook display),
        from the calling thread. A callable is called as ``callable(done,
        total)`` instead, at most 5 times a second and once at the end.
        Default ``False``: nothing drawn, nothing measurable spent.
    timeout : float, optional
        As for :func:`apply` (a task the caller runs itself is checked after it).

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
    results, _local.stats = pool.map_with_stats(
        func, *iterables, chunksize=chunksize, progress=progress, timeout=timeout
    )
    return results


def plan(
    func: Callable[..., Any],
    *args: Any,
    kind: str | None = None,
    workers: int | None = None,
    blas_threads: int | None = None,
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
    """How ``backend="auto"`` would run ``apply(func, x, ...)``, ``reduce(func, x, ...)``
    or ``map(func, *iterables)``, and why.

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
        x and the other arguments (``apply``, ``reduce``) or the iterables
        of ``map``.
    kind : {"apply", "reduce", "map"}, optional
        Default: ``"apply"`` when the first argument is an ndarray, ``"map"``
        otherwise.
    workers, blas_threads, chunks, chunksize, overlap, axis, combine
        As for :func:`apply`, :func:`reduce` and :func:`map`.
    boundary, cval, block_info, rows
        As for :func:`apply` (``Plan.explain`` says how the ends are made up).

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
        func,
        *args,
        kind=kind,
        chunks=chunks,
        chunksize=chunksize,
        overlap=overlap,
        axis=axis,
        combine=combine,
        boundary=boundary,
        cval=cval,
        block_info=block_info,
        rows=rows,
    )
