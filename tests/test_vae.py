"""Known answers for the VAE's likelihood and its training options."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _linear_gaussian(noise, n=1000, seed=0):
    """Train and test rows from x = z W + mu + e, e ~ N(0, diag(noise))."""
    rng = np.random.default_rng(seed)
    d, k = noise.size, 2
    W = rng.normal(size=(k, d))
    mu = 3 * rng.normal(size=d)

    def draw(m):
        return (
            rng.normal(size=(m, k)) @ W + mu + rng.normal(size=(m, d)) * np.sqrt(noise)
        )

    exact = multivariate_normal(mu, W.T @ W + np.diag(noise))
    return draw(n), draw(n), exact


def _linear_vae(decoder_variance, standardize, k=2, n_importance_samples=500):
    return VAETransformer(
        hidden_layer_sizes=(),
        latent_dim=k,
        activation="identity",
        solver="lbfgs",
        max_iter=1000,
        alpha=0.0,
        decoder_variance=decoder_variance,
        standardize=standardize,
        n_importance_samples=n_importance_samples,
        random_state=0,
    )


def test_linear_vae_score_matches_factor_analysis():
    noise = np.random.default_rng(1).uniform(0.1, 1.0, size=8)
    X_train, X_test, exact = _linear_gaussian(noise)
    fa = FactorAnalysis(n_components=2).fit(X_train)
    vae = _linear_vae("feature", standardize=True).fit(X_train)
    assert vae.score(X_test) == pytest.approx(fa.score(X_test), abs=0.05)
    # and both are close to the log-density of the generating model
    assert vae.score(X_test) == pytest.approx(exact.logpdf(X_test).mean(), abs=0.1)
    per_row = vae.score_samples(X_test)
    np.testing.assert_allclose(per_row, fa.score_samples(X_test), atol=0.3)


def test_linear_vae_with_shared_variance_matches_probabilistic_pca():
    X_train, X_test, _ = _linear_gaussian(np.full(8, 0.5))
    pca = PCA(n_components=2).fit(X_train)
    vae = _linear_vae("shared", standardize=False).fit(X_train)
    assert vae.score(X_test) == pytest.approx(pca.score(X_test), abs=0.05)


def test_importance_sampling_tightens_the_elbo():
    noise = np.random.default_rng(2).uniform(0.1, 1.0, size=6)
    X_train, X_test, exact = _linear_gaussian(noise, n=500)
    vae = VAETransformer(
        hidden_layer_sizes=(16,), latent_dim=2, max_iter=60, random_state=0
    ).fit(X_train)
    scores = {}
    for k in (1, 10, 100):
        scores[k] = vae.set_params(n_importance_samples=k).score(X_test)
    # the K=1 estimate is the ELBO: the bound grows with K (in expectation;
    # with 500 rows the averages are ordered) and stays below log p(x)
    assert scores[1] < scores[10] < scores[100]
    assert scores[100] < exact.logpdf(X_test).mean() + 0.05


def test_score_is_in_the_units_of_the_input():
    # rescaling a feature by c shifts every log-density by -log(c); the two
    # models are the same up to rounding in standardised space, but their
    # importance-sampling noise differs (it is keyed by the rows' values),
    # so compare the means with a Monte Carlo tolerance
    X_train, X_test, _ = _linear_gaussian(np.full(5, 0.3), n=400)
    c = np.array([10.0, 1, 1, 1, 1])
    params = {"max_iter": 30, "n_importance_samples": 200, "random_state": 0}
    vae = VAETransformer(**params).fit(X_train)
    scaled = VAETransformer(**params).fit(X_train * c)
    np.testing.assert_allclose(scaled.transform(X_test * c), vae.transform(X_test))
    shift = scaled.score_samples(X_test * c) - vae.score_samples(X_test)
    assert np.mean(shift) == pytest.approx(-np.log(10), abs=0.02)


def test_active_units_detect_posterior_collapse():
    X_train, _, _ = _linear_gaussian(np.full(8, 0.2), n=800)
    # two latent factors in the data, two used by the model
    vae = _linear_vae("feature", standardize=True, k=2).fit(X_train)
    np.testing.assert_allclose(
        vae.latent_mean_variance_, vae.transform(X_train).var(axis=0), rtol=1e-6
    )
    np.testing.assert_array_equal(vae.active_units_, [0, 1])
    # with a huge KL weight every unit collapses onto the prior, and fit says so
    lazy = VAETransformer(beta=50.0, latent_dim=3, max_iter=40, random_state=0)
    with pytest.warns(ConvergenceWarning, match="posterior collapse"):
        lazy.fit(X_train)
    assert lazy.active_units_.size == 0


def test_kl_warmup_ramps_beta():
    X_train, _, _ = _linear_gaussian(np.full(4, 0.5), n=200)
    vae = VAETransformer(kl_warmup=10, max_iter=10, alpha=0.0, random_state=0)
    vae.fit(X_train)
    # at epoch e the objective is recon + beta * e / 10 * kl
    for e in (0, 4, 9):
        weight = (e + 1) / 10
        expected = vae.reconstruction_curve_[e] + weight * vae.kl_curve_[e]
        assert vae.loss_curve_[e] == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_kl_warmup_is_not_a_plateau(early_stopping):
    # the KL weight rises for 40 epochs and so does the training loss: a
    # plateau rule that counted those epochs stopped at epoch 30, mid-ramp
    X_train, _, _ = _linear_gaussian(np.full(4, 0.5), n=200)
    vae = VAETransformer(
        kl_warmup=40,
        n_iter_no_change=3,
        max_iter=300,
        learning_rate_init=1e-2,
        early_stopping=early_stopping,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X_train)
    assert 40 + 3 < vae.n_iter_ < 300
    # the best loss is one at the full beta (epochs 40 on)
    assert vae.best_loss_ == min(vae.loss_curve_[39:])
    assert vae.best_loss_ > min(vae.loss_curve_[:39])


def test_free_bits_keeps_kl_above_the_floor():
    X_train, _, _ = _linear_gaussian(np.full(6, 0.2), n=500)
    plain = VAETransformer(latent_dim=4, beta=4.0, max_iter=60, random_state=0)
    floor = VAETransformer(
        latent_dim=4, beta=4.0, free_bits=0.5, max_iter=60, random_state=0
    )
    kl_plain = plain.fit(X_train).kl_curve_[-1]
    kl_floor = floor.fit(X_train).kl_curve_[-1]
    assert kl_floor > kl_plain


def test_free_bits_with_the_importance_weighted_bound_warns():
    # the IWAE bound has no KL term to floor: free_bits would be ignored
    X_train, _, _ = _linear_gaussian(np.full(4, 0.5), n=100)
    vae = VAETransformer(iwae_samples=3, free_bits=0.5, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match="free_bits is only used with"):
            vae.fit(X_train)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.set_params(iwae_samples=1).fit(X_train)
            vae.set_params(iwae_samples=3, free_bits=0.0).fit(X_train)


@pytest.fixture(scope="module")
def dequantised_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(0)
    pixels = load_digits().data
    X = (pixels + rng.uniform(size=pixels.shape)) / 17
    return train_test_split(X, test_size=0.3, random_state=0)


@pytest.mark.parametrize(
    "decoder_variance, reference, standardize, tolerance",
    [
        ("feature", FactorAnalysis, True, 0.1),
        pytest.param("shared", PCA, False, 0.05, marks=pytest.mark.slow),
    ],
    ids=["factor-analysis", "probabilistic-pca"],
)
def test_linear_vae_matches_linear_gaussian_models_on_digits(
    dequantised_digits, decoder_variance, reference, standardize, tolerance
):
    X_train, X_test = dequantised_digits
    k = 5
    ref = reference(n_components=k).fit(X_train)
    vae = _linear_vae(decoder_variance, standardize, k=k, n_importance_samples=1000)
    vae.set_params(max_iter=3000, tol=1e-6).fit(X_train)
    assert vae.score(X_test) == pytest.approx(ref.score(X_test), abs=tolerance)


def test_sample_with_noise_draws_from_the_full_density():
    noise = np.full(8, 0.5)  # 8 features, 2 factors: the noise is identifiable
    X_train, _, exact = _linear_gaussian(noise, n=2000)
    vae = _linear_vae("feature", standardize=True).fit(X_train)
    means = vae.sample(20000, random_state=0)
    full = vae.sample(20000, random_state=0, noise=True)
    # decoder means miss the observation noise; full draws match the data
    true_var = np.diag(exact.cov)
    np.testing.assert_allclose(full.var(axis=0), true_var, rtol=0.1)
    np.testing.assert_allclose(full.var(axis=0) - means.var(axis=0), noise, atol=0.2)
    np.testing.assert_allclose(full.mean(axis=0), exact.mean, atol=0.1)


def test_bernoulli_sample_with_noise_is_binary():
    X = (np.random.default_rng(0).uniform(size=(300, 5)) > 0.3).astype(float)
    vae = VAETransformer(likelihood="bernoulli", max_iter=300, random_state=0).fit(X)
    draws = vae.sample(2000, random_state=1, noise=True)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(axis=0), X.mean(axis=0), atol=0.1)
