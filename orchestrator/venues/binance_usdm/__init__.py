"""Binance USD-M futures public market data (EXCHANGES.md section 2).

Streams are routed by class: depth and bookTicker on ``/public``, trades on ``/market``
(the unrouted URLs stopped pushing after the 2026 split), one connection per route. Books
start from ``GET /fapi/v1/depth`` (limit 1000, weight 20); bridging uses ``pu``.
"""

from __future__ import annotations

from orchestrator.net.ws import PingStyle, WsPolicy
from orchestrator.venues.binance import BinanceSpec

__all__ = ["SPEC"]

SPEC = BinanceSpec(
    name="binance_usdm",
    venue="binance",
    market="usdm",
    policy=WsPolicy(ping=PingStyle.SERVER, max_age=23 * 3600, rollover_jitter=1800, control_rate=8),
    connect_limit=200,
    connect_period=300.0,
    rest_limit=2400,
    rest_period=60.0,
    rest_weight_header="X-MBX-USED-WEIGHT-1M",
    max_streams_per_connection=200,
    snapshot_from_rest=True,
    depth_path="/fapi/v1/depth",
    depth_limit=1000,
    depth_weight=20,
    exchange_info_path="/fapi/v1/exchangeInfo",
    exchange_info_weight=1,
    routes=(
        ("depth", "/public"),
        ("bookTicker", "/public"),
        ("aggTrade", "/market"),
        ("trade", "/public"),
    ),
)
