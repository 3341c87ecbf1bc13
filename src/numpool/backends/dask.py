"""backend="dask": the same apply/map on a Dask cluster, for work that outgrows a machine.

Dask's distributed scheduler runs the tasks; numpool keeps its engine (blocks,
a bound on what is in flight, results in order, errors with their index)::

    caller ──scatter block/array once──▶ worker memory
           ──submit(apply_block | run_tasks, futures)──▶ runs where the data is
           ◀──result (pickled over the network)── copied into the output array

* ``address=None`` (and no ``$NUMPOOL_DASK_ADDRESS``) starts a
  ``distributed.LocalCluster`` sized to the machine: ``workers`` processes of
  one thread each. Whoever reaches a Dask scheduler runs code on its workers,
  as the caller's user, and 127.0.0.1 is shared by every user of the machine:
  so every server of that cluster listens on 127.0.0.1 only and speaks TLS
  with a certificate made for it alone (``Security.temporary()``, held in
  memory, handed to the worker processes through their start pipe), and
  accepts only clients that present it. Its dashboard is off (the HTTP
  servers distributed starts anyway serve nothing) unless
  ``$NUMPOOL_DASK_DASHBOARD`` gives a port on 127.0.0.1.
* A scheduler address (``"tcp://host:8786"``) connects to a running cluster;
  a ``distributed.Client`` or a cluster object is used as given (the tests
  pass ``LocalCluster(processes=False)``). Who can reach that cluster is its
  owner's business: numpool changes nothing there.
* Every array a worker process gets arrives in fresh memory laid out as the
  caller's view of it is (``_Laid``): the same address modulo 64 and the same
  pattern of strides. NumPy's loops take their SIMD, aligned or buffered
  paths from those, so ``b.sum()`` of a block has the same bits here as on
  the other backends (out of Dask's frames, a block could start at any byte).
* apply: each block of rows is scattered once and its task runs on the
  worker that holds it; the result comes back and is written into the
  output array. map: each distinct array argument is scattered once per
  call, however many tasks use it; results are gathered in order.
* BLAS: every worker process gets the budget (threadpoolctl) when the
  backend starts; in-process workers share the caller's process-wide limit,
  as the threads backend does.
* A worker that dies makes Dask reschedule its tasks; after ``retries``
  more deaths (``distributed.scheduler.allowed-failures`` of the cluster
  numpool starts) Dask gives up with ``KilledWorker``, which numpool raises
  as :class:`~numpool.WorkerCrashedError`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, CancelledError, Future, InvalidStateError
from concurrent.futures import wait as wait_for
from typing import Any, ClassVar

import numpy as np

from .. import blas, shm
from .._errors import BackendUnavailableError
from .._inputs import Cut, Inputs, along
from ..blas import process_budget
from . import _fpe, _warns
from ._base import Backend
from ._ship import ship, ship_args
from ._transport import ApplyIO, MapIO, Task, Transport
from ._worker import call, load_packed, pack

__all__ = ["DaskBackend", "connect"]

ADDRESS_ENV = "NUMPOOL_DASK_ADDRESS"
#: a port (or 127.0.0.1:PORT) turns on the dashboard of the cluster numpool starts
DASHBOARD_ENV = "NUMPOOL_DASK_DASHBOARD"

log = logging.getLogger("numpool")


def _import() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise BackendUnavailableError(
            "backend='dask' needs Dask's distributed scheduler: python -m pip install "
            f"'.[dask]' in numpool's source tree (or pip install 'dask[distributed]'); {e}"
        ) from None
    return distributed


#: seconds to reach a scheduler before giving up (Pool(connect_timeout=...))
CONNECT_TIMEOUT_S = 10.0


@contextlib.contextmanager
def _environment_kept() -> Iterator[None]:
    """Starting a LocalCluster sets OMP_NUM_THREADS=1 (and MKL_, OPENBLAS_) in this
    process's environment for its workers; the caller's own is put back after."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k not in before]:
            del os.environ[key]
        for key, value in before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def connect(
    address: Any, workers: int, retries: int, timeout: float = CONNECT_TIMEOUT_S
) -> tuple[Any, Any]:
    """(client, cluster we started or None) for ``address`` (see the module docstring);
    a scheduler that cannot be reached within ``timeout`` seconds is a
    BackendUnavailableError naming it. The cluster numpool starts takes only
    clients with its credentials (``Client(cluster)`` has them)."""
    distributed = _import()
    if isinstance(address, distributed.Client):
        return address, None
    if address is None:
        address = os.environ.get(ADDRESS_ENV) or None
    if address is None:
        import dask

        security = _credentials(distributed)
        dashboard = _dashboard_address()
        config: dict[str, Any] = {
            # the scheduler reads allowed-failures when it starts: a task whose worker
            # died runs again on another one `retries` times, then KilledWorker
            "distributed.scheduler.allowed-failures": retries,
            # distributed starts an HTTP server in the scheduler and in every worker
            # whatever the dashboard: with no routes they serve nothing at all
            "distributed.worker.http.routes": [],
        }
        if dashboard is None:
            config["distributed.scheduler.http.routes"] = []
        _keep_main_out(distributed)
        with _environment_kept(), dask.config.set(config):
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                protocol="tls://",
                security=security,
                # off, it still listens: on a free port of 127.0.0.1, not on 8787
                dashboard_address=dashboard or "127.0.0.1:0",
                scheduler_kwargs={"dashboard": dashboard is not None},
                worker_dashboard_address=None,
                silence_logs=logging.CRITICAL,  # func's errors reach the caller anyway
            )
        if dashboard is not None:
            log.info("numpool's Dask cluster: dashboard at %s", cluster.dashboard_link)
        return distributed.Client(cluster, set_as_default=False), cluster
    try:  # an address or a cluster object
        return distributed.Client(address, set_as_default=False, timeout=timeout), None
    except (OSError, TimeoutError) as e:
        where = address if isinstance(address, str) else type(address).__name__
        raise BackendUnavailableError(
            f"backend='dask' cannot reach the Dask scheduler at {where} within {timeout:g} s "
            f"({type(e).__name__}: {e}). Check that the scheduler runs and the address is "
            "right, raise Pool(connect_timeout=...), or leave address=None for a "
            "LocalCluster on this machine."
        ) from None


