"""Process-pool hangs: a worker killed while idle, a signal handler that raises during a
call, and the per-user process limit (RLIMIT_NPROC) reached.

Whatever could hang runs in a subprocess with a generous timeout: a hang fails the
test instead of the suite. Nothing here measures a time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from helpers import segments

TESTS = Path(__file__).parent
#: how long a subprocess may take before it counts as hung (never a timing)
PATIENCE = 120


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    pid: int


def _run(code: str, prefix: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Ran:
    """Run ``code`` in a fresh interpreter (tests/ on its path, after ``prefix``, a
    command such as setpriv); a hang fails the test, and its process group is killed."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
        **(env or {}),
    }
    p = subprocess.Popen(
        [*prefix, sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(TESTS),
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"hung for {PATIENCE} s; stdout: {out!r}; stderr: {err[-3000:]}")
    return Ran(p.returncode, out, err, p.pid)


def _lines(r: Ran) -> list[str]:
    assert r.returncode == 0, r.stderr
    assert not segments(owner=r.pid), "it left shared-memory segments"
    return r.stdout.splitlines()


# --- a worker killed while the pool is idle ------------------------------------------------

#: kill one worker of an idle pool (each in turn: the one that dies holding the call
#: queue's lock leaves the other stuck), then what ``{then}`` says, ten times
_KILL_IDLE = """
    import os, signal, numpy as np, numpool
    if __name__ == "__main__":
        x = np.linspace(0, 1, 1000)
        for i in range(10):
            pool = numpool.Pool("processes", workers=2, retries={retries})
            assert np.array_equal(pool.apply(np.exp, numpool.share(x), chunks=2), np.exp(x))
            pids = sorted(pool._backends.get("processes")._executor._processes)
            os.kill(pids[i % 2], signal.SIGKILL)
            {then}
        print("done", flush=True)
"""


def test_shutdown_after_an_idle_worker_was_killed_does_not_hang() -> None:
    """The OOM killer takes an idle worker; shutdown() must end (it hung 3 runs in 6)."""
    r = _run(_KILL_IDLE.format(retries=0, then="pool.shutdown()"))
    assert _lines(r) == ["done"], r.stderr


def test_shutdown_after_a_refused_call_and_a_killed_worker_does_not_hang() -> None:
    """The kill lands while a call is refused up front (retries with an in-place out=):
    the refusal is the same, and the next shutdown() ends."""
    then = """
            try:
                y = x.copy()
                pool.apply(np.exp, y, out=y)
            except ValueError as e:
                assert "retries=2 with an out= that overlaps x" in str(e), e
            else:
                raise AssertionError("not refused")
            pool.shutdown()"""
    r = _run(_KILL_IDLE.format(retries=2, then=then.strip()))
    assert _lines(r) == ["done"], r.stderr


#: two pools left open, one idle worker of each killed, then the interpreter's exit;
#: ``{hook}`` runs before the kills
_EXIT_AFTER_KILL = """
    import os, signal, threading, numpy as np, numpool
    def no_threads(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")
    def exiting():
        threading.Thread.start = no_threads
    if __name__ == "__main__":
        x = np.linspace(0, 1, 1000)
        pools = [numpool.Pool("processes", workers=2) for _ in range(2)]
        for pool in pools:
            assert np.array_equal(pool.apply(np.exp, x, chunks=2), np.exp(x))
        pids = [sorted(p._backends.get("processes")._executor._processes) for p in pools]
        {hook}
        os.kill(pids[0][0], signal.SIGKILL)
        os.kill(pids[1][1], signal.SIGKILL)
        print("exiting", flush=True)
"""


def test_exit_without_shutdown_after_an_idle_worker_was_killed_does_not_hang() -> None:
    """The interpreter's exit shuts the pools down too (concurrent.futures joins their
    manager threads), with the same stuck survivor to deal with; six runs."""
    for _ in range(6):
        r = _run(_EXIT_AFTER_KILL.format(hook="pass"))
        assert _lines(r) == ["exiting"], r.stderr


def test_exit_where_no_thread_starts_after_an_idle_worker_was_killed_does_not_hang() -> None:
    """The same exit where no thread can start once it has begun, as on Python
    3.12.0-3.12.2 (CPython gh-113964; numpool's watcher ran in a thread, so the exit
    hung 8 runs in 8 there): the watch runs in the exiting thread. Simulated on every
    version by an exit hook that runs before numpool's (the last registered runs
    first) and makes starting a thread fail as 3.12.1 does."""
    for _ in range(3):
        r = _run(_EXIT_AFTER_KILL.format(hook="threading._register_atexit(exiting)"))
        assert _lines(r) == ["exiting"], r.stderr


# --- an executor left open by func in a worker ---------------------------------------------

#: func starts a ProcessPoolExecutor in its worker and leaves it open, as code does that
#: counts on the exit to shut it down (joblib's loky executor, kept for the next call);
#: then ``{then}``
_LEFT_OPEN = """
    import builtins, concurrent.futures as cf, os, numpool
    def task(i):
        ex = cf.ProcessPoolExecutor(1)
        builtins.left_open = ex  # (kept alive, as a module's executor would be)
        return os.getpid(), ex.submit(abs, -i).result()
    pool = numpool.Pool("processes", workers=2)
    got = list(pool.map(task, range(4), chunksize=1))
    print(all(pid != os.getpid() for pid, _ in got), [r for _, r in got], flush=True)
    {then}
    print("done", flush=True)
"""


@pytest.mark.parametrize("then", ["pool.shutdown()", ""], ids=["shutdown", "exit"])
def test_an_executor_left_open_in_a_worker_does_not_hang_the_end(then: str) -> None:
    """func leaves an executor open in its worker: shutdown() and the exit still end
    (before 3.13 a worker joined its children before their executors were shut
    down, and both hung for good)."""
    r = _run(_LEFT_OPEN.format(then=then))
    assert _lines(r) == ["True [0, 1, 2, 3]", "done"], r.stderr


# --- a worker killed while it sends a result ------------------------------------------------


@pytest.mark.parametrize(
    "stop",
    ["results.close()  # the caller gives up", "pool.shutdown(cancel_futures=True)"],
    ids=["given-up", "shutdown"],
)
def test_a_worker_killed_while_it_sends_a_result_does_not_hang(stop: str, tmp_path: Path) -> None:
    """numpool kills a worker that has sent part of a result (its caller gave up on
    it, or a shutdown cancelled it), with a queued call cancelled: the executor's
    manager thread, which waited for the rest for good, ends; every other call fails
    instead of waiting for good (before 3.12 the thread died at the cancelled one),
    and the exit ends (joblib's suite hung there, aborting calls with big results)."""
    code = f"""
        import os, struct, sys, time, numpool
        def half_sent(path):
            # what a worker killed while it sends a result leaves: part of a message
            frame = sys._getframe()
            while frame.f_code.co_name != "_process_worker":
                frame = frame.f_back
            writer = frame.f_locals["result_queue"]._writer
            os.write(writer.fileno(), struct.pack("!i", 1 << 20) + bytes(100))
            open(path, "w").close()
            time.sleep(600)
        path = {str(tmp_path / "sent")!r}
        pool = numpool.Pool("processes", workers=1)
        results = pool.map(half_sent, [path])
        queued = [pool.submit(abs, -i) for i in range(5)]
        print(queued[3].cancel())  # (behind the one worker's call: not started)
        while not os.path.exists(path):
            time.sleep(0.01)
        {stop}
        for f in queued[:3] + queued[4:]:
            try:
                f.result()
            except Exception as e:  # (killed: BrokenProcessPool; or cancelled)
                print(type(e).__name__)
        pool.shutdown()
        print("done", flush=True)
    """
    lines = _lines(_run(code))
    assert lines[0] == "True" and lines[-1] == "done", lines
    failed = ("BrokenProcessPool", "CancelledError")
    assert len(lines) == 6 and all(name in failed for name in lines[1:5]), lines


def test_a_worker_that_dies_while_it_sends_a_result_fails_the_call(tmp_path: Path) -> None:
    """A worker dies (the OOM killer) after sending part of a result: the call fails as
    when a worker dies at any other moment (Pool.map: BrokenProcessPool), instead of
    waiting for the rest of the result for good."""
    code = f"""
        import os, signal, struct, sys, time, numpool
        def half_sent(path):
            # what a worker killed while it sends a result leaves: part of a message
            frame = sys._getframe()
            while frame.f_code.co_name != "_process_worker":
                frame = frame.f_back
            writer = frame.f_locals["result_queue"]._writer
            os.write(writer.fileno(), struct.pack("!i", 1 << 20) + bytes(100))
            with open(path + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(path + ".tmp", path)
            time.sleep(600)
        path = {str(tmp_path / "pid")!r}
        pool = numpool.Pool("processes", workers=1)
        results = pool.map(half_sent, [path])
        while not os.path.exists(path):
            time.sleep(0.01)
        with open(path) as f:
            os.kill(int(f.read()), signal.SIGKILL)
        try:
            list(results)
        except Exception as e:
            print(type(e).__name__, flush=True)
        pool.shutdown()
    """
    assert _lines(_run(code)) == ["BrokenProcessPool"]


# --- an exception from a signal handler during a call ---------------------------------------


def _until(done: Callable[[], bool], what: str) -> None:
    """Wait for ``done()``; fail with ``what`` if it takes PATIENCE (a hang detector)."""
    deadline = time.monotonic() + PATIENCE
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (waited {PATIENCE} s)")
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    """Whether no process has the id ``pid`` any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_to_sys_exit_during_a_processes_call_exits(tmp_path: Path) -> None:
    """The common ``SIGTERM -> sys.exit(0)`` handler during a call of blocks that sleep:
    the process exits (it waited for every block, 39 s in the issue), with nothing left
    in /dev/shm, and the workers that ran the blocks end."""
    marks = tmp_path / "started"
    marks.mkdir()
    code = f"""
        import os, signal, sys, time, numpy as np, numpool
        def slow(b):
            open(os.path.join({str(marks)!r}, str(os.getpid())), "w").close()
            time.sleep(600)
            return b
        if __name__ == "__main__":
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
            pool = numpool.Pool("processes", workers=2)
            pool.apply(slow, np.linspace(0, 1, 200_000), chunks=2)
            print("finished?", flush=True)
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(TESTS),
        start_new_session=True,
    )
    try:
        # (a fresh pool's first call runs one block first, to measure)
        _until(lambda: bool(os.listdir(marks)) or p.poll() is not None, "no block ran")
        assert p.poll() is None, p.communicate()
        workers = [int(n) for n in os.listdir(marks)]
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"hung for {PATIENCE} s; stdout: {out!r}; stderr: {err[-3000:]}")
    assert p.returncode == 0 and out == "", (out, err)
    assert not segments(owner=p.pid), "it left shared-memory segments"
    _until(lambda: all(_gone(w) for w in workers), "the workers outlived the exit")


