"""The shared-memory transport: segments, the warm arena, SharedArray.

Arrays reach worker processes by *name*, never as pickled bytes::

      parent process                                    worker process
      --------------                                    --------------
      x ──copy (or none: SharedArray)──▶ ┌─────────┐ ◀── attach by name, once,
                                         │ segment │     mapping cached
      ShmRef(name, offset, shape,  ───── │ in      │     (Attachments)
             dtype, strides) ─pipe──▶    │/dev/shm │ ──▶ ndarray view ─▶ func
                                         └─────────┘
      result ◀── SharedArray view ────── [segment] ◀── worker writes rows/result

Why not ``multiprocessing.shared_memory``: on Python < 3.13 every process
that *attaches* registers the segment with a resource tracker, which may
unlink it while others still use it and prints "leaked shared_memory"
warnings at exit (CPython gh-82300; ``track=False`` only exists from 3.13).
numpool owns segment lifetimes itself instead: a segment is a file in the
shared-memory directory (what ``shm_open`` creates on Linux), created with
``O_EXCL`` and mode 0600 under an unguessable name that carries the owner's
pid, reserved up front with ``posix_fallocate`` (a full /dev/shm becomes an
error at creation, never a SIGBUS mid-copy), and unlinked by its owner.

Why an arena: measured on the 2-core machine, writing 80 MB into a *fresh*
tmpfs segment costs ~47 ms (page allocation and zeroing), into an already
mapped one ~4 ms; re-mapping an existing one costs ~25 ms, ~10 ms with
``MAP_POPULATE``. So segments are recycled (:class:`Arena`: idle segments
by size class, bounded in bytes), parents and workers keep their mappings,
and workers map with ``MAP_POPULATE``. Unlinking a name never invalidates a
live mapping: memory is returned when the last mapping goes.

Liveness: a segment's name is ``numpool-<pid>-<token>-<16 hex>``; the token names
its owner's lock file, ``numpool-<pid>-<token>.lock`` in the same directory, on
which the owner holds an exclusive ``flock`` for as long as it has segments there
(:class:`Lock`; a worker's segments name its parent). The sweep that removes
segments of killed processes takes that lock to know the owner is gone: a pid
alone misleads across PID namespaces sharing /dev/shm, and pids are reused. Names
without a token (older numpool) are judged by their pid. The directories are
everyone's, so only exact numpool names of regular files of this user are ever
considered (:func:`scan`).

Lifetimes:

* a segment staged for a call goes back to the arena when the call ends,
  or is unlinked when the call was interrupted while a worker may still use it;
* a :class:`SharedArray` (from :func:`share`, or a processes-backend result)
  owns its segment; when the array and all its views are gone the segment
  returns to the arena, or is unlinked when no pool is using the arena;
* the arena unlinks its idle segments when the last pool using it shuts
  down, and at interpreter exit;
* a lock file goes with its directory's last segment of the process, and at exit
  (with any segment still named for the process).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import math
import mmap
import os
import re
import stat
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._cpus import available_memory
from ._errors import SharedMemoryError, SharedMemoryWarning

__all__ = [
    "Arena",
    "Attachments",
    "FileRef",
    "Segment",
    "SharedArray",
    "ShmRef",
    "Slot",
    "arena",
    "configure",
    "directories",
    "empty",
    "file_ref",
    "is_numpool_name",
    "map_file",
    "memory_problem",
    "orphans",
    "share",
    "shared_ref",
    "shm_dir",
    "shm_limit",
    "spill_dir",
    "sweep",
]

PREFIX = "numpool-"
_PAGE = mmap.PAGESIZE


#: set in worker processes by :func:`configure` (the parent's choices win over their env)
_config: dict[str, Any] = {}


def shm_dir() -> str:
    """Directory holding numpool's segments: $NUMPOOL_SHM_DIR, /dev/shm, or the temp dir."""
    configured = _config.get("shm") or os.environ.get("NUMPOOL_SHM_DIR")
    if configured:
        return str(configured)
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return _temp_dir()


def spill_dir() -> str:
    """Where segments go when shm_dir() is too small: $NUMPOOL_SPILL_DIR or the temp dir
    (file-backed memory maps: slower than tmpfs, but no SIGBUS and no failure)."""
    return str(_config.get("spill") or os.environ.get("NUMPOOL_SPILL_DIR") or _temp_dir())


def _temp_dir() -> str:
    import tempfile  # (here: imported by ``import numpool``, it costs every process ~3 ms)

    return tempfile.gettempdir()


def shm_limit() -> int | None:
    """$NUMPOOL_SHM_LIMIT (bytes; suffixes K, M, G): the most this process keeps in
    shm_dir() at once; beyond it, segments spill (see :func:`spill_dir`)."""
    raw = _config.get("limit") or os.environ.get("NUMPOOL_SHM_LIMIT")
    if raw is None or raw == "":
        return None
    if isinstance(raw, int):  # (a parent's, already read)
        return raw
    return parse_bytes("NUMPOOL_SHM_LIMIT", raw)


def env_bytes(var: str) -> int | None:
    """A size from environment variable ``var`` (see :func:`parse_bytes`), or None
    when it is unset or empty."""
    raw = os.environ.get(var, "").strip()
    return parse_bytes(var, raw) if raw else None


def parse_bytes(var: str, raw: str) -> int:
    """A size as numpool's environment variables take it: bytes, or a number with a
    binary suffix (``512K``, ``64M``, ``1.5G``, ``2GiB``, ``1T``). A bad value is a
    ``ValueError`` naming the variable."""
    text = str(raw).strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0) or not number.strip():
        raise ValueError(
            f"{var}={raw!r}: expected a size in bytes, like 536870912, 512M or 2G"
        ) from None
    return int(value * scale)


def configure(shm: str, spill: str, limit: int | None) -> None:
    """Use the parent's directories and limit (called in each worker process)."""
    _config.update(shm=shm, spill=spill, limit=limit)


def directories() -> tuple[str, ...]:
    """Where numpool segments may be: the shm directory, then the spill directory."""
    d, s = shm_dir(), spill_dir()
    return (d,) if os.path.realpath(d) == os.path.realpath(s) else (d, s)


def free_bytes(directory: str) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


#: bytes this process holds in shm_dir() (created there, not yet unlinked)
_held = 0
_held_lock = threading.Lock()
_warned = False
_warned_lock = threading.Lock()


