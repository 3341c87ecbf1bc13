"""backend="dask" on one machine against the processes backend (issue 6), one run.

Run:  python benchmarks/cluster.py [--repeat N] [--pairs N]

The dask backend runs on a LocalCluster of 2 worker processes (what
``Pool("dask")`` starts) and on one of 2 worker threads in this process.
On one machine it can only lose to ``processes``: arrays cross a TCP socket
(pickled, in and out) instead of shared memory, and every task is a round
trip through the scheduler. The figures say how much that costs, which is
what a cluster has to win back.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import numpool
from numpool.lab.demo import py_loop
from numpool.lab.machine import describe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=20, help="matmul pairs of 2000x2000")
    args = ap.parse_args()
    import distributed

    print(json.dumps(describe(), default=str))
    t0 = time.perf_counter()
    dask_pool = numpool.Pool("dask", workers=2)
    start_s = time.perf_counter() - t0
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    pools = {
        "processes": numpool.Pool("processes", workers=2),
        "dask": dask_pool,
        "dask-threads": numpool.Pool("dask", workers=2, address=cluster),
    }
    print(f"\nPool('dask') start (LocalCluster of 2 processes): {start_s:.2f} s")

    def workload(name: str, plain: Callable[[], Any], run: Callable[[numpool.Pool], Any]) -> None:
        for p in pools.values():  # warm: workers, imports, mappings
            run(p)
            run(p)
        times: dict[str, list[float]] = {"serial NumPy": [], **{k: [] for k in pools}}
        for _ in range(args.repeat):  # interleaved rounds
            t = time.perf_counter()
            plain()
            times["serial NumPy"].append(time.perf_counter() - t)
            for k, p in pools.items():
                t = time.perf_counter()
                run(p)
                times[k].append(time.perf_counter() - t)
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(f"\n## {name}")
        for k, v in med.items():
            print(
                f"  {k:14s} {v * 1e3:10.2f} ms  {med['serial NumPy'] / v:5.2f}x serial  "
                f"{v / med['processes']:5.2f}x the time of processes"
            )
        print("  dask stats: " + str(pools["dask"].last_stats))

    x = np.random.default_rng(0).random(10_000_000)
    workload("np.exp over 10M (apply)", lambda: np.exp(x), lambda p: p.apply(np.exp, x))
    g = np.random.default_rng(1).random(2_000_000)
    workload("py_loop over 2M (apply)", lambda: py_loop(g), lambda p: p.apply(py_loop, g))
    n = 2000
    a = [np.random.default_rng(i).random((n, n)) for i in range(args.pairs)]
    b = [np.random.default_rng(99 + i).random((n, n)) for i in range(args.pairs)]
    workload(
        f"matmul, {args.pairs} pairs of {n}x{n} (map)",
        lambda: [u @ v for u, v in zip(a, b, strict=True)],
        lambda p: p.map(np.matmul, a, b),
    )
    small = [np.random.default_rng(i).random(100) for i in range(400)]
    workload(
        "400 tiny tasks (map of np.sum over 100 floats): per-task overhead",
        lambda: [np.sum(v) for v in small],
        lambda p: p.map(np.sum, small),
    )
    for p in pools.values():
        p.shutdown()
    cluster.close()


if __name__ == "__main__":
    main()
