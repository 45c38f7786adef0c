"""Scale-out benchmark of skvae.dask (issue 12).

Rows are generated on the workers, block by block (never in the client
process): 32 float32 columns with a non-linear low-rank structure,
``x = tanh(z A) B + 0.1 e`` with ``z`` 4-dimensional. For each number of
rows N and each number of worker processes (one thread each), it fits a
``DaskVAETransformer`` with a fixed budget of epochs, scores held-out rows,
and times ``score_samples`` over the N rows; it records the client's peak
memory during each phase (sampled) and the workers' peak memory (each
configuration starts a fresh ``LocalCluster``). A subprocess trains the
in-memory ``VAETransformer`` on the same rows (``--plain-rows``) with the
same budget, for the held-out comparison.

Usage::

    nice -n 10 python benchmarks/bench_scaleout.py                 # 1M, 4M, 16M
    python benchmarks/bench_scaleout.py --rows 1e6 --workers 1 2
    python benchmarks/bench_scaleout.py --scheduler tcp://host:8786  # a cluster
    python benchmarks/bench_scaleout.py --plot docs/_static/scaleout.png

``--mixed`` times one fit on a generated mixed table instead (a dask
DataFrame made on the workers: 8 numeric columns and 2 category columns from
the same structure, 10 % of the cells of every column missing), with the
in-memory estimator on the same rows for the held-out comparison; results
go to ``benchmarks/results/bench_scaleout_mixed.json``::

    nice -n 10 python benchmarks/bench_scaleout.py --mixed --rows 1e6

Given ``--scheduler`` it uses that cluster as it is (the workers' peak memory
is then the peak since they started). Results go to
``benchmarks/results/bench_scaleout.json``; ``--plot`` draws the figure of the
user guide from that file.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

N_FEATURES = 32
RANK = 4
RESULTS = Path(__file__).parent / "results" / "bench_scaleout.json"
RESULTS_MIXED = RESULTS.with_name("bench_scaleout_mixed.json")
MODEL = {
    "hidden_layer_sizes": (64,),
    "latent_dim": 4,
    "random_state": 0,
}


def make_block(block_id, n_rows, seed):
    """Rows of one block (runs on a worker)."""
    fixed = np.random.default_rng(12345)
    A = fixed.standard_normal((RANK, 16))
    B = fixed.standard_normal((16, N_FEATURES)) / 2
    rng = np.random.default_rng([seed, block_id])
    z = rng.standard_normal((n_rows, RANK))
    x = np.tanh(z @ A) @ B + 0.1 * rng.standard_normal((n_rows, N_FEATURES))
    return x.astype(np.float32)


#: Columns of the ``--mixed`` table: numeric ones, then two categorical ones.
MIXED_NUMERIC = 8
MIXED_LEVELS = {"kind": ["a", "b", "c"], "band": ["v", "w", "x", "y", "z"]}
MIXED_MISSING = 0.1


def make_mixed_block(block_id, n_rows, seed):
    """Rows of one block of the mixed table (runs on a worker): a pandas
    DataFrame with NaN on 10 % of the cells of every column."""
    import pandas as pd

    x = make_block(block_id, n_rows, seed)
    rng = np.random.default_rng([seed, block_id, 1])
    data = {f"x{j}": x[:, j].copy() for j in range(MIXED_NUMERIC)}
    # the categories follow the structure of the remaining columns
    rest = x[:, MIXED_NUMERIC:]
    kind = np.argmax(rest[:, :3], axis=1)
    band = np.digitize(rest[:, 3], [-1.0, -0.3, 0.3, 1.0])
    for name, codes in (("kind", kind), ("band", band)):
        noise = rng.random(n_rows) < 0.05
        codes = np.where(noise, rng.integers(0, len(MIXED_LEVELS[name]), n_rows), codes)
        data[name] = pd.Categorical.from_codes(codes, MIXED_LEVELS[name])
    frame = pd.DataFrame(data)
    for name in frame.columns:
        hide = rng.random(n_rows) < MIXED_MISSING
        frame.loc[hide, name] = np.nan
    return frame


def mixed_meta():

    return make_mixed_block(0, 1, 0).iloc[:0]


def mixed_dataset(n_rows, chunk, seed):
    """A dask DataFrame whose partitions are made where they are computed."""
    import dask
    import dask.dataframe as dd

    parts = [
        dask.delayed(make_mixed_block, pure=True)(i, n, seed)
        for i, n in enumerate(block_sizes(n_rows, chunk))
    ]
    return dd.from_delayed(parts, meta=mixed_meta())


def block_sizes(n_rows, chunk):
    return [chunk] * (n_rows // chunk) + ([n_rows % chunk] if n_rows % chunk else [])


def dataset(n_rows, chunk, seed):
    """A dask array whose blocks are made where they are computed."""
    import dask
    import dask.array as da

    parts = [
        da.from_delayed(
            dask.delayed(make_block, pure=True)(i, n, seed),
            shape=(n, N_FEATURES),
            dtype=np.float32,
            meta=np.empty((0, N_FEATURES), dtype=np.float32),
        )
        for i, n in enumerate(block_sizes(n_rows, chunk))
    ]
    return da.concatenate(parts, axis=0)


def in_memory(n_rows, chunk, seed):
    return np.concatenate(
        [make_block(i, n, seed) for i, n in enumerate(block_sizes(n_rows, chunk))]
    )


class PeakMemory:
    """Peak resident memory of this process while inside (sampled)."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _cpu_seconds():
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def workers_cpu(client):
    """CPU-seconds used so far by all the worker processes together."""
    return sum(client.run(_cpu_seconds).values())


