"""Blocks run in the caller's process (threads, the caller: ``_engine.pull``) go
through ``backends._worker.InProcess``, which works out once per call what
``apply_block`` works out for every block. It must be the same thing: the same
bits in the output, the same errors with the same words, for every layout. Each
test runs both on the same blocks and compares them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpool
from numpool import _inputs
from numpool._engine import bounds
from numpool._inputs import along
from numpool.backends._worker import InProcess, apply_block
from strategies import arrays


def _both(
    func: Callable[..., Any],
    x: np.ndarray,
    rest: tuple[Any, ...],
    axis: int,
    chunks: int,
    out: np.ndarray | None = None,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """(what InProcess gave, what apply_block gave): the output's bytes, or the error's
    type and words; both into an output like ``out`` (default: func on the whole)."""
    inputs = _inputs.make(x, rest, axis, 0, "apply")
    like = out
    if like is None:
        try:
            like = func(x, *rest)
        except Exception:
            like = None
        if type(like) is not np.ndarray or like.shape != x.shape:
            like = np.zeros_like(x)  # (a func that fails: an output of x's shape)
    dtype = np.dtype(like.dtype if dtype is None else dtype)
    tail = like.shape[: inputs.axis] + like.shape[inputs.axis + 1 :]
    edges = bounds(inputs.n, chunks)

    def where(i: int) -> str:
        return f"block {i} of {len(edges) - 1}"

    got = []
    for lean in (True, False):
        target = np.zeros_like(like)
        if out is not None and not out.flags.c_contiguous:
            target = np.zeros_like(like, order="F") if out.flags.f_contiguous else target
            if out.strides and out.strides[0] < 0:
                target = np.zeros_like(like)[::-1]
        try:
            if lean:
                assert InProcess.fits(func, inputs)
                run = InProcess(func, inputs, target, tail, dtype)
                for i in range(len(edges) - 1):
                    run.run(edges[i], edges[i + 1], where, i)
            else:
                for i in range(len(edges) - 1):
                    a, b = edges[i], edges[i + 1]
                    dst = along(target, a, b, inputs.axis)
                    apply_block(func, inputs.block(a, b), dst, where(i), tail, dtype)
            got.append(target.tobytes())
        except Exception as e:
            got.append((type(e), str(e)))
    return got[0], got[1]


def _fma(a: np.ndarray, b: np.ndarray, c: Any) -> np.ndarray:
    return a * b + c


def _wrong_rows(b: np.ndarray) -> np.ndarray:
    return b[:-1]


def _wrong_dtype(b: np.ndarray) -> np.ndarray:
    return b.astype(np.float32)


def _a_list(b: np.ndarray) -> list[float]:
    return list(b)


def _masked(b: np.ndarray) -> np.ndarray:
    return np.ma.masked_less(b, 0.5)


def _raises(b: np.ndarray) -> np.ndarray:
    raise KeyError("no such row")


def _writes_its_input(b: np.ndarray) -> np.ndarray:
    b[0] = 1.0
    return b


RNG = np.random.default_rng(7)
X = RNG.random(1000)
M = RNG.random((5, 1000))


@pytest.mark.parametrize(
    ("func", "x", "rest", "axis"),
    [
        (np.exp, X, (), 0),  # a ufunc straight into the output
        (np.add, X, (X[::-1].copy(),), 0),
        (np.exp, X[::2], (), 0),  # strided: each block's layout asked
        (np.exp, np.asfortranarray(RNG.random((300, 4))), (), 0),
        (_fma, X, (X, 2.0), 0),  # temporaries, a scalar passed whole
        (_fma, M, (X, 0.5), 1),  # along axis 1, a 1-D argument along its axis 0
        (np.multiply, M, (RNG.random((5, 1)),), 1),  # a ufunc, one argument whole
        (_wrong_rows, X, (), 0),
        (_a_list, X, (), 0),
        (_masked, X, (), 0),
        (_raises, X, (), 0),
        (_writes_its_input, X, (), 0),
    ],
)
@pytest.mark.parametrize("chunks", [1, 3, 8])
def test_a_block_in_process_is_what_apply_block_makes_of_it(
    func: Callable[..., Any], x: np.ndarray, rest: tuple[Any, ...], axis: int, chunks: int
) -> None:
    lean, full = _both(func, x, rest, axis, chunks)
    assert lean == full
    fails = func.__name__ in ("_wrong_rows", "_a_list", "_masked", "_raises", "_writes_its_input")
    assert isinstance(lean, tuple) == fails  # (errors compared, type and words)


def test_a_result_of_another_dtype_is_refused_as_apply_block_refuses_it() -> None:
    lean, full = _both(_wrong_dtype, X, (), 0, 4, out=X)
    assert lean == full and lean[0] is TypeError and "dtype float32" in lean[1]
    # a ufunc writing straight into an output of another dtype than the layout's
    lean, full = _both(np.exp, X.astype(np.float32), (), 0, 4, out=X, dtype=np.float32)
    assert lean == full and lean[0] is TypeError


@pytest.mark.parametrize("order", ["reversed", "F"])
def test_an_output_of_another_layout_gets_the_bits_of_a_new_array(order: str) -> None:
    """A ufunc writing into a reversed or F-ordered output runs another loop (other
    bits, see same_layout): such blocks go through a temporary, as in apply_block.
    (Written straight into the reversed one, ~4% of np.exp's values differ on an
    AVX-512 machine.)"""
    x = RNG.random(60_000) * 50 if order == "reversed" else RNG.random((20_000, 3)) * 50
    out = np.zeros_like(x)[::-1] if order == "reversed" else np.zeros_like(x, order="F")
    lean, full = _both(np.exp, x, (), 0, 5, out=out)
    assert lean == full == np.exp(x).tobytes()


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(max_rows=60),
    chunks=st.integers(1, 12),
    func=st.sampled_from([np.negative, np.square, lambda b: b * 2, lambda b: b[::-1][::-1]]),
)
def test_any_layout_gives_apply_blocks_bits(x: np.ndarray, chunks: int, func: Any) -> None:
    if x.ndim == 0 or x.shape[0] == 0 or x.dtype == np.bool_:
        return
    lean, full = _both(func, x, (), 0, min(chunks, x.shape[0]))
    assert lean == full


def test_threads_give_serial_bits_and_errors_through_the_lean_blocks() -> None:
    """End to end: Pool("threads") in blocks, against plain NumPy and Pool("serial")."""
    a, b = RNG.random(20_000), RNG.random(20_000)
    with numpool.Pool("threads", workers=2) as threads, numpool.Pool("serial") as serial:
        for _ in range(3):
            got = threads.apply(_fma, a, b, 3.0, chunks=6)
            assert got.tobytes() == _fma(a, b, 3.0).tobytes()
        errors = []
        for pool in (threads, serial):
            with pytest.raises(ValueError) as e:
                pool.apply(_writes_its_input, a, chunks=6)
            errors.append(type(e.value))
        assert errors[0] is errors[1]


def test_blocks_with_a_halo_or_block_info_go_through_apply_block() -> None:
    """A halo, boundary= or block_info= changes what a block is (rows joined on, the
    result trimmed, a keyword): InProcess takes only plain blocks."""
    assert InProcess.fits(np.exp, _inputs.make(X, (), 0, 0, "apply"))
    assert not InProcess.fits(np.exp, _inputs.make(X, (), 0, 1, "apply"))
    assert not InProcess.fits(np.exp, _inputs.make(X, (), 0, 1, "apply", boundary="reflect"))
    assert not InProcess.fits(np.exp, _inputs.make(X, (), 0, 0, "apply", block_info=True))
