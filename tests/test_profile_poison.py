"""Issue 22: the machine profile is untrusted input, read defensively and bounded."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import numpool
from numpool.planner import profile
from numpool.planner.profile import BOUNDS, Profile, ProfileStore

#: a profile a machine could have measured (every figure well inside BOUNDS)
SANE = {
    "thread_wake_s": 5e-5,
    "thread_task_s": 5e-6,
    "copy_bytes_per_s": 5e9,
    "fault_bytes_per_s": 2e9,
    "process_start_s": 0.05,
    "process_task_s": 2e-4,
}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NUMPOOL_CACHE_DIR", str(tmp_path))
    return tmp_path


def _write(path: Path, figures: dict[str, Any]) -> None:
    doc = {"machine_key": profile.machine_key(), "profile": figures}
    path.write_text(json.dumps(doc))
    path.chmod(0o600)


def _sane_figures(got: Profile) -> bool:
    return profile.absurd(got) is None and got.thread_wake_s > 0


def test_a_sane_file_is_read_as_it_is(cache: Path) -> None:
    """The control: a plausible profile of this user's is used, not measured again."""
    path = ProfileStore().path()
    _write(path, SANE)
    assert ProfileStore().get().as_dict() == SANE


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("process_task_s", 1e-300),
        ("process_start_s", 1e-300),
        ("thread_wake_s", 1e-300),
        ("fault_bytes_per_s", 1e-300),
        ("copy_bytes_per_s", 1e300),
        ("thread_task_s", 3600.0),
        ("copy_bytes_per_s", True),
    ],
)
def test_an_absurd_figure_is_measured_again_and_logged(
    cache: Path, caplog: pytest.LogCaptureFixture, name: str, value: float
) -> None:
    """A figure no machine could have makes the whole file void: measured afresh."""
    path = ProfileStore().path()
    _write(path, {**SANE, name: value})
    with caplog.at_level(logging.WARNING, logger="numpool"):
        got = ProfileStore().get()
    assert _sane_figures(got) and got.process_task_s is None  # measured, not read
    assert name in caplog.text and "measuring again" in caplog.text
    assert json.loads(path.read_text())["profile"] == got.as_dict()  # and rewritten


def test_auto_never_runs_on_poisoned_figures(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """auto, given a poisoned cache (1e-300 s round trips, tiny fault bandwidth), runs
    right on figures it measured again, not on the poisoned ones."""
    store = profile.store
    _write(store.path(), {**SANE, "fault_bytes_per_s": 1e-300, "process_task_s": 1e-300})
    store.override(None)
    try:
        x = np.linspace(0, 1, 1 << 20)
        with numpool.Pool("auto", workers=2) as pool:
            y = pool.apply(np.sin, x)
        assert np.array_equal(y, np.sin(x))
        assert profile.absurd(store.get()) is None
    finally:
        monkeypatch.undo()
        store.override(None)


def test_the_bounds_hold_every_figure_and_only_them() -> None:
    """One table bounds every figure of the profile, each with least < most."""
    assert set(BOUNDS) == {f for f in Profile.__dataclass_fields__}
    assert all(0 < least < most < float("inf") for least, most in BOUNDS.values())


def test_a_fifo_in_its_place_does_not_hang(cache: Path) -> None:
    """A FIFO is no profile: read without blocking, measured again, replaced."""
    path = ProfileStore().path()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    got: list[Profile] = []
    t = threading.Thread(target=lambda: got.append(ProfileStore().get()), daemon=True)
    t.start()
    t.join(timeout=120)
    if t.is_alive():  # blocked in open(): let it go, then fail
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(timeout=60)
        pytest.fail("reading the profile blocked on a FIFO")
    assert _sane_figures(got[0])
    assert stat.S_ISREG(path.stat().st_mode)  # replaced by a real profile


def test_a_link_to_dev_zero_reads_nothing(cache: Path) -> None:
    """A symlink to /dev/zero is no profile (it gave MemoryError): measured again."""
    path = ProfileStore().path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/zero")
    assert _sane_figures(ProfileStore().get())
    assert not path.is_symlink() and path.is_file()


def test_a_huge_file_is_not_read_whole(cache: Path) -> None:
    """A regular file far bigger than any profile is refused unread."""
    path = ProfileStore().path()
    path.write_text(json.dumps({"profile": SANE, "pad": "x" * (1 << 20)}))
    path.chmod(0o600)
    assert ProfileStore().get().as_dict() != SANE


def test_a_directory_in_its_place_leaves_no_temporary_files(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It cannot hold the profile: kept in memory, said once, no .tmp left behind."""
    path = ProfileStore().path()
    path.mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="numpool"):
        assert _sane_figures(ProfileStore().get())
        assert _sane_figures(ProfileStore().get())
    assert sorted(p.name for p in cache.iterdir()) == [path.name]
    assert list(path.iterdir()) == []
    assert caplog.text.count("cannot write the machine profile") == 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")
def test_a_file_others_may_write_is_ignored(cache: Path) -> None:
    """Another user could have poisoned a group- or world-writable file: not read."""
    path = ProfileStore().path()
    for mode in (0o666, 0o620):
        _write(path, SANE)
        path.chmod(mode)
        assert ProfileStore().get().as_dict() != SANE


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")
def test_a_file_of_another_user_is_ignored(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile not owned by this user is not read (seen as another uid)."""
    path = ProfileStore().path()
    _write(path, SANE)
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 1)
    assert ProfileStore().get().as_dict() != SANE
