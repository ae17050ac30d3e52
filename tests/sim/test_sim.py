"""Exchange simulator: wire encoders, market model, and real clients over loopback.

Socket tests (``integration``) connect real clients (picows, a hand-written RFC 6455
client on raw asyncio streams, ``requests`` for REST), feed what they receive into the
project's compiled parsers together with the REST snapshot and metadata, and require the
resulting book to equal the simulator's true book exactly.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from picows import WSListener, WSMsgType, ws_connect

from ext import feed as F
from ext.binance import BinanceFeed
from ext.book import ASK, BID, OrderBook
from ext.okx import OkxFeed
from orchestrator.instruments import apply_scales, load_scales
from orchestrator.sim import (
    DEFAULT_INSTRUMENTS,
    Faults,
    InstrumentSpec,
    MarketModel,
    MarketParams,
    ReplayConfig,
    SimConfig,
    Simulator,
    parse_fault,
)
from orchestrator.sim.binance import DiffStream
from orchestrator.sim.wire import BinanceEncoder, OkxEncoder, fixed

REPO = Path(__file__).resolve().parents[2]
HB_SPOT = [
    REPO / "tests/data/fixtures/hftbacktest/spot/ethusdt_20240808.gz",
    REPO / "tests/data/fixtures/hftbacktest/spot/ethusdt_20240809.gz",
]
FAST = MarketParams(event_rate=400.0, volatility_bps=3.0)


# ---------------------------------------------------------------------------- helpers


def levels(book: OrderBook) -> tuple[list[int], ...]:
    bp, bs = book.top_copy(BID, 100_000)
    ap, asz = book.top_copy(ASK, 100_000)
    return bp.tolist(), bs.tolist(), ap.tolist(), asz.tolist()


def assert_same_book(got: OrderBook | None, truth: OrderBook) -> None:
    assert got is not None
    assert (got.price_scale, got.size_scale) == (truth.price_scale, truth.size_scale)
    assert got.last_update_id == truth.last_update_id
    assert levels(got) == levels(truth)


class Client(WSListener):
    """picows client that keeps every text frame and can wait for a reply."""

    def __init__(self, first: bytes | None = None) -> None:
        self.first = first
        self.frames: list[bytes] = []
        self.pings = 0
        self.transport: Any = None
        self.disconnected = asyncio.Event()

    def on_ws_connected(self, transport: Any) -> None:
        self.transport = transport
        if self.first is not None:
            transport.send(WSMsgType.TEXT, self.first)

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.frames.append(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.PING:
            self.pings += 1
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: Any) -> None:
        self.disconnected.set()

    async def request(
        self, msg: bytes, reply: Callable[[bytes], bool], timeout: float = 5
    ) -> bytes:
        """Send ``msg`` and wait for a frame matching ``reply`` (a barrier: the server
        answers after every frame it queued before)."""
        start = len(self.frames)
        self.transport.send(WSMsgType.TEXT, msg)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for f in self.frames[start:]:
                if reply(f):
                    return f
            await asyncio.sleep(0.005)
        raise AssertionError(f"no reply to {msg!r}")


async def connect(url: str, first: bytes | None = None) -> Client:
    _, listener = await ws_connect(lambda: Client(first), url)
    assert isinstance(listener, Client)
    return listener


def http_get(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


async def rest(url: str) -> requests.Response:
    return await asyncio.to_thread(http_get, url)


async def binance_barrier(c: Client) -> None:
    await c.request(b'{"method":"LIST_SUBSCRIPTIONS","id":999}', lambda f: b'"id":999' in f)


async def okx_barrier(c: Client) -> None:
    await c.request(b"ping", lambda f: f == b"pong")


def run(coro: Awaitable[Any], timeout: float = 20) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


def binance_session(
    market: str, frames: list[bytes], snap_at: int, snapshot: bytes, info: bytes, symbol: str
) -> BinanceFeed:
    feed = BinanceFeed(market)
    apply_scales(feed, load_scales(info).values())
    for f in frames[:snap_at]:
        feed.on_frame(f)
    assert feed.on_snapshot(symbol, snapshot) == F.SNAPSHOT
    for f in frames[snap_at:]:
        feed.on_frame(f)
    return feed


def book_stats(feed: Any, symbol: str, channel: str) -> dict[str, Any]:
    [s] = [x for x in feed.stats() if x["symbol"] == symbol and x["channel"] == channel]
    return s


# ---------------------------------------------------------------------------- unit: encoders


@pytest.mark.unit
def test_fixed_pads_exactly_and_refuses_to_round():
    assert fixed(6425010, 2, 8) == "64250.10000000"
    assert fixed(6425010, 2, -1) == "64250.1"
    assert fixed(125, 3, 3) == "0.125"
    assert fixed(7, 0, 0) == "7"
    with pytest.raises(ValueError, match="needs 3 decimals"):
        fixed(125, 3, 2)


@pytest.mark.unit
def test_binance_payloads_have_venue_shapes_and_parse():
    spot = BinanceEncoder(DEFAULT_INSTRUMENTS[0])
    diff = spot.depth_update(11, 10, 101, 103, 100, [(6425010, 125000)], [(6425020, 0)])
    assert diff == (
        b'{"e":"depthUpdate","E":11,"s":"BTCUSDT","U":101,"u":103,'
        b'"b":[["64250.10000000","1.25000000"]],"a":[["64250.20000000","0.00000000"]]}'
    )
    usdm = BinanceEncoder(DEFAULT_INSTRUMENTS[2])
    msg = json.loads(usdm.depth_update(11, 10, 101, 103, 100, [(642510, 2105)], []))
    assert list(msg) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
    # tick "0.10" is written with 2 decimals, as the recorded USD-M BTCUSDT frames are
    assert msg["b"] == [["64251.00", "2.105"]] and msg["pu"] == 100
    tick = json.loads(usdm.book_ticker(7, 1, 2, (642510, 2105), (642523, 7440)))
    assert tick == {
        "e": "bookTicker", "u": 7, "E": 1, "T": 2, "s": "BTCUSDT",
        "b": "64251.00", "B": "2.105", "a": "64252.30", "A": "7.440",
    }  # fmt: skip
    feed = BinanceFeed("spot")
    feed.set_scales("BTCUSDT", "depth", 2, 5)  # exchangeInfo tick 0.01, step 0.00001
    feed.on_snapshot("BTCUSDT", spot.snapshot(100, [(6425000, 100000)], [(6425020, 100000)]))
    assert feed.on_frame(diff) == F.UPDATE
    assert feed.book("BTCUSDT", "depth").best_bid() == (6425010, 125000)


@pytest.mark.unit
def test_okx_checksum_matches_the_documented_vector():
    # EXCHANGES.md §3.5: bids 3366.1:7, 3366:6; asks 3366.8:9, 3368:8 -> -1881014294
    spec = InstrumentSpec("okx", "ETH-USDT", "0.1", "1", "3366", "1")
    enc = OkxEncoder(spec)
    book = OrderBook(1, 0)
    book.load_snapshot(
        np.array([33661, 33660]), np.array([7, 6]), np.array([33668, 33680]), np.array([9, 8])
    )
    assert F.book_checksum(book) == -1881014294
    frame = enc.book("books", "snapshot", [(33661, 7), (33660, 6)], [(33668, 9), (33680, 8)],
                     1, -1881014294, 5, -1)  # fmt: skip
    assert b'["3366","6","0",' in frame and b'["3368","8","0",' in frame
    feed = OkxFeed()
    assert feed.on_frame(frame) == F.SNAPSHOT
    assert book_stats(feed, "ETH-USDT", "books")["checksums"]["verified"] == 1


@pytest.mark.unit
def test_faults_parse_and_validate():
    f = parse_fault("drop=0.25", Faults())
    f = parse_fault("close_after=40", f)
    f = parse_fault("exchanges=okx,binance", f)
    assert (f.drop, f.close_after, f.exchanges) == (0.25, 40, ("okx", "binance"))
    assert f.applies_to("okx") and not f.applies_to("binance_usdm")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_fault("nonsense=1", f)
    with pytest.raises(ValueError, match="needs a int"):
        parse_fault("close_after=x", f)
    with pytest.raises(ValueError, match="probability"):
        Faults(drop=1.5)
    with pytest.raises(ValueError, match="exchanges"):
        Faults(exchanges=("kraken",))


# ---------------------------------------------------------------------------- unit: market


@pytest.mark.unit
def test_market_events_describe_the_true_book_exactly():
    """Replaying the events' changes into a plain dict book reproduces the truth."""
    model = MarketModel(DEFAULT_INSTRUMENTS[4], FAST, seed=5)
    ref = [dict(zip(*[a.tolist() for a in model.book.top_copy(s, 10**6)], strict=True))
           for s in (BID, ASK)]  # fmt: skip
    last, fills, touch_moves = model.last_update_id, 0, 0
    for i in range(1500):
        for ev in model.step(0.01, i):
            assert ev.first_id == last + 1 and ev.last_id == ev.first_id + len(ev.changes) - 1
            last = ev.last_id
            best_before = max(ref[BID]), min(ref[ASK])
            for side, price, size in ev.changes:
                if size:
                    ref[side][price] = size
                else:
                    ref[side].pop(price, None)
            if ev.fills:
                fills += len(ev.fills)
                taken = ASK if ev.fills[0].taker_buy else BID
                touch = best_before[taken]
                assert ev.fills[0].price == touch  # a market order starts at the touch
                assert all(sum(f.parts) == f.size > 0 for f in ev.fills)
                touch_moves += (min(ref[ASK]) if taken == ASK else max(ref[BID])) != touch
            assert max(ref[BID]) < min(ref[ASK])
            assert (ev.bid, ev.ask) == ((max(ref[BID]), ref[BID][max(ref[BID])]),
                                        (min(ref[ASK]), ref[ASK][min(ref[ASK])]))  # fmt: skip
    got = [dict(zip(*[a.tolist() for a in model.book.top_copy(s, 10**6)], strict=True))
           for s in (BID, ASK)]  # fmt: skip
    assert got == ref and model.book.last_update_id == last
    assert fills > 50 and touch_moves > 5
    assert all(0 < len(r) <= FAST.max_levels for r in ref)


