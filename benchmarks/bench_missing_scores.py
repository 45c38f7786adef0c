"""How should the anomaly detector score rows with missing cells?

``VAEAnomalyDetector`` scores a row by ``log p(x_obs)``: with missing cells
that is a sum over fewer cells, so a row with many missing cells would look
more normal for that reason alone. This script compares rules for making
rows with different numbers of observed cells comparable, on the 13
classical ADBench sets (``../shared/data/adbench``, the ADBench protocol of
``bench_anomaly.py``), with cells hidden at random:

- training rows: each cell hidden with probability ``--train-rate``;
- test rows: each row draws its own missing rate from {0, 0.25, 0.5, 0.75},
  independent of its label, so a rule that favours rows with many missing
  cells loses AUROC.

Rules (the detector's ``_missing_rule``):

- ``observed``: ``log p(x_obs)`` as it is;
- ``scaled``: ``log p(x_obs) * d / d_obs``, the row's own mean per observed
  cell over all ``d`` cells;
- ``mean_fill``: ``log p(x_obs) + (d - d_obs) * c``, with ``c`` the training
  rows' mean log-likelihood per observed cell.

Also printed: the AUROC on the complete test rows (no cell hidden), the
reference the rules are measured against. One fit serves all rules (they
only change the scores).

Usage: ``python benchmarks/bench_missing_scores.py [--seeds 0 1] [--sets ...]``
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skvae import VAEAnomalyDetector  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "adbench"
RULES = ("observed", "scaled", "mean_fill")
TEST_RATES = (0.0, 0.25, 0.5, 0.75)


def adbench_split(X, y, seed):
    """ADBench's protocol: resample to 1000-10000 rows, stratified 70/30
    split, MinMax scaling fitted on the training part."""
    rng = np.random.RandomState(seed)
    n = len(y)
    if n < 1000:
        idx = rng.choice(n, 1000, replace=True)
        X, y = X[idx], y[idx]
    elif n > 10000:
        idx = rng.choice(n, 10000, replace=False)
        X, y = X[idx], y[idx]
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=y, shuffle=True, random_state=seed
    )
    scaler = MinMaxScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def hide(X, rates, rng):
    """Each row of X with cells hidden at its own rate."""
    X = X.copy()
    X[rng.random(X.shape) < rates[:, None]] = np.nan
    return X


def run_set(path, seed, train_rate):
    data = np.load(path)
    X_tr, X_te, _, y_te = adbench_split(data["X"].astype(float), data["y"], seed)
    rng = np.random.default_rng(seed)
    X_tr = hide(X_tr, np.full(len(X_tr), train_rate), rng)
    X_te_m = hide(X_te, rng.choice(TEST_RATES, size=len(X_te)), rng)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = VAEAnomalyDetector(random_state=seed).fit(X_tr)
    seconds = time.perf_counter() - t0
    out = {"complete": roc_auc_score(y_te, -det.score_samples(X_te))}
    for rule in RULES:
        det._missing_rule = rule
        out[rule] = roc_auc_score(y_te, -det.score_samples(X_te_m))
    out["seconds"] = seconds
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--sets", nargs="+", default=None)
    parser.add_argument("--train-rate", type=float, default=0.1)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"no data at {DATA}; nothing to do")
        return
    print(f"load: {os.getloadavg()}")
    paths = sorted(DATA.glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))
    if args.sets:
        paths = [p for p in paths if any(s in p.name for s in args.sets)]
    cols = ("complete", *RULES)
    print("| set | " + " | ".join(cols) + " | fit s |")
    print("|---|" + "---:|" * (len(cols) + 1))
    means = {c: [] for c in cols}
    for path in paths:
        rows = [run_set(path, s, args.train_rate) for s in args.seeds]
        row = {c: float(np.mean([r[c] for r in rows])) for c in cols}
        for c in cols:
            means[c].append(row[c])
        secs = np.mean([r["seconds"] for r in rows])
        cells = " | ".join(f"{row[c]:.3f}" for c in cols)
        print(f"| {path.stem} | {cells} | {secs:.1f} |", flush=True)
    cells = " | ".join(f"**{np.mean(means[c]):.3f}**" for c in cols)
    print(f"| mean | {cells} | |")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
