"""The venue collectors against the exchange simulator: exact books through every fault.

Each test runs the simulator in-process, points a real adapter (picows WebSocket + REST
client + compiled parser) at it over loopback, injects a fault, and requires that the
collector notices it, recovers only the broken book, and ends - once the simulator is
paused and everything it sent has been read - on a book equal to the simulator's true book.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from ext.book import ASK, BID, OrderBook
from orchestrator.collector import BookState, LedgerEvent, LedgerKind, VenueCollector
from orchestrator.sim import Faults, SimConfig, Simulator
from orchestrator.venues import get_venue

pytestmark = pytest.mark.integration

CHANNELS = {
    "binance": ["depth@100ms", "trade", "bookTicker"],
    "binance_usdm": ["depth@100ms", "aggTrade", "bookTicker"],
    "okx": ["books", "trades"],
    "okx_swap": ["books", "trades"],
}
SYMBOL = {
    "binance": "BTCUSDT",
    "binance_usdm": "BTCUSDT",
    "okx": "BTC-USDT",
    "okx_swap": "BTC-USDT-SWAP",
}


def levels(book: OrderBook) -> tuple[list[int], ...]:
    bp, bs = book.top_copy(BID, 100_000)
    ap, asz = book.top_copy(ASK, 100_000)
    return bp.tolist(), bs.tolist(), ap.tolist(), asz.tolist()


async def wait_until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)


def collector(
    sim: Simulator,
    exchange: str,
    events: list[LedgerEvent],
    channels: list[str] | None = None,
    **kw: Any,
) -> VenueCollector:
    urls = sim.urls()[exchange]
    return VenueCollector(
        get_venue(exchange),
        [SYMBOL[exchange]],
        channels or CHANNELS[exchange],
        urls["ws_url"],
        urls["rest_url"],
        on_event=events.append,
        check_interval=0.05,
        snapshot_delay=0.2,
        resubscribe_after=1.0,
        **kw,
    )


async def settle_exact(
    sim: Simulator, col: VenueCollector, exchange: str, timeout: float = 15.0
) -> None:
    """Pause the market and wait until the collector's book equals the truth."""
    symbol = SYMBOL[exchange]
    truth = sim.true_book(exchange, symbol)
    deadline = time.monotonic() + timeout
    while True:
        await sim.pause()
        await asyncio.sleep(0.3)  # everything sent is read by now on loopback
        book, live = col.book(symbol)
        if live and book is not None and book.last_update_id == truth.last_update_id:
            assert levels(book) == levels(truth)
            return
        if time.monotonic() > deadline:
            state = col.state(symbol)
            raise AssertionError(f"{exchange} book never matched the truth (state {state})")
        sim.resume()
        await asyncio.sleep(0.5)


def run(body: Callable[[], Awaitable[None]], timeout: float = 60) -> None:
    async def go() -> None:
        await asyncio.wait_for(body(), timeout)
        await asyncio.sleep(0)
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert leftovers == [], leftovers

    asyncio.run(go())


@pytest.mark.parametrize("exchange", ["binance", "binance_usdm", "okx", "okx_swap"])
def test_collector_builds_the_exact_book(exchange: str) -> None:
    events: list[LedgerEvent] = []

    async def body() -> None:
        async with Simulator(SimConfig(seed=3)) as sim:
            col = collector(sim, exchange, events)
            async with col:
                await wait_until(lambda: col.state(SYMBOL[exchange]) is BookState.LIVE, what="LIVE")
                assert col.scales_source == "metadata"
                await asyncio.sleep(0.5)
                await settle_exact(sim, col, exchange)
                status = col.status()
                assert status["books"][SYMBOL[exchange]]["gaps"] == 0
                assert status["frame_errors"] == 0
                if exchange.startswith("okx"):
                    ck = status["books"][SYMBOL[exchange]]["checksums"]
                    assert ck["verified"] > 0 and ck["mismatched"] == 0

    run(body)
    kinds = [e.kind for e in events]
    assert LedgerKind.CONNECTED in kinds and LedgerKind.SYNCED in kinds
    assert LedgerKind.GAP not in kinds


