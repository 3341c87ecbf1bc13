"""backend="processes": persistent worker processes, arrays through shared memory.

For functions that hold the GIL (pure-Python loops, most non-NumPy code),
only separate processes run in parallel. The classic ``multiprocessing``
recipe pickles every array through a pipe, which is why it is often slower
than serial NumPy; here arrays travel by *name* (see ``numpool.shm``):

    caller ──ShmRef──▶ worker ──attach (cached)──▶ view ──▶ func ──▶ writes in place

Process management is the standard library's ``ProcessPoolExecutor`` over
the ``forkserver`` start method (``spawn`` where there is none): workers
are forked from a clean single-threaded server that has already imported
NumPy and numpool, never from the caller (which may be running threads), and
never run the user's ``__main__`` (``_context.py``); functions from it, and
lambdas, travel by value (``_ship.py``).
Each worker applies the BLAS budget once, at start, with threadpoolctl.

A worker that dies (SIGKILL, OOM) breaks the stdlib executor; numpool turns
that into :class:`numpool.WorkerCrashedError` and starts a fresh executor on
the next call. One that dies while the pool is idle may leave another stuck
on the call queue's lock, which the stdlib's shutdown would join for good:
shutdown (and the exit) kill such survivors (:func:`_unstick`). Workers that
numpool kills leave no manager thread waiting for the rest of a half-sent result
(:func:`_settle`); and a worker ends as an interpreter does, stopping the
executors its tasks left open before it joins their processes
(:func:`_exit_threads_first`).

A daemonic process (a ``multiprocessing.Pool`` worker) may not have children:
there this backend is unavailable (:func:`daemonic`), named as such to
``backend="auto"``, which then runs on threads or serially, and raised as
:class:`numpool.BackendUnavailableError` when asked for by name. So is a start
refused at the limit on processes (RLIMIT_NPROC, ``ulimit -u``: EAGAIN from
fork, or a thread that cannot start), which ``unavailable_here`` then reports
for PROCESS_LIMIT_RECHECK_S.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import os
import pickle
import select

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any, ClassVar

from .. import shm
from .._errors import BackendUnavailableError
from . import _cpython
from ._base import Backend
from ._ship import keep_byte_order, ship, ship_args
from ._transport import Shared, Transport
from ._worker import (
    INIT_FAILED,
    call,
    caller_state,
    following,
    init_worker,
    pack,
    take_init_report,
    unpack,
)

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

# multiprocessing, its fork server and the stdlib's process executor (with what they
# import: subprocess, socket, tempfile; ~20 ms) are imported where workers start or
# are looked after, not here: backend="auto" imports this module on its first call
# to read the class's facts, and most processes never start a worker.

__all__ = ["ProcessesBackend"]


class ProcessesBackend(Backend):
    name = "processes"
    transport: ClassVar[Transport] = Shared()
    in_process = False
    auto = True
    #: a call and each block or batch are round trips through the executor's pipes
    #: and threads; starting is the fork server's fork and the worker's imports
    call_cost = "process_task_s"
    task_cost = "process_task_s"
    start_cost = "process_start_s"

    options = frozenset({"mp_context"})

    def __init__(self, workers: int, blas_threads: int | None, mp_context: Any = None) -> None:
        super().__init__(workers, blas_threads)
        #: Pool(mp_context=): the start method's name (None: numpool's default)
        self._method: str | None = None if mp_context is None else mp_context.get_start_method()
        #: reentrant: a dropped map iterator may abandon its work from a __del__ that
        #: the garbage collector runs while this thread holds the lock
        self._lock = threading.RLock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._starter: threading.Thread | None = None
        #: the current executor's worker processes, by pid (to tell how one died)
        self._procs: dict[int, Any] = {}
        shm.arena().acquire()

    def _make_executor(self) -> ProcessPoolExecutor:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import resource_tracker

        keep_byte_order()  # (the jobs this process sends its workers)
        init = self.initializer
        ctx = _context_for(self._method)
        _register_exit_hooks()
        if ctx.get_start_method() != "fork":
            # The executor's queues make named locks (a file each in /dev/shm), which
            # multiprocessing's resource tracker is to unlink: a tracker that cannot
            # start (at the limit on processes) left the first lock's file behind for
            # good. Started first, its failure leaves nothing.
            resource_tracker.ensure_running()
        ex = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_init_process_worker,
            initargs=(
                self.blas_threads,
                (shm.shm_dir(), shm.spill_dir(), shm.shm_limit()),
                os.getpid(),
                None if init is None else (ship(init[0]), ship_args(init[1])),
            ),
        )
        # Start every worker with the first submit, never one from a later submit, as
        # the stdlib does under fork. A submit that starts a worker while the manager
        # thread breaks the pool (a worker died) races it: terminate_broken holds no
        # lock, so the new process's fds were already closed (OSError EBADF in
        # sendfds, seen in CI on 3.11) or the manager's walk over the process dict
        # fails ("dictionary changed size during iteration").
        _cpython.forbid_spawning_later(ex)
        _made.add(ex)
        return ex

    def executor(self) -> ProcessPoolExecutor:
        """The live executor, replacing one that a dead worker broke; none after
        shutdown (a call still running in another thread then fails, starting nothing)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after the pool was shut down")
            why = daemonic()
            if why is not None:
                raise BackendUnavailableError(
                    f"backend={self.name!r} cannot start worker processes: {why}. Use "
                    "backend='threads' (NumPy releases the GIL, so threads run it in "
                    "parallel) or 'auto' (threads or serial here), or call numpool from a "
                    "process that is not daemonic (concurrent.futures.ProcessPoolExecutor's "
                    "workers are not)."
                )
            ex = self._executor
            if ex is None or _cpython.executor_is_broken(ex):
                if ex is not None:
                    _kill_survivors(ex)
                    ex.shutdown(wait=False, cancel_futures=True)
                    _retire(ex)
                self._executor = None
                try:
                    # (its queues' locks may start multiprocessing's resource tracker)
                    ex = self._make_executor()
                except Exception as e:
                    _raise_if_refused(e)
                    raise
                self._executor = ex
                self._procs = {}
            return ex

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """One of numpool's own jobs (apply_block, run_tasks): what needs it travels by
        value (a func from ``__main__``, a lambda); the user's func (the job's first
        argument) with the caller's working directory, sys.path and environment, which
        the worker takes before it loads func (see ``_worker.Following``), and the rest
        packed, loaded by numpool's code after that (see ``_worker.pack``)."""
        ex = self.executor()
        sent = ship_args(args)
        if args and callable(args[0]):
            func = following(sent[0], caller_state())
            fn, sent, kwargs = unpack, (fn, func, *pack(sent[1:], kwargs)), {}
        try:
            future = ex.submit(fn, *sent, **kwargs)
        except Exception as e:
            if _refused(e):  # (the first submit starts the workers and the threads)
                self._discard(ex)
                _raise_if_refused(e)
            # a worker died while this submit ran: what failed is the broken pool's
            # (its manager thread marks it broken before it closes anything)
            from concurrent.futures.process import BrokenProcessPool

            if not _cpython.executor_is_broken(ex) or isinstance(e, BrokenProcessPool):
                raise
            raise BrokenProcessPool(_cpython.why_broken(ex)) from e
        procs = _cpython.worker_processes(ex)  # started by the first submit()
        if procs and len(procs) != len(self._procs):
            self._procs.update(procs)
            _limit_reached.clear()
            _watch_deaths(ex, procs)
        return future

    def _discard(self, ex: ProcessPoolExecutor) -> None:
        """Let go of ``ex``, whose workers could not all start: kill those that did (they
        wait on a queue that nobody will feed)."""
        with self._lock:
            if self._executor is ex:
                self._executor, self._procs = None, {}
        _kill(ex, _cpython.worker_processes(ex))
        ex.shutdown(wait=False, cancel_futures=True)
        _retire(ex)

    def submit_call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """``Pool.submit``: the user's call, by value where it needs to be; its result
        and its exception come back whole (see _worker.call). ``fn`` goes first as it
        is, so that :meth:`submit` sends it as the user's func, with the caller's
        state (shipped here, a Shipped, it went without: a lambda ran in the worker's
        stale directory and environment, under NumPy's default error modes)."""
        return self.submit(
            call,
            fn,
            ship_args(args),
            dict(zip(kwargs, ship_args(tuple(kwargs.values())), strict=True)),
        )

    def check_callable(self, func: Callable[..., Any]) -> None:
        """Refuse, before any work is sent, a func that cannot reach a worker process."""
        _check_sendable(func)

    def crash_cause(self) -> str:
        """How a worker of the broken executor died, in words (waits up to 1 s for the
        exit status, which the fork server reports shortly after the death)."""
        deadline = time.monotonic() + 1.0
        # The broken executor's manager thread joins the workers, reading each exit
        # status from the fork server; polling the same Process objects meanwhile races
        # it, and the loser records 255 ("no status", seen in CI for a SIGKILL): let
        # it finish first, then read the statuses it stored.
        ex = self._executor
        manager = _cpython.manager_thread(ex) if ex is not None else None
        if manager is not None and manager is not threading.current_thread():
            manager.join(timeout=1.0)
        while True:
            codes = {pid: p.exitcode for pid, p in list(self._procs.items())}
            dead = {pid: c for pid, c in codes.items() if c is not None}
            # the executor SIGTERMs the survivors itself: the first death is another one;
            # 255 is what multiprocessing reports when the fork server sent no status
            # (seen once in CI next to the real SIGKILL): wait for a status that says more.
            # 0 tells: a worker of a broken pool exits 0 only when func ended it
            # (os._exit(0)); the executor's own clean exits come with shutdown, not here
            telling = {pid: c for pid, c in dead.items() if c not in (-signal.SIGTERM, 255)}
            first = telling or dead
            if telling or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if self._executor is not None:  # (statuses read: the survivors may go now)
            _kill_survivors(self._executor)
        return "; ".join(_death(pid, code) for pid, code in sorted(first.items()))

    def recover(self) -> None:
        """Free the broken executor's threads (see _unblock_feeder); the next submit
        starts a fresh one. Only a broken one: a later job of the same call may have
        started a fresh executor already, and draining a live executor's call queue
        would steal its work items (seen on 3.10: a soak hung 1 run in 4, its task
        never delivered)."""
        ex = self._executor
        if ex is not None and _cpython.executor_is_broken(ex):
            _unblock_feeder(ex)

    def interrupt(self) -> None:
        """Stop running tasks now (Ctrl-C, or work the caller gave up on: see
        :meth:`Backend.abandon`): kill the workers; the next call starts new ones.
        (Workers ignore SIGINT so that the parent alone decides what stops.) Every
        task running on the pool then fails, other threads' calls included: one
        worker process cannot be stopped alone without breaking the stdlib executor."""
        with self._lock:
            ex, self._executor = self._executor, None
            procs, self._procs = self._procs, {}
        if ex is not None:
            _kill(ex, {**procs, **_cpython.worker_processes(ex)})
            ex.shutdown(wait=False, cancel_futures=True)
            _retire(ex)

    def after_fork_in_child(self) -> None:
        """Forget the parent's executor (its workers are the parent's, its manager
        thread does not exist here) without shutting it down; see :func:`_disown`."""
        ex = self._executor
        self._lock = threading.RLock()
        self._executor, self._procs, self._starter = None, {}, None
        if ex is not None:
            _disown(ex)

    @property
    def started(self) -> bool:
        """Workers are running (a call would not pay their start-up)."""
        ex = self._executor
        return (
            ex is not None
            and not _cpython.executor_is_broken(ex)
            and len(_cpython.worker_processes(ex)) >= self.workers
            and self._starter is None
        )

    def start_soon(self, func: Callable[..., Any] | None = None) -> None:
        """Start every worker in a background thread (once at a time); ``started`` turns
        true when they are up."""
        with self._lock:
            if self._starter is not None or self._closed:
                return
            self._starter = threading.Thread(
                target=self._start_in_background, args=(func,), name="numpool-start", daemon=True
            )
            self._starter.start()

    def _start_in_background(self, func: Callable[..., Any] | None) -> None:
        try:
            self.start(func, None)
        except Exception:
            pass  # the next call that needs the workers meets the error itself
        finally:
            with self._lock:
                self._starter = None

    @classmethod
    def unavailable(cls, func: Callable[..., Any]) -> str | None:
        why = cls.unavailable_here()
        if why is not None:
            return why
        try:
            _check_sendable(func)
        except TypeError as e:
            return str(e)
        return None

    @classmethod
    def unavailable_here(cls) -> str | None:
        """Why no worker process can start here: this process is daemonic, or the last
        start met the limit on processes (for PROCESS_LIMIT_RECHECK_S, then it is
        tried again); None: they can."""
        return daemonic() or process_limit_reached()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The Executor's shutdown. With ``cancel_futures``, queued work is cancelled and
        running tasks get :data:`SHUTDOWN_GRACE_S` to finish, then their workers are
        killed and their futures fail (BrokenProcessPool): a func that never returns
        would otherwise hold up ``shutdown(wait=True)``, and the interpreter's exit
        (concurrent.futures joins every executor's manager thread), for good. With
        ``wait=False`` that happens in the background."""
        with self._lock:
            ex, self._executor = self._executor, None
            closed, self._closed = self._closed, True
        if ex is not None:
            watch = _unstick(ex)
            if cancel_futures:
                _cancel_then_kill(ex, wait)
            if watch is not None and wait:  # (no thread for it: it runs here)
                ex.shutdown(wait=False, cancel_futures=cancel_futures)
                watch()
            ex.shutdown(wait=wait, cancel_futures=cancel_futures)
            if not wait:
                _retire(ex)
        if not closed:
            shm.arena().release()


#: seconds that shutdown(cancel_futures=True) lets running tasks finish before it
#: kills their workers
SHUTDOWN_GRACE_S = 5.0


def _cancel_then_kill(ex: ProcessPoolExecutor, wait: bool) -> None:
    """Cancel ``ex``'s queue, and kill its workers if tasks still run after
    SHUTDOWN_GRACE_S (in a daemon thread unless ``wait``)."""
    manager = _cpython.manager_thread(ex)
    procs = _cpython.worker_processes(ex)  # (shutdown forgets them)
    parts = _settling(ex)
    ex.shutdown(wait=False, cancel_futures=True)
    if manager is None:  # no work was ever submitted
        return

    def reap() -> None:
        manager.join(SHUTDOWN_GRACE_S)  # it ends once every task is done
        if manager.is_alive():
            _kill(ex, procs, parts)
            manager.join(SHUTDOWN_GRACE_S)  # failing the futures left: a moment

    if wait:
        reap()
    else:
        threading.Thread(target=reap, name="numpool-reap", daemon=True).start()


#: exit priority of :func:`_exit_threads_first` among multiprocessing's finalizers:
#: before all of the stdlib's (its queues' are 10 and below)
EXIT_THREADS_FIRST = 100


def _init_process_worker(*args: Any) -> None:
    """The initializer of numpool's worker processes: an exit in the interpreter's
    order (see :func:`_exit_threads_first`), then numpool's own (``init_worker``)."""
    if sys.version_info < (3, 13):
        import multiprocessing.util as mp_util

        mp_util.Finalize(None, _exit_threads_first, exitpriority=EXIT_THREADS_FIRST)
    init_worker(*args)


def _exit_threads_first() -> None:
    """End a worker process as an interpreter ends: threads first, then children.

    An interpreter's exit runs threading's exit hooks first (concurrent.futures and
    loky shut down there the executors left open, so their workers end), then
    atexit's, where multiprocessing joins the children. Before 3.13 a
    multiprocessing child did it the other way round (CPython gh-114220, fixed by
    gh-114279): ``BaseProcess._bootstrap`` joined the children first. So a func that
    left an executor open in a worker (``joblib.Parallel(backend="loky")``, whose
    executor joblib keeps for the next call; a ProcessPoolExecutor) made the worker
    wait at shutdown for that executor's workers, which waited for work until hooks
    that never came: ``Pool.shutdown()``, and the interpreter's exit, which joins
    the worker, hung for good (joblib's test suite on numpool hung at exit 2 runs in
    3). This runs as multiprocessing's first finalizer, before the children are
    joined; the hooks run once, so the bootstrap's own call then returns at once.

    See ``_cpython.run_thread_exit_hooks``."""
    _cpython.run_thread_exit_hooks()


#: every executor made here, to kill a broken one's survivors before exit
_made: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()


def _kill_broken_survivors() -> None:
    """At exit, before concurrent.futures joins its manager threads: a broken
    executor's manager joins its surviving workers, and one left idle would keep it
    (and the exit) waiting for good (see :func:`_kill_survivors`); a live one's
    shutdown may wait for good on a worker that a dead one left stuck (see
    :func:`_unstick`)."""
    here = []
    for ex in list(_made):
        if _cpython.executor_is_broken(ex):
            _kill_survivors(ex)
        else:
            watch = _unstick(ex)
            if watch is not None:
                here.append((ex, watch))
    # no thread started for these (3.12.0-3.12.2 start none once the exit has begun:
    # CPython gh-113964): what concurrent.futures' exit does next, waking their
    # manager threads, is done here, and the watch runs in this thread
    for ex, _ in here:
        ex.shutdown(wait=False)
    for _, watch in here:
        watch()


#: how long a shutdown lets the other workers end once one has ended, before it kills
#: them (by then they are idle, or stuck: see :func:`_unstick`)
EXIT_GRACE_S = 2.0

#: how often a shutdown's watcher looks whether the manager thread is done
WATCH_S = 0.5


def _unstick(ex: ProcessPoolExecutor) -> Callable[[], None] | None:
    """Make sure the shutdown of ``ex``, about to begin, ends: a worker killed while
    idle (the OOM killer) may die holding its call queue's read lock, and a surviving
    worker then waits for that lock for good, never reading the None that tells it to
    exit; the manager thread, which joins it, and shutdown(), which joins the manager,
    wait with it (3 runs in 6). A worker that ended before the shutdown began died
    (workers end only when told to, at shutdown): the others are killed now. One that
    dies during the shutdown is caught by a watcher thread: once a worker has ended,
    every task is done (workers are told to end only then) or the pool broke, so the
    others have EXIT_GRACE_S to end before they are killed.

    Returns that watch, to run once the shutdown has begun, when no thread could
    start for it (at the limit on processes; during the exit on 3.12.0-3.12.2),
    else None."""
    procs = _cpython.worker_processes(ex)  # (shutdown forgets them)
    manager = _cpython.manager_thread(ex)
    if not procs or manager is None or not manager.is_alive():
        return None
    if _ended(procs):
        _kill_unended(procs)
        _unblock_feeder(ex)
        _settle(ex)
    watch = functools.partial(_watch, ex, manager, procs, _settling(ex))
    try:
        threading.Thread(target=watch, name="numpool-watch", daemon=True).start()
    except RuntimeError:
        return watch
    return None


def _watch(
    ex: ProcessPoolExecutor, manager: threading.Thread, procs: dict[int, Any], parts: _Settling
) -> None:
    """:func:`_unstick`'s watcher: kill the workers still running EXIT_GRACE_S after
    one of them ended, if the manager thread is not done by then."""
    sentinels = _sentinels(procs)
    while manager.is_alive():
        try:
            if _wait(list(sentinels), timeout=WATCH_S):
                break
        except (OSError, ValueError):  # a sentinel closed: its process was joined
            break
    manager.join(EXIT_GRACE_S)
    if manager.is_alive():
        _kill_unended(procs)
        _unblock_feeder(ex)
        _settle(ex, parts)


def _wait(sentinels: list[int], timeout: float | None = None) -> list[Any]:
    """multiprocessing.connection.wait: the sentinels of ``sentinels`` that are ready."""
    from multiprocessing.connection import wait

    return wait(sentinels, timeout=timeout)


def _sentinels(procs: dict[int, Any]) -> dict[int, int]:
    """The sentinel fd of each started process of ``procs``, to its pid."""
    got = {}
    for pid, p in procs.items():
        with contextlib.suppress(ValueError):  # (not started)
            got[p.sentinel] = pid
    return got


def _ended(procs: dict[int, Any]) -> set[int]:
    """The pids of ``procs`` that have ended, told without collecting an exit status
    (which would race the manager thread, see crash_cause): a process's sentinel turns
    readable when it ends (the fork server writes its status there, or the pipe that
    only the process held closes)."""
    sentinels = _sentinels(procs)
    try:
        ready = _wait(list(sentinels), timeout=0)
        return {sentinels[fd] for fd in ready if isinstance(fd, int)}
    except (OSError, ValueError):  # a sentinel closed: its process was joined
        return set(procs)


def _kill_unended(procs: dict[int, Any]) -> None:
    """SIGKILL the processes of ``procs`` that have not ended (and only those: an ended
    one's pid may already be another process's)."""
    ended = _ended(procs)
    for pid, p in procs.items():
        if pid not in ended and _cpython.not_reaped(p):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _kill_survivors(ex: ProcessPoolExecutor) -> None:
    """Kill the workers a broken executor has left. Its manager thread joins them
    (terminate_broken) before it ends, and an idle one waits on a call queue whose
    write end it holds itself, so it never sees EOF: on 3.11 the interpreter then
    hung at exit joining that thread (seen once in CI, after every test passed)."""
    for p in _cpython.worker_processes(ex).values():
        # (no poll: reaping here would race the manager thread for the exit status
        # that crash_cause() reports)
        if _cpython.not_reaped(p):
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGKILL)


