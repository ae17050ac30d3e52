"""Turn what the collectors produce into record batches on the bus.

Per instrument and kind one stream (:func:`orchestrator.data.bus.stream_name`, the
exchange option name as venue so spot and futures stay apart):

* ``deltas`` - every change of every book (``Feed.drain_deltas``): one row per changed
  level, stamped with its venue message's time and update id; a group of rows flagged
  ``FLAG_SNAPSHOT`` replaced the whole book (venue snapshot, resync, or a full delta
  buffer); prices and sizes at the book's scales; at most :data:`DELTA_CHUNK` rows per
  batch;
* ``snapshots`` - every ``snapshot_interval`` seconds, each LIVE book whole (one
  ``SNAPSHOT_DTYPE`` row per level, best first), stamped with the ``(exch_ns, seq)`` of the
  last delta published for it: a consumer loads it and applies the deltas after that stamp
  (:class:`orchestrator.data.books.ReplayBooks`);
* ``trades`` - the feed's trade records (``Feed.drain_trades``), converted to
  :data:`orchestrator.data.records.TRADE_DTYPE` in one vectorized step and sent as one
  binary batch per instrument per publish;
* ``tops`` - best bid/ask of every LIVE book at each publish (a sampled top of book), also
  cached in Redis as the hash ``tob:<exchange>:<symbol>`` for other processes;
* ``ledger`` - the completeness ledger: ``START``/``STOP`` bracketing the run, and every
  disconnect, reconnect, gap, resync and stale interval of the collectors, per instrument.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ext.book import ASK, BID
from orchestrator.collector import LedgerEvent, LedgerKind, VenueCollector
from orchestrator.data import records as rec
from orchestrator.data.bus import Bus, stream_name

__all__ = ["DELTA_CHUNK", "MAX_SNAPSHOT_LEVELS", "Publisher"]

log = logging.getLogger(__name__)

#: Most delta rows in one batch (a stream entry of at most ~1.5 MB).
DELTA_CHUNK = 32768
#: Most levels per side in a published snapshot (``SNAPSHOT_DTYPE.level`` is 16 bits).
MAX_SNAPSHOT_LEVELS = 65535

_LEDGER: dict[LedgerKind, tuple[rec.LedgerKind, ...]] = {
    LedgerKind.DISCONNECTED: (rec.LedgerKind.DISCONNECT,),
    LedgerKind.CONNECTED: (rec.LedgerKind.RECONNECT,),
    LedgerKind.GAP: (rec.LedgerKind.GAP, rec.LedgerKind.STALE_START),
    LedgerKind.SYNCED: (rec.LedgerKind.RESYNC,),
    LedgerKind.STALE_END: (rec.LedgerKind.STALE_END,),
}


class Publisher:
    """Publishes book deltas and snapshots, trades, tops and ledger events to a bus.

    Parameters
    ----------
    bus
        Where batches go (in-process or Redis Streams).
    registry
        Venue and instrument ids (shared with the archive when there is one).
    snapshot_interval
        Seconds between whole-book snapshots (``None``: none).
    """

    def __init__(
        self,
        bus: Bus,
        registry: rec.InstrumentRegistry | None = None,
        snapshot_interval: float | None = None,
    ) -> None:
        self.bus = bus
        self.registry = registry or rec.InstrumentRegistry()
        self.snapshot_interval = snapshot_interval
        self.published = {"trades": 0, "tops": 0, "ledger": 0, "deltas": 0, "snapshots": 0}
        #: every stream published to so far (consumers subscribe to these)
        self.streams: set[str] = set()
        #: ``(exch_ns, seq)`` of the last delta published per instrument id
        self.delta_stamp: dict[int, tuple[int, int]] = {}
        self._pending: list[tuple[VenueCollector, LedgerEvent]] = []
        self._snapshot_due: dict[int, float] = {}
        self._overflow_seen: dict[str, int] = {}

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
        self,
        collectors: Sequence[VenueCollector],
        trades: dict[str, npt.NDArray[np.void]],
        deltas: dict[str, npt.NDArray[np.void]] | None = None,
    ) -> None:
        """Publish drained deltas and trades, due snapshots, tops and queued ledger events.

        ``deltas`` and ``trades`` are keyed by exchange option name. Deltas are converted
        and snapshots taken before the first await, so a snapshot is the book exactly after
        the last delta it is stamped with.
        """
        converted = [
            (col, self._convert_deltas(col, deltas[col.spec.name]))
            for col in collectors
            if deltas is not None and len(deltas.get(col.spec.name, ()))
        ]
        snapshots = self._take_snapshots(collectors)
        for col, recs in converted:
            await self._deltas(col, recs)
        for col, symbol, rows in snapshots:
            payload = rec.encode_batch(rec.RecordKind.SNAPSHOT, rows)
            await self._send_raw(stream_name(col.spec.name, symbol, "snapshots"), payload)
            self.published["snapshots"] += 1
        for col in collectors:
            batch = trades.get(col.spec.name)
            if batch is not None and len(batch):
                await self._trades(col, batch)
            await self._tops(col)
            self._check_overflow(col)
        await self._ledger()

    def _check_overflow(self, col: VenueCollector) -> None:
        lost = col.feed.deltas_overflow
        if lost > self._overflow_seen.get(col.spec.name, 0):
            self._overflow_seen[col.spec.name] = lost
            log.warning(
                "%s: the book delta buffer filled (%d time(s) so far); the books concerned "
                "were re-sent whole - raise publish.delta_capacity",
                col.spec.name,
                lost,
            )

    def _scales(self, col: VenueCollector) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Return the book scales per feed instrument index (0 for trade instruments)."""
        names = col.feed.instruments()
        ps = np.zeros(len(names), dtype=np.int64)
        ss = np.zeros(len(names), dtype=np.int64)
        for i, (symbol, channel, kind) in enumerate(names):
            if kind == "book":
                book = col.feed.book(symbol, channel)
                if book is not None:
                    ps[i], ss[i] = book.price_scale, book.size_scale
        return ps, ss

    def _convert_deltas(
        self, col: VenueCollector, drained: npt.NDArray[np.void]
    ) -> npt.NDArray[np.void]:
        spec = col.spec
        venue = self.registry.venue_id(spec.name)
        inst_map = self.registry.feed_map(spec.name, spec.market, col.feed.instruments())
        ps, ss = self._scales(col)
        recs = rec.deltas_from_feed(drained, venue, inst_map, ps, ss)
        ids = recs["inst"]
        for inst in np.unique(ids).tolist():
            last = int(np.flatnonzero(ids == inst)[-1])
            self.delta_stamp[inst] = (int(recs["exch_ns"][last]), int(recs["seq"][last]))
        return recs

    async def _deltas(self, col: VenueCollector, recs: npt.NDArray[np.void]) -> None:
        ids = recs["inst"]
        for inst in np.unique(ids).tolist():
            part = recs[ids == inst]
            stream = stream_name(col.spec.name, self.registry.get(inst).symbol, "deltas")
            for lo in range(0, len(part), DELTA_CHUNK):
                chunk = part[lo : lo + DELTA_CHUNK]
                await self._send_raw(stream, rec.encode_batch(rec.RecordKind.DELTA, chunk))
                self.published["deltas"] += len(chunk)

    def _take_snapshots(
        self, collectors: Sequence[VenueCollector]
    ) -> list[tuple[VenueCollector, str, npt.NDArray[np.void]]]:
        """Each LIVE book whose snapshot is due, whole, stamped with its last delta.

        A book's first snapshot goes out as soon as it is live and has deltas published,
        then one every ``snapshot_interval`` seconds. Without deltas (``publish.deltas``
        off) snapshots are stamped with the publish time and the book's update id.
        """
        if self.snapshot_interval is None:
            return []
        mono = time.monotonic()
        out = []
        now = time.time_ns()
        for col in collectors:
            venue = self.registry.venue_id(col.spec.name)
            for symbol in col.symbols:
                book, live = col.book(symbol)
                inst = self._inst(col, symbol)
                if book is None or not live:
                    continue
                stamp = self.delta_stamp.get(inst)
                if stamp is None:
                    if col.feed.delta_capacity:
                        continue  # deltas are on: wait until one was published
                    stamp = (now, book.last_update_id)  # deltas off: stand-alone states
                if mono < self._snapshot_due.get(inst, 0.0):
                    continue
                self._snapshot_due[inst] = mono + self.snapshot_interval
                nb = min(book.bid_levels, MAX_SNAPSHOT_LEVELS)
                na = min(book.ask_levels, MAX_SNAPSHOT_LEVELS)
                if nb + na == 0:
                    continue  # an empty book has no rows to send (its deltas say it)
                rows = rec.empty(rec.RecordKind.SNAPSHOT, nb + na)
                bp, bs = book.top_copy(BID, nb)
                ap, az = book.top_copy(ASK, na)
                rows["price"] = np.concatenate([bp, ap])
                rows["size"] = np.concatenate([bs, az])
                rows["side"][nb:] = rec.ASK
                rows["level"] = np.concatenate([np.arange(nb), np.arange(na)])
                rows["exch_ns"], rows["seq"] = stamp
                rows["recv_ns"] = now
                rows["inst"] = inst
                rows["venue"] = venue
                out.append((col, symbol, rows))
        return out

    async def _send_raw(self, stream: str, payload: bytes) -> None:
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
            await self._send_raw(stream_name(spec.name, symbol, "trades"), payload)
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
            await self._send_raw(
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
            await self._send_raw(stream, rec.encode_batch(rec.RecordKind.LEDGER, out))
            self.published["ledger"] += len(rows)