def test_an_exception_from_sigalrm_abandons_the_call_and_the_next_is_right() -> None:
    """A SIGALRM handler raises (a timeout) while blocks sleep: the call ends with that
    exception, and the next call does not wait behind the abandoned blocks (18-38 s in
    the issue); its result is NumPy's, bit for bit, and nothing is left in /dev/shm."""
    code = """
        import os, signal, time, numpy as np, numpool
        class Timeout(Exception):
            pass
        armed = []
        def on_alarm(signum, frame):
            if armed:  # (once: the other block's alarm may come after the call)
                armed.clear()
                raise Timeout("too slow")
        def slow(b, caller=os.getpid()):
            os.kill(caller, signal.SIGALRM)
            time.sleep(600)
            return b
        if __name__ == "__main__":
            signal.signal(signal.SIGALRM, on_alarm)
            pool = numpool.Pool("processes", workers=2)
            x = np.linspace(0, 1, 200_000)
            armed.append(True)
            try:
                pool.apply(slow, x, chunks=2)
            except Timeout as e:
                print("abandoned:", e, flush=True)
            y = pool.apply(np.sqrt, x, chunks=2)
            print(y.dtype == x.dtype and y.tobytes() == np.sqrt(x).tobytes(), flush=True)
            pool.shutdown()
    """
    r = _run(code)
    assert _lines(r) == ["abandoned: too slow", "True"], r.stderr


