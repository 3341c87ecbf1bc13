"""Turn a bench results document into report.md, plots and terminal text.

The report leads with a verdict (:func:`verdict`): a few sentences, every
figure in them taken from the tables below it, formatted by the same
functions. A figure that was not measured is printed ``n/m``, never as a
zero or a default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import plots
from .fmt import NM, fmt_bytes, fmt_gap, fmt_pct, fmt_rate, fmt_s, ratio
from .rows import AUTO_WARMUP_CALLS

__all__ = [
    "NM",
    "explain",
    "fmt_bytes",
    "fmt_range",
    "fmt_s",
    "ratio",
    "speed_range",
    "table_rows",
    "terminal_lines",
    "verdict",
    "write",
]

TITLES = {
    "A": "Experiment A: a batch of matrix multiplications",
    "B": "Experiment B: numpy.exp over a large vector (B1-B4)",
    "B5": "Experiment B5: splits x chunksize grid",
}

#: medians this close (relative) are a tie, whatever their spreads: a verdict never
#: names a winner by less than the run-to-run noise of a quiet machine
TIE = 0.05

DEMO = "`numpool demo --quick` (about 10 s) shows the same point on smaller data"


def _seconds(p: float) -> str:
    if p < 0.005:
        return "0 s"
    return f"{p:.2f} s" if p < 10 else f"{p:.1f} s"


def pickling_cell(r: dict[str, Any]) -> str:
    """Seconds pickling per run: caller (+ workers), ``n/m`` for what was not metered."""
    parent, workers = r.get("parent_pickle_s"), r.get("worker_pickle_s")
    if parent is None:
        return NM
    transport = r.get("transport", "none")
    if transport == "none":
        return _seconds(parent)
    if workers is not None:
        return f"{_seconds(parent)} + {_seconds(workers)}"
    return f"{_seconds(parent)} + {NM}"


def moved_cell(r: dict[str, Any]) -> str:
    """Bytes per run that crossed a process boundary (``+ n/m``: some not metered)."""
    b = r.get("moved_bytes")
    if b is None:
        return NM
    return fmt_bytes(b) if r.get("moved_complete") else f"{fmt_bytes(b)} + {NM}"


def runs_cell(r: dict[str, Any]) -> str:
    n, planned = len(r["times"]), r.get("runs_planned") or len(r["times"])
    return str(n) if n >= planned else f"{n} of {planned}"


def limit_cell(r: dict[str, Any]) -> str:
    x = r.get("of_ideal")
    if x is None:
        return NM
    return fmt_pct(x) + ("*" if x > 1.005 else "")


def display_name(r: dict[str, Any]) -> str:
    return r.get("name") or r["id"]


# -- looking rows up ----------------------------------------------------------------------


def row(doc: dict[str, Any], rid: str, experiment: str | None = None) -> dict[str, Any] | None:
    """The row ``rid`` (of ``experiment``; B5 cells are never found by a bare id)."""
    for r in doc["rows"]:
        if r["id"] == rid and (r["experiment"] == experiment or experiment is None):
            if experiment is None and r["experiment"] == "B5":
                continue
            return r
    return None


def _ok(r: dict[str, Any] | None) -> bool:
    return bool(r and r.get("status") == "ok" and r.get("median_s"))


def _best(doc: dict[str, Any], experiment: str, kind: str) -> dict[str, Any] | None:
    rows = [
        r
        for r in doc["rows"]
        if r["experiment"] == experiment and r["kind"] == kind and r.get("speedup")
    ]
    return max(rows, key=lambda r: r["speedup"]) if rows else None


def fmt_range(values: list[float], fmt: Any) -> str:
    """ "1.02-1.27 s" (one unit, written once) or "16.8 MB-1.2 GB"."""
    lo, hi = fmt(min(values)), fmt(max(values))
    if lo == hi:
        return str(lo)
    lo_n, _, lo_u = lo.partition(" ")
    hi_u = hi.partition(" ")[2]
    return f"{lo_n}-{hi}" if lo_u == hi_u else f"{lo}-{hi}"


def speed_range(speedups: list[float]) -> str:
    """ "5.9-9.0x slower", "1.20-2.15x", or "2.0x slower to 1.50x" when mixed."""
    if all(x < 0.995 for x in speedups):
        return _slower_range(speedups)
    if all(x >= 0.995 for x in speedups):
        return fmt_range(speedups, ratio)
    return f"{ratio(min(speedups))} to {ratio(max(speedups))}"


def _slower_range(speedups: list[float]) -> str:
    """ "5.9-9.0x slower" from speed-ups below 1."""
    texts = [ratio(min(speedups)), ratio(max(speedups))]
    if texts[0] == texts[1]:
        return texts[0]
    hi, lo = (t.replace(" slower", "") for t in texts)
    return f"{lo.removesuffix('x')}-{hi} slower"


def vs_serial(x: float | None, serial: str = "serial") -> str:
    """ "2.15x faster than serial", "3.2x slower than serial", "as fast as serial"."""
    text = ratio(x)
    if text == NM:
        return NM
    if text.endswith("slower"):
        return f"{text} than {serial}"
    if text == "1.00x":
        return f"as fast as {serial}"
    return f"{text} faster than {serial}"


# -- tables ------------------------------------------------------------------------------


def table_rows(doc: dict[str, Any], experiment: str) -> list[list[str]]:
    """The cells of one experiment's table (header first)."""
    rate = "GFLOP/s" if experiment == "A" else "GB/s"
    out = [
        [
            "row",
            "median",
            "min-max",
            "runs",
            "vs serial",
            rate,
            "of limit",
            "moved",
            "pickling",
        ]
    ]
    for r in doc["rows"]:
        if r["experiment"] != experiment:
            continue
        name = f"{display_name(r)}"
        if r["status"] != "ok" or not r.get("median_s"):
            out.append([name, r["status"], "", "", "", "", "", "", r["note"][:60]])
            continue
        rate_v = r.get("gflops") if experiment == "A" else r.get("gbps")
        out.append(
            [
                name,
                fmt_s(r["median_s"]),
                fmt_range(r["times"], fmt_s) if len(r["times"]) > 1 else "",
                runs_cell(r),
                ratio(r.get("speedup")),
                fmt_rate(rate_v),
                limit_cell(r),
                moved_cell(r),
                pickling_cell(r),
            ]
        )
    return out


