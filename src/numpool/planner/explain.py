"""Reason codes into sentences: what ``Plan.explain()`` prints.

The model decides with codes and figures (:class:`~numpool.planner.model.Reason`);
this module alone words them, so a change of wording never touches a decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .model import BLOCK_OVERHEAD, EXPLORE_WITHIN, Decision, Measurements, Reason

__all__ = ["duration", "sentences"]


def duration(s: float) -> str:
    """Seconds in the unit a person reads best: 812 ns, 41 us, 6.3 ms, 2.10 s."""
    if s == math.inf:
        return "n/a"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _unit(m: Measurements) -> str:
    return {"apply": "row", "reduce": "block"}.get(m.kind, "task")


_WORDS: dict[str, Callable[[Mapping[str, Any], Measurements], str]] = {
    "unavailable": lambda f, m: f"{f['backend']} cannot run this call: {f['why']}.",
    "one-worker": lambda f, m: "Only one worker is allowed: serial.",
    "gil-free": lambda f, m: (
        f"{f['workers']} threads ran {f['speedup']:.2f}x as fast as serial {_on(f)}: "
        "func releases the GIL."
    ),
    "partly-parallel": lambda f, m: (
        f"{f['workers']} threads ran {f['speedup']:.2f}x as fast as serial {_on(f)}: part "
        "of func runs in parallel (the rest holds the GIL, or the threads share the memory "
        "bandwidth)."
    ),
    "bandwidth-bound": lambda f, m: (
        f"{f['workers']} threads ran {f['speedup']:.2f}x as fast as serial {_on(f)}, with "
        "every thread on a core: func releases the GIL, but the threads share what limits "
        "it (memory bandwidth, or cores that other programs keep busy)."
    ),
    "gil-bound": lambda f, m: (
        f"{f['workers']} threads ran {f['speedup']:.2f}x as fast as serial {_on(f)}: func "
        "holds the GIL (or serial already kept the cores busy), so threads cannot help."
    ),
    "threads-unclear": lambda f, m: (
        f"{f['workers']} threads ran {f['speedup']:.2f}x as fast as serial {_on(f)} too short "
        "to tell a GIL-holding func from a slow moment of the machine."
    ),
    "too-small": lambda f, m: (
        f"The work (~{duration(f['serial_s'])} serially) is too small for any backend to "
        f"win, even one that scaled perfectly: handing it to other workers costs "
        f"~{duration(f['fixed_s'])} before any work is done. Serial, and not revisited."
    ),
    "copy-costs": lambda f, m: (
        f"{f['backend']} would move {_bytes(f['bytes'])} between processes (~"
        f"{duration(f['move_s'])}) to save at most ~{duration(f['compute_s'])} of computing."
    ),
    "start-up": lambda f, m: (
        f"Starting {f['backend']} costs ~{duration(f['start_s'])} per call, spread over the "
        f"{f['calls']} call{'s' * (f['calls'] != 1)} of this work so far; it pays once the work "
        "repeats enough."
    ),
    "hysteresis": lambda f, m: (
        f"Kept {f['kept']}: {f['other']} is predicted less than {f['margin'] - 1:.0%} faster, "
        "not enough to change a decision that calls have confirmed."
    ),
    "measure-first": lambda f, m: (
        f"{f['backend']} could win, but this machine's costs for it were not measured yet: "
        "measured now."
    ),
    "cheapest": lambda f, m: f"Cheapest predicted: {f['backend']}.",
    "explore": lambda f, m: (
        f"This call runs on {f['backend']} (predicted {duration(f['seconds'])}, within "
        f"{EXPLORE_WITHIN:g}x of {f['best']}) to measure it: it has run "
        f"{f['calls']} whole call{'s' * (f['calls'] != 1)} of this work so far."
    ),
}


def reason(r: Reason, m: Measurements) -> str:
    words = _WORDS.get(r.code)
    return words(r.figures, m) if words is not None else f"{r.code}: {dict(r.figures)}"


def _on(f: Mapping[str, Any]) -> str:
    """Where a threads figure came from."""
    return "over whole calls" if f.get("calls") else "on a sample"


def sentences(name: str, m: Measurements, decision: Decision, items_total: int) -> list[str]:
    """The explanation of ``decision`` for ``name`` (func's name), in order."""
    unit = _unit(m)
    serial_all = m.item_s * items_total
    if m.item_s_bound:
        out = [
            f"Serially, {name} took at most {duration(m.item_s)} per {unit} (at most "
            f"~{duration(serial_all)} for all {items_total:,}): on blocks this small, most of "
            "the time measured was numpool's own cost per block."
        ]
    else:
        out = [
            f"Serially, {name} took {duration(m.item_s)} per {unit} "
            f"(~{duration(serial_all)} for all {items_total:,})."
        ]
    if m.call_s > 0:
        out.append(
            f"Each call of {name} also cost ~{duration(m.call_s)} however few its {unit}s "
            "(read from the first call's growing blocks): blocks are kept large enough "
            "to pay it seldom."
        )
    if m.native > 1.3:
        out.append(
            f"The serial call kept {m.native:.1f} cores busy by itself (BLAS or OpenMP threads)."
        )
    firsts = ("cheapest", "explore", "measure-first")
    out += [reason(r, m) for r in decision.reasons if r.code not in firsts]
    shown = sorted((t, b) for b, t in decision.costs.items() if t < math.inf)
    basis = {
        "observed": "whole calls",
        "sample": "a sample",
        "serial": "the sample",
        "model": "the model",
        "optimistic": "the model, at best",
    }
    if shown:
        out.append(
            f"Predicted for this call ({m.items:,} {unit}s): "
            + ", ".join(
                f"{b} {duration(t)} ({basis.get(decision.basis.get(b, ''), 'the model')})"
                for t, b in shown
            )
            + "."
        )
    out += [reason(r, m) for r in decision.reasons if r.code in firsts]
    if m.observed:
        out.append(
            "Whole calls so far, best per "
            + f"{unit}: "
            + ", ".join(
                f"{b} {duration(t)} ({m.observations.get(b, 0)} call"
                f"{'s' * (m.observations.get(b, 0) != 1)})"
                for b, t in sorted(m.observed.items(), key=lambda bt: bt[1])
            )
            + "."
        )
    return out


def block_rule() -> str:
    return (
        f"No block holds less than {1 / BLOCK_OVERHEAD:.0f}x its backend's measured cost of "
        "sending one."
    )