def first_spill_warning() -> bool:
    """True once in a process: the spill to disk is worth one warning, also where a
    worker process spilled too (its warning comes back to the caller: ``_warns``)."""
    global _warned
    with _warned_lock:
        first, _warned = not _warned, True
    return first


def _place(size: int) -> str:
    """The directory for a new segment of ``size`` bytes: shm_dir() when it fits there
    (free space, NUMPOOL_SHM_LIMIT), else spill_dir() with one warning, else an error.
    Decided before anything is copied: never ENOSPC mid-copy, never SIGBUS."""
    d = shm_dir()
    limit = shm_limit()
    try:
        free = free_bytes(d)
    except OSError:
        free = 0
    if size <= free and (limit is None or _held + size <= limit):
        problem = memory_problem(size, d)
        if problem is not None:
            # (never spilled to disk instead: a file's dirty pages are charged to the
            # cgroup too, and written back too late to save it from the OOM killer)
            raise SharedMemoryError(problem)
        return d
    spill = spill_dir()
    why = (
        f"{d} has {free / 2**20:.0f} MiB free"
        if size > free
        else f"NUMPOOL_SHM_LIMIT={limit / 2**20:.0f} MiB is reached"  # type: ignore[operator]
    )
    try:
        spill_free = free_bytes(spill) if spill != d else 0
    except OSError:
        spill_free = 0
    if size > spill_free:
        raise SharedMemoryError(
            _no_space_message(size, d) + f" The spill directory {spill} has "
            f"{spill_free / 2**20:.0f} MiB free, not enough either."
        )
    if first_spill_warning():
        warnings.warn(
            f"numpool: {why}, not enough for {size / 2**20:.1f} MiB of shared memory; "
            f"using file-backed memory maps in {spill} instead (slower). Enlarge {d} "
            "(docker: --shm-size=8g; Linux: mount -o remount,size=8G /dev/shm), point "
            "NUMPOOL_SHM_DIR at a larger tmpfs, or use backend='threads', which needs none.",
            SharedMemoryWarning,
            stacklevel=4,
        )
    return spill


def memory_problem(nbytes: int, directory: str | None = None) -> str | None:
    """Why ``nbytes`` more bytes in shared memory would not fit in this process's
    memory, in words; None when they fit, or when no limit can be read.

    A file in /dev/shm (a tmpfs) is memory, charged to the memory cgroup of the
    process that writes it: in a container, copying an input there counts against
    the container's limit next to the input itself, and a 1.6 GB input in a 4 GiB
    cgroup had the caller OOM-killed. So before a segment is made in ``directory``
    (default: :func:`shm_dir`, when it is memory-backed) the room left is read:
    under each memory cgroup limit from this process's cgroup up (v2 ``memory.max``
    less ``memory.current``; v1 ``memory.limit_in_bytes`` less
    ``memory.usage_in_bytes``; reclaimable file cache, ``inactive_file``, counts as
    room), and the machine's available memory (/proc/meminfo, or psutil).
    ``backend="auto"`` can ask it to rule processes out; a segment that does not fit raises
    :class:`~numpool.SharedMemoryError` with this text."""
    d = directory or shm_dir()
    if not _in_memory(d):
        return None
    room = memory_room()
    if room is None or nbytes <= room.bytes:
        return None
    return (
        f"numpool: {nbytes / 2**20:.1f} MiB more in shared memory ({d}) would not fit in "
        f"this process's memory: {room.where} leaves {max(0, room.bytes) / 2**20:.0f} MiB, "
        "and files in a tmpfs count as memory. Use backend='threads' (no copy at all), "
        "split the work into smaller inputs, or make x with numpool.share(x) and drop "
        "the original first (one copy instead of two); or raise the memory limit."
    )


class Room(NamedTuple):
    """The memory left, and what limits it (see :func:`memory_room`)."""

    bytes: int
    where: str


def memory_room() -> Room | None:
    """The bytes this process can still add to memory before a limit: its memory
    cgroups' (v1 or v2, every level up) or the machine's available memory; None when
    none can be read."""
    rooms: list[Room] = []
    for directory, version in _memory_cgroups():
        with contextlib.suppress(OSError, ValueError):
            rooms.extend(_cgroup_rooms(directory, version))
    avail = available_memory()
    if avail is not None:
        rooms.append(Room(avail, "the machine's available memory"))
    return min(rooms, default=None)


_cgroups: dict[int, list[tuple[str, int]]] = {}  # by pid: a fork may be moved elsewhere


def _memory_cgroups() -> list[tuple[str, int]]:
    """This process's memory cgroup directories, (path, 1 or 2), most precise first."""
    pid = os.getpid()
    if pid not in _cgroups:
        found: list[tuple[str, int]] = []
        with contextlib.suppress(OSError, ValueError, IndexError):
            found = _find_memory_cgroups()
        _cgroups.clear()
        _cgroups[pid] = found
    return _cgroups[pid]


def _find_memory_cgroups() -> list[tuple[str, int]]:
    with open("/proc/self/cgroup") as f:
        # "id:controllers:path"; v2 is "0::path"
        lines = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, fs = pre.split(), post.split()
            if fs and fs[0] in ("cgroup", "cgroup2"):
                # (root of the mount inside the hierarchy, mount point, type, options)
                mounts.append((fields[3], fields[4], fs[0], fs[-1].split(",")))
    found = []
    for hid, controllers, path in lines:
        version = 2 if hid == "0" and controllers == "" else 1
        if version == 1 and "memory" not in controllers.split(","):
            continue
        for root, point, kind, options in mounts:
            if (kind == "cgroup2") != (version == 2) or (version == 1 and "memory" not in options):
                continue
            rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
            leaf = os.path.normpath(os.path.join(point, rel))
            if os.path.isdir(leaf):
                found.append((leaf, version))
                break
    return found


def _cgroup_rooms(leaf: str, version: int) -> list[Room]:
    """The room under each limit from cgroup directory ``leaf`` up."""
    files = (
        ("memory.max", "memory.current", "inactive_file")
        if version == 2
        else ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    )
    rooms = []
    d = leaf
    while True:
        try:
            limit = _read_int(os.path.join(d, files[0]))
        except FileNotFoundError:
            break  # above the hierarchy's root as mounted here
        if limit is not None and limit < 1 << 60:  # ("max", or v1's near 2**63: none)
            used = _read_int(os.path.join(d, files[1])) or 0
            used -= _stat_field(os.path.join(d, "memory.stat"), files[2])
            rooms.append(
                Room(
                    limit - used,
                    f"the memory cgroup {d} (limit {limit / 2**20:.0f} MiB, "
                    f"{used / 2**20:.0f} MiB in use)",
                )
            )
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return rooms


