"""The seam between ``skvae.dask`` and skvae's private core.

Every use of a private name of the in-memory estimators (``skvae._base``,
``skvae._objectives``, ``skvae._optimizers`` and the estimator modules)
by ``skvae.dask`` is in this module, so that a change of the core has one
place to be mirrored. The functions here run on the client (set-up, the
stopping rule, the fitted statistics) or on the workers (validating and
scaling a block, a piece of local Adam, a validation score); the workers
receive the *model* (an in-memory estimator carrying the fitted scaling and
architecture) once per fit and the training *state* (parameters and Adam
moments) at every round.

Private names used (for the lead): ``_check_X``, ``_uses_scaling``,
``_likelihood``, ``_start_training``, ``_architecture``,
``_architecture_``, ``_objective``,
``_training_options``, ``_noise_shape``, ``_batch_size``, ``_epochs``,
``_warn_at_max_iter``, ``_scaled_columns``, ``_default_likelihood``,
``_layout_`` (its ``is_categorical``, ``n_indicators``), ``_to_batch``,
``_log_scale``, ``_record_epoch``, ``_update_no_improvement``, ``_encode``,
``_log_likelihood``, ``_score_seed``, ``_optimizer_state``,
``_no_improvement_count``, ``_from_internal``, the detector's
``_missing_adjusted`` and ``_per_cell_score``, the imputer's
``_placeholder_to_nan``, ``_empty`` and ``_n_calls``; ``skvae._columns``
(``column_levels``, ``merge_levels``, ``with_levels``, ``hide_inputs``,
``has_raw_groups``, ``_ROBUST_MIN_STD_FRACTION``),
``skvae._objectives.Batch`` and ``skvae._optimizers.Adam`` (its ``m``,
``v``, ``t`` and state format).
"""

import copy
import threading

import numpy as np
from sklearn.impute import MissingIndicator
from sklearn.utils import check_random_state

from .. import _anomaly, _columns, _vae
from .._base import TrainingDivergedError
from .._columns import _ROBUST_MIN_STD_FRACTION
from .._objectives import Batch
from .._optimizers import Adam
from ._stats import (
    block_moments,
    block_quantiles,
    finish_moments,
    merge_moments,
    merge_quantiles,
    quantiles_from_summary,
)

# -- set-up on the client ------------------------------------------------------


def check_head(model, head):
    """Validate the first rows, setting ``n_features_in_`` (and names), the
    columns' types and likelihoods (their levels come from all the blocks:
    :func:`block_summary`, :func:`set_columns`).

    Returns the working dtype (float32 or float64).
    """
    C = model._check_X(as_missing(model, head), reset=True)
    return C.dtype


#: Rows (at most, chosen at random) from which ``fit`` learns the statistics
#: of the likelihoods on raw values and the detector's ``likelihood="auto"``
#: choice: all the rows of smaller data, so that these come out as in memory;
#: fewer for wide tables, so that the client holds at most RAW_CELLS values.
RAW_ROWS = 100_000
RAW_CELLS = 10_000_000


def needs_raw_rows(model, sparse):
    """Whether ``fit`` gathers rows for :func:`set_raw_columns`: likelihoods
    on raw values (whose statistics the head alone gave), or
    ``likelihood="auto"`` on dense input, which picks them from the data."""
    spec = getattr(model, "likelihood", None)
    auto = isinstance(spec, str) and spec == "auto" and not sparse
    return auto or _columns.has_raw_groups(model._layout_)


