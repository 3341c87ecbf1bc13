"""The one engine behind every backend: split, submit, bound, collect, clean up.

apply(func, inputs, out)::

    rows split into `chunks` blocks ─▶ transport.apply_io(inputs, out) gives,
    per block, (src, dst) handles (every array's rows, with their halo: see
    numpool._inputs) ─▶ backend.submit(apply_block, ...) ─▶ each
    worker writes its rows into the one output array ─▶ io.finish()

map(func, *iterables)::

    tasks zipped and batched by `chunksize` ─▶ transport.map_io() encodes a
    batch (stages arrays) as it is submitted ─▶ at most
    backend.max_in_flight() batches outstanding ─▶ results decoded into their
    slots of the result list, staging released as each batch completes

The caller (``numpool._runner``) decides the sizes, learns the output's
layout and allocates it. On any error the not-yet-started work is
cancelled and the transport's ``abort`` releases every segment (unlinking
those a worker may still touch); a broken process pool becomes
:class:`WorkerCrashedError`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

import numpy as np

from ._errors import WorkerCrashedError
from ._inputs import Inputs, along
from ._progress import advance
from ._stats import Stats, worker_name
from .backends import Backend, _cpython
from .backends._ship import new_call
from .backends._transport import MapIO
from .backends._worker import InProcess, apply_block, run_tasks

log = logging.getLogger("numpool")

__all__ = [
    "Helpers",
    "apply",
    "bounds",
    "check_deadline",
    "deadline",
    "map_tasks",
    "pull",
    "run_one",
]

Job = tuple[int, Callable[..., Any], tuple[Any, ...]]


class _Limits(threading.local):
    """This thread's call deadline (Pool.apply/reduce/map_arrays(timeout=)), if any:
    class defaults, read without an AttributeError in threads that never set them."""

    at: float | None = None
    timeout: float | None = None


_limits = _Limits()


@contextlib.contextmanager
def deadline(timeout: float | None) -> Iterator[None]:
    """A call's ``timeout=`` (seconds from now), for every part of it that this thread
    drives (its probe, its rounds, its blocks): past it, :func:`check_deadline` raises
    TimeoutError and the engine stops what still runs, as for Pool.map. A call whose
    work ends past it (a block the caller ran cannot be stopped, nor a call run whole
    in the caller) raises it too, on every backend and every call alike."""
    if timeout is None:
        yield
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be seconds or None, got {timeout!r}")
    outer, outer_timeout = _limits.at, _limits.timeout
    at = time.monotonic() + timeout
    _limits.at = at if outer is None else min(at, outer)
    _limits.timeout = timeout if _limits.at == at else outer_timeout
    try:
        yield
        check_deadline()
    finally:
        _limits.at, _limits.timeout = outer, outer_timeout


def _deadline_left() -> float | None:
    """Seconds left before this thread's call deadline (None: it has none)."""
    at = _limits.at
    return None if at is None else at - time.monotonic()


def _timed_out(timeout: float | None) -> FuturesTimeout:
    """The error of a call past its ``timeout`` (seconds, as the caller gave it)."""
    return FuturesTimeout(f"numpool: work not finished within timeout={timeout} s")


def _drive_deadline(timeout: float | None) -> tuple[float | None, float | None]:
    """(monotonic deadline, the timeout it comes from) of a drive given ``timeout``:
    the sooner of it and this thread's call deadline; (None, None) when neither."""
    deadline = None if timeout is None else time.monotonic() + timeout
    left = _deadline_left()
    if left is not None and (deadline is None or time.monotonic() + left < deadline):
        deadline, timeout = time.monotonic() + left, _limits.timeout
    return deadline, timeout


def check_deadline() -> None:
    """Raise TimeoutError once this thread's call deadline has passed."""
    left = _deadline_left()
    if left is not None and left <= 0:
        raise _timed_out(_limits.timeout)


