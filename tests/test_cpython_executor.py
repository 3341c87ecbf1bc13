"""CPython's own executor tests, run against numpool.Pool on every local backend.

CPython's ``test.test_concurrent_futures`` (a package from Python 3.13) writes its
generic tests once, as mixins that any ``Executor`` can take: submit and map
(:class:`ExecutorTest`), ``wait`` (:class:`WaitTests`), ``as_completed``
(:class:`AsCompletedTests`) and ``initializer=`` (:class:`InitializerMixin`).
Here each is combined with a mixin that makes the executor a ``numpool.Pool`` of
one backend, as CPython combines them with its own pools, so the drop-in is
checked by the tests the stdlib's pools pass, unchanged.

Left out, as they test the stdlib's classes and not the Executor contract:
``ThreadPoolExecutorTest``/``ProcessPoolExecutorTest`` (private attributes such as
``_processes``, thread names, the default worker count), ``test_deadlock`` (the
stdlib pool's own recovery: numpool's is in tests/test_faults.py), the shutdown
tests (they read ``_threads``/``_processes``; numpool's shutdown is in
tests/test_executor.py) and ``FailingInitializerMixin`` (it asserts the stdlib's
``BrokenExecutor`` on every later submit, where numpool's pool raises the
initializer's error and starts fresh workers on the next call: README,
"Executor").

Skipped where the interpreter ships without its test package (Debian's
python3 without libpython3-testsuite) or is older than 3.13.
"""

from __future__ import annotations

import sys

import pytest

if sys.version_info < (3, 13):
    pytest.skip("CPython's executor tests are a package from 3.13", allow_module_level=True)
try:
    from test.test_concurrent_futures import util
    from test.test_concurrent_futures.executor import ExecutorTest
    from test.test_concurrent_futures.test_as_completed import AsCompletedTests
    from test.test_concurrent_futures.test_init import InitializerMixin
    from test.test_concurrent_futures.test_wait import WaitTests
except ImportError as e:  # pragma: no cover (an interpreter without its tests)
    pytest.skip(f"CPython's test package is not installed: {e}", allow_module_level=True)

import functools

import numpool

BACKENDS = ("serial", "threads", "processes", "pickle", "auto")


def _mixin(backend: str) -> type:
    """An ExecutorMixin whose executor is ``numpool.Pool(backend, max_workers=...)``."""

    def pool(**kwargs: object) -> numpool.Pool:
        return numpool.Pool(backend, **kwargs)  # type: ignore[arg-type]

    name = f"Numpool{backend.capitalize()}Mixin"
    return type(name, (util.ExecutorMixin,), {"executor_type": staticmethod(pool)})


MIXINS = tuple(_mixin(b) for b in BACKENDS)

for tests in (ExecutorTest, WaitTests, AsCompletedTests):
    util.create_executor_tests(globals(), tests, executor_mixins=MIXINS)

for mixin in MIXINS:
    # InitializerMixin is itself an ExecutorMixin: put numpool's executor under it
    name = mixin.__name__.replace("Mixin", "InitializerTest")
    globals()[name] = type(
        name,
        (InitializerMixin, mixin, util.BaseTestCase),
        {"__module__": __name__},
    )

del tests, mixin, name, functools
