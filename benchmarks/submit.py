"""Pool() (auto) as an executor: GIL-bound and NumPy tasks against the stdlib's pools.

Run:  python benchmarks/submit.py [--runs 5] [--tasks 16] [--loop 300000]

Two workloads, each through ``Executor.map`` of ``--tasks`` calls, repeated for
``--rounds`` rounds in one fresh interpreter per run:

- ``gil``: a pure-Python loop (holds the GIL): threads cannot run two at once;
- ``numpy``: ``np.exp`` over 2M float64 summed (releases the GIL): threads can.

Each is timed on ``Pool()`` (auto: learns per function where its calls go),
``ThreadPoolExecutor``, ``ProcessPoolExecutor`` (same worker count) and
serially. Printed: per executor the first round (auto still learning, the
processes starting) and the median of the later rounds, as medians over the
runs with their range; the ratio is against the best stdlib pool of the same
run. Results are checked equal to serial's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

RUN = """
import json, sys, time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
import numpy as np
import numpool

kind, executor, tasks, loop, rounds, workers = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])

def gil(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s

def vec(seed):
    x = np.random.default_rng(seed).random(2_000_000)
    return float(np.exp(x).sum())

if __name__ == "__main__":
    fn, args = (gil, [loop] * tasks) if kind == "gil" else (vec, list(range(tasks)))
    want = [fn(a) for a in args]
    make = {
        "auto": lambda: numpool.Pool(workers=workers),
        "threads": lambda: ThreadPoolExecutor(workers),
        "processes": lambda: ProcessPoolExecutor(workers),
        "serial": None,
    }[executor]
    times = []
    if make is None:
        for _ in range(rounds):
            t = time.perf_counter()
            got = [fn(a) for a in args]
            times.append(time.perf_counter() - t)
            assert got == want
    else:
        with make() as ex:
            for _ in range(rounds):
                t = time.perf_counter()
                got = list(ex.map(fn, args))
                times.append(time.perf_counter() - t)
                assert got == want, (got, want)
    print(json.dumps(times))
"""

EXECUTORS = ("auto", "threads", "processes", "serial")


def run(kind: str, executor: str, args: argparse.Namespace) -> list[float]:
    """One fresh interpreter's round times."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN,
            kind,
            executor,
            str(args.tasks),
            str(args.loop),
            str(args.rounds),
            str(args.workers),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times: list[float] = json.loads(out.strip().splitlines()[-1])
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh interpreters per executor")
    ap.add_argument("--rounds", type=int, default=5, help="maps per interpreter")
    ap.add_argument("--tasks", type=int, default=16, help="calls per map")
    ap.add_argument("--loop", type=int, default=300_000, help="iterations of a GIL task")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", choices=("gil", "numpy"), help="one workload")
    args = ap.parse_args()
    for kind in ("gil", "numpy") if args.only is None else (args.only,):
        first: dict[str, list[float]] = {e: [] for e in EXECUTORS}
        later: dict[str, list[float]] = {e: [] for e in EXECUTORS}
        ratios: list[float] = []
        for _ in range(args.runs):  # interleaved: a slow moment hits every executor
            this = {}
            for e in EXECUTORS:
                times = run(kind, e, args)
                first[e].append(times[0])
                later[e].append(statistics.median(times[1:]) if len(times) > 1 else times[0])
                this[e] = later[e][-1]
            ratios.append(this["auto"] / min(this["threads"], this["processes"]))
        print(f"\n{kind}: {args.tasks} tasks, {args.workers} workers, {args.runs} fresh runs")
        print(f"{'executor':<10} {'first round s':>24} {'later rounds s':>24}")
        for e in EXECUTORS:
            f, s = first[e], later[e]
            print(
                f"{e:<10} {statistics.median(f):>9.3f} ({min(f):.3f}-{max(f):.3f})"
                f" {statistics.median(s):>9.3f} ({min(s):.3f}-{max(s):.3f})"
            )
        print(
            f"auto / best stdlib pool, later rounds: median {statistics.median(ratios):.2f}x "
            f"(range {min(ratios):.2f}-{max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
