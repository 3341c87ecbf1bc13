"""Beyond one array: several arrays, a halo, another axis, reductions, memmaps.

Every form on every backend gives serial NumPy's bits (reductions: the same
bits on every backend for the same chunks, and within a bound of the serial
result); every misuse is a clear error.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import funcs
import numpool
from helpers import assert_same
from numpool._reduce import fold


def make(shape: tuple[int, ...], seed: int = 0, dtype: type = np.float64) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 100).astype(dtype)


# --- several arrays -------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [None, 1, 3, 7, 10_000])
def test_several_arrays(pool: numpool.Pool, chunks) -> None:
    """func(xb, yb, zb) over the same blocks of every array == func(x, y, z)."""
    x, y, z = make((1001, 3), 0), make((1001, 3), 1), make((1001, 3), 2)
    assert_same(pool.apply(funcs.fma, x, y, z, chunks=chunks), funcs.fma(x, y, z))


@pytest.mark.parametrize(
    "w",
    [np.arange(3.0), np.arange(3.0)[None], np.float64(2.5), np.array(2.5), 7],
    ids=["fewer-dims", "length-1", "np-scalar", "0-d", "int"],
)
def test_broadcast_arguments_pass_whole(pool: numpool.Pool, w) -> None:
    """Arrays of length 1 along the split axis, with fewer dimensions, 0-d arrays and
    scalars are passed whole to every block."""
    x = make((500, 3))
    assert_same(pool.apply(funcs.weighted, x, w, 0.5, chunks=6), funcs.weighted(x, w, 0.5))


def test_several_arrays_into_out_and_in_place(pool: numpool.Pool) -> None:
    """out= still works with more arrays; out=y (a split input) updates it in place."""
    x, y = make((700, 2), 0), make((700, 2), 1)
    out = np.empty_like(x)
    assert pool.apply(np.add, x, y, out=out, chunks=4) is out
    assert_same(out, x + y)
    want = x * y
    assert pool.apply(np.multiply, x, y, out=y, chunks=4) is y
    assert_same(y, want)


def test_one_array_keywords_unchanged() -> None:
    """apply(func, x, out=..., chunks=...) keeps working now that apply takes *arrays."""
    x = make((300,))
    out = np.empty_like(x)
    assert numpool.apply(np.exp, x, out=out, chunks=3, backend="threads") is out
    assert_same(out, np.exp(x))


def test_several_arrays_first_call_measures_on_every_array() -> None:
    """A first auto call of several arrays runs the head and the threads stage over
    the same rows of each: every row once, the result exact."""
    x, y, z = make((200_000,), 0), make((200_000,), 1), make((200_000,), 2)
    with numpool.Pool("auto", workers=2) as pool:
        for _ in range(2):  # the measuring call, then one decided from the evidence
            assert_same(pool.apply(funcs.fma, x, y, z), funcs.fma(x, y, z))
        assert pool.last_stats.plan is not None


# --- a halo -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [2, 7, 64, 301])
def test_box_blur_with_overlap_is_exact(pool: numpool.Pool, chunks: int) -> None:
    """A 3x3 box blur with overlap=1 equals the whole-image blur bit for bit."""
    img = make((301, 40))
    assert_same(pool.apply(funcs.box_blur, img, overlap=1, chunks=chunks), funcs.box_blur(img))


@pytest.mark.parametrize(("k", "chunks"), [(1, 50), (3, 50), (8, 50), (40, 9), (1000, 3)])
def test_overlap_larger_than_a_block(pool: numpool.Pool, k: int, chunks: int) -> None:
    """A halo wider than a block (or than the input) is still exact."""
    x = make((50, 2))
    f = funcs.stencil(k)
    assert_same(pool.apply(f, x, overlap=k, chunks=chunks), f(x))


def test_overlap_with_several_arrays() -> None:
    """Every split array gets the same halo; whole ones pass as they are."""
    x, y = make((200, 4), 0), make((200, 4), 1)

    def f(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
        return funcs.box_blur(a) - b * s

    assert_same(numpool.apply(f, x, y, 2.0, overlap=1, chunks=9, backend="threads"), f(x, y, 2.0))


# --- an axis ----------------------------------------------------------------------------


def test_axis_splits_channels_rows_columns(pool: numpool.Pool) -> None:
    """(channels, rows, columns) split along the rows, with a halo."""
    stack = make((3, 120, 17))
    got = pool.apply(funcs.box_blur, stack, axis=1, overlap=1, chunks=7)
    assert_same(got, funcs.box_blur(stack))
    assert_same(pool.apply(np.sin, stack, axis=-1, chunks=4), np.sin(stack))


def test_axis_aligns_other_arrays_from_the_right() -> None:
    """With axis=1 of x (C, R, W), y (R, W) is split along its axis 0, as NumPy
    broadcasts it; out= along the same axis."""
    x, y = make((2, 90, 5), 0), make((90, 5), 1)
    out = np.empty_like(x)
    assert numpool.apply(np.add, x, y, axis=1, chunks=6, out=out, backend="threads") is out
    assert_same(out, x + y)
    assert_same(numpool.apply(np.add, x, y, axis=-2, chunks=5, backend="processes"), x + y)


# --- reductions -------------------------------------------------------------------------


def test_reduce_exp_sum_close_to_serial(pool: numpool.Pool) -> None:
    """np.exp(x).sum() blockwise is within 1e-12 (relative) of the serial sum."""
    x = np.random.default_rng(0).standard_normal(300_000)
    want = np.exp(x).sum()
    got = pool.reduce(funcs.exp_sum, x)
    assert abs(got - want) <= 1e-12 * want


def test_reduce_same_bits_on_every_backend(pool: numpool.Pool) -> None:
    """The same chunks give the same bits everywhere: the left-to-right fold of the
    fixed blocks' partials."""
    x = np.random.default_rng(1).standard_normal(100_003)
    edges = [i * len(x) // 13 for i in range(14)]
    want = fold(np.add, [funcs.exp_sum(x[a:b]) for a, b in itertools.pairwise(edges)])
    for _ in range(2):
        got = pool.reduce(funcs.exp_sum, x, chunks=13)
        assert got.tobytes() == np.float64(want).tobytes()


def test_reduce_default_blocks_ignore_timing() -> None:
    """The default blocks come from the input's size alone: serial, threads and
    processes agree bit for bit without chunks=."""
    x = np.random.default_rng(2).standard_normal(400_000)
    got = {
        b: numpool.reduce(funcs.exp_sum, x, backend=b, workers=None if b == "serial" else 2)
        for b in ("serial", "threads", "processes")
    }
    assert len({v.tobytes() for v in got.values()}) == 1, got


def test_reduce_arrays_tuples_and_combines(pool: numpool.Pool) -> None:
    """Array partials (histogram counts), two arrays (a dot product), tuple partials
    with a tuple of combines, np.maximum."""
    x, y = make((5000,), 0), make((5000,), 1)
    assert_same(pool.reduce(funcs.hist, x, chunks=7), funcs.hist(x))
    dot = pool.reduce(funcs.dot_partial, x, y, chunks=5)
    assert abs(dot - x @ y) <= 1e-9 * np.abs(x * y).sum()
    m = make((400, 3))
    lo, hi = pool.reduce(funcs.min_max, m, combine=(np.minimum, np.maximum), chunks=6)
    assert_same(lo, m.min(axis=0))
    assert_same(hi, m.max(axis=0))
    assert pool.reduce(np.max, x, combine=np.maximum, chunks=9) == x.max()


def test_reduce_empty_and_tiny_inputs() -> None:
    """No rows: func runs once on the empty input; one row: one block."""
    assert numpool.reduce(np.sum, np.empty(0)) == 0.0
    assert numpool.reduce(np.sum, np.ones(1), chunks=5) == 1.0


def test_reduce_along_an_axis() -> None:
    """axis= splits another axis; partials are per block of it."""
    x = make((4, 3000))
    got = numpool.reduce(lambda b: b.sum(axis=1), x, axis=1, chunks=4, backend="threads")
    np.testing.assert_allclose(got, x.sum(axis=1), rtol=1e-12)


def test_reduce_makes_no_full_size_temporary() -> None:
    """np.exp(x).sum() as a reduce: the peak memory it allocates stays a small
    fraction of x (one block per worker at a time), where the serial form makes a
    temporary as big as x."""
    import tracemalloc

    x = np.random.default_rng(3).random(8_000_000)  # 64 MB: 32 blocks of 2 MB
    numpool.reduce(funcs.exp_sum, x, backend="threads", workers=2)  # pool, threads warm
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        numpool.reduce(funcs.exp_sum, x, backend="threads", workers=2)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 0.10 * x.nbytes, peak / x.nbytes


@given(
    x=hnp.arrays(np.float64, st.integers(0, 500), elements=st.floats(0, 10)),
    chunks=st.integers(1, 40),
)
def test_hypothesis_reduce_same_bits_as_the_serial_fold(x: np.ndarray, chunks: int) -> None:
    """Any size (empty too), any chunks: threads and processes give the serial pool's
    bits."""
    from conftest import get_pool

    want = get_pool("serial").reduce(np.sum, x, chunks=chunks)
    for backend in ("threads", "processes"):
        got = get_pool(backend).reduce(np.sum, x, chunks=chunks)
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), backend


