"""Shared memory, round 3: layouts kept, empty dimensions, replaced memmaps, map
results as plain arrays without a file each, workers that let go of dropped segments,
and the memory cgroup's limit (see numpool.shm, backends/_transport)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpool
from conftest import get_pool
from helpers import assert_same
from numpool import shm
from strategies import DTYPES

TESTS = Path(__file__).parent


def _run(code: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run ``code`` in a fresh interpreter (tests/ on the path); its stdout. It must exit
    0 and write nothing to stderr."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(TESTS),
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]), **(env or {})},
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


# --- 1. layouts ---------------------------------------------------------------------------


@st.composite
def laid_out(draw: st.DrawFn) -> np.ndarray:
    """Arrays of 2-3 dimensions in C, F, transposed, permuted or strided layouts."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    tail = tuple(draw(st.lists(st.integers(2, 9), min_size=1, max_size=2)))
    rows = draw(st.integers(2, 400))
    a = np.arange(rows * int(np.prod(tail)), dtype=np.float64).reshape(rows, *tail)
    a = (np.sin(a) * 1e3).astype(dtype)
    kind = draw(st.sampled_from(["C", "F", "T", "perm", "strided"]))
    if kind == "F":
        a = np.asfortranarray(a)
    elif kind == "T":  # rows of x are the columns of a C array
        a = np.ascontiguousarray(np.swapaxes(a, 0, -1)).swapaxes(0, -1)
    elif kind == "perm" and a.ndim == 3:
        a = np.ascontiguousarray(a.transpose(1, 2, 0)).transpose(2, 0, 1)
    elif kind == "strided":
        a = a[:, ::2]
    return a


def _order(b: np.ndarray) -> np.ndarray:
    """One number per row saying how the trailing axes lie in memory (which is
    innermost...): what a function that iterates by memory order depends on."""
    tail = [i for i in range(1, b.ndim) if b.shape[i] > 1]
    ranks = sorted(tail, key=lambda i: abs(b.strides[i]))
    code = sum(axis * 10**k for k, axis in enumerate(ranks))
    return np.full(b.shape[0], code, dtype=np.int64)


@given(laid_out())
def test_processes_blocks_lie_in_memory_as_x_does(x: np.ndarray) -> None:
    """Each block a worker process sees has x's memory order (C, F, transposed,
    permuted), bit for bit as serial NumPy sees x. (Row 0, the runner's first block,
    is pickled to a worker, not staged, and pickle copies a view to C order.)"""
    got = get_pool("processes").apply(_order, x, chunks=3)
    assert_same(got[1:], _order(x)[1:])


def _row_sums(b: np.ndarray) -> np.ndarray:
    """Sum over the trailing axes: NumPy's order of additions follows memory order."""
    return b.reshape(b.shape[0], -1).sum(axis=1) if b.flags.c_contiguous else b.sum(axis=-1)


@pytest.mark.parametrize("layout", ["F", "T"])
def test_fortran_and_transposed_sums_match_threads_bit_for_bit(layout: str) -> None:
    """b.sum(axis=1) of a Fortran-ordered or transposed x: processes equal threads (the
    same blocks, viewed in place) bit for bit, and serial NumPy on every block of 2
    rows or more (once copied to C order, 3 rows in 4 differed)."""
    rng = np.random.default_rng(0)
    x = rng.random((20_000, 50))
    x = np.asfortranarray(x) if layout == "F" else rng.random((50, 20_000)).T
    f = lambda b: b.sum(axis=1)  # noqa: E731
    got = get_pool("processes").apply(f, x, chunks=4)
    assert_same(got, get_pool("threads").apply(f, x, chunks=4))
    # (the runner's first block is 1 row, which NumPy sums in another order even in
    # place, and which goes to its worker pickled, not staged: rows 1:)
    assert_same(got[1:], f(x)[1:])


def test_dense_strides_agree_with_numpy_order_k() -> None:
    """shm.dense_strides is NumPy's empty_like(order="K") for the usual layouts."""
    base = np.zeros((4, 5, 6))
    for a in [
        base,
        np.asfortranarray(base),
        base.transpose(2, 0, 1),
        base[:, ::2],
        base[::-1],
        base[..., ::-1].T,
    ]:
        assert shm.dense_strides(a) == np.empty_like(a, order="K").strides


@pytest.mark.parametrize("shape", [(200_000, 0), (1000, 0, 3), (1000, 3, 0), (0, 5), (0,), (0, 0)])
@pytest.mark.parametrize("chunks", [None, 4])
def test_empty_dimensions_on_processes(shape: tuple[int, ...], chunks: int | None) -> None:
    """x with a zero-length dimension, trailing or leading: the result serial NumPy
    gives, not "strides is incompatible" from a worker."""
    x = np.zeros(shape)
    got = get_pool("processes").apply(lambda b: b * 2, x, chunks=chunks)
    assert_same(got, x * 2)


# --- 2. a memmap whose file was replaced --------------------------------------------------


