"""Tests of ext.flow against independent references (pandas, pure Python) and real data.

References: pandas rolling sums with time-based windows on a DatetimeIndex, pandas groupby
for time bars, ``OrderBook.top_copy`` / ``OrderBook.microprice`` for book signals, and
plain Python loops written here (OFI terms, volume bars, grid sampling). Real data: the
Binance ETHUSDT spot capture (trades, bookTicker tops, depth diffs), trades replayed through
``ext.binance.BinanceFeed`` for ``TRADE_DTYPE`` records.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ext import flow
from ext.binance import BinanceFeed
from ext.book import ASK, BID, NO_ASK_PRICE, NO_BID_PRICE, OrderBook
from ext.feed import TRADE_DTYPE
from ext.scaled import to_scaled

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "data" / "fixtures"
ETH_CAPTURE = FIXTURES / "hftbacktest" / "spot" / "ethusdt_20240808.gz"
PRICE_SCALE = 2
SIZE_SCALE = 8
REL = 1e-9
SEC = 1_000_000_000

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


# ---------------------------------------------------------------- helpers


def assert_close(got: F64, want: F64, scale: F64 | None = None, rel: float = REL) -> None:
    """Same NaN positions; elsewhere ``|got - want| <= rel * max(|want|, scale)``."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    bad = np.flatnonzero(nan_g != nan_w)
    assert bad.size == 0, f"NaN mismatch first at {bad[0]}: got {got[bad[0]]}, want {want[bad[0]]}"
    ok = ~nan_w
    ref = np.abs(want[ok]) if scale is None else np.maximum(np.abs(want[ok]), scale[ok])
    err = np.abs(got[ok] - want[ok])
    worst = int(np.argmax(err - rel * ref)) if err.size else 0
    assert np.all(err <= rel * ref), (
        f"max excess at {worst}: got {got[ok][worst]!r}, want {want[ok][worst]!r}"
    )


def random_times(rng: np.random.Generator, n: int) -> I64:
    """Non-decreasing ns times with runs of equal stamps, small steps and long gaps."""
    steps = rng.choice(
        np.array([0, 1, 1_000, 250_000, 10_000_000, 3 * SEC], dtype=np.int64),
        size=n,
        p=[0.25, 0.05, 0.3, 0.3, 0.08, 0.02],
    )
    return (1_700_000_000 * SEC + np.cumsum(steps)).astype(np.int64)


def random_trades(seed: int, n: int) -> tuple[I64, F64, F64, npt.NDArray[np.int8]]:
    rng = np.random.default_rng(seed)
    t = random_times(rng, n)
    px = 2000.0 + np.cumsum(rng.normal(0.0, 0.5, n))
    sz = rng.lognormal(-2.0, 1.5, n)
    sz[rng.random(n) < 0.01] = 0.0
    side = rng.choice(np.array([-1, 1, 0], dtype=np.int8), size=n, p=[0.48, 0.48, 0.04])
    return t, px, sz, side


def pd_rolling_sum(t: I64, x: F64, window: int, kind: str) -> F64:
    s = pd.Series(x, index=pd.DatetimeIndex(t))
    if kind == "count":
        return s.rolling(window).sum().to_numpy().copy()
    return s.rolling(pd.Timedelta(window, "ns")).sum().to_numpy().copy()


def warm(t: I64, window: int, kind: str, first: int | None = None) -> npt.NDArray[np.bool_]:
    """Documented warm-up: count windows hold ``window`` events; time windows span it."""
    if kind == "count":
        return np.arange(t.size) >= window - 1
    return t - (t[0] if first is None else first) >= window


def ref_window_sums(
    t: list[int], xs: list[list[float]], window: int, kind: str
) -> list[list[float]]:
    """Pure-Python rolling sums (exact ``math.fsum`` over a deque) per event."""
    q: deque[tuple[int, list[float]]] = deque()
    out = []
    for i, ti in enumerate(t):
        q.append((ti, [x[i] for x in xs]))
        if kind == "count":
            while len(q) > window:
                q.popleft()
        else:
            while q[0][0] <= ti - window:
                q.popleft()
        out.append([math.fsum(v[k] for _, v in q) for k in range(len(xs))])
    return out


def ofi_terms(bp: I64, bq: I64, ap: I64, aq: I64) -> list[int]:
    """e_n (n >= 1) of Cont, Kukanov and Stoikov, straight from the definition."""
    e = []
    for n in range(1, len(bp)):
        v = 0
        if bp[n] >= bp[n - 1]:
            v += int(bq[n])
        if bp[n] <= bp[n - 1]:
            v -= int(bq[n - 1])
        if ap[n] <= ap[n - 1]:
            v -= int(aq[n])
        if ap[n] >= ap[n - 1]:
            v += int(aq[n - 1])
        e.append(v)
    return e


def ref_ofi(t: I64, bp: I64, bq: I64, ap: I64, aq: I64, window: int, kind: str) -> F64:
    e = ofi_terms(bp, bq, ap, aq)
    out = np.full(len(t), np.nan)
    for n in range(1, len(t)):
        if kind == "count":
            if n < window:
                continue
            out[n] = sum(e[n - window : n])
        else:
            if t[n] - t[0] < window:
                continue
            out[n] = sum(e[k - 1] for k in range(1, n + 1) if t[k] > t[n] - window)
    return out


# ---------------------------------------------------------------- real data


@dataclass
class Capture:
    trade_t: I64
    trade_px: F64
    trade_sz: F64
    trade_side: npt.NDArray[np.int8]
    records: npt.NDArray[np.void]
    tick_t: I64
    tick: tuple[I64, I64, I64, I64]
    book_snapshot: dict[str, Any]
    diffs: list[tuple[int, list[tuple[int, int, int]]]]