def _worker_peak_rss():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_training_phase(times):
    """Record the duration of the training passes of each fit (not the
    one-pass statistics before and after) in ``times``."""
    from skvae.dask import _estimators

    train = _estimators._train

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = train(*args, **kwargs)
        times.append(time.perf_counter() - start)
        return out

    _estimators._train = timed


def run_config(client, n_rows, args):
    """Fit, held-out score and score_samples throughput for one N."""
    from skvae.dask import DaskVAETransformer

    times = []
    time_training_phase(times)
    make = mixed_dataset if args.mixed else dataset
    X = make(n_rows, args.chunk, seed=1)
    X_test = make(args.test_rows, args.chunk, seed=2)
    row = {"rows": n_rows, "workers": len(client.nthreads())}
    with PeakMemory() as mem_gen:
        start = time.perf_counter()
        float(X.shape[0].compute() if args.mixed else X.sum().compute())
        row["generate_s"] = time.perf_counter() - start
    est = DaskVAETransformer(**MODEL, max_iter=args.epochs, client=client)
    with PeakMemory() as mem_fit:
        cpu = workers_cpu(client)
        start = time.perf_counter()
        est.fit(X)
        row["fit_s"] = time.perf_counter() - start
        row["fit_cpu_s"] = workers_cpu(client) - cpu
    row["epochs"] = est.n_iter_
    row["train_loss"] = est.loss_curve_[-1]
    row["fit_rows_per_s"] = n_rows * est.n_iter_ / row["fit_s"]
    row["train_s"] = times[-1]
    row["train_rows_per_s"] = n_rows * est.n_iter_ / row["train_s"]
    row["heldout"] = float(est.score(X_test).compute())
    with PeakMemory() as mem_score:
        cpu = workers_cpu(client)
        start = time.perf_counter()
        float(est.score_samples(X).sum().compute())
        row["score_s"] = time.perf_counter() - start
        row["score_cpu_s"] = workers_cpu(client) - cpu
    row["score_rows_per_s"] = n_rows / row["score_s"]
    row["client_peak_mb"] = max(mem_gen.peak, mem_fit.peak, mem_score.peak) / 2**20
    row["worker_peak_mb"] = max(client.run(_worker_peak_rss).values()) / 2**20
    row["load"] = os.getloadavg()[0]
    return row


