"""numpool bench: the report from a synthetic results document, and one --quick run end to end.

Nothing here asserts a timing: the synthetic document fixes every figure, and
the end-to-end run is checked for what it recorded and wrote, never for how
fast anything was.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from numpool.lab import bench, machine, plots, report
from numpool.lab.rows import Row, measure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

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


# -- a synthetic results document --------------------------------------------------------


def _row(
    experiment: str,
    rid: str,
    kind: str,
    times: list[float],
    transport: str = "none",
    pickled: float = 0.0,
    parent: float = 0.0,
    workers: float | None = None,
    copied: float | None = None,
    copy_s: float | None = None,
    extra: dict[str, Any] | None = None,
    planned: int = 3,
    short: str = "",
) -> dict[str, Any]:
    r = Row(
        experiment,
        rid,
        f"the call of {rid}",
        kind,
        name=f"{rid} name",
        transport=transport,
        times=times,
        runs_planned=planned,
        short_reason=short,
        pickled_bytes=pickled,
        parent_pickle_s=parent,
        worker_pickle_s=workers,
        copied_bytes=copied,
        copy_s=copy_s,
        extra={"others_busy": 0.01, **(extra or {})},
    )
    return r.as_dict()


def synthetic(auto_backend: str = "threads", auto_s: float = 10.0, busy: float = 0.01) -> dict:
    """A results document with every row of a default run, figures chosen by hand."""
    blas2 = [{"internal_api": "openblas", "num_threads": 2}]
    blas1 = [{"internal_api": "openblas", "num_threads": 1}]
    ran = {"auto_ran": [auto_backend], "tasks": 69, "parallelism": 1.9}
    shm = "shm" if auto_backend == "processes" else "none"
    a = [
        _row(
            "A",
            "A1",
            "reproduction",
            [12.0, 12.2],
            extra={"worker_blas": blas2},
            planned=3,
            short="ran 2 of 3: 2 runs took 24 s, over the 15 s budget per row",
        ),
        _row(
            "A",
            "A2",
            "reproduction",
            [25.0],
            "pipes",
            6.6e9,
            9.0,
            8.0,
            extra={"worker_blas": blas2, "pool_workers": 2},
            short="ran 1 of 3: ...",
        ),
        _row(
            "A",
            "A3",
            "reproduction",
            [36.0],
            "pipes",
            6.6e9,
            9.5,
            8.5,
            extra={"worker_blas": blas2, "pool_workers": 2},
            short="ran 1 of 3: ...",
        ),
        _row(
            "A",
            "A4",
            "reproduction",
            [30.0],
            "pipes",
            6.6e9,
            9.1,
            8.2,
            extra={"worker_blas": blas1, "pool_workers": 2},
            short="ran 1 of 3: ...",
        ),
        _row(
            "A",
            "numpool-threads",
            "numpool",
            [9.8, 9.9, 10.0],
            "none",
            0.0,
            0.0,
            None,
            0.0,
            0.0,
            {"auto_ran": None, "tasks": 69, "parallelism": 1.95},
        ),
        _row(
            "A",
            "numpool-processes",
            "numpool",
            [11.5, 11.6],
            "shm",
            23e3,
            0.01,
            None,
            6.6e9,
            1.1,
            {"tasks": 69},
        ),
        _row(
            "A",
            "numpool-auto",
            "numpool",
            [auto_s, auto_s + 0.1, auto_s + 0.2],
            shm,
            0.0,
            0.0,
            None,
            6.6e9 if shm == "shm" else 0.0,
            1.1 if shm == "shm" else 0.0,
            ran,
        ),
        _row("A", "numpool-dask", "numpool", [20.0], "tcp", 0.0, 0.0, None, 6.6e9, 0.0),
        _row(
            "A",
            "numpool-processes-shared",
            "numpool",
            [11.4, 11.5],
            "shm",
            23e3,
            0.01,
            None,
            2.2e9,
            0.0,
        ),
        _row("A", "joblib-threads", "peer", [10.7, 10.8]),
        _row("A", "dask-threads", "peer", [14.0, 14.2]),
        _row("A", "joblib-loky", "peer", [16.0], "loky", 2.2e9, 1.0),
    ]
    b = [
        _row("B", "B1", "reproduction", [0.029, 0.028, 0.030]),
        _row("B", "B2", "reproduction", [23.0], "pipes", 3.8e8, 20.0, 18.0),
        _row("B", "B3", "reproduction", [18.0], "pipes", 3.8e8, 14.0, 13.0),
        _row("B", "B4", "reproduction", [0.18, 0.17, 0.19], "pipes", 1.6e8, 0.05, 0.07),
        _row(
            "B",
            "numpool-threads",
            "numpool",
            [0.0095, 0.0094, 0.0097],
            "none",
            0.0,
            0.0,
            None,
            0.0,
            0.0,
            {"tasks": 10, "parallelism": 1.8},
        ),
        _row(
            "B",
            "numpool-processes",
            "numpool",
            [0.03, 0.031, 0.029],
            "shm",
            4e3,
            0.0001,
            None,
            1.6e8,
            0.012,
            {"tasks": 10},
        ),
        _row(
            "B",
            "numpool-auto",
            "numpool",
            [0.0096, 0.0097, 0.0098],
            "none",
            0.0,
            0.0,
            None,
            0.0,
            0.0,
            {"auto_ran": ["threads"], "tasks": 10, "parallelism": 1.8},
        ),
        _row("B", "numpool-dask", "numpool", [0.21, 0.22, 0.2], "tcp", 0.0, 0.0, None, 1.6e8, 0.0),
        _row(
            "B",
            "numpool-processes-shared",
            "numpool",
            [0.015, 0.014, 0.016],
            "shm",
            4e3,
            0.0001,
            None,
            8e7,
            0.0,
        ),
        _row("B", "joblib-threads", "peer", [0.019, 0.02, 0.018]),
        _row("B", "dask-threads", "peer", [0.021, 0.022, 0.02]),
        _row("B", "numexpr", "peer", [0.018, 0.0185, 0.019]),
        _row("B", "joblib-loky", "peer", [0.23, 0.24, 0.22], "loky", 8e7, 0.02),
    ]
    grid = [
        _row(
            "B5",
            f"B5-s{s}-c{c}",
            "reproduction",
            [0.3 + 0.01 * i + 0.001 * j],
            "pipes-unmetered",
            1e6,
            0.01,
            extra={"splits": s, "chunksize": c},
            planned=1,
        )
        for i, s in enumerate(bench.grid.SIZES)
        for j, c in enumerate(bench.grid.SIZES)
    ]
    for r in grid:
        r["name"] = f"B5 split {r['extra']['splits']}, chunksize {r['extra']['chunksize']}"
    a[0]["extra"]["others_busy"] = busy

    def measured(value: float) -> dict[str, Any]:
        return {
            "value": value,
            "rounds": [value * 0.97, value, value],
            "min": value * 0.97,
            "max": value,
            "best3_spread": 0.01,
            "agreed": True,
            "tolerance": 0.05,
        }

    doc = {
        "numpool_bench": 2,
        "created": "2026-11-21T12:00:00+00:00",
        "command": "numpool bench",
        "duration_s": 640.0,
        "plan": {
            "parts": ["matmul", "exp", "grid"],
            "quick": False,
            "repeat": 3,
            "workers": 2,
            "out": "numpool-report",
            "peers": True,
            "pairs": 69,
            "size": 2000,
            "elements": 10_000_000,
            "grid_elements": 10_000_000,
            "row_budget_s": 15.0,
            "cell_budget_s": 2.5,
            "start_method": "fork",
            "notes": ["experiment A scaled down from 100 to 69 pairs of 2000x2000: ..."],
        },
        "machine": {
            "cpu_model": "Test CPU",
            "logical_cores": 2,
            "physical_cores": 2,
            "usable_cores": 2,
            "default_workers": 2,
            "memory_total_bytes": 24 << 30,
            "memory_available_bytes": 23 << 30,
            "shm_dir": "/dev/shm",
            "shm_total_bytes": 24 << 30,
            "shm_free_bytes": 24 << 30,
            "threadpools": [{"internal_api": "openblas", "version": "0.3", "num_threads": 2}],
            "env": {},
            "python": "3.11",
            "numpy": "2.4",
            "numpool": "0.1.0",
            "platform": "Linux",
        },
        "limits": {
            "copy_bandwidth_Bps": 44e9,
            "matmul_flops_1core": 61e9,
            "matmul_flops_all_cores": 119e9,
            "matmul_flops_concurrent": 121e9,
            "matmul_flops_limit": 121e9,
            "matmul_size": 2000,
            "cores": 2,
            "others_busy": 0.01,
            "measurements": {
                k: measured(v)
                for k, v in (
                    ("copy_bandwidth_Bps", 44e9),
                    ("matmul_flops_1core", 61e9),
                    ("matmul_flops_all_cores", 119e9),
                    ("matmul_flops_concurrent", 121e9),
                )
            },
        },
        "experiments": {
            "A": {
                "pairs": 69,
                "size": 2000,
                "create_s": 7.0,
                "flops_per_run": 69 * 2 * 2000**3,
                "bytes_per_array": 32e6,
                "start_method": "fork",
            },
            "B": {
                "elements": 10_000_000,
                "bytes": 80e6,
                "start_method": "fork",
                "serial_into_s": 0.016,
                "copy_s": 0.004,
                "copy_threads": 2,
            },
            "B5": {
                "elements": 10_000_000,
                "bytes": 80e6,
                "splits": bench.grid.SIZES,
                "chunksizes": bench.grid.SIZES,
                "serial_s": 0.029,
                "serial_into_s": 0.016,
                "copy_s": 0.004,
            },
        },
        "rows": a + b + grid,
        "errors": [],
    }
    bench.derive(doc)
    return doc


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The synthetic document written as a report (report.md, results.json, plots)."""
    doc = synthetic()
    out = tmp_path_factory.mktemp("synthetic")
    report.write(doc, out)
    return doc, out


