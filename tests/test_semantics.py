"""One meaning on every backend: what func may do to its inputs, and what comes back."""

from __future__ import annotations

import numpy as np
import pytest

import numpool
import semfuncs


def x_2d() -> np.ndarray:
    return np.random.default_rng(0).random((300, 4))


def test_writing_into_a_block_is_refused_and_x_is_unchanged(pool: numpool.Pool) -> None:
    """A func that writes into its block fails the same way everywhere; x never changes."""
    x = x_2d()
    before = x.copy()
    with pytest.raises(ValueError, match="read-only") as info:
        pool.apply(semfuncs.double_in_place, x)
    assert "b = b.copy()" in str(info.value)
    assert np.array_equal(x, before)


def test_writing_is_refused_on_the_settled_serial_route() -> None:
    """The fast path (a settled serial route) gives func a read-only x too."""
    x = np.ones(100)
    for _ in range(3):  # first call, then the settled route
        with pytest.raises(ValueError, match="read-only"):
            numpool.apply(semfuncs.double_in_place, x)
    assert (x == 1).all()


@pytest.mark.parametrize("backend", ["auto", "serial"])
@pytest.mark.parametrize("ufunc", [np.exp, np.positive, np.conjugate, np.sqrt, np.isnan])
def test_a_ufunc_on_the_settled_serial_route_gets_x_itself_and_leaves_it(
    ufunc, backend: str
) -> None:
    """A ufunc of one input and one output gets x itself on the settled route (no
    read-only view: it cannot write into its input); x is left as it was, and the
    result is a new writable array, bit for bit ufunc(x)."""
    x = np.linspace(0.0, 4.0, 1000)
    before = x.copy()
    for _ in range(4):  # first call, then the settled route
        r = numpool.apply(ufunc, x, backend=backend)
        assert r is not x and not np.shares_memory(r, x) and r.flags.writeable
        assert r.tobytes() == ufunc(before).tobytes()
    assert x.tobytes() == before.tobytes() and x.flags.writeable


def test_writing_into_other_arrays_is_refused(pool: numpool.Pool) -> None:
    """Every array argument, split or passed whole, is read-only."""
    x, w = x_2d(), np.ones((1, 4))

    def f(b: np.ndarray, w: np.ndarray) -> np.ndarray:
        w[...] = 0
        return b * w

    if pool.backend in ("processes", "pickle", "dask"):
        f = semfuncs.double_in_place  # (a local func cannot travel; same point on x)
        with pytest.raises(ValueError, match="read-only"):
            pool.apply(f, x)
        return
    with pytest.raises(ValueError, match="read-only"):
        pool.apply(f, x, w)
    assert (w == 1).all()


@pytest.mark.parametrize("func", [semfuncs.same, semfuncs.reversed_cols], ids=["same", "view"])
def test_a_result_is_a_new_writable_array(pool: numpool.Pool, func) -> None:
    """func returning its block (or a view of it) gives a new array, never x itself."""
    x = x_2d()
    for _ in range(3):  # first call, then settled routes
        r = pool.apply(func, x)
        assert r is not x
        assert not np.shares_memory(r, x)
        assert r.flags.writeable
        assert np.array_equal(r, func(x))


def test_a_masked_result_is_refused(pool: numpool.Pool) -> None:
    """A MaskedArray result would lose its mask when blocks are joined: refused on
    every backend, serial included."""
    x = x_2d()
    for _ in range(2):
        with pytest.raises(TypeError, match="mask would be lost"):
            pool.apply(semfuncs.masked, x)


def test_map_arguments_are_read_only(pool: numpool.Pool) -> None:
    """numpool.map's array arguments are read-only too: the caller's arrays never
    change. (Pool.map and submit keep the Executor's contract: shared or pickled.)"""
    items = [np.arange(5.0)[::-1].copy() for _ in range(4)]
    with pytest.raises(ValueError, match="read-only"):
        pool.map_arrays(semfuncs.sort_in_place, items)
    assert all(np.array_equal(a, np.arange(5.0)[::-1]) for a in items)


def test_reduce_blocks_are_read_only(pool: numpool.Pool) -> None:
    """reduce's blocks are read-only: a partial that writes fails, x is unchanged."""
    x = np.ones(1000)
    with pytest.raises(ValueError, match="read-only"):
        pool.reduce(semfuncs.zero_first, x, combine=lambda a, b: a + b)
    assert (x == 1).all()
    assert pool.reduce(semfuncs.block_sum, x, combine=lambda a, b: a + b) == 1000.0


def test_a_worker_reseeds_the_legacy_generator() -> None:
    """Every worker process draws its own np.random stream: NumPy 1.x does not
    reseed after a fork, so forked workers would repeat each other's numbers."""
    from numpool.backends import _worker

    before = np.random.get_state()
    try:
        np.random.seed(0)
        _worker.reseed()
        first = np.random.random(4)
        np.random.seed(0)
        _worker.reseed()
        second = np.random.random(4)
        np.random.seed(0)
        assert not np.array_equal(first, np.random.random(4))
        assert not np.array_equal(first, second)
    finally:
        np.random.set_state(before)


def draws_from_processes() -> tuple[list[float], list[float]]:
    pool = numpool.Pool("processes", workers=2)
    try:
        return pool.map_arrays(semfuncs.draw, range(400)), pool.map_arrays(
            semfuncs.draw, range(100)
        )
    finally:
        pool.shutdown()


def test_processes_draw_distinct_numbers() -> None:
    """np.random in tasks on worker processes: every draw distinct, within a call and
    across two calls on one pool."""
    a, b = draws_from_processes()
    assert len(set(a)) == len(a)
    assert not set(a) & set(b)


