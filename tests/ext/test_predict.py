"""ext.predict.SlippageModel against numpy's ridge / weighted least squares solutions."""

from __future__ import annotations

import json
import pickle
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ext.predict import FORMAT_VERSION, MAX_FEATURES, SlippageModel

pytestmark = pytest.mark.unit


def ridge_reference(X, y, ridge, weights=None, intercept=True):
    """Closed-form (Z'WZ + ridge I)^-1 Z'Wy by numpy's lstsq on the augmented system."""
    Z = np.c_[X, np.ones(len(X))] if intercept else X
    w = np.ones(len(X)) if weights is None else weights
    sw = np.sqrt(w)
    d = Z.shape[1]
    A = np.r_[Z * sw[:, None], np.sqrt(ridge) * np.eye(d)]
    b = np.r_[y * sw, np.zeros(d)]
    sol = np.linalg.lstsq(A, b, rcond=None)[0]
    return (sol[:-1], sol[-1]) if intercept else (sol, 0.0)


def data(n, k, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)) * rng.uniform(0.1, 10, size=k)
    y = X @ rng.normal(size=k) + 0.7 + noise * rng.normal(size=n)
    return X, y


def rel_close(got, want, tol=1e-9):
    scale = max(np.abs(want).max(), 1.0)
    assert np.abs(np.asarray(got) - np.asarray(want)).max() <= tol * scale


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("ridge", [1e-3, 1.0, 50.0])
def test_fit_equals_numpy_ridge(intercept, ridge):
    X, y = data(400, 10, seed=1)
    m = SlippageModel(10, ridge=ridge, fit_intercept=intercept)
    m.fit(X, y)
    coef, b = ridge_reference(X, y, ridge, intercept=intercept)
    rel_close(m.coef, coef)
    assert m.intercept == pytest.approx(b, rel=1e-9, abs=1e-12)
    assert m.n_updates == 400
    assert m.weight_sum == 400.0


def test_updates_equal_numpy_ridge_and_batch_fit_bitwise():
    X, y = data(300, 7, seed=2)
    online = SlippageModel(7)
    for i in range(len(y)):
        online.update(X[i].copy(), float(y[i]))
    batch = SlippageModel(7)
    batch.fit(X, y)
    coef, b = ridge_reference(X, y, 1e-3)
    rel_close(online.coef, coef)
    assert online.intercept == pytest.approx(b, rel=1e-9)
    # same accumulation order and the same final solve: identical bits
    assert np.array_equal(online.coef, batch.coef)
    assert online.intercept == batch.intercept


def test_weighted_fit_equals_weighted_least_squares():
    X, y = data(250, 5, seed=3)
    w = np.random.default_rng(4).uniform(0, 3, size=250)
    m = SlippageModel(5, ridge=0.5)
    m.fit(X, y, w)
    coef, b = ridge_reference(X, y, 0.5, weights=w)
    rel_close(m.coef, coef)
    assert m.intercept == pytest.approx(b, rel=1e-9)
    assert m.weight_sum == pytest.approx(w.sum())


def test_forgetting_equals_exponentially_weighted_ridge():
    lam = 0.97
    X, y = data(200, 4, seed=5)
    m = SlippageModel(4, forgetting=lam, ridge=0.01)
    m.fit(X[:120], y[:120])
    for i in range(120, 200):
        m.update(X[i].copy(), float(y[i]))
    w = lam ** np.arange(199, -1, -1, dtype=np.float64)  # newest row has weight 1
    coef, b = ridge_reference(X, y, 0.01, weights=w)  # the ridge itself is not forgotten
    rel_close(m.coef, coef, 1e-8)
    assert m.intercept == pytest.approx(b, rel=1e-8)
    assert m.weight_sum == pytest.approx(w.sum(), rel=1e-12)


def test_forgetting_tracks_a_changed_relation():
    X, _ = data(2000, 2, seed=6)
    y = np.where(np.arange(2000) < 1000, X[:, 0] * 2.0, X[:, 0] * -3.0)
    m = SlippageModel(2, forgetting=0.98)
    m.fit(X, y)
    assert m.coef[0] == pytest.approx(-3.0, abs=1e-3)


def test_ridge_never_winds_up_without_excitation():
    # a feature that is always 0 leaves its direction unexcited for 10^5 updates at lambda<1
    m = SlippageModel(2, forgetting=0.9, ridge=1e-3)
    X = np.c_[np.random.default_rng(0).normal(size=100_000), np.zeros(100_000)]
    m.fit(X, X[:, 0] * 4.0)
    assert m.coef[1] == 0.0
    assert m.coef[0] == pytest.approx(4.0, rel=1e-3)
    assert np.isfinite(m.predict(np.array([1.0, 1e6])))


