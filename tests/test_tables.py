"""Real tables: categorical columns, missing values and sparse input."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from skvae import (
    AutoencoderTransformer,
    VAEAnomalyDetector,
    VAEImputer,
    VAETransformer,
)

pd = pytest.importorskip("pandas")

ALL = [AutoencoderTransformer, VAETransformer, VAEAnomalyDetector, VAEImputer]
FAST = {"max_iter": 15, "random_state": 0}

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _table(n=240, seed=0, missing=0.0):
    """A small mixed table whose columns depend on each other."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, size=n)
    x = rng.normal(size=n) + 2.0 * group
    df = pd.DataFrame(
        {
            "size": x,
            "weight": 3.0 * x + rng.normal(size=n),
            "kind": pd.Categorical(np.array(["a", "b", "c"])[group]),
            "colour": np.array(["red", "blue"], dtype=object)[(x > 2).astype(int)],
            "flag": x > 1,
            "count": rng.poisson(2.0, size=n).astype(np.int64),
        }
    )
    if missing:
        hide = rng.random(df.shape) < missing
        for j, col in enumerate(df.columns):
            if df[col].dtype == bool:
                df[col] = df[col].astype(object)
            df.loc[hide[:, j], col] = None if df[col].dtype == object else np.nan
    return df


@pytest.mark.parametrize("Est", ALL)
def test_dataframe_columns_get_types_from_their_dtype(Est):
    df = _table()
    est = Est(**FAST).fit(df)
    np.testing.assert_array_equal(
        est.is_categorical_, [False, False, True, True, True, False]
    )
    assert [list(c) for c in est.categories_] == [
        ["a", "b", "c"],
        ["blue", "red"],
        [False, True],
    ]
    assert list(est.feature_names_in_) == list(df.columns)


def test_small_integers_are_never_guessed_categorical():
    X = np.random.default_rng(0).integers(0, 3, size=(100, 4)).astype(float)
    est = VAETransformer(**FAST).fit(X)
    assert not est.is_categorical_.any()


@pytest.mark.parametrize(
    "spec", [[2, 3], [False, False, True, True, False, False], ["kind", "colour"]]
)
def test_categorical_features_as_indices_mask_or_names(spec):
    df = _table()
    df["flag"] = df["flag"].astype(float)  # numeric unless declared
    est = VAETransformer(categorical_features=spec, **FAST).fit(df)
    np.testing.assert_array_equal(
        est.is_categorical_, [False, False, True, True, False, False]
    )


def test_categorical_columns_of_a_numpy_array_by_index():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=200), rng.integers(0, 4, size=200)])
    est = VAETransformer(categorical_features=[1], **FAST).fit(X)
    assert list(est.categories_[0]) == [0.0, 1.0, 2.0, 3.0]
    out = est.sample(50, noise=True)
    assert set(np.unique(out[:, 1])) <= {0.0, 1.0, 2.0, 3.0}


def test_bad_categorical_features_raise():
    df = _table()
    with pytest.raises(ValueError, match="not a column"):
        VAETransformer(categorical_features=["nope"], **FAST).fit(df)
    with pytest.raises(ValueError, match="out of range"):
        VAETransformer(categorical_features=[9], **FAST).fit(df)
    with pytest.raises(ValueError, match="names columns"):
        VAETransformer(categorical_features=["a"], **FAST).fit(np.zeros((5, 2)))


@pytest.mark.parametrize("Est", ALL)
def test_missing_values_in_every_method(Est):
    df = _table(missing=0.2)
    est = Est(**FAST).fit(df)
    Z = est.transform(df)
    if Est is VAEImputer:
        assert Z.shape == df.shape and not Z.isna().any().any()
    else:
        assert Z.shape[0] == len(df) and np.all(np.isfinite(Z))
    scores = est.score_samples(df)
    assert np.all(np.isfinite(scores))
    if hasattr(est, "predict"):
        assert np.all(np.isfinite(est.decision_function(df)))
        assert set(np.unique(est.predict(df))) <= {-1, 1}
    est.partial_fit(df)
    assert np.all(np.isfinite(est.score_samples(df)))


