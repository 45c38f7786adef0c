"""Training objectives and likelihood estimates as functions of a flat vector.

:class:`Architecture` says where every block of parameters lives in the flat
vector ``theta`` (encoder, decoder, likelihood parameters). The objectives
are callables ``f(theta, X, eps) -> (loss, grad)``: given the same
arguments they return the same values, and all randomness (the
reparameterisation noise ``eps``) comes in as an argument. That is what makes
finite-difference checks and a deterministic L-BFGS objective possible. They
keep per-batch-size work buffers so the training loop allocates nothing per
mini-batch; the gradient they return is one of those buffers, valid until the
next call.

The VAE (Kingma and Welling, 2014) minimises the negative evidence lower bound
per row,

    -E_q[log p(x | z)] + beta * KL(q(z | x) || N(0, I)),

with ``q(z | x) = N(mu(x), diag(exp(log_var(x))))``, one reparameterised draw
``z = mu + exp(log_var / 2) * eps`` per row, and the KL term in closed form,

    KL = 1/2 * sum_j (mu_j^2 + exp(log_var_j) - log_var_j - 1).
"""

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from ._likelihoods import LikelihoodTable
from ._network import (
    backward,
    forward,
    init_layers,
    n_params,
    ones,
    unpack,
    weight_sq_norm,
)
from ._parallel import SERIAL

#: Likelihood groups whose variance follows ``decoder_variance``.
_VARIANCE_GROUPS = ("gaussian", "lognormal", "logit_normal")

#: The encoder's log-variance is clipped to this range so that exp() can
#: neither overflow nor underflow in float32, whatever the input.
LOG_VAR_BOUND = 30.0


class Batch(NamedTuple):
    """Rows as the network sees them.

    ``inputs`` feed the encoder (with one-hot categories and missingness
    indicators; a CSR matrix for sparse data), ``targets`` are what the
    likelihood scores (one column per input column, in the model's internal
    order and scaling) and ``mask`` is 1 on observed cells and 0 on missing
    ones, or None when every cell is observed. A plain array stands for a
    batch whose inputs are its targets, with every cell observed.
    """

    inputs: object
    targets: np.ndarray
    mask: object = None

    def rows(self, part):
        return Batch(
            self.inputs[part],
            self.targets[part],
            None if self.mask is None else self.mask[part],
        )


def as_batch(X):
    """A :class:`Batch` from a batch or an array of fully observed rows."""
    return X if isinstance(X, Batch) else Batch(X, X, None)


