"""The backend conformance suite: every backend gives serial NumPy's bits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import funcs
import numpool
from helpers import assert_same
from strategies import DTYPES, arrays, chunk_counts

SHAPES = [(1000,), (257, 3), (64, 2, 3), (0,), (0, 3), (1,), (1, 4)]


def make(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape) * 100
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    if np.dtype(dtype).kind == "b":
        return a > 0
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("func", [funcs.affine, np.absolute], ids=["affine", "ufunc"])
def test_apply_equals_serial(pool: numpool.Pool, func, shape, dtype) -> None:
    """apply(func, x) == func(x) bit for bit, for every dtype and shape."""
    x = make(shape, dtype)
    assert_same(pool.apply(func, x), func(x))


@pytest.mark.parametrize("layout", ["strided", "fortran", "negative", "column-slice"])
def test_apply_views_and_orders(pool: numpool.Pool, layout: str) -> None:
    """Non-contiguous, Fortran-ordered and reversed inputs give the same bits."""
    base = make((301, 6), np.float64)
    x = {
        "strided": base[::3],
        "fortran": np.asfortranarray(base),
        "negative": base[::-1],
        "column-slice": base[:, 1:4],
    }[layout]
    assert_same(pool.apply(np.sin, x, chunks=7), np.sin(x))
    assert_same(pool.apply(funcs.affine, x, chunks=5), funcs.affine(x))


def test_apply_rowwise_normalisation(pool: numpool.Pool) -> None:
    """A row-wise normalisation and a trailing-shape change work blockwise."""
    x = make((500, 8), np.float64)
    assert_same(pool.apply(funcs.rownorm, x, chunks=9), funcs.rownorm(x))
    assert_same(pool.apply(funcs.rowsum, x, chunks=9), funcs.rowsum(x))


@pytest.mark.parametrize("chunks", [1, 2, 3, 999, 10_000])
def test_apply_chunk_counts(pool: numpool.Pool, chunks: int) -> None:
    """Any chunk count works, including more chunks than rows."""
    x = make((100,), np.float64)
    assert_same(pool.apply(np.exp, x, chunks=chunks), np.exp(x))


@pytest.mark.parametrize("func", [funcs.affine, np.exp], ids=["affine", "ufunc"])
def test_apply_into_out(pool: numpool.Pool, func) -> None:
    """out= receives the result and is returned; a SharedArray out works too."""
    x = make((1000, 2), np.float64)
    out = np.empty_like(x)
    assert pool.apply(func, x, out=out, chunks=4) is out
    assert_same(out, func(x))
    sout = numpool.share(np.zeros_like(x))
    assert pool.apply(func, x, out=sout, chunks=4) is sout
    assert_same(np.asarray(sout), func(x))


def test_apply_in_place(pool: numpool.Pool) -> None:
    """out=x updates x in place."""
    x = make((999,), np.float64)
    want = np.exp(x)
    pool.apply(np.exp, x, out=x, chunks=6)
    assert_same(x, want)


def test_apply_shared_input(pool: numpool.Pool) -> None:
    """A SharedArray input (and a strided view of one) gives the same bits."""
    x = make((400, 3), np.float64)
    sx = numpool.share(x)
    assert_same(np.asarray(pool.apply(np.cos, sx)), np.cos(x))
    assert_same(np.asarray(pool.apply(np.cos, sx[::2, 1:])), np.cos(x[::2, 1:]))


def test_apply_list_input(pool: numpool.Pool) -> None:
    """Array-likes (a list) are accepted like np.asarray would."""
    assert_same(pool.apply(funcs.affine, [1.0, 2.0, 3.0]), funcs.affine(np.array([1.0, 2.0, 3.0])))


@given(x=arrays(), chunks=chunk_counts)
def test_apply_property(pool: numpool.Pool, x: np.ndarray, chunks: int | None) -> None:
    """Property: any shape, dtype, layout and chunk count gives func(x)'s bits."""
    assert_same(pool.apply(funcs.affine, x, chunks=chunks), funcs.affine(x))


