"""Scripts without a __main__ guard, notebooks, lambdas: user code runs as written.

Worker processes never import the user's __main__ (backends/_context.py); what
lives there, lambdas and closures travel by value (backends/_ship.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from multiprocessing import popen_forkserver, popen_spawn_posix
from pathlib import Path

import numpy as np
import pytest

import funcs
import numpool
from helpers import segments, without_tracker_noise

TESTS = Path(__file__).parent

SCRIPT = """
import math
import numpy as np
import numpool

print("the script runs", flush=True)


def loop(b):
    out = np.empty_like(b)
    for i in range(len(b)):
        out[i] = math.sqrt(float(b[i]) ** 2 + 1.0)
    return out


class Scale:
    def __init__(self, k):
        self.k = k

    def __call__(self, b):
        return b * self.k


x = np.random.default_rng(0).random(400_000)
want = loop(x)
for _ in range(3):
    assert np.array_equal(numpool.apply(loop, x), want)  # the default backend
with numpool.Pool("processes", workers=2) as pool:
    assert np.array_equal(pool.apply(loop, x), want)
    assert np.array_equal(pool.apply(Scale(3.0), x), x * 3.0)
    assert pool.submit(lambda: 41).result() + 1 == 42
    got = pool.map_arrays(lambda a, k: a * k, [x[:5]] * 3, [1.0, 2.0, 3.0])
    assert np.array_equal(got[2], x[:5] * 3.0)
    assert list(pool.map(math.sqrt, [4.0, 9.0])) == [2.0, 3.0]
print("ok", flush=True)
"""


def _python(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    """Its output appears once, results are right, nothing is printed at exit and
    nothing is left in /dev/shm: the workers never ran the script."""
    script = tmp_path / "no_guard.py"
    script.write_text(SCRIPT)
    p = _python(str(script), cwd=tmp_path)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    assert out.splitlines() == ["the script runs", "ok"], out
    assert without_tracker_noise(err) == "", f"nothing at exit: {err}"
    assert not segments(owner=p.pid)


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_a_notebook_style_session_ships_its_functions(tmp_path: Path, how: str) -> None:
    """Code with no file behind __main__ (python -c, or fed on stdin like a notebook's
    kernel) defines functions and classes that worker processes run by value."""
    code = SCRIPT
    p = (
        _python("-c", code, cwd=tmp_path)
        if how == "-c"
        else _python("-", cwd=tmp_path, stdin=code)
    )
    out, err = p.communicate(input=code if how == "stdin" else None, timeout=180)
    assert p.returncode == 0, err
    assert out.splitlines() == ["the script runs", "ok"], out
    assert without_tracker_noise(err) == "", err


@pytest.mark.parametrize("backend", ["processes", "pickle"])
def test_lambdas_closures_and_local_functions_travel_by_value(backend: str) -> None:
    k = 3.0

    def local(b: np.ndarray) -> np.ndarray:
        return b * k

    x = np.linspace(0, 1, 10_000)
    with numpool.Pool(backend, workers=2) as pool:
        for func in (lambda b: b * k, local):
            assert np.array_equal(pool.apply(func, x, chunks=4), x * k)
            got = pool.map_arrays(func, [x[:3]] * 4, chunksize=1)
            assert all(np.array_equal(g, x[:3] * k) for g in got)
            assert np.array_equal(pool.submit(func, x[:3]).result(timeout=60), x[:3] * k)


def test_what_cannot_travel_is_refused_with_the_way_out() -> None:
    lock = threading.Lock()

    def holds_a_lock(b: np.ndarray) -> np.ndarray:
        with lock:
            return b

    with numpool.Pool("processes", workers=2) as pool:
        with pytest.raises(TypeError, match="backend='threads'") as info:
            pool.apply(holds_a_lock, np.ones(10))
        assert "cannot send" in str(info.value) and "lock" in str(info.value)
    assert np.array_equal(numpool.apply(holds_a_lock, np.ones(10)), np.ones(10))  # auto


def test_the_launch_code_still_reads_spawn_as_a_module_global() -> None:
    """backends/_context.py rebinds the stdlib's Popen._launch to a spawn of its own:
    that only works while the code reads `spawn` as a global and has no closure."""
    for popen in (popen_forkserver.Popen, popen_spawn_posix.Popen):
        code = popen._launch.__code__
        assert "spawn" in code.co_names and "get_preparation_data" in code.co_names
        assert popen._launch.__closure__ is None


def test_workers_see_none_of_the_parents_main() -> None:
    """A worker's __main__ is not the test runner's (nor any script's)."""

    def main_file(_: object) -> str:
        return str(getattr(sys.modules["__main__"], "__file__", None))

    with numpool.Pool("processes", workers=2) as pool:
        seen = set(pool.map_arrays(main_file, range(4), chunksize=1))
    assert str(getattr(sys.modules["__main__"], "__file__", None)) not in seen


# --- exceptions come back whole ------------------------------------------------------


@pytest.mark.parametrize("backend", ["processes", "pickle"])
def test_an_exception_that_cannot_be_pickled_keeps_its_name_message_and_traceback(
    backend: str,
) -> None:
    """An exception pickle cannot rebuild (a two-argument __init__, an attribute that
    cannot be pickled) arrives as its own class, with the worker's traceback."""
    x = np.ones(100)
    with numpool.Pool(backend, workers=2, retries=3) as pool:
        with pytest.raises(funcs.TwoArgError) as info:
            pool.apply(funcs.raise_two_arg, x, chunks=2)
        err = info.value
        assert type(err) is funcs.TwoArgError and "a=1 b=2" in str(err)
        assert "raise TwoArgError(1, 2)" in str(err.__cause__), "the worker's traceback"
        assert pool.last_stats is None or pool.last_stats.retries == 0
        with pytest.raises(funcs.LockedError, match="the lock stays here") as info2:
            pool.apply(funcs.raise_locked, x, chunks=2)
        assert not hasattr(info2.value, "lock")
        assert not isinstance(info2.value, numpool.RemoteError)
        f = pool.submit(funcs.raise_two_arg, x)
        assert type(f.exception(timeout=60)) is funcs.TwoArgError
        assert np.array_equal(pool.apply(np.negative, x, chunks=2), -x)  # not broken


def test_exceptions_and_results_of_main_classes_come_back_as_themselves(tmp_path: Path) -> None:
    code = """
import numpy as np, numpool

class Oops(ValueError):
    pass

class Point:
    def __init__(self, v):
        self.v = v

def boom(b):
    raise Oops("from a worker")

def point(a):
    return Point(float(a.sum()))

with numpool.Pool("processes", workers=2) as pool:
    try:
        pool.apply(boom, np.ones(10), chunks=2)
    except Oops as e:
        print("caught", type(e).__name__, "from a worker" in str(e))
    p = pool.submit(point, np.ones(3)).result()
    print(type(p) is Point, p.v)
    print([type(q) is Point for q in pool.map_arrays(point, [np.ones(2)] * 3)])
"""
    p = _python("-c", code, cwd=tmp_path)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.splitlines() == ["caught Oops True", "True 3.0", "[True, True, True]"], out + err


def test_every_row_once_on_every_backend(tmp_path: Path) -> None:
    """Each row reaches func exactly once, on the first call and after."""
    path = tmp_path / "rows"
    x = np.arange(40_000.0)
    for backend in ("serial", "threads", "processes", "pickle", "auto"):
        with numpool.Pool(backend, workers=2) as pool:
            for _ in range(2):
                path.write_text("")
                y = pool.apply(_CountRows(str(path)), x)
                assert np.array_equal(y, x * 2)
                assert sum(int(v) for v in path.read_text().split()) == len(x), backend


class _CountRows:
    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, b: np.ndarray) -> np.ndarray:
        return funcs.count_rows(b, self.path)


