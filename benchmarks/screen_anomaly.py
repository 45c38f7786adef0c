"""Screening of anomaly-score and ensemble candidates (issue 11 ablations).

For every (collection, data set, seed) this fits, with ADBench's protocol
(``bench_anomaly.prepare_split``), IsolationForest and a list of
VAEAnomalyDetector configurations ("members"), and stores for each member the
test rows' and the held-out rows' values of several scores (so that
ensembles and standardised combinations can be evaluated afterwards without
refitting), plus CPU seconds. One ``.npz`` per (set, seed) in ``--out``.

Scores per member (higher = more normal):

``iwae10``  ``score_samples`` (the default, K = 10)
``iwae50``  the importance-weighted estimate with K = 50
``pm``      ``-sum_j c_j``, with ``c_j = log sigma_j + (x_j - m_j)^2 / 2 sigma_j^2``
            the per-cell NLL at the posterior mean code
``mse``     ``-sum_j (x_j - m_j)^2`` in the model's internal scaling
``cellz``   ``-sum_j (c_j - mean_j) / std_j``, per-feature standardised
            against the held-out rows
``cellzr``  the same with median and IQR / 1.349 (at least 0.35 std)
``mstep``   ``iwae10`` after setting each feature's decoder variance to the
            mean squared residual (5 posterior draws) of the fit rows, the 20 %
            of rows with the highest loss left out (``mstep0``: none left out,
            ``mstep05``/``mstep1``: 5 %/10 %; ``mstepgeo``: the geometric mean
            of the 20 %-trimmed and untrimmed estimates; ``mstepfl``: the
            trimmed one, at least half the untrimmed one; ``msteph``: from
            the held-out rows instead of the fit rows, 20 % trimmed)

Members are fitted with the detector's code as it is; the screening of issue
11 ran with ``_anomaly._REFIT_VARIANCE = False`` (the ``mstep`` scores are
that refit done here, outside the estimator).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_anomaly as ba  # noqa: E402

MEMBERS = {
    "d0": {},
    "d1": {"@seed": 1000},
    "d2": {"@seed": 2000},
    "row": {"decoder_variance": "row"},
    "w128": {"hidden_layer_sizes": (128, 128)},
    "w64": {"hidden_layer_sizes": (64, 64)},
}


def _cells(m, X):
    """Per-cell NLL (dropping constants) and squared error at the posterior mean."""
    arch = m._architecture()
    theta = m._params_for(X.dtype)
    Xs = m._scale(np.array(X))
    mu, _ = arch.encode(theta, Xs)
    out = arch.decode_raw(theta, mu)
    g = arch.table.groups[0]
    params = arch.likelihood_params(theta)
    mean = g.mean(out, params)
    var = g.variance_of(out, params)
    sq = (Xs - mean) ** 2
    return 0.5 * np.log(var) + 0.5 * sq / var, sq


def mstep_params(m, X_fit, trim, n_draws=5, mix=None):
    """Parameters with each feature's decoder variance set to its mean squared
    residual over the fit rows (draws from q(z|x)), the rows of highest
    loss left out (``trim``): the closed-form M-step of the variances."""
    arch = m._architecture()
    theta = m.params_.copy()
    g = arch.table.groups[0]
    params = arch.likelihood_params(theta)
    Xs = m._scale(np.array(X_fit))
    mu, lv = arch.encode(theta, Xs)
    rng = np.random.default_rng(0)
    res = np.zeros_like(Xs)
    for _ in range(n_draws):
        z = mu + np.exp(0.5 * lv) * rng.standard_normal(mu.shape)
        res += (Xs - g.mean(arch.decode_raw(theta, z), params)) ** 2 / n_draws
    var = g.variance_of(arch.decode_raw(theta, mu), params)
    loss = (0.5 * res / var + 0.5 * np.log(var)).sum(axis=1)
    keep = loss <= np.quantile(loss, 1 - trim) if trim else slice(None)
    v = res[keep].mean(axis=0)
    if mix == "geo":  # geometric mean of the trimmed and untrimmed estimates
        v = np.sqrt(v * res.mean(axis=0))
    elif mix == "floor":  # the trimmed estimate, at least half the untrimmed one
        v = np.maximum(v, 0.5 * res.mean(axis=0))
    floor = g.floor
    params[:] = np.log(np.expm1(np.maximum(v - floor, 1e-6)))
    return theta


def member_scores(m, X_test, X_held, X_fit=None):
    out = {}
    if X_fit is not None:
        trained = m.params_
        for name, trim, mix in (
            ("mstep", 0.2, None),
            ("mstep0", 0.0, None),
            ("mstep05", 0.05, None),
            ("mstep1", 0.1, None),
            ("mstepgeo", 0.2, "geo"),
            ("mstepfl", 0.2, "floor"),
        ):
            m.params_ = trained
            m.params_ = mstep_params(m, X_fit, trim, mix=mix)
            out[f"{name}_test"] = m._log_likelihood(X_test, 10)
            out[f"{name}_held"] = m._log_likelihood(X_held, 10)
        # the same from the held-out rows (which the model has not seen)
        m.params_ = trained
        m.params_ = mstep_params(m, X_held, 0.2)
        out["msteph_test"] = m._log_likelihood(X_test, 10)
        out["msteph_held"] = m._log_likelihood(X_held, 10)
        m.params_ = trained
    for name, X in (("test", X_test), ("held", X_held)):
        out[f"iwae10_{name}"] = m.score_samples(X)
        out[f"iwae50_{name}"] = m._log_likelihood(X, 50)
        c, sq = _cells(m, X)
        out[f"pm_{name}"] = -c.sum(axis=1)
        out[f"mse_{name}"] = -sq.sum(axis=1)
        out[f"_c_{name}"] = c
    c_h = out.pop("_c_held")
    c_t = out.pop("_c_test")
    mu, sd = c_h.mean(axis=0), c_h.std(axis=0) + 1e-12
    out["cellz_test"] = -((c_t - mu) / sd).sum(axis=1)
    out["cellz_held"] = -((c_h - mu) / sd).sum(axis=1)
    q1, med, q3 = np.percentile(c_h, [25, 50, 75], axis=0)
    rs = np.maximum((q3 - q1) / 1.349, 0.35 * sd)
    out["cellzr_test"] = -((c_t - med) / rs).sum(axis=1)
    out["cellzr_held"] = -((c_h - med) / rs).sum(axis=1)
    return out


def run(path, seed, members, outdir, collection):
    from sklearn.ensemble import IsolationForest
    from sklearn.utils import check_random_state
    from threadpoolctl import threadpool_limits

    import skvae
    from skvae import _anomaly

    path = Path(path)
    target = Path(outdir) / f"{collection}__{path.stem}__{seed}.npz"
    if target.exists():
        return str(target)
    with threadpool_limits(limits=1):
        X, y = ba.load_dataset(path)
        X_train, X_test, _, y_test = ba.prepare_split(X, y, seed)
        res = {"y_test": y_test}
        c0 = time.process_time()
        ifo = IsolationForest(random_state=seed).fit(X_train)
        res["IF_test"] = ifo.score_samples(X_test)
        res["IF_cpu"] = time.process_time() - c0
        for name, params in members.items():
            params = dict(params)
            rs = seed + params.pop("@seed", 0)
            consts = {k: params.pop(k) for k in list(params) if k.startswith("@")}
            with ba._constants(consts):
                m = skvae.VAEAnomalyDetector(
                    contamination=0.05, random_state=rs, **params
                )
                c0 = time.process_time()
                m.fit(X_train)
                s = m.score_samples(X_test)
                res[f"{name}__cpu"] = time.process_time() - c0
            fit, held = _anomaly._offset_split(X_train.shape[0], check_random_state(rs))
            held = X_train[held] if held is not None else X_train
            for k, v in member_scores(m, X_test, held, X_train[fit]).items():
                res[f"{name}__{k}"] = v
            assert np.allclose(res[f"{name}__iwae10_test"], s)
    np.savez(target, **res)
    return str(target)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="0")
    p.add_argument("--members", default=",".join(MEMBERS))
    p.add_argument("--extra", help="JSON of extra members name -> params")
    p.add_argument("--collection", default="both")
    p.add_argument("--datasets")
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--out", default="/tmp/screen")
    args = p.parse_args()
    members = {k: MEMBERS[k] for k in args.members.split(",") if k}
    if args.extra:
        members.update(json.loads(args.extra))
    os.makedirs(args.out, exist_ok=True)
    colls = (
        ba.COLLECTIONS
        if args.collection == "both"
        else {args.collection: ba.COLLECTIONS[args.collection]}
    )
    sel = args.datasets.split(",") if args.datasets else None
    jobs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for cname, folder in colls.items():
            files = ba.list_datasets(folder)
            if sel:
                files = [f for f in files if any(s in f.stem for s in sel)]
            jobs += [(str(f), seed, members, args.out, cname) for f in files]
    from joblib import Parallel, delayed

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    t0 = time.time()
    for i, r in enumerate(
        Parallel(n_jobs=args.n_jobs, return_as="generator")(
            delayed(run)(*j) for j in jobs
        ),
        1,
    ):
        print(f"[{i}/{len(jobs)}] {time.time() - t0:.0f}s {r}", flush=True)


if __name__ == "__main__":
    main()
