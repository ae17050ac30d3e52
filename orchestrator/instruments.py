"""Instrument metadata -> the integer scales the compiled books use.

Binance ``exchangeInfo`` (``PRICE_FILTER.tickSize``, ``LOT_SIZE.stepSize``) and OKX
``/api/v5/public/instruments`` (``tickSz``, ``lotSz``) give each instrument's price and size
increments; their decimals are the scales (``"0.01000000"`` -> 2). A feed whose scales are
set from metadata rejects a finer value as an error instead of silently rescaling.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ext.feed import Feed
from ext.scaled import decimals_needed
from orchestrator.errors import SlipstreamError

__all__ = [
    "InstrumentScales",
    "MetadataError",
    "apply_scales",
    "binance_scales",
    "load_scales",
    "okx_scales",
]


class MetadataError(SlipstreamError):
    """Instrument metadata that cannot be understood (names the field and value)."""


@dataclass(frozen=True)
class InstrumentScales:
    """Price and size increments of one instrument and their decimals."""

    venue: str
    market: str
    symbol: str
    tick_size: str
    lot_size: str
    price_scale: int
    size_scale: int


def _scales(venue: str, market: str, symbol: str, tick: Any, lot: Any) -> InstrumentScales:
    try:
        ps, ss = decimals_needed(str(tick)), decimals_needed(str(lot))
    except ValueError:
        raise MetadataError(
            f"{venue} {symbol}: tick/lot size must be decimals, were {tick!r} / {lot!r}"
        ) from None
    return InstrumentScales(venue, market, symbol, str(tick), str(lot), ps, ss)


def _as_json(data: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"metadata is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(obj, Mapping):
        raise MetadataError("metadata must be a JSON object")
    return obj


def binance_scales(exchange_info: bytes | str | Mapping[str, Any]) -> dict[str, InstrumentScales]:
    """Scales per symbol from a Binance ``exchangeInfo`` response (spot or futures).

    Raises
    ------
    MetadataError
        If a symbol lacks ``PRICE_FILTER.tickSize`` or ``LOT_SIZE.stepSize``.
    """
    info = _as_json(exchange_info)
    out: dict[str, InstrumentScales] = {}
    for sym in info.get("symbols", []):
        name = sym.get("symbol")
        filters = {f.get("filterType"): f for f in sym.get("filters", [])}
        tick = filters.get("PRICE_FILTER", {}).get("tickSize")
        lot = filters.get("LOT_SIZE", {}).get("stepSize")
        if not name or tick is None or lot is None:
            raise MetadataError(
                f"binance symbol {name!r} lacks PRICE_FILTER.tickSize or LOT_SIZE.stepSize"
            )
        # futures exchangeInfo has contractType; COIN-M symbols also carry contractSize
        market = "coinm" if "contractSize" in sym else "usdm" if "contractType" in sym else "spot"
        out[name] = _scales("binance", market, name, tick, lot)
    return out


def okx_scales(instruments: bytes | str | Mapping[str, Any]) -> dict[str, InstrumentScales]:
    """Scales per ``instId`` from an OKX ``/api/v5/public/instruments`` response.

    Raises
    ------
    MetadataError
        If the response carries an error code or an instrument lacks ``tickSz``/``lotSz``.
    """
    resp = _as_json(instruments)
    if str(resp.get("code", "0")) != "0":
        raise MetadataError(f"okx instruments response has code {resp.get('code')!r}")
    out: dict[str, InstrumentScales] = {}
    for inst in resp.get("data", []):
        name = inst.get("instId")
        if not name or "tickSz" not in inst or "lotSz" not in inst:
            raise MetadataError(f"okx instrument {name!r} lacks tickSz or lotSz")
        market = str(inst.get("instType", "unknown")).lower()
        out[name] = _scales("okx", market, name, inst["tickSz"], inst["lotSz"])
    return out


def load_scales(data: bytes | str | Mapping[str, Any]) -> dict[str, InstrumentScales]:
    """Scales from either venue's metadata response (recognised by its shape)."""
    obj = _as_json(data)
    if "symbols" in obj:
        return binance_scales(obj)
    if "data" in obj:
        return okx_scales(obj)
    raise MetadataError("metadata is neither Binance exchangeInfo nor OKX instruments")


def apply_scales(feed: Feed, scales: Iterable[InstrumentScales]) -> int:
    """Hand ``feed`` the scales of its venue (and, for Binance, its market).

    They apply as each instrument is first seen (``Feed.preset_scales``), so a whole
    exchangeInfo or instruments list costs nothing for symbols that never appear.

    Returns
    -------
    int
        Number of instruments whose scales were handed over.
    """
    chosen = {
        s.symbol: (s.price_scale, s.size_scale)
        for s in scales
        if s.venue == feed.venue and (s.venue != "binance" or s.market == feed.market)
    }
    feed.preset_scales(chosen)
    return len(chosen)
