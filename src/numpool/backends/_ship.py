"""What crosses to a worker process by value, and exceptions that come back whole.

Worker processes never import the user's ``__main__`` (see ``_context.py``), so
what lives there, and what no worker could import by name, travels by value,
pickled with cloudpickle: functions and classes defined in ``__main__`` (a
script, a notebook, ``python -c``), lambdas, closures and functions defined
inside others, and instances of classes from ``__main__``. Everything else
travels as the stdlib pickles it: by reference, and fast (dask's rule).

::

    caller: ship(func) ──▶ Shipped(cloudpickle bytes, once per call) ──▶ worker: loads
    worker: a result of a __main__ class ──▶ Shipped ──▶ caller: the object
    worker: an exception ──▶ _InTransit(whole, or class + args + attributes) ──▶ caller: it

An exception raised by ``func`` in a worker must reach the caller as itself,
as an instance of the caller's own class (so that ``except`` catches it), even
one that pickle cannot rebuild (an ``__init__`` that takes other arguments, an
attribute that cannot be pickled), and without breaking the pool when the
caller cannot unpickle it: :func:`portable` sends it in transit (see
"exceptions" below); only a class the caller cannot have arrives as a
:class:`~numpool.RemoteError` look-alike that says so.
"""

from __future__ import annotations

import builtins
import functools
import io
import itertools
import pickle
import sys
import traceback
import types
import warnings
import weakref
from typing import Any

import numpy as np

from .._errors import RemoteError
from . import _warns

__all__ = ["Shipped", "by_value", "needs_value", "portable", "ship", "ship_args"]

#: a function shipped by value and bigger than this is worth a warning: every task
#: carries it (the globals it uses travel with it)
LARGE = 1 << 20


#: what cannot name anything of ``__main__``: goes by reference without a look inside
_PLAIN = (np.ndarray, np.generic, np.ufunc, str, bytes, int, float, complex, tuple, list, dict)
_MAIN = (None, "__main__", "__mp_main__")


def needs_value(obj: Any) -> bool:
    """Whether a worker process could not import ``obj`` by name: it is, or it holds
    (an ``np.vectorize(lambda ...)``, SciPy's wrapper of an objective from a script),
    something no worker could import (see :func:`_by_name`)."""
    if isinstance(obj, _PLAIN) or obj is None:
        return False
    if isinstance(obj, functools.partial):
        return (
            needs_value(obj.func)
            or any(needs_value(a) for a in obj.args)
            or any(needs_value(v) for v in obj.keywords.values())
        )
    if isinstance(obj, types.MethodType):
        return needs_value(obj.__func__) or needs_value(obj.__self__)
    if isinstance(obj, (types.FunctionType, type)):
        return not _by_name(obj)
    module = type(obj).__module__
    if module in _MAIN:
        return True
    if module == "numpool" or module.startswith("numpool."):  # (Shipped, ShmRef...)
        return False
    return _holds_unnamed(obj)


def _by_name(obj: Any) -> bool:
    """Whether a worker can import this function or class by its name: not one of
    ``__main__`` (which workers never import), a lambda, one defined in another, or
    one that its name does not find here (a decorator's wrapper under the wrapped
    function's name: pickle refuses it, cloudpickle sends it by value)."""
    qualname = getattr(obj, "__qualname__", "") or ""
    module = getattr(obj, "__module__", None)
    if module in _MAIN or "<" in qualname:
        return False
    found: Any = sys.modules.get(module)
    # not imported: pickle imports it, as a worker does; builtins: pickle knows NoneType
    if found is None or module == "builtins":
        return True
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj


class _Unnamed(Exception):
    """Raised by :class:`_Probe` at the first thing a worker could not import."""


class _Sink:
    """A file that keeps nothing: the probe wants the walk, not the bytes."""

    def write(self, data: Any) -> int:
        return len(data)


def _skip() -> None:
    """Where the probe puts an array of numbers (its bytes name nothing)."""


