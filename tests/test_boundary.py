"""boundary=: scipy.ndimage's edge modes through apply(..., overlap=k), bit for bit on
every backend and every block layout; check_overlap=, halo(), and every misuse."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

import numpool
from helpers import assert_same
from numpool._routes import call_key
from numpool.stencil import OverlapWarning, halo

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]


def image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


WEIGHTS = np.random.default_rng(7).standard_normal((5, 5))


def correlate(mode: str, cval: float = 0.0):
    """A 5x5 correlation with ndimage's ``mode`` (reads 2 rows on each side)."""
    return lambda b: ndimage.correlate(b, WEIGHTS, mode=mode, cval=cval)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunks", [1, 2, 7, 77])
def test_correlate_equals_ndimage(pool: numpool.Pool, mode: str, chunks: int) -> None:
    """A 5x5 correlate through apply with boundary=mode is ndimage's, bit for bit."""
    img = image((77, 31))
    cval = 1.25 if mode == "constant" else None
    got = pool.apply(
        correlate(mode, cval or 0.0), img, overlap=2, boundary=mode, cval=cval, chunks=chunks
    )
    assert_same(got, correlate(mode, cval or 0.0)(img))


@pytest.mark.parametrize("mode", MODES)
def test_without_boundary_only_wrap_needs_it(mode: str) -> None:
    """Without boundary=, the end blocks get only real rows and func's own mode acts at
    the array's true ends: right for every mode but wrap, whose rows come from the
    other end (the issue's 'gives 24 wrong rows'): what boundary='wrap' fixes."""
    img = image((60, 20))
    f = correlate(mode, 3.0)
    got = numpool.apply(f, img, overlap=2, chunks=4, backend="threads")
    bad = set(np.flatnonzero((got != f(img)).any(axis=1)))
    assert bad == ({0, 1, 58, 59} if mode == "wrap" else set())


@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 5),
    k=st.integers(1, 50),
    chunks=st.integers(1, 45),
    mode=st.sampled_from(MODES),
    axis=st.integers(0, 1),
)
def test_any_shape_overlap_and_blocks(
    pool: numpool.Pool, rows: int, cols: int, k: int, chunks: int, mode: str, axis: int
) -> None:
    """Any shape, any overlap (beyond a block and beyond the array too: ndimage extends
    it again and again) and any block count, 1-row blocks included, on every backend."""
    img = image((rows, cols) if axis == 0 else (cols, rows), seed=rows * 97 + k)
    w = np.random.default_rng(k).standard_normal(2 * k + 1)

    def f(b: np.ndarray) -> np.ndarray:
        return ndimage.correlate1d(b, w, axis=axis, mode=mode, cval=-2.5)

    cval = -2.5 if mode == "constant" else None
    got = pool.apply(f, img, overlap=k, boundary=mode, cval=cval, chunks=chunks, axis=axis)
    assert_same(got, f(img))


@given(
    rows=st.integers(1, 12),
    k=st.integers(1, 15),
    mode=st.sampled_from(MODES),
    axis=st.integers(0, 2),
    dtype=st.sampled_from([np.float64, np.float32, np.int16, np.complex128]),
)
def test_the_made_up_rows_are_np_pads(
    rows: int, k: int, mode: str, axis: int, dtype: type
) -> None:
    """The k rows made up before and after an array (``_inputs.pads``: the end rows
    flipped or repeated where they suffice) are np.pad's, bits and dtype, for any
    length, any k (beyond the array too) and any axis; new arrays, never writing into
    the caller's, except "wrap"'s views of it."""
    from numpool._inputs import MODES as NP_MODES
    from numpool._inputs import along, pads

    shape = [2, 3, 2]
    shape[axis] = rows
    a = (np.arange(np.prod(shape)) * 7 % 11 - 3).reshape(shape).astype(dtype)
    before, after = pads(a, axis, k, mode, 4)
    width = [(0, 0)] * 3
    width[axis] = (k, k)
    extra = {"constant_values": 4} if mode == "constant" else {}
    want = np.pad(a, width, mode=NP_MODES[mode], **extra)  # type: ignore[call-overload]
    for got, start in ((before, 0), (after, rows + k)):
        expected = along(want, start, start + k, axis)
        assert got.dtype == a.dtype and got.tobytes() == expected.tobytes()
        assert got.shape == expected.shape
        assert mode == "wrap" or not np.shares_memory(got, a)


