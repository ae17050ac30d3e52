"""OKX v5: public WebSocket ``/ws/v5/public`` and REST market data.

WebSocket (``EXCHANGES.md`` §3.2-3.6): ``subscribe`` / ``unsubscribe`` with per-arg
acks carrying ``connId`` (and the request ``id``), ``error`` events with OKX codes
(60012 invalid request, 60013 invalid args, 60018 unknown channel or instrument, 60019
invalid op, 64004 conflicting book channels); text ``ping`` answered ``pong``; an idle
connection (no traffic either way for ``okx_idle_timeout``) is closed with 4004.

Book channels are views of the true book: ``books`` (400 levels, 100 ms),
``books-l2-tbt`` (400, every step), ``books50-l2-tbt`` (50, every step) send a snapshot
on subscribe then updates that take the view to the book's current top N (levels
leaving the window are deleted), with ``prevSeqId`` = the previous message's ``seqId``
and the legacy CRC32 ``checksum`` over the top 25 levels (or 0 when disabled);
``books`` sends an empty update with ``seqId == prevSeqId`` after ``okx_heartbeat_s``
without change. ``books5`` and ``bbo-tbt`` are snapshot-only. Per instrument and
connection the push order is ``bbo-tbt``, ``books-l2-tbt``, ``books50-l2-tbt``,
``books``, ``books5``, then ``trades``. REST: ``/api/v5/public/instruments``,
``/api/v5/public/time``, ``/api/v5/market/books`` with OKX's per-endpoint rate limits.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from picows import WSCloseCode

from ext.book import ASK, BID, OrderBook
from ext.feed import book_checksum
from orchestrator.sim.config import Faults, InstrumentSpec, SimConfig
from orchestrator.sim.http import Request, Response, json_response
from orchestrator.sim.market import BookEvent, Fill, MarketModel
from orchestrator.sim.wire import OkxEncoder, dumps
from orchestrator.sim.ws import SimConnection, WsHub

__all__ = ["CHANNELS", "OkxHub", "OkxInstrument", "OkxRest", "OkxView"]

logger = logging.getLogger(__name__)

#: channel -> (depth, interval in ms, incremental); 0 ms = every engine step.
CHANNELS: dict[str, tuple[int, int, bool]] = {
    "bbo-tbt": (1, 0, False),
    "books-l2-tbt": (400, 0, True),
    "books50-l2-tbt": (50, 0, True),
    "books": (400, 100, True),
    "books5": (5, 100, False),
}
_ORDER = tuple(CHANNELS)
_CONFLICTS = {
    "books-l2-tbt": ("books50-l2-tbt", "books"),
    "books50-l2-tbt": ("books-l2-tbt",),
    "books": ("books-l2-tbt",),
}
_PUBLIC = set(CHANNELS) | {"trades"}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class OkxView:
    """What subscribers of one book channel of one instrument have been sent."""

    channel: str
    depth: int
    interval_ms: int
    incremental: bool
    seq: int
    checksum: int
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    last_msg: float = 0.0
    subs: set[OkxConn] = field(default_factory=set)


class OkxInstrument:
    """An OKX instrument: true book, encoder, channel views, pending trades, history."""

    def __init__(self, spec: InstrumentSpec, model: MarketModel | None, book: OrderBook) -> None:
        self.spec = spec
        self.model = model
        self.book = book
        self.enc = OkxEncoder(spec)
        self.views: dict[str, OkxView] = {}
        self.trade_subs: set[OkxConn] = set()
        self.pending_fills: list[tuple[Fill, int, int]] = []
        self.history: deque[tuple[int, int, list[tuple[int, int]], list[tuple[int, int]]]] = deque(
            maxlen=64
        )
        self.last_event_ms = 0

    @property
    def seq(self) -> int:
        """The engine's last update id (``seqId``)."""
        return self.book.last_update_id

    def top(self, side: int, n: int) -> dict[int, int]:
        """Best ``n`` levels of ``side`` as ``{price: size}``."""
        prices, sizes = self.book.top_copy(side, n)
        return dict(zip(prices.tolist(), sizes.tolist(), strict=True))


