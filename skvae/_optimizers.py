"""Optimizers on one flat parameter vector.

:class:`Adam` updates the vector in place from a gradient of the same shape;
the training loop does not know anything else about it. Its state is a plain
dict of arrays so that an estimator can keep it between ``partial_fit`` calls
and still pickle to NumPy arrays and Python scalars only.
:func:`minimize_lbfgs` hands a deterministic objective to SciPy's L-BFGS-B.
"""

import numpy as np
from scipy.optimize import minimize

#: Adam works through the flat vector in slices of this many values (256 kB
#: of float32), so the twelve element-wise operations of a step reuse the
#: cache: on the 1.1M-parameter mnist-like VAE a step went from about 5.3 ms
#: to 3.4 ms in a side-by-side micro-benchmark. (Splitting it over two threads
#: was slower in the training loop: OpenBLAS's worker threads keep spinning on
#: the second core after each matrix product.)
_SLICE = 1 << 16


class Adam:
    """Adam (Kingma and Ba, 2015), fused over a flat parameter vector.

    Parameters
    ----------
    params : ndarray
        The flat vector it will update in place (sets shape and dtype).
    learning_rate : float
        Step size.
    beta_1, beta_2 : float
        Decay rates of the first- and second-moment estimates.
    epsilon : float
        Added to the root of the second moment for numerical stability.
    state : dict or None
        ``{"m": ndarray, "v": ndarray, "t": int}`` from :meth:`state` of an
        earlier optimizer, to resume; None starts fresh.
    """

    def __init__(
        self,
        params,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        state=None,
    ):
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        dtype = params.dtype
        if state is not None and state["m"].shape == params.shape:
            self.m = state["m"].astype(dtype, copy=True)
            self.v = state["v"].astype(dtype, copy=True)
            self.t = int(state["t"])
        else:
            self.m = np.zeros_like(params)
            self.v = np.zeros_like(params)
            self.t = 0
        self._tmp = np.empty_like(params)
        self._c1 = dtype.type(1 - beta_1)
        self._c2 = dtype.type(1 - beta_2)
        self._eps = dtype.type(epsilon)

    def update(self, params, grad):
        """One Adam step: ``params -= lr_t * m / (sqrt(v) + epsilon)``, in place."""
        self.t += 1
        lr_t = params.dtype.type(
            self.learning_rate
            * np.sqrt(1 - self.beta_2**self.t)
            / (1 - self.beta_1**self.t)
        )
        b1 = params.dtype.type(self.beta_1)
        b2 = params.dtype.type(self.beta_2)
        # slices small enough to stay in cache while all the operations of
        # the step run over them
        n = params.size
        for start in range(0, n, _SLICE):
            sl = slice(start, min(start + _SLICE, n))
            m, v, g, tmp = self.m[sl], self.v[sl], grad[sl], self._tmp[sl]
            m *= b1
            np.multiply(g, self._c1, out=tmp)
            m += tmp
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= self._c2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp += self._eps
            np.divide(m, tmp, out=tmp)
            tmp *= lr_t
            params[sl] -= tmp

    def state(self):
        """Moments and step count, as plain arrays and an int."""
        return {"m": self.m, "v": self.v, "t": self.t}


def minimize_lbfgs(fun, params, max_iter, tol, callback=None):
    """Minimise ``fun(params) -> (loss, grad)`` with SciPy's L-BFGS-B.

    ``params`` (float32 or float64) is updated in place with the solution;
    SciPy itself works in float64, and ``fun`` is called with a view of the
    working-dtype vector so it computes in that dtype.

    Parameters
    ----------
    fun : callable
        ``fun(params) -> (float, ndarray)``; must be deterministic.
    params : ndarray
        Starting point, overwritten with the result.
    max_iter : int
        Maximum number of L-BFGS iterations.
    tol : float
        Projected-gradient tolerance (``gtol``).
    callback : callable or None
        Called as ``callback(loss, x)`` after each iteration, with the
        current float64 iterate; it may raise ``StopIteration`` to stop.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
    """

    def wrapped(x64):
        params[:] = x64
        loss, grad = fun(params)
        return loss, grad.astype(np.float64)

    def on_iteration(intermediate_result):
        # the callback may raise StopIteration to end the run early
        if callback is not None:
            callback(float(intermediate_result.fun), intermediate_result.x)

    result = minimize(
        wrapped,
        params.astype(np.float64),
        jac=True,
        method="L-BFGS-B",
        callback=on_iteration,
        options={
            "maxiter": max_iter,
            "maxfun": max(15000, 2 * max_iter),
            "gtol": tol,
            "ftol": 64 * np.finfo(params.dtype).eps,
        },
    )
    params[:] = result.x
    return result
