"""SDMetrics' QualityReport scores, computed as SDMetrics defines them.

Used when ``sdmetrics`` is not installed (it needs pandas < 3). Column
shapes: KSComplement (1 - the two-sample Kolmogorov-Smirnov statistic) for
numeric columns, TVComplement (1 - total variation distance of the level
frequencies) for categorical ones. Column pair trends: CorrelationSimilarity
(1 - |Pearson real - Pearson synthetic| / 2) for two numeric columns,
ContingencySimilarity (1 - total variation distance of the joint
frequencies) for the others, numeric columns cut into 10 equal-width bins
over the real values' range. Overall: the mean of the two.
"""

import itertools

import numpy as np
import pandas as pd


def _is_cat(s):
    return not pd.api.types.is_numeric_dtype(s) or isinstance(
        s.dtype, pd.CategoricalDtype
    )


def ks_complement(real, synth):
    r = np.sort(np.asarray(real, dtype=float))
    s = np.sort(np.asarray(synth, dtype=float))
    r, s = r[np.isfinite(r)], s[np.isfinite(s)]
    grid = np.concatenate([r, s])
    cdf_r = np.searchsorted(r, grid, side="right") / r.size
    cdf_s = np.searchsorted(s, grid, side="right") / s.size
    return 1.0 - float(np.max(np.abs(cdf_r - cdf_s)))


def tv_complement(real, synth):
    p = pd.Series(real).astype(str).value_counts(normalize=True)
    q = pd.Series(synth).astype(str).value_counts(normalize=True)
    keys = p.index.union(q.index)
    return 1.0 - 0.5 * float(
        np.sum(np.abs(p.reindex(keys, fill_value=0) - q.reindex(keys, fill_value=0)))
    )


def _binned(real, synth, bins=10):
    r = np.asarray(real, dtype=float)
    s = np.asarray(synth, dtype=float)
    lo, hi = np.nanmin(r), np.nanmax(r)
    edges = np.linspace(lo, hi, bins + 1)[1:-1]
    return np.digitize(r, edges).astype(str), np.digitize(s, edges).astype(str)


def contingency_similarity(real_a, real_b, synth_a, synth_b):
    p = pd.crosstab(np.asarray(real_a), np.asarray(real_b), normalize=True).stack()
    q = pd.crosstab(np.asarray(synth_a), np.asarray(synth_b), normalize=True).stack()
    keys = p.index.union(q.index)
    return 1.0 - 0.5 * float(
        np.sum(np.abs(p.reindex(keys, fill_value=0) - q.reindex(keys, fill_value=0)))
    )


def correlation_similarity(real_a, real_b, synth_a, synth_b):
    r = np.corrcoef(np.asarray(real_a, float), np.asarray(real_b, float))[0, 1]
    s = np.corrcoef(np.asarray(synth_a, float), np.asarray(synth_b, float))[0, 1]
    if not np.isfinite(s):
        s = 0.0
    if not np.isfinite(r):
        r = 0.0
    return 1.0 - abs(r - s) / 2.0


def column_shape(real, synth):
    """KSComplement or TVComplement of one column."""
    if _is_cat(real):
        return tv_complement(real.astype(str), synth.astype(str))
    return ks_complement(real, synth)


def quality_report(real, synth):
    """``{"shapes", "pairs", "overall", "per_column"}`` for two DataFrames.

    Rows with a missing value in a column or pair are left out of that
    column's or pair's score.
    """
    cols = list(real.columns)
    cat = {c: _is_cat(real[c]) for c in cols}
    per_column = {}
    for c in cols:
        r, s = real[c].dropna(), synth[c].dropna()
        per_column[c] = column_shape(r, s) if len(s) else 0.0
    pairs = []
    for a, b in itertools.combinations(cols, 2):
        r = real[[a, b]].dropna()
        s = synth[[a, b]].dropna()
        if len(s) < 2 or len(r) < 2:
            pairs.append(0.0)
            continue
        if not cat[a] and not cat[b]:
            pairs.append(correlation_similarity(r[a], r[b], s[a], s[b]))
            continue
        ra, sa = (r[a].astype(str), s[a].astype(str)) if cat[a] else _binned(r[a], s[a])
        rb, sb = (r[b].astype(str), s[b].astype(str)) if cat[b] else _binned(r[b], s[b])
        pairs.append(contingency_similarity(ra, rb, sa, sb))
    shapes = float(np.mean(list(per_column.values())))
    pair = float(np.mean(pairs)) if pairs else shapes
    return {
        "shapes": shapes,
        "pairs": pair,
        "overall": (shapes + pair) / 2,
        "per_column": per_column,
    }
