"""Statistics over all the blocks of a data set, as mergeable summaries.

Every statistic here is a *summary* of one block (small: a few values per
column), and a *merge* of two summaries into the summary of their union, so
that dask computes it in one pass over the blocks and a tree of merges. None
of this uses skvae's private core.

- Column moments over the observed (not NaN) cells: their count, largest
  magnitude, mean and sum of squared deviations, merged with the pairwise
  update of Chan, Golub and LeVeque (1979). As in the in-memory estimator
  the moments are taken on values divided by the column's largest magnitude
  (values near the float limits would overflow otherwise), so they agree
  with it up to rounding.
- Column quantiles (``standardize="robust"``): an approximation. A block's
  summary is its quantiles on a grid of :data:`QUANTILE_GRID` points; two
  summaries merge into the quantiles, on the same grid, of the mixture of
  their piecewise-linear distribution functions, weighted by their counts.
  The error of a quartile is of the order of one grid step in rank
  (1 / 1024 of the rows) per level of merging.
- Exact quantiles of a one-dimensional array spread over blocks (the anomaly
  detector's ``offset_``): approximate quantiles bracket each order
  statistic, a second pass counts the values below each bracket and
  returns those inside, and the order statistics are read from them. The
  result equals ``np.percentile`` on the whole array (its "linear" method).
"""

import numpy as np

#: Points of the quantile summaries (1025: steps of 1/1024 in rank).
QUANTILE_GRID = 1025

_GRID = np.linspace(0.0, 1.0, QUANTILE_GRID)


# -- column moments ---------------------------------------------------------


def block_moments(X):
    """Moments of the columns of one block, in float64, over observed cells.

    Returns ``(n, peak, mean, m2)``: per column the count of observed (not
    NaN) cells, the largest magnitude (0 for a column without observed
    cells), and ``mean`` and ``m2`` (sum of squared deviations) of
    ``X / peak`` over the observed cells.
    """
    n_rows, d = X.shape
    if n_rows == 0:
        return np.zeros(d), np.zeros(d), np.zeros(d), np.zeros(d)
    observed = ~np.isnan(X)
    if observed.all():
        peak = np.max(np.abs(X), axis=0).astype(np.float64)
        Xs = X / _safe(peak)
        n = np.full(d, float(n_rows))
        mean = np.sum(Xs, axis=0, dtype=np.float64) / n_rows
        dev = Xs - mean
        return n, peak, mean, np.einsum("ij,ij->j", dev, dev)
    n = observed.sum(axis=0).astype(np.float64)
    peak = np.max(np.where(observed, np.abs(X), 0), axis=0).astype(np.float64)
    Xs = np.where(observed, X / _safe(peak), 0)
    mean = np.sum(Xs, axis=0, dtype=np.float64) / np.maximum(n, 1)
    dev = np.where(observed, Xs - mean, 0)
    return n, peak, mean, np.einsum("ij,ij->j", dev, dev)


def _safe(peak):
    return np.where(peak > 0, peak, 1.0)


def merge_moments(a, b):
    """Moments of the union of two blocks (Chan et al.'s pairwise update)."""
    na, pa, ma, qa = a
    nb, pb, mb, qb = b
    peak = np.maximum(pa, pb)
    ra, rb = pa / _safe(peak), pb / _safe(peak)
    ma, mb = ma * ra, mb * rb
    qa, qb = qa * ra * ra, qb * rb * rb
    n = na + nb
    safe = np.maximum(n, 1)
    delta = mb - ma
    mean = ma + delta * (nb / safe)
    m2 = qa + qb + delta * delta * (na * nb / safe)
    # a side without observed cells leaves the other's moments as they are
    mean = np.where(na == 0, mb, np.where(nb == 0, ma, mean))
    m2 = np.where(na == 0, qb, np.where(nb == 0, qa, m2))
    return n, peak, mean, m2


def finish_moments(moments):
    """``(n, mean, std)`` in the units of the data, from merged moments
    (mean and std 0 for a column without observed cells)."""
    n, peak, mean, m2 = moments
    peak = _safe(peak)
    return n, mean * peak, np.sqrt(m2 / np.maximum(n, 1)) * peak


# -- approximate column quantiles --------------------------------------------


def block_quantiles(X):
    """Quantile summary of each column of one block: ``(n, values)``.

    ``n`` counts the observed cells of each column and ``values`` has shape
    ``(QUANTILE_GRID, n_features)``, in float64 (NaN for a column without
    observed cells).
    """
    n_rows, d = X.shape
    X = np.asarray(X, dtype=np.float64)
    observed = ~np.isnan(X)
    n = observed.sum(axis=0).astype(np.float64)
    if n_rows and observed.all():
        return n, np.percentile(X, 100 * _GRID, axis=0)
    values = np.full((QUANTILE_GRID, d), np.nan)
    for j in np.flatnonzero(n):
        values[:, j] = np.percentile(X[observed[:, j], j], 100 * _GRID)
    return n, values


