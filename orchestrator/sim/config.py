"""Simulator configuration: instruments, market parameters, faults, replay and ports.

Everything here is a frozen dataclass so a configuration can be shared between the
simulator's tasks and compared in tests. :func:`parse_fault` turns the command line's
``--fault drop=0.01`` words into :class:`Faults` fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ext.scaled import decimals_needed, to_scaled

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "EXCHANGES",
    "Faults",
    "InstrumentSpec",
    "MarketParams",
    "ReplayConfig",
    "SimConfig",
    "generic_instrument",
    "parse_fault",
]

#: Exchange names the simulator serves (as in ``conf/exchange/*.yaml``).
EXCHANGES = ("binance", "binance_usdm", "okx", "okx_swap")


@dataclass(frozen=True)
class InstrumentSpec:
    """One simulated instrument and the metadata its venue publishes.

    Parameters
    ----------
    exchange
        One of :data:`EXCHANGES`.
    symbol
        Venue symbol: ``BTCUSDT`` (Binance) or ``BTC-USDT`` / ``BTC-USDT-SWAP`` (OKX).
    tick_size, lot_size
        Price and size increments as the venue writes them (``"0.01000000"``); their
        significant decimals are the scales of the true book.
    price
        Starting mid price (decimal text).
    level_size
        Mean size of a resting level near the touch, in the venue's size unit (base
        currency, or contracts for OKX SWAP).
    ct_val
        OKX SWAP face value of one contract in base currency (``""`` for spot).
    price_decimals, size_decimals
        Decimals written on the wire by Binance (spot pads to 8, USD-M to the tick's
        written decimals); ``-1`` means the shortest exact text (OKX).
    """

    exchange: str
    symbol: str
    tick_size: str
    lot_size: str
    price: str
    level_size: str = "1"
    ct_val: str = ""
    price_decimals: int = -1
    size_decimals: int = -1

    def __post_init__(self) -> None:
        if self.exchange not in EXCHANGES:
            raise ValueError(f"exchange must be one of {EXCHANGES}, was {self.exchange!r}")
        for name in ("tick_size", "lot_size", "price", "level_size"):
            value = getattr(self, name)
            try:
                ok = Decimal(value) > 0
            except InvalidOperation:
                ok = False
            if not ok:
                raise ValueError(f"{self.symbol}: {name} must be a positive decimal, was {value!r}")
        if self.exchange.startswith("okx") and "-" not in self.symbol:
            raise ValueError(f"OKX instrument ids look like BTC-USDT, was {self.symbol!r}")

    @property
    def price_scale(self) -> int:
        """Decimals of the tick size (the true book's price scale)."""
        return decimals_needed(self.tick_size)

    @property
    def size_scale(self) -> int:
        """Decimals of the lot size (the true book's size scale)."""
        return decimals_needed(self.lot_size)

    @property
    def price_step(self) -> int:
        """One tick in scaled price units."""
        return to_scaled(self.tick_size, self.price_scale)

    @property
    def size_step(self) -> int:
        """One lot in scaled size units."""
        return to_scaled(self.lot_size, self.size_scale)

    @property
    def base(self) -> str:
        """Base asset (``BTC``)."""
        if "-" in self.symbol:
            return self.symbol.split("-")[0]
        for quote in ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH"):
            if self.symbol.endswith(quote) and len(self.symbol) > len(quote):
                return self.symbol[: -len(quote)]
        return self.symbol[:-4]

    @property
    def quote(self) -> str:
        """Quote asset (``USDT``)."""
        if "-" in self.symbol:
            return self.symbol.split("-")[1]
        return self.symbol[len(self.base) :]


def _spot(symbol: str, tick: str, lot: str, price: str, level: str) -> InstrumentSpec:
    return InstrumentSpec("binance", symbol, tick, lot, price, level, "", 8, 8)


def _usdm(symbol: str, tick: str, lot: str, price: str, level: str) -> InstrumentSpec:
    pd = len(tick.partition(".")[2])
    sd = len(lot.partition(".")[2])
    return InstrumentSpec("binance_usdm", symbol, tick, lot, price, level, "", pd, sd)


def generic_instrument(symbol: str, exchange: str = "") -> InstrumentSpec:
    """Plausible metadata for a symbol the simulator has no preset for.

    ``exchange`` defaults from the spelling (``-SWAP`` is OKX SWAP, else OKX spot).
    """
    if not exchange:
        exchange = "okx_swap" if symbol.endswith("-SWAP") else "okx"
    if exchange == "binance":
        return InstrumentSpec(
            exchange, symbol, "0.01000000", "0.00100000", "100.00", "20", "", 8, 8
        )
    if exchange == "binance_usdm":
        return InstrumentSpec(exchange, symbol, "0.01", "0.001", "100.00", "20", "", 2, 3)
    if exchange == "okx_swap":
        return InstrumentSpec(exchange, symbol, "0.01", "1", "100", "50", "0.1")
    return InstrumentSpec(exchange, symbol, "0.01", "0.0001", "100", "20")


#: The instruments served when the configuration names none (as in ``conf/exchange``).
DEFAULT_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    _spot("BTCUSDT", "0.01000000", "0.00001000", "64250.00", "0.4"),
    _spot("ETHUSDT", "0.01000000", "0.00010000", "3350.00", "6"),
    _usdm("BTCUSDT", "0.10", "0.001", "64250.0", "2"),
    _usdm("ETHUSDT", "0.01", "0.001", "3350.00", "30"),
    InstrumentSpec("okx", "BTC-USDT", "0.1", "0.00000001", "64250", "0.3"),
    InstrumentSpec("okx", "ETH-USDT", "0.01", "0.000001", "3350", "5"),
    InstrumentSpec("okx_swap", "BTC-USDT-SWAP", "0.1", "0.01", "64250", "40", "0.01"),
    InstrumentSpec("okx_swap", "ETH-USDT-SWAP", "0.01", "0.01", "3350", "60", "0.1"),
)


