"""numpool.Pool as a drop-in for concurrent.futures' executors, on every backend:
max_workers=, initializer=/initargs=, mp_context= (and, ported from CPython's
Lib/test/test_concurrent_futures, the initializer tests). Nothing here measures a
time."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Iterator

import numpy as np
import pytest

import numpool

BACKENDS = ["serial", "threads", "processes", "dask-threads"]
PATIENCE = 60.0

#: what the initializer set, in this process (each worker process has its own)
_state: dict[str, object] = {}
_init_threads: list[int] = []


def init_state(value: object) -> None:
    _state["value"] = value
    _state["pid"] = os.getpid()
    _init_threads.append(threading.get_ident())


def read_state(_: object = None) -> object:
    return _state.get("value")


def pid_and_init_pid() -> tuple[int, object]:
    return os.getpid(), _state.get("pid")


def plus_state(block: np.ndarray) -> np.ndarray:
    return block + float(_state.get("value", -1.0))  # type: ignore[arg-type]


def boom(*_: object) -> None:
    raise ValueError("initializer says no")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def make_pool(name: str, **options: object) -> numpool.Pool:
    """A 2-worker pool of ``name`` (dask-threads: on an in-process LocalCluster)."""
    if name == "dask-threads":
        distributed = pytest.importorskip("distributed")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        )
        try:
            pool = numpool.Pool("dask", max_workers=2, address=cluster, **options)  # type: ignore[arg-type]
        except BaseException:
            cluster.close()
            raise
        pool._test_cluster = cluster  # type: ignore[attr-defined]
        return pool
    return numpool.Pool(name, max_workers=2, **options)  # type: ignore[arg-type]


def close(pool: numpool.Pool) -> None:
    pool.shutdown(wait=True, cancel_futures=True)
    cluster = getattr(pool, "_test_cluster", None)
    if cluster is not None:
        cluster.close()


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """Each test starts with no initializer having run in this process."""
    _state.clear()
    _init_threads.clear()
    yield
    _state.clear()
    _init_threads.clear()


# --- max_workers ---------------------------------------------------------------------


def test_max_workers_is_an_alias_of_workers() -> None:
    """Pool(max_workers=N) has N workers; both given must agree."""
    with numpool.Pool("threads", max_workers=3) as pool:
        assert pool.workers == 3 and pool._max_workers == 3
    with numpool.Pool("threads", workers=3, max_workers=3) as pool:
        assert pool.workers == 3
    with pytest.raises(TypeError, match="max_workers"):
        numpool.Pool("threads", workers=2, max_workers=3)


# --- initializer (CPython's InitializerMixin / FailingInitializerMixin) -----------------


@pytest.mark.parametrize("name", BACKENDS)
def test_initializer_runs_before_every_task(name: str) -> None:
    """initializer(*initargs) has run in whichever worker takes submit, map and apply."""
    pool = make_pool(name, initializer=init_state, initargs=(5.0,))
    try:
        futures = [pool.submit(read_state) for _ in range(8)]
        assert [f.result(timeout=PATIENCE) for f in futures] == [5.0] * 8
        assert list(pool.map(read_state, range(8), timeout=PATIENCE)) == [5.0] * 8
        x = np.arange(1000.0)
        np.testing.assert_array_equal(pool.apply(plus_state, x, chunks=4), x + 5.0)
    finally:
        close(pool)


def test_initializer_runs_once_in_each_thread() -> None:
    """threads: once per worker thread (and once in a caller that runs blocks), never
    once per task."""
    pool = numpool.Pool("threads", max_workers=2, initializer=init_state, initargs=(1.0,))
    try:
        for f in [pool.submit(read_state) for _ in range(50)]:
            f.result(timeout=PATIENCE)
        pool.apply(plus_state, np.ones(10_000), chunks=8)
        pool.apply(plus_state, np.ones(10_000), chunks=8)
        assert len(_init_threads) == len(set(_init_threads)) <= 3
    finally:
        close(pool)


def test_serial_initializer_runs_once_in_the_caller() -> None:
    """serial: once in the calling thread at its first call, not again."""
    with numpool.Pool("serial", initializer=init_state, initargs=(2.0,)) as pool:
        assert _init_threads == []  # nothing ran yet
        np.testing.assert_array_equal(pool.apply(plus_state, np.zeros(4)), np.full(4, 2.0))
        pool.apply(plus_state, np.zeros(4))
        assert _init_threads == [threading.get_ident()]


def test_a_replacement_worker_process_runs_the_initializer_again() -> None:
    """processes: a worker started after one died ran the initializer too."""
    with numpool.Pool("processes", max_workers=1, initializer=init_state, initargs=(3,)) as pool:
        pid, init_pid = pool.submit(pid_and_init_pid).result(timeout=PATIENCE)
        assert init_pid == pid
        with pytest.raises(cf.BrokenExecutor):
            pool.submit(die).result(timeout=PATIENCE)
        pid2, init_pid2 = pool.submit(pid_and_init_pid).result(timeout=PATIENCE)
        assert pid2 != pid and init_pid2 == pid2


@pytest.mark.parametrize("name", BACKENDS)
def test_an_initializer_that_raises_breaks_the_pool_clearly(name: str) -> None:
    """As in CPython's FailingInitializerMixin: work fails with BrokenExecutor (apply on
    processes: WorkerCrashedError naming the initializer's error), never hangs."""
    if name == "dask-threads":  # (its plugin runs on every worker as the pool is made)
        with pytest.raises(cf.BrokenExecutor, match="initializer says no"):
            make_pool(name, initializer=boom)
        return
    pool = make_pool(name, initializer=boom)
    try:
        with pytest.raises(cf.BrokenExecutor):
            pool.submit(read_state).result(timeout=PATIENCE)
        errors: tuple[type[BaseException], ...] = (cf.BrokenExecutor, numpool.WorkerCrashedError)
        with pytest.raises(errors, match="initializer"):
            pool.apply(plus_state, np.ones(1000), chunks=4)
    finally:
        close(pool)