def test_a_first_output_stays_private_when_shm_is_small(monkeypatch) -> None:
    """auto's first output goes to shared memory only when /dev/shm has room: with
    Docker's 64 MB, a 384 MB output would spill to disk even if threads then ran."""
    from numpool import _runner, shm

    made: list[str] = []

    def shared(shape, dtype):
        made.append("shared")
        return np.empty(shape, dtype)

    def private(shape, dtype):
        made.append("private")
        return np.empty(shape, dtype)

    new_out = _runner._first_out(shared, private)
    monkeypatch.setattr(shm, "free_bytes", lambda d: 64 << 20)
    monkeypatch.setattr(shm, "shm_limit", lambda: None)
    new_out((48_000_000,), np.dtype(np.float64))  # 384 MB
    new_out((1000,), np.dtype(np.float64))
    monkeypatch.setattr(shm, "shm_limit", lambda: 1 << 10)
    new_out((1000,), np.dtype(np.float64))
    assert made == ["private", "shared", "private"]


def test_auto_does_not_ship_a_func_it_runs_in_process(monkeypatch, fresh_evidence) -> None:
    """A lambda holding a big array, on work too small for processes: auto never
    pickles it (asking whether it can reach a worker process would pickle the array;
    the issue saw 171 ms and 381 MB per call for a 400 MB capture)."""
    import dataclasses

    from numpool.backends import processes
    from numpool.planner.profile import store

    shipped: list[object] = []
    real = processes.ship

    def counting(obj):
        shipped.append(obj)
        return real(obj)

    monkeypatch.setattr(processes, "ship", counting)
    held = np.ones(1 << 20)
    f = lambda b: b * held[0]  # noqa: E731
    x = np.random.default_rng(1).random((1000, 4))
    real = store.get()  # (a machine where processes never win, whatever the timings)
    store.override(dataclasses.replace(real, process_start_s=10.0, process_task_s=10.0))
    try:
        for _ in range(5):
            assert np.array_equal(numpool.apply(f, x), x * held[0])
    finally:
        store.override(real)
    assert shipped == []


def test_auto_rules_processes_out_when_the_copy_would_not_fit(monkeypatch, fresh_evidence) -> None:
    """In a memory cgroup without room for x's copy in /dev/shm, auto does not pick
    processes (the copy would get the caller OOM-killed) and its plan says why."""
    import dataclasses
    import threading

    import funcs
    from numpool import shm
    from numpool.planner.profile import store

    lock = threading.Lock()

    def holds_a_lock(b: np.ndarray) -> np.ndarray:
        with lock:
            return funcs.gil_sleep(b)

    asked: list[int] = []

    def no_room(nbytes: int, directory: str | None = None) -> str:
        asked.append(nbytes)
        return "numpool: no room in the memory cgroup (test)"

    monkeypatch.setattr(shm, "memory_problem", no_room)
    real = store.get()
    store.override(
        dataclasses.replace(
            real, thread_wake_s=10.0, thread_task_s=1.0, process_start_s=1e-4, process_task_s=1e-5
        )
    )
    try:
        pool = numpool.Pool("auto", workers=2)
        x = np.arange(2000.0)
        for _ in range(2):
            assert np.array_equal(pool.apply(funcs.gil_sleep, x), x * 2)
            plan = pool.last_stats.plan
            assert plan.backend != "processes"
        pool.shutdown()
    finally:
        store.override(real)
    assert asked and asked[0] == x.nbytes, plan.explain()
    assert plan.basis.get("processes") == "unavailable"
    assert "no room in the memory cgroup" in plan.explain()


def test_workers_that_cannot_start_are_left_out_by_auto(monkeypatch) -> None:
    """auto asked to measure processes whose workers cannot start (the process limit)
    leaves them out of the call instead of raising."""
    from numpool._errors import BackendUnavailableError
    from numpool.planner import model

    pool = numpool.Pool("auto", workers=2)
    runner = pool._runner

    def refused(name, func):
        raise BackendUnavailableError("numpool: the process limit is reached (test)")

    monkeypatch.setattr(runner, "_measure", refused)
    work = model.Work(runner._candidates(np.exp), explore=False)
    after = runner._take(model.Step("measure", "processes"), work, np.exp, None)
    why = {c.name: c.unavailable for c in after.candidates}
    assert why["processes"] == "numpool: the process limit is reached (test)"
    assert why["threads"] is None and why["serial"] is None
    pool.shutdown()


def test_a_func_sent_by_value_carries_what_it_uses_at_each_call(pool: numpool.Pool) -> None:
    """A closure (it travels to worker processes by value) sees, at each call, what it
    uses then, as on threads: an array changed in place, a default, a helper
    replaced. Worker processes once kept the first call's copy (silently wrong)."""
    x = np.arange(1000.0)
    w = np.array([1.0])
    helper = [np.negative]

    def scale(b: np.ndarray, k: float = 1.0) -> np.ndarray:
        return helper[0](b) * w[0] * k

    def total(b: np.ndarray) -> float:
        return float(b.sum() * w[0])

    for k in (2.0, 3.0, 5.0):
        w[0] = k
        scale.__defaults__ = (k,)
        helper[:] = [np.negative if k < 4 else np.positive]
        want = helper[0](x) * k * k
        assert pool.apply(scale, x).tobytes() == want.tobytes()
        assert pool.reduce(total, x, chunks=4) == x.sum() * k
        assert pool.submit(scale, x[:3]).result().tobytes() == want[:3].tobytes()
        assert [float(r[0]) for r in pool.map(scale, [x[1:2], x[2:3]])] == list(want[1:3])
        assert pool.map_arrays(total, [x[:10]])[0] == x[:10].sum() * k
