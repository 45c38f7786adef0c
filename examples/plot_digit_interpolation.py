"""
============================================
Interpolating between digits in latent space
============================================

Blend two images pixel by pixel and you get a double exposure: one digit
fading out while the other fades in. Blend their *codes* and decode, and every
step in between is a plausible digit. This example fits a
:class:`~skvae.VAETransformer` to the scikit-learn digits, scaled to [0, 1]
and modelled with a Bernoulli likelihood (``likelihood="bernoulli"``, the usual
choice for grey-level images), and compares the two kinds of interpolation.
"""

# %%
# Fit a VAE on the digits
# -----------------------
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skvae import VAETransformer

# SKVAE_EXAMPLES_FAST=1 runs a shortened version (used by the test-suite).
FAST = os.environ.get("SKVAE_EXAMPLES_FAST", "") not in ("", "0")

digits = load_digits()
X = digits.data / 16.0
y = digits.target

# With grey levels, a Bernoulli decoder can explain a lot by predicting grey
# pixels; ``beta=0.5`` weakens the pull of the prior so that the codes carry
# more detail and the decoded images are sharper.
vae = VAETransformer(
    hidden_layer_sizes=(128,),
    latent_dim=8,
    likelihood="bernoulli",
    beta=0.5,
    max_iter=5 if FAST else 200,
    n_iter_no_change=30,
    batch_size=64,
    learning_rate_init=2e-3,
    random_state=0,
).fit(X)
print(f"{vae.n_iter_} epochs, final training loss {vae.loss_curve_[-1]:.1f} nats")
print(f"latent dimensions in use: {len(vae.active_units_)} of {vae.latent_dim}")

# %%
# Interpolate codes and pixels
# ----------------------------
# ``transform`` gives the posterior mean of each image's code; ``inverse_transform``
# gives the decoder's mean, here the pixel probabilities.
pairs = [(0, 6), (1, 7), (3, 8), (4, 9)]
n_steps = 9
weights = np.linspace(0.0, 1.0, n_steps)[:, None]

fig, axes = plt.subplots(
    2 * len(pairs), n_steps, figsize=(10, 9.5), layout="constrained"
)
for p, (a, b) in enumerate(pairs):
    xa = X[np.flatnonzero(y == a)[0]]
    xb = X[np.flatnonzero(y == b)[0]]
    za, zb = vae.transform(np.vstack([xa, xb]))
    latent_path = vae.inverse_transform((1 - weights) * za + weights * zb)
    pixel_path = (1 - weights) * xa + weights * xb
    for r, (path, label) in enumerate(
        [(latent_path, "latent"), (pixel_path, "pixels")]
    ):
        row = 2 * p + r
        for c in range(n_steps):
            ax = axes[row, c]
            ax.imshow(path[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"w={weights[c, 0]:.2f}", fontsize=9)
        axes[row, 0].set_ylabel(
            f"{a}->{b}\n{label}", rotation=0, ha="right", va="center", fontsize=9
        )
fig.suptitle(
    "Decoded latent interpolation (z = (1-w) z_a + w z_b) "
    "against pixel blending ((1-w) x_a + w x_b)"
)
plt.show()

# %%
# The latent rows morph one digit into the other through shapes that look
# like digits; the pixel rows overlay two faded strokes. The end points of the
# latent rows are reconstructions, slightly smoother than the originals.
