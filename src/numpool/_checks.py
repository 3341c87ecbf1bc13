"""Argument checks shared by Pool, the runner and the module-level functions.

Each raises a plain TypeError or ValueError naming the argument, what was
expected and what was given.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, get_args, overload

import numpy as np

from ._cpus import default_workers

if TYPE_CHECKING:
    from ._inputs import Inputs

__all__ = [
    "AUTO",
    "BACKEND_NAMES",
    "BackendName",
    "as_input_array",
    "check_backend",
    "check_block_info",
    "check_boundary",
    "check_chunks",
    "check_combine",
    "check_count",
    "check_cval",
    "check_flag",
    "check_func",
    "check_iterables",
    "check_out",
    "check_retries",
    "check_workers",
]

#: what ``backend=`` takes (type checkers catch ``backend="thread"``): "auto" and the
#: name of every backend module in numpool/backends (a test holds the two the same)
BackendName = Literal["auto", "serial", "threads", "processes", "pickle", "dask"]

AUTO = "auto"

#: the backends by name, as ``numpool.backends.names()`` lists them; written here so
#: that checking an argument imports no backend
BACKEND_NAMES = tuple(sorted(set(get_args(BackendName)) - {AUTO}))


def check_backend(backend: Any, registered: Callable[[], Iterable[str]] | None = None) -> str:
    """``backend`` if it names a backend: "auto", one of numpool's (BACKEND_NAMES, known
    without importing any), or one ``registered()`` lists (a backend class defined
    elsewhere: ``numpool.backends.names``, asked only for another name)."""
    if isinstance(backend, str) and (backend in BACKEND_NAMES or backend == AUTO):
        return backend
    known = sorted(set(BACKEND_NAMES) | set(registered() if registered else ()))
    if isinstance(backend, str) and backend in known:
        return backend
    choices = ", ".join(map(repr, [AUTO, *known]))
    raise ValueError(f"backend must be one of {choices}; got {backend!r}")


@overload
def check_count(name: str, value: Any, *, allow_none: Literal[False]) -> int: ...
@overload
def check_count(name: str, value: Any, *, allow_none: bool = True) -> int | None: ...
def check_count(name: str, value: Any, *, allow_none: bool = True) -> int | None:
    """A positive int (or None): what workers=, chunks=, chunksize=, blas_threads= take."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        wanted = "a positive int or None" if allow_none else "a positive int"
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


#: ``chunks=`` is a count of blocks, and each block costs a hand-off to a worker
#: (tens of microseconds on threads, about a hundred on processes), so a count is
#: refused once its blocks get too small for any func to pay for theirs. Any size
#: may be cut in up to this many blocks per usable core (the default makes at most
#: 4 per worker; more evens out rows of uneven cost) ...
CHUNKS_PER_CORE = 16
#: ... or into blocks of at least a page of the split arrays: smaller blocks make
#: workers write the same pages of the output, and vectorised NumPy goes through a
#: page in about a microsecond. The issue's chunks=100,000 over 10M float64 (blocks
#: of 800 B) ran 280x slower than serial. A GIL-holding func may cost milliseconds
#: per row, so nothing stricter can be said without timing it ...
MIN_BLOCK_BYTES = 4 << 10
#: ... and an input under this many bytes into up to SMALL_INPUT_CHUNKS blocks (one
#: row each if it has fewer rows: a fraction of a second however it is cut, and how
#: a test reaches every edge of the engine)
SMALL_INPUT_BYTES = 256 << 10
SMALL_INPUT_CHUNKS = 1024


