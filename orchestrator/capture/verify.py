"""Replay captures through the compiled parsers and books and report their integrity.

``python -m orchestrator.capture verify FILE...`` merges the given files by local receive
time (so a cryptofeed ``.http`` snapshot file and its ``.ws`` file, or an hftbacktest day
and the next, replay as one session), feeds every frame to :class:`ext.binance.BinanceFeed`
or :class:`ext.okx.OkxFeed`, and prints one JSON report with a record per book
(venue, market, symbol, channel) and per trade stream. It exits 1 when any record is not
``ok``: a sequence gap, a checksum mismatch, a crossed book, a bookTicker that disagrees
with the book at the same update id, a duplicated diff, updates without any snapshot, or
a trade id gap / step backwards.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ext.binance import BinanceFeed
from ext.feed import Feed
from ext.okx import OkxFeed
from orchestrator.capture.formats import detect_format, read_capture
from orchestrator.capture.records import CaptureFormatError, CaptureFrame
from orchestrator.instruments import InstrumentScales, apply_scales

__all__ = [
    "FeedType",
    "ReplaySession",
    "merged_frames",
    "okx_market",
    "replay_frames",
    "venue_label",
    "verify_files",
]

_SYMBOL = re.compile(rb'"s"\s*:\s*"([A-Za-z0-9_\-]+)"')
_DEPTH = re.compile(rb'"e"\s*:\s*"depthUpdate"')


def okx_market(inst_id: str) -> str:
    """Market of an OKX instrument id: ``spot``, ``swap``, ``futures`` or ``option``."""
    parts = inst_id.split("-")
    if len(parts) == 2:
        return "spot"
    if parts[-1] == "SWAP":
        return "swap"
    return "futures" if len(parts) == 3 else "option"


def merged_frames(paths: Sequence[Path]) -> Iterator[tuple[int, CaptureFrame]]:
    """``(file_index, frame)`` of all ``paths`` by receive time (ties keep file order)."""

    def tagged(i: int, p: Path) -> Iterator[tuple[int, int, int, CaptureFrame]]:
        for j, frame in enumerate(read_capture(p)):
            yield frame.recv_ns, i, j, frame

    for _, i, _, frame in heapq.merge(*(tagged(i, p) for i, p in enumerate(paths))):
        yield i, frame


FeedType = BinanceFeed | OkxFeed


class ReplaySession:
    """Feeds per venue/market for replaying captures, one frame at a time.

    Binance REST snapshots that name no symbol (hftbacktest files) are held until their
    file's first depth frame says which symbol it carries.

    Parameters
    ----------
    scales
        Instrument scales from venue metadata (inferred from the data when absent).
    delta_capacity
        Book delta records each feed holds (0: none; see ``Feed.drain_deltas``).
    """

    def __init__(self, scales: Sequence[InstrumentScales] = (), delta_capacity: int = 0) -> None:
        self.scales = list(scales)
        self.delta_capacity = delta_capacity
        self.feeds: dict[tuple[str, str], FeedType] = {}
        self.file_symbol: dict[int, str] = {}
        self.held: dict[int, list[CaptureFrame]] = {}

    def feed(self, frame: CaptureFrame) -> tuple[str, FeedType]:
        """Return the ``(venue label, feed)`` parsing ``frame`` (created on first use)."""
        label = venue_label(frame)
        market = frame.market if frame.venue == "binance" else "okx"
        feed = self.feeds.get((label, market))
        if feed is None:
            if frame.venue == "binance":
                if market not in ("spot", "usdm", "coinm"):
                    raise CaptureFormatError(
                        f"Binance capture of unknown market {frame.market!r}", frame.conn_id or "?"
                    )
                feed = BinanceFeed(market, delta_capacity=self.delta_capacity)
            elif frame.venue == "okx":
                feed = OkxFeed(delta_capacity=self.delta_capacity)
            else:
                raise CaptureFormatError(f"no parser for venue {frame.venue!r}", "?")
            apply_scales(feed, self.scales)
            self.feeds[(label, market)] = feed
        return label, feed

    def on_frame(self, file_index: int, frame: CaptureFrame) -> list[tuple[str, FeedType, int]]:
        """Apply one frame; returns ``(venue, feed, result code)`` of what was applied."""
        if frame.kind == "rest":
            return self._snapshot(file_index, frame)
        if frame.kind != "ws":
            return []
        label, feed = self.feed(frame)
        result = feed.on_frame(frame.payload, frame.recv_ns)
        applied = [(label, feed, result)]
        if frame.venue == "binance" and file_index not in self.file_symbol:
            m = _SYMBOL.search(frame.payload) if _DEPTH.search(frame.payload) else None
            if m is not None:
                self.file_symbol[file_index] = m.group(1).decode()
                for held in self.held.pop(file_index, []):
                    applied += self._snapshot(file_index, held)
        return applied

    def _snapshot(self, file_index: int, frame: CaptureFrame) -> list[tuple[str, FeedType, int]]:
        if frame.venue != "binance":
            return []  # OKX books come with their own snapshots on the socket
        query = parse_qs(urlsplit(frame.source).query) if frame.source else {}
        symbol = query.get("symbol", [None])[0] or self.file_symbol.get(file_index)
        if symbol is None:
            self.held.setdefault(file_index, []).append(frame)
            return []
        label, feed = self.feed(frame)
        assert isinstance(feed, BinanceFeed)
        result = feed.on_snapshot(symbol.upper(), frame.payload, frame.recv_ns)
        return [(label, feed, result)]


def venue_label(frame: CaptureFrame) -> str:
    """Venue name for reports: Binance.US (same protocol, separate books) is ``binance_us``."""
    if frame.venue == "binance" and ("binance.us" in frame.conn_id or "binance.us" in frame.source):
        return "binance_us"
    return frame.venue


def replay_frames(
    frames: Iterable[tuple[int, CaptureFrame]], scales: Sequence[InstrumentScales] = ()
) -> list[tuple[str, Feed]]:
    """Replay ``(file_index, frame)`` pairs through fresh feeds; returns ``(venue, feed)``.

    ``scales`` (from venue metadata) fix instruments' scales; without them they are inferred.
    """
    session = ReplaySession(scales)
    for file_index, frame in frames:
        session.on_frame(file_index, frame)
    if session.held:
        raise CaptureFormatError(
            "a depth snapshot names no symbol and its file has no depthUpdate to take it from",
            "?",
        )
    return [(label, feed) for (label, _), feed in session.feeds.items()]


def _book_record(s: dict[str, Any]) -> dict[str, Any]:
    failed = (
        s["sequence_gaps"]
        or s["crossed_books"]
        or s["duplicates"]
        or s["checksums"]["mismatched"]
        or s["book_ticker"]["mismatched"]
        or (s["messages"] > 0 and s["snapshots"] == 0)
    )
    keys = [
        "venue",
        "market",
        "symbol",
        "channel",
        "messages",
        "snapshots",
        "updates_applied",
        "updates_dropped",
        "updates_buffered",
        "duplicates",
        "stale_snapshots",
        "sequence_gaps",
        "seq_resets",
        "resyncs",
        "crossed_books",
        "heartbeats",
        "checksums",
        "book_ticker",
        "in_sync",
        "price_scale",
        "size_scale",
    ]
    record = {k: s[k] for k in keys}
    record["ok"] = not failed
    return record


def _trade_record(s: dict[str, Any]) -> dict[str, Any]:
    keys = [
        "venue",
        "market",
        "symbol",
        "channel",
        "count",
        "id_gaps",
        "id_backwards",
        "price_scale",
        "size_scale",
    ]
    record = {k: s[k] for k in keys}
    record["ok"] = s["id_gaps"] == 0 and s["id_backwards"] == 0
    return record


def verify_files(
    paths: Sequence[str | Path], fmt: str = "auto", scales: Sequence[InstrumentScales] = ()
) -> dict[str, Any]:
    """Replay one capture set and return its integrity report.

    Parameters
    ----------
    paths : sequence of path-like
        Files of one recording session (merged by receive time).
    fmt : str
        ``auto`` (detect per file) or one of ``orchestrator.capture.FORMATS`` for all.
    scales : sequence of InstrumentScales
        Scales from venue metadata (:func:`orchestrator.instruments.load_scales`); a value
        finer than its instrument's metadata is then a ``FrameError``.

    Returns
    -------
    dict
        ``{"files", "format", "ok", "instruments": [...], "trades": [...]}``; records are
        sorted by ``(venue, market, symbol, channel)``.

    Raises
    ------
    CaptureFormatError
        A file is unreadable or malformed.
    ext.feed.FrameError
        A frame cannot be parsed (names venue, channel and byte offset).
    """
    files = [Path(p) for p in paths]
    formats = [detect_format(p) if fmt == "auto" else fmt for p in files]
    if fmt != "auto":
        for p, f in zip(files, formats, strict=True):
            if detect_format(p) != f:
                raise CaptureFormatError(f"not a {f} capture", p)
    feeds = replay_frames(merged_frames(files), scales)
    books: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    for label, feed in feeds:
        for s in feed.stats():
            s["venue"] = label
            if feed.venue == "okx":
                s["market"] = okx_market(s["symbol"])
            (books if s["kind"] == "book" else trades).append(s)
    order = ("venue", "market", "symbol", "channel")
    instruments = sorted((_book_record(s) for s in books), key=lambda r: [r[k] for k in order])
    trade_records = sorted((_trade_record(s) for s in trades), key=lambda r: [r[k] for k in order])
    ok = all(r["ok"] for r in instruments) and all(r["ok"] for r in trade_records)
    return {
        "files": [str(p) for p in files],
        "format": "+".join(sorted(set(formats))),
        "ok": ok,
        "instruments": instruments,
        "trades": trade_records,
    }
