"""skvae.dask on a LocalCluster of two worker processes (one thread each)."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

import skvae.dask as skd  # noqa: E402
from skvae import (  # noqa: E402
    AutoencoderTransformer,
    VAEAnomalyDetector,
    VAEImputer,
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


def test_detector_refits_its_variances_as_in_memory(client, data, monkeypatch):
    # the closed-form refit at the end of fit, on the rows the in-memory
    # refit picks from all the training rows (here a sample across blocks)
    import skvae._anomaly as anomaly

    Xn, X = data
    monkeypatch.setattr(anomaly, "_REFIT_ROWS", 700)
    est = skd.DaskVAEAnomalyDetector(contamination=0.05, **FIT).fit(X)
    monkeypatch.setattr(anomaly, "_REFIT_VARIANCE", False)
    as_trained = skd.DaskVAEAnomalyDetector(contamination=0.05, **FIT).fit(X)
    assert not np.allclose(est.params_, as_trained.params_)
    model = as_trained.to_local()
    model._refit_variances(model._check_X(Xn, reset=False))
    np.testing.assert_allclose(est.params_, model.params_, rtol=1e-12, atol=0)
    # the offset comes from the scores of the refitted model
    assert est.offset_ == np.percentile(est.to_local().score_samples(Xn), 5)


def test_detector_auto_likelihood_as_in_memory(client, data):
    # likelihood="auto" picks "zero_normal" from the zero shares of all the
    # rows, not of the first block's head, and fits its statistics on them
    Xn, _ = data
    Xz = Xn.copy()
    Xz[8::2, 0] = 0.0  # half zeros, none in the head
    Xz[:8, 1] = 0.0  # zeros in the head only: 0.4 % of the rows
    X = da.from_array(Xz, chunks=(CHUNK, -1))
    est = skd.DaskVAEAnomalyDetector(contamination=0.05, **FIT).fit(X)
    local = VAEAnomalyDetector(contamination=0.05, **FIT).fit(Xz)
    assert est.feature_likelihoods_.tolist() == local.feature_likelihoods_.tolist()
    assert est.feature_likelihoods_.tolist() == ["zero_normal"] + ["gaussian"] * 5
    # the statistics of all the rows (the in-memory detector's come from the
    # 80 % it trains on; the dask detector holds no rows out)
    from skvae._likelihoods import LIKELIHOODS

    (name, _, options) = est.to_local()._layout_["groups"][1]
    expected = LIKELIHOODS["zero_normal"].fit_options(Xz[:, [0]], {})
    assert name == "zero_normal" and sorted(options) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(options[key], value, rtol=1e-12)
    scores = est.score_samples(X).compute()
    assert np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scores, _per_block(est.to_local().score_samples, Xz))


def _assert_same_groups(a, b):
    """The same likelihood groups, their statistics equal up to rounding."""
    assert [g[:2] for g in a["groups"]] == [g[:2] for g in b["groups"]]
    for (_, _, x), (_, _, y) in zip(a["groups"], b["groups"]):
        assert sorted(x) == sorted(y)
        for key in x:
            np.testing.assert_allclose(x[key], y[key], rtol=1e-10)


def test_likelihoods_on_raw_values(client, data, monkeypatch):
    # their statistics come from the training rows, as in memory; values
    # outside a column's support raise, from any block
    import skvae._vae as vae_module
    import skvae.dask._core as core

    Xn, _ = data
    Xp = np.exp(Xn - 5)
    Xp[:, 2] = np.round(3 * Xp[:, 2])  # counts
    spec = {0: "lognormal", 2: "poisson"}
    X = da.from_array(Xp, chunks=(CHUNK, -1))
    est = skd.DaskVAETransformer(likelihood=spec, **FIT).fit(X)
    local = VAETransformer(likelihood=spec, **FIT).fit(Xp)
    assert est.feature_likelihoods_.tolist() == local.feature_likelihoods_.tolist()
    _assert_same_groups(est.to_local()._layout_, local._layout_)
    # on large data, from RAW_ROWS rows picked across the blocks
    monkeypatch.setattr(core, "RAW_ROWS", 700)
    part = skd.DaskVAETransformer(likelihood=spec, **FIT).fit(X)
    picked = vae_module.row_subsample(len(Xp), 700, 0)
    local = VAETransformer(likelihood=spec, **FIT).fit(Xp[picked])
    _assert_same_groups(part.to_local()._layout_, local._layout_)
    # on wide tables, from at most RAW_CELLS values
    monkeypatch.setattr(core, "RAW_ROWS", 100_000)
    monkeypatch.setattr(core, "RAW_CELLS", 1200 * Xp.shape[1])
    part = skd.DaskVAETransformer(likelihood=spec, **FIT).fit(X)
    picked = vae_module.row_subsample(len(Xp), 1200, 0)
    local = VAETransformer(likelihood=spec, **FIT).fit(Xp[picked])
    _assert_same_groups(part.to_local()._layout_, local._layout_)
    drawn = est.sample(500, noise=True, random_state=0)
    assert np.all(drawn[:, 0] > 0)
    assert np.all(drawn[:, 2] >= 0) and np.all(drawn[:, 2] == np.round(drawn[:, 2]))
    bad = Xp.copy()
    bad[1700, 0] = -1.0
    with pytest.raises(ValueError, match="positive values"):
        skd.DaskVAETransformer(likelihood=spec, **FIT).fit(
            da.from_array(bad, chunks=(CHUNK, -1))
        )


def test_aggregate_posterior_as_in_memory(client, data, monkeypatch):
    # the posteriors of the rows the in-memory fit stores (here a sample of
    # them, picked across blocks), so that sample(latent="aggregate") works
    import skvae._vae as vae_module

    Xn, X = data
    monkeypatch.setattr(vae_module, "AGGREGATE_ROWS", 600)
    est = skd.DaskVAETransformer(latent_dim=2, **FIT).fit(X)
    local = est.to_local()
    mean, var = local._posteriors(local._check_X(Xn, reset=False))
    keep = np.sort(
        np.random.default_rng(local._score_seed).choice(len(Xn), 600, replace=False)
    )
    assert est.latent_posterior_mean_.shape == (600, 2)
    np.testing.assert_allclose(est.latent_posterior_mean_, mean[keep], rtol=1e-10)
    np.testing.assert_allclose(est.latent_posterior_var_, var[keep], rtol=1e-10)
    rows = np.asarray(est.sample(50, random_state=0, latent="aggregate"))
    assert rows.shape == (50, Xn.shape[1]) and np.all(np.isfinite(rows))
    local.sample(5, random_state=0, latent="aggregate")


def test_training_marginals_as_in_memory(client, data, monkeypatch):
    # the quantiles of the rows the in-memory fit would take (a sample of
    # them here, picked across blocks), for sample(marginals="training")
    import skvae._vae as vae_module
    from skvae._columns import column_quantiles

    Xn, X = data
    monkeypatch.setattr(vae_module, "MARGINAL_ROWS", 500)
    est = skd.DaskVAETransformer(latent_dim=2, **FIT).fit(X)
    local = est.to_local()
    C = local._check_X(Xn, reset=False)
    keep = np.sort(
        np.random.default_rng(local._score_seed).choice(len(Xn), 500, replace=False)
    )
    expected = column_quantiles(C[keep], local._layout_["is_categorical"])
    np.testing.assert_array_equal(est.feature_quantiles_, expected)
    rows = np.asarray(est.sample(50, random_state=0, marginals="training"))
    assert rows.shape == (50, Xn.shape[1])
    assert np.all((rows >= np.nanmin(Xn, 0)) & (rows <= np.nanmax(Xn, 0)))


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
    bad[1500, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        skd.DaskVAETransformer(max_iter=1).fit(da.from_array(bad, chunks=(CHUNK, -1)))
    with pytest.raises(NotImplementedError, match="adam"):
        skd.DaskVAETransformer(solver="lbfgs").fit(da.from_array(Xn, chunks=CHUNK))


def test_parameters_are_the_in_memory_ones_plus_client():
    from sklearn.base import clone

    for dask_class, local_class in [
        (skd.DaskVAETransformer, VAETransformer),
        (skd.DaskAutoencoderTransformer, AutoencoderTransformer),
        (skd.DaskVAEAnomalyDetector, VAEAnomalyDetector),
        (skd.DaskVAEImputer, VAEImputer),
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


# -- tables: categorical columns and missing cells ------------------------------


def _table(n=1200, seed=0):
    """Two numeric columns (one with 10 % NaN), a category column and an
    object column (with missing cells), driven by one latent factor; the
    object column's level "d" appears only in the last rows (not in the
    first partition, which fit validates first)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(seed)
    z = rng.normal(size=n)
    obj = np.where(rng.rand(n) < 0.3, "a", np.where(z > 0, "b", "c")).astype(object)
    obj[-n // 8 :: 7] = "d"
    frame = pd.DataFrame(
        {
            "x1": z + 0.1 * rng.normal(size=n),
            "x2": np.tanh(z) * 2 + 0.2 * rng.normal(size=n) + 5,
            "cat": pd.Categorical(
                np.where(z > 0.5, "hi", np.where(z < -0.5, "lo", "mid")),
                categories=["lo", "mid", "hi"],
            ),
            "obj": obj,
        }
    )
    frame.loc[rng.rand(n) < 0.1, "x1"] = np.nan
    frame.loc[rng.rand(n) < 0.05, "cat"] = np.nan
    frame.loc[rng.rand(n) < 0.1, "obj"] = None
    return frame


@pytest.fixture(scope="module")
def mixed(client):
    frame = _table()
    ddf = dd.from_pandas(frame, npartitions=4)
    parts = [p.compute() for p in ddf.to_delayed()]
    # the frame as dask holds it (object columns become strings)
    return ddf.compute(), ddf, parts


@pytest.fixture(scope="module")
def mixed_fitted(mixed):
    _, ddf, _ = mixed
    fit = {"max_iter": 2, "random_state": 0}
    # early stopping (held-out blocks) and mask_rate (cells hidden in
    # training) run on the encoded batches too
    return {
        "vae": skd.DaskVAETransformer(latent_dim=2, early_stopping=True, **fit).fit(
            ddf
        ),
        "ae": skd.DaskAutoencoderTransformer(latent_dim=2, **fit).fit(ddf),
        "det": skd.DaskVAEAnomalyDetector(**fit).fit(ddf),
        "imp": skd.DaskVAEImputer(add_indicator=True, mask_rate=0.2, **fit).fit(ddf),
    }


@pytest.mark.parametrize("name", ["vae", "ae", "det", "imp"])
def test_table_columns_are_fitted_as_in_memory(mixed, mixed_fitted, name):
    frame, _, _ = mixed
    est = mixed_fitted[name]
    plain = est._local_class(**{**est.to_local().get_params(), "max_iter": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.fit(frame)
    assert list(est.feature_names_in_) == ["x1", "x2", "cat", "obj"]
    np.testing.assert_array_equal(est.is_categorical_, [False, False, True, True])
    for got, expected in zip(est.categories_, plain.categories_):
        np.testing.assert_array_equal(got, expected)
    assert list(est.categories_[1]) == ["a", "b", "c", "d"]  # "d": a late level
    local = est.to_local()
    assert local._layout_["n_indicators"] == 2
    assert local._architecture_ == plain._architecture_
    assert len(est.loss_curve_) == est.n_iter_ == 2
    assert np.all(np.isfinite(est.loss_curve_))
    if name == "vae":
        assert len(est.validation_scores_) == 2
        assert np.all(np.isfinite(est.validation_scores_))
    if name == "det":
        # robust scaling, from approximate quantiles of all the rows (the
        # in-memory detector's come from the rows it does not hold out)
        X = frame[["x1", "x2"]].to_numpy()
        q1, med, q3 = np.nanpercentile(X, [25, 50, 75], axis=0)
        scale = np.maximum((q3 - q1) / 1.349, 0.35 * np.nanstd(X, axis=0))
        assert np.all(np.abs(est.input_mean_[:2] - med) < 0.01 * scale)
        np.testing.assert_allclose(est.input_scale_[:2], scale, rtol=0.02)
    else:
        np.testing.assert_allclose(est.input_mean_, plain.input_mean_, rtol=1e-12)
        np.testing.assert_allclose(est.input_scale_, plain.input_scale_, rtol=1e-12)


@pytest.mark.parametrize("name", ["vae", "ae", "det"])
def test_table_methods_match_in_memory(mixed, mixed_fitted, name):
    pdt = pytest.importorskip("pandas.testing")
    frame, ddf, parts = mixed
    est = mixed_fitted[name]
    local = est.to_local()

    def per_part(method):
        return np.concatenate([method(p) for p in parts])

    Z = est.transform(ddf).compute()
    np.testing.assert_array_equal(Z, per_part(local.transform))
    np.testing.assert_array_equal(
        est.score_samples(ddf).compute(), per_part(local.score_samples)
    )
    if name == "det":
        np.testing.assert_array_equal(
            est.predict(ddf).compute(), per_part(local.predict)
        )
    # decoded and sampled rows: DataFrames with the training columns and dtypes
    decoded = est.inverse_transform(da.from_array(Z, chunks=300))
    assert isinstance(decoded, dd.DataFrame)
    decoded = decoded.compute()
    pdt.assert_frame_equal(decoded, local.inverse_transform(Z))
    pdt.assert_series_equal(decoded.dtypes, frame.dtypes)
    assert list(decoded["cat"].cat.categories) == ["lo", "mid", "hi"]
    sampled = est.sample(250, random_state=1, chunks=100)
    assert sampled.npartitions == 3
    sampled = sampled.compute()
    pdt.assert_frame_equal(
        sampled.iloc[:100], local.sample(100, random_state=1), check_index_type=False
    )
    pdt.assert_series_equal(sampled.dtypes, frame.dtypes)
    assert list(sampled.index) == list(range(250))


def test_imputer_fills_only_missing_cells_as_in_memory(mixed, mixed_fitted):
    pd = pytest.importorskip("pandas")
    pdt = pytest.importorskip("pandas.testing")
    frame, ddf, parts = mixed
    est = mixed_fitted["imp"]
    assert not hasattr(est, "inverse_transform")
    local = est.to_local()
    out = est.transform(ddf)
    assert isinstance(out, dd.DataFrame)
    assert list(out.columns) == list(local.get_feature_names_out())
    got = out.compute()
    # the in-memory transform of each partition, bit for bit
    expected = []
    for p in parts:
        part = local.transform(p.reset_index(drop=True))
        part.index = p.index
        expected.append(part)
    pdt.assert_frame_equal(got, pd.concat(expected))
    # and of all the rows at once (importance draws keyed by the rows)
    whole = local.transform(frame)
    pdt.assert_frame_equal(got, whole, check_exact=False, rtol=1e-12)
    cols = ["x1", "x2", "cat", "obj"]
    assert not got[cols].isna().any().any()
    observed = frame[cols].notna()
    for c in cols:
        pdt.assert_series_equal(got[c][observed[c]], frame[c][observed[c]])
    np.testing.assert_array_equal(
        got["missingindicator_x1"].to_numpy(), frame["x1"].isna().to_numpy()
    )
    # its scores and samples, as the other estimators'
    np.testing.assert_array_equal(
        est.score_samples(ddf).compute(),
        np.concatenate([local.score_samples(p) for p in parts]),
    )
    sampled = est.sample(50, random_state=0).compute()
    pdt.assert_frame_equal(sampled, local.sample(50, random_state=0))


def test_imputer_auto_budget_decays_as_in_memory(client, monkeypatch):
    import skvae._imputer as imputer
    import skvae.dask._estimators as estimators

    scales = []
    submit = estimators._submit_epoch

    def spy(client, job, *args):
        scales.append(job["lr_scale"])
        return submit(client, job, *args)

    monkeypatch.setattr(estimators, "_submit_epoch", spy)
    monkeypatch.setattr(imputer, "_AUTO_MAX_EPOCHS", 10)
    Xn = _data(200)
    Xn[::3, 0] = np.nan
    X = da.from_array(Xn, chunks=(100, -1))
    skd.DaskVAEImputer(hidden_layer_sizes=(8,), random_state=0).fit(X)
    # the last 3 of 10 epochs (30 %) fall towards 0, from the workers' scale
    base = scales[0]
    np.testing.assert_allclose(scales, base * np.r_[[1.0] * 7, 3 / 4, 2 / 4, 1 / 4])


def test_imputer_on_arrays(client):
    Xn = _data(1000)
    rng = np.random.RandomState(0)
    Xn[rng.rand(*Xn.shape) < 0.1] = np.nan
    Xn[:, 5] = np.nan  # an empty feature: dropped, as in memory
    X = da.from_array(Xn, chunks=(CHUNK, -1))
    est = skd.DaskVAEImputer(max_iter=2, random_state=0).fit(X)
    local = est.to_local()
    out = est.transform(X).compute()
    np.testing.assert_array_equal(out, _per_block(local.transform, Xn))
    np.testing.assert_allclose(out, local.transform(Xn), rtol=1e-12)
    assert out.shape == (1000, 5)
    observed = ~np.isnan(Xn[:, :5])
    np.testing.assert_array_equal(out[observed], Xn[:, :5][observed])
    assert not np.isnan(out).any()
    # multiple imputation: reproducible per call, different between calls
    est.set_params(sample_posterior=True)
    est._fitted_state["_n_calls"] = 0
    first = est.transform(X).compute()
    second = est.transform(X).compute()
    np.testing.assert_array_equal(first[observed], Xn[:, :5][observed])
    assert not np.array_equal(first, second)
    est._fitted_state["_n_calls"] = 0
    np.testing.assert_array_equal(est.transform(X).compute(), first)
    # the draws are not calibrated on dask: noise_scale_ stays 1
    assert local.noise_scale_ == 1.0


def test_table_training_quality_close_to_in_memory(client):
    frame = _table(3000, seed=1)
    test = _table(1000, seed=2)
    # levels as dask holds the object column, for the in-memory fit too
    ddf = dd.from_pandas(frame, npartitions=3)
    frame = ddf.compute()
    test = test.astype(frame.dtypes.to_dict())
    params = {"latent_dim": 2, "max_iter": 6, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = skd.DaskVAETransformer(**params).fit(ddf)
        plain = VAETransformer(**params).fit(frame)
    held_out = est.to_local().score(test)
    assert est.loss_curve_[-1] < est.loss_curve_[0] - 0.3
    assert held_out == pytest.approx(plain.score(test), abs=0.5)
    # imputation of held-out cells: close to the in-memory imputer's
    truth = test["x2"].to_numpy()
    hide = np.random.RandomState(3).rand(len(test)) < 0.3
    holes = test.copy()
    holes.loc[hide, "x2"] = np.nan
    params = {"max_iter": 5, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dask_imp = skd.DaskVAEImputer(**params).fit(ddf).to_local()
        plain_imp = VAEImputer(**params).fit(frame)

    def error(imputer):
        filled = imputer.transform(holes)["x2"].to_numpy()
        return np.sqrt(np.mean((filled[hide] - truth[hide]) ** 2))

    mean_fill = np.sqrt(np.mean((frame["x2"].mean() - truth[hide]) ** 2))
    assert error(dask_imp) < 0.4 * mean_fill
    assert error(dask_imp) < 1.2 * error(plain_imp)


def test_levels_merged_over_blocks_are_those_of_all_rows():
    pd = pytest.importorskip("pandas")
    from skvae import _columns

    rng = np.random.RandomState(0)
    words = np.array(["b", "a", "d", None, "c", "e"], dtype=object)
    frame = pd.DataFrame(
        {
            "s": words[rng.randint(0, 6, 300)],
            "i": rng.randint(0, 9, 300),
            "c": pd.Categorical(rng.choice(["z", "y"], 300), ["z", "y", "x"]),
        }
    )
    is_cat = np.array([True, True, True])
    expected = _columns.column_levels(frame, is_cat)
    parts = [frame.iloc[a:b] for a, b in [(0, 7), (7, 100), (100, 300)]]
    merged = _columns.column_levels(parts[0], is_cat)
    for part in parts[1:]:
        merged = _columns.merge_levels(merged, _columns.column_levels(part, is_cat))
    for (got, got_declared), (want, want_declared) in zip(merged, expected):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype and got_declared == want_declared