FILTERS = {
    "convolve": (lambda b, m: ndimage.convolve(b, WEIGHTS, mode=m), 2),
    "gaussian": (lambda b, m: ndimage.gaussian_filter(b, 1.3, mode=m), halo(sigma=1.3)),
    "median": (lambda b, m: ndimage.median_filter(b, 5, mode=m), 2),
    "minimum": (lambda b, m: ndimage.minimum_filter(b, (3, 5), mode=m), 1),
    "maximum": (lambda b, m: ndimage.maximum_filter(b, 4, mode=m), 2),
    "generic": (lambda b, m: ndimage.generic_filter(b, np.ptp, 3, mode=m), 1),
    "sobel": (lambda b, m: ndimage.sobel(b, axis=0, mode=m), 1),
    "prewitt": (lambda b, m: ndimage.prewitt(b, axis=1, mode=m), 1),
    "laplace": (lambda b, m: ndimage.laplace(b, mode=m), 1),
    "rank": (lambda b, m: ndimage.rank_filter(b, 3, 3, mode=m), 1),
    "percentile": (lambda b, m: ndimage.percentile_filter(b, 30, (5, 3), mode=m), 2),
    "convolve1d": (lambda b, m: ndimage.convolve1d(b, WEIGHTS[0], axis=0, mode=m), 2),
}


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("mode", MODES)
def test_filters_bit_exact(name: str, mode: str) -> None:
    """scipy.ndimage filters that compute each output row from its own window are exact."""
    f, k = FILTERS[name]
    img = image((53, 17), seed=3)
    got = numpool.apply(
        lambda b: f(b, mode), img, overlap=k, boundary=mode, chunks=6, backend="threads"
    )
    assert_same(got, f(img, mode))


