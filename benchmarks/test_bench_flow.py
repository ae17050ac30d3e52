"""Benchmarks of ext.flow (microstructure indicators and samplers).

Every group pairs Slipstream's compiled path (``..._ext``) with a reference measured in the
same run (``..._reference_...``: pandas, numpy or a pure-Python implementation of the same
definition). ``extra_info`` holds ``ns_per_op`` (min time / operations) and, for batches,
``m_events_per_s``.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_flow.py --benchmark-only
-p no:cacheprovider``.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from ext import flow
from ext.book import ASK, BID, OrderBook
from ext.scaled import to_scaled

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "fixtures"
CAPTURE = FIXTURES / "hftbacktest" / "spot" / "ethusdt_20240808.gz"
SEC = 1_000_000_000
N = 1_000_000
INNER = 1_000  # calls per timed round for per-call benchmarks
WINDOW_NS = SEC


def record(benchmark: Any, ops: int, events: bool = False) -> None:
    mn = benchmark.stats.stats.min
    benchmark.extra_info["ops_per_call"] = ops
    benchmark.extra_info["ns_per_op"] = round(mn / ops * 1e9, 2)
    benchmark.extra_info["ns_per_op_mean"] = round(benchmark.stats.stats.mean / ops * 1e9, 2)
    if events:
        benchmark.extra_info["m_events_per_s"] = round(ops / mn / 1e6, 2)
    benchmark.extra_info["machine"] = f"{platform.machine()} {os.cpu_count()} cpu"


# ---------------------------------------------------------------- data


class Trades:
    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.t = (1_700_000_000 * SEC + np.cumsum(rng.integers(0, 2_000_000, n))).astype(np.int64)
        self.px = 2000.0 + np.cumsum(rng.normal(0.0, 0.05, n))
        self.sz = rng.lognormal(-2.0, 1.5, n)
        self.side = rng.choice(np.array([-1, 1], dtype=np.int8), size=n)
        self.tops = self._tops(rng, n)

    @staticmethod
    def _tops(rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.int64], ...]:
        mid = 200_000 + np.cumsum(rng.choice([-1, 0, 0, 0, 1], size=n))
        bp = mid.astype(np.int64)
        ap = bp + rng.choice([1, 1, 2], size=n)
        bq = rng.integers(1, 100_000, n).astype(np.int64)
        aq = rng.integers(1, 100_000, n).astype(np.int64)
        return bp, bq, ap.astype(np.int64), aq


@pytest.fixture(scope="module")
def trades() -> Trades:
    return Trades(N)


class Stream:
    """ETHUSDT snapshot and depth diffs as arrays, one time per level update."""

    def __init__(self) -> None:
        snap = None
        rows: list[tuple[int, int, int, int]] = []
        with gzip.open(CAPTURE, "rt") as fh:
            for line in fh:
                ns, payload = line.split(" ", 1)
                msg = json.loads(payload)
                if "lastUpdateId" in msg:
                    snap = msg
                    continue
                if snap is None or not msg["stream"].endswith("@depth@100ms"):
                    continue
                d = msg["data"]
                if d["u"] <= snap["lastUpdateId"]:
                    continue
                for side, key in ((BID, "b"), (ASK, "a")):
                    for p, q in d[key]:
                        rows.append((int(ns), side, to_scaled(p, 2), to_scaled(q, 8)))
        assert snap is not None
        self.snap = {
            k: np.array([(to_scaled(p, 2), to_scaled(q, 8)) for p, q in snap[k]], np.int64)
            for k in ("bids", "asks")
        }
        a = np.array(rows, dtype=np.int64)
        self.t = a[:, 0].copy()
        self.side = a[:, 1].astype(np.int8)
        self.price = a[:, 2].copy()
        self.size = a[:, 3].copy()
        self.n = len(rows)

    def book(self) -> OrderBook:
        b = OrderBook(2, 8)
        bids, asks = self.snap["bids"], self.snap["asks"]
        b.load_snapshot(bids[:, 0].copy(), bids[:, 1].copy(), asks[:, 0].copy(), asks[:, 1].copy())
        return b

    def final_book(self) -> OrderBook:
        b = self.book()
        b.apply_batch(self.side, self.price, self.size)
        return b


@pytest.fixture(scope="module")
def stream() -> Stream:
    return Stream()


# ---------------------------------------------------------------- pure-Python references


class PyRollingVWAP:
    """Time-window VWAP with a deque and running sums: the obvious Python implementation."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.q: deque[tuple[int, float, float]] = deque()
        self.num = 0.0
        self.den = 0.0

    def update(self, t: int, px: float, sz: float) -> float:
        q = self.q
        while q and q[0][0] <= t - self.window:
            _, n, d = q.popleft()
            self.num -= n
            self.den -= d
        q.append((t, px * sz, sz))
        self.num += px * sz
        self.den += sz
        return self.num / self.den if self.den > 0 else float("nan")


