"""Per-column centring and scaling statistics (the ``standardize`` rules).

Pure functions of the training array: they return the centre and the scale of
every column, in float64, and never change ``X``. The statistics are computed
over blocks of rows (moments) or of columns (quantiles) of at most
:data:`_STATS_BLOCK` values, so the memory they take does not grow with the
size of the data.

The rules (the values of ``standardize``):

``"standard"`` (``standardize=True``)
    Mean and standard deviation.
``"robust"``
    Median and the normal-consistent interquartile range ``IQR / 1.349``,
    kept above :data:`ROBUST_MIN_STD_FRACTION` standard deviations; a column
    with a point mass at its median (a quarter of the rows or more share one
    value, as in zero-inflated columns) is scaled by its standard deviation
    (:data:`ROBUST_POINT_MASS`).
``"quantile"`` (an ablation of the anomaly benchmark, not a public option)
    Median and the normal-consistent width of a wider central range, from the
    :data:`QUANTILE_RANGE` percentiles, kept above
    :data:`QUANTILE_MIN_STD_FRACTION` standard deviations.

Whatever the rule, a scale is never below :data:`MIN_RANGE_FRACTION` of the
column's range (max - min), so a column that is nearly constant except for a
few rows is not blown up into huge values, and a constant column is left
unscaled (scale 1), as in :class:`~sklearn.preprocessing.StandardScaler`.
"""

import numpy as np
from scipy.special import ndtri

#: Values per block of the statistics (2 MB in float64).
_STATS_BLOCK = 1 << 18

#: "robust" keeps each column's scale at least this share of its standard
#: deviation, so that zero-inflated columns (IQR 0) are not divided by ~0.
ROBUST_MIN_STD_FRACTION = 0.35

#: "robust" on a column with a point mass at its median, one value held by at
#: least a quarter of the rows (its 37.5th and 62.5th percentiles are equal:
#: zero-inflated, binary or count columns): True scales it by its standard
#: deviation, whose meaning does not depend on where the mass sits; False
#: applies the floored IQR rule to it too (before issue 11: on zero-inflated
#: columns the scale was then 0.35 standard deviations).
ROBUST_POINT_MASS = True

#: "robust" when a column's quantile range collapses below the floor (a point
#: mass holds most rows, as in zero-inflated columns): False keeps the floor
#: (the scale is ROBUST_MIN_STD_FRACTION standard deviations); True uses the
#: standard deviation for that column instead.
ROBUST_SWITCH = False

#: "quantile": the central range whose width sets the scale, in percent.
QUANTILE_RANGE = (5.0, 95.0)

#: "quantile" keeps each column's scale at least this share of its standard
#: deviation.
QUANTILE_MIN_STD_FRACTION = 0.5

#: Every rule keeps a column's scale at least this share of its range.
MIN_RANGE_FRACTION = 0.0

METHODS = ("standard", "robust", "quantile")


def column_moments(X):
    """Largest magnitude, mean and standard deviation of each column.

    The moments are computed on ``X / peak`` (values near the float limits
    would overflow otherwise), in float64, over blocks of rows: the memory
    they take does not grow with the number of rows (on 20000 x 784 float32
    data a whole-array float64 computation added about 190 MB to the peak).
    """
    n, d = X.shape
    rows = max(1, _STATS_BLOCK // max(1, d))
    blocks = [X[i : i + rows] for i in range(0, n, rows)]
    peak = np.zeros(d)
    for block in blocks:
        np.maximum(peak, np.max(np.abs(block), axis=0), out=peak)
    peak[peak == 0] = 1.0
    total = np.zeros(d)
    for block in blocks:
        total += np.sum(block / peak, axis=0, dtype=np.float64)
    mean = total / n
    # a second pass over the deviations: exact, unlike sum(x^2) - n mean^2
    sq = np.zeros(d)
    for block in blocks:
        dev = block / peak - mean
        sq += np.einsum("ij,ij->j", dev, dev)
    return peak, mean * peak, np.sqrt(sq / n) * peak


def column_percentiles(X, peak, q):
    """Percentiles ``q`` of each column of ``X / peak``, float64, by column blocks.

    Returns an array of shape ``(len(q), n_features)``.
    """
    n, d = X.shape
    cols = max(1, _STATS_BLOCK // max(1, n))
    out = np.empty((len(q), d))
    for j in range(0, d, cols):
        block = X[:, j : j + cols] / peak[j : j + cols]
        out[:, j : j + cols] = np.percentile(block, q, axis=0)
    return out


def fit_column_scaling(X, method="standard"):
    """Centre and scale of each column of ``X`` under the rule ``method``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite training data (float32 or float64).
    method : {"standard", "robust", "quantile"}, default="standard"
        The rule; see the module docstring.

    Returns
    -------
    center : ndarray of shape (n_features,), float64
    scale : ndarray of shape (n_features,), float64
        Positive and finite: ``(X - center) / scale`` are the scaled columns.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown scaling method {method!r}; use one of {METHODS}.")
    peak, center, std = column_moments(X)
    scale = std
    if method != "standard":
        # median and a normal-consistent quantile range: outliers in the
        # training rows do not stretch the scale of the rest. The scale is
        # kept above a share of the standard deviation, so that sparse
        # columns (quantile range near 0) are not divided by ~0
        if method == "robust":
            lo, hi, floor = 25.0, 75.0, ROBUST_MIN_STD_FRACTION
        else:
            (lo, hi), floor = QUANTILE_RANGE, QUANTILE_MIN_STD_FRACTION
        q_lo, q_38, med, q_62, q_hi = column_percentiles(
            X, peak, [lo, 37.5, 50.0, 62.5, hi]
        )
        width = 1.349 if method == "robust" else ndtri(hi / 100) - ndtri(lo / 100)
        center = med * peak
        spread = (q_hi - q_lo) / width * peak
        if ROBUST_SWITCH:
            scale = np.where(spread < floor * std, std, spread)
        else:
            scale = np.maximum(spread, floor * std)
        if ROBUST_POINT_MASS:
            scale = np.where(q_38 == q_62, std, scale)
    if MIN_RANGE_FRACTION > 0:
        lo_hi = column_percentiles(X, peak, [0.0, 100.0])
        scale = np.maximum(scale, MIN_RANGE_FRACTION * (lo_hi[1] - lo_hi[0]) * peak)
    # constant (or nearly) columns: leave them unscaled, as StandardScaler
    # does, instead of dividing by ~0
    tiny = scale < 10 * np.finfo(X.dtype).eps * np.maximum(np.abs(center), 1.0)
    scale[tiny] = 1.0
    return center, scale