def _read_int(path: str) -> int | None:
    """The number in a cgroup file; None for "max"."""
    with open(path) as f:
        text = f.read().strip()
    return None if text == "max" else int(text)


def _stat_field(path: str, name: str) -> int:
    with contextlib.suppress(OSError, ValueError), open(path) as f:
        for line in f:
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    return 0


_fs_kind: dict[str, bool] = {}


def _in_memory(directory: str) -> bool:
    """Whether files in ``directory`` live in memory (tmpfs, ramfs): the file system
    of the longest mount point above it, from /proc/self/mountinfo; True when
    that cannot be read (then no cgroup limit can be either, most likely)."""
    real = os.path.realpath(directory)
    if real not in _fs_kind:
        best, kind = "", ""
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    pre, _, post = line.partition(" - ")
                    point = pre.split()[4].replace("\\040", " ")
                    inside = real == point or real.startswith(point.rstrip("/") + "/")
                    if inside and len(point) >= len(best):
                        best, kind = point, post.split()[0]
        except (OSError, IndexError):
            kind = ""
        _fs_kind[real] = kind in ("tmpfs", "ramfs", "") or not best
    return _fs_kind[real]


#: a numpool name, exactly: ASCII digits (no sign, no leading zero, no other Unicode
#: digit) for the owner's pid; then the owner's lock token (12 hex digits; absent in
#: names of numpool before locks); then 16 random hex digits for a segment, or
#: ``.lock`` for the owner's lock file. Names are read from a directory anyone may
#: write into: whatever else is there is a stranger.
_NAME = re.compile(
    r"numpool-([1-9][0-9]{0,9})-(?:([0-9a-f]{12})(?:-[0-9a-f]{16}|(\.lock))|[0-9a-f]{16})",
    re.ASCII,
)
#: Linux's PID_MAX_LIMIT: no process has a larger pid (a bigger number is no pid)
PID_MAX = 1 << 22


class Name(NamedTuple):
    """What a numpool name says (see :func:`parse_name`)."""

    pid: int
    token: str | None  # the owner's lock file's token; None: the pid alone tells
    lock: bool  # the owner's lock file, not a segment


def parse_name(name: str) -> Name | None:
    """What a numpool segment or lock file name says, or None for any other name (one
    that only looks like it: a pid out of range, non-ASCII digits, a trailing newline)."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    pid = int(m[1])
    return Name(pid, m[2], m[3] is not None) if pid <= PID_MAX else None


def is_numpool_name(name: str) -> bool:
    """True for segment names numpool makes; workers refuse to attach to anything else."""
    parsed = parse_name(name)
    return parsed is not None and not parsed.lock


def new_name(owner: str) -> str:
    """An unguessable segment name carrying its owner (``pid-token``: see :class:`Lock`)."""
    return f"{PREFIX}{owner}-{os.urandom(8).hex()}"


def lock_name(pid: int, token: str) -> str:
    return f"{PREFIX}{pid}-{token}.lock"


class Lock:
    """This process's lock file in one directory: proof of life for its segments there.

    A pid alone cannot tell whether a segment's owner lives: a numpool process in
    another PID namespace that shares /dev/shm sees every pid of ours as dead (or
    as someone else), and swept live segments. So a process that creates segments
    in a directory first creates ``numpool-<pid>-<token>.lock`` there and holds an
    exclusive ``flock`` on it for as long as it has segments there (one descriptor
    per directory, not per segment); its segments' names carry the token, and the
    sweep removes them only once it can take that lock itself: the kernel drops
    the lock when the owner dies, however it dies, in whatever namespace.

    Segments a worker process makes for its parent carry the parent's token.
    When the last segment goes, the file is unlinked and then closed (never
    unlocked while named), and the next one gets a new token: a lock name is never
    made twice, so a sweeper that took a lock knows it judged the owner's file.
    """

    __slots__ = ("directory", "fd", "path", "pid", "token", "users")

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self.users = 0
        for _ in range(16):
            self.token = os.urandom(6).hex()
            self.path = os.path.join(directory, lock_name(self.pid, self.token))
            fd = _create_locked(self.path)
            if fd is not None:
                self.fd = fd
                return
        raise SharedMemoryError(f"numpool: could not create a lock file in {directory}")

    @property
    def owner(self) -> str:
        """What segment names made for this process carry: ``pid-token``."""
        return f"{self.pid}-{self.token}"


def _create_locked(path: str) -> int | None:
    """A new lock file at ``path``, locked; None when a sweeper took it in the
    moment between creating and locking it (then it is gone, or going: try again)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        mine = os.fstat(fd)
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


_locks: dict[str, Lock] = {}  # by directory: the current one
_locks_guard = threading.RLock()  # (reentrant: a finalizer may drop one mid-operation)


def hold_lock(directory: str) -> Lock:
    """This process's lock in ``directory`` (made when needed), held once more."""
    with _locks_guard:
        lock = _locks.get(directory)
        if lock is None:
            lock = _locks[directory] = Lock(directory)
        lock.users += 1
        return lock


def drop_lock(lock: Lock) -> None:
    """Hold ``lock`` once less; the last use removes the file (unlinked, then closed)."""
    with _locks_guard:
        # inherited through fork() (the parent's), or already let go at exit
        if lock.pid != os.getpid() or lock.fd < 0:
            return
        lock.users -= 1
        if lock.users > 0:
            return
        if _locks.get(lock.directory) is lock:
            del _locks[lock.directory]
        fd, lock.fd = lock.fd, -1  # (never close a number twice: it may be reused)
    unlink_path(lock.path)
    os.close(fd)


def _lock_of(directory: str, token: str | None) -> Lock | None:
    """This process's current lock in ``directory`` if its token is ``token``."""
    with _locks_guard:
        lock = _locks.get(directory)
        return lock if lock is not None and lock.token == token else None


