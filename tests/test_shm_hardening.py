"""The shared-memory layer against what others leave in /dev/shm, owners that only look
dead, many small arrays, and failures mid-map (see numpool.shm, backends/_transport)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from numpool import shm

TESTS = Path(__file__).parent
HEX = "0123456789abcdef"


def _dead_pid() -> int:
    """A pid no process can have: the kernel hands out pids below pid_max."""
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def _run(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter (tests/ on the path); its stdout. It must
    exit 0 and write nothing to stderr."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(TESTS),
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
            **(env or {}),
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A shared-memory and a spill directory of this test's own (the machine's
    /dev/shm may hold other people's files, which the tests must not touch)."""
    d, s = tmp_path / "shm", tmp_path / "spill"
    d.mkdir()
    s.mkdir()
    monkeypatch.setenv("NUMPOOL_SHM_DIR", str(d))
    monkeypatch.setenv("NUMPOOL_SPILL_DIR", str(s))
    return d, s


# --- 1. strangers in the shared-memory directory ------------------------------------------


def _strangers(d: Path, dead: int) -> dict[str, Path]:
    """Entries numpool must leave alone, next to nothing of its own."""
    made = {
        "huge pid": d / f"numpool-99999999999999999999-{HEX}",
        "unicode digit": d / f"numpool-\u00b2-{HEX}",
        "leading zero": d / f"numpool-0{dead}-{HEX}",
        "upper hex": d / f"numpool-{dead}-{HEX.upper()}",
    }
    for p in made.values():
        p.write_bytes(b"x")
    made["directory"] = d / f"numpool-{dead}-{'1' * 16}"
    made["directory"].mkdir()
    (made["directory"] / "inside").write_bytes(b"keep")
    target = d / "target"
    target.write_bytes(b"keep")
    made["symlink"] = d / f"numpool-{dead}-{'2' * 16}"
    made["symlink"].symlink_to(target)
    made["target"] = target
    if os.geteuid() == 0:  # a file of another user (we can give one away as root)
        made["other uid"] = d / f"numpool-{dead}-{'3' * 16}"
        made["other uid"].write_bytes(b"x")
        os.chown(made["other uid"], 65534, 65534)
    return made


def _orphan(d: Path, dead: int, fill: str = "4") -> Path:
    """A segment as a killed numpool process leaves it."""
    p = d / f"numpool-{dead}-{fill * 16}"
    p.write_bytes(b"\0" * 4096)
    os.chmod(p, 0o600)
    return p


def test_names_are_numpool_names_exactly() -> None:
    dead = _dead_pid()
    assert shm.parse_name(f"numpool-{dead}-{HEX}") == (dead, None, False)
    assert shm.parse_name(f"numpool-{dead}-{HEX[:12]}-{HEX}") == (dead, HEX[:12], False)
    assert shm.parse_name(f"numpool-{dead}-{HEX[:12]}.lock") == (dead, HEX[:12], True)
    assert not shm.is_numpool_name(f"numpool-{dead}-{HEX[:12]}.lock"), "not a segment"
    for name in [
        f"numpool-99999999999999999999-{HEX}",
        f"numpool-{shm.PID_MAX + 1}-{HEX}",
        f"numpool-\u00b2-{HEX}",
        f"numpool-\u0661\u0662-{HEX}",  # Arabic-Indic digits
        f"numpool-0-{HEX}",
        f"numpool-012-{HEX}",
        f"numpool-+12-{HEX}",
        f"numpool-12-{HEX}\n",
        f"numpool-12-{HEX.upper()}",
        f"numpool-12-{HEX}0",
        f"numpool-12-{HEX[:11]}-{HEX}",
        f"numpool-12-{HEX}.lock",
        f"numpool-12-{HEX[:12]}.lock\n",
    ]:
        assert shm.parse_name(name) is None, name
        assert not shm.is_numpool_name(name)
        assert shm.owner_of(name) is None