def _kill(ex: ProcessPoolExecutor, procs: dict[int, Any], parts: _Settling | None = None) -> None:
    """Kill ``procs``, the workers of ``ex``: its manager thread then fails every
    future left (BrokenProcessPool) and ends; see _unblock_feeder for 3.10, and
    _settle (and its ``parts``) for a worker killed while it sent a result."""
    for p in procs.values():
        with contextlib.suppress(Exception):
            p.kill()
    _unblock_feeder(ex)
    _settle(ex, parts)


#: how long a manager thread has to end once its workers were killed, before its
#: result pipe is fed (see _settle)
RESULTS_GRACE_S = EXIT_GRACE_S


def _settle(ex: ProcessPoolExecutor, parts: _Settling | None = None) -> None:
    """Make sure that once a worker of ``ex`` was killed (by numpool, or died), its
    manager thread ends and every future it had fails, in a daemon thread (``parts``:
    what :func:`_settling` read before ``ex`` was shut down, which forgets them).

    - A worker killed halfway through sending a result leaves the rest unsent, and
      the manager thread, reading it, waits for the rest for good: no EOF comes, as
      this process holds the pipe's write end too (for the workers it would start).
      The exit, which joins that thread, then hung: joblib's
      test_deadlock_with_generator (a generator dropped while workers send 500 kB
      results: joblib aborts, numpool kills the workers) hung the suite at exit every
      time. So, if the thread is alive RESULTS_GRACE_S after the kill, zeros are
      written into the pipe until it ends: the message completes as garbage, which
      the thread cannot unpickle, so it marks the executor broken and ends.
    - Before 3.12 the manager thread's ``terminate_broken`` raised InvalidStateError at
      the first future that its caller had cancelled (joblib's abort, cancel() of a
      queued submit) and died there, leaving the futures after it pending for good:
      those fail here, with BrokenProcessPool, as the thread would have failed them.
    """
    manager, writer, futures = parts or _settling(ex)
    if manager is None or not manager.is_alive():
        return
    try:
        # (a copy of its own: the executor may close the pipe meanwhile)
        fd = None if writer is None else os.dup(writer.fileno())
    except (OSError, ValueError):
        fd = None

    def settle() -> None:
        try:
            manager.join(RESULTS_GRACE_S)
            zeros = bytes(select.PIPE_BUF)  # (a write that a writable pipe takes whole)
            while fd is not None and manager.is_alive():
                if select.select([], [fd], [], WATCH_S)[1]:
                    os.write(fd, zeros)
        except OSError:
            pass  # (no select on pipes here, Windows: the thread is left as it is)
        finally:
            if fd is not None:
                os.close(fd)
        manager.join()
        from concurrent.futures.process import BrokenProcessPool

        broken = BrokenProcessPool(
            "a worker process of the pool was killed (the pool's shutdown, or work that "
            "its caller gave up on) while this task was queued or running"
        )
        for future in futures:
            with contextlib.suppress(InvalidStateError):  # (done, or cancelled)
                future.set_exception(broken)

    try:
        threading.Thread(target=settle, name="numpool-settle", daemon=True).start()
    except RuntimeError:  # (at the limit on processes no thread starts)
        if fd is not None:
            os.close(fd)