@given(
    n=st.integers(0, 40),
    k=st.integers(1, 6),
    chunksize=st.one_of(st.none(), st.integers(1, 9)),
    dtype=st.sampled_from(DTYPES),
)
def test_map_property(pool: numpool.Pool, n: int, k: int, chunksize: int | None, dtype) -> None:
    """Property: map(func, xs, ks) == [func(x, k) ...] for any count and chunksize."""
    xs = [make((k, 3), dtype, seed=i) for i in range(n)]
    ks = list(range(n))
    got = pool.map_arrays(funcs.scale, xs, ks, chunksize=chunksize)
    assert len(got) == n
    for g, x, kk in zip(got, xs, ks, strict=True):
        assert_same(g, funcs.scale(x, kk))


def test_map_matmul_like_experiment_a(pool: numpool.Pool) -> None:
    """The starmap(op, zip(data1, data2)) of experiment A, bit for bit."""
    d1 = [make((60, 60), np.float64, seed=i) for i in range(7)]
    d2 = [make((60, 60), np.float64, seed=100 + i) for i in range(7)]
    for got, a, b in zip(pool.map_arrays(np.matmul, d1, d2), d1, d2, strict=True):
        assert_same(got, np.matmul(a, b))


def test_map_mixed_results_and_repeated_arrays(pool: numpool.Pool) -> None:
    """Non-array results, tuples, the same array in many tasks, SharedArray args."""
    a = make((50, 4), np.float64)
    s = numpool.share(a)
    assert pool.map_arrays(funcs.total, [a] * 5) == [funcs.total(a)] * 5
    got = pool.map_arrays(funcs.pair, [a, s, a[::2]], [s, a, a[1::2]])
    want = [funcs.pair(a, a), funcs.pair(a, a), funcs.pair(a[::2], a[1::2])]
    for (g0, g1), (w0, w1) in zip(got, want, strict=True):
        assert g0 == w0
        assert_same(g1, w1)


def test_map_results_grow(pool: numpool.Pool) -> None:
    """Results bigger than any argument (the slot guess is too small) still come back."""
    small, big = np.arange(3.0), np.arange(300.0)
    got = pool.map_arrays(np.outer, [small, big], [small, big])
    assert_same(got[1], np.outer(np.arange(300.0), np.arange(300.0)))


def test_map_empty_and_object_args(pool: numpool.Pool) -> None:
    """No tasks gives []; object arrays and plain objects are passed as they are."""
    assert pool.map_arrays(funcs.total, []) == []
    obj = np.array([1, 2, 3], dtype=object)
    assert pool.map_arrays(funcs.total, [obj]) == [6.0]


def test_module_level_functions_reuse_pools() -> None:
    """numpool.apply/map create one pool per options and reuse it."""
    from numpool import _api

    x = make((100,), np.float64)
    assert_same(numpool.apply(np.exp, x, backend="processes", workers=2), np.exp(x))
    pool = _api._pools[("processes", 2, None, 0)]
    assert_same(numpool.map(np.negative, [x], backend="processes", workers=2)[0], -x)
    assert _api._pools[("processes", 2, None, 0)] is pool


LAYOUTS = {
    "C": lambda a: a,
    "reversed": lambda a: a[::-1],
    "step 2": lambda a: a[::2],
    "reversed tail": lambda a: a.reshape(-1, 4)[:, ::-1],
    "F": lambda a: np.asfortranarray(a.reshape(-1, 4)),
}


@pytest.mark.parametrize("out_layout", [None, "C", "reversed", "column"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_ufuncs_give_serial_bits_whatever_the_strides(
    pool: numpool.Pool, layout: str, out_layout: str | None
) -> None:
    """NumPy's SIMD loops and its strided ones may give other bits (np.exp over a
    reversed x: 9,100 of 200,000 values): x travels to worker processes with its
    axes' order and direction, and a ufunc writes straight into out only where it
    runs the loop it runs into a new array, so every backend gives ``func(x)``'s
    bits, copied into any out."""
    base = np.random.default_rng(5).random(40_000) * 10
    x = LAYOUTS[layout](base)
    y = LAYOUTS[layout](base[::-1].copy())
    for func, args in ((np.exp, (x,)), (np.sin, (x,)), (np.add, (x, y))):
        want = func(*args)
        out = None
        if out_layout == "C":
            out = np.empty_like(want, order="C")
        elif out_layout == "reversed":
            out = np.empty_like(want)[::-1]
        elif out_layout == "column":
            out = np.empty((*want.shape, 2))[..., 0]
        got = pool.apply(func, *args, out=out)
        assert got is out or out is None
        assert np.array_equal(got, want) and got.tobytes() == want.tobytes()