@dataclass(frozen=True)
class MarketParams:
    """Microstructure of the synthetic market (one set for every instrument).

    Parameters
    ----------
    volatility_bps
        Standard deviation of the fair price over one second, in basis points.
    event_rate
        Mean order-book events per second per instrument (Poisson).
    depth_levels
        Populated price levels per side the generator keeps near the touch.
    max_levels
        Hard bound of levels per side; the farthest are deleted beyond it.
    fill_ratio
        Share of ticks within the depth band that hold a level when the book is built.
    trade_prob, cancel_prob
        Share of events that are market orders / cancels (the rest are limit adds).
    trade_size
        Mean market-order size in multiples of ``InstrumentSpec.level_size``
        (exponential, so some orders sweep several levels).
    depth_slope
        Mean level size grows by this factor per ``depth_levels`` ticks from the touch.
    """

    volatility_bps: float = 2.0
    event_rate: float = 200.0
    depth_levels: int = 60
    max_levels: int = 200
    fill_ratio: float = 0.7
    trade_prob: float = 0.12
    cancel_prob: float = 0.4
    trade_size: float = 0.8
    depth_slope: float = 2.0

    def __post_init__(self) -> None:
        if self.volatility_bps < 0 or self.event_rate < 0:
            raise ValueError("volatility_bps and event_rate must be >= 0")
        if not 1 <= self.depth_levels <= self.max_levels:
            raise ValueError(
                f"need 1 <= depth_levels <= max_levels, were {self.depth_levels}, {self.max_levels}"
            )
        if not 0 < self.fill_ratio <= 1:
            raise ValueError(f"fill_ratio must be in (0, 1], was {self.fill_ratio}")
        if self.trade_prob < 0 or self.cancel_prob < 0 or self.trade_prob + self.cancel_prob > 1:
            raise ValueError("trade_prob and cancel_prob must be >= 0 and sum to <= 1")
        if self.trade_size <= 0:
            raise ValueError(f"trade_size must be > 0, was {self.trade_size}")


@dataclass(frozen=True)
class Faults:
    """Faults injected into the simulator's traffic (all off by default).

    Probabilities are per market-data frame and per connection (acks, errors and pongs
    are never faulted), drawn from a generator seeded by the simulator seed and the
    connection number, so a run is reproducible.

    Parameters
    ----------
    drop, duplicate, reorder
        Probability that a data frame is not sent, sent twice, or held and sent after
        the next one (adjacent swap).
    corrupt_checksum
        Probability that an OKX book frame carries a wrong ``checksum``.
    stall, stall_after
        Probability per frame (or after this many frames, ``0`` = never) that a
        connection goes silent without closing for ``stall_seconds``: no data, no
        pings, no pongs (frames due meanwhile are lost).
    stall_seconds
        Length of a stall.
    close, close_after
        Probability per frame (or after this many frames) of an abrupt close (TCP
        drop, no close frame).
    slow_consumer_bytes
        Disconnect a client whose unsent data exceeds this many bytes (``0`` = never),
        as venues drop consumers that do not read.
    rest_429, rest_418, rest_5xx
        Probability that a REST request is answered 429 / 418 (with ``Retry-After``) /
        503.
    retry_after
        Seconds in the ``Retry-After`` header of 429 and 418 answers.
    stale_snapshot
        Probability that a depth snapshot comes from ``stale_snapshot_ms`` ago, older
        than the stream a client is buffering.
    stale_snapshot_ms
        Age of a stale snapshot.
    exchanges
        Exchanges the faults apply to (empty = all).
    """

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt_checksum: float = 0.0
    stall: float = 0.0
    stall_after: int = 0
    stall_seconds: float = 5.0
    close: float = 0.0
    close_after: int = 0
    slow_consumer_bytes: int = 0
    rest_429: float = 0.0
    rest_418: float = 0.0
    rest_5xx: float = 0.0
    retry_after: int = 1
    stale_snapshot: float = 0.0
    stale_snapshot_ms: int = 1000
    exchanges: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and f.name not in ("stall_seconds",) and not 0 <= value <= 1:
                raise ValueError(f"fault {f.name} is a probability in [0, 1], was {value}")
            if f.type in ("int", "float") and value < 0:
                raise ValueError(f"fault {f.name} must be >= 0, was {value}")
        unknown = set(self.exchanges) - set(EXCHANGES)
        if unknown:
            raise ValueError(f"fault exchanges must be among {EXCHANGES}, were {sorted(unknown)}")

    def applies_to(self, exchange: str) -> bool:
        """Whether these faults act on ``exchange``."""
        return not self.exchanges or exchange in self.exchanges

    @property
    def any_ws(self) -> bool:
        """Whether any WebSocket fault is on."""
        return bool(
            self.drop
            or self.duplicate
            or self.reorder
            or self.corrupt_checksum
            or self.stall
            or self.stall_after
            or self.close
            or self.close_after
            or self.slow_consumer_bytes
        )


