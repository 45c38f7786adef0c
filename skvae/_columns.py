"""Columns of a table: types, category levels, scaling and missing cells.

Everything between what a user passes (an array, a sparse matrix, a pandas
DataFrame with category, object, string or bool columns and missing values)
and what the network sees lives here, as small functions of plain data:

- :func:`categorical_mask` decides which columns are categorical;
- :func:`fit_columns` learns the levels of categorical columns and the
  likelihood of every column, and lays the columns out in the model's
  internal order (each likelihood group contiguous);
- :func:`to_codes` turns rows into one float matrix in the user's column
  order: numeric values, and level indices for categorical columns, with NaN
  on every missing cell;
- :func:`fit_scaling` computes the per-column standardisation, ignoring
  missing cells;
- :func:`encode` turns codes into a :class:`skvae._objectives.Batch`:
  encoder inputs (numeric values, one-hot levels, missingness indicators),
  likelihood targets and the mask of observed cells;
- :func:`from_internal` maps values in the internal order back to the
  user's columns (an array, or a DataFrame with the training dtypes);
- :func:`column_quantiles` and :func:`match_marginal` give sampled values
  the training columns' marginal distributions
  (``sample(marginals="training")``).

The fitted description of the columns is a plain dict (``layout``), so a
fitted estimator still pickles to NumPy arrays and Python values only.
pandas is imported only when the user passes a DataFrame.
"""

import sys
import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp

from . import _scaling
from ._likelihoods import LIKELIHOODS, RAW_LIKELIHOODS
from ._objectives import Batch

#: Values per block of the scaling statistics (2 MB in float64).
_STATS_BLOCK = 1 << 18

#: standardize="robust" keeps each feature's scale at least this share of its
#: standard deviation (see skvae._scaling)
_ROBUST_MIN_STD_FRACTION = _scaling.ROBUST_MIN_STD_FRACTION


def is_dataframe(X):
    """Whether ``X`` looks like a pandas DataFrame (without importing pandas)."""
    return hasattr(X, "iloc") and hasattr(X, "dtypes") and hasattr(X, "columns")


def _is_categorical_dtype(dtype):
    import pandas as pd

    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def categorical_mask(X, categorical_features, feature_names):
    """Boolean mask of the categorical columns of ``X``.

    Parameters
    ----------
    X : array-like, sparse matrix or DataFrame
        The training rows.
    categorical_features : "from_dtype", None, or array-like
        ``"from_dtype"``: the category, object, string and bool columns of a
        DataFrame (none for arrays); None: no column; a boolean mask, integer
        indices or column names.
    feature_names : ndarray of str or None
        Column names of a DataFrame.

    Returns
    -------
    mask : ndarray of bool of shape (n_features,)
    """
    n_features = X.shape[1]
    if categorical_features is None:
        return np.zeros(n_features, dtype=bool)
    if isinstance(categorical_features, str):  # "from_dtype"
        if not is_dataframe(X):
            return np.zeros(n_features, dtype=bool)
        return np.array([_is_categorical_dtype(dt) for dt in X.dtypes], dtype=bool)
    spec = np.asarray(categorical_features)
    if spec.size == 0:
        return np.zeros(n_features, dtype=bool)
    if spec.dtype.kind == "b":
        if spec.shape != (n_features,):
            raise ValueError(
                f"categorical_features as a boolean mask must have shape "
                f"({n_features},), got {spec.shape}."
            )
        return spec.astype(bool)
    mask = np.zeros(n_features, dtype=bool)
    if spec.dtype.kind in "OUS":
        if feature_names is None:
            raise ValueError(
                "categorical_features names columns, but X has no column "
                "names: pass a DataFrame or use indices."
            )
        names = list(feature_names)
        for name in spec.ravel():
            if name not in names:
                raise ValueError(
                    f"categorical_features names {name!r}, which is not a "
                    f"column of X (columns: {names})."
                )
            mask[names.index(name)] = True
        return mask
    if spec.dtype.kind not in "iu" or any(
        not isinstance(int(i), Integral) for i in spec.ravel()
    ):
        raise ValueError(
            "categorical_features must be 'from_dtype', None, a boolean mask, "
            f"integer indices or column names; got {categorical_features!r}."
        )
    idx = spec.ravel().astype(int)
    if np.any((idx < -n_features) | (idx >= n_features)):
        raise ValueError(
            f"categorical_features has an index out of range for {n_features} "
            f"features: {idx.tolist()}."
        )
    mask[idx] = True
    return mask


# -- levels and codes ---------------------------------------------------------


def _column(X, j):
    return X.iloc[:, j] if is_dataframe(X) else X[:, j]