def _credentials(distributed: Any) -> Any:
    """TLS credentials made for one cluster (a self-signed certificate and its key, in
    memory): its servers require them of every client, worker and nanny."""
    try:
        return distributed.Security.temporary()
    except ImportError:
        raise BackendUnavailableError(
            "backend='dask' starts its LocalCluster with TLS and a certificate made for it "
            "alone, so that no other user of this machine can run code on its workers; "
            "that needs the cryptography package: python -m pip install '.[dask]' in "
            "numpool's source tree (or pip install cryptography), or pass address= of a "
            "cluster of your own"
        ) from None


def _dashboard_address() -> str | None:
    """Where the dashboard of the cluster numpool starts listens: None (off) unless
    ``$NUMPOOL_DASK_DASHBOARD`` gives a port, or host:port with a loopback host."""
    value = os.environ.get(DASHBOARD_ENV, "").strip()
    if value in ("", "off"):
        return None
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not (port.isdigit() and int(port) < 65536 and loopback):
        raise ValueError(
            f"{DASHBOARD_ENV}={value!r}: expected a port (8787; 0 for any free one) or "
            "127.0.0.1:PORT. The dashboard of the cluster numpool starts listens on "
            "this machine's loopback only; for one that others may reach, start a "
            "cluster of your own and pass Pool('dask', address=...)"
        )
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _keep_main_out(distributed: Any) -> None:
    """The LocalCluster's worker processes start without running the user's
    ``__main__``, as numpool's own workers do (see ``_context.py``): with Dask's
    default spawn method, a script without a ``__main__`` guard otherwise ran again in
    every nanny and failed its start ("Nanny failed to start"). Dask ships functions
    from ``__main__`` by value (cloudpickle), so workers need nothing from it.
    This applies to every process ``distributed`` starts here from now on."""
    import distributed.process as dp

    from . import _context

    original: Any = getattr(dp, "get_mp_context")  # noqa: B009  (not re-exported)
    if getattr(original, "_numpool", False):
        return

    def get_mp_context() -> Any:
        ctx = original()
        if ctx.get_start_method() == "spawn" and os.name == "posix":
            return _context.SpawnContext()
        if ctx.get_start_method() == "forkserver":
            return _context.ForkServerContext()
        return ctx

    get_mp_context._numpool = True  # type: ignore[attr-defined]
    setattr(dp, "get_mp_context", get_mp_context)  # noqa: B010


