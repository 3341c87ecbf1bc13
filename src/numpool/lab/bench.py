"""``numpool bench``: reproduce both experiments, run numpool and peers, report.

Flow::

    plan (sizes; RAM and /dev/shm checked, batch scaled down if needed)
      -> machine facts + hardware limits (copy GB/s, matmul GFLOP/s),
         each measured until its best rounds agree
      -> experiment A (matmul) -> experiment B (exp, B1-B4) -> B5 grid,
         each in a fresh spawned process, reporting every row as it ends
      -> derived figures (speed-up, share of the machine's limit, where
         the time went) -> results.json, report.md, PNG plots, terminal

Every row runs ``--repeat`` times, fewer once its runs have used the row
budget (``--row-budget``; 0: none); a row that stops early says so.
"""

from __future__ import annotations

import datetime as _dt
import math
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import grid, machine, matmul, peers, vector
from .meter import CpuWatch
from .rows import NUMPOOL_BACKENDS, Row, measure

__all__ = ["PARTS", "Plan", "Reporter", "make_plan", "run"]

PARTS = ("matmul", "exp", "grid")
PUBLISHED_PAIRS, PUBLISHED_SIZE, PUBLISHED_ELEMENTS = 100, 2000, 10_000_000
QUICK_PAIRS, QUICK_SIZE, QUICK_ELEMENTS = 10, 800, 1 << 20
#: per-row time budgets (seconds of timed runs), full and --quick
ROW_BUDGET_S, QUICK_ROW_BUDGET_S = 15.0, 1.5
CELL_BUDGET_S, QUICK_CELL_BUDGET_S = 2.5, 0.1
GiB = 1 << 30

EXPERIMENT = {"matmul": "A", "exp": "B", "grid": "B5"}


@dataclass
class Plan:
    """What a bench run will do, decided before it starts."""

    parts: list[str]
    quick: bool
    repeat: int
    workers: int
    out: Path
    peers: bool
    pairs: int
    size: int
    elements: int
    grid_elements: int
    row_budget_s: float
    cell_budget_s: float
    start_method: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def matmul_peak_bytes(pairs: int, size: int, workers: int) -> float:
    """Peak memory of experiment A, dominated by the pickling variants A3/A4.

    Model (bytes per array S): the data 2nS and results nS in the parent,
    one pickled chunk of c = n/w tasks (2cS) and its results (cS) in
    flight, and per worker the chunk received and unpickled plus results
    (4cS): (3 + 3/w + 4) nS, plus one more nS of margin for the other rows.
    """
    s = size * size * 8
    return (8 + 3 / workers) * pairs * s


def make_plan(
    parts: Sequence[str],
    quick: bool,
    repeat: int,
    workers: int | None,
    out: Path,
    peers: bool,
    row_budget_s: float | None = None,
) -> Plan:
    """Decide sizes and budgets; scale experiment A down (and say why) if it cannot fit."""
    facts = machine.describe()
    w = workers or facts["default_workers"]
    if row_budget_s is None:
        row_budget_s = QUICK_ROW_BUDGET_S if quick else ROW_BUDGET_S
    cell_budget = QUICK_CELL_BUDGET_S if quick else CELL_BUDGET_S
    p = Plan(
        parts=list(parts),
        quick=quick,
        repeat=repeat,
        workers=w,
        out=out,
        peers=peers,
        pairs=QUICK_PAIRS if quick else PUBLISHED_PAIRS,
        size=QUICK_SIZE if quick else PUBLISHED_SIZE,
        elements=QUICK_ELEMENTS if quick else PUBLISHED_ELEMENTS,
        # np.split(data, 128) needs a multiple of 128: 2**20 in --quick
        grid_elements=QUICK_ELEMENTS if quick else PUBLISHED_ELEMENTS,
        row_budget_s=row_budget_s,
        cell_budget_s=min(cell_budget, row_budget_s) if row_budget_s else 0.0,
        # what `multiprocessing.Pool()` uses in a plain script here: the experiments
        # run in spawned processes, whose own default would be spawn
        start_method=mp.get_start_method(),
    )
    if quick:
        p.notes.append(
            f"--quick: A is {QUICK_PAIRS} pairs of {QUICK_SIZE}x{QUICK_SIZE} (published: "
            f"{PUBLISHED_PAIRS} of {PUBLISHED_SIZE}x{PUBLISHED_SIZE}), B and B5 "
            f"{QUICK_ELEMENTS:,} elements (published: {PUBLISHED_ELEMENTS:,}); "
            "the calls are the published ones"
        )
    if "matmul" in p.parts:
        avail = 0.85 * facts["memory_available_bytes"]
        shm_free = 0.9 * (facts["shm_free_bytes"] or 0)
        s = p.size * p.size * 8
        fit_ram = math.floor(avail / (matmul_peak_bytes(1, p.size, w)))
        fit_shm = math.floor(shm_free / (3 * s))  # SharedArray row: inputs + results
        fit = min(fit_ram, fit_shm)
        if fit < 1:
            raise MemoryError(
                f"experiment A does not fit even at one pair of {p.size}x{p.size}: "
                f"{avail / GiB:.1f} GiB of RAM and {shm_free / GiB:.1f} GiB of "
                f"{facts['shm_dir']} are free. Try --quick, or `numpool bench exp` / "
                "`numpool bench grid`."
            )
        if fit < p.pairs:
            old = p.pairs
            p.pairs = fit
            if fit_ram <= fit_shm:
                why = f"{avail / GiB:.1f} GiB of RAM is available (85% of what is free)"
            else:
                why = (
                    f"{facts['shm_dir']} has {shm_free / GiB:.1f} GiB free for the SharedArray row"
                )
            p.notes.append(
                f"experiment A scaled down from {old} to {p.pairs} pairs of {p.size}x{p.size}: "
                f"the pickling variants (A3/A4) would need about "
                f"{matmul_peak_bytes(old, p.size, w) / GiB:.1f} GiB at the full size and {why}; "
                "the ratios between rows are what matter, not the batch size"
            )
    return p


