"""What runs on a worker: one apply block, or one batch of map tasks.

The same two functions run in every backend: in the caller's thread
(serial), in a pool thread (threads) or in a worker process (processes,
pickle). Arguments are either arrays (in-process, or pickled) or
:class:`~numpool.shm.ShmRef` names that :func:`resolve` maps through the
process's cached :class:`~numpool.shm.Attachments`.

This module is preloaded by the forkserver, so workers start with NumPy
already imported.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import blas, shm
from .._errors import annotate
from .._inputs import Cut, frozen, told
from .._stats import worker_name
from ..shm import Attachments, FileRef, ShmRef
from ._ship import portable, ship
from ._transport import Returns, send_back

_attachments: Attachments | None = None
_owner: int | None = None  # pid of the parent that owns segments made here
#: this is a worker process: what goes back must survive pickling (see _ship.py)
_remote = False


def init_worker(
    blas_threads: int | None, shm_config: tuple[str, str, int | None], owner: int | None
) -> None:
    """Worker-process initializer: BLAS limit, the parent's shared-memory directories,
    segment cache, Ctrl-C left to the parent."""
    global _attachments, _owner, _remote
    _remote = True
    # Ctrl-C reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if blas_threads is not None:
        blas.limit_this_process(blas_threads)
    shm.configure(*shm_config)
    _attachments = Attachments()
    _owner = owner
    reseed()
    if owner is not None:
        threading.Thread(target=_exit_with, args=(owner,), daemon=True).start()


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


def _is_unary_ufunc(func: Any) -> bool:
    return isinstance(func, np.ufunc) and func.nin == 1 and func.nout == 1


def _fits_ufunc(func: Any, cut: Cut) -> bool:
    """A ufunc of as many inputs as the block has arguments, and one output: it can
    write straight into the output's rows."""
    return isinstance(func, np.ufunc) and func.nin == len(cut.args) and func.nout == 1


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
            if target is not None and not (src.lo or src.hi) and _fits_ufunc(func, src):
                res = func(*[frozen(resolve(a)) for a in src.args], out=target)
            else:
                res = src.call(func, resolve)
        except Exception as e:
            raise _back(annotate(e, told(e, where))) from None
    else:
        block = frozen(resolve(src))
        axis, rows = 0, block.shape[0]
        try:
            if target is not None and _is_unary_ufunc(func):
                # ufuncs write straight into the output: no temporary, no copy.
                res = func(block, out=target)
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
