"""Missing-value imputation with a variational autoencoder."""

import math
import threading
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone
from sklearn.impute import MissingIndicator
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, MissingValues, StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from . import _copies
from ._base import _validate_hidden_layer_sizes
from ._columns import is_dataframe
from ._vae import _SHARED_ATTRIBUTES, _SHARED_PARAMETERS, BaseVAE

#: Adam steps of the "auto" training budget, and its bounds in epochs
#: (measured: 4000 steps left Adult at 25 epochs and an error of 0.212, 60
#: epochs reached 0.2005; 16000 steps with the decay below gave 0.1974 and
#: 0.1983 on validation seeds 3 and 4, where 10000 gave 0.1991 and 0.2005,
#: and Wine 20 % 0.0510-0.0514 where it gave 0.0515-0.0521; 20000 gained
#: nothing more on Adult; the small tables hit the 500-epoch cap either way).
_AUTO_STEPS = 16000
_AUTO_MIN_EPOCHS = 20
_AUTO_MAX_EPOCHS = 500
#: share of the "auto" budget's last epochs over which the learning rate
#: falls linearly towards 0, so that the weights settle instead of ending
#: on one noisy Adam step (it cut the spread over seeds on Adult)
_AUTO_DECAY = 0.3
#: L-BFGS iterations of the "auto" budget (full-batch: no noise to settle,
#: and not measured beyond the 10000 it had before the Adam budget grew)
_AUTO_LBFGS_ITER = 10000
#: hidden width of the "auto" network: ``clip(2 * n_inputs, floor, 256)``,
#: the floor 64 on tables of fewer than ``_AUTO_WIDE_ROWS`` rows and 128
#: from there on (measured on validation seeds: 128 units imputed better on
#: penguins' 333 rows, breast cancer and HI-VAE's Wine, worse on
#: scikit-learn's 178-row wine, where 96 units already lost; their draws
#: are more overconfident, which the calibration of sample_posterior undoes)
_AUTO_MIN_WIDTH = 64
_AUTO_WIDE_MIN_WIDTH = 128
_AUTO_MAX_WIDTH = 256
_AUTO_WIDE_ROWS = 256

#: ``sample_posterior=True``: the share of the observed cells of Gaussian
#: columns held out of a second fit to calibrate the spread of the draws,
#: the fewest held-out cells worth a calibration, the rows (at most) and
#: draws per row it scores, and the bounds of the scale it may find
_CALIBRATION_SHARE = 0.1
_CALIBRATION_MIN_CELLS = 30
_CALIBRATION_ROWS = 2000
_CALIBRATION_DRAWS = 20
_CALIBRATION_BOUNDS = (0.25, 4.0)

#: The settings of that second fit: point imputations, no copies, no
#: indicators, silent, from scratch.
_CALIBRATION_MODEL = {
    "sample_posterior": False,
    "fill_from_copies": False,
    "add_indicator": False,
    "verbose": False,
    "warm_start": False,
}

#: Guards the count of ``transform`` calls that keys the draws of
#: ``sample_posterior``: threads calling one model at once each get a call
#: number of their own, hence draws of their own.
_CALLS_LOCK = threading.Lock()


def conformal_scale(truth, center, draws, level):
    """The smallest factor by which to stretch draws around their center so
    that the range of the stretched draws holds the truth of a share
    ``level`` of the cells (split conformal, finite-sample corrected).

    Parameters
    ----------
    truth, center : ndarray of shape (n_cells,)
        The held-out values and the model's conditional means of them.
    draws : ndarray of shape (n_draws, n_cells)
        Draws from the model's conditional distribution of each cell.
    level : float in (0, 1)
        The share of cells whose truth the stretched range must hold.

    Returns
    -------
    scale : float
        For each cell, the stretch its truth needs is
        ``(truth - center) / max(draws - center)`` above the center (the
        lowest deviation below it); the result is the
        ``ceil((n + 1) * level)``-th smallest of them over the ``n`` cells
        (``inf`` when that exceeds ``n``, or a needed cell has draws that
        never leave the center on its side).
    """
    dev = draws - center
    err = truth - center
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(err > 0, err / dev.max(axis=0), 0.0)
        down = np.where(err < 0, err / dev.min(axis=0), 0.0)
    need = np.maximum(up, down)
    need[~np.isfinite(need) | (need < 0)] = np.inf
    n = need.size
    k = math.ceil((n + 1) * level)
    if n == 0 or k > n:
        return np.inf
    return float(np.sort(need)[k - 1])