# -- progress -------------------------------------------------------------------------


class Reporter(Protocol):
    """What a bench run tells its caller as it goes (the CLI draws it)."""

    def stage(self, text: str) -> None:
        """A step that is not a row (measuring the limits, starting an experiment)."""

    def row_started(self, index: int, total: int, row: dict[str, Any]) -> None:
        """Row ``index`` (1-based) of ``total`` started: ``row`` has id, name, experiment."""

    def run_started(self, run: int, runs: int) -> None:
        """Timed run ``run`` (1-based) of the current row started."""

    def cell(self, index: int, total: int) -> None:
        """Cell ``index`` (1-based) of the B5 grid started."""

    def row_finished(self, index: int, total: int, row: dict[str, Any]) -> None:
        """A row (a B5 grid line: ``row["cells"]``) finished, with its figures."""

    def expected(self, elapsed_s: float, total_s: float) -> None:
        """The whole run is now expected to take ``total_s`` (``elapsed_s`` so far)."""


class Silent:
    """A Reporter that says nothing."""

    def stage(self, text: str) -> None:
        pass

    def row_started(self, index: int, total: int, row: dict[str, Any]) -> None:
        pass

    def run_started(self, run: int, runs: int) -> None:
        pass

    def cell(self, index: int, total: int) -> None:
        pass

    def row_finished(self, index: int, total: int, row: dict[str, Any]) -> None:
        pass

    def expected(self, elapsed_s: float, total_s: float) -> None:
        pass


def planned_rows(plan: Plan) -> dict[str, int]:
    """How many rows each part of the plan shows (B5 counts its 8 grid lines)."""
    n_peers = {"matmul": len(peers.MATMUL), "exp": len(peers.VECTOR)}
    counts = {
        "matmul": 4 + len(NUMPOOL_BACKENDS) + 1 + n_peers["matmul"],
        "exp": 4 + len(NUMPOOL_BACKENDS) + 1 + n_peers["exp"],
        "grid": len(grid.SIZES),
    }
    return {part: counts[part] for part in plan.parts}


