"""Routes: what a pool has settled on for one kind of apply call, found in one lookup.

A route is the decision for a function on inputs of one dtype and exact
shape, once nothing is left to measure or explore: run ``func(x)`` whole in
the caller (serial), or on a backend in a fixed number of blocks. Calls with
``out=`` and calls with ``chunks=`` keep routes of their own (:func:`out_key`,
:func:`chunks_key`): their cost differs, and a count given with ``chunks=``
is kept as given. Every
apply call looks for its route first (:meth:`Routes.find`: a last-hit memo
compared by identity, then a dict); a serial route then costs that lookup,
``func(x)`` and two clock reads, nothing else::

    apply(func, x) ─▶ Routes.find ── hit ──▶ run the route ─▶ learn (threads,
          │                                                   processes: the
          └── miss ─▶ measure / decide (numpool._runner) ─▶ settle a route

A route is *certain* when the work is too small for any backend to win
however well it scaled (``planner.model.serial_certain``): it is never
revisited. Any other route goes back to the planner after ``RECHECK``
calls, so that the evidence keeps flowing and a decision can still change
on it (with the model's hysteresis); each time the planner settles on the
same route again, the next check waits twice as long, up to
``RECHECK_MOST`` calls (a planner's call costs a few hundred microseconds:
once in 64 calls of a 5 us func it was most of numpool's cost), but never
past the call from which the planner would start a backend whose start-up
is by then spread over enough calls (``Decision.revisit``). Routes are
forgotten with the evidence they came from (``planner.evidence.cache.clear``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from .planner import evidence
from .planner.evidence import func_key

if TYPE_CHECKING:
    from ._stats import Later
    from .planner.evidence import Evidence
    from .planner.plan import Plan

__all__ = [
    "RECHECK",
    "RECHECK_MOST",
    "Fewer",
    "Route",
    "Routes",
    "call_key",
    "chunks_key",
    "due",
    "in_layout",
    "layout_of",
    "one_in_one_out",
    "out_key",
    "plain_key",
    "ufunc_call",
]

#: calls on a new route that is not certain before one goes back to the planner ...
RECHECK = 64
#: ... doubled each time the planner settles on the same route, up to this many
RECHECK_MOST = 4096

_MISS: tuple[Any, ...] = (None, None, None, None)
#: where the arguments' part of a :func:`call_key` without options starts
_SIG = 3
_MISS_MANY: tuple[Any, ...] = (None, (), None)


def one_in_one_out(func: Any) -> bool:
    """Whether ``func(x)`` is sure to be an ndarray with x's rows: a NumPy ufunc of one
    input and one output (a serial route then skips the check of its result)."""
    return type(func) is np.ufunc and func.nin == 1 and func.nout == 1


#: arguments that never change the shape of a ufunc's result (0-d, whatever the value)
_SCALARS = frozenset({int, float, complex, bool})


def ufunc_call(func: Any, args: tuple[Any, ...]) -> bool:
    """Whether ``func(*args)`` is sure to be a new, writeable ndarray whose shape the
    arguments' shapes alone decide, and to write into none of them: a NumPy ufunc of
    one output given exactly its inputs, each a plain ndarray or a Python number. A
    route is kept under its arguments' dtypes and shapes (:func:`call_key`) and its
    first call was checked, so its serial calls skip the read-only views of the
    arguments and the check of the result. (Not a list: its length is not in the
    key, and it could broadcast the result to other rows.)"""
    if type(func) is not np.ufunc or func.nout != 1 or func.nin != len(args):
        return False
    return all(type(a) is np.ndarray or type(a) in _SCALARS for a in args)


class Route:
    """The settled decision for one kind of call (see the module docstring)."""

    __slots__ = (
        "backend",
        "blocks",
        "certain",
        "check",
        "ev",
        "every",
        "given",
        "layout",
        "lead_s",
        "left",
        "plan",
        "revisit",
        "row_s",
        "serial",
        "tally",
    )

    def __init__(
        self,
        backend: str,
        blocks: int,
        *,
        serial: bool,
        certain: bool,
        check: bool,
        plan: Plan | Later | None,
        ev: Evidence | None,
        given: bool = False,
        revisit: int | None = None,
    ) -> None:
        #: the backend's name, and the blocks a call is split into (1: whole)
        self.backend = backend
        self.blocks = blocks
        #: run ``func(x)`` whole in the caller
        self.serial = serial
        #: too small for any backend to win: never revisited
        self.certain = certain
        #: the result must be checked (func is not a one-in-one-out ufunc)
        self.check = check
        #: its block count is the caller's (``chunks=``), not the model's: kept as is
        self.given = given
        #: the plan that settled it (auto), for ``last_stats``; a callable: worded when
        #: asked for (see ``numpool._stats.Later``)
        self.plan = plan
        #: the evidence each call on the route adds to (None: serial routes add none)
        self.ev = ev
        #: where a serial route's calls note their figures for ``ev`` (see
        #: ``planner.evidence.Tally``): no lock, no more objects touched per call
        self.tally = ev.tally(backend) if serial and ev is not None else None
        #: the blocks' seconds per row its block count was worked out from
        #: (``Evidence.block_row_s``): when they show another, the count is asked again
        self.row_s = None if ev is None else ev.block_row_s
        #: pulled blocks: the seconds of work the caller's first block holds beyond
        #: each other block's, learned call by call (``planner.model.next_lead``)
        self.lead_s = 0.0
        #: calls between two that go back to the planner, and those left until the next
        #: (no more than ``revisit``: the calls after which the decision that settled it
        #: may change as a backend's start-up is spread over them; see
        #: ``planner.model.revisit_after``)
        self.revisit = revisit
        self.every = self.left = RECHECK if revisit is None else min(RECHECK, revisit)
        #: a call's ``Inputs`` layout (axes, axis, rows, halo) for calls of several
        #: arguments without options: the key fixes it, so a call on the route builds
        #: its inputs from it without checking them again (None: build and check)
        self.layout: tuple[Any, ...] | None = None

    def same(self, other: Route) -> bool:
        """Whether ``other`` runs calls as this route does (backend, blocks, whole)."""
        return (self.backend, self.blocks, self.serial) == (
            other.backend,
            other.blocks,
            other.serial,
        )


class Routes:
    """A pool's routes, by (function, dtype, shape). Not locked: a lookup is one dict
    read and a race between two settling threads only loses one of two equal routes."""

    def __init__(self, size: int = evidence.cache.size) -> None:
        self.size = size
        self.entries: dict[Hashable, Route] = {}
        #: (func, dtype, shape, route) of the last hit, compared by identity first
        self.last: tuple[Any, ...] = _MISS
        #: (func, call_key, route) of the last call of several arguments that found a
        #: serial route: see :meth:`recall`
        self.many: tuple[Any, ...] = _MISS_MANY
        #: the most rows of each kind of call known too small for any backend
        self.fewer = Fewer(size)
        evidence.cache.derived.add(self)  # forgotten with the evidence

    def find(self, func: Any, x: np.ndarray) -> Route | None:
        """The route for ``func`` on inputs like ``x`` (``apply(func, x)``), or None (ask
        the planner): the last hit compared by identity first, then the table."""
        hit = self.last
        if hit[0] is func and hit[1] is x.dtype and hit[2] == x.shape:
            return due(hit[3])
        route = self.find_key(plain_key(func, x))
        if route is not None:
            self.last = (func, x.dtype, x.shape, route)
        return route

    def recall(self, func: Any, x: np.ndarray, arrays: tuple[Any, ...]) -> Route | None:
        """The route of ``apply(func, x, *arrays)`` (along axis 0, no halo, no option)
        when it is the serial route the last such call found (:meth:`remember`):
        ``func`` the same object, and each argument what that call's key holds (see
        :func:`call_key`): for a plain ndarray the same dtype object and shape, for
        anything else the same type. None otherwise (look it up by its key). No key is
        built and no table read: ~0.5 us less on a call of three arrays of 1e3
        (against ~1 us of work). ``x`` is a plain ndarray; the route is not yet
        counted as used (see :func:`due`)."""
        last, key, route = self.many
        if last is not func or len(key) != _SIG + 1 + len(arrays):
            return None
        dtype, shape = key[_SIG]
        if x.dtype is not dtype or x.shape != shape:
            return None
        for i, a in enumerate(arrays, _SIG + 1):  # (by index: ~0.2 us less than zip)
            held = key[i]
            if type(a) is np.ndarray:
                if type(held) is not tuple or a.dtype is not held[0] or a.shape != held[1]:
                    return None
            elif held is not type(a):  # (a type: an ndarray subclass never matches it)
                return None
        return route

    def remember(self, func: Any, key: Hashable, route: Route) -> None:
        """Keep ``route``, just found under ``key``, the :func:`call_key` of
        ``apply(func, x, *arrays)`` along axis 0 with no halo and no option, for
        :meth:`recall`."""
        self.many = (func, key, route)

    def find_key(self, key: Hashable) -> Route | None:
        """The route kept under ``key`` (:func:`plain_key`, :func:`call_key`), or None."""
        try:
            route = self.entries.get(key)
        except TypeError:  # an unhashable callable (or argument type): never routed
            return None
        return None if route is None else due(route)

    def holds(self, key: Hashable) -> bool:
        """Whether a route is kept under ``key``: when :meth:`find_key` (or :meth:`find`)
        gave None for it, that route is due, and the call goes back to the planner,
        not to any other way of running a call with no route."""
        try:
            return key in self.entries
        except TypeError:  # (an unhashable callable: never routed)
            return False

    def settle(self, key: Hashable, route: Route) -> None:
        """Remember ``route`` for the calls kept under ``key``; when it runs calls as the
        route it replaces did, it goes back to the planner half as often."""
        if len(self.entries) >= self.size:
            self.entries = {}  # (what the evidence showed, ``fewer``, is kept)
            self.fewer.once = set()
        with contextlib.suppress(TypeError):  # an unhashable callable: no route
            old = self.entries.get(key)
            if old is not None and old.same(route):
                route.every = route.left = min(2 * old.every, RECHECK_MOST)
                if route.revisit is not None:
                    route.every = route.left = min(route.every, route.revisit)
            self.entries[key] = route
        self.last = _MISS
        self.many = _MISS_MANY

    def forget(self, key: Hashable) -> None:
        """Drop the route kept under ``key`` (the planner decided otherwise)."""
        with contextlib.suppress(TypeError):
            self.entries.pop(key, None)
        self.last = _MISS
        self.many = _MISS_MANY

    def clear(self) -> None:
        self.entries = {}
        self.last = _MISS
        self.many = _MISS_MANY
        self.fewer.clear()


class Fewer:
    """The most rows of each kind of call known too small for any backend to win on a
    machine profile, and the plan that said so (see ``Runner._small_rows``): a call
    of the same kind with no more rows is less work still, so too small too, and
    runs whole without a route, evidence or decision of its own. A kind: x alone,
    its function, dtype and trailing shape; with several arguments, another axis or
    a halo, :func:`call_key` with each array's dimensions, and the call's layout
    (:func:`layout_of`), which a call of other rows must match (:func:`in_layout`).
    Bounded as the routes are; not locked, as they are not."""

    def __init__(self, size: int) -> None:
        self.size = size
        #: kind -> (machine profile, rows, plan, layout or None)
        self.known: dict[Hashable, tuple[Any, int, Any, Any]] = {}
        #: the route keys of the calls run so once (the second settles a route)
        self.once: set[Hashable] = set()

    @staticmethod
    def kind(func: Any, args: tuple[Any, ...], axis: int, overlap: int) -> Hashable | None:
        """What a call's rows are kept under (None: an ndarray subclass)."""
        if len(args) == 1 and axis == 0 and overlap == 0 and type(args[0]) is np.ndarray:
            return Fewer.plain_kind(func, args[0])
        return call_key(func, args, axis, overlap, dims=True)

    @staticmethod
    def plain_kind(func: Any, x: np.ndarray) -> Hashable:
        """:meth:`kind` of ``apply(func, x)``, x a plain ndarray alone along axis 0."""
        return (func_key(func), x.dtype, x.shape[1:])

    def note(self, kind: Hashable, profile: Any, rows: int, plan: Any, layout: Any) -> None:
        """A call of this ``kind`` up to ``rows`` rows is too small on ``profile``."""
        with contextlib.suppress(TypeError):  # (an unhashable callable)
            known = self.known.get(kind)
            if known is None or known[0] is not profile or known[1] < rows:
                if known is None and len(self.known) >= self.size:
                    self.known.clear()
                self.known[kind] = (profile, rows, plan, layout)

    def find(self, kind: Hashable, rows: int, profile: Any) -> tuple[Any, ...] | None:
        """(rows, plan, layout) kept for ``kind``, when a call of ``rows`` rows (two
        at least) is within them on ``profile``; else None."""
        try:
            known = self.known.get(kind)
        except TypeError:  # (an unhashable callable)
            return None
        if known is None or rows > known[1] or rows <= 1 or known[0] is not profile:
            return None
        return known[1:]

    def drop(self, kind: Hashable) -> None:
        """Forget the rows kept for ``kind`` (the planner ran such a call: its figures
        may move them; the next call found too small keeps them again)."""
        with contextlib.suppress(TypeError):
            self.known.pop(kind, None)

    def again(self, key: Hashable) -> bool:
        """Whether a call under route key ``key`` ran so before (then it settles a
        route: its length recurs); notes it otherwise."""
        if key in self.once:
            return True
        self.once.add(key)
        return False

    def clear(self) -> None:
        self.known = {}
        self.once = set()


