"""Threads for training and inference: who runs BLAS, and on how many cores.

A mini-batch step is matrix products (BLAS) and many element-wise NumPy
operations (activations, likelihood, Adam). Letting BLAS thread each product
leaves every element-wise operation on one core: on the mnist-like benchmark
that was about 40 % of a step. So large steps are split into two *shards* of
rows, each run on its own Python thread with single-threaded BLAS, and the
optimizer's update is split over the same threads. NumPy releases the GIL
inside its loops and BLAS calls, so both cores can work in every phase.

How a step is split depends only on the shapes (:func:`plan`), never on the
machine, so a fit gives the same numbers whether its shards run in parallel
or one after the other (with one core, or inside a joblib worker whose BLAS
is limited to one thread).
"""

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import threadpoolctl
from threadpoolctl import ThreadpoolController

#: Below this many multiply-adds in the largest matrix product of a step,
#: BLAS runs single-threaded and the step is not split: on small products,
#: thread hand-offs cost more than the second core gains (measured in
#: benchmarks/bench_speed.py).
MIN_MACS_FOR_THREADS = 1 << 24

#: Shards of a large step. Fixed, so that results do not depend on the
#: number of cores.
N_SHARDS = 2

_CONTROLLER = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def largest_product(n_rows, arch):
    """Multiply-adds of the largest matrix product for ``n_rows`` rows."""
    sizes = (*arch["hidden_layer_sizes"], arch["latent_dim"])
    widest = max(sizes)
    return n_rows * max(arch["n_features"], widest) * widest


def plan(n_rows, arch):
    """Number of shards for steps of ``n_rows`` rows: 1 or :data:`N_SHARDS`."""
    if n_rows >= 2 * N_SHARDS and largest_product(n_rows, arch) >= MIN_MACS_FOR_THREADS:
        return N_SHARDS
    return 1


def _blas_threads():
    """Threads BLAS may use now (respects threadpoolctl and joblib limits)."""
    blas = _controller().select(user_api="blas")
    counts = [lib.num_threads for lib in blas.lib_controllers]
    if counts:
        return max(counts)
    # no BLAS that threadpoolctl knows: go by the cores this process may use
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Workers:
    """Runs independent tasks on up to ``n_threads`` threads, this one included.

    Parameters
    ----------
    n_threads : int
        1 runs every task in the calling thread.
    """

    def __init__(self, n_threads):
        self.n_threads = max(1, int(n_threads))
        self._pool = None
        if self.n_threads > 1:
            self._pool = ThreadPoolExecutor(
                self.n_threads - 1, thread_name_prefix="skvae"
            )

    def map(self, fn, args):
        """``[fn(a) for a in args]``, the first task in the calling thread.

        The other tasks run in the pool, in a copy of the caller's context, so
        that NumPy's ``errstate`` applies to them too. All tasks have ended
        when this returns or raises.
        """
        if self._pool is None or len(args) < 2:
            return [fn(a) for a in args]
        futures = [
            self._pool.submit(contextvars.copy_context().run, fn, a) for a in args[1:]
        ]
        try:
            first = fn(args[0])
        finally:
            # never leave a task writing into shared buffers behind us
            for future in futures:
                future.exception()
        return [first, *(future.result() for future in futures)]

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


SERIAL = Workers(1)

_LIMIT_LOCK = threading.Lock()
_limit_users = 0
_limiter = None


def _take_blas_control():
    """Let this thread set OpenBLAS's limits.

    An OpenBLAS with a process-wide thread pool (the pthreads layer of the
    wheels of NumPy and SciPy) takes its limits, with threadpoolctl 3.6 or
    later, from one thread only: the first to set them (until a
    ``threadpool_limits`` block ends), the settings of other threads being
    ignored. The first skvae call in and the last one out of
    :func:`_blas_limit` may run in different threads (a web service answering
    from a thread pool): without taking control, the last one's restoring was
    ignored and BLAS stayed limited to one thread for the rest of the
    process. Callers hold ``_LIMIT_LOCK``.
    """
    openblas = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(openblas, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def _release_blas_control():
    """Give up the control taken by :func:`_take_blas_control`, as a
    ``threadpool_limits`` block does when it ends."""
    openblas = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(openblas, "clear_controlling_thread", None)
    if clear is not None:
        clear()


@contextmanager
def _blas_limit(n_threads):
    """Limit BLAS to ``n_threads`` threads while inside.

    threadpoolctl's limits hold for the whole process. Fits running at the
    same time in several threads (joblib's threading backend, say), each
    setting the limit and restoring what it found, could restore out of
    order and leave BLAS limited for the rest of the process. So the first
    caller in saves the original limits and the last one out restores them;
    in between, the latest caller's limit holds. Each takes control of
    OpenBLAS first (:func:`_take_blas_control`), whatever its thread.
    """
    global _limit_users, _limiter
    with _LIMIT_LOCK:
        _take_blas_control()
        limiter = _controller().limit(limits=n_threads, user_api="blas")
        if _limit_users == 0:
            _limiter = limiter
        _limit_users += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _limit_users -= 1
            if _limit_users == 0:
                _take_blas_control()
                _limiter.restore_original_limits()
                _release_blas_control()
                _limiter = None


@contextmanager
def threads_for(n_rows, arch, split=True):
    """Threading for steps (or inference chunks) of ``n_rows`` rows.

    Yields ``(workers, n_shards)``. Small steps run in this thread with
    single-threaded BLAS. Large ones are split into :data:`N_SHARDS` shards,
    run on up to that many threads, each with its share of the BLAS threads
    allowed now; with ``split=False`` they run in this thread with every
    BLAS thread allowed (for work that must run in order).
    """
    n_shards = plan(n_rows, arch)
    if n_shards == 1:
        with _blas_limit(1):
            yield SERIAL, 1
        return
    if not split:
        yield SERIAL, 1
        return
    budget = _blas_threads()
    n_threads = min(n_shards, budget)
    workers = Workers(n_threads)
    try:
        with _blas_limit(max(1, budget // n_threads)):
            yield workers, n_shards
    finally:
        workers.close()
