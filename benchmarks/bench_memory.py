"""Extra memory of ``transform`` and ``score_samples`` on very many rows.

skvae's inference works through its input in chunks of at most
``skvae._base._CHUNK_ELEMENTS`` (2**21) values of the widest layer, so the
memory it takes beyond its input and its output should not grow with the
number of rows. This benchmark measures it on 10 million rows x 32 float32
columns (1.28 GB of input, generated in blocks into one array: the input
counts as given).

Each (estimator, method, rows) case runs in its own subprocess, so that its
peak resident memory is its own. The child fits the estimator on 5000 rows,
fills the input, calls the method once on 1000 rows (loading BLAS and
warming NumPy's caches), then measures the call on all rows twice:

* RSS: the peak resident set size (``VmHWM`` of ``/proc/self/status``,
  reset just before the call through ``/proc/self/clear_refs``) minus the
  resident size just before it;
* tracemalloc: the peak of the memory traced during the call (NumPy reports
  its array buffers to tracemalloc), minus what was traced before.

"extra" is each figure minus the output array (``n_rows x latent_dim`` or
``n_rows`` values), which any implementation must return. Run with
``--rows 1000000,10000000`` to see whether it depends on the number of rows.

Usage::

    python benchmarks/bench_memory.py                       # 10M rows, 3 estimators
    python benchmarks/bench_memory.py --rows 1000000,10000000 --threads 1
    python benchmarks/bench_memory.py --estimators ae --methods transform

Linux only (``/proc``). BLAS uses ``--threads`` threads (default 2, so that
skvae's two-thread inference path, which holds two chunks at once, is
measured).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20

ESTIMATORS = {
    "ae": ("AutoencoderTransformer", {}),
    "vae": ("VAETransformer", {}),
    "detector": ("VAEAnomalyDetector", {}),
}


def _status(field):
    """A ``/proc/self/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(estimator, method, n_rows, n_features, seed=0):
    """Measure one call in this process; return a dict of figures."""
    import tracemalloc
    import warnings

    import numpy as np

    import skvae
    from skvae._base import _CHUNK_ELEMENTS

    name, params = ESTIMATORS[estimator]
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X_fit = rng.standard_normal((5000, n_features), dtype=np.float32)
        est = getattr(skvae, name)(max_iter=5, random_state=seed, **params)
        est.fit(X_fit)
    # the input, generated in blocks of rows
    X = np.empty((n_rows, n_features), dtype=np.float32)
    block = 1 << 18
    for start in range(0, n_rows, block):
        rng.standard_normal(out=X[start : start + block], dtype=np.float32)
    fn = getattr(est, method)
    fn(X[:1000])

    # RSS
    rss_before = _status("VmRSS")
    _reset_peak_rss()
    start = time.perf_counter()
    out = fn(X)
    seconds = time.perf_counter() - start
    rss_peak = _status("VmHWM")
    out_bytes = out.nbytes
    del out

    # tracemalloc
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    out = fn(X)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out

    widest = est._widest()
    # score_samples of the VAEs holds n_importance_samples draws per row
    draws = getattr(est, "n_importance_samples", 1) if method == "score_samples" else 1
    return {
        "estimator": name,
        "method": method,
        "n_rows": n_rows,
        "n_features": n_features,
        "input_MiB": X.nbytes / MiB,
        "output_MiB": out_bytes / MiB,
        "seconds": seconds,
        "rss_extra_MiB": (rss_peak - rss_before - out_bytes) / MiB,
        "traced_extra_MiB": (traced_peak - traced_before - out_bytes) / MiB,
        "widest_layer": widest,
        "chunk_rows": max(1, min(n_rows, _CHUNK_ELEMENTS // (widest * draws))),
        "chunk_MiB": _CHUNK_ELEMENTS * X.itemsize / MiB,
    }


def run_child(estimator, method, n_rows, n_features, threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p
    )
    args = [sys.executable, __file__, "--child", estimator, method]
    args += [str(n_rows), str(n_features)]
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="10000000", help="comma-separated")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--estimators", default="ae,vae,detector")
    parser.add_argument("--methods", default="transform,score_samples")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        estimator, method, n_rows, n_features = args.child
        print(json.dumps(child(estimator, method, int(n_rows), int(n_features))))
        return

    header = (
        f"{'estimator':<22} {'method':<14} {'rows':>10} {'in MiB':>7} "
        f"{'out MiB':>8} {'s':>6} {'RSS extra':>10} {'traced extra':>13} "
        f"{'chunk rows':>10}"
    )
    print(f"BLAS threads: {args.threads}; extra = peak - before - output, MiB")
    print(header)
    for n_rows in (int(r) for r in args.rows.split(",")):
        for estimator in args.estimators.split(","):
            for method in args.methods.split(","):
                r = run_child(estimator, method, n_rows, args.features, args.threads)
                print(
                    f"{r['estimator']:<22} {r['method']:<14} {r['n_rows']:>10} "
                    f"{r['input_MiB']:>7.0f} {r['output_MiB']:>8.1f} "
                    f"{r['seconds']:>6.1f} {r['rss_extra_MiB']:>10.1f} "
                    f"{r['traced_extra_MiB']:>13.1f} {r['chunk_rows']:>10}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
