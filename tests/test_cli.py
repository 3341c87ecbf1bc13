"""The numpool command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numpool.cli import main
from numpool.lab.demo import summary


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
    assert {("exp", "auto"), ("matmul", "auto"), ("python", "auto")} <= variants
    assert all(r["seconds"] > 0 for r in rows)
    closing = proc.stdout[proc.stdout.index("What this run showed:") : proc.stdout.index("\n[")]
    assert closing.split("\n")[1:4] == [f"  {s}" for s in summary(rows)]
    assert "threads win" not in proc.stdout


def _table(workload: str, **speedups: float) -> list[dict[str, object]]:
    """Demo rows for one workload: serial first, then the given speed-ups."""
    rows = [{"workload": workload, "variant": "serial", "seconds": 1.0, "speedup": 1.0}]
    for variant, x in speedups.items():
        rows.append({"workload": workload, "variant": variant, "seconds": 1 / x, "speedup": x})
    return rows


def test_demo_summary_when_the_default_wins() -> None:
    """auto clearly fastest: it is named the fastest, and no other way is."""
    (line,) = summary(_table("exp", auto=2.0, threads=1.5, processes=1.2, pickle=0.1))
    assert line == "exp: auto (the default) was fastest, 2.00x serial."


def test_demo_summary_ties_are_ties() -> None:
    """Within 5% is a tie: among backends, and with serial (then no backend "won")."""
    (line,) = summary(_table("exp", auto=1.9, threads=1.95, processes=1.0))
    assert line == "exp: auto (the default) and threads tied for fastest, 1.95x serial."
    (line,) = summary(_table("matmul", auto=1.01, threads=1.03, processes=0.9, pickle=0.4))
    assert "no backend beat serial NumPy by more than 5%" in line
    assert "fastest" not in line


def test_demo_summary_when_the_default_and_threads_lose() -> None:
    """Every backend slower than serial: serial is named fastest; no "threads win"."""
    (line,) = summary(_table("python", auto=0.5, threads=0.9, processes=0.8))
    assert line.startswith("python: serial NumPy was fastest; the best backend, threads, was")
    assert "the default (auto) 2.0x slower, 44% behind threads" in line
    (line,) = summary(_table("python", auto=1.6, threads=0.97, processes=1.7))
    assert line == (
        "python: processes was fastest, 1.70x serial; the default (auto) 1.60x, "
        "5.9% behind processes."
    )


def _numpool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "numpool", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_doctor_reports_the_machine_as_json() -> None:
    proc = _numpool("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    cores = facts["cores"]
    assert 1 <= cores["usable"] <= cores["logical"] and cores["physical"] >= 1
    assert facts["shm"]["total_bytes"] > 0 and facts["shm"]["free_bytes"] >= 0
    assert facts["start_method"] in ("forkserver", "spawn")
    assert facts["versions"]["numpy"] and isinstance(facts["recommendations"], list)
    assert any(p["user_api"] == "blas" for p in facts["threadpools"])


def test_doctor_shows_and_remeasures_the_machine_profile(tmp_path) -> None:
    """The profile auto predicts with: measured on first use into the cache directory,
    shown by doctor, measured again (worker processes too) by --profile."""
    env = {"NUMPOOL_CACHE_DIR": str(tmp_path)}
    proc = _numpool("doctor", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    profile = json.loads(proc.stdout)["profile"]
    assert profile["path"].startswith(str(tmp_path)) and os.path.exists(profile["path"])
    assert profile["thread_wake_s"] > 0 and profile["copy_bytes_per_s"] > 0
    proc = _numpool("doctor", "--profile", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "machine profile" in proc.stdout and "round trip to a worker process" in proc.stdout
    again = json.loads(_numpool("doctor", "--json", env=env).stdout)["profile"]
    assert again["process_start_s"] > 0 and again["process_task_s"] > 0


def test_doctor_advises_on_a_global_omp_num_threads() -> None:
    proc = _numpool("doctor", env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "cores" in proc.stdout and "BLAS/OpenMP" in proc.stdout
    if (os.cpu_count() or 1) > 1:
        assert "OMP_NUM_THREADS=1 is set globally" in proc.stdout


def test_doctor_finds_and_cleans_segments_of_dead_processes(tmp_path: Path) -> None:
    """In a segment directory of the test's own: any numpool process of the machine
    (another test run's) may sweep a dead process's segments out of /dev/shm between
    the two doctor runs."""
    env = {"NUMPOOL_SHM_DIR": str(tmp_path)}
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, numpy as np, numpool\n"
            "a = numpool.share(np.ones(1000)); print(a.segment_name, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    name = killed.stdout.strip()
    assert name.startswith("numpool-")
    assert os.path.exists(tmp_path / name)
    facts = json.loads(_numpool("doctor", "--json", env=env).stdout)
    assert name in {os.path.basename(o["path"]) for o in facts["segments"]["orphans"]}
    assert any("doctor --clean" in t for t in facts["recommendations"])
    proc = _numpool("doctor", "--clean", env=env)
    assert proc.returncode == 0 and "removed" in proc.stdout, proc.stdout
    assert not os.path.exists(tmp_path / name)


def test_doctor_help() -> None:
    proc = _numpool("doctor", "--help")
    assert "--clean" in proc.stdout and "cgroup" in proc.stdout
