"""Instrument metadata -> scales, and verify with metadata-fixed scales."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ext.binance import BinanceFeed
from ext.feed import FrameError
from orchestrator.capture.verify import verify_files
from orchestrator.instruments import (
    MetadataError,
    apply_scales,
    binance_scales,
    load_scales,
    okx_scales,
)
from tests.support.fixtures import SETS


def exchange_info(symbol: str, tick: str, step: str) -> dict:
    return {
        "symbols": [
            {
                "symbol": symbol,
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": tick, "minPrice": "0.01"},
                    {"filterType": "LOT_SIZE", "stepSize": step, "minQty": "0.0001"},
                ],
            }
        ]
    }


@pytest.mark.unit
def test_binance_scales_from_filters():
    s = binance_scales(json.dumps(exchange_info("ETHUSDT", "0.01000000", "0.00010000")))
    assert (s["ETHUSDT"].price_scale, s["ETHUSDT"].size_scale) == (2, 4)


@pytest.mark.unit
def test_okx_scales_from_instruments():
    resp = {"code": "0", "data": [{"instId": "BTC-USDT-SWAP", "tickSz": "0.1", "lotSz": "0.01"}]}
    s = load_scales(json.dumps(resp).encode())
    assert (s["BTC-USDT-SWAP"].price_scale, s["BTC-USDT-SWAP"].size_scale) == (1, 2)
    assert okx_scales(resp) == s


@pytest.mark.unit
@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("{not json", "not JSON"),
        ("[]", "JSON object"),
        ({"code": "50011", "data": []}, "code"),
        ({"symbols": [{"symbol": "X", "filters": []}]}, "PRICE_FILTER"),
        ({"data": [{"instId": "A-B", "tickSz": "abc", "lotSz": "1"}]}, "must be decimals"),
        ({"other": 1}, "neither"),
    ],
)
def test_bad_metadata_is_a_clear_error(data, match):
    with pytest.raises(MetadataError, match=match):
        load_scales(data if isinstance(data, str) else json.dumps(data))


@pytest.mark.unit
def test_locked_scales_reject_finer_values():
    feed = BinanceFeed("spot")
    apply_scales(feed, binance_scales(exchange_info("BTCUSDT", "0.1", "0.001")).values())
    snap = b'{"lastUpdateId":1,"bids":[["100.1","0.001"]],"asks":[["100.25","1"]]}'
    with pytest.raises(FrameError, match="needs 2 decimals"):
        feed.on_snapshot("BTCUSDT", snap)


@pytest.mark.replay
def test_verify_with_metadata_matches_inferred(tmp_path):
    plain = verify_files(SETS["hb-spot-ethusdt"])
    [book] = plain["instruments"]
    info = exchange_info(
        "ETHUSDT", f"{10 ** -book['price_scale']:.8f}", f"{10 ** -book['size_scale']:.8f}"
    )
    fixed = verify_files(SETS["hb-spot-ethusdt"], scales=list(binance_scales(info).values()))
    assert fixed["ok"] and fixed["instruments"] == plain["instruments"]
    coarse = exchange_info("ETHUSDT", "0.1", "1")
    path = tmp_path / "exchangeInfo.json"
    path.write_text(json.dumps(coarse))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.capture",
            "verify",
            "--metadata",
            str(path),
            *map(str, SETS["hb-spot-ethusdt"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2
    assert "(from metadata)" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.unit
def test_whole_exchange_info_is_applied_lazily_and_per_market():
    info = {"symbols": []}
    for i in range(5000):
        info["symbols"] += exchange_info(f"SYM{i}USDT", "0.01", "0.001")["symbols"]
    futures = exchange_info("BTCUSDT", "0.1", "0.001")["symbols"][0] | {"contractType": "PERPETUAL"}
    info["symbols"].append(futures)
    scales = binance_scales(info)
    assert scales["BTCUSDT"].market == "usdm" and scales["SYM1USDT"].market == "spot"
    spot, usdm = BinanceFeed("spot"), BinanceFeed("usdm")
    assert apply_scales(spot, scales.values()) == 5000
    assert apply_scales(usdm, scales.values()) == 1
    assert spot.instruments() == []  # nothing created up front
    usdm.on_snapshot(
        "BTCUSDT", b'{"lastUpdateId":1,"bids":[["100.1","0.001"]],"asks":[["100.2","1"]]}'
    )
    book = usdm.book("BTCUSDT", "depth")
    assert (book.price_scale, book.size_scale) == (1, 3)