#: executors whose workers a thread watches (see _watch_deaths)
_watched: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()


def _watch_deaths(ex: ProcessPoolExecutor, procs: dict[int, Any]) -> None:
    """Once, when the workers of ``ex`` have started: a daemon thread that waits for
    one of them to end, then settles ``ex`` (:func:`_settle`). A worker ends when the pool
    shuts down (the manager thread then ends by itself) or when it dies: killed by
    the OOM killer halfway through sending a result, it left the manager thread
    waiting for the rest for good, and the call waiting for good on its future."""
    if ex in _watched:
        return
    _watched.add(ex)

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):  # (a sentinel closed: joined)
            _wait(list(_sentinels(procs)))
        _settle(ex)

    with contextlib.suppress(RuntimeError):  # (at the limit on processes: no watcher)
        threading.Thread(target=watch, name="numpool-deaths", daemon=True).start()


#: what _settle needs of an executor: its manager thread, its result pipe's write end,
#: the futures of its work items
_Settling = tuple[threading.Thread | None, Any, list[Future[Any]]]


def _settling(ex: ProcessPoolExecutor) -> _Settling:
    """What :func:`_settle` needs of ``ex``, read now."""
    return (
        _cpython.manager_thread(ex),
        _cpython.result_writer(ex),
        _cpython.pending_futures(ex),
    )


