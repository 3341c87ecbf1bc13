"""Walking a call's items: rows (apply) or tasks (map) run in order, part by part,
on whichever backend the runner names (see ``planner.measure.Walker``), and a whole
call in the caller (:func:`whole`).

The runner (``numpool._runner``) decides what runs where and learns from it; a
walker only runs what it is told and keeps the call's output and figures:

- :class:`ApplyWalker`: an apply call's rows. Its first part (in the caller, or on
  one worker of a backend outside this process) gives the output's layout (dtype,
  trailing shape), and the output is made then; later parts run serially, on one
  worker, or in blocks through the engine.
- :class:`MapWalker`: a map call's tasks, their results in order.
- ``together=True``: parts started at the same moment on a pool's threads, each
  one's CPU time taken (the threads stage of a first call).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

import numpy as np

from . import _engine, shm
from ._checks import check_out
from ._errors import annotate
from ._inputs import Cut, Inputs, along, frozen, tail_of, told
from ._progress import advance
from ._routes import one_in_one_out
from ._stats import Stats, worker_name
from .backends import Backend
from .backends._transport import MapIO
from .backends._worker import apply_block, check_block, run_tasks, same_layout, straight_ufunc

__all__ = ["ApplyWalker", "MapWalker", "check_whole", "known_layout", "whole", "writes_straight"]


# --- whole calls in the caller ---------------------------------------------------------


def check_whole(inputs: Inputs, res: Any) -> None:
    """Raise the usual TypeError/ValueError unless ``res`` is a valid ``func(x)``."""
    axis = inputs.axis
    if not isinstance(res, np.ndarray) or res.ndim <= axis:
        got = f"a 0-d {type(res).__name__}" if isinstance(res, np.ndarray) else type(res).__name__
        if isinstance(res, np.ndarray) and res.ndim:
            got = f"an array of shape {res.shape}"
        raise TypeError(
            f"apply: func returned {got}; apply needs a function that returns an array "
            f"with one row per input row along axis {axis}, like np.exp or lambda b: 2*b + 1"
        )
    check_block(res, inputs.n, tail_of(res.shape, axis), res.dtype, "the whole input", axis)


def whole(func: Callable[..., Any], inputs: Inputs, out: np.ndarray | None) -> np.ndarray:
    """``func(*inputs)`` in one call in the caller's thread, checked; copied into ``out``
    (a ufunc of one input writes straight into a fitting ``out``, as it does into a
    block of the output on threads: no temporary, no copy)."""
    where = "the whole input (rows 0:{}, run serially)"
    if out is not None and _writes_into(func, inputs, out):
        try:
            func(inputs.x, out=out)  # (such a ufunc writes into out alone: no view)
        except Exception as e:
            raise annotate(e, told(e, where.format(inputs.n))) from None
        advance(inputs.n)
        return out
    try:
        res = inputs.whole(func)
    except Exception as e:
        raise annotate(e, told(e, where.format(inputs.n))) from None
    check_whole(inputs, res)
    advance(inputs.n)
    if out is None:
        # a new array, as from every backend (func may return its read-only input)
        return res if res.flags.writeable else res.copy()
    check_out(inputs, out, res.shape, res.dtype)
    np.copyto(out, res, casting="no")
    return out


def writes_straight(func: Any, inputs: Inputs) -> bool:
    """Whether a block of this call may go straight into the output's rows (see
    ``backends._worker.apply_block``): a ufunc of one output over all the call's
    arguments, with no halo, so that it makes no block-sized temporary."""
    halo = inputs.overlap or inputs.pre or inputs.post
    return straight_ufunc(func, len(inputs.args)) and not halo


def _writes_into(func: Any, inputs: Inputs, out: np.ndarray) -> bool:
    """Whether ``func(x, out=out)`` gives what ``func(x)`` copied into ``out`` does: a
    ufunc of one input and one output over x alone, whose result for x's dtype is
    ``out``'s, with an ``out`` that :func:`check_out` takes. Anything else takes the
    usual way, which raises the usual errors after func ran."""
    x = inputs.x
    if not (one_in_one_out(func) and inputs.plain and type(x) is np.ndarray):
        return False
    if not isinstance(out, np.ndarray) or x.dtype.hasobject or out.shape != x.shape:
        return False
    if not same_layout(out, (x,)):
        return False  # (another loop than into a new array: maybe other bits)
    dtype = _result_dtype(func, (x.dtype,))
    if dtype is None:
        return False
    try:
        check_out(inputs, out, x.shape, dtype)
    except (TypeError, ValueError):  # (a bad out: the usual way raises the usual error)
        return False
    return True


def known_layout(func: Any, inputs: Inputs) -> tuple[tuple[int, ...], np.dtype] | None:
    """The output's layout (its shape without the split axis, its dtype), known
    before func runs, or None: the call's first rows tell it (its head).

    Known for an elementwise NumPy ufunc of one output given exactly its inputs,
    each a plain ndarray of x's shape and of a native numeric dtype, all split
    along the call's axis, with no halo: its result has x's shape and the dtype
    of the loop NumPy picks for those dtypes (``ufunc.resolve_dtypes``, which
    gives what a call gives for every such ufunc and dtype NumPy has: a test
    checks them all). Such a ufunc runs no BLAS either (see ``Runner._run``)."""
    if type(func) is not np.ufunc or func.signature is not None or inputs.options:
        return None
    if not writes_straight(func, inputs):  # (one output over all the arguments, no halo)
        return None
    x, axis = inputs.x, inputs.axis
    for a, ax in zip(inputs.args, inputs.axes, strict=True):
        if type(a) is not np.ndarray or ax != axis or a.shape != x.shape:
            return None
        if a.dtype.kind not in _NUMERIC or not a.dtype.isnative:
            return None
    dtype = _result_dtype(func, tuple(a.dtype for a in inputs.args))
    if dtype is None or dtype.kind not in _NUMERIC or not dtype.isnative:
        return None
    return tail_of(x.shape, axis), dtype


#: bool, integers, floats, complex: dtypes whose values never change a result's dtype
_NUMERIC = frozenset("biufc")


def _result_dtype(func: np.ufunc, dtypes: tuple[np.dtype, ...]) -> np.dtype | None:
    """The dtype of ``func``'s result for arguments of ``dtypes``, or None (no loop)."""
    key = (func, *dtypes)
    try:
        return _RESULT_DTYPES[key]
    except KeyError:
        pass
    try:
        dtype = func.resolve_dtypes((*dtypes, None))[-1]
    except Exception:  # (no resolve_dtypes, or no loop for these dtypes)
        dtype = None
    if len(_RESULT_DTYPES) >= 256:
        _RESULT_DTYPES.clear()
    _RESULT_DTYPES[key] = dtype
    return dtype


