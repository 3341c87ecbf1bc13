"""The machine a bench runs on: what it is, and what its hardware can do.

``describe()`` records facts: what ``numpool doctor`` reports (cores numpool
may use, memory, BLAS, /dev/shm, versions) plus the CPU model.
``limits()`` measures, in the same run as the experiments, the ceilings
every row is compared with:

* copy bandwidth: a large array copied by one thread per usable core (NumPy
  releases the GIL), counted as bytes read + bytes written per second;
* float64 matmul throughput: one n x n product with BLAS on one thread, one
  product with BLAS on all usable cores, and one product per core at the
  same time (one BLAS thread each, what a pool of threads does).

A single timing of these moves with whatever else the machine is doing (the
copy bandwidth read 50.5, 24.3 and 17.0 GB/s in three runs on one machine),
so each is measured in rounds until the best three rounds agree within 5%
(:func:`stable`); the figure is their median, and the spread of all rounds
is reported with it.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

import numpool
from numpool import doctor

__all__ = ["cpu_model", "describe", "limits", "stable"]


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
    """Facts about this machine and software, for results.json (``numpool doctor``'s)."""
    facts = doctor.examine()
    cores, shm = facts["cores"], facts["shm"]
    return {
        "cpu_model": cpu_model(),
        "logical_cores": cores["logical"],
        "physical_cores": cores["physical"],
        "usable_cores": cores["usable"],
        "default_workers": cores["default_workers"],
        "memory_total_bytes": facts["memory"]["total_bytes"],
        "memory_available_bytes": facts["memory"]["available_bytes"],
        "shm_dir": shm["dir"],
        "shm_total_bytes": shm.get("total_bytes"),
        "shm_free_bytes": shm.get("free_bytes"),
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
            for i in facts["threadpools"]
        ],
        "env": facts["env"],
        "python": facts["versions"]["python"],
        "numpy": facts["versions"]["numpy"],
        "numpool": facts["versions"]["numpool"],
        "platform": facts["versions"]["platform"],
    }


def stable(
    once: Callable[[], float],
    *,
    min_rounds: int = 3,
    max_rounds: int = 12,
    tolerance: float = 0.05,
) -> dict[str, Any]:
    """Measure a rate (higher is better) in rounds until the best three agree.

    Interference from other work only ever slows a round down, so the best
    rounds are the machine's; three of them within ``tolerance`` of each
    other rule out a lucky outlier. Returns the median of the best three
    (``value``), every round, their spread and whether they agreed.
    """
    rounds: list[float] = []
    agreed = False
    while len(rounds) < max_rounds:
        rounds.append(once())
        if len(rounds) >= min_rounds:
            best = sorted(rounds)[-3:]
            if best[0] >= (1 - tolerance) * best[-1]:
                agreed = True
                break
    best = sorted(rounds)[-3:]
    return {
        "value": statistics.median(best),
        "rounds": rounds,
        "min": min(rounds),
        "max": max(rounds),
        "best3_spread": (best[-1] - best[0]) / best[-1],
        "agreed": agreed,
        "tolerance": tolerance,
    }


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def copy_bandwidth(nbytes: int, threads: int) -> dict[str, Any]:
    """Bytes read + written per second by a parallel copy on ``threads`` threads."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    edges = np.linspace(0, src.size, threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as ex:

        def part(i: int) -> None:
            np.copyto(dst[edges[i] : edges[i + 1]], src[edges[i] : edges[i + 1]])

        def run() -> None:
            list(ex.map(part, range(threads)))

        run()  # faults dst in and starts the threads
        return stable(lambda: 2 * nbytes / min(_timed(run) for _ in range(3)))


def matmul_flops(n: int, blas: int) -> dict[str, Any]:
    """float64 flop/s of one n x n product with BLAS limited to ``blas`` threads."""
    a, b = np.ones((n, n)), np.ones((n, n))
    with numpool.blas_threads(blas):
        a @ b
        return stable(lambda: 2 * n**3 / _timed(lambda: a @ b))


def matmul_flops_concurrent(n: int, threads: int) -> dict[str, Any]:
    """float64 flop/s of ``threads`` n x n products at once, one BLAS thread each."""
    pairs = [(np.ones((n, n)), np.ones((n, n))) for _ in range(threads)]
    with numpool.blas_threads(1), ThreadPoolExecutor(threads) as ex:

        def run() -> None:
            list(ex.map(lambda p: p[0] @ p[1], pairs))

        run()
        return stable(lambda: threads * 2 * n**3 / _timed(run))


def limits(quick: bool, cores: int) -> dict[str, Any]:
    """The hardware ceilings, measured now, each with its rounds and spread."""
    n = 800 if quick else 2000
    t = time.perf_counter()
    copy = copy_bandwidth((128 if quick else 512) << 20, cores)
    one = matmul_flops(n, 1)
    all_cores = matmul_flops(n, cores)
    concurrent = matmul_flops_concurrent(n, cores)
    return {
        "copy_bandwidth_Bps": copy["value"],
        "matmul_flops_1core": one["value"],
        "matmul_flops_all_cores": all_cores["value"],
        "matmul_flops_concurrent": concurrent["value"],
        # the best way this machine was seen to use all its cores on products
        "matmul_flops_limit": max(all_cores["value"], concurrent["value"]),
        "matmul_size": n,
        "cores": cores,
        "measurements": {
            "copy_bandwidth_Bps": copy,
            "matmul_flops_1core": one,
            "matmul_flops_all_cores": all_cores,
            "matmul_flops_concurrent": concurrent,
        },
        "seconds": time.perf_counter() - t,
    }
