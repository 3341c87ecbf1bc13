"""The multiprocessing context of numpool's worker processes: they never run ``__main__``.

With the spawn and forkserver start methods, every new process re-imports the
parent's ``__main__`` (as ``__mp_main__``) before it runs anything: a script
without an ``if __name__ == "__main__":`` guard runs again in every worker,
prints twice, and crashes when it starts a pool at module level. joblib's loky
avoids it by never importing the main module in its workers, and ships
functions and classes from ``__main__`` by value (cloudpickle); numpool does
the same (values: see ``_ship.py``).

How: the stdlib's ``Popen._launch`` sends the child ``spawn.
get_preparation_data()``, whose ``init_main_from_path`` / ``init_main_from_name``
make the child run the script. The contexts here use the stdlib's own
``_launch`` code, rebound to a ``spawn`` whose preparation data leaves those
two keys out. Nothing is copied from CPython, so its fixes still apply; the
code of ``_launch`` reads ``spawn`` as a module global on 3.10-3.13 (checked
by tests/test_scripts.py). The forkserver itself never imports ``__main__``
either: its preload list is numpool's own (from CPython 3.13.8 a preload of
``__main__`` would run the script in the server).

The fork server is numpool's own, not multiprocessing's shared one: its
preload list is numpool's alone (a user's forkserver keeps theirs), and a
child made by ``os.fork()`` gets a fresh one (:func:`_after_fork_in_child`):
the inherited server is the parent's, whose pid the child cannot wait for
(multiprocessing then raises ChildProcessError). A server that stops taking
requests is replaced (``_through_a_fresh_server``), unless it went away
because it could not fork: at the limit on processes (RLIMIT_NPROC, ``ulimit
-u``) a worker's start raises BlockingIOError (EAGAIN), as fork does.

This module is preloaded by the fork server: each worker needs it to rebuild
its Process object.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import multiprocessing as mp
import multiprocessing.context as mpc
import os
import signal
import sys
import time
import types
from multiprocessing import spawn
from typing import Any

from . import _cpython

__all__ = ["PRELOAD", "at_process_limit", "context"]

#: how long a worker's start waits for a fork server that went away to be replaced
SERVER_RESTART_S = 5.0

#: what the fork server imports once, so that workers start with it loaded
PRELOAD = ["numpy", "numpool.backends._context", "numpool.backends._worker"]


class _SpawnWithoutMain:
    """``multiprocessing.spawn``, except that a child is never told to run ``__main__``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(spawn, name)

    @staticmethod
    def get_preparation_data(name: str) -> dict[str, Any]:
        data: dict[str, Any] = spawn.get_preparation_data(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data


def _without_main(popen: Any, **names: Any) -> type:
    """A subclass of the stdlib Popen class ``popen`` whose ``_launch`` is the stdlib's
    code reading ``spawn`` from :class:`_SpawnWithoutMain` (and the globals ``names``
    from there); ``popen`` itself where it has no ``_launch`` to rebind."""
    launch = _cpython.popen_launch(popen)
    if launch is None:
        return popen
    namespace = dict(vars(sys.modules[popen.__module__]))
    namespace["spawn"] = _SpawnWithoutMain()
    namespace.update(names)
    rebound = types.FunctionType(
        launch.__code__, namespace, launch.__name__, launch.__defaults__, launch.__closure__
    )
    return type(popen.__name__, (popen,), {"_launch": rebound, "__module__": __name__})


_processes: tuple[type, ...] = ()

if "forkserver" in mp.get_all_start_methods():
    from multiprocessing import forkserver, popen_forkserver

    #: numpool's fork server (replaced in a fork's child)
    _server = forkserver.ForkServer()

    class _OwnForkServer:
        """``multiprocessing.forkserver``, except that numpool's server starts the process."""

        def __getattr__(self, name: str) -> Any:
            return getattr(forkserver, name)

        @staticmethod
        def connect_to_new_process(fds: list[int]) -> Any:
            return _server.connect_to_new_process(fds)

    _ForkServerPopen = _without_main(popen_forkserver.Popen, forkserver=_OwnForkServer())

    class ForkServerProcess(mpc.ForkServerProcess):
        _start_method = "forkserver"

        @staticmethod
        def _Popen(process_obj: Any) -> Any:
            _server.ensure_running()
            pid = _cpython.forkserver_pid(_server)
            try:
                return _ForkServerPopen(process_obj)
            except _SERVER_GONE as e:
                _raise_if_at_process_limit(e)
            return _through_a_fresh_server(pid, process_obj)

    #: a fork server that no longer takes requests: it refuses the connection, or
    #: accepted it into its backlog and closed it unread (then the data pipe, whose
    #: read end went with the unread request, breaks; or no pid comes back)
    _SERVER_GONE = (ConnectionError, FileNotFoundError, EOFError)

    def _through_a_fresh_server(pid: int | None, process_obj: Any) -> Any:
        """Start ``process_obj`` through a new fork server when ``pid``, the current one,
        no longer takes requests. CPython's server exits when a client hangs up before
        it sends its fds (a start cut short half way), and for a while, on its way out,
        looks alive to ``ensure_running``, which hands it the next requests (seen here:
        the next 45-50 pools failed to start). So it is killed, and the start is tried
        again until its successor answers (SERVER_RESTART_S at most). It forks nothing
        once it has failed, so no worker is started twice."""
        if pid is not None and pid == _cpython.forkserver_pid(_server):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + SERVER_RESTART_S
        while True:
            try:
                return _ForkServerPopen(process_obj)
            except _SERVER_GONE as e:
                _raise_if_at_process_limit(e)
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "numpool could not start a worker process: its fork server "
                        f"(pid {pid}) stopped taking requests, and none answered within "
                        f"{SERVER_RESTART_S} s ({type(e).__name__}: {e}). Try again, or "
                        "use backend='threads'."
                    ) from e
                time.sleep(0.01)

    class ForkServerContext(mpc.ForkServerContext):
        _name = "forkserver"  # start-method checks (SemLock) must see a fork server
        Process = ForkServerProcess

        def set_forkserver_preload(self, module_names: list[str]) -> None:
            _server.set_forkserver_preload(module_names)

    _processes += (ForkServerProcess,)


