"""SciPy's optimisers with ``workers=`` a numpool map, and with ``workers=1``.

Guard-less on purpose (no ``if __name__ == "__main__"``): the objectives live in
``__main__``, which worker processes never import. It also runs as a notebook
would: its text fed to ``python -i``, or exec'd into ``__main__``. Prints one JSON
line: what ``workers=1`` gave, and what each map gave. ``NUMPOOL_BACKEND`` names the
pool's backend, ``NUMPOOL_MAPS`` the maps tried (default: both).
"""

import functools
import json
import os

import numpy as np
from scipy import integrate, optimize

import numpool

BACKEND = os.environ["NUMPOOL_BACKEND"]
BOUNDS = [(-1.0, 1.0), (-1.0, 1.0)]


def sphere(x, shift=0.3):
    return float(np.sum((np.asarray(x) - shift) ** 2))


def curve(t):
    return np.array([np.sin(t), np.cos(3.0 * t), t * t])


def run(workers):
    out = {}
    de = functools.partial(
        optimize.differential_evolution,
        bounds=BOUNDS,
        maxiter=3,
        popsize=4,
        seed=1,
        polish=False,
        updating="deferred",
        workers=workers,
    )
    r = de(sphere)
    out["differential_evolution"] = [r.x.tolist(), r.fun, r.nfev]
    r = de(sphere, args=(-0.2,))  # SciPy wraps the objective with its args
    out["differential_evolution args="] = [r.x.tolist(), r.fun, r.nfev]
    x0, fval, _, jout = optimize.brute(
        sphere, BOUNDS, Ns=5, full_output=True, finish=None, workers=workers
    )
    out["brute"] = [x0.tolist(), float(fval), jout.tolist()]
    r = optimize.shgo(sphere, BOUNDS, n=16, iters=1, workers=workers)
    out["shgo"] = [r.x.tolist(), r.fun, r.nfev]
    res, err = integrate.quad_vec(curve, 0.0, 1.0, workers=workers)
    out["quad_vec"] = [res.tolist(), err]
    return out


MAPS = os.environ.get("NUMPOOL_MAPS", "pool.map,numpool.map").split(",")
got = {"workers=1": run(1)}
if "pool.map" in MAPS:
    with numpool.Pool(BACKEND, workers=2) as pool:
        got["pool.map"] = run(pool.map)

if "numpool.map" in MAPS:
    got["numpool.map"] = run(functools.partial(numpool.map, backend=BACKEND, workers=2))

print("RESULT " + json.dumps(got), flush=True)