def _drive(
    backend: Backend,
    jobs: Iterable[Job],
    on_done: Callable[[int, Any], None],
    describe: Callable[[int], str],
    timeout: float | None = None,
    stats: Stats | None = None,
) -> None:
    """Submit jobs with at most ``backend.max_in_flight()`` outstanding; feed results.

    A worker process that dies breaks every job in flight: with
    ``backend.retries`` left, those jobs run again on fresh workers (apply
    blocks and map tasks are idempotent: the same rows, the same slots);
    else :class:`WorkerCrashedError`. Ctrl-C stops the backend's running
    tasks (processes: the workers are killed) before it propagates."""
    if backend.inline:
        _drive_inline(jobs, on_done, timeout)
        return
    new_call()  # (a func sent by value carries the state it has now)
    with _sigint_deferred() as interrupted:
        _drive_until_done(backend, jobs, on_done, describe, timeout, stats, interrupted)


def _drive_inline(
    jobs: Iterable[Job], on_done: Callable[[int, Any], None], timeout: float | None
) -> None:
    """:func:`_drive` on an inline backend (serial): each job run here, in order, as
    the backend's submit would run it, without a future per job (~25 us a block).
    Its error is raised as it comes, with its own traceback; the deadline is checked
    before each job, and Ctrl-C interrupts func at once, as usual."""
    deadline, timeout = _drive_deadline(timeout)
    for i, fn, args in jobs:
        if deadline is not None and time.monotonic() >= deadline:
            raise _timed_out(timeout)
        on_done(i, fn(*args))


#: how often the caller looks for a deferred Ctrl-C while it waits (seconds)
POLL_S = 0.05


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[list[int]]:
    """Ctrl-C while the caller is inside concurrent.futures (submit, callbacks, locks)
    can leave an executor's lock held, and then the pool's threads and shutdown()
    hang for good (seen: Semaphore and Future locks of ThreadPoolExecutor). So in the
    main thread SIGINT is only noted here, and ``_drive`` raises KeyboardInterrupt
    at its next safe point, within POLL_S. Left alone: other threads (SIGINT never
    reaches them), a handler of the user's own, and inline (serial) work, which
    never gets here (:func:`_drive_inline`), where Ctrl-C interrupts func at once
    as usual."""
    hits: list[int] = []
    if (
        threading.current_thread() is not threading.main_thread()
        or _cpython.sigint_handler() is not signal.default_int_handler
    ):
        yield hits
        return
    previous = _cpython.set_sigint_handler(lambda signum, frame: hits.append(signum))
    try:
        yield hits
    finally:
        _cpython.set_sigint_handler(previous)
    if hits:  # noted after the last safe point: deliver it now
        raise KeyboardInterrupt


