"""The seam between ``skvae.dask`` and skvae's private core.

Every use of a private name of the in-memory estimators (``skvae._base``,
``skvae._objectives``, ``skvae._optimizers`` and the three estimator modules)
by ``skvae.dask`` is in this module, so that a change of the core has one
place to be mirrored. The functions here run on the client (set-up, the
stopping rule, the fitted statistics) or on the workers (validating and
scaling a block, a piece of local Adam, a validation score); the workers
receive the *model* (an in-memory estimator carrying the fitted scaling and
architecture) once per fit and the training *state* (parameters and Adam
moments) at every round.

Private names used (for the lead): ``_check_X``, ``_uses_scaling``,
``_likelihood``, ``_new_architecture``, ``_architecture``,
``_architecture_``, ``Architecture.init_params``, ``_objective``,
``_training_options``, ``_noise_shape``, ``_batch_size``, ``_epochs``,
``_warn_at_max_iter``, ``_scaled_columns``, ``_fast_path``,
``_default_likelihood``, ``_layout_``, ``_scale``, ``_record_epoch``,
``_update_no_improvement``, ``_encode``, ``_log_likelihood``,
``_score_seed``, ``_optimizer_state``, ``_no_improvement_count``,
``skvae._columns._ROBUST_MIN_STD_FRACTION``, ``skvae._optimizers.Adam`` (its
``m``, ``v``, ``t`` and state format).
"""

import threading

import numpy as np
from sklearn.utils import check_random_state

from .._base import TrainingDivergedError
from .._columns import _ROBUST_MIN_STD_FRACTION
from .._optimizers import Adam
from ._stats import finish_moments, quantiles_from_summary

# -- set-up on the client ------------------------------------------------------


def check_head(model, head):
    """Validate the first rows, setting ``n_features_in_`` (and names).

    Returns the working dtype (float32 or float64).

    Training on dask collections takes numeric columns without missing
    values (categorical columns and NaN are validated, then refused here).
    """
    C = model._check_X(head, reset=True)
    # no missingness indicators: the rows are fully observed (checked blockwise)
    model._layout_["n_indicators"] = 0
    if not model._fast_path():
        raise NotImplementedError(
            "skvae.dask trains on numeric columns with one likelihood and "
            "no missing values; fit the in-memory estimator on a sample for "
            "categorical columns or missing values."
        )
    return C.dtype


def validated(model, block):
    """A block through the in-memory estimator's own input checks."""
    X = model._check_X(block, reset=False)
    if hasattr(X, "toarray"):
        X = X.toarray()
    if np.isnan(X).any():
        raise ValueError(
            "Input contains NaN: skvae.dask trains on rows without missing "
            "values (fit the in-memory estimator for tables with missing cells)."
        )
    return X


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
    n, mean, scale = finish_moments(moments)
    n_features = mean.shape[0]
    if uses_scaling(model):
        if model.standardize == "robust":
            q1, med, q3 = quantiles_from_summary(quantile_summary, [0.25, 0.5, 0.75])
            iqr = (q3 - q1) / 1.349
            mean = med
            scale = np.maximum(iqr, _ROBUST_MIN_STD_FRACTION * scale)
        tiny = scale < 10 * np.finfo(dtype).eps * np.maximum(np.abs(mean), 1.0)
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
    model._architecture_ = model._new_architecture(n_rows, n_features)
    model.params_ = model._architecture().init_params(rng, dtype)
    model.loss_curve_ = []
    model.reconstruction_curve_ = []
    model.kl_curve_ = []
    model.best_loss_ = np.inf
    model.validation_scores_ = [] if model.early_stopping else None
    model.best_validation_score_ = -np.inf if model.early_stopping else None
    model.n_iter_ = 0
    model._no_improvement_count = 0
    model._optimizer_state = None
    model._score_seed = int(rng.randint(np.iinfo(np.int32).max))
    model._curve_shift = _log_scale_sum(model)
    return np.random.default_rng(rng.randint(np.iinfo(np.int32).max))


def _log_scale_sum(model):
    """log |det| of the scaling: loss curves and scores in input units."""
    if model._default_likelihood() == "squared_error":
        return 0.0
    return float(np.sum(np.log(model.input_scale_)))


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
    """Validate, standardise and shuffle the rows of a block."""
    X = validated(model, block)
    Xs = model._scale(X)
    if Xs is X:
        Xs = np.array(X, copy=True)
    if seed is not None:
        perm = np.random.default_rng(seed).permutation(Xs.shape[0])
        Xs = np.take(Xs, perm, axis=0)
    return np.ascontiguousarray(Xs)


def train_piece(model, token, state, Xs, start, stop, seed, epoch, lr_scale=1.0):
    """Adam over the rows ``Xs[start:stop]``, from ``state``.

    Returns the new parameters and (unscaled) moments, the step count and
    the sums over rows of the loss and its two parts.
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
    dtype = Xs.dtype
    gen = np.random.default_rng(seed)
    size = batch_size(model, Xs.shape[0])
    total = recon = kl = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for begin in range(start, stop, size):
            xb = Xs[begin : min(begin + size, stop)]
            eb = None
            if is_vae:
                eb = gen.standard_normal(model._noise_shape(xb.shape[0]), dtype=dtype)
            loss, grads = objective.loss_and_grads(theta, xb, eb)
            if not np.isfinite(loss):
                raise TrainingDivergedError(
                    f"Training diverged: the loss became {loss} in epoch "
                    f"{epoch + 1}. Lower learning_rate_init (now "
                    f"{model.learning_rate_init}), raise alpha, or check the "
                    "data for extreme values."
                )
            optimizer.update(theta, grads)
            n = xb.shape[0]
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
    """Sum over the rows of a held-out block of the ELBO's two parts.

    The noise is fixed per block (``seed``), one draw per row, as the
    in-memory estimator's validation noise.
    """
    objective = _objective(model, token)
    k = model._architecture_["latent_dim"]
    eps = np.random.default_rng(seed).standard_normal((Xs.shape[0], k), dtype=Xs.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        objective(state["params"], Xs, eps, need_grad=False)
    n = Xs.shape[0]
    return np.array(
        [objective.parts[0] * n, objective.parts[1] * n, n], dtype=np.float64
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
    recon, kl, n = sums
    score = -(recon + kl) / n
    score -= _log_scale_sum(model)
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


def offset_percentiles(model):
    """Percentiles of the training scores that ``offset_`` is made of (and
    their median, last)."""
    if model.contamination == "auto":
        return [25.0, 75.0, 50.0]
    return [100.0 * model.contamination, 50.0]


def set_offset(model, values):
    """``offset_`` from the percentiles of :func:`offset_percentiles`."""
    if model.contamination == "auto":
        q1, q3, _ = values
        model.offset_ = float(q1 - 1.5 * (q3 - q1))
    else:
        model.offset_ = float(values[0])
    # the typical score per cell, for rows with missing cells at predict time
    # (the in-memory detector uses the mean; the median is what is at hand)
    model._per_cell_score = float(values[-1]) / model.n_features_in_
