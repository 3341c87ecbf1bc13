"""PNG plots for the bench report (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["grid_heatmap", "speedup_bars"]

COLORS = {"reproduction": "#c44e52", "numpool": "#4c72b0", "peer": "#8c8c8c"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def speedup_bars(
    rows: list[dict[str, Any]], title: str, limit: float | None, limit_label: str, path: Path
) -> Path:
    """Horizontal bars of speed-up against serial (log scale), the hardware limit as a line."""
    plt = _plt()
    ok = [r for r in rows if r.get("speedup")]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(ok) + 1.6))
    labels = [f"{r['id']}" for r in ok]
    vals = [r["speedup"] for r in ok]
    ax.barh(range(len(ok)), vals, color=[COLORS.get(r["kind"], "#999") for r in ok])
    ax.set_yticks(range(len(ok)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=0.8)
    from matplotlib.patches import Patch

    handles = [
        Patch(color=c, label=k) for k, c in COLORS.items() if any(r["kind"] == k for r in ok)
    ]
    if limit:
        handles.append(ax.axvline(limit, color="#2ca02c", ls="--", lw=1.5, label=limit_label))
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.2f}x", va="center", fontsize=8)
    ax.set_xlabel("speed-up against the serial row (log scale; <1 is slower)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def grid_heatmap(cells: list[dict[str, Any]], sizes: list[int], path: Path) -> Path:
    """B5 as a heatmap: splits (rows) x chunksize (columns), median seconds."""
    import numpy as np

    plt = _plt()
    m = np.full((len(sizes), len(sizes)), np.nan)
    for c in cells:
        if c.get("median_s"):
            i = sizes.index(c["extra"]["splits"])
            j = sizes.index(c["extra"]["chunksize"])
            m[i, j] = c["median_s"]
    fig, ax = plt.subplots(figsize=(8, 6.5))
    im = ax.imshow(m, cmap="viridis_r")
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_yticks(range(len(sizes)), sizes)
    ax.set_xlabel("chunksize")
    ax.set_ylabel("splits (numpy.split(data, splits))")
    for i in range(len(sizes)):
        for j in range(len(sizes)):
            if not np.isnan(m[i, j]):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if m[i, j] > np.nanmean(m) else "black",
                )
    fig.colorbar(im, ax=ax, label="seconds (median; pool created inside each run)")
    ax.set_title("B5: Pool.map(exp, split(data, s), chunksize=c)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
