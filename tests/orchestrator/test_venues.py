"""Venue adapters: registry, stream naming and routing, connection splitting, control frames."""

from __future__ import annotations

import json

import pytest

from ext.binance import BinanceFeed
from ext.okx import OkxFeed
from orchestrator.errors import ConfigError
from orchestrator.net.ws import PingStyle
from orchestrator.venues import get_venue

pytestmark = pytest.mark.unit


def test_registry_covers_every_shipped_exchange(clean_env: pytest.MonkeyPatch) -> None:
    for name, venue, market in [
        ("binance", "binance", "spot"),
        ("binance_usdm", "binance", "usdm"),
        ("okx", "okx", "spot"),
        ("okx_swap", "okx", "swap"),
    ]:
        spec = get_venue(name)
        assert (spec.name, spec.venue, spec.market) == (name, venue, market)
        feed = spec.make_feed()
        assert isinstance(feed, BinanceFeed if venue == "binance" else OkxFeed)
        assert feed.venue == venue
    with pytest.raises(ConfigError, match="unknown exchange 'kraken'"):
        get_venue("kraken")
    clean_env.setenv("SUPPORTED_EXCHANGES", "okx")
    with pytest.raises(ConfigError, match="not in SUPPORTED_EXCHANGES"):
        get_venue("binance")


def test_binance_spot_combined_stream_urls_are_split() -> None:
    spec = get_venue("binance")
    symbols = [f"SYM{i}USDT" for i in range(150)]
    conns = spec.connections("wss://stream.binance.com:9443", symbols, ["depth@100ms", "trade"])
    assert [len(c.streams) for c in conns] == [200, 100]
    first = conns[0]
    assert first.url.startswith(
        "wss://stream.binance.com:9443/stream?streams=sym0usdt@depth@100ms/sym0usdt@trade/"
    )
    assert first.subscribe == ()  # subscribed by URL: reconnects send no control messages
    assert spec.policy.ping is PingStyle.SERVER and spec.policy.max_age is not None
    assert spec.policy.max_age < 24 * 3600
    assert spec.book_channel(["depth@100ms", "trade"]) == "depth"
    assert spec.book_channel(["trade"]) is None
    call = spec.snapshot_call("BTCUSDT")
    assert (call.path, dict(call.params), call.weight) == (
        "/api/v3/depth",
        {"symbol": "BTCUSDT", "limit": 1000},
        50,
    )
    with pytest.raises(ValueError, match="unknown channels"):
        spec.connections("wss://x", ["BTCUSDT"], ["depth@10ms"])


def test_binance_usdm_routes_streams_by_class() -> None:
    spec = get_venue("binance_usdm")
    conns = spec.connections(
        "wss://fstream.binance.com", ["BTCUSDT"], ["depth@100ms", "aggTrade", "bookTicker"]
    )
    urls = sorted(c.url for c in conns)
    assert urls == [
        "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade",
        "wss://fstream.binance.com/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker",
    ]
    assert spec.snapshot_call("BTCUSDT").path == "/fapi/v1/depth"
    assert spec.instruments_call(["BTCUSDT"]).path == "/fapi/v1/exchangeInfo"


def test_okx_subscribe_messages_and_resubscribe() -> None:
    spec = get_venue("okx_swap")
    symbols = [f"C{i}-USDT-SWAP" for i in range(20)]
    conns = spec.connections("wss://ws.okx.com:8443/ws/v5/public", symbols, ["books", "trades"])
    assert [len(c.streams) for c in conns] == [25, 15]  # < 30 channel args per connection
    msg = json.loads(conns[0].subscribe[0])
    assert msg["op"] == "subscribe"
    assert msg["args"][:2] == [
        {"channel": "books", "instId": "C0-USDT-SWAP"},
        {"channel": "trades", "instId": "C0-USDT-SWAP"},
    ]
    assert spec.policy.ping is PingStyle.TEXT and spec.policy.idle_ping_after < 30
    un, sub = (json.loads(m) for m in spec.resubscribe("BTC-USDT-SWAP", "books"))
    assert un == {"op": "unsubscribe", "args": [{"channel": "books", "instId": "BTC-USDT-SWAP"}]}
    assert sub["op"] == "subscribe"
    assert dict(spec.instruments_call([]).params) == {"instType": "SWAP"}
    assert spec.book_channel(["trades", "books5"]) == "books5"


def test_control_frames_are_classified() -> None:
    okx = get_venue("okx")
    assert okx.classify_other("pong")[0] == "pong"
    assert okx.classify_other({"event": "subscribe", "arg": {"channel": "books"}})[0] == "ack"
    assert okx.classify_other({"event": "error", "code": "60018", "msg": "doesn't exist"}) == (
        "error",
        "code 60018: doesn't exist",
    )
    assert (
        okx.classify_other({"event": "notice", "code": "64008", "msg": "upgrade"})[0] == "shutdown"
    )
    binance = get_venue("binance")
    assert binance.classify_other({"result": None, "id": 1})[0] == "ack"
    assert (
        binance.classify_other(
            {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}}
        )[0]
        == "shutdown"
    )
    assert binance.classify_other({"code": 2, "msg": "Invalid request"})[0] == "error"
    assert binance.classify_other({"error": {"code": 2, "msg": "Invalid request"}, "id": 3}) == (
        "error",
        "code 2: Invalid request",
    )
    assert binance.classify_other({"what": 1})[0] == "unknown"
