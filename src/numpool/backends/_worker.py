"""What runs on a worker: one apply block, or one batch of map tasks.

The same two functions run in every backend: in the caller's thread
(serial), in a pool thread (threads) or in a worker process (processes,
pickle). Arguments are either arrays (in-process, or pickled) or
:class:`~numpool.shm.ShmRef` names that :func:`resolve` maps through the
process's cached :class:`~numpool.shm.Attachments`. In a worker process, a job
loads its own arguments (:func:`unpack`), after the caller's state and func
(:class:`Following`): one that cannot load there fails the task with its own
error, where the executor, loading it, would end the worker.

This module is preloaded by the forkserver, so workers start with NumPy
already imported.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import io
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import types
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import blas, shm
from .._errors import annotate
from .._inputs import Cut, Inputs, along, frozen, told
from .._stats import worker_name
from ..shm import Attachments, FileRef, ShmRef
from . import _cpython, _fpe, _warns
from ._ship import by_value, keep_byte_order, portable, ship
from ._transport import Returns, send_back

_attachments: Attachments | None = None
_owner: int | None = None  # pid of the parent that owns segments made here
#: this is a worker process: what goes back must survive pickling (see _ship.py)
_remote = False


#: the exit status of a worker process whose Pool(initializer=) raised
INIT_FAILED = 70  # (EX_SOFTWARE)


def init_report(pid: int) -> str:
    """Where worker ``pid`` leaves the error of its Pool(initializer=) for the parent."""
    import tempfile  # (here: not every process that imports numpool needs it)

    return os.path.join(tempfile.gettempdir(), f"numpool-init-{pid}.txt")


def leave_init_report(text: str) -> None:
    """Leave ``text`` at :func:`init_report` for the parent: a new file of this user's
    only (the temporary directory is shared: never through a link or into a file
    another user left there); nothing when that cannot be."""
    path = init_report(os.getpid())
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(OSError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # (a report an earlier process of this pid left)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)


def take_init_report(pid: int) -> str | None:
    """What worker ``pid``, which exited with ``INIT_FAILED``, said of its initializer
    (:func:`leave_init_report`), taken out of the temporary directory; None if it left
    nothing, or a file it cannot have written (not a plain file of this user's: the
    directory is shared with other users; a FIFO there must not block the open).
    Ask only for that exit code: a report an earlier worker of the same pid left
    (it died before its parent read it) must not name the cause of another death
    (seen: a SIGKILL reported as a test's failing initializer, pids reused within
    the suite)."""
    path = init_report(pid)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not shm.own_file(st):
            return None
        why = os.read(fd, 4096).decode(errors="replace")
        os.unlink(path)
        return why
    except OSError:
        return None
    finally:
        os.close(fd)


def init_worker(
    blas_threads: int | None,
    shm_config: tuple[str, str, int | None],
    owner: int | None,
    user_init: tuple[Callable[..., Any], tuple[Any, ...]] | None = None,
) -> None:
    """Worker-process initializer: BLAS limit, the parent's shared-memory directories,
    segment cache, Ctrl-C left to the parent; then Pool(initializer=)."""
    global _attachments, _owner, _remote
    _remote = True
    keep_byte_order()  # (the results this worker sends back)
    # Ctrl-C reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if blas_threads is not None:
        blas.limit_this_process(blas_threads)
    shm.configure(*shm_config)
    _attachments = Attachments()
    _owner = owner
    reseed()
    if owner is not None:
        with contextlib.suppress(RuntimeError):  # (at the process limit: no watcher)
            threading.Thread(target=_exit_with, args=(owner,), daemon=True).start()
    if user_init is not None:
        fn, args = user_init
        try:
            fn(*args)
        except BaseException as e:
            # The stdlib's worker would log it and exit 0, which reads as "func ended
            # its process": the parent reads this report instead (processes._death).
            leave_init_report(
                f"{getattr(fn, '__qualname__', fn)!r} raised {type(e).__name__}: {e}"
            )
            traceback.print_exc()
            os._exit(INIT_FAILED)


def reseed() -> None:
    """Give this worker process its own stream of NumPy's legacy global generator
    (``np.random.random()`` and friends), from fresh OS entropy.

    Workers are forked from a parent (or fork server) that has already drawn its
    seed, and NumPy 1.x does not reseed after a fork: there, workers drew the same
    numbers (517-681 distinct of 1,000 tasks), and a replacement worker repeated
    its predecessor's. Python's ``random`` reseeds itself after a fork. Code that
    wants reproducible numbers passes seeds in (see the docs: seeding).
    """
    np.random.seed(np.random.SeedSequence().generate_state(8))


class CallerState(NamedTuple):
    """What a worker process takes from the caller before each job, so that the same
    line of code reads the same files and settings, and meets the same NumPy error
    modes, whichever backend runs it."""

    cwd: str
    path: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    #: NumPy's floating-point error modes (``np.errstate``: see ``_fpe``)
    fpe: _fpe.Modes
    #: the warning filters (``warnings.filters``, packed: see ``_warns``)
    warn: bytes


_env_seen: tuple[dict[Any, Any], tuple[tuple[str, str], ...]] | None = None


def caller_state() -> CallerState:
    """The caller's working directory, sys.path, environment, NumPy error modes and
    warning filters, now (modes that call back into this process are refused: see
    ``_fpe.to_send``)."""
    global _env_seen
    data = _cpython.environ_data()  # (os.environ's own dict: compared in C)
    if data is None or _env_seen is None or _env_seen[0] != data:
        env = tuple(sorted(os.environ.items()))
        _env_seen = (dict(data), env) if data is not None else None
    else:
        env = _env_seen[1]
    return CallerState(
        os.getcwd(), tuple(sys.path), env, _fpe.to_send("a worker process"), _warns.to_send()
    )


_followed: CallerState | None = None


def follow(state: CallerState) -> None:
    """In a worker process: take the caller's state, where it changed since the last
    job (a chdir, an environment variable, a sys.path entry added after the workers
    started)."""
    global _followed
    _fpe.enter(state.fpe)  # (each job: func may have changed them in the last one)
    if state == _followed:
        return
    if _followed is None or state.cwd != _followed.cwd:
        try:
            os.chdir(state.cwd)
        except OSError as e:
            raise RuntimeError(
                f"numpool: a worker process cannot enter the caller's working directory "
                f"{state.cwd!r} ({e.strerror}); pass func absolute paths, or run it "
                "with backend='threads'"
            ) from None
    if _followed is None or state.path != _followed.path:
        sys.path[:] = state.path
        importlib.invalidate_caches()  # (a directory added may hold new modules)
    if _followed is None or state.env != _followed.env:
        wanted = dict(state.env)
        for k in [k for k in os.environ if k not in wanted]:
            del os.environ[k]
        for k, v in wanted.items():
            if os.environ.get(k) != v:
                os.environ[k] = v
    _followed = state


def _code_digest(code: types.CodeType) -> bytes:
    """The same bytes for the same source in any process (no addresses, no hash
    seeds): the bytecode and the constants, nested code included."""
    h = hashlib.blake2b(code.co_code, digest_size=12)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            h.update(_code_digest(c))
        elif isinstance(c, frozenset):
            h.update(repr(sorted(map(repr, c))).encode())
        else:
            h.update(repr(c).encode())
    return h.digest()


def _digest(func: Any) -> bytes | None:
    """A module-level function's code digest (it travels by name, so a worker that
    imported its module before an ``importlib.reload`` would run the old code)."""
    code = getattr(func, "__code__", None)
    return _code_digest(code) if isinstance(code, types.CodeType) else None


class Following:
    """A func on its way to a worker process with the caller's state: it unpickles
    there as the func itself, after :func:`follow` (so that a module found through a
    sys.path entry added since the workers started can be imported), reloading the
    func's module when the caller's code differs from the worker's."""

    __slots__ = ("blob", "digest", "state")

    def __init__(self, state: CallerState, blob: bytes, digest: bytes | None) -> None:
        self.state, self.blob, self.digest = state, blob, digest

    def __reduce__(self) -> Any:
        return (_arrive, (self.state, self.blob, self.digest))


