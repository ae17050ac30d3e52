"""Decimal text -> scaled int64: ext.scaled vs Python's Decimal (same run, same inputs)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from ext.scaled import to_scaled, to_scaled_many

N = 100_000
SCALE = 8


@pytest.fixture(scope="module")
def fields():
    rng = np.random.default_rng(7)
    prices = rng.integers(1, 10**12, N)
    texts = [f"{p // 10**8}.{p % 10**8:08d}".rstrip("0").rstrip(".") for p in prices.tolist()]
    buf = bytearray()
    starts = np.empty(N, dtype=np.int64)
    ends = np.empty(N, dtype=np.int64)
    for i, t in enumerate(texts):
        buf += b'["'
        starts[i] = len(buf)
        buf += t.encode()
        ends[i] = len(buf)
        buf += b'"],'
    return texts, bytes(buf), starts, ends


def test_scaled_batch_ext(benchmark, fields):
    texts, buf, starts, ends = fields
    out = np.empty(N, dtype=np.int64)
    benchmark.group = "scaled: 100k fields"
    benchmark(to_scaled_many, buf, starts, ends, SCALE, out)
    benchmark.extra_info["ns_per_field"] = benchmark.stats.stats.min / N * 1e9
    assert out[0] == int(Decimal(texts[0]).scaleb(SCALE))


def test_scaled_batch_decimal_reference(benchmark, fields):
    texts = fields[0]
    benchmark.group = "scaled: 100k fields"
    result = benchmark.pedantic(
        lambda: [int(Decimal(t).scaleb(SCALE)) for t in texts], rounds=3, iterations=1
    )
    benchmark.extra_info["ns_per_field"] = benchmark.stats.stats.min / N * 1e9
    assert len(result) == N


def test_scaled_scalar_ext(benchmark):
    benchmark.group = "scaled: one value per Python call"
    assert benchmark(to_scaled, b"64250.12345678", SCALE) == 6425012345678


def test_scaled_scalar_decimal_reference(benchmark):
    benchmark.group = "scaled: one value per Python call"
    assert benchmark(lambda s: int(Decimal(s).scaleb(SCALE)), "64250.12345678") == 6425012345678
