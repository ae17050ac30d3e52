"""Wire encoders: Binance (spot, USD-M) and OKX v5 JSON, byte-exact, from scaled integers.

Numbers are written from the true book's integers with :func:`ext.scaled.format_scaled`
(never through float): Binance pads to the venue's fixed decimals (spot 8, USD-M the
tick's written decimals), OKX writes the shortest exact text, which is also what its
legacy checksum is computed over. Key order follows the venues' documented examples
(``EXCHANGES.md`` §1.4, §2.3, §3.4, §3.6). Everything returns ``bytes`` ready to send.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ext.scaled import format_scaled
from orchestrator.sim.config import InstrumentSpec
from orchestrator.sim.market import Fill

__all__ = [
    "BinanceEncoder",
    "OkxEncoder",
    "binance_combined",
    "dumps",
    "fixed",
    "okx_level_count",
]

Levels = Sequence[tuple[int, int]]


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (no spaces), as the venues send."""
    return json.dumps(obj, separators=(",", ":")).encode()


def fixed(value: int, scale: int, decimals: int) -> str:
    """Decimal text of ``value * 10**-scale`` with exactly ``decimals`` decimals.

    ``decimals < 0`` gives the shortest exact text. ``decimals`` must be at least the
    significant decimals of the value (``ValueError`` otherwise: that would round).
    """
    text = format_scaled(value, scale)
    if decimals < 0:
        return text
    whole, _, frac = text.partition(".")
    if len(frac) > decimals:
        raise ValueError(f"{text} needs {len(frac)} decimals, only {decimals} allowed")
    return f"{whole}.{frac.ljust(decimals, '0')}" if decimals else whole


def binance_combined(stream: str, payload: bytes) -> bytes:
    """Wrap a payload as a combined-stream frame ``{"stream":...,"data":...}``."""
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"


