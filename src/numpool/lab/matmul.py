"""Experiment A: a batch of matrix multiplications (seed-experiments.md).

Data: two lists of ``n`` arrays ``numpy.ones((size, size))``; task ``i`` is
``data1[i].dot(data2[i])``. The tutorial timed the whole program, list
creation included; here creation is timed once on its own and each row
times the work, so that "creation + work" is the published figure's
equivalent and the work alone is comparable across rows.

A1  serial list comprehension, BLAS left multithreaded
A2  multiprocessing.Pool() (default workers), pool.starmap(op, zip(data1, data2))
A3  Pool(workers), starmap(..., chunksize=n // workers)
A4  as A3, OMP_NUM_THREADS=1 set before the workers import NumPy (spawned
    workers when the default start method forks: forked ones would inherit
    an already loaded OpenBLAS)

The pools use the start method a plain script gets on this platform (fork
on Linux before Python 3.14), created inside the timed region as in the
tutorial's program. What each pool's workers saw of BLAS is read with
threadpoolctl from inside a worker of an identical pool, outside the timed
region. numpool and peer rows, whose pools start lazily, get one untimed
warm-up call on the first ``workers`` pairs; the auto row gets
``AUTO_WARMUP_CALLS`` whole calls (rows.warm_auto).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import numpool

from . import meter, peers
from .rows import NUMPOOL_BACKENDS, Row, numpool_row, open_pool, warm_auto

__all__ = ["op", "run"]


def op(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The tutorial's task."""
    return x.dot(y)


def worker_blas() -> list[dict[str, Any]]:
    """threadpoolctl's view of BLAS/OpenMP from inside a worker."""
    from threadpoolctl import threadpool_info

    return [
        {"internal_api": i["internal_api"], "num_threads": i["num_threads"]}
        for i in threadpool_info()
    ]


@contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pool(start_method: str, workers: int | None, env: dict[str, str] | None = None) -> Any:
    """``multiprocessing.Pool(workers)`` with the start method a plain script gets here.

    Its initializer only installs the pickle meter in the workers (what they
    pickle and unpickle is counted; the call is otherwise the tutorial's).
    ``env`` is set while the workers start: spawned and forkserver workers
    import NumPy then, so BLAS reads it (A4).
    """
    ctx = mp.get_context(start_method)
    with _env(**(env or {})):
        return ctx.Pool(workers, initializer=meter.install_in_worker, initargs=(meter.counters(),))


#: A4's workers must import NumPy after OMP_NUM_THREADS=1 is set: forked ones would
#: inherit the caller's already loaded OpenBLAS, so A4 spawns unless the default does not fork
def _a4_method(start_method: str) -> str:
    return "spawn" if start_method == "fork" else start_method


