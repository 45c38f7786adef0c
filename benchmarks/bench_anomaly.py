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
import contextlib
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
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA_DIR = SHARED_DATA / "adbench"
#: The two development collections: name -> folder of *.npz files.
COLLECTIONS = {
    "classical": SHARED_DATA / "adbench",
    "embeddings": SHARED_DATA / "adbench-embeddings",
}
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
# Goals for skvae (issue 11): mean AUROC per collection, the largest deficit
# against IsolationForest on any set (mean over seeds), the flagged share of
# held-out rows with contamination=0.05 on sets with >= 5 % anomalies (within
# FLAG_BAND on at least FLAG_SETS of them), median fit+score seconds per run.
GOAL = {
    "auroc": {"classical": 0.80, "embeddings": 0.75},
    "deficit": 0.05,
    "seconds": 5.0,
}
FLAG_CONTAMINATION = 0.05
FLAG_BAND = (0.025, 0.075)
FLAG_SETS = 0.90

#: Named skvae parameter overrides for ablations (``--variant a,b``). A key
#: "@module.NAME" sets the module-level constant NAME of ``skvae.<module>`` in
#: the worker process instead (for private constants with no parameter); the
#: key "&zero_inflated" (a share) builds ``likelihood`` from each training
#: split: ``"zero_lognormal"`` for the columns without negative values whose
#: share of exact zeros is above it (``zero_inflated_likelihood``).
VARIANTS = {
    "default": {},
    "zero_lognormal": {"&zero_inflated": 0.1},
    "zero_lognormal_fit": {"&zero_inflated": 0.1, "&lognormal_fits": True},
    # likelihood="auto" (the default since issue 11): "zero_normal" on the
    # columns with more than _AUTO_ZERO_SHARE exact zeros; its ablations
    "gaussian": {"likelihood": "gaussian"},
    "auto_zero05": {"@_anomaly._AUTO_ZERO_SHARE": 0.05},
    "auto_zero25": {"@_anomaly._AUTO_ZERO_SHARE": 0.25},
    # scaling rules (skvae/_scaling.py)
    "standard": {"standardize": True},
    "minmax": {"standardize": False},
    "robust": {"standardize": "robust"},
    "robust_nopm": {"standardize": "robust", "@_scaling.ROBUST_POINT_MASS": False},
    "robust_f0.7": {"standardize": "robust", "@_scaling.ROBUST_MIN_STD_FRACTION": 0.7},
    "robust_f1": {"standardize": "robust", "@_scaling.ROBUST_MIN_STD_FRACTION": 1.0},
    # "quantile" (skvae/_scaling.py) is not a public option: it was measured
    # with standardize="quantile" accepted, at commit 95a761a
    "robust_switch": {"standardize": "robust", "@_scaling.ROBUST_SWITCH": True},
    "standard_r0.05": {"standardize": True, "@_scaling.MIN_RANGE_FRACTION": 0.05},
    "robust_r0.05": {"standardize": "robust", "@_scaling.MIN_RANGE_FRACTION": 0.05},
    # size and budget
    "rowvar": {"decoder_variance": "row"},
    "latent32": {"latent_dim": 32},
    "latent8": {"latent_dim": 8},
    "width256": {"hidden_layer_sizes": (256, 256)},
    "width64": {"hidden_layer_sizes": (64, 64)},
    "epochs100": {"@_anomaly._AUTO_EPOCHS": 100},
    "epochs25": {"@_anomaly._AUTO_EPOCHS": 25},
    "trim0.1": {"trim_fraction": 0.1},
    "trim0.3": {"trim_fraction": 0.3},
    # training budget (issue 11, second pass; screen_anomaly.py has the score
    # and ensemble variants, which need no refit)
    "lr2e-3": {"learning_rate_init": 2e-3},
    "lr3e-3": {"learning_rate_init": 3e-3},
    "es": {"early_stopping": True},
    "es100": {"early_stopping": True, "@_anomaly._AUTO_EPOCHS": 100},
    "lr3e-3_es": {"learning_rate_init": 3e-3, "early_stopping": True},
    # the decoder variances refitted after training (skvae/_anomaly.py)
    "refit_off": {"@_anomaly._REFIT_VARIANCE": False},
    "refit_trim0": {"@_anomaly._REFIT_TRIM": 0.0},
    "refit_trim0.05": {"@_anomaly._REFIT_TRIM": 0.05},
    "refit_trim0.1": {"@_anomaly._REFIT_TRIM": 0.1},
    "refit_trim0.2": {"@_anomaly._REFIT_TRIM": 0.2},
    # offset_ from the training rows (as before issue 11) / more held out
    "offset_train": {"@_anomaly._OFFSET_FRACTION": 0.0},
    "offset_0.3": {"@_anomaly._OFFSET_FRACTION": 0.3},
    "offset_max1000": {"@_anomaly._OFFSET_MAX_ROWS": 1000},
}

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
    "collection",
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
    "anomaly_rate",
    "flag_005",
    "flag_auto",
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


