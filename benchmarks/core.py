"""Core engine benchmarks (issue 2): ratios against serial NumPy, one run, warm pools.

Run:  python benchmarks/core.py [--quick] [--json FILE]

Prints one line per measurement: the median of the repeats, and the ratio
(speed-up) against its serial reference measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import psutil

import numpool
from numpool.lab.demo import py_loop
from numpool.lab.machine import describe
from numpool.lab.timing import median_time

STAGED_NOTE = "; parent only: the staged copy of x (workers write the shared output)"


def _vm_hwm() -> int:
    """Peak resident memory of this process since the last reset (Linux VmHWM), bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_memory(backend: str, scale: int) -> None:
    """Print the peak RSS of one apply call relative to input + output (Linux only)."""
    x = np.random.default_rng(0).random(10_000_000 // scale)
    pool = numpool.Pool(backend)
    pool.apply(np.exp, x[:1000])  # start the workers; not part of the measured call
    rss = psutil.Process().memory_info().rss
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    y = pool.apply(np.exp, x)
    grown = _vm_hwm() - rss
    ratio = (x.nbytes + grown) / (x.nbytes + y.nbytes)
    print(
        f"{ratio:.3f} peak RSS grew {grown / 2**20:.1f} MiB for input {x.nbytes / 2**20:.0f} "
        f"MiB + output {y.nbytes / 2**20:.0f} MiB: peak = {ratio:.3f} x (input + output)"
        f"{'' if backend == 'threads' else STAGED_NOTE}"
    )
    pool.shutdown()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--peak-memory":
        peak_memory(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10x smaller, for a smoke run")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    rows: list[dict[str, Any]] = []

    def report(name: str, t: float, ref: float | None = None, note: str = "") -> None:
        ratio = ref / t if ref else None
        rows.append({"name": name, "seconds": t, "speedup": ratio, "note": note})
        r = f"{ratio:6.2f}x" if ratio else "       "
        print(f"{name:58s} {t * 1e3:10.2f} ms {r} {note}", flush=True)

    print(json.dumps(describe(), default=str))
    threads = numpool.Pool("threads")
    procs = numpool.Pool("processes")
    pickle = numpool.Pool("pickle")
    R = args.repeat

    # 1. np.exp over 10M float64
    x = np.random.default_rng(0).random(10_000_000 // scale)
    ser = median_time(lambda: np.exp(x), R)
    report("exp 10M: serial np.exp(x)", ser)
    report("exp 10M: threads apply", median_time(lambda: threads.apply(np.exp, x), R), ser)
    sx, sout = numpool.share(x), numpool.share(np.empty_like(x))
    report(
        "exp 10M: processes apply, SharedArray x and out",
        median_time(lambda: procs.apply(np.exp, sx, out=sout), R),
        ser,
    )
    report(
        "exp 10M: processes apply, plain x (copied in)",
        median_time(lambda: procs.apply(np.exp, x), R),
        ser,
    )
    t_pickle_exp = median_time(lambda: pickle.apply(np.exp, x), max(3, R // 2))
    report("exp 10M: pickle apply", t_pickle_exp, ser)

    # 2. GIL-holding function over 1M elements
    g = np.random.default_rng(1).random(1_000_000 // scale)
    ser_g = median_time(lambda: py_loop(g), 3)
    report("py_loop 1M: serial", ser_g)
    report("py_loop 1M: threads apply", median_time(lambda: threads.apply(py_loop, g), 3), ser_g)
    report("py_loop 1M: processes apply", median_time(lambda: procs.apply(py_loop, g), 3), ser_g)

    # 3. map(np.matmul) over 20 pairs of 2000x2000
    n = 2000 if not args.quick else 600
    d1 = [np.ones((n, n)) for _ in range(20)]
    d2 = [np.ones((n, n)) for _ in range(20)]
    ser_m = median_time(lambda: [a.dot(b) for a, b in zip(d1, d2, strict=True)], 3)
    report(f"matmul 20x{n}^2: serial list comprehension, BLAS on all cores", ser_m)
    t_thr = median_time(lambda: threads.map(np.matmul, d1, d2), 3)
    report(f"matmul 20x{n}^2: threads map", t_thr, ser_m)
    t_proc = median_time(lambda: procs.map(np.matmul, d1, d2), 3)
    report(f"matmul 20x{n}^2: processes map", t_proc, ser_m)
    t_pick = median_time(lambda: pickle.map(np.matmul, d1, d2), 2)
    report(
        f"matmul 20x{n}^2: pickle map",
        t_pick,
        ser_m,
        f"threads {t_pick / t_thr:.1f}x / processes {t_pick / t_proc:.1f}x faster than pickle",
    )

    # 4. processes with a plain 800 MB input: transport overhead vs memcpy
    big = np.random.default_rng(2).random(100_000_000 // scale)
    dst = np.empty_like(big)
    t_copy = median_time(lambda: np.copyto(dst, big), 3)
    report("800 MB: one memcpy", t_copy)
    sbig = numpool.share(big)
    t_shared = median_time(lambda: procs.apply(np.negative, sbig), 3)
    t_plain = median_time(lambda: procs.apply(np.negative, big), 3)
    report("800 MB: processes apply(np.negative), SharedArray input", t_shared)
    report(
        "800 MB: processes apply(np.negative), plain input",
        t_plain,
        None,
        f"overhead {(t_plain - t_shared) * 1e3:.0f} ms = {(t_plain - t_shared) / t_copy:.2f} "
        "memcpy's",
    )

    # 5. peak memory of apply, in fresh processes (RSS counts mmap'd outputs too)
    for backend in ("threads", "processes"):
        r = subprocess.run(
            [sys.executable, __file__, "--peak-memory", backend, str(scale)],
            capture_output=True,
            text=True,
            check=True,
        )
        _, note = r.stdout.strip().split(" ", 1)
        report(f"peak memory of {backend} apply(np.exp, x), first call", 0.0, None, note)

    for p in (threads, procs, pickle):
        p.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": describe(), "rows": rows, "pid": os.getpid()}, f, indent=1)


if __name__ == "__main__":
    main()
