"""A Pool dropped without shutdown() releases what it holds, as the stdlib's executors do.

Written from CPython's ``test_del_shutdown`` and ``test_shutdown_no_wait``
(Lib/test/test_concurrent_futures/test_shutdown.py): make a pool, start a map,
drop the pool (or shut it down without waiting) while the map's iterator is
still alive, and the workers still finish the map, then end. Here also: the
pool's shared memory leaves /dev/shm, and the shutdown never runs in the thread
that collected the pool. Nothing here measures a time: a deadline only bounds
how long something that must happen may take.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import numpool
from numpool.backends import BackendSet

TESTS = Path(__file__).parent
#: how long the workers of a dropped pool may take to end (never a timing)
PATIENCE = 30.0


def _worker_processes() -> set[psutil.Process]:
    """Worker processes of this process's pools: children of its fork server (the
    grandchildren of this process; the fork server and resource tracker are
    children, and live on)."""
    me = os.getpid()
    found = set()
    for p in psutil.Process(me).children(recursive=True):
        try:
            if p.ppid() != me:
                found.add(p)
        except psutil.NoSuchProcess:
            pass
    return found


def _running(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_until_ended(threads: set[threading.Thread], procs: set[psutil.Process]) -> None:
    deadline = time.monotonic() + PATIENCE
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    while any(_running(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.02)
    alive = sorted(t.name for t in threads if t.is_alive())
    running = sorted(p.pid for p in procs if _running(p))
    assert not alive, f"threads of the dropped pool still alive after {PATIENCE} s: {alive}"
    assert not running, f"workers of the dropped pool still running after {PATIENCE} s: {running}"


@pytest.mark.parametrize("how", ["dropped", "shutdown(wait=False)"])
@pytest.mark.parametrize("backend", ["serial", "threads", "processes", "auto"])
def test_a_pool_let_go_finishes_its_map_then_its_workers_end(backend: str, how: str) -> None:
    """A pool dropped, or shut down without waiting, with a map in flight finishes it;
    then its threads and processes end."""
    pool = numpool.Pool(backend, workers=2)
    threads_before = set(threading.enumerate())
    procs_before = _worker_processes()
    pool.apply(np.sqrt, np.linspace(0, 1, 10_000), chunks=4)
    if backend == "auto":
        # a call on each of auto's backends with workers (submit and map go to threads)
        pool._backends.get("processes").submit_call(abs, -1).result(timeout=PATIENCE)
    res = pool.map(abs, range(-5, 5))
    threads = set(threading.enumerate()) - threads_before
    procs = _worker_processes() - procs_before
    if backend in ("serial", "threads", "auto"):
        assert threads, "the map ran on no thread of the pool's"
    if backend in ("processes", "auto"):
        assert procs, "the pool started no worker process"
    if how == "dropped":
        del pool
        gc.collect()
    else:
        pool.shutdown(wait=False)
    _wait_until_ended(threads, procs)
    assert list(res) == [abs(v) for v in range(-5, 5)]


def test_a_dropped_pool_is_shut_down_off_the_collecting_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dropped pool is shut down with wait=False, never in the thread that collected it."""
    calls: list[tuple[threading.Thread, bool]] = []
    done = threading.Event()
    shutdown = BackendSet.shutdown

    def record(self: BackendSet, wait: bool = True, *, cancel_futures: bool = False) -> None:
        calls.append((threading.current_thread(), wait))
        shutdown(self, wait=wait, cancel_futures=cancel_futures)
        done.set()

    monkeypatch.setattr(BackendSet, "shutdown", record)
    pool = numpool.Pool("threads", workers=2)
    assert pool.submit(abs, -3).result(timeout=PATIENCE) == 3
    del pool
    gc.collect()
    assert done.wait(PATIENCE), "the dropped pool was never shut down"
    assert calls == [(calls[0][0], False)]
    assert calls[0][0] is not threading.current_thread()


def test_an_explicit_shutdown_leaves_nothing_for_the_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool shut down by hand is not shut down again when it is collected."""
    pool = numpool.Pool("threads", workers=2)
    pool.shutdown()
    calls: list[bool] = []
    monkeypatch.setattr(BackendSet, "shutdown", lambda self, wait=True, **kw: calls.append(wait))
    del pool
    gc.collect()
    assert calls == []


@pytest.mark.parametrize("backend", ["processes", "auto"])
def test_a_dropped_pool_leaves_no_shared_memory(backend: str) -> None:
    """Once a dropped pool is collected, the segments kept warm for it leave /dev/shm."""
    # In a fresh interpreter: in this one the suite's other pools keep the arena's
    # idle segments (rightly) as long as they live.
    code = f"""
        import gc, time, numpy as np, numpool
        from helpers import segments
        from numpool import shm

        def mine():  # (the process's lock file stays until it exits)
            return {{n for n in segments() if not shm.parse_name(n).lock}}

        pool = numpool.Pool({backend!r}, workers=2)
        pool._backends.get("processes")  # auto: as if it had chosen them
        x = np.linspace(0, 1, 1_000_000)
        if pool.backend == "processes":
            y = pool.map_arrays(np.multiply, [x, x], [2.0, 3.0])
            assert np.array_equal(y[1], x * 3.0)
            del y
        a = numpool.share(x)  # dropped: its segment stays warm in the arena for the pool
        del a
        assert mine(), "no segment was kept for the pool: nothing to test"
        del pool
        gc.collect()
        deadline = time.monotonic() + {PATIENCE}
        while mine() and time.monotonic() < deadline:
            time.sleep(0.02)
        print(sorted(mine()))
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(TESTS),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"segments left by the dropped pool: {r.stdout}"
