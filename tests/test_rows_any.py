"""apply(func, x, rows="any"): blocks whose results have any number of rows, joined.

Every backend runs the same fixed blocks (reduce's: the input's size, chunks=
and the usable cores, never timing), so the result is the blocks' results
concatenated in block order, bit for bit, on every backend; a func whose rows do
not depend on where a block starts (filtering rows) gives func(x) itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpool
import strategies
from conftest import get_pool
from numpool import _engine, _reduce
from numpool._inputs import make


def _blockwise(func: Callable[..., Any], x: np.ndarray, chunks: int | None, axis: int) -> Any:
    """What rows='any' means, written out: func on each fixed block, joined."""
    inputs = make(x, (), axis, 0, "test")
    edges = _engine.bounds(inputs.n, _reduce.blocks(inputs, chunks))
    cut = [(slice(None),) * axis + (slice(a, b),) for a, b in itertools.pairwise(edges)]
    return np.concatenate([func(x[c]) for c in cut], axis=axis)


def _keep_positive(b: np.ndarray) -> np.ndarray:
    flat = b.reshape(b.shape[0], int(np.prod(b.shape[1:])))
    return b[flat.real.sum(axis=1) > 0]


def _every_other(b: np.ndarray) -> np.ndarray:
    return b[::2]


def _block_mean(b: np.ndarray) -> np.ndarray:
    return b.mean(axis=0, keepdims=True) if len(b) else b[:0].astype(np.float64)


FUNCS = [_keep_positive, _every_other, _block_mean]


@pytest.mark.parametrize("func", FUNCS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("chunks", [None, 1, 3, 7])
def test_every_backend_joins_the_same_blocks(
    pool: numpool.Pool, func: Callable[..., Any], chunks: int | None
) -> None:
    """Filtering, downsampling and per-block summaries: the blocks' results joined in
    block order, bit for bit, on every backend."""
    x = np.random.default_rng(3).standard_normal((2_000, 3))
    got = pool.apply(func, x, rows="any", chunks=chunks)
    want = _blockwise(func, x, chunks, 0)
    assert type(got) is np.ndarray and got.dtype == want.dtype
    assert np.array_equal(got, want)
    assert got.flags.writeable and not np.shares_memory(got, x)


def test_a_row_filter_gives_func_of_x(pool: numpool.Pool) -> None:
    """A func whose rows do not depend on where a block starts gives func(x) itself,
    whatever the blocks."""
    x = np.random.default_rng(4).standard_normal(50_000)
    for chunks in (None, 2, 9):
        got = pool.apply(lambda b: b[b > 0.5], x, rows="any", chunks=chunks)
        assert np.array_equal(got, x[x > 0.5])


def test_along_another_axis_and_with_more_arrays() -> None:
    """axis= and more split arrays: the blocks are cut and joined along that axis."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((3, 900)), rng.standard_normal((2, 900))

    def func(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        keep = a[0] + b[1] > 0
        return np.concatenate([a[:, keep], b[:, keep]])

    for name in ("serial", "threads", "processes"):
        got = get_pool(name).apply(func, x, y, axis=1, rows="any", chunks=4)
        keep = x[0] + y[1] > 0
        assert np.array_equal(got, np.concatenate([x[:, keep], y[:, keep]])), name


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    x=strategies.arrays(max_rows=120),
    chunks=st.one_of(st.none(), st.integers(1, 40)),
    func=st.sampled_from(FUNCS),
    backend=st.sampled_from(["serial", "threads", "processes"]),
)
def test_shapes_dtypes_layouts_and_chunk_counts(
    x: np.ndarray, chunks: int | None, func: Callable[..., Any], backend: str
) -> None:
    """Any shape, dtype, memory layout and block count (1-row blocks and empty
    inputs included): the blocks' results joined, bit for bit."""
    if x.ndim == 0:
        return
    got = get_pool(backend).apply(func, x, rows="any", chunks=chunks)
    want = _blockwise(func, x, chunks, 0)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)


def test_plan_says_what_it_does() -> None:
    """plan(..., rows='any') describes the fixed blocks and the join."""
    x = np.ones((1_000, 2))
    plan = numpool.plan(_every_other, x, rows="any", chunks=5)
    assert "rows='any'" in plan.what and "5 fixed blocks" in plan.what


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"out": np.empty((10, 2))}, "out="),
        ({"overlap": 1}, "overlap="),
        ({"overlap": 1, "boundary": "reflect"}, "boundary="),
        ({"block_info": True}, "block_info="),
        ({"check_overlap": True}, "check_overlap="),
        ({"rows": "some"}, "rows must be"),
        ({"rows": None}, "rows must be"),
    ],
)
def test_misuse_is_refused_before_anything_runs(options: dict[str, Any], match: str) -> None:
    """What rows='any' cannot mean, and a rows= that means nothing, are refused."""
    ran: list[int] = []

    def func(b: np.ndarray) -> np.ndarray:
        ran.append(1)
        return b

    options = {"rows": "any", **options}
    with pytest.raises(ValueError, match=match):
        numpool.apply(func, np.ones((10, 2)), **options)
    assert not ran


@pytest.mark.parametrize(
    ("func", "match"),
    [
        (lambda b: float(b.sum()), "ndarray"),
        (lambda b: b.sum(axis=0), "ndarray with the split axis"),  # 1-d x: a 0-d result
        (lambda b: b[:, :1] if b[0, 0] > 0 else b, "differ only in its rows"),
        (lambda b: b.astype(np.float32) if b[0, 0] > 0 else b, "differ only in its rows"),
        (lambda b: np.ma.masked_array(b), "subclass"),
    ],
)
def test_block_results_that_cannot_be_joined(pool: numpool.Pool, func: Any, match: str) -> None:
    """A block result that is not an array with the split axis, or whose other
    dimensions or dtype differ between blocks, is the same clear error everywhere."""
    x = np.ones((100, 2))
    x[50:] = -1
    if "split axis" in match:
        x = np.ones(100)
    with pytest.raises(ValueError, match=match):
        pool.apply(func, x, rows="any", chunks=2)