@pytest.mark.parametrize("mode", MODES)
def test_uniform_filter_is_close_not_exact(mode: str) -> None:
    """uniform_filter keeps a running sum along each line, so along the split axis its
    last bits depend on where a block starts: equal to 1e-12, not bit for bit (along
    the other axes it is exact)."""
    img = image((300, 40), seed=4)

    def f(b: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(b, 5, mode=mode)

    got = numpool.apply(f, img, overlap=2, boundary=mode, chunks=7, backend="threads")
    np.testing.assert_allclose(got, f(img), rtol=1e-12, atol=1e-13)

    def across(b: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter1d(b, 5, axis=1, mode=mode)

    exact = numpool.apply(across, img, overlap=2, boundary=mode, chunks=7, backend="threads")
    assert_same(exact, across(img))


def test_several_arrays_and_dtypes() -> None:
    """Every split array gets its made-up rows (in its own dtype); whole ones none."""
    x = np.arange(40, dtype=np.int32).reshape(20, 2)
    y = np.arange(20, dtype=np.float32)[:, None] * 0.5
    scale = np.array([[2, 3]], dtype=np.int32)

    def f(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
        up = np.pad(a, ((1, 1), (0, 0)), mode="constant", constant_values=7)
        low = np.pad(b, ((1, 1), (0, 0)), mode="constant", constant_values=7)
        return (up[:-2] * s + low[2:]).astype(np.float64)

    got = numpool.apply(f, x, y, scale, overlap=1, boundary="constant", cval=7, chunks=5)
    xs = np.pad(x, ((1, 1), (0, 0)), constant_values=7)
    ys = np.pad(y, ((1, 1), (0, 0)), constant_values=7)
    assert_same(got, f(xs, ys, scale)[1:-1])


def test_whole_call_is_padded_too() -> None:
    """A call run whole in the caller gives the same as any split: func on the padded
    array, trimmed (a func whose own mode differs shows it)."""
    img = image((30, 6))

    def f(b: np.ndarray) -> np.ndarray:  # constant 0 outside, whatever apply adds
        return ndimage.correlate(b, WEIGHTS, mode="constant")

    want = f(np.pad(img, ((2, 2), (0, 0)), mode="symmetric"))[2:-2]
    for chunks in (None, 1, 5):
        for backend in ("serial", "threads"):
            got = numpool.apply(
                f, img, overlap=2, boundary="reflect", chunks=chunks, backend=backend
            )
            assert_same(got, want)


def test_wrap_shared_array_on_processes() -> None:
    """wrap on processes from a SharedArray: the far end's rows arrive, the result is
    ndimage's."""
    with numpool.Pool("processes", workers=2) as pool:
        img = numpool.share(image((64, 16), seed=5))
        got = pool.apply(correlate("wrap"), img, overlap=2, boundary="wrap", chunks=4)
        assert_same(np.asarray(got), correlate("wrap")(np.asarray(img)))
        del img, got


def test_routes_keep_options_apart() -> None:
    """A settled decision is kept under the options too: repeated calls that differ only
    in boundary/cval/block_info each give their own result (auto's fast path)."""
    img = image((200, 20))
    f = correlate("constant", 0.0)
    g = correlate("constant", 5.0)
    for _ in range(6):
        assert_same(numpool.apply(f, img, overlap=2), f(img))
        assert_same(numpool.apply(f, img, overlap=2, boundary="constant"), f(img))
        assert_same(numpool.apply(g, img, overlap=2, boundary="constant", cval=5.0), g(img))
    args = (img,)
    plain = call_key(f, args, 0, 2)
    assert plain != call_key(f, args, 0, 2, ("stencil", "reflect", None, False))
    assert call_key(f, args, 0, 2, ("stencil", "constant", 0.0, False)) != call_key(
        f, args, 0, 2, ("stencil", "constant", 5.0, False)
    )


def test_plan_explains_boundary() -> None:
    """plan().explain() says how the ends are made up."""
    img = image((100, 10))
    text = numpool.plan(correlate("wrap"), img, overlap=2, boundary="wrap").explain()
    assert "boundary 'wrap'" in text
    text = numpool.plan(correlate("constant"), img, overlap=2, boundary="constant", cval=1.0)
    assert "cval 1.0" in text.explain()


# --- check_overlap= and halo() -------------------------------------------------------------


def test_check_overlap_warns_and_names_the_overlap() -> None:
    """A 5x5 filter given overlap=1: the warning says overlap=2 makes it agree."""
    img = image((300, 20))
    with pytest.warns(OverlapWarning, match="overlap=2 makes them agree") as caught:
        numpool.apply(correlate("reflect"), img, overlap=1, boundary="reflect", check_overlap=True)
    with pytest.warns(OverlapWarning) as caught_pool, numpool.Pool("threads", workers=2) as p:
        p.apply(correlate("reflect"), img, overlap=1, boundary="reflect", check_overlap=True)
    # (the warning points at the caller's line, on either path)
    assert [w.filename for w in (*caught, *caught_pool)] == [__file__, __file__]


def test_check_overlap_finds_a_wide_halo() -> None:
    """A filter reading 9 rows each side, overlap=0: overlap=9 is named."""
    img = image((400, 5))
    w = np.ones(19)
    with pytest.warns(OverlapWarning, match="overlap=9 makes"):
        numpool.apply(lambda b: ndimage.correlate1d(b, w, axis=0), img, check_overlap=True)


def test_check_overlap_quiet_when_enough() -> None:
    """Enough overlap: no warning, uniform_filter's rounding included."""
    img = image((300, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        numpool.apply(correlate("wrap"), img, overlap=2, boundary="wrap", check_overlap=True)
        numpool.apply(
            lambda b: ndimage.uniform_filter(b, 7),
            img,
            overlap=3,
            boundary="reflect",
            check_overlap=True,
        )
        numpool.apply(np.exp, img, check_overlap=True)


def test_check_overlap_not_a_stencil() -> None:
    """A func that reads its whole block (minus the block's mean) is no stencil."""
    img = image((300, 4))
    with pytest.warns(OverlapWarning, match="no overlap up to"):
        numpool.apply(lambda b: b - b.mean(), img, overlap=1, check_overlap=True)


def test_halo_rules() -> None:
    """halo() follows SciPy's kernels: size k reads k // 2, a Gaussian int(t*s + 0.5)."""
    assert halo(3) == 1 and halo(5) == 2 and halo(4) == 2 and halo(1) == 0
    assert halo((3, 7), axis=1) == 3
    assert halo(sigma=2.0) == 8 and halo(sigma=(1.0, 3.0), truncate=2.0, axis=1) == 6
    assert halo(weights=np.ones((7, 3))) == 3 and halo(weights=np.ones((7, 3)), axis=1) == 1
    img = image((200, 9))
    s = 1.7
    k = halo(sigma=s)
    f = lambda b: ndimage.gaussian_filter(b, s, mode="mirror")  # noqa: E731
    assert_same(numpool.apply(f, img, overlap=k, boundary="mirror", chunks=9), f(img))
    # one row fewer than the kernel's and the split shows it
    got = numpool.apply(f, img, overlap=k - 1, boundary="mirror", chunks=9, backend="threads")
    assert not np.array_equal(got, f(img))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: halo(), TypeError, "exactly one"),
        (lambda: halo(3, sigma=1.0), TypeError, "exactly one"),
        (lambda: halo(0), ValueError, "size must be"),
        (lambda: halo(2.5), ValueError, "size must be"),
        (lambda: halo(sigma=-1.0), ValueError, ">= 0"),
        (lambda: halo((3, 3), axis=2), ValueError, "out of range"),
    ],
)
def test_halo_misuse(call, exc, match) -> None:
    """halo() refuses what it cannot read."""
    with pytest.raises(exc, match=match):
        call()


# --- misuse --------------------------------------------------------------------------------

X = np.ones((10, 3))
U8 = np.ones((10, 3), np.uint8)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"overlap": 1, "boundary": "reflct"}, ValueError, "boundary must be None or one of"),
        ({"overlap": 1, "boundary": "grid-wrap"}, ValueError, "scipy.ndimage's mode"),
        ({"overlap": 1, "boundary": 3}, ValueError, "boundary must be"),
        ({"boundary": "reflect"}, ValueError, "overlap=0 asks for none"),
        ({"overlap": 1, "cval": 1.0}, ValueError, "pass boundary='constant'"),
        ({"overlap": 1, "boundary": "wrap", "cval": 1.0}, ValueError, "only used with"),
        ({"overlap": 1, "boundary": "constant", "cval": True}, TypeError, "cval must be a number"),
        ({"overlap": 1, "boundary": "constant", "cval": "0"}, TypeError, "cval must be a number"),
        ({"overlap": 1, "boundary": "constant", "cval": [1]}, TypeError, "cval must be a number"),
        ({"overlap": 1, "block_info": 1}, TypeError, "block_info must be True or False"),
        ({"check_overlap": "yes"}, TypeError, "check_overlap must be True or False"),
    ],
)
def test_misuse(kwargs, exc, match) -> None:
    """Every wrong combination of the stencil options is a clear error, up front."""
    with pytest.raises(exc, match=match):
        numpool.apply(np.negative, X, **kwargs)
    if "check_overlap" not in kwargs:
        with pytest.raises(exc, match=match):
            numpool.plan(np.negative, X, **kwargs)


