"""The engine on an inline backend (serial): blocks run one after another in the
caller's thread, without a future per block (numpool._engine._drive_inline).

No timing is asserted: where a deadline matters, a block waits well past it, and
only what ran (or did not) after it is checked.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
import traceback

import numpy as np
import pytest

import numpool
from numpool import _engine


def test_serial_blocks_run_in_order_in_the_caller_each_row_once() -> None:
    """chunks=4 on serial: func sees the first rows, then 4 blocks, in row order, in
    the caller's thread; together they are every row once, and the result is
    func(x) bit for bit."""
    import threading

    x = np.arange(3000.0).reshape(1000, 3)
    seen: list[tuple[int, int, str]] = []

    def f(b: np.ndarray) -> np.ndarray:
        seen.append((int(b[0, 0]) // 3, b.shape[0], threading.current_thread().name))
        return np.sin(b)

    with numpool.Pool("serial") as pool:
        for _ in range(3):  # the planner's path, then a settled route
            seen.clear()
            assert pool.apply(f, x, chunks=4).tobytes() == np.sin(x).tobytes()
            rows = [r for start, n, _ in seen for r in range(start, start + n)]
            assert rows == list(range(len(x)))  # in order, each once
            assert {who for _, _, who in seen} == {threading.current_thread().name}
            stats = pool.last_stats
            assert stats is not None and len(seen) == stats.tasks == 5  # (first rows + 4)


def test_a_failing_serial_block_raises_its_own_error_and_stops_there() -> None:
    """The first failing block's error comes back as raised, with func's frame last
    in its traceback, and no later block runs."""
    x = np.arange(400.0)
    ran: list[float] = []

    def f(b: np.ndarray) -> np.ndarray:
        ran.append(float(b[0]))
        if b[0] <= 200 < b[0] + len(b):
            raise KeyError("row 200")
        return b + 1

    with numpool.Pool("serial") as pool:
        for _ in range(3):
            ran.clear()
            with pytest.raises(KeyError, match="row 200") as info:
                pool.apply(f, x, chunks=4)
            assert info.tb is not None
            last = traceback.extract_tb(info.tb)[-1]
            assert last.name == "f"
            assert max(ran) <= 200  # (nothing after the failing block)


def test_the_deadline_is_checked_before_each_serial_block() -> None:
    """timeout= on serial: a block that overruns it is let finish (it runs in the
    caller), then TimeoutError, and no block after it starts."""
    x = np.arange(400.0)
    ran: list[float] = []

    def f(b: np.ndarray) -> np.ndarray:
        ran.append(float(b[0]))
        if b[0] <= 200 < b[0] + len(b):
            time.sleep(0.5)  # (well past the timeout below)
        return b + 1

    with numpool.Pool("serial") as pool, pytest.raises(cf.TimeoutError, match=r"timeout=0\.1"):
        pool.apply(f, x, chunks=4, timeout=0.1)
    assert max(ran) <= 200


def test_drive_inline_runs_jobs_in_order_and_feeds_each_result() -> None:
    """_drive on an inline backend calls each job's function with its arguments, in
    order, and hands on_done its index and result; a generator of jobs is consumed
    lazily (a job is made only once the one before it is done)."""
    made: list[int] = []
    done: list[tuple[int, int]] = []

    def jobs():  # type: ignore[no-untyped-def]
        for i in range(4):
            made.append(i)
            assert [d for d, _ in done] == list(range(i))
            yield i, pow, (i, 2)

    with numpool.Pool("serial") as pool:
        backend = pool._backends.get("serial")
        _engine._drive(backend, jobs(), lambda i, r: done.append((i, r)), str)
    assert made == [0, 1, 2, 3]
    assert done == [(0, 0), (1, 1), (2, 4), (3, 9)]
