"""Binance spot and USD-M futures: market streams over WebSocket and REST market data.

URL layout as on the venues (``EXCHANGES.md`` §1.1, §2.1):

* spot WS: ``/ws/<stream>[/<stream>...]`` (raw payloads), ``/stream?streams=a/b``
  (combined ``{"stream":...,"data":...}``), live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` /
  ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` / ``GET_PROPERTY``;
* USD-M WS: the same under ``/public`` (depth, bookTicker, trade) and ``/market``
  (aggTrade, trade); the retired unrouted ``/ws`` and ``/stream`` still accept
  connections but withhold ``/market``-class streams (pitfall P5);
* REST: ``/api/v3/depth|exchangeInfo|time|ping`` (spot), ``/fapi/v1/...`` (USD-M), with
  request weights, ``X-MBX-USED-WEIGHT-1M`` and 429 + ``Retry-After`` past the limit.

Diff-depth streams accumulate the engine's level changes and flush on their interval
(``U`` = first id, ``u`` = last id, USD-M ``pu`` = previous flush's ``u``), so a REST
snapshot's ``lastUpdateId`` (the engine id when it is served) bridges exactly. The server
pings every ``binance_ping_interval`` seconds and drops a connection whose pong is older
than ``binance_pong_timeout``; more than the allowed incoming messages per second also
drops it.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from picows import WSCloseCode, WSMsgType

from ext.book import ASK, BID, OrderBook
from orchestrator.sim.config import Faults, InstrumentSpec, SimConfig
from orchestrator.sim.http import Request, Response, json_response
from orchestrator.sim.market import BookEvent, MarketModel
from orchestrator.sim.wire import BinanceEncoder, binance_combined, dumps
from orchestrator.sim.ws import SimConnection, WsHub

__all__ = ["BinanceHub", "BinanceInstrument", "BinanceRest", "DiffStream"]

logger = logging.getLogger(__name__)

_STREAM = re.compile(r"^([a-z0-9_]+)@(depth(5|10|20)?(@(\d+)ms)?|trade|aggTrade|bookTicker)$")
_SPEEDS = {"binance": (100, 1000), "binance_usdm": (100, 250, 500)}
_DEFAULT_SPEED = {"binance": 1000, "binance_usdm": 250}
_MAX_STREAMS = 1024
_HISTORY_EVERY_MS = 100


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class DiffStream:
    """One diff-depth (or partial-depth) stream of an instrument at one speed.

    Attributes
    ----------
    name
        Stream name (``btcusdt@depth@100ms``).
    interval_ms
        Push interval.
    top
        0 for a diff stream, 5/10/20 for partial book depth.
    prev_u
        ``u`` of the previous push (USD-M ``pu``).
    """

    name: str
    interval_ms: int
    top: int
    prev_u: int
    first: int = 0
    last: int = 0
    last_t: int = 0
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)

    def add(self, event: BookEvent) -> None:
        """Accumulate one engine event."""
        if not self.first:
            self.first = event.first_id
        self.last = event.last_id
        self.last_t = event.ts_ms
        if self.top:
            return
        bids, asks = self.bids, self.asks
        for side, price, size in event.changes:
            (bids if side == BID else asks)[price] = size

    def take(self) -> tuple[int, int, int, int, list[tuple[int, int]], list[tuple[int, int]]]:
        """Pending ``(first, last, prev, last_t, bids, asks)``; resets the accumulator."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        out = (self.first, self.last, self.prev_u, self.last_t, bids, asks)
        self.prev_u = self.last
        self.first = 0
        self.bids = {}
        self.asks = {}
        return out


