"""How many cores numpool may use: affinity, cgroup quota, physical cores (and the
machine's memory, read as psutil reads it).

``os.cpu_count()`` answers "how many logical CPUs has the machine", which is
the wrong question in a container limited to 2 CPUs of a 64-core host, or
under ``taskset``. :func:`usable_cpus` answers "how many can this process
actually run on": the CPU affinity mask, further capped by a cgroup CPU quota
(v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``). :func:`default_workers` is the
smaller of that and the physical core count (sysfs, or psutil), since NumPy kernels
gain little from hyper-threads.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

__all__ = [
    "cgroup_cpu_limit",
    "default_workers",
    "physical_cores",
    "available_memory",
    "total_memory",
    "usable_cpus",
]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The cgroup CPU quota in cores (e.g. 1.5), or None when there is none."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    quota_us = _read(root / "cpu" / "cpu.cfs_quota_us") or _read(root / "cpu.cfs_quota_us")
    period_us = _read(root / "cpu" / "cpu.cfs_period_us") or _read(root / "cpu.cfs_period_us")
    if quota_us and period_us and int(quota_us) > 0:
        return int(quota_us) / int(period_us)
    return None


@functools.lru_cache(maxsize=1)
def usable_cpus() -> int:
    """Logical CPUs this process may run on (affinity mask and cgroup quota)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


#: Linux's CPU topology: one file per logical CPU naming the CPUs of its core
CPU_SYSFS = "/sys/devices/system/cpu"


@functools.lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores of the machine, or the logical count when unknown.

    On Linux, the distinct ``topology/core_cpus_list`` of the CPUs in sysfs (what
    psutil reads first, without its import: ~15 ms a process, on its first call);
    elsewhere, or where sysfs says nothing, psutil's count."""
    return _sysfs_cores(CPU_SYSFS) or _psutil_cores()


def _sysfs_cores(root: str) -> int:
    """Distinct cores in a sysfs CPU directory; 0 where it has none to read."""
    try:
        names = [n for n in os.listdir(root) if n.startswith("cpu") and n[3:].isdigit()]
    except OSError:
        return 0
    cores = set()
    for name in names:
        for leaf in ("core_cpus_list", "thread_siblings_list"):  # (newer, then older)
            text = _read(Path(root, name, "topology", leaf))
            if text is not None:
                cores.add(text)
                break
    return len(cores)


def _psutil_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def total_memory() -> int:
    """Bytes of the machine's memory: sysconf where it answers (Linux, macOS: what
    psutil reads too, without its import), else psutil's."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        pages = size = -1
    if pages > 0 and size > 0:
        return int(pages * size)
    import psutil

    return int(psutil.virtual_memory().total)


def default_workers() -> int:
    """Workers numpool starts when none are asked for: usable cores, capped at physical."""
    return max(1, min(usable_cpus(), physical_cores()))


#: Linux's memory figures, in KiB
MEMINFO = "/proc/meminfo"


def available_memory(meminfo: str = MEMINFO) -> int | None:
    """Bytes the machine can still hand out without swapping: ``MemAvailable`` of
    /proc/meminfo (what psutil reads on Linux, without its import), else psutil's
    figure; None when neither can say."""
    try:
        with open(meminfo, "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None
