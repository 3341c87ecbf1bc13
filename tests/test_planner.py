"""backend="auto": the planner's choices on the issue's workloads (by margins, never
by timings), its cache, its explanations, and the Stats every call records."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest

import funcs
import numpool
from numpool import _planner
from numpool.lab.demo import py_loop


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    _planner.cache.clear()
    yield
    _planner.cache.clear()


@pytest.fixture
def auto() -> Iterator[numpool.Pool]:
    """A new auto pool: its processes start cold, as a user's first call would."""
    with numpool.Pool("auto", workers=2) as pool:
        yield pool


def test_auto_is_the_default() -> None:
    assert numpool.Pool().backend == "auto"
    import inspect

    for f in (numpool.apply, numpool.map):
        assert inspect.signature(f).parameters["backend"].default == "auto"


def test_gil_holding_sleep_is_never_sent_to_threads(auto: numpool.Pool) -> None:
    """Threads cannot overlap a call that holds the GIL; processes can (~2x on 2 cores)."""
    x = np.arange(4000.0)  # 0.4 s serially
    y = auto.apply(funcs.gil_sleep, x)
    assert np.array_equal(y, x * 2)
    plan = auto.last_stats.plan
    assert plan.backend == "processes", plan.explain()
    assert plan.speedups["threads"] < 1.3, plan.explain()
    assert plan.speedups["processes"] > 1.4, plan.explain()


def _follows_its_measurements(plan: numpool.Plan) -> None:
    """The choice is the one the measured speed-ups call for (the decision rule)."""
    best = max(plan.speedups.values(), default=0.0)
    if plan.backend == "serial":
        assert best < _planner.PARALLEL_MARGIN, plan.explain()
    else:
        assert plan.speedups[plan.backend] >= _planner.PARALLEL_MARGIN, plan.explain()
        assert plan.speedups[plan.backend] * _planner.PROCESSES_MARGIN >= best


def test_pure_python_loop_over_2m(auto: numpool.Pool) -> None:
    """Processes are tried (threads cannot overlap a GIL-holding loop) and the choice
    follows the measurements. Which one wins is measured, not asserted: on a noisy
    2-core VM a 0.2 s job's trials vary (benchmarks/auto.py records the figures)."""
    x = np.random.default_rng(0).random(2_000_000)
    y = auto.apply(py_loop, x)
    assert np.array_equal(y, py_loop(x))
    plan = auto.last_stats.plan
    assert plan.backend != "threads" or plan.speedups["threads"] >= 1.3, plan.explain()
    _follows_its_measurements(plan)


def test_exp_over_10m(auto: numpool.Pool) -> None:
    """np.exp releases the GIL: never processes (moving 80 MB costs more than it saves)."""
    x = np.random.default_rng(1).random(10_000_000)
    y = auto.apply(np.exp, x)
    assert np.array_equal(y, np.exp(x))
    plan = auto.last_stats.plan
    assert plan.backend in ("threads", "serial"), plan.explain()
    assert "processes" not in plan.speedups, "no reason to start worker processes"
    assert "at most" not in plan.reasons[0], "blocks of 2441+ rows time np.exp itself"
    _follows_its_measurements(plan)


def test_exp_over_10k_stays_serial_and_then_costs_one_call(auto: numpool.Pool) -> None:
    x = np.random.default_rng(2).random(10_000)
    assert np.array_equal(auto.apply(np.exp, x), np.exp(x))
    first = auto.last_stats
    assert first.plan.backend == "serial" and not first.plan.cached, first.plan.explain()
    assert first.plan.speedups == {}, "too small to try anything"
    # its blocks of a few hundred rows time numpool's per-block cost more than np.exp's
    assert "took at most" in first.plan.reasons[0], first.plan.explain()
    assert np.array_equal(auto.apply(np.exp, x), np.exp(x))
    again = auto.last_stats
    assert again.plan.cached and again.backend == "serial" and again.tasks == 1


def test_matmul_batch_follows_the_measured_speedups(auto: numpool.Pool) -> None:
    """A batch of matmuls: on 2 cores BLAS already uses both, so threads, processes
    and serial are close (benchmarks/auto.py measures the real batch)."""
    a = [np.random.default_rng(i).random((300, 300)) for i in range(200)]
    res = auto.map(np.matmul, a, a)
    # BLAS sums in another order with another thread count: close, not bit-identical
    assert all(np.allclose(r, np.matmul(m, m)) for r, m in zip(res, a, strict=True))
    del res
    _follows_its_measurements(auto.last_stats.plan)


def test_gil_holding_map_tasks_go_to_processes(auto: numpool.Pool) -> None:
    a = [np.full(10, float(i)) for i in range(300)]  # 2 ms each: 0.6 s serially
    res = auto.map(funcs.gil_sleep_task, a)
    assert all(np.array_equal(r, m + 1) for r, m in zip(res, a, strict=True))
    plan = auto.last_stats.plan
    assert plan.kind == "map" and plan.backend == "processes", plan.explain()