@pytest.fixture(scope="module")
def capture() -> Capture:
    trades: list[tuple[int, float, float, int]] = []
    ticks: list[tuple[int, int, int, int, int]] = []
    diffs: list[tuple[int, list[tuple[int, int, int]]]] = []
    snap = None
    feed = BinanceFeed("spot")
    with gzip.open(ETH_CAPTURE, "rb") as fh:
        for line in fh:
            ns_b, payload = line.split(b" ", 1)
            ns = int(ns_b)
            msg = json.loads(payload)
            if "lastUpdateId" in msg:
                snap = msg
                continue
            stream, d = msg["stream"], msg["data"]
            if stream.endswith("@trade"):
                feed.on_frame(payload.strip(), ns)
                trades.append((ns, float(d["p"]), float(d["q"]), -1 if d["m"] else 1))
            elif stream.endswith("@bookTicker"):
                ticks.append(
                    (
                        ns,
                        to_scaled(d["b"], PRICE_SCALE),
                        to_scaled(d["B"], SIZE_SCALE),
                        to_scaled(d["a"], PRICE_SCALE),
                        to_scaled(d["A"], SIZE_SCALE),
                    )
                )
            elif stream.endswith("@depth@100ms") and snap is not None:
                if d["u"] <= snap["lastUpdateId"]:
                    continue
                levels = [
                    (side, to_scaled(p, PRICE_SCALE), to_scaled(q, SIZE_SCALE))
                    for side, key in ((BID, "b"), (ASK, "a"))
                    for p, q in d[key]
                ]
                diffs.append((ns, levels))
    assert snap is not None
    recs = feed.drain_trades()
    tt = np.array(ticks, dtype=np.int64)
    return Capture(
        trade_t=np.array([x[0] for x in trades], dtype=np.int64),
        trade_px=np.array([x[1] for x in trades]),
        trade_sz=np.array([x[2] for x in trades]),
        trade_side=np.array([x[3] for x in trades], dtype=np.int8),
        records=recs,
        tick_t=tt[:, 0].copy(),
        tick=(tt[:, 1].copy(), tt[:, 2].copy(), tt[:, 3].copy(), tt[:, 4].copy()),
        book_snapshot=snap,
        diffs=diffs,
    )


def snapshot_book(cap: Capture) -> OrderBook:
    book = OrderBook(PRICE_SCALE, SIZE_SCALE)
    arr = {
        k: np.array(
            [
                (to_scaled(p, PRICE_SCALE), to_scaled(q, SIZE_SCALE))
                for p, q in cap.book_snapshot[k]
            ],
            dtype=np.int64,
        )
        for k in ("bids", "asks")
    }
    book.load_snapshot(
        arr["bids"][:, 0].copy(),
        arr["bids"][:, 1].copy(),
        arr["asks"][:, 0].copy(),
        arr["asks"][:, 1].copy(),
    )
    return book


def test_capture_is_loaded(capture: Capture) -> None:
    assert capture.trade_t.size == 6106
    assert capture.records.size == 6106
    assert capture.tick_t.size == 24077
    assert len(capture.diffs) > 3000


# ---------------------------------------------------------------- rolling VWAP


@pytest.mark.parametrize(
    ("window", "kind"),
    [(1, "count"), (50, "count"), (1000, "count"), (SEC, "time"), (60 * SEC, "time")],
)
def test_vwap_equals_pandas_on_random_data(window: int, kind: str) -> None:
    t, px, sz, _ = random_trades(1, 200_000)
    got = flow.rolling_vwap(t, px, sz, window, kind)
    num = pd_rolling_sum(t, px * sz, window, kind)
    den = pd_rolling_sum(t, sz, window, kind)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where((den > 0) & warm(t, window, kind), num / den, np.nan)
    assert np.isfinite(got).sum() > 150_000
    assert_close(got, want)


@pytest.mark.parametrize(("window", "kind"), [(20, "count"), (SEC, "time"), (10 * SEC, "time")])
def test_vwap_equals_pandas_on_capture(capture: Capture, window: int, kind: str) -> None:
    t, px, sz = capture.trade_t, capture.trade_px, capture.trade_sz
    got = flow.rolling_vwap(t, px, sz, window, kind)
    want = pd_rolling_sum(t, px * sz, window, kind) / pd_rolling_sum(t, sz, window, kind)
    want[~warm(t, window, kind)] = np.nan
    assert np.isfinite(got).sum() > 5000
    assert_close(got, want)
    # a VWAP lies within the window's price range
    lo = pd.Series(px, index=pd.DatetimeIndex(t))
    roll = lo.rolling(window if kind == "count" else pd.Timedelta(window, "ns"))
    ok = np.isfinite(got)
    assert np.all(got[ok] >= roll.min().to_numpy()[ok] - 1e-9)
    assert np.all(got[ok] <= roll.max().to_numpy()[ok] + 1e-9)


def test_vwap_trades_records_equal_float_api(capture: Capture) -> None:
    r = capture.records
    px = r["price"] / 10.0 ** r["price_scale"].astype(np.float64)
    sz = r["size"] / 10.0 ** r["size_scale"].astype(np.float64)
    assert len(np.unique(r["size_scale"])) > 1  # inferred scales grow during the stream
    for clock in ("exch", "recv"):
        t = np.ascontiguousarray(r[f"{clock}_ns"])
        got = flow.rolling_vwap_trades(r, SEC, "time", clock)
        np.testing.assert_array_equal(got, flow.rolling_vwap(t, px, sz, SEC, "time"))
    # and the records agree with the JSON prices of the capture (recv clock)
    want = flow.rolling_vwap(capture.trade_t, capture.trade_px, capture.trade_sz, 50)
    assert_close(flow.rolling_vwap_trades(r, 50, clock="recv"), want)


def test_vwap_time_window_edges() -> None:
    # window 10 ns: keeps t > now - 10
    t = np.array([0, 0, 5, 10, 10, 25, 40], dtype=np.int64)
    px = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    sz = np.ones(7)
    got = flow.rolling_vwap(t, px, sz, 10, "time")
    # t=10: window (0, 10] drops both trades at 0; 25: gap empties the window; 40: idem
    want = [np.nan, np.nan, np.nan, (3 + 4) / 2, (3 + 4 + 5) / 3, 6.0, 7.0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15, equal_nan=True)
    v = flow.RollingVWAP(10, "time")
    for i in range(7):
        v.update(int(t[i]), float(px[i]), float(sz[i]))
    assert v.count == 1
    assert v.advance(49) == 7.0
    assert math.isnan(v.advance(50))  # window (40, 50] is empty
    assert v.count == 0


def test_vwap_zero_volume_window_is_nan() -> None:
    t = np.arange(4, dtype=np.int64)
    got = flow.rolling_vwap(t, np.array([1.0, 2, 3, 4]), np.array([1.0, 0, 0, 2]), 2)
    np.testing.assert_array_equal(np.isnan(got), [True, False, True, False])
    assert got[1] == 1.0 and got[3] == 4.0