@pytest.mark.parametrize("Est", ALL)
def test_missing_values_in_a_numeric_array(Est):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    X[rng.random(X.shape) < 0.25] = np.nan
    est = Est(**FAST).fit(X)
    assert np.all(np.isfinite(est.score_samples(X)))
    assert np.all(np.isfinite(est.transform(X)))  # codes, or imputed rows
    # a row with every cell missing is still scored
    assert np.all(np.isfinite(est.score_samples(np.full((2, 4), np.nan))))


def test_a_model_fitted_on_complete_data_scores_rows_with_holes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) @ [[1, 0.5, 0], [0, 1, 0.5], [0, 0, 1]]
    est = VAETransformer(**FAST).fit(X)
    Xm = X[:20].copy()
    Xm[:, 0] = np.nan
    scores = est.score_samples(Xm)
    assert np.all(np.isfinite(scores))
    # fewer observed cells: a density over fewer dimensions
    assert np.mean(scores) > np.mean(est.score_samples(X[:20]))


def test_training_uses_only_observed_cells():
    # values under the hidden cells must not matter: fit twice with
    # different garbage hidden behind NaN (the NaN itself) and the same mask
    df = _table(missing=0.3)
    a = VAETransformer(**FAST).fit(df)
    b = VAETransformer(**FAST).fit(df.copy())
    np.testing.assert_array_equal(a.params_, b.params_)
    X = np.random.default_rng(0).normal(size=(100, 3))
    X[::3, 1] = np.nan
    s1 = VAETransformer(**FAST).fit(X).score_samples(X)
    assert np.all(np.isfinite(s1))


@pytest.mark.parametrize("Est", [VAETransformer, VAEAnomalyDetector])
def test_unseen_category_is_missing_with_a_warning_or_an_error(Est):
    df = _table()
    est = Est(**FAST).fit(df)
    new = df.head(5).copy()
    new["kind"] = pd.Categorical(["a", "z", "b", "z", "c"])
    with pytest.warns(UserWarning, match="unknown categories"):
        scores = est.score_samples(new)
    as_missing = new.copy()
    as_missing["kind"] = pd.Categorical(["a", None, "b", None, "c"])
    np.testing.assert_allclose(scores, est.score_samples(as_missing))
    strict = Est(handle_unknown="error", **FAST).fit(df)
    with pytest.raises(ValueError, match="unknown categories"):
        strict.transform(new)


@pytest.mark.parametrize("Est", [AutoencoderTransformer, VAETransformer])
def test_dataframe_round_trip_through_inverse_transform_and_sample(Est):
    df = _table()
    est = Est(**FAST).fit(df)
    back = est.inverse_transform(est.transform(df))
    assert isinstance(back, pd.DataFrame)
    assert list(back.columns) == list(df.columns)
    assert list(back.dtypes) == list(df.dtypes)
    assert list(back["kind"].cat.categories) == ["a", "b", "c"]
    assert set(back["colour"]) <= {"red", "blue"}
    assert back["count"].dtype == np.int64
    drawn = (
        est.sample(30) if Est is AutoencoderTransformer else est.sample(30, noise=True)
    )
    assert list(drawn.dtypes) == list(df.dtypes)
    assert drawn["kind"].isin(["a", "b", "c"]).all()
    assert set(drawn["flag"].unique()) <= {True, False}


def test_categorical_reconstruction_learns_the_levels():
    df = _table(n=600)
    est = VAETransformer(latent_dim=3, max_iter=150, random_state=0).fit(df)
    back = est.inverse_transform(est.transform(df))
    # "kind" drives "size" strongly: the code must carry it
    assert np.mean(back["kind"] == df["kind"]) > 0.8


def test_float32_dataframe_stays_float32():
    df = _table()
    df["size"] = df["size"].astype(np.float32)
    df["weight"] = df["weight"].astype(np.float32)
    df["count"] = df["count"].astype(np.float32)
    est = VAETransformer(**FAST).fit(df)
    assert est.params_.dtype == np.float32
    assert est.transform(df).dtype == np.float32


