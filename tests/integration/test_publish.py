"""The main job publishes book deltas and snapshots, trades, tops and the completeness ledger."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
import redis

from ext.book import ASK, BID
from orchestrator.collector import VenueCollector
from orchestrator.config import load_config
from orchestrator.data import records as rec
from orchestrator.data.books import ReplayBooks
from orchestrator.data.bus import stream_name
from orchestrator.data.local import LocalArchive
from orchestrator.data.replay import replay
from orchestrator.pipeline import Pipeline

pytestmark = pytest.mark.integration


def _run(cfg: Any) -> Pipeline:
    pipe = Pipeline(cfg)
    asyncio.run(pipe.run())
    return pipe


def test_distributed_profile_publishes_to_redis_streams(
    compose: Any, redis_url: str, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("REDIS_URL", redis_url)
    cfg = load_config(
        compose(
            "profile=distributed",
            "duration=4",
            "metrics.port=null",
            "capture.record=false",
            "view.enabled=false",
            "view.interval=0.5",
        )
    )
    pipe = _run(cfg)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in client.keys("md:*"))
        assert stream_name("okx", "BTC-USDT", "trades") in keys
        assert stream_name("binance_usdm", "ETHUSDT", "ledger") in keys
        # every trade the feeds parsed went out, once, decodable
        total = 0
        for key in keys:
            if not key.endswith(":trades"):
                continue
            for _, fields in client.xrange(key):
                kind, batch = rec.decode_batch(fields[b"d"])
                assert kind is rec.RecordKind.TRADE
                assert np.all(batch["price"] > 0) and np.all(batch["size"] > 0)
                info = pipe.publisher.registry.get(int(batch["inst"][0]))
                assert key == stream_name(info.venue, info.symbol, "trades")
                total += len(batch)
        assert total == pipe.publisher.published["trades"] > 0
        assert total == sum(t.count for t in pipe.trades.values())
        # book deltas: one stream per book, every row decodable and at the book's scale
        deltas = 0
        for key in keys:
            if key.endswith(":deltas"):
                for _, fields in client.xrange(key):
                    kind, batch = rec.decode_batch(fields[b"d"])
                    assert kind is rec.RecordKind.DELTA and np.all(batch["size"] >= 0)
                    deltas += len(batch)
        assert stream_name("okx", "BTC-USDT", "deltas") in keys
        assert deltas == pipe.publisher.published["deltas"] > 0
        # the ledger brackets the run per instrument
        kinds = []
        for _, fields in client.xrange(stream_name("okx", "BTC-USDT", "ledger")):
            kinds += [rec.LedgerKind(int(k)) for k in rec.decode_batch(fields[b"d"])[1]["kind"]]
        assert kinds[0] is rec.LedgerKind.START and kinds[-1] is rec.LedgerKind.STOP
        assert rec.LedgerKind.RESYNC in kinds  # the book became live
        top = client.hgetall("tob:binance:BTCUSDT")
        assert int(top[b"bid_price"]) < int(top[b"ask_price"])
        assert int(top[b"price_scale"]) == 2
    finally:
        client.close()


def test_embedded_profile_uses_the_in_process_bus_and_the_local_archive(
    compose: Any, tmp_path: Any
) -> None:
    cfg = load_config(
        compose(
            "duration=3",
            "metrics.port=null",
            "capture.record=false",
            "view.enabled=false",
            f"profile.local_archive_dir={tmp_path}",
        )
    )
    t0 = time.time_ns() - 3600 * 10**9  # the simulator stamps messages with the wall clock
    pipe = _run(cfg)
    t1 = time.time_ns() + 3600 * 10**9

    async def lengths() -> dict[str, int]:
        out = {}
        for kind in ("trades", "tops", "ledger"):
            out[kind] = await pipe.bus.length(stream_name("binance", "BTCUSDT", kind))
        return out

    got = asyncio.run(lengths())
    assert got["tops"] > 0 and got["ledger"] > 0
    assert pipe.bus.stats.dropped == 0
    # everything published was persisted once into the embedded archive
    with LocalArchive(tmp_path / "archive.sqlite") as local:
        assert local.count(rec.RecordKind.TRADE) == pipe.publisher.published["trades"] > 0
        assert local.count(rec.RecordKind.TOP) == pipe.publisher.published["tops"]
        assert local.count(rec.RecordKind.LEDGER) == pipe.publisher.published["ledger"]
        reg = pipe.publisher.registry
        inst = reg.instrument_id("okx", "spot", "BTC-USDT")
        venue = reg.venue_id("okx")
        kinds = [
            rec.LedgerKind(int(k))
            for batch in local.read(rec.RecordKind.LEDGER, [inst], t0, t1)
            for k in batch["kind"]
        ]
        assert kinds[0] is rec.LedgerKind.START and kinds[-1] is rec.LedgerKind.STOP
        first = next(local.read(rec.RecordKind.LEDGER, [inst], t0, t1))["exch_ns"][0]
        last = list(local.read(rec.RecordKind.LEDGER, [inst], t0, t1))[-1]["exch_ns"][-1]
        cov = local.coverage(venue, inst, int(first), int(last))
        # complete from the moment the book went live to the stop
        assert cov.complete and cov.complete[-1].end_ns == int(last)
        assert all(g.reason in ("gap", "disconnect") for g in cov.gaps)


def test_book_deltas_and_snapshots_rebuild_the_live_books(
    compose: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replay from a snapshot taken mid-run plus the deltas after it ends exactly at the
    collectors' final books (after a persist through the bus into the embedded archive)."""
    live: set[tuple[str, str]] = set()  # books in sync when the run stopped
    stop = VenueCollector.stop

    async def recording_stop(self: VenueCollector) -> None:
        for symbol in self.symbols:
            book = self.feed.book(symbol, self.book_channel)
            if book is not None and book.in_sync:
                live.add((self.spec.name, symbol))
        await stop(self)

    monkeypatch.setattr(VenueCollector, "stop", recording_stop)
    cfg = load_config(
        compose(
            "duration=5",
            "metrics.port=null",
            "capture.record=false",
            "view.enabled=false",
            "view.interval=0.25",
            "publish.snapshot_interval=1",
            f"profile.local_archive_dir={tmp_path}",
        )
    )
    t0 = time.time_ns() - 3600 * 10**9  # the simulator stamps messages with the wall clock
    pipe = _run(cfg)
    t1 = time.time_ns() + 3600 * 10**9
    pub = pipe.publisher
    assert pub.published["deltas"] > 0 and pub.published["snapshots"] >= 2
    reg = pub.registry
    compared = 0
    with LocalArchive(tmp_path / "archive.sqlite") as local:
        # a Binance futures diff with u == lastUpdateId is applied again onto the snapshot
        # (the venue's rule; idempotent): its identical rows are stored once
        assert 0 < local.count(rec.RecordKind.DELTA) <= pub.published["deltas"]
        for col in pipe.collectors:
            assert col.feed.deltas_overflow == 0
            for symbol in col.symbols:
                book = col.feed.book(symbol, col.book_channel)
                if book is None or (col.spec.name, symbol) not in live:
                    continue
                inst = reg.instrument_id(col.spec.name, col.spec.market, symbol)
                snaps = np.concatenate(list(local.read(rec.RecordKind.SNAPSHOT, [inst], t0, t1)))
                times = np.unique(snaps["exch_ns"])
                assert len(times) >= 2, f"{col.spec.name} {symbol}: fewer than 2 snapshots"
                start = int(times[len(times) // 2]) + 1  # from a snapshot in the middle
                books = ReplayBooks({inst: (book.price_scale, book.size_scale)})
                deltas = np.concatenate(list(local.read(rec.RecordKind.DELTA, [inst], t0, t1)))
                end = int(deltas["exch_ns"].max()) + 1
                batches = list(replay(local, [inst], start, end, [rec.RecordKind.DELTA]))
                assert batches[0][0] is rec.RecordKind.SNAPSHOT
                for _, rows in batches:
                    books.apply(rows)
                got = books.book(inst)
                for side in (BID, ASK):
                    n = book.level_count(side)
                    assert got.level_count(side) == n, f"{col.spec.name} {symbol} side {side}"
                    want_p, want_s = book.top_copy(side, n)
                    got_p, got_s = got.top_copy(side, n)
                    assert np.array_equal(got_p, want_p) and np.array_equal(got_s, want_s)
                compared += 1
    assert compared >= 3