def test_a_replaced_memmap_is_copied_not_reread(tmp_path: Path) -> None:
    """np.load(mmap_mode="r"), then another file os.replace'd over it: processes see
    the caller's (old) data, as threads and func itself do."""
    path = tmp_path / "x.npy"
    old = np.arange(400_000, dtype=np.float64).reshape(-1, 4)
    np.save(path, old)
    x = np.load(path, mmap_mode="r")
    np.save(tmp_path / "new.npy", -old)
    os.replace(tmp_path / "new.npy", path)
    assert shm.file_ref(x) is None
    f = lambda b: b + 1  # noqa: E731
    got = get_pool("processes").apply(f, x, chunks=4)
    assert_same(got, f(old))
    assert_same(get_pool("threads").apply(f, x, chunks=4), f(old))
    del x
    gc.collect()


def test_an_intact_memmap_still_travels_by_name(tmp_path: Path) -> None:
    """A memmap whose file is still the mapped one goes by path (no copy), and its
    reference carries the file's identity."""
    path = tmp_path / "x.npy"
    np.save(path, np.ones((1000, 3)))
    x = np.load(path, mmap_mode="r")
    ref = shm.file_ref(x[10:20])
    assert ref is not None and ref.path == str(path)
    st_ = os.stat(path)
    assert ref.identity == (st_.st_dev, st_.st_ino)
    os.unlink(path)  # deleted: no longer the file at that path
    assert shm.file_ref(x) is None
    del x


def test_a_worker_refuses_a_file_replaced_after_the_check(tmp_path: Path) -> None:
    """A FileRef whose file was replaced before the worker mapped it is an error, never
    the other file's data."""
    path = tmp_path / "x.npy"
    np.save(path, np.ones(100))
    x = np.load(path, mmap_mode="r")
    ref = shm.file_ref(x)
    assert ref is not None
    np.save(tmp_path / "new.npy", np.zeros(100))
    os.replace(tmp_path / "new.npy", path)
    with pytest.raises(numpool.SharedMemoryError, match="replaced"):
        shm.map_file(ref)
    del x


# --- 3. map results, and what workers keep mapped -----------------------------------------


def test_70k_map_results_are_plain_arrays_and_leave_no_file(tmp_path: Path) -> None:
    """70,000 results of 8 KB (more than the 65,530 mappings a process may have): plain
    ndarrays, right, and no file of the call left in /dev/shm once they are dropped."""
    d = tmp_path / "shm"
    d.mkdir()
    out = _run(
        """
        import gc, os, numpy as np, numpool
        from numpool import shm
        if __name__ == "__main__":
            with numpool.Pool("processes", workers=2) as pool:
                r = pool.map_arrays(np.cumsum, [np.ones(1000)] * 70_000)
                assert {type(a) for a in r} == {np.ndarray}, {type(a) for a in r}
                want = np.arange(1.0, 1001.0)
                assert all(np.array_equal(a, want) for a in r), "wrong results"
                del r
                gc.collect()
                names = set(os.listdir(shm.shm_dir()))
                mine = {n for n in names if shm.owner_of(n) == os.getpid()}
                print(len(mine - shm.arena().idle_names()))
        """,
        env={"NUMPOOL_SHM_DIR": str(d)},
    )
    assert out.split() == ["0"]
    assert os.listdir(d) == []


def _numpool_mappings(pid: int) -> list[str]:
    """The numpool segments process ``pid`` has mapped (/proc/<pid>/maps)."""
    with open(f"/proc/{pid}/maps") as f:
        return [line.split(maxsplit=5)[-1] for line in f if "/numpool-" in line]


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc")
def test_idle_workers_let_go_of_dropped_segments() -> None:
    """Once a result is dropped and its segment unlinked, an idle worker unmaps it
    (one kept 768 MB mapped, invisible in /dev/shm, until its next task)."""
    with numpool.Pool("processes", workers=2) as pool:
        x = np.ones((500_000, 4))  # 16 MB: fits a 64 MB /dev/shm
        y = pool.apply(np.negative, x, chunks=4)
        pids = set(pool.map_arrays(lambda _: os.getpid(), range(8), chunksize=1))
        name = y.segment_name
        assert any(any(name in m for m in _numpool_mappings(p)) for p in pids)
        del y
        gc.collect()
        shm.arena().clear()  # the dropped result's segment, and the staged x's, unlinked
        deadline = time.monotonic() + 60
        left = [m for p in pids for m in _numpool_mappings(p) if "(deleted)" in m]
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [m for p in pids for m in _numpool_mappings(p) if "(deleted)" in m]
        assert not left


def test_attachments_prune_by_themselves() -> None:
    """An Attachments cache drops an unlinked segment with no new task arriving."""
    att = shm.Attachments()
    seg = shm.Segment.create(4096)
    try:
        att.segment(seg.name)
        seg.unlink()
        deadline = time.monotonic() + 60
        while seg.name in att.names() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seg.name not in att.names()
    finally:
        seg.unlink()


# --- 4. the memory cgroup's limit ---------------------------------------------------------