# -- sparse input -----------------------------------------------------------------


@pytest.mark.parametrize("Est", [AutoencoderTransformer, VAETransformer])
def test_sparse_input_matches_dense_input(Est):
    rng = np.random.default_rng(0)
    X = rng.random((120, 30)) * (rng.random((120, 30)) < 0.2)
    params = dict(standardize=False, **FAST)
    dense = Est(**params).fit(X)
    sparse = Est(**params).fit(sp.csr_matrix(X))
    np.testing.assert_allclose(sparse.params_, dense.params_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        sparse.transform(sp.csr_matrix(X)), dense.transform(X), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        sparse.score_samples(sp.csr_matrix(X)),
        dense.score_samples(X),
        rtol=1e-9,
        atol=1e-9,
    )


def test_sparse_one_hot_output_drops_into_a_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    df = _table()[["kind", "colour"]]
    pipe = make_pipeline(OneHotEncoder(), VAETransformer(**FAST))
    Z = pipe.fit_transform(df)
    assert Z.shape == (len(df), 2) and np.all(np.isfinite(Z))
    assert np.all(
        np.isfinite(pipe[-1].score_samples(OneHotEncoder().fit_transform(df)))
    )


def test_sparse_input_is_scaled_without_centring():
    X = sp.random(200, 10, density=0.3, random_state=0, format="csr") * 5
    est = VAETransformer(**FAST).fit(X)
    np.testing.assert_array_equal(est.input_mean_, 0)
    assert np.all(est.input_scale_ > 0)
    assert np.all(np.isfinite(est.score_samples(X)))


# -- known answer ----------------------------------------------------------


def _observed_loglik(X, mean, cov):
    """Exact log N(x_obs; mean_obs, cov_obs) of each row."""
    from scipy.stats import multivariate_normal

    out = np.empty(X.shape[0])
    for i, row in enumerate(X):
        o = ~np.isnan(row)
        out[i] = (
            multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(row[o])
            if o.any()
            else 0.0
        )
    return out


def test_linear_vae_scores_the_observed_cells_exactly():
    # x = W z + mu + noise: the marginal of any subset of cells is Gaussian.
    # A linear VAE fitted on rows with cells hidden at random must score
    # held-out rows with holes like the true model's marginal of their
    # observed cells.
    rng = np.random.default_rng(0)
    n, d, k = 4000, 5, 2
    W = rng.normal(size=(k, d))
    mu = rng.normal(size=d)
    psi = rng.uniform(0.2, 0.6, size=d)
    cov = W.T @ W + np.diag(psi)

    def draw(m):
        X = rng.normal(size=(m, k)) @ W + mu + rng.normal(size=(m, d)) * np.sqrt(psi)
        X[rng.random(X.shape) < 0.3] = np.nan
        return X

    X_train, X_test = draw(n), draw(1000)
    vae = VAETransformer(
        hidden_layer_sizes=(),
        latent_dim=k,
        activation="identity",
        max_iter=200,
        learning_rate_init=3e-3,
        n_importance_samples=500,
        random_state=0,
    ).fit(X_train)
    got = vae.score_samples(X_test)
    exact = _observed_loglik(X_test, mu, cov)
    assert abs(np.mean(got) - np.mean(exact)) < 0.1


# -- the imputer -----------------------------------------------------------


def test_imputer_fills_only_missing_cells_and_keeps_dtypes():
    df = _table(missing=0.2)
    out = VAEImputer(**FAST).fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.dtypes) == list(df.dtypes)
    assert not out.isna().any().any()
    observed = df.notna().to_numpy()
    for j, col in enumerate(df.columns):
        np.testing.assert_array_equal(
            out[col].to_numpy(dtype=object)[observed[:, j]],
            df[col].to_numpy(dtype=object)[observed[:, j]],
        )
    assert set(out["kind"]) <= {"a", "b", "c"}


