"""Worker processes follow the caller's state: the same line of code reads the same
files and settings on processes as on threads (issue 22)."""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

import numpool
import semfuncs


@pytest.fixture
def one_worker() -> Iterator[numpool.Pool]:
    """A processes pool of one worker (so every call lands on the same process),
    started before the state changes."""
    pool = numpool.Pool("processes", workers=1)
    pool.apply(np.negative, np.ones(4))
    yield pool
    pool.shutdown()


def both(pool: numpool.Pool, func, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return pool.apply(func, x), numpool.apply(func, x, backend="threads")


def test_a_later_chdir_is_followed(one_worker, tmp_path, monkeypatch) -> None:
    """os.chdir after the workers started: a relative path reads the caller's file."""
    x = np.ones(10)
    for name, value in (("a", "1.5"), ("b", "2.5")):
        d = tmp_path / name
        d.mkdir()
        (d / "numpool-state.txt").write_text(value)
        monkeypatch.chdir(d)
        got, want = both(one_worker, semfuncs.read_relative, x)
        assert np.array_equal(got, want) and got[0] == float(value)


def test_later_environment_changes_are_followed(one_worker, monkeypatch) -> None:
    """os.environ set and deleted after the workers started: workers see it too."""
    x = np.ones(10)
    monkeypatch.setenv("NUMPOOL_TEST_STATE", "7")
    got, want = both(one_worker, semfuncs.env_value, x)
    assert got[0] == want[0] == 7
    monkeypatch.delenv("NUMPOOL_TEST_STATE")
    got, want = both(one_worker, semfuncs.env_value, x)
    assert got[0] == want[0] == 0


def write_module(d, name: str, body: str) -> None:
    shutil.rmtree(d / "__pycache__", ignore_errors=True)
    (d / f"{name}.py").write_text(textwrap.dedent(body))


def test_a_module_from_a_later_sys_path_entry(one_worker, tmp_path, monkeypatch) -> None:
    """A func from a directory put on sys.path after the workers started runs there
    (it used to kill the worker, with an error that blamed memory)."""
    write_module(tmp_path, "numpool_late_mod", "def triple(b):\n    return b * 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("numpool_late_mod")
    try:
        x = np.arange(10.0)
        got, want = both(one_worker, mod.triple, x)
        assert np.array_equal(got, want) and np.array_equal(got, x * 3)
    finally:
        sys.modules.pop("numpool_late_mod", None)


def test_a_reloaded_module_is_followed(one_worker, tmp_path, monkeypatch) -> None:
    """importlib.reload in the caller: the worker runs the new code, not the code it
    imported before."""
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "numpool_reload_mod", "def f(b):\n    return b + 1\n")
    mod = importlib.import_module("numpool_reload_mod")
    try:
        x = np.arange(10.0)
        assert np.array_equal(one_worker.apply(mod.f, x), x + 1)
        write_module(tmp_path, "numpool_reload_mod", "def f(b):\n    return b + 1000.0\n")
        mod = importlib.reload(mod)
        got, want = both(one_worker, mod.f, x)
        assert np.array_equal(got, want) and np.array_equal(got, x + 1000)
    finally:
        sys.modules.pop("numpool_reload_mod", None)


def test_caller_state_is_read_again_when_the_environment_changes(monkeypatch) -> None:
    """caller_state() sees an environment change made after its last call."""
    from numpool.backends import _worker

    before = _worker.caller_state()
    monkeypatch.setenv("NUMPOOL_TEST_STATE", "x")
    after = _worker.caller_state()
    assert ("NUMPOOL_TEST_STATE", "x") in after.env and after.env != before.env


def test_a_func_that_cannot_load_in_a_worker_raises_its_own_error(
    one_worker, tmp_path, monkeypatch
) -> None:
    """A func whose module the worker cannot import gives the caller that ImportError
    (ModuleNotFoundError), not a dead worker blamed on memory."""
    write_module(tmp_path, "numpool_gone_mod", "def f(b):\n    return b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("numpool_gone_mod")
    try:
        (tmp_path / "numpool_gone_mod.py").unlink()
        shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
        with pytest.raises(ModuleNotFoundError, match="numpool_gone_mod"):
            one_worker.apply(mod.f, np.ones(10))
        assert np.array_equal(one_worker.apply(np.negative, np.ones(3)), -np.ones(3))
    finally:
        sys.modules.pop("numpool_gone_mod", None)
