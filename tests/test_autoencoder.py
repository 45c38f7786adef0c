"""Known answers for the deterministic autoencoder."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from skvae import AutoencoderTransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize(
    "solver, params",
    [
        ("lbfgs", {"max_iter": 500}),
        ("adam", {"max_iter": 200, "learning_rate_init": 1e-2, "tol": 0.0}),
    ],
)
def test_linear_autoencoder_reaches_pca_reconstruction_error(solver, params):
    # A linear autoencoder's optimum spans PCA's subspace, so its error can be
    # no lower than PCA's and should come close to it.
    X = load_digits().data / 16
    k = 5
    pca = PCA(n_components=k).fit(X)
    pca_err = np.mean((X - pca.inverse_transform(pca.transform(X))) ** 2)
    ae = AutoencoderTransformer(
        hidden_layer_sizes=(),
        latent_dim=k,
        activation="identity",
        standardize=False,
        alpha=0.0,
        solver=solver,
        random_state=0,
        **params,
    ).fit(X)
    ae_err = np.mean((X - ae.inverse_transform(ae.transform(X))) ** 2)
    assert pca_err * (1 - 1e-6) <= ae_err <= 1.05 * pca_err


def test_score_samples_is_minus_the_reconstruction_error():
    X = load_digits().data[:200] / 16
    ae = AutoencoderTransformer(
        latent_dim=3, max_iter=20, standardize=False, random_state=0
    ).fit(X)
    recon = ae.inverse_transform(ae.transform(X))
    np.testing.assert_allclose(
        ae.score_samples(X), -np.mean((X - recon) ** 2, axis=1), rtol=1e-10
    )


def test_nonlinear_autoencoder_beats_pca_on_a_curve():
    # points on a circle are one-dimensional but not linear
    t = np.random.default_rng(0).uniform(0, 2 * np.pi, 400)
    X = np.c_[np.cos(t), np.sin(t)]
    pca = PCA(n_components=1).fit(X)
    pca_err = np.mean((X - pca.inverse_transform(pca.transform(X))) ** 2)
    ae = AutoencoderTransformer(
        hidden_layer_sizes=(32, 32),
        latent_dim=1,
        activation="tanh",
        solver="lbfgs",
        max_iter=500,
        random_state=0,
    ).fit(X)
    ae_err = np.mean((X - ae.inverse_transform(ae.transform(X))) ** 2)
    assert ae_err < 0.5 * pca_err