def merge_quantiles(a, b):
    """Summary of the union of two blocks, on the same grid."""
    na, va = a
    nb, vb = b
    d = va.shape[1]
    na = np.broadcast_to(np.asarray(na, dtype=np.float64), (d,))
    nb = np.broadcast_to(np.asarray(nb, dtype=np.float64), (d,))
    out = np.empty_like(va)
    for j in range(d):
        if nb[j] == 0:
            out[:, j] = va[:, j]
        elif na[j] == 0:
            out[:, j] = vb[:, j]
        else:
            points = np.union1d(va[:, j], vb[:, j])
            cdf = (na[j] * _cdf(points, va[:, j]) + nb[j] * _cdf(points, vb[:, j])) / (
                na[j] + nb[j]
            )
            out[:, j] = _inverse_cdf(_GRID, cdf, points)
    return na + nb, out


def quantiles_from_summary(summary, q):
    """Quantiles ``q`` (fractions) of each column, from a merged summary
    (0 for a column without observed cells, as the in-memory estimators)."""
    _, values = summary
    return np.stack(
        [
            np.interp(q, _GRID, values[:, j])
            if not np.isnan(values[0, j])
            else np.zeros(len(q))
            for j in range(values.shape[1])
        ],
        axis=1,
    )


def _cdf(points, values):
    """Piecewise-linear distribution function with quantiles ``values``."""
    # ties in the quantiles (repeated values) make a jump of the function
    lo = np.searchsorted(values, points, side="left")
    hi = np.searchsorted(values, points, side="right")
    inner = np.interp(points, values, _GRID)
    jump = hi > lo
    inner[jump] = _GRID[np.maximum(hi[jump] - 1, 0)]
    inner[points < values[0]] = 0.0
    inner[points >= values[-1]] = 1.0
    return inner


def _inverse_cdf(q, cdf, points):
    """Smallest points where the piecewise-linear ``cdf`` reaches ``q``."""
    cdf = np.maximum.accumulate(cdf)
    return np.interp(q, cdf, points)


# -- exact quantiles of a 1-d array in blocks ------------------------------


def percentile_ranks(n, q):
    """Ranks and weights of ``np.percentile(x, q)`` (method "linear") for ``n`` values.

    Returns ``(previous, next, gamma)`` arrays, following NumPy's own
    computation, so that the interpolation gives the same bits.
    """
    quantiles = np.true_divide(np.asanyarray(q, dtype=np.float64), 100)
    virtual = np.asanyarray((n - 1) * quantiles)
    previous = np.floor(virtual)
    gamma = np.asanyarray(virtual - previous, dtype=virtual.dtype)
    previous = np.clip(previous.astype(np.intp), 0, n - 1)
    nxt = np.clip(previous + 1, 0, n - 1)
    return previous, nxt, gamma


def lerp(a, b, t):
    """NumPy's interpolation between order statistics (``_lerp``)."""
    a = np.asanyarray(a)
    b = np.asanyarray(b)
    diff = b - a
    out = np.add(a, diff * t)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5, casting="unsafe")
    return out


def block_sorted_sample(x):
    """Summary of a 1-d block for bracketing: ``(n, quantile values)``."""
    n = x.shape[0]
    if n == 0:
        return 0, None
    return n, np.percentile(np.asarray(x, dtype=np.float64), 100 * _GRID)


def merge_sorted_samples(a, b):
    """Union of two 1-d summaries (a one-column :func:`merge_quantiles`)."""
    na, va = a
    nb, vb = b
    if na == 0:
        return b
    if nb == 0:
        return a
    n, v = merge_quantiles((na, va[:, None]), (nb, vb[:, None]))
    return int(n[0]), v[:, 0]


def brackets(summary, ranks, margin):
    """Intervals ``[lo, hi]`` expected to hold the order statistics ``ranks``.

    ``margin`` is a share of the rows added on both sides of each rank.
    """
    n, values = summary
    frac = np.asarray(ranks, dtype=np.float64) / max(1, n - 1)
    lo = np.interp(np.clip(frac - margin, 0, 1), _GRID, values)
    hi = np.interp(np.clip(frac + margin, 0, 1), _GRID, values)
    lo[frac - margin <= 0] = -np.inf
    hi[frac + margin >= 1] = np.inf
    return lo, hi


def block_in_brackets(x, lo, hi):
    """Count of values below each bracket, and the values inside each."""
    below = np.array([np.count_nonzero(x < a) for a in lo], dtype=np.int64)
    inside = [np.sort(x[(x >= a) & (x <= b)]) for a, b in zip(lo, hi)]
    return below, inside


def merge_in_brackets(a, b):
    """Union of two :func:`block_in_brackets` results."""
    return a[0] + b[0], [np.concatenate([u, v]) for u, v in zip(a[1], b[1])]


def order_statistics(found, ranks):
    """Values of rank ``ranks`` from merged bracket counts; None where missed."""
    below, inside = found
    out = []
    for rank, n_below, values in zip(ranks, below, inside):
        k = int(rank) - int(n_below)
        if 0 <= k < values.shape[0]:
            out.append(np.sort(values)[k])
        else:
            out.append(None)
    return out


# -- tree reduction ---------------------------------------------------------


def tree_reduce(parts, merge, delayed, width=8):
    """Reduce dask ``Delayed`` parts with ``merge``, ``width`` at a time."""

    def merge_many(*items):
        out = items[0]
        for item in items[1:]:
            out = merge(out, item)
        return out

    parts = list(parts)
    while len(parts) > 1:
        parts = [
            delayed(merge_many, pure=True)(*parts[i : i + width])
            for i in range(0, len(parts), width)
        ]
    return parts[0]
