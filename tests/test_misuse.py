"""Misuse is a clear error, the same on every backend (issue 22).

``chunks=`` is a count of blocks, not a block size: a count whose blocks are too
small to pay for their hand-off is refused, with a message that spells out both
meanings. reduce's ``func`` must reduce a block to a value of fixed shape, and
``combine`` must keep its inputs' shape: elementwise work through reduce is
refused, not folded into nonsense. Legitimate partials (scalars, fixed-shape
arrays, tuples, dicts) still give the serial fold's bits.
"""

from __future__ import annotations

import inspect
import itertools
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

import numpool
from conftest import get_pool
from helpers import assert_same
from numpool._checks import (
    CHUNKS_PER_CORE,
    MIN_BLOCK_BYTES,
    SMALL_INPUT_CHUNKS,
    check_chunks,
    most_chunks,
)
from numpool._engine import bounds
from numpool._inputs import Inputs
from numpool._reduce import blocks, fold
from numpool._runner import Runner

BACKENDS = ["serial", "threads", "processes"]

#: the lead engineer's half of issue 22: Pool checks chunks= with check_chunks, and
#: Runner.reduce ends with _reduce.finish (the partials checked) instead of fold;
#: the tests of the whole call wait for it, the tests of the rules do not
POOL_CHECKS_CHUNKS = "check_chunks" in inspect.getsource(numpool.Pool.apply_with_stats)
RUNNER_CHECKS_PARTIALS = "_reduce.finish" in inspect.getsource(Runner.reduce)
needs_pool = pytest.mark.skipif(
    not POOL_CHECKS_CHUNKS, reason="needs Pool to call check_chunks (issue 22)"
)
needs_runner = pytest.mark.skipif(
    not RUNNER_CHECKS_PARTIALS, reason="needs Runner.reduce to call _reduce.finish (issue 22)"
)


def fake_inputs(rows: int, row_bytes: int) -> Inputs:
    """What check_chunks reads of an Inputs: the rows and the bytes per row."""
    return cast(Inputs, SimpleNamespace(n=rows, row_bytes=row_bytes))


# --- chunks: a count of blocks ---------------------------------------------------------

ACCEPTED, REFUSED = "accepted", "refused"