# -- the report --------------------------------------------------------------------------


def test_verdict_comes_first_and_quotes_the_tables(written) -> None:
    """report.md opens with the verdict; its figures are the tables' figures."""
    doc, out = written
    md = (out / "report.md").read_text()
    assert md.index("## Verdict") < md.index("## Machine") < md.index("## Experiment A")
    verdict = md[md.index("## Verdict") : md.index("## Machine")]
    tables = md[md.index("## Experiment A") :]
    a2 = report.row(doc, "A2", "A")
    auto_a = report.row(doc, "numpool-auto", "A")
    auto_b = report.row(doc, "numpool-auto", "B")
    for figure in (
        report.fmt_bytes(a2["moved_bytes"]),  # what the seeds' pools pickled
        report.ratio(auto_a["speedup"]),  # the default's speed-up, A and B
        report.ratio(auto_b["speedup"]),
        report.fmt_pct(auto_a["of_ideal"]),  # how close to the machine's limit
    ):
        assert figure in verdict, figure
        assert figure in tables, figure
    # the seeds' slow-down range: A2-A4 against A1, from the table's own cells
    speeds = [report.row(doc, rid, "A")["speedup"] for rid in ("A2", "A3", "A4")]
    assert report.speed_range(speeds) in verdict
    assert "joblib threads" not in verdict or "Fastest peer" in verdict
    assert "Fastest peer: B4" not in verdict and "Fastest peer" in verdict
    assert "numpool demo" in verdict