def raw_positions(rows, n_features):
    """Per block, the rows :func:`set_raw_columns` learns from."""
    limit = min(RAW_ROWS, max(RAW_CELLS // max(n_features, 1), 1000))
    return row_positions(0, rows, limit)


def set_raw_columns(model, parts, summary, dtype, sparse):
    """The columns' likelihoods (``likelihood="auto"``) and the raw-value
    groups' statistics from the gathered rows (codes), as the in-memory
    ``fit`` learns them from its rows; then the scaling of the columns that
    stay on standardised values (:func:`set_columns`)."""
    C = np.concatenate(parts) if parts else np.empty((0, model.n_features_in_))
    if not sparse:  # sparse input keeps its likelihoods, as in memory
        layout = _columns.with_likelihoods(
            model._layout_,
            model._likelihood_for(C, model._layout_["is_categorical"]),
            model._default_likelihood(),
            getattr(model, "feature_names_in_", None),
        )
        model._layout_ = layout
        model.feature_likelihoods_ = np.asarray(layout["likelihoods"], dtype=object)
    _columns.fit_raw_options(C, model._layout_)
    return set_columns(model, summary, dtype)


def as_missing(model, block):
    """The imputer's ``missing_values`` placeholder turned into NaN."""
    placeholder = getattr(model, "_placeholder_to_nan", None)
    return block if placeholder is None else placeholder(block)


def validated(model, block):
    """A block through the in-memory estimator's own input checks: codes
    (NaN on missing cells, level indices in categorical columns)."""
    X = model._check_X(as_missing(model, block), reset=False)
    if hasattr(X, "toarray"):
        X = X.toarray()
    return X


def block_summary(model, block, robust):
    """What one pass learns from a block: the levels of its categorical
    columns, the moments (and quantile summaries) of every column over its
    observed cells, and its rows.

    The block is validated as in memory; its categorical columns are coded
    with its own levels here (all the blocks' levels are known only after
    the pass), which matters to no statistic: categorical columns are not
    scaled.
    """
    block = as_missing(model, block)
    is_cat = model._layout_["is_categorical"]
    levels = None
    local = model
    if is_cat.any():
        levels = _columns.column_levels(block, is_cat)
        local = copy.copy(model)
        local._layout_ = _columns.with_levels(model._layout_, levels)
    if block.shape[0] == 0:
        C = np.empty((0, model.n_features_in_))
    else:
        C = validated(local, block)
    return {
        "moments": block_moments(C),
        "quantiles": block_quantiles(C) if robust else None,
        "levels": levels,
        "n": C.shape[0],
    }


def merge_summaries(a, b):
    """Union of two :func:`block_summary` results."""
    return {
        "moments": merge_moments(a["moments"], b["moments"]),
        "quantiles": None
        if a["quantiles"] is None
        else merge_quantiles(a["quantiles"], b["quantiles"]),
        "levels": None
        if a["levels"] is None
        else _columns.merge_levels(a["levels"], b["levels"]),
        "n": a["n"] + b["n"],
    }


def set_columns(model, summary, dtype):
    """The fitted columns from the merged summaries of all the blocks.

    Levels (``categories_``), missingness indicators (when any training
    cell is missing, or ``mask_rate`` hides cells, as the in-memory
    ``_fit``), the scaling statistics, and the share of observed cells of
    each column (for the loss curves' units).
    """
    layout = model._layout_
    if summary["levels"] is not None:
        layout = _columns.with_levels(layout, summary["levels"])
        model._layout_ = layout
        model.categories_ = [c.copy() for c in layout["categories"]]
    n_obs = summary["moments"][0]
    n_rows = summary["n"]
    has_missing = bool(np.any(n_obs < n_rows))
    has_missing = has_missing or model._training_options()["mask_rate"] > 0
    n_cat = int(np.sum(layout["is_categorical"]))
    layout["n_indicators"] = (model.n_features_in_ - n_cat) if has_missing else 0
    set_scaling(model, summary["moments"], summary["quantiles"], dtype)
    model._observed_share = n_obs / max(n_rows, 1)
    return n_obs


def uses_scaling(model):
    return bool(model.standardize) and bool(model._scaled_columns().any())


def likelihood(model):
    return model._default_likelihood()


def set_scaling(model, moments, quantile_summary, dtype):
    """``input_mean_`` and ``input_scale_`` from the merged block statistics.

    The same rules as ``BaseAutoencoder._fit_scaling``: mean and standard
    deviation, or (``"robust"``) the median and the normal-consistent
    interquartile range kept above a share of the standard deviation; nearly
    constant features are left unscaled.
    """
    _, mean, scale = finish_moments(moments)
    n_features = mean.shape[0]
    if uses_scaling(model):
        if model.standardize == "robust":
            q1, med, q3 = quantiles_from_summary(quantile_summary, [0.25, 0.5, 0.75])
            iqr = (q3 - q1) / 1.349
            mean = med
            scale = np.maximum(iqr, _ROBUST_MIN_STD_FRACTION * scale)
        tiny = ~(scale >= 10 * np.finfo(dtype).eps * np.maximum(np.abs(mean), 1.0))
        scale = scale.copy()
        scale[tiny] = 1.0
    else:
        mean = np.zeros(n_features)
        scale = np.ones(n_features)
    # columns whose likelihood works on raw values (Bernoulli) stay unscaled
    scaled = model._scaled_columns()
    model.input_mean_ = np.where(scaled, mean, 0.0)
    model.input_scale_ = np.where(scaled, scale, 1.0)


def start_training(model, n_rows, n_features, dtype):
    """Fresh fitted state, as the in-memory ``fit`` sets it.

    Returns the generator that the training draws its seeds from. The
    initial parameters are those of the in-memory estimator with the same
    ``random_state``.
    """
    rng = check_random_state(model.random_state)
    model._start_training(rng, n_rows, n_features, dtype)
    model._curve_shift = _mean_log_scale(model)
    return np.random.default_rng(rng.randint(np.iinfo(np.int32).max))


def _mean_log_scale(model):
    """Mean over the rows of log |det| of the scaling on their observed
    cells: loss curves in input units (the in-memory ``_mean_log_scale``,
    over all the rows rather than the training ones)."""
    if model._default_likelihood() == "squared_error":
        return 0.0
    share = getattr(model, "_observed_share", None)
    log_scale = np.log(model.input_scale_)
    if share is None or np.all(share == 1):
        return float(np.sum(log_scale))
    return float(share @ log_scale)


def batch_size(model, n_rows):
    return model._batch_size(n_rows)


def n_epochs(model, n_rows):
    return model._epochs(n_rows)


def warn_at_max_iter(model):
    return model._warn_at_max_iter()


def initial_state(model):
    """Parameters and fresh Adam moments, as plain arrays."""
    theta = model.params_.copy()
    return {
        "params": theta,
        "moments": np.zeros((2, theta.size), dtype=theta.dtype),
        "t": 0,
    }


# -- on the workers ---------------------------------------------------------

_LOCAL = threading.local()


def _objective(model, token):
    """One objective (it keeps work buffers) per worker thread and fit."""
    cache = getattr(_LOCAL, "cache", None)
    if cache is None or cache[0] != token:
        cache = (token, model._objective())
        _LOCAL.cache = cache
    return cache[1]


def prepare_block(model, block, seed):
    """Validate, encode and shuffle the rows of a block.

    Returns what the in-memory training loop trains on: standardised rows
    (numeric columns, one likelihood, no missing cell in the training
    data), else a :class:`skvae._objectives.Batch` (encoder inputs with
    one-hot levels and missingness indicators, targets, mask).
    """
    X = validated(model, block)
    data = model._to_batch(X)
    if data is X or data is block:
        data = np.array(X, copy=True)
    if seed is not None:
        perm = np.random.default_rng(seed).permutation(_n_rows(data))
        data = _take(data, perm)
    if isinstance(data, Batch):
        return data
    return np.ascontiguousarray(data)


def _n_rows(data):
    return data.targets.shape[0] if isinstance(data, Batch) else data.shape[0]


def _dtype(data):
    return data.targets.dtype if isinstance(data, Batch) else data.dtype


def _take(data, rows):
    """Rows ``rows`` (indices or a slice) of an array or a Batch."""
    if not isinstance(data, Batch):
        return data[rows]
    if data.targets is data.inputs:
        part = data.inputs[rows]
        return Batch(part, part, None if data.mask is None else data.mask[rows])
    return data.rows(rows)


def _hidden(model, xb, gen, mask_rate, n_features):
    """``xb`` with a share ``mask_rate`` of its cells hidden from the encoder
    (the in-memory ``mask_rate``; the likelihood still scores them)."""
    n = xb.targets.shape[0]
    hide = gen.random((n, n_features)) < mask_rate
    inputs = np.array(xb.inputs, copy=True)
    _columns.hide_inputs(inputs, hide, model._layout_)
    return Batch(inputs, xb.targets, xb.mask)


def train_piece(model, token, state, Xs, start, stop, seed, epoch, lr_scale=1.0):
    """Adam over the rows ``Xs[start:stop]``, from ``state``.

    ``Xs`` is a prepared block (:func:`prepare_block`). Returns the new
    parameters and (unscaled) moments, the step count and the sums over
    rows of the loss and its two parts.
    """
    objective = _objective(model, token)
    opts = model._training_options()
    beta = opts["beta"]
    if opts["kl_warmup"]:
        beta = beta * min(1.0, (epoch + 1) / opts["kl_warmup"])
    objective.beta = beta
    theta = state["params"].copy()
    optimizer = Adam(
        theta,
        model.learning_rate_init * lr_scale,
        state={"moments": state["moments"].copy(), "t": state["t"], "t0": state["t"]},
    )
    is_vae = objective.arch.is_vae
    n_features = objective.arch.n_features
    mask_rate = opts["mask_rate"] if isinstance(Xs, Batch) else 0.0
    dtype = _dtype(Xs)
    gen = np.random.default_rng(seed)
    size = batch_size(model, _n_rows(Xs))
    total = recon = kl = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for begin in range(start, stop, size):
            xb = _take(Xs, slice(begin, min(begin + size, stop)))
            n = _n_rows(xb)
            eb = None
            if is_vae:
                eb = gen.standard_normal(model._noise_shape(n), dtype=dtype)
            if mask_rate:
                xb = _hidden(model, xb, gen, mask_rate, n_features)
            loss, grads = objective.loss_and_grads(theta, xb, eb)
            if not np.isfinite(loss):
                raise TrainingDivergedError(
                    f"Training diverged: the loss became {loss} in epoch "
                    f"{epoch + 1}. Lower learning_rate_init (now "
                    f"{model.learning_rate_init}), raise alpha, or check the "
                    "data for extreme values."
                )
            optimizer.update(theta, grads)
            total += loss * n
            recon += objective.parts[0] * n
            kl += objective.parts[1] * n
    return {
        "params": theta,
        "moments": np.stack([optimizer.m, optimizer.v]),
        "t": optimizer.t,
        "sums": np.array([total, recon, kl, stop - start], dtype=np.float64),
    }


def validation_sums(model, token, state, Xs, seed):
    """Sums over the rows of a held-out block of the ELBO's two parts and of
    the scaling's log-determinant on their observed cells.

    The noise is fixed per block (``seed``), one draw per row, as the
    in-memory estimator's validation noise.
    """
    objective = _objective(model, token)
    k = model._architecture_["latent_dim"]
    n = _n_rows(Xs)
    eps = np.random.default_rng(seed).standard_normal((n, k), dtype=_dtype(Xs))
    with np.errstate(over="ignore", invalid="ignore"):
        objective(state["params"], Xs, eps, need_grad=False)
    log_scale = 0.0
    if model._default_likelihood() != "squared_error":
        log_scale = float(np.sum(model._log_scale(Xs) * np.ones(n)))
    return np.array(
        [objective.parts[0] * n, objective.parts[1] * n, n, log_scale],
        dtype=np.float64,
    )


def encode(model, block):
    """Posterior means (codes) of a block, in float64."""
    return model._encode(validated(model, block)).astype(np.float64)


# -- the training loop's bookkeeping on the client ----------------------------


def record_epoch(model, sums):
    """Per-epoch curves from the summed training losses of an epoch."""
    total, recon, kl, n = sums
    model.n_iter_ += 1
    model._record_epoch(total / n, recon / n, kl / n)


def validation_score(model, sums):
    """Held-out score per row in the units of ``score_samples``, recorded."""
    recon, kl, n, log_scale = sums
    score = -(recon + kl + log_scale) / n
    model.validation_scores_.append(score)
    return score


def update_no_improvement(model, val_score):
    """The in-memory stopping rule; returns whether this epoch is the best."""
    return model._update_no_improvement(val_score)


def should_stop(model):
    return model._no_improvement_count > model.n_iter_no_change


def finish_training(model, state, best_params):
    """Write the final (or best) parameters and the Adam state."""
    model.params_ = (best_params if best_params is not None else state["params"]).copy()
    model._optimizer_state = {
        "moments": np.ascontiguousarray(state["moments"]),
        "t": int(state["t"]),
        "t0": int(state["t"]),
    }


# -- fitted statistics after training (the in-memory ``_after_fit``) ----------


def block_latent_moments(model, block):
    """``(n, mean, scatter)`` of the codes (posterior means) of a block."""
    if block.shape[0] == 0:
        k = model._architecture_["latent_dim"]
        return 0, np.zeros(k), np.zeros((k, k))
    Z = encode(model, block)
    n = Z.shape[0]
    mean = Z.mean(axis=0)
    dev = Z - mean
    return n, mean, dev.T @ dev


def merge_latent_moments(a, b):
    """Union of two :func:`block_latent_moments` (Chan et al.'s update)."""
    na, ma, sa = a
    nb, mb, sb = b
    if na == 0:
        return b
    if nb == 0:
        return a
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), sa + sb + np.outer(delta, delta) * (na * nb / n)


def set_latent_statistics(model, moments):
    """What ``_after_fit`` records about the codes of the training rows.

    The autoencoder keeps their mean and covariance (for ``sample``), the
    VAEs the variance of the posterior means and the active units.
    """
    n, mean, scatter = moments
    cov = np.atleast_2d(scatter / n)
    if model._default_likelihood() == "squared_error":
        model.latent_mean_ = mean
        model.latent_covariance_ = (cov + cov.T) / 2
    else:
        model.latent_mean_variance_ = np.diag(cov).copy()
        model.active_units_ = np.flatnonzero(model.latent_mean_variance_ > 0.01)


def refits_variances(model):
    """Whether ``fit`` ends with the detector's closed-form variance refit."""
    return hasattr(model, "_refit_variances") and _anomaly._REFIT_VARIANCE


def row_positions(seed, rows, limit):
    """Per block, the positions of the rows that ``row_subsample`` picks
    from the concatenation of the blocks (all of them, or ``limit``);
    ``rows`` holds the blocks' numbers of rows."""
    n = int(sum(rows))
    picked = _vae.row_subsample(n, limit, seed)
    if picked is None:
        picked = np.arange(n)
    starts = np.concatenate([[0], np.cumsum(rows)])
    return [
        picked[(picked >= a) & (picked < b)] - a
        for a, b in zip(starts[:-1], starts[1:])
    ]


def refit_positions(model, rows):
    """For the detector's variance refit: the rows the in-memory refit picks
    (all, or ``_REFIT_ROWS`` chosen with the model's score seed)."""
    return row_positions(model._score_seed, rows, _anomaly._REFIT_ROWS)


def stores_aggregate(model):
    """Whether ``fit`` stores the aggregate posterior (the VAEs)."""
    return hasattr(model, "_posteriors")


def aggregate_positions(model, rows):
    """The training rows whose posteriors make the aggregate posterior, as
    in memory (all, or ``AGGREGATE_ROWS`` chosen with the score seed)."""
    return row_positions(model._score_seed, rows, _vae.AGGREGATE_ROWS)


def block_posteriors(model, block, positions):
    """Encoder posteriors ``(mean, var)`` of the rows ``positions`` of a block."""
    return model._posteriors(validated(model, block)[positions])


def set_aggregate(model, parts):
    """``latent_posterior_mean_`` and ``latent_posterior_var_`` from the
    gathered :func:`block_posteriors`."""
    model.latent_posterior_mean_ = np.concatenate([m for m, _ in parts])
    model.latent_posterior_var_ = np.concatenate([v for _, v in parts])


def quantile_positions(model, rows):
    """The training rows whose values make ``feature_quantiles_``, as in
    memory (all, or ``MARGINAL_ROWS`` chosen with the score seed)."""
    return row_positions(model._score_seed, rows, _vae.MARGINAL_ROWS)


def set_quantiles(model, parts):
    """``feature_quantiles_`` from the gathered rows (codes)."""
    model.feature_quantiles_ = _columns.column_quantiles(
        np.concatenate(parts), model._layout_["is_categorical"]
    )


def refit_rows(model, block, positions):
    """Codes of the rows ``positions`` of a block."""
    return validated(model, block)[positions]


def refit_variances(model, parts):
    """The detector's closed-form variance refit on the gathered rows."""
    parts = [p for p in parts if p.shape[0]]
    if parts:
        model._refit_variances(np.concatenate(parts))


def block_raw_scores(model, block):
    """``log p(x_obs)`` of the rows of a block, and their observed cells."""
    if block.shape[0] == 0:
        dtype = model.params_.dtype
        return np.empty(0, dtype=dtype), np.empty(0, dtype=np.intp)
    C = validated(model, block)
    raw = model._log_likelihood(C, model.n_importance_samples)
    return raw, np.sum(~np.isnan(C), axis=1)


def per_cell_sums(raw_scores):
    """Sum over rows of ``log p(x_obs)`` per observed cell, and the rows."""
    raw, n_obs = raw_scores
    return np.array([np.sum(raw / np.maximum(n_obs, 1)), raw.shape[0]])


def set_per_cell_score(model, sums):
    """The training rows' mean log-likelihood per observed cell (what the
    detector scores a row without observed cells with)."""
    total, n = sums
    model._per_cell_score = float(total / max(n, 1))


def block_scores(model, raw_scores):
    """The detector's scores from :func:`block_raw_scores` (its
    ``_missing_adjusted`` rule for rows with missing cells)."""
    raw, n_obs = raw_scores
    d = model.n_features_in_
    if raw.shape[0] == 0 or np.all(n_obs == d):
        return raw
    # the rule reads only each row's count of missing cells
    holes = np.where(np.arange(d) < n_obs[:, None], 0.0, np.nan)
    return model._missing_adjusted(raw, holes)


def offset_percentiles(model):
    """Percentiles of the training scores that ``offset_`` is made of."""
    if model.contamination == "auto":
        return [25.0, 75.0]
    return [100.0 * model.contamination]


def set_offset(model, values):
    """``offset_`` from the percentiles of :func:`offset_percentiles`."""
    if model.contamination == "auto":
        q1, q3 = values
        model.offset_ = float(q1 - 1.5 * (q3 - q1))
    else:
        model.offset_ = float(values[0])


def set_missing_features(model, n_obs, n_rows):
    """The imputer's empty features and missing indicator, from the count
    of observed cells of each column over all the training rows.

    ``MissingIndicator`` is fitted on one row that is missing exactly in
    the columns with a missing training cell: it keeps those columns, as
    when fitted on all the rows.
    """
    model._empty = np.asarray(n_obs == 0)
    model.indicator_ = None
    if model.add_indicator:
        model.indicator_ = MissingIndicator(error_on_new=False)
        model.indicator_.fit(np.where(n_obs < n_rows, np.nan, 0.0)[None, :])
    model._n_calls = 0


def impute(model, block, call, index):
    """The imputer's in-memory ``transform`` of a block; with
    ``sample_posterior``, its draws from a generator of its own for block
    ``index`` of dask call ``call`` (the in-memory imputer seeds call ``c``
    with ``(seed, c)``; here the call counter is set from ``(seed, call,
    index)``)."""
    if model.sample_posterior:
        model = copy.copy(model)
        state = np.random.SeedSequence([model._score_seed, call, index])
        high, low = state.generate_state(2)
        model._n_calls = int(high) << 32 | int(low)
    return model.transform(block)


def empty_rows(model):
    """No rows in the user's columns: an empty DataFrame with the training
    columns and dtypes (or an empty array)."""
    dtype = model.params_.dtype
    return model._from_internal(np.empty((0, model.n_features_in_), dtype=dtype))
