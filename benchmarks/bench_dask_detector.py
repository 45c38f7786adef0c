"""The dask detector's ``likelihood="auto"`` against the in-memory one.

On ADBench development sets (the anomaly benchmark's protocol: resampling,
stratified 70/30 split, MinMax scaling; ``bench_anomaly.prepare_split``),
side by side in one run on one ``LocalCluster`` (two worker processes, one
thread each): the in-memory ``VAEAnomalyDetector()``, the
``DaskVAEAnomalyDetector()`` (training rows in four blocks) and the dask
detector with ``likelihood="gaussian"`` (its default before it chose
likelihoods as in memory). Held-out AUROC per set and seed, then the mean
per detector. Needs ``../shared/data`` and the ``[dask]`` extra.

Usage::

    python benchmarks/bench_dask_detector.py
    python benchmarks/bench_dask_detector.py --sets 6_cardio,29_Pima --seeds 0
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_anomaly as ba  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"

#: sets where likelihood="auto" changed the in-memory detector most, up or
#: down (issue 11): SVHN, CIFAR10 and campaign gained, cardio and Pima lost
SETS = "resnet18_SVHN_0,resnet18_CIFAR10_0,5_campaign,6_cardio,29_Pima"
DETECTORS = ("in memory, auto", "dask, auto", "dask, gaussian")


def _path(name):
    folder = "adbench" if name[0].isdigit() else "adbench-embeddings"
    return DATA / folder / f"{name}.npz"


def run(sets, seeds):
    import dask.array as da
    import distributed
    from sklearn.metrics import roc_auc_score

    import skvae.dask as skd
    from skvae import VAEAnomalyDetector

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    rows = []
    try:
        for name in sets:
            X, y = ba.load_dataset(_path(name))
            for seed in seeds:
                X_train, X_test, _, y_test = ba.prepare_split(X, y, seed)
                chunks = (max(len(X_train) // 4, 1), -1)
                train = da.from_array(X_train, chunks=chunks)
                test = da.from_array(X_test, chunks=chunks)
                start = time.perf_counter()
                aurocs = {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    det = VAEAnomalyDetector(random_state=seed).fit(X_train)
                    aurocs[DETECTORS[0]] = roc_auc_score(
                        y_test, -det.score_samples(X_test)
                    )
                    det = skd.DaskVAEAnomalyDetector(random_state=seed).fit(train)
                    picked = det.to_local().feature_likelihoods_
                    n_zero = int(np.sum(picked == "zero_normal"))
                    aurocs[DETECTORS[1]] = roc_auc_score(
                        y_test, -det.score_samples(test).compute()
                    )
                    det = skd.DaskVAEAnomalyDetector(
                        likelihood="gaussian", random_state=seed
                    ).fit(train)
                    aurocs[DETECTORS[2]] = roc_auc_score(
                        y_test, -det.score_samples(test).compute()
                    )
                seconds = time.perf_counter() - start
                rows.append((name, seed, aurocs, n_zero))
                print(
                    f"  {name} seed {seed}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in aurocs.items())
                    + f"; {n_zero} zero_normal columns; {seconds:.0f} s "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    finally:
        client.close()
        cluster.close()
    return rows


def report(rows, sets):
    print("\n| set | " + " | ".join(DETECTORS) + " |")
    print("|---|" + "---:|" * len(DETECTORS))
    means = {k: [] for k in DETECTORS}
    for name in sets:
        mine = [r[2] for r in rows if r[0] == name]
        cells = []
        for k in DETECTORS:
            value = float(np.mean([a[k] for a in mine]))
            means[k].append(value)
            cells.append(f"{value:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "| mean | " + " | ".join(f"**{np.mean(v):.3f}**" for v in means.values()) + " |"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=SETS, help="comma-separated ADBench file stems")
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent")
        return
    sets = args.sets.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"load average at start: {os.getloadavg()}")
    rows = run(sets, seeds)
    report(rows, sets)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
