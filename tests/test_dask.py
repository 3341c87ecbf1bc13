"""backend="dask" beyond the conformance suite: where it connects, crashes, BLAS,
what crosses the network, and the install hint."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import funcs
import numpool

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A running cluster of the user's own (2 worker threads in this process)."""
    c = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    yield c
    c.close()


def test_connects_to_an_address_or_numpool_dask_address(
    cluster: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    x = np.linspace(0, 1, 10_000)
    with numpool.Pool("dask", address=address) as pool:
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
    monkeypatch.setenv("NUMPOOL_DASK_ADDRESS", address)
    with numpool.Pool("dask") as pool:
        assert np.array_equal(pool.apply(np.sqrt, x), np.sqrt(x))
        assert pool.workers == 2
    # the user's cluster outlives the pools that used it
    with distributed.Client(address) as client:
        assert len(client.scheduler_info()["workers"]) == 2


def test_a_killed_worker_is_worker_crashed_error_and_retries_get_past_it(
    tmp_path: Path,
) -> None:
    x = np.linspace(0, 1, 1000)
    with numpool.Pool("dask", workers=2) as pool:
        with pytest.raises(numpool.WorkerCrashedError, match="KilledWorker"):
            pool.apply(funcs.die, x, chunks=4)
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))  # the nanny restarted it
    func = functools.partial(funcs.die_once, marker=str(tmp_path / "died"))
    with numpool.Pool("dask", workers=2, retries=1) as pool:
        assert np.array_equal(pool.apply(func, x, chunks=4), x * 2)
    assert (tmp_path / "died").exists()


def test_worker_processes_get_the_blas_budget_and_bytes_are_counted() -> None:
    a = [np.ones((50, 50))] * 4
    with numpool.Pool("dask", workers=2) as pool:
        infos = pool.map_arrays(funcs.blas_info, [None] * 4)
        assert all(
            i["num_threads"] == 1 for info in infos for i in info if i["user_api"] == "blas"
        )
        pool.map_arrays(np.matmul, a, a)
        stats = pool.last_stats
        # one scatter of the (single, repeated) array, four results back
        assert stats is not None and stats.bytes_moved == a[0].nbytes * 5


def test_lambdas_run_on_dask_workers() -> None:
    """Dask pickles functions by value (cloudpickle): lambdas are fine there."""
    with numpool.Pool("dask", workers=2) as pool:
        assert np.array_equal(pool.apply(lambda b: b * 3, np.arange(100.0)), np.arange(100.0) * 3)


def test_address_is_only_for_dask() -> None:
    with pytest.raises(ValueError, match="address="):
        numpool.Pool("threads", address="tcp://127.0.0.1:8786")


def test_missing_distributed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(numpool.BackendUnavailableError, match=r"numpool\[dask\]"):
        numpool.Pool("dask")


def test_an_unreachable_scheduler_is_backend_unavailable_naming_it() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(numpool.BackendUnavailableError, match=rf"{address}.*1 s"):  # noqa: SIM117
        with numpool.Pool("dask", address=address, connect_timeout=1) as pool:
            pool.apply(np.sqrt, np.ones(1000))


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"backend": "threads", "connect_timeout": 5}, ValueError),
        ({"backend": "dask", "connect_timeout": 0}, ValueError),
        ({"backend": "dask", "connect_timeout": "5"}, TypeError),
        ({"backend": "dask", "connect_timeout": True}, TypeError),
    ],
)
def test_connect_timeout_is_checked(kw: dict, error: type) -> None:
    with pytest.raises(error, match="connect_timeout"):
        numpool.Pool(**kw)