def resolve_collections(args):
    """Ordered dict: collection name -> data folder."""
    if args.data_dir:
        return {Path(args.data_dir).name: Path(args.data_dir)}
    env = os.environ.get("SKVAE_DATA_DIR")
    if env:
        return {Path(env).name: Path(env)}
    if args.collection == "both":
        return dict(COLLECTIONS)
    return {args.collection: COLLECTIONS[args.collection]}


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
    params = {k: v for k, v in (params or {}).items() if not k.startswith("@")}
    if kind == "skvae":
        skvae = _import_skvae()
        params = {"contamination": FLAG_CONTAMINATION, **params}
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


@contextlib.contextmanager
def _constants(params):
    """Apply the "@module.NAME" entries of ``params`` to skvae's modules.

    The old values come back on exit: joblib reuses its worker processes.
    """
    saved = []
    try:
        for key, value in params.items():
            if key.startswith("@"):
                module, name = key[1:].rsplit(".", 1)
                mod = importlib.import_module(f"skvae.{module}")
                if not hasattr(mod, name):
                    raise AttributeError(f"skvae.{module} has no constant {name}")
                saved.append((mod, name, getattr(mod, name)))
                setattr(mod, name, value)
        yield
    finally:
        for mod, name, value in reversed(saved):
            setattr(mod, name, value)


def flagged_shares(kind, est, X_train, X_test, score):
    """Share of test rows flagged with contamination=0.05 and with "auto".

    skvae: ``predict`` as fitted (contamination=0.05), and the "auto" offset
    from the same fitted model (``_offset_for``). IsolationForest: its own
    rules, an offset at the 5th percentile of the training scores and its
    "auto" offset of -0.5. Others: not measured.
    """
    if kind == "skvae":
        share = float(np.mean(est.predict(X_test) == -1))
        auto = est._offset_for("auto") if hasattr(est, "_offset_for") else np.nan
        return share, float(np.mean(-score < auto)), _fence_shares(est, score)
    if kind == "iforest":
        offset = np.percentile(est.score_samples(X_train), 100 * FLAG_CONTAMINATION)
        return float(np.mean(-score < offset)), float(np.mean(-score < -0.5)), {}
    return np.nan, np.nan, {}


#: Tukey fences ``Q1 - k (Q3 - Q1)`` on the offset scores, measured as
#: candidates for contamination="auto" (columns flag_fence<k>).
FENCES = (1.5, 3.0, 4.5)


def _fence_shares(est, score):
    """Flagged share of test rows for each fence of FENCES (skvae only)."""
    scores = getattr(est, "_offset_scores", None)
    if scores is None:
        return {}
    q1, q3 = np.percentile(scores, [25, 75])
    return {
        f"flag_fence{k}": float(np.mean(-score < q1 - k * (q3 - q1))) for k in FENCES
    }


