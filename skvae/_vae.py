"""Variational autoencoder."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseAutoencoder, check_n_samples
from ._likelihoods import sigmoid, variance_from_raw
from ._noise import noise_pool, row_keyed_normal


class BaseVAE(BaseAutoencoder):
    """What the VAE transformer and the anomaly detector share."""

    _parameter_constraints: dict = {
        **BaseAutoencoder._parameter_constraints,
        "beta": [Interval(Real, 0, None, closed="left")],
        "likelihood": [StrOptions({"gaussian", "bernoulli"})],
        "decoder_variance": [StrOptions({"feature", "shared", "row"})],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "kl_warmup": [Interval(Integral, 0, None, closed="left")],
        "free_bits": [Interval(Real, 0, None, closed="left")],
        "iwae_samples": [Interval(Integral, 1, None, closed="left")],
    }

    def _likelihood(self):
        return self.likelihood

    def _training_options(self):
        return {
            "beta": float(self.beta),
            "free_bits": float(self.free_bits),
            "kl_warmup": int(self.kl_warmup),
            "iwae_samples": int(self.iwae_samples),
            "trim_fraction": float(getattr(self, "trim_fraction", 0.0)),
        }

    def _log_likelihood(self, X, n_draws):
        """Importance-weighted log p(x) of validated rows, in input units."""
        arch = self._architecture()
        theta = self._params_for(X.dtype)
        out = np.empty(X.shape[0], dtype=X.dtype)
        k = arch.latent_dim
        pool = noise_pool(self._score_seed, n_draws, k, X.dtype)

        def score(rows):
            # noise keyed by each row's content and the model's seed: a row
            # gets the same score in any batch, and rows' errors are independent
            eps = row_keyed_normal(X[rows], self._score_seed, n_draws, k, X.dtype, pool)
            out[rows] = arch.log_likelihood(theta, self._scale(X[rows]), eps)

        self._for_chunks(score, X.shape[0], self._widest(), draws=n_draws)
        # densities of standardised features -> densities of the inputs
        out -= X.dtype.type(self._log_scale_sum())
        return out

    def score_samples(self, X):
        """Importance-weighted estimate of the log-likelihood of each row.

        ``log p(x) ~= log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x)`` with
        ``K = n_importance_samples`` draws ``z_k`` from the encoder's
        posterior. The noise of the draws is a function of the row's values
        and of a seed fixed when the model is fitted, so a row's score does
        not change between calls or with the other rows in ``X``, while the
        errors of different rows are independent and average out in
        :meth:`score`. With ``K = 1`` this is the ELBO; it tightens towards
        ``log p(x)`` as ``K`` grows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            Log-density of each row, in nats, in the units of ``X`` (the
            internal standardisation is accounted for).
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        return self._log_likelihood(X, self.n_importance_samples)

    def sample(self, n_samples=1, random_state=None, *, noise=False):
        """Generate rows from the model: decode draws from the prior ``N(0, I)``.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to generate.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; None uses the estimator's ``random_state``.
        noise : bool, default=False
            False returns the decoder mean for each draw z (probabilities for
            ``likelihood="bernoulli"``). True draws x from p(x | z) itself,
            adding the decoder's Gaussian noise (or drawing 0/1 values), which
            gives samples of the model's full density p(x), as
            ``GaussianMixture.sample`` does; use it for synthetic data whose
            spread should match the real data's.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Generated rows in the input space, in the dtype of the fitted
            model.
        """
        check_is_fitted(self)
        n_samples = check_n_samples(n_samples)
        gen = self._sample_rng(random_state)
        arch = self._architecture()
        dtype = self.params_.dtype
        Z = gen.standard_normal((n_samples, arch.latent_dim), dtype=dtype)
        if not noise:
            return self._decode(Z)
        theta = self.params_
        d = arch.n_features
        out = np.empty((n_samples, d), dtype=dtype)

        def draw(rows):
            raw = arch.decode_raw(theta, Z[rows])
            if arch.likelihood == "bernoulli":
                p = sigmoid(raw)
                out[rows] = gen.random(p.shape, dtype=dtype) < p
            else:
                var = variance_from_raw(
                    arch.raw_variance(theta, raw), arch.variance_floor
                )
                noise = gen.standard_normal((raw.shape[0], d), dtype=dtype)
                out[rows] = raw[:, :d] + np.sqrt(var) * noise

        # the draws come from one generator, in order
        self._for_chunks(draw, n_samples, self._widest(), in_order=True)
        return self._unscale(out)

    def _after_fit(self, X):
        mu = self._encode(X).astype(np.float64)
        self.latent_mean_variance_ = mu.var(axis=0)
        # variance above 0.01 marks an active unit (Burda et al., 2016)
        self.active_units_ = np.flatnonzero(self.latent_mean_variance_ > 0.01)