def _md_table(cells: list[list[str]]) -> str:
    head, *body = cells
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


def _calls_table(doc: dict[str, Any], experiment: str) -> str:
    cells = [["row", "id", "the call", "how data crosses processes", "notes"]]
    for r in doc["rows"]:
        if r["experiment"] != experiment:
            continue
        cells.append(
            [
                display_name(r),
                f"`{r['id']}`",
                f"`{r['label']}`",
                TRANSPORTS.get(r.get("transport", "none"), r.get("transport", "")),
                "; ".join(filter(None, [_row_note(r), r.get("short_reason", "")])),
            ]
        )
    return _md_table(cells)


TRANSPORTS = {
    "none": "it does not (one process)",
    "pipes": "pickled through pipes (workers metered)",
    "pipes-unmetered": "pickled through pipes",
    "shm": "shared memory; small messages pickled",
    "tcp": "TCP to a dask LocalCluster",
    "loky": "pickled; arguments over 1 MB memmapped",
    "auto": "as the backend auto chose",
}


def _row_note(r: dict[str, Any]) -> str:
    bits = []
    if r.get("status") != "ok":
        return r.get("note", "")
    extra = r.get("extra", {})
    if extra.get("auto_ran"):
        bits.append(f"auto ran {'+'.join(extra['auto_ran'])} in its timed runs")
    if "worker_blas" in extra and r["id"] != "A1":
        bits.append(f"workers' BLAS: {_blas_text(extra['worker_blas'])}")
    if extra.get("start_method"):
        bits.append(f"start method {extra['start_method']}")
    if extra.get("parallelism"):
        bits.append(f"x{extra['parallelism']:.2f} workers busy")
    if extra.get("share_s"):
        bits.append(f"numpool.share() of the inputs took {extra['share_s']:.2f} s, once")
    return "; ".join(bits)


def _blas_text(infos: list[dict[str, Any]]) -> str:
    blas = [b for b in infos if b.get("internal_api") in ("openblas", "mkl", "blis")]
    if not blas:
        return NM
    n = blas[0]["num_threads"]
    return f"{n} thread{'s' if n != 1 else ''}"


# -- the verdict -------------------------------------------------------------------------


def _seed_pools(doc: dict[str, Any], experiment: str) -> list[dict[str, Any]]:
    ids = ("A2", "A3", "A4") if experiment == "A" else ("B2", "B3", "B4")
    return [r for rid in ids if _ok(r := row(doc, rid, experiment))]  # type: ignore[misc]


def _pickling_total(r: dict[str, Any]) -> float | None:
    parent, workers = r.get("parent_pickle_s"), r.get("worker_pickle_s")
    if parent is None or workers is None:
        return None
    return float(parent + workers)


