"""Turn what the collectors produce into record batches on the bus.

Per instrument and kind one stream (:func:`orchestrator.data.bus.stream_name`, the
exchange option name as venue so spot and futures stay apart):

* ``trades`` - the feed's trade records (``Feed.drain_trades``), converted to
  :data:`orchestrator.data.records.TRADE_DTYPE` in one vectorized step and sent as one
  binary batch per instrument per publish;
* ``tops`` - best bid/ask of every LIVE book at each publish (a sampled top of book), also
  cached in Redis as the hash ``tob:<exchange>:<symbol>`` for other processes;
* ``ledger`` - the completeness ledger: ``START``/``STOP`` bracketing the run, and every
  disconnect, reconnect, gap, resync and stale interval of the collectors, per instrument.

Book level deltas are not published yet: the compiled parsers apply levels straight into
the books and do not emit delta records (the raw capture holds every frame meanwhile).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from orchestrator.collector import LedgerEvent, LedgerKind, VenueCollector
from orchestrator.data import records as rec
from orchestrator.data.bus import Bus, stream_name

__all__ = ["Publisher"]

_LEDGER: dict[LedgerKind, tuple[rec.LedgerKind, ...]] = {
    LedgerKind.DISCONNECTED: (rec.LedgerKind.DISCONNECT,),
    LedgerKind.CONNECTED: (rec.LedgerKind.RECONNECT,),
    LedgerKind.GAP: (rec.LedgerKind.GAP, rec.LedgerKind.STALE_START),
    LedgerKind.SYNCED: (rec.LedgerKind.RESYNC,),
    LedgerKind.STALE_END: (rec.LedgerKind.STALE_END,),
}


class Publisher:
    """Publishes trades, tops and ledger events of a set of collectors to a bus.

    Parameters
    ----------
    bus
        Where batches go (in-process or Redis Streams).
    registry
        Venue and instrument ids (shared with the archive when there is one).
    """

    def __init__(self, bus: Bus, registry: rec.InstrumentRegistry | None = None) -> None:
        self.bus = bus
        self.registry = registry or rec.InstrumentRegistry()
        self.published = {"trades": 0, "tops": 0, "ledger": 0}
        #: every stream published to so far (consumers subscribe to these)
        self.streams: set[str] = set()
        self._pending: list[tuple[VenueCollector, LedgerEvent]] = []

    def _inst(self, col: VenueCollector, symbol: str) -> int:
        return self.registry.instrument_id(col.spec.name, col.spec.market, symbol)

    def on_ledger(self, col: VenueCollector, event: LedgerEvent) -> None:
        """Queue one collector ledger event (published at the next :meth:`publish`)."""
        if event.kind is LedgerKind.DISCONNECTED and event.detail.endswith(": stopped"):
            return  # our own shutdown, after STOP: not a break in the recording
        if event.kind in _LEDGER:
            self._pending.append((col, event))

    def mark(self, collectors: Sequence[VenueCollector], kind: rec.LedgerKind) -> None:
        """Queue ``START``/``STOP`` for every instrument of ``collectors``."""
        now = time.time_ns()
        for col in collectors:
            for symbol in col.symbols:
                ev = LedgerEvent(LedgerKind.NOTICE, col.spec.name, symbol, now, kind.name)
                self._pending.append((col, ev))

    async def publish(
        self, collectors: Sequence[VenueCollector], trades: dict[str, npt.NDArray[np.void]]
    ) -> None:
        """Publish drained ``trades`` (per exchange), current tops and queued ledger events."""
        for col in collectors:
            batch = trades.get(col.spec.name)
            if batch is not None and len(batch):
                await self._trades(col, batch)
            await self._tops(col)
        await self._ledger()

    async def _send(self, stream: str, payload: bytes) -> None:
        self.streams.add(stream)
        await self.bus.publish(stream, payload)

    async def _trades(self, col: VenueCollector, trades: npt.NDArray[np.void]) -> None:
        spec = col.spec
        venue = self.registry.venue_id(spec.name)
        names = col.feed.instruments()
        inst_map = self.registry.feed_map(spec.name, spec.market, names)
        records = rec.trades_from_feed(trades, venue, inst_map)
        ids = records["inst"]
        for inst in np.unique(ids):
            symbol = self.registry.get(int(inst)).symbol
            part = records[ids == inst]
            payload = rec.encode_batch(rec.RecordKind.TRADE, part)
            await self._send(stream_name(spec.name, symbol, "trades"), payload)
            self.published["trades"] += len(part)

    async def _tops(self, col: VenueCollector) -> None:
        spec = col.spec
        venue = self.registry.venue_id(spec.name)
        now = time.time_ns()
        for symbol in col.symbols:
            book, live = col.book(symbol)
            if book is None or not live:
                continue
            top = rec.empty(rec.RecordKind.TOP, 1)
            top["exch_ns"] = now
            top["recv_ns"] = now
            top["seq"] = book.last_update_id
            top["bid_price"], top["bid_size"] = book.best_bid()
            top["ask_price"], top["ask_size"] = book.best_ask()
            top["inst"] = self._inst(col, symbol)
            top["venue"] = venue
            top["flags"] = (0 if book.bid_levels else 1) | (0 if book.ask_levels else 2)
            await self._send(
                stream_name(spec.name, symbol, "tops"), rec.encode_batch(rec.RecordKind.TOP, top)
            )
            self.bus.cache_top(
                f"tob:{spec.name}:{symbol}",
                {
                    "bid_price": int(top["bid_price"][0]),
                    "bid_size": int(top["bid_size"][0]),
                    "ask_price": int(top["ask_price"][0]),
                    "ask_size": int(top["ask_size"][0]),
                    "price_scale": book.price_scale,
                    "size_scale": book.size_scale,
                    "seq": book.last_update_id,
                    "ts_ns": now,
                },
            )
            self.published["tops"] += 1

    async def _ledger(self) -> None:
        pending, self._pending = self._pending, []
        by_stream: dict[str, list[tuple[int, int, rec.LedgerKind]]] = {}
        for col, ev in pending:
            if ev.kind is LedgerKind.NOTICE:
                kinds: tuple[rec.LedgerKind, ...] = (rec.LedgerKind[ev.detail],)
            else:
                kinds = _LEDGER[ev.kind]
            symbols = [ev.symbol] if ev.symbol else list(col.symbols)
            for symbol in symbols:
                inst = self._inst(col, symbol)
                stream = stream_name(col.spec.name, symbol, "ledger")
                for kind in kinds:
                    by_stream.setdefault(stream, []).append((inst, ev.ts_ns, kind))
        for stream, rows in by_stream.items():
            out = rec.empty(rec.RecordKind.LEDGER, len(rows))
            venue = self.registry.venue_id(stream.split(":")[1])
            for i, (inst, ts, kind) in enumerate(rows):
                out[i]["exch_ns"] = ts
                out[i]["recv_ns"] = ts
                out[i]["inst"] = inst
                out[i]["venue"] = venue
                out[i]["kind"] = int(kind)
            await self._send(stream, rec.encode_batch(rec.RecordKind.LEDGER, out))
            self.published["ledger"] += len(rows)
