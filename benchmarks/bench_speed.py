"""Training and inference speed of skvae against PyTorch, scikit-learn and BLAS.

Three workloads (``mnist``, ``tabular``, ``digits``) are each trained by
several systems, every system in its own subprocess so that its peak resident
memory can be read with ``resource.getrusage`` and no system warms the caches,
thread pools or allocator of another:

* ``vae32`` / ``vae64`` - ``skvae.VAETransformer`` on float32 / float64 input,
* ``ae32`` - ``skvae.AutoencoderTransformer`` on float32 input,
* ``torch`` - the same VAE written in PyTorch (the fastest idiomatic loop:
  no DataLoader, one ``randperm`` per epoch, Adam, float32),
* ``mlp`` - ``sklearn.neural_network.MLPRegressor`` fitted X -> X with the
  mirrored architecture (an autoencoder without the variational part),
* ``gemm`` - the BLAS roofline: only the matrix products of one epoch
  (forward and backward) at the VAE's exact shapes, in float32, through
  numpy's BLAS; no system doing the same arithmetic can be faster than this.

A system name may carry a thread count, ``vae32@1`` (the default is
``--threads``, 2). The child then sets ``OMP_NUM_THREADS`` /
``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` and runs inside
``threadpoolctl.threadpool_limits(n)`` (``torch.set_num_threads(n)`` for
torch). The default run includes ``vae32@1`` and ``gemm@1`` next to the
2-thread rows, so whether BLAS threading helps at each shape is measured
rather than assumed.

skvae is timed one epoch at a time with ``partial_fit`` (one pass over X);
the reported figure is the median of epochs 2..E, the first epoch holding
the one-off set-up. Torch and the roofline are timed the same way.
``MLPRegressor`` has no per-epoch hook, so its figure is the fit time over
``max_iter=E`` epochs divided by E.

For the tabular workload the skvae children also time ``transform``,
``score_samples`` and ``sample(n)`` on all 100000 rows (best of up to three
calls).

The results are printed as a table and written to
``benchmarks/results/speed.csv``. Run ``python benchmarks/bench_speed.py -h``
for the options; ``--quick`` is a smoke test of well under a minute.

Environment: variables such as ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``
(safety settings for old OpenBLAS builds) change which kernel a current numpy
uses and can slow it down. They are passed to the children unchanged unless
``--unset-openblas-env`` is given; the header shows them and the BLAS kernel
that threadpoolctl reports, and each row records the kernel its child saw.
The load average is printed at start and end: the machine is shared, and a
busy machine makes every figure slower.
"""

import argparse
import csv
import importlib
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT_TAG = "@@BENCH_RESULT@@ "

#: Environment variables that pin OpenBLAS to an older kernel / cache size.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------

WORKLOADS = {
    "mnist": dict(
        n_samples=20000,
        n_features=784,
        hidden=(512, 256),
        latent=16,
        batch_size=128,
        likelihood="bernoulli",
        epochs=5,
        description="20000 x 784 synthetic in [0, 1]",
    ),
    "tabular": dict(
        n_samples=100000,
        n_features=32,
        hidden=(64, 32),
        latent=8,
        batch_size=256,
        likelihood="gaussian",
        epochs=10,
        description="100000 x 32 synthetic, standardised",
    ),
    "digits": dict(
        n_samples=1797,
        n_features=64,
        hidden=(128,),
        latent=8,
        batch_size=128,
        likelihood="bernoulli",
        epochs=30,
        description="load_digits / 16",
    ),
}

#: Sizes and epochs of ``--quick`` (a smoke test, not a measurement).
QUICK = {
    "mnist": dict(n_samples=512, epochs=2),
    "tabular": dict(n_samples=2048, epochs=2),
    "digits": dict(n_samples=512, epochs=2),
}

#: The reference figures of the issue (s/epoch on the 2-core machine).
REFERENCE = {
    "mnist": dict(torch=1.96, gemm=0.96, mlp=3.3),
    "tabular": dict(torch=0.92, gemm=0.056, mlp=0.54),
    "digits": dict(torch=0.023, gemm=0.0021, mlp=0.013),
}