class BinanceEncoder:
    """Binance market-data payloads for one instrument (spot or USD-M)."""

    def __init__(self, spec: InstrumentSpec) -> None:
        self.spec = spec
        self.usdm = spec.exchange == "binance_usdm"
        self._ps, self._ss = spec.price_scale, spec.size_scale
        self._pd = spec.price_decimals if spec.price_decimals >= 0 else self._ps
        self._sd = spec.size_decimals if spec.size_decimals >= 0 else self._ss
        self._sym = spec.symbol

    def px(self, value: int) -> str:
        """Price text."""
        return fixed(value, self._ps, self._pd)

    def qty(self, value: int) -> str:
        """Quantity text."""
        return fixed(value, self._ss, self._sd)

    def _levels(self, levels: Iterable[tuple[int, int]]) -> str:
        return ",".join(f'["{self.px(p)}","{self.qty(s)}"]' for p, s in levels)

    def depth_update(
        self, e_ms: int, t_ms: int, first: int, last: int, prev: int, bids: Levels, asks: Levels
    ) -> bytes:
        """``depthUpdate`` diff (spot: no ``T``/``pu``; USD-M: ``T`` and ``pu``)."""
        b, a = self._levels(bids), self._levels(asks)
        if self.usdm:
            return (
                f'{{"e":"depthUpdate","E":{e_ms},"T":{t_ms},"s":"{self._sym}","U":{first},'
                f'"u":{last},"pu":{prev},"b":[{b}],"a":[{a}]}}'
            ).encode()
        return (
            f'{{"e":"depthUpdate","E":{e_ms},"s":"{self._sym}","U":{first},"u":{last},'
            f'"b":[{b}],"a":[{a}]}}'
        ).encode()

    def partial_depth(
        self, e_ms: int, t_ms: int, first: int, last: int, prev: int, bids: Levels, asks: Levels
    ) -> bytes:
        """Partial book depth (``@depth5|10|20``): spot snapshot form, USD-M diff envelope."""
        b, a = self._levels(bids), self._levels(asks)
        if self.usdm:
            return (
                f'{{"e":"depthUpdate","E":{e_ms},"T":{t_ms},"s":"{self._sym}","U":{first},'
                f'"u":{last},"pu":{prev},"b":[{b}],"a":[{a}]}}'
            ).encode()
        return f'{{"lastUpdateId":{last},"bids":[{b}],"asks":[{a}]}}'.encode()

    def book_ticker(
        self, u: int, e_ms: int, t_ms: int, bid: tuple[int, int], ask: tuple[int, int]
    ) -> bytes:
        """``bookTicker`` (spot has no event type or times)."""
        body = (
            f'"s":"{self._sym}","b":"{self.px(bid[0])}","B":"{self.qty(bid[1])}",'
            f'"a":"{self.px(ask[0])}","A":"{self.qty(ask[1])}"'
        )
        if self.usdm:
            return f'{{"e":"bookTicker","u":{u},"E":{e_ms},"T":{t_ms},{body}}}'.encode()
        return f'{{"u":{u},{body}}}'.encode()

    def trades(self, e_ms: int, t_ms: int, fill: Fill) -> list[bytes]:
        """One ``trade`` payload per underlying trade of ``fill``."""
        m = "false" if fill.taker_buy else "true"
        p = self.px(fill.price)
        out = []
        for i, size in enumerate(fill.parts):
            tid = fill.first_trade_id + i
            if self.usdm:
                out.append(
                    f'{{"e":"trade","E":{e_ms},"T":{t_ms},"s":"{self._sym}","t":{tid},'
                    f'"p":"{p}","q":"{self.qty(size)}","X":"MARKET","m":{m}}}'.encode()
                )
            else:
                out.append(
                    f'{{"e":"trade","E":{e_ms},"s":"{self._sym}","t":{tid},"p":"{p}",'
                    f'"q":"{self.qty(size)}","T":{t_ms},"m":{m},"M":true}}'.encode()
                )
        return out

    def agg_trade(self, e_ms: int, t_ms: int, fill: Fill) -> bytes:
        """``aggTrade`` of ``fill`` (USD-M adds ``nq``, drops ``M``)."""
        m = "false" if fill.taker_buy else "true"
        head = (
            f'{{"e":"aggTrade","E":{e_ms},"s":"{self._sym}","a":{fill.agg_id},'
            f'"p":"{self.px(fill.price)}","q":"{self.qty(fill.size)}"'
        )
        ids = f'"f":{fill.first_trade_id},"l":{fill.last_trade_id},"T":{t_ms},"m":{m}'
        if self.usdm:
            return f'{head},"nq":"{self.qty(fill.size)}",{ids}}}'.encode()
        return f'{head},{ids},"M":true}}'.encode()

    def snapshot(
        self, last_id: int, bids: Levels, asks: Levels, e_ms: int = 0, t_ms: int = 0
    ) -> bytes:
        """REST depth snapshot (USD-M adds ``E`` and ``T``)."""
        b, a = self._levels(bids), self._levels(asks)
        if self.usdm:
            return (
                f'{{"lastUpdateId":{last_id},"E":{e_ms},"T":{t_ms},"bids":[{b}],"asks":[{a}]}}'
            ).encode()
        return f'{{"lastUpdateId":{last_id},"bids":[{b}],"asks":[{a}]}}'.encode()

    def exchange_info_symbol(self) -> dict[str, Any]:
        """Build the instrument's entry in ``exchangeInfo.symbols``."""
        spec = self.spec
        tick, lot = spec.tick_size, spec.lot_size
        filters: list[dict[str, Any]] = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": fixed(10**7 * 10**self._ps, self._ps, self._pd),
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": lot,
                "maxQty": fixed(9000 * 10**self._ss, self._ss, self._sd),
                "stepSize": lot,
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": lot,
                "maxQty": fixed(100 * 10**self._ss, self._ss, self._sd),
                "stepSize": lot,
            },
        ]
        if self.usdm:
            filters.append({"filterType": "MIN_NOTIONAL", "notional": "5"})
            return {
                "symbol": spec.symbol,
                "pair": spec.symbol,
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000,
                "status": "TRADING",
                "baseAsset": spec.base,
                "quoteAsset": spec.quote,
                "marginAsset": spec.quote,
                "pricePrecision": self._pd,
                "quantityPrecision": self._sd,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "triggerProtect": "0.0500",
                "filters": filters,
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            }
        filters.append(
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            }
        )
        return {
            "symbol": spec.symbol,
            "status": "TRADING",
            "baseAsset": spec.base,
            "baseAssetPrecision": 8,
            "quoteAsset": spec.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": filters,
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


def okx_level_count(price: int, size: int, size_step: int) -> int:
    """Synthetic order count of a level (deterministic in price and size)."""
    lots = size // size_step
    return max(1, min(lots, 1 + (price + lots) % 7))


class OkxEncoder:
    """OKX v5 push and REST payloads for one instrument (spot or SWAP)."""

    def __init__(self, spec: InstrumentSpec) -> None:
        self.spec = spec
        self._ps, self._ss = spec.price_scale, spec.size_scale
        self._sstep = spec.size_step
        self._inst = spec.symbol

    def px(self, value: int) -> str:
        """Price text (shortest exact)."""
        return format_scaled(value, self._ps)

    def sz(self, value: int) -> str:
        """Size text (shortest exact)."""
        return format_scaled(value, self._ss)

    def _levels(self, levels: Iterable[tuple[int, int]]) -> str:
        fs, ps, ss, step = format_scaled, self._ps, self._ss, self._sstep
        return ",".join(
            f'["{fs(p, ps)}","{fs(s, ss)}","0","{okx_level_count(p, s, step) if s else 0}"]'
            for p, s in levels
        )

    def book(
        self,
        channel: str,
        action: str,
        bids: Levels,
        asks: Levels,
        ts_ms: int,
        checksum: int,
        seq: int,
        prev: int,
    ) -> bytes:
        """Incremental-channel frame (``books``, ``books-l2-tbt``, ``books50-l2-tbt``)."""
        return (
            f'{{"arg":{{"channel":"{channel}","instId":"{self._inst}"}},"action":"{action}",'
            f'"data":[{{"asks":[{self._levels(asks)}],"bids":[{self._levels(bids)}],'
            f'"ts":"{ts_ms}","checksum":{checksum},"prevSeqId":{prev},"seqId":{seq}}}]}}'
        ).encode()

    def top(self, channel: str, bids: Levels, asks: Levels, ts_ms: int, seq: int) -> bytes:
        """Snapshot-only frame (``books5`` carries ``instId`` in data, ``bbo-tbt`` not)."""
        inst = f'"instId":"{self._inst}",' if channel == "books5" else ""
        return (
            f'{{"arg":{{"channel":"{channel}","instId":"{self._inst}"}},'
            f'"data":[{{"asks":[{self._levels(asks)}],"bids":[{self._levels(bids)}],'
            f'{inst}"ts":"{ts_ms}","seqId":{seq}}}]}}'
        ).encode()

    def trades(self, fills: Sequence[Fill], ts_ms: int, seq: int) -> bytes:
        """``trades`` push: one entry per fill price (``tradeId`` = last id, ``count``)."""
        data = ",".join(
            f'{{"instId":"{self._inst}","tradeId":"{f.last_trade_id}","px":"{self.px(f.price)}",'
            f'"sz":"{self.sz(f.size)}","side":"{"buy" if f.taker_buy else "sell"}",'
            f'"ts":"{ts_ms}","count":"{len(f.parts)}","source":"0","seqId":{seq}}}'
            for f in fills
        )
        return (
            f'{{"arg":{{"channel":"trades","instId":"{self._inst}"}},"data":[{data}]}}'
        ).encode()

    def rest_books(self, bids: Levels, asks: Levels, ts_ms: int, seq: int) -> bytes:
        """``GET /api/v5/market/books`` response."""
        return (
            f'{{"code":"0","msg":"","data":[{{"asks":[{self._levels(asks)}],'
            f'"bids":[{self._levels(bids)}],"ts":"{ts_ms}","seqId":{seq}}}]}}'
        ).encode()

    def instrument(self) -> dict[str, Any]:
        """Build the instrument's entry in ``/api/v5/public/instruments`` data."""
        spec = self.spec
        swap = spec.exchange == "okx_swap"
        base, quote = spec.base, spec.quote
        return {
            "alias": "",
            "baseCcy": "" if swap else base,
            "category": "1",
            "ctMult": "1" if swap else "",
            "ctType": "linear" if swap else "",
            "ctVal": spec.ct_val if swap else "",
            "ctValCcy": base if swap else "",
            "expTime": "",
            "instFamily": f"{base}-{quote}" if swap else "",
            "instId": spec.symbol,
            "instType": "SWAP" if swap else "SPOT",
            "lever": "100" if swap else "10",
            "listTime": "1606468572000",
            "lotSz": spec.lot_size,
            "maxIcebergSz": "999999999999",
            "maxLmtAmt": "20000000",
            "maxLmtSz": "999999999999",
            "maxMktAmt": "1000000",
            "maxMktSz": "999999999999",
            "maxStopSz": "999999999999",
            "maxTriggerSz": "999999999999",
            "maxTwapSz": "999999999999",
            "minSz": spec.lot_size,
            "optType": "",
            "quoteCcy": "" if swap else quote,
            "settleCcy": quote if swap else "",
            "state": "live",
            "stk": "",
            "tickSz": spec.tick_size,
            "uly": f"{base}-{quote}" if swap else "",
            "upcChg": [],
        }