def _forget_locks() -> None:
    """In a child made by fork(): the parent's locks are not ours (the inherited
    descriptors are closed; the parent's own keep its locks)."""
    global _locks_guard
    _locks_guard = threading.RLock()
    for lock in _locks.values():
        with contextlib.suppress(OSError):
            os.close(lock.fd)
        lock.fd = -1
    _locks.clear()


os.register_at_fork(after_in_child=_forget_locks)


def own_file(st: os.stat_result) -> bool:
    """Whether ``st`` (of a path in a directory other users may write to) is a regular
    file of this user's (its effective uid): the only kind numpool reads, maps or
    removes there. Not a link (ask with ``lstat``, or open with ``O_NOFOLLOW``), not a
    FIFO or a device, not another user's."""
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def lock_state(path: str) -> bool | None:
    """Whether the owner of the lock file ``path`` lives: True while it holds the lock,
    False when the lock can be taken (its owner died), None when there is no lock
    file of this user there to tell."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not own_file(st):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        try:
            now = os.lstat(path)
        except FileNotFoundError:
            return True  # its owner let it go just now: it lives (and holds nothing here)
        return (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)
    finally:
        os.close(fd)


class _Mapping:
    """A shared mapping of a file, with no file descriptor kept open: Python's
    ``mmap.mmap`` keeps a duplicate of the descriptor for as long as the mapping
    lives, so every array in shared memory cost an open file, and ~1000 of them
    broke ``ulimit -n 1024``. NumPy arrays are made over it through
    ``__array_interface__``, so every view keeps it alive; it is unmapped when the
    last one is gone."""

    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, address: int, size: int) -> None:
        self.__array_interface__ = {
            "data": (address, False),
            "shape": (size,),
            "typestr": "|u1",
            "version": 3,
        }


def _libc() -> Any:
    lib = ctypes.CDLL(None, use_errno=True)
    lib.mmap.restype = ctypes.c_void_p
    lib.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    lib.munmap.restype = ctypes.c_int
    lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return lib


_LIBC = _libc()
_MAP_FAILED = ctypes.c_void_p(-1).value


def _map(fd: int, size: int, populate: bool = False) -> np.ndarray:
    """Map ``size`` bytes of the file ``fd``, shared and read-write, as a uint8 array
    that keeps no descriptor open (the caller may close ``fd`` at once)."""
    flags = mmap.MAP_SHARED | (getattr(mmap, "MAP_POPULATE", 0) if populate else 0)
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    address = _LIBC.mmap(None, size, prot, flags, fd, 0)
    if address is None or address == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap of {size} bytes failed: {os.strerror(err)}")
    owner = _Mapping(address, size)
    weakref.finalize(owner, _LIBC.munmap, address, size)
    return np.asarray(owner)


class Segment:
    """One named shared-memory file, mapped read-write into this process."""

    __slots__ = (
        "__weakref__",
        "address",
        "buf",
        "held",
        "lock",
        "name",
        "path",
        "size",
        "unlinked",
    )

    def __init__(self, name: str, path: str, buf: np.ndarray, lock: Lock | None = None) -> None:
        self.name = name
        self.path = path
        self.buf = buf
        self.size = buf.nbytes
        self.address: int = buf.ctypes.data
        self.unlinked = False
        self.held = 0  # bytes counted in _held (created here, in shm_dir())
        self.lock = lock  # this process's lock, held for as long as the name is

    @classmethod
    def create(
        cls,
        nbytes: int,
        directory: str | None = None,
        owner: str | None = None,
        name: str | None = None,
    ) -> Segment:
        """Create, reserve and map a new segment of at least ``nbytes`` bytes, in
        ``directory`` or where it fits (see :func:`_place`). It belongs to this
        process, or to ``owner`` (``pid-token`` of the parent of a worker process),
        and is called ``name`` when given (the parent chose it)."""
        global _held
        sweep_once()
        size = max(_PAGE, -(-nbytes // _PAGE) * _PAGE)
        if directory is None:
            where = _place(size)
            try:
                seg = cls._create(size, where, owner, name)
            except SharedMemoryError:
                if where == spill_dir():
                    raise
                # the space went between the check and the reservation: spill
                seg = cls._create(size, spill_dir(), owner, name)
        else:
            seg = cls._create(size, directory, owner, name)
        if os.path.dirname(seg.path) == shm_dir():
            with _held_lock:
                seg.held = size
                _held += size
        return seg

    @classmethod
    def _create(cls, size: int, directory: str, owner: str | None, name: str | None) -> Segment:
        lock = hold_lock(directory) if owner is None and name is None else None
        try:
            name = name or new_name(owner or lock.owner)  # type: ignore[union-attr]
            path = os.path.join(directory, name)
            buf = _new_file(path, size, directory)
        except BaseException:
            if lock is not None:
                drop_lock(lock)
            raise
        return cls(name, path, buf, lock)

    @classmethod
    def attach(
        cls, name: str, directory: str | None = None, populate: bool = True, own: bool = False
    ) -> Segment:
        """Map an existing numpool segment by name (in ``directory``, or wherever
        numpool puts segments: the shm directory, then the spill directory).
        ``own``: this process takes it over (a worker made it for it), and holds
        its lock while it has the name."""
        if not is_numpool_name(name):
            raise ValueError(f"refusing to attach to {name!r}: not a numpool segment name")
        fd = -1
        for d in (directory,) if directory else directories():
            path = os.path.join(d, name)
            try:
                fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
                break
            except FileNotFoundError:
                if directory or d == directories()[-1]:
                    raise
        try:
            st = os.fstat(fd)
            if not own_file(st):
                raise ValueError(f"refusing to attach to {path}: not a file of this user")
            buf = _map(fd, st.st_size, populate)
        finally:
            os.close(fd)
        lock = None
        if own:
            with _locks_guard:
                lock = _lock_of(os.path.dirname(path), parse_name(name).token)  # type: ignore[union-attr]
                if lock is not None:
                    lock.users += 1
        return cls(name, path, buf, lock)

    def ndarray(
        self,
        shape: tuple[int, ...],
        dtype: Any,
        offset: int = 0,
        strides: tuple[int, ...] | None = None,
        cls: type = np.ndarray,
    ) -> np.ndarray:
        """A view of this segment's memory as an array (C order unless ``strides``)."""
        view: np.ndarray = np.ndarray.__new__(
            cls, shape, dtype, buffer=self.buf, **_placement(shape, offset, strides)
        )
        return view

    def unlink(self) -> None:
        """Remove the name; the memory goes when the last mapping is gone."""
        global _held
        if not self.unlinked:
            self.unlinked = True
            unlink_path(self.path)
            if self.held:
                with _held_lock:
                    _held -= self.held
                self.held = 0
            lock, self.lock = self.lock, None
            if lock is not None:
                drop_lock(lock)

    def __repr__(self) -> str:
        return f"<Segment {self.name} {self.size} bytes{' unlinked' if self.unlinked else ''}>"