@pytest.mark.parametrize(
    "arr, cval",
    [(U8, -1), (U8, 256), (U8, 0.5), (X.astype(np.float32), 0.1), (X.astype(np.int64), 1j)],
)
def test_cval_the_dtype_cannot_hold(arr: np.ndarray, cval: object) -> None:
    """A cval the array's dtype would round or wrap is refused, naming both."""
    with pytest.raises(
        ValueError, match=f"cannot be held exactly by an array of dtype {arr.dtype}"
    ):
        numpool.apply(np.negative, arr, overlap=1, boundary="constant", cval=cval)


def test_cval_the_dtype_holds() -> None:
    """np.float32(0.1) is held by float32 (and ndimage reads the same value)."""
    img = image((40, 8)).astype(np.float32)
    c = np.float32(0.1)
    f = lambda b: ndimage.correlate(b, WEIGHTS.astype(np.float32), mode="constant", cval=c)  # noqa: E731
    got = numpool.apply(f, img, overlap=2, boundary="constant", cval=c, chunks=3)
    assert_same(got, f(img))


def test_reduce_and_map_plans_refuse_boundary() -> None:
    """boundary= is apply's: plan for reduce or map refuses it."""
    with pytest.raises(ValueError, match="for apply, not reduce"):
        numpool.plan(np.sum, X, kind="reduce", boundary="wrap")
    with pytest.raises(ValueError, match="not map"):
        numpool.plan(np.add, [1.0], [2.0], boundary="wrap")


