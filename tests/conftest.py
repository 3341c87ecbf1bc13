"""Shared fixtures: one warm pool per backend, and a /dev/shm leak check on every test."""

from __future__ import annotations

import dataclasses
import gc
import signal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import numpool
from helpers import segments
from numpool import shm
from numpool._api import shutdown_default_pools
from numpool.planner.profile import Profile

# A suite started in the background of a script (`pytest &`, nohup) inherits SIGINT
# ignored, and so would every interpreter it starts: Ctrl-C would then reach nobody,
# and the tests of what Ctrl-C does (here and in child scripts) would fail. Hear it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def machine_profile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests measure this machine once, into a cache of their own (not ~/.cache)."""
    import os

    from numpool.planner.profile import store

    old = os.environ.get("NUMPOOL_CACHE_DIR")
    os.environ["NUMPOOL_CACHE_DIR"] = str(tmp_path_factory.mktemp("numpool-cache"))
    store.override(None)
    yield
    if old is None:
        os.environ.pop("NUMPOOL_CACHE_DIR", None)
    else:
        os.environ["NUMPOOL_CACHE_DIR"] = old
    store.override(None)


settings.register_profile(
    "numpool",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("numpool")

#: "dask" runs on a LocalCluster of 2 worker processes, "dask-threads" on one whose
#: 2 workers are threads of the test process (both skipped without distributed)
BACKENDS = ["serial", "threads", "processes", "pickle", "auto", "dask", "dask-threads"]


@pytest.fixture(scope="session", autouse=True)
def nothing_left_at_the_end() -> Iterator[None]:
    """After every pool is shut down, no segment created by the tests remains."""
    before = segments()
    yield
    shutdown_default_pools()
    for p in list(_pools.values()):
        p.shutdown()
    for cluster in _clusters:
        cluster.close()
    gc.collect()
    left = segments() - before
    assert not left, f"segments left in {shm.shm_dir()} after the test session: {left}"


_pools: dict[str, numpool.Pool] = {}
_clusters: list[object] = []


def get_pool(backend: str) -> numpool.Pool:
    pool = _pools.get(backend)
    if pool is None or pool.closed:
        address = None
        if backend.startswith("dask"):
            distributed = pytest.importorskip("distributed")
            if backend == "dask-threads":
                cluster = distributed.LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
                )
                _clusters.append(cluster)
                address = cluster
        name = "dask" if backend.startswith("dask") else backend
        pool = _pools[backend] = numpool.Pool(name, workers=2, address=address)
    return pool


@pytest.fixture(params=BACKENDS)
def pool(request: pytest.FixtureRequest) -> numpool.Pool:
    """A warm 2-worker pool of each backend (shared across tests)."""
    return get_pool(request.param)


@pytest.fixture(autouse=True)
def no_leaked_segments() -> Iterator[None]:
    """Every test: segments afterwards are the ones before, or idle in the arena."""
    before = segments()
    yield
    left = segments() - before - shm.arena().idle_names()
    if left:  # maybe only garbage in a reference cycle: collect (slow) and look again
        gc.collect()
        left = segments() - before - shm.arena().idle_names()
    assert not left, f"test leaked shared-memory segments: {left}"


@pytest.fixture
def fresh_evidence() -> Iterator[None]:
    """No evidence (nor the routes derived from it) from other tests, before or after."""
    from numpool.planner import evidence

    evidence.cache.clear()
    yield
    evidence.cache.clear()


@pytest.fixture
def handoffs_free() -> Iterator[Profile]:
    """A machine where handing work to a worker costs next to nothing: no real work
    is too small for a backend to win (a decision that no load can make certain)."""
    from numpool.planner.profile import store

    real = store.get()
    fast = dataclasses.replace(
        real, thread_wake_s=1e-7, thread_task_s=1e-7, process_start_s=1e-5, process_task_s=1e-7
    )
    store.override(fast)
    yield fast
    store.override(real)


@pytest.fixture
def steady_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block count of a kind of call stays the one the model gave it first: a
    route in blocks asks the planner again when its blocks' least seconds per row
    (measured) call for another count, which a test that says "no planner" must
    not leave to the machine's load (seen on CI: one call's blocks ran faster)."""
    from numpool._runner import Runner

    real = Runner._apply_blocks
    first: dict[tuple[object, ...], int] = {}

    def steady(self: Runner, backend: object, rows: int, ev: object, row_bytes: int) -> int:
        key = (getattr(backend, "name", backend), rows, row_bytes)
        if key not in first:
            first[key] = real(self, backend, rows, ev, row_bytes)  # type: ignore[arg-type]
        return first[key]

    monkeypatch.setattr(Runner, "_apply_blocks", steady)
    monkeypatch.setattr(Runner, "_time_counts", lambda *a: None)


@pytest.fixture
def model_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Block counts are the model's alone: a route in pulled blocks does not try one
    block per worker against them (``Runner._time_counts``, tested on its own), for
    tests of the model's count as a call's measurements move it."""
    from numpool._runner import Runner

    monkeypatch.setattr(Runner, "_time_counts", lambda *a: None)


@pytest.fixture
def handoffs_cost() -> Iterator[Profile]:
    """A machine where handing work to a thread costs 10 s: all real work is tiny."""
    from numpool.planner.profile import store

    real = store.get()
    slow = dataclasses.replace(
        real, thread_wake_s=10.0, thread_task_s=1.0, process_start_s=10.0, process_task_s=10.0
    )
    store.override(slow)
    yield slow
    store.override(real)