def test_verdict_says_when_the_default_lost_and_why() -> None:
    """auto slower than threads, having run processes: the verdict names both and the copy."""
    doc = synthetic(auto_backend="processes", auto_s=11.6)
    text = " ".join(report.verdict(doc))
    assert "the default (" in text
    assert "numpool-threads name" in text and "auto ran processes" in text
    assert report.fmt_bytes(6.6e9) in text


def test_verdict_within_noise_is_not_called_a_loss_of_substance() -> None:
    """When auto's and the winner's runs overlap, the verdict says it is within their spread."""
    doc = synthetic(auto_backend="threads", auto_s=9.85)
    assert "within the spread of their runs" in " ".join(report.verdict(doc))


def _a_sentence(doc: dict[str, Any]) -> str:
    """The verdict's sentence on the default against the other numpool rows in A."""
    (line,) = [s for s in report.verdict(doc) if s.startswith("In A, the default")]
    return line


def test_verdict_default_won() -> None:
    """auto clearly faster than every other numpool row: said as a win, with both figures."""
    doc = synthetic(auto_backend="threads", auto_s=8.0)
    line = _a_sentence(doc)
    assert "was the fastest numpool row" in line and "numpool-threads name" in line
    assert "slower" not in line and "tied" not in line


@pytest.mark.parametrize("auto_s", [9.85, 10.2, 10.3])
def test_verdict_default_tied(auto_s: float) -> None:
    """Overlapping runs, or medians within 5%: a tie, never "slower" with equal ratios."""
    line = _a_sentence(synthetic(auto_backend="threads", auto_s=auto_s))
    assert "tied with numpool-threads name" in line
    assert "slower" not in line and "fastest" not in line
    assert ("within the spread" in line) or ("within 5%" in line)