class OkxConn(SimConnection):
    """A client of the OKX public WebSocket."""

    hub: OkxHub

    def __init__(self, hub: OkxHub, path: str, query: dict[str, str]) -> None:
        super().__init__(hub, path, query)
        self.conn_id = f"{random.Random(hub.seed * 131 + self.number).getrandbits(32):08x}"
        self.subs: set[tuple[str, str]] = set()

    def on_text(self, payload: bytes) -> None:
        """``ping`` or a JSON operation."""
        if payload == b"ping":
            self.send_control(b"pong")
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            self._error("60012", f"Invalid request: {payload.decode('utf-8', 'replace')}", None)
            return
        if not isinstance(msg, dict):
            self._error("60012", f"Invalid request: {payload.decode('utf-8', 'replace')}", None)
            return
        rid = msg.get("id")
        rid = rid if isinstance(rid, str) else None
        op = msg.get("op")
        if op not in ("subscribe", "unsubscribe"):
            if op is None:
                self._error("60012", f"Invalid request: {payload.decode()}", rid)
            else:
                self._error("60019", f"Invalid op: {op}", rid)
            return
        args = msg.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, dict) for a in args):
            self._error("60013", "Invalid args", rid)
            return
        for arg in args:
            if op == "subscribe":
                self.hub.subscribe(self, arg, rid)
            else:
                self.hub.unsubscribe(self, arg, rid)

    def ack(self, event: str, arg: dict[str, Any], rid: str | None) -> None:
        """Send a subscribe/unsubscribe ack."""
        body: dict[str, Any] = {"id": rid} if rid is not None else {}
        body.update({"event": event, "arg": arg, "connId": self.conn_id})
        self.send_control(dumps(body))

    def _error(self, code: str, msg: str, rid: str | None) -> None:
        body: dict[str, Any] = {"id": rid} if rid is not None else {}
        body.update({"event": "error", "code": code, "msg": msg, "connId": self.conn_id})
        self.send_control(dumps(body))

    def error(self, code: str, msg: str, rid: str | None) -> None:
        """Send an ``error`` event."""
        self._error(code, msg, rid)


