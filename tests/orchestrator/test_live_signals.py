"""Sampled live signals: each value equals the compiled indicator fed the same samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ext.book import ASK, BID, OrderBook
from ext.flow import book_imbalance
from ext.indicators import ema, rsi
from orchestrator.signals.live import BookSignals

pytestmark = pytest.mark.unit


def test_samples_feed_the_indicators() -> None:
    rng = np.random.default_rng(7)
    book = OrderBook(2, 3)
    sig = BookSignals(fast=3, slow=5, rsi_period=4)
    mids = []
    for step in range(40):
        center = 100_000 + int(rng.integers(-50, 50))
        book.clear()
        for i in range(12):
            book.apply(BID, center - 1 - i, int(rng.integers(1, 500)))
            book.apply(ASK, center + 1 + i, int(rng.integers(1, 500)))
        sig.sample(book, step * 100_000_000)
        mids.append(book.mid() * 10.0**-2)
        assert sig.imbalance == book_imbalance(book, 10)
    x = np.asarray(mids)
    assert sig.ema_fast.value == ema(x, 3)[-1]
    assert sig.ema_slow.value == ema(x, 5)[-1]
    assert sig.rsi.value == rsi(x, 4)[-1]
    assert sig.momentum_bps == pytest.approx((ema(x, 3)[-1] / ema(x, 5)[-1] - 1) * 1e4)
    assert sig.samples == 40


def test_momentum_is_nan_until_warm() -> None:
    book = OrderBook(0, 0)
    book.apply(BID, 99, 1)
    book.apply(ASK, 101, 1)
    sig = BookSignals(fast=2, slow=3)
    sig.sample(book, 0)
    assert math.isnan(sig.momentum_bps)
    sig.sample(book, 1)
    sig.sample(book, 2)
    assert sig.momentum_bps == 0.0