def test_imputer_fills_frames_with_any_index():
    # rows after a split keep their labels; the filled cells must follow them
    df = _table(missing=0.2)
    imp = VAEImputer(**FAST).fit(df)
    part = df.iloc[::-2]
    out = imp.transform(part)
    assert out.index.equals(part.index)
    assert not out.isna().any().any()
    expected = imp.transform(part.reset_index(drop=True))
    expected.index = part.index
    pd.testing.assert_frame_equal(out, expected)


def test_imputer_beats_the_mean_on_correlated_columns():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(600, 2))
    X = Z @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(600, 6))
    hide = rng.random(X.shape) < 0.2
    Xm = np.where(hide, np.nan, X)
    out = VAEImputer(random_state=0, max_iter=100).fit_transform(Xm)
    err = np.sqrt(np.mean((out[hide] - X[hide]) ** 2))
    mean_err = np.sqrt(
        np.mean((np.nanmean(Xm, axis=0)[np.nonzero(hide)[1]] - X[hide]) ** 2)
    )
    assert err < 0.5 * mean_err


def test_imputer_sample_posterior_draws_differ_and_reproduce():
    X = np.random.default_rng(0).normal(size=(100, 3))
    X[::4, 0] = np.nan
    a = VAEImputer(sample_posterior=True, **FAST).fit(X)
    first, second = a.transform(X), a.transform(X)
    assert not np.array_equal(first, second)
    b = VAEImputer(sample_posterior=True, **FAST).fit(X)
    np.testing.assert_array_equal(b.transform(X), first)
    # a deterministic imputer gives the same values each call
    c = VAEImputer(**FAST).fit(X)
    np.testing.assert_array_equal(c.transform(X), c.transform(X))