def zero_inflated_likelihood(X, share, lognormal_fits=False):
    """``{column: "zero_lognormal"}`` for the columns of ``X`` without negative
    values whose share of exact zeros is above ``share``; with
    ``lognormal_fits``, only those whose positive values (at least 10, not
    all equal) a log-normal fits better than a normal does (higher mean
    log-density of the values, both fitted by maximum likelihood)."""
    picked = ((X == 0).mean(axis=0) > share) & (X.min(axis=0) >= 0)
    if lognormal_fits:
        for j in np.flatnonzero(picked):
            v = X[X[:, j] > 0, j]
            if v.size < 10 or np.ptp(v) <= 0:
                picked[j] = False
                continue
            logs = np.log(v)
            # both densities of the values themselves (the log-normal's
            # includes the Jacobian 1 / x); the constants are the same
            lognormal = -np.log(logs.std()) - 0.5 - logs.mean()
            normal = -np.log(v.std()) - 0.5
            picked[j] = lognormal > normal
    return {int(j): "zero_lognormal" for j in np.flatnonzero(picked)}


def _data_params(params, X_train, X_test):
    """``params`` with its "&" entries resolved on the training split."""
    out = {k: v for k, v in params.items() if not k.startswith("&")}
    if "&zero_inflated" in params:
        out["likelihood"] = zero_inflated_likelihood(
            X_train, params["&zero_inflated"], params.get("&lognormal_fits", False)
        )
        # MinMax scaling on the training split keeps those columns >= 0 on the
        # test split too (their training minimum is the zero); checked here
        cols = list(out["likelihood"])
        if cols and X_test[:, cols].min() < 0:
            raise ValueError("a zero-inflated column has negative test values")
    return out


