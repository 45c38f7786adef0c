"""skvae.dask on a LocalCluster of two worker processes (one thread each)."""

import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

import skvae.dask as skd  # noqa: E402
from skvae import (  # noqa: E402
    AutoencoderTransformer,
    VAEAnomalyDetector,
    VAETransformer,
)

CHUNK = 250


@pytest.fixture(scope="module")
def client():
    # started after `import skvae.dask`, so with skvae's worker configuration
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _data(n=2000, d=6, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    z = rng.normal(size=(n, 2))
    X = np.tanh(z @ rng.normal(size=(2, d))) * 3 + 0.1 * rng.normal(size=(n, d)) + 5
    return X.astype(dtype)


@pytest.fixture(scope="module")
def data():
    Xn = _data()
    return Xn, da.from_array(Xn, chunks=(CHUNK, -1))


FIT = {"max_iter": 3, "random_state": 0}


@pytest.fixture(scope="module")
def fitted(client, data):
    _, X = data
    return {
        "vae": skd.DaskVAETransformer(latent_dim=2, **FIT).fit(X),
        "ae": skd.DaskAutoencoderTransformer(latent_dim=2, **FIT).fit(X),
        "det": skd.DaskVAEAnomalyDetector(contamination=0.05, **FIT).fit(X),
    }


def _per_block(method, Xn):
    """The in-memory method applied to each block, as dask does."""
    return np.concatenate([method(Xn[i : i + CHUNK]) for i in range(0, len(Xn), CHUNK)])


def test_import_skvae_does_not_import_dask():
    code = "import sys, skvae; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["vae", "ae", "det"])
def test_methods_are_blockwise_and_bit_identical(fitted, data, name):
    Xn, X = data
    est = fitted[name]
    local = est.to_local()
    assert type(local) is est._local_class
    Z = est.transform(X)
    assert isinstance(Z, da.Array)
    np.testing.assert_array_equal(Z.compute(), _per_block(local.transform, Xn))
    np.testing.assert_array_equal(
        est.score_samples(X).compute(), _per_block(local.score_samples, Xn)
    )
    Zn = Z.compute()
    np.testing.assert_array_equal(
        est.inverse_transform(Z).compute(), _per_block(local.inverse_transform, Zn)
    )
    score = est.score(X).compute()
    assert score == pytest.approx(local.score(Xn), rel=1e-12)
    if name == "det":
        np.testing.assert_array_equal(
            est.decision_function(X).compute(),
            _per_block(local.decision_function, Xn),
        )
        labels = est.predict(X).compute()
        np.testing.assert_array_equal(labels, _per_block(local.predict, Xn))
        assert set(np.unique(labels)) <= {-1, 1}


def test_float32_stays_float32_and_matches_in_memory(client):
    Xn = _data(1000, dtype=np.float32)
    X = da.from_array(Xn, chunks=(CHUNK, -1))
    est = skd.DaskVAETransformer(latent_dim=2, **FIT).fit(X)
    local = est.to_local()
    assert est.params_.dtype == np.float32
    scores = est.score_samples(X).compute()
    assert scores.dtype == np.float32
    np.testing.assert_array_max_ulp(scores, _per_block(local.score_samples, Xn), 4)
    Z = est.transform(X).compute()
    assert Z.dtype == np.float32
    np.testing.assert_array_max_ulp(Z, _per_block(local.transform, Xn), 4)


@pytest.mark.parametrize("name", ["vae", "ae"])
def test_sample_in_chunks(fitted, name):
    est = fitted[name]
    local = est.to_local()
    one = est.sample(50, random_state=3, chunks=50).compute()
    np.testing.assert_array_equal(one, local.sample(50, random_state=3))
    many = est.sample(130, random_state=3, chunks=50)
    assert many.chunks[0] == (50, 50, 30)
    many = many.compute()
    np.testing.assert_array_equal(many[:50], one)
    np.testing.assert_array_equal(many, est.sample(130, random_state=3, chunks=50))
    assert many.shape == (130, est.n_features_in_)
    assert not np.array_equal(many[50:100], many[:50])


@pytest.mark.parametrize("standardize", [True, False])
def test_scaling_statistics_are_the_in_memory_ones(fitted, data, client, standardize):
    Xn, X = data
    if standardize:
        est = fitted["vae"]
    else:
        est = skd.DaskVAETransformer(standardize=False, max_iter=1).fit(X)
    plain = VAETransformer(standardize=standardize, max_iter=1)
    plain._check_X(Xn, reset=True)
    plain._fit_scaling(Xn)
    np.testing.assert_allclose(est.input_mean_, plain.input_mean_, rtol=1e-12)
    np.testing.assert_allclose(est.input_scale_, plain.input_scale_, rtol=1e-12)


def test_robust_scaling_is_a_close_approximation(fitted, data):
    Xn, _ = data
    est = fitted["det"]  # standardize="robust" by default
    plain = VAEAnomalyDetector()
    plain._check_X(Xn, reset=True)
    plain._fit_scaling(Xn)
    np.testing.assert_allclose(est.input_mean_, plain.input_mean_, rtol=0.02)
    np.testing.assert_allclose(est.input_scale_, plain.input_scale_, rtol=0.05)


@pytest.mark.parametrize("contamination", [0.05, "auto"])
def test_offset_is_the_exact_quantile_of_all_training_scores(
    fitted, data, client, contamination
):
    Xn, X = data
    if contamination == 0.05:
        est = fitted["det"]
    else:
        est = skd.DaskVAEAnomalyDetector(contamination="auto", **FIT).fit(X)
    scores = est.to_local().score_samples(Xn)
    if contamination == "auto":
        q1, q3 = np.percentile(scores, [25, 75])
        expected = q1 - 1.5 * (q3 - q1)
    else:
        expected = np.percentile(scores, 5)
    assert est.offset_ == expected


def test_fitted_statistics_of_the_codes(fitted, data):
    Xn, _ = data
    vae, ae = fitted["vae"], fitted["ae"]
    mu = vae.to_local().transform(Xn)
    np.testing.assert_allclose(vae.latent_mean_variance_, mu.var(axis=0), rtol=1e-10)
    Z = ae.to_local().transform(Xn)
    np.testing.assert_allclose(ae.latent_mean_, Z.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(
        ae.latent_covariance_, np.cov(Z, rowvar=False, bias=True), rtol=1e-10
    )


def test_same_random_state_same_model(fitted, data):
    _, X = data
    again = skd.DaskVAETransformer(latent_dim=2, **FIT).fit(X)
    np.testing.assert_array_equal(again.params_, fitted["vae"].params_)
    assert again.loss_curve_ == fitted["vae"].loss_curve_


def test_early_stopping_on_held_out_blocks(client, data):
    _, X = data
    est = skd.DaskVAETransformer(
        latent_dim=2, early_stopping=True, max_iter=4, random_state=0
    ).fit(X)
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(est.validation_scores_)
    one_block = da.from_array(_data(100), chunks=(100, -1))
    with pytest.raises(ValueError, match="at least 2"):
        skd.DaskVAETransformer(early_stopping=True).fit(one_block)


def test_training_improves_held_out_score_like_in_memory(client):
    Xn = _data(6000, seed=1)
    test = _data(1000, seed=2)
    X = da.from_array(Xn, chunks=(500, -1))
    params = {"latent_dim": 2, "max_iter": 10, "random_state": 0}
    est = skd.DaskVAETransformer(**params).fit(X)
    plain = VAETransformer(**params).fit(Xn)
    untrained = skd.DaskVAETransformer(**{**params, "max_iter": 1}).fit(X)
    held_out = est.to_local().score(test)
    assert held_out > untrained.to_local().score(test) + 0.3
    assert held_out == pytest.approx(plain.score(test), abs=0.5)


def test_dask_dataframe(client, data):
    pd = pytest.importorskip("pandas")
    Xn, _ = data
    frame = pd.DataFrame(Xn, columns=[f"c{j}" for j in range(Xn.shape[1])])
    ddf = dd.from_pandas(frame, npartitions=4)
    est = skd.DaskVAETransformer(latent_dim=2, **FIT).fit(ddf)
    assert list(est.feature_names_in_) == list(frame.columns)
    local = est.to_local()
    parts = [p.compute() for p in ddf.to_delayed()]
    expected = np.concatenate([local.score_samples(p) for p in parts])
    np.testing.assert_array_equal(est.score_samples(ddf).compute(), expected)
    assert est.transform(ddf).compute().shape == (len(frame), 2)
    with pytest.raises(ValueError, match="feature names"):
        est.transform(ddf.rename(columns={"c0": "other"})).compute()
    # a filter that empties the first partition
    filtered = ddf.map_partitions(lambda p: p[p.index >= 500])
    est = skd.DaskVAEAnomalyDetector(max_iter=1, random_state=0).fit(filtered)
    assert est.score_samples(filtered).compute().shape == (len(frame) - 500,)


def test_bad_input(client, data):
    Xn, _ = data
    with pytest.raises(TypeError, match="dask array or a dask DataFrame"):
        skd.DaskVAETransformer().fit(Xn)
    bad = Xn.copy()
    bad[1500, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        skd.DaskVAETransformer(max_iter=1).fit(da.from_array(bad, chunks=(CHUNK, -1)))
    with pytest.raises(NotImplementedError, match="adam"):
        skd.DaskVAETransformer(solver="lbfgs").fit(da.from_array(Xn, chunks=CHUNK))


def test_parameters_are_the_in_memory_ones_plus_client():
    from sklearn.base import clone

    for dask_class, local_class in [
        (skd.DaskVAETransformer, VAETransformer),
        (skd.DaskAutoencoderTransformer, AutoencoderTransformer),
        (skd.DaskVAEAnomalyDetector, VAEAnomalyDetector),
    ]:
        params = dask_class().get_params()
        assert params.pop("client") is None
        assert params == local_class().get_params()
        est = clone(dask_class(latent_dim=3, max_iter=7))
        assert (est.latent_dim, est.max_iter) == (3, 7)


def test_workers_are_set_up(client, fitted):
    def settings():
        import os

        from threadpoolctl import threadpool_info

        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), blas

    for trim, blas in client.run(settings).values():
        assert trim is None
        assert all(n == 1 for n in blas)


def test_grid_search_on_the_dask_joblib_backend(client, data):
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV

    Xn, _ = data
    search = GridSearchCV(
        VAETransformer(max_iter=3, random_state=0), {"latent_dim": [1, 2]}, cv=2
    )
    with joblib.parallel_backend("dask", scatter=[Xn]):
        search.fit(Xn)
    assert search.best_params_["latent_dim"] in (1, 2)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
