"""Auto's submit/map: where each function runs, learned from its calls on threads.

The rule (numpool._submits.verdict) is tested from tables of samples; the learner
and the pool with a fake of the worker processes and with verdicts set by hand,
never from timings taken here.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import numpool
from numpool._submits import (
    PATIENCE,
    SAMPLES,
    WORTH,
    Submits,
    Window,
    learned_as,
    plain_values,
    verdict,
)

TRIP = 100e-6  # a round trip to a worker process, as a machine's profile says


def _window(calls: int, wall: float, cores: float, idle: float = 1.0, earlier: int = 0) -> Window:
    """``calls`` calls in a window of ``wall`` seconds that kept ``cores`` cores busy,
    with ``idle`` of the machine's cores idle meanwhile (and ``earlier`` calls before)."""
    cpu = cores * wall
    return Window(calls, wall, cpu, idle * wall, calls + earlier, cpu * (calls + earlier) / calls)


@pytest.mark.parametrize(
    ("window", "trip", "workers", "want"),
    [
        # one core busy between calls waiting side by side, a core idle: the GIL
        (_window(SAMPLES, 0.060, 1.0), TRIP, 2, "processes"),
        (_window(SAMPLES * 2, 0.100, 0.95, idle=3.0), TRIP, 4, "processes"),
        # two cores busy: it releases the GIL
        (_window(SAMPLES, 0.060, 1.9), TRIP, 2, "threads"),
        # waits (sleep, I/O): threads serve it
        (_window(SAMPLES, 0.060, 0.05), TRIP, 2, "threads"),
        # holds the GIL, but a call is too short to be worth a process's round trip
        (_window(SAMPLES, SAMPLES * WORTH * TRIP / 2, 1.0), TRIP, 2, "threads"),
        # holds the GIL, the round trip not measured yet
        (_window(SAMPLES, 0.060, 1.0), None, 2, "measure"),
        # too few calls in the window yet
        (_window(SAMPLES - 1, 0.060, 1.0), TRIP, 2, None),
        # one core used, but none was spare: a busy machine, not the GIL; no verdict,
        # and threads once the calls have shown nothing for long enough
        (_window(SAMPLES, 0.060, 1.0, idle=0.1), TRIP, 2, None),
        (_window(SAMPLES, 0.060, 1.0, idle=0.1, earlier=PATIENCE), TRIP, 2, "threads"),
        # calls one at a time (windows of one call): threads after PATIENCE
        (_window(1, 0.010, 1.0, earlier=PATIENCE), TRIP, 2, "threads"),
        (_window(1, 0.010, 1.0, earlier=3), TRIP, 2, None),
        # one worker: nothing to run side by side
        (_window(SAMPLES, 0.060, 1.0), TRIP, 1, "threads"),
    ],
)
def test_verdict_table(window: Window, trip: float | None, workers: int, want: Any) -> None:
    """verdict() sends GIL-bound calls worth a process to processes, and nothing else."""
    assert verdict(window, trip, workers) == want


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0, 25.0])
def test_verdict_scales_with_the_machine(speed: float) -> None:
    """The same function on a machine `speed` times faster (calls and round trip
    alike) gets the same verdict: no constant stands for one machine's speed."""
    assert verdict(_window(SAMPLES, 0.06 / speed, 1.0), TRIP / speed, 2) == "processes"
    short = _window(SAMPLES, SAMPLES * 1e-3 / speed, 1.0)
    assert verdict(short, 2e-3 / WORTH / speed, 2) == "threads"


@pytest.mark.parametrize(
    ("args", "kwargs", "want"),
    [
        ((1, 2.5, "s", b"b", None, True, 3j, range(3), np.float32(1)), {}, True),
        (((1, (2, "x")),), {"k": 3}, True),
        ((np.arange(3).copy(),), {}, False),  # writable: func could change it
        ((np.frombuffer(b"\0" * 8, dtype=np.int64),), {}, True),  # read-only
        (([1, 2],), {}, False),
        (({"a": 1},), {}, False),
        ((1,), {"out": [0]}, False),
        ((np.array([None], dtype=object).view(),), {}, False),
    ],
)
def test_plain_values(args: tuple[Any, ...], kwargs: dict[str, Any], want: bool) -> None:
    """Only arguments no function can change in place count as plain values."""
    assert plain_values(args, kwargs) is want


