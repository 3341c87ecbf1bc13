"""Shared fixtures: one warm pool per backend, and a /dev/shm leak check on every test."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import numpool
from helpers import segments
from numpool import shm
from numpool._api import shutdown_default_pools

settings.register_profile(
    "numpool",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("numpool")

BACKENDS = ["serial", "threads", "processes", "pickle", "auto"]


@pytest.fixture(scope="session", autouse=True)
def nothing_left_at_the_end() -> Iterator[None]:
    """After every pool is shut down, no segment created by the tests remains."""
    before = segments()
    yield
    shutdown_default_pools()
    for p in list(_pools.values()):
        p.shutdown()
    gc.collect()
    left = segments() - before
    assert not left, f"segments left in {shm.shm_dir()} after the test session: {left}"


_pools: dict[str, numpool.Pool] = {}


def get_pool(backend: str) -> numpool.Pool:
    pool = _pools.get(backend)
    if pool is None or pool.closed:
        pool = _pools[backend] = numpool.Pool(backend, workers=2)
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
