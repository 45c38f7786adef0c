"""Decoder likelihoods p(x | z): negative log-density per row and gradients.

Each likelihood maps the decoder's linear output to a per-row negative
log-likelihood in nats (constants included, so the values are real
log-densities) and, on request, the gradient of the *summed* negative
log-likelihood with respect to the decoder output and to any likelihood
parameters. The objectives scale these by ``1 / n_rows``.

Gaussian variances are parameterised as ``softplus(r) + floor``: the softplus
keeps them positive with a gradient everywhere, and the floor keeps the
density bounded, so a variance cannot collapse onto a perfectly reconstructed
feature and send the likelihood to infinity.
"""

import warnings

import numpy as np
from scipy.special import gammaln

from ._network import ones

LOG_2PI = float(np.log(2.0 * np.pi))

#: Initial raw value r with softplus(r) == 1, i.e. unit variance.
RAW_UNIT_VARIANCE = float(np.log(np.expm1(1.0)))


def softplus_sigmoid(r, need_sigmoid=True):
    """``softplus(r) = log(1 + exp(r))`` and ``sigmoid(r)``, sharing one exp.

    Both come from ``t = 1 + exp(-|r|)``, which lies in (1, 2], so nothing
    can overflow: ``softplus(r) = max(r, 0) + log(t)`` and
    ``sigmoid(r) = 1/2 + sign(r) (1/t - 1/2)``. NumPy's ``exp`` and ``log`` are
    vectorised, which makes this two to three times faster on a float32 batch
    than ``np.logaddexp`` plus ``scipy.special.expit``; ``log(t)`` is within
    one rounding error of ``log1p(exp(-|r|))``. Every step is a plain
    arithmetic ufunc: ``max(r, 0)`` as ``(r + |r|) / 2`` and the sign through
    ``copysign`` run several times faster than ``np.maximum`` and a masked copy.
    """
    a = np.abs(r)
    t = np.negative(a)
    np.exp(t, out=t)
    t += 1
    sp = np.log(t)
    a += r
    a *= r.dtype.type(0.5)  # max(r, 0)
    sp += a
    if not need_sigmoid:
        return sp, None
    return sp, _sigmoid_from(t, r)


def _sigmoid_from(t, r):
    """``sigmoid(r)`` from ``t = 1 + exp(-|r|)``, in place in ``t``."""
    half = r.dtype.type(0.5)
    np.reciprocal(t, out=t)  # sigmoid(|r|), in [1/2, 1)
    t -= half  # exact in [0, 1/2)
    np.copysign(t, r, out=t)
    t += half
    return t


def sigmoid(r):
    """``1 / (1 + exp(-r))`` without overflow, from ``t = 1 + exp(-|r|)``."""
    t = np.abs(r)
    np.negative(t, out=t)
    np.exp(t, out=t)
    t += 1
    return _sigmoid_from(t, r)


def softplus(r):
    """``log(1 + exp(r))`` without overflow."""
    return softplus_sigmoid(r, need_sigmoid=False)[0]


def variance_from_raw(r, floor):
    """Decoder variance ``softplus(r) + floor``."""
    return softplus(r) + r.dtype.type(floor)


def gaussian_nll(X, mean, raw_var, floor, need_grad=True, mask=None):
    """Negative log-density of ``X`` under ``N(mean, softplus(raw_var) + floor)``.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        Data.
    mean : ndarray of shape (n_rows, n_features) or (K, n_rows, n_features)
        Decoder mean (with a leading axis of K draws, ``X`` is broadcast and
        ``nll`` has shape ``(K, n_rows)``).
    raw_var : ndarray broadcastable to ``X.shape``
        Unconstrained variance parameter: shape ``(n_features,)`` (per feature),
        ``(1,)`` (shared) or ``(n_rows, n_features)`` (per row).
    floor : float
        Lower bound of the variance.
    need_grad : bool, default=True
        Whether to compute the gradients.
    mask : ndarray of shape (n_rows, n_features) or None, default=None
        1 on observed cells and 0 on missing ones (in the dtype of ``X``):
        the density is that of the observed cells, and missing cells get no
        gradient. None means every cell is observed.

    Returns
    -------
    nll : ndarray of shape (n_rows,)
        ``-log p(x | z)`` per row, in nats.
    d_mean : ndarray of shape (n_rows, n_features) or None
        Gradient of ``nll.sum()`` with respect to ``mean``.
    d_raw : ndarray of shape (n_rows, n_features) or None
        Gradient of ``nll.sum()`` with respect to ``raw_var``, element-wise
        (sum it over the broadcast axes for shared parameters).
    """
    dtype = X.dtype.type
    var, sig = softplus_sigmoid(raw_var, need_grad)
    var += dtype(floor)
    inv_var = np.reciprocal(var)
    diff = np.subtract(mean, X)
    d_mean = np.multiply(diff, inv_var)  # (m - x) / v
    sq = np.multiply(diff, d_mean)  # (m - x)^2 / v
    n_features = X.shape[-1]
    log_var = np.log(var)
    if mask is not None:
        el = np.add(sq, log_var)
        el += dtype(LOG_2PI)
        el *= mask
        nll = np.matmul(el, ones(n_features, X.dtype))
        nll *= dtype(0.5)
        if not need_grad:
            return nll, None, None
        d_mean *= mask
        d_raw = np.subtract(1, sq, out=sq)
        d_raw *= inv_var
        sig *= dtype(0.5)
        d_raw *= sig
        d_raw *= mask
        return nll, d_mean, d_raw
    if log_var.ndim >= 2:
        sq_log = np.add(sq, log_var)
        nll = np.matmul(sq_log, ones(n_features, X.dtype))
    else:
        const = float(np.sum(log_var)) * (n_features if log_var.size == 1 else 1)
        nll = np.matmul(sq, ones(n_features, X.dtype))
        nll += dtype(const)
    nll += dtype(n_features * LOG_2PI)
    nll *= dtype(0.5)
    if not need_grad:
        return nll, None, None
    # d nll / d v = (1 - (m - x)^2 / v) / (2 v); d v / d r = sigmoid(r)
    d_raw = np.subtract(1, sq, out=sq)
    d_raw *= inv_var
    sig *= dtype(0.5)
    d_raw *= sig
    return nll, d_mean, d_raw


