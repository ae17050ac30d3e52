"""Synthetic market: a true L2 book per instrument driven by a seeded event generator.

The truth is an :class:`ext.book.OrderBook` in the instrument's scales (price units of
``10**-price_scale`` with the tick as step, sizes likewise with the lot). Each engine event
is a limit add, a cancel, or a market order that walks the opposite side (deleting the
levels it empties, so the touch moves); the generator then keeps the depth within bounds.
Every level change takes one update id (Binance ``U``/``u``, OKX ``seqId``), so the ids of
an event are ``first_id..last_id``. A fair price follows a random walk with the configured
volatility and the order flow leans towards it, which gives trends, spread changes and
sweeps. Given a seed the sequence of book states is the same whatever the wall clock does.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ext.book import ASK, BID, OrderBook
from orchestrator.sim.config import InstrumentSpec, MarketParams

__all__ = ["BookEvent", "Fill", "MarketModel"]

_EMPTY_SIDES = np.zeros(0, dtype=np.int8)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)


@dataclass(slots=True)
class Fill:
    """A market order's fill at one price level.

    Attributes
    ----------
    price, size
        Scaled price and total size filled at this level.
    taker_buy
        True if the taker bought (Binance ``m`` is then false).
    first_trade_id
        Id of the first underlying trade; ``len(parts)`` consecutive ids follow.
    parts
        Sizes of the underlying trades (one per maker order), summing to ``size``.
    agg_id
        Aggregate trade id (Binance ``aggTrade.a``).
    """

    price: int
    size: int
    taker_buy: bool
    first_trade_id: int
    parts: tuple[int, ...]
    agg_id: int

    @property
    def last_trade_id(self) -> int:
        """Id of the last underlying trade."""
        return self.first_trade_id + len(self.parts) - 1


@dataclass(slots=True)
class BookEvent:
    """One matching-engine event: level changes (absolute sizes) and trades.

    Attributes
    ----------
    first_id, last_id
        Update ids of the first and last change (``last_id - first_id + 1`` changes).
    ts_ms
        Exchange time in milliseconds.
    changes
        ``(side, price, size)`` in scaled units; size 0 deletes the level.
    fills
        Trades of a market order (empty for adds and cancels).
    top_changed
        Whether the best bid or ask (price or size) changed.
    bid, ask
        Best bid and ask ``(price, size)`` after the event.
    """

    first_id: int
    last_id: int
    ts_ms: int
    changes: list[tuple[int, int, int]]
    fills: list[Fill]
    top_changed: bool
    bid: tuple[int, int]
    ask: tuple[int, int]


class MarketModel:
    """The true book of one instrument and the generator that moves it.

    Parameters
    ----------
    spec
        The instrument.
    params
        Microstructure parameters.
    seed
        Seed; combined with the exchange and symbol so instruments differ.
    """

    def __init__(self, spec: InstrumentSpec, params: MarketParams, seed: int) -> None:
        self.spec = spec
        self.params = params
        key = zlib.crc32(f"{spec.exchange}:{spec.symbol}".encode())
        self._rng = random.Random(seed * 1_000_003 + key)
        self._pstep = spec.price_step
        self._sstep = spec.size_step
        self.book = OrderBook(spec.price_scale, spec.size_scale, max(64, 2 * params.max_levels))
        self.update_id = 1_000_000 + self._rng.randrange(1_000_000_000)
        self.trade_id = 10_000_000 + self._rng.randrange(1_000_000)
        self.agg_id = 1_000_000 + self._rng.randrange(1_000_000)
        self.last_ts_ms = 0
        self.events = 0
        self._level_lots = max(1, int(Decimal(spec.level_size) / Decimal(spec.lot_size)))
        mid = Decimal(spec.price) / Decimal(spec.tick_size)
        self._mid0 = int(mid)
        self._fair = float(mid)
        self._sigma = params.volatility_bps * 1e-4 * float(mid)
        self._build()

    # ------------------------------------------------------------------ queries

    @property
    def last_update_id(self) -> int:
        """Update id of the last change applied to the true book."""
        return self.update_id

    def top(self, side: int, n: int) -> tuple[list[int], list[int]]:
        """Best ``n`` levels of ``side`` as ``(prices, sizes)`` lists, best first."""
        prices, sizes = self.book.top_copy(side, n)
        return prices.tolist(), sizes.tolist()

    # ------------------------------------------------------------------ generation

    def step(self, dt_s: float, now_ms: int) -> list[BookEvent]:
        """Advance the market by ``dt_s`` seconds; returns the events, oldest first.

        Parameters
        ----------
        dt_s
            Simulated time of the step (the event count is Poisson with mean
            ``event_rate * dt_s``; the fair price moves by ``volatility * sqrt(dt_s)``).
        now_ms
            Exchange timestamp given to the events.
        """
        if self._sigma > 0:
            self._fair += self._rng.gauss(0.0, self._sigma * math.sqrt(dt_s))
        n = self._poisson(self.params.event_rate * dt_s)
        out: list[BookEvent] = []
        for _ in range(n):
            event = self.next_event(now_ms)
            if event is not None:
                out.append(event)
        return out

    def next_event(self, now_ms: int) -> BookEvent | None:
        """Generate and apply one engine event (``None`` if it changed nothing)."""
        top_before = (self.book.best_bid(), self.book.best_ask())
        changes: list[tuple[int, int, int]] = []
        fills: list[Fill] = []
        r = self._rng.random()
        p = self.params
        if r < p.trade_prob:
            self._market_order(changes, fills)
        elif r < p.trade_prob + p.cancel_prob:
            self._cancel(changes)
        else:
            self._add(changes)
        self._maintain(changes)
        if not changes:
            return None
        first = self.update_id + 1
        self.update_id += len(changes)
        self.book.apply_batch(_EMPTY_SIDES, _EMPTY_I64, _EMPTY_I64, update_id=self.update_id)
        self.last_ts_ms = now_ms
        self.events += 1
        bid, ask = self.book.best_bid(), self.book.best_ask()
        top_changed = top_before != (bid, ask)
        return BookEvent(first, self.update_id, now_ms, changes, fills, top_changed, bid, ask)

    # ------------------------------------------------------------------ internals

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, round(self._rng.gauss(lam, math.sqrt(lam))))
        limit, k, prod = math.exp(-lam), 0, self._rng.random()
        while prod > limit:
            k += 1
            prod *= self._rng.random()
        return k

    def _size(self, distance: int) -> int:
        p = self.params
        mean = self._level_lots * (1.0 + p.depth_slope * max(0, distance) / p.depth_levels)
        return max(1, round(self._rng.gammavariate(2.0, mean / 2.0)))

    def _set(self, changes: list[tuple[int, int, int]], side: int, price: int, size: int) -> None:
        self.book.apply(side, price, size)
        changes.append((side, price, size))

    def _build(self) -> None:
        p = self.params
        band = math.ceil(p.depth_levels / p.fill_ratio)
        bid_t, ask_t = self._mid0, self._mid0 + 1
        bp: list[int] = []
        bs: list[int] = []
        ap: list[int] = []
        asz: list[int] = []
        for d in range(band):
            if d == 0 or self._rng.random() < p.fill_ratio:
                bp.append((bid_t - d) * self._pstep)
                bs.append(self._size(d) * self._sstep)
            if d == 0 or self._rng.random() < p.fill_ratio:
                ap.append((ask_t + d) * self._pstep)
                asz.append(self._size(d) * self._sstep)
        self.book.load_snapshot(
            np.array(bp, dtype=np.int64),
            np.array(bs, dtype=np.int64),
            np.array(ap, dtype=np.int64),
            np.array(asz, dtype=np.int64),
            self.update_id,
        )

    def _buy_pressure(self) -> float:
        """Probability that the next aggressive flow is a buy (leans to the fair price)."""
        bid, ask = self.book.best_bid_price, self.book.best_ask_price
        if self.book.bid_levels == 0 or self.book.ask_levels == 0:
            return 0.5
        mid = (bid + ask) / (2.0 * self._pstep)
        spread = max(1.0, (ask - bid) / self._pstep)
        x = 1.5 * (self._fair - mid) / spread
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))

    def _market_order(self, changes: list[tuple[int, int, int]], fills: list[Fill]) -> None:
        taker_buy = self._rng.random() < self._buy_pressure()
        side = ASK if taker_buy else BID
        prices, sizes = self.top(side, 30)
        if len(prices) < 3:
            self._add(changes)
            return
        mean = self.params.trade_size * self._level_lots * self._sstep
        remaining = max(
            self._sstep, round(self._rng.expovariate(1.0 / mean) / self._sstep) * self._sstep
        )
        # never empty the side: the last two visible levels are never taken whole
        cap = sum(sizes[:-2]) + sizes[-2] - self._sstep
        remaining = min(remaining, cap)
        for price, size in zip(prices, sizes, strict=False):
            if remaining <= 0:
                break
            take = min(remaining, size)
            remaining -= take
            self._set(changes, side, price, size - take)
            fills.append(self._fill(price, take, taker_buy))

    def _fill(self, price: int, size: int, taker_buy: bool) -> Fill:
        lots = size // self._sstep
        n = min(lots, self._rng.randint(1, 3))
        cuts = sorted(self._rng.sample(range(1, lots), n - 1)) if n > 1 else []
        bounds = [0, *cuts, lots]
        parts = tuple((bounds[i + 1] - bounds[i]) * self._sstep for i in range(n))
        fill = Fill(price, size, taker_buy, self.trade_id + 1, parts, self.agg_id + 1)
        self.trade_id += n
        self.agg_id += 1
        return fill

    def _add(self, changes: list[tuple[int, int, int]]) -> None:
        bid_side = self._rng.random() < self._buy_pressure()
        side = BID if bid_side else ASK
        book = self.book
        if book.bid_levels == 0 or book.ask_levels == 0:
            return
        bid_t = book.best_bid_price // self._pstep
        ask_t = book.best_ask_price // self._pstep
        spread = ask_t - bid_t
        if spread > 1 and self._rng.random() < 0.5:
            k = self._rng.randint(1, spread - 1)
            tick, distance = (bid_t + k, 0) if bid_side else (ask_t - k, 0)
        else:
            distance = int(self._rng.expovariate(0.25))
            tick = bid_t - distance if bid_side else ask_t + distance
        price = tick * self._pstep
        if price <= 0:
            return
        old = self._size_at(side, price)
        self._set(changes, side, price, old + self._size(distance) * self._sstep)

    def _size_at(self, side: int, price: int) -> int:
        prices, sizes = self.top(side, 40)
        for p, s in zip(prices, sizes, strict=True):
            if p == price:
                return s
        return 0

    def _cancel(self, changes: list[tuple[int, int, int]]) -> None:
        side = BID if self._rng.random() < 0.5 else ASK
        prices, sizes = self.top(side, 15)
        if len(prices) < 3:
            self._add(changes)
            return
        i = min(len(prices) - 1, int(self._rng.expovariate(0.3)))
        price, size = prices[i], sizes[i]
        lots = size // self._sstep
        if lots <= 1 or self._rng.random() < 0.45:
            new = 0 if i > 0 or len(prices) > 3 else size
        else:
            new = self._rng.randint(1, lots - 1) * self._sstep
        if new != size:
            self._set(changes, side, price, new)

    def _maintain(self, changes: list[tuple[int, int, int]]) -> None:
        p = self.params
        for side in (BID, ASK):
            n = self.book.level_count(side)
            if n > p.max_levels:
                prices, _ = self.book.top_copy(side, n)
                for price in prices[p.max_levels :].tolist():
                    self._set(changes, side, price, 0)
            elif n < p.depth_levels and n > 0:
                prices, _ = self.book.top_copy(side, n)
                worst = int(prices[-1])
                gap = (1 + int(self._rng.expovariate(1.0))) * self._pstep
                price = worst - gap if side == BID else worst + gap
                if price > 0:
                    best = self.book.best_bid_price if side == BID else self.book.best_ask_price
                    distance = abs(price - best) // self._pstep
                    self._set(changes, side, price, self._size(distance) * self._sstep)