class BinanceInstrument:
    """A Binance instrument: its true book source, encoder, streams and snapshot history.

    Parameters
    ----------
    spec
        The instrument.
    model
        The synthetic market (``None`` for a replayed instrument).
    book
        The true book (the model's for synthetic instruments).
    """

    def __init__(self, spec: InstrumentSpec, model: MarketModel | None, book: OrderBook) -> None:
        self.spec = spec
        self.model = model
        self.book = book
        self.enc = BinanceEncoder(spec)
        self.lower = spec.symbol.lower()
        self.streams: dict[str, DiffStream] = {}
        self.history: deque[tuple[int, int, list[tuple[int, int]], list[tuple[int, int]]]] = deque(
            maxlen=64
        )
        self.last_event_ms = 0
        self.recorded_snapshots: list[tuple[int, bytes]] = []
        self.replay_clock_ns = 0

    @property
    def update_id(self) -> int:
        """The engine's last update id."""
        return self.book.last_update_id

    def stream(self, name: str, interval_ms: int, top: int) -> DiffStream:
        """Return the diff stream ``name``, created on first use at the current id."""
        s = self.streams.get(name)
        if s is None:
            s = self.streams[name] = DiffStream(name, interval_ms, top, self.update_id)
        return s

    def levels(self, side: int, n: int) -> list[tuple[int, int]]:
        """Best ``n`` levels of the true book."""
        prices, sizes = self.book.top_copy(side, n)
        return list(zip(prices.tolist(), sizes.tolist(), strict=True))

    def remember(self, now_ms: int, depth: int) -> None:
        """Keep a copy of the book for stale-snapshot faults."""
        self.history.append(
            (now_ms, self.update_id, self.levels(BID, depth), self.levels(ASK, depth))
        )


class BinanceConn(SimConnection):
    """A client of a Binance market-stream server."""

    hub: BinanceHub

    def __init__(self, hub: BinanceHub, path: str, query: dict[str, str], route: str) -> None:
        super().__init__(hub, path, query)
        self.route = route
        self.combined = path.endswith("/stream")
        self.streams: set[str] = set()
        self.last_pong = 0.0
        self.next_ping = 0.0
        self._incoming: deque[float] = deque()

    def on_open(self) -> None:
        """Subscribe the streams named in the URL."""
        now = time.monotonic()
        self.last_pong = now
        self.next_ping = now + self.hub.ping_interval
        if self.combined:
            names = [s for s in self.query.get("streams", "").split("/") if s]
        else:
            rest = self.path.split("/ws", 1)[1] if "/ws" in self.path else ""
            names = [s for s in rest.split("/") if s]
        bad = self.hub.subscribe(self, names)
        if bad:
            logger.info("%s: URL names invalid streams %s", self.hub.name, bad)

    def on_incoming(self, kind: WSMsgType) -> bool:
        """Enforce the incoming-message limit (pings and pongs count)."""
        limit = self.hub.max_incoming
        if not limit or kind not in (WSMsgType.TEXT, WSMsgType.PING, WSMsgType.PONG):
            return True
        now = time.monotonic()
        q = self._incoming
        q.append(now)
        while q and now - q[0] > 1.0:
            q.popleft()
        if len(q) > limit:
            self.hub.stats["rate_limit_disconnects"] += 1
            logger.info("%s: connection %d sent > %d msg/s", self.hub.name, self.number, limit)
            self.close(WSCloseCode.POLICY_VIOLATION, b"Too many requests")
            return False
        return True

    def on_pong(self) -> None:
        """Record a pong (unsolicited ones count too)."""
        self.last_pong = time.monotonic()

    def on_text(self, payload: bytes) -> None:
        """Live subscription protocol (``EXCHANGES.md`` §1.3)."""
        try:
            msg = json.loads(payload)
        except ValueError as exc:
            self._error(3, f"Invalid JSON: {exc}", None)
            return
        if not isinstance(msg, dict):
            self._error(2, "Invalid request: expected an object", None)
            return
        rid = msg.get("id")
        if self.hub.usdm and not (isinstance(rid, int) and rid >= 0) and rid is not None:
            self._error(2, "Invalid request: request ID must be an unsigned integer", rid)
            return
        if isinstance(rid, bool) or not (
            rid is None
            or (isinstance(rid, int) and -(2**63) <= rid < 2**63)
            or (isinstance(rid, str) and len(rid) <= 36 and rid.isalnum())
        ):
            self._error(2, "Invalid request: invalid request ID", rid)
            return
        method = msg.get("method")
        params = msg.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self._error(2, "Invalid request: params must be an array of strings", rid)
                return
            if method == "SUBSCRIBE":
                bad = self.hub.subscribe(self, params)
                if bad:
                    self._error(2, "Invalid request: invalid stream", rid)
                    return
            else:
                self.hub.unsubscribe(self, params)
            self.send_control(b'{"result":null,"id":%s}' % dumps(rid))
        elif method == "LIST_SUBSCRIPTIONS":
            self.send_control(dumps({"result": sorted(self.streams), "id": rid}))
        elif method == "SET_PROPERTY":
            if not (
                isinstance(params, list)
                and len(params) == 2
                and params[0] == "combined"
                and isinstance(params[1], bool)
            ):
                self._error(0, "Unknown property", rid)
                return
            self.combined = params[1]
            self.send_control(b'{"result":null,"id":%s}' % dumps(rid))
        elif method == "GET_PROPERTY":
            if params != ["combined"]:
                self._error(0, "Unknown property", rid)
                return
            self.send_control(dumps({"result": self.combined, "id": rid}))
        else:
            self._error(
                2,
                f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, "
                "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
                rid,
            )

    def _error(self, code: int, msg: str, rid: Any) -> None:
        self.send_control(dumps({"error": {"code": code, "msg": msg}, "id": rid}))