def _runoff_calls(plan: numpool.Plan) -> int:
    """The most calls ``plan``'s run-off can take (fewer when a contender drops out)."""
    return _planner.RUNOFF_CALLS * len(plan.contenders)


def test_a_loop_measures_once_then_runs_off_a_close_call(auto: numpool.Pool) -> None:
    """The first call measures on a sample. A close call then runs whole on each
    contender in turn (A B B A), each timed; the fastest wins, and from then on
    every call is cached and settled."""
    x = np.random.default_rng(3).random(300_000)
    assert np.array_equal(auto.apply(np.sqrt, x), np.sqrt(x))
    first = auto.last_stats.plan
    assert not first.cached
    assert not first.contenders or first.contenders[0] == first.backend  # the choice first
    ran = []
    for _ in range(_runoff_calls(first)):
        assert np.array_equal(auto.apply(np.sqrt, x), np.sqrt(x))
        stats = auto.last_stats
        assert stats.plan.cached
        if stats.plan.settled:
            break
        ran.append(stats.backend)
    if len(first.contenders) == 2:
        a, b = first.contenders
        assert len(ran) >= 2 and ran == [a, b, b, a][: len(ran)], ran  # (one 2x slower: out)
    for _ in range(3):
        assert np.array_equal(auto.apply(np.sqrt, x), np.sqrt(x))
        plan = auto.last_stats.plan
        assert plan.cached and plan.settled and auto.last_stats.backend == plan.backend
    if first.contenders:  # the winner has the lowest wall time per row
        best = {c: min(v) for c, v in plan.runoff.items()}
        assert plan.backend == min(best, key=lambda c: best[c])
        assert set(plan.runoff) == set(first.contenders)
        assert all(1 <= len(v) <= _planner.RUNOFF_CALLS for v in plan.runoff.values())
        assert "Run-off over whole calls" in plan.explain()
    assert len(_planner.cache) == 1
    # a lambda made anew each time is the same function to the cache (same code)
    for _ in range(8):
        auto.apply(lambda b: b + 1, x)
    assert auto.last_stats.plan.cached and len(_planner.cache) == 2


def test_which_calls_are_close_and_how_a_runoff_settles() -> None:
    assert _planner._contenders("threads", {"threads": 1.6}, fresh=False) == ()
    assert _planner._contenders("threads", {"threads": 1.3}, fresh=False) == ("threads", "serial")
    assert _planner._contenders("serial", {"threads": 0.9}, fresh=False) == ("serial", "threads")
    assert _planner._contenders("serial", {"threads": 0.5}, fresh=False) == ()
    assert _planner._contenders("processes", {"threads": 1.4, "processes": 1.6}, fresh=False) == (
        "processes",
        "threads",
    )
    # fresh memory: a serial choice runs off against the runner-up, however far behind
    assert _planner._contenders("serial", {"threads": 0.17}, fresh=True) == ("serial", "threads")
    assert _planner._contenders("threads", {"threads": 15.0}, fresh=True) == ()
    assert _planner._contenders("serial", {}, fresh=True) == ()
    assert _planner._contenders("processes", {"threads": 0.96, "processes": 1.49}, fresh=True) == (
        "processes",
        "serial",
    )

    plan = numpool.Plan(
        "apply", "serial", 1, 1, None, None, item_s=1e-9, contenders=("serial", "threads")
    )
    backends = {"serial": _Fake("serial", 1), "threads": _Fake("threads", 2)}
    order = []
    for t in (2.0, 1.0, 1.1, 2.5):  # per-row seconds of serial, threads, threads, serial
        name = _planner.next_contender(plan)
        order.append(name)
        plan = _planner.ran(plan, name, t, backends.__getitem__, lambda b, s: 7)
    assert order == ["serial", "threads", "threads", "serial"]
    assert plan.settled and plan.backend == "threads" and plan.workers == 2
    assert plan.chunks == 7 and plan.speedups["threads"] == 2.0  # best 2.0 / best 1.0
    assert plan.runoff == {"serial": (2.0, 2.5), "threads": (1.0, 1.1)}
    assert _planner.ran(plan, "serial", 0.1, backends.__getitem__, lambda b, s: 7) is plan
    # one call each, and the far slower one is out
    plan = numpool.Plan(
        "map", "threads", 2, None, 4, None, contenders=("threads", "processes", "serial")
    )
    for name, t in (("threads", 1.0), ("processes", 2.5), ("serial", 1.9)):
        assert _planner.next_contender(plan) == name
        plan = _planner.ran(plan, name, t, backends.__getitem__, lambda b, s: None)
    assert plan.contenders == ("threads", "serial") and plan.runoff["processes"] == (2.5,)
    assert _planner.next_contender(plan) == "serial"  # the second round turns around
    plan = _planner.ran(plan, "serial", 0.9, backends.__getitem__, lambda b, s: None)
    plan = _planner.ran(plan, "threads", 1.2, backends.__getitem__, lambda b, s: None)
    assert plan.settled and plan.backend == "serial" and plan.chunksize == 4
    assert "serial 900.0 ms, threads 1.00 s, processes 2.50 s: serial." in plan.explain()


