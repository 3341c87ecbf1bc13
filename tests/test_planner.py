"""backend="auto" end to end: results, what each call records, plans and explanations.

No test here asserts a timing or a measured speed-up. Decisions are asserted only
where the machine profile passed in settles them (``handoffs_cost``), or as
invariants that hold on any machine: the chosen backend is the one the plan's own
predicted costs call for. The decisions themselves are tested from tables in
test_model.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import funcs
import numpool
from numpool.lab.demo import py_loop
from numpool.planner import evidence, measure, model
from numpool.planner.evidence import func_key
from numpool.planner.profile import Profile

pytestmark = pytest.mark.usefixtures("fresh_evidence")


@pytest.fixture
def auto() -> Iterator[numpool.Pool]:
    """A new auto pool: its processes start cold, as a user's first call would."""
    with numpool.Pool("auto", workers=2) as pool:
        yield pool


def _follows_its_figures(plan: numpool.Plan) -> None:
    """The backend is the one the plan's predicted costs call for: the cheapest, or
    kept within the hysteresis margin, or run once to be measured."""
    costs = {b: t for b, t in plan.costs.items() if t < math.inf}
    assert plan.backend in costs, plan.explain()
    best = min(costs.values())
    if plan.explore:
        assert costs[plan.backend] <= 1.5 * best * 1.0001, plan.explain()
    else:
        assert costs[plan.backend] <= model.SWITCH_MARGIN * best * 1.0001, plan.explain()


def test_auto_is_the_default() -> None:
    assert numpool.Pool().backend == "auto"
    for f in (numpool.apply, numpool.map):
        assert inspect.signature(f).parameters["backend"].default == "auto"


@pytest.mark.parametrize(
    ("func", "x"),
    [
        (np.exp, np.random.default_rng(1).random(2_000_000)),
        (py_loop, np.random.default_rng(2).random(200_000)),
        (funcs.gil_sleep, np.arange(1000.0)),
        (funcs.rownorm, np.random.default_rng(3).random((20_000, 8))),
    ],
    ids=["exp", "py_loop", "gil_sleep", "rownorm"],
)
def test_every_call_equals_serial_and_follows_its_figures(
    auto: numpool.Pool, func, x: np.ndarray
) -> None:
    """The first call measures, the next ones decide from what calls took; each
    result equals func(x) bit for bit, and each decision follows its own figures."""
    want = func(x)
    for call in range(4):
        assert np.array_equal(auto.apply(func, x), want)
        stats = auto.last_stats
        plan = stats.plan
        assert plan is not None and plan.kind == "apply"
        # (a call on a settled route reports the plan that settled it)
        assert plan.cached == (call > 0) and plan.calls <= call
        _follows_its_figures(plan)
        assert stats.backend.split("+")[-1] in ("serial", "threads", "processes")


def test_every_call_is_recorded_as_evidence(auto: numpool.Pool, handoffs_free: Profile) -> None:
    """Every call adds its figure to the evidence (the profile passed in: on a loaded
    machine the measured one could make serial certain, whose calls add none). Into
    a given out=: a call that makes a fresh output buffer keeps no figure (its page
    faults are not the work's), and which calls do depends on the backends auto
    tried first, which its timings decide."""
    x = np.random.default_rng(4).random(1_000_000)
    out = np.empty_like(x)
    for _ in range(5):
        auto.apply(np.sqrt, x, out=out)
        assert np.array_equal(out, np.sqrt(x))
    (ev,) = [e for _, e in evidence.cache.items()]
    assert ev.calls == 5
    # the 4 later calls each left their figure (the first call's rest may be too short
    # to count); a backend keeps its last WINDOW
    assert sum(len(v) for v in ev.recent.values()) >= min(4, evidence.WINDOW)
    assert all(len(v) <= evidence.WINDOW for v in ev.recent.values())


def test_map_equals_serial_and_follows_its_figures(auto: numpool.Pool) -> None:
    a = [np.full(10, float(i)) for i in range(300)]
    for call in range(3):
        res = auto.map_arrays(funcs.gil_sleep_task, a)
        assert all(np.array_equal(r, m + 1) for r, m in zip(res, a, strict=True))
        plan = auto.last_stats.plan
        assert plan.kind == "map" and plan.cached == (call > 0)
        _follows_its_figures(plan)


def test_a_matmul_batch_is_close_to_serial(auto: numpool.Pool) -> None:
    """BLAS sums in another order with another thread count: close, not bit-identical."""
    a = [np.random.default_rng(i).random((200, 200)) for i in range(60)]
    res = auto.map_arrays(np.matmul, a, a)
    assert all(np.allclose(r, m @ m) for r, m in zip(res, a, strict=True))
    _follows_its_figures(auto.last_stats.plan)