def bernoulli_nll(X, logits, need_grad=True, mask=None):
    """Negative log-probability of ``X`` in [0, 1] under Bernoulli(sigmoid(logits)).

    For ``x`` strictly between 0 and 1 this is the binary cross-entropy that
    is customary for grey-level images; it is a normalised log-probability
    only for binary ``x``.

    Returns
    -------
    nll : ndarray of shape (n_rows,)
        ``sum_j softplus(l_j) - x_j l_j``.
    d_logits : ndarray of shape (n_rows, n_features) or None
        ``sigmoid(l) - x``.
    """
    el, d_logits = softplus_sigmoid(logits, need_grad)
    el -= X * logits
    if mask is not None:
        el *= mask
    nll = np.matmul(el, ones(X.shape[-1], X.dtype))
    if not need_grad:
        return nll, None
    d_logits -= X
    if mask is not None:
        d_logits *= mask
    return nll, d_logits


def squared_error(X, recon, need_grad=True, mask=None):
    """Mean squared error over features, per row, for the deterministic autoencoder.

    With a ``mask``, the squared errors of the observed cells are summed, not
    averaged: :class:`LikelihoodTable` divides by the number of observed
    cells of each row, over all column groups.

    Returns
    -------
    err : ndarray of shape (n_rows,)
        ``mean_j (x_j - xhat_j)^2``.
    d_recon : ndarray of shape (n_rows, n_features) or None
        Gradient of ``err.sum()`` with respect to ``recon``.
    """
    diff = np.subtract(recon, X)
    if mask is not None:
        diff *= mask
        err = np.einsum("...j,...j->...", diff, diff)
        if not need_grad:
            return err, None
        diff *= X.dtype.type(2.0)
        return err, diff
    n_features = X.shape[-1]
    err = np.einsum("...j,...j->...", diff, diff) / X.dtype.type(n_features)
    if not need_grad:
        return err, None
    diff *= X.dtype.type(2.0 / n_features)
    return err, diff


def _segment_softmax_parts(logits, starts, sizes):
    """Shifted logits, their exponentials and the per-segment sums.

    The columns of ``logits`` are cut into segments (one per categorical
    column) beginning at ``starts``; each segment is shifted by its maximum
    so that ``exp`` cannot overflow.
    """
    peak = np.maximum.reduceat(logits, starts, axis=-1)
    shifted = logits - np.repeat(peak, sizes, axis=-1)
    e = np.exp(shifted)
    total = np.add.reduceat(e, starts, axis=-1)
    return shifted, e, total


def categorical_nll(codes, logits, starts, sizes, need_grad=True, mask=None):
    """Negative log-probability of category codes under per-column softmaxes.

    Parameters
    ----------
    codes : ndarray of shape (..., n_columns)
        Level index of each cell (as floats or integers; any valid index on
        missing cells).
    logits : ndarray of shape (..., sum(sizes))
        Decoder output: the logits of column ``j`` are
        ``logits[..., starts[j] : starts[j] + sizes[j]]``.
    starts, sizes : ndarray of int
        Where each column's logits begin, and how many levels it has.
    need_grad : bool, default=True
        Whether to compute the gradient.
    mask : ndarray of shape (..., n_columns) or None, default=None
        1 on observed cells, 0 on missing ones.

    Returns
    -------
    nll : ndarray of shape (...,)
        ``sum_j logsumexp(l_j) - l_j[code_j]`` over the observed columns.
    d_logits : ndarray like ``logits`` or None
        ``softmax(l_j) - onehot(code_j)`` on observed columns, 0 elsewhere.
    """
    shifted, e, total = _segment_softmax_parts(logits, starts, sizes)
    # flat positions of each cell's level: plain indexing into the
    # contiguous arrays is several times faster than take_along_axis
    lead = logits.shape[:-1]
    index = starts + codes.astype(np.intp)
    if index.shape[:-1] != lead:  # K draws against the same rows
        index = np.broadcast_to(index, (*lead, index.shape[-1]))
    flat = index + _row_offsets(lead, logits.shape[-1])
    el = np.log(total)
    el -= shifted.reshape(-1)[flat]
    if mask is not None:
        el *= mask
    nll = np.matmul(el, ones(el.shape[-1], el.dtype))
    if not need_grad:
        return nll, None
    d = np.divide(e, np.repeat(total, sizes, axis=-1), out=e)
    d.reshape(-1)[flat] -= 1
    if mask is not None:
        d *= np.repeat(mask, sizes, axis=-1)
    return nll, d


