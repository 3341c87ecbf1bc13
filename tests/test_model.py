"""The cost model (numpool.planner.model): every decision from tables of measurements.

Nothing here times anything: the measurements and the machine profile are
passed in, so each test gives the same answer on any machine, busy or not.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from numpool.planner import measure, model
from numpool.planner.model import Candidate, Measurements, Work, blocks, choose, chunksize
from numpool.planner.profile import Profile

#: a 2-core VM: 0.3 ms to wake a thread, 0.5 ms a round trip to a worker process
VM = Profile(
    thread_wake_s=300e-6,
    thread_task_s=20e-6,
    copy_bytes_per_s=10e9,
    fault_bytes_per_s=2e9,
    process_start_s=50e-3,
    process_task_s=500e-6,
)
SERIAL = Candidate("serial", 1)
THREADS = Candidate("threads", 2, True, "thread_wake_s", "thread_task_s")
PROCESSES = Candidate(
    "processes", 2, False, "process_task_s", "process_task_s", "process_start_s", started=True
)
ALL = Work((SERIAL, THREADS, PROCESSES))


def apply(items: int, item_s: float, **kw: object) -> Measurements:
    return Measurements("apply", items, item_s, **kw)  # type: ignore[arg-type]


# --- the decisions the issue names --------------------------------------------------


@given(
    items=st.integers(2, 10**8),
    item_s=st.floats(1e-9, 1e-2),
    speedup=st.floats(0.3, model.GIL_BOUND - 1e-6),
    calls=st.integers(0, 50),
)
def test_a_gil_holding_function_never_goes_to_threads(
    items: int, item_s: float, speedup: float, calls: int
) -> None:
    """Threads measured (on a trusted sample) at no gain, waiting for the GIL, are never
    chosen, nor explored."""
    m = apply(
        items, item_s, threads_speedup=speedup, threads_trusted=True, gil_free=False, calls=calls
    )
    for work in (ALL, Work((SERIAL, THREADS)), Work((SERIAL, THREADS), explore=False)):
        assert choose(m, VM, work).backend != "threads"


@given(items=st.integers(2, 10**6), item_s=st.floats(1e-10, 1e-6))
def test_tiny_work_stays_serial(items: int, item_s: float) -> None:
    """Work cheaper than waking a thread runs serially, even if threads were perfect."""
    m = apply(items, item_s)
    if items * item_s >= VM.thread_wake_s:
        return
    d = choose(m, VM, ALL)
    assert d.backend == "serial" and "too-small" in d.codes() and not d.explore


def test_processes_lose_when_the_copy_costs_more_than_it_saves() -> None:
    """A GIL-holding func over 80 MB that takes 10 ms serially: copying costs more."""
    m = apply(
        10_000_000,
        1e-9,
        threads_speedup=1.0,
        threads_trusted=True,
        gil_free=False,
        bytes_per_item=16,
    )
    d = choose(m, VM, ALL)
    assert d.backend == "serial", d
    assert "copy-costs" in d.codes()
    assert d.costs["processes"] > d.costs["serial"]


def test_processes_win_for_gil_holding_work_with_little_data() -> None:
    """A Python loop over 2M floats: ~0.5 s serially, 16 bytes a row to move."""
    m = apply(
        2_000_000,
        250e-9,
        threads_speedup=1.0,
        threads_trusted=True,
        gil_free=False,
        bytes_per_item=16,
    )
    d = choose(m, VM, ALL)
    assert d.backend == "processes", d
    assert d.costs["processes"] < d.costs["serial"] / 1.5


def test_threads_win_for_a_gil_free_function() -> None:
    m = apply(
        10_000_000,
        1.3e-9,
        threads_speedup=1.8,
        threads_trusted=True,
        bytes_per_item=16,
        gil_free=True,
    )
    d = choose(m, VM, ALL)
    assert d.backend == "threads" and "gil-free" in d.codes()


def test_processes_never_beat_threads_on_a_memory_bound_gil_free_function() -> None:
    """Threads kept both cores busy but gained 1.3x (memory bandwidth): processes would
    hit the same wall, and pay for moving the data on top."""
    m = apply(
        10_000_000,
        1.3e-9,
        threads_speedup=1.3,
        threads_trusted=True,
        bytes_per_item=8,
        gil_free=True,
    )
    d = choose(m, VM, ALL)
    assert d.backend == "threads" and d.costs["processes"] > d.costs["threads"]


def test_blas_that_already_uses_every_core_gains_nothing_in_processes() -> None:
    """A serial matmul that kept both cores busy: processes predict no gain."""
    m = apply(100, 0.15, native=2.0, threads_speedup=1.0, threads_trusted=True, gil_free=True)
    d = choose(m, VM, ALL)
    assert d.costs["processes"] >= d.costs["serial"]


def test_start_up_is_spread_over_the_calls_of_the_work() -> None:
    """Starting workers for 60 ms of GIL-holding work does not pay once; it does over
    the calls that keep coming."""
    cold = dataclasses.replace(PROCESSES, started=False)
    work = Work((SERIAL, THREADS, cold))
    first = apply(
        200_000,
        300e-9,
        threads_speedup=1.0,
        threads_trusted=True,
        gil_free=False,
        bytes_per_item=16,
    )
    d = choose(first, VM, work)
    assert d.backend == "serial" and "start-up" in d.codes(), d
    later = dataclasses.replace(first, calls=20)
    assert choose(later, VM, work).backend == "processes"


def test_unmeasured_processes_are_measured_first_only_when_they_could_win() -> None:
    unknown = dataclasses.replace(VM, process_start_s=None, process_task_s=None)
    cold = dataclasses.replace(PROCESSES, started=False)
    work = Work((SERIAL, THREADS, cold))
    loop = apply(
        2_000_000,
        250e-9,
        threads_speedup=1.0,
        threads_trusted=True,
        gil_free=False,
        bytes_per_item=16,
    )
    d = choose(loop, unknown, work)
    assert d.measure_first == "processes" and d.backend == "processes"
    copy_bound = apply(
        10_000_000,
        1e-9,
        threads_speedup=1.0,
        threads_trusted=True,
        gil_free=False,
        bytes_per_item=16,
    )
    d = choose(copy_bound, unknown, work)
    assert d.measure_first is None and d.backend == "serial"


def test_unavailable_backends_are_never_chosen() -> None:
    lambda_ = dataclasses.replace(PROCESSES, unavailable="a lambda cannot be pickled")
    m = apply(2_000_000, 250e-9, threads_speedup=1.0, threads_trusted=True, gil_free=False)
    d = choose(m, VM, Work((SERIAL, THREADS, lambda_)))
    assert d.backend != "processes" and math.isinf(d.costs["processes"])
    assert "unavailable" in d.codes()


def test_one_worker_means_serial() -> None:
    d = choose(apply(10**6, 1e-6), VM, Work((SERIAL,)))
    assert d.backend == "serial" and "one-worker" in d.codes()


# --- learning from calls ------------------------------------------------------------


def test_what_calls_took_beats_what_the_sample_said() -> None:
    """The sample said threads 1.8x; whole calls on threads ran slower than serial."""
    m = apply(
        10**6,
        1e-8,
        threads_speedup=1.8,
        threads_trusted=True,
        bytes_per_item=16,
        gil_free=True,
        observed={"threads": 1.2e-8, "serial": 1.0e-8},
        observations={"threads": 3, "serial": 3},
        current="threads",
    )
    d = choose(m, VM, ALL)
    assert d.backend == "serial" and d.basis["threads"] == "observed"


def test_hysteresis_keeps_a_confirmed_choice_against_noise() -> None:
    """Within SWITCH_MARGIN of the current backend, another one does not take over."""
    base = dict(
        threads_speedup=1.8,
        threads_trusted=True,
        bytes_per_item=16,
        gil_free=True,
        observations={"threads": 3, "serial": 3},
    )
    close = apply(
        10**6, 1e-8, observed={"threads": 1.00e-8, "serial": 0.98e-8}, current="threads", **base
    )
    # (the two in question: processes, unseen and within EXPLORE_WITHIN, would be
    # explored after the hysteresis kept threads)
    two = Work((SERIAL, THREADS))
    d = choose(close, VM, two)
    assert d.backend == "threads" and "hysteresis" in d.codes()
    clear = dataclasses.replace(close, observed={"threads": 1.00e-8, "serial": 0.90e-8})
    assert choose(clear, VM, two).backend == "serial"


def test_a_close_backend_with_few_calls_is_explored_once() -> None:
    """Threads read 1.0x on a sample too short to trust: one whole call finds out."""
    m = apply(
        10**7,
        1.3e-9,
        threads_speedup=1.0,
        threads_trusted=False,
        bytes_per_item=16,
        observed={"serial": 1.3e-9},
        observations={"serial": 2},
        current="serial",
    )
    d = choose(m, VM, ALL)
    assert d.backend == "threads" and d.explore and "explore" in d.codes()
    seen = dataclasses.replace(
        m,
        observed={"serial": 1.3e-9, "threads": 1.25e-9},
        observations={"serial": 2, "threads": 2},
    )
    d = choose(seen, VM, ALL)
    assert not d.explore and d.backend == "serial"  # within the margin: kept


def test_threads_that_stayed_on_a_core_but_gained_little_are_explored() -> None:
    """On a first call's fresh output, page faults do not scale: np.exp read 1.0x on
    threads that never waited for the GIL. Warm memory may tell another story."""
    m = apply(
        10**7,
        2.4e-9,
        threads_speedup=1.0,
        threads_trusted=True,
        gil_free=True,
        bytes_per_item=16,
        calls=1,
        current="serial",
    )
    d = choose(m, VM, ALL)
    assert d.backend == "threads" and d.explore
    m = dataclasses.replace(m, gil_free=False)  # threads waited for the GIL: never
    assert choose(m, VM, ALL).backend != "threads"


def test_no_exploring_on_a_first_call() -> None:
    m = apply(10**7, 1.3e-9, threads_speedup=1.1, threads_trusted=False)
    assert not choose(m, VM, dataclasses.replace(ALL, explore=False)).explore


# --- properties over any table ---------------------------------------------------------

measurements = st.builds(
    Measurements,
    kind=st.sampled_from(["apply", "map"]),
    items=st.integers(2, 10**8),
    item_s=st.floats(1e-10, 1.0),
    native=st.floats(1.0, 4.0),
    threads_speedup=st.one_of(st.none(), st.floats(0.2, 3.0)),
    threads_trusted=st.booleans(),
    gil_free=st.one_of(st.none(), st.booleans()),
    bytes_per_item=st.floats(0, 1e6),
    observed=st.dictionaries(
        st.sampled_from(["serial", "threads", "processes"]), st.floats(1e-10, 1.0), max_size=3
    ),
    calls=st.integers(0, 100),
    current=st.one_of(st.none(), st.sampled_from(["serial", "threads", "processes"])),
)


@given(m=measurements, started=st.booleans())
def test_nothing_runs_whole_on_a_backend_predicted_over_1_5x_the_best(
    m: Measurements, started: bool
) -> None:
    work = Work((SERIAL, THREADS, dataclasses.replace(PROCESSES, started=started)))
    d = choose(m, VM, work)
    best = min(d.costs.values())
    if d.explore:
        c = {"serial": SERIAL, "threads": THREADS, "processes": work.candidates[2]}[d.backend]
        assert model.predict(m, VM, c, amortise=False) <= model.EXPLORE_WITHIN * best * 1.000001
    else:
        assert d.costs[d.backend] <= model.SWITCH_MARGIN * best * 1.000001
    assert d.costs[d.backend] <= 1.5 * best * 1.000001 or d.explore


@given(m=measurements)
def test_the_decision_is_a_pure_function(m: Measurements) -> None:
    assert choose(m, VM, ALL) == choose(m, VM, ALL)


# --- block sizes: the one rule ------------------------------------------------------


@given(
    items=st.integers(1, 10**9),
    item_s=st.floats(1e-10, 10.0),
    workers=st.integers(1, 64),
    task_s=st.floats(0, 1e-2),
)
def test_no_block_costs_less_than_ten_hand_offs(
    items: int, item_s: float, workers: int, task_s: float
) -> None:
    n = blocks(items, item_s, workers, task_s)
    assert 1 <= n <= min(items, model.BLOCKS_PER_WORKER * workers)
    if n > 1:
        assert items * item_s / n >= task_s / model.BLOCK_OVERHEAD * 0.999999
    if n >= workers > 1:
        assert n % workers == 0


@given(
    tasks=st.integers(1, 10**7),
    item_s=st.floats(1e-10, 10.0),
    workers=st.integers(1, 64),
    task_s=st.floats(0, 1e-2),
)
def test_no_batch_costs_less_than_ten_messages(
    tasks: int, item_s: float, workers: int, task_s: float
) -> None:
    size = chunksize(tasks, item_s, workers, task_s)
    assert 1 <= size <= max(1, math.ceil(tasks / workers))
    if size < math.ceil(tasks / workers):  # not capped by the even share
        assert size * item_s >= task_s / model.BLOCK_OVERHEAD * 0.999999


def test_ten_thousand_elements_are_one_block_on_threads() -> None:
    """np.exp over 10k elements (~6 us) is never split: one block, in the caller."""
    assert blocks(10_000, 0.6e-9 * 2, 2, VM.thread_task_s) == 1


@pytest.mark.parametrize(
    ("items", "item_s", "expected"),
    [(10_000_000, 2.6e-9, 8), (2_000_000, 500e-9, 8), (100, 0.3, 8), (3, 0.3, 2)],
)
def test_blocks_for_the_issue_workloads(items: int, item_s: float, expected: int) -> None:
    assert blocks(items, item_s, 2, VM.thread_task_s) == expected


@pytest.mark.parametrize(
    ("cores", "free"),
    [
        (0.5, False),  # two threads taking turns, one of them descheduled meanwhile
        (1.0, False),  # the GIL held: one core at a time, however many threads
        (1.05, False),  # ... with a little overlap at the hand-offs
        (1.3, True),  # GIL released, another program busy on one of 2 cores
        (1.9, True),  # GIL released on 2 idle cores, memory-bound or not
    ],
)
def test_the_gil_is_read_from_the_cores_used_at_once(cores: float, free: bool) -> None:
    assert measure.gil_free(cores) is free


@pytest.mark.parametrize(
    ("sample", "gil_free", "observed", "code"),
    [
        (1.9, True, None, "gil-free"),
        (1.0, True, None, "bandwidth-bound"),  # every thread on a core, no gain
        (1.0, False, None, "gil-bound"),
        (1.0, False, {"serial": 4e-9, "threads": 2e-9}, "gil-free"),  # calls beat sample
        (1.9, True, {"serial": 4e-9, "threads": 4e-9}, "bandwidth-bound"),
    ],
)
def test_the_threads_reason_reads_whole_calls_before_the_sample(
    sample: float, gil_free: bool, observed: dict[str, float] | None, code: str
) -> None:
    m = apply(
        10_000_000,
        4e-9,
        threads_speedup=sample,
        threads_trusted=True,
        gil_free=gil_free,
        observed=observed or {},
        observations={k: 2 for k in observed or {}},
    )
    assert code in choose(m, VM, ALL).codes()


def test_a_whole_serial_call_pays_for_its_fresh_output() -> None:
    """On warm memory threads gained nothing (memory-bound), but func(x) in the caller
    allocates 80 MB of fresh pages every call, where threads write recycled memory."""
    kw = {"threads_speedup": 1.0, "threads_trusted": True, "gil_free": True}
    warm = apply(10_000_000, 1.5e-9, **kw)
    assert choose(warm, VM, Work((SERIAL, THREADS), explore=False)).backend == "serial"
    fresh = apply(10_000_000, 1.5e-9, alloc_bytes=80e6, **kw)
    assert choose(fresh, VM, Work((SERIAL, THREADS), explore=False)).backend == "threads"


# --- serial for good: the fast path's rule (issue 21) ---------------------------------


def _machine(wake_s: float, trip_s: float | None) -> Profile:
    """A machine whose hand-offs cost ``wake_s`` (a thread) and ``trip_s`` (a worker
    process; None: not measured yet)."""
    return dataclasses.replace(
        VM, thread_wake_s=wake_s, process_task_s=trip_s, thread_task_s=wake_s / 10
    )


@given(
    items=st.integers(1, 10**8),
    item_s=st.floats(1e-10, 1e-3),
    wake_s=st.floats(1e-6, 1e-3),
    trip_s=st.one_of(st.none(), st.floats(1e-5, 1e-2)),
    workers=st.integers(2, 64),
)
def test_certain_means_no_backend_could_win_even_scaling_perfectly(
    items: int, item_s: float, wake_s: float, trip_s: float | None, workers: int
) -> None:
    """Across a dial of machines (hand-offs from 1 us to 10 ms) and funcs (0.1 ns to
    1 ms per row): serial is certain exactly when every parallel backend's best case
    (its fixed cost, plus the work spread perfectly) is no faster than serial. The
    bound a first call is compared with (certain_below, kept per machine profile)
    says the same: certain below it, not above it (ties aside, within rounding)."""
    profile = _machine(wake_s, trip_s)
    threads = dataclasses.replace(THREADS, workers=workers)
    procs = dataclasses.replace(PROCESSES, workers=workers)
    m = apply(items, item_s)
    serial_s = items * item_s
    least = min(v for v in (wake_s, trip_s) if v)
    best_case = min(
        wake_s + serial_s / workers, (trip_s if trip_s else least) + serial_s / workers
    )
    certain = model.serial_certain(m, profile, (SERIAL, threads, procs))
    assert certain == (best_case >= serial_s)
    bound = model.certain_below(profile, (SERIAL, threads, procs))
    if not math.isclose(serial_s, bound, rel_tol=1e-9):
        assert certain == (serial_s < bound)
    d = choose(m, profile, Work((SERIAL, threads, procs)))
    if certain:
        assert d.backend == "serial" and d.certain and not d.explore
        assert d.measure_first is None
    else:
        assert not d.certain


@given(
    items=st.integers(2, 10**7),
    first_s=st.floats(1e-10, 1e-3),
    serial=st.lists(st.floats(1e-10, 1e-3), max_size=4),
    other=st.sampled_from([None, "threads", "processes"]),
    other_s=st.floats(1e-10, 1e-3),
    later=st.integers(0, 200),
    wake_s=st.floats(1e-6, 1e-3),
    trip_s=st.one_of(st.none(), st.floats(1e-5, 1e-2)),
    block=st.one_of(st.none(), st.floats(1e-10, 1e-3)),
)
def test_the_evidences_serial_figure_against_the_bound_is_serial_certain(
    items: int,
    first_s: float,
    serial: list[float],
    other: str | None,
    other_s: float,
    later: int,
    wake_s: float,
    trip_s: float | None,
    block: float | None,
) -> None:
    """The shortcut for another length of a class seen (Runner._seen_small): the
    evidence's serial figure times the rows against certain_below's bound says what
    serial_certain says on the full measurements; once another backend's recent
    whole calls beat serial per item, it gives way (None), and serial is not
    certain. Across a dial of machines, figures, calls since each backend last ran
    (stale), and blocks' busy time (which caps serial's figure: model.serial_row_s)."""
    from numpool.planner.evidence import Evidence

    ev = Evidence("apply", first_s)
    ev.block_row_s = block
    for s in serial:
        ev.observe("serial", s)
    if other is not None:
        ev.observe(other, other_s)
    ev.calls = later  # (whole calls on record more than STALE_CALLS calls ago: stale)
    profile = _machine(wake_s, trip_s)
    m = ev.measurements(items)
    row_s = ev.serial_only_s()
    serial_s = model.serial_row_s(m)  # (m.observed.get("serial", m.item_s) with no blocks)
    if row_s is None:  # (a backend's whole calls beat serial per item)
        beat = [v for b, v in m.observed.items() if b != "serial" and v < serial_s]
        assert beat
        # (by a rounding's width, the call's totals may tie, and a tie is serial's)
        if not math.isclose(min(beat) * items, serial_s * items, rel_tol=1e-9):
            assert not model.serial_certain(m, profile, ALL.candidates)
        return
    assert row_s == serial_s
    bound = model.certain_below(profile, ALL.candidates)
    if not math.isclose(items * row_s, bound, rel_tol=1e-9):
        assert (items * row_s <= bound) == model.serial_certain(m, profile, ALL.candidates)


def test_certain_below_without_parallel_backends_is_unbounded() -> None:
    """One worker: nothing could beat serial, at any size."""
    assert model.certain_below(VM, (SERIAL,)) == math.inf
    assert model.certain_below(VM, (SERIAL, dataclasses.replace(THREADS, workers=1))) == math.inf


@given(items=st.integers(2, 10**6), item_s=st.floats(1e-10, 1e-6), calls=st.integers(0, 20))
def test_certain_serial_ignores_what_other_backends_were_seen_doing(
    items: int, item_s: float, calls: int
) -> None:
    """Once certain, nothing flips it: no hysteresis anchor, no observation, no
    unmeasured backend makes auto explore or measure."""
    m = apply(
        items,
        item_s,
        calls=calls,
        current="threads",
        observed={"threads": item_s / 10},
        observations={"threads": 1},
    )
    profile = dataclasses.replace(VM, process_task_s=None, process_start_s=None)
    if not model.serial_certain(m, profile, ALL.candidates):
        return
    d = choose(m, profile, ALL)
    assert d.backend == "serial" and d.certain and not d.explore and d.measure_first is None


def test_an_unmeasured_process_round_trip_costs_at_least_a_thread_wake() -> None:
    """On a fresh machine (no process figures yet), 10 us of work is still certain:
    reaching another process costs at least what waking a thread of this one does."""
    fresh = dataclasses.replace(VM, process_task_s=None, process_start_s=None)
    m = apply(10_000, 1e-9)
    assert model.serial_certain(m, fresh, ALL.candidates)
    assert model.floor(m, fresh, PROCESSES) >= fresh.thread_wake_s


def test_a_backend_that_is_only_starting_does_not_make_serial_certain() -> None:
    """A backend unavailable now (its workers starting) still counts: the route must
    not be settled for good on its absence."""
    starting = dataclasses.replace(PROCESSES, unavailable="starting")
    m = apply(100_000, 1e-6)  # 100 ms: processes could win
    assert not model.serial_certain(m, VM, (SERIAL, THREADS, starting))


@pytest.mark.parametrize("workers", [2, 3, 4, 16])
def test_pulled_blocks_need_not_be_a_multiple_of_the_workers(workers: int) -> None:
    """Blocks taken from one counter (threads) by a func that makes temporaries: a
    late worker takes fewer, so the count is not rounded down to a multiple of the
    workers."""
    task_s = 10e-6
    for items in (10, 1000, 10**6):
        for item_s in (1e-9, 1e-7, 1e-5):
            even = blocks(items, item_s, workers, task_s)
            pulled = blocks(items, item_s, workers, task_s, pulled=True)
            assert pulled >= even and 1 <= pulled <= max(1, items)
            if even >= workers:
                assert even % workers == 0


@given(
    items=st.integers(1, 10**7),
    item_s=st.floats(1e-10, 1e-3),
    workers=st.integers(1, 64),
    task_s=st.floats(0, 1e-2),
)
@example(items=10, item_s=1e-3, workers=2, task_s=5e-324)  # (work/task_s: inf)
def test_pulled_blocks_past_one_per_worker_cost_a_set_share_of_the_work(
    items: int, item_s: float, workers: int, task_s: float
) -> None:
    """Blocks taken from one counter (threads), each written straight into the output,
    are never more than blocks sent, a multiple of the workers when there are as many
    (3 on 2 workers take two blocks' time), and those past one per worker cost at
    most PULLED_EXTRA of the work."""
    even = blocks(items, item_s, workers, task_s)
    pulled = blocks(items, item_s, workers, task_s, pulled=True, direct=True)
    assert 1 <= pulled <= even
    if pulled >= workers:
        assert pulled % workers == 0
    if pulled > workers:
        assert (pulled - workers) * task_s <= model.PULLED_EXTRA * items * item_s


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
@pytest.mark.parametrize(
    ("workers", "hand_offs", "want"),
    [
        (2, 100, 2),  # np.exp over 3e6 on 2 threads: one block each, as a split
        (2, 900, 2),  # one more may cost 0.2% of the work: 3 would leave one idle
        (2, 1_100, 4),
        (2, 2_100, 6),
        (2, 100_000, 8),  # long: BLOCKS_PER_WORKER
        (3, 100, 3),
        (3, 1_600, 6),
        (16, 105, 10),  # too little work for one block per worker
        (16, 1_000, 16),
        (16, 100_000, 64),
    ],
)
def test_pulled_blocks_are_one_per_worker_until_the_work_is_long(
    speed: float, workers: int, hand_offs: int, want: int
) -> None:
    """Pulled blocks written straight into the output, for work worth ``hand_offs`` GIL
    hand-backs, on machines of every speed: one per worker, more only where they
    cost a small share of the work; a func that makes temporaries keeps its blocks."""
    task_s = VM.thread_wake_s / speed
    items, item_s = 10**7, hand_offs * task_s / 10**7
    assert blocks(items, item_s, workers, task_s, pulled=True, direct=True) == want
    kept = blocks(items, item_s, workers, task_s, pulled=True)
    assert kept >= want


def test_a_figure_not_refreshed_for_stale_calls_is_forgotten() -> None:
    """A backend that lost on its first (cold) whole calls is predicted by the model
    again once it has not run for STALE_CALLS calls, so a recheck may explore it."""
    from numpool.planner.evidence import STALE_CALLS, Evidence

    ev = Evidence("apply", 1e-9)
    ev.observe("threads", 5e-9)  # cold: fresh output pages
    ev.calls += 1
    for _ in range(STALE_CALLS - 1):
        ev.observe("serial", 1e-9)
        ev.calls += 1
    m = ev.measurements(300_000)
    assert "threads" in m.observed and m.observations["threads"] == 1
    ev.observe("serial", 1e-9)
    ev.calls += 1
    m = ev.measurements(300_000)
    assert "threads" not in m.observed and "threads" not in m.observations
    assert m.observed["serial"] == 1e-9


# --- what a decision needs done before it stands (model.next_step) ------------------


def _decided(backend: str, measure_first: str | None = None) -> model.Decision:
    return model.Decision(backend, {}, {}, (), measure_first=measure_first)


UNCHECKED = dataclasses.replace(PROCESSES, checked=False)
STOPPED = dataclasses.replace(PROCESSES, started=False)


@pytest.mark.parametrize(
    ("decision", "candidates", "explore", "step"),
    [
        (_decided("serial"), (SERIAL, THREADS, UNCHECKED), True, None),
        (_decided("threads"), (SERIAL, THREADS, STOPPED), True, None),
        (_decided("processes"), (SERIAL, UNCHECKED), True, model.Step("check", "processes")),
        (_decided("processes"), (SERIAL, UNCHECKED), False, model.Step("check", "processes")),
        (_decided("processes"), (SERIAL, STOPPED), True, model.Step("start", "processes")),
        (
            _decided("processes", measure_first="processes"),
            (SERIAL, STOPPED),
            True,
            model.Step("start", "processes", measure=True),
        ),
        (
            _decided("processes", measure_first="processes"),
            (SERIAL, STOPPED),
            False,
            model.Step("measure", "processes"),
        ),
        (_decided("processes"), (SERIAL, STOPPED), False, None),
        (_decided("processes"), (SERIAL, PROCESSES), True, None),
    ],
    ids=[
        "serial-stands",
        "threads-stands",
        "check-winner",
        "check-first-call",
        "start-in-background",
        "start-and-time-in-background",
        "measure-now-on-a-first-call",
        "first-call-runs-what-it-chose",
        "ready",
    ],
)
def test_next_step_from_a_table(decision, candidates, explore, step) -> None:
    """What the runner must do before a decision stands: ask whether func reaches an
    unchecked winner first, start a later call's winner in the background, measure a
    first call's winner now; nothing for in-process or ready winners."""
    assert model.next_step(decision, Work(candidates, explore=explore)) == step


@pytest.mark.parametrize(
    ("wall", "out_bytes", "rate", "want"),
    [
        (2.0e-3, 2.4e6, 1.5e9, 2.0e-3 - 1.6e-3),  # a*b+c over 300k: mostly page faults
        (30e-3, 1.6e6, 1.5e9, 30e-3 - 1.6e6 / 1.5e9),  # a Python loop: barely changed
        (1.0e-3, 8e6, 1.5e9, 0.2e-3),  # never below WARM_FLOOR of the call
        (50e-3, 80e6, 1.5e9, 50e-3),  # mapped anew every call: it costs every call
        (1.0e-3, 0.0, 1.5e9, 1.0e-3),  # no output (or not an array)
    ],
)
def test_a_first_call_is_counted_warm(
    wall: float, out_bytes: float, rate: float, want: float
) -> None:
    """A first whole call's fresh output, faulted in at the machine's rate, is taken off
    its time (later calls get it back from malloc's heap), down to WARM_FLOOR."""
    assert measure.warm_wall(wall, out_bytes, rate) == pytest.approx(want)


@pytest.mark.parametrize(
    ("wall", "out_bytes", "faults", "want"),
    [
        (9e-6, 80e3, 0, 9e-6),  # its output came warm from malloc's heap: as measured
        (2.0e-3, 2.4e6, 300, 2.0e-3 - 300 * 4096 / 1.5e9),  # the pages it did fault in
        (5.0e-3, 2.4e6, 1200, 5.0e-3 - 1200 * 4096 / 1.5e9),  # temporaries' pages too
        (1.0e-3, 8e6, 10_000, 0.2e-3),  # never below WARM_FLOOR of the call
        (50e-3, 80e6, 20_000, 50e-3),  # mapped anew every call: it costs every call
    ],
)
def test_a_first_call_counts_the_pages_it_faulted_in(
    wall: float, out_bytes: float, faults: int, want: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the thread's page faults can be read, they, not the output's size, are
    what is taken off a first whole call's time."""
    monkeypatch.setattr(measure, "PAGE_BYTES", 4096)
    assert measure.warm_wall(wall, out_bytes, 1.5e9, faults) == pytest.approx(want)


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_warm_wall_scales_with_the_machine(speed: float) -> None:
    """A machine `speed` times faster at faulting memory in and at computing: the same
    share of the call is taken off."""
    base = measure.warm_wall(2e-3, 2.4e6, 1.5e9)
    assert measure.warm_wall(2e-3 / speed, 2.4e6, 1.5e9 * speed) == pytest.approx(base / speed)


@pytest.mark.parametrize(
    ("wall", "faults", "rate", "want"),
    [
        (1.0e-3, 0, 1.5e9, 1.0e-3),  # no fresh page: as measured
        (1.0e-3, 100, 1.5e9, 1.0e-3 - 100 * 4096 / 1.5e9),  # a few temporaries' pages
        (2.0e-3, 1000, 1.5e9, 0.4e-3),  # mostly faults: never below WARM_FLOOR
        (1.0e-3, 100, 0.0, 1.0e-3),  # no rate (a big call): as measured
    ],
)
def test_a_head_block_is_counted_without_its_faults(
    wall: float, faults: int, rate: float, want: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages a head block faulted in (its temporaries, new memory in a fresh
    process) are taken off its time at the machine's rate, down to WARM_FLOOR."""
    monkeypatch.setattr(measure, "PAGE_BYTES", 4096)
    assert measure.without_faults(wall, faults, rate) == pytest.approx(want)


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_without_faults_scales_with_the_machine(speed: float) -> None:
    """A machine `speed` times faster at everything: the same share is taken off."""
    base = measure.without_faults(1e-3, 150, 1.5e9)
    assert measure.without_faults(1e-3 / speed, 150, 1.5e9 * speed) == pytest.approx(base / speed)


class _FaultingWalker:
    """A walker whose rows cost ``row_s`` each, plus ``fault_s`` per fresh page the
    first time a row's memory is touched (``pages_per_row`` of them)."""

    def __init__(self, n: int, row_s: float, pages_per_row: int, fault_s: float) -> None:
        self.n, self.done = n, 0
        self.row_s, self.pages, self.fault_s = row_s, pages_per_row, fault_s
        self.faults = 0

    def serial(self, a: int, b: int) -> tuple[float, float]:
        self.faults += (b - a) * self.pages
        self.done = b
        wall = (b - a) * (self.row_s + self.pages * self.fault_s)
        return wall, wall

    def remote(self, backend: object, a: int, b: int) -> tuple[float, float]:
        raise AssertionError("the head runs in the caller here")


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_the_head_reads_the_warm_cost_per_row(
    speed: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh process's first call faults its temporaries in: the head's seconds per
    row leave those faults out when given the machine's rate (0.5 ns a row, with 2 ns
    of faults: read 0.5 ns, not 2.5), on machines of every speed; without a rate, as
    measured."""
    row_s, fault_s = 0.5e-9 / speed, 2e-9 / speed
    rate = 4096 / fault_s  # bytes per second: one page per fault_s
    for told, want in ((rate, row_s), (0.0, row_s + fault_s)):
        walker = _FaultingWalker(10_000_000, row_s, 1, fault_s)
        monkeypatch.setattr(measure, "PAGE_BYTES", 4096)
        monkeypatch.setattr(measure, "thread_faults", lambda w=walker: w.faults)  # type: ignore[misc]
        h = measure.head(walker, fault_bytes_per_s=told)
        assert h.item_s == pytest.approx(want)
        # (its CPU time held the faults too: one core, not wall-with-faults over less)
        assert h.native == 1.0


# --- func's own cost per call (measure.per_row_and_call, blocks(call_s=)) ----------------


class _CallWalker:
    """A walker whose blocks cost ``call_s`` each besides ``row_s`` per row: a func
    that builds something per call (a table, a factorisation) or loops NumPy calls."""

    def __init__(self, n: int, row_s: float, call_s: float) -> None:
        self.n, self.done = n, 0
        self.row_s, self.call_s = row_s, call_s
        self.blocks: list[int] = []

    def serial(self, a: int, b: int) -> tuple[float, float]:
        self.blocks.append(b - a)
        self.done = b
        wall = self.call_s + (b - a) * self.row_s
        return wall, wall

    def remote(self, backend: object, a: int, b: int) -> tuple[float, float]:
        raise AssertionError("the head runs in the caller here")


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
@pytest.mark.parametrize(
    ("row_s", "call_s", "n", "fitted"),
    [
        (1e-6, 6.5e-3, 100_000, True),  # envelope's dial: 1 us a row, 6.5 ms a call
        (1e-7, 2e-3, 1_000_000, True),  # a table built per call
        (1e-8, 0.0, 10_000_000, False),  # np.exp: rows alone
        (1e-8, 2e-6, 10_000_000, False),  # a NumPy call's own cost: lost in the rows
        (1e-3, 0.0, 2_000, False),  # heavy rows: a few more in the head at most
        (1e-6, 6.5e-3, 2_000, True),  # few rows: grown while a block is a small share
        (1e-6, 6.5e-3, 200, False),  # too few rows to grow the head: as before
    ],
)
def test_the_head_tells_a_funcs_cost_per_call_from_its_rows(
    speed: float, row_s: float, call_s: float, n: int, fitted: bool
) -> None:
    """A func that costs much per call besides its rows: the head grows on while a
    block GROWTH times bigger takes little longer (and the next block is a small share
    of what is left), then reads the cost per row and per call from its last two
    blocks; a func of rows alone reads as before, on machines of every speed."""
    row_s, call_s = row_s / speed, call_s / speed
    walker = _CallWalker(n, row_s, call_s)
    h = measure.head(walker)
    k = walker.blocks[-1]
    if fitted:
        assert h.item_s == pytest.approx(row_s) and h.call_s == pytest.approx(call_s)
    else:
        assert h.call_s == 0.0 and h.item_s == pytest.approx(row_s + call_s / k)
    assert sum(walker.blocks) <= math.ceil(n * measure.PROBE_FRACTION)
    assert walker.blocks[-1] <= max(
        measure.GROWTH * walker.blocks[-2] if len(walker.blocks) > 1 else measure.FIRST_ROWS,
        1,
    )


@pytest.mark.parametrize(
    ("prev", "k", "wall", "want"),
    [
        (None, 8, 8e-3, (1e-3, 0.0)),  # one block: its time per row
        ((8, 6.5e-3), 32, 6.524e-3, (1e-6, 6.492e-3)),  # the call is most of it
        ((2048, 8.548e-3), 8192, 14.692e-3, (1e-6, 6.5e-3)),  # the dial
        ((2048, 2.2e-3), 8192, 8.4e-3, (8.4e-3 / 8192, 0.0)),  # ~linear: noise, not a call
        ((2048, 9e-3), 8192, 4e-3, (4e-3 / 8192, 0.0)),  # faster on more rows: noise
        ((2048, 4e-3), 8192, 4e-3, (4e-3 / 8192, 0.0)),  # no slower: told as noise too
    ],
)
def test_the_cost_per_call_is_the_line_through_the_last_two_blocks(
    prev: tuple[int, float] | None, k: int, wall: float, want: tuple[float, float]
) -> None:
    got = measure.per_row_and_call(prev, k, wall)
    assert got == pytest.approx(want, rel=1e-3)


@given(
    items=st.integers(1, 10**7),
    item_s=st.floats(1e-10, 1e-3),
    workers=st.integers(1, 64),
    task_s=st.floats(0, 1e-2),
    call_s=st.floats(0, 1.0),
    pulled=st.booleans(),
)
def test_a_cost_per_call_never_makes_more_blocks(
    items: int, item_s: float, workers: int, task_s: float, call_s: float, pulled: bool
) -> None:
    """Blocks are never more for a func that costs more per call; one block per worker
    is kept where each worker's share of the rows saves more than the call and a
    hand-off (and the hand-off alone would split that far)."""
    without = blocks(items, item_s, workers, task_s, pulled)
    got = blocks(items, item_s, workers, task_s, pulled, call_s=call_s)
    assert 1 <= got <= without
    work = items * item_s
    if without >= workers and work * (1 - 1 / workers) > call_s + task_s:
        assert got >= workers


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_the_dial_runs_one_block_per_worker(speed: float) -> None:
    """The envelope's dial over 1e5 rows (1 us a row, 6.5 ms a call, 100 ms in all) ran
    9 blocks on 2 threads, paying its call 9 times (0.6x plain): now one block per
    worker, on machines of every speed; without the call's cost, as before."""
    row_s, call_s, task_s = 1e-6 / speed, 6.5e-3 / speed, VM.thread_task_s / speed
    assert blocks(100_000, row_s, 2, task_s, pulled=True, call_s=call_s) == 2
    assert blocks(100_000, row_s, 2, task_s, pulled=True) == 8
    assert blocks(10_000, row_s, 2, task_s, pulled=True, call_s=call_s) == 1  # 10 ms: no


# --- a cost per call read off a later call's first rows (measure.call_from_probe) ----


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
@pytest.mark.parametrize(
    ("probe_s", "rows", "row_s", "blocks_", "task_s", "want"),
    [
        (3e-3, 100_000, 1e-6, 9, 20e-6, 3e-3 - 2e-6),  # the dial: 3 ms on two rows
        (4e-3, 300_000, 1e-6, 9, 20e-6, 4e-3 - 2e-6),  # over a 10th of bigger blocks
        (3e-3, 300_000, 1e-6, 9, 20e-6, 0.0),  # under: the blocks stay as they are
        (3e-3, 1_000_000, 1e-6, 9, 20e-6, 0.0),  # a 40th of a block: not worth it
        (2e-6, 1_000_000, 1e-9, 4, 20e-6, 0.0),  # np.exp: NumPy's own microsecond
        (2e-6, 10_000, 1e-9, 4, 0.0, 0.0),  # ... also where hand-offs cost nothing
        (30e-3, 10_000, 1e-6, 9, 20e-6, 0.0),  # more than half the call: a slow moment
        (3e-3, 100_000, 1e-6, 1, 20e-6, 0.0),  # one block: nothing to compare
        (3e-3, 100_000, 1e-6, 9, 4e-3, 0.0),  # below a hand-off: the rule sizes it
    ],
)
@pytest.mark.parametrize("blocks_busy", [True, False])
def test_a_later_calls_first_rows_tell_its_cost_per_call(
    speed: float,
    probe_s: float,
    rows: int,
    row_s: float,
    blocks_: int,
    task_s: float,
    want: float,
    blocks_busy: bool,
) -> None:
    """A func whose first call ran whole has no head: the first rows of a later call in
    blocks, run alone in the caller, tell what a call costs besides its rows, when
    that is worth a tenth of a block and a hand-off, and the blocks' busy time shows
    the calls too (not: a slow moment of the probe alone); on machines of every speed
    (the timer's floor, a tenth of measure.PROBE_S, aside: the machine is 5x slower
    at most here)."""
    rows_s = rows * row_s / speed
    busy = rows_s + (blocks_ - 1) * probe_s / speed if blocks_busy else rows_s * 1.05
    got = measure.call_from_probe(
        probe_s / speed, rows, row_s / speed, blocks_, task_s / speed, busy_s=busy
    )
    if not blocks_busy:
        want = 0.0
    if want and probe_s / speed < measure.PROBE_S / 10:
        want = 0.0  # (microseconds: NumPy's and numpool's own, and the timer's noise)
    assert got == pytest.approx(want / speed)


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_blocks_that_pay_a_call_are_a_multiple_of_the_workers(speed: float) -> None:
    """Pulled blocks may be any count (a helper that starts late takes fewer); blocks
    that pay a call each are a multiple of the workers: 3 on 2 workers take two
    blocks' time and three calls, where 2 take one block's time and two calls."""
    row_s, task_s = 1e-6 / speed, VM.thread_task_s / speed
    assert blocks(100_000, row_s, 2, task_s, pulled=True, call_s=2.7e-3 / speed) == 2
    assert blocks(300_000, row_s, 2, task_s, pulled=True, call_s=3.9e-3 / speed) == 6
    assert blocks(100_000, row_s, 3, task_s, pulled=True, call_s=2.7e-3 / speed) == 3


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_threads_are_predicted_with_the_calls_their_blocks_pay(speed: float) -> None:
    """A func of 1 us a row and 4 ms a call, whose whole call paid one: on threads each
    block and the first rows pay one more. Over 1e4 rows (14 ms whole) that leaves
    threads nothing to gain, and serial is chosen; over 1e5 (104 ms) threads win;
    without the call's cost, threads looked twice as fast at 1e4 too."""
    row_s, call_s = 1e-6 / speed, 4e-3 / speed
    profile = dataclasses.replace(
        VM, thread_wake_s=VM.thread_wake_s / speed, thread_task_s=VM.thread_task_s / speed
    )
    work = Work((SERIAL, THREADS))
    for items, want in ((10_000, "serial"), (100_000, "threads")):
        whole = (call_s + items * row_s) / items
        m = apply(items, whole, call_s=call_s, observed={"serial": whole}, calls=3)
        assert choose(m, profile, work).backend == want
        threads = model.predict(m, profile, THREADS)
        assert threads > model.predict(dataclasses.replace(m, call_s=0.0), profile, THREADS)


class _StageWalker:
    """A walker for the threads stage: blocks of ``call_s`` plus ``row_s`` per row, run
    serially or ``w`` at once on ideal threads; it records each block's rows."""

    def __init__(self, n: int, row_s: float, call_s: float) -> None:
        self.n, self.done, self.cpu = n, 0, []
        self.row_s, self.call_s = row_s, call_s
        self.blocks: list[int] = []

    def _block(self, rows: int) -> float:
        self.blocks.append(rows)
        return self.call_s + rows * self.row_s

    def warm(self, a: int, b: int) -> None:
        pass

    def serial(self, a: int, b: int) -> tuple[float, float]:
        self.done = b
        wall = self._block(b - a)
        return wall, wall

    def parallel(
        self, threads: object, a: int, b: int, w: int, together: bool = False
    ) -> list[tuple[float, float]]:
        size = (b - a) // w
        walls = [self._block(size) for _ in range(w)]
        self.cpu = walls
        self.done = b
        return [(0.0, t) for t in walls]


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_the_threads_stage_sizes_its_blocks_past_a_cost_per_call(speed: float) -> None:
    """A func of 1 us a row and 4 ms a call, over 1e6 rows: the stage's blocks hold
    rows worth 10x the call (40,000), not 2 ms of rows (2,000, mostly the call);
    without a call's cost, as before; on machines of every speed."""
    row_s, call_s = 1e-6 / speed, 4e-3 / speed
    threads = type("T", (), {"workers": 2})()
    walker = _StageWalker(1_000_000, row_s, call_s)
    stage = measure.threads_stage(walker, threads, row_s, call_s)
    assert stage is not None and min(walker.blocks) >= call_s / measure.PROBE_SHARE / row_s
    walker = _StageWalker(1_000_000, row_s, 0.0)
    measure.threads_stage(walker, threads, row_s)
    assert max(walker.blocks) == math.ceil(measure.STAGE_BLOCK_S / row_s)


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_backends_are_predicted_from_serials_best_calls_not_a_slow_first_one(
    speed: float,
) -> None:
    """A GIL-holding loop over 3e5 rows: its first call ran while the machine warmed
    up (330 ns a row), its later serial calls at 185 ns. Predicted from the first
    figure, processes (~50 ms) lost to serial's best calls (55 ms) and never ran,
    though they run the loop in ~30 ms; predicted from the same work as serial's
    figure, they win. Across machines 5x slower or faster, the same."""
    first, best = 330e-9 / speed, 185e-9 / speed
    m = apply(
        300_000,
        first,
        threads_speedup=1.0,
        threads_trusted=True,
        gil_free=False,
        bytes_per_item=16,
        observed={"serial": best, "threads": 335e-9 / speed},
        observations={"serial": 3, "threads": 2},
        calls=9,
        current="serial",
    )
    profile = dataclasses.replace(
        VM,
        process_task_s=VM.process_task_s / speed,  # type: ignore[operator]
        process_start_s=VM.process_start_s / speed,  # type: ignore[operator]
    )
    d = choose(m, profile, ALL)
    assert d.backend == "processes", d
    assert d.costs["processes"] < 300_000 * best * 0.6
    # a first figure lower than serial's calls stays the work predicted from (the
    # whole calls paid for their fresh output too)
    low = dataclasses.replace(m, item_s=best / 2)
    assert model.row_s(low) == best / 2


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_a_decision_says_when_a_backend_not_started_will_win(speed: float) -> None:
    """Threads kept for a GIL-holding loop whose processes lose its first calls to
    their start-up: the decision says after how many calls processes win, and at
    that call choose() picks them; on any machine speed."""
    stopped = dataclasses.replace(PROCESSES, started=False)
    work = Work((SERIAL, THREADS, stopped))
    profile = dataclasses.replace(
        VM,
        process_task_s=VM.process_task_s / speed,  # type: ignore[operator]
        process_start_s=150e-3 / speed,
    )
    loop = dict(
        threads_speedup=1.0,
        threads_trusted=True,
        gil_free=False,
        bytes_per_item=16,
        observed={"serial": 250e-9 / speed, "threads": 255e-9 / speed},
        observations={"serial": 3, "threads": 3},
        current="serial",
    )
    m = apply(300_000, 250e-9 / speed, calls=3, **loop)  # type: ignore[arg-type]
    d = choose(m, profile, work)
    assert d.backend == "serial" and d.revisit is not None and d.revisit > 1, d
    due = m.calls + d.revisit
    before = choose(dataclasses.replace(m, calls=due - 1), profile, work)
    at = choose(dataclasses.replace(m, calls=due), profile, work)
    assert before.backend == "serial" and at.backend == "processes", (before, at)
    # nothing to revisit for: processes started, or never winning, or unavailable
    started = Work((SERIAL, THREADS, PROCESSES))
    assert model.revisit_after(m, profile, started, "serial", d.costs["serial"]) is None
    heavy = dataclasses.replace(m, bytes_per_item=1e6)
    assert choose(heavy, profile, work).revisit is None
    gone = Work((SERIAL, THREADS, dataclasses.replace(stopped, unavailable="daemonic")))
    assert choose(m, profile, gone).revisit is None


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_a_cold_first_serial_figure_is_capped_by_the_blocks_busy_time(speed: float) -> None:
    """np.exp over 3e5 float64 on a 2-core VM: the first call, run whole, read 11 ns a
    row (first run of the code, cold caches), warm serial is 0.9 ns; threads' whole
    calls read 1.8 ns (0.54 ms), their blocks 1.15 ns of busy time a row between
    them. From the first figure serial looked 6x slower than threads and never ran
    again. The blocks' busy time bounds serial's own: serial is predicted the
    cheapest and runs, and its warm calls decide. Across machines 5x slower or
    faster, the same."""
    first, busy, threads = 11e-9 / speed, 1.15e-9 / speed, 1.8e-9 / speed
    profile = dataclasses.replace(
        VM,
        thread_wake_s=VM.thread_wake_s / speed,  # type: ignore[operator]
        thread_task_s=VM.thread_task_s / speed,  # type: ignore[operator]
        process_task_s=VM.process_task_s / speed,  # type: ignore[operator]
    )
    m = apply(
        300_000,
        first,
        threads_speedup=2.0,
        gil_free=True,
        bytes_per_item=16,
        observed={"serial": first, "threads": threads},
        observations={"serial": 1, "threads": 3},
        calls=5,
        current="threads",
    )
    # without the blocks' figure: threads, nothing explored (the old behaviour)
    d = choose(m, profile, ALL)
    assert d.backend == "threads" and not d.explore, d
    assert model.serial_row_s(m) == first
    capped = dataclasses.replace(m, block_row_s=busy)
    assert model.serial_row_s(capped) == busy
    assert model.row_s(capped) == busy
    d = choose(capped, profile, ALL)
    assert d.backend == "serial" and not d.explore and "cheapest" in d.codes(), d
    assert d.costs["serial"] == pytest.approx(300_000 * busy)
    # its warm calls then decide, whatever the blocks showed: serial, kept
    warm = dataclasses.replace(
        capped,
        observed={"serial": 0.9e-9 / speed, "threads": threads},
        observations={"serial": 2, "threads": 3},
        current="serial",
    )
    d = choose(warm, profile, ALL)
    assert d.backend == "serial" and not d.explore, d
    # ... or threads, when serial's warm calls show them the faster after all
    slow = dataclasses.replace(warm, observed={"serial": 2.5e-9 / speed, "threads": threads})
    assert model.serial_row_s(slow) == 2.5e-9 / speed  # (the blocks' figure no longer)
    assert choose(slow, profile, ALL).backend == "threads"


@pytest.mark.parametrize("speed", [0.2, 1.0, 5.0])
def test_serial_is_never_explored_on_the_blocks_bound_alone(speed: float) -> None:
    """np.exp over 3e6 float64, early: threads read 1.64 ns a row, their cold blocks
    1.89 ns of busy time. Serial's bound is within EXPLORE_WITHIN of threads, but an
    exploring serial call then (its output's fresh huge pages) took 10-30 ms once
    against threads' 3 ms: only a bound below the best's figure, by the switching
    margin, runs serial."""
    first, busy, threads = 4e-9 / speed, 1.89e-9 / speed, 1.64e-9 / speed
    assert busy < model.EXPLORE_WITHIN * threads
    m = apply(
        3_000_000,
        first,
        threads_speedup=2.0,
        gil_free=True,
        bytes_per_item=16,
        observed={"serial": first, "threads": threads},
        observations={"serial": 1, "threads": 1},
        calls=3,
        current="threads",
        block_row_s=busy,
    )
    d = choose(m, VM, Work((SERIAL, THREADS)))
    assert d.backend == "threads" and not d.explore, d
    # a serial figure of its own (not the bound) within reach is explored, as before
    seen = dataclasses.replace(m, observed={"serial": busy, "threads": threads})
    d = choose(seen, VM, Work((SERIAL, THREADS)))
    assert d.backend == "serial" and d.explore, d


def test_the_blocks_busy_time_never_raises_serials_figure() -> None:
    """A bound only lowers: blocks that slowed each other down read more than serial,
    and serial's own figure stands."""
    m = apply(300_000, 1e-9, observed={"serial": 1e-9}, observations={"serial": 1})
    assert model.serial_row_s(dataclasses.replace(m, block_row_s=3e-9)) == 1e-9
    assert model.serial_row_s(dataclasses.replace(m, block_row_s=None)) == 1e-9


# --- the caller's lead (pulled blocks) ------------------------------------------------


@pytest.mark.parametrize(
    ("lead", "lag", "late", "most", "want"),
    [
        (0.0, 60e-6, 40e-6, 1.0, 40e-6),  # the caller ended first: half the way, at most late
        (0.0, 20e-6, 40e-6, 1.0, 30e-6),  # (20 + 40) / 2
        (100e-6, -40e-6, 40e-6, 1.0, 100e-6),  # the caller ended one hand-off after: kept
        (100e-6, -100e-6, 40e-6, 1.0, 70e-6),  # well after: back by (-100 + 40) / 2
        (100e-6, -5e-3, 40e-6, 1.0, 60e-6),  # a caller descheduled: back by one hand-off
        (10e-6, -5e-3, 40e-6, 1.0, 0.0),  # never below 0
        (400e-6, 5e-3, 40e-6, 420e-6, 420e-6),  # never past an even block
        (50e-6, 30e-6, -1e-6, 1.0, 50e-6),  # (a helper that started first: no hand-off)
    ],
)
def test_the_caller_lead_moves_toward_ending_one_hand_off_after_the_helpers(
    lead: float, lag: float, late: float, most: float, want: float
) -> None:
    assert model.next_lead(lead, lag, late, most) == pytest.approx(want)


@given(
    st.floats(0, 1e-2),
    st.floats(-1e-1, 1e-1),
    st.floats(-1e-3, 1e-3),
    st.floats(0, 1e-1),
)
def test_the_caller_lead_stays_between_none_and_an_even_block(
    lead: float, lag: float, late: float, most: float
) -> None:
    new = model.next_lead(min(lead, most), lag, late, most)
    assert 0.0 <= new <= most
    assert abs(new - min(lead, most)) <= max(0.0, late) + 1e-15  # (one hand-off a call)


@pytest.mark.parametrize("late_us", [1.0, 40.0, 400.0])  # a dial of machines' hand-offs
def test_the_caller_lead_settles_where_the_caller_ends_one_hand_off_last(late_us: float) -> None:
    """With lag = lag0 - lead (a second of lead moves a second of lag), repeated calls
    bring the lead to lag0 + late: the caller then ends one hand-off after the helper."""
    late, lag0, lead = late_us * 1e-6, 3 * late_us * 1e-6, 0.0
    for _ in range(60):
        lead = model.next_lead(lead, lag0 - lead, late, 1.0)
    assert lead == pytest.approx(lag0 + late, rel=1e-6)


@pytest.mark.parametrize(
    ("lead_s", "row_s", "rows", "blocks", "want"),
    [
        (100e-6, 1e-9, 1_000_000, 2, 100_000),
        (100e-6, 1e-9, 100_000, 2, 50_000),  # at most an even block
        (100e-6, None, 1_000_000, 2, 0),  # no figure per row
        (100e-6, 0.0, 1_000_000, 2, 0),
        (100e-6, 1e-9, 1_000_000, 1, 0),  # one block: nothing to lead
        (0.0, 1e-9, 1_000_000, 4, 0),
    ],
)
def test_the_lead_in_rows(
    lead_s: float, row_s: float | None, rows: int, blocks: int, want: int
) -> None:
    assert model.lead_rows(lead_s, row_s, rows, blocks) == want
