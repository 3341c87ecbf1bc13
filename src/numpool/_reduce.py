"""reduce's rules: its fixed blocks, and the order its partials are combined in.

::

    reduce(func, x, y, combine=np.add)
        blocks(inputs, chunks)  how many blocks: chunks=, else from the input's size
                                and this machine's cores alone (never timing)
        columns(inputs, k)      the k blocks as map's columns: one task per block
                                (the runner plans and runs them like a map)
        fold(combine, parts)    combine(combine(p0, p1), p2)...: block order, left
                                to right, whatever order the blocks finished in

So a result is the same on every run and every backend for the same blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from . import _engine
from ._cpus import default_workers
from ._inputs import Inputs

__all__ = ["blocks", "columns", "fold"]


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


def fold(combine: Any, partials: Sequence[Any]) -> Any:
    """The partials combined left to right, in block order: ``combine(combine(p0, p1),
    p2)...``; tuple partials element by element (with ``combine`` itself, or the
    matching callable of a tuple of them)."""
    acc = partials[0]
    for p in partials[1:]:
        if isinstance(acc, tuple):
            fns = combine if isinstance(combine, tuple) else (combine,) * len(acc)
            if len(fns) != len(acc) or not isinstance(p, tuple) or len(p) != len(acc):
                raise ValueError(
                    f"reduce: func returned tuples of {len(acc)} and "
                    f"{len(p) if isinstance(p, tuple) else type(p).__name__} for two blocks, "
                    f"and combine has {len(fns)} callable(s); they must match"
                )
            acc = tuple(f(u, v) for f, u, v in zip(fns, acc, p, strict=True))
        else:
            acc = combine(acc, p)
    return acc
