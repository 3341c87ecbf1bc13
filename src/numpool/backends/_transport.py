"""How arrays travel to workers and back: one transport per kind of backend.

================  ===========================  ================================
transport         apply block                  map task
================  ===========================  ================================
Transport         views of x and out           arguments as they are
(serial, threads) (func writes into out)       (same address space)
Pickled (pickle)  x[a:b] pickled, result       arguments and result pickled
                  pickled back, copied to out  (the naive multiprocessing way)
Shared            ShmRef of x and out rows     small arrays pickled; bigger
(processes)       (worker writes in place)     ones staged (SharedArray: as
                                               is), results written into the
                                               batch's segment (or one made
                                               for the caller) and copied out
================  ===========================  ================================

Staged copies keep the array's memory order (C, F, transposed: see
``shm.dense_strides``), so that func sees blocks laid out as on threads and
NumPy adds in the same order; map results come back in theirs, as plain
ndarrays.

Small map arrays (at most ``INLINE_BYTES``) travel pickled in the task
message, arguments and results alike: a segment is at least a page and a
file, its create, map and unlink cost more than pickling a few KiB, and a
map over 100,000 small arrays used to need as many segments (and files).

Each call gets an ``*IO`` object that prepares what to send, takes results,
and on success (:meth:`finish`) or failure (:meth:`abort`) puts every
segment it used back. After a failure a worker may still be using a
segment, so it is unlinked rather than recycled.
"""

from __future__ import annotations

import os
import time
import weakref
from typing import Any, NamedTuple

import numpy as np

from .. import _buffers, shm
from .._inputs import Cut, Inputs, along
from ..shm import FileRef, Segment, ShmRef, Slot

__all__ = ["Pickled", "Returns", "Shared", "Transport", "send_back"]

Task = tuple[int, tuple[Any, ...]]


class _Counted:
    """Bytes that crossed a process boundary, and the caller's seconds copying them."""

    moved: int = 0
    move_s: float = 0.0

    def count(self, nbytes: int, seconds: float = 0.0) -> None:
        self.moved += nbytes
        self.move_s += seconds


class ApplyIO(_Counted):
    """Per-call state of apply on a transport (Direct: plain views).

    ``inputs`` (numpool._inputs.Inputs) cuts every argument's rows; ``out`` is
    written along the same axis."""

    def __init__(self, inputs: Inputs, out: np.ndarray | None) -> None:
        self.inputs = inputs
        self.out = out

    def block(self, a: int, b: int) -> tuple[Any, Any]:
        """(src, dst) to send for rows a:b; dst None means "return the result"."""
        dst = along(self.out, a, b, self.inputs.axis) if self.out is not None else None
        return self.inputs.block(a, b), dst

    def took(self, a: int, b: int, res: Any) -> None:
        """A block's return value arrived (only used when dst was None)."""

    def finish(self) -> np.ndarray:
        assert self.out is not None
        return self.out

    def abort(self) -> None:
        pass


class MapIO(_Counted):
    """Per-call state of map on a transport (Direct: arguments as they are)."""

    def encode(self, batch: list[Task]) -> tuple[list[Task], Returns | None]:
        return batch, None

    def decode(self, batch: list[Task], results: list[Any]) -> list[Any]:
        return results

    def abort(self) -> None:
        pass


