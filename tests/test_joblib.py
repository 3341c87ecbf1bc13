"""joblib's "numpool" backend (numpool.integrations.joblib): same results as n_jobs=1,
arrays through shared memory, nesting, errors, and registration on import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import numpy as np
import pytest

joblib = pytest.importorskip("joblib")

from numpool.integrations import joblib as nj  # noqa: E402

KINDS = ["processes", "threads"]


@pytest.fixture(scope="module", autouse=True)
def backend_pool() -> Iterator[None]:
    """The backend's workers are stopped when this module's tests are done."""
    nj.register()
    yield
    nj.shutdown()


def rows_sum(a: np.ndarray, i: int) -> np.ndarray:
    """Row i of a, times its row sum (a NumPy task on a big shared input)."""
    return a[i] * a[i].sum()


def writable(a: np.ndarray) -> bool:
    """Whether the worker may write into its copy of a."""
    return bool(a.flags.writeable)


def nested_jobs(i: int) -> int:
    """The n_jobs a Parallel(n_jobs=2) started inside a batch really gets."""
    return int(joblib.Parallel(n_jobs=2)._effective_n_jobs()) + 0 * i


def nested_sum(i: int) -> float:
    """A Parallel inside a batch, which must still compute its result."""
    inner = joblib.Parallel(n_jobs=2)(joblib.delayed(float)(j) for j in range(i))
    return float(sum(inner))


def fails_on(i: int, bad: int) -> int:
    """i, or a KeyError for bad."""
    if i == bad:
        raise KeyError(f"task {i}")
    return i


def hang_or_fail(i: int, folder: str) -> None:
    """Task 0 notes its pid and hangs; task 1 fails once task 0 is running."""
    path = os.path.join(folder, "pid")
    if i == 0:
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(path + ".tmp", path)
        time.sleep(600)
    while not os.path.exists(path):
        time.sleep(0.01)
    raise TypeError("task 1")


def big() -> np.ndarray:
    """An array over SHARE_BYTES, so it travels through shared memory."""
    return np.random.default_rng(0).random((300, 1000))


@pytest.mark.parametrize("kind", KINDS)
def test_matches_n_jobs_1(kind: str) -> None:
    """n_jobs=2 on numpool gives the results of n_jobs=1, bit for bit."""
    x = big()
    want = joblib.Parallel(n_jobs=1)(joblib.delayed(rows_sum)(x, i) for i in range(40))
    with joblib.parallel_config(backend="numpool", n_jobs=2, numpool_backend=kind):
        got = joblib.Parallel()(joblib.delayed(rows_sum)(x, i) for i in range(40))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.tobytes() == w.tobytes()


def test_big_arrays_travel_by_name() -> None:
    """A batch carrying a big array pickles to a few hundred bytes, and the same array
    in many batches is copied to shared memory once."""
    x = big()
    shared = nj._Shared()
    payloads = [shared.dumps(joblib.delayed(rows_sum)(x, i)) for i in range(3)]
    assert all(len(p) < 2000 for p in payloads), [len(p) for p in payloads]
    assert len(shared._copies) == 1
    shared.release(unlink=True)


def test_small_and_object_arrays_are_pickled() -> None:
    """Small arrays and object arrays travel pickled, as values."""
    shared = nj._Shared()
    small = np.arange(10.0)
    objs = np.array([{"a": 1}] * (nj.SHARE_BYTES // 8 + 1), dtype=object)
    assert shared.ref(small) is None and shared.ref(objs) is None
    assert not shared._copies


def test_shared_inputs_are_read_only_in_processes() -> None:
    """A worker process sees shared inputs read-only (as loky's memory maps are)."""
    with joblib.parallel_config(backend="numpool", n_jobs=2):
        got = joblib.Parallel()(joblib.delayed(writable)(big()) for _ in range(2))
    assert got == [False, False]


@pytest.mark.parametrize("kind", KINDS)
def test_nested_parallel_runs_sequentially(kind: str) -> None:
    """Parallel inside a batch runs on one worker, and still computes its result."""
    with joblib.parallel_config(backend="numpool", n_jobs=2, numpool_backend=kind):
        jobs = joblib.Parallel()(joblib.delayed(nested_jobs)(i) for i in range(4))
        sums = joblib.Parallel()(joblib.delayed(nested_sum)(i) for i in range(6))
    assert jobs == [1] * 4
    assert sums == [float(sum(range(i))) for i in range(6)]


@pytest.mark.parametrize("kind", KINDS)
def test_error_reaches_caller_and_backend_stays_usable(kind: str) -> None:
    """A task's exception reaches the caller as itself; the next call works."""
    with joblib.parallel_config(backend="numpool", n_jobs=2, numpool_backend=kind):
        with pytest.raises(KeyError, match="task 7"):
            joblib.Parallel()(joblib.delayed(fails_on)(i, 7) for i in range(50))
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(5)) == list(range(5))


def test_failure_stops_running_batches(tmp_path: os.PathLike[str]) -> None:
    """When a batch fails, the batches still running in worker processes are stopped
    (as loky does): the next call does not wait behind a task that never ends."""
    with (
        joblib.parallel_config(backend="numpool", n_jobs=2),
        pytest.raises(TypeError, match="task 1"),
    ):
        joblib.Parallel(batch_size=1)(
            joblib.delayed(hang_or_fail)(i, str(tmp_path)) for i in range(2)
        )
    pid = int((tmp_path / "pid").read_text())  # type: ignore[operator]
    deadline = time.monotonic() + 60  # not a timing test: the hang lasts 600 s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether process pid runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # (gone, also between open and read)
        return False