def test_verdict_default_lost() -> None:
    """auto beyond 5% and beyond the spread behind threads: said as a loss, by how much."""
    line = _a_sentence(synthetic(auto_backend="threads", auto_s=12.0))
    assert "was slower than numpool-threads name" in line and "by 18%" in line
    assert "tied" not in line and "fastest" not in line


def test_default_against_equal_medians_is_a_tie() -> None:
    """The issue's "the default (1.17x) was slower than numpool threads (1.17x)" cannot recur."""
    auto = _row("A", "numpool-auto", "numpool", [10.0, 10.0])
    best = _row("A", "numpool-threads", "numpool", [9.96, 9.97])
    auto["speedup"], best["speedup"] = 1.17, 1.172
    line = report.default_against(auto, best, "A")
    assert "tied" in line and "slower" not in line


def test_busy_machine_is_reported() -> None:
    """Other programs' CPU use during a row is reported, not hidden in the figures."""
    quiet = " ".join(report.verdict(synthetic()))
    busy = " ".join(report.verdict(synthetic(busy=0.4)))
    assert "Other programs" not in quiet
    assert "Other programs kept up to 40%" in busy and "1 of 12 rows of A (up to 40%)" in busy


def test_no_zero_ratios_and_no_unmetered_zeros(written) -> None:
    """No "0.00x"; what was not metered reads n/m (workers of shm/tcp/loky rows, loky memmaps)."""
    doc, out = written
    md = (out / "report.md").read_text()
    assert "0.00x" not in md and "0.00x" not in " ".join(report.verdict(doc))
    for e in ("A", "B"):
        head, *body = report.table_rows(doc, e)
        cells = {r[0]: dict(zip(head, r, strict=True)) for r in body}
        for r in doc["rows"]:
            if r["experiment"] != e:
                continue
            c = cells[r["name"]]
            assert c["vs serial"] != "0.00x"
            if r["transport"] in ("shm", "tcp", "loky"):
                assert c["pickling"].endswith(report.NM), (r["id"], c["pickling"])
            if r["transport"] == "loky":
                assert c["moved"].endswith(f"+ {report.NM}")
        assert cells["numpool-dask name"]["moved"] == report.fmt_bytes(
            6.6e9 if e == "A" else 1.6e8
        )
    # in results.json, unmetered worker pickling is null, never 0.0
    saved = json.loads((out / "results.json").read_text())
    for r in saved["rows"]:
        if r["transport"] in ("shm", "tcp", "loky", "pipes-unmetered"):
            assert r["worker_pickle_s"] is None, r["id"]


