"""The row-keyed importance-sampling noise."""

import numpy as np
import pytest
from scipy import stats

from skvae._noise import row_hashes, row_keyed_normal


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noise_is_a_function_of_the_row_and_seed(dtype):
    X = np.random.default_rng(0).normal(size=(50, 4)).astype(dtype)
    eps = row_keyed_normal(X, 7, 3, 2, dtype)
    assert eps.shape == (3, 50, 2) and eps.dtype == dtype
    perm = np.random.default_rng(1).permutation(50)
    np.testing.assert_array_equal(
        row_keyed_normal(X[perm], 7, 3, 2, dtype), eps[:, perm]
    )
    np.testing.assert_array_equal(row_keyed_normal(X[5:6], 7, 3, 2, dtype), eps[:, 5:6])
    assert not np.array_equal(row_keyed_normal(X, 8, 3, 2, dtype), eps)


def test_rows_with_permuted_values_hash_differently():
    X = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0]])
    h = row_hashes(X, 0)
    assert h[0] != h[1] and h[0] == h[2]


def test_noise_is_standard_normal_and_independent_across_rows():
    # nearly identical rows must still get unrelated draws
    X = np.linspace(0, 1e-9, 4000)[:, None] + np.zeros((1, 3))
    eps = row_keyed_normal(X, 0, 5, 4, np.float64).ravel()
    assert stats.kstest(eps, "norm").pvalue > 1e-3
    draws = row_keyed_normal(X, 0, 1, 1, np.float64)[0, :, 0]
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < 0.06
