"""Tests of ext.book.OrderBook against an independent SortedDict reference book."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedDict

from ext.book import (
    ASK,
    BID,
    MAX_PRICE,
    NO_ASK_PRICE,
    NO_BID_PRICE,
    NO_SPREAD,
    OrderBook,
)
from ext.scaled import to_scaled

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "data" / "fixtures"
ETH_CAPTURE = FIXTURES / "hftbacktest" / "spot" / "ethusdt_20240808.gz"


class RefBook:
    """Slow, obviously-correct L2 book: one SortedDict per side, Python ints only."""

    def __init__(self) -> None:
        self.sides = (SortedDict(), SortedDict())
        self.absent = 0

    def clear(self) -> None:
        self.sides[BID].clear()
        self.sides[ASK].clear()

    def load(self, bids, asks) -> None:
        self.clear()
        for side, levels in ((BID, bids), (ASK, asks)):
            for p, q in levels:
                if q:
                    self.sides[side][p] = q

    def apply(self, side: int, price: int, size: int) -> bool:
        d = self.sides[side]
        if size == 0:
            if price in d:
                del d[price]
                return True
            self.absent += 1
            return False
        d[price] = size
        return True

    def levels(self, side: int) -> list[tuple[int, int]]:
        """All levels best first."""
        d = self.sides[side]
        keys = reversed(d.keys()) if side == BID else iter(d.keys())
        return [(p, d[p]) for p in keys]

    def best(self, side: int) -> tuple[int, int]:
        lv = self.levels(side)
        if not lv:
            return (NO_BID_PRICE if side == BID else NO_ASK_PRICE, 0)
        return lv[0]

    def crossed(self) -> bool:
        if not self.sides[BID] or not self.sides[ASK]:
            return False
        return self.best(BID)[0] >= self.best(ASK)[0]

    def mid2(self) -> int | None:
        """Twice the mid (exact), None if a side is empty."""
        if not self.sides[BID] or not self.sides[ASK]:
            return None
        return self.best(BID)[0] + self.best(ASK)[0]

    def depth_within(self, side: int, distance: int) -> int:
        m2 = self.mid2()
        if m2 is None:
            return 0
        if side == BID:
            return sum(q for p, q in self.levels(BID) if 2 * p >= m2 - 2 * distance)
        return sum(q for p, q in self.levels(ASK) if 2 * p <= m2 + 2 * distance)

    def qty_within(self, side: int, limit: int) -> int:
        if side == BID:
            return sum(q for p, q in self.levels(BID) if p >= limit)
        return sum(q for p, q in self.levels(ASK) if p <= limit)

    def fill(self, side: int, qty: int) -> tuple[float, int]:
        left = qty
        notional = 0
        for p, q in self.levels(side):
            if left == 0:
                break
            take = min(q, left)
            notional += p * take
            left -= take
        filled = qty - left
        if filled == 0:
            return math.nan, 0
        return notional / filled, filled


def assert_same(book: OrderBook, ref: RefBook, probe_qty: int = 7, probe_dist: int = 3) -> None:
    for side in (BID, ASK):
        lv = ref.levels(side)
        assert book.level_count(side) == len(lv)
        prices, sizes = book.top_copy(side, len(lv) + 3)
        assert list(zip(prices.tolist(), sizes.tolist(), strict=True)) == lv
        assert (book.best_bid() if side == BID else book.best_ask()) == ref.best(side)
        assert book.depth_within(side, probe_dist) == ref.depth_within(side, probe_dist)
        vwap, filled = book.fill_price(side, probe_qty)
        rvwap, rfilled = ref.fill(side, probe_qty)
        assert filled == rfilled
        assert (math.isnan(vwap) and math.isnan(rvwap)) or math.isclose(vwap, rvwap, rel_tol=1e-12)
        if lv:
            limit = lv[len(lv) // 2][0]
            assert book.qty_within(side, limit) == ref.qty_within(side, limit)
    assert (book.best_bid_price, book.best_bid_size) == ref.best(BID)
    assert (book.best_ask_price, book.best_ask_size) == ref.best(ASK)
    assert book.is_crossed() == ref.crossed()
    assert book.absent_deletes == ref.absent
    m2 = ref.mid2()
    if m2 is None:
        assert math.isnan(book.mid())
        assert math.isnan(book.microprice())
        assert book.spread() == NO_SPREAD
    else:
        assert book.mid() == m2 / 2
        assert book.spread() == ref.best(ASK)[0] - ref.best(BID)[0]
        (pb, qb), (pa, qa) = ref.best(BID), ref.best(ASK)
        assert math.isclose(book.microprice(), (pb * qa + pa * qb) / (qa + qb), rel_tol=1e-12)


def arr(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def load(book: OrderBook, bids, asks, uid: int = -1) -> None:
    book.load_snapshot(
        arr([p for p, _ in bids]),
        arr([q for _, q in bids]),
        arr([p for p, _ in asks]),
        arr([q for _, q in asks]),
        uid,
    )


# ---------------------------------------------------------------- property tests

prices_st = st.integers(-40, 40)
sizes_st = st.one_of(st.just(0), st.integers(1, 9), st.integers(1, 10**12))
update_st = st.tuples(st.sampled_from([BID, ASK]), prices_st, sizes_st)
level_st = st.tuples(prices_st, st.integers(0, 9))
snapshot_st = st.tuples(
    st.lists(level_st, max_size=30, unique_by=lambda lv: lv[0]),
    st.lists(level_st, max_size=30, unique_by=lambda lv: lv[0]),
)
op_st = st.one_of(
    update_st.map(lambda u: ("apply", u)),
    update_st.map(lambda u: ("apply", u)),
    update_st.map(lambda u: ("apply", u)),
    snapshot_st.map(lambda s: ("snapshot", s)),
    st.just(("clear", None)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_st, max_size=120), qty=st.integers(0, 40), dist=st.integers(0, 50))
def test_random_ops_match_reference(ops, qty, dist):
    book = OrderBook(capacity=0)
    ref = RefBook()
    for kind, payload in ops:
        if kind == "apply":
            side, price, size = payload
            assert book.apply(side, price, size) == ref.apply(side, price, size)
        elif kind == "snapshot":
            bids, asks = payload
            load(book, bids, asks, 5)
            ref.load(bids, asks)
            assert book.in_sync
            assert book.last_update_id == 5
        else:
            book.clear()
            ref.clear()
            assert not book.in_sync
        assert_same(book, ref, qty, dist)


@settings(max_examples=100, deadline=None)
@given(
    updates=st.lists(
        st.tuples(st.sampled_from([BID, ASK]), st.integers(0, 300), st.integers(0, 3)),
        max_size=400,
    ),
    qty=st.integers(0, 100),
)
def test_dense_churn_exercises_tombstones_and_growth(updates, qty):
    # prices in a narrow band with many deletes: revive, trim and compaction paths
    book = OrderBook(capacity=0)
    ref = RefBook()
    for side, price, size in updates:
        book.apply(side, price, size)
        ref.apply(side, price, size)
    assert_same(book, ref, qty, 20)


@settings(max_examples=100, deadline=None)
@given(updates=st.lists(update_st, max_size=200), split=st.integers(0, 200))
def test_batch_apply_equals_scalar_apply(updates, split):
    scalar = OrderBook()
    batch = OrderBook()
    changed = [scalar.apply(*u) for u in updates]
    sides = np.asarray([u[0] for u in updates], dtype=np.int8)
    prices = arr([u[1] for u in updates])
    sizes = arr([u[2] for u in updates])
    k = min(split, len(updates))
    n1 = batch.apply_batch(sides[:k], prices[:k], sizes[:k])
    n2 = batch.apply_batch(sides[k:], prices[k:], sizes[k:], update_id=99)
    assert n1 + n2 == sum(changed)
    assert batch.absent_deletes == scalar.absent_deletes
    assert batch.last_update_id == 99
    for side in (BID, ASK):
        for a, b in zip(scalar.top_copy(side, 1000), batch.top_copy(side, 1000), strict=True):
            np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(
    bids=st.lists(st.tuples(st.integers(-(10**6), 10**6), st.integers(1, 10**6)), max_size=20),
    asks=st.lists(st.tuples(st.integers(-(10**6), 10**6), st.integers(1, 10**6)), max_size=20),
    dp=st.integers(0, 5),
    ds=st.integers(0, 5),
)
@example(bids=[(7, 1)], asks=[], dp=0, ds=0)  # the deleted bid was in the book
def test_rescale_multiplies_exactly(bids, asks, dp, ds):
    bids = list(dict(bids).items())
    asks = list(dict(asks).items())
    book = OrderBook(price_scale=2, size_scale=3)
    load(book, bids, asks)
    book.apply(BID, 7, 0)  # maybe a tombstone, maybe absent
    ref = RefBook()
    ref.load(  # the bid at 7, if generated, was just deleted
        [(p * 10**dp, q * 10**ds) for p, q in bids if p != 7],
        [(p * 10**dp, q * 10**ds) for p, q in asks],
    )
    book.rescale(2 + dp, 3 + ds)
    ref.absent = book.absent_deletes
    assert (book.price_scale, book.size_scale) == (2 + dp, 3 + ds)
    assert_same(book, ref)


# ---------------------------------------------------------------- real capture


def _eth_messages():
    """Yield ("snapshot", bids, asks, id) / ("update", levels, u) from the ETHUSDT capture."""
    with gzip.open(ETH_CAPTURE, "rt") as fh:
        for line in fh:
            _, payload = line.split(" ", 1)
            msg = json.loads(payload)
            if "lastUpdateId" in msg:
                yield "snapshot", msg["bids"], msg["asks"], msg["lastUpdateId"]
            elif msg.get("stream", "").endswith("@depth@100ms"):
                data = msg["data"]
                levels = [(BID, p, q) for p, q in data["b"]] + [(ASK, p, q) for p, q in data["a"]]
                yield "update", levels, data["u"], data["U"]


@pytest.mark.replay
def test_replay_binance_ethusdt_capture_matches_reference():
    book = OrderBook(price_scale=2, size_scale=8)
    ref = RefBook()
    top_p = np.empty(20, dtype=np.int64)
    top_s = np.empty(20, dtype=np.int64)
    applied_msgs = 0
    for msg in _eth_messages():
        if msg[0] == "snapshot":
            _, bids, asks, uid = msg
            bl = [(to_scaled(p, 2), to_scaled(q, 8)) for p, q in bids]
            al = [(to_scaled(p, 2), to_scaled(q, 8)) for p, q in asks]
            load(book, bl, al, uid)
            ref.load(bl, al)
            continue
        if not book.in_sync:
            continue
        _, levels, u, first = msg
        if u <= book.last_update_id:
            continue
        assert first <= book.last_update_id + 1, "gap in the capture"
        sides = np.asarray([s for s, _, _ in levels], dtype=np.int8)
        prices = arr([to_scaled(p, 2) for _, p, _ in levels])
        sizes = arr([to_scaled(q, 8) for _, _, q in levels])
        changed = book.apply_batch(sides, prices, sizes, update_id=u)
        assert changed == sum(
            ref.apply(s, p, q)
            for s, p, q in zip(sides.tolist(), prices.tolist(), sizes.tolist(), strict=True)
        )
        applied_msgs += 1
        for side in (BID, ASK):
            n = book.top_into(side, top_p, top_s)
            expect = ref.levels(side)[:20]
            assert n == len(expect)
            assert list(zip(top_p[:n].tolist(), top_s[:n].tolist(), strict=True)) == expect
        assert not book.is_crossed()
        assert book.absent_deletes == ref.absent
    assert applied_msgs > 3000
    assert_same(book, ref, probe_qty=10**9, probe_dist=500)


# ---------------------------------------------------------------- edge cases


def test_empty_book_sentinels():
    book = OrderBook()
    assert book.best_bid() == (NO_BID_PRICE, 0)
    assert book.best_ask() == (NO_ASK_PRICE, 0)
    assert book.best_bid_price == NO_BID_PRICE
    assert book.best_ask_price == NO_ASK_PRICE
    assert math.isnan(book.mid())
    assert math.isnan(book.microprice())
    assert book.spread() == NO_SPREAD
    assert not book.is_crossed()
    assert book.top_copy(BID, 5)[0].size == 0
    out = np.full(3, -7, dtype=np.int64)
    assert book.top_into(ASK, out, out.copy()) == 0
    assert out.tolist() == [-7, -7, -7]
    vwap, filled = book.fill_price(ASK, 10)
    assert math.isnan(vwap)
    assert filled == 0
    assert book.depth_within(BID, 10) == 0
    assert book.qty_within(BID, 0) == 0
    assert not book.in_sync
    assert book.last_update_id == -1


def test_one_side_empty():
    book = OrderBook()
    book.apply(BID, 100, 4)
    assert book.best_bid() == (100, 4)
    assert book.best_ask() == (NO_ASK_PRICE, 0)
    assert not book.is_crossed()
    assert math.isnan(book.mid())
    assert book.spread() == NO_SPREAD
    assert book.depth_within(BID, 5) == 0
    assert book.qty_within(BID, 100) == 4


def test_delete_absent_level_is_counted_noop():
    book = OrderBook()
    assert book.apply(ASK, 5, 0) is False
    book.apply(ASK, 5, 1)
    assert book.apply(ASK, 5, 0) is True
    assert book.apply(ASK, 5, 0) is False
    assert book.absent_deletes == 2
    assert book.level_count(ASK) == 0


def test_partial_fill_when_side_too_thin():
    book = OrderBook()
    book.apply(ASK, 101, 2)
    book.apply(ASK, 103, 1)
    vwap, filled = book.fill_price(ASK, 10)
    assert filled == 3
    assert vwap == pytest.approx((101 * 2 + 103) / 3)
    assert book.fill_price(ASK, 0)[1] == 0


def test_capacity_grows_geometrically_past_initial_size():
    book = OrderBook(capacity=16)
    ref = RefBook()
    caps = {book.capacity(BID)}
    for i in range(5000):
        price = (i * 7919) % 10007  # scattered inserts
        book.apply(BID, price, i + 1)
        ref.apply(BID, price, i + 1)
        caps.add(book.capacity(BID))
    assert book.capacity(BID) >= book.level_count(BID)
    assert sorted(caps) == [16 * 2**k for k in range(len(caps))]
    assert book.nbytes() == 16 * (book.capacity(BID) + book.capacity(ASK))
    assert_same(book, ref)


@pytest.mark.parametrize("side", [BID, ASK])
@pytest.mark.parametrize("gap", [-14, -5, -1, 0, 1, 7, 15])
def test_deep_insert_reuses_a_nearby_tombstone_instead_of_growing(side, gap):
    # 64 levels fill the 64 slots; one deleted 30 ranks below the top leaves a tombstone.
    # A new price inserted within 16 slots of it, far (> 16 slots) below the top, takes
    # the tombstone's place: the side does not grow and the order stays exact.
    book = OrderBook(capacity=64)
    ref = RefBook()
    sign = 1 if side == BID else -1
    for r in range(64):  # rank r from the top: bid 1000 - 10 r, ask 1000 + 10 r
        price = 1000 - sign * 10 * r
        book.apply(side, price, r + 1)
        ref.apply(side, price, r + 1)
    assert book.capacity(side) == 64
    dead = 1000 - sign * 10 * 30
    book.apply(side, dead, 0)
    ref.apply(side, dead, 0)
    new = dead - sign * (10 * gap + 5)  # between ranks 30 + gap and 31 + gap
    book.apply(side, new, 777)
    ref.apply(side, new, 777)
    assert book.capacity(side) == 64, "the insert should have filled the tombstone"
    assert book.level_count(side) == 64
    assert_same(book, ref, probe_qty=500, probe_dist=400)
    # too far from any tombstone: the usual shift (and growth)
    far = 1000 - sign * (10 * 62 + 5)
    book.apply(side, far, 5)
    ref.apply(side, far, 5)
    assert book.capacity(side) == 128
    assert_same(book, ref, probe_qty=500, probe_dist=700)


def test_compaction_after_mass_delete_keeps_order():
    book = OrderBook()
    ref = RefBook()
    for p in range(200):
        book.apply(ASK, p, p + 1)
        ref.apply(ASK, p, p + 1)
    for p in range(1, 200, 3):
        book.apply(ASK, p, 0)
        ref.apply(ASK, p, 0)
    for p in range(2, 200, 3):
        book.apply(ASK, p, 0)
        ref.apply(ASK, p, 0)
    assert_same(book, ref, probe_qty=500, probe_dist=100)
    for p in range(0, 200, 2):  # revive some, insert others
        book.apply(ASK, p, 9)
        ref.apply(ASK, p, 9)
    assert_same(book, ref, probe_qty=500, probe_dist=100)


def test_snapshot_any_order_replaces_everything():
    book = OrderBook(capacity=0)
    for p in range(100):
        book.apply(BID, p, 1)
    book.mark_out_of_sync()
    assert not book.in_sync
    load(book, [(5, 1), (9, 2), (7, 0), (6, 3)], [(12, 1), (10, 4)], uid=1234)
    assert book.in_sync
    assert book.last_update_id == 1234
    assert book.top_copy(BID, 10)[0].tolist() == [9, 6, 5]
    assert book.top_copy(ASK, 10)[0].tolist() == [10, 12]
    assert book.capacity(BID) == 16


def test_crossed_and_locked_books_are_detected():
    book = OrderBook()
    load(book, [(10, 1)], [(11, 1)])
    assert not book.is_crossed()
    book.apply(BID, 11, 1)
    assert book.is_crossed()
    assert book.spread() == 0
    book.apply(BID, 12, 1)
    assert book.spread() == -1


def test_extreme_prices_do_not_overflow():
    book = OrderBook()
    book.apply(BID, -MAX_PRICE, 1)
    book.apply(ASK, MAX_PRICE, 2**62)
    assert book.spread() == 2 * MAX_PRICE
    assert book.depth_within(BID, 2**63 - 1) == 1
    assert book.depth_within(ASK, 0) == 0
    assert book.qty_within(ASK, 2**63 - 1) == 2**62
    book.apply(ASK, MAX_PRICE - 1, 2**63 - 1)
    assert book.qty_within(ASK, MAX_PRICE) == 2**63 - 1  # saturates
    assert book.fill_price(ASK, 3)[1] == 3


def test_rescale_overflow_raises_and_leaves_book_unchanged():
    book = OrderBook(price_scale=2, size_scale=0)
    book.apply(BID, MAX_PRICE // 5, 3)
    book.apply(ASK, MAX_PRICE // 5 + 1, 2**62)
    before = book.top_copy(BID, 5) + book.top_copy(ASK, 5)
    with pytest.raises(ValueError, match="new_price_scale"):
        book.rescale(3, 0)
    with pytest.raises(ValueError, match="new_size_scale"):
        book.rescale(2, 1)
    with pytest.raises(ValueError, match="new_price_scale"):
        book.rescale(1, 0)
    with pytest.raises(ValueError, match="new_size_scale"):
        book.rescale(2, 19)
    assert (book.price_scale, book.size_scale) == (2, 0)
    after = book.top_copy(BID, 5) + book.top_copy(ASK, 5)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda b: b.apply(2, 1, 1), "side"),
        (lambda b: b.apply(BID, MAX_PRICE + 1, 1), "price"),
        (lambda b: b.apply(BID, 1, -1), "size"),
        (lambda b: b.top_copy(-1, 3), "side"),
        (lambda b: b.top_copy(BID, -1), "n"),
        (lambda b: b.fill_price(ASK, -1), "qty"),
        (lambda b: b.depth_within(BID, -1), "distance"),
        (lambda b: b.capacity(3), "side"),
        (lambda b: b.level_count(3), "side"),
        (lambda b: OrderBook(price_scale=19), "price_scale"),
        (lambda b: OrderBook(size_scale=-1), "size_scale"),
        (lambda b: OrderBook(capacity=-1), "capacity"),
        (lambda b: b.apply_batch(np.zeros(2, np.int8), arr([1]), arr([1, 2])), "prices"),
        (lambda b: b.apply_batch(np.zeros(1, np.int8), arr([1]), arr([1, 2])), "sizes"),
        (
            lambda b: b.apply_batch(np.asarray([0, 5], np.int8), arr([1, 2]), arr([1, 2])),
            r"sides\[1\]",
        ),
        (
            lambda b: b.apply_batch(np.zeros(2, np.int8), arr([1, -(2**63)]), arr([1, 2])),
            r"prices\[1\]",
        ),
        (lambda b: b.apply_batch(np.zeros(2, np.int8), arr([1, 2]), arr([1, -2])), r"sizes\[1\]"),
        (lambda b: b.load_snapshot(arr([1, 2]), arr([1]), arr([]), arr([])), "bid_sizes"),
        (lambda b: b.load_snapshot(arr([]), arr([]), arr([3]), arr([])), "ask_sizes"),
        (lambda b: b.load_snapshot(arr([1, 1]), arr([1, 2]), arr([]), arr([])), "bid_prices"),
        (lambda b: b.load_snapshot(arr([]), arr([]), arr([4, 4]), arr([1, 1])), "ask_prices"),
        (lambda b: b.load_snapshot(arr([1]), arr([-1]), arr([]), arr([])), "bid_sizes"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_argument(call, name):
    book = OrderBook()
    load(book, [(1, 1)], [(3, 1)])
    with pytest.raises(ValueError, match=name):
        call(book)
    # invalid input never changes the book
    assert book.top_copy(BID, 5)[0].tolist() == [1]
    assert book.top_copy(ASK, 5)[0].tolist() == [3]


def test_batch_invalid_entry_applies_nothing():
    book = OrderBook()
    with pytest.raises(ValueError, match=r"sizes\[2\]"):
        book.apply_batch(np.zeros(3, np.int8), arr([1, 2, 3]), arr([1, 1, -1]))
    assert book.level_count(BID) == 0


def test_clear_resets_state():
    book = OrderBook(capacity=16)
    load(book, [(p, 1) for p in range(100)], [(p, 1) for p in range(200, 300)], uid=7)
    book.apply(ASK, 1000, 0)
    book.clear()
    assert book.level_count(BID) == book.level_count(ASK) == 0
    assert book.capacity(BID) == 16
    assert not book.in_sync
    assert book.last_update_id == -1
    assert book.absent_deletes == 1


def test_read_only_attributes():
    book = OrderBook(price_scale=2, size_scale=8)
    for attr in ("price_scale", "size_scale", "last_update_id", "in_sync", "absent_deletes"):
        with pytest.raises(AttributeError):
            setattr(book, attr, 1)
    assert "price_scale=2" in repr(book)


def test_top_into_reads_plain_arrays_directly_and_other_buffers_alike():
    book = OrderBook()
    for i in range(30):
        book.apply(BID, 1000 - i, i + 1)
    want_p, want_s = book.top_copy(BID, 25)
    p, s = np.zeros(25, np.int64), np.zeros(25, np.int64)
    assert book.top_into(BID, p, s) == 25  # plain ndarrays: no buffer export
    assert np.array_equal(p, want_p) and np.array_equal(s, want_s)
    big = np.zeros(60, np.int64)
    strided_p, strided_s = big[::2][:25], np.zeros(25, np.int64)
    with pytest.raises(ValueError):  # not contiguous: the memoryview path refuses it
        book.top_into(BID, strided_p, strided_s)
    sub = type("Sub", (np.ndarray,), {})
    mp, ms = np.zeros(10, np.int64).view(sub), memoryview(np.zeros(12, np.int64))
    assert book.top_into(BID, mp, ms) == 10  # other int64 buffers: the memoryview path
    assert np.array_equal(np.asarray(mp), want_p[:10])
    ro = np.zeros(5, np.int64)
    ro.flags.writeable = False
    for bad_p, bad_s, err in (
        (None, s, TypeError),
        (p, None, TypeError),
        (np.zeros(5, np.int32), s, ValueError),
        (ro, s, ValueError),
    ):
        with pytest.raises(err):
            book.top_into(BID, bad_p, bad_s)
