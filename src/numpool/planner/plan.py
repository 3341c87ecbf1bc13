"""numpool.Plan: what ``backend="auto"`` chose for a call, with the figures behind it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Plan"]


@dataclass(frozen=True)
class Plan:
    """The backend and sizes a call ran with, and why.

    ``print(plan)`` or :meth:`explain` gives the reasoning in plain words,
    with the measured figures behind it.

    Attributes
    ----------
    kind : str
        ``"apply"`` (items are rows), ``"map"`` (items are tasks) or ``"reduce"``
        (items are the fixed blocks whose partial results are combined).
    backend : str
        The backend the call ran on: ``"serial"``, ``"threads"`` or ``"processes"``.
    workers : int
        Workers of that backend (1 for serial).
    chunks : int or None
        Blocks of the call (apply; None for map).
    chunksize : int or None
        Tasks per message (map; None for apply).
    blas_threads : int or None
        BLAS threads per worker (None: left as they are).
    what : str
        The call, in words.
    cached : bool
        True when nothing was measured for this call: it was decided from what
        earlier calls of the same work (function, dtype, size class, options)
        measured and took.
    item_s : float
        Serial seconds per row (apply) or task (map), measured on the first call.
    serial_s : float
        Estimated seconds to run the whole input serially.
    speedups : dict
        Speed-up over serial per backend: measured on a sample of the real input
        (threads), or from the whole calls each backend ran.
    costs : dict
        Predicted seconds of this call per backend (``inf``: cannot run it).
    basis : dict
        Where each prediction came from: ``"observed"`` (whole calls),
        ``"sample"``, ``"model"`` or ``"unavailable"``.
    explore : bool
        This call ran on a backend only to measure it (predicted within 1.25x
        of the best, with fewer than two whole calls so far).
    calls : int
        Calls of this work before this one.
    codes : tuple of str
        The reason codes of the decision (see ``numpool.planner.model``).
    reasons : tuple of str
        The sentences :meth:`explain` prints.
    """

    kind: str
    backend: str
    workers: int
    chunks: int | None
    chunksize: int | None
    blas_threads: int | None
    what: str = ""
    cached: bool = False
    item_s: float = 0.0
    serial_s: float = 0.0
    speedups: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    basis: dict[str, str] = field(default_factory=dict)
    explore: bool = False
    calls: int = 0
    codes: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    measured_items: int = 0
    probe_s: float = 0.0

    def explain(self) -> str:
        """The choice and the reasons for it, a few plain sentences."""
        sizes = (
            f"{self.chunks} block{'s' * (self.chunks != 1)}"
            if self.chunks is not None
            else f"chunksize {self.chunksize}"
        )
        head = f"{self.what} -> backend={self.backend!r}"
        if self.backend != "serial":
            head += f", {self.workers} workers, {sizes}"
            if self.blas_threads is not None:
                head += f", {self.blas_threads} BLAS thread{'s' * (self.blas_threads != 1)} each"
        lines = [head + "."]
        lines += [f"- {r}" for r in self.reasons]
        if self.cached:
            lines.append(
                f"- Decided from the {self.calls} earlier call{'s' * (self.calls != 1)} of this "
                "work (same function, dtype, size class and options); nothing was sampled "
                "this time."
            )
        elif self.probe_s:
            unit = {"apply": "rows", "reduce": "blocks"}.get(self.kind, "tasks")
            lines.append(
                f"- The first {self.measured_items:,} {unit} ran while measuring "
                f"({self.probe_s * 1e3:.1f} ms); their results are kept, not thrown away."
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
