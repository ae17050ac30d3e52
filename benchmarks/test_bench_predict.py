"""ext.predict.SlippageModel: predict, batch predict, update and fit vs numpy (same run).

The numpy references compute the same numbers: ``coef @ x + b`` for a prediction,
``feats @ coef + b`` for a batch, the normal equations solved by ``numpy.linalg.solve`` for a
fit. ``extra_info`` holds ns per call or per row.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_predict.py --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ext.predict import SlippageModel

K = 10  # features, as in the slippage model
N = 100_000


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(11)
    feats = rng.normal(size=(N, K))
    y = feats @ rng.normal(size=K) + 0.5 + 0.1 * rng.normal(size=N)
    model = SlippageModel(K)
    model.fit(feats, y)
    return feats, y, model


def test_predict_scalar_ext(benchmark, problem):
    feats, _, model = problem
    x = feats[0].copy()
    benchmark.group = "predict: one call from Python, 10 features"
    got = benchmark(model.predict, x)
    benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.min * 1e9
    assert got == pytest.approx(float(x @ model.coef + model.intercept), rel=1e-12)


def test_predict_scalar_reference_numpy(benchmark, problem):
    feats, _, model = problem
    x = feats[0].copy()
    coef, b = model.coef, model.intercept
    benchmark.group = "predict: one call from Python, 10 features"
    benchmark(lambda: coef @ x + b)
    benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.min * 1e9


def test_predict_many_ext(benchmark, problem):
    feats, _, model = problem
    out = np.empty(N)
    benchmark.group = "predict: 100k rows in one call, 10 features"
    benchmark(model.predict_many, feats, out)
    benchmark.extra_info["ns_per_row"] = benchmark.stats.stats.min / N * 1e9
    assert np.allclose(out, feats @ model.coef + model.intercept, rtol=1e-12, atol=1e-12)


def test_predict_many_reference_numpy(benchmark, problem):
    feats, _, model = problem
    coef, b = model.coef, model.intercept
    out = np.empty(N)

    def run():
        np.dot(feats, coef, out=out)
        np.add(out, b, out=out)

    benchmark.group = "predict: 100k rows in one call, 10 features"
    benchmark(run)
    benchmark.extra_info["ns_per_row"] = benchmark.stats.stats.min / N * 1e9


def test_update_scalar_ext(benchmark, problem):
    feats, y, _ = problem
    model = SlippageModel(K, forgetting=0.999)
    x, target = feats[1].copy(), float(y[1])
    benchmark.group = "update: one row and re-solve from Python, 10 features"
    benchmark(model.update, x, target)
    benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.min * 1e9


def test_update_scalar_reference_numpy(benchmark, problem):
    feats, y, _ = problem
    lam = 0.999
    a = np.eye(K + 1) * 1e-3
    b = np.zeros(K + 1)
    z = np.r_[feats[1], 1.0]
    target = float(y[1])

    def run():
        nonlocal a, b
        a = lam * a + np.outer(z, z)
        b = lam * b + z * target
        return np.linalg.solve(a, b)

    benchmark.group = "update: one row and re-solve from Python, 10 features"
    benchmark(run)
    benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.min * 1e9


def test_fit_batch_ext(benchmark, problem):
    feats, y, ref = problem
    model = SlippageModel(K)

    def run():
        model.reset()
        model.fit(feats, y)

    benchmark.group = "fit: 100k rows, 10 features"
    benchmark(run)
    benchmark.extra_info["ns_per_row"] = benchmark.stats.stats.min / N * 1e9
    assert np.array_equal(model.coef, ref.coef)


def test_fit_batch_reference_numpy(benchmark, problem):
    feats, y, ref = problem

    def run():
        z = np.c_[feats, np.ones(N)]
        return np.linalg.solve(z.T @ z + 1e-3 * np.eye(K + 1), z.T @ y)

    benchmark.group = "fit: 100k rows, 10 features"
    sol = benchmark(run)
    benchmark.extra_info["ns_per_row"] = benchmark.stats.stats.min / N * 1e9
    assert np.allclose(sol[:K], ref.coef, rtol=1e-9, atol=1e-12)
