"""The envelope (issue 21): is numpool ever slower than plain NumPy, at any size?

Run:  python benchmarks/envelope.py [--quick] [--procs 5] [--rounds R] [--busy]
                                    [--only exp,fma,...] [--sizes 1e3,1e5,...]
                                    [--workers 2] [--dial-ns 10,1000] [--out DIR]

Only numpool's public API is used (numpool.apply, numpool.Pool, numpool.share,
numpool.last_stats), so the script measures whatever runtime is underneath.

Workloads (rows are elements for 1-D x; ``size`` counts float64 elements):

exp, sin   np.exp / np.sin over a 1-D x.
fma        ``lambda a, b, c: a * b + c`` over three 1-D arrays of ``size``.
loop       a GIL-holding per-element Python loop (sizes 1e2..1e6 only).
blur       a 3x3 box average (NumPy slicing) of a 2-D image of 1024 columns and
           size/1024 rows, ``apply(blur, img, overlap=1)``.
matmul     ``lambda b: b @ b`` over a batch of 8x8 matrices, shape (size/64, 8, 8)
           (at most 1e7 elements).
dial@NS    a func whose cost per row is set to NS nanoseconds (``--dial-ns``, from
           ~1 to 10000): k passes of an in-place multiply-add on a copy of the
           block, k calibrated in each fresh process so that a plain call costs
           NS per row. It releases the GIL as NumPy code does. Sizes are capped so
           that a plain call costs at most ~0.15 s.

Variants (all give the same result, checked once per process):

plain      func(x): serial NumPy, the yardstick (speed-ups are plain / variant).
threads    numpool.Pool("threads", workers=w).apply(func, x, ...)
processes  numpool.Pool("processes", workers=w).apply(...) on plain ndarrays (what
           users pass: the copy into shared memory is part of the time).
shared     the same pool on numpool.share(x) copies made beforehand (no copy in).
auto       numpool.Pool("auto", workers=w).apply(...)
split      by hand: w parts, w-1 on a concurrent.futures.ThreadPoolExecutor kept
           across calls and one in the caller, written into an output allocated
           per call (ufuncs with out=, other funcs by slice assignment).

Each numpool pool is created once per process and warmed up with a few calls.

How it is timed. Each (workload, size) point runs in ``--procs`` fresh Python
processes (this script with a hidden --child flag, printing JSON). In each one:

1. plain func(x): once, then 3 timed calls (their median: ``plain_s``);
2. numpool's one-time start in the process (imports, the default pool, the
   machine profile from its cache), timed on an unrelated tiny call
   (``cold_s`` in the JSON: paid once per process, not per kind of work);
   then auto's first call of this work, ``numpool.apply(func, x, ...)`` on
   the module-level default pool (default workers), and calls 2..``--calls``
   of it, each timed alone, with the backend it ran on;
3. interleaved rounds: every variant once per round, the order rotating (and
   turning every other round). Calls too short to time alone are timed as a
   batch of back-to-back calls (``reps`` in the JSON, per variant): a sample
   is the time per call. Each variant's median over the rounds is that
   process's figure. Rounds: ``--rounds`` if given, else as many as fit ~1.5 s
   per point (at least 3, at most 15; quick: 2..5).

Targets, per process, then per point (the medians over the processes):

(a) auto's median within 1.10x of the best of plain, threads and processes;
(b) from 300k elements on, threads within 1.10x of the hand-written split;
(c) none of auto's calls after the third slower than 1.5x that best (a's);
(d) auto's first call at most 2x plain (``plain_s``).

envelope.md marks a target ✓/✗ on the point's median ratio (the number shown)
and says in how many fresh processes it held ("4/5"); "n/a": not applicable.
Speed-ups in the table (``1.2 ms 1.85x``) are plain / variant, medians over the
processes; envelope.png plots them against size, one panel per workload, the
band spanning the processes' min..max, the grey crosses auto's first call.
A variant can beat plain with no parallelism at all: work done in blocks that
stay in cache (the dial's passes, the blur's temporaries) runs faster than
one pass over the whole array, so auto's serial path, which runs in blocks,
may show ~1.5x on one core.

Output in ``--out`` (default envelope-results/): results.json (every process's
raw samples, the per-point summary and the run's settings), envelope.md,
envelope.png. ``--report DIR`` redraws the last two from DIR/results.json.
``--busy`` keeps one core busy with another process (a Python spin loop) while
measuring. The machine may be shared and noisy: compare figures of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WORKLOADS = ("exp", "sin", "fma", "loop", "blur", "matmul", "dial")
VARIANTS = ("plain", "threads", "processes", "shared", "auto", "split")
#: the variants auto must match: what it chooses among
CHOICES = ("plain", "threads", "processes")
SIZES = (1_000, 10_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000)
QUICK_SIZES = (1_000, 100_000, 3_000_000)
LOOP_SIZES = (100, 1_000, 10_000, 100_000, 300_000, 1_000_000)
QUICK_LOOP_SIZES = (1_000, 300_000)
#: the largest size (elements) of a workload; dial's depends on its cost
CAPS = {"loop": 1_000_000, "matmul": 10_000_000}
#: a dial point's plain call costs at most this
DIAL_CALL_S = 0.15
#: arrays of ``size`` float64 a child holds at its peak, for the memory check
FOOTPRINT = {"fma": 14, "blur": 9}
DEFAULT_FOOTPRINT = 7
TARGET_A, TARGET_B, TARGET_C, TARGET_D = 1.10, 1.10, 1.5, 2.0
B_FROM = 300_000
C_AFTER = 3
#: a timed sample lasts at least this (shorter calls are batched)
MIN_SAMPLE_S = 2e-3
MAX_REPS = 500
#: speed-ups below this are marked on the bottom edge of envelope.png's panels
PLOT_FLOOR = 0.01


# --- the workloads ---------------------------------------------------------------------


def py_loop(b: np.ndarray) -> np.ndarray:
    """Holds the GIL: a Python loop over every element."""
    out = np.empty_like(b)
    for i in range(len(b)):
        v = float(b[i])
        out[i] = math.sqrt(v * v + 1.0) - v
    return out


def blur(img: np.ndarray) -> np.ndarray:
    """3x3 box average of a 2-D image, one output row per input row; the border
    averages the neighbours that exist (so blocks with a 1-row halo give the same
    bits as the whole image)."""
    h, w = img.shape
    v = img.copy()
    v[1:] += img[:-1]
    v[:-1] += img[1:]
    out = v.copy()
    out[:, 1:] += v[:, :-1]
    out[:, :-1] += v[:, 1:]
    rows = np.full(h, 3.0)
    rows[0] -= 1
    rows[-1] -= 1
    cols = np.full(w, 3.0)
    cols[0] -= 1
    cols[-1] -= 1
    out /= np.maximum(rows, 1.0)[:, None] * np.maximum(cols, 1.0)[None, :]
    return out


def make_dial(k: int) -> Callable[[np.ndarray], np.ndarray]:
    """A func of k passes of an in-place multiply-add over a copy of the block."""

    def dial(b: np.ndarray) -> np.ndarray:
        t = b.copy()
        for _ in range(k):
            np.multiply(t, 0.999, out=t)
            np.add(t, 0.001, out=t)
        return t

    return dial


def _best_of(fn: Callable[[], Any], n: int = 3) -> float:
    best = math.inf
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate_dial(x: np.ndarray, ns: float) -> tuple[int, float]:
    """(k, seconds per pass over x) so that make_dial(k)(x) costs ~ns per row: the
    copy's time, then passes timed until they cost well over the copy, then one
    correction at the k found."""
    base = _best_of(lambda: make_dial(0)(x), 5)
    want = ns * 1e-9 * len(x)
    k = 1
    while True:
        t = _best_of(functools.partial(make_dial(k), x))
        if (t - base >= max(2e-3, 2 * base) and t >= want / 4) or k >= 1 << 15:
            break
        k *= 2
    per_pass = max((t - base) / k, 1e-9)
    k = max(0, round((want - base) / per_pass))
    if k > 0:
        t = _best_of(functools.partial(make_dial(k), x), 5 if want < 0.05 else 3)
        per_pass = max((t - base) / k, 1e-9)
        k = max(0, round((want - base) / per_pass))
    return k, per_pass


@dataclass
class Work:
    """One workload at one size, as a child process builds it."""

    func: Callable[..., Any]
    args: tuple[np.ndarray, ...]
    overlap: int = 0
    ufunc: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def build(name: str, size: int) -> Work:
    rng = np.random.default_rng(size)
    if name in ("exp", "sin"):
        return Work(getattr(np, name), (rng.random(size),), ufunc=True)
    if name == "fma":
        abc = (rng.random(size), rng.random(size), rng.random(size))
        return Work(lambda a, b, c: a * b + c, abc)
    if name == "loop":
        return Work(py_loop, (rng.random(size),))
    if name == "blur":
        return Work(blur, (rng.random((max(1, round(size / 1024)), 1024)),), overlap=1)
    if name == "matmul":
        return Work(lambda b: b @ b, (rng.random((max(1, size // 64), 8, 8)),))
    if name.startswith("dial@"):
        ns = float(name[5:])
        x = rng.random(size)
        k, per_pass = calibrate_dial(x, ns)
        return Work(make_dial(k), (x,), extra={"dial_k": k, "dial_pass_s": per_pass})
    raise ValueError(f"unknown workload {name!r}")


def cap(name: str) -> int:
    if name.startswith("dial@"):
        return round(DIAL_CALL_S / (float(name[5:]) * 1e-9))
    return CAPS.get(name, SIZES[-1])


def elements(name: str, size: int) -> int:
    if name == "blur":
        return max(1, round(size / 1024)) * 1024
    if name == "matmul":
        return max(1, size // 64) * 64
    return size


# --- one fresh process -----------------------------------------------------------------


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _batch(fn: Callable[[], Any], reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def _backend_of(stats: Any) -> str:
    """The backend a call ran on, '?' appended when auto ran it to measure it."""
    plan = getattr(stats, "plan", None)
    if plan is not None:
        return f"{plan.backend}{'?' if getattr(plan, 'explore', False) else ''}"
    return str(getattr(stats, "backend", "?"))


class Split:
    """The hand-written w-way split: w-1 parts on a kept ThreadPoolExecutor, the
    last in the caller, each writing its rows of one output."""

    def __init__(self, work: Work, workers: int, like: np.ndarray) -> None:
        self.work = work
        self.shape, self.dtype = like.shape, like.dtype
        self.pool = ThreadPoolExecutor(workers - 1) if workers > 1 else None
        n = len(work.args[0])
        cuts = np.linspace(0, n, workers + 1).round().astype(int)
        self.parts = [(int(a), int(b)) for a, b in itertools.pairwise(cuts) if b > a]

    def _part(self, out: np.ndarray, a: int, b: int) -> None:
        work = self.work
        n = len(work.args[0])
        if work.ufunc:
            work.func(*(x[a:b] for x in work.args), out=out[a:b])
            return
        lo, hi = max(0, a - work.overlap), min(n, b + work.overlap)
        got = work.func(*(x[lo:hi] for x in work.args))
        out[a:b] = got[a - lo : a - lo + (b - a)]

    def __call__(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        *mine, last = self.parts
        futures = [self.pool.submit(self._part, out, a, b) for a, b in mine] if self.pool else []
        if not self.pool:
            for a, b in mine:
                self._part(out, a, b)
        self._part(out, *last)
        for f in futures:
            f.result()
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One fresh process's figures for one (workload, size) point."""
    import numpool

    name, size, w = spec["workload"], spec["size"], spec["workers"]
    work = build(name, size)
    kw: dict[str, Any] = {"overlap": work.overlap} if work.overlap else {}

    def plain() -> Any:
        return work.func(*work.args)

    want = plain()
    plain_s = statistics.median(_timed(plain) for _ in range(3))

    # numpool's one-time start in this process (imports, the default pool, the machine
    # profile read from its cache), on unrelated work: reported apart as ``cold_s``,
    # since it is paid once per process, not per kind of work
    cold_s = _timed(lambda: numpool.apply(np.negative, np.ones(16)))

    # auto's first calls of this work (a kind of work it has never seen), then 2..k
    calls_s, calls_on, first_ran = [], [], "?"
    for _ in range(spec["calls"]):
        calls_s.append(_timed(lambda: numpool.apply(work.func, *work.args, **kw)))
        calls_on.append(_backend_of(numpool.last_stats()))
        if len(calls_on) == 1:
            first_ran = str(getattr(numpool.last_stats(), "backend", "?"))
    first_ok = bool(np.array_equal(numpool.apply(work.func, *work.args, **kw), want))

    pools = {b: numpool.Pool(b, workers=w) for b in ("threads", "processes", "auto")}
    shared = tuple(numpool.share(x) for x in work.args)
    split = Split(work, w, want)
    variants: dict[str, Callable[[], Any]] = {
        "plain": plain,
        "threads": lambda: pools["threads"].apply(work.func, *work.args, **kw),
        "processes": lambda: pools["processes"].apply(work.func, *work.args, **kw),
        "shared": lambda: pools["processes"].apply(work.func, *shared, **kw),
        "auto": lambda: pools["auto"].apply(work.func, *work.args, **kw),
        "split": split,
    }
    errors: dict[str, str] = {}
    exact: dict[str, bool] = {"auto (first calls)": first_ok}
    last_s: dict[str, float] = {}
    warmup = 2 if plain_s > 0.05 else 3
    for k in list(variants):
        try:
            exact[k] = bool(np.array_equal(variants[k](), want))
            last_s[k] = min(_timed(variants[k]) for _ in range(warmup - 1))
        except Exception as e:  # a failing variant is reported, not fatal
            errors[k] = f"{type(e).__name__}: {e}"
            del variants[k]
    del want

    # interleaved rounds; short calls timed in batches
    reps = {
        k: max(1, min(MAX_REPS, math.ceil(MIN_SAMPLE_S / max(t, 1e-7)))) for k, t in last_s.items()
    }
    per_round = sum(reps[k] * t for k, t in last_s.items())
    if spec["rounds"]:
        rounds = spec["rounds"]
    else:
        lo, hi = spec["min_rounds"], spec["max_rounds"]
        rounds = max(lo, min(hi, int(spec["round_budget_s"] / max(per_round, 1e-9))))
    samples: dict[str, list[float]] = {k: [] for k in variants}
    auto_on: list[str] = []
    names = list(variants)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for k in order if r % 2 == 0 else order[::-1]:
            if k not in variants:
                continue
            try:
                samples[k].append(_batch(variants[k], reps[k]))
            except Exception as e:
                errors[k] = f"{type(e).__name__}: {e}"
                del variants[k]
                continue
            if k == "auto":
                auto_on.append(_backend_of(pools["auto"].last_stats))
    medians = {k: statistics.median(v) for k, v in samples.items() if v}
    explain = ""
    plan = getattr(pools["auto"].last_stats, "plan", None)
    if plan is not None:
        with contextlib.suppress(Exception):
            explain = plan.explain()
    split.close()
    for p in pools.values():
        p.shutdown()
    for s in shared:
        with contextlib.suppress(Exception):
            s.close()
    return {
        "workload": name,
        "size": size,
        "elements": int(work.args[0].size),
        "shape": list(work.args[0].shape),
        "workers": w,
        "pid": os.getpid(),
        "plain_s": plain_s,
        "first_s": calls_s[0],
        "cold_s": cold_s,
        "calls_s": calls_s,
        "calls_on": calls_on,
        "first_ran": first_ran,
        "rounds": rounds,
        "reps": reps,
        "samples": samples,
        "medians": medians,
        "auto_on": auto_on,
        "auto_explain": explain,
        "exact": exact,
        "errors": errors,
        **work.extra,
    }


