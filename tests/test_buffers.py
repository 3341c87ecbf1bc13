"""Recycled private output buffers (threads backend)."""

from __future__ import annotations

import gc

import numpy as np

import numpool
from numpool import _buffers


def test_result_buffer_is_reused_after_the_result_dies() -> None:
    """Dropping a result lets the next call write into the same warm memory. (In
    blocks, given: a call the block rule gives one block runs func(x) whole, into
    NumPy's own output, and which it is depends on the machine.)"""
    with numpool.Pool("threads", workers=2) as pool:
        x = np.random.default_rng(0).random(1_000_000)
        y = pool.apply(np.exp, x, chunks=2)
        addr = y.ctypes.data
        del y
        gc.collect()
        y2 = pool.apply(np.exp, x, chunks=2)
        assert y2.ctypes.data == addr
        assert np.array_equal(y2, np.exp(x))


def test_live_views_keep_their_buffer() -> None:
    """A view of a dropped result still owns its memory: no later call reuses it."""
    with numpool.Pool("threads", workers=2) as pool:
        x = np.random.default_rng(1).random(1_000_000)
        y = pool.apply(np.exp, x, chunks=2)
        view = y[10:20].copy(), y[10:20]
        del y
        gc.collect()
        z = pool.apply(np.negative, x, chunks=2)
        assert not np.shares_memory(view[1], z)
        assert np.array_equal(view[1], view[0])


def test_small_outputs_use_plain_memory_and_idle_memory_is_bounded() -> None:
    with numpool.Pool("threads", workers=2) as pool:
        small = pool.apply(np.exp, np.arange(10.0))
        assert small.base is None  # plain np.empty under 1 MiB
    assert _buffers.arena().idle_bytes <= _buffers.arena().max_idle


def test_idle_buffers_released_when_last_threads_pool_closes() -> None:
    from numpool._api import shutdown_default_pools

    shutdown_default_pools()
    from conftest import _pools

    for p in list(_pools.values()):
        if not p.backend.startswith("dask"):  # (auto pools hold a threads backend too)
            p.shutdown()
    with numpool.Pool("threads", workers=2) as pool:
        # (in blocks: a call worth one block runs func(x) whole, into NumPy's output)
        pool.apply(np.exp, np.ones(1_000_000), chunks=2)
        gc.collect()
        assert _buffers.arena().idle_bytes > 0
    assert _buffers.arena().idle_bytes == 0
