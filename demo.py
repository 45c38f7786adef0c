"""skvae in one minute: the four estimators on data that ships with scikit-learn.

Run it with ``python demo.py`` (it needs the ``examples`` extra for the
figure). It prints a short report and saves ``skvae_demo.png``:

1. ``AutoencoderTransformer`` compresses 64 pixels to 8 numbers; its
   reconstruction error is compared with PCA's.
2. ``VAETransformer`` with a 2-D latent space: the map of the digits, samples
   from the prior, and the held-out log-likelihood next to FactorAnalysis.
3. ``VAEAnomalyDetector`` trained on digits 0-4 with a few 5-9s mixed in
   finds the odd ones out; AUROC next to IsolationForest.
4. ``VAEImputer`` with its defaults fills the half of the cells of the breast
   cancer table hidden at random (the published MIWAE protocol); MSE next to
   scikit-learn's imputers.
"""

import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import scale

from skvae import (
    AutoencoderTransformer,
    VAEAnomalyDetector,
    VAEImputer,
    VAETransformer,
)

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def main(figure="skvae_demo.png"):
    digits = load_digits()
    # dequantised pixels: uniform noise within each of the 17 grey levels makes
    # the data continuous, so log-likelihoods are comparable between models
    rng = np.random.default_rng(0)
    X = (digits.data + rng.uniform(size=digits.data.shape)) / 17.0
    y = digits.target
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0
    )
    report = ["skvae demo on load_digits (1797 images, 64 pixels)", ""]

    # 1. compression ---------------------------------------------------------
    t0 = time.perf_counter()
    ae = AutoencoderTransformer(
        hidden_layer_sizes=(128,), latent_dim=8, max_iter=100, random_state=0
    ).fit(X_train)
    ae_secs = time.perf_counter() - t0
    ae_err = np.mean((X_test - ae.inverse_transform(ae.transform(X_test))) ** 2)
    pca = PCA(n_components=8).fit(X_train)
    pca_err = np.mean((X_test - pca.inverse_transform(pca.transform(X_test))) ** 2)
    report.append(
        f"AutoencoderTransformer, 64 -> 8 -> 64: held-out MSE {ae_err:.4f} "
        f"(PCA with 8 components: {pca_err:.4f}), fit {ae_secs:.1f} s"
    )

    # 2. density model with a 2-D latent map ----------------------------------
    t0 = time.perf_counter()
    vae = VAETransformer(
        hidden_layer_sizes=(256, 128),
        latent_dim=2,
        max_iter=100,
        n_importance_samples=100,
        random_state=0,
    ).fit(X_train)
    vae_secs = time.perf_counter() - t0
    fa = FactorAnalysis(n_components=2).fit(X_train)
    report.append(
        f"VAETransformer, 2-D latent: held-out log-likelihood "
        f"{vae.score(X_test):.1f} nats/row (FactorAnalysis with 2 factors: "
        f"{fa.score(X_test):.1f}), fit {vae_secs:.1f} s"
    )

    # 3. anomaly detection ------------------------------------------------------
    normal = np.flatnonzero(y_train < 5)
    odd = rng.choice(np.flatnonzero(y_train >= 5), size=30, replace=False)
    X_mix = X_train[np.r_[normal, odd]]
    test_labels = (y_test >= 5).astype(int)
    t0 = time.perf_counter()
    # pixels lie in [0, 1]: the Bernoulli likelihood suits them (the default
    # Gaussian one with robust scaling is made for tabular features)
    det = VAEAnomalyDetector(
        hidden_layer_sizes=(128,),
        latent_dim=4,
        likelihood="bernoulli",
        max_iter=100,
        random_state=0,
    ).fit(X_mix)
    det_secs = time.perf_counter() - t0
    vae_auc = roc_auc_score(test_labels, -det.score_samples(X_test))
    iso = IsolationForest(random_state=0).fit(X_mix)
    iso_auc = roc_auc_score(test_labels, -iso.score_samples(X_test))
    report.append(
        f"VAEAnomalyDetector, trained on digits 0-4 with 30 others mixed in: "
        f"AUROC {vae_auc:.3f} for 5-9 on held-out rows (IsolationForest: "
        f"{iso_auc:.3f}), fit {det_secs:.1f} s; it flags "
        f"{np.mean(det.predict(X_test) == -1):.0%} of the held-out rows"
    )

    # 4. imputation -------------------------------------------------------------
    # breast cancer, z-scored, half of the cells hidden at random (the mask of
    # the MIWAE authors' notebook, so the figures compare with theirs)
    T = scale(load_breast_cancer().data)
    n, p = T.shape
    legacy = np.random.RandomState(1234)  # noqa: NPY002 (the notebook's seeding)
    hidden = np.zeros(n * p, dtype=bool)
    hidden[legacy.choice(n * p, n * p // 2, replace=False)] = True
    hidden = hidden.reshape(n, p)
    T_holes = np.where(hidden, np.nan, T)
    t0 = time.perf_counter()
    filled = {"VAEImputer": VAEImputer(random_state=0).fit_transform(T_holes)}
    imp_secs = time.perf_counter() - t0
    for name, other in (
        ("IterativeImputer", IterativeImputer(max_iter=20, random_state=0)),
        ("KNNImputer", KNNImputer()),
        ("column mean", SimpleImputer()),
    ):
        filled[name] = other.fit_transform(T_holes)
    mse = {name: np.mean((F[hidden] - T[hidden]) ** 2) for name, F in filled.items()}
    report.append(
        f"VAEImputer, breast cancer with 50 % of the cells missing: MSE "
        f"{mse['VAEImputer']:.3f} on the hidden cells ("
        + ", ".join(f"{k}: {v:.3f}" for k, v in mse.items() if k != "VAEImputer")
        + f"), fit + transform {imp_secs:.1f} s"
    )
    print("\n".join(report))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "\n(install the examples extra for the figure: pip install '.[examples]')"
        )
        return

    fig, axes = plt.subplots(2, 4, figsize=(18, 8.5), layout="constrained")
    ax = axes[0, 0]
    ax.plot(ae.loss_curve_, label="autoencoder (MSE)")
    ax.set(
        xlabel="epoch",
        ylabel="training loss",
        yscale="log",
        title="Autoencoder training loss",
    )
    ax.legend()

    ax = axes[0, 1]
    recons = ae.inverse_transform(ae.transform(X_test[:6]))
    ax.imshow(_tile(np.r_[X_test[:6], recons], n_cols=6), cmap="gray_r", vmin=0, vmax=1)
    ax.set(title="Held-out digits (top), AE reconstructions (bottom)")
    ax.axis("off")

    ax = axes[0, 2]
    Z = vae.transform(X_test)
    points = ax.scatter(Z[:, 0], Z[:, 1], c=y_test, cmap="tab10", s=8)
    fig.colorbar(points, ax=ax, label="digit")
    ax.set(xlabel="z1", ylabel="z2", title="VAE latent map (posterior means)")

    ax = axes[1, 0]
    ax.plot(vae.reconstruction_curve_, label="reconstruction")
    ax.plot(vae.kl_curve_, label="KL")
    ax.set(xlabel="epoch", ylabel="nats per row", title="VAE loss parts")
    ax.legend()

    ax = axes[1, 1]
    samples = vae.sample(18, random_state=0)
    ax.imshow(_tile(samples, n_cols=6), cmap="gray_r", vmin=0, vmax=1)
    ax.set(title="VAE samples from the prior N(0, I)")
    ax.axis("off")

    ax = axes[1, 2]
    scores = det.score_samples(X_test)
    # a few rows score far below the rest; show the bulk
    bins = np.linspace(np.percentile(scores, 2), scores.max(), 40)
    ax.hist(scores[test_labels == 0], bins=bins, alpha=0.6, label="digits 0-4")
    ax.hist(scores[test_labels == 1], bins=bins, alpha=0.6, label="digits 5-9")
    ax.axvline(det.offset_, color="k", ls="--", label="offset_")
    ax.set(
        xlabel="score_samples (log-likelihood, nats)",
        ylabel="held-out rows",
        title="Anomaly scores",
    )
    ax.legend()

    ax = axes[0, 3]
    for name, color in (("IterativeImputer", "C1"), ("VAEImputer", "C0")):
        ax.scatter(T[hidden], filled[name][hidden], s=2, alpha=0.3, c=color, label=name)
    ax.plot([-3, 6], [-3, 6], color="k", lw=0.8)
    ax.set(
        xlim=(-3, 6),
        ylim=(-3, 6),
        xlabel="true value (z units)",
        ylabel="imputed value",
        title="Breast cancer, 50 % of cells missing",
    )
    ax.legend(markerscale=5)

    ax = axes[1, 3]
    names = list(mse)
    ax.barh(names, [mse[k] for k in names], color=["C0", "C1", "C2", "C7"])
    ax.invert_yaxis()
    ax.set(xlabel="MSE on the hidden cells (z units)", title="Imputation error")
    fig.savefig(figure, dpi=90)
    print(f"\nfigure saved to {figure}")


def _tile(images, n_cols):
    """8x8 images in a grid with one-pixel white gaps."""
    n_rows = -(-len(images) // n_cols)
    grid = np.zeros((n_rows * 9 - 1, n_cols * 9 - 1))
    for i, img in enumerate(images):
        r, c = divmod(i, n_cols)
        grid[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = img.reshape(8, 8)
    return grid


if __name__ == "__main__":
    main(*sys.argv[1:2])
