"""Every private CPython name numpool reads or sets, one small function each.

numpool manages its workers with the stdlib's executors and multiprocessing,
and some of what it must do (tell a broken process pool, kill a dead pool's
survivors, let a fork's child forget its parent's threads) has no public API.
Rather than fork the stdlib (loky's way), numpool reads a few private names,
and only here: each function says which name(s), the CPython versions whose
source it was checked against (3.10.13, 3.11.7, 3.12.1, 3.13.0), and what it
does when the name is missing. None raises for a missing name: it answers as
if there were nothing to see (no broken pool, no threads to forget) and the
feature it serves degrades, never the call. tests/test_cpython.py checks that
every name in :data:`NAMES` exists on the Python that runs the suite.

Overrides of private hooks stay in the subclasses that define them, checked
against the same versions (``PRIVATE_HOOKS`` lists them for that test):

- ``threads._DaemonThreads._adjust_thread_count`` overrides
  ``ThreadPoolExecutor._adjust_thread_count`` and reads ``self._idle_semaphore``,
  ``self._threads`` and ``self._max_workers`` (the executor's own, in a method the
  stdlib calls; the same on 3.10-3.13);
- ``_context.ForkServerProcess`` and ``SpawnProcess`` set ``_start_method``
  and ``_Popen``, ``ForkServerContext`` and ``SpawnContext`` set ``_name``, as
  ``multiprocessing.context``'s own classes do;
- ``_context._without_main`` rebinds ``Popen._launch`` of
  ``multiprocessing.popen_forkserver`` and ``popen_spawn_posix`` (read through
  :func:`popen_launch`) to a ``spawn`` of its own (tests/test_scripts.py checks
  the code reads ``spawn`` as a global).

Not here: ``numpool.shm`` reads ``weakref.finalize._registry`` (a fork's child
finds the arrays' finalizers); ``shm`` sits below the backends, and importing
this module from it would run ``numpool.backends`` and close a circle.
"""

from __future__ import annotations

import concurrent.futures.thread as cf_thread
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (imported where used: ``import numpool`` does not need multiprocessing)
    from concurrent.futures import ProcessPoolExecutor

__all__ = [
    "NAMES",
    "PRIVATE_HOOKS",
    "call_queue",
    "cancel_queue_finalizers",
    "environ_data",
    "executor_is_broken",
    "executor_threads",
    "forbid_spawning_later",
    "forget_children",
    "forget_manager_wakeup",
    "forget_thread_exit_registry",
    "forkserver_alive_fd",
    "forkserver_pid",
    "manager_thread",
    "not_reaped",
    "pending_futures",
    "popen_launch",
    "queue_feeder",
    "queue_reader",
    "register_before_executors_exit",
    "result_writer",
    "run_thread_exit_hooks",
    "set_sigint_handler",
    "sigint_handler",
    "why_broken",
    "worker_processes",
]

#: every private name read or set below, by the object it is found on
NAMES: dict[str, tuple[str, ...]] = {
    "threading": ("_register_atexit", "_shutdown"),
    "signal": ("_signal",),
    "concurrent.futures.process": ("_threads_wakeups",),
    "concurrent.futures.thread": ("_threads_queues",),
    "multiprocessing.process": ("_children",),
    "ProcessPoolExecutor()": (
        "_broken",
        "_call_queue",
        "_executor_manager_thread",
        "_pending_work_items",
        "_processes",
        "_result_queue",
        "_safe_to_dynamically_spawn_children",
    ),
    "multiprocessing.SimpleQueue()": ("_writer",),
    "ThreadPoolExecutor()": ("_threads",),
    "multiprocessing.queues.Queue()": ("_close", "_jointhread", "_reader", "_thread"),
    "multiprocessing.Process()": ("_popen",),
    "multiprocessing.forkserver.ForkServer()": ("_forkserver_alive_fd", "_forkserver_pid"),
    "multiprocessing.popen_forkserver.Popen": ("_launch",),
    "multiprocessing.popen_spawn_posix.Popen": ("_launch",),
    "os.environ": ("_data",),
}

#: private hooks that numpool's subclasses override (see the module docstring)
PRIVATE_HOOKS: dict[str, tuple[str, ...]] = {
    "ThreadPoolExecutor()": (
        "_adjust_thread_count",
        "_idle_semaphore",
        "_max_workers",
        "_threads",
    ),
    "multiprocessing.context.ForkServerProcess": ("_Popen", "_start_method"),
    "multiprocessing.context.SpawnProcess": ("_Popen", "_start_method"),
    "multiprocessing.context.ForkServerContext": ("_name",),
    "multiprocessing.context.SpawnContext": ("_name",),
}


# --- concurrent.futures.ProcessPoolExecutor ------------------------------------------


