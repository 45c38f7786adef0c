"""A fitted model answering many threads at once, as in a web service.

Eight threads call ``transform``, ``inverse_transform``, ``score_samples``
and ``predict`` on small inputs and on inputs large enough for skvae's own
two-thread inference path (``skvae._parallel.threads_for``). Every answer
must equal, bit for bit, the one computed in a single thread beforehand, and
the process's BLAS thread settings must be the same afterwards as before.
"""

import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import skvae._parallel as parallel
from skvae import (
    AutoencoderTransformer,
    VAEAnomalyDetector,
    VAEImputer,
    VAETransformer,
)
from skvae._base import _CHUNK_ELEMENTS

N_THREADS = 8

#: Tiny networks for the small inputs; 32 features and 64 hidden units for
#: the large ones, whose chunks pass MIN_MACS_FOR_THREADS.
SMALL = {"hidden_layer_sizes": (8,), "latent_dim": 2}
LARGE = {"hidden_layer_sizes": (64,), "latent_dim": 4}
COMMON = {"max_iter": 2, "random_state": 0}
N_LARGE = 6000
N_FEATURES = 32

ESTIMATORS = [AutoencoderTransformer, VAETransformer, VAEAnomalyDetector, VAEImputer]


def _blas_settings():
    return sorted(
        (info["filepath"], info["num_threads"])
        for info in threadpool_info()
        if info["user_api"] == "blas"
    )


def _fit(Est, size, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Est(**size, **COMMON).fit(X)


@pytest.fixture(scope="module")
def models():
    """Fitted models and the inputs they are asked about, small and large."""
    rng = np.random.default_rng(0)
    X_small = rng.normal(size=(60, 5))
    X_large = rng.normal(size=(N_LARGE, N_FEATURES))
    # trained on a few rows: only inference is under test
    out = {}
    for Est in ESTIMATORS:
        out[Est.__name__, "small"] = (_fit(Est, SMALL, X_small), X_small)
        out[Est.__name__, "large"] = (_fit(Est, LARGE, X_large[:300]), X_large)
    return out


def _calls(models, dtypes=(np.float64, np.float32)):
    """Every (model, method, input) to ask, with its single-threaded answer."""
    calls = []
    for (name, size), (est, X) in models.items():
        for dtype in dtypes:
            Xd = X.astype(dtype)
            for method in ("transform", "score_samples", "predict"):
                if hasattr(est, method):
                    fn = getattr(est, method)
                    calls.append((f"{name}-{size}-{method}-{dtype.__name__}", fn, Xd))
            if hasattr(est, "inverse_transform"):  # not the imputer
                label = f"{name}-{size}-inverse_transform-{dtype.__name__}"
                calls.append((label, est.inverse_transform, est.transform(Xd)))
    return calls


def test_large_inputs_take_the_two_thread_path(models, monkeypatch):
    used = []
    original = parallel.Workers.map

    def map_and_record(self, fn, args):
        used.append(self.n_threads)
        return original(self, fn, args)

    monkeypatch.setattr(parallel.Workers, "map", map_and_record)
    for (_, size), (est, X) in models.items():
        arch = est._architecture_
        rows = min(X.shape[0], _CHUNK_ELEMENTS // est._widest())
        expected = parallel.N_SHARDS if size == "large" else 1
        assert parallel.plan(rows, arch) == expected
        # alone, with two BLAS threads allowed, a call runs on two threads
        used.clear()
        with threadpool_limits(limits=2, user_api="blas"):
            est.transform(X)
        assert max(used) == expected


def _run_concurrently(calls, n_calls, expected, monkeypatch):
    """``n_calls`` calls spread over the calls list, from N_THREADS threads."""
    used = []
    lock = threading.Lock()
    original = parallel.Workers.map

    def map_and_record(self, fn, args):
        with lock:
            used.append(self.n_threads)
        return original(self, fn, args)

    monkeypatch.setattr(parallel.Workers, "map", map_and_record)
    start = threading.Barrier(N_THREADS)

    def worker(thread):
        start.wait()  # all threads begin together
        mismatches = []
        for i in range(thread, n_calls, N_THREADS):
            label, fn, X = calls[(i * 7 + thread) % len(calls)]
            result = fn(X)
            if not (
                result.dtype == expected[label].dtype
                and np.array_equal(result, expected[label])
            ):
                mismatches.append(label)
        return mismatches

    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(worker, range(N_THREADS)))
    return [m for r in results for m in r], used


def _check(models, n_calls, monkeypatch):
    calls = _calls(models)
    expected = {label: fn(X) for label, fn, X in calls}
    before = _blas_settings()
    mismatches, used = _run_concurrently(calls, n_calls, expected, monkeypatch)
    assert mismatches == []
    assert _blas_settings() == before
    return used


@pytest.mark.parametrize("blas_threads", [None, 1, 2])
def test_eight_threads_get_the_single_threaded_answers(
    models, blas_threads, monkeypatch
):
    # (a large call that finds BLAS limited to one thread by another call
    # runs its two shards in one thread; the answers are the same)
    if blas_threads is None:  # the process's own setting
        _check(models, 8 * 12, monkeypatch)
    else:
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            _check(models, 8 * 12, monkeypatch)


@pytest.mark.slow
def test_eight_threads_thousand_calls_each(models, monkeypatch):
    with threadpool_limits(limits=2, user_api="blas"):
        _check(models, N_THREADS * 1000, monkeypatch)
    # and with the process's own BLAS setting
    _check(models, N_THREADS * 1000, monkeypatch)


def test_blas_settings_restored_after_concurrent_calls_that_raise(models):
    """Errors inside the calls (wrong number of features) leave BLAS alone."""
    before = _blas_settings()
    est, X = models["VAEAnomalyDetector", "large"]

    def bad(_):
        with pytest.raises(ValueError, match="features"):
            est.score_samples(X[:, :-1])
        return est.score_samples(X[:50])

    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(bad, range(N_THREADS * 2)))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert _blas_settings() == before