def layout_of(args: tuple[Any, ...], axes: tuple[int | None, ...]) -> tuple[Any, ...]:
    """A call's layout for :class:`Fewer`: each argument's split axis (None: passed
    whole) and its shape without that axis (None: not an array)."""
    return (
        axes,
        tuple(
            (a.shape if ax is None else a.shape[:ax] + a.shape[ax + 1 :])
            if type(a) is np.ndarray
            else None
            for a, ax in zip(args, axes, strict=True)
        ),
    )


def in_layout(args: tuple[Any, ...], layout: tuple[Any, ...], rows: int) -> bool:
    """Whether ``args`` lie as ``layout`` says, with ``rows`` rows along each split
    axis: then they split as that call's did."""
    axes, shapes = layout
    for a, ax, shape in zip(args, axes, shapes, strict=True):
        if shape is None:
            continue  # (not an array: its type is in the kind)
        got = a.shape
        if ax is None:
            if got != shape:
                return False
        elif got[ax] != rows or got[:ax] + got[ax + 1 :] != shape:
            return False
    return True


def due(route: Route) -> Route | None:
    """``route``, or None once in ``route.every`` calls of a route that is not certain
    (that call goes back to the planner)."""
    if not route.certain:
        route.left -= 1
        if route.left <= 0:
            route.left = route.every
            return None
    return route


