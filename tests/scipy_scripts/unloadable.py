"""A SciPy objective that worker processes cannot load, in a guard-less script.

``NUMPOOL_UNLOADABLE=attribute``: a function added to a module at run time (the
module's file, which workers import, lacks it); ``module``: a function of a module
whose file is gone. Prints one JSON line: what the caller caught from each map, and
whether the pool still works afterwards.
"""

import functools
import json
import os
import shutil
import sys
import tempfile

from scipy import optimize

import numpool

HOW = os.environ["NUMPOOL_UNLOADABLE"]
here = tempfile.mkdtemp()
with open(os.path.join(here, "numpool_gone_mod.py"), "w") as f:
    f.write("import numpy as np\n\n\ndef objective(x):\n    return float(np.sum(x * x))\n")
sys.path.insert(0, here)
import numpool_gone_mod  # noqa: E402

if HOW == "attribute":
    exec("def late(x):\n    return float(np.sum(x * x))\n", numpool_gone_mod.__dict__)
    objective = numpool_gone_mod.late
else:
    objective = numpool_gone_mod.objective
shutil.rmtree(here) if HOW == "module" else None

caught = {}
with numpool.Pool("processes", workers=2) as pool:
    maps = {
        "pool.map": pool.map,
        "numpool.map": functools.partial(numpool.map, backend="processes", workers=2),
    }
    for name, workers in maps.items():
        try:
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
        except Exception as e:
            caught[name] = [[c.__name__ for c in type(e).__mro__], str(e)]
        else:
            caught[name] = None
    caught["pool works after"] = list(pool.map(abs, [-1, -2])) == [1, 2]
print("RESULT " + json.dumps(caught), flush=True)