_OFFSETS = {}


def _row_offsets(lead, width):
    """``(*lead, 1)`` offsets of each row's first value in a flat array."""
    key = (lead, width)
    out = _OFFSETS.get(key)
    if out is None:
        if len(_OFFSETS) > 64:
            _OFFSETS.clear()
        n = int(np.prod(lead))
        out = (np.arange(n, dtype=np.intp) * width).reshape(*lead, 1)
        out.flags.writeable = False
        _OFFSETS[key] = out
    return out


def segment_softmax(logits, starts, sizes):
    """Probabilities of every level of every categorical column."""
    _, e, total = _segment_softmax_parts(logits, starts, sizes)
    e /= np.repeat(total, sizes, axis=-1)
    return e


def segment_argmax(values, starts, sizes):
    """Index of the largest value within each segment: ``(..., n_columns)``."""
    out = np.empty((*values.shape[:-1], len(starts)), dtype=values.dtype)
    for j, (a, s) in enumerate(zip(starts, sizes)):
        out[..., j] = np.argmax(values[..., a : a + s], axis=-1)
    return out


# -- the likelihood table ------------------------------------------------------
#
# A model's columns are cut into groups, each with one likelihood. Internally
# the columns of a group are contiguous (the table's column order), and so are
# its decoder outputs and its free parameters in the flat vector: a group
# reads and writes slices, never fancy-indexed copies. Adding a likelihood is
# one class here and one entry in LIKELIHOODS.


class Likelihood:
    """One likelihood over a contiguous group of columns.

    Parameters
    ----------
    n_columns : int
        Columns of the group.
    options : dict
        Group-specific settings (variance mode and floor, category sizes).

    Attributes
    ----------
    n_outputs : int
        Decoder outputs the group reads.
    n_params : int
        Free parameters of the group in the flat vector (learned variances).
    scaled : bool
        Whether the group's columns are standardised inside the model (their
        densities then need the log-determinant of the scaling).
    """

    name = ""
    scaled = False

    def __init__(self, n_columns, options=None):
        self.n_columns = int(n_columns)
        self.options = dict(options or {})
        self.n_outputs = self.n_columns
        self.n_params = 0

    def init(self, params, W, bias):
        """Set the group's initial free parameters and last decoder layer
        (its columns ``W`` and biases ``bias``) in place."""

    def nll(self, T, out, params, need_grad, mask, d_out=None):
        """Per-row negative log-likelihood and gradients.

        Returns ``(nll, d_out, d_params)``: ``nll`` of shape ``T.shape[:-1]``;
        ``d_out`` like ``out`` (gradient of the summed nll), or None;
        ``d_params`` per row, of shape ``(..., n_params)``, or None.
        ``d_out``, when given, is a buffer like ``out`` that a group may
        write its output gradient into.
        """
        raise NotImplementedError

    def mean(self, out, params):
        """The value to report for each cell: the mean, or the mode of a
        categorical column. Shape ``(..., n_columns)``."""
        raise NotImplementedError

    def sample(self, out, params, gen):
        """One draw from p(x | z) for each row, respecting the support."""
        raise NotImplementedError

    def expectation(self, out, params, weights):
        """The best single value for each cell under a mixture over K draws:
        ``out`` of shape ``(K, ..., n_outputs)`` and normalised ``weights``
        of shape ``(K, ..., 1)``. The weighted mean of the draws' means;
        the most probable level for categorical columns."""
        return np.sum(weights * self.mean(out, params), axis=0)


class _LearnedVariance:
    """A learned decoder variance ``softplus(r) + floor``: one per column,
    one shared, or one per row and cell from a second decoder head (the
    estimators' ``decoder_variance``), for likelihoods that have one."""

    def _setup_variance(self):
        self.floor = float(self.options.get("floor", 1e-3))
        self.variance = self.options.get("variance", "feature")
        if self.variance == "row":
            self.n_outputs = 2 * self.n_columns
        self.n_params = {"feature": self.n_columns, "shared": 1, "row": 0}[
            self.variance
        ]

    def init(self, params, W, bias):
        params[:] = RAW_UNIT_VARIANCE
        if self.variance == "row":
            # start the variance head at unit variance with small weights
            W[:, self.n_columns :] *= 0.1
            bias[self.n_columns :] = RAW_UNIT_VARIANCE

    def _split(self, out, params):
        """Decoder means and raw variances of the group's cells."""
        if self.variance == "row":
            return out[..., : self.n_columns], out[..., self.n_columns :]
        return out, params


