"""SciPy's ``workers=`` with numpool: ``pool.map`` and ``numpool.map`` are map-likes.

SciPy calls ``workers(func, iterable)`` and reads an iterable of results; what it
sends is often its own wrapper (an importable class) around the user's objective
(a function of ``__main__``, a lambda). Such a wrapper pickles by reference in the
caller and fails to load in a worker, so it travels by value (backends/_ship.py).
The scripts these tests run live in tests/scipy_scripts/, guard-less.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import optimize

import numpool
from numpool.backends._ship import Shipped, needs_value, ship

SCRIPTS = Path(__file__).parent / "scipy_scripts"
OPTIMISERS = SCRIPTS / "optimisers.py"


def _run(args: list[str], env: dict[str, str], stdin: str | None = None) -> dict[str, Any]:
    """The RESULT line that a script run in a fresh interpreter printed, as JSON."""
    p = subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        cwd=SCRIPTS,
    )
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, (p.stdout, p.stderr)
    result: dict[str, Any] = json.loads(lines[0][len("RESULT ") :])
    return result


def _same_as_serial(got: dict[str, Any], maps: tuple[str, ...]) -> None:
    want = got.pop("workers=1")
    assert sorted(got) == sorted(maps)
    for name, results in got.items():
        assert results == want, name  # x, fun, nfev (and quad_vec's result): exactly


@pytest.mark.parametrize("backend", ["processes", "threads", "auto"])
def test_scipy_optimisers_with_numpool_workers_match_workers_1(backend: str) -> None:
    """differential_evolution (also with args=), brute, shgo and quad_vec give, with
    workers=pool.map and workers=numpool.map, what workers=1 gives, from a guard-less
    script whose objectives live in __main__."""
    got = _run([str(OPTIMISERS)], {"NUMPOOL_BACKEND": backend})
    _same_as_serial(got, ("pool.map", "numpool.map"))


@pytest.mark.parametrize("how", ["interactive", "exec"])
def test_scipy_objectives_of_a_notebook_session_reach_worker_processes(how: str) -> None:
    """The same script typed into an interactive session (python -i) or exec'd into
    __main__ as a notebook kernel does: the same results as workers=1."""
    code = OPTIMISERS.read_text()
    env = {"NUMPOOL_BACKEND": "processes", "NUMPOOL_MAPS": "pool.map"}
    if how == "interactive":
        got = _run(["-i", "-q"], env, stdin=code)
    else:
        cell = "import sys; exec(compile(sys.stdin.read(), '<cell>', 'exec'))"
        got = _run(["-c", cell], env, stdin=code)
    _same_as_serial(got, ("pool.map",))


@pytest.fixture(scope="module")
def unloadable() -> dict[str, Any]:
    """What the caller caught, for each objective SciPy and map (one script run)."""
    return _run([str(SCRIPTS / "unloadable.py")], {})


@pytest.mark.parametrize("scipy", ["differential_evolution", "quad_vec"])
@pytest.mark.parametrize(
    ("how", "error", "module"),
    [
        ("attribute", "AttributeError", "numpool_late_mod"),
        ("module", "ImportError", "numpool_gone_mod"),
    ],
)
def test_an_objective_workers_cannot_load_raises_its_own_error(
    unloadable: dict[str, Any], how: str, error: str, module: str, scipy: str
) -> None:
    """A function added to a module at run time, or one whose module's file is gone,
    sent as SciPy's wrapper (DE) or inside the task's arguments (quad_vec): the
    caller gets the AttributeError / ImportError of loading it, not a crash, and
    nothing that blames memory; the pool still works afterwards."""
    assert unloadable["pool works after"] is True
    for name in ("pool.map", "numpool.map"):
        caught = unloadable[f"{how} {scipy} {name}"]
        if caught is None and scipy == "quad_vec" and name == "numpool.map":
            continue  # (its few tasks may run in the caller, where the function loads)
        mro, message = caught
        assert error in mro, (name, mro, message)
        assert module in message, (name, message)
        assert "memory" not in message.lower(), (name, message)
        assert "crash" not in message.lower() and "died" not in message, (name, message)


def test_a_lambda_objective_wrapped_by_scipy_runs_on_processes() -> None:
    """SciPy's wrapper (an importable class) around a lambda goes by value: the same
    x, fun and nfev as workers=1."""

    def de(workers: Any) -> Any:
        return optimize.differential_evolution(
            lambda x, k: float(np.sum((x - k) ** 2)),
            [(-1.0, 1.0)] * 2,
            args=(0.25,),
            maxiter=2,
            popsize=3,
            seed=2,
            polish=False,
            updating="deferred",
            workers=workers,
        )

    want = de(1)
    with numpool.Pool("processes", workers=2) as pool:
        got = de(pool.map)
    assert np.array_equal(got.x, want.x) and got.fun == want.fun and got.nfev == want.nfev


def test_np_vectorize_of_a_lambda_reaches_worker_processes() -> None:
    """np.vectorize(lambda): apply, map_arrays, map and submit on processes give what
    calling it serially gives (it was refused as something cloudpickle cannot
    serialise)."""
    f = np.vectorize(lambda v: v * 2.5 - 1.0)
    x = np.linspace(-3.0, 3.0, 1001)
    with numpool.Pool("processes", workers=2) as pool:
        assert np.array_equal(pool.apply(f, x, chunks=4), f(x))
        got = pool.map_arrays(f, [x[:7], x[7:20]])
        assert all(np.array_equal(g, f(a)) for g, a in zip(got, [x[:7], x[7:20]], strict=True))
        assert [float(r) for r in pool.map(f, [1.0, 2.0])] == [float(f(1.0)), float(f(2.0))]
        assert np.array_equal(pool.submit(f, x[:5]).result(timeout=60), f(x[:5]))
    assert np.array_equal(numpool.map(f, [x[:4]], backend="processes", workers=2)[0], f(x[:4]))


def test_only_what_holds_something_unimportable_goes_by_value() -> None:
    """An instance of a library class goes by value when it holds a lambda, a local
    function or a __main__ object, and by reference (as pickle sends it) otherwise."""

    def local(v: float) -> float:
        return v

    assert needs_value(np.vectorize(lambda v: v))
    assert needs_value(np.vectorize(local))
    assert needs_value(functools.partial(np.vectorize(local), 1.0))
    assert isinstance(ship(np.vectorize(lambda v: v)), Shipped)
    by_name = np.vectorize(math.sqrt)
    assert not needs_value(by_name) and ship(by_name) is by_name
    big = np.vectorize(math.sqrt, excluded={0}, doc="x" * 10)
    vars(big)["table"] = np.zeros(1 << 20)  # (numbers: the walk skips its bytes)
    assert not needs_value(big)
    lock = np.vectorize(math.sqrt)
    vars(lock)["lock"] = threading.Lock()  # pickle's own error tells, where it did before
    assert not needs_value(lock)


def _half(v: float) -> float:
    return v / 2.0


@functools.wraps(_half)
def _half_wrapped(v: float) -> float:  # (its name finds _half: pickle refuses it)
    return _half(v) + 0.25


def test_what_pickle_refuses_and_cloudpickle_sends_goes_by_value() -> None:
    """A decorator's wrapper under the wrapped function's name, alone or inside an
    np.vectorize: on processes, the same results as calling it here."""
    x = np.linspace(0.0, 1.0, 101)
    f = np.vectorize(_half_wrapped)
    with numpool.Pool("processes", workers=2) as pool:
        assert np.array_equal(pool.apply(f, x, chunks=2), f(x))
        assert list(pool.map(_half_wrapped, [1.0, 3.0])) == [0.75, 1.75]
    assert not needs_value(np.vectorize(_half)) and not needs_value(type(None))


def test_an_instance_shipped_by_value_is_shipped_anew() -> None:
    """A change to an instance between calls reaches the workers: it is not cached."""
    f = np.vectorize(lambda v, k: v * k, excluded={1})
    with numpool.Pool("processes", workers=2) as pool:
        first = pool.submit(f, 2.0, 3.0).result(timeout=60)
        f.pyfunc = lambda v, k: v + k
        second = pool.submit(f, 2.0, 3.0).result(timeout=60)
    assert (float(first), float(second)) == (6.0, 5.0)
