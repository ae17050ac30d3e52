"""Live market data of one venue: connections, exact books, per-symbol sync, ledger events.

A :class:`VenueCollector` runs a venue adapter (:class:`~orchestrator.venues.base.VenueSpec`):

1. reads instrument metadata (tick and lot sizes) over REST and hands the scales to the
   compiled feed; when metadata cannot be had the feed infers scales from the data (never
   rejects legitimate data) and a warning says so;
2. opens the venue's connections (:class:`~orchestrator.net.ws.WsSession`), each frame going
   straight from picows' callback into the compiled parser (``Feed.on_frame``), which applies
   the venue's sequence rules inline and buffers Binance diffs while a book is not in sync;
3. runs one sync state machine per book (:class:`BookState`)::

       WAITING --snapshot bridged--> LIVE --gap/checksum/crossed--> STALE --resynced--> LIVE

   A book that is not LIVE is never served as good: :meth:`VenueCollector.book` says whether
   it is in sync. Only the broken symbol is resynced (Binance: a new REST snapshot bridging
   the buffered diffs, refetched while the venue answers with a stale one; OKX: unsubscribe
   and subscribe that one book, which brings a new snapshot); the other symbols and the
   connections are left alone;
4. emits every connect, disconnect, gap, resync and stale interval as a :class:`LedgerEvent`
   (the archive keeps them as the completeness ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ext.book import OrderBook
from ext.feed import (
    CHECKSUM_MISMATCH,
    CROSSED,
    GAP,
    OTHER,
    STALE_SNAPSHOT,
    TICKER_MISMATCH,
    FrameError,
)
from orchestrator.instruments import MetadataError, apply_scales, load_scales
from orchestrator.net.backoff import Backoff, ConnectBudget
from orchestrator.net.rest import RestClient, RestError
from orchestrator.net.ws import EventKind, SessionEvent, WsPolicy, WsSession
from orchestrator.venues.base import Connection, VenueSpec

__all__ = ["BookState", "LedgerEvent", "LedgerKind", "VenueCollector"]

log = logging.getLogger(__name__)

_PROBLEMS = frozenset({GAP, CHECKSUM_MISMATCH, CROSSED, TICKER_MISMATCH})


class LedgerKind(enum.Enum):
    """Kinds of completeness-ledger events."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RATE_LIMITED = "rate_limited"
    SYNCED = "synced"  # a book became LIVE (first time or after a resync)
    GAP = "gap"  # a live book failed a check and went STALE
    RESYNC = "resync"  # a resync was started for a book
    STALE_END = "stale_end"  # a STALE book is LIVE again (detail: stale seconds)
    FRAME_ERROR = "frame_error"
    NOTICE = "notice"  # venue notices (shutdown / upgrade) and errors


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One completeness-ledger event.

    Attributes
    ----------
    kind
        What happened.
    exchange
        Exchange option name (``binance``, ``okx_swap`` ...).
    symbol
        Instrument, or ``""`` for connection-level events.
    ts_ns
        Local wall-clock time in ns.
    detail
        Human-readable detail.
    """

    kind: LedgerKind
    exchange: str
    symbol: str
    ts_ns: int
    detail: str = ""


class BookState(enum.Enum):
    """Sync state of one book."""

    WAITING = "waiting"  # never synced yet
    LIVE = "live"
    STALE = "stale"  # failed a check; resync in progress


@dataclass(slots=True)
class _Book:
    symbol: str
    state: BookState = BookState.WAITING
    since: float = field(default_factory=time.monotonic)
    resync: asyncio.Task[None] | None = None
    resyncs: int = 0
    stale_seconds: float = 0.0
    last_request: float = 0.0


def _messages(conn: Connection) -> tuple[bytes, ...]:
    return conn.subscribe


class VenueCollector:
    """Connections, books and sync of one venue (see the module docstring).

    Parameters
    ----------
    spec
        The venue adapter.
    symbols, channels
        What to subscribe (venue spelling: ``BTCUSDT`` / ``BTC-USDT``; ``depth@100ms``...).
    ws_url, rest_url
        Endpoints (the real venue, or the simulator's).
    on_event
        Receives every :class:`LedgerEvent`.
    on_frame
        Optional tap of every raw frame ``(connection, payload, recv_ns)`` (e.g. a raw
        capture writer); the payload is only valid during the call.
    on_rest
        Optional tap of every REST depth snapshot ``(url, payload, recv_ns)``.
    check_interval
        Seconds between sync checks (also run at once after a failed check).
    snapshot_delay
        Binance: seconds to let diffs buffer before the first snapshot request.
    resubscribe_after
        OKX: seconds a book may wait for its snapshot before it is requested again.
    policy
        Connection rules overriding the venue's (tests, tuning).
    delta_capacity
        Book delta records the feed holds between drains (0: none; ``Feed.drain_deltas``).
    """

    def __init__(
        self,
        spec: VenueSpec,
        symbols: Sequence[str],
        channels: Sequence[str],
        ws_url: str,
        rest_url: str,
        on_event: Callable[[LedgerEvent], None] | None = None,
        on_frame: Callable[[str, memoryview, int], None] | None = None,
        on_rest: Callable[[str, bytes, int], None] | None = None,
        check_interval: float = 0.25,
        snapshot_delay: float = 0.3,
        resubscribe_after: float = 5.0,
        policy: WsPolicy | None = None,
        delta_capacity: int = 0,
    ) -> None:
        if not symbols:
            raise ValueError(f"{spec.name}: no symbols to collect")
        self.spec = spec
        self.symbols = list(symbols)
        self.channels = list(channels)
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.on_event = on_event
        self.tap = on_frame
        self.rest_tap = on_rest
        #: receive -> applied latency samples in ns (every 4th frame; a ring)
        self.apply_latency = np.zeros(4096, dtype=np.int64)
        self.latency_samples = 0
        self.check_interval = check_interval
        self.snapshot_delay = snapshot_delay
        self.resubscribe_after = resubscribe_after
        self.policy = policy or spec.policy
        self.feed = spec.make_feed(delta_capacity)
        self.book_channel = spec.book_channel(self.channels)
        self.connections: list[Connection] = spec.connections(ws_url, self.symbols, self.channels)
        self.rest = RestClient(
            rest_url,
            spec.name,
            ConnectBudget(spec.rest_limit, spec.rest_period),
            weight_header=spec.rest_weight_header,
        )
        self.budget = ConnectBudget(spec.connect_limit, spec.connect_period)
        self.sessions: list[WsSession] = []
        self.books: dict[str, _Book] = (
            {s: _Book(s) for s in self.symbols} if self.book_channel is not None else {}
        )
        self.frame_errors = 0
        self.other_frames = 0
        self.problems = 0
        self.scales_source = "inferred"
        self._check = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Load metadata, open the connections and start the sync supervisor."""
        await self._load_metadata()
        for i, conn in enumerate(self.connections):
            name = f"{self.spec.name}/{i}{conn.route}"
            session = WsSession(
                name,
                conn.url,
                self._frame_handler(name),
                subscribe=functools.partial(_messages, conn),
                policy=self.policy,
                budget=self.budget,
                backoff=Backoff(),
                on_event=self._session_event,
            )
            self.sessions.append(session)
            session.start()
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._supervise(), name=f"sync:{self.spec.name}")

    async def stop(self) -> None:
        """Close connections and background tasks; leaves nothing running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for b in self.books.values():
            if b.resync is not None and not b.resync.done():
                b.resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await b.resync
        await asyncio.gather(*(s.stop() for s in self.sessions))
        await self.rest.close()

    async def __aenter__(self) -> VenueCollector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- queries ----------------------------------------------------------------------------

    def book(self, symbol: str) -> tuple[OrderBook | None, bool]:
        """Return the book of ``symbol`` and whether it is LIVE (only then trustworthy)."""
        b = self.books.get(symbol)
        if b is None or self.book_channel is None:
            return None, False
        book = self.feed.book(symbol, self.book_channel)
        return book, bool(book is not None and b.state is BookState.LIVE and book.in_sync)

    def state(self, symbol: str) -> BookState:
        """Sync state of ``symbol``'s book."""
        return self.books[symbol].state

    def latency_ns(self) -> np.ndarray:
        """Receive -> applied latency samples (ns) of the recent frames."""
        n = min(self.latency_samples, len(self.apply_latency))
        return self.apply_latency[:n].copy()

    def status(self) -> dict[str, Any]:
        """Counters for dashboards and the terminal view."""
        now = time.monotonic()
        per_book = {}
        for s in self.feed.stats():
            if s["kind"] != "book":
                continue
            b = self.books.get(s["symbol"])
            if b is None:
                continue
            stale = b.stale_seconds + (now - b.since if b.state is not BookState.LIVE else 0.0)
            per_book[s["symbol"]] = {
                "state": b.state.value,
                "messages": s["messages"],
                "gaps": s["sequence_gaps"],
                "resyncs": b.resyncs,
                "stale_seconds": round(stale, 3),
                "checksums": s["checksums"],
            }
        return {
            "exchange": self.spec.name,
            "scales": self.scales_source,
            "connections": len(self.sessions),
            "connected": sum(s.connected for s in self.sessions),
            "reconnects": sum(max(0, s.stats.connects - 1) for s in self.sessions),
            "frames": self.feed.frames,
            "frame_errors": self.frame_errors,
            "books": per_book,
        }

    # -- frames -----------------------------------------------------------------------------

    def _frame_handler(self, name: str) -> Callable[[memoryview, int], None]:
        feed = self.feed
        on_frame = feed.on_frame  # type: ignore[attr-defined]
        tap = self.tap

        lat = self.apply_latency
        mask = len(lat) - 1
        clock = time.time_ns
        frames = 0

        def handle(payload: memoryview, recv_ns: int) -> None:
            nonlocal frames
            try:
                code = on_frame(payload, recv_ns)
                frames += 1
                if not frames & 3:
                    lat[(frames >> 2) & mask] = clock() - recv_ns
                    self.latency_samples += 1
            except FrameError as exc:
                if tap is not None:
                    tap(name, payload, recv_ns)
                self._frame_error(name, exc)
                return
            if tap is not None:  # recorded after the book is applied: off the latency path
                tap(name, payload, recv_ns)
            if code == OTHER:
                self._other(name, payload)
            elif code in _PROBLEMS:
                self.problems += 1
                self._check.set()

        return handle

    def _frame_error(self, name: str, exc: FrameError) -> None:
        self.frame_errors += 1
        if self.frame_errors <= 10 or self.frame_errors % 1000 == 0:
            log.error("%s: malformed frame (%s)", name, exc)
        self._emit(LedgerKind.FRAME_ERROR, "", str(exc)[:200])
        self._check.set()

    def _other(self, name: str, payload: memoryview) -> None:
        self.other_frames += 1
        raw = bytes(payload)
        try:
            message: Any = json.loads(raw)
        except ValueError:
            message = raw.decode("utf-8", "replace")
        kind, detail = self.spec.classify_other(message)
        if kind == "shutdown":
            log.warning("%s: venue notice (%s); reconnecting", name, detail)
            self._emit(LedgerKind.NOTICE, "", detail)
            for s in self.sessions:
                if s.name == name:
                    s.reconnect(detail)
        elif kind == "error":
            log.error("%s: venue error %s", name, detail)
            self._emit(LedgerKind.NOTICE, "", f"error {detail}")
        elif kind == "unknown":
            log.debug("%s: unhandled frame %s", name, detail)

    def _session_event(self, event: SessionEvent) -> None:
        kinds = {
            EventKind.CONNECTED: LedgerKind.CONNECTED,
            EventKind.DISCONNECTED: LedgerKind.DISCONNECTED,
            EventKind.RATE_LIMITED: LedgerKind.RATE_LIMITED,
        }
        kind = kinds.get(event.kind)
        if kind is not None:
            self._emit(kind, "", f"{event.session}: {event.detail}")
        if event.kind is EventKind.DISCONNECTED and self.book_channel is not None:
            # frames were lost while down: the books of that connection must resync
            # (Binance buffers diffs for a new REST snapshot; OKX resubscribes with one)
            for i, session in enumerate(self.sessions):
                if session.name == event.session:
                    for symbol in self._symbols_of(self.connections[i]):
                        self.feed.desync(symbol, self.book_channel)
            self._check.set()

    def _emit(self, kind: LedgerKind, symbol: str, detail: str = "") -> None:
        if self.on_event is not None:
            self.on_event(LedgerEvent(kind, self.spec.name, symbol, time.time_ns(), detail))

    # -- sync -------------------------------------------------------------------------------

    async def _load_metadata(self) -> None:
        call = self.spec.instruments_call(self.symbols)
        try:
            info = await self.rest.fetch(call.path, call.params, call.weight, attempts=3)
            n = apply_scales(self.feed, load_scales(info).values())
            self.scales_source = "metadata"
            log.info("%s: scales of %d instruments from metadata", self.spec.name, n)
        except (RestError, MetadataError) as exc:
            log.warning(
                "%s: no instrument metadata (%s); scales are inferred from the data",
                self.spec.name,
                exc,
            )

    async def _supervise(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check.wait(), self.check_interval)
            self._check.clear()
            self._sync_pass()

    def _sync_pass(self) -> None:
        if self.book_channel is None:
            return
        now = time.monotonic()
        for b in self.books.values():
            book = self.feed.book(b.symbol, self.book_channel)
            in_sync = book is not None and book.in_sync
            if in_sync and b.state is not BookState.LIVE:
                if b.state is BookState.STALE:
                    stale = now - b.since
                    b.stale_seconds += stale
                    self._emit(LedgerKind.STALE_END, b.symbol, f"{stale:.3f}")
                b.state, b.since = BookState.LIVE, now
                self._emit(LedgerKind.SYNCED, b.symbol)
            elif not in_sync and b.state is BookState.LIVE:
                b.state, b.since = BookState.STALE, now
                log.warning("%s %s: book failed a check; resyncing it", self.spec.name, b.symbol)
                self._emit(LedgerKind.GAP, b.symbol)
            if b.state is not BookState.LIVE and (b.resync is None or b.resync.done()):
                self._request_sync(b, now)

    def _request_sync(self, b: _Book, now: float) -> None:
        if self.spec.snapshot_from_rest:
            # let diffs buffer first; after a snapshot, give its bridging diff time to come
            if now - max(self._started, b.last_request) < self.snapshot_delay:
                return
            b.resyncs += b.state is BookState.STALE
            self._emit(LedgerKind.RESYNC, b.symbol, "rest snapshot")
            b.resync = asyncio.create_task(self._rest_snapshot(b), name=f"snap:{b.symbol}")
            return
        # stream snapshots: the subscription itself brings one; ask again when overdue
        if (
            now - max(b.since, b.last_request) < self.resubscribe_after
            and b.state is BookState.WAITING
        ):
            return
        if b.state is BookState.STALE and now - b.last_request < self.resubscribe_after:
            return
        session = self._session_of(b.symbol)
        if session is None or not session.connected:
            return
        b.last_request = now
        b.resyncs += b.state is BookState.STALE
        self._emit(LedgerKind.RESYNC, b.symbol, "resubscribe")
        assert self.book_channel is not None
        for msg in self.spec.resubscribe(b.symbol, self.book_channel):
            session.send(msg)

    def _symbols_of(self, conn: Connection) -> list[str]:
        return [b for b in self.books if self._carries(conn, b)]

    @staticmethod
    def _carries(conn: Connection, symbol: str) -> bool:
        low = f"{symbol.lower()}@"
        return any(s.endswith(f":{symbol}") or s.startswith(low) for s in conn.streams)

    def _session_of(self, symbol: str) -> WsSession | None:
        for conn, session in zip(self.connections, self.sessions, strict=True):
            if self._carries(conn, symbol):
                return session
        return None

    async def _rest_snapshot(self, b: _Book) -> None:
        call = self.spec.snapshot_call(b.symbol)
        pacing = Backoff(base=0.25, cap=10.0)
        while True:
            try:
                payload = await self.rest.fetch(call.path, call.params, call.weight, raw=True)
                if self.rest_tap is not None:
                    query = urllib.parse.urlencode({k: str(v) for k, v in call.params.items()})
                    self.rest_tap(
                        f"{self.rest.base_url}{call.path}?{query}", payload, time.time_ns()
                    )
            except RestError as exc:
                delay = pacing.next_delay(exc.retry_after)
                log.warning(
                    "%s %s: snapshot failed (%s); retry in %.1f s",
                    self.spec.name,
                    b.symbol,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            try:
                code = self.feed.on_snapshot(b.symbol, payload, time.time_ns())  # type: ignore[attr-defined]
            except FrameError as exc:
                self.frame_errors += 1
                log.error("%s %s: malformed snapshot (%s)", self.spec.name, b.symbol, exc)
                await asyncio.sleep(pacing.next_delay())
                continue
            if code == STALE_SNAPSHOT:
                await asyncio.sleep(pacing.next_delay())
                continue
            b.last_request = time.monotonic()
            self._check.set()
            return
