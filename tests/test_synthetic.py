"""Likelihoods on raw values and conditional sampling (synthetic rows)."""

import copy
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logit

from skvae import VAEAnomalyDetector, VAEImputer, VAETransformer


def _law(name, n, seed):
    rng = np.random.default_rng(seed)
    if name == "poisson":
        return rng.poisson([1.5, 4.0, 10.0], (n, 3)).astype(float)
    if name == "lognormal":
        return rng.lognormal([0.0, 2.0, -1.0], [0.5, 1.0, 0.3], (n, 3))
    if name == "zero_normal":
        X = rng.normal([0.0, 3.0, -1.0], [1.0, 0.5, 2.0], (n, 3))
        X[rng.random((n, 3)) < [0.2, 0.5, 0.8]] = 0.0
        return X
    return 1 / (1 + np.exp(-rng.normal([0.0, 1.0, -2.0], [0.5, 1.5, 0.7], (n, 3))))


def _exact_mean_log_likelihood(name, A, B):
    """Held-out mean log-likelihood of ``B`` under the maximum-likelihood fit
    of the law on ``A``."""
    if name == "poisson":
        return stats.poisson.logpmf(B, A.mean(0)).sum(1).mean()
    if name == "zero_normal":
        p0 = np.mean(A == 0, axis=0)
        V = np.where(A != 0, A, np.nan)
        m, s = np.nanmean(V, axis=0), np.nanstd(V, axis=0)
        nonzero = np.log1p(-p0) + stats.norm.logpdf(B, m, s)
        return np.where(B == 0, np.log(p0), nonzero).sum(1).mean()
    g, jac = (np.log, np.log) if name == "lognormal" else (logit, None)
    G = g(A)
    m, s = G.mean(0), G.std(0)
    log_jac = np.log(B) if name == "lognormal" else np.log(B * (1 - B))
    return (stats.norm.logpdf(g(B), m, s) - log_jac).sum(1).mean()


