"""One apply or map call, from checked arguments to result: what every Pool runs.

::

    Pool.apply / Pool.map_arrays / numpool.apply / numpool.map
        │
        ▼
    Runner.routed ── a settled route? ── run it (func(x) at once, when serial)
        │                 a small first call (auto)? ── func(x) whole, timed; too
        │                 small for any backend: the route settles at once
        ▼
    first call of this work (evidence.py has no key for it): Runner._first_call,
    one sequence for apply, map and reduce
        head: the first items in the caller, growing blocks ─▶ seconds per item,
              the output's dtype and shape (the output is allocated here)
        auto: threads stage on the next items ─▶ choose() ─▶ backend
    later calls: Runner._later_call, the same for all three (decide, run, learn)
        auto: choose() from the evidence ─▶ backend (or one exploring call)
        head: one row in the caller (the output's layout, from this call's own rows)
        │
        ▼
    the rest on the backend through the engine, in blocks sized by the one rule
    (planner.model.blocks / chunksize); work worth one block runs in the caller
        │
        ▼
    observe: the call's wall seconds per item go into the evidence

Every row and every task runs exactly once: what the head and the stage run
is part of the result (the walkers of ``numpool._walkers`` keep it). A fixed
backend (``Pool("threads")``) takes the same path without choosing; its calls
teach the evidence too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from time import perf_counter
from typing import Any

import numpy as np

from . import _buffers, _reduce, shm
from ._checks import AUTO
from ._engine import deadline
from ._errors import BackendUnavailableError, annotate
from ._inputs import Inputs, call_frozen, told
from ._inputs import make as make_inputs
from ._progress import advance, current
from ._routes import (
    Fewer,
    Route,
    Routes,
    call_key,
    chunks_key,
    due,
    in_layout,
    layout_of,
    one_in_one_out,
    out_key,
    plain_key,
    ufunc_call,
)
from ._stats import Last, Later, Stats, resolved, worker_name
from ._walkers import ApplyWalker, MapWalker, check_whole, known_layout, whole, writes_straight
from .backends import BACKENDS, Backend, BackendSet, auto_choices
from .backends._worker import in_worker
from .planner import evidence, measure, model
from .planner.evidence import Evidence, func_key
from .planner.explain import sentences
from .planner.plan import Plan
from .planner.profile import store
from .stencil import compare_layouts

__all__ = ["Runner", "whole"]

log = logging.getLogger("numpool")

FRESH_ALLOC_BYTES = measure.FRESH_ALLOC_BYTES
#: call sizes of one kind of call whose block-count trials are kept (the latest)
COUNT_SIZES = 8


def func_name(func: Any) -> str:
    if isinstance(func, np.ufunc):
        return f"np.{func.__name__}"
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return str(name) if name else type(func).__name__


# --- keys --------------------------------------------------------------------------


def _apply_key(func: Any, inputs: Inputs, out: Any, chunks: Any, options: Hashable) -> Hashable:
    x = inputs.x
    key = (
        "apply",
        func_key(func),
        x.dtype,
        x.shape[1:],
        x.nbytes.bit_length(),
        shm.shared_ref(x) is not None,
        out is not None,
        chunks,
        options,
    )
    return key if inputs.plain else (*key, inputs.key())


def _class_key(func: Any, inputs: Inputs, out: Any, options: Hashable) -> Hashable:
    """What a size class's route is kept under (see ``Runner._class_route``)."""
    return ("class", _apply_key(func, inputs, out, None, options))


def _key(key: Hashable, out: np.ndarray | None, chunks: int | None) -> Hashable:
    """A route's key (``routes.plain_key``, ``routes.call_key``) for a call with or
    without ``out=`` and ``chunks=``: the routes of each kept apart."""
    if out is not None:
        key = out_key(key)
    return key if chunks is None else chunks_key(key, chunks)


def _arg_class(a: Any) -> Hashable:
    if isinstance(a, np.ndarray):
        return (a.dtype, a.ndim, a.nbytes.bit_length())
    return type(a).__qualname__


def _map_key(
    func: Any, columns: Sequence[Sequence[Any]], size: Any, options: Hashable
) -> Hashable:
    n = len(columns[0])
    first = tuple(_arg_class(c[0]) for c in columns) if n else ()
    return ("map", func_key(func), n.bit_length(), first, size, options)


# --- the runner ----------------------------------------------------------------------