_blobs: weakref.WeakKeyDictionary[Any, tuple[Any, bytes, bytes | None]] = (
    weakref.WeakKeyDictionary()
)


def following(func: Any, state: CallerState) -> Following:
    """``func`` (as shipped: itself or a Shipped) wrapped to travel with ``state``."""
    code = getattr(func, "__code__", None)
    try:
        hit = _blobs.get(func)
    except TypeError:  # (not weakly referenceable)
        hit = None
    if hit is not None and hit[0] is code:
        return Following(state, hit[1], hit[2])
    blob = pickle.dumps(func)
    digest = _digest(func) if isinstance(func, types.FunctionType) else None
    with contextlib.suppress(TypeError):
        _blobs[func] = (code, blob, digest)
    return Following(state, blob, digest)


def _arrive(state: CallerState, blob: bytes, digest: bytes | None) -> Any:
    """In the worker: the caller's state, then the func (see :class:`Following`); a
    func that cannot be loaded here arrives as :class:`Unloadable`."""
    try:
        follow(state)
        func = pickle.loads(blob)
        if digest is not None and _digest(func) != digest:
            module = sys.modules.get(getattr(func, "__module__", ""), None)
            if module is not None:
                importlib.reload(module)
                func = pickle.loads(blob)
            if _digest(func) != digest:
                raise RuntimeError(
                    f"numpool: {func.__module__}.{func.__qualname__} in a worker process "
                    "is not the caller's (its module changed since the caller imported "
                    "it, and reloading it here did not give the caller's code). Reload "
                    "the module in the caller too, or start a new pool"
                )
    except Exception as e:
        return Unloadable(e)
    return func


