"""Worker processes follow the caller's state: the same line of code reads the same
files and settings on processes as on threads (issue 22); a task's arguments load
there after it, and one that cannot fails the task, not the worker (issue 23)."""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import sys
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

import numpool
import semfuncs
from helpers import segments
from numpool import shm
from numpool.shm import ShmRef


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


def test_a_func_sent_by_value_follows_too(one_worker, tmp_path, monkeypatch) -> None:
    """Pool.submit and Pool.map of a lambda (sent by value): the worker takes the
    caller's state before it runs (before, only a func sent by name did)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUMPOOL_TEST_STATE", "by value")
    here = lambda: (os.getcwd(), os.environ.get("NUMPOOL_TEST_STATE"))  # noqa: E731
    assert one_worker.submit(here).result(timeout=60) == (str(tmp_path), "by value")
    assert list(one_worker.map(lambda _: here(), [0])) == [(str(tmp_path), "by value")]


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


def _load_error(obj: object, module: object, name: str) -> str:
    """The message of the AttributeError that loading ``obj`` raises where ``module``
    lacks ``name`` (as in a worker that imported the module's file)."""
    blob = pickle.dumps(obj)
    kept = vars(module).pop(name)
    try:
        pickle.loads(blob)
    except AttributeError as e:
        return str(e)
    finally:
        setattr(module, name, kept)
    raise AssertionError(f"{name} loaded without it")


def test_an_argument_that_cannot_load_in_a_worker_raises_its_own_error(
    one_worker, tmp_path, monkeypatch
) -> None:
    """An argument (not func) that the worker cannot load, a function added to its
    module at run time: submit, map and map_arrays give the caller the worker's own
    AttributeError, message included; the worker lives on, and no segment is left."""
    write_module(tmp_path, "numpool_late_arg_mod", "def f(b):\n    return b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("numpool_late_arg_mod")
    exec("def late(b):\n    return b\n", vars(mod))
    try:
        want = _load_error(mod.late, mod, "late")
        pid = one_worker.submit(os.getpid).result(timeout=60)
        before = segments()
        big = np.ones(1 << 16)  # (through shared memory)
        calls = {
            "submit": lambda: one_worker.submit(callable, mod.late).result(timeout=60),
            "map": lambda: list(one_worker.map(callable, [mod.late], timeout=60)),
            "map chunks": lambda: list(one_worker.map(callable, [1, mod.late], chunksize=2)),
            "map_arrays": lambda: one_worker.map_arrays(np.add, [big] * 4, [mod.late] * 4),
        }
        for name, run in calls.items():
            with pytest.raises(AttributeError) as caught:
                run()
            assert str(caught.value).split(" [numpool:")[0] == want, name
            assert "could not be loaded in a worker" in "".join(caught.value.__notes__), name
            if name != "map_arrays":  # (a failed map stops the rest of its batches)
                assert one_worker.submit(os.getpid).result(timeout=60) == pid, name
        with pytest.raises(AttributeError) as caught:  # (func's error comes first)
            one_worker.submit(mod.late, mod.late).result(timeout=60)
        assert "numpool: func could not be loaded" in "".join(caught.value.__notes__)
        assert np.array_equal(one_worker.map_arrays(np.negative, [big])[0], -big)
        assert segments() - before <= shm.arena().idle_names()
    finally:
        sys.modules.pop("numpool_late_arg_mod", None)


def test_arrays_travel_beside_the_packed_arguments() -> None:
    """pack() sets arrays of numbers aside as themselves (the executor pickles them as
    before, not once more), keeps ShmRefs (names) and object arrays in its bytes, and
    unpack() gives the job the caller's arguments, shared arrays still shared."""
    from numpool.backends import _worker

    x, be = np.arange(6.0), np.arange(3.0).astype(">f8")
    objects = np.array([1, "a"], dtype=object)
    ref = ShmRef("numpool-x", 0, (6,), np.dtype("f8"), (8,))
    data, aside = _worker.pack((x, ref, [x, objects]), {"k": be})
    assert len(aside) == 2 and aside[0] is x and aside[1] is be
    job = _worker.unpack(lambda f, *a, **k: (f, a, k), "func", data, aside)
    func, args, kwargs = job
    assert func == "func" and args[0] is x and args[2][0] is x and args[1] == ref
    assert args[2][1].tolist() == [1, "a"] and kwargs["k"] is be


def test_on_dask_worker_processes_what_cannot_load_is_the_tasks_error(
    tmp_path, monkeypatch
) -> None:
    """Dask's worker processes: a function or an argument they cannot load (a function
    added to its module at run time, in a module they may not even find) fails that
    task with its own error and a note; the cluster lives on and the next task runs."""
    pytest.importorskip("distributed")
    from conftest import get_pool

    pool = get_pool("dask")
    write_module(tmp_path, "numpool_late_dask_mod", "def f(b):\n    return b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("numpool_late_dask_mod")
    exec("def late(b):\n    return b\n", vars(mod))
    try:
        for run in (
            lambda: pool.submit(callable, mod.late).result(timeout=60),
            lambda: pool.submit(mod.late, 1).result(timeout=60),
            lambda: list(pool.map(callable, [1, mod.late], timeout=60)),
        ):
            with pytest.raises((AttributeError, ImportError)) as caught:
                run()
            assert "could not be loaded in a worker" in "".join(caught.value.__notes__)
            assert pool.submit(abs, -3).result(timeout=60) == 3
        assert np.array_equal(pool.apply(np.negative, np.ones(5)), -np.ones(5))
    finally:
        sys.modules.pop("numpool_late_dask_mod", None)