class _DaskApply(ApplyIO):
    """Rows a:b scattered to the cluster once; the block's result comes back."""

    def __init__(self, backend: DaskBackend, inputs: Inputs, out: np.ndarray) -> None:
        super().__init__(inputs, out)
        self.client = backend.client
        self.local = backend.local
        self.inline = backend.retries > 0

    def block(self, a: int, b: int) -> tuple[Any, Any]:
        src = self.inputs.block(a, b)
        if isinstance(src, Cut):  # several arrays, an axis, a halo: inside the task
            if not self.local:
                # (the rows made up beyond the array's ends, boundary=, travel too)
                sent = [*src.args]
                if src.edge is not None:
                    sent += [*src.edge.before, *src.edge.after]
                self.count(sum(v.nbytes for v in sent if isinstance(v, np.ndarray)))
            return src.arrays(lambda v: _shipped(v, self.local)), None
        if not self.local:
            self.count(src.nbytes)
        rows = _shipped(src, self.local)
        if self.inline:  # inside the task: Dask can run it again after a worker dies
            return rows, None
        return _scatter(self.client, rows), None

    def took(self, a: int, b: int, res: Any) -> None:
        if not self.local:
            self.count(res.nbytes)
        along(self.out, a, b, self.inputs.axis)[...] = res


class _DaskMap(MapIO):
    """Each distinct array argument scattered once per call; futures stand in for it."""

    def __init__(self, backend: DaskBackend) -> None:
        self.client = backend.client
        self.local = backend.local
        self.inline = backend.retries > 0
        self.sent: dict[int, tuple[np.ndarray, Any]] = {}

    def _ref(self, a: Any) -> Any:
        return self.sent[id(a)][1] if isinstance(a, np.ndarray) else a

    def encode(self, batch: list[Task]) -> tuple[list[Task], None]:
        new = {
            id(a): a
            for _, args in batch
            for a in args
            if isinstance(a, np.ndarray) and id(a) not in self.sent
        }
        if new:  # one round trip for the batch's new arrays
            arrays = [_shipped(a, self.local) for a in new.values()]
            futures = arrays if self.inline else _scatter(self.client, arrays)
            for (key, a), f in zip(new.items(), futures, strict=True):
                self.sent[key] = (a, f)
                if not self.local:
                    self.count(a.nbytes)
        return [(i, tuple(self._ref(a) for a in args)) for i, args in batch], None

    def decode(self, batch: list[Task], results: list[Any]) -> list[Any]:
        if not self.local:
            self.count(sum(r.nbytes for r in results if isinstance(r, np.ndarray)))
        return results

    def abort(self) -> None:
        self.sent.clear()


def _scatter(client: Any, data: Any, wait_s: float = 10.0) -> Any:
    """client.scatter, again while a worker that just died is being replaced (a scatter
    can pick it in the moment before the scheduler forgets it: CommClosedError)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.scatter(data, hash=False)
        except OSError:  # CommClosedError is one
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _shipped(a: Any, local: bool) -> Any:
    """What to send for argument ``a``. To worker processes: a plain array wrapped in
    a _Laid, which unpickles in the layout it has here. In-process workers keep the
    object itself until the scheduler lets them drop it (later, asynchronously): a
    copy in the same layout, for a view of a SharedArray, so that its segment goes
    back when the call ends, as with every other backend."""
    if not (isinstance(a, np.ndarray) and _plain(a)):
        return a
    if not local:
        return _Laid(a)
    if shm.shared_ref(a) is not None:
        return _laid_out(a, a.ctypes.data % ALIGN, a.strides, copy=True)
    return a


def _plain(a: np.ndarray) -> bool:
    """Whether ``a`` is plain memory that a fresh ndarray stands for (as _checks.check_plain
    has it; other subclasses travel as Dask sends them)."""
    kind = type(a)
    plain = kind is np.ndarray or kind is np.memmap or kind.__module__.startswith("numpool")
    return plain and not a.dtype.hasobject


#: NumPy's loops choose their path (SIMD with aligned loads, a scalar loop, or copies
#: into an aligned buffer, which changes how a sum is grouped) from where an array
#: starts relative to this many bytes, the widest vector and a cache line
ALIGN = 64


class _Laid:
    """An array sent to worker processes, laid out there as here when a task takes it
    (:meth:`array`): Dask stores and moves this wrapper between workers, never the
    array it lays out, whose frames could land at any byte."""

    __slots__ = ("_array", "laid", "mod", "strides")

    def __init__(self, array: np.ndarray, mod: int | None = None, strides: Any = None) -> None:
        self._array = array
        self.mod = array.ctypes.data % ALIGN if mod is None else mod
        self.strides: tuple[int, ...] = array.strides if strides is None else strides
        self.laid = False

    def __reduce__(self) -> tuple[Any, ...]:
        return _Laid, (self._array, self.mod, self.strides)

    def __sizeof__(self) -> int:  # what Dask's memory accounting reads
        return int(self._array.nbytes)

    def array(self) -> np.ndarray:
        """The array in its layout, made on a worker's first use of it."""
        if not self.laid:
            self._array, self.laid = _laid_out(self._array, self.mod, self.strides), True
        return self._array


