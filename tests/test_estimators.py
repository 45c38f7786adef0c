"""Behaviour shared by the three estimators, beyond scikit-learn's checks."""

import io
import pickle
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import AutoencoderTransformer, VAEAnomalyDetector, VAETransformer
from skvae._base import TrainingDivergedError

ALL = [AutoencoderTransformer, VAETransformer, VAEAnomalyDetector]
FAST = {"max_iter": 15, "random_state": 0}

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.mark.parametrize("Est", ALL)
def test_pipeline_scaler_estimator_classifier(Est, iris):
    X, y = iris
    pipe = make_pipeline(
        StandardScaler(), Est(latent_dim=2, **FAST), LogisticRegression()
    )
    pipe.fit(X, y)
    assert pipe.predict(X).shape == y.shape
    assert pipe.score(X, y) > 0.6  # 2-D codes of iris still separate classes


def test_gridsearch_over_beta_and_latent_dim_uses_default_score(iris):
    X, _ = iris
    grid = GridSearchCV(
        VAETransformer(max_iter=30, random_state=0),
        {"beta": [0.5, 1.0], "latent_dim": [1, 2]},
        cv=3,
    )
    grid.fit(X)
    scores = grid.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert grid.best_params_["latent_dim"] in (1, 2)
    assert grid.best_score_ == pytest.approx(np.max(scores))


@pytest.mark.parametrize("Est", ALL)
def test_cross_val_score_without_scorer(Est, iris):
    scores = cross_val_score(Est(**FAST), iris[0], cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_cross_val_score_in_parallel_matches_serial(iris):
    est = VAETransformer(**FAST)
    serial = cross_val_score(est, iris[0], cv=2, n_jobs=1)
    parallel = cross_val_score(est, iris[0], cv=2, n_jobs=2)
    np.testing.assert_array_equal(serial, parallel)


@pytest.mark.parametrize("Est", ALL)
def test_clone_keeps_params_and_drops_fit(Est, iris):
    est = Est(latent_dim=3, **FAST).fit(iris[0])
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    assert not hasattr(cloned, "params_")


def _plain(obj):
    """Whether obj is made only of NumPy arrays and plain Python values."""
    if isinstance(obj, (np.ndarray, np.generic, int, float, str, bool, type(None))):
        return True
    if isinstance(obj, (list, tuple)):
        return all(_plain(o) for o in obj)
    if isinstance(obj, dict):
        return all(_plain(k) and _plain(v) for k, v in obj.items())
    return False


@pytest.mark.parametrize("Est", ALL)
def test_pickle_round_trip_and_plain_state(Est, iris):
    X = iris[0]
    est = Est(**FAST).fit(X)
    state = est.__getstate__()
    assert all(_plain(v) for k, v in state.items()), {
        k: type(v) for k, v in state.items() if not _plain(v)
    }
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))


@pytest.mark.parametrize("Est", ALL)
def test_set_output_pandas_and_feature_names(Est, iris):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(iris[0], columns=["sl", "sw", "pl", "pw"])
    est = Est(latent_dim=2, **FAST).set_output(transform="pandas")
    Z = est.fit(X).transform(X)
    prefix = Est.__name__.lower()
    assert list(Z.columns) == [f"{prefix}0", f"{prefix}1"]
    assert list(est.feature_names_in_) == ["sl", "sw", "pl", "pw"]
    np.testing.assert_array_equal(
        est.get_feature_names_out(), [f"{prefix}0", f"{prefix}1"]
    )


@pytest.mark.parametrize("Est", ALL)
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_float32_in_float32_out(Est, solver, iris):
    X = iris[0].astype(np.float32)
    est = Est(solver=solver, **FAST).fit(X)
    assert est.params_.dtype == np.float32
    Z = est.transform(X)
    assert Z.dtype == np.float32
    assert est.inverse_transform(Z).dtype == np.float32
    assert est.score_samples(X).dtype == np.float32
    assert est.sample(4).dtype == np.float32
    # float64 data through a float32 model is computed in float64
    assert est.transform(iris[0]).dtype == np.float64


