"""Replay recorded Binance captures through the simulator's servers.

The capture files (hftbacktest or cryptofeed Binance, read with
:func:`orchestrator.capture.read_capture`) are merged by receive time and their frames
are re-sent byte for byte, at the recorded pace divided by ``speed``, to the clients
subscribed to each frame's stream (combined frames are unwrapped for raw ``/ws``
clients). The recorded REST depth snapshot is what ``/api/v3/depth`` (``/fapi/v1/depth``)
answers: the latest one already reached by the replay clock, else the first.

The true book of a replayed instrument is kept independently of the compiled parsers:
each depth diff is decoded with :mod:`json` and applied level by level to an
:class:`ext.book.OrderBook` following the venue rule (spot drops ``u <= L``, USD-M
``u < L``) from the recorded snapshot on. Instrument scales (and the tick and step sizes
``exchangeInfo`` reports) are the most decimals any recorded price or quantity needs.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ext.book import ASK, BID, OrderBook
from ext.scaled import decimals_needed, to_scaled
from orchestrator.capture import CaptureFormatError, CaptureFrame, read_capture
from orchestrator.sim.binance import BinanceHub, BinanceInstrument
from orchestrator.sim.config import InstrumentSpec, ReplayConfig

__all__ = ["BinanceReplay", "ReplayError"]

logger = logging.getLogger(__name__)

_MARKETS = {"spot": "binance", "usdm": "binance_usdm"}


class ReplayError(ValueError):
    """A capture cannot be replayed (unsupported venue or market, no depth data)."""


@dataclass(slots=True)
class _Frame:
    recv_ns: int
    stream: str
    payload: bytes
    symbol: str
    depth: tuple[int, int, list[list[str]], list[list[str]]] | None  # U, u, bids, asks


def _merged(paths: tuple[str, ...]) -> Iterator[CaptureFrame]:
    def tagged(i: int, p: str) -> Iterator[tuple[int, int, int, CaptureFrame]]:
        for j, f in enumerate(read_capture(p)):
            yield f.recv_ns, i, j, f

    for *_, frame in heapq.merge(*(tagged(i, p) for i, p in enumerate(paths))):
        yield frame


class _TrueBook:
    """The replayed instrument's book, maintained from the recorded frames in Python."""

    def __init__(self, usdm: bool) -> None:
        self.usdm = usdm
        self.book = OrderBook(0, 0)
        self.loaded = False
        self.pending: list[tuple[int, int, list[list[str]], list[list[str]]]] = []

    def load(self, snapshot: dict[str, Any], ps: int, ss: int) -> None:
        def arrays(levels: list[list[str]]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
            p = np.array([to_scaled(x[0], ps) for x in levels], dtype=np.int64)
            s = np.array([to_scaled(x[1], ss) for x in levels], dtype=np.int64)
            return p, s

        bp, bs = arrays(snapshot["bids"])
        ap, asz = arrays(snapshot["asks"])
        self.book.load_snapshot(bp, bs, ap, asz, int(snapshot["lastUpdateId"]))
        self.loaded = True
        pending, self.pending = self.pending, []
        for diff in pending:  # diffs received before the snapshot, as a client buffers them
            self.apply(*diff)

    def apply(self, first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> None:
        if not self.loaded:
            self.pending.append((first, last, bids, asks))
            return
        current = self.book.last_update_id
        if (last < current) if self.usdm else (last <= current):
            return
        ps, ss = self.book.price_scale, self.book.size_scale
        sides: list[int] = []
        prices: list[int] = []
        sizes: list[int] = []
        for side, levels in ((BID, bids), (ASK, asks)):
            for p, q in levels:
                sides.append(side)
                prices.append(to_scaled(p, ps))
                sizes.append(to_scaled(q, ss))
        self.book.apply_batch(
            np.array(sides, dtype=np.int8),
            np.array(prices, dtype=np.int64),
            np.array(sizes, dtype=np.int64),
            update_id=last,
        )


class BinanceReplay:
    """Load a Binance capture session and replay it into a :class:`BinanceHub`.

    Parameters
    ----------
    config
        Files, speed and start rule.

    Raises
    ------
    ReplayError
        The files are not Binance spot or USD-M, or hold no depth stream.
    CaptureFormatError
        A file is unreadable.
    """

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config
        self.frames: list[_Frame] = []
        self.snapshots: dict[str, list[tuple[int, bytes]]] = {}
        self.exchange = ""
        self.sent = 0
        self.done = asyncio.Event()
        self._books: dict[str, _TrueBook] = {}
        self._scales: dict[str, tuple[int, int, int, int]] = {}  # ps, ss, price dec, size dec
        self._load()

    def _load(self) -> None:
        last_symbol = ""
        markets: set[str] = set()
        decimals: dict[str, list[int]] = {}
        for f in _merged(self.config.paths):
            if f.venue != "binance" or f.market not in _MARKETS:
                raise ReplayError(
                    f"only Binance spot and USD-M captures can be replayed, "
                    f"got {f.venue} {f.market} ({f.conn_id or f.source})"
                )
            markets.add(f.market)
            if f.kind == "rest":
                msg = json.loads(f.payload)
                symbol = str(msg.get("symbol") or last_symbol)
                if not symbol:
                    # hftbacktest stores the snapshot without a symbol: use the file's depth symbol
                    symbol = self._first_depth_symbol()
                self.snapshots.setdefault(symbol, []).append((f.recv_ns, f.payload))
                self._scan(decimals.setdefault(symbol, [0, 0, 0, 0]), msg["bids"], msg["asks"])
                continue
            if f.kind != "ws":
                continue
            stream = f.conn_id
            if f.payload.startswith(b'{"stream":"'):
                end = f.payload.index(b'"', 11)
                stream = f.payload[11:end].decode()
            symbol = stream.split("@", 1)[0].upper()
            depth = None
            if "@depth" in stream:
                data = json.loads(f.payload)
                data = data.get("data", data)
                if data.get("e") == "depthUpdate":
                    depth = (int(data["U"]), int(data["u"]), data["b"], data["a"])
                    self._scan(decimals.setdefault(symbol, [0, 0, 0, 0]), data["b"], data["a"])
                    last_symbol = symbol
            self.frames.append(_Frame(f.recv_ns, stream, f.payload, symbol, depth))
        if len(markets) != 1:
            raise ReplayError(f"replay files must be of one market, were {sorted(markets)}")
        if not any(fr.depth for fr in self.frames):
            raise ReplayError("the capture holds no depthUpdate stream")
        self.exchange = _MARKETS[markets.pop()]
        for symbol, (ps, ss, pd, sd) in decimals.items():
            self._scales[symbol] = (ps, ss, pd, sd)
            tb = _TrueBook(self.exchange == "binance_usdm")
            tb.book = OrderBook(ps, ss)
            self._books[symbol] = tb

    def _first_depth_symbol(self) -> str:
        for fr in self.frames:
            if fr.depth is not None:
                return fr.symbol
        return ""

    @staticmethod
    def _scan(acc: list[int], bids: list[list[str]], asks: list[list[str]]) -> None:
        for p, q in (*bids, *asks):
            acc[0] = max(acc[0], decimals_needed(p))
            acc[1] = max(acc[1], decimals_needed(q))
            acc[2] = max(acc[2], len(p.partition(".")[2]))
            acc[3] = max(acc[3], len(q.partition(".")[2]))

    def instruments(self) -> list[BinanceInstrument]:
        """One instrument per recorded symbol with a depth stream (true book attached)."""
        out = []
        for symbol, (ps, ss, pd, sd) in self._scales.items():
            pd, sd = max(pd, ps), max(sd, ss)
            tick = "0." + "0" * (ps - 1) + "1" if ps else "1"
            lot = "0." + "0" * (ss - 1) + "1" if ss else "1"
            spec = InstrumentSpec(
                self.exchange,
                symbol,
                tick.ljust(pd + 2, "0") if ps else tick,
                lot.ljust(sd + 2, "0") if ss else lot,
                "1",
                "1",
                "",
                pd,
                sd,
            )
            inst = BinanceInstrument(spec, None, self._books[symbol].book)
            inst.recorded_snapshots = self.snapshots.get(symbol, [])
            out.append(inst)
        return out

    def streams(self) -> set[str]:
        """Names of every recorded stream."""
        return {f.stream for f in self.frames}

    async def run(self, hub: BinanceHub) -> None:
        """Replay every frame into ``hub`` (waits for a subscriber first if configured)."""
        streams = self.streams()
        if self.config.wait_for_subscriber:
            while not any(hub.subscribed(s) for s in streams):
                await asyncio.sleep(0.005)
        speed = self.config.speed
        t0_rec = self.frames[0].recv_ns if self.frames else 0
        t0 = time.monotonic()
        insts = {i.spec.symbol: i for i in hub.instruments.values()}
        snaps = {s: list(v) for s, v in self.snapshots.items()}
        for n, fr in enumerate(self.frames):
            if speed > 0:
                due = t0 + (fr.recv_ns - t0_rec) / 1e9 / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % 64 == 0:
                await asyncio.sleep(0)
            inst = insts.get(fr.symbol)
            if inst is not None:
                inst.replay_clock_ns = fr.recv_ns
                pending = snaps.get(fr.symbol)
                while pending and pending[0][0] <= fr.recv_ns:
                    _, payload = pending.pop(0)
                    self._load_truth(fr.symbol, payload)
            if fr.depth is not None:
                first, last, bids, asks = fr.depth
                tb = self._books.get(fr.symbol)
                if tb is not None:
                    tb.apply(first, last, bids, asks)
            if fr.payload.startswith(b'{"stream":'):
                hub.broadcast_combined(fr.stream, fr.payload)
            else:
                hub.broadcast(fr.stream, fr.payload)
            self.sent += 1
        for symbol, pending in snaps.items():
            for _, payload in pending:
                self._load_truth(symbol, payload)
        self.done.set()
        logger.info("replay finished: %d frames", self.sent)

    def _load_truth(self, symbol: str, payload: bytes) -> None:
        tb = self._books.get(symbol)
        if tb is None:
            return
        msg = json.loads(payload)
        if tb.loaded and int(msg["lastUpdateId"]) <= tb.book.last_update_id:
            return
        tb.load(msg, tb.book.price_scale, tb.book.size_scale)

    @staticmethod
    def files(paths: tuple[str, ...]) -> tuple[str, ...]:
        """Check the files exist (``CaptureFormatError`` naming the first missing one)."""
        for p in paths:
            if not Path(p).is_file():
                raise CaptureFormatError("no such capture file", p)
        return paths
