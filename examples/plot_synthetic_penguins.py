"""
=========================================
Synthetic and conditional penguins
=========================================

A :class:`~skvae.VAETransformer` fitted on a pandas DataFrame with categorical
columns generates whole rows: numeric measurements and category labels, in
the DataFrame's columns and dtypes. With ``conditions`` it generates rows
that carry given values, the other columns drawn from the model given them,
for example only Chinstrap penguins. There is no rejection loop: the
conditioned cells are treated as observed and the others as missing, the code
``z`` is drawn by importance resampling over the encoder's posterior of that
partial row, and the missing cells are drawn from the decoder. A rare value
costs the same as a common one, and every row carries the condition.

The data are the Palmer penguins (``pip install palmerpenguins``), rows with
a missing value left out.
"""

# %%
# Data and model
# --------------
import os

import matplotlib.pyplot as plt
import numpy as np

from skvae import VAETransformer

# SKVAE_EXAMPLES_FAST=1 runs a shortened version (used by the test-suite).
FAST = os.environ.get("SKVAE_EXAMPLES_FAST", "") not in ("", "0")

try:
    from palmerpenguins import load_penguins

    df = load_penguins().dropna().drop(columns=["year"]).reset_index(drop=True)
except ImportError:  # a stand-in with the same columns
    import pandas as pd

    rng = np.random.default_rng(0)
    species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], 333, p=[0.44, 0.2, 0.36])
    big = species == "Gentoo"
    df = pd.DataFrame(
        {
            "species": species,
            "island": np.where(big, "Biscoe", "Dream"),
            "bill_length_mm": np.where(species == "Adelie", 39.0, 48.0)
            + rng.normal(0, 2.5, 333),
            "bill_depth_mm": np.where(big, 15.0, 18.3) + rng.normal(0, 1, 333),
            "flipper_length_mm": np.where(big, 217.0, 192.0) + rng.normal(0, 6, 333),
            "body_mass_g": np.where(big, 5076.0, 3720.0) + rng.normal(0, 450, 333),
            "sex": rng.choice(["female", "male"], 333),
        }
    )
for c in ("species", "island", "sex"):
    df[c] = df[c].astype("category")
print(df.dtypes)
print(df["species"].value_counts())

vae = VAETransformer(
    hidden_layer_sizes=(64,),
    latent_dim=4,
    batch_size=32,
    max_iter=20 if FAST else 1000,
    n_iter_no_change=20,
    iwae_samples=5,
    # a sharper decoder; the aggregate posterior below fills the prior's holes
    beta=0.5,
    # the KL weight ramps up over 50 epochs (see the synthetic-data guide)
    kl_warmup=50,
    random_state=0,
).fit(df)
print(f"{vae.n_iter_} epochs, {vae.score(df):.2f} nats/row on the training rows")

# %%
# Synthetic penguins
# ------------------
# ``sample(noise=True)`` returns a DataFrame with the training columns and
# category levels. ``latent="aggregate"`` draws the codes from the aggregate
# posterior of the training rows (pick a training row, draw a code from its
# posterior) rather than from the prior ``N(0, I)``, which has regions no
# training row's code reaches: for synthetic data it follows the real rows
# more closely (see the user guide).
synth = vae.sample(len(df), random_state=0, noise=True, latent="aggregate")
print(synth.head())

numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
fig, axes = plt.subplots(2, 4, figsize=(14, 6), layout="constrained")
for ax, col in zip(axes[0], numeric):
    bins = np.linspace(df[col].min(), df[col].max(), 25)
    ax.hist(df[col], bins=bins, density=True, color="0.65", label="real")
    ax.hist(
        synth[col],
        bins=bins,
        density=True,
        histtype="step",
        lw=2,
        color="tab:blue",
        label="synthetic",
    )
    ax.set(title=col, xlabel="value", ylabel="density")
axes[0, 0].legend()
for ax, col in zip(axes[1], ["species", "island", "sex"]):
    levels = list(df[col].cat.categories)
    real = df[col].value_counts(normalize=True).reindex(levels)
    fake = synth[col].value_counts(normalize=True).reindex(levels, fill_value=0)
    x = np.arange(len(levels))
    ax.bar(x - 0.2, real, 0.4, color="0.65", label="real")
    ax.bar(x + 0.2, fake, 0.4, color="tab:blue", label="synthetic")
    ax.set_xticks(x, levels)
    ax.set(title=col, ylabel="share of rows")
# pairs: the species' clusters in two measurements
ax = axes[1, 3]
colors = dict(
    zip(df["species"].cat.categories, ["tab:orange", "tab:purple", "tab:green"])
)
for s, c in colors.items():
    r = df[df["species"] == s]
    f = synth[synth["species"] == s]
    ax.scatter(r["bill_length_mm"], r["bill_depth_mm"], s=10, color=c, alpha=0.35)
    ax.scatter(
        f["bill_length_mm"], f["bill_depth_mm"], s=12, color=c, marker="x", label=s
    )
