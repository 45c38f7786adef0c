"""
===================================================
A variational autoencoder on four Gaussian clusters
===================================================

A :class:`~skvae.VAETransformer` with a 2-D latent space, fitted to four
Gaussian clusters centred at :math:`(\\pm 2, \\pm 2)`. The figure walks through
everything the fitted model gives you:

* the training curves: the total loss (negative ELBO) and its two parts, the
  reconstruction term and the KL term;
* the encoder: ``transform`` returns the posterior means, which arrange the
  clusters inside the standard-normal prior;
* the decoder: ``inverse_transform`` of the codes (reconstructions),
  ``sample`` (decoded draws from the prior) and a decoded grid of latent
  points, which shows how the decoder folds the latent plane onto the data.
"""

# %%
# Data
# ----
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer

# SKVAE_EXAMPLES_FAST=1 runs a shortened version (used by the test-suite).
FAST = os.environ.get("SKVAE_EXAMPLES_FAST", "") not in ("", "0")

rng = np.random.default_rng(0)
centres = np.array([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])
n_per_cluster = 100 if FAST else 250
y = np.repeat(np.arange(4), n_per_cluster)
X = centres[y] + rng.normal(scale=0.5, size=(len(y), 2))

# %%
# Fit
# ---
# We train for all ``max_iter`` epochs (``n_iter_no_change=max_iter``): early
# on the loss sits on a plateau, with the decoder ignoring ``z`` (posterior
# collapse), and the default stopping rule would take that for convergence.
max_iter = 20 if FAST else 300
vae = VAETransformer(
    hidden_layer_sizes=(32, 32),
    latent_dim=2,
    activation="tanh",
    learning_rate_init=3e-3,
    batch_size=64,
    max_iter=max_iter,
    n_iter_no_change=max_iter,
    random_state=0,
)
with warnings.catch_warnings():
    # running all max_iter epochs is deliberate here
    warnings.simplefilter("ignore", ConvergenceWarning)
    vae.fit(X)
Z = vae.transform(X)
X_rec = vae.inverse_transform(Z)
X_new = vae.sample(len(X), random_state=1)

# A grid in latent space, decoded: lines of constant z1 and of constant z2.
grid = np.linspace(-2.5, 2.5, 11)
fine = np.linspace(-2.5, 2.5, 101)
lines_z1 = [
    vae.inverse_transform(np.column_stack([np.full_like(fine, g), fine])) for g in grid
]
lines_z2 = [
    vae.inverse_transform(np.column_stack([fine, np.full_like(fine, g)])) for g in grid
]

print(f"{vae.n_iter_} epochs, final negative ELBO {vae.loss_curve_[-1]:.3f} nats/row")
print(f"held-in log-likelihood (score): {vae.score(X):.3f} nats/row")

# %%
# Plot
# ----
colors = plt.cm.tab10(y)
fig, axes = plt.subplots(2, 3, figsize=(13, 8.5), layout="constrained")
epochs = np.arange(1, len(vae.loss_curve_) + 1)

ax = axes[0, 0]
ax.plot(epochs, vae.loss_curve_, label="total: reconstruction + beta * KL")
ax.plot(epochs, vae.reconstruction_curve_, label="reconstruction (-E log p(x|z))")
ax.plot(epochs, vae.kl_curve_, label="KL(q(z|x) || p(z))")
ax.set(title="Training curves", xlabel="epoch", ylabel="nats per row")
ax.legend(fontsize="small", loc="lower left")

ax = axes[0, 1]
ax.scatter(X[:, 0], X[:, 1], c=colors, s=8)
ax.set(title="Data (colour: cluster)", xlabel="$x_1$", ylabel="$x_2$")

ax = axes[0, 2]
ax.scatter(Z[:, 0], Z[:, 1], c=colors, s=8)
circle = plt.Circle((0, 0), 2.0, fill=False, ls="--", color="0.5")
ax.add_patch(circle)
ax.set(
    title="Encoded means, transform(X)\n(dashed: 2 sd of the prior)",
    xlabel="$z_1$",
    ylabel="$z_2$",
)
ax.set_aspect("equal")

ax = axes[1, 0]
ax.scatter(X[:, 0], X[:, 1], color="0.85", s=8)
ax.scatter(X_rec[:, 0], X_rec[:, 1], c=colors, s=8)
ax.set(
    title="Reconstructions, inverse_transform(Z)\n(grey: data)",
    xlabel="$x_1$",
    ylabel="$x_2$",
)

ax = axes[1, 1]
ax.scatter(X[:, 0], X[:, 1], color="0.85", s=8)
ax.scatter(X_new[:, 0], X_new[:, 1], color="C3", s=8)
ax.set(
    title="Samples from the prior, sample()\n(grey: data)",
    xlabel="$x_1$",
    ylabel="$x_2$",
)

ax = axes[1, 2]
ax.scatter(X[:, 0], X[:, 1], color="0.85", s=8)
for line in lines_z1:
    ax.plot(line[:, 0], line[:, 1], color="C0", lw=0.8)
for line in lines_z2:
    ax.plot(line[:, 0], line[:, 1], color="C1", lw=0.8)
ax.plot([], [], color="C0", label="constant $z_1$")
ax.plot([], [], color="C1", label="constant $z_2$")
ax.set(
    title="Decoded latent grid, z in [-2.5, 2.5]$^2$\n(grey: data)",
    xlabel="$x_1$",
    ylabel="$x_2$",
)
ax.legend(fontsize="small", loc="upper center", ncols=2)

data_lim = (X.min() - 0.5, X.max() + 1.0)
for ax in (axes[0, 1], axes[1, 0], axes[1, 1], axes[1, 2]):
    ax.set_xlim(data_lim)
    ax.set_ylim(data_lim)
    ax.set_aspect("equal")

fig.suptitle("VAETransformer(latent_dim=2) on four Gaussian clusters")
plt.show()

# %%
# Reading the curves
# ------------------
# For the first few dozen epochs the KL term is almost zero: the decoder
# ignores ``z`` and predicts the overall mean for every row, and the encoder
# copies the prior. This is *posterior collapse*, and the flat total loss
# looks like convergence. Then the encoder starts to carry information about
# which cluster a row is in: the KL term rises, the reconstruction term falls,
# and the total (their sum, as ``beta=1``) goes down. A larger ``beta`` makes
# collapse more likely; ``kl_warmup`` and ``free_bits`` help against it. See
# :ref:`sphx_glr_auto_examples_plot_gridsearch_beta_latent.py` for choosing
# ``beta``.
#
# The curves are in nats per row of ``X``, like ``-score``. The final total
# (the negative ELBO) stays above ``-score`` (compare the two numbers printed
# above): ``score`` uses the tighter importance-weighted estimate of the
# log-likelihood, not the ELBO.
#
# The decoded grid is where the VAE differs from a plain autoencoder: the
# whole prior maps somewhere near the data, so ``sample`` draws look like the
# data. Grid lines bunch up on the clusters and stretch across the gaps, which
# is where the few samples between the clusters come from.
