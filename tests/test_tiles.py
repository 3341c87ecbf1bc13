"""Tiles: apply over several axes (numpool._tiles).

Blocks along the first axis run on the workers; within each, func sees tiles along
the others, each with its own halo made up at the array's edges as scipy.ndimage
does. Checked against ndimage and against func(x), bit for bit, on every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpool
from conftest import get_pool

ndimage = pytest.importorskip("scipy.ndimage")

W = np.random.default_rng(1).random((5, 3))  # (rows, columns): halo (2, 1)
MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]


def _correlate(mode: str, cval: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: ndimage.correlate(t, W, mode=mode, cval=cval)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunks", [None, (3, 4), (1, 6), (7, 1), 2])
def test_tiles_equal_ndimage_bit_for_bit(pool: numpool.Pool, mode: str, chunks: Any) -> None:
    """A 5x3 correlate in tiles, each boundary mode (corners included), every tile
    layout, every backend: ndimage's own result, bit for bit."""
    img = np.random.default_rng(2).random((160, 150))
    got = pool.apply(
        _correlate(mode, 0.5),
        img,
        axis=(0, 1),
        chunks=chunks,
        overlap=(2, 1),
        boundary=mode,
        cval=0.5 if mode == "constant" else None,
    )
    assert np.array_equal(got, ndimage.correlate(img, W, mode=mode, cval=0.5))


def test_func_sees_only_tiles_and_their_halo() -> None:
    """Each call of func gets one tile with its halo, never a whole strip: 3 blocks
    of rows times 4 tiles of columns is 12 calls of at most (rows/3 + 4) x (cols/4 + 2)."""
    seen: list[tuple[int, ...]] = []

    def func(t: np.ndarray) -> np.ndarray:
        seen.append(t.shape)
        return ndimage.correlate(t, W, mode="reflect")

    img = np.random.default_rng(3).random((300, 400))
    got = get_pool("serial").apply(
        func, img, axis=(0, 1), chunks=(3, 4), overlap=(2, 1), boundary="reflect"
    )
    assert np.array_equal(got, ndimage.correlate(img, W, mode="reflect"))
    tiles = [s for s in seen if s[0] > 6]  # (the first 2 rows, with their halo, aside)
    assert len(tiles) == 12
    assert max(s[0] for s in tiles) <= 100 + 4 and max(s[1] for s in tiles) <= 100 + 2


