"""Interrupted training: a KeyboardInterrupt during fit leaves a usable model."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import skvae._base as base
from skvae import (
    AutoencoderTransformer,
    TrainingDivergedError,
    VAEAnomalyDetector,
    VAETransformer,
)

X = np.random.default_rng(0).normal(size=(300, 5)) @ np.random.default_rng(1).normal(
    size=(5, 5)
)


def _interrupt_at(monkeypatch, step):
    """Make the ``step``-th Adam update raise KeyboardInterrupt."""
    original = base.Adam.update
    calls = {"n": 0}

    def update(self, params, grads, workers=None):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return original(self, params, grads, workers)

    monkeypatch.setattr(base.Adam, "update", update)


@pytest.mark.parametrize("Est", [AutoencoderTransformer, VAETransformer])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interrupt_keeps_the_last_complete_epoch(Est, seed, monkeypatch):
    # two batches an epoch: interrupt at a random step after the first epoch
    step = int(np.random.default_rng(seed).integers(3, 40))
    params = dict(max_iter=30, batch_size=150, random_state=seed)
    _interrupt_at(monkeypatch, step)
    with pytest.warns(UserWarning, match="interrupted"):
        est = Est(**params).fit(X)
    monkeypatch.undo()
    done = (step - 1) // 2  # complete epochs before the interrupted step
    assert est.n_iter_ == done == len(est.loss_curve_)
    assert np.all(np.isfinite(est.transform(X)))
    assert np.all(np.isfinite(est.score_samples(X)))
    # exactly the model of a fit that ran those epochs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = Est(**{**params, "max_iter": done}).fit(X)
    np.testing.assert_array_equal(est.params_, ref.params_)
    # and training continues from there, not from the start
    est.partial_fit(X)
    assert est.n_iter_ == done + 1
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert (
        abs(est.loss_curve_[-1] - est.loss_curve_[-2])
        < 0.5 * abs(est.loss_curve_[0] - est.loss_curve_[-2]) + 1e-9
        or est.loss_curve_[-1] <= est.loss_curve_[-2]
    )


def test_interrupted_detector_predicts(monkeypatch):
    _interrupt_at(monkeypatch, 25)
    with pytest.warns(UserWarning, match="interrupted"):
        det = VAEAnomalyDetector(random_state=0).fit(X)
    monkeypatch.undo()
    assert set(np.unique(det.predict(X))) <= {-1, 1}
    assert np.isfinite(det.offset_)


def test_interrupted_lbfgs_keeps_an_accepted_iterate(monkeypatch):
    calls = {"n": 0}
    original = VAETransformer._objective

    def objective(self, workers=None, n_shards=1):
        obj = original(self, workers, n_shards)
        call = obj.__call__

        class Wrapped:
            def __getattr__(self, name):
                return getattr(obj, name)

            def __call__(self, *args, **kwargs):
                calls["n"] += 1
                if calls["n"] == 12:
                    raise KeyboardInterrupt
                return call(*args, **kwargs)

        return Wrapped()

    monkeypatch.setattr(VAETransformer, "_objective", objective)
    with pytest.warns(UserWarning, match="interrupted"):
        est = VAETransformer(solver="lbfgs", max_iter=50, random_state=0).fit(X)
    monkeypatch.undo()
    assert np.all(np.isfinite(est.params_))
    assert len(est.loss_curve_) == est.n_iter_
    assert np.all(np.isfinite(est.score_samples(X)))


@pytest.mark.parametrize("Est", [AutoencoderTransformer, VAETransformer])
def test_divergence_names_the_epoch_and_the_last_finite_loss(Est):
    X32 = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    with pytest.raises(TrainingDivergedError, match=r"at epoch \d+") as info:
        Est(learning_rate_init=1e6, max_iter=50, random_state=0).fit(X32)
    if "last finite loss" not in str(info.value):
        # it may diverge in the first epoch, before any finite epoch loss
        assert "epoch 1" in str(info.value)