#: executors shut down without waiting, kept alive until their manager thread is done:
#: it reads cancel_futures (and finishes the queue) through a weak reference to them
_retired: list[ProcessPoolExecutor] = []
_retired_lock = threading.Lock()


def join_retired(timeout: float = 5.0) -> None:
    """Wait, up to ``timeout`` seconds in all, for retired executors to finish closing
    their queues and pipes (a broken one takes a moment); also run at exit."""
    deadline = time.monotonic() + timeout
    with _retired_lock:
        retired = list(_retired)
    for ex in retired:
        thread = _cpython.manager_thread(ex)
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))


@functools.cache
def _register_exit_hooks() -> None:
    """Once, with the first executor: :func:`_kill_broken_survivors` among threading's
    exit hooks and :func:`join_retired` among atexit's. Both lists run last in, first
    out, and these must run before the stdlib's own (concurrent.futures joins its
    manager threads, multiprocessing its children), which importing
    concurrent.futures.process and multiprocessing registered: so they come after
    those imports, which this module leaves until workers start. (Two threads making
    their first executors at once may both register them: each hook runs harmlessly
    twice then, as ``keep_byte_order`` may.)"""
    _cpython.register_before_executors_exit(_kill_broken_survivors)
    atexit.register(join_retired)


#: in a child made by os.fork(): the parent's executors, kept from the garbage collector
_disowned: list[ProcessPoolExecutor] = []