def test_rows_above_the_limit_are_explained() -> None:
    """A row faster than the machine's limit gets a sentence saying by how much and why."""
    doc = synthetic()
    doc["limits"]["matmul_flops_limit"] = 80e9  # a limit measured too low
    bench.derive(doc)
    head, *body = report.table_rows(doc, "A")
    assert any(c[head.index("of limit")].endswith("*") for c in body)
    sentences = report.explain(doc, "A")
    assert any(s.startswith("* numpool-threads name ran at") for s in sentences)


def test_fewer_runs_are_explained(written) -> None:
    """Rows that ran fewer than --repeat times say so in the table and under it."""
    doc, out = written
    md = (out / "report.md").read_text()
    assert "| 1 of 3 |" in md and "Rows with fewer runs" in md
    assert "A1 2" in report.short_runs_summary(doc, "A")


def test_limits_report_their_spread(written) -> None:
    """Each measured limit is printed with the spread of its rounds."""
    _, out = written
    md = (out / "report.md").read_text()
    assert md.count("all rounds") == 4 and "best 3 of 3 rounds within 1%" in md


def test_plots_are_valid_nontrivial_pngs(written) -> None:
    """Every plot is a PNG of a sensible size with more than a few colours."""
    _, out = written
    import matplotlib.image

    for name in ("speedup_A.png", "speedup_B.png", "time_A.png", "time_B.png", "grid_B5.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 500 and height > 300, name
        pixels = matplotlib.image.imread(out / name)
        colours = {tuple(p) for p in pixels[::7, ::7].reshape(-1, pixels.shape[-1]).tolist()}
        assert len(colours) > 20, f"{name} is nearly blank"
        assert f"]({name})" in (out / "report.md").read_text()


def test_plot_text_is_words_not_zeros() -> None:
    """Bar labels and ticks read as words: "660x slower", "serial", "2x faster"."""
    assert plots.speed_text(1 / 660) == "660x slower"
    assert plots.speed_text(1.0) == "as fast as serial"
    assert plots.speed_text(2.42) == "2.42x faster"
    assert plots.speed_text(1 / 1.09) == "1.09x slower"
    assert plots._tick_text(0.1) == "10x slower" and plots._tick_text(1.0) == "serial"
    ticks = plots._speed_ticks(0.0003, 3.0)
    assert 1.0 in ticks and all(t > 0 for t in ticks)


def test_terminal_tables_fit_80_columns() -> None:
    """At 80 columns every line fits and no name is split across lines."""
    doc = synthetic()
    for e in ("A", "B"):
        lines = report.terminal_lines(doc, e, 80)
        assert all(len(line) <= 80 for line in lines), max(lines, key=len)
        assert any(line.startswith("numpool-dask name") for line in lines)
    wide = report.terminal_lines(doc, "A", 140)
    assert "pickling" in wide[1] and len(max(wide, key=len)) <= 140


def test_ratio_text() -> None:
    assert report.ratio(2.154) == "2.15x" and report.ratio(0.5) == "2.0x slower"
    assert report.ratio(0.002) == "500x slower" and report.ratio(None) == report.NM
    assert report.ratio(0.967) == "1.03x slower"
    assert report.vs_serial(0.5) == "2.0x slower than serial"
    assert report.vs_serial(1.5, "A1") == "1.50x faster than A1"


# -- measuring ---------------------------------------------------------------------------


def test_measure_stops_at_the_budget_and_says_why() -> None:
    """A row whose runs pass its budget stops early, and records the reason."""
    row = measure(Row("B", "x", "sleep", "reproduction"), lambda: time.sleep(0.02), 5, 0.001)
    assert len(row.times) == 1 and row.runs_planned == 5
    assert "ran 1 of 5" in row.short_reason and "--row-budget 0" in row.short_reason
    full = measure(Row("B", "y", "sleep", "reproduction"), lambda: time.sleep(0.001), 3, 0)
    assert len(full.times) == 3 and full.short_reason == ""
    assert full.pickled_bytes == 0 and full.worker_pickle_s is None  # no workers, not metered


def test_stable_stops_when_the_best_rounds_agree() -> None:
    """Limits are repeated until their best three rounds agree; the spread is kept."""
    values = iter([10.0, 20.0, 19.5, 19.8, 5.0])
    m = machine.stable(lambda: next(values))
    assert m["agreed"] and m["rounds"] == [10.0, 20.0, 19.5, 19.8]
    assert m["value"] == 19.8 and m["min"] == 10.0
    noisy = iter([1.0, 2.0, 4.0, 8.0, 16.0])
    m = machine.stable(lambda: next(noisy), max_rounds=5)
    assert not m["agreed"] and len(m["rounds"]) == 5


def test_plan_scales_matmul_down_when_memory_is_short(monkeypatch, tmp_path) -> None:
    """Before starting, the plan fits experiment A into RAM and says so."""
    facts = machine.describe()
    short = {**facts, "memory_available_bytes": 4 << 30, "shm_free_bytes": 8 << 30}
    monkeypatch.setattr(machine, "describe", lambda: short)  # (any /dev/shm: Docker's 64 MB)
    plan = bench.make_plan(["matmul"], False, 1, 2, tmp_path, True)
    assert plan.pairs < bench.PUBLISHED_PAIRS
    assert bench.matmul_peak_bytes(plan.pairs, plan.size, 2) <= 0.85 * (4 << 30)
    assert any("scaled down" in n for n in plan.notes)


def test_plan_refuses_when_nothing_fits(monkeypatch, tmp_path) -> None:
    """With too little memory for even one pair, the plan says so instead of crashing later."""
    facts = machine.describe()
    monkeypatch.setattr(machine, "describe", lambda: {**facts, "memory_available_bytes": 50 << 20})
    with pytest.raises(MemoryError, match="--quick"):
        bench.make_plan(["matmul"], False, 1, 2, tmp_path, True)


def test_help_says_what_is_scaled_and_how_long(capsys) -> None:
    """`bench --help` states durations and what is reproduced as published or scaled."""
    from numpool.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exactly as published" not in text
    assert "As published:" in text and "Scaled:" in text and "--row-budget" in text
    assert "numpool demo --quick" in text and "--quick" in text


def test_bench_writes_verdict_and_tables_to_stdout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`numpool bench`: the verdict and tables on stdout, progress on stderr; --json alone."""
    from numpool.cli import main

    monkeypatch.setattr(bench, "run", lambda plan, reporter=None: synthetic())
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "Verdict" in out and "Experiment A" in out and "report.md" in out
    assert "In A, the default" in out
    assert "Verdict" not in err and "numpool bench" in err
    assert main(["bench", "--quick", "--out", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["rows"] and "Verdict" in err


# -- one --quick run, end to end --------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    """One `numpool bench --quick --json` run (stderr not a terminal), shared below."""
    out = tmp_path_factory.mktemp("report")
    proc = subprocess.run(
        [sys.executable, "-m", "numpool", "bench", "--quick", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), out, proc.stderr


def test_quick_every_row_is_there(quick_run) -> None:
    """A1-A4, B1-B4, numpool's and the peers' rows ran; the B5 grid is 8 x 8."""
    doc, out, _ = quick_run
    ids = {(r["experiment"], r["id"]): r for r in doc["rows"]}
    for e, rids in (("A", ("A1", "A2", "A3", "A4")), ("B", ("B1", "B2", "B3", "B4"))):
        for rid in (*rids, *NUMPOOL_ROWS):
            assert ids[(e, rid)]["status"] == "ok", ids[(e, rid)]["note"]
        for rid in PEER_ROWS[e]:
            r = ids[(e, rid)]
            assert r["status"] == "ok" or "pip install '.[peers]'" in r["note"], r
    grid = [r for r in doc["rows"] if r["experiment"] == "B5"]
    assert {(r["extra"]["splits"], r["extra"]["chunksize"]) for r in grid} == {
        (s, c) for s in bench.grid.SIZES for c in bench.grid.SIZES
    }
    assert all(r["status"] == "ok" and r["times"] for r in grid)
    assert json.loads((out / "results.json").read_text())["rows"] == doc["rows"]


def test_quick_figures_are_measured_or_marked(quick_run) -> None:
    """The seeds' workers are metered; BLAS seen inside them; dask's bytes from its stats."""
    doc, _, _ = quick_run
    a = {r["id"]: r for r in doc["rows"] if r["experiment"] == "A"}
    info = doc["experiments"]["A"]
    pair_bytes = 3 * info["bytes_per_array"] * info["pairs"]
    for rid in ("A2", "A3", "A4"):
        assert a[rid]["pickled_bytes"] >= pair_bytes, "pickles both inputs and the result"
        assert a[rid]["worker_pickle_s"] is not None and a[rid]["worker_pickle_s"] > 0
    blas = {
        rid: {
            b["num_threads"]
            for b in a[rid]["extra"]["worker_blas"]
            if b["internal_api"] == "openblas"
        }
        for rid in ("A2", "A3", "A4")
    }
    assert blas["A4"] in (set(), {1}), "A4's workers run one BLAS thread"
    if doc["machine"]["usable_cores"] > 1 and blas["A3"]:
        assert blas["A3"] != {1}, "A3's workers keep BLAS's threads (no leaked OMP_NUM_THREADS)"
    assert a["numpool-dask"]["copied_bytes"] >= pair_bytes / 2
    assert a["numpool-processes-shared"]["moved_bytes"] < pair_bytes
    for r in doc["rows"]:
        if r["transport"] in ("shm", "tcp", "loky", "pipes-unmetered"):
            assert r["worker_pickle_s"] is None, r["id"]
    auto = a["numpool-auto"]
    assert auto["extra"]["auto_ran"] and set(auto["extra"]["auto_ran"]) <= {
        "serial",
        "threads",
        "processes",
    }
    assert all(r.get("speedup") for r in doc["rows"] if r["status"] == "ok")
    for m in doc["limits"]["measurements"].values():
        assert len(m["rounds"]) >= 3 and m["min"] <= m["value"] <= m["max"]


def test_quick_report_and_terminal(quick_run) -> None:
    """report.md leads with the verdict, links valid plots; stderr has a line per row."""
    _, out, stderr = quick_run
    md = (out / "report.md").read_text()
    assert md.startswith("# numpool bench report") and "## Verdict" in md
    assert "0.00x" not in md and "0.00x" not in stderr
    for name in ("speedup_A.png", "speedup_B.png", "time_A.png", "time_B.png", "grid_B5.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
    total = sum(
        bench.planned_rows(bench.make_plan(list(bench.PARTS), True, 3, None, out, True)).values()
    )
    finished = re.findall(rf"row (\d+) of {total}: ", stderr)
    assert [int(i) for i in finished] == list(range(1, total + 1)), stderr[:2000]
    assert stderr.index("Verdict") < stderr.index("Experiment A")
    assert all(len(line) <= 80 for line in stderr.splitlines()[-40:] if "|" not in line)


def test_verdict_says_when_auto_was_still_choosing() -> None:
    """auto's timed runs on different backends: the verdict lists them in turn."""
    doc = synthetic(auto_backend="processes", auto_s=11.6)
    auto = report.row(doc, "numpool-auto", "A")
    auto["extra"]["backends"] = ["processes", "serial+threads", "threads"]
    text = " ".join(report.verdict(doc))
    assert "still choosing" in text and "processes, serial+threads, threads" in text
