"""The machine profile: measured here, cached per machine and version, re-measurable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from numpool.doctor import time_processes
from numpool.planner import profile
from numpool.planner.profile import Profile, ProfileStore


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NUMPOOL_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_measured_on_first_need_then_read_from_the_cache(cache: Path) -> None:
    """The first store measures and writes the file; a second store reads it back."""
    first = ProfileStore().get()
    assert first.thread_wake_s > 0 and first.thread_task_s > 0
    assert first.copy_bytes_per_s > 0 and first.fault_bytes_per_s > 0
    assert first.process_start_s is None and first.process_task_s is None
    (path,) = cache.glob("profile-*.json")
    assert path.name == f"profile-{profile.machine_key()}.json"
    doc = json.loads(path.read_text())
    assert doc["profile"] == first.as_dict()
    assert ProfileStore().get() == first  # read, not measured: the same figures


def test_a_corrupt_or_foreign_file_is_measured_again(cache: Path) -> None:
    store = ProfileStore()
    path = store.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    for junk in ("{not json", json.dumps({"profile": {"thread_wake_s": -1}}), "[]"):
        path.write_text(junk)
        got = ProfileStore().get()
        assert got.thread_wake_s > 0
        assert json.loads(path.read_text())["profile"]["thread_wake_s"] == got.thread_wake_s


def test_an_unwritable_cache_keeps_the_profile_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NUMPOOL_CACHE_DIR", str(blocker / "sub"))  # a file in the way
    got = ProfileStore().get()
    assert got.thread_wake_s > 0
    assert not (blocker / "sub").exists()


def test_worker_processes_are_recorded_once_and_kept(cache: Path) -> None:
    store = ProfileStore()
    store.override(Profile(1e-4, 1e-5, 1e10, 1e9))
    store.record_processes(0.05, 5e-4)
    assert store.get().process_start_s == 0.05 and store.get().process_task_s == 5e-4
    store.record_processes(9.0, 9.0)  # known already: kept
    assert store.get().process_start_s == 0.05
    again = ProfileStore().get()
    assert again.process_start_s == 0.05 and again.thread_wake_s == 1e-4


def test_a_start_not_timed_leaves_only_the_round_trip(cache: Path) -> None:
    store = ProfileStore()
    store.override(Profile(1e-4, 1e-5, 1e10, 1e9))
    store.record_processes(None, 4e-4)
    assert store.get().process_start_s is None and store.get().process_task_s == 4e-4
    store.record_processes(0.03, 9.0)
    assert store.get().process_start_s == 0.03 and store.get().process_task_s == 4e-4


def test_remeasure_times_worker_processes_too(cache: Path) -> None:
    """With the doctor's timer, remeasure starts real worker processes and times them."""
    got = ProfileStore().remeasure(time_processes, workers=1)
    assert got.processes_known
    assert got.process_start_s > 0 and got.process_task_s > 0  # type: ignore[operator]


def test_remeasure_takes_its_process_timing_from_the_caller(cache: Path) -> None:
    """The planner starts no processes: remeasure records what the given timer returns."""
    asked: list[int] = []
    got = ProfileStore().remeasure(lambda w: (asked.append(w), (0.5, 0.01))[1], workers=3)
    assert asked == [3] and (got.process_start_s, got.process_task_s) == (0.5, 0.01)
    assert not ProfileStore().remeasure(workers=3).processes_known


def test_the_cache_directory_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMPOOL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert profile.cache_dir() == Path("/x/cache/numpool")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert profile.cache_dir() == Path(os.path.expanduser("~/.cache/numpool"))
