"""Process-level faults: a fork of a program using numpool, daemonic callers, workers
that never return or exit 0, Ctrl-C on threads, shutdown while a call runs.

Whatever could hang runs in a subprocess with a generous timeout (a hang fails the
test instead of the suite); nothing here measures a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

import funcs
import numpool
from helpers import segments

TESTS = Path(__file__).parent
#: how long a subprocess may take before it counts as hung (never a timing)
PATIENCE = 120


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    pid: int


def _run(code: str, timeout: float = PATIENCE) -> Ran:
    """Run ``code`` in a fresh interpreter (tests/ on its path); a hang fails the test,
    and its whole process group is killed (a hung fork's child holds the pipes too).
    (Forking a process that runs threads is deprecated from 3.12: what this file
    tests is that numpool survives it.)"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    p = subprocess.Popen(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(TESTS),
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"hung for {timeout} s; stdout: {out!r}; stderr: {err[-3000:]}")
    return Ran(p.returncode, out, err, p.pid)


def _lines(r: Ran) -> list[str]:
    assert r.returncode == 0, r.stderr
    assert not segments(owner=r.pid), "it left shared-memory segments"
    return r.stdout.splitlines()


# --- a worker that exits 0 ------------------------------------------------------------


def test_a_worker_that_exits_0_is_named() -> None:
    with (
        numpool.Pool("processes", workers=2) as pool,
        pytest.raises(numpool.WorkerCrashedError, match=r"exited with code 0 \(os\._exit"),
    ):
        pool.apply(funcs.exit_zero, np.linspace(0, 1, 100), chunks=2)


# --- a worker dying while the caller submits ---------------------------------------------


def test_every_worker_starts_with_the_first_submit() -> None:
    """No later submit starts a worker: one that does while the executor's manager
    thread breaks the pool (a worker died) races it and failed in CI with EBADF."""
    with numpool.Pool("processes", workers=2) as pool:
        backend = pool._backends.get("processes")
        assert backend.submit(abs, -1).result() == 1
        procs = backend._executor._processes
        assert len(procs) == 2 and all(p.is_alive() for p in procs.values())


def test_a_submit_that_meets_a_breaking_pool_is_a_crash_not_an_oserror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the race above raised from the submit (EBADF, "handle is closed") is the
    broken pool's: WorkerCrashedError, and the next call starts fresh workers."""
    x = np.linspace(0, 1, 100)
    with numpool.Pool("processes", workers=2) as pool:
        assert np.array_equal(pool.apply(np.exp, x, chunks=2), np.exp(x))
        ex = pool._backends.get("processes")._executor

        def breaking_submit(*args: object, **kwargs: object) -> None:
            ex._broken = "A child process terminated abruptly"
            raise OSError(9, "Bad file descriptor")

        monkeypatch.setattr(ex, "submit", breaking_submit)
        with pytest.raises(numpool.WorkerCrashedError):
            pool.apply(np.exp, x, chunks=2)
        monkeypatch.undo()
        assert np.array_equal(pool.apply(np.exp, x, chunks=2), np.exp(x))


def test_an_error_of_a_live_pool_submit_stays_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.linspace(0, 1, 100)
    with numpool.Pool("processes", workers=2) as pool:
        pool.apply(np.exp, x, chunks=2)
        ex = pool._backends.get("processes")._executor

        def failing_submit(*args: object, **kwargs: object) -> None:
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(ex, "submit", failing_submit)
        with pytest.raises(OSError, match="Too many open files"):
            pool.apply(np.exp, x, chunks=2)


@pytest.mark.skipif(
    "forkserver" not in __import__("multiprocessing").get_all_start_methods(),
    reason="no fork server on this platform",
)
def test_a_fork_server_that_went_away_is_replaced() -> None:
    """CPython's fork server exits when a client hangs up before sending its request,
    and for a while looks alive while refusing or dropping the next ones: numpool's
    next worker must come from a fresh server, not fail (it did: 50 pools in a row)."""
    r = _run(
        """
        import socket, numpy as np, numpool
        from numpool.backends import _context
        x = np.linspace(0, 1, 1000)
        for _ in range(5):
            with numpool.Pool("processes", workers=2) as pool:
                assert np.array_equal(pool.apply(np.exp, x, chunks=2), np.exp(x))
            s = socket.socket(socket.AF_UNIX)
            s.connect(_context._server._forkserver_address)
            s.close()  # a start cut short: the server ends
        with numpool.Pool("processes", workers=2) as pool:
            assert np.array_equal(pool.apply(np.exp, x, chunks=2), np.exp(x))
        print("ok")
        """
    )
    assert _lines(r) == ["ok"], r.stderr


# --- os.fork() -----------------------------------------------------------------------------