def _wrapped(args: Any) -> Any:
    """``args`` with every plain array in them (through tuples, lists and dicts) in a
    _Laid: what a task's arguments are sent as, to worker processes."""
    return _mapped(args, lambda a: _Laid(a) if isinstance(a, np.ndarray) and _plain(a) else a)


def _unwrapped(args: Any) -> Any:
    """``args`` with every _Laid in them (through tuples, lists and dicts) laid out."""
    return _mapped(args, lambda a: a.array() if isinstance(a, _Laid) else a)


def _mapped(args: Any, fn: Callable[[Any], Any]) -> Any:
    """``fn`` on each item of ``args``, through tuples (named ones too: a Cut), lists and
    dicts; what has nothing changed in it is returned itself."""
    kind = type(args)
    if kind is list or kind is tuple or (isinstance(args, tuple) and hasattr(args, "_fields")):
        items = [_mapped(a, fn) for a in args]
        if all(u is a for u, a in zip(items, args, strict=True)):
            return args
        if kind is list:
            return items
        return tuple(items) if kind is tuple else kind(*items)
    if kind is dict:
        new = {k: _mapped(v, fn) for k, v in args.items()}
        return args if all(new[k] is v for k, v in args.items()) else new
    return fn(args)


def _array_bytes(args: Any) -> int:
    """Bytes of the arrays in ``args`` (through tuples, lists, dicts and a Pool.submit
    call's _Sealed)."""
    found: list[int] = []

    def see(a: Any) -> Any:
        if isinstance(a, np.ndarray):
            found.append(a.nbytes)
        elif isinstance(a, _Sealed):
            _mapped(a.sent, see)
        return a

    _mapped(args, see)
    return sum(found)


def _laid_out(a: np.ndarray, mod: int, strides: tuple[int, ...], copy: bool = False) -> np.ndarray:
    """``a`` in fresh memory that starts at ``mod`` modulo ALIGN, with strides laid out
    as ``strides`` are (_strides_like); unless ``copy``, ``a`` itself where it is laid
    so already."""
    if a.dtype.hasobject or (a.size == 0 and not copy):
        return a.copy() if copy else a
    back = tuple(k for k, s in enumerate(strides) if s < 0 and a.shape[k] > 1)
    if back:  # (an axis that runs backwards here runs backwards there: the same loop)
        low = mod + sum((a.shape[k] - 1) * strides[k] for k in back)  # (its lowest item)
        forwards = tuple(abs(s) for s in strides)
        return np.flip(_laid_out(np.flip(a, back), low % ALIGN, forwards, copy=True), back)
    new = _strides_like(a.shape, strides, a.itemsize, a.nbytes)
    if not copy and a.ctypes.data % ALIGN == mod and a.strides == new and a.flags.writeable:
        return a
    span = a.itemsize + sum(s * (n - 1) for n, s in zip(a.shape, new, strict=True))
    buf = np.empty(span + ALIGN, np.uint8)
    start = (mod - buf.ctypes.data) % ALIGN
    out: np.ndarray = np.ndarray(a.shape, a.dtype, buffer=buf, offset=start, strides=new)
    np.copyto(out, a, casting="no")
    return out


