"""scikit-learn's n_jobs on joblib's "numpool" backend against loky (issue 23).

Run:  python benchmarks/sklearn_joblib.py [--runs 5] [--n-jobs 2]

Workload: ``cross_val_score`` of a ``RandomForestClassifier`` (50 trees, 5 folds)
on ``make_classification(3000 samples, 20 features)``: five GIL-holding ``fit``
calls, each sharing the same X (480 kB: pickled by both; arrays from 1 MiB go
through numpool's shared memory and loky's memory maps). Each run is a fresh
interpreter (interleaved: loky, numpool, n_jobs=1, ...), which times the first
call (workers started, scikit-learn imported in them) and then a second, warm
one; each run checks that its scores equal n_jobs=1's, bit for bit. Printed:
median and range per backend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

RUN = """
import json, sys, time
import numpy as np
import joblib, numpool
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score

backend, n_jobs = sys.argv[1], int(sys.argv[2])
x, y = make_classification(n_samples=3000, n_features=20, n_informative=10, random_state=0)
forest = RandomForestClassifier(n_estimators=50, random_state=0)
times = []
with joblib.parallel_config(backend=backend):
    for _ in range(2):
        t = time.perf_counter()
        scores = cross_val_score(forest, x, y, cv=5, n_jobs=n_jobs)
        times.append(time.perf_counter() - t)
print(json.dumps({"cold": times[0], "warm": times[1], "scores": scores.tolist()}))
"""


def run(backend: str, n_jobs: int) -> dict[str, object]:
    """One fresh interpreter's cold and warm times and its scores."""
    out = subprocess.run(
        [sys.executable, "-c", RUN, backend, str(n_jobs)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n-jobs", type=int, default=2)
    args = ap.parse_args()
    cases = [("loky", args.n_jobs), ("numpool", args.n_jobs), ("loky", 1)]
    got: dict[tuple[str, int], list[dict[str, object]]] = {c: [] for c in cases}
    for _ in range(args.runs):
        for c in cases:
            got[c].append(run(*c))
    want = got[("loky", 1)][0]["scores"]
    print(f"cross_val_score(RandomForestClassifier(50), 3000x20, cv=5), {args.runs} fresh runs")
    print(
        f"{'backend':<10}{'n_jobs':>7}{'cold s (median, range)':>28}{'warm s (median, range)':>28}"
    )
    for (name, n), runs in got.items():
        same = all(r["scores"] == want for r in runs)
        cells = []
        for key in ("cold", "warm"):
            ts = [float(r[key]) for r in runs]  # type: ignore[arg-type]
            cells.append(f"{statistics.median(ts):.2f} ({min(ts):.2f}-{max(ts):.2f})")
        label = "serial" if n == 1 else name
        print(f"{label:<10}{n:>7}{cells[0]:>28}{cells[1]:>28}   same as n_jobs=1: {same}")


if __name__ == "__main__":
    main()
