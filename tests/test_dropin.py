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
        with pytest.raises(numpool.WorkerCrashedError, match="initializer.*worker says no"):
            pool.apply(np.sqrt, np.ones(10_000), chunks=4)
        with pytest.raises(cf.BrokenExecutor):  # still broken: it fails again, no hang
            pool.submit(pow, 2, 2).result(timeout=PATIENCE)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
