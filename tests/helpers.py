"""Assertions and probes shared by the tests."""

from __future__ import annotations

import os

import numpy as np

from numpool import shm


def segments(owner: int | None = None) -> set[str]:
    """This test process's numpool segments in the shared-memory directory (those its
    worker processes made carry its pid too): another numpool program running on the
    machine meanwhile must not fail the suite. ``owner``: another process's."""
    me = os.getpid() if owner is None else owner
    return {n for n in os.listdir(shm.shm_dir()) if shm.owner_of(n) == me}


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-for-bit equality, including dtype and shape."""
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()
