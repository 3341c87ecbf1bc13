"""What calls of one kind of work have shown: the memory behind ``backend="auto"``.

A kind of work is a key: the function (its code, so a lambda made anew in a
loop is the same function), the input's dtype, trailing shape and size
class (a power of two of its bytes), whether it is shared memory, and the
pool's options. For each key an :class:`Evidence` keeps:

* what the first call sampled: serial seconds per item, whether func ran
  native threads (BLAS), the threads' speed-up on real items;
* for every backend that ran whole calls, their wall seconds per item: the
  last ``WINDOW``, of which the lowest counts (a busy moment of the machine
  only ever slows a call down, so the lowest of a few recent calls is the
  best estimate of what the backend can do now, and an old lucky figure
  leaves the window after ``WINDOW`` calls);
* the backend the evidence settled on (``current``: the anchor of the
  model's hysteresis), and how many calls there were.

Every call updates its key's evidence (:meth:`Evidence.observe`), so the
decision follows what calls really take, not what one sample suggested. A
call on a settled serial route notes its figure on a :class:`Tally` instead
(no lock, two small objects touched: after a call that streamed megabytes
through the caches, each further object a call touches costs a cache and
TLB miss); the tally is folded into the evidence, as the same calls'
``observe`` would have left it, before the evidence is next read
(:meth:`EvidenceCache.get`, :meth:`Evidence.fold`).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from .model import Counts, Measurements, capped

__all__ = ["STALE_CALLS", "WINDOW", "Evidence", "EvidenceCache", "Tally", "cache", "func_key"]

#: whole calls per backend kept; the lowest of them is the backend's figure
WINDOW = 3
#: a backend's figure is forgotten when it has not run for this many calls of the
#: work: its first whole calls may have paid for cold memory (fresh output pages
#: cost ~4 us each on a VM: 2.4 MB, ~2.4 ms), and a backend that lost on such a
#: figure would never run again to correct it. Forgotten, it is predicted by the
#: model again, and explored if that puts it within reach of the best
STALE_CALLS = 96


def func_key(func: Any) -> Hashable:
    """A function's identity for the evidence: a lambda made anew keeps its code."""
    code: Hashable | None = getattr(func, "__code__", None)
    if code is not None:
        return code
    try:
        hash(func)
    except TypeError:
        return id(func)
    key: Hashable = func
    return key


class Evidence:
    """What calls of one kind of work have shown (see the module docstring)."""

    __slots__ = (
        "block_row_s",
        "bytes_per_item",
        "call_s",
        "calls",
        "counts",
        "current",
        "direct",
        "gil_free",
        "item_s",
        "item_s_bound",
        "kind",
        "native",
        "out_bytes_per_item",
        "recent",
        "seen",
        "tallies",
        "threads_speedup",
        "threads_trusted",
    )

    def __init__(self, kind: str, item_s: float, bound: bool = False, native: float = 1.0):
        self.kind = kind
        self.item_s = item_s
        self.item_s_bound = bound
        self.native = native
        self.threads_speedup: float | None = None
        self.threads_trusted = False
        self.gil_free: bool | None = None
        self.bytes_per_item = 0.0
        #: apply: func writes each block straight into the output (a ufunc over the
        #: call's arrays, no halo), so it makes no block-sized temporaries
        self.direct = False
        #: func's own seconds per call besides its rows' (apply), from the first call's
        #: head (measure.per_row_and_call); 0.0: too little to tell, or not measured
        self.call_s = 0.0
        #: the least seconds per row that calls' blocks kept a worker busy (in-process
        #: workers, BLAS under budget): what block sizes go by once known, since the
        #: first call's serial figure may include its temporaries' page faults
        self.block_row_s: float | None = None
        #: pulled blocks: each call size's trial of two block counts
        #: (:class:`model.Counts`), by rows
        self.counts: dict[int, Counts] = {}
        #: output bytes per item (apply: a row of func's result)
        self.out_bytes_per_item = 0.0
        self.recent: dict[str, list[float]] = {}
        #: the call count at each backend's last whole call
        self.seen: dict[str, int] = {}
        self.calls = 0
        self.current: str | None = None
        #: whole calls noted on settled routes since the last fold, by backend
        self.tallies: dict[str, Tally] = {}

    def tally(self, backend: str) -> Tally:
        """Where a settled route's whole calls on ``backend`` are noted (one per
        backend, shared by the routes of this evidence, so that their order holds)."""
        return self.tallies.setdefault(backend, Tally(backend))

    def fold(self) -> None:
        """Take in the calls noted on tallies since the last fold, leaving the evidence
        as :meth:`observe` on each of them would have: the last ``WINDOW`` figures,
        each seen at its own call, and every call counted. Under the cache's lock."""
        for t in self.tallies.values():
            calls, notes = t.take()
            if not calls:
                continue
            start = self.calls
            for i, item_s in notes:
                self.calls = start + i
                self.observe(t.backend, item_s)
            self.calls = start + calls
            self.current = t.backend

    def observe(self, backend: str, item_s: float) -> None:
        """A whole call (or the bulk of one) ran on ``backend`` at ``item_s`` wall
        seconds per item."""
        if item_s > 0:
            window = self.recent.setdefault(backend, [])
            window.append(item_s)
            del window[:-WINDOW]
            self.seen[backend] = self.calls

    def observe_blocks(self, row_s: float) -> None:
        """A call's blocks kept workers busy ``row_s`` seconds per row."""
        if row_s > 0 and (self.block_row_s is None or row_s < self.block_row_s):
            self.block_row_s = row_s

    def _fresh(self, backend: str) -> bool:
        """Whether ``backend`` ran a whole call within the last STALE_CALLS calls."""
        return self.calls - self.seen.get(backend, self.calls) <= STALE_CALLS

    def serial_only_s(self) -> float | None:
        """The serial seconds per item :meth:`measurements` gives (its best recent
        whole call, else the first call's figure; capped by the blocks' busy time,
        :func:`model.serial_row_s`), while no other backend's recent
        whole calls ran an item faster; None once one has. A call of ``n`` items is
        then too small for any backend to win (:func:`model.serial_certain`) exactly
        when ``n`` times this is within :func:`model.certain_below`'s bound: a
        backend's whole calls count for it only when they beat serial per item."""
        mine = self.recent.get("serial")
        if not (mine and self._fresh("serial")):
            mine = []
        row_s = capped(min(mine, default=self.item_s), len(mine), self.block_row_s)
        for backend, window in self.recent.items():
            if backend != "serial" and window and min(window) < row_s and self._fresh(backend):
                return None
        return row_s

    def best(self, backend: str) -> float | None:
        window = self.recent.get(backend)
        return min(window) if window else None

    def measurements(
        self, items: int, fresh_bytes: float = 0.0, alloc_bytes: float = 0.0
    ) -> Measurements:
        return Measurements(
            kind=self.kind,
            items=items,
            item_s=self.item_s,
            item_s_bound=self.item_s_bound,
            native=self.native,
            threads_speedup=self.threads_speedup,
            threads_trusted=self.threads_trusted,
            gil_free=self.gil_free,
            bytes_per_item=self.bytes_per_item,
            fresh_bytes=fresh_bytes,
            alloc_bytes=alloc_bytes,
            observed={b: min(v) for b, v in self.recent.items() if v and self._fresh(b)},
            observations={b: len(v) for b, v in self.recent.items() if self._fresh(b)},
            calls=self.calls,
            current=self.current,
            call_s=self.call_s,
            block_row_s=self.block_row_s,
        )


