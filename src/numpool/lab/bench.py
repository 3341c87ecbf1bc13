"""``numpool bench``: reproduce both experiments, run numpool and peers, report.

Flow::

    plan (sizes; RAM and /dev/shm checked, batch scaled down if needed)
      -> machine facts + hardware limits (copy GB/s, matmul GFLOP/s)
      -> experiment A (matmul) -> experiment B (exp, B1-B4) -> B5 grid
      -> derived figures (speed-up, % of hardware) -> results.json,
         report.md, PNG plots, terminal tables

Every row is repeated up to ``--repeat`` times, fewer once it has used its
time budget, so the default run fits in about 8 minutes on 2 cores.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._cpus import physical_cores, usable_cpus
from ..shm import shm_dir
from . import grid, machine, matmul, peers, vector
from .rows import Row, measure

__all__ = ["PARTS", "Plan", "make_plan", "run"]

PARTS = ("matmul", "exp", "grid")
PUBLISHED_PAIRS, PUBLISHED_SIZE, PUBLISHED_ELEMENTS = 100, 2000, 10_000_000
GiB = 1 << 30


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
    parts: Sequence[str], quick: bool, repeat: int, workers: int | None, out: Path, peers: bool
) -> Plan:
    import psutil

    w = workers or max(1, min(physical_cores(), usable_cpus()))
    p = Plan(
        parts=list(parts),
        quick=quick,
        repeat=repeat,
        workers=w,
        out=out,
        peers=peers,
        pairs=10 if quick else PUBLISHED_PAIRS,
        size=1000 if quick else PUBLISHED_SIZE,
        elements=1 << 20 if quick else PUBLISHED_ELEMENTS,
        # np.split(data, 128) needs a multiple of 128: 2**20 in --quick
        grid_elements=1 << 20 if quick else PUBLISHED_ELEMENTS,
        row_budget_s=2.0 if quick else 15.0,
        cell_budget_s=0.3 if quick else 2.5,
    )
    if quick:
        p.notes.append(
            "--quick: 10 pairs of 1000x1000 (published: 100 of 2000x2000), "
            f"{p.elements:,} elements (published: 10M), grid over {p.grid_elements:,}"
        )
    if "matmul" in p.parts:
        avail = 0.85 * psutil.virtual_memory().available
        st = os.statvfs(shm_dir())
        shm_free = 0.9 * st.f_bavail * st.f_frsize
        s = p.size * p.size * 8
        fit_ram = math.floor(avail / (matmul_peak_bytes(1, p.size, w)))
        fit_shm = math.floor(shm_free / (3 * s))  # SharedArray row: inputs + results
        fit = min(fit_ram, fit_shm)
        if fit < 1:
            raise MemoryError(
                f"experiment A does not fit even at one pair of {p.size}x{p.size}: "
                f"{avail / GiB:.1f} GiB of RAM and {shm_free / GiB:.1f} GiB of {shm_dir()} "
                "are free. Try --quick, or `numpool bench exp` / `numpool bench grid`."
            )
        if fit < p.pairs:
            old = p.pairs
            p.pairs = fit
            if fit_ram <= fit_shm:
                why = f"{avail / GiB:.1f} GiB of RAM is available (85% of what is free)"
            else:
                why = f"{shm_dir()} has {shm_free / GiB:.1f} GiB free for the SharedArray row"
            p.notes.append(
                f"experiment A scaled down from {old} to {p.pairs} pairs of {p.size}x{p.size}: "
                f"the pickling variants (A3/A4) would need about "
                f"{matmul_peak_bytes(old, p.size, w) / GiB:.1f} GiB at the full size and {why}; "
                "the ratios between rows are what matter, not the batch size"
            )
    return p


Progress = Callable[[str], None]


EXPERIMENT = {"matmul": "A", "exp": "B", "grid": "B5"}


def run(plan: Plan, progress: Progress | None = None) -> dict[str, Any]:
    """Run the plan; return the results document (also what results.json holds).

    Each experiment runs in a fresh spawned process: what one experiment
    leaves behind (gigabytes allocated and freed, pools forked from the
    process, which leave its arrays slow to read from several threads) must
    not change the next one's figures. Measured: numpool's threads row of
    experiment B ran 1.9x serial in a process of its own and 1.0-1.3x after
    experiment A in the same process.
    """
    say = progress or (lambda _msg: None)
    say("measuring the machine's limits")
    doc: dict[str, Any] = {
        "numpool_bench": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["numpool", *sys.argv[1:]]) if sys.argv else "numpool bench",
        "plan": plan.as_dict(),
        "machine": machine.describe(),
        "limits": machine.limits(plan.quick),
        "experiments": {},
        "rows": [],
        "errors": [],
    }
    for part in plan.parts:
        rows, info, error = _in_fresh_process(part, plan, say)
        doc["rows"] += rows
        if info is not None:
            doc["experiments"][EXPERIMENT[part]] = info
        if error:
            doc["errors"].append(f"{part}: {error}")
    derive(doc)
    return doc


def _in_fresh_process(
    part: str, plan: Plan, say: Progress
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """Run one experiment in a spawned process, relaying its progress messages."""
    import multiprocessing as mp
    import time

    ctx = mp.get_context("spawn")
    # SimpleQueue pickles in the sending thread, before a row's meter starts; a Queue's
    # feeder thread would pickle progress messages inside the measured window.
    q = ctx.SimpleQueue()
    proc = ctx.Process(target=_experiment_main, args=(part, plan, q), name=f"bench-{part}")
    proc.start()
    try:
        while True:
            if q.empty():
                if not proc.is_alive() and q.empty():
                    return [], None, f"the experiment process died (exit code {proc.exitcode})"
                time.sleep(0.05)
                continue
            kind, *payload = q.get()
            if kind == "say":
                say(payload[0])
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

    def say(msg: str) -> None:
        q.put(("say", msg))

    def measurer(budget: float, repeat: int | None = None) -> Callable[..., Row]:
        def go(row: Row, fn: Any, warmup: Any = None, warmup_runs: int = 0) -> Row:
            n = repeat or plan.repeat
            return measure(
                row,
                fn,
                n,
                budget,
                warmup=warmup,
                warmup_runs=warmup_runs,
                on_repeat=lambda i: say(f"{row.id}: {row.label} (run {i + 1}/{n})"),
            )

        return go

    try:
        normal = measurer(plan.row_budget_s)
        if part == "matmul":
            rows, info = matmul.run(plan.pairs, plan.size, plan.workers, plan.peers, normal)
        elif part == "exp":
            rows, info = vector.run(
                plan.elements,
                plan.workers,
                plan.peers,
                normal,
                measurer(plan.row_budget_s, repeat=min(plan.repeat, 3)),
            )
        else:
            rows, info = grid.run(plan.grid_elements, plan.workers, measurer(plan.cell_budget_s))
        peers.shutdown()
        q.put(("done", [r.as_dict() for r in rows], info))
    except BaseException:
        q.put(("error", traceback.format_exc(limit=8)))


def _serial(doc: dict[str, Any], rid: str) -> float | None:
    for r in doc["rows"]:
        if r["id"] == rid and r["median_s"]:
            return float(r["median_s"])
    return None


def derive(doc: dict[str, Any]) -> None:
    """Add speed-ups and hardware fractions to every row, in place."""
    lim = doc["limits"]
    cores = doc["machine"]["usable_cores"]
    a1, b1 = _serial(doc, "A1"), _serial(doc, "B1")
    a_info, b_info = doc["experiments"].get("A"), doc["experiments"].get("B")
    for r in doc["rows"]:
        t = r["median_s"]
        if not t:
            continue
        if r["experiment"] == "A" and a_info:
            r["speedup"] = a1 / t if a1 else None
            gflops = a_info["flops_per_run"] / t
            r["gflops"] = gflops / 1e9
            r["pct_of_peak"] = 100 * gflops / lim["matmul_flops_all_cores"]
        elif r["experiment"] in ("B", "B5"):
            n = (b_info or doc["experiments"]["B5"])["elements"]
            r["speedup"] = b1 / t if b1 else None
            r["gbps"] = 2 * n * 8 / t / 1e9
            r["ideal_fraction"] = (b1 / cores) / t if b1 else None
