"""backend="dask" beyond the conformance suite: where it connects, crashes, BLAS,
what crosses the network, the layout blocks arrive in, and the install hint."""

from __future__ import annotations

import functools
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import funcs
import numpool

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A running cluster of the user's own (2 worker threads in this process)."""
    c = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
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
    with pytest.raises(numpool.BackendUnavailableError, match=r"pip install .\.\[dask\]."):
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


@pytest.fixture(scope="module", params=[0, 1], ids=["scattered", "inside-tasks"])
def dask_pool(request: pytest.FixtureRequest) -> Iterator[numpool.Pool]:
    """Pool("dask") on its own cluster; retries=1 sends blocks inside their tasks."""
    with numpool.Pool("dask", workers=2, retries=request.param) as pool:
        yield pool


def _partials(reduce: Any, x: np.ndarray, chunks: int, **kw: Any) -> list[Any]:
    """Every block's partial of ``b.sum()``, in block order (seen by combine)."""
    seen: list[Any] = []

    def combine(a: Any, b: Any) -> Any:
        seen.extend([b] if seen else [a, b])
        return a + b

    reduce(lambda b: b.sum(), x, combine=combine, chunks=chunks, **kw)
    return seen


@pytest.mark.parametrize("offset", [0, 1, 3])
@pytest.mark.parametrize("chunks", [5, 12, 31])
def test_reduce_partials_equal_threads_bit_for_bit(
    dask_pool: numpool.Pool, offset: int, chunks: int
) -> None:
    """Each block's b.sum() on dask has the bits it has on threads and serial."""
    x = np.random.default_rng(0).standard_normal(1_000_003)[offset:]
    threads = _partials(numpool.reduce, x, chunks, backend="threads", workers=2)
    assert threads == _partials(numpool.reduce, x, chunks, backend="serial")
    assert _partials(dask_pool.reduce, x, chunks) == threads


def test_apply_per_row_sums_equal_serial_bit_for_bit(dask_pool: numpool.Pool) -> None:
    """Rows longer than NumPy's buffer, at every alignment: row sums as serial's."""
    y = np.random.default_rng(1).standard_normal((61, 20_001))
    for chunks in (3, 7, 16):
        assert np.array_equal(dask_pool.apply(lambda b: b.sum(axis=1), y, chunks=chunks), y.sum(1))


def test_arrays_arrive_at_the_callers_address_modulo_64(dask_pool: numpool.Pool) -> None:
    """map's arguments and apply's blocks start where the caller's views do, modulo 64."""
    y = np.arange(10_007.0)
    views = [y[i : i + 999] for i in range(8)]
    expected = [v.ctypes.data % 64 for v in views]
    assert dask_pool.map_arrays(lambda a: a.ctypes.data % 64, views) == expected
    got = dask_pool.apply(_start_mod_64, y, chunks=9)
    assert np.array_equal(got, numpool.apply(_start_mod_64, y, chunks=9, backend="serial"))
    assert len(set(got.tolist())) > 1  # blocks at several alignments


def _start_mod_64(b: np.ndarray) -> np.ndarray:
    """Where block ``b`` starts, modulo 64, for each of its rows."""
    return np.full(len(b), b.ctypes.data % 64)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[3:],
        lambda a: a[1:, 2:14],  # rows contiguous, not the whole
        lambda a: a[:, 1],  # one item in each row: a strided vector
        lambda a: np.asfortranarray(a)[1:, 1:],
        lambda a: a[::-1],  # negative strides: still backwards, at its address modulo 64
        lambda a: a[:, ::-2].T,  # backwards, strided, transposed
        lambda a: a.reshape(7, 3, 17)[:, 1:, 1:],
    ],
)
def test_laid_arrays_unpickle_in_the_callers_layout(make: Any) -> None:
    """A _Laid array unpickles equal, at the same address modulo 64, walked the same way."""
    from numpool.backends import dask as backend

    v = make(np.arange(357.0).reshape(21, 17))
    got = pickle.loads(pickle.dumps(backend._Laid(v))).array()
    assert np.array_equal(got, v)
    assert got.ctypes.data % 64 == v.ctypes.data % 64
    if any(s < 0 for s in v.strides):  # (walked backwards too: the same loop, the same bits)
        assert [s < 0 for s in got.strides] == [s < 0 for s in v.strides]
        assert np.argsort(np.abs(got.strides)).tolist() == np.argsort(np.abs(v.strides)).tolist()
    else:
        assert got.flags.c_contiguous == v.flags.c_contiguous
        assert got.flags.f_contiguous == v.flags.f_contiguous
        assert np.argsort(got.strides).tolist() == np.argsort(v.strides).tolist()
        # row starts as the caller's, modulo 64, where rows are contiguous
        if v.ndim > 1 and v.strides[-1] == v.itemsize:
            assert [s % 64 for s in got.strides] == [s % 64 for s in v.strides]