def test_predict_and_predict_many_agree_with_numpy_dot():
    X, y = data(500, 12, seed=7)
    m = SlippageModel(12)
    m.fit(X, y)
    many = m.predict_many(X)
    one = np.array([m.predict(row.copy()) for row in X])
    assert np.array_equal(many, one)
    rel_close(many, X @ m.coef + m.intercept, 1e-12)
    out = np.empty(500)
    assert m.predict_many(X, out) is out
    assert np.array_equal(out, many)


def test_predict_takes_any_contiguous_float64_buffer_and_rejects_the_rest():
    X, y = data(50, 4, seed=3)
    m = SlippageModel(4)
    m.fit(X, y)
    x = X[7].copy()
    want = m.predict(x)  # plain ndarray: read directly
    ro = x.copy()
    ro.flags.writeable = False
    sub = np.asarray(x).view(type("Sub", (np.ndarray,), {}))
    for other in (ro, sub, memoryview(x), X[7]):  # other float64 buffers: buffer protocol
        assert m.predict(other) == want
    for bad, err in (
        (X[:, 0][:4], TypeError),  # strided
        (x.astype(np.float32), TypeError),
        (x[:3].copy(), ValueError),
        ([1.0, 2.0, 3.0, 4.0], TypeError),
    ):
        with pytest.raises(err):
            m.predict(bad)


def test_untrained_model_predicts_zero_and_reset_forgets():
    m = SlippageModel(3)
    x = np.array([1.0, 2.0, 3.0])
    assert m.predict(x) == 0.0
    X, y = data(50, 3)
    m.fit(X, y)
    assert m.predict(x) != 0.0
    m.reset()
    assert m.predict(x) == 0.0 and m.n_updates == 0 and m.weight_sum == 0.0
    m.fit(X, y)
    fresh = SlippageModel(3)
    fresh.fit(X, y)
    assert np.array_equal(m.coef, fresh.coef)


def test_predict_many_releases_the_gil_and_is_thread_safe():
    X, y = data(20_000, 8, seed=8)
    m = SlippageModel(8)
    m.fit(X, y)
    want = m.predict_many(X)
    results = []

    def work():
        results.append(m.predict_many(X))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r, want) for r in results)


# --------------------------------------------------------------------------- persistence


def test_bytes_round_trip_is_exact(tmp_path):
    names = [f"f{i}" for i in range(6)]
    m = SlippageModel(6, forgetting=0.995, ridge=0.3, feature_names=names, instrument="x:y:Z")
    X, y = data(300, 6, seed=9)
    m.fit(X, y, np.random.default_rng(1).uniform(0.5, 2, 300))
    back = SlippageModel.from_bytes(m.to_bytes())
    assert back.feature_names == tuple(names)
    assert back.instrument == "x:y:Z"
    assert (back.forgetting, back.ridge, back.n_updates) == (0.995, 0.3, 300)
    assert back.weight_sum == m.weight_sum
    assert np.array_equal(back.coef, m.coef) and back.intercept == m.intercept
    assert np.array_equal(back.predict_many(X), m.predict_many(X))
    # the whole state came back: continuing both gives identical models
    X2, y2 = data(50, 6, seed=10)
    m.fit(X2, y2)
    back.fit(X2, y2)
    assert np.array_equal(back.coef, m.coef)
    path = tmp_path / "m.json"
    m.save(path)
    loaded = SlippageModel.load(path)
    assert np.array_equal(loaded.coef, m.coef)
    doc = json.loads(path.read_bytes())
    assert doc["format"] == "slipstream.slippage_model" and doc["version"] == FORMAT_VERSION
    assert doc["feature_names"] == names


def test_round_trip_of_an_empty_model():
    back = SlippageModel.from_bytes(SlippageModel(2, fit_intercept=False).to_bytes())
    assert back.n_updates == 0 and not back.fit_intercept
    assert back.predict(np.array([1.0, 2.0])) == 0.0


def test_model_is_not_picklable():
    with pytest.raises(TypeError):
        pickle.dumps(SlippageModel(2))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(format="other"), "not a slippage model"),
        (lambda d: d.update(version=99), "unsupported slippage model version 99"),
        (lambda d: d.pop("xty"), "malformed"),
        (lambda d: d.update(xty="AAAA"), "must hold"),
        (lambda d: d.update(xty="!!"), "not base64"),
        (lambda d: d.update(n_features=40), "n_features"),
        (lambda d: d.update(feature_names=["a"]), "feature_names"),
        (lambda d: d.update(fit_intercept="yes"), "malformed"),
        (lambda d: d.update(n_updates=-1), "n_updates"),
    ],
)
def test_from_bytes_rejects_bad_documents(mutate, match):
    doc = json.loads(SlippageModel(3).to_bytes())
    mutate(doc)
    with pytest.raises(ValueError, match=match):
        SlippageModel.from_bytes(json.dumps(doc).encode())


