"""Warnings mean the same on every backend: one that ``func`` raises in a worker
process (NumPy's ``RuntimeWarning``, a ``warnings.warn`` of its own) meets the
caller's filters, as one raised serially or in a pool thread does. Before, it met
the worker's: printed on the worker's stderr, never recorded by
``catch_warnings``, never an error under ``-W error``."""

from __future__ import annotations

import traceback
import warnings
from typing import Any

import numpy as np
import pytest

import numpool
from conftest import get_pool
from numpool.backends import _warns

N = 4000


class Dialled(UserWarning):
    """A category of this module's own (importable by name in a worker)."""


def warn_and_divide(b: np.ndarray) -> np.ndarray:
    warnings.warn("a warning of func's", UserWarning, stacklevel=1)
    return 1.0 / b


def warn_task(i: int) -> int:
    warnings.warn(f"task {i}", Dialled, stacklevel=1)
    return i


def warn_then_fail(i: int) -> int:
    warnings.warn(f"before {i}", UserWarning, stacklevel=1)
    raise ValueError(f"failed {i}")


#: the line of each warning above, as the caller's run reports it
WARN_LINE = warn_and_divide.__code__.co_firstlineno + 1
DIVIDE_LINE = WARN_LINE + 1


def seen(record: list[warnings.WarningMessage]) -> list[tuple[str, type[Warning], str, int]]:
    return sorted(
        ((str(w.message), w.category, w.filename, w.lineno) for w in record),
        key=lambda t: (t[0], t[1].__name__, t[3]),
    )


def test_always_sees_every_warning_of_every_block(pool: numpool.Pool) -> None:
    """simplefilter("always"): each block's two warnings, from this file's lines."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = pool.apply(warn_and_divide, np.zeros(N), chunks=4)
    assert np.array_equal(got, np.full(N, np.inf))
    kinds = set(seen(record))
    assert kinds == {
        ("a warning of func's", UserWarning, __file__, WARN_LINE),
        ("divide by zero encountered in divide", RuntimeWarning, __file__, DIVIDE_LINE),
    }
    assert len(record) >= 2 * 4  # (every block; auto may run a first block of its own)
    assert sum(w.category is UserWarning for w in record) == len(record) // 2


def test_map_and_submit_send_each_task_s_warning_once(pool: numpool.Pool) -> None:
    """Every task runs once, and its warning reaches the caller once."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert list(pool.map(warn_task, range(6))) == list(range(6))
        assert pool.submit(warn_task, 6).result(timeout=60) == 6
    assert sorted(str(w.message) for w in record) == [f"task {i}" for i in range(7)]
    assert {w.category for w in record} == {Dialled}


def test_error_raises_the_warning_where_func_raised_it(pool: numpool.Pool) -> None:
    """simplefilter("error") (``-W error``): the warning is raised, with its type, by
    apply, map and submit, and the pool goes on working."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="a warning of func's"):
            pool.apply(warn_and_divide, np.ones(N), chunks=4)
        with pytest.raises(Dialled, match="task 0"):
            list(pool.map(warn_task, range(3)))
        with pytest.raises(Dialled, match="task 5"):
            pool.submit(warn_task, 5).result(timeout=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(pool.map(warn_task, range(3))) == [0, 1, 2]


def test_a_filter_on_one_message_picks_that_task(pool: numpool.Pool) -> None:
    """A filter matches the message as serially: only task 3 raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", message="task 3$")
        with pytest.raises(Dialled, match="task 3"):
            list(pool.map(warn_task, range(6)))
        assert list(pool.map(warn_task, [0, 1, 2, 4])) == [0, 1, 2, 4]