def verdict(doc: dict[str, Any]) -> list[str]:
    """The point of the run in a few sentences, every figure measured in it."""
    out = _seed_sentences(doc)
    out += _default_sentences(doc)
    peers_ = []
    for e in ("A", "B"):
        peer = _best(doc, e, "peer")
        if peer:
            peers_.append(f"{display_name(peer)} in {e} ({ratio(peer['speedup'])})")
    if peers_:
        out.append("Fastest peer: " + ", ".join(peers_) + ".")
    if any("scaled down" in n for n in doc["plan"]["notes"]):
        out.append(
            f"Experiment A ran {doc['plan']['pairs']} of the published 100 pairs to fit this "
            "machine's memory (see Notes)."
        )
    out += busy_machine(doc)
    out.append(DEMO + ".")
    return out


def _seed_sentences(doc: dict[str, Any]) -> list[str]:
    """How much slower the tutorials' pools were than serial, and what they pickled."""
    out = []
    for e in ("A", "B"):
        seeds = _seed_pools(doc, e)
        serial = row(doc, "A1" if e == "A" else "B1", e)
        if not seeds or not _ok(serial):
            continue
        assert serial is not None
        what = "A (matmuls)" if e == "A" else "B (exp)"
        ids = f"{seeds[0]['id']}-{seeds[-1]['id']}"
        speeds = [r["speedup"] for r in seeds]
        head = f"In {what} the tutorials' pools ({ids}) "
        if all(x < 0.995 for x in speeds):
            head += f"were {_slower_range(speeds)} than serial"
        else:
            head += f"ran at {speed_range(speeds)} serial"
        if e == "A":
            moved = [r["moved_bytes"] for r in seeds if r.get("moved_bytes") is not None]
            picks = [p for r in seeds if (p := _pickling_total(r)) is not None]
            if moved:
                head += f": every run pickled {fmt_range(moved, fmt_bytes)} through pipes"
                if picks:
                    head += f" and spent {fmt_range(picks, _seconds)} pickling (caller + workers)"
            out.append(head + ".")
            continue
        b2, b4 = row(doc, "B2", "B"), row(doc, "B4", "B")
        if _ok(b2):
            assert b2 is not None
            p = _pickling_total(b2)
            head += (
                f": B2 sends every element as its own task, {fmt_s(b2['median_s'])} for "
                f"{fmt_s(serial['median_s'])} of serial work, pickling {moved_cell(b2)}"
                + (f" in {_seconds(p)} (caller + workers)" if p is not None else "")
            )
        if _ok(b4):
            assert b4 is not None
            head += (
                f"; even B4's 64 sub-arrays ({moved_cell(b4)} pickled) were "
                f"{vs_serial(b4['speedup'])}"
            )
        out.append(head + ".")
    return out


def _default_sentences(doc: dict[str, Any]) -> list[str]:
    """How numpool's default (auto) did in each experiment, and why if it lost."""
    parts, lost = [], []
    for e in ("A", "B"):
        auto = row(doc, "numpool-auto", e)
        if not _ok(auto):
            continue
        assert auto is not None
        seeds = _seed_pools(doc, e)
        text = f"{vs_serial(auto['speedup'])} in {e}"
        if auto.get("of_ideal") is not None:
            text += f" ({fmt_pct(auto['of_ideal'])} of the machine's limit"
            if seeds:
                best_seed = max(seeds, key=lambda r: r["speedup"])
                text += (
                    f"; {auto['speedup'] / best_seed['speedup']:,.1f}x the speed of the "
                    f"tutorials' best pool, {best_seed['id']}"
                )
            text += ")"
        parts.append(text)
        others = [
            r
            for r in doc["rows"]
            if r["experiment"] == e
            and r["kind"] == "numpool"
            and r["id"] != "numpool-auto"
            and _ok(r)
            and r.get("speedup")
        ]
        if others:
            lost.append(default_against(auto, max(others, key=lambda r: r["speedup"]), e))
    out = []
    if parts:
        out.append('numpool\'s default (`backend="auto"`) ran ' + "; ".join(parts) + ".")
    return out + [s for s in lost if s]