class FakeProcesses:
    """Worker processes as the learner sees them, with figures set by the test."""

    def __init__(self, trip: float | None = TRIP, started: bool = True) -> None:
        self.trip = trip
        self.started = started
        self.measured: list[Callable[..., Any]] = []
        self.asked_ready = 0
        self.why: str | None = None

    def round_trip(self) -> float | None:
        return self.trip

    def workers(self) -> int:
        return 2

    def unavailable(self, fn: Callable[..., Any]) -> str | None:
        return self.why

    def ready(self) -> bool:
        self.asked_ready += 1
        return self.started

    def measure(self, fn: Callable[..., Any]) -> None:
        self.measured.append(fn)


def _teach(
    submits: Submits, fn: Callable[..., Any], wall: float, cpu: float, idle: float = 1.0
) -> None:
    """Feed the learner SAMPLES calls of ``fn``, submitted together, each of ``wall``
    seconds and ``cpu`` seconds of CPU, in a window where ``idle`` cores sat idle
    (the clocks the learner reads are set by the test)."""
    import numpool._submits as submits_module

    calls = [submits.route(fn, (1,), {}) for _ in range(SAMPLES)]
    assert all(name == "threads" and timed is not fn for name, timed in calls)
    learning = submits._learned[learned_as(fn)]
    clock = {"t": 100.0, "idle": 500.0}
    real = (submits_module._now, submits_module._idle_s)
    submits_module._idle_s = lambda: clock["idle"]
    submits_module._now = lambda: clock["t"]
    try:
        for _ in range(SAMPLES):
            submits._enter(learning)
        for i in range(SAMPLES):  # 2 at a time: the window is SAMPLES/2 calls long
            if i % 2 == 0:
                clock["t"] += wall
                clock["idle"] += idle * wall
            submits._leave(learning, fn, cpu)
    finally:
        submits_module._now, submits_module._idle_s = real


def _gil(n: int) -> int:
    return sum(i * i for i in range(n))


def test_learner_moves_a_gil_bound_function() -> None:
    """Once taught that fn holds the GIL, its plain-value calls go to processes
    untimed, and any call that could change the caller's objects stays on threads."""
    procs = FakeProcesses()
    submits = Submits(procs)
    _teach(submits, _gil, 0.010, 0.005)
    assert submits.where(_gil) == "processes"
    assert submits.route(_gil, (10,), {}) == ("processes", _gil)
    assert submits.route(_gil, ([10],), {}) == ("threads", _gil)
    assert submits.route(_gil, (np.zeros(3),), {}) == ("threads", _gil)
    procs.started = False  # still starting: threads meanwhile
    assert submits.route(_gil, (10,), {}) == ("threads", _gil)


def test_learner_waits_while_the_machine_is_busy() -> None:
    """One core used while no core was idle is a busy machine, not the GIL: no
    verdict, the calls stay on threads, still timed."""
    submits = Submits(FakeProcesses())
    _teach(submits, _gil, 0.010, 0.005, idle=0.0)
    assert submits.where(_gil) is None
    name, call = submits.route(_gil, (1,), {})
    assert name == "threads" and call is not _gil


def test_learner_keeps_a_gil_free_function_on_threads() -> None:
    """A function whose calls kept two cores busy stays on threads, untimed."""
    submits = Submits(FakeProcesses())
    _teach(submits, np.exp, 0.010, 0.010)
    assert submits.where(np.exp) == "threads"
    assert submits.route(np.exp, (1.0,), {}) == ("threads", np.exp)


def test_learner_measures_processes_first() -> None:
    """Without a measured round trip the learner asks for one and gives no verdict."""
    procs = FakeProcesses(trip=None)
    submits = Submits(procs)
    _teach(submits, _gil, 0.010, 0.005)
    assert submits.where(_gil) is None
    assert procs.measured and procs.measured[0] is _gil


def test_learner_respects_unavailable_processes() -> None:
    """A function processes cannot run (unpicklable, no processes here) stays on threads."""
    procs = FakeProcesses()
    procs.why = "cannot be pickled"
    submits = Submits(procs)
    _teach(submits, _gil, 0.010, 0.005)
    assert submits.where(_gil) == "threads"


def _pid(x: int) -> tuple[int, int]:
    return os.getpid(), x * 2