def _fake_cgroup(d: Path, version: int, limit: str, used: int, inactive: int) -> None:
    names = (
        ("memory.max", "memory.current", "inactive_file")
        if version == 2
        else ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    )
    d.mkdir(parents=True)
    (d / names[0]).write_text(limit + "\n")
    (d / names[1]).write_text(f"{used}\n")
    (d / "memory.stat").write_text(f"anon 5\n{names[2]} {inactive}\nfile 9\n")


@pytest.mark.parametrize("version", [1, 2])
def test_a_segment_beyond_the_cgroup_limit_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    """With 100 MiB allowed, 70 MiB used of which 10 MiB reclaimable cache: 40 MiB
    fit, 41 MiB are a SharedMemoryError that says what to do, and leave nothing."""
    mib = 1 << 20
    leaf = tmp_path / "cg" / "leaf"
    _fake_cgroup(leaf, version, str(100 * mib), 70 * mib, 10 * mib)
    monkeypatch.setattr(shm, "_memory_cgroups", lambda: [(str(leaf), version)])
    monkeypatch.setattr(shm, "_in_memory", lambda d: True)
    assert shm.memory_problem(40 * mib) is None
    problem = shm.memory_problem(41 * mib)
    assert problem is not None and str(leaf) in problem and "backend='threads'" in problem
    before = set(os.listdir(shm.shm_dir()))
    with pytest.raises(numpool.SharedMemoryError, match="would not fit") as info:
        shm.Segment.create(41 * mib)
    assert isinstance(info.value, MemoryError)
    mine = f"-{os.getpid()}-"  # (other processes' segments may come and go meanwhile)
    assert {n for n in set(os.listdir(shm.shm_dir())) - before if mine in n} == set()


def test_no_limit_and_ancestors_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ "max" is no limit; a parent cgroup's limit counts as well as the leaf's."""
    mib = 1 << 20
    top = tmp_path / "cg"
    _fake_cgroup(top, 2, str(50 * mib), 45 * mib, 0)
    _fake_cgroup(top / "leaf", 2, "max", 1 * mib, 0)
    rooms = shm._cgroup_rooms(str(top / "leaf"), 2)
    assert [r.bytes for r in rooms] == [5 * mib]
    monkeypatch.setattr(shm, "_memory_cgroups", lambda: [(str(top / "leaf"), 2)])
    room = shm.memory_room()
    assert room is not None and room.bytes == 5 * mib and str(top) in room.where


def test_files_on_disk_are_not_memory() -> None:
    """Only a tmpfs directory's files count against memory (a spill directory on disk
    does not)."""
    if not os.path.exists("/proc/self/mountinfo") or not os.path.isdir("/dev/shm"):
        pytest.skip("needs Linux")
    assert shm._in_memory("/dev/shm")
    assert shm.memory_problem(1 << 60, "/proc") is None or shm._in_memory("/proc")


def _cgroup_v1_memory() -> Path | None:
    """A memory cgroup (v1) directory this process may create children in, if any."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            d = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if d.is_dir() and os.access(d, os.W_OK):
                return d
    return None


def _cgroup_v2() -> Path | None:
    """A cgroup v2 directory with the memory controller that may take children, if any."""
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if (root / "cgroup.controllers").exists():
            path = Path("/proc/self/cgroup").read_text().split("0::", 1)[-1].split("\n")[0]
            d = root / path.lstrip("/")
            ok = (
                "memory" in (d / "cgroup.subtree_control").read_text().split()
                if (d / "cgroup.subtree_control").exists()
                else False
            )
            if ok and os.access(d, os.W_OK):
                return d
    return None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_processes_in_a_small_cgroup_raise_instead_of_being_killed(tmp_path: Path) -> None:
    """A 200 MB input on processes inside a 512 MiB memory cgroup: a SharedMemoryError
    that names the cgroup, not the caller killed by the OOM killer."""
    if shm.free_bytes(shm.shm_dir()) < 1 << 30:
        pytest.skip("a small /dev/shm: the input spills to disk, which no cgroup check needs")
    v2 = _cgroup_v2()
    parent = v2 or _cgroup_v1_memory()
    if parent is None:
        pytest.skip("no memory cgroup to make a child of")
    child = parent / f"numpool-test-{os.getpid()}"
    child.mkdir()
    try:
        (child / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(512 << 20))
        code = textwrap.dedent(
            f"""
            import os, numpy as np, numpool
            open({str(child / "cgroup.procs")!r}, "w").write(str(os.getpid()))
            if __name__ == "__main__":
                x = np.ones(25_000_000)
                try:
                    numpool.apply(np.negative, x, backend="processes", chunks=4)
                except numpool.SharedMemoryError as e:
                    print("refused" if "would not fit" in str(e) else e)
                else:
                    print("ran")
            """
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.split() == ["refused"], proc.stdout + proc.stderr
    finally:
        for _ in range(50):  # the cgroup goes once its processes (the workers too) are
            try:
                child.rmdir()
                break
            except OSError:
                time.sleep(0.1)