@dataclasses.dataclass
class _Fake:
    name: str
    workers: int
    blas_threads: int | None = None


def test_the_cache_key_separates_dtype_size_and_options(auto: numpool.Pool) -> None:
    auto.apply(np.sqrt, np.ones(100_000))
    auto.apply(np.sqrt, np.ones(100_000, dtype=np.float32))
    auto.apply(np.sqrt, np.ones(1_000_000))
    auto.apply(np.sqrt, np.ones(100_000), chunks=3)
    assert len(_planner.cache) == 4
    auto.apply(np.sqrt, np.ones(110_000))  # same size class
    assert auto.last_stats.plan.cached and len(_planner.cache) == 4


def test_unpicklable_function_is_not_sent_to_processes(auto: numpool.Pool) -> None:
    """A lambda cannot reach a worker process: auto says so and uses what works."""
    x = np.arange(3000.0)
    y = auto.apply(lambda b: funcs.gil_sleep(b), x)
    assert np.array_equal(y, x * 2)
    plan = auto.last_stats.plan
    assert plan.backend != "processes"
    assert "Processes cannot run" in plan.explain(), plan.explain()


def test_start_up_cost_holds_processes_back_until_the_call_repeats(
    auto: numpool.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_planner, "_startup_s", 100.0)
    x = np.arange(2000.0)  # 0.2 s of GIL-holding sleep
    auto.apply(funcs.gil_sleep, x)
    plan = auto.last_stats.plan
    assert plan.backend != "processes" and plan.revisit
    assert "not started" in plan.explain()
    for _ in range(_planner.REVISIT_AFTER):
        y = auto.apply(funcs.gil_sleep, x)
    assert np.array_equal(y, x * 2)
    plan = auto.last_stats.plan
    assert plan.backend == "processes" and not plan.cached, plan.explain()
    for _ in range(_runoff_calls(plan) + 1):  # (a close call on a noisy machine runs off)
        auto.apply(funcs.gil_sleep, x)
    assert auto.last_stats.plan.cached and auto.last_stats.plan.settled


def test_plan_explains_with_figures_and_says_when_cached() -> None:
    x = np.random.default_rng(4).random(4_000_000)
    plan = numpool.plan(np.exp, x)
    assert isinstance(plan, numpool.Plan) and plan.kind == "apply"
    text = plan.explain()
    assert str(plan) == text
    assert "np.exp" in text and "per row" in text and "x as fast as serial" in text
    assert f"backend={plan.backend!r}" in text
    assert "Cached" not in text
    again = numpool.plan(np.exp, x)  # plan() measures once, then reads the cache
    assert again.cached and "Cached" in again.explain()
    assert again.backend == plan.backend and again.contenders == plan.contenders
    y = numpool.apply(np.exp, x)  # the module-level apply uses that decision
    assert np.array_equal(y, np.exp(x))
    assert numpool.last_stats().plan.cached


def test_plan_for_map_and_bad_kind() -> None:
    a = [np.ones((50, 50))] * 40
    plan = numpool.plan(np.matmul, a, a)
    assert plan.kind == "map" and plan.chunks is None
    with pytest.raises(ValueError, match="kind must be"):
        numpool.plan(np.exp, np.ones(10), kind="reduce")
    with pytest.raises(TypeError, match="one array"):
        numpool.plan(np.exp, np.ones(10), np.ones(10), kind="apply")
    assert numpool.plan(np.exp, np.ones(1)).backend == "serial"


def test_auto_rejects_bad_arguments_before_measuring(auto: numpool.Pool) -> None:
    with pytest.raises(TypeError, match="callable"):
        auto.apply(3, np.ones(10))
    with pytest.raises(ValueError, match="chunks must be >= 1"):
        auto.apply(np.exp, np.ones(10), chunks=0)
    with pytest.raises(ValueError, match="out has shape"):
        auto.apply(np.exp, np.ones(100_000), out=np.empty(5))
    assert len(_planner.cache) == 0


# --- Stats ------------------------------------------------------------------