def _pid_of(a: Any) -> int:
    return os.getpid()


class Odd(ValueError):
    pass


def _fails(x: int) -> int:
    raise Odd(f"odd {x}")


def _learned(pool: numpool.Pool, fn: Callable[..., Any], where: str) -> None:
    """Set the pool's verdict for fn by hand (as its timings would), processes started."""
    submits = pool._calls.submits
    assert submits is not None
    submits.route(fn, (), {})
    submits._learned[learned_as(fn)].where = where
    pool._backends.get("processes").start()


def test_pool_runs_a_learned_function_on_processes() -> None:
    """Pool() (auto): a function learned GIL-bound runs in worker processes through
    submit, map (chunked or not) and imap_unordered, with the same results."""
    with numpool.Pool(workers=2) as pool:
        _learned(pool, _pid, "processes")
        me = os.getpid()
        pid, value = pool.submit(_pid, 21).result()
        assert (pid != me, value) == (True, 42)
        got = list(pool.map(_pid, range(6)))
        assert [v for _, v in got] == [0, 2, 4, 6, 8, 10]
        assert all(p != me for p, _ in got)
        got = list(pool.map(_pid, range(6), chunksize=4))
        assert [v for _, v in got] == [0, 2, 4, 6, 8, 10]
        assert all(p != me for p, _ in got)
        got = list(pool.imap_unordered(_pid, range(4)))
        assert sorted(v for _, v in got) == [0, 2, 4, 6]

    with numpool.Pool(workers=2) as pool:
        _learned(pool, _pid_of, "processes")
        me = os.getpid()
        # a writable array (func could change it) keeps its call here, in a thread
        assert pool.submit(_pid_of, np.zeros(1)).result() == me
        ro = np.zeros(1)
        ro.flags.writeable = False
        assert pool.submit(_pid_of, ro).result() != me
        assert pool.submit(_pid_of, np.int64(1)).result() != me


def test_pool_errors_are_the_same_after_the_move() -> None:
    """A learned function's exception has its own class on processes, as on threads."""
    with numpool.Pool(workers=2) as pool:
        with pytest.raises(Odd, match="odd 3"):
            pool.submit(_fails, 3).result()
        _learned(pool, _fails, "processes")
        with pytest.raises(Odd, match="odd 4"):
            pool.submit(_fails, 4).result()
        with pytest.raises(Odd, match="odd 0"):
            list(pool.map(_fails, range(3)))


def test_pool_map_timeout_stops_processes_calls() -> None:
    """map's timeout on a learned function stops the calls still running in its
    processes, and the pool works afterwards."""
    import time

    with numpool.Pool(workers=2) as pool:
        _learned(pool, time.sleep, "processes")
        it = pool.map(time.sleep, [30.0, 30.0, 30.0], timeout=0.5)
        with pytest.raises(concurrent.futures.TimeoutError):  # (3.10: not the builtin)
            list(it)
        assert pool.submit(_pid, 2).result()[1] == 4


def test_fixed_backend_pools_do_not_learn() -> None:
    """Only auto learns: a threads pool's submit stays in this process."""
    with numpool.Pool("threads", workers=2) as pool:
        assert pool._calls.submits is None
        assert pool.submit(_pid, 1).result()[0] == os.getpid()


class _Holder:
    def method(self, n: int) -> int:
        return n

    def __call__(self, n: int) -> int:
        return n


def test_what_is_learned_holds_no_object_of_the_caller() -> None:
    """A bound method, a partial or a callable object is learned by its code, a bound
    builtin by its class and name: none keeps the caller's object alive (CPython's
    test_no_stale_references), and one function is learned once."""
    import functools
    import gc
    import weakref

    holder = _Holder()
    gone = weakref.ref(holder)
    submits = Submits(FakeProcesses())
    keys = {
        learned_as(holder.method),
        learned_as(functools.partial(holder.method, 1)),
        learned_as(_Holder().method),
    }
    assert keys == {_Holder.method.__code__}
    assert learned_as(holder) == _Holder.__call__.__code__
    items: list[int] = []
    assert learned_as(items.append) == (list, "append")
    assert learned_as(np.exp) is np.exp and learned_as(abs) is abs
    _teach(submits, holder.method, 0.010, 0.005)
    _teach(submits, items.append, 0.010, 0.010)
    del holder
    gc.collect()
    assert gone() is None