def test_work_too_small_for_a_hand_off_runs_whole_in_the_caller(
    auto: numpool.Pool, handoffs_cost: Profile
) -> None:
    x = np.random.default_rng(5).random(200_000)
    auto.apply(np.exp, x)
    first = auto.last_stats.plan
    assert first.backend == "serial" and "too-small" in first.codes, first.explain()
    assert np.array_equal(auto.apply(np.exp, x), np.exp(x))
    again = auto.last_stats
    assert again.plan.cached and again.tasks == 1 and again.backend == "serial"


def test_processes_are_timed_on_this_machine_before_they_are_chosen(tmp_path: Path) -> None:
    """With no figures for worker processes yet, a call that processes could win
    starts them (in the background) and records what they cost in the machine profile. In a fresh
    interpreter: threads other tests left running in this one would count as the
    call's own CPU time (read as BLAS threads), and the sample would mislead."""
    code = """
import dataclasses, time, numpy as np, numpool, funcs
from numpool.planner.profile import store
real = store.get()
store.override(dataclasses.replace(real, process_start_s=None, process_task_s=None))
x = np.arange(1000.0)  # 0.1 s of GIL-holding sleep: processes could win
with numpool.Pool("auto") as auto:
    # the first call runs whole (a small input); a later one starts the workers and
    # measures them in the background, while it runs on what is ready
    deadline = time.monotonic() + 60
    while not store.get().processes_known and time.monotonic() < deadline:
        assert np.array_equal(auto.apply(funcs.gil_sleep, x), x * 2)
    got = store.get()
    assert got.processes_known, auto.last_stats.plan.explain()
    assert got.process_start_s > 0 and got.process_task_s > 0
print("ok")
"""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
        "NUMPOOL_CACHE_DIR": str(tmp_path),
    }
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stdout + p.stderr


def test_a_func_that_cannot_reach_processes_is_not_sent_and_the_plan_says_why(
    auto: numpool.Pool,
) -> None:
    """Whether func can reach processes is asked once the model wants them (asking
    may mean pickling func and all it holds): then the plan says why not. The
    machine passed in makes processes the model's choice for 0.2 s of GIL-holding
    work (threads cost 10 s a hand-off, processes next to nothing), whatever the
    load on the machine running the test."""
    import dataclasses

    from numpool.planner.profile import store

    lock = threading.Lock()

    def holds_a_lock(b: np.ndarray) -> np.ndarray:
        with lock:
            return funcs.gil_sleep(b)

    real = store.get()
    store.override(
        dataclasses.replace(
            real,
            thread_wake_s=10.0,
            thread_task_s=1.0,
            process_start_s=1e-4,
            process_task_s=1e-5,
        )
    )
    try:
        x = np.arange(2000.0)  # 0.2 s of GIL-holding sleep: processes would win
        plans = []
        for _ in range(3):
            assert np.array_equal(auto.apply(holds_a_lock, x), x * 2)
            plans.append(auto.last_stats.plan)
            assert plans[-1].backend != "processes"
    finally:
        store.override(real)
    said = [p for p in plans if p.basis.get("processes") == "unavailable"]
    assert said, [p.explain() for p in plans]
    assert "processes cannot run this call" in said[-1].explain(), said[-1].explain()


def test_in_process_backends_see_every_row_once(auto: numpool.Pool) -> None:
    """The measuring is part of the work: no row runs twice, none is skipped."""
    seen: list[int] = []
    lock = threading.Lock()

    def count(b: np.ndarray) -> np.ndarray:
        with lock:
            seen.append(len(b))
        return b + 1.0

    x = np.random.default_rng(6).random(400_000)
    for _ in range(3):
        seen.clear()
        assert np.array_equal(auto.apply(count, x), x + 1.0)
        assert sum(seen) == len(x), auto.last_stats.plan.explain()


def test_the_evidence_key_separates_dtype_size_and_options(auto: numpool.Pool) -> None:
    auto.apply(np.sqrt, np.ones(100_000))
    auto.apply(np.sqrt, np.ones(100_000, dtype=np.float32))
    auto.apply(np.sqrt, np.ones(1_000_000))
    auto.apply(np.sqrt, np.ones(100_000), chunks=3)
    assert len(evidence.cache) == 4
    auto.apply(np.sqrt, np.ones(110_000))  # the same size class
    assert auto.last_stats.plan.cached and len(evidence.cache) == 4
    for _ in range(3):  # a lambda made anew each time is the same function (its code)
        auto.apply(lambda b: b + 1, np.ones(100_000))
    assert auto.last_stats.plan.cached and len(evidence.cache) == 5