@functools.lru_cache(maxsize=1)
def _packer() -> type:
    """:class:`_Packer`, made on first use: multiprocessing is imported then, not at
    ``import numpool``."""
    from multiprocessing.reduction import ForkingPickler

    keep_byte_order()

    class _Packer(ForkingPickler):
        """multiprocessing's pickler (the reducers registered with it apply, as when the
        executor pickles a job), with the arrays of numbers set aside (see :func:`pack`),
        and the objects of the classes in ``also``."""

        def __init__(self, file: io.BytesIO, also: tuple[type, ...] = ()) -> None:
            super().__init__(file, pickle.DEFAULT_PROTOCOL)
            self.aside: list[Any] = []
            self.also = also

        def reducer_override(self, obj: Any) -> Any:
            # (called for what is not an int, a str, a plain tuple... and once per object)
            return _set_aside(self, obj) or NotImplemented

    return _Packer


def _set_aside(packer: Any, obj: Any) -> tuple[Any, tuple[int]] | None:
    """A packer's reduction of ``obj`` when it travels beside the bytes (an array of
    numbers, an object of a class in ``packer.also``), else None."""
    if (
        isinstance(obj, np.ndarray)
        and not obj.dtype.hasobject
        and type(obj).__module__.startswith(("numpy", "numpool"))
    ) or (bool(packer.also) and isinstance(obj, packer.also)):
        packer.aside.append(obj)
        return _aside, (len(packer.aside) - 1,)
    return None


@functools.lru_cache(maxsize=1)
def _cloud_packer() -> type:
    """:class:`_Packer`'s set-asides on cloudpickle's pickler (functions of __main__,
    lambdas and closures by value): for a backend that packs the function too."""

    class CloudPacker(by_value()):  # type: ignore[misc]
        def __init__(self, file: io.BytesIO, also: tuple[type, ...] = ()) -> None:
            super().__init__(file, protocol=pickle.DEFAULT_PROTOCOL)
            self.aside: list[Any] = []
            self.also = also

        def reducer_override(self, obj: Any) -> Any:
            return _set_aside(self, obj) or super().reducer_override(obj)

    return CloudPacker


