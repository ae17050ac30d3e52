"""What a venue adapter declares; the shared machinery (``orchestrator.collector``) does the rest.

A venue is a :class:`VenueSpec`: endpoints, connection rules, how channels map to stream
names and connections, how to subscribe, where the depth snapshot comes from, where the
instrument metadata is, and which compiled feed parses its frames. Adding a venue is one
folder under ``orchestrator/venues/`` defining ``SPEC`` (see ``registry``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ext.feed import Feed
from orchestrator.net.ws import WsPolicy

__all__ = ["Connection", "RestCall", "VenueSpec"]


@dataclass(frozen=True, slots=True)
class RestCall:
    """One REST request: path, query parameters and its rate-limit weight."""

    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Connection:
    """One WebSocket connection to open: its URL and the subscribe messages to send."""

    url: str
    subscribe: tuple[bytes, ...]
    streams: tuple[str, ...]
    route: str = ""


@dataclass(frozen=True)
class VenueSpec(ABC):
    """Declarations of one venue and market.

    Attributes
    ----------
    name
        Exchange option name (``SUPPORTED_EXCHANGES`` key, e.g. ``binance_usdm``).
    venue, market
        Feed labels (``binance``/``okx``; ``spot``/``usdm``/``swap``).
    policy
        WebSocket keep-alive, rollover and pacing rules.
    connect_limit, connect_period
        Connection attempts allowed per period per IP.
    rest_limit, rest_period
        REST weight allowed per period.
    rest_weight_header
        Response header reporting used weight, if the venue sends one.
    max_streams_per_connection
        Streams (or channel args) per connection, below the venue's hard limit.
    snapshot_from_rest
        Whether books start from a REST snapshot (Binance) or from the stream (OKX).
    """

    name: str
    venue: str
    market: str
    policy: WsPolicy
    connect_limit: int
    connect_period: float
    rest_limit: int
    rest_period: float
    rest_weight_header: str | None
    max_streams_per_connection: int
    snapshot_from_rest: bool

    @abstractmethod
    def make_feed(self, delta_capacity: int = 0) -> Feed:
        """Create a compiled feed (``delta_capacity`` book delta records; 0: none)."""

    @abstractmethod
    def connections(
        self, ws_url: str, symbols: Sequence[str], channels: Sequence[str]
    ) -> list[Connection]:
        """Split the subscriptions into connections within the venue's limits."""

    @abstractmethod
    def book_channel(self, channels: Sequence[str]) -> str | None:
        """Return the feed channel label of the book among ``channels`` (None: no book)."""

    @abstractmethod
    def instruments_call(self, symbols: Sequence[str]) -> RestCall:
        """Return the REST call giving tick and lot sizes of ``symbols``."""

    def snapshot_call(self, symbol: str) -> RestCall:
        """Return the REST depth snapshot call (venues with ``snapshot_from_rest``)."""
        raise NotImplementedError(f"{self.name} books start from the stream")

    def resubscribe(self, symbol: str, channel: str) -> list[bytes]:
        """Control messages that make the venue send a fresh book snapshot (stream venues)."""
        raise NotImplementedError(f"{self.name} books start from a REST snapshot")

    def classify_other(self, message: Any) -> tuple[str, str]:
        """Classify a non-market-data frame: ``(kind, detail)``.

        Kinds: ``ack``, ``error``, ``shutdown`` (reconnect soon), ``pong``, ``unknown``.
        """
        return "unknown", str(message)[:200]
