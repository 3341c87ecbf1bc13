"""The fast path (numpool._routes) and the threads engine where the caller works too
(numpool._engine.pull): what they run, what they skip, and their errors.

No timing is asserted. Where a decision matters, the machine profile is passed in
(``store.override``) so that it is settled on any machine, busy or not.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import funcs
import numpool
from numpool import _buffers, _routes
from numpool._runner import Runner
from numpool.planner import evidence, model
from numpool.planner.profile import Profile

pytestmark = pytest.mark.usefixtures("fresh_evidence")


def _no_planner(*args: object, **kwargs: object) -> None:
    raise AssertionError("the planner was asked")


def _count_planner(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets a 1 for each later call that takes the planner's path
    (``Runner._later_apply``, which still runs), from now on."""
    asked: list[int] = []
    real = Runner._later_apply

    def counting(self: Runner, *args: object, **kwargs: object) -> np.ndarray:
        asked.append(1)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Runner, "_later_apply", counting)
    return asked


def test_a_certain_route_never_asks_the_planner_again(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first call (whole, timed), every call is func(x): no choose(), no
    measuring, no plan built, however many calls; stats still say what ran."""
    x = np.linspace(0, 1, 10_000)
    with numpool.Pool("auto", workers=2) as pool:
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        first = pool.last_stats
        assert first.plan is not None and "too-small" in first.plan.codes
        monkeypatch.setattr(model, "choose", _no_planner)
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        for _ in range(3 * _routes.RECHECK):
            assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        stats = pool.last_stats
        assert stats.backend == "serial" and stats.tasks == 1 and stats.plan.cached
        assert stats.plan.backend == "serial"


def test_the_module_level_apply_takes_the_same_route(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numpool.apply and Pool.apply share one gate and one route table per pool."""
    x = np.linspace(0, 1, 5_000)
    numpool.apply(np.sin, x)
    monkeypatch.setattr(Runner, "_later_apply", _no_planner)
    for _ in range(10):
        assert np.array_equal(numpool.apply(np.sin, x), np.sin(x))
    got = numpool.last_stats()
    assert got is not None and got.plan is not None and got.plan.backend == "serial"


def test_an_uncertain_route_goes_back_to_the_planner_every_recheck_calls(
    handoffs_free: Profile, steady_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route in blocks (fixed threads here) is revisited once every RECHECK calls,
    so the evidence keeps flowing; the other calls skip the planner (the second
    call too: a fixed backend settles the route its evidence gives at once)."""
    x = np.random.default_rng(0).random(50_000)
    with numpool.Pool("threads", workers=2) as pool:
        pool.apply(np.exp, x, chunks=None)
        asked = _count_planner(monkeypatch)
        calls = 2 * _routes.RECHECK + 1
        for _ in range(calls):
            assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
    # the second call settles the route; then one in every RECHECK goes back
    assert 1 <= len(asked) <= calls // _routes.RECHECK + 1


def _route(backend: str = "threads", blocks: int = 4, revisit: int | None = None) -> _routes.Route:
    return _routes.Route(
        backend,
        blocks,
        serial=False,
        certain=False,
        check=True,
        plan=None,
        ev=None,
        revisit=revisit,
    )


def test_fewer_keeps_the_most_rows_per_kind_and_machine() -> None:
    """routes.Fewer from a table: the most rows noted for a kind on a profile; a call
    of more rows, of one row, or on another profile finds nothing; dropped, and
    bounded; the second time a route key comes, it says so."""
    one, other = object(), object()
    fewer = _routes.Fewer(size=2)
    fewer.note("k", one, 100, "plan", None)
    fewer.note("k", one, 50, "smaller", None)  # (fewer rows than known: kept as is)
    assert fewer.find("k", 100, one) == (100, "plan", None)
    assert fewer.find("k", 2, one) is not None
    assert fewer.find("k", 101, one) is None and fewer.find("k", 1, one) is None
    assert fewer.find("k", 50, other) is None and fewer.find("j", 50, one) is None
    fewer.note("k", other, 10, "there", None)  # (another machine: its own figure)
    assert fewer.find("k", 10, other) == (10, "there", None)
    assert fewer.find("k", 50, one) is None
    fewer.drop("k")
    assert fewer.find("k", 10, other) is None
    for k in "abc":
        fewer.note(k, one, 10, "p", None)
    assert len(fewer.known) <= 2
    assert not fewer.again(("r", 1)) and fewer.again(("r", 1))
    fewer.clear()
    assert not fewer.known and not fewer.again(("r", 1))


def test_a_layout_matches_the_same_split_of_other_rows() -> None:
    """routes.layout_of / in_layout from tables: split arguments may have other rows
    along their axis (the call's), nothing else may differ."""
    x, w = np.zeros((3, 10)), np.zeros((3, 1))
    layout = _routes.layout_of((x, w, 2.0), (1, None, None))
    assert layout == ((1, None, None), ((3,), (3, 1), None))
    assert _routes.in_layout((np.zeros((3, 7)), w, 5.0), layout, 7)
    assert not _routes.in_layout((np.zeros((3, 7)), w, 5.0), layout, 8)
    assert not _routes.in_layout((np.zeros((4, 7)), w, 5.0), layout, 7)
    assert not _routes.in_layout((np.zeros((3, 7)), np.zeros((3, 2)), 5.0), layout, 7)


def test_a_route_the_planner_confirms_is_checked_half_as_often() -> None:
    """Each time the planner settles on the same route again, the next check waits
    twice as long (up to RECHECK_MOST); another route starts again at RECHECK."""
    routes = _routes.Routes()
    routes.settle("k", _route())
    assert routes.entries["k"].every == _routes.RECHECK
    waits = []
    for _ in range(12):
        routes.settle("k", _route())
        waits.append(routes.entries["k"].every)
    assert waits[:2] == [2 * _routes.RECHECK, 4 * _routes.RECHECK]
    assert waits[-1] == _routes.RECHECK_MOST and max(waits) == _routes.RECHECK_MOST
    routes.settle("k", _route(blocks=8))  # the planner decided otherwise
    assert routes.entries["k"].every == _routes.RECHECK
    route = routes.entries["k"]
    found = [routes.find_key("k") is not None for _ in range(_routes.RECHECK)]
    assert found.count(False) == 1 and found[-1] is False  # the RECHECK-th goes back
    assert route.left == route.every


def test_a_route_goes_back_by_the_call_its_decision_may_change() -> None:
    """A route whose decision said that a backend not started yet wins in ``revisit``
    calls (``Decision.revisit``) goes back to the planner by then, however often the
    planner confirmed it; without one, RECHECK applies."""
    assert _route().every == _routes.RECHECK
    routes = _routes.Routes()
    for _ in range(5):
        routes.settle("k", _route(revisit=7))
        assert routes.entries["k"].every == 7
    found = [routes.find_key("k") is not None for _ in range(7)]
    assert found == [True] * 6 + [False]  # the 7th call goes to the planner


def test_a_route_keeps_the_result_checks(handoffs_cost: Profile) -> None:
    """A func that starts returning the wrong rows on a settled route still gets the
    usual error (its result is checked unless it is a one-in-one-out ufunc)."""
    x = np.linspace(0, 1, 1000)

    class Shrinks:
        shrink = False

        def __call__(self, b: np.ndarray) -> np.ndarray:
            return b[:-1] if self.shrink else b * 2

    f = Shrinks()
    with numpool.Pool("auto", workers=2) as pool:
        for _ in range(3):
            assert np.array_equal(pool.apply(f, x), x * 2)
        f.shrink = True
        with pytest.raises(ValueError, match="rows"):
            pool.apply(f, x)
        with pytest.raises(funcs.Boom, match="whole input"):
            for _ in range(3):
                pool.apply(funcs.fail_on_big, x)


def test_routes_are_forgotten_with_the_evidence(handoffs_cost: Profile) -> None:
    x = np.linspace(0, 1, 1000)
    with numpool.Pool("auto", workers=2) as pool:
        for _ in range(2):
            pool.apply(np.exp, x)
        assert pool._runner.routes.entries
        evidence.cache.clear()
        assert not pool._runner.routes.entries
        pool.apply(np.exp, x)
        assert not pool.last_stats.plan.cached  # measured anew


def test_a_lambda_made_anew_each_call_finds_its_route(handoffs_cost: Profile) -> None:
    """Routes are keyed by a function's code, not its object: a lambda written in a
    loop is one kind of work (and its closure is not kept alive by the table)."""
    x = np.linspace(0, 1, 1000)
    with numpool.Pool("auto", workers=2) as pool:
        for _ in range(5):
            assert np.array_equal(pool.apply(lambda b: b * 2, x), x * 2)
        assert len(pool._runner.routes.entries) == 1


# --- the threads engine: the caller takes blocks too ----------------------------------


def test_the_caller_runs_blocks_too_and_every_row_runs_once() -> None:
    """With blocks pulled from one counter, the calling thread is one of the workers;
    each row is computed exactly once, and the result equals func(x)."""
    x = np.arange(64.0)
    seen: list[tuple[str, int, int]] = []
    caller_ran = threading.Event()

    def f(b: np.ndarray) -> np.ndarray:
        me = threading.current_thread().name
        if me == "MainThread":
            caller_ran.set()
        else:  # a helper waits until the caller has taken a block: it always does
            caller_ran.wait(30)
        seen.append((me, int(b[0]), len(b)))
        return b * 3

    with numpool.Pool("threads", workers=2) as pool:
        assert np.array_equal(pool.apply(f, x, chunks=8), x * 3)
    rows = sorted(r for _, start, n in seen for r in range(start, start + n))
    assert rows == list(range(64))
    assert "MainThread" in {who for who, _, _ in seen}


def _scopes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the threads backend's BLAS scopes entered."""
    from numpool.backends.threads import ThreadsBackend

    entered: list[int] = []
    scope = ThreadsBackend.scope

    def counted(self: ThreadsBackend) -> Any:
        entered.append(1)
        return scope(self)

    monkeypatch.setattr(ThreadsBackend, "scope", counted)
    return entered


@pytest.mark.parametrize(
    ("func", "dtypes"),
    [(np.exp, ("f4",)), (np.sqrt, ("i2",)), (np.add, ("f8", "u1")), (np.isnan, ("c16",))],
)
def test_a_ufunc_route_on_threads_makes_its_output_first(
    func: Any, dtypes: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ufunc whose output's layout is known before it runs (known_layout): once its
    route is settled, every block, the caller's first included, goes straight into
    the output made first (no head), with no BLAS budget set; the result is
    func(*args)'s bits and dtype, also into a given out=, and a bad out= raises what
    it raises on serial."""
    rng = np.random.default_rng(0)
    args = tuple((rng.random((500, 3)) * 50).astype(d) for d in dtypes)
    want = func(*args)
    entered = _scopes(monkeypatch)
    with numpool.Pool("threads", workers=2) as pool:
        for _ in range(3):  # the first call's head, then the route's
            got = pool.apply(func, *args, chunks=4)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        stats = pool.last_stats
        assert stats is not None and stats.tasks == 4  # (no head block)
        for _ in range(3):  # (out= is another kind of call: its own route)
            out = np.empty_like(want)
            assert pool.apply(func, *args, out=out, chunks=4) is out
            assert out.tobytes() == want.tobytes()
        entered.clear()
        assert pool.apply(func, *args, out=out, chunks=4) is out
        assert pool.apply(func, *args, chunks=4).tobytes() == want.tobytes()
        assert not entered
        bad = np.empty(want.shape, np.int8 if want.dtype != np.int8 else np.float64)
        with pytest.raises(Exception) as on_threads:
            pool.apply(func, *args, out=bad, chunks=4)
    with pytest.raises(type(on_threads.value)):
        numpool.Pool("serial").apply(func, *args, out=bad)


def test_a_func_that_may_call_blas_keeps_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A func that is not an elementwise ufunc (a lambda, matmul) still runs its
    blocks under the pool's BLAS budget."""
    x = np.ones((400, 3, 3))
    entered = _scopes(monkeypatch)
    with numpool.Pool("threads", workers=2) as pool:
        for func in (lambda b: np.exp(b), np.matmul):
            for _ in range(3):
                entered.clear()
                args = (x,) if func is not np.matmul else (x, x)
                assert pool.apply(func, *args, chunks=4).tobytes() == func(*args).tobytes()
                assert entered


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([np.exp, np.negative, np.sqrt, np.add, np.multiply, np.less, np.arctan2]),
    st.sampled_from(["f4", "f8", "i4", "u1", "?", "c8", "i8"]),
    st.sampled_from(["f4", "f8", "i4", "u1", "?", "c8", "i8"]),
    st.integers(2, 60),
    st.integers(1, 4),
    st.sampled_from([0, 1]),
    st.integers(1, 6),
    st.booleans(),
)
def test_ufunc_routes_on_threads_give_numpys_bits(
    func: Any,
    d1: str,
    d2: str,
    rows: int,
    cols: int,
    axis: int,
    chunks: int,
    fortran: bool,
) -> None:
    """Across ufuncs, dtypes, shapes, split axes, block counts and memory orders, the
    route's calls (no head: known_layout) give plain NumPy's bits and dtype, or its
    error's type."""
    rng = np.random.default_rng(rows * cols)
    shape = (rows, cols)
    args = [
        np.asarray(rng.random(shape) * 10, order="F" if fortran else "C").astype(d, order="K")
        for d in ((d1,) if func.nin == 1 else (d1, d2))
    ]
    with np.errstate(all="ignore"):
        try:
            want: Any = func(*args)
        except Exception as e:
            want = type(e)
        with numpool.Pool("threads", workers=2) as pool:
            for _ in range(3):
                if isinstance(want, type):
                    with pytest.raises(want):
                        pool.apply(func, *args, axis=axis, chunks=chunks)
                    continue
                got = pool.apply(func, *args, axis=axis, chunks=chunks)
                assert got.dtype == want.dtype and got.shape == want.shape
                assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("bad", [[3], [2, 5], [0]])
def test_the_lowest_failing_block_is_raised_once_the_helpers_stopped(bad: list[int]) -> None:
    """A block's error reaches the caller only once no helper is still writing into
    the output; it is the error of the lowest failing block among those that ran."""
    x = np.arange(80.0)
    running = [0]
    lock = threading.Lock()

    def f(b: np.ndarray) -> np.ndarray:
        with lock:
            running[0] += 1
        try:
            block = int(b[0]) // 10
            if block in bad:
                raise funcs.Boom(f"block {block}")
            return b + 1
        finally:
            with lock:
                running[0] -= 1

    with numpool.Pool("threads", workers=2) as pool:
        for _ in range(5):
            with pytest.raises(funcs.Boom) as info:
                pool.apply(f, x, chunks=8)
            assert running[0] == 0
            assert str(info.value).split(" [")[0] in {f"block {b}" for b in bad}
        assert np.array_equal(pool.apply(np.negative, x, chunks=8), -x)  # still works


def test_progress_counts_every_row_of_the_helpers_too() -> None:
    x = np.arange(1000.0)
    seen: list[tuple[int, int]] = []
    with numpool.Pool("threads", workers=2) as pool:
        pool.apply(np.sqrt, x, chunks=10, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (1000, 1000)


def test_a_hand_off_to_an_idle_thread_starts_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call hands blocks to workers-1 threads, so the executor keeps fewer
    threads than max_workers: a submit that an idle thread will take must not start
    (and join) a spawner thread every time."""
    x = np.arange(100_000.0)
    started: list[str] = []
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    with numpool.Pool("threads", workers=4) as pool:
        for _ in range(3):
            pool.apply(np.sqrt, x, chunks=8)
        monkeypatch.setattr(threading.Thread, "start", start)
        for _ in range(20):
            assert np.array_equal(pool.apply(np.sqrt, x, chunks=8), np.sqrt(x))
    assert len(started) <= 3, started  # at most the pool's own threads, once


def test_several_arrays_a_halo_and_an_axis_have_routes_too(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply(f, a, b, c), overlap= and axis= settle like apply(f, x): later calls skip
    the planner, and a call of another shape or argument type takes its own route."""
    rng = np.random.default_rng(1)
    a, b, c = (rng.random(2000) for _ in range(3))
    img = rng.random((3, 40, 30))
    with numpool.Pool("auto", workers=2) as pool:
        calls = [
            (funcs.fma, (a, b, c), {}),
            (funcs.box_blur, (img[0],), {"overlap": 1}),
            (funcs.scale, (img, 2.0), {"axis": 1}),
            (funcs.scale, (img, 2.0), {"axis": -2}),
        ]
        for f, args, kw in calls:
            pool.apply(f, *args, **kw)
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        for _ in range(3):
            for f, args, kw in calls:
                assert np.array_equal(pool.apply(f, *args, **kw), f(*args))
        # another argument type, shape or halo is another kind of call: the planner
        monkeypatch.undo()
        assert np.array_equal(pool.apply(funcs.scale, img, 3, axis=1), img * 3)
        with pytest.raises(TypeError, match="overlap"):
            pool.apply(funcs.box_blur, img[0], overlap=True)
        with pytest.raises(ValueError, match="axis 3 is out of range"):
            pool.apply(funcs.scale, img, 2.0, axis=3)


def test_the_serial_pool_routes_several_arrays_a_halo_and_an_axis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pool("serial") settles a route for calls with several arguments, a halo, another
    axis or out= after their first (checked) call: later ones run func on the whole
    inputs without the checks or the runner, with the same bits, stats and errors."""
    from numpool import _inputs

    rng = np.random.default_rng(4)
    a, b, c = (rng.random(300) for _ in range(3))
    img = rng.random((3, 40, 30))
    out1, out2 = np.empty(300), np.empty((40, 30))
    calls = [
        (funcs.fma, (a, b, c), {}),
        (funcs.box_blur, (img[0],), {"overlap": 1}),
        (funcs.scale, (img, 2.0), {"axis": 1}),
        (funcs.fma, (a, b, c), {"out": out1}),
        (funcs.box_blur, (img[0],), {"overlap": 1, "out": out2}),
    ]
    seen: list[int] = []

    def writes_later(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        seen.append(1)
        if len(seen) > 1:
            u += v  # (on its route: x must still be read-only)
        return u + v

    with numpool.Pool("serial") as pool:
        for f, args, kw in [*calls, (writes_later, (a, b), {})]:
            pool.apply(f, *args, **kw)
        assert len(pool._runner.routes.entries) == len(calls) + 1
        monkeypatch.setattr(Runner, "apply", _no_planner)
        monkeypatch.setattr(_inputs, "_make", _no_planner)
        for _ in range(3):
            out1[...] = out2[...] = 0
            for f, args, kw in calls:
                got = pool.apply(f, *args, **kw)
                assert got.tobytes() == f(*args).tobytes()
                assert got is kw.get("out", got)
                stats = pool.last_stats
                assert (stats.backend, stats.tasks, stats.plan) == ("serial", 1, None)
        with pytest.raises(ValueError, match="read-only"):
            pool.apply(writes_later, a, b)
        monkeypatch.undo()
        # what func returns is checked as on the runner's path
        assert pool.apply(funcs.keep_first, a, b) is not a
        routed = pool.apply(funcs.keep_first, a, b)
        assert routed is not a and routed.flags.writeable and np.array_equal(routed, a)
        for _ in range(2):  # (a call that fails settles no route)
            with pytest.raises(ValueError, match="expected"):
                pool.apply(funcs.drop_a_row, a, overlap=1)


@pytest.mark.parametrize("backend", ["auto", "serial", "threads"])
def test_calls_with_timeout_take_their_route_and_still_time_out(
    backend: str, handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """timeout= does not keep a call off its route: later calls skip the checks and
    the runner, a routed call in blocks still raises TimeoutError at the deadline,
    and a timeout that is not a number gets the checks' error."""
    import concurrent.futures as cf

    n = 4000
    x, rows = np.zeros(n), np.arange(n)
    release = threading.Event()

    def stall(b: np.ndarray, r: np.ndarray, row: int) -> np.ndarray:
        if r.size and r[0] >= row:  # (every block from that row on)
            release.wait(30)
        return b + 1

    with numpool.Pool(backend, workers=2) as pool:
        for _ in range(3):  # (settled by then: auto's explored what it could)
            pool.apply(stall, x, rows, n, chunks=4, timeout=30)
            pool.apply(np.exp, x, timeout=30)
            pool.apply(funcs.fma, x, x, x, timeout=30.0)
        monkeypatch.setattr(Runner, "apply", _no_planner)
        assert np.array_equal(pool.apply(np.exp, x, timeout=30), np.exp(x))
        assert np.array_equal(pool.apply(funcs.fma, x, x, x, timeout=30.0), x)
        # (the blocks already running end then; the rest never start)
        timer = threading.Timer(1.0, release.set)
        timer.start()
        try:
            with pytest.raises(cf.TimeoutError, match=r"timeout=0\.2"):
                pool.apply(stall, x, rows, 2, chunks=4, timeout=0.2)
        finally:
            timer.join()
        assert np.array_equal(pool.apply(stall, x, rows, n, chunks=4, timeout=30), x + 1)
        monkeypatch.undo()
        for bad in ("1", True):
            with pytest.raises(TypeError, match="timeout must be seconds"):
                pool.apply(np.exp, x, timeout=bad)


def test_a_call_that_wrote_into_fresh_memory_leaves_no_figure(
    handoffs_free: Profile,
) -> None:
    """Fresh output pages cost page faults later calls do not pay: a call whose
    output buffer was newly made counts as a call but leaves no figure; a call on
    recycled (warm) memory does. (Hand-offs cost nothing here: the calls run in
    blocks, on a route that adds to the evidence, whatever the machine's load.)"""
    x = np.random.default_rng(2).random(2_000_000)  # 16 MB: a recycled output buffer
    with numpool.Pool("threads", workers=2) as pool:
        # (an earlier test's 16 MB output, collected and kept idle while some pool
        # lives, would make the second call's buffer warm)
        gc.collect()
        _buffers.arena().clear()
        keep = [pool.apply(np.sqrt, x)]  # the first call: its output stays in use
        (ev,) = [e for k, e in evidence.cache.items() if np.sqrt in k]
        before = len(ev.recent.get("threads", []))
        keep.append(pool.apply(np.sqrt, x))  # a new buffer: cold
        assert len(ev.recent.get("threads", [])) == before
        keep.clear()  # both buffers go back to the arena
        assert np.array_equal(pool.apply(np.sqrt, x), np.sqrt(x))  # warm
        assert len(ev.recent.get("threads", [])) == before + 1


def test_a_buffer_another_thread_makes_meanwhile_is_not_this_calls(
    handoffs_free: Profile,
) -> None:
    """A call on warm memory keeps its figure although another thread made a fresh
    output buffer while it ran (another call, a background measurement): only the
    buffers the call's own thread made count. (Hand-offs cost nothing here, so the
    calls run in blocks, on a route that keeps adding to the evidence.)"""
    x = np.random.default_rng(2).random(2_000_000)

    def sqrt_while_another_thread_makes_a_buffer(b: np.ndarray) -> np.ndarray:
        t = threading.Thread(target=_buffers.PrivateBuffer, args=(1 << 20,))
        t.start()
        t.join()
        return np.sqrt(b)

    f = sqrt_while_another_thread_makes_a_buffer
    with numpool.Pool("threads", workers=2) as pool:
        pool.apply(f, x)  # (the first call)
        (ev,) = [e for k, e in evidence.cache.items() if f.__code__ in k]
        before = len(ev.recent.get("threads", []))
        for _ in range(2):
            assert np.array_equal(pool.apply(f, x), np.sqrt(x))
        assert len(ev.recent.get("threads", [])) >= before + 1


def test_one_block_on_processes_writes_into_shared_memory() -> None:
    """A call sized to one block on worker processes runs row 0 there (the output's
    layout), then the block straight into the output: its result never travels back
    through the pipe (a SharedArray x and out: 53 ms through the pipe against 2.4 ms
    for 1M np.exp in the demo), and the stats name the backend."""
    x = np.random.default_rng(4).random(200_000)
    sx, sout = numpool.share(x), numpool.share(np.empty_like(x))
    with numpool.Pool("processes", workers=2) as pool:
        for _ in range(3):
            assert pool.apply(np.exp, sx, out=sout, chunks=1) is sout
            assert np.array_equal(sout, np.exp(x))
            stats = pool.last_stats
            assert stats.backend == "processes" and stats.tasks == 2, stats
            assert stats.bytes_moved == 0


class _Backend:
    """What ``_worker_item_s`` reads of a backend."""

    def __init__(self, in_process: bool, workers: int = 2) -> None:
        self.in_process, self.workers = in_process, workers


@pytest.mark.parametrize(
    ("item_s", "native", "speedup", "block_row_s", "in_process", "want"),
    [
        (1e-9, 1.0, 0.25, None, True, 1e-9),  # a poor threads sample: rows no slower
        (2e-9, 2.0, None, None, True, 4e-9),  # BLAS used 2 cores serially: 1 in a worker
        (14e-9, 1.0, None, 1e-9, True, 1e-9),  # a cold first call: blocks' time caps it
        (1e-9, 1.0, None, 3e-9, True, 1e-9),  # blocks slower than serial: serial stands
        (14e-9, 1.0, None, 1e-9, False, 14e-9),  # processes: in-process blocks say nothing
    ],
)
def test_block_sizes_go_by_the_work_per_row(
    item_s: float,
    native: float,
    speedup: float | None,
    block_row_s: float | None,
    in_process: bool,
    want: float,
) -> None:
    """A worker's seconds per row, for block sizes, from a table: serial seconds times
    the cores serial used, never raised by a poor threads sample (its slowness is the
    hand-offs, which more blocks would multiply), and capped by what in-process
    blocks were seen to take once they ran (a first call's figure may be cold)."""
    from numpool._runner import _worker_item_s

    ev = evidence.Evidence("apply", item_s, native=native)
    ev.threads_speedup = speedup
    if block_row_s is not None:
        ev.observe_blocks(block_row_s)
    assert _worker_item_s(_Backend(in_process), ev) == pytest.approx(want)  # type: ignore[arg-type]


def _exp_made(v: np.ndarray) -> np.ndarray:
    """np.exp as a func that makes its own result (blocks are copied into the output)."""
    return np.exp(v)


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_a_cold_first_figure_does_not_keep_a_threads_route_in_many_blocks(
    speed: float, model_counts: None
) -> None:
    """A threads pool whose first call read its rows 20x too slow (cold memory) settles
    its route in the most blocks; once blocks have shown what a row takes, the route
    goes back to the planner and takes the blocks that work is worth. The machine's
    costs and the rows' cost are the test's, on machines of every speed (blocks can
    only show rows cheaper still: fewer blocks again). func makes its result (not a
    ufunc written straight into the output), so pulled blocks are not held to one
    per worker."""
    from numpool.planner.profile import store

    row_s = 1e-9 / speed
    real = store.get()
    store.override(
        dataclasses.replace(real, thread_wake_s=40e-6 / speed, thread_task_s=8e-6 / speed)
    )
    try:
        n = 1_000_000
        x = np.linspace(0, 1, n)
        with numpool.Pool("threads", workers=2) as pool:
            pool.apply(_exp_made, x)  # the first call
            ((_, ev),) = evidence.cache.items()
            ev.item_s, ev.native = 20 * row_s, 1.0  # as a cold first call reads it
            pool.apply(_exp_made, x)  # settles the route
            (route,) = pool._runner.routes.entries.values()
            assert route.blocks == model.blocks(n, 20 * row_s, 2, 40e-6 / speed, pulled=True)
            ev.observe_blocks(row_s)  # what its blocks showed
            for _ in range(3):
                assert np.array_equal(pool.apply(_exp_made, x), np.exp(x))
            (route,) = pool._runner.routes.entries.values()
            assert route.blocks <= model.blocks(n, row_s, 2, 40e-6 / speed, pulled=True) < 8
    finally:
        store.override(real)


def test_a_small_first_call_settles_without_a_decision(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call of work too small for any backend (the machine's hand-offs are
    the test's) runs func(x) and settles its route: no decision built, no plan
    worded, until the plan is asked for; then it says why, and later calls' plans
    say they are cached."""
    import gc
    import weakref

    from numpool._stats import Stats

    x = np.linspace(0, 1, 10_000)
    asked: list[int] = []
    real_choose = model.choose

    def choose(*args: object, **kwargs: object) -> model.Decision:
        asked.append(1)
        return real_choose(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "choose", choose)
    with numpool.Pool("auto", workers=2) as pool:
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        assert not asked  # (nothing worded yet)
        first = pool.last_stats
        assert isinstance(first, Stats) and first.backend == "serial" and first.tasks == 1
        assert first.plan is not None and not first.plan.cached and asked == [1]
        assert "too-small" in first.plan.codes and first.plan.backend == "serial"
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        later = pool.last_stats
        assert later.plan is not None and later.plan.cached and asked == [1]
        assert later.plan.what == first.plan.what
        # the route and its unworded plan keep nothing of x alive
        y = np.linspace(0, 2, 5_000)
        ref = weakref.ref(y)
        pool.apply(np.sin, y)
        del y
        gc.collect()
        assert ref() is None


def test_other_lengths_of_a_class_seen_run_whole_without_a_decision(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls of ever-changing lengths (per group, per window): each new length is a
    new route, but its size class has evidence, and by that evidence it is too small
    for any backend (the planner's own first rule). It runs whole, no decision
    built, no plan worded until asked for, every row once; with out= it settles a
    route of its own (without, no more rows than a call known too small need none)."""
    rng = np.random.default_rng(0)
    x, y, z = rng.random(3000), rng.random(3000), rng.random(3000)
    with numpool.Pool("auto", workers=2) as pool:
        pool.apply(np.exp, x[:1500])
        pool.apply(funcs.fma, x[:1500], y[:1500], z[:1500])
        out = np.empty(1500)
        pool.apply(np.exp, x[:1500], out=out)
        monkeypatch.setattr(model, "choose", _no_planner)
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        for n in range(1025, 2048, 97):  # (8 KiB to 16 KiB: the class of 1,500 rows)
            assert np.array_equal(pool.apply(np.exp, x[:n]), np.exp(x[:n]))
            got = pool.apply(funcs.fma, x[:n], y[:n], z[:n])
            assert np.array_equal(got, funcs.fma(x[:n], y[:n], z[:n]))
            out = np.full(n, np.nan)
            assert pool.apply(np.exp, x[:n], out=out) is out
            assert np.array_equal(out, np.exp(x[:n]))
        # without out= no length takes a route of its own (no more rows than known too
        # small); with out=, each length settles one
        assert len(pool._runner.routes.entries) == 3 + 11  # (the first calls too)
        assert all(r.certain and r.serial for r in pool._runner.routes.entries.values())
        monkeypatch.undo()
        for call in (
            lambda: pool.apply(np.exp, x[:1995], out=out),
            lambda: pool.apply(np.exp, x[:1995]),
        ):
            call()
            stats = pool.last_stats
            assert stats.backend == "serial" and stats.tasks == 1
            plan = stats.plan
            assert plan is not None and plan.cached and plan.calls >= 1
            assert plan.backend == "serial" and "too-small" in plan.codes
            assert "1,995 rows" in plan.what, plan.what
            assert "Decided from the" in plan.explain()
        assert "as a call of more rows of this function was" in plan.explain()


class _ShrinksLater:
    """x * 2 until told otherwise, then a row too few: a result check must catch it."""

    shrink = False

    def __call__(self, b: np.ndarray) -> np.ndarray:
        return b[:-1] * 2 if self.shrink else b * 2


def test_fewer_rows_than_a_call_known_too_small_run_whole_and_leave_nothing(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After apply(func, x) of 1,500 rows was found too small for any backend, a call
    of fewer rows (any size class below) or more rows within its class runs whole in
    the caller: no route (until its length comes again), no evidence, no decision of
    its own, its result checked as a settled route's is. More rows than its class
    ends at, or another machine profile, are not taken."""
    from numpool.planner.profile import store

    x = np.random.default_rng(4).random(5000)
    doubled = _ShrinksLater()
    with numpool.Pool("auto", workers=2) as pool:
        runner = pool._runner
        pool.apply(np.exp, x[:1500])
        pool.apply(doubled, x[:1500])
        entries, kinds = len(runner.routes.entries), len(evidence.cache._items)
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        monkeypatch.setattr(Runner, "_first_small", _no_planner)
        lengths = (2, 3, 17, 100, 999, 1024, 1499, 1501, 2047)
        for n in lengths:
            assert np.array_equal(pool.apply(np.exp, x[:n]), np.exp(x[:n]))
            assert np.array_equal(pool.apply(doubled, x[:n]), x[:n] * 2)
            assert f"over {n:,} rows" in pool.last_stats.plan.what
        assert (len(runner.routes.entries), len(evidence.cache._items)) == (entries, kinds)
        for n in lengths:  # (a length seen again settles a route of its own)
            assert np.array_equal(pool.apply(np.exp, x[:n]), np.exp(x[:n]))
        assert len(runner.routes.entries) == entries + len(lengths)
        assert len(evidence.cache._items) == kinds
        assert np.array_equal(pool.apply(np.exp, x[:999]), np.exp(x[:999]))
        assert runner.routes.last[2] == (999,)  # (found by the route's one lookup)
        doubled.shrink = True
        with pytest.raises(ValueError, match="rows"):
            pool.apply(doubled, x[:700])
        monkeypatch.undo()
        pool.apply(np.exp, x[:2048])  # (16 KiB: the next class, its own first call)
        assert len(evidence.cache._items) == kinds + 1
        real = store.get()
        store.override(dataclasses.replace(real, thread_wake_s=9.0))
        try:
            pool.apply(np.exp, x[:900])  # (another machine: found again)
            assert len(evidence.cache._items) == kinds + 2
        finally:
            store.override(real)


def test_fewer_rows_of_several_arguments_run_whole_in_the_same_layout(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for apply(func, x, y, w, s) along axis 1 with a halo: x and y split,
    w (one column) and s (a number) passed whole. Calls of fewer columns in that
    layout run whole with no route, evidence or decision of their own, and equal
    func's; a call where y is one column (broadcast, not split) is another layout,
    and goes the usual way."""

    def f(x: np.ndarray, y: np.ndarray, w: np.ndarray, s: float) -> np.ndarray:
        return x * y + w * s

    rng = np.random.default_rng(5)
    x, y, w = rng.random((3, 2000)), rng.random((3, 2000)), rng.random((3, 1))
    with numpool.Pool("auto", workers=2) as pool:
        runner = pool._runner
        pool.apply(f, x[:, :1500], y[:, :1500], w, 2.0, axis=1, overlap=1)
        entries, kinds = len(runner.routes.entries), len(evidence.cache._items)
        taken: list[int] = []
        real = Runner._first_small

        def first_small(self: Runner, *args: object, **kwargs: object) -> object:
            taken.append(1)
            return real(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        monkeypatch.setattr(Runner, "_first_small", first_small)
        for n in (2, 5, 300, 1024, 1499, 1501):
            got = pool.apply(f, x[:, :n], y[:, :n], w, 2.0, axis=1, overlap=1)
            assert np.array_equal(got, f(x[:, :n], y[:, :n], w, 2.0))
            assert f"over {n:,} rows" in pool.last_stats.plan.what
        assert not taken
        assert (len(runner.routes.entries), len(evidence.cache._items)) == (entries, kinds)
        got = pool.apply(f, x[:, :700], y[:, :1], w, 2.0, axis=1, overlap=1)
        assert np.array_equal(got, f(x[:, :700], y[:, :1], w, 2.0))
        assert taken == [1]


def test_another_length_the_evidence_does_not_settle_goes_to_the_planner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The evidence decides per call: its serial seconds per row (set here: 1 us) times
    the call's rows, against the machine's hand-offs (set here: 0.75 ms, so that two
    workers could win above 1.5 ms of work). 1,100 rows settle at once; 2,000 rows
    of the same class go to the planner, and so does any length after them (a
    planner's call drops the rows known too small: its figures may have moved)."""
    from numpool.planner.profile import store

    real = store.get()
    handoff = 0.75e-3
    store.override(
        dataclasses.replace(
            real,
            thread_wake_s=handoff,
            thread_task_s=handoff,
            process_start_s=10.0,
            process_task_s=handoff,
        )
    )
    x = np.random.default_rng(1).random(2048)
    try:
        with numpool.Pool("auto", workers=2) as pool:
            pool.apply(np.exp, x[:1500])  # (~2 us of work: settled for good)
            [(_, ev)] = evidence.cache.items()
            ev.item_s = 1e-6
            ev.recent = {"serial": [1e-6]}
            pool._runner.routes.fewer.clear()  # (as if the first call had shown that)
            asked = _count_planner(monkeypatch)
            assert np.array_equal(pool.apply(np.exp, x[:1100]), np.exp(x[:1100]))
            assert not asked
            assert np.array_equal(pool.apply(np.exp, x[:2000]), np.exp(x[:2000]))
            assert asked == [1]
            assert not pool._runner.routes.fewer.known
    finally:
        store.override(real)


def test_other_lengths_run_on_their_size_classs_route(
    handoffs_free: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call of another length, not certain, runs as its size class's route says
    (here: threads, settled by hand): its blocks worked out for its own rows, the
    class's evidence added to, a route of its own settled, no decision built. Its
    plan says its own rows and whose predictions it shows. Every RECHECK calls the
    class goes back to the planner; a planner that settles nothing forgets it."""
    from numpool._inputs import Inputs
    from numpool._runner import _apply_key

    x = np.random.default_rng(2).random(40_000)
    with numpool.Pool("auto", workers=2) as pool:
        runner = pool._runner
        pool.apply(np.exp, x[:20_000])  # (the class's evidence)
        key = _apply_key(np.exp, Inputs.one(x[:20_000]), None, None, runner.key)
        ev = evidence.cache.get(key)
        assert ev is not None
        base = numpool.plan(np.exp, x[:20_000])
        klass = _routes.Route(
            "threads", 4, serial=False, certain=False, check=False, plan=base, ev=ev
        )
        runner.routes.entries.clear()
        runner.routes.settle(("class", key), klass)
        asked = _count_planner(monkeypatch)
        calls = ev.calls
        lengths = range(17_000, 32_000, 1_000)  # (136 to 256 KB: one class)
        for n in lengths:
            # (the blocks the call works out from the evidence as it stands: the call
            # then adds its own figures, which may give the next length another count)
            want = runner._apply_blocks(runner.backends.get("threads"), n, ev, 8)
            assert np.array_equal(pool.apply(np.exp, x[:n]), np.exp(x[:n]))
            stats = pool.last_stats
            assert stats.backend == "threads" and stats.tasks in (want, want + 1)
            assert stats.plan is not None and f"over {n:,} rows" in stats.plan.what
            assert "another call of this size class" in stats.plan.explain()
        assert not asked and ev.calls == calls + len(lengths)
        own = [r for k, r in runner.routes.entries.items() if k[0] != "class"]
        assert len(own) == len(lengths) and all(r.backend == "threads" for r in own)
        runner.routes.entries = {("class", key): klass}
        klass.left = 1  # (due: the next call of another length goes to the planner)
        assert np.array_equal(pool.apply(np.exp, x[:32_500]), np.exp(x[:32_500]))
        assert asked == [1]
        runner._settle(np.exp, Inputs.one(x[:20_000]), None)  # (the planner settled none)
        assert ("class", key) not in runner.routes.entries


def test_a_fixed_backends_other_lengths_take_the_route_its_evidence_gives(
    handoffs_free: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pool("threads"): a call of a length with no route of its own, of a size class
    with evidence, runs on the route the planner's path would give it (whole in the
    caller when it is one block, else in blocks worked out for its rows), with or
    without out=, one array or several, and settles it: no planner's path after
    each class's first call. Bad arguments and a func that raises there raise as
    they do on the planner's path."""
    from numpool._inputs import Inputs
    from numpool._runner import _apply_key

    x = np.random.default_rng(4).random(70_000)
    with numpool.Pool("threads", workers=2) as pool:
        runner, threads = pool._runner, pool._runner.backends.get("threads")
        pool.apply(np.exp, x[:40_000])  # (the 256-512 KB class's evidence)
        out = np.empty(70_000)
        pool.apply(np.sin, x[:40_000], out=out[:40_000])
        pool.apply(_no_nan, x[:40_000])
        pool.apply(funcs.fma, x[:40_000], x[:40_000], 2.0)
        ev = evidence.cache.get(_apply_key(np.exp, Inputs.one(x[:40_000]), None, None, runner.key))
        assert ev is not None
        asked = _count_planner(monkeypatch)
        monkeypatch.setattr(Runner, "_first_apply", _no_planner)
        lengths = range(33_000, 65_000, 4_000)
        for n in lengths:
            want = runner._apply_blocks(threads, n, ev, 8)  # (before: the call adds to ev)
            assert np.array_equal(pool.apply(np.exp, x[:n]), np.exp(x[:n]))
            stats = pool.last_stats
            assert stats.backend == "threads" and stats.tasks in (want, want + 1)
            pool.apply(np.sin, x[:n], out=out[:n])
            assert np.array_equal(out[:n], np.sin(x[:n]))
            got = pool.apply(funcs.fma, x[:n], x[:n], 2.0)
            assert np.array_equal(got, funcs.fma(x[:n], x[:n], 2.0))
        assert not asked
        own = [r for r in runner.routes.entries.values() if r.backend == "threads"]
        assert len(own) == 3 * len(lengths)
        with pytest.raises(ValueError, match="length"):  # (as the planner's path says)
            pool.apply(funcs.fma, x[:36_000], x[:35_000], 2.0)
        bad = x.copy()
        bad[50] = np.nan
        with pytest.raises(funcs.Boom, match="nan"):
            pool.apply(_no_nan, bad[:36_500])
        assert not asked


def _no_nan(b: np.ndarray) -> np.ndarray:
    if np.isnan(b).any():
        raise funcs.Boom("a nan")
    return b * 2


def test_a_due_route_goes_to_the_planner_not_to_its_size_classs(
    handoffs_free: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop over one shape on auto, settled on a route that is not certain: when
    that route is due, the call goes to the planner, although its size class has a
    route another length could run on (which would confirm the route unasked, and
    push its next recheck ever further)."""
    x = np.random.default_rng(5).random(50_000)
    with numpool.Pool("auto", workers=2) as pool:
        for _ in range(8):
            assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        entries = pool._runner.routes.entries
        own = [r for k, r in entries.items() if k[0] != "class"]
        assert len(own) == 1 and not own[0].certain
        assert any(k[0] == "class" for k in entries)
        asked = _count_planner(monkeypatch)
        own[0].left = 1  # (due on its next lookup)
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        assert asked == [1]


def test_calls_of_ever_changing_lengths_equal_plain_numpy(handoffs_free: Profile) -> None:
    """Lengths from 1 to 300,000 rows in random order, one and three arrays, with
    and without out=: each call equals NumPy's, whichever route (its own, its
    class's, the planner's) it took."""
    rng = np.random.default_rng(3)
    x, y, z = rng.random(300_000), rng.random(300_000), rng.random(300_000)
    with numpool.Pool("auto", workers=2) as pool:
        for n in rng.integers(1, 300_000, 60):
            assert np.array_equal(pool.apply(np.exp, x[:n]), np.exp(x[:n]))
            got = pool.apply(funcs.fma, x[:n], y[:n], z[:n])
            assert np.array_equal(got, funcs.fma(x[:n], y[:n], z[:n]))
            out = np.full(n, np.nan)
            assert pool.apply(np.sin, x[:n], out=out) is out
            assert np.array_equal(out, np.sin(x[:n]))


def test_a_first_call_the_model_settles_words_its_plan_when_asked(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first call over the quick bound (here: patched to settle nothing) that the
    model then finds too small settles its route and leaves its plan unworded until
    it is asked for: then it says what the planner's path says for the same call."""
    x = np.linspace(0, 1, 10_000)
    worded: list[int] = []
    real_plan = Runner._plan

    def plan(self: Runner, *args: object, **kwargs: object) -> object:
        worded.append(1)
        return real_plan(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Runner, "_certain_below", lambda self, profile: (-1.0, ()))
    monkeypatch.setattr(Runner, "_plan", plan)
    with numpool.Pool("auto", workers=2) as pool:
        assert np.array_equal(pool.apply(funcs.fma, x, x, x), funcs.fma(x, x, x))
        assert not worded
        assert [r.certain for r in pool._runner.routes.entries.values()] == [True]
        first = pool.last_stats
        assert worded == [1] and first.backend == "serial" and first.tasks == 1
        assert first.plan is not None and not first.plan.cached
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        assert np.array_equal(pool.apply(funcs.fma, x, x, x), funcs.fma(x, x, x))
        assert pool.last_stats.plan.cached and worded == [1]
    evidence.cache.clear()
    with numpool.Pool("auto", workers=2) as pool:  # (progress=: the planner's path)
        pool.apply(funcs.fma, x, x, x, progress=lambda done, total: None)
        eager = pool.last_stats.plan
    assert eager is not None and len(worded) == 2
    assert (first.plan.backend, first.plan.codes, first.plan.what) == (
        eager.backend,
        eager.codes,
        eager.what,
    )
    assert "too-small" in eager.codes


def test_a_first_call_that_is_not_certain_is_learnt_from_as_before(
    handoffs_free: Profile,
) -> None:
    """Where hand-offs cost next to nothing, no real work is certain: the first call
    runs whole (the serial cost itself), then the planner learns from it at once and
    nothing is settled for good."""
    x = np.linspace(0, 1, 10_000)
    with numpool.Pool("auto", workers=2) as pool:
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        stats = pool.last_stats
        assert stats.backend == "serial" and stats.plan is not None
        assert "too-small" not in stats.plan.codes and stats.busy_s
        assert not any(r.certain for r in pool._runner.routes.entries.values())


@pytest.mark.parametrize("backend", ["auto", "serial", "threads"])
def test_a_first_call_raises_as_every_call_does(backend: str, handoffs_cost: Profile) -> None:
    """A func that fails, or returns what apply cannot use, on the first call of its
    work: the same error and note on the fast gate's first call as on any other."""
    x = np.linspace(0, 1, 1_000)

    def boom(b: np.ndarray) -> np.ndarray:
        raise ZeroDivisionError("boom")

    with numpool.Pool(backend, workers=2) as pool:
        for _ in range(2):
            with pytest.raises(ZeroDivisionError, match="boom") as info:
                pool.apply(boom, x)
            assert "[numpool: raised by func on " in str(info.value)
            with pytest.raises(ValueError, match="shape"):
                pool.apply(lambda b: b[:-1], x)


@pytest.mark.parametrize(
    ("rows", "row_s", "whole"),
    [
        (100_000, 0.5e-9, True),  # 50 us of work: one block, run whole in the caller
        (3_000_000, 1e-9, False),  # 3 ms: several blocks
        (1_000, 1e-3, False),  # a second of Python: several blocks
    ],
)
def test_threads_that_would_run_one_block_are_no_choice_of_their_own(
    rows: int, row_s: float, whole: bool
) -> None:
    """Where the block rule gives a call one block, an in-process pool would run it
    whole in the caller, as serial does: auto's later calls do not see it as a
    backend of its own (a tie between equals, timed under two names, kept auto off
    serial's route). The machine's costs are the test's."""
    from numpool._runner import ONE_BLOCK
    from numpool.planner.profile import store

    real = store.get()
    store.override(dataclasses.replace(real, thread_wake_s=40e-6, thread_task_s=8e-6))
    try:
        with numpool.Pool("auto", workers=2) as pool:
            runner = pool._runner
            x = np.zeros(rows)
            ev = evidence.Evidence("apply", row_s)
            inputs = runner._inputs(x, (), 0, 0, None)
            (threads,) = [c for c in runner._candidates(np.exp, inputs) if c.name == "threads"]
            got = runner._not_whole(threads, ev, inputs)
            assert (got.unavailable == ONE_BLOCK) is whole
            assert got.unavailable is None or got.unavailable == ONE_BLOCK
    finally:
        store.override(real)


def test_a_first_calls_plan_is_worded_once_even_after_shutdown(handoffs_cost: Profile) -> None:
    """The plan a small first call left for later can be read after its pool was shut
    down (nothing is asked of the pool then), and threads reading it at once all get
    the one plan."""
    x = np.linspace(0, 1, 10_000)
    with numpool.Pool("auto", workers=2) as pool:
        pool.apply(np.exp, x)
    got: list[object] = []

    def read() -> None:
        got.append(pool.last_stats.plan)

    readers = [threading.Thread(target=read) for _ in range(8)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    plan = got[0]
    assert all(p is plan for p in got)
    assert plan.backend == "serial" and "too-small" in plan.codes and not plan.cached


# --- out= on the fast path ------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "machine"),
    [("auto", "handoffs_cost"), ("serial", "handoffs_cost"), ("threads", "handoffs_free")],
)
def test_calls_with_out_settle_a_route_of_their_own(
    backend: str,
    machine: str,
    steady_blocks: None,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """apply(f, x, out=out) settles a route as apply(f, x) does: it went through the
    planner on every call, 120-180 us for 2-10 us of work. Later calls skip the
    planner, write into out (whole, or in blocks on threads) and return it, bit for
    bit func(x), in place too; a call without out= keeps its own route."""
    request.getfixturevalue(machine)
    x = np.linspace(0, 1, 10_000)
    out = np.empty_like(x)
    with numpool.Pool(backend, workers=2) as pool:
        for _ in range(3):
            assert pool.apply(np.exp, x, out=out) is out
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        monkeypatch.setattr(Runner, "_first_apply", _no_planner)
        for _ in range(5):
            out[...] = 0
            assert pool.apply(np.exp, x, out=out) is out
            assert np.array_equal(out, np.exp(x))
        stats = pool.last_stats
        assert (stats.tasks > 1) == (backend == "threads"), stats  # (threads: blocks)
        y = x.copy()
        for _ in range(3):  # in place: y = exp(y), three times over
            assert pool.apply(np.exp, y, out=y) is y
        assert np.array_equal(y, np.exp(np.exp(np.exp(x))))
        if backend == "threads":
            with pytest.raises(AssertionError, match="the planner was asked"):
                pool.apply(np.sin, x, out=out)  # (another func: its own first call)
        elif backend == "auto":  # (small work: its first call settles at once, out= too)
            assert pool.apply(np.sin, x, out=out) is out
            assert np.array_equal(out, np.sin(x))


def test_the_module_level_apply_takes_the_route_with_out_too(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = np.linspace(0, 1, 5_000)
    out = np.empty_like(x)
    for _ in range(3):
        numpool.apply(np.sin, x, out=out)
    monkeypatch.setattr(Runner, "_later_apply", _no_planner)
    for _ in range(3):
        out[...] = 0
        assert numpool.apply(np.sin, x, out=out) is out
        assert np.array_equal(out, np.sin(x))


@pytest.mark.parametrize("backend", ["auto", "serial", "threads"])
def test_a_bad_out_gets_the_same_error_on_a_settled_route(
    backend: str, handoffs_cost: Profile
) -> None:
    """An out= of the wrong dtype or shape, read-only, or overlapping x without being
    x: on a settled route, the error the planner's path gives."""
    x = np.linspace(0, 1, 2_000)
    bad = {
        "dtype": np.empty(2_000, np.float32),
        "shape": np.empty(1_999),
        "read-only": np.empty(2_000),
        "overlap": np.empty(2_001),
    }
    bad["read-only"].flags.writeable = False

    def errors(pool: numpool.Pool) -> list[str]:
        got = []
        for name, out in bad.items():
            y = np.concatenate([x, [0.0]]) if name == "overlap" else x
            o = y[1:] if name == "overlap" else out
            xx = y[:-1] if name == "overlap" else x
            with pytest.raises((TypeError, ValueError)) as e:
                pool.apply(np.exp, xx, out=o)
            got.append(f"{type(e.value).__name__}: {e.value}")
        return got

    with numpool.Pool(backend, workers=2) as pool:
        before = errors(pool)  # (no route yet: the planner's path)
        good = np.empty_like(x)
        for _ in range(3):
            pool.apply(np.exp, x, out=good)
        assert pool._runner.routes.entries or backend == "serial"
        assert errors(pool) == before
    assert [m.split(":")[0] for m in before] == [
        "TypeError",
        "ValueError",
        "ValueError",
        "ValueError",
    ]


def test_several_arrays_and_a_halo_with_out_have_routes_too(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply(f, a, b, c, out=out) and apply(blur, img, overlap=1, out=out) settle too,
    apart from the same calls without out=; in place with a halo is still refused."""
    rng = np.random.default_rng(2)
    a, b, c = (rng.random(2000) for _ in range(3))
    img = rng.random((40, 30))
    out1, out2 = np.empty(2000), np.empty((40, 30))
    with numpool.Pool("auto", workers=2) as pool:
        for _ in range(3):
            pool.apply(funcs.fma, a, b, c, out=out1)
            pool.apply(funcs.box_blur, img, overlap=1, out=out2)
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        for _ in range(3):
            out1[...] = out2[...] = 0
            assert pool.apply(funcs.fma, a, b, c, out=out1) is out1
            assert pool.apply(funcs.box_blur, img, overlap=1, out=out2) is out2
            assert np.array_equal(out1, funcs.fma(a, b, c))
            assert np.array_equal(out2, funcs.box_blur(img))
        with pytest.raises(ValueError, match="out is an input array with overlap=1"):
            pool.apply(funcs.box_blur, out2, overlap=1, out=out2)
        kept = len(pool._runner.routes.entries)
        pool.apply(funcs.fma, a, b, c)  # (without out=: a kind of its own, settled now)
        assert len(pool._runner.routes.entries) == kept + 1


@pytest.mark.parametrize(
    ("backend", "machine"), [("auto", "handoffs_cost"), ("threads", "handoffs_free")]
)
@pytest.mark.parametrize(
    "shapes",
    [
        [(4000,), (4000,), (4000,)],
        [(4000, 3), (3,), ()],  # passed whole: fewer dimensions, 0-d
        [(4000, 3), (4000, 1), (1, 3)],  # length 1 along the split axis: whole
        [(5, 4000), (4000,), "scalar"],  # split along axis 1 (below)
    ],
)
def test_a_routed_call_builds_the_inputs_the_checks_built(
    backend: str,
    machine: str,
    shapes: list[object],
    steady_blocks: None,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call on a route of several arguments builds its inputs from the route's
    layout, without checking them again: the layout must be the one the checks gave
    (which array is split along which axis, and which is passed whole), and the result
    the same bits, with out= and on blocks too (threads)."""
    from numpool import _inputs

    request.getfixturevalue(machine)
    rng = np.random.default_rng(3)
    args = [2.5 if s == "scalar" else rng.random(s) for s in shapes]  # type: ignore[arg-type]
    axis = 1 if shapes[0] == (5, 4000) else 0
    expected = funcs.fma(args[0], args[1], args[2] if len(args) > 2 else 0.0)
    out = np.empty_like(expected)
    with numpool.Pool(backend, workers=2) as pool:
        for _ in range(3):
            pool.apply(funcs.fma, *args, axis=axis, out=out)
            pool.apply(funcs.fma, *args, axis=axis)
        checked = _inputs.make(args[0], tuple(args[1:]), axis, 0, "apply")
        layouts = {r.layout for r in pool._runner.routes.entries.values() if r.layout is not None}
        assert layouts == {(checked.axes, checked.axis, checked.n, checked.overlap)}
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        monkeypatch.setattr(_inputs, "_make", _no_planner)
        for _ in range(3):
            out[...] = 0
            assert pool.apply(funcs.fma, *args, axis=axis, out=out) is out
            assert out.tobytes() == expected.tobytes()
            assert (pool.last_stats.tasks > 1) == (backend == "threads")
            assert pool.apply(funcs.fma, *args, axis=axis).tobytes() == expected.tobytes()


# --- chunks= on the fast path ---------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "machine"),
    [
        ("auto", "handoffs_cost"),
        ("serial", "handoffs_cost"),
        ("threads", "handoffs_free"),
        ("threads", "handoffs_cost"),
    ],
)
@pytest.mark.parametrize("form", ["x", "x, out", "a, b, axis", "halo"])
def test_calls_with_chunks_settle_a_route_of_their_own(
    backend: str,
    machine: str,
    form: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """apply(f, x, chunks=k) settles a route, apart from the same call without chunks=
    and with another count: it went through the planner on every call (150-180 us of
    numpool's own). A routed call splits the rows into the very blocks a call through
    the planner does (the first rows, then k blocks), whatever the backend decided,
    and gives func(x) bit for bit."""
    request.getfixturevalue(machine)
    rng = np.random.default_rng(4)
    x, y = rng.random((64, 3)), rng.random(3)
    seen: list[tuple[int, float]] = []
    lock = threading.Lock()

    def f(b: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        with lock:
            seen.append((b.shape[0], round(float(b[0, 0]), 12)))
        return b * 2 + (rest[0] if rest else 0)

    args: tuple[object, ...] = (x,)
    kw: dict[str, object] = {"chunks": 4}
    expected = x * 2
    if form == "x, out":
        kw["out"] = np.empty_like(x)
    elif form == "a, b, axis":
        args, kw["axis"] = (x, y), -2
        expected = x * 2 + y
    elif form == "halo":
        kw["overlap"] = 1
    with numpool.Pool(backend, workers=2) as pool:
        blocks = []
        for _ in range(3):
            seen.clear()
            assert pool.apply(f, *args, **kw).tobytes() == expected.tobytes()
            blocks.append(sorted(seen))
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        monkeypatch.setattr(Runner, "_first_apply", _no_planner)
        for _ in range(3):
            seen.clear()
            if "out" in kw:
                kw["out"][...] = 0  # type: ignore[index]
            result = pool.apply(f, *args, **kw)
            assert result.tobytes() == expected.tobytes()
            assert sorted(seen) == blocks[-1]  # the planner's blocks
            assert len(seen) == pool.last_stats.tasks > 1
        (key,) = pool._runner.routes.entries
        assert key[:2] == ("chunks", 4)  # (apart from calls without chunks=)
        with pytest.raises(AssertionError, match="the planner was asked"):
            pool.apply(f, *args, **{**kw, "chunks": 3})  # another count: its own


def test_a_chunks_route_keeps_its_count_when_block_times_move(
    handoffs_free: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route's block count given with chunks= is the caller's: the blocks' times,
    which make a route sized by the model ask the planner again, leave it be."""
    x = np.random.default_rng(5).random((4000, 4))
    with numpool.Pool("threads", workers=2) as pool:
        for _ in range(3):
            pool.apply(funcs.affine, x, chunks=3)
        (route,) = pool._runner.routes.entries.values()
        assert route.given and route.blocks == 3
        monkeypatch.setattr(Runner, "_later_apply", _no_planner)
        for i in range(5):
            route.row_s = -1.0  # (the blocks' seconds per row moved)
            assert np.array_equal(pool.apply(funcs.affine, x, chunks=3), funcs.affine(x))
            assert route.left > 1, i


@pytest.mark.parametrize("bad", [True, 2.0, 0, -1, np.int64(2)])
def test_a_chunks_that_is_not_a_plain_int_goes_to_the_checks(bad: object) -> None:
    """chunks=True (== 1), 2.0 or np.int64(2) never find the route of chunks=1 or 2:
    the checks see them, and refuse those they refuse, as on every call."""
    x = np.arange(64.0)
    with numpool.Pool("threads", workers=2) as pool:
        for _ in range(3):
            pool.apply(np.exp, x, chunks=1)
            pool.apply(np.exp, x, chunks=2)
        try:
            expected: object = pool.apply_with_stats(np.exp, x, chunks=bad)[0]
        except (TypeError, ValueError) as e:
            expected = (type(e), str(e))
        try:
            got: object = pool.apply(np.exp, x, chunks=bad)
        except (TypeError, ValueError) as e:
            got = (type(e), str(e))
        if isinstance(expected, np.ndarray):
            assert isinstance(got, np.ndarray) and got.tobytes() == expected.tobytes()
        else:
            assert got == expected
            assert isinstance(bad, (bool, float)) or bad <= 0  # type: ignore[operator]


@pytest.mark.parametrize("backend", ["auto", "serial", "threads"])
def test_a_0d_x_gets_the_checks_error_and_func_never_runs(backend: str) -> None:
    """A 0-d x is refused by the checks, before func runs, on every backend: the gate
    of Pool("serial") once ran func(x) and then failed with an IndexError."""
    ran: list[int] = []

    def f(b: np.ndarray) -> np.ndarray:
        ran.append(1)
        return b + 1

    with numpool.Pool(backend, workers=2) as pool:
        for func in (f, np.exp):
            for _ in range(2):
                with pytest.raises(ValueError, match="at least one dimension"):
                    pool.apply(func, np.array(1.0))
    assert not ran


@pytest.mark.parametrize("backend", ["auto", "serial", "threads"])
def test_a_call_without_a_route_gets_the_checks_error_before_its_timeout(
    backend: str,
) -> None:
    """A call given a timeout that has passed at once, with arguments that do not fit:
    the gate finds no route and leaves it to the checks, whose error comes first, as
    without the gate; with fitting arguments, TimeoutError."""
    import concurrent.futures as cf

    a = np.arange(100.0)
    with numpool.Pool(backend, workers=2) as pool:
        for _ in range(2):
            with pytest.raises(ValueError, match="different lengths"):
                pool.apply(funcs.fma, a, a[:-1], a, timeout=1e-9)
            with pytest.raises(cf.TimeoutError):
                pool.apply(funcs.fma, a, a, a, timeout=1e-9)


def _observed(ev: evidence.Evidence, backend: str, item_s: float) -> None:
    """What a settled route's call did to its evidence before tallies (Runner._observe)."""
    ev.observe(backend, item_s)
    ev.calls += 1
    ev.current = backend


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(0.0, 1e-6),  # a serial route's call (0.0: a figure too small to see)
            st.just("threads"),  # a call observed directly in between (another route)
            st.just("read"),  # the evidence read (the cache's get folds)
        ),
        max_size=40,
    )
)
def test_calls_noted_on_a_tally_leave_the_evidence_as_observing_each_did(
    events: list[float | str],
) -> None:
    """A settled serial route notes its calls on a tally, folded when the evidence is
    read or observed otherwise: the evidence is then what observing each call in turn
    left (figures kept, the call each was seen at, the count, the backend settled)."""
    evidence.cache.clear()
    direct = evidence.Evidence("apply", 1e-8)
    tallied = evidence.cache.put(("tally test",), evidence.Evidence("apply", 1e-8))
    tally = tallied.tally("serial")
    for e in events:
        if e == "threads":
            _observed(direct, "threads", 2e-9)
            tallied.fold()  # (as Runner._observe does, under the lock)
            _observed(tallied, "threads", 2e-9)
        elif e == "read":
            assert evidence.cache.get(("tally test",)) is tallied
        else:
            assert isinstance(e, float)
            _observed(direct, "serial", e)
            tally.note(e)
    evidence.cache.get(("tally test",))
    assert tallied.recent == direct.recent
    assert tallied.seen == direct.seen
    assert (tallied.calls, tallied.current) == (direct.calls, direct.current)


def test_serial_routes_of_one_evidence_note_on_one_tally() -> None:
    """Routes of several lengths of one kind share their evidence's tally, so their
    calls are folded in the order they ran; routes in blocks keep none."""
    ev = evidence.Evidence("apply", 1e-8)
    a, b = (
        _routes.Route("serial", 1, serial=True, certain=False, check=False, plan=None, ev=ev)
        for _ in range(2)
    )
    assert a.tally is b.tally is ev.tally("serial")
    assert _route().tally is None
    a.tally.note(3e-9)
    b.tally.note(1e-9)
    a.tally.note(2e-9)
    ev.fold()
    assert ev.recent["serial"] == [3e-9, 1e-9, 2e-9]
    assert (ev.calls, ev.seen["serial"], ev.current) == (3, 2, "serial")


def _count_slow_path(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets a 1 for each call that takes the planner's path from the gate
    (``Pool.apply_with_stats``, which still runs), from now on."""
    asked: list[int] = []
    slow = numpool.Pool.apply_with_stats

    def counting(self: numpool.Pool, *args: object, **kwargs: object) -> object:
        asked.append(1)
        return slow(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(numpool.Pool, "apply_with_stats", counting)
    return asked


def _no_detour(*args: object, **kwargs: object) -> None:
    raise AssertionError("Runner.fast was asked")


@pytest.mark.parametrize("func", [np.exp, lambda b: b * 2.0], ids=["ufunc", "checked"])
def test_a_call_like_the_last_on_a_serial_route_runs_it_straight(
    func: object, handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``apply(func, x)`` like the last call that found a serial route runs it from
    ``Routes.find``'s memo, with no detour through ``Runner.fast``; anything else (another
    length, ``out=``, ``chunks=``) still goes there. Results, checks and stats are
    the route's."""
    x = np.linspace(0, 1, 10_000)
    want = np.asarray(func(x))  # type: ignore[operator]
    with numpool.Pool("auto", workers=2) as pool:
        for _ in range(2):  # the first settles the route, the second finds it (the memo)
            pool.apply(func, x)  # type: ignore[arg-type]
        monkeypatch.setattr(Runner, "fast", _no_detour)
        for _ in range(3):
            res = pool.apply(func, x)  # type: ignore[arg-type]
            assert np.array_equal(res, want) and res.flags.writeable
        assert pool.last_stats.backend == "serial" and pool.last_stats.plan.cached
        for other in (
            lambda: pool.apply(func, x[:-1]),  # type: ignore[arg-type]
            lambda: pool.apply(func, x, out=np.empty_like(x)),  # type: ignore[arg-type]
            lambda: pool.apply(func, x, chunks=2),  # type: ignore[arg-type]
        ):
            with pytest.raises(AssertionError, match="fast was asked"):
                other()


def test_a_serial_route_taken_straight_still_goes_back_every_recheck_calls(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A serial route that is not certain, taken straight, still goes back to the
    planner's path on its RECHECK-th call, and only then."""
    x = np.random.default_rng(0).random(1_000)
    with numpool.Pool("auto", workers=2) as pool:
        routes = pool._runner.routes
        route = _routes.Route(
            "serial", 1, serial=True, certain=False, check=False, plan=None, ev=None
        )
        routes.settle(_routes.plain_key(np.exp, x), route)
        assert routes.find(np.exp, x) is route  # (the memo; that was its first call)
        monkeypatch.setattr(Runner, "fast", _no_detour)
        asked = _count_slow_path(monkeypatch)
        for call in range(2, _routes.RECHECK + 1):
            assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
            assert len(asked) == (call == _routes.RECHECK)


@pytest.mark.parametrize("backend", ["serial", "threads", "processes", "auto"])
@pytest.mark.parametrize("rows", [1, 0])
@pytest.mark.parametrize("how", ["x", "halo", "out", "chunks"])
def test_one_row_or_none_runs_whole_from_its_route_on_every_backend(
    backend: str, rows: int, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call over one row or none runs whole in the caller on every backend; from its
    second call on it takes its settled route, not the planner's ~30 us of checks and
    plan, with the planner's result, stats and plan; its input stays read-only."""
    x = np.random.default_rng(0).random((rows, 64))
    kw: dict[str, object] = {
        "x": {},
        "halo": {"overlap": 1},
        "out": {"out": np.empty_like(x)},
        "chunks": {"chunks": 1},
    }[how]
    given = x.copy()
    want = x * 2.0 + 1.0
    writeable: list[bool] = []

    def scale(b: np.ndarray) -> np.ndarray:
        writeable.append(b.flags.writeable)
        return b * 2.0 + 1.0

    with numpool.Pool(backend, workers=2) as pool:  # type: ignore[arg-type]
        first = pool.apply(scale, x, **kw)  # type: ignore[arg-type]
        planned = pool.last_stats
        monkeypatch.setattr(Runner, "apply", _no_planner)
        for _ in range(2):
            res = pool.apply(scale, x, **kw)  # type: ignore[arg-type]
            assert np.array_equal(res, want) and np.array_equal(first, want)
            assert res.flags.writeable and (res is kw.get("out")) == (how == "out")
            stats = pool.last_stats
            assert (stats.backend, stats.tasks) == ("serial", 1)
            assert (planned.backend, planned.tasks) == ("serial", 1)
            assert stats.plan == planned.plan
            if backend == "auto":
                assert stats.plan.what == f"apply over {rows} row{'s' * (rows != 1)}"
    assert writeable == [False] * 3 and np.array_equal(x, given)


def _no_key(*args: object, **kwargs: object) -> None:
    raise AssertionError("Runner.fast_many was asked")


def _writes_second(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    b[0] = 99.0  # (its arguments are read-only: fails on every call, as on the first)
    return a + b


@pytest.mark.parametrize(
    "func, others",
    [
        (funcs.fma, lambda a: (a[::-1].copy(), a * 2)),
        (np.add, lambda a: (a[::-1].copy(),)),  # a ufunc: nothing to check or freeze
        (funcs.weighted, lambda a: (a * 2, 0.5)),  # a value passed whole
        (lambda a, b, c, d: a + b + c + d, lambda a: (a, a, a)),  # more than three
    ],
    ids=["three", "ufunc", "value", "four"],
)
def test_a_call_of_several_arguments_like_the_last_runs_its_serial_route_straight(
    func: Any, others: Any, handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``apply(func, x, *arrays)`` like the last call of several arguments that found a
    serial route runs it from ``Routes.recall``, with no key built (no detour through
    ``Runner.fast_many``); another length, dtype, argument type or count, a subclass,
    ``out=``, ``chunks=``, ``axis=`` or ``overlap=`` still goes there. Results, stats
    and read-only arguments are the route's."""
    x = np.linspace(0, 1, 1_000)
    args = (x, *others(x))
    want = func(*args)
    with numpool.Pool("auto", workers=2) as pool:
        for _ in range(2):  # the first settles the route, the second finds it
            pool.apply(func, *args)
        monkeypatch.setattr(Runner, "fast_many", _no_key)
        for _ in range(3):
            res = pool.apply(func, *args)
            assert np.array_equal(res, want) and res.flags.writeable
            assert res is not x
        assert pool.last_stats.backend == "serial" and pool.last_stats.plan.cached
        second = args[1]
        for other in (
            (x[:-1], *[a[:-1] if isinstance(a, np.ndarray) else a for a in args[1:]]),
            (x.astype(np.float32), *args[1:]),
            (x, second.astype(np.float32), *args[2:]),
            (x, second.view(np.matrix).T[:, 0].A1.view(_Sub), *args[2:]),
            (x, *args[1:], 1.0),
        ):
            with pytest.raises(AssertionError, match="fast_many was asked"):
                pool.apply(func, *other)
        for kw in ({"out": np.empty_like(want)}, {"chunks": 2}, {"axis": -1}):
            with pytest.raises(AssertionError, match="fast_many was asked"):
                pool.apply(func, *args, **kw)
        with pytest.raises(AssertionError):  # (overlap: its own key, then the planner)
            pool.apply(func, *args, overlap=1)


class _Sub(np.ndarray):
    """An ndarray subclass: never on a route (the planner's checks see it every time)."""


def test_a_call_of_several_arguments_taken_straight_stays_read_only(
    handoffs_cost: Profile,
) -> None:
    """A func that writes into an argument fails on the call taken straight as on the
    first, and the caller's arrays are never written."""
    a, b = np.ones(1_000), np.zeros(1_000)
    with numpool.Pool("auto", workers=2) as pool:
        pool.apply(np.add, a, b)
        pool.apply(np.add, a, b)  # (the memo holds np.add's route now)
        for _ in range(3):
            with pytest.raises(ValueError, match="read-only"):
                pool.apply(_writes_second, a, b)
        assert (b == 0).all()
        assert pool._runner.routes.recall(_writes_second, a, (b,)) is None  # (no route)


def test_a_serial_route_of_several_arguments_taken_straight_still_goes_back(
    handoffs_cost: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A serial route of several arguments that is not certain, taken straight, goes
    back to the planner's path on its RECHECK-th call, and only then; settling or
    forgetting any route (or the evidence) drops the memo."""
    a, b = np.ones(1_000), np.arange(1_000.0)
    with numpool.Pool("auto", workers=2) as pool:
        runner = pool._runner
        routes = runner.routes
        route = _routes.Route(
            "serial", 1, serial=True, certain=False, check=False, plan=None, ev=None
        )
        key = _routes.call_key(np.add, (a, b), 0, 0)
        routes.settle(key, route)
        assert routes.recall(np.add, a, (b,)) is None  # (nothing remembered yet)
        res = pool.apply(np.add, a, b)  # its first call: found under its key
        assert np.array_equal(res, a + b)
        assert routes.recall(np.add, a, (b,)) is route
        monkeypatch.setattr(Runner, "fast_many", _no_key)
        asked = _count_slow_path(monkeypatch)
        for call in range(2, _routes.RECHECK + 1):
            assert np.array_equal(pool.apply(np.add, a, b), a + b)
            assert len(asked) == (call == _routes.RECHECK)
        monkeypatch.undo()
        for drop in (
            lambda: routes.settle(("another",), route),
            lambda: routes.forget(("another",)),
            routes.clear,
            evidence.cache.clear,
        ):
            routes.remember(np.add, key, route)
            assert routes.recall(np.add, a, (b,)) is route
            drop()
            assert routes.recall(np.add, a, (b,)) is None


_KINDS = [
    (np.float64, 50, 50),
    (np.float64, 51, 51),
    (np.float32, 50, 50),
    (np.float64, 50, 1),  # (b broadcast along the rows)
    (np.int64, 50, 50),
]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_KINDS), st.sampled_from([None, 2, 2.5])), max_size=12))
def test_calls_of_several_arguments_in_any_order_equal_plain_numpy(
    calls: list[tuple[tuple[Any, int, int], float | None]],
) -> None:
    """Calls whose arguments change dtype, length, broadcasting and count from one call
    to the next (each remembered in turn by ``Routes.recall``) give plain NumPy's
    bits and dtype."""
    with numpool.Pool("serial") as pool:
        for (dtype, n, m), k in calls:
            a = np.arange(n, dtype=dtype)
            b = np.arange(m, dtype=dtype)[::-1].copy()
            args = (a, b) if k is None else (a, b, k)
            func = funcs.weighted if k is not None else np.add
            want = func(*args)
            res = pool.apply(func, *args)
            assert res.dtype == want.dtype and np.array_equal(res, want)