def test_initializer_arguments_are_checked() -> None:
    """A non-callable initializer, initargs that are not a tuple, initargs alone: refused."""
    with pytest.raises(TypeError, match="initializer must be callable"):
        numpool.Pool("threads", initializer=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="initargs must be a tuple"):
        numpool.Pool("threads", initializer=init_state, initargs=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="initargs= is for initializer="):
        numpool.Pool("threads", initargs=(1,))


# --- mp_context -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_mp_context_spawn_or_forkserver(method: str) -> None:
    """processes: mp_context of 'spawn' or 'forkserver' starts the workers with it."""
    if method not in mp.get_all_start_methods():
        pytest.skip(f"no {method} here")
    with numpool.Pool("processes", max_workers=1, mp_context=mp.get_context(method)) as pool:
        assert pool.submit(pow, 2, 10).result(timeout=PATIENCE) == 1024
        x = np.arange(100.0)
        np.testing.assert_array_equal(pool.apply(np.sqrt, x, chunks=2), np.sqrt(x))


def test_mp_context_fork_and_other_backends_are_refused() -> None:
    """'fork' is refused with the reason; so is mp_context on a backend with no processes."""
    if "fork" in mp.get_all_start_methods():
        with pytest.raises(ValueError, match="'fork' start method is refused"):
            numpool.Pool("processes", mp_context=mp.get_context("fork"))
    with pytest.raises(ValueError, match="mp_context= is for"):
        numpool.Pool("threads", mp_context=mp.get_context("spawn"))
    with pytest.raises(TypeError, match="multiprocessing context"):
        numpool.Pool("processes", mp_context="spawn")


def boom_in_a_worker(parent: int) -> None:
    if os.getpid() != parent:
        raise ValueError("worker says no")


def test_a_worker_process_whose_initializer_raises_is_named_in_the_error() -> None:
    """processes: apply fails with WorkerCrashedError naming the initializer's error
    (the stdlib's worker would exit 0 and read as func ending its process)."""
    pool = numpool.Pool(
        "processes", max_workers=1, initializer=boom_in_a_worker, initargs=(os.getpid(),)
    )
    try:
        with pytest.raises(numpool.WorkerCrashedError, match=r"initializer.*worker says no"):
            pool.apply(np.sqrt, np.ones(10_000), chunks=4)
        with pytest.raises(cf.BrokenExecutor):  # still broken: it fails again, no hang
            pool.submit(pow, 2, 2).result(timeout=PATIENCE)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- timeout= on apply, reduce, map_arrays ------------------------------------------------


def wait_for(path: str) -> None:
    """Block until the file ``path`` exists (a gate the test opens)."""
    import time

    end = time.monotonic() + PATIENCE
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.005)


def stall_at(xb: np.ndarray, rows: np.ndarray, row: int, gate: str) -> np.ndarray:
    """xb + 1, except that the block holding ``row`` first waits on the gate."""
    if rows.size and rows[0] <= row <= rows[-1]:
        wait_for(gate)
    return xb + 1