def executor_is_broken(ex: ProcessPoolExecutor) -> bool:
    """Whether a worker's death broke ``ex`` (its submit would raise BrokenProcessPool).

    Reads ``ex._broken`` (False, or the message: 3.10-3.13). Missing: False; the
    next submit then raises BrokenProcessPool itself, which the engine handles."""
    return bool(getattr(ex, "_broken", False))


def why_broken(ex: ProcessPoolExecutor) -> str:
    """The message ``ex`` was broken with ("" when it is not, or cannot be told).

    Reads ``ex._broken`` (3.10-3.13). Missing: ""."""
    broken = getattr(ex, "_broken", False)
    return broken if isinstance(broken, str) else ""


def worker_processes(ex: ProcessPoolExecutor) -> dict[int, Any]:
    """A copy of ``ex``'s worker processes by pid (empty before the first submit and
    after shutdown). The copy is made in one step, so the manager thread may change
    the executor's own dict meanwhile.

    Reads ``ex._processes`` (a dict, None after shutdown: 3.10-3.13). Missing: {}
    (a dead worker's exit code is then not reported, and survivors not killed)."""
    return dict(getattr(ex, "_processes", None) or {})


def manager_thread(ex: ProcessPoolExecutor) -> threading.Thread | None:
    """``ex``'s manager thread (None before the first submit and after shutdown).

    Reads ``ex._executor_manager_thread`` (3.10-3.13). Missing: None (nothing is
    waited for; a cancelled shutdown then kills no stuck worker)."""
    thread = getattr(ex, "_executor_manager_thread", None)
    return thread if isinstance(thread, threading.Thread) else None


def call_queue(ex: ProcessPoolExecutor) -> Any:
    """``ex``'s call queue (a multiprocessing Queue; None after shutdown).

    Reads ``ex._call_queue`` (3.10-3.13). Missing: None."""
    return getattr(ex, "_call_queue", None)


def pending_futures(ex: ProcessPoolExecutor) -> list[Any]:
    """The futures of ``ex``'s work items whose results have not come back.

    Reads ``ex._pending_work_items`` (a dict of work items, each with a ``future``:
    3.10-3.13). Missing: [] (futures that the manager thread left pending after it
    died are then not failed)."""
    items = dict(getattr(ex, "_pending_work_items", None) or {})
    return [item.future for item in items.values()]


def result_writer(ex: ProcessPoolExecutor) -> Any:
    """The write end of ``ex``'s result pipe (a Connection; None after shutdown).

    Reads ``ex._result_queue`` (a SimpleQueue) and its ``_writer`` (3.10-3.13).
    Missing: None (a manager thread reading a half-sent result is then not freed)."""
    return getattr(getattr(ex, "_result_queue", None), "_writer", None)


def forbid_spawning_later(ex: ProcessPoolExecutor) -> None:
    """Make ``ex`` start every worker with its first submit, never one in a later
    submit (what it does under fork).

    Sets ``ex._safe_to_dynamically_spawn_children`` (3.10-3.13). Missing: nothing is
    set, and a later submit may start a worker while a dead one breaks the pool (the
    race ``ProcessesBackend._make_executor`` explains)."""
    if hasattr(ex, "_safe_to_dynamically_spawn_children"):
        ex._safe_to_dynamically_spawn_children = False


def forget_manager_wakeup(thread: threading.Thread) -> None:
    """Take a manager thread out of concurrent.futures' exit wake-ups (a fork's child:
    the thread is the parent's).

    Reads ``concurrent.futures.process._threads_wakeups`` (3.10-3.13). Missing:
    nothing is done."""
    import concurrent.futures.process as cf_process

    wakeups = getattr(cf_process, "_threads_wakeups", None)
    if wakeups is not None:
        wakeups.pop(thread, None)


# --- multiprocessing queues and processes ---------------------------------------------


def cancel_queue_finalizers(queue: Any) -> None:
    """Cancel the finalizers that would close ``queue`` and join its feeder thread at
    exit (a fork's child: both are the parent's).

    Reads ``Queue._close`` and ``Queue._jointhread`` of ``multiprocessing.queues``
    (None until the feeder starts: 3.10-3.13). Missing: nothing is cancelled."""
    for name in ("_close", "_jointhread"):
        finalizer = getattr(queue, name, None)
        if finalizer is not None:
            finalizer.cancel()


def queue_reader(queue: Any) -> Any:
    """The read end of ``queue``'s pipe (a Connection).

    Reads ``Queue._reader`` (3.10-3.13). Missing: None (nothing is drained)."""
    return getattr(queue, "_reader", None)


def queue_feeder(queue: Any) -> threading.Thread | None:
    """``queue``'s feeder thread (None until its first put).

    Reads ``Queue._thread`` (3.10-3.13). Missing: None (read as "done")."""
    thread = getattr(queue, "_thread", None)
    return thread if isinstance(thread, threading.Thread) else None


