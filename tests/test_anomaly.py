"""Outlier detection behaviour of VAEAnomalyDetector."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score

from skvae import VAEAnomalyDetector

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _with_outliers(seed=0, n=600, n_out=30):
    """Correlated inliers on a low-dimensional structure plus scattered outliers."""
    A = np.random.default_rng(42).normal(size=(2, 6))  # the same structure
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    X = np.tanh(z) @ A + 0.1 * rng.normal(size=(n, 6))
    # outliers: within the range of every feature, but off the structure
    out = rng.uniform(X.min(axis=0), X.max(axis=0), size=(n_out, 6))
    y = np.r_[np.zeros(n), np.ones(n_out)]
    return np.r_[X, out], y


def test_injected_outliers_rank_above_inliers():
    X, y = _with_outliers()
    det = VAEAnomalyDetector(max_iter=100, random_state=0).fit(X)
    auc = roc_auc_score(y, -det.score_samples(X))
    assert auc > 0.95


def test_detector_on_held_out_data():
    X, y = _with_outliers(seed=1)
    X_new, y_new = _with_outliers(seed=2)
    det = VAEAnomalyDetector(max_iter=100, random_state=0).fit(X)
    assert roc_auc_score(y_new, -det.decision_function(X_new)) > 0.95


@pytest.mark.parametrize("contamination", [0.05, 0.1, 0.25])
def test_float_contamination_flags_that_share_of_training_rows(contamination):
    X, _ = _with_outliers()
    det = VAEAnomalyDetector(
        contamination=contamination, max_iter=30, random_state=0
    ).fit(X)
    flagged = np.mean(det.predict(X) == -1)
    assert flagged == pytest.approx(contamination, abs=1.5 / X.shape[0])
    assert det.offset_ == pytest.approx(
        np.percentile(det.score_samples(X), 100 * contamination)
    )


def test_auto_contamination_is_tukeys_lower_fence():
    X, _ = _with_outliers()
    det = VAEAnomalyDetector(max_iter=30, random_state=0).fit(X)
    q1, q3 = np.percentile(det.score_samples(X), [25, 75])
    assert det.offset_ == pytest.approx(q1 - 1.5 * (q3 - q1))
    flagged = np.mean(det.predict(X) == -1)
    assert 0 < flagged < 0.25


def test_decision_function_predict_and_fit_predict_agree():
    X, _ = _with_outliers()
    det = VAEAnomalyDetector(contamination=0.1, max_iter=30, random_state=0)
    labels = det.fit_predict(X)
    decision = det.decision_function(X)
    np.testing.assert_allclose(decision, det.score_samples(X) - det.offset_)
    np.testing.assert_array_equal(labels, np.where(decision < 0, -1, 1))
    np.testing.assert_array_equal(labels, det.predict(X))
    assert set(np.unique(labels)) == {-1, 1}


def test_detector_works_on_raw_tabular_data_with_mixed_scales():
    # breast cancer features span five orders of magnitude; the malignant
    # class is treated as the rare anomaly
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    keep = np.r_[np.flatnonzero(y == 1), rng.choice(np.flatnonzero(y == 0), 20)]
    det = VAEAnomalyDetector(max_iter=60, random_state=0).fit(X[keep])
    auc = roc_auc_score(y[keep] == 0, -det.score_samples(X[keep]))
    assert auc > 0.8