@pytest.mark.unit
def test_market_is_deterministic_per_seed_and_moves_with_volatility():
    def run_model(seed: int, vol: float) -> tuple[list[int], ...]:
        m = MarketModel(DEFAULT_INSTRUMENTS[0], MarketParams(volatility_bps=vol), seed)
        for i in range(3000):
            m.step(0.01, i)
        return levels(m.book)

    a, b, c = run_model(1, 2.0), run_model(1, 2.0), run_model(2, 2.0)
    assert a == b and a != c
    calm = MarketModel(DEFAULT_INSTRUMENTS[0], MarketParams(volatility_bps=0.0), 3)
    wild = MarketModel(DEFAULT_INSTRUMENTS[0], MarketParams(volatility_bps=40.0), 3)
    start = calm.book.best_bid_price
    for i in range(3000):
        calm.step(0.01, i)
        wild.step(0.01, i)
    assert abs(wild.book.best_bid_price - start) > abs(calm.book.best_bid_price - start)


@pytest.mark.unit
def test_diff_stream_ids_are_contiguous():
    model = MarketModel(DEFAULT_INSTRUMENTS[2], FAST, seed=9)
    stream = DiffStream("btcusdt@depth@100ms", 100, 0, model.last_update_id)
    prev_u = model.last_update_id
    for i in range(200):
        for ev in model.step(0.01, i):
            stream.add(ev)
        if i % 10 == 9 and stream.first:
            first, last, prev, _, bids, _ = stream.take()
            assert first == prev_u + 1 and prev == prev_u and last >= first
            assert len({p for p, _ in bids}) == len(bids)
            prev_u = last


