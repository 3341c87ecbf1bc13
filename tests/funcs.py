"""Module-level functions for the tests: worker processes import them by name."""

from __future__ import annotations

import ctypes
import math
import os
import signal
import time

import numpy as np


def affine(b: np.ndarray) -> np.ndarray:
    """A general (non-ufunc) blockwise function valid for every tested dtype."""
    return b * 2 + 1


def rownorm(b: np.ndarray) -> np.ndarray:
    """Row-wise normalisation of a 2-D block."""
    return b / np.linalg.norm(b, axis=1, keepdims=True)


def rowsum(b: np.ndarray) -> np.ndarray:
    """Changes the trailing shape: (rows, k) -> (rows,)."""
    return b.sum(axis=1)


def py_loop(b: np.ndarray) -> np.ndarray:
    """Holds the GIL: a pure-Python loop over elements."""
    out = np.empty_like(b)
    for i in range(len(b)):
        out[i] = math.sqrt(float(b[i]) ** 2 + 1.0)
    return out


def scale(a: np.ndarray, k: float) -> np.ndarray:
    return a * k


def total(a: np.ndarray) -> float:
    return float(a.sum())


def pair(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    return float(a.sum()), a + b


class Boom(ValueError):
    """A user error type the tests expect back unchanged."""


def fail_on_big(b: np.ndarray) -> np.ndarray:
    """Raises for blocks holding a value above 0.5 (the probe row is below it)."""
    if (b > 0.5).any():
        raise Boom("value above 0.5")
    return b.copy()


def fail_task(a: np.ndarray, i: int) -> np.ndarray:
    if i == 3:
        raise KeyError(i)
    return a + i


def wrong_rows(b: np.ndarray) -> np.ndarray:
    """Right for the probe (1 row), wrong for bigger blocks."""
    return b[:1].copy()


def wrong_dtype(b: np.ndarray) -> np.ndarray:
    """float64 for the block holding row 0 of np.arange(n), float32 for the others."""
    return b.astype(np.float64) if b[0] == 0 else b.astype(np.float32)


def not_an_array(b: np.ndarray) -> list[float]:
    return list(b)


def die(b: np.ndarray) -> np.ndarray:
    """SIGKILLs the worker process it runs in (the OOM killer's way)."""
    if len(b) > 1:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return b.copy()


def blas_info(_: object = None) -> list[dict]:
    from threadpoolctl import threadpool_info

    return [i for i in threadpool_info() if i["user_api"] in ("blas", "openmp")]


def pid(_: object = None) -> int:
    return os.getpid()


# PyDLL keeps the GIL during the call (CDLL releases it): a sleep that holds the GIL,
# so that threads cannot overlap it but processes can. Deterministic cost per row.
_libc = ctypes.PyDLL(None)
US_PER_ROW = 100


def gil_sleep(b: np.ndarray) -> np.ndarray:
    """Sleeps US_PER_ROW microseconds per row while holding the GIL."""
    _libc.usleep(int(len(b) * US_PER_ROW))
    return b * 2


def gil_sleep_task(a: np.ndarray) -> np.ndarray:
    """map: one task sleeps 2 ms holding the GIL."""
    _libc.usleep(2000)
    return a + 1


def die_once(b: np.ndarray, marker: str = "") -> np.ndarray:
    """SIGKILLs its worker the first time any block runs (``marker``: a file path that
    says it happened), then works: a crash that a retry gets past."""
    if len(b) > 1 and marker and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return b * 2


def die_task(a: np.ndarray, kill: bool) -> np.ndarray:
    """A map task that SIGKILLs its worker when told to."""
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return a + 1


def exit_code(b: np.ndarray) -> np.ndarray:
    """Ends its worker process with exit code 3 (os._exit, no cleanup)."""
    if len(b) > 1:
        os._exit(3)
    return b.copy()


def identity(b: np.ndarray) -> np.ndarray:
    return b.copy()


class TwoArgError(Exception):
    """Its pickle cannot call __init__ again (two required arguments)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"a={a} b={b}")


def raise_two_arg(b: np.ndarray) -> np.ndarray:
    raise TwoArgError(1, 2)


class LockedError(ValueError):
    """Carries something that cannot be pickled."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        import threading

        self.lock = threading.Lock()


def raise_locked(b: np.ndarray) -> np.ndarray:
    raise LockedError("the lock stays here")


def count_rows(b: np.ndarray, path: str) -> np.ndarray:
    """Appends the block's row count to ``path`` (every process), for exactly-once tests."""
    with open(path, "a") as f:
        f.write(f"{len(b)}\n")
    return b * 2


# --- several arrays, halos, axes, reductions (issue 16) ------------------------------


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return a * b + c


def weighted(a: np.ndarray, w: np.ndarray, s: float) -> np.ndarray:
    """``w`` broadcasts against ``a``; ``s`` is a plain scalar."""
    return a * w + s


def box_blur(img: np.ndarray) -> np.ndarray:
    """3x3 box blur of the last two axes, edges repeated: row i needs rows i-1..i+1."""
    pad = [(0, 0)] * (img.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(img, pad, mode="edge")
    rows, cols = img.shape[-2:]
    acc = np.zeros(img.shape, np.float64)
    for i in range(3):
        for j in range(3):
            acc += p[..., i : i + rows, j : j + cols]
    return acc / 9


def stencil(k: int):
    return Stencil(k)


class Stencil:
    """out[i] = sum of x[i-k..i+k] along axis 0 (fewer terms at the edges)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, x: np.ndarray) -> np.ndarray:
        k = self.k
        out = np.zeros(x.shape, np.float64)
        n = x.shape[0]
        for d in range(-k, k + 1):
            lo, hi = max(0, -d), min(n, n - d)
            if lo < hi:
                out[lo:hi] += x[lo + d : hi + d]
        return out


def exp_sum(b: np.ndarray) -> np.float64:
    return np.exp(b).sum()


def dot_partial(a: np.ndarray, b: np.ndarray) -> np.float64:
    return (a * b).sum()


BINS = np.linspace(-300.0, 300.0, 13)


def hist(b: np.ndarray) -> np.ndarray:
    return np.histogram(b, bins=BINS)[0]


def min_max(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return b.min(axis=0, initial=np.inf), b.max(axis=0, initial=-np.inf)


def keep_first(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a


def drop_a_row(b: np.ndarray) -> np.ndarray:
    return b[1:]


def exit_zero(b: np.ndarray) -> np.ndarray:
    """Ends its worker process with exit code 0 (os._exit: no result, no error)."""
    if len(b) > 1:
        os._exit(0)
    return b.copy()


def numpool_here(backend: str) -> tuple[str, str]:
    """numpool.apply of py_loop in this process (a multiprocessing.Pool worker, say):
    ``("ok", plan)`` when the result is right, else the error's type and message."""
    import numpool

    x = np.linspace(0, 1, 20_000)
    try:
        y = numpool.apply(py_loop, x, backend=backend, workers=2)  # type: ignore[arg-type]
    except Exception as e:
        return type(e).__name__, str(e)
    if not np.array_equal(y, py_loop(x)):
        return "wrong", ""
    plan = numpool.plan(py_loop, x, workers=2) if backend == "auto" else None
    return "ok", "" if plan is None else plan.explain()


def forever(b: object = None) -> object:
    """Never returns (in slices that let Ctrl-C and the interpreter's exit through),
    except on an apply's one-row head."""
    if not isinstance(b, np.ndarray) or len(b) > 1:
        while True:
            time.sleep(0.01)
    return b.copy()


_sigint_sent = False
_sigint_lock = __import__("threading").Lock()


def interrupt_then_forever(b: np.ndarray) -> np.ndarray:
    """Ctrl-C (SIGINT to its own process, once per process) while the call runs, then
    never returns: for the threads backend, whose threads share the caller's process."""
    global _sigint_sent
    if len(b) > 1:
        with _sigint_lock:
            send, _sigint_sent = not _sigint_sent, True
        if send:
            os.kill(os.getpid(), signal.SIGINT)
        forever(b)
    return b.copy()


def sqrt_on(backend: str) -> bool:
    """numpool.apply(np.sqrt) in this process on ``backend``: is it right?"""
    import numpool

    x = np.linspace(0, 1, 100_000)
    y = numpool.apply(np.sqrt, x, backend=backend, workers=2, chunks=4)  # type: ignore[arg-type]
    return bool(np.array_equal(y, np.sqrt(x)))


def mark_then_sleep(a: np.ndarray, path: str) -> np.ndarray:
    """A map task that says it ran (creates ``path``), then sleeps 2 ms holding the GIL."""
    open(path, "a").close()
    return gil_sleep_task(a)
