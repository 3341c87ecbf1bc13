"""Why auto settles close calls on whole calls: a sample of one block per thread,
right after a serial block, often runs on one vCPU (issue 4).

Run:  python benchmarks/threads_after_serial.py

Plain ThreadPoolExecutor, no numpool: a serial np.exp block of 1.46M rows, then
the same work split into N blocks on 2 threads, 30 rounds each. Printed: the
speed-up's min/median/max and the share of rounds under 1.2x. On the 2-vCPU VM
of benchmarks/RESULTS.md, 2 blocks read under 1.2x in 1 round of 3 (median
1.64x), though np.exp runs at ~2x on 2 threads in whole calls.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np


def main() -> None:
    x = np.random.default_rng(0).random(10_000_000)
    out = np.empty_like(x)
    ex = ThreadPoolExecutor(2)
    barrier = threading.Barrier(2)
    for f in [ex.submit(barrier.wait) for _ in range(2)]:
        f.result()  # both threads started
    k = 1_458_774

    def block(a: int, m: int) -> None:
        np.exp(x[a : a + m], out=out[a : a + m])

    for blocks in (2, 4, 8):
        ratios = []
        for _ in range(30):
            time.sleep(0.01)
            t0 = time.perf_counter()
            np.exp(x[:k], out=out[:k])
            serial = time.perf_counter() - t0
            m = 2 * k // blocks
            t0 = time.perf_counter()
            wait([ex.submit(block, i * m, m) for i in range(blocks)])
            ratios.append(serial * 2 / (time.perf_counter() - t0))
        ratios.sort()
        low = sum(r < 1.2 for r in ratios) / len(ratios)
        print(
            f"{blocks} blocks on 2 threads: speed-up min {ratios[0]:.2f}, median "
            f"{ratios[len(ratios) // 2]:.2f}, max {ratios[-1]:.2f}; rounds under 1.2x: {low:.0%}"
        )
    ex.shutdown()


if __name__ == "__main__":
    main()