def run_plain(args):
    """The in-memory estimator on the same rows and budget (a subprocess)."""
    from skvae import VAETransformer

    if args.mixed:
        import pandas as pd

        def frame(n, seed):
            sizes = block_sizes(n, args.chunk)
            blocks = [make_mixed_block(i, k, seed) for i, k in enumerate(sizes)]
            return pd.concat(blocks, ignore_index=True)

        X = frame(args.plain_rows, seed=1)
        X_test = frame(args.test_rows, seed=2)
    else:
        X = in_memory(args.plain_rows, args.chunk, seed=1)
        X_test = in_memory(args.test_rows, args.chunk, seed=2)
    est = VAETransformer(**MODEL, max_iter=args.epochs)
    start = time.perf_counter()
    est.fit(X)
    fit_s = time.perf_counter() - start
    out = {
        "rows": args.plain_rows,
        "fit_s": fit_s,
        "fit_rows_per_s": args.plain_rows * est.n_iter_ / fit_s,
        "heldout": float(est.score(X_test)),
        "train_loss": est.loss_curve_[-1],
    }
    print(json.dumps(out))


def plain_subprocess(args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--plain", "--plain-rows", str(args.plain_rows)]
    cmd += ["--epochs", str(args.epochs), "--chunk", str(args.chunk)]
    cmd += ["--test-rows", str(args.test_rows)]
    cmd += ["--mixed"] if args.mixed else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows, plain):
    head = (
        f"{'rows':>10} {'workers':>7} {'fit s':>8} {'fit rows/s':>11} "
        f"{'train rows/s':>12} "
        f"{'held-out':>9} {'score rows/s':>13} {'client MB':>10} "
        f"{'worker MB':>10} {'load':>5}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['rows']:>10} {r['workers']:>7} {r['fit_s']:>8.1f} "
            f"{r['fit_rows_per_s']:>11.0f} {r['train_rows_per_s']:>12.0f} "
            f"{r['heldout']:>9.3f} "
            f"{r['score_rows_per_s']:>13.0f} {r['client_peak_mb']:>10.0f} "
            f"{r['worker_peak_mb']:>10.0f} {r['load']:>5.1f}"
        )
    if all("fit_cpu_s" in r for r in rows):
        print("worker CPU-seconds per million rows (independent of other load):")
        for r in rows:
            m = r["rows"] / 1e6
            print(
                f"  N={r['rows']:>9} workers={r['workers']}: fit "
                f"{r['fit_cpu_s'] / m:.1f}, score_samples {r['score_cpu_s'] / m:.1f}"
            )
    by = {(r["rows"], r["workers"]): r for r in rows}
    for n in sorted({r["rows"] for r in rows}):
        one, two = by.get((n, 1)), by.get((n, 2))
        if one and two:
            print(
                f"N={n}: 2 vs 1 worker: score_samples x"
                f"{two['score_rows_per_s'] / one['score_rows_per_s']:.2f}, "
                f"fit x{two['fit_rows_per_s'] / one['fit_rows_per_s']:.2f}, "
                f"training passes x"
                f"{two['train_rows_per_s'] / one['train_rows_per_s']:.2f} "
                f"(held-out {one['heldout']:.3f} / {two['heldout']:.3f})"
            )
    if plain:
        print(
            f"in memory, {plain['rows']} rows: held-out {plain['heldout']:.3f} "
            f"nats/row, fit {plain['fit_s']:.1f} s"
        )
        for r in rows:
            if r["rows"] == plain["rows"]:
                print(
                    f"  dask with {r['workers']} worker(s): held-out "
                    f"{r['heldout']:.3f} ({r['heldout'] - plain['heldout']:+.3f})"
                )


