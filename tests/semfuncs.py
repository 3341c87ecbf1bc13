"""Functions for the semantics tests (importable, so that worker processes find them)."""

from __future__ import annotations

import numpy as np


def double_in_place(b: np.ndarray) -> np.ndarray:
    b *= 2
    return b


def same(b: np.ndarray) -> np.ndarray:
    return b


def reversed_cols(b: np.ndarray) -> np.ndarray:
    return b[:, ::-1]


def masked(b: np.ndarray) -> np.ndarray:
    return np.ma.masked_less(b, 0.5)


def sort_in_place(a: np.ndarray) -> float:
    a.sort()
    return float(a[0])


def block_sum(b: np.ndarray) -> float:
    return float(b.sum())


def zero_first(b: np.ndarray) -> float:
    b[0] = 0
    return float(b.sum())


def draw(_: object) -> float:
    return float(np.random.random())


def read_relative(b: np.ndarray) -> np.ndarray:
    with open("numpool-state.txt") as f:
        return np.full(len(b), float(f.read()))


def env_value(b: np.ndarray) -> np.ndarray:
    import os

    return np.full(len(b), float(os.environ.get("NUMPOOL_TEST_STATE", "0")))