def test_from_bytes_rejects_non_json():
    with pytest.raises(ValueError, match="JSON"):
        SlippageModel.from_bytes(b"\x80\x81 not json")
    with pytest.raises(ValueError, match="JSON object"):
        SlippageModel.from_bytes(b"[1, 2]")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"n_features": 0}, ValueError, "n_features"),
        ({"n_features": MAX_FEATURES + 1}, ValueError, "n_features"),
        ({"n_features": 2, "forgetting": 0.0}, ValueError, "forgetting"),
        ({"n_features": 2, "forgetting": 1.01}, ValueError, "forgetting"),
        ({"n_features": 2, "forgetting": float("nan")}, ValueError, "forgetting"),
        ({"n_features": 2, "ridge": 0.0}, ValueError, "ridge"),
        ({"n_features": 2, "ridge": float("inf")}, ValueError, "ridge"),
        ({"n_features": 2, "feature_names": ["a"]}, ValueError, "feature_names"),
        ({"n_features": 2, "feature_names": ["a", "a"]}, ValueError, "distinct"),
        ({"n_features": 2, "feature_names": ["a", 3]}, TypeError, "feature names"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        SlippageModel(**kwargs)


def test_bad_shapes_and_dtypes_raise():
    m = SlippageModel(3)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        m.predict(np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        m.predict(np.zeros((1, 3)))
    with pytest.raises(TypeError, match="float64"):
        m.predict(np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        m.predict(np.zeros(6)[::2])
    with pytest.raises(TypeError, match="float64"):
        m.predict([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        m.update(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        m.fit(np.zeros((5, 2)), np.zeros(5))
    with pytest.raises(ValueError, match=r"y must have shape \(5,\)"):
        m.fit(np.zeros((5, 3)), np.zeros(4))
    with pytest.raises(TypeError, match="X must have dtype float64"):
        m.fit(np.zeros((5, 3), dtype=np.int64), np.zeros(5))
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        m.fit([[0.0, 0.0, 0.0]], np.zeros(1))
    with pytest.raises(ValueError, match=r"weights must have shape"):
        m.fit(np.zeros((5, 3)), np.zeros(5), np.ones(3))
    with pytest.raises(ValueError, match=r"out must have shape"):
        m.predict_many(np.zeros((5, 3)), np.empty(4))
    with pytest.raises(ValueError, match="writeable"):
        ro = np.empty(5)
        ro.flags.writeable = False
        m.predict_many(np.zeros((5, 3)), ro)
    assert m.n_updates == 0  # nothing was accumulated by the rejected calls


def test_non_finite_and_negative_inputs_are_rejected_before_any_change():
    m = SlippageModel(2)
    X, y = data(20, 2)
    m.fit(X, y)
    coef = m.coef
    bad_X = X.copy()
    bad_X[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        m.fit(bad_X, y)
    with pytest.raises(ValueError, match="finite"):
        m.fit(X, np.r_[y[:-1], np.inf])
    with pytest.raises(ValueError, match=">= 0"):
        m.fit(X, y, -np.ones(20))
    with pytest.raises(ValueError, match="non-finite"):
        m.update(np.array([1.0, np.inf]), 1.0)
    with pytest.raises(ValueError, match="finite"):
        m.update(np.array([1.0, 1.0]), np.nan)
    with pytest.raises(ValueError, match="weight"):
        m.update(np.array([1.0, 1.0]), 1.0, -1.0)
    assert np.array_equal(m.coef, coef) and m.n_updates == 20


def test_empty_fit_is_a_no_op():
    m = SlippageModel(2)
    m.fit(np.zeros((0, 2)), np.zeros(0))
    assert m.n_updates == 0
    assert m.predict_many(np.zeros((0, 2))).shape == (0,)


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, MAX_FEATURES),
    extra=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
    ridge=st.sampled_from([1e-3, 0.1, 10.0]),
    intercept=st.booleans(),
)
def test_property_matches_numpy_ridge(k, extra, seed, ridge, intercept):
    rng = np.random.default_rng(seed)
    n = k + 1 + extra
    X = rng.normal(size=(n, k)) * rng.uniform(0.1, 5.0, size=k) + rng.normal(size=k)
    y = rng.normal(size=n) * 3.0
    m = SlippageModel(k, ridge=ridge, fit_intercept=intercept)
    half = n // 2
    m.fit(X[:half], y[:half])
    for i in range(half, n):
        m.update(X[i].copy(), float(y[i]))
    coef, b = ridge_reference(X, y, ridge, intercept=intercept)
    rel_close(np.r_[m.coef, m.intercept], np.r_[coef, b], 1e-8)
    pm = m.predict_many(X)
    assert np.array_equal(pm, np.array([m.predict(r.copy()) for r in X]))
    back = SlippageModel.from_bytes(m.to_bytes())
    assert np.array_equal(back.predict_many(X), pm)