class PyOFI:
    def __init__(self, window: int) -> None:
        self.q: deque[float] = deque()
        self.window = window
        self.total = 0.0
        self.prev: tuple[int, int, int, int] | None = None

    def update(self, bp: int, bq: int, ap: int, aq: int) -> float:
        if self.prev is not None:
            pbp, pbq, pap, paq = self.prev
            e = (bq if bp >= pbp else 0) - (pbq if bp <= pbp else 0)
            e += (paq if ap >= pap else 0) - (aq if ap <= pap else 0)
            self.q.append(e)
            self.total += e
            if len(self.q) > self.window:
                self.total -= self.q.popleft()
        self.prev = (bp, bq, ap, aq)
        return self.total


def py_book_imbalance(book: OrderBook, depth: int) -> float:
    b = float(book.top_copy(BID, depth)[1].sum())
    a = float(book.top_copy(ASK, depth)[1].sum())
    return (b - a) / (b + a)


# ---------------------------------------------------------------- streaming, per call


def test_vwap_update_per_call_ext(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: rolling VWAP update, one Python call each (1 s window)"
    t, px, sz = trades.t[:INNER].tolist(), trades.px[:INNER].tolist(), trades.sz[:INNER].tolist()

    def run() -> None:
        v = flow.RollingVWAP(WINDOW_NS, "time")
        upd = v.update
        for i in range(INNER):
            upd(t[i], px[i], sz[i])

    benchmark(run)
    record(benchmark, INNER)


def test_vwap_update_per_call_reference_python(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: rolling VWAP update, one Python call each (1 s window)"
    t, px, sz = trades.t[:INNER].tolist(), trades.px[:INNER].tolist(), trades.sz[:INNER].tolist()

    def run() -> None:
        v = PyRollingVWAP(WINDOW_NS)
        upd = v.update
        for i in range(INNER):
            upd(t[i], px[i], sz[i])

    benchmark(run)
    record(benchmark, INNER)


# ---------------------------------------------------------------- batches of 1 M events


def test_vwap_batch_ext(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: rolling VWAP batch, 1 M trades (1 s window)"
    out = benchmark(flow.rolling_vwap, trades.t, trades.px, trades.sz, WINDOW_NS, "time")
    assert np.isfinite(out[-1])
    record(benchmark, N, events=True)


def test_vwap_batch_reference_pandas(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: rolling VWAP batch, 1 M trades (1 s window)"
    idx = pd.DatetimeIndex(trades.t)

    def run() -> npt.NDArray[np.float64]:
        w = pd.Timedelta(WINDOW_NS, "ns")
        num = pd.Series(trades.px * trades.sz, index=idx).rolling(w).sum()
        den = pd.Series(trades.sz, index=idx).rolling(w).sum()
        return (num / den).to_numpy()

    benchmark.pedantic(run, rounds=5, iterations=1)
    record(benchmark, N, events=True)


def test_vwap_count_batch_ext(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: rolling VWAP batch, 1 M trades (100-trade window)"
    benchmark(flow.rolling_vwap, trades.t, trades.px, trades.sz, 100)
    record(benchmark, N, events=True)


def test_vwap_count_batch_reference_pandas(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: rolling VWAP batch, 1 M trades (100-trade window)"

    def run() -> Any:
        num = pd.Series(trades.px * trades.sz).rolling(100).sum()
        return (num / pd.Series(trades.sz).rolling(100).sum()).to_numpy()

    benchmark.pedantic(run, rounds=5, iterations=1)
    record(benchmark, N, events=True)


def test_trade_flow_batch_ext(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: trade-flow imbalance batch, 1 M trades (1 s window)"
    benchmark(flow.trade_flow, trades.t, trades.sz, trades.side, WINDOW_NS, "time")
    record(benchmark, N, events=True)


def test_trade_flow_batch_reference_pandas(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: trade-flow imbalance batch, 1 M trades (1 s window)"
    idx = pd.DatetimeIndex(trades.t)

    def run() -> Any:
        w = pd.Timedelta(WINDOW_NS, "ns")
        buy = pd.Series(np.where(trades.side > 0, trades.sz, 0.0), index=idx).rolling(w).sum()
        sell = pd.Series(np.where(trades.side < 0, trades.sz, 0.0), index=idx).rolling(w).sum()
        return (buy - sell).to_numpy(), ((buy - sell) / (buy + sell)).to_numpy()

    benchmark.pedantic(run, rounds=5, iterations=1)
    record(benchmark, N, events=True)


def test_ofi_batch_ext(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: OFI batch, 1 M best bid/ask observations (100 window)"
    benchmark(flow.order_flow_imbalance, trades.t, *trades.tops, 100)
    record(benchmark, N, events=True)


def test_ofi_batch_reference_numpy_pandas(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: OFI batch, 1 M best bid/ask observations (100 window)"
    bp, bq, ap, aq = trades.tops

    def run() -> Any:
        e = np.zeros(N)
        e[1:] = (
            np.where(bp[1:] >= bp[:-1], bq[1:], 0)
            - np.where(bp[1:] <= bp[:-1], bq[:-1], 0)
            - np.where(ap[1:] <= ap[:-1], aq[1:], 0)
            + np.where(ap[1:] >= ap[:-1], aq[:-1], 0)
        )
        return pd.Series(e).rolling(100).sum().to_numpy()

    benchmark.pedantic(run, rounds=5, iterations=1)
    record(benchmark, N, events=True)


def test_sample_last_ext(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: microprice sampled every 100 ms, 1 M observations"
    micro = flow.microprice_batch(*trades.tops)
    benchmark(flow.sample_last, trades.t, micro, 100_000_000)
    record(benchmark, N, events=True)


def test_sample_last_reference_numpy(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: microprice sampled every 100 ms, 1 M observations"
    micro = flow.microprice_batch(*trades.tops)
    step = 100_000_000

    def run() -> Any:
        g0 = -(-int(trades.t[0]) // step) * step
        grid = np.arange(g0, int(trades.t[-1]) + 1, step, dtype=np.int64)
        return grid, micro[np.searchsorted(trades.t, grid, side="right") - 1]

    benchmark(run)
    record(benchmark, N, events=True)


def test_time_bars_ext(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: 1 s time bars from 1 M trades"
    out = benchmark(flow.bars, trades.t, trades.px, trades.sz, "time", SEC, trades.side)
    assert out["count"].sum() == N
    record(benchmark, N, events=True)


def test_time_bars_reference_pandas(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: 1 s time bars from 1 M trades"
    df = pd.DataFrame(
        {"px": trades.px, "sz": trades.sz, "n": trades.px * trades.sz},
        index=pd.DatetimeIndex(trades.t),
    )

    def run() -> Any:
        r = df.resample("1s")
        out = r["px"].ohlc()
        out["volume"] = r["sz"].sum()
        out["vwap"] = r["n"].sum() / out["volume"]
        out["count"] = r["px"].count()
        return out.dropna()

    benchmark.pedantic(run, rounds=5, iterations=1)
    record(benchmark, N, events=True)


def test_volume_bars_ext(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: volume bars (10 units) from 1 M trades"
    benchmark(flow.bars, trades.t, trades.px, trades.sz, "volume", 10.0, trades.side)
    record(benchmark, N, events=True)


def test_volume_bars_reference_python(benchmark: Any, trades: Trades) -> None:
    benchmark.group = "flow: volume bars (10 units) from 1 M trades"
    t, px, sz = trades.t.tolist(), trades.px.tolist(), trades.sz.tolist()

    def run() -> list[tuple[int, int, float, float, float, float, float]]:
        out = []
        vol = 0.0
        for i in range(len(t)):
            if vol == 0.0:
                first, o, h, lo, n = t[i], px[i], px[i], px[i], 0.0
            p = px[i]
            h = p if p > h else h
            lo = p if p < lo else lo
            vol += sz[i]
            n += p * sz[i]
            if vol >= 10.0:
                out.append((first, t[i], o, h, lo, p, n / vol))
                vol = 0.0
        return out

    benchmark.pedantic(run, rounds=2, iterations=1)
    record(benchmark, N, events=True)


# ---------------------------------------------------------------- book signals


def test_book_imbalance_top10_per_call_ext(benchmark: Any, stream: Stream) -> None:
    benchmark.group = "flow: top-10 book imbalance, one Python call each"
    book = stream.final_book()
    fn = flow.book_imbalance

    def run() -> None:
        for _ in range(INNER):
            fn(book, 10)

    benchmark(run)
    record(benchmark, INNER)


def test_book_imbalance_top10_per_call_reference_python(benchmark: Any, stream: Stream) -> None:
    benchmark.group = "flow: top-10 book imbalance, one Python call each"
    book = stream.final_book()

    def run() -> None:
        for _ in range(INNER):
            py_book_imbalance(book, 10)

    benchmark(run)
    record(benchmark, INNER)


def test_ofi_update_book_per_call_ext(benchmark: Any, stream: Stream) -> None:
    benchmark.group = "flow: OFI update from the book, one Python call each"
    book = stream.final_book()

    def run() -> None:
        o = flow.OrderFlowImbalance(100)
        upd = o.update_book
        for i in range(INNER):
            upd(book, i)

    benchmark(run)
    record(benchmark, INNER)


def test_ofi_update_book_per_call_reference_python(benchmark: Any, stream: Stream) -> None:
    benchmark.group = "flow: OFI update from the book, one Python call each"
    book = stream.final_book()

    def run() -> None:
        o = PyOFI(100)
        for _ in range(INNER):
            bp, bq = book.best_bid()
            ap, aq = book.best_ask()
            o.update(bp, bq, ap, aq)

    benchmark(run)
    record(benchmark, INNER)


def _replay_ext(stream: Stream) -> tuple[OrderBook, flow.OrderFlowImbalance]:
    return stream.book(), flow.OrderFlowImbalance(SEC, "time")


def test_replay_signals_ext(benchmark: Any, stream: Stream) -> None:
    """Book update + microprice + top-10 imbalance + OFI per level update, all in C.

    ``extra_info['signals_ns_per_update']`` subtracts the cost of the same updates through
    ``OrderBook.apply_batch`` (measured here, min of 15) from this benchmark's min.
    """
    benchmark.group = "flow: book replay with signals after every level update"

    def run(book: OrderBook, ofi: flow.OrderFlowImbalance) -> None:
        flow.replay_signals(book, stream.t, stream.side, stream.price, stream.size, ofi)

    benchmark.pedantic(run, setup=lambda: (_replay_ext(stream), {}), rounds=15)
    record(benchmark, stream.n, events=True)
    best = float("inf")
    for _ in range(15):
        b = stream.book()
        t0 = time.perf_counter()
        b.apply_batch(stream.side, stream.price, stream.size)
        best = min(best, time.perf_counter() - t0)
    benchmark.extra_info["apply_only_ns_per_update"] = round(best / stream.n * 1e9, 2)
    benchmark.extra_info["signals_ns_per_update"] = round(
        (benchmark.stats.stats.min - best) / stream.n * 1e9, 2
    )


def test_replay_signals_reference_python(benchmark: Any, stream: Stream) -> None:
    benchmark.group = "flow: book replay with signals after every level update"
    sides, prices, sizes = stream.side.tolist(), stream.price.tolist(), stream.size.tolist()

    def run(book: OrderBook, ofi: PyOFI) -> None:
        for i in range(stream.n):
            book.apply(sides[i], prices[i], sizes[i])
            book.microprice()
            py_book_imbalance(book, 10)
            bp, bq = book.best_bid()
            ap, aq = book.best_ask()
            ofi.update(bp, bq, ap, aq)

    benchmark.pedantic(run, setup=lambda: ((stream.book(), PyOFI(100)), {}), rounds=2)
    record(benchmark, stream.n, events=True)
