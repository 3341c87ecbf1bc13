"""The driver's sequence, checked with a fake backend defined only here.

A backend is one class: a subclass of ``numpool.backends.Backend`` with a
``name`` registers itself, and ``auto = True`` offers it to the planner with
the costs it declares. This file adds one (``Recorder``: it runs every job at
once in the caller's thread and writes down what it was given), so that the
sequence of an auto call (measure, decide, run, learn) can be checked with no
thread or process, and shows that auto chooses a backend it was never told of
anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, ClassVar

import numpy as np
import pytest

import numpool
from numpool.backends import _base
from numpool.backends._base import BACKENDS, Backend
from numpool.planner import evidence
from numpool.planner.profile import Profile


class Recorder(Backend):
    """Two 'workers' that cost nothing and run each job at once, in order."""

    name = "recorder"
    auto = True
    in_process = True
    jobs: ClassVar[list[str]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        Recorder.jobs.append(getattr(fn, "__name__", repr(fn)))
        f: Future[Any] = Future()
        f.set_running_or_notify_cancel()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:
            f.set_exception(e)
        return f


# Defining it registered it: for this module's tests only (the fixture below), never
# for the other modules' pools, collected in the same session.
del BACKENDS["recorder"]


@pytest.fixture(autouse=True)
def recorder() -> Iterator[type[Recorder]]:
    """Recorder registered for this module's tests only."""
    evidence.cache.clear()
    BACKENDS["recorder"] = Recorder
    Recorder.jobs.clear()
    yield Recorder
    del BACKENDS["recorder"]
    evidence.cache.clear()


def test_auto_chooses_a_backend_registered_by_one_class(handoffs_cost: Profile) -> None:
    """Free hand-offs and two workers: the second call runs on it. (Its whole call
    then shows it is no faster than serial, as it runs everything in the caller, and
    later calls go by that evidence.) The real backends' hand-offs cost 10 s here
    (``handoffs_cost``): on the machine's own profile a loaded machine, whose first
    call read 2.3 ms for 5 us of work, made threads the choice."""
    x = np.random.default_rng(0).random(20_000)
    with numpool.Pool("auto", workers=2) as pool:
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        first = pool.last_stats
        assert first.backend == "serial" and not Recorder.jobs  # measured whole
        assert first.plan is not None and first.plan.backend == "recorder"
        assert "recorder" in first.plan.costs
        assert np.array_equal(pool.apply(np.exp, x), np.exp(x))
        assert pool.last_stats.plan.backend == "recorder"
        assert pool.last_stats.backend.endswith("recorder")
        # the caller ran row 0 and took blocks; one helper was handed over
        assert Recorder.jobs == ["_help"]
        for _ in range(3):
            assert np.array_equal(pool.apply(np.exp, x), np.exp(x))


def test_the_sequence_of_a_first_and_a_later_call(handoffs_cost: Profile) -> None:
    """First call: func(x) whole, timed, nothing submitted; the decision comes back as
    data (the plan) and the evidence is kept. Later call: run on the decision, and
    the call's wall time is added to the evidence. (The real backends' hand-offs
    cost 10 s, as above: the recorder is the one parallel choice, whatever the
    machine's load.)"""
    x = np.linspace(0, 1, 10_000)
    with numpool.Pool("auto", workers=2) as pool:
        pool.apply(np.sqrt, x)
        (ev,) = [e for k, e in evidence.cache.items() if np.sqrt in k]
        assert ev.calls == 1 and list(ev.recent) == ["serial"] and not Recorder.jobs
        pool.apply(np.sqrt, x)
        assert ev.calls == 2 and "recorder" in ev.recent and Recorder.jobs == ["_help"]


def test_a_fake_backend_leaves_the_real_ones_alone() -> None:
    """Registered for these tests only: the registry is as before afterwards."""
    assert "recorder" in BACKENDS and set(BACKENDS) >= {"serial", "threads", "processes"}
    assert all(b.name in BACKENDS for b in _base.live() if b.name != "recorder")


def test_a_registered_backend_can_be_named_and_takes_no_foreign_option() -> None:
    """Pool("recorder") runs on it; options it does not declare (Backend.options)
    are refused for it, as for any backend but dask."""
    x = np.arange(1000.0)
    with numpool.Pool("recorder", workers=2) as pool:
        assert np.array_equal(pool.apply(np.sqrt, x, chunks=4), np.sqrt(x))
        assert "recorder" in pool.last_stats.backend
    assert np.array_equal(numpool.apply(np.sqrt, x, backend="recorder"), np.sqrt(x))
    with pytest.raises(ValueError, match="address= is for backend='dask'"):
        numpool.Pool("recorder", address="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match=r"backend must be one of .*'recorder'"):
        numpool.Pool("recorderr")
