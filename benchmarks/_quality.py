"""SDMetrics' QualityReport scores, computed as SDMetrics 0.32 defines them.

Used when ``sdmetrics`` is not installed (it needs pandas < 3).
``python benchmarks/_quality.py --check``, in an environment that has
``sdmetrics`` and ``palmerpenguins``, compares both on three penguins
frames (with missing values and perturbed numeric columns): the scores
agree to the sixth decimal.

Column shapes: KSComplement (1 - the two-sample Kolmogorov-Smirnov statistic)
for numeric columns, TVComplement (1 - total variation distance of the level
frequencies) for categorical ones; missing values left out. Column pair
trends, as SDMetrics' report computes them:

* two numeric columns: CorrelationSimilarity, ``1 - |r_real - r_synth| / 2``
  with Pearson's r over the rows where both are present; the pair counts
  only if ``|r_real| > 0.5``;
* otherwise ContingencySimilarity, ``1 -`` the total variation distance of
  the joint frequencies (missing values are a level of their own, shares of
  all rows); a numeric column enters cut into 10 equal-width bins over *its
  own frame's* range (the real and the synthetic frame are binned
  separately, so a synthetic column whose range is wider than the real one
  is binned more coarsely); the pair counts only if the real frame's
  Cramer's V exceeds 0.3.

Pair trends are the mean over the pairs that count, the overall score the
mean of the two properties. (Earlier versions of this file binned both
frames over the real range, scored every pair and dropped missing values,
which put penguins' pair trends 0.02-0.05 above SDMetrics'.)
"""

import itertools

import numpy as np
import pandas as pd
from scipy.stats import pearsonr
from scipy.stats.contingency import association

#: SDMetrics' ``DEFAULT_REAL_CORRELATION_THRESHOLD`` and
#: ``DEFAULT_REAL_ASSOCIATION_THRESHOLD`` (``sdmetrics/reports/utils.py``).
REAL_CORRELATION_THRESHOLD = 0.5
REAL_ASSOCIATION_THRESHOLD = 0.3
N_BINS = 10


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


def _binned(values, bins=N_BINS):
    """Bin indices of a numeric column over its own range (missing: ``bins + 1``)."""
    v = np.asarray(values, dtype=float)
    present = v[np.isfinite(v)]
    if present.size == 0:
        return np.full(v.shape, bins + 1)
    return np.digitize(v, np.histogram_bin_edges(present, bins=bins))


def _joint(a, b):
    """Counts of the joint levels of two columns, missing values a level."""
    frame = pd.DataFrame({"a": a, "b": b})
    return frame.groupby(["a", "b"], dropna=False, observed=True).size()


def contingency_similarity(real_a, real_b, synth_a, synth_b):
    """``(score, Cramer's V of the real pair)``."""
    counts = _joint(real_a, real_b)
    table = counts.unstack(fill_value=0)
    if min(table.shape) < 2:
        v = np.nan
    else:
        v = float(association(table.to_numpy().astype(np.int64), method="cramer"))
    p = counts / len(real_a)
    q = _joint(synth_a, synth_b) / len(synth_a)
    keys = p.index.union(q.index, sort=False)
    diff = np.abs(p.reindex(keys, fill_value=0) - q.reindex(keys, fill_value=0))
    return 1.0 - 0.5 * float(np.sum(diff)), v


def correlation_similarity(real_a, real_b, synth_a, synth_b):
    """``(score, Pearson's r of the real pair)``; rows with a missing value
    left out."""

    def r(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 2 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
            return np.nan
        return float(pearsonr(a[ok], b[ok])[0])

    r_real, r_synth = r(real_a, real_b), r(synth_a, synth_b)
    return 1.0 - abs(r_real - r_synth) / 2.0, r_real


def column_shape(real, synth):
    """KSComplement or TVComplement of one column."""
    if _is_cat(real):
        return tv_complement(real.astype(str), synth.astype(str))
    return ks_complement(real, synth)


def quality_report(real, synth):
    """``{"shapes", "pairs", "overall", "per_column"}`` for two DataFrames,
    as SDMetrics' ``QualityReport`` computes them (see the module's
    docstring)."""
    cols = list(real.columns)
    synth = synth[cols]
    cat = {c: _is_cat(real[c]) for c in cols}
    per_column = {}
    for c in cols:
        r, s = real[c].dropna(), synth[c].dropna()
        per_column[c] = column_shape(r, s) if len(s) else 0.0

    def discrete(frame, c):
        return frame[c].astype(object).to_numpy() if cat[c] else _binned(frame[c])

    pairs = []
    for a, b in itertools.combinations(cols, 2):
        if not cat[a] and not cat[b]:
            score, r_real = correlation_similarity(real[a], real[b], synth[a], synth[b])
            if np.isfinite(r_real) and abs(r_real) > REAL_CORRELATION_THRESHOLD:
                pairs.append(score)
            continue
        score, v_real = contingency_similarity(
            discrete(real, a), discrete(real, b), discrete(synth, a), discrete(synth, b)
        )
        if np.isfinite(v_real) and v_real > REAL_ASSOCIATION_THRESHOLD:
            pairs.append(score)
    shapes = float(np.mean(list(per_column.values())))
    pair = float(np.nanmean(pairs)) if pairs else np.nan
    overall = shapes if not pairs else (shapes + pair) / 2
    return {
        "shapes": shapes,
        "pairs": pair,
        "overall": overall,
        "per_column": per_column,
    }


def _check(seed=0):
    """Compare with SDMetrics' own report on penguins (needs ``sdmetrics``)."""
    from palmerpenguins import load_penguins
    from sdmetrics.reports.single_table import QualityReport

    df = load_penguins()
    for c in ("species", "island", "sex"):
        df[c] = df[c].astype("category")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(df))
    real = df.iloc[idx[:172]].reset_index(drop=True)
    synth = df.iloc[idx[172:]].reset_index(drop=True)
    for c in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
        synth[c] = synth[c] + rng.normal(scale=0.5 * synth[c].std(), size=len(synth))
    meta = {
        "columns": {
            c: {"sdtype": "categorical" if _is_cat(real[c]) else "numerical"}
            for c in real.columns
        }
    }
    qr = QualityReport()
    qr.generate(real, synth, meta, verbose=False)
    props = qr.get_properties().set_index("Property")["Score"]
    ours = quality_report(real, synth)
    print(
        "SDMetrics shapes / pairs / overall:", *props.round(6), round(qr.get_score(), 6)
    )
    print(
        "ours                              :",
        *(round(ours[k], 6) for k in ("shapes", "pairs", "overall")),
    )


if __name__ == "__main__":
    import sys

    if "--check" in sys.argv:
        for seed in range(3):
            _check(seed)