_AUTO_DOCS = """hidden_layer_sizes : "auto" or tuple of int, default="auto"
        Encoder hidden widths; the decoder mirrors them. ``"auto"``: two
        layers of width ``clip(2 * n_inputs, 128, 256)``, where ``n_inputs``
        counts one-hot levels and missingness indicators, or
        ``clip(2 * n_inputs, 64, 256)`` on tables of fewer than 256 rows
        (wider networks overfit those).
    latent_dim : "auto" or int, default="auto"
        Size of the latent code; ``"auto"``: ``clip(n_features // 2, 2, 16)``.
    max_iter : "auto" or int, default="auto"
        Epochs. ``"auto"``: about 16000 Adam steps, between 20 and 500 epochs,
        the learning rate falling linearly towards 0 over the last 30 % of
        them (``solver="lbfgs"``: 10000 iterations); a fixed budget
        (``n_iter_no_change`` does not cut it short: on small tables the
        training loss is noisy, and stopping on its plateaus, or
        on the ELBO of held-out rows, gave much worse imputations in
        ``benchmarks/bench_tabular.py``)."""


def _imputer_parameters():
    text = _SHARED_PARAMETERS
    start = text.index("hidden_layer_sizes : ")
    end = text.index("    activation : ")
    text = text[:start] + _AUTO_DOCS + "\n" + text[end:]
    start = text.index("    max_iter : int")
    end = text.index("    tol : ")
    text = text[:start] + text[end:]
    # the imputer's own defaults, measured in benchmarks/bench_tabular.py
    start = text.index("    decoder_variance : ")
    end = text.index("    n_importance_samples : ")
    text = text[:start] + _VARIANCE_DOC + text[end:]
    start = text.index("    n_importance_samples : ")
    end = text.index("    kl_warmup : ")
    text = text[:start] + text[end:]
    start = text.index("    iwae_samples : ")
    end = text.index("    standardize : ")
    return text[:start] + _IWAE_DOC + text[end:]


_VARIANCE_DOC = """    decoder_variance : {"feature", "shared", "row"}, default="row"
        Gaussian decoder variance (see :class:`VAETransformer`). ``"row"``
        (one per row and feature, from a decoder head) imputed better than
        ``"feature"`` on every table of the benchmark, and its draws with
        ``sample_posterior=True`` cover the truth at close to their nominal
        rate where ``"feature"`` gave intervals far too wide.
"""

_IWAE_DOC = """    iwae_samples : int, default=5
        Draws per row in the training objective: the importance-weighted
        bound of MIWAE (Mattei and Frellsen, 2019), which imputed better than
        the ELBO (``iwae_samples=1``) on the benchmark's tables.
"""


def _never(self):
    return False


