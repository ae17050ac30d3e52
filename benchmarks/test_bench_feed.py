"""Frame -> applied book: ext.feed on real Binance ``depthUpdate`` and OKX ``books`` frames.

The same frames, in the same run, go through a Python reference of what today's Python
collectors do (``json.loads`` + a ``SortedDict`` keyed by ``Decimal``) and, if installed,
``json.loads`` + the C ``order-book`` package (cryptofeed's book). ``extra_info`` holds ns
per frame and per level.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sortedcontainers import SortedDict

from ext.binance import BinanceFeed
from ext.okx import OkxFeed
from orchestrator.capture import read_capture

try:
    import order_book as peer
except ImportError:  # optional peer baseline
    peer = None

FIX = Path(__file__).resolve().parents[1] / "tests" / "data" / "fixtures"
OKX_FILE = FIX / "cryptofeed" / "sample_data" / "OKX.ws.1.0"
BINANCE_FILE = FIX / "hftbacktest" / "spot" / "ethusdt_20240808.gz"


def _okx_frames() -> tuple[list[bytes], int]:
    frames = [
        f.payload
        for f in read_capture(OKX_FILE)
        if f.kind == "ws"
        and b'"action"' in f.payload
        and b'"channel":"books"' in f.payload
        and b'"instId":"BTC-USDT"' in f.payload
    ]
    levels = 0
    for raw in frames:
        d = json.loads(raw)["data"][0]
        levels += len(d["asks"]) + len(d["bids"])
    return frames, levels


def _binance_frames() -> tuple[bytes, list[bytes], int]:
    snap = b""
    diffs: list[bytes] = []
    levels = 0
    for f in read_capture(BINANCE_FILE):
        if f.kind == "rest":
            snap = f.payload
        elif snap and b"depthUpdate" in f.payload[:80]:
            d = json.loads(f.payload)["data"]
            if d["u"] <= json.loads(snap)["lastUpdateId"]:
                continue
            diffs.append(f.payload)
            levels += len(d["b"]) + len(d["a"])
    return snap, diffs, levels


OKX, OKX_LEVELS = _okx_frames()
BIN_SNAP, BIN_DIFFS, BIN_LEVELS = _binance_frames()


def _report(benchmark, frames: int, levels: int) -> None:
    t = benchmark.stats.stats.min
    benchmark.extra_info["ns_per_frame"] = round(t / frames * 1e9, 1)
    benchmark.extra_info["ns_per_level"] = round(t / levels * 1e9, 1)
    benchmark.extra_info["frames"] = frames
    benchmark.extra_info["levels"] = levels


# ---------------------------------------------------------------- OKX books (snapshot + updates)


def test_okx_books_frames_ext(benchmark):
    _okx_ext(benchmark, deltas=False)


def test_okx_books_frames_with_deltas_ext(benchmark):
    """Every changed level also written as a delta record (the main job's default)."""
    _okx_ext(benchmark, deltas=True)


OKX_UPDATES = OKX[1:]
OKX_FRAME_LEVELS = [
    len(d["asks"]) + len(d["bids"]) for d in (json.loads(f)["data"][0] for f in OKX_UPDATES)
]
OKX_UPDATE_LEVELS = sum(OKX_FRAME_LEVELS)
# the same update frames as live OKX sends them today: checksum 0 (nothing to verify)
OKX_UPDATES_LIVE = [re.sub(rb'"checksum":-?\d+', b'"checksum":0', f) for f in OKX_UPDATES]


@pytest.mark.parametrize("shape", ["checksummed", "live_checksum_0"])
def test_okx_update_frames_ext(benchmark, shape):
    """The 97 update frames alone (the snapshot is applied in the setup): what the
    per-frame target is about. ``live_checksum_0``: the same frames with checksum 0, as
    OKX sends them on live feeds today, so no CRC is computed."""
    benchmark.group = "frame->book: OKX books BTC-USDT"  # gated against its reference
    frames = OKX_UPDATES if shape == "checksummed" else OKX_UPDATES_LIVE
    feeds: list[OkxFeed] = []

    def setup():
        feeds.append(_okx_after_snapshot())
        return (feeds[-1],), {}

    def run(feed: OkxFeed) -> None:
        for raw in frames:
            feed.on_frame(raw)

    benchmark.pedantic(run, setup=setup, rounds=200, warmup_rounds=5)
    checks = feeds[-1].stats()[0]["checksums"]
    want = len(OKX) if shape == "checksummed" else 1  # the snapshot's own is verified
    assert checks["verified"] == want and checks["mismatched"] == 0
    _report(benchmark, len(OKX_UPDATES), OKX_UPDATE_LEVELS)
    _per_frame(benchmark, frames)


def _okx_after_snapshot() -> OkxFeed:
    feed = OkxFeed(delta_capacity=0)
    feed.on_frame(OKX[0])
    return feed


def _per_frame(benchmark, frames: list[bytes], replays: int = 300) -> None:
    """Each update frame timed on its own (best of ``replays`` in-order replays, the
    timer's own cost subtracted): the target is about a *typical* frame of 10-50 levels,
    which the whole-replay average (43 levels per frame, up to 163) does not show."""
    clock = time.perf_counter_ns
    timer = min(-clock() + clock() for _ in range(20_000))
    best = [1 << 62] * len(frames)
    for _ in range(replays):
        feed = _okx_after_snapshot()
        for i, raw in enumerate(frames):
            t = clock()
            feed.on_frame(raw)
            best[i] = min(best[i], clock() - t)
    net = [b - timer for b in best]
    typical = [ns for ns, n in zip(net, OKX_FRAME_LEVELS, strict=True) if 10 <= n <= 50]
    benchmark.extra_info["frame ns median (all update frames)"] = statistics.median(net)
    benchmark.extra_info["typical frames (10-50 levels)"] = len(typical)
    benchmark.extra_info["typical frame ns median"] = statistics.median(typical)
    benchmark.extra_info["typical frame ns mean"] = round(statistics.fmean(typical))
    benchmark.extra_info["typical frame ns max"] = max(typical)


def _okx_ext(benchmark, deltas: bool) -> None:
    benchmark.group = "frame->book: OKX books BTC-USDT"

    feeds: list[OkxFeed] = []

    def setup():
        feeds.append(OkxFeed(delta_capacity=OKX_LEVELS + 1024 if deltas else 0))
        return (feeds[-1],), {}

    def run(feed: OkxFeed) -> None:
        for raw in OKX:
            feed.on_frame(raw)

    benchmark.pedantic(run, setup=setup, rounds=200, warmup_rounds=5)
    assert feeds[-1].stats()[0]["checksums"]["verified"] == len(OKX)
    assert (feeds[-1].pending_deltas > 0) == deltas and feeds[-1].deltas_overflow == 0
    _report(benchmark, len(OKX), OKX_LEVELS)


def _py_okx(book_factory):
    def run():
        bids = asks = None
        for raw in OKX:
            d = json.loads(raw)
            data = d["data"][0]
            if d["action"] == "snapshot":
                bids, asks = book_factory(), book_factory()
            for side, levels in ((bids, data["bids"]), (asks, data["asks"])):
                for px, sz, *_ in levels:
                    p = Decimal(px)
                    if sz == "0":
                        if p in side:
                            del side[p]
                    else:
                        side[p] = Decimal(sz)
        return bids, asks

    return run


def test_okx_books_frames_python_reference(benchmark):
    benchmark.group = "frame->book: OKX books BTC-USDT"
    benchmark.pedantic(_py_okx(SortedDict), rounds=5, iterations=1, warmup_rounds=1)
    _report(benchmark, len(OKX), OKX_LEVELS)


@pytest.mark.skipif(peer is None, reason="order-book not installed")
def test_okx_books_frames_order_book_peer(benchmark):
    benchmark.group = "frame->book: OKX books BTC-USDT"
    benchmark.pedantic(_py_okx(lambda: peer.SortedDict()), rounds=5, iterations=1, warmup_rounds=1)
    _report(benchmark, len(OKX), OKX_LEVELS)


# ---------------------------------------------------------------- Binance spot depthUpdate


def test_binance_depth_frames_ext(benchmark):
    _binance_ext(benchmark, deltas=False)


def test_binance_depth_frames_with_deltas_ext(benchmark):
    """Every changed level also written as a delta record (the main job's default)."""
    _binance_ext(benchmark, deltas=True)


def _binance_ext(benchmark, deltas: bool) -> None:
    benchmark.group = "frame->book: Binance depthUpdate ETHUSDT"
    feeds: list[BinanceFeed] = []

    def setup():
        feed = BinanceFeed("spot", delta_capacity=BIN_LEVELS + 65536 if deltas else 0)
        feed.on_snapshot("ETHUSDT", BIN_SNAP)
        feed.drain_deltas()
        feeds.append(feed)
        return (feed,), {}

    def run(feed: BinanceFeed) -> None:
        for raw in BIN_DIFFS:
            feed.on_frame(raw)

    benchmark.pedantic(run, setup=setup, rounds=20, warmup_rounds=2)
    assert (feeds[-1].pending_deltas > 0) == deltas and feeds[-1].deltas_overflow == 0
    _report(benchmark, len(BIN_DIFFS), BIN_LEVELS)


def test_binance_depth_frames_python_reference(benchmark):
    benchmark.group = "frame->book: Binance depthUpdate ETHUSDT"
    snap = json.loads(BIN_SNAP)

    def setup():
        bids = SortedDict({Decimal(p): Decimal(q) for p, q in snap["bids"]})
        asks = SortedDict({Decimal(p): Decimal(q) for p, q in snap["asks"]})
        return (bids, asks), {}

    def run(bids, asks) -> None:
        for raw in BIN_DIFFS:
            d = json.loads(raw)["data"]
            for side, levels in ((bids, d["b"]), (asks, d["a"])):
                for px, q in levels:
                    p = Decimal(px)
                    qty = Decimal(q)
                    if qty:
                        side[p] = qty
                    else:
                        side.pop(p, None)

    benchmark.pedantic(run, setup=setup, rounds=3, warmup_rounds=1)
    _report(benchmark, len(BIN_DIFFS), BIN_LEVELS)