_SHARED_PARAMETERS = """hidden_layer_sizes : tuple of int, default=(64,)
        Widths of the encoder's hidden layers; the decoder mirrors them.
        ``()`` gives linear maps (with ``activation="identity"`` and a
        Gaussian decoder, a factor-analysis or probabilistic-PCA model).
    latent_dim : int, default=2
        Size of the latent code z.
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Hidden-layer activation.
    solver : {"adam", "lbfgs"}, default="adam"
        ``"adam"``: mini-batch Adam with fresh noise per step. ``"lbfgs"``:
        full-batch L-BFGS-B from SciPy with one draw of the noise held fixed,
        so the objective is deterministic. It wins on small data sets (a few
        hundred rows: iris, wine, breast cancer in
        ``benchmarks/bench_density.py``) and converges tightly on linear
        models, but on larger data a network can fit that one noise draw: on
        digits (1257 rows, 256-256 network) it reached 50 nats/row held out,
        with ``early_stopping``, against 73 for Adam.
    alpha : float, default=1e-4
        L2 penalty: ``alpha / (2 n_batch) * sum(W ** 2)`` over weights.
    batch_size : int or "auto", default="auto"
        Mini-batch size for Adam; ``"auto"`` is ``min(200, n_samples)``.
    learning_rate_init : float, default=1e-3
        Adam's step size.
    max_iter : int, default=200
        Epochs (adam) or iterations (lbfgs).
    tol : float, default=1e-4
        Training stops when the loss (or the validation score) does not
        improve by at least ``tol`` for ``n_iter_no_change`` epochs.
    n_iter_no_change : int, default=10
        Patience of that rule, in epochs. Epochs in which the KL term is
        below 1 nat per row and higher than ``n_iter_no_change`` epochs
        earlier do not count: the model is leaving a posterior-collapse
        plateau, on which the loss can stay flat for tens of epochs before
        it falls.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop when their ELBO
        has not improved by ``tol`` for ``n_iter_no_change`` epochs (or L-BFGS
        iterations) and keep the best parameters.
    validation_fraction : float, default=0.1
        Share of the rows held out when ``early_stopping``.
    beta : float, default=1.0
        Weight of the KL term in the training objective (beta-VAE). Scores
        always use the true, unweighted model.
    likelihood : {"gaussian", "bernoulli"}, default="gaussian"
        Decoder distribution p(x | z). ``"bernoulli"`` needs data in [0, 1].
    decoder_variance : {"feature", "shared", "row"}, default="feature"
        Gaussian decoder variance: one learned value per feature (like
        FactorAnalysis), one shared value (like probabilistic PCA), or one per
        row and feature from a second decoder head. A floor of 1e-3 (in
        standardised units) keeps it from collapsing.
    n_importance_samples : int, default=10
        Draws K per row in :meth:`score_samples`.
    kl_warmup : int, default=0
        Epochs over which the KL weight ramps linearly from 0 to ``beta``.
    free_bits : float, default=0.0
        Nats per latent dimension (batch mean) under which the KL term is
        not penalised, against posterior collapse.
    iwae_samples : int, default=1
        Draws per row in the training objective. 1 trains on the ELBO; K > 1
        on the importance-weighted bound (Burda et al., 2016), tighter but
        K times the decoder's cost.
    standardize : bool or "robust", default=True
        Centre and scale each feature inside the model (Gaussian likelihood
        only): by mean and standard deviation, or with ``"robust"`` by median
        and interquartile range, kept above 0.35 standard deviations
        (outliers in the training rows then stretch the scale of the rest
        less; features where one value holds a quarter of the rows, such as
        zero-inflated ones, are scaled by their standard deviation). Scores
        are converted back, so they
        are log-densities of the original data.
    random_state : int, RandomState instance or None, default=None
        Controls initialisation, shuffling, the training noise and the
        importance-sampling noise. An int gives bit-identical results on the
        same machine.
    verbose : bool, default=False
        Print the loss and its two parts after every epoch.
    warm_start : bool, default=False
        Reuse the previous solution to start the next ``fit``."""

