"""
========================================================
Compression: reconstruction error against ``latent_dim``
========================================================

How many numbers does it take to describe an 8x8 image of a digit? We
compress the scikit-learn digits into ``latent_dim`` numbers with an
:class:`~skvae.AutoencoderTransformer` and with
:class:`~sklearn.decomposition.PCA`, decompress them, and measure the error on
held-out images. PCA is the best *linear* compressor; the autoencoder's
non-linear encoder and decoder can do better with few dimensions.

Pixels are all on the same scale, so we turn off the autoencoder's internal
standardisation (``standardize=False``): then both models minimise the same
squared error in pixel units, as PCA does.
"""

# %%
# Data
# ----
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skvae import AutoencoderTransformer

# SKVAE_EXAMPLES_FAST=1 runs a shortened version (used by the test-suite).
FAST = os.environ.get("SKVAE_EXAMPLES_FAST", "") not in ("", "0")

X = load_digits().data / 16.0
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
latent_dims = [2, 4] if FAST else [1, 2, 4, 8, 16, 32]


def mse(model, X):
    """Mean squared reconstruction error per pixel."""
    return np.mean((X - model.inverse_transform(model.transform(X))) ** 2)


# %%
# Fit both models at each size
# ----------------------------
results = {"PCA": [], "AutoencoderTransformer": []}
fitted = {}
for d in latent_dims:
    pca = PCA(n_components=d).fit(X_train)
    ae = AutoencoderTransformer(
        hidden_layer_sizes=(128,),
        latent_dim=d,
        standardize=False,
        max_iter=5 if FAST else 150,
        batch_size=64,
        learning_rate_init=2e-3,
        random_state=0,
    ).fit(X_train)
    results["PCA"].append(mse(pca, X_test))
    results["AutoencoderTransformer"].append(mse(ae, X_test))
    fitted[d] = (pca, ae)
    print(
        f"latent_dim={d:2d}: PCA {results['PCA'][-1]:.4f}, "
        f"autoencoder {results['AutoencoderTransformer'][-1]:.4f}"
    )

# %%
# Plot
# ----
show_d = 4
pca, ae = fitted[show_d]
images = X_test[:8]
rows = [
    ("original", images),
    (f"PCA, {show_d} numbers", pca.inverse_transform(pca.transform(images))),
    (f"autoencoder, {show_d} numbers", ae.inverse_transform(ae.transform(images))),
]

fig = plt.figure(figsize=(13, 3.7), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[1, 1.25])

ax = left.subplots()
for name, errors in results.items():
    ax.plot(latent_dims, errors, "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_xticks(latent_dims, [str(d) for d in latent_dims])
ax.set(
    title="Held-out reconstruction error",
    xlabel="latent_dim (numbers kept per image)",
    ylabel="mean squared error per pixel",
)
ax.legend()

axes = right.subplots(len(rows), len(images))
for r, (name, imgs) in enumerate(rows):
    for c in range(len(images)):
        ax = axes[r, c]
        ax.imshow(imgs[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center")
right.suptitle(f"Held-out digits and their reconstructions (latent_dim={show_d})")
fig.suptitle("AutoencoderTransformer against PCA on the digits")
plt.show()

# %%
# With a handful of numbers the autoencoder keeps the strokes that PCA blurs.
# As ``latent_dim`` grows the gap closes: PCA with 32 components already keeps
# most of the variance, and a network has to be trained much longer to beat
# it there.
