"""An apply or reduce call's inputs: which arguments are split, along which axis,
with what halo, and how to cut block a:b out of every one of them.

::

    apply(func, x, y, w, 2.0, axis=1, overlap=1)
        x (C, R, W)  the reference array: split along axis 1, its R rows are the call's
        y (R, W)     split along its own axis 0 (aligned from the right, as NumPy
                     broadcasts it against x)
        w (C, 1, W)  length 1 along the split axis: passed whole, to every block
        2.0          not an array (or a 0-d one): passed whole
        rows a:b ─▶ func(x[:, a-1:b+1], y[a-1:b+1], w, 2.0) ─▶ the result's rows
                    1 : 1+(b-a) along axis 1 (fewer halo rows at the edges)

The same object cuts ndarrays (in-process backends, the caller's head) and the
references that stand for them in another process (ShmRef, FileRef): the
worker resolves them, calls func and trims the result (:meth:`Cut.call`).
A plain call (one array, axis 0, no halo) cuts as it always did: ``x[a:b]``.

``boundary=`` gives the blocks at the array's ends the halo rows that are not
in it, as scipy.ndimage extends an array (``np.pad``'s modes)::

    x rows 0 .. n-1, overlap k, boundary m
    before = np.pad(x, k, m)[:k]       after = np.pad(x, k, m)[-k:]   (k rows each,
                                        made once per call: views of x for "wrap")
    block a:b ─▶ before[a-k:] ++ x[max(0, a-k) : min(n, b+k)] ++ after[:b+k-n]
                 (joined in the worker: only the end blocks are copied)

so every layout, the whole call in one block included, computes ``func`` on the
padded array with the k rows at each end trimmed off.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ._checks import check_boundary, check_cval, check_flag, check_plain

__all__ = ["MODES", "BlockInfo", "Cut", "Edge", "Inputs", "along", "frozen", "make", "told"]

#: boundary= modes, scipy.ndimage's names, and np.pad's name for each
MODES = {
    "reflect": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
    "wrap": "wrap",
    "constant": "constant",
}


def frozen(a: Any) -> Any:
    """A read-only view of an ndarray; anything else unchanged.

    func gets its blocks (and every array argument) read-only on every
    backend: on processes they are copies and a write would be lost, on
    threads and serial they are the caller's memory and a write would land
    in it. Read-only everywhere gives one meaning: a func that writes into
    its input fails the same way on every backend (``b = b.copy()`` first).
    """
    if isinstance(a, np.ndarray):
        # (a view even of a read-only array: reading a.flags to tell costs more than
        # the view, and setflags is cheaper than the flags object, given its argument
        # by position: by keyword, NumPy parses it at 3x the cost; runs on every call)
        v = a.view()
        v.setflags(False)
        return v
    return a


def call_frozen(func: Callable[..., Any], x: np.ndarray, arrays: tuple[Any, ...]) -> Any:
    """``func(x, *arrays)`` on read-only views of them (see :func:`frozen`). Up to
    three arguments are spelled out: unpacking a list of them costs ~0.5 us, as much
    as ``a * b + c`` over 1e3 elements spends computing."""
    k = len(arrays)
    if k == 0:
        return func(frozen(x))
    if k == 1:
        return func(frozen(x), frozen(arrays[0]))
    if k == 2:
        return func(frozen(x), frozen(arrays[0]), frozen(arrays[1]))
    return func(frozen(x), *map(frozen, arrays))


def told(exc: BaseException, where: str) -> str:
    """Where func failed, for ``annotate``; with the reason when it tried to write
    into a read-only block (see :func:`frozen`)."""
    if isinstance(exc, ValueError) and "read-only" in str(exc):
        return (
            f"{where}; numpool gives func its arrays read-only, on every backend, so "
            "that no backend writes into yours: copy first (b = b.copy()) to work in "
            "place, or write results through out="
        )
    return where


def along(a: Any, start: int, stop: int, axis: int) -> Any:
    """Rows start:stop of ``a`` along ``axis``: a view of an ndarray, or the reference
    (ShmRef, FileRef) to those rows of the array a reference points at."""
    if isinstance(a, np.ndarray):
        if axis == 0:
            return a[start:stop]
        return a[(slice(None),) * axis + (slice(start, stop),)]
    step = a.strides[axis] if a.strides else 0
    return a._replace(
        offset=a.offset + start * step,
        shape=(*a.shape[:axis], stop - start, *a.shape[axis + 1 :]),
    )


class BlockInfo(NamedTuple):
    """Where a block sits in ``x``, passed to func as ``block_info=`` when
    ``apply(..., block_info=True)``: the same values on every backend.

    Attributes
    ----------
    rows : slice
        The block's own rows of ``x`` along the split axis (the rows of the
        output it makes), e.g. ``slice(100, 200)``.
    halo : slice
        The rows func is given, own rows and halo. With ``boundary=``, the
        rows made up beyond the array's ends count below 0 and from ``n``
        on: the first block of ``overlap=2`` starts at -2.
    n : int
        ``x``'s length along the split axis.
    axis : int
        The split axis (counted from 0).

    Examples
    --------
    >>> from numpool.stencil import BlockInfo
    >>> info = BlockInfo(slice(0, 4), slice(-2, 6), 10, 0)
    >>> info.own
    slice(2, 6, None)
    """

    rows: slice
    halo: slice
    n: int
    axis: int

    @property
    def own(self) -> slice:
        """The block's own rows within what func is given: ``b[info.own]``."""
        return slice(self.rows.start - self.halo.start, self.rows.stop - self.halo.start)


