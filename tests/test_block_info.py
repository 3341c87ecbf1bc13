"""block_info=True: func is told where its block sits in x, on every backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import numpool
from numpool.stencil import BlockInfo


def where(b: np.ndarray, *, block_info: BlockInfo) -> np.ndarray:
    """Per row given: its row of x (from info.halo), and the block's rows and n."""
    info = block_info  # (no assert here: pytest rewrites them, and workers import this)
    if not isinstance(info, BlockInfo) or b.shape[info.axis] != info.halo.stop - info.halo.start:
        raise ValueError(f"wrong block_info {info!r} for a block of shape {b.shape}")
    rows = np.arange(info.halo.start, info.halo.stop, dtype=np.int64)
    out = np.empty((len(rows), 5), np.int64)
    out[:, 0] = rows
    out[:, 1] = info.rows.start
    out[:, 2] = info.rows.stop
    out[:, 3] = info.n
    out[:, 4] = b[:, 0].astype(np.int64) if info.axis == 0 else 0
    return out


def check_layout(got: np.ndarray, n: int) -> None:
    """Each output row i came from a block that owns row i, and knew x's length."""
    assert got.shape == (n, 5)
    assert (got[:, 0] == np.arange(n)).all()
    assert ((got[:, 1] <= np.arange(n)) & (np.arange(n) < got[:, 2])).all()
    assert (got[:, 3] == n).all()
    # the blocks tile 0:n: each block's rows end where the next one's start
    starts, stops = np.unique(got[:, 1]), np.unique(got[:, 2])
    assert starts[0] == 0 and stops[-1] == n
    assert (starts[1:] == stops[:-1]).all()


@pytest.mark.parametrize("chunks", [None, 1, 3, 50])
@pytest.mark.parametrize("overlap", [0, 2])
def test_positions_on_every_backend(pool: numpool.Pool, chunks: int | None, overlap: int) -> None:
    """rows, halo and n say where each block is, with and without a halo."""
    n = 50
    x = np.arange(n, dtype=np.float64)[:, None] * np.ones((1, 3))
    got = pool.apply(where, x, block_info=True, overlap=overlap, chunks=chunks)
    check_layout(got, n)
    assert (got[:, 4] == np.arange(n)).all()  # the rows given are x's rows


def test_halo_reaches_beyond_the_ends_with_boundary(pool: numpool.Pool) -> None:
    """With boundary=, halo counts the made-up rows below 0 and from n on: every block,
    the end ones too, is given k rows on each side."""
    n, k = 20, 3

    def f(b: np.ndarray, *, block_info: BlockInfo) -> np.ndarray:
        h, rows = block_info.halo, block_info.rows
        if b.shape[0] != h.stop - h.start:
            raise ValueError(f"{block_info} for {b.shape[0]} rows")
        r = np.zeros(b.shape)
        r[block_info.own] = [h.start - rows.start, h.stop - rows.stop]
        return r

    got = pool.apply(f, np.ones((n, 2)), overlap=k, boundary="wrap", block_info=True, chunks=4)
    assert (got[:, 0] == -k).all() and (got[:, 1] == k).all()


def test_whole_call_is_one_block() -> None:
    """A call run whole (serial) gets one BlockInfo covering every row."""
    infos: list[BlockInfo] = []

    def f(b: np.ndarray, *, block_info: BlockInfo) -> np.ndarray:
        infos.append(block_info)
        return b.copy()

    numpool.apply(
        f, np.ones((30, 2)), overlap=2, boundary="reflect", block_info=True, backend="serial"
    )
    assert infos == [BlockInfo(slice(0, 30), slice(-2, 32), 30, 0)]
    assert infos[0].own == slice(2, 32)
    infos.clear()
    numpool.apply(f, np.ones((3, 30)), axis=1, block_info=True, backend="serial")
    assert infos == [BlockInfo(slice(0, 30), slice(0, 30), 30, 1)]


def test_other_axis_and_arrays() -> None:
    """Along axis 1 with a second array, info.axis is 1 and rows count along it."""
    x = np.ones((2, 40))
    y = np.arange(40.0)

    def f(a: np.ndarray, b: np.ndarray, *, block_info: BlockInfo) -> np.ndarray:
        assert block_info.axis == 1 and a.shape[1] == b.shape[0]
        return a * np.arange(block_info.halo.start, block_info.halo.stop)

    got = numpool.apply(f, x, y, axis=1, overlap=1, block_info=True, chunks=5, backend="threads")
    assert (got == np.arange(40.0)).all()


def test_kwargs_func_accepted() -> None:
    """A func with **kwargs takes block_info too."""

    def f(b: np.ndarray, **kw: Any) -> np.ndarray:
        return b + kw["block_info"].rows.start * 0

    assert (numpool.apply(f, np.ones(100), block_info=True, chunks=3) == 1).all()


def test_default_passes_nothing() -> None:
    """Without block_info=True, func gets no keyword (a func that takes none runs)."""
    assert (numpool.apply(lambda b: b * 2, np.ones(10), overlap=1, chunks=3) == 2).all()


@pytest.mark.parametrize("func", [np.exp, lambda b: b, abs])
def test_func_without_the_keyword_is_refused(func: Any) -> None:
    """block_info=True with a func that takes no block_info keyword: a TypeError up
    front, saying how to write one."""
    with pytest.raises(TypeError, match="takes no block_info keyword"):
        numpool.apply(func, np.ones(10), block_info=True)
    with pytest.raises(TypeError, match="takes no block_info keyword"):
        numpool.plan(func, np.ones(10), block_info=True)


def test_plan_explains_block_info() -> None:
    """plan().explain() says func is given block_info."""
    text = numpool.plan(where, np.ones((100, 3)), block_info=True).explain()
    assert "block_info" in text


def test_block_info_pickles() -> None:
    """A BlockInfo survives pickling (it travels to worker processes)."""
    import pickle

    info = BlockInfo(slice(2, 5), slice(0, 7), 9, 0)
    assert pickle.loads(pickle.dumps(info)) == info
    assert info.own == slice(2, 5)
