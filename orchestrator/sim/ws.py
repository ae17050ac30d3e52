"""WebSocket plumbing shared by the venue servers: connections, fault injection, lifecycle.

A :class:`WsHub` owns one picows server (``ws_create_server``) and its connections; the
venue subclasses route upgrade requests and handle client messages. Every market-data
frame goes through :meth:`SimConnection.send_data`, where the configured
:class:`~orchestrator.sim.config.Faults` act (drop, duplicate, adjacent swap, corrupt
checksum, stall, abrupt close, slow-consumer disconnect) with a per-connection random
generator seeded from the simulator seed, so runs repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

from orchestrator.sim.config import Faults

__all__ = ["SimConnection", "WsHub", "corrupt_checksum"]

logger = logging.getLogger(__name__)


def corrupt_checksum(payload: bytes, checksum: int) -> bytes:
    """``payload`` with its ``"checksum":N`` field changed to a wrong value."""
    old = b'"checksum":%d' % checksum
    bad = checksum + 1 if checksum < 2**31 - 1 else checksum - 1
    return payload.replace(old, b'"checksum":%d' % bad, 1)


class SimConnection(WSListener):
    """One client connection of a :class:`WsHub` (picows listener).

    Parameters
    ----------
    hub
        The server it belongs to.
    path
        Request path without the query.
    query
        Query parameters (last value per name).
    """

    def __init__(self, hub: WsHub, path: str, query: dict[str, str]) -> None:
        super().__init__()
        self.hub = hub
        self.path = path
        self.query = query
        self.number = hub.next_number()
        self.transport: WSTransport | None = None
        self.connected_at = 0.0
        self.last_recv = 0.0
        self.last_sent = 0.0
        self.frames = 0
        self.closed = False
        self._rng = random.Random(hub.seed * 7919 + self.number)
        self._stalled_until = 0.0
        self._held: bytes | None = None

    # ---------------------------------------------------------------- picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        """Register with the hub."""
        self.transport = transport
        self.connected_at = self.last_recv = self.last_sent = time.monotonic()
        self.hub.attach(self)
        self.on_open()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """Unregister from the hub."""
        self.closed = True
        self.hub.detach(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Dispatch a client frame (text to :meth:`on_text`)."""
        self.last_recv = time.monotonic()
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if self.closed or not self.on_incoming(kind):
            return
        if kind == WSMsgType.TEXT:
            self.on_text(frame.get_payload_as_bytes())
        elif kind == WSMsgType.PONG:
            self.on_pong()

    # ---------------------------------------------------------------- venue hooks

    def on_open(self) -> None:
        """Handle the open connection (venue subclasses subscribe URL streams here)."""

    def on_incoming(self, kind: WSMsgType) -> bool:
        """Vet every client frame; return False to ignore it."""
        return True

    def on_text(self, payload: bytes) -> None:
        """Handle a client text message."""

    def on_pong(self) -> None:
        """Handle a client pong."""

    # ---------------------------------------------------------------- sending

    @property
    def stalled(self) -> bool:
        """Whether a stall fault currently silences this connection."""
        return time.monotonic() < self._stalled_until

    def send_control(self, payload: bytes) -> None:
        """Send a reply (ack, error, pong text) unless stalled; never faulted otherwise."""
        if not self.stalled:
            self._write(payload)

    def send_data(self, payload: bytes, checksum: int | None = None) -> None:
        """Send a market-data frame through the fault pipeline."""
        if self.closed:
            return
        hub = self.hub
        if time.monotonic() < self._stalled_until:
            hub.stats["lost_in_stall"] += 1
            return
        f = hub.faults
        if f is None:
            self._write(payload)
            return
        self.frames += 1
        rng = self._rng
        if (f.close_after and self.frames >= f.close_after) or (f.close and rng.random() < f.close):
            hub.stats["abrupt_closes"] += 1
            self.abort()
            return
        if (f.stall_after and self.frames == f.stall_after) or (f.stall and rng.random() < f.stall):
            hub.stats["stalls"] += 1
            self._stalled_until = time.monotonic() + f.stall_seconds
            return
        if f.drop and rng.random() < f.drop:
            hub.stats["dropped"] += 1
            return
        if checksum is not None and f.corrupt_checksum and rng.random() < f.corrupt_checksum:
            hub.stats["corrupted"] += 1
            payload = corrupt_checksum(payload, checksum)
        if self._held is not None:
            held, self._held = self._held, None
            self._write(payload)
            self._write(held)
            return
        if f.reorder and rng.random() < f.reorder:
            hub.stats["reordered"] += 1
            self._held = payload
            return
        self._write(payload)
        if f.duplicate and rng.random() < f.duplicate:
            hub.stats["duplicated"] += 1
            self._write(payload)
        if f.slow_consumer_bytes:
            self._check_slow(f.slow_consumer_bytes)

    def release_held(self) -> None:
        """Send a frame held back by the reorder fault (at pause/flush)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._write(held)

    def _check_slow(self, limit: int) -> None:
        t = self.transport
        if t is None or t.is_disconnected:
            return
        if t.underlying_transport.get_write_buffer_size() > limit:
            self.hub.stats["slow_consumer_kicks"] += 1
            logger.info("%s: connection %d is a slow consumer, dropped", self.hub.name, self.number)
            self.abort()

    def _write(self, payload: bytes) -> None:
        t = self.transport
        if t is None or self.closed or t.is_disconnected:
            return
        t.send(WSMsgType.TEXT, payload)
        self.last_sent = time.monotonic()
        self.hub.stats["sent"] += 1

    def ping(self, payload: bytes) -> None:
        """Send a protocol ping frame (unless stalled)."""
        t = self.transport
        if t is not None and not self.closed and not self.stalled and not t.is_disconnected:
            t.send_ping(payload)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        t = self.transport
        self.closed = True
        if t is not None and not t.is_disconnected:
            t.disconnect(graceful=False)

    def close(self, code: WSCloseCode = WSCloseCode.OK, reason: bytes = b"") -> None:
        """Close with a close frame."""
        t = self.transport
        if t is not None and not self.closed and not t.is_disconnected:
            t.send_close(code, reason)
            t.disconnect()
        self.closed = True


class WsHub:
    """A picows WebSocket server with its connections and counters.

    Parameters
    ----------
    name
        Exchange name (faults filter on it; log lines name it).
    seed
        Seed for the per-connection fault generators.
    get_faults
        Returns the current faults (the simulator may change them at run time).
    """

    def __init__(self, name: str, seed: int, get_faults: Callable[[], Faults]) -> None:
        self.name = name
        self.seed = seed
        self._get_faults = get_faults
        self.conns: set[SimConnection] = set()
        self.stats: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._numbers = 0
        self._closed_event: asyncio.Event | None = None

    @property
    def faults(self) -> Faults | None:
        """The WebSocket faults acting on this hub, or ``None`` when there are none."""
        f = self._get_faults()
        return f if f.any_ws and f.applies_to(self.name) else None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    def next_number(self) -> int:
        """Return a new connection number."""
        self._numbers += 1
        return self._numbers

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port."""
        self._server = await ws_create_server(
            self._route, host, port, enable_auto_pong=True, websocket_handshake_timeout=5
        )
        return self.port

    def _route(self, request: WSUpgradeRequest) -> WSListener | None:
        split = urlsplit(request.path.decode("latin-1"))
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        listener = self.route(unquote(split.path), query)
        if listener is None:
            self.stats["rejected_paths"] += 1
        return listener

    def route(self, path: str, query: dict[str, str]) -> SimConnection | None:
        """Venue routing: a connection for ``path`` or ``None`` (HTTP 404)."""
        raise NotImplementedError

    def attach(self, conn: SimConnection) -> None:
        """Register an open connection."""
        self.conns.add(conn)
        self.stats["connections"] += 1

    def detach(self, conn: SimConnection) -> None:
        """Forget a closed connection."""
        self.conns.discard(conn)
        if not self.conns and self._closed_event is not None:
            self._closed_event.set()

    def drop_all(self) -> int:
        """Abruptly close every connection; returns how many."""
        conns = list(self.conns)
        for c in conns:
            c.abort()
        return len(conns)

    def release_held(self) -> None:
        """Release frames held by the reorder fault on every connection."""
        for c in list(self.conns):
            c.release_held()

    async def close(self) -> None:
        """Close every connection (close frame 1001) and stop listening."""
        if self._server is not None:
            self._server.close()
        if self.conns:
            self._closed_event = asyncio.Event()
            for c in list(self.conns):
                c.close(WSCloseCode.GOING_AWAY, b"simulator shutdown")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed_event.wait(), 2.0)
            for c in list(self.conns):
                c.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