class _Probe(pickle.Pickler):
    """Walks ``obj`` as pickle would, stopping at the first function or class that
    pickle would send by a name no worker can import. Pickling by reference does not
    tell: in the caller ``__main__.f`` pickles, and only the worker fails, with an
    AttributeError on loading."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
            return _skip, ()
        if isinstance(obj, (types.FunctionType, type)):
            if not _by_name(obj):
                raise _Unnamed
        elif type(obj).__module__ in _MAIN:
            raise _Unnamed
        return NotImplemented


def _holds_unnamed(obj: Any) -> bool:
    """Whether ``obj``, an instance of an importable class, holds something no worker
    could import by name, or that pickle cannot send but cloudpickle can. One that
    neither can (a lock) goes by reference as before: pickle's own error tells then."""
    try:
        _Probe(_Sink(), pickle.HIGHEST_PROTOCOL).dump(obj)
    except _Unnamed:
        return True
    except Exception:  # pickle cannot: by value where cloudpickle can
        import cloudpickle

        try:
            cloudpickle.dumps(obj)
        except Exception:
            return False
        return True
    return False


class Shipped:
    """A value pickled with cloudpickle; it unpickles as the value itself."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> Any:
        return (_load, (self.data,))


@functools.lru_cache(maxsize=64)
def _load(data: bytes) -> Any:
    """The value of a Shipped, unpickled once per worker (a function comes with every
    block of a call)."""
    import cloudpickle

    return cloudpickle.loads(data)


#: a function's pickle, and the call it was made for (see :func:`new_call`)
_by_function: weakref.WeakKeyDictionary[Any, tuple[int, Shipped]] = weakref.WeakKeyDictionary()
_warned: set[int] = set()
_calls = itertools.count(1)
#: the call now sending work (one counter for all threads: a call begun in another
#: thread only makes this one's next block pickle func again)
_call = 0


def new_call() -> None:
    """A call starts sending work to worker processes: a function shipped by value is
    pickled anew for it, once, with the globals, defaults and captured values it
    holds now. Kept from an earlier call, it ran with that call's: a script global,
    an array captured and changed in place, a helper redefined since (threads and
    serial see them; a worker sees what was pickled)."""
    global _call
    _call = next(_calls)


def ship(obj: Any) -> Any:
    """``obj`` as it should travel to a worker: itself, or a :class:`Shipped`."""
    if not needs_value(obj):
        return obj
    try:
        cached = _by_function.get(obj)
    except TypeError:  # not weakly referenceable: an instance
        cached = None
    if cached is not None and cached[0] == _call:
        return cached[1]

    with io.BytesIO() as file:
        kind = by_value() if isinstance(obj, (types.FunctionType, type)) else _instance_pickler()
        kind(file).dump(obj)
        shipped = Shipped(file.getvalue())
    if len(shipped.data) > LARGE and id(obj) not in _warned:
        _warned.add(id(obj))
        name = getattr(obj, "__qualname__", type(obj).__name__)
        warnings.warn(
            f"numpool: {name} travels to worker processes by value, with the globals it "
            f"uses: {len(shipped.data) / 2**20:.1f} MiB with every task. Define it in an "
            "importable module, or pass the data as an argument (numpool.share() it).",
            stacklevel=4,
        )
    if isinstance(obj, (types.FunctionType, type)):  # (an instance may change: anew)
        _by_function[obj] = (_call, shipped)
    return shipped


@functools.cache
def by_value() -> type:
    """cloudpickle's pickler, keeping the file name of the code it sends by value.
    cloudpickle (3.x) names it ``<dynamic-code>``, so a traceback from a worker showed
    ``File "<dynamic-code>", line 3`` without its line of source, and a warning came
    back from a file that is nowhere; the caller's run shows the script's own."""
    import cloudpickle

    class ByValue(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is types.CodeType:
                rebuild, args = self.dispatch_table[types.CodeType](obj)
                return _filed, (rebuild, args, obj.co_filename)
            return super().reducer_override(obj)

    return ByValue


def _filed(rebuild: Any, args: tuple[Any, ...], filename: str) -> types.CodeType:
    """A code object sent by :func:`by_value`, with its own file name."""
    code: types.CodeType = rebuild(*args)
    return code.replace(co_filename=filename)


@functools.cache
def _instance_pickler() -> type:
    """cloudpickle, taking the functions it sends by value from ship's cache: an
    instance is pickled anew for every task (SciPy's wrapper of an objective), the
    function it holds need not be (measured: 0.7 ms a task, for DE's wrapper)."""

    class InstancePickler(by_value()):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, types.FunctionType) and not _by_name(obj):
                return _load, (ship(obj).data,)
            return super().reducer_override(obj)

    return InstancePickler


def ship_args(args: tuple[Any, ...], depth: int = 3) -> tuple[Any, ...]:
    """``args`` with whatever needs it shipped by value, looking into tuples and lists
    ``depth`` levels deep (a map batch is a list of (index, args) pairs)."""
    if not any(_deep_needs(a, depth) for a in args):
        return args
    return tuple(_deep_ship(a, depth) for a in args)


def _deep_needs(obj: Any, depth: int) -> bool:
    kind = type(obj)  # plain containers only (a NamedTuple such as ShmRef is a value)
    if kind is tuple or kind is list:
        return depth > 0 and any(_deep_needs(o, depth - 1) for o in obj)
    if kind is dict:
        return depth > 0 and any(_deep_needs(o, depth - 1) for o in obj.values())
    return needs_value(obj)


def _deep_ship(obj: Any, depth: int) -> Any:
    kind = type(obj)
    if (kind is tuple or kind is list) and depth > 0:
        return kind(_deep_ship(o, depth - 1) for o in obj)
    if kind is dict and depth > 0:
        return {k: _deep_ship(v, depth - 1) for k, v in obj.items()}
    return ship(obj)


# --- exceptions ---------------------------------------------------------------
#
# An exception pickles as ``cls(*args)`` plus its ``__dict__``: a class whose
# ``__init__`` takes other arguments than its ``args`` (two required ones, a
# keyword-only one) fails to unpickle, and a class whose attributes hold a lock
# fails to pickle. Such an exception is rebuilt the way pickle rebuilds any other
# object: ``cls.__new__`` (no ``__init__``), then its ``args`` and attributes set
# (loky and CPython's ``_ExceptionWithTraceback`` keep the class by reference the
# same way). The class travels by reference when the caller can import it, and by
# value with cloudpickle otherwise (``__main__``): cloudpickle maps a class it
# shipped to a worker back to the caller's own class object, so ``except`` works.
#
# Unpickling happens in the executor's result thread, where an exception breaks
# the whole pool: everything rebuilt in the caller falls back, never raises.


def portable(exc: BaseException) -> BaseException:
    """``exc`` as it leaves a worker process: an exception in transit (see above) that
    unpickles in the caller as ``exc`` itself (pickled whole, or rebuilt from its
    class, ``args`` and attributes when that fails), or as a look-alike
    :class:`~numpool.RemoteError` only when its class cannot be had there. Raised,
    it shows as ``exc``, with ``exc``'s traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    fallback = _fallback(exc, tb)
    import cloudpickle

    how, why, data = "whole", "", b""
    try:
        data = (cloudpickle.dumps if needs_value(exc) else pickle.dumps)(exc)
        pickle.loads(data)
    except Exception:
        how = "parts"
        try:
            data = cloudpickle.dumps(_parts(exc))
            _from_parts(*pickle.loads(data))  # (it must also work where it lands)
        except Exception as e:
            how, why, data = "lookalike", _why(e), b""
    cls = type(exc)
    key = (cls.__module__, cls.__qualname__)
    transit = _transit_classes.get(key)
    if transit is None:
        name = cls.__qualname__.rpartition(".")[2]
        attrs = {"__module__": key[0], "__qualname__": key[1]}
        transit = _transit_classes[key] = type(name, (_InTransit,), attrs)
    return transit(data, how, fallback, why).with_traceback(exc.__traceback__)


def _fallback(exc: BaseException, tb: str) -> tuple[str, str, str, str, str]:
    """(module, qualname, nearest built-in base, message, traceback) of ``exc``."""
    cls = type(exc)
    base = next(
        (c.__name__ for c in cls.__mro__ if getattr(builtins, c.__name__, None) is c),
        "Exception",
    )
    try:
        message = str(exc)
    except Exception:
        message = f"<str() of the exception failed: {cls.__name__}>"
    return cls.__module__, cls.__qualname__, base, message, tb


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _parts(exc: BaseException) -> tuple[type, tuple[Any, ...], dict[str, Any], list[str]]:
    """(class, args, attributes, names of attributes left behind): what rebuilds
    ``exc``. An attribute that cannot be pickled stays behind (a note names it);
    args that cannot are replaced by the message."""
    import cloudpickle

    def travels(v: Any) -> bool:
        try:
            cloudpickle.dumps(v)
            return True
        except Exception:
            return False

    args = exc.args if travels(exc.args) else (str(exc),)
    state: dict[str, Any] = {}
    left: list[str] = []
    for k, v in [*_builtin_fields(exc), *getattr(exc, "__dict__", {}).items()]:
        if travels(v):
            state[k] = v
        else:
            left.append(k)
    return type(exc), args, state, left


def _builtin_fields(exc: BaseException) -> list[tuple[str, Any]]:
    """The C-level fields of ``exc``'s built-in bases (OSError's errno and filename,
    ImportError's name...): an ``__init__`` that is not called cannot set them."""
    fields = []
    for c in type(exc).__mro__:
        if c.__module__ != "builtins":
            continue
        for k, d in vars(c).items():
            if k.startswith("__") or k == "args":
                continue
            if not isinstance(d, (types.MemberDescriptorType, types.GetSetDescriptorType)):
                continue
            v = getattr(exc, k, None)
            if v is not None:  # (None is the default; OSError shows a filename2 set)
                fields.append((k, v))
    return fields


def _from_parts(
    cls: type, args: tuple[Any, ...], state: dict[str, Any], left: list[str]
) -> BaseException:
    """An exception of class ``cls`` with these args and attributes, ``__init__`` not
    called (it may take other arguments)."""
    exc: BaseException = cls.__new__(cls, *args)
    exc.args = args  # (a __new__ of the class's own may have kept other ones)
    left = list(left)
    for k, v in state.items():
        try:
            setattr(exc, k, v)
        except (AttributeError, TypeError, ValueError):
            left.append(k)
    if left:
        _note(
            exc,
            f"[numpool: attribute{'s' * (len(left) > 1)} {', '.join(left)} of this "
            "exception could not be pickled and stayed in the worker process]",
        )
    return exc


def _note(exc: BaseException, text: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(text)
    else:  # Python 3.10 (see _errors.annotate)
        exc.__notes__ = [*getattr(exc, "__notes__", []), text]  # type: ignore[attr-defined]


class _InTransit(Exception):
    """An exception of a worker process on its way to the caller, where it unpickles
    as the exception itself. Each original class gets a subclass of its name, so
    that the traceback the executor formats in the worker names it, not this."""

    def __init__(
        self, data: bytes, how: str, fallback: tuple[str, str, str, str, str], why: str
    ) -> None:
        super().__init__(data, how, fallback, why)

    def __str__(self) -> str:
        return str(self.args[2][3])

    def hear(self, heard: bytes) -> None:
        """Take the warnings the job raised before this (see ``_warns.run``): they
        are issued in the caller before the exception arrives."""
        self.args = (*self.args[:4], heard)

    def __reduce__(self) -> Any:
        return (_arrive, self.args)


_transit_classes: dict[tuple[str, str], type[_InTransit]] = {}


def _arrive(
    data: bytes,
    how: str,
    fallback: tuple[str, str, str, str, str],
    why: str,
    heard: bytes | None = None,
) -> BaseException:
    """In the caller: the exception itself, with the worker's traceback; a look-alike
    that says why when its class cannot be had here (never an error: see above). The
    warnings the job raised before it (``heard``) are issued first."""
    _warns.emit(heard)
    try:
        if how == "lookalike":
            return remote_error(*fallback, why)
        import cloudpickle

        loaded = cloudpickle.loads(data)
        exc: BaseException = _from_parts(*loaded) if how == "parts" else loaded
    except Exception as e:
        return remote_error(*fallback, _why(e))
    exc.__cause__ = _RemoteTraceback(fallback[4])
    return exc


class _RemoteTraceback(Exception):
    """The traceback of an exception in a worker process, as text (a ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


_remote_classes: dict[tuple[str, str, str], type] = {}


def remote_error(
    module: str, qualname: str, base: str, message: str, tb: str, why: str = ""
) -> BaseException:
    """Rebuild, in the caller, an exception whose class could not be had here: a
    look-alike (see RemoteError) whose message says so, and why."""
    key = (module, qualname, base)
    cls = _remote_classes.get(key)
    if cls is None:
        builtin = getattr(builtins, base, Exception)
        if not (isinstance(builtin, type) and issubclass(builtin, Exception)):
            builtin = Exception
        name = qualname.rpartition(".")[2]
        original = f"{module}.{qualname}"
        attrs = {"__module__": module, "__qualname__": qualname, "original": original}
        try:
            cls = type(name, (RemoteError, builtin), attrs)
        except TypeError:  # an incompatible layout
            cls = type(name, (RemoteError,), attrs)
        _remote_classes[key] = cls
    how = f" ({why})" if why else ""
    exc: BaseException = cls(
        f"{message} [numpool: a look-alike of {module}.{qualname}, subclassing "
        f"RemoteError and {base}: the exception could not be rebuilt as itself in the "
        f"caller{how}; catch {base} or numpool.RemoteError]"
    )
    exc.__cause__ = _RemoteTraceback(tb)
    return exc


# --- arrays in a byte order other than the machine's ----------------------------------
#
# NumPy 2.4 pickles a big-endian array under protocol 4 (what multiprocessing's
# pipes use) with its dtype's byte order in the state, but unpickles it as a
# native array: `>f8` comes back `float64` (the values are right, the dtype is
# not). Results then differ from func(x) in dtype, and a func that keeps its
# input's dtype no longer matches the output's. Such arrays travel as raw bytes
# and their dtype instead; native arrays keep NumPy's own reduction.


def _rebuild(raw: bytearray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _reduce_array(a: np.ndarray) -> Any:
    if a.dtype.isnative or a.dtype.hasobject:
        return a.__reduce__()
    return _rebuild, (bytearray(a.tobytes(order="C")), a.dtype, a.shape)


@functools.lru_cache(maxsize=1)
def keep_byte_order() -> None:
    """Register :func:`_reduce_array` with multiprocessing's pickler, once per process:
    called where multiprocessing pickles arrays (``backends.processes`` as it makes an
    executor, :func:`_worker.init_worker` in a worker, the packer of jobs), not at
    ``import numpool``, which then need not import multiprocessing (~5 ms).

    Only where multiprocessing pickles under protocol 4 (Python 3.10-3.13): there
    NumPy's own reduction of a native array is ``__reduce__()`` anyway, so nothing
    else changes; from 3.14 (protocol 5) NumPy's out-of-band path stays in use."""
    if pickle.DEFAULT_PROTOCOL >= 5:
        return
    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.register(np.ndarray, _reduce_array)
