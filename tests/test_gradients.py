"""Finite-difference checks of every analytic gradient, in float64."""

import numpy as np
import pytest

from skvae._activations import ACTIVATIONS, DERIVATIVES
from skvae._columns import encode
from skvae._likelihoods import (
    bernoulli_nll,
    categorical_nll,
    gaussian_nll,
    squared_error,
)
from skvae._network import backward, forward, init_layers, n_params, unpack
from skvae._objectives import Architecture, Objective
from skvae._parallel import Workers


def _numeric_grad(f, x, h=1e-6):
    """Central differences of a scalar function of a flat float64 vector."""
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _assert_grad_close(analytic, numeric, rtol=1e-5, atol=1e-7):
    scale = max(1.0, float(np.max(np.abs(numeric))))
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_matches_finite_differences(name):
    rng = np.random.default_rng(0)
    # stay away from relu's kink at 0, where no derivative exists
    Z = rng.uniform(0.1, 2.0, size=(5, 4)) * rng.choice([-1, 1], size=(5, 4))
    A = ACTIVATIONS[name](Z.copy())
    delta = np.ones_like(Z)
    analytic = DERIVATIVES[name](A, delta, np.empty_like(Z))
    h = 1e-6
    numeric = (ACTIVATIONS[name](Z + h) - ACTIVATIONS[name](Z - h)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_stack_backward_matches_finite_differences(activation):
    rng = np.random.default_rng(1)
    sizes = (4, 6, 5, 3)
    theta = np.empty(n_params(sizes))
    layers = unpack(theta, sizes)
    init_layers(layers, activation, rng)
    X = rng.normal(size=(7, 4))
    R = rng.normal(size=(7, 3))  # a fixed linear read-out makes a scalar loss

    def run(th, x):
        acts = [np.empty((x.shape[0], s)) for s in sizes[1:]]
        return forward(unpack(th, sizes), x, activation, acts), acts

    def loss(th):
        out, _ = run(th, X)
        return float(np.sum(out * R))

    out, acts = run(theta, X)
    grad = np.empty_like(theta)
    d_in = backward(
        unpack(theta, sizes),
        X,
        acts,
        R.copy(),
        activation,
        unpack(grad, sizes),
        [np.empty_like(a) for a in acts[:-1]],
        [np.empty_like(a) for a in acts[:-1]],
        True,
    )
    _assert_grad_close(grad, _numeric_grad(loss, theta))

    def loss_x(x):
        return float(np.sum(run(theta, x.reshape(X.shape))[0] * R))

    _assert_grad_close(d_in.ravel(), _numeric_grad(loss_x, X.ravel()))


@pytest.mark.parametrize("raw_shape", ["feature", "shared", "row"])
def test_gaussian_likelihood_gradients(raw_shape):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(6, 3))
    mean = rng.normal(size=(6, 3))
    raw = {
        "feature": rng.normal(size=3),
        "shared": rng.normal(size=1),
        "row": rng.normal(size=(6, 3)),
    }[raw_shape]
    floor = 1e-2
    _, d_mean, d_raw = gaussian_nll(X, mean, raw, floor)

    def f_mean(m):
        return gaussian_nll(X, m.reshape(X.shape), raw, floor, False)[0].sum()

    def f_raw(r):
        return gaussian_nll(X, mean, r.reshape(raw.shape), floor, False)[0].sum()

    _assert_grad_close(d_mean.ravel(), _numeric_grad(f_mean, mean.ravel()))
    d_raw_reduced = np.sum(np.broadcast_to(d_raw, X.shape), axis=0)
    if raw_shape == "shared":
        d_raw_reduced = np.sum(d_raw_reduced, keepdims=True)
    elif raw_shape == "row":
        d_raw_reduced = d_raw
    _assert_grad_close(d_raw_reduced.ravel(), _numeric_grad(f_raw, raw.ravel()))


def test_gaussian_likelihood_is_the_normal_log_density():
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    X, mean = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    raw = rng.normal(size=3)
    var = np.logaddexp(0, raw) + 1e-3
    nll, _, _ = gaussian_nll(X, mean, raw, 1e-3, False)
    expected = -norm.logpdf(X, loc=mean, scale=np.sqrt(var)).sum(axis=1)
    np.testing.assert_allclose(nll, expected, rtol=1e-12)