class Gaussian(_LearnedVariance, Likelihood):
    """Normal density with a learned variance (per feature, shared or per row)."""

    name = "gaussian"
    scaled = True

    def __init__(self, n_columns, options=None):
        super().__init__(n_columns, options)
        self._setup_variance()

    def _raw(self, out, params):
        return self._split(out, params)[1]

    def _mean_view(self, out):
        return self._split(out, None)[0]

    def nll(self, T, out, params, need_grad, mask, d_out=None):
        nll, d_mean, d_raw = gaussian_nll(
            T, self._mean_view(out), self._raw(out, params), self.floor, need_grad, mask
        )
        if not need_grad:
            return nll, None, None
        if self.variance == "shared":
            return nll, d_mean, np.sum(d_raw, axis=-1, keepdims=True)
        if self.variance == "feature":
            return nll, d_mean, d_raw
        # the variance head is the second half of the group's outputs
        if d_out is None:
            return nll, np.concatenate([d_mean, d_raw], axis=-1), None
        n = self.n_columns
        d_out[..., :n] = d_mean
        d_out[..., n:] = d_raw
        return nll, d_out, None

    def variance_of(self, out, params):
        return variance_from_raw(
            np.broadcast_to(self._raw(out, params), self._mean_view(out).shape),
            self.floor,
        )

    def mean(self, out, params):
        return np.array(self._mean_view(out))

    def sample(self, out, params, gen):
        mean = self._mean_view(out)
        std = np.sqrt(self.variance_of(out, params))
        return mean + std * gen.standard_normal(mean.shape, dtype=mean.dtype)


class Bernoulli(Likelihood):
    """Bernoulli(sigmoid(logit)) for values in [0, 1]."""

    name = "bernoulli"

    def nll(self, T, out, params, need_grad, mask, d_out=None):
        nll, d = bernoulli_nll(T, out, need_grad, mask)
        return nll, d, None

    def mean(self, out, params):
        return sigmoid(np.array(out))

    def sample(self, out, params, gen):
        p = sigmoid(np.array(out))
        return (gen.random(p.shape, dtype=p.dtype) < p).astype(p.dtype)


class SquaredError(Likelihood):
    """Squared reconstruction error of the deterministic autoencoder."""

    name = "squared_error"
    scaled = True

    def nll(self, T, out, params, need_grad, mask, d_out=None):
        err, d = squared_error(T, out, need_grad, mask)
        return err, d, None

    def mean(self, out, params):
        return np.array(out)

    def sample(self, out, params, gen):
        return np.array(out)


class Categorical(Likelihood):
    """One softmax per categorical column over its levels.

    The targets are level indices; ``options["sizes"]`` lists the number of
    levels of each column.
    """

    name = "categorical"

    def __init__(self, n_columns, options=None):
        super().__init__(n_columns, options)
        self.sizes = np.asarray(self.options["sizes"], dtype=np.intp)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.intp)
        self.n_outputs = int(np.sum(self.sizes))

    def nll(self, T, out, params, need_grad, mask, d_out=None):
        nll, d = categorical_nll(T, out, self.starts, self.sizes, need_grad, mask)
        return nll, d, None

    def probabilities(self, out):
        return segment_softmax(np.asarray(out), self.starts, self.sizes)

    def expectation(self, out, params, weights):
        probs = np.sum(weights * self.probabilities(out), axis=0)
        return segment_argmax(probs, self.starts, self.sizes)

    def mean(self, out, params):
        return segment_argmax(np.asarray(out), self.starts, self.sizes)

    def sample(self, out, params, gen):
        probs = self.probabilities(out)
        codes = np.empty((*probs.shape[:-1], len(self.sizes)), dtype=probs.dtype)
        for j, (a, s) in enumerate(zip(self.starts, self.sizes)):
            cum = np.cumsum(probs[..., a : a + s], axis=-1)
            u = gen.random((*probs.shape[:-1], 1)) * cum[..., -1:]
            codes[..., j] = np.minimum(np.sum(cum < u, axis=-1), s - 1)
        return codes


# -- likelihoods on the raw values of a column -----------------------------------
#
# These groups take their columns unscaled (the Gaussian standardisation would
# move values out of the support): their targets are the user's values and
# their negative log-likelihoods are densities (or probabilities) of those
# values. Internally each one centres and scales a transformed value (log x,
# logit x, log count) with statistics of the training rows, held in its
# options (``loc``, ``scale``: one per column, set by ``fit_options``), so that
# the decoder outputs and the encoder inputs are of unit scale.

#: Gauss-Hermite nodes and weights (probabilists', normalised to sum to 1)
#: for the mean of a logit-normal variable.
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_GH_WEIGHTS = _GH_WEIGHTS / np.sum(_GH_WEIGHTS)

#: Bounds of the Poisson log-rate in ``mean`` and ``sample`` (rates up to
#: about 2e17, which ``Generator.poisson`` still accepts).
_LOG_RATE_MAX = 40.0


def _column_stats(values):
    """Mean and standard deviation of each column, ignoring NaN (0 and 1
    for a column without values; the deviation at least 1e-3)."""
    loc = np.zeros(values.shape[1])
    scale = np.ones(values.shape[1])
    for j in range(values.shape[1]):
        v = values[:, j]
        v = v[np.isfinite(v)]
        if v.size:
            loc[j] = float(np.mean(v))
            sd = float(np.std(v))
            scale[j] = sd if sd > 1e-3 else 1.0
    return loc, scale


def _safe(T, mask, fill):
    """``T`` with its missing cells (``mask == 0``) replaced by ``fill``."""
    if mask is None:
        return T
    return np.where(mask > 0, T, T.dtype.type(fill))


def _masked_row_sum(el, mask):
    if mask is not None:
        el = el * mask
    return np.sum(el, axis=-1)


