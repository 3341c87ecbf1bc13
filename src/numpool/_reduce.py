"""reduce's rules: its fixed blocks, and the order its partials are combined in.

::

    reduce(func, x, y, combine=np.add)
        blocks(inputs, chunks)  how many blocks: chunks=, else from the input's size
                                and this machine's cores alone (never timing)
        columns(inputs, k)      the k blocks as map's columns: one task per block
                                (the runner plans and runs them like a map)
        finish(func, inputs, combine, parts)
          check_partials        every partial of one fixed shape, not the block's
          fold(combine, parts)  combine(combine(p0, p1), p2)...: block order, left
                                to right, whatever order the blocks finished in;
                                combine must keep its inputs' shape

``apply(func, x, rows="any")`` runs the same fixed blocks and joins their
results along the split axis (:func:`joined`): one copy, whatever the rows.

So a result is the same on every run and every backend for the same blocks, and
a func that does not reduce (``lambda b: b``: elementwise work, apply's job) or
a combine that gathers (np.concatenate) is the same clear error everywhere: the
partials are checked in the caller, after they came back, whatever ran them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _engine
from ._cpus import default_workers
from ._inputs import Inputs

__all__ = ["blocks", "check_partials", "columns", "finish", "fold", "joined"]


#: reduce's default block: at least about this many bytes of the split arrays (a
#: block's hand-off to a worker costs tens of microseconds: measured on 2 cores,
#: np.exp(x).sum() over 80 MB ran 2.0x serial's speed in 1.25 MB blocks, 2.2-2.5x
#: in 2.5 MB ones, 3x in 10 MB ones) ...
REDUCE_BLOCK_BYTES = 2 << 20
#: ... and at most this many blocks, or 16 per usable core if that is more: the
#: memory a reduce allocates at once is about workers / blocks of x (a block's
#: temporaries on each worker), 1/16 of it at most once the cap binds
REDUCE_MAX_BLOCKS = 32


def blocks(inputs: Inputs, chunks: int | None) -> int:
    """How many blocks a reduce splits its rows into: ``chunks``, else from the input's
    size and this machine's usable cores alone (never from timing, so that the
    partials, and the rounding of their sum, are the same on every run and backend)."""
    n = inputs.n
    if chunks is None:
        nbytes = sum(a.nbytes for a in inputs.split_arrays())
        cap = max(REDUCE_MAX_BLOCKS, 16 * default_workers())
        chunks = min(cap, max(1, -(-nbytes // REDUCE_BLOCK_BYTES)))
    return max(1, min(n, chunks))


def columns(inputs: Inputs, blocks: int) -> list[list[Any]]:
    """reduce's blocks as map's columns: one task per block, one column per argument
    (an argument passed whole is the same object in every task: staged once)."""
    edges = _engine.bounds(inputs.n, blocks)
    cuts = [inputs.cut(a, b).args for a, b in itertools.pairwise(edges)]
    return [list(c) for c in zip(*cuts, strict=True)]


def finish(func: Callable[..., Any], inputs: Inputs, combine: Any, partials: Sequence[Any]) -> Any:
    """A reduce's result from its blocks' partials, in block order: checked
    (:func:`check_partials`), then folded (:func:`fold`)."""
    check_partials(func, inputs, partials)
    return fold(combine, partials)


def _shapes(p: Any) -> tuple[tuple[int, ...] | None, ...]:
    """The shape of each array in a partial (a tuple partial: of each element), None
    where it is not an array (a Python scalar, a dict...: nothing to check)."""
    parts = p if isinstance(p, tuple) else (p,)
    return tuple(np.shape(v) if isinstance(v, (np.ndarray, np.generic)) else None for v in parts)


def check_partials(func: Callable[..., Any], inputs: Inputs, partials: Sequence[Any]) -> None:
    """Refuse partials whose shape depends on the block: ``func`` must reduce every
    block to a value of one fixed shape, or combining them means nothing.

    Blocks of different lengths show it at once (their partials' shapes differ).
    When every block has the same length and a partial has that length in its shape,
    the partials alone cannot tell ``lambda b: b`` from a Gram matrix ``b.T @ b`` of
    as many rows as columns: ``func`` then runs once more, in the caller, on a
    block of another length (one row, or two), and its shape decides; a probe that
    raises decides nothing (the call goes on)."""
    edges = _engine.bounds(inputs.n, len(partials))
    if inputs.n == 0 or not partials:
        return
    shapes = [_shapes(p) for p in partials]
    tupled = isinstance(partials[0], tuple)
    lengths = [b - a for a, b in itertools.pairwise(edges)]
    for i in range(1, len(partials)):
        for k, (s0, s) in enumerate(zip(shapes[0], shapes[i], strict=False)):
            if s0 is not None and s is not None and s0 != s:
                where = (edges[i], edges[i + 1])
                _refuse(k if tupled else None, s0, (edges[0], edges[1]), s, where)
    rows = lengths[0]
    if any(n != rows for n in lengths) or inputs.n < 2:
        return
    if not any(s is not None and rows in s for s in shapes[0]):
        return
    m = 1 if rows > 1 else 2
    try:
        probe = _shapes(inputs.cut(0, m).call(func))
    except Exception:
        return
    for k, (s0, s) in enumerate(zip(shapes[0], probe, strict=False)):
        if s0 is not None and s0 != s:
            _refuse(k if tupled else None, s0, (edges[0], edges[1]), s, (0, m))


def _refuse(
    k: int | None,
    s0: tuple[int, ...],
    rows0: tuple[int, int],
    s: tuple[int, ...] | None,
    rows: tuple[int, int],
) -> None:
    """Raise reduce's error for a partial (element ``k`` of a tuple) that follows its block."""
    where = "" if k is None else f"element {k} of "
    got = f"shape {s}" if s is not None else "no array"
    raise ValueError(
        f"reduce: func must reduce each block to a value of fixed shape, but {where}what "
        f"it returned has shape {s0} for rows {rows0[0]}:{rows0[1]} and {got} for rows "
        f"{rows[0]}:{rows[1]}: it follows the block, so the blocks' results cannot be "
        "combined into the answer. reduce's func returns the same shape for every block "
        "(like np.sum, lambda b: b.sum(axis=0), np.histogram's counts with fixed bins, or "
        "a tuple of them); for elementwise work, a row out per row in, use numpool.apply"
    )


def fold(combine: Any, partials: Sequence[Any]) -> Any:
    """The partials combined left to right, in block order: ``combine(combine(p0, p1),
    p2)...``; tuple partials element by element (with ``combine`` itself, or the
    matching callable of a tuple of them). A combine must return its inputs' shape
    when they have one shape: one that gathers (np.concatenate) or reshapes is refused."""
    acc = partials[0]
    for i, p in enumerate(partials[1:], 1):
        if isinstance(acc, tuple):
            fns = combine if isinstance(combine, tuple) else (combine,) * len(acc)
            if len(fns) != len(acc) or not isinstance(p, tuple) or len(p) != len(acc):
                raise ValueError(
                    f"reduce: func returned tuples of {len(acc)} and "
                    f"{len(p) if isinstance(p, tuple) else type(p).__name__} for two blocks, "
                    f"and combine has {len(fns)} callable(s); they must match"
                )
            acc = tuple(
                _combine(f, u, v, i, k)
                for k, (f, u, v) in enumerate(zip(fns, acc, p, strict=True))
            )
        else:
            acc = _combine(combine, acc, p, i, None)
    return acc


def _combine(f: Callable[[Any, Any], Any], u: Any, v: Any, i: int, k: int | None) -> Any:
    """``f(u, v)``, refused when ``u`` and ``v`` are arrays of one shape and it is not."""
    res = f(u, v)
    arrays = (np.ndarray, np.generic)
    same = isinstance(u, arrays) and isinstance(v, arrays) and np.shape(u) == np.shape(v)
    if same and np.shape(res) != np.shape(u):
        which = "combine" if k is None else f"combine (element {k} of the tuples)"
        before = "block 0" if i == 1 else f"blocks 0..{i - 1}"
        raise ValueError(
            f"reduce: {which} turned two partials of shape {np.shape(u)} ({before} and "
            f"block {i}) into one of shape {np.shape(res)}; combine must return a value of "
            "its inputs' shape (like np.add, np.maximum or np.logical_or), or the result "
            "would depend on how many blocks there are. To collect every block's result "
            "instead, use numpool.map over the blocks"
        )
    return res


def joined(func: Callable[..., Any], inputs: Inputs, parts: Sequence[Any]) -> np.ndarray:
    """``apply(func, x, rows="any")``'s result: the blocks' results, each an array
    of any rows along the split axis and the same other dimensions and dtype,
    concatenated in block order (one copy)."""
    axis = inputs.axis
    first = parts[0]
    for i, p in enumerate(parts):
        if type(p) is not np.ndarray or p.ndim <= axis:
            got = f"a {p.ndim}-d array" if isinstance(p, np.ndarray) else type(p).__name__
            if isinstance(p, np.ndarray) and type(p) is not np.ndarray:
                got = f"a {type(p).__name__} (an ndarray subclass)"
            raise ValueError(
                f"apply: with rows='any', func must return an ndarray with the split "
                f"axis {axis} for every block; block {i} of {len(parts)} gave {got}"
            )
        if (p.dtype, _tail(p, axis)) != (first.dtype, _tail(first, axis)):
            raise ValueError(
                f"apply: with rows='any', every block's result must differ only in its "
                f"rows along axis {axis}: block 0 gave {first.dtype} {first.shape}, "
                f"block {i} gave {p.dtype} {p.shape}"
            )
    return np.concatenate(parts, axis=axis)


def _tail(a: np.ndarray, axis: int) -> tuple[int, ...]:
    return (*a.shape[:axis], *a.shape[axis + 1 :])