# --- hypothesis ---------------------------------------------------------------------


@st.composite
def several(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """x of 1-3 dims (maybe empty), and a second array that either matches it along
    axis 0 or broadcasts (length 1 there, or fewer dimensions)."""
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    rows = draw(st.integers(0, 60))
    tail = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    kind = np.dtype(dtype).kind
    elements = st.floats(-100, 100, width=32) if kind == "f" else st.integers(-1000, 1000)
    x = draw(hnp.arrays(dtype, (rows, *tail), elements=elements))
    form = draw(st.sampled_from(["same", "length-1", "fewer-dims"]))
    shape = {"same": (rows, *tail), "length-1": (1, *tail), "fewer-dims": tail}[form]
    y = draw(hnp.arrays(dtype, shape, elements=elements))
    return x, y


@pytest.mark.parametrize("backend", ["threads", "processes"])
@given(xy=several(), chunks=st.integers(1, 70), k=st.integers(0, 80))
def test_hypothesis_arrays_broadcast_and_halo(backend: str, xy, chunks: int, k: int) -> None:
    """Any shapes, dtypes, empty inputs, broadcasting, and halos wider than a block."""
    from conftest import get_pool

    x, y = xy
    pool = get_pool(backend)
    assert_same(pool.apply(np.add, x, y, chunks=chunks), x + y)
    f = funcs.stencil(min(k, 3))
    assert_same(pool.apply(f, x, overlap=k, chunks=chunks), f(x))


# --- plans ------------------------------------------------------------------------------


def test_plan_describes_the_new_forms() -> None:
    x, y = make((2000, 2), 0), make((2000, 2), 1)
    text = numpool.plan(funcs.fma, x, y, 1.0).explain()
    assert "2 arrays of 3 arguments, 2 split" in text
    assert "overlap 1" in numpool.plan(funcs.box_blur, x, overlap=1).explain()
    stack = make((2, 100, 4))
    assert "axis 1" in numpool.plan(funcs.box_blur, stack, axis=1, overlap=1).explain()
    p = numpool.plan(funcs.exp_sum, x.ravel(), kind="reduce", chunks=8)
    assert p.kind == "reduce"
    assert "reduce(exp_sum)" in p.explain() and "8 fixed blocks" in p.explain()
    numpool.reduce(funcs.exp_sum, x.ravel(), chunks=8)
    stats = numpool.last_stats()
    assert stats.kind == "reduce" and stats.plan.kind == "reduce"
    for text in (p.explain(), stats.plan.explain()):  # a reduce's tasks are its blocks
        assert "task" not in text, text


# --- misuse -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: numpool.apply(np.exp, np.ones(5), overlap=-1),
            ValueError,
            "overlap must be >= 0",
        ),
        (
            lambda: numpool.apply(np.exp, np.ones(5), overlap=1.5),
            TypeError,
            "overlap must be an int",
        ),
        (lambda: numpool.apply(np.exp, np.ones(5), overlap=True), TypeError, "overlap must be"),
        (
            lambda: numpool.apply(np.exp, np.ones((5, 2)), axis=2),
            ValueError,
            r"axis 2 is out of range",
        ),
        (lambda: numpool.apply(np.exp, np.ones(5), axis=-2), ValueError, "out of range"),
        (lambda: numpool.apply(np.exp, np.ones(5), axis="rows"), TypeError, "axis must be an int"),
        (
            lambda: numpool.apply(np.add, np.ones((5, 2)), np.ones((6, 2))),
            ValueError,
            r"different lengths.*\(5, 2\), \(6, 2\)",
        ),
        (
            lambda: numpool.apply(np.add, np.ones((1, 2)), np.ones((6, 2))),
            ValueError,
            "put an array that is split first",
        ),
        (
            lambda: numpool.reduce(np.sum, np.ones(5), combine="add"),
            TypeError,
            "combine must be callable",
        ),
        (
            lambda: numpool.reduce(np.sum, np.ones(5), combine=(np.add, 3)),
            TypeError,
            "combine must be callable",
        ),
        (lambda: numpool.reduce(3, np.ones(5)), TypeError, "func must be callable"),
        (lambda: numpool.plan(np.add, [1.0], [2.0], overlap=1), ValueError, "not map"),
        (
            lambda: numpool.plan(np.sum, np.ones(5), kind="reduce", overlap=1),
            ValueError,
            "not reduce",
        ),
        (
            lambda: numpool.apply(
                np.add, np.ones(5), np.ma.masked_array(np.ones(5)), backend="threads"
            ),
            TypeError,
            "MaskedArray",
        ),
    ],
)
def test_misuse_is_a_clear_error(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_overlap_with_a_func_that_changes_the_row_count(pool: numpool.Pool) -> None:
    with pytest.raises(ValueError, match="as many rows as it is given"):
        pool.apply(funcs.drop_a_row, make((100,)), overlap=2, chunks=4)


def test_out_is_x_with_overlap_is_refused() -> None:
    x = make((100,))
    with pytest.raises(ValueError, match="halo rows"):
        numpool.apply(funcs.stencil(1), x, out=x, overlap=1, chunks=4, backend="threads")


def test_out_overlapping_a_whole_argument_is_refused() -> None:
    x = make((10, 3))
    out = np.empty((10, 3))
    with pytest.raises(ValueError, match="overlaps an input array"):
        numpool.apply(funcs.keep_first, x, out[:1], chunks=2, out=out, backend="threads")


def test_reduce_tuple_partials_need_matching_combines() -> None:
    with pytest.raises(ValueError, match="must match"):
        numpool.reduce(
            funcs.min_max, make((40, 2)), combine=(np.minimum,), chunks=3, backend="serial"
        )


# --- bigger than memory -------------------------------------------------------------


def test_memmap_in_and_out_on_every_backend(pool: numpool.Pool, tmp_path) -> None:
    """A memmap input and a memmap out= give the right result everywhere."""
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=(3000, 4))
    x[:] = make((3000, 4))
    x.flush()
    xr = np.load(tmp_path / "x.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "o.npy", mode="w+", dtype=np.float64, shape=x.shape)
    assert pool.apply(np.exp, xr, out=out, chunks=5) is out
    assert_same(np.asarray(out), np.exp(np.asarray(xr)))
    assert_same(pool.apply(funcs.box_blur, xr, overlap=1, chunks=6), funcs.box_blur(xr))
    s = pool.reduce(funcs.exp_sum, xr[:, 0], chunks=4)
    assert abs(s - np.exp(xr[:, 0]).sum()) <= 1e-12 * s
    del xr, out, x


MEMMAP_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import numpool
    from numpool import shm

    d = sys.argv[1]
    n = 1_000_000  # 8 MB of float64: 8 times NUMPOOL_SHM_LIMIT
    new = np.lib.format.open_memmap
    x = new(os.path.join(d, "x.npy"), mode="w+", dtype=np.float64, shape=(n,))
    x[:] = np.linspace(0, 1, n)
    x.flush()
    del x
    xr = np.load(os.path.join(d, "x.npy"), mmap_mode="r")
    out = new(os.path.join(d, "o.npy"), mode="w+", dtype=np.float64, shape=(n,))

    def big_segments():
        # the data would need an 8 MB segment (or a file in the spill directory); a
        # first call's head, which sizes its blocks by timing, may send a few of its
        # result rows back through a small one (under the limit)
        found = []
        for directory in shm.directories():
            for name in os.listdir(directory):
                if shm.is_numpool_name(name) and shm.owner_of(name) == os.getpid():
                    size = os.path.getsize(os.path.join(directory, name))
                    if size >= 1024 * 1024:
                        found.append((name, size))
        return found

    with numpool.Pool("processes", workers=2) as pool:
        for chunks in (None, 8):
            assert pool.apply(np.sqrt, xr, out=out, chunks=chunks) is out
            assert np.array_equal(out, np.sqrt(xr))
            stats = pool.last_stats
            moved_apply = stats.bytes_moved
            assert not big_segments(), big_segments()
        got = pool.reduce(np.sum, xr, chunks=16)
        assert abs(got - np.sum(xr)) <= 1e-12 * got, (got, np.sum(xr))
        assert not big_segments(), big_segments()
        moved_reduce = pool.last_stats.bytes_moved
    print("OK", moved_apply, moved_reduce)
    """
)


def test_memmap_goes_to_workers_by_file_name(tmp_path) -> None:
    """With a shared-memory limit of 1 MB, an 8 MB memmap input and a memmap out on
    processes compute the right result, and no segment is made for the data: the
    workers map the file themselves."""
    env = {**os.environ, "NUMPOOL_SHM_LIMIT": "1M"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    run = subprocess.run(
        [sys.executable, "-c", MEMMAP_SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    words = run.stdout.split()
    assert words[0] == "OK"
    assert int(words[1]) < 2_000_000 and int(words[2]) < 100_000, run.stdout


def test_file_refs_only_where_other_processes_see_the_data(tmp_path) -> None:
    """A memmap travels by file name only in modes whose pages other processes see
    ('c', copy-on-write, is staged like any array); inputs are mapped read-only."""
    from numpool import shm

    path = tmp_path / "x.npy"
    np.save(path, make((100, 3)))
    ro, rw, cow = (np.load(path, mmap_mode=m) for m in ("r", "r+", "c"))
    assert shm.file_ref(ro) is not None and not shm.file_ref(ro).writable
    assert shm.file_ref(ro, writable=True) is None
    assert shm.file_ref(cow) is None
    assert shm.file_ref(rw[::-1]) is None  # negative strides: staged
    ref = shm.file_ref(rw[10:20, 1:])
    view = shm.map_file(ref)
    assert not view.flags.writeable
    assert_same(view, np.asarray(rw[10:20, 1:]))
    assert shm.map_file(shm.file_ref(rw, writable=True)).flags.writeable
    del ro, rw, cow, view


def test_memmap_updated_in_place_on_processes(tmp_path) -> None:
    """out=x for an r+ memmap: the workers map the file writable and update it."""
    path = tmp_path / "x.npy"
    data = make((5000, 2))
    np.save(path, data)
    x = np.load(path, mmap_mode="r+")
    pool = __import__("conftest").get_pool("processes")
    assert pool.apply(np.exp, x, out=x, chunks=4) is x
    assert_same(np.asarray(x), np.exp(data))
    x.flush()
    assert_same(np.load(path), np.exp(data))
    del x
