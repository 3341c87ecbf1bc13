"""The machine a bench runs on: what it is, and what its hardware can do.

``describe()`` records facts (CPU model, cores, BLAS, versions, /dev/shm).
``limits()`` measures, in the same run as the experiments, the two ceilings
every row is compared with:

* copy bandwidth: a 512 MiB array copied by one thread per usable core
  (NumPy releases the GIL), counted as bytes read + bytes written per second;
* float64 matmul throughput: one 2000x2000 product (2 n^3 flops) with BLAS
  limited to one thread, and with BLAS on all usable cores.
"""

from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import __version__
from .._cpus import physical_cores, usable_cpus
from ..blas import blas_threads
from ..shm import shm_dir

__all__ = ["cpu_model", "describe", "limits"]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict[str, Any]:
    """Facts about this machine and software, for results.json."""
    import psutil
    from threadpoolctl import threadpool_info

    st = os.statvfs(shm_dir())
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cores": usable_cpus(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "memory_available_bytes": psutil.virtual_memory().available,
        "shm_dir": shm_dir(),
        "shm_total_bytes": st.f_blocks * st.f_frsize,
        "shm_free_bytes": st.f_bavail * st.f_frsize,
        "threadpools": [
            {
                k: i.get(k)
                for k in (
                    "user_api",
                    "internal_api",
                    "version",
                    "num_threads",
                    "threading_layer",
                    "filepath",
                )
            }
            for i in threadpool_info()
        ],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpool": __version__,
        "platform": platform.platform(),
    }


def _best(fn: Any, repeat: int) -> float:
    fn()
    return min(_timed(fn) for _ in range(repeat))


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def copy_bandwidth(nbytes: int = 512 << 20, threads: int | None = None) -> float:
    """Bytes read + written per second by a parallel copy on all usable cores."""
    threads = threads or usable_cpus()
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    edges = np.linspace(0, src.size, threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as ex:

        def run() -> None:
            list(
                ex.map(
                    lambda i: np.copyto(
                        dst[edges[i] : edges[i + 1]], src[edges[i] : edges[i + 1]]
                    ),
                    range(threads),
                )
            )

        t = _best(run, 5)
    return 2 * nbytes / t


def matmul_flops(n: int = 2000, threads: int | None = None) -> float:
    """float64 matmul flop/s of one n x n product with BLAS limited to ``threads``."""
    a = np.ones((n, n))
    b = np.ones((n, n))
    with blas_threads(threads or usable_cpus()):
        t = _best(lambda: a @ b, 3)
    return 2 * n**3 / t


def limits(quick: bool = False) -> dict[str, float]:
    """The hardware ceilings, measured now."""
    n = 1000 if quick else 2000
    return {
        "copy_bandwidth_Bps": copy_bandwidth((128 if quick else 512) << 20),
        "matmul_flops_1core": matmul_flops(n, 1),
        "matmul_flops_all_cores": matmul_flops(n, usable_cpus()),
        "matmul_size": n,
    }