def at_process_limit() -> bool:
    """Whether this process cannot start one more thread or process now: the limit on
    them (RLIMIT_NPROC, which counts threads too; a container's pids limit) was reached.
    Asked by starting a thread that does nothing, which the same limit refuses."""
    try:
        _thread.start_new_thread(int, ())
    except RuntimeError:  # "can't start new thread": EAGAIN from clone
        return True
    return False


def _raise_if_at_process_limit(e: BaseException) -> None:
    """After the fork server went away: a BlockingIOError (EAGAIN, as fork raises it)
    when that was because it could not fork (it dies of the error; its zombie, which
    nobody has waited for yet, still counts against the limit, so the probe sees the
    limit as the server did), not a server to replace."""
    if at_process_limit():
        raise BlockingIOError(
            errno.EAGAIN,
            "the fork server could not fork a worker process and exited: the limit on "
            f"processes was reached ({type(e).__name__}: {e})",
        ) from e


if os.name == "posix":
    from multiprocessing import popen_spawn_posix

    _SpawnPopen = _without_main(popen_spawn_posix.Popen)

    class SpawnProcess(mpc.SpawnProcess):
        _start_method = "spawn"

        @staticmethod
        def _Popen(process_obj: Any) -> Any:
            return _SpawnPopen(process_obj)

    class SpawnContext(mpc.SpawnContext):
        _name = "spawn"
        Process = SpawnProcess

    _processes += (SpawnProcess,)


def context() -> Any:
    """The context worker processes start from: a fork server where there is one,
    else spawn; on POSIX, neither runs the user's ``__main__`` in a worker."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = ForkServerContext()
        # only effective before the fork server starts; afterwards workers import on demand
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    if os.name == "posix":
        return SpawnContext()
    return mp.get_context("spawn")  # Windows: workers run __main__ (guard your script)


def _after_fork_in_child() -> None:
    """In a child made by ``os.fork()``: numpool's workers are the parent's, not this
    process's children; and the fork server is the parent's, which this process cannot
    wait for (multiprocessing's check of it raises ChildProcessError here). So the
    workers leave multiprocessing's children (the child's exit would terminate or join
    them), and numpool's next worker here comes from a fresh fork server; the child's
    copy of the old one's "alive" pipe is closed, so that the parent's server still
    ends with the parent."""
    _cpython.forget_children(_processes)
    if "forkserver" in mp.get_all_start_methods():
        global _server
        old, _server = _server, forkserver.ForkServer()
        alive = _cpython.forkserver_alive_fd(old)
        if alive is not None:
            with contextlib.suppress(OSError):
                os.close(alive)


os.register_at_fork(after_in_child=_after_fork_in_child)
