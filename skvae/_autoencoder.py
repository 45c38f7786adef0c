"""Deterministic autoencoder."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._base import _COLUMN_PARAMETERS, BaseAutoencoder, check_n_samples
from ._objectives import as_batch


class AutoencoderTransformer(BaseAutoencoder):
    __doc__ = f"""Deterministic autoencoder for non-linear dimensionality reduction.

    An encoder network maps each row to a code of ``latent_dim`` values and a
    mirrored decoder maps the code back; both are trained together to
    minimise the mean squared reconstruction error (plus an L2 penalty).
    With ``activation="identity"`` the model is linear and its optimum spans
    the same subspace as PCA with ``latent_dim`` components.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(64,)
        Widths of the encoder's hidden layers; the decoder mirrors them.
        ``()`` gives a single linear map each way.
    latent_dim : int, default=2
        Size of the code.
    activation : {{"relu", "tanh", "logistic", "identity"}}, default="relu"
        Hidden-layer activation. The code layer and the output are linear.
    solver : {{"adam", "lbfgs"}}, default="adam"
        ``"adam"``: mini-batch Adam. ``"lbfgs"``: full-batch L-BFGS-B from
        SciPy, which converges tightly on small data sets and linear models.
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
        Patience of that rule, in epochs.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop on the validation
        score (minus the reconstruction error) and keep the best parameters.
    validation_fraction : float, default=0.1
        Share of the rows held out when ``early_stopping``.
    standardize : bool or "robust", default=True
        Centre and scale every feature inside the model (the statistics are
        learned in ``fit``): by mean and standard deviation, or with
        ``"robust"`` by median and interquartile range, kept above 0.35
        standard deviations (by the standard deviation on features where one
        value holds a quarter of the rows). Outputs of ``inverse_transform``
        and ``sample`` are in the original units; reconstruction errors are
        measured on the standardised features, so every feature counts alike.
        Unscaled (``False``), values whose squares overflow the input's
        dtype (beyond about 1e18 in float32) give infinite errors; ``fit``
        warns about them.
{_COLUMN_PARAMETERS}    random_state : int, RandomState instance or None, default=None
        Controls initialisation, shuffling and the sampling noise. An int
        gives bit-identical results on the same machine.
    verbose : bool, default=False
        Print the loss after every epoch.
    warm_start : bool, default=False
        Reuse the previous solution to start the next ``fit``.

    Attributes
    ----------
    params_ : ndarray
        All network parameters in one flat vector (encoder, then decoder).
    loss_curve_ : list of float
        Training loss per epoch (adam) or iteration (lbfgs): mean squared
        reconstruction error per row, plus the L2 penalty.
    reconstruction_curve_ : list of float
        The reconstruction part of ``loss_curve_``.
    kl_curve_ : list of float
        Zeros; present so that the three estimators can be plotted alike.
    best_loss_ : float
        Smallest training loss reached.
    validation_scores_ : list of float or None
        Minus the validation error per epoch when ``early_stopping``.
    best_validation_score_ : float or None
        Best of ``validation_scores_``.
    n_iter_ : int
        Epochs (or L-BFGS iterations) run.
    input_mean_, input_scale_ : ndarray of shape (n_features_in_,)
        The internal standardisation (zeros and ones when off).
    latent_mean_ : ndarray of shape (latent_dim,)
        Mean of the training codes.
    latent_covariance_ : ndarray of shape (latent_dim, latent_dim)
        Covariance of the training codes; :meth:`sample` draws from this
        Gaussian.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when they are strings.

    See Also
    --------
    VAETransformer : Probabilistic version with a log-likelihood.
    sklearn.decomposition.PCA : The linear, closed-form counterpart.

    Notes
    -----
    :meth:`sample` needs a density on the code space, which a deterministic
    autoencoder does not learn. It uses the Gaussian with the mean and
    covariance of the training codes (computed after ``fit``; after
    ``partial_fit``, from the rows of the last call, at most 4096 of them),
    decoded by the network.
    For a generative model with a likelihood, use :class:`VAETransformer`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import AutoencoderTransformer
    >>> X = load_digits().data
    >>> ae = AutoencoderTransformer(latent_dim=4, max_iter=20, random_state=0)
    >>> Z = ae.fit_transform(X)
    >>> Z.shape
    (1797, 4)
    >>> ae.inverse_transform(Z).shape
    (1797, 64)
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
        standardize=True,
        categorical_features="from_dtype",
        handle_unknown="missing",
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
        self.standardize = standardize
        self.categorical_features = categorical_features
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    def _default_likelihood(self):
        return "squared_error"

    def _after_fit(self, X):
        Z = self._encode(X).astype(np.float64)
        # moments of Z / 2**k, scaled back: the sums of squares inside np.cov
        # overflow for codes beyond ~1e154 although the covariance is finite.
        # Powers of two scale exactly: ordinary codes give the same bits
        peak = np.max(np.abs(Z), axis=0, initial=0.0)
        unit = np.exp2(np.floor(np.log2(peak, where=peak > 0, out=np.ones_like(peak))))
        Zu = Z / unit
        self.latent_mean_ = Zu.mean(axis=0) * unit
        cov = np.atleast_2d(np.cov(Zu, rowvar=False, bias=True))
        # one factor at a time: unit_i * unit_j alone may overflow
        cov = cov * unit[:, None] * unit[None, :]
        self.latent_covariance_ = (cov + cov.T) / 2

    def score_samples(self, X):
        """Minus the reconstruction error of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``-mean_j (x_j - xhat_j) ** 2`` over the (standardised, when
            ``standardize``) features; higher means better reconstructed.
            Categorical columns contribute their cross-entropy (in nats) and
            missing cells are left out of the mean.
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        arch = self._architecture()
        theta = self._params_for(X.dtype)
        out = np.empty(X.shape[0], dtype=X.dtype)

        def score(rows):
            batch = as_batch(self._to_batch(self._rows(X, rows)))
            recon = arch.decode_raw(theta, arch.encode(theta, batch.inputs)[0])
            out[rows] = -arch.neg_log_lik(theta, batch.targets, recon, mask=batch.mask)[
                0
            ]

        self._for_chunks(score, X.shape[0], self._widest())
        return out

    def sample(self, n_samples=1, random_state=None):
        """Decode draws from the Gaussian fitted to the training codes.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to generate.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; None uses the estimator's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Generated rows in the input space (dtype of the fitted model).
        """
        check_is_fitted(self)
        n_samples = check_n_samples(n_samples)
        gen = self._sample_rng(random_state)
        cov = self.latent_covariance_
        # jitter makes the Cholesky factor exist for rank-deficient codes
        jitter = 1e-10 * max(1.0, float(np.trace(cov)))
        L = np.linalg.cholesky(cov + jitter * np.eye(cov.shape[0]))
        Z = self.latent_mean_ + gen.standard_normal((n_samples, cov.shape[0])) @ L.T
        return self._decode(Z.astype(self.params_.dtype))
