"""numpool.Plan: what backend="auto" chose, with the figures behind the choice.

A :class:`Plan` is made by the planner (``numpool/_planner.py``) from
measurements on the start of the real input, and kept in a small cache
keyed by (function, kind of input, size class, options) so that a loop
calling ``apply`` a thousand times measures once. This module holds the
plan, its plain-words explanation, and the cache.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Plan", "PlanCache"]


@dataclass(frozen=True)
class Plan:
    """The backend and sizes ``backend="auto"`` runs a call with, and why.

    ``print(plan)`` or :meth:`explain` gives the reasoning in plain words
    with the measured figures behind it.

    Attributes
    ----------
    kind : str
        ``"apply"`` (items are rows) or ``"map"`` (items are tasks).
    backend : str
        ``"serial"``, ``"threads"`` or ``"processes"``.
    workers : int
        Workers of the chosen backend (1 for serial).
    chunks : int or None
        Blocks for apply (None for map).
    chunksize : int or None
        Tasks per message for map (None for apply).
    blas_threads : int or None
        BLAS threads per worker (None: left as they are).
    cached : bool
        True when an earlier call with the same function, input class and
        options made this decision and nothing was measured this time.
    item_s : float
        Measured seconds per row (apply) or task (map), run serially.
    serial_s : float
        Estimated seconds to run the whole input serially.
    speedups : dict
        Measured speed-up over serial per backend tried, on a sample of the
        real input (``{"threads": 1.9, "processes": 1.7}``); the median of
        ``observed`` when the decision took more than one call.
    observed : dict
        Every speed-up measured per backend, one per decision (``trials``).
    trials : int
        Calls that measured for this decision. A close call (the winner
        under 1.5x the runner-up) is measured again on the next calls, up
        to 3, and decided on the medians; then it is ``settled``.
    reasons : tuple of str
        The sentences :meth:`explain` prints.
    """

    kind: str
    backend: str
    workers: int
    chunks: int | None
    chunksize: int | None
    blas_threads: int | None
    cached: bool = False
    what: str = ""
    item_s: float = 0.0
    serial_s: float = 0.0
    speedups: dict[str, float] = field(default_factory=dict)
    move_s: float = 0.0
    startup_s: float = 0.0
    probe_s: float = 0.0
    measured_items: int = 0
    revisit: bool = False
    observed: dict[str, tuple[float, ...]] = field(default_factory=dict)
    trials: int = 1
    settled: bool = True
    reasons: tuple[str, ...] = ()

    @property
    def worker_item_s(self) -> float:
        """A worker's seconds per item on the chosen backend, for block sizes. A
        measured speed-up above the worker count (the serial sample also paid for
        faulting in fresh memory) counts as the worker count."""
        sp = min(self.speedups.get(self.backend, 1.0), self.workers)
        return self.item_s * self.workers / max(sp, 1e-9)

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
                "- Cached: decided on an earlier call with the same function, dtype, size "
                "class and options; nothing was measured this time."
            )
        elif self.probe_s:
            unit = "rows" if self.kind == "apply" else "tasks"
            lines.append(
                f"- The first {self.measured_items:,} {unit} ran while measuring "
                f"({self.probe_s * 1e3:.1f} ms); their results are kept, not thrown away."
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: no entry of ``PlanCache.tiny`` found yet (matches no call)
_NO_TINY: tuple[Any, ...] = (None,) * 6


class PlanCache:
    """An LRU map from a call's key to the Plan made for it (thread-safe)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._plans: OrderedDict[Hashable, Plan] = OrderedDict()
        self._hits: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        #: serial plans for work too small to try anything, by a cheaper key, with
        #: whether the result needs no check (see ``Pool._tiny``): checked first, in <1 us
        self.tiny: dict[Hashable, tuple[Plan, bool]] = {}
        #: the entry of ``tiny`` found last, as (*key, plan, unchecked)
        self.last_tiny: tuple[Any, ...] = _NO_TINY

    def get(self, key: Hashable, revisit_after: int = 0) -> Plan | None:
        """The plan to run ``key`` with, or None: plan (again). None also when

        - a plan marked ``revisit`` has been used ``revisit_after`` times (the
          caller plans again, knowing the call repeats);
        - the plan is not ``settled`` (a close call: measure again; the entry
          stays, as the :meth:`prior` the next decision adds to)."""
        plan = self._plans.get(key)
        if plan is not None:
            with self._lock:
                if key in self._plans:
                    self._plans.move_to_end(key)
                if plan.revisit:
                    hits = self._hits[key] = self._hits.get(key, 0) + 1
                    if hits >= revisit_after:
                        del self._plans[key]
                        return None
            if not plan.settled:
                return None
        return plan

    def prior(self, key: Hashable) -> Plan | None:
        """An unsettled plan for ``key``, whose measurements the next decision adds to."""
        plan = self._plans.get(key)
        return plan if plan is not None and not plan.settled else None

    def repeated(self, key: Hashable) -> bool:
        """Whether ``key`` was dropped for a revisit (its call keeps coming back)."""
        return key in self._hits and key not in self._plans

    def put(self, key: Hashable, plan: Plan) -> None:
        with self._lock:
            self._plans[key] = dataclasses.replace(plan, cached=True, probe_s=0.0)
            self._plans.move_to_end(key)
            if not plan.revisit:
                self._hits.pop(key, None)
            while len(self._plans) > self.size:
                old, _ = self._plans.popitem(last=False)
                self._hits.pop(old, None)

    def remember_tiny(self, key: Hashable, plan: tuple[Plan, bool]) -> None:
        with self._lock:
            if len(self.tiny) >= self.size:
                self.tiny.clear()
            self.last_tiny = _NO_TINY
            self.tiny[key] = plan

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._hits.clear()
            self.tiny.clear()
            self.last_tiny = _NO_TINY

    def __len__(self) -> int:
        return len(self._plans)
