"""The numpool command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from numpool.cli import main


def test_help_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "GIL" in out


def test_demo_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--quick" in capsys.readouterr().out


def test_bad_option_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--workers", "0"])
    assert info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_demo_quick_end_to_end() -> None:
    """`python -m numpool demo --quick` runs every backend and reports each row."""
    proc = subprocess.run(
        [sys.executable, "-m", "numpool", "demo", "--quick", "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout[proc.stdout.index("\n[") + 1 :])
    variants = {(r["workload"], r["variant"]) for r in rows}
    for workload in ("exp", "matmul"):
        for b in ("threads", "processes", "pickle"):
            assert (workload, b) in variants
    assert ("python", "processes") in variants
    assert all(r["seconds"] > 0 for r in rows)
