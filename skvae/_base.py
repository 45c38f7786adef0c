"""The estimator shared by the three public classes.

It holds everything that is not specific to one of them: parameter
validation, input checks and scaling, the training loops (mini-batch Adam with
early stopping, and full-batch L-BFGS), ``partial_fit`` and ``warm_start``,
chunked inference, and the fitted state. The public estimators only declare
their parameters and pick the loss.

Fitted state is kept as NumPy arrays and plain Python values (the flat
parameter vector ``params_``, the optimizer's moments, the architecture as a
dict), so a fitted model pickles without any skvae class inside.
"""

import sys
import time
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_array,
    check_is_fitted,
    validate_data,
)

from . import _columns
from ._columns import is_dataframe
from ._objectives import Architecture, Batch, Objective
from ._optimizers import Adam, minimize_lbfgs
from ._parallel import threads_for
from ._persistence import VersionedStateMixin

#: Rows times widest layer per inference chunk: bounds the memory of
#: ``transform``, ``score_samples`` and ``sample`` whatever the input size.
_CHUNK_ELEMENTS = 1 << 21

#: The stopping rule does not count an epoch without improvement while the
#: KL term (nats per row) is below this and above its value n_iter_no_change
#: epochs earlier: the model is leaving a posterior-collapse plateau, on which
#: the loss stays flat for tens of epochs before it falls.
_COLLAPSE_KL = 1.0

#: Docs of the column parameters every estimator shares (numpydoc lines,
#: indented for a class docstring).
_COLUMN_PARAMETERS = (
    '    categorical_features : "from_dtype", None or array-like, '
    'default="from_dtype"\n'
    """        Which columns are categorical (a boolean mask, indices or names), as in
        :class:`~sklearn.ensemble.HistGradientBoostingRegressor`.
        ``"from_dtype"``: the ``category``, ``object``, ``string`` and
        ``bool`` columns of a pandas DataFrame (no column of an array: small
        integers are never guessed to be categories). Or a boolean mask,
        column indices or column names; None for no categorical column.
        Categorical columns get a categorical (softmax) likelihood over
        their levels and are one-hot encoded for the encoder.
    handle_unknown : {"missing", "error"}, default="missing"
        A level of a categorical column not seen during ``fit``:
        ``"missing"`` treats the cell as missing (with a warning), ``"error"``
        raises a ValueError.
"""
)

#: partial_fit computes fitted statistics (latent moments, offset_) on at
#: most this many rows of each call.
_STATS_ROWS = 4096


class TrainingDivergedError(ValueError, ArithmeticError):
    """Raised when the training loss stops being finite.

    A ``ValueError`` so that code catching scikit-learn's usual errors on
    bad input catches it too.
    """


def _validate_hidden_layer_sizes(hidden_layer_sizes):
    sizes = (
        (hidden_layer_sizes,)
        if isinstance(hidden_layer_sizes, Integral)
        else tuple(hidden_layer_sizes)
    )
    if any(not isinstance(h, Integral) or isinstance(h, bool) or h < 1 for h in sizes):
        raise ValueError(
            "hidden_layer_sizes must be a tuple of positive integers, got "
            f"{hidden_layer_sizes!r}."
        )
    return tuple(int(h) for h in sizes)


def check_n_samples(n_samples):
    """Validate the ``n_samples`` argument of ``sample``."""
    if (
        not isinstance(n_samples, Integral)
        or isinstance(n_samples, bool)
        or n_samples < 1
    ):
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    return int(n_samples)


class _ArraySource:
    """Training rows of a fully observed numeric array: each batch is gathered
    and standardised in a preallocated buffer, by each shard for its rows, so
    the data are never copied whole."""

    def __init__(self, X, shift, inv_scale):
        self.X, self.shift, self.inv_scale = X, shift, inv_scale
        self.n = X.shape[0]

    def buffer(self, size):
        return np.empty((size, self.X.shape[1]), dtype=self.X.dtype)

    def batch(self, buf, idx, hide=None):
        X, shift, inv_scale = self.X, self.shift, self.inv_scale

        def fill(rows):
            part = np.take(X, idx[rows], axis=0, out=buf[rows])
            if shift is not None:
                part -= shift
                part *= inv_scale

        return buf, fill


class _BatchSource:
    """Training rows already encoded as a :class:`Batch` (categorical columns,
    missing cells): batches are gathered into preallocated buffers.

    ``layout`` (from :mod:`skvae._columns`) says where each column's inputs
    are, for hiding cells from the encoder (``hide`` in :meth:`batch`).
    """

    def __init__(self, data, layout=None):
        self.data = data
        self.n = data.targets.shape[0]
        self.layout = layout

    def buffer(self, size):
        E, T, M = self.data
        inputs = np.empty((size, E.shape[1]), dtype=E.dtype)
        targets = inputs if T is E else np.empty((size, T.shape[1]), dtype=T.dtype)
        mask = None if M is None else np.empty((size, M.shape[1]), dtype=M.dtype)
        return Batch(inputs, targets, mask)

    def batch(self, buf, idx, hide=None):
        """The batch of rows ``idx`` in ``buf``, and the function that fills
        it. ``hide``: None, or a boolean ``(len(idx), n_features)`` array of
        cells to hide from the encoder (in the internal column order); the
        likelihood still scores them."""
        E, T, M = self.data

        def fill(rows):
            np.take(E, idx[rows], axis=0, out=buf.inputs[rows])
            if T is not E:
                np.take(T, idx[rows], axis=0, out=buf.targets[rows])
            if M is not None:
                np.take(M, idx[rows], axis=0, out=buf.mask[rows])
            if hide is not None:
                _columns.hide_inputs(buf.inputs[rows], hide[rows], self.layout)

        return buf, fill


