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

The file is read as untrusted input: only a regular file, owned by this user
and writable by nobody else, of at most a few kB (a FIFO, a device, a
directory or a link to one is no profile: nothing blocks and nothing large
is read), and every figure must lie within what a machine can physically do
(:data:`BOUNDS`): a profile with one absurd figure would make auto choose
absurdly, or fail, so it is measured again and the reason logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import mmap
import os
import platform
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .._cpus import physical_cores, total_memory, usable_cpus
from .._version import __version__

__all__ = ["BOUNDS", "Profile", "cache_dir", "machine_key", "store"]

log = logging.getLogger("numpool")


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


#: What each figure can physically be, (least, most): no file may make numpool believe
#: a machine outside them. Generous on both sides, to hold on any real machine:
#: - a hand-off to a thread, or a round trip to a process, is a few system calls and a
#:   context switch: never under 100 ns; 10 s means the machine is swapping or stopped
#:   (a figure that large, or that small, is a broken clock or a poisoned file)
#: - starting a process runs an interpreter: never under 10 us; 60 s is a machine
#:   thrashing
#: - memory bandwidth: 1 MB/s is slower than any disk; 10 TB/s beyond any memory bus
#:   (a divisor of 1e-300 makes every copy cost infinity, and choose() refuse)
BOUNDS: dict[str, tuple[float, float]] = {
    "thread_wake_s": (1e-7, 10.0),
    "thread_task_s": (1e-7, 10.0),
    "copy_bytes_per_s": (1e6, 1e13),
    "fault_bytes_per_s": (1e6, 1e13),
    "process_start_s": (1e-5, 60.0),
    "process_task_s": (1e-7, 10.0),
}
#: a profile file is about 400 bytes; a bigger one is not ours
MAX_FILE_BYTES = 16 << 10


def absurd(profile: Profile) -> str | None:
    """Why ``profile`` cannot be true of any machine (see :data:`BOUNDS`), or None."""
    for name, value in profile.as_dict().items():
        if value is None and name.startswith("process_"):
            continue  # not measured yet
        least, most = BOUNDS[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not least <= value <= most
        ):
            return f"{name} = {value!r} is outside [{least:g}, {most:g}]"
    return None


def _within(name: str, value: float) -> float:
    """A figure just measured, held within :data:`BOUNDS` (a timer's glitch)."""
    least, most = BOUNDS[name]
    return min(max(value, least), most)


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
    facts = {
        "cpu": _cpu_model(),
        "usable": usable_cpus(),
        "physical": physical_cores(),
        "memory_gib": round(total_memory() / 2**30),
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
    import statistics  # (here: only a process that measures the machine needs it)

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
        """The profile in the cache file, or None (logged why) when there is none that
        this user wrote and that a machine could have measured."""
        path = self.path()
        try:
            raw = _read_own_file(path)
        except OSError as e:
            if not isinstance(e, FileNotFoundError):
                log.info("numpool: machine profile %s not read (%s): measuring again", path, e)
            return None
        why = None
        try:
            doc = json.loads(raw)
            figures = doc["profile"]
            fields = {f.name for f in dataclasses.fields(Profile)}
            profile = Profile(**{k: v for k, v in figures.items() if k in fields})
            if doc.get("machine_key", machine_key()) != machine_key():
                why = "it was measured on another machine"
            else:
                why = absurd(profile)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            why = f"it is not a profile ({type(e).__name__}: {e})"
        if why is not None:
            log.warning("numpool: ignoring machine profile %s: %s; measuring again", path, why)
            return None
        return profile

    def _measure(self) -> Profile:
        wake, task = measure_threads()
        copy, fault = measure_memory()
        profile = _bounded(Profile(wake, task, copy, fault))
        self._save(profile)
        return profile

    def _save(self, profile: Profile) -> None:
        path = self.path()
        doc = {
            "machine_key": machine_key(),
            "measured_at": time.time(),
            "profile": profile.as_dict(),
        }
        import tempfile  # (here: only a process that measures the machine writes)

        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".profile-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1)
            os.replace(tmp, path)  # (replaces a FIFO or a link; a directory refuses)
            tmp = None
        except OSError as e:
            # read-only home, full disk, a directory in the file's place: the profile
            # lives in memory only, measured again by the next process
            if path not in _unwritable:
                _unwritable.add(path)
                log.warning(
                    "numpool: cannot write the machine profile to %s (%s); it is kept in "
                    "memory, and measured again in each new process. Remove what is in "
                    "the way, or set NUMPOOL_CACHE_DIR to a directory of your own.",
                    path,
                    e,
                )
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def record_processes(self, start_s: float | None, task_s: float | None) -> None:
        """Worker processes were timed: start-up per worker (None: not timed, they were
        running already) and a task's round trip. Figures known already are kept."""
        start_s, task_s = (
            _plausible("process_start_s", start_s),
            _plausible("process_task_s", task_s),
        )
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
        profile = _bounded(Profile(wake, task, copy, fault, start, trip))
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


def _bounded(profile: Profile) -> Profile:
    """``profile`` just measured, each figure held within :data:`BOUNDS`."""
    p = profile

    def held(name: str, v: float | None) -> float | None:
        return None if v is None else _within(name, v)

    return Profile(
        _within("thread_wake_s", p.thread_wake_s),
        _within("thread_task_s", p.thread_task_s),
        _within("copy_bytes_per_s", p.copy_bytes_per_s),
        _within("fault_bytes_per_s", p.fault_bytes_per_s),
        held("process_start_s", p.process_start_s),
        held("process_task_s", p.process_task_s),
    )


def _plausible(name: str, value: float | None) -> float | None:
    """A timing the runtime reports, or None when no machine could have given it (a
    clock that jumped): the figure is then timed again another time."""
    if value is None:
        return None
    least, most = BOUNDS[name]
    if not (math.isfinite(value) and least <= value <= most):
        log.info("numpool: ignoring a timing of %s = %r (not plausible)", name, value)
        return None
    return value


#: paths already warned about (a warning once per process, not once per call)
_unwritable: set[Path] = set()


def _read_own_file(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file of this user's that nobody else
    may write, of at most MAX_FILE_BYTES; else OSError saying why. Never blocks (a
    FIFO), never reads a device: checked before opening, and again on what was
    opened (the path may have changed in between)."""
    _check_own_file(path, os.stat(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _check_own_file(path, os.fstat(fd))
        data = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"larger than {MAX_FILE_BYTES} bytes: not a profile")
    return data


def _check_own_file(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"not a regular file (mode {stat.filemode(st.st_mode)})")
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid != getuid():
        raise OSError(f"owned by uid {st.st_uid}, not by this user (uid {getuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OSError(f"writable by others (mode {stat.filemode(st.st_mode)})")


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
