"""Delta records from the feeds and the books rebuilt from them (pure logic, no services)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ext import feed as F
from ext.book import ASK, BID
from ext.okx import OkxFeed
from orchestrator.collector import BookState, VenueCollector
from orchestrator.data import records as rec
from orchestrator.data.books import ReplayBooks, ReplayBooksError
from orchestrator.data.bus import InProcessBus
from orchestrator.publish import Publisher
from orchestrator.venues import get_venue
from tests.support.frames import okx

pytestmark = pytest.mark.unit


def _levels(book, side):
    return [
        tuple(map(int, x)) for x in zip(*book.top_copy(side, book.level_count(side)), strict=True)
    ]


def test_deltas_from_feed_rescales_each_level_to_the_target_scales() -> None:
    f = OkxFeed(delta_capacity=100)
    f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 1, -1))
    f.on_frame(okx("update", [], [("100.25", "0.5")], 2, 1, ts="2"))  # finer: rescaled
    raw = f.drain_deltas()
    assert raw["price_scale"].tolist() == [0, 0, 2]
    out = rec.deltas_from_feed(raw, 3, np.array([42], dtype=np.int32), [2], [1])
    assert out.dtype == rec.DELTA_DTYPE
    assert out["price"].tolist() == [10000, 10100, 10025]
    assert out["size"].tolist() == [10, 10, 5]
    assert set(out["inst"]) == {42} and set(out["venue"]) == {3}
    assert out["flags"].tolist() == [
        rec.FLAG_SNAPSHOT,
        rec.FLAG_SNAPSHOT | rec.FLAG_LAST,
        rec.FLAG_LAST,
    ]
    assert rec.FLAG_SNAPSHOT == F.DELTA_SNAPSHOT and rec.FLAG_LAST == F.DELTA_LAST


def test_deltas_from_feed_rejects_bad_input() -> None:
    f = OkxFeed(delta_capacity=10)
    f.on_frame(okx("snapshot", [("101.5", "1")], [("100", "1")], 1, -1))
    raw = f.drain_deltas()
    with pytest.raises(TypeError, match="DELTA_DTYPE"):
        rec.deltas_from_feed(raw.astype(F.TRADE_DTYPE), 1, None, [1], [0])
    with pytest.raises(ValueError, match="finer scale"):
        rec.deltas_from_feed(raw, 1, None, [0], [0])
    with pytest.raises(ValueError, match="outside"):
        rec.deltas_from_feed(raw, 1, np.array([], dtype=np.int32), [1], [0])
    with pytest.raises(ValueError, match="venue id"):
        rec.deltas_from_feed(raw, 0, None, [1], [0])
    assert len(rec.deltas_from_feed(raw[:0], 1, None, [], [])) == 0
    huge = raw[:1].copy()
    huge["price"], huge["price_scale"] = 10**17, 0
    with pytest.raises(ValueError, match="does not fit int64"):
        rec.deltas_from_feed(huge, 1, None, [2], [0])


def test_replay_books_follows_snapshots_and_skips_deltas_inside_them() -> None:
    snap = rec.empty(rec.RecordKind.SNAPSHOT, 3)
    snap["inst"] = 7
    snap["seq"] = 10
    snap["exch_ns"] = 100
    snap["side"] = [BID, BID, ASK]
    snap["level"] = [0, 1, 0]
    snap["price"] = [99, 98, 101]
    snap["size"] = [1, 2, 3]
    books = ReplayBooks({7: (0, 0)})
    books.apply(snap)
    deltas = rec.empty(rec.RecordKind.DELTA, 3)
    deltas["inst"] = 7
    deltas["seq"] = [10, 11, 11]  # seq 10 is inside the snapshot: skipped
    deltas["exch_ns"] = [100, 120, 120]
    deltas["side"] = [BID, BID, ASK]
    deltas["price"] = [97, 98, 102]
    deltas["size"] = [5, 0, 4]
    deltas["flags"] = [rec.FLAG_LAST, 0, rec.FLAG_LAST]
    books.apply(deltas)
    book = books.book(7)
    assert _levels(book, BID) == [(99, 1)]
    assert _levels(book, ASK) == [(101, 3), (102, 4)]
    assert books.last_seq[7] == 11 and books.snapshots == 1 and books.messages == 2
    # a group flagged FLAG_SNAPSHOT in the delta stream replaces the book
    full = deltas[:1].copy()
    full["seq"], full["exch_ns"], full["flags"] = 12, 130, rec.FLAG_SNAPSHOT | rec.FLAG_LAST
    books.apply(full)
    assert _levels(book, BID) == [(97, 5)] and _levels(book, ASK) == []


def test_replay_books_errors_are_clear() -> None:
    books = ReplayBooks({1: (0, 0)})
    with pytest.raises(ReplayBooksError, match="DELTA_DTYPE"):
        books.apply(rec.empty(rec.RecordKind.TRADE, 1))
    rows = rec.empty(rec.RecordKind.DELTA, 1)
    rows["inst"] = 2
    with pytest.raises(ReplayBooksError, match="no scales for instrument 2"):
        books.apply(rows)
    rows["inst"], rows["side"] = 1, 5
    with pytest.raises(ReplayBooksError, match="side"):
        books.apply(rows)


# ------------------------------------------------------------- publisher: deltas, snapshots


def _collector(delta_capacity: int) -> VenueCollector:
    """A real OKX collector that is never started: frames go straight into its feed."""
    col = VenueCollector(
        get_venue("okx"),
        ["BTC-USDT"],
        ["books"],
        "ws://127.0.0.1:9/ws",
        "http://127.0.0.1:9",
        delta_capacity=delta_capacity,
    )
    col.books["BTC-USDT"].state = BookState.LIVE
    return col


async def _published(bus: InProcessBus, stream: str) -> list[np.ndarray]:
    await bus.flush()
    await bus.ensure_group(stream, "t")
    return [rec.decode_batch(e.payload)[1] for e in await bus.read("t", "c", [stream], 100, 0)]


def test_publisher_sends_deltas_then_a_snapshot_stamped_with_the_last_one() -> None:
    async def go() -> None:
        col = _collector(delta_capacity=1024)
        bus = InProcessBus()
        pub = Publisher(bus, snapshot_interval=3600.0)
        feed = col.feed
        feed.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 1, -1, ts="5"))
        feed.on_frame(okx("update", [], [("100.5", "2")], 2, 1, ts="6"))
        await pub.publish([col], {}, {"okx": feed.drain_deltas()})
        deltas = np.concatenate(await _published(bus, "md:okx:BTC-USDT:deltas"))
        assert deltas["price"].tolist() == [1000, 1010, 1005]  # at the book's scale (1)
        assert deltas["flags"].tolist() == [
            rec.FLAG_SNAPSHOT,
            rec.FLAG_SNAPSHOT | rec.FLAG_LAST,
            rec.FLAG_LAST,
        ]
        (snap,) = await _published(bus, "md:okx:BTC-USDT:snapshots")
        assert snap[["side", "level", "price", "size"]].tolist() == [
            (BID, 0, 1005, 2),
            (BID, 1, 1000, 1),
            (ASK, 0, 1010, 1),
        ]
        assert set(snap["seq"]) == {2} and set(snap["exch_ns"]) == {6_000_000}
        # the next one only after snapshot_interval
        await pub.publish([col], {}, {"okx": feed.drain_deltas()})
        assert pub.published["snapshots"] == 1 and pub.published["deltas"] == 3

    asyncio.run(go())


def test_publisher_without_deltas_still_sends_snapshots() -> None:
    async def go() -> None:
        col = _collector(delta_capacity=0)
        bus = InProcessBus()
        pub = Publisher(bus, snapshot_interval=3600.0)
        col.feed.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 7, -1))
        await pub.publish([col], {}, {"okx": col.feed.drain_deltas()})
        (snap,) = await _published(bus, "md:okx:BTC-USDT:snapshots")
        assert set(snap["seq"]) == {7} and len(snap) == 2
        assert pub.published["deltas"] == 0

    asyncio.run(go())


def test_publisher_skips_the_snapshot_of_an_empty_live_book() -> None:
    async def go() -> None:
        col = _collector(delta_capacity=1024)
        bus = InProcessBus()
        pub = Publisher(bus, snapshot_interval=3600.0)
        col.feed.on_frame(okx("snapshot", [], [], 3, -1))  # a venue snapshot of nothing
        await pub.publish([col], {}, {"okx": col.feed.drain_deltas()})
        (clear,) = await _published(bus, "md:okx:BTC-USDT:deltas")
        assert clear[["size", "flags"]].tolist() == [(0, rec.FLAG_SNAPSHOT | rec.FLAG_LAST)]
        assert pub.published["snapshots"] == 0

    asyncio.run(go())
