"""Large steps run as two shards on two threads, with the numbers of one thread."""

import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import skvae._parallel as parallel
from skvae import AutoencoderTransformer, VAEAnomalyDetector, VAETransformer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CASES = {
    "ae": (AutoencoderTransformer, {}),
    "vae": (VAETransformer, {}),
    "vae-iwae-free-bits": (VAETransformer, {"iwae_samples": 3, "free_bits": 0.1}),
    "vae-free-bits": (VAETransformer, {"free_bits": 0.2, "alpha": 0.01}),
    "detector-trimmed": (VAEAnomalyDetector, {}),
}


@pytest.fixture
def threads_used(monkeypatch):
    """Every step and chunk counts as large, two BLAS threads are allowed, and
    the thread counts of the workers that ran something are recorded."""
    monkeypatch.setattr(parallel, "MIN_MACS_FOR_THREADS", 0)
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 2)
    used = []
    original = parallel.Workers.map

    def map_and_record(self, fn, args):
        used.append(self.n_threads)
        return original(self, fn, args)

    monkeypatch.setattr(parallel.Workers, "map", map_and_record)
    return used


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_two_threads_give_the_numbers_of_one(case, solver, threads_used, monkeypatch):
    Est, options = CASES[case]
    X = np.random.default_rng(0).normal(size=(150, 6)).astype(np.float32)
    params = dict(
        hidden_layer_sizes=(8,),
        latent_dim=2,
        max_iter=4,
        batch_size=40,
        solver=solver,
        random_state=0,
        **options,
    )
    threaded = Est(**params).fit(X)
    assert 2 in threads_used
    if solver == "adam":
        threaded.partial_fit(X)
    # one thread: the same two shards, one after the other
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 1)
    threads_used.clear()
    serial = Est(**params).fit(X)
    if solver == "adam":
        serial.partial_fit(X)
    assert set(threads_used) == {1}
    np.testing.assert_array_equal(threaded.params_, serial.params_)
    np.testing.assert_array_equal(threaded.loss_curve_, serial.loss_curve_)
    # inference is chunked differently on two threads: rows' results agree
    # up to the rounding of matrix products of another height
    with threadpool_limits(limits=1):
        codes, scores = serial.transform(X), serial.score_samples(X)
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 2)
    np.testing.assert_allclose(threaded.transform(X), codes, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(threaded.score_samples(X), scores, rtol=1e-5)


def test_threads_do_not_leak_floating_point_warnings(threads_used):
    # the training loop silences overflow on the way to a divergence check;
    # the worker threads must run under the same numpy error state
    rng = np.random.default_rng(0)
    big = np.finfo(np.float32).max / 10
    X = (rng.normal(size=(80, 3)) * np.array([big / 4, 1.0, 1.0])).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        est = VAETransformer(
            standardize=False, max_iter=3, batch_size=40, random_state=0
        )
        try:
            est.fit(X)
        except ValueError:
            pass  # a reported divergence is fine; a RuntimeWarning is not
    assert 2 in threads_used


def test_shards_depend_on_shapes_only():
    arch = {"n_features": 784, "hidden_layer_sizes": (512, 256), "latent_dim": 16}
    assert parallel.plan(128, arch) == parallel.N_SHARDS
    assert parallel.plan(2, arch) == 1
    small = {"n_features": 32, "hidden_layer_sizes": (64, 32), "latent_dim": 8}
    assert parallel.plan(256, small) == 1


def test_workers_finish_every_task_before_raising():
    workers = parallel.Workers(2)
    done = []

    def task(i):
        if i == 0:
            raise KeyError("first")
        done.append(i)
        return i

    try:
        with pytest.raises(KeyError):
            workers.map(task, [0, 1, 2])
        assert sorted(done) == [1, 2]
        assert workers.map(lambda i: i * i, [1, 2, 3]) == [1, 4, 9]
    finally:
        workers.close()


def test_overlapping_fits_restore_the_blas_threads():
    # two fits in two threads may leave their BLAS limits out of order: A in,
    # B in, A out, B out. The threads BLAS had before must come back.
    def blas_threads():
        return [
            info["num_threads"]
            for info in threadpool_info()
            if info["user_api"] == "blas"
        ]

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        small = {"n_features": 4, "hidden_layer_sizes": (8,), "latent_dim": 2}
        first = parallel.threads_for(16, small)
        second = parallel.threads_for(16, small)
        first.__enter__()
        second.__enter__()
        assert set(blas_threads()) == {1}
        first.__exit__(None, None, None)
        assert set(blas_threads()) == {1}  # the second fit still runs
        second.__exit__(None, None, None)
        assert blas_threads() == before
