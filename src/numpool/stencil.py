"""Stencils and filters through ``apply(..., overlap=k)``: choosing ``k``, checking it,
and where a block sits.

``overlap=k`` gives each block ``k`` more rows of ``x`` on each side, so that a
function whose output row ``i`` reads input rows ``i-k .. i+k`` (a stencil, a
filter) gives the same rows whatever the blocks. ``boundary=`` (scipy.ndimage's
modes) makes up the ``k`` rows beyond the array's two ends as well, so that
``apply(lambda b: ndimage.correlate(b, w, mode=m), x, overlap=k, boundary=m)`` is
``ndimage.correlate(x, w, mode=m)``, bit for bit, on every backend::

    rows beyond the start       x's rows                   rows beyond the end
    ┌──────────┐┌──────────────────────────────────────┐┌──────────┐
    │ k made up ││ block 0 │ block 1 │ ... │ block m-1 ││ k made up │
    └──────────┘└──────────────────────────────────────┘└──────────┘
    block i is given its rows and k on each side; only blocks 0 and m-1 get made-up
    rows (joined to theirs in the worker), and only along the split axis

This module holds what helps with that: :func:`halo` (the ``k`` a common
filter needs), :class:`BlockInfo` (what ``block_info=True`` passes func), and
the check that ``check_overlap=True`` runs (:func:`compare_layouts`), which
warns with :class:`OverlapWarning`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._errors import annotate
from ._inputs import BlockInfo, Inputs, make, told

__all__ = ["BlockInfo", "OverlapWarning", "compare_layouts", "halo"]


class OverlapWarning(UserWarning):
    """``check_overlap=True`` found that ``func`` gives other results for the same rows
    when they are cut into other blocks: ``overlap`` is too small for it, or it is not
    a stencil at all."""


def halo(
    size: int | Sequence[int] | None = None,
    *,
    sigma: float | Sequence[float] | None = None,
    truncate: float = 4.0,
    weights: Any = None,
    axis: int = 0,
) -> int:
    """The ``overlap`` a scipy.ndimage filter needs when ``x`` is split along ``axis``.

    A filter of ``size`` k (or weights with k rows) reads ``k // 2`` rows on
    each side of a row (an even k reads ``k // 2`` before, ``k // 2 - 1``
    after); a Gaussian of ``sigma`` s reads ``int(truncate * s + 0.5)``, as
    ``ndimage.gaussian_filter`` cuts its kernel. A filter given an
    ``origin`` reads ``abs(origin)`` rows more on one side: add them. Filters
    applied one after another add their halos up.

    Parameters
    ----------
    size : int or sequence of int, optional
        The filter's size (``uniform_filter``, ``median_filter``,
        ``maximum_filter``...): one for every axis, or one per axis.
    sigma : float or sequence of float, optional
        ``gaussian_filter``'s sigma (one, or one per axis).
    truncate : float, optional
        ``gaussian_filter``'s truncate. Default 4.0, as SciPy's.
    weights : array_like, optional
        The weights of ``correlate``/``convolve`` (or a footprint).
    axis : int, optional
        The axis ``apply`` splits (its ``axis=``). Default 0.

    Returns
    -------
    int
        The rows each block needs on each side: pass it as ``overlap=``.

    Examples
    --------
    >>> from numpool.stencil import halo
    >>> halo(5)
    2
    >>> halo(sigma=2.0)
    8
    >>> halo(weights=[[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    1
    """
    given = [v is not None for v in (size, sigma, weights)]
    if sum(given) != 1:
        raise TypeError("halo: pass exactly one of size=, sigma= and weights=")
    if weights is not None:
        shape = np.shape(weights)
        if not shape:
            raise ValueError("halo: weights must have at least one dimension")
        return int(shape[_axis(axis, len(shape))] // 2)
    if size is not None:
        k = _along(size, axis, "size")
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"halo: size must be an int >= 1 (or one per axis), got {size!r}")
        return int(k) // 2
    s = float(_along(sigma, axis, "sigma"))
    if not s >= 0 or not truncate >= 0:
        raise ValueError(f"halo: sigma and truncate must be >= 0, got {sigma!r}, {truncate!r}")
    return int(truncate * s + 0.5)


def _axis(axis: int, ndim: int) -> int:
    """``axis`` counted from 0 for ``ndim`` dimensions."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"halo: axis {axis} is out of range for {ndim} dimension(s)")
    return axis % ndim


def _along(value: Any, axis: int, name: str) -> Any:
    """One value, or the one for ``axis`` of one per axis."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"halo: {name} is empty")
        return value[_axis(axis, len(value))]
    return value


#: rows of the sample :func:`compare_layouts` cuts two ways: at least this many ...
SAMPLE_ROWS = 64
#: ... or this many times the halo, so that a func reading a few rows more than
#: ``overlap`` still reads past the sample's middle
SAMPLE_HALOS = 16
#: results closer than this (relative to their largest value) are rounding: a
#: running sum (``ndimage.uniform_filter``) starts anew at every block's first row
ROUNDING = 1e-10


def compare_layouts(func: Callable[..., Any], inputs: Inputs) -> None:
    """What ``check_overlap=True`` does: ``func`` on the call's first rows as one
    block, and as two; an :class:`OverlapWarning` when they differ (beyond rounding),
    with the overlap that makes them agree on this sample when one does.

    The sample is the first ``max(64, 16 * (overlap + 1))`` rows (all of them,
    if fewer), with their halo as the call gives it; func runs on it 3 times,
    and a few more when they differ, to find the overlap needed.
    """
    n = inputs.n
    k = inputs.overlap
    m = min(n, max(SAMPLE_ROWS, SAMPLE_HALOS * (k + 1)))
    if m < 2:
        return
    worst = _differ(func, inputs, m)
    if worst is None:
        return
    row, gap = worst
    needed = _needed(func, inputs, m)
    if needed is not None:
        fix = (
            f"on this sample overlap={needed} makes them agree: pass overlap={needed} "
            "(or more; numpool.stencil.halo gives what common filters need)"
        )
    else:
        fix = (
            f"no overlap up to {m // 4} makes them agree: func may depend on its whole "
            "block (a block's mean, a normalisation), which no split can give exactly"
        )
    warnings.warn(
        f"apply: check_overlap: func gave other results for rows 0:{m} when they were "
        f"cut into two blocks at row {m // 2} than as one block (overlap={k}): a "
        f"difference of {gap:.3g} at row {row}. func reads more than {k} row"
        f"{'s' * (k != 1)} on each side of a row; {fix}",
        OverlapWarning,
        stacklevel=_user_level(),
    )


def _user_level() -> int:
    """The stacklevel of the first frame outside numpool: the user's apply call (the
    calls in between differ from numpool.apply to Pool.apply)."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package
    ):
        frame, level = frame.f_back, level + 1
    return level


def _differ(func: Callable[..., Any], inputs: Inputs, m: int) -> tuple[int, float] | None:
    """Rows 0:m as one block and as two: None when they agree (to rounding), else the
    row and size of the largest difference."""
    h = m // 2
    one = _run(func, inputs, 0, m)
    two = [_run(func, inputs, 0, h), _run(func, inputs, h, m)]
    if not all(isinstance(r, np.ndarray) for r in (one, *two)):
        return None  # (the call itself says what is wrong with func's result)
    try:
        joined = np.concatenate(two, axis=inputs.axis)
    except ValueError:
        return None
    if joined.shape != one.shape:
        return None
    if np.array_equal(one, joined, equal_nan=one.dtype.kind in "fc"):
        return None
    if one.dtype.kind not in "fc":
        diff = np.moveaxis(one != joined, inputs.axis, 0).reshape(m, -1).any(axis=1)
        return int(np.argmax(diff)), float("nan")
    with np.errstate(all="ignore"):
        gap = np.abs(one - joined)
        scale = np.nanmax(np.abs(one)) if one.size else 0.0
    gap = np.where(np.isnan(one) & np.isnan(joined), 0.0, gap)
    if not np.nanmax(gap) > ROUNDING * scale:
        return None
    by_row = np.moveaxis(gap, inputs.axis, 0).reshape(m, -1).max(axis=1)
    row = int(np.argmax(by_row))
    return row, float(by_row[row])


def _run(func: Callable[..., Any], inputs: Inputs, a: int, b: int) -> Any:
    """func on own rows a:b of the call, trimmed, in this thread."""
    try:
        return inputs.cut(a, b).call(func)
    except Exception as e:
        raise annotate(e, told(e, f"check_overlap's sample, rows {a}:{b}")) from None


def _needed(func: Callable[..., Any], inputs: Inputs, m: int) -> int | None:
    """The least overlap (up to m // 4) with which the two layouts of rows 0:m agree,
    or None."""
    most = m // 4

    def agrees(k: int) -> bool:
        wider = make(
            inputs.args[0],
            inputs.args[1:],
            inputs.axis,
            k,
            "apply",
            inputs.boundary,
            inputs.cval,
            inputs.info,
        )
        return _differ(func, wider, m) is None

    lo, k = inputs.overlap, inputs.overlap + 1
    while k <= most and not agrees(k):
        lo, k = k, 2 * k
    if k > most:
        if most <= lo or not agrees(most):
            return None
        k = most
    while k - lo > 1:  # lo disagrees, k agrees
        mid = (lo + k) // 2
        lo, k = (lo, mid) if agrees(mid) else (mid, k)
    return k
