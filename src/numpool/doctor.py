"""``numpool doctor``: what this machine gives numpool, what is wrong, what to do.

:func:`examine` gathers facts (cores by affinity and cgroup quota, BLAS and
OpenMP pools via threadpoolctl, the shared-memory directory, segments left
by dead processes, the start method, versions, and the machine profile that
``backend="auto"`` predicts with: see ``numpool.planner.profile``); :func:`advise` turns them
into concrete recommendations; :func:`render` prints both for people.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import sys
from typing import Any

import numpy as np

from . import shm
from ._cpus import cgroup_cpu_limit, default_workers, physical_cores, usable_cpus
from ._version import __version__
from .backends.processes import ProcessesBackend
from .planner.profile import Profile, describe, measure_processes

__all__ = ["advise", "examine", "render", "time_processes"]

#: environment variables that change what numpool or BLAS do
ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMPOOL_SHM_DIR",
    "NUMPOOL_SHM_LIMIT",
    "NUMPOOL_SPILL_DIR",
    "NUMPOOL_ARENA_BYTES",
)
_GiB = 1 << 30
_MiB = 1 << 20


def _space(directory: str) -> dict[str, Any]:
    try:
        st = os.statvfs(directory)
    except OSError as e:
        return {"dir": directory, "error": str(e)}
    return {
        "dir": directory,
        "total_bytes": st.f_blocks * st.f_frsize,
        "free_bytes": st.f_bavail * st.f_frsize,
    }


def _segments() -> dict[str, Any]:
    """numpool's segments, as ``shm.scan`` finds them (strangers in the directory are
    never listed, let alone removed)."""
    live: list[dict[str, Any]] = []
    orphans: list[dict[str, Any]] = []
    for e in shm.scan():
        if e.lock:
            continue
        entry = {"path": e.path, "owner_pid": e.pid, "bytes": e.bytes}
        (live if e.alive else orphans).append(entry)
    return {"live": live, "orphans": orphans}


def _start_method() -> str:
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def time_processes(workers: int) -> tuple[float, float]:
    """(start per worker, round trip) of a fresh processes backend of ``workers``, for
    the machine profile (which starts no worker processes itself)."""
    backend = ProcessesBackend(workers, 1)
    try:
        return measure_processes(backend.start, backend.submit, workers)
    finally:
        backend.shutdown()


def examine(clean: bool = False, remeasure: bool = False) -> dict[str, Any]:
    """Facts about this machine for numpool; ``clean``: remove dead processes' segments;
    ``remeasure``: measure the machine profile again (worker processes included)."""
    from threadpoolctl import threadpool_info

    from .planner import profile

    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    cleaned = [os.path.basename(p) for p in shm.sweep()] if clean else []
    try:
        limit = shm.shm_limit()
    except ValueError as e:
        limit = None
        limit_error: str | None = str(e)
    else:
        limit_error = None
    import psutil

    mem = psutil.virtual_memory()
    return {
        "versions": {
            "numpool": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
        "cores": {
            "logical": os.cpu_count(),
            "affinity": affinity,
            "cgroup_quota": cgroup_cpu_limit(),
            "usable": usable_cpus(),
            "physical": physical_cores(),
            "default_workers": default_workers(),
        },
        "memory": {"total_bytes": mem.total, "available_bytes": mem.available},
        "threadpools": [
            {k: i.get(k) for k in ("user_api", "internal_api", "prefix", "version", "num_threads")}
            | {"filepath": i.get("filepath")}
            for i in threadpool_info()
        ],
        "env": {k: os.environ[k] for k in ENV if k in os.environ},
        "shm": _space(shm.shm_dir()) | {"limit_bytes": limit, "limit_error": limit_error},
        "spill": _space(shm.spill_dir()),
        "segments": _segments(),
        "cleaned": cleaned,
        "start_method": _start_method(),
        "profile": profile.as_json(
            profile.store.remeasure(time_processes, workers=default_workers())
            if remeasure
            else profile.store.get()
        ),
    }


def advise(facts: dict[str, Any]) -> list[str]:
    """Concrete recommendations from :func:`examine`'s facts (empty: all is well)."""
    tips = []
    cores = facts["cores"]
    env = facts["env"]
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if env.get(var) == "1" and cores["usable"] > 1:
            tips.append(
                f"{var}=1 is set globally: BLAS calls in the main process run single-threaded "
                f"(matmul on 1 of {cores['usable']} cores). numpool budgets BLAS threads per "
                "worker itself; unset it, or use threadpoolctl around the code that needs it."
            )
            break
    if cores["usable"] < (cores["logical"] or 0):
        why = "a cgroup CPU quota" if cores["cgroup_quota"] is not None else "the CPU affinity"
        tips.append(
            f"This process may use {cores['usable']} of the machine's {cores['logical']} "
            f"logical CPUs ({why}); numpool sizes its pools to {cores['default_workers']} "
            "workers. BLAS libraries that size themselves by the whole machine oversubscribe "
            "the quota outside numpool calls."
        )
    pools = facts["threadpools"]
    for p in pools:
        n = p.get("num_threads") or 0
        if n > cores["usable"]:
            tips.append(
                f"{p['internal_api']} ({p['user_api']}) is set to {n} threads, more than the "
                f"{cores['usable']} usable cores: calls outside numpool oversubscribe. Set "
                f"OMP_NUM_THREADS={cores['usable']} (numpool budgets its own calls)."
            )
    omp = {p["internal_api"] for p in pools if p["user_api"] == "openmp"}
    if len(omp) > 1:
        tips.append(
            f"Several OpenMP runtimes are loaded ({', '.join(sorted(omp))}): each keeps its own "
            "thread pool, so cores may be oversubscribed; prefer packages built on one runtime."
        )
    shm_ = facts["shm"]
    total = shm_.get("total_bytes", 0)
    if "error" in shm_:
        tips.append(f"The shared-memory directory {shm_['dir']} is unusable: {shm_['error']}.")
    elif total < _GiB:
        tips.append(
            f"{shm_['dir']} holds only {total / _MiB:.0f} MiB (a container default is 64 MiB): "
            "the processes backend spills bigger arrays to file-backed maps in "
            f"{facts['spill']['dir']}, which is slower. Enlarge it (docker: --shm-size=8g; "
            "Linux: mount -o remount,size=8G /dev/shm) or set NUMPOOL_SHM_DIR to a larger tmpfs."
        )
    if shm_.get("limit_error"):
        tips.append(shm_["limit_error"])
    orphans = facts["segments"]["orphans"]
    if orphans:
        size = sum(o["bytes"] for o in orphans)
        tips.append(
            f"{len(orphans)} numpool segment(s) ({size / _MiB:.1f} MiB) belong to processes "
            "that are gone (killed with SIGKILL?): `numpool doctor --clean` removes them (the "
            "next numpool process also does)."
        )
    if facts["start_method"] != "forkserver":
        tips.append(
            "No forkserver on this platform: worker processes start with spawn, which takes "
            "longer (~1 s); keep a Pool open across calls."
        )
    if cores["physical"] < cores["usable"]:
        tips.append(
            f"{cores['usable']} usable logical CPUs on {cores['physical']} physical cores: "
            "numpool starts one worker per physical core (hyper-threads rarely help NumPy)."
        )
    return tips


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / _GiB:.1f} GiB" if n >= _GiB else f"{n / _MiB:.0f} MiB"


