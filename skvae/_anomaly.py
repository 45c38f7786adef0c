"""Outlier detection with a variational autoencoder."""

import math
import re
from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _columns
from ._base import _validate_hidden_layer_sizes
from ._objectives import as_batch
from ._vae import _SHARED_ATTRIBUTES, _SHARED_PARAMETERS, BaseVAE, row_subsample

_AUTO_DOCS = {
    "hidden_layer_sizes": """hidden_layer_sizes : "auto" or tuple of int, default="auto"
        Encoder hidden widths; the decoder mirrors them. ``"auto"``: two
        layers of width ``clip(2 * n_features, 32, 128)``.""",
    "latent_dim": """latent_dim : "auto" or int, default="auto"
        Size of the latent code; ``"auto"``: ``clip(n_features // 4, 2, 16)``.""",
    "max_iter": """max_iter : "auto" or int, default="auto"
        Epochs. ``"auto"``: 50 epochs, fewer on large data so that training
        takes at most about 2000 Adam steps (at least 10 epochs). It is a
        fixed budget, so reaching it raises no ConvergenceWarning.""",
    "likelihood": """likelihood : "auto", str or dict, default="auto"
        Decoder distribution p(x | z) of the numeric columns, as for
        :class:`VAETransformer`. ``"auto"``: ``"zero_normal"`` (a point mass
        at 0 mixed with a normal) for each numeric column where more than
        10 % of the observed training values are exactly 0, ``"gaussian"``
        for the others; Gaussian for all columns of sparse input. Zeros then
        score by how probable a zero is, not by where 0 falls on a normal
        density stretched over them (measured on both ADBench development
        sets; see the user guide). The choice is in
        ``feature_likelihoods_``; a warm start keeps it.""",
    "standardize": """standardize : bool or "robust", default="robust"
        Centre and scale each feature inside the model: ``"robust"`` uses the
        median and the interquartile range (kept above 0.35 standard
        deviations), so the anomalies among the training rows do not stretch
        the scale of the normal ones, except on features where one value
        holds a quarter of the rows or more (zero-inflated, binary or count
        features), which are scaled by their standard deviation; ``True``
        uses mean and standard deviation. Scores are converted back to
        log-densities of the input.""",
}


def _detector_parameters():
    """The VAE's parameter docs with the detector's "auto" defaults."""
    text = _SHARED_PARAMETERS
    for name, doc in _AUTO_DOCS.items():
        text = re.sub(rf"{name} : .*?(?=\n    \w+ : )", doc, text, count=1, flags=re.S)
    return text


#: Share of the training rows held out of the fit to set ``offset_`` from
#: their scores (at most _OFFSET_MAX_ROWS rows: enough for a 5 % quantile to
#: within about 0.7 %, and holding out 2000 cost 0.03 AUROC on ADBench's skin
#: and cover); with fewer than _OFFSET_MIN_ROWS held-out rows, offset_ comes
#: from the training rows.
_OFFSET_FRACTION = 0.2
_OFFSET_MAX_ROWS = 1000
_OFFSET_MIN_ROWS = 50


def _offset_split(n_samples, random_state):
    """Sorted indices of the rows to fit and of the rows to set offset_ on.

    ``None`` for the second when there are too few rows to hold any out.
    """
    n_out = min(int(round(_OFFSET_FRACTION * n_samples)), _OFFSET_MAX_ROWS)
    if n_out < _OFFSET_MIN_ROWS or _OFFSET_FRACTION <= 0:
        return np.arange(n_samples), None
    perm = random_state.permutation(n_samples)
    return np.sort(perm[n_out:]), np.sort(perm[:n_out])


#: ``likelihood="auto"``: numeric columns with more than this share of exact
#: zeros get "zero_normal" (chosen on both ADBench development sets, issue
#: 11: 5 % and 25 % each left one set more than 0.05 AUROC below
#: IsolationForest, 10 % none; see the user guide).
_AUTO_ZERO_SHARE = 0.1


