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
    assert shm.parse_name(f"numpool-{dead}-{HEX}") == dead
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