def render(facts: dict[str, Any], tips: list[str]) -> str:
    """The facts and recommendations as plain text."""
    v, c, s = facts["versions"], facts["cores"], facts["shm"]
    quota = c["cgroup_quota"]
    lines = [
        f"numpool {v['numpool']}, Python {v['python']}, NumPy {v['numpy']} ({v['platform']})",
        "",
        f"cores     usable {c['usable']} (affinity {c['affinity']}, cgroup quota "
        f"{'none' if quota is None else f'{quota:g}'}), logical {c['logical']}, "
        f"physical {c['physical']} -> {c['default_workers']} workers by default",
        f"memory    {_size(facts['memory']['available_bytes'])} available of "
        f"{_size(facts['memory']['total_bytes'])}",
        f"processes start method {facts['start_method']}",
        f"shm       {s['dir']}: {_size(s.get('free_bytes'))} free of "
        f"{_size(s.get('total_bytes'))}"
        + (f", limit {_size(s['limit_bytes'])}" if s.get("limit_bytes") else "")
        + f"; spill to {facts['spill']['dir']} ({_size(facts['spill'].get('free_bytes'))} free)",
    ]
    seg = facts["segments"]
    lines.append(
        f"segments  {len(seg['live'])} in use by live processes "
        f"({_size(sum(e['bytes'] for e in seg['live']))}), {len(seg['orphans'])} left by dead "
        "ones" + (f"; removed {len(facts['cleaned'])}" if facts["cleaned"] else "")
    )
    lines.append("BLAS/OpenMP (threadpoolctl):")
    for p in facts["threadpools"] or [{"user_api": "none found"}]:
        lines.append(
            f"  {p['user_api']:7s} {p.get('internal_api') or '':10s} {p.get('version') or '':10s}"
            f" {p.get('num_threads') or '':>3} threads  {p.get('filepath') or ''}"
        )
    if facts["env"]:
        lines.append("environment: " + " ".join(f"{k}={v}" for k, v in facts["env"].items()))
    lines.append(
        f"machine profile (what backend='auto' predicts with; {facts['profile']['path']}):"
    )
    figures = {k: v for k, v in facts["profile"].items() if k != "path"}
    for name, value in describe(Profile(**figures)):
        lines.append(f"  {name:36s} {value}")
    lines.append("")
    if tips:
        lines.append("Recommendations:")
        lines += [f"- {t}" for t in tips]
    else:
        lines.append("No problems found.")
    return "\n".join(lines)


def main(clean: bool, as_json: bool, remeasure: bool = False) -> int:
    facts = examine(clean, remeasure)
    tips = advise(facts)
    if as_json:
        import json

        print(json.dumps(facts | {"recommendations": tips}, indent=1, default=str))
    else:
        print(render(facts, tips))
    return 0


if __name__ == "__main__":
    sys.exit(main("--clean" in sys.argv, "--json" in sys.argv, "--profile" in sys.argv))
