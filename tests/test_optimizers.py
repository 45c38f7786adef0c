"""Adam and the L-BFGS wrapper against reference computations."""

import numpy as np
import pytest

from skvae._optimizers import _RESCALE_EVERY, _SLICE, Adam, minimize_lbfgs
from skvae._parallel import Workers


def _reference_adam(p, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2**t))
    return p


@pytest.mark.parametrize("size", [7, 2 * _SLICE + 5])  # one slice, and several
def test_adam_matches_the_textbook_update(size):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=size)
    grads = [rng.normal(size=size) for _ in range(5)]
    p = p0.copy()
    opt = Adam(p, learning_rate=1e-2)
    for g in grads:
        opt.update(p, g)
    # Kingma and Ba's "efficient" form, which scikit-learn also uses, puts
    # epsilon outside the bias correction; the reference above matches it
    np.testing.assert_allclose(p, _reference_adam(p0, grads, lr=1e-2), rtol=1e-10)


def test_adam_stays_textbook_across_rescalings_and_threads():
    # 3 * _RESCALE_EVERY + 5 steps cross the rescaling of the stored moments
    # three times; two threads update whole slices each, exactly as serial
    rng = np.random.default_rng(2)
    size = 3 * _SLICE + 11
    p0 = rng.normal(size=size)
    grads = [rng.normal(size=size) for _ in range(3 * _RESCALE_EVERY + 5)]
    serial, threaded = p0.copy(), p0.copy()
    opt_serial = Adam(serial, learning_rate=1e-2)
    opt_threaded = Adam(threaded, learning_rate=1e-2)
    workers = Workers(2)
    try:
        for g in grads:
            opt_serial.update(serial, g)
            # the gradient as two shards' parts, summed by the optimizer
            opt_threaded.update(threaded, [0.25 * g, 0.75 * g], workers)
    finally:
        workers.close()
    reference = _reference_adam(p0, grads, lr=1e-2)
    np.testing.assert_allclose(serial, reference, rtol=1e-10)
    np.testing.assert_allclose(threaded, reference, rtol=1e-10)
    # the moments it reports are Adam's, whatever the stored scale
    m = v = 0.0
    for g in grads:
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
    np.testing.assert_allclose(opt_serial.m, m, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(opt_serial.v, v, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("betas", [(0.0, 0.999), (0.9, 1.0)])
def test_adam_rejects_decay_rates_outside_the_open_interval(betas):
    with pytest.raises(ValueError, match="beta_1 and beta_2"):
        Adam(np.zeros(3), beta_1=betas[0], beta_2=betas[1])


def test_adam_resumes_from_its_state():
    rng = np.random.default_rng(1)
    p = rng.normal(size=50).astype(np.float32)
    grads = [rng.normal(size=50).astype(np.float32) for _ in range(6)]
    straight = p.copy()
    opt = Adam(straight)
    for g in grads:
        opt.update(straight, g)
    resumed = p.copy()
    first = Adam(resumed)
    for g in grads[:3]:
        first.update(resumed, g)
    second = Adam(resumed, state=first.state())
    for g in grads[3:]:
        second.update(resumed, g)
    np.testing.assert_array_equal(resumed, straight)
    assert resumed.dtype == np.float32


def test_lbfgs_minimises_a_quadratic_in_place_and_reports_iterations():
    A = np.diag([1.0, 10.0, 100.0])
    b = np.array([1.0, -2.0, 3.0])

    def fun(x):
        return float(0.5 * x @ A @ x - b @ x), A @ x - b

    x = np.zeros(3, dtype=np.float32)
    seen = []
    result = minimize_lbfgs(fun, x, 100, 1e-8, lambda loss, xk: seen.append(loss))
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-4)
    assert x.dtype == np.float32 and result.success
    assert len(seen) == result.nit and seen == sorted(seen, reverse=True)