def _is_auto(value):
    return isinstance(value, str) and value == "auto"


#: "auto" training: at most this many epochs and about this many Adam steps
#: (measured on the ADBench sets: 50 epochs beat ~1500 steps on small data,
#: which overfit; the step cap bounds the cost on large data)
_AUTO_EPOCHS = 50
_AUTO_STEPS = 2000


#: After training, ``fit`` sets each Gaussian feature's learned decoder
#: variance to the mean squared residual of the training rows (the
#: closed-form maximum of the likelihood in the variances, the decoder held
#: fixed), leaving out the ``trim_fraction`` of rows with the highest loss as
#: training does. Adam moves the raw variances by about
#: ``learning_rate_init`` per step, so in the default budget (at most about
#: 2000 steps) they stay near their initial 1 (0.4-0.9 on ADBench's
#: annthyroid, cardio and pendigits, whose trimmed residuals are 0.0004-0.4):
#: features the model predicts well then weigh no more in the score than
#: noisy ones. Measured on the development sets (issue 11, seeds 0-2):
#: annthyroid 0.745 -> 0.893 AUROC, the classical sets' mean 0.799 -> 0.807,
#: the embedding sets' 0.733 -> 0.729 (see the user guide). ``False``: the
#: variances as trained.
_REFIT_VARIANCE = True

#: The share of rows (those of highest loss) the refit leaves out: None for
#: the estimator's ``trim_fraction``.
_REFIT_TRIM = None

#: Rows (at most) and draws from the encoder's posterior that the refit
#: averages the squared residuals over.
_REFIT_ROWS = 10000
_REFIT_DRAWS = 5
_REFIT_CHUNK = 1024


def _refittable(group):
    """Whether a likelihood group's variance is a free parameter to refit.

    Only Gaussian groups: refitting the zero-inflated columns' variances
    too (on their non-zero cells) was measured slightly worse on both
    ADBench development sets (issue 11, seeds 0-2: 0.8117 / 0.7549 mean
    AUROC against 0.8125 / 0.7581).
    """
    return group.name == "gaussian" and group.variance in ("feature", "shared")


def _refit_variances(arch, theta, batch, trim_fraction, seed):
    """``theta`` with the refittable variances set to the trimmed mean
    squared residual of the rows of ``batch`` (a new array).

    Two passes over chunks of rows with the same posterior draws: the rows'
    losses (mean over draws of ``-log p(x | z)``), which pick the rows kept,
    then the squared residuals of the kept rows' observed cells.
    """
    theta = theta.copy()
    table = arch.table
    parts = [
        (g, c, o, p)
        for g, c, o, p in zip(table.groups, table.columns, table.outputs, table.params)
        if _refittable(g)
    ]
    if not parts:
        return theta
    params = arch.likelihood_params(theta)
    batch = as_batch(batch)
    n = batch.targets.shape[0]
    chunks = [slice(i, min(i + _REFIT_CHUNK, n)) for i in range(0, n, _REFIT_CHUNK)]

    def decoded(rows, i):
        part = batch.rows(rows)
        mu, log_var = arch.encode(theta, part.inputs)
        gen = np.random.default_rng([seed, i])
        for _ in range(_REFIT_DRAWS):
            eps = gen.standard_normal(mu.shape).astype(mu.dtype)
            yield part, arch.decode_raw(theta, mu + np.exp(0.5 * log_var) * eps)

    loss = np.zeros(n)
    for i, rows in enumerate(chunks):
        for part, out in decoded(rows, i):
            loss[rows] += arch.neg_log_lik(theta, part.targets, out, mask=part.mask)[0]
    n_keep = n - int(trim_fraction * n)
    keep = np.zeros(n, dtype=bool)
    keep[np.argsort(loss, kind="stable")[:n_keep]] = True
    # per refitted group: sums of squared residuals and cell counts over the
    # kept rows
    acc = [np.zeros((2, c.stop - c.start)) for _, c, _, _ in parts]
    for i, rows in enumerate(chunks):
        kept = keep[rows]
        for part, out in decoded(rows, i):
            for (g, c, o, p), a in zip(parts, acc):
                err = (part.targets[:, c] - g.mean(out[:, o], params[p])) ** 2
                observed = np.ones_like(err, dtype=bool)
                if part.mask is not None:
                    observed = part.mask[:, c] > 0
                    err = np.where(observed, err, 0.0)
                a[0] += np.sum(err[kept], axis=0, dtype=np.float64)
                a[1] += np.sum(observed[kept], axis=0)
    for (g, _, _, p), a in zip(parts, acc):
        if g.variance == "shared":
            a = np.sum(a, axis=1, keepdims=True)
        seen = a[1] > 0
        var = a[0][seen] / a[1][seen]
        # the inverse of softplus, without overflow for large variances
        excess = np.maximum(var - g.floor, 1e-6)
        raw = excess + np.log(-np.expm1(-excess))
        params[p][seen] = raw.astype(params.dtype)
    return theta