@pytest.mark.parametrize(
    ("exchange", "faults", "expect", "channels"),
    [
        ("binance", Faults(drop=0.05), LedgerKind.GAP, None),
        ("binance_usdm", Faults(drop=0.05), LedgerKind.GAP, None),
        # depth only: every swapped pair is two diffs, so the `pu` chain must break
        ("binance_usdm", Faults(reorder=0.05), LedgerKind.GAP, ["depth@100ms"]),
        ("okx", Faults(drop=0.05), LedgerKind.GAP, None),
        ("okx", Faults(corrupt_checksum=0.05), LedgerKind.GAP, None),
        ("okx_swap", Faults(duplicate=0.1), None, None),  # duplicates are absorbed
        ("binance", Faults(duplicate=0.1), None, None),
    ],
)
def test_faults_are_detected_and_the_book_recovers_exactly(
    exchange: str, faults: Faults, expect: LedgerKind | None, channels: list[str] | None
) -> None:
    events: list[LedgerEvent] = []

    async def body() -> None:
        async with Simulator(SimConfig(seed=11)) as sim:
            col = collector(sim, exchange, events, channels)
            async with col:
                await wait_until(lambda: col.state(SYMBOL[exchange]) is BookState.LIVE, what="LIVE")
                sim.faults = replace(faults, exchanges=(exchange,))
                if expect is not None:
                    await wait_until(
                        lambda: any(e.kind is expect for e in events), what=str(expect)
                    )
                else:
                    await asyncio.sleep(2.0)
                sim.faults = Faults()
                await settle_exact(sim, col, exchange)

    run(body)
    kinds = [e.kind for e in events]
    if expect is not None:
        assert LedgerKind.RESYNC in kinds and LedgerKind.STALE_END in kinds
    else:
        assert LedgerKind.GAP not in kinds


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_dropped_connections_reconnect_and_resync(exchange: str) -> None:
    events: list[LedgerEvent] = []

    async def body() -> None:
        async with Simulator(SimConfig(seed=5)) as sim:
            col = collector(sim, exchange, events)
            async with col:
                await wait_until(lambda: col.state(SYMBOL[exchange]) is BookState.LIVE, what="LIVE")
                assert (
                    sim.drop_connections(
                        exchange.split("_")[0] if exchange == "okx_swap" else exchange
                    )
                    >= 1
                )
                await wait_until(
                    lambda: sum(e.kind is LedgerKind.CONNECTED for e in events) >= 2,
                    what="reconnect",
                )
                await wait_until(
                    lambda: col.state(SYMBOL[exchange]) is BookState.LIVE, what="LIVE again"
                )
                await settle_exact(sim, col, exchange)
                assert col.status()["reconnects"] >= 1

    run(body)
    kinds = [e.kind for e in events]
    assert LedgerKind.DISCONNECTED in kinds and LedgerKind.STALE_END in kinds


def test_snapshot_rate_limits_and_stale_snapshots_are_retried() -> None:
    events: list[LedgerEvent] = []

    async def body() -> None:
        cfg = SimConfig(seed=9, faults=Faults(rest_429=0.5, stale_snapshot=0.5, retry_after=0))
        async with Simulator(cfg) as sim:
            col = collector(sim, "binance", events)
            async with col:
                await wait_until(
                    lambda: col.state("BTCUSDT") is BookState.LIVE, timeout=30, what="LIVE"
                )
                sim.faults = Faults()
                await settle_exact(sim, col, "binance")

    run(body)


def test_two_venues_at_once_and_one_broken_book_leaves_the_other_alone() -> None:
    events: list[LedgerEvent] = []

    async def body() -> None:
        async with Simulator(SimConfig(seed=21)) as sim:
            a = collector(sim, "binance", events)
            b = collector(sim, "okx", events)
            async with a, b:
                await wait_until(
                    lambda: (
                        a.state("BTCUSDT") is BookState.LIVE
                        and b.state("BTC-USDT") is BookState.LIVE
                    ),
                    what="both LIVE",
                )
                sim.faults = Faults(drop=0.1, exchanges=("okx",))
                await wait_until(
                    lambda: any(e.kind is LedgerKind.GAP for e in events), what="okx gap"
                )
                sim.faults = Faults()
                await settle_exact(sim, b, "okx")
                await settle_exact(sim, a, "binance")

    run(body)
    gaps = [e for e in events if e.kind is LedgerKind.GAP]
    assert gaps and all(e.exchange == "okx" for e in gaps)
    binance_drops = [
        e
        for e in events
        if e.kind is LedgerKind.DISCONNECTED
        and e.exchange == "binance"
        and "stopped" not in e.detail
    ]
    assert binance_drops == []  # only the shutdown closed Binance's connection