def busy_machine(doc: dict[str, Any], threshold: float = 0.1) -> list[str]:
    """A warning when other programs used the CPU during the rows or the limits."""
    parts = []
    worst = 0.0
    lim = doc["limits"].get("others_busy")
    if lim is not None and lim >= threshold:
        parts.append(f"the machine's limits ({fmt_pct(lim)})")
        worst = lim
    for e, what in (("A", "rows of A"), ("B", "rows of B"), ("B5", "B5 cells")):
        seen = [
            (b, r)
            for r in doc["rows"]
            if r["experiment"] == e
            and (b := (r.get("extra") or {}).get("others_busy")) is not None
        ]
        hit = [(b, r) for b, r in seen if b >= threshold]
        if not hit:
            continue
        top = max(b for b, _ in hit)
        worst = max(worst, top)
        parts.append(f"{len(hit)} of {len(seen)} {what} (up to {fmt_pct(top)})")
    if not parts:
        return []
    return [
        f"Other programs kept up to {fmt_pct(worst)} of this machine's CPU busy while "
        f"measuring {', '.join(parts)}: those figures are slower than this machine can do "
        "(each row's share is in results.json, extra.others_busy); run again on a quiet "
        "machine to compare."
    ]


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two rows' runs overlap (min to max): neither is faster beyond the noise."""
    if None in (a.get("min_s"), a.get("max_s"), b.get("min_s"), b.get("max_s")):
        return False
    return bool(a["min_s"] <= b["max_s"] and b["min_s"] <= a["max_s"])


def default_against(auto: dict[str, Any], best: dict[str, Any], experiment: str) -> str:
    """A sentence on how auto did against the fastest other numpool row: won, tied or lost.

    A tie is runs that overlap, or medians within ``TIE`` of each other: the
    sentence never calls the default slower (or faster) than a row it tied.
    """
    a, b = auto["speedup"], best["speedup"]
    name = display_name(best)
    if _overlap(auto, best):
        return (
            f"In {experiment}, the default ({ratio(a)}) tied with {name} ({ratio(b)}): "
            f"within the spread of their runs ({fmt_range(auto['times'], fmt_s)} against "
            f"{fmt_range(best['times'], fmt_s)})."
        )
    if abs(a - b) <= TIE * max(a, b):
        return (
            f"In {experiment}, the default ({ratio(a)}) tied with {name} ({ratio(b)}): "
            f"their medians are within {TIE:.0%} of each other."
        )
    if a > b:
        return (
            f"In {experiment}, the default ({ratio(a)}) was the fastest numpool row, "
            f"{fmt_gap(a / b - 1)} faster than the next, {name} ({ratio(b)})."
        )
    return why_default_lost(auto, best, experiment)


def why_default_lost(auto: dict[str, Any], best: dict[str, Any], experiment: str) -> str:
    """A sentence on why auto was slower than another numpool row, from both rows' stats."""
    head = (
        f"In {experiment}, the default ({ratio(auto['speedup'])}) was slower than "
        f"{display_name(best)} ({ratio(best['speedup'])}) by "
        f"{fmt_gap(1 - auto['speedup'] / best['speedup'])}"
    )
    ran = auto.get("extra", {}).get("auto_ran") or []
    per_run = auto.get("extra", {}).get("backends") or []
    best_backend = best["id"].removeprefix("numpool-").replace("-shared", "")
    if len(set(per_run)) > 1:
        return (
            f"{head}: auto was still choosing in its timed runs, which ran "
            f"{', '.join(per_run)} in turn (it learns from every call; the bench times it "
            f"after {AUTO_WARMUP_CALLS} untimed calls on the same input)."
        )
    if ran and best_backend not in ran:
        moved = auto.get("copied_bytes")
        cost = (
            f", copying {fmt_bytes(moved)} per run through shared memory"
            if moved and "processes" in ran
            else ""
        )
        return (
            f"{head}: auto ran {'+'.join(ran)} in its timed runs{cost}, where "
            f"{display_name(best)} ran {best_backend}. auto chooses from short measurements "
            "on the start of the input; `print(numpool.plan(func, *args))` shows why."
        )
    tasks_a, tasks_b = auto.get("extra", {}).get("tasks"), best.get("extra", {}).get("tasks")
    par_a = auto.get("extra", {}).get("parallelism")
    par_b = best.get("extra", {}).get("parallelism")
    detail = []
    if tasks_a and tasks_b and tasks_a != tasks_b:
        unit = "tasks" if experiment == "A" else "blocks"
        detail.append(f"{tasks_a:.0f} {unit} per call against {tasks_b:.0f}")
    if par_a and par_b:
        detail.append(f"workers busy x{par_a:.2f} against x{par_b:.2f}")
    return (
        f"{head}, beyond the spread of their runs, although auto ran {'+'.join(ran) or '?'} "
        f"too" + (f" ({'; '.join(detail)})" if detail else "") + "."
    )


