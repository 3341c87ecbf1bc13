"""The cost model: predict what each backend would cost, choose the cheapest.

Everything here is a pure function of three plain records, so a newcomer
can test every decision from a table, with no timing at all::

    Measurements (what func costs: measure.py, evidence.py)
    Profile      (what the machine charges: profile.py)       ─▶ choose() ─▶ Decision
    Work         (the candidate backends, as they declare themselves)

Predicted seconds for one call of ``items`` items on a backend::

    start-up (amortised over the calls seen so far; 0 once started)
    + the call's fixed cost            (waking idle workers, one round trip)
    + blocks x cost per block / workers
    + bytes moved / copy bandwidth     (backends outside the caller's process)
    + items x serial seconds per item / parallelism

Serial seconds per item are the first call's, or the best whole serial
call's where that is lower (:func:`row_s`): serial and the backends
predicted beside it are judged on the same work. Until serial has run
whole calls besides the first (which is cold), they are no more than the
busy time per row of the calls' blocks in this process
(:func:`serial_row_s`): the same rows in one thread take no longer.

Parallelism is 1 serially, the measured speed-up of threads in the caller's
process (where the GIL is shared), and the worker count in worker processes,
but no more than threads reached when func releases the GIL (what held
threads back, memory bandwidth or BLAS already using every core, holds
processes back too). Without a sample, ``workers / native`` (``native``:
cores the serial call kept busy by itself).
A backend that has run whole calls of this kind is predicted from what they
took instead (``Measurements.observed``): evidence beats the model.

The cheapest wins; the backend already in use keeps winning until another
is predicted ``SWITCH_MARGIN`` cheaper (hysteresis: noise cannot flip a
decision back and forth). A backend with fewer than ``MIN_OBSERVATIONS``
whole calls, predicted within ``EXPLORE_WITHIN`` of the best, runs one call
to be measured, unless the sample already showed it cannot help (a
GIL-holding func on threads). Nothing predicted at more than 1.5x the best
is ever run whole. Block sizes come from :func:`blocks` and
:func:`chunksize`, the one sizing rule every backend uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .profile import Profile

__all__ = [
    "EXPLORE_WITHIN",
    "MIN_OBSERVATIONS",
    "SWITCH_MARGIN",
    "Candidate",
    "Counts",
    "Decision",
    "Measurements",
    "Reason",
    "Step",
    "Work",
    "blocks",
    "certain_below",
    "choose",
    "chunksize",
    "floor",
    "kept_count",
    "lead_rows",
    "next_lead",
    "next_step",
    "predict",
    "serial_certain",
]

#: another backend must be predicted this much cheaper before a decision changes
SWITCH_MARGIN = 1.05
#: a backend with fewer whole calls than this may be run once to be measured ...
MIN_OBSERVATIONS = 2
#: ... when it is predicted within this factor of the best (the cost of finding out)
EXPLORE_WITHIN = 1.25
#: threads at most this much faster than serial, on a sample that can be trusted:
#: func holds the GIL (or the cores were already busy), threads cannot help
GIL_BOUND = 1.1
#: threads at this fraction of the worker count: func releases the GIL
GIL_FREE = 0.8
#: a block's (or a batch's) fixed cost may be at most this fraction of its work
BLOCK_OVERHEAD = 0.1
#: apply: at most this many blocks per worker (fewer, larger blocks ran faster on
#: threads: np.exp over 10M on 2 threads, 8 blocks 2.2x serial, 76 blocks 1.8x)
BLOCKS_PER_WORKER = 4
#: pulled blocks (threads) past one per worker: each costs a GIL hand-back and, on
#: rows of even cost, gains nothing (a helper that starts late still takes its share
#: late), so there are only as many as cost this fraction of the work in all; long
#: calls still get BLOCKS_PER_WORKER (progress, and rows whose costs differ)
PULLED_EXTRA = 0.002
#: pulled blocks: calls timed at each of two block counts before one is kept ...
COUNT_TRIALS = 4
#: ... the fewer blocks being kept only when their fastest call was this much faster
COUNT_MARGIN = 0.05


@dataclass(frozen=True)
class Measurements:
    """What is known of ``func`` on this kind of input: the plain record choose() reads.

    Attributes
    ----------
    kind : {"apply", "map", "reduce"}
        (reduce: a map whose tasks are a reduce's blocks)
    items : int
        Rows (apply) or tasks (map) this call has still to run.
    item_s : float
        Serial seconds per item in the caller's thread.
    item_s_bound : bool
        ``item_s`` was measured on blocks so small that numpool's own cost per
        block was most of the time: an upper bound.
    native : float
        Cores the serial call kept busy by itself (BLAS, OpenMP): CPU time over
        wall time, 1.0 for plain code.
    threads_speedup : float or None
        Speed-up of the pool's threads over serial on a sample of real items
        (None: not measured).
    threads_trusted : bool
        The sample was long enough for a low speed-up to mean that threads
        cannot help (func holds the GIL), not a slow moment of the machine.
    gil_free : bool or None
        While the sample's threads ran, the process used about as many cores as
        there were threads: func releases the GIL, whatever its speed-up (a
        memory-bound func keeps every core busy and still gains little). None:
        not measured.
    bytes_per_item : float
        Bytes a backend outside the caller's process copies per item, in and out
        (0 for arrays already in shared memory).
    fresh_bytes : float
        Bytes of new shared memory such a backend needs (faulted in on first write).
    alloc_bytes : float
        Bytes of output a whole call in the caller allocates anew (``func(x)``
        makes its own array: fresh pages, faulted in as they are written, every
        call), where the pool's backends write into recycled memory.
    observed : mapping
        Best recent wall seconds per item of whole calls, per backend.
    observations : mapping
        How many whole calls each backend has run.
    calls : int
        Calls of this kind of work before this one.
    current : str or None
        The backend the evidence settled on so far.
    call_s : float
        func's own seconds per call besides its rows' (0.0: too little to tell):
        every block pays it again (:func:`blocks`).
    block_row_s : float or None
        The least seconds per row that calls' blocks kept in-process workers busy,
        all blocks' busy time together (None: no such call yet). The same rows run
        in one thread, alone, take no longer (less, where the blocks slowed each
        other down), so this bounds serial's own seconds per row from above
        (:func:`serial_row_s`).
    """

    kind: str
    items: int
    item_s: float
    item_s_bound: bool = False
    native: float = 1.0
    threads_speedup: float | None = None
    threads_trusted: bool = False
    gil_free: bool | None = None
    bytes_per_item: float = 0.0
    fresh_bytes: float = 0.0
    alloc_bytes: float = 0.0
    observed: Mapping[str, float] = field(default_factory=dict)
    observations: Mapping[str, int] = field(default_factory=dict)
    calls: int = 0
    current: str | None = None
    call_s: float = 0.0
    block_row_s: float | None = None


@dataclass(frozen=True)
class Candidate:
    """A backend as the model sees it, from the class attributes it declares
    (``Backend.in_process``, ``call_cost``, ``task_cost``, ``start_cost``).

    ``call_cost``, ``task_cost`` and ``start_cost`` name fields of the
    :class:`~numpool.planner.profile.Profile` (None: free). ``unavailable`` says
    why the backend cannot run this call (None: it can)."""

    name: str
    workers: int
    in_process: bool = True
    call_cost: str | None = None
    task_cost: str | None = None
    start_cost: str | None = None
    started: bool = True
    unavailable: str | None = None
    #: whether ``unavailable`` says if func can reach it, or only if it can run here
    #: (asking may pickle func and all it holds: it is asked once the backend wins)
    checked: bool = True

    @property
    def parallel(self) -> bool:
        return self.workers > 1


@dataclass(frozen=True)
class Work:
    """The call to decide: the candidate backends and whether it may explore."""

    candidates: tuple[Candidate, ...]
    #: this call may run on a backend only to measure it (not on a first call, whose
    #: sample has just been taken, nor when the user fixed the backend)
    explore: bool = True


@dataclass(frozen=True)
class Reason:
    """One reason behind a decision: a code and the figures that go with it
    (``numpool.planner.explain`` turns it into a sentence)."""

    code: str
    figures: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.figures[key]


@dataclass(frozen=True)
class Decision:
    """What choose() decided: the backend, every candidate's predicted seconds for
    this call and where each figure came from, and the reasons.

    ``measure_first`` names a backend whose machine costs are not known yet but
    which would win even for free: the runner measures them, then asks again."""

    backend: str
    costs: Mapping[str, float]
    basis: Mapping[str, str]
    reasons: tuple[Reason, ...]
    explore: bool = False
    measure_first: str | None = None
    #: too small for any backend to win (:func:`serial_certain`): never revisited
    certain: bool = False
    #: calls of this work after which a backend not started yet would win once its
    #: start-up is spread over them (:func:`revisit_after`); None: none would
    revisit: int | None = None

    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)


@dataclass(frozen=True)
class Step:
    """Something the runner must do before a decision can stand (see
    :func:`next_step`); then it asks :func:`choose` again.

    ``kind``:

    - ``"check"``: ask whether func can reach ``backend`` (it won, unchecked);
    - ``"start"``: start ``backend``'s workers in the background (a later call must
      not wait for a start-up: this call runs on what is ready), timing them there
      when ``measure`` (the profile lacks their costs);
    - ``"measure"``: start and time ``backend``'s workers now (a first call, whose
      backend would win even if its unknown costs were free).
    """

    kind: str
    backend: str
    measure: bool = False


def next_step(decision: Decision, work: Work) -> Step | None:
    """What the runner must do before ``decision`` stands, or None: it may stand.

    The decision comes back as data and the runner acts on it (see
    ``Runner._choose``); this function does nothing itself, so a table of
    decisions and candidates tests it.
    """
    chosen = next(c for c in work.candidates if c.name == decision.backend)
    if not chosen.checked:
        return Step("check", chosen.name)
    if work.explore and not chosen.started:
        return Step("start", chosen.name, measure=decision.measure_first is not None)
    if decision.measure_first is not None:
        return Step("measure", decision.measure_first)
    return None


# --- sizing -------------------------------------------------------------------------


def blocks(
    items: int,
    item_s: float,
    workers: int,
    task_s: float,
    pulled: bool = False,
    call_s: float = 0.0,
    direct: bool = False,
) -> int:
    """How many blocks to split ``items`` rows into on ``workers`` workers, when one
    worker takes ``item_s`` seconds per row and sending a block costs ``task_s``.

    No block holds less than ``task_s / BLOCK_OVERHEAD`` seconds of work; up to
    ``BLOCKS_PER_WORKER`` per worker, a multiple of the workers when there are at
    least as many (9 blocks on 2 workers leave one idle for a ninth of the call),
    unless the blocks are ``pulled`` from one counter by the caller and its
    helpers (threads: see ``numpool._engine.pull``), where a worker that starts
    late takes fewer. 1 means: not worth splitting.

    ``direct``: func writes each block straight into the output (a ufunc over the
    call's arrays), making no block-sized temporaries. Pulled blocks are then one
    per worker, plus only as many more as cost ``PULLED_EXTRA`` of the work in
    all, a multiple of the workers: each costs a GIL hand-back, and a helper that
    starts late by less than a block still runs its share late (np.exp over 3e6
    on 2 threads: 2 blocks 1.54-1.68 ms, 8 blocks 1.64-1.92 ms, 3 blocks, two of
    them in the caller, 2.27-2.41 ms). A func that makes temporaries keeps more,
    smaller blocks, which stay in cache (a 3x3 blur over 3e6: 2 blocks 17.3 ms,
    8 blocks 13.6 ms).

    ``call_s``: func's own seconds per call besides its rows', paid again by every
    block. It counts with the hand-off (no block holds less than ``(task_s +
    call_s) / BLOCK_OVERHEAD``), except that one block per worker is still made
    when each worker's share of the rows saves more than that call and a hand-off;
    and the blocks are then a multiple of the workers, pulled or not."""
    if workers <= 1 or items <= 1:
        return 1
    work = items * item_s
    cap = min(BLOCKS_PER_WORKER * workers, items)
    extra = work * PULLED_EXTRA / task_s if pulled and direct and task_s > 0 else math.inf
    if extra < cap:  # (inf, or past any int, for hand-offs that cost nothing)
        cap = min(cap, workers + int(extra))
    n = _count(work, task_s / BLOCK_OVERHEAD, cap)
    if call_s > 0:
        fewer = _count(work, (task_s + call_s) / BLOCK_OVERHEAD, cap)
        if fewer < min(n, workers) and work * (1 - 1 / workers) > call_s + task_s:
            fewer = min(n, workers)
        n = min(n, fewer)
    if n >= workers and (not pulled or call_s > 0 or direct):
        # (pulled blocks even out a helper that starts late, and keep temporaries in
        # cache; but 3 blocks on 2 workers, each paying a call or written straight
        # into the output, take 2 blocks' time)
        n -= n % workers
    return max(1, n)


def next_lead(lead_s: float, lag_s: float, late_s: float, most_s: float) -> float:
    """The caller's lead for the next call of a kind of pulled call (threads): the
    seconds of work its first block holds beyond each other block's.

    The caller starts its block first: a helper it wakes runs only once the
    caller lets the GIL go, in that block's NumPy work (``late_s``: how long
    after the caller's this call's first helper block started). At the end the
    same hand-off comes back: a caller that ends first sleeps until the last
    helper is done, or waits for the GIL while the helper's Python runs.

    ``lag_s``: how long after the caller's last block this call's last helper
    block ended (negative: before). A second of lead takes a second off the lag
    (the caller's block gains half, the helper's loses half), so the lead moves
    halfway toward the one at which the caller ends a hand-off (``late_s``, as
    this call saw it) after the last helper, by at most that hand-off: one
    helper descheduled for a while moves it no further. At least 0, at most
    ``most_s`` (the runner gives half an even block's seconds).

    Measured (np.exp on 2 threads, one process, 8 rounds of 25 calls at each
    lead): a lead of 0 / 100 / 200 us took 599 / 562 / 615 us over 1e6 and
    1318 / 1260 / 1313 us over 3e6; the lag was +49 / -58 / -153 us, with the
    helper ~40 us late: the rule settles near the best of the three."""
    late = max(0.0, late_s)
    step = max(-late, min(late, (lag_s + late) / 2))
    return min(max(0.0, lead_s + step), most_s)


def lead_rows(lead_s: float, row_s: float | None, rows: int, blocks: int) -> int:
    """``lead_s`` (:func:`next_lead`) in rows of ``row_s`` seconds each, at most an
    even block's ``rows // blocks``; 0 with no figure per row or one block."""
    if not row_s or row_s <= 0 or blocks <= 1 or not math.isfinite(lead_s):
        return 0
    return max(0, min(rows // blocks, int(lead_s / row_s)))


def kept_count(proposed: int, fewer: int, walls: Mapping[int, Sequence[float]]) -> int | None:
    """The block count a kind of pulled call (threads) keeps, from its own calls'
    wall seconds at each count (``walls``): the count :func:`blocks` proposed, or
    ``fewer`` (one block per worker) when its fastest call beat the proposed
    count's fastest by ``COUNT_MARGIN``; None until each has ``COUNT_TRIALS``.

    Why: :func:`blocks` sizes blocks from a worker's busy seconds per row, but
    what each block costs besides its rows (a GIL hand-back between two threads'
    NumPy operations, a copy into the output, its temporaries' faults) depends
    on func and on the machine, and grows with the count. ``a * b + c`` over 3e5
    on 2 threads: 6-7 blocks 915-1031 us, 2 blocks 648-706 us; a 3x3 blur over 3e6:
    8 blocks 13.6 ms, 2 blocks 17.3 ms. Fastest calls, not medians: noise only
    adds time."""
    mine, other = walls.get(proposed, ()), walls.get(fewer, ())
    if len(mine) < COUNT_TRIALS or len(other) < COUNT_TRIALS:
        return None
    return fewer if min(other) < min(mine) * (1 - COUNT_MARGIN) else proposed


class Counts:
    """One kind of pulled call's trial of two block counts: the count
    :func:`blocks` proposed and one block per worker, its calls alternating between
    them (so that a change in the machine's load falls on both) until
    :func:`kept_count` keeps one."""

    __slots__ = ("fewer", "kept", "proposed", "walls")

    def __init__(
        self, proposed: int, fewer: int, seen: Mapping[int, Sequence[float]] | None = None
    ) -> None:
        """``seen``: walls an earlier trial of the same call size noted (the model's
        count moved as the calls' blocks were timed): those at these counts are kept."""
        self.proposed = proposed
        self.fewer = fewer
        seen = seen or {}
        self.walls: dict[int, list[float]] = {k: list(seen.get(k, ())) for k in (proposed, fewer)}
        #: the count kept (None: still trying)
        self.kept: int | None = None

    def next(self) -> int:
        """The count the next call runs: the kept one, else the one timed less often
        (the proposed one first)."""
        if self.kept is not None:
            return self.kept
        tried = self.walls
        return self.fewer if len(tried[self.fewer]) < len(tried[self.proposed]) else self.proposed

    def note(self, count: int, wall_s: float) -> None:
        """A call that ran in ``count`` blocks took ``wall_s`` seconds."""
        if self.kept is None and count in self.walls and wall_s > 0:
            self.walls[count].append(wall_s)
            self.kept = kept_count(self.proposed, self.fewer, self.walls)


def _count(work: float, smallest: float, cap: int) -> int:
    """Blocks of at least ``smallest`` seconds in ``work`` seconds, at most ``cap``."""
    return cap if smallest <= 0 or work >= cap * smallest else int(work // smallest)


def chunksize(tasks: int, item_s: float, workers: int, task_s: float) -> int:
    """Tasks per message for map: the fewest whose work outweighs a message's cost
    ``task_s`` by 1/BLOCK_OVERHEAD, but at most an even share per worker."""
    if tasks <= 1:
        return 1
    smallest = task_s / BLOCK_OVERHEAD
    share = math.ceil(tasks / max(1, workers))
    per = share if item_s <= 0 or smallest >= share * item_s else math.ceil(smallest / item_s)
    return max(1, min(per, share))


# --- predicting ----------------------------------------------------------------------


def _cost(profile: Profile, name: str | None) -> float | None:
    """A profile figure by field name; 0.0 for None (free), None when not measured."""
    return 0.0 if name is None else getattr(profile, name)


def parallelism(m: Measurements, c: Candidate) -> tuple[float, str]:
    """How many times faster than serial ``c`` runs the items, and the basis."""
    if not c.parallel:
        return 1.0, "serial"
    if c.in_process:  # the GIL is shared: only a sample can tell
        if m.threads_speedup is None:
            return float(c.workers), "optimistic"
        s = m.threads_speedup
        if m.threads_trusted and s < GIL_BOUND:
            s = min(s, 1.0)  # no gain: what reads above 1 is the sample's noise
        return max(1e-3, min(s, float(c.workers))), "sample"
    # separate processes: every worker runs func single-threaded (BLAS under budget).
    # For a func that releases the GIL, what held threads back (memory bandwidth)
    # holds processes back too: they get no further than threads did
    threads = threads_speedup(m)
    if m.gil_free is None:  # no sample: the cores serial kept busy by itself count
        return max(1e-3, c.workers / max(1.0, m.native)), "model"
    if m.gil_free and threads is not None:
        return max(1e-3, min(float(c.workers), max(1.0, threads))), "model"
    return float(c.workers), "model"


def serial_row_s(m: Measurements) -> float:
    """Serial seconds per item: the best recent whole serial call's, else the first
    call's figure; but while serial has fewer than MIN_OBSERVATIONS whole calls, no
    more than the blocks' busy seconds per row (``block_row_s``), an upper bound of
    the same rows' cost in one thread. A first call is cold: besides its fresh pages
    (taken off, see measure.warm_wall) it pays the first run of func's code and
    cold caches, which made ``np.exp`` over 300k float64 read 9-12 ns a row
    against 0.9 warm on a 2-core AVX-512 machine; nothing then ran serial again,
    and auto kept threads at 1.5-2x serial's time for good. With the bound, serial
    runs again once it is predicted the cheapest, and its warm calls decide from
    then on: evidence beats the model. It is never explored on the bound alone
    (:func:`_explorable`): early blocks are cold too, and a serial call right after
    the first pays for its output's fresh pages (NumPy asks for huge pages over
    4 MB, which a VM may compact for), 3-30 ms once over 1e6-3e6 rows of
    ``np.exp``, where threads then won."""
    seen = m.observed.get("serial", m.item_s)
    return capped(seen, m.observations.get("serial", 0), m.block_row_s)


def capped(row_s: float, calls: int, block_row_s: float | None) -> float:
    """Serial's figure ``row_s``, from ``calls`` whole serial calls, capped by the
    blocks' busy seconds per row while calls are fewer than MIN_OBSERVATIONS (the
    rule of :func:`serial_row_s`; evidence.Evidence.serial_only_s reads it too)."""
    if block_row_s is not None and block_row_s < row_s and calls < MIN_OBSERVATIONS:
        return block_row_s
    return row_s


def _capped(m: Measurements) -> bool:
    """Whether serial's figure is the blocks' bound (:func:`serial_row_s`)."""
    return serial_row_s(m) < m.observed.get("serial", m.item_s)


def row_s(m: Measurements) -> float:
    """Serial seconds per item for predicting a backend not yet seen: the first
    call's figure, or serial's (:func:`serial_row_s`) where that is lower. A serial
    figure is only ever slowed by a busy moment (the first calls often run while the
    machine warms up), and serial is judged by its best recent calls: the backends
    predicted beside it are predicted from the same work, else a first slow figure
    made every other backend look slower than serial for good."""
    return min(m.item_s, serial_row_s(m))


def threads_speedup(m: Measurements) -> float | None:
    """Threads over serial: from whole calls when both have run, else the sample."""
    t = m.observed.get("threads")
    if t is not None and t > 0:
        return serial_row_s(m) / t
    return m.threads_speedup


def predict(m: Measurements, profile: Profile, c: Candidate, amortise: bool = True) -> float:
    """Predicted seconds for this call on ``c`` (inf when it cannot run it; unknown
    machine costs count as free: see ``Decision.measure_first``)."""
    if c.unavailable is not None:
        return math.inf
    start = 0.0
    if not c.started:
        start = (_cost(profile, c.start_cost) or 0.0) * c.workers
        if amortise:
            start /= max(1, m.calls + 1)
    alone = not c.parallel and c.in_process  # (func(x) whole, in the caller)
    serial = serial_row_s(m) if alone else math.inf
    observed = m.observed.get(c.name)
    if observed is not None and not serial < observed:  # (else: the blocks' cap)
        return start + observed * m.items
    call_s = _cost(profile, c.call_cost) or 0.0
    task_s = _cost(profile, c.task_cost) or 0.0
    speed, _ = parallelism(m, c)
    item_s = row_s(m) if c.parallel else serial if alone else m.item_s
    per_worker_item = item_s * c.workers / speed
    # func's own cost per call (apply): the whole call paid one, each block pays one
    # (:func:`blocks` makes fewer for it), and so do the first rows, which run alone
    # in the caller (or on one worker) to give the output's layout
    own = m.call_s if m.kind == "apply" and c.parallel else 0.0
    n = (
        blocks(m.items, per_worker_item, c.workers, task_s, pulled=c.in_process, call_s=own)
        if m.kind == "apply"
        else (math.ceil(m.items / chunksize(m.items, per_worker_item, c.workers, task_s)))
    )
    fixed = call_s + (n * task_s / c.workers if c.parallel else 0.0)
    work = m.items * item_s
    if own > 0:
        work = max(0.0, work - own) + n * own
        fixed += own
    move = 0.0
    if alone:  # func(x) whole: its output is fresh memory
        move = m.alloc_bytes / profile.fault_bytes_per_s
    if not c.in_process:
        move = m.items * m.bytes_per_item / profile.copy_bytes_per_s
        move += m.fresh_bytes / profile.fault_bytes_per_s
    return start + fixed + move + work / speed


def floor(m: Measurements, profile: Profile, c: Candidate) -> float:
    """The least ``c`` could cost for this call: already started, nothing copied, the
    work spread perfectly over its workers, plus what handing work over costs once
    (a call's fixed cost; outside this process, also one round trip). A cost the
    profile has not measured yet counts as the cheapest hand-off it has measured:
    reaching another process costs at least as much as waking a thread of this one.
    A whole call seen on ``c`` counts as it was: evidence beats the model."""
    serial_s = m.items * serial_row_s(m)
    if not c.parallel:
        return serial_s
    best = _fixed(profile, c) + serial_s / c.workers
    seen = m.observed.get(c.name)
    return best if seen is None else min(best, seen * m.items)


def _fixed(profile: Profile, c: Candidate) -> float:
    """What handing a call's work to ``c`` costs once, at least (see :func:`floor`)."""
    known = [getattr(profile, n) for n in ("thread_wake_s", "process_task_s")]
    least = min((v for v in known if v), default=0.0)
    names = [c.call_cost] + ([] if c.in_process else [c.task_cost])
    return max(_or(_cost(profile, n), least) for n in names)


def certain_below(profile: Profile, candidates: tuple[Candidate, ...]) -> float:
    """The serial seconds of a call up to which :func:`serial_certain` holds while only
    serial has been seen (a first call): no parallel candidate's floor, its fixed cost
    plus the work spread over its workers, gets below the serial call. Pure; the
    runner asks it once per machine profile, so that a first call that small settles
    without building a decision (numpool's fast path from the first call on)."""
    bound = math.inf
    for c in candidates:
        if c.parallel:
            bound = min(bound, _fixed(profile, c) * c.workers / (c.workers - 1))
    return bound


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def serial_certain(m: Measurements, profile: Profile, candidates: tuple[Candidate, ...]) -> bool:
    """Whether this call is too small for any backend to beat running it whole in the
    caller, however well it scaled: serial then wins for good, and auto never
    measures, explores or revisits it (numpool's fast path). Pure: from the serial
    seconds per item, the items and the machine's measured hand-off costs."""
    serial_s = floor(m, profile, Candidate("serial", 1))
    # (one unavailable now counts too: it may only be starting)
    return all(floor(m, profile, c) >= serial_s for c in candidates if c.parallel)


def _unknown(profile: Profile, c: Candidate) -> bool:
    """Whether the machine costs of ``c`` have not been measured yet."""
    names = [c.call_cost, c.task_cost] + ([] if c.started else [c.start_cost])
    return any(n is not None and getattr(profile, n) is None for n in names)


def _explorable(m: Measurements, c: Candidate) -> bool:
    """Whether one whole call on ``c`` could show anything the sample did not: not for
    threads whose trusted sample showed them waiting for the GIL (a func that released
    it but gained little, on the first call's fresh memory, may still gain on warm);
    not for serial predicted from the blocks' bound (see :func:`serial_row_s`)."""
    if not c.parallel and c.in_process and _capped(m):
        return False
    if c.in_process and c.parallel and m.threads_trusted and m.threads_speedup is not None:
        return m.threads_speedup >= GIL_BOUND or m.gil_free is not False
    return True


def choose(m: Measurements, profile: Profile, work: Work) -> Decision:
    """The backend for this call, from measurements, the machine profile and the
    candidates; pure (see the module docstring for the rule)."""
    reasons: list[Reason] = []
    costs: dict[str, float] = {}
    basis: dict[str, str] = {}
    by_name = {c.name: c for c in work.candidates}
    for c in work.candidates:
        costs[c.name] = predict(m, profile, c)
        if c.unavailable is not None:
            basis[c.name] = "unavailable"
            reasons.append(Reason("unavailable", {"backend": c.name, "why": c.unavailable}))
        elif c.name in m.observed:
            basis[c.name] = "observed"
        else:
            basis[c.name] = parallelism(m, c)[1]
    able = {n: t for n, t in costs.items() if t < math.inf}
    if not able:
        raise ValueError("choose: no candidate backend can run this call")
    serial = next((c for c in work.candidates if not c.parallel), None)
    parallel = [c for c in work.candidates if c.parallel and c.name in able]
    if not parallel and all(c.workers == 1 for c in work.candidates):
        reasons.append(Reason("one-worker"))
    _describe_threads(m, work, reasons)

    if (
        serial is not None
        and serial.unavailable is None
        and serial_certain(m, profile, work.candidates)
    ):
        # too small for any backend to win however well it scaled: serial, for good
        if parallel:
            serial_s = floor(m, profile, serial)
            fixed = max(0.0, min(floor(m, profile, c) - serial_s / c.workers for c in parallel))
            reasons.append(Reason("too-small", {"serial_s": serial_s, "fixed_s": fixed}))
        reasons.append(Reason("cheapest", {"backend": serial.name, "seconds": able[serial.name]}))
        return Decision(serial.name, costs, basis, tuple(reasons), certain=True)
    best = min(able, key=lambda n: (able[n], n != m.current))
    for c in parallel:
        if not c.in_process:
            _describe_processes(m, profile, c, able, best, reasons)
    current = m.current
    if current in able and current != best and able[best] * SWITCH_MARGIN > able[current]:
        reasons.append(
            Reason("hysteresis", {"kept": current, "other": best, "margin": SWITCH_MARGIN})
        )
        best = current
    if _unknown(profile, by_name[best]):
        reasons.append(Reason("measure-first", {"backend": best}))
        return Decision(best, costs, basis, tuple(reasons), measure_first=best)
    reasons.append(Reason("cheapest", {"backend": best, "seconds": able[best]}))
    if work.explore:
        for name in sorted(able, key=able.__getitem__):
            c = by_name[name]
            if (
                name != best
                and m.observations.get(name, 0) < MIN_OBSERVATIONS
                and predict(m, profile, c, amortise=False) <= EXPLORE_WITHIN * able[best]
                and _explorable(m, c)
                and not _unknown(profile, c)
            ):
                reasons.append(
                    Reason(
                        "explore",
                        {
                            "backend": name,
                            "seconds": able[name],
                            "best": best,
                            "calls": m.observations.get(name, 0),
                        },
                    )
                )
                return Decision(name, costs, basis, tuple(reasons), explore=True)
    revisit = revisit_after(m, profile, work, best, able[best])
    return Decision(best, costs, basis, tuple(reasons), revisit=revisit)


def revisit_after(
    m: Measurements, profile: Profile, work: Work, best: str, seconds: float
) -> int | None:
    """In how many more calls of this work a backend not started yet will be
    predicted ``SWITCH_MARGIN`` cheaper than ``best`` (``seconds`` a call), as its
    start-up is spread over more calls (:func:`predict`); None: no backend will, on
    that count alone. A decision kept for many calls without asking the planner
    (a route, ``numpool._routes``) is asked again by then: else processes, which
    lose a loop's first calls to their start-up and win from its tenth, waited for
    the route's next check, 64 calls or more, to be started. Pure."""
    soonest: int | None = None
    for c in work.candidates:
        if not c.parallel or c.started or c.unavailable is not None or c.name == best:
            continue
        start = (_cost(profile, c.start_cost) or 0.0) * c.workers
        if start <= 0:
            continue
        room = seconds / SWITCH_MARGIN - (predict(m, profile, c, amortise=False) - start)
        if room <= 0:
            continue  # it does not win even once started
        # predict spreads ``start`` over calls + 1 (the calls before it): it wins
        # from the call with floor(start / room) calls before it; this one is the
        # call with m.calls before it
        left = max(1, math.floor(start / room) - m.calls)
        soonest = left if soonest is None else min(soonest, left)
    return soonest


def _describe_threads(m: Measurements, work: Work, reasons: list[Reason]) -> None:
    threads = [c for c in work.candidates if c.in_process and c.parallel]
    if not threads or m.threads_speedup is None:
        return
    w = threads[0].workers
    s = m.threads_speedup
    seen = m.observed.get(threads[0].name)
    if seen:  # whole calls on threads beat the sample
        s = serial_row_s(m) / seen
    if s >= GIL_FREE * w:
        code = "gil-free"
    elif s < GIL_BOUND and m.gil_free:
        code = "bandwidth-bound"
    elif s < GIL_BOUND:
        code = "gil-bound" if m.threads_trusted else "threads-unclear"
    else:
        code = "partly-parallel"
    reasons.append(Reason(code, {"speedup": s, "workers": w, "calls": bool(seen)}))


def _describe_processes(
    m: Measurements,
    profile: Profile,
    c: Candidate,
    able: Mapping[str, float],
    best: str,
    reasons: list[Reason],
) -> None:
    if c.name == best or c.name not in able or c.name in m.observed:
        return
    compute = m.items * row_s(m) / parallelism(m, c)[0]
    move = m.items * m.bytes_per_item / profile.copy_bytes_per_s
    move += m.fresh_bytes / profile.fault_bytes_per_s
    start = 0.0
    if not c.started and profile.process_start_s is not None:
        start = profile.process_start_s * c.workers / max(1, m.calls + 1)
    if move > 0 and move >= start:
        reasons.append(
            Reason(
                "copy-costs",
                {
                    "backend": c.name,
                    "move_s": move,
                    "bytes": m.items * m.bytes_per_item,
                    "compute_s": compute,
                },
            )
        )
    elif start > 0:
        reasons.append(
            Reason(
                "start-up",
                {"backend": c.name, "start_s": start, "calls": m.calls + 1, "compute_s": compute},
            )
        )
