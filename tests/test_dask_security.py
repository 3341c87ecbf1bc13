"""backend="dask": the cluster Pool("dask") starts takes no client without its
credentials, listens on 127.0.0.1 only, and serves no dashboard unless asked."""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import numpool

distributed = pytest.importorskip("distributed")
pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def pool() -> Iterator[numpool.Pool]:
    """A Pool("dask") with the cluster it starts itself."""
    with numpool.Pool("dask", workers=2) as p:
        yield p


def _backend(pool: numpool.Pool) -> Any:
    """The pool's dask backend (its client, cluster and scheduler address)."""
    return pool._backends.get("dask")


def _listening(pid: int) -> set[tuple[str, int]]:
    """The (host, port) pairs process ``pid`` listens on."""
    proc = psutil.Process(pid)
    conns = getattr(proc, "net_connections", proc.connections)(kind="inet")  # psutil < 6
    return {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}


def _http_status(url: str) -> int:
    """The HTTP status code of a GET of ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _touch(path: str) -> None:
    """Leave a mark that a task ran."""
    Path(path).touch()


@pytest.mark.parametrize("how", ["no credentials", "plain tcp", "a certificate of its own"])
def test_a_client_without_the_pools_credentials_cannot_run_a_task(
    pool: numpool.Pool, how: str, tmp_path: Path
) -> None:
    """A Client that lacks the pool's certificate is refused and runs nothing."""
    address = _backend(pool).address
    security = None
    if how == "plain tcp":
        address = address.replace("tls://", "tcp://")
    elif how == "a certificate of its own":
        security = distributed.Security.temporary()
    mark = tmp_path / "ran"
    with pytest.raises((OSError, TypeError, TimeoutError)):  # noqa: SIM117
        with distributed.Client(
            address, security=security, timeout=5, set_as_default=False
        ) as client:
            client.submit(_touch, str(mark), pure=False).result(timeout=10)
    assert not mark.exists()
    x = np.linspace(0, 1, 1000)  # the pool's own client still works
    assert np.array_equal(pool.apply(np.exp, x), np.exp(x))


def test_everything_the_pool_starts_listens_on_loopback_only() -> None:
    """Scheduler, nannies, workers and their HTTP servers bind 127.0.0.1, never 0.0.0.0."""
    before = _listening(os.getpid())
    with numpool.Pool("dask", workers=2) as pool:
        client = _backend(pool).client
        ours = _listening(os.getpid()) - before
        for pid in client.run(os.getpid).values():
            ours |= _listening(pid)
        # the scheduler's comm port and its HTTP server, a nanny and a worker each
        assert len(ours) >= 2 + 2 * 2
        assert all(ipaddress.ip_address(host).is_loopback for host, _ in ours), ours


def test_the_dashboard_is_off_by_default(pool: numpool.Pool) -> None:
    """The scheduler's HTTP server (distributed starts one anyway) serves nothing."""
    link = _backend(pool)._cluster.dashboard_link
    base = link.rsplit("/", 1)[0]
    assert base.startswith("http://127.0.0.1:")
    for page in ("/status", "/health", "/metrics", "/info/main/workers.html"):
        assert _http_status(base + page) == 404, page


def test_numpool_dask_dashboard_turns_it_on_at_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """$NUMPOOL_DASK_DASHBOARD=0 serves the dashboard on a free port of 127.0.0.1."""
    monkeypatch.setenv("NUMPOOL_DASK_DASHBOARD", "0")
    with numpool.Pool("dask", workers=1) as pool:
        base = _backend(pool)._cluster.dashboard_link.rsplit("/", 1)[0]
        assert base.startswith("http://127.0.0.1:")
        assert _http_status(base + "/health") == 200


@pytest.mark.parametrize(
    "value", ["0.0.0.0:8787", "example.com:8787", "eighty", "127.0.0.1:99999"]
)
def test_a_dashboard_address_off_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """$NUMPOOL_DASK_DASHBOARD with another host, or no port, is a ValueError."""
    monkeypatch.setenv("NUMPOOL_DASK_DASHBOARD", value)
    with pytest.raises(ValueError, match=r"NUMPOOL_DASK_DASHBOARD.*address="):
        numpool.Pool("dask", workers=1)


def test_missing_cryptography_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without cryptography (for the TLS certificate) Pool("dask") says what to install."""
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(numpool.BackendUnavailableError, match="cryptography"):
        numpool.Pool("dask", workers=1)


def test_results_over_tls_equal_serial_bit_for_bit(pool: numpool.Pool) -> None:
    """apply, map and reduce on the TLS cluster give serial NumPy's bits."""
    x = np.random.default_rng(0).standard_normal(100_003)
    assert np.array_equal(pool.apply(np.exp, x, chunks=7), np.exp(x))
    assert pool.map_arrays(np.sum, [x, x[1:]]) == [np.sum(x), np.sum(x[1:])]
    assert pool.reduce(np.sum, x, chunks=7) == numpool.reduce(
        np.sum, x, chunks=7, backend="serial"
    )