class Edge(NamedTuple):
    """The rows a block at an end of the array is given beyond it (``boundary=``): per
    argument, the rows to put before and after its own (None: none), along ``axes``."""

    axes: tuple[int | None, ...]
    before: tuple[Any, ...]
    after: tuple[Any, ...]


def _glued(before: Any, a: Any, after: Any, axis: int | None) -> Any:
    """``a`` with the made-up rows before and after it along ``axis``."""
    if axis is None or (before is None and after is None):
        return a
    parts = [p for p in (before, a, after) if p is not None]
    return np.concatenate(parts, axis=axis)


class Cut(NamedTuple):
    """One block as it travels to a worker: the arguments with their halo rows, and
    which rows of func's result to keep (``lo : lo+rows`` along ``axis``). ``edge``:
    rows beyond the array's ends to join on (``boundary=``); ``info``: what func gets
    as ``block_info=`` (None: no such keyword)."""

    args: tuple[Any, ...]
    axis: int
    lo: int
    rows: int
    hi: int
    edge: Edge | None = None
    info: BlockInfo | None = None

    def arrays(self, fn: Callable[[Any], Any]) -> Cut:
        """This cut with ``fn`` applied to every argument and every made-up part."""
        args = tuple(fn(a) for a in self.args)
        edge = self.edge
        if edge is not None:
            edge = edge._replace(
                before=tuple(None if p is None else fn(p) for p in edge.before),
                after=tuple(None if p is None else fn(p) for p in edge.after),
            )
        return self._replace(args=args, edge=edge)

    def glued(self, resolve: Callable[[Any], Any] | None = None) -> tuple[Any, ...]:
        """The block's arguments (resolved), with their made-up rows joined on."""
        cut = self if resolve is None else self.arrays(resolve)
        args = cut.args
        if cut.edge is not None:
            e = cut.edge
            args = tuple(map(_glued, e.before, args, e.after, e.axes))
        return args

    def call(self, func: Callable[..., Any], resolve: Callable[[Any], Any] | None = None) -> Any:
        """``func`` on the block's arguments, its halo rows trimmed off the result."""
        args = self.glued(resolve)
        if self.info is None:
            res = func(*[frozen(a) for a in args])
        else:
            res = func(*[frozen(a) for a in args], block_info=self.info)
        if not (self.lo or self.hi):
            return res
        full = self.lo + self.rows + self.hi
        if (
            not isinstance(res, np.ndarray)
            or res.ndim <= self.axis
            or res.shape[self.axis] != full
        ):
            got = res.shape if isinstance(res, np.ndarray) else type(res).__name__
            raise ValueError(
                f"apply: with overlap=, func must return as many rows as it is given along "
                f"axis {self.axis}: it got {full} (its rows and the halo) and returned {got}. "
                "overlap needs a function whose output row i depends on input rows "
                "i-k..i+k, like a stencil or a filter with mode='same'"
            )
        return along(res, self.lo, self.lo + self.rows, self.axis)