# --- the limit on processes (RLIMIT_NPROC) reached ----------------------------------------

#: run as nobody (root ignores RLIMIT_NPROC), still able to read this Python and the
#: tests (which may sit in a directory only root can read)
_AS_NOBODY = (
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=+dac_override,+dac_read_search",
    "--ambient-caps=+dac_override,+dac_read_search",
)


def test_a_resource_tracker_that_cannot_start_leaves_no_lock_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the limit on processes multiprocessing's resource tracker cannot start. The
    executor's first queue lock, a named semaphore (a file in /dev/shm), was made
    before its registration with the tracker failed, and so was never unlinked: one
    file left per refused start. The tracker is now started first: the start is
    refused, as before, before any lock exists."""
    import errno
    import multiprocessing.synchronize as mp_sync
    from multiprocessing import resource_tracker

    import numpool
    from numpool.backends import processes

    made: list[object] = []
    real_init = mp_sync.SemLock.__init__

    def counted(self: object, *args: object, **kwargs: object) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    def at_the_limit() -> None:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(mp_sync.SemLock, "__init__", counted)
    # (the tracker, and the module's name for its method, which numpool calls)
    monkeypatch.setattr(resource_tracker._resource_tracker, "ensure_running", at_the_limit)
    monkeypatch.setattr(resource_tracker, "ensure_running", at_the_limit)
    monkeypatch.setattr(processes, "_limit_reached", [])  # (auto's memory of it: this test's)
    backend = processes.ProcessesBackend(2, None)
    try:
        with pytest.raises(numpool.BackendUnavailableError, match="ulimit -u"):
            backend.executor()
    finally:
        backend.shutdown()
    assert made == []


@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs Linux, root and setpriv, to run a process as another user",
)
def test_at_the_process_limit_processes_is_refused_clearly_and_auto_skips_it() -> None:
    """With RLIMIT_NPROC reached, starting workers (the first ones: the resource
    tracker and fork server cannot start; later ones: the fork server cannot fork)
    raises BackendUnavailableError naming the limit and the way out, not a fork
    server that "stopped taking requests"; meanwhile auto says processes cannot run,
    and runs the call right."""
    code = """
        import os, resource, signal, time, numpy as np, numpool
        from numpool.backends import _context
        from numpool.backends.processes import ProcessesBackend

        def tasks():  # this user's threads, the limit's count
            n = 0
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        uid = int(f.read().split("\\nUid:")[1].split()[0])
                    if uid == os.getuid():
                        n += len(os.listdir(f"/proc/{pid}/task"))
                except (OSError, IndexError, ValueError):
                    pass
            return n

        def at_limit():  # (the hard limit stays above: it can be raised again)
            n = None
            while n != (n := tasks()):  # (threads of a pool's shutdown may be ending)
                time.sleep(0.1)
            resource.setrlimit(resource.RLIMIT_NPROC, (n, 10_000))

        def refused(pool, cause=""):
            try:
                pool.apply(np.exp, x, chunks=2)
            except numpool.BackendUnavailableError as e:
                return all(s in str(e) for s in ("ulimit -u", "backend='threads'", cause))

        if __name__ == "__main__":
            x = np.linspace(0, 1, 100_000)
            pool = numpool.Pool("processes", workers=2)
            at_limit()
            print("first start refused", refused(pool), flush=True)
            print("unavailable", "limit" in ProcessesBackend.unavailable_here(), flush=True)
            resource.setrlimit(resource.RLIMIT_NPROC, (10_000, 10_000))
            y = pool.apply(np.exp, x, chunks=2)  # (the limit lifted: processes again)
            print("then", np.array_equal(y, np.exp(x)), ProcessesBackend.unavailable_here())
            pool.shutdown()
            # a fork server that starts under the limit (a limit set by `ulimit -u`
            # before Python starts): it starts, then cannot fork (that "stopped taking
            # requests", 5 s later); the old one's workers are gone by then
            server = _context._server._forkserver_pid
            os.kill(server, signal.SIGKILL)
            while open(f"/proc/{server}/stat").read().split(") ")[1][0] != "Z":
                time.sleep(0.01)
            pool = numpool.Pool("processes", workers=2)
            at_limit()
            print("fork refused", refused(pool, "the fork server could not fork"), flush=True)
            resource.setrlimit(resource.RLIMIT_NPROC, (10_000, 10_000))
            with numpool.Pool("auto", workers=2) as auto:
                y, stats = auto.apply_with_stats(np.exp, x)
                print("auto", stats.backend != "processes", np.array_equal(y, np.exp(x)))
                print("plan", "processes cannot run this call" in str(auto.plan(np.exp, x)))
            pool.shutdown()
    """
    r = _run(code, prefix=_AS_NOBODY, env={"OPENBLAS_NUM_THREADS": "1"})
    assert _lines(r) == [
        "first start refused True",
        "unavailable True",
        "then True None",
        "fork refused True",
        "auto True True",
        "plan True",
    ], r.stderr