def test_bernoulli_likelihood_gradient_and_value():
    rng = np.random.default_rng(4)
    X = rng.uniform(size=(5, 4))
    logits = rng.normal(scale=3, size=(5, 4))
    nll, d_logits = bernoulli_nll(X, logits)
    p = 1 / (1 + np.exp(-logits))
    expected = -(X * np.log(p) + (1 - X) * np.log1p(-p)).sum(axis=1)
    np.testing.assert_allclose(nll, expected, rtol=1e-10)

    def f(lg):
        return bernoulli_nll(X, lg.reshape(X.shape), False)[0].sum()

    _assert_grad_close(d_logits.ravel(), _numeric_grad(f, logits.ravel()))


def test_squared_error_gradient():
    rng = np.random.default_rng(5)
    X, R = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    err, d = squared_error(X, R)
    np.testing.assert_allclose(err, ((X - R) ** 2).mean(axis=1))

    def f(r):
        return squared_error(X, r.reshape(X.shape), False)[0].sum()

    _assert_grad_close(d.ravel(), _numeric_grad(f, R.ravel()))


def _mask(shape, seed, rate=0.3):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) >= rate).astype(float)


@pytest.mark.parametrize("raw_shape", ["feature", "shared", "row"])
def test_gaussian_likelihood_gradients_with_missing_cells(raw_shape):
    rng = np.random.default_rng(12)
    X, mean = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    raw = {"feature": rng.normal(size=3), "shared": rng.normal(size=1)}.get(
        raw_shape, rng.normal(size=(6, 3))
    )
    M = _mask(X.shape, 0)
    nll, d_mean, d_raw = gaussian_nll(X, mean, raw, 1e-2, mask=M)
    full, _, _ = gaussian_nll(X, mean, raw, 1e-2)
    # only observed cells count: compare with the density of those cells
    var = np.logaddexp(0, raw) + 1e-2
    el = 0.5 * ((X - mean) ** 2 / var + np.log(var) + np.log(2 * np.pi))
    np.testing.assert_allclose(nll, (el * M).sum(axis=1), rtol=1e-12)
    # with every cell observed, the masked density is the plain one
    all_observed = gaussian_nll(X, mean, raw, 1e-2, False, np.ones_like(X))[0]
    np.testing.assert_allclose(all_observed, full, rtol=1e-12)

    def f_mean(m):
        return gaussian_nll(X, m.reshape(X.shape), raw, 1e-2, False, M)[0].sum()

    def f_raw(r):
        return gaussian_nll(X, mean, r.reshape(raw.shape), 1e-2, False, M)[0].sum()

    _assert_grad_close(d_mean.ravel(), _numeric_grad(f_mean, mean.ravel()))
    reduced = np.broadcast_to(d_raw, X.shape)
    if raw_shape != "row":
        reduced = reduced.sum(axis=0)
        if raw_shape == "shared":
            reduced = reduced.sum(keepdims=True)
    _assert_grad_close(reduced.ravel(), _numeric_grad(f_raw, raw.ravel()))
    assert np.all(d_mean[M == 0] == 0)


def test_bernoulli_and_squared_error_gradients_with_missing_cells():
    rng = np.random.default_rng(13)
    X = rng.uniform(size=(5, 4))
    logits = rng.normal(size=(5, 4))
    M = _mask(X.shape, 1)
    nll, d = bernoulli_nll(X, logits, mask=M)
    np.testing.assert_allclose(
        nll,
        (M * (np.logaddexp(0, logits) - X * logits)).sum(axis=1),
        rtol=1e-12,
    )

    def f(lg):
        return bernoulli_nll(X, lg.reshape(X.shape), False, M)[0].sum()

    _assert_grad_close(d.ravel(), _numeric_grad(f, logits.ravel()))
    err, d = squared_error(X, logits, mask=M)
    np.testing.assert_allclose(err, (M * (X - logits) ** 2).sum(axis=1))

    def g(r):
        return squared_error(X, r.reshape(X.shape), False, M)[0].sum()

    _assert_grad_close(d.ravel(), _numeric_grad(g, logits.ravel()))


