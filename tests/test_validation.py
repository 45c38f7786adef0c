"""Bad input and bad parameters get the errors scikit-learn users expect."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skvae import (
    AutoencoderTransformer,
    TrainingDivergedError,
    VAEAnomalyDetector,
    VAETransformer,
)

ALL = [AutoencoderTransformer, VAETransformer, VAEAnomalyDetector]
X = np.random.default_rng(0).normal(size=(40, 3))

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(params=ALL, ids=lambda c: c.__name__)
def fitted(request):
    return request.param(max_iter=5, random_state=0).fit(X)


@pytest.mark.parametrize("Est", ALL)
@pytest.mark.parametrize(
    "bad, match",
    [
        (np.where(np.eye(40, 3) > 0, np.inf, X), "infinity"),
        (np.empty((0, 3)), "0 sample"),
        (np.array([["a", "b", "c"]] * 5, dtype=object), "could not convert|string"),
        (np.ones(5), "2D array"),
    ],
    ids=["inf", "empty", "strings", "1d"],
)
def test_fit_rejects_bad_data_with_a_clear_message(Est, bad, match):
    with pytest.raises(ValueError, match=match):
        Est(max_iter=2).fit(bad)


@pytest.mark.parametrize("method", ["transform", "score_samples", "score"])
def test_methods_reject_bad_data_after_fit(fitted, method):
    with pytest.raises(ValueError, match="3 features"):
        getattr(fitted, method)(X[:, :2])
    with pytest.raises(ValueError, match="infinity"):
        getattr(fitted, method)(np.full((2, 3), np.inf))


def test_inverse_transform_checks_the_code_width(fitted):
    with pytest.raises(ValueError, match="latent_dim=2"):
        fitted.inverse_transform(np.zeros((3, 5)))


@pytest.mark.parametrize("Est", ALL)
@pytest.mark.parametrize(
    "method",
    ["transform", "inverse_transform", "score_samples", "score", "sample"],
)
def test_methods_before_fit_raise_not_fitted(Est, method):
    arg = 3 if method == "sample" else X
    with pytest.raises(NotFittedError):
        getattr(Est(), method)(arg)


def test_detector_methods_before_fit_raise_not_fitted():
    for method in ["predict", "decision_function"]:
        with pytest.raises(NotFittedError):
            getattr(VAEAnomalyDetector(), method)(X)


@pytest.mark.parametrize("Est", ALL)
@pytest.mark.parametrize(
    "params, match",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"activation": "softmax"}, "activation"),
        ({"solver": "sgd"}, "solver"),
        ({"alpha": -1.0}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"max_iter": 0}, "max_iter"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": (8, 2.5)}, "hidden_layer_sizes"),
    ],
)
def test_bad_parameters_are_rejected_at_fit(Est, params, match):
    with pytest.raises(ValueError, match=match):
        Est(**params).fit(X)


@pytest.mark.parametrize("Est", [VAETransformer, VAEAnomalyDetector])
@pytest.mark.parametrize(
    "params, match",
    [
        ({"beta": -0.1}, "beta"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"decoder_variance": "diag"}, "decoder_variance"),
        ({"n_importance_samples": 0}, "n_importance_samples"),
        ({"free_bits": -1}, "free_bits"),
    ],
)
def test_bad_vae_parameters_are_rejected(Est, params, match):
    with pytest.raises(ValueError, match=match):
        Est(**params).fit(X)


@pytest.mark.parametrize("contamination", [0.0, 0.6, "high"])
def test_bad_contamination_is_rejected(contamination):
    with pytest.raises(ValueError, match="contamination"):
        VAEAnomalyDetector(contamination=contamination).fit(X)


@pytest.mark.parametrize("Est", [VAETransformer, VAEAnomalyDetector])
def test_bernoulli_rejects_data_outside_unit_interval(Est):
    with pytest.raises(ValueError, match=r"bernoulli.*\[0, 1\]"):
        Est(likelihood="bernoulli").fit(X)
    est = Est(likelihood="bernoulli", max_iter=2).fit(np.abs(X) / 10)
    with pytest.raises(ValueError, match="MinMaxScaler"):
        est.score_samples(X)


@pytest.mark.parametrize("n_samples", [0, -1, 2.5, True])
def test_sample_rejects_bad_counts(fitted, n_samples):
    with pytest.raises(ValueError, match="n_samples"):
        fitted.sample(n_samples)


def test_early_stopping_with_too_few_rows_explains_itself():
    with pytest.raises(ValueError, match="validation rows"):
        VAETransformer(early_stopping=True, validation_fraction=0.1).fit(X[:5])


@pytest.mark.parametrize("Est", [AutoencoderTransformer, VAETransformer])
def test_unscaled_values_whose_squares_overflow_warn_at_fit(Est):
    # float32 squares overflow beyond about 1.8e19: score_samples of such a
    # row is -inf (see test_properties' xfail tests), and fit says why
    X = np.zeros((15, 2), dtype=np.float32)
    X[:, 1] = np.arange(15)
    X[10, 0] = 1.9e19
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match=r"Column\(s\) \['x0'\] reach 1.9e\+19"):
            try:
                Est(max_iter=1, standardize=False, random_state=0).fit(X)
            except TrainingDivergedError:
                pass  # the training loss can overflow too: also documented
        # scaled, the same values are fine; and float64 has room for them
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            Est(max_iter=1, random_state=0).fit(X)
            Est(max_iter=1, standardize=False, random_state=0).fit(X.astype(float))
