"""A stack of dense layers living in one flat parameter vector.

A network is described by its layer widths ``sizes = (n_in, h1, ..., n_out)``.
Its parameters sit contiguously in a flat vector: for each layer the weight
matrix ``W`` (``n_in x n_out``, row-major) and then the bias ``b``.
:func:`unpack` returns *views* into that vector, so an optimizer that updates
the flat vector in place updates every layer at once, and a gradient written
into the views of a flat gradient vector is ready for the optimizer or for
``scipy.optimize`` without packing.

Hidden layers use one activation from :mod:`skvae._activations`; the last
layer is linear (its output is interpreted by a likelihood or a loss).
"""

import numpy as np
import scipy.sparse as sp

from ._activations import ACTIVATIONS, DERIVATIVES

_ONES = {}


def ones(n, dtype):
    """A read-only vector of ``n`` ones, cached.

    Sums over the rows or columns of a matrix are matrix-vector products with
    it: BLAS does them several times faster than ``np.sum`` on the small
    arrays of a mini-batch.
    """
    key = (n, np.dtype(dtype).str)
    vec = _ONES.get(key)
    if vec is None:
        if len(_ONES) > 256:
            _ONES.clear()
        vec = np.ones(n, dtype=dtype)
        vec.flags.writeable = False
        _ONES[key] = vec
    return vec


def n_params(sizes):
    """Number of scalars in a dense stack with the given layer widths."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def unpack(theta, sizes, offset=0):
    """Views ``[(W, b), ...]`` of the layers of a stack inside ``theta``.

    Parameters
    ----------
    theta : ndarray of shape (n_total,)
        Flat parameter (or gradient) vector.
    sizes : sequence of int
        Layer widths, input first.
    offset : int, default=0
        Position of the first weight of this stack in ``theta``.

    Returns
    -------
    layers : list of (ndarray, ndarray)
        Weight matrix of shape ``(n_in, n_out)`` and bias of shape
        ``(n_out,)`` for each layer; both are views, not copies.
    """
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = theta[offset : offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        b = theta[offset : offset + n_out]
        offset += n_out
        layers.append((W, b))
    return layers


def init_layers(layers, activation, rng):
    """Glorot-uniform initialisation, in place, of the views ``layers``.

    The bound ``sqrt(6 / (fan_in + fan_out))`` is doubled for the logistic
    activation (Glorot and Bengio, 2010), as scikit-learn's MLP does, and the
    biases are drawn from the same range so that no unit starts dead.
    """
    factor = 2.0 if activation == "logistic" else 1.0
    for W, b in layers:
        n_in, n_out = W.shape
        bound = factor * np.sqrt(6.0 / (n_in + n_out))
        W[...] = rng.uniform(-bound, bound, size=W.shape)
        b[...] = rng.uniform(-bound, bound, size=b.shape)


def forward(layers, X, activation, acts):
    """Forward pass; writes the output of every layer into ``acts``.

    Parameters
    ----------
    layers : list of (W, b)
        Views from :func:`unpack`.
    X : ndarray or sparse matrix of shape (n_rows, n_in)
        Input rows. A sparse matrix (CSR) is multiplied as such: the first
        layer's product costs in proportion to its stored values.
    activation : str
        Hidden activation (a key of ``ACTIVATIONS``); the last layer is linear.
    acts : list of ndarray
        One preallocated array of shape ``(n_rows, n_out)`` per layer.

    Returns
    -------
    out : ndarray
        ``acts[-1]``, the linear output of the last layer.
    """
    act = ACTIVATIONS[activation]
    A = X
    last = len(layers) - 1
    for i, (W, b) in enumerate(layers):
        if sp.issparse(A):
            Z = acts[i]
            Z[...] = A @ W
        else:
            Z = np.matmul(A, W, out=acts[i])
        Z += b
        if i < last:
            act(Z)
        A = Z
    return A


def backward(layers, X, acts, delta, activation, grads, deltas, tmps, need_input):
    """Back-propagate ``delta`` (gradient at the linear output) through a stack.

    Parameters
    ----------
    layers, X, acts, activation
        As for :func:`forward` (``acts`` must hold that forward pass).
    delta : ndarray of shape (n_rows, n_out)
        Gradient of the loss with respect to the network's output.
        It may be overwritten.
    grads : list of (gW, gb)
        Views of the gradient vector; overwritten with this stack's gradient.
    deltas : list of ndarray
        Preallocated arrays of shape ``acts[i].shape`` for ``i < L - 1``, that
        receive the back-propagated gradients of the hidden layers.
    tmps : list of ndarray
        Scratch arrays of the same shapes as ``deltas``.
    need_input : bool
        Whether to return the gradient with respect to ``X``.

    Returns
    -------
    delta_in : ndarray of shape (n_rows, n_in) or None
        Gradient with respect to the input when ``need_input``.
    """
    deriv = DERIVATIVES[activation]
    for i in range(len(layers) - 1, -1, -1):
        W, _ = layers[i]
        gW, gb = grads[i]
        A_prev = X if i == 0 else acts[i - 1]
        if sp.issparse(A_prev):
            gW[...] = A_prev.T @ delta
        else:
            np.matmul(A_prev.T, delta, out=gW)
        np.matmul(ones(delta.shape[0], delta.dtype), delta, out=gb)
        if i > 0:
            delta = np.matmul(delta, W.T, out=deltas[i - 1])
            deriv(acts[i - 1], delta, tmps[i - 1])
        elif need_input:
            return delta @ W.T
    return None


def weight_sq_norm(layers):
    """Sum of squared weights (biases excluded), for the L2 penalty."""
    return sum(float(np.vdot(W, W)) for W, _ in layers)
