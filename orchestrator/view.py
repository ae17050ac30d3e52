"""The live terminal view and the Prometheus metrics of the main job.

:func:`render_lines` turns a :class:`Snapshot` into the table the terminal shows (one row
per exchange and symbol: state, best bid/ask, spread, message rate, receive -> applied and
exchange -> receive latency, gaps, resyncs, reconnects, stale time). :func:`render_metrics`
writes the same figures in the Prometheus text exposition format, served by
:class:`MetricsServer` at ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from orchestrator.collector import VenueCollector

__all__ = ["MetricsServer", "Snapshot", "render_lines", "render_metrics"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Figures of one instant of the run (rows: one dict per exchange and symbol)."""

    elapsed: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    capture: str = ""


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or value != value else format(value, fmt)


def _price(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    return f"{value:.{int(row.get('price_decimals', 2))}f}"


def render_lines(snap: Snapshot) -> list[str]:
    """Return the terminal table (first line is a title)."""
    head = (
        f"{'exchange':13} {'symbol':15} {'state':7} {'bid':>14} {'ask':>14} {'spread':>10} "
        f"{'msg/s':>8} {'apply p50/p99 us':>17} {'e2r ms':>8} {'gaps':>5} {'resync':>6} "
        f"{'reconn':>6} {'stale s':>8} {'imb10':>6} {'mom bps':>8} {'rsi':>5}"
    )
    lines = [f"slipstream - {snap.elapsed:7.1f} s - Ctrl-C to stop", head]
    for r in snap.rows:
        apply = f"{_num(r.get('apply_p50_us'), '.1f')}/{_num(r.get('apply_p99_us'), '.1f')}"
        lines.append(
            f"{r['exchange']:13} {r['symbol']:15} {r['state']:7} {_price(r, 'bid'):>14} "
            f"{_price(r, 'ask'):>14} {_price(r, 'spread'):>10} {r['msg_rate']:8.0f} "
            f"{apply:>17} {_num(r.get('e2r_p50_ms'), '.2f'):>8} {r['gaps']:5d} "
            f"{r['resyncs']:6d} {r['reconnects']:6d} {r['stale_s']:8.1f} "
            f"{_num(r.get('imbalance'), '+.2f'):>6} {_num(r.get('momentum_bps'), '+.2f'):>8} "
            f"{_num(r.get('rsi'), '.0f'):>5}"
        )
    if snap.capture:
        lines.append(f"capture: {snap.capture}")
    return lines


def _labels(**kw: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in kw.items())
    return "{" + inner + "}"


def render_metrics(
    snap: Snapshot, collectors: Sequence[VenueCollector], bus: dict[str, float] | None = None
) -> str:
    """Prometheus text exposition (version 0.0.4) of the run (``bus``: bus counters)."""
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP slipstream_{name} {help_text}")
        out.append(f"# TYPE slipstream_{name} {kind}")
        out.extend(f"slipstream_{name}{labels} {value:g}" for labels, value in samples)

    metric(
        "frames_total",
        "counter",
        "WebSocket frames received.",
        [(_labels(exchange=c.spec.name), float(c.feed.frames)) for c in collectors],
    )
    metric(
        "frame_errors_total",
        "counter",
        "Malformed frames.",
        [(_labels(exchange=c.spec.name), float(c.frame_errors)) for c in collectors],
    )
    books = list(snap.rows)
    metric(
        "book_live",
        "gauge",
        "1 when the book passed every check since its last snapshot.",
        [(_labels(exchange=r["exchange"], symbol=r["symbol"]), float(r["live"])) for r in books],
    )
    metric(
        "sequence_gaps_total",
        "counter",
        "Sequence gaps and failed checks.",
        [(_labels(exchange=r["exchange"], symbol=r["symbol"]), float(r["gaps"])) for r in books],
    )
    metric(
        "resyncs_total",
        "counter",
        "Book resyncs.",
        [(_labels(exchange=r["exchange"], symbol=r["symbol"]), float(r["resyncs"])) for r in books],
    )
    metric(
        "stale_seconds_total",
        "counter",
        "Seconds the book was not trustworthy.",
        [(_labels(exchange=r["exchange"], symbol=r["symbol"]), float(r["stale_s"])) for r in books],
    )
    metric(
        "reconnects_total",
        "counter",
        "WebSocket reconnects.",
        [(_labels(exchange=c.spec.name), float(c.status()["reconnects"])) for c in collectors],
    )
    quantiles = []
    for r in books:
        for q, key in (("0.5", "apply_p50_us"), ("0.99", "apply_p99_us")):
            if r.get(key) is not None:
                quantiles.append((_labels(exchange=r["exchange"], quantile=q), r[key] / 1e6))
    metric("apply_latency_seconds", "summary", "Receive to book-applied latency.", quantiles)
    for key, help_text in (
        ("imbalance", "Top-10 book imbalance (-1..1)."),
        ("momentum_bps", "Fast over slow EMA of the mid, bps."),
        ("rsi", "Wilder RSI of the sampled mid."),
        ("ofi", "Order-flow imbalance over 10 s, lots."),
    ):
        samples = [
            (_labels(exchange=r["exchange"], symbol=r["symbol"]), float(r[key]))
            for r in books
            if r.get(key) is not None and r[key] == r[key]
        ]
        metric(f"signal_{key}", "gauge", help_text, samples)
    for key, value in (bus or {}).items():
        kind = "counter" if key.endswith("_total") else "gauge"
        metric(f"bus_{key}", kind, f"Event bus {key.replace('_', ' ')}.", [("", value)])
    return "\n".join(out) + "\n"


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (a port already in use is logged, not fatal)."""

    def __init__(self, host: str, port: int, text: Callable[[], str]) -> None:
        self.host = host
        self.port = port
        self._text = text
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Start serving."""
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            log.warning("metrics not served on %s:%d (%s)", self.host, self.port, exc.strerror)
            await runner.cleanup()
            return
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("Prometheus metrics on http://%s:%d/metrics", self.host, self.port)

    async def _handle(self, request: web.Request) -> web.Response:
        return web.Response(text=self._text(), content_type="text/plain", charset="utf-8")

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