def _disown(ex: ProcessPoolExecutor) -> None:
    """In a fork's child: let go of the parent's executor ``ex`` for good. Shutting it
    down would join a manager thread that does not exist here, and message the
    parent's workers; collecting it would run a callback that takes a lock the parent
    may have held at the fork and wakes the parent's manager thread. So it is kept,
    untouched, and taken out of what the child's exit goes through: its manager thread
    from concurrent.futures' exit wake-ups, its call queue's finalizers from
    multiprocessing's (they take the queue's lock, and join a feeder thread of the
    parent's). Its workers leave multiprocessing's children in _context.py."""
    _disowned.append(ex)
    manager = _cpython.manager_thread(ex)
    if manager is not None:
        _cpython.forget_manager_wakeup(manager)
    _cpython.cancel_queue_finalizers(_cpython.call_queue(ex))


def _after_fork_in_child() -> None:
    global _retired, _retired_lock
    retired, _retired, _retired_lock = _retired, [], threading.Lock()
    for ex in retired:
        _disown(ex)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _retire(ex: ProcessPoolExecutor) -> None:
    with _retired_lock:
        _retired[:] = [
            old
            for old in _retired
            if (t := _cpython.manager_thread(old)) is not None and t.is_alive()
        ]
        _retired.append(ex)