def test_imputer_refills_rows_whose_weights_rest_on_few_draws(monkeypatch):
    # a row whose K importance weights have a small effective sample size is
    # filled again from REFILL_FACTOR * K draws: exactly those rows change,
    # each to its value from the larger set, and the values move towards the
    # limit of many draws
    import skvae._vae as vae_module

    rng = np.random.default_rng(1)
    Z = rng.normal(size=(400, 2))
    X = np.tanh(Z @ rng.normal(size=(2, 5))) + 0.1 * rng.normal(size=(400, 5))
    X[rng.random(X.shape) < 0.3] = np.nan
    imp = VAEImputer(random_state=0, max_iter=60, n_importance_samples=20).fit(X)
    C = imp._check_X(X, reset=False)
    width = imp._architecture().n_features

    def one_pass(n_draws):
        out, ess = np.empty((C.shape[0], width)), np.empty(C.shape[0])
        imp._fill_rows(C, n_draws, out, ess=ess)
        return out, ess

    single, ess = one_pass(20)
    larger, _ = one_pass(20 * vae_module.REFILL_FACTOR)
    limit, _ = one_pass(4000)
    filled = imp._fill_missing(C, 20)
    low = ess < vae_module.REFILL_ESS_SHARE * 20
    assert 0 < low.sum() < C.shape[0]
    # (equal up to rounding: a product's bits may depend on the chunk's shape)
    np.testing.assert_allclose(filled[low], larger[low], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(filled[~low], single[~low], rtol=1e-12, atol=1e-12)
    # the refill is per row: the same rows alone give the same values
    np.testing.assert_allclose(
        imp._fill_missing(C[low][:7], 20), filled[low][:7], rtol=1e-12, atol=1e-12
    )
    # the refilled rows are much nearer the many-draw limit than after one
    # pass of K draws (their Monte Carlo error is the largest)
    hidden = np.isnan(C) & low[:, None]
    err_single = np.mean((single - limit)[hidden] ** 2)
    err_filled = np.mean((filled - limit)[hidden] ** 2)
    assert err_filled < 0.3 * err_single
    monkeypatch.setattr(vae_module, "REFILL_ESS_SHARE", 0.0)
    np.testing.assert_allclose(imp._fill_missing(C, 20), single, rtol=1e-12, atol=0)


def test_imputer_missing_values_placeholder_and_indicator():
    X = np.random.default_rng(0).normal(size=(80, 3))
    X[::5, 1] = -1.0
    imp = VAEImputer(missing_values=-1.0, add_indicator=True, **FAST)
    out = imp.fit_transform(X)
    assert out.shape == (80, 4)
    np.testing.assert_array_equal(out[:, 3], (X[:, 1] == -1.0).astype(float))
    assert not np.any(out[::5, 1] == -1.0)
    names = imp.get_feature_names_out()
    assert list(names) == ["x0", "x1", "x2", "missingindicator_x1"]


def test_imputer_drops_or_keeps_empty_features():
    X = np.random.default_rng(0).normal(size=(60, 3))
    X[:, 2] = np.nan
    X[::3, 0] = np.nan
    assert VAEImputer(**FAST).fit_transform(X).shape == (60, 2)
    kept = VAEImputer(keep_empty_features=True, **FAST).fit_transform(X)
    assert kept.shape == (60, 3)
    np.testing.assert_array_equal(kept[:, 2], 0.0)


def test_imputer_mask_rate_hides_cells_with_adam_and_warns_with_lbfgs():
    X = np.random.default_rng(0).normal(size=(60, 3))
    X[::4, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = VAEImputer(**FAST).fit(X)
        masked = VAEImputer(mask_rate=0.3, **FAST).fit(X)
        assert not np.array_equal(plain.params_, masked.params_)
        # L-BFGS trains on one fixed draw: no cells are hidden
        lbfgs = {**FAST, "solver": "lbfgs"}
        with pytest.warns(UserWarning, match="mask_rate is only used with"):
            unused = VAEImputer(mask_rate=0.3, **lbfgs).fit(X)
        np.testing.assert_array_equal(
            unused.params_, VAEImputer(**lbfgs).fit(X).params_
        )
        # sparse input has no cells to hide behind missing indicators
        S = sp.random(60, 3, density=0.5, format="csr", random_state=0)
        with pytest.warns(UserWarning, match="only used with dense input"):
            VAEImputer(mask_rate=0.3, **FAST).fit(S)


def test_imputer_set_output_pandas_on_arrays():
    X = np.random.default_rng(0).normal(size=(50, 2))
    X[::4, 0] = np.nan
    out = VAEImputer(**FAST).set_output(transform="pandas").fit_transform(X)
    assert list(out.columns) == ["x0", "x1"]


def test_imputer_has_no_inverse_transform():
    assert not hasattr(VAEImputer(), "inverse_transform")


def test_warnings_do_not_leak_from_categorical_checks():
    df = _table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAETransformer(max_iter=3, random_state=0).fit(df).score_samples(df)


def test_imputer_fills_levels_the_frame_does_not_declare():
    df = _table(missing=0.0)
    imp = VAEImputer(**FAST).fit(df)
    new = df.head(3).copy()
    new["kind"] = pd.Categorical([None, None, "a"])  # declares only "a"
    out = imp.transform(new)
    assert not out["kind"].isna().any()
    assert set(out["kind"]) <= {"a", "b", "c"}


def test_detector_does_not_favour_rows_with_missing_cells():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6))
    X = rng.normal(size=(600, 6)) @ A
    det = VAEAnomalyDetector(random_state=0).fit(X)
    test = rng.normal(size=(300, 6)) @ A
    holes = test.copy()
    holes[:, :3] = np.nan
    complete, partial = det.score_samples(test), det.score_samples(holes)
    raw = VAETransformer.score_samples(det, holes)  # log p(x_obs) alone
    # half the cells: log p(x_obs) alone is far above the complete rows'
    # scores; rescaled per observed cell it is on their scale
    gap = abs(np.median(partial) - np.median(complete))
    assert gap < 0.5 * abs(np.median(raw) - np.median(complete))
    # a row with no observed cell gets the training rows' typical score
    empty = det.score_samples(np.full((1, 6), np.nan))
    assert np.isfinite(empty).all()


