"""The private CPython names numpool relies on exist here, and only _cpython.py reads them.

Run on every supported Python (CI: 3.10 and 3.13), so that a release that
renames one fails here, with the name, rather than in a worker's crash.
"""

from __future__ import annotations

import ast
import concurrent.futures.process as cf_process
import concurrent.futures.thread as cf_thread
import importlib
import multiprocessing as mp
import multiprocessing.context as mpc
import multiprocessing.process as mp_process
import os
import signal
import threading
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

import pytest

import numpool
from numpool.backends import _cpython


@contextmanager
def _process_pool() -> Iterator[Any]:
    ex = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))  # starts no process yet
    try:
        yield ex
    finally:
        ex.shutdown()


@contextmanager
def _thread_pool() -> Iterator[Any]:
    with ThreadPoolExecutor(1) as ex:
        yield ex


@contextmanager
def _queue() -> Iterator[Any]:
    q = mp.get_context("spawn").Queue()
    try:
        yield q
    finally:
        q.close()


@contextmanager
def _simple_queue() -> Iterator[Any]:
    q = mp.get_context("spawn").SimpleQueue()
    try:
        yield q
    finally:
        q.close()


@contextmanager
def _given(obj: Any) -> Iterator[Any]:
    yield obj


#: an object of each kind that NAMES and PRIVATE_HOOKS name
SAMPLES: dict[str, Callable[[], Any]] = {
    "threading": lambda: _given(threading),
    "signal": lambda: _given(signal),
    "concurrent.futures.process": lambda: _given(cf_process),
    "concurrent.futures.thread": lambda: _given(cf_thread),
    "multiprocessing.process": lambda: _given(mp_process),
    "ProcessPoolExecutor()": _process_pool,
    "ThreadPoolExecutor()": _thread_pool,
    "multiprocessing.queues.Queue()": _queue,
    "multiprocessing.SimpleQueue()": _simple_queue,
    "multiprocessing.Process()": lambda: _given(mp.get_context("spawn").Process()),
    "multiprocessing.forkserver.ForkServer()": lambda: _given(forkserver.ForkServer()),
    "multiprocessing.popen_forkserver.Popen": lambda: _given(
        importlib.import_module("multiprocessing.popen_forkserver").Popen
    ),
    "multiprocessing.popen_spawn_posix.Popen": lambda: _given(
        importlib.import_module("multiprocessing.popen_spawn_posix").Popen
    ),
    "multiprocessing.context.ForkServerProcess": lambda: _given(mpc.ForkServerProcess),
    "multiprocessing.context.SpawnProcess": lambda: _given(mpc.SpawnProcess),
    "multiprocessing.context.ForkServerContext": lambda: _given(mpc.ForkServerContext),
    "multiprocessing.context.SpawnContext": lambda: _given(mpc.SpawnContext),
    "os.environ": lambda: _given(os.environ),
}

RELIED_ON = [
    (owner, name)
    for table in (_cpython.NAMES, _cpython.PRIVATE_HOOKS)
    for owner, names in table.items()
    for name in names
]


@pytest.mark.parametrize(("owner", "name"), RELIED_ON, ids=[f"{o}.{n}" for o, n in RELIED_ON])
def test_every_private_name_exists_on_this_python(owner: str, name: str) -> None:
    """Each private name _cpython.py reads, or a subclass overrides, exists here."""
    with SAMPLES[owner]() as obj:
        assert hasattr(obj, name), f"{owner} has no {name} on this Python: see _cpython.py"


def test_every_owner_has_a_sample() -> None:
    """A name added to NAMES or PRIVATE_HOOKS comes with an object to check it on."""
    assert {o for o, _ in RELIED_ON} <= set(SAMPLES)