def test_unreachable_venue_retries_without_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    events: list[LedgerEvent] = []

    async def body() -> None:
        col = VenueCollector(
            get_venue("okx"),
            ["BTC-USDT"],
            ["books"],
            "ws://127.0.0.1:1/ws/v5/public",
            "http://127.0.0.1:1",
            on_event=events.append,
        )
        col.rest.timeout = 0.5
        async with col:
            await asyncio.sleep(1.0)
            assert col.state("BTC-USDT") is BookState.WAITING
            assert col.book("BTC-USDT") == (None, False)

    run(body)
    assert "Traceback" not in caplog.text
    assert "scales are inferred" in caplog.text


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_stalled_connection_is_detected_and_recovered(exchange: str) -> None:
    events: list[LedgerEvent] = []
    policy = replace(
        get_venue(exchange).policy, stall_floor=0.5, stall_ceiling=1.0, stall_factor=5.0
    )

    async def body() -> None:
        async with Simulator(SimConfig(seed=13)) as sim:
            col = collector(sim, exchange, events, policy=policy)
            async with col:
                await wait_until(lambda: col.state(SYMBOL[exchange]) is BookState.LIVE, what="LIVE")
                sim.faults = Faults(stall=1.0, stall_seconds=30.0, exchanges=(exchange,))
                await wait_until(
                    lambda: any(s.stats.stalls for s in col.sessions), what="stall detected"
                )
                sim.faults = Faults()
                await wait_until(
                    lambda: col.state(SYMBOL[exchange]) is BookState.LIVE, what="LIVE again"
                )
                await settle_exact(sim, col, exchange)

    run(body)
    assert LedgerKind.DISCONNECTED in [e.kind for e in events]


def test_flapping_server_reconnects_are_bounded_and_books_end_exact() -> None:
    events: list[LedgerEvent] = []

    async def body() -> None:
        async with Simulator(SimConfig(seed=17)) as sim:
            col = collector(sim, "okx", events)
            async with col:
                await wait_until(lambda: col.state("BTC-USDT") is BookState.LIVE, what="LIVE")
                sim.faults = Faults(close=0.2, exchanges=("okx",))  # most connections die fast
                await asyncio.sleep(4.0)
                connects = sum(s.stats.connects for s in col.sessions)
                sim.faults = Faults()
                await settle_exact(sim, col, "okx")
        # capped backoff with jitter: a handful of attempts in 4 s, not a storm
        assert 2 <= connects <= 20, connects

    run(body)


def test_soak_high_rate_memory_and_lag_stay_bounded() -> None:
    from orchestrator.sim.config import MarketParams

    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    events: list[LedgerEvent] = []

    async def body() -> None:
        cfg = SimConfig(seed=23, market=MarketParams(event_rate=4000.0))
        async with Simulator(cfg) as sim:
            cols = [collector(sim, ex, events) for ex in ("binance", "okx")]
            for c in cols:
                await c.start()
            try:
                await wait_until(
                    lambda: all(c.state(SYMBOL[c.spec.name]) is BookState.LIVE for c in cols),
                    what="LIVE",
                )
                await asyncio.sleep(2.0)  # warm: buffers and books at their working size
                base = rss()
                frames0 = sum(c.feed.frames for c in cols)
                for _ in range(10):
                    await asyncio.sleep(1.0)
                    for c in cols:
                        c.feed.drain_trades()
                grown = rss()
                frames = sum(c.feed.frames for c in cols) - frames0
                assert frames > 5000, frames
                assert grown - base < 8 << 20, grown - base  # RSS: < 8 MiB over 10 s of traffic
                for c in cols:
                    lat = c.latency_ns()
                    assert len(lat) and float(np.percentile(lat, 99)) < 5e6  # applied within 5 ms
                    assert c.status()["frame_errors"] == 0
                for c in cols:
                    await settle_exact(sim, c, c.spec.name)
            finally:
                for c in cols:
                    await c.stop()

    run(body, timeout=90)
    assert LedgerKind.GAP not in [e.kind for e in events]


def test_binance_server_pings_are_answered_so_the_connection_stays() -> None:
    """The simulator drops clients that do not pong within the timeout (as Binance does)."""
    events: list[LedgerEvent] = []

    async def body() -> None:
        cfg = SimConfig(seed=29, binance_ping_interval=0.2, binance_pong_timeout=0.6)
        async with Simulator(cfg) as sim:
            col = collector(sim, "binance", events)
            async with col:
                await wait_until(lambda: col.state("BTCUSDT") is BookState.LIVE, what="LIVE")
                await asyncio.sleep(3.0)  # ~15 pings, each needing a pong within 0.6 s
                assert sim.stats()["binance"].get("pong_timeouts", 0) == 0
                assert col.status()["reconnects"] == 0

    run(body)
    assert LedgerKind.DISCONNECTED not in [e.kind for e in events[:-1]]
