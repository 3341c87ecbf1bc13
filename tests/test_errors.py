"""Errors: the user's exception comes back intact; bad input is named; pools survive."""

from __future__ import annotations

import time

import numpy as np
import pytest

import funcs
import numpool
from helpers import segments
from numpool import shm


def test_func_error_keeps_type_and_names_the_block(pool: numpool.Pool) -> None:
    """An exception in func arrives with its type and the block index in the message."""
    x = np.linspace(0, 1, 1000)
    with pytest.raises(funcs.Boom, match=r"block \d+ of 8 \(rows \d+:\d+\)") as info:
        pool.apply(funcs.fail_on_big, x, chunks=8)
    assert "value above 0.5" in str(info.value)
    if pool.backend in ("processes", "pickle"):
        cause = info.value.__cause__
        assert cause is not None and "fail_on_big" in str(cause), "worker traceback attached"
    # the pool is still usable afterwards
    assert np.array_equal(pool.apply(np.exp, x, chunks=8), np.exp(x))


def test_map_error_names_the_task(pool: numpool.Pool) -> None:
    """map: the task index is in the exception, which keeps its type (here KeyError)."""
    xs = [np.ones(3)] * 6
    with pytest.raises(KeyError) as info:
        pool.map_arrays(funcs.fail_task, xs, range(6), chunksize=1)
    text = str(info.value) + "".join(getattr(info.value, "__notes__", []))
    assert "task 3 of 6" in text
    assert len(pool.map_arrays(funcs.fail_task, xs[:3], range(3))) == 3


@pytest.mark.parametrize(
    ("func", "exc", "match"),
    [
        (funcs.wrong_rows, ValueError, r"shape \(1,\) for block"),
        (funcs.wrong_dtype, TypeError, "dtype float32"),
        (funcs.not_an_array, TypeError, "returned list"),
    ],
)
def test_func_returning_the_wrong_thing(pool: numpool.Pool, func, exc, match) -> None:
    """A func whose blocks do not fit the output gives a clear error, not garbage."""
    with pytest.raises(exc, match=match):
        pool.apply(func, np.arange(100.0), chunks=4)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"func": 3}, TypeError, "func must be callable"),
        ({"x": None}, TypeError, "x must be array-like"),
        ({"x": "text"}, TypeError, "x must be array-like"),
        ({"x": np.float64(3.0)}, ValueError, "at least one dimension"),
        ({"chunks": 0}, ValueError, "chunks must be >= 1"),
        ({"chunks": 2.5}, TypeError, "chunks must be a positive int"),
        ({"out": np.empty(7)}, ValueError, r"out has shape \(7,\)"),
        ({"out": np.empty(10, np.float32)}, TypeError, "out has dtype float32"),
        ({"out": [0.0] * 10}, TypeError, "out must be a NumPy array"),
    ],
)
def test_apply_bad_arguments(pool: numpool.Pool, kwargs, exc, match) -> None:
    """Bad arguments raise TypeError/ValueError naming the argument and what was expected."""
    args = {"func": np.exp, "x": np.arange(10.0), **kwargs}
    with pytest.raises(exc, match=match):
        pool.apply(args.pop("func"), args.pop("x"), **args)


def test_apply_out_overlapping_input() -> None:
    """An out that partly overlaps x is refused (out=x itself is allowed)."""
    x = np.arange(20.0)
    with pytest.raises(ValueError, match="overlaps"):
        numpool.apply(np.exp, x[:10], out=x[5:15])


def test_apply_read_only_out() -> None:
    out = np.empty(5)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        numpool.apply(np.exp, np.arange(5.0), out=out)


def test_object_dtype_through_processes_is_refused() -> None:
    """Object arrays cannot live in shared memory: say so and suggest threads."""
    with pytest.raises(TypeError, match="backend='threads'"):
        numpool.apply(funcs.affine, np.array([1, 2], dtype=object), backend="processes", workers=2)
    assert list(numpool.apply(funcs.affine, np.array([1, 2], dtype=object))) == [3, 5]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"backend": "gpu"}, ValueError, "backend must be one of"),
        ({"backend": None}, ValueError, "backend must be one of"),
        ({"workers": 0}, ValueError, "workers must be >= 1"),
        ({"workers": -2}, ValueError, "workers must be >= 1"),
        ({"workers": "4"}, TypeError, "workers must be a positive int"),
        ({"blas_threads": 0}, ValueError, "blas_threads must be >= 1"),
    ],
)
def test_pool_bad_options(kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        numpool.Pool(**kwargs)
    with pytest.raises(exc, match=match):
        numpool.apply(np.exp, np.arange(3.0), **kwargs)


def test_map_bad_arguments(pool: numpool.Pool) -> None:
    """map refuses ragged iterables, no iterables, non-iterables and bad chunksize."""
    with pytest.raises(ValueError, match=r"unequal lengths \[3, 2\]"):
        pool.map_arrays(np.add, [1, 2, 3], [1, 2])
    with pytest.raises(TypeError, match="at least one iterable"):
        pool.map_arrays(np.exp)
    with pytest.raises(TypeError, match="argument 1 after func must be iterable"):
        pool.map_arrays(np.exp, 5)
    with pytest.raises(ValueError, match="chunksize must be >= 1"):
        pool.map_arrays(np.exp, [1.0], chunksize=0)
    with pytest.raises(TypeError, match="func must be callable"):
        pool.map_arrays(None, [1.0])


def test_error_leaves_no_segment(pool: numpool.Pool) -> None:
    """After an error, nothing but the arena's idle segments remains in /dev/shm."""
    before = segments()
    big = [np.random.default_rng(i).random((200, 200)) for i in range(6)]
    with pytest.raises(KeyError):
        pool.map_arrays(funcs.fail_task, big, range(6))
    with pytest.raises(funcs.Boom):
        pool.apply(funcs.fail_on_big, np.linspace(0, 1, 10_000), chunks=5)
    assert segments() - before <= shm.arena().idle_names()


def test_killed_worker_raises_within_seconds_and_pool_recovers() -> None:
    """A SIGKILLed worker gives WorkerCrashedError quickly; the next call works."""
    before = segments()
    with numpool.Pool("processes", workers=2) as pool:
        t = time.monotonic()
        with pytest.raises(numpool.WorkerCrashedError, match="died") as info:
            pool.apply(funcs.die, np.linspace(0, 1, 1000), chunks=4)
        assert time.monotonic() - t < 5
        assert isinstance(info.value, RuntimeError)
        assert "block" in str(info.value)
        x = np.linspace(0, 1, 1000)
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
    assert segments() - before <= shm.arena().idle_names()


def test_shutdown_pool_refuses_work() -> None:
    pool = numpool.Pool("threads", workers=1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.apply(np.exp, np.arange(3.0))
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(print)
