"""Hypothesis strategies for numpool's tests, in one place."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = [np.float32, np.float64, np.int64, np.complex128, np.bool_]


@st.composite
def arrays(draw: st.DrawFn, max_rows: int = 300) -> np.ndarray:
    """Arrays of 1-3 dimensions, any tested dtype, possibly non-contiguous or Fortran."""
    dtype = draw(st.sampled_from(DTYPES))
    rows = draw(st.integers(0, max_rows))
    tail = draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))
    elements = None
    if np.dtype(dtype).kind == "f":
        elements = st.floats(-1e3, 1e3, width=np.dtype(dtype).itemsize * 8)
    elif np.dtype(dtype).kind == "i":
        elements = st.integers(-(2**40), 2**40)
    elif np.dtype(dtype).kind == "c":
        elements = st.complex_numbers(max_magnitude=1e3, allow_nan=False, allow_infinity=False)
    a = draw(hnp.arrays(dtype, (rows * 2, *tail), elements=elements))
    layout = draw(st.sampled_from(["C", "F", "strided", "reversed-tail"]))
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided":
        a = a[::2]
    elif layout == "reversed-tail" and a.ndim > 1:
        a = a[..., ::-1]
    return a[:rows] if layout != "strided" else a


chunk_counts = st.one_of(st.none(), st.integers(1, 400))