# -- copies of rows --------------------------------------------------------------


def test_collision_probabilities():
    from skvae._copies import collision_log_probabilities

    D = np.array([[1.0, 0.0], [1.0, np.nan], [2.0, 1.0], [2.0, 2.0]])
    # column 0: two values, half each; column 1: three values, a third each
    np.testing.assert_allclose(np.exp(collision_log_probabilities(D)), [0.5, 1.0 / 3.0])


def test_donor_values_take_only_copies():
    import skvae._copies as copies

    rng = np.random.default_rng(0)
    n = 500
    D = np.column_stack(
        [rng.normal(size=(n, 4)).round(3), rng.integers(0, 2, size=(n, 2))]
    ).astype(float)
    is_cat = np.array([False] * 4 + [True] * 2)
    D[1] = D[0]  # row 1 is a copy of row 0 ...
    D[0, 1] = np.nan  # ... which lacks a cell the copy has
    D[1, 3] = np.nan  # (and the copy lacks another one)
    X = np.array(
        [
            D[0],
            [D[0, 0], np.nan, 9.0, D[0, 3], D[0, 4], D[0, 5]],  # disagrees once
            [D[0, 0], np.nan, np.nan, np.nan, D[0, 4], D[0, 5]],  # too weak
            [np.nan, np.nan, np.nan, D[2, 3], D[2, 4], D[2, 5]],  # too weak
        ]
    )
    log_q = copies.collision_log_probabilities(D)
    out = copies.donor_values(D, log_q, X, is_cat)
    expected = np.full(X.shape, np.nan)
    expected[0, 1] = D[1, 1]
    np.testing.assert_array_equal(out, expected)
    # the mean of several numeric copies, the majority level of categorical ones
    row = D[1].copy()
    row[3] = D[0, 3]
    D2 = np.vstack([D, row, row, row])
    D2[-1, 1] += 1.0
    D2[-3:, 5] = 1 - row[5]
    X2 = D2[[0]].copy()
    X2[0, 5] = np.nan
    out = copies.donor_values(D2, copies.collision_log_probabilities(D2), X2, is_cat)
    # col 1: rows -3, -2, -1 (row 1 now agrees with it on three cells only,
    # two continuous ones and a binary one: 500 * q^3 is above CHANCE);
    # col 5: row 0 against rows -3, -2, -1
    assert out[0, 1] == pytest.approx(row[1] + 1.0 / 3.0)
    assert out[0, 5] == 1 - row[5]


def _with_copies(n=300, seed=0):
    """A mixed table where every other row has a copy further down."""
    df = _table(n=n, seed=seed)
    df = pd.concat([df, df.iloc[::2]], ignore_index=True)
    hide = np.random.default_rng(seed).random(df.shape) < 0.2
    masked = df.copy()
    for j, col in enumerate(df.columns):
        if df[col].dtype == bool:
            masked[col] = masked[col].astype(object)
        masked.loc[hide[:, j], col] = None if masked[col].dtype == object else np.nan
    return df, masked, hide


def test_imputer_fills_cells_from_copies_of_their_row():
    df, masked, hide = _with_copies()
    with_copies = VAEImputer(**FAST).fit(masked)
    out = with_copies.transform(masked)
    plain = VAEImputer(fill_from_copies=False, **FAST).fit(masked)
    ref = plain.transform(masked)
    assert list(out.dtypes) == list(masked.dtypes)
    truth = df.astype(object).to_numpy()
    got, base = out.astype(object).to_numpy(), ref.astype(object).to_numpy()
    # the cells a copy fills (the rule itself: test_donor_values_take_only_copies)
    from skvae._copies import donor_values

    C = with_copies._check_X(masked, reset=False)
    copied = ~np.isnan(
        donor_values(*with_copies._copies, C, with_copies.is_categorical_)
    )
    assert copied.sum() > 20 and np.all(hide[copied])
    # only copied rows (the first 300 rows' even ones and the appended ones)
    rows = np.flatnonzero(copied.any(axis=1))
    assert np.all((rows < 300) & (rows % 2 == 0) | (rows >= 300))
    # they come back exactly, where the model alone rarely hits them
    np.testing.assert_array_equal(got[copied], truth[copied])
    numeric = copied.copy()
    numeric[:, 2:] = False
    assert not np.any(base[numeric] == truth[numeric])
    # the other cells are the model's, as without the option
    np.testing.assert_array_equal(got[~copied], base[~copied])
    # the fitted model keeps no training rows when asked not to
    assert plain._copies is None