def _drive_until_done(
    backend: Backend,
    jobs: Iterable[Job],
    on_done: Callable[[int, Any], None],
    describe: Callable[[int], str],
    timeout: float | None,
    stats: Stats | None,
    interrupted: list[int],
) -> None:
    limit = backend.max_in_flight()
    deadline, timeout = _drive_deadline(timeout)
    pending: dict[Future[Any], Job] = {}
    retries = backend.retries
    # Finished futures arrive through a C SimpleQueue, not concurrent.futures.wait():
    # Ctrl-C inside wait() can leave futures' locks held (it acquires them one by one
    # in a Python loop), and then the pool's threads and shutdown() hang for good.
    finished: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
    #: what the work itself raised (a func's error, a crash), told apart from what
    #: else may end the call: an exception from a signal handler, SystemExit
    raised_by_work: list[BaseException] = []

    def submit(job: Job) -> None:
        try:
            f = backend.submit(job[1], *job[2])
        except Exception as e:  # the pool broke after an earlier job of this call
            if not backend.is_crash(e):
                raise
            f = Future()
            f.set_exception(e)  # handled by harvest() like any other lost job
        pending[f] = job
        f.add_done_callback(finished.put)

    def safe_point() -> None:
        if interrupted:  # a Ctrl-C noted by _sigint_deferred
            interrupted.clear()
            raise KeyboardInterrupt
        if deadline is not None and time.monotonic() >= deadline:  # (inline work too)
            raise _timed_out(timeout)

    def harvest() -> None:
        nonlocal retries
        while True:
            safe_point()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                done = [
                    finished.get(timeout=POLL_S if remaining is None else min(remaining, POLL_S))
                ]
                break
            except queue.Empty:
                if remaining is not None and remaining <= POLL_S:
                    raise _timed_out(timeout) from None
        while True:
            try:
                done.append(finished.get_nowait())
            except queue.Empty:
                break
        broken: list[Job] = []
        for f in done:
            job = pending.pop(f, None)
            if job is None:  # a future of a round lost to a dead worker
                continue
            try:
                res = f.result()
            except BaseException as e:
                if not isinstance(e, Exception) or not backend.is_crash(e):
                    raised_by_work.append(e)
                    raise
                if retries <= 0 or not backend.resubmits:
                    backend.recover()
                    cause = backend.crash_cause()
                    crash = WorkerCrashedError(
                        _crash_message(backend, describe(job[0]), cause, backend.retries)
                    )
                    raised_by_work.append(crash)
                    raise crash from e
                broken.append(job)
                continue
            on_done(job[0], res)
        if broken:  # every job in flight went down with the pool: run them again
            retries -= 1
            log.warning(
                "numpool: a %s worker died; running %d lost job(s) again on fresh "
                "workers (%d retr%s left)",
                backend.name,
                len(broken) + len(pending),
                retries,
                "y" if retries == 1 else "ies",
            )
            backend.recover()
            if stats is not None:
                stats.retries += 1
            wait(pending)
            broken += pending.values()
            pending.clear()
            for job in sorted(broken, key=lambda j: j[0]):
                submit(job)

    try:
        for job in jobs:
            while len(pending) >= limit:
                harvest()
            safe_point()
            submit(job)
        while pending:
            harvest()
    except BaseException as e:
        for f in pending:
            f.cancel()
        if isinstance(e, KeyboardInterrupt):
            backend.interrupt()
        elif isinstance(e, FuturesTimeout) or not any(e is w for w in raised_by_work):
            # a func that never returns must not hold the next call up, nor work that
            # nobody waits for any more (a signal handler's exception, SIGTERM ->
            # sys.exit: the exit would wait for every block). Processes: the workers
            # are killed; threads: left behind, holding the memory they write into,
            # so it is not recycled under them
            backend.abandon(list(pending))
        elif backend.in_process:
            # In-process workers write into the caller's memory: let running blocks
            # finish before the caller sees the error (they cannot be stopped).
            wait(pending)
        raise


def _crash_message(backend: Backend, what: str, cause: str, retries: int) -> str:
    how = f": {cause}" if cause else " (killed by a signal, or a crash in native code)"
    again = (
        f" It died again after {retries} retr{'y' if retries == 1 else 'ies'}." if retries else ""
    )
    return (
        f"a worker process of the {backend.name!r} backend died while numpool was running "
        f"{what}{how}.{again} The pool starts fresh workers on the next call. If memory "
        "is the cause, use fewer workers or smaller blocks (chunks=); for work that may "
        "crash now and then, Pool(retries=N) runs the lost tasks again."
    )


def run_one(
    backend: Backend, fn: Callable[..., Any], *args: Any, stats: Stats | None = None
) -> Any:
    """``fn(*args)`` as one job on ``backend``, with the engine's handling of crashes
    and Ctrl-C; its result. ``stats``: the call's Stats, which count a retry here as
    one of the call's (a first block killed and run again is still a retry)."""
    got: list[Any] = []
    with backend.scope():
        _drive(
            backend,
            [(0, fn, args)],
            lambda _, res: got.append(res),
            lambda _: "one block",
            stats=stats,
        )
    return got[0]


