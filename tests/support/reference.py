"""Reference verifier: a slow, plain-Python replay of recorded captures (the test oracle).

:func:`verify_reference` replays one capture set with nothing but :mod:`json`,
:class:`decimal.Decimal` level keys and :class:`sortedcontainers.SortedDict` books,
and returns the same report shape the compiled ``verify`` command produces. It is
deliberately independent of the compiled parsers in ``ext/``: it exists to check them.

Replay order
------------
Every file is read with :func:`orchestrator.capture.read_capture` and the files are
merged by receive time (:func:`heapq.merge`, stable: on equal ``recv_ns`` the file
listed first wins, and within a file the file order is kept). This covers both the
cryptofeed pairs (``*.http.*`` REST snapshots interleaved with ``*.ws.*`` frames at
their receive time) and the hftbacktest day pairs (``_20240808`` then
``_20240809``, whose receive times do not overlap, so merging is concatenation).
A single file, e.g. a ``slipstream-raw`` copy made by :mod:`tests.support.corrupt`,
is replayed exactly in file order.

Rules (see ``../shared/specs/EXCHANGES.md`` §1.5, §2.4, §3.4-3.5)
-------------------------------------------------------------------
Binance books (channel ``depth``; one book per venue, market and symbol):

* spot: drop ``u <= L`` (``L`` = snapshot ``lastUpdateId``), the first applied diff must
  satisfy ``U <= L+1 <= u``, then every diff must have ``U == prev_u + 1``;
* futures (market ``usdm``/``coinm``, or any diff carrying ``pu``): drop ``u < L``, the
  first applied diff must satisfy ``U <= L <= u``, then every diff must have
  ``pu == prev_u``;
* diffs received before the first snapshot, or while the book is out of sync, are
  buffered and replayed against the next snapshot; a diff that does not bridge or
  does not continue the sequence is a ``sequence_gaps`` count and puts the book out
  of sync until the next snapshot (that snapshot counts as a ``resyncs``). The
  continuity test is strict: a **duplicated or stale diff** after sync (``u <=
  prev_u``) fails it and is counted as a gap, like a missing one;
* quantity ``0`` deletes a level (deleting an absent level is fine);
* a ``bookTicker`` is compared (best bid and ask, price and quantity as
  :class:`~decimal.Decimal`) with the book as it stands right after the applied diff
  whose ``u`` equals the ticker's ``u``: at once if that diff is the last one applied
  (book in sync), else the ticker is held and compared when that diff is applied.
  Holding is required: the ticker stream is real-time and usually arrives *before*
  the 100 ms diff batch ending at its ``u`` (comparing only on arrival finds 0 of
  CHECKS.txt's 1,056 spot ETHUSDT comparisons and 126 of the 629 USD-M ones).
  Tickers whose ``u`` ends no applied diff are not compared.

A REST snapshot names its symbol in the URL (``symbol=``) or in a ``symbol`` field;
hftbacktest snapshots name none, and are given to the one depth symbol seen in the
same file (held back until that file's first depth diff if none was seen yet).

OKX books (``books``, ``books5``, ``bbo-tbt``, ``books50-l2-tbt``, ``books-l2-tbt``;
one book per channel and ``instId``): ``snapshot`` (or any message of a
snapshot-only channel, which has no ``action``) resets the book; ``update`` applies
levels (size ``0`` deletes). The legacy checksum (top 25 bids and asks interleaved,
exact strings, signed CRC-32) is compared whenever the message carries a non-zero
``checksum``; ``0`` or absent counts as ``not_sent``. After a mismatch the replay goes
on applying (a changed size is usually caught by several later checksums too). When
``seqId``/``prevSeqId`` are present an update needs ``prevSeqId == last seqId``, else it
is a gap and the book is out of sync until the next snapshot; ``seqId < prevSeqId``
with a matching ``prevSeqId`` is a sequence reset (``seq_resets``), and an empty
update with ``seqId == prevSeqId`` is a heartbeat (applied as a no-op). Updates before
the instrument's first snapshot are not applied and make the instrument not ``ok``.

Trades: Binance ``trade`` ids ``t`` and ``aggTrade`` ids ``a``, OKX ``trades`` (and
``trades-all``) ``tradeId`` per ``instId``. Each id must be the previous id plus one
(OKX: the first id of the message's aggregation, ``tradeId - count + 1``, must be the
previous ``tradeId`` plus one). An id not above the previous one is ``id_backwards``;
any other jump is ``id_gaps``. OKX trade ids are per instrument; the fixtures hold only
consecutive ids, so any jump is reported.

Market names: Binance instruments take the capture's market (``spot``, ``usdm``,
``coinm``). OKX captures do not say, so OKX instruments take it from ``instId``:
``BTC-USDT`` ``spot``, ``*-SWAP`` ``swap``, ``BTC-USD-220527`` ``futures``, longer ids
``option``.
"""

