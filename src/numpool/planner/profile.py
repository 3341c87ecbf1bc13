"""The machine profile: what is true of this machine, not of any function.

``choose()`` predicts each backend's cost from two records: the
:class:`~numpool.planner.model.Measurements` of the call (what ``func``
costs) and this :class:`Profile` (what the machine charges for running work
elsewhere). None of these figures is a constant copied from the machine
numpool was developed on; each is measured where numpool runs::

    thread_wake_s     a task handed to an idle pool thread, until it runs
    thread_task_s     each further task while the threads are busy
    copy_bytes_per_s  copying into warm shared memory (one thread)
    fault_bytes_per_s writing into fresh pages (the kernel faults and zeroes them)
    process_start_s   starting one worker process, until it runs a task
    process_task_s    a round trip of a tiny task to a warm worker process

The first four take ~0.1 s to measure and are measured on first need. The
process figures need worker processes, which the planner never starts: they
are recorded (:meth:`ProfileStore.record_processes`) when the runtime first
starts a processes backend for real (its start is then timed, and its warm-up
tasks are round trips), or by ``numpool doctor --profile``, which hands
:meth:`ProfileStore.remeasure` its way of timing them.

The profile is cached per machine and numpool version in the user's cache
directory (``$NUMPOOL_CACHE_DIR``, else ``$XDG_CACHE_HOME/numpool``, else
``~/.cache/numpool``), as ``profile-<key>.json``. The key hashes what makes
the figures differ (CPU model, usable and physical cores, memory, Python and
NumPy versions, numpool's version). An unreadable or foreign file is
measured again; an unwritable directory keeps the profile in memory only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .._cpus import physical_cores, usable_cpus
from .._version import __version__

__all__ = ["Profile", "cache_dir", "machine_key", "store"]


@dataclasses.dataclass(frozen=True)
class Profile:
    """Costs of this machine, in seconds and bytes per second (see the module docstring).

    ``process_start_s`` and ``process_task_s`` are None until worker processes
    have been timed on this machine.
    """

    thread_wake_s: float
    thread_task_s: float
    copy_bytes_per_s: float
    fault_bytes_per_s: float
    process_start_s: float | None = None
    process_task_s: float | None = None

    @property
    def processes_known(self) -> bool:
        return self.process_start_s is not None and self.process_task_s is not None

    def as_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)


def cache_dir() -> Path:
    """Where numpool keeps what it measured about this machine."""
    configured = os.environ.get("NUMPOOL_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "numpool"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key() -> str:
    """A short hash of what makes this machine's figures differ from another's."""
    import psutil

    facts = {
        "cpu": _cpu_model(),
        "usable": usable_cpus(),
        "physical": physical_cores(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version_tuple()[:2],
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "numpool": __version__,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


# --- measuring ---------------------------------------------------------------------

#: samples per figure; the median is kept (a busy moment only ever slows one down)
_SAMPLES = 15
#: how long the pool idles before each wake-up sample: an apply() follows the caller's
#: own serial work, so its threads have just gone idle (on a VM an idle vCPU is
#: descheduled, and waking it costs more the longer it slept: measured 0.05 ms after
#: 1 ms idle, 1.2 ms after 100 ms)
_IDLE_S = 2e-3
_COPY_BYTES = 32 << 20


def _median(samples: list[float]) -> float:
    return float(statistics.median(samples))


def measure_threads() -> tuple[float, float]:
    """(thread_wake_s, thread_task_s), on a private pool of two threads."""
    with ThreadPoolExecutor(2, thread_name_prefix="numpool-profile") as ex:
        ex.submit(time.perf_counter).result()  # the thread exists
        wake = []
        for _ in range(_SAMPLES):
            time.sleep(_IDLE_S)
            t0 = time.perf_counter()
            started = ex.submit(time.perf_counter).result()
            wake.append(max(0.0, started - t0))
        per_task = []
        n = 200
        for _ in range(3):
            t0 = time.perf_counter()
            for f in [ex.submit(int) for _ in range(n)]:
                f.result()
            per_task.append((time.perf_counter() - t0) / n)
    return _median(wake), min(per_task)


def measure_memory(nbytes: int = _COPY_BYTES) -> tuple[float, float]:
    """(copy_bytes_per_s, fault_bytes_per_s): copying into warm shared memory, and
    writing into pages never touched before. The memory is an anonymous shared
    mapping: shmem pages, as in /dev/shm, without needing room there."""
    src = np.ones(nbytes // 8)
    copy, fault = [], []
    for _ in range(3):
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        dst = np.frombuffer(buf, dtype=np.float64)
        t0 = time.perf_counter()
        np.copyto(dst, src)  # first write: faults every page in
        fault.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.copyto(dst, src)
        copy.append(time.perf_counter() - t0)
        del dst
        buf.close()
    return nbytes / min(copy), nbytes / min(fault)


def measure_processes(
    start: Callable[[], object], submit: Callable[[Callable[[], Any]], Future[Any]], workers: int
) -> tuple[float, float]:
    """(process_start_s per worker, process_task_s) of a fresh pool of ``workers``
    processes, given as its ``start()`` and ``submit(fn)``: the runtime makes the
    pool (see ``numpool.doctor``), so the planner imports no backend."""
    t0 = time.perf_counter()
    start()
    started = (time.perf_counter() - t0) / workers
    trips = []
    for _ in range(_SAMPLES):
        time.sleep(_IDLE_S)
        t0 = time.perf_counter()
        submit(int).result()
        trips.append(time.perf_counter() - t0)
    return started, _median(trips)


# --- the store -----------------------------------------------------------------


class ProfileStore:
    """This machine's :class:`Profile`: loaded from the cache file, measured on first
    need, updated when worker processes are first timed (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profile: Profile | None = None
        self._path: Path | None = None

    def path(self) -> Path:
        if self._path is None:
            self._path = cache_dir() / f"profile-{machine_key()}.json"
        return self._path

    def get(self) -> Profile:
        """The profile, measuring what is missing (the first call on a machine)."""
        profile = self._profile
        if profile is not None:
            return profile
        with self._lock:
            if self._profile is None:
                self._profile = self._load() or self._measure()
            return self._profile

    def _load(self) -> Profile | None:
        try:
            doc = json.loads(self.path().read_text())
            fields = {f.name for f in dataclasses.fields(Profile)}
            values = {k: v for k, v in doc["profile"].items() if k in fields}
            profile = Profile(**values)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        numbers = [v for v in profile.as_dict().values() if v is not None]
        if not all(isinstance(v, (int, float)) and 0 < v < float("inf") for v in numbers):
            return None
        return profile

    def _measure(self) -> Profile:
        wake, task = measure_threads()
        copy, fault = measure_memory()
        profile = Profile(wake, task, copy, fault)
        self._save(profile)
        return profile

    def _save(self, profile: Profile) -> None:
        path = self.path()
        doc = {
            "machine_key": machine_key(),
            "measured_at": time.time(),
            "profile": profile.as_dict(),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".profile-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1)
            os.replace(tmp, path)
        except OSError:
            pass  # read-only home or full disk: the profile lives in memory only

    def record_processes(self, start_s: float | None, task_s: float | None) -> None:
        """Worker processes were timed: start-up per worker (None: not timed, they were
        running already) and a task's round trip. Figures known already are kept."""
        with self._lock:
            current = self._profile or self._load() or self._measure()
            start = current.process_start_s if current.process_start_s is not None else start_s
            task = current.process_task_s if current.process_task_s is not None else task_s
            if (start, task) == (current.process_start_s, current.process_task_s):
                return
            self._profile = dataclasses.replace(
                current, process_start_s=start, process_task_s=task
            )
            self._save(self._profile)

    def remeasure(
        self, time_processes: Callable[[int], tuple[float, float]] | None = None, workers: int = 2
    ) -> Profile:
        """Measure everything again (``numpool doctor --profile``); the process figures
        with ``time_processes(workers)`` -> (start per worker, round trip), the
        runtime's (None: left unmeasured)."""
        wake, task = measure_threads()
        copy, fault = measure_memory()
        start, trip = time_processes(workers) if time_processes else (None, None)
        profile = Profile(wake, task, copy, fault, start, trip)
        with self._lock:
            self._profile = profile
            self._save(profile)
        return profile

    def override(self, profile: Profile | None) -> None:
        """Use ``profile`` from now on (None: load or measure again on next need, from
        the cache directory the environment names then)."""
        with self._lock:
            self._profile = profile
            if profile is None:
                self._path = None

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it)."""
        self._lock = threading.Lock()


store = ProfileStore()

#: what the processes backend calls with (start-up per worker, round trip) the first
#: time it starts in this process; set to :meth:`ProfileStore.record_processes`
on_processes_timed: Callable[[float, float], None] = store.record_processes


def describe(profile: Profile) -> list[tuple[str, str]]:
    """(name, value in words) for ``numpool doctor``."""

    def s(v: float | None) -> str:
        if v is None:
            return "not measured yet (timed when worker processes first start)"
        return f"{v * 1e6:.0f} us" if v < 1e-3 else f"{v * 1e3:.1f} ms"

    def bw(v: float) -> str:
        return f"{v / 1e9:.1f} GB/s"

    return [
        ("hand-off to an idle thread", s(profile.thread_wake_s)),
        ("each further task on busy threads", s(profile.thread_task_s)),
        ("copy into warm shared memory", bw(profile.copy_bytes_per_s)),
        ("write into fresh pages", bw(profile.fault_bytes_per_s)),
        ("start one worker process", s(profile.process_start_s)),
        ("round trip to a worker process", s(profile.process_task_s)),
    ]


def as_json(profile: Profile) -> dict[str, Any]:
    return {"path": str(store.path()), **profile.as_dict()}
