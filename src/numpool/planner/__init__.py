"""backend="auto": measure, choose, explain, and learn from every call.

::

    first call of a kind of work          every call
    ────────────────────────────          ──────────
    measure.py  head + threads stage      evidence.py  wall seconds per item of the
        │  on the real rows (kept)            │        backend that ran it
        ▼                                     ▼
    Measurements ──────────────────▶  model.choose(measurements, profile, work)
    profile.py  this machine's costs  ──▶      │  predicted seconds per backend,
    (measured once, cached on disk)            │  hysteresis, bounded exploration
                                               ▼
                                           Decision (backend, costs, reason codes)
                                               │
                                   explain.py  ▼  plan.py
                                           Plan.explain(): sentences with figures

``model.py`` is pure: every decision can be tested from a table of
measurements, with no timing. ``numpool._runner`` runs the calls.
"""