def _is_private_getattr(node: ast.AST) -> bool:
    """``getattr(x, "_name")`` (or hasattr, setattr, delattr) of a single-underscore name."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and node.args[1].value.startswith("_")
        and not node.args[1].value.startswith("__")
    )


def _private_reads(path: Path) -> Iterator[str]:
    """``getattr(x, "_name")``-style reads, and ``x._name`` of a name in NAMES (``self``'s
    and ``cls``' own excepted: hooks of a subclass)."""
    listed = {n for names in _cpython.NAMES.values() for n in names}
    for node in ast.walk(ast.parse(path.read_text())):
        if _is_private_getattr(node) or (
            isinstance(node, ast.Attribute)
            and node.attr in listed
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            yield f"{node.lineno}: {ast.unparse(node)}"


#: private reads elsewhere, with why they are not in _cpython.py
ELSEWHERE = {
    # numpool's own marker on a function it wrapped
    ("backends/dask.py", "getattr(original, '_numpool', False)"),
    # a namedtuple's documented API (its fields), not a private name
    ("backends/dask.py", "hasattr(args, '_fields')"),
    # below the backends: importing _cpython from shm would close an import circle
    ("shm.py", "getattr(weakref.finalize, '_registry', {})"),
}


def test_only_cpython_module_reads_private_names() -> None:
    """No other module of numpool reads a private name of the stdlib's."""
    root = Path(numpool.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "backends/_cpython.py":
            continue
        for read in _private_reads(path):
            if (rel, read.partition(": ")[2]) not in ELSEWHERE:
                found.append(f"{rel}:{read}")
    assert not found, "\n".join(found)


def test_every_function_degrades_without_its_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """On objects (and modules) without the private names, each function answers
    "nothing to see" instead of raising."""
    bare: Any = types.SimpleNamespace()
    assert _cpython.executor_is_broken(bare) is False
    assert _cpython.why_broken(bare) == ""
    assert _cpython.worker_processes(bare) == {}
    assert _cpython.manager_thread(bare) is None
    assert _cpython.call_queue(bare) is None
    _cpython.forbid_spawning_later(bare)
    assert not hasattr(bare, "_safe_to_dynamically_spawn_children")
    _cpython.cancel_queue_finalizers(bare)
    _cpython.cancel_queue_finalizers(None)
    assert _cpython.queue_reader(None) is None
    assert _cpython.queue_feeder(bare) is None
    assert _cpython.not_reaped(bare) is False
    assert _cpython.forkserver_pid(bare) is None
    assert _cpython.forkserver_alive_fd(bare) is None
    assert _cpython.popen_launch(object) is None
    assert _cpython.executor_threads(bare) == []
    assert _cpython.pending_futures(bare) == []
    assert _cpython.result_writer(bare) is None
    for module, name in [
        (cf_process, "_threads_wakeups"),
        (cf_thread, "_threads_queues"),
        (mp_process, "_children"),
        (threading, "_register_atexit"),
        (threading, "_shutdown"),
    ]:
        monkeypatch.delattr(module, name)
    _cpython.forget_manager_wakeup(threading.current_thread())
    _cpython.forget_thread_exit_registry([threading.current_thread()])
    _cpython.forget_children((mpc.SpawnProcess,))
    _cpython.register_before_executors_exit(lambda: None)
    _cpython.run_thread_exit_hooks()


def test_the_names_read_what_they_say() -> None:
    """On a real executor: not broken, no workers, no manager thread yet, a call queue
    whose pipe can be read."""
    with _process_pool() as ex:
        assert not _cpython.executor_is_broken(ex) and _cpython.why_broken(ex) == ""
        assert _cpython.worker_processes(ex) == {} and _cpython.manager_thread(ex) is None
        queue = _cpython.call_queue(ex)
        assert queue is not None and _cpython.queue_reader(queue) is not None
        assert _cpython.queue_feeder(queue) is None  # nothing put yet
        assert _cpython.pending_futures(ex) == [] and _cpython.result_writer(ex) is not None
    with _thread_pool() as tex:
        tex.submit(int).result()
        assert len(_cpython.executor_threads(tex)) == 1