def test_the_forkserver_never_imports_main() -> None:
    """The preload list is numpool's own (from CPython 3.13.8 a '__main__' in it would
    run the script in the server)."""
    from numpool.backends._context import PRELOAD

    assert "__main__" not in PRELOAD and "numpool.backends._context" in PRELOAD


# --- benchmarks/envelope.py (issue 21) ------------------------------------------------


def test_the_envelope_benchmark_writes_its_report(tmp_path: Path) -> None:
    """At toy sizes, one fresh process, one round: results.json with every process's
    samples and the per-point targets, envelope.md, envelope.png. No timings asserted."""
    script = TESTS.parent / "benchmarks" / "envelope.py"
    args = ["--only", "exp", "--sizes", "1000,20000", "--procs", "1", "--rounds", "1"]
    p = _python(str(script), *args, "--calls", "4", "--out", str(tmp_path / "out"), cwd=tmp_path)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "written:" in out
    got = tmp_path / "out"
    assert (got / "envelope.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| workload | size |" in (got / "envelope.md").read_text()
    data = json.loads((got / "results.json").read_text())
    assert {"meta", "points", "runs"} <= data.keys()
    runs = data["runs"]
    assert [(r["workload"], r["size"]) for r in runs] == [("exp", 1000), ("exp", 20000)]
    assert all(r["ok"] for r in runs), [r.get("error") for r in runs]
    for r in runs:
        assert {"plain_s", "first_s", "calls_s", "calls_on", "samples", "medians"} <= r.keys()
        assert len(r["calls_s"]) == 4 and r["errors"] == {}
        want = {"plain", "threads", "processes", "shared", "auto", "split"}
        assert set(r["medians"]) == want and all(r["exact"].values()), r["exact"]
    for point in data["points"]:
        assert {"medians", "speedup", "targets", "first_speedup"} <= point.keys()
        assert set(point["targets"]) == {"a", "b", "c", "d"}