class Architecture:
    """Layout of an autoencoder's parameters in one flat vector.

    Parameters
    ----------
    n_features : int
        Number of columns (targets of the likelihood).
    latent_dim : int
        Code width.
    hidden_layer_sizes : tuple of int
        Encoder hidden widths; the decoder mirrors them.
    activation : str
        Hidden activation.
    likelihood : {"squared_error", "gaussian", "bernoulli"}
        ``"squared_error"`` makes a deterministic autoencoder; the others
        make a VAE. Without ``table`` every column has this likelihood.
    decoder_variance : {"feature", "shared", "row"}, default="feature"
        Gaussian decoder variance: one learned value per feature, one shared
        scalar, or one per row and feature from a second decoder head.
    variance_floor : float, default=1e-3
        Lower bound of the Gaussian decoder variance.
    table : list of (str, int, dict) or None, default=None
        Likelihood groups ``(name, n_columns, options)`` in the internal
        column order (see :class:`skvae._likelihoods.LikelihoodTable`);
        None is one group of ``likelihood`` over all columns.
    n_inputs : int or None, default=None
        Encoder input width (one-hot levels and missingness indicators
        included); None is ``n_features``.
    n_indicators : int, default=0
        The last ``n_indicators`` inputs are missingness indicators.
    """

    def __init__(
        self,
        n_features,
        latent_dim,
        hidden_layer_sizes,
        activation,
        likelihood,
        decoder_variance="feature",
        variance_floor=1e-3,
        table=None,
        n_inputs=None,
        n_indicators=0,
    ):
        self.n_features = int(n_features)
        self.latent_dim = int(latent_dim)
        self.hidden = tuple(int(h) for h in hidden_layer_sizes)
        self.activation = activation
        self.likelihood = likelihood
        self.decoder_variance = decoder_variance
        self.variance_floor = float(variance_floor)
        self.is_vae = likelihood != "squared_error"
        groups = table if table is not None else [(likelihood, self.n_features, {})]
        gaussian = {"variance": decoder_variance, "floor": self.variance_floor}
        self.table = LikelihoodTable(
            [
                (name, n, {**opts, **gaussian} if name in _VARIANCE_GROUPS else opts)
                for name, n, opts in groups
            ],
            mean_over_cells=not self.is_vae,
        )
        self.n_inputs = int(n_inputs) if n_inputs is not None else self.n_features
        self.n_indicators = int(n_indicators)
        k = self.latent_dim
        self.encoder_sizes = (self.n_inputs, *self.hidden, 2 * k if self.is_vae else k)
        self.decoder_sizes = (k, *self.hidden[::-1], self.table.n_outputs)
        self.decoder_offset = n_params(self.encoder_sizes)
        self.likelihood_offset = self.decoder_offset + n_params(self.decoder_sizes)
        self.size = self.likelihood_offset + self.table.n_params

    def encoder(self, theta):
        """Views of the encoder layers in ``theta``."""
        return unpack(theta, self.encoder_sizes, 0)

    def decoder(self, theta):
        """Views of the decoder layers in ``theta``."""
        return unpack(theta, self.decoder_sizes, self.decoder_offset)

    def likelihood_params(self, theta):
        """View of the free likelihood parameters (may be empty)."""
        return theta[self.likelihood_offset : self.size]

    def init_params(self, rng, dtype):
        """A freshly initialised flat parameter vector."""
        theta = np.zeros(self.size, dtype=dtype)
        init_layers(self.encoder(theta), self.activation, rng)
        init_layers(self.decoder(theta), self.activation, rng)
        W, b = self.decoder(theta)[-1]
        self.table.init(self.likelihood_params(theta), W, b)
        if self.n_indicators:
            # a column may have no missing cell in the training rows: its
            # indicator then never varies, and weights starting at 0 keep it
            # from adding noise it cannot unlearn when a cell is missing later
            W0 = self.encoder(theta)[0][0]
            W0[self.n_inputs - self.n_indicators :] = 0.0
        return theta

    # -- inference helpers (no gradient; allocate freely) -------------------

    def _run(self, layers, sizes, X):
        acts = [np.empty((X.shape[0], s), dtype=X.dtype) for s in sizes[1:]]
        return forward(layers, X, self.activation, acts)

    def encode(self, theta, X):
        """Code (AE) or posterior mean and log-variance (VAE) for encoder inputs."""
        H = self._run(self.encoder(theta), self.encoder_sizes, X)
        if not self.is_vae:
            return H, None
        k = self.latent_dim
        log_var = np.clip(H[:, k:], -LOG_VAR_BOUND, LOG_VAR_BOUND)
        return np.ascontiguousarray(H[:, :k]), log_var

    def decode_raw(self, theta, Z):
        """Linear decoder output for codes ``Z``."""
        return self._run(self.decoder(theta), self.decoder_sizes, Z)

    def decode_mean(self, theta, Z):
        """Mean of p(x | z) (the reconstruction, for the AE; the most probable
        level of categorical columns), in the internal order and scaling."""
        dec_out = self.decode_raw(theta, Z)
        return self.table.mean(dec_out, self.likelihood_params(theta))

    def decode_sample(self, theta, Z, gen):
        """One draw from p(x | z) per code, in the internal order and scaling."""
        dec_out = self.decode_raw(theta, Z)
        return self.table.sample(dec_out, self.likelihood_params(theta), gen)

    def neg_log_lik(self, theta, X, dec_out, need_grad=False, mask=None, d_out=None):
        """-log p(x | z) per row for decoder output ``dec_out``, and gradients.

        Returns ``(nll, d_out, d_params)``, as
        :meth:`skvae._likelihoods.LikelihoodTable.nll`.
        """
        return self.table.nll(
            X, dec_out, self.likelihood_params(theta), need_grad, mask, d_out
        )

    def log_weights(self, theta, X, eps):
        """Importance log-weights ``log p(x, z_k) - log q(z_k | x)``: ``(K, n)``.

        ``X`` is a :class:`Batch` or an array of fully observed rows; only the
        observed cells enter ``p(x | z)``. Also returns the decoder output,
        shaped ``(K, n, n_outputs)``.
        """
        batch = as_batch(X)
        T, M = batch.targets, batch.mask
        n, k = T.shape[0], self.latent_dim
        n_draws = eps.shape[0]
        if eps.ndim == 2:
            eps = eps[:, None, :]
        mu, log_var = self.encode(theta, batch.inputs)
        std = np.exp(0.5 * log_var)
        # (K, n, k) codes, decoded as one batch of K * n rows
        Z = mu[None] + std[None] * eps
        dec_out = self.decode_raw(theta, Z.reshape(n_draws * n, k))
        # (K, n, .) decoder output against X broadcast: X is not replicated
        dec_out = dec_out.reshape(n_draws, n, -1)
        nll, _, _ = self.neg_log_lik(theta, T, dec_out, mask=M)
        log_w = -nll
        # log p(z) - log q(z | x); the 2 pi terms cancel
        log_w -= 0.5 * np.sum(Z * Z, axis=2)
        log_w += 0.5 * np.sum(eps * eps, axis=2)
        log_w += 0.5 * np.sum(log_var, axis=1)[None, :]
        return log_w, dec_out

    def log_likelihood(self, theta, X, eps):
        """Importance-weighted estimate of log p(x) per row.

        With ``K = len(eps)`` draws ``z_k = mu(x) + sigma(x) * eps_k`` from the
        encoder's posterior, the estimate is
        ``log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x)`` (Burda et al., 2016).
        It is a stochastic lower bound of log p(x) in expectation, equal to the
        ELBO for ``K = 1`` and tighter as ``K`` grows. With missing cells it
        estimates the density of the observed ones, ``log p(x_obs)``.

        Parameters
        ----------
        theta : ndarray
            Flat parameters.
        X : Batch or ndarray of shape (n_rows, n_features)
            Rows (already in the model's internal scaling).
        eps : ndarray of shape (K, latent_dim) or (K, n_rows, latent_dim)
            Standard normal noise, shared by all rows or one set per row.

        Returns
        -------
        log_px : ndarray of shape (n_rows,)
        """
        log_w, _ = self.log_weights(theta, X, eps)
        return logsumexp(log_w, axis=0) - np.log(eps.shape[0])