def plain_key(func: Any, x: np.ndarray) -> Hashable:
    """What the route of ``apply(func, x)`` (x alone, along axis 0) is kept under."""
    return (func_key(func), x.dtype, x.shape)


def out_key(key: Hashable) -> Hashable:
    """What the route of a call with ``out=`` is kept under, ``key`` being that of the
    same call without (:func:`plain_key`, :func:`call_key`): apart, as its cost
    differs (no output to make)."""
    return ("out", key)


def chunks_key(key: Hashable, chunks: int) -> Hashable:
    """What the route of a call with ``chunks=`` is kept under, ``key`` being that of
    the same call without: apart, with the count (the blocks it runs are the caller's,
    not the model's)."""
    return ("chunks", chunks, key)


def call_key(
    func: Any,
    args: tuple[Any, ...],
    axis: int,
    overlap: int,
    options: tuple[Any, ...] = (),
    dims: bool = False,
) -> Hashable | None:
    """What a route for a call with several arguments, another axis or a halo is kept
    under: the function's code, the axis (counted from 0) and the halo, the options
    (boundary, cval, block_info: ``Inputs.options``, empty when none was given), and
    each argument's dtype and shape (an ndarray) or type (anything else, passed whole).
    None when there can be no route: an ndarray subclass among the arguments (the
    planner's checks must see it every time). (An unhashable callable makes an
    unhashable key: looked up, it finds nothing.) ``dims``: each array's number of
    dimensions in place of its shape (what calls of any length share: the rows
    known too small for any backend, ``Runner._small_many``)."""
    sig: list[Any] = []
    for a in args:
        kind = type(a)
        if kind is np.ndarray:
            sig.append((a.dtype, a.ndim if dims else a.shape))
        elif isinstance(a, np.ndarray):
            return None
        else:
            sig.append(kind)
    if options:
        return (func_key(func), axis, overlap, options, *sig)
    return (func_key(func), axis, overlap, *sig)  # (Routes.recall reads sig from _SIG on)
