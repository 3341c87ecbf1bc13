"""The libraries a user would otherwise pick, run the way their docs suggest.

Each function returns a zero-argument callable that runs the workload, or
raises :class:`ModuleNotFoundError` when the peer is not installed (the
bench then keeps the row, marked with an install hint).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MATMUL", "VECTOR", "installed", "run_rows", "shutdown"]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _need(module: str) -> None:
    if not installed(module):
        raise ModuleNotFoundError(module)


def _op(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return x.dot(y)


# -- experiment A: a batch of matmuls ------------------------------------------------


def joblib_loky_matmul(d1: list[np.ndarray], d2: list[np.ndarray], w: int) -> Callable[[], Any]:
    _need("joblib")
    from joblib import Parallel, delayed

    return lambda: Parallel(n_jobs=w)(delayed(_op)(a, b) for a, b in zip(d1, d2, strict=True))


def joblib_threads_matmul(d1: list[np.ndarray], d2: list[np.ndarray], w: int) -> Callable[[], Any]:
    _need("joblib")
    from joblib import Parallel, delayed

    return lambda: Parallel(n_jobs=w, prefer="threads")(
        delayed(_op)(a, b) for a, b in zip(d1, d2, strict=True)
    )


def dask_matmul(d1: list[np.ndarray], d2: list[np.ndarray], w: int) -> Callable[[], Any]:
    _need("dask")
    import dask.array as da

    a = da.stack([da.from_array(x, chunks=x.shape) for x in d1])
    b = da.stack([da.from_array(x, chunks=x.shape) for x in d2])
    return lambda: da.matmul(a, b).compute(scheduler="threads", num_workers=w)


# -- experiment B: exp over a vector ----------------------------------------------------


def joblib_loky_exp(x: np.ndarray, w: int) -> Callable[[], Any]:
    _need("joblib")
    from joblib import Parallel, delayed

    return lambda: np.concatenate(
        Parallel(n_jobs=w)(delayed(np.exp)(p) for p in np.array_split(x, 4 * w))
    )


def joblib_threads_exp(x: np.ndarray, w: int) -> Callable[[], Any]:
    _need("joblib")
    from joblib import Parallel, delayed

    return lambda: np.concatenate(
        Parallel(n_jobs=w, prefer="threads")(delayed(np.exp)(p) for p in np.array_split(x, 4 * w))
    )


def dask_exp(x: np.ndarray, w: int) -> Callable[[], Any]:
    _need("dask")
    import dask.array as da

    dx = da.from_array(x, chunks=-(-x.size // (4 * w)))
    return lambda: da.exp(dx).compute(scheduler="threads", num_workers=w)


def numexpr_exp(x: np.ndarray, w: int) -> Callable[[], Any]:
    _need("numexpr")
    import numexpr

    numexpr.set_num_threads(w)
    return lambda: numexpr.evaluate("exp(x)", local_dict={"x": x})


#: (row id, label, short name, transport, factory) for each experiment
#: (thread-based first: starting loky's processes forks this one, see run_rows);
#: joblib memmaps arguments over 1 MB into files its workers map ("loky" transport)
MATMUL = [
    (
        "joblib-threads",
        "joblib Parallel (threads)",
        "joblib threads",
        "none",
        joblib_threads_matmul,
    ),
    (
        "dask-threads",
        "dask.array matmul (threaded scheduler)",
        "dask.array threads",
        "none",
        dask_matmul,
    ),
    (
        "joblib-loky",
        "joblib Parallel (loky processes)",
        "joblib loky",
        "loky",
        joblib_loky_matmul,
    ),
]
VECTOR = [
    (
        "joblib-threads",
        "joblib Parallel (threads), 4 parts/worker",
        "joblib threads",
        "none",
        joblib_threads_exp,
    ),
    (
        "dask-threads",
        "dask.array exp (threaded scheduler)",
        "dask.array threads",
        "none",
        dask_exp,
    ),
    ("numexpr", "numexpr.evaluate('exp(x)')", "numexpr", "none", numexpr_exp),
    (
        "joblib-loky",
        "joblib Parallel (loky processes), 4 parts/worker",
        "joblib loky",
        "loky",
        joblib_loky_exp,
    ),
]


def shutdown() -> None:
    """Stop what the peers left running (joblib's reusable loky executor keeps its
    worker processes, and its memmapping folders in /dev/shm, until told to stop)."""
    import sys

    if "joblib" in sys.modules:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)


def run_rows(
    experiment: str,
    table: list[Any],
    args: tuple[Any, ...],
    warm_args: tuple[Any, ...],
    warmup_runs: int,
    use_peers: bool,
    measure: Callable[..., Any],
) -> list[Any]:
    """Measure every peer of ``table`` on ``args`` (warmed up on ``warm_args``).

    A peer that is not installed, or skipped by --no-peers, keeps its row.
    """
    from .rows import PEERS_HINT, Row

    rows = []
    for pid, label, name, transport, factory in table:
        row = Row(experiment, pid, label, "peer", name=name, transport=transport)
        try:
            fn = factory(*args)
        except ModuleNotFoundError:
            row.status, row.note = "not installed", PEERS_HINT
        else:
            if use_peers:
                row = measure(row, fn, warmup=factory(*warm_args), warmup_runs=warmup_runs)
            else:
                row.status, row.note = "skipped", "--no-peers"
        rows.append(row)
    return rows
