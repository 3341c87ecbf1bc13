"""Assertions and probes shared by the tests."""

from __future__ import annotations

import os

import numpy as np

from numpool import shm


def segments() -> set[str]:
    """numpool's segments currently in the shared-memory directory."""
    return {n for n in os.listdir(shm.shm_dir()) if n.startswith(shm.PREFIX)}


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-for-bit equality, including dtype and shape."""
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()
