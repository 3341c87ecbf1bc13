"""numpool bench --quick end to end: every row, the grid, the report and the plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from numpool.lab import bench
from numpool.lab.report import ratio

NUMPOOL_ROWS = {
    "numpool-threads",
    "numpool-processes",
    "numpool-processes-shared",
    "numpool-auto",
    "numpool-dask",
}
PEER_ROWS = {
    "A": {"joblib-loky", "joblib-threads", "dask-threads"},
    "B": {"joblib-loky", "joblib-threads", "dask-threads", "numexpr"},
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    """One `numpool bench --quick --json` run shared by the checks below."""
    out = tmp_path_factory.mktemp("report")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "numpool",
            "bench",
            "--quick",
            "--repeat",
            "2",
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), out, proc.stderr


def test_every_experiment_row_is_there(quick_run) -> None:
    """A1-A4 and B1-B4 ran, and the B5 grid is 8 x 8."""
    doc, out, _ = quick_run
    ids = {(r["experiment"], r["id"]): r for r in doc["rows"]}
    for rid in ("A1", "A2", "A3", "A4"):
        assert ids[("A", rid)]["status"] == "ok", ids[("A", rid)]["note"]
    for rid in ("B1", "B2", "B3", "B4"):
        assert ids[("B", rid)]["status"] == "ok", ids[("B", rid)]["note"]
    grid = [r for r in doc["rows"] if r["experiment"] == "B5"]
    assert len(grid) == 64
    assert {(r["extra"]["splits"], r["extra"]["chunksize"]) for r in grid} == {
        (s, c) for s in bench.grid.SIZES for c in bench.grid.SIZES
    }
    assert all(r["status"] == "ok" and r["times"] for r in grid)
    assert json.loads((out / "results.json").read_text())["rows"] == doc["rows"]


def test_numpool_and_peer_rows_present(quick_run) -> None:
    """numpool's rows ran; every peer row exists (ran, or says how to install it)."""
    doc, _, _ = quick_run
    for exp in ("A", "B"):
        rows = {r["id"]: r for r in doc["rows"] if r["experiment"] == exp}
        for rid in NUMPOOL_ROWS:
            assert rows[rid]["status"] == "ok", rows[rid]["note"]
        auto = rows["numpool-auto"]
        assert "auto chose" in auto["note"] and "workers busy" in auto["note"]
        assert auto["extra"]["stats"]["plan"]["backend"] in ("serial", "threads", "processes")
        assert "MB moved" in rows["numpool-processes"]["note"]
        for rid in PEER_ROWS[exp]:
            assert rows[rid]["status"] in ("ok", "not installed"), rows[rid]
            if rows[rid]["status"] == "not installed":
                assert "pip install 'numpool[peers]'" in rows[rid]["note"]


def test_measurements_are_recorded(quick_run) -> None:
    """Machine facts, limits, pickled bytes and A4's single BLAS thread are recorded."""
    doc, _, _ = quick_run
    assert doc["machine"]["usable_cores"] >= 1 and doc["machine"]["shm_total_bytes"] > 0
    assert doc["limits"]["copy_bandwidth_Bps"] > 0 and doc["limits"]["matmul_flops_1core"] > 0
    rows = {r["id"]: r for r in doc["rows"] if r["experiment"] == "A"}
    pair_bytes = 3 * doc["experiments"]["A"]["bytes_per_array"] * doc["experiments"]["A"]["pairs"]
    assert rows["A2"]["bytes_moved"] >= pair_bytes, "A2 pickles both inputs and the result"
    assert rows["numpool-processes-shared"]["bytes_moved"] < pair_bytes / 100
    a4 = {
        b["num_threads"]
        for b in rows["A4"]["extra"]["worker_blas"]
        if b["internal_api"] == "openblas"
    }
    assert a4 in (set(), {1}), "A4's workers run one BLAS thread"
    assert all(
        r.get("speedup")
        for r in doc["rows"]
        if r["status"] == "ok" and r["experiment"] in ("A", "B")
    )


def test_report_and_plots(quick_run) -> None:
    """report.md explains each experiment and links valid PNG plots."""
    _, out, stderr = quick_run
    report = (out / "report.md").read_text()
    for needle in (
        "Experiment A",
        "Experiment B",
        "B5",
        "moved",
        "A2 took",
        "speedup_A.png",
        "speedup_B.png",
        "grid_B5.png",
    ):
        assert needle in report
    for name in ("speedup_A.png", "speedup_B.png", "grid_B5.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 300 and height > 200
    assert "Experiment A" in stderr, "tables printed to the terminal"


def test_ratio_text() -> None:
    assert ratio(2.154) == "2.15x" and ratio(0.5) == "0.50x" and ratio(0.002) == "500x slower"
    assert ratio(None) == "-"


def test_plan_scales_matmul_down_when_memory_is_short(monkeypatch, tmp_path) -> None:
    """Before starting, the plan fits experiment A into RAM and says so."""
    import psutil

    class Mem:
        available = 4 << 30
        total = 8 << 30

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Mem())
    plan = bench.make_plan(["matmul"], False, 1, 2, tmp_path, True)
    assert plan.pairs < bench.PUBLISHED_PAIRS
    assert bench.matmul_peak_bytes(plan.pairs, plan.size, 2) <= 0.85 * Mem.available
    assert any("scaled down" in n for n in plan.notes)


def test_plan_refuses_when_nothing_fits(monkeypatch, tmp_path) -> None:
    """With too little memory for even one pair, the plan says so instead of crashing later."""
    import psutil

    class Mem:
        available = 50 << 20
        total = 1 << 30

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Mem())
    with pytest.raises(MemoryError, match="--quick"):
        bench.make_plan(["matmul"], False, 1, 2, tmp_path, True)