#: (rows, bytes per row, usable cores, chunks) -> what check_chunks does
CHUNKS_TABLE = [
    # the issue: np.exp over 10M float64 (80 MB) cut into 100,000 or 1,000,000 blocks
    (10_000_000, 8, 2, 100_000, REFUSED),
    (10_000_000, 8, 2, 1_000_000, REFUSED),
    # 80 MB in blocks of at least MIN_BLOCK_BYTES
    (10_000_000, 8, 2, 80_000_000 // MIN_BLOCK_BYTES, ACCEPTED),
    (10_000_000, 8, 2, 80_000_000 // MIN_BLOCK_BYTES + 1, REFUSED),
    # any size, up to CHUNKS_PER_CORE blocks per usable core
    (1_000, 8, 2, 2 * CHUNKS_PER_CORE, ACCEPTED),
    (100_000, 8, 2, 2 * CHUNKS_PER_CORE, ACCEPTED),
    (100_000, 8, 2, 800_000 // MIN_BLOCK_BYTES + 1, REFUSED),
    (100_000, 8, 64, 64 * CHUNKS_PER_CORE, ACCEPTED),
    # an input under SMALL_INPUT_BYTES: up to SMALL_INPUT_CHUNKS, more than the rows
    # is one row each (capped, as before)
    (1_000, 8, 2, 10_000, ACCEPTED),
    (100, 8, 1, 400, ACCEPTED),
    (30_000, 8, 2, SMALL_INPUT_CHUNKS, ACCEPTED),
    (30_000, 8, 2, SMALL_INPUT_CHUNKS + 1, REFUSED),
    # ... but not when the rows are many: 50,000 one-row blocks for chunks=100,000
    (50_000, 8, 2, 100_000, REFUSED),
    # big rows: many blocks of one row each are big blocks
    (1_000, 1 << 20, 2, 1_000, ACCEPTED),
    (0, 8, 2, 5, ACCEPTED),
    (5, 8, 2, None, ACCEPTED),
    (10_000_000, 8, 2, None, ACCEPTED),
]


@pytest.mark.parametrize(("rows", "row_bytes", "cores", "chunks", "expect"), CHUNKS_TABLE)
def test_chunks_table(rows: int, row_bytes: int, cores: int, chunks: Any, expect: str) -> None:
    """Each (rows, bytes per row, cores, chunks) is accepted as given or refused."""
    inputs = fake_inputs(rows, row_bytes)
    if expect == ACCEPTED:
        assert check_chunks(chunks, inputs, "apply", cores=cores) == chunks
        if chunks is not None:
            assert min(chunks, rows) <= most_chunks(rows, row_bytes, cores)
    else:
        with pytest.raises(ValueError, match="chunks is a count of blocks"):
            check_chunks(chunks, inputs, "apply", cores=cores)


def test_chunks_limit_depends_on_sizes_not_speed() -> None:
    """The limit is a function of rows, bytes per row and cores alone, and grows
    with each."""
    assert most_chunks(10_000_000, 8, 2) == max(2 * CHUNKS_PER_CORE, 80_000_000 // MIN_BLOCK_BYTES)
    assert most_chunks(10_000_000, 16, 2) > most_chunks(10_000_000, 8, 2)
    assert most_chunks(1_000, 8, 200) == 200 * CHUNKS_PER_CORE


def test_chunks_message_spells_out_both_meanings() -> None:
    """The refusal says chunks counts blocks (not a size, as dask reads it), what was
    asked for, the largest count allowed, and the count that a size would mean."""
    with pytest.raises(ValueError) as e:
        check_chunks(100_000, fake_inputs(10_000_000, 8), "apply", cores=2)
    msg = str(e.value)
    assert "chunks is a count of blocks, not a block size" in msg
    assert "100,000 blocks of ~100 rows" in msg
    assert f"chunks<={most_chunks(10_000_000, 8, 2):,}" in msg and "omit" in msg
    assert "dask" in msg and "blocks of 100,000 rows each" in msg and "chunks=100" in msg


def test_chunks_bigger_than_the_rows_meant_as_a_size() -> None:
    """chunks larger than the rows, read as a size, means one block: the message
    says so."""
    with pytest.raises(ValueError, match="pass chunks=1, or omit it"):
        check_chunks(100_000, fake_inputs(50_000, 8), "reduce", cores=2)


def test_chunks_type_errors_unchanged() -> None:
    """A chunks that is not a positive int is refused as before."""
    with pytest.raises(TypeError, match="chunks must be a positive int or None"):
        check_chunks(2.5, fake_inputs(10, 8), "apply", cores=2)
    with pytest.raises(ValueError, match="chunks must be >= 1"):
        check_chunks(0, fake_inputs(10, 8), "apply", cores=2)


@needs_pool
@pytest.mark.parametrize("backend", [*BACKENDS, "auto"])
def test_tiny_blocks_refused_on_every_backend(backend: str) -> None:
    """apply and reduce refuse chunks=100,000 over 1M float64 rows (80-byte blocks)
    before any work, on every backend, with the same message."""
    x = np.zeros(1_000_000)
    calls: list[int] = []

    def f(b: np.ndarray) -> np.ndarray:
        calls.append(1)
        return b

    match = "chunks is a count of blocks, not a block size"
    with pytest.raises(ValueError, match=match):
        numpool.apply(f, x, chunks=100_000, backend=backend)
    with pytest.raises(ValueError, match=match):
        numpool.reduce(np.sum, x, chunks=100_000, backend=backend)
    assert not calls


@needs_pool
def test_tiny_blocks_refused_by_plan() -> None:
    """plan refuses the same chunks as apply and reduce would."""
    x = np.zeros(1_000_000)
    for kind in ("apply", "reduce"):
        with pytest.raises(ValueError, match="chunks is a count of blocks, not a block size"):
            numpool.plan(np.exp, x, kind=kind, chunks=100_000)


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_chunks_than_rows_of_a_small_input_still_works(backend: str) -> None:
    """A small input may still be cut into one-row blocks (chunks above the rows)."""
    x = np.arange(100.0)
    assert_same(get_pool(backend).apply(np.sqrt, x, chunks=400), np.sqrt(x))
    assert get_pool(backend).reduce(np.sum, x, chunks=400) == fold(np.add, list(x))


# --- reduce: func must reduce, combine must keep the shape -----------------------------

X = np.random.default_rng(0).standard_normal(100)
M = np.random.default_rng(1).standard_normal((100, 25))

FIXED_SHAPE = "func must reduce each block to a value of fixed shape"
KEEP_SHAPE = "must return a value of its inputs' shape"

#: (name, func, x, combine, chunks, what the message says)
MISUSES: list[tuple[str, Any, np.ndarray, Any, int | None, str]] = [
    ("identity, one block", lambda b: b, X, np.add, None, FIXED_SHAPE),
    ("identity, equal blocks", lambda b: b, X, np.add, 4, FIXED_SHAPE),
    ("identity, unequal blocks", lambda b: b, X, np.add, 7, FIXED_SHAPE),
    ("identity, one-row blocks", lambda b: b, M, np.add, 100, FIXED_SHAPE),
    ("elementwise", lambda b: 2 * b + 1, X, np.add, 5, FIXED_SHAPE),
    ("a column", lambda b: b[:, 0], M, np.add, 4, FIXED_SHAPE),
    ("in a tuple", lambda b: (b.sum(), b), X, np.add, 4, "element 1 of what"),
    (
        "a gathering combine",
        lambda b: b.sum(keepdims=True),
        X,
        lambda u, v: np.concatenate([u, v]),
        4,
        KEEP_SHAPE,
    ),
    ("a combine that stacks", np.sum, X, lambda u, v: np.stack([u, v]), 3, KEEP_SHAPE),
    (
        "a tuple's combine",
        lambda b: (b.min(axis=0), b.max(axis=0)),
        M,
        (np.minimum, lambda u, v: np.concatenate([u, v])),
        4,
        "combine (element 1 of the tuples)",
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("func", "x", "combine", "chunks", "says"),
    [
        pytest.param(*m[1:], id=m[0], marks=[] if "combine" in m[0] else [needs_runner])
        for m in MISUSES
    ],
)
def test_reduce_misuse_is_a_clear_error(
    backend: str, func: Any, x: np.ndarray, combine: Any, chunks: int | None, says: str
) -> None:
    """A partial that follows its block, or a combine that changes the shape, is a
    ValueError saying what reduce needs, the same on every backend."""
    with pytest.raises(ValueError, match=r"reduce: ") as e:
        get_pool(backend).reduce(func, x, combine=combine, chunks=chunks)
    msg = str(e.value)
    assert says in msg, msg
    if says != KEEP_SHAPE and "tuples" not in says:
        assert "numpool.apply" in msg, msg


BINS = np.linspace(-4.0, 4.0, 13)  # 12 counts: as many as the rows of a block below

#: (name, func, x, combine, chunks): partials that are legitimate, some of them with
#: a block's length in their shape by coincidence
LEGITIMATE: list[tuple[str, Any, np.ndarray, Any, int | None]] = [
    ("numpy scalar", np.sum, X, np.add, 7),
    ("python scalar", lambda b: float(b.sum()), X, np.add, 4),
    ("fixed-shape array", lambda b: b.sum(axis=0), M, np.add, 4),
    ("gram matrix as wide as a block", lambda b: b.T @ b, M, np.add, 4),
    ("keepdims of one-row blocks", lambda b: b.sum(axis=0, keepdims=True), M, np.add, 100),
    ("histogram counts", lambda b: np.histogram(b, BINS)[0], X[:48], np.add, 4),
    (
        "min and max",
        lambda b: (b.min(axis=0), b.max(axis=0)),
        M,
        (np.minimum, np.maximum),
        6,
    ),
    (
        "dict",
        lambda b: {"n": len(b), "s": float(b.sum())},
        X,
        lambda u, v: {k: u[k] + v[k] for k in u},
        4,
    ),
    ("default blocks", np.max, X, np.maximum, None),
]


def _same(got: Any, want: Any) -> None:
    """Bit-for-bit equal partial results: arrays, scalars, tuples, dicts."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _same(g, w)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys()
        for k in want:
            _same(got[k], want[k])
    elif isinstance(want, np.ndarray):
        assert_same(np.asarray(got), want)
    else:
        assert type(got) is type(want) and np.asarray(got).tobytes() == np.asarray(want).tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("func", "x", "combine", "chunks"),
    [m[1:] for m in LEGITIMATE],
    ids=[m[0] for m in LEGITIMATE],
)
def test_reduce_legitimate_partials_pass(
    backend: str, func: Any, x: np.ndarray, combine: Any, chunks: int | None
) -> None:
    """Partials of one fixed shape (even one that equals a block's length) give the
    serial left-to-right fold of the same blocks, bit for bit."""
    got = get_pool(backend).reduce(func, x, combine=combine, chunks=chunks)
    edges = bounds(len(x), blocks(_inputs(x), chunks))
    want = fold(combine, [func(x[a:b]) for a, b in itertools.pairwise(edges)])
    _same(got, want)


def _inputs(x: np.ndarray) -> Inputs:
    """x as reduce's Inputs."""
    from numpool._inputs import make

    return make(x, (), 0, 0, "reduce")


def test_a_probe_that_raises_decides_nothing() -> None:
    """A partial with the block's length in its shape, from a func that cannot run on
    one row: the call goes on (nothing can be told), its result the serial fold."""

    def gram_of_two_or_more(b: np.ndarray) -> np.ndarray:
        if len(b) < 2:
            raise ValueError("needs two rows")
        return b.T @ b

    got = get_pool("serial").reduce(gram_of_two_or_more, M, chunks=4)
    want = fold(np.add, [gram_of_two_or_more(M[a : a + 25]) for a in range(0, 100, 25)])
    assert_same(got, want)
