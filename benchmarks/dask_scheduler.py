"""A dask.array workload on a numpool Pool as Dask's scheduler, against Dask's own
threaded scheduler: the medians of a few runs of each, in one process.

    python benchmarks/dask_scheduler.py [--runs 5] [--n 4000] [--chunk 500] [--workers N]
        [--matmul]   # also (x @ x.T).sum(): minutes on a small machine
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np

import numpool


def _timed(compute: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """The median wall time of ``runs`` calls of ``compute`` (after one warm-up) and its result."""
    result = compute()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = compute()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--matmul", action="store_true")
    args = parser.parse_args()
    x = (
        da.random.RandomState(0)
        .random_sample((args.n, args.n), chunks=args.chunk)
        .persist(scheduler="threads")
    )
    work: dict[str, Callable[[], Any]] = {
        "exp+sum": lambda: da.exp(x).sum(),
    }
    if args.matmul:
        work["(x @ x.T).sum()"] = lambda: (x @ x.T).sum()
    with numpool.Pool("threads", workers=args.workers) as pool:
        workers = pool._max_workers
        print(
            f"{args.n}x{args.n} in {args.chunk}x{args.chunk} chunks, {workers} workers, "
            f"median of {args.runs} runs"
        )
        for name, graph in work.items():

            def on_dask(g: Callable[[], Any] = graph) -> Any:
                return dask.compute(g(), scheduler="threads", num_workers=workers)[0]

            def on_pool(g: Callable[[], Any] = graph) -> Any:
                return dask.compute(g(), scheduler=pool)[0]

            t_dask, ref = _timed(on_dask, args.runs)
            t_pool, got = _timed(on_pool, args.runs)
            same = bool(np.allclose(got, ref, rtol=1e-12))
            print(
                f"{name:18} dask threads {t_dask * 1e3:8.1f} ms   numpool Pool('threads') "
                f"{t_pool * 1e3:8.1f} ms   ratio {t_pool / t_dask:5.2f}   equal={same}"
            )


if __name__ == "__main__":
    main()