def test_three_axes_and_a_second_array() -> None:
    """Tiles along two of three axes, with a second array split alike."""
    rng = np.random.default_rng(4)
    vol, weight = rng.random((3, 90, 80)), rng.random((3, 90, 80))

    def func(v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(v * w, size=(1, 3, 3), mode="nearest")

    want = func(vol, weight)
    for name in ("serial", "threads", "processes"):
        got = get_pool(name).apply(
            func, vol, weight, axis=(1, 2), chunks=(4, 3), overlap=(1, 1), boundary="nearest"
        )
        assert np.allclose(got, want, rtol=1e-12, atol=0), name  # (uniform: a running sum)


def test_the_default_tiles_are_about_square_and_not_tiny() -> None:
    """chunks=None along a tiled axis: about square tiles, none under TILE_BYTES (the
    first 2 rows auto runs are one tile, not hundreds)."""
    seen: list[tuple[int, ...]] = []

    def func(t: np.ndarray) -> np.ndarray:
        seen.append(t.shape)
        return t * 2

    img = np.ones((4000, 4000))  # 2 blocks of about 2000 x 4000 (64 MB)
    got = get_pool("serial").apply(func, img, axis=(0, 1), chunks=(2, None))
    assert np.array_equal(got, img * 2)
    assert (2, 4000) in seen  # the first rows: one tile
    big = [s for s in seen if s[0] > 2]
    assert len(big) >= 4 and all(s[0] // 2 <= s[1] <= 2 * s[0] for s in big)
    seen.clear()
    small = np.ones((40, 4000))  # blocks of 20 x 4000 (640 kB): one tile each
    got = get_pool("serial").apply(func, small, axis=(0, 1), chunks=(2, None))
    assert seen and all(s[1] == 4000 for s in seen)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    chunks=st.tuples(st.integers(1, 50), st.integers(1, 50)),
    halo=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    mode=st.sampled_from(MODES),
    backend=st.sampled_from(["serial", "threads", "processes"]),
)
def test_any_shape_halo_and_tile_count(
    rows: int,
    cols: int,
    chunks: tuple[int, int],
    halo: tuple[int, int],
    mode: str,
    backend: str,
) -> None:
    """Any shape, halo (larger than a tile, larger than the array) and tile count
    (1-row tiles): ndimage's result, bit for bit."""
    img = np.random.default_rng(rows * 41 + cols).random((rows, cols))
    w = np.ones((2 * halo[0] + 1, 2 * halo[1] + 1))
    w[halo[0], halo[1]] = 3.0

    def func(t: np.ndarray) -> np.ndarray:
        return ndimage.correlate(t, w, mode=mode)

    boundary = mode if any(halo) else None
    got = get_pool(backend).apply(
        func, img, axis=(0, 1), chunks=chunks, overlap=halo, boundary=boundary
    )
    assert np.array_equal(got, ndimage.correlate(img, w, mode=mode))


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"axis": (0,)}, ValueError, "two or more"),
        ({"axis": (0, 0)}, ValueError, "twice"),
        ({"axis": (0, 2)}, ValueError, "out of range"),
        ({"axis": (0, 1.0)}, TypeError, "tuple of ints"),
        ({"axis": (0, 1), "chunks": (2, 2, 2)}, ValueError, "3 values for 2 axes"),
        ({"axis": (0, 1), "overlap": (1, -1)}, ValueError, "overlap must be"),
        ({"axis": (0, 1), "chunks": (2, 0)}, ValueError, "chunks must be"),
        ({"axis": (0, 1), "rows": "any"}, ValueError, "rows='any'"),
        ({"axis": (0, 1), "check_overlap": True}, ValueError, "check_overlap="),
    ],
)
def test_misuse_is_refused(options: dict[str, Any], error: type, match: str) -> None:
    """What tiles cannot mean is a clear error, before func runs."""
    ran: list[int] = []

    def func(t: np.ndarray) -> np.ndarray:
        ran.append(1)
        return t

    with pytest.raises(error, match=match):
        numpool.apply(func, np.ones((20, 20)), **options)
    assert not ran


def _positions(t: np.ndarray, *, block_info: Any) -> np.ndarray:
    """Each element's own (row, column) in x, from the tile's BlockInfo of each axis."""
    rows, cols = block_info
    assert (
        rows.axis == 0
        and cols.axis == 1
        and t.shape
        == (
            rows.halo.stop - rows.halo.start,
            cols.halo.stop - cols.halo.start,
        )
    )
    r = np.arange(rows.halo.start, rows.halo.stop)[:, None]
    c = np.arange(cols.halo.start, cols.halo.stop)[None, :]
    return (r * 1000 + c + 0 * t).astype(np.int64)


@pytest.mark.parametrize("chunks", [(3, 4), (1, 1), (5, None)])
def test_block_info_gives_each_tile_its_place_on_each_axis(
    pool: numpool.Pool, chunks: Any
) -> None:
    """block_info=True with tiles: func gets one BlockInfo per axis (the blocks' axis
    first) with the tile's rows and halo in x, made-up rows below 0 and past n, on
    every backend: every element knows where it is."""
    img = np.zeros((90, 70))
    got = pool.apply(
        _positions,
        img,
        axis=(0, 1),
        chunks=chunks,
        overlap=(2, 1),
        boundary="wrap",
        block_info=True,
    )
    r, c = np.indices(img.shape)
    assert np.array_equal(got, r * 1000 + c)


def test_a_tile_that_changes_shape_is_refused(pool: numpool.Pool) -> None:
    """func must return as many rows as a tile has along each axis, on every backend."""
    with pytest.raises(ValueError, match="as many rows"):
        pool.apply(lambda t: t[:, :-1], np.ones((40, 40)), axis=(0, 1), chunks=(2, 2))


def test_plan_names_the_tiles() -> None:
    """plan() with tiles says func runs in tiles along the other axis."""
    plan = numpool.plan(lambda t: t * 2, np.ones((400, 400)), axis=(0, 1))
    assert "tiles along axis 1" in plan.what