def plot(path, sources):
    """The user guide's figure from result files (later ones take precedence)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {}
    for source in sources:
        for r in json.loads(Path(source).read_text())["dask"]:
            by[(r["rows"], r["workers"])] = r
    rows = list(by.values())
    has_cpu = any("fit_cpu_s" in r for r in rows)
    fig, axes = plt.subplots(
        1, 4 if has_cpu else 3, figsize=(14 if has_cpu else 11, 3.4)
    )
    for w, marker, color in ((1, "o", "C0"), (2, "s", "C1")):
        sel = sorted((r for r in rows if r["workers"] == w), key=lambda r: r["rows"])
        if not sel:
            continue
        n = [r["rows"] / 1e6 for r in sel]
        label = f"{w} worker{'s' if w > 1 else ''}"
        style = {"marker": marker, "color": color}
        axes[0].plot(
            n, [r["score_rows_per_s"] / 1e3 for r in sel], label=label, **style
        )
        axes[1].plot(
            n, [r["train_rows_per_s"] / 1e3 for r in sel], label=label, **style
        )
        mem = axes[-1]
        mem.plot(
            n, [r["worker_peak_mb"] for r in sel], label=f"a worker, {label}", **style
        )
        mem.plot(
            n,
            [r["client_peak_mb"] for r in sel],
            linestyle="--",
            label=f"client, {label}",
            **style,
        )
        if has_cpu:
            cpu = [r for r in sel if "fit_cpu_s" in r]
            m = [r["rows"] / 1e6 for r in cpu]
            axes[2].plot(
                m,
                [r["fit_cpu_s"] / (r["rows"] / 1e6) for r in cpu],
                label=f"fit, {label}",
                **style,
            )
            axes[2].plot(
                m,
                [r["score_cpu_s"] / (r["rows"] / 1e6) for r in cpu],
                linestyle="--",
                label=f"score_samples, {label}",
                **style,
            )
    titles = ["score_samples (k rows/s)", "training passes (k rows/s)"]
    if has_cpu:
        titles.append("worker CPU-s per million rows")
    titles.append("peak memory (MB)")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_xlim(0.7, 25)
        ax.set_xticks([1, 4, 16], ["1", "4", "16"])
        ax.minorticks_off()
        ax.set_xlabel("rows (millions)")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    loads = [r["load"] for r in rows]
    fig.suptitle(
        "skvae.dask on a shared 2-core machine, 1 thread per worker "
        f"(load average {min(loads):.0f} to {max(loads):.0f})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e6, 4e6, 16e6])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scheduler", default=None, help="address of a cluster")
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--plain-rows", type=int, default=None)
    parser.add_argument(
        "--mixed", action="store_true", help="a table with categories and NaN"
    )
    parser.add_argument("--no-plain", action="store_true")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plot", default=None, help="draw the figure to this path")
    parser.add_argument(
        "--results", nargs="+", default=[str(RESULTS)], help="files for --plot"
    )
    args = parser.parse_args()
    if args.plain_rows is None:
        # the in-memory comparison: 4M rows, or the (smallest) N of --mixed
        args.plain_rows = int(min(args.rows)) if args.mixed else 4_000_000
    results = RESULTS_MIXED if args.mixed else RESULTS
    if args.plot:
        plot(args.plot, args.results)
        return
    if args.plain:
        run_plain(args)
        return
    from distributed import Client, LocalCluster

    import skvae.dask  # noqa: F401  (sets the workers' dask configuration)

    rows = []
    plain = None if args.no_plain else plain_subprocess(args)
    if plain:
        print(f"in memory: {plain}", flush=True)
    configs = [None] if args.scheduler else args.workers
    for n_workers in configs:
        for n_rows in (int(n) for n in args.rows):
            if args.scheduler:
                client, cluster = Client(args.scheduler), None
            else:
                cluster = LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
                client = Client(cluster)
            try:
                row = run_config(client, n_rows, args)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
            print(json.dumps(row), flush=True)
            rows.append(row)
            results.parent.mkdir(exist_ok=True)
            results.write_text(json.dumps({"dask": rows, "plain": plain}, indent=1))
    print_table(rows, plain)
    if math.isfinite(os.getloadavg()[0]):
        print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
