"""Chained-equations imputation (scikit-learn's IterativeImputer with BayesianRidge) on the
masks that `examples/tabular_impute.rs --masks-out DIR` wrote: an outside reference for the
imputation benchmark, not a dependency of the project.

    python benches/reference/iterative_impute.py DIR [--json]

For each <table>_<rate>_<seed>.csv in DIR (1 = visible) and its scaled <table>.csv: fills the
hidden cells with IterativeImputer(estimator=BayesianRidge(), max_iter=10, random_state=seed)
and prints the RMSE of the hidden cells (mean over the seeds) per table and rate, with seconds.
"""
import glob
import json
import os
import sys
import time

import numpy as np
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.linear_model import BayesianRidge


def main():
    folder = sys.argv[1]
    as_json = "--json" in sys.argv
    results = {}
    for path in sorted(glob.glob(os.path.join(folder, "*_*_*.csv"))):
        stem = os.path.basename(path)[:-4]
        table, rate, seed = stem.rsplit("_", 2)
        truth = np.loadtxt(os.path.join(folder, table + ".csv"), delimiter=",", skiprows=1)
        visible = np.loadtxt(path, delimiter=",", skiprows=1).astype(bool)
        masked = np.where(visible, truth, np.nan)
        start = time.time()
        imputer = IterativeImputer(estimator=BayesianRidge(), max_iter=10, random_state=int(seed))
        filled = imputer.fit_transform(masked)
        seconds = time.time() - start
        hidden = ~visible
        rmse = float(np.sqrt(np.mean((filled[hidden] - truth[hidden]) ** 2)))
        r = results.setdefault((table, float(rate)), {"rmse": [], "seconds": 0.0})
        r["rmse"].append(rmse)
        r["seconds"] += seconds
    for (table, rate), r in sorted(results.items()):
        mean = sum(r["rmse"]) / len(r["rmse"])
        if as_json:
            print(json.dumps({"table": table, "rate": rate, "rmse": mean,
                              "rmse_per_mask": r["rmse"], "seconds": r["seconds"]}))
        else:
            print(f"| {table} | {rate} | {mean:.4f} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
