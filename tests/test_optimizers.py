"""Adam and the L-BFGS wrapper against reference computations."""

import numpy as np
import pytest

from skvae._optimizers import _SLICE, Adam, minimize_lbfgs


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