def test_stats_of_fixed_backends() -> None:
    x = np.random.default_rng(5).random(1_000_000)
    with numpool.Pool("processes", workers=2) as pool:
        pool.apply(np.exp, x, chunks=4)
        s = pool.last_stats
        assert s.backend == "processes" and s.kind == "apply" and s.tasks == 4
        assert s.bytes_moved == x.nbytes  # x staged once; results written in place
        assert len(s.busy_s) <= 2 and all(k.startswith("pid ") for k in s.busy_s)
        assert s.compute_s > 0 and s.wall_s > 0 and s.move_s > 0
        shared = numpool.share(x)
        pool.apply(np.exp, shared, chunks=4)
        assert pool.last_stats.bytes_moved == 0
        pool.map(np.add, [x[:10]] * 6, [x[:10]] * 6, chunksize=2)
        assert pool.last_stats.tasks == 6 and pool.last_stats.kind == "map"
        assert "moved between processes" in str(pool.last_stats)
    with numpool.Pool("threads", workers=2) as pool:
        pool.apply(np.exp, x, chunks=6)
        s = pool.last_stats
        assert s.tasks == 6 and s.bytes_moved == 0
        assert set(s.busy_s) <= {"numpool_0", "numpool_1"}
    with numpool.Pool("pickle", workers=2) as pool:
        pool.apply(np.exp, x, chunks=4)
        assert pool.last_stats.bytes_moved == 2 * x.nbytes  # blocks out, results back


def test_stats_of_an_auto_call_name_every_stage(auto: numpool.Pool) -> None:
    x = np.random.default_rng(6).random(4_000_000)
    auto.apply(np.exp, x)
    s = auto.last_stats
    assert s.backend.startswith("serial+") and s.plan is not None
    assert s.as_dict()["plan"]["backend"] == s.plan.backend
    assert numpool.last_stats() is None or numpool.last_stats() is not s


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, b: np.ndarray) -> np.ndarray:
        return b * 3


def test_the_fast_path_for_tiny_inputs_keeps_checks_stats_and_errors(auto: numpool.Pool) -> None:
    x = np.linspace(0, 1, 1000)
    for _ in range(3):
        assert np.array_equal(auto.apply(np.exp, x), np.exp(x))
        assert np.array_equal(numpool.apply(np.exp, x), np.exp(x))
    kept = len(_planner.cache.tiny)
    assert kept >= 1  # (one per pool options)
    stats = auto.last_stats
    assert stats is not None and stats.backend == "serial" and stats.tasks == 1
    assert stats.plan is not None and stats.plan.cached and stats.wall_s > 0
    got = numpool.last_stats()
    assert got is not None and got.plan is not None and got.plan.backend == "serial"
    # the same kind of input, on which the function now fails: its error, with where
    small, big = np.linspace(0, 0.4, 1000), np.linspace(0, 1, 1000)
    for _ in range(2):
        assert np.array_equal(auto.apply(funcs.fail_on_big, small), small)
    assert len(_planner.cache.tiny) == kept + 1
    with pytest.raises(funcs.Boom, match="whole input"):
        auto.apply(funcs.fail_on_big, big)
    with pytest.raises(ValueError):
        auto.apply(np.exp, np.array(1.0))  # 0-d
    u = _Unhashable()
    assert np.array_equal(auto.apply(u, x), x * 3) and np.array_equal(auto.apply(u, x), x * 3)
    auto.shutdown()
    with pytest.raises(RuntimeError):
        auto.apply(np.exp, x)


class _ShrinksLater:
    """Right until told otherwise, then a row too few: a result check must catch it."""

    shrink = False

    def __call__(self, b: np.ndarray) -> np.ndarray:
        return b[:-1] * 2 if self.shrink else b * 2


def test_the_tiny_path_checks_results_except_of_one_in_one_out_ufuncs(auto: numpool.Pool) -> None:
    x = np.linspace(0, 1, 1000)
    f = _ShrinksLater()
    for _ in range(6):  # decided, settled, then straight to f(x)
        assert np.array_equal(auto.apply(f, x), x * 2)
    assert _planner.cache.last_tiny[0] is f  # the last call took the tiny path
    f.shrink = True
    with pytest.raises(ValueError, match="rows"):
        auto.apply(f, x)
    # ufuncs of one input and one output need no check; others keep it
    assert numpool._pool._same_rows(np.exp) and not numpool._pool._same_rows(np.add)
    assert not numpool._pool._same_rows(np.modf) and not numpool._pool._same_rows(f)


def test_the_tiny_path_keeps_functions_shapes_and_pools_apart() -> None:
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
        assert len({k[3] for k in _planner.cache.tiny}) == 2  # one key per pool's options
        _planner.cache.clear()
        assert _planner.cache.last_tiny[0] is None
        assert np.array_equal(a.apply(np.exp, x), np.exp(x))
        assert a.last_stats is not None and a.last_stats.plan is not None
        assert not a.last_stats.plan.cached  # planned again, not the forgotten plan
    finally:
        a.shutdown()
        b.shutdown()