def _strides_like(
    shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int, nbytes: int
) -> tuple[int, ...]:
    """Strides for a fresh copy of an array of this shape and ``strides`` that NumPy
    walks as it walks the original: the axes in the same order, the same axes merged
    into one contiguous run, and (where items are contiguous, for SIMD) each row at
    the same address modulo ALIGN; gaps of less than 2*ALIGN bytes make that so.
    C order where that is impossible (a negative stride, misaligned items) or
    would take more than twice the memory."""
    axes = sorted((k for k in range(len(shape)) if shape[k] > 1), key=lambda k: strides[k])
    if axes and strides[axes[0]] > 0 and not any(strides[k] % itemsize for k in axes):
        # rows start at the same place modulo ALIGN only where they are contiguous
        for modulus in (ALIGN, itemsize) if strides[axes[0]] == itemsize else (itemsize,):
            new, span, run, new_run = list(strides), itemsize, itemsize, itemsize
            for k in axes:
                if strides[k] == run:  # merged with the axes before it
                    new[k] = new_run
                else:  # the least stride past what is laid, the same modulo `modulus`
                    new[k] = span + (strides[k] - span) % modulus
                    new[k] += modulus if new[k] == new_run else 0
                span += new[k] * (shape[k] - 1)
                run, new_run = strides[k] * shape[k], new[k] * shape[k]
            if span <= 2 * nbytes:
                return tuple(new)
    c, step = [], itemsize
    for n in reversed(shape):
        c.append(step)
        step *= n
    return tuple(reversed(c))


def _in_process(client: Any) -> bool:
    """Whether every worker runs in this process (LocalCluster(processes=False))."""
    pids = client.run(os.getpid)
    return bool(pids) and all(pid == os.getpid() for pid in pids.values())


_budget: int | None = None


def _run(
    n: int | None, err: _fpe.Modes, warn: bytes, data: bytes, aside: tuple[np.ndarray, ...]
) -> Any:
    """Run a task in a worker process: its function and arguments loaded here from
    what :func:`~numpool.backends._worker.pack` made of them (Dask would unpickle them
    before any of numpool's code ran, and one that cannot load there, a function the
    worker's copy of its module lacks, would kill the worker: here it is the task's
    own error), its arrays laid out as in the caller, under the BLAS budget ``n`` set
    on the first task (a worker restarted after a crash, or one that joined later,
    gets it too), the caller's NumPy error modes ``err`` (see ``_fpe``) and warning
    filters ``warn``: the warnings that pass them come back with the result (see
    ``_warns``)."""
    global _budget
    if n is not None and _budget != n:
        blas.limit_this_process(n)
        _budget = n
    (fn, *args), kwargs = load_packed(data, aside, "the task's function or an argument")
    args = _unwrapped(tuple(args))
    if not _one_thread():  # (the filters are the process's: see _warns.run)
        return _fpe.run((err, None), fn, *args, **kwargs)
    value, heard = _warns.run(warn, _fpe.run, (err, None), fn, *args, **kwargs)
    return value if heard is None else _warns.Sent(value, heard)


_threads: int | None = None


def _one_thread() -> bool:
    """Whether this Dask worker runs one task at a time (numpool's own cluster does).
    A worker with several threads runs tasks side by side, and the warning filters
    are its process's: there, a task's warnings stay with the worker (its log)."""
    global _threads
    if _threads is None:
        try:
            _threads = int(_import().get_worker().state.nthreads)
        except Exception:  # (not in a worker: a test calling _run itself)
            _threads = 1
    return _threads == 1


def _large_graph() -> int:
    """The size of a task above which Dask warns of a large graph, in bytes."""
    import dask
    from dask.utils import parse_bytes

    return int(parse_bytes(dask.config.get("distributed.admin.large-graph-warning-threshold")))


