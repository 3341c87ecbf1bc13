"""Timing helpers shared by the demo, ``numpool bench`` and ``benchmarks/``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["median_time"]


def median_time(fn: Callable[[], Any], repeat: int, warmup: int = 5) -> float:
    """Median wall time of ``repeat`` calls of ``fn``, after ``warmup`` untimed calls.

    Several warm-up calls, not one: a fresh processes pool needs a few calls
    before every worker has started and mapped the segments once (measured:
    160 ms, then 11-15 ms, then a steady 5.5 ms for np.exp over 10M
    SharedArray; benchmarks/RESULTS.md).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