class _RawColumns(Likelihood):
    """Shared parts of the likelihoods on raw values: options and statistics."""

    def _stat(self, key, dtype, default=0.0):
        value = self.options.get(key)
        if value is None:
            return np.full(self.n_columns, default, dtype=dtype)
        return np.asarray(value, dtype=dtype)

    @classmethod
    def fit_options(cls, values, options):
        """Statistics of the training values (rows x the group's columns,
        NaN on missing cells) to keep in the group's options."""
        return {}

    @classmethod
    def support_error(cls, values, options):
        """A message when ``values`` fall outside the support, else None."""
        return None

    def encoder_input(self, T, missing):
        """What the encoder sees of the group's columns (missing cells: 0)."""
        raise NotImplementedError


def _range_message(name, what, lo, hi, hint):
    return (
        f"likelihood={name!r} needs {what}; got values in [{lo:.4g}, {hi:.4g}]. {hint}"
    )


def _nan_range(values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmin(values)), float(np.nanmax(values))


class Poisson(_RawColumns):
    """Poisson counts: ``x ~ Poisson(exp(loc + out))``.

    ``loc`` is the log of the training mean, so an output of 0 predicts the
    mean count. The encoder sees ``log(1 + x)``, standardised.
    """

    name = "poisson"

    @classmethod
    def fit_options(cls, values, options):
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0) if values.size else np.zeros(0)
        mean = np.where(np.isfinite(mean) & (mean > 0), mean, 1.0)
        in_loc, in_scale = _column_stats(np.log1p(values))
        return {
            "loc": np.log(mean).tolist(),
            "input_loc": in_loc.tolist(),
            "input_scale": in_scale.tolist(),
        }

    @classmethod
    def support_error(cls, values, options):
        lo, hi = _nan_range(values)
        finite = values[np.isfinite(values)]
        if lo < 0 or np.any(finite != np.round(finite)):
            return _range_message(
                cls.name,
                "non-negative integer counts",
                lo,
                hi,
                "Use likelihood='gaussian' or 'lognormal' for other values.",
            )
        return None

    def encoder_input(self, T, missing):
        dtype = T.dtype
        E = np.log1p(np.maximum(T, 0))
        E -= self._stat("input_loc", dtype)
        E /= self._stat("input_scale", dtype, 1.0)
        if missing is not None:
            E[missing] = 0
        return E

    def init(self, params, W, bias):
        # the log link turns the decoder's spread at initialisation into a
        # multiplicative one: start it small
        W *= 0.1

    def _log_rate(self, out):
        return out + self._stat("loc", out.dtype)

    def nll(self, T, out, params, need_grad, mask, d_out=None):
        eta = self._log_rate(out)
        rate = np.exp(eta)
        el = rate - T * eta
        el += gammaln(T + 1).astype(T.dtype, copy=False)
        nll = _masked_row_sum(el, mask)
        if not need_grad:
            return nll, None, None
        d = rate - T
        if mask is not None:
            d *= mask
        return nll, d, None

    def mean(self, out, params):
        return np.exp(np.minimum(self._log_rate(np.asarray(out)), _LOG_RATE_MAX))

    def sample(self, out, params, gen):
        rate = self.mean(out, params)
        return gen.poisson(rate).astype(rate.dtype)


class LogNormal(_LearnedVariance, _RawColumns):
    """Log-normal values: ``log x ~ N(loc + scale * m, scale^2 * v)``.

    The decoder gives ``m`` per cell and ``v = softplus(r) + floor`` is a
    learned variance per column, both in the standardised log scale
    (``loc``, ``scale``: moments of ``log x`` in the training rows). The
    density is that of ``x``: the Gaussian density of the standardised
    ``y = (log x - loc) / scale`` times ``|dy / dx| = 1 / (scale x)``.
    """

    name = "lognormal"

    def __init__(self, n_columns, options=None):
        super().__init__(n_columns, options)
        # the variance as the Gaussian's (see _LearnedVariance)
        self._setup_variance()

    @classmethod
    def fit_options(cls, values, options):
        with np.errstate(all="ignore"):
            logs = np.log(np.where(values > 0, values, np.nan))
        loc, scale = _column_stats(logs)
        return {"loc": loc.tolist(), "scale": scale.tolist()}

    @classmethod
    def support_error(cls, values, options):
        lo, hi = _nan_range(values)
        if lo <= 0:
            return _range_message(
                cls.name,
                "positive values",
                lo,
                hi,
                "Use likelihood='zero_lognormal' for columns with exact zeros.",
            )
        return None

    # the transform to the standardised scale: y = (g(x) - loc) / scale
    def _forward(self, T):
        return np.log(T)

    def _inverse(self, G):
        return np.exp(G)

    def _log_jacobian(self, T):
        """``log |dg / dx|`` per cell: minus what the density of x adds to
        that of g(x)."""
        return -np.log(T)

    _fill = 1.0  # a value inside the support, for missing cells

    def _standardised(self, T, mask):
        dtype = T.dtype
        y = self._forward(_safe(T, mask, self._fill))
        y -= self._stat("loc", dtype)
        y /= self._stat("scale", dtype, 1.0)
        return y

    def encoder_input(self, T, missing):
        mask = None if missing is None else (~missing).astype(T.dtype)
        y = self._standardised(T, mask)
        if missing is not None:
            y[missing] = 0
        return y

    def _jacobian_nll(self, T, mask):
        """``sum_j log scale_j - log |dg/dx|`` over the observed cells."""
        dtype = T.dtype
        el = np.log(self._stat("scale", dtype, 1.0)) - self._log_jacobian(
            _safe(T, mask, self._fill)
        )
        return _masked_row_sum(el, mask)

    def nll(self, T, out, params, need_grad, mask, d_out=None):
        y = self._standardised(T, mask)
        mean, raw = self._split(out, params)
        nll, d_mean, d_raw = gaussian_nll(y, mean, raw, self.floor, need_grad, mask)
        nll = nll + self._jacobian_nll(T, mask)
        if not need_grad or self.variance == "feature":
            return nll, d_mean, d_raw
        if self.variance == "shared":
            return nll, d_mean, np.sum(d_raw, axis=-1, keepdims=True)
        if d_out is None:
            return nll, np.concatenate([d_mean, d_raw], axis=-1), None
        n = self.n_columns
        d_out[..., :n] = d_mean
        d_out[..., n:] = d_raw
        return nll, d_out, None

    def _moments(self, out, params):
        """Mean and standard deviation of g(x) given the decoder output."""
        out, raw = self._split(np.asarray(out), params)
        dtype = out.dtype
        var = variance_from_raw(np.asarray(raw, dtype=dtype), self.floor)
        scale = self._stat("scale", dtype, 1.0)
        return self._stat("loc", dtype) + scale * out, scale * np.sqrt(var)

    def mean(self, out, params):
        mu, sd = self._moments(np.asarray(out), params)
        return np.exp(mu + 0.5 * sd * sd)

    def sample(self, out, params, gen):
        mu, sd = self._moments(np.asarray(out), params)
        draw = gen.standard_normal(mu.shape, dtype=mu.dtype)
        return self._inverse(mu + sd * draw)


