"""Binance spot public market data (EXCHANGES.md section 1).

Streams ride in the combined-stream URL (``/stream?streams=a/b/c``), so a reconnect is
subscribed by its URL alone and sends no control messages (spot allows 5 incoming messages
per second, pongs included). Books start from ``GET /api/v3/depth`` (limit 1000, weight 50).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ext.binance import BinanceFeed
from ext.feed import Feed
from orchestrator.net.ws import PingStyle, WsPolicy
from orchestrator.venues.base import Connection, RestCall, VenueSpec

__all__ = ["SPEC", "BinanceSpec"]

#: Channel names accepted in config, as Binance stream suffixes.
CHANNELS = frozenset({"depth", "depth@100ms", "depth@1000ms", "trade", "aggTrade", "bookTicker"})


@dataclass(frozen=True)
class BinanceSpec(VenueSpec):
    """Binance (spot and futures share the stream protocol)."""

    depth_path: str = "/api/v3/depth"
    depth_limit: int = 1000
    depth_weight: int = 50
    exchange_info_path: str = "/api/v3/exchangeInfo"
    exchange_info_weight: int = 20
    #: route path prefix per channel (USD-M splits /public and /market); "" = one route
    routes: tuple[tuple[str, str], ...] = ()

    def make_feed(self, delta_capacity: int = 0) -> Feed:
        """Create an :class:`ext.binance.BinanceFeed` for this market."""
        return BinanceFeed(self.market, delta_capacity=delta_capacity)

    def _route(self, channel: str) -> str:
        for prefix, route in self.routes:
            if channel.startswith(prefix):
                return route
        return ""

    def connections(
        self, ws_url: str, symbols: Sequence[str], channels: Sequence[str]
    ) -> list[Connection]:
        """Combined-stream URLs, at most ``max_streams_per_connection`` streams each."""
        bad = sorted(set(channels) - CHANNELS)
        if bad:
            raise ValueError(f"{self.name}: unknown channels {bad}; known: {sorted(CHANNELS)}")
        by_route: dict[str, list[str]] = {}
        for symbol in symbols:
            for channel in channels:
                by_route.setdefault(self._route(channel), []).append(f"{symbol.lower()}@{channel}")
        out = []
        base = ws_url.rstrip("/")
        n = self.max_streams_per_connection
        for route, streams in by_route.items():
            for i in range(0, len(streams), n):
                chunk = tuple(streams[i : i + n])
                url = f"{base}{route}/stream?streams={'/'.join(chunk)}"
                out.append(Connection(url, (), chunk, route))
        return out

    def book_channel(self, channels: Sequence[str]) -> str | None:
        """``depth`` when any depth stream is subscribed."""
        return "depth" if any(c.startswith("depth") for c in channels) else None

    def instruments_call(self, symbols: Sequence[str]) -> RestCall:
        """``exchangeInfo`` (all symbols: the futures endpoint takes no filter)."""
        return RestCall(self.exchange_info_path, {}, self.exchange_info_weight)

    def snapshot_call(self, symbol: str) -> RestCall:
        """``depth`` with ``limit`` 1000."""
        return RestCall(
            self.depth_path, {"symbol": symbol, "limit": self.depth_limit}, self.depth_weight
        )

    def classify_other(self, message: Any) -> tuple[str, str]:
        """Subscription results, errors and ``serverShutdown`` notices."""
        if isinstance(message, dict):
            data = message.get("data", message)
            if isinstance(data, dict) and data.get("e") == "serverShutdown":
                return "shutdown", "serverShutdown"
            if "result" in message and "id" in message:
                return "ack", json.dumps(message)[:200]
            err = message.get("error")
            if isinstance(err, dict):  # live-subscription errors as seen on the wire
                return "error", f"code {err.get('code')}: {err.get('msg')}"
            if "code" in message:
                return "error", f"code {message.get('code')}: {message.get('msg')}"
        return "unknown", str(message)[:200]


SPEC = BinanceSpec(
    name="binance",
    venue="binance",
    market="spot",
    policy=WsPolicy(ping=PingStyle.SERVER, max_age=23 * 3600, rollover_jitter=1800, control_rate=4),
    connect_limit=200,  # 300 per 5 min per IP, with headroom (EXCHANGES.md section 6)
    connect_period=300.0,
    rest_limit=6000,
    rest_period=60.0,
    rest_weight_header="X-MBX-USED-WEIGHT-1M",
    max_streams_per_connection=200,
    snapshot_from_rest=True,
)
