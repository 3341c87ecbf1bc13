"""``numpool demo``: the seed workloads, serial NumPy against each numpool backend.

A short, honest demonstration (``numpool bench`` is the full study): each
workload is timed serially and through every backend on the same data in
the same run, and printed as time and speed-up against serial.

* exp:    ``numpy.exp`` over a 10M float64 vector (experiment B's data),
          through ``apply``; processes also with SharedArray input and output.
* matmul: 20 pairs of 2000x2000 ``ones`` (experiment A's task, a fifth of
          its batch), through ``map``.
* python: a GIL-holding pure-Python loop over 1M elements, through ``apply``:
          the case where only processes help.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

import numpool

from .timing import median_time

__all__ = ["py_loop", "run"]


def py_loop(block: np.ndarray) -> np.ndarray:
    """A function that holds the GIL: a Python loop over every element."""
    out = np.empty_like(block)
    for i in range(len(block)):
        v = float(block[i])
        out[i] = math.sqrt(v * v + 1.0) - v
    return out


def run(
    quick: bool = False, workers: int | None = None, repeat: int = 3, stream: TextIO = sys.stdout
) -> list[dict[str, Any]]:
    """Run the demo, print a table per workload, return the rows."""
    scale = 10 if quick else 1
    rows: list[dict[str, Any]] = []
    pools = {b: numpool.Pool(b, workers=workers) for b in ("threads", "processes", "pickle")}

    def line(workload: str, variant: str, fn: Callable[[], Any], ref: float | None) -> float:
        t = median_time(fn, repeat, warmup_budget_s=1.0)
        ref = ref or t
        rows.append({"workload": workload, "variant": variant, "seconds": t, "speedup": ref / t})
        print(f"  {variant:44s} {t * 1e3:10.1f} ms {ref / t:8.2f}x", file=stream, flush=True)
        return t

    try:
        print(
            f"numpool {numpool.__version__} demo: {pools['threads'].workers} workers, "
            f"median of {repeat} runs{' (--quick: 10x smaller)' if quick else ''}",
            file=stream,
        )
        _exp(pools, line, 10_000_000 // scale, stream)
        _matmul(pools, line, 2000 if not quick else 500, stream)
        _python(pools, line, 1_000_000 // scale, stream)
        print(
            "\nthreads win when NumPy releases the GIL; processes when the code holds it; "
            "pickle shows what copying arrays through pipes costs.",
            file=stream,
        )
    finally:
        for p in pools.values():
            p.shutdown()
    return rows


Line = Callable[[str, str, Callable[[], Any], "float | None"], float]


def _exp(pools: dict[str, numpool.Pool], line: Line, n: int, stream: TextIO) -> None:
    x = np.random.default_rng(0).random(n)
    print(f"\nexp over {x.size:,} float64 (numpool.apply)", file=stream)
    ref = line("exp", "serial np.exp(x)", lambda: np.exp(x), None)
    for b in ("threads", "processes", "pickle"):
        line("exp", b, functools.partial(pools[b].apply, np.exp, x), ref)
    sx, sout = numpool.share(x), numpool.share(np.empty_like(x))
    line(
        "exp",
        "processes, SharedArray x and out",
        functools.partial(pools["processes"].apply, np.exp, sx, out=sout),
        ref,
    )


def _matmul(pools: dict[str, numpool.Pool], line: Line, n: int, stream: TextIO) -> None:
    d1 = [np.ones((n, n)) for _ in range(20)]
    d2 = [np.ones((n, n)) for _ in range(20)]
    print(f"\nmatmul of 20 pairs of {n}x{n} (numpool.map)", file=stream)
    ref = line(
        "matmul",
        "serial list comprehension, BLAS on all cores",
        lambda: [a.dot(b) for a, b in zip(d1, d2, strict=True)],
        None,
    )
    for b in ("threads", "processes", "pickle"):
        line("matmul", b, functools.partial(pools[b].map_arrays, np.matmul, d1, d2), ref)


def _python(pools: dict[str, numpool.Pool], line: Line, n: int, stream: TextIO) -> None:
    g = np.random.default_rng(1).random(n)
    print(f"\npure-Python loop over {g.size:,} elements (numpool.apply)", file=stream)
    ref = line("python", "serial", lambda: py_loop(g), None)
    for b in ("threads", "processes"):
        line("python", b, functools.partial(pools[b].apply, py_loop, g), ref)