def _is_missing(values):
    """Missing cells of a 1-D object or float array: None, NaN or pd.NA."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind != "O":
        return np.zeros(values.shape, dtype=bool)
    pd = sys.modules.get("pandas")
    if pd is not None:  # vectorised, and it knows pd.NA and NaT
        return np.asarray(pd.isna(values), dtype=bool)
    return np.array(
        [v is None or (isinstance(v, float) and v != v) for v in values], dtype=bool
    )


def _levels_of(column):
    """The levels of a categorical column, as a 1-D ndarray (sorted when
    possible; a pandas Categorical keeps its declared categories)."""
    if hasattr(column, "cat"):
        return np.asarray(column.cat.categories.to_numpy(), dtype=object)
    values = np.asarray(column.to_numpy() if hasattr(column, "to_numpy") else column)
    values = values[~_is_missing(values)]
    return _sorted_levels(values.tolist(), values.dtype)


def _sorted_levels(values, dtype):
    """Distinct ``values`` sorted (by type name and text where they do not
    sort together), as an array of ``dtype`` when numeric, else of objects."""
    unique = list(dict.fromkeys(values))
    try:
        unique = sorted(unique)
    except TypeError:
        unique = sorted(unique, key=lambda v: (type(v).__name__, str(v)))
    if dtype.kind in "biuf":
        return np.asarray(unique, dtype=dtype)
    return np.asarray(unique, dtype=object)


def column_levels(X, is_categorical):
    """The levels of each categorical column of some rows, as
    :func:`fit_columns` learns them, for :func:`merge_levels`.

    Returns one ``(levels, declared)`` pair per categorical column;
    ``declared``: a pandas Categorical, whose declared categories are kept in
    their order rather than sorted.
    """
    return [
        (_levels_of(_column(X, j)), hasattr(_column(X, j), "cat"))
        for j in np.flatnonzero(is_categorical)
    ]


def merge_levels(a, b):
    """The :func:`column_levels` of the union of two sets of rows.

    Sorted levels merge into the sorted union (what :func:`fit_columns`
    learns from all the rows); declared categories that differ are united
    in order of appearance (``pandas.api.types.union_categoricals``).
    """
    out = []
    for (la, da), (lb, db) in zip(a, b):
        if da and db and len(la) == len(lb) and np.array_equal(la, lb):
            out.append((la, True))
            continue
        values = la.tolist() + lb.tolist()
        if la.size and lb.size:
            dtype = np.result_type(la.dtype, lb.dtype)
        else:
            dtype = la.dtype if la.size else lb.dtype
        if da or db:
            out.append((np.asarray(list(dict.fromkeys(values)), dtype=dtype), True))
        else:
            out.append((_sorted_levels(values, dtype), False))
    return out


def with_levels(layout, levels):
    """A copy of ``layout`` with the categorical columns' levels replaced
    (from :func:`merge_levels` over all the training rows)."""
    categories = [
        np.asarray(c, dtype=object) if len(c) == 0 else np.asarray(c) for c, _ in levels
    ]
    groups = [
        [name, n, {**opts, "sizes": _sizes(categories)}]
        if name == "categorical"
        else [name, n, opts]
        for name, n, opts in layout["groups"]
    ]
    return {**layout, "categories": categories, "groups": groups}


def _sizes(categories):
    """One-hot widths of the categorical columns (1 for a column without
    levels)."""
    return [max(1, len(c)) for c in categories]


def _codes_of(column, levels, handle_unknown, name):
    """Level indices (float, NaN where missing) of a categorical column."""
    values = np.asarray(
        column.to_numpy(dtype=object) if hasattr(column, "to_numpy") else column,
        dtype=object,
    )
    missing = _is_missing(values)
    lookup = {_key(v): i for i, v in enumerate(levels.tolist())}
    codes = np.full(values.shape[0], np.nan)
    present = values[~missing]
    try:
        # one dictionary look-up per distinct value, not per cell
        uniq, inverse = np.unique(present, return_inverse=True)
    except TypeError:  # values of types that do not sort together
        uniq, inverse = present, np.arange(present.shape[0])
    found = np.array([lookup.get(_key(v), -1) for v in uniq], dtype=float)
    mapped = found[inverse] if found.size else np.empty(0)
    unknown = list(uniq[found < 0]) if found.size else []
    mapped[mapped < 0] = np.nan
    codes[~missing] = mapped
    if unknown:
        shown = list(dict.fromkeys(unknown))[:5]
        if handle_unknown == "error":
            raise ValueError(
                f"Found unknown categories {shown} in column {name!r} during "
                "transform. Set handle_unknown='missing' to treat them as "
                "missing values."
            )
        warnings.warn(
            f"Found unknown categories {shown} in column {name!r}: they are "
            "treated as missing values (handle_unknown='missing').",
            UserWarning,
            stacklevel=5,
        )
    return codes


def _key(value):
    """Dictionary key of a level: numbers of equal value match (1 == 1.0 ==
    np.int64(1)); bools and strings match themselves."""
    if isinstance(value, (bool, np.bool_)):
        return ("bool", bool(value))
    if isinstance(value, (Integral, float, np.floating)):
        return ("num", float(value))
    return ("obj", value)


def _numeric_column(column, name, dtype):
    try:
        if hasattr(column, "to_numpy"):
            return column.to_numpy(dtype=dtype, na_value=np.nan)
        return np.asarray(column, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Column {name!r} is not numeric ({exc}). Declare it in "
            "categorical_features, or give it a category, object, string or "
            "bool dtype so that categorical_features='from_dtype' finds it."
        ) from exc


def zero_shares(X, is_categorical):
    """Share of exact zeros among the observed cells of each numeric column
    of ``X`` (array or DataFrame; NaN for categorical columns and for
    columns without an observed cell)."""
    shares = np.full(X.shape[1], np.nan)
    for j in np.flatnonzero(~np.asarray(is_categorical, dtype=bool)):
        values = _numeric_column(_column(X, j), j, np.float64)
        observed = ~np.isnan(values)
        if observed.any():
            shares[j] = np.mean(values[observed] == 0)
    return shares


def frame_dtype(X, is_categorical):
    """The working dtype of a DataFrame: float32 when NumPy would make its
    numeric columns float32 together (``np.result_type``: float32 with small
    integers, as ``np.asarray`` of the frame would), else float64."""
    dtypes = [
        getattr(dt, "numpy_dtype", dt)
        for dt, cat in zip(X.dtypes, is_categorical)
        if not cat
    ]
    dtypes = [dt for dt in dtypes if isinstance(dt, np.dtype) and dt.kind in "biuf"]
    if dtypes and np.result_type(*dtypes) == np.float32:
        return np.float32
    return np.float64


def to_codes(X, layout, dtype, handle_unknown="missing", names=None):
    """Rows as one float matrix in the user's column order.

    Numeric columns hold their values and categorical columns the index of
    their level; every missing cell (NaN, None, pd.NA, an unknown level with
    ``handle_unknown="missing"``) is NaN.
    """
    n, d = X.shape
    C = np.empty((n, d), dtype=dtype)
    levels = iter(layout["categories"])
    for j in range(d):
        name = names[j] if names is not None else j
        if layout["is_categorical"][j]:
            cats = next(levels)
            C[:, j] = _codes_of(_column(X, j), cats, handle_unknown, name)
        else:
            C[:, j] = _numeric_column(_column(X, j), name, dtype)
    if np.isinf(C).any():
        raise ValueError(
            "Input X contains infinity or a value too large for its dtype."
        )
    return C


# -- the layout -----------------------------------------------------------------


def fit_columns(X, is_categorical, likelihood, default_likelihood, names):
    """Levels, likelihoods and internal order of the columns of ``X``.

    Parameters
    ----------
    X : ndarray or DataFrame
        Training rows.
    is_categorical : ndarray of bool
        From :func:`categorical_mask`.
    likelihood : str or dict
        The numeric columns' likelihood, or a dict from column name or index
        to a likelihood name (columns not in it get ``default_likelihood``).
    default_likelihood : str
        ``"gaussian"`` for the VAEs, ``"squared_error"`` for the autoencoder.
    names : ndarray of str or None
        Column names of a DataFrame.

    Returns
    -------
    layout : dict
        ``is_categorical``, ``categories`` (one array of levels per
        categorical column), ``likelihoods`` (one name per column), ``order``
        (the internal column order) and ``groups`` (the likelihood table:
        ``[name, n_columns, options]`` in that order).
    """
    categories = []
    for j in np.flatnonzero(is_categorical):
        levels = _levels_of(_column(X, j))
        if levels.size == 0:
            levels = np.asarray([], dtype=object)
        categories.append(levels)
    return _grouped(
        is_categorical, categories, likelihood, default_likelihood, X.shape[1], names
    )


def with_likelihoods(layout, likelihood, default_likelihood, names):
    """``layout`` with the numeric columns' likelihoods set anew from
    ``likelihood`` (as in :func:`fit_columns`); the levels, and any other
    entry, stay. The raw-value groups' statistics are to be fitted again
    (:func:`fit_raw_options`)."""
    new = _grouped(
        layout["is_categorical"],
        layout["categories"],
        likelihood,
        default_likelihood,
        len(layout["is_categorical"]),
        names,
    )
    return {**layout, **new}


def _grouped(is_categorical, categories, likelihood, default_likelihood, d, names):
    """The layout of :func:`fit_columns` from the columns' levels."""
    per_column, column_options = _column_likelihoods(
        likelihood, default_likelihood, d, names
    )
    for j in range(d):
        if is_categorical[j]:
            per_column[j] = "categorical"
        elif per_column[j] == "categorical":
            raise ValueError(
                f"likelihood 'categorical' given for column "
                f"{names[j] if names is not None else j!r}, which is numeric: "
                "declare it in categorical_features instead."
            )
    names_in_order = [n for n in _ORDER if n in per_column]
    order, groups = [], []
    for lik in names_in_order:
        cols = [j for j in range(d) if per_column[j] == lik]
        order += cols
        opts = {}
        if lik == "categorical":
            opts = {"sizes": _sizes(categories)}
            # the categorical columns in internal order are in column order
        elif lik in RAW_LIKELIHOODS:
            # per-column settings (bounds) as one list per key
            keys = sorted({k for j in cols for k in column_options[j]})
            opts = {
                k: [float(column_options[j].get(k, _OPTION_DEFAULTS[k])) for j in cols]
                for k in keys
            }
        groups.append([lik, len(cols), opts])
    return {
        "is_categorical": np.asarray(is_categorical, dtype=bool),
        "categories": categories,
        "likelihoods": per_column,
        "column_options": column_options,
        "order": np.asarray(order, dtype=np.intp),
        "groups": groups,
    }