# ---------------------------------------------------------------------------- integration


@pytest.mark.integration
def test_binance_spot_combined_stream_and_rest_rebuild_the_true_book():
    async def scenario() -> None:
        async with Simulator(SimConfig(seed=3, market=FAST)) as sim:
            streams = "btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker/ethusdt@depth"
            c = await connect(f"{sim.binance_ws_url}/stream?streams={streams}")
            info = await rest(sim.binance_rest_url + "/api/v3/exchangeInfo")
            assert info.status_code == 200 and int(info.headers["X-MBX-USED-WEIGHT-1M"]) >= 20
            await asyncio.sleep(0.3)
            snap = await rest(sim.binance_rest_url + "/api/v3/depth?symbol=BTCUSDT&limit=5000")
            eth = await rest(sim.binance_rest_url + "/api/v3/depth?symbol=ETHUSDT&limit=1000")
            at = len(c.frames)
            await asyncio.sleep(1.2)
            await sim.pause()
            await binance_barrier(c)
            frames = [f for f in c.frames if f.startswith(b'{"stream"')]
            assert all(json.loads(f)["stream"] in streams.split("/") for f in frames)
            feed = binance_session("spot", frames, at, snap.content, info.content, "BTCUSDT")
            feed.on_snapshot("ETHUSDT", eth.content)
            for sym in ("BTCUSDT", "ETHUSDT"):
                s = book_stats(feed, sym, "depth")
                assert s["sequence_gaps"] == 0 and s["in_sync"] and s["updates_applied"] > 0
                assert_same_book(feed.book(sym, "depth"), sim.true_book("binance", sym))
            s = book_stats(feed, "BTCUSDT", "depth")
            assert s["book_ticker"]["matched"] > 0 and s["book_ticker"]["mismatched"] == 0
            t = book_stats(feed, "BTCUSDT", "trade")
            assert t["count"] > 0 and t["id_gaps"] == 0 and t["id_backwards"] == 0
            bad = await rest(sim.binance_rest_url + "/api/v3/depth?symbol=NOPE")
            assert bad.status_code == 400 and bad.json()["code"] == -1121
            assert (await rest(sim.binance_rest_url + "/api/v3/time")).json()["serverTime"] > 0

    run(scenario())


