"""PNG plots for the bench report (matplotlib, headless).

Made to be read without the table: rows by name, every bar labelled in
words ("22x slower"), labels and legends outside the bars, axes in speed-up
words ("10x slower", "serial") rather than powers of ten.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .fmt import fmt_s

__all__ = ["grid_heatmap", "speed_text", "speedup_bars", "time_split"]

COLORS = {
    "serial": "#3a3a3a",
    "reproduction": "#c44e52",
    "numpool": "#4c72b0",
    "peer": "#a0a0a0",
}
KINDS = {
    "serial": "serial NumPy (the reference)",
    "reproduction": "the tutorials' pools",
    "numpool": "numpool",
    "peer": "peer libraries",
}
SPLIT_COLORS = {
    "compute": "#55a868",
    "pickling": "#c44e52",
    "copying": "#dd8452",
    "other": "#d0d0d0",
}
SPLIT_LABELS = {
    "compute": "the work (at the serial 1-core rate)",
    "pickling": "pickling (caller + workers)",
    "copying": "copying through shared memory",
    "other": "the rest: task overhead, waiting, idle cores",
}
DPI = 110


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def speed_text(x: float) -> str:
    """A speed-up in words, as the report's tables print it: "2.42x faster",
    "1.09x slower", "22x slower", "as fast as serial"."""
    if abs(x - 1) < 0.005:
        return "as fast as serial"
    if x > 1:
        return f"{x:.2f}x faster" if x < 10 else f"{x:,.0f}x faster"
    s = 1 / x
    if s < 2:
        return f"{s:.2f}x slower"
    return f"{s:.1f}x slower" if s < 10 else f"{s:,.0f}x slower"


def _tick_text(x: float) -> str:
    if abs(x - 1) < 1e-9:
        return "serial"
    if x > 1:
        return f"{x:g}x faster"
    return f"{1 / x:,.0f}x slower" if 1 / x >= 2 else f"{1 / x:g}x slower"


def _speed_ticks(lo: float, hi: float) -> list[float]:
    """Tick positions for a log speed-up axis from ``lo`` to ``hi``: 1 and round ratios."""
    decades = math.log10(hi / lo)
    steps = (1, 10) if decades > 2.5 else (1, 2, 5, 10) if decades > 1 else (1, 1.5, 2, 3, 5)
    ticks = set()
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for st in steps[:-1] if steps[-1] == 10 else steps:
            for v in (st * 10**e, 1 / (st * 10**e)):
                if lo <= v <= hi:
                    ticks.add(round(v, 12))
    ticks.add(1.0)
    return sorted(ticks)


#: points between the bottom of the axes and the top of the legend (tick labels and
#: the x label live there)
BELOW_PT = 42


def _legend_below(fig: Any, ax: Any, handles: list[Any], ncol: int) -> None:
    """The legend under the x label, at a fixed distance in points: never on a bar."""
    from matplotlib.transforms import ScaledTranslation

    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0),
        bbox_transform=ax.transAxes + ScaledTranslation(0, -BELOW_PT / 72, fig.dpi_scale_trans),
        ncol=ncol,
        fontsize=8,
        frameon=False,
    )


def _kind(r: dict[str, Any]) -> str:
    return "serial" if r["id"] in ("A1", "B1") else str(r["kind"])


def speedup_bars(rows: list[dict[str, Any]], title: str, limit: float | None, path: Path) -> Path:
    """Horizontal bars of speed-up against serial (log scale), the machine's limit dashed."""
    plt = _plt()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, NullLocator

    ok = [r for r in rows if r.get("speedup")]
    fig, ax = plt.subplots(figsize=(9.5, 0.42 * len(ok) + 1.9))
    vals = [r["speedup"] for r in ok]
    y = range(len(ok))
    kinds = [_kind(r) for r in ok]
    ax.barh(y, vals, color=[COLORS[k] for k in kinds], height=0.7)
    ax.set_yticks(list(y), [r.get("name") or r["id"] for r in ok])
    ax.invert_yaxis()
    ax.set_xscale("log")
    lo = min([*vals, 1.0]) / 1.6
    hi = max([*vals, limit or 1.0, 1.0]) * 1.6
    ax.set_xlim(lo, hi)
    ticks = _speed_ticks(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [_tick_text(t) for t in ticks], fontsize=8)
    ax.axvline(1.0, color="black", lw=0.9)
    handles: list[Any] = [Patch(color=c, label=KINDS[k]) for k, c in COLORS.items() if k in kinds]
    if limit:
        ax.axvline(limit, color="#2ca02c", ls="--", lw=1.4)
        handles.append(
            Line2D(
                [], [], color="#2ca02c", ls="--", label=f"machine's limit ({speed_text(limit)})"
            )
        )
    # value labels in a column of their own, right of the axes: no bar, line or
    # legend can cover them
    trans = ax.get_yaxis_transform()
    for i, (r, v) in enumerate(zip(ok, vals, strict=True)):
        ref = r["id"] in ("A1", "B1")
        ax.text(
            1.02,
            i,
            "serial (reference)" if ref else speed_text(v),
            transform=trans,
            va="center",
            fontsize=8.5,
            color="black" if v >= 0.995 or ref else "#a02020",
        )
    ax.set_xlabel("speed-up against the serial row (log scale)")
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(axis="x", color="#e5e5e5", lw=0.6)
    ax.set_axisbelow(True)
    _legend_below(fig, ax, handles, 3)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def time_split(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Per row, where a run's core-seconds went: the work, pickling, copying, the rest."""
    plt = _plt()
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter

    ok = [r for r in rows if r.get("time_split") and r.get("median_s")]
    fig, ax = plt.subplots(figsize=(9.5, 0.42 * len(ok) + 2.1))
    y = list(range(len(ok)))
    left = [0.0] * len(ok)
    for part, color in SPLIT_COLORS.items():
        widths = [r["time_split"]["shares"][part] * 100 for r in ok]
        ax.barh(y, widths, left=left, color=color, height=0.7)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(y, [r.get("name") or r["id"] for r in ok])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
    trans = ax.get_yaxis_transform()
    any_unmetered = False
    for i, r in enumerate(ok):
        mark = ""
        if r["time_split"]["unmetered"]:
            mark, any_unmetered = " †", True
        if r["time_split"].get("overlap"):
            mark += " ‡"
        text = f"{fmt_s(r['median_s'])}{mark}"
        ax.text(1.02, i, text, transform=trans, va="center", fontsize=8.5)
    cores = round(ok[0]["time_split"]["capacity_s"] / ok[0]["median_s"]) if ok else 0
    ax.set_xlabel(
        f"share of a run's core-seconds (median wall time x {cores} cores; right: wall time)"
    )
    ax.set_title(title, loc="left", fontsize=11)
    handles = [Patch(color=c, label=SPLIT_LABELS[k]) for k, c in SPLIT_COLORS.items()]
    _legend_below(fig, ax, handles, 2)
    notes = []
    if any_unmetered:
        notes.append(
            "† part of this row's pickling or copying is not metered (numpool's process "
            "workers, joblib's memmaps, dask's TCP) and counts in the rest"
        )
    if any(r["time_split"].get("overlap") for r in ok):
        notes.append(
            "‡ pickling ran on several threads and processes at once: its clock time is "
            "more than the core-seconds; all parts scaled to fit"
        )
    if notes:
        # below the legend, placed in points so that no figure height makes them meet
        ax.annotate(
            "\n".join(notes),
            xy=(0, 0),
            xycoords="axes fraction",
            xytext=(0, -BELOW_PT - 36),
            textcoords="offset points",
            va="top",
            fontsize=7.5,
            color="#444",
        )
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def grid_heatmap(
    cells: list[dict[str, Any]], sizes: list[int], serial_s: float | None, path: Path
) -> Path:
    """B5 as a heatmap: splits (rows) x chunksize (columns), coloured against serial exp.

    A diverging colour map centred on the serial time: red cells were slower
    than serial, blue ones faster, white as fast; the colour scale is
    symmetric in log speed-up, so the shade of red reads as how many times
    slower.
    """
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    plt = _plt()
    t = np.full((len(sizes), len(sizes)), np.nan)
    for c in cells:
        if c.get("median_s"):
            t[sizes.index(c["extra"]["splits"]), sizes.index(c["extra"]["chunksize"])] = c[
                "median_s"
            ]
    ref = serial_s or float(np.nanmin(t))
    logsp = np.log10(ref / t)
    reach = max(float(np.nanmax(np.abs(logsp))) if np.isfinite(logsp).any() else 1.0, 0.3)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-reach, vmax=reach)
    fig, ax = plt.subplots(figsize=(9, 7.4))
    im = ax.imshow(logsp, cmap="RdBu", norm=norm)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_yticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_xlabel("chunksize (pool.map(..., chunksize=c))")
    ax.set_ylabel("splits (numpy.split(data, s))")
    for i in range(len(sizes)):
        for j in range(len(sizes)):
            if np.isnan(t[i, j]):
                continue
            strong = abs(logsp[i, j]) > 0.55 * reach
            ax.text(
                j,
                i,
                f"{fmt_s(float(t[i, j]))}\n{speed_text(float(10 ** logsp[i, j]))}",
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if strong else "black",
            )
    bar = fig.colorbar(im, ax=ax, shrink=0.85)
    ticks: list[float] = [float(v) for v in range(-math.floor(reach), math.floor(reach) + 1)]
    if len(ticks) < 3:
        ticks = [-reach, 0.0, reach]
    bar.set_ticks(ticks)
    bar.set_ticklabels([_tick_text(10**v) for v in ticks])
    bar.set_label(f"against serial np.exp ({fmt_s(ref)}); white: as fast as serial")
    slower = int(np.sum(logsp < 0))
    total = int(np.sum(np.isfinite(logsp)))
    ax.set_title(
        f"B5: Pool.map(exp, split(data, s), chunksize=c), pool created in each run\n"
        f"{slower} of {total} cells slower than serial (red)",
        loc="left",
        fontsize=10.5,
    )
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