@pytest.mark.parametrize("masked", [False, True])
def test_categorical_likelihood_gradient_and_value(masked):
    from scipy.special import log_softmax

    rng = np.random.default_rng(14)
    sizes = np.array([3, 2, 4])
    starts = np.array([0, 3, 5])
    logits = rng.normal(scale=2, size=(6, 9))
    codes = np.column_stack([rng.integers(0, s, size=6) for s in sizes]).astype(float)
    M = _mask(codes.shape, 2) if masked else None
    nll, d = categorical_nll(codes, logits, starts, sizes, mask=M)
    expected = np.zeros(6)
    for j, (a, s) in enumerate(zip(starts, sizes)):
        lp = log_softmax(logits[:, a : a + s], axis=1)
        term = -lp[np.arange(6), codes[:, j].astype(int)]
        expected += term if M is None else term * M[:, j]
    np.testing.assert_allclose(nll, expected, rtol=1e-12)

    def f(lg):
        return categorical_nll(
            codes, lg.reshape(logits.shape), starts, sizes, False, M
        )[0].sum()

    _assert_grad_close(d.ravel(), _numeric_grad(f, logits.ravel()))
    # K draws against the same rows: the codes broadcast
    nll3, _ = categorical_nll(codes, np.stack([logits, logits]), starts, sizes, False)
    np.testing.assert_allclose(
        nll3[1], categorical_nll(codes, logits, starts, sizes)[0]
    )


def _table_batch(n, seed, autoencoder=False, missing=0.25):
    """A mixed table as the network sees it: Gaussian (or squared-error)
    columns, a Bernoulli column (VAE only), two categorical columns, cells
    missing at random, and the layout that encoded it."""
    rng = np.random.default_rng(seed)
    num = "squared_error" if autoencoder else "gaussian"
    numeric = [num, num] if autoencoder else [num, num, "bernoulli"]
    C = np.column_stack(
        [rng.normal(size=n), rng.normal(size=n)]
        + ([] if autoencoder else [rng.uniform(size=n)])
        + [rng.integers(0, 3, size=n), rng.integers(0, 2, size=n)]
    ).astype(float)
    C[rng.random(C.shape) < missing] = np.nan
    d = C.shape[1]
    n_num = len(numeric)
    groups = [[num, 2, {}]] + ([] if autoencoder else [["bernoulli", 1, {}]])
    groups.append(["categorical", 2, {"sizes": [3, 2]}])
    layout = {
        "is_categorical": np.array([False] * n_num + [True, True]),
        "categories": [np.arange(3.0), np.arange(2.0)],
        "order": np.arange(d),
        "groups": groups,
        "n_indicators": n_num,
    }
    batch = encode(C, layout, np.zeros(d), np.ones(d), np.float64)
    return batch, groups, batch.inputs.shape[1], n_num


OBJECTIVE_CASES = {
    # likelihood, decoder_variance, activation, hidden, and Objective options
    "ae-tanh": ("squared_error", "feature", "tanh", (5,), {}),
    "ae-relu-l2": ("squared_error", "feature", "relu", (5, 4), {"alpha": 0.3}),
    "gauss-feature": ("gaussian", "feature", "tanh", (5,), {}),
    "gauss-shared": ("gaussian", "shared", "logistic", (5,), {"beta": 0.5}),
    "gauss-row": ("gaussian", "row", "tanh", (5, 4), {"beta": 2.0}),
    "linear-l2": ("gaussian", "feature", "identity", (), {"alpha": 0.1}),
    "bernoulli": ("bernoulli", "feature", "relu", (6,), {}),
    "free-bits": ("gaussian", "feature", "tanh", (5,), {"free_bits": 0.05}),
    "beta-0": ("bernoulli", "feature", "tanh", (5,), {"beta": 0.0, "alpha": 0.2}),
    "trimmed": ("gaussian", "feature", "tanh", (5,), {"trim_fraction": 0.25}),
    "ae-trimmed": ("squared_error", "feature", "tanh", (5,), {"trim_fraction": 0.3}),
    "iwae": ("gaussian", "feature", "tanh", (5,), {"n_draws": 3}),
    "iwae-row-beta": ("gaussian", "row", "relu", (5,), {"n_draws": 4, "beta": 0.5}),
    "iwae-trim-l2": (
        "bernoulli",
        "feature",
        "tanh",
        (5,),
        {"n_draws": 2, "trim_fraction": 0.25, "alpha": 0.1},
    ),
    # mixed tables with missing cells: numeric, Bernoulli and categorical
    # columns, one-hot inputs and missingness indicators
    "table-gauss-feature": ("gaussian", "feature", "tanh", (5,), {"table": 1}),
    "table-gauss-shared": (
        "gaussian",
        "shared",
        "tanh",
        (5,),
        {"table": 1, "free_bits": 0.05, "beta": 0.7},
    ),
    "table-gauss-row-iwae": (
        "gaussian",
        "row",
        "relu",
        (5,),
        {"table": 1, "n_draws": 3},
    ),
    "table-trimmed-l2": (
        "gaussian",
        "row",
        "tanh",
        (5, 4),
        {"table": 1, "trim_fraction": 0.25, "alpha": 0.1},
    ),
    "table-ae": ("squared_error", "feature", "tanh", (5,), {"table": 1}),
    "table-ae-trimmed": (
        "squared_error",
        "feature",
        "relu",
        (5,),
        {"table": 1, "trim_fraction": 0.3},
    ),
}