#: seconds per row measured on the reference machine (2 cores, benchmarks/RESULTS.md):
#: (untimed setup, one timed run); "<part>:start" is a part's time outside its rows.
#: A's figures scale with the pairs. Only the progress display's "expected" uses them.
REFERENCE_PAIRS = {"full": 69, "quick": QUICK_PAIRS}
REFERENCE_S: dict[str, dict[str, tuple[float, float]]] = {
    # 69 pairs, 2026-11-21, another engineer's tests using ~50% of the CPU during A
    "full": {
        "A1": (0.0, 33.5),
        "A2": (0.0, 73.0),
        "A3": (0.0, 99.5),
        "A4": (0.0, 104.0),
        "numpool-threads": (0.7, 37.7),
        "numpool-processes": (1.4, 35.3),
        "numpool-auto": (103.0, 26.7),
        "numpool-dask": (1.2, 63.6),
        "numpool-processes-shared": (2.6, 34.5),
        "joblib-threads": (0.9, 38.1),
        "dask-threads": (1.7, 42.4),
        "joblib-loky": (3.0, 65.3),
        "B1": (0.1, 0.045),
        "B2": (0.0, 70.6),
        "B3": (0.0, 48.8),
        "B4": (0.1, 1.05),
        "numpool-threads/B": (0.1, 0.016),
        "numpool-processes/B": (1.3, 0.165),
        "numpool-auto/B": (0.8, 0.05),
        "numpool-dask/B": (1.6, 0.6),
        "numpool-processes-shared/B": (0.8, 0.1),
        "joblib-threads/B": (0.8, 0.12),
        "dask-threads/B": (1.5, 0.15),
        "numexpr/B": (0.2, 0.046),
        "joblib-loky/B": (6.6, 1.2),
        "B5": (0.0, 1.4),
        "matmul:start": (57.7, 0.0),
        "exp:start": (7.2, 0.0),
        "grid:start": (2.5, 0.0),
    },
    # 10 pairs of 800x800, 2^20 elements, same day and machine
    "quick": {
        "A1": (0.04, 0.28),
        "A2": (0.02, 1.08),
        "A3": (0.02, 1.49),
        "A4": (0.01, 1.23),
        "numpool-threads": (0.08, 0.2),
        "numpool-processes": (0.49, 0.27),
        "numpool-auto": (0.75, 0.16),
        "numpool-dask": (0.33, 0.59),
        "numpool-processes-shared": (0.15, 0.13),
        "joblib-threads": (0.07, 0.17),
        "dask-threads": (0.11, 0.46),
        "joblib-loky": (0.97, 0.54),
        "B1": (0.02, 0.002),
        "B2": (0.01, 3.9),
        "B3": (0.01, 3.8),
        "B4": (0.02, 0.11),
        "numpool-threads/B": (0.03, 0.003),
        "numpool-processes/B": (0.63, 0.011),
        "numpool-auto/B": (0.03, 0.002),
        "numpool-dask/B": (0.49, 0.14),
        "numpool-processes-shared/B": (0.12, 0.009),
        "joblib-threads/B": (0.14, 0.018),
        "dask-threads/B": (0.12, 0.011),
        "numexpr/B": (0.04, 0.007),
        "joblib-loky/B": (0.6, 0.051),
        "B5": (0.0, 0.19),
        "matmul:start": (3.7, 0.0),
        "exp:start": (3.3, 0.0),
        "grid:start": (0.6, 0.0),
    },
}


def _runs(repeat: int, budget: float, per_run: float) -> int:
    """Timed runs a row makes: ``repeat``, or fewer once the budget is spent."""
    if not budget or per_run <= 0:
        return repeat
    return max(1, min(repeat, math.ceil(budget / per_run)))


def _row_key(part: str, rid: str) -> str:
    """The key of row ``rid`` of ``part`` in REFERENCE_S (numpool and peer rows of B
    end in "/B"; a B5 grid line is "B5-s<splits>")."""
    if part == "exp" and not rid.startswith("B"):
        return f"{rid}/B"
    return rid


def expected_rows(plan: Plan) -> dict[str, float]:
    """Seconds each step of the plan is expected to take on the reference machine:
    "limits", "<part>:start" (process start, data, probes) and "<part>:<row key>"."""
    mode = "quick" if plan.quick else "full"
    ref = REFERENCE_S[mode]
    scale = plan.pairs / REFERENCE_PAIRS[mode]
    out: dict[str, float] = {"limits": 2.0 if plan.quick else 15.0}
    for part in plan.parts:
        out[f"{part}:start"] = ref[f"{part}:start"][0] * (scale if part == "matmul" else 1)
        if part == "grid":
            per = ref["B5"][1]
            line = len(grid.SIZES) * per * _runs(plan.repeat, plan.cell_budget_s, per)
            for s in grid.SIZES:
                out[f"{part}:B5-s{s}"] = line
            continue
        for key, (setup, per) in ref.items():
            in_a = "/" not in key and ":" not in key and not key.startswith("B")
            in_b = key.endswith("/B") or key in ("B1", "B2", "B3", "B4")
            if (part == "matmul" and in_a) or (part == "exp" and in_b):
                if part == "matmul":
                    setup, per = setup * scale, per * scale
                out[f"{part}:{key}"] = setup + per * _runs(plan.repeat, plan.row_budget_s, per)
    return out


