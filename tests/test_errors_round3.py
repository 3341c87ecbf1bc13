"""Issue 22: exceptions of worker processes arrive as their own class; retries counted."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import _errfuncs
import numpool
from numpool import _engine
from numpool._stats import Stats
from numpool.backends import _ship

TESTS = Path(__file__).parent
REMOTE = ["processes", "pickle"]


@pytest.mark.parametrize("backend", REMOTE)
def test_an_exception_whose_init_takes_two_arguments_arrives_as_its_own_class(
    backend: str,
) -> None:
    """``except NeedsTwoArgs`` catches it: the very class, its attributes, the traceback."""
    x = np.ones(100)
    with numpool.Pool(backend, workers=2) as pool:
        with pytest.raises(_errfuncs.NeedsTwoArgs) as info:
            pool.apply(_errfuncs.raise_needs_two, x, chunks=2)
        err = info.value
        assert type(err) is _errfuncs.NeedsTwoArgs and not isinstance(err, numpool.RemoteError)
        assert err.b == 7 and str(err).startswith("two were needed [numpool: raised by func")
        assert 'raise NeedsTwoArgs("two were needed", 7)' in str(err.__cause__)
        with pytest.raises(_errfuncs.NeedsTwoArgs, match="task 0 of 2"):
            pool.map_arrays(_errfuncs.raise_needs_two, [x, x], chunksize=1)
        got = pool.submit(_errfuncs.raise_needs_two, x).exception(timeout=60)
        assert type(got) is _errfuncs.NeedsTwoArgs and got.args == ("two were needed",)
        assert np.array_equal(pool.apply(np.negative, x, chunks=2), -x)  # not broken


@pytest.mark.parametrize("backend", REMOTE)
def test_keyword_only_arguments_and_a_builtin_base_survive(backend: str) -> None:
    """A ValueError subclass with a keyword-only argument keeps its class and fields."""
    with (
        numpool.Pool(backend, workers=2) as pool,
        pytest.raises(_errfuncs.NeedsTwoArgsValue) as info,
    ):
        pool.apply(_errfuncs.raise_needs_two_value, np.ones(10), chunks=2)
    assert (info.value.code, info.value.where) == (3, "the worker")
    assert "code 3 at the worker" in str(info.value)


@pytest.mark.parametrize("backend", REMOTE)
def test_an_attribute_that_cannot_travel_stays_behind_and_says_so(backend: str) -> None:
    """The class and the other attributes arrive; a note names the lock left behind."""
    with (
        numpool.Pool(backend, workers=2) as pool,
        pytest.raises(_errfuncs.HoldsALock) as info,
    ):
        pool.apply(_errfuncs.raise_holds_a_lock, np.ones(10), chunks=2)
    err = info.value
    assert err.b == 5 and not hasattr(err, "lock")
    assert any("attribute lock" in n for n in err.__notes__)


def test_a_class_the_caller_cannot_import_is_a_look_alike_that_says_why(tmp_path: Path) -> None:
    """Only then a RemoteError look-alike, which names the reason; the pool lives on."""
    (tmp_path / "only_in_worker.py").write_text("class Plain(ValueError):\n    pass\n")
    func = _errfuncs.raise_from
    with numpool.Pool("processes", workers=2, retries=2) as pool:
        with pytest.raises(numpool.RemoteError) as info:
            pool.apply(func, np.ones(10), str(tmp_path), "only_in_worker", "Plain", chunks=2)
        err = info.value
        assert isinstance(err, ValueError) and type(err).__name__ == "Plain"
        assert "look-alike of only_in_worker.Plain" in str(err)
        assert "ModuleNotFoundError" in str(err) and "raised where only a worker" in str(err)
        assert pool.last_stats is None or pool.last_stats.retries == 0  # not a crash
        assert np.array_equal(pool.apply(np.negative, np.ones(4), chunks=2), -np.ones(4))


def test_builtin_fields_are_rebuilt_without_init() -> None:
    """An OSError subclass rebuilt without __init__ keeps errno, strerror and filename."""

    class Missing(OSError):
        def __init__(self, path: str, code: int) -> None:
            super().__init__(code, "not there", path)

    got = pickle.loads(pickle.dumps(_ship.portable(Missing("/nowhere", 2))))
    assert type(got) is Missing
    assert (got.errno, got.strerror, got.filename) == (2, "not there", "/nowhere")
    assert str(got) == "[Errno 2] not there: '/nowhere'"


def test_an_exception_class_of_a_script_is_caught_by_its_own_name(tmp_path: Path) -> None:
    """A class defined in ``__main__`` with a two-argument __init__ comes back as itself."""
    code = """
        import numpy as np, numpool

        class NeedsTwoArgs(Exception):
            def __init__(self, a, b):
                super().__init__(a)
                self.b = b

        def boom(block):
            raise NeedsTwoArgs("from a worker", 2)

        for backend in ("processes", "pickle"):
            with numpool.Pool(backend, workers=2) as pool:
                try:
                    pool.apply(boom, np.ones(10), chunks=2)
                except NeedsTwoArgs as e:
                    print("caught", e.b, isinstance(e, numpool.RemoteError))
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    p = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["caught 2 False"] * 2, p.stdout + p.stderr


def test_a_block_run_again_by_itself_counts_as_a_retry(tmp_path: Path) -> None:
    """One job killed and run again (run_one: a call's first block) counts exactly once."""
    stats = Stats("apply", "processes")
    x = np.arange(6.0)
    marker = str(tmp_path / "died")
    with numpool.Pool("processes", workers=2, retries=1) as pool:
        backend = pool._backends.get("processes")
        got = _engine.run_one(
            backend, _errfuncs.die_once_in_a_worker, x, marker, os.getpid(), stats=stats
        )
    assert os.path.exists(marker) and np.array_equal(got, x * 2)
    assert stats.retries == 1


@pytest.mark.parametrize("chunks", [None, 8])
def test_last_stats_counts_a_first_block_killed_and_run_again(
    tmp_path: Path, chunks: int | None
) -> None:
    """The first block's worker killed once: the call still right, retries exactly 1."""
    x = np.linspace(0, 1, 10_000)
    marker = str(tmp_path / "died")
    with numpool.Pool("processes", workers=2, retries=1) as pool:
        y = pool.apply(_errfuncs.die_once_in_a_worker, x, marker, os.getpid(), chunks=chunks)
        assert os.path.exists(marker) and np.array_equal(y, x * 2)
        stats = pool.last_stats
        assert stats is not None and stats.retries == 1 and "ran again 1x" in str(stats)