@pytest.mark.integration
def test_binance_usdm_routes_pu_chain_and_live_subscribe():
    async def scenario() -> None:
        async with Simulator(SimConfig(seed=4, market=FAST)) as sim:
            base = sim.binance_usdm_ws_url
            pub = await connect(f"{base}/public/ws")
            reply = await pub.request(
                b'{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms","btcusdt@aggTrade"],"id":1}',
                lambda f: b'"id":1' in f,
            )
            assert reply == b'{"result":null,"id":1}'
            market = await connect(f"{base}/market/ws/btcusdt@aggTrade")
            legacy = await connect(f"{base}/ws/btcusdt@aggTrade")
            bad = await pub.request(
                b'{"method":"SUBSCRIBE","params":["btcusdt@nope"],"id":2}', lambda f: b'"id":2' in f
            )
            assert json.loads(bad)["error"]["code"] == 2
            info = await rest(sim.binance_usdm_rest_url + "/fapi/v1/exchangeInfo")
            await asyncio.sleep(0.3)
            snap = await rest(
                sim.binance_usdm_rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
            )
            assert {"E", "T", "lastUpdateId"} <= set(snap.json())
            at = len(pub.frames)
            await asyncio.sleep(1.0)
            await sim.pause()
            for c in (pub, market, legacy):
                await binance_barrier(c)
            depth = [f for f in pub.frames if b"depthUpdate" in f]
            pus = [json.loads(f)["pu"] for f in depth]
            us = [json.loads(f)["u"] for f in depth]
            assert pus[1:] == us[:-1]
            assert not any(b'"e":"aggTrade"' in f for f in pub.frames)  # /market class on /public
            aggs = [f for f in market.frames if b'"e":"aggTrade"' in f]
            assert aggs and b"nq" in aggs[0]
            assert not any(b'"e":"aggTrade"' in f for f in legacy.frames)  # legacy URL withholds
            feed = binance_session("usdm", pub.frames, at, snap.content, info.content, "BTCUSDT")
            for f in aggs:
                feed.on_frame(f)
            assert book_stats(feed, "BTCUSDT", "depth")["sequence_gaps"] == 0
            assert book_stats(feed, "BTCUSDT", "aggTrade")["id_gaps"] == 0
            assert_same_book(
                feed.book("BTCUSDT", "depth"), sim.true_book("binance_usdm", "BTCUSDT")
            )
            bad_limit = await rest(
                sim.binance_usdm_rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=7"
            )
            assert bad_limit.status_code == 400

    run(scenario())


