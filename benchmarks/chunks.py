"""How the number of blocks changes apply's speed: the data behind the defaults.

Run:  python benchmarks/chunks.py [--n 10000000]

np.exp over n float64, warm pools of 2 workers; threads into a fresh output
(the normal case) and into a given out=; processes with SharedArray input
and output. Prints the speed-up against serial np.exp(x) per chunk count.
"""

from __future__ import annotations

import argparse

import numpy as np

import numpool
from numpool.lab.timing import median_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000_000)
    args = ap.parse_args()
    x = np.random.default_rng(0).random(args.n)
    out = np.empty_like(x)
    sx, sout = numpool.share(x), numpool.share(out)
    ser = median_time(lambda: np.exp(x), 9)
    print(f"serial np.exp over {args.n:,}: {ser * 1e3:.2f} ms")
    with numpool.Pool("threads", workers=2) as th, numpool.Pool("processes", workers=2) as pr:
        print(f"{'chunks':>7} {'threads':>9} {'threads out=':>13} {'processes shm':>14}")
        for c in (2, 4, 8, 10, 16, 32, 76):
            t1 = median_time(lambda c=c: th.apply(np.exp, x, chunks=c), 9)
            t2 = median_time(lambda c=c: th.apply(np.exp, x, out=out, chunks=c), 9)
            t3 = median_time(lambda c=c: pr.apply(np.exp, sx, out=sout, chunks=c), 9)
            print(f"{c:7d} {ser / t1:8.2f}x {ser / t2:12.2f}x {ser / t3:13.2f}x", flush=True)


if __name__ == "__main__":
    main()
