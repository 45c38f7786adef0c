"""Unsupervised anomaly-detection benchmark on the ADBench "Classical" sets.

Implements ADBench's unsupervised protocol (Han et al., NeurIPS 2022) as
described in ``shared/data/README.md``:

For every data set ``*.npz`` (keys ``X``, ``y``; ``y == 1`` marks an anomaly)
and every seed (default 0, 1, 2):

1. rows are resampled with ``np.random.RandomState(seed)`` (the legacy
   generator, as ADBench does after ``np.random.seed(seed)``): fewer than 1000
   rows are upsampled *with* replacement to 1000, more than 10000 rows are
   subsampled *without* replacement to 10000 (``RandomState.choice``);
2. stratified 70/30 split, ``train_test_split(test_size=0.3, stratify=y,
   shuffle=True, random_state=seed)``;
3. ``MinMaxScaler`` fit on the training rows, applied to both parts;
4. every detector is fit on the training rows *without labels* (anomalies
   included) and scores the test rows; the anomaly score is
   ``-score_samples(X_test)`` for scikit-learn style detectors and
   ``decision_function(X_test)`` for PyOD detectors (higher = more anomalous);
5. AUROC (``roc_auc_score``) and average precision
   (``average_precision_score``) on the test rows, plus the wall-clock seconds
   of fit + score and the CPU seconds of this process over the same span
   (``cpu_seconds``: with single-threaded BLAS it is close to the wall time on
   an idle machine, and unlike it barely changes when other jobs compete for
   the cores).

Every job (data set, seed, detector) runs with single-threaded BLAS/OpenMP
(``threadpoolctl``); ``--n-jobs`` runs jobs in parallel processes (joblib).

Run ``python benchmarks/bench_anomaly.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import MinMaxScaler

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "adbench"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "anomaly.csv"

MIN_ROWS = 1000
MAX_ROWS = 10000
TEST_SIZE = 0.3

# Reference (AUROC, AP) means over the 13 sets x seeds 0, 1, 2 (from the issue).
REFERENCE = {
    "IsolationForest": (0.784, 0.421),
    "ECOD": (0.753, 0.388),
    "PyOD-VAE": (0.753, 0.346),
    "PyOD-AutoEncoder": (0.752, 0.306),
    "LOF": (0.624, 0.190),
}
# Goal for skvae: mean AUROC, mean AP, median fit+score seconds per run.
GOAL = {"auroc": 0.80, "ap": 0.43, "seconds": 5.0}

# Detector kinds: name -> kind, in printing order.  skvae variants get the
# kind "skvae" and the name "skvae:<variant>".
BASE_DETECTORS = {
    "skvae": "skvae",
    "IsolationForest": "iforest",
    "LOF": "lof",
    "PyOD-VAE": "pyod_vae",
    "PyOD-AutoEncoder": "pyod_ae",
    "ECOD": "pyod_ecod",
}
PYOD_KINDS = {"pyod_vae", "pyod_ae", "pyod_ecod"}
CSV_COLUMNS = [
    "dataset",
    "seed",
    "detector",
    "params",
    "auroc",
    "ap",
    "seconds",
    "cpu_seconds",
    "fit_seconds",
    "score_seconds",
    "n_iter",
    "n_rows_raw",
    "n_features",
    "n_train",
    "n_test",
    "test_anomaly_rate",
    "warnings",
    "error",
]


# --------------------------------------------------------------------------
# imports of optional packages
# --------------------------------------------------------------------------


def _import_skvae():
    """Import skvae; fall back to the repository checkout if not installed."""
    try:
        return importlib.import_module("skvae")
    except ImportError:
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        return importlib.import_module("skvae")


def _skvae_available():
    try:
        mod = _import_skvae()
        mod.VAEAnomalyDetector  # noqa: B018
    except Exception as exc:  # ImportError, AttributeError, broken package
        return False, f"{type(exc).__name__}: {exc}"
    return True, getattr(mod, "__version__", "?")


def _pyod_available():
    try:
        import pyod  # noqa: F401
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, getattr(pyod, "__version__", "?")


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def resolve_data_dir(cli_value):
    if cli_value:
        return Path(cli_value)
    env = os.environ.get("SKVAE_DATA_DIR")
    if env:
        return Path(env)
    return DEFAULT_DATA_DIR


def _sort_key(path):
    head = path.stem.split("_", 1)[0]
    return (int(head) if head.isdigit() else 10**9, path.stem)


def list_datasets(data_dir, selection=None):
    """Data set files in ``data_dir``, optionally filtered by name.

    ``selection`` is a list of names; each matches a file stem exactly
    (``6_cardio``) or its part after the numeric prefix (``cardio``),
    case-insensitively.
    """
    files = sorted(Path(data_dir).glob("*.npz"), key=_sort_key)
    if not selection:
        return files
    wanted = {s.strip().lower() for s in selection if s.strip()}
    chosen, matched = [], set()
    for f in files:
        stem = f.stem.lower()
        short = stem.split("_", 1)[1] if "_" in stem else stem
        hits = {w for w in wanted if w in (stem, short)}
        if hits:
            chosen.append(f)
            matched |= hits
    missing = wanted - matched
    if missing:
        known = ", ".join(f.stem for f in files)
        raise SystemExit(f"unknown data set(s) {sorted(missing)}; known: {known}")
    return chosen


def load_dataset(path):
    with np.load(path, allow_pickle=False) as data:
        X = np.asarray(data["X"], dtype=np.float64)
        y = np.asarray(data["y"]).astype(np.int64).ravel()
    return X, y


def prepare_split(X, y, seed):
    """ADBench resampling, stratified 70/30 split and MinMax scaling."""
    rs = np.random.RandomState(seed)
    n = X.shape[0]
    if n < MIN_ROWS:
        idx = rs.choice(n, MIN_ROWS, replace=True)
        X, y = X[idx], y[idx]
    elif n > MAX_ROWS:
        idx = rs.choice(n, MAX_ROWS, replace=False)
        X, y = X[idx], y[idx]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, stratify=y, shuffle=True, random_state=seed
    )
    scaler = MinMaxScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


# --------------------------------------------------------------------------
# detectors
# --------------------------------------------------------------------------


def _pyod_kwargs(cls, seed, epochs=None):
    """Keyword arguments valid for this PyOD version's constructor."""
    names = set(inspect.signature(cls.__init__).parameters)
    kw = {}
    if "random_state" in names:
        kw["random_state"] = seed
    if "verbose" in names:
        kw["verbose"] = 0
    if epochs is not None:
        for key in ("epoch_num", "epochs"):
            if key in names:
                kw[key] = epochs
                break
    return kw


