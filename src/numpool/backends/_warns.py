"""Warnings raised in another process meet the caller's filters.

``with warnings.catch_warnings(record=True)``, ``-W error``, ``pytest.warns``,
``warnings.simplefilter("ignore")``: the filters and the place warnings go are
the process's, so a warning that ``func`` raises (NumPy's ``RuntimeWarning`` for
an overflow, a ``warnings.warn`` of its own) in a pool thread meets them as it
would serially, and one raised in a worker process met the worker's (printed on
its stderr, never recorded, never an error). Now every job sent to another
process (processes, pickle, Dask's worker processes) carries the caller's filters,
and the warnings that pass them come back with its result and are issued in the
caller, where its filters and registries decide again:

::

    caller: to_send() ──▶ filters (bytes) ──▶ worker: run(filters, job)
    worker: job's warnings that pass ──▶ Heard(result, warnings) ──▶ caller: emit()
                                                                      then the result

* ``"error"`` is decided in the worker, as in the caller: the warning is raised
  where ``func`` raised it, and comes back as the job's exception, with its type;
* ``"ignore"`` is decided there too: nothing comes back;
* ``"default"``, ``"module"``, ``"once"`` and ``"always"``: the worker sends what
  it sees once per job (``"once"`` per module there), the caller decides what
  shows, with its own registries (``"default"``: once per line of each module,
  the caller's and the workers' occurrences together, as serially).

A warning comes back with the module whose code raised it (filters match module
names), its file and line, its message and category; a category the caller
cannot load (a class of a module the worker alone has) comes back as a
``UserWarning`` that names it. Warnings raised before ``func`` raised an error
come back with the error (processes; on Dask they are printed by the worker).

Costs, measured: ~0.5 us in the caller per job sent (the filters are packed
again only when they change), ~1 us in the worker per job; nothing is sent back
for a job that raised no warning. Python 3.14's per-context filters
(``sys.flags.context_aware_warnings``) are not followed yet: the caller's
process-wide filters are what travels.
"""

from __future__ import annotations

import contextlib
import inspect
import pickle
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

from .. import shm
from .._errors import SharedMemoryWarning

__all__ = ["Heard", "Sent", "emit", "run", "to_send"]

#: a filter entry (``warnings.filters``): action, message, category, module, line
_Filter = tuple[str, Any, Any, Any, int]

#: what a worker does with a warning the caller's filter gives each action: decide
#: it there ("error", "ignore") or send it back (at most once a job where the caller
#: shows it at most once in a module)
_IN_WORKER = {
    "error": "error",
    "ignore": "ignore",
    "always": "always",
    "all": "always",
    "default": "default",
    "module": "module",
    "once": "module",  # (the caller's onceregistry decides across modules and jobs)
}

_sent: tuple[tuple[Any, ...], bytes] | None = None


def to_send() -> bytes:
    """The caller's warning filters now, for a job sent to another process (the same
    bytes while they stay the same)."""
    global _sent
    default = getattr(warnings, "defaultaction", "default")
    now = (*warnings.filters, default)
    if _sent is None or _sent[0] != now:
        _sent = (now, _pack_filters(list(warnings.filters), default))
    return _sent[1]


def _pack_filters(filters: list[_Filter], default: str) -> bytes:
    """The worker's filters, as the caller's: each entry with its action as
    :data:`_IN_WORKER` maps it, the default action as a last entry. An entry that
    cannot travel (a category that cannot be pickled) sends its warnings back for the
    caller to decide."""
    import cloudpickle

    kept = []
    for action, message, category, module, lineno in [*filters, (default, None, Warning, None, 0)]:
        entry = (_IN_WORKER.get(action, "always"), message, category, module, lineno)
        try:
            cloudpickle.dumps(entry)
        except Exception:
            entry = ("always", message, Warning, module, lineno)
        kept.append(entry)
    return cloudpickle.dumps(kept)


_got: tuple[bytes, list[_Filter]] | None = None


def _filters(sent: bytes) -> list[_Filter]:
    global _got
    if _got is None or _got[0] != sent:
        import cloudpickle

        _got = (sent, cloudpickle.loads(sent))
    return _got[1]


class Sent:
    """A job's result with the warnings it raised (:func:`run`), for a channel whose
    receiver calls :func:`emit` itself (Dask's: see ``dask._Bridged``)."""

    __slots__ = ("heard", "value")

    def __init__(self, value: Any, heard: bytes) -> None:
        self.value, self.heard = value, heard


