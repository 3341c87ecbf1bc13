"""What numpool's everyday parts cost (issue 17's targets), as ratios in one run.

Run:  python benchmarks/overhead.py [--runs 5]

- import: ``python -X importtime -c "import numpool"`` cumulative time against
  ``import joblib``, each in ``--runs`` fresh interpreters, interleaved (median).
- progress: a 10,000-task ``numpool.map`` (threads, chunksize 10, ~50 us of
  work per task) with ``progress=True`` against ``progress=False``, interleaved
  rounds in one process (median of each; the bar draws to /dev/null), and the
  bar's own cost (a bar advanced over the same 1,000 batches, timed alone).
- tiny: ``numpool.apply(np.exp, x)`` over 10k elements with progress off,
  against plain ``np.exp(x)`` (median of batches); then numpool's own cost per
  call on a settled serial route (the fast path) for each form of apply: one
  array, three arrays, a halo, one and three arrays with ``out=``, ``chunks=2``
  over 10k (blocks in the caller: the engine's cost per block counts), a
  ``Pool("serial")``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time


def import_us(module: str) -> int:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    line = [ln for ln in out.splitlines() if re.search(rf"\|\s+{re.escape(module)}$", ln)][-1]
    return int(line.split("|")[1])


def work(a: object) -> object:
    import numpy as np

    t = time.perf_counter() + 50e-6
    while time.perf_counter() < t:
        pass
    return np.asarray(a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    mods: dict[str, list[int]] = {"numpool": [], "joblib": []}
    for _ in range(args.runs):
        for m in mods:
            mods[m].append(import_us(m))
    med = {m: statistics.median(v) for m, v in mods.items()}
    print(
        f"import: numpool {med['numpool'] / 1e3:.0f} ms, joblib {med['joblib'] / 1e3:.0f} ms "
        f"-> {med['numpool'] / med['joblib']:.2f}x (target <= 1.5x); "
        f"numpool runs {sorted(v // 1000 for v in mods['numpool'])} ms"
    )

    import numpy as np

    import numpool

    items = [np.ones(4)] * 10_000
    with numpool.Pool("threads") as pool, open(os.devnull, "w") as sink:
        real_stderr = sys.stderr
        times: dict[bool, list[float]] = {False: [], True: []}
        pool.map_arrays(work, items, chunksize=10)  # warm
        for i in range(2 * args.runs):
            on = bool(i % 2)
            sys.stderr = sink
            try:
                t0 = time.perf_counter()
                pool.map_arrays(work, items, chunksize=10, progress=on)
                times[on].append(time.perf_counter() - t0)
            finally:
                sys.stderr = real_stderr
    off, on = statistics.median(times[False]), statistics.median(times[True])
    # the bar's own cost, apart from the run's noise: a bar over the same batches
    from numpool._progress import Progress

    batches = 10_000 // 10
    with open(os.devnull, "w") as sink:
        sys.stderr = sink
        try:
            t0 = time.perf_counter()
            for _ in range(20):
                bar = Progress(10_000, "map(work)")
                for _ in range(batches):
                    bar.advance(10)
                bar.close()
            own = (time.perf_counter() - t0) / 20
        finally:
            sys.stderr = real_stderr
    print(
        f"progress: 10,000-task map {off * 1e3:.0f} ms off, {on * 1e3:.0f} ms on "
        f"(medians, {on / off - 1:+.1%}, within the run's noise); the bar itself "
        f"{own * 1e3:.2f} ms = {own / off:.2%} of the run (target < 2%)"
    )

    x = np.random.default_rng(0).random(10_000)
    numpool.apply(np.exp, x)

    def per_call(fn: object, calls: int = 2000) -> float:
        best = []
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()  # type: ignore[operator]
            best.append((time.perf_counter() - t0) / calls)
        return statistics.median(best)

    plain = per_call(lambda: np.exp(x))
    ours = per_call(lambda: numpool.apply(np.exp, x))
    print(
        f"tiny: np.exp over 10k {plain * 1e6:.1f} us, numpool.apply {ours * 1e6:.1f} us "
        f"-> {ours / plain:.2f}x ({(ours - plain) * 1e6:.2f} us over plain; issue 21: <= ~2 us)"
    )
    # the fast path of every form (issue 21): a settled serial route, numpool's own
    # cost per call over plain func(...), by form of the call
    a, b, c = (np.random.default_rng(i).random(1000) for i in range(3))
    img = np.random.default_rng(3).random((8, 64))
    o = np.empty_like(a)

    def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return a * b + c

    def blur(i: np.ndarray) -> np.ndarray:
        o = i.copy()
        o[1:-1] = (i[:-2] + i[1:-1] + i[2:]) / 3
        return o

    forms = {
        "apply(np.exp, x) 1e3": (lambda: np.exp(a), lambda: numpool.apply(np.exp, a)),
        "apply(fma, a, b, c) 1e3": (
            lambda: fma(a, b, c),
            lambda: numpool.apply(fma, a, b, c),
        ),
        "apply(blur, img, overlap=1) 8x64": (
            lambda: blur(img),
            lambda: numpool.apply(blur, img, overlap=1),
        ),
        "apply(np.exp, x, out=o) 1e3": (
            lambda: np.exp(a, out=o),
            lambda: numpool.apply(np.exp, a, out=o),
        ),
        "apply(fma, a, b, c, out=o) 1e3": (
            lambda: np.copyto(o, fma(a, b, c)),
            lambda: numpool.apply(fma, a, b, c, out=o),
        ),
        "apply(np.exp, x, chunks=2) 1e4": (
            lambda: np.exp(x),
            lambda: numpool.apply(np.exp, x, chunks=2),
        ),
        "Pool('serial').apply(np.exp, x) 1e3": (
            lambda: np.exp(a),
            lambda: serial.apply(np.exp, a),
        ),
        "Pool('serial').apply(fma, a, b, c) 1e3": (
            lambda: fma(a, b, c),
            lambda: serial.apply(fma, a, b, c),
        ),
        "apply(np.exp, x, timeout=60) 1e3": (
            lambda: np.exp(a),
            lambda: numpool.apply(np.exp, a, timeout=60),
        ),
        "apply(blur, img, overlap=1, boundary='reflect') 8x64": (
            lambda: blur(np.concatenate([img[:1], img, img[-1:]]))[1:-1],
            lambda: numpool.apply(blur, img, overlap=1, boundary="reflect"),
        ),
    }
    with numpool.Pool("serial") as serial:
        for name, (p_fn, n_fn) in forms.items():
            for _ in range(3):
                n_fn()
            p_s, n_s = per_call(p_fn), per_call(n_fn)
            print(f"fast path: {name}: plain {p_s * 1e6:.2f} us, +{(n_s - p_s) * 1e6:.2f} us")
    ragged(fma)


def ragged(fma: object) -> None:
    """Calls whose lengths change every call (a per-group loop, ragged batches): each
    is a new shape of a size class seen. Rounds of ``numpool.apply`` and plain over
    the same random lengths, new ones each round, interleaved; medians of the rounds'
    time per call."""
    import numpy as np

    import numpool

    rng = np.random.default_rng(7)
    threads = numpool.Pool("threads")
    cases = [
        ("np.exp", 500, 5000, 1000, 1, numpool),
        ("fma(a, b, c)", 500, 5000, 1000, 3, numpool),
        ("np.exp", 200_000, 2_000_000, 60, 1, numpool),
        ("np.exp on Pool('threads')", 500, 5000, 1000, 1, threads),
    ]
    for name, lo, hi, calls, arrays, on in cases:
        data = [rng.random(hi + 2) for _ in range(arrays)]
        func = np.exp if arrays == 1 else fma
        on.apply(func, *(d[:lo] for d in data))  # (the class's first call)
        mine: list[float] = []
        plain: list[float] = []
        for r in range(7):
            lengths = rng.integers(lo, hi, calls)
            for who in (0, 1) if r % 2 else (1, 0):
                t0 = time.perf_counter()
                for n in lengths:
                    args = [d[:n] for d in data]
                    if who:
                        on.apply(func, *args)
                    else:
                        func(*args)  # type: ignore[operator]
                (mine if who else plain).append((time.perf_counter() - t0) / calls)
        m, p = statistics.median(mine), statistics.median(plain)
        print(
            f"ragged: {name} over random lengths {lo:,}-{hi:,}: plain {p * 1e6:.1f} us, "
            f"numpool {m * 1e6:.1f} us a call -> {m / p:.2f}x"
        )
    threads.shutdown()


if __name__ == "__main__":
    main()
