"""Book delta records of the feeds: replaying them rebuilds every accepted book exactly.

The independent truth is a plain-dict book per instrument rebuilt from nothing but the
drained records (snapshot groups replace it, other records set or remove a level), compared
with the compiled book - itself checked against the reference verifier on the same real
captures (``tests/orchestrator/test_verify.py``) - at checkpoints all through each capture.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ext import feed as F
from ext.binance import BinanceFeed
from ext.book import ASK, BID, OrderBook
from ext.okx import OkxFeed
from orchestrator.capture.verify import ReplaySession, merged_frames
from tests.support.fixtures import SETS
from tests.support.frames import depth, okx, snapshot

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------- independent rebuild

SCALE = 18  # every level is kept exactly as an integer at 1e-18 (scales never exceed it)


class DictBooks:
    """Books as ``{inst: ({price: size}, {price: size})}`` at a common fine scale."""

    def __init__(self) -> None:
        self.books: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
        self._open: set[int] = set()

    def apply(self, recs: np.ndarray) -> None:
        for r in recs.tolist():
            _exch_ns, _recv_ns, _seq, price, size, inst, side, flags, ps, ss = r
            if flags & F.DELTA_SNAPSHOT and inst not in self._open:
                self.books[inst] = ({}, {})  # a snapshot group starts: replace the book
                self._open.add(inst)
            book = self.books.setdefault(inst, ({}, {}))
            p = price * 10 ** (SCALE - ps)
            q = size * 10 ** (SCALE - ss)
            if q:
                book[side][p] = q
            else:
                book[side].pop(p, None)
            if flags & F.DELTA_LAST:
                self._open.discard(inst)


def book_levels(book: OrderBook) -> tuple[dict[int, int], dict[int, int]]:
    out: list[dict[int, int]] = []
    for side in (BID, ASK):
        prices, sizes = book.top_copy(side, book.level_count(side))
        fp, fs = 10 ** (SCALE - book.price_scale), 10 ** (SCALE - book.size_scale)
        out.append({int(p) * fp: int(s) * fs for p, s in zip(prices, sizes, strict=True)})
    return out[0], out[1]


def check_books(feed: F.Feed, rebuilt: DictBooks) -> int:
    """Compare every in-sync book of ``feed``; returns how many were compared."""
    n = 0
    for i, (symbol, channel, kind) in enumerate(feed.instruments()):
        if kind != "book":
            continue
        book = feed.book(symbol, channel)
        if book is None or not book.in_sync:
            continue
        assert rebuilt.books.get(i) == book_levels(book), f"{symbol} {channel} differs"
        n += 1
    return n


@pytest.mark.parametrize(
    "name",
    ["cf-okx", "cf-binance", "cf-binance-futures", "cf-binance-delivery", "hb-usdm-btcusdt"],
)
def test_replaying_deltas_rebuilds_every_book_of_a_real_capture(name: str) -> None:
    session = ReplaySession(delta_capacity=1 << 16)
    rebuilt: dict[int, DictBooks] = {}
    compared = 0
    records = 0
    for k, (file_index, frame) in enumerate(merged_frames(SETS[name])):
        session.on_frame(file_index, frame)
        if k % 97 == 0:
            for feed in session.feeds.values():
                recs = feed.drain_deltas()
                records += len(recs)
                rebuilt.setdefault(id(feed), DictBooks()).apply(recs)
                compared += check_books(feed, rebuilt[id(feed)])
    for feed in session.feeds.values():
        recs = feed.drain_deltas()
        records += len(recs)
        rebuilt.setdefault(id(feed), DictBooks()).apply(recs)
        assert check_books(feed, rebuilt[id(feed)]) >= 1
        assert feed.deltas_overflow == 0
    assert compared > 5 and records > 100


@pytest.mark.parametrize("name", ["cf-okx", "cf-binance-futures", "hb-usdm-btcusdt"])
def test_deltas_sorted_by_time_and_seq_rebuild_the_same_books(name: str) -> None:
    """What the archive returns (rows ordered by exchange time, then update id) is enough:
    the snapshot group of a Binance REST snapshot sorts before the diffs it bridges."""
    session = ReplaySession(delta_capacity=1 << 20)
    for file_index, frame in merged_frames(SETS[name]):
        session.on_frame(file_index, frame)
    for feed in session.feeds.values():
        recs = feed.drain_deltas()
        order = np.lexsort((recs["seq"], recs["exch_ns"], recs["inst"]))
        # groups keep their records together (a group has one (inst, exch_ns, seq))
        rebuilt = DictBooks()
        rebuilt.apply(recs[order])
        assert check_books(feed, rebuilt) >= 1


def test_default_feed_records_no_deltas() -> None:
    f = OkxFeed()
    f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 10, -1))
    assert f.delta_capacity == 0 and f.pending_deltas == 0
    assert len(f.drain_deltas()) == 0 and f.drain_deltas().dtype == F.DELTA_DTYPE
    with pytest.raises(ValueError, match="delta_capacity"):
        BinanceFeed("spot", delta_capacity=-1)


def test_okx_update_records_carry_time_seq_scales_and_last_flag() -> None:
    f = OkxFeed(delta_capacity=100)
    f.on_frame(okx("snapshot", [("101", "1"), ("102", "2")], [("100", "1")], 10, -1, ts="5"))
    snap = f.drain_deltas()
    assert len(snap) == 3 and set(snap["flags"][:-1]) == {F.DELTA_SNAPSHOT}
    assert snap["flags"][-1] == F.DELTA_SNAPSHOT | F.DELTA_LAST
    assert set(snap["seq"]) == {10} and set(snap["exch_ns"]) == {5_000_000}
    f.on_frame(okx("update", [("101", "0")], [("100.5", "3")], 11, 10, ts="6"), recv_ns=77)
    up = f.drain_deltas()
    assert up[["side", "price", "size", "price_scale"]].tolist() == [
        (1, 101, 0, 0),
        (0, 1005, 3, 1),
    ]
    assert up["flags"].tolist() == [0, F.DELTA_LAST]
    assert set(up["seq"]) == {11} and set(up["exch_ns"]) == {6_000_000}
    assert set(up["recv_ns"]) == {77}


@pytest.mark.parametrize(
    "frame",
    [
        okx("update", [("101", "5")], [], 13, 12, ts="7"),  # gap
        okx("update", [("101", "5")], [], 10, 9, ts="7"),  # repeat of the last message
        okx("update", [], [("105", "1")], 11, 10, ts="7"),  # crossed
        okx("update", [("101", "5")], [], 11, 10, ts="7", checksum=12345),  # checksum
    ],
    ids=["gap", "duplicate", "crossed", "checksum"],
)
def test_okx_rejected_update_leaves_no_record(frame: bytes) -> None:
    f = OkxFeed(delta_capacity=100)
    f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 10, -1))
    f.drain_deltas()
    assert f.on_frame(frame) not in (F.UPDATE, F.SNAPSHOT)
    assert len(f.drain_deltas()) == 0


def test_binance_gap_and_failed_frame_leave_no_record() -> None:
    f = BinanceFeed("spot", delta_capacity=100)
    f.on_snapshot("BTCUSDT", snapshot(10))
    f.drain_deltas()
    assert f.on_frame(depth(13, 14, [("100.5", "1")])) == F.GAP
    assert len(f.drain_deltas()) == 0
    f.on_snapshot("BTCUSDT", snapshot(20))
    f.drain_deltas()
    bad = (
        b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
        b'"U":21,"u":22,"b":[["100.05","7"]]6"a":[]}}'
    )
    with pytest.raises(F.FrameError):
        f.on_frame(bad)
    assert f.pending_deltas == 0 and len(f.drain_deltas()) == 0


def test_binance_snapshot_group_sorts_before_the_diffs_it_bridges() -> None:
    f = BinanceFeed("usdm", delta_capacity=100)
    d = {"e": "depthUpdate", "E": 1000, "T": 999, "s": "BTCUSDT"}
    for U, u, pu, t in ((5, 9, 4, 900), (10, 12, 9, 950), (13, 15, 12, 990)):
        msg = {**d, "U": U, "u": u, "pu": pu, "T": t, "b": [["100.5", str(u)]], "a": []}
        assert f.on_frame(json.dumps({"data": msg}).encode()) == F.BUFFERED
    f.on_snapshot("BTCUSDT", snapshot(11), recv_ns=5)
    recs = f.drain_deltas()
    snap = recs[(recs["flags"] & F.DELTA_SNAPSHOT) != 0]
    diffs = recs[(recs["flags"] & F.DELTA_SNAPSHOT) == 0]
    assert len(snap) == 2 and set(snap["seq"]) == {11}
    assert diffs["seq"].tolist() == [12, 15]  # the diff ending at 9 is older than the snapshot
    assert diffs["exch_ns"].tolist() == [950_000_000, 990_000_000]
    assert set(snap["exch_ns"]) == {950_000_000 - 1}


def test_overflow_marks_the_book_and_dumps_it_whole_after_the_next_message() -> None:
    f = OkxFeed(delta_capacity=6)
    f.on_frame(okx("snapshot", [("101", "1"), ("102", "1")], [("100", "1"), ("99", "1")], 1, -1))
    assert len(f.drain_deltas()) == 4
    # 7 changes do not fit in 6 records; the book after them has 4 levels
    asks = [("101", "0"), ("102", "0"), ("103", "1"), ("104", "1")]
    bids = [("100", "0"), ("98", "1"), ("99", "2")]
    assert f.on_frame(okx("update", asks, bids, 2, 1, ts="9")) == F.UPDATE
    assert f.deltas_overflow == 1
    recs = f.drain_deltas()
    assert len(recs) == 4 and np.all(recs["flags"] & F.DELTA_SNAPSHOT)
    assert recs["flags"][-1] & F.DELTA_LAST and set(recs["seq"]) == {2}
    rebuilt = DictBooks()
    rebuilt.apply(recs)
    assert check_books(f, rebuilt) == 1
    # a book that does not fit at all stays marked until it does
    big = [(str(200 + i), "1") for i in range(8)]
    f.on_frame(okx("update", big, [], 3, 2, ts="10"))
    assert f.deltas_overflow == 2 and len(f.drain_deltas()) == 0
    f.on_frame(okx("update", [(p, "0") for p, _ in big[:6]], [], 4, 3, ts="11"))
    recs = f.drain_deltas()
    assert np.all(recs["flags"] & F.DELTA_SNAPSHOT) and len(recs) == 6


def test_empty_snapshot_is_one_clearing_record() -> None:
    f = OkxFeed(delta_capacity=10)
    f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 1, -1))
    f.on_frame(okx("snapshot", [], [], 5, -1))
    recs = f.drain_deltas()
    assert recs[-1:][["size", "flags", "seq"]].tolist() == [(0, F.DELTA_SNAPSHOT | F.DELTA_LAST, 5)]
    rebuilt = DictBooks()
    rebuilt.apply(recs)
    assert rebuilt.books[0] == ({}, {})


def test_binance_snapshot_that_does_not_fit_leaves_earlier_groups_alone() -> None:
    f = BinanceFeed("spot", delta_capacity=5)
    f.on_snapshot("BTCUSDT", snapshot(10), recv_ns=10**18)  # group of 2, stamped 1e18
    f.desync("BTCUSDT", "depth")
    bids = [("99.0", "1"), ("98.0", "1")]
    assert f.on_frame(depth(11, 11, [("98.0", "0"), ("99.0", "0")], E=900)) == F.BUFFERED
    # 4 levels do not fit after the 2 records held: the book is re-sent after the diff
    f.on_snapshot("BTCUSDT", snapshot(10, bids=[("100.0", "1"), *bids]), recv_ns=7)
    recs = f.drain_deltas()
    assert recs["exch_ns"][:2].tolist() == [10**18, 10**18]  # the first group untouched
    assert len(recs) == 4 and recs["seq"][2:].tolist() == [11, 11]
    assert np.all(recs["flags"][2:] & F.DELTA_SNAPSHOT) and f.deltas_overflow == 1
    rebuilt = DictBooks()
    rebuilt.apply(recs)
    assert check_books(f, rebuilt) == 1
