"""``numpool demo``: the seed workloads, serial NumPy against each numpool backend.

A short, honest demonstration (``numpool bench`` is the full study): each
workload is timed serially, through ``auto`` (the default, what a user gets)
and through every backend on the same data in the same run, and printed as
time and speed-up against serial. The closing lines (:func:`summary`) say
what this run showed, from its own rows: the fastest way per workload, ties
(within ``TIE``) said as ties, and how the default did.

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
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

import numpool

from .fmt import fmt_gap, ratio
from .timing import median_time

if TYPE_CHECKING:
    from numpool._checks import BackendName

__all__ = ["TIE", "py_loop", "run", "summary"]

#: speed-ups this close (relative) are a tie: a demo of 1-3 runs per row
#: cannot rank two ways closer than its run-to-run noise on a quiet machine
TIE = 0.05

#: the pools each workload runs through, after serial NumPy
BACKENDS: tuple[BackendName, ...] = ("auto", "threads", "processes", "pickle")


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
    pools: dict[str, numpool.Pool] = {b: numpool.Pool(b, workers=workers) for b in BACKENDS}

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
        print("\nWhat this run showed:", file=stream)
        for sentence in summary(rows):
            print(f"  {sentence}", file=stream)
    finally:
        for p in pools.values():
            p.shutdown()
    return rows


Line = Callable[[str, str, Callable[[], Any], "float | None"], float]


def _exp(pools: dict[str, numpool.Pool], line: Line, n: int, stream: TextIO) -> None:
    x = np.random.default_rng(0).random(n)
    print(f"\nexp over {x.size:,} float64 (numpool.apply)", file=stream)
    ref = line("exp", "serial np.exp(x)", lambda: np.exp(x), None)
    for b in BACKENDS:
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
    for b in BACKENDS:
        line("matmul", b, functools.partial(pools[b].map_arrays, np.matmul, d1, d2), ref)


def _python(pools: dict[str, numpool.Pool], line: Line, n: int, stream: TextIO) -> None:
    g = np.random.default_rng(1).random(n)
    print(f"\npure-Python loop over {g.size:,} elements (numpool.apply)", file=stream)
    ref = line("python", "serial", lambda: py_loop(g), None)
    for b in ("auto", "threads", "processes"):
        line("python", b, functools.partial(pools[b].apply, py_loop, g), ref)


def _tied(a: float, b: float) -> bool:
    """Whether two speed-ups are within ``TIE`` of each other."""
    return abs(a - b) <= TIE * max(a, b)


def _name(r: dict[str, Any]) -> str:
    """A row's variant as the closing lines name it (auto is the default)."""
    return "auto (the default)" if r["variant"] == "auto" else str(r["variant"])


def _one(workload: str, rows: list[dict[str, Any]]) -> str:
    """What one workload's rows showed (the first row is serial), in one sentence."""
    others = rows[1:]
    best = max(others, key=lambda r: r["speedup"])
    fastest = [r for r in others if _tied(r["speedup"], best["speedup"])]
    auto = next((r for r in others if r["variant"] == "auto"), None)
    if best["speedup"] < 1 - TIE:
        text = (
            f"{workload}: serial NumPy was fastest; the best backend, {_name(best)}, "
            f"was {ratio(best['speedup'])}"
        )
    elif _tied(best["speedup"], 1.0):
        text = (
            f"{workload}: no backend beat serial NumPy by more than {TIE:.0%} "
            f"(best: {_name(best)}, {ratio(best['speedup'])})"
        )
    else:
        names = " and ".join(_name(r) for r in fastest)
        verb = "tied for fastest" if len(fastest) > 1 else "was fastest"
        text = f"{workload}: {names} {verb}, {ratio(best['speedup'])} serial"
    if auto is not None and auto not in fastest:
        behind = 1 - auto["speedup"] / best["speedup"]
        text += (
            f"; the default (auto) {ratio(auto['speedup'])}, "
            f"{fmt_gap(behind)} behind {best['variant']}"
        )
    return text + "."


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per workload on what these rows showed: fastest, ties, the default.

    Every claim follows from the rows' own speed-ups (the first row of each
    workload is serial): within ``TIE`` of each other is a tie, so nothing
    is called a win that the run did not show.

    >>> summary([
    ...     {"workload": "exp", "variant": "serial", "speedup": 1.0},
    ...     {"workload": "exp", "variant": "auto", "speedup": 1.9},
    ...     {"workload": "exp", "variant": "threads", "speedup": 1.95},
    ...     {"workload": "exp", "variant": "processes", "speedup": 0.5},
    ... ])
    ['exp: auto (the default) and threads tied for fastest, 1.95x serial.']
    """
    workloads: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        workloads.setdefault(r["workload"], []).append(r)
    return [_one(w, rs) for w, rs in workloads.items() if len(rs) > 1]
