"""Inputs that once came back silently wrong or hung: byte order, ndarray subclasses,
retries of an in-place update, numpool called from inside its own workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import funcs
import numpool
from helpers import assert_same, without_tracker_noise

TESTS = Path(__file__).parent
BACKENDS = ["serial", "threads", "processes", "pickle", "auto"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [">f8", ">i4", "<f8", [("a", ">i4"), ("b", "<f8")]])
def test_byte_order_travels_whole(backend: str, dtype: object) -> None:
    """NumPy 2.4 unpickles a big-endian array as a native one under protocol 4, so
    worker processes saw float64 for >f8: the dtype must come back as func gave it."""
    x = np.zeros((4000, 3), dtype=dtype)
    if x.dtype.names is None:
        x[...] = np.arange(12000).reshape(4000, 3)
    else:
        x["a"] = np.arange(12000).reshape(4000, 3)
        x["b"] = x["a"] / 7
    assert_same(numpool.apply(funcs.identity, x, backend=backend), x)
    got = numpool.map(np.copy, [x, x[::3], x[5]], backend=backend)
    for g, want in zip(got, [x, x[::3], x[5]], strict=True):
        assert_same(g, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_masked_array_is_refused_not_unmasked(backend: str) -> None:
    m = np.ma.masked_greater(np.arange(100.0), 50)
    with pytest.raises(TypeError, match=r"MaskedArray.*mask would be lost.*getdata"):
        numpool.apply(np.sqrt, m, backend=backend)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # (np.matrix itself)
def test_other_subclasses_are_refused_with_the_way_out() -> None:
    with pytest.raises(TypeError, match=r"numpy.*matrix.*np.asarray\(x\)"):
        numpool.apply(np.sqrt, np.asmatrix(np.ones((4, 4))), backend="threads")


def test_shared_arrays_and_memmaps_are_plain_memory(tmp_path: Path) -> None:
    x = np.arange(10_000.0)
    s = numpool.share(x)
    m = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=x.dtype, shape=x.shape)
    m[:] = x
    for arr in (s, m):
        assert_same(numpool.apply(np.sqrt, arr, backend="threads"), np.sqrt(x))
    s.close()
    del m


@pytest.mark.parametrize("backend", ["processes", "pickle", "auto"])
def test_retries_of_an_in_place_update_are_refused(backend: str) -> None:
    x = numpool.share(np.arange(1000.0) / 1000)
    with pytest.raises(ValueError, match=r"retries=2 with an out= that overlaps x.*twice"):
        numpool.apply(np.exp, x, out=x, backend=backend, retries=2)
    assert np.array_equal(x, np.arange(1000.0) / 1000)  # refused before anything ran
    y = numpool.apply(np.exp, x, out=np.empty_like(x), backend=backend, retries=2)
    assert_same(y, np.exp(np.arange(1000.0) / 1000))
    x.close()


def test_in_place_updates_without_retries_or_in_process_stay_allowed() -> None:
    x = np.arange(1000.0) / 1000
    numpool.apply(np.exp, x, out=x, backend="threads", retries=2)  # never retried there
    assert_same(x, np.exp(np.arange(1000.0) / 1000))


def _nested(b: np.ndarray) -> np.ndarray:
    return numpool.apply(np.sqrt, b, chunks=2)


def _nested_map(a: np.ndarray) -> np.ndarray:
    return numpool.map(np.sqrt, [a, a], backend="threads")[0]


@pytest.mark.parametrize("backend", ["threads", "auto"])
def test_a_call_from_inside_a_worker_thread_runs_there(backend: str) -> None:
    """Threads inside threads deadlocked: the inner call now runs in its worker."""
    x = np.arange(100_000.0)
    with numpool.Pool(backend, workers=2) as pool:
        for _ in range(3):  # (auto's first call measures, later ones choose)
            assert_same(pool.apply(_nested, x, chunks=4), np.sqrt(x))
            assert_same(pool.map_arrays(_nested_map, [x, x])[1], np.sqrt(x))
        f = pool.submit(numpool.apply, np.sqrt, x, backend="threads")
        assert_same(f.result(timeout=60), np.sqrt(x))


def test_processes_inside_processes_compute_and_exit() -> None:
    """Processes inside processes computed, then the interpreter hung at exit."""
    code = """
        import numpy as np, numpool
        import funcs

        def inner(b):
            return numpool.apply(np.sqrt, b, backend="processes")

        x = np.arange(100_000.0)
        y = numpool.apply(inner, x, backend="processes", chunks=4)
        assert np.array_equal(y, np.sqrt(x))
        print(numpool.last_stats().backend, "ok")
    """
    p = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TESTS,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["processes", "ok"], p.stdout
    assert without_tracker_noise(p.stderr) == "", p.stderr


def test_the_plan_of_a_nested_call_says_why_it_ran_there() -> None:
    import threading

    seen: list[str] = []

    def inner(b: np.ndarray) -> np.ndarray:
        with numpool.Pool("threads") as inner_pool:
            y, stats = inner_pool.apply_with_stats(np.sqrt, b)
        if threading.current_thread() is not threading.main_thread():
            assert stats.plan is not None and stats.backend == "serial"
            seen.append(stats.plan.explain())
        return y

    with numpool.Pool("threads", workers=2) as pool:
        pool.apply(inner, np.arange(1000.0), chunks=4)
    assert seen and all("inside one of numpool's workers" in s for s in seen), seen
