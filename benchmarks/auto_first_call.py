"""auto's first calls on a multi-second input against the processes backend's (issue 4:
measuring must stay a small share of large work).

Run:  python benchmarks/auto_first_call.py [--rows N] [--rounds N]

py_loop (a GIL-holding loop) over N rows: a fresh pool and an empty decision cache
each time, first and second call timed, processes and auto alternating.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import numpool
from numpool import _planner
from numpool.lab.demo import py_loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    x = np.random.default_rng(0).random(args.rows)
    for _ in range(args.rounds):
        for backend in ("processes", "auto"):
            _planner.cache.clear()
            with numpool.Pool(backend, workers=2) as pool:
                times, plans = [], []
                for _ in range(2):
                    t0 = time.perf_counter()
                    pool.apply(py_loop, x)
                    times.append(time.perf_counter() - t0)
                    plans.append(pool.last_stats.plan)
            extra = ""
            if plans[0] is not None:
                extra = (
                    f"  measuring {plans[0].probe_s:.2f} s; chose {plans[0].backend}, "
                    f"run-off on {plans[0].contenders or 'none'}"
                )
            print(f"{backend:9s} first call {times[0]:.2f} s, second {times[1]:.2f} s{extra}")


if __name__ == "__main__":
    main()
