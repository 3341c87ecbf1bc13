"""The ``numpool`` command (also ``python -m numpool``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpool

__all__ = ["main"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {value:g}")
    return value


#: measured on the reference machine (2 cores, 24 GiB; benchmarks/RESULTS.md, "Issue 15");
#: README's first paragraph says the same
FULL_TIME = "12-20 minutes"
QUICK_TIME = "50-55 s"
DEMO_QUICK_TIME = "about 10 s"
DEMO_TIME = "about 3.5 minutes"

BENCH_DESCRIPTION = f"""\
Reproduces the two classic experiments on parallelising NumPy with
multiprocessing, then runs numpool's backends and the peers (joblib, dask,
numexpr) on the same data in the same run, against this machine's limits
(copy bandwidth, matmul GFLOP/s) measured in the same run. Writes
report.md (a verdict first), results.json and PNG plots to --out.

As published: every call (A1-A4, B1-B4, the B5 grid) and, for B and B5,
the data (exp over 10M floats). Scaled: experiment A's batch (published:
100 pairs of 2000x2000) when RAM or /dev/shm cannot hold it. The pickling
variants A3/A4 need about 28 GiB at 100 pairs, so the plan fits the batch
to the memory free at the start and says so in the output and the report
(58-69 pairs on a 24 GiB machine). --quick scales A to 10 pairs of 800x800
and B to 2^20 elements, with the same calls.

The default run took {FULL_TIME} on a 2-core, 24 GiB machine (the longer
run at 69 pairs, sharing the CPU with other programs), --quick {QUICK_TIME}.
For the point in seconds, try `numpool demo --quick` ({DEMO_QUICK_TIME}).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="numpool",
        description="Parallel NumPy that is faster than serial NumPy: threads when NumPy "
        "releases the GIL, shared-memory processes when your code holds it, "
        "BLAS threads budgeted so workers never oversubscribe the cores.",
    )
    p.add_argument("--version", action="version", version=f"numpool {numpool.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser(
        "bench",
        help="reproduce both experiments; numpool and peers beside them; report",
        description=BENCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "part",
        nargs="?",
        choices=["all", "matmul", "exp", "grid"],
        default="all",
        help="matmul: experiment A; exp: B1-B4; grid: B5 (default: all)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller data, same calls: {QUICK_TIME} on 2 cores",
    )
    bench.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        help="timed runs per row; median, min and max reported (default 3)",
    )
    bench.add_argument(
        "--row-budget",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="a row stops before --repeat runs once its runs have taken this long, and "
        "the report says so (default 15, --quick 1.5; 0: every row runs --repeat times, "
        "which makes the default run up to 3x longer)",
    )
    bench.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="workers for every pool (default: physical cores, as the experiments used)",
    )
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("numpool-report"),
        help="where results.json, report.md and the plots go (default ./numpool-report/)",
    )
    bench.add_argument(
        "--json",
        action="store_true",
        help="print the results JSON to stdout; the verdict and tables then go to stderr "
        "with the progress",
    )
    bench.add_argument(
        "--no-peers",
        action="store_true",
        help="skip joblib, dask and numexpr (rows kept, marked skipped)",
    )

    doctor = sub.add_parser(
        "doctor",
        help="check this machine for numpool: cores, BLAS, /dev/shm, leftovers; advise",
        description="Prints the cores numpool may use (CPU affinity and cgroup quota) and "
        "the physical ones, the BLAS/OpenMP libraries loaded and their thread counts "
        "(threadpoolctl), the shared-memory directory's size and free space, numpool "
        "segments left by processes that died, the worker start method and versions; "
        "then concrete recommendations (for example when OMP_NUM_THREADS=1 is set "
        "globally, or /dev/shm is a 64 MiB container default).",
    )
    doctor.add_argument(
        "--clean",
        action="store_true",
        help="remove numpool segments whose owner process is gone",
    )
    doctor.add_argument("--json", action="store_true", help="print the facts as JSON")
    doctor.add_argument(
        "--profile",
        action="store_true",
        help="measure this machine's costs again (a hand-off to a thread, a round trip to "
        "a worker process, starting one, copying into shared memory; a few seconds) and "
        "keep them for backend='auto'",
    )

    demo = sub.add_parser(
        "demo",
        help="time the seed workloads: serial NumPy against each backend",
        description="Times np.exp over 10M floats, 20 matmuls of 2000x2000 and a pure-Python "
        "loop over 1M elements, serially and through the threads, processes and "
        f"pickle backends, on the same data in one run ({DEMO_TIME} on 2 cores; "
        f"--quick {DEMO_QUICK_TIME}). Prints time and speed-up against serial for each.",
    )
    demo.add_argument("--quick", action="store_true", help=f"10x smaller data ({DEMO_QUICK_TIME})")
    demo.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="workers per pool (default: usable physical cores)",
    )
    demo.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        help="timed runs per variant; the median is shown (default 3)",
    )
    demo.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    return p


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