class LogitNormal(LogNormal):
    """Values in a known interval ``(low, high)``: the logit of
    ``u = (x - low) / (high - low)`` is normal.

    ``options["low"]`` and ``options["high"]`` hold one bound per column
    (default 0 and 1). As for :class:`LogNormal`, the decoder works on the
    standardised logit and the density is that of ``x``:
    ``|d logit(u) / dx| = 1 / ((high - low) u (1 - u))``.
    """

    name = "logit_normal"

    def _bounds(self, dtype):
        low = self._stat("low", dtype, 0.0)
        high = self._stat("high", dtype, 1.0)
        return low, high - low

    @classmethod
    def fit_options(cls, values, options):
        low = np.asarray(options.get("low", np.zeros(values.shape[1])), dtype=float)
        high = np.asarray(options.get("high", np.ones(values.shape[1])), dtype=float)
        u = (values - low) / (high - low)
        with np.errstate(all="ignore"):
            g = np.log(u) - np.log1p(-u)
        g[~np.isfinite(g)] = np.nan
        loc, scale = _column_stats(g)
        return {"loc": loc.tolist(), "scale": scale.tolist()}

    @classmethod
    def support_error(cls, values, options):
        n = values.shape[1]
        low = np.asarray(options.get("low", np.zeros(n)), dtype=float)
        high = np.asarray(options.get("high", np.ones(n)), dtype=float)
        with np.errstate(invalid="ignore"):
            bad = (values <= low) | (values >= high)
        if np.any(bad):
            lo, hi = _nan_range(values)
            return _range_message(
                cls.name,
                f"values strictly inside (low, high) = "
                f"({low.tolist()}, {high.tolist()})",
                lo,
                hi,
                "Give the bounds per column as ('logit_normal', {'low': a, "
                "'high': b}) in the likelihood dict, or move values off the "
                "bounds (for example x * (1 - 2e) + e for shares in [0, 1]).",
            )
        return None

    def _unit(self, T):
        low, width = self._bounds(T.dtype)
        return (T - low) / width

    def _forward(self, T):
        u = self._unit(T)
        return np.log(u) - np.log1p(-u)

    def _inverse(self, G):
        low, width = self._bounds(G.dtype)
        return low + width * sigmoid(np.array(G))

    def _log_jacobian(self, T):
        u = self._unit(T)
        _, width = self._bounds(T.dtype)
        return -(np.log(width) + np.log(u) + np.log1p(-u))

    def _safe_fill(self, T):
        low, width = self._bounds(T.dtype)
        return low + 0.5 * width

    def _standardised(self, T, mask):
        if mask is not None:
            T = np.where(mask > 0, T, self._safe_fill(T))
        dtype = T.dtype
        y = self._forward(T)
        y -= self._stat("loc", dtype)
        y /= self._stat("scale", dtype, 1.0)
        return y

    def _jacobian_nll(self, T, mask):
        if mask is not None:
            T = np.where(mask > 0, T, self._safe_fill(T))
        el = np.log(self._stat("scale", T.dtype, 1.0)) - self._log_jacobian(T)
        return _masked_row_sum(el, mask)

    def mean(self, out, params):
        # E[low + width * sigmoid(g)] with g ~ N(mu, sd^2), by Gauss-Hermite
        mu, sd = self._moments(np.asarray(out), params)
        nodes = _GH_NODES.astype(mu.dtype)
        weights = _GH_WEIGHTS.astype(mu.dtype)
        s = sigmoid(mu[..., None] + sd[..., None] * nodes)
        low, width = self._bounds(mu.dtype)
        return low + width * (s @ weights)