def test_a_forked_child_gets_pools_of_its_own_and_the_parent_keeps_its_own() -> None:
    """The child computes on threads and processes (module functions and a pool it
    inherited), uses an inherited SharedArray, and exits; the parent's pools, arena
    and segments are as they were; nobody leaves a segment."""
    r = _run(
        """
        import os, sys, numpy as np, numpool
        from numpool import shm
        x = np.linspace(0, 1, 100_000)
        def check(tag):
            for backend in ("threads", "processes", "auto"):
                y = numpool.apply(np.sqrt, x, backend=backend, workers=2, chunks=4)
                print(tag, backend, bool(np.array_equal(y, np.sqrt(x))), flush=True)
            y = pool.apply(np.sqrt, x, chunks=4)
            print(tag, "pool", bool(np.array_equal(y, np.sqrt(x))), flush=True)
        if __name__ == "__main__":
            pool = numpool.Pool("processes", workers=2)
            kept = numpool.share(x)
            check("parent")  # (its results' segments are back in the arena, idle)
            idle = shm.arena().idle_names()
            assert idle and os.path.exists(os.path.join(shm.shm_dir(), kept.segment_name))
            pid = os.fork()
            if pid == 0:
                check("child")
                z = numpool.apply(np.sqrt, kept, backend="processes", workers=2, chunks=4)
                print("child shared", bool(np.array_equal(z, np.sqrt(x))), flush=True)
                del z
                sys.exit(0)
            _, status = os.waitpid(pid, 0)
            print("child exit", os.waitstatus_to_exitcode(status), flush=True)
            print("child left", len([n for n in os.listdir(shm.shm_dir())
                                     if shm.owner_of(n) == pid]), flush=True)
            gone = [n for n in idle | {kept.segment_name}
                    if not os.path.exists(os.path.join(shm.shm_dir(), n))]
            print("parent's segments gone", gone, flush=True)
            check("parent")
            pool.shutdown()
        """
    )
    lines = _lines(r)
    tags = [f"{b} True" for b in ("threads", "processes", "auto", "pool")]
    assert lines == [
        *(f"parent {t}" for t in tags),
        *(f"child {t}" for t in tags),
        "child shared True",
        "child exit 0",
        "child left 0",
        "parent's segments gone []",
        *(f"parent {t}" for t in tags),
    ], r.stderr


def test_workers_of_a_fork_pool_use_numpool() -> None:
    """multiprocessing.Pool's fork workers call numpool (after the parent used it):
    threads and auto work; processes, refused to a daemonic worker, says so."""
    r = _run(
        """
        import multiprocessing as mp, funcs
        if __name__ == "__main__":
            print(funcs.sqrt_on("threads"), funcs.sqrt_on("processes"), flush=True)
            with mp.get_context("fork").Pool(2) as pool:
                print(pool.map(funcs.sqrt_on, ["threads", "auto", "threads"]), flush=True)
                print(repr(pool.apply(funcs.numpool_here, ("processes",))), flush=True)
            print(funcs.sqrt_on("threads"), funcs.sqrt_on("processes"), flush=True)
        """
    )
    lines = _lines(r)
    assert lines[:2] == ["True True", "[True, True, True]"], r.stderr
    assert eval(lines[2])[0] == "BackendUnavailableError", lines[2]
    assert lines[3] == "True True", r.stderr


# --- daemonic processes ------------------------------------------------------------------


def test_in_a_daemonic_process_processes_is_unavailable_and_auto_works() -> None:
    """multiprocessing.Pool's workers are daemonic: they may not start processes."""
    r = _run(
        """
        import multiprocessing as mp, funcs
        if __name__ == "__main__":
            with mp.get_context("spawn").Pool(1) as pool:
                for backend in ("processes", "auto", "threads"):
                    print(repr(pool.apply(funcs.numpool_here, (backend,))), flush=True)
        """
    )
    processes, auto, threads = (eval(line) for line in _lines(r))
    assert processes[0] == "BackendUnavailableError", processes
    assert "daemonic" in processes[1] and "backend='threads'" in processes[1], processes
    assert auto[0] == "ok" and threads[0] == "ok", (auto, threads)
    assert "processes cannot run this call: this process is daemonic" in auto[1], auto[1]


# --- a call that never returns -----------------------------------------------------------


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_a_map_given_up_on_does_not_hold_the_pool(backend: str) -> None:
    """A Pool.map timeout, an iterator dropped or closed while its calls run: the next
    call gets fresh workers, and shutdown(wait=True) and the exit do not hang."""
    r = _run(
        f"""
        import concurrent.futures as cf, gc, numpy as np, numpool, funcs
        if __name__ == "__main__":
            pool = numpool.Pool({backend!r}, workers=2)
            try:
                list(pool.map(funcs.forever, [1, 2, 3], timeout=2))
            except cf.TimeoutError:
                print("timed out", flush=True)
            print(list(pool.map(abs, [-1, -2, -3])), flush=True)
            it = pool.map(funcs.forever, [1, 2])
            del it
            gc.collect()
            print(list(pool.map(abs, [-4])), flush=True)
            it = pool.map(funcs.forever, [1, 2], chunksize=2)
            it.close()
            x = np.linspace(0, 1, 1000)
            print(bool(np.array_equal(pool.apply(np.sqrt, x, chunks=4), np.sqrt(x))))
            pool.shutdown(wait=True)
            print("shut down", flush=True)
        """
    )
    assert _lines(r) == ["timed out", "[1, 2, 3]", "[4]", "True", "shut down"], r.stderr