class VAEImputer(BaseVAE):
    __doc__ = f"""Impute missing values with a variational autoencoder.

    One VAE models all the columns of a table jointly, numeric and
    categorical, and is trained on the observed cells only: the encoder sees
    the observed values (missing ones set to the column's mean) and which
    cells are missing, and the likelihood sums over the observed cells
    (MIWAE, Mattei and Frellsen, 2019; HI-VAE, Nazabal et al., 2020).
    :meth:`transform` fills only the missing cells, from ``K``
    importance-weighted draws of the code given the row's observed cells: numeric cells
    with their conditional mean, categorical ones with their most probable
    level. With ``sample_posterior=True`` each call draws the missing cells
    from ``p(x_mis | x_obs)`` instead, for multiple imputation (as
    :class:`~sklearn.impute.IterativeImputer` does it).

    Parameters
    ----------
    missing_values : float, int, str, None or pandas.NA, default=np.nan
        The placeholder of missing values. NaN, None and ``pd.NA`` always
        count as missing; another value is missing where it occurs.
    sample_posterior : bool, default=False
        False: conditional means (numeric) and most probable levels
        (categorical), the same for every call. True: one draw from the
        model's conditional distribution per call, the draws of Gaussian
        columns stretched around their conditional means by
        ``noise_scale_``, calibrated in ``fit``: a second model is fitted
        with a tenth of the observed cells of those columns held out, and
        the scale is the smallest that puts each held-out cell inside the
        range of 20 of its stretched draws as often as a 21st draw would be
        (19 times in 21; split conformal). It costs a second fit; a VAE
        fitted on the cells it fills is otherwise a little overconfident
        about the cells it does not see.
    add_indicator : bool, default=False
        Append :class:`~sklearn.impute.MissingIndicator` columns for the
        features that had missing values during ``fit``.
    keep_empty_features : bool, default=False
        Keep the columns that had no observed value during ``fit`` (filled
        with 0, or left missing for categorical columns); by default they are
        dropped from the output, as scikit-learn's imputers do.
    fill_from_copies : bool, default=True
        Fill a missing cell from a copy of its row among the rows given to
        ``fit``, when there is one: a training row that agrees with the row
        on every cell both observe, on at least three of them, and on so
        distinctive a set of values that fewer than 0.001 training rows
        would agree by chance (the columns' chances of agreement multiplied,
        each the probability that two training rows share the column's
        value). Tables often hold the same record twice, and the copy's
        value beats any model's guess; trees and neighbour imputers find
        copies by themselves, a VAE does not. Copies fill their cells with
        ``sample_posterior=True`` too. The imputer then keeps the training
        rows, as :class:`~sklearn.impute.KNNImputer` does; ``False`` keeps
        the fitted model free of them. Not used for sparse input, after
        ``partial_fit`` alone, or by the dask imputer.
    mask_rate : float in [0, 1), default=0.0
        Share of the observed cells hidden from the encoder at random in each
        training batch (the likelihood still scores them), as in VAEAC
        (Ivanov et al., 2019): the encoder learns to infer the code from
        partial rows, which is what imputation asks of it. The training
        objective stays a lower bound of the log-likelihood of the observed
        cells. Only used with ``solver="adam"`` (``fit`` warns otherwise)
        and dense input.
    n_importance_samples : int, default=100
        Draws ``K`` of the code per row in :meth:`transform` and
        :meth:`score_samples`. In :meth:`transform` (without
        ``sample_posterior``), a row whose importance weights rest on few
        draws (an effective sample size below ``K / 5``) is filled again
        from ``10 * K`` draws.
    {_imputer_parameters()}

    Attributes
    ----------
    indicator_ : MissingIndicator or None
        The indicator of missing features when ``add_indicator``.
    noise_scale_ : float
        The factor by which ``sample_posterior=True`` stretches the draws
        of Gaussian columns around their conditional means (calibrated in
        ``fit``, between 0.25 and 4; 1 without ``sample_posterior``, after
        ``partial_fit`` alone, for sparse input, with fewer than 30 cells to
        hold out, and in the dask imputer).
    {_SHARED_ATTRIBUTES}

    See Also
    --------
    sklearn.impute.IterativeImputer : Round-robin regression imputation.
    sklearn.impute.KNNImputer : Nearest-neighbour imputation.
    VAETransformer : The underlying model, for scores and samples.

    References
    ----------
    Mattei, P.-A. and Frellsen, J. (2019). MIWAE: Deep Generative Modelling
    and Imputation of Incomplete Data Sets. ICML.

    Nazabal, A., Olmos, P. M., Ghahramani, Z. and Valera, I. (2020).
    Handling incomplete heterogeneous data using VAEs. Pattern Recognition.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAEImputer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3)) @ [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    >>> X[::7, 1] = np.nan
    >>> Xt = VAEImputer(max_iter=30, random_state=0).fit_transform(X)
    >>> bool(np.isnan(Xt).any())
    False
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
        "missing_values": [MissingValues()],
        "sample_posterior": ["boolean"],
        "add_indicator": ["boolean"],
        "keep_empty_features": ["boolean"],
        "fill_from_copies": ["boolean"],
        "mask_rate": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        *,
        missing_values=np.nan,
        sample_posterior=False,
        add_indicator=False,
        keep_empty_features=False,
        fill_from_copies=True,
        mask_rate=0.0,
        hidden_layer_sizes="auto",
        latent_dim="auto",
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
        likelihood="gaussian",
        decoder_variance="row",
        n_importance_samples=100,
        kl_warmup=0,
        free_bits=0.0,
        iwae_samples=5,
        standardize=True,
        categorical_features="from_dtype",
        handle_unknown="missing",
        random_state=None,
        verbose=False,
        warm_start=False,
    ):
        self.missing_values = missing_values
        self.sample_posterior = sample_posterior
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
        self.fill_from_copies = fill_from_copies
        self.mask_rate = mask_rate
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
        self.categorical_features = categorical_features
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # -- the network's size and budget ---------------------------------------

    def _network_shape(self, n_samples, n_features):
        if isinstance(self.hidden_layer_sizes, str):
            n_in = self._layout_inputs()
            floor = (
                _AUTO_WIDE_MIN_WIDTH
                if n_samples >= _AUTO_WIDE_ROWS
                else _AUTO_MIN_WIDTH
            )
            width = int(min(max(2 * n_in, floor), _AUTO_MAX_WIDTH))
            hidden = (width, width)
        else:
            hidden = _validate_hidden_layer_sizes(self.hidden_layer_sizes)
        if isinstance(self.latent_dim, str):
            latent_dim = int(min(max(n_features // 2, 2), 16))
        else:
            latent_dim = int(self.latent_dim)
        return hidden, latent_dim

    def _layout_inputs(self):
        from ._columns import n_inputs

        return n_inputs(self._layout_)

    def _epochs(self, n_samples):
        if not isinstance(self.max_iter, str):
            return self.max_iter
        if self.solver == "lbfgs":
            return _AUTO_LBFGS_ITER
        batches = math.ceil(n_samples / self._batch_size(n_samples))
        return int(
            min(
                max(math.ceil(_AUTO_STEPS / batches), _AUTO_MIN_EPOCHS),
                _AUTO_MAX_EPOCHS,
            )
        )

    def _warn_at_max_iter(self):
        return not isinstance(self.max_iter, str)

    def _stops_on_plateau(self):
        # the training loss of small tables is noisy: measured on penguins,
        # breast cancer and wine, stopping on its plateaus (after 60-230
        # epochs) left imputations far worse than the full "auto" budget
        return not isinstance(self.max_iter, str)

    def _learning_rate_factor(self, epoch, n_epochs):
        # the "auto" budget ends with a linear decay over its last epochs
        if not isinstance(self.max_iter, str):
            return 1.0
        n_decay = math.ceil(_AUTO_DECAY * n_epochs)
        left = n_epochs - epoch  # epochs left, this one included
        return 1.0 if left > n_decay else left / (n_decay + 1)

    # -- the imputer contract ----------------------------------------------------

    def _placeholder_to_nan(self, X):
        """Replace a non-NaN ``missing_values`` placeholder by NaN / None."""
        mv = self.missing_values
        if mv is None or (isinstance(mv, float) and math.isnan(mv)):
            return X
        if type(mv).__name__ == "NAType":
            return X
        if is_dataframe(X):
            return X.mask(X == mv)
        X = np.asarray(X)
        if X.dtype.kind in "fc" and isinstance(mv, (Integral, Real)):
            return np.where(X == mv, np.nan, X)
        X = X.astype(object)
        X[X == mv] = None
        return X

    def fit(self, X, y=None):
        """Fit the VAE on the observed cells of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Training rows with missing cells.
        y : None
            Ignored.

        Returns
        -------
        self : VAEImputer
        """
        X = self._placeholder_to_nan(X)
        super().fit(X)
        C = self._check_X(X, reset=False)  # the codes, once for what follows
        self._fit_missing_features(C)
        self._fit_copies(C)
        self.noise_scale_ = self._calibrated_noise_scale(X, C)
        return self

    def partial_fit(self, X, y=None):
        """One epoch of Adam over ``X`` (see :meth:`VAETransformer.partial_fit`).

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Training rows.
        y : None
            Ignored.

        Returns
        -------
        self : VAEImputer
        """
        X = self._placeholder_to_nan(X)
        super().partial_fit(X)
        if not hasattr(self, "indicator_"):  # the first call
            self._fit_missing_features(self._check_X(X, reset=False))
            self.noise_scale_ = 1.0
        return self

    def _gaussian_columns(self):
        """Which of the user's columns have a Gaussian likelihood."""
        return np.array([lik == "gaussian" for lik in self._layout_["likelihoods"]])

    def _calibrated_noise_scale(self, X, C):
        """``noise_scale_`` (1 unless ``sample_posterior``) from the training
        rows ``X`` and their codes ``C``: see the class documentation and
        :func:`conformal_scale`."""
        if not self._calibrates(C):
            return 1.0
        rng = np.random.default_rng([self._score_seed, 2])
        held = self._held_out_cells(C, rng)
        if held.sum() < _CALIBRATION_MIN_CELLS:
            return 1.0
        # a second model, fitted without the held-out cells
        model = clone(self).set_params(**_CALIBRATION_MODEL)
        model.fit(_with_cells_missing(X, held))
        rows = np.flatnonzero(held.any(axis=1))
        if rows.size > _CALIBRATION_ROWS:
            rows = np.sort(rng.choice(rows, _CALIBRATION_ROWS, replace=False))
        return self._noise_scale_from(model, C[rows], held[rows])

    def _calibrates(self, C):
        """Whether ``fit`` on rows with codes ``C`` (or a sparse matrix)
        calibrates the draws: ``sample_posterior``, dense, a Gaussian
        column."""
        return (
            self.sample_posterior
            and not hasattr(C, "tocsr")
            and bool(self._gaussian_columns().any())
        )

    def _held_out_cells(self, C, rng):
        """A random ``_CALIBRATION_SHARE`` of the observed cells of the
        Gaussian columns of the rows with codes ``C``, drawn from ``rng``."""
        held = ~np.isnan(C) & self._gaussian_columns()
        return held & (rng.random(C.shape) < _CALIBRATION_SHARE)

    def _noise_scale_from(self, model, C, held):
        """The calibrated ``noise_scale_``, from ``model`` (fitted without
        the cells ``held`` of the rows with codes ``C``): how far its draws
        for those cells must be stretched to cover the truth as often as a
        new draw would."""
        hidden = np.where(held, np.nan, C)
        # everything in the calibration model's internal order and scaling
        # (the stretch each cell needs is the same in any affine units)
        order = model._layout_["order"]
        truth = (C[:, order] - model.input_mean_[order]) / model.input_scale_[order]
        held = held[:, order]
        K = self.n_importance_samples
        center = model._fill_missing(hidden, K)
        gen = np.random.default_rng([self._score_seed, 3])
        draws = np.stack(
            [
                model._fill_missing(hidden, K, gen)[held]
                for _ in range(_CALIBRATION_DRAWS)
            ]
        )
        level = (_CALIBRATION_DRAWS - 1) / (_CALIBRATION_DRAWS + 1)
        scale = conformal_scale(truth[held], center[held], draws, level)
        return float(np.clip(scale, *_CALIBRATION_BOUNDS))

    def _fit_missing_features(self, C):
        """Which features had no observed value, and the missing indicator
        (from the training rows' codes ``C``)."""
        self._empty = None if hasattr(C, "tocsr") else np.all(np.isnan(C), axis=0)
        self.indicator_ = None
        if self.add_indicator:
            self.indicator_ = MissingIndicator(error_on_new=False)
            self.indicator_.fit(C)

    def _fit_copies(self, C):
        """Keep the training rows (codes ``C``) to fill cells from their
        copies."""
        self._copies = None
        if self.fill_from_copies and not hasattr(C, "tocsr"):
            D = np.array(C, dtype=np.float64)
            self._copies = (D, _copies.collision_log_probabilities(D))

    def _fill_from_copies(self, C, filled):
        """``filled`` (rows in the user's columns) with the cells that a
        copy among the training rows has (see ``fill_from_copies``)."""
        copies = getattr(self, "_copies", None)
        if copies is None or not self.fill_from_copies:
            return filled
        values = _copies.donor_values(*copies, C, self.is_categorical_)
        found = ~np.isnan(values)
        if not found.any():
            return filled
        level = np.cumsum(self.is_categorical_) - 1
        frame = is_dataframe(filled)
        for j in np.flatnonzero(found.any(axis=0)):
            rows = np.flatnonzero(found[:, j])
            column = filled.iloc[:, j].copy() if frame else filled[:, j]
            v = values[rows, j]
            if self.is_categorical_[j]:
                v = self.categories_[level[j]][v.astype(np.intp)]
            elif column.dtype.kind in "iu":
                v = np.round(v)  # the mean of integer copies
            if frame:
                column.iloc[rows] = v
                filled.iloc[:, j] = column
            else:
                column[rows] = v
        return filled

    def transform(self, X):
        """Fill the missing cells of ``X``.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Rows with missing cells.

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_features_out)
            ``X`` with its missing cells filled, observed cells unchanged, in
            the type and dtypes of ``X`` (numeric arrays in float32 or
            float64); missing-indicator columns appended with
            ``add_indicator``.
        """
        check_is_fitted(self)
        X = self._placeholder_to_nan(X)
        C = self._check_X(X, reset=False)
        if hasattr(C, "tocsr"):
            C = C.toarray()
        missing = np.isnan(C)
        gen = None
        if self.sample_posterior:
            # a new draw every call, reproducible from random_state
            with _CALLS_LOCK:
                call = self._n_calls
                self._n_calls += 1
            gen = np.random.default_rng([self._score_seed, call])
        V = self._fill_missing(C, self.n_importance_samples, gen)
        scale = getattr(self, "noise_scale_", 1.0)
        if gen is not None and scale != 1.0:
            # stretch the Gaussian columns' draws around their conditional
            # means by the calibrated factor (only rows with a missing cell
            # there have anything to stretch)
            gaussian = self._gaussian_columns()
            rows = np.flatnonzero(missing[:, gaussian].any(axis=1))
            cols = np.flatnonzero(gaussian[self._layout_["order"]])
            if rows.size:
                cells = np.ix_(rows, cols)
                M = self._fill_missing(C[rows], self.n_importance_samples)[:, cols]
                V[cells] = M + np.asarray(scale, dtype=V.dtype) * (V[cells] - M)
        filled = self._fill_from_copies(C, self._from_internal(V))
        out = self._merge(X, C, filled, missing)
        return self._finish(out, missing)

    def _merge(self, X, C, filled, missing):
        """The input with only its missing cells replaced."""
        if is_dataframe(X) and is_dataframe(filled):
            out = X.copy()
            import pandas as pd

            # the decoded rows are numbered 0..n-1; align them with X's index
            filled.index = X.index

            for j, name in enumerate(X.columns):
                if missing[:, j].any():
                    col = filled[name]
                    src = X[name]
                    if isinstance(src.dtype, pd.CategoricalDtype):
                        # the rows passed may declare fewer levels than fit saw
                        extra = pd.Index(col.dropna().unique()).difference(
                            src.cat.categories
                        )
                        src = src.cat.add_categories(extra)
                    keep = ~src.isna().to_numpy()
                    # unknown levels are not missing values: keep them
                    out[name] = src.where(keep, col.astype(src.dtype))
            return out
        if filled.dtype == object:
            out = np.asarray(X, dtype=object).copy()
            out[missing] = filled[missing]
            return out
        out = np.array(C, copy=True)
        out[missing] = filled[missing]
        return out

    def _finish(self, out, missing):
        """Drop (or fill) empty features, append indicators."""
        empty = self._empty
        if empty is not None and empty.any():
            if self.keep_empty_features:
                if is_dataframe(out):
                    for j in np.flatnonzero(empty):
                        if not self.is_categorical_[j]:
                            out.iloc[:, j] = 0
                else:
                    cols = [
                        j for j in np.flatnonzero(empty) if not self.is_categorical_[j]
                    ]
                    out[:, cols] = 0
            else:
                keep = np.flatnonzero(~empty)
                out = out.iloc[:, keep] if is_dataframe(out) else out[:, keep]
        if self.indicator_ is not None:
            ind = self.indicator_.transform(np.where(missing, np.nan, 0.0))
            if is_dataframe(out):
                import pandas as pd

                names = self.indicator_.get_feature_names_out(self._input_names())
                ind = pd.DataFrame(np.asarray(ind), columns=names, index=out.index)
                out = pd.concat([out, ind], axis=1)
            else:
                out = np.hstack([out, np.asarray(ind, dtype=out.dtype)])
        return out

    def _input_names(self):
        return _check_feature_names_in(self, None)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns: the input's (less empty features
        unless ``keep_empty_features``), then the indicators'.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names (checked against ``feature_names_in_``).

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        out = names
        if (
            self._empty is not None
            and self._empty.any()
            and not self.keep_empty_features
        ):
            out = names[~self._empty]
        if self.indicator_ is not None:
            out = np.concatenate([out, self.indicator_.get_feature_names_out(names)])
        return np.asarray(out, dtype=object)

    def _after_fit(self, X):
        super()._after_fit(X)
        self._n_calls = 0

    @available_if(_never)
    def inverse_transform(self, X):  # pragma: no cover - hidden
        """Not available: ``transform`` returns rows, not codes."""

    @property
    def _n_features_out(self):
        return len(self.get_feature_names_out())


def _with_cells_missing(X, hide):
    """``X`` (array or DataFrame, the user's columns) with the cells of the
    boolean mask ``hide`` set missing (NaN)."""
    if is_dataframe(X):
        out = X.copy()
        for j in np.flatnonzero(hide.any(axis=0)):
            column = out.iloc[:, j]
            if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iub":
                column = column.astype(np.float64)  # pandas' nullable dtypes take NA
            out[out.columns[j]] = column.mask(hide[:, j])
        return out
    out = np.array(X, copy=True)
    if out.dtype.kind in "iub":
        out = out.astype(np.float64)
    out[hide] = np.nan
    return out