from __future__ import annotations

import heapq
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sortedcontainers import SortedDict

from orchestrator.capture import CaptureFrame, detect_format, read_capture

__all__ = [
    "OKX_BOOK_CHANNELS",
    "OKX_SNAPSHOT_ONLY_CHANNELS",
    "BinanceBook",
    "BookStats",
    "OkxBook",
    "TradeStats",
    "okx_checksum",
    "okx_checksum_string",
    "okx_market",
    "read_frames",
    "signed_crc32",
    "verify_frames",
    "verify_reference",
]

#: OKX order-book channels the verifier rebuilds.
OKX_BOOK_CHANNELS = frozenset({"books", "books5", "bbo-tbt", "books50-l2-tbt", "books-l2-tbt"})
#: OKX book channels whose every message is a full snapshot (no ``action`` field).
OKX_SNAPSHOT_ONLY_CHANNELS = frozenset({"books5", "bbo-tbt"})
#: OKX trade channels whose ``tradeId`` continuity is checked.
OKX_TRADE_CHANNELS = frozenset({"trades", "trades-all"})
#: Levels per side in the legacy OKX checksum.
OKX_CHECKSUM_DEPTH = 25

_ZERO = Decimal(0)
#: Held bookTickers per Binance book above which stale ones are pruned.
_MAX_HELD_TICKERS = 10_000


# ----------------------------------------------------------------------------- helpers


def signed_crc32(text: str) -> int:
    """CRC-32 (zlib polynomial) of ``text``'s ASCII bytes as a signed 32-bit integer."""
    crc = zlib.crc32(text.encode("ascii"))
    return crc - (1 << 32) if crc >= (1 << 31) else crc


