"""Hidden-layer activations and their derivatives, as small lookup tables.

Each activation works in place on the pre-activation array and returns it.
Each derivative takes the *output* ``A`` of the activation and multiplies the
back-propagated ``delta`` by the derivative in place, which is enough for the
four functions here and saves keeping the pre-activations around; ``tmp`` is a
caller-owned scratch array of the same shape, so nothing is allocated per
mini-batch.
Adding an activation is one function in each table.
"""

import numpy as np
from scipy.special import expit


def _identity(Z):
    return Z


def _relu(Z):
    return np.maximum(Z, 0, out=Z)


def _tanh(Z):
    return np.tanh(Z, out=Z)


def _logistic(Z):
    return expit(Z, out=Z)


def _identity_derivative(A, delta, tmp):
    return delta


def _relu_derivative(A, delta, tmp):
    np.greater(A, 0, out=tmp)
    return np.multiply(delta, tmp, out=delta)


def _tanh_derivative(A, delta, tmp):
    np.multiply(A, A, out=tmp)
    np.subtract(1, tmp, out=tmp)
    return np.multiply(delta, tmp, out=delta)


def _logistic_derivative(A, delta, tmp):
    np.subtract(1, A, out=tmp)
    np.multiply(tmp, A, out=tmp)
    return np.multiply(delta, tmp, out=delta)


ACTIVATIONS = {
    "identity": _identity,
    "relu": _relu,
    "tanh": _tanh,
    "logistic": _logistic,
}

DERIVATIVES = {
    "identity": _identity_derivative,
    "relu": _relu_derivative,
    "tanh": _tanh_derivative,
    "logistic": _logistic_derivative,
}