def make_detector(kind, seed, params):
    """Build an unfitted detector; returns (estimator, score_fn)."""
    params = dict(params or {})
    if kind == "skvae":
        skvae = _import_skvae()
        est = skvae.VAEAnomalyDetector(**{"random_state": seed, **params})
        return est, lambda m, X: -m.score_samples(X)
    if kind == "iforest":
        est = IsolationForest(**{"random_state": seed, **params})
        return est, lambda m, X: -m.score_samples(X)
    if kind == "lof":
        est = LocalOutlierFactor(**{"novelty": True, **params})
        return est, lambda m, X: -m.score_samples(X)
    if kind in PYOD_KINDS:
        if kind == "pyod_vae":
            from pyod.models.vae import VAE as cls

            kw = _pyod_kwargs(cls, seed, epochs=20)
        elif kind == "pyod_ae":
            from pyod.models.auto_encoder import AutoEncoder as cls

            kw = _pyod_kwargs(cls, seed)
        else:
            from pyod.models.ecod import ECOD as cls

            kw = {}
        est = cls(**{**kw, **params})
        return est, lambda m, X: m.decision_function(X)
    raise ValueError(f"unknown detector kind {kind!r}")


def run_job(path, seed, name, kind, params):
    """Run one (data set, seed, detector) job; always returns a result row."""
    from threadpoolctl import threadpool_limits

    path = Path(path)
    row = {
        "dataset": path.stem,
        "seed": seed,
        "detector": name,
        "params": json.dumps(params, sort_keys=True),
    }
    caught = []
    try:
        with (
            threadpool_limits(limits=1),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            X, y = load_dataset(path)
            X_train, X_test, _, y_test = prepare_split(X, y, seed)
            row.update(
                n_rows_raw=X.shape[0],
                n_features=X.shape[1],
                n_train=X_train.shape[0],
                n_test=X_test.shape[0],
                test_anomaly_rate=float(y_test.mean()),
            )
            est, score_fn = make_detector(kind, seed, params)
            c0 = time.process_time()
            t0 = time.perf_counter()
            est.fit(X_train)
            t1 = time.perf_counter()
            score = np.asarray(score_fn(est, X_test), dtype=np.float64)
            t2 = time.perf_counter()
            c2 = time.process_time()
        n_iter = getattr(est, "n_iter_", None)
        if isinstance(n_iter, (int, np.integer)):
            row["n_iter"] = int(n_iter)
        n_bad = int((~np.isfinite(score)).sum())
        if n_bad:
            # Non-finite scores rank as most anomalous (+inf) / least (nan);
            # keep the run but flag it.
            row["error"] = f"{n_bad} non-finite scores"
            score = np.nan_to_num(score, nan=-np.inf)
            score = np.clip(score, -np.finfo(float).max, np.finfo(float).max)
        row.update(
            auroc=roc_auc_score(y_test, score),
            ap=average_precision_score(y_test, score),
            fit_seconds=t1 - t0,
            score_seconds=t2 - t1,
            seconds=t2 - t0,
            cpu_seconds=c2 - c0,
        )
    except Exception as exc:
        row.update(
            auroc=np.nan,
            ap=np.nan,
            seconds=np.nan,
            cpu_seconds=np.nan,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
    # Warnings (e.g. ConvergenceWarning) go to the CSV rather than the console.
    counts = Counter(w.category.__name__ for w in caught)
    row["warnings"] = "; ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
    return row


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def _parse_json_arg(value, what):
    """Inline JSON, or the path of a JSON file."""
    if value is None:
        return None
    text = value
    if not value.lstrip().startswith("{") and Path(value).is_file():
        text = Path(value).read_text()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{what}: not valid JSON nor a JSON file: {exc}") from None
    if not isinstance(obj, dict):
        raise SystemExit(f"{what}: expected a JSON object")
    return obj


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  python benchmarks/bench_anomaly.py\n"
            "  python benchmarks/bench_anomaly.py --datasets cardio,WBC --seeds 0\n"
            "  python benchmarks/bench_anomaly.py --detectors skvae "
            "--skvae-params '{\"max_iter\": 50}'\n"
            "  python benchmarks/bench_anomaly.py --detectors 'skvae*' "
            '--variants \'{"b05": {"beta": 0.5}, "b2": {"beta": 2}}\'\n'
        ),
    )
    p.add_argument(
        "--data-dir",
        help="folder of ADBench *.npz files (default: $SKVAE_DATA_DIR, else "
        "<repo>/../shared/data/adbench)",
    )
    p.add_argument(
        "--datasets",
        help="comma-separated data sets, by file stem (6_cardio) or name "
        "(cardio); default: all",
    )
    p.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)"
    )
    p.add_argument(
        "--detectors",
        help="comma-separated detector names to run (default: all available). "
        "Names: skvae, IsolationForest, LOF, PyOD-VAE, PyOD-AutoEncoder, ECOD, "
        "skvae:<variant>; 'skvae*' selects skvae and all its variants",
    )
    p.add_argument(
        "--skvae-params",
        help="JSON object (inline or file) of extra VAEAnomalyDetector params; "
        "applied to 'skvae' and, as a base, to every variant",
    )
    p.add_argument(
        "--variants",
        help="JSON object (inline or file) mapping variant name -> params dict; "
        "each adds a detector 'skvae:<name>' with params "
        "{**skvae_params, **variant_params}",
    )
    p.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        help="parallel processes over (data set, seed, detector) jobs; each job "
        "uses single-threaded BLAS (default 1)",
    )
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help="CSV of per-run rows (default benchmarks/results/anomaly.csv)",
    )
    p.add_argument(
        "--list", action="store_true", help="list data sets and detectors, then exit"
    )
    return p