class BinanceHub(WsHub):
    """Binance market-stream server for one market (``binance`` or ``binance_usdm``).

    Parameters
    ----------
    exchange
        ``binance`` (spot) or ``binance_usdm``.
    config
        The simulator configuration (timers, limits, seed).
    get_faults
        Current faults.
    """

    def __init__(self, exchange: str, config: SimConfig, get_faults: Callable[[], Faults]) -> None:
        super().__init__(exchange, config.seed, get_faults)
        self.usdm = exchange == "binance_usdm"
        self.config = config
        self.ping_interval = (
            config.usdm_ping_interval if self.usdm else config.binance_ping_interval
        )
        self.pong_timeout = config.usdm_pong_timeout if self.usdm else config.binance_pong_timeout
        self.max_incoming = config.binance_max_incoming * (2 if self.usdm else 1)
        self.instruments: dict[str, BinanceInstrument] = {}
        self.subs: dict[str, set[BinanceConn]] = {}
        self.extra_streams: set[str] = set()

    def add(self, inst: BinanceInstrument) -> None:
        """Serve an instrument."""
        self.instruments[inst.lower] = inst

    # ---------------------------------------------------------------- routing

    def route(self, path: str, query: dict[str, str]) -> SimConnection | None:
        """Spot: ``/ws``, ``/stream``; USD-M: ``/public|/market`` + those, or legacy."""
        route = "spot"
        if self.usdm:
            route = "legacy"
            for prefix in ("/public", "/market"):
                if path.startswith(prefix + "/"):
                    route = prefix[1:]
                    path = path[len(prefix) :]
        if path == "/stream" or path == "/ws" or path.startswith("/ws/"):
            return BinanceConn(self, path, query, route)
        return None

    def parse_stream(self, name: str) -> tuple[str, str, int, int] | None:
        """``(symbol, kind, interval_ms, top)`` of a valid stream name, else ``None``.

        ``kind`` is ``depth``, ``trade``, ``aggTrade`` or ``bookTicker``.
        """
        m = _STREAM.match(name)
        if m is None:
            return None
        sym, what, top, _, speed = m.groups()
        if not what.startswith("depth"):
            return sym, what, 0, 0
        interval = int(speed) if speed else _DEFAULT_SPEED[self.name]
        if interval not in _SPEEDS[self.name] and name not in self.extra_streams:
            return None
        return sym, "depth", interval, int(top) if top else 0

    def _deliverable(self, conn: BinanceConn, kind: str) -> bool:
        if not self.usdm:
            return True
        market_class = kind == "aggTrade"
        public_class = kind in ("depth", "bookTicker")
        if conn.route == "public":
            return not market_class
        if conn.route == "market":
            return not public_class
        return not market_class  # legacy unrouted URL: /market-class data withheld

    def subscribe(self, conn: BinanceConn, names: Iterable[str]) -> list[str]:
        """Subscribe ``conn``; returns the invalid names (nothing is subscribed then)."""
        names = list(names)
        bad = [n for n in names if n not in self.extra_streams and self.parse_stream(n) is None]
        if bad or len(conn.streams | set(names)) > _MAX_STREAMS:
            return bad or names
        for name in names:
            conn.streams.add(name)
            parsed = self.parse_stream(name)
            kind = parsed[1] if parsed else "recorded"
            if not self._deliverable(conn, kind):
                continue
            self.subs.setdefault(name, set()).add(conn)
            if parsed and kind == "depth":
                inst = self.instruments.get(parsed[0])
                if inst is not None:
                    inst.stream(name, parsed[2], parsed[3])
        return []

    def unsubscribe(self, conn: BinanceConn, names: Iterable[str]) -> None:
        """Unsubscribe ``conn`` from ``names``."""
        for name in names:
            conn.streams.discard(name)
            subs = self.subs.get(name)
            if subs is not None:
                subs.discard(conn)

    def detach(self, conn: SimConnection) -> None:
        """Forget a closed connection's subscriptions."""
        if isinstance(conn, BinanceConn):
            self.unsubscribe(conn, list(conn.streams))
        super().detach(conn)

    def subscribed(self, name: str) -> bool:
        """Whether any connection receives stream ``name``."""
        return bool(self.subs.get(name))

    # ---------------------------------------------------------------- publishing

    def broadcast(self, name: str, payload: bytes) -> None:
        """Send a raw payload on stream ``name`` (wrapped for combined connections)."""
        subs = self.subs.get(name)
        if not subs:
            return
        wrapped: bytes | None = None
        for conn in list(subs):
            if conn.combined:
                if wrapped is None:
                    wrapped = binance_combined(name, payload)
                conn.send_data(wrapped)
            else:
                conn.send_data(payload)

    def broadcast_combined(self, name: str, frame: bytes) -> None:
        """Send a recorded combined frame on stream ``name`` (unwrapped for raw clients)."""
        subs = self.subs.get(name)
        if not subs:
            return
        raw: bytes | None = None
        for conn in list(subs):
            if conn.combined:
                conn.send_data(frame)
            else:
                if raw is None:
                    start = frame.find(b'"data":') + 7
                    raw = frame[start : frame.rstrip().rfind(b"}")]
                conn.send_data(raw)

    def on_events(self, inst: BinanceInstrument, events: list[BookEvent], now_ms: int) -> None:
        """Real-time streams for new engine events; diffs accumulate until flushed."""
        if not events:
            return
        streams = list(inst.streams.values())
        enc, lower = inst.enc, inst.lower
        ticker, trade, agg = lower + "@bookTicker", lower + "@trade", lower + "@aggTrade"
        want_ticker, want_trade, want_agg = (
            self.subscribed(ticker),
            self.subscribed(trade),
            self.subscribed(agg),
        )
        for ev in events:
            for s in streams:
                s.add(ev)
            inst.last_event_ms = ev.ts_ms
            if want_ticker and ev.top_changed:
                payload = enc.book_ticker(ev.last_id, now_ms, ev.ts_ms, ev.bid, ev.ask)
                self.broadcast(ticker, payload)
            for fill in ev.fills:
                if want_trade:
                    for payload in enc.trades(now_ms, ev.ts_ms, fill):
                        self.broadcast(trade, payload)
                if want_agg:
                    self.broadcast(agg, enc.agg_trade(now_ms, ev.ts_ms, fill))

    def flush(self, inst: BinanceInstrument, elapsed_ms: int, now_ms: int, force: bool) -> None:
        """Push every diff/partial stream whose interval ends at ``elapsed_ms``."""
        for s in list(inst.streams.values()):
            if not force and elapsed_ms % s.interval_ms:
                continue
            if not s.first:
                continue
            first, last, prev, last_t, bids, asks = s.take()
            if not self.subscribed(s.name):
                continue
            if s.top:
                bids, asks = inst.levels(BID, s.top), inst.levels(ASK, s.top)
                payload = inst.enc.partial_depth(now_ms, last_t, first, last, prev, bids, asks)
            else:
                payload = inst.enc.depth_update(now_ms, last_t, first, last, prev, bids, asks)
            self.broadcast(s.name, payload)
        if (
            inst.model is not None
            and elapsed_ms % _HISTORY_EVERY_MS == 0
            and self._get_faults().stale_snapshot
        ):
            inst.remember(now_ms, 5000)

    def housekeeping(self, now: float) -> None:
        """Pings, pong timeouts and the connection lifetime."""
        for conn in list(self.conns):
            if not isinstance(conn, BinanceConn) or conn.closed:
                continue
            if now - conn.connected_at > self.config.max_connection_age:
                self.stats["lifetime_closes"] += 1
                conn.close(WSCloseCode.OK, b"")
                continue
            if now - conn.last_pong > self.pong_timeout:
                self.stats["pong_timeouts"] += 1
                logger.info("%s: connection %d sent no pong, dropped", self.name, conn.number)
                conn.abort()
                continue
            if now >= conn.next_ping:
                conn.next_ping = now + self.ping_interval
                conn.ping(str(_now_ms()).encode())