def stall_at_sum(xb: np.ndarray, rows: np.ndarray, row: int, gate: str) -> float:
    return float(stall_at(xb, rows, row, gate).sum())


def stall_task(i: int, stall: int, gate: str) -> int:
    if i == stall:
        wait_for(gate)
    return i * i


@pytest.fixture
def gate(tmp_path: object) -> Iterator[str]:
    """A gate file, always opened at the end."""
    path = os.path.join(str(tmp_path), "gate")
    yield path
    open(path, "w").close()


def _open_later(gate: str, name: str) -> threading.Timer:
    """Open the gate only after any timeout below has passed: late where blocks are
    stopped or left behind; sooner where the caller (serial) or the pool's shutdown
    (an in-process Dask worker) must wait for the stalled block."""
    soon = name in ("serial", "dask-threads")  # (an in-process Dask worker's thread too)
    timer = threading.Timer(1.0 if soon else PATIENCE, open, (gate, "w"))
    timer.daemon = True
    timer.start()
    return timer


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("how", ["apply", "reduce", "map_arrays"])
def test_timeout_raises_and_the_pool_goes_on(name: str, how: str, gate: str) -> None:
    """apply/reduce/map_arrays(timeout=) raise TimeoutError while a block waits, stop
    what still runs, and the pool's next call is not held up by it."""
    pool = make_pool(name)
    timer = _open_later(gate, name)
    try:
        n = 4000
        x, rows = np.zeros(n), np.arange(n)
        with pytest.raises(cf.TimeoutError, match=r"timeout=0\.3"):
            if how == "apply":
                pool.apply(stall_at, x, rows, n // 2, gate, chunks=4, timeout=0.3)
            elif how == "reduce":
                pool.reduce(stall_at_sum, x, rows, n // 2, gate, chunks=4, timeout=0.3)
            else:
                pool.map_arrays(stall_task, range(8), [4] * 8, [gate] * 8, timeout=0.3)
        y = np.arange(1000.0)
        np.testing.assert_array_equal(
            pool.apply(np.sqrt, y, chunks=4, timeout=PATIENCE), np.sqrt(y)
        )
    finally:
        timer.cancel()
        open(gate, "w").close()
        close(pool)


@pytest.mark.parametrize("name", [*BACKENDS, "auto"])
def test_calls_with_a_timeout_run_every_block_every_time(name: str) -> None:
    """Calls with timeout= that finish in time give every row, on the first call and
    on later ones (a threads call with a deadline once cancelled its helpers before
    they started: its later calls ran the first rows alone and returned the rest
    unset)."""
    x = np.arange(4000.0)
    want = np.sqrt(x)
    pool = make_pool(name)
    try:
        for _ in range(4):
            got = pool.apply(np.sqrt, x, chunks=4, timeout=PATIENCE)
            assert got.tobytes() == want.tobytes()
            assert pool.reduce(np.sum, x, chunks=4, timeout=PATIENCE) == pytest.approx(x.sum())
            out = np.full_like(x, np.nan)
            assert pool.apply(np.sqrt, x, chunks=3, out=out, timeout=PATIENCE) is out
            assert out.tobytes() == want.tobytes()
    finally:
        close(pool)


@pytest.mark.parametrize("name", [*BACKENDS, "auto"])
def test_a_call_that_ends_past_its_timeout_raises_every_time(name: str) -> None:
    """Work that ends past the call's timeout raises TimeoutError on every backend and
    every call, also when it ran whole in the caller, which cannot be stopped (auto
    once returned the first call's result and raised on later ones; serial never
    raised)."""
    import time

    x = np.arange(2000.0)

    def slow(b: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        return b + 1

    def slow_sum(b: np.ndarray) -> float:
        return float(slow(b).sum())

    pool = make_pool(name)
    try:
        for _ in range(3):
            with pytest.raises(cf.TimeoutError, match=r"timeout=0\.01"):
                pool.apply(slow, x, timeout=0.01)
            with pytest.raises(cf.TimeoutError):
                pool.apply(slow, x, out=np.empty_like(x), timeout=0.01)
            with pytest.raises(cf.TimeoutError):
                pool.reduce(slow_sum, x, timeout=0.01)
            with pytest.raises(cf.TimeoutError):
                pool.map_arrays(slow, [x[:10]], timeout=0.01)
        assert pool.apply(slow, x, timeout=PATIENCE).tobytes() == (x + 1).tobytes()
    finally:
        close(pool)


def test_module_functions_take_timeout(gate: str) -> None:
    """numpool.apply/reduce/map(timeout=) raise TimeoutError as the Pool methods do."""
    timer = _open_later(gate, "threads")
    try:
        n = 4000
        x, rows = np.zeros(n), np.arange(n)
        with pytest.raises(cf.TimeoutError):
            numpool.apply(
                stall_at, x, rows, n // 2, gate, backend="threads", chunks=4, timeout=0.3
            )
        with pytest.raises(cf.TimeoutError):
            numpool.reduce(
                stall_at_sum, x, rows, n // 2, gate, backend="threads", chunks=4, timeout=0.3
            )
        with pytest.raises(cf.TimeoutError):
            numpool.map(stall_task, range(8), [4] * 8, [gate] * 8, backend="threads", timeout=0.3)
        np.testing.assert_array_equal(numpool.apply(np.negative, x, timeout=PATIENCE), -x)
    finally:
        timer.cancel()
        open(gate, "w").close()


# --- Executor.map(buffersize=) (CPython 3.14's ExecutorTest) and imap_unordered --------

EXECUTORS = ["serial", "threads", "processes", "auto"]


@pytest.fixture(scope="module", params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> Iterator[numpool.Pool]:
    """A 2-worker pool of each backend that has no cluster to start (shared here)."""
    pool = numpool.Pool(request.param, workers=2)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def test_map_buffersize_value_validation(executor: numpool.Pool) -> None:
    """buffersize must be a positive int or None (TypeError, ValueError), as in 3.14."""
    for bad in (0, -1):
        with pytest.raises(ValueError, match="buffersize"):
            executor.map(str, range(4), buffersize=bad)
    with pytest.raises(TypeError, match="buffersize"):
        executor.map(str, range(4), buffersize=2.0)  # type: ignore[arg-type]


def test_map_buffersize(executor: numpool.Pool) -> None:
    """With any buffersize, the results are map's, in order."""
    ints = range(4)
    for size in (1, 2, len(ints), len(ints) * 2):
        assert list(executor.map(str, ints, buffersize=size)) == ["0", "1", "2", "3"]


def test_map_buffersize_on_multiple_iterables(executor: numpool.Pool) -> None:
    """Several iterables, zipped, stop at the shortest."""
    got = list(executor.map(pow, range(4), [2] * 6, buffersize=2))
    assert got == [0, 1, 4, 9]


def test_map_buffersize_on_infinite_iterable(executor: numpool.Pool) -> None:
    """An endless input is read lazily: the first results come, nothing hangs."""
    import itertools

    res = executor.map(str, itertools.count(), buffersize=2)
    assert [next(res), next(res), next(res)] == ["0", "1", "2"]
    res.close()  # type: ignore[attr-defined]


def test_map_buffersize_when_buffer_is_full(executor: numpool.Pool) -> None:
    """Only buffersize items are taken from the input before any result is consumed."""
    ints = iter(range(4))
    res = executor.map(str, ints, buffersize=2)
    assert next(ints) == 2  # 0 and 1 were taken, no more
    del res


def test_map_buffersize_with_chunksize(executor: numpool.Pool) -> None:
    """buffersize counts chunks when chunksize > 1; results stay in order."""
    ints = iter(range(10))
    res = executor.map(str, ints, chunksize=3, buffersize=1)
    assert next(ints) == 3  # one chunk of 3 taken
    assert list(res) == [str(i) for i in range(10) if i != 3]


def test_map_buffersize_without_iterable(executor: numpool.Pool) -> None:
    """No iterable: nothing to do."""
    assert list(executor.map(str, buffersize=2)) == []


def test_imap_unordered_yields_every_result(executor: numpool.Pool) -> None:
    """Every call's result, once, whatever the order; chunks too; shortest iterable."""
    assert sorted(executor.imap_unordered(pow, range(20), [2] * 25)) == [i * i for i in range(20)]
    assert sorted(executor.imap_unordered(square, range(9), chunksize=4)) == [
        i * i for i in range(9)
    ]


def square(i: int) -> int:
    return i * i


def wait_unless_first(i: int, gate: str) -> int:
    if i != 0:
        wait_for(gate)
    return i


@pytest.mark.parametrize("name", ["threads", "processes"])
def test_imap_unordered_yields_what_completes_first(name: str, gate: str) -> None:
    """A result comes while calls submitted before it still wait: completion order."""
    with numpool.Pool(name, workers=2) as pool:
        it = pool.imap_unordered(wait_unless_first, [1, 0], [gate, gate])
        assert next(it) == 0  # call 1 waits on the gate: 0 came first
        open(gate, "w").close()
        assert list(it) == [1]


@pytest.mark.parametrize("name", ["threads", "processes"])
def test_imap_unordered_timeout_and_error(name: str, gate: str) -> None:
    """A timeout raises TimeoutError (what runs is stopped); an error is raised as
    its call completes."""
    with numpool.Pool(name, workers=2) as pool:
        it = pool.imap_unordered(wait_unless_first, [1], [gate], timeout=0.2)
        with pytest.raises(cf.TimeoutError):
            list(it)
        open(gate, "w").close()
        it2 = pool.imap_unordered(int, ["1", "x"])
        with pytest.raises(ValueError, match="invalid literal"):
            list(it2)
        assert sorted(pool.imap_unordered(square, range(4))) == [0, 1, 4, 9]


# --- ported from CPython's Lib/test/test_concurrent_futures/executor.py (ExecutorTest) --


def mul(x: int, y: int) -> int:
    return x * y


def capture(*args: object, **kwargs: object) -> tuple[object, object]:
    return args, kwargs


def test_submit(executor: numpool.Pool) -> None:
    """submit returns a future with fn's result."""
    assert executor.submit(pow, 2, 8).result(timeout=PATIENCE) == 256


def test_submit_keyword(executor: numpool.Pool) -> None:
    """Keywords reach fn, those named fn and self too; fn itself is positional-only."""
    assert executor.submit(mul, 2, y=8).result(timeout=PATIENCE) == 16
    got = executor.submit(capture, 1, self=2, fn=3).result(timeout=PATIENCE)
    assert got == ((1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        executor.submit(fn=capture, arg=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        executor.submit(arg=1)  # type: ignore[call-arg]


def test_map(executor: numpool.Pool) -> None:
    """map gives the builtin map's results, in order."""
    assert list(executor.map(pow, range(10), range(10))) == list(map(pow, range(10), range(10)))
    got = list(executor.map(pow, range(10), range(10), chunksize=3))
    assert got == list(map(pow, range(10), range(10)))


def test_map_exception(executor: numpool.Pool) -> None:
    """An error is raised when its item is reached, after the results before it."""
    i = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(i) == (0, 1)
    assert next(i) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(i)


@pytest.mark.parametrize("name", EXECUTORS)
def test_map_submits_without_iteration(name: str, tmp_path: object) -> None:
    """Every call is submitted by map itself, none consumed (held: unlike CPython's,
    numpool's iterator cancels what has not started when it is dropped)."""
    marks = os.path.join(str(tmp_path), "m")
    os.mkdir(marks)
    with numpool.Pool(name, workers=2) as pool:
        held = pool.map(_touch, [os.path.join(marks, str(i)) for i in range(10)])
        pool.shutdown(wait=True)
    del held
    assert sorted(os.listdir(marks)) == sorted(str(i) for i in range(10))


def _touch(path: str) -> None:
    open(path, "w").close()


@pytest.mark.parametrize("bad", [0, -1])
def test_max_workers_negative(bad: int) -> None:
    """max_workers below 1 is a ValueError."""
    with pytest.raises(ValueError):
        numpool.Pool("threads", max_workers=bad)


@pytest.mark.parametrize("name", EXECUTORS)
def test_submit_after_shutdown_and_context_manager(name: str) -> None:
    """with-block shuts the pool down; submit after shutdown is a RuntimeError."""
    with numpool.Pool(name, workers=2) as pool:
        assert pool.submit(abs, -5).result(timeout=PATIENCE) == 5
    with pytest.raises(RuntimeError):
        pool.submit(pow, 2, 5)
    with pytest.raises(RuntimeError):
        pool.map(abs, range(2), buffersize=1)


def test_imap_unordered_dropped_before_its_first_item_cancels(gate: str) -> None:
    """Dropping the iterator unread cancels the calls not started (one worker, held)."""
    with numpool.Pool("threads", workers=1) as pool:
        blocker = pool.submit(wait_for, gate)
        it = pool.imap_unordered(square, range(3))
        futures = list(it._left)  # type: ignore[attr-defined]
        del it
        assert all(f.cancelled() for f in futures)
        open(gate, "w").close()
        blocker.result(timeout=PATIENCE)
