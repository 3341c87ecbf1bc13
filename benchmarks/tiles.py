"""Tiles against strips (issue 24): the same filter, time and memory per block.

Run:  python benchmarks/tiles.py [--size 20000] [--rounds 3] [--backend threads]
                                 [--quick]

``f(b) = scipy.ndimage.uniform_filter(b, 5, mode="reflect")`` over a ``--size`` x
``--size`` float64 image, through ``numpool.apply`` on one backend:

strips   apply(f, img, overlap=2, boundary="reflect")            (axis 0 only)
tiles    apply(f, img, axis=(0, 1), overlap=(2, 2), boundary="reflect")
serial   f(img)

For each: the median wall time of ``--rounds`` calls (order rotating), the
largest block ``f`` was given (MB), and the peak of the memory NumPy
allocated during one call (tracemalloc, to which NumPy reports its arrays:
the blocks' temporaries and results; serial's includes its output, which
numpool takes from recycled memory tracemalloc does not see; in-process
backends only). Results are checked against serial's (to 1e-12:
uniform_filter's running sum restarts at each block). ``--quick``: a 6000 x
6000 image, 1 round. The machine may be shared: compare numbers of one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

import numpool


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backend", default="threads", choices=("threads", "serial", "auto"))
    p.add_argument("--quick", action="store_true", help="a 6000 x 6000 image, 1 round")
    args = p.parse_args()
    size, rounds = (6000, 1) if args.quick else (args.size, args.rounds)
    img = np.random.default_rng(0).random((size, size))
    biggest = [0]

    def f(b: np.ndarray) -> np.ndarray:
        biggest[0] = max(biggest[0], b.nbytes)
        return ndimage.uniform_filter(b, 5, mode="reflect")

    pool = numpool.Pool(args.backend)
    variants: dict[str, Callable[[], Any]] = {
        "serial": lambda: f(img),
        "strips": lambda: pool.apply(f, img, overlap=2, boundary="reflect"),
        "tiles": lambda: pool.apply(f, img, axis=(0, 1), overlap=(2, 2), boundary="reflect"),
    }
    want = variants["serial"]()
    times: dict[str, list[float]] = {k: [] for k in variants}
    block: dict[str, float] = {}
    peak: dict[str, float] = {}
    for name, run in variants.items():  # warm up, check, and measure memory once
        biggest[0] = 0
        tracemalloc.start()
        got = run()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert np.allclose(got, want, rtol=1e-12, atol=0), name
        block[name] = biggest[0] / 1e6
        peak[name] = top / 1e6
        del got
    for r in range(rounds):
        order = list(variants)[r % 3 :] + list(variants)[: r % 3]
        for name in order:
            t = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t)
    serial = statistics.median(times["serial"])
    print(f"{size} x {size} float64, uniform_filter 5x5 reflect, {args.backend}, {rounds} rounds")
    head = ("variant", "median s", "x serial", "largest block MB", "peak MB")
    print(f"{head[0]:<8} {head[1]:>9} {head[2]:>9} {head[3]:>17} {head[4]:>9}")
    for name in variants:
        t = statistics.median(times[name])
        print(f"{name:<8} {t:>9.3f} {serial / t:>9.2f} {block[name]:>17.1f} {peak[name]:>9.1f}")
    pool.shutdown()


if __name__ == "__main__":
    main()
