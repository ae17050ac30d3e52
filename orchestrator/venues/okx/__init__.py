"""OKX v5 spot public market data (EXCHANGES.md section 3).

Books start from the stream: a ``books`` subscription is answered with a snapshot, and a
broken book is recovered by unsubscribing and subscribing that one instrument again. The
client keeps the connection alive with text ``ping`` after 20 s of silence (the server drops
idle connections after 30 s). Book channels are spread over connections of fewer than 30
channels each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ext.feed import Feed
from ext.okx import OkxFeed
from orchestrator.net.ws import PingStyle, WsPolicy
from orchestrator.venues.base import Connection, RestCall, VenueSpec

__all__ = ["SPEC", "OkxSpec"]

BOOK_CHANNELS = ("books", "books5", "bbo-tbt", "books-l2-tbt", "books50-l2-tbt")
CHANNELS = frozenset({*BOOK_CHANNELS, "trades"})


@dataclass(frozen=True)
class OkxSpec(VenueSpec):
    """OKX (spot and SWAP differ by instrument type only)."""

    inst_type: str = "SPOT"

    def make_feed(self, delta_capacity: int = 0) -> Feed:
        """Create an :class:`ext.okx.OkxFeed`."""
        return OkxFeed(self.market, delta_capacity=delta_capacity)

    @staticmethod
    def _op(op: str, args: Sequence[tuple[str, str]]) -> bytes:
        return json.dumps(
            {"op": op, "args": [{"channel": c, "instId": i} for c, i in args]},
            separators=(",", ":"),
        ).encode()

    def connections(
        self, ws_url: str, symbols: Sequence[str], channels: Sequence[str]
    ) -> list[Connection]:
        """One subscribe message per connection, fewer than 30 channel args each."""
        bad = sorted(set(channels) - CHANNELS)
        if bad:
            raise ValueError(f"{self.name}: unknown channels {bad}; known: {sorted(CHANNELS)}")
        args = [(c, s) for s in symbols for c in channels]
        n = self.max_streams_per_connection
        out = []
        for i in range(0, len(args), n):
            chunk = args[i : i + n]
            out.append(
                Connection(
                    ws_url, (self._op("subscribe", chunk),), tuple(f"{c}:{s}" for c, s in chunk)
                )
            )
        return out

    def book_channel(self, channels: Sequence[str]) -> str | None:
        """Return the first book channel subscribed."""
        return next((c for c in channels if c in BOOK_CHANNELS), None)

    def instruments_call(self, symbols: Sequence[str]) -> RestCall:
        """``/api/v5/public/instruments`` of this instrument type."""
        return RestCall("/api/v5/public/instruments", {"instType": self.inst_type}, 1)

    def resubscribe(self, symbol: str, channel: str) -> list[bytes]:
        """Unsubscribe then subscribe the book: OKX answers with a new snapshot."""
        return [
            self._op("unsubscribe", [(channel, symbol)]),
            self._op("subscribe", [(channel, symbol)]),
        ]

    def classify_other(self, message: Any) -> tuple[str, str]:
        """Subscribe acks, errors and the 64008 upgrade notice."""
        if message == "pong":
            return "pong", ""
        if isinstance(message, dict):
            event = message.get("event")
            if event in ("subscribe", "unsubscribe", "channel-conn-count"):
                return "ack", json.dumps(message.get("arg", message))[:200]
            if event == "notice" or message.get("code") == "64008":
                return "shutdown", f"notice {message.get('code')}: {message.get('msg')}"
            if event == "error":
                return "error", f"code {message.get('code')}: {message.get('msg')}"
        return "unknown", str(message)[:200]


SPEC = OkxSpec(
    name="okx",
    venue="okx",
    market="spot",
    policy=WsPolicy(
        ping=PingStyle.TEXT, idle_ping_after=20, ping_reply_timeout=10, max_age=None, control_rate=2
    ),
    connect_limit=3,  # new connections per second per IP
    connect_period=1.0,
    rest_limit=20,  # public market endpoints: 20 requests per 2 s
    rest_period=2.0,
    rest_weight_header=None,
    max_streams_per_connection=25,
    snapshot_from_rest=False,
    inst_type="SPOT",
)