def test_plan_explains_with_figures_and_says_when_decided_before() -> None:
    x = np.random.default_rng(7).random(4_000_000)
    plan = numpool.plan(np.exp, x)
    assert isinstance(plan, numpool.Plan) and plan.kind == "apply"
    text = plan.explain()
    assert str(plan) == text
    assert "np.exp" in text and "per row" in text and "Predicted for this call" in text
    assert f"backend={plan.backend!r}" in text and "earlier call" not in text
    again = numpool.plan(np.exp, x)  # measured once: now from the evidence
    assert again.cached and "earlier call" in again.explain()
    y = numpool.apply(np.exp, x)  # the module-level apply uses that evidence
    assert np.array_equal(y, np.exp(x))
    assert numpool.last_stats().plan.cached


def test_plan_for_map_and_bad_kind() -> None:
    a = [np.ones((50, 50))] * 40
    plan = numpool.plan(np.matmul, a, a)
    assert plan.kind == "map" and plan.chunks is None
    with pytest.raises(ValueError, match="kind must be"):
        numpool.plan(np.exp, np.ones(10), kind="fold")
    with pytest.raises(TypeError, match="at least one array"):
        numpool.plan(np.exp, kind="apply")
    assert numpool.plan(np.exp, np.ones(1)).backend == "serial"


def test_auto_rejects_bad_arguments_before_measuring(auto: numpool.Pool) -> None:
    with pytest.raises(TypeError, match="callable"):
        auto.apply(3, np.ones(10))
    with pytest.raises(ValueError, match="chunks must be >= 1"):
        auto.apply(np.exp, np.ones(10), chunks=0)
    with pytest.raises(ValueError, match="out has shape"):
        auto.apply(np.exp, np.ones(100_000), out=np.empty(5))
    assert len(evidence.cache) == 0


# --- Stats ------------------------------------------------------------------


def test_stats_of_fixed_backends() -> None:
    x = np.random.default_rng(8).random(1_000_000)
    with numpool.Pool("processes", workers=2) as pool:
        pool.apply(np.exp, x, chunks=4)
        s = pool.last_stats
        assert s.backend == "processes" and s.kind == "apply"
        assert s.tasks == 5  # the first rows (the output's layout), then 4 blocks
        head = x[: measure.FIRST_ROWS]
        assert s.bytes_moved == x.nbytes - head.nbytes  # the rest staged once
        assert len(s.busy_s) <= 2 and all(k.startswith("pid ") for k in s.busy_s)
        assert s.compute_s > 0 and s.wall_s > 0 and s.move_s > 0
        shared = numpool.share(x)
        pool.apply(np.exp, shared, chunks=4)
        assert pool.last_stats.bytes_moved == 0
        pool.map_arrays(np.add, [x[:10]] * 6, [x[:10]] * 6, chunksize=2)
        assert pool.last_stats.tasks >= 3 and pool.last_stats.kind == "map"
        assert "moved between processes" in str(pool.last_stats)
    with numpool.Pool("threads", workers=2) as pool:
        pool.apply(np.exp, x, chunks=6)
        s = pool.last_stats
        assert s.tasks == 7 and s.bytes_moved == 0
        assert set(s.busy_s) <= {"numpool_0", "numpool_1", "MainThread"}
    with numpool.Pool("pickle", workers=2) as pool:
        pool.apply(np.exp, x, chunks=4)
        assert pool.last_stats.bytes_moved == 2 * (x.nbytes - head.nbytes)


def test_stats_of_a_first_auto_call_name_every_stage(auto: numpool.Pool) -> None:
    x = np.random.default_rng(9).random(4_000_000)
    auto.apply(np.exp, x)
    s = auto.last_stats
    assert s.backend.startswith("serial") and s.plan is not None
    assert s.as_dict()["plan"]["backend"] == s.plan.backend
    assert numpool.last_stats() is None or numpool.last_stats() is not s


# --- the tiny path ------------------------------------------------------------


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, b: np.ndarray) -> np.ndarray:
        return b * 3


