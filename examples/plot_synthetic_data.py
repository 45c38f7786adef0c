"""
=================================
Synthetic tabular data from a VAE
=================================

A fitted :class:`~skvae.VAETransformer` is a generative model:
:meth:`~skvae.VAETransformer.sample` draws codes from the prior
:math:`\\mathcal{N}(0, I)` and decodes them into new rows. Good synthetic data
match the real data in two ways: each column on its own (the marginals) and
the columns together (here, the correlation matrix). They also stay inside
each column's support: no negative areas, no smeared zeros.

The data are six of the "mean" measurements of the breast-cancer data set that
ships with scikit-learn. They are positive and skewed, and ``mean concavity``
has exact zeros (13 of 569 rows). A Gaussian decoder on the raw values draws
negative values; per-column likelihoods that respect the support do not:
``"lognormal"`` for positive columns, ``"zero_lognormal"`` (a point mass at 0
mixed with a log-normal) for the column with zeros.
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
print(f"exact zeros per column: {dict(zip(columns, (X == 0).sum(0).tolist()))}")

# %%
# Two models, two decoders
# ------------------------
# The same network with a Gaussian decoder on every column, and with
# likelihoods chosen per column (a dict from column index to a name). The
# per-column likelihoods model their columns on their own scale (log x) and
# their scores are densities of the raw values, so the two models' held-out
# ``score`` can be compared directly.
#
# ``sample(noise=True)`` draws a code from the prior, decodes it, and then
# draws the row from the decoder's distribution p(x | z), noise included: a
# sample of the model's full density, as ``GaussianMixture.sample`` gives.
params = dict(
    hidden_layer_sizes=(64, 32),
    latent_dim=4,
    max_iter=20 if FAST else 400,
    n_iter_no_change=30,
    learning_rate_init=3e-3,
    batch_size=32,
    random_state=0,
)
support = {j: "lognormal" for j in range(5)}
support[5] = "zero_lognormal"
models = {
    "gaussian": VAETransformer(**params),
    "lognormal + zero_lognormal": VAETransformer(likelihood=support, **params),
}
rng = np.random.default_rng(0)
test = rng.random(len(X)) < 0.25
samples = {}
for name, vae in models.items():
    vae.fit(X[~test])
    samples[name] = vae.sample(len(X), random_state=0, noise=True)
    S = samples[name]
    print(
        f"{name:>28}: held-out {vae.score(X[test]):7.2f} nats/row, "
        f"negative values {np.mean(S < 0):6.1%}, exact zeros in concavity "
        f"{np.mean(S[:, 5] == 0):5.1%} (real {np.mean(X[:, 5] == 0):.1%})"
    )

# %%
# Marginals: real against synthetic
# ---------------------------------
# The Gaussian decoder spills below zero in the skewed columns (area,
# compactness, concavity); the per-column likelihoods keep to the support,
# follow the long right tails, and put the zeros of concavity back as zeros.
colors = {"gaussian": "tab:red", "lognormal + zero_lognormal": "tab:green"}
# the synthetic columns as outlines over the real histogram
step = dict(density=True, histtype="step", lw=1.8)
fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), layout="constrained")
for j, ax in enumerate(axes.flat):
    lo = min(np.percentile(S[:, j], 0.2) for S in samples.values())
    hi = np.percentile(X[:, j], 99.8)
    bins = np.linspace(min(lo, 0) if lo < 0.2 * hi else lo, hi, 40)
    ax.hist(X[:, j], bins=bins, density=True, color="0.6", label="real")
    for name, S in samples.items():
        ax.hist(S[:, j], bins=bins, color=colors[name], label=name, **step)
    ax.axvline(0, color="k", lw=0.8, ls=":")
    ax.set(title=columns[j], xlabel="value", ylabel="density")
axes[0, 0].legend(fontsize=8)
fig.suptitle("Marginals: real rows and sample(noise=True) of the two decoders")
plt.show()

# %%
# Correlations: real against synthetic
# ------------------------------------
short = [c.replace("mean ", "") for c in columns]
corr_real = np.corrcoef(X, rowvar=False)
fig, axes = plt.subplots(1, 3, figsize=(14, 4.8), layout="constrained")
panels = [(corr_real, "Real data")] + [
    (np.corrcoef(S, rowvar=False), f"Synthetic: {name}") for name, S in samples.items()
]
for ax, (mat, title) in zip(axes, panels):
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(len(columns)):
        for j in range(len(columns)):
            color = "white" if abs(mat[i, j]) > 0.7 else "black"
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
    diff = np.abs(mat - corr_real).max()
    ax.set(title=title if mat is corr_real else f"{title}\n(max |diff| {diff:.2f})")
fig.colorbar(im, ax=axes, shrink=0.8, label="Pearson correlation")
fig.suptitle("Correlation matrices")
plt.show()

# %%
# Both models reproduce the strong radius-area-compactness-concavity block
# and the weak links of texture. The difference is in the support: choose the
# likelihood of each column by what its values can be (see the user guide
# page on synthetic data): ``"lognormal"`` for positive amounts,
# ``"zero_lognormal"`` when exact zeros are common, ``"poisson"`` for counts,
# ``"logit_normal"`` for values in a known interval.

# %%
# The training columns' own marginals: ``marginals="training"``
# --------------------------------------------------------------
# When the synthetic rows must follow each real column as closely as
# resampling it would, whatever the likelihood, ``sample(...,
# marginals="training")`` maps each numeric column of the draws through the
# increasing function that turns the model's marginal of that column into the
# training column's (stored at ``fit`` as up to 1000 quantiles in
# ``feature_quantiles_``). Each column then has the training marginal (its
# zeros, its range, its skew), and the rows keep the model's ranks, so the
# dependence between the columns is still the model's. Here it is applied to
# the Gaussian decoder's draws, whose skewed columns spilled below zero.
gauss = models["gaussian"]
mapped = gauss.sample(len(X), random_state=0, noise=True, marginals="training")
own = samples["gaussian"]
change = np.abs(np.corrcoef(mapped, rowvar=False) - np.corrcoef(own, rowvar=False))
print(
    f"training marginals: negative values {np.mean(mapped < 0):.1%}, exact zeros "
    f"in concavity {np.mean(mapped[:, 5] == 0):.1%} (training rows "
    f"{np.mean(X[~test][:, 5] == 0):.1%}), largest change of a correlation "
    f"against the model's own draws {change.max():.2f}"
)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
for ax, j in zip(axes, [2, 4, 5]):
    bins = np.linspace(min(own[:, j].min(), 0), np.percentile(X[:, j], 99.8), 40)
    ax.hist(X[~test][:, j], bins=bins, density=True, color="0.6", label="real")
    for S, color, label in [
        (own, "tab:red", "model"),
        (mapped, "tab:blue", "training"),
    ]:
        label = f'gaussian, marginals="{label}"'
        ax.hist(S[:, j], bins=bins, color=color, label=label, **step)
    ax.axvline(0, color="k", lw=0.8, ls=":")
    ax.set(title=columns[j], xlabel="value", ylabel="density")
axes[0].legend(fontsize=8)
fig.suptitle('The Gaussian decoder\'s draws, as they are and with marginals="training"')
plt.show()

# %%
# The mapped draws have no negative values and take the exact zeros of
# concavity, because every value now comes from the training column's
# quantiles (their share is that of the training rows up to the sampling
# spread of 569 draws, about 0.6 points), while the correlations move by no
# more than the printed amount.
# What it does not change: the dependence between the columns comes from the
# model, so a poor model still gives poor pairs, and
# :meth:`~skvae.VAETransformer.score_samples` scores the model, not the mapped
# rows. It is a tool for synthetic data; choose the likelihoods for the model
# itself (on Adult, in the user guide, it brought every count and
# zero-inflated column to the level of resampling the real column).
