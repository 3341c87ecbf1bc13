"""The concurrent.futures.Executor contract, on every backend (serial and auto included).

Written from the documented contract and what CPython's own executor tests check:
submit, result/exception with timeouts, cancel, callbacks, map (lazy, timeout from
the call, errors when reached, results released as consumed, shortest iterable,
chunksize), shutdown with wait and cancel_futures, submit after shutdown,
wait/as_completed, a worker killed mid-task, Ctrl-C. Nothing here measures a
time: work that must stay pending waits on a gate (a file) that the test opens.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import numpool

BACKENDS = ["serial", "threads", "processes", "pickle", "auto", "dask-threads"]
#: how long a test may wait for something that must happen (never for a timing)
PATIENCE = 60.0


def wait_for(path: str, value: object = None) -> object:
    """Block until the file ``path`` exists (a gate the test opens), then return value."""
    deadline = time.monotonic() + PATIENCE
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} never opened")
        time.sleep(0.005)
    return value


def fail(message: str) -> None:
    raise ValueError(message)


def square(x: float) -> float:
    return x * x


def array_of(x: float) -> np.ndarray:
    return np.full(3, x)


def capture(*args: object, **kwargs: object) -> tuple[object, object]:
    return args, kwargs


@pytest.fixture(params=BACKENDS)
def pool(request: pytest.FixtureRequest) -> Iterator[numpool.Pool]:
    """A fresh one-worker pool of each backend (one worker: a gate holds everything)."""
    name = request.param
    address = None
    if name.startswith("dask"):
        distributed = pytest.importorskip("distributed")
        address = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        )
        name = "dask"
    p = numpool.Pool(name, workers=1, address=address)
    yield p
    p.shutdown(wait=True, cancel_futures=True)
    if address is not None:
        address.close()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "gate")
    yield path
    Path(path).touch()  # never leave a worker waiting


def test_submit_returns_a_future_with_the_result(pool: numpool.Pool) -> None:
    f = pool.submit(square, 7)
    assert isinstance(f, cf.Future) and f.result(timeout=PATIENCE) == 49
    assert f.done() and not f.cancelled() and f.exception() is None
    args, kwargs = pool.submit(capture, 1, fn=2, self=3).result(timeout=PATIENCE)
    assert args == (1,) and kwargs == {"fn": 2, "self": 3}


def test_an_exception_is_stored_with_its_type(pool: numpool.Pool) -> None:
    f = pool.submit(fail, "no good")
    assert isinstance(f.exception(timeout=PATIENCE), ValueError)
    with pytest.raises(ValueError, match="no good"):
        f.result()


def test_result_times_out_while_pending_and_cancel_stops_it(pool: numpool.Pool, gate: str) -> None:
    blocker = pool.submit(wait_for, gate, "opened")
    # (a worker process's call queue takes the next call or two already: those are
    # running to the Future, and cannot be cancelled, as in the stdlib)
    queued = [pool.submit(square, i) for i in range(4)][-1]
    with pytest.raises(cf.TimeoutError):
        blocker.result(timeout=0.05)
    assert queued.cancel() and queued.cancelled() and queued.done()
    with pytest.raises(cf.CancelledError):
        queued.result()
    Path(gate).touch()
    assert blocker.result(timeout=PATIENCE) == "opened"
    assert not blocker.cancel()  # finished: too late


def test_callbacks_run_when_done(pool: numpool.Pool) -> None:
    seen: list[object] = []
    f = pool.submit(square, 5)
    f.add_done_callback(lambda g: seen.append(g.result()))
    cf.wait([f], timeout=PATIENCE)
    deadline = time.monotonic() + PATIENCE
    while not seen and time.monotonic() < deadline:
        time.sleep(0.005)
    assert seen == [25]
    f.add_done_callback(lambda g: seen.append("at once"))  # already done: runs now
    assert seen[-1] == "at once"


def test_wait_and_as_completed(pool: numpool.Pool, gate: str) -> None:
    quick = pool.submit(square, 2)
    done, _ = cf.wait([quick], timeout=PATIENCE, return_when=cf.FIRST_COMPLETED)
    assert done == {quick}
    slow = pool.submit(wait_for, gate, 1)
    done, not_done = cf.wait([quick, slow], timeout=0.05)
    assert done == {quick} and not_done == {slow}  # a timeout splits, never raises
    Path(gate).touch()
    got = {f.result() for f in cf.as_completed([quick, slow], timeout=PATIENCE)}
    assert got == {4, 1}


# --- map -------------------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 3])
def test_map_is_lazy_ordered_and_stops_at_the_shortest(pool: numpool.Pool, chunksize: int) -> None:
    it = pool.map(pow, [2, 3, 4, 5], [2, 2, 2], chunksize=chunksize)
    assert not isinstance(it, list)
    assert list(it) == [4, 9, 16]
    assert list(pool.map(square, [], chunksize=chunksize)) == []


def test_map_raises_each_error_when_its_item_is_reached(pool: numpool.Pool) -> None:
    it = pool.map(_divide, [1, 1, 0, 1], [1, 2, 0, 4])
    assert next(it) == 1.0 and next(it) == 0.5  # the results before it come first
    with pytest.raises(ZeroDivisionError):
        next(it)


def _divide(a: float, b: float) -> float:
    return a / b


def test_map_timeout_counts_from_the_call_even_when_every_worker_is_busy(
    pool: numpool.Pool, gate: str
) -> None:
    it = pool.map(wait_for, [gate, gate], timeout=0.05)
    with pytest.raises(cf.TimeoutError):
        list(it)
    Path(gate).touch()


def test_map_releases_results_as_they_are_consumed(pool: numpool.Pool) -> None:
    if pool.backend == "dask":
        pytest.skip("an in-process Dask worker keeps a result until its scheduler forgets it")
    it = pool.map(array_of, [1.0, 2.0, 3.0])
    first = next(it)
    ref = weakref.ref(first)
    del first
    gc.collect()
    assert ref() is None, "the iterator kept a yielded result"
    assert [float(a[0]) for a in it] == [2.0, 3.0]


def test_map_refuses_a_bad_chunksize_at_the_call(pool: numpool.Pool) -> None:
    with pytest.raises(ValueError, match="chunksize must be >= 1"):
        pool.map(square, [1], chunksize=0)


def test_dropping_the_map_iterator_cancels_what_has_not_started(
    pool: numpool.Pool, gate: str, tmp_path: Path
) -> None:
    if pool.backend == "dask":
        pytest.skip(
            "Dask cancels asynchronously: a task its scheduler already handed to a "
            "worker may still run (seen: 3 of 4 on dask-threads under load)"
        )
    marks = [str(tmp_path / f"ran-{i}") for i in range(4)]
    it = pool.map(_mark_after, [gate] * 4, marks)
    del it
    gc.collect()
    Path(gate).touch()
    pool.submit(square, 1).result(timeout=PATIENCE)  # the queue is drained by now
    ran = sum(os.path.exists(m) for m in marks)
    assert ran <= 2, f"{ran} of 4 ran after the iterator was dropped"


def _mark_after(gate: str, mark: str) -> None:
    wait_for(gate)
    Path(mark).touch()


# --- shutdown -------------------------------------------------------------------


def test_shutdown_waits_cancels_and_refuses_new_work(pool: numpool.Pool, gate: str) -> None:
    running = pool.submit(wait_for, gate, "done")
    queued = [pool.submit(square, i) for i in range(5)]
    Path(gate).touch()
    if pool.backend == "dask":  # Dask does not tell a client which tasks have started:
        running.result(timeout=PATIENCE)  # cancel_futures cancels every unfinished one
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) == "done"  # waited for
    assert all(f.done() for f in queued)
    assert all(f.cancelled() or f.exception() is None for f in queued)
    with pytest.raises(RuntimeError):
        pool.submit(square, 2)
    with pytest.raises(RuntimeError):
        pool.map(square, [1])
    pool.shutdown()  # idempotent


def test_the_context_manager_shuts_down() -> None:
    with numpool.Pool("threads", workers=2) as pool:
        f = pool.submit(square, 3)
    assert f.result(timeout=0) == 9
    with pytest.raises(RuntimeError):
        pool.submit(square, 3)


def test_cancel_futures_cancels_the_queue(gate: str) -> None:
    for backend in ("serial", "threads", "processes"):
        pool = numpool.Pool(backend, workers=1)
        pool.submit(wait_for, gate)
        queued = [pool.submit(square, i) for i in range(20)]
        pool.shutdown(wait=False, cancel_futures=True)
        Path(gate).touch()
        # (wait=False: cancelled as the pool winds down; as in the stdlib, a future
        # cancelled by shutdown is done() but never notified, so wait() does not count it)
        deadline = time.monotonic() + PATIENCE
        while not all(f.done() for f in queued) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(f.done() for f in queued), backend
        assert sum(f.cancelled() for f in queued) >= 10, backend
        Path(gate).unlink()


# --- faults -----------------------------------------------------------------------


def _die(_: object = None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("backend", ["processes", "pickle"])
def test_a_worker_killed_mid_task_fails_its_future_and_the_pool_goes_on(backend: str) -> None:
    """The future fails (not a hang); numpool's pool then starts fresh workers for the
    next call (where the stdlib's would refuse every later submit: see the README)."""
    with numpool.Pool(backend, workers=1) as pool:
        f = pool.submit(_die)
        with pytest.raises(RuntimeError):  # BrokenProcessPool, a RuntimeError
            f.result(timeout=PATIENCE)
        assert pool.submit(square, 4).result(timeout=PATIENCE) == 16


def test_a_keyboard_interrupt_in_the_call_reaches_the_caller(pool: numpool.Pool) -> None:
    if pool.backend in ("processes", "pickle", "dask"):
        pytest.skip("a worker process's KeyboardInterrupt is the parent's to raise")
    f = pool.submit(_interrupt)
    with pytest.raises(KeyboardInterrupt):
        f.result(timeout=PATIENCE)


def _interrupt() -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("backend", ["serial", "threads", "processes", "auto"])
def test_ctrl_c_while_waiting_reaches_the_caller(backend: str, tmp_path: Path) -> None:
    code = f"""
        import time, numpool
        def slow(x):
            time.sleep(3)
            return x
        if __name__ == "__main__":
            with numpool.Pool({backend!r}, workers=1) as pool:
                f = pool.submit(slow, 1)
                try:
                    print("go", flush=True)  # (in the try: the signal may come at once)
                    f.result()
                except KeyboardInterrupt:
                    print("interrupted", flush=True)
    """
    script = tmp_path / "ctrl_c.py"
    script.write_text(textwrap.dedent(code))
    p = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "go"
        _until_asleep(p.pid)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=PATIENCE)
    finally:
        p.kill()
    assert "interrupted" in out, err


def _until_asleep(pid: int, settle_s: float = 0.2) -> None:
    """Wait until process ``pid``'s main thread has slept for ``settle_s`` on end.

    Ctrl-C must reach the caller while it waits, not on its way in: CPython's
    ``threading.Condition.wait`` is not safe against a signal that lands between
    its lock's release and its ``try`` (a KeyboardInterrupt there leaves the lock
    released, and ``Future.result``'s ``with`` then raises "cannot release
    un-acquired lock"; seen once on 3.13 in CI, cf. python/cpython#118433). A
    signal sent the moment "go" is read can land there; one sent while the
    thread sleeps in its lock cannot."""
    import psutil

    me = psutil.Process(pid)
    deadline = time.monotonic() + PATIENCE
    since = None
    while time.monotonic() < deadline:
        asleep = me.status() == psutil.STATUS_SLEEPING
        now = time.monotonic()
        since = (since or now) if asleep else None
        if since is not None and now - since >= settle_s:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never settled into its wait")