def test_strangers_never_disturb_share_sweep_or_doctor(private_dirs: tuple[Path, Path]) -> None:
    """Files others put in the directory (a huge pid, a Unicode digit), a directory, a
    symlink, another user's file: share() (whose first segment sweeps), sweep() and
    ``numpool doctor [--clean]`` neither fail nor stop on them, remove the real orphan
    next to them, and leave them all as they were."""
    d, _ = private_dirs
    dead = _dead_pid()
    strangers = _strangers(d, dead)

    orphan = _orphan(d, dead)
    out = _run(
        """
        import numpy as np, numpool
        a = numpool.share(np.arange(5.0))
        print(a.sum())
        a.close()
        """
    )
    assert out.split() == ["10.0"]
    assert not orphan.exists(), "the first segment's sweep removed the orphan"

    orphan = _orphan(d, dead)
    assert str(orphan) in shm.orphans()
    assert shm.sweep() == [str(orphan)]
    assert not orphan.exists()

    orphan = _orphan(d, dead)
    listed = _run("from numpool import doctor; doctor.main(False, True)")
    assert str(orphan) in listed and "Traceback" not in listed
    assert orphan.exists(), "listing removes nothing"
    cleaned = subprocess.run(
        [sys.executable, "-m", "numpool", "doctor", "--clean"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert "removed 1" in cleaned.stdout, cleaned.stdout
    assert not orphan.exists()

    for what, p in strangers.items():
        assert os.path.lexists(p), f"the {what} was removed"
    assert (strangers["directory"] / "inside").read_bytes() == b"keep"
    assert strangers["target"].read_bytes() == b"keep"
    assert strangers["symlink"].is_symlink()


# --- 2. liveness by lock, not by pid alone ------------------------------------------------


def _owned(d: Path, pid: int) -> set[str]:
    """Names in ``d`` of owner ``pid`` (segments and lock file)."""
    return {n for n in os.listdir(d) if (p := shm.parse_name(n)) is not None and p.pid == pid}


def test_a_held_lock_keeps_segments_whose_pid_looks_dead(private_dirs: tuple[Path, Path]) -> None:
    """What a numpool process in another PID namespace looks like from here: its pid
    names no process of ours, but it holds its lock. Its segment stays; once the
    lock is free (the owner died), the sweep removes the segment, then the lock file."""
    import fcntl

    d, _ = private_dirs
    dead, token = _dead_pid(), "0a1b2c3d4e5f"
    lock = d / shm.lock_name(dead, token)
    seg = d / f"numpool-{dead}-{token}-{HEX}"
    seg.write_bytes(b"\0" * 4096)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # flock locks belong to an open file description: the sweep opens its own,
        # so it cannot take this one while this descriptor holds it
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert shm.sweep() == []
        assert seg.exists() and lock.exists()
        assert all(e.alive for e in shm.scan())
    finally:
        os.close(fd)
    assert shm.sweep() == [str(seg), str(lock)]
    assert not seg.exists() and not lock.exists()


def test_a_live_process_in_another_namespace_keeps_its_segments(
    private_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real numpool process holds its lock; a sweeper to which every pid looks dead
    (as in another PID namespace) spares its segments, yet removes a segment named
    the old way (no lock) whose pid looks dead."""
    d, _ = private_dirs
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, numpy as np, numpool\n"
            "a = numpool.share(np.ones(1000)); print(a.segment_name, flush=True)\n"
            "sys.stdin.read(); print(a.sum())",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        name = child.stdout.readline().strip()
        parsed = shm.parse_name(name)
        assert parsed is not None and parsed.pid == child.pid and parsed.token is not None
        assert (d / shm.lock_name(child.pid, parsed.token)).exists()
        old = _orphan(d, child.pid, fill="5")  # no lock: only its pid can tell
        monkeypatch.setattr(shm, "is_alive", lambda pid: False)
        assert shm.sweep() == [str(old)]
        assert (d / name).exists()
        out, _ = child.communicate("", timeout=60)
        assert out.split() == ["1000.0"]
    finally:
        child.kill()
        child.wait()
    assert not _owned(d, child.pid), "a clean exit removes the segments and the lock file"


def test_a_killed_process_segments_and_lock_file_are_swept(
    private_dirs: tuple[Path, Path],
) -> None:
    import signal

    d, _ = private_dirs
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, numpy as np, numpool\n"
            "a = numpool.share(np.ones(1000)); b = numpool.share(np.ones(10))\n"
            "os.kill(os.getpid(), signal.SIGKILL)",
        ],
        stderr=subprocess.PIPE,
    )
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, err
    left = _owned(d, p.pid)
    assert sum(n.endswith(".lock") for n in left) == 1 and len(left) == 3, left
    assert sorted(shm.orphans()) == sorted(str(d / n) for n in left)
    _run("import numpy as np, numpool; numpool.share(np.ones(10)).close()")
    assert not _owned(d, p.pid), "the next numpool process swept the segments and the lock"


# --- 3. many small arrays -----------------------------------------------------------------

_LIMIT = """
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, ({n}, {n}))
import os, numpy as np, numpool
"""


def test_a_map_over_100k_tiny_arrays_fits_in_256_descriptors(
    private_dirs: tuple[Path, Path],
) -> None:
    """Small arguments and results travel pickled in the task messages: no segment,
    no file, per array."""
    d, s = private_dirs
    out = _run(
        _LIMIT.format(n=256)
        + """
if __name__ == "__main__":
    a = [np.arange(3.0) + i for i in range(100_000)]
    r = numpool.map(np.add, a, a, backend="processes")
    assert len(r) == len(a)
    assert all(np.array_equal(x, y + y) for x, y in zip(r, a)), "wrong results"
    print("ok", os.getpid())
""",
        timeout=300,
    )
    word, pid = out.split()
    assert word == "ok"
    assert not _owned(d, int(pid)) and not _owned(s, int(pid))


def test_1100_shared_arrays_and_map_results_fit_in_1024_descriptors(
    private_dirs: tuple[Path, Path],
) -> None:
    """Mappings keep no descriptor: 1100 arrays in shared memory, alive at once."""
    d, s = private_dirs
    out = _run(
        _LIMIT.format(n=1024)
        + """
if __name__ == "__main__":
    shared = [numpool.share(np.full(10, float(i))) for i in range(1100)]
    a = [np.full(2048, float(i)) for i in range(1100)]  # 16 KiB: through segments
    r = numpool.map(np.negative, a, backend="processes")
    assert all(type(x) is np.ndarray for x in r)
    assert all(np.array_equal(x, -y) for x, y in zip(r, a)), "wrong results"
    assert all(x[0] == i for i, x in enumerate(shared))
    print("ok", os.getpid())
""",
        timeout=300,
    )
    word, pid = out.split()
    assert word == "ok"
    assert not _owned(d, int(pid)) and not _owned(s, int(pid))


# --- 4. a task fails after others returned arrays -----------------------------------------

_FAILING_MAP = """
import gc, os, time, numpy as np, numpool
from numpool import shm

def f(a, i):
    if i == 7:
        raise ValueError("task seven")
    time.sleep(0.01)
    return np.outer(a, a) if i % 2 else a * 2  # 80 KB (a segment of its own) or 8 KB

if __name__ == "__main__":
    a = [np.ones(1000) for _ in range(40)]
    # one worker: it runs tasks in the order sent, so once a later call is done, so
    # is every batch of the failed call that was already on its way to it
    with numpool.Pool("processes", workers=1) as pool:
        for _ in range(2):
            try:
                pool.map_arrays(f, a, range(40), chunksize=4)
            except ValueError as e:
                assert "task seven" in str(e)
            else:
                raise AssertionError("no error")
        pool.map_arrays(np.negative, [np.ones(1)] * 2, chunksize=1)
        gc.collect()
        me = f"numpool-{{os.getpid()}}-"
        names = {{n for n in os.listdir(shm.shm_dir()) if n.startswith(me)}}
        locks = {{n for n in names if n.endswith(".lock")}}
        print("left", len(names - shm.arena().idle_names() - locks))
        print(os.getpid(), flush=True)
        {then}
"""


@pytest.mark.parametrize("then", ["pass", "pool.map_arrays(f, a, range(40), chunksize=4)"])
def test_a_failed_map_leaves_no_segment(private_dirs: tuple[Path, Path], then: str) -> None:
    """A processes map whose task 7 raises after other tasks returned arrays (in
    their slots, or in segments the workers made): right after the error nothing of
    the call is left but idle arena segments; after the program exits (normally, or
    by the error itself), nothing at all."""
    d, s = private_dirs
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FAILING_MAP.format(then=then))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(TESTS),
    )
    lines = proc.stdout.split("\n")
    assert lines[0] == "left 0", proc.stdout + proc.stderr
    pid = int(lines[1])
    if then == "pass":
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 1 and "task seven" in proc.stderr, proc.stderr
    assert not _owned(d, pid) and not _owned(s, pid)
