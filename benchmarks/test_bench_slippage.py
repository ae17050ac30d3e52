"""Benchmarks of ext.slippage (book walk) and ext.walls (wall scan) on real ETHUSDT books.

Books come from replaying the Binance ETHUSDT spot capture through ``ext.binance``; every
group has a same-run reference (pure Python over ``sortedcontainers`` for the walk, numpy
for the wall scan). ``extra_info["ns_per_op"]`` is the cost of one walk / one scan.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_slippage.py --benchmark-only
-p no:cacheprovider``.
"""

from __future__ import annotations

import math
import os
import platform
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from sortedcontainers import SortedDict

from ext.binance import BinanceFeed
from ext.book import ASK, BID, OrderBook
from ext.slippage import BUY, WALK_DTYPE, walk, walk_many
from ext.walls import WallDetector, WallParams
from orchestrator.capture import read_capture

CAPTURE = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "data"
    / "fixtures"
    / "hftbacktest"
    / "spot"
    / "ethusdt_20240808.gz"
)
LOOP = 100  # calls per timed round for sub-microsecond operations
BAND = 400


def copy_book(book: OrderBook, levels: int = 10**6) -> OrderBook:
    out = OrderBook(book.price_scale, book.size_scale)
    bp, bs = book.top_copy(BID, levels)
    ap, asz = book.top_copy(ASK, levels)
    out.load_snapshot(bp, bs, ap, asz)
    return out


@pytest.fixture(scope="module")
def eth_books() -> list[OrderBook]:
    """64 consecutive states of the ETHUSDT book (top 400 levels a side) after warm-up."""
    feed = BinanceFeed("spot")
    states: list[OrderBook] = []
    for i, frame in enumerate(read_capture(CAPTURE)):
        if frame.kind == "rest":
            feed.on_snapshot("ETHUSDT", frame.payload, frame.recv_ns)
        elif frame.kind == "ws":
            feed.on_frame(frame.payload, frame.recv_ns)
        book = feed.book("ETHUSDT", "depth")
        if i > 20_000 and book is not None and book.in_sync and b"depthUpdate" in frame.payload:
            states.append(copy_book(book, BAND))
            if len(states) == 64:
                break
    assert len(states) == 64
    return states


class RefBook:
    """Pure-Python book over SortedDict with a walk (the reference)."""

    def __init__(self, book: OrderBook) -> None:
        bp, bs = book.top_copy(BID, 10**6)
        ap, asz = book.top_copy(ASK, 10**6)
        self.bids = SortedDict(zip(bp.tolist(), bs.tolist(), strict=True))
        self.asks = SortedDict(zip(ap.tolist(), asz.tolist(), strict=True))

    def walk(self, qty: int) -> tuple[float, int, int, int]:
        left, notional, levels, worst = qty, 0, 0, 0
        for price, size in self.asks.items():
            take = min(size, left)
            notional += price * take
            left -= take
            levels += 1
            worst = price
            if left == 0:
                break
        filled = qty - left
        mid = (self.bids.peekitem(-1)[0] + self.asks.peekitem(0)[0]) / 2
        avg = notional / filled
        return (avg - mid) / mid * 1e4, filled, levels, worst


def record(benchmark, ops: int, impl: str) -> None:
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["ops_per_call"] = ops
    benchmark.extra_info["ns_per_op"] = round(benchmark.stats.stats.min / ops * 1e9, 2)
    benchmark.extra_info["machine"] = f"{platform.machine()} {os.cpu_count()} cpu"


