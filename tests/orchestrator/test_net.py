"""Connection machinery: backoff, budgets, stall watchdog, and WsSession against a real server.

The WebSocket tests run a picows server on loopback whose behaviour each test chooses
(drop, refuse with 429, stay silent, answer or ignore text pings) and check what the
session does about it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from orchestrator.net.backoff import Backoff, ConnectBudget
from orchestrator.net.watchdog import StallWatchdog
from orchestrator.net.ws import EventKind, PingStyle, SessionEvent, WsPolicy, WsSession


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- pure logic -------------------------------------------------------------------------------


@pytest.mark.unit
def test_backoff_full_jitter_is_capped_and_resets() -> None:
    b = Backoff(base=0.5, cap=4.0, healthy_after=60, rng=random.Random(1))
    ceilings = []
    for _ in range(8):
        ceilings.append(b.ceiling())
        d = b.next_delay()
        assert 0 <= d <= ceilings[-1]
    assert ceilings == [0.5, 1, 2, 4, 4, 4, 4, 4]
    delays = [Backoff(rng=random.Random(s)).next_delay() for s in range(200)]
    assert min(delays) < 0.05 and max(delays) > 0.45  # full jitter spreads the whole range
    b.healthy(59.9)
    assert b.failures == 8
    b.healthy(60)
    assert b.failures == 0 and b.ceiling() == 0.5
    assert b.next_delay(retry_after=7.5) == 7.5  # a server's Retry-After is a floor
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)


@pytest.mark.unit
def test_connect_budget_sliding_window_and_block() -> None:
    clock = FakeClock()
    budget = ConnectBudget(3, 1.0, clock=clock)

    async def take(n: int) -> None:
        for _ in range(n):
            await budget.acquire()

    asyncio.run(take(3))
    assert budget.wait_time() == pytest.approx(1.0)
    clock.now += 0.4
    assert budget.wait_time() == pytest.approx(0.6)
    clock.now += 0.6
    assert budget.wait_time() == 0
    budget.block(120)
    assert budget.wait_time() == pytest.approx(120)


@pytest.mark.unit
def test_watchdog_adapts_to_a_quiet_market() -> None:
    clock = FakeClock()
    wd = StallWatchdog(factor=10, floor=2, ceiling=30, alpha=0.2, clock=clock)
    wd.watch("busy")
    wd.watch("quiet")
    for step in range(1, 401):  # 40 s: busy every 0.1 s, quiet every 2 s
        clock.now += 0.1
        wd.seen("busy")
        if step % 20 == 0:
            wd.seen("quiet")
    assert wd.threshold("busy") == 2.0  # 10 x 0.1 s, raised to the floor
    assert wd.threshold("quiet") == pytest.approx(20.0, rel=0.05)
    clock.now += 15
    assert [n for n, _ in wd.stalled()] == ["busy"]  # quiet is still within its normal silence
    clock.now += 6
    assert sorted(n for n, _ in wd.stalled()) == ["busy", "quiet"]
    wd.watch("dead")  # never delivers: caught at the ceiling at the latest
    clock.now += 31
    assert "dead" in [n for n, _ in wd.stalled()]


# -- WsSession against a picows server ---------------------------------------------------------


@dataclass
class ServerState:
    mode: str = "stream"  # stream | silent | drop | refuse429 | close_at_once
    connections: int = 0
    open_now: int = 0
    subscribes: list[bytes] = field(default_factory=list)
    pings: int = 0
    answer_ping: bool = True
    transports: list[WSTransport] = field(default_factory=list)


class ServerListener(WSListener):
    def __init__(self, state: ServerState, conn: int) -> None:
        self.state = state
        self.conn = conn
        self.seq = 0
        self.task: asyncio.Task[None] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.state.connections += 1
        self.state.open_now += 1
        self.state.transports.append(transport)
        if self.state.mode == "close_at_once":
            transport.disconnect(graceful=False)
            return
        if self.state.mode in ("stream", "drop"):
            self.task = asyncio.get_running_loop().create_task(self.pump(transport))

    async def pump(self, transport: WSTransport) -> None:
        while True:
            self.seq += 1
            transport.send(WSMsgType.TEXT, b'{"conn":%d,"seq":%d}' % (self.conn, self.seq))
            if self.state.mode == "drop" and self.seq == 5:
                transport.disconnect(graceful=False)
                return
            await asyncio.sleep(0.01)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            if payload == b"ping":
                self.state.pings += 1
                if self.state.answer_ping:
                    transport.send(WSMsgType.TEXT, b"pong")
            else:
                self.state.subscribes.append(payload)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.state.open_now -= 1
        if self.task is not None:
            self.task.cancel()


Server = tuple[str, ServerState]


async def start_server(state: ServerState) -> tuple[asyncio.Server, str]:
    def router(request: WSUpgradeRequest) -> Any:
        if state.mode == "refuse429":
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(429, b"slow down", {"Retry-After": "0.3"}),
                None,
            )
        return ServerListener(state, state.connections + 1)

    server = await ws_create_server(router, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/ws"


def run_with_server(
    state: ServerState, body: Callable[[str], Awaitable[None]], timeout: float = 20
) -> None:
    async def go() -> None:
        server, url = await start_server(state)
        try:
            await asyncio.wait_for(body(url), timeout)
        finally:
            server.close()
            for t in state.transports:
                t.disconnect(graceful=False)
            await server.wait_closed()
            await asyncio.sleep(0)
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert leftovers == [], leftovers

    asyncio.run(go())


def fast_policy(**kw: Any) -> WsPolicy:
    base: dict[str, Any] = {
        "max_age": None,
        "stall_floor": 5.0,
        "stall_ceiling": 5.0,
        "control_rate": 100.0,
    }
    base.update(kw)
    return WsPolicy(**base)


class Recorder:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.events: list[SessionEvent] = []

    def on_frame(self, payload: memoryview, recv_ns: int) -> None:
        assert recv_ns > 0
        self.frames.append(bytes(payload))

    def on_event(self, event: SessionEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def session(url: str, rec: Recorder, **kw: Any) -> WsSession:
    return WsSession(
        "test",
        url,
        rec.on_frame,
        subscribe=kw.pop("subscribe", lambda: [b'{"op":"subscribe"}']),
        policy=kw.pop("policy", fast_policy()),
        backoff=kw.pop("backoff", Backoff(base=0.05, cap=0.2, rng=random.Random(3))),
        on_event=rec.on_event,
        **kw,
    )


@pytest.mark.integration
def test_session_receives_and_resubscribes_after_drops() -> None:
    state = ServerState(mode="drop")
    rec = Recorder()

    async def body(url: str) -> None:
        s = session(url, rec)
        s.start()
        await wait_until(lambda: state.connections >= 3 and len(rec.frames) >= 12)
        await s.stop()
        assert s.stats.disconnects >= 2
        # every connection subscribed again
        assert len(state.subscribes) >= 3
        assert all(m == b'{"op":"subscribe"}' for m in state.subscribes)
        assert rec.kinds()[:3] == [EventKind.CONNECTED, EventKind.DISCONNECTED, EventKind.CONNECTED]
        drop = rec.events[1]
        assert drop.retry_in is not None and drop.retry_in <= 0.2
        assert rec.frames[0] == b'{"conn":1,"seq":1}'

    run_with_server(state, body)
    assert state.open_now == 0  # shutdown closed everything


@pytest.mark.integration
def test_session_honours_429_retry_after() -> None:
    state = ServerState(mode="refuse429")
    rec = Recorder()

    async def body(url: str) -> None:
        s = session(url, rec)
        s.start()
        await wait_until(lambda: EventKind.RATE_LIMITED in rec.kinds())
        ev = next(e for e in rec.events if e.kind is EventKind.RATE_LIMITED)
        assert ev.detail == "HTTP 429" and ev.retry_in is not None and ev.retry_in >= 0.3
        assert s.budget.wait_time() > 0.1  # the whole venue waits
        state.mode = "stream"
        await wait_until(lambda: len(rec.frames) >= 3)
        await s.stop()

    run_with_server(state, body)


@pytest.mark.integration
def test_silent_connection_is_detected_as_stalled() -> None:
    state = ServerState(mode="silent")
    rec = Recorder()

    async def body(url: str) -> None:
        s = session(url, rec, policy=fast_policy(stall_floor=0.3, stall_ceiling=0.3))
        s.start()
        await wait_until(lambda: EventKind.STALLED in rec.kinds(), timeout=5)
        await wait_until(lambda: state.connections >= 2)
        await s.stop()
        assert s.stats.stalls >= 1

    run_with_server(state, body)


@pytest.mark.integration
def test_rollover_is_make_before_break() -> None:
    state = ServerState(mode="stream")
    rec = Recorder()

    async def body(url: str) -> None:
        s = session(url, rec, policy=fast_policy(max_age=0.4, rollover_jitter=0.0))
        s.start()
        await wait_until(lambda: s.stats.rollovers >= 2 and len(rec.frames) > 60, timeout=8)
        await s.stop()
        kinds = rec.kinds()
        assert EventKind.DISCONNECTED not in kinds[:-1]  # never down during rollovers
        assert kinds.count(EventKind.ROLLOVER) >= 2
        # frames come from one connection at a time, each connection's in order
        conns = [int(f.split(b'"conn":')[1].split(b",")[0]) for f in rec.frames]
        assert conns == sorted(conns)
        assert len(set(conns)) >= 3
        for c in set(conns):
            seqs = [int(f.rsplit(b":", 1)[1][:-1]) for f in rec.frames if b'"conn":%d,' % c in f]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

    run_with_server(state, body)
    assert state.open_now == 0


@pytest.mark.integration
def test_text_ping_keepalive_and_dead_peer() -> None:
    state = ServerState(mode="silent")
    rec = Recorder()
    policy = fast_policy(ping=PingStyle.TEXT, idle_ping_after=0.2, ping_reply_timeout=0.1)

    async def body(url: str) -> None:
        s = session(url, rec, policy=policy)
        s.start()
        await wait_until(lambda: state.pings >= 3)
        assert state.connections == 1  # pongs keep it alive
        assert rec.frames == []  # pongs are not data
        state.answer_ping = False
        await wait_until(lambda: state.connections >= 2, timeout=5)
        await s.stop()

    run_with_server(state, body)


@pytest.mark.integration
def test_flapping_server_gets_bounded_reconnects() -> None:
    state = ServerState(mode="close_at_once")
    rec = Recorder()

    async def body(url: str) -> None:
        s = session(
            url,
            rec,
            backoff=Backoff(base=0.05, cap=0.4, rng=random.Random(5)),
            budget=ConnectBudget(5, 1.0),
        )
        s.start()
        await asyncio.sleep(2.0)
        await s.stop()

    run_with_server(state, body)
    # without backoff and budget this loop would connect thousands of times in 2 s
    assert 3 <= state.connections <= 11


@pytest.mark.integration
def test_handler_errors_do_not_kill_the_connection() -> None:
    state = ServerState(mode="stream")
    rec = Recorder()
    seen: list[int] = []

    def bad(payload: memoryview, recv_ns: int) -> None:
        seen.append(1)
        if len(seen) % 2:
            raise ValueError("bad frame")

    async def body(url: str) -> None:
        s = WsSession("t", url, bad, policy=fast_policy(), on_event=rec.on_event)
        s.start()
        await wait_until(lambda: len(seen) >= 10)
        await s.stop()
        assert s.stats.handler_errors >= 5 and state.connections == 1

    run_with_server(state, body)


@pytest.mark.integration
def test_unreachable_endpoint_retries_quietly(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()

    async def go() -> None:
        s = session("ws://127.0.0.1:1/ws", rec)
        s.start()
        await wait_until(lambda: rec.kinds().count(EventKind.CONNECT_FAILED) >= 3)
        await s.stop()

    asyncio.run(go())
    assert all(e.kind is EventKind.CONNECT_FAILED for e in rec.events)
    assert "ConnectionRefusedError" in rec.events[0].detail
    assert "Traceback" not in caplog.text


@pytest.mark.unit
def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="ping_reply_timeout"):
        WsPolicy(idle_ping_after=1, ping_reply_timeout=2)
    with pytest.raises(ValueError, match="max_age"):
        WsPolicy(max_age=0)
