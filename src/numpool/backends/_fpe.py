"""NumPy's floating-point error modes travel with the work.

``with np.errstate(divide="raise"): numpool.apply(func, x)`` must mean what it
means around ``func(x)``. NumPy keeps the modes per thread (a context variable
from NumPy 2, the thread's state before), and neither a pool thread nor a worker
process inherits them: a block run there ran under the defaults, so a division
by zero that raises ``FloatingPointError`` serially passed unnoticed (a warning,
or nothing) when it fell in a block that a helper ran, and ``np.errstate(all=
"ignore")`` still let helpers warn. Now every job numpool sends (a block, a map
batch, a ``Pool.submit`` call) carries the modes its caller had when it sent it,
and runs under them:

* in this process (threads, the serial pool's submit thread, Dask's in-process
  workers): :func:`here` in the caller, :func:`run` around the job;
* in another process (processes, pickle, Dask's worker processes): the modes
  travel as data (:func:`to_send`) and :func:`enter` sets them there.

The ``"call"`` and ``"log"`` modes hand each error to an object of the caller's
(``np.seterrcall``). A thread reaches the same object; another process has no
such object, so a job sent there under those modes is refused with a
``ValueError`` that says what to do (:func:`to_send`).

Costs: ~0.7 us in the caller per job sent; where it runs, nothing under NumPy's
defaults in a thread, ~1.7 us otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

__all__ = ["Modes", "enter", "here", "run", "to_send"]

#: the four kinds of floating-point error, in the order :data:`Modes` gives them
KINDS = ("divide", "over", "under", "invalid")

#: what NumPy does with one kind of error
Mode = Literal["ignore", "warn", "raise", "call", "print", "log"]

#: one mode per kind of :data:`KINDS`
Modes = tuple[Mode, Mode, Mode, Mode]

#: the modes and the error callback (``np.geterrcall()``) of a caller, for a job that
#: runs in this process; None: NumPy's defaults, which a pool thread has already
Here = tuple[Modes, Any] | None

#: NumPy's modes in a thread that set none
DEFAULTS = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}

#: modes that hand an error to the caller's own object
_CALLERS = frozenset(("call", "log"))


def modes() -> Modes:
    """This thread's modes now (``np.geterr()``, as data that travels)."""
    return _as_modes(np.geterr())


def here() -> Here:
    """What a job run in another thread of this process needs to run as the caller
    would: its modes and, where one of them uses it, its callback; None when they
    are NumPy's defaults (the common case: the job then runs as it is, ~2 us less
    on every hand-off to a pool thread)."""
    err = np.geterr()
    if err == DEFAULTS:
        return None
    now = _as_modes(err)
    return now, (np.geterrcall() if _CALLERS.intersection(now) else None)


def run(state: Here, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` under the caller's modes (``state`` from :func:`here`),
    in whatever thread runs it; the thread's own modes are back afterwards. With
    ``state`` None, under the thread's own: NumPy's defaults in a pool thread (unless
    a func called ``np.seterr`` there, as it would have in the caller serially)."""
    if state is None:
        return fn(*args, **kwargs)
    err, call = state
    with np.errstate(call=call, **_by_kind(err)):
        return fn(*args, **kwargs)


def to_send(where: str) -> Modes:
    """This thread's modes, for a job sent to another process (``where`` names it
    for the error). Refused when a mode hands errors to an object of this process's
    (``"call"``, ``"log"``): that process has no such object."""
    now = modes()
    if _CALLERS.intersection(now):
        used = ", ".join(f"{k}={m!r}" for k, m in zip(KINDS, now, strict=True) if m in _CALLERS)
        raise ValueError(
            f"numpool: NumPy's floating-point errors are set to go to a function or "
            f"object of this process ({used}, see np.seterrcall), which {where} cannot "
            "reach; use backend='threads' or 'serial', or np.errstate with 'raise', "
            "'warn', 'print' or 'ignore' around the call"
        )
    return now


def enter(err: Modes) -> None:
    """In another process, before a job: the caller's modes (:func:`to_send`) are this
    thread's from now on (set for each job: func may have changed them in the last)."""
    np.seterr(**_by_kind(err))


def _as_modes(err: Mapping[str, Any]) -> Modes:
    return (err["divide"], err["over"], err["under"], err["invalid"])


def _by_kind(err: Modes) -> dict[str, Mode]:
    return dict(zip(KINDS, err, strict=True))