#: (ufunc, *input dtypes) -> the dtype of its result, or None (``ufunc.resolve_dtypes``
#: costs 0.5 us, and ``whole`` asks on every call with out=)
_RESULT_DTYPES: dict[tuple[Any, ...], np.dtype | None] = {}


# --- walking a call's items ---------------------------------------------------------


def _where(a: int, b: int) -> str:
    return f"block of rows {a}:{b}"


class ApplyWalker:
    """An apply call's rows, run in order (see planner.measure.Walker)."""

    def __init__(
        self,
        func: Callable[..., Any],
        inputs: Inputs,
        out: np.ndarray | None,
        new_out: Callable[[tuple[int, ...], np.dtype], np.ndarray],
        stats: Stats,
    ) -> None:
        self.func = func
        self.inputs = inputs
        self.x = inputs.x
        self.axis = inputs.axis
        self.n = inputs.n
        self.out = out
        self.given = out
        self.new_out = new_out
        self.stats = stats
        self.done = 0
        self.layout: tuple[tuple[int, ...], np.dtype] | None = None
        #: False: func runs no BLAS, its blocks need no BLAS budget (see _engine.apply)
        self.blas = True
        #: CPU seconds of each block run ``together`` (the threads stage)
        self.cpu: list[float] = []

    def warm(self, a: int, b: int) -> None:
        """Fault in the output's rows a:b before they are timed, when this call made
        the output: fresh pages (in /dev/shm above all) cost more to write than
        func, and page faults serialise threads in the kernel, so a stage on them
        would read a GIL-free func as GIL-bound. Later calls write recycled,
        warm memory; the profile prices fresh pages on its own."""
        if self.out is not None and self.out is not self.given:
            along(self.out, a, b, self.axis)[...] = 0

    def _take_first(self, a: int, b: int, res: Any) -> None:
        """The first block's result: it gives the output's layout; the output is made."""
        axis = self.axis
        if not isinstance(res, np.ndarray) or res.ndim <= axis:
            check_whole(self.inputs.window(a, b), res)  # raises the usual TypeError
        tail = tail_of(res.shape, axis)
        check_block(res, b - a, tail, res.dtype, _where(a, b), axis)
        self.lay_out(tail, res.dtype)
        along(self.out, a, b, axis)[...] = res

    def lay_out(self, tail: tuple[int, ...], dtype: np.dtype) -> None:
        """The output's layout is known: the output is made (or the given one checked)."""
        self.layout = tail, dtype
        shape = self.inputs.out_shape(tail)
        if self.out is None:
            self.out = self.new_out(shape, dtype)
        else:
            check_out(self.inputs, self.out, shape, dtype)

    def _first(self, a: int, b: int) -> float:
        """The first block, in the caller: the seconds ``func`` took."""
        t0 = perf_counter()
        try:
            res = self.inputs.call(self.func, a, b)
        except Exception as e:
            raise annotate(e, told(e, _where(a, b))) from None
        took = perf_counter() - t0
        self._take_first(a, b, res)
        return took

    def remote(self, backend: Backend, a: int, b: int) -> tuple[float, float]:
        """Run rows a:b as one block on ``backend``'s workers: (seconds, seconds) as the
        worker saw them (the first block also gives the output's layout)."""
        if self.layout is None:
            backend.check_callable(self.func)
            res, who, start, end = _engine.run_one(
                backend,
                apply_block,
                self.func,
                _laid_out(self.inputs.block(a, b)),
                None,
                _where(a, b),
                None,
                None,
                stats=self.stats,
            )
            self._take_first(a, b, res)
            self.stats.busy(who, start, end)
            self.stats.ran_on(backend.name)
            self.done = b
            advance(b - a)
        else:
            ((start, end),) = self.parallel(backend, a, b, 1)
        return end - start, end - start

    def serial(self, a: int, b: int) -> tuple[float, float]:
        cpu0, t0 = time.process_time(), perf_counter()
        if self.layout is None:
            took = self._first(a, b)
        else:
            assert self.out is not None
            tail, dtype = self.layout
            dst = along(self.out, a, b, self.axis)
            apply_block(self.func, self.inputs.block(a, b), dst, _where(a, b), tail, dtype)
            took = perf_counter() - t0
        t1 = perf_counter()
        self.stats.busy(worker_name(), t0, t1)
        self.stats.ran_on("serial")
        self.done = b
        advance(b - a)
        return took, time.process_time() - cpu0

    def release(self, given: np.ndarray | None) -> None:
        """After a failure: give back an output this call made (not the user's)."""
        if self.out is not None and self.out is not given:
            if isinstance(self.out, shm.SharedArray):
                self.out.close()
            self.out = None

    def parallel(
        self,
        backend: Backend,
        a: int,
        b: int,
        pieces: int,
        together: bool = False,
        lead: int = 0,
    ) -> list[tuple[float, float]]:
        assert self.out is not None and self.layout is not None
        sub = Stats("apply", backend.name, intervals=[])
        if together:
            tail, dtype = self.layout
            edges = _engine.bounds(b - a, pieces)
            jobs = [
                (
                    apply_block,
                    self.func,
                    self.inputs.block(a + i, a + j),
                    along(self.out, a + i, a + j, self.axis),
                    _where(a + i, a + j),
                    tail,
                    dtype,
                )
                for i, j in itertools.pairwise(edges)
            ]
            _together(backend, jobs, sub, self.cpu)
            advance(b - a)
        else:
            _engine.apply(
                backend,
                self.func,
                self.inputs.window(a, b),
                along(self.out, a, b, self.axis),
                pieces,
                self.layout,
                sub,
                row0=a,
                blas=self.blas,
                lead=lead,
            )
        self.stats.absorb(sub)
        self.done = b
        return sub.intervals or []


