"""A numpool.Pool as Dask's scheduler: ``dask.compute(..., scheduler=pool)`` and
``dask.config.set(scheduler=pool)`` on every backend, sized by ``_max_workers``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import numpool

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

BACKENDS = ["serial", "threads", "processes", "auto", "dask-threads"]


@pytest.fixture(scope="module", params=BACKENDS)
def pool(request: pytest.FixtureRequest) -> Iterator[numpool.Pool]:
    """A 3-worker pool of each backend (3: not this machine's CPU count by chance)."""
    name, address = request.param, None
    if name == "dask-threads":
        distributed = pytest.importorskip("distributed")
        address = distributed.LocalCluster(
            n_workers=3, threads_per_worker=1, processes=False, dashboard_address=":0"
        )
        name = "dask"
    p = numpool.Pool(name, workers=3, address=address)
    yield p
    p.shutdown(wait=True, cancel_futures=True)
    if address is not None:
        address.close()


def _work() -> Any:
    """A dask.array graph of blockwise, transpose (rechunk) and reduction tasks (no
    matmul: its bits follow the BLAS threads, which differ in worker processes)."""
    x = da.random.RandomState(0).random_sample((300, 300), chunks=(75, 100))
    return (da.exp(x) * x.T).sum(axis=0) + da.sin(x).mean()


def test_dask_compute_with_the_pool_equals_the_threaded_scheduler(pool: numpool.Pool) -> None:
    """dask.compute(..., scheduler=pool) gives the bits of Dask's own threaded scheduler."""
    expected = dask.compute(_work(), scheduler="threads")[0]
    (got,) = dask.compute(_work(), scheduler=pool)
    np.testing.assert_array_equal(got, expected)


def test_dask_config_set_scheduler_pool(pool: numpool.Pool) -> None:
    """with dask.config.set(scheduler=pool), .compute() runs on the pool, same bits."""
    expected = _work().compute(scheduler="sync")
    with dask.config.set(scheduler=pool):
        got = _work().compute()
    np.testing.assert_array_equal(got, expected)


def test_dask_sizes_its_graph_by_the_pools_workers(pool: numpool.Pool) -> None:
    """_max_workers is the pool's worker count, and Dask's scheduler takes it."""
    from dask.base import get_scheduler

    expected = 1 if pool.backend == "serial" else 3
    assert pool._max_workers == expected
    with dask.config.set(num_workers=17):  # what Dask would fall back on
        get = get_scheduler(scheduler=pool)
    assert get.args[1] == expected  # partial(local.get_async, submit, num_workers)


def test_the_tasks_run_on_the_pools_workers() -> None:
    """Every task of the graph runs in a worker thread of the pool, not the caller's."""
    import threading

    seen: set[str] = set()

    def where(block: np.ndarray) -> np.ndarray:
        seen.add(threading.current_thread().name)
        return block

    x = da.ones((40, 40), chunks=(10, 10))
    with numpool.Pool("threads", workers=2) as pool:
        got = x.map_blocks(where, meta=np.empty((0, 0))).sum().compute(scheduler=pool)
    assert got == 1600.0
    assert seen and threading.current_thread().name not in seen
