"""scikit-learn's estimator checks over the four estimators."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import AutoencoderTransformer, VAEAnomalyDetector, VAEImputer, VAETransformer

ESTIMATORS = [
    AutoencoderTransformer(random_state=0),
    VAETransformer(random_state=0),
    VAEAnomalyDetector(random_state=0),
    # a small budget: the checks fit dozens of times
    VAEImputer(max_iter=20, random_state=0),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