#: Internal order of the likelihood groups.
_ORDER = (
    "gaussian",
    "squared_error",
    "bernoulli",
    "poisson",
    "lognormal",
    "logit_normal",
    "zero_lognormal",
    "zero_normal",
    "categorical",
)

#: Likelihood names a user may give for numeric columns, by model kind.
NUMERIC_LIKELIHOODS = {
    "gaussian": (
        "gaussian",
        "bernoulli",
        "poisson",
        "lognormal",
        "logit_normal",
        "zero_lognormal",
        "zero_normal",
    ),
    "squared_error": ("squared_error",),
}

#: Settings a per-column likelihood takes, and their defaults.
_OPTION_DEFAULTS = {"low": 0.0, "high": 1.0}
_COLUMN_OPTIONS = {"logit_normal": ("low", "high")}


def _split_spec(key, value, allowed):
    """A per-column likelihood: a name, or ``(name, {setting: value})``."""
    options = {}
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value, options = value
        if not isinstance(options, dict):
            raise ValueError(
                f"likelihood[{key!r}] must be a name or (name, dict), got "
                f"{(value, options)!r}."
            )
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"likelihood[{key!r}] must be one of {sorted(allowed)}, got {value!r}."
        )
    known = _COLUMN_OPTIONS.get(value, ())
    for name in options:
        if name not in known:
            raise ValueError(
                f"likelihood[{key!r}]: {value!r} takes the settings "
                f"{list(known)}, not {name!r}."
            )
    options = {k: float(v) for k, v in options.items()}
    if value == "logit_normal":
        low, high = options.get("low", 0.0), options.get("high", 1.0)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(
                f"likelihood[{key!r}]: logit_normal needs finite bounds "
                f"low < high, got low={low}, high={high}."
            )
    return value, options