def expected_s(plan: Plan) -> dict[str, float]:
    """Seconds each part of the plan is expected to take, from the reference machine."""
    rows = expected_rows(plan)
    return {p: sum(v for k, v in rows.items() if k.startswith(f"{p}:")) for p in plan.parts}


class _Clock:
    """Elapsed time and the expected total: the reference machine's figure for every
    step not done yet, scaled by how the steps done so far compared with theirs."""

    def __init__(self, plan: Plan, reporter: Reporter) -> None:
        self.t0 = time.perf_counter()
        self.estimate = expected_rows(plan)
        self.actual: dict[str, float] = {}
        self.reporter = reporter
        self._part_t0: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def total(self) -> float:
        est_done = sum(self.estimate[k] for k in self.actual if k in self.estimate)
        ratio = sum(self.actual.values()) / est_done if est_done else 1.0
        ratio = min(max(ratio, 0.3), 5.0)
        remaining = sum(v for k, v in self.estimate.items() if k not in self.actual)
        return self.elapsed() + remaining * ratio

    def done(self, key: str, seconds: float) -> None:
        self.actual[key] = seconds

    def start(self, part: str) -> None:
        self._part_t0[part] = time.perf_counter()

    def finish(self, part: str) -> float:
        """Close ``part``; its own overhead is its time not spent in rows."""
        took = time.perf_counter() - self._part_t0[part]
        in_rows = sum(v for k, v in self.actual.items() if k.startswith(f"{part}:"))
        self.actual[f"{part}:start"] = max(0.0, took - in_rows)
        return took

    def tell(self) -> None:
        self.reporter.expected(self.elapsed(), self.total())


# -- the run ----------------------------------------------------------------------------


