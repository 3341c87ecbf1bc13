"""Recycled private memory for the output arrays of in-process backends.

Why: writing into freshly allocated memory costs page faults and zeroing,
which are bound by memory bandwidth and do not speed up with more threads.
Measured on the 2-core machine, np.exp over 10M float64 with 2 threads:
2.2x serial into an already-touched output, 1.6x into a fresh one. A program
that calls ``apply`` in a loop and drops each result can hand the next
call warm memory instead, as the shared-memory arena does for segments.

How: an output is a plain ndarray over an anonymous private mmap (advised
for transparent huge pages, as NumPy advises its own large allocations).
Because the array's base is the mmap, every view of the result keeps the
result itself alive (NumPy stops collapsing view chains at a non-array
base), so the finalizer that returns the buffer to the arena runs only
once the result and all its views are gone. The arena is bounded
(``$NUMPOOL_PRIVATE_ARENA_BYTES``, default min(512 MiB, RAM/16)) and emptied
when the last threads pool shuts down.
"""

from __future__ import annotations

import atexit
import math
import mmap
import threading
import weakref

import numpy as np

from ._cpus import total_memory
from .shm import Arena, env_bytes

__all__ = ["PrivateBuffer", "arena", "empty", "made"]

#: bytes of fresh buffers made so far by each thread (see :func:`made`)
_made = threading.local()


class PrivateBuffer:
    """Anonymous private memory, recycled through an :class:`~numpool.shm.Arena`."""

    __slots__ = ("__weakref__", "buf", "name", "size", "unlinked")

    def __init__(self, size: int) -> None:
        # MAP_PRIVATE: plain process memory like malloc (transparent huge pages), not shmem
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            self.buf.madvise(mmap.MADV_HUGEPAGE)
        self.size = size
        _made.bytes = made() + size
        self.name = f"private-{id(self):x}"
        self.unlinked = False

    def unlink(self) -> None:
        """Leave the arena; the memory goes with the last array using it."""
        self.unlinked = True


def _default_max_idle() -> int:
    configured = env_bytes("NUMPOOL_PRIVATE_ARENA_BYTES")
    if configured is not None:
        return configured
    return int(min(512 << 20, total_memory() // 16))


_arena = Arena(max_idle=_default_max_idle, factory=PrivateBuffer)
atexit.register(_arena.clear)


def arena() -> Arena:
    """The process-wide arena of idle private output buffers."""
    return _arena


def made() -> int:
    """Bytes of fresh output buffers made so far by this thread (a call makes its
    output in the caller's thread): a call during which it grew wrote into cold
    memory (page faults, ~4 us a page on a VM), which later calls of the same work
    will not pay, so its wall time says little of them. Another thread's buffers,
    made meanwhile (another call, a background measurement), are not this call's."""
    made_so_far: int = getattr(_made, "bytes", 0)
    return made_so_far


def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Like ``np.empty``, in warm recycled memory when the arena has some."""
    nbytes = math.prod(shape) * dtype.itemsize  # (np.prod: 3 us more)
    if nbytes < (1 << 20):  # small: malloc is as fast and keeps nothing idle
        return np.empty(shape, dtype)
    buf = _arena.take(nbytes)
    a: np.ndarray = np.ndarray(shape, dtype, buffer=buf.buf)
    weakref.finalize(a, _arena.give, buf)
    return a