class MapWalker:
    """A map call's tasks, run in order (see planner.measure.Walker)."""

    def __init__(
        self,
        func: Callable[..., Any],
        columns: Sequence[Sequence[Any]],
        stats: Stats,
        timeout: float | None = None,
    ) -> None:
        self.func = func
        self.columns = columns
        self.n = len(columns[0])
        self.results: list[Any] = [None] * self.n
        self.stats = stats
        self.timeout = timeout
        self.done = 0
        self.cpu: list[float] = []
        #: each backend's transport state for this call's parts (head, rest)
        self.io: dict[str, MapIO] = {}

    def warm(self, a: int, b: int) -> None:
        """Nothing to fault in: a task's results are its own (see ApplyWalker.warm)."""

    def serial(self, a: int, b: int) -> tuple[float, float]:
        func, columns, results = self.func, self.columns, self.results
        cpu0, t0 = time.process_time(), perf_counter()
        for i in range(a, b):
            _engine.check_deadline()  # (timeout=: a task run here cannot be stopped)
            try:
                results[i] = func(*[frozen(c[i]) for c in columns])
            except Exception as e:
                raise annotate(e, told(e, f"task {i} of {self.n}")) from None
        t1 = perf_counter()
        self.stats.busy(worker_name(), t0, t1)
        self.stats.tasks += b - a - 1
        self.stats.ran_on("serial")
        self.done = b
        advance(b - a)
        return t1 - t0, time.process_time() - cpu0

    def parallel(
        self, backend: Backend, a: int, b: int, pieces: int, together: bool = False
    ) -> list[tuple[float, float]]:
        sub = Stats("map", backend.name, intervals=[])
        size = max(1, math.ceil((b - a) / max(1, pieces)))
        if together:
            batches = [
                [(i, tuple(c[i] for c in self.columns)) for i in range(j, min(j + size, b))]
                for j in range(a, b, size)
            ]
            jobs = [(run_tasks, self.func, batch, None, self.n) for batch in batches]
            res = [r for out in _together(backend, jobs, sub, self.cpu) for r in out]
            advance(b - a)
        else:
            cols = [c[a:b] for c in self.columns]
            if backend.name not in self.io:  # one per call: what was sent stays sent
                self.io[backend.name] = backend.transport.map_io()
            res = _engine.map_tasks(
                backend,
                self.func,
                cols,
                size,
                sub,
                self.timeout,
                start=a,
                total=self.n,
                io=self.io[backend.name],
            )
        self.results[a:b] = res
        self.stats.absorb(sub)
        self.done = b
        return sub.intervals or []

    def remote(self, backend: Backend, a: int, b: int) -> tuple[float, float]:
        """Run tasks a:b as one batch on ``backend``'s workers: (seconds, seconds) as
        the worker saw them."""
        ((start, end),) = self.parallel(backend, a, b, 1)
        return end - start, end - start

    def bytes_per_item(self, sample: int = 256) -> float:
        """Array bytes per task a worker process would need copied: distinct
        unshared arguments, and results (from a sample of the first tasks)."""
        k = max(1, min(self.n, sample, max(self.done, 1)))
        seen: set[int] = set()
        total = 0
        for c in self.columns:
            for a in c[:k]:
                if isinstance(a, np.ndarray) and id(a) not in seen and shm.shared_ref(a) is None:
                    seen.add(id(a))
                    total += a.nbytes
        done = self.results[: min(k, self.done)]
        total += sum(r.nbytes for r in done if isinstance(r, np.ndarray))
        return total / k


