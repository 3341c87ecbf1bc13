"""Assertions and probes shared by the tests."""

from __future__ import annotations

import os
import re

import numpy as np

from numpool import shm


def segments(owner: int | None = None) -> set[str]:
    """This test process's numpool segments in the shared-memory directory (those its
    worker processes made carry its pid too): another numpool program running on the
    machine meanwhile must not fail the suite. ``owner``: another process's."""
    me = os.getpid() if owner is None else owner
    return {n for n in os.listdir(shm.shm_dir()) if shm.owner_of(n) == me}


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-for-bit equality, including dtype and shape."""
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


#: the lines a resource_tracker traceback is made of: frames (indented), blank lines,
#: the chained-exception separator, and the FileNotFoundError of the unlink it tried
_TRACKER_LINE = (
    r"(?:  .*\n|\n|Traceback \(most recent call last\):\n"
    r"|During handling of the above exception, another exception occurred:\n"
    r"|FileNotFoundError: \[Errno 2\] No such file or directory\n)"
)
_TRACKER_TRACEBACK = re.compile(
    rf"Traceback \(most recent call last\):\n{_TRACKER_LINE}*?"
    r"UserWarning: resource_tracker: '/mp-[^']*': \[Errno 2\] No such file or directory\n?"
)


def without_tracker_noise(err: str) -> str:
    """``err`` without CPython's resource_tracker warnings about multiprocessing's own
    semaphores (the executor's queue locks, named ``/mp-...``), and nothing else.

    Seen in CI runs on Python 3.10, 3.11 and 3.13, at the exit of scripts that use
    processes (a README block, nested processes, the soak test that kills workers),
    about once per three suite runs: the tracker of the script's process tree warned
    of one leaked semaphore it then found already unlinked (``[Errno 2]``), so the
    process had unlinked it and its "unregister" was lost. Not reproduced in 24
    local runs of two of those scripts; the cause is not found (see the closing note
    of issue 22).
    Under ``-W error`` (which the tracker inherits) the same warning comes as the
    tracker's traceback ending in ``UserWarning: resource_tracker: '/mp-...': [Errno
    2]``; that traceback goes too, and only one made of the tracker's frames.
    Every other line on stderr, numpool's own warnings included, still fails a test.
    """
    err = _TRACKER_TRACEBACK.sub("", err)
    out: list[str] = []
    skip_next = False
    for line in err.splitlines(keepends=True):
        if skip_next and line.lstrip().startswith("warnings.warn("):
            skip_next = False
            continue
        skip_next = False
        if "resource_tracker" in line and (
            "leaked semaphore" in line or ("'/mp-" in line and "No such file" in line)
        ):
            skip_next = True
            continue
        out.append(line)
    return "".join(out)
