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
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ._checks import check_plain

__all__ = ["Cut", "Inputs", "along", "frozen", "make", "told"]


def frozen(a: Any) -> Any:
    """A read-only view of an ndarray; anything else unchanged.

    func gets its blocks (and every array argument) read-only on every
    backend: on processes they are copies and a write would be lost, on
    threads and serial they are the caller's memory and a write would land
    in it. Read-only everywhere gives one meaning: a func that writes into
    its input fails the same way on every backend (``b = b.copy()`` first).
    """
    if isinstance(a, np.ndarray) and a.flags.writeable:
        v = a.view()
        v.flags.writeable = False
        return v
    return a


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


class Cut(NamedTuple):
    """One block as it travels to a worker: the arguments with their halo rows, and
    which rows of func's result to keep (``lo : lo+rows`` along ``axis``)."""

    args: tuple[Any, ...]
    axis: int
    lo: int
    rows: int
    hi: int

    def call(self, func: Callable[..., Any], resolve: Callable[[Any], Any] | None = None) -> Any:
        """``func`` on the block's arguments, its halo rows trimmed off the result."""
        args = self.args if resolve is None else tuple(resolve(a) for a in self.args)
        res = func(*[frozen(a) for a in args])
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
    the axis along which argument i is split, None when it is passed whole."""

    __slots__ = ("args", "axes", "axis", "n", "overlap", "plain", "post", "pre")

    def __init__(
        self,
        args: tuple[Any, ...],
        axes: tuple[int | None, ...],
        axis: int,
        n: int,
        overlap: int = 0,
        pre: int = 0,
        post: int = 0,
    ) -> None:
        self.args = args
        self.axes = axes
        self.axis = axis
        self.n = n
        self.overlap = overlap
        self.pre = pre
        self.post = post
        self.plain = len(args) == 1 and axis == 0 and overlap == 0 and axes[0] == 0

    @classmethod
    def one(cls, x: np.ndarray) -> Inputs:
        """``apply(func, x)``: x split along axis 0."""
        return cls((x,), (0,), 0, x.shape[0])

    @property
    def x(self) -> Any:
        """The reference array (the first argument)."""
        return self.args[0]

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
        axis, the halo."""
        if self.plain:
            return None
        others = tuple(
            (a.dtype, a.shape[:ax] + a.shape[ax + 1 :] if ax is not None else a.shape, ax)
            if isinstance(a, np.ndarray)
            else type(a).__qualname__
            for a, ax in zip(self.args[1:], self.axes[1:], strict=True)
        )
        return (others, self.axis, self.overlap)

    def _span(self, a: int, b: int) -> tuple[int, int, int]:
        """Own rows a:b with their halo: (first physical row, lo, hi)."""
        k = self.overlap
        lo = min(k, self.pre + a)
        hi = min(k, self.post + self.n - b)
        return self.pre + a - lo, lo, hi

    def cut(self, a: int, b: int) -> Cut:
        """Own rows a:b of every split argument, with their halo."""
        start, lo, hi = self._span(a, b)
        stop = start + lo + (b - a) + hi
        args = tuple(
            arg if ax is None else along(arg, start, stop, ax)
            for arg, ax in zip(self.args, self.axes, strict=True)
        )
        return Cut(args, self.axis, lo, b - a, hi)

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
        """``func`` on every argument as it is (read-only)."""
        return func(*[frozen(a) for a in self.args])

    def window(self, a: int, b: int) -> Inputs:
        """Own rows a:b as a call of their own, their halo rows around them."""
        if self.plain:
            return Inputs.one(self.args[0][a:b])
        cut = self.cut(a, b)
        return Inputs(cut.args, self.axes, self.axis, b - a, self.overlap, cut.lo, cut.hi)

    def replace(self, args: tuple[Any, ...]) -> Inputs:
        """The same geometry over other arguments (references to these, in a transport)."""
        new = Inputs(args, self.axes, self.axis, self.n, self.overlap, self.pre, self.post)
        new.plain = self.plain
        return new

    def out_shape(self, tail: tuple[int, ...]) -> tuple[int, ...]:
        """The output's shape for a result of trailing shape ``tail`` (its shape
        without the split axis)."""
        return (*tail[: self.axis], self.n, *tail[self.axis :])

    def describe(self) -> str:
        """The call's inputs in words, for plans: '3 arrays of 4 arguments, 2 split,
        axis 1, overlap 2'."""
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
        return ", ".join(parts)


def tail_of(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """``shape`` without its split axis."""
    return (*shape[:axis], *shape[axis + 1 :])


def make(x: np.ndarray, others: tuple[Any, ...], axis: int, overlap: int, where: str) -> Inputs:
    """Check and build a call's inputs: x (already an ndarray with a dimension) and the
    other arguments; ``axis`` and ``overlap`` as given."""
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