class ZeroLogNormal(LogNormal):
    """Exact zeros mixed with log-normal positive values.

    ``P(x = 0) = sigmoid(l)``; given ``x > 0``, ``x`` is log-normal as in
    :class:`LogNormal`. The decoder gives two outputs per column: the logits
    ``l`` first, then the log-normal means. The score of a zero is the log
    of its probability and that of a positive value the log of
    ``(1 - P(x = 0))`` times its density (a density with respect to a point
    mass at 0 plus the Lebesgue measure). The encoder sees the standardised
    ``log x`` of positive values and a value below all of them
    (``options["zero_input"]``) for zeros.
    """

    name = "zero_lognormal"

    def __init__(self, n_columns, options=None):
        options = {**(options or {}), "variance": "feature"}
        super().__init__(n_columns, options)
        self.n_outputs = 2 * self.n_columns

    def init(self, params, W, bias):
        params[:] = RAW_UNIT_VARIANCE
        p0 = np.clip(self._stat("zero_share", np.float64, 0.5), 1e-3, 1 - 1e-3)
        bias[: self.n_columns] = np.log(p0) - np.log1p(-p0)

    @staticmethod
    def _continuous_part(values):
        """The values the continuous part models, as the decoder sees them
        before standardisation (NaN on the other cells): ``log x`` of the
        positive values."""
        with np.errstate(all="ignore"):
            return np.log(np.where(values > 0, values, np.nan))

    @classmethod
    def fit_options(cls, values, options):
        g = cls._continuous_part(values)
        loc, scale = _column_stats(g)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            # a column of zeros only has no continuous value: nanmin warns
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanmin((g - loc) / scale, axis=0)
            observed = np.sum(np.isfinite(values), axis=0)
            share = np.sum(values == 0, axis=0) / np.maximum(observed, 1)
        low = np.where(np.isfinite(low), low, 0.0)
        return {
            "loc": loc.tolist(),
            "scale": scale.tolist(),
            "zero_input": (low - 1.0).tolist(),
            "zero_share": np.where(observed > 0, share, 0.5).tolist(),
        }

    @classmethod
    def support_error(cls, values, options):
        lo, hi = _nan_range(values)
        if lo < 0:
            return _range_message(
                cls.name, "non-negative values", lo, hi, "Shift or clip the column."
            )
        return None

    def encoder_input(self, T, missing):
        zero = T == 0
        y = self._standardised(np.where(zero, 1, T), None)
        y = np.where(zero, self._stat("zero_input", T.dtype), y)
        if missing is not None:
            y[missing] = 0
        return y

    def nll(self, T, out, params, need_grad, mask, d_out=None):
        n = self.n_columns
        logits, mean = out[..., :n], out[..., n:]
        zero = (T == 0).astype(T.dtype)
        positive = 1 - zero if mask is None else (1 - zero) * mask
        Tp = np.where(zero > 0, 1, T)
        y = self._standardised(Tp, None)
        nll_pos, d_mean, d_raw = gaussian_nll(
            y, mean, params, self.floor, need_grad, positive
        )
        nll_pos = nll_pos + self._jacobian_nll(Tp, positive)
        sp_l, sig = softplus_sigmoid(np.array(logits), need_grad)
        el = sp_l - zero * logits
        nll = _masked_row_sum(el, mask) + nll_pos
        if not need_grad:
            return nll, None, None
        d_logit = sig - zero
        if mask is not None:
            d_logit *= mask
        if d_out is None:
            d_out = np.empty(np.broadcast_shapes(out.shape), dtype=out.dtype)
        d_out[..., :n] = d_logit
        d_out[..., n:] = d_mean
        return nll, d_out, d_raw

    def zero_probability(self, out):
        return sigmoid(np.array(out[..., : self.n_columns]))

    def mean(self, out, params):
        out = np.asarray(out)
        p0 = self.zero_probability(out)
        return (1 - p0) * super().mean(out[..., self.n_columns :], params)

    def sample(self, out, params, gen):
        out = np.asarray(out)
        p0 = self.zero_probability(out)
        positive = super().sample(out[..., self.n_columns :], params, gen)
        zero = gen.random(p0.shape, dtype=p0.dtype) < p0
        return np.where(zero, 0, positive).astype(positive.dtype)


class ZeroNormal(ZeroLogNormal):
    """Exact zeros mixed with normal non-zero values, on the whole real line.

    ``P(x = 0) = sigmoid(l)``; given ``x != 0``, ``x ~ N(loc + scale * m,
    scale^2 * v)``, with ``loc`` and ``scale`` the moments of the training
    column's non-zero values and ``v = softplus(r) + floor`` a learned
    variance per column. The decoder gives two outputs per column: the
    logits ``l`` first, then the means ``m``. As for
    :class:`ZeroLogNormal`, the score of a zero is the log of its
    probability and that of any other value the log of ``(1 - P(x = 0))``
    times its normal density (a density with respect to a point mass at 0
    plus the Lebesgue measure, a proper one since the normal puts no mass
    on 0 itself). Every real value is in the support. The encoder sees the
    standardised non-zero values and, for zeros, a value below all the
    training column's non-zero ones (``options["zero_input"]``).
    """

    name = "zero_normal"

    @staticmethod
    def _continuous_part(values):
        return np.where(values != 0, values, np.nan)

    @classmethod
    def support_error(cls, values, options):
        return None

    def _forward(self, T):
        return np.array(T)  # a copy: the caller standardises it in place

    def _inverse(self, G):
        return G

    def _log_jacobian(self, T):
        return np.zeros_like(T)

    def mean(self, out, params):
        out = np.asarray(out)
        p0 = self.zero_probability(out)
        mu, _ = self._moments(out[..., self.n_columns :], params)
        return (1 - p0) * mu