def _aside(k: int) -> Any:
    """Where a packed job's ``k``-th array set aside goes (see :class:`_Unpacker`)."""
    raise RuntimeError("numpool: packed arguments load only through unpack()")


class _Unpacker(pickle.Unpickler):
    """Loads what :class:`_Packer` pickled, with the arrays it set aside."""

    def __init__(self, data: bytes, aside: tuple[np.ndarray, ...]) -> None:
        super().__init__(io.BytesIO(data))
        self.aside = aside

    def find_class(self, module: str, name: str) -> Any:
        if name == "_aside" and module == __name__:
            return self.aside.__getitem__
        return super().find_class(module, name)


def pack(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    by_value: bool = False,
    also: tuple[type, ...] = (),
) -> tuple[bytes, tuple[Any, ...]]:
    """A job's arguments after func, as bytes for :func:`unpack`, and its arrays of
    numbers, set aside to travel as they did (loading them cannot fail in a worker,
    and they are not copied once more; a ShmRef is a name, and stays in the bytes).

    The executor unpickles a job in the worker before any of numpool's code runs:
    an argument that cannot load there (a function the worker's copy of its module
    lacks, a module it cannot import) would end the worker, and the caller would only
    hear that a worker died. Bytes always load; what they hold is loaded by
    :func:`unpack`, after the caller's state, and its error is the task's own.

    ``by_value``: pickled with cloudpickle (a backend that packs the function with
    its arguments: Dask's worker processes); ``also``: more classes set aside (Dask's
    futures, which Dask resolves only where it sees them)."""
    with io.BytesIO() as file:
        packer = (_cloud_packer() if by_value else _packer())(file, also)
        packer.dump((args, kwargs))
        return file.getvalue(), tuple(packer.aside)


def unpack(job: Callable[..., Any], func: Any, data: bytes, aside: tuple[np.ndarray, ...]) -> Any:
    """In the worker: ``job(func, *args, **kwargs)``, with the arguments of
    :func:`pack` loaded now (func, by then, has brought the caller's state: see
    :class:`Following`). One that cannot load raises its error, as the task's."""
    try:
        args, kwargs = _Unpacker(data, aside).load()
    except Exception as e:
        if isinstance(func, Unloadable):  # (func's own error comes first, as it would)
            raise _back(_not_loaded(func.error, "func")) from None
        raise _back(_not_loaded(e, "an argument of the task")) from None
    if _followed is None:  # (func did not arrive: it is Unloadable, its job fails)
        return job(func, *args, **kwargs)
    # under the caller's warning filters: those that pass come back with the result
    value, heard = _warns.run(_followed.warn, job, func, *args, **kwargs)
    return value if heard is None else _warns.Heard(value, heard)


def load_packed(data: bytes, aside: tuple[np.ndarray, ...], what: str) -> Any:
    """What :func:`pack` packed, loaded now; an error loading it is raised as the
    task's own, with a note naming ``what`` (a backend that packs the function with
    its arguments: Dask's worker processes)."""
    try:
        return _Unpacker(data, aside).load()
    except Exception as e:
        raise _back(_not_loaded(e, what)) from None


def _not_loaded(e: BaseException, what: str) -> BaseException:
    """``e``, raised loading ``what`` in a worker process, with a note that says so."""
    it = "it" if what == "func" else "the functions and classes it refers to"
    note = (
        f"numpool: {what} could not be loaded in a worker process: define {it} in a "
        "module the workers import as the caller sees it, or in __main__"
    )
    if hasattr(e, "add_note"):
        e.add_note(note)
    else:  # Python 3.10: what add_note does (kept, though 3.10 does not show it)
        e.__notes__ = [*getattr(e, "__notes__", []), note]  # type: ignore[attr-defined]
    return e


