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
#: of float32), so that the operations of a step reuse the cache; a step can
#: be split over threads, whole slices each (see skvae._parallel).
_SLICE = 1 << 16

#: Steps between two rescalings of the stored moments (see :class:`Adam`).
_RESCALE_EVERY = 16


class Adam:
    """Adam (Kingma and Ba, 2015), fused over a flat parameter vector.

    The moments are stored rescaled, ``M = m / beta_1 ** s`` and
    ``V = v / beta_2 ** s`` with ``s`` the steps since the last rescaling,
    so a step adds ``(1 - beta_1) / beta_1 ** s * g`` to ``M`` rather than
    decaying and then adding: the decay becomes a scalar folded into the
    update. Every :data:`_RESCALE_EVERY` steps the scale is folded back in.
    Both moments live in one ``(2, n)`` array so that one NumPy call serves
    both. A step is eight calls per slice of the vector instead of twelve,
    and the update is Adam's, up to rounding.

    Parameters
    ----------
    params : ndarray
        The flat vector it will update in place (sets shape and dtype).
    learning_rate : float
        Step size.
    beta_1, beta_2 : float
        Decay rates of the first- and second-moment estimates, in (0, 1)
        (the rescaled moments divide by them).
    epsilon : float
        Added to the root of the second moment for numerical stability.
    state : dict or None
        From :meth:`state` of an earlier optimizer, to resume; None starts
        fresh.
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
        if not (0 < beta_1 < 1 and 0 < beta_2 < 1):
            raise ValueError(
                f"beta_1 and beta_2 must be in (0, 1); got {beta_1}, {beta_2}"
            )
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        dtype = params.dtype
        self._moments = np.zeros((2, params.size), dtype=dtype)
        self.t = 0
        self._t0 = 0  # step of the last rescaling
        if state is not None and "m" in state:  # unscaled, from skvae <= 0.1
            state = {
                "moments": np.stack([state["m"], state["v"]]),
                "t": state["t"],
                "t0": state["t"],
            }
        if state is not None and state["moments"].shape == self._moments.shape:
            self._moments[...] = state["moments"]
            self.t = int(state["t"])
            self._t0 = int(state["t0"])
        self._tmps = []  # per-thread scratch slices
        self._decay = np.array([[beta_1], [beta_2]], dtype=np.float64)

    @property
    def m(self):
        """First-moment estimate (a new array)."""
        return self._moments[0] * self.beta_1 ** (self.t - self._t0)

    @property
    def v(self):
        """Second-moment estimate (a new array)."""
        return self._moments[1] * self.beta_2 ** (self.t - self._t0)

    def update(self, params, grad, workers=None):
        """One Adam step: ``params -= lr_t * m / (sqrt(v) + epsilon)``, in place.

        ``grad`` is an array like ``params``, or a list of arrays whose sum
        is the gradient (the shards' gradients of a batch); they are summed
        slice by slice while in cache, into the first of them. ``workers`` (a
        :class:`skvae._parallel.Workers`) splits the vector over its threads;
        each value is updated the same way either way.
        """
        grads = list(grad) if isinstance(grad, (list, tuple)) else [grad]
        self.t += 1
        t, s = self.t, self.t - self._t0
        b1, b2 = self.beta_1, self.beta_2
        dtype = params.dtype.type
        # M += (1 - b1) / b1^s g and V += (1 - b2) / b2^s g^2, then
        # params -= lr_t m / (sqrt(v) + eps) with m = b1^s M, v = b2^s V
        root = np.sqrt(b2**s)
        lr_t = self.learning_rate * np.sqrt(1 - b2**t) / (1 - b1**t)
        consts = (
            np.array([[(1 - b1) / b1**s], [(1 - b2) / b2**s]], dtype=params.dtype),
            dtype(self.epsilon / root),
            dtype(lr_t * b1**s / root),
        )
        rescale = None
        if s == _RESCALE_EVERY:
            rescale = (self._decay**s).astype(params.dtype)
            self._t0 = t
        n = params.size
        n_slices = -(-n // _SLICE)
        n_parts = 1 if workers is None else min(workers.n_threads, n_slices)
        # whole slices per thread, so that the slicing is the same as serial
        cuts = [min(n, _SLICE * (n_slices * i // n_parts)) for i in range(n_parts + 1)]
        parts = list(zip(cuts[:-1], cuts[1:]))
        while len(self._tmps) < n_parts:
            self._tmps.append(np.empty((2, min(_SLICE, n)), dtype=self._moments.dtype))

        def run(i):
            self._update_range(params, grads, consts, rescale, *parts[i], self._tmps[i])

        if n_parts == 1:
            run(0)
        else:
            workers.map(run, list(range(n_parts)))

    def _update_range(self, params, grads, consts, rescale, begin, end, tmp):
        add, inc, step = consts
        for start in range(begin, end, _SLICE):
            stop = min(start + _SLICE, end)
            mv = self._moments[:, start:stop]
            g = grads[0][start:stop]
            for other in grads[1:]:
                g += other[start:stop]
            t = tmp[:, : stop - start]
            np.multiply(g, add, out=t)  # scaled g and g
            t[1] *= g  # scaled g^2
            mv += t
            d = t[1]
            np.sqrt(mv[1], out=d)
            d += inc
            np.divide(mv[0], d, out=d)
            d *= step
            params[start:stop] -= d
            if rescale is not None:
                mv *= rescale

    def state(self):
        """Rescaled moments, step count and last rescaling step: arrays and ints."""
        return {"moments": self._moments, "t": self.t, "t0": self._t0}


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
