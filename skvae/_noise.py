"""Standard normal noise keyed by the content of each row.

The importance-weighted score of a row needs K draws from q(z | x). Drawing
them from one generator would make a row's score depend on its position in
the batch; reusing the same K draws for every row makes the errors of all
rows move together, so the mean score (what model selection compares) is as
noisy as a single row's. Instead, a hash of each row's bytes (mixed with
SplitMix64, Steele et al., 2014) picks one of up to 4096 sets of K draws,
generated from the model's seed: the same row always gets the same draws,
and the errors of different rows are (nearly) independent, so they average
out in the mean. A pool, rather than a generator per row, keeps the cost to
one hash per row and a gather.
"""

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(z):
    """SplitMix64's output function on uint64 values (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MUL1
        z = (z ^ (z >> np.uint64(27))) * _MUL2
        return z ^ (z >> np.uint64(31))


def row_hashes(X, seed):
    """A 64-bit hash of each row's values and of ``seed``."""
    X = np.ascontiguousarray(X)
    words = X.view(np.uint64 if X.dtype.itemsize == 8 else np.uint32)
    words = words.reshape(X.shape[0], -1).astype(np.uint64)
    # position-dependent mixing, so that permuted rows hash differently
    with np.errstate(over="ignore"):
        position = np.arange(1, words.shape[1] + 1, dtype=np.uint64) * _MUL2
        mixed = _splitmix64(words + position[None])
        acc = np.sum(mixed, axis=1, dtype=np.uint64)
    return _splitmix64(acc ^ _splitmix64(np.uint64(seed)))


#: At most this many sets of draws, and at most this many numbers in all.
_MAX_SETS = 4096
_MAX_POOL = 1 << 20


def noise_pool(seed, n_draws, n_dims, dtype):
    """The sets of draws that rows are mapped to: ``(n_draws, n_sets, n_dims)``."""
    n_sets = int(np.clip(_MAX_POOL // (n_draws * n_dims), 64, _MAX_SETS))
    dtype = np.dtype(dtype)
    return np.random.default_rng(seed).standard_normal(
        (n_draws, n_sets, n_dims),
        dtype=dtype if dtype in (np.float32, np.float64) else np.float64,
    )


def row_keyed_normal(X, seed, n_draws, n_dims, dtype, pool=None):
    """``(n_draws, n_rows, n_dims)`` standard normals determined by each row.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        The rows whose content keys the noise.
    seed : int
        Model-specific seed.
    n_draws, n_dims : int
        Draws per row and their dimension.
    dtype : numpy dtype
        Output dtype.
    pool : ndarray or None
        ``noise_pool(seed, n_draws, n_dims, dtype)``, to reuse it across
        chunks of rows; made here when None.

    Returns
    -------
    eps : ndarray of shape (n_draws, n_rows, n_dims)
    """
    if pool is None:
        pool = noise_pool(seed, n_draws, n_dims, dtype)
    index = (row_hashes(X, seed) % np.uint64(pool.shape[1])).astype(np.intp)
    return np.take(pool, index, axis=1).astype(dtype, copy=False)