class OkxHub(WsHub):
    """OKX public WebSocket server (spot and SWAP instruments on one URL)."""

    def __init__(self, config: SimConfig, get_faults: Callable[[], Faults]) -> None:
        super().__init__("okx", config.seed, get_faults)
        self.config = config
        self.instruments: dict[str, OkxInstrument] = {}

    @property
    def faults(self) -> Faults | None:
        """Faults acting here (``okx`` or ``okx_swap`` selects this server)."""
        f = self._get_faults()
        if not f.any_ws or not (f.applies_to("okx") or f.applies_to("okx_swap")):
            return None
        return f

    def add(self, inst: OkxInstrument) -> None:
        """Serve an instrument."""
        self.instruments[inst.spec.symbol] = inst

    def route(self, path: str, query: dict[str, str]) -> SimConnection | None:
        """Only the public endpoint is simulated."""
        return OkxConn(self, path, query) if path == "/ws/v5/public" else None

    # ---------------------------------------------------------------- subscriptions

    def subscribe(self, conn: OkxConn, arg: dict[str, Any], rid: str | None) -> None:
        """Subscribe ``conn`` to one ``{"channel", "instId"}`` arg."""
        channel, inst_id = arg.get("channel"), arg.get("instId")
        if not isinstance(channel, str) or not channel:
            conn.error("60013", "Invalid args", rid)
            return
        inst = self.instruments.get(inst_id) if isinstance(inst_id, str) else None
        if channel not in _PUBLIC or inst is None:
            conn.error(
                "60018",
                f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. Please use "
                "the correct URL, channel and parameters referring to API document.",
                rid,
            )
            return
        assert isinstance(inst_id, str)
        for other in _CONFLICTS.get(channel, ()):
            if (other, inst_id) in conn.subs:
                conn.error(
                    "64004",
                    f"You can only subscribe to one of {channel} and {other} for the same "
                    f"instrument on one connection, instId:{inst_id}",
                    rid,
                )
                return
        arg = {"channel": channel, "instId": inst_id}
        conn.ack("subscribe", arg, rid)
        if (channel, inst_id) in conn.subs:
            return
        conn.subs.add((channel, inst_id))
        if channel == "trades":
            inst.trade_subs.add(conn)
            return
        view = inst.views.get(channel)
        if view is None:
            depth, interval, incremental = CHANNELS[channel]
            view = OkxView(channel, depth, interval, incremental, inst.seq, self._checksum(inst))
            view.bids, view.asks = inst.top(BID, depth), inst.top(ASK, depth)
            view.last_msg = time.monotonic()
            inst.views[channel] = view
        view.subs.add(conn)
        conn.send_data(
            self._snapshot(inst, view, _now_ms()), view.checksum if view.incremental else None
        )

    def unsubscribe(self, conn: OkxConn, arg: dict[str, Any], rid: str | None) -> None:
        """Unsubscribe ``conn`` from one arg (acked even if it was not subscribed)."""
        channel, inst_id = arg.get("channel"), arg.get("instId")
        if not isinstance(channel, str) or not isinstance(inst_id, str):
            conn.error("60013", "Invalid args", rid)
            return
        self._drop(conn, channel, inst_id)
        conn.ack("unsubscribe", {"channel": channel, "instId": inst_id}, rid)

    def _drop(self, conn: OkxConn, channel: str, inst_id: str) -> None:
        conn.subs.discard((channel, inst_id))
        inst = self.instruments.get(inst_id)
        if inst is None:
            return
        if channel == "trades":
            inst.trade_subs.discard(conn)
            return
        view = inst.views.get(channel)
        if view is not None:
            view.subs.discard(conn)
            if not view.subs:
                del inst.views[channel]

    def detach(self, conn: SimConnection) -> None:
        """Forget a closed connection's subscriptions."""
        if isinstance(conn, OkxConn):
            for channel, inst_id in list(conn.subs):
                self._drop(conn, channel, inst_id)
        super().detach(conn)

    # ---------------------------------------------------------------- publishing

    def _checksum(self, inst: OkxInstrument) -> int:
        return book_checksum(inst.book) if self.config.okx_checksum else 0

    def _snapshot(self, inst: OkxInstrument, view: OkxView, now_ms: int) -> bytes:
        bids = sorted(view.bids.items(), reverse=True)
        asks = sorted(view.asks.items())
        if view.incremental:
            return inst.enc.book(
                view.channel, "snapshot", bids, asks, now_ms, view.checksum, view.seq, -1
            )
        return inst.enc.top(view.channel, bids, asks, now_ms, view.seq)

    def on_events(self, inst: OkxInstrument, events: list[BookEvent], now_ms: int) -> None:
        """Queue trades (sent after the book channels at the next flush)."""
        for ev in events:
            inst.last_event_ms = ev.ts_ms
            if inst.trade_subs:
                for fill in ev.fills:
                    inst.pending_fills.append((fill, ev.ts_ms, ev.last_id))

    def flush(self, inst: OkxInstrument, elapsed_ms: int, now_ms: int, force: bool) -> None:
        """Push the views due at ``elapsed_ms``, in OKX's per-instrument order, then trades."""
        mono = time.monotonic()
        for channel in _ORDER:
            view = inst.views.get(channel)
            if view is None or not (
                force or not view.interval_ms or elapsed_ms % view.interval_ms == 0
            ):
                continue
            self._flush_view(inst, view, now_ms, mono)
        if inst.pending_fills:
            fills, inst.pending_fills = inst.pending_fills, []
            for fill, ts, seq in fills:
                payload = inst.enc.trades([fill], ts, seq)
                for conn in list(inst.trade_subs):
                    conn.send_data(payload)
        if inst.model is not None and elapsed_ms % 100 == 0 and self._get_faults().stale_snapshot:
            inst.history.append(
                (
                    now_ms,
                    inst.seq,
                    sorted(inst.top(BID, 400).items(), reverse=True),
                    sorted(inst.top(ASK, 400).items()),
                )
            )

    def _flush_view(self, inst: OkxInstrument, view: OkxView, now_ms: int, mono: float) -> None:
        seq = inst.seq
        if seq == view.seq:
            if view.channel == "books" and mono - view.last_msg >= self.config.okx_heartbeat_s:
                view.last_msg = mono
                payload = inst.enc.book(
                    view.channel, "update", [], [], now_ms, view.checksum, view.seq, view.seq
                )
                for conn in list(view.subs):
                    conn.send_data(payload, view.checksum)
            return
        new_b, new_a = inst.top(BID, view.depth), inst.top(ASK, view.depth)
        if view.incremental:
            old_b, old_a = view.bids, view.asks
            d_b = [(p, s) for p, s in new_b.items() if old_b.get(p) != s]
            d_b += [(p, 0) for p in old_b if p not in new_b]
            d_a = [(p, s) for p, s in new_a.items() if old_a.get(p) != s]
            d_a += [(p, 0) for p in old_a if p not in new_a]
            if not d_b and not d_a:
                return
            checksum = self._checksum(inst)
            payload = inst.enc.book(
                view.channel,
                "update",
                sorted(d_b, reverse=True),
                sorted(d_a),
                now_ms,
                checksum,
                seq,
                view.seq,
            )
            view.checksum = checksum
        else:
            if new_b == view.bids and new_a == view.asks:
                return
            checksum = 0
            payload = inst.enc.top(
                view.channel,
                sorted(new_b.items(), reverse=True),
                sorted(new_a.items()),
                now_ms,
                seq,
            )
        view.bids, view.asks, view.seq, view.last_msg = new_b, new_a, seq, mono
        ck = checksum if view.incremental else None
        for conn in list(view.subs):
            conn.send_data(payload, ck)

    def housekeeping(self, now: float) -> None:
        """Close connections idle for ``okx_idle_timeout`` (code 4004)."""
        limit = self.config.okx_idle_timeout
        for conn in list(self.conns):
            if not conn.closed and now - max(conn.last_recv, conn.last_sent) > limit:
                self.stats["idle_closes"] += 1
                conn.close(WSCloseCode(4004), b"No data received in 30s.")


