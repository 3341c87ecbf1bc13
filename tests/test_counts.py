"""Pulled blocks (threads) try one block per worker against the model's count.

``planner.model.blocks`` sizes blocks from a worker's busy seconds per row, but
what each block costs besides its rows depends on func and on the machine, so a
kind of call times its own calls at both counts, alternating, and keeps the
faster (``model.kept_count``, ``model.Counts``; ``Runner._time_counts`` wires
them). The rule is tested from tables of walls; the wiring from walls the test
puts in the trial, and from the block sizes func sees, never from a timing.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import numpool
from numpool._runner import Runner
from numpool.planner import evidence, model
from numpool.planner.model import COUNT_MARGIN, COUNT_TRIALS, Counts, kept_count

T = COUNT_TRIALS


@pytest.mark.parametrize(
    ("walls", "kept"),
    [
        ({8: [1.0] * T, 2: [1.0] * T}, 8),  # the same: the model's
        ({8: [1.0] * T, 2: [0.5] * T}, 2),  # one per worker, twice as fast
        ({8: [0.5] * T, 2: [1.0] * T}, 8),
        ({8: [1.0] * T, 2: [1.0 - COUNT_MARGIN / 2] * T}, 8),  # within the margin
        ({8: [1.0] * T, 2: [1.0 - 2 * COUNT_MARGIN] * T}, 2),  # past it
        ({8: [5.0, 1.0, 5.0, 5.0], 2: [2.0] * T}, 8),  # the fastest call counts
        ({8: [1.0] * T, 2: [9.0, 9.0, 0.1, 9.0]}, 2),
        ({8: [1.0] * T, 2: [0.1] * (T - 1)}, None),  # not yet timed enough
        ({8: [1.0] * (T - 1), 2: [0.1] * T}, None),
        ({8: [1.0] * T}, None),
        ({}, None),
    ],
)
def test_the_count_kept_is_the_faster_past_a_margin(
    walls: dict[int, list[float]], kept: int | None
) -> None:
    assert kept_count(8, 2, walls) == kept


def test_a_trial_alternates_its_counts_until_it_keeps_one() -> None:
    c = Counts(6, 2)
    seen = []
    while c.kept is None:
        n = c.next()
        seen.append(n)
        c.note(n, 1.0 if n == 6 else 0.5)
    assert seen == [6, 2] * T
    assert c.kept == 2 and c.next() == 2
    c.note(6, 1e-9)  # a call after it kept one changes nothing
    assert c.kept == 2 and c.walls[6] == [1.0] * T


def test_a_trial_ignores_other_counts_and_empty_walls() -> None:
    c = Counts(6, 2)
    c.note(4, 0.1)  # (a route the model has since moved)
    c.note(6, 0.0)
    assert c.walls == {6: [], 2: []} and c.next() == 6


def test_a_new_trial_keeps_the_walls_of_the_counts_it_shares() -> None:
    """The model's count moved (its blocks were timed): one block per worker's walls
    are not timed again."""
    old = Counts(8, 2)
    for n in (8, 2, 8):
        old.note(n, 1.0 if n == 8 else 0.5)
    new = Counts(6, 2, old.walls)
    assert new.walls == {6: [], 2: [0.5]} and new.next() == 6
    again = Counts(8, 2, old.walls)
    assert again.walls == {8: [1.0, 1.0], 2: [0.5]} and again.next() == 2
    old.walls[2].append(0.1)  # (copies, not the old trial's lists)
    assert again.walls[2] == [0.5]


def _sizes_func(sizes: list[int]):  # type: ignore[no-untyped-def]
    lock = threading.Lock()

    def func(v: np.ndarray) -> np.ndarray:
        with lock:
            sizes.append(len(v))
        return np.exp(v)

    return func


def _blocks_of(sizes: list[int]) -> int:
    """Blocks of one call, from the lengths func saw (its first 2 rows are a head)."""
    return sum(1 for s in sizes if s > 2)


@pytest.fixture
def model_says_8(monkeypatch: pytest.MonkeyPatch, fresh_evidence: None) -> None:
    """The model gives 8 blocks on threads, whatever the calls' blocks measure (and
    no evidence from other tests)."""
    real = Runner._model_blocks

    def eight(self: Runner, backend, rows, ev, row_bytes):  # type: ignore[no-untyped-def]
        return real(self, backend, rows, ev, row_bytes) if backend.inline else 8

    monkeypatch.setattr(Runner, "_model_blocks", eight)


def test_a_threads_route_times_both_counts_then_keeps_one(model_says_8: None) -> None:
    """Calls alternate 8 blocks and one per worker, then all run the count kept (which
    one is the machine's: either), with NumPy's bits every time."""
    n = 100_000
    x = np.linspace(0, 1, n)
    sizes: list[int] = []
    func = _sizes_func(sizes)
    counts = []
    with numpool.Pool("threads", workers=2) as pool:
        for _ in range(2 * T + 8):
            sizes.clear()
            assert np.array_equal(pool.apply(func, x), np.exp(x))
            counts.append(_blocks_of(sizes))
        ((_, ev),) = evidence.cache.items()
        trial = ev.counts[n]
    assert trial.kept in (8, 2)
    # the first call settles the route; from the next, its calls alternate
    start = counts.index(8, 1)
    assert counts[start : start + 2 * T] == [8, 2] * T
    assert set(counts[start + 2 * T :]) == {trial.kept}


@pytest.mark.parametrize(
    ("walls", "kept"),
    [({8: [1.0] * T, 2: [0.1] * (T - 1)}, 2), ({8: [1e-9] * T, 2: [1.0] * (T - 1)}, 8)],
)
def test_the_count_kept_is_the_one_the_walls_favour(
    model_says_8: None, walls: dict[int, list[float]], kept: int
) -> None:
    """Walls put in the trial (its last call, at one block per worker, runs for real:
    the walls given decide whatever it takes); then every call runs the count kept."""
    n = 100_000
    x = np.linspace(0, 1, n)
    sizes: list[int] = []
    func = _sizes_func(sizes)
    with numpool.Pool("threads", workers=2) as pool:
        pool.apply(func, x)
        pool.apply(func, x)  # on its route: the trial starts
        ((_, ev),) = evidence.cache.items()
        trial = ev.counts[n] = model.Counts(8, 2)
        trial.walls = {k: list(v) for k, v in walls.items()}
        counts = []
        for _ in range(4):
            sizes.clear()
            assert np.array_equal(pool.apply(func, x), np.exp(x))
            counts.append(_blocks_of(sizes))
    assert counts[0] == 2  # one per worker: timed fewer times
    assert trial.kept == kept
    assert counts[1:] == [kept] * 3


def test_a_count_given_with_chunks_is_not_tried(model_says_8: None) -> None:
    n = 100_000
    x = np.linspace(0, 1, n)
    sizes: list[int] = []
    func = _sizes_func(sizes)
    with numpool.Pool("threads", workers=2) as pool:
        for _ in range(2 * T + 2):
            sizes.clear()
            pool.apply(func, x, chunks=5)
            assert _blocks_of(sizes) == 5
        assert [ev.counts for _, ev in evidence.cache.items()] == [{}] * len(evidence.cache)