@pytest.mark.parametrize(
    "name", ["poisson", "lognormal", "logit_normal", "zero_normal"]
)
def test_known_answer_on_independent_columns(name):
    # the code carries no information: the VAE's held-out score is that of
    # the maximum-likelihood fit of the law to each column
    X = _law(name, 6000, 0)
    A, B = X[:3000], X[3000:]
    vae = VAETransformer(
        hidden_layer_sizes=(),
        activation="identity",
        latent_dim=1,
        likelihood=name,
        solver="lbfgs",
        max_iter=300,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae.fit(A)
    gap = vae.score(B) - _exact_mean_log_likelihood(name, A, B)
    assert abs(gap) < 0.05


def _mixed_table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    count = rng.poisson(2.0, n).astype(float)
    amount = rng.lognormal(3.0, 1.0, n)
    share = 1 / (1 + np.exp(-rng.normal(0.0, 1.0, n)))
    spend = np.where(rng.random(n) < 0.4, 0.0, rng.lognormal(1.0, 0.5, n))
    other = rng.normal(size=n)
    return np.column_stack([count, amount, share * 10, spend, other])


_MIXED = {
    0: "poisson",
    1: "lognormal",
    2: ("logit_normal", {"low": 0, "high": 10}),
    3: "zero_lognormal",
}


def _fit_mixed(X, **kw):
    params = dict(
        likelihood=_MIXED, hidden_layer_sizes=(16,), max_iter=30, random_state=0
    )
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(**params).fit(X)


def test_samples_respect_each_columns_support():
    X = _mixed_table()
    vae = _fit_mixed(X)
    for noise in (False, True):
        S = vae.sample(500, random_state=1, noise=noise)
        assert np.all(S[:, 0] >= 0)
        assert np.all(S[:, 1] > 0)
        assert np.all((S[:, 2] > 0) & (S[:, 2] < 10))
        assert np.all(S[:, 3] >= 0)
    S = vae.sample(500, random_state=1, noise=True)
    np.testing.assert_array_equal(S[:, 0], np.round(S[:, 0]))
    assert 0.2 < np.mean(S[:, 3] == 0) < 0.6
    # unscaled columns: the model keeps their raw values
    np.testing.assert_array_equal(vae.input_scale_[:4], 1.0)
    np.testing.assert_array_equal(vae.input_mean_[:4], 0.0)


def test_scores_are_densities_of_the_raw_values():
    # scaling a log-normal column by c shifts its log-density by -log c
    X = _mixed_table()
    a = _fit_mixed(X[:, [1]], likelihood="lognormal")
    b = _fit_mixed(X[:, [1]] * 100, likelihood="lognormal")
    # (the importance-sampling noise is keyed by the rows' values, so the
    # two models' estimates differ row by row; their means agree)
    a.n_importance_samples = b.n_importance_samples = 200
    assert abs(a.score(X[:, [1]]) - np.log(100) - b.score(X[:, [1]] * 100)) < 0.02


def test_missing_cells_in_raw_columns():
    X = _mixed_table()
    X[np.random.default_rng(1).random(X.shape) < 0.2] = np.nan
    vae = _fit_mixed(X)
    scores = vae.score_samples(X)
    assert np.all(np.isfinite(scores))
    filled = VAEImputer(likelihood=_MIXED, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Xt = filled.fit_transform(X)
    assert not np.isnan(Xt).any()
    assert np.all(Xt[:, 1] > 0) and np.all((Xt[:, 2] > 0) & (Xt[:, 2] < 10))
    det = VAEAnomalyDetector(likelihood=_MIXED, max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert det.fit(X).predict(X).shape == (X.shape[0],)


@pytest.mark.parametrize(
    "likelihood, values, match",
    [
        ("poisson", [0.5, 2.0], "non-negative integer counts"),
        ("poisson", [-1.0, 2.0], "non-negative integer counts"),
        ("lognormal", [0.0, 2.0], "positive values"),
        ("zero_lognormal", [-1.0, 2.0], "non-negative"),
        ("logit_normal", [0.0, 0.5], "strictly inside"),
        (("logit_normal", {"low": 1, "high": 2}), [0.5, 1.5], "strictly inside"),
    ],
)
def test_values_outside_the_support_raise(likelihood, values, match):
    X = np.column_stack([np.array(values * 5), np.arange(10.0)])
    with pytest.raises(ValueError, match=match):
        VAETransformer(likelihood={0: likelihood}, max_iter=2).fit(X)


def test_support_is_checked_at_predict_time_too():
    X = _mixed_table()
    vae = _fit_mixed(X)
    bad = X.copy()
    bad[0, 1] = -3.0
    with pytest.raises(ValueError, match="positive values"):
        vae.score_samples(bad)


@pytest.mark.parametrize(
    "spec, match",
    [
        (("logit_normal", {"low": 2, "high": 1}), "low < high"),
        (("logit_normal", {"lo": 0}), "takes the settings"),
        (("lognormal", {"low": 0}), "takes the settings"),
        ("laplace", "must be one of"),
    ],
)
def test_bad_likelihood_specs_raise(spec, match):
    with pytest.raises(ValueError, match=match):
        VAETransformer(likelihood={0: spec}, max_iter=2).fit(np.ones((5, 2)) * 0.5)


def test_warm_start_keeps_the_fitted_statistics():
    X = _mixed_table()
    vae = _fit_mixed(X, warm_start=True, max_iter=5)
    table = [list(g) for g in vae._architecture_["table"]]
    params = vae.params_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae.fit(X[:150] * [1, 2, 1, 3, 1])
    assert [list(g) for g in vae._architecture_["table"]] == table
    assert not np.array_equal(params, vae.params_)  # trained on, not restarted
    assert vae.n_iter_ == 10


def test_dataframe_round_trip_with_count_columns():
    pd = pytest.importorskip("pandas")
    X = _mixed_table()
    df = pd.DataFrame(X[:, :2], columns=["visits", "amount"])
    df["visits"] = df["visits"].astype("int64")
    df["kind"] = pd.Categorical(np.where(X[:, 4] > 0, "a", "b"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAETransformer(
            likelihood={"visits": "poisson", "amount": "lognormal"},
            hidden_layer_sizes=(8,),
            max_iter=10,
            random_state=0,
        ).fit(df)
    S = vae.sample(50, random_state=0, noise=True)
    assert list(S.columns) == ["visits", "amount", "kind"]
    assert S["visits"].dtype == np.int64 and (S["visits"] >= 0).all()
    assert (S["amount"] > 0).all()


# -- conditional sampling ------------------------------------------------------


@pytest.fixture(scope="module")
def penguins_model():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 400
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], n, p=[0.5, 0.45, 0.05])
    island = np.where(
        species == "Gentoo",
        "Biscoe",
        np.where(species == "Chinstrap", "Dream", rng.choice(["Biscoe", "Dream"], n)),
    )
    mass = np.where(species == "Gentoo", 5000.0, 3700.0) + rng.normal(0, 300, n)
    bill = np.where(species == "Chinstrap", 49.0, 39.0) + rng.normal(0, 2, n)
    df = pd.DataFrame(
        {
            "species": pd.Categorical(species),
            "island": pd.Categorical(island),
            "body_mass_g": mass,
            "bill_length_mm": bill,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAETransformer(
            hidden_layer_sizes=(32,),
            latent_dim=3,
            batch_size=32,
            max_iter=300,
            n_iter_no_change=30,
            iwae_samples=3,
            random_state=0,
        ).fit(df)
    return vae, df


@pytest.mark.parametrize("noise", [False, True])
def test_condition_with_one_value(penguins_model, noise):
    vae, df = penguins_model
    S = vae.sample(300, random_state=0, noise=noise, conditions={"species": "Gentoo"})
    assert list(S.columns) == list(df.columns)
    assert (S["species"] == "Gentoo").all()  # 100 % of the rows
    assert S["species"].dtype == df["species"].dtype
    # the rest follows the condition: Gentoo live on Biscoe and are heavy
    assert (S["island"] == "Biscoe").mean() > 0.9
    assert S["body_mass_g"].mean() > 4500


def test_condition_on_a_rare_value_costs_no_more(penguins_model):
    vae, df = penguins_model
    assert (df["species"] == "Chinstrap").mean() < 0.08
    S = vae.sample(300, random_state=0, noise=True, conditions={"species": "Chinstrap"})
    assert (S["species"] == "Chinstrap").all()
    assert (S["island"] == "Dream").mean() > 0.8
    assert S["bill_length_mm"].mean() > 45


def test_condition_with_an_array_and_a_numeric_column(penguins_model):
    vae, df = penguins_model
    species = np.array(["Adelie", "Gentoo"] * 50, dtype=object)
    mass = np.linspace(3000, 6000, 100)
    S = vae.sample(
        100,
        random_state=0,
        noise=True,
        conditions={"species": species, "body_mass_g": mass},
    )
    np.testing.assert_array_equal(S["species"].astype(str), species)
    np.testing.assert_array_equal(S["body_mass_g"].to_numpy(), mass)
    # a numeric condition alone: heavy birds come out as Gentoo
    S = vae.sample(200, random_state=1, noise=True, conditions={"body_mass_g": 5500.0})
    assert (S["body_mass_g"] == 5500.0).all()
    assert (S["species"] == "Gentoo").mean() > 0.8


def test_conditions_by_index_on_an_array_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    X = np.column_stack([x, x + 0.1 * rng.normal(size=500), rng.normal(size=500)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAETransformer(
            hidden_layer_sizes=(16,), batch_size=32, max_iter=200, random_state=0
        )
        vae.fit(X)
    S = vae.sample(400, random_state=0, noise=True, conditions={0: 1.5})
    assert isinstance(S, np.ndarray) and S.shape == (400, 3)
    np.testing.assert_array_equal(S[:, 0], 1.5)
    assert abs(S[:, 1].mean() - 1.5) < 0.3  # the correlated column follows
    assert abs(S[:, 2].mean()) < 0.3  # the independent one does not
    # the same seed gives the same rows
    np.testing.assert_array_equal(
        S, vae.sample(400, random_state=0, noise=True, conditions={-3: 1.5})
    )


@pytest.mark.parametrize(
    "conditions, match",
    [
        ({"species": "Emperor"}, "not levels"),
        ({"wingspan": 3.0}, "not a column"),
        ({7: 3.0}, "not a column"),
        ({"body_mass_g": "heavy"}, "must be numbers"),
        ({"body_mass_g": np.nan}, "finite"),
        ({"species": ["Adelie", "Gentoo"]}, "one value or 10 values"),
        (["species"], "must be a dict"),
    ],
)
def test_bad_conditions_raise(penguins_model, conditions, match):
    vae, _ = penguins_model
    with pytest.raises(ValueError, match=match):
        vae.sample(10, conditions=conditions)


# -- codes from the aggregate posterior ------------------------------------------


def test_aggregate_posterior_is_stored_at_fit(penguins_model):
    vae, df = penguins_model
    mean, var = vae.latent_posterior_mean_, vae.latent_posterior_var_
    assert mean.shape == var.shape == (len(df), vae.latent_dim)
    # the means are the codes of transform; the variances are positive
    np.testing.assert_allclose(mean, vae.transform(df), rtol=1e-10, atol=1e-12)
    assert (var > 0).all()


def test_aggregate_posterior_keeps_a_seeded_subsample(monkeypatch):
    import skvae._vae

    monkeypatch.setattr(skvae._vae, "AGGREGATE_ROWS", 50)
    X = np.random.default_rng(0).normal(size=(120, 3))
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = VAETransformer(**kw).fit(X)
        b = VAETransformer(**kw).fit(X)
    assert a.latent_posterior_mean_.shape == (50, 2)
    np.testing.assert_array_equal(a.latent_posterior_mean_, b.latent_posterior_mean_)
    # the stored rows are training rows' posteriors
    codes = a.transform(X)
    hits = [
        np.any(np.all(np.isclose(codes, m), axis=1)) for m in a.latent_posterior_mean_
    ]
    assert all(hits)


def test_aggregate_draws_follow_the_mixture_of_posteriors(penguins_model):
    vae, _ = penguins_model
    Z = vae._aggregate_draws(200_000, np.random.default_rng(0))
    mean, var = vae.latent_posterior_mean_, vae.latent_posterior_var_
    # moments of an equal-weight mixture of N(mean_i, var_i)
    np.testing.assert_allclose(Z.mean(axis=0), mean.mean(axis=0), atol=0.01)
    total = mean.var(axis=0) + var.mean(axis=0)
    np.testing.assert_allclose(Z.var(axis=0), total, rtol=0.02)


def test_aggregate_draws_use_the_training_rows_in_balanced_rounds(penguins_model):
    from skvae._vae import balanced_picks

    vae, _ = penguins_model
    m = vae.latent_posterior_mean_.shape[0]
    model = copy.deepcopy(vae)
    model.latent_posterior_var_ = np.zeros_like(model.latent_posterior_var_)
    Z = model._aggregate_draws(2 * m + 7, np.random.default_rng(0))
    # every stored posterior (here a point) twice, seven of them once more
    _, counts = np.unique(Z, axis=0, return_counts=True)
    assert counts.size == m and counts.sum() == 2 * m + 7
    np.testing.assert_array_equal(np.bincount(counts), [0, 0, m - 7, 7])
    # each pick is uniform over the rows, as an independent pick is
    picks = np.stack(
        [balanced_picks(5, 3, np.random.default_rng(s)) for s in range(4000)]
    )
    shares = np.stack([np.bincount(p, minlength=5) for p in picks.T]) / 4000
    np.testing.assert_allclose(shares, 0.2, atol=0.03)


@pytest.mark.parametrize("noise", [False, True])
def test_sample_from_the_aggregate_posterior(penguins_model, noise):
    vae, df = penguins_model
    S = vae.sample(500, random_state=0, noise=noise, latent="aggregate")
    assert list(S.columns) == list(df.columns)
    assert S["species"].dtype == df["species"].dtype
    # the same seed gives the same rows, another seed other rows
    again = vae.sample(500, random_state=0, noise=noise, latent="aggregate")
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(S, again)
    other = vae.sample(500, random_state=1, noise=noise, latent="aggregate")
    assert not S["body_mass_g"].equals(other["body_mass_g"])
    # the rare species keeps about its share, the masses their mean
    share = (S["species"] == "Chinstrap").mean()
    assert abs(share - (df["species"] == "Chinstrap").mean()) < 0.05
    assert abs(S["body_mass_g"].mean() - df["body_mass_g"].mean()) < 200


def test_the_default_latent_is_the_prior(penguins_model):
    vae, _ = penguins_model
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(
        vae.sample(50, random_state=3, noise=True),
        vae.sample(50, random_state=3, noise=True, latent="prior"),
    )


def test_conditions_with_the_aggregate_posterior(penguins_model):
    vae, df = penguins_model
    chinstrap = dict(
        random_state=0,
        noise=True,
        conditions={"species": "Chinstrap"},
        latent="aggregate",
    )
    S = vae.sample(300, **chinstrap)
    assert (S["species"] == "Chinstrap").all()
    assert (S["island"] == "Dream").mean() > 0.8
    assert S["bill_length_mm"].mean() > 45
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(S, vae.sample(300, **chinstrap))
    # a numeric condition
    S = vae.sample(
        200, random_state=1, conditions={"body_mass_g": 5500.0}, latent="aggregate"
    )
    assert (S["body_mass_g"] == 5500.0).all()
    assert (S["species"] == "Gentoo").mean() > 0.8


def test_bad_latent_and_missing_aggregate_raise(penguins_model):
    import copy

    vae, _ = penguins_model
    with pytest.raises(ValueError, match="latent must be"):
        vae.sample(5, latent="posterior")
    old = copy.deepcopy(vae)
    del old.latent_posterior_mean_, old.latent_posterior_var_
    with pytest.raises(ValueError, match="refit"):
        old.sample(5, latent="aggregate")
    old.sample(5)  # the prior still works


def test_aggregate_samples_keep_the_models_dtype():
    X = np.random.default_rng(0).normal(size=(80, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
        vae.fit(X)
    assert vae.latent_posterior_mean_.dtype == np.float32
    for noise in (False, True):
        S = vae.sample(20, random_state=0, noise=noise, latent="aggregate")
        assert S.dtype == np.float32 and S.shape == (20, 3)
    S = vae.sample(20, random_state=0, conditions={1: 0.5}, latent="aggregate")
    assert S.dtype == np.float32
    np.testing.assert_array_equal(S[:, 1], np.float32(0.5))


# -- the training marginals (sample(marginals="training")) ------------------------


def test_column_quantiles_are_values_of_the_column():
    import scipy.sparse as sp

    from skvae._columns import column_quantiles

    rng = np.random.default_rng(0)
    X = np.c_[rng.exponential(size=(50, 2)), rng.integers(0, 3, 50)]
    X[:5, 0] = np.nan
    Q = column_quantiles(X, np.array([False, False, True]))
    assert Q.shape == (3, 50)  # as many levels as rows
    assert np.isnan(Q[2]).all()  # categorical
    np.testing.assert_array_equal(Q[1], np.sort(X[:, 1]))
    # the missing cells are left out: 45 values spread over 50 levels
    assert set(Q[0]) == set(X[5:, 0]) and np.all(np.diff(Q[0]) >= 0)
    np.testing.assert_array_equal(
        column_quantiles(sp.csr_matrix(X[:, 1:2]), [False]), Q[1:2]
    )
    # sparse columns with negative values, implicit zeros and missing cells
    S = sp.random(300, 4, density=0.3, format="csr", random_state=0)
    S.data -= 0.5
    S.data[:5] = np.nan
    np.testing.assert_array_equal(
        column_quantiles(S, np.zeros(4, bool)),
        column_quantiles(S.toarray(), np.zeros(4, bool)),
    )
    big = rng.gamma(2.0, size=(5000, 1))
    levels = (np.arange(1000) + 0.5) / 1000
    np.testing.assert_array_equal(
        column_quantiles(big, [False])[0],
        np.quantile(big[:, 0], levels, method="inverted_cdf"),
    )


def test_match_marginal_maps_draws_onto_the_quantiles():
    from skvae._columns import column_quantiles, match_marginal

    rng = np.random.default_rng(0)
    target = rng.gamma(2.0, size=(5000, 1))
    q = column_quantiles(target, [False])[0]
    values, reference = rng.normal(size=3000), rng.normal(size=20000)
    mapped = match_marginal(values, reference, q, rng)
    # increasing in the value, and distributed as the target
    assert np.all(np.diff(mapped[np.argsort(values)]) >= 0)
    assert stats.ks_2samp(mapped, target[:, 0]).statistic < 0.04
    assert stats.ks_2samp(values, target[:, 0]).statistic > 0.4
    # tied draws (a discrete model marginal) onto whole numbers: the ties are
    # split at random, so the target's shares come back
    counts = rng.poisson(6.0, size=(4000, 1)).astype(float)
    q = column_quantiles(counts, [False])[0]
    draws = rng.poisson(2.0, size=20000).astype(float)
    mapped = match_marginal(draws[:5000], draws, q, rng)
    assert np.all(mapped == np.round(mapped)) and set(mapped) <= set(counts[:, 0])
    for k in range(3, 10):
        assert abs(np.mean(mapped == k) - np.mean(counts == k)) < 0.02
    # a column without observed values keeps the draws
    np.testing.assert_array_equal(
        match_marginal(values, reference, np.full(10, np.nan), rng), values
    )


@pytest.fixture(scope="module")
def skewed_model():
    # a zero-inflated amount, a count and a normal column, related
    rng = np.random.default_rng(1)
    n = 1500
    h = rng.normal(size=n)
    amount = np.where(
        rng.random(n) < 0.6, 0.0, np.exp(3 + h + 0.3 * rng.normal(size=n))
    )
    count = rng.poisson(np.exp(1 + 0.5 * h))
    X = np.c_[amount, count, h + 0.5 * rng.normal(size=n)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAETransformer(
            hidden_layer_sizes=(32,), latent_dim=2, max_iter=150, random_state=0
        ).fit(X)
    return vae, X


def test_training_marginals_follow_the_training_columns(skewed_model):
    vae, X = skewed_model
    kw = dict(random_state=0, noise=True, latent="aggregate")
    own = vae.sample(3000, **kw)
    S = vae.sample(3000, marginals="training", **kw)
    ks_own = [stats.ks_2samp(own[:, j], X[:, j]).statistic for j in range(3)]
    ks = [stats.ks_2samp(S[:, j], X[:, j]).statistic for j in range(3)]
    # the Gaussian decoder smears the zeros and the counts; the mapped
    # columns have them, and whole numbers where the training column has
    assert ks_own[0] > 0.2 and ks_own[1] > 0.05
    assert max(ks) < 0.04
    assert abs(np.mean(S[:, 0] == 0) - np.mean(X[:, 0] == 0)) < 0.03
    assert np.all(S[:, 1] == np.round(S[:, 1])) and S[:, :2].min() >= 0
    # the rows keep the model's ranks (the same draws, mapped column by column)
    for j in range(3):
        assert np.all(np.diff(S[np.argsort(own[:, j], kind="stable"), j]) >= 0)
    # so the relation between the columns is the model's
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        rho = stats.spearmanr(S[:, a], S[:, b])[0]
        assert abs(rho - stats.spearmanr(own[:, a], own[:, b])[0]) < 0.02
    assert stats.spearmanr(S[:, 1], S[:, 2])[0] > 0.35  # data: 0.55
    np.testing.assert_array_equal(S, vae.sample(3000, marginals="training", **kw))
    # one row at a time works (the reference draws are the model's own)
    one = vae.sample(1, random_state=0, marginals="training")
    assert one.shape == (1, 3) and one[0, 1] == np.round(one[0, 1])


def test_training_marginals_with_conditions(penguins_model):
    vae, df = penguins_model
    S = vae.sample(
        300,
        random_state=0,
        noise=True,
        conditions={"species": "Gentoo", "bill_length_mm": 47.5},
        marginals="training",
    )
    assert list(S.columns) == list(df.columns)
    assert (S["species"] == "Gentoo").all() and (S["bill_length_mm"] == 47.5).all()
    assert S["body_mass_g"].dtype == df["body_mass_g"].dtype
    # the mass is mapped onto the training masses, and still conditional
    mass = S["body_mass_g"]
    assert (
        mass.min() >= df["body_mass_g"].min() and mass.max() <= df["body_mass_g"].max()
    )
    assert mass.mean() > 4500


def test_bad_marginals_and_missing_quantiles_raise(penguins_model):
    import copy

    vae, _ = penguins_model
    with pytest.raises(ValueError, match="marginals must be"):
        vae.sample(5, marginals="data")
    old = copy.deepcopy(vae)
    del old.feature_quantiles_
    with pytest.raises(ValueError, match="refit"):
        old.sample(5, marginals="training")
    old.sample(5)


def test_training_marginals_keep_a_dataframes_dtypes():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame(
        {
            "count": rng.poisson(3.0, n).astype(np.int64),
            "x": rng.normal(size=n),
            "c": pd.Categorical(rng.choice(["a", "b"], n)),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
        vae.fit(df)
    S = vae.sample(200, random_state=0, noise=True, marginals="training")
    assert S.dtypes.tolist() == df.dtypes.tolist()
    assert df["count"].min() <= S["count"].min()
    assert S["count"].max() <= df["count"].max()
    assert df["x"].min() <= S["x"].min() and S["x"].max() <= df["x"].max()
    assert np.isnan(vae.feature_quantiles_[2]).all()  # categorical