def not_reaped(process: Any) -> bool:
    """Whether ``process`` was started and its exit status not yet collected, without
    collecting it (``Process.exitcode`` would, racing the executor's manager thread
    for the status).

    Reads ``Process._popen`` and its ``returncode`` (3.10-3.13). Missing: False (the
    process is left alone)."""
    popen = getattr(process, "_popen", None)
    return popen is not None and getattr(popen, "returncode", 0) is None


def forget_children(kinds: tuple[type, ...]) -> None:
    """Take the processes of ``kinds`` out of multiprocessing's children of this process
    (a fork's child: they are the parent's, and its exit would join them).

    Reads ``multiprocessing.process._children`` (a set: 3.10-3.13). Missing: nothing
    is done."""
    import multiprocessing.process as mp_process

    children = getattr(mp_process, "_children", None)
    if children is not None:
        for p in [p for p in children if isinstance(p, kinds)]:
            children.discard(p)


def environ_data() -> dict[Any, Any] | None:
    """The dict behind ``os.environ`` (bytes keys and values), to tell in a
    microsecond whether the environment changed (building a copy takes ~20 us, on
    every job a worker process is sent: see ``_worker.caller_state``).

    Reads ``os.environ._data`` (3.10-3.13). Missing: None (the caller's state is
    then read in full each time)."""
    import os

    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else None


def forkserver_pid(server: Any) -> int | None:
    """The pid of ``server``'s process (a ``multiprocessing.forkserver.ForkServer``;
    None before it starts).

    Reads ``ForkServer._forkserver_pid`` (3.10-3.13). Missing: None (a server that
    stopped taking requests is then not killed, only replaced)."""
    pid = getattr(server, "_forkserver_pid", None)
    return pid if isinstance(pid, int) else None


def forkserver_alive_fd(server: Any) -> int | None:
    """The fd whose closing tells ``server``'s process to exit (None before it starts).

    Reads ``ForkServer._forkserver_alive_fd`` (3.10-3.13). Missing: None (a fork's
    child then keeps its copy open; the parent's server ends when both have gone)."""
    fd = getattr(server, "_forkserver_alive_fd", None)
    return fd if isinstance(fd, int) else None


def popen_launch(popen: type) -> Callable[..., Any] | None:
    """The function that starts a process in the multiprocessing Popen class ``popen``.

    Reads ``Popen._launch`` of ``popen_forkserver`` and ``popen_spawn_posix``
    (3.10-3.13). Missing: None (the stdlib's Popen is then used unchanged, and
    workers import ``__main__`` as multiprocessing's own do)."""
    launch = getattr(popen, "_launch", None)
    return launch if callable(launch) else None


# --- threads ---------------------------------------------------------------------------


def executor_threads(ex: ThreadPoolExecutor) -> list[threading.Thread]:
    """``ex``'s threads.

    Reads ``ThreadPoolExecutor._threads`` (a set: 3.10-3.13). Missing: []."""
    return list(getattr(ex, "_threads", ()))


def forget_thread_exit_registry(threads: Iterable[threading.Thread]) -> None:
    """Take ``threads`` out of the registry concurrent.futures joins at exit.

    Reads ``concurrent.futures.thread._threads_queues`` (3.10-3.13). Missing: nothing
    is done (the exit then waits for those threads, as for the stdlib's own)."""
    registry = getattr(cf_thread, "_threads_queues", None)
    if registry is not None:
        for t in threads:
            registry.pop(t, None)


def register_before_executors_exit(func: Callable[[], None]) -> None:
    """Run ``func`` at exit before concurrent.futures joins its threads (threading's
    exit hooks run in reverse order of registration, so after the executors' own
    ``_python_exit`` was registered, as importing concurrent.futures.process does).

    Calls ``threading._register_atexit`` (3.10-3.13). Missing: ``func`` is not
    registered (a broken pool's idle survivor may then delay the exit)."""
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(func)


def run_thread_exit_hooks() -> None:
    """Do now what the interpreter's exit does first: run threading's exit hooks (where
    concurrent.futures and loky shut down the executors left open) and join the
    threads; the interpreter's own call then returns at once.

    Calls ``threading._shutdown`` (3.10-3.13; it does its work once on each). Missing:
    nothing is done (a worker process then joins its children first, see
    ``processes._exit_threads_first``)."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()


# --- signal ------------------------------------------------------------------------


def sigint_handler() -> Any:
    """``signal.getsignal(SIGINT)``, without turning the answer into an enum (~1 us a
    call: every threads call asks, around its hand-offs). Reads ``signal._signal``,
    the C module ``signal`` wraps (3.10-3.13). Missing: ``signal.getsignal``."""
    raw = getattr(signal, "_signal", signal)
    return raw.getsignal(signal.SIGINT)


def set_sigint_handler(handler: Any) -> Any:
    """``signal.signal(SIGINT, handler)`` without the enum conversions; the previous
    handler. Reads ``signal._signal`` (3.10-3.13). Missing: ``signal.signal``."""
    raw = getattr(signal, "_signal", signal)
    return raw.signal(signal.SIGINT, handler)