class Runner:
    """Runs apply and map calls for one pool: a fixed backend, or ``auto``."""

    def __init__(self, backends: BackendSet, name: str) -> None:
        self.backends = backends
        self.name = name
        self.auto = name == AUTO
        #: what the evidence is kept under: a fixed backend's "seconds per item" are its
        #: workers', auto's are the caller's serial ones
        self.key = (name, backends.workers, backends.given_blas)
        #: settled decisions: the fast path (see numpool._routes)
        self.routes = Routes()
        self._lock = threading.Lock()
        self._measuring: threading.Thread | None = None
        #: (the machine profile, model.certain_below for this pool's backends on it,
        #: those backends as candidates, unchecked against any func)
        self._bound: tuple[Any, float, tuple[model.Candidate, ...]] | None = None

    # --- the fast path ------------------------------------------------------------

    def routed(
        self,
        func: Callable[..., Any],
        x: Any,
        arrays: tuple[Any, ...],
        out: Any,
        chunks: Any,
        progress: Any,
        timeout: Any,
        boundary: Any,
        cval: Any,
        block_info: Any,
        check_overlap: Any,
        rows: Any,
        overlap: Any,
        axis: Any,
    ) -> tuple[np.ndarray, Last] | None:
        """The one gate of every apply (``Pool.apply``, ``numpool.apply``, with their
        arguments as given): the call run on its settled route, or None (take the
        planner's path, which checks the arguments). Only plain ndarrays and the
        options a route can hold pass; anything else goes to the planner."""
        if (
            type(x) is not np.ndarray
            or not x.ndim  # (0-d: the checks say so, before func runs)
            or (out is not None and type(out) is not np.ndarray)
            or (chunks is not None and type(chunks) is not int)
            or check_overlap is not False
            or rows != "same"
            or progress
            or current() is not None  # (inside another call's bar: track() hides it)
        ):
            return None
        if timeout is not None:  # (its blocks stop at the deadline, as the planner's do)
            if type(timeout) is not float and type(timeout) is not int:
                return None  # (the planner's path says what is wrong)
            try:
                with deadline(timeout):
                    hit = self.routed(
                        func, x, arrays, out, chunks, progress, None, boundary, cval,
                        block_info, check_overlap, rows, overlap, axis,
                    )  # fmt: skip
                    if hit is None:
                        raise _NoRoute  # (no work done: not timed, the planner's checks next)
            except _NoRoute:
                return None
            return hit
        if boundary is None and cval is None and block_info is False:
            if not (arrays or overlap or axis):
                # the hit, straight: ``apply(func, x)`` like the last call that found a
                # serial route (``Routes.find``'s memo). After a call that streamed
                # megabytes through the caches, every function and object a call
                # touches costs cache and TLB misses (~1-2 us each, against plain
                # ``func(x)``), so this one takes no detour through ``fast``.
                last = self.routes.last
                if (
                    last[0] is func
                    and last[1] is x.dtype
                    and last[2] == x.shape
                    and last[3].serial
                    and out is None
                    and chunks is None
                ):
                    route = due(last[3])
                    if route is None:
                        return None  # (due: the planner's path revisits it)
                    res, wall = _serially(func, x, route.check)
                    return self._ran_whole(route, res, wall, x.shape[0])
                return self.fast(func, x, out, chunks)
            stencil = None
        else:
            stencil = (boundary, cval, block_info)
        if type(overlap) is not int or type(axis) is not int:
            return None  # (True == 1: an argument the checks must see)
        if stencil is None and not (overlap or axis) and out is None and chunks is None:
            route = self.routes.recall(func, x, arrays)  # (the hit, straight, as above)
            if route is not None:
                route = due(route)
                if route is None:
                    return None  # (due: the planner's path revisits it)
                res, wall = _serially(func, x, route.check, arrays)
                return self._ran_whole(route, res, wall, x.shape[0])
        return self.fast_many(func, x, arrays, axis, overlap, stencil, out, chunks)

    def fast(
        self,
        func: Callable[..., Any],
        x: np.ndarray,
        out: np.ndarray | None = None,
        chunks: int | None = None,
    ) -> tuple[np.ndarray, Last] | None:
        """Run ``apply(func, x)`` (or with ``out=``, ``chunks=``) on its settled route
        (see ``numpool._routes``); None when it has none (the caller takes the
        planner's path). ``x`` is a plain ndarray split along axis 0, with no other
        option given; ``out`` a plain ndarray or None, ``chunks`` an int or None."""
        route: Route | None
        if chunks is not None:  # (its own first call goes through the planner)
            route = self.routes.find_key(_key(plain_key(func, x), out, chunks))
            if route is None:
                return None
        elif self.name == "serial":
            if one_in_one_out(func):
                route = _SERIAL_UFUNC_ROUTE
            else:
                route = _SERIAL_ROUTE if callable(func) else None  # (else: the usual error)
        elif out is None:
            route = self.routes.find(func, x)
        else:
            route = self.routes.find_key(out_key(plain_key(func, x)))
        if route is None:
            if self.routes.holds(_key(plain_key(func, x), out, None)):
                return None  # (due: the planner's path revisits it)
            if self.auto:
                if out is None:  # (chunks= has returned above)
                    hit = self._small_rows(func, x)
                    if hit is not None:
                        return hit
                return self._first_small(func, x, out=out)
            route = self._fixed_length(func, lambda: Inputs.one(x), out)
            if route is None:
                return None
        if out is not None:
            return self._fast_out(route, func, Inputs.one(x), out)
        if not route.serial:
            if in_worker():  # a call made inside a worker runs whole (the slow path says)
                return None
            return self._run_route(route, func, Inputs.one(x), None)
        res, wall = _serially(func, x, route.check)
        return self._ran_whole(route, res, wall, x.shape[0])

    def _fixed_length(
        self, func: Callable[..., Any], make: Callable[[], Inputs], out: np.ndarray | None
    ) -> Route | None:
        """The route of a fixed backend's apply call that has none of its own (another
        length) while its kind of work (function, dtypes, size class)
        has evidence: the route the planner's path would run it on (:meth:`_route`
        from that evidence: whole in the caller, or its blocks worked out for these
        rows), settled now. The planner's path would cost ~40 us of its own work a
        call, and settle nothing until a length came twice: calls of ever-changing
        lengths (per group, per window) would all pay that. ``make``: the call's
        checked inputs (bad arguments raise what the planner's path raises). None: no
        evidence yet (the planner's path learns from that first call)."""
        if self.name == "serial" or not callable(func) or in_worker():
            return None
        inputs = make()
        if inputs.n <= 1:
            return None
        ev = evidence.cache.get(_apply_key(func, inputs, out, None, self.key))
        if ev is None:
            return None
        route = self._route(ev, None, self.name, func, inputs, None)
        self._settle(func, inputs, route, out)
        return route

    def _small_rows(
        self, func: Callable[..., Any], x: np.ndarray
    ) -> tuple[np.ndarray, Last] | None:
        """``apply(func, x)`` with no route of its own (another length) and no more rows
        than a call of ``func`` on such rows (dtype, trailing shape) known too small for
        any backend to win on this machine profile (``_routes.Fewer``, kept by
        :meth:`_note_small`). It runs whole as a settled serial route does, with no
        evidence or decision of its own; its plan is the one that call settled with,
        worded for its rows when asked for. A length seen a second time settles a
        route of its own (a loop over one shape: one lookup from then on); lengths
        that change every call leave nothing. None: not such a call."""
        n = x.shape[0]
        known = self._fewer(Fewer.plain_kind(func, x), n)
        if known is None:
            return None
        res, wall = _serially(func, x, not one_in_one_out(func))
        what = (func, n, x.dtype, x.nbytes, shm.shared_ref(x) is not None, "")
        plan = _reworded(known[1], what, _FEWER_ROWS)
        if self.routes.fewer.again(plain_key(func, x)):
            inputs = Inputs.one(x)
            self._settle(func, inputs, _certain_route(func, inputs, plan))
        return res, (plan, wall)

    def _small_many(
        self,
        func: Callable[..., Any],
        x: np.ndarray,
        arrays: tuple[Any, ...],
        axis: int,
        overlap: int,
    ) -> tuple[np.ndarray, Last] | None:
        """:meth:`_small_rows` for a call with several arguments, another axis or a halo
        (no options, no ``out=``): of the same kind as a call known too small, no more
        rows, and in its layout (each argument split along the same axis, or passed
        whole, with the same other dimensions), so that its inputs are built without
        being worked out and checked again. It runs whole, checked as every call is.
        None: not such a call."""
        args = (x, *arrays)
        n = x.shape[axis]
        known = self._fewer(Fewer.kind(func, args, axis, overlap), n)
        if known is None or not in_layout(args, known[2], n):
            return None
        inputs = Inputs(args, known[2][0], axis, n, overlap)
        t0 = perf_counter()
        res = whole(func, inputs, None)
        wall = perf_counter() - t0
        plan = _reworded(known[1], _what_of(func, inputs), _FEWER_ROWS)
        if self.routes.fewer.again(call_key(func, args, axis, overlap)):
            self._settle(func, inputs, _certain_route(func, inputs, plan))
        return res, (plan, wall)

    def _fewer(self, kind: Hashable | None, rows: int) -> tuple[Any, ...] | None:
        """``Fewer.find`` on this machine profile, outside a worker."""
        if kind is None or in_worker():
            return None
        return self.routes.fewer.find(kind, rows, store.get())

    def _note_small(
        self, func: Callable[..., Any], inputs: Inputs, row_s: float, bound: float, plan: Later
    ) -> None:
        """A call was found too small for any backend to win, its serial seconds per row
        ``row_s`` against the machine's ``bound``: keep the most rows of its size class
        that are (its class's end, and the bound over ``row_s``), with its ``plan``
        (``_routes.Fewer``)."""
        x = inputs.x
        n = inputs.n
        if type(x) is not np.ndarray or n <= 1 or row_s <= 0 or x.nbytes < n:
            return
        if inputs.options or inputs.pre or inputs.post:
            return
        kind = Fewer.kind(func, inputs.args, inputs.axis, inputs.overlap)
        if kind is None:
            return
        rows = ((1 << x.nbytes.bit_length()) - 1) // (x.nbytes // n)  # (its class's last)
        if bound < math.inf:
            rows = min(rows, int(bound / row_s))
        layout = None if inputs.plain else layout_of(inputs.args, inputs.axes)
        self.routes.fewer.note(kind, store.get(), rows, plan, layout)

    def _fast_out(
        self, route: Route, func: Callable[..., Any], inputs: Inputs, out: np.ndarray
    ) -> tuple[np.ndarray, Last] | None:
        """:meth:`fast` with ``out=`` (and :meth:`fast_many`), checked and written as the
        planner's path does (:func:`whole`, or blocks into ``out``), on the route
        settled for such calls."""
        self._check_retry_safe(inputs, out)
        if not route.serial:
            if in_worker():
                return None
            return self._run_route(route, func, inputs, out)
        t0 = perf_counter()
        res = whole(func, inputs, out)
        return self._ran_whole(route, res, perf_counter() - t0, inputs.n)

    def _ran_whole(
        self, route: Route, res: np.ndarray, wall: float, n: int
    ) -> tuple[np.ndarray, Last]:
        """A serial route's call is done: its evidence (a route that is not certain
        keeps adding to it, on its tally) and what ``last_stats`` will show."""
        if route.tally is not None:
            route.tally.note(wall / max(1, n))
        if route.plan is None:
            return res, Stats("apply", route.backend, tasks=1, wall_s=wall)
        return res, (route.plan, wall)

    def fast_many(
        self,
        func: Callable[..., Any],
        x: np.ndarray,
        arrays: tuple[Any, ...],
        axis: int,
        overlap: int,
        stencil: tuple[Any, Any, Any] | None = None,
        out: np.ndarray | None = None,
        chunks: int | None = None,
    ) -> tuple[np.ndarray, Last] | None:
        """:meth:`fast` for ``apply(func, x, *arrays, axis=, overlap=, boundary=, cval=,
        block_info=, out=, chunks=)`` (ints given as such): its settled route, or None."""
        if not -x.ndim <= axis < x.ndim or overlap < 0:
            return None  # (the planner's path says what is wrong)
        axis %= x.ndim
        options: tuple[Any, ...] = ()
        if stencil is not None:
            boundary, cval, info = stencil
            if type(info) is not bool or not (boundary is None or type(boundary) is str):
                return None  # (the checks must see it)
            options = (
                "stencil",
                boundary,
                0.0 if cval is None and boundary == "constant" else cval,
                info,
            )
            if options == ("stencil", None, None, False):
                options = ()
        key = call_key(func, (x, *arrays), axis, overlap, options)
        route = self.routes.find_key(_key(key, out, chunks)) if key is not None else None
        if route is None:
            if options or key is None or x.ndim == 0 or chunks is not None:
                return None  # (options: the planner's path checks func against them)
            if self.routes.holds(_key(key, out, None)):
                return None  # (due: the planner's path revisits it)
            make = functools.partial(make_inputs, x, arrays, axis, overlap, "apply")
            if self.auto:
                if out is None:
                    hit = self._small_many(func, x, arrays, axis, overlap)
                    if hit is not None:
                        return hit
                return self._first_small(func, x, make, out)
            route = self._fixed_length(func, make, out)
            if route is None:
                return None
        if out is not None or not route.serial:
            layout = route.layout
            if layout is None:
                given = self._inputs(x, arrays, axis, overlap, stencil)
            else:  # (fixed by the key: checked when the route was settled)
                given = Inputs((x, *arrays), *layout)
            if out is not None:
                return self._fast_out(route, func, given, out)
            if in_worker():
                return None
            return self._run_route(route, func, given, None)
        if not (options or axis or overlap or chunks is not None):
            self.routes.remember(func, key, route)  # (see Routes.recall)
        stencil = stencil if options else None
        res, wall = _serially(func, x, route.check, arrays, axis, overlap, stencil)
        return self._ran_whole(route, res, wall, x.shape[axis])

    @staticmethod
    def _inputs(
        x: np.ndarray,
        arrays: tuple[Any, ...],
        axis: int,
        overlap: int,
        stencil: tuple[Any, Any, Any] | None,
    ) -> Inputs:
        """A routed call's inputs (its arguments were checked when it was routed)."""
        if stencil is None:
            return make_inputs(x, arrays, axis, overlap, "apply")
        return make_inputs(x, arrays, axis, overlap, "apply", *stencil)

    def _settle(
        self,
        func: Callable[..., Any],
        inputs: Inputs,
        route: Route | None,
        out: np.ndarray | None = None,
        chunks: int | None = None,
        klass: bool = True,
    ) -> None:
        """Keep ``route`` for calls like this one (None: forget this kind's route);
        ``out``, ``chunks``: the call's own (routes of calls with either are kept
        apart). Auto also keeps a route that is not certain as its size class's
        (:meth:`_class_route`), and forgets that with None."""
        x = inputs.x
        if klass and self.auto and chunks is None and not (inputs.pre or inputs.post):
            if route is None:
                self.routes.forget(_class_key(func, inputs, out, self.key))
            elif not route.certain:
                self.routes.settle(_class_key(func, inputs, out, self.key), route)
        key: Hashable | None
        if inputs.plain and type(x) is np.ndarray:
            key = plain_key(func, x)
        elif inputs.pre or inputs.post:
            return  # (a part of a bigger call)
        else:
            key = call_key(func, inputs.args, inputs.axis, inputs.overlap, inputs.options)
            if route is not None and not inputs.options:
                route.layout = (inputs.axes, inputs.axis, inputs.n, inputs.overlap)
        if key is None:
            return
        key = _key(key, out, chunks)
        if route is None:
            self.routes.forget(key)
        else:
            self.routes.settle(key, route)

    def _run_route(
        self, route: Route, func: Callable[..., Any], inputs: Inputs, out: np.ndarray | None
    ) -> tuple[np.ndarray, Stats]:
        """A call on a route split into blocks: run, then learn from its wall time."""
        stats = Stats("apply", "")
        made = _buffers.made()
        t0 = perf_counter()
        known = None
        if not route.serial and self.backends.get(route.backend).in_process:
            known = known_layout(func, inputs)
        # (a func whose layout is known runs no BLAS: no budget to set and restore)
        with self._scope() if known is None else contextlib.nullcontext():
            result = self._run(route, func, inputs, out, stats, known)
        wall = perf_counter() - t0
        if stats.lag_s is not None and stats.late_s is not None and route.row_s:
            # (at most half an even block: a call whose helper was descheduled for a
            # while leaves the next ones at most 1.25x an even split, for a few calls)
            most = route.row_s * inputs.n / route.blocks / 2
            route.lead_s = model.next_lead(route.lead_s, stats.lag_s, stats.late_s, most)
        if route.ev is not None:
            cold = _buffers.made() != made
            n = inputs.n
            self._observe(route.ev, route.backend, None, wall / n, True, cold, stats, n)
            backend = self.backends.get(route.backend)
            if backend.in_process and not (cold or route.given or route.serial):
                self._time_counts(route, backend, n, wall, inputs.row_bytes)
            if route.ev.block_row_s != route.row_s and not route.given:
                # (only in-process blocks move it; a count given with chunks= stays)
                route.row_s = route.ev.block_row_s
                if self._apply_blocks(backend, n, route.ev, inputs.row_bytes) != route.blocks:
                    route.left = 1  # its blocks' times call for another count: replan
        stats.plan = resolved(route.plan)
        stats.wall_s = wall
        return result, stats

    def _run(
        self,
        route: Route,
        func: Callable[..., Any],
        inputs: Inputs,
        out: np.ndarray | None,
        stats: Stats,
        known: tuple[tuple[int, ...], np.dtype] | None = None,
    ) -> np.ndarray:
        """Run the whole call as ``route`` says: whole in the caller, or in blocks.
        ``known``: the output's layout, known before func runs (:func:`known_layout`,
        in-process backends): the output is made first and every block, the
        caller's first one included, goes straight into it, with no head."""
        t0 = perf_counter()
        if route.serial:
            stats.backend = route.backend
            result = whole(func, inputs, out)
            stats.busy(worker_name(), t0, perf_counter())
            return result
        n, pieces = inputs.n, route.blocks
        backend = self.backends.get(route.backend)
        walker = ApplyWalker(func, inputs, out, backend.transport.new_out, stats)
        try:
            # the output's layout, from this call's own first rows, where func runs
            head = min(measure.FIRST_ROWS, n)
            lead = model.lead_rows(route.lead_s, route.row_s, n, pieces)
            if known is not None:
                walker.lay_out(*known)
                walker.blas = False
                walker.parallel(backend, 0, n, min(pieces, n), lead=lead)
            elif head == n and not backend.in_process:  # (all of it, on a worker)
                walker.remote(backend, 0, n)
            elif backend.in_process:
                t1 = perf_counter()
                stats.probe_s = walker._first(0, head)  # (untimed: no CPU clock read)
                stats.busy(worker_name(), t1, perf_counter())
                walker.done = head
                advance(head)
                if head < n:
                    walker.parallel(backend, head, n, min(pieces, n - head), lead=lead)
            else:
                walker.remote(backend, 0, head)
                walker.parallel(backend, head, n, min(pieces, n - head))
        except BaseException:
            walker.release(out)
            raise
        assert walker.out is not None
        return walker.out

    # --- apply ---------------------------------------------------------------------

    def apply(
        self,
        func: Callable[..., Any],
        inputs: Inputs,
        out: np.ndarray | None,
        chunks: int | None,
        check_overlap: bool = False,
    ) -> tuple[np.ndarray, Stats]:
        """Run ``apply`` (arguments already checked); the result and the call's Stats.
        ``check_overlap``: first compare two layouts of a sample (:mod:`numpool.stencil`)."""
        t0 = perf_counter()
        self._check_retry_safe(inputs, out)
        if check_overlap:
            compare_layouts(func, inputs)
        stats = Stats("apply", "")
        n = inputs.n
        nested = in_worker()
        if (self.name == "serial" and chunks is None) or n <= 1 or nested:
            stats.backend = "serial"
            result = whole(func, inputs, out)
            stats.tasks = 1
            if self.auto or nested:
                what = _NESTED if nested else f"{n} row{'s' * (n != 1)}"
                stats.plan = _trivial_plan("apply", what)
            if (
                not nested
                and (out is None or type(out) is np.ndarray)
                and (n <= 1 or not inputs.plain)
            ):  # (more rows come here on serial alone, with no chunks=; x alone has its
                # route always there, see fast; this call was checked. One row or none
                # runs whole on every backend: its next calls need no planner, ~30 us
                # of its own work a call against func's few)
                self._settle(func, inputs, _certain_route(func, inputs, stats.plan), out, chunks)
            stats.wall_s = perf_counter() - t0
            return result, stats
        key = _apply_key(func, inputs, out, chunks, self.key)
        ev = evidence.cache.get(key)
        with self._scope():
            if ev is None:
                result = self._first_apply(key, func, inputs, out, chunks, stats)
            else:
                result = self._later_apply(ev, func, inputs, out, chunks, stats)
        stats.wall_s = perf_counter() - t0
        return result, stats

    def _check_retry_safe(self, inputs: Inputs, out: np.ndarray | None) -> None:
        """Refuse retries of an in-place update: a block lost with its worker may have
        written some of its rows already, and running it again would apply func to
        them twice (silently wrong). Refused up front, whatever the backend chosen."""
        if (
            out is None
            or not self.backends.retries
            or not any(np.may_share_memory(out, a) for a in inputs.arrays())
        ):
            return
        cls = BACKENDS.get(self.name)
        if cls is not None and cls.in_process:
            return  # nothing there is ever retried
        raise ValueError(
            f"apply: retries={self.backends.retries} with an out= that overlaps x (an "
            "in-place update): a block lost with a crashed worker may already have "
            "overwritten rows of x, so running it again would apply func twice. Pass a "
            "separate out (then copy it back), or retries=0"
        )

    def _scope(self) -> contextlib.AbstractContextManager[None]:
        """A fixed backend's BLAS scope for the whole call, the rows the caller runs
        included (auto's backends each hold theirs while they run)."""
        if self.auto or self.name == "serial":
            return contextlib.nullcontext()
        return self.backends.get(self.name).scope()

    def _head_on(self) -> Backend | None:
        """Where a first call's head runs: in the caller (None), except on a fixed
        backend outside the caller's process, whose workers alone run func."""
        if self.auto:
            return None
        backend = self.backends.get(self.name)
        return None if backend.in_process else backend

    def _new_out_for(self, name: str) -> Callable[[tuple[int, ...], np.dtype], np.ndarray]:
        backend = self.backends.get(name)
        return backend.transport.new_out

    def _first_apply(
        self,
        key: Hashable,
        func: Callable[..., Any],
        inputs: Inputs,
        out: np.ndarray | None,
        chunks: int | None,
        stats: Stats,
    ) -> np.ndarray:
        t_start = perf_counter()
        if self.auto and chunks is None and _small(inputs):
            return self._first_whole(key, func, inputs, stats, out)
        if self.auto:
            candidates = self._candidates(func, inputs)
            # worker processes write into shared memory in place: allocate it there
            # while they may be chosen, so that choosing them costs no copy
            remote = [c.name for c in candidates if not c.in_process and c.unavailable is None]
            new_out = _first_out(
                self._new_out_for(remote[0]) if remote else None,
                self._new_out_for(_local_parallel(candidates)),
            )
        else:
            candidates = ()
            backend = self.backends.get(self.name)
            for arr in inputs.arrays():
                why = backend.transport.refuse(arr.dtype)
                if why is not None:
                    raise TypeError(why)
            new_out = backend.transport.new_out
        walker = ApplyWalker(func, inputs, out, new_out, stats)
        try:
            return self._first_apply_on(
                key, walker, candidates, func, inputs, out, chunks, stats, t_start
            )
        except BaseException:
            walker.release(out)
            raise

    def _first_whole(
        self,
        key: Hashable,
        func: Callable[..., Any],
        inputs: Inputs,
        stats: Stats,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """A first call on a small input: ``func(x)`` whole in the caller (into ``out``),
        timed. That is the serial cost itself (output allocation included), at the
        price of no parallelism on this one call; then the decision for the next ones,
        settled at once when the work is too small for any backend to win."""
        result, timed = _timed_whole(func, inputs, out)
        # (its fresh pages, which later calls get back warm, are not counted)
        warm = timed.warm(result.nbytes, store.get().fault_bytes_per_s)
        self._learn_whole(key, func, inputs, stats, result, timed, warm, out)
        return result

    def _first_small(
        self,
        func: Callable[..., Any],
        x: np.ndarray,
        make: Callable[[], Inputs] | None = None,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Last] | None:
        """The first call of ``apply(func, x)`` on a small plain array, from the fast
        path's gate (auto): ``func(x)`` whole in the caller, timed, as the planner's
        path runs it (:meth:`_first_whole`). When that took too little for any backend
        to win (:func:`model.certain_below`), the call settles its route at once, and
        its plan is worded only when asked for: the call costs about what ``func(x)``
        does. Otherwise the planner learns from it as usual. None: not such a call
        (the planner's path takes it). ``make``: the call's checked inputs, when it
        has more than ``x`` (several arrays, another axis, a halo); ``out``: the
        call's own (checked and written as :func:`whole` does)."""
        if not callable(func) or in_worker():
            return None
        if make is None:
            if x.ndim == 0 or x.nbytes > FIRST_WHOLE_BYTES:
                return None
            inputs = Inputs.one(x)
        else:
            inputs = make()  # (bad arguments raise what the planner's path raises)
            if not _small(inputs):
                return None
        if inputs.n <= 1:
            return None
        key = _apply_key(func, inputs, out, None, self.key)
        seen = evidence.cache.get(key)
        if seen is not None:  # (a new shape of a size class seen; a route due never
            # comes here, see Routes.holds: the planner's path revisits it)
            hit = self._seen_small(seen, func, inputs, out)
            return hit if hit is not None else self._class_route(key, func, inputs, out)
        self._check_retry_safe(inputs, out)
        result, timed = _timed_whole(func, inputs, out)
        profile = store.get()
        warm = timed.warm(result.nbytes, profile.fault_bytes_per_s)
        bound, candidates = self._certain_below(profile)
        if warm > bound:  # (the model decides, from the evidence)
            return result, self._learn_whole(key, func, inputs, None, result, timed, warm, out)
        ev = _whole_evidence(func, inputs, result, warm, timed)
        ev.calls, ev.current = 1, "serial"  # (what _observe_first records; not shared yet)
        evidence.cache.put(key, ev)
        first, later = self._plans_later(func, inputs, ev, profile, candidates, timed.wall)
        self._settle(func, inputs, _certain_route(func, inputs, later), out)
        if out is None:
            self._note_small(func, inputs, warm / inputs.n, bound, later)
        return result, (first, timed.wall, worker_name())

    def _seen_small(
        self, ev: Evidence, func: Callable[..., Any], inputs: Inputs, out: np.ndarray | None
    ) -> tuple[np.ndarray, Last] | None:
        """:meth:`_first_small` for a call with no route whose kind of work (function,
        dtype, size class, options) has evidence: another shape of the same class, or
        one whose route the planner dropped. When the evidence makes it too small for any
        backend to win (:func:`model.serial_certain`, the planner's own first rule,
        which would decide "serial, for good"), it runs whole and settles its route,
        without building a decision; otherwise None (the planner's path). Calls of
        ever-changing lengths (per group, per window) cost about what ``func`` does.
        (That rule is :func:`model.certain_below`'s bound, kept per machine profile,
        against the evidence's serial figure: :meth:`Evidence.serial_only_s`.)"""
        profile = store.get()
        bound, candidates = self._certain_below(profile)
        row_s = ev.serial_only_s()
        if row_s is None or inputs.n * row_s > bound:
            return None
        self._check_retry_safe(inputs, out)
        t0 = perf_counter()
        result = whole(func, inputs, out)
        wall = perf_counter() - t0
        _, later = self._plans_later(func, inputs, ev, profile, candidates, 0.0, seen=ev.calls)
        self._settle(func, inputs, _certain_route(func, inputs, later), out)
        if out is None:
            self._note_small(func, inputs, row_s, bound, later)
        return result, (later, wall, worker_name())

    def _class_route(
        self, key: Hashable, func: Callable[..., Any], inputs: Inputs, out: np.ndarray | None
    ) -> tuple[np.ndarray, Last] | None:
        """A call with no route of its own (another length), run as its size class's
        route says (the last route the planner settled for that class that is not
        certain: its backend, the blocks worked out for this call's rows), adding to
        its evidence; it then settles a route of its own. None: the class has none,
        or it is due to go back to the planner (that call goes there, as a route's
        every ``every`` calls do), or it was certain (for its own rows only)."""
        route = self.routes.find_key(("class", key))  # (key: the call's evidence's)
        if route is None or route.certain or route.ev is None:
            return None
        backend = self.backends.get(route.backend)
        n = inputs.n
        pieces = self._apply_blocks(backend, n, route.ev, inputs.row_bytes)
        serial = _runs_whole(backend, pieces, given=False)
        blocks = 1 if serial else pieces
        what = _what_of(func, inputs)
        mine = Route(
            route.backend,
            blocks,
            serial=serial,
            certain=False,
            check=route.check,
            plan=None
            if route.plan is None
            else _reworded(route.plan, what, _ANOTHER_LENGTH, blocks),
            ev=route.ev,
            revisit=route.revisit,
        )
        self._check_retry_safe(inputs, out)
        result, stats = self._run_route(mine, func, inputs, out)
        self._settle(func, inputs, mine, out, klass=False)
        return result, stats

    def _certain_below(self, profile: Any) -> tuple[float, tuple[model.Candidate, ...]]:
        """:func:`model.certain_below` for this pool's backends on ``profile``, and
        those backends as candidates (not checked against a func), kept."""
        bound = self._bound
        if bound is not None and bound[0] is profile:
            return bound[1], bound[2]
        candidates = tuple(
            _candidate(self.backends.get(cls.name), None, check=False)
            for cls in auto_choices()
            if self.backends.workers >= 2 or cls.inline
        )
        value = model.certain_below(profile, candidates)
        self._bound = (profile, value, candidates)
        return value, candidates

    def _plans_later(
        self,
        func: Callable[..., Any],
        inputs: Inputs,
        ev: Evidence,
        profile: Any,
        candidates: tuple[model.Candidate, ...],
        wall: float,
        decision: model.Decision | None = None,
        seen: int = 0,
    ) -> tuple[Callable[[], Plan], Callable[[], Plan]]:
        """The plan of a first call run whole by :meth:`_first_small`, and of the calls
        on its route (``cached``), worded once when either is first asked for, from
        what the first call showed, the machine as it was then and the ``decision``
        made for the next calls (None: made then, when asked for). ``seen``: the calls
        of the evidence it was decided from instead (:meth:`_seen_small`), none
        sampled. Nothing here keeps the inputs alive, nor asks the pool for anything
        (it may be shut down by then); two threads asking at once get the same plan."""
        name = "serial" if decision is None else decision.backend
        chosen = self.backends.get(name)
        n = inputs.n
        what_of = _what_of(func, inputs)
        item_s, native = ev.item_s, ev.native
        bytes_per_item, out_bytes = ev.bytes_per_item, ev.out_bytes_per_item
        made: dict[str, Plan] = {}

        def first() -> Plan:
            plan = made.get("first")
            if plan is None:
                snap = Evidence("apply", item_s, False, native)
                snap.bytes_per_item, snap.out_bytes_per_item = bytes_per_item, out_bytes
                snap.observe("serial", item_s)
                work = model.Work(candidates, explore=False)
                decided = decision
                if decided is None:
                    decided = model.choose(snap.measurements(n), profile, work)
                what = _apply_what(*what_of)
                plan = made.setdefault(
                    "first",
                    self._plan(
                        "apply",
                        func,
                        None,
                        snap,
                        decided,
                        name,
                        cached=False,
                        probe_s=wall,
                        measured=n,
                        items=n,
                        sizes=1,
                        calls=0,
                        what=what,
                        backend=chosen,
                    ),
                )
            return plan

        def later() -> Plan:
            plan = made.get("later")
            if plan is None:
                plan = made.setdefault(
                    "later",
                    dataclasses.replace(
                        first(), cached=True, calls=max(1, seen), probe_s=0.0, measured_items=0
                    ),
                )
            return plan

        return first, later

    def _learn_whole(
        self,
        key: Hashable,
        func: Callable[..., Any],
        inputs: Inputs,
        stats: Stats | None,
        result: np.ndarray,
        timed: _Timed,
        warm: float,
        out: np.ndarray | None = None,
    ) -> Last:
        """What a first whole call (:meth:`_first_whole`) showed, ``warm`` its time
        without its fresh pages: the evidence, the decision for the next calls and its
        plan, in ``stats``; a route when it is settled (``out``: the call's, if it had
        one). ``stats`` None (the fast path's first calls): the plan is worded only
        when asked for (:meth:`_plans_later`), and the call's Last is (plan, wall,
        who ran it); wording it costs about as much as ``a * b + c`` over 1e5."""
        n, wall = inputs.n, timed.wall
        ev = _whole_evidence(func, inputs, result, warm, timed)
        candidates = self._candidates(func, inputs, check=False)
        m = ev.measurements(n)
        profile = store.get()
        decision = model.choose(m, profile, model.Work(candidates, explore=False))
        if not next(c for c in candidates if c.name == decision.backend).in_process:
            candidates = self._candidates(func, inputs)  # can func reach it? (see _choose)
            decision = model.choose(m, profile, model.Work(candidates, explore=False))
        self._observe_first(ev, decision)
        ev = evidence.cache.put(key, ev)
        if stats is None:
            first, later = self._plans_later(func, inputs, ev, profile, candidates, wall, decision)
            if decision.certain:
                self._settle(func, inputs, _certain_route(func, inputs, later), out)
            return first, wall, worker_name()
        stats.backend = "serial"
        stats.busy(worker_name(), timed.t0, timed.t0 + wall)
        stats.plan = self._plan(
            "apply",
            func,
            inputs,
            ev,
            decision,
            decision.backend,
            cached=False,
            probe_s=wall,
            measured=n,
            sizes=1,
            calls=0,
        )
        if decision.certain:
            plan = dataclasses.replace(stats.plan, cached=True)
            self._settle(func, inputs, _certain_route(func, inputs, plan), out)
        return stats

    def _first_apply_on(
        self,
        key: Hashable,
        walker: ApplyWalker,
        candidates: tuple[model.Candidate, ...],
        func: Callable[..., Any],
        inputs: Inputs,
        out: np.ndarray | None,
        chunks: int | None,
        stats: Stats,
        t_start: float,
    ) -> np.ndarray:
        on = self._head_on()
        head = _Head(
            grow=self.auto or chunks is None,
            on=on,
            fault=_head_fault_rate(inputs) if on is None else 0.0,
        )

        def bytes_per_item(ev: Evidence) -> None:
            ev.direct = writes_straight(func, inputs)
            ev.bytes_per_item = _apply_bytes_per_row(inputs, out, walker.out)
            if walker.out is not None and walker.n:
                ev.out_bytes_per_item = walker.out.nbytes / walker.n

        self._first_call(
            "apply",
            key,
            walker,
            candidates,
            func,
            stats,
            t_start,
            head,
            bytes_per_item,
            lambda name, ev: self._apply_rest(walker, name, chunks, ev, stats),
            inputs=inputs,
        )
        assert walker.out is not None
        return walker.out

    def _first_call(
        self,
        kind: str,
        key: Hashable,
        walker: ApplyWalker | MapWalker,
        candidates: tuple[model.Candidate, ...],
        func: Callable[..., Any],
        stats: Stats,
        t_start: float,
        head: _Head,
        describe: Callable[[Evidence], None],
        rest: Callable[[str, Evidence], None],
        inputs: Inputs | None = None,
    ) -> None:
        """The first call of a kind of work, for apply, map and reduce alike: the one
        sequence, top-down. Every row or task it runs is part of the result.

        1. measure: the first items in the caller (``head``), growing blocks;
        2. describe: the bytes a row or task moves (``describe`` fills them in);
        3. decide (auto): the threads stage when threads could win, then the model;
        4. run the rest on the backend decided (``rest``);
        5. learn: the evidence is kept for later calls, with the plan it led to.
        """
        h = measure.head(walker, grow=head.grow, on=head.on, fault_bytes_per_s=head.fault)
        ev = _head_evidence(kind, h)
        describe(ev)
        name, decision = self.name, None
        if self.auto:
            name, decision = self._decide_first(ev, walker, candidates, func)
        probe_s, measured = perf_counter() - t_start, walker.done
        rest(name, ev)
        self._observe_first(ev, decision)
        ev = evidence.cache.put(key, ev)
        if decision is not None:
            stats.plan = self._plan(
                kind,
                func,
                inputs,
                ev,
                decision,
                name,
                cached=False,
                probe_s=probe_s,
                measured=measured,
                items=walker.n,
                sizes=stats.tasks if inputs is not None else None,
                calls=0,
            )

    def _later_apply(
        self,
        ev: Evidence,
        func: Callable[..., Any],
        inputs: Inputs,
        out: np.ndarray | None,
        chunks: int | None,
        stats: Stats,
    ) -> np.ndarray:
        """A call of work seen before (:meth:`_later_call`); then settle a route when
        the decision has nothing left to explore. (The rows of ``func`` known too small
        for any backend are dropped: this call's figures may move them; the next such
        call keeps them again, :meth:`_note_small`.)"""
        if self.routes.fewer.known:
            kind = Fewer.kind(func, inputs.args, inputs.axis, inputs.overlap)
            if kind is not None:
                self.routes.fewer.drop(kind)
        ran: list[Any] = []

        def run(name: str, decision: model.Decision | None) -> None:
            route = self._route(ev, decision, name, func, inputs, chunks)
            ran[:] = [route, self._run(route, func, inputs, out, stats)]
            stats.plan = resolved(route.plan)

        # settled only on what calls showed: a backend chosen on a prediction alone
        # runs once more through the planner, which then has its whole call to judge
        decision, seen = self._later_call(ev, func, inputs.n, inputs, out, stats, run)
        route, result = ran
        if out is None or type(out) is np.ndarray:
            settled = decision is None or (_settled(decision) and (seen or decision.certain))
            self._settle(func, inputs, route if settled else None, out, chunks)
        return result

    def _later_call(
        self,
        ev: Evidence,
        func: Callable[..., Any],
        items: int,
        inputs: Inputs | None,
        out: np.ndarray | None,
        stats: Stats,
        run: Callable[[str, model.Decision | None], None],
    ) -> tuple[model.Decision | None, bool]:
        """A later call of a kind of work, for apply, map and reduce alike: decide
        (auto: from the evidence, or one exploring call), ``run`` on that backend,
        learn (its wall seconds per item, unless it wrote into fresh memory, and its
        blocks' busy time). Returns the decision and whether its backend had whole
        calls on record before this one."""
        decision = None
        name = self.name
        if self.auto:
            decision = self._decide(ev, items, func, inputs, out)
            name = decision.backend
        seen = bool(ev.recent.get(name))
        made = _buffers.made()
        # func(x) whole in the caller makes its own output: the pages it faulted in
        # are what malloc's heap gives later calls back warm (see _first_whole)
        f0 = measure.thread_faults() if name == "serial" and inputs is not None else None
        t0 = perf_counter()
        run(name, decision)
        wall = perf_counter() - t0
        cold = _buffers.made() != made  # (its output was fresh memory: not a figure)
        if f0 is not None:
            f1 = measure.thread_faults()
            if f1 is not None:
                out_bytes = 0.0 if out is not None else ev.out_bytes_per_item * items
                wall = measure.warm_wall(wall, out_bytes, store.get().fault_bytes_per_s, f1 - f0)
        self._observe(ev, name, decision, wall / items, cold=cold, stats=stats, rows=items)
        return decision, seen

    def _route(
        self,
        ev: Evidence,
        decision: model.Decision | None,
        name: str,
        func: Callable[..., Any],
        inputs: Inputs,
        chunks: int | None,
    ) -> Route:
        """The decision as a route: whole or in how many blocks, with its plan."""
        backend = self.backends.get(name)
        n = inputs.n
        pieces = chunks or self._apply_blocks(backend, n, ev, inputs.row_bytes)
        serial = _runs_whole(backend, pieces, given=bool(chunks))
        plan = None
        if decision is not None:
            plan = self._plan(
                "apply",
                func,
                inputs,
                ev,
                decision,
                name,
                cached=True,
                sizes=1 if serial else pieces,
            )
        certain = serial and (decision is None or decision.certain)
        return Route(
            name,
            1 if serial else pieces,
            serial=serial,
            certain=certain,
            check=not ufunc_call(func, inputs.args),
            plan=plan,
            ev=None if certain else ev,
            given=bool(chunks),
            revisit=None if decision is None else decision.revisit,
        )

    def _apply_rest(
        self, walker: ApplyWalker, name: str, chunks: int | None, ev: Evidence, stats: Stats
    ) -> None:
        a, n = walker.done, walker.n
        if a >= n:
            return
        backend = self.backends.get(name)
        pieces = chunks or self._apply_blocks(backend, n - a, ev, walker.inputs.row_bytes)
        if _runs_whole(backend, pieces, given=bool(chunks)):
            walker.serial(a, n)
            return
        try:
            walker.parallel(backend, a, n, pieces)
        except BackendUnavailableError as e:
            if not self.auto or walker.done != a:
                raise
            # auto chose workers that could not start (a process limit reached): none
            # of these rows ran there, so the caller runs them
            log.warning("numpool: auto ran the rest of a call serially: %s", e)
            walker.serial(a, n)

    def _apply_blocks(self, backend: Backend, rows: int, ev: Evidence, row_bytes: int) -> int:
        """Blocks for ``rows`` rows of ``row_bytes`` each on ``backend``: the one rule
        (:func:`model.blocks`), or, on pulled blocks, the count this kind of call's
        own calls are trying or kept (:meth:`_time_counts`)."""
        pieces = self._model_blocks(backend, rows, ev, row_bytes)
        trial = ev.counts.get(rows) if backend.in_process else None
        if trial is not None and trial.proposed == pieces:
            return trial.next()
        return pieces

    def _time_counts(
        self, route: Route, backend: Backend, rows: int, wall: float, row_bytes: int
    ) -> None:
        """A call on a pulled route (threads) took ``wall`` seconds: note it at its block
        count, and run the next call at the count the trial asks for (see
        :func:`model.kept_count`: the model's count or one block per worker)."""
        ev = route.ev
        assert ev is not None
        trial = ev.counts.get(rows)
        if trial is not None and trial.kept == route.blocks:
            return  # (kept, and running it: nothing to time)
        fewer = max(backend.workers, _least_blocks(backend, rows, row_bytes))
        if trial is None and route.blocks <= fewer:
            return  # (the model's own count: nothing fewer to try, and no model asked)
        proposed = self._model_blocks(backend, rows, ev, row_bytes)
        if proposed <= fewer:
            with evidence.cache.lock:  # (the model now gives no more: nothing to try)
                if ev.counts.get(rows) is trial:
                    ev.counts.pop(rows, None)
            return
        if route.blocks not in (proposed, fewer):
            return  # (the model's count moved: the route is asked again)
        with evidence.cache.lock:
            if trial is None or trial.proposed != proposed:
                seen = None if trial is None else trial.walls
                trial = ev.counts[rows] = model.Counts(proposed, fewer, seen)
                while len(ev.counts) > COUNT_SIZES:
                    del ev.counts[next(iter(ev.counts))]
            settling = trial.kept is None
            trial.note(route.blocks, wall)
            count = trial.next()
        if settling and trial.kept is not None and trial.kept != proposed:
            route.left = 1  # (the planner words the plan for the count kept)
        route.blocks = count

    def _model_blocks(self, backend: Backend, rows: int, ev: Evidence, row_bytes: int) -> int:
        """:meth:`_apply_blocks` by the model alone."""
        if backend.inline:
            return 1
        profile = store.get()
        pieces = model.blocks(
            rows,
            _worker_item_s(backend, ev),
            backend.workers,
            backend.task_seconds(profile),
            pulled=backend.in_process,
            call_s=ev.call_s,
            direct=ev.direct,
        )
        return min(rows, max(pieces, _least_blocks(backend, rows, row_bytes)))

    # --- reduce -------------------------------------------------------------------

    def reduce(
        self, func: Callable[..., Any], inputs: Inputs, combine: Any, blocks: int
    ) -> tuple[Any, Stats]:
        """Run ``reduce`` (arguments already checked): ``func`` on each of ``blocks``
        fixed blocks, as the tasks of a map (measured, planned and run like one), then
        the partials combined left to right; the result and the call's Stats."""
        partials, stats = self.map(func, _reduce.columns(inputs, blocks), None, kind="reduce")
        if stats.plan is not None:
            stats.plan = _reduce_plan(stats.plan, func, inputs, combine, blocks)
        return _reduce.finish(func, inputs, combine, partials), stats

    def apply_any(
        self, func: Callable[..., Any], inputs: Inputs, blocks: int
    ) -> tuple[np.ndarray, Stats]:
        """``apply(func, x, rows="any")`` (arguments already checked): ``func`` on each
        of ``blocks`` fixed blocks, as a reduce runs them, then their results joined
        in block order; the result and the call's Stats."""
        parts, stats = self.map(func, _reduce.columns(inputs, blocks), None, kind="reduce")
        if stats.plan is not None:
            stats.plan = _any_plan(stats.plan, func, inputs, blocks)
        return _reduce.joined(func, inputs, parts), stats

    def plan_any(self, func: Callable[..., Any], inputs: Inputs, blocks: int) -> Plan:
        """What auto would do for ``apply(func, x, rows="any")`` (see :meth:`plan`)."""
        plan = self.plan(func, "reduce", None, _reduce.columns(inputs, blocks), None, None)
        return _any_plan(plan, func, inputs, blocks)

    def plan_reduce(
        self, func: Callable[..., Any], inputs: Inputs, combine: Any, blocks: int
    ) -> Plan:
        """What auto would do for this reduce call (see :meth:`plan`)."""
        plan = self.plan(func, "reduce", None, _reduce.columns(inputs, blocks), None, None)
        return _reduce_plan(plan, func, inputs, combine, blocks)

    # --- map ----------------------------------------------------------------------

    def map(
        self,
        func: Callable[..., Any],
        columns: list[list[Any]],
        chunksize: int | None,
        timeout: float | None = None,
        kind: str = "map",
    ) -> tuple[list[Any], Stats]:
        """Run ``map`` (arguments already checked); the results and the call's Stats.
        ``kind="reduce"``: the tasks are a reduce's blocks (so its Stats and plan say)."""
        t0 = perf_counter()
        stats = Stats(kind, "")
        n = len(columns[0])
        walker = MapWalker(func, columns, stats, timeout)
        nested = in_worker()
        if self.name == "serial" or n <= 1 or nested:
            stats.backend = "serial"
            walker.serial(0, n)
            if self.auto or nested:
                what = _NESTED if nested else f"{n} task{'s' * (n != 1)}"
                stats.plan = _trivial_plan("map", what)
            stats.wall_s = perf_counter() - t0
            return walker.results, stats
        try:
            with self._scope():
                self._map(func, columns, chunksize, walker, stats, kind)
        except BaseException:
            # the traceback keeps this frame alive: drop finished results now, so that
            # their shared memory returns at once, not when the caller drops the error
            walker.results.clear()
            raise
        stats.wall_s = perf_counter() - t0
        return walker.results, stats

    def _map(
        self,
        func: Callable[..., Any],
        columns: list[list[Any]],
        chunksize: int | None,
        walker: MapWalker,
        stats: Stats,
        kind: str = "map",
    ) -> None:
        n = walker.n
        key = _map_key(func, columns, chunksize, self.key)
        ev = evidence.cache.get(key)
        if ev is None:
            t_start = perf_counter()
            candidates = self._candidates(func) if self.auto else ()

            def describe(ev: Evidence) -> None:
                ev.bytes_per_item = walker.bytes_per_item()

            def rest(name: str, ev: Evidence) -> None:
                left = n - walker.done
                if left:
                    backend = self.backends.get(name)
                    size = chunksize or self._chunksize(backend, left, ev)
                    if backend.inline or (size >= left and backend.in_process):
                        walker.serial(walker.done, n)
                    else:
                        walker.parallel(backend, walker.done, n, math.ceil(left / size))

            head = _Head(grow=True, on=self._head_on())
            self._first_call(
                kind, key, walker, candidates, func, stats, t_start, head, describe, rest
            )
        else:

            def run(name: str, decision: model.Decision | None) -> None:
                backend = self.backends.get(name)
                size = chunksize or self._chunksize(backend, n, ev)
                if backend.inline or (size >= n and backend.in_process):
                    stats.backend = name
                    walker.serial(0, n)
                else:
                    walker.parallel(backend, 0, n, math.ceil(n / size))
                if decision is not None:
                    stats.plan = self._plan(
                        "map", func, None, ev, decision, name, cached=True, items=n, sizes=size
                    )

            self._later_call(ev, func, n, None, None, stats, run)

    def _chunksize(self, backend: Backend, tasks: int, ev: Evidence) -> int:
        if backend.inline:
            return tasks
        profile = store.get()
        return model.chunksize(
            tasks, _worker_item_s(backend, ev), backend.workers, backend.task_seconds(profile)
        )

    # --- deciding -----------------------------------------------------------------

    def _candidates(
        self, func: Callable[..., Any], inputs: Inputs | None = None, check: bool = True
    ) -> tuple[model.Candidate, ...]:
        """The backends auto may use for ``func`` (on ``inputs``), as the model sees them.
        ``check=False``: whether ``func`` can reach a backend outside this process is
        not asked (it may mean pickling func, and whatever it holds: see
        :meth:`_choose`, which asks once such a backend is chosen)."""
        out = []
        for cls in auto_choices():
            if self.backends.workers < 2 and not cls.inline:
                continue
            backend = self.backends.get(cls.name)
            c = _candidate(backend, func, check or backend.in_process)
            if c.unavailable is None and inputs is not None:
                for arr in inputs.arrays():
                    why = backend.transport.refuse(arr.dtype)
                    if why is not None:
                        c = dataclasses.replace(c, unavailable=why)
                        break
            if c.unavailable is None and c.checked and inputs is not None:
                why = backend.transport.no_room(inputs)
                if why is not None:
                    c = dataclasses.replace(c, unavailable=why)
            out.append(c)
        return tuple(out)

    def _decide_first(
        self,
        ev: Evidence,
        walker: ApplyWalker | MapWalker,
        candidates: tuple[model.Candidate, ...],
        func: Callable[..., Any],
    ) -> tuple[str, model.Decision]:
        """On a first call, after the head: the threads stage if threads could win,
        then the decision for the rest."""
        profile = store.get()
        threads = next((c for c in candidates if c.in_process and c.parallel), None)
        if threads is not None and walker.done < walker.n:
            m = ev.measurements(walker.n - walker.done)
            serial_s = m.items * m.item_s
            if model.predict(m, profile, threads) < serial_s:  # at best, threads could win
                backend = self.backends.get(threads.name)
                stage = measure.threads_stage(walker, backend, ev.item_s, ev.call_s)
                if stage is not None:
                    ev.threads_speedup = stage.speedup
                    ev.threads_trusted = stage.trusted
                    ev.item_s = min(ev.item_s, stage.serial_item_s)
                    ev.gil_free = stage.gil_free
        fresh = _fresh_bytes(walker.inputs, False) if isinstance(walker, ApplyWalker) else 0.0
        decision = self._choose(
            ev, walker.n - walker.done, func, candidates, explore=False, fresh=fresh
        )
        return decision.backend, decision

    def _decide(
        self,
        ev: Evidence,
        items: int,
        func: Callable[..., Any],
        inputs: Inputs | None,
        out: np.ndarray | None,
    ) -> model.Decision:
        fresh = _fresh_bytes(inputs, out is None) if inputs is not None else 0.0
        alloc = items * ev.out_bytes_per_item if inputs is not None and out is None else 0.0
        if alloc < FRESH_ALLOC_BYTES:
            alloc = 0.0  # malloc hands smaller outputs out again from its heap: warm
        candidates = self._candidates(func, inputs, check=False)
        if inputs is not None:
            candidates = tuple(self._not_whole(c, ev, inputs) for c in candidates)
        return self._choose(
            ev,
            items,
            func,
            candidates,
            explore=True,
            fresh=fresh,
            alloc=alloc,
            inputs=inputs,
        )

    def _not_whole(self, c: model.Candidate, ev: Evidence, inputs: Inputs) -> model.Candidate:
        """``c``, or ``c`` unavailable when it runs in this process and the block rule
        gives this call one block: then it runs ``func`` whole in the caller, as serial
        does, and is no choice of its own (its calls would be serial's, timed under
        another name: a coin toss between equals that kept auto off serial's route)."""
        if not (c.in_process and c.parallel and c.unavailable is None):
            return c
        backend = self.backends.get(c.name)
        if self._apply_blocks(backend, inputs.n, ev, inputs.row_bytes) > 1:
            return c
        return dataclasses.replace(c, unavailable=ONE_BLOCK)

    def _choose(
        self,
        ev: Evidence,
        items: int,
        func: Callable[..., Any],
        candidates: tuple[model.Candidate, ...],
        explore: bool,
        fresh: float,
        alloc: float = 0.0,
        inputs: Inputs | None = None,
    ) -> model.Decision:
        """The model's decision, with what it needs done first (``model.next_step``:
        ask whether func reaches the winner, start workers, measure them) done here
        and the model asked again after each step."""
        m = ev.measurements(items, fresh_bytes=fresh, alloc_bytes=alloc)
        work = model.Work(candidates, explore=explore)
        decision = model.choose(m, store.get(), work)
        taken: set[model.Step] = set()
        while (step := model.next_step(decision, work)) is not None:
            if step in taken:  # (it did not help: the backend could not be measured)
                work = _without(work, step.backend, "its costs could not be measured")
            else:
                taken.add(step)
                work = self._take(step, work, func, inputs)
            decision = model.choose(m, store.get(), work)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "auto: %s for %s over %d items (%s%s); predicted %s",
                decision.backend,
                func_name(func),
                items,
                ", ".join(decision.codes()),
                ", measuring it" if decision.explore else "",
                ", ".join(f"{b} {t * 1e3:.3g} ms" for b, t in decision.costs.items()),
            )
        return decision

    def _take(
        self, step: model.Step, work: model.Work, func: Callable[..., Any], inputs: Inputs | None
    ) -> model.Work:
        """Do what ``step`` says; the candidates as they stand after it."""
        if step.kind == "check":
            return model.Work(self._candidates(func, inputs), explore=work.explore)
        if step.kind == "start":
            if step.measure:
                self.measure_soon(step.backend, func)
            else:
                self.backends.get(step.backend).start_soon(func)
            return _without(work, step.backend, STARTING)
        try:
            self._measure(step.backend, func)
        except BackendUnavailableError as e:  # (its workers cannot start here)
            return _without(work, step.backend, str(e))
        return model.Work(
            tuple(
                dataclasses.replace(c, started=self.backends.get(c.name).started)
                for c in work.candidates
            ),
            explore=work.explore,
        )

    def measure_soon(self, name: str, func: Callable[..., Any]) -> None:
        """:meth:`_measure` in a background thread, once at a time per pool."""
        with self._lock:
            if self._measuring is not None and self._measuring.is_alive():
                return
            self._measuring = threading.Thread(
                target=self._measure_quietly,
                args=(name, func),
                name="numpool-measure",
                daemon=True,
            )
            self._measuring.start()

    def _measure_quietly(self, name: str, func: Callable[..., Any]) -> None:
        with contextlib.suppress(Exception):  # the call that needs them meets the error
            self._measure(name, func)

    def _measure(self, name: str, func: Callable[..., Any]) -> None:
        """Time starting ``name``'s workers and a round trip, for the machine profile."""
        backend = self.backends.get(name)
        start: float | None = None
        if not backend.started:
            t0 = perf_counter()
            backend.start(func, None)
            start = (perf_counter() - t0) / backend.workers
        trips = []
        for _ in range(5):
            t0 = perf_counter()
            backend.submit(int).result()
            trips.append(perf_counter() - t0)
        trip = sorted(trips)[len(trips) // 2]
        store.record_processes(start, trip)

    # --- learning -----------------------------------------------------------------

    def _observe_first(self, ev: Evidence, decision: model.Decision | None) -> None:
        """A first call measured, and ran what was left: not a whole call's figure (its
        output was fresh memory, its blocks shared the call with the measuring), so
        it is not kept as one."""
        with evidence.cache.lock:
            ev.fold()
            ev.calls += 1
            if decision is not None:
                ev.current = decision.backend

    def _observe(
        self,
        ev: Evidence,
        name: str,
        decision: model.Decision | None,
        item_s: float,
        settled: bool = False,
        cold: bool = False,
        stats: Stats | None = None,
        rows: int = 0,
    ) -> None:
        """A later call's wall seconds per item, on ``name``; ``settled``: on a route;
        ``cold``: it wrote into fresh memory, so its time is not kept as a figure;
        ``stats``: its blocks' busy time over its ``rows``, kept when they ran on
        in-process workers, and what its first rows took alone, which may show
        func's own cost per call (:meth:`_learn_call_cost`)."""
        with evidence.cache.lock:
            ev.fold()  # (the calls noted on routes came first)
            if not cold:
                ev.observe(name, item_s)
                if (
                    stats is not None
                    and stats.tasks > 1
                    and rows > 0
                    and self.backends.get(name).in_process
                ):
                    ev.observe_blocks(stats.compute_s / rows)
                    if self.auto and not settled:
                        self._learn_call_cost(ev, name, stats, rows)
            ev.calls += 1
            if settled or (decision is not None and not decision.explore):
                ev.current = name

    def _learn_call_cost(self, ev: Evidence, name: str, stats: Stats, rows: int) -> None:
        """func's cost per call read off the call's first rows, run alone before its
        blocks (:func:`measure.call_from_probe`), when above the one known: kept; and
        when the block rule then gives fewer blocks than this call had, its time on
        ``name`` is dropped, as it paid calls the next ones will not (``name`` is then
        predicted, and may be tried, anew). Only auto's calls through the planner
        (a settled route is left as it is), and only there, where a first call may
        have run whole: a fixed backend's first call reads the cost from its head."""
        if stats.probe_s is None:
            return
        seen = [v for v in (ev.best("serial"), ev.item_s, ev.block_row_s) if v]
        row_s = min(seen, default=0.0)  # (the least: a slow figure makes room for noise)
        backend = self.backends.get(name)
        task_s = backend.task_seconds(store.get())
        call_s = measure.call_from_probe(
            stats.probe_s, rows, row_s, stats.tasks, task_s, busy_s=stats.compute_s
        )
        if call_s <= ev.call_s:
            return
        ev.call_s = call_s
        if self._apply_blocks(backend, rows, ev, 0) < stats.tasks:
            ev.recent.pop(name, None)

    # --- plans --------------------------------------------------------------------

    def plan(
        self,
        func: Callable[..., Any],
        kind: str,
        inputs: Inputs | None,
        columns: list[list[Any]] | None,
        chunks: int | None,
        chunksize: int | None,
    ) -> Plan:
        """What auto would do for this call: measured on the input's first items (their
        results are not kept) when nothing is known yet, else from the evidence.
        ``kind="reduce"``: a map of ``columns``, a reduce's blocks."""
        if kind == "apply":
            assert inputs is not None
            n = inputs.n
            if n <= 1:
                return _trivial_plan("apply", f"{n} row{'s' * (n != 1)}")
            key = _apply_key(func, inputs, None, chunks, self.key)
        else:
            assert columns is not None
            n = len(columns[0])
            if n <= 1:
                return _trivial_plan("map", f"{n} task{'s' * (n != 1)}")
            key = _map_key(func, columns, chunksize, self.key)
        ev = evidence.cache.get(key)
        if ev is not None:
            decision = self._decide(ev, n, func, inputs, None)
            return self._plan(
                kind, func, inputs, ev, decision, decision.backend, cached=True, items=n
            )
        stats = Stats(kind, "")
        t0 = perf_counter()
        candidates = self._candidates(func, inputs)
        walker: ApplyWalker | MapWalker
        if kind == "apply":
            assert inputs is not None
            local = self._new_out_for(_local_parallel(candidates))
            walker = ApplyWalker(func, inputs, None, local, stats)
        else:
            assert columns is not None
            walker = MapWalker(func, columns, stats)
        h = measure.head(walker, grow=True)
        ev = _head_evidence(kind, h)
        ev.bytes_per_item = (
            _apply_bytes_per_row(walker.inputs, None, None)
            if isinstance(walker, ApplyWalker)
            else walker.bytes_per_item()
        )
        name, decision = self._decide_first(ev, walker, candidates, func)
        ev = evidence.cache.put(key, ev)
        return self._plan(
            kind,
            func,
            inputs,
            ev,
            decision,
            name,
            cached=False,
            probe_s=perf_counter() - t0,
            measured=walker.done,
            items=n,
        )

    def _plan(
        self,
        kind: str,
        func: Callable[..., Any],
        inputs: Inputs | None,
        ev: Evidence,
        decision: model.Decision | None,
        name: str,
        cached: bool,
        probe_s: float = 0.0,
        measured: int = 0,
        items: int | None = None,
        sizes: int | None = None,
        calls: int | None = None,
        what: str | None = None,
        backend: Backend | None = None,
    ) -> Plan:
        n = inputs.n if inputs is not None else (items or 0)
        if backend is None:
            backend = self.backends.get(name)
        m = ev.measurements(n)
        if what is not None:
            pass
        elif inputs is not None:
            what = _apply_what(*_what_of(func, inputs))
        else:
            what = f"map({func_name(func)}) over {n:,} tasks"
        if sizes is None:
            sizes = (
                self._apply_blocks(backend, n, ev, inputs.row_bytes)
                if inputs is not None
                else self._chunksize(backend, n, ev)
            )
        serial_item = m.observed.get("serial", m.item_s)
        speedups = {}
        if m.threads_speedup is not None:
            speedups["threads"] = m.threads_speedup
        for b, t in m.observed.items():
            if b != "serial" and t > 0:
                speedups[b] = serial_item / t
        reasons: list[str] = []
        codes: tuple[str, ...] = ()
        costs: dict[str, float] = {}
        basis: dict[str, str] = {}
        if decision is not None:
            reasons = sentences(func_name(func), m, decision, n)
            codes = decision.codes()
            costs, basis = dict(decision.costs), dict(decision.basis)
        return Plan(
            kind=kind,
            backend=name,
            workers=backend.workers,
            chunks=sizes if kind == "apply" else None,
            chunksize=sizes if kind in ("map", "reduce") else None,
            blas_threads=backend.blas_threads,
            what=what,
            cached=cached,
            item_s=ev.item_s,
            serial_s=ev.item_s * n,
            speedups=speedups,
            costs=costs,
            basis=basis,
            explore=bool(decision and decision.explore),
            calls=ev.calls if calls is None else calls,
            codes=codes,
            reasons=tuple(reasons),
            measured_items=measured,
            probe_s=probe_s,
        )


def _without(work: model.Work, name: str, why: str) -> model.Work:
    """``work`` with backend ``name`` unavailable for ``why``."""
    return model.Work(
        tuple(
            dataclasses.replace(c, unavailable=why) if c.name == name else c
            for c in work.candidates
        ),
        explore=work.explore,
    )


def _candidate(
    backend: Backend, func: Callable[..., Any] | None, check: bool = True
) -> model.Candidate:
    """A backend as the planner's model sees it, for a call of ``func``: the facts it
    declares (the backends import nothing of the planner). ``check=False`` (or no
    ``func``): only whether it can run anything here is asked, not whether ``func``
    reaches it."""
    return model.Candidate(
        name=backend.name,
        workers=backend.workers,
        in_process=backend.in_process,
        call_cost=backend.call_cost,
        task_cost=backend.task_cost,
        start_cost=backend.start_cost,
        started=backend.started,
        unavailable=(
            backend.unavailable(func) if check and func is not None else backend.unavailable_here()
        ),
        checked=check and func is not None,
    )


def _reduce_plan(
    plan: Plan, func: Callable[..., Any], inputs: Inputs, combine: Any, blocks: int
) -> Plan:
    extra = inputs.describe()
    what = (
        f"reduce({func_name(func)}) over {inputs.n:,} rows of {inputs.x.dtype} in {blocks} "
        f"fixed block{'s' * (blocks != 1)}{'; ' + extra if extra else ''}; "
        f"partials combined in block order with {_combine_name(combine)}"
    )
    return dataclasses.replace(plan, kind="reduce", what=what)


def _any_plan(plan: Plan, func: Callable[..., Any], inputs: Inputs, blocks: int) -> Plan:
    extra = inputs.describe()
    what = (
        f"apply({func_name(func)}, rows='any') over {inputs.n:,} rows of {inputs.x.dtype} "
        f"in {blocks} fixed block{'s' * (blocks != 1)}{'; ' + extra if extra else ''}; "
        "their results joined in block order"
    )
    return dataclasses.replace(plan, kind="reduce", what=what)


def _combine_name(combine: Any) -> str:
    if isinstance(combine, tuple):
        return "(" + ", ".join(func_name(f) for f in combine) + ")"
    return func_name(combine)


@dataclasses.dataclass(frozen=True)
class _Head:
    """How a first call's head runs (see measure.head): growing blocks or one, in
    the caller (``on`` None) or on a backend's workers, and the rate at which the
    pages it faults in are taken off its time (0: none)."""

    grow: bool
    on: Backend | None
    fault: float = 0.0


class _Timed:
    """A whole call's figures (:func:`_timed_whole`)."""

    __slots__ = ("cpu", "faults", "t0", "wall")

    def __init__(self, t0: float, wall: float, cpu: float, faults: int | None) -> None:
        self.t0, self.wall, self.cpu, self.faults = t0, wall, cpu, faults

    def warm(self, out_bytes: float, fault_bytes_per_s: float) -> float:
        """Its wall seconds without the fresh pages it faulted in (measure.warm_wall)."""
        return measure.warm_wall(self.wall, out_bytes, fault_bytes_per_s, self.faults)


def _apply_what(func: Any, n: int, dtype: np.dtype, nbytes: int, shared: bool, extra: str) -> str:
    """What a plan says an apply call is: func, rows, dtype, bytes, and its inputs."""
    return (
        f"apply({func_name(func)}) over {n:,} rows of {dtype} ({nbytes / 1e6:.1f} MB"
        f"{', shared' if shared else ''}{'; ' + extra if extra else ''})"
    )


def _what_of(func: Any, inputs: Inputs) -> tuple[Any, ...]:
    """The arguments of :func:`_apply_what` for a call on ``inputs``: nothing of the
    inputs is kept (a plan worded later holds these alone)."""
    x = inputs.x
    shared = shm.shared_ref(x) is not None
    if inputs.plain:
        return (func, inputs.n, x.dtype, x.nbytes, shared, "")
    nbytes = sum(a.nbytes for a in inputs.arrays())
    return (func, inputs.n, x.dtype, nbytes, shared, inputs.describe())


def _timed_whole(
    func: Callable[..., Any], inputs: Inputs, out: np.ndarray | None = None
) -> tuple[np.ndarray, _Timed]:
    """``whole(func, inputs, out)``, timed: its wall and CPU seconds, and the pages its
    thread faulted in (None: not known here)."""
    f0 = measure.thread_faults()
    cpu0, t0 = time.process_time(), perf_counter()
    result = whole(func, inputs, out)
    wall, cpu = perf_counter() - t0, time.process_time() - cpu0
    f1 = measure.thread_faults()
    faults = None if f0 is None or f1 is None else f1 - f0
    return result, _Timed(t0, wall, cpu, faults)


def _head_evidence(kind: str, h: measure.Head) -> Evidence:
    """The evidence of a first call's head (measure.head)."""
    ev = Evidence(kind, h.item_s, h.bound, h.native)
    ev.call_s = h.call_s
    return ev


def _whole_evidence(
    func: Callable[..., Any], inputs: Inputs, result: np.ndarray, warm: float, timed: _Timed
) -> Evidence:
    """The evidence of a first call run whole: ``warm`` seconds (its fresh pages'
    faults taken off), the cores it kept busy, its bytes per row."""
    n = inputs.n
    ev = Evidence("apply", warm / n, False, measure.native(timed.cpu, timed.wall))
    ev.direct = writes_straight(func, inputs)
    ev.bytes_per_item = _apply_bytes_per_row(inputs, None, result)
    ev.out_bytes_per_item = result.nbytes / n
    ev.observe("serial", warm / n)
    return ev


def _head_fault_rate(inputs: Inputs) -> float:
    """The rate at which a first call's head has its fresh pages taken off its time:
    the machine's, for arrays under glibc's mmap ceiling (whose temporaries later
    calls get back from malloc's heap, warm), else 0: a bigger call's temporaries
    are mapped anew, and fault in, every call."""
    if max((a.nbytes for a in inputs.split_arrays()), default=0) >= FRESH_ALLOC_BYTES:
        return 0.0
    return store.get().fault_bytes_per_s


def _least_blocks(backend: Backend, rows: int, row_bytes: int) -> int:
    """The fewest blocks ``rows`` rows of ``row_bytes`` each may go in on ``backend``
    (its ``max_block_bytes``); 1 when it has no such limit."""
    if not backend.max_block_bytes:
        return 1
    return math.ceil(rows * row_bytes / backend.max_block_bytes)


def _worker_item_s(backend: Backend, ev: Evidence) -> float:
    """A worker's seconds per item on ``backend``, for block sizes: serial seconds,
    times the cores the serial call used (a worker runs under a BLAS budget).

    Not over the threads' measured efficiency: what makes threads slower than
    serial is mostly the blocks' hand-offs, and counting it as slower rows made
    more blocks, hence more hand-offs (``a * b + c`` over 300k: 8 blocks, 1 ms
    a call, against 0.15 ms serial). Once in-process blocks were timed, their
    least busy seconds per row (``Evidence.block_row_s``) cap the figure: the first
    call's serial figure may include its temporaries' page faults (7x at 1M rows)."""
    row_s = ev.item_s * max(1.0, ev.native)
    if backend.in_process and ev.block_row_s is not None:
        return min(row_s, ev.block_row_s)
    return row_s


def _local_parallel(candidates: tuple[model.Candidate, ...]) -> str:
    """The candidate that runs blocks in parallel in this process (threads), else
    the first one (serial): whose transport makes a first call's private output."""
    return next((c.name for c in candidates if c.in_process and c.parallel), candidates[0].name)


def _first_out(
    shared: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None,
    private: Callable[[tuple[int, ...], np.dtype], np.ndarray],
) -> Callable[[tuple[int, ...], np.dtype], np.ndarray]:
    """A first call's output: in shared memory when worker processes may write it, its
    dtype allows and /dev/shm has room for it, else recycled private memory (worker
    processes, if chosen, then write a copy back)."""

    def new_out(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = math.prod(shape) * dtype.itemsize
        if shared is not None and not dtype.hasobject and _fits_shared(nbytes):
            return shared(shape, dtype)
        return private(shape, dtype)

    return new_out


def _fits_shared(nbytes: int) -> bool:
    """Whether ``nbytes`` fit in the shared-memory directory as it is now. A first
    call's output goes there only on the chance that processes are chosen: with a
    small /dev/shm (Docker's 64 MB) it would spill to a file on disk, 20x slower
    to write, even when threads then run the call. Half the free space at most: the
    input's copy may need the rest."""
    try:
        free = shm.free_bytes(shm.shm_dir())
    except OSError:
        return False
    limit = shm.shm_limit()
    return nbytes <= free // 2 and (limit is None or nbytes <= limit // 2)


def _travels(a: np.ndarray) -> bool:
    """Whether a worker process can reach ``a`` without a copy: shared memory, or a
    memory-mapped file."""
    return shm.shared_ref(a) is not None or shm.file_ref(a) is not None


def _apply_bytes_per_row(inputs: Inputs, out: Any, new_out: Any) -> float:
    """Bytes per row a worker process needs copied: every array unless it is shared
    memory (or a mapped file), and the output unless it is (a user's plain ``out=``
    is written back)."""
    n = max(1, inputs.n)
    total = sum(a.nbytes for a in inputs.arrays() if not _travels(a))
    target = out if out is not None else new_out
    if target is not None and not _travels(target):
        total += target.nbytes
    return total / n


def _fresh_bytes(inputs: Inputs, output: bool) -> float:
    """New shared memory a processes call on ``inputs`` would need (its arrays staged
    unless shared, and with ``output`` an output the size of x): what the arena
    cannot hand out warm, and the kernel must fault in."""
    arena = shm.arena()
    x = inputs.x
    fresh = 0.0
    if output and not arena.has_idle(x.nbytes):
        fresh += x.nbytes
    staged = [a.nbytes for a in inputs.arrays() if not _travels(a)]
    if staged and not arena.has_idle(max(staged), len(staged) + output):
        fresh += sum(staged)
    return fresh


#: what a plan says of a call made inside a numpool worker
_NESTED = "a call made inside a numpool worker"


#: Pool("serial")'s one route: func(x), checked, always
_SERIAL_ROUTE = Route("serial", 1, serial=True, certain=True, check=True, plan=None, ev=None)
#: ... and for a ufunc of one input and one output (nothing to check, no view of x)
_SERIAL_UFUNC_ROUTE = Route(
    "serial", 1, serial=True, certain=True, check=False, plan=None, ev=None
)


#: what the plan of a call run by ``Runner._small_rows`` adds
_FEWER_ROWS = (
    "Too small for any backend to win, as a call of more rows of this function was "
    "(fewer rows are less work): the predictions above are for that call."
)
#: ... and of a call run on its size class's route (``Runner._class_route``)
_ANOTHER_LENGTH = (
    "Run as the route settled for another call of this size class (another length): "
    "the predictions above are for that call."
)


def _reworded(
    plan: Plan | Later, what: tuple[Any, ...], note: str, chunks: int | None = None
) -> Later:
    """``plan``, the plan of another call, worded when asked for as this call's: its
    ``what`` (the arguments of :func:`_apply_what`), its blocks (``chunks``), and a
    ``note`` saying whose predictions it shows. Keeps nothing of the inputs alive."""
    made: list[Plan] = []

    def later() -> Plan:
        if not made:
            base = resolved(plan)
            assert base is not None
            made.append(
                dataclasses.replace(
                    base,
                    what=_apply_what(*what),
                    chunks=base.chunks if chunks is None else chunks,
                    cached=True,
                    reasons=(*base.reasons, note),
                )
            )
        return made[0]

    return later


def _runs_whole(backend: Backend, pieces: int, given: bool) -> bool:
    """Whether an apply call split into ``pieces`` blocks on ``backend`` runs whole in
    the caller: on an inline backend (serial) unless the caller gave a count
    (``chunks=``, run in blocks as asked), or in one block in this process."""
    return (backend.inline and not given) or (pieces == 1 and backend.in_process)


def _serially(
    func: Callable[..., Any],
    x: np.ndarray,
    check: bool,
    arrays: tuple[Any, ...] = (),
    axis: int = 0,
    overlap: int = 0,
    stencil: tuple[Any, Any, Any] | None = None,
) -> tuple[np.ndarray, float]:
    """``func(x, *arrays)`` whole in the caller, as a settled serial route runs it, and
    its wall seconds, along ``axis`` (a whole call has no halo: ``overlap`` only words
    an error), with ``stencil`` (boundary, cval, block_info) given through the inputs
    that make them. Read-only and its result checked unless ``check`` is False (a
    ufunc given its inputs writes none of them and returns x's rows: see
    ``ufunc_call``)."""
    t0 = perf_counter()
    inputs = None
    try:
        if stencil is not None:
            inputs = Runner._inputs(x, arrays, axis, overlap, stencil)
            res = inputs.whole(func)
        elif check:
            res = call_frozen(func, x, arrays)
        else:  # (x alone, the commonest call, without unpacking an empty tuple)
            res = func(x, *arrays) if arrays else func(x)
    except Exception as e:
        where = f"the whole input (rows 0:{x.shape[axis]}, run serially)"
        raise annotate(e, told(e, where)) from None
    if check and (
        type(res) is not np.ndarray
        or res.ndim <= axis
        or res.shape[axis] != x.shape[axis]
        or not res.flags.writeable
    ):
        check_whole(inputs or Runner._inputs(x, arrays, axis, overlap, stencil), res)
        res = res.copy()  # (func returned its read-only input, or a view of it)
    return res, perf_counter() - t0


def _certain_route(func: Any, inputs: Inputs, plan: Plan | Callable[[], Plan] | None) -> Route:
    """The route of a call run whole whose decision is settled (a first call too small
    for any backend; Pool("serial")): func on the whole inputs, in the caller, never
    revisited; ``plan`` for ``last_stats``. A new one each time: settling keeps the
    call's layout on it."""
    check = not ufunc_call(func, inputs.args)
    return Route("serial", 1, serial=True, certain=True, check=check, plan=plan, ev=None)


class _NoRoute(Exception):
    """The gate found no route for a call given ``timeout=`` (see Runner.routed)."""


#: why a backend cannot run this call: its workers are starting in the background
STARTING = "its workers are starting in the background"
#: why an in-process pool is no choice for this call: see Runner._not_whole
ONE_BLOCK = "the work is worth one block, which it would run whole in your thread, as serial"


def _settled(decision: model.Decision) -> bool:
    """Whether a decision leaves nothing to find out (no backend to explore, none whose
    costs must be measured first, none still starting): a route may skip the planner."""
    if decision.explore or decision.measure_first is not None:
        return False
    return not any(r.code == "unavailable" and r["why"] == STARTING for r in decision.reasons)


#: a first auto call on inputs of at most this many bytes runs whole in the caller
#: (timed: the serial cost itself), instead of growing blocks and a threads stage
FIRST_WHOLE_BYTES = 64 << 20


def _small(inputs: Inputs) -> bool:
    return sum(a.nbytes for a in inputs.arrays()) <= FIRST_WHOLE_BYTES


def _trivial_plan(kind: str, what: str) -> Plan:
    if what == _NESTED:
        why = (
            "Called from inside one of numpool's workers: it runs there, whole, in "
            "this thread (waiting on a pool from inside it could deadlock)."
        )
    else:
        why = "One item or none: nothing to split or measure."
    return Plan(
        kind=kind,
        backend="serial",
        workers=1,
        chunks=1 if kind == "apply" else None,
        chunksize=None,
        blas_threads=None,
        what=f"{kind} over {what}" if what != _NESTED else f"{kind}: {what}",
        reasons=(why,),
    )