def bounds(rows: int, chunks: int, lead: int = 0) -> list[int]:
    """Block edges: ``chunks`` blocks whose sizes differ by at most one row, but for
    the first, which holds ``lead`` rows more (at most ``rows // chunks``)."""
    lead = max(0, min(lead, rows // chunks)) if chunks > 1 else 0
    rest = rows - lead
    return [0] + [lead + i * rest // chunks for i in range(1, chunks + 1)]


def apply(
    backend: Backend,
    func: Callable[..., Any],
    inputs: Inputs,
    out: np.ndarray,
    chunks: int,
    layout: tuple[tuple[int, ...], np.dtype],
    stats: Stats,
    row0: int = 0,
    blas: bool = True,
    lead: int = 0,
) -> np.ndarray:
    """Run ``func`` blockwise over the rows of ``inputs`` into ``out``, in ``chunks``
    blocks (``inputs`` cuts every argument's rows, with their halo).

    ``layout`` is the output's (shape without the split axis, dtype); ``row0``
    is where these rows start in the caller's call (for error messages).
    ``stats`` is filled as the call runs. Threads in the caller's process run it
    by :func:`pull` (the caller takes blocks too); the others by :func:`_drive`.
    ``blas=False``: func runs no BLAS, so the backend's BLAS budget is not set
    (an in-process backend's set and restore cost ~20 us a call). ``lead``: rows
    the caller's first block holds beyond an even share (:func:`pull`).
    """
    rows = inputs.n
    if backend.in_process and not backend.inline:
        with backend.scope() if blas else contextlib.nullcontext():
            if _deadline_left() is not None:
                lead = 0  # (the caller takes no block: see pull)
            edges = bounds(rows, max(1, min(rows, chunks)), lead) if rows else [0]
            pull(backend, func, inputs, out, edges, layout, stats, row0)
        return out
    if rows == 0:
        return out
    tail, dtype = layout
    backend.check_callable(func)
    with backend.scope():
        n = max(1, min(rows, chunks))
        edges = bounds(rows, n)
        io = backend.transport.apply_io(inputs, out, inputs.out_shape(tail), dtype)

        def where(i: int) -> str:
            return f"block {i} of {n} (rows {edges[i] + row0}:{edges[i + 1] + row0})"

        def jobs() -> Iterator[Job]:
            for i in range(n):
                src, dst = io.block(edges[i], edges[i + 1])
                yield i, apply_block, (func, src, dst, where(i), tail, dtype)

        def on_done(i: int, done: tuple[Any, tuple[int, str], float, float]) -> None:
            res, who, start, end = done
            stats.busy(who, start, end)
            if res is not None:
                io.took(edges[i], edges[i + 1], res)
            advance(edges[i + 1] - edges[i])

        try:
            _drive(backend, jobs(), on_done, where, stats=stats)
        except BaseException:
            io.abort()
            raise
        result = io.finish()
        stats.moved(io.moved, io.move_s)
        return result


def pull(
    backend: Backend,
    func: Callable[..., Any],
    inputs: Inputs,
    out: np.ndarray,
    edges: Sequence[int],
    layout: tuple[tuple[int, ...], np.dtype],
    stats: Stats,
    row0: int = 0,
) -> None:
    """Blocks ``edges[i]:edges[i+1]`` of ``inputs`` into ``out`` on an in-process pool,
    the caller working too.

    ::

        caller ── submits workers-1 helpers ──┐
          │                                   ▼
          └─▶ take the next block ◀── the same counter ── each helper
              run it into out's rows            run it into out's rows
              ... until none is left            ... until none is left
        caller ── cancels helpers that never started, waits for the others

    This is what a hand-written split does (half on a thread, half in the
    caller), with blocks taken from one counter so that a helper that wakes
    late takes fewer of them, when there are more blocks than workers
    (``planner.model.blocks``: each block costs a GIL hand-back, so a ufunc
    written straight into the output gets one per worker unless its call is
    long; a func that makes temporaries gets more, smaller blocks, which stay
    in cache). A call makes ``workers - 1`` thread hand-offs, however many
    blocks it has.

    The caller takes block 0 before it wakes the helpers, and a helper runs only
    once the caller lets the GIL go (in its first block's NumPy work): the
    caller starts first. Block 0 may be the larger (``edges``) so that the
    caller ends last, rather than sleep until a helper is done and pay a wake;
    ``stats.lag_s`` says how long the last helper block ended after the
    caller's last one (negative: before), and ``stats.late_s`` how long the
    first helper block started after the caller's first, for the next call's
    sizes (``planner.model.next_lead``).

    Errors: the first failing block (in block order, of those that ran) is
    raised once every helper has stopped, since they write into the caller's
    memory. Ctrl-C in the caller stops taking blocks and leaves the helpers
    behind (:meth:`Backend.interrupt`), as threads cannot be stopped.
    """
    n = len(edges) - 1
    if n <= 0:
        return
    tail, dtype = layout
    axis = inputs.axis
    ticket = itertools.count()  # next() on a count is atomic: each block taken once
    failed: list[tuple[int, BaseException]] = []
    ran: list[tuple[tuple[int, str], float, float, bool]] = []

    def where(i: int) -> str:
        return f"block {i} of {n} (rows {edges[i] + row0}:{edges[i + 1] + row0})"

    # (the per-block Python, ~16 us warm through apply_block, is what the other
    # thread waits for the GIL on: plain blocks skip what is the same for all)
    lean = InProcess(func, inputs, out, tail, dtype) if InProcess.fits(func, inputs) else None

    def work(caller: bool, first: int | None = None) -> None:
        i = first
        who = worker_name()
        while not failed:
            if caller:
                check_deadline()  # (a block the caller runs cannot be stopped)
            if i is None:
                i = next(ticket)
            if i >= n:
                return
            a, b = edges[i], edges[i + 1]
            try:
                if lean is not None:
                    t0, t1 = lean.run(a, b, where, i)
                else:
                    _, who, t0, t1 = apply_block(
                        func, inputs.block(a, b), along(out, a, b, axis), where(i), tail, dtype
                    )
            except BaseException as e:
                failed.append((i, e))
                if caller and not isinstance(e, Exception):
                    raise  # Ctrl-C: at once
                return
            ran.append((who, t0, t1, caller))
            if caller:
                advance(b - a + helped.take())
            else:
                helped.add(b - a)
            i = None

    # rows the helpers finished, for the progress bar: counted by the caller, so that
    # a helper signals it only once, when it stops (each wake of a sleeping caller
    # costs tens of microseconds on a VM)
    helped = _Tally()
    helpers: Helpers | None = None
    try:
        if _deadline_left() is None:
            first = next(ticket)  # (block 0: the caller's, however soon a helper wakes)
            helpers = Helpers(backend, min(backend.workers, n) - 1, work)
            work(True, first)
            helpers.wait()
        else:  # timeout=: the caller only waits, as a block it ran could not be stopped
            helpers = Helpers(backend, min(backend.workers, n), work)
            helpers.wait(cancel=False)
        advance(helped.take())
    except BaseException as e:
        failed.append((-1, e))  # the helpers take no more blocks
        if helpers is not None:
            helpers.abandon()
        raise
    starts, ends = [math.inf, math.inf], [-math.inf, -math.inf]  # (helpers', caller's)
    for who, t0, t1, by_caller in ran:
        stats.busy(who, t0, t1)
        starts[by_caller] = min(starts[by_caller], t0)
        ends[by_caller] = max(ends[by_caller], t1)
    if failed:
        raise min(failed, key=lambda f: f[0])[1]
    if math.isfinite(starts[0]) and math.isfinite(starts[1]):
        stats.lag_s = ends[0] - ends[1]
        stats.late_s = starts[0] - starts[1]


class _Tally:
    """Rows added by helper threads and taken by the caller (list appends and pops
    are atomic, so no lock is needed)."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: list[int] = []

    def add(self, rows: int) -> None:
        self._rows.append(rows)

    def take(self) -> int:
        got = 0
        rows = self._rows
        while rows:
            got += rows.pop()
        return got


class Helpers:
    """The pool threads that help the caller with one call's blocks (see :func:`pull`):
    each runs ``work(False)`` (take blocks until none is left) and then says so."""

    def __init__(self, backend: Backend, count: int, work: Callable[[bool], None]) -> None:
        self.backend = backend
        self._work = work
        #: one None from each helper that stopped
        self.done: queue.SimpleQueue[None] = queue.SimpleQueue()
        self.futures: list[Future[Any]] = []
        if count > 0:
            try:
                with _sigint_deferred():  # (a submit interrupted may leave a lock held)
                    for _ in range(count):
                        self.futures.append(backend.submit(self._help))
            except BaseException:
                # (a Ctrl-C noted while submitting, raised here: a helper may already
                # be running a block, and nobody else holds it to leave it behind)
                self.abandon()
                raise

    def _help(self) -> None:
        try:
            self._work(False)
        finally:
            self.done.put(None)

    def wait(self, cancel: bool = True) -> None:
        """Wait for the helpers to finish. ``cancel``: the caller took blocks until none
        was left, so a helper that never started has nothing to do: cancel it (without
        it, every helper must run: the caller took no block)."""
        waiting = sum(1 for f in self.futures if not (cancel and f.cancel()))
        for _ in range(waiting):
            while True:
                left = _deadline_left()
                try:
                    self.done.get(timeout=None if left is None else max(0.0, left))
                    break
                except queue.Empty:
                    check_deadline()  # (the caller then leaves the helpers behind)

    def abandon(self) -> None:
        """The caller gives up (an error, Ctrl-C): take no more blocks; those still
        running are left behind and the next call gets fresh threads."""
        if any(not f.cancel() and not f.done() for f in self.futures):
            self.backend.interrupt()


def map_tasks(
    backend: Backend,
    func: Callable[..., Any],
    columns: Sequence[Sequence[Any]],
    chunksize: int,
    stats: Stats,
    timeout: float | None = None,
    start: int = 0,
    total: int | None = None,
    io: MapIO | None = None,
) -> list[Any]:
    """``[func(*args) for args in zip(*columns)]``, in parallel, results in order,
    ``chunksize`` tasks per message.

    ``start`` and ``total`` place these tasks in a bigger call, for error
    messages ("task 40 of 100"). ``io``: the call's transport state when these
    tasks are one part of a call (what an earlier part sent is not sent again).
    """
    count = len(columns[0])
    if count == 0:
        return []
    total = total if total is not None else count
    backend.check_callable(func)
    tasks = list(enumerate(zip(*columns, strict=True), start))
    size = max(1, chunksize)
    batches = [tasks[i : i + size] for i in range(0, count, size)]
    results: list[Any] = [None] * count

    with backend.scope():
        if io is None:
            io = backend.transport.map_io()
        moved0, move_s0 = io.moved, io.move_s

        def describe(b: int) -> str:
            first, last = batches[b][0][0], batches[b][-1][0]
            span = f"task {first}" if first == last else f"tasks {first}-{last}"
            return f"{span} of {total}"

        def jobs() -> Iterator[Job]:
            for b, batch in enumerate(batches):
                sent, slots = io.encode(batch)
                yield b, run_tasks, (func, sent, slots, total)

        def on_done(b: int, done: tuple[list[Any], tuple[int, str], float, float]) -> None:
            res, who, t_start, t_end = done
            stats.busy(who, t_start, t_end)
            stats.tasks += len(res) - 1  # busy() counted the batch as one
            for (index, _), r in zip(batches[b], io.decode(batches[b], res), strict=True):
                results[index - start] = r
            advance(len(res))

        try:
            _drive(backend, jobs(), on_done, describe, timeout, stats)
        except BaseException:
            # The traceback keeps this frame alive: drop finished results now so their
            # shared memory returns at once, not when the caller lets go of the error.
            results.clear()
            io.abort()
            raise
    stats.moved(io.moved - moved0, io.move_s - move_s0)
    return results
