"""Timing helpers shared by the demo, ``numpool bench`` and ``benchmarks/``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["median_time"]


def median_time(
    fn: Callable[[], Any], repeat: int, warmup: int = 5, warmup_budget_s: float | None = None
) -> float:
    """Median wall time of ``repeat`` calls of ``fn``, after ``warmup`` untimed calls.

    Several warm-up calls, not one: a fresh processes pool needs a few calls
    before every worker has started and mapped the segments once (measured:
    160 ms, then 11-15 ms, then a steady 5.5 ms for np.exp over 10M
    SharedArray; benchmarks/RESULTS.md). With ``warmup_budget_s``, warming up
    stops after the call that passes it (a 10 s call needs no 5 warm-ups to
    start a pool's workers).
    """
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
        if warmup_budget_s is not None and time.perf_counter() - t0 > warmup_budget_s:
            break
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