def okx_checksum_string(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> str:
    """Build OKX's legacy checksum string from best-first ``(price, size)`` strings.

    Parameters
    ----------
    bids, asks
        Levels best first, as the exact strings received; only the first 25 of
        each side are used, and a side that runs out is skipped.

    Returns
    -------
    str
        ``"bidPx:bidSz:askPx:askSz:..."``.
    """
    parts: list[str] = []
    for i in range(OKX_CHECKSUM_DEPTH):
        if i < len(bids):
            parts.extend(bids[i])
        if i < len(asks):
            parts.extend(asks[i])
    return ":".join(parts)


def okx_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """Signed CRC-32 of :func:`okx_checksum_string` (OKX's legacy book checksum)."""
    return signed_crc32(okx_checksum_string(bids, asks))


def okx_market(inst_id: str) -> str:
    """Market of an OKX instrument id: ``spot``, ``swap``, ``futures`` or ``option``."""
    parts = inst_id.split("-")
    if len(parts) == 2:
        return "spot"
    if parts[-1] == "SWAP":
        return "swap"
    if len(parts) == 3:
        return "futures"
    return "option"


def read_frames(paths: Iterable[Path | str]) -> Iterator[tuple[int, CaptureFrame]]:
    """Yield ``(file_index, frame)`` for every frame of ``paths`` in replay order.

    Files are merged by ``recv_ns`` (stable: ties keep the order of ``paths``, and
    each file keeps its own order), see the module docstring.
    """

    def tagged(index: int, path: Path | str) -> Iterator[tuple[int, CaptureFrame]]:
        with read_capture(path) as reader:
            for frame in reader:
                yield index, frame

    streams = [tagged(i, p) for i, p in enumerate(paths)]
    if len(streams) == 1:
        yield from streams[0]
        return
    yield from heapq.merge(*streams, key=lambda item: item[1].recv_ns)


# ------------------------------------------------------------------------------ reports


@dataclass
class BookStats:
    """Counters of one book instrument (the ``instruments`` entries of the report)."""

    venue: str
    market: str
    symbol: str
    channel: str
    messages: int = 0
    snapshots: int = 0
    updates_applied: int = 0
    updates_dropped: int = 0
    sequence_gaps: int = 0
    seq_resets: int = 0
    resyncs: int = 0
    crossed_books: int = 0
    ck_verified: int = 0
    ck_mismatched: int = 0
    ck_not_sent: int = 0
    bt_compared: int = 0
    bt_matched: int = 0
    bt_mismatched: int = 0
    #: Updates that met a book that had never had a snapshot (OKX; not reported).
    unsynced_updates: int = 0

    def ok(self) -> bool:
        """Whether nothing wrong was seen on this instrument."""
        return (
            self.sequence_gaps == 0
            and self.ck_mismatched == 0
            and self.crossed_books == 0
            and self.bt_mismatched == 0
            and self.unsynced_updates == 0
            and not (self.snapshots == 0 and self.messages > 0)
        )

    def as_dict(self) -> dict[str, Any]:
        """The report entry (key names fixed: the compiled verifier emits the same)."""
        return {
            "venue": self.venue,
            "market": self.market,
            "symbol": self.symbol,
            "channel": self.channel,
            "messages": self.messages,
            "snapshots": self.snapshots,
            "updates_applied": self.updates_applied,
            "updates_dropped": self.updates_dropped,
            "sequence_gaps": self.sequence_gaps,
            "seq_resets": self.seq_resets,
            "resyncs": self.resyncs,
            "crossed_books": self.crossed_books,
            "checksums": {
                "verified": self.ck_verified,
                "mismatched": self.ck_mismatched,
                "not_sent": self.ck_not_sent,
            },
            "book_ticker": {
                "compared": self.bt_compared,
                "matched": self.bt_matched,
                "mismatched": self.bt_mismatched,
            },
            "ok": self.ok(),
        }


@dataclass
class TradeStats:
    """Trade-id continuity of one trade stream (the ``trades`` entries of the report)."""

    venue: str
    market: str
    symbol: str
    channel: str
    count: int = 0
    id_gaps: int = 0
    id_backwards: int = 0
    last_id: int | None = None

    def add(self, first_id: int, last_id: int) -> None:
        """Record one trade message covering ids ``first_id..last_id``."""
        self.count += 1
        if self.last_id is not None:
            if last_id <= self.last_id:
                self.id_backwards += 1
                return
            if first_id != self.last_id + 1:
                self.id_gaps += 1
        self.last_id = last_id

    def as_dict(self) -> dict[str, Any]:
        """The report entry."""
        return {
            "venue": self.venue,
            "market": self.market,
            "symbol": self.symbol,
            "channel": self.channel,
            "count": self.count,
            "id_gaps": self.id_gaps,
            "id_backwards": self.id_backwards,
            "ok": self.id_gaps == 0 and self.id_backwards == 0,
        }


# ------------------------------------------------------------------------------- books


def _apply_levels(side: SortedDict, levels: Iterable[Sequence[str]], keep_px: bool) -> None:
    """Set each ``[price, size, ...]`` level on ``side``; size 0 deletes.

    Values are the size string, or ``(price, size)`` strings when ``keep_px``.
    """
    for level in levels:
        px, sz = level[0], level[1]
        key = Decimal(px)
        if Decimal(sz) == _ZERO:
            side.pop(key, None)
        else:
            side[key] = (px, sz) if keep_px else sz


def _crossed(bids: SortedDict, asks: SortedDict) -> bool:
    return bool(bids) and bool(asks) and bids.peekitem(-1)[0] >= asks.peekitem(0)[0]


#: Binance book states.
_NO_SNAPSHOT, _WAITING, _SYNCED, _OUT_OF_SYNC = "no-snapshot", "waiting", "synced", "out-of-sync"


@dataclass
class BinanceBook:
    """A Binance local order book following the documented snapshot + diff procedure.

    ``state`` is ``"no-snapshot"`` (diffs are buffered), ``"waiting"`` (snapshot
    installed, the next diff must bridge it), ``"synced"`` or ``"out-of-sync"``
    (after a gap; diffs are buffered for the next snapshot).
    """

    stats: BookStats
    futures: bool
    state: str = _NO_SNAPSHOT
    last_update_id: int = 0
    prev_u: int | None = None
    bids: SortedDict = field(default_factory=SortedDict)
    asks: SortedDict = field(default_factory=SortedDict)
    buffer: list[dict[str, Any]] = field(default_factory=list)
    #: bookTickers waiting for the diff that ends at their ``u``, keyed by ``u``.
    tickers: dict[int, dict[str, Any]] = field(default_factory=dict)

    def on_snapshot(self, snap: dict[str, Any]) -> None:
        """Install a REST snapshot and replay the diffs buffered before it."""
        st = self.stats
        st.messages += 1
        st.snapshots += 1
        if self.state == _OUT_OF_SYNC:
            st.resyncs += 1
        self.bids = SortedDict()
        self.asks = SortedDict()
        _apply_levels(self.bids, snap["bids"], keep_px=False)
        _apply_levels(self.asks, snap["asks"], keep_px=False)
        self.last_update_id = int(snap["lastUpdateId"])
        self.prev_u = None
        self.state = _WAITING
        buffered, self.buffer = self.buffer, []
        for diff in buffered:
            self._process(diff)

    def on_diff(self, diff: dict[str, Any]) -> None:
        """Handle one ``depthUpdate`` event."""
        self.stats.messages += 1
        if "pu" in diff:
            self.futures = True
        self._process(diff)

    def _process(self, diff: dict[str, Any]) -> None:
        st = self.stats
        if self.state in (_NO_SNAPSHOT, _OUT_OF_SYNC):
            self.buffer.append(diff)
            return
        first, last = int(diff["U"]), int(diff["u"])
        if self.state == _WAITING:
            snap = self.last_update_id
            if self.futures:
                covered, bridges = last < snap, first <= snap <= last
            else:
                covered, bridges = last <= snap, first <= snap + 1 <= last
            if covered:
                st.updates_dropped += 1
                return
            ok = bridges
        else:
            assert self.prev_u is not None
            ok = int(diff["pu"]) == self.prev_u if self.futures else first == self.prev_u + 1
        if not ok:
            st.sequence_gaps += 1
            self.state = _OUT_OF_SYNC
            self.buffer = [diff]
            return
        _apply_levels(self.bids, diff["b"], keep_px=False)
        _apply_levels(self.asks, diff["a"], keep_px=False)
        self.prev_u = last
        self.state = _SYNCED
        st.updates_applied += 1
        if _crossed(self.bids, self.asks):
            st.crossed_books += 1
        if self.tickers:
            ticker = self.tickers.pop(last, None)
            if ticker is not None:
                self._compare(ticker)
            for u in [u for u in self.tickers if u <= last]:
                del self.tickers[u]

    def on_book_ticker(self, ticker: dict[str, Any]) -> None:
        """Compare a ``bookTicker`` with the book as it stood after update id ``u``.

        A ticker whose ``u`` is the last applied diff's ``u`` is compared at once; one
        ahead of the book (it usually arrives before the 100 ms diff batch that ends
        at its ``u``) is held and compared right after that diff is applied. Tickers
        whose ``u`` ends no applied diff are never compared.
        """
        u = int(ticker["u"])
        if self.state == _SYNCED:
            assert self.prev_u is not None
            if u == self.prev_u:
                self._compare(ticker)
                return
            if u < self.prev_u:
                return
        self.tickers[u] = ticker
        if len(self.tickers) > _MAX_HELD_TICKERS:
            # Long out of sync: keep the newest half (amortised; old ones could only
            # match buffered diffs that a later snapshot would most likely cover).
            newest = list(self.tickers.items())[_MAX_HELD_TICKERS // 2 :]
            self.tickers = dict(newest)

    def _compare(self, ticker: dict[str, Any]) -> None:
        st = self.stats
        st.bt_compared += 1
        if self.bids and self.asks:
            bid_px, bid_sz = self.bids.peekitem(-1)
            ask_px, ask_sz = self.asks.peekitem(0)
            same = (
                bid_px == Decimal(ticker["b"])
                and Decimal(bid_sz) == Decimal(ticker["B"])
                and ask_px == Decimal(ticker["a"])
                and Decimal(ask_sz) == Decimal(ticker["A"])
            )
        else:
            same = False
        if same:
            st.bt_matched += 1
        else:
            st.bt_mismatched += 1


@dataclass
class OkxBook:
    """An OKX local order book with legacy checksum and ``seqId`` checks."""

    stats: BookStats
    has_snapshot: bool = False
    in_sync: bool = False
    last_seq: int | None = None
    bids: SortedDict = field(default_factory=SortedDict)
    asks: SortedDict = field(default_factory=SortedDict)

    def top(
        self, depth: int = OKX_CHECKSUM_DEPTH
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Best-first ``(price, size)`` strings of both sides, ``depth`` levels each."""
        nb, na = min(depth, len(self.bids)), min(depth, len(self.asks))
        bids = [self.bids.peekitem(-1 - i)[1] for i in range(nb)]
        asks = [self.asks.peekitem(i)[1] for i in range(na)]
        return bids, asks

    def checksum(self) -> int:
        """The legacy OKX checksum of the current book."""
        bids, asks = self.top()
        return okx_checksum(bids, asks)

    def apply(self, data: dict[str, Any], snapshot: bool) -> None:
        """Apply one ``data`` item without any checks (used by the corruption helpers)."""
        if snapshot:
            self.bids = SortedDict()
            self.asks = SortedDict()
        _apply_levels(self.bids, data.get("bids", ()), keep_px=True)
        _apply_levels(self.asks, data.get("asks", ()), keep_px=True)

    def on_message(self, data: dict[str, Any], snapshot: bool) -> None:
        """Handle one ``data`` item of a book push (``snapshot`` or ``update``)."""
        st = self.stats
        st.messages += 1
        seq = data.get("seqId")
        prev = data.get("prevSeqId")
        if snapshot:
            st.snapshots += 1
            if self.has_snapshot and not self.in_sync:
                st.resyncs += 1
            self.apply(data, snapshot=True)
            self.has_snapshot = self.in_sync = True
            self.last_seq = None if seq is None else int(seq)
        else:
            if not self.has_snapshot:
                st.unsynced_updates += 1
                return
            if not self.in_sync:
                return
            if seq is not None and prev is not None and self.last_seq is not None:
                seq, prev = int(seq), int(prev)
                if prev != self.last_seq:
                    st.sequence_gaps += 1
                    self.in_sync = False
                    return
                if seq < prev:
                    st.seq_resets += 1
            self.apply(data, snapshot=False)
            if seq is not None:
                self.last_seq = int(seq)
            st.updates_applied += 1
        sent = data.get("checksum")
        if not sent:
            st.ck_not_sent += 1
        elif int(sent) == self.checksum():
            st.ck_verified += 1
        else:
            st.ck_mismatched += 1
        if _crossed(self.bids, self.asks):
            st.crossed_books += 1


# ----------------------------------------------------------------------------- verifier


class _Replay:
    """Replay state for one capture set."""

    def __init__(self) -> None:
        self.binance: dict[tuple[str, str, str], BinanceBook] = {}
        self.okx: dict[tuple[str, str], OkxBook] = {}
        self.trades: dict[tuple[str, str, str, str], TradeStats] = {}
        #: Depth symbols seen per file (to attribute hftbacktest snapshots).
        self.file_symbols: dict[int, set[str]] = {}
        #: Snapshots without a symbol waiting for their file's first depth diff.
        self.pending: dict[int, list[tuple[str, str, dict[str, Any]]]] = {}

    # -------------------------------------------------------------------- dispatch

    def frame(self, file_index: int, frame: CaptureFrame) -> None:
        if frame.kind not in ("ws", "rest"):
            return
        try:
            message = json.loads(frame.payload)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if frame.venue == "okx":
            if frame.kind == "ws":
                self.okx_message(message)
            return
        if frame.venue != "binance":
            return
        if frame.kind == "rest":
            self.binance_snapshot(file_index, frame, message)
        else:
            data = message.get("data") if "stream" in message else message
            if isinstance(data, dict):
                self.binance_event(file_index, frame.venue, frame.market, data)

    # --------------------------------------------------------------------- Binance

    def binance_book(self, venue: str, market: str, symbol: str) -> BinanceBook:
        key = (venue, market, symbol)
        book = self.binance.get(key)
        if book is None:
            stats = BookStats(venue, market, symbol, "depth")
            book = BinanceBook(stats, futures=market in ("usdm", "coinm"))
            self.binance[key] = book
        return book

    def binance_snapshot(self, file_index: int, frame: CaptureFrame, snap: dict[str, Any]) -> None:
        if "lastUpdateId" not in snap or "bids" not in snap:
            return
        symbol = snap.get("symbol")
        if symbol is None and frame.source:
            symbol = parse_qs(urlsplit(frame.source).query).get("symbol", [None])[0]
        if symbol is None:
            seen = self.file_symbols.get(file_index, set())
            if len(seen) > 1:
                raise ValueError(
                    f"snapshot without a symbol in a file with depth for {sorted(seen)}"
                )
            if not seen:
                self.pending.setdefault(file_index, []).append((frame.venue, frame.market, snap))
                return
            symbol = next(iter(seen))
        self.binance_book(frame.venue, frame.market, str(symbol).upper()).on_snapshot(snap)

    def binance_event(self, file_index: int, venue: str, market: str, data: dict[str, Any]) -> None:
        event = data.get("e")
        if event == "depthUpdate":
            symbol = data["s"]
            self.file_symbols.setdefault(file_index, set()).add(symbol)
            for p_venue, p_market, snap in self.pending.pop(file_index, []):
                self.binance_book(p_venue, p_market, symbol).on_snapshot(snap)
            self.binance_book(venue, market, symbol).on_diff(data)
        elif event == "bookTicker" or (event is None and "u" in data and "B" in data):
            book = self.binance.get((venue, market, data["s"]))
            if book is not None:
                book.on_book_ticker(data)
        elif event in ("trade", "aggTrade"):
            trade_id = int(data["t"] if event == "trade" else data["a"])
            self.trade_stats(venue, market, data["s"], event).add(trade_id, trade_id)

    # ------------------------------------------------------------------------- OKX

    def okx_message(self, message: dict[str, Any]) -> None:
        arg = message.get("arg")
        items = message.get("data")
        if "event" in message or not isinstance(arg, dict) or not isinstance(items, list):
            return
        channel = arg.get("channel")
        if channel in OKX_BOOK_CHANNELS:
            inst = arg["instId"]
            action = message.get("action")
            snapshot = channel in OKX_SNAPSHOT_ONLY_CHANNELS or action == "snapshot"
            book = self.okx.get((channel, inst))
            if book is None:
                book = OkxBook(BookStats("okx", okx_market(inst), inst, channel))
                self.okx[(channel, inst)] = book
            for data in items:
                book.on_message(data, snapshot)
        elif channel in OKX_TRADE_CHANNELS:
            for trade in items:
                inst = trade.get("instId", arg.get("instId"))
                last = int(trade["tradeId"])
                count = int(trade.get("count") or 1)
                stats = self.trade_stats("okx", okx_market(inst), inst, channel)
                stats.add(last - count + 1, last)

    def trade_stats(self, venue: str, market: str, symbol: str, channel: str) -> TradeStats:
        key = (venue, market, symbol, channel)
        stats = self.trades.get(key)
        if stats is None:
            stats = self.trades[key] = TradeStats(venue, market, symbol, channel)
        return stats

    # ---------------------------------------------------------------------- report

    def report(self, files: list[str], fmt: str) -> dict[str, Any]:
        books = [b.stats for b in self.binance.values()] + [b.stats for b in self.okx.values()]
        instruments = [
            s.as_dict()
            for s in sorted(books, key=lambda s: (s.venue, s.market, s.symbol, s.channel))
        ]
        trades = [self.trades[k].as_dict() for k in sorted(self.trades)]
        ok = all(i["ok"] for i in instruments) and all(t["ok"] for t in trades)
        return {
            "files": files,
            "format": fmt,
            "ok": ok,
            "instruments": instruments,
            "trades": trades,
        }


def verify_frames(
    frames: Iterable[CaptureFrame | tuple[int, CaptureFrame]],
    *,
    files: Sequence[str] = (),
    fmt: str = "frames",
) -> dict[str, Any]:
    """Replay already-read frames (in the given order) and return the report.

    Parameters
    ----------
    frames
        Frames, or ``(file_index, frame)`` pairs as :func:`read_frames` yields
        (the index only matters for attributing hftbacktest snapshots).
    files, fmt
        Copied into the report's ``files`` and ``format``.
    """
    replay = _Replay()
    for item in frames:
        if isinstance(item, CaptureFrame):
            replay.frame(0, item)
        else:
            replay.frame(item[0], item[1])
    return replay.report(list(files), fmt)


def verify_reference(paths: Sequence[Path | str]) -> dict[str, Any]:
    """Replay one capture set with plain Python and report its consistency.

    Parameters
    ----------
    paths
        The files of one capture set, in order (e.g. a cryptofeed ``*.http.*`` and
        ``*.ws.*`` pair, or hftbacktest ``_20240808.gz`` then ``_20240809.gz``).
        Any format :func:`orchestrator.capture.read_capture` reads.

    Returns
    -------
    dict
        ``{"files", "format", "ok", "instruments", "trades"}``, JSON-serialisable,
        with ``instruments`` and ``trades`` sorted by (venue, market, symbol,
        channel); see the module docstring for the rules behind each counter.
    """
    if not paths:
        raise ValueError("no capture files given")
    formats = sorted({detect_format(p) for p in paths})
    return verify_frames(read_frames(paths), files=[str(p) for p in paths], fmt="+".join(formats))
