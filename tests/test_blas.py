"""BLAS/OpenMP thread budgets: computed, applied in workers, restored after calls."""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import funcs
import numpool
from numpool import _cpus, blas
from numpool._cpus import cgroup_cpu_limit, default_workers, usable_cpus


def blas_threads_now() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


needs_blas = pytest.mark.skipif(not blas_threads_now(), reason="no BLAS found by threadpoolctl")


def test_budget_never_oversubscribes() -> None:
    """workers * blas_threads <= usable cores, and at least one thread each."""
    for w in range(1, 9):
        b = blas.budget_for(w)
        assert b >= 1
        assert w * b <= max(usable_cpus(), w)
    assert blas.budget_for(4, 3) == 3


def test_default_workers_within_usable_cpus() -> None:
    assert 1 <= default_workers() <= usable_cpus()


def test_cgroup_quota_parsing(tmp_path) -> None:
    """cpu.max "150000 100000" means 1.5 cores; "max" means none."""
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "missing") is None


def _topology(root, lists: dict[int, tuple[str, str]]) -> None:
    for cpu, (leaf, text) in lists.items():
        (root / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (root / f"cpu{cpu}" / "topology" / leaf).write_text(text + "\n")


def test_physical_cores_are_the_distinct_cores_sysfs_lists(tmp_path) -> None:
    """Two hyper-threads per core: 4 logical CPUs are 2 cores; the older file name
    counts too; other entries (cpufreq, online) are not CPUs; nothing to read: 0
    (psutil's count then)."""
    new, old = "core_cpus_list", "thread_siblings_list"
    _topology(tmp_path / "a", {0: (new, "0,2"), 1: (new, "1,3"), 2: (new, "0,2"), 3: (new, "1,3")})
    (tmp_path / "a" / "cpufreq").mkdir()
    (tmp_path / "a" / "online").write_text("0-3\n")
    assert _cpus._sysfs_cores(str(tmp_path / "a")) == 2
    _topology(tmp_path / "b", {0: (old, "0"), 1: (old, "1"), 2: (old, "2")})
    assert _cpus._sysfs_cores(str(tmp_path / "b")) == 3
    (tmp_path / "c" / "cpu0").mkdir(parents=True)
    assert _cpus._sysfs_cores(str(tmp_path / "c")) == 0
    assert _cpus._sysfs_cores(str(tmp_path / "missing")) == 0


def test_physical_cores_and_memory_agree_with_psutil() -> None:
    """Read without psutil where the OS answers, they are psutil's figures."""
    import psutil

    assert _cpus.physical_cores() == (psutil.cpu_count(logical=False) or os.cpu_count())
    assert _cpus.total_memory() == psutil.virtual_memory().total
    ours, theirs = _cpus.available_memory(), psutil.virtual_memory().available
    assert ours is not None and abs(ours - theirs) < 256 << 20  # (read a moment apart)


def test_available_memory_reads_meminfo_and_falls_back(tmp_path) -> None:
    """MemAvailable in KiB; a file without it, or none, gives psutil's figure."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684760 kB\nMemAvailable:    1000 kB\n")
    assert _cpus.available_memory(str(meminfo)) == 1000 * 1024
    meminfo.write_text("MemTotal:       24684760 kB\n")
    assert _cpus.available_memory(str(meminfo)) is not None
    assert _cpus.available_memory(str(tmp_path / "missing")) is not None


@needs_blas
@pytest.mark.parametrize("backend", ["processes", "pickle"])
def test_worker_processes_run_with_the_limit(backend: str) -> None:
    """Inside a worker, threadpoolctl reports the pool's BLAS budget."""
    with numpool.Pool(backend, workers=2, blas_threads=1) as pool:
        infos = pool.map_arrays(funcs.blas_info, range(4))
    seen = {i["num_threads"] for info in infos for i in info if i["user_api"] == "blas"}
    assert seen == {1}


@needs_blas
def test_threads_backend_limits_during_the_call_and_restores() -> None:
    """threads: the process-wide limit holds during apply/map and is restored after."""
    before = blas_threads_now()
    with numpool.Pool("threads", workers=2, blas_threads=1) as pool:
        seen = pool.map_arrays(funcs.blas_info, range(3))
        assert {i["num_threads"] for info in seen for i in info if i["user_api"] == "blas"} == {1}
    assert blas_threads_now() == before


@needs_blas
def test_blas_threads_context_and_decorator() -> None:
    """numpool.blas_threads(n) limits inside and restores outside, as both forms."""
    before = blas_threads_now()
    with numpool.blas_threads(1):
        assert blas_threads_now() == {1}
    assert blas_threads_now() == before

    @numpool.blas_threads(1)
    def inner() -> set[int]:
        return blas_threads_now()

    assert inner() == {1}
    assert blas_threads_now() == before


@needs_blas
def test_process_budget_overlapping_callers() -> None:
    """Nested/overlapping budgets: the outermost sets, the last one out restores."""
    before = blas_threads_now()
    with blas.process_budget(1):
        with blas.process_budget(1):
            assert blas_threads_now() == {1}
        assert blas_threads_now() == {1}
    assert blas_threads_now() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_blas_threads_rejects_bad_counts(bad) -> None:
    with pytest.raises((TypeError, ValueError), match="blas_threads"):
        numpool.blas_threads(bad)


def test_matmul_under_budget_is_exact() -> None:
    """Limiting BLAS threads does not change matmul of exactly representable data."""
    a = np.ones((64, 64))
    with numpool.Pool("threads", workers=2) as pool:
        assert all((r == 64.0).all() for r in pool.map_arrays(np.matmul, [a] * 4, [a] * 4))


def test_the_controller_is_rebuilt_only_for_a_new_extension_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An import of Python code cannot load a BLAS: the cached controller stays (a
    rebuild scans every loaded library); a new extension module rebuilds it once."""
    import sys
    import types

    import threadpoolctl

    built: list[int] = []
    real = threadpoolctl.ThreadpoolController

    def counting() -> object:
        built.append(1)
        return real()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", counting)
    monkeypatch.setattr(blas, "_controller", None)
    first = blas._get_controller()
    assert len(built) == 1
    pure = types.ModuleType("numpool_test_pure")
    pure.__file__ = "/nowhere/numpool_test_pure.py"
    monkeypatch.setitem(sys.modules, "numpool_test_pure", pure)
    assert blas._get_controller() is first and len(built) == 1
    native = types.ModuleType("numpool_test_native")
    native.__file__ = "/nowhere/numpool_test_native" + blas._NATIVE_SUFFIXES[0]
    monkeypatch.setitem(sys.modules, "numpool_test_native", native)
    again = blas._get_controller()
    assert again is not first and len(built) == 2
    assert blas._get_controller() is again and len(built) == 2