class Inputs:
    """The arrays of one call and how they split (see the module docstring).

    ``n`` rows are the call's own; ``pre`` and ``post`` rows before and after them
    are there too, to be read as halo only (a part of a bigger call). ``axes[i]`` is
    the axis along which argument i is split, None when it is passed whole.
    ``boundary``: the mode of the rows made up beyond the array's ends, ``pads`` those
    rows (k before, k after, per argument); ``info``: func takes ``block_info=``;
    ``origin``, ``total``: where row 0 of this call is in the whole call, and its rows."""

    __slots__ = (
        "args",
        "axes",
        "axis",
        "boundary",
        "cval",
        "info",
        "n",
        "origin",
        "overlap",
        "pads",
        "plain",
        "post",
        "pre",
        "total",
    )

    def __init__(
        self,
        args: tuple[Any, ...],
        axes: tuple[int | None, ...],
        axis: int,
        n: int,
        overlap: int = 0,
        pre: int = 0,
        post: int = 0,
        *,
        boundary: str | None = None,
        cval: Any = None,
        pads: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None,
        info: bool = False,
        origin: int = 0,
        total: int | None = None,
    ) -> None:
        self.args = args
        self.axes = axes
        self.axis = axis
        self.n = n
        self.overlap = overlap
        self.pre = pre
        self.post = post
        self.boundary = boundary
        self.cval = cval
        self.pads = pads
        self.info = info
        self.origin = origin
        self.total = n if total is None else total
        self.plain = len(args) == 1 and axis == 0 and overlap == 0 and axes[0] == 0 and not info

    @classmethod
    def one(cls, x: np.ndarray) -> Inputs:
        """``apply(func, x)``: x split along axis 0."""
        return cls((x,), (0,), 0, x.shape[0])

    @property
    def x(self) -> Any:
        """The reference array (the first argument)."""
        return self.args[0]

    @property
    def options(self) -> tuple[Any, ...]:
        """What boundary= and block_info= add to a route's key (empty when unused)."""
        if self.boundary is None and not self.info:
            return ()
        return ("stencil", self.boundary, self.cval, self.info)

    def arrays(self) -> Iterator[np.ndarray]:
        """The arguments that are arrays with at least one dimension."""
        for a in self.args:
            if isinstance(a, np.ndarray) and a.ndim:
                yield a

    def split_arrays(self) -> Iterator[np.ndarray]:
        for a, ax in zip(self.args, self.axes, strict=True):
            if ax is not None:
                yield a

    @property
    def row_bytes(self) -> int:
        """Bytes per row, summed over the split arrays."""
        return sum(a.nbytes // max(1, a.shape[ax]) for a, ax in self._split())

    def _split(self) -> Iterator[tuple[Any, int]]:
        for a, ax in zip(self.args, self.axes, strict=True):
            if ax is not None:
                yield a, ax

    def key(self) -> Hashable:
        """What an evidence key needs beyond x: the other arguments' classes, the
        axis, the halo (and its boundary, block_info)."""
        if self.plain:
            return None
        others = tuple(
            (a.dtype, a.shape[:ax] + a.shape[ax + 1 :] if ax is not None else a.shape, ax)
            if isinstance(a, np.ndarray)
            else type(a).__qualname__
            for a, ax in zip(self.args[1:], self.axes[1:], strict=True)
        )
        if self.boundary is None and not self.info:
            return (others, self.axis, self.overlap)
        return (others, self.axis, self.overlap, self.boundary, self.info)

    def _span(self, a: int, b: int) -> tuple[int, int, int]:
        """Own rows a:b with their halo: (first physical row, lo, hi)."""
        k = self.overlap
        lo = min(k, self.pre + a)
        hi = min(k, self.post + self.n - b)
        return self.pre + a - lo, lo, hi

    def _edge(self, lo: int, hi: int) -> Edge | None:
        """The made-up rows of a block with ``lo``, ``hi`` real halo rows (boundary=)."""
        k = self.overlap
        if self.pads is None or (lo == k and hi == k):
            return None
        before, after = self.pads
        return Edge(
            self.axes,
            tuple(
                None if p is None or ax is None or lo == k else along(p, lo, k, ax)
                for p, ax in zip(before, self.axes, strict=True)
            ),
            tuple(
                None if p is None or ax is None or hi == k else along(p, 0, k - hi, ax)
                for p, ax in zip(after, self.axes, strict=True)
            ),
        )

    def cut(self, a: int, b: int) -> Cut:
        """Own rows a:b of every split argument, with their halo."""
        start, lo, hi = self._span(a, b)
        stop = start + lo + (b - a) + hi
        args = tuple(
            arg if ax is None else along(arg, start, stop, ax)
            for arg, ax in zip(self.args, self.axes, strict=True)
        )
        edge = self._edge(lo, hi)
        if edge is not None:
            lo = hi = self.overlap
        info = None
        if self.info:
            g = self.origin + a
            info = BlockInfo(
                slice(g, g + b - a), slice(g - lo, g + b - a + hi), self.total, self.axis
            )
        return Cut(args, self.axis, lo, b - a, hi, edge, info)

    def block(self, a: int, b: int) -> Any:
        """What to send a worker for own rows a:b: ``x[a:b]`` for a plain call (as
        ``apply_block`` always took it), else a :class:`Cut`."""
        if self.plain:
            return along(self.args[0], self.pre + a, self.pre + b, 0)
        return self.cut(a, b)

    def call(self, func: Callable[..., Any], a: int, b: int) -> Any:
        """``func`` on own rows a:b (with their halo), trimmed, in this thread."""
        if self.plain:
            return func(frozen(self.args[0][a:b]))
        return self.cut(a, b).call(func)

    def whole(self, func: Callable[..., Any]) -> Any:
        """``func`` on every argument as it is (read-only); with boundary= or block_info=,
        on the whole call as one block (padded, trimmed)."""
        if self.pads is not None or self.info:
            return self.cut(0, self.n).call(func)
        return func(*map(frozen, self.args))

    def _like(self, args: tuple[Any, ...], n: int, pre: int, post: int, origin: int) -> Inputs:
        """This call's geometry and options over other arguments and rows."""
        return Inputs(
            args,
            self.axes,
            self.axis,
            n,
            self.overlap,
            pre,
            post,
            boundary=self.boundary,
            cval=self.cval,
            pads=self.pads,
            info=self.info,
            origin=origin,
            total=self.total,
        )

    def window(self, a: int, b: int) -> Inputs:
        """Own rows a:b as a call of their own, their halo rows around them."""
        if self.plain:
            return Inputs.one(self.args[0][a:b])
        start, lo, hi = self._span(a, b)
        stop = start + lo + (b - a) + hi
        args = tuple(
            arg if ax is None else along(arg, start, stop, ax)
            for arg, ax in zip(self.args, self.axes, strict=True)
        )
        return self._like(args, b - a, lo, hi, self.origin + a)

    def replace(self, args: tuple[Any, ...]) -> Inputs:
        """The same geometry over other arguments (references to these, in a transport)."""
        new = self._like(args, self.n, self.pre, self.post, self.origin)
        new.plain = self.plain
        return new

    def with_pads(self, fn: Callable[[Any], Any]) -> Inputs:
        """This call with ``fn`` applied to each of its made-up rows (``boundary=``): how
        a transport sends them as it sends the arguments (references to shared memory:
        for "wrap", views of x, so a shared x is not copied)."""
        if self.pads is None:
            return self
        new = self._like(self.args, self.n, self.pre, self.post, self.origin)
        new.plain = self.plain
        before, after = self.pads
        new.pads = (
            tuple(None if p is None else fn(p) for p in before),
            tuple(None if p is None else fn(p) for p in after),
        )
        return new

    def out_shape(self, tail: tuple[int, ...]) -> tuple[int, ...]:
        """The output's shape for a result of trailing shape ``tail`` (its shape
        without the split axis)."""
        return (*tail[: self.axis], self.n, *tail[self.axis :])

    def describe(self) -> str:
        """The call's inputs in words, for plans: '3 arrays of 4 arguments, 2 split,
        axis 1, overlap 2, boundary 'reflect', block_info'."""
        parts = []
        if len(self.args) > 1:
            arrays = sum(isinstance(a, np.ndarray) for a in self.args)
            split = sum(ax is not None for ax in self.axes)
            parts.append(
                f"{arrays} array{'s' * (arrays != 1)} of {len(self.args)} arguments, {split} split"
            )
        if self.axis:
            parts.append(f"axis {self.axis}")
        if self.overlap:
            parts.append(f"overlap {self.overlap}")
        if self.boundary is not None:
            cval = f" (cval {self.cval!r})" if self.boundary == "constant" else ""
            parts.append(
                f"boundary {self.boundary!r}{cval}: the {self.overlap} row"
                f"{'s' * (self.overlap != 1)} beyond each end made up, joined to the end "
                "blocks"
            )
        if self.info:
            parts.append("block_info= passed to func")
        return ", ".join(parts)


def tail_of(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """``shape`` without its split axis."""
    return (*shape[:axis], *shape[axis + 1 :])


def pads(a: np.ndarray, axis: int, k: int, mode: str, cval: Any) -> tuple[Any, Any]:
    """The ``k`` rows before and after ``a`` along ``axis`` as scipy.ndimage's ``mode``
    extends it (``np.pad``'s equivalent, which agrees with it for any k, beyond the
    array's length too): views of ``a`` for "wrap", else small new arrays."""
    n = a.shape[axis]
    if mode == "constant":
        shape = (*a.shape[:axis], k, *a.shape[axis + 1 :])
        rows = np.full(shape, cval, dtype=a.dtype)
        return rows, rows
    if mode == "wrap" and k <= n:
        return along(a, n - k, n, axis), along(a, 0, k, axis)
    # the end rows, flipped or repeated (np.pad's Python costs ~20 us a call)
    if mode == "reflect" and k <= n:  # (np.pad's "symmetric")
        return _flipped(a, 0, k, axis), _flipped(a, n - k, n, axis)
    if mode == "mirror" and k < n:  # (np.pad's "reflect")
        return _flipped(a, 1, k + 1, axis), _flipped(a, n - k - 1, n - 1, axis)
    if mode == "nearest" and n:
        first, last = along(a, 0, 1, axis), along(a, n - 1, n, axis)
        return np.repeat(first, k, axis), np.repeat(last, k, axis)
    how: Any = MODES[mode]
    if n > k + 1:  # only the k+1 rows at each end are ever read
        width = [(0, 0)] * a.ndim
        width[axis] = (k, 0)
        before = np.pad(along(a, 0, k + 1, axis), width, mode=how)
        width[axis] = (0, k)
        after = np.pad(along(a, n - k - 1, n, axis), width, mode=how)
        return along(before, 0, k, axis), along(after, k + 1, 2 * k + 1, axis)
    width = [(0, 0)] * a.ndim
    width[axis] = (k, k)
    padded = np.pad(a, width, mode=how)
    return along(padded, 0, k, axis), along(padded, n + k, n + 2 * k, axis)


def _flipped(a: np.ndarray, start: int, stop: int, axis: int) -> np.ndarray:
    """Rows start:stop of ``a`` along ``axis`` in reverse order, as a new array."""
    return np.flip(along(a, start, stop, axis), axis).copy()


def make(
    x: np.ndarray,
    others: tuple[Any, ...],
    axis: int,
    overlap: int,
    where: str,
    boundary: Any = None,
    cval: Any = None,
    block_info: Any = False,
) -> Inputs:
    """Check and build a call's inputs: x (already an ndarray with a dimension) and the
    other arguments; ``axis``, ``overlap``, ``boundary``, ``cval``, ``block_info`` as
    given."""
    inputs = _make(x, others, axis, overlap, where)
    info = check_flag("block_info", block_info, where)
    mode, value = check_boundary(boundary, cval, inputs.overlap, where)
    if mode is None and not info:
        return inputs
    inputs = Inputs(
        inputs.args,
        inputs.axes,
        inputs.axis,
        inputs.n,
        inputs.overlap,
        boundary=mode,
        cval=value,
        info=info,
    )
    if mode is not None and inputs.n:
        split = list(inputs._split())
        if mode == "constant":
            for a, _ in split:
                check_cval(value, a.dtype, where)
        before: list[Any] = [None] * len(inputs.args)
        after: list[Any] = [None] * len(inputs.args)
        for i, (a, ax) in enumerate(zip(inputs.args, inputs.axes, strict=True)):
            if ax is not None:
                before[i], after[i] = pads(a, ax, inputs.overlap, mode, value)
        inputs.pads = tuple(before), tuple(after)
    return inputs


def _make(x: np.ndarray, others: tuple[Any, ...], axis: int, overlap: int, where: str) -> Inputs:
    """:func:`make` without boundary= and block_info=."""
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)):
        raise TypeError(f"{where}: overlap must be an int >= 0, got {overlap!r}")
    if overlap < 0:
        raise ValueError(f"{where}: overlap must be >= 0 rows, got {overlap}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{where}: axis must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"{where}: axis {axis} is out of range for x of shape {x.shape} "
            f"({x.ndim} dimension{'s' * (x.ndim != 1)}: axis must be in "
            f"[{-x.ndim}, {x.ndim - 1}])"
        )
    axis = int(axis) % x.ndim
    if not others:
        if axis == 0 and overlap == 0:
            return Inputs.one(x)
        return Inputs((x,), (axis,), axis, x.shape[axis], int(overlap))
    args: list[Any] = [x]
    aligned: list[int | None] = [axis]
    for i, a in enumerate(others, 2):
        if isinstance(a, np.ndarray):
            check_plain(a, f"argument {i}")
        if not isinstance(a, np.ndarray) or a.ndim == 0:
            args.append(a)
            aligned.append(None)
            continue
        ax = axis + a.ndim - x.ndim  # aligned from the right, as NumPy broadcasts
        args.append(a)
        aligned.append(ax if ax >= 0 else None)
    lengths = {a.shape[ax] for a, ax in zip(args, aligned, strict=True) if ax is not None}
    n = max(lengths - {1}, default=1)
    if len(lengths - {1}) > 1:
        shapes = ", ".join(str(np.shape(a)) for a in args if isinstance(a, np.ndarray))
        raise ValueError(
            f"{where}: the arrays have different lengths along the split axis ({axis} of x): "
            f"shapes {shapes}. Every array must have the same length there, or length 1 "
            "(or fewer dimensions) to be passed whole"
        )
    axes = tuple(
        None if ax is None or (a.shape[ax] == 1 and n != 1) else ax
        for a, ax in zip(args, aligned, strict=True)
    )
    if axes[0] is None:
        raise ValueError(
            f"{where}: x (shape {x.shape}) has length 1 along the split axis while other "
            f"arrays have {n} rows: put an array that is split first"
        )
    return Inputs(tuple(args), axes, axis, n, int(overlap))