def select_detectors(args):
    """Ordered list of (name, kind, params)."""
    skvae_ok, skvae_info = _skvae_available()
    pyod_ok, pyod_info = _pyod_available()
    base_params = _parse_json_arg(args.skvae_params, "--skvae-params") or {}
    variants = _parse_json_arg(args.variants, "--variants") or {}

    candidates = []
    for name, kind in BASE_DETECTORS.items():
        candidates.append((name, kind, base_params if kind == "skvae" else {}))
    for vname, vparams in variants.items():
        if not isinstance(vparams, dict):
            raise SystemExit(f"--variants: params of {vname!r} must be an object")
        candidates.append((f"skvae:{vname}", "skvae", {**base_params, **vparams}))

    if args.detectors:
        wanted = [w.strip() for w in args.detectors.split(",") if w.strip()]
        lower = {c[0].lower(): c for c in candidates}
        chosen, seen = [], set()
        for w in wanted:
            if w.lower() == "skvae*":
                hits = [c for c in candidates if c[1] == "skvae"]
            elif w.lower() in lower:
                hits = [lower[w.lower()]]
            else:
                known = ", ".join(c[0] for c in candidates)
                raise SystemExit(f"unknown detector {w!r}; known: {known}")
            for c in hits:
                if c[0] not in seen:
                    chosen.append(c)
                    seen.add(c[0])
        explicit = True
    else:
        chosen, explicit = candidates, False

    out = []
    for name, kind, params in chosen:
        if kind == "skvae" and not skvae_ok:
            print(f"[skip] {name}: skvae not importable ({skvae_info})")
            continue
        if kind == "skvae":
            # Fail fast on a misspelt parameter rather than after every job.
            try:
                _import_skvae().VAEAnomalyDetector(**params)
            except TypeError as exc:
                raise SystemExit(f"{name}: bad parameters {params}: {exc}") from None
        if kind in PYOD_KINDS and not pyod_ok:
            if explicit:
                print(f"[skip] {name}: pyod not importable ({pyod_info})")
            continue
        out.append((name, kind, params))
    if not pyod_ok and not explicit:
        print("[skip] PyOD detectors (VAE, AutoEncoder, ECOD): pyod not installed")
    if skvae_ok:
        print(f"skvae {skvae_info} from {Path(_import_skvae().__file__).parent}")
    return out