@pytest.mark.parametrize("Est", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_random_state_is_bit_identical(Est, dtype, iris):
    X = iris[0].astype(dtype)
    a = Est(**FAST).fit(X)
    b = Est(**FAST).fit(X)
    np.testing.assert_array_equal(a.params_, b.params_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.sample(5), b.sample(5))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    c = Est(max_iter=15, random_state=1).fit(X)
    assert not np.array_equal(a.params_, c.params_)


@pytest.mark.parametrize("Est", [VAETransformer, VAEAnomalyDetector])
def test_score_samples_of_a_row_does_not_depend_on_the_batch(Est, iris):
    X = iris[0]
    est = Est(**FAST).fit(X)
    full = est.score_samples(X)
    np.testing.assert_allclose(est.score_samples(X[::-1])[::-1], full, rtol=1e-12)
    np.testing.assert_allclose(est.score_samples(X[7:8]), full[7:8], rtol=1e-12)
    np.testing.assert_array_equal(est.score_samples(X), full)  # repeatable


@pytest.mark.parametrize("Est", ALL)
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_both_solvers_reduce_the_loss(Est, solver):
    X = load_digits().data[:400]
    est = Est(solver=solver, max_iter=40, random_state=0).fit(X)
    assert len(est.loss_curve_) == est.n_iter_ > 1
    if Est is AutoencoderTransformer:  # mean squared error of standardised pixels
        assert est.loss_curve_[-1] < 0.8 * est.loss_curve_[0]
    else:  # negative ELBO, nats per row
        assert est.loss_curve_[-1] < est.loss_curve_[0] - 5.0
    assert est.best_loss_ == pytest.approx(min(est.loss_curve_))


def test_vae_curves_split_the_loss_into_reconstruction_and_kl(iris):
    est = VAETransformer(alpha=0.0, beta=1.0, **FAST).fit(iris[0])
    total = np.add(est.reconstruction_curve_, est.kl_curve_)
    np.testing.assert_allclose(est.loss_curve_, total, rtol=1e-10)
    assert np.all(np.asarray(est.kl_curve_) > 0)


def test_max_iter_reached_warns(iris):
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        VAETransformer(max_iter=2, random_state=0).fit(iris[0])


def test_tol_stops_training_before_max_iter(iris):
    est = AutoencoderTransformer(max_iter=5000, tol=1e-2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(iris[0])
    assert est.n_iter_ < 5000


def test_early_stopping_records_validation_and_keeps_the_best(iris):
    X = np.repeat(iris[0], 3, axis=0)
    # at the default step size the KL term rises slowly from ~0 and the
    # validation score with it for all 300 epochs, which the stopping rule
    # waits out (it stopped at epoch 94, 0.6 nats/row short of epoch 300)
    est = VAETransformer(
        early_stopping=True,
        max_iter=300,
        n_iter_no_change=5,
        learning_rate_init=1e-2,
        random_state=0,
    ).fit(X)
    assert len(est.validation_scores_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.n_iter_ < 300


@pytest.mark.parametrize("Est", ALL)
def test_partial_fit_runs_one_epoch_and_continues(Est, iris):
    X = iris[0]
    est = Est(random_state=0)
    for _ in range(3):
        est.partial_fit(X)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    # the same epochs through fit's loop give the same parameters
    ref = Est(max_iter=3, random_state=0).fit(X)
    assert ref.loss_curve_[0] == pytest.approx(est.loss_curve_[0])


def test_partial_fit_needs_adam(iris):
    with pytest.raises(ValueError, match="solver='adam'"):
        VAETransformer(solver="lbfgs").partial_fit(iris[0])


def test_warm_start_continues_from_the_previous_fit(iris):
    X = iris[0]
    est = VAETransformer(max_iter=10, warm_start=True, random_state=0).fit(X)
    first = est.loss_curve_[-1]
    est.fit(X)
    assert len(est.loss_curve_) == 20
    assert est.loss_curve_[-1] < first


@pytest.mark.parametrize("Est", ALL)
def test_verbose_prints_progress(Est, iris):
    buf = io.StringIO()
    with redirect_stdout(buf):
        Est(max_iter=3, verbose=True, random_state=0).fit(iris[0])
    lines = [ln for ln in buf.getvalue().splitlines() if ln.startswith("Iteration")]
    assert len(lines) == 3 and "loss =" in lines[0]


@pytest.mark.parametrize("Est", ALL)
def test_large_inputs_are_processed_in_chunks(Est, monkeypatch):
    import skvae._base as base

    X = np.random.default_rng(0).normal(size=(300, 5))
    est = Est(**FAST).fit(X)
    full_t, full_s = est.transform(X), est.score_samples(X)
    monkeypatch.setattr(base, "_CHUNK_ELEMENTS", 700)  # tiny chunks
    np.testing.assert_allclose(est.transform(X), full_t, rtol=1e-12)
    np.testing.assert_allclose(est.score_samples(X), full_s, rtol=1e-12)


@pytest.mark.parametrize("Est", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_but_finite_inputs_give_finite_losses(Est, dtype):
    rng = np.random.default_rng(0)
    big = np.finfo(dtype).max / 10
    tiny = np.finfo(dtype).tiny * 10
    X = (rng.normal(size=(60, 3)) * np.array([big / 4, tiny, 1.0])).astype(dtype)
    est = Est(**FAST).fit(X)
    assert np.all(np.isfinite(est.loss_curve_))
    assert np.all(np.isfinite(est.score_samples(X)))
    assert np.all(np.isfinite(est.transform(X)))


@pytest.mark.parametrize("Est", ALL)
def test_diverging_training_is_reported(Est):
    X = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    with pytest.raises(TrainingDivergedError, match="diverged"):
        Est(learning_rate_init=1e6, max_iter=50, random_state=0).fit(X)


def test_vae_transform_is_the_posterior_mean_and_sample_uses_the_prior(iris):
    X = iris[0]
    est = VAETransformer(**FAST).fit(X)
    samples = est.sample(2000, random_state=1)
    assert samples.shape == (2000, 4)
    # decoded prior draws land in the data's range
    assert np.all(samples.mean(axis=0) > X.min(axis=0))
    assert np.all(samples.mean(axis=0) < X.max(axis=0))
    np.testing.assert_array_equal(
        est.sample(3, random_state=5), est.sample(3, random_state=5)
    )


def test_autoencoder_sample_draws_from_the_gaussian_of_the_codes(iris):
    X = iris[0]
    est = AutoencoderTransformer(**FAST).fit(X)
    Z = est.transform(X)
    np.testing.assert_allclose(est.latent_mean_, Z.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(
        est.latent_covariance_, np.cov(Z.T, bias=True), atol=1e-10
    )
    draws = est.sample(5000, random_state=0)
    assert draws.shape == (5000, 4)
    # the decoded draws come back near the training data's mean
    np.testing.assert_allclose(draws.mean(axis=0), X.mean(axis=0), atol=0.6)


def test_bernoulli_likelihood_outputs_probabilities():
    X = load_digits().data[:300] / 16
    est = VAETransformer(likelihood="bernoulli", **FAST).fit(X)
    R = est.inverse_transform(est.transform(X))
    assert R.min() >= 0 and R.max() <= 1
    assert np.all(np.isfinite(est.score_samples(X)))


@pytest.mark.parametrize("Est", ALL)
def test_lbfgs_early_stopping_keeps_the_best_validated_iterate(Est, iris):
    X = np.repeat(iris[0], 2, axis=0)
    est = Est(
        solver="lbfgs",
        early_stopping=True,
        n_iter_no_change=3,
        max_iter=300,
        random_state=0,
    ).fit(X)
    assert len(est.validation_scores_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)
    # the kept parameters are the best validated ones, not the last
    best = int(np.argmax(est.validation_scores_))
    assert est.n_iter_ - 1 - best <= est.n_iter_no_change + 1


@pytest.mark.parametrize("Est", ALL)
def test_robust_standardisation_uses_median_and_iqr(Est):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    X[:8] += 6.0  # a few outlying rows shift the mean, not the median
    X[:, 2] = rng.exponential(size=400) * (rng.uniform(size=400) < 0.1)  # sparse
    params = dict(standardize="robust", max_iter=3, random_state=0)
    if Est is VAEAnomalyDetector:
        # (its default likelihood="auto" would give the sparse column its own
        # zero-inflated likelihood, which the scaling leaves alone)
        params["likelihood"] = "gaussian"
    est = Est(**params).fit(X)
    if Est is VAEAnomalyDetector:
        # the detector fits on the rows it does not hold out to set offset_
        from sklearn.utils import check_random_state

        from skvae._anomaly import _offset_split

        X = X[_offset_split(X.shape[0], check_random_state(0))[0]]
    np.testing.assert_allclose(est.input_mean_, np.median(X, axis=0))
    q1, q3 = np.percentile(X, [25, 75], axis=0)
    expected = np.maximum((q3 - q1) / 1.349, 0.35 * X.std(axis=0))
    np.testing.assert_allclose(est.input_scale_[:2], expected[:2])
    # the sparse column has a point mass at its median (0): its IQR says
    # nothing about its spread, and it is scaled by its standard deviation
    assert est.input_scale_[2] == pytest.approx(X[:, 2].std())


@pytest.mark.parametrize("standardize", [True, "robust"])
def test_scaling_statistics_do_not_depend_on_blocking(standardize, monkeypatch):
    # column moments and quartiles are computed over blocks of rows (or of
    # columns) to bound memory; they must equal the whole-array statistics
    import skvae._scaling as base
    from skvae._columns import fit_scaling

    rng = np.random.default_rng(0)
    X = rng.normal(size=(301, 7)) * np.logspace(-3, 3, 7) + np.arange(7)
    X[:, 3] = 5.0  # constant: left unscaled
    X[0, 0] = np.finfo(np.float64).max / 4  # near the float limit
    scaled = np.ones(7, dtype=bool)
    mean, scale = fit_scaling(X, scaled, standardize)
    monkeypatch.setattr(base, "_STATS_BLOCK", 50)  # blocks of 7 rows or 1 column
    mean2, scale2 = fit_scaling(X, scaled, standardize)
    np.testing.assert_allclose(mean2, mean, rtol=1e-12)
    np.testing.assert_allclose(scale2, scale, rtol=1e-12)
    assert scale[3] == 1.0
    peak = np.max(np.abs(X), axis=0)
    Xp = X / peak
    if standardize is True:
        np.testing.assert_allclose(mean, Xp.mean(axis=0) * peak, rtol=1e-12)
        expected = Xp.std(axis=0) * peak
    else:
        q1, q38, med, q62, q3 = np.percentile(Xp, [25, 37.5, 50, 62.5, 75], axis=0)
        np.testing.assert_allclose(mean, med * peak, rtol=1e-12)
        expected = np.maximum(
            (q3 - q1) / 1.349 * peak,
            base.ROBUST_MIN_STD_FRACTION * Xp.std(axis=0) * peak,
        )
        point_mass = q38 == q62
        expected[point_mass] = (Xp.std(axis=0) * peak)[point_mass]
    expected[3] = 1.0
    np.testing.assert_allclose(scale, expected, rtol=1e-12)
    assert np.all(np.isfinite(scale))