# --- targets and summaries -------------------------------------------------------------


def targets(run: dict[str, Any]) -> dict[str, float | None]:
    """One process's target ratios (None: not applicable or not measured)."""
    m = run["medians"]
    choices = [m[k] for k in CHOICES if k in m]
    best = min(choices) if choices else None
    out: dict[str, float | None] = {"a": None, "b": None, "c": None, "d": None}
    if best and "auto" in m:
        out["a"] = m["auto"] / best
    if run["elements"] >= B_FROM and "threads" in m and "split" in m:
        out["b"] = m["threads"] / m["split"]
    later = run["calls_s"][C_AFTER:]
    if best and later:
        out["c"] = max(later) / best
    if run["plain_s"] > 0:
        out["d"] = run["first_s"] / run["plain_s"]
    return out


LIMITS = {"a": TARGET_A, "b": TARGET_B, "c": TARGET_C, "d": TARGET_D}
TARGET_TEXT = {
    "a": f"auto <= {TARGET_A:.2f}x best",
    "b": f"threads <= {TARGET_B:.2f}x split",
    "c": f"calls {C_AFTER + 1}+ <= {TARGET_C:g}x best",
    "d": f"1st call <= {TARGET_D:g}x plain",
}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (workload, size): medians over the processes, speed-ups, targets."""
    points: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        if r.get("ok"):
            points.setdefault((r["workload"], r["size"]), []).append(r)
    out = []
    for (name, size), rs in points.items():
        medians, speedup = {}, {}
        for v in VARIANTS:
            ts = [r["medians"][v] for r in rs if v in r["medians"]]
            if ts:
                medians[v] = statistics.median(ts)
            sp = [r["medians"]["plain"] / r["medians"][v] for r in rs if v in r["medians"]]
            if sp and all("plain" in r["medians"] for r in rs):
                speedup[v] = {"median": statistics.median(sp), "min": min(sp), "max": max(sp)}
        first = [r["plain_s"] / r["first_s"] for r in rs]
        tg: dict[str, Any] = {}
        for key, limit in LIMITS.items():
            ratios = [t for t in (targets(r)[key] for r in rs) if t is not None]
            if not ratios:
                tg[key] = None
                continue
            med = statistics.median(ratios)
            tg[key] = {
                "ratio": med,
                "ok": med <= limit,
                "held": sum(t <= limit for t in ratios),
                "of": len(ratios),
                "ratios": ratios,
            }
        on: dict[str, int] = {}
        later: dict[str, int] = {}
        for r in rs:
            for b in r["auto_on"]:
                on[b] = on.get(b, 0) + 1
            for b in r["calls_on"][1:]:
                later[b] = later.get(b, 0) + 1
        plain_ns = [
            r["medians"]["plain"] / r["elements"] * 1e9 for r in rs if "plain" in r["medians"]
        ]
        out.append(
            {
                "workload": name,
                "size": size,
                "elements": rs[0]["elements"],
                "procs": len(rs),
                "medians": medians,
                "speedup": speedup,
                "first_speedup": {
                    "median": statistics.median(first),
                    "min": min(first),
                    "max": max(first),
                },
                "targets": tg,
                "auto_on": on,
                "first_on": sorted({r["calls_on"][0] for r in rs}),
                "first_ran": sorted({r.get("first_ran", "?") for r in rs}),
                "calls_on": later,
                "plain_ns_per_element": statistics.median(plain_ns) if plain_ns else None,
                "cold_s": statistics.median(r.get("cold_s", 0.0) for r in rs),
                "errors": sorted({f"{k}: {e}" for r in rs for k, e in r["errors"].items()}),
                "inexact": sorted({k for r in rs for k, ok in r["exact"].items() if not ok}),
            }
        )
    return out


def fmt_size(n: int) -> str:
    e = math.floor(math.log10(n)) if n > 0 else 0
    m = n / 10**e
    return f"{m:g}e{e}" if m == round(m) else f"{n:,}"


def fmt_x(r: float) -> str:
    """A ratio with two decimals, or two significant digits when far from 1."""
    if r >= 100:
        return f"{r:.0f}"
    if r >= 0.1:
        return f"{r:.2f}"
    return f"{r:.2g}"


def fmt_s(s: float) -> str:
    for unit, f in (("s", 1.0), ("ms", 1e3), ("us", 1e6)):
        if s * f >= 1 or unit == "us":
            return f"{s * f:.3g} {unit}"
    return ""


def title(name: str) -> str:
    if name.startswith("dial@"):
        return f"dial {float(name[5:]):g} ns/row"
    return {
        "exp": "np.exp",
        "sin": "np.sin",
        "fma": "a * b + c",
        "loop": "Python loop (GIL)",
        "blur": "3x3 blur, 1024 cols",
        "matmul": "8x8 matmul batch",
    }.get(name, name)


def markdown(meta: dict[str, Any], points: list[dict[str, Any]], failed: list[str]) -> str:
    lines = [
        "# numpool against plain NumPy: the envelope (issue 21)",
        "",
        f"`{meta['command']}`: {meta['procs']} fresh processes per point, "
        f"workers={meta['workers']}, {meta['cpus']} CPUs, "
        f"{'one core kept busy, ' if meta['busy'] else ''}"
        f"numpy {meta['numpy']}, numpool {meta['numpool']} "
        f"(commit {meta.get('commit') or '?'}"
        f"{', with uncommitted changes to src/' if meta.get('changed') else ''}), "
        f"Python {meta['python']}, "
        f"{meta['elapsed_s'] / 60:.1f} min.",
        "",
        "Times: medians over the processes of each process's median per call. "
        "`1.85x`: speed-up against plain (above 1 is faster). Targets: the median ratio over "
        "the processes, ✓ when within the limit, and in how many processes it held; "
        "n/a: not applicable. auto on: the backends auto's pool ran in the rounds "
        "(`?`: a call run to measure that backend). "
        + "; ".join(f"({k}) {v}" for k, v in TARGET_TEXT.items()),
        "",
    ]
    if points:
        held = {
            k: (
                sum(1 for p in points if p["targets"][k] and p["targets"][k]["ok"]),
                sum(1 for p in points if p["targets"][k]),
            )
            for k in LIMITS
        }
        lines += [
            "Points meeting each target: "
            + ", ".join(f"({k}) {a} of {b}" for k, (a, b) in held.items()),
            "",
        ]
    head = ["workload", "size", *VARIANTS, "auto on", *(f"({k})" for k in LIMITS)]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in points:
        cells = [title(p["workload"]), fmt_size(p["size"])]
        for v in VARIANTS:
            if v not in p["medians"]:
                cells.append("error" if any(e.startswith(v) for e in p["errors"]) else "")
                continue
            sp = p["speedup"].get(v)
            text = fmt_s(p["medians"][v])
            cells.append(text if v == "plain" or not sp else f"{text} {fmt_x(sp['median'])}x")
        cells.append(", ".join(f"{b} {n}" for b, n in sorted(p["auto_on"].items())))
        for k in LIMITS:
            t = p["targets"][k]
            cells.append(
                "n/a"
                if not t
                else f"{'✓' if t['ok'] else '✗'} {fmt_x(t['ratio'])} ({t['held']}/{t['of']})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    for p in points:
        where = f"{title(p['workload'])} {fmt_size(p['size'])}"
        notes += [f"- {where}: {e}" for e in p["errors"]]
        if p["inexact"]:
            notes.append(f"- {where}: not bit-equal to plain: {', '.join(p['inexact'])}")
        if len(p["first_on"]) > 1 or len(p["auto_on"]) > 1 or len(p["calls_on"]) > 1:
            notes.append(
                f"- {where}: auto's first calls ran on {', '.join(p['first_ran'])}, then "
                f"{', '.join(f'{b} x{n}' for b, n in sorted(p['calls_on'].items()))}; "
                f"its pool in the rounds on "
                f"{', '.join(f'{b} x{n}' for b, n in sorted(p['auto_on'].items()))}"
            )
        if p["workload"].startswith("dial@") and p["plain_ns_per_element"]:
            notes.append(f"- {where}: plain cost {p['plain_ns_per_element']:.3g} ns per row")
    notes += [f"- {f}" for f in failed]
    cold = [p["cold_s"] for p in points if p.get("cold_s")]
    if cold:
        notes.append(
            f"- numpool's one-time start in a fresh process (imports, default pool, machine "
            f"profile; not in (d)): median {fmt_s(statistics.median(cold))}, "
            f"max {fmt_s(max(cold))} over the points"
        )
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def plot(meta: dict[str, Any], points: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    names = list(dict.fromkeys(p["workload"] for p in points))
    if not names:
        return
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    colors = {
        "threads": "tab:blue",
        "processes": "tab:orange",
        "shared": "tab:brown",
        "auto": "tab:green",
        "split": "tab:purple",
    }
    handles: dict[str, Any] = {}
    for ax, name in zip(axes.flat, names, strict=False):
        ps = sorted((p for p in points if p["workload"] == name), key=lambda p: p["elements"])
        xs = [p["elements"] for p in ps]
        lines = {
            v: [(x, p["speedup"][v]) for x, p in zip(xs, ps, strict=True) if v in p["speedup"]]
            for v in colors
        }
        first = [(x, p["first_speedup"]["median"]) for x, p in zip(xs, ps, strict=True)]
        every = [1.0, *(g[1][k] for got in lines.values() for g in got for k in ("min", "max"))]
        every += [f for _, f in first]
        lo_y, hi_y = max(min(every), PLOT_FLOOR) / 1.3, max(every) * 1.25
        below = lo_y * 1.12  # where a figure under the axis is marked
        for v, got in lines.items():
            if not got:
                continue
            x = [g[0] for g in got]
            med = [g[1]["median"] for g in got]
            color = colors[v]
            width = 2.4 if v == "auto" else 1.4
            (handles[v],) = ax.plot(x, med, "o-", color=color, lw=width, ms=3.5, label=v, zorder=3)
            lo = [g[1]["min"] for g in got]
            hi = [g[1]["max"] for g in got]
            ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
            off = [xi for xi, m in zip(x, med, strict=True) if m < lo_y]
            if off:
                ax.plot(off, [below] * len(off), "v", color=color, ms=6, zorder=4)
        fx = [x for x, f in first if f >= lo_y]
        handles["auto 1st call"] = ax.plot(
            fx, [f for _, f in first if f >= lo_y], "x", color="0.4", ms=6, label="auto 1st call"
        )[0]
        off = [x for x, f in first if f < lo_y]
        if off:
            ax.plot(off, [below] * len(off), "x", color="0.4", ms=6)
        handles["plain"] = ax.axhline(1.0, color="black", lw=1, ls="--", label="plain")
        ax.axhline(1 / TARGET_A, color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(lo_y, hi_y)
        ticks = [
            m * 10.0**e for e in range(-3, 2) for m in (1, 2, 5) if lo_y <= m * 10.0**e <= hi_y
        ]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.set_title(title(name), fontsize=11)
        ax.set_xlabel("elements (log)")
        ax.set_ylabel("speed-up over plain NumPy")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.legend(
        list(handles.values()), list(handles), loc="lower center", ncol=len(handles), frameon=False
    )
    fig.suptitle(
        f"numpool vs plain NumPy: median of {meta['procs']} fresh processes, band = min..max, "
        f"workers={meta['workers']}, {meta['cpus']} CPUs"
        f"{', one core busy' if meta['busy'] else ''}\n"
        f"dotted: 1/{TARGET_A:.2f} (target a); markers on the bottom edge: "
        f"below {PLOT_FLOOR:g}x",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the parent ------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        return [int(float(s.replace("_", ""))) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are numbers like 1e6,3e6: {text!r}") from None


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"a whole number >= 1, not {text!r}")
    return n


def _ns(text: str) -> list[float]:
    try:
        got = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dial-ns takes numbers: {text!r}") from None
    if not got or min(got) <= 0:
        raise argparse.ArgumentTypeError("--dial-ns: nanoseconds per row, > 0")
    return got


def plan_points(args: argparse.Namespace) -> tuple[list[tuple[str, int]], list[str]]:
    """The (workload, size) points to measure, and why some were left out."""
    import psutil

    names: list[str] = []
    for n in args.only.split(","):
        n = n.strip()
        if n == "dial":
            names += [f"dial@{ns:g}" for ns in args.dial_ns]
        elif n in WORKLOADS or (n.startswith("dial@") and _ns(n[5:])):
            names.append(n)
        elif n:
            raise SystemExit(f"unknown workload {n!r}; choose from {', '.join(WORKLOADS)}")
    avail = psutil.virtual_memory().available
    points, skipped = [], []
    for name in dict.fromkeys(names):
        if args.sizes:
            sizes = args.sizes
        elif name == "loop":
            sizes = list(QUICK_LOOP_SIZES if args.quick else LOOP_SIZES)
        else:
            sizes = list(QUICK_SIZES if args.quick else SIZES)
        for size in sizes:
            need = FOOTPRINT.get(name, DEFAULT_FOOTPRINT) * 8 * elements(name, size)
            if size > cap(name):
                skipped.append(
                    f"{title(name)} {fmt_size(size)}: over its cap {fmt_size(cap(name))}"
                )
            elif need > 0.6 * avail:
                skipped.append(
                    f"{title(name)} {fmt_size(size)}: needs ~{need / 2**30:.1f} GiB, "
                    f"{avail / 2**30:.1f} GiB available"
                )
            else:
                points.append((name, size))
    return points, skipped


def _git(*args: str) -> str:
    """numpool's checkout as git sees it ('' when this is no checkout)."""
    try:
        p = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return p.stdout.strip() if p.returncode == 0 else ""


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**spec, "ok": False, "error": f"no answer in {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if p.returncode != 0 or not p.stdout.strip():
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {**spec, "ok": False, "error": f"exit {p.returncode}: {tail}", "wall_s": wall}
    got = json.loads(p.stdout.strip().splitlines()[-1])
    return {**spec, **got, "ok": True, "wall_s": wall, "stderr": p.stderr[-2000:]}


