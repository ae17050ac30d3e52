"""The bus on real Redis Streams and in-process: same behaviour, delivery guarantees, faults.

Fault tests start their own throwaway ``redis-server`` on a free port so they can kill and
restart it without touching the shared server.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.data.bus import (
    Bus,
    BusError,
    InProcessBus,
    RedisStreamsBus,
    stream_name,
)
from orchestrator.errors import ServiceUnavailableError

pytestmark = pytest.mark.integration

S1 = stream_name("binance", "BTCUSDT", "trades")
S2 = stream_name("okx", "BTC-USDT", "deltas")


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture(params=["inprocess", "redis"])
def make_bus(request: pytest.FixtureRequest) -> Callable[..., Bus]:
    if request.param == "inprocess":
        return lambda **kw: InProcessBus(**kw)
    url = request.getfixturevalue("redis_url")
    return lambda **kw: RedisStreamsBus(url, **kw)


def payloads(n: int, tag: bytes = b"") -> list[bytes]:
    return [tag + i.to_bytes(4, "little") + b"\x00\xff" * (i % 7) for i in range(n)]


def test_publish_read_ack_roundtrip(make_bus: Callable[..., Bus]) -> None:
    async def go() -> None:
        async with make_bus(flush_batch=1000) as bus:
            await bus.ensure_group(S1, "persist")
            await bus.ensure_group(S2, "persist")
            sent1, sent2 = payloads(50, b"a"), payloads(30, b"b")
            for p in sent1:
                await bus.publish(S1, p)
            for p in sent2:
                await bus.publish(S2, p)
            assert await bus.read("persist", "w1", [S1], block_ms=0) == []  # not flushed yet
            assert await bus.flush()
            got = await bus.read("persist", "w1", [S1, S2], count=1000, block_ms=0)
            assert [e.payload for e in got if e.stream == S1] == sent1
            assert [e.payload for e in got if e.stream == S2] == sent2
            ids = [e.id for e in got if e.stream == S1]
            assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
            lag = await bus.lag(S1, "persist")
            assert (lag.undelivered, lag.pending) == (0, 50)
            assert await bus.ack("persist", got) == 80
            assert await bus.ack("persist", got) == 0  # acking twice is harmless
            lag = await bus.lag(S1, "persist")
            assert (lag.undelivered, lag.pending, lag.lag_ms) == (0, 0, 0.0)
            assert bus.stats.published == bus.stats.flushed == 80
            assert bus.stats.dropped == 0

    run(go())


def test_unacked_entries_come_back_and_dead_consumer_is_claimed(
    make_bus: Callable[..., Bus],
) -> None:
    async def go() -> None:
        async with make_bus() as bus:
            await bus.ensure_group(S1, "persist")
            for p in payloads(10):
                await bus.publish(S1, p)
            await bus.flush()
            first = await bus.read("persist", "dead", [S1], count=4, block_ms=0)
            rest = await bus.read("persist", "alive", [S1], count=100, block_ms=0)
            assert len(first) == 4 and len(rest) == 6
            await bus.ack("persist", rest)
            # a restarted consumer re-reads its own pending entries first
            again = await bus.read("persist", "dead", [S1], pending=True)
            assert [e.id for e in again] == [e.id for e in first]
            assert await bus.claim_stale(S1, "persist", "alive", min_idle_ms=60_000) == []
            await asyncio.sleep(0.15)
            claimed = await bus.claim_stale(S1, "persist", "alive", min_idle_ms=100)
            assert [e.payload for e in claimed] == [e.payload for e in first]
            assert (await bus.lag(S1, "persist")).pending == 4
            assert await bus.ack("persist", claimed) == 4
            assert (await bus.lag(S1, "persist")).pending == 0

    run(go())


def test_own_pending_entries_page_and_claims_back_off_per_delivery(
    make_bus: Callable[..., Bus],
) -> None:
    async def go() -> None:
        async with make_bus(maxlen=1000) as bus:
            await bus.ensure_group(S1, "persist")
            for p in payloads(10):
                await bus.publish(S1, p)
            await bus.flush()
            mine = await bus.read("persist", "bridge", [S1], count=100, block_ms=0)
            ids = [e.id for e in mine]
            # own pending entries, a page at a time after the last id seen
            page1 = await bus.read("persist", "bridge", [S1], count=4, block_ms=0, pending=True)
            page2 = await bus.read(
                "persist", "bridge", [S1], 4, 0, pending=True, after=page1[-1].id
            )
            page3 = await bus.read(
                "persist", "bridge", [S1], 4, 0, pending=True, after=page2[-1].id
            )
            assert [e.id for e in page1 + page2 + page3] == ids
            # the pages counted a second delivery of each: with backoff 2 x 100 ms are due
            await asyncio.sleep(0.12)
            assert await bus.claim_stale(S1, "persist", "b", 100, backoff=True) == []
            # without backoff the idle time alone decides: all ten (and a delivery each)
            assert len(await bus.claim_stale(S1, "persist", "b", 100)) == 10
            await bus.ack("persist", mine[:8])
            await asyncio.sleep(0.45)  # 2 entries, 3 deliveries: need 4 x 100 ms
            got = await bus.claim_stale(S1, "persist", "c", 100, backoff=True)
            assert [e.id for e in got] == ids[8:]
            assert await bus.claim_stale(S1, "persist", "c", 100, backoff=True) == []
            await asyncio.sleep(0.45)  # 4 deliveries now: 8 x 100 ms, not yet
            assert await bus.claim_stale(S1, "persist", "c", 100, backoff=True) == []
            await asyncio.sleep(0.4)
            assert len(await bus.claim_stale(S1, "persist", "c", 100, backoff=True)) == 2

    run(go())


def test_lag_counts_undelivered_and_ages(make_bus: Callable[..., Bus]) -> None:
    async def go() -> None:
        async with make_bus() as bus:
            await bus.ensure_group(S1, "persist")
            for p in payloads(10):
                await bus.publish(S1, p)
            await bus.flush()
            await asyncio.sleep(0.05)
            got = await bus.read("persist", "w", [S1], count=3, block_ms=0)
            lag = await bus.lag(S1, "persist")
            assert (lag.undelivered, lag.pending) == (7, 3)
            assert 40 <= lag.lag_ms < 10_000
            await bus.ack("persist", got)
            assert (await bus.lag(S1, "persist")).undelivered == 7

    run(go())


def test_blocking_read_wakes_on_publish(make_bus: Callable[..., Bus]) -> None:
    async def go() -> None:
        async with make_bus(flush_batch=1) as bus:
            await bus.ensure_group(S1, "g")

            async def later() -> None:
                await asyncio.sleep(0.1)
                await bus.publish(S1, b"x")

            task = asyncio.create_task(later())
            t0 = time.monotonic()
            got = await bus.read("g", "c", [S1], block_ms=5000)
            await task
            assert [e.payload for e in got] == [b"x"]
            assert time.monotonic() - t0 < 3
            t0 = time.monotonic()
            assert await bus.read("g", "c", [S1], block_ms=100) == []
            assert time.monotonic() - t0 >= 0.09

    run(go())


def test_streams_are_bounded(make_bus: Callable[..., Bus]) -> None:
    async def go() -> None:
        async with make_bus(maxlen=100, flush_batch=500) as bus:
            for p in payloads(2000):
                await bus.publish(S1, p)
            await bus.flush()
            n = await bus.length(S1)
            # Redis trims ``MAXLEN ~`` at whole radix-tree nodes (100 entries by default)
            assert 100 <= n <= 300

    run(go())


def test_top_of_book_cache_keeps_latest(make_bus: Callable[..., Bus]) -> None:
    async def go() -> None:
        async with make_bus() as bus:
            key = "tob:binance:BTCUSDT"
            bus.cache_top(key, {"bid_px": 100, "ask_px": 101, "ts": 1})
            bus.cache_top(key, {"bid_px": 102, "ask_px": 103, "ts": 2})
            assert await bus.get_top(key) == {}
            await bus.flush()
            assert await bus.get_top(key) == {"bid_px": "102", "ask_px": "103", "ts": "2"}

    run(go())


def test_misuse_is_a_clear_error(make_bus: Callable[..., Bus]) -> None:
    async def go() -> None:
        async with make_bus() as bus:
            with pytest.raises(BusError, match="no consumer group 'nope'"):
                await bus.read("nope", "c", [S1], block_ms=0)
            with pytest.raises(BusError, match="payload must be bytes"):
                await bus.publish(S1, "text")  # type: ignore[arg-type]

    run(go())
    with pytest.raises(BusError, match="venue"):
        stream_name("bin:ance", "X", "trades")
    with pytest.raises(BusError, match=">= 1"):
        InProcessBus(maxlen=0)


# -- faults on a private redis-server ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A throwaway redis-server this test may kill and restart."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server not on PATH"
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_redis_restart_loses_no_acknowledged_entry_and_counts_drops(
    private_redis: PrivateRedis,
) -> None:
    async def go() -> None:
        bus = RedisStreamsBus(
            private_redis.url, timeout=0.5, flush_batch=10_000, max_buffer_entries=300
        )
        await bus.ensure_group(S1, "persist")
        before = payloads(100, b"pre")
        for p in before:
            await bus.publish(S1, p)
        assert await bus.flush()

        private_redis.kill()
        during = payloads(500, b"down")
        for p in during:
            await bus.publish(S1, p)  # never raises while Redis is down
        assert not await bus.flush()
        assert bus.stats.flush_failures == 1
        assert bus.stats.buffered == 300
        assert bus.stats.dropped == 200 and bus.stats.dropped_by_stream == {S1: 200}
        with pytest.raises(ServiceUnavailableError, match=f"127.0.0.1:{private_redis.port}"):
            await bus.read("persist", "c", [S1], block_ms=0)

        private_redis.start()  # AOF with fsync always: the acknowledged entries survive
        assert await bus.flush()
        got = await bus.read("persist", "c", [S1], count=10_000, block_ms=0)
        assert [e.payload for e in got] == before + during[200:]
        assert bus.stats.published == 600 and bus.stats.flushed == 400
        await bus.aclose()

    run(go())


def test_background_flusher_recovers_after_outage(private_redis: PrivateRedis) -> None:
    async def go() -> None:
        bus = RedisStreamsBus(private_redis.url, timeout=0.3, flush_batch=10_000)
        bus.start(interval=0.02, max_backoff=0.2)
        private_redis.kill()
        for p in payloads(50):
            await bus.publish(S1, p)
        await asyncio.sleep(0.3)
        assert bus.stats.buffered == 50 and bus.stats.flush_failures >= 1
        private_redis.start()
        deadline = time.monotonic() + 5
        while bus.stats.buffered and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert bus.stats.buffered == 0
        assert await bus.length(S1) == 50
        await bus.aclose()

    run(go())


def test_unreachable_redis_is_a_clear_error() -> None:
    async def go() -> None:
        bus = RedisStreamsBus(f"redis://:hunter2@127.0.0.1:{free_port()}/0", timeout=0.3)
        await bus.publish(S1, b"x")
        assert not await bus.flush()
        with pytest.raises(ServiceUnavailableError) as err:
            await bus.ensure_group(S1, "g")
        assert "hunter2" not in str(err.value) and "not reachable" in str(err.value)
        await bus.aclose()

    run(go())
