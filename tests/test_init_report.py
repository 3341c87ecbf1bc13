"""The report a worker process leaves when its Pool(initializer=) raises
(``_worker.leave_init_report``), and how the parent reads it
(``_worker.take_init_report``, through ``processes._death``).

It lives in the temporary directory, named by the worker's pid, which the
system reuses and other users share: a report must name the cause of no other
death (seen: a SIGKILL reported as an earlier test's failing initializer), and
nothing another user put there may be followed, overwritten or believed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from numpool.backends import _worker
from numpool.backends._worker import INIT_FAILED, init_report
from numpool.backends.processes import _death

#: a pid no live process of the test has (the report's name is all that matters)
PID = 4_000_000 + os.getpid() % 100_000


@pytest.fixture
def report() -> Iterator[Path]:
    path = Path(init_report(PID))
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def test_the_initializers_report_names_the_cause_and_is_taken(report: Path) -> None:
    report.write_text("'boom' raised ValueError: no")
    text = _death(PID, INIT_FAILED)
    assert "initializer 'boom' raised ValueError: no" in text
    assert not report.exists()


@pytest.mark.parametrize("code", [-9, -11, 0, 3])
def test_a_report_left_behind_names_no_other_death(report: Path, code: int) -> None:
    """A report an earlier worker of the same pid left is not read for a death by a
    signal or another exit code (nor removed: it is not this death's)."""
    report.write_text("'boom' raised ValueError: stale")
    text = _death(PID, code)
    assert "initializer" not in text and "stale" not in text
    assert ("SIGKILL" in text) == (code == -9)
    assert report.exists()


def test_an_exit_for_a_failed_initializer_without_its_report_says_so(report: Path) -> None:
    text = _death(PID, INIT_FAILED)
    assert f"code {INIT_FAILED}" in text and "initializer" in text


def test_a_link_at_the_reports_name_is_not_followed(
    report: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me")
    report.symlink_to(target)
    assert _death(PID, INIT_FAILED).endswith("(its traceback is on stderr)")  # not believed
    monkeypatch.setattr(os, "getpid", lambda: PID)
    _worker.leave_init_report("'boom' raised ValueError: fresh")
    assert target.read_text() == "keep me"
    assert not report.is_symlink() and report.read_text() == "'boom' raised ValueError: fresh"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file of another user's")
def test_a_report_of_another_users_is_not_believed(report: Path) -> None:
    report.write_text("'boom' raised ValueError: planted")
    os.chown(report, 65534, -1)
    assert "planted" not in _death(PID, INIT_FAILED)


def test_a_fifo_at_the_reports_name_does_not_hang_the_parent(report: Path) -> None:
    """Another user's FIFO there would block a plain open for good."""
    os.mkfifo(report)
    said: list[str] = []
    t = threading.Thread(target=lambda: said.append(_death(PID, INIT_FAILED)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "reading the report blocked on a FIFO"
    assert said and "could not start" not in said[0]