class Transport:
    """Direct: workers share the caller's memory (serial, threads).

    With ``recycle``, new outputs come from warm recycled memory
    (``numpool._buffers``) instead of fresh pages.
    """

    name = "direct"

    def __init__(self, recycle: bool = False) -> None:
        self.recycle = recycle

    def new_out(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return _buffers.empty(shape, dtype) if self.recycle else np.empty(shape, dtype)

    def refuse(self, dtype: np.dtype, what: str = "x") -> str | None:
        """Why an array of ``dtype`` cannot travel this way (None: it can)."""
        return None

    def no_room(self, inputs: Inputs) -> str | None:
        """Why this call's arrays cannot travel this way for want of memory (None: they
        can). Asked only once auto wants a backend that uses this transport."""
        return None

    def apply_io(
        self, inputs: Inputs, out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype
    ) -> ApplyIO:
        return ApplyIO(inputs, out if out is not None else self.new_out(shape, dtype))

    def map_io(self) -> MapIO:
        return MapIO()


class _PickledApply(ApplyIO):
    def block(self, a: int, b: int) -> tuple[Any, Any]:
        block = self.inputs.block(a, b)
        if isinstance(block, Cut):
            self.count(_array_bytes(block.args))
            return block._replace(args=tuple(map(_Backwards.wrap, block.args))), None
        self.count(block.nbytes)
        return _Backwards.wrap(block), None

    def took(self, a: int, b: int, res: Any) -> None:
        self.count(res.nbytes)
        along(self.out, a, b, self.inputs.axis)[...] = res


class _Backwards:
    """An array with an axis that runs backwards (``x[::-1]``), pickled so that it
    arrives so (pickle sends a copy that runs forwards, on which a ufunc may take
    another loop than on the array: other bits)."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    @classmethod
    def wrap(cls, a: Any) -> Any:
        """``a``, or ``a`` wrapped when it is an ndarray with a negative stride."""
        if isinstance(a, np.ndarray) and any(s < 0 for s in a.strides):
            return cls(a)
        return a

    def __reduce__(self) -> Any:
        back = tuple(k for k, s in enumerate(self.a.strides) if s < 0)
        return (np.flip, (np.flip(self.a, back), back))


def _array_bytes(values: Any) -> int:
    return sum(v.nbytes for v in values if isinstance(v, np.ndarray))


class _PickledMap(MapIO):
    def encode(self, batch: list[Task]) -> tuple[list[Task], Returns | None]:
        self.count(sum(_array_bytes(args) for _, args in batch))
        return batch, None

    def decode(self, batch: list[Task], results: list[Any]) -> list[Any]:
        self.count(_array_bytes(results))
        return results


class Pickled(Transport):
    """Everything pickled through the executor's pipes: the baseline to beat."""

    name = "pickle"

    def apply_io(
        self, inputs: Inputs, out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype
    ) -> ApplyIO:
        return _PickledApply(inputs, out if out is not None else self.new_out(shape, dtype))

    def map_io(self) -> MapIO:
        return _PickledMap()


def _stage(arr: np.ndarray, held: list[Segment], io: _Counted) -> Any:
    """A reference for ``arr``: its own segment if shared, its file if memory-mapped
    (np.memmap, when that file is still the one mapped: the worker maps it), else a
    copy in a warm segment, in ``arr``'s own memory order and direction (see
    shm.dense_strides).
    An empty array travels as itself: there is nothing to share."""
    if arr.size == 0:
        return np.empty_like(arr, order="K")
    ref: ShmRef | FileRef | None = shm.shared_ref(arr)
    if ref is None:
        ref = shm.file_ref(arr)
    if ref is not None:
        return ref
    t0 = time.perf_counter()
    seg = shm.arena().take(arr.nbytes)
    held.append(seg)
    ref = shm.copy_dense(arr, seg, backwards=True)
    io.count(arr.nbytes, time.perf_counter() - t0)
    return ref


def _release(segs: list[Segment], ok: bool) -> None:
    for seg in segs:
        if ok:
            shm.arena().give(seg)
        else:
            seg.unlink()
    segs.clear()


class _SharedApply(ApplyIO):
    def __init__(
        self, inputs: Inputs, out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype
    ) -> None:
        self.held: list[Segment] = []
        self.owned: Segment | None = None  # segment of a result we hand out
        self.temp: Segment | None = None  # what workers write for a user's unshared out
        self.user_out = out
        self.shape = shape
        self.dtype = dtype
        self.axis = inputs.axis
        for arr in inputs.arrays():
            why = Shared().refuse(arr.dtype)
            if why is not None:
                raise TypeError(why)
        try:
            # every array travels by reference: staged once for the call, whole
            # arguments included; the blocks are cut out of the references
            self.src = inputs.replace(
                tuple(
                    _stage(a, self.held, self) if isinstance(a, np.ndarray) and a.ndim else a
                    for a in inputs.args
                )
            ).with_pads(lambda p: _stage(p, self.held, self))
            dst: ShmRef | FileRef | None = None
            if out is not None:
                dst = shm.shared_ref(out) or shm.file_ref(out, writable=True)
            if dst is None:
                seg = shm.arena().take(int(np.prod(shape)) * dtype.itemsize)
                if out is None:
                    self.owned = seg
                else:
                    self.held.append(seg)  # a temporary, copied into the user's out at the end
                    self.temp = seg
                dst = ShmRef(seg.name, 0, shape, dtype, seg.ndarray(shape, dtype).strides)
            self.dst = dst
        except BaseException:
            self.abort()
            raise

    def block(self, a: int, b: int) -> tuple[Any, Any]:
        return self.src.block(a, b), along(self.dst, a, b, self.axis)

    def finish(self) -> np.ndarray:
        if self.owned is not None:
            result: np.ndarray = shm.wrap(self.owned, self.shape, self.dtype)
            self.owned = None
        elif self.user_out is not None and self.temp is not None:
            t0 = time.perf_counter()
            temp = self.temp.ndarray(self.shape, self.dtype)
            np.copyto(self.user_out, temp, casting="no")
            self.count(temp.nbytes, time.perf_counter() - t0)
            result = self.user_out
        else:
            assert self.user_out is not None
            result = self.user_out
        _release(self.held, ok=True)
        return result

    def abort(self) -> None:
        if self.owned is not None:
            self.held.append(self.owned)
            self.owned = None
        _release(self.held, ok=False)


#: map arguments and results of at most this many bytes travel pickled in the task
#: message, not through a segment of their own: a segment is a page at least and a
#: file, its create+map+unlink cost more than pickling a few KiB, and a map over
#: 100,000 small arrays needed as many files (see the module docstring)
INLINE_BYTES = 4096
#: where results are packed in a batch's segment (cache lines: no two results share one)
_ALIGN = 64


class Returns(NamedTuple):
    """How a batch's array results come back from a worker process (see send_back)."""

    owner: str  # the parent's ``pid-token``: what segments made for it are named with
    slot: Slot | None  # one segment the parent reserved for the batch's results
    each: int  # task k's result goes at k * each in the slot, when it fits there
    inline: int  # arrays of at most this many bytes come back pickled
    spare: int  # task k's result, when it needs a segment of its own: spare_name(k)
    marker: str  # a file in the shm directory while the caller waits for the results

    def spare_name(self, k: int) -> str:
        """The name the parent chose for task ``k``'s own result segment, should it
        need one: the parent can remove it if the result never arrives."""
        return _spare_name(self.owner, self.spare, k)


def _spare_name(owner: str, spare: int, k: int) -> str:
    return f"{shm.PREFIX}{owner}-{(spare + k) % 2**64:016x}"


def send_back(res: Any, k: int, returns: Returns, attachments: shm.Attachments) -> Any:
    """In the worker: task ``k``'s result as it goes back: a small array pickled, as
    it is; a bigger one written into the batch's slot when it fits its place there,
    else into a new segment under the name the parent chose, and a ShmRef to it
    travels instead (in the result's own memory order); anything else as it is.

    A segment made here belongs to the parent, which may have given up on the call
    meanwhile (another task failed): then it removed the call's marker first and
    the chosen names next, so a segment made after that sees no marker and is
    removed here, and one made before is removed by the parent. It is unmapped
    here when this returns."""
    if (
        not isinstance(res, np.ndarray)
        or res.dtype.hasobject
        or res.nbytes == 0
        or res.nbytes <= returns.inline
    ):
        return res
    slot = returns.slot
    offset = k * returns.each
    if slot is not None and res.nbytes <= returns.each and offset + returns.each <= slot.size:
        seg = attachments.segment(slot.name)
    else:
        offset = 0
        name = returns.spare_name(k)
        try:
            seg = Segment.create(res.nbytes, name=name)
        except FileExistsError:  # the batch runs again after a crash: the dead one's
            for d in shm.directories():
                shm.unlink_path(os.path.join(d, name))
            seg = Segment.create(res.nbytes, name=name)
        if not os.path.exists(os.path.join(shm.shm_dir(), returns.marker)):
            seg.unlink()  # nobody waits for it
            return None
    return shm.copy_dense(res, seg, offset)


def _end_call(lock: shm.Lock, marker: str) -> None:
    shm.unlink_path(marker)
    shm.drop_lock(lock)


def _pack_limit() -> int:
    """The most bytes reserved at once for one batch's results: an eighth of what the
    arena keeps idle, so that the batches' segments are recycled warm (tasks beyond
    it that return big arrays get a segment each, freed as soon as copied)."""
    return max(shm.arena().max_idle // 8, 1 << 20)


#: a first batch of more tasks than this reserves room for their results before any
#: came back (see _SharedMap.encode)
GUESS_FROM_TASKS = 64


class _SharedMap(MapIO):
    """A processes map: arguments staged (each array once per call), results packed
    into one segment per batch and copied out of it into ordinary arrays.

    Results are plain ``np.ndarray``s, small or big: handing out the segments
    themselves (SharedArrays, as before) left one file and one mapping per result
    for as long as the results lived, and a map of 70,000 results of 8 KB failed
    with ENOMEM (the kernel allows 65,530 mappings a process); the results were a
    mix of ndarray (the pickled small ones) and SharedArray besides."""

    def __init__(self) -> None:
        # id(array) -> [ref, segment or None, uses, array]: each array staged once per call
        self.staged: dict[int, list[Any]] = {}
        self.slots_of: dict[int, Segment | None] = {}  # first task index -> slot
        self.guess = -1  # bytes reserved per result; learnt from the first results
        # first task index -> (spare names' base, tasks) of batches sent, not yet back
        self.spares: dict[int, tuple[int, int]] = {}
        # this process's lock, held for the call: results workers make for us carry
        # its token, and it must still be ours when they arrive (see shm.Lock); and
        # the call's marker (see send_back)
        self.lock: shm.Lock | None = None
        self.marker = ""
        self._end: weakref.finalize | None = None

    def _owner(self) -> str:
        """This process's ``pid-token``, the lock and the marker held for the call
        (until it is aborted, or this object goes when the call has returned)."""
        if self.lock is None:
            lock = shm.hold_lock(shm.shm_dir())
            try:
                name = shm.new_name(lock.owner)
                path = os.path.join(lock.directory, name)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except BaseException:
                shm.drop_lock(lock)
                raise
            self.lock, self.marker = lock, name
            self._end = weakref.finalize(self, _end_call, lock, path)
        return self.lock.owner

    def _arg(self, a: Any) -> Any:
        if not isinstance(a, np.ndarray) or a.dtype.hasobject or a.nbytes == 0:
            return a
        if a.nbytes <= INLINE_BYTES and shm.shared_ref(a) is None:
            self.count(a.nbytes)  # pickled into the task message
            return a
        entry = self.staged.get(id(a))
        if entry is None:
            held: list[Segment] = []
            ref = _stage(a, held, self)
            entry = self.staged[id(a)] = [ref, held[0] if held else None, 0, a]
        entry[2] += 1
        return entry[0]

    def encode(self, batch: list[Task]) -> tuple[list[Task], Returns | None]:
        sent: list[Task] = []
        largest = 0
        for index, args in batch:
            sent.append((index, tuple(self._arg(a) for a in args)))
            largest = max([largest, *(a.nbytes for a in args if isinstance(a, np.ndarray))])
        # no result seen yet: a batch of many tasks guesses "as big as the largest array
        # argument" (or each result would need a segment of its own); a few tasks
        # (a reduce's blocks, whose partials are small) reserve nothing on a guess
        first = largest if len(batch) > GUESS_FROM_TASKS else 0
        size = self.guess if self.guess >= 0 else first
        each = -(-size // _ALIGN) * _ALIGN if size > INLINE_BYTES else 0
        slot = None
        if each:
            tasks = max(1, min(len(batch), _pack_limit() // each))
            slot = shm.arena().take(each * tasks)
        self.slots_of[batch[0][0]] = slot
        spare = int.from_bytes(os.urandom(8), "little")
        self.spares[batch[0][0]] = (spare, len(batch))
        reserved = Slot(slot.name, slot.size) if slot is not None else None
        return sent, Returns(self._owner(), reserved, each, INLINE_BYTES, spare, self.marker)

    def _unstage(self, batch: list[Task], ok: bool) -> None:
        for _, args in batch:
            for a in args:
                entry = self.staged.get(id(a)) if isinstance(a, np.ndarray) else None
                if entry is None or entry[3] is not a:
                    continue
                entry[2] -= 1
                if entry[2] == 0:
                    del self.staged[id(a)]
                    if entry[1] is not None:
                        _release([entry[1]], ok)

    def decode(self, batch: list[Task], results: list[Any]) -> list[Any]:
        slot = self.slots_of.pop(batch[0][0])
        del self.spares[batch[0][0]]
        self._unstage(batch, ok=True)
        out = []
        t0 = time.perf_counter()
        for res in results:
            if isinstance(res, ShmRef):
                if slot is not None and res.name == slot.name:
                    res = _copy_out(slot, res)
                else:
                    seg = Segment.attach(res.name, populate=False, own=True)
                    try:
                        res = _copy_out(seg, res)
                    finally:
                        seg.unlink()
                self.count(res.nbytes, time.perf_counter() - t0)
                t0 = time.perf_counter()
            elif isinstance(res, np.ndarray):  # a small one, pickled
                self.count(res.nbytes)
            if isinstance(res, np.ndarray):
                self.guess = max(self.guess, res.nbytes)
            else:  # not an array: reserve no slot unless array results come
                self.guess = max(self.guess, 0)
            out.append(res)
        if slot is not None:
            shm.arena().give(slot)
        return out

    def abort(self) -> None:
        """Release every segment of the call, and remove those that workers may have
        made for results that will never be decoded (after the marker: see send_back)."""
        if self.lock is not None:
            shm.unlink_path(os.path.join(self.lock.directory, self.marker))
        owner = self.lock.owner if self.lock is not None else ""
        for spare, tasks in self.spares.values():
            for k in range(tasks):
                name = _spare_name(owner, spare, k)
                for d in shm.directories():
                    shm.unlink_path(os.path.join(d, name))
        self.spares.clear()
        for entry in self.staged.values():
            if entry[1] is not None:
                entry[1].unlink()
        self.staged.clear()
        _release([s for s in self.slots_of.values() if s is not None], ok=False)
        self.slots_of.clear()
        if self._end is not None:
            self._end()


def _copy_out(seg: Segment, ref: ShmRef) -> np.ndarray:
    """A result a worker wrote into ``seg``, as an ordinary array of its own (in the
    same memory order)."""
    view = seg.ndarray(ref.shape, ref.dtype, ref.offset, ref.strides)
    out: np.ndarray = view.copy(order="K")
    return out


class Shared(Transport):
    """Arrays travel by name through shared-memory segments (see numpool.shm)."""

    name = "shared memory"

    def new_out(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A SharedArray: workers write into it in place, and the caller can pass it on."""
        why = self.refuse(dtype, "func's result")
        if why is not None:
            raise TypeError(why)
        return shm.empty(shape, dtype)

    def refuse(self, dtype: np.dtype, what: str = "x") -> str | None:
        """Why an array of ``dtype`` cannot travel this way (None: it can)."""
        if not dtype.hasobject:
            return None
        return (
            f"apply: {what} has dtype {dtype}, which holds Python objects; the processes "
            "backend moves arrays through shared memory, which needs fixed-size dtypes. "
            "Use backend='threads' (or 'pickle'), or convert it to a numeric dtype."
        )

    def no_room(self, inputs: Inputs) -> str | None:
        """The arrays that would be copied into /dev/shm (not already shared, not a
        mapped file) do not fit under this process's memory limit: a tmpfs file counts
        as memory, and in a 4 GiB cgroup a 1.6 GB input had the caller OOM-killed."""
        copied = sum(
            a.nbytes
            for a in inputs.arrays()
            if shm.shared_ref(a) is None and shm.file_ref(a) is None
        )
        return shm.memory_problem(copied) if copied else None

    def apply_io(
        self, inputs: Inputs, out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype
    ) -> ApplyIO:
        return _SharedApply(inputs, out, shape, dtype)

    def map_io(self) -> MapIO:
        return _SharedMap()