def test_the_tiny_path_keeps_checks_stats_and_errors(
    auto: numpool.Pool, handoffs_cost: Profile
) -> None:
    x = np.linspace(0, 1, 1000)
    for _ in range(3):
        assert np.array_equal(auto.apply(np.exp, x), np.exp(x))
        assert np.array_equal(numpool.apply(np.exp, x), np.exp(x))
    assert (func_key(np.exp), x.dtype, x.shape) in auto._runner.routes.entries
    stats = auto.last_stats
    assert stats is not None and stats.backend == "serial" and stats.tasks == 1
    assert stats.plan is not None and stats.plan.cached and stats.wall_s > 0
    got = numpool.last_stats()
    assert got is not None and got.plan is not None and got.plan.backend == "serial"
    # the same kind of input, on which the function now fails: its error, with where
    small, big = np.linspace(0, 0.4, 1000), np.linspace(0, 1, 1000)
    for _ in range(3):
        assert np.array_equal(auto.apply(funcs.fail_on_big, small), small)
    assert (func_key(funcs.fail_on_big), small.dtype, small.shape) in auto._runner.routes.entries
    with pytest.raises(funcs.Boom, match="whole input"):
        auto.apply(funcs.fail_on_big, big)
    with pytest.raises(ValueError):
        auto.apply(np.exp, np.array(1.0))  # 0-d
    u = _Unhashable()
    for _ in range(3):
        assert np.array_equal(auto.apply(u, x), x * 3)
    auto.shutdown()
    with pytest.raises(RuntimeError):
        auto.apply(np.exp, x)


class _ShrinksLater:
    """Right until told otherwise, then a row too few: a result check must catch it."""

    shrink = False

    def __call__(self, b: np.ndarray) -> np.ndarray:
        return b[:-1] * 2 if self.shrink else b * 2


def test_the_tiny_path_checks_results_except_of_one_in_one_out_ufuncs(
    auto: numpool.Pool, handoffs_cost: Profile
) -> None:
    from numpool._routes import one_in_one_out as _one_in_one_out

    x = np.linspace(0, 1, 1000)
    f = _ShrinksLater()
    for _ in range(4):  # decided, then straight to f(x)
        assert np.array_equal(auto.apply(f, x), x * 2)
    assert auto._runner.routes.last[0] is f  # the last call took its route
    f.shrink = True
    with pytest.raises(ValueError, match="rows"):
        auto.apply(f, x)
    assert _one_in_one_out(np.exp) and not _one_in_one_out(np.add)
    assert not _one_in_one_out(np.modf) and not _one_in_one_out(f)


def test_a_ufunc_given_its_inputs_skips_the_checks_a_list_argument_keeps_them(
    auto: numpool.Pool, handoffs_cost: Profile
) -> None:
    """A settled serial route runs a ufunc of one output given exactly its inputs
    (plain ndarrays, Python numbers) on the caller's arrays, unchecked: its result's
    shape follows from the shapes in the route's key. An argument whose shape is not
    in the key (a list) keeps the check, which catches a result of other rows."""
    from numpool._routes import ufunc_call

    x, y = np.linspace(0, 1, 1000), np.linspace(1, 2, 1000)
    col = x.reshape(1000, 1)
    for _ in range(3):
        assert np.array_equal(auto.apply(np.add, x, y), x + y)
        assert np.array_equal(auto.apply(np.multiply, x, 2.5), x * 2.5)
        assert np.array_equal(auto.apply(np.add, col, [1.0, 2.0]), np.add(col, [1.0, 2.0]))
    checks = sorted(r.check for r in auto._runner.routes.entries.values())
    assert checks == [False, False, True]  # (the list's route checks its results)
    with pytest.raises(ValueError, match="rows"):
        auto.apply(np.add, col, [[1.0], [2.0]])  # (2, 1000): the same key, other rows
    assert ufunc_call(np.add, (x, y)) and ufunc_call(np.add, (x, 1)) and ufunc_call(np.exp, (x,))
    assert not ufunc_call(np.add, (x,)) and not ufunc_call(np.add, (x, [1.0]))
    assert not ufunc_call(np.divmod, (x, y)) and not ufunc_call(np.add, (x, x.view(np.matrix)))
    assert not ufunc_call(lambda a, b: a + b, (x, y))


def test_the_tiny_path_keeps_functions_shapes_and_pools_apart(handoffs_cost: Profile) -> None:
    a, b = numpool.Pool("auto"), numpool.Pool("auto", workers=1)
    try:
        x, y = np.linspace(0, 1, 1000), np.linspace(0, 1, 1000).reshape(500, 2)
        calls = [(a, np.exp, x), (a, np.sin, x), (a, np.exp, y), (b, np.exp, x)]
        for _ in range(4):
            for pool, f, v in calls:
                assert np.array_equal(pool.apply(f, v), f(v))
                got = pool.last_stats
                assert got is not None and got.plan is not None
                assert got.plan.what.startswith(f"apply(np.{f.__name__})"), got.plan.what
                assert f"{v.shape[0]:,} rows" in got.plan.what
        assert len(a._runner.routes.entries) == 3 and len(b._runner.routes.entries) == 1
        evidence.cache.clear()  # forgotten: the next call measures again
        assert np.array_equal(a.apply(np.exp, x), np.exp(x))
        assert a.last_stats is not None and a.last_stats.plan is not None
        assert not a.last_stats.plan.cached
    finally:
        a.shutdown()
        b.shutdown()