ax.set(
    title="bill length vs depth\n(dots real, x synthetic)",
    xlabel="bill_length_mm",
    ylabel="bill_depth_mm",
)
ax.legend(fontsize=8)
fig.suptitle(
    'Real penguins and sample(noise=True, latent="aggregate"): marginals, levels '
    "and a pair"
)
plt.show()

# %%
# Conditional penguins: a rarer species
# -------------------------------------
# ``conditions`` maps a column to one value (or an array with one value per
# row). Every returned row is a Chinstrap; their islands, sexes and
# measurements follow what the model learned about Chinstraps. With
# ``latent="aggregate"`` the codes are drawn from the aggregate posterior and
# resampled by how likely each makes the condition.
chin = vae.sample(
    500,
    random_state=1,
    noise=True,
    conditions={"species": "Chinstrap"},
    latent="aggregate",
)
print(f"rows carrying the condition: {np.mean(chin['species'] == 'Chinstrap'):.0%}")
real_chin = df[df["species"] == "Chinstrap"]
print(
    "island of the conditional rows:",
    chin["island"].value_counts(normalize=True).round(2).to_dict(),
)
print(
    "island of the real Chinstraps:",
    real_chin["island"].value_counts(normalize=True).round(2).to_dict(),
)

# a numeric condition: heavy penguins (the other columns follow the mass)
heavy = vae.sample(
    500,
    random_state=2,
    noise=True,
    conditions={"body_mass_g": 5500.0},
    latent="aggregate",
)
print(
    "species of 5500 g penguins:",
    heavy["species"].value_counts(normalize=True).round(2).to_dict(),
)

fig, axes = plt.subplots(1, 3, figsize=(14, 4.3), layout="constrained")
ax = axes[0]
ax.scatter(
    df["flipper_length_mm"],
    df["body_mass_g"],
    s=8,
    color="0.75",
    label="all real penguins",
)
ax.scatter(
    chin["flipper_length_mm"],
    chin["body_mass_g"],
    s=10,
    marker="x",
    color="tab:purple",
    alpha=0.6,
    label="conditional: Chinstrap",
)
ax.scatter(
    real_chin["flipper_length_mm"],
    real_chin["body_mass_g"],
    s=14,
    color="k",
    label="real Chinstrap",
)
ax.set(
    title='sample(conditions={"species": "Chinstrap"},\nlatent="aggregate")',
    xlabel="flipper_length_mm",
    ylabel="body_mass_g",
)
ax.legend(fontsize=8)
ax = axes[1]
bins = np.linspace(df["bill_length_mm"].min(), df["bill_length_mm"].max(), 25)
ax.hist(
    real_chin["bill_length_mm"],
    bins=bins,
    density=True,
    color="0.65",
    label="real Chinstrap",
)
ax.hist(
    chin["bill_length_mm"],
    bins=bins,
    density=True,
    histtype="step",
    lw=2,
    color="tab:purple",
    label="conditional",
)
ax.hist(
    synth["bill_length_mm"],
    bins=bins,
    density=True,
    histtype="step",
    lw=1,
    ls="--",
    color="tab:blue",
    label="unconditional",
)
ax.set(
    title="bill length given species = Chinstrap",
    xlabel="bill_length_mm",
    ylabel="density",
)
ax.legend(fontsize=8)
ax = axes[2]
levels = list(df["species"].cat.categories)
share = heavy["species"].value_counts(normalize=True).reindex(levels, fill_value=0)
real_heavy = df[df["body_mass_g"].between(5250, 5750)]["species"]
real_share = real_heavy.value_counts(normalize=True).reindex(levels, fill_value=0)
x = np.arange(len(levels))
ax.bar(x - 0.2, real_share, 0.4, color="0.65", label="real, 5250-5750 g")
ax.bar(x + 0.2, share, 0.4, color="tab:green", label="conditional, 5500 g")
ax.set_xticks(x, levels)
ax.set(title='sample(conditions={"body_mass_g": 5500.0})', ylabel="share of rows")
ax.legend(fontsize=8)
fig.suptitle("Conditional sampling: every row carries the condition")
plt.show()

# %%
# The conditional rows sit on the real Chinstraps: on Dream, with long bills
# and medium mass, where the unconditional samples mix the three species.
# ``benchmarks/bench_synthetic.py`` scores this against held-out real rows
# (SDMetrics' quality scores) for a rare and a common value, next to a
# GaussianMixture that has to reject most of its draws to get there.