def test_n_jobs_1_falls_back_to_sequential() -> None:
    """n_jobs=1 runs in the caller, on joblib's sequential backend, with no pool."""
    with joblib.parallel_config(backend="numpool", n_jobs=1):
        p = joblib.Parallel()
        assert p(joblib.delayed(abs)(-3) for _ in range(2)) == [3, 3]
        assert p._effective_n_jobs() == 1


def test_inner_max_num_threads_sets_blas_budget() -> None:
    """inner_max_num_threads becomes the workers' BLAS thread budget."""
    with joblib.parallel_config(backend="numpool", n_jobs=2, inner_max_num_threads=1):
        joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(2))
    assert nj._current is not None
    assert nj._current[1].blas_threads == 1


def test_bad_numpool_backend_is_refused() -> None:
    """numpool_backend= other than processes/threads is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="'processes', 'threads'"):
        nj.NumpoolBackend(numpool_backend="dask")


def test_sklearn_n_jobs_2_matches_n_jobs_1() -> None:
    """cross_val_score of a random forest: n_jobs=2 on numpool equals n_jobs=1."""
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    x, y = datasets.make_classification(n_samples=300, n_features=10, random_state=0)
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    want = cross_val_score(forest, x, y, cv=3, n_jobs=1)
    with joblib.parallel_config(backend="numpool"):
        got = cross_val_score(forest, x, y, cv=3, n_jobs=2)
    assert got.tobytes() == want.tobytes()


def run_python(code: str) -> str:
    """stdout of a fresh interpreter running code (no __main__ guard); fails loudly."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("order", ["numpool first", "joblib first"])
def test_import_numpool_registers_backend(order: str) -> None:
    """After import numpool, parallel_config(backend="numpool") works, whichever of
    numpool and joblib is imported first; numpool alone does not import joblib."""
    first, second = ("numpool", "joblib") if order == "numpool first" else ("joblib", "numpool")
    out = run_python(f"""
        import sys
        import {first}
        print("joblib" in sys.modules)
        import {second}
        import joblib
        with joblib.parallel_config(backend="numpool", n_jobs=2):
            print(joblib.Parallel()(joblib.delayed(abs)(-i - 1) for i in range(4)))
    """)
    assert out.split("\n")[:2] == [str(order == "joblib first"), "[1, 2, 3, 4]"]


def test_guardless_script_lambda_from_main() -> None:
    """A script without a __main__ guard, sending lambdas, runs on worker processes."""
    out = run_python("""
        import numpool, joblib
        f = lambda i: i * i
        with joblib.parallel_config(backend="numpool", n_jobs=2):
            print(joblib.Parallel()(joblib.delayed(f)(i) for i in range(5)))
    """)
    assert out.strip() == "[0, 1, 4, 9, 16]"


def test_backend_named_inside_a_worker() -> None:
    """Parallel(backend="numpool") inside a batch finds the backend in the worker
    process (registered there too), and runs sequentially."""
    out = run_python("""
        import numpool, joblib
        def inner(i):
            p = joblib.Parallel(n_jobs=2, backend="numpool")
            return p._effective_n_jobs(), p(joblib.delayed(abs)(-j) for j in range(i))
        with joblib.parallel_config(backend="numpool", n_jobs=2):
            print(joblib.Parallel()(joblib.delayed(inner)(i) for i in range(3)))
    """)
    assert out.strip() == "[(1, []), (1, [0]), (1, [0, 1])]"


def test_daemonic_process_runs_sequentially() -> None:
    """In a multiprocessing.Pool worker (daemonic: no children allowed), Parallel on
    numpool runs sequentially with a warning that says why, as loky does there."""
    out = run_python("""
        import multiprocessing as mp, warnings, joblib, numpool
        def inner(_):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                p = joblib.Parallel(n_jobs=2, backend="numpool")
                got = p(joblib.delayed(abs)(-j) for j in range(3))
            return got, any("daemonic" in str(w.message) for w in seen)
        with mp.get_context("fork").Pool(1) as pool:
            print(pool.map(inner, [0]))
    """)
    assert out.strip() == "[([0, 1, 2], True)]"


@pytest.mark.parametrize("then", ["nj.shutdown()", ""], ids=["shutdown", "exit"])
def test_loky_inside_a_batch_does_not_hang_the_end(then: str) -> None:
    """Parallel(backend="loky") inside a batch (joblib keeps loky's workers for the next
    call): the backend's shutdown and the interpreter's exit still end (they hung for
    good before 3.13: joblib's test_nested_loop[numpool-loky] hung the suite's exit)."""
    out = run_python(f"""
        import os, joblib, numpool
        from numpool.integrations import joblib as nj
        def inner(i):
            p = joblib.Parallel(n_jobs=2, backend="loky")
            return os.getpid(), p(joblib.delayed(abs)(-j) for j in range(i))
        with joblib.parallel_config(backend="numpool", n_jobs=2):
            got = joblib.Parallel(batch_size=1)(joblib.delayed(inner)(i) for i in range(4))
        print(all(pid != os.getpid() for pid, _ in got), [r for _, r in got])
        {then}
        print("done")
    """)
    assert out.split("\n")[:2] == ["True [[], [0], [0, 1], [0, 1, 2]]", "done"]