def test_fixed_threads_run_tiny_work_whole_in_the_caller(handoffs_cost: Profile) -> None:
    """Pool("threads") never splits work into blocks cheaper than a hand-off."""
    x = np.linspace(0, 1, 10_000)
    with numpool.Pool("threads", workers=2) as pool:
        for _ in range(3):
            assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        assert pool.last_stats.tasks == 1
        assert (func_key(np.exp), x.dtype, x.shape) in pool._runner.routes.entries


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_a_cost_per_call_read_off_a_later_call_resizes_its_blocks(speed: float) -> None:
    """The dial (1 us a row, 3 ms a call) over 1e5 rows, its first call run whole: a
    later call on threads in 9 blocks took 3 ms on its first two rows alone. That
    is kept as its cost per call; the blocks for the next call are then 2, and the
    threads' figure from 9 blocks, which paid 8 calls more, is dropped. A call whose
    first rows took microseconds (np.exp) leaves both as they were. Measurements
    passed in, on machines of every speed."""
    from numpool._stats import Stats
    from numpool.planner.profile import store

    real = store.get()
    store.override(
        dataclasses.replace(real, thread_wake_s=300e-6 / speed, thread_task_s=20e-6 / speed)
    )
    try:
        with numpool.Pool("auto", workers=2) as pool:
            runner = pool._runner
            for probe_s, learnt in ((3e-3, True), (2e-6, False)):
                row_s = 1e-6 / speed
                ev = evidence.Evidence("apply", row_s)
                ev.observe("serial", row_s + 3e-3 / speed / 100_000)
                ev.observe("threads", 2 * row_s)
                stats = Stats("apply", "threads")
                stats.probe_s = probe_s / speed
                for _ in range(9):  # (the blocks, busy with their rows and a call each)
                    stats.busy(
                        (os.getpid(), "MainThread"), 0.0, (11_111 * row_s + probe_s / speed)
                    )
                runner._learn_call_cost(ev, "threads", stats, 100_000)
                backend = runner.backends.get("threads")
                if learnt:
                    assert ev.call_s == pytest.approx((probe_s - 2e-6) / speed, rel=0.05)
                    assert "threads" not in ev.recent
                    assert runner._apply_blocks(backend, 100_000, ev, 0) == 2
                else:
                    assert ev.call_s == 0.0 and ev.recent["threads"] == [2 * row_s]
    finally:
        store.override(real)


@pytest.mark.parametrize("given_out", [False, True])
def test_a_later_serial_calls_fresh_pages_are_taken_off_its_figure(
    monkeypatch: pytest.MonkeyPatch, given_out: bool
) -> None:
    """A serial call through the planner makes its own output (malloc's): the pages
    its thread faulted in, which later calls get back warm from the heap, come off its
    figure, as a first call's do (measure.warm_wall). A call into a given out= makes
    none: nothing of it counts as fresh. Without this, an exploring serial call right
    after the first (its output from a heap still growing) read 5 ns a row against
    0.9 warm, and serial never won back the work it was the fastest for."""
    from numpool._inputs import Inputs
    from numpool._stats import Stats

    with numpool.Pool("serial") as pool:
        runner = pool._runner
        x = np.ones(1000)
        out = np.empty_like(x) if given_out else None
        ev = evidence.Evidence("apply", 1e-9)
        ev.out_bytes_per_item = 8.0
        reads = iter([100, 150])  # the thread faulted in 50 pages during the call
        monkeypatch.setattr(measure, "thread_faults", lambda: next(reads))
        seen: list[tuple[float, int | None]] = []

        def warm_wall(wall: float, out_bytes: float, rate: float, faults: int | None) -> float:
            seen.append((out_bytes, faults))
            return 0.5e-3

        monkeypatch.setattr(measure, "warm_wall", warm_wall)
        nothing = lambda *a: None  # noqa: E731 (the call's run: nothing to do)
        runner._later_call(ev, np.exp, 1000, Inputs.one(x), out, Stats("apply", ""), nothing)
        assert seen == [(0.0 if given_out else 8000.0, 50)]
        assert ev.recent["serial"] == [0.5e-3 / 1000]
        # a map (no inputs) and other backends' calls read no faults
        runner._later_call(ev, abs, 1000, None, None, Stats("map", ""), nothing)
        assert len(seen) == 1