class OkxRest:
    """OKX REST market data with per-endpoint rate limits and REST faults."""

    _LIMITS = {
        "/api/v5/market/books": 40,
        "/api/v5/public/instruments": 20,
        "/api/v5/public/time": 10,
    }

    def __init__(self, hub: OkxHub, get_faults: Callable[[], Faults], seed: int) -> None:
        self.hub = hub
        self._get_faults = get_faults
        self._rng = random.Random(seed * 31 + 3)
        self._hits: dict[str, deque[float]] = {k: deque() for k in self._LIMITS}
        self.stats: dict[str, int] = {"requests": 0, "faulted": 0, "rate_limited": 0}

    @staticmethod
    def _answer(
        status: int, code: str, msg: str, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        return json_response(status, dumps({"code": code, "msg": msg, "data": []}), headers)

    def __call__(self, req: Request) -> Response:
        """Answer one request."""
        self.stats["requests"] += 1
        handlers: dict[str, Callable[[Request], Response]] = {
            "/api/v5/market/books": self._books,
            "/api/v5/public/instruments": self._instruments,
            "/api/v5/public/time": lambda r: json_response(
                200, b'{"code":"0","msg":"","data":[{"ts":"%d"}]}' % _now_ms()
            ),
        }
        handler = handlers.get(req.path)
        if handler is None:
            return json_response(404, b'{"msg":"Not Found","code":"404"}')
        faulted = self._fault()
        if faulted is not None:
            self.stats["faulted"] += 1
            return faulted
        hits = self._hits[req.path]
        now = time.monotonic()
        while hits and now - hits[0] >= 2.0:
            hits.popleft()
        if len(hits) >= self._LIMITS[req.path]:
            self.stats["rate_limited"] += 1
            return self._answer(429, "50011", "Too Many Requests", [("Retry-After", "1")])
        hits.append(now)
        return handler(req)

    def _fault(self) -> Response | None:
        f = self._get_faults()
        if not (f.applies_to("okx") or f.applies_to("okx_swap")):
            return None
        if f.rest_429 and self._rng.random() < f.rest_429:
            return self._answer(
                429, "50011", "Too Many Requests", [("Retry-After", str(f.retry_after))]
            )
        if f.rest_5xx and self._rng.random() < f.rest_5xx:
            return self._answer(
                503, "50001", "Service temporarily unavailable. Please try again later."
            )
        return None

    def _instruments(self, req: Request) -> Response:
        inst_type = req.query.get("instType", "")
        if not inst_type:
            return self._answer(400, "50014", "Parameter instType can not be empty.")
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            return self._answer(400, "51000", "Parameter instType error")
        exchange = {"SPOT": "okx", "SWAP": "okx_swap"}.get(inst_type)
        wanted = req.query.get("instId")
        data = [
            i.enc.instrument()
            for i in self.hub.instruments.values()
            if i.spec.exchange == exchange and (wanted is None or i.spec.symbol == wanted)
        ]
        return json_response(200, dumps({"code": "0", "msg": "", "data": data}))

    def _books(self, req: Request) -> Response:
        inst_id = req.query.get("instId", "")
        if not inst_id:
            return self._answer(400, "50014", "Parameter instId can not be empty.")
        inst = self.hub.instruments.get(inst_id)
        if inst is None:
            return self._answer(400, "51001", "Instrument ID does not exist.")
        text = req.query.get("sz", "1")
        if not text.isdigit() or not 1 <= int(text) <= 400:
            return self._answer(400, "51000", "Parameter sz error")
        sz = int(text)
        now = _now_ms()
        f = self._get_faults()
        if (
            f.stale_snapshot
            and (f.applies_to("okx") or f.applies_to("okx_swap"))
            and inst.history
            and self._rng.random() < f.stale_snapshot
        ):
            self.stats["stale_snapshots"] = self.stats.get("stale_snapshots", 0) + 1
            old = inst.history[0]
            for h in inst.history:
                if now - h[0] >= f.stale_snapshot_ms:
                    old = h
            ts, seq, bids, asks = old
            return json_response(200, inst.enc.rest_books(bids[:sz], asks[:sz], ts, seq))
        bids = sorted(inst.top(BID, sz).items(), reverse=True)
        asks = sorted(inst.top(ASK, sz).items())
        return json_response(200, inst.enc.rest_books(bids, asks, now, inst.seq))