def test_vwap_sums_recover_from_cancellation() -> None:
    # found by hypothesis: large sizes leave the window, a subnormal one stays; running
    # sums alone would cancel to 0 (VWAP 0.0), the recompute keeps them exact
    t = np.array([0, 0, 1, 18], dtype=np.int64)
    px = np.array([1.0, 3.0, 1.0, 1.0])
    sz = np.array([2.382316263641311, 10.0, 0.0, 5e-324])
    assert flow.rolling_vwap(t, px, sz, 18, "time")[-1] == 1.0
    t = np.arange(6, dtype=np.int64)
    px = np.array([7e5, 1.0, 2.0, 3.0, 4.0, 5.0])
    sz = np.array([1e15, 1e-9, 3e-9, 1e-9, 1e-9, 1e-9])
    got = flow.rolling_vwap(t, px, sz, 3)
    assert got[-1] == pytest.approx(4.0, rel=1e-15)
    assert got[-2] == pytest.approx(2.6, rel=1e-15)


def test_vwap_streaming_equals_batch_bitwise() -> None:
    t, px, sz, _ = random_trades(7, 20_000)
    for window, kind in ((37, "count"), (SEC // 2, "time")):
        batch = flow.rolling_vwap(t, px, sz, window, kind)
        s = flow.RollingVWAP(window, kind)
        one = np.array(
            [s.update(int(a), float(b), float(c)) for a, b, c in zip(t, px, sz, strict=True)]
        )
        np.testing.assert_array_equal(one, batch)
        s2 = flow.RollingVWAP(window, kind)  # batches continue the state
        parts = [
            s2.update_batch(t[a : a + 999], px[a : a + 999], sz[a : a + 999])
            for a in range(0, t.size, 999)
        ]
        np.testing.assert_array_equal(np.concatenate(parts), batch)
        assert s2.value == batch[-1]


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 30),
            st.floats(0.5, 100.0),
            st.floats(0.0, 10.0),
        ),
        min_size=1,
        max_size=60,
    ),
    window=st.integers(1, 40),
    kind=st.sampled_from(["count", "time"]),
)
def test_vwap_property_vs_python(
    data: list[tuple[int, float, float]], window: int, kind: str
) -> None:
    t = np.cumsum([d[0] for d in data]).astype(np.int64)
    px = np.array([d[1] for d in data])
    sz = np.array([d[2] for d in data])
    got = flow.rolling_vwap(t, px, sz, window, kind)
    sums = ref_window_sums(list(t), [list(px * sz), list(sz)], window, kind)
    ready = warm(t, window, kind)
    for i, (num, den) in enumerate(sums):
        if not ready[i] or den <= 0:
            assert math.isnan(got[i]), i
        else:
            assert got[i] == pytest.approx(num / den, rel=1e-12), i
    s = flow.RollingVWAP(window, kind)
    np.testing.assert_array_equal(
        [s.update(int(a), float(b), float(c)) for a, b, c in zip(t, px, sz, strict=True)], got
    )


# ---------------------------------------------------------------- trade flow


