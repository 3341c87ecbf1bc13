"""Turn a bench results document into results.json, report.md, plots and tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import plots

__all__ = ["explain", "table_rows", "write"]

TITLES = {
    "A": "Experiment A: a batch of matrix multiplications",
    "B": "Experiment B: numpy.exp over a large vector (B1-B4)",
    "B5": "Experiment B5: splits x chunksize grid",
}


def _fmt_s(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def _fmt_bytes(b: float | None) -> str:
    if b is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b:.0f} B"


def ratio(x: float | None) -> str:
    """A speed-up as text: 2.15x, or "420x slower" below 0.1."""
    if not x:
        return "-"
    return f"{x:.2f}x" if x >= 0.1 else f"{1 / x:,.0f}x slower"


def _row(doc: dict[str, Any], rid: str) -> dict[str, Any] | None:
    return next((r for r in doc["rows"] if r["id"] == rid and r["experiment"] != "B5"), None)


def table_rows(doc: dict[str, Any], experiment: str) -> list[list[str]]:
    """The cells of one experiment's table (header first)."""
    hw = "GFLOP/s (% peak)" if experiment == "A" else "GB/s (of ideal)"
    out = [["id", "variant", "median", "min", "runs", "vs serial", hw, "moved", "pickling"]]
    for r in doc["rows"]:
        if r["experiment"] != experiment:
            continue
        if r["status"] != "ok":
            out.append([r["id"], r["label"], r["status"], "", "", "", "", "", r["note"]])
            continue
        if experiment == "A":
            hwv = f"{r['gflops']:.0f} ({r['pct_of_peak']:.0f}%)" if r.get("gflops") else "-"
        else:
            frac = r.get("ideal_fraction")
            hwv = (
                (f"{r['gbps']:.1f} ({frac:.0%})" if frac is not None else f"{r['gbps']:.1f}")
                if r.get("gbps")
                else "-"
            )
        sp = ratio(r.get("speedup"))
        pick = (
            f"{r['parent_pickle_s']:.2f}+{r['worker_pickle_s']:.2f} s"
            if r.get("parent_pickle_s")
            else "-"
        )
        out.append(
            [
                r["id"],
                r["label"],
                _fmt_s(r["median_s"]),
                _fmt_s(r["min_s"]),
                str(len(r["times"])),
                sp,
                hwv,
                _fmt_bytes(r.get("bytes_moved")),
                pick,
            ]
        )
    return out


