"""backend="auto" against every fixed backend (issue 4), one run, warm pools.

Run:  python benchmarks/auto.py [--pairs N] [--repeat N]

For each workload: auto's first call (measuring included, on a fresh
decision cache), then the calls that settle a close decision, then
interleaved rounds of serial NumPy, numpool on serial/threads/processes and
auto on its settled plan (medians). Ratios are speed-ups over serial NumPy
taken in this run; "vs best" is auto's steady time against the best fixed
backend. Last, np.exp over 10k: each way of calling it against plain np.exp,
as medians of interleaved batches.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import numpool
from numpool import _planner
from numpool.lab.demo import py_loop
from numpool.lab.machine import describe


def per_call(fn: Callable[[], Any], calls: int, repeat: int = 7) -> float:
    """Median over ``repeat`` batches of the time of one call (for microsecond calls)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return float(np.median(times))


def small(pools: dict[str, numpool.Pool], auto: numpool.Pool) -> None:
    """np.exp over 10k: each way of calling it against plain np.exp."""
    s = np.random.default_rng(2).random(10_000)
    plain = per_call(lambda: np.exp(s), 2000)
    print(f"\n## np.exp over 10k\nplain np.exp {plain * 1e6:.2f} us")
    calls = [
        ("numpool.apply(backend='serial')", lambda: numpool.apply(np.exp, s, backend="serial")),
        ("Pool('serial').apply", lambda: pools["serial"].apply(np.exp, s)),
        ("Pool('threads').apply", lambda: pools["threads"].apply(np.exp, s)),
        ("numpool.apply (auto, cached)", lambda: numpool.apply(np.exp, s)),
        ("Pool('auto').apply (cached)", lambda: auto.apply(np.exp, s)),
    ]
    for _, fn in calls:  # decide (and confirm) first
        for _ in range(5):
            fn()
    # ratios of interleaved batches: a slow phase of the machine hits both sides
    ratios: dict[str, list[float]] = {name: [] for name, _ in calls}
    for _ in range(40):
        base = per_call(lambda: np.exp(s), 500, repeat=1)
        for name, fn in calls:
            ratios[name].append(per_call(fn, 500, repeat=1) / base)
    for name, _ in calls:
        r = float(np.median(ratios[name]))
        print(f"  {name:34s} {r * plain * 1e6:8.2f} us  {r:5.2f}x plain")
    print("  " + numpool.last_stats().plan.explain().replace("\n", "\n  "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=100, help="matmul pairs (experiment A: 100)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--only",
        choices=["exp", "loop", "matmul", "small"],
        action="append",
        help="run only these workloads (repeatable; default: all)",
    )
    args = ap.parse_args()
    print(json.dumps(describe(), default=str))
    pools = {b: numpool.Pool(b) for b in ("serial", "threads", "processes")}
    auto = numpool.Pool("auto")
    R = args.repeat

    def workload(
        name: str,
        plain: Callable[[], Any],
        run: Callable[[numpool.Pool], Any],
        r: int,
        pause: float = 0.0,
    ):
        _planner.cache.clear()
        t0 = time.perf_counter()
        run(auto)
        first = time.perf_counter() - t0
        first_plan = auto.last_stats.plan
        settle = []  # a close call runs off: whole calls on each contender in turn
        while not auto.last_stats.plan.settled:  # (the plan each call started from)
            t0 = time.perf_counter()
            run(auto)
            if auto.last_stats.plan.settled:
                break
            settle.append(time.perf_counter() - t0)
        plan = auto.last_stats.plan
        assert plan.cached and plan.settled
        # interleaved rounds: a slow phase of the machine hits every variant alike
        variants: dict[str, Callable[[], Any]] = {"serial NumPy": plain}
        variants.update({b: (lambda p=p: run(p)) for b, p in pools.items()})
        variants["auto"] = lambda: run(auto)
        for fn in variants.values():
            fn()  # warm
        times: dict[str, list[float]] = {k: [] for k in variants}
        names = list(variants)
        for i in range(r):
            # the order rotates and turns, so no variant always follows the same one (auto
            # right after processes ran 8% slower than serial on the same plan); `pause`
            # lets the last variant's BLAS threads stop spinning (~0.1 s). Not for the
            # others: after 0.2 s idle, processes ran py_loop at 1.03x instead of 2.08x
            order = names[i % len(names) :] + names[: i % len(names)]
            for k in order if i % 2 == 0 else order[::-1]:
                time.sleep(pause)
                t0 = time.perf_counter()
                variants[k]()
                times[k].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        ser = med.pop("serial NumPy")
        steady = med.pop("auto")
        best = min(med, key=med.__getitem__)
        print(f"\n## {name}\nserial NumPy {ser * 1e3:.2f} ms (median of {r} interleaved rounds)")
        for b, t in med.items():
            print(f"  {b:10s} {t * 1e3:10.2f} ms  {ser / t:5.2f}x")
        print(
            f"  auto first {first * 1e3:10.2f} ms  {ser / first:5.2f}x  (measuring included; "
            f"chose {first_plan.backend}, trial {first_plan.speedups})\n"
            f"  run-off    {sum(settle) * 1e3:10.2f} ms  for {len(settle)} calls "
            f"{[round(t * 1e3, 1) for t in settle]} on {first_plan.contenders or 'none'}\n"
            f"  auto       {steady * 1e3:10.2f} ms  {ser / steady:5.2f}x  -> {plan.backend}; "
            f"vs best fixed ({best}): {med[best] / steady:.3f}"
        )
        print("  " + plan.explain().replace("\n", "\n  "))
        print("  last call: " + str(auto.last_stats))

    only = set(args.only or ["exp", "loop", "matmul", "small"])
    if "exp" in only:
        x = np.random.default_rng(0).random(10_000_000)
        workload("np.exp over 10M", lambda: np.exp(x), lambda p: p.apply(np.exp, x), 15)
        del x
    if "loop" in only:
        g = np.random.default_rng(1).random(2_000_000)
        workload(
            "py_loop (GIL-holding) over 2M", lambda: py_loop(g), lambda p: p.apply(py_loop, g), R
        )
    if "matmul" in only:
        n = 2000
        a = [np.random.default_rng(i).random((n, n)) for i in range(args.pairs)]
        b = [np.random.default_rng(1000 + i).random((n, n)) for i in range(args.pairs)]
        workload(
            f"matmul batch, {args.pairs} pairs of {n}x{n} (experiment A)",
            lambda: [u @ v for u, v in zip(a, b, strict=True)],
            lambda p: p.map(np.matmul, a, b),
            3,
            pause=0.2,
        )
        del a, b
    if "small" in only:
        small(pools, auto)
    for p in (*pools.values(), auto):
        p.shutdown()


if __name__ == "__main__":
    main()
