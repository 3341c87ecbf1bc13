"""Tiles: ``apply`` over several axes (``axis=(0, 1)``).

The first axis splits ``x`` into blocks that run in parallel, exactly as one
axis does (halo rows, ``boundary=``, zero-copy on processes); within each
block, :class:`Tiled` cuts the other axes into tiles that ``func`` sees one at a
time, each with its own halo, and writes their trimmed results into the
block's result::

    apply(func, img, axis=(0, 1), chunks=(8, 4), overlap=(2, 2), boundary="reflect")
        8 blocks along axis 0, on the workers, each with 2 halo rows
          └─ Tiled(func): in each block, 4 tiles along axis 1, one after the
             other, each with 2 columns of halo (made up at the image's two
             edges by boundary=, as along axis 0)

So ``func`` never sees more than a tile and its halo (its temporaries are a
tile's, not a strip's), and every layout computes ``func`` on the padded
array with the halo trimmed off: the same result as one axis, or a whole
call, for any func whose output depends on inputs within the halo. The
made-up corners come from padding along one axis and then the other, which
is how scipy.ndimage extends an array in every mode.

A tile's block along axis 0 arrives already cut (a view, or in a worker process
the view of shared memory); cutting it along another axis is a view too, so
only the tiles at the array's edges are copied (to join their made-up columns).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._engine import bounds
from ._inputs import Inputs, along, make
from .backends._ship import ship
from .planner.evidence import func_key

__all__ = ["TILE_BYTES", "Tiled", "tiles"]

#: the default tiles of a block are about square, and at least this big: a tile
#: is a call of func, and the first rows auto runs (a block of 2) are one tile
TILE_BYTES = 1 << 20


class Tiled:
    """``func`` over tiles along ``axis`` of each block it is given (see the module
    docstring); equal (and hashed) by func and its tiling, so that what auto learns
    of one call serves the next."""

    __slots__ = ("axis", "boundary", "count", "cval", "func", "info", "overlap", "split")

    def __init__(
        self,
        func: Callable[..., Any],
        axis: int,
        count: int | None,
        overlap: int,
        boundary: str | None,
        cval: Any,
        split: int,
        info: bool = False,
    ) -> None:
        self.func = func
        #: the axis tiles are cut along, how many (None: about square with the
        #: block's extent along ``split``, the axis the blocks were cut along, and
        #: none under TILE_BYTES of x) ...
        self.axis = axis
        self.count = count
        #: ... their halo, and how it is made up beyond the array's edges
        self.overlap = overlap
        self.boundary = boundary
        self.cval = cval
        self.split = split
        #: func takes block_info=: one BlockInfo per axis, the blocks' axis first
        self.info = info

    @property
    def __name__(self) -> str:
        name = getattr(self.func, "__qualname__", None) or type(self.func).__name__
        return f"{name} in tiles along axis {self.axis}"

    def _rest(self) -> tuple[Any, ...]:
        """What a Tiled is made of besides func (its constructor's other arguments)."""
        return (
            self.axis,
            self.count,
            self.overlap,
            self.boundary,
            self.cval,
            self.split,
            self.info,
        )

    def __eq__(self, other: object) -> bool:
        return type(other) is Tiled and (func_key(self.func), *self._rest()) == (
            func_key(other.func),
            *other._rest(),
        )

    def __hash__(self) -> int:
        return hash((func_key(self.func), *self._rest()))

    def __reduce__(self) -> Any:
        # func travels as numpool ships any function (by value from __main__)
        return (Tiled, (ship(self.func), *self._rest()))

    def _cut(self, args: tuple[Any, ...]) -> tuple[Inputs, list[int]]:
        """The block's arguments as a call along the tiles' axis, and the tiles' edges."""
        inputs = make(
            args[0],
            args[1:],
            self.axis,
            self.overlap,
            "apply",
            self.boundary,
            self.cval,
            self.info,
        )
        n = inputs.n
        count = self.count
        if count is None:  # about square, and none smaller than TILE_BYTES
            square = math.ceil(n / max(1, args[0].shape[self.split]))
            count = min(square, math.ceil(args[0].nbytes / TILE_BYTES))
        return inputs, bounds(n, max(1, min(n, count)))

    def _func(self, outer: Any) -> Callable[..., Any]:
        """func for this block's tiles: given, with ``block_info=``, the BlockInfo of
        each axis, the blocks' (``outer``) first and this tile's last."""
        if not self.info:
            return self.func
        before = outer if type(outer) is tuple else (outer,)  # (a BlockInfo is a tuple too)
        func = self.func
        return lambda *a, block_info: func(*a, block_info=(*before, block_info))

    def write_into(
        self,
        out: np.ndarray,
        keep: tuple[int, int] | None,
        *args: Any,
        block_info: Any = None,
    ) -> bool:
        """Each tile's result straight into its part of ``out`` (the block's rows of the
        call's output), rows ``keep[0] : keep[0] + keep[1]`` of it along the blocks'
        axis (the block's halo there trimmed off); no block-sized temporary. False as
        soon as a tile's result does not fit: the caller then runs :meth:`__call__`,
        whose result its usual checks refuse with the usual words."""
        inputs, edges = self._cut(args)
        func = self._func(block_info)
        for a, b in itertools.pairwise(edges):
            res = inputs.cut(a, b).call(func)
            if type(res) is not np.ndarray or res.ndim != out.ndim:
                return False
            if keep is not None:
                res = along(res, keep[0], keep[0] + keep[1], self.split)
            target = along(out, a, b, self.axis)
            if res.shape != target.shape or res.dtype != target.dtype:
                return False
            np.copyto(target, res, casting="no")
        return True

    def __call__(self, *args: Any, block_info: Any = None) -> Any:
        inputs, edges = self._cut(args)
        func = self._func(block_info)
        out: np.ndarray | None = None
        for a, b in itertools.pairwise(edges):
            res = inputs.cut(a, b).call(func)
            if out is None:
                if not isinstance(res, np.ndarray) or res.ndim <= self.axis:
                    got = res.shape if isinstance(res, np.ndarray) else type(res).__name__
                    raise ValueError(
                        f"apply: with tiles, func must return an array with the tiles' "
                        f"axis {self.axis}: it returned {got}"
                    )
                out = np.empty(inputs.out_shape(_tail(res, self.axis)), res.dtype)
            target = along(out, a, b, self.axis)
            if res.shape != target.shape:
                raise ValueError(
                    f"apply: with tiles, func must return as many rows as it is given along "
                    f"each axis: a tile of {b - a} rows along axis {self.axis} gave shape "
                    f"{res.shape}, the others {out.shape}"
                )
            np.copyto(target, res, casting="no")
        if out is None:  # no rows along axis: func on the empty block
            return inputs.whole(func)
        return out


def _tail(a: np.ndarray, axis: int) -> tuple[int, ...]:
    return (*a.shape[:axis], *a.shape[axis + 1 :])


def tiles(
    func: Callable[..., Any],
    ndim: int,
    axis: tuple[Any, ...],
    chunks: Any,
    overlap: Any,
    boundary: str | None,
    cval: Any,
    info: bool = False,
) -> tuple[Callable[..., Any], int, Any, Any, Any, Any]:
    """``apply(..., axis=(a0, a1, ...))`` as a call along ``a0`` of ``func`` in tiles
    along the others: (the tiled func, a0, and along a0: chunks, overlap, boundary,
    cval; an axis without a halo has no boundary to make up).
    ``chunks`` and ``overlap``: one value for every axis, or a tuple of one per axis
    (``chunks`` entries may be None: the default)."""
    if len(axis) < 2:
        raise ValueError(f"apply: axis={axis!r}: name one axis (an int), or two or more for tiles")
    for a in axis:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"apply: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"apply: axis {a} of {axis!r} is out of range for {ndim}-d x")
    axes = tuple(int(a) % ndim for a in axis)
    if len(set(axes)) != len(axes):
        raise ValueError(f"apply: axis={axis!r} names an axis twice")
    counts = _per_axis("chunks", chunks, len(axes), None)
    halos = _per_axis("overlap", overlap, len(axes), 0)
    for c in counts:
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, np.integer))):
            raise TypeError(f"apply: chunks must be ints or None, got {chunks!r}")
        if c is not None and c < 1:
            raise ValueError(f"apply: chunks must be >= 1 per axis, got {chunks!r}")
    for k in halos:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"apply: overlap must be ints >= 0, got {overlap!r}")
    tiled: Callable[..., Any] = func
    for a, c, k in reversed(list(zip(axes[1:], counts[1:], halos[1:], strict=True))):
        count = None if c is None else int(c)
        edge, fill = (boundary, cval) if k else (None, None)
        tiled = Tiled(tiled, a, count, int(k), edge, fill, axes[0], info)
    edge, fill = (boundary, cval) if halos[0] else (None, None)
    return tiled, axes[0], counts[0], halos[0], edge, fill


def _per_axis(name: str, value: Any, n: int, default: Any) -> tuple[Any, ...]:
    """One value per tiled axis: a tuple of n, or one value for all."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(
                f"apply: {name}={value!r} gives {len(value)} values for {n} axes: give one "
                "per axis, or one for all"
            )
        return tuple(value)
    return (default if value is None else value,) * n if name == "overlap" else (value,) * n