class Unloadable:
    """A func that could not be loaded in this worker process (an AttributeError for a
    function the worker's copy of its module lacks, an ImportError): calling it raises
    that error, so that it reaches the caller with its own type, as func's error.
    Raised while the job itself was unpickled, it would kill the worker instead, and
    the caller would only hear that a worker died."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _not_loaded(self.error, "func")


def in_worker() -> bool:
    """Whether this runs inside one of numpool's workers: a worker process, or a thread
    of a threads pool (named ``numpool_<n>``). A numpool call made there runs in the
    caller's thread, whole: the pool it would wait on may be the very one running it
    (threads in threads deadlocked), and worker processes starting their own left
    the interpreter hanging at exit."""
    return _remote or threading.current_thread().name.startswith("numpool_")


#: how often a worker looks whether the process that owns its pool is still alive
OWNER_POLL_S = 0.5


def _exit_with(owner: int) -> None:
    """Leave when the pool's owner is gone (killed with SIGKILL or SIGTERM). Nothing
    else would tell: a worker holds both ends of its own call queue, so it never sees
    EOF, and its parent is the fork server. Measured before this: workers of a killed
    benchmark were still alive an hour later, one holding 2.1 GB."""
    while shm.is_alive(owner):
        time.sleep(OWNER_POLL_S)
    os._exit(0)


def resolve(obj: Any) -> Any:
    """The array behind a ShmRef or a FileRef; anything else unchanged."""
    if isinstance(obj, FileRef):
        return shm.map_file(obj)
    if isinstance(obj, ShmRef):
        if _attachments is None:
            raise RuntimeError(
                "numpool: a shared-memory reference reached a worker that "
                "was not initialised for it"
            )
        return _attachments.resolve(obj)
    return obj


def straight_ufunc(func: Any, nargs: int) -> bool:
    """A ufunc of ``nargs`` inputs and one output: it can write a block straight into
    the output's rows, with no block-sized temporary (the planner sizes pulled blocks
    by it too: ``numpool._walkers.writes_straight``)."""
    return isinstance(func, np.ufunc) and func.nin == nargs and func.nout == 1


def same_layout(target: np.ndarray, arrays: Iterable[Any]) -> bool:
    """Whether a ufunc writing into ``target`` runs the loop it runs into a new array,
    whose bits may differ (NumPy's SIMD loops and its strided ones): ``target``
    C-contiguous and every array argument too, or all F-contiguous. A reversed or
    strided ``out`` gave 9,100 of 200,000 values of ``np.exp`` other bits."""
    arrays = [a for a in arrays if isinstance(a, np.ndarray)]
    if target.flags.c_contiguous and all(a.flags.c_contiguous for a in arrays):
        return True
    return bool(target.flags.f_contiguous and all(a.flags.f_contiguous for a in arrays))


def check_block(
    res: Any, rows: int, tail: tuple[int, ...], dtype: np.dtype, where: str, axis: int = 0
) -> None:
    """Raise a ValueError/TypeError when a block's result does not fit the output
    (``tail``: the output's shape without its split axis, ``axis``)."""
    expected = (*tail[:axis], rows, *tail[axis:])
    if not isinstance(res, np.ndarray):
        raise TypeError(
            f"apply: func returned {type(res).__name__} for {where}; it must return a NumPy "
            f"array with one row per input row (expected shape {expected}, dtype {dtype})"
        )
    if type(res) is not np.ndarray and not isinstance(res, (np.memmap, shm.SharedArray)):
        kind = type(res)
        what = "mask" if isinstance(res, np.ma.MaskedArray) else "extra meaning"
        raise TypeError(
            f"apply: func returned a {kind.__module__}.{kind.__qualname__} for {where}; "
            "apply builds one plain ndarray from its blocks (on every backend), so its "
            f"{what} would be lost. Return a plain array (for a masked result, "
            "np.ma.getdata(r) and np.ma.getmaskarray(r) from two calls), or call "
            "func(x) directly"
        )
    if res.shape != expected:
        raise ValueError(
            f"apply: func returned shape {res.shape} for {where}; expected {expected}. "
            "apply needs a blockwise function: each block of rows must map to the same "
            "number of rows, with the same trailing shape for every block"
        )
    if res.dtype != dtype:
        raise TypeError(
            f"apply: func returned dtype {res.dtype} for {where}, expected {dtype} "
            "(the dtype of the output array)"
        )


def apply_block(
    func: Callable[..., Any],
    src: Any,
    dst: Any,
    where: str,
    tail: tuple[int, ...] | None,
    dtype: np.dtype | None,
) -> tuple[Any, tuple[int, str], float, float]:
    """Run ``func`` on one block; write into ``dst`` (None: return the result).

    Returns (the result or None, who ran it, start, end) for ``Stats``: the
    ``perf_counter`` when the block started and ended here (CLOCK_MONOTONIC,
    the same clock in every process of the machine).
    """
    t0 = time.perf_counter()
    target = resolve(dst) if dst is not None else None
    if type(src) is Cut:  # several arrays, another axis or a halo (see numpool._inputs)
        axis, rows = src.axis, src.rows
        try:
            into = getattr(type(func), "write_into", None)
            halo = src.lo or src.hi
            fits = target is not None and not halo and straight_ufunc(func, len(src.args))
            args = [resolve(a) for a in src.args] if fits else []  # (resolved once)
            if target is not None and fits and same_layout(target, args):
                res = func(*[frozen(a) for a in args], out=target)
            elif (  # tiles: straight into the output, no block-sized temporary
                target is not None
                and into is not None
                and into(
                    func,
                    target,
                    (src.lo, src.rows),
                    *map(frozen, src.glued(resolve)),
                    block_info=src.info,
                )
            ):
                res = target
            else:
                res = src.call(func, resolve)
        except Exception as e:
            raise _back(annotate(e, told(e, where))) from None
    else:
        block = frozen(resolve(src))
        axis, rows = 0, block.shape[0]
        try:
            into = getattr(type(func), "write_into", None)
            if target is not None and straight_ufunc(func, 1) and same_layout(target, (block,)):
                # ufuncs write straight into the output: no temporary, no copy.
                res = func(block, out=target)
            elif target is not None and into is not None and into(func, target, None, block):
                res = target  # (tiles: numpool._tiles)
            else:
                res = func(block)
        except Exception as e:
            raise _back(annotate(e, told(e, where))) from None
    if tail is not None and dtype is not None:  # (None: the caller learns the layout)
        check_block(res, rows, tail, dtype, where, axis)
    if target is None:
        return res, worker_name(), t0, time.perf_counter()
    if res is not target:
        np.copyto(target, res, casting="no")
    return None, worker_name(), t0, time.perf_counter()


class InProcess:
    """:func:`apply_block` for the blocks of one call run in this process (threads and
    the caller, see ``numpool._engine.pull``), with what stays the same from block to
    block worked out once: the arguments made read-only once (a slice of a read-only
    view is read-only), whether func writes straight into the output, the shape a
    block's result must have. A block then costs its views, func, a copy when func
    made a temporary, and two clock reads; the same checks and the same errors as
    :func:`apply_block`, whose ~16 us of Python a block (warm, 3 arrays) kept the
    other thread waiting for the GIL.

    Only for plain blocks: no halo, no boundary=, no block_info=, no tiles, every
    split argument an ndarray (:meth:`fits`)."""

    __slots__ = (
        "args",
        "axes",
        "axis",
        "dtype",
        "func",
        "out",
        "pre",
        "rows0",
        "straight",
        "tail",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        inputs: Inputs,
        out: np.ndarray,
        tail: tuple[int, ...],
        dtype: np.dtype,
    ) -> None:
        """The blocks of ``inputs`` (own rows a:b are rows ``pre + a : pre + b`` of each
        split argument) into ``out``, whose shape without its split axis is ``tail``,
        of ``dtype``; only where :meth:`fits` says so."""
        args, axes, axis = inputs.args, inputs.axes, inputs.axis
        self.func = func
        self.args = [frozen(a) for a in args]
        self.axes = axes
        #: every split argument is split along axis 0, as is the output
        self.rows0 = axis == 0 and all(ax in (0, None) for ax in axes)
        self.axis = axis
        self.pre = inputs.pre
        self.out = out
        self.tail = tail
        self.dtype = dtype
        #: func writes straight into the output's rows: True for every block, None:
        #: ask each block (its layout), False: never
        self.straight: bool | None = False
        if straight_ufunc(func, len(args)):
            arrays = [a for a in args if isinstance(a, np.ndarray)]
            # rows of C-contiguous arrays along axis 0 are C-contiguous: every block
            # runs the loop a whole array would; else each block's layout is asked
            c = out.flags.c_contiguous and all(a.flags.c_contiguous for a in arrays)
            self.straight = True if c and self.rows0 else None

    @staticmethod
    def fits(func: Callable[..., Any], inputs: Inputs) -> bool:
        """Whether the blocks of ``func`` over ``inputs`` can run here: no halo, no
        boundary=, no block_info=, not tiles, no argument that is a reference (those
        go through :func:`apply_block`)."""
        if inputs.overlap or inputs.pads is not None or inputs.info:
            return False
        if getattr(type(func), "write_into", None) is not None:
            return False
        pairs = zip(inputs.args, inputs.axes, strict=True)
        return all(ax is None or isinstance(a, np.ndarray) for a, ax in pairs)

    def run(self, a: int, b: int, where: Callable[[int], str], i: int) -> tuple[float, float]:
        """Own rows a:b, block ``i`` (``where(i)`` words it for an error), into the
        output's rows; (start, end) as ``perf_counter``."""
        t0 = time.perf_counter()
        axis = self.axis
        start, stop = self.pre + a, self.pre + b
        pairs = zip(self.args, self.axes, strict=True)
        if self.rows0:
            args = [x if ax is None else x[start:stop] for x, ax in pairs]
            dst = self.out[a:b]
        else:
            args = [x if ax is None else along(x, start, stop, ax) for x, ax in pairs]
            dst = along(self.out, a, b, axis)
        try:
            straight = self.straight
            if straight is None:
                straight = same_layout(dst, args)
            res = self.func(*args, out=dst) if straight else self.func(*args)
        except Exception as e:
            raise annotate(e, told(e, where(i))) from None
        tail = self.tail
        if (
            type(res) is not np.ndarray
            or res.dtype != self.dtype
            or res.shape != (*tail[:axis], b - a, *tail[axis:])
        ):
            check_block(res, b - a, tail, self.dtype, where(i), axis)  # (raises, or a memmap)
        if res is not dst:
            np.copyto(dst, res, casting="no")
        return t0, time.perf_counter()


def run_tasks(
    func: Callable[..., Any],
    batch: Sequence[tuple[int, tuple[Any, ...]]],
    returns: Returns | None,
    total: int,
) -> tuple[list[Any], tuple[int, str], float, float]:
    """Run map tasks ``func(*args)``; array results go back through shared memory.

    ``returns``, given by the processes backend, says how array results go
    back (see ``_transport.send_back``). Without it, results are returned as
    they are. Returns (results, who ran them, start, end).
    """
    t0 = time.perf_counter()
    out = []
    for k, (index, args) in enumerate(batch):
        try:
            res = func(*[frozen(resolve(a)) for a in args])
        except Exception as e:
            raise _back(annotate(e, told(e, f"task {index} of {total}"))) from None
        if returns is not None:
            assert _attachments is not None
            res = send_back(res, k, returns, _attachments)
        out.append(ship(res) if _remote else res)
    return out, worker_name(), t0, time.perf_counter()


def _back(exc: BaseException) -> BaseException:
    """An exception on its way back to the caller: in a worker process, one that
    survives pickling (see _ship.portable); in the caller's own, itself."""
    return portable(exc) if _remote else exc


def call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` for ``Pool.submit`` in a worker process: its result, or
    its exception, as something that survives the way back."""
    try:
        return ship(fn(*args, **kwargs))
    except BaseException as e:
        raise portable(e) from None


def run_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    """``Pool.map`` with a chunksize: the chunk's calls, in order, on one worker."""
    return [fn(*args) for args in chunk]