def _column_likelihoods(likelihood, default, d, names):
    """One likelihood name per column, and one dict of settings per column."""
    if not isinstance(likelihood, dict):
        return [likelihood] * d, [{} for _ in range(d)]
    out = [default] * d
    column_options = [{} for _ in range(d)]
    allowed = (*NUMERIC_LIKELIHOODS[default], "categorical")
    for key, value in likelihood.items():
        value, options = _split_spec(key, value, allowed)
        if isinstance(key, str):
            if names is None or key not in list(names):
                raise ValueError(
                    f"likelihood names column {key!r}, which is not a column of X."
                )
            j = list(names).index(key)
        elif isinstance(key, Integral) and -d <= key < d:
            j = int(key) % d
        else:
            raise ValueError(f"likelihood has a key {key!r} that is not a column of X.")
        out[j] = value
        column_options[j] = options
    return out, column_options


def frame_info(X):
    """What a DataFrame's columns need to be rebuilt: names and dtypes."""
    return {
        "columns": list(X.columns),
        "dtypes": [_dtype_spec(dt) for dt in X.dtypes],
    }


def _dtype_spec(dt):
    """A plain description of a pandas dtype: its string, and for categorical
    dtypes whether the categories are ordered."""
    import pandas as pd

    if isinstance(dt, pd.CategoricalDtype):
        return ["category", bool(dt.ordered)]
    return [str(dt), False]