# -- per-experiment explanations ----------------------------------------------------------


def explain(doc: dict[str, Any], experiment: str) -> list[str]:
    """Plain sentences, from the measured figures, on where the time went."""
    m, s = doc["machine"], []
    cores = m["usable_cores"]
    ideal = doc.get("ideal", {}).get(experiment)
    a1 = row(doc, "A1", "A")
    if experiment == "A" and _ok(a1):
        assert a1 is not None
        info = doc["experiments"]["A"]
        s.append(
            f"A1 (serial, BLAS on all {cores} cores) did {info['pairs']} products of "
            f"{info['size']}x{info['size']} in {fmt_s(a1['median_s'])} (creating the lists "
            f"took {fmt_s(info['create_s'])} more): {a1['gflops']:.1f} GFLOP/s, "
            f"{fmt_pct(a1.get('of_ideal'))} of the machine's limit."
        )
        for rid in ("A2", "A3", "A4"):
            r = row(doc, rid, "A")
            if not _ok(r):
                continue
            assert r is not None
            s.append(
                f"{rid} took {fmt_s(r['median_s'])} ({vs_serial(r['speedup'], 'A1')}). "
                f"It pickled {moved_cell(r)} through pipes per run; pickling and unpickling "
                f"took {_seconds(r['parent_pickle_s'])} in the caller and "
                f"{_seconds(r['worker_pickle_s']) if r.get('worker_pickle_s') is not None else NM}"
                f" summed over its {r['extra'].get('pool_workers', NM)} workers, "
                f"whose BLAS ran {_blas_text(r['extra'].get('worker_blas', []))} "
                f"(threadpoolctl, inside a worker of an identical pool)."
            )
        s += _blas_contrast(doc)
    if experiment == "B" and _ok(b1 := row(doc, "B1", "B")):
        assert b1 is not None
        info = doc["experiments"]["B"]
        s.append(
            f"B1 (serial exp over {info['elements']:,} float64) took {fmt_s(b1['median_s'])}; "
            f"into a preallocated output it takes {fmt_s(info['serial_into_s'])}: B1 also "
            "pays for fresh memory for its result."
        )
        for rid, what in (
            ("B2", "sent every element as its own task"),
            ("B3", "sent elements in chunks of 1000"),
            ("B4", "sent 64 sub-arrays"),
        ):
            r = row(doc, rid, "B")
            if _ok(r):
                assert r is not None
                s.append(
                    f"{rid} {what}: {fmt_s(r['median_s'])} ({vs_serial(r['speedup'], 'B1')}), "
                    f"{moved_cell(r)} pickled through pipes per run, "
                    f"{pickling_cell(r).replace(' + ', ' in the caller + ')} in the workers "
                    "spent pickling."
                )
    if experiment in ("A", "B"):
        best = _best(doc, experiment, "numpool")
        if best:
            s.append(
                f"numpool's fastest row here, {display_name(best)}, ran "
                f"{vs_serial(best['speedup'])}, at {fmt_pct(best.get('of_ideal'))} of the "
                f"machine's limit, moving {moved_cell(best)} between processes per run."
            )
        peer = _best(doc, experiment, "peer")
        if peer:
            s.append(f"The fastest peer was {display_name(peer)}, {vs_serial(peer['speedup'])}.")
        if ideal:
            s.append(
                f"The machine's limit for this work is {fmt_s(ideal['s'])} per run: "
                f"{ideal['why']}."
            )
        s += above_limit(doc, experiment)
    if experiment == "B5":
        cells = [r for r in doc["rows"] if r["experiment"] == "B5" and r.get("median_s")]
        if cells:
            lo = min(cells, key=lambda r: r["median_s"])
            hi = max(cells, key=lambda r: r["median_s"])
            slower = sum(1 for r in cells if (r.get("speedup") or 0) < 1)
            s.append(
                f"Fastest cell: {lo['label']}, {fmt_s(lo['median_s'])} "
                f"({vs_serial(lo.get('speedup'))}); slowest: {hi['label']}, "
                f"{fmt_s(hi['median_s'])} ({vs_serial(hi.get('speedup'))}). {slower} of "
                f"{len(cells)} cells were slower than serial exp. Every cell starts a pool "
                "inside the timed run, and one split leaves all but one worker idle."
            )
    return s


