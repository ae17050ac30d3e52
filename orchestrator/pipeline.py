"""The main job: live books from the venues (or the built-in simulator), captured and shown.

``python -m orchestrator`` with no exchange selected is the embedded default: it starts the
exchange simulator in-process, connects the real adapters to it over loopback, keeps exact
books, records a raw capture, exposes Prometheus metrics and shows a live terminal view
until Ctrl-C or ``duration=``. ``+exchange=okx`` (and ``binance``, ``binance_usdm``,
``okx_swap``, several at once) targets the real venues; ``exchanges.<name>.use_simulator=true``
points that exchange at the simulator instead, so the same command runs without internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ext.feed import Feed
from orchestrator.capture.raw import RawCaptureWriter
from orchestrator.capture.records import CaptureFrame
from orchestrator.collector import LedgerEvent, LedgerKind, VenueCollector
from orchestrator.config import AppConfig
from orchestrator.config.schema import ArchiveKind, BusKind
from orchestrator.data import records as rec
from orchestrator.data.bus import Bus, Entry, InProcessBus, RedisStreamsBus
from orchestrator.data.local import LocalArchive
from orchestrator.publish import Publisher
from orchestrator.signals.live import BookSignals
from orchestrator.venues import get_venue
from orchestrator.view import MetricsServer, Snapshot, render_lines, render_metrics

__all__ = ["DEFAULT_CHANNELS", "Pipeline", "Target"]

log = logging.getLogger(__name__)

#: Channels collected when the embedded default runs every venue on the simulator.
DEFAULT_CHANNELS: dict[str, tuple[str, ...]] = {
    "binance": ("depth@100ms", "trade", "bookTicker"),
    "binance_usdm": ("depth@100ms", "aggTrade", "bookTicker"),
    "okx": ("books", "trades"),
    "okx_swap": ("books", "trades"),
}


@dataclass(frozen=True, slots=True)
class Target:
    """One exchange to collect: where, what, and whether it is the simulator."""

    name: str
    symbols: tuple[str, ...]
    channels: tuple[str, ...]
    ws_url: str = ""
    rest_url: str = ""
    simulated: bool = False


@dataclass(slots=True)
class _Trades:
    count: int = 0
    e2r_ns: list[int] = field(default_factory=list)


class Pipeline:
    """Collectors, simulator, capture, metrics and view of one run.

    Parameters
    ----------
    cfg
        The validated configuration.
    """

    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self.targets = self._targets()
        self.collectors: list[VenueCollector] = []
        self.ledger: list[LedgerEvent] = []
        self.sim: Any = None
        self.writer: RawCaptureWriter | None = None
        self.capture_path: Path | None = None
        self.trades: dict[str, _Trades] = {}
        self.signals: dict[tuple[str, str], BookSignals] = {}
        self.signal_interval = 0.1
        self.metrics_server: MetricsServer | None = None
        self.bus: Bus = (
            RedisStreamsBus(cfg.services.redis_url)
            if cfg.profile.bus is BusKind.redis
            else InProcessBus(maxlen=10_000)
        )
        self.publisher = Publisher(self.bus, snapshot_interval=cfg.publish.snapshot_interval)
        self.local_archive: LocalArchive | None = None
        self._persist_streams: set[str] = set()
        self.persisted = 0
        self.persist_lag_ms = 0.0
        self._stop = asyncio.Event()
        self._started = 0.0
        self._last_frames: dict[str, int] = {}
        self._last_tick = 0.0

    def _targets(self) -> list[Target]:
        cfg = self.cfg
        if not cfg.exchanges:
            return [
                Target(name, (), DEFAULT_CHANNELS[name], simulated=True)
                for name in DEFAULT_CHANNELS
            ]
        return [
            Target(
                name,
                tuple(ex.symbols),
                tuple(ex.channels) or DEFAULT_CHANNELS[name],
                ex.ws_url,
                ex.rest_url,
                ex.use_simulator,
            )
            for name, ex in cfg.exchanges.items()
        ]

    def stop(self) -> None:
        """Ask the run to end (signal handlers, tests)."""
        self._stop.set()

    # -- run --------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until :meth:`stop`, a signal or ``duration``; returns the exit status."""
        loop = asyncio.get_running_loop()
        logging.getLogger("picows").setLevel(logging.WARNING)  # one INFO line per close
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        try:
            await self._start_simulator()
            self._open_capture()
            if (
                self.cfg.profile.archive is ArchiveKind.local
                and self.cfg.profile.bus is BusKind.inproc
            ):
                path = Path(self.cfg.profile.local_archive_dir) / "archive.sqlite"
                self.local_archive = LocalArchive(path)
                log.info("embedded archive %s", path)
            for target in self.targets:
                col = self._collector(target)
                self.collectors.append(col)
                self.publisher.mark([col], rec.LedgerKind.START)
                await col.start()
            self.bus.start()
            port = self.cfg.metrics.port
            if port is not None:
                self.metrics_server = MetricsServer(self.cfg.metrics.host, port, self._metrics_text)
                await self.metrics_server.start()
            self._started = self._last_tick = time.monotonic()
            sampler = asyncio.create_task(self._sample_signals(), name="signals")
            try:
                await self._loop()
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            # STOP first: the disconnects of the shutdown are not gaps of the recording
            self.publisher.mark(self.collectors, rec.LedgerKind.STOP)
            await asyncio.gather(*(c.stop() for c in self.collectors), return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.publisher.publish(
                    self.collectors, self._drain_trades(), self._drain_deltas()
                )
                await self._persist_local()
            await self.bus.aclose()
            if self.local_archive is not None:
                self.local_archive.close()
            if self.metrics_server is not None:
                await self.metrics_server.stop()
            if self.sim is not None:
                await self.sim.stop()
            if self.writer is not None:
                self.writer.close()
        for line in self.summary():
            log.info("%s", line)
        return 0

    async def _start_simulator(self) -> None:
        simulated = [t for t in self.targets if t.simulated]
        if not simulated:
            return
        from orchestrator.sim import SimConfig, Simulator
        from orchestrator.sim.config import DEFAULT_INSTRUMENTS, generic_instrument

        known = {(i.exchange, i.symbol) for i in DEFAULT_INSTRUMENTS}
        extra = [
            generic_instrument(sym, t.name)
            for t in simulated
            for sym in t.symbols
            if (t.name, sym) not in known
        ]
        self.sim = Simulator(SimConfig(instruments=(*DEFAULT_INSTRUMENTS, *extra)))
        await self.sim.start()
        urls = self.sim.urls()
        self.targets = [
            t
            if not t.simulated
            else Target(
                t.name,
                t.symbols or tuple(self.sim.instruments(t.name)),
                t.channels,
                urls[t.name]["ws_url"],
                urls[t.name]["rest_url"],
                True,
            )
            for t in self.targets
        ]
        log.info(
            "exchange simulator on %s", ", ".join(f"{n}={u['ws_url']}" for n, u in urls.items())
        )

    def _open_capture(self) -> None:
        cap = self.cfg.capture
        if not cap.record:
            return
        folder = Path(cap.dir)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.capture_path = folder / f"{self.cfg.run_name}-{stamp}.raw.gz"
        self.writer = RawCaptureWriter(self.capture_path, mode="w", flush_every=cap.flush_every)
        log.info("recording raw frames to %s", self.capture_path)

    def _collector(self, target: Target) -> VenueCollector:
        spec = get_venue(target.name)
        writer = self.writer
        on_frame = on_rest = None
        if writer is not None:
            venue, market = spec.venue, spec.market

            def on_frame(conn: str, payload: memoryview, recv_ns: int) -> None:
                writer.write(CaptureFrame(recv_ns, venue, market, conn, "ws", "", bytes(payload)))

            def on_rest(url: str, payload: bytes, recv_ns: int) -> None:
                writer.write(CaptureFrame(recv_ns, venue, market, "", "rest", url, payload))

        self.trades[target.name] = _Trades()
        col = VenueCollector(
            spec,
            target.symbols,
            target.channels,
            target.ws_url,
            target.rest_url,
            on_frame=on_frame,
            on_rest=on_rest,
            delta_capacity=self.cfg.publish.delta_capacity if self.cfg.publish.deltas else 0,
        )
        col.on_event = lambda event: self._on_event(col, event)
        return col

    def _on_event(self, col: VenueCollector, event: LedgerEvent) -> None:
        self.ledger.append(event)
        self.publisher.on_ledger(col, event)
        if len(self.ledger) > 10_000:
            del self.ledger[:5_000]
        if event.kind in (LedgerKind.GAP, LedgerKind.DISCONNECTED, LedgerKind.RATE_LIMITED):
            if event.kind is LedgerKind.DISCONNECTED and event.detail.endswith(": stopped"):
                return
            log.info("%s %s %s %s", event.exchange, event.kind.value, event.symbol, event.detail)

    async def _loop(self) -> None:
        duration = self.cfg.duration
        interval = self.cfg.view.interval
        tty = sys.stdout.isatty()
        while not self._stop.is_set():
            timeout = interval
            if duration is not None:
                left = self._started + duration - time.monotonic()
                if left <= 0:
                    break
                timeout = min(timeout, left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout)
            await self.publisher.publish(
                self.collectors, self._drain_trades(), self._drain_deltas()
            )
            await self._persist_local()
            if self.cfg.view.enabled:
                lines = render_lines(self.snapshot())
                if tty:
                    sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
                    sys.stdout.flush()
                else:
                    for line in lines[1:]:
                        log.info("%s", line)

    async def _persist_local(self) -> None:
        """Embedded profile: move the bus's batches into the local archive (at least once).

        Acknowledged only after the archive committed them; the batch key (stream and
        entry id) makes a redelivery a no-op.
        """
        archive = self.local_archive
        if archive is None:
            return
        await self.bus.flush()
        for stream in self.publisher.streams - self._persist_streams:
            await self.bus.ensure_group(stream, "persist", "0")
            self._persist_streams.add(stream)
        if not self._persist_streams:
            return
        streams = sorted(self._persist_streams)
        lags = [await self.bus.lag(s, "persist") for s in streams]
        self.persist_lag_ms = max((lag.lag_ms for lag in lags), default=0.0)
        while True:
            entries: list[Entry] = await self.bus.read(
                "persist", "local", streams, count=500, block_ms=0
            )
            if not entries:
                return
            for e in entries:
                self.persisted += archive.insert_batch(
                    e.payload, batch_key=f"{e.stream}:{e.id}"
                ).inserted
            await self.bus.ack("persist", entries)

    async def _sample_signals(self) -> None:
        while True:
            await asyncio.sleep(self.signal_interval)
            now = time.time_ns()
            for col in self.collectors:
                for symbol in col.symbols:
                    book, live = col.book(symbol)
                    if book is None or not live or not book.bid_levels or not book.ask_levels:
                        continue
                    key = (col.spec.name, symbol)
                    sig = self.signals.get(key)
                    if sig is None:
                        sig = self.signals[key] = BookSignals()
                    sig.sample(book, now)

    def _drain_deltas(self) -> dict[str, Any]:
        """Book delta records of every collector's feed since the last publish."""
        return {col.spec.name: col.feed.drain_deltas() for col in self.collectors}

    def _drain_trades(self) -> dict[str, Any]:
        drained: dict[str, Any] = {}
        for col in self.collectors:
            feed: Feed = col.feed
            trades = feed.drain_trades()
            if not len(trades):
                continue
            drained[col.spec.name] = trades
            t = self.trades[col.spec.name]
            t.count += len(trades)
            e2r = trades["recv_ns"] - trades["exch_ns"]
            t.e2r_ns.extend(int(x) for x in e2r[-256:])
            del t.e2r_ns[:-2048]
        return drained

    # -- reporting --------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Collect what the view and the metrics show, now."""
        now = time.monotonic()
        dt = max(1e-9, now - self._last_tick)
        self._last_tick = now
        rows = []
        for col in self.collectors:
            status = col.status()
            name = col.spec.name
            frames = int(status["frames"])
            rate = (frames - self._last_frames.get(name, frames)) / dt
            self._last_frames[name] = frames
            lat = col.latency_ns()
            tr = self.trades.get(name, _Trades())
            e2r = np.asarray(tr.e2r_ns, dtype=np.int64)
            for symbol in col.symbols:
                book, live = col.book(symbol)
                b = status["books"].get(symbol, {})
                row: dict[str, Any] = {
                    "exchange": name,
                    "symbol": symbol,
                    "state": b.get("state", "-"),
                    "live": live,
                    "msg_rate": rate,
                    "gaps": b.get("gaps", 0),
                    "resyncs": b.get("resyncs", 0),
                    "stale_s": b.get("stale_seconds", 0.0),
                    "reconnects": status["reconnects"],
                    "apply_p50_us": float(np.percentile(lat, 50)) / 1e3 if len(lat) else None,
                    "apply_p99_us": float(np.percentile(lat, 99)) / 1e3 if len(lat) else None,
                    "e2r_p50_ms": float(np.percentile(e2r, 50)) / 1e6 if len(e2r) else None,
                    "trades": tr.count,
                }
                sig = self.signals.get((name, symbol))
                if sig is not None:
                    row.update(
                        imbalance=sig.imbalance,
                        momentum_bps=sig.momentum_bps,
                        rsi=sig.rsi.value,
                        ofi=sig.ofi.value,
                    )
                if book is not None and book.bid_levels and book.ask_levels:
                    ps = 10.0**-book.price_scale
                    row.update(
                        bid=book.best_bid_price * ps,
                        ask=book.best_ask_price * ps,
                        spread=book.spread() * ps,
                        mid=book.mid() * ps,
                        price_decimals=book.price_scale,
                    )
                rows.append(row)
        elapsed = now - self._started if self._started else 0.0
        return Snapshot(elapsed=elapsed, rows=rows, capture=str(self.capture_path or ""))

    def _metrics_text(self) -> str:
        stats = self.bus.stats
        bus = {
            "published_total": float(stats.published),
            "flushed_total": float(stats.flushed),
            "dropped_total": float(stats.dropped),
            "flush_failures_total": float(stats.flush_failures),
            "buffered": float(stats.buffered),
            "persist_lag_seconds": self.persist_lag_ms / 1e3,
        }
        return render_metrics(self.snapshot(), self.collectors, bus)

    def summary(self) -> list[str]:
        """Return closing lines: per exchange frames, gaps, resyncs, reconnects."""
        out = []
        for col in self.collectors:
            s = col.status()
            gaps = sum(b["gaps"] for b in s["books"].values())
            resyncs = sum(b["resyncs"] for b in s["books"].values())
            out.append(
                f"{col.spec.name}: {s['frames']} frames, {gaps} gaps, {resyncs} resyncs, "
                f"{s['reconnects']} reconnects, {s['frame_errors']} malformed"
            )
        if self.capture_path is not None and self.writer is not None:
            out.append(f"capture: {self.capture_path} ({self.writer.frames_written} frames)")
        return out