def _placement(
    shape: tuple[int, ...], offset: int, strides: tuple[int, ...] | None
) -> dict[str, Any]:
    """``offset`` and ``strides`` for a view of ``shape``; none for an empty one. Rows
    a:b of an array with a zero-length dimension lie at a*stride bytes, which may be
    past the end of the segment (one page for no data at all): NumPy refuses such a
    view ("strides is incompatible"), though it would read nothing."""
    if math.prod(shape) == 0:
        return {"offset": 0}
    return {"offset": offset, "strides": strides}


def dense_strides(a: np.ndarray, backwards: bool = False) -> tuple[int, ...]:
    """The strides of a dense copy of ``a`` that keeps its memory order (NumPy's
    ``order="K"``): C for C, F for F, and for a transposed or other view the same
    order of axes. A function called on the copy then iterates, and sums, in the same
    order as on ``a`` itself: copied to C order, ``b.sum(axis=1)`` of a Fortran-ordered
    ``b`` differed from serial NumPy in 3 rows of 4. ``backwards``: an axis that runs
    backwards in ``a`` (``x[::-1]``) runs backwards in the copy too, so that a ufunc
    on it takes the loop it takes on ``a`` (``np.exp`` over a reversed x: 9,100 of
    200,000 values differed, copied forwards)."""
    order = sorted(range(a.ndim), key=lambda i: abs(a.strides[i]), reverse=True)  # stable
    strides = [0] * a.ndim
    step = a.itemsize
    for axis in reversed(order):
        strides[axis] = -step if backwards and a.strides[axis] < 0 else step
        step *= max(1, a.shape[axis])
    return tuple(strides)


def copy_dense(a: np.ndarray, seg: Segment, offset: int = 0, backwards: bool = False) -> ShmRef:
    """Copy ``a`` into ``seg`` at ``offset`` in its own memory order (see
    :func:`dense_strides`, ``backwards`` too); the reference to the copy."""
    strides = dense_strides(a, backwards)
    # (an axis that runs backwards starts at its far end)
    start = offset + sum(
        (n - 1) * -st for n, st in zip(a.shape, strides, strict=True) if st < 0 and n
    )
    np.copyto(seg.ndarray(a.shape, a.dtype, start, strides), a, casting="no")
    return ShmRef(seg.name, start, a.shape, a.dtype, strides)


def _new_file(path: str, size: int, directory: str) -> np.ndarray:
    """Create the file ``path`` (0600, never an existing one), reserve ``size`` bytes
    and map them."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except AttributeError:  # no posix_fallocate (macOS): sparse file
            os.ftruncate(fd, size)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
                raise SharedMemoryError(_no_space_message(size, directory)) from e
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.ftruncate(fd, size)
        return _map(fd, size)
    except BaseException:
        unlink_path(path)
        raise
    finally:
        os.close(fd)


def unlink_path(path: str) -> None:
    """Remove the name ``path`` if it is there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _no_space_message(size: int, directory: str) -> str:
    try:
        st = os.statvfs(directory)
        mib = st.f_frsize / 2**20
        free = f"{st.f_bavail * mib:.0f} MiB free of {st.f_blocks * mib:.0f} MiB"
    except OSError:
        free = "free space unknown"
    return (
        f"cannot allocate {size / 2**20:.1f} MiB of shared memory in {directory} ({free}). "
        "Enlarge it (docker: --shm-size=8g; Linux: mount -o remount,size=8G /dev/shm), "
        "point NUMPOOL_SHM_DIR at a larger tmpfs, or use backend='threads', which needs none."
    )


class ShmRef(NamedTuple):
    """What travels through the pipe instead of an array: where to find it."""

    name: str
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    strides: tuple[int, ...]


class FileRef(NamedTuple):
    """What travels instead of a memory-mapped array (np.memmap, np.load(...,
    mmap_mode=...)): the file and where in it; the worker maps the file itself
    (:func:`map_file`), so the data is never copied into shared memory."""

    path: str
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    strides: tuple[int, ...]
    writable: bool
    #: the file's identity (``st_dev``, ``st_ino``) when the caller's mapping was checked
    #: against it: a worker that finds another file at ``path`` refuses it
    identity: tuple[int, int] = (0, 0)


#: np.memmap modes whose pages another process that maps the file sees ("c", copy
#: on write, keeps its changes private: such an array is staged like any other)
_SHARED_MODES = ("r", "r+", "w+")


def file_ref(a: np.ndarray, writable: bool = False) -> FileRef | None:
    """Where ``a`` lives if it is (a view of) an np.memmap of a file that other
    processes can map too (``writable``: and write, for an ``out=``), else None."""
    base: Any = a
    root = None
    while base is not None and not isinstance(base, mmap.mmap):
        if isinstance(base, np.memmap):
            root = base
        base = getattr(base, "base", None)
    if base is None or root is None or getattr(root, "filename", None) is None:
        return None
    mode = getattr(root, "mode", None)
    if mode not in _SHARED_MODES or a.dtype.hasobject or any(s < 0 for s in a.strides):
        return None
    if writable and (mode == "r" or not a.flags.writeable):
        return None
    try:
        start = np.frombuffer(base, np.uint8).ctypes.data
    except (ValueError, TypeError, BufferError):  # a closed mapping
        return None
    identity = mapped_file(start, str(root.filename))
    if identity is None:  # another file at that path now, or no way to tell: a copy
        return None
    offset = int(root.offset) - int(root.offset) % mmap.ALLOCATIONGRANULARITY
    offset += a.ctypes.data - start
    # an input is mapped read-only by the workers whatever its mode: only an out= is
    # written (and MAP_SHARED mappings of one file see each other's writes)
    return FileRef(str(root.filename), offset, a.shape, a.dtype, a.strides, writable, identity)