def _init_plugin(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """A Dask worker plugin that runs Pool(initializer=) as each worker starts (a class
    made here: Dask is imported only when used; cloudpickle sends it by value)."""
    distributed = _import()

    class NumpoolInitializer(distributed.WorkerPlugin):  # type: ignore[name-defined]
        def __init__(self) -> None:
            self.fn, self.args = fn, args

        def setup(self, worker: Any) -> None:
            self.fn(*self.args)

    return NumpoolInitializer()


class _Sealed:
    """Pool.submit's call, opaque to Dask: Client.submit runs the Dask tasks it finds
    in its arguments (a batch of Dask's local scheduler, with the pool as Dask's
    scheduler, is a list of them) where ``fn`` must receive them as they are."""

    __slots__ = ("sent",)

    def __init__(self, sent: tuple[Any, tuple[Any, ...], dict[str, Any]]) -> None:
        self.sent = sent

    def __reduce__(self) -> tuple[Any, ...]:
        return _Sealed, (self.sent,)


def _open(sealed: _Sealed) -> Any:
    """Run a sealed Pool.submit call (its arrays laid out as in the caller)."""
    fn, args, kwargs = _unwrapped(sealed.sent)
    return call(fn, args, kwargs)


class _Bridged(Future[Any]):
    """A concurrent.futures.Future for a Dask task (Pool.submit's contract; the engine
    needs no other kind). It holds the Dask future: a dropped one is released."""

    def __init__(self, task: Any) -> None:
        super().__init__()
        self.task = task
        task.add_done_callback(self._settle)

    def _settle(self, task: Any) -> None:
        try:
            value = task.result()
        except BaseException as e:  # the task's own exception, or KilledWorker
            with contextlib.suppress(InvalidStateError):
                self.set_exception(e)
        else:
            if isinstance(value, _warns.Sent):  # (a task's warnings, before its result)
                _warns.emit(value.heard)
                value = value.value
            with contextlib.suppress(InvalidStateError):
                self.set_result(value)
        self.task = None  # released: the cluster may forget the result now

    def cancel(self) -> bool:
        """Cancel the Dask task too; a cancelled future is notified at once, as an
        executor does, so that wait() and as_completed() see it done."""
        if not super().cancel():
            return False
        task, self.task = self.task, None
        if task is not None:
            with contextlib.suppress(Exception):  # the client closed meanwhile
                task.cancel()
        with contextlib.suppress(RuntimeError):  # notified already (cancelled twice)
            self.set_running_or_notify_cancel()
        return True


class DaskTransport(Transport):
    """Arrays scattered to the workers once; with retries, inside their tasks (Dask
    cannot recompute scattered data lost with a worker, but it can rerun a task)."""

    name = "dask"

    def __init__(self, backend: DaskBackend) -> None:
        super().__init__()
        self.backend = backend

    def apply_io(
        self, inputs: Inputs, out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype
    ) -> ApplyIO:
        return _DaskApply(self.backend, inputs, out if out is not None else np.empty(shape, dtype))

    def map_io(self) -> MapIO:
        return _DaskMap(self.backend)


class DaskBackend(Backend):
    name = "dask"
    in_process = False
    #: every block crosses the network, and a task costs a scheduler round trip
    #: (measured when the backend connects: see task_seconds)
    max_block_bytes = 32 << 20
    options = frozenset({"address", "retries", "connect_timeout"})
    transport: ClassVar[Transport]  # one per backend: it holds the client

    def __init__(
        self,
        workers: int,
        blas_threads: int | None,
        address: Any = None,
        retries: int = 0,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        super().__init__(workers, blas_threads)
        self.retries = retries
        self.client, self._cluster = connect(address, workers, retries, connect_timeout)
        self.transport = DaskTransport(self)  # type: ignore[misc]
        #: workers in this process share the caller's process-wide BLAS limit (as with
        #: threads); worker processes each get the budget with their first task
        self.local = _in_process(self.client)
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.address = self.client.scheduler.address
        self._round_trip: float | None = None
        #: futures handed out and not yet settled (shutdown settles what is left)
        self._outstanding: weakref.WeakSet[_Bridged] = weakref.WeakSet()
        #: the name of the worker plugin of Pool(initializer=)
        self._plugin: str | None = None

    def task_seconds(self, profile: Any) -> float:
        """A scheduler round trip of a tiny task on this cluster, measured once."""
        if self._round_trip is None:
            trips = []
            for _ in range(5):
                t0 = time.perf_counter()
                self.client.submit(int, pure=False).result()
                trips.append(time.perf_counter() - t0)
            self._round_trip = sorted(trips)[len(trips) // 2]
        return self._round_trip

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.client is None:
            raise RuntimeError("cannot schedule new work after the pool was shut down")
        # the caller's NumPy error modes: Dask pickles a task's callables even for a
        # worker in this process, so one of the caller's own to call back is refused
        err = _fpe.to_send("a Dask worker (which gets a pickled copy)")
        if not self.local:
            also = (_import().Future,)
            data, aside = pack((fn, *_wrapped(args)), kwargs, by_value=True, also=also)
            fn, args, kwargs = _run, (self.blas_threads, err, _warns.to_send(), data, aside), {}
            size = len(data) + sum(getattr(a, "nbytes", 0) for a in aside)
        else:
            # (by value as to a worker process, so that code keeps its file name)
            fn, args = _fpe.run, ((err, None), ship(fn), *ship_args(args))
            size = _array_bytes(args)
        if size < _large_graph() // 2:
            future = _Bridged(self.client.submit(fn, *args, pure=False, **kwargs))
        else:
            # with retries, blocks travel inside their tasks on purpose: Dask's warning
            # about a large graph is not for the user. (Only then: catch_warnings resets
            # every module's record of warnings shown, so "default" would show again.)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*[Ll]arge (object|graph)")
                future = _Bridged(self.client.submit(fn, *args, pure=False, **kwargs))
        self._outstanding.add(future)
        return future

    def set_initializer(self, initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
        """A worker plugin runs it on every worker of the cluster, those that join or
        replace one later too; taken off the cluster with the pool (see shutdown)."""
        super().set_initializer(initializer, initargs)
        self._plugin = f"numpool-init-{os.urandom(16).hex()}"
        try:
            self.client.register_plugin(_init_plugin(initializer, initargs), name=self._plugin)
        except Exception as e:
            raise BrokenExecutor(
                f"the pool's initializer {getattr(initializer, '__qualname__', initializer)!r}"
                f" raised {type(e).__name__} on a Dask worker: {e}; fix it, or make the pool "
                "without it"
            ) from e

    def submit_call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """``Pool.submit``: the user's keywords travel as a dict (Client.submit has
        keywords of its own), and the result or error comes back whole."""
        if self.local:  # (by value as to a worker process: code keeps its file name)
            return self.submit(_open, _Sealed((ship(fn), ship_args(args), kwargs)))
        return self.submit(_open, _Sealed(_wrapped((fn, args, kwargs))))

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return process_budget(self.blas_threads) if self.local else contextlib.nullcontext()

    #: Dask re-runs a dead worker's tasks itself (allowed-failures), not the engine
    resubmits = False

    def is_crash(self, exc: BaseException) -> bool:
        """KilledWorker: Dask gave up on a task whose workers died; a cancelled task we
        did not cancel: its scattered input was lost with a worker."""
        distributed = _import()
        return isinstance(exc, (distributed.KilledWorker, CancelledError))

    def recover(self) -> None:
        if self._cluster is not None:  # ours: its nannies restart the dead in ~1 s
            with contextlib.suppress(Exception):
                self._settle()

    def crash_cause(self) -> str:
        return (
            "a Dask worker died (killed by the out-of-memory killer or a crash) and Dask "
            "gave up on the task (KilledWorker, or its input was lost with the worker)"
        )

    def _settle(self, timeout: float = 10.0, quiet: float = 0.5) -> None:
        """Wait until the cluster has its workers back and its membership has been
        still for ``quiet`` seconds: a worker that died but is not yet removed would
        take the next call's scattered data down with it."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        since = time.monotonic()
        while time.monotonic() < deadline:
            now = set(self.client.scheduler_info()["workers"])
            if now != seen:
                seen, since = now, time.monotonic()
            elif len(now) >= self.workers and time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)

    def max_in_flight(self) -> int:
        # each task is a scheduler round trip (~5 ms here): keep many queued; what is
        # in flight is scattered data in the workers' memory, bounded by this
        return 8 * self.workers

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The Executor's shutdown: pending tasks cancelled on request, running ones
        waited for on request; then every future still open is cancelled (its client
        is gone, nothing would ever settle it) and the client and cluster closed."""
        outstanding = list(self._outstanding)
        if cancel_futures:
            for f in outstanding:
                f.cancel()
        if wait:
            wait_for(outstanding)
        for f in outstanding:
            if not f.done():
                f.cancel()
        client, self.client = self.client, None
        if client is not None:
            if self._plugin is not None and self._cluster is None:  # (a cluster of others)
                with contextlib.suppress(Exception):
                    client.unregister_worker_plugin(self._plugin)
            with contextlib.suppress(Exception):
                client.close()
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