def test_a_filter_on_the_module_matches_func_s_module(pool: numpool.Pool) -> None:
    """A filter on the module name (what ``-W error::UserWarning:mymodule`` sets)
    matches the module whose code raised the warning, in a worker as here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", module=__name__)
        with pytest.raises(Dialled):
            list(pool.map(warn_task, range(2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", module="not_" + __name__)
        assert list(pool.map(warn_task, range(2))) == [0, 1]


def test_ignore_leaves_nothing(pool: numpool.Pool) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message="a warning of func's")
        warnings.simplefilter("ignore", RuntimeWarning)
        pool.apply(warn_and_divide, np.zeros(N), chunks=4)
        list(pool.map(warn_task, range(3)))
    line = warn_task.__code__.co_firstlineno + 1
    assert seen(record) == [(f"task {i}", Dialled, __file__, line) for i in range(3)]


def test_default_shows_each_line_once_across_calls_and_workers(pool: numpool.Pool) -> None:
    """simplefilter("default"): once per line of a module, all blocks and both calls
    together, as serially (the caller's registry decides, the workers' too)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("default")
        for _ in range(2):
            pool.apply(warn_and_divide, np.zeros(N), chunks=4)
    assert seen(record) == [
        ("a warning of func's", UserWarning, __file__, WARN_LINE),
        ("divide by zero encountered in divide", RuntimeWarning, __file__, DIVIDE_LINE),
    ]


@pytest.mark.parametrize("backend", ["serial", "threads", "processes", "pickle", "auto"])
def test_warnings_before_an_error_come_with_it(backend: str) -> None:
    """A task that warns and then raises: the caller gets the warning, then the
    error (on Dask's worker processes the worker prints it: documented)."""
    pool = get_pool(backend)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="failed 2"):
            pool.submit(warn_then_fail, 2).result(timeout=60)
    assert [str(w.message) for w in record] == ["before 2"]


def test_a_category_made_at_run_time_travels_both_ways(pool: numpool.Pool) -> None:
    """A category no worker can import (made in a function, as in a notebook) goes
    by value with the filters and the func, and is the caller's own class again."""

    class Local(UserWarning):
        pass

    def warn_local(i: int) -> int:
        warnings.warn(f"local {i}", Local, stacklevel=1)
        return i

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert list(pool.map(warn_local, range(2))) == [0, 1]
    got = sorted((str(w.message), w.category) for w in record)  # (as they finished)
    assert got == [("local 0", Local), ("local 1", Local)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Local)
        with pytest.raises(Local, match="local 0"):  # (one task: none left running)
            list(pool.map(warn_local, [0]))


def test_code_sent_by_value_keeps_its_file(pool: numpool.Pool) -> None:
    """A lambda travels by value; its warning and its traceback name this file and
    line (cloudpickle alone names them ``<dynamic-code>``)."""
    line = test_code_sent_by_value_keeps_its_file.__code__.co_firstlineno + 4
    warn_here = lambda i: warnings.warn("by value", UserWarning, stacklevel=1)  # noqa: E731

    def fail_here(i: int) -> int:
        raise KeyError(i)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        list(pool.map(warn_here, range(2)))
    assert {(w.filename, w.lineno) for w in record} == {(__file__, line)}
    with pytest.raises(KeyError) as info:
        pool.submit(fail_here, 1).result(timeout=60)
    text = "".join(traceback.format_exception(info.value))
    assert "<dynamic-code>" not in text
    assert f'File "{__file__}", line {line + 3}, in fail_here' in text


# ---- the module's own units -------------------------------------------------------


def test_to_send_packs_the_filters_again_only_when_they_change() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        first = _warns.to_send()
        assert _warns.to_send() is first
        warnings.filterwarnings("error", message="x")
        assert _warns.to_send() != first


def test_emit_never_raises() -> None:
    """A warning that the caller's filters now make an error (they changed since its
    job left) is shown instead: emit runs where no one could catch it."""
    shown: list[Any] = []
    heard = _warns._pack([(UserWarning("late"), UserWarning, "f.py", 3, None)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.showwarning = lambda *a: shown.append(a[:4])
        _warns.emit(heard)
        _warns.emit(b"not a pickle")
    assert [(str(m), c, f, n) for m, c, f, n in shown[:1]] == [("late", UserWarning, "f.py", 3)]
    assert "was lost" in str(shown[1][0])


def test_run_hears_what_passes_and_restores_the_filters() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("always", Dialled)
        sent = _warns.to_send()
    before = list(warnings.filters)
    value, heard = _warns.run(sent, lambda: (warn_task(1), warn_and_divide(np.ones(1)))[0])
    assert value == 1 and heard is not None
    assert list(warnings.filters) == before
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _warns.emit(heard)
    assert [(str(w.message), w.category) for w in record] == [("task 1", Dialled)]
    assert _warns.run(sent, int) == (0, None)