SYSTEMS = {
    "vae32": dict(kind="skvae", model="vae", dtype="float32"),
    "vae64": dict(kind="skvae", model="vae", dtype="float64"),
    "ae32": dict(kind="skvae", model="ae", dtype="float32"),
    "torch": dict(kind="torch", dtype="float32"),
    "mlp": dict(kind="mlp", dtype="float32"),
    "gemm": dict(kind="gemm", dtype="float32"),
}
DEFAULT_SYSTEMS = "vae32,vae32@1,vae64,ae32,torch,mlp,gemm,gemm@1"
#: Without ``--systems``, ``--quick`` runs each system once, spread over the
#: workloads (both torch likelihoods, skvae inference on tabular): a child
#: spends about 2 s importing scikit-learn/SciPy (3 s for torch), so the full
#: 24-child grid could not be a 30-second smoke test.
QUICK_PLAN = {
    "mnist": "vae32,torch,mlp,gemm",
    "tabular": "vae32,vae32@1,ae32,torch",
    "digits": "vae64,gemm@1",
}

#: Rows generated at a time, so that data generation never needs more memory
#: than the final array (the RSS before fit is then the data, not temporaries).
GEN_CHUNK = 2048


def _sigmoid(a):
    import numpy as np

    return 0.5 * (1.0 + np.tanh(0.5 * a))


def make_data(workload, n_samples, dtype):
    """The workload's data, generated deterministically into a ``dtype`` array.

    The generator is seeded, and float32 data is the float64 data rounded,
    so every system sees the same rows.
    """
    import numpy as np

    if workload == "digits":
        from sklearn.datasets import load_digits

        return (load_digits().data / 16.0).astype(dtype)[:n_samples]

    rng = np.random.default_rng(0)
    if workload == "mnist":
        # Low-rank and non-linear: 16 latent factors through a tanh layer,
        # pushed into [0, 1] by a sigmoid, with pixel noise; most values end
        # up near 0 or 1 as in MNIST.
        k, h, d = 16, 64, 784
        A = rng.standard_normal((k, h)) / np.sqrt(k) * 1.5
        B = rng.standard_normal((h, d)) / np.sqrt(h) * 4.0
        offset = rng.normal(-1.5, 1.0, size=d)
        X = np.empty((n_samples, d), dtype=dtype)
        for start in range(0, n_samples, GEN_CHUNK):
            stop = min(start + GEN_CHUNK, n_samples)
            z = rng.standard_normal((stop - start, k))
            noise = rng.standard_normal((stop - start, d)) * 0.3
            X[start:stop] = _sigmoid(np.tanh(z @ A) @ B + offset + noise)
        return X

    if workload == "tabular":
        # 8 latent factors through a non-linear map (tanh features, pairwise
        # products, a sine) plus noise, then standardised column-wise.
        k, d = 8, 32
        A = rng.standard_normal((k, 16)) / np.sqrt(k) * 1.5
        B = rng.standard_normal((16, d)) / 4.0
        C = rng.standard_normal((k, d)) / np.sqrt(k)
        P = rng.standard_normal((k, d)) * 0.3
        X = np.empty((n_samples, d), dtype=dtype)
        for start in range(0, n_samples, GEN_CHUNK):
            stop = min(start + GEN_CHUNK, n_samples)
            z = rng.standard_normal((stop - start, k))
            zz = z * np.roll(z, 1, axis=1)
            X[start:stop] = (
                np.tanh(z @ A) @ B
                + np.sin(z @ C)
                + zz @ P
                + 0.1 * rng.standard_normal((stop - start, d))
            )
        mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        X -= mean.astype(dtype)
        X /= std.astype(dtype)
        return X

    raise ValueError(f"unknown workload {workload!r}")


# --------------------------------------------------------------------------
# Child side: one system on one workload
# --------------------------------------------------------------------------


def _rss_now_mb():
    """Current resident set size in MB (Linux), else NaN."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _peak_rss_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _epoch_stats(out, times):
    """Median and minimum of epochs 2..E (all epochs when E is 1)."""
    timed = times[1:] if len(times) > 1 else times
    out["median_s"] = statistics.median(timed)
    out["min_s"] = min(timed)
    out["fit_total_s"] = sum(times)
    out["epoch_times"] = times


def _numpy_blas():
    """``(kernel, threads)`` of numpy's BLAS as threadpoolctl reports it."""
    from threadpoolctl import threadpool_info

    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    infos.sort(key=lambda i: "numpy" not in i.get("filepath", ""))
    if not infos:
        return "?", None
    info = infos[0]
    kernel = f"{info.get('internal_api')} {info.get('architecture', '')}".strip()
    return kernel, info.get("num_threads")


