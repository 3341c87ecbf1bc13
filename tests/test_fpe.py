"""NumPy's floating-point error modes (``np.errstate``) mean the same on every
backend: a block, a map task or a ``Pool.submit`` call runs under the modes its
caller had, in a pool thread, a worker process or a Dask worker alike. Before,
a division by zero that raises serially passed unnoticed in a block a helper
ran, and ``np.errstate(all="ignore")`` still let helpers warn."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import numpool
from conftest import get_pool
from numpool.backends import _fpe

#: rows, and where the one zero sits: the caller's first block, the middle, the last
N = 4000
WHERE = [0, N // 2, N - 1]


def inverse(b: np.ndarray) -> np.ndarray:
    return 1.0 / b


def inverse_all(b: np.ndarray) -> float:
    return float((1.0 / b).sum())


def with_zero(at: int) -> np.ndarray:
    x = np.ones(N)
    x[at] = 0.0
    return x


@pytest.mark.parametrize("at", WHERE)
def test_raise_reaches_every_block(pool: numpool.Pool, at: int) -> None:
    """divide="raise": a zero in any block is a FloatingPointError, as serially."""
    x = with_zero(at)
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError, match="divide"):
        pool.apply(inverse, x, chunks=4)
    assert np.geterr()["divide"] == "warn"  # (the caller's own modes are back)


def test_ignore_reaches_every_block(pool: numpool.Pool) -> None:
    """divide="ignore": no block warns, wherever the zeros are; the result is serial's."""
    x = np.ones(N)
    x[:: N // 8] = 0.0  # (a zero in every block)
    with warnings.catch_warnings(record=True) as seen, np.errstate(divide="ignore"):
        warnings.simplefilter("always")
        got = pool.apply(inverse, x, chunks=4)
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)]
    with np.errstate(divide="ignore"):
        assert np.array_equal(got, inverse(x))


def test_map_and_submit_run_under_the_callers_modes(pool: numpool.Pool) -> None:
    """A map task and a Pool.submit call raise as ``inverse_all(x)`` does."""
    xs = [np.ones(10), with_zero(3), np.ones(10)]
    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError):
            list(pool.map(inverse_all, xs))
        with pytest.raises(FloatingPointError):
            pool.submit(inverse_all, xs[1]).result(timeout=60)
    with np.errstate(divide="ignore"):
        assert list(pool.map(inverse_all, xs))[1] == np.inf
        assert pool.submit(inverse_all, xs[1]).result(timeout=60) == np.inf


def test_a_func_sent_by_value_runs_under_the_callers_modes(pool: numpool.Pool) -> None:
    """A lambda (sent by value to a worker process) given to map and submit: before,
    Pool.submit's call of one ran under the worker's defaults (inf, a warning)."""
    f = lambda b: 1.0 / np.float64(b)  # noqa: E731
    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError):
            list(pool.map(f, [1.0, 0.0]))
        with pytest.raises(FloatingPointError):
            pool.submit(f, 0.0).result(timeout=60)


def test_the_modes_do_not_stay_in_a_worker(pool: numpool.Pool) -> None:
    """After calls under divide="raise", a call under the defaults warns, as serially:
    no worker kept the modes of an earlier call."""
    x = with_zero(N - 1)
    for _ in range(2):
        with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
            pool.apply(inverse, x, chunks=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (the default mode warns)
        got = pool.apply(inverse, x, chunks=4)
    assert got[-1] == np.inf and np.array_equal(got[:-1], np.ones(N - 1))


@pytest.mark.parametrize("backend", ["serial", "threads"])
def test_call_mode_reaches_the_callers_function_in_this_process(backend: str) -> None:
    """divide="call": blocks run in this process call the caller's np.seterrcall
    function, once for each block that divided by zero, wherever it ran."""
    pool = get_pool(backend)
    calls: list[str] = []
    x = np.ones(N)
    x[:: N // 4] = 0.0  # (a zero in each of 4 blocks)
    with np.errstate(divide="call", call=lambda kind, flag: calls.append(kind)):
        got = pool.apply(inverse, x, chunks=4)
    assert np.array_equal(got, np.where(x == 0, np.inf, 1.0))
    assert calls and set(calls) == {"divide by zero"}


@pytest.mark.parametrize("backend", ["processes", "pickle", "dask", "dask-threads"])
@pytest.mark.parametrize("mode", ["call", "log"])
def test_modes_that_call_back_are_refused_in_another_process(backend: str, mode: str) -> None:
    """divide="call" or "log" hands each error to an object of this process, which a
    worker process cannot reach (nor a Dask worker in this process: Dask pickles its
    tasks' callables): refused, saying what to do, before any block runs."""

    class Log:
        def write(self, msg: str) -> None:
            pass

    pool = get_pool(backend)
    target = (lambda kind, flag: None) if mode == "call" else Log()
    with np.errstate(divide=mode, call=target):
        with pytest.raises(ValueError, match=r"np\.seterrcall.*backend='threads'"):
            pool.apply(inverse, with_zero(0), chunks=4)
        with pytest.raises(ValueError, match=r"np\.seterrcall"):
            list(pool.map(inverse_all, [np.ones(3)]))
    assert np.array_equal(pool.apply(inverse, np.ones(N), chunks=4), np.ones(N))


def test_run_restores_the_threads_own_modes() -> None:
    """_fpe.run: the job under the caller's modes, the thread's own back after it."""
    with np.errstate(over="raise", under="warn"):
        state = _fpe.here()
    seen: list[dict[str, str]] = []

    def job() -> None:
        seen.append(np.geterr())

    t = threading.Thread(target=_fpe.run, args=(state, job))
    t.start()
    t.join()
    assert seen[0]["over"] == "raise" and seen[0]["under"] == "warn"
    assert np.geterr()["over"] == "warn"
    _fpe.run(state, job)  # (in this thread: its own modes are back afterwards)
    assert seen[1]["over"] == "raise" and np.geterr()["over"] == "warn"


def test_to_send_names_the_modes_that_call_back() -> None:
    with (
        np.errstate(over="log", invalid="call", call=print),
        pytest.raises(ValueError, match=r"over='log', invalid='call'.*a Dask worker"),
    ):
        _fpe.to_send("a Dask worker process")
    with np.errstate(all="raise"):
        assert _fpe.to_send("x") == ("raise", "raise", "raise", "raise")


def test_defaults_travel_as_nothing() -> None:
    """Under NumPy's defaults a job in this process runs as it is (no errstate to
    enter); under any other modes it carries them."""
    assert _fpe.here() is None
    assert _fpe.run(None, np.geterr) == _fpe.DEFAULTS
    with np.errstate(under="raise"):
        state = _fpe.here()
    assert state == (("warn", "warn", "raise", "warn"), None)
    assert _fpe.run(state, np.geterr)["under"] == "raise"
