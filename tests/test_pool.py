"""numpool.Pool is a concurrent.futures.Executor."""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import pytest

import funcs
import numpool


def test_is_an_executor(pool: numpool.Pool) -> None:
    """submit returns a Future; map keeps Executor.map's signature (timeout, chunksize)."""
    assert isinstance(pool, cf.Executor)
    f = pool.submit(funcs.total, np.ones(4))
    assert isinstance(f, cf.Future) and f.result(timeout=30) == 4.0
    assert list(pool.map(pow, [2, 3], [3, 2], timeout=30, chunksize=1)) == [8, 9]
    assert [r for r in pool.map(abs, [-1, -2])] == [1, 2]


def test_submit_propagates_exceptions(pool: numpool.Pool) -> None:
    f = pool.submit(funcs.fail_task, np.ones(2), 3)
    with pytest.raises(KeyError):
        f.result(timeout=30)


def test_context_manager_and_shutdown_are_idempotent() -> None:
    with numpool.Pool("processes", workers=1) as pool:
        assert pool.apply(np.negative, np.arange(4.0)).tolist() == [-0.0, -1.0, -2.0, -3.0]
    assert pool.closed
    pool.shutdown()
    assert "closed" in repr(pool)


def test_repr_and_properties() -> None:
    with numpool.Pool("threads", workers=2, blas_threads=1) as pool:
        assert (pool.backend, pool.workers, pool.blas_threads) == ("threads", 2, 1)
        assert repr(pool) == "<numpool.Pool backend='threads' workers=2 blas_threads=1>"
    with numpool.Pool("serial") as pool:
        assert pool.workers == 1 and pool.blas_threads is None


def test_map_timeout() -> None:
    """A map that outlives its timeout raises TimeoutError (the Executor contract)."""
    import time

    with numpool.Pool("threads", workers=1) as pool, pytest.raises(cf.TimeoutError):
        list(pool.map(time.sleep, [0.5, 0.5], timeout=0.1))


def test_threads_really_run_in_parallel() -> None:
    """Two tasks that each wait for the other can only finish when they run at once."""
    import threading

    meet = threading.Barrier(2)
    with numpool.Pool("threads", workers=2) as pool:
        done = list(pool.map(lambda _: meet.wait(timeout=30), [0, 1]))
    assert sorted(done) == [0, 1]


def test_processes_use_distinct_workers() -> None:
    """The processes backend runs tasks in other processes than the caller's."""
    import os

    with numpool.Pool("processes", workers=2) as pool:
        pids = set(pool.map(funcs.pid, range(8)))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_interpreter_exit_cleans_up() -> None:
    """A script that never shuts its pools down exits at once, silently, leaving nothing."""
    import subprocess
    import sys

    from helpers import segments, without_tracker_noise

    before = segments()
    code = (
        "import numpy as np, numpool\n"
        "x = numpool.share(np.linspace(0, 1, 10**6))\n"
        "y = numpool.apply(np.exp, x, backend='processes', workers=2)\n"
        "z = numpool.map(np.negative, [x, x], backend='pickle', workers=2)\n"
        "w = numpool.apply(np.exp, np.ones(10**6))\n"
        "print(float(y[1]), float(z[0][1]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-W", "error", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    step = np.linspace(0, 1, 10**6)[1]
    assert out.split() == [repr(float(np.exp(step))), repr(float(-step))]
    assert without_tracker_noise(err) == "", f"no warnings at exit: {err}"
    assert not segments(owner=proc.pid), "the script's segments are gone"
    assert segments() <= before
