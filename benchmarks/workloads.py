"""The workloads numpool's benchmarks time, importable by worker processes.

Each is a blockwise function over axis 0 (rows), so ``numpool.apply(f, x)``
equals ``f(x)`` bit for bit.
"""

from __future__ import annotations

import numpy as np

from numpool.lab.demo import py_loop

__all__ = ["box_blur", "images", "py_loop"]


def box_blur(stack: np.ndarray) -> np.ndarray:
    """3x3 box blur of each image of a (n, h, w) stack; edges see only what exists
    (the border is averaged over the neighbours inside the image)."""
    out = np.zeros_like(stack)
    count = np.zeros(stack.shape[1:], dtype=stack.dtype)
    h, w = stack.shape[1:]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ys = slice(max(0, dy), h + min(0, dy))
            xs = slice(max(0, dx), w + min(0, dx))
            yd = slice(max(0, -dy), h + min(0, -dy))
            xd = slice(max(0, -dx), w + min(0, -dx))
            out[:, yd, xd] += stack[:, ys, xs]
            count[yd, xd] += 1
    out /= count
    return out


def images(n: int = 64, size: int = 1024, seed: int = 0) -> np.ndarray:
    """A stack of ``n`` random float64 images of ``size`` x ``size``."""
    return np.random.default_rng(seed).random((n, size, size))
