"""Sustained frames/s over loopback WebSocket into exact books, and receive -> applied latency.

A picows server on loopback sends the recorded Binance ETHUSDT spot stream (33,617 real
combined-stream frames: depth diffs, trades, bookTickers) as fast as the socket takes
them. The client is Slipstream's own live path - :class:`orchestrator.net.ws.WsSession`
handing each frame from picows' callback to the compiled ``BinanceFeed`` (sequence rules,
book, trades, bookTicker cross-checks) - and, as the same-run reference, the same socket
and frames decoded with ``json.loads`` into a ``sortedcontainers`` book with ``Decimal``
values (what a typical Python collector does).

A third variant also updates, after every frame, the live job's indicator set on the book
(order-flow imbalance, EMA of the mid, top-10 imbalance; one ``ext`` call each).

``extra_info``: ``frames_per_s`` sustained from first to last frame, and the receive ->
applied latency ``p50_us``/``p99_us``/``p999_us`` (the receive stamp is taken when picows
hands the frame over, so socket queueing is excluded: it is our processing cost).

Run: ``python -m pytest benchmarks/test_bench_live.py --benchmark-only -p no:cacheprovider``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from picows import WSListener, WSMsgType, WSTransport, ws_create_server
from sortedcontainers import SortedDict

from ext.binance import BinanceFeed
from ext.flow import OrderFlowImbalance, book_imbalance
from ext.indicators import Ema
from orchestrator.capture import read_capture
from orchestrator.net.ws import WsPolicy, WsSession

CAPTURE = (
    Path(__file__).resolve().parents[1] / "tests/data/fixtures/hftbacktest/spot/ethusdt_20240808.gz"
)


def _load() -> tuple[bytes, list[bytes]]:
    snapshot = b""
    frames: list[bytes] = []
    for f in read_capture(CAPTURE):
        if f.kind == "rest":
            snapshot = f.payload
        elif f.kind == "ws":
            frames.append(f.payload)
    return snapshot, frames


SNAPSHOT, FRAMES = _load()


class Blaster(WSListener):
    """Sends every frame as fast as the socket drains, then closes."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.task = asyncio.get_running_loop().create_task(self.blast(transport))

    async def blast(self, transport: WSTransport) -> None:
        raw = transport.underlying_transport
        for i, frame in enumerate(FRAMES):
            transport.send(WSMsgType.TEXT, frame)
            if not i & 255:
                while raw.get_write_buffer_size() > 1 << 20:
                    await asyncio.sleep(0)
        while raw.get_write_buffer_size():
            await asyncio.sleep(0.001)
        transport.send_close()


def _run(make_handler: Callable[[], Callable[[memoryview, int], None]]) -> dict[str, Any]:
    """Serve the stream once; returns frames/s and latency samples."""

    async def go() -> dict[str, Any]:
        server = await ws_create_server(lambda _: Blaster(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        handler = make_handler()
        lat = np.zeros(len(FRAMES), dtype=np.int64)
        n = 0
        first = last = 0
        done = asyncio.Event()
        clock = time.perf_counter_ns
        wall = time.time_ns

        def on_frame(payload: memoryview, recv_ns: int) -> None:
            nonlocal n, first, last
            handler(payload, recv_ns)
            now = wall()
            lat[n] = now - recv_ns
            n += 1
            if n == 1:
                first = clock()
            if n == len(FRAMES):
                last = clock()
                done.set()

        session = WsSession(
            "bench", f"ws://127.0.0.1:{port}/", on_frame, policy=WsPolicy(max_age=None)
        )
        session.start()
        await asyncio.wait_for(done.wait(), 120)
        await session.stop()
        server.close()
        await server.wait_closed()
        return {"n": n, "seconds": (last - first) / 1e9, "lat": lat[:n]}

    return asyncio.run(go())


def _report(benchmark: Any, results: list[dict[str, Any]]) -> None:
    best = min(results, key=lambda r: r["seconds"])
    lat = np.concatenate([r["lat"] for r in results]) / 1e3
    benchmark.extra_info["frames"] = best["n"]
    benchmark.extra_info["frames_per_s"] = round(best["n"] / best["seconds"])
    benchmark.extra_info["p50_us"] = round(float(np.percentile(lat, 50)), 2)
    benchmark.extra_info["p99_us"] = round(float(np.percentile(lat, 99)), 2)
    benchmark.extra_info["p999_us"] = round(float(np.percentile(lat, 99.9)), 2)


def _ext_handler() -> Callable[[memoryview, int], None]:
    feed = BinanceFeed("spot")
    feed.on_snapshot("ETHUSDT", SNAPSHOT)
    on_frame = feed.on_frame

    def handle(payload: memoryview, recv_ns: int) -> None:
        on_frame(payload, recv_ns)

    return handle


def _ext_signals_handler() -> Callable[[memoryview, int], None]:
    """Books plus, after every frame, the indicator set of the live job (one ext call each)."""
    feed = BinanceFeed("spot")
    feed.on_snapshot("ETHUSDT", SNAPSHOT)
    book = feed.book("ETHUSDT", "depth")
    assert book is not None
    on_frame = feed.on_frame
    ofi = OrderFlowImbalance(10 * 10**9, "time")
    ema = Ema(20)
    ofi_update = ofi.update_book
    ema_update = ema.update
    mid = book.mid

    def handle(payload: memoryview, recv_ns: int) -> None:
        on_frame(payload, recv_ns)
        ofi_update(book, recv_ns)
        ema_update(mid())
        book_imbalance(book, 10)

    return handle


def _python_handler() -> Callable[[memoryview, int], None]:
    snap = json.loads(SNAPSHOT)
    bids: SortedDict = SortedDict({Decimal(p): Decimal(q) for p, q in snap["bids"]})
    asks: SortedDict = SortedDict({Decimal(p): Decimal(q) for p, q in snap["asks"]})
    last_id = snap["lastUpdateId"]

    def handle(payload: memoryview, recv_ns: int) -> None:
        nonlocal last_id
        msg = json.loads(bytes(payload))
        d = msg["data"]
        if d.get("e") != "depthUpdate" or d["u"] <= last_id:
            return
        for side, levels in ((bids, d["b"]), (asks, d["a"])):
            for px, qty in levels:
                p = Decimal(px)
                if Decimal(qty) == 0:
                    side.pop(p, None)
                else:
                    side[p] = Decimal(qty)
        last_id = d["u"]

    return handle


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("ext", _ext_handler),
        ("ext_with_signals", _ext_signals_handler),
        ("python_reference", _python_handler),
    ],
)
def test_live_loopback_binance_stream(benchmark: Any, name: str, make: Any) -> None:
    benchmark.group = "live: loopback WS -> book (Binance ETHUSDT)"
    benchmark.name = f"test_live_loopback_{name}"
    results: list[dict[str, Any]] = []

    def once() -> None:
        results.append(_run(make))

    benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=0)
    assert all(r["n"] == len(FRAMES) for r in results)
    _report(benchmark, results)