def _blas_contrast(doc: dict[str, Any]) -> list[str]:
    """What A4 against A2/A3 says about BLAS threads, from the threads each pool's workers ran."""
    seen = {}
    for rid in ("A2", "A3", "A4"):
        r = row(doc, rid, "A")
        if _ok(r):
            assert r is not None
            seen[rid] = (_blas_text(r["extra"].get("worker_blas", [])), r)
    if "A4" not in seen or "A3" not in seen or NM in (seen["A4"][0], seen["A3"][0]):
        return []
    a3, a4 = seen["A3"][1], seen["A4"][1]
    if seen["A4"][0] == seen["A3"][0]:
        return [
            f"A3's and A4's workers both ran {seen['A4'][0]} of BLAS, so this run cannot "
            "say whether BLAS threads matter."
        ]
    faster = a4["median_s"] < a3["median_s"]
    return [
        f"A4's workers ran {seen['A4'][0]} of BLAS against {seen['A3'][0]} in A3's, and A4 "
        f"took {fmt_s(a4['median_s'])} against {fmt_s(a3['median_s'])}: "
        + (
            "fewer BLAS threads helped a little, "
            if faster
            else "one BLAS thread per worker did not help, "
        )
        + "but both stay far slower than A1, because the cost is pickling the arrays."
    ]


def above_limit(doc: dict[str, Any], experiment: str) -> list[str]:
    """A sentence for every row faster than the machine's limit: by how much, and why."""
    ideal = doc.get("ideal", {}).get(experiment)
    if not ideal:
        return []
    out = []
    meas = doc["limits"].get("measurements", {})
    key = "copy_bandwidth_Bps" if ideal["bound"] == "memory" else None
    if experiment == "A":
        key = (
            "matmul_flops_all_cores"
            if doc["limits"]["matmul_flops_limit"] == doc["limits"]["matmul_flops_all_cores"]
            else "matmul_flops_concurrent"
        )
    lim_spread = meas.get(key, {}).get("best3_spread", 0.0) if key else 0.0
    for r in doc["rows"]:
        x = r.get("of_ideal")
        if r["experiment"] != experiment or x is None or x <= 1.005:
            continue
        own = (r["max_s"] - r["min_s"]) / r["max_s"] if r.get("max_s") else 0.0
        noise = own + lim_spread
        excess = x - 1
        busy_lim = doc["limits"].get("others_busy")
        busy_row = (r.get("extra") or {}).get("others_busy")
        if excess <= noise:
            why = (
                f"within measurement noise (its runs spread {own:.0%}, the limit's best "
                f"rounds {lim_spread:.0%})"
            )
        elif busy_lim is not None and busy_row is not None and busy_lim > busy_row + 0.05:
            why = (
                f"other programs used {busy_lim:.0%} of the CPU while the limit was "
                f"measured and {busy_row:.0%} during this row, so the limit reads low"
            )
        else:
            why = (
                f"more than measurement noise explains (its runs spread {own:.0%}, the "
                f"limit's best rounds {lim_spread:.0%}) and not a busier machine during "
                "the limit's measurement that the bench could see; read this row with care"
            )
        out.append(f"* {display_name(r)} ran at {x:.0%} of the limit: {why}.")
    return out


def short_runs(doc: dict[str, Any], experiment: str) -> list[str]:
    """Why each row that ran fewer than --repeat times did (one line per row)."""
    return [
        f"{display_name(r)}: {r['short_reason']}"
        for r in doc["rows"]
        if r["experiment"] == experiment and r.get("short_reason")
    ]


def short_runs_summary(doc: dict[str, Any], experiment: str) -> str:
    """The rows that ran fewer times, in one sentence ("" when every row ran them all)."""
    rows = [r for r in doc["rows"] if r["experiment"] == experiment and r.get("short_reason")]
    if not rows:
        return ""
    plan = doc["plan"]
    if experiment == "B5":
        cells = [r for r in doc["rows"] if r["experiment"] == "B5"]
        counts: dict[int, int] = {}
        for r in rows:
            counts[len(r["times"])] = counts.get(len(r["times"]), 0) + 1
        runs = ", ".join(
            f"{n} ran {k} of {plan['repeat']}" for k, n in sorted(counts.items(), reverse=True)
        )
        return (
            f"Of the {len(cells)} cells, {runs}: a cell stops once its runs pass "
            f"{plan['cell_budget_s']:g} s (--row-budget 0 runs them all)."
        )
    runs = ", ".join(f"{r['id']} {len(r['times'])}" for r in rows)
    return (
        f"Fewer than {plan['repeat']} runs, because a row stops once its runs pass "
        f"{plan['row_budget_s']:g} s (--row-budget 0 runs all): {runs}."
    )