def _objective_case(case, n, seed):
    """Architecture, options, parameters, rows and noise of an objective case."""
    likelihood, variance, activation, hidden, options = OBJECTIVE_CASES[case]
    options = dict(options)
    n_draws = options.pop("n_draws", None)
    table = options.pop("table", None)
    rng = np.random.default_rng(seed)
    d, k = 4, 2
    if table:
        X, groups, n_in, n_ind = _table_batch(
            n, seed, autoencoder=likelihood == "squared_error"
        )
        d = X.targets.shape[1]
        arch = Architecture(
            d,
            k,
            hidden,
            activation,
            likelihood,
            variance,
            1e-2,
            table=groups,
            n_inputs=n_in,
            n_indicators=n_ind,
        )
        theta = arch.init_params(rng, np.float64)
        theta += 0.1 * rng.normal(size=theta.shape)
        eps = rng.normal(size=(n, k) if n_draws is None else (n_draws, n, k))
        return arch, options, theta, X, eps
    if likelihood == "bernoulli":
        X = rng.uniform(size=(n, d))
    else:
        X = rng.normal(size=(n, d))
    arch = Architecture(d, k, hidden, activation, likelihood, variance, 1e-2)
    theta = arch.init_params(rng, np.float64)
    theta += 0.1 * rng.normal(size=theta.shape)  # move off the symmetric start
    eps = rng.normal(size=(n, k) if n_draws is None else (n_draws, n, k))
    return arch, options, theta, X, eps


@pytest.mark.parametrize("case", sorted(OBJECTIVE_CASES))
def test_objective_gradient_matches_finite_differences(case):
    arch, options, theta, X, eps = _objective_case(case, n=8, seed=6)
    obj = Objective(arch, **options)
    loss, grad = obj(theta, X, eps)
    grad = grad.copy()

    def f(th):
        return obj(th, X, eps, need_grad=False)[0]

    assert loss == pytest.approx(f(theta))
    _assert_grad_close(grad, _numeric_grad(f, theta), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n_shards", [2, 3])
@pytest.mark.parametrize("case", sorted(OBJECTIVE_CASES))
def test_shards_give_the_loss_and_gradient_of_the_whole_batch(case, n_shards, threads):
    # what couples the rows (trimming, free bits, the penalty, the mean) must
    # see the whole batch, whether the shards run in turn or on two threads
    arch, options, theta, X, eps = _objective_case(case, n=11, seed=7)
    whole = Objective(arch, **options)
    loss, grad = whole(theta, X, eps)
    workers = Workers(threads)
    try:
        sharded = Objective(arch, n_shards=n_shards, workers=workers, **options)
        for _ in range(2):  # the second call reuses the shards' buffers
            loss_s, grad_s = sharded(theta, X, eps)
            assert loss_s == pytest.approx(loss, rel=1e-12)
            assert sharded.parts == pytest.approx(whole.parts, rel=1e-12)
            np.testing.assert_allclose(grad_s, grad, rtol=1e-10, atol=1e-12)
    finally:
        workers.close()


def test_iwae_loss_matches_a_direct_computation():
    from scipy.special import logsumexp
    from scipy.stats import norm

    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 3))
    arch = Architecture(3, 2, (4,), "tanh", "gaussian")
    theta = arch.init_params(rng, np.float64)
    eps = rng.normal(size=(5, 6, 2))
    loss, _ = Objective(arch)(theta, X, eps)

    mu, log_var = arch.encode(theta, X)
    std = np.exp(log_var / 2)
    var = np.logaddexp(0, arch.likelihood_params(theta)) + arch.variance_floor
    log_w = []
    for e in eps:
        z = mu + std * e
        mean = arch.decode_mean(theta, z)
        log_w.append(
            norm.logpdf(X, mean, np.sqrt(var)).sum(axis=1)
            + norm.logpdf(z).sum(axis=1)
            - norm.logpdf(z, mu, std).sum(axis=1)
        )
    expected = -np.mean(logsumexp(log_w, axis=0) - np.log(len(eps)))
    assert loss == pytest.approx(expected, rel=1e-10)
    # and the estimator's score uses the same estimate
    np.testing.assert_allclose(
        arch.log_likelihood(theta, X, eps[:, 0, :]),
        logsumexp(
            [
                norm.logpdf(X, arch.decode_mean(theta, mu + std * e), np.sqrt(var)).sum(
                    1
                )
                + norm.logpdf(mu + std * e).sum(1)
                - norm.logpdf(mu + std * e, mu, std).sum(1)
                for e in eps[:, 0, :]
            ],
            axis=0,
        )
        - np.log(len(eps)),
        rtol=1e-10,
    )


