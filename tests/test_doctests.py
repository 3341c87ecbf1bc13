"""Every example in a docstring of numpool runs, as a doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import numpool

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(numpool.__path__, "numpool.")
    # (the bench: its examples are the bench; __main__ runs the command line)
    if not m.name.startswith("numpool.lab") and m.name != "numpool.__main__"
)


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


def test_there_are_examples_to_run() -> None:
    assert sum(len(_examples(m)) for m in MODULES) >= 5


@pytest.mark.parametrize("name", MODULES)
def test_the_docstring_examples_run(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in _examples(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