_SHARED_ATTRIBUTES = """params_ : ndarray
        All parameters in one flat vector (encoder, decoder, variances).
    loss_curve_ : list of float
        Training objective per epoch (adam) or iteration (lbfgs): mean
        negative ELBO per row, with ``beta`` and the L2 penalty.
    reconstruction_curve_ : list of float
        Mean negative log-likelihood -E_q[log p(x | z)] per row and epoch.
    kl_curve_ : list of float
        Mean KL(q(z | x) || p(z)) per row and epoch; near zero means
        posterior collapse.
    best_loss_ : float
        Smallest value of ``loss_curve_``.
    validation_scores_ : list of float or None
        Held-out ELBO per row and epoch when ``early_stopping``.
    best_validation_score_ : float or None
        Best of ``validation_scores_``.
    n_iter_ : int
        Epochs (or L-BFGS iterations) run.
    active_units_ : ndarray of int
        Latent dimensions whose posterior mean varies over the training rows
        (variance above 0.01).
    latent_mean_variance_ : ndarray of shape (latent_dim,)
        That variance, per latent dimension.
    input_mean_, input_scale_ : ndarray of shape (n_features_in_,)
        The internal standardisation (zeros and ones when off).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when they are strings."""


class VAETransformer(BaseVAE):
    __doc__ = f"""Variational autoencoder as a scikit-learn transformer.

    The encoder maps a row x to a Gaussian posterior
    ``q(z | x) = N(mu(x), diag(exp(log_var(x))))``; the decoder maps a code z
    to the parameters of ``p(x | z)``; the prior is ``p(z) = N(0, I)``. Training
    maximises the evidence lower bound

        ELBO(x) = E_q[log p(x | z)] - beta * KL(q(z | x) || p(z))

    with one reparameterised draw ``z = mu + exp(log_var / 2) * eps`` per row
    and the KL term in closed form. :meth:`transform` returns the posterior
    mean, :meth:`sample` decodes draws from the prior, and
    :meth:`score_samples` is an importance-weighted estimate of log p(x) in
    nats, so :meth:`score` (its mean) drives ``GridSearchCV`` without a scorer.

    Parameters
    ----------
    {_SHARED_PARAMETERS}

    Attributes
    ----------
    {_SHARED_ATTRIBUTES}

    See Also
    --------
    AutoencoderTransformer : Deterministic autoencoder.
    VAEAnomalyDetector : Outlier detection with the VAE likelihood.
    sklearn.decomposition.FactorAnalysis : The linear-Gaussian special case.

    Notes
    -----
    A linear VAE (``hidden_layer_sizes=()``, ``activation="identity"``,
    Gaussian decoder) has the same maximum-likelihood solutions as factor
    analysis (``decoder_variance="feature"``) or probabilistic PCA
    (``"shared"``), so its scores can be checked against those models.

    References
    ----------
    Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.

    Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted
    Autoencoders. ICLR.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skvae import VAETransformer
    >>> X = load_iris().data
    >>> vae = VAETransformer(latent_dim=2, max_iter=50, random_state=0).fit(X)
    >>> vae.transform(X[:3]).shape
    (3, 2)
    >>> vae.sample(5, random_state=0).shape
    (5, 4)
    >>> float(vae.score(X)) < 0  # mean log-likelihood in nats per row
    True
    """

    def __init__(
        self,
        hidden_layer_sizes=(64,),
        latent_dim=2,
        *,
        activation="relu",
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=1e-3,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        beta=1.0,
        likelihood="gaussian",
        decoder_variance="feature",
        n_importance_samples=10,
        kl_warmup=0,
        free_bits=0.0,
        iwae_samples=1,
        standardize=True,
        random_state=None,
        verbose=False,
        warm_start=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.latent_dim = latent_dim
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
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    def _after_fit(self, X):
        super()._after_fit(X)
        if self.active_units_.size == 0 and self.beta > 0:
            warnings.warn(
                "No latent dimension is active (posterior collapse): the "
                "decoder ignores the code, so transform is uninformative and "
                "the model is a Gaussian with independent features. Train "
                "longer (raise n_iter_no_change or max_iter), lower beta, or "
                "use kl_warmup or free_bits.",
                ConvergenceWarning,
                stacklevel=2,
            )
