"""numpool._walkers: a whole call in the caller (``whole``), with and without ``out=``.

A unary ufunc writes straight into a fitting ``out`` (no temporary, no copy); it
must give, bit for bit, what ``func(x)`` copied into ``out`` gives, and the same
errors, for every dtype, in place too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpool._inputs import Inputs
from numpool._inputs import make as make_inputs
from numpool._walkers import whole, writes_straight

UFUNCS = [np.exp, np.sqrt, np.negative, np.isnan, np.floor, np.sin, np.abs, np.invert]
DTYPES = ["float64", "float32", "int64", "int8", "uint16", "bool", "complex128"]


def _outcome(func: Any, x: np.ndarray, out: np.ndarray) -> tuple[str, Any]:
    """What whole() gives: ("ok", out's bytes) or ("error", its type and message)."""
    try:
        with np.errstate(all="ignore"):
            got = whole(func, Inputs.one(x), out)
    except Exception as e:  # (the comparison is of errors too)
        return "error", (type(e).__name__, str(e).replace(repr(func), "f"))
    assert got is out
    return "ok", out.tobytes()


@settings(max_examples=200, deadline=None)
@given(
    func=st.sampled_from(UFUNCS),
    dtype=st.sampled_from(DTYPES),
    out_dtype=st.sampled_from([None, *DTYPES]),  # None: the dtype func(x) has
    rows=st.integers(1, 40),
    in_place=st.booleans(),
    read_only=st.booleans(),
)
def test_a_ufunc_writing_into_out_gives_what_a_copy_into_out_gives(
    func: np.ufunc,
    dtype: str,
    out_dtype: str | None,
    rows: int,
    in_place: bool,
    read_only: bool,
) -> None:
    x = (np.arange(rows) % 7 - 2).astype(dtype)
    try:
        with np.errstate(all="ignore"):
            native = func(x).dtype
    except TypeError:
        native = np.dtype("float64")  # (no loop: both ways must raise the same)
    want_dtype = np.dtype(out_dtype or native)

    def fresh_out() -> tuple[np.ndarray, np.ndarray]:
        xx = x.copy()
        o = xx if in_place and want_dtype == xx.dtype else np.zeros(rows, want_dtype)
        o.flags.writeable = not read_only
        return xx, o

    def usual(b: np.ndarray) -> Any:  # (not a ufunc: the copy into out)
        return func(b)

    x1, o1 = fresh_out()
    x2, o2 = fresh_out()
    assert _outcome(func, x1, o1) == _outcome(usual, x2, o2)
    assert np.array_equal(x1, x2) or (o1 is x1 and o2 is x2)


@pytest.mark.parametrize("shift", [1, -1])
def test_an_out_overlapping_x_without_being_x_is_refused_as_before(shift: int) -> None:
    buf = np.linspace(0, 1, 101)
    x, out = (buf[1:], buf[:-1]) if shift == 1 else (buf[:-1], buf[1:])
    with pytest.raises(ValueError, match="overlaps an input array"):
        whole(np.exp, Inputs.one(x), out)


def test_which_calls_write_straight_into_out() -> None:
    """The straight way is taken for a fitting out (in place too), and only then."""
    from numpool._inputs import make
    from numpool._walkers import _writes_into

    x = np.linspace(0, 1, 50)
    ro = np.empty(50)
    ro.flags.writeable = False
    one = Inputs.one(x)
    assert _writes_into(np.exp, one, np.empty(50))
    assert _writes_into(np.exp, one, x)  # in place
    assert _writes_into(np.isnan, one, np.empty(50, bool))
    assert not _writes_into(np.exp, one, np.empty(50, np.float32))  # (casting: refused)
    assert not _writes_into(np.exp, one, ro)
    assert not _writes_into(np.exp, one, np.empty(49))
    assert not _writes_into(np.exp, one, [0.0] * 50)  # type: ignore[arg-type]
    assert not _writes_into(lambda b: np.exp(b), one, np.empty(50))  # (not a ufunc)
    assert not _writes_into(np.add, make(x, (x,), 0, 0, "apply"), np.empty(50))
    assert not _writes_into(np.exp, Inputs.one(x.astype(object)), np.empty(50, object))


@pytest.mark.parametrize(
    ("func", "others", "overlap", "want"),
    [
        (np.exp, (), 0, True),  # a ufunc over x: written straight into the output
        (np.add, (np.ones(8),), 0, True),
        (np.add, (2.0,), 0, True),  # (a scalar is one of the ufunc's inputs)
        (np.add, (), 0, False),  # two inputs, one argument: func(x) raises, as it does
        (np.divmod, (np.ones(8),), 0, False),  # two outputs
        (np.exp, (), 1, False),  # a halo: rows are trimmed off a temporary
        (lambda v: np.exp(v), (), 0, False),  # makes its own result
    ],
)
def test_writes_straight_names_the_blocks_written_into_the_output(
    func: Any, others: tuple[Any, ...], overlap: int, want: bool
) -> None:
    """What pulled blocks are sized by (planner.model.blocks, ``direct``): only a ufunc
    of one output over all the call's arguments, with no halo, makes no temporary."""
    inputs = make_inputs(np.ones(8), others, 0, overlap, "apply")
    assert writes_straight(func, inputs) is want


_X = np.ones((6, 3))


@pytest.mark.parametrize(
    ("func", "others", "axis", "overlap", "want"),
    [
        (np.exp, (), 0, 0, ((3,), np.dtype(np.float64))),
        (np.exp, (), 1, 0, ((6,), np.dtype(np.float64))),  # (tail: without the split axis)
        (np.isnan, (), 0, 0, ((3,), np.dtype(bool))),
        (np.add, (np.ones((6, 3), np.int8),), 0, 0, ((3,), np.dtype(np.float64))),
        (np.exp, (), 0, 1, None),  # a halo
        (np.add, (2.0,), 0, 0, None),  # a scalar: the head tells its dtype
        (np.add, (np.ones(3),), 0, 0, None),  # broadcast: not x's shape
        (np.matmul, (np.ones((6, 3)),), 0, 0, None),  # a gufunc (and BLAS)
        (np.divmod, (np.ones((6, 3)),), 0, 0, None),  # two outputs
        (lambda v: np.exp(v), (), 0, 0, None),  # not a ufunc
        (np.frompyfunc(abs, 1, 1), (), 0, 0, None),  # object loops
    ],
)
def test_which_calls_know_their_layout_before_func_runs(
    func: Any, others: tuple[Any, ...], axis: int, overlap: int, want: Any
) -> None:
    """Only an elementwise ufunc of one output over arrays of x's shape and numeric
    dtypes, with no halo, skips the head (numpool._runner.Runner._run)."""
    from numpool._walkers import known_layout

    assert known_layout(func, make_inputs(_X, others, axis, overlap, "apply")) == want


@pytest.mark.parametrize("kind", ["O", "U", "M", "V"])
def test_a_dtype_whose_values_matter_has_no_layout_before_func_runs(kind: str) -> None:
    from numpool._walkers import known_layout

    x = {"O": _X.astype(object), "U": _X.astype(str), "M": np.zeros((6, 3), "M8[s]")}.get(
        kind, np.zeros((6, 3), "V8")
    )
    assert known_layout(np.isnat if kind == "M" else np.negative, Inputs.one(x)) is None
    assert known_layout(np.exp, Inputs.one(_X.astype(">f8"))) is None  # (not native)


def _numeric_ufunc_cases() -> list[tuple[Any, tuple[np.dtype, ...]]]:
    ufuncs = [v for v in vars(np).values() if isinstance(v, np.ufunc)]
    codes = "?bBhHiIlLqQefdgFDG"
    cases = []
    for f in sorted(set(ufuncs), key=lambda f: f.__name__):
        if f.signature is None and f.nout == 1 and f.nin in (1, 2):
            for i, c in enumerate(codes):  # (two inputs: each dtype with itself and next)
                d = np.dtype(c)
                cases.append((f, (d,) * f.nin))
                if f.nin == 2:
                    cases.append((f, (d, np.dtype(codes[(i + 1) % len(codes)]))))
    return cases


def test_the_known_layout_is_what_a_call_gives_for_every_ufunc_and_dtype() -> None:
    """known_layout's dtype (``ufunc.resolve_dtypes``) against the dtype of a real
    call, for every elementwise NumPy ufunc of one output and numeric dtypes: the
    same, or both fail (no loop)."""
    from numpool._walkers import known_layout

    checked = 0
    for func, dtypes in _numeric_ufunc_cases():
        args = [np.ones((4, 2), d) for d in dtypes]
        inputs = make_inputs(args[0], tuple(args[1:]), 0, 0, "apply")
        with np.errstate(all="ignore"):
            try:
                got = func(*args).dtype
            except Exception:
                got = None
        layout = known_layout(func, inputs)
        if got is None:
            assert layout is None, (func, dtypes)
        elif layout is not None:
            assert layout == ((2,), got), (func, dtypes)
            checked += 1
    assert checked > 500  # (most of them are known)