class _SparseSource:
    """Training rows of a sparse matrix: the encoder multiplies the batch as
    a sparse matrix; the likelihood scores its dense copy."""

    def __init__(self, X, inv_scale):
        self.X, self.inv_scale = X, inv_scale
        self.n = X.shape[0]

    def buffer(self, size):
        return None

    def batch(self, buf, idx, hide=None):
        return _scaled_sparse_batch(self.X[idx], self.inv_scale), None


def _scaled_sparse_batch(X, inv_scale):
    E = X.astype(X.dtype, copy=True)
    E.data *= inv_scale[E.indices]
    return Batch(E, E.toarray(), None)


class BaseAutoencoder(
    VersionedStateMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Shared machinery of the skvae estimators; not for direct use.

    Subclasses declare their parameters and say, through the hooks below,
    what their loss is (:meth:`_default_likelihood`, :meth:`_training_options`)
    and what they compute after training (:meth:`_after_fit`).
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"adam", "lbfgs"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "standardize": ["boolean", StrOptions({"robust"})],
        "categorical_features": ["array-like", StrOptions({"from_dtype"}), None],
        "handle_unknown": [StrOptions({"missing", "error"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # -- what subclasses decide ----------------------------------------------

    def _default_likelihood(self):
        """``"squared_error"`` for the autoencoder, ``"gaussian"`` for the VAEs."""
        raise NotImplementedError

    def _likelihood(self):
        """The numeric columns' likelihood: a name, or a per-column dict."""
        return self._default_likelihood()

    def _likelihood_for(self, X, is_categorical):
        """The numeric columns' likelihood for the training rows ``X`` (raw,
        before coding): :meth:`_likelihood` unless it depends on the data."""
        return self._likelihood()

    def _training_options(self):
        """Objective options: beta, free bits, warm-up epochs."""
        return {
            "beta": 1.0,
            "free_bits": 0.0,
            "kl_warmup": 0,
            "iwae_samples": 1,
            "trim_fraction": 0.0,
            "mask_rate": 0.0,
        }

    def _after_fit(self, X):
        """Hook for fitted statistics that need the training rows (codes)."""

    # -- input handling --------------------------------------------------------

    def _check_X(self, X, reset):
        """Validate rows and return them as codes (see :mod:`skvae._columns`).

        A float array (NaN on missing cells; categorical columns hold level
        indices), or a CSR matrix for sparse input. With ``reset`` the
        columns' types, levels and likelihoods are learned from ``X``.
        """
        if sp.issparse(X):
            X = validate_data(
                self,
                X,
                accept_sparse="csr",
                dtype=[np.float64, np.float32],
                reset=reset,
            )
            if reset:
                if np.any(_columns.categorical_mask(X, self._categorical(), None)):
                    raise ValueError(
                        "Sparse input cannot have categorical columns: one-hot "
                        "encode them (the sparse matrix is then numeric), or "
                        "pass a DataFrame."
                    )
                self._fit_layout(X, np.zeros(X.shape[1], dtype=bool), None)
            self._check_support(X)
            return X
        frame = is_dataframe(X)
        if frame:
            validate_data(self, X, skip_check_array=True, reset=reset)
            names = np.asarray(X.columns, dtype=object)
            if reset:
                mask = _columns.categorical_mask(X, self._categorical(), names)
                self._fit_layout(X, mask, names)
                self._layout_["frame"] = _columns.frame_info(X)
            dtype = _columns.frame_dtype(X, self._layout_["is_categorical"])
        else:
            mask = None
            if reset:
                spec = self._categorical()
                if spec is None or isinstance(spec, str):  # no column of an array
                    mask = np.zeros(_n_columns(X), dtype=bool)
                else:
                    X = check_array(X, dtype=None, ensure_all_finite=False)
                    mask = _columns.categorical_mask(X, spec, None)
            categorical = (
                np.any(mask) if reset else np.any(self._layout_["is_categorical"])
            )
            if not categorical:
                X = validate_data(
                    self,
                    X,
                    dtype=[np.float64, np.float32],
                    ensure_all_finite="allow-nan",
                    reset=reset,
                )
                if reset:
                    self._fit_layout(X, mask, None)
                    self._layout_["frame"] = None
                self._check_support(X)
                return X
            X = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=reset)
            names = None
            if reset:
                self._fit_layout(X, mask, None)
                self._layout_["frame"] = None
            dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        C = _columns.to_codes(
            X, self._layout_, dtype, self.handle_unknown, None if not frame else names
        )
        C = check_array(C, ensure_all_finite="allow-nan", dtype=None)
        self._check_support(C)
        return C

    def _categorical(self):
        return getattr(self, "categorical_features", "from_dtype")

    def _fit_layout(self, X, is_categorical, names):
        layout = _columns.fit_columns(
            X,
            is_categorical,
            self._likelihood_for(X, is_categorical),
            self._default_likelihood(),
            names,
        )
        layout["n_indicators"] = None  # decided by _fit, from the training rows
        layout["frame"] = None
        old = getattr(self, "_layout_", None)
        if old is not None and _same_raw_groups(old, layout):
            # a warm start keeps the raw-value groups' fitted statistics, as
            # it keeps the scaling
            layout["groups"] = [[n, k, dict(o)] for n, k, o in old["groups"]]
        self._layout_ = layout
        self.is_categorical_ = layout["is_categorical"].copy()
        self.feature_likelihoods_ = np.asarray(layout["likelihoods"], dtype=object)
        self.categories_ = [c.copy() for c in layout["categories"]]

    def _check_support(self, C):
        """Values outside a likelihood's support (Bernoulli needs [0, 1])."""
        _columns.check_raw_support(C, self._layout_)
        cols = [
            j
            for j, lik in enumerate(self._layout_["likelihoods"])
            if lik == "bernoulli"
        ]
        if not cols or C.shape[0] == 0:
            return
        values = C[:, cols]
        if sp.issparse(values):
            values = values.toarray()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(values), np.nanmax(values)
        if lo < 0 or hi > 1:
            raise ValueError(
                "likelihood='bernoulli' needs data in [0, 1]; got values in "
                f"[{lo:.4g}, {hi:.4g}]. Scale the data (for example "
                "with MinMaxScaler) or use likelihood='gaussian'."
            )

    def _scaled_columns(self):
        """Columns whose likelihood works on standardised values."""
        return np.array(
            [
                lik in ("gaussian", "squared_error")
                for lik in self._layout_["likelihoods"]
            ],
            dtype=bool,
        )

    def _fit_scaling(self, X):
        self.input_mean_, self.input_scale_ = _columns.fit_scaling(
            X, self._scaled_columns(), self.standardize
        )
        _columns.fit_raw_options(X, self._layout_)
        self._warn_if_squares_overflow(X)

    def _warn_if_squares_overflow(self, X):
        """Warn when a scaled value of a Gaussian column is so large that
        its square overflows ``X``'s dtype: squared errors and Gaussian
        log-likelihoods of its row are then infinite (``standardize=False``
        on values beyond about 1e18 in float32 or 1e153 in float64)."""
        cols = np.flatnonzero(self._scaled_columns())
        if cols.size == 0 or X.shape[0] == 0:
            return
        if sp.issparse(X):
            top = abs(X).max(axis=0).toarray().ravel()
        else:
            # fmax / fmin skip NaN without copying X (all-NaN columns: NaN)
            top = np.maximum(np.fmax.reduce(X, axis=0), -np.fmin.reduce(X, axis=0))
        top = (top[cols] + np.abs(self.input_mean_[cols])) / self.input_scale_[cols]
        # room for the prediction's own size and a sum over the columns
        limit = np.sqrt(float(np.finfo(X.dtype).max)) / 16
        over = np.flatnonzero(top > limit)
        if over.size:
            names = _check_feature_names_in(self, None)[cols[over]]
            warnings.warn(
                f"Column(s) {list(names)} reach {np.max(top[over]):.3g} after "
                f"scaling, beyond {limit:.2g}: the squared errors of such values "
                f"overflow {X.dtype}, so score_samples of their rows can be "
                "-inf. Use standardize=True, or float64 input.",
                UserWarning,
                stacklevel=6,
            )

    def _fast_path(self):
        """Whether rows are their own encoder inputs and targets: dense,
        numeric, one likelihood, no missingness indicators."""
        layout = self._layout_
        return (
            not np.any(layout["is_categorical"])
            and len(layout["groups"]) == 1
            and layout["n_indicators"] == 0
            and not self._training_options()["mask_rate"]
            and not _columns.has_raw_groups(layout)
        )

    def _uses_scaling(self):
        return bool(np.any(self.input_scale_ != 1) or np.any(self.input_mean_ != 0))

    def _scale(self, X, out=None):
        """Standardise fully observed numeric rows (into ``out`` if given)."""
        if not self._uses_scaling():
            return X if out is None else out
        dtype = X.dtype
        out = np.subtract(X, self.input_mean_.astype(dtype), out=out)
        out /= self.input_scale_.astype(dtype)
        return out

    def _to_batch(self, C):
        """Codes (dense or sparse) -> what the network takes: an array of
        standardised rows when they are their own inputs, else a Batch."""
        if sp.issparse(C):
            return _scaled_sparse_batch(C, (1.0 / self.input_scale_).astype(C.dtype))
        if self._fast_path() and not np.isnan(C).any():
            return self._scale(C)
        return _columns.encode(
            C, self._layout_, self.input_mean_, self.input_scale_, C.dtype
        )

    def _log_scale(self, batch):
        """log |det| of the scaling over each row's observed cells: converts
        densities of standardised values to densities of the input."""
        mask = batch.mask if isinstance(batch, Batch) else None
        return _columns.log_scale_per_row(mask, self._layout_, self.input_scale_)

    def _from_internal(self, V):
        """Values in the internal order and scaling -> the user's columns."""
        return _columns.from_internal(
            V,
            self._layout_,
            self.input_mean_,
            self.input_scale_,
            self._layout_.get("frame"),
        )

    # -- architecture and parameters -------------------------------------------

    def _architecture(self):
        return Architecture(**self._architecture_)

    def _network_shape(self, n_samples, n_features):
        """Hidden widths and latent size to build (subclasses may derive them
        from the data's shape)."""
        return _validate_hidden_layer_sizes(self.hidden_layer_sizes), int(
            self.latent_dim
        )

    def _epochs(self, n_samples):
        """Epochs (adam) or iterations (lbfgs) of one ``fit``."""
        return self.max_iter

    def _warn_at_max_iter(self):
        """Whether stopping at ``max_iter`` is worth a ConvergenceWarning
        (not when the budget is a deliberate default)."""
        return True

    def _stops_on_plateau(self):
        """Whether ``n_iter_no_change`` epochs without progress stop training."""
        return True

    def _learning_rate_factor(self, epoch, n_epochs):
        """Multiplier of ``learning_rate_init`` in epoch ``epoch`` of ``n_epochs``
        of one ``fit`` (constant by default)."""
        return 1.0

    def _new_architecture(self, n_samples, n_features):
        hidden, latent_dim = self._network_shape(n_samples, n_features)
        layout = self._layout_
        groups = [[name, n, dict(opts)] for name, n, opts in layout["groups"]]
        return {
            "n_features": n_features,
            "latent_dim": latent_dim,
            "hidden_layer_sizes": hidden,
            "activation": self.activation,
            "likelihood": self._default_likelihood()
            if isinstance(self._likelihood(), dict)
            else self._likelihood(),
            "decoder_variance": getattr(self, "decoder_variance", "feature"),
            "variance_floor": 1e-3,
            "table": groups,
            "n_inputs": _columns.n_inputs(layout),
            "n_indicators": layout["n_indicators"],
        }

    def _params_for(self, dtype):
        return self.params_.astype(dtype, copy=False)

    # -- fitting ---------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Training data. NaN marks missing cells (and None or ``pd.NA`` in
            categorical columns); training uses the observed cells.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = self._check_X(X, reset=True)
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Run one epoch of Adam over ``X``, starting or continuing training.

        The first call sets the columns' types and levels, the input scaling,
        and initialises the network; later calls continue from where the last
        one stopped (the Adam moments are kept). Only ``solver="adam"``
        supports it.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The estimator.
        """
        if self.solver != "adam":
            raise ValueError(
                f"partial_fit is only available with solver='adam', not "
                f"solver={self.solver!r}."
            )
        first = not hasattr(self, "params_")
        X = self._check_X(X, reset=first)
        return self._fit(X, incremental=True)

    def _start_training(self, rng, n_rows, n_features, dtype, sparse=False):
        """Fresh fitted state: architecture, initial parameters drawn from
        ``rng``, empty curves and the seed of everything random after fit
        (also used by ``skvae.dask``); a warning for each setting that has
        no effect on this training (``sparse``: the rows are a sparse
        matrix)."""
        for message in self._unused_settings(sparse):
            warnings.warn(message, UserWarning, stacklevel=5)
        self._architecture_ = self._new_architecture(n_rows, n_features)
        # the rows the network's size was derived from: a warm start or a
        # partial_fit on another number of rows keeps the network
        self._shape_rows = n_rows
        self.params_ = self._architecture().init_params(rng, dtype)
        self.loss_curve_ = []
        self.reconstruction_curve_ = []
        self.kl_curve_ = []
        self.best_loss_ = np.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None
        self.n_iter_ = 0
        self._no_improvement_count = 0
        self._optimizer_state = None
        # one seed for everything random after fit (scores, noise), so that
        # they are a function of the fitted model alone
        self._score_seed = int(rng.randint(np.iinfo(np.int32).max))

    def _unused_settings(self, sparse):
        """Messages for the settings that this training would ignore."""
        opts = self._training_options()
        unused = []
        if opts["free_bits"] > 0 and opts["iwae_samples"] > 1:
            unused.append(
                "free_bits is only used with iwae_samples=1: the "
                "importance-weighted bound has no KL term of its own to "
                f"floor, so free_bits={opts['free_bits']} has no effect here."
            )
        if opts["mask_rate"] > 0 and self.solver != "adam":
            unused.append(
                "mask_rate is only used with solver='adam' (it hides new "
                f"cells in every batch), so mask_rate={opts['mask_rate']} has "
                f"no effect with solver={self.solver!r}."
            )
        elif opts["mask_rate"] > 0 and sparse:
            unused.append(
                "mask_rate is only used with dense input, so "
                f"mask_rate={opts['mask_rate']} has no effect on sparse X."
            )
        return unused

    def _fit(self, X, incremental):
        rng = check_random_state(self.random_state)
        dtype = X.dtype
        fresh = not hasattr(self, "params_") or not (incremental or self.warm_start)
        layout = self._layout_
        if layout["n_indicators"] is None:
            # the encoder sees which numeric cells are missing when the
            # training rows have any (a missing categorical cell is an
            # all-zero one-hot); a warm start keeps the indicators it has
            has_missing = not sp.issparse(X) and bool(np.isnan(X).any())
            # cells hidden at random in training need the indicators too
            # (dense input only: sparse input hides none)
            hides = self._training_options()["mask_rate"] > 0 and not sp.issparse(X)
            has_missing = has_missing or hides
            n_cat = int(np.sum(layout["is_categorical"]))
            old = getattr(self, "_architecture_", {}).get("n_indicators", 0)
            keep = not fresh and old == X.shape[1] - n_cat
            layout["n_indicators"] = (X.shape[1] - n_cat) if has_missing or keep else 0
        if not fresh:
            n_rows = getattr(self, "_shape_rows", X.shape[0])
            if self._new_architecture(n_rows, X.shape[1]) != self._architecture_:
                fresh = True  # warm start on data with other columns or levels
        if fresh:
            self._fit_scaling(X)
            self._start_training(rng, *X.shape, dtype, sp.issparse(X))
        elif self.params_.dtype != dtype:
            self.params_ = self.params_.astype(dtype)
            self._optimizer_state = None
        # a Generator for the training noise: it draws float32 natively and
        # into preallocated arrays, unlike the RandomState behind random_state
        gen = np.random.default_rng(rng.randint(np.iinfo(np.int32).max))
        # overflow on the way to a non-finite loss is reported once, as a
        # TrainingDivergedError, rather than as a stream of RuntimeWarnings
        errstate = np.errstate(over="ignore", invalid="ignore")
        # large steps are split in two shards of rows, run on two threads
        # (see skvae._parallel); small ones run here, with one BLAS thread
        if self.solver == "lbfgs":
            n_rows = X.shape[0]
        else:
            n_rows = self._batch_size(X.shape[0])
        with threads_for(n_rows, self._architecture_) as (workers, n_shards):
            objective = self._objective(workers, n_shards)
            with errstate:
                if self.solver == "lbfgs":
                    self._fit_lbfgs(X, objective, gen, rng)
                else:
                    self._fit_adam(X, objective, workers, gen, rng, incremental)
        if incremental and X.shape[0] > _STATS_ROWS:
            # fitted statistics from a subsample keep partial_fit's cost per
            # call close to one epoch
            X = X[np.sort(gen.choice(X.shape[0], _STATS_ROWS, replace=False))]
        with np.errstate(over="ignore", invalid="ignore"):
            self._after_fit(X)
        return self

    def _objective(self, workers=None, n_shards=1):
        opts = self._training_options()
        return Objective(
            self._architecture(),
            beta=opts["beta"],
            alpha=self.alpha,
            free_bits=opts["free_bits"],
            trim_fraction=opts["trim_fraction"],
            n_shards=n_shards,
            workers=workers,
        )

    def _noise_shape(self, n_rows):
        """Shape of the training noise for a batch: one draw per row, or K."""
        k = self._architecture_["latent_dim"]
        n_draws = self._training_options()["iwae_samples"]
        return (n_rows, k) if n_draws == 1 else (n_draws, n_rows, k)

    def _warmup_beta(self, objective, epoch):
        opts = self._training_options()
        if opts["kl_warmup"]:
            objective.beta = opts["beta"] * min(1.0, (epoch + 1) / opts["kl_warmup"])

    def _source(self, X):
        """Where the training loop gathers its batches from."""
        if sp.issparse(X):
            return _SparseSource(X, (1.0 / self.input_scale_).astype(X.dtype))
        if self._fast_path() and not np.isnan(X).any():
            scaling = self._uses_scaling()
            shift = self.input_mean_.astype(X.dtype) if scaling else None
            inv_scale = (1.0 / self.input_scale_).astype(X.dtype)
            return _ArraySource(X, shift, inv_scale)
        return _BatchSource(self._to_batch(X), self._layout_)

    def _fit_adam(self, X, objective, workers, gen, rng, incremental):
        arch = objective.arch
        theta = self.params_
        dtype = X.dtype
        early_stopping = self.early_stopping and not incremental
        if early_stopping:
            X, X_val, eps_val = self._validation_split(X, rng, gen)
        self._curve_shift = self._mean_log_scale(X)
        source = self._source(X)
        n = source.n
        batch_size = self._batch_size(n)
        optimizer = Adam(theta, self.learning_rate_init, state=self._optimizer_state)
        # per-batch work arrays, allocated once: the rows of a batch are
        # gathered into them, and the noise drawn into them
        n_full, rest = divmod(n, batch_size)
        sizes = [batch_size] * n_full + ([rest] if rest else [])
        x_buf = {s: source.buffer(s) for s in set(sizes)}
        eps_buf = {s: np.empty(self._noise_shape(s), dtype=dtype) for s in set(sizes)}
        n_epochs = 1 if incremental else self._epochs(n)
        mask_rate = self._training_options()["mask_rate"]
        hide = None
        if mask_rate and not isinstance(source, _BatchSource):
            mask_rate = 0.0  # sparse input: nothing to hide cells behind
        start = time.perf_counter()
        stopped_early = False
        best_params = None
        # what a KeyboardInterrupt falls back on: the last complete epoch
        kept = (theta.copy(), _copy_state(optimizer.state()), self.n_iter_)
        try:
            for epoch in range(n_epochs):
                optimizer.learning_rate = self.learning_rate_init * (
                    1.0 if incremental else self._learning_rate_factor(epoch, n_epochs)
                )
                self._warmup_beta(objective, self.n_iter_)
                perm = gen.permutation(n)
                total = recon = kl = 0.0
                begin = 0
                for size in sizes:
                    eb = eps_buf[size]
                    if arch.is_vae:
                        gen.standard_normal(out=eb, dtype=dtype)
                    if mask_rate:
                        hide = gen.random((size, arch.n_features)) < mask_rate
                    idx = perm[begin : begin + size]
                    xb, fill = source.batch(x_buf[size], idx, hide)
                    begin += size
                    loss, grads = objective.loss_and_grads(theta, xb, eb, fill=fill)
                    if not np.isfinite(loss):
                        self._diverged(loss)
                    optimizer.update(theta, grads, workers)
                    total += loss * size
                    recon += objective.parts[0] * size
                    kl += objective.parts[1] * size
                self.n_iter_ += 1
                self._record_epoch(total / n, recon / n, kl / n)
                if not np.all(np.isfinite(theta)):
                    self._diverged(np.nan)
                val_score = None
                if early_stopping:
                    val_score = self._validation_score(objective, theta, X_val, eps_val)
                if self.verbose:
                    self._print_progress(time.perf_counter() - start, val_score)
                improved = self._update_no_improvement(val_score)
                if early_stopping and improved:
                    best_params = theta.copy()
                kept = (theta.copy(), _copy_state(optimizer.state()), self.n_iter_)
                if incremental:
                    break
                if self._no_improvement_count > self.n_iter_no_change and (
                    early_stopping or self._stops_on_plateau()
                ):
                    stopped_early = True
                    if self.verbose:
                        what = "Validation score" if early_stopping else "Training loss"
                        print(
                            f"{what} did not improve more than tol={self.tol} for "
                            f"{self.n_iter_no_change} consecutive epochs. Stopping."
                        )
                    break
        except KeyboardInterrupt:
            theta[:] = kept[0] if best_params is None else best_params
            self._optimizer_state = kept[1]
            self._interrupted(kept[2], best_params is not None)
            return
        self._optimizer_state = optimizer.state()
        if early_stopping and best_params is not None:
            theta[:] = best_params
        if not incremental and not stopped_early and self._warn_at_max_iter():
            warnings.warn(
                f"Stochastic optimizer: maximum iterations ({n_epochs}) "
                "reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _interrupted(self, epoch, best):
        # the loss curves end at the last complete epoch, as the parameters do
        for curve in (self.loss_curve_, self.reconstruction_curve_, self.kl_curve_):
            del curve[epoch:]
        if self.validation_scores_ is not None:
            del self.validation_scores_[epoch:]
        self.n_iter_ = epoch
        what = "best validation score" if best else "last complete epoch"
        warnings.warn(
            f"Training interrupted (KeyboardInterrupt) after {epoch} epochs: the "
            f"estimator keeps the parameters of the {what} and can be used, or "
            "trained further with partial_fit or warm_start=True.",
            UserWarning,
            stacklevel=4,
        )

    def _mean_log_scale(self, X):
        """Mean over rows of the scaling's log-determinant on observed cells."""
        if self._default_likelihood() == "squared_error":
            return 0.0
        log_scale = np.log(self.input_scale_)
        if sp.issparse(X) or not np.isnan(X).any():
            return float(np.sum(log_scale))
        observed = np.mean(~np.isnan(X), axis=0)
        return float(observed @ log_scale)

    def _record_epoch(self, loss, recon, kl):
        # the VAE's negative log-likelihoods are computed on standardised
        # features; shifted by log|det| of the scaling, the curves are in
        # nats of the input data, comparable with -score_samples
        shift = getattr(self, "_curve_shift", 0.0)
        self.loss_curve_.append(loss + shift)
        self.reconstruction_curve_.append(recon + shift)
        self.kl_curve_.append(kl)

    def _batch_size(self, n):
        return min(200, n) if self.batch_size == "auto" else min(self.batch_size, n)

    def _leaving_collapse(self):
        """Whether the KL term is still rising from near 0 (see _COLLAPSE_KL)."""
        kl, n = self.kl_curve_, self.n_iter_no_change
        return len(kl) > n and kl[-n - 1] < kl[-1] < _COLLAPSE_KL

    def _update_no_improvement(self, val_score):
        """MLPRegressor's stopping rule; returns whether this epoch is best.

        Epochs in which the model is leaving a posterior-collapse plateau
        (:meth:`_leaving_collapse`) count neither way, nor do the epochs of
        the KL warm-up: a stop needs ``n_iter_no_change`` epochs at the full
        ``beta``. The training loss of a warm-up epoch weighs the KL term
        less, so it is not compared with later ones: the best loss restarts
        at the first epoch at the full ``beta``.
        """
        # n_iter_ < warmup: an epoch at a KL weight below beta
        warmup = self._training_options()["kl_warmup"] if self.solver == "adam" else 0
        loss = self.loss_curve_[-1]
        if self.n_iter_ <= warmup:  # the warm-up, or its first epoch after
            self.best_loss_ = np.inf
        if val_score is not None:
            # the validation score is unweighted by beta, so it compares
            # across the warm-up; only the stop waits for its end
            if val_score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += not (
                    self._leaving_collapse() or self.n_iter_ < warmup
                )
            else:
                self._no_improvement_count = 0
            improved = val_score > self.best_validation_score_
            if improved:
                self.best_validation_score_ = val_score
            self.best_loss_ = min(self.best_loss_, loss)
            return improved
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += not self._leaving_collapse()
        else:
            self._no_improvement_count = 0
        improved = loss < self.best_loss_
        if improved:
            self.best_loss_ = loss
        return improved

    def _validation_split(self, X, rng, gen):
        """Training rows, encoded validation rows and their fixed noise."""
        X, X_val = train_test_split(
            X, test_size=self.validation_fraction, random_state=rng
        )
        if X_val.shape[0] < 2:
            raise ValueError(
                "early_stopping needs at least 2 validation rows: raise "
                "validation_fraction or pass more data."
            )
        k = self._architecture_["latent_dim"]
        eps_val = gen.standard_normal((X_val.shape[0], k), dtype=X.dtype)
        return X, self._to_batch(X_val), eps_val

    def _validation_score(self, objective, theta, X_val, eps_val):
        """The ELBO (or minus the error) of the held-out rows, recorded.

        Unweighted by beta and in the units of ``score_samples``.
        """
        objective(theta, X_val, eps_val, need_grad=False)
        score = -sum(objective.parts)
        if self._default_likelihood() != "squared_error":
            score -= float(np.mean(self._log_scale(X_val)))
        self.validation_scores_.append(score)
        return score

    def _fit_lbfgs(self, X, objective, gen, rng):
        objective.beta = self._training_options()["beta"]
        if self.early_stopping:
            X, X_val, eps_val = self._validation_split(X, rng, gen)
        self._curve_shift = self._mean_log_scale(X)
        Xs = self._to_batch(X)
        n_rows = X.shape[0]
        # one draw of the noise, held fixed: the objective is deterministic,
        # as a quasi-Newton line search needs
        eps = gen.standard_normal(self._noise_shape(n_rows), dtype=X.dtype)
        start = time.perf_counter()
        max_iter = self._epochs(n_rows)
        last = {}
        best = {}

        def fun(theta):
            loss, grad = objective(theta, Xs, eps)
            if not np.isfinite(loss):
                self._diverged(loss)
            last["parts"] = objective.parts
            return loss, grad

        def on_iteration(loss, x):
            self.n_iter_ += 1
            last["x"] = x.copy()
            self._record_epoch(loss, *last["parts"])
            if not self.early_stopping:
                self._update_no_improvement(None)
                if self.verbose:
                    self._print_progress(time.perf_counter() - start, None)
                return
            # the fixed training noise can be over-fitted: stop on the
            # held-out ELBO and keep the best iterate, as adam does
            theta = x.astype(self.params_.dtype)
            val_score = self._validation_score(objective, theta, X_val, eps_val)
            if self.verbose:
                self._print_progress(time.perf_counter() - start, val_score)
            if self._update_no_improvement(val_score):
                best["params"] = theta
            if self._no_improvement_count > self.n_iter_no_change:
                raise StopIteration

        start_params = self.params_.copy()
        try:
            result = minimize_lbfgs(
                fun, self.params_, max_iter, self.tol, callback=on_iteration
            )
        except KeyboardInterrupt:
            # the line search leaves trial points in params_: go back to the
            # best (or last accepted) iterate
            fallback = best.get("params", last.get("x", start_params))
            self.params_[:] = fallback
            self._interrupted(self.n_iter_, "params" in best)
            return
        if "params" in best:
            self.params_[:] = best["params"]
        if not np.all(np.isfinite(self.params_)):
            self._diverged(np.nan)
        if result.status == 1 and not self.early_stopping:
            warnings.warn(
                f"lbfgs failed to converge after {max_iter} iterations "
                f"(status={result.status}): {result.message}. Increase max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _diverged(self, loss):
        last = [v for v in self.loss_curve_ if np.isfinite(v)]
        last_msg = f" (last finite loss {last[-1]:.6g})" if last else ""
        raise TrainingDivergedError(
            f"Training diverged: the loss became {loss} at epoch "
            f"{self.n_iter_ + 1}{last_msg}. Lower learning_rate_init (now "
            f"{self.learning_rate_init}), raise alpha, or check the data "
            "for extreme values (standardize=True scales each feature)."
        )

    def _print_progress(self, elapsed, val_score):
        msg = f"Iteration {self.n_iter_}, loss = {self.loss_curve_[-1]:.6f}"
        if self._default_likelihood() != "squared_error":
            msg += (
                f" (reconstruction = {self.reconstruction_curve_[-1]:.6f}, "
                f"KL = {self.kl_curve_[-1]:.6f})"
            )
        if val_score is not None:
            msg += f", validation score = {val_score:.6f}"
        msg += f", {elapsed:.2f} s"
        print(msg, file=sys.stdout, flush=True)

    # -- inference ----------------------------------------------------------------

    def _for_chunks(self, fn, n_rows, width, draws=1, in_order=False):
        """Call ``fn(rows)`` on slices of at most ``_CHUNK_ELEMENTS / width`` rows.

        Chunks follow the threading rule of training for matrix products of
        ``draws`` times their rows: large ones are spread over two threads,
        unless ``in_order`` (``fn`` draws from a shared random generator).
        ``fn`` writes its results itself; each row's result does not depend
        on the chunking.
        """
        size = max(1, min(n_rows, _CHUNK_ELEMENTS // max(1, width * draws)))
        split = not in_order
        with threads_for(size * draws, self._architecture_, split) as (workers, shards):
            n_threads = workers.n_threads
            if shards > 1:
                # at least one chunk per shard. By the shards (fixed by the
                # shapes), not the threads (BLAS's limit now): a row's bits
                # may depend on its chunk's number of rows (BLAS picks its
                # kernels by the shapes of a product)
                size = min(size, -(-n_rows // shards))
            chunks = list(gen_batches(n_rows, size))
            groups = [chunks[i::n_threads] for i in range(n_threads)]

            def run(group):
                for rows in group:
                    fn(rows)

            workers.map(run, [g for g in groups if g])

    def _widest(self):
        arch = self._architecture()
        return max(
            arch.n_inputs,
            arch.table.n_outputs,
            arch.latent_dim * 2,
            *arch.hidden,
        )

    def _rows(self, C, rows):
        """Codes of some rows, dense."""
        part = C[rows]
        return part.toarray() if sp.issparse(part) else part

    def _encode(self, X):
        """Codes -> code (AE) or posterior mean (VAE), in chunks."""
        arch = self._architecture()
        theta = self._params_for(X.dtype)
        out = np.empty((X.shape[0], arch.latent_dim), dtype=X.dtype)

        def encode(rows):
            batch = self._to_batch(self._rows(X, rows))
            inputs = batch.inputs if isinstance(batch, Batch) else batch
            out[rows] = arch.encode(theta, inputs)[0]

        self._for_chunks(encode, X.shape[0], self._widest())
        return out

    def _decode(self, Z, gen=None):
        """Codes -> rows in the user's columns: the decoder's mean, or with a
        generator ``gen`` one draw from p(x | z)."""
        return self._from_internal(self._decode_internal(Z, gen))

    def _decode_internal(self, Z, gen=None):
        """As :meth:`_decode`, in the internal order and scaling."""
        arch = self._architecture()
        theta = self._params_for(Z.dtype)
        out = np.empty((Z.shape[0], arch.n_features), dtype=Z.dtype)

        def decode(rows):
            if gen is None:
                out[rows] = arch.decode_mean(theta, Z[rows])
            else:
                out[rows] = arch.decode_sample(theta, Z[rows], gen)

        # draws come from one generator, in order
        self._for_chunks(decode, Z.shape[0], self._widest(), in_order=gen is not None)
        return out

    def transform(self, X):
        """Encode ``X`` to the latent space.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Rows to encode; missing cells are allowed.

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim)
            The code (autoencoder) or the posterior mean of q(z | x) (VAE),
            in the dtype of ``X`` (float32 or float64).
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        return self._encode(X)

    def inverse_transform(self, X):
        """Decode latent codes back to the input space.

        Parameters
        ----------
        X : array-like of shape (n_samples, latent_dim)
            Codes, for example from :meth:`transform`.

        Returns
        -------
        X_original : ndarray or DataFrame of shape (n_samples, n_features)
            The decoder's output (mean of p(x | z) for the VAEs; for the
            Bernoulli likelihood, probabilities in [0, 1]; for categorical
            columns, the most probable level). A DataFrame with the training
            columns and dtypes when the model was fitted on one.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32])
        k = self._architecture_["latent_dim"]
        if Z.shape[1] != k:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform of "
                f"{type(self).__name__} expects latent_dim={k} features."
            )
        return self._decode(Z)

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over the rows of ``X``.

        Higher is better, so model selection (``GridSearchCV``,
        ``cross_val_score``) works without a scorer.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Rows to score.
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        return float(np.mean(self.score_samples(X)))

    def _sample_rng(self, random_state):
        if random_state is None:
            random_state = self.random_state
        return np.random.default_rng(
            check_random_state(random_state).randint(np.iinfo(np.int32).max)
        )

    @property
    def _n_features_out(self):
        return self._architecture_["latent_dim"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        tags.input_tags.categorical = True
        return tags


def _same_raw_groups(old, new):
    """Whether two layouts have the same likelihood groups, up to the fitted
    statistics of the raw-value groups."""
    if not _columns.has_raw_groups(new) or old["likelihoods"] != new["likelihoods"]:
        return False
    if old.get("column_options") != new.get("column_options"):
        return False
    strip = [
        (n, k, {a: b for a, b in o.items() if a not in _columns.STAT_KEYS})
        for n, k, o in old["groups"]
    ]
    return strip == [tuple(g) for g in new["groups"]]


def _n_columns(X):
    """Columns of a 2-D array-like (0 otherwise: validation then says why)."""
    shape = getattr(X, "shape", None)
    if shape is None:
        shape = np.shape(np.asarray(X, dtype=object))
    return shape[1] if len(shape) == 2 else 0


def _copy_state(state):
    if state is None:
        return None
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state.items()}
