"""Venue frames built from Python values for the feed tests (wire shapes as the venues send)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["depth", "okx", "snapshot"]

Levels = Sequence[Sequence[str]]


def depth(
    U: int,
    u: int,
    bids: Levels = (),
    asks: Levels = (),
    pu: int | None = None,
    s: str = "BTCUSDT",
    E: int = 1,
) -> bytes:
    """A Binance combined-stream ``depthUpdate`` (``pu`` for the futures markets)."""
    data: dict[str, Any] = {
        "e": "depthUpdate",
        "E": E,
        "s": s,
        "U": U,
        "u": u,
        "b": [list(b) for b in bids],
        "a": [list(a) for a in asks],
    }
    if pu is not None:
        data["pu"] = pu
    return json.dumps({"stream": f"{s.lower()}@depth@100ms", "data": data}).encode()


def snapshot(
    last: int, bids: Levels = (("100.0", "1"),), asks: Levels = (("101.0", "1"),)
) -> bytes:
    """A Binance REST depth snapshot."""
    body = {"lastUpdateId": last, "bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}
    return json.dumps(body).encode()


def okx(
    action: str,
    asks: Levels = (),
    bids: Levels = (),
    seq: int | None = None,
    prev: int | None = None,
    checksum: int = 0,
    ts: str = "1",
    inst: str = "BTC-USDT",
) -> bytes:
    """An OKX ``books`` message (levels get OKX's two extra elements)."""
    d: dict[str, Any] = {
        "asks": [[*list(a), "0", "1"] for a in asks],
        "bids": [[*list(b), "0", "1"] for b in bids],
        "ts": ts,
        "checksum": checksum,
    }
    if seq is not None:
        d["seqId"], d["prevSeqId"] = seq, prev
    msg = {"arg": {"channel": "books", "instId": inst}, "action": action, "data": [d]}
    return json.dumps(msg).encode()