def test_shutdown_cancel_futures_kills_a_worker_that_never_returns() -> None:
    r = _run(
        """
        import numpool, funcs
        if __name__ == "__main__":
            pool = numpool.Pool("processes", workers=1)
            f = pool.submit(funcs.forever)
            queued = pool.submit(abs, -1)
            pool.shutdown(wait=True, cancel_futures=True)
            print(f.done() and type(f.exception(timeout=0)).__name__, flush=True)
            print(queued.done(), flush=True)
        """
    )
    assert _lines(r) == ["BrokenProcessPool", "True"], r.stderr


# --- Ctrl-C on threads --------------------------------------------------------------------


def test_ctrl_c_on_threads_leaves_a_stuck_thread_behind_and_the_process_exits() -> None:
    r = _run(
        """
        import threading, numpy as np, numpool, funcs
        if __name__ == "__main__":
            x = np.linspace(0, 1, 10_000)
            pool = numpool.Pool("threads", workers=2)
            try:
                pool.apply(funcs.interrupt_then_forever, x, chunks=4)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            stuck = [t for t in threading.enumerate() if t.name.startswith("numpool")]
            print("left behind", bool(stuck) and all(t.daemon for t in stuck), flush=True)
            print(bool(np.array_equal(pool.apply(np.sqrt, x, chunks=4), np.sqrt(x))))
            print(list(pool.map(abs, [-1, -2])), flush=True)
            pool.shutdown(wait=True)
            y = numpool.apply(np.sqrt, x, backend="threads", workers=2, chunks=4)
            print(bool(np.array_equal(y, np.sqrt(x))), flush=True)
        """
    )
    assert _lines(r) == ["interrupted", "left behind True", "True", "[1, 2]", "True"], r.stderr


# --- shutdown while another thread is mid-call -----------------------------------------------


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_shutdown_during_a_call_in_another_thread_starts_nothing_after(
    backend: str, tmp_path: Path
) -> None:
    marker = str(tmp_path / "running")
    r = _run(
        f"""
        import os, threading, time, numpy as np, numpool, funcs
        if __name__ == "__main__":
            pool = numpool.Pool({backend!r}, workers=2)
            got = []
            def call():
                try:
                    pool.map_arrays(funcs.mark_then_sleep, [np.ones(2)] * 5000,
                                    [{marker!r}] * 5000, chunksize=1)
                    got.append("finished")
                except Exception as e:
                    got.append(type(e).__name__ + ": " + str(e))
            t = threading.Thread(target=call)
            t.start()
            while not os.path.exists({marker!r}):
                time.sleep(0.01)
            pool.shutdown(wait=True)
            t.join()
            print(got[0], flush=True)
            b = pool._backends.peek({backend!r})
            b.start_soon()
            try:
                b.submit(abs, -1)
            except RuntimeError:
                print("refused", flush=True)
            try:
                pool.map_arrays(abs, [-1, -2])
            except RuntimeError:
                print("refused", flush=True)
            if {backend!r} == "processes":
                print("no executor", b._executor is None and b._starter is None, flush=True)
        """
    )
    lines = _lines(r)
    assert lines[0].startswith("RuntimeError: cannot schedule new"), r.stderr
    assert lines[1:3] == ["refused", "refused"], r.stderr
    assert lines[3:] == (["no executor True"] if backend == "processes" else []), r.stderr


def test_the_daemonic_check_waits_for_an_import_of_multiprocessing_under_way() -> None:
    """backend='auto' asks whether this process may start workers while a thread that
    starts them in the background may be importing multiprocessing: the check met a
    partly run ``multiprocessing.process`` (AttributeError: no current_process). Here
    that import is held halfway, deterministically, by an import hook: the check
    waits for it, then answers."""
    code = r"""
import importlib.abc, importlib.machinery, sys, threading
started, go = threading.Event(), threading.Event()

class Held(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name != "multiprocessing.process":
            return None
        sys.meta_path.remove(self)
        self.real = importlib.machinery.PathFinder.find_spec(name, path)
        return importlib.machinery.ModuleSpec(name, self, origin=self.real.origin)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        started.set()
        go.wait()  # (in sys.modules, not yet run)
        module.__spec__ = self.real
        self.real.loader.exec_module(module)

import numpy, numpool
from numpool.backends import processes
if "multiprocessing.process" in sys.modules:
    sys.exit(print("imported already"))
sys.meta_path.insert(0, Held())
threading.Thread(target=lambda: __import__("multiprocessing.process")).start()
started.wait()
threading.Timer(0.2, go.set).start()
print(repr(processes.daemonic()))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if r.stdout.strip() == "imported already":
        pytest.skip("numpy or numpool imported multiprocessing at import here")
    assert r.stdout.strip() == "None", r.stdout