def parse_fault(word: str, faults: Faults) -> Faults:
    """Return ``faults`` with one ``name=value`` word applied.

    Parameters
    ----------
    word
        ``drop=0.01``, ``close_after=500``, ``exchanges=okx,binance``.
    faults
        The faults so far.

    Raises
    ------
    ValueError
        The name is not a :class:`Faults` field or the value does not fit it.
    """
    name, sep, text = word.partition("=")
    types = {f.name: f.type for f in dataclasses.fields(Faults)}
    if not sep or name not in types:
        raise ValueError(f"fault must be NAME=VALUE with NAME in {sorted(types)}, was {word!r}")
    kind = types[name]
    value: Any
    try:
        if kind == "int":
            value = int(text)
        elif kind == "float":
            value = float(text)
        else:
            value = tuple(x for x in text.split(",") if x)
    except ValueError:
        raise ValueError(f"fault {name} needs a {kind} value, was {text!r}") from None
    return dataclasses.replace(faults, **{name: value})


@dataclass(frozen=True)
class ReplayConfig:
    """Replay of recorded Binance captures instead of the synthetic market.

    Parameters
    ----------
    paths
        Capture files of one session (e.g. an hftbacktest day and the next), merged by
        receive time. Their market (spot / usdm) picks the exchange served.
    speed
        1.0 replays at the recorded pace, 10.0 ten times faster, 0 as fast as possible.
    wait_for_subscriber
        Start the clock when the first client subscribes to a recorded stream.
    """

    paths: tuple[str, ...]
    speed: float = 1.0
    wait_for_subscriber: bool = True

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError("replay needs at least one capture file")
        if self.speed < 0:
            raise ValueError(f"replay speed must be >= 0, was {self.speed}")


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator needs.

    Parameters
    ----------
    instruments
        Synthetic instruments (default :data:`DEFAULT_INSTRUMENTS`).
    market
        Microstructure parameters of the synthetic generator.
    seed
        Seed of the generator and of the fault draws.
    host
        Interface to listen on (loopback).
    port_base
        ``0`` = ephemeral ports; otherwise six consecutive ports from it: Binance WS,
        Binance REST, USD-M WS, USD-M REST, OKX WS, OKX REST.
    step_ms
        Engine step (the real-time channels' granularity).
    faults
        Faults to inject.
    replay
        Replay a recorded capture on its exchange instead of the synthetic market.
    binance_ping_interval, binance_pong_timeout
        Spot server pings (20 s / 60 s on the venue).
    usdm_ping_interval, usdm_pong_timeout
        USD-M server pings (180 s / 600 s on the venue).
    binance_max_incoming
        Incoming messages per second per connection before a disconnect (spot 5, USD-M
        10 on the venue; the USD-M limit is twice this). ``0`` disables the check.
    max_connection_age
        Seconds before the server closes a connection (Binance: 24 h).
    okx_idle_timeout
        Seconds without any traffic after which OKX closes a connection (code 4004).
    okx_checksum
        Send the legacy CRC32 in OKX book frames (``False`` sends 0, as OKX does now).
    okx_heartbeat_s
        Seconds without book change after which OKX ``books`` sends an empty update.
    """

    instruments: tuple[InstrumentSpec, ...] = DEFAULT_INSTRUMENTS
    market: MarketParams = field(default_factory=MarketParams)
    seed: int = 1
    host: str = "127.0.0.1"
    port_base: int = 0
    step_ms: int = 10
    faults: Faults = field(default_factory=Faults)
    replay: ReplayConfig | None = None
    binance_ping_interval: float = 20.0
    binance_pong_timeout: float = 60.0
    usdm_ping_interval: float = 180.0
    usdm_pong_timeout: float = 600.0
    binance_max_incoming: int = 5
    max_connection_age: float = 86400.0
    okx_idle_timeout: float = 30.0
    okx_checksum: bool = True
    okx_heartbeat_s: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.step_ms <= 1000:
            raise ValueError(f"step_ms must be within 1..1000, was {self.step_ms}")
        if self.port_base and not 1024 <= self.port_base <= 65530:
            raise ValueError(f"port_base must be 0 or within 1024..65530, was {self.port_base}")
        seen: set[tuple[str, str]] = set()
        for spec in self.instruments:
            key = (spec.exchange, spec.symbol)
            if key in seen:
                raise ValueError(f"instrument {spec.exchange} {spec.symbol} is listed twice")
            seen.add(key)
