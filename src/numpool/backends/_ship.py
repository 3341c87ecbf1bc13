"""What crosses to a worker process by value, and exceptions that come back whole.

Worker processes never import the user's ``__main__`` (see ``_context.py``), so
what lives there, and what no worker could import by name, travels by value,
pickled with cloudpickle: functions and classes defined in ``__main__`` (a
script, a notebook, ``python -c``), lambdas, closures and functions defined
inside others, and instances of classes from ``__main__``. Everything else
travels as the stdlib pickles it: by reference, and fast (dask's rule).

::

    caller: ship(func) ──▶ Shipped(cloudpickle bytes, once per function) ──▶ worker: loads
    worker: a result or an exception of a __main__ class ──▶ Shipped ──▶ caller: the object

An exception raised by ``func`` in a worker must reach the caller as itself. One
that cannot be pickled (an unpicklable attribute, an ``__init__`` that its
pickle cannot call again) would otherwise come back as a PicklingError, or break
the whole pool: :func:`portable` sends it as a :class:`~numpool.RemoteError` of
the same name, message and base class, with the worker's traceback.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import pickle
import traceback
import types
import warnings
import weakref
from typing import Any

import numpy as np

from .._errors import RemoteError

__all__ = ["Shipped", "needs_value", "portable", "ship", "ship_args"]

#: a function shipped by value and bigger than this is worth a warning: every task
#: carries it (the globals it uses travel with it)
LARGE = 1 << 20


def needs_value(obj: Any) -> bool:
    """Whether a worker process could not import ``obj`` by name."""
    if isinstance(obj, (np.ndarray, str, bytes, int, float, tuple, list, dict)):
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
        qualname = getattr(obj, "__qualname__", "") or ""
        module = getattr(obj, "__module__", None)
        return module in (None, "__main__", "__mp_main__") or "<" in qualname
    return type(obj).__module__ in ("__main__", "__mp_main__")


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


_by_function: weakref.WeakKeyDictionary[Any, Shipped] = weakref.WeakKeyDictionary()
_warned: set[int] = set()


def ship(obj: Any) -> Any:
    """``obj`` as it should travel to a worker: itself, or a :class:`Shipped`."""
    if not needs_value(obj):
        return obj
    try:
        cached = _by_function.get(obj)
    except TypeError:  # not weakly referenceable: an instance
        cached = None
    if cached is not None:
        return cached
    import cloudpickle

    shipped = Shipped(cloudpickle.dumps(obj))
    if len(shipped.data) > LARGE and id(obj) not in _warned:
        _warned.add(id(obj))
        name = getattr(obj, "__qualname__", type(obj).__name__)
        warnings.warn(
            f"numpool: {name} travels to worker processes by value, with the globals it "
            f"uses: {len(shipped.data) / 2**20:.1f} MiB with every task. Define it in an "
            "importable module, or pass the data as an argument (numpool.share() it).",
            stacklevel=4,
        )
    with contextlib.suppress(TypeError):  # an instance: shipped anew (it may have changed)
        _by_function[obj] = shipped
    return shipped


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


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip; else one that does: the same object
    by value (its class is from ``__main__``), or a :class:`~numpool.RemoteError` of
    its name, message and nearest built-in base, with the worker's traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        pass
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if needs_value(exc):
        try:
            import cloudpickle

            data = cloudpickle.dumps(exc)
            cloudpickle.loads(data)
            return _ShippedError(data, tb)
        except Exception:
            pass
    cls = type(exc)
    base = next(
        (c.__name__ for c in cls.__mro__ if getattr(builtins, c.__name__, None) is c),
        "Exception",
    )
    try:
        message = str(exc)
    except Exception:
        message = f"<str() of the exception failed: {type(exc).__name__}>"
    return _RemoteErrorData(cls.__module__, cls.__qualname__, base, message, tb)


class _ShippedError(Exception):
    """An exception of a class from ``__main__``, travelling by value."""

    def __init__(self, data: bytes, tb: str) -> None:
        super().__init__(data, tb)
        self.data = data
        self.tb = tb

    def __reduce__(self) -> Any:
        return (_load_error, (self.data, self.tb))


def _load_error(data: bytes, tb: str) -> BaseException:
    import cloudpickle

    exc: BaseException = cloudpickle.loads(data)
    exc.__cause__ = _RemoteTraceback(tb)
    return exc


class _RemoteErrorData(Exception):
    """What travels for an exception that cannot: rebuilt as a RemoteError."""

    def __init__(self, module: str, qualname: str, base: str, message: str, tb: str) -> None:
        super().__init__(module, qualname, base, message, tb)

    def __reduce__(self) -> Any:
        return (remote_error, self.args)


class _RemoteTraceback(Exception):
    """The traceback of an exception in a worker process, as text (a ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


_remote_classes: dict[tuple[str, str, str], type] = {}


def remote_error(module: str, qualname: str, base: str, message: str, tb: str) -> BaseException:
    """Rebuild, in the caller, an exception that could not travel (see RemoteError)."""
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
    exc: BaseException = cls(message)
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


def _keep_byte_order() -> None:
    """Only where multiprocessing pickles under protocol 4 (Python 3.10-3.13): there
    NumPy's own reduction of a native array is ``__reduce__()`` anyway, so nothing
    else changes; from 3.14 (protocol 5) NumPy's out-of-band path stays in use."""
    if pickle.DEFAULT_PROTOCOL >= 5:
        return
    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.register(np.ndarray, _reduce_array)


_keep_byte_order()