def _bench(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console

        from .lab import bench, report
    except ModuleNotFoundError as e:
        print(
            f"numpool bench needs {e.name}: python -m pip install '.[bench]' in numpool's "
            "source tree (numpool is not on PyPI)",
            file=sys.stderr,
        )
        return 2
    parts = list(bench.PARTS) if args.part == "all" else [args.part]
    err = Console(stderr=True, highlight=False)
    if not err.is_terminal and "COLUMNS" not in os.environ:
        err = Console(stderr=True, highlight=False, width=100)  # a log file or CI
    try:
        plan = bench.make_plan(
            parts,
            args.quick,
            args.repeat,
            args.workers,
            args.out,
            not args.no_peers,
            row_budget_s=args.row_budget,
        )
    except MemoryError as e:
        err.print(f"[red]numpool bench:[/red] {e}")
        return 1
    budget = f"{plan.row_budget_s:g} s per row" if plan.row_budget_s else "no budget"
    err.print(
        f"[bold]numpool bench[/bold] {' '.join(parts)}: {plan.workers} workers, "
        f"{plan.repeat} runs per row ({budget}), report in {plan.out}/"
    )
    for note in plan.notes:
        err.print(f"[yellow]note:[/yellow] {note}")
    if err.is_terminal:
        doc = _run_live(bench, plan, err)
    else:
        doc = bench.run(plan, _PlainReporter(err, report))
    paths = report.write(doc, plan.out)
    # The results are the command's output (stdout: `numpool bench > verdict.txt`
    # keeps them, not the progress); with --json, stdout is the JSON alone.
    out = err if args.json else Console(highlight=False)
    if not args.json and not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(highlight=False, width=100)
    width = max(72, min(out.width, 160))
    out.print()
    out.print("[bold]Verdict[/bold]")
    for sentence in report.verdict(doc):
        out.print(f"- {sentence}", markup=False)
    for exp in ("A", "B"):
        if exp not in doc["experiments"]:
            continue
        out.print()
        title, head, *body = report.terminal_lines(doc, exp, width)
        out.print(f"[bold]{title}[/bold]")
        out.print(head, style="dim", markup=False)
        for line in body:
            out.print(line, markup=False, overflow="ignore", crop=False)
        if short := report.short_runs_summary(doc, exp):
            out.print(short, markup=False)
    if "B5" in doc["experiments"]:
        out.print()
        for sentence in report.explain(doc, "B5"):
            out.print(sentence, markup=False)
        if short := report.short_runs_summary(doc, "B5"):
            out.print(short, markup=False)
    for error in doc.get("errors", []):
        out.print(f"[red]experiment failed:[/red] {error}", markup=True)
    out.print()
    out.print(
        f"The report, with the why of every row and the plots: {plan.out / 'report.md'} "
        f"({len(paths)} files written, run took {_clock(doc['duration_s'])})",
        markup=False,
    )
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    return 1 if doc.get("errors") else 0


class _PlainReporter:
    """Progress as plain lines (stderr is a log file or a pipe): one per finished row."""

    def __init__(self, console: Any, report: Any) -> None:
        self.console, self.report = console, report
        self.elapsed, self.total = 0.0, 0.0
        self.serial: dict[str, float] = {}

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stage(self, text: str) -> None:
        self._say(f"[{_clock(self.elapsed)} of ~{_clock(self.total)}] {text}")

    def row_started(self, index: int, total: int, row: dict[str, Any]) -> None:
        pass

    def run_started(self, run: int, runs: int) -> None:
        pass

    def cell(self, index: int, total: int) -> None:
        pass

    def expected(self, elapsed_s: float, total_s: float) -> None:
        self.elapsed, self.total = elapsed_s, total_s

    def row_finished(self, index: int, total: int, row: dict[str, Any]) -> None:
        self._say(
            f"[{_clock(self.elapsed)} of ~{_clock(self.total)}] row {index} of {total}: "
            + _row_summary(row, self.serial, self.report)
        )


def _row_summary(row: dict[str, Any], serial: dict[str, float], report: Any) -> str:
    """One finished row in a line: name, median, runs, speed-up against its serial row."""
    name = row.get("name") or row["id"]
    if "cells" in row:
        times = [c["median_s"] for c in row["cells"] if c.get("median_s")]
        ref = serial.get("B")
        text = f"{name}: {len(times)} cells, {report.fmt_range(times, report.fmt_s)}"
        if ref and times:
            text += f", {report.speed_range([ref / t for t in times])}"
        return text
    if row.get("status") != "ok" or not row.get("median_s"):
        return f"{name}: {row.get('status')} {row.get('note', '')}".rstrip()
    t = row["median_s"]
    if row["id"] in ("A1", "B1"):
        serial[row["experiment"]] = t
    ref = serial.get(row["experiment"])
    n, planned = len(row["times"]), row.get("runs_planned") or len(row["times"])
    runs = f"{n} run{'s' * (n != 1)}" if n >= planned else f"{n} of {planned} runs"
    vs = f", {report.ratio(ref / t)}" if ref and row["id"] not in ("A1", "B1") else ""
    return f"{name}: {report.fmt_s(t)} ({runs}){vs}"


def _run_live(bench: Any, plan: Any, err: Any) -> dict[str, Any]:
    """bench.run with a live line: row 7 of 26, its name and run, elapsed of expected."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from .lab import report

    class Live:
        def __init__(self, progress: Any, task: Any) -> None:
            self.progress, self.task = progress, task
            self.what, self.detail = "starting", ""
            self.elapsed, self.total = 0.0, 0.0
            self.serial: dict[str, float] = {}

        def _draw(self) -> None:
            clock = f"{_clock(self.elapsed)} of ~{_clock(self.total)}"
            text = f"{self.what}{self.detail}"
            room = max(20, err.width - len(clock) - 6)
            if len(text) > room:
                text = text[: room - 1] + "…"
            self.progress.update(self.task, description=text, clock=clock)

        def stage(self, text: str) -> None:
            self.what, self.detail = text, ""
            self._draw()

        def row_started(self, index: int, total: int, row: dict[str, Any]) -> None:
            self.what = f"row {index} of {total}: {row.get('name') or row['id']}"
            self.detail = ""
            self._draw()

        def run_started(self, run: int, runs: int) -> None:
            self.detail = f", run {run} of {runs}"
            self._draw()

        def cell(self, index: int, total: int) -> None:
            self.detail = f", cell {index} of {total}"
            self._draw()

        def row_finished(self, index: int, total: int, row: dict[str, Any]) -> None:
            self.progress.console.print(
                f"  {index:>2}/{total} " + _row_summary(row, self.serial, report),
                markup=False,
                highlight=False,
                overflow="ellipsis",
                no_wrap=True,
            )

        def expected(self, elapsed_s: float, total_s: float) -> None:
            self.elapsed, self.total = elapsed_s, total_s
            self._draw()

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[clock]}", style="dim"),
        console=err,
        transient=True,
    ) as progress:
        live = Live(progress, progress.add_task("starting", total=None, clock=""))
        # the clock moves between events too: redraw it from the elapsed time
        import threading

        stop = threading.Event()

        def tick() -> None:
            import time as _time

            t0 = _time.perf_counter()
            start = live.elapsed
            while not stop.wait(1.0):
                live.elapsed = start + (_time.perf_counter() - t0)
                live.total = max(live.total, live.elapsed)
                live._draw()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            result: dict[str, Any] = bench.run(plan, live)
            return result
        finally:
            stop.set()
            ticker.join()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    if args.command == "doctor":
        from . import doctor

        return doctor.main(args.clean, args.json, args.profile)
    if args.command == "demo":
        from .lab import demo

        rows = demo.run(quick=args.quick, workers=args.workers, repeat=args.repeat)
        if args.json:
            print(json.dumps(rows, indent=1))
        return 0
    parser().print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