def mapped_file(address: int, path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file at ``path`` if it is the very file this process
    has mapped at ``address``, else None: replaced since it was mapped
    (``os.replace``, a new ``np.save``), renamed, deleted, or no way to tell (no
    ``/proc/self/maps``). A worker maps the file by path, so a replaced file would give
    it other data than the caller's array holds (measured: 399,999 rows of 400,000
    differed).

    /proc/self/maps names, for the mapping that holds ``address``, its file's device,
    inode and path, with " (deleted)" once that name no longer leads to it."""
    try:
        st = os.stat(path)
        real = os.path.realpath(path)
        with open("/proc/self/maps", "rb") as f:
            for line in f:
                # "lo-hi perms offset major:minor inode   path"
                fields = line.split(maxsplit=5)
                lo, _, hi = fields[0].partition(b"-")
                if not int(lo, 16) <= address < int(hi, 16):
                    continue
                if len(fields) < 6:
                    return None  # anonymous
                major, _, minor = fields[3].partition(b":")
                where = os.fsdecode(fields[5].rstrip(b"\n"))
                if where != real:  # " (deleted)", or another name
                    return None
                if (int(major, 16), int(minor, 16)) == (
                    os.major(st.st_dev),
                    os.minor(st.st_dev),
                ) and int(fields[4]) != st.st_ino:
                    return None
                # (another device number: a stacked file system such as overlayfs shows
                # the underlying file's; the path, not deleted, tells then)
                return st.st_dev, st.st_ino
    except (OSError, ValueError, IndexError):
        pass
    return None


#: a worker's mappings of the files FileRefs name, each mapped once (LRU)
_files: OrderedDict[tuple[Any, ...], np.memmap] = OrderedDict()
_FILES_KEPT = 8
_files_lock = threading.Lock()


def map_file(ref: FileRef) -> np.ndarray:
    """The array a FileRef points at, as a view of this process's mapping of the file
    (read-only unless the ref is writable)."""
    with open(ref.path, "r+b" if ref.writable else "rb") as f:
        st = os.fstat(f.fileno())
        if ref.identity != (0, 0) and ref.identity != (st.st_dev, st.st_ino):
            raise SharedMemoryError(
                f"numpool: the file {ref.path} was replaced while a call that reads it by "
                "its name ran: the worker would read other data than the caller's array "
                "holds. Do not replace a file while numpool reads it, or pass a copy "
                "(np.array(x)) or backend='threads'."
            )
        key = (ref.path, ref.writable, st.st_dev, st.st_ino, st.st_size)
        with _files_lock:
            mm = _files.get(key)
            if mm is None:
                mm = np.memmap(f, dtype=np.uint8, mode="r+" if ref.writable else "r")
                _files[key] = mm
                while len(_files) > _FILES_KEPT:
                    _files.popitem(last=False)
            else:
                _files.move_to_end(key)
    view: np.ndarray = np.ndarray(
        ref.shape, ref.dtype, buffer=mm, **_placement(ref.shape, ref.offset, ref.strides)
    )
    return view


def _prune_files() -> None:
    """Drop mappings of files whose path leads to another file now, or to none."""
    with _files_lock:
        for key in list(_files):
            path, _, dev, ino, _ = key
            try:
                st = os.stat(path)
                gone = (st.st_dev, st.st_ino) != (dev, ino)
            except OSError:
                gone = True
            if gone:
                del _files[key]


class Slot(NamedTuple):
    """A segment the parent reserved for a task's result."""

    name: str
    size: int


