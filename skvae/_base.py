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
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._objectives import Architecture, Objective
from ._optimizers import Adam, minimize_lbfgs
from ._parallel import threads_for
from ._scaling import fit_column_scaling

#: Rows times widest layer per inference chunk: bounds the memory of
#: ``transform``, ``score_samples`` and ``sample`` whatever the input size.
_CHUNK_ELEMENTS = 1 << 21

#: The stopping rule does not count an epoch without improvement while the
#: KL term (nats per row) is below this and above its value n_iter_no_change
#: epochs earlier: the model is leaving a posterior-collapse plateau, on which
#: the loss stays flat for tens of epochs before it falls.
_COLLAPSE_KL = 1.0

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


class BaseAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared machinery of the skvae estimators; not for direct use."""

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
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # -- what subclasses decide ----------------------------------------------

    def _likelihood(self):
        """``"squared_error"`` for the autoencoder, else the VAE's likelihood."""
        raise NotImplementedError

    def _training_options(self):
        """Objective options: beta, free bits, warm-up epochs."""
        return {
            "beta": 1.0,
            "free_bits": 0.0,
            "kl_warmup": 0,
            "iwae_samples": 1,
            "trim_fraction": 0.0,
        }

    def _after_fit(self, X):
        """Hook for fitted statistics that need the training rows."""

    # -- input handling --------------------------------------------------------

    def _check_X(self, X, reset):
        X = validate_data(
            self, X, dtype=[np.float64, np.float32], reset=reset, copy=False
        )
        if self._likelihood() == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                "likelihood='bernoulli' needs data in [0, 1]; got values in "
                f"[{X.min():.4g}, {X.max():.4g}]. Scale the data (for example "
                "with MinMaxScaler) or use likelihood='gaussian'."
            )
        return X

    def _uses_scaling(self):
        return self.standardize and self._likelihood() != "bernoulli"

    def _fit_scaling(self, X):
        if self._uses_scaling():
            method = "standard" if self.standardize is True else self.standardize
            mean, scale = fit_column_scaling(X, method)
        else:
            mean = np.zeros(X.shape[1])
            scale = np.ones(X.shape[1])
        self.input_mean_ = mean
        self.input_scale_ = scale

    def _scale(self, X, out=None):
        """Standardise rows (into ``out`` if given; ``out`` may be ``X``)."""
        if not self._uses_scaling():
            return X if out is None else out
        dtype = X.dtype
        out = np.subtract(X, self.input_mean_.astype(dtype), out=out)
        out /= self.input_scale_.astype(dtype)
        return out

    def _unscale(self, Xs):
        if not self._uses_scaling():
            return Xs
        dtype = Xs.dtype
        Xs *= self.input_scale_.astype(dtype)
        Xs += self.input_mean_.astype(dtype)
        return Xs

    def _log_scale_sum(self):
        """log |det| of the scaling: converts densities to input units."""
        return float(np.sum(np.log(self.input_scale_)))

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

    def _new_architecture(self, n_samples, n_features):
        hidden, latent_dim = self._network_shape(n_samples, n_features)
        return {
            "n_features": n_features,
            "latent_dim": latent_dim,
            "hidden_layer_sizes": hidden,
            "activation": self.activation,
            "likelihood": self._likelihood(),
            "decoder_variance": getattr(self, "decoder_variance", "feature"),
            "variance_floor": 1e-3,
        }

    def _params_for(self, dtype):
        return self.params_.astype(dtype, copy=False)

    # -- fitting ---------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
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

        The first call sets the input scaling and initialises the network;
        later calls continue from where the last one stopped (the Adam moments
        are kept). Only ``solver="adam"`` supports it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
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

    def _fit(self, X, incremental):
        rng = check_random_state(self.random_state)
        dtype = X.dtype
        fresh = not hasattr(self, "params_") or not (incremental or self.warm_start)
        if fresh:
            self._fit_scaling(X)
            self._architecture_ = self._new_architecture(*X.shape)
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
            # one seed for everything random after fit (scores, noise), so
            # that they are a function of the fitted model alone
            self._score_seed = int(rng.randint(np.iinfo(np.int32).max))
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

    def _fit_adam(self, X, objective, workers, gen, rng, incremental):
        arch = objective.arch
        theta = self.params_
        dtype = X.dtype
        early_stopping = self.early_stopping and not incremental
        if early_stopping:
            X, X_val, eps_val = self._validation_split(X, rng, gen)
        n = X.shape[0]
        batch_size = self._batch_size(n)
        optimizer = Adam(theta, self.learning_rate_init, state=self._optimizer_state)
        # per-batch work arrays, allocated once: the rows of a batch are
        # gathered into them with np.take, and the noise drawn into them
        n_full, rest = divmod(n, batch_size)
        sizes = [batch_size] * n_full + ([rest] if rest else [])
        x_buf = {s: np.empty((s, X.shape[1]), dtype=dtype) for s in set(sizes)}
        eps_buf = {s: np.empty(self._noise_shape(s), dtype=dtype) for s in set(sizes)}
        n_epochs = 1 if incremental else self._epochs(X.shape[0])
        scaling = self._uses_scaling()
        shift = self.input_mean_.astype(dtype)
        inv_scale = (1.0 / self.input_scale_).astype(dtype)
        start = time.perf_counter()
        stopped_early = False
        best_params = None
        for _ in range(n_epochs):
            self._warmup_beta(objective, self.n_iter_)
            perm = gen.permutation(n)
            total = recon = kl = 0.0
            begin = 0
            for size in sizes:
                xb, eb = x_buf[size], eps_buf[size]
                if arch.is_vae:
                    gen.standard_normal(out=eb, dtype=dtype)

                def fill(rows, xb=xb, idx=perm[begin : begin + size]):
                    # gather and standardise the batch in its own buffer, by
                    # each shard for its rows: the data are never copied whole
                    part = np.take(X, idx[rows], axis=0, out=xb[rows])
                    if scaling:
                        part -= shift
                        part *= inv_scale

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
            if incremental:
                break
            if self._no_improvement_count > self.n_iter_no_change:
                stopped_early = True
                if self.verbose:
                    what = "Validation score" if early_stopping else "Training loss"
                    print(
                        f"{what} did not improve more than tol={self.tol} for "
                        f"{self.n_iter_no_change} consecutive epochs. Stopping."
                    )
                break
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

    def _record_epoch(self, loss, recon, kl):
        # the VAE's negative log-likelihoods are computed on standardised
        # features; shifted by log|det| of the scaling, the curves are in
        # nats of the input data, comparable with -score_samples
        shift = (
            self._log_scale_sum()
            if self._architecture_["likelihood"] != "squared_error"
            else 0.0
        )
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
        (:meth:`_leaving_collapse`) count neither way.
        """
        if val_score is not None:
            if val_score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += not self._leaving_collapse()
            else:
                self._no_improvement_count = 0
            improved = val_score > self.best_validation_score_
            if improved:
                self.best_validation_score_ = val_score
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])
            return improved
        loss = self.loss_curve_[-1]
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += not self._leaving_collapse()
        else:
            self._no_improvement_count = 0
        improved = loss < self.best_loss_
        if improved:
            self.best_loss_ = loss
        return improved

    def _validation_split(self, X, rng, gen):
        """Training rows, standardised validation rows and their fixed noise."""
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
        return X, self._scale(X_val), eps_val

    def _validation_score(self, objective, theta, X_val, eps_val):
        """The ELBO (or minus the error) of the held-out rows, recorded.

        Unweighted by beta and in the units of ``score_samples``.
        """
        objective(theta, X_val, eps_val, need_grad=False)
        score = -sum(objective.parts)
        if self._architecture_["likelihood"] != "squared_error":
            score -= self._log_scale_sum()
        self.validation_scores_.append(score)
        return score

    def _fit_lbfgs(self, X, objective, gen, rng):
        objective.beta = self._training_options()["beta"]
        if self.early_stopping:
            X, X_val, eps_val = self._validation_split(X, rng, gen)
        Xs = self._scale(X)
        # one draw of the noise, held fixed: the objective is deterministic,
        # as a quasi-Newton line search needs
        eps = gen.standard_normal(self._noise_shape(Xs.shape[0]), dtype=Xs.dtype)
        start = time.perf_counter()
        max_iter = self._epochs(Xs.shape[0])
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

        result = minimize_lbfgs(
            fun, self.params_, max_iter, self.tol, callback=on_iteration
        )
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
        raise TrainingDivergedError(
            f"Training diverged: the loss became {loss} at epoch "
            f"{self.n_iter_ + 1}. Lower learning_rate_init (now "
            f"{self.learning_rate_init}), raise alpha, or check the data "
            "for extreme values (standardize=True scales each feature)."
        )

    def _print_progress(self, elapsed, val_score):
        msg = f"Iteration {self.n_iter_}, loss = {self.loss_curve_[-1]:.6f}"
        if self._architecture_["likelihood"] != "squared_error":
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
        with threads_for(size * draws, self._architecture_, split) as (workers, _):
            n_threads = workers.n_threads
            if n_threads > 1:
                # at least one chunk per thread
                size = min(size, -(-n_rows // n_threads))
            chunks = list(gen_batches(n_rows, size))
            groups = [chunks[i::n_threads] for i in range(n_threads)]

            def run(group):
                for rows in group:
                    fn(rows)

            workers.map(run, [g for g in groups if g])

    def _widest(self):
        arch = self._architecture_
        return max(
            arch["n_features"] * 2,
            arch["latent_dim"] * 2,
            *arch["hidden_layer_sizes"],
        )

    def _encode(self, X):
        """Scaled rows -> code (AE) or posterior mean (VAE), in chunks."""
        arch = self._architecture()
        theta = self._params_for(X.dtype)
        out = np.empty((X.shape[0], arch.latent_dim), dtype=X.dtype)

        def encode(rows):
            out[rows] = arch.encode(theta, self._scale(X[rows]))[0]

        self._for_chunks(encode, X.shape[0], self._widest())
        return out

    def _decode(self, Z):
        arch = self._architecture()
        theta = self._params_for(Z.dtype)
        out = np.empty((Z.shape[0], arch.n_features), dtype=Z.dtype)

        def decode(rows):
            out[rows] = arch.decode_mean(theta, Z[rows])

        self._for_chunks(decode, Z.shape[0], self._widest())
        return self._unscale(out)

    def transform(self, X):
        """Encode ``X`` to the latent space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to encode.

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
        X_original : ndarray of shape (n_samples, n_features)
            The decoder's output (mean of p(x | z) for the VAEs; for the
            Bernoulli likelihood, probabilities in [0, 1]).
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
        X : array-like of shape (n_samples, n_features)
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
        return tags