def test_with_pads_maps_the_made_up_rows() -> None:
    """Inputs.with_pads (how a transport would stage the made-up rows) maps each of
    them, and the end blocks are cut from what it returns."""
    from numpool._inputs import make

    x = np.arange(40.0).reshape(20, 2)
    inputs = make(x, (), 0, 3, "apply", "wrap")
    seen: list[np.ndarray] = []

    def stage(p: np.ndarray) -> np.ndarray:
        seen.append(p)
        return p + 1000  # (stands for a copy elsewhere)

    staged = inputs.with_pads(stage)
    assert len(seen) == 2 and inputs.pads is not None and staged.pads is not None
    first = staged.cut(0, 5).call(lambda b: b.copy())
    assert (first[:, 0] == x[:5, 0]).all()
    padded = staged.cut(0, 5).edge
    assert padded is not None and (padded.before[0][:, 0] == x[17:, 0] + 1000).all()
    assert make(x, (), 0, 3, "apply").with_pads(stage).pads is None


def test_only_the_end_blocks_are_copied() -> None:
    """Blocks between the ends are views of x; only the two end blocks (joined to
    their made-up rows) are new arrays."""
    x = image((400, 8))

    def f(b: np.ndarray, *, block_info: numpool.stencil.BlockInfo) -> np.ndarray:
        r = np.zeros(b.shape)
        r[:, 0] = np.shares_memory(b, x)
        r[:, 1] = block_info.rows.start == 0 or block_info.rows.stop == 400
        return r

    for backend in ("serial", "threads"):
        got = numpool.apply(
            f, x, overlap=2, boundary="nearest", block_info=True, chunks=8, backend=backend
        )
        end, view = got[:, 1] == 1, got[:, 0] == 1
        assert end[0] and end[-1] and not end.all()
        assert (view == ~end).all()
    # a call run whole is one block, padded: a copy
    got = numpool.apply(f, x, overlap=2, boundary="nearest", block_info=True, backend="serial")
    assert (got[:, 1] == 1).all() and not (got[:, 0] == 1).any()


def test_a_routed_call_still_refuses_misuse() -> None:
    """Once a call is routed (auto's fast path), the same call with cval= alone or a bad
    boundary is still refused, never run as the routed one."""
    x = image((64, 4))
    for _ in range(8):
        numpool.apply(np.negative, x, overlap=1)
        numpool.apply(np.negative, x, overlap=1, boundary="wrap")
    with pytest.raises(ValueError, match="pass boundary='constant'"):
        numpool.apply(np.negative, x, overlap=1, cval=2.0)
    with pytest.raises(ValueError, match="boundary must be"):
        numpool.apply(np.negative, x, overlap=1, boundary="wrapp")
    with pytest.raises(ValueError, match="only used with"):
        numpool.apply(np.negative, x, overlap=1, boundary="wrap", cval=1.0)