@pytest.mark.parametrize("first_in_main", [True, False])
def test_last_caller_out_restores_blas_from_any_thread(first_in_main):
    """The first call in and the last out run in different threads.

    threadpoolctl (3.6+) ignores OpenBLAS limits set by a thread other than
    the one controlling it; skvae's restoring used to be ignored so, and BLAS
    stayed at one thread for the rest of the process.
    """
    with threadpool_limits(limits=2, user_api="blas"):
        pass  # ends with no thread controlling OpenBLAS
    before = _blas_settings()
    inside, leave = threading.Event(), threading.Event()

    def other():
        with parallel._blas_limit(1):
            inside.set()
            leave.wait(10)

    if first_in_main:
        # main in first, the other thread out last
        with parallel._blas_limit(1):
            thread = threading.Thread(target=other)
            thread.start()
            inside.wait(10)
        assert _blas_settings() != before or all(n == 1 for _, n in before)
        leave.set()
        thread.join()
    else:
        # the other thread in first, main out last
        thread = threading.Thread(target=other)
        thread.start()
        inside.wait(10)
        with parallel._blas_limit(1):
            leave.set()
            thread.join()
    assert _blas_settings() == before


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_inference_bits_do_not_depend_on_the_blas_limit(models, Est):
    """Chunks are cut by the shapes alone: a row's bits may depend on the
    number of rows of its chunk (OpenBLAS's product of 6000 x 64 by 64 x 4
    differs in the last bit from two of 3000 rows), and the chunks used to
    follow the BLAS threads allowed at the time of the call (so concurrent
    calls, each limiting BLAS, changed them)."""
    est, X = models[Est.__name__, "large"]
    answers = []
    for limit in (1, 2):
        with threadpool_limits(limits=limit, user_api="blas"):
            answers.append((est.transform(X), est.score_samples(X)))
    for a, b in zip(*answers):
        np.testing.assert_array_equal(a, b)


def test_threads_drawing_imputations_get_draws_of_their_own(monkeypatch):
    """``sample_posterior`` draws are keyed by a count of ``transform`` calls:
    threads calling one model at once must each get a number of their own."""
    import skvae._imputer as imputer_module

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    X[rng.random(X.shape) < 0.2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer = VAEImputer(sample_posterior=True, **SMALL, **COMMON).fit(X)
    real_rng = np.random.default_rng

    def slow_rng(seed):
        # widens the window between reading the count and moving it on
        time.sleep(0.002)
        return real_rng(seed)

    monkeypatch.setattr(imputer_module.np.random, "default_rng", slow_rng)
    n_calls = 4 * N_THREADS
    with ThreadPoolExecutor(N_THREADS) as pool:
        draws = list(pool.map(lambda _: imputer.transform(X), range(n_calls)))
    assert imputer._n_calls == n_calls
    distinct = {d[np.isnan(X)].tobytes() for d in draws}
    assert len(distinct) == n_calls
