"""Experiment B5: the splits x chunksize grid (seed-experiments.md).

For splits and chunksize each in {1, 2, 4, ..., 128}: create
``multiprocessing.Pool(workers)`` inside the timed run, ``numpy.split`` the
data, ``pool.map(exp, parts, chunksize=c)``, ``concatenate``. 64 timings,
shown as a heatmap and a table.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
from collections.abc import Callable
from typing import Any

import numpy as np

from .rows import Row

__all__ = ["SIZES", "run"]

SIZES = [1, 2, 4, 8, 16, 32, 64, 128]


def cell(data: np.ndarray, workers: int, splits: int, chunksize: int) -> np.ndarray:
    with mp.Pool(workers) as pool:
        return np.concatenate(pool.map(np.exp, np.split(data, splits), chunksize=chunksize))


def run(n: int, workers: int, measure: Callable[..., Row]) -> tuple[list[Row], dict[str, Any]]:
    data = np.random.rand(n)
    rows = []
    for s in SIZES:
        for c in SIZES:
            row = Row(
                "B5",
                f"B5-s{s}-c{c}",
                f"splits={s}, chunksize={c}",
                "reproduction",
                extra={"splits": s, "chunksize": c},
            )
            rows.append(measure(row, functools.partial(cell, data, workers, s, c)))
    return rows, {"elements": n, "splits": SIZES, "chunksizes": SIZES}