@pytest.mark.parametrize(("window", "kind"), [(100, "count"), (SEC, "time"), (30 * SEC, "time")])
def test_trade_flow_equals_pandas_on_random_data(window: int, kind: str) -> None:
    t, _, sz, side = random_trades(2, 200_000)
    signed, imb = flow.trade_flow(t, sz, side, window, kind)
    buy = pd_rolling_sum(t, np.where(side > 0, sz, 0.0), window, kind)
    sell = pd_rolling_sum(t, np.where(side < 0, sz, 0.0), window, kind)
    ready = warm(t, window, kind)
    want_s = np.where(ready, buy - sell, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        want_i = np.where(ready & (buy + sell > 0), (buy - sell) / (buy + sell), np.nan)
    total = np.nan_to_num(buy + sell)
    assert np.isfinite(signed).sum() > 150_000
    assert_close(signed, want_s, scale=total)
    assert_close(imb, want_i, scale=np.ones_like(total))
    assert np.nanmax(np.abs(imb)) <= 1.0


def test_trade_flow_on_capture_and_records(capture: Capture) -> None:
    t, sz, side = capture.trade_t, capture.trade_sz, capture.trade_side
    signed, imb = flow.trade_flow(t, sz, side, 5 * SEC, "time")
    buy = pd_rolling_sum(t, np.where(side > 0, sz, 0.0), 5 * SEC, "time")
    sell = pd_rolling_sum(t, np.where(side < 0, sz, 0.0), 5 * SEC, "time")
    ready = warm(t, 5 * SEC, "time")
    assert_close(signed, np.where(ready, buy - sell, np.nan), scale=buy + sell)
    assert_close(imb, np.where(ready, (buy - sell) / (buy + sell), np.nan), scale=np.ones_like(buy))
    # records replayed through BinanceFeed carry the same sides (m = buyer is maker -> sell)
    np.testing.assert_array_equal(capture.records["side"], side)
    s2, i2 = flow.trade_flow_trades(capture.records, 5 * SEC, "time", clock="recv")
    assert_close(s2, signed, scale=buy + sell)
    assert_close(i2, imb, scale=np.ones_like(buy))


def test_trade_flow_streaming_equals_batch_and_properties() -> None:
    t, _, sz, side = random_trades(3, 10_000)
    signed, imb = flow.trade_flow(t, sz, side, 64)
    tf = flow.TradeFlow(64)
    for i in range(t.size):
        assert tf.update(int(t[i]), float(sz[i]), int(side[i])) == signed[i] or (
            math.isnan(signed[i]) and math.isnan(tf.signed_volume)
        )
        assert tf.imbalance == imb[i] or (math.isnan(imb[i]) and math.isnan(tf.imbalance))
    assert tf.count == 64
    assert tf.buy_volume - tf.sell_volume == pytest.approx(signed[-1], abs=1e-12)


def test_trade_flow_unknown_side_counts_in_window_not_volume() -> None:
    t = np.arange(3, dtype=np.int64)
    s, i = flow.trade_flow(t, np.array([1.0, 5.0, 2.0]), np.array([1, 0, -1], np.int8), 2)
    assert math.isnan(s[0])
    assert (s[1], i[1]) == (1.0, 1.0)
    assert (s[2], i[2]) == (-2.0, -1.0)
    s, i = flow.trade_flow(t[:1], np.array([1.0]), np.array([0], np.int8), 1)
    assert s[0] == 0.0 and math.isnan(i[0])


# ---------------------------------------------------------------- order-flow imbalance


def random_tops(seed: int, n: int) -> tuple[I64, I64, I64, I64, I64]:
    rng = np.random.default_rng(seed)
    t = random_times(rng, n)
    mid = 100_000 + np.cumsum(rng.choice([-1, 0, 0, 0, 1], size=n))
    spread = rng.choice([1, 1, 2, 3], size=n)
    bp = (mid - spread // 2).astype(np.int64)
    ap = (bp + spread).astype(np.int64)
    bq = rng.integers(1, 10_000, size=n).astype(np.int64)
    aq = rng.integers(1, 10_000, size=n).astype(np.int64)
    return t, bp, bq, ap, aq


@pytest.mark.parametrize(("window", "kind"), [(1, "count"), (25, "count"), (SEC, "time")])
def test_ofi_equals_python_definition(window: int, kind: str) -> None:
    t, bp, bq, ap, aq = random_tops(4, 3_000)
    got = flow.order_flow_imbalance(t, bp, bq, ap, aq, window, kind)
    np.testing.assert_array_equal(got, ref_ofi(t, bp, bq, ap, aq, window, kind))


@pytest.mark.parametrize(("window", "kind"), [(100, "count"), (2 * SEC, "time")])
def test_ofi_on_book_ticker_equals_pandas(capture: Capture, window: int, kind: str) -> None:
    t = capture.tick_t
    bp, bq, ap, aq = capture.tick
    got = flow.order_flow_imbalance(t, bp, bq, ap, aq, window, kind)
    e = np.array([np.nan, *ofi_terms(bp, bq, ap, aq)])
    want = pd_rolling_sum(t, np.nan_to_num(e), window, kind)
    want[~(warm(t, window, kind) if kind == "time" else np.arange(t.size) >= window)] = np.nan
    assert np.isfinite(got).sum() > 20_000
    np.testing.assert_array_equal(got, want)  # integer lots: exact


def test_ofi_from_order_book_equals_batch_of_its_tops(capture: Capture) -> None:
    book = snapshot_book(capture)
    ofi = flow.OrderFlowImbalance(SEC, "time")
    rows, got = [], []
    for ns, levels in capture.diffs:
        for side, p, q in levels:
            book.apply(side, p, q)
        got.append(ofi.update_book(book, ns))
        rows.append(
            (ns, book.best_bid_price, book.best_bid_size, book.best_ask_price, book.best_ask_size)
        )
    a = np.array(rows, dtype=np.int64)
    cols = [a[:, k].copy() for k in range(5)]
    want = flow.order_flow_imbalance(*cols, SEC, "time")
    np.testing.assert_array_equal(np.array(got), want)
    np.testing.assert_array_equal(want, ref_ofi(*cols, SEC, "time"))
    assert ofi.value == want[-1] and np.isfinite(want).sum() > 3000


def test_ofi_empty_sides_use_book_sentinels() -> None:
    book = OrderBook()
    ofi = flow.OrderFlowImbalance(10)
    assert math.isnan(ofi.update_book(book, 0))
    book.apply(BID, 100, 5)
    ofi.update_book(book, 1)
    book.apply(ASK, 101, 7)
    ofi.update_book(book, 2)
    book.apply(BID, 100, 0)
    ofi.update_book(book, 3)
    bp = np.array([NO_BID_PRICE, 100, 100, NO_BID_PRICE], dtype=np.int64)
    bq = np.array([0, 5, 5, 0], dtype=np.int64)
    ap = np.array([NO_ASK_PRICE, NO_ASK_PRICE, 101, 101], dtype=np.int64)
    aq = np.array([0, 0, 7, 7], dtype=np.int64)
    e = ofi_terms(bp, bq, ap, aq)
    assert e == [5, -7, -5]
    o2 = flow.OrderFlowImbalance(10)
    for i in range(4):
        o2.update(i, int(bp[i]), int(bq[i]), int(ap[i]), int(aq[i]))
    assert o2.count == ofi.count == 3
    assert math.isnan(o2.advance(3)) and math.isnan(ofi.value)  # warm-up: 3 terms < 10
    o3 = flow.OrderFlowImbalance(3)
    out = o3.update_batch(np.arange(4, dtype=np.int64), bp, bq, ap, aq)
    assert out[-1] == sum(e)


# ---------------------------------------------------------------- book imbalance, microprice


def py_imbalance(
    book: OrderBook, depth: int, weights: F64 | None = None, tau: float = 0.0
) -> float:
    tot = []
    for side in (BID, ASK):
        p, q = book.top_copy(side, depth)
        acc = 0.0
        for k in range(len(p)):
            w = 1.0 if weights is None else float(weights[k])
            if tau > 0:
                w = w * (tau / (tau + abs(int(p[k]) - int(p[0]))))
            acc += w * float(q[k])
        tot.append(acc)
    b, a = tot
    return math.nan if b + a == 0 else (b - a) / (b + a)


def test_book_imbalance_and_microprice_along_the_capture(capture: Capture) -> None:
    book = snapshot_book(capture)
    w = 1.0 / (1.0 + np.arange(10.0))
    checked = 0
    for j, (_, levels) in enumerate(capture.diffs):
        for side, p, q in levels:
            book.apply(side, p, q)
        if j % 7:
            continue
        for depth in (1, 5, 10):
            assert flow.book_imbalance(book, depth) == pytest.approx(
                py_imbalance(book, depth), rel=1e-12
            )
        assert flow.book_imbalance(book, 10, w) == pytest.approx(
            py_imbalance(book, 10, w), rel=1e-12
        )
        assert flow.book_imbalance(book, 10, None, 5.0) == pytest.approx(
            py_imbalance(book, 10, None, 5.0), rel=1e-12
        )
        assert flow.microprice(book) == book.microprice()
        checked += 1
    assert checked > 400


def test_book_imbalance_skips_tombstones() -> None:
    book = OrderBook()
    for p in range(100, 110):
        book.apply(BID, p, p)
    for p in range(110, 120):
        book.apply(ASK, p, 1)
    for p in (108, 106, 104):
        book.apply(BID, p, 0)  # tombstones inside the top 10 slots
    want = py_imbalance(book, 5)
    assert flow.book_imbalance(book, 5) == want
    b = sum([109, 107, 105, 103, 102])
    assert want == (b - 5) / (b + 5)
    book.apply(BID, 109, 0)  # best deleted: trailing tombstones trimmed
    assert flow.book_imbalance(book, 3) == py_imbalance(book, 3)


def test_book_imbalance_one_side_and_empty() -> None:
    book = OrderBook()
    assert math.isnan(flow.book_imbalance(book))
    assert math.isnan(flow.microprice(book)) and math.isnan(book.microprice())
    book.apply(BID, 10, 3)
    assert flow.book_imbalance(book) == 1.0
    book.apply(BID, 10, 0)
    book.apply(ASK, 12, 3)
    assert flow.book_imbalance(book) == -1.0


def test_book_imbalance_batch_equals_book_version() -> None:
    rng = np.random.default_rng(5)
    book = OrderBook()
    rows: list[tuple[I64, I64, I64, I64]] = []
    want, want_w = [], []
    w = rng.random(8)
    for _ in range(300):
        for _ in range(20):
            side = int(rng.integers(0, 2))
            p = int(rng.integers(1000, 1030)) if side == BID else int(rng.integers(1031, 1060))
            book.apply(side, p, int(rng.integers(0, 3)) * int(rng.integers(1, 50)))
        bp, bq = book.top_copy(BID, 8)
        ap, aq = book.top_copy(ASK, 8)
        pad = [np.pad(x, (0, 8 - x.size)) for x in (bp, bq, ap, aq)]
        rows.append(tuple(pad))  # type: ignore[arg-type]
        want.append(flow.book_imbalance(book, 6))
        want_w.append(flow.book_imbalance(book, 6, w, 2.5))
    cols = [np.ascontiguousarray(np.stack([r[k] for r in rows])) for k in range(4)]
    np.testing.assert_array_equal(flow.book_imbalance_batch(*cols, depth=6), want)
    np.testing.assert_array_equal(flow.book_imbalance_batch(*cols, 6, w, 2.5), want_w)


def test_microprice_and_mid_batch(capture: Capture) -> None:
    bp, bq, ap, aq = capture.tick
    got = flow.microprice_batch(bp, bq, ap, aq)
    want = (bp * aq.astype(float) + ap * bq.astype(float)) / (aq + bq)
    assert_close(got, want, rel=1e-15)
    np.testing.assert_array_equal(flow.mid_batch(bp, bq, ap, aq), (bp + ap) / 2)
    z = np.zeros(1, dtype=np.int64)
    one = np.ones(1, dtype=np.int64)
    assert math.isnan(flow.microprice_batch(one, z, one, one)[0])
    assert math.isnan(flow.mid_batch(one, one, one, z)[0])


# ---------------------------------------------------------------- grid sampler


def ref_sample(t: I64, v: F64, interval: int, origin: int) -> tuple[I64, F64]:
    g0 = origin + -((origin - int(t[0])) // interval) * interval  # ceil to the grid
    grid = np.arange(g0, int(t[-1]) + 1, interval, dtype=np.int64)
    idx = np.searchsorted(t, grid, side="right") - 1
    return grid, v[idx]


@pytest.mark.parametrize(("interval", "origin"), [(SEC, 0), (100_000_000, 0), (SEC, 12_345)])
def test_sample_last_equals_reference_on_capture(
    capture: Capture, interval: int, origin: int
) -> None:
    t = capture.tick_t
    micro = flow.microprice_batch(*capture.tick)
    gt, gv = flow.sample_last(t, micro, interval, origin)
    wt, wv = ref_sample(t, micro, interval, origin)
    np.testing.assert_array_equal(gt, wt)
    np.testing.assert_array_equal(gv, wv)
    assert gt.size > 100 and np.all((gt - origin) % interval == 0)
    # pandas merge_asof agrees (last row at or before each grid time)
    left = pd.DataFrame({"g": gt})
    right = pd.DataFrame({"g": t, "v": micro})
    m = pd.merge_asof(left, right, on="g", direction="backward", allow_exact_matches=True)
    np.testing.assert_array_equal(m["v"].to_numpy(), gv)


def test_grid_sampler_streaming_equals_batch() -> None:
    t, px, _, _ = random_trades(9, 50_000)
    interval = 200_000_000
    gt, gv = flow.sample_last(t, px, interval)
    s = flow.GridSampler(interval, capacity=1 << 20)
    emitted = 0
    for i in range(0, t.size, 3):
        emitted += s.update_batch(t[i : i + 3], px[i : i + 3])
    emitted += s.advance(int(t[-1]) + 1)
    st_t, st_v = s.drain()
    assert emitted == st_t.size == gt.size and s.pending == 0
    np.testing.assert_array_equal(st_t, gt)
    np.testing.assert_array_equal(st_v, gv)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.sampled_from([0, 0, 1, 3, 7, 10, 25, 100]), min_size=1, max_size=80),
    interval=st.integers(1, 30),
    origin=st.integers(-50, 50),
)
def test_sampler_property_one_by_one_batch_and_reference(
    steps: list[int], interval: int, origin: int
) -> None:
    t = (1000 + np.cumsum(steps)).astype(np.int64)
    v = np.arange(t.size, dtype=np.float64)
    gt, gv = flow.sample_last(t, v, interval, origin)
    wt, wv = ref_sample(t, v, interval, origin)
    np.testing.assert_array_equal(gt, wt)
    np.testing.assert_array_equal(gv, wv)
    one = flow.GridSampler(interval, origin, capacity=10_000)
    for a, b in zip(t.tolist(), v.tolist(), strict=True):
        one.update(a, b)
    one.advance(int(t[-1]) + 1)
    many = flow.GridSampler(interval, origin, capacity=10_000)
    many.update_batch(t, v)  # gallops over runs of events between grid times
    many.advance(int(t[-1]) + 1)
    for s in (one, many):
        st_t, st_v = s.drain()
        np.testing.assert_array_equal(st_t, gt)
        np.testing.assert_array_equal(st_v, gv)


@settings(max_examples=150, deadline=None)
@given(
    trades=st.lists(
        st.tuples(st.integers(0, 20), st.floats(1.0, 10.0), st.floats(0.0, 3.0)),
        min_size=1,
        max_size=60,
    ),
    kind=st.sampled_from(["volume", "notional", "time"]),
    step=st.floats(0.5, 40.0),
)
def test_bars_property_vs_python(
    trades: list[tuple[int, float, float]], kind: str, step: float
) -> None:
    t = np.cumsum([x[0] for x in trades]).astype(np.int64)
    px = np.array([x[1] for x in trades])
    sz = np.array([x[2] for x in trades])
    if kind == "time":
        step = float(max(1, int(step)))
        key = t // int(step)
        spans = [
            (int(np.flatnonzero(key == k)[0]), int(np.flatnonzero(key == k)[-1]))
            for k in np.unique(key)
        ]
    else:
        spans = py_threshold_bars(px, sz, step, kind == "notional")
    got = flow.bars(t, px, sz, kind, step)
    assert [(int(b["first_ns"]), int(b["last_ns"])) for b in got] == [
        (int(t[i]), int(t[j])) for i, j in spans
    ]
    assert got["count"].tolist() == [j - i + 1 for i, j in spans]
    b = flow.BarBuilder(kind, step)
    for a, p, q in zip(t.tolist(), px.tolist(), sz.tolist(), strict=True):
        b.update(a, p, q)
    b.flush()
    assert_same_records(b.drain(), got)


def test_grid_sampler_edges_and_overflow() -> None:
    s = flow.GridSampler(10, capacity=3)
    assert s.update(5, 1.0) == 0  # grid starts at 10
    assert s.update(10, 2.0) == 0  # g=10 not final yet (more events at 10 may come)
    assert s.update(10, 3.0) == 0
    assert s.update(11, 4.0) == 1  # g=10 -> 3.0
    assert s.update(55, 5.0) == 2  # g=20, 30 fit; 40, 50 overflow
    assert s.overflow == 2
    t, v = s.drain()
    np.testing.assert_array_equal(t, [10, 20, 30])
    np.testing.assert_array_equal(v, [3.0, 4.0, 4.0])
    assert s.advance(61) == 1
    np.testing.assert_array_equal(s.drain()[1], [5.0])
    book = OrderBook()
    book.apply(BID, 100, 1)
    book.apply(ASK, 102, 3)
    g = flow.GridSampler(5)
    g.update_book(book, 0, "mid")
    g.update_book(book, 6, "microprice")
    g.advance(11)
    np.testing.assert_array_equal(g.drain()[1], [101.0, 101.0, book.microprice()])  # g = 0, 5, 10


# ---------------------------------------------------------------- bars


def pandas_time_bars(
    t: I64, px: F64, sz: F64, side: npt.NDArray[np.int8], dt: int, origin: int
) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "t": t,
            "px": px,
            "sz": sz,
            "n": px * sz,
            "buy": np.where(side > 0, sz, 0.0),
            "sell": np.where(side < 0, sz, 0.0),
        }
    )
    key = (df["t"] - origin) // dt
    g = df.groupby(key, sort=True)
    out = pd.DataFrame(
        {
            "start_ns": g.size().index.to_numpy() * dt + origin,
            "first_ns": g["t"].first().to_numpy(),
            "last_ns": g["t"].last().to_numpy(),
            "count": g.size().to_numpy(),
            "open": g["px"].first().to_numpy(),
            "high": g["px"].max().to_numpy(),
            "low": g["px"].min().to_numpy(),
            "close": g["px"].last().to_numpy(),
            "volume": g["sz"].sum().to_numpy(),
            "notional": g["n"].sum().to_numpy(),
            "buy_volume": g["buy"].sum().to_numpy(),
            "sell_volume": g["sell"].sum().to_numpy(),
        }
    )
    out["vwap"] = out["notional"] / out["volume"]
    return out