def _fmt_table(df, floatfmt="{:.3f}"):
    return df.to_string(float_format=lambda v: floatfmt.format(v), na_rep="-")


def summarize(df, detector_order, n_datasets_total, seeds):
    """Print per-data-set tables and the overall means."""
    ok = df[df["auroc"].notna()]
    if ok.empty:
        print("no successful runs")
        return
    order = [d for d in detector_order if d in set(ok["detector"])]
    ds_order = list(dict.fromkeys(df["dataset"]))

    per_ds = ok.groupby(["dataset", "detector"])[["auroc", "ap", "seconds"]].mean()
    for metric, label, fmt in (
        ("auroc", "AUROC", "{:.3f}"),
        ("ap", "average precision", "{:.3f}"),
        ("seconds", "fit+score seconds", "{:.2f}"),
    ):
        table = per_ds[metric].unstack("detector").reindex(index=ds_order)
        table = table[[d for d in order if d in table.columns]]
        print(f"\n== {label}, mean over seeds {seeds} ==")
        print(_fmt_table(table, fmt))

    print("\n== summary: mean over data sets (of per-set seed means) ==")
    rows = []
    for det in order:
        sub = per_ds.xs(det, level="detector")
        runs = ok[ok["detector"] == det]
        ref = REFERENCE.get(det)
        rows.append(
            {
                "detector": det,
                "sets": len(sub),
                "runs": len(runs),
                "AUROC": sub["auroc"].mean(),
                "AP": sub["ap"].mean(),
                "median_s": runs["seconds"].median(),
                "median_cpu_s": runs["cpu_seconds"].median(),
                "ref_AUROC": ref[0] if ref else np.nan,
                "ref_AP": ref[1] if ref else np.nan,
            }
        )
    summary = pd.DataFrame(rows).set_index("detector")
    print(_fmt_table(summary))
    n_failed = int(df["auroc"].isna().sum())
    if n_failed:
        print(f"\n{n_failed} run(s) failed; see the 'error' column of the CSV")
    subset = any(summary["sets"] < n_datasets_total) or len(seeds) != 3
    if subset:
        print(
            "note: the reference figures are for all 13 sets x seeds 0,1,2; "
            "this run covers a subset"
        )
    goal_rows = [d for d in order if d == "skvae" or d.startswith("skvae:")]
    if goal_rows:
        print(
            f"\ngoal for skvae: AUROC >= {GOAL['auroc']:.2f}, AP >= {GOAL['ap']:.2f},"
            f" median fit+score <= {GOAL['seconds']:.0f} s"
        )
        for det in goal_rows:
            s = summary.loc[det]
            checks = [
                ("AUROC", s["AUROC"] >= GOAL["auroc"]),
                ("AP", s["AP"] >= GOAL["ap"]),
                ("time", s["median_s"] <= GOAL["seconds"]),
            ]
            marks = ", ".join(f"{k} {'ok' if v else 'MISS'}" for k, v in checks)
            tag = "  [subset run: not comparable to the goal]" if subset else ""
            print(f"  {det}: {marks}{tag}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    if not data_dir.is_dir() or not any(data_dir.glob("*.npz")):
        print(f"data folder {data_dir} not found or empty; nothing to benchmark")
        return 0
    selection = args.datasets.split(",") if args.datasets else None
    datasets = list_datasets(data_dir, selection)
    n_total = len(list_datasets(data_dir))
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(
            f"--seeds: expected comma-separated ints, got {args.seeds!r}"
        ) from None
    detectors = select_detectors(args)

    if args.list:
        print("data sets:", ", ".join(p.stem for p in datasets))
        print("detectors:")
        for name, _, params in detectors:
            print(f"  {name} {json.dumps(params, sort_keys=True) if params else ''}")
        return 0
    if not detectors:
        print("no detector to run")
        return 0

    jobs = [
        (str(path), seed, name, kind, params)
        for path in datasets
        for seed in seeds
        for name, kind, params in detectors
    ]
    print(
        f"{len(datasets)} data set(s) x {len(seeds)} seed(s) x "
        f"{len(detectors)} detector(s) = {len(jobs)} runs, n_jobs={args.n_jobs}"
    )
    t0 = time.perf_counter()
    if args.n_jobs == 1:
        rows = []
        for i, job in enumerate(jobs, 1):
            row = run_job(*job)
            rows.append(row)
            _progress(i, len(jobs), row)
    else:
        from joblib import Parallel, delayed

        # Child processes inherit these; threadpoolctl also caps each job.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"
        rows = []
        results = Parallel(n_jobs=args.n_jobs, return_as="generator")(
            delayed(run_job)(*job) for job in jobs
        )
        for i, row in enumerate(results, 1):
            rows.append(row)
            _progress(i, len(jobs), row)
    print(f"total wall time {time.perf_counter() - t0:.1f} s")

    df = pd.DataFrame(rows)
    for col in ("error", "traceback"):
        if col not in df:
            df[col] = ""
    if "n_iter" in df:
        df["n_iter"] = df["n_iter"].astype("Int64")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    first = [c for c in CSV_COLUMNS if c in df]
    df[first + [c for c in df if c not in first and c != "traceback"]].to_csv(
        out, index=False
    )
    print(f"wrote {len(df)} rows to {out}")
    failed = df[df["auroc"].isna()]
    for (det, _err), grp in failed.groupby(["detector", "error"], sort=False):
        r = grp.iloc[0]
        print(
            f"\n[failed] {det} in {len(grp)} run(s), first: {r['dataset']} "
            f"seed={r['seed']}:"
        )
        print(r["traceback"])
    summarize(df, [d[0] for d in detectors], n_total, seeds)
    return 0


def _progress(i, n, row):
    if np.isnan(row["auroc"]):
        status = f"FAILED {row.get('error', '')}"
    else:
        status = f"AUROC {row['auroc']:.3f}  AP {row['ap']:.3f}  {row['seconds']:.2f} s"
        notes = [x for x in (row.get("error"), row.get("warnings")) if x]
        if notes:
            status += f"  ({'; '.join(notes)})"
    print(
        f"[{i:>{len(str(n))}}/{n}] {row['dataset']:<16} seed={row['seed']} "
        f"{row['detector']:<20} {status}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