def _start_together(
    barrier: threading.Barrier, fn: Callable[..., Any], *args: Any
) -> tuple[Any, float]:
    """Wait until every block of the round is on a thread, then run ``fn``: its result,
    and the CPU seconds this thread spent on it (a thread waiting for the GIL sleeps)."""
    # a thread that did not come in time: run anyway, the round reads slow
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=TOGETHER_WAIT_S)
    cpu0 = time.thread_time()
    res = fn(*args)
    return res, time.thread_time() - cpu0


#: how long a block waits at the barrier for the others before running anyway
TOGETHER_WAIT_S = 1.0


def _together(
    backend: Backend, jobs: list[tuple[Any, ...]], stats: Stats, cpu: list[float]
) -> list[Any]:
    """Run ``jobs`` (apply_block or run_tasks calls) on ``backend``'s threads, all
    starting at once; their results, in order, and each one's CPU seconds into
    ``cpu``. One job per worker at most."""
    barrier = threading.Barrier(len(jobs))
    with backend.scope():
        futures = [backend.submit(_start_together, barrier, *job) for job in jobs]
        done = [f.result() for f in futures]
    out = []
    for (res, who, start, end), used in done:
        stats.busy(who, start, end)
        cpu.append(used)
        out.append(res)
    return out


def _laid_out(block: Any) -> Any:
    """A first block as it travels pickled to a worker: its arrays dense, each in its
    own memory order (pickle sends a view that is neither C- nor F-contiguous as a C
    copy, and an F-ordered block summed in C order gives other bits)."""
    if isinstance(block, np.ndarray):
        return block if block.flags.c_contiguous else block.copy(order="K")
    if isinstance(block, Cut):
        return block._replace(
            args=tuple(
                a.copy(order="K")
                if isinstance(a, np.ndarray) and a.ndim and not a.flags.c_contiguous
                else a
                for a in block.args
            )
        )
    return block