def most_chunks(rows: int, row_bytes: int, cores: int) -> int:
    """The most blocks ``chunks=`` may ask for over ``rows`` rows of ``row_bytes``
    bytes on ``cores`` usable cores: a rule on counts and sizes, never on timing."""
    total = rows * row_bytes
    most = max(CHUNKS_PER_CORE * cores, total // MIN_BLOCK_BYTES)
    if total < SMALL_INPUT_BYTES:
        most = max(most, SMALL_INPUT_CHUNKS)
    return most


def check_chunks(value: Any, inputs: Inputs, what: str, cores: int | None = None) -> int | None:
    """``chunks=`` of apply or reduce (``what``): a count of blocks (more than the rows
    means one row each), refused when its blocks would be smaller than
    :func:`most_chunks` allows (dask's ``chunks=`` is a block's size: numpool's is not)."""
    n = check_count("chunks", value)
    if n is None:
        return None
    rows = inputs.n
    blocks = min(n, rows)
    most = most_chunks(rows, inputs.row_bytes, cores or default_workers())
    if blocks <= most:
        return n
    per = rows / blocks
    size = f"{per:,.0f} row{'s' * (round(per) != 1)} (~{_bytes(per * inputs.row_bytes)})"
    meant = f"chunks={-(-rows // n)}" if n <= rows else "chunks=1, or omit it"
    raise ValueError(
        f"{what}: chunks is a count of blocks, not a block size: you asked for {blocks:,} "
        f"blocks of ~{size} each out of {rows:,} rows, and each block costs a hand-off "
        f"to a worker that blocks this small cannot pay for. Use chunks<={most:,} or omit "
        "it (the default sizes blocks from what a row costs). If you meant blocks of "
        f"{n:,} rows each (what dask's chunks= means), pass {meant}"
    )


def _bytes(n: float) -> str:
    """``n`` bytes, for a person."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:,.0f} {unit}"
        n /= 1024
    return f"{n:,.0f} GiB"


#: more workers than this many per usable core is a mistake, not a plan
MAX_WORKERS_PER_CORE = 32


def check_workers(value: Any) -> int | None:
    n = check_count("workers", value)
    cores = default_workers()
    if n is not None and n > max(64, MAX_WORKERS_PER_CORE * cores):
        raise ValueError(
            f"workers={n} is absurd for {cores} usable core{'s' * (cores != 1)}: each worker "
            "is a thread or a process with its own memory. Leave workers=None (one per core)."
        )
    return n


def check_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"retries must be an int >= 0, got {value!r}")
    return int(value)


def check_func(where: str, func: Any) -> None:
    if not callable(func):
        raise TypeError(f"{where}: func must be callable, got {type(func).__name__} {func!r}")


def check_combine(combine: Any) -> None:
    """reduce's ``combine``: a callable, or a tuple of callables (one per element of a
    tuple partial)."""
    fns = combine if isinstance(combine, tuple) and combine else (combine,)
    for f in fns:
        if not callable(f):
            raise TypeError(
                "reduce: combine must be callable (like np.add or np.maximum), or a tuple "
                f"of callables for tuple partials; got {type(f).__name__} {f!r}"
            )


def as_input_array(x: Any) -> np.ndarray:
    """``x`` as an ndarray with at least one axis, or a TypeError/ValueError saying why not."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        if x is None or isinstance(x, (str, bytes, dict, set)) or callable(x):
            raise TypeError(
                f"apply: x must be array-like (an ndarray, list, ...), got {type(x).__name__}"
            )
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"apply: x could not be converted to an array: {e}") from e
    check_plain(arr, "x")
    if arr.ndim == 0:
        raise ValueError(
            f"apply: x must have at least one dimension (apply splits axis 0); "
            f"got a 0-d array {arr!r}. Call func(x) directly."
        )
    return arr


def check_plain(arr: np.ndarray, what: str) -> None:
    """Refuse an ndarray subclass whose meaning would be lost: blocks are computed
    into one plain output array, so a MaskedArray's mask (or a matrix's, a
    quantity's semantics) would be dropped silently. numpool's own SharedArray
    and np.memmap are plain memory and pass."""
    kind = type(arr)
    if kind is np.ndarray or kind is np.memmap or kind.__module__.startswith("numpool"):
        return
    if isinstance(arr, np.ma.MaskedArray):
        raise TypeError(
            f"apply: {what} is a numpy.ma.MaskedArray; its blocks would come back as "
            "one plain array and the mask would be lost. Apply func to the data "
            f"(np.ma.getdata({what}), or {what}.filled(value)) and rebuild the masked "
            f"array with np.ma.getmaskarray({what}), or call func({what}) directly"
        )
    raise TypeError(
        f"apply: {what} is a {kind.__module__}.{kind.__qualname__}, a subclass of "
        "ndarray that numpool would turn into a plain ndarray. Pass np.asarray("
        f"{what}) if the subclass does not matter, or call func({what}) directly"
    )