class _Buffers:
    """Work arrays for one batch size, allocated once and reused."""

    def __init__(self, arch, n, dtype):
        def alloc(widths):
            return [np.empty((n, w), dtype=dtype) for w in widths]

        self.enc_acts = alloc(arch.encoder_sizes[1:])
        self.enc_deltas = alloc(arch.encoder_sizes[1:-1])
        self.enc_tmps = alloc(arch.encoder_sizes[1:-1])
        self.dec_acts = alloc(arch.decoder_sizes[1:])
        self.dec_deltas = alloc(arch.decoder_sizes[1:-1])
        self.dec_tmps = alloc(arch.decoder_sizes[1:-1])
        k = arch.latent_dim
        self.z, self.std, self.log_var, self.kl = alloc([k, k, k, k])
        self.d_enc = np.empty((n, arch.encoder_sizes[-1]), dtype=dtype)
        self.d_out = np.empty((n, arch.decoder_sizes[-1]), dtype=dtype)


class _Shard:
    """One slice of rows of a batch: its buffers, its gradient, and what its
    forward pass leaves for its backward pass.

    Shards of one batch share nothing they write to, so they can run on
    different threads.
    """

    def __init__(self):
        self._buffers = {}
        self._grad = None
        self.saved = None

    def bufs(self, arch, n, dtype):
        key = (n, np.dtype(dtype).str)
        bufs = self._buffers.get(key)
        if bufs is None:
            if len(self._buffers) > 4:
                self._buffers.clear()
            bufs = self._buffers[key] = _Buffers(arch, n, dtype)
        return bufs

    def grad(self, theta):
        if (
            self._grad is None
            or self._grad.shape != theta.shape
            or self._grad.dtype != theta.dtype
        ):
            self._grad = np.empty_like(theta)
        return self._grad