# -- terminal ------------------------------------------------------------------------------


def terminal_lines(doc: dict[str, Any], experiment: str, width: int) -> list[str]:
    """One experiment's table as plain lines that fit ``width`` columns (at least 72).

    Columns: name, median, vs serial, of limit, moved; runs and pickling
    too when the width allows (report.md has them all). A name too long for
    its column is cut with an ellipsis, never wrapped.
    """
    rows = [r for r in doc["rows"] if r["experiment"] == experiment]
    fixed = 2 + 9 + 2 + 12 + 2 + 6 + 2 + 13
    name_w = max([len(display_name(r)) for r in rows] + [8])
    name_w = min(name_w, max(20, width - fixed))
    wide = width >= name_w + fixed + 2 + 6 + 2 + 17
    head = f"{'row':<{name_w}}  {'median':>9}  {'vs serial':>12}  {'limit':>6}  {'moved':>13}"
    if wide:
        head += f"  {'runs':>6}  {'pickling':>17}"
    lines = [TITLES[experiment], head]
    for r in rows:
        name = display_name(r)
        if len(name) > name_w:
            name = name[: name_w - 1] + "…"
        if r["status"] != "ok" or not r.get("median_s"):
            lines.append(f"{name:<{name_w}}  {r['status']}: {r['note']}"[:width])
            continue
        line = (
            f"{name:<{name_w}}  {fmt_s(r['median_s']):>9}  {ratio(r.get('speedup')):>12}  "
            f"{limit_cell(r):>6}  {moved_cell(r):>13}"
        )
        if wide:
            line += f"  {runs_cell(r):>6}  {pickling_cell(r):>17}"
        lines.append(line)
    return lines


# -- report.md -----------------------------------------------------------------------------


