"""Benchmarks of ext.book.OrderBook on a real Binance ETHUSDT depth stream.

Every operation is measured for the compiled book and, in the same run, for baselines:
a pure-Python book over ``sortedcontainers.SortedDict`` and (if installed) the C-extension
``order-book`` package from PyPI. ``extra_info["ns_per_op"]`` holds the cost of one unit
of work (one level update, one query).

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_book.py --benchmark-only
-p no:cacheprovider``.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from sortedcontainers import SortedDict

from ext.book import ASK, BID, OrderBook
from ext.scaled import to_scaled

try:
    import order_book as peer
except ImportError:  # optional peer baseline
    peer = None

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "fixtures"
CAPTURE = FIXTURES / "hftbacktest" / "spot" / "ethusdt_20240808.gz"
PRICE_SCALE = 2
SIZE_SCALE = 8


IMPLS = ["slipstream", "sortedcontainers", *(["order-book"] if peer is not None else [])]


class Stream:
    """The decoded capture: REST snapshot plus every level update after it, in order."""

    def __init__(self, path: Path) -> None:
        snap = None
        sides: list[int] = []
        prices: list[int] = []
        sizes: list[int] = []
        with gzip.open(path, "rt") as fh:
            for line in fh:
                msg = json.loads(line.split(" ", 1)[1])
                if "lastUpdateId" in msg:
                    snap = msg
                    continue
                if snap is None or not msg.get("stream", "").endswith("@depth@100ms"):
                    continue
                data = msg["data"]
                if data["u"] <= snap["lastUpdateId"]:
                    continue
                for side, key in ((BID, "b"), (ASK, "a")):
                    for p, q in data[key]:
                        sides.append(side)
                        prices.append(to_scaled(p, PRICE_SCALE))
                        sizes.append(to_scaled(q, SIZE_SCALE))
        assert snap is not None
        self.snap_bids = [
            (to_scaled(p, PRICE_SCALE), to_scaled(q, SIZE_SCALE)) for p, q in snap["bids"]
        ]
        self.snap_asks = [
            (to_scaled(p, PRICE_SCALE), to_scaled(q, SIZE_SCALE)) for p, q in snap["asks"]
        ]
        self.sides = np.asarray(sides, dtype=np.int8)
        self.prices = np.asarray(prices, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.triples = list(zip(sides, prices, sizes, strict=True))
        self.n = len(sides)


class SortedBook:
    """Baseline: the usual pure-Python L2 book, one SortedDict per side."""

    def __init__(self) -> None:
        self.bids = SortedDict()
        self.asks = SortedDict()

    def load(self, bids, asks) -> None:
        self.bids = SortedDict(bids)
        self.asks = SortedDict(asks)

    def apply(self, side, price, size) -> None:
        d = self.asks if side else self.bids
        if size:
            d[price] = size
        else:
            d.pop(price, None)

    def best_bid(self):
        return self.bids.peekitem(-1)

    def top(self, side, n):
        d = self.asks if side else self.bids
        keys = d.keys()
        sel = keys[:n] if side else keys[: -n - 1 : -1]
        return [(k, d[k]) for k in sel]

    def fill(self, side, qty):
        d = self.asks if side else self.bids
        keys = d.keys() if side else reversed(d.keys())
        left = qty
        notional = 0
        for k in keys:
            take = min(d[k], left)
            notional += k * take
            left -= take
            if not left:
                break
        return notional / (qty - left), qty - left


class PeerBook:
    """Baseline: ``order_book.OrderBook`` (C extension from PyPI) with int keys."""

    def __init__(self) -> None:
        self.ob = peer.OrderBook(max_depth=0)

    def load(self, bids, asks) -> None:
        self.ob = peer.OrderBook(max_depth=0)
        for p, q in bids:
            self.ob.bids[p] = q
        for p, q in asks:
            self.ob.asks[p] = q

    def apply(self, side, price, size) -> None:
        d = self.ob.asks if side else self.ob.bids
        if size:
            d[price] = size
        elif price in d:
            del d[price]

    def best_bid(self):
        return self.ob.bids.index(0)

    def top(self, side, n):
        d = self.ob.asks if side else self.ob.bids
        return [(k, d[k]) for k in islice(d, n)]

    def fill(self, side, qty):
        d = self.ob.asks if side else self.ob.bids
        left = qty
        notional = 0
        for k in d:
            take = min(d[k], left)
            notional += k * take
            left -= take
            if not left:
                break
        return notional / (qty - left), qty - left


@pytest.fixture(scope="module")
def stream() -> Stream:
    return Stream(CAPTURE)


def fresh(impl: str, stream: Stream):
    """A book of ``impl`` holding the snapshot (untimed setup)."""
    if impl == "slipstream":
        book = OrderBook(PRICE_SCALE, SIZE_SCALE)
        b = np.asarray(stream.snap_bids, dtype=np.int64)
        a = np.asarray(stream.snap_asks, dtype=np.int64)
        book.load_snapshot(b[:, 0].copy(), b[:, 1].copy(), a[:, 0].copy(), a[:, 1].copy())
        return book
    book = SortedBook() if impl == "sortedcontainers" else PeerBook()
    book.load(stream.snap_bids, stream.snap_asks)
    return book


def replayed(impl: str, stream: Stream):
    """A book after the whole stream (the state the query benchmarks run on)."""
    book = fresh(impl, stream)
    for s, p, q in stream.triples:
        book.apply(s, p, q)
    return book


def record(benchmark, ops: int, impl: str) -> None:
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["ops_per_call"] = ops
    benchmark.extra_info["ns_per_op"] = round(benchmark.stats.stats.mean / ops * 1e9, 2)
    benchmark.extra_info["machine"] = f"{platform.machine()} {os.cpu_count()} cpu"


@pytest.mark.parametrize("impl", IMPLS)
def test_bench_apply_batch(benchmark, stream, impl):
    """Whole stream in one call (compiled) vs the tightest Python loop (baselines)."""
    benchmark.group = "apply: batch (per level update)"
    if impl == "slipstream":

        def run(book):
            book.apply_batch(stream.sides, stream.prices, stream.sizes)

    else:

        def run(book):
            apply = book.apply
            for s, p, q in stream.triples:
                apply(s, p, q)

    benchmark.pedantic(
        run, setup=lambda: ((fresh(impl, stream),), {}), rounds=15 if impl == "slipstream" else 3
    )
    record(benchmark, stream.n, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_bench_apply_per_call(benchmark, stream, impl):
    """One Python call per level update (Python loop included)."""
    benchmark.group = "apply: one Python call each"

    def run(book):
        apply = book.apply
        for s, p, q in stream.triples:
            apply(s, p, q)

    benchmark.pedantic(run, setup=lambda: ((fresh(impl, stream),), {}), rounds=5)
    record(benchmark, stream.n, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_bench_apply_then_best(benchmark, stream, impl):
    """apply() followed by best_bid() per level update (Python loop included)."""
    benchmark.group = "apply + best_bid() each"

    def run(book):
        apply = book.apply
        best = book.best_bid
        for s, p, q in stream.triples:
            apply(s, p, q)
            best()

    benchmark.pedantic(run, setup=lambda: ((fresh(impl, stream),), {}), rounds=5)
    record(benchmark, stream.n, impl)


INNER = 100  # calls per timed unit for the sub-microsecond queries


def repeat(fn, *args):
    """``fn(*args)`` INNER times in a local loop (amortizes the harness's call overhead)."""
    calls = range(INNER)

    def run():
        for _ in calls:
            out = fn(*args)
        return out

    return run


@pytest.mark.parametrize("impl", IMPLS)
def test_bench_best(benchmark, stream, impl):
    benchmark.group = "best_bid()"
    book = replayed(impl, stream)
    benchmark(repeat(book.best_bid))
    record(benchmark, INNER, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_bench_top25(benchmark, stream, impl):
    benchmark.group = "top 25 levels"
    book = replayed(impl, stream)
    if impl == "slipstream":
        out_p = np.empty(25, dtype=np.int64)
        out_s = np.empty(25, dtype=np.int64)
        assert benchmark(repeat(book.top_into, ASK, out_p, out_s)) == 25
    else:
        assert len(benchmark(repeat(book.top, ASK, 25))) == 25
    record(benchmark, INNER, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_bench_fill_price_10_levels(benchmark, stream, impl):
    benchmark.group = "fill price over 10 levels"
    book = replayed(impl, stream)
    ref = replayed("sortedcontainers", stream)
    top10 = ref.top(ASK, 10)
    qty = sum(q for _, q in top10) - top10[-1][1] // 2  # ends inside the 10th level
    if impl == "slipstream":
        vwap, filled = benchmark(repeat(book.fill_price, ASK, qty))
    else:
        vwap, filled = benchmark(repeat(book.fill, ASK, qty))
    assert filled == qty
    assert vwap == pytest.approx(ref.fill(ASK, qty)[0], rel=1e-12)
    record(benchmark, INNER, impl)
