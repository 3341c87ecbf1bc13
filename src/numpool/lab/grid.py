"""Experiment B5: the splits x chunksize grid (seed-experiments.md).

For splits and chunksize each in {1, 2, 4, ..., 128}: create
``multiprocessing.Pool(workers)`` (the start method a plain script gets
here) inside the timed run, ``numpy.split`` the data,
``pool.map(exp, parts, chunksize=c)``, ``concatenate``. 64 timings, shown as
a heatmap and a table. The workers are not metered: a meter in their
initializer would run inside the timed region.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import vector
from .rows import Row

__all__ = ["SIZES", "run"]

SIZES = [1, 2, 4, 8, 16, 32, 64, 128]


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cell(
    data: np.ndarray, workers: int, splits: int, chunksize: int, start_method: str
) -> np.ndarray:
    with mp.get_context(start_method).Pool(workers) as pool:
        return np.concatenate(pool.map(np.exp, np.split(data, splits), chunksize=chunksize))


def run(
    n: int,
    workers: int,
    measure: Callable[..., Row],
    start_method: str,
    on_cell: Callable[[int, int], None] | None = None,
) -> tuple[list[Row], dict[str, Any]]:
    data = np.random.rand(n)
    serial = [_timed(lambda: np.exp(data)) for _ in range(5)]
    into = vector.serial_into(data)
    copy = vector.parallel_copy(data, workers)
    rows: list[Row] = []
    for s in SIZES:
        for c in SIZES:
            if on_cell:
                on_cell(len(rows), len(SIZES) ** 2)
            row = Row(
                "B5",
                f"B5-s{s}-c{c}",
                f"splits={s}, chunksize={c}",
                "reproduction",
                name=f"B5 split {s}, chunksize {c}",
                transport="pipes-unmetered",
                extra={"splits": s, "chunksize": c},
            )
            rows.append(measure(row, functools.partial(cell, data, workers, s, c, start_method)))
    info = {
        "elements": n,
        "bytes": data.nbytes,
        "splits": SIZES,
        "chunksizes": SIZES,
        "start_method": start_method,
        # the serial reference when B1 did not run (`numpool bench grid`)
        "serial_s": statistics.median(serial),
        "serial_into_s": min(into),
        "copy_s": min(copy),
        "copy_threads": workers,
    }
    return rows, info
