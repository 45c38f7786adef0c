"""Saved models: skops round trips and the version warning on load.

Every estimator, fitted and unfitted, goes through ``skops.io.dumps`` /
``skops.io.loads`` and answers bit-identically afterwards; the saved file
names no type but the estimator's own class, so ``skops.io.load(...,
trusted=...)`` needs to trust nothing else. A model saved by one skvae version
and loaded by another warns with :class:`skvae.SkvaeVersionWarning`.
"""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import InconsistentVersionWarning

import skvae
from skvae import (
    AutoencoderTransformer,
    SkvaeVersionWarning,
    VAEAnomalyDetector,
    VAEImputer,
    VAETransformer,
)

#: Every public estimator. A new one is one more entry here.
ESTIMATORS = [AutoencoderTransformer, VAETransformer, VAEAnomalyDetector, VAEImputer]

#: Settings that change what the fitted state holds.
VARIANTS = {
    "adam": {},
    "lbfgs": {"solver": "lbfgs"},
    "early_stopping": {"early_stopping": True, "n_iter_no_change": 2},
    "lbfgs_early_stopping": {"solver": "lbfgs", "early_stopping": True},
}

FAST = {"max_iter": 5, "random_state": 0}

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def X():
    return load_iris().data


def _skops():
    return pytest.importorskip("skops.io")


def _skops_round_trip(est):
    sio = _skops()
    data = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=data)
    return sio.loads(data, trusted=untrusted), untrusted


def _own_classes(est):
    return {f"{type(est).__module__}.{type(est).__qualname__}"}


def _outputs(est, X):
    """Every output of a fitted estimator that a saved model must reproduce."""
    out = {}
    if hasattr(est, "transform"):
        out["transform"] = est.transform(X)
    if hasattr(est, "score_samples"):
        out["score_samples"] = est.score_samples(X)
        out["score"] = est.score(X)
    if hasattr(est, "inverse_transform") and "transform" in out:
        out["inverse_transform"] = est.inverse_transform(out["transform"])
    if hasattr(est, "sample"):
        out["sample"] = est.sample(7, random_state=42)
        out["sample_default_state"] = est.sample(3)
    for method in ("decision_function", "predict"):
        if hasattr(est, method):
            out[method] = getattr(est, method)(X)
    return out


def _assert_same_outputs(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name, strict=True)


def _assert_same_state(a, b):
    """The loaded estimator's attributes equal the original's, types included."""
    assert a.__dict__.keys() == b.__dict__.keys()
    for key, value in a.__dict__.items():
        _assert_same_value(value, b.__dict__[key], key)


def _assert_same_value(a, b, where):
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where, strict=True)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_value(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_value(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_skops_round_trip_of_a_fitted_model_is_bit_identical(Est, variant, X):
    est = Est(**FAST, **VARIANTS[variant]).fit(X)
    loaded, untrusted = _skops_round_trip(est)
    assert set(untrusted) == _own_classes(est)
    assert type(loaded) is type(est)
    _assert_same_state(est, loaded)
    _assert_same_outputs(_outputs(est, X), _outputs(loaded, X))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_skops_round_trip_float32_and_dataframe(Est, X):
    pd = pytest.importorskip("pandas")
    X32 = X.astype(np.float32)
    est = Est(**FAST).fit(X32)
    loaded, untrusted = _skops_round_trip(est)
    assert set(untrusted) == _own_classes(est)
    _assert_same_outputs(_outputs(est, X32), _outputs(loaded, X32))

    df = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    est = Est(**FAST).set_output(transform="pandas").fit(df)
    loaded, untrusted = _skops_round_trip(est)
    assert set(untrusted) == _own_classes(est)
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    pd.testing.assert_frame_equal(loaded.transform(df), est.transform(df))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_skops_round_trip_after_partial_fit_continues_identically(Est, X):
    est = Est(**FAST).partial_fit(X).partial_fit(X)
    loaded, untrusted = _skops_round_trip(est)
    assert set(untrusted) == _own_classes(est)
    _assert_same_state(est, loaded)
    # the optimizer's state came through: training continues the same way
    est.partial_fit(X)
    loaded.partial_fit(X)
    np.testing.assert_array_equal(loaded.params_, est.params_, strict=True)
    _assert_same_outputs(_outputs(est, X), _outputs(loaded, X))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_skops_round_trip_of_an_unfitted_model(Est, X):
    est = Est(**FAST)
    loaded, untrusted = _skops_round_trip(est)
    assert set(untrusted) == _own_classes(est)
    # NaN (VAEImputer's missing_values) is not equal to itself: compare reprs
    assert {k: repr(v) for k, v in loaded.get_params().items()} == {
        k: repr(v) for k, v in est.get_params().items()
    }
    assert not hasattr(loaded, "params_")
    _assert_same_outputs(_outputs(est.fit(X), X), _outputs(loaded.fit(X), X))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_skops_file_loads_with_only_the_listed_types_trusted(Est, X, tmp_path):
    sio = _skops()
    est = Est(**FAST).fit(X)
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert untrusted == sorted(_own_classes(est))
    # loading without trusting the class is refused, as it should be
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(path)
    loaded = sio.load(path, trusted=untrusted)
    _assert_same_outputs(_outputs(est, X), _outputs(loaded, X))


# -- version warning -----------------------------------------------------------


def _saved_by(version, est, monkeypatch, dump):
    with monkeypatch.context() as m:
        m.setattr(skvae, "__version__", version)
        return dump(est)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_same_version_loads_without_warning(Est, X):
    est = Est(**FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = pickle.loads(pickle.dumps(est))
    assert "_skvae_version" not in loaded.__dict__
    _assert_same_state(est, loaded)


@pytest.mark.parametrize("fmt", ["pickle", "skops"])
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_other_version_warns_on_load(Est, fmt, X, monkeypatch):
    if fmt == "skops":
        sio = _skops()
        dump = sio.dumps

        def load(data):
            return sio.loads(data, trusted=sorted(_own_classes(est)))

    else:
        dump, load = pickle.dumps, pickle.loads
    est = Est(**FAST).fit(X)
    data = _saved_by("0.0.1", est, monkeypatch, dump)
    with pytest.warns(SkvaeVersionWarning, match="saved by skvae 0.0.1") as record:
        loaded = load(data)
    warning = record[0].message
    assert warning.original_skvae_version == "0.0.1"
    assert warning.current_skvae_version == skvae.__version__
    assert warning.estimator_name == Est.__name__
    # a filter on scikit-learn's warning catches skvae's too
    assert isinstance(warning, InconsistentVersionWarning)
    # the model still loads, whole
    assert "_skvae_version" not in loaded.__dict__
    _assert_same_outputs(_outputs(est, X), _outputs(loaded, X))


def test_state_without_a_version_warns(X):
    est = VAETransformer(**FAST).fit(X)
    state = est.__getstate__()
    del state["_skvae_version"]
    with pytest.warns(SkvaeVersionWarning, match="unknown"):
        VAETransformer().__setstate__(state)


def test_version_warning_can_be_made_an_error(X, monkeypatch):
    est = AutoencoderTransformer(**FAST).fit(X)
    data = _saved_by("0.0.1", est, monkeypatch, pickle.dumps)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        with pytest.raises(SkvaeVersionWarning):
            pickle.loads(data)
