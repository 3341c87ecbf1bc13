"""The ``numpool`` command (also ``python -m numpool``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
