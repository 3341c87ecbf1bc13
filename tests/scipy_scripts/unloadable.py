"""SciPy objectives that worker processes cannot load, in a guard-less script.

``attribute``: a function added to a module at run time (the module's file, which
workers import, lacks it); ``module``: a function of a module whose file is gone.
Each goes to ``differential_evolution`` (as SciPy's wrapper: the task's func) and
to ``quad_vec`` (inside the task's arguments), with ``pool.map`` and
``numpool.map`` on processes. Prints one JSON line: what the caller caught from
each (null: it ran), and whether the pool still works afterwards.
"""

import functools
import json
import shutil
import sys
import tempfile
from pathlib import Path

from scipy import integrate, optimize

import numpool

SOURCE = "import numpy as np\n\n\ndef objective(x):\n    return float(np.sum(x * x))\n"
kept, gone = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
(kept / "numpool_late_mod.py").write_text(SOURCE)
(gone / "numpool_gone_mod.py").write_text(SOURCE)
sys.path[:0] = [str(kept), str(gone)]
import numpool_gone_mod  # noqa: E402
import numpool_late_mod  # noqa: E402

exec("def late(x):\n    return float(np.sum(x * x))\n", numpool_late_mod.__dict__)
shutil.rmtree(gone)
objectives = {"attribute": numpool_late_mod.late, "module": numpool_gone_mod.objective}


def solve(scipy, objective, workers):
    if scipy == "quad_vec":
        integrate.quad_vec(objective, 0.0, 1.0, workers=workers)
    else:
        optimize.differential_evolution(
            objective,
            [(-1.0, 1.0), (-1.0, 1.0)],
            maxiter=1,
            popsize=2,
            seed=1,
            polish=False,
            updating="deferred",
            workers=workers,
        )


caught = {}
with numpool.Pool("processes", workers=2) as pool:
    maps = {
        "pool.map": pool.map,
        "numpool.map": functools.partial(numpool.map, backend="processes", workers=2),
    }
    for scipy in ("differential_evolution", "quad_vec"):
        for how, objective in objectives.items():
            for name, workers in maps.items():
                key = f"{how} {scipy} {name}"
                try:
                    solve(scipy, objective, workers)
                except Exception as e:
                    caught[key] = [[c.__name__ for c in type(e).__mro__], str(e)]
                else:
                    caught[key] = None
    caught["pool works after"] = list(pool.map(abs, [-1, -2])) == [1, 2]
shutil.rmtree(kept)
print("RESULT " + json.dumps(caught), flush=True)