def _md_table(cells: list[list[str]]) -> str:
    head, *body = cells
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def explain(doc: dict[str, Any], experiment: str) -> list[str]:
    """Plain sentences, from the measured figures, on where the time went."""
    m, lim, s = doc["machine"], doc["limits"], []
    cores = m["usable_cores"]
    if experiment == "A" and (a1 := _row(doc, "A1")) and a1.get("median_s"):
        info = doc["experiments"]["A"]
        s.append(
            f"A1 (serial, BLAS on all {cores} cores) did {info['pairs']} products of "
            f"{info['size']}x{info['size']} in {_fmt_s(a1['median_s'])} (creating the lists "
            f"took {_fmt_s(info['create_s'])} more): {a1['gflops']:.0f} GFLOP/s, "
            f"{a1['pct_of_peak']:.0f}% of the machine's all-core matmul rate "
            f"({lim['matmul_flops_all_cores'] / 1e9:.0f} GFLOP/s; one core: "
            f"{lim['matmul_flops_1core'] / 1e9:.0f})."
        )
        for rid in ("A2", "A3", "A4"):
            r = _row(doc, rid)
            if not r or not r.get("median_s"):
                continue
            blas = [
                b["num_threads"]
                for b in r["extra"].get("worker_blas", [])
                if b.get("internal_api") in ("openblas", "mkl", "blis")
            ]
            threads = f"{blas[0]} BLAS thread{'s' if blas[0] != 1 else ''}" if blas else "?"
            s.append(
                f"{rid} took {_fmt_s(r['median_s'])} "
                f"({ratio(a1['median_s'] / r['median_s'])} vs A1). "
                f"It moved {_fmt_bytes(r['bytes_moved'])} through pipes per run; "
                f"pickling and unpickling took {r['parent_pickle_s']:.2f} s in the parent and "
                f"{r['worker_pickle_s']:.2f} s summed over its {r['extra'].get('pool_workers')} "
                f"workers, each of which ran with {threads} (threadpoolctl, inside a worker)."
            )
        a4 = _row(doc, "A4")
        a4_blas = {
            b["num_threads"]
            for b in (a4 or {}).get("extra", {}).get("worker_blas", [])
            if b.get("internal_api") == "openblas"
        }
        if a4 and a4.get("median_s") and a4_blas == {1}:
            s.append(
                "A4 shows BLAS threads are not the cost: with OMP_NUM_THREADS=1 the "
                "workers really ran one BLAS thread each, and the time is still that of "
                "copying every array through a pipe."
            )
        best = _best(doc, "A", "numpool")
        if best:
            s.append(
                f"numpool's best row, {best['id']}, did the same work in "
                f"{_fmt_s(best['median_s'])} ({ratio(best['speedup'])} vs A1), moving "
                f"{_fmt_bytes(best.get('bytes_moved'))} through pipes (threads move nothing; "
                "the processes backend sends segment names, not arrays)."
            )
    if experiment == "B" and (b1 := _row(doc, "B1")) and b1.get("median_s"):
        n = doc["experiments"]["B"]["elements"]
        s.append(
            f"B1 (serial exp over {n:,} float64) took {_fmt_s(b1['median_s'])}: "
            f"{b1['gbps']:.1f} GB/s read+written, against a copy bandwidth of "
            f"{lim['copy_bandwidth_Bps'] / 1e9:.1f} GB/s on all cores."
        )
        for rid, what in (
            ("B2", "sent every element as its own task"),
            ("B3", "sent elements in chunks of 1000"),
            ("B4", "sent 64 sub-arrays"),
        ):
            r = _row(doc, rid)
            if r and r.get("median_s"):
                s.append(
                    f"{rid} {what}: {_fmt_s(r['median_s'])} "
                    f"({ratio(b1['median_s'] / r['median_s'])} vs serial), "
                    f"{_fmt_bytes(r['bytes_moved'])} pickled through pipes per run, "
                    f"{r['parent_pickle_s']:.2f} s pickling in the parent and "
                    f"{r['worker_pickle_s']:.2f} s in the workers."
                )
        best = _best(doc, "B", "numpool")
        if best:
            s.append(
                f"numpool's best row, {best['id']}, ran at {ratio(best['speedup'])} serial, "
                f"{best['gbps']:.1f} GB/s, {best['ideal_fraction']:.0%} of the ideal "
                f"(serial time / {cores} cores)."
            )
        peer = _best(doc, "B", "peer")
        if peer:
            s.append(f"The fastest peer was {peer['id']} at {ratio(peer['speedup'])} serial.")
    if experiment == "B5":
        cells = [r for r in doc["rows"] if r["experiment"] == "B5" and r.get("median_s")]
        if cells:
            lo = min(cells, key=lambda r: r["median_s"])
            hi = max(cells, key=lambda r: r["median_s"])
            b1 = _row(doc, "B1")
            rel = (
                f" ({ratio(b1['median_s'] / lo['median_s'])} vs serial B1)"
                if b1 and b1.get("median_s")
                else ""
            )
            s.append(
                f"Fastest cell: {lo['label']}, {_fmt_s(lo['median_s'])}{rel}; slowest: "
                f"{hi['label']}, {_fmt_s(hi['median_s'])}. Every cell starts a pool "
                "inside the timed run, and one split leaves all but one worker idle."
            )
    return s


def _best(doc: dict[str, Any], experiment: str, kind: str) -> dict[str, Any] | None:
    rows = [
        r
        for r in doc["rows"]
        if r["experiment"] == experiment and r["kind"] == kind and r.get("speedup")
    ]
    return max(rows, key=lambda r: r["speedup"]) if rows else None


