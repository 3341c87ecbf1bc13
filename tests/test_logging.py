"""numpool logs through logging.getLogger("numpool"), and prints nothing unless the
application configures logging."""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import funcs
import numpool
from helpers import without_tracker_noise


def test_auto_logs_its_decisions_at_debug(
    caplog: pytest.LogCaptureFixture, handoffs_free: object
) -> None:
    """Every later call's decision is logged at DEBUG (the profile passed in: on some
    machines the measured one makes np.sqrt over 200k certain serial, never revisited
    and so never logged)."""
    x = np.arange(200_000.0)
    with caplog.at_level(logging.DEBUG, logger="numpool"), numpool.Pool("auto") as pool:
        for _ in range(3):
            pool.apply(np.sqrt, x)
    decisions = [r for r in caplog.records if r.name == "numpool" and "auto:" in r.message]
    assert decisions and all(r.levelno == logging.DEBUG for r in decisions)
    assert "sqrt" in decisions[0].message and "predicted" in decisions[0].message


def test_a_restart_is_a_warning(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    marker = str(tmp_path) + "/died"  # die_once: the first block dies, once
    x = np.arange(10_000.0)
    with caplog.at_level(logging.WARNING, logger="numpool"):
        y = numpool.apply(
            functools.partial(funcs.die_once, marker=marker), x, backend="processes", retries=1
        )
    assert np.array_equal(y, x * 2)
    assert any("worker died" in r.message for r in caplog.records), caplog.records


def test_nothing_is_printed_without_logging_configured() -> None:
    code = """
        import functools, numpy as np, numpool, funcs
        x = np.arange(10_000.0)
        die = functools.partial(funcs.die_once, marker="MARK")
        numpool.apply(die, x, backend="processes", retries=1)
        for _ in range(3):
            numpool.apply(np.sqrt, x)
    """
    import tempfile

    here = Path(__file__).parent
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code).replace("MARK", d + "/died")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=here,
        )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and without_tracker_noise(p.stderr) == "", p.stdout + p.stderr