def _limits_line(doc: dict[str, Any]) -> list[str]:
    lim = doc["limits"]
    meas = lim.get("measurements", {})

    def one(key: str, label: str, scale: float, unit: str) -> str:
        m = meas.get(key)
        if not m:
            return f"{label} {lim[key] / scale:.1f} {unit}"
        spread = "under 1%" if m["best3_spread"] < 0.005 else f"{m['best3_spread']:.0%}"
        settled = (
            f"best 3 of {len(m['rounds'])} rounds within {spread}"
            if m["agreed"]
            else f"did not settle in {len(m['rounds'])} rounds: best 3 within {spread}"
        )
        return (
            f"{label} **{m['value'] / scale:.1f} {unit}** (all rounds {m['min'] / scale:.1f}-"
            f"{m['max'] / scale:.1f}; {settled})"
        )

    return [
        one("copy_bandwidth_Bps", "copy bandwidth (read+write, all cores)", 1e9, "GB/s"),
        one("matmul_flops_1core", f"matmul {lim['matmul_size']}² on 1 core", 1e9, "GFLOP/s"),
        one("matmul_flops_all_cores", "one product on all cores", 1e9, "GFLOP/s"),
        one("matmul_flops_concurrent", "one product per core at once", 1e9, "GFLOP/s"),
    ]


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    """Write results.json, the PNG plots and report.md into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    res = out / "results.json"
    res.write_text(json.dumps(doc, indent=1, default=str))
    written.append(res)
    m, plan = doc["machine"], doc["plan"]
    blas = (
        ", ".join(
            f"{t['internal_api']} {t['version']} ({t['num_threads']} threads)"
            for t in m["threadpools"]
        )
        or "none found"
    )
    md = [
        "# numpool bench report",
        "",
        f"`{doc['command']}`, {doc['created']}, numpool {m['numpool']}, "
        f"{_duration(doc.get('duration_s'))}.",
        "",
        "## Verdict",
        "",
        *[f"- {s}" for s in verdict(doc)],
        "",
    ]
    if doc.get("errors"):
        md += ["**Errors.**", "", *[f"- `{e}`" for e in doc["errors"]], ""]
    md += [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu_model']} |",
        f"| cores | {m['usable_cores']} usable, {m['physical_cores']} physical, "
        f"{m['logical_cores']} logical |",
        f"| memory | {m['memory_total_bytes'] / 2**30:.1f} GiB; {m['shm_dir']} "
        f"{(m['shm_total_bytes'] or 0) / 2**30:.1f} GiB |",
        f"| BLAS/OpenMP | {blas} |",
        f"| software | Python {m['python']}, NumPy {m['numpy']} |",
        *[f"| measured limit | {line} |" for line in _limits_line(doc)],
        f"| run | {plan['workers']} workers; {plan['repeat']} runs per row, fewer once a "
        f"row's runs pass {plan['row_budget_s']:g} s (B5 cells: {plan['cell_budget_s']:g} s); "
        f"multiprocessing start method {plan['start_method']} (this platform's default) |",
        "",
    ]
    if plan["notes"]:
        md += ["**Notes.**", "", *[f"- {n}" for n in plan["notes"]], ""]
    md += [
        "How to read the tables: *median* and *min-max* of the timed runs; *runs*: "
        "timed runs (`1 of 3`: the row stopped early, the reason is under the table); "
        "*vs serial*: speed-up against A1 or B1; *of limit*: the machine's limit for "
        "the work (the fastest it could be, measured in this run, explained under each "
        "table) as a share of the row's time, `*` above 100%; *moved*: bytes per run "
        "that crossed a process boundary (pickled, or copied through shared memory or "
        "TCP); *pickling*: seconds per run pickling and unpickling in the caller + in "
        f"the workers. `{NM}`: not measured (the row's data takes a path the bench "
        "cannot meter); `0 B` and `0 s` are measured.",
        "",
    ]
    for exp in ("A", "B"):
        if exp not in doc["experiments"]:
            continue
        rows = [r for r in doc["rows"] if r["experiment"] == exp]
        ideal = doc.get("ideal", {}).get(exp)
        serial = row(doc, "A1" if exp == "A" else "B1", exp)
        limit = serial["median_s"] / ideal["s"] if ideal and _ok(serial) else None  # type: ignore[index]
        fname, tname = f"speedup_{exp}.png", f"time_{exp}.png"
        written.append(plots.speedup_bars(rows, TITLES[exp], limit, out / fname))
        written.append(plots.time_split(rows, f"{TITLES[exp]}: where the time goes", out / tname))
        md += [
            f"## {TITLES[exp]}",
            "",
            _md_table(table_rows(doc, exp)),
            "",
            *_paragraph(explain(doc, exp)),
            "",
        ]
        shorts = short_runs(doc, exp)
        if shorts:
            md += ["Rows with fewer runs:", "", *[f"- {s}" for s in shorts], ""]
        md += [
            f"![speed-up against serial, experiment {exp}]({fname})",
            "",
            f"![where the time goes, experiment {exp}]({tname})",
            "",
            "<details><summary>The calls behind each row</summary>",
            "",
            _calls_table(doc, exp),
            "",
            "</details>",
            "",
        ]
    if "B5" in doc["experiments"]:
        cells = [r for r in doc["rows"] if r["experiment"] == "B5"]
        serial = row(doc, "B1", "B")
        serial_s = serial["median_s"] if _ok(serial) else doc["experiments"]["B5"]["serial_s"]  # type: ignore[index]
        png = plots.grid_heatmap(
            cells, doc["experiments"]["B5"]["splits"], serial_s, out / "grid_B5.png"
        )
        written.append(png)
        md += [
            f"## {TITLES['B5']}",
            "",
            f"Median per cell (pool created inside each run); serial exp took {fmt_s(serial_s)}:",
            "",
            _grid_table(doc),
            "",
            *_paragraph(explain(doc, "B5")),
            "",
            *([short, ""] if (short := short_runs_summary(doc, "B5")) else []),
            "![B5 heatmap](grid_B5.png)",
            "",
        ]
    rep = out / "report.md"
    rep.write_text("\n".join(md))
    written.append(rep)
    return written


def _duration(s: float | None) -> str:
    if s is None:
        return "duration not recorded"
    m, sec = divmod(round(s), 60)
    return f"took {m} min {sec:02d} s" if m else f"took {sec} s"


def _grid_table(doc: dict[str, Any]) -> str:
    sizes = doc["experiments"]["B5"]["splits"]
    by = {
        (r["extra"]["splits"], r["extra"]["chunksize"]): r
        for r in doc["rows"]
        if r["experiment"] == "B5"
    }
    head = ["splits \\ chunksize", *map(str, sizes)]
    body = [
        [str(s), *[fmt_s(by[(s, c)]["median_s"]) if (s, c) in by else NM for c in sizes]]
        for s in sizes
    ]
    return _md_table([head, *body])


def _paragraph(sentences: list[str]) -> list[str]:
    plain = [s for s in sentences if not s.startswith("* ")]
    notes = [s for s in sentences if s.startswith("* ")]
    return ([" ".join(plain)] if plain else []) + (["", *notes] if notes else [])