def run(plan: Plan, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the plan; return the results document (also what results.json holds).

    Each experiment runs in a fresh spawned process: what one experiment
    leaves behind (gigabytes allocated and freed, pools forked from the
    process, which leave its arrays slow to read from several threads) must
    not change the next one's figures. Measured: numpool's threads row of
    experiment B ran 1.9x serial in a process of its own and 1.0-1.3x after
    experiment A in the same process.
    """
    rep: Reporter = reporter or Silent()
    clock = _Clock(plan, rep)
    counts = planned_rows(plan)
    total_rows = sum(counts.values())
    clock.tell()
    rep.stage("measuring the machine's limits (copy bandwidth, matmul GFLOP/s)")
    t0 = time.perf_counter()
    facts = machine.describe()
    watch = CpuWatch()
    doc: dict[str, Any] = {
        "numpool_bench": 2,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["numpool", *sys.argv[1:]]) if sys.argv else "numpool bench",
        "plan": plan.as_dict(),
        "machine": facts,
        "limits": {},
        "experiments": {},
        "rows": [],
        "errors": [],
        "expected_s": expected_s(plan),
    }
    with watch:
        doc["limits"] = machine.limits(plan.quick, facts["usable_cores"])
    doc["limits"]["others_busy"] = watch.share()
    clock.done("limits", time.perf_counter() - t0)
    first = 0
    part_s = {}
    for part in plan.parts:
        clock.start(part)
        clock.tell()
        rep.stage(f"starting experiment {EXPERIMENT[part]} in a fresh process")
        rows, info, error = _in_fresh_process(
            part, plan, rep, clock, first, total_rows, counts[part]
        )
        part_s[part] = clock.finish(part)
        first += counts[part]
        doc["rows"] += rows
        if info is not None:
            doc["experiments"][EXPERIMENT[part]] = info
        if error:
            doc["errors"].append(f"{part}: {error}")
        clock.tell()
    doc["part_s"] = part_s
    doc["duration_s"] = clock.elapsed()
    derive(doc)
    return doc


def _in_fresh_process(
    part: str,
    plan: Plan,
    rep: Reporter,
    clock: _Clock,
    first: int,
    total: int,
    count: int,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """Run one experiment in a spawned process, relaying its progress to ``rep``."""
    ctx = mp.get_context("spawn")
    # SimpleQueue pickles in the sending thread, before a row's meter starts; a Queue's
    # feeder thread would pickle progress messages inside the measured window.
    q = ctx.SimpleQueue()
    proc = ctx.Process(target=_experiment_main, args=(part, plan, q), name=f"bench-{part}")
    proc.start()
    index = first
    grid_line: list[dict[str, Any]] = []
    try:
        while True:
            if q.empty():
                if not proc.is_alive() and q.empty():
                    return [], None, f"the experiment process died (exit code {proc.exitcode})"
                time.sleep(0.05)
                continue
            kind, *payload = q.get()
            if kind == "start":
                if part == "grid":
                    continue
                index = min(index + 1, first + count)
                rep.row_started(index, total, payload[0])
                clock.tell()
            elif kind == "run":
                rep.run_started(*payload)
            elif kind == "cell":
                i, n = payload
                if i % len(grid.SIZES) == 0:
                    index = min(index + 1, first + count)
                    s = grid.SIZES[i // len(grid.SIZES)]
                    rep.row_started(
                        index, total, {"id": f"B5-s{s}", "name": f"B5 grid, splits={s}"}
                    )
                    clock.tell()
                rep.cell(i + 1, n)
            elif kind == "row":
                row = payload[0]
                if part == "grid":
                    grid_line.append(row)
                    if len(grid_line) == len(grid.SIZES):
                        s = row["extra"]["splits"]
                        line = {
                            "id": f"B5-s{s}",
                            "name": f"B5 grid, splits={s}",
                            "experiment": "B5",
                            "cells": grid_line,
                        }
                        took = sum(c["extra"].get("row_s", 0.0) for c in grid_line)
                        clock.done(f"{part}:B5-s{s}", took)
                        clock.tell()
                        rep.row_finished(index, total, line)
                        grid_line = []
                else:
                    key = f"{part}:{_row_key(part, row['id'])}"
                    clock.done(key, row["extra"].get("row_s", 0.0))
                    clock.tell()
                    rep.row_finished(index, total, row)
            elif kind == "done":
                return payload[0], payload[1], None
            elif kind == "error":
                return [], None, payload[0]
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
        q.close()


def _experiment_main(part: str, plan: Plan, q: Any) -> None:
    """Body of the experiment process: run ``part``, send rows and facts back."""
    import traceback

    environ = dict(os.environ)

    def restore_env() -> None:
        """Put os.environ back as it was when the experiment started."""
        for k in set(os.environ) - set(environ):
            del os.environ[k]
        os.environ.update(environ)

    def measurer(budget: float) -> Callable[..., Row]:
        def go(row: Row, fn: Any, **kw: Any) -> Row:
            q.put(("start", {"id": row.id, "name": row.name, "experiment": row.experiment}))
            done = measure(
                row,
                fn,
                plan.repeat,
                budget,
                on_run=lambda i, n: q.put(("run", i + 1, n)),
                **kw,
            )
            q.put(("row", done.as_dict()))
            return done

        return go

    try:
        normal = measurer(plan.row_budget_s)
        if part == "matmul":
            rows, info = matmul.run(
                plan.pairs,
                plan.size,
                plan.workers,
                plan.peers,
                normal,
                plan.start_method,
                restore_env,
            )
        elif part == "exp":
            rows, info = vector.run(
                plan.elements, plan.workers, plan.peers, normal, plan.start_method, restore_env
            )
        else:
            rows, info = grid.run(
                plan.grid_elements,
                plan.workers,
                measurer(plan.cell_budget_s),
                plan.start_method,
                on_cell=lambda i, n: q.put(("cell", i, n)),
            )
        peers.shutdown()
        q.put(("done", [r.as_dict() for r in rows], info))
    except BaseException:
        q.put(("error", traceback.format_exc(limit=8)))


# -- derived figures --------------------------------------------------------------------


def _serial(doc: dict[str, Any], rid: str) -> dict[str, Any] | None:
    for r in doc["rows"]:
        if r["id"] == rid and r["median_s"]:
            return r
    return None


def ideal_s(doc: dict[str, Any], experiment: str) -> dict[str, Any] | None:
    """The shortest time the machine could take for one run of ``experiment``'s work.

    A: the work's flops at the best all-core matmul rate measured (one product on
    all cores, or one per core at once). B: the larger of the compute bound (the
    fastest serial ``exp`` into a preallocated output, over the usable cores)
    and the memory bound (reading and writing the vector at the measured copy
    bandwidth). Built on the fastest figures seen, so that no row can beat it
    except by noise; the report says so when one does.
    """
    lim = doc["limits"]
    cores = doc["machine"]["usable_cores"]
    if experiment == "A" and (a := doc["experiments"].get("A")):
        rate = lim["matmul_flops_limit"]
        return {
            "s": a["flops_per_run"] / rate,
            "compute_1core_s": a["flops_per_run"] / lim["matmul_flops_1core"],
            "bound": "compute",
            "why": f"{a['flops_per_run'] / 1e9:,.0f} GFLOP at {rate / 1e9:.0f} GFLOP/s, "
            "the best all-core matmul rate measured",
        }
    if experiment in ("B", "B5") and (
        b := doc["experiments"].get("B") or doc["experiments"].get("B5")
    ):
        # the fastest serial exp seen: into a preallocated output, or B1 itself if
        # that was faster (both on one core; a busy machine slows either)
        one = b["serial_into_s"]
        b1 = _serial(doc, "B1")
        if b1 is not None and b1["min_s"] < one:
            one = b1["min_s"]
        compute = one / cores
        # copying this very vector on all cores, in the experiment's process: a
        # vector that fits in cache (--quick) copies faster than the machine's
        # bandwidth figure, measured on a larger array
        memory = b.get("copy_s") or 2 * b["bytes"] / lim["copy_bandwidth_Bps"]
        bound = "compute" if compute >= memory else "memory"
        return {
            "s": max(compute, memory),
            "compute_1core_s": one,
            "bound": bound,
            "why": (
                f"the fastest serial exp measured ({one * 1e3:.1f} ms on one core) "
                f"over {cores} cores"
                if bound == "compute"
                else f"copying the {b['bytes'] / 1e6:.0f} MB vector on {cores} cores takes "
                f"{memory * 1e3:.1f} ms at best"
            ),
        }
    return None


def derive(doc: dict[str, Any]) -> None:
    """Add speed-ups, share of the machine's limit and where the time went, in place."""
    cores = doc["machine"]["usable_cores"]
    b1 = _serial(doc, "B1")
    if b1 is None and (g := doc["experiments"].get("B5")):  # `numpool bench grid` alone
        b1 = {"median_s": g["serial_s"]}
    refs = {"A": _serial(doc, "A1"), "B": b1, "B5": b1}
    ideals = {e: ideal_s(doc, e) for e in ("A", "B", "B5")}
    doc["ideal"] = {e: v for e, v in ideals.items() if v}
    for r in doc["rows"]:
        t = r["median_s"]
        if not t:
            continue
        e = r["experiment"]
        ref = refs.get(e)
        r["speedup"] = ref["median_s"] / t if ref else None
        ideal = ideals.get(e)
        if e == "A" and (a := doc["experiments"].get("A")):
            r["gflops"] = a["flops_per_run"] / t / 1e9
        elif e in ("B", "B5"):
            n = (doc["experiments"].get("B") or doc["experiments"]["B5"])["elements"]
            r["gbps"] = 2 * n * 8 / t / 1e9
        if ideal and e != "B5":
            r["of_ideal"] = ideal["s"] / t
            r["time_split"] = time_split(r, t, ideal["compute_1core_s"], cores)