def write_report(out: str, meta: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    points = summarize(runs)
    failed = [
        f"{title(r['workload'])} {fmt_size(r['size'])}, process {r['proc'] + 1}: {r['error']}"
        for r in runs
        if not r.get("ok")
    ]
    failed += meta.get("skipped", [])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "points": points, "runs": runs}, f, indent=1)
    md = markdown(meta, points, failed)
    with open(os.path.join(out, "envelope.md"), "w") as f:
        f.write(md)
    plot(meta, points, os.path.join(out, "envelope.png"))
    return md


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="fewer sizes (1e3,1e5,3e6; loop 1e3,3e5), 2..5 rounds, 6 auto calls, 2 processes "
        "(about 2 min on 2 cores)",
    )
    ap.add_argument(
        "--procs", type=_positive, help="fresh processes per point (default 5; quick 2)"
    )
    ap.add_argument(
        "--rounds",
        type=_positive,
        help="interleaved rounds per process (default: fit ~1.5 s per point, 3..15)",
    )
    ap.add_argument(
        "--calls",
        type=_positive,
        help="auto calls timed one by one, the first included (default 8)",
    )
    ap.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads (default {','.join(WORKLOADS)}); "
        "dial@NS is one dial cost",
    )
    ap.add_argument(
        "--sizes",
        type=_sizes,
        help="comma-separated sizes in elements, e.g. 1e3,3e5 (default 1e3..3e7; loop "
        "1e2..1e6); sizes over a workload's cap are left out",
    )
    ap.add_argument(
        "--workers",
        type=_positive,
        default=2,
        help="w: workers of each pool and parts of the split",
    )
    ap.add_argument(
        "--dial-ns",
        type=_ns,
        default=[10.0, 1000.0],
        help="the dial's costs per row in ns, one workload each (default 10,1000)",
    )
    ap.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    ap.add_argument("--out", default="envelope-results", help="output folder")
    ap.add_argument(
        "--timeout", type=float, default=900, help="seconds one fresh process may take"
    )
    ap.add_argument("--report", metavar="DIR", help="redraw DIR's report from its results.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    return ap


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.report:
        with open(os.path.join(args.report, "results.json")) as f:
            saved = json.load(f)
        print(write_report(args.report, saved["meta"], saved["runs"]))
        return
    procs = args.procs or (2 if args.quick else 5)
    points, skipped = plan_points(args)
    import numpool

    meta: dict[str, Any] = {
        "command": " ".join(
            ["python benchmarks/envelope.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "procs": procs,
        "workers": args.workers,
        "busy": args.busy,
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "machine": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpool": numpool.__version__,
        "commit": _git("rev-parse", "--short", "HEAD"),
        #: uncommitted changes to numpool's source: the figures are of those
        "changed": _git("status", "--porcelain", "--", ":(top)src").splitlines(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "skipped": skipped,
        "elapsed_s": 0.0,
    }
    spec_base = {
        "workers": args.workers,
        "calls": args.calls or (6 if args.quick else 8),
        "rounds": args.rounds,
        "min_rounds": 2 if args.quick else 3,
        "max_rounds": 5 if args.quick else 15,
        "round_budget_s": 1.0 if args.quick else 1.5,
    }
    print(
        f"{len(points)} points x {procs} fresh processes, workers={args.workers}"
        + (", one core kept busy" if args.busy else ""),
        flush=True,
    )
    for s in skipped:
        print(f"  left out: {s}")
    runs: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    hog, interrupted = None, False
    if args.busy:
        hog = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], stderr=subprocess.DEVNULL
        )
    try:
        total = len(points) * procs
        for proc in range(procs):  # every point once, then again: drift spreads over all
            for name, size in points:
                r = run_child(
                    {**spec_base, "workload": name, "size": size, "proc": proc}, args.timeout
                )
                runs.append(r)
                done = len(runs)
                spent = time.perf_counter() - t_start
                if r["ok"]:
                    m = r["medians"]
                    what = " ".join(f"{k} {fmt_s(v)}" for k, v in m.items())
                    what += f" | 1st {fmt_s(r['first_s'])} on {r['calls_on'][0]}"
                else:
                    what = f"FAILED: {r['error']}"
                left = spent / done * (total - done)
                print(
                    f"[{done}/{total} {spent / 60:.1f} min, ~{left / 60:.1f} left] "
                    f"{title(name)} {fmt_size(size)} #{proc + 1}: {what}",
                    flush=True,
                )
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: writing what was measured", file=sys.stderr)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        meta["elapsed_s"] = time.perf_counter() - t_start
        if runs:
            md = write_report(args.out, meta, runs)
            print()
            print(md)
            print(f"written: {os.path.join(args.out, 'results.json')}, envelope.md, envelope.png")
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
