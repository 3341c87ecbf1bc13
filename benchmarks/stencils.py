"""Stencils (issue 24): a 5x5 filter over an image with each boundary mode, numpool
against serial SciPy, dask.array's map_overlap and scikit-image's apply_parallel,
as ratios measured in one run.

Run:  python benchmarks/stencils.py [--size 8000] [--rounds 3] [--filter uniform]
                                    [--modes reflect,wrap,...] [--quick]

For each mode m of scipy.ndimage (reflect, mirror, nearest, wrap, constant),
``f(b) = ndimage.<filter>(b, 5, mode=m)`` over a ``--size`` x ``--size`` float64
image (``uniform``: uniform_filter, the issue's target; ``correlate``: a 5x5
ndimage.correlate, bit for bit through numpool):

serial      f(img)
auto        numpool.apply(f, img, overlap=2, boundary=m)
threads     the same with backend="threads"
processes   the same with backend="processes"
dask        dask.array.map_overlap(f, depth={0: 2, 1: 0}) on strips of rows, one per
            2 x cores, threaded scheduler; boundary "periodic" for wrap, "none"
            for the other modes (f's own mode is then right at the true ends)
skimage     skimage.util.apply_parallel(f, img, depth=2, mode=<np.pad's name>) on its
            default tiles ("none" for mirror and constant, which it lacks)

Each variant is warmed up once, then timed once per round (the order rotating
every round); the median is reported with its ratio serial / variant (above 1:
faster than serial SciPy), whether its result matches serial's (bit for bit,
or to 1e-12 for uniform_filter, whose running sum restarts at each block: see
docs/stencils.md), and for auto the backend each timed call ran on. Target
(issue 24): numpool >= 1.8x serial on 2 cores, uniform_filter at 8000 x 8000.
``--quick``: a 4000 x 4000 image and 1 round, for a busy machine. The machine
may be shared and noisy: compare ratios taken in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

import numpool

MODES = ("reflect", "mirror", "nearest", "wrap", "constant")
#: scikit-image's apply_parallel takes np.pad's names, passed on to dask: its
#: "reflect" is dask's, which repeats the edge row (ndimage's reflect), so ndimage's
#: "mirror" has none, nor has "constant": "none" there (f's own mode at the true ends)
SKIMAGE_MODE = {
    "reflect": "symmetric",
    "mirror": "none",
    "nearest": "edge",
    "wrap": "wrap",
    "constant": "none",
}
WEIGHTS = np.full((5, 5), 1 / 25)


def make_filter(name: str, mode: str) -> Callable[[np.ndarray], np.ndarray]:
    if name == "uniform":
        return lambda b: ndimage.uniform_filter(b, 5, mode=mode)
    return lambda b: ndimage.correlate(b, WEIGHTS, mode=mode)


def _optional(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


def variants(
    img: np.ndarray, mode: str, f: Callable[[np.ndarray], np.ndarray]
) -> dict[str, Callable[[], np.ndarray]]:
    """Each way to compute f(img), by name."""
    out: dict[str, Callable[[], np.ndarray]] = {
        "serial": lambda: f(img),
        "auto": lambda: numpool.apply(f, img, overlap=2, boundary=mode),
        "threads": lambda: numpool.apply(f, img, overlap=2, boundary=mode, backend="threads"),
        "processes": lambda: numpool.apply(f, img, overlap=2, boundary=mode, backend="processes"),
    }
    if _optional("dask") is not None:
        import dask
        import dask.array as da

        strips = 2 * (os.cpu_count() or 1)
        arr = da.from_array(img, chunks=(-(-img.shape[0] // strips), img.shape[1]))
        edge = "periodic" if mode == "wrap" else "none"

        def run_dask() -> np.ndarray:
            lazy = da.map_overlap(f, arr, depth={0: 2, 1: 0}, boundary=edge, dtype=img.dtype)
            with dask.config.set(scheduler="threads"):
                return np.asarray(lazy.compute())

        out["dask"] = run_dask
    skimage = _optional("skimage")
    if skimage is not None and mode in SKIMAGE_MODE:
        from skimage.util import apply_parallel

        out["skimage"] = lambda: np.asarray(
            apply_parallel(f, img, depth=2, mode=SKIMAGE_MODE[mode], dtype=img.dtype)
        )
    return out


def measure(img: np.ndarray, mode: str, name: str, rounds: int) -> list[tuple[str, float, str]]:
    """(variant, median seconds, how its result compares with serial's)."""
    f = make_filter(name, mode)
    runs = variants(img, mode, f)
    want = f(img)
    checks = {}
    for v, run in runs.items():  # warm-up, and the result checked once
        got = run()
        if np.array_equal(got, want):
            checks[v] = "bit for bit"
        elif np.allclose(got, want, rtol=1e-12, atol=1e-12):
            checks[v] = "to 1e-12"
        else:
            checks[v] = f"WRONG (max {np.abs(got - want).max():.2g})"
        del got
    times: dict[str, list[float]] = {v: [] for v in runs}
    chosen: list[str] = []
    order = list(runs)
    for r in range(rounds):
        for v in order[r % len(order) :] + order[: r % len(order)]:
            t0 = time.perf_counter()
            runs[v]()
            times[v].append(time.perf_counter() - t0)
            if v == "auto":
                chosen.append(_ran_on())
    checks["auto"] += f" (ran on: {', '.join(chosen)})"
    return [(v, statistics.median(times[v]), checks[v]) for v in runs]


def _ran_on() -> str:
    """The backend auto's last call ran on (its plan's, when it followed one)."""
    stats = numpool.last_stats()
    if stats is None:
        return "?"
    plan = getattr(stats, "plan", None)
    return str(plan.backend if plan is not None else stats.backend)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=8000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--filter", choices=("uniform", "correlate"), default="uniform")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--quick", action="store_true", help="a 4000 x 4000 image, 1 round")
    a = p.parse_args()
    size, rounds = (4000, 1) if a.quick else (a.size, a.rounds)
    img = np.random.default_rng(0).random((size, size))
    print(
        f"5x5 {a.filter} filter, {size} x {size} float64 ({img.nbytes / 2**20:,.0f} MiB), "
        f"{os.cpu_count()} cores, median of {rounds} round(s); ratio = serial / variant"
    )
    print(f"{'mode':<9} {'variant':<10} {'seconds':>8} {'ratio':>6}  result")
    for mode in a.modes.split(","):
        rows = measure(img, mode, a.filter, rounds)
        serial = dict((v, s) for v, s, _ in rows)["serial"]
        for v, s, check in rows:
            print(f"{mode:<9} {v:<10} {s:8.3f} {serial / s:6.2f}  {check}")


if __name__ == "__main__":
    main()
