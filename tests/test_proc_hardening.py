"""Process-level faults: a fork of a program using numpool, daemonic callers, workers
that never return or exit 0, Ctrl-C on threads, shutdown while a call runs.

Whatever could hang runs in a subprocess with a generous timeout (a hang fails the
test instead of the suite); nothing here measures a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import funcs
import numpool

TESTS = Path(__file__).parent
#: how long a subprocess may take before it counts as hung (never a timing)
PATIENCE = 120


def _run(code: str, timeout: float = PATIENCE) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (tests/ on its path); a hang fails, killed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    return subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(TESTS),
        timeout=timeout,
        check=False,
    )


# --- a worker that exits 0 ------------------------------------------------------------


def test_a_worker_that_exits_0_is_named() -> None:
    with (
        numpool.Pool("processes", workers=2) as pool,
        pytest.raises(numpool.WorkerCrashedError, match=r"exited with code 0 \(os\._exit"),
    ):
        pool.apply(funcs.exit_zero, np.linspace(0, 1, 100), chunks=2)


# --- daemonic processes ------------------------------------------------------------------


def test_in_a_daemonic_process_processes_is_unavailable_and_auto_works() -> None:
    """multiprocessing.Pool's workers are daemonic: they may not start processes."""
    r = _run(
        """
        import multiprocessing as mp, funcs
        if __name__ == "__main__":
            with mp.get_context("spawn").Pool(1) as pool:
                for backend in ("processes", "auto", "threads"):
                    print(repr(pool.apply(funcs.numpool_here, (backend,))), flush=True)
        """
    )
    assert r.returncode == 0, r.stderr
    processes, auto, threads = (eval(line) for line in r.stdout.splitlines())
    assert processes[0] == "BackendUnavailableError", processes
    assert "daemonic" in processes[1] and "backend='threads'" in processes[1], processes
    assert auto[0] == "ok" and threads[0] == "ok", (auto, threads)
    assert "processes cannot run this call: this process is daemonic" in auto[1], auto[1]