class Heard(Sent):
    """:class:`Sent` that issues its warnings in the process that unpickles it and
    arrives as the result itself (a worker process's result is unpickled in the
    caller before its future is done, so the warnings come before the result)."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        return (_arrive, (self.value, self.heard))


def _arrive(value: Any, heard: bytes) -> Any:
    emit(heard)
    return value


def run(
    sent: bytes, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> tuple[Any, bytes | None]:
    """In another process: ``fn(*args, **kwargs)`` under the caller's filters
    (``sent``, from :func:`to_send`), and the warnings that passed them, packed for
    :func:`emit` (None where there were none). An exception that carries a
    ``heard`` slot (an exception in transit: see ``_ship``) takes them with it;
    another leaves them to the worker's own filters, which print them."""
    heard: list[tuple[Any, ...]] = []
    try:
        with warnings.catch_warnings():
            # (a copy: func may add filters; catch_warnings marked every registry
            # stale, so each job starts with nothing warned yet)
            warnings.filters = list(_filters(sent))
            warnings.showwarning = lambda *a: heard.append(_hear(*a))
            value = fn(*args, **kwargs)
    except BaseException as e:
        hear = getattr(e, "hear", None)
        if heard and callable(hear):
            hear(_pack(heard))
        else:  # (under the worker's own filters now: printed on its stderr)
            for item in heard:
                _emit_one(item)
        raise
    return value, (_pack(heard) if heard else None)


def _hear(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, *_: Any
) -> tuple[Any, ...]:
    """One warning that passed the caller's filters in a worker, with the name of the
    module whose frame raised it (what filters match, as ``warnings.warn`` finds it),
    from the stack below the hook."""
    module = None
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_filename == filename and frame.f_lineno == lineno:
            module = frame.f_globals.get("__name__")
            break
        frame = frame.f_back
    del frame
    return (message, category, filename, lineno, module if isinstance(module, str) else None)


def _pack(heard: list[tuple[Any, ...]]) -> bytes:
    """The warnings, each pickled on its own (one the caller cannot load is lost
    alone, and said to be: see :func:`emit`); one that cannot be pickled travels as
    a UserWarning that says what it was."""
    import cloudpickle

    out = []
    for message, category, filename, lineno, module in heard:
        try:
            data = cloudpickle.dumps((message, category, filename, lineno, module))
        except Exception:
            text = f"{category.__module__}.{category.__qualname__}: {message}"
            data = cloudpickle.dumps((UserWarning(text), UserWarning, filename, lineno, module))
        out.append(data)
    return pickle.dumps(out)


def emit(heard: bytes | None) -> None:
    """In the caller: issue the warnings a job sent back, as ``warnings.warn`` would
    have issued them there (same module registry, so ``"default"`` shows each once
    across the caller and its workers). Never raises: a warning that the caller's
    filters now turn into an error (they changed since the job was sent) is shown
    instead, and one that cannot be loaded here (a category only the worker had) is
    a UserWarning that says so."""
    if not heard:
        return
    import cloudpickle

    try:
        items: list[bytes] = pickle.loads(heard)
    except Exception as e:
        _emit_one(_lost(e))
        return
    for data in items:
        try:
            item = cloudpickle.loads(data)
        except Exception as e:
            item = _lost(e)
        _emit_one(item)


def _lost(e: Exception) -> tuple[Any, ...]:
    text = f"numpool: a warning of a job in another process was lost: {e}"
    return (UserWarning(text), UserWarning, "", 0, None)


_registries: dict[str, dict[Any, Any]] = {}


def _emit_one(item: tuple[Any, ...]) -> None:
    message, category, filename, lineno, module = item
    if isinstance(message, Warning) and type(message) is not category:
        category = type(message)
    if issubclass(category, SharedMemoryWarning) and not shm.first_spill_warning():
        return  # (numpool's own, once a process: the caller's, or this one)
    try:
        if module is None:  # (as warn_explicit derives it: None would drop the warning)
            warnings.warn_explicit(message, category, filename, lineno)
        else:
            warnings.warn_explicit(message, category, filename, lineno, module, _registry(module))
    except Exception:
        with contextlib.suppress(Exception):
            warnings.showwarning(message, category, filename, lineno)


def _registry(module: str) -> dict[Any, Any]:
    """The registry ``warnings.warn`` uses for code of ``module`` in this process: the
    module's ``__warningregistry__``, or one of numpool's for a module it lacks."""
    mod = sys.modules.get(module)
    if isinstance(mod, types.ModuleType):
        registry = vars(mod).setdefault("__warningregistry__", {})
        if isinstance(registry, dict):
            return registry
    return _registries.setdefault(module, {})