@pytest.mark.integration
def test_okx_channels_checksums_and_errors_end_exactly_on_the_true_book():
    async def scenario() -> None:
        async with Simulator(SimConfig(seed=6, market=FAST)) as sim:
            args = [
                {"channel": ch, "instId": inst}
                for inst in ("BTC-USDT", "ETH-USDT-SWAP")
                for ch in ("books", "books50-l2-tbt", "bbo-tbt", "books5", "trades")
            ]
            sub = json.dumps({"id": "s1", "op": "subscribe", "args": args}).encode()
            c = await connect(sim.okx_ws_url, sub)
            tbt = await connect(sim.okx_ws_url)
            await tbt.request(
                b'{"op":"subscribe","args":[{"channel":"books-l2-tbt","instId":"BTC-USDT-SWAP"}]}',
                lambda f: b'"event":"subscribe"' in f,
            )
            err = await tbt.request(
                b'{"id":"e1","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT-SWAP"},'
                b'{"channel":"books","instId":"DOGE-EUR"},{"channel":"candle1m","instId":"BTC-USDT"}]}',
                lambda f: f.count(b'"event":"error"') and b"60018" in f and b"candle1m" in f,
            )
            codes = [json.loads(f).get("code") for f in tbt.frames if b'"event":"error"' in f]
            assert codes == ["64004", "60018", "60018"] and b'"id":"e1"' in err
            await asyncio.sleep(1.2)
            await sim.pause()
            await okx_barrier(c)
            await okx_barrier(tbt)
            acks = [json.loads(f) for f in c.frames if b'"event":"subscribe"' in f]
            assert len(acks) == len(args) and all(a["id"] == "s1" and a["connId"] for a in acks)
            scales = {}
            for inst_type in ("SPOT", "SWAP"):
                r = await rest(f"{sim.okx_rest_url}/api/v5/public/instruments?instType={inst_type}")
                scales.update(load_scales(r.content))
            swap_meta = {d["instId"]: d for d in r.json()["data"]}
            assert swap_meta["ETH-USDT-SWAP"]["ctVal"] == "0.1"
            feed = OkxFeed()
            apply_scales(feed, scales.values())
            for f in c.frames + tbt.frames:
                feed.on_frame(f)
            for inst, exch in (("BTC-USDT", "okx"), ("ETH-USDT-SWAP", "okx_swap")):
                truth = sim.true_book(exch, inst)
                s = book_stats(feed, inst, "books")
                assert s["sequence_gaps"] == 0 and s["checksums"]["mismatched"] == 0
                assert s["checksums"]["verified"] == s["messages"] > 3
                got = feed.book(inst, "books")
                assert got is not None and levels(got) == levels(truth)
                b50 = feed.book(inst, "books50-l2-tbt")
                assert b50 is not None and b50.bid_levels == b50.ask_levels == 50
                assert [x[:50] for x in levels(b50)] == [x[:50] for x in levels(truth)]
                assert book_stats(feed, inst, "books50-l2-tbt")["checksums"]["mismatched"] == 0
                top = feed.book(inst, "bbo-tbt")
                assert top is not None and top.best_bid() == truth.best_bid()
                assert book_stats(feed, inst, "trades")["count"] > 0
            swap = feed.book("BTC-USDT-SWAP", "books-l2-tbt")
            assert swap is not None
            assert levels(swap) == levels(sim.true_book("okx_swap", "BTC-USDT-SWAP"))
            r = await rest(f"{sim.okx_rest_url}/api/v5/market/books?instId=BTC-USDT&sz=400")
            data = r.json()["data"][0]
            assert data["seqId"] == sim.true_book("okx", "BTC-USDT").last_update_id
            assert (await rest(f"{sim.okx_rest_url}/api/v5/public/instruments")).json()[
                "code"
            ] == "50014"

    run(scenario())