class BinanceRest:
    """REST market data of one Binance market, with weights and REST faults.

    Parameters
    ----------
    hub
        The market's stream server (instruments and truth).
    get_faults
        Current faults.
    seed
        Seed of the fault draws.
    """

    def __init__(self, hub: BinanceHub, get_faults: Callable[[], Faults], seed: int) -> None:
        self.hub = hub
        self.usdm = hub.usdm
        self.prefix = "/fapi/v1" if self.usdm else "/api/v3"
        self.weight_limit = 2400 if self.usdm else 6000
        self._get_faults = get_faults
        self._rng = random.Random(seed * 31 + (2 if self.usdm else 1))
        self._weights: deque[tuple[float, int]] = deque()
        self._used = 0
        self.stats: dict[str, int] = {"requests": 0, "faulted": 0, "rate_limited": 0}

    def _error(self, status: int, code: int, msg: str, headers: list[tuple[str, str]]) -> Response:
        return json_response(status, dumps({"code": code, "msg": msg}), headers)

    def _spend(self, weight: int) -> int:
        now = time.monotonic()
        q = self._weights
        while q and now - q[0][0] >= 60.0:
            self._used -= q.popleft()[1]
        q.append((now, weight))
        self._used += weight
        return self._used

    def __call__(self, req: Request) -> Response:
        """Answer one request."""
        self.stats["requests"] += 1
        path = req.path
        if not path.startswith(self.prefix + "/"):
            return self._error(404, -1, f"Not found: {path}", [])
        name = path[len(self.prefix) + 1 :]
        faulted = self._fault(req)
        if faulted is not None:
            self.stats["faulted"] += 1
            return faulted
        handlers: dict[str, tuple[int, Callable[[Request], Response]]] = {
            "ping": (1, lambda r: json_response(200, b"{}")),
            "time": (1, lambda r: json_response(200, b'{"serverTime":%d}' % _now_ms())),
            "exchangeInfo": (1 if self.usdm else 20, self._exchange_info),
            "depth": (0, self._depth),
        }
        entry = handlers.get(name)
        if entry is None:
            return self._error(404, -1, f"Not found: {path}", [])
        weight, handler = entry
        if name == "depth":
            weight = self._depth_weight(req.query.get("limit", ""))
        used = self._spend(weight)
        headers = [("X-MBX-USED-WEIGHT-1M", str(used))]
        if used > self.weight_limit:
            self.stats["rate_limited"] += 1
            oldest = self._weights[0][0] if self._weights else time.monotonic()
            retry = max(1, int(60 - (time.monotonic() - oldest)) + 1)
            headers.append(("Retry-After", str(retry)))
            return self._error(
                429,
                -1003,
                f"Too many requests; current limit of IP({req.peer}) request weight per minute"
                f" is {self.weight_limit}. Please use WebSocket Streams for live updates to"
                " avoid polling the API.",
                headers,
            )
        response = handler(req)
        response.headers.extend(headers)
        return response

    def _fault(self, req: Request) -> Response | None:
        f = self._get_faults()
        if not f.applies_to(self.hub.name):
            return None
        rng = self._rng
        retry = [("Retry-After", str(f.retry_after))]
        if f.rest_418 and rng.random() < f.rest_418:
            until = _now_ms() + f.retry_after * 1000
            return self._error(
                418,
                -1003,
                f"Way too many requests; IP({req.peer}) banned until {until}. Please use "
                "WebSocket Streams for live updates to avoid bans.",
                retry,
            )
        if f.rest_429 and rng.random() < f.rest_429:
            return self._error(
                429,
                -1003,
                f"Too many requests; current limit of IP({req.peer}) request weight per minute"
                f" is {self.weight_limit}. Please use WebSocket Streams for live updates to"
                " avoid polling the API.",
                retry,
            )
        if f.rest_5xx and rng.random() < f.rest_5xx:
            return json_response(
                503, b'{"code":-1008,"msg":"Service Unavailable."}' if self.usdm else b""
            )
        return None

    def _depth_weight(self, limit: str) -> int:
        n = int(limit) if limit.isdigit() else (500 if self.usdm else 100)
        if self.usdm:
            return 2 if n <= 50 else 5 if n <= 100 else 10 if n <= 500 else 20
        return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250

    def _symbol(self, req: Request) -> BinanceInstrument | Response:
        symbol = req.query.get("symbol", "")
        if not symbol:
            return self._error(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
                [],
            )
        inst = self.hub.instruments.get(symbol.lower())
        if inst is None:
            return self._error(400, -1121, "Invalid symbol.", [])
        return inst

    def _depth(self, req: Request) -> Response:
        inst = self._symbol(req)
        if isinstance(inst, Response):
            return inst
        text = req.query.get("limit", "")
        if text and not text.isdigit():
            return self._error(
                400,
                -1100,
                "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
                [],
            )
        if self.usdm:
            limit = int(text) if text else 500
            if limit not in (5, 10, 20, 50, 100, 500, 1000):
                return self._error(400, -1130, "Data sent for parameter 'limit' is not valid.", [])
        else:
            limit = min(5000, max(1, int(text))) if text else 100
        if inst.recorded_snapshots:
            return json_response(200, self._recorded(inst))
        f = self._get_faults()
        now = _now_ms()
        if (
            f.stale_snapshot
            and f.applies_to(self.hub.name)
            and self._rng.random() < f.stale_snapshot
            and inst.history
        ):
            self.stats["stale_snapshots"] = self.stats.get("stale_snapshots", 0) + 1
            old = inst.history[0]
            for h in inst.history:
                if now - h[0] >= f.stale_snapshot_ms:
                    old = h
            _, last_id, bids, asks = old
            body = inst.enc.snapshot(last_id, bids[:limit], asks[:limit], now, old[0])
            return json_response(200, body)
        body = inst.enc.snapshot(
            inst.update_id,
            inst.levels(BID, limit),
            inst.levels(ASK, limit),
            now,
            inst.last_event_ms or now,
        )
        return json_response(200, body)

    def _recorded(self, inst: BinanceInstrument) -> bytes:
        """Return the recorded snapshot due at the replay clock (else the first)."""
        snaps = inst.recorded_snapshots
        current = inst.replay_clock_ns
        chosen = snaps[0][1]
        for recv_ns, payload in snaps:
            if recv_ns <= current:
                chosen = payload
        return chosen

    def _exchange_info(self, req: Request) -> Response:
        wanted: list[str] | None = None
        if "symbol" in req.query:
            wanted = [req.query["symbol"]]
        elif "symbols" in req.query:
            try:
                parsed = json.loads(req.query["symbols"])
            except ValueError:
                parsed = None
            if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
                return self._error(
                    400, -1100, "Illegal characters found in parameter 'symbols'.", []
                )
            wanted = parsed
        insts = list(self.hub.instruments.values())
        if wanted is not None:
            by = {i.spec.symbol: i for i in insts}
            missing = [s for s in wanted if s not in by]
            if missing:
                return self._error(400, -1121, "Invalid symbol.", [])
            insts = [by[s] for s in wanted]
        limits: list[dict[str, Any]] = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ]
        body: dict[str, Any] = {"timezone": "UTC", "serverTime": _now_ms(), "rateLimits": limits}
        if self.usdm:
            body["futuresType"] = "U_MARGINED"
            body["assets"] = []
        body["exchangeFilters"] = []
        body["symbols"] = [i.enc.exchange_info_symbol() for i in insts]
        return json_response(200, dumps(body))
