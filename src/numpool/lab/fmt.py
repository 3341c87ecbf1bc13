"""Figures as text, for the bench report, its plots and the terminal: 1.6 ms, 6.6 GB,
2.15x, 84%. A figure that was not measured is ``n/m``, never a zero or a default."""

from __future__ import annotations

__all__ = ["NM", "fmt_bytes", "fmt_gap", "fmt_pct", "fmt_rate", "fmt_s", "ratio"]

NM = "n/m"


def fmt_s(t: float | None) -> str:
    """Seconds as text: 1.6 ms, 216.8 ms, 3.90 s; ``n/m`` when not measured."""
    if t is None:
        return NM
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    if t < 1:
        return f"{t * 1e3:.1f} ms"
    return f"{t:.2f} s" if t < 10 else f"{t:.1f} s"


def fmt_bytes(b: float | None) -> str:
    """Bytes as text (decimal units); ``n/m`` when not measured."""
    if b is None:
        return NM
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b:.0f} B"


def ratio(x: float | None) -> str:
    """A speed-up as text: "2.15x" (faster or equal), "2.0x slower", "660x slower"."""
    if not x:
        return NM
    if x >= 0.995:
        return f"{x:.2f}x"
    slower = 1 / x
    if slower < 2:
        return f"{slower:.2f}x slower"
    return f"{slower:.1f}x slower" if slower < 10 else f"{slower:,.0f}x slower"


def fmt_gap(x: float) -> str:
    """A relative gap as text, a decimal below 10% so 5.3% never reads as a 5% tie."""
    return f"{x:.0%}" if x >= 0.1 else f"{x:.1%}"


def fmt_pct(x: float | None) -> str:
    """A share as text: "84%", or two significant digits below 1% ("0.035%"), never "0%"."""
    if x is None:
        return NM
    return f"{x:.0%}" if x >= 0.01 else f"{x * 100:.2g}%"


def fmt_rate(x: float | None) -> str:
    """GFLOP/s or GB/s: "111.5", or two significant digits below 1 ("0.0035")."""
    if x is None:
        return NM
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"