def variants(
    d1: list[np.ndarray], d2: list[np.ndarray], workers: int, start_method: str
) -> list[tuple[str, str, str, Callable[[], Any], Callable[[], Any]]]:
    """(id, label, name, timed work, pool factory for the BLAS probe) for A1-A4."""
    n = len(d1)
    chunk = max(1, n // workers)
    a4_env = {"OMP_NUM_THREADS": "1"}

    def a1() -> Any:
        return [op(a, b) for a, b in zip(d1, d2, strict=True)]

    def a2() -> Any:
        with _pool(start_method, None) as pool:
            return pool.starmap(op, zip(d1, d2, strict=True))

    def a3() -> Any:
        with _pool(start_method, workers) as pool:
            return pool.starmap(op, zip(d1, d2, strict=True), chunksize=chunk)

    def a4() -> Any:
        with _pool(_a4_method(start_method), workers, a4_env) as pool:
            return pool.starmap(op, zip(d1, d2, strict=True), chunksize=chunk)

    return [
        (
            "A1",
            "serial list comprehension, BLAS multithreaded",
            "A1 serial, BLAS threaded",
            a1,
            lambda: None,
        ),
        (
            "A2",
            "multiprocessing.Pool() default workers, starmap",
            "A2 Pool().starmap",
            a2,
            lambda: _pool(start_method, None),
        ),
        (
            "A3",
            f"Pool({workers}), starmap chunksize={chunk}",
            f"A3 Pool({workers}), chunksize={chunk}",
            a3,
            lambda: _pool(start_method, workers),
        ),
        (
            "A4",
            "as A3, OMP_NUM_THREADS=1 before workers import NumPy",
            "A4 as A3, OMP_NUM_THREADS=1",
            a4,
            lambda: _pool(_a4_method(start_method), workers, a4_env),
        ),
    ]


def _shared_row(
    d1: list[np.ndarray],
    d2: list[np.ndarray],
    workers: int,
    measure: Callable[..., Row],
) -> Row:
    """processes with SharedArray inputs; the shared copies are freed on return."""
    t = time.perf_counter()
    s1, s2 = [numpool.share(a) for a in d1], [numpool.share(a) for a in d2]
    share_s = time.perf_counter() - t
    row = Row(
        "A",
        "numpool-processes-shared",
        "numpool processes, SharedArray inputs",
        "numpool",
        name="numpool processes + share()",
        transport="shm",
        note=f"numpool.share() of the inputs took {share_s:.2f} s, once",
    )
    row.extra["share_s"] = share_s
    with numpool.Pool("processes", workers=workers) as pool:
        return measure(
            row,
            functools.partial(pool.map_arrays, np.matmul, s1, s2),
            warmup=functools.partial(pool.map_arrays, np.matmul, s1[:workers], s2[:workers]),
            warmup_runs=1,
            stats=lambda: pool.last_stats,
        )


def run(
    n: int,
    size: int,
    workers: int,
    use_peers: bool,
    measure: Callable[..., Row],
    start_method: str,
    restore_env: Callable[[], None],
) -> tuple[list[Row], dict[str, Any]]:
    """Run experiment A; return its rows and facts (creation time, sizes).

    ``restore_env`` undoes what a row left in ``os.environ`` (starting a
    dask LocalCluster sets OMP_NUM_THREADS=1 and friends in this process),
    before the reproductions start their workers.
    """
    t = time.perf_counter()
    d1 = [np.ones((size, size)) for _ in range(n)]
    d2 = [np.ones((size, size)) for _ in range(n)]
    info: dict[str, Any] = {
        "pairs": n,
        "size": size,
        "create_s": time.perf_counter() - t,
        "flops_per_run": n * 2 * size**3,
        "bytes_per_array": size * size * 8,
        "start_method": start_method,
    }
    # Rows that fork this process run last: after a fork the parent's arrays stay slow
    # to read from several threads until rewritten (np.exp over 10M with 2 threads:
    # 5.1 ms before, 9.0 ms after a Pool came and went). numpool never forks the
    # caller (its workers come from a forkserver).
    reproduction = variants(d1, d2, workers, start_method)
    rows = [_reproduction_row(*reproduction[0], measure)]
    for backend in NUMPOOL_BACKENDS:
        row = numpool_row("A", backend, "map_arrays(np.matmul, data1, data2)")
        pool = open_pool(row, backend, workers)
        if pool is None:
            rows.append(row)
            continue
        with pool:
            row.note = f"blas_threads={pool.blas_threads}"
            full = functools.partial(pool.map_arrays, np.matmul, d1, d2)
            # non-auto: the first `workers` pairs start the pool, not 10 s of work
            warm: Callable[[], Any] = functools.partial(
                pool.map_arrays, np.matmul, d1[:workers], d2[:workers]
            )
            if backend == "auto":
                warm = warm_auto(full)
            rows.append(measure(row, full, warmup_runs=1, warmup=warm, stats=_last(pool)))
        restore_env()
    rows.append(_shared_row(d1, d2, workers, measure))
    # warm-up on the first `workers` pairs only: starts the pools, not 10 s of work
    rows += peers.run_rows(
        "A",
        peers.MATMUL,
        (d1, d2, workers),
        (d1[:workers], d2[:workers], workers),
        1,
        use_peers,
        measure,
    )
    # no peer's threads or environment in the way of the reproductions' workers
    peers.shutdown()
    restore_env()
    rows[1:1] = [_reproduction_row(*v, measure) for v in reproduction[1:]]
    # Pool() starts os.cpu_count() workers (process_cpu_count() from Python 3.13)
    default = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    for r in rows[1:4]:
        r.extra["start_method"] = _a4_method(start_method) if r.id == "A4" else start_method
        r.extra["pool_workers"] = default if r.id == "A2" else workers
    return rows, info


def _last(pool: Any) -> Callable[[], Any]:
    return lambda: pool.last_stats


def _reproduction_row(
    rid: str,
    label: str,
    name: str,
    work: Callable[[], Any],
    pool_factory: Callable[[], Any],
    measure: Callable[..., Row],
) -> Row:
    """A1-A4; what BLAS looked like inside the pool's workers is recorded first."""
    row = Row("A", rid, label, "reproduction", name=name)
    if rid == "A1":
        row.extra["worker_blas"] = worker_blas()
    else:
        row.transport = "pipes"
        with pool_factory() as pool:
            row.extra["worker_blas"] = pool.apply(worker_blas)
    return measure(row, work)
