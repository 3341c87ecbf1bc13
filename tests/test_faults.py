"""Faults (issue 5): killed workers, retries, Ctrl-C, orphans of a killed parent, a
small /dev/shm, functions that cannot reach a process, and a soak under all of it."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import funcs
import numpool
from helpers import segments, without_tracker_noise
from numpool import shm

TESTS = Path(__file__).parent


def _run(code: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,  # type: ignore[arg-type]
    )


def _owned_by(pid: int) -> set[str]:
    return segments(owner=pid)


# --- a worker killed mid-task -----------------------------------------------------------


def test_killed_worker_names_the_signal_the_cause_and_the_block() -> None:
    before = segments()
    with numpool.Pool("processes", workers=2) as pool:
        t = time.monotonic()
        with pytest.raises(numpool.WorkerCrashedError) as info:
            pool.apply(funcs.die, np.linspace(0, 1, 1000), chunks=4)
        assert time.monotonic() - t < 5
        text = str(info.value)
        assert "SIGKILL" in text and "out-of-memory" in text and "block" in text, text
        assert "retries" in text  # the way out is named
        x = np.linspace(0, 1, 1000)
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))  # fresh workers
    assert segments() - before <= shm.arena().idle_names()


def test_worker_exit_code_is_reported() -> None:
    with (
        numpool.Pool("processes", workers=2) as pool,
        pytest.raises(numpool.WorkerCrashedError, match="exited with code 3"),
    ):
        pool.apply(funcs.exit_code, np.linspace(0, 1, 100), chunks=2)


def test_retries_run_lost_blocks_again_on_fresh_workers(tmp_path: Path) -> None:
    x = np.linspace(0, 1, 10_000)
    func = functools.partial(funcs.die_once, marker=str(tmp_path / "died"))
    with numpool.Pool("processes", workers=2, retries=1) as pool:
        y = pool.apply(func, x, chunks=8)
        assert np.array_equal(y, x * 2)
        assert (tmp_path / "died").exists()
        stats = pool.last_stats
        assert stats is not None and stats.retries == 1 and "ran again 1x" in str(stats)


def test_retries_give_up_on_a_task_that_always_kills() -> None:
    a = [np.ones(3)] * 6
    kill = [False, False, True, False, False, False]
    t = time.monotonic()
    with numpool.Pool("processes", workers=2, retries=2) as pool:
        with pytest.raises(numpool.WorkerCrashedError, match="died again after 2 retries"):
            pool.map_arrays(funcs.die_task, a, kill, chunksize=1)
        assert [r.tolist() for r in pool.map_arrays(funcs.die_task, a, [False] * 6)] == [
            [2.0] * 3
        ] * 6
    assert time.monotonic() - t < 20


def test_retries_is_checked() -> None:
    with pytest.raises(ValueError, match="retries"):
        numpool.Pool("threads", retries=-1)
    with pytest.raises(ValueError, match="absurd"):
        numpool.Pool("threads", workers=10**6)


# --- Ctrl-C -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["serial", "threads", "processes", "pickle", "auto"])
@pytest.mark.parametrize("kind", ["apply", "map"])
def test_ctrl_c_returns_within_2_s_and_leaves_nothing(backend: str, kind: str) -> None:
    """SIGINT while a long call runs (20 s of GIL-holding work): KeyboardInterrupt in
    the caller within 2 s, the workers stop, and no segment of the caller is left."""
    code = f"""
        import sys, time, numpy as np, numpool, funcs
        if __name__ == "__main__":
            pool = numpool.Pool({backend!r}, workers=2)
            x = np.zeros(200_000)  # 100 us per row: 20 s
            pool.map_arrays(funcs.gil_sleep_task, [np.ones(2)] * 4)  # workers up
            print("go", flush=True)
            try:
                if {kind!r} == "apply":
                    pool.apply(funcs.gil_sleep, x, chunks=64)
                else:
                    pool.map_arrays(funcs.gil_sleep_task, [np.zeros(100)] * 10_000)
            except KeyboardInterrupt:
                print("interrupted", time.monotonic(), flush=True)
            pool.shutdown()
    """
    p = _run(code, cwd=str(TESTS))
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "go", p.stderr.read() if p.stderr else ""
    time.sleep(0.5)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()  # a hang must not outlive the test (nor its workers: see _exit_with)
    assert "interrupted" in out, err
    caught = float(out.split("interrupted")[1].split()[0])
    assert caught - sent < 2.0, f"KeyboardInterrupt after {caught - sent:.2f} s"
    assert p.returncode == 0, err
    assert not _owned_by(p.pid)


# --- the parent killed --------------------------------------------------------------------


def test_segments_of_a_killed_parent_are_swept_by_the_next_numpool_process() -> None:
    p = _run(
        """
        import os, signal, numpy as np, numpool
        a = numpool.share(np.ones(100_000))
        print(a.segment_name, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out, _ = p.communicate(timeout=30)
    name = out.strip()
    assert p.returncode == -signal.SIGKILL
    assert name in segments(owner=p.pid), "the SIGKILLed process left its segment"
    assert os.path.join(shm.shm_dir(), name) in shm.orphans()
    q = _run("import numpy as np, numpool; numpool.share(np.ones(10)).close()")
    assert q.wait(timeout=30) == 0
    assert name not in segments(owner=p.pid), "the next numpool process swept it"


def test_workers_of_a_killed_parent_exit_on_their_own() -> None:
    import psutil

    p = _run(
        """
        import os, signal, numpy as np, numpool, funcs
        if __name__ == "__main__":
            pool = numpool.Pool("processes", workers=2)
            print(*pool.map_arrays(funcs.pid, range(8)), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """,
        cwd=str(TESTS),
    )
    out, err = p.communicate(timeout=60)
    workers = {int(w) for w in out.split()}
    assert workers and p.returncode == -signal.SIGKILL, err
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(psutil.pid_exists(w) for w in workers):
        time.sleep(0.1)
    alive = [w for w in workers if psutil.pid_exists(w) and psutil.Process(w).status() != "zombie"]
    assert not alive, f"workers outlived their pool's owner: {alive}"


def test_the_sweep_spares_live_owners() -> None:
    a = numpool.share(np.ones(1000))
    assert a.segment_name is not None
    assert not any(a.segment_name in o for o in shm.orphans())
    shm.sweep()
    assert a.segment_name in segments()
    a.close()


# --- a small /dev/shm --------------------------------------------------------------------


def test_small_shm_spills_to_file_backed_maps_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMPOOL_SHM_LIMIT", "64K")  # a tiny /dev/shm, by configuration
    monkeypatch.setenv("NUMPOOL_SPILL_DIR", str(tmp_path))
    monkeypatch.setattr(shm, "_warned", False)
    x = np.random.default_rng(0).random(1_000_000)  # 8 MB
    with numpool.Pool("processes", workers=2) as pool:
        with pytest.warns(numpool.SharedMemoryWarning, match="NUMPOOL_SHM_LIMIT") as record:
            y = pool.apply(np.exp, x, chunks=4)
            r = pool.map_arrays(np.multiply, [x] * 3, [2.0, 3.0, 4.0])
        assert len(record) == 1, "one warning, not one per segment"
        assert "--shm-size" in str(record[0].message)
        assert np.array_equal(y, np.exp(x))
        assert all(np.array_equal(ri, x * k) for ri, k in zip(r, (2, 3, 4), strict=True))
        del y, r
    shm.arena().clear()
    assert not list(tmp_path.iterdir()), "spilled segments are removed like the others"


def test_nothing_fits_is_a_clear_error_before_copying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMPOOL_SPILL_DIR", str(tmp_path))
    monkeypatch.setattr(shm, "free_bytes", lambda d: 1 << 20)  # 1 MiB free everywhere
    with pytest.raises(numpool.SharedMemoryError, match="spill directory") as info:
        numpool.share(np.ones(1_000_000))
    assert "--shm-size" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_shm_limit_is_parsed() -> None:
    for raw, want in [("64M", 64 << 20), ("1g", 1 << 30), ("512KiB", 512 << 10), ("4096", 4096)]:
        os.environ["NUMPOOL_SHM_LIMIT"] = raw
        try:
            assert shm.shm_limit() == want, raw
        finally:
            del os.environ["NUMPOOL_SHM_LIMIT"]


def test_structured_dtypes_cross_processes_bit_for_bit() -> None:
    dt = np.dtype([("a", "<i4"), ("b", "<f8")])
    x = np.zeros(1000, dt)
    x["a"] = np.arange(1000)
    x["b"] = np.linspace(0, 1, 1000)
    with numpool.Pool("processes", workers=2) as pool:
        y = pool.apply(funcs.identity, x, chunks=4)
    assert y.dtype == dt and y.tobytes() == x.tobytes()


# --- soak ---------------------------------------------------------------------------------


_SOAK = """
import gc, json, os, time
import numpy as np, psutil
import funcs, numpool
from helpers import segments
from numpool.backends.processes import join_retired

rng = np.random.default_rng(5)
me = psutil.Process()
x = rng.random(20_000)
a = [rng.random(1000) for _ in range(8)]
counts = {"ok": 0, "failed": 0, "killed": 0}
with numpool.Pool("processes", workers=2) as pool:

    def one(i):
        r = rng.random()
        try:
            if r < 0.02:
                pool.apply(funcs.die, x, chunks=4)
            elif r < 0.10:
                pool.map_arrays(funcs.fail_task, a, range(8))
            elif i % 2:
                assert np.array_equal(pool.apply(np.sqrt, x, chunks=4), np.sqrt(x))
            else:
                res = pool.map_arrays(np.add, a, a)
                assert all(np.array_equal(q, v + v) for q, v in zip(res, a, strict=True))
            counts["ok"] += 1
        except numpool.WorkerCrashedError:
            counts["killed"] += 1
        except KeyError:
            counts["failed"] += 1

    def settled():
        # Every worker running (the executor starts them on demand, and each holds
        # pipes), the executors that crashes broke done closing theirs, and the
        # figures then.
        pool.map_arrays(funcs.gil_sleep_task, [np.ones(2)] * 8, chunksize=1)
        join_retired(timeout=30)
        gc.collect()  # (a traceback's cycle may hold a mapping)
        return len(segments()), len(os.listdir("/proc/self/fd")), me.memory_info().rss

    for i in range(100):  # warm: workers, arena, mappings
        one(i)
    base = settled()
    t = time.monotonic()
    for i in range(1000):
        one(i)
    spent = time.monotonic() - t
    end = settled()
print(json.dumps({"counts": counts, "spent": spent, "base": base, "end": end}))
"""


def test_soak_1000_calls_with_failures_and_kills() -> None:
    """1000 apply/map calls on processes with random task failures and worker kills:
    no growth of /dev/shm entries or open file descriptors, parent memory within 10%.

    It runs in a fresh interpreter, so that what earlier tests left running (a
    cluster closing, an executor's threads) cannot move its figures."""
    import json

    proc = _run(_SOAK)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    counts, base, end = got["counts"], got["base"], got["end"]
    print(f"soak: {counts} in {got['spent']:.1f} s; segments/fds/rss {base} -> {end}")
    assert not without_tracker_noise(err).strip(), err
    assert counts["killed"] >= 5 and counts["failed"] >= 30 and counts["ok"] >= 800
    assert end[0] <= base[0], f"/dev/shm entries grew: {base[0]} -> {end[0]}"
    assert end[1] <= base[1], f"open file descriptors grew: {base[1]} -> {end[1]}"
    assert end[2] <= base[2] * 1.10, f"parent memory grew {end[2] / base[2] - 1:.0%}"