def test_trimming_ignores_the_worst_rows():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(10, 3))
    X[:2] += 50.0  # two rows far from the rest
    arch = Architecture(3, 2, (4,), "tanh", "squared_error")
    theta = arch.init_params(rng, np.float64)
    trimmed, _ = Objective(arch, trim_fraction=0.2)(theta, X)
    clean, _ = Objective(arch)(theta, X[2:])
    assert trimmed == pytest.approx(clean)


# -- likelihoods on raw values: Poisson, log-normal, logit-normal, zeros ---------


def _raw_case(name, seed, n=6, d=3):
    """A likelihood on raw values with fitted statistics, targets in its
    support, a decoder output and likelihood parameters."""
    from skvae._likelihoods import LIKELIHOODS

    rng = np.random.default_rng(seed)
    name, _, variance = name.partition(":")
    options = {"variance": variance} if variance else {}
    if name == "poisson":
        T = rng.poisson(3.0, size=(n, d)).astype(float)
    elif name == "lognormal":
        T = rng.lognormal(1.0, 0.7, size=(n, d))
    elif name == "logit_normal":
        options.update({"low": [0.0, -2.0, 10.0], "high": [1.0, 3.0, 20.0]})
        low, high = np.array(options["low"]), np.array(options["high"])
        T = low + (high - low) * rng.uniform(0.05, 0.95, size=(n, d))
    elif name == "zero_normal":
        T = rng.normal(0.5, 2.0, size=(n, d))
        T[rng.random((n, d)) < 0.35] = 0.0
        T[0, 0] = 0.0
        T[1, 0] = -2.0
    else:
        T = rng.lognormal(0.5, 1.0, size=(n, d))
        T[rng.random((n, d)) < 0.35] = 0.0
        T[0, 0] = 0.0
        T[1, 0] = 2.0
    cls = LIKELIHOODS[name]
    options = {**options, **cls.fit_options(T, options)}
    lik = cls(d, options)
    out = rng.normal(scale=0.7, size=(n, lik.n_outputs))
    params = rng.normal(scale=0.5, size=lik.n_params)
    return lik, T, out, params


_RAW_NAMES = ["poisson", "lognormal", "logit_normal", "zero_lognormal", "zero_normal"]
_VARIANCES = ["lognormal:row", "lognormal:shared", "logit_normal:row"]


@pytest.mark.parametrize("name", _RAW_NAMES + _VARIANCES)
@pytest.mark.parametrize("masked", [False, True])
def test_raw_likelihood_gradients(name, masked):
    lik, T, out, params = _raw_case(name, 3)
    mask = _mask(T.shape, 4) if masked else None
    if masked:
        T = np.where(mask > 0, T, 0.0)  # encode() puts 0 on missing cells

    def total(o, p):
        return float(np.sum(lik.nll(T, o.reshape(out.shape), p, False, mask)[0]))

    nll, d_out, d_params = lik.nll(T, out, params, True, mask)
    assert np.all(np.isfinite(nll))
    num_out = _numeric_grad(lambda o: total(o, params), out.ravel())
    _assert_grad_close(d_out.ravel(), num_out)
    if lik.n_params:
        num_p = _numeric_grad(lambda p: total(out, p), params)
        _assert_grad_close(np.sum(d_params, axis=0), num_p)
    else:
        assert d_params is None
    if masked:
        # missing cells neither score nor get a gradient
        other = np.where(mask > 0, T, lik.sample(out, params, np.random.default_rng(0)))
        np.testing.assert_allclose(lik.nll(other, out, params, False, mask)[0], nll)