@pytest.mark.integration
def test_faults_are_visible_to_the_parsers_and_recovery_is_exact():
    async def scenario() -> None:
        faults = Faults(drop=0.3, exchanges=("binance",))
        async with Simulator(SimConfig(seed=8, market=FAST, faults=faults)) as sim:
            c = await connect(f"{sim.binance_ws_url}/ws/btcusdt@depth@100ms")
            info = await rest(sim.binance_rest_url + "/api/v3/exchangeInfo")
            await asyncio.sleep(0.2)
            snap = await rest(sim.binance_rest_url + "/api/v3/depth?symbol=BTCUSDT&limit=1000")
            at = len(c.frames)
            await asyncio.sleep(1.5)
            feed = binance_session("spot", c.frames, at, snap.content, info.content, "BTCUSDT")
            assert book_stats(feed, "BTCUSDT", "depth")["sequence_gaps"] >= 1
            assert sim.stats()["binance"]["dropped"] >= 1
            # faults off, a fresh snapshot bridges the buffered diffs: exact again
            sim.faults = Faults()
            seen = len(c.frames)
            await asyncio.sleep(0.3)
            snap = await rest(sim.binance_rest_url + "/api/v3/depth?symbol=BTCUSDT&limit=1000")
            at = len(c.frames)
            for f in c.frames[seen:at]:
                feed.on_frame(f)
            assert feed.on_snapshot("BTCUSDT", snap.content) == F.SNAPSHOT
            await asyncio.sleep(0.5)
            await sim.pause()
            await binance_barrier(c)
            for f in c.frames[at:]:
                if b"depthUpdate" in f:
                    feed.on_frame(f)
            assert book_stats(feed, "BTCUSDT", "depth")["resyncs"] >= 1
            assert_same_book(feed.book("BTCUSDT", "depth"), sim.true_book("binance", "BTCUSDT"))
            # every frame twice: the parser flags duplicates and the book stays exact
            sim.faults = Faults(duplicate=1.0)
            mark = len(c.frames)
            sim.resume()
            await asyncio.sleep(0.5)
            await sim.pause()
            await binance_barrier(c)
            results = [feed.on_frame(f) for f in c.frames[mark:] if b"depthUpdate" in f]
            assert F.DUPLICATE in results and F.GAP not in results
            assert_same_book(feed.book("BTCUSDT", "depth"), sim.true_book("binance", "BTCUSDT"))
            # adjacent swaps: the later diff arrives first, a gap for the parser
            sim.faults = Faults(reorder=1.0)
            mark = len(c.frames)
            sim.resume()
            await asyncio.sleep(0.5)
            await sim.pause()
            await binance_barrier(c)
            firsts = [json.loads(f)["U"] for f in c.frames[mark:] if b"depthUpdate" in f]
            assert any(b < a for a, b in itertools.pairwise(firsts))
            results = [feed.on_frame(f) for f in c.frames[mark:] if b"depthUpdate" in f]
            assert F.GAP in results

        corrupt = Faults(corrupt_checksum=0.5, exchanges=("okx",))
        async with Simulator(SimConfig(seed=8, market=FAST, faults=corrupt)) as sim:
            c = await connect(
                sim.okx_ws_url,
                b'{"op":"subscribe","args":[{"channel":"books","instId":"ETH-USDT"}]}',
            )
            await asyncio.sleep(1.0)
            feed = OkxFeed()
            results = [feed.on_frame(f) for f in c.frames]
            assert F.CHECKSUM_MISMATCH in results
            assert book_stats(feed, "ETH-USDT", "books")["checksums"]["mismatched"] >= 1

    run(scenario())


@pytest.mark.integration
def test_rest_faults_and_stale_snapshot():
    async def scenario() -> None:
        async with Simulator(SimConfig(seed=2, faults=Faults(rest_429=1.0, retry_after=7))) as sim:
            r = await rest(sim.binance_rest_url + "/api/v3/depth?symbol=BTCUSDT")
            assert r.status_code == 429 and r.headers["Retry-After"] == "7"
            assert r.json()["code"] == -1003
            r = await rest(sim.okx_rest_url + "/api/v5/market/books?instId=BTC-USDT")
            assert r.status_code == 429 and r.json()["code"] == "50011"
            sim.faults = Faults(rest_418=1.0, retry_after=120)
            r = await rest(sim.binance_usdm_rest_url + "/fapi/v1/depth?symbol=BTCUSDT")
            assert r.status_code == 418 and r.headers["Retry-After"] == "120"
            sim.faults = Faults(rest_5xx=1.0)
            assert (await rest(sim.binance_rest_url + "/api/v3/time")).status_code == 503
            sim.faults = Faults(stale_snapshot=1.0, stale_snapshot_ms=800)
            await asyncio.sleep(1.0)  # the simulator keeps book history while this fault is on
            c = await connect(f"{sim.binance_ws_url}/ws/btcusdt@depth@100ms")
            await asyncio.sleep(0.4)
            snap = await rest(sim.binance_rest_url + "/api/v3/depth?symbol=BTCUSDT&limit=1000")
            feed = BinanceFeed("spot")
            for f in c.frames:
                feed.on_frame(f)
            assert json.loads(snap.content)["lastUpdateId"] < json.loads(c.frames[0])["U"]
            assert feed.on_snapshot("BTCUSDT", snap.content) == F.STALE_SNAPSHOT

    run(scenario())