def run_job(path, seed, name, kind, params, collection=""):
    """Run one (data set, seed, detector) job; always returns a result row."""
    from threadpoolctl import threadpool_limits

    path = Path(path)
    row = {
        "collection": collection,
        "dataset": path.stem,
        "seed": seed,
        "detector": name,
        "params": json.dumps(params, sort_keys=True),
    }
    caught = []
    try:
        with (
            _constants(params),
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
                anomaly_rate=float(y.mean()),
            )
            est, score_fn = make_detector(
                kind, seed, _data_params(params, X_train, X_test)
            )
            c0 = time.process_time()
            t0 = time.perf_counter()
            est.fit(X_train)
            t1 = time.perf_counter()
            score = np.asarray(score_fn(est, X_test), dtype=np.float64)
            t2 = time.perf_counter()
            c2 = time.process_time()
            flag_005, flag_auto, fences = flagged_shares(
                kind, est, X_train, X_test, score
            )
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
            flag_005=flag_005,
            flag_auto=flag_auto,
            **fences,
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
        "--collection",
        choices=["classical", "embeddings", "both"],
        default="both",
        help="development collection(s): the 13 classical sets "
        "(shared/data/adbench), the 23 embedding sets "
        "(shared/data/adbench-embeddings) or both (default)",
    )
    p.add_argument(
        "--data-dir",
        help="folder of ADBench *.npz files, instead of --collection (default: "
        "$SKVAE_DATA_DIR if set)",
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
        "--variant",
        help="comma-separated names from the VARIANTS dict of this script; each "
        "adds a detector 'skvae:<name>' (ablations)",
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
    for vname in (args.variant or "").split(","):
        vname = vname.strip()
        if not vname:
            continue
        if vname not in VARIANTS:
            raise SystemExit(f"--variant {vname!r}: known: {', '.join(VARIANTS)}")
        variants[vname] = VARIANTS[vname]

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
                _import_skvae().VAEAnomalyDetector(
                    **{k: v for k, v in params.items() if k[0] not in "@&"}
                )
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


def _in_band(share):
    return FLAG_BAND[0] <= share <= FLAG_BAND[1]


def collection_summary(ok, order, cname):
    """One row per detector: means, deficits against IsolationForest, flags."""
    fences = [c for c in ok if c.startswith("flag_fence")]
    per_ds = ok.groupby(["dataset", "detector"])[
        ["auroc", "ap", "seconds", "flag_005", "flag_auto", "anomaly_rate", *fences]
    ].mean()
    ref = None
    if "IsolationForest" in set(ok["detector"]):
        ref = per_ds.xs("IsolationForest", level="detector")["auroc"]
    rows = []
    for det in order:
        if det not in set(ok["detector"]):
            continue
        sub = per_ds.xs(det, level="detector")
        runs = ok[ok["detector"] == det]
        row = {
            "collection": cname,
            "detector": det,
            "sets": len(sub),
            "runs": len(runs),
            "AUROC": sub["auroc"].mean(),
            "AP": sub["ap"].mean(),
        }
        if ref is not None:
            deficit = (ref - sub["auroc"]).dropna()
            row["worst_deficit"] = deficit.max()
            row["worst_set"] = deficit.idxmax()
            row["n_def>0.05"] = int((deficit > GOAL["deficit"]).sum())
            row["n_def>0.10"] = int((deficit > 0.10).sum())
        eligible = sub[sub["anomaly_rate"].round(3) >= FLAG_CONTAMINATION]
        flags = eligible["flag_005"].dropna()
        row["flag05_med"] = flags.median() if len(flags) else np.nan
        row["flag05_inband"] = flags.map(_in_band).mean() if len(flags) else np.nan
        autos = sub["flag_auto"].dropna()
        row["flagauto_med"] = autos.median() if len(autos) else np.nan
        for col in fences:
            row[col.replace("flag_", "") + "_med"] = sub[col].median()
        row["median_s"] = runs["seconds"].median()
        row["median_cpu_s"] = runs["cpu_seconds"].median()
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(df, detector_order, n_datasets_total, seeds):
    """Print per-data-set tables and the summaries, per collection."""
    ok = df[df["auroc"].notna()]
    if ok.empty:
        print("no successful runs")
        return
    order = [d for d in detector_order if d in set(ok["detector"])]
    summaries = []
    for cname in dict.fromkeys(df["collection"]):
        cok = ok[ok["collection"] == cname]
        ds_order = list(dict.fromkeys(df.loc[df["collection"] == cname, "dataset"]))
        per_ds = cok.groupby(["dataset", "detector"])[
            ["auroc", "ap", "seconds", "flag_005", "flag_auto"]
        ].mean()
        for metric, label, fmt in (
            ("auroc", "AUROC", "{:.3f}"),
            ("ap", "average precision", "{:.3f}"),
            ("flag_005", "flagged share of test rows, contamination=0.05", "{:.3f}"),
            ("flag_auto", 'flagged share of test rows, contamination="auto"', "{:.3f}"),
            ("seconds", "fit+score seconds", "{:.2f}"),
        ):
            table = per_ds[metric].unstack("detector").reindex(index=ds_order)
            table = table[[d for d in order if d in table.columns]]
            if metric == "auroc" and "IsolationForest" in table:
                for det in [d for d in table.columns if d != "IsolationForest"]:
                    table[f"{det} - IF"] = table[det] - table["IsolationForest"]
            if table.isna().all().all():
                continue
            print(f"\n== {cname}: {label}, mean over seeds {seeds} ==")
            print(_fmt_table(table, fmt))
        summaries.append(collection_summary(cok, order, cname))

    summary = pd.concat(summaries, ignore_index=True)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\n== summary: means over data sets (of per-set seed means) ==")
        print(_fmt_table(summary.set_index(["collection", "detector"])))
    both = summary.groupby("detector", sort=False)
    if summary["collection"].nunique() > 1:
        print("\n== both collections, equal weight per set ==")
        per_ds = ok.groupby(["collection", "dataset", "detector"])["auroc"].mean()
        mean_all = per_ds.groupby("detector").mean()
        for det in order:
            print(
                f"  {det:<28} mean AUROC {mean_all[det]:.3f}"
                f"  worst deficit {both.get_group(det)['worst_deficit'].max():.3f}"
                if "worst_deficit" in summary
                else f"  {det:<28} mean AUROC {mean_all[det]:.3f}"
            )
    n_failed = int(df["auroc"].isna().sum())
    if n_failed:
        print(f"\n{n_failed} run(s) failed; see the 'error' column of the CSV")
    goal_rows = [d for d in order if d == "skvae" or d.startswith("skvae:")]
    if not goal_rows:
        return
    print(
        "\ngoals (issue 11): AUROC >= "
        + ", ".join(f"{c} {v:.2f}" for c, v in GOAL["auroc"].items())
        + f"; no set > {GOAL['deficit']:.2f} below IsolationForest; flagged share"
        f" in {FLAG_BAND} on >= {FLAG_SETS:.0%} of sets with >= 5 % anomalies;"
        f" median fit+score <= {GOAL['seconds']:.0f} s"
    )
    for _, s in summary[summary["detector"].isin(goal_rows)].iterrows():
        full = s["sets"] == n_datasets_total.get(s["collection"]) and len(seeds) == 3
        checks = [("time", s["median_s"] <= GOAL["seconds"])]
        if s["collection"] in GOAL["auroc"]:
            checks.insert(0, ("AUROC", s["AUROC"] >= GOAL["auroc"][s["collection"]]))
        if "worst_deficit" in s:
            checks.append(("deficit", s["worst_deficit"] <= GOAL["deficit"]))
        if not np.isnan(s["flag05_inband"]):
            checks.append(("flagged", s["flag05_inband"] >= FLAG_SETS))
        marks = ", ".join(f"{k} {'ok' if v else 'MISS'}" for k, v in checks)
        tag = "" if full else "  [subset run]"
        print(f"  {s['collection']}/{s['detector']}: {marks}{tag}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    collections = {
        name: folder
        for name, folder in resolve_collections(args).items()
        if folder.is_dir() and any(folder.glob("*.npz"))
    }
    if not collections:
        print("data folders not found or empty; nothing to benchmark")
        return 0
    selection = args.datasets.split(",") if args.datasets else None
    datasets = []  # (collection, path)
    n_total = {}
    for cname, folder in collections.items():
        files = list_datasets(folder)
        n_total[cname] = len(files)
        if selection:
            names = {f.stem.lower() for f in files}
            names |= {n.split("_", 1)[1] for n in names if "_" in n}
            mine = [x for x in selection if x.strip().lower() in names]
            files = list_datasets(folder, mine) if mine else []
        datasets += [(cname, f) for f in files]
    if not datasets:
        raise SystemExit(f"no data set matches {selection}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(
            f"--seeds: expected comma-separated ints, got {args.seeds!r}"
        ) from None
    detectors = select_detectors(args)

    if args.list:
        print("data sets:", ", ".join(f"{c}/{p.stem}" for c, p in datasets))
        print("detectors:")
        for name, _, params in detectors:
            print(f"  {name} {json.dumps(params, sort_keys=True) if params else ''}")
        return 0
    if not detectors:
        print("no detector to run")
        return 0

    jobs = [
        (str(path), seed, name, kind, params, cname)
        for cname, path in datasets
        for seed in seeds
        for name, kind, params in detectors
    ]
    print(
        f"{len(datasets)} data set(s) x {len(seeds)} seed(s) x "
        f"{len(detectors)} detector(s) = {len(jobs)} runs, n_jobs={args.n_jobs}"
    )
    t0 = time.perf_counter()
    # every finished run is also appended here, as one JSON line
    partial = Path(args.out).with_suffix(".partial.jsonl")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text("")
    if args.n_jobs == 1:
        rows = []
        for i, job in enumerate(jobs, 1):
            row = run_job(*job)
            rows.append(row)
            _progress(i, len(jobs), row, partial)
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
            _progress(i, len(jobs), row, partial)
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


def _progress(i, n, row, partial=None):
    if partial is not None:
        with open(partial, "a") as f:
            f.write(json.dumps(row, default=float) + "\n")
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