#: Likelihood classes by name.
LIKELIHOODS = {
    cls.name: cls
    for cls in (
        Gaussian,
        Bernoulli,
        SquaredError,
        Categorical,
        Poisson,
        LogNormal,
        LogitNormal,
        ZeroLogNormal,
        ZeroNormal,
    )
}

#: Likelihoods that take their columns' raw values and transform them for
#: the encoder themselves.
RAW_LIKELIHOODS = tuple(
    name for name, cls in LIKELIHOODS.items() if issubclass(cls, _RawColumns)
)


class LikelihoodTable:
    """The likelihood groups of a model, laid side by side.

    Parameters
    ----------
    groups : list of (str, int, dict)
        ``(name, n_columns, options)`` of each group, in the model's internal
        column order.
    mean_over_cells : bool, default=False
        Divide each row's loss by its number of observed cells (the
        autoencoder's mean reconstruction error).

    Attributes
    ----------
    groups : list of Likelihood
    columns, outputs, params : list of slice
        Where each group's columns, decoder outputs and free parameters lie.
    """

    def __init__(self, groups, mean_over_cells=False):
        self.groups = [LIKELIHOODS[name](n, opts) for name, n, opts in groups]
        self.mean_over_cells = mean_over_cells
        self.columns, self.outputs, self.params = [], [], []
        c = o = p = 0
        for g in self.groups:
            self.columns.append(slice(c, c + g.n_columns))
            self.outputs.append(slice(o, o + g.n_outputs))
            self.params.append(slice(p, p + g.n_params))
            c, o, p = c + g.n_columns, o + g.n_outputs, p + g.n_params
        self.n_columns, self.n_outputs, self.n_params = c, o, p

    def _parts(self):
        return zip(self.groups, self.columns, self.outputs, self.params)

    def init(self, params, W, bias):
        for g, _, o, p in self._parts():
            g.init(params[p], W[:, o], bias[o])

    def nll(self, T, out, params, need_grad=False, mask=None, d_out=None):
        """Per-row negative log-likelihood of the observed cells, and gradients.

        Parameters
        ----------
        T : ndarray of shape (..., n_columns)
            Targets in the internal order and scaling.
        out : ndarray of shape (..., n_outputs)
            Decoder output.
        params : ndarray of shape (n_params,)
            The free likelihood parameters.
        need_grad : bool, default=False
        mask : ndarray like ``T`` or None
            1 on observed cells, 0 on missing ones.
        d_out : ndarray like ``out`` or None
            Where to assemble the output gradient when there are several
            groups (allocated when None).

        Returns
        -------
        nll : ndarray of shape (...,)
        d_out : ndarray like ``out`` or None
        d_params : ndarray of shape (..., n_params) or None
            Per-row contributions to the parameter gradient.
        """
        cells = None
        if self.mean_over_cells and (len(self.groups) > 1 or mask is not None):
            # each group sums its cells; the mean is taken here, over all groups
            cells = _ones_like_cells(T) if mask is None else mask
        if len(self.groups) == 1 and cells is None:
            return self.groups[0].nll(T, out, params, need_grad, mask, d_out)
        observed = mask if mask is not None else cells
        total = None
        if need_grad and d_out is None:
            d_out = np.empty_like(out)
        d_params = None
        with_params = sum(g.n_params > 0 for g in self.groups)
        if need_grad and with_params > 1:
            d_params = np.zeros((*out.shape[:-1], self.n_params), dtype=out.dtype)
        for g, c, o, p in self._parts():
            m = None if observed is None else observed[..., c]
            nll, d, dp = g.nll(T[..., c], out[..., o], params[p], need_grad, m)
            total = nll if total is None else total + nll
            if need_grad:
                d_out[..., o] = d
                if dp is not None and with_params > 1:
                    d_params[..., p] = dp
                elif dp is not None:
                    d_params = dp  # the only group with parameters
        if cells is not None:
            count = np.maximum(np.sum(cells, axis=-1), 1)
            total /= count
            if need_grad:
                d_out /= count[..., None]
        return total, d_out, d_params

    def mean(self, out, params):
        return np.concatenate(
            [g.mean(out[..., o], params[p]) for g, _, o, p in self._parts()], axis=-1
        )

    def sample(self, out, params, gen):
        return np.concatenate(
            [g.sample(out[..., o], params[p], gen) for g, _, o, p in self._parts()],
            axis=-1,
        )

    def expectation(self, out, params, weights):
        return np.concatenate(
            [
                g.expectation(out[..., o], params[p], weights)
                for g, _, o, p in self._parts()
            ],
            axis=-1,
        )


def _ones_like_cells(T):
    return np.ones(T.shape, dtype=T.dtype)