def _time_best(func, max_calls=3, budget=5.0):
    """Best wall time of up to ``max_calls`` calls, stopping after ``budget`` s."""
    best, spent = math.inf, 0.0
    for _ in range(max_calls):
        t0 = time.perf_counter()
        func()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
        if spent > budget:
            break
    return best


def _run_skvae(cfg, X, epochs, out):
    try:
        import skvae
        from skvae import AutoencoderTransformer, VAETransformer
    except Exception as exc:  # ImportError, or a half-written package
        return dict(status="skipped", note=f"skvae not importable ({exc!r})")

    out["version"] = getattr(skvae, "__version__", "?")
    out["module_path"] = str(Path(skvae.__file__).parent)
    common = dict(
        hidden_layer_sizes=tuple(cfg["hidden"]),
        latent_dim=cfg["latent"],
        batch_size=cfg["batch_size"],
        solver="adam",
        learning_rate_init=1e-3,
        alpha=0.0,
        random_state=0,
    )
    if cfg["model"] == "vae":
        est = VAETransformer(likelihood=cfg["likelihood"], **common)
        out["loss_kind"] = "neg. ELBO/row"
    else:
        est = AutoencoderTransformer(**common)
        out["loss_kind"] = "recon. loss"

    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        est.partial_fit(X)
        times.append(time.perf_counter() - t0)
    out["peak_rss_mb"] = _peak_rss_mb()
    _epoch_stats(out, times)
    out["final_loss"] = float(est.loss_curve_[-1])

    # the roofline again, one epoch after each skvae epoch in this process:
    # the ratio of each pair is immune to the drift of a shared machine's
    # speed between the two children of the gemm and skvae rows
    epoch, _ = _gemm_epoch(cfg, *X.shape)
    ratios = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        est.partial_fit(X)
        t1 = time.perf_counter()
        epoch()
        ratios.append((time.perf_counter() - t1) / (t1 - t0))
    out["paired_roofline_pct"] = 100.0 * statistics.median(ratios[1:] or ratios)

    if cfg["inference"]:
        n = X.shape[0]
        out["transform_s"] = _time_best(lambda: est.transform(X))
        out["score_samples_s"] = _time_best(lambda: est.score_samples(X))
        out["sample_s"] = _time_best(lambda: est.sample(n, random_state=0))
        out["inference_rows"] = n
        out["inference_peak_rss_mb"] = _peak_rss_mb()
    return out