class Objective:
    """Mean training loss per row and its gradient, ``f(theta, X, eps)``.

    Parameters
    ----------
    arch : Architecture
        Parameter layout; its ``likelihood`` decides between the autoencoder
        loss and the negative ELBO.
    beta : float, default=1.0
        Weight of the KL term (VAE only). Mutable between calls, for warm-up.
    alpha : float, default=0.0
        L2 penalty: ``alpha / (2 n_rows) * sum(W ** 2)`` over all weight
        matrices (not biases), as in scikit-learn's MLP.
    free_bits : float, default=0.0
        Nats per latent dimension under which the batch-mean KL of that
        dimension is not penalised (Kingma et al., 2016).
    trim_fraction : float, default=0.0
        Share of the rows of each batch, those with the highest loss, left
        out of the loss and its gradient (a trimmed mean). It makes training
        robust to outliers in the data: they stop pulling the model towards
        themselves.
    n_shards : int, default=1
        Slices of rows a batch is cut into. Each slice has its own forward
        and backward pass and gradient; the gradients are then summed. The
        result is the same whether the shards run one after the other or at
        once on ``workers``; it differs from one shard only by rounding.
    workers : skvae._parallel.Workers or None, default=None
        Threads that run the shards; None runs them in the calling thread.

    Notes
    -----
    With ``eps`` of shape ``(K, n_rows, latent_dim)`` the VAE loss is the
    importance-weighted bound of Burda et al. (2016) with K samples,
    ``-log (1/K) sum_k p(x | z_k) p(z_k)^beta / q(z_k | x)^beta``, which is
    the negative ELBO for K = 1 and tighter for larger K.

    A call runs in three phases, so that what couples the rows of a batch
    (the trimming, free bits, the penalty) sees the whole batch: a forward
    pass per shard gives per-row losses; they are reduced to the loss and
    the row weights; a backward pass per shard turns its row weights into a
    gradient.

    Attributes
    ----------
    parts : tuple of float
        ``(reconstruction, kl)`` of the last call: mean negative
        log-likelihood (or squared error) and mean closed-form KL per row
        (over the rows kept by the trimming), without ``beta``, free bits or
        the penalty.
    """

    def __init__(
        self,
        arch,
        beta=1.0,
        alpha=0.0,
        free_bits=0.0,
        trim_fraction=0.0,
        n_shards=1,
        workers=None,
    ):
        self.arch = arch
        self.beta = beta
        self.alpha = alpha
        self.free_bits = free_bits
        self.trim_fraction = trim_fraction
        self.n_shards = n_shards
        self.workers = workers
        self.parts = (np.nan, np.nan)
        self._shards = []

    def _row_weights(self, row_loss, dtype):
        """Weights that average the loss over the rows kept by the trimming.

        A scalar ``1 / n`` without trimming, else a column with ``1 / m`` on
        the ``m`` rows of lowest loss and 0 on the others.
        """
        n = row_loss.shape[0]
        n_drop = int(self.trim_fraction * n)
        if n_drop == 0:
            return dtype(1.0 / n)
        keep = np.argpartition(row_loss, n - n_drop - 1)[: n - n_drop]
        weights = np.zeros((n, 1), dtype=row_loss.dtype)
        weights[keep] = 1.0 / (n - n_drop)
        return weights

    def __call__(self, theta, X, eps=None, need_grad=True):
        """Loss (a Python float) and gradient (an array like ``theta``, or None).

        Parameters
        ----------
        theta : ndarray of shape (arch.size,)
            Flat parameters, in the dtype of ``X``.
        X : ndarray of shape (n_rows, n_features)
            A batch of rows.
        eps : ndarray of shape (n_rows, latent_dim) or (K, n_rows, latent_dim)
            Standard normal noise for the reparameterisation (VAE only); with
            a leading axis of K draws the loss is the importance-weighted
            bound.
        need_grad : bool, default=True
            Whether to compute the gradient. The gradient is a work buffer of
            this objective, valid until its next call.
        """
        loss, grads = self.loss_and_grads(theta, X, eps, need_grad)
        if grads is None:
            return loss, None
        grad = grads[0]
        if len(grads) > 1:
            # sum the shards' gradients, each thread over its part of the vector
            cuts = [grad.size * i // len(grads) for i in range(len(grads) + 1)]

            def add(part):
                for other in grads[1:]:
                    grad[part] += other[part]

            self._run(add, [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])])
        return loss, grad

    def loss_and_grads(self, theta, X, eps=None, need_grad=True, fill=None):
        """Loss and the list of the shards' gradients (their sum is the gradient).

        The optimizer can sum them while it reads them, rather than in a pass
        of its own. Arguments as for calling the objective, and ``fill``: None,
        or a function ``fill(rows)`` that writes ``X[rows]`` (a slice); each
        shard calls it for its rows before reading them, so that gathering a
        batch runs on the shards' threads too.
        """
        arch = self.arch
        X = as_batch(X)
        n = X.targets.shape[0]
        iwae = arch.is_vae and eps.ndim == 3
        n_shards = max(1, min(self.n_shards, n))
        while len(self._shards) < n_shards:
            self._shards.append(_Shard())
        bounds = [n * i // n_shards for i in range(n_shards + 1)]
        jobs = []
        for shard, lo, hi in zip(self._shards, bounds[:-1], bounds[1:]):
            eps_s = None
            if arch.is_vae:
                eps_s = eps[:, lo:hi] if iwae else eps[lo:hi]
            jobs.append((shard, X.rows(slice(lo, hi)), eps_s, slice(lo, hi)))
        forward_pass = self._iwae_forward if iwae else self._forward
        backward_pass = self._iwae_backward if iwae else self._backward
        reduce = self._iwae_reduce if iwae else self._reduce
        dtype = X.targets.dtype.type

        # Without trimming or free bits every row weighs 1 / n and every latent
        # dimension is penalised: a shard's backward pass needs nothing from
        # the others and follows its forward pass at once.
        coupled = self.trim_fraction > 0 or (self.free_bits > 0 and not iwae)
        if need_grad and not coupled:

            def forward_backward(job):
                if fill is not None:
                    fill(job[3])
                rows = forward_pass(theta, *job[:3], True)
                return rows, backward_pass(theta, job[0], dtype(1.0 / n), None)

            out = self._run(forward_backward, jobs)
            loss = reduce([rows for rows, _ in out], dtype)[0]
            grads = [grad for _, grad in out]
        else:

            def forward_job(job):
                if fill is not None:
                    fill(job[3])
                return forward_pass(theta, *job[:3], need_grad)

            rows = self._run(forward_job, jobs)
            loss, weights, active = reduce(rows, dtype)
            grads = None
            if need_grad:

                def backward_job(job):
                    w = weights if np.ndim(weights) == 0 else weights[job[3]]
                    return backward_pass(theta, job[0], w, active)

                grads = self._run(backward_job, jobs)
        if self.alpha:
            loss += 0.5 * self.alpha * weight_sq_norm(self._layers(theta)) / n
            if grads is not None:
                # the penalty's gradient, once, in the first shard's gradient
                c = dtype(self.alpha / n)
                for (W, _), (gW, _) in zip(self._layers(theta), self._layers(grads[0])):
                    gW += c * W
        return loss, grads

    def _run(self, fn, jobs):
        return (self.workers or SERIAL).map(fn, jobs)

    def _layers(self, theta):
        return self.arch.encoder(theta) + self.arch.decoder(theta)

    # -- the negative ELBO (one draw per row) and the autoencoder loss ------

    def _forward(self, theta, shard, X, eps, need_grad):
        """Per-row losses of a shard: ``(nll, kl_el)``; saves the rest."""
        arch = self.arch
        E, T, M = X
        dtype = T.dtype.type
        bufs = shard.bufs(arch, T.shape[0], T.dtype)
        H = forward(arch.encoder(theta), E, arch.activation, bufs.enc_acts)
        mu = log_var = std = var = kl_el = None
        if arch.is_vae:
            mu, log_var, std = self._posterior(H, bufs, dtype)
            z = np.multiply(std, eps, out=bufs.z)
            z += mu
        else:
            z = H
        dec_out = forward(arch.decoder(theta), z, arch.activation, bufs.dec_acts)
        nll, d_out, d_raw = arch.neg_log_lik(
            theta, T, dec_out, need_grad, M, bufs.d_out
        )
        if arch.is_vae:
            # element-wise KL: (mu^2 + exp(log_var) - log_var - 1) / 2
            var = np.multiply(std, std, out=bufs.kl)
            kl_el = np.multiply(mu, mu)
            kl_el += var
            kl_el -= log_var
            kl_el -= 1
            kl_el *= dtype(0.5)
        shard.saved = (E, eps, H, mu, log_var, std, var, z, d_out, d_raw, bufs)
        return nll, kl_el

    def _reduce(self, rows, dtype):
        """Loss, row weights and active latent dimensions of the whole batch."""
        nll = _concat([r[0] for r in rows])
        kl_el = _concat([r[1] for r in rows]) if self.arch.is_vae else None
        row_loss = nll
        if kl_el is not None and self.trim_fraction:
            row_loss = nll + self.beta * np.sum(kl_el, axis=1)
        weights = self._row_weights(row_loss, dtype)
        recon = float(_weighted_mean(nll, weights))
        loss = recon
        kl = 0.0
        active = None  # every latent dimension penalised
        if kl_el is not None:
            kl_dim = _weighted_mean(kl_el, weights)
            kl = float(np.sum(kl_dim, dtype=np.float64))
            penalty = kl
            if self.free_bits > 0:
                active = kl_dim > self.free_bits
                penalty = float(
                    np.sum(np.where(active, kl_dim, self.free_bits), dtype=np.float64)
                )
            loss += self.beta * penalty
        self.parts = (recon, kl)
        return loss, weights, active

    def _backward(self, theta, shard, weights, active):
        """Gradient of a shard's share of the loss, in the shard's buffer."""
        arch = self.arch
        X, eps, H, mu, log_var, std, var, z, d_out, d_raw, bufs = shard.saved
        dtype = H.dtype.type
        grad = shard.grad(theta)
        d_out = self._output_grad(theta, grad, d_out, d_raw, weights)
        d_z = backward(
            arch.decoder(theta),
            z,
            bufs.dec_acts,
            d_out,
            arch.activation,
            arch.decoder(grad),
            bufs.dec_deltas,
            bufs.dec_tmps,
            True,
        )
        if arch.is_vae:
            k = arch.latent_dim
            d_mu = bufs.d_enc[:, :k]
            d_lv = bufs.d_enc[:, k:]
            coef = dtype(self.beta) * weights
            if active is not None:
                coef = coef * active.astype(H.dtype)
            # d/d mu: decoder path + beta * mu / n
            np.multiply(mu, coef, out=d_mu)
            d_mu += d_z
            # d/d log_var: decoder path dz * eps * std / 2, KL (var - 1) / 2
            np.subtract(var, 1, out=d_lv)
            d_lv *= dtype(0.5) * coef
            np.multiply(d_z, eps, out=d_z)
            d_z *= std
            d_z *= dtype(0.5)
            d_lv += d_z
            self._clip_grad(H, d_lv)
            d_enc = bufs.d_enc
        else:
            d_enc = d_z
        self._encoder_backward(theta, X, grad, bufs, d_enc)
        return grad

    def _posterior(self, H, bufs, dtype):
        """Mean, clipped log-variance and standard deviation of q(z | x)."""
        k = self.arch.latent_dim
        log_var = np.clip(H[:, k:], -LOG_VAR_BOUND, LOG_VAR_BOUND, out=bufs.log_var)
        std = np.exp(np.multiply(log_var, dtype(0.5), out=bufs.std), out=bufs.std)
        return H[:, :k], log_var, std

    def _clip_grad(self, H, d_lv):
        # no gradient through the clip of the log-variance
        d_lv *= np.abs(H[:, self.arch.latent_dim :]) < LOG_VAR_BOUND

    def _encoder_backward(self, theta, X, grad, bufs, d_enc):
        """Back-propagate ``d_enc`` through the encoder into ``grad``."""
        arch = self.arch
        backward(
            arch.encoder(theta),
            X,
            bufs.enc_acts,
            d_enc,
            arch.activation,
            arch.encoder(grad),
            bufs.enc_deltas,
            bufs.enc_tmps,
            False,
        )

    # -- the importance-weighted bound (K draws per row) ---------------------

    def _iwae_forward(self, theta, shard, X, eps, need_grad):
        """Per-row ``(log p_K(x), nll of each draw, kl_el)`` of a shard."""
        arch = self.arch
        E, T, M = X
        n_draws, n = eps.shape[:2]
        k = arch.latent_dim
        dtype = T.dtype.type
        bufs = shard.bufs(arch, n, T.dtype)
        dec_bufs = shard.bufs(arch, n_draws * n, T.dtype)
        H = forward(arch.encoder(theta), E, arch.activation, bufs.enc_acts)
        mu, log_var, std = self._posterior(H, bufs, dtype)
        Z = (mu + std * eps).reshape(n_draws * n, k)
        dec_out = forward(arch.decoder(theta), Z, arch.activation, dec_bufs.dec_acts)
        T_rep = _repeat_rows(T, n_draws)
        M_rep = None if M is None else _repeat_rows(M, n_draws)
        nll, d_out, d_raw = arch.neg_log_lik(
            theta, T_rep, dec_out, need_grad, M_rep, dec_bufs.d_out
        )
        nll = nll.reshape(n_draws, n)
        beta = dtype(self.beta)
        # log w = log p(x|z) + beta (log p(z) - log q(z|x)); 2 pi terms cancel
        prior_term = 0.5 * (
            np.sum(eps * eps, axis=2) - np.sum(Z.reshape(eps.shape) ** 2, axis=2)
        ) + 0.5 * np.sum(log_var, axis=1)
        log_w = -nll + beta * prior_term
        log_px = logsumexp(log_w, axis=0) - np.log(n_draws)
        kl_el = 0.5 * (mu * mu + std * std - log_var - 1)
        shard.saved = (E, eps, H, std, Z, log_w, d_out, d_raw, bufs, dec_bufs)
        return log_px, nll, kl_el

    def _iwae_reduce(self, rows, dtype):
        log_px = _concat([r[0] for r in rows])
        nll = np.concatenate([r[1] for r in rows], axis=1)
        kl_el = _concat([r[2] for r in rows])
        weights = self._row_weights(-log_px, dtype)
        loss = -float(_weighted_mean(log_px, weights))
        self.parts = (
            float(_weighted_mean(np.mean(nll, axis=0), weights)),
            float(np.sum(_weighted_mean(kl_el, weights))),
        )
        return loss, weights, None

    def _iwae_backward(self, theta, shard, weights, active):
        arch = self.arch
        X, eps, H, std, Z, log_w, d_out, d_raw, bufs, dec_bufs = shard.saved
        n_draws, n = eps.shape[:2]
        k = arch.latent_dim
        beta = H.dtype.type(self.beta)
        # d loss / d(-log w_kn) = row weight * softmax over the K draws
        alpha_w = np.exp(log_w - logsumexp(log_w, axis=0))
        g = (alpha_w * np.reshape(weights, (1, -1) if np.ndim(weights) else ())).astype(
            H.dtype
        )
        grad = shard.grad(theta)
        d_out = self._output_grad(theta, grad, d_out, d_raw, g.reshape(n_draws * n, 1))
        d_z = backward(
            arch.decoder(theta),
            Z,
            dec_bufs.dec_acts,
            d_out,
            arch.activation,
            arch.decoder(grad),
            dec_bufs.dec_deltas,
            dec_bufs.dec_tmps,
            True,
        ).reshape(eps.shape)
        g3 = g[:, :, None]
        # prior term: d(beta/2 |z|^2)/dz = beta z
        d_z += beta * g3 * Z.reshape(eps.shape)
        d_mu = bufs.d_enc[:, :k]
        d_lv = bufs.d_enc[:, k:]
        d_mu[:] = np.sum(d_z, axis=0)
        # z = mu + std eps, and -beta/2 log_var directly from log q
        d_lv[:] = 0.5 * std * np.sum(d_z * eps, axis=0) - 0.5 * beta * np.sum(
            g3, axis=0
        )
        self._clip_grad(H, d_lv)
        self._encoder_backward(theta, X, grad, bufs, bufs.d_enc)
        return grad

    def _output_grad(self, theta, grad, d_out, d_params, weights):
        """Gradient of the mean loss at the decoder output.

        ``weights`` is the scalar ``1 / n`` or a column of per-row weights.
        Fills the likelihood parameters' part of ``grad`` on the way.
        """
        d_out *= weights
        if d_params is not None:
            d_params *= weights
            summed = np.matmul(ones(d_params.shape[0], d_params.dtype), d_params)
            self.arch.likelihood_params(grad)[:] = summed
        return d_out


def _repeat_rows(A, n_draws):
    """``A`` stacked ``n_draws`` times along the rows: ``(n_draws * n, d)``."""
    return np.broadcast_to(A, (n_draws, *A.shape)).reshape(n_draws * A.shape[0], -1)


def _concat(parts):
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _weighted_mean(values, weights):
    """Mean over rows (axis 0) with a scalar ``1 / n`` or a column of weights."""
    if np.ndim(weights) == 0:
        # the mean as a matrix-vector product: faster than np.mean on a batch
        return np.matmul(ones(values.shape[0], values.dtype), values) * weights
    return np.matmul(weights.reshape(-1).astype(values.dtype, copy=False), values)