def _context_for(method: str | None) -> Any:
    """The context for Pool(mp_context=)'s start method: numpool's own where it is that
    method (it never runs ``__main__`` in a worker), else the stdlib's."""
    import multiprocessing as mp

    from . import _context

    ctx = _context.context()
    if method is None or ctx.get_start_method() == method:
        return ctx
    if method == "spawn" and os.name == "posix":
        return _context.SpawnContext()
    return mp.get_context(method)


def _death(pid: int, code: int) -> str:
    why = take_init_report(pid) if code == INIT_FAILED else None
    if why is not None:
        return (
            f"worker pid {pid} could not start: the pool's initializer {why} (see its "
            "traceback on stderr); fix the initializer, or make the pool without it"
        )
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        causes: dict[int, str] = {
            signal.SIGKILL: "most often the out-of-memory killer (see `dmesg`), or a kill -9",
            signal.SIGSEGV: "a crash in native code",
            signal.SIGBUS: "a crash in native code, or shared memory that ran out",
            signal.SIGABRT: "an abort in native code",
            signal.SIGTERM: "terminated by another process",
        }
        cause = causes.get(sig, "killed by a signal")
        return f"worker pid {pid} was killed by {name} ({cause})"
    if code == 0:
        return (
            f"worker pid {pid} exited with code 0 (os._exit(0) in func, or in code it "
            "calls? a worker must return its result, not end its process)"
        )
    if code == INIT_FAILED:
        return (
            f"worker pid {pid} exited with code {code}, numpool's code for a pool "
            "initializer that raised (its traceback is on stderr)"
        )
    return f"worker pid {pid} exited with code {code} (os._exit or a fatal error in func)"