def time_split(r: dict[str, Any], wall: float, compute_1core: float, cores: int) -> dict[str, Any]:
    """Where a row's core-seconds (median wall time x usable cores) went, per run.

    compute: the work itself at the best single-core rate measured; pickling:
    metered in the caller, and in the workers where they were metered;
    copying: numpool's copies into and out of shared memory (Stats.move_s);
    other: the rest (task overhead, waiting, idle cores). The measured parts
    run on different threads and processes at once, so they can add up to
    more than the wall time x cores; then every part is scaled to fit and
    ``overlap`` says by how much.
    """
    capacity = wall * cores
    parts = {
        "compute": compute_1core,
        "pickling": (r.get("parent_pickle_s") or 0.0) + (r.get("worker_pickle_s") or 0.0),
        "copying": r.get("copy_s") or 0.0,
    }
    known = sum(parts.values())
    scale = capacity / known if known > capacity else 1.0
    split = {k: v * scale / capacity for k, v in parts.items()}
    split["other"] = max(0.0, 1.0 - sum(split.values()))
    unmetered = []
    if r.get("transport") in ("shm", "tcp", "loky", "pipes-unmetered"):
        unmetered.append("the workers' pickling")
    if r.get("transport") in ("tcp",):
        unmetered.append("distributed's serialisation")
    if r.get("transport") == "loky":
        unmetered.append("joblib's memmapping")
    return {
        "shares": split,
        "seconds": parts,
        "capacity_s": capacity,
        "overlap": known / capacity if known > capacity else None,
        "unmetered": unmetered,
    }
