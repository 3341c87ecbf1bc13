"""The ``numpool`` command (also ``python -m numpool``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpool

__all__ = ["main"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


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
        description="Reproduces the two classic experiments on parallelising NumPy with "
        "multiprocessing (A: 100 matmuls of 2000x2000; B: exp over 10M floats, "
        "B5: a splits x chunksize grid) exactly as published, then runs numpool's "
        "backends and the peers (joblib, dask, numexpr) on the same data in the "
        "same run, against this machine's measured copy bandwidth and matmul "
        "throughput. Writes results.json, report.md and PNG plots to --out. "
        "The default run takes about 8 minutes on 2 cores; it checks RAM and "
        "/dev/shm first and scales the matmul batch down if it would not fit.",
    )
    bench.add_argument(
        "part",
        nargs="?",
        choices=["all", "matmul", "exp", "grid"],
        default="all",
        help="matmul: experiment A; exp: B1-B4; grid: B5 (default: all)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="about 10x smaller, under a minute on 2 cores"
    )
    bench.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        help="runs per row, median and min reported; long rows stop early "
        "once they have used their time budget (default 3)",
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
        help="print the results JSON to stdout (progress goes to stderr)",
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
        "pickle backends, on the same data in one run (about 1-2 minutes on 2 "
        "cores). Prints time and speed-up against serial for each.",
    )
    demo.add_argument("--quick", action="store_true", help="10x smaller data (seconds)")
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


def _bench(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from .lab import bench, report
    except ModuleNotFoundError as e:
        print(f"numpool bench needs {e.name}: pip install 'numpool[bench]'", file=sys.stderr)
        return 2
    parts = list(bench.PARTS) if args.part == "all" else [args.part]
    err = Console(stderr=True)
    if not err.is_terminal:  # a log file or CI: do not wrap the tables at 80 columns
        err = Console(stderr=True, width=160)
    try:
        plan = bench.make_plan(
            parts, args.quick, args.repeat, args.workers, args.out, not args.no_peers
        )
    except MemoryError as e:
        err.print(f"[red]numpool bench:[/red] {e}")
        return 1
    err.print(
        f"[bold]numpool bench[/bold] {' '.join(parts)}: {plan.workers} workers, "
        f"up to {plan.repeat} runs per row, report in {plan.out}/"
    )
    for note in plan.notes:
        err.print(f"[yellow]note:[/yellow] {note}")
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)
        doc = bench.run(plan, lambda msg: progress.update(task, description=msg))
    paths = report.write(doc, plan.out)
    for exp in ("A", "B"):
        if exp not in doc["experiments"]:
            continue
        head, *body = report.table_rows(doc, exp)
        table = Table(title=report.TITLES[exp], title_justify="left")
        for h in head:
            table.add_column(h, overflow="fold")
        for row in body:
            table.add_row(*row)
        err.print(table)
        for sentence in report.explain(doc, exp):
            err.print(f"  {sentence}")
    if "B5" in doc["experiments"]:
        for sentence in report.explain(doc, "B5"):
            err.print(f"  {sentence}")
    for error in doc.get("errors", []):
        err.print(f"[red]experiment failed:[/red] {error}")
    err.print("written: " + ", ".join(str(p) for p in paths))
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    return 1 if doc.get("errors") else 0


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
