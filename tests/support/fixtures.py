"""The recorded capture sets under ``tests/data/fixtures`` (see its README.md)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CF", "CF_OLD", "FIX", "HB", "SETS"]

FIX = Path(__file__).resolve().parents[1] / "data" / "fixtures"
HB = FIX / "hftbacktest"
CF = FIX / "cryptofeed" / "sample_data"
CF_OLD = FIX / "cryptofeed" / "sample_data-70789232"

#: Capture sets, in the order the verifier takes them.
SETS: dict[str, list[Path]] = {
    "hb-spot-ethusdt": [HB / "spot/ethusdt_20240808.gz", HB / "spot/ethusdt_20240809.gz"],
    "hb-usdm-btcusdt": [HB / "usdm/btcusdt_20240808.gz"],
    "hb-coinm-btcusd": [HB / "cm/btcusd_perp_20240808.gz", HB / "cm/btcusd_perp_20240809.gz"],
    "hb-coinm-ethusd": [HB / "cm/ethusd_perp_20240808.gz", HB / "cm/ethusd_perp_20240809.gz"],
    "cf-binance": [CF / "BINANCE.http.0.0", CF / "BINANCE.ws.1.0"],
    "cf-binance-futures": [CF / "BINANCE_FUTURES.http.0.0", CF / "BINANCE_FUTURES.ws.1.0"],
    "cf-binance-delivery": [CF / "BINANCE_DELIVERY.http.0.0", CF / "BINANCE_DELIVERY.ws.1.0"],
    "cf-binance-us": [CF / "BINANCE_US.http.0.0", CF / "BINANCE_US.ws.1.0"],
    "cf-okx": [CF / "OKX.ws.1.0"],
    "cf-binance-70789232": [CF_OLD / "BINANCE.http.0.0", CF_OLD / "BINANCE.ws.1.0"],
    "gc-okx-trades": [FIX / "gocryptotrader/okx_wsAllTrades.json"],
}