@pytest.mark.parametrize("name", _RAW_NAMES + _VARIANCES)
def test_raw_likelihood_broadcasts_over_draws(name):
    lik, T, out, params = _raw_case(name, 5)
    mask = _mask(T.shape, 6)
    T = np.where(mask > 0, T, 0.0)
    outs = np.stack([out, out * 0.5 - 0.1])
    nll_k = lik.nll(T, outs, params, False, mask)[0]
    for k in range(2):
        np.testing.assert_allclose(
            nll_k[k], lik.nll(T, outs[k], params, False, mask)[0]
        )


def test_raw_likelihoods_are_the_densities_of_the_raw_values():
    from scipy import stats
    from scipy.special import expit, logit

    from skvae._likelihoods import variance_from_raw

    lik, T, out, params = _raw_case("poisson", 7)
    rate = np.exp(out + np.asarray(lik.options["loc"]))
    expected = -stats.poisson.logpmf(T, rate).sum(axis=1)
    np.testing.assert_allclose(lik.nll(T, out, params, False, None)[0], expected)

    lik, T, out, params = _raw_case("lognormal", 8)
    loc, scale = np.asarray(lik.options["loc"]), np.asarray(lik.options["scale"])
    mu = loc + scale * out
    sd = scale * np.sqrt(variance_from_raw(params, 1e-3))
    expected = -stats.lognorm.logpdf(T, s=sd, scale=np.exp(mu)).sum(axis=1)
    np.testing.assert_allclose(lik.nll(T, out, params, False, None)[0], expected)

    lik, T, out, params = _raw_case("logit_normal", 9)
    loc, scale = np.asarray(lik.options["loc"]), np.asarray(lik.options["scale"])
    low, high = np.asarray(lik.options["low"]), np.asarray(lik.options["high"])
    mu = loc + scale * out
    sd = scale * np.sqrt(variance_from_raw(params, 1e-3))
    u = (T - low) / (high - low)
    log_p = (
        stats.norm.logpdf(logit(u), mu, sd) - np.log(u * (1 - u)) - np.log(high - low)
    )
    np.testing.assert_allclose(lik.nll(T, out, params, False, None)[0], -log_p.sum(1))
    # the mean by quadrature against a Monte Carlo estimate
    draws = low + (high - low) * expit(
        mu + sd * np.random.default_rng(0).standard_normal((200000, *mu.shape))
    )
    error = np.abs(lik.mean(out, params) - draws.mean(0)) / (high - low)
    assert np.max(error) < 3e-3

    lik, T, out, params = _raw_case("zero_lognormal", 10)
    d = T.shape[1]
    loc, scale = np.asarray(lik.options["loc"]), np.asarray(lik.options["scale"])
    p0 = expit(out[:, :d])
    mu = loc + scale * out[:, d:]
    sd = scale * np.sqrt(variance_from_raw(params, 1e-3))
    with np.errstate(divide="ignore"):
        pos = np.log1p(-p0) + stats.lognorm.logpdf(T, s=sd, scale=np.exp(mu))
    log_p = np.where(T == 0, np.log(p0), pos)
    np.testing.assert_allclose(lik.nll(T, out, params, False, None)[0], -log_p.sum(1))

    lik, T, out, params = _raw_case("zero_normal", 12)
    assert np.any(T < 0) and np.any(T == 0)
    loc, scale = np.asarray(lik.options["loc"]), np.asarray(lik.options["scale"])
    p0 = expit(out[:, :d])
    mu = loc + scale * out[:, d:]
    sd = scale * np.sqrt(variance_from_raw(params, 1e-3))
    log_p = np.where(T == 0, np.log(p0), np.log1p(-p0) + stats.norm.logpdf(T, mu, sd))
    np.testing.assert_allclose(lik.nll(T, out, params, False, None)[0], -log_p.sum(1))
    np.testing.assert_allclose(lik.mean(out, params), (1 - p0) * mu)


@pytest.mark.parametrize("name", _RAW_NAMES + _VARIANCES)
def test_raw_likelihood_samples_respect_the_support(name):
    lik, T, out, params = _raw_case(name, 11, n=400)
    out = out * 4  # far from the training statistics too
    S = lik.sample(out, params, np.random.default_rng(0))
    assert S.shape == T.shape and np.all(np.isfinite(S))
    assert type(lik).support_error(S, lik.options) is None
    M = lik.mean(out, params)
    assert M.shape == T.shape and np.all(np.isfinite(M))
    if name == "poisson":
        np.testing.assert_array_equal(S, np.round(S))
    if name == "zero_lognormal":
        assert np.any(S == 0) and np.any(S > 0)
    if name == "zero_normal":
        assert np.any(S == 0) and np.any(S < 0) and np.any(S > 0)
