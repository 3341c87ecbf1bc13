"""progress=: a bar or a callback of the rows or tasks done, from the calling thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import numpool
from numpool import _progress

BACKENDS = ["serial", "threads", "processes", "auto"]


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.threads: set[int] = set()

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))
        self.threads.add(threading.get_ident())


@pytest.mark.parametrize("backend", BACKENDS)
def test_apply_reports_every_row_from_the_calling_thread(backend: str) -> None:
    x = np.arange(200_000.0)
    for _ in range(2):  # (auto: the measuring first call, then a later one)
        seen = Seen()
        y = numpool.apply(np.sqrt, x, backend=backend, chunks=8, progress=seen)
        assert np.array_equal(y, np.sqrt(x))
        assert seen.calls[-1] == (len(x), len(x)), seen.calls
        done = [d for d, _ in seen.calls]
        assert done == sorted(done) and done[0] <= len(x)
        assert seen.threads == {threading.get_ident()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_reports_every_task(backend: str) -> None:
    a = [np.full(10, float(i)) for i in range(300)]
    seen = Seen()
    res = numpool.map(np.negative, a, backend=backend, chunksize=7, progress=seen)
    assert all(np.array_equal(r, -v) for r, v in zip(res, a, strict=True))
    assert seen.calls[-1] == (300, 300)


def test_redraws_are_rate_limited() -> None:
    seen = Seen()
    bar = _progress.Progress(10_000, "x", seen)
    for _ in range(10_000):
        bar.advance(1)
    bar.close()
    # the first draw, the last one (forced when done, and at close), and none between
    # (10,000 advances take far less than REDRAW_S on any machine; more draws than this
    # would only mean a slower machine, not a wrong result)
    assert seen.calls[0] == (0, 10_000) and seen.calls[-1] == (10_000, 10_000)
    assert len(seen.calls) <= 3 + 10_000 // 1000


def test_a_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    numpool.apply(np.sqrt, np.arange(100_000.0), backend="threads", progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "apply(np.sqrt)" in err or "apply(sqrt)" in err, err


def test_off_by_default_and_a_bad_value_is_refused() -> None:
    with pytest.raises(TypeError, match="progress must be True, False or a callable"):
        numpool.apply(np.sqrt, np.ones(10), progress="yes")  # type: ignore[arg-type]
    numpool.apply(np.sqrt, np.ones(10))
    assert getattr(_progress._local, "bar", None) is None


def test_an_error_closes_the_bar() -> None:
    seen = Seen()

    def boom(b: np.ndarray) -> np.ndarray:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        numpool.apply(boom, np.ones(1000), backend="threads", progress=seen)
    assert getattr(_progress._local, "bar", None) is None
    assert seen.calls  # drawn at the start and at close
