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
from collections.abc import Callable, Hashable
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
        real input (``{"threads": 1.9, "processes": 1.7}``). After a run-off,
        the backends that ran whole calls have their speed-ups from those.
    contenders : tuple of str
        Backends still in a run-off: the sample left the choice close (the
        winner under 1.5x a runner-up, serial counting as 1.0), or it ran
        into fresh memory whose page faults swamp a sample. The next calls
        then run whole on each contender in turn, 2 times each (once, for
        one 2x slower than the fastest), and the lowest wall time per item
        wins. Empty once ``settled``.
    runoff : dict
        Wall seconds per item of the whole calls run so far in the run-off,
        per backend.
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
    contenders: tuple[str, ...] = ()
    runoff: dict[str, tuple[float, ...]] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()

    @property
    def settled(self) -> bool:
        """Whether the choice is made for good (no run-off pending)."""
        return not self.contenders

    def worker_item_s_on(self, backend: str, workers: int) -> float:
        """A worker's seconds per item on ``backend`` with ``workers``. A measured
        speed-up above the worker count (the serial sample also paid for faulting in
        fresh memory) counts as the worker count."""
        sp = min(self.speedups.get(backend, 1.0), workers)
        return self.item_s * workers / max(sp, 1e-9)

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
        return {**dataclasses.asdict(self), "settled": self.settled}


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
        """The plan to run ``key`` with (settled, or in a run-off), or None: plan
        (again). None also when a plan marked ``revisit`` has been used
        ``revisit_after`` times (the caller plans again, knowing the call repeats)."""
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
        return plan

    def repeated(self, key: Hashable) -> bool:
        """Whether ``key`` was dropped for a revisit (its call keeps coming back)."""
        return key in self._hits and key not in self._plans

    def update(self, key: Hashable, change: Callable[[Plan], Plan]) -> Plan | None:
        """Replace ``key``'s plan with ``change(plan)`` atomically; the new plan, or
        None when ``key`` is no longer cached."""
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                return None
            plan = self._plans[key] = change(plan)
            return plan

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