@pytest.mark.integration
def test_abrupt_close_stall_and_shutdown_leave_nothing_behind():
    async def scenario() -> None:
        before = asyncio.all_tasks()
        faults = Faults(close_after=5, exchanges=("okx",))
        cfg = SimConfig(seed=5, market=FAST, faults=faults, binance_ping_interval=0.1)
        async with Simulator(cfg) as sim:
            o = await connect(
                sim.okx_ws_url,
                b'{"op":"subscribe","args":[{"channel":"bbo-tbt","instId":"BTC-USDT"}]}',
            )
            await asyncio.wait_for(o.disconnected.wait(), 3)
            assert o.transport.close_handshake is None  # no close frame: a TCP drop
            sim.faults = Faults(stall_after=3, stall_seconds=0.6, exchanges=("binance",))
            b = await connect(f"{sim.binance_ws_url}/ws/btcusdt@bookTicker")
            await asyncio.sleep(0.25)
            n = len(b.frames)
            assert n == 2
            await asyncio.sleep(0.25)
            assert len(b.frames) == n and not b.disconnected.is_set()  # silent, still open
            await asyncio.sleep(0.5)
            assert len(b.frames) > n  # the stall ended
            keep = await connect(f"{sim.binance_usdm_ws_url}/public/ws/btcusdt@depth@100ms")
        await asyncio.wait_for(keep.disconnected.wait(), 2)
        assert keep.transport.close_handshake.recv.code.value == 1001
        await asyncio.sleep(0)
        assert asyncio.all_tasks() - before == set()  # no simulator or connection task left

    run(scenario())


@pytest.mark.integration
def test_independent_raw_client_speaks_rfc6455_and_answers_binance_pings():
    """A client written here from RFC 6455 (no WebSocket library) against the server."""

    async def handshake(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        assert head.startswith("HTTP/1.1 101")
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        fields = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:] if line)
        )
        assert fields["sec-websocket-accept"] == accept
        return reader, writer

    async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", await reader.readexactly(8))
        assert not b1 & 0x80  # server frames are never masked
        return b0 & 0x0F, await reader.readexactly(n)

    def frame(opcode: int, payload: bytes) -> bytes:
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body

    async def scenario() -> None:
        # pongs count against the 5 messages/s limit, so ping at most 4 times a second
        cfg = SimConfig(seed=1, market=FAST, binance_ping_interval=0.25, binance_pong_timeout=0.8)
        async with Simulator(cfg) as sim:
            port = int(sim.binance_ws_url.rsplit(":", 1)[1])
            polite_r, polite_w = await handshake(port, "/ws/ethusdt@trade")
            rude_r, rude_w = await handshake(port, "/stream?streams=btcusdt@bookTicker")
            trades, pings, deadline = 0, 0, time.monotonic() + 1.2
            while time.monotonic() < deadline:
                op, payload = await read_frame(polite_r)
                if op == 0x9:
                    pings += 1
                    polite_w.write(frame(0xA, payload))  # pong echoes the ping payload
                elif op == 0x1:
                    msg = json.loads(payload)
                    assert msg["e"] == "trade" and msg["s"] == "ETHUSDT"  # raw: no wrapper
                    trades += 1
            assert pings >= 3 and trades > 0
            # the client that never answers pings is dropped after the pong timeout
            ended = False
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                while True:
                    op, payload = await read_frame(rude_r)
                    if op == 0x1:
                        assert json.loads(payload)["stream"] == "btcusdt@bookTicker"
            ended = True
            assert ended and sim.stats()["binance"]["pong_timeouts"] >= 1
            for w in (polite_w, rude_w):
                w.close()

    run(scenario())


@pytest.mark.integration
def test_okx_ping_pong_and_binance_message_rate_limit():
    async def scenario() -> None:
        async with Simulator(SimConfig(seed=1, market=FAST)) as sim:
            o = await connect(sim.okx_ws_url)
            assert await o.request(b"ping", lambda f: f == b"pong") == b"pong"
            b = await connect(f"{sim.binance_ws_url}/ws")
            for i in range(7):
                b.transport.send(WSMsgType.TEXT, b'{"method":"LIST_SUBSCRIPTIONS","id":%d}' % i)
            await asyncio.wait_for(b.disconnected.wait(), 2)
            assert b.transport.close_handshake.recv.code.value == 1008
            assert sim.stats()["binance"]["rate_limit_disconnects"] == 1

    run(scenario())


