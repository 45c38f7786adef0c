"""
===========================================
Outlier detection with a VAE log-likelihood
===========================================

:class:`~skvae.VAEAnomalyDetector` scores each row by the model's estimate of
its log-likelihood :math:`\\log p(x)`: rows the model finds improbable are
outliers. As with scikit-learn's outlier detectors, ``score_samples`` is higher
for more normal rows, ``decision_function`` is ``score_samples - offset_``
(negative for outliers) and ``predict`` returns ``-1`` for outliers and ``+1``
for inliers, with the threshold ``offset_`` set from ``contamination``.

The data ship with scikit-learn: 8x8 images of handwritten digits. The normal
class is the digits 0 to 4; into it we mix a few images of 5 to 9 (10%) as
outliers. Both the VAE and an :class:`~sklearn.ensemble.IsolationForest` are
fitted without labels on half of the rows and compared on the other half.
"""

# %%
# Data: digits 0-4, contaminated with a few 5-9
# ---------------------------------------------
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.metrics import RocCurveDisplay, roc_auc_score
from sklearn.model_selection import train_test_split

from skvae import VAEAnomalyDetector

# SKVAE_EXAMPLES_FAST=1 runs a shortened version (used by the test-suite).
FAST = os.environ.get("SKVAE_EXAMPLES_FAST", "") not in ("", "0")

digits = load_digits()
rng = np.random.default_rng(0)
normal = np.flatnonzero(digits.target <= 4)
others = np.flatnonzero(digits.target > 4)
outliers = rng.choice(others, size=len(normal) // 10, replace=False)
rows = np.concatenate([normal, outliers])
X = digits.data[rows] / 16.0  # pixels in [0, 1]
labels = digits.target[rows]
is_outlier = labels > 4
contamination = float(is_outlier.mean())

X_train, X_test, out_train, out_test, lab_train, lab_test = train_test_split(
    X, is_outlier, labels, test_size=0.5, stratify=is_outlier, random_state=0
)
print(f"{len(X_train)} training and {len(X_test)} test images")
print(f"{contamination:.1%} of them are outliers (digits 5-9)")

# %%
# Fit without labels
# ------------------
# Pixels lie in [0, 1], so we use the Bernoulli likelihood, as is usual for
# grey-level images.
vae = VAEAnomalyDetector(
    hidden_layer_sizes=(64,),
    latent_dim=4,
    likelihood="bernoulli",
    contamination=contamination,
    max_iter=10 if FAST else 200,
    learning_rate_init=3e-3,
    batch_size=32,
    random_state=0,
).fit(X_train)
iforest = IsolationForest(contamination=contamination, random_state=0).fit(X_train)

vae_scores = vae.score_samples(X_test)
if_scores = iforest.score_samples(X_test)
for name, s in [("VAEAnomalyDetector", vae_scores), ("IsolationForest", if_scores)]:
    # roc_auc_score wants "higher = more anomalous": flip the sign.
    print(f"{name:>18} ROC AUC: {roc_auc_score(out_test, -s):.3f}")

flagged = vae.predict(X_test) == -1
print(
    f"predict() flags {flagged.sum()} test images, "
    f"{np.sum(flagged & out_test)} of the {out_test.sum()} outliers among them"
)

# %%
# Score histogram, ROC curves and the least likely images
# -------------------------------------------------------
fig = plt.figure(figsize=(12, 7), layout="constrained")
top, bottom = fig.subfigures(2, 1, height_ratios=[1.8, 1])
axes = top.subplots(1, 2)

ax = axes[0]
# clip the far left tail so the bulk of the scores stays readable
bins = np.linspace(np.percentile(vae_scores, 1), vae_scores.max(), 40)
ax.hist(vae_scores[~out_test], bins=bins, alpha=0.6, label="digits 0-4 (normal)")
ax.hist(vae_scores[out_test], bins=bins, alpha=0.6, label="digits 5-9 (outliers)")
ax.axvline(vae.offset_, color="k", ls="--", label="offset_ (threshold)")
ax.set(
    title="VAEAnomalyDetector.score_samples, test images",
    xlabel="log-likelihood estimate (nats/image); higher = more normal",
    ylabel="number of images",
)
ax.legend(loc="upper left")

ax = axes[1]
RocCurveDisplay.from_predictions(
    out_test, -vae_scores, name="VAEAnomalyDetector", ax=ax
)
RocCurveDisplay.from_predictions(
    out_test, -if_scores, name="IsolationForest", ax=ax, plot_chance_level=True
)
ax.set(
    title="ROC curve on the test images",
    xlabel="false positive rate (normal images flagged)",
    ylabel="true positive rate (outliers flagged)",
)

n_show = 10
lowest = np.argsort(vae_scores)[:n_show]
img_axes = bottom.subplots(1, n_show)
for ax, i in zip(img_axes, lowest):
    ax.imshow(X_test[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    color = "C1" if out_test[i] else "C0"
    ax.set_title(f"digit {lab_test[i]}\n{vae_scores[i]:.0f} nats", color=color)
    ax.set_xticks([])
    ax.set_yticks([])
bottom.suptitle(
    "The 10 test images with the lowest score_samples "
    "(orange: outlier digit, blue: normal digit)"
)
plt.show()

# %%
# Images left of the dashed line are the ones ``predict`` calls outliers. The
# threshold comes from the training scores: with ``contamination=0.1``,
# ``offset_`` is their 10th percentile. Leave ``contamination="auto"`` when
# you have no estimate of the outlier share; see the
# :ref:`user guide <anomaly_detection>` for how ``offset_`` is then chosen.
#
# Normal images among the least likely ones are usually badly written digits:
# a score is a statement about the image, not about its label.