#: seconds that a start refused at the limit on processes makes ``unavailable_here``
#: say so (``backend="auto"`` then runs on threads), before processes are tried again
PROCESS_LIMIT_RECHECK_S = 30.0

#: (when, why) of the last start refused at the limit on processes; cleared by a start
#: that succeeds
_limit_reached: list[tuple[float, str]] = []


def process_limit_reached() -> str | None:
    """Why worker processes cannot start (the limit on processes was reached when they
    were last started, less than PROCESS_LIMIT_RECHECK_S ago), or None."""
    got = _limit_reached[-1:]
    if got and time.monotonic() - got[0][0] < PROCESS_LIMIT_RECHECK_S:
        return got[0][1]
    return None


def _refused(e: BaseException) -> bool:
    """Whether ``e``, from starting workers (fork, the fork server, a thread of the
    executor's), says that the limit on processes was reached: EAGAIN from fork or
    clone (BlockingIOError), or a thread that could not start (the limit counts threads
    too), here or in what caused it."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.EAGAIN:
            return True
        if isinstance(e, RuntimeError) and "can't start new thread" in str(e):
            return True
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return False


def _raise_if_refused(e: BaseException) -> None:
    """Raise BackendUnavailableError, saying what to do, when ``e`` means that workers
    could not start at the limit on processes; and remember it for ``backend="auto"``
    (see unavailable_here)."""
    if not _refused(e):
        return
    limit = "RLIMIT_NPROC is not set: a container's pids limit, or the system's"
    if resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        if soft != resource.RLIM_INFINITY:
            limit = f"RLIMIT_NPROC, `ulimit -u`, is {soft}"
    why = (
        "the limit on the processes (threads included) that this user may run was "
        f"reached ({limit})"
    )
    _limit_reached[:] = [(time.monotonic(), why)]
    raise BackendUnavailableError(
        f"backend='processes' could not start its worker processes: {why}; "
        f"{type(e).__name__}: {e}. Raise the limit (`ulimit -u`, or the container's "
        "pids limit), end other processes of this user, use fewer workers, or use "
        "backend='threads' (NumPy releases the GIL, so threads run it in parallel)."
    ) from e


def daemonic() -> str | None:
    """Why this process cannot start worker processes (None: it can). multiprocessing
    refuses children to a daemonic process (a ``multiprocessing.Pool`` worker), with an
    AssertionError from deep inside the executor. (multiprocessing marks a process
    daemonic as it starts it: one where multiprocessing was never imported is not.
    Where it is being imported, by a thread that starts workers in the background,
    the import statement waits for that import to end: the module in sys.modules is
    then only partly run.)"""
    if "multiprocessing.process" not in sys.modules:
        return None
    import multiprocessing.process

    if multiprocessing.process.current_process().daemon:
        return (
            "this process is daemonic (a multiprocessing.Pool worker, say), and daemonic "
            "processes are not allowed to have children"
        )
    return None


def _check_sendable(func: Any) -> None:
    """A TypeError naming the way out when ``func`` cannot reach a worker process: it
    goes by reference (a module-level function, a ufunc) or by value (a function from
    ``__main__``, a lambda, a closure: cloudpickle), and neither works."""
    try:
        shipped = ship(func)
        if shipped is func:
            pickle.dumps(func)
    except Exception as e:
        name = getattr(func, "__qualname__", None) or type(func).__name__
        raise TypeError(
            f"the processes backend cannot send {name} to its worker processes: neither "
            f"pickle nor cloudpickle can serialise it ({type(e).__name__}: {e}). Use "
            "backend='threads' (NumPy code releases the GIL, so threads run it in "
            "parallel), or make what it refers to picklable."
        ) from None


def _unblock_feeder(ex: ProcessPoolExecutor) -> None:
    """Drain the call queue's pipe once the workers are dead, until its feeder is done.

    CPython 3.10 (gh-94777, fixed in 3.11): when workers die while the queue's feeder
    thread is writing a large batch, the feeder blocks forever on a pipe nobody reads,
    and the interpreter then hangs at exit joining it. Measured here: Ctrl-C during a
    processes map of 10,000 tasks hung every time on 3.10. 3.11 closes the reader;
    doing that from outside left a double close of the fd (EBADF) on 3.10, and on 3.12
    leaked 3 fds per crash: so on 3.10 only, a daemon thread reads what the feeder
    still writes (work items for workers that no longer exist)."""
    if sys.version_info >= (3, 11):
        return
    queue = _cpython.call_queue(ex)
    reader = _cpython.queue_reader(queue)
    if reader is None:
        return

    def drain() -> None:
        with contextlib.suppress(Exception):  # the executor closed the pipe: done
            while True:
                feeder = _cpython.queue_feeder(queue)
                if reader.poll(0.05):
                    reader.recv_bytes()
                elif feeder is None or not feeder.is_alive():
                    return

    # (at the per-user process limit no thread starts: nothing big is being fed then,
    # the start itself was refused)
    with contextlib.suppress(RuntimeError):
        threading.Thread(target=drain, name="numpool-drain", daemon=True).start()