@pytest.mark.integration
def test_replay_of_hftbacktest_spot_capture_rebuilds_the_recorded_book():
    async def scenario() -> None:
        cfg = SimConfig(replay=ReplayConfig(tuple(map(str, HB_SPOT)), speed=0.0))
        async with Simulator(cfg) as sim:
            assert sim.instruments("binance") == ["ETHUSDT"]
            c = await connect(
                f"{sim.binance_ws_url}/stream?streams=ethusdt@depth@100ms/ethusdt@trade"
            )
            info = await rest(sim.binance_rest_url + "/api/v3/exchangeInfo?symbol=ETHUSDT")
            filters = {f["filterType"]: f for f in info.json()["symbols"][0]["filters"]}
            assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
            snap = await rest(sim.binance_rest_url + "/api/v3/depth?symbol=ETHUSDT&limit=1000")
            assert snap.json()["lastUpdateId"] == 35346513512  # the recorded snapshot
            assert sim.replay is not None
            await asyncio.wait_for(sim.replay.done.wait(), 15)
            await binance_barrier(c)
            frames = [f for f in c.frames if f.startswith(b'{"stream"')]
            assert len(frames) == 3434 + 3036 + 6106 + 8409  # depth + trades, both days
            feed = BinanceFeed("spot")
            apply_scales(feed, load_scales(info.content).values())
            feed.on_snapshot("ETHUSDT", snap.content)
            for f in frames:
                feed.on_frame(f)
            s = book_stats(feed, "ETHUSDT", "depth")
            assert s["sequence_gaps"] == 0 and s["updates_applied"] > 6000
            assert book_stats(feed, "ETHUSDT", "trade")["id_gaps"] == 0
            assert_same_book(feed.book("ETHUSDT", "depth"), sim.true_book("binance", "ETHUSDT"))

    run(scenario(), timeout=40)


# ---------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.sim", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.integration
def test_cli_prints_urls_serves_and_stops_cleanly_on_sigint():
    proc = _cli("--seed", "2", "--json", "--symbols", "BTCUSDT,BTC-USDT", "--fault", "drop=0.01")
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        r = requests.get(
            urls["okx"]["rest_url"] + "/api/v5/public/instruments?instType=SPOT", timeout=5
        )
        assert [d["instId"] for d in r.json()["data"]] == ["BTC-USDT"]
        r = requests.get(urls["binance_usdm"]["rest_url"] + "/fapi/v1/exchangeInfo", timeout=5)
        assert [s["symbol"] for s in r.json()["symbols"]] == ["BTCUSDT"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.integration
def test_cli_bad_arguments_exit_2_with_one_line():
    for args in (("--fault", "explode=1"), ("--port-base", "x"), ("--replay", "/no/such/file")):
        proc = _cli(*args)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith("error: "), err


@pytest.mark.integration
def test_replay_of_hftbacktest_usdm_capture_buffers_diffs_received_before_the_snapshot():
    path = REPO / "tests/data/fixtures/hftbacktest/usdm/btcusdt_20240808.gz"

    async def scenario() -> None:
        cfg = SimConfig(replay=ReplayConfig((str(path),), speed=0.0))
        async with Simulator(cfg) as sim:
            c = await connect(f"{sim.binance_usdm_ws_url}/public/ws/btcusdt@depth@0ms")
            info = await rest(sim.binance_usdm_rest_url + "/fapi/v1/exchangeInfo")
            snap = await rest(
                sim.binance_usdm_rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
            )
            assert sim.replay is not None
            await asyncio.wait_for(sim.replay.done.wait(), 20)
            await binance_barrier(c)
            frames = [f for f in c.frames if b"depthUpdate" in f]
            assert len(frames) == 6551 and not frames[0].startswith(b'{"stream"')  # raw /ws
            feed = BinanceFeed("usdm")
            apply_scales(feed, load_scales(info.content).values())
            feed.on_snapshot("BTCUSDT", snap.content)
            for f in frames:
                feed.on_frame(f)
            s = book_stats(feed, "BTCUSDT", "depth")
            assert s["sequence_gaps"] == 0 and s["updates_dropped"] > 0
            truth = sim.true_book("binance_usdm", "BTCUSDT")
            assert_same_book(feed.book("BTCUSDT", "depth"), truth)

    run(scenario(), timeout=40)