def _offset_from_scores(scores, contamination):
    """Threshold on scores: a quantile, or Tukey's lower fence for "auto".

    The quantile is the unbiased one for new rows (``method="weibull"``: the
    ``p (n + 1)``-th smallest of ``n`` scores, which a new row falls below
    with probability ``p``); numpy's default interpolation flags about
    ``(p (n - 1) + 1) / (n + 1)`` of new rows, 5.6 % instead of 5 % with 140
    held-out rows.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if contamination == "auto":
        q1, q3 = np.percentile(scores, [25, 75])
        return float(q1 - 1.5 * (q3 - q1))
    return float(np.percentile(scores, 100.0 * contamination, method="weibull"))


class VAEAnomalyDetector(OutlierMixin, BaseVAE):
    __doc__ = f"""Unsupervised outlier detection with a variational autoencoder.

    A VAE is fitted to the training rows (which may contain some outliers);
    a row's anomaly score is its estimated log-likelihood under the model
    (:meth:`score_samples`, higher means more normal), and rows whose score
    falls below ``offset_`` are flagged as outliers. At the end of ``fit``
    each Gaussian feature's decoder variance is set to its mean squared
    error over the training rows, the ``trim_fraction`` of rows with the
    highest loss left out (Adam moves these variances too slowly for the
    default training budget; see the user guide).

    Parameters
    ----------
    contamination : "auto" or float, default="auto"
        Expected share of outliers, among the training rows and new rows
        alike. ``fit`` holds a fifth of the training rows (at most 1000) out
        of the training and sets ``offset_`` from their scores, which are
        what new rows from the same data would score: a float in (0, 0.5]
        puts ``offset_`` at that quantile of them, so :meth:`predict` flags
        about that share of new rows (and fewer of the training rows, which
        the model has seen). ``"auto"`` uses Tukey's lower fence on those
        scores, ``Q1 - 1.5 * (Q3 - Q1)``: no guess needed, but the scores'
        lower tail is long, so it flags more rows than a 5 % guess on most
        data (a median of 13-16 % of new rows on the ADBench development
        sets; see the user guide). With fewer than 250 training rows nothing
        is held out and ``offset_`` comes from the training rows' scores.
    trim_fraction : float, default=0.2
        Share of each mini-batch, the rows with the highest loss, left out of
        the training loss (a trimmed mean). Anomalies in the training data
        then do not shape the model, which keeps their likelihood low. The
        same share of the training rows is left out when ``fit`` sets the
        decoder's variances at the end (see above).
    {_detector_parameters()}

    Attributes
    ----------
    offset_ : float
        Threshold on :meth:`score_samples`: ``decision_function`` is
        ``score_samples - offset_`` and negative values are outliers. Set
        from the scores of the training rows held out of the fit (see
        ``contamination``; after ``partial_fit``, from the rows of the last
        call, at most 4096 of them, which are trained on).
    {_SHARED_ATTRIBUTES}

    See Also
    --------
    VAETransformer : The underlying density model.
    sklearn.ensemble.IsolationForest : A tree-based detector.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAEAnomalyDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(300, 4))
    >>> X[:5] += 8  # five obvious outliers
    >>> det = VAEAnomalyDetector(contamination=0.02, max_iter=50, random_state=0)
    >>> labels = det.fit_predict(X)
    >>> sorted(np.flatnonzero(labels == -1)[:5].tolist())
    [0, 1, 2, 3, 4]
    """

    _parameter_constraints: dict = {
        **BaseVAE._parameter_constraints,
        "hidden_layer_sizes": [
            StrOptions({"auto"}),
            *BaseVAE._parameter_constraints["hidden_layer_sizes"],
        ],
        "latent_dim": [
            StrOptions({"auto"}),
            *BaseVAE._parameter_constraints["latent_dim"],
        ],
        "max_iter": [StrOptions({"auto"}), *BaseVAE._parameter_constraints["max_iter"]],
        "likelihood": [
            StrOptions({"auto"}),
            *BaseVAE._parameter_constraints["likelihood"],
        ],
        "trim_fraction": [Interval(Real, 0, 1, closed="left")],
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
    }

    def __init__(
        self,
        hidden_layer_sizes="auto",
        latent_dim="auto",
        *,
        contamination="auto",
        trim_fraction=0.2,
        activation="relu",
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=1e-3,
        max_iter="auto",
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        beta=1.0,
        likelihood="auto",
        decoder_variance="feature",
        n_importance_samples=10,
        kl_warmup=0,
        free_bits=0.0,
        iwae_samples=1,
        standardize="robust",
        categorical_features="from_dtype",
        handle_unknown="missing",
        random_state=None,
        verbose=False,
        warm_start=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.latent_dim = latent_dim
        self.contamination = contamination
        self.trim_fraction = trim_fraction
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta = beta
        self.likelihood = likelihood
        self.decoder_variance = decoder_variance
        self.n_importance_samples = n_importance_samples
        self.kl_warmup = kl_warmup
        self.free_bits = free_bits
        self.iwae_samples = iwae_samples
        self.standardize = standardize
        self.categorical_features = categorical_features
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    def _network_shape(self, n_samples, n_features):
        if isinstance(self.hidden_layer_sizes, str):
            width = int(min(max(2 * n_features, 32), 128))
            hidden = (width, width)
        else:
            hidden = _validate_hidden_layer_sizes(self.hidden_layer_sizes)
        if isinstance(self.latent_dim, str):
            latent_dim = int(min(max(n_features // 4, 2), 16))
        else:
            latent_dim = int(self.latent_dim)
        return hidden, latent_dim

    def _likelihood(self):
        return "gaussian" if _is_auto(self.likelihood) else self.likelihood

    def _likelihood_for(self, X, is_categorical):
        if not _is_auto(self.likelihood):
            return self.likelihood
        if sp.issparse(X):
            return "gaussian"
        kept = getattr(self, "feature_likelihoods_", None)
        if self.warm_start and kept is not None and len(kept) == X.shape[1]:
            # a warm start keeps the first fit's choice, and so its network,
            # even where the new rows' zero shares fall on the other side
            picked = np.flatnonzero(kept == "zero_normal")
        else:
            shares = _columns.zero_shares(X, is_categorical)
            with np.errstate(invalid="ignore"):
                picked = np.flatnonzero(shares > _AUTO_ZERO_SHARE)
        if picked.size == 0:
            return "gaussian"
        return {int(j): "zero_normal" for j in picked}

    def _epochs(self, n_samples):
        if not isinstance(self.max_iter, str):
            return self.max_iter
        if self.solver == "lbfgs":
            return _AUTO_STEPS
        batches = math.ceil(n_samples / self._batch_size(n_samples))
        return int(min(max(math.ceil(_AUTO_STEPS / batches), 10), _AUTO_EPOCHS))

    def _warn_at_max_iter(self):
        # "auto" is a fixed training budget, chosen on purpose: no warning
        return not isinstance(self.max_iter, str)

    #: How rows with missing cells are scored (see :meth:`score_samples`);
    #: chosen by ``benchmarks/bench_missing_scores.py``.
    _missing_rule = "scaled"

    def _missing_adjusted(self, log_px, X):
        """Scores of validated rows (codes) from their ``log p(x_obs)``."""
        if sp.issparse(X):
            return log_px
        n_obs = np.sum(~np.isnan(X), axis=1)
        d = X.shape[1]
        partial = n_obs < d
        if not partial.any():
            return log_px
        out = log_px.copy()
        per_cell = self._per_cell_score
        if self._missing_rule == "scaled":
            # each row's own mean per observed cell, over all d cells
            out[partial] = log_px[partial] * d / np.maximum(n_obs[partial], 1)
            out[n_obs == 0] = d * per_cell
        elif self._missing_rule == "mean_fill":
            # missing cells count as typical training cells
            out[partial] += (d - n_obs[partial]) * per_cell
        return out

    def score_samples(self, X):
        """Log-likelihood of each row, comparable across rows with missing cells.

        For complete rows this is the importance-weighted log-likelihood of
        :meth:`VAETransformer.score_samples`. A row with missing cells has
        only ``log p(x_obs)``, a sum over fewer cells, which would make rows
        with many missing cells look normal; it is rescaled to all ``d``
        cells, ``log p(x_obs) * d / d_obs`` (the row's own mean per observed
        cell; a row with no observed cell gets the training rows' mean). This
        rule was chosen by measurement (``benchmarks/bench_missing_scores.py``
        and the user guide).

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher means more normal.
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        return self._missing_adjusted(
            self._log_likelihood(X, self.n_importance_samples), X
        )

    def _fit(self, X, incremental):
        held_out = None
        if not incremental:
            # rows held out of the fit: their scores set offset_ as new rows
            # would score, where the training rows' own scores are too high
            # on small data (the model has seen them)
            rng = check_random_state(self.random_state)
            keep, out = _offset_split(X.shape[0], rng)
            if out is not None:
                X, held_out = X[keep], X[out]
        self._offset_rows = held_out
        self._full_fit = not incremental
        try:
            return super()._fit(X, incremental)
        finally:
            del self._offset_rows, self._full_fit

    def _after_fit(self, X):
        if self._full_fit and _REFIT_VARIANCE:
            self._refit_variances(X)
        super()._after_fit(X)
        rows = X if self._offset_rows is None else self._offset_rows
        raw = self._log_likelihood(rows, self.n_importance_samples)
        n_obs = rows.shape[1]
        if not sp.issparse(rows):
            n_obs = np.maximum(np.sum(~np.isnan(rows), axis=1), 1)
        # the mean log-likelihood per observed cell, for rows with holes
        self._per_cell_score = float(np.mean(raw / n_obs))
        self._offset_scores = self._missing_adjusted(raw, rows)
        self.offset_ = self._offset_for(self.contamination)

    def _refit_variances(self, X):
        """Set the learned Gaussian variances from the training rows (codes);
        see ``_REFIT_VARIANCE``."""
        keep = row_subsample(X.shape[0], _REFIT_ROWS, self._score_seed)
        if keep is not None:
            X = X[keep]
        batch = self._to_batch(X)
        self.params_ = _refit_variances(
            self._architecture(),
            self.params_,
            batch,
            float(self.trim_fraction if _REFIT_TRIM is None else _REFIT_TRIM),
            self._score_seed,
        )

    def _offset_for(self, contamination):
        """The threshold that ``contamination`` gives on the offset scores."""
        return _offset_from_scores(self._offset_scores, contamination)

    def decision_function(self, X):
        """Score minus ``offset_``: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Label rows as inliers (+1) or outliers (-1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            ``-1`` where :meth:`decision_function` is negative, else ``+1``.
        """
        check_is_fitted(self)
        decision = self.decision_function(X)
        return np.where(decision < 0, -1, 1)
