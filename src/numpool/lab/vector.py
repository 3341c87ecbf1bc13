"""Experiment B: ``numpy.exp`` over a large vector (seed-experiments.md), B1-B4.

Data: ``numpy.random.rand(n)`` (10M by default). Workers: physical cores.

B1  serial exp(data)
B2  pool.map(exp, data): one task per element, default chunksize, asarray
B3  as B2 with chunksize=1000
B4  numpy.split(data, 64), pool.map(exp, parts, chunksize=1), concatenate

B2-B4 share one ``multiprocessing.Pool(workers)`` created outside the timed
region (B5, in grid.py, times pool creation too); its initializer only
installs the pickle meter in the workers. numpool and peer rows get
``WARMUP`` untimed calls first, for the same reason.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
from collections.abc import Callable
from typing import Any

import numpy as np

import numpool

from . import meter, peers
from .rows import NUMPOOL_BACKENDS, Row, attach_stats, open_pool, settled

__all__ = ["run"]

#: untimed calls before timing numpool and peer rows (their pools start lazily;
#: B2-B4's multiprocessing.Pool starts its workers at creation, outside the timing)
WARMUP = 3


def _shared_row(data: np.ndarray, workers: int, measure: Callable[..., Row]) -> Row:
    """processes with SharedArray input and output; freed on return."""
    sx, sout = numpool.share(data), numpool.share(np.empty_like(data))
    with numpool.Pool("processes", workers=workers) as npool:
        row = Row(
            "B",
            "numpool-processes-shared",
            "numpool processes, SharedArray data and out",
            "numpool",
        )
        return measure(
            row, functools.partial(npool.apply, np.exp, sx, out=sout), warmup_runs=WARMUP
        )


def run(
    n: int,
    workers: int,
    use_peers: bool,
    measure: Callable[..., Row],
    measure_slow: Callable[..., Row],
) -> tuple[list[Row], dict[str, Any]]:
    """Run B1-B4, numpool and peers; ``measure_slow`` is for the per-element variants."""
    data = np.random.rand(n)
    info = {"elements": n, "bytes": data.nbytes}
    rows = [measure(Row("B", "B1", "serial exp(data)", "reproduction"), lambda: np.exp(data))]
    # numpool and peers first: the multiprocessing.Pool of B2-B4 forks this process,
    # which leaves `data` slow to read from several threads (see matmul.run).
    for backend in NUMPOOL_BACKENDS:
        row = Row(
            "B", f"numpool-{backend}", f"numpool.Pool({backend!r}).apply(np.exp, data)", "numpool"
        )
        npool = open_pool(row, backend, workers)
        if npool is None:
            rows.append(row)
            continue
        with npool:
            call = functools.partial(npool.apply, np.exp, data)
            rows.append(measure(row, call, warmup=settled(npool, call), warmup_runs=WARMUP))
            attach_stats(rows[-1], npool.last_stats)
    rows.append(_shared_row(data, workers, measure))
    rows += peers.run_rows(
        "B", peers.VECTOR, (data, workers), (data, workers), WARMUP, use_peers, measure
    )
    with mp.Pool(
        workers, initializer=meter.install_in_worker, initargs=(meter.counters(),)
    ) as pool:
        rows[1:1] = [
            measure_slow(
                Row(
                    "B", "B2", f"Pool({workers}).map(exp, data), default chunksize", "reproduction"
                ),
                lambda: np.asarray(pool.map(np.exp, data)),
            ),
            measure_slow(
                Row("B", "B3", f"Pool({workers}).map(exp, data, chunksize=1000)", "reproduction"),
                lambda: np.asarray(pool.map(np.exp, data, chunksize=1000)),
            ),
            measure(
                Row(
                    "B",
                    "B4",
                    f"split(data, 64), Pool({workers}).map(exp, parts, chunksize=1), concatenate",
                    "reproduction",
                ),
                lambda: np.concatenate(pool.map(np.exp, np.split(data, 64), chunksize=1)),
            ),
        ]
    return rows, info
