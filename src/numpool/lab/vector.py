"""Experiment B: ``numpy.exp`` over a large vector (seed-experiments.md), B1-B4.

Data: ``numpy.random.rand(n)`` (10M by default). Workers: physical cores.

B1  serial exp(data)
B2  pool.map(exp, data): one task per element, default chunksize, asarray
B3  as B2 with chunksize=1000
B4  numpy.split(data, 64), pool.map(exp, parts, chunksize=1), concatenate

B2-B4 share one ``multiprocessing.Pool(workers)`` (the start method a plain
script gets here) created outside the timed region (B5, in grid.py, times
pool creation too); its initializer only installs the pickle meter in the
workers. numpool and peer rows get ``WARMUP`` untimed calls first, for the
same reason; the auto row gets ``AUTO_WARMUP_CALLS`` (rows.warm_auto).

Besides the rows, the serial ``exp`` into a preallocated output is timed:
B1 allocates its result, so it also pays for faulting in fresh pages, which
a pool that recycles its output does not. That time is the compute the
report's ideal is built on (report.limits).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import numpool

from . import meter, peers
from .rows import NUMPOOL_BACKENDS, Row, numpool_row, open_pool, warm_auto

__all__ = ["run"]

#: untimed calls before timing numpool and peer rows (their pools start lazily;
#: B2-B4's multiprocessing.Pool starts its workers at creation, outside the timing)
WARMUP = 3


def _shared_row(data: np.ndarray, workers: int, measure: Callable[..., Row]) -> Row:
    """processes with SharedArray input and output; freed on return."""
    sx, sout = numpool.share(data), numpool.share(np.empty_like(data))
    row = Row(
        "B",
        "numpool-processes-shared",
        "numpool processes, SharedArray data and out",
        "numpool",
        name="numpool processes + share()",
        transport="shm",
    )
    with numpool.Pool("processes", workers=workers) as npool:
        return measure(
            row,
            functools.partial(npool.apply, np.exp, sx, out=sout),
            warmup_runs=WARMUP,
            stats=lambda: npool.last_stats,
        )


def serial_into(data: np.ndarray, runs: int = 15) -> list[float]:
    """Times of ``np.exp(data, out=buf)`` on one thread, ``buf`` already written."""
    buf = np.empty_like(data)
    np.exp(data, out=buf)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        np.exp(data, out=buf)
        times.append(time.perf_counter() - t)
    return times


def parallel_copy(data: np.ndarray, threads: int, runs: int = 15) -> list[float]:
    """Times of copying ``data`` into a written buffer, one slice per thread: the least
    time any elementwise function that reads and writes it once can take."""
    from concurrent.futures import ThreadPoolExecutor

    buf = np.empty_like(data)
    edges = np.linspace(0, data.size, threads + 1).astype(int)
    times = []
    with ThreadPoolExecutor(threads) as ex:

        def part(i: int) -> None:
            np.copyto(buf[edges[i] : edges[i + 1]], data[edges[i] : edges[i + 1]])

        for i in range(runs + 1):
            t = time.perf_counter()
            list(ex.map(part, range(threads)))
            if i:  # the first run faults buf in
                times.append(time.perf_counter() - t)
    return times


def run(
    n: int,
    workers: int,
    use_peers: bool,
    measure: Callable[..., Row],
    start_method: str,
    restore_env: Callable[[], None],
) -> tuple[list[Row], dict[str, Any]]:
    """Run B1-B4, numpool and peers; return the rows and facts (sizes, serial_into_s)."""
    data = np.random.rand(n)
    into = serial_into(data)
    copy = parallel_copy(data, workers)
    info = {
        "copy_s": min(copy),
        "copy_threads": workers,
        "elements": n,
        "bytes": data.nbytes,
        "start_method": start_method,
        "serial_into_s": min(into),
        "serial_into_median_s": statistics.median(into),
        "serial_into_runs": len(into),
    }
    rows = [
        measure(
            Row("B", "B1", "serial exp(data)", "reproduction", name="B1 serial np.exp"),
            lambda: np.exp(data),
        )
    ]
    # numpool and peers first: the multiprocessing.Pool of B2-B4 forks this process,
    # which leaves `data` slow to read from several threads (see matmul.run).
    for backend in NUMPOOL_BACKENDS:
        row = numpool_row("B", backend, "apply(np.exp, data)")
        npool = open_pool(row, backend, workers)
        if npool is None:
            rows.append(row)
            continue
        with npool:
            call = functools.partial(npool.apply, np.exp, data)
            warm = warm_auto(call) if backend == "auto" else call
            rows.append(
                measure(
                    row,
                    call,
                    warmup=warm,
                    warmup_runs=1 if backend == "auto" else WARMUP,
                    stats=lambda p=npool: p.last_stats,
                )
            )
        restore_env()
    rows.append(_shared_row(data, workers, measure))
    rows += peers.run_rows(
        "B", peers.VECTOR, (data, workers), (data, workers), WARMUP, use_peers, measure
    )
    peers.shutdown()
    restore_env()
    ctx = mp.get_context(start_method)
    with ctx.Pool(
        workers, initializer=meter.install_in_worker, initargs=(meter.counters(),)
    ) as pool:
        slow = [
            Row(
                "B",
                "B2",
                f"Pool({workers}).map(exp, data), default chunksize",
                "reproduction",
                name="B2 map, a task per element",
                transport="pipes",
            ),
            Row(
                "B",
                "B3",
                f"Pool({workers}).map(exp, data, chunksize=1000)",
                "reproduction",
                name="B3 map, chunksize=1000",
                transport="pipes",
            ),
        ]
        b4 = Row(
            "B",
            "B4",
            f"split(data, 64), Pool({workers}).map(exp, parts, chunksize=1), concatenate",
            "reproduction",
            name="B4 split in 64, map",
            transport="pipes",
        )
        rows[1:1] = [
            measure(slow[0], lambda: np.asarray(pool.map(np.exp, data))),
            measure(slow[1], lambda: np.asarray(pool.map(np.exp, data, chunksize=1000))),
            measure(b4, lambda: np.concatenate(pool.map(np.exp, np.split(data, 64), chunksize=1))),
        ]
    for r in rows[1:4]:
        r.extra["start_method"] = start_method
        r.extra["pool_workers"] = workers
    return rows, info