def test_donor_values_pair_keys_on_large_tables(monkeypatch):
    # when no single column is distinctive enough to look copies up by (too
    # many rows share each value, as in a large table), a pair of columns is
    # the key: it finds nearly the copies that single columns find
    import skvae._copies as copies

    rng = np.random.default_rng(1)
    n = 2000
    D = np.column_stack(
        [rng.normal(size=(n, 4)).round(2), rng.integers(0, 3, size=(n, 2))]
    ).astype(float)
    D[n // 2 :] = D[: n // 2]
    D[rng.random(D.shape) < 0.2] = np.nan
    is_cat = np.array([False] * 4 + [True] * 2)
    log_q = copies.collision_log_probabilities(D)
    single = copies.donor_values(D, log_q, D, is_cat)
    monkeypatch.setattr(copies, "KEY_MATCHES", 2)
    assert np.all(np.exp(log_q) * n > 2)  # no single-column key now
    paired = copies.donor_values(D, log_q, D, is_cat)
    other = np.r_[D[n // 2 :], D[: n // 2]]
    found = ~np.isnan(paired)
    assert found.sum() > 0.8 * np.sum(~np.isnan(single)) > 300
    np.testing.assert_array_equal(paired[found], other[found])


def test_imputer_auto_budget_ends_with_a_learning_rate_decay(monkeypatch):
    import skvae._base as base
    import skvae._imputer as imputer

    rates = []

    class Spy(base.Adam):
        def update(self, params, grad, workers=None):
            rates.append(self.learning_rate)
            return super().update(params, grad, workers)

    monkeypatch.setattr(base, "Adam", Spy)
    monkeypatch.setattr(imputer, "_AUTO_MAX_EPOCHS", 20)
    X = np.random.default_rng(0).normal(size=(40, 3))
    X[::4, 1] = np.nan
    VAEImputer(hidden_layer_sizes=(4,), random_state=0).fit(X)
    # one batch per epoch, 20 epochs: the last 6 (30 %) fall towards 0
    lr = 1e-3
    assert len(rates) == 20
    np.testing.assert_allclose(rates[:14], lr)
    np.testing.assert_allclose(rates[14:], lr * np.arange(6, 0, -1) / 7)
    # an integer max_iter keeps the usual constant rate
    rates.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAEImputer(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X)
    np.testing.assert_allclose(rates, lr)


def test_conformal_scale_known_answers():
    from skvae._imputer import conformal_scale

    rng = np.random.default_rng(0)
    n = 20000
    draws = rng.normal(size=(20, n))
    level = 19 / 21
    # truth drawn like the draws: no stretch; twice as spread: twice
    assert conformal_scale(rng.normal(size=n), 0.0, draws, level) == pytest.approx(
        1.0, abs=0.05
    )
    wide = 2 * rng.normal(size=n)
    assert conformal_scale(wide, 0.0, draws, level) == pytest.approx(2.0, abs=0.1)
    # the truth inside the range of the stretched draws in `level` of cells
    s = conformal_scale(wide, 0.0, draws, level)
    inside = (wide >= s * draws.min(axis=0)) & (wide <= s * draws.max(axis=0))
    assert inside.mean() == pytest.approx(level, abs=0.01)
    # too few cells for the level: no finite stretch
    assert conformal_scale(wide[:5], 0.0, draws[:, :5], level) == np.inf


def test_imputer_sample_posterior_stretches_draws_by_its_calibrated_scale():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 1))
    X = z @ [[1.0, 1.0, -1.0]] + 0.3 * rng.normal(size=(400, 3))
    X[rng.random(X.shape) < 0.2] = np.nan
    kw = dict(max_iter=30, random_state=0)
    point = VAEImputer(**kw).fit(X)
    assert point.noise_scale_ == 1.0
    imp = VAEImputer(sample_posterior=True, **kw).fit(X)
    from skvae._imputer import _CALIBRATION_BOUNDS

    lo, hi = _CALIBRATION_BOUNDS
    assert lo <= imp.noise_scale_ <= hi and imp.noise_scale_ != 1.0
    # the calibration is a function of the data and random_state
    again = VAEImputer(sample_posterior=True, **kw).fit(X)
    assert again.noise_scale_ == imp.noise_scale_
    # draws are stretched around the conditional means by noise_scale_
    mean = point.transform(X)
    imp.noise_scale_ = 1.0
    imp._n_calls = 0
    one = imp.transform(X)
    imp.noise_scale_ = 2.5
    imp._n_calls = 0
    two = imp.transform(X)
    missing = np.isnan(X)
    np.testing.assert_allclose(
        (two - mean)[missing], 2.5 * (one - mean)[missing], rtol=1e-6, atol=1e-9
    )
    np.testing.assert_array_equal(two[~missing], X[~missing])


def test_imputer_calibration_on_a_frame_leaves_categorical_cells_alone():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "count": rng.integers(0, 9, size=n),
            "kind": pd.Categorical(rng.choice(["x", "y"], size=n)),
            "nullable": pd.array(rng.integers(0, 50, size=n), dtype="Int64"),
        }
    )
    df.loc[rng.random(n) < 0.1, "nullable"] = pd.NA
    df.loc[rng.random(n) < 0.2, "a"] = np.nan
    df.loc[rng.random(n) < 0.2, "kind"] = np.nan
    imp = VAEImputer(sample_posterior=True, max_iter=20, random_state=0).fit(df)
    assert np.isfinite(imp.noise_scale_)
    out = imp.transform(df)
    assert list(out.columns) == ["a", "count", "kind", "nullable"]
    assert not out["nullable"].isna().any()
    assert out["kind"].isin(["x", "y"]).all() and not out["a"].isna().any()
    # the frame itself is left as it was
    assert df["count"].dtype.kind == "i"


