"""pytest plugin: joblib's own test suite, with numpool as joblib's default backend.

In CI (``.ci/run``, Python 3.11), from the repository root::

    PYTHONPATH=tests python -m pytest -p joblib_numpool_plugin \\
        --pyargs joblib.test.test_parallel [--numpool-only]

It makes ``"numpool"`` joblib's default backend for the whole session, so every
``Parallel()`` that names no backend (and every ``n_jobs`` of code under test) runs
on numpool's workers, then deselects the tests listed in :data:`NOT_APPLICABLE`,
each with the reason it does not hold for a backend that is not joblib's default.

``--numpool-only`` also deselects the tests parametrised with other backends only
(``[loky]``, ``[threading-multiprocessing]``, ...): they run joblib's own
backends, whatever the default, and say nothing about numpool's. What is left is
every test on the default backend and every one that names numpool (numpool
inside another backend, or another inside numpool). CI runs that subset: on the
2-core CI machine while other work ran, 233 passed, 10 skipped, 502 deselected in
41 s to 2 min 34 s (its CI step, venv and install included: 2 min 30 s); the
whole file took 6 min 0 s (745 tests).

Two numpool bugs kept this out of CI, both found here: the interpreter hung at
exit (2 runs in 3) in concurrent.futures' exit handler, joining a manager thread
that never ended. One waited for a worker that joined the loky workers of
``test_nested_loop[numpool-loky]`` before loky's exit hook could stop them (see
``processes._exit_threads_first``); the other read the rest of a result that a
worker killed by joblib's abort had half sent (``test_deadlock_with_generator``;
see ``processes._settle``). Both have regression tests in
tests/test_proc_hangs.py and tests/test_joblib.py.
"""

from __future__ import annotations

import multiprocessing.context

import pytest

#: test id (as in ``joblib/test/test_parallel.py``, parameters included or not) ->
#: why it cannot hold with numpool as the default backend
NOT_APPLICABLE: dict[str, str] = {
    "test_nested_loop[loky-numpool]": (
        "Parallel(backend='numpool') inside a loky worker: the worker never imports "
        "numpool (test_parallel does not), so joblib there does not know the name; "
        "a function that names the backend imports numpool itself, and then it works"
    ),
    "test_nested_loop[back_compat_backend-numpool]": (
        "as test_nested_loop[loky-numpool]: back_compat_backend is a LokyBackend"
    ),
    "test_backend_hinting_and_constraints": (
        "asserts that Parallel(prefer='processes') is a LokyBackend, i.e. that loky "
        "is the default backend; with numpool as the default it is a NumpoolBackend"
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    """--numpool-only: leave out the tests of other named backends only."""
    parser.addoption(
        "--numpool-only",
        action="store_true",
        help="deselect joblib tests parametrised with other backends only",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Make numpool joblib's default backend before joblib's tests are collected."""
    from joblib.parallel import register_parallel_backend

    from numpool.integrations.joblib import NumpoolBackend

    register_parallel_backend("numpool", NumpoolBackend, make_default=True)
    # joblib's tests carry markers of plugins numpool does not install
    for marker in ("asyncio", "no_cover", "thread_unsafe", "timeout"):
        config.addinivalue_line("markers", f"{marker}: a marker of joblib's tests")


def _reason(item: pytest.Item, numpool_only: bool) -> str | None:
    """Why ``item`` is deselected: listed by its exact id or by its test function,
    or (numpool_only) it names other backends only."""
    name = item.name
    listed = NOT_APPLICABLE.get(name) or NOT_APPLICABLE.get(name.split("[", 1)[0])
    if listed or not numpool_only:
        return listed
    named = _backends_named(item)
    if named and "numpool" not in named:
        return "runs other backends only: " + ", ".join(sorted(named))
    return None


def _backends_named(item: pytest.Item) -> set[str]:
    """The joblib backends ``item``'s parameters name (by name, class or instance)."""
    from joblib._parallel_backends import ParallelBackendBase
    from joblib.parallel import BACKENDS

    by_class = {cls: name for name, cls in BACKENDS.items()}
    callspec = getattr(item, "callspec", None)
    named: set[str] = set()
    for value in callspec.params.values() if callspec is not None else ():
        if isinstance(value, str) and value in BACKENDS:
            named.add(value)
        elif isinstance(value, ParallelBackendBase):
            named.add(by_class.get(type(value), type(value).__name__))
        elif isinstance(value, multiprocessing.context.BaseContext):
            named.add("multiprocessing")  # (joblib takes a context for that backend)
    return named


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of :data:`NOT_APPLICABLE` (reported as deselected)."""
    numpool_only = config.getoption("--numpool-only")
    kept, dropped = [], []
    for item in items:
        (dropped if _reason(item, numpool_only) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    """Say that joblib's default backend is numpool's here."""
    return f"joblib default backend: numpool ({len(NOT_APPLICABLE)} tests not applicable)"
