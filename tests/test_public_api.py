"""The public surface: small, sorted, complete, documented."""

from __future__ import annotations

import inspect

import numpool


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists every public name the package defines."""
    assert numpool.__all__ == sorted(numpool.__all__)
    public = {n for n in vars(numpool) if not n.startswith("_")}
    modules = {n for n in public if inspect.ismodule(getattr(numpool, n))}
    assert public - modules <= set(numpool.__all__)
    for name in numpool.__all__:
        assert hasattr(numpool, name)


def test_fixed_signatures() -> None:
    """The names and keywords other issues depend on."""
    assert list(inspect.signature(numpool.apply).parameters) == [
        "func",
        "x",
        "arrays",
        "out",
        "chunks",
        "backend",
        "workers",
        "blas_threads",
        "retries",
        "progress",
        "overlap",
        "axis",
        "timeout",
        "boundary",
        "cval",
        "block_info",
        "check_overlap",
        "rows",
    ]
    assert list(inspect.signature(numpool.reduce).parameters) == [
        "func",
        "x",
        "arrays",
        "combine",
        "chunks",
        "backend",
        "workers",
        "blas_threads",
        "retries",
        "progress",
        "axis",
        "timeout",
    ]
    for fn in (numpool.apply, numpool.reduce, numpool.Pool.apply, numpool.Pool.reduce):
        params = inspect.signature(fn).parameters
        assert params["arrays"].kind is inspect.Parameter.VAR_POSITIONAL
        after = list(params)[list(params).index("arrays") + 1 :]
        assert all(params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in after)
    assert list(inspect.signature(numpool.Pool.apply).parameters)[-2:] == ["overlap", "axis"]
    assert list(inspect.signature(numpool.map).parameters) == [
        "func",
        "iterables",
        "backend",
        "workers",
        "chunksize",
        "blas_threads",
        "retries",
        "progress",
        "timeout",
    ]
    params = list(inspect.signature(numpool.Pool).parameters)
    assert params == [
        "backend",
        "workers",
        "blas_threads",
        "retries",
        "address",
        "connect_timeout",
        "max_workers",
        "initializer",
        "initargs",
        "mp_context",
    ]


def test_exception_hierarchy() -> None:
    assert issubclass(numpool.WorkerCrashedError, numpool.NumpoolError)
    assert issubclass(numpool.WorkerCrashedError, RuntimeError)
    assert issubclass(numpool.SharedMemoryError, MemoryError)
    assert issubclass(numpool.SharedMemoryWarning, UserWarning)
    assert issubclass(numpool.BackendUnavailableError, ImportError)


def test_public_functions_have_examples() -> None:
    for obj in (numpool.apply, numpool.map, numpool.share, numpool.Pool, numpool.blas_threads):
        assert "Examples" in (obj.__doc__ or ""), obj
