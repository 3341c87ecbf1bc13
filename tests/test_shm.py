"""The shared-memory transport: segments, arena, SharedArray lifetimes, security."""

from __future__ import annotations

import gc
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import numpool
from helpers import segments
from numpool import shm


def test_segment_is_private_and_unguessable() -> None:
    """Segments are created 0600 under a name carrying the pid and 64 random bits."""
    seg = shm.Segment.create(10_000)
    try:
        mode = stat.S_IMODE(os.stat(seg.path).st_mode)
        assert mode == 0o600
        assert seg.name.startswith(f"numpool-{os.getpid()}-")
        assert shm.is_numpool_name(seg.name)
        assert seg.size >= 10_000
    finally:
        seg.unlink()
    assert not os.path.exists(seg.path)


@pytest.mark.parametrize(
    "name", ["psm_123", "numpool-1-zz", "../etc/passwd", "numpool-x-0123456789abcdef"]
)
def test_attach_refuses_foreign_names(name: str) -> None:
    """Workers never attach to a segment whose name numpool did not make."""
    with pytest.raises(ValueError, match="not a numpool segment"):
        shm.Segment.attach(name)


def test_share_roundtrip_and_release() -> None:
    """share() copies into a segment that disappears with the last reference."""
    x = np.arange(12.0).reshape(3, 4)
    a = numpool.share(x)
    assert isinstance(a, numpool.SharedArray)
    assert np.array_equal(a, x) and a.dtype == x.dtype and a.flags.c_contiguous
    name = a.segment_name
    assert name in segments()
    view = a[1:]
    del a
    gc.collect()
    assert name in segments(), "a live view keeps the segment"
    assert view.segment_name == name
    del view
    gc.collect()
    assert name not in segments() - shm.arena().idle_names(), "released (or idle in the arena)"


def test_close_releases_now_and_keeps_memory_valid() -> None:
    """close() unlinks at once; the array stays readable."""
    a = numpool.share(np.ones(1000))
    name = a.segment_name
    a.close()
    assert name not in segments()
    assert a.sum() == 1000.0
    assert a.segment_name == name  # still the segment it lives in, just unnamed now
    assert shm.shared_ref(a) is None, "a closed array is copied, not referenced"


def test_derived_arrays_are_plain() -> None:
    """Arithmetic on a SharedArray gives ordinary arrays; pickling copies the data."""
    import pickle

    a = numpool.share(np.arange(5.0))
    b = a + 1
    assert type(b) is np.ndarray
    assert shm.shared_ref(b) is None
    c = pickle.loads(pickle.dumps(a))
    assert type(c) is np.ndarray and np.array_equal(c, a)


def test_share_refuses_object_dtype() -> None:
    with pytest.raises(TypeError, match="object"):
        numpool.share(np.array([1, "a"], dtype=object))


def test_shared_ref_of_views() -> None:
    """Views of a SharedArray are referenced in place with the right offset and strides."""
    a = numpool.share(np.arange(100.0).reshape(10, 10))
    v = a[2:8:2, 1::3]
    ref = shm.shared_ref(v)
    assert ref is not None
    att = shm.Attachments()
    assert np.array_equal(att.resolve(ref), v)
    assert shm.shared_ref(a[::-1]) is None  # negative strides: copied instead


def test_arena_reuses_warm_segments_and_bounds_idle_bytes() -> None:
    """A returned segment is handed out again; idle bytes never exceed the cap."""
    ar = shm.Arena(max_idle=3 * 2**20)
    ar.acquire()
    try:
        s1 = ar.take(2**20)
        ar.give(s1)
        s2 = ar.take(2**20 - 100)
        assert s2 is s1 and ar.reused == 1
        big = [ar.take(2**20) for _ in range(5)]
        for s in [*big, s2]:
            ar.give(s)
        assert ar.idle_bytes <= 3 * 2**20
        assert sum(not s.unlinked for s in [*big, s2]) == 3
    finally:
        ar.release()
    assert ar.idle_bytes == 0
    assert all(s.unlinked for s in [*big, s2]), "no pool using the arena: nothing kept"


def test_full_shm_is_an_error_not_a_crash(tmp_path, monkeypatch) -> None:
    """When the directory cannot hold the data, creation fails cleanly (no SIGBUS later)."""
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("needs posix_fallocate")
    # no spilling to the temp dir, which may hold 4x a small /dev/shm (docker's 64 MB)
    monkeypatch.setenv("NUMPOOL_SPILL_DIR", shm.shm_dir())
    free = os.statvfs(shm.shm_dir()).f_bavail * os.statvfs(shm.shm_dir()).f_frsize
    before = segments()
    with pytest.raises(numpool.SharedMemoryError, match="Enlarge it") as info:
        shm.Segment.create(free * 4)
    assert isinstance(info.value, MemoryError)
    assert segments() == before


def test_processes_results_are_shared_and_recycled() -> None:
    """A processes result lives in shared memory and goes back to the arena when dropped."""
    from conftest import get_pool

    pool = get_pool("processes")
    x = np.random.default_rng(0).random(100_000)
    y = pool.apply(np.exp, x)
    assert isinstance(y, numpool.SharedArray)
    name = y.segment_name
    del y
    gc.collect()
    assert name in shm.arena().idle_names()
    y2 = pool.apply(np.exp, x)
    assert y2.segment_name in segments()


def test_worker_attachment_cache_drops_unlinked() -> None:
    """A cached mapping whose name is gone is pruned when a new name arrives."""
    att = shm.Attachments()
    s1, s2 = shm.Segment.create(4096), shm.Segment.create(4096)
    try:
        att.segment(s1.name)
        s1.unlink()
        att.segment(s2.name)
        assert s1.name not in att._segs and s2.name in att._segs
    finally:
        s1.unlink()
        s2.unlink()


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("536870912", 512 << 20),
        ("512M", 512 << 20),
        ("512m", 512 << 20),
        ("1G", 1 << 30),
        ("1.5G", 3 << 29),
        ("2GiB", 2 << 30),
        ("64MB", 64 << 20),
        ("4k", 4096),
        (" 0 ", 0),
    ],
)
def test_sizes_take_one_form_everywhere(raw: str, size: int) -> None:
    assert shm.parse_bytes("NUMPOOL_ARENA_BYTES", raw) == size


@pytest.mark.parametrize("raw", ["abc", "G", "-1M", "1X", "nan", "inf", "1.2.3G", ""])
def test_a_bad_size_names_its_variable(raw: str) -> None:
    with pytest.raises(ValueError, match=r"NUMPOOL_PRIVATE_ARENA_BYTES=.*like"):
        shm.parse_bytes("NUMPOOL_PRIVATE_ARENA_BYTES", raw)


@pytest.mark.parametrize("var", ["NUMPOOL_ARENA_BYTES", "NUMPOOL_PRIVATE_ARENA_BYTES"])
def test_a_bad_size_variable_fails_where_it_is_used_not_at_import(var: str) -> None:
    code = """
import numpy as np, numpool
try:
    numpool.apply(np.negative, numpool.share(np.ones(1 << 20)), backend="threads")
    numpool.apply(np.negative, np.ones(1 << 20), backend="processes")
except ValueError as e:
    print("error:", e)
"""
    good = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, var: "1G"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert good.returncode == 0 and good.stdout == "", good.stdout + good.stderr
    bad = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, var: "abc"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 0, bad.stderr
    assert bad.stdout.startswith(f"error: {var}='abc'"), bad.stdout