class Tally:
    """Whole calls of one backend noted on settled routes, waiting to be folded into
    their :class:`Evidence` (:meth:`Evidence.fold`). :meth:`note` takes no lock: a
    note racing a fold in another thread may be lost or counted twice; the figures
    kept are still those of real calls."""

    __slots__ = ("backend", "calls", "kept", "notes")

    def __init__(self, backend: str) -> None:
        self.backend = backend
        #: calls noted since the last fold
        self.calls = 0
        #: the last ``WINDOW`` positive figures, as (call index, seconds per item), in
        #: the slots ``kept % WINDOW`` (the only ones ``observe`` would keep)
        self.notes: list[tuple[int, float] | None] = [None] * WINDOW
        self.kept = 0

    def note(self, item_s: float) -> None:
        """One more whole call, at ``item_s`` wall seconds per item."""
        i = self.calls
        if item_s > 0:
            self.notes[self.kept % WINDOW] = (i, item_s)
            self.kept += 1
        self.calls = i + 1

    def take(self) -> tuple[int, list[tuple[int, float]]]:
        """The calls noted and their kept figures in call order; forgets them."""
        calls, notes = self.calls, sorted(n for n in self.notes if n is not None)
        self.calls, self.kept, self.notes = 0, 0, [None] * WINDOW
        return calls, notes


class EvidenceCache:
    """An LRU map from a kind of work's key to its :class:`Evidence` (thread-safe)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Evidence] = OrderedDict()
        self.lock = threading.Lock()
        #: what was derived from the evidence (the runners' tiny paths): cleared with it
        self.derived: weakref.WeakSet[Any] = weakref.WeakSet()

    def get(self, key: Hashable) -> Evidence | None:
        with self.lock:
            ev = self._items.get(key)
            if ev is not None:
                self._items.move_to_end(key)
                ev.fold()
            return ev

    def items(self) -> list[tuple[Hashable, Evidence]]:
        """Every kind of work kept and its evidence, oldest first, each folded as
        :meth:`get` folds it (for a look at all of them: tools and tests)."""
        with self.lock:
            for ev in self._items.values():
                ev.fold()
            return list(self._items.items())

    def put(self, key: Hashable, ev: Evidence) -> Evidence:
        """Keep ``ev`` for ``key``; another thread's evidence for it wins (returned)."""
        with self.lock:
            have = self._items.get(key)
            if have is not None:
                return have
            self._items[key] = ev
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return ev

    def clear(self) -> None:
        with self.lock:
            self._items.clear()
            derived = list(self.derived)
        for d in derived:
            d.clear()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it)."""
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)


cache = EvidenceCache()