def test_imputer_auto_width_grows_from_256_rows():
    # "auto": two layers of clip(2 * n_inputs, 128, 256) units from 256
    # rows on, clip(2 * n_inputs, 64, 256) below; 3 numeric columns with
    # missing cells make 6 inputs (values and indicators)
    rng = np.random.default_rng(0)

    def width(n_rows, n_columns=3):
        X = rng.normal(size=(n_rows, n_columns))
        X[::5, 0] = np.nan
        imp = VAEImputer(max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            imp.fit(X)
        return imp._architecture_["hidden_layer_sizes"]

    assert width(255) == (64, 64)
    assert width(256) == (128, 128)
    assert width(100, n_columns=20) == (80, 80)
    assert width(300, n_columns=35) == (140, 140)
    assert width(300, n_columns=200) == (256, 256)


def test_imputer_partial_fit_keeps_the_network_on_batches_of_other_sizes():
    # the network's size follows the rows of the first fit; later batches
    # of another size (here across the 256-row step) train the same network
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    X[::5, 0] = np.nan
    imp = VAEImputer(random_state=0).partial_fit(X[:300])
    params = imp.params_.copy()
    imp.partial_fit(X[300:])
    assert imp._architecture_["hidden_layer_sizes"] == (128, 128)
    assert imp.n_iter_ == 2
    assert imp.params_.shape == params.shape
    # a warm start on fewer rows continues the same network too
    warm = VAEImputer(max_iter=2, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm.fit(X[:300])
        before = warm.n_iter_
        warm.fit(X[300:])
    assert warm._architecture_["hidden_layer_sizes"] == (128, 128)
    assert warm.n_iter_ == before + 2