def _run_torch(cfg, X, epochs, out):
    try:
        import torch
    except ImportError:
        return dict(status="skipped", note="torch not installed")

    out["version"] = torch.__version__
    torch.set_num_threads(cfg["threads"])
    out["torch_threads"] = torch.get_num_threads()
    torch.manual_seed(0)
    nn = torch.nn
    d, hidden, k = X.shape[1], cfg["hidden"], cfg["latent"]

    def stack(sizes):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    encoder = stack((d, *hidden, 2 * k))
    decoder = stack((k, *hidden[::-1], d))
    params = list(encoder.parameters()) + list(decoder.parameters())
    gaussian = cfg["likelihood"] == "gaussian"
    if gaussian:
        log_var_x = nn.Parameter(torch.zeros(d))
        params.append(log_var_x)
    optimizer = torch.optim.Adam(params, lr=1e-3)
    log_2pi = math.log(2.0 * math.pi)

    def neg_elbo(xb):
        h = encoder(xb)
        mu, log_var = h[:, :k], h[:, k:]
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        out_x = decoder(z)
        if gaussian:
            rec = 0.5 * (
                log_2pi + log_var_x + (xb - out_x) ** 2 * torch.exp(-log_var_x)
            ).sum(dim=1)
        else:
            rec = nn.functional.binary_cross_entropy_with_logits(
                out_x, xb, reduction="none"
            ).sum(dim=1)
        kl = -0.5 * (1.0 + log_var - mu**2 - torch.exp(log_var)).sum(dim=1)
        return (rec + kl).mean()

    Xt = torch.from_numpy(X)
    n, bs = Xt.shape[0], cfg["batch_size"]
    gen = torch.Generator().manual_seed(0)
    times, epoch_loss = [], float("nan")
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        total = torch.zeros(())
        for start in range(0, n, bs):
            xb = Xt[perm[start : start + bs]]
            loss = neg_elbo(xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * xb.shape[0]
        epoch_loss = total.item() / n
        times.append(time.perf_counter() - t0)
    out["peak_rss_mb"] = _peak_rss_mb()
    _epoch_stats(out, times)
    out["final_loss"] = epoch_loss
    out["loss_kind"] = "neg. ELBO/row"
    return out


def _run_mlp(cfg, X, epochs, out):
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    out["version"] = sklearn.__version__
    hidden = (*cfg["hidden"], cfg["latent"], *cfg["hidden"][::-1])
    est = MLPRegressor(
        hidden_layer_sizes=hidden,
        batch_size=cfg["batch_size"],
        solver="adam",
        learning_rate_init=1e-3,
        alpha=0.0,  # as the skvae rows; the L2 term costs next to nothing
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(X, X)
        total = time.perf_counter() - t0
    out["peak_rss_mb"] = _peak_rss_mb()
    out["median_s"] = total / epochs
    out["fit_total_s"] = total
    out["final_loss"] = float(est.loss_curve_[-1])
    out["loss_kind"] = "MSE/2 per value"
    out["note"] = "s/epoch = fit time / epochs"
    return out


def roofline_shapes(n_samples, n_features, hidden, latent, batch_size):
    """The GEMMs ``(m, k, n)`` of one epoch of the VAE, forward and backward.

    Per batch and layer ``A (b x in) @ W (in x out)``, ``A.T @ delta`` for
    the weight gradient and ``delta @ W.T`` for the gradient of the layer's
    input, except for the first encoder layer whose input is the data (no
    implementation needs that product, torch does not compute it).
    """
    encoder = (n_features, *hidden, 2 * latent)
    decoder = (latent, *hidden[::-1], n_features)
    layers = list(zip(encoder[:-1], encoder[1:])) + list(zip(decoder[:-1], decoder[1:]))
    sizes = [batch_size] * (n_samples // batch_size)
    if n_samples % batch_size:
        sizes.append(n_samples % batch_size)
    return sizes, layers


def _gemm_epoch(cfg, n_samples, n_features):
    """A function that runs the roofline's matrix products of one epoch.

    Returns ``(epoch, flops)``. One set of preallocated operands per distinct
    batch size, so that only the products are timed (no allocation, no
    activations).
    """
    import numpy as np

    sizes, layers = roofline_shapes(
        n_samples, n_features, cfg["hidden"], cfg["latent"], cfg["batch_size"]
    )
    rng = np.random.default_rng(0)
    dt = np.float32
    buffers = {}
    for b in set(sizes):
        bufs = []
        for i, (n_in, n_out) in enumerate(layers):
            A = rng.standard_normal((b, n_in)).astype(dt)
            W = rng.standard_normal((n_in, n_out)).astype(dt)
            delta = rng.standard_normal((b, n_out)).astype(dt)
            Z = np.empty((b, n_out), dt)
            gW = np.empty((n_in, n_out), dt)
            gA = None if i == 0 else np.empty((b, n_in), dt)
            bufs.append((A, W, delta, Z, gW, gA))
        buffers[b] = bufs

    def epoch():
        for b in sizes:
            for A, W, delta, Z, gW, gA in buffers[b]:
                np.dot(A, W, out=Z)
                np.dot(A.T, delta, out=gW)
                if gA is not None:
                    np.dot(delta, W.T, out=gA)

    flops = sum(
        2 * b * n_in * n_out * (2 if i == 0 else 3)
        for b in sizes
        for i, (n_in, n_out) in enumerate(layers)
    )
    return epoch, flops


def _run_gemm(cfg, X, epochs, out):
    import numpy as np

    out["version"] = np.__version__
    epoch, flops = _gemm_epoch(cfg, *X.shape)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    out["peak_rss_mb"] = _peak_rss_mb()
    _epoch_stats(out, times)
    out["gflops"] = flops / out["median_s"] / 1e9
    out["note"] = f"{flops / 1e9:.2f} GFLOP/epoch, {out['gflops']:.1f} GFLOP/s"
    return out


IMPORTS = {"skvae": "skvae", "torch": "torch", "mlp": "sklearn.neural_network"}
RUNNERS = {"skvae": _run_skvae, "torch": _run_torch, "mlp": _run_mlp, "gemm": _run_gemm}


def child_main(cfg):
    """Run one system on one workload; print one JSON line tagged RESULT_TAG."""
    out = dict(status="ok", load1_start=os.getloadavg()[0])
    threads = cfg["threads"]
    try:
        import numpy as np
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            out["blas_kernel"], out["blas_threads"] = _numpy_blas()
            X = make_data(cfg["workload"], cfg["n_samples"], np.dtype(cfg["dtype"]))
            out["n_samples"], out["n_features"] = X.shape
            # Import the system's library before the baseline is taken, so
            # that the fit-phase memory is the fit's own; a failed import is
            # reported by the runner.
            sys.path.append(str(REPO))  # skvae: fall back on the source tree
            module = IMPORTS.get(cfg["kind"], "numpy")
            try:
                importlib.import_module(module)
            except Exception:
                pass
            out["rss_before_fit_mb"] = _rss_now_mb()
            out["peak_rss_before_fit_mb"] = _peak_rss_mb()
            out = RUNNERS[cfg["kind"]](cfg, X, cfg["epochs"], out) or out
    except Exception as exc:  # reported by the parent, never a silent pass
        import traceback

        traceback.print_exc()
        out = dict(status="error", note=f"{type(exc).__name__}: {exc}")
    print(RESULT_TAG + json.dumps(out), flush=True)


# --------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------


def parse_systems(text, default_threads):
    systems = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, threads = item.partition("@")
        if name not in SYSTEMS:
            raise SystemExit(
                f"unknown system {name!r}; choose from {', '.join(SYSTEMS)} "
                "(optionally with @THREADS, e.g. vae32@1)"
            )
        n_threads = int(threads) if threads else default_threads
        label = name if n_threads == default_threads else f"{name}@{n_threads}"
        systems.append((label, name, n_threads))
    return systems


def child_env(threads, unset_openblas_env):
    env = dict(os.environ)
    for key in THREAD_ENV:
        env[key] = str(threads)
    if unset_openblas_env:
        for key in OPENBLAS_ENV:
            env.pop(key, None)
    return env


def run_child(cfg, env, timeout):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(cfg)]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return dict(status="error", note=f"timed out after {timeout} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG) :])
            if result.get("status") == "error" and proc.stderr:
                sys.stderr.write(proc.stderr)
            return result
    sys.stderr.write(proc.stdout + proc.stderr)
    return dict(status="error", note=f"child exited {proc.returncode}, no result")


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def print_header(args):
    import numpy as np
    from threadpoolctl import threadpool_info

    print("skvae speed benchmark")
    print(f"  python {platform.python_version()} on {platform.platform()}")
    print(f"  cpus: {os.cpu_count()}  load average at start: {os.getloadavg()}")
    versions = {d: _version(d) for d in ("numpy", "scipy", "scikit-learn", "torch")}
    print("  " + "  ".join(f"{k} {v}" for k, v in versions.items()))
    spec = importlib.util.find_spec("skvae")
    if spec is None:  # the children fall back on the source tree, as here
        sys.path.append(str(REPO))
        spec = importlib.util.find_spec("skvae")
    where = Path(spec.origin).parent if spec and spec.origin else "not importable"
    print(f"  skvae from: {where}")
    for key in OPENBLAS_ENV + THREAD_ENV:
        if key in os.environ:
            print(f"  env {key}={os.environ[key]}")
    if args.unset_openblas_env:
        print(f"  children run with {', '.join(OPENBLAS_ENV)} removed")
    else:
        print(
            f"  children inherit {', '.join(OPENBLAS_ENV)} if set "
            "(see --unset-openblas-env)"
        )
    print(
        f"  numpy {np.__version__} threadpools in this parent process "
        "(threadpool_info; each row shows its child's own kernel):"
    )
    for info in threadpool_info():
        print(
            "    {user_api}/{internal_api} {version} kernel={arch} "
            "threads={num_threads} {lib}".format(
                arch=info.get("architecture", "-"),
                lib=Path(info["filepath"]).name,
                **{k: info.get(k) for k in ("user_api", "internal_api", "version")},
                num_threads=info.get("num_threads"),
            )
        )


def _fmt(value, spec):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def add_ratios(rows):
    """skvae / torch and roofline / skvae, matched on workload and threads."""
    by_key = {}
    for row in rows:
        if row["status"] == "ok":
            by_key[(row["workload"], row["system_name"], row["threads"])] = row
    for row in rows:
        if row["status"] != "ok" or row["kind"] != "skvae":
            continue
        w, t = row["workload"], row["threads"]

        def match(name, w=w, t=t):
            if (w, name, t) in by_key:
                return by_key[(w, name, t)]
            same = [r for (ww, n, _), r in by_key.items() if ww == w and n == name]
            return same[0] if same else None

        torch_row, gemm_row = match("torch"), match("gemm")
        if torch_row:
            row["skvae_over_torch"] = row["median_s"] / torch_row["median_s"]
        if gemm_row:
            row["roofline_pct"] = 100.0 * gemm_row["median_s"] / row["median_s"]


def print_table(rows):
    header = (
        f"{'workload':8} {'system':9} {'thr':>3} {'s/epoch':>9} {'samples/s':>10} "
        f"{'ref s/ep':>8} {'fit tot s':>9} {'final loss':>11} {'RSS0 MB':>8} "
        f"{'peak MB':>8} {'fit +MB':>8} {'/torch':>7} {'%roof':>6} {'%pair':>6}  note"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        if r["status"] != "ok":
            print(
                f"{r['workload']:8} {r['system']:9} {r['threads']:>3} "
                f"{r['status']}: {r.get('note', '')}"
            )
            continue
        ref = REFERENCE.get(r["workload"], {}).get(r["system_name"])
        note = r.get("note", "")
        if r.get("loss_kind"):
            note = f"loss={r['loss_kind']}" + (f"; {note}" if note else "")
        print(
            f"{r['workload']:8} {r['system']:9} {r['threads']:>3} "
            f"{_fmt(r['median_s'], '9.4f')} {_fmt(r['samples_per_s'], '10.0f')} "
            f"{_fmt(ref, '8.4g')} {_fmt(r.get('fit_total_s'), '9.3f')} "
            f"{_fmt(r.get('final_loss'), '11.4f')} "
            f"{_fmt(r.get('rss_before_fit_mb'), '8.1f')} "
            f"{_fmt(r.get('peak_rss_mb'), '8.1f')} "
            f"{_fmt(r.get('fit_rss_increase_mb'), '8.1f')} "
            f"{_fmt(r.get('skvae_over_torch'), '7.2f')} "
            f"{_fmt(r.get('roofline_pct'), '6.1f')} "
            f"{_fmt(r.get('paired_roofline_pct'), '6.1f')}  {note}"
        )
    inference = [r for r in rows if r["status"] == "ok" and "transform_s" in r]
    if inference:
        print()
        print(
            f"{'workload':8} {'system':9} {'thr':>3} {'rows':>7} {'transform s':>11} "
            f"{'score_samples s':>15} {'sample(n) s':>11} {'peak MB':>8}"
        )
        for r in inference:
            print(
                f"{r['workload']:8} {r['system']:9} {r['threads']:>3} "
                f"{r['inference_rows']:>7} {r['transform_s']:11.4f} "
                f"{r['score_samples_s']:15.4f} {r['sample_s']:11.4f} "
                f"{r['inference_peak_rss_mb']:8.1f}"
            )


CSV_FIELDS = [
    "workload",
    "system",
    "system_name",
    "kind",
    "version",
    "dtype",
    "threads",
    "n_samples",
    "n_features",
    "batch_size",
    "epochs",
    "median_s",
    "min_s",
    "samples_per_s",
    "fit_total_s",
    "reference_s",
    "final_loss",
    "loss_kind",
    "rss_before_fit_mb",
    "peak_rss_before_fit_mb",
    "peak_rss_mb",
    "fit_rss_increase_mb",
    "skvae_over_torch",
    "roofline_pct",
    "paired_roofline_pct",
    "transform_s",
    "score_samples_s",
    "sample_s",
    "inference_rows",
    "inference_peak_rss_mb",
    "blas_kernel",
    "blas_threads",
    "torch_threads",
    "module_path",
    "load1_start",
    "epoch_times",
    "status",
    "note",
]


def write_csv(rows, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            r = dict(r)
            if "epoch_times" in r:
                r["epoch_times"] = " ".join(f"{t:.5f}" for t in r["epoch_times"])
            writer.writerow(r)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "systems: "
            + ", ".join(SYSTEMS)
            + "; append @N for N BLAS/torch threads (e.g. vae32@1).\n"
            "default epochs: "
            + ", ".join(f"{w} {c['epochs']}" for w, c in WORKLOADS.items())
        ),
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs for every workload"
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="comma-separated subset of %(default)s",
    )
    parser.add_argument(
        "--systems",
        default=None,
        help=f"comma-separated; default {DEFAULT_SYSTEMS} (with --quick: "
        + "; ".join(f"{w} {v}" for w, v in QUICK_PLAN.items())
        + ")",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="threads of a system without @N"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 2 epochs, fewer systems: a smoke test, not a measurement",
    )
    parser.add_argument(
        "--unset-openblas-env",
        action="store_true",
        help=f"remove {' and '.join(OPENBLAS_ENV)} from the children's environment",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="CSV file (default benchmarks/results/speed.csv, or speed_quick.csv "
        "with --quick so that a smoke test never overwrites a measurement)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per child process"
    )
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._child:
        child_main(json.loads(args._child))
        return

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.output is None:
        name = "speed_quick.csv" if args.quick else "speed.csv"
        args.output = HERE / "results" / name
    if args.systems is not None:
        plan = dict.fromkeys(workloads, args.systems)
    elif args.quick:
        plan = {w: QUICK_PLAN[w] for w in workloads}
    else:
        plan = dict.fromkeys(workloads, DEFAULT_SYSTEMS)
    plan = {w: parse_systems(text, args.threads) for w, text in plan.items()}

    print_header(args)
    t_start = time.perf_counter()
    rows = []
    for w in workloads:
        spec = dict(WORKLOADS[w])
        if args.quick:
            spec.update(QUICK[w])
        epochs = args.epochs if args.epochs is not None else spec["epochs"]
        print(
            f"\n[{w}] {spec['description']}, using {spec['n_samples']} rows; "
            f"encoder {'-'.join(map(str, (spec['n_features'], *spec['hidden'])))}"
            f" -> {spec['latent']}, batch {spec['batch_size']}, "
            f"{spec['likelihood']}, {epochs} epochs",
            flush=True,
        )
        for label, name, threads in plan[w]:
            sysdef = SYSTEMS[name]
            cfg = dict(
                workload=w,
                kind=sysdef["kind"],
                model=sysdef.get("model"),
                dtype=sysdef["dtype"],
                threads=threads,
                epochs=epochs,
                n_samples=spec["n_samples"],
                hidden=list(spec["hidden"]),
                latent=spec["latent"],
                batch_size=spec["batch_size"],
                likelihood=spec["likelihood"],
                inference=(w == "tabular" and sysdef["kind"] == "skvae"),
            )
            t0 = time.perf_counter()
            result = run_child(
                cfg, child_env(threads, args.unset_openblas_env), args.timeout
            )
            row = dict(
                workload=w,
                system=label,
                system_name=name,
                kind=sysdef["kind"],
                dtype=sysdef["dtype"],
                threads=threads,
                batch_size=spec["batch_size"],
                epochs=epochs,
                reference_s=REFERENCE.get(w, {}).get(name),
            )
            row.update(result)
            row["hidden"] = cfg["hidden"]
            if row["status"] == "ok":
                row["samples_per_s"] = row["n_samples"] / row["median_s"]
                row["fit_rss_increase_mb"] = (
                    row["peak_rss_mb"] - row["peak_rss_before_fit_mb"]
                )
                if row["kind"] == "torch":
                    where = f"torch, {row.get('torch_threads')} threads"
                else:
                    where = f"{row['blas_kernel']}, {row['blas_threads']} threads"
                msg = f"{row['median_s']:.4f} s/epoch  [{where}]"
            else:
                msg = f"{row['status']}: {row.get('note', '')}"
            print(
                f"  {label:9} {msg}  ({time.perf_counter() - t0:.1f} s wall)",
                flush=True,
            )
            rows.append(row)

    add_ratios(rows)
    print_table(rows)
    write_csv(rows, args.output)
    print(f"\nwrote {args.output}")
    print(
        f"load average at end: {os.getloadavg()}  "
        f"(total {time.perf_counter() - t_start:.1f} s)"
    )
    print(
        "columns: s/epoch = median of epochs 2..E (mlp: fit time / E); ref = the "
        "issue's figure; RSS0 = resident MB just before fit; peak = ru_maxrss "
        "after fit; fit +MB = rise of the peak during fit; /torch = skvae s/epoch "
        "over torch's; %roof = GEMM roofline time as % of skvae's; %pair = the same, "
        "from E more skvae epochs each followed by a roofline epoch in the skvae "
        "child (median over pairs 2..E)."
    )


if __name__ == "__main__":
    main()
