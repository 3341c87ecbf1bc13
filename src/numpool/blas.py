"""BLAS/OpenMP thread budgets, on threadpoolctl.

Why a budget: ``W`` workers each running a BLAS call with ``T`` threads put
``W * T`` threads on the cores. With ``W * T`` above the usable cores they
fight for them (oversubscription) and a batch of matmuls can run several
times slower. numpool keeps ``workers * blas_threads <= usable cores``:

* processes backend: every worker process sets its own limit once, at start
  (:func:`limit_this_process`, called by the worker initializer);
* threads backend: OpenBLAS's pthreads pool and its limit are *process-wide*
  (threadpoolctl issues #205, #220), so a per-thread limit is impossible.
  :func:`process_budget` sets the limit once around a whole ``apply``/``map``
  call from the calling thread, reference-counted so that overlapping calls
  from several threads do not restore each other's limits halfway.

``blas_threads(n)`` is the public context manager / decorator for users.
Measured on the 2-core machine (numpy 2.4, OpenBLAS 0.3.31 pthreads),
2000x2000 matmul: 1 call with 2 BLAS threads 132 ms; two threads each
calling it with a process-wide limit of 1: 131 ms per task; with the limit
left at 2: 134 ms per task (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import sys
import threading
from collections.abc import Iterator
from typing import Any

from ._cpus import usable_cpus

__all__ = [
    "blas_threads",
    "budget_for",
    "limit_this_process",
    "native_threads",
    "process_budget",
]

_lock = threading.Lock()
_controller: Any = None
#: the module count the controller was last checked at, and the modules looked at
_controller_modules = -1
_inspected: set[str] = set()


def _get_controller() -> Any:
    """A cached threadpoolctl controller, rebuilt when an extension module was
    imported since (it may have loaded a new BLAS/OpenMP).

    Building one scans the loaded shared libraries (1-6 ms); limiting with a
    cached one costs ~5 us. An import of Python code alone cannot load a
    library, so it costs only a look at the new modules' files.
    """
    global _controller, _controller_modules
    n = len(sys.modules)
    if _controller is None or n != _controller_modules:
        native = _new_native_module()
        if native or _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        _controller_modules = n
    return _controller


def _new_native_module() -> bool:
    """Whether a module not looked at before is an extension module (a shared
    library); each module is looked at once."""
    new = [name for name in list(sys.modules) if name not in _inspected]
    _inspected.update(new)
    return any(_is_native(sys.modules.get(name)) for name in new)


def _is_native(module: Any) -> bool:
    path = getattr(module, "__file__", None)
    return isinstance(path, str) and path.endswith(_NATIVE_SUFFIXES)


_NATIVE_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def native_threads() -> int:
    """The most threads any loaded BLAS or OpenMP pool may use now (1: none can run
    func on several cores by itself)."""
    infos = _get_controller().info()
    return max((int(i.get("num_threads") or 1) for i in infos), default=1)


def budget_for(workers: int, blas_threads: int | None = None) -> int:
    """BLAS threads per worker so that ``workers * threads <= usable cores``.

    An explicit ``blas_threads`` wins (the user knows best).
    """
    if blas_threads is not None:
        return blas_threads
    return max(1, usable_cpus() // max(1, workers))


def limit_this_process(n: int) -> None:
    """Limit every BLAS and OpenMP pool of this process to ``n`` threads, for good."""
    _get_controller().limit(limits=n)


class blas_threads(contextlib.ContextDecorator):
    """Limit BLAS and OpenMP thread pools to ``n`` threads within a block.

    Works as a context manager and as a decorator. The limit is process-wide
    (that is how OpenBLAS, MKL and OpenMP expose it) and the previous limits
    are restored on exit.

    Parameters
    ----------
    n : int
        Threads per BLAS/OpenMP pool, at least 1.

    Examples
    --------
    >>> import numpy as np, numpool
    >>> with numpool.blas_threads(1):
    ...     c = np.ones((50, 50)) @ np.ones((50, 50))
    >>> @numpool.blas_threads(1)
    ... def gram(a):
    ...     return a.T @ a
    """

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"blas_threads: n must be an int >= 1, got {n!r}")
        if n < 1:
            raise ValueError(f"blas_threads: n must be >= 1, got {n}")
        self.n = n
        self._limiters: list[Any] = []

    def __enter__(self) -> blas_threads:
        self._limiters.append(_get_controller().limit(limits=self.n))
        return self

    def __exit__(self, *exc: object) -> None:
        self._limiters.pop().restore_original_limits()


_depth = 0
_active: Any = None


@contextlib.contextmanager
def process_budget(n: int | None) -> Iterator[None]:
    """Hold a process-wide limit of ``n`` threads while any numpool call needs one.

    The first caller sets it and the last one out restores the original
    limits; a caller arriving while a limit is held runs under that limit.
    ``n=None`` does nothing.
    """
    global _depth, _active
    if n is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _active = _lower_to(n)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for lib, before in _active:
                    lib.set_num_threads(before)
                _active = None


def _lower_to(n: int) -> list[tuple[Any, int]]:
    """Lower every loaded BLAS/OpenMP pool above ``n`` threads to ``n``: the pools
    changed, with what they had. Straight through the cached controller's libraries
    (a few microseconds: every threads call pays it, ``np.exp`` over 100k takes 80),
    rather than ``ThreadpoolController.limit`` (~18 us)."""
    changed = []
    for lib in _get_controller().lib_controllers:
        before = lib.get_num_threads()
        if before is not None and before > n:
            lib.set_num_threads(n)
            changed.append((lib, before))
    return changed
