"""One managed WebSocket connection (picows): connect, subscribe, keep alive, reconnect, roll over.

A :class:`WsSession` keeps one logical stream connection to a venue alive forever:

* connects through the venue's shared :class:`~orchestrator.net.backoff.ConnectBudget`,
  and after a failure waits a capped exponential backoff with full jitter (a ``Retry-After``
  from a 429/418 handshake answer is the floor, and blocks the whole venue's budget);
* sends the subscribe messages paced to the venue's control-message rate;
* hands every data frame's payload to ``on_frame(payload, recv_ns)`` *inside* picows'
  callback (the memoryview is only valid there; the compiled parsers read it in place), so no
  per-frame Python work is done here beyond that call;
* keeps the link alive the venue's way: Binance sends protocol pings that picows answers
  with the same payload; OKX expects the client to send the text ``ping`` when idle and
  answers ``pong`` (picows' user-specific ping, which also disconnects when no pong comes);
* watches for silence (:class:`~orchestrator.net.watchdog.StallWatchdog`) and reconnects a
  socket that stopped delivering while TCP stays up;
* rolls over before the venue's connection lifetime (Binance: 24 h) make-before-break: the
  replacement connects and subscribes while the old one keeps delivering, and frames switch
  to the new socket when its first data frame arrives; only then is the old one closed;
* reports every connect, disconnect, stall, rollover and rate limit as a
  :class:`SessionEvent` (the completeness ledger's raw material).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from orchestrator.config.secrets import redact_url
from orchestrator.net.backoff import Backoff, ConnectBudget
from orchestrator.net.watchdog import StallWatchdog

__all__ = ["EventKind", "PingStyle", "SessionEvent", "WsPolicy", "WsSession"]

log = logging.getLogger(__name__)

FrameHandler = Callable[[memoryview, int], None]


class PingStyle(enum.Enum):
    """How a venue keeps a connection alive."""

    SERVER = "server"  # server sends protocol pings; we answer (Binance)
    TEXT = "text"  # client sends text "ping" when idle, server answers "pong" (OKX)


class EventKind(enum.Enum):
    """What happened to a session."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CONNECT_FAILED = "connect_failed"
    RATE_LIMITED = "rate_limited"
    STALLED = "stalled"
    ROLLOVER = "rollover"
    HANDLER_ERROR = "handler_error"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One ledger-worthy event of a session.

    Attributes
    ----------
    kind
        What happened.
    session
        Session name.
    ts_ns
        Local wall-clock time in ns.
    detail
        Human-readable detail (never contains credentials).
    retry_in
        For failures: seconds until the next attempt.
    """

    kind: EventKind
    session: str
    ts_ns: int
    detail: str = ""
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class WsPolicy:
    """Per-venue connection rules (EXCHANGES.md sections 1.2, 2.2, 3.2 and 6).

    Attributes
    ----------
    ping
        Keep-alive style.
    idle_ping_after
        TEXT style: send ``ping`` after this many idle seconds (OKX: < 30).
    ping_reply_timeout
        TEXT style: disconnect when no ``pong`` within this many seconds.
    max_age
        Roll over before this connection age in seconds (Binance 24 h); ``None``: never.
    rollover_jitter
        Random seconds subtracted from ``max_age`` per connection, so connections do not
        all roll over together.
    overlap_timeout
        Longest time the old connection is kept during a rollover waiting for the new one's
        first frame.
    control_rate
        Control messages per second allowed by the venue (subscribe pacing).
    handshake_timeout
        WebSocket handshake timeout in seconds.
    max_frame_size
        Largest accepted frame in bytes.
    stall_floor, stall_ceiling, stall_factor
        :class:`StallWatchdog` parameters for the whole connection.
    """

    ping: PingStyle = PingStyle.SERVER
    idle_ping_after: float = 20.0
    ping_reply_timeout: float = 10.0
    max_age: float | None = 23.5 * 3600
    rollover_jitter: float = 1800.0
    overlap_timeout: float = 10.0
    control_rate: float = 4.0
    handshake_timeout: float = 5.0
    max_frame_size: int = 8 << 20
    stall_floor: float = 10.0
    stall_ceiling: float = 60.0
    stall_factor: float = 20.0

    def __post_init__(self) -> None:
        if not 0 < self.ping_reply_timeout <= self.idle_ping_after:
            raise ValueError("WsPolicy needs 0 < ping_reply_timeout <= idle_ping_after")
        if self.max_age is not None and self.max_age <= 0:
            raise ValueError("WsPolicy.max_age must be positive (or None)")
        if self.control_rate < 0 or self.handshake_timeout <= 0 or self.overlap_timeout < 0:
            raise ValueError("WsPolicy rates and timeouts must be positive")


@dataclass(slots=True)
class SessionStats:
    """Counters of one session."""

    connects: int = 0
    failures: int = 0
    disconnects: int = 0
    stalls: int = 0
    rollovers: int = 0
    frames: int = 0
    handler_errors: int = 0
    connected_since: float | None = None
    history: list[str] = field(default_factory=list)


class _Listener(WSListener):
    """picows callbacks of one physical connection."""

    def __init__(self, session: WsSession, generation: int) -> None:
        self.session = session
        self.generation = generation
        self.active = True  # frames of an inactive (rolled-over) connection are ignored
        self.first_frame: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            recv_ns = time.time_ns()
            session = self.session
            if not self.active:
                return
            if not self.first_frame.done():
                self.first_frame.set_result(None)
                if session._live is not self:
                    session._switch_to(self)
            session._watchdog.seen("connection")
            session.stats.frames += 1
            try:
                session.on_frame(frame.get_payload_as_memoryview(), recv_ns)
            except Exception as exc:  # a handler bug must not kill the connection
                session._handler_error(exc)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, b"ping")

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        return bool(
            frame.msg_type is WSMsgType.TEXT
            and frame.payload_size == 4
            and frame.get_payload_as_bytes() == b"pong"
        )


class WsSession:
    """A WebSocket connection kept alive forever (see the module docstring).

    Parameters
    ----------
    name
        Label for logs and events (e.g. ``"binance/spot/0"``).
    url
        The stream URL (may already carry the streams, Binance combined form).
    on_frame
        Called with each data frame's payload (valid only during the call) and its local
        receive time in ns.
    subscribe
        Returns the control messages to send after each connect (called anew every time,
        so the current subscription set is used).
    policy
        Venue connection rules.
    budget
        Connection budget shared by every session of the venue.
    backoff
        Reconnect pacing (a new one per session by default).
    on_event
        Receives every :class:`SessionEvent`.
    """

    def __init__(
        self,
        name: str,
        url: str,
        on_frame: FrameHandler,
        subscribe: Callable[[], Sequence[bytes]] = lambda: (),
        policy: WsPolicy | None = None,
        budget: ConnectBudget | None = None,
        backoff: Backoff | None = None,
        on_event: Callable[[SessionEvent], None] | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(
                f"{name}: WebSocket URL must start with ws:// or wss://, not {redact_url(url)!r}"
            )
        self.name = name
        self.url = url
        self.on_frame = on_frame
        self.subscribe = subscribe
        self.policy = policy or WsPolicy()
        self.budget = budget or ConnectBudget(300, 300.0)
        self.backoff = backoff or Backoff()
        self.on_event = on_event
        self.stats = SessionStats()
        self._safe_url = redact_url(url)
        p = self.policy
        self._watchdog = StallWatchdog(
            factor=p.stall_factor, floor=p.stall_floor, ceiling=p.stall_ceiling
        )
        self._live: _Listener | None = None
        self._transports: dict[int, WSTransport] = {}
        self._generation = 0
        self._stopping = asyncio.Event()
        self._reconnect = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    # -- public -----------------------------------------------------------------------------

    def start(self) -> None:
        """Run the session in a background task."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"ws:{self.name}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Close every connection gracefully and end :meth:`run`."""
        self._stopping.set()
        self._reconnect.set()
        for t in list(self._transports.values()):
            with contextlib.suppress(Exception):
                t.send_close(WSCloseCode.OK)
                t.disconnect()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    def reconnect(self, reason: str) -> None:
        """Drop the live connection and connect again (e.g. a channel stalled)."""
        log.info("%s: reconnect requested: %s", self.name, reason)
        self._reconnect.set()

    def send(self, message: bytes) -> bool:
        """Send a control message on the live connection; ``False`` when not connected."""
        live = self._live
        t = self._transports.get(live.generation) if live is not None else None
        if t is None:
            return False
        t.send(WSMsgType.TEXT, message)
        return True

    @property
    def connected(self) -> bool:
        """Whether a connection is live."""
        return self._live is not None

    # -- internals --------------------------------------------------------------------------

    def _emit(self, kind: EventKind, detail: str = "", retry_in: float | None = None) -> None:
        self.stats.history.append(kind.value)
        if len(self.stats.history) > 256:
            del self.stats.history[:128]
        event = SessionEvent(kind, self.name, time.time_ns(), detail, retry_in)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # pragma: no cover - reporting must not break the session
                log.exception("%s: event handler failed", self.name)

    def _handler_error(self, exc: Exception) -> None:
        self.stats.handler_errors += 1
        if self.stats.handler_errors <= 10 or self.stats.handler_errors % 1000 == 0:
            log.error("%s: frame handler raised %s: %s", self.name, type(exc).__name__, exc)
        self._emit(EventKind.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")

    def _switch_to(self, listener: _Listener) -> None:
        old = self._live
        self._live = listener
        if old is not None and old is not listener:
            old.active = False
            t = self._transports.get(old.generation)
            if t is not None:
                t.send_close(WSCloseCode.GOING_AWAY, b"rollover")
                t.disconnect()

    async def _open(self) -> tuple[WSTransport, _Listener]:
        await self.budget.acquire()
        self._generation += 1
        gen = self._generation
        p = self.policy
        text_ping = p.ping is PingStyle.TEXT
        listener = _Listener(self, gen)
        transport, _ = await ws_connect(
            lambda: listener,
            self.url,
            websocket_handshake_timeout=p.handshake_timeout,
            enable_auto_ping=text_ping,
            auto_ping_idle_timeout=p.idle_ping_after,
            auto_ping_reply_timeout=p.ping_reply_timeout,
            auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE,
            enable_auto_pong=True,
            max_frame_size=p.max_frame_size,
        )
        self._transports[gen] = transport
        for i, msg in enumerate(self.subscribe()):
            if i and p.control_rate > 0:
                await asyncio.sleep(1.0 / p.control_rate)
            transport.send(WSMsgType.TEXT, msg)
        return transport, listener

    def _retry_after(self, exc: BaseException) -> tuple[float | None, str]:
        if isinstance(exc, WSInvalidStatusError) and exc.response is not None:
            status = int(exc.response.status)
            value = exc.response.headers.get("Retry-After")
            retry = None
            if value is not None:
                with contextlib.suppress(ValueError):
                    retry = float(value)
            if status in (418, 429):
                if retry is None:
                    retry = 60.0 if status == 429 else 120.0
                self.budget.block(retry)
            return retry, f"HTTP {status}"
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def run(self) -> None:
        """Connect, serve and reconnect until :meth:`stop`."""
        current: tuple[WSTransport, _Listener] | None = None
        while not self._stopping.is_set():
            if current is None:
                try:
                    current = await self._open()
                except (OSError, WSError, TimeoutError) as exc:
                    retry_after, what = self._retry_after(exc)
                    delay = self.backoff.next_delay(retry_after)
                    self.stats.failures += 1
                    kind = EventKind.RATE_LIMITED if retry_after else EventKind.CONNECT_FAILED
                    log.warning(
                        "%s: cannot connect to %s (%s); retrying in %.1f s",
                        self.name,
                        self._safe_url,
                        what,
                        delay,
                    )
                    self._emit(kind, what, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    continue
                self._live = current[1]
                self.stats.connects += 1
                self._emit(EventKind.CONNECTED, self._safe_url)
            transport, listener = current
            started = time.monotonic()
            self.stats.connected_since = started
            self._watchdog.watch("connection")
            reason, replacement = await self._serve(transport, listener)
            uptime = time.monotonic() - started
            self.backoff.healthy(uptime)
            self._transports.pop(listener.generation, None)
            if replacement is not None:  # rolled over: serve the new connection
                current = replacement
                continue
            current = None
            self._live = None
            self.stats.connected_since = None
            self.stats.disconnects += 1
            if self._stopping.is_set():
                self._emit(EventKind.DISCONNECTED, "stopped")
                break
            delay = self.backoff.next_delay()
            log.warning(
                "%s: disconnected (%s) after %.1f s; reconnecting in %.2f s",
                self.name,
                reason,
                uptime,
                delay,
            )
            self._emit(EventKind.DISCONNECTED, reason, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _serve(
        self, transport: WSTransport, listener: _Listener
    ) -> tuple[str, tuple[WSTransport, _Listener] | None]:
        """Wait until the connection ends or is replaced; returns why (and the replacement)."""
        p = self.policy
        age = None
        if p.max_age is not None:
            age = max(1.0, p.max_age - self._rng.uniform(0.0, p.rollover_jitter))
        deadline = time.monotonic() + age if age is not None else None
        closed = asyncio.ensure_future(transport.wait_disconnected())
        try:
            while True:
                self._reconnect.clear()
                tick = min(1.0, p.stall_floor / 2)
                if deadline is not None:
                    tick = max(0.0, min(tick, deadline - time.monotonic()))
                waiter = asyncio.ensure_future(self._reconnect.wait())
                done, _ = await asyncio.wait(
                    {closed, waiter}, timeout=tick, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                if closed in done:
                    return self._close_reason(transport, closed), None
                if self._reconnect.is_set():
                    transport.disconnect()
                    await asyncio.wait({closed})
                    return ("stopped" if self._stopping.is_set() else "reconnect requested"), None
                stalled = self._watchdog.stalled()
                if stalled:
                    silence = stalled[0][1]
                    self.stats.stalls += 1
                    self._emit(EventKind.STALLED, f"silent for {silence:.1f} s")
                    transport.disconnect()
                    await asyncio.wait({closed})
                    return f"stalled ({silence:.1f} s silent)", None
                if deadline is not None and time.monotonic() >= deadline:
                    replacement = await self._rollover(listener)
                    if replacement is not None:
                        return "rolled over", replacement
                    deadline = time.monotonic() + 60.0  # replacement failed: retry later
        finally:
            if not closed.done():
                closed.cancel()

    @staticmethod
    def _close_reason(transport: WSTransport, closed: asyncio.Future[None]) -> str:
        exc = closed.exception() if not closed.cancelled() else None
        hs = transport.close_handshake
        if hs is not None and hs.recv is not None:
            return f"closed by server ({hs.recv.code}, {hs.recv.reason})"
        if exc is not None:
            return f"{type(exc).__name__}: {exc}"
        return "connection lost"

    async def _rollover(self, old: _Listener) -> tuple[WSTransport, _Listener] | None:
        """Open the replacement while ``old`` keeps delivering; switch at its first frame."""
        self.stats.rollovers += 1
        self._emit(EventKind.ROLLOVER, "connection age limit")
        try:
            transport, new = await self._open()
        except (OSError, WSError, TimeoutError) as exc:
            _, what = self._retry_after(exc)
            log.warning("%s: rollover connection failed (%s); keeping the old one", self.name, what)
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(new.first_frame), self.policy.overlap_timeout)
        if self._live is not new:
            self._switch_to(new)
        self.stats.connects += 1
        self._emit(EventKind.CONNECTED, f"{self._safe_url} (rollover)")
        return transport, new
