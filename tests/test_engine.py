"""The engine on an inline backend (serial): blocks run one after another in the
caller's thread, without a future per block (numpool._engine._drive_inline).

No timing is asserted: where a deadline matters, a block waits well past it, and
only what ran (or did not) after it is checked.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import time
import traceback

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@given(st.integers(0, 10_000), st.integers(1, 40), st.integers(-5, 20_000))
def test_bounds_give_every_row_once_the_first_block_leading(
    rows: int, chunks: int, lead: int
) -> None:
    """Block edges cover rows 0..rows in order; the blocks after the first differ by at
    most a row, and the first holds up to ``lead`` rows more (at most rows // chunks)."""
    edges = _engine.bounds(rows, chunks, lead)
    sizes = [b - a for a, b in itertools.pairwise(edges)]
    assert edges[0] == 0 and edges[-1] == rows and len(sizes) == chunks
    assert all(s >= 0 for s in sizes)
    rest = sizes[1:]
    if rest:
        assert max(rest) - min(rest) <= 1
        extra = max(0, min(lead, rows // chunks))
        assert sizes[0] - min(rest) in (extra, extra - 1) or sizes[0] == min(rest) + extra
    if lead <= 0 or chunks == 1:
        assert edges == [i * rows // chunks for i in range(chunks + 1)]


def test_the_caller_runs_the_first_pulled_block_and_the_lag_is_noted() -> None:
    """Pulled blocks (threads): block 0 is the caller's, whoever wakes first; the
    call notes how the helpers' blocks started and ended against the caller's."""
    import threading

    x = np.arange(4000.0)
    me = threading.current_thread().name
    seen: list[tuple[float, int, str]] = []
    helper_in = threading.Event()

    def f(b: np.ndarray) -> np.ndarray:
        who = threading.current_thread().name
        seen.append((float(b[0]), len(b), who))
        if len(b) > 2:  # (not the first call's head)
            if who == me:
                assert helper_in.wait(30)  # both blocks run: each on its own thread
            else:
                helper_in.set()
        return b * 2

    with numpool.Pool("threads", workers=2) as pool:
        for _ in range(4):  # the planner's path, then a route
            seen.clear()
            helper_in.clear()
            assert pool.apply(f, x, chunks=2).tobytes() == (x * 2).tobytes()
            blocks = sorted(s for s in seen if s[1] > 2)
            assert len(blocks) == 2 and blocks[0][2] == me and blocks[1][2] != me
            stats = pool.last_stats
            assert stats is not None and stats.lag_s is not None and stats.late_s is not None