def _size_class(nbytes: int) -> int:
    """Round up to one of 8 sizes per power of two (at most 12.5% slack)."""
    n = max(nbytes, _PAGE)
    top = 1 << (n - 1).bit_length()
    step = max(_PAGE, top // 16)
    return -(-n // step) * step


class Arena:
    """Idle segments kept mapped for reuse, by size class, at most ``max_idle`` bytes.

    Pools call :meth:`acquire` when they start and :meth:`release` when they
    shut down; with no pool left, idle segments are unlinked at once and
    returned segments are not kept. ``factory`` makes a new one of a given
    size (default: a shared-memory :class:`Segment`; ``numpool._buffers``
    uses it for private memory).
    """

    def __init__(
        self, max_idle: int | Callable[[], int] | None = None, factory: Any = None
    ) -> None:
        self.factory = factory or Segment.create
        self._lock = threading.RLock()
        self._idle: OrderedDict[str, Segment] = OrderedDict()  # LRU order
        self._idle_bytes = 0
        self._users = 0
        # read when first needed: a bad $NUMPOOL_ARENA_BYTES is an error there, not
        # at import
        self._max_idle = _default_max_idle if max_idle is None else max_idle
        self.reused = 0

    @property
    def max_idle(self) -> int:
        """The most bytes kept idle (a callable given is called once, when needed)."""
        if callable(self._max_idle):
            self._max_idle = int(self._max_idle())
        return self._max_idle

    def take(self, nbytes: int) -> Segment:
        """A segment of at least ``nbytes`` bytes, warm when one is idle."""
        size = _size_class(nbytes)
        with self._lock:
            for name, seg in reversed(self._idle.items()):
                if seg.size == size:
                    del self._idle[name]
                    self._idle_bytes -= seg.size
                    self.reused += 1
                    return seg
        return self.factory(size)

    def give(self, seg: Segment) -> None:
        """Take a segment back for reuse (or unlink it when not worth keeping)."""
        if seg.unlinked:
            return
        with self._lock:
            if self._users > 0 and seg.size <= self.max_idle:
                self._idle[seg.name] = seg
                self._idle_bytes += seg.size
                while self._idle_bytes > self.max_idle:
                    _, old = self._idle.popitem(last=False)
                    self._idle_bytes -= old.size
                    old.unlink()
                return
        seg.unlink()

    def has_idle(self, nbytes: int, count: int = 1) -> bool:
        """Whether ``count`` idle segments of ``nbytes``' size class are at hand."""
        size = _size_class(nbytes)
        with self._lock:
            return sum(seg.size == size for seg in self._idle.values()) >= count

    def acquire(self) -> None:
        """A pool starts using the arena (its size limit is read here, so that a bad
        setting is an error of the call that starts the pool)."""
        with self._lock:
            _ = self.max_idle
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self.clear()

    def clear(self) -> None:
        """Unlink every idle segment."""
        with self._lock:
            idle, self._idle = self._idle, OrderedDict()
            self._idle_bytes = 0
        for seg in idle.values():
            seg.unlink()

    def idle_names(self) -> set[str]:
        with self._lock:
            return set(self._idle)

    @property
    def idle_bytes(self) -> int:
        return self._idle_bytes


def _default_max_idle() -> int:
    configured = env_bytes("NUMPOOL_ARENA_BYTES")
    if configured is not None:
        return configured
    try:
        st = os.statvfs(shm_dir())
        total = st.f_blocks * st.f_frsize
    except OSError:
        total = 1 << 30
    return int(min(2 << 30, total // 4))


def _at_exit() -> None:
    """The process ends: unlink what is still named for it (idle segments; a worker's
    result that never reached it), then its lock files."""
    _arena.clear()
    with _locks_guard:
        locks = [lock for lock in _locks.values() if lock.pid == os.getpid()]
        _locks.clear()
        fds = []
        for lock in locks:
            fds.append(lock.fd)
            lock.fd = -1  # a finalizer that runs later drops nothing
    for lock, fd in zip(locks, fds, strict=True):
        with contextlib.suppress(OSError):
            for name in os.listdir(lock.directory):
                parsed = parse_name(name)
                if parsed is not None and not parsed.lock and parsed.token == lock.token:
                    unlink_path(os.path.join(lock.directory, name))
        unlink_path(lock.path)
        with contextlib.suppress(OSError):
            os.close(fd)


_arena = Arena()
atexit.register(_at_exit)


def arena() -> Arena:
    """The process-wide arena of warm segments."""
    return _arena


class SharedArray(np.ndarray):
    """A NumPy array whose memory is a shared-memory segment.

    Passed to the ``processes`` backend (as input, ``out=``, or a ``map``
    argument) it travels by name: no copy at all. Views (slices) of it share
    the segment too. The segment is released when the array and every view
    of it are gone, or at once by :meth:`close`.
    Arrays computed *from* it (``a + 1``, ``a.copy()``) are ordinary memory.
    """

    _np_segment: Segment | None

    def __array_finalize__(self, obj: Any) -> None:
        self._np_segment = None  # only the array created over a segment owns it

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        # ufunc results are fresh private memory: hand them back as plain arrays.
        if arr is self:
            return arr
        if isinstance(arr, SharedArray) and arr._np_segment is None:
            arr = arr.view(np.ndarray)
        if return_scalar:
            return arr[()]
        return arr

    def __reduce__(self) -> Any:
        # Pickled (to disk, to another library's pool) it is an ordinary array.
        return np.asarray(self).copy().__reduce__()

    @property
    def segment_name(self) -> str | None:
        """Name of the segment this array lives in (None if released or a copy)."""
        seg = _owning_segment(self)
        return seg.name if seg is not None else None

    def close(self) -> None:
        """Release the segment now. The memory stays valid for existing views."""
        seg = _owning_segment(self)
        if seg is not None:
            seg.unlink()


def _owning_segment(a: np.ndarray) -> Segment | None:
    base: Any = a
    while base is not None:
        if isinstance(base, SharedArray) and base._np_segment is not None:
            return base._np_segment
        base = getattr(base, "base", None)
    return None


def wrap(
    seg: Segment,
    shape: tuple[int, ...],
    dtype: Any,
    offset: int = 0,
    strides: tuple[int, ...] | None = None,
) -> SharedArray:
    """Make a SharedArray that owns ``seg``; the segment is recycled when it dies."""
    a: SharedArray = seg.ndarray(shape, dtype, offset, strides, cls=SharedArray)  # type: ignore[assignment]
    a._np_segment = seg
    weakref.finalize(a, _arena.give, seg)
    return a


def shared_ref(a: np.ndarray) -> ShmRef | None:
    """Where ``a`` lives if it is (a view of) a live SharedArray, else None."""
    seg = _owning_segment(a)
    if seg is None or seg.unlinked or any(s < 0 for s in a.strides):
        return None
    offset = a.ctypes.data - seg.address
    if offset < 0 or offset > seg.size:
        return None
    return ShmRef(seg.name, offset, a.shape, a.dtype, a.strides)


def empty(shape: tuple[int, ...], dtype: Any) -> SharedArray:
    """A new, uninitialised SharedArray (a warm segment from the arena when one is idle)."""
    dt = np.dtype(dtype)
    return wrap(_arena.take(int(np.prod(shape)) * dt.itemsize), shape, dt)


def share(x: Any) -> SharedArray:
    """Copy ``x`` into shared memory.

    The ``processes`` backend passes the result to its workers by name, with
    no copy, whether it is the input of :func:`numpool.apply`, its ``out=``,
    or an argument of :func:`numpool.map`.

    Parameters
    ----------
    x : array_like
        Any array of a fixed-size dtype (not ``object``).

    Returns
    -------
    SharedArray
        A C-contiguous copy of ``x`` in shared memory. It is released when
        it and all its views are gone, or by ``.close()``.

    Examples
    --------
    >>> import numpy as np, numpool
    >>> a = numpool.share(np.arange(6.0))
    >>> a[:3]
    SharedArray([0., 1., 2.])
    >>> a.close()
    """
    arr = np.asarray(x)
    if arr.dtype.hasobject:
        raise TypeError(
            f"share: x has dtype {arr.dtype}, which holds Python objects and cannot live in "
            "shared memory; convert it to a numeric dtype first"
        )
    seg = _arena.take(arr.nbytes)
    out = wrap(seg, arr.shape, arr.dtype)
    np.copyto(out, arr, casting="no")
    return out


class Attachments:
    """A worker's cache of mapped segments, so each is mapped once, not per task.

    Mappings whose name is gone from the shared-memory directory (unlinked by the
    parent: a result dropped with its arena full, an interrupted call) are dropped
    when a task names a segment not seen before, and by a daemon thread every
    :data:`PRUNE_S` seconds while any are cached: an idle worker otherwise kept them,
    invisible in /dev/shm but counted in RAM (measured: 768 MB, until the next call).
    A mapping in use by a task stays valid: its arrays keep it until they go.
    """

    def __init__(self, directory: str | None = None, limit: int = 64) -> None:
        self.directory = directory
        self.limit = limit
        self._segs: OrderedDict[str, Segment] = OrderedDict()
        self._lock = threading.Lock()
        self._pruner: threading.Thread | None = None

    def segment(self, name: str) -> Segment:
        with self._lock:
            seg = self._segs.get(name)
            if seg is not None:
                self._segs.move_to_end(name)
                return seg
        self.prune()
        seg = Segment.attach(name, self.directory)
        with self._lock:
            self._segs[name] = seg
            while len(self._segs) > self.limit:
                self._segs.popitem(last=False)
            if self._pruner is None:
                self._pruner = threading.Thread(
                    target=_prune_while_alive,
                    args=(weakref.ref(self),),
                    name="numpool-prune",
                    daemon=True,
                )
                with contextlib.suppress(RuntimeError):  # (process limit: segment() prunes)
                    self._pruner.start()
        return seg

    def resolve(self, ref: ShmRef) -> np.ndarray:
        """The array a ShmRef points at, as a view of the (cached) mapping."""
        seg = self.segment(ref.name)
        return seg.ndarray(ref.shape, ref.dtype, ref.offset, ref.strides)

    def prune(self) -> None:
        """Drop the mappings of segments whose name is gone."""
        dirs = (self.directory,) if self.directory else directories()
        with self._lock:
            names = list(self._segs)
        gone = [n for n in names if not any(os.path.exists(os.path.join(d, n)) for d in dirs)]
        with self._lock:
            for name in gone:
                self._segs.pop(name, None)

    def names(self) -> list[str]:
        """The segments mapped now."""
        with self._lock:
            return list(self._segs)


#: how often a worker drops the mappings of segments unlinked meanwhile
PRUNE_S = 0.5


def _prune_while_alive(ref: weakref.ReferenceType[Attachments]) -> None:
    """The pruning thread of an :class:`Attachments` (ends with it), and of the
    files mapped by name (:func:`map_file`)."""
    while True:
        time.sleep(PRUNE_S)
        att = ref()
        if att is None:
            return
        with contextlib.suppress(OSError):
            att.prune()
            _prune_files()
        del att


def owner_of(name: str) -> int | None:
    """The pid in a numpool segment name (its creator's, or the pool owner's)."""
    parsed = parse_name(name)
    return parsed.pid if parsed is not None and not parsed.lock else None


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a killed process stays one
    until its parent reaps it, and releases nothing of numpool's meanwhile)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # "pid (comm) state ...": the state follows the last ')'
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class Entry(NamedTuple):
    """One of numpool's own files in a directory it uses (see :func:`scan`)."""

    path: str
    pid: int
    bytes: int
    alive: bool  # whether its owner still runs (False: an orphan)
    lock: bool  # the owner's lock file, not a segment


def scan() -> list[Entry]:
    """numpool's segments and lock files in every directory it uses, with whether
    their owner lives.

    Those directories are shared with every local user (/dev/shm, /tmp), so only
    what numpool itself could have made counts: a name exactly numpool's
    (:func:`parse_name`), a regular file (``lstat``: a symlink is never followed,
    a directory never opened), owned by this user. Anything else is a stranger,
    left alone; an entry that vanishes or cannot be read meanwhile is skipped,
    never the end of the scan.

    An owner lives while its lock file is locked (see :class:`Lock`); only for a
    name with no lock file (numpool before locks, or a lock file gone first) is
    its pid asked, as before."""
    found: list[Entry] = []
    for d in directories():
        try:
            names = os.listdir(d)
        except OSError:
            continue
        alive: dict[tuple[int, str | None], bool] = {}
        for name in names:
            parsed = parse_name(name)
            if parsed is None:
                continue
            path = os.path.join(d, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not own_file(st):
                continue
            owner = (parsed.pid, parsed.token)
            if owner not in alive:
                held = None
                if parsed.token is not None:
                    held = lock_state(os.path.join(d, lock_name(*owner)))  # type: ignore[arg-type]
                if held is None and parsed.lock:
                    continue  # gone (or not a lock of ours) meanwhile
                alive[owner] = is_alive(parsed.pid) if held is None else held
            found.append(Entry(path, parsed.pid, st.st_size, alive[owner], parsed.lock))
    return found


def orphans() -> list[str]:
    """Paths of numpool segments whose owner process is gone (killed with SIGKILL,
    say), in every directory numpool uses, then those owners' lock files. An owner
    with a lock file is gone when its lock can be taken; one without, when its pid
    is (a pid can be reused: such a segment waits until that process is gone too)."""
    dead = [e for e in scan() if not e.alive]
    return [e.path for e in dead if not e.lock] + [e.path for e in dead if e.lock]


def sweep() -> list[str]:
    """Unlink the orphans (see :func:`orphans`; lock files last); returns the paths
    removed. One that cannot be removed is skipped: the others still go."""
    gone = []
    for path in orphans():
        try:
            os.unlink(path)
        except OSError:
            continue
        gone.append(path)
    return gone


_swept = False


def sweep_once() -> None:
    """The sweep, once per process, when it first creates a segment: /dev/shm never
    grows without bound, however many numpool processes were killed."""
    global _swept
    if not _swept:
        _swept = True
        with contextlib.suppress(OSError):
            sweep()


def after_fork_in_child(*others: Arena) -> None:
    """In a child made by ``os.fork()``: let go of every segment the parent owns.

    The child inherits the parent's arena of idle segments, its SharedArrays and
    the finalizers that give their segments back: left alone, it would recycle
    the parent's segments into its own results and unlink them when it exits,
    under the parent's feet. Here every inherited segment (idle in an arena, or
    owned by an array) counts as unlinked in the child: never recycled, unlinked
    or passed to a worker by name (an inherited SharedArray is copied like any
    array); its memory stays mapped while the child uses it. The arenas start
    empty, with fresh locks (a thread of the parent may have held one at the
    fork). ``others``: arenas of other kinds (``numpool._buffers``').
    """
    global _held, _held_lock, _warned_lock
    _held, _held_lock, _warned_lock = 0, threading.Lock(), threading.Lock()
    inherited: list[Any] = []
    for a in (_arena, *others):
        inherited += a._idle.values()
        a._lock = threading.RLock()
        a._idle = OrderedDict()
        a._idle_bytes = 0
    # the arrays' finalizers, Arena.give(segment): weakref.finalize's registry of
    # live ones (CPython 3.4+)
    for f in list(getattr(weakref.finalize, "_registry", {})):
        alive = f.peek()
        if alive is not None and getattr(alive[1], "__func__", None) is Arena.give:
            inherited.append(alive[2][0])
    for seg in inherited:
        seg.unlinked = True
        if isinstance(seg, Segment):
            seg.held = 0