def _grid_table(doc: dict[str, Any]) -> str:
    sizes = doc["experiments"]["B5"]["splits"]
    by = {
        (r["extra"]["splits"], r["extra"]["chunksize"]): r
        for r in doc["rows"]
        if r["experiment"] == "B5"
    }
    head = ["splits \\ chunksize", *map(str, sizes)]
    body = [
        [str(s), *[_fmt_s(by[(s, c)]["median_s"]) if (s, c) in by else "-" for c in sizes]]
        for s in sizes
    ]
    return _md_table([head, *body])


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    """Write results.json, the PNG plots and report.md into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    res = out / "results.json"
    res.write_text(json.dumps(doc, indent=1, default=str))
    written.append(res)
    m, lim, plan = doc["machine"], doc["limits"], doc["plan"]
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
        f"`{doc['command']}`, {doc['created']}, numpool {m['numpool']}.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {m['cpu_model']} |",
        f"| cores | {m['usable_cores']} usable, {m['physical_cores']} physical, "
        f"{m['logical_cores']} logical |",
        f"| memory | {m['memory_total_bytes'] / 2**30:.1f} GiB; /dev/shm "
        f"{m['shm_total_bytes'] / 2**30:.1f} GiB ({m['shm_dir']}) |",
        f"| BLAS/OpenMP | {blas} |",
        f"| software | Python {m['python']}, NumPy {m['numpy']} |",
        f"| measured limits | copy {lim['copy_bandwidth_Bps'] / 1e9:.1f} GB/s (read+write, all "
        f"cores); matmul {lim['matmul_flops_1core'] / 1e9:.0f} GFLOP/s on one core, "
        f"{lim['matmul_flops_all_cores'] / 1e9:.0f} on all |",
        f"| run | {plan['workers']} workers, up to {plan['repeat']} runs per row |",
        "",
    ]
    if plan["notes"]:
        md += ["**Notes.**", "", *[f"- {n}" for n in plan["notes"]], ""]
    if doc.get("errors"):
        md += ["**Errors.**", "", *[f"- `{e}`" for e in doc["errors"]], ""]
    md += [
        "Columns: median and min of the runs; *vs serial*: speed-up against A1 or B1; "
        "*moved*: bytes pickled through pipes per run (parent's tasks out + results in); "
        "*pickling*: seconds pickling/unpickling in the parent + summed over the workers "
        "(workers metered for multiprocessing.Pool rows only).",
        "",
    ]
    for exp, fname, limit, label in (
        ("A", "speedup_A.png", None, ""),
        ("B", "speedup_B.png", None, ""),
    ):
        if exp not in doc["experiments"]:
            continue
        rows = [r for r in doc["rows"] if r["experiment"] == exp]
        if exp == "A":
            a1 = _row(doc, "A1")
            limit = (
                lim["matmul_flops_all_cores"] / 1e9 / a1["gflops"]
                if a1 and a1.get("gflops")
                else None
            )
            label = "all-core matmul peak"
        else:
            limit, label = float(m["usable_cores"]), f"ideal: {m['usable_cores']} cores"
        png = plots.speedup_bars(rows, TITLES[exp], limit, label, out / fname)
        written.append(png)
        md += [
            f"## {TITLES[exp]}",
            "",
            _md_table(table_rows(doc, exp)),
            "",
            *[f"{line}" for line in _paragraph(explain(doc, exp))],
            "",
            f"![speed-up, experiment {exp}]({fname})",
            "",
        ]
    if "B5" in doc["experiments"]:
        cells = [r for r in doc["rows"] if r["experiment"] == "B5"]
        png = plots.grid_heatmap(cells, doc["experiments"]["B5"]["splits"], out / "grid_B5.png")
        written.append(png)
        md += [
            f"## {TITLES['B5']}",
            "",
            "Median seconds per cell (pool created inside each run):",
            "",
            _grid_table(doc),
            "",
            *_paragraph(explain(doc, "B5")),
            "",
            "![B5 heatmap](grid_B5.png)",
            "",
        ]
    rep = out / "report.md"
    rep.write_text("\n".join(md))
    written.append(rep)
    return written


def _paragraph(sentences: list[str]) -> list[str]:
    return [" ".join(sentences)] if sentences else []
