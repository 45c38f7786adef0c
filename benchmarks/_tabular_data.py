"""Tables and missingness masks for ``bench_tabular.py``.

Every loader returns :class:`Table` objects: the complete (true) table as a
pandas DataFrame (categorical columns as ``category`` dtype, numeric columns
as float64), the kind of each column (``"numeric"``, ``"categorical"`` or
``"ordinal"``; ordinal columns are ``category`` columns whose levels are
ordered codes), and a list of :class:`Mask` (boolean arrays, ``True`` = cell
hidden). Protocols and reference figures: ``../shared/data/README.md``.

* HI-VAE Wine and Adult (``hivae/``): ``data.csv`` (no header),
  ``data_types.csv`` (real / pos / count -> numeric, cat -> categorical,
  ordinal -> ordinal) and ``MissingPP_K.csv`` (1-based (row, column) cells
  hidden in mask K at PP %). Adult has cells that are really missing (NaN in
  ``data.csv``): they stay missing in the input and are left out of the error.
* penguins (``palmerpenguins.load_penguins()``, 333 complete rows), MCAR
  masks ``np.random.default_rng(seed).random(shape) < rate``.
* ``load_breast_cancer`` z-scored, 50 % of cells hidden with
  ``np.random.seed(1234); np.random.choice(n * p, n * p // 2, replace=False)``
  (MIWAE's notebook).
* ``load_wine`` ``scale``d, ``np.random.seed(42)``, each cell hidden with
  probability 0.5 (``np.random.rand(n, p) < 0.5``, as in Muzellec et al.).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.preprocessing import scale

REPO_ROOT = Path(__file__).resolve().parents[1]

WINE_COLUMNS = [
    "fixed_acidity",
    "volatile_acidity",
    "citric_acid",
    "residual_sugar",
    "chlorides",
    "free_sulfur_dioxide",
    "total_sulfur_dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
    "quality",
    "colour",
]
ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
]
HIVAE_KIND = {
    "real": "numeric",
    "pos": "numeric",
    "count": "numeric",
    "cat": "categorical",
    "ordinal": "ordinal",
}


@dataclass
class Mask:
    """One missingness pattern: ``hidden[i, j]`` is True for a hidden cell."""

    label: str
    rate: float
    hidden: np.ndarray


@dataclass
class Table:
    """A complete table, its column kinds and its masks.

    ``data`` may hold cells that are really missing (Adult); those are missing
    in every input and never scored.
    """

    name: str
    data: pd.DataFrame
    kinds: dict
    masks: list = field(default_factory=list)
    metric: str = "hivae"

    @property
    def numeric(self):
        return [c for c in self.data.columns if self.kinds[c] == "numeric"]

    @property
    def categorical(self):
        return [c for c in self.data.columns if self.kinds[c] != "numeric"]

    def masked(self, hidden):
        """The input table: ``data`` with the ``hidden`` cells set missing."""
        out = self.data.copy()
        for j, col in enumerate(out.columns):
            rows = hidden[:, j]
            if rows.any():
                out.loc[rows, col] = np.nan
        return out

    def head(self, n_rows):
        """The first ``n_rows`` rows, with the masks cut to them (``--quick``)."""
        masks = [Mask(m.label, m.rate, m.hidden[:n_rows]) for m in self.masks]
        data = self.data.iloc[:n_rows].reset_index(drop=True)
        return Table(self.name, data, self.kinds, masks, self.metric)


def data_dir():
    """``$SKVAE_DATA_DIR`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("SKVAE_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def _categorical(values):
    """Integer codes (float with NaN) as a ``category`` column of ints."""
    values = pd.Series(values)
    levels = np.sort(values.dropna().unique()).astype(int)
    ints = values.astype("Int64")
    return pd.Categorical(ints, categories=levels)


def _read_mask(path, shape):
    cells = np.loadtxt(path, delimiter=",", dtype=int, ndmin=2)
    hidden = np.zeros(shape, dtype=bool)
    hidden[cells[:, 0] - 1, cells[:, 1] - 1] = True
    return hidden


def load_hivae(name, rates=(20, 50), mask_ids=(1, 2, 3), root=None):
    """HI-VAE's ``Wine`` or ``Adult`` table with its masks."""
    folder = Path(root or data_dir()) / "hivae" / name
    raw = pd.read_csv(folder / "data.csv", header=None).to_numpy(dtype=float)
    types = pd.read_csv(folder / "data_types.csv")["type"].tolist()
    columns = WINE_COLUMNS if name == "Wine" else ADULT_COLUMNS
    if len(columns) != raw.shape[1]:
        columns = [f"x{j}" for j in range(raw.shape[1])]
    kinds, frame = {}, {}
    for j, (col, kind) in enumerate(zip(columns, types)):
        kinds[col] = HIVAE_KIND[kind]
        frame[col] = raw[:, j] if kinds[col] == "numeric" else _categorical(raw[:, j])
    data = pd.DataFrame(frame)
    masks = []
    for rate in rates:
        for k in mask_ids:
            path = folder / f"Missing{rate}_{k}.csv"
            if path.exists():
                hidden = _read_mask(path, raw.shape)
                masks.append(Mask(f"mask {k}", rate / 100, hidden))
    return Table(name.lower(), data, kinds, masks, "hivae")


def load_penguins_table(seeds=(0, 1, 2), rates=(0.2, 0.5)):
    """The 333 complete rows of palmerpenguins with MCAR masks per seed."""
    from palmerpenguins import load_penguins

    raw = load_penguins().dropna().reset_index(drop=True)
    kinds, frame = {}, {}
    for col in raw.columns:
        if pd.api.types.is_numeric_dtype(raw[col]):
            kinds[col] = "numeric"
            frame[col] = raw[col].astype("float64").to_numpy()
        else:
            kinds[col] = "categorical"
            frame[col] = pd.Categorical(raw[col].astype(str))
    data = pd.DataFrame(frame)
    masks = [
        Mask(f"seed {s}", rate, np.random.default_rng(s).random(data.shape) < rate)
        for rate in rates
        for s in seeds
    ]
    return Table("penguins", data, kinds, masks, "penguins")


def load_breast_cancer_table():
    """z-scored breast cancer, MIWAE's 50 % MCAR mask (seed 1234)."""
    X = load_breast_cancer().data
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    n, p = X.shape
    np.random.seed(1234)  # noqa: NPY002 (the published mask)
    flat = np.random.choice(n * p, n * p // 2, replace=False)  # noqa: NPY002
    hidden = np.zeros(n * p, dtype=bool)
    hidden[flat] = True
    data = pd.DataFrame(X, columns=[f"x{j}" for j in range(p)])
    kinds = dict.fromkeys(data.columns, "numeric")
    mask = Mask("seed 1234", 0.5, hidden.reshape(n, p))
    return Table("breast_cancer", data, kinds, [mask], "mse")


def load_wine_table():
    """``scale``d sklearn wine, each cell hidden with probability 0.5 (seed 42)."""
    X = scale(load_wine().data)
    np.random.seed(42)  # noqa: NPY002 (the published mask)
    hidden = np.random.rand(*X.shape) < 0.5  # noqa: NPY002
    data = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    kinds = dict.fromkeys(data.columns, "numeric")
    return Table("sk_wine", data, kinds, [Mask("seed 42", 0.5, hidden)], "mae_rmse")


def load_set(name, seeds=(0, 1, 2)):
    """A table by benchmark name."""
    if name == "wine":
        return load_hivae("Wine", mask_ids=(1, 2, 3))
    if name == "adult":
        return load_hivae("Adult", mask_ids=(1,))
    if name == "penguins":
        return load_penguins_table(seeds)
    if name == "breast_cancer":
        return load_breast_cancer_table()
    if name == "sk_wine":
        return load_wine_table()
    raise ValueError(f"unknown set {name!r}")


SETS = ("wine", "adult", "penguins", "breast_cancer", "sk_wine")