# -- scaling --------------------------------------------------------------------


def column_moments(X):
    """Largest magnitude, mean and standard deviation of each column.

    Missing cells (NaN) are ignored. The moments are computed on
    ``X / peak`` (values near the float limits would overflow otherwise), in
    float64, over blocks of rows: the memory they take does not grow with the
    number of rows (on 20000 x 784 float32 data a whole-array float64
    computation added about 190 MB to the peak). Blocks hold
    :data:`_STATS_BLOCK` values.
    """
    n, d = X.shape
    rows = max(1, _STATS_BLOCK // max(1, d))
    blocks = [X[i : i + rows] for i in range(0, n, rows)]
    has_nan = any(np.isnan(b).any() for b in blocks)
    peak = np.zeros(d)
    for block in blocks:
        m = (
            np.nanmax(np.abs(block), axis=0)
            if has_nan
            else np.max(np.abs(block), axis=0)
        )
        np.fmax(peak, m, out=peak)
    peak[~(peak > 0)] = 1.0
    total = np.zeros(d)
    count = np.zeros(d)
    for block in blocks:
        scaled = block / peak
        if has_nan:
            observed = ~np.isnan(scaled)
            count += observed.sum(axis=0)
            total += np.where(observed, scaled, 0.0).sum(axis=0, dtype=np.float64)
        else:
            count += block.shape[0]
            total += np.sum(scaled, axis=0, dtype=np.float64)
    safe = np.maximum(count, 1)
    mean = total / safe
    # a second pass over the deviations: exact, unlike sum(x^2) - n mean^2
    sq = np.zeros(d)
    for block in blocks:
        dev = block / peak - mean
        if has_nan:
            dev = np.where(np.isnan(dev), 0.0, dev)
        sq += np.einsum("ij,ij->j", dev, dev)
    return peak, mean * peak, np.sqrt(sq / safe) * peak


def column_quartiles(X, peak):
    """Quartiles of each column of ``X / peak``, in float64, by column blocks
    (missing cells ignored)."""
    n, d = X.shape
    cols = max(1, _STATS_BLOCK // max(1, n))
    out = np.empty((3, d))
    for j in range(0, d, cols):
        block = X[:, j : j + cols] / peak[j : j + cols]
        if np.isnan(block).any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                q = np.nanpercentile(block, [25, 50, 75], axis=0)
            out[:, j : j + cols] = np.nan_to_num(q)
        else:
            out[:, j : j + cols] = np.percentile(block, [25, 50, 75], axis=0)
    return out


def fit_scaling(C, scaled, standardize):
    """Centre and scale of each column (zeros and ones where not scaled).

    Parameters
    ----------
    C : ndarray or sparse matrix of shape (n_rows, n_features)
        Codes from :func:`to_codes` (or a sparse matrix: then columns are
        scaled but not centred, which would destroy their sparsity).
    scaled : ndarray of bool of shape (n_features,)
        Columns whose likelihood works on standardised values.
    standardize : bool or "robust"
        As the estimators' parameter.
    """
    d = C.shape[1]
    mean = np.zeros(d)
    scale = np.ones(d)
    if not standardize or not np.any(scaled):
        return mean, scale
    cols = np.flatnonzero(scaled)
    if sp.issparse(C):
        Xc = C.tocsc()[:, cols]
        n = Xc.shape[0]
        m = np.asarray(Xc.mean(axis=0), dtype=np.float64).ravel()
        sq = np.asarray(Xc.multiply(Xc).mean(axis=0), dtype=np.float64).ravel()
        sd = np.sqrt(np.maximum(sq - m * m, 0.0) * n / max(n, 1))
        sd[~(sd > 10 * np.finfo(C.dtype).eps * np.maximum(np.abs(m), 1.0))] = 1.0
        scale[cols] = sd
        return mean, scale
    X = C[:, cols] if cols.size < d else C
    if not np.isnan(X).any():
        # complete columns: the rules of skvae._scaling, as chosen on the
        # anomaly benchmarks
        method = "standard" if standardize is True else standardize
        mu, sd = _scaling.fit_column_scaling(X, method)
        mean[cols] = mu
        scale[cols] = sd
        return mean, scale
    # columns with missing cells: the same statistics over observed cells
    # (for "robust", without the point-mass rule of skvae._scaling)
    peak, mu, sd = column_moments(X)
    if standardize == "robust":
        q1, med, q3 = column_quartiles(X, peak)
        iqr = (q3 - q1) / 1.349 * peak
        mu = med * peak
        sd = np.maximum(iqr, _ROBUST_MIN_STD_FRACTION * sd)
    tiny = ~(sd >= 10 * np.finfo(C.dtype).eps * np.maximum(np.abs(mu), 1.0))
    sd[tiny] = 1.0
    mean[cols] = mu
    scale[cols] = sd
    return mean, scale


# -- likelihoods on raw values ------------------------------------------------------


def _raw_groups(layout):
    """``(group, internal slice, user columns)`` of each likelihood group that
    takes raw values (see :data:`skvae._likelihoods.RAW_LIKELIHOODS`)."""
    out = []
    start = 0
    for group in layout["groups"]:
        name, n = group[0], group[1]
        if name in RAW_LIKELIHOODS:
            cols = slice(start, start + n)
            out.append((group, cols, layout["order"][cols]))
        start += n
    return out


def has_raw_groups(layout):
    """Whether some columns have a likelihood on their raw values."""
    return any(g[0] in RAW_LIKELIHOODS for g in layout["groups"])


def check_raw_support(C, layout):
    """Raise a ValueError when values fall outside their likelihood's support.

    ``C`` holds codes in the user's column order (dense or sparse).
    """
    if C.shape[0] == 0:
        return
    for group, _, cols in _raw_groups(layout):
        values = C[:, cols]
        if sp.issparse(values):
            values = values.toarray()
        values = np.asarray(values, dtype=np.float64)
        if np.all(np.isnan(values)):
            continue
        message = LIKELIHOODS[group[0]].support_error(values, group[2])
        if message is not None:
            raise ValueError(message)


#: Options of a raw-value group that are statistics of the training rows.
STAT_KEYS = ("loc", "scale", "input_loc", "input_scale", "zero_input", "zero_share")


def fit_raw_options(C, layout):
    """Learn the internal centring and scaling of the raw-value likelihood
    groups from the training codes ``C``, into ``layout["groups"]``."""
    for group, _, cols in _raw_groups(layout):
        values = C[:, cols]
        if sp.issparse(values):
            values = values.toarray()
        values = np.asarray(values, dtype=np.float64)
        base = {k: v for k, v in group[2].items() if k not in STAT_KEYS}
        group[2] = {**base, **LIKELIHOODS[group[0]].fit_options(values, base)}


def _encoder_view(T, layout, missing):
    """Encoder inputs of the numeric columns: ``T`` itself, or a copy in
    which raw-value groups are transformed to unit scale."""
    raw = _raw_groups(layout)
    if not raw:
        return T
    E = T.copy()
    for group, cols, _ in raw:
        lik = LIKELIHOODS[group[0]](group[1], group[2])
        part_missing = None if missing is None else missing[:, cols]
        with np.errstate(all="ignore"):
            E[:, cols] = lik.encoder_input(T[:, cols], part_missing)
    return E


# -- encoding -----------------------------------------------------------------------


def n_inputs(layout):
    """Encoder input width: numeric columns, one-hot levels, indicators."""
    n_cat = int(np.sum(layout["is_categorical"]))
    n_num = len(layout["order"]) - n_cat
    levels = sum(max(1, len(c)) for c in layout["categories"])
    return n_num + levels + layout["n_indicators"]


def encode(C, layout, mean, scale, dtype):
    """Codes -> :class:`Batch` (encoder inputs, targets, mask).

    Parameters
    ----------
    C : ndarray of shape (n_rows, n_features)
        Codes from :func:`to_codes` (NaN on missing cells).
    layout : dict
        From :func:`fit_columns`, with ``n_indicators``.
    mean, scale : ndarray of shape (n_features,)
        From :func:`fit_scaling` (in the user's column order).
    dtype : numpy dtype
        Of the network.
    """
    order = layout["order"]
    # fancy indexing of columns can return a Fortran-ordered array, from
    # which gathering batches of rows is several times slower
    T = np.ascontiguousarray(C[:, order], dtype=dtype)
    missing = np.isnan(T)
    any_missing = bool(missing.any())
    T -= mean[order].astype(dtype)
    T /= scale[order].astype(dtype)
    if any_missing:
        T[missing] = 0
    M = (~missing).astype(dtype) if any_missing else None
    n_cat = int(np.sum(layout["is_categorical"]))
    n_num = T.shape[1] - n_cat
    n_ind = layout["n_indicators"]
    E = _encoder_view(T, layout, missing if any_missing else None)
    if n_cat == 0 and n_ind == 0:
        return Batch(E, T, M)
    parts = [E[:, :n_num]]
    if n_cat:
        sizes = [max(1, len(c)) for c in layout["categories"]]
        onehot = np.zeros((T.shape[0], sum(sizes)), dtype=dtype)
        start = 0
        for j, size in enumerate(sizes):
            col = n_num + j
            rows = np.flatnonzero(~missing[:, col])
            onehot[rows, start + T[rows, col].astype(np.intp)] = 1
            start += size
        parts.append(onehot)
    if n_ind:
        parts.append(missing[:, :n_ind].astype(dtype))
    return Batch(np.hstack(parts), T, M)


def hide_inputs(E, hide, layout):
    """Hide cells from the encoder, in place: as if they were missing.

    ``E`` holds encoder inputs (from :func:`encode`) and ``hide`` is a
    boolean array of the cells to hide, in the internal column order.
    Numeric cells are set to 0 (the mean) with their indicator at 1;
    categorical cells get an all-zero one-hot.
    """
    n_cat = int(np.sum(layout["is_categorical"]))
    n_num = hide.shape[1] - n_cat
    n_ind = layout["n_indicators"]
    if n_num:
        keep = ~hide[:, :n_num]
        E[:, :n_num] *= keep
        if n_ind:
            ind = E[:, E.shape[1] - n_ind :]
            np.maximum(ind, hide[:, :n_ind], out=ind)
    start = n_num
    for j, levels in enumerate(layout["categories"]):
        size = max(1, len(levels))
        E[:, start : start + size] *= ~hide[:, n_num + j, None]
        start += size


def log_scale_per_row(M, layout, scale):
    """log |det| of the scaling over each row's observed cells (a scalar when
    every cell is observed)."""
    log_scale = np.log(scale[layout["order"]])
    if M is None:
        return float(np.sum(log_scale))
    return M @ log_scale.astype(M.dtype)


# -- back to the user's columns -------------------------------------------------------


def from_internal(V, layout, mean, scale, frame=None):
    """Values in the internal order and scaling -> the user's columns.

    Numeric columns are unscaled; categorical columns (level indices) become
    their levels. Returns a DataFrame with the training columns and dtypes
    when ``frame`` (from :func:`frame_info`) is given; else an ndarray (of
    objects when a categorical column has non-numeric levels).
    """
    order = layout["order"]
    d = len(order)
    out = np.empty((V.shape[0], d), dtype=V.dtype)
    out[:, order] = V
    with np.errstate(over="ignore", invalid="ignore"):
        out *= scale.astype(V.dtype)
        out += mean.astype(V.dtype)
    if not np.all(np.isfinite(out)):
        # a decoder output far outside the data (times a large scale) beyond
        # the working dtype's range: computed in float64, clipped to it
        wide = np.empty((V.shape[0], d))
        wide[:, order] = V
        big = float(np.finfo(V.dtype).max)
        with np.errstate(over="ignore", invalid="ignore"):
            wide = wide * scale + mean
        out = np.clip(np.nan_to_num(wide, nan=0.0), -big, big).astype(V.dtype)
    cat_cols = np.flatnonzero(layout["is_categorical"])
    if frame is not None:
        return _to_frame(out, layout, frame)
    if cat_cols.size == 0:
        return out
    levels = layout["categories"]
    numeric_levels = all(c.dtype.kind in "biuf" for c in levels)
    result = out if numeric_levels else out.astype(object)
    for j, cats in zip(cat_cols, levels):
        codes = np.clip(np.rint(V[:, internal_position(layout, j)]), 0, None)
        codes = np.minimum(codes.astype(np.intp), max(len(cats) - 1, 0))
        result[:, j] = cats[codes] if len(cats) else np.nan
    return result


def internal_position(layout, j):
    return int(np.flatnonzero(layout["order"] == j)[0])


def _to_frame(values, layout, frame):
    import pandas as pd

    data = {}
    levels = iter(layout["categories"])
    for j, (name, (dtype, ordered)) in enumerate(
        zip(frame["columns"], frame["dtypes"])
    ):
        col = values[:, j]
        if layout["is_categorical"][j]:
            cats = next(levels)
            codes = np.clip(np.rint(col), 0, max(len(cats) - 1, 0)).astype(np.intp)
            series = pd.Series(pd.Categorical.from_codes(codes, categories=cats))
            if dtype == "category":
                series = series.astype(
                    pd.CategoricalDtype(categories=cats, ordered=ordered)
                )
            else:
                series = pd.Series(cats[codes]).astype(dtype)
            data[name] = series
        else:
            series = pd.Series(col)
            if dtype.lower().startswith(("int", "uint")):
                # integers: rounded, and inside the dtype's range (a drawn
                # value may fall outside it, e.g. below 0 for uint8)
                info = np.iinfo(np.dtype(dtype.lower()))
                # float(info.max) rounds up past the range for 64-bit types
                top = np.nextafter(float(info.max), 0.0)
                series = series.round().clip(float(info.min), top)
            elif (
                dtype.lower().startswith("float")
                and np.dtype(dtype.lower()).itemsize < 8
            ):
                # a narrower float column (float16) holds a smaller range
                big = float(np.finfo(np.dtype(dtype.lower())).max)
                series = series.clip(-big, big)
            try:
                series = series.astype(dtype)
            except (TypeError, ValueError):
                pass
            data[name] = series
    return pd.DataFrame(data, columns=frame["columns"])


#: Quantile levels stored per numeric column for ``sample(marginals="training")``.
MARGINAL_LEVELS = 1000


def column_quantiles(C, is_categorical, n_levels=MARGINAL_LEVELS):
    """Quantiles of the observed values of each numeric column.

    Parameters
    ----------
    C : ndarray or CSR matrix of shape (n_rows, n_features)
        Rows as codes (NaN on missing cells).
    is_categorical : ndarray of bool of shape (n_features,)
        Categorical columns get a row of NaN.
    n_levels : int
        Levels stored: ``L = min(n_levels, n_rows)``.

    Returns
    -------
    quantiles : ndarray of shape (n_features, L), float64
        The column's quantiles at levels ``(i + 0.5) / L`` by the inverted
        empirical CDF, so each is one of the column's values (with ``L`` equal
        to the number of rows and no missing cell, its sorted values). A
        column without an observed value has a row of NaN.
    """
    n, d = C.shape
    L = max(1, min(int(n_levels), n))
    out = np.full((d, L), np.nan)
    levels = (np.arange(L) + 0.5) / L
    if sp.issparse(C):
        C = sp.csc_matrix(C)
    for j in np.flatnonzero(~np.asarray(is_categorical, dtype=bool)):
        if sp.issparse(C):
            # the stored values, and the implicit zeros by count
            stored = C.data[C.indptr[j] : C.indptr[j + 1]].astype(np.float64)
            n_zeros = n - stored.size
        else:
            stored, n_zeros = np.asarray(C[:, j], dtype=np.float64), 0
        values = np.sort(stored[~np.isnan(stored)])
        m = values.size + n_zeros
        if m:
            # inverted CDF: the smallest value whose empirical CDF reaches p
            pick = np.clip(np.ceil(levels * m).astype(np.intp) - 1, 0, m - 1)
            out[j] = _sorted_with_zeros(values, n_zeros, pick)
    return out


def _sorted_with_zeros(values, n_zeros, pick):
    """Entries ``pick`` of the sorted concatenation of the sorted ``values``
    and ``n_zeros`` zeros, without building it."""
    below = int(np.searchsorted(values, 0.0, side="left"))
    picked = np.zeros(pick.shape)
    low = pick < below
    picked[low] = values[pick[low]]
    high = pick >= below + n_zeros
    picked[high] = values[pick[high] - n_zeros]
    return picked


def match_marginal(values, reference, quantiles, rng):
    """Values mapped monotonically onto the distribution of ``quantiles``.

    Each value's probability under the empirical distribution of
    ``reference`` (draws from the same distribution as ``values``; ties
    split at random, the distributional transform) is mapped through the
    piecewise-linear quantile function through ``quantiles`` (stored by
    :func:`column_quantiles` at levels ``(i + 0.5) / L``). Values keep their
    order, so the joint ranks of several columns mapped so are those of the
    draws. When every quantile is a whole number (counts, ages, amounts in
    whole units), the results are rounded to whole numbers.

    Parameters
    ----------
    values, reference : ndarray of shape (n,) and (m,)
    quantiles : ndarray of shape (L,)
        NaN when the column had no observed value: ``values`` are returned.
    rng : numpy.random.Generator
        For the ties.

    Returns
    -------
    mapped : ndarray of shape (n,), float64
    """
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(quantiles).any():
        return values
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    lo = np.searchsorted(ref, values, side="left")
    hi = np.searchsorted(ref, values, side="right")
    u = (lo + (hi - lo) * rng.random(values.shape)) / ref.size
    L = quantiles.size
    t = np.clip(u * L - 0.5, 0, L - 1)
    i0 = np.floor(t).astype(np.intp)
    i1 = np.minimum(i0 + 1, L - 1)
    mapped = quantiles[i0] + (t - i0) * (quantiles[i1] - quantiles[i0])
    if np.all(quantiles == np.round(quantiles)):
        mapped = np.round(mapped)
    return mapped