def assert_same_records(got: npt.NDArray[np.void], want: npt.NDArray[np.void]) -> None:
    """Bitwise equality of structured arrays (NaN vwap of a zero-volume bar included)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), (got, want)


def assert_bars_equal(got: npt.NDArray[np.void], want: pd.DataFrame) -> None:
    assert got.dtype == flow.BAR_DTYPE
    assert len(got) == len(want)
    for f in ("start_ns", "first_ns", "last_ns", "count", "open", "high", "low", "close"):
        np.testing.assert_array_equal(got[f], want[f].to_numpy(), err_msg=f)
    for f in ("volume", "notional", "buy_volume", "sell_volume"):
        assert_close(
            got[f],
            want[f].to_numpy(),
            scale=want["notional" if f == "notional" else "volume"].to_numpy(),
        )
    assert_close(got["vwap"], want["vwap"].to_numpy())


@pytest.mark.parametrize(("dt", "origin"), [(SEC, 0), (60 * SEC, 0), (SEC, 300_000_000)])
def test_time_bars_equal_pandas_groupby(dt: int, origin: int) -> None:
    t, px, sz, side = random_trades(11, 100_000)
    got = flow.bars(t, px, sz, "time", dt, side=side, origin=origin)
    assert_bars_equal(got, pandas_time_bars(t, px, sz, side, dt, origin))
    # pandas resample (epoch-aligned) gives the same OHLC for the non-empty buckets
    if origin == 0:
        s = pd.Series(px, index=pd.DatetimeIndex(t))
        ohlc = s.resample(pd.Timedelta(dt, "ns"), origin="epoch").ohlc().dropna()
        np.testing.assert_array_equal(got["open"], ohlc["open"].to_numpy())
        np.testing.assert_array_equal(got["close"], ohlc["close"].to_numpy())


def test_time_bars_on_capture_records(capture: Capture) -> None:
    r = capture.records
    got = flow.bars_trades(r, "time", SEC, clock="recv")
    want = pandas_time_bars(
        capture.trade_t, capture.trade_px, capture.trade_sz, capture.trade_side, SEC, 0
    )
    assert len(got) > 100
    assert_bars_equal(got, want)


def test_bars_from_records_equal_float_api_and_builder(capture: Capture) -> None:
    r = capture.records
    px = r["price"] / 10.0 ** r["price_scale"].astype(np.float64)
    sz = r["size"] / 10.0 ** r["size_scale"].astype(np.float64)
    t = np.ascontiguousarray(r["exch_ns"])
    side = np.ascontiguousarray(r["side"])
    # tiny volume bars: > 1024 bars, so the output grows while records are converted in
    # chunks (a chunk is left half-way and resumed)
    for kind, step in (("volume", 0.05), ("notional", 500.0), ("time", 100_000_000)):
        want = flow.bars(t, px, sz, kind, step, side=side)
        got = flow.bars_trades(r, kind, step)
        assert len(got) > (1024 if kind == "volume" else 100)
        assert_same_records(got, want)
        b = flow.BarBuilder(kind, step, capacity=len(want))
        b.update_trades(r[:1000])
        b.update_trades(r[1000:])
        b.flush()
        assert_same_records(b.drain(), want)
    v = flow.RollingVWAP(SEC, "time")
    parts = np.concatenate([v.update_trades(r[:777]), v.update_trades(r[777:])])
    np.testing.assert_array_equal(parts, flow.rolling_vwap(t, px, sz, SEC, "time"))
    tf = flow.TradeFlow(300)
    s1, i1 = tf.update_trades(r[:5000])
    s2, i2 = tf.update_trades(r[5000:])
    ws, wi = flow.trade_flow(t, sz, side, 300)
    np.testing.assert_array_equal(np.concatenate([s1, s2]), ws)
    np.testing.assert_array_equal(np.concatenate([i1, i2]), wi)


def py_threshold_bars(px: F64, sz: F64, thr: float, notional: bool) -> list[tuple[int, int]]:
    """(first index, last index) of each bar: close at the first trade reaching ``thr``."""
    out, start, cum = [], 0, 0.0
    for i in range(len(px)):
        cum += px[i] * sz[i] if notional else sz[i]
        if cum >= thr:
            out.append((start, i))
            start, cum = i + 1, 0.0
    if start < len(px):
        out.append((start, len(px) - 1))
    return out


@pytest.mark.parametrize(
    ("kind", "thr"), [("volume", 5.0), ("volume", 0.01), ("notional", 20_000.0)]
)
def test_volume_and_notional_bars_equal_python(kind: str, thr: float) -> None:
    t, px, sz, side = random_trades(12, 50_000)
    got = flow.bars(t, px, sz, kind, thr, side=side)
    spans = py_threshold_bars(px, sz, thr, kind == "notional")
    assert len(got) == len(spans) > 10
    for b, (i, j) in zip(got, spans, strict=True):
        assert (b["first_ns"], b["last_ns"], b["count"]) == (t[i], t[j], j - i + 1)
        assert (b["open"], b["close"]) == (px[i], px[j])
        assert (b["high"], b["low"]) == (px[i : j + 1].max(), px[i : j + 1].min())
        assert b["volume"] == pytest.approx(math.fsum(sz[i : j + 1]), rel=1e-12)
        assert b["start_ns"] == b["first_ns"]
    # every bar but the last reaches the threshold, and would not without its last trade
    key = "notional" if kind == "notional" else "volume"
    last_add = (
        px[[j for _, j in spans]] * sz[[j for _, j in spans]]
        if kind == "notional"
        else sz[[j for _, j in spans]]
    )
    assert np.all(got[key][:-1] >= thr)
    assert np.all(got[key][:-1] - last_add[:-1] < thr * (1 + 1e-12))
    assert got["count"].sum() == t.size
    partial = flow.bars(t, px, sz, kind, thr, side=side, include_partial=False)
    assert len(partial) == len(got) - (1 if got[key][-1] < thr else 0)


def test_bar_builder_streaming_equals_batch() -> None:
    t, px, sz, side = random_trades(13, 30_000)
    for kind, step in (("time", SEC), ("volume", 3.0), ("notional", 9_000.0)):
        want = flow.bars(t, px, sz, kind, step, side=side)
        b = flow.BarBuilder(kind, step, capacity=1 << 16)
        done = 0
        for i in range(0, 3000):
            done += b.update(int(t[i]), float(px[i]), float(sz[i]), int(side[i]))
        done += b.update_batch(t[3000:], px[3000:], sz[3000:], side[3000:])
        got_closed = b.drain()
        assert done == len(got_closed) and b.is_open
        assert b.flush() == 1 and not b.is_open
        got = np.concatenate([got_closed, b.drain()])
        assert_same_records(got, want)
    r = flow.BarBuilder("time", 10, capacity=1)
    r.update(0, 1.0, 1.0)
    r.update(10, 2.0, 1.0)
    r.update(20, 3.0, 1.0)  # second completed bar does not fit
    assert r.overflow == 1 and r.pending == 1
    assert r.advance(29) == 0 and r.advance(30) == 1 and r.overflow == 2


def test_volume_bar_closes_at_the_trade_reaching_the_threshold() -> None:
    t = np.arange(6, dtype=np.int64)
    sz = np.array([1.0, 2.0, 3.0, 0.5, 5.0, 1.0])
    got = flow.bars(t, np.full(6, 10.0), sz, "volume", 3.0)
    # 1 + 2 = 3 reaches 3 exactly: closes; 3 alone; 0.5 + 5 (no split); 1 left (partial)
    assert got["count"].tolist() == [2, 1, 2, 1]
    assert got["volume"].tolist() == [3.0, 3.0, 5.5, 1.0]
    assert len(flow.bars(t, np.full(6, 10.0), sz, "volume", 3.0, include_partial=False)) == 3
    n = flow.bars(t, np.full(6, 10.0), sz, "notional", 30.0)
    assert n["count"].tolist() == [2, 1, 2, 1]


def test_bars_handle_empty_input_and_gaps() -> None:
    e64, ef = np.empty(0, np.int64), np.empty(0)
    assert len(flow.bars(e64, ef, ef, "time", 10)) == 0
    t = np.array([-15, -5, 0, 1000], dtype=np.int64)  # negative times floor correctly
    got = flow.bars(t, np.ones(4), np.ones(4), "time", 10)
    np.testing.assert_array_equal(got["start_ns"], [-20, -10, 0, 1000])


# ---------------------------------------------------------------- replay kernel


def test_replay_signals_matches_python_loop(capture: Capture) -> None:
    levels = [(ns, s, p, q) for ns, lv in capture.diffs[:800] for s, p, q in lv]
    a = np.array(levels, dtype=np.int64)
    t, side, price, size = a[:, 0].copy(), a[:, 1].astype(np.int8), a[:, 2].copy(), a[:, 3].copy()
    ofi = flow.OrderFlowImbalance(50)
    mp, im, of = flow.replay_signals(snapshot_book(capture), t, side, price, size, ofi)
    book = snapshot_book(capture)
    ofi2 = flow.OrderFlowImbalance(50)
    for i in range(t.size):
        book.apply(int(side[i]), int(price[i]), int(size[i]))
        assert mp[i] == book.microprice()
        assert im[i] == flow.book_imbalance(book, 10)
        o = ofi2.update_book(book, int(t[i]))
        assert o == of[i] or (math.isnan(o) and math.isnan(of[i]))
    assert ofi.value == ofi2.value
    with pytest.raises(ValueError, match="update 0 rejected"):
        flow.replay_signals(book, t[-1:], np.array([2], np.int8), price[:1], size[:1], ofi)


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors() -> None:
    t = np.arange(5, dtype=np.int64)
    x = np.ones(5)
    with pytest.raises(TypeError, match=r"t must be a numpy\.ndarray"):
        flow.rolling_vwap([0, 1], x, x, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="price must have dtype float64, was int64"):
        flow.rolling_vwap(t, t, x, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size has length 4, expected 5"):
        flow.rolling_vwap(t, x, x[:4], 3)
    with pytest.raises(ValueError, match="C-contiguous"):
        flow.rolling_vwap(t, np.ones(10)[::2], x, 3)
    with pytest.raises(ValueError, match="1-D"):
        flow.rolling_vwap(t, x, np.ones((5, 1)), 3)
    with pytest.raises(ValueError, match=r"t\[3\] = 1 < t\[2\] = 2"):
        flow.rolling_vwap(np.array([0, 1, 2, 1, 5], np.int64), x, x, 3)
    with pytest.raises(ValueError, match="window must be > 0, was 0"):
        flow.rolling_vwap(t, x, x, 0)
    with pytest.raises(ValueError, match="kind must be"):
        flow.TradeFlow(3, "ticks")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="side must have dtype int8"):
        flow.trade_flow(t, x, t, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bid_size must have dtype int64"):
        flow.order_flow_imbalance(t, t, x, t, t, 3)  # type: ignore[arg-type]
    v = flow.RollingVWAP(3, "time")
    v.update(10, 1.0, 1.0)
    with pytest.raises(ValueError, match="before the last time 10"):
        v.update(9, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"t\[0\] = 0 is before the state's last time 10"):
        v.update_batch(t, x, x)
    with pytest.raises(ValueError, match="step must be > 0"):
        flow.bars(t, x, x, "volume", 0.0)
    with pytest.raises(ValueError, match="whole number"):
        flow.bars(t, x, x, "time", 1.5)
    with pytest.raises(ValueError, match="kind must be 'time'"):
        flow.BarBuilder("tick", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval must be > 0"):
        flow.sample_last(t, x, 0)
    with pytest.raises(ValueError, match="capacity must be > 0"):
        flow.GridSampler(10, capacity=0)
    book = OrderBook()
    with pytest.raises(ValueError, match="depth must be > 0"):
        flow.book_imbalance(book, 0)
    with pytest.raises(ValueError, match="weights has length 2, needs >= depth = 3"):
        flow.book_imbalance(book, 3, np.ones(2))
    with pytest.raises(ValueError, match="tau must be >= 0"):
        flow.book_imbalance(book, 3, None, float("nan"))
    with pytest.raises(ValueError, match=r"shape \(2, 3\), expected \(2, 4\)"):
        z = np.zeros((2, 4), np.int64)
        flow.book_imbalance_batch(z, z, np.zeros((2, 3), np.int64), z)
    with pytest.raises(TypeError):
        flow.book_imbalance(None)  # type: ignore[arg-type]


def test_non_finite_and_negative_values_raise() -> None:
    t = np.arange(3, dtype=np.int64)
    x = np.ones(3)
    with pytest.raises(ValueError, match=r"price must be finite: price\[1\] = nan"):
        flow.rolling_vwap(t, np.array([1.0, np.nan, 1.0]), x, 2)
    with pytest.raises(ValueError, match=r"size must be finite and >= 0: size\[2\] = -1.0"):
        flow.trade_flow(t, np.array([1.0, 1.0, -1.0]), np.ones(3, np.int8), 2)
    with pytest.raises(ValueError, match=r"size must be finite and >= 0: size\[0\] = inf"):
        flow.bars(t, x, np.array([np.inf, 1, 1]), "volume", 1.0)
    with pytest.raises(ValueError, match=r"size must be finite and >= 0, was -2\.0"):
        flow.RollingVWAP(2).update(0, 1.0, -2.0)
    with pytest.raises(ValueError, match=r"ask_size must be >= 0: ask_size\[1\] = -5"):
        flow.order_flow_imbalance(t, t, t, t, np.array([1, -5, 1], np.int64), 2)
    with pytest.raises(ValueError, match="sizes must be >= 0"):
        flow.OrderFlowImbalance(2).update(0, 1, -1, 2, 1)


def test_bad_trade_records_raise() -> None:
    r = np.zeros(3, dtype=TRADE_DTYPE)
    r["exch_ns"] = [0, 2, 1]
    with pytest.raises(
        ValueError, match=r"trades\[2\]\['exch_ns'\] = 1 < trades\[1\]\['exch_ns'\] = 2"
    ):
        flow.rolling_vwap_trades(r, 2)
    flow.rolling_vwap_trades(r, 2, clock="recv")  # recv_ns all 0: fine
    with pytest.raises(ValueError, match="clock must be"):
        flow.rolling_vwap_trades(r, 2, clock="local")  # type: ignore[arg-type]
    r["exch_ns"] = 0
    r["inst"] = [0, 0, 1]
    with pytest.raises(ValueError, match="mix instruments"):
        flow.trade_flow_trades(r, 2)
    r["inst"] = 0
    r["price_scale"][1] = 19
    with pytest.raises(ValueError, match=r"trades\[1\] has scales \(19, 0\)"):
        flow.bars_trades(r, "volume", 1.0)
    with pytest.raises(TypeError, match="TRADE_DTYPE"):
        flow.rolling_vwap_trades(np.zeros(3), 2)
    with pytest.raises(ValueError, match="C-contiguous"):
        flow.rolling_vwap_trades(np.zeros(6, dtype=TRADE_DTYPE)[::2], 2)
