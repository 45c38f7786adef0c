"""
=================================
Synthetic tabular data from a VAE
=================================

A fitted :class:`~skvae.VAETransformer` is a generative model:
:meth:`~skvae.VAETransformer.sample` draws codes from the prior
:math:`\\mathcal{N}(0, I)` and decodes them into new rows. Good synthetic data
match the real data in two ways: each column on its own (the marginals) and
the columns together (here, the correlation matrix).

The data are six of the "mean" measurements of the breast-cancer data set that
ships with scikit-learn. They are positive and skewed, so we model
``log1p(X)`` and map the samples back with ``expm1``.
"""

# %%
# Data
# ----
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer

from skvae import VAETransformer

# SKVAE_EXAMPLES_FAST=1 runs a shortened version (used by the test-suite).
FAST = os.environ.get("SKVAE_EXAMPLES_FAST", "") not in ("", "0")

data = load_breast_cancer()
columns = [
    "mean radius",
    "mean texture",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
]
idx = [list(data.feature_names).index(c) for c in columns]
X = data.data[:, idx]

# %%
# Fit on the log scale and sample
# -------------------------------
# ``sample(noise=True)`` draws a code from the prior, decodes it, and then
# draws the row from the decoder's distribution p(x | z), noise included: a
# sample of the model's full density, as ``GaussianMixture.sample`` gives.
# Without ``noise`` it returns the decoder's mean, which leaves out the
# variation the model attributes to noise, so the synthetic columns come out
# too narrow.
vae = VAETransformer(
    hidden_layer_sizes=(64, 32),
    latent_dim=4,
    max_iter=20 if FAST else 400,
    n_iter_no_change=30,
    learning_rate_init=3e-3,
    batch_size=32,
    random_state=0,
).fit(np.log1p(X))
X_syn = np.expm1(vae.sample(len(X), random_state=0, noise=True))
print(f"{vae.n_iter_} epochs; {len(X_syn)} synthetic rows")
print(f"latent dimensions in use: {len(vae.active_units_)} of {vae.latent_dim}")

corr_real = np.corrcoef(X, rowvar=False)
corr_syn = np.corrcoef(X_syn, rowvar=False)
print(f"largest correlation difference: {np.abs(corr_real - corr_syn).max():.2f}")

# %%
# Marginals: real against synthetic
# ---------------------------------
fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), layout="constrained")
for j, ax in enumerate(axes.flat):
    lo, hi = np.percentile(np.r_[X[:, j], X_syn[:, j]], [0.5, 99.5])
    bins = np.linspace(lo, hi, 30)
    ax.hist(X[:, j], bins=bins, density=True, alpha=0.55, label="real")
    ax.hist(
        X_syn[:, j], bins=bins, density=True, alpha=0.55, label="sample(noise=True)"
    )
    ax.set(title=columns[j], xlabel="value", ylabel="density")
axes[0, 0].legend()
fig.suptitle("Marginal distributions: real data and VAE samples")
plt.show()

# %%
# Correlations: real against synthetic
# ------------------------------------
short = [c.replace("mean ", "") for c in columns]
fig, axes = plt.subplots(1, 3, figsize=(14, 4.8), layout="constrained")
panels = [
    (corr_real, "Real data", "RdBu_r", 1.0, "Pearson correlation"),
    (
        corr_syn,
        "Synthetic (sample, noise=True)",
        "RdBu_r",
        1.0,
        "Pearson correlation",
    ),
    (
        corr_syn - corr_real,
        "Difference (synthetic - real)",
        "PuOr_r",
        0.5,
        "difference in correlation",
    ),
]
for ax, (mat, title, cmap, vmax, label) in zip(axes, panels):
    im = ax.imshow(mat, cmap=cmap, vmin=-vmax, vmax=vmax)
    for i in range(len(columns)):
        for j in range(len(columns)):
            color = "white" if abs(mat[i, j]) > 0.7 * vmax else "black"
            ax.text(
                j,
                i,
                f"{mat[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color=color,
            )
    ax.set_xticks(range(len(columns)), short, rotation=45, ha="right")
    ax.set_yticks(range(len(columns)), short)
    ax.set(title=title, xlabel="feature", ylabel="feature")
    fig.colorbar(im, ax=ax, shrink=0.8, label=label)
fig.suptitle("Correlation matrices")
plt.show()

# %%
# The synthetic rows follow the skewed marginals and reproduce the strong
# radius-area-compactness-concavity block, as well as the weak links of
# texture. Tails are where synthetic data usually fall short: the rarest,
# most extreme rows are under-represented.
#
# Compare with ``vae.sample(len(X), noise=False)``: the decoder means carry
# only what the latent code explains, so the columns the model leaves partly
# to noise (here texture) come out too narrow and too strongly correlated
# with the others.