def qty_for_levels(book: OrderBook, n: int) -> int:
    """Lots that consume exactly ``n`` ask levels (the last one half)."""
    _, sizes = book.top_copy(ASK, n)
    return int(sizes[:-1].sum() + sizes[-1] // 2 + 1)


def repeat(fn, *args):
    def run():
        r = None
        for _ in range(LOOP):
            r = fn(*args)
        return r

    return run


# ---------------------------------------------------------------- walk


def test_walk_10_levels_ext(benchmark, eth_books):
    benchmark.group = "slippage-walk"
    book = eth_books[-1]
    qty = qty_for_levels(book, 10)
    res = benchmark(repeat(walk, book, BUY, qty))
    assert res.levels == 10
    record(benchmark, LOOP, "slipstream")


def test_walk_10_levels_reference_python(benchmark, eth_books):
    benchmark.group = "slippage-walk"
    book = eth_books[-1]
    qty = qty_for_levels(book, 10)
    ref = RefBook(book)
    slip, filled, levels, worst = benchmark(repeat(ref.walk, qty))
    res = walk(book, BUY, qty)
    assert (filled, levels, worst) == (res.filled, res.levels, res.worst_price)
    assert slip == pytest.approx(res.slippage_mid_bps, rel=1e-9)
    record(benchmark, LOOP, "sortedcontainers")


def test_walk_10_levels_peer_book_fill_price(benchmark, eth_books):
    benchmark.group = "slippage-walk"
    book = eth_books[-1]
    qty = qty_for_levels(book, 10)
    vwap, _ = benchmark(repeat(book.fill_price, ASK, qty))
    assert vwap == pytest.approx(walk(book, BUY, qty).avg_price, rel=1e-12)
    record(benchmark, LOOP, "OrderBook.fill_price (VWAP only)")


# ---------------------------------------------------------------- walk_many

MANY = 1_000


@pytest.fixture(scope="module")
def many_qtys(eth_books) -> np.ndarray:
    total = qty_for_levels(eth_books[-1], 30)
    return np.random.default_rng(7).integers(1, total, MANY).astype(np.int64)


def test_walk_many_1000_ext(benchmark, eth_books, many_qtys):
    benchmark.group = "slippage-walk-many"
    book = eth_books[-1]
    out = np.empty(MANY, dtype=WALK_DTYPE)
    assert benchmark(walk_many, book, BUY, many_qtys, out) == MANY
    assert out["filled"].tolist() == many_qtys.tolist()
    record(benchmark, MANY, "slipstream")


def test_walk_many_1000_reference_python(benchmark, eth_books, many_qtys):
    benchmark.group = "slippage-walk-many"
    ref = RefBook(eth_books[-1])
    qtys = many_qtys.tolist()

    def run():
        return [ref.walk(q) for q in qtys]

    res = benchmark(run)
    assert [r[1] for r in res] == qtys
    record(benchmark, MANY, "sortedcontainers")


# ---------------------------------------------------------------- walls

# k = 20: ETHUSDT level sizes are heavy-tailed (median 1.5 ETH, 90th percentile 10 ETH), so
# k = 4 flags a fifth of the levels; k = 20 leaves ~20 walls in 800 levels.
PARAMS = WallParams(k=20.0, k_mad=10.0, band_levels=BAND)


def numpy_scan(book: OrderBook, p: WallParams) -> int:
    """Wall count by the same rule with numpy (np.partition medians), the reference."""
    found = 0
    for side in (BID, ASK):
        _, sizes = book.top_copy(side, p.band_levels)
        n = len(sizes)
        if n < p.min_levels:
            continue
        k = (n - 1) // 2
        med = np.partition(sizes, k)[k]
        thr = max(int(np.ceil(p.k * float(med))), int(med) + 1)
        cand = sizes >= thr
        if not cand.any():
            continue
        mad = np.partition(np.abs(sizes - med), k)[k]
        found += int(((sizes - med)[cand] >= p.k_mad * float(mad)).sum())
    return found


def synthetic_books(count: int) -> list[OrderBook]:
    """Unrelated random 400-level books (medians jump: the selection shortcut misses)."""
    rng = np.random.default_rng(11)
    out = []
    for _ in range(count):
        book = OrderBook(2, 4)
        scale = rng.integers(10, 10_000)
        bs = rng.lognormal(0, 1, BAND) * scale
        asz = rng.lognormal(0, 1, BAND) * scale
        book.load_snapshot(
            np.arange(100_000, 100_000 - BAND, -1, dtype=np.int64),
            bs.astype(np.int64) + 1,
            np.arange(100_001, 100_001 + BAND, dtype=np.int64),
            asz.astype(np.int64) + 1,
        )
        out.append(book)
    return out


@pytest.mark.parametrize("stream", ["eth-stream", "cold-random"])
def test_walls_scan_400_ext(benchmark, eth_books, stream):
    benchmark.group = "walls-scan-400"
    books = eth_books if stream == "eth-stream" else synthetic_books(64)
    det = WallDetector(PARAMS, event_capacity=1 << 20)
    ts = [0]

    def run():
        t = ts[0]
        n = 0
        for book in books:
            t += 1
            n += det.update(book, t)
        ts[0] = t
        det.drain_events()
        return n

    total = benchmark(run)
    assert total == sum(numpy_scan(b, PARAMS) for b in books)
    record(benchmark, len(books), f"slipstream ({stream})")
    benchmark.extra_info["levels_per_side"] = BAND


def test_walls_scan_400_reference_numpy(benchmark, eth_books):
    benchmark.group = "walls-scan-400"

    def run():
        return sum(numpy_scan(book, PARAMS) for book in eth_books)

    benchmark(run)
    record(benchmark, len(eth_books), "numpy (np.partition)")
    benchmark.extra_info["levels_per_side"] = BAND


def test_walls_scan_400_reference_python(benchmark, eth_books):
    benchmark.group = "walls-scan-400"
    sides = []
    for book in list(islice(eth_books, 8)):
        sides.append([book.top_copy(s, BAND)[1].tolist() for s in (BID, ASK)])

    def run():
        found = 0
        for book_sides in sides:
            for sizes in book_sides:
                n = len(sizes)
                med = sorted(sizes)[(n - 1) // 2]
                thr = max(math.ceil(PARAMS.k * med), med + 1)
                cand = [s for s in sizes if s >= thr]
                if cand:
                    mad = sorted(abs(s - med) for s in sizes)[(n - 1) // 2]
                    found += sum(1 for s in cand if s - med >= PARAMS.k_mad * mad)
        return found

    benchmark(run)
    record(benchmark, len(sides), "pure Python (sorted)")
    benchmark.extra_info["levels_per_side"] = BAND