def check_out(inputs: Inputs, out: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse an ``out=`` that does not fit the output func gives for ``inputs``."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"apply: out must be a NumPy array, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(
            f"apply: out has shape {out.shape}, expected {shape} "
            "(rows of x by the trailing shape of what func returns)"
        )
    if out.dtype != dtype:
        raise TypeError(
            f"apply: out has dtype {out.dtype}, expected {dtype} (the dtype func returns)"
        )
    if not out.flags.writeable:
        raise ValueError("apply: out is read-only")
    for i, x in enumerate(inputs.args):  # (every apply with out= runs this: kept lean)
        if not isinstance(x, np.ndarray) or not np.may_share_memory(out, x):
            continue
        ax = inputs.axes[i]
        same = (
            out.ctypes.data == x.ctypes.data and out.strides == x.strides and out.shape == x.shape
        )
        if same and ax is not None and inputs.overlap:
            raise ValueError(
                f"apply: out is an input array with overlap={inputs.overlap}: a block would "
                "read halo rows that the block next to it already overwrote. Pass a "
                "separate out"
            )
        if not same or ax is None:
            raise ValueError(
                "apply: out overlaps an input array without being that array itself; "
                "blocks could read rows another block already overwrote. Pass a "
                "separate out, or out=x itself for an in-place update"
            )


def check_iterables(iterables: tuple[Iterable[Any], ...]) -> list[list[Any]]:
    """Materialise map's iterables, refusing none, non-iterables and unequal lengths."""
    if not iterables:
        raise TypeError("map: needs at least one iterable of arguments after func")
    columns = []
    for i, it in enumerate(iterables):
        try:
            columns.append(list(it))
        except TypeError:
            raise TypeError(
                f"map: argument {i + 1} after func must be iterable, got {type(it).__name__}"
            ) from None
    lengths = [len(c) for c in columns]
    if len(set(lengths)) > 1:
        raise ValueError(
            f"map: the iterables have unequal lengths {lengths}; numpool.map "
            "zips them like Pool.starmap(func, zip(...)) and refuses to drop "
            "items silently"
        )
    return columns


#: boundary= modes (scipy.ndimage's names), as numpool._inputs.MODES maps them
BOUNDARY_MODES = ("reflect", "mirror", "nearest", "wrap", "constant")


def check_flag(name: str, value: Any, where: str) -> bool:
    """A True/False option (``block_info=``, ``check_overlap=``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{where}: {name} must be True or False, got {type(value).__name__} {value!r}"
        )
    return bool(value)


#: apply's rows=: "same" (func gives as many rows as it is given: the default) or
#: "any" (each block's result may have any number of rows: joined in block order)
ROWS = ("same", "any")


def check_rows(rows: Any, where: str) -> str:
    """``rows=`` of apply: "same" or "any"."""
    if not isinstance(rows, str) or rows not in ROWS:
        raise ValueError(
            f"{where}: rows must be 'same' (func returns as many rows as it is given, the "
            f"default) or 'any' (each block's rows joined in block order), got {rows!r}"
        )
    return rows


def check_any_rows(
    out: Any, overlap: Any, boundary: Any, block_info: Any, check_overlap: Any, where: str
) -> None:
    """Refuse what rows='any' cannot mean: its blocks' rows are not the input's."""
    given = [
        name
        for name, left_out in (
            ("out=", out is None),
            ("overlap=", type(overlap) is int and overlap == 0),
            ("boundary=", boundary is None),
            ("block_info=", block_info is False),
            ("check_overlap=", check_overlap is False),
        )
        if not left_out
    ]
    if given:
        raise ValueError(
            f"{where}: rows='any' joins each block's result, whatever its rows, so "
            f"{', '.join(given)} cannot apply (they place or read rows by their position "
            "in x): drop them, or use rows='same'"
        )


def check_boundary(boundary: Any, cval: Any, overlap: int, where: str) -> tuple[str | None, Any]:
    """``boundary=`` and ``cval=`` of apply: (the mode or None, the fill value)."""
    if boundary is None:
        if cval is not None:
            raise ValueError(
                f"{where}: cval={cval!r} is the fill value of boundary='constant', and no "
                "boundary was given: pass boundary='constant' too (or drop cval)"
            )
        return None, None
    if not isinstance(boundary, str) or boundary not in BOUNDARY_MODES:
        modes = ", ".join(map(repr, BOUNDARY_MODES))
        raise ValueError(
            f"{where}: boundary must be None or one of {modes} (scipy.ndimage's mode "
            f"names), got {boundary!r}"
        )
    if not overlap:
        raise ValueError(
            f"{where}: boundary={boundary!r} makes up the halo rows beyond the array's "
            "ends, and overlap=0 asks for none: pass overlap=k, the rows func reads on "
            "each side of a row (a k x k filter reads k // 2), or drop boundary"
        )
    if boundary != "constant":
        if cval is not None:
            raise ValueError(
                f"{where}: cval={cval!r} is only used with boundary='constant', not "
                f"{boundary!r}: drop cval or pass boundary='constant'"
            )
        return boundary, None
    if cval is None:
        return boundary, 0.0
    if isinstance(cval, (bool, np.bool_)) or not isinstance(
        cval, (int, float, complex, np.number)
    ):
        raise TypeError(
            f"{where}: cval must be a number (the value of the rows beyond the array's "
            f"ends), got {type(cval).__name__} {cval!r}"
        )
    return boundary, cval


def check_cval(cval: Any, dtype: np.dtype, where: str) -> None:
    """Refuse a ``cval`` that an array of ``dtype`` cannot hold exactly: it would be
    stored rounded, and the edge rows would be silently other than asked."""
    try:
        given = np.array(cval)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (a complex cval cast to a real dtype)
            back = given.astype(dtype).astype(given.dtype)  # (compared in cval's own type)
        same = bool(back == given) or bool(back != back and given != given)  # (NaN)
    except (TypeError, ValueError, OverflowError):
        same = False
    if not same:
        raise ValueError(
            f"{where}: cval={cval!r} cannot be held exactly by an array of dtype {dtype} "
            "(the rows beyond the array's ends are made in the array's own dtype): pass "
            f"a value the dtype holds (np.{dtype}(...) rounds it first), or convert the array"
        )


def check_block_info(func: Any, where: str) -> None:
    """Refuse ``block_info=True`` for a func that takes no ``block_info`` keyword, before
    any block runs."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        params = None
    if params is not None and any(
        p.kind is p.VAR_KEYWORD
        or (p.name == "block_info" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in params
    ):
        return
    name = getattr(func, "__name__", type(func).__name__)
    raise TypeError(
        f"{where}: block_info=True calls func(..., block_info=info), and {name} takes no "
        "block_info keyword: define it as def f(b, *, block_info): ... (a numpool.stencil."
        "BlockInfo: info.rows, info.halo, info.n), or wrap it in a lambda"
    )
