"""Out-of-sample evaluation of the slippage model on recorded captures.

``python -m orchestrator.signals slippage-eval CAPTURE...`` replays one capture session
(files merged by local receive time, fed to :class:`ext.binance.BinanceFeed` /
:class:`ext.okx.OkxFeed` as ``orchestrator.capture verify`` does) and, for every book,
places virtual market orders of each requested size on both sides at jittered decision
times ``t`` (one every ``sample_every_ms`` on average). For each order it records

* the **walk at t**: the slippage, in bps of the decision-time mid, of walking the book as
  it stands at ``t`` (``OrderBook.fill_price``); this is the plain predictor;
* the **features** at ``t`` (:data:`FEATURE_NAMES`), computed here in numpy/Python from the
  book, the ``bookTicker`` stream and the trades;
* the **realized slippage**: walking the book as it stands at ``t + latency`` (after the
  last frame received at or before that time), again in bps of the mid at ``t``.

The model (:class:`ext.predict.SlippageModel`) predicts the residual ``realized - walk``;
its slippage prediction is ``walk + residual``. It is fitted on the earlier part of each
instrument's decisions (time split, with an embargo of one latency so no training order
is realized inside the test period) by iteratively reweighted least squares for the
absolute error, and both predictors are scored on the later part. Every price and time is
the local receive clock of the capture; no exchange timestamp is used.

:class:`SlippageModelStore` keeps one saved model per instrument in a directory.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ext.book import ASK, BID, OrderBook
from ext.feed import SNAPSHOT, TICKER, UPDATE
from ext.predict import SlippageModel
from orchestrator.capture.records import CaptureFormatError
from orchestrator.capture.verify import FeedType, ReplaySession, merged_frames, okx_market
from orchestrator.errors import SlipstreamError

__all__ = [
    "FEATURE_NAMES",
    "EvalConfig",
    "OrderSize",
    "SlippageEvalError",
    "SlippageModelStore",
    "evaluate_files",
    "parse_sizes",
]

#: Model features, in column order. ``s`` is +1 for a buy, -1 for a sell; "touch" is the
#: best price of the side the order takes (ask for a buy), "far" the other side.
FEATURE_NAMES: tuple[str, ...] = (
    "walk_bps",  # slippage of the book walk at t vs mid(t), bps
    "spread_bps",  # best ask - best bid, bps of mid
    "depth_ratio",  # size / size within depth_bps of the mid on the taken side
    "vol_bps",  # EWMA volatility of mid log returns, bps over one latency
    "ofi_signed",  # s * decayed order-flow imbalance at the top / mean top size
    "tfi_signed",  # s * (buy - sell) / (buy + sell) taker volume, decayed
    "trade_rate",  # trades per second, decayed
    "size_rel",  # size / mean top-of-book size
    "ticker_touch_bps",  # s * (bookTicker touch - book touch), bps of mid
    "ticker_far_bps",  # s * (bookTicker far price - book far price), bps of mid
    "imbalance_signed",  # s * (bid size - ask size) / (bid size + ask size) at the top
    "ticker_walk_bps",  # walk of the book with its top replaced by the bookTicker, - walk_bps
    "mid_change_bps",  # s * (mid(t) - mid at the previous decision), bps of mid
    "microprice_bps",  # s * (microprice - mid of the freshest top), bps of mid
    "ticker_mid_bps",  # s * (mid of the freshest top - book mid), bps of mid
)
_NF = len(FEATURE_NAMES)

#: Ridge candidates, as multiples of the number of training rows (features are O(1)).
RIDGE_GRID: tuple[float, ...] = (1e-6, 1e-4, 1e-2, 1.0)

#: Shrinkage candidates: the prediction is ``walk + alpha * correction``.
SHRINKAGE_GRID: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)

#: Feature sets the validation chooses from (the others are zeroed, so their
#: coefficients are exactly 0): all, or only what the freshest top of book says.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "all": FEATURE_NAMES,
    "top": (
        "ticker_touch_bps",
        "ticker_far_bps",
        "ticker_walk_bps",
        "microprice_bps",
        "ticker_mid_bps",
    ),
}

_TICKER_FIELD = re.compile(rb'"([sbBaA])"\s*:\s*"([^"]*)"')
_TICKER_ID = re.compile(rb'"u"\s*:\s*(\d+)')


class SlippageEvalError(SlipstreamError):
    """The captures cannot be evaluated (no clock, no order book, no orders)."""


@dataclass(frozen=True)
class OrderSize:
    """A virtual order size: base-asset quantity, or a multiple of the mean top size.

    Attributes
    ----------
    value
        Quantity (``relative`` false) or multiple (``relative`` true), ``> 0``.
    relative
        Size is ``value`` times the running mean of the best-level size (written ``2x``).
    """

    value: float
    relative: bool = False

    @property
    def label(self) -> str:
        """The size as written on the command line (``0.5`` or ``2x``)."""
        return f"{self.value:g}x" if self.relative else f"{self.value:g}"


def parse_sizes(text: str) -> tuple[OrderSize, ...]:
    """Parse ``S1,S2,...``: numbers (base quantity) or ``<k>x`` (multiples of top size).

    Raises
    ------
    ValueError
        Empty list, a malformed or non-positive size, or a repeated size.
    """
    sizes: list[OrderSize] = []
    for raw in text.split(","):
        item = raw.strip()
        relative = item.lower().endswith("x")
        number = item[:-1] if relative else item
        try:
            value = float(number)
        except ValueError:
            raise ValueError(f"size must be a number or '<k>x', was {item!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"size must be finite and > 0, was {item!r}")
        sizes.append(OrderSize(value, relative))
    if len({s.label for s in sizes}) != len(sizes):
        raise ValueError(f"sizes must be distinct, were {text!r}")
    return tuple(sizes)


@dataclass(frozen=True)
class EvalConfig:
    """Parameters of one evaluation run.

    Attributes
    ----------
    latency_ms
        Decision-to-execution latency: the order fills against the book at ``t + latency``.
    sizes
        Order sizes; every one is placed on both sides at every decision time.
    train_fraction
        Fraction of each instrument's decision times (the earliest) used for training.
    seed
        Seed of the decision-time jitter.
    sample_every_ms
        Mean spacing of decision times; each falls uniformly inside its own slot of this
        length, so decisions do not lock onto the venue's update cadence.
    fee_bps
        Taker fee added to the realized and to both predicted costs (errors unchanged).
    warmup_ms
        No decision before this long after a book's first snapshot (features warm up).
    flow_halflife_ms
        Half-life of the order-flow, trade-flow and trade-rate accumulators.
    vol_halflife_ms
        Half-life of the EWMA of squared mid returns.
    depth_bps
        Distance from the mid of the visible depth in ``depth_ratio``.
    ridge
        Smallest ridge penalty of the model.
    irls_iterations
        Reweighting passes of the least-absolute-error fit (1 = ordinary least squares).
    validation_folds
        Time-ordered validation folds inside the training part (model selection).
    validation_start
        Fraction of the training decisions before the first validation fold.
    min_fold_gain
        A candidate model must cut the walk's MAE by at least this fraction in *every*
        validation fold, else the walk is kept (0 = any improvement).
    use_book_ticker
        Use ``bookTicker`` frames (fresher top of book) for the features; when false they
        are ignored and the ticker features are 0 (an ablation).
    """

    latency_ms: float
    sizes: tuple[OrderSize, ...]
    train_fraction: float = 0.6
    seed: int = 0
    sample_every_ms: float = 250.0
    fee_bps: float = 0.0
    warmup_ms: float = 2000.0
    flow_halflife_ms: float = 1000.0
    vol_halflife_ms: float = 10000.0
    depth_bps: float = 10.0
    ridge: float = 1e-3
    irls_iterations: int = 10
    validation_folds: int = 3
    validation_start: float = 0.4
    min_fold_gain: float = 0.005
    use_book_ticker: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latency_ms) and self.latency_ms >= 0):
            raise ValueError(f"latency_ms must be >= 0, was {self.latency_ms}")
        if not self.sizes:
            raise ValueError("sizes must not be empty")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), was {self.train_fraction}")
        if not (math.isfinite(self.sample_every_ms) and self.sample_every_ms > 0):
            raise ValueError(f"sample_every_ms must be > 0, was {self.sample_every_ms}")
        if not math.isfinite(self.fee_bps):
            raise ValueError(f"fee_bps must be finite, was {self.fee_bps}")
        if self.irls_iterations < 1:
            raise ValueError(f"irls_iterations must be >= 1, was {self.irls_iterations}")
        if self.validation_folds < 1:
            raise ValueError(f"validation_folds must be >= 1, was {self.validation_folds}")
        if not 0.0 < self.validation_start < 1.0:
            raise ValueError(f"validation_start must be in (0, 1), was {self.validation_start}")
        if not 0.0 <= self.min_fold_gain < 1.0:
            raise ValueError(f"min_fold_gain must be in [0, 1), was {self.min_fold_gain}")


# ---------------------------------------------------------------------------- replay


# ---------------------------------------------------------------------------- features


class _Decayed:
    """Exponentially decayed sum: ``value(t) = sum_i v_i * 2 ** (-(t - t_i) / halflife)``."""

    __slots__ = ("rate", "t_ns", "value")

    def __init__(self, halflife_ms: float) -> None:
        self.rate = math.log(2.0) / (halflife_ms * 1e6)
        self.value = 0.0
        self.t_ns = 0

    def at(self, t_ns: int) -> float:
        """Decay to ``t_ns`` (never backwards) and return the value."""
        if t_ns > self.t_ns:
            self.value *= math.exp(-(t_ns - self.t_ns) * self.rate)
            self.t_ns = t_ns
        return self.value

    def add(self, t_ns: int, v: float) -> None:
        """Add ``v`` observed at ``t_ns``."""
        self.at(t_ns)
        self.value += v

    def add_many(self, t_ns: int, times: npt.NDArray[np.int64], v: npt.NDArray[np.float64]) -> None:
        """Add values observed at ``times`` (all ``<= t_ns``), decayed to ``t_ns``."""
        self.at(t_ns)
        if len(v):
            age = np.maximum(t_ns - times, 0).astype(np.float64)
            self.value += float(np.sum(v * np.exp(-age * self.rate)))


@dataclass
class _Pending:
    """Orders decided at ``t_ns`` waiting for the book at ``t_ns + latency``."""

    t_ns: int
    mid: float  # decision-time mid, price units
    sides: list[int]  # +1 buy, -1 sell
    size_index: list[int]
    qty: list[float]  # base quantity
    walk_bps: list[float]
    features: list[list[float]]


@dataclass
class _Samples:
    t_ns: list[int] = field(default_factory=list)
    side: list[int] = field(default_factory=list)
    size_index: list[int] = field(default_factory=list)
    qty: list[float] = field(default_factory=list)
    walk_bps: list[float] = field(default_factory=list)
    realized_bps: list[float] = field(default_factory=list)
    features: list[list[float]] = field(default_factory=list)


class _Tracker:
    """Feature state, decisions and realizations of one book."""

    def __init__(
        self, venue: str, feed: FeedType, symbol: str, channel: str, cfg: EvalConfig
    ) -> None:
        self.venue = venue
        self.feed = feed
        self.symbol = symbol
        self.channel = channel
        self.cfg = cfg
        book = feed.book(symbol, channel)
        assert book is not None
        self.book: OrderBook = book
        market = okx_market(symbol) if feed.venue == "okx" else feed.market
        self.instrument = f"{venue}:{market}:{symbol}:{channel}"
        self.market = market
        self.ticker: tuple[float, float, float, float] | None = None  # bid, bid qty, ask, ask qty
        self.ticker_id = -1  # the bookTicker's book update id
        self.prev_top: tuple[float, float, float, float] | None = None
        self.ofi = _Decayed(cfg.flow_halflife_ms)
        self.buy = _Decayed(cfg.flow_halflife_ms)
        self.sell = _Decayed(cfg.flow_halflife_ms)
        self.count = _Decayed(cfg.flow_halflife_ms)
        self.vol_rate = math.log(2.0) / (cfg.vol_halflife_ms * 1e6)
        self.ewvar = -1.0  # per-second variance of mid log returns (bps^2 / s); < 0 unset
        self.last_mid = math.nan
        self.last_mid_ns = 0
        self.mean_top = -1.0  # running mean of best-level size (base units); < 0 unset
        self.samples = _Samples()
        self.partial_fills = 0
        self.out_of_sync = 0

    # ---------------------------------------------------------------- streaming input

    def on_top(self, t_ns: int, top: tuple[float, float, float, float]) -> None:
        """Order-flow imbalance increment of a new top of book (Cont, Kukanov, Stoikov)."""
        prev = self.prev_top
        self.prev_top = top
        if prev is None:
            return
        pb, qb, pa, qa = top
        ppb, pqb, ppa, pqa = prev
        e = 0.0
        if pb >= ppb:
            e += qb
        if pb <= ppb:
            e -= pqb
        if pa <= ppa:
            e -= qa
        if pa >= ppa:
            e += pqa
        self.ofi.add(t_ns, e)

    def on_ticker(
        self, t_ns: int, update_id: int, ticker: tuple[float, float, float, float]
    ) -> None:
        """Take a bookTicker update (best bid/ask and sizes, price units; book update id)."""
        self.ticker = ticker
        self.ticker_id = update_id
        self.on_top(t_ns, ticker)

    def on_book_change(self, t_ns: int) -> None:
        """Note a book change; without a bookTicker stream the book top drives the OFI."""
        if self.ticker is not None:
            return
        top = self._book_top()
        if top is not None and top != self.prev_top:
            self.on_top(t_ns, top)

    def on_trades(
        self,
        t_ns: int,
        times: npt.NDArray[np.int64],
        sides: npt.NDArray[np.int8],
        qty: npt.NDArray[np.float64],
    ) -> None:
        """Trades received up to ``t_ns`` (taker side +1 buy / -1 sell)."""
        self.buy.add_many(t_ns, times, np.where(sides > 0, qty, 0.0))
        self.sell.add_many(t_ns, times, np.where(sides < 0, qty, 0.0))
        self.count.add_many(t_ns, times, np.ones(len(times)))

    # ---------------------------------------------------------------- decisions

    def _book_top(self) -> tuple[float, float, float, float] | None:
        book = self.book
        if book.bid_levels == 0 or book.ask_levels == 0:
            return None
        ps = 10.0**book.price_scale
        ss = 10.0**book.size_scale
        return (
            book.best_bid_price / ps,
            book.best_bid_size / ss,
            book.best_ask_price / ps,
            book.best_ask_size / ss,
        )

    def _usable(self) -> bool:
        book = self.book
        return (
            book.in_sync and book.bid_levels > 0 and book.ask_levels > 0 and not book.is_crossed()
        )

    def _walk(self, side: int, qty: float) -> float | None:
        """Average fill price (price units) of a market order of ``qty``; None if too thin."""
        book = self.book
        lots = round(qty * 10.0**book.size_scale)
        if lots <= 0:
            return None
        px, filled = book.fill_price(ASK if side > 0 else BID, lots)
        if filled < lots:
            self.partial_fills += 1
            return None
        return float(px) / 10.0**book.price_scale

    def _patched_walk(self, side: int, qty: float, tk: tuple[float, float, float, float]) -> float:
        """Average fill price of ``qty`` on the book whose top is replaced by the bookTicker.

        Levels better than the ticker's price are dropped (already gone), the ticker's
        level gets the ticker's size (inserted if absent), deeper levels are kept.
        """
        book = self.book
        ps, ss = 10.0**book.price_scale, 10.0**book.size_scale
        n = 8
        while True:
            prices, sizes = book.top_copy(ASK if side > 0 else BID, n)
            if sizes.sum() / ss >= qty or len(prices) < n:
                break
            n *= 4
        p = prices / ps
        q = sizes / ss
        tk_px, tk_q = (tk[2], tk[3]) if side > 0 else (tk[0], tk[1])
        deeper = p > tk_px if side > 0 else p < tk_px
        p = np.concatenate(([tk_px], p[deeper]))
        q = np.concatenate(([tk_q], q[deeper]))
        cum = np.cumsum(q)
        take = np.minimum(q, np.maximum(qty - (cum - q), 0.0))
        filled = float(take.sum())
        if filled <= 0:
            return math.nan
        return float(np.dot(take, p)) / filled

    def decide(self, t_ns: int) -> _Pending | None:
        """Place the virtual orders at ``t_ns``: walk, features; None if the book is unusable."""
        if not self._usable():
            self.out_of_sync += 1
            return None
        cfg = self.cfg
        book = self.book
        top = self._book_top()
        assert top is not None
        bid, bid_q, ask, ask_q = top
        mid = 0.5 * (bid + ask)
        bps = 1e4 / mid
        # volatility: EWMA of squared log returns per second
        if self.last_mid == self.last_mid and t_ns > self.last_mid_ns:
            dt = (t_ns - self.last_mid_ns) * 1e-9
            r2 = (1e4 * math.log(mid / self.last_mid)) ** 2 / dt
            if self.ewvar < 0:
                self.ewvar = r2
            else:
                a = 1.0 - math.exp(-(t_ns - self.last_mid_ns) * self.vol_rate)
                self.ewvar += a * (r2 - self.ewvar)
        mid_change = (mid - self.last_mid) * bps if self.last_mid == self.last_mid else 0.0
        self.last_mid, self.last_mid_ns = mid, t_ns
        vol = math.sqrt(max(self.ewvar, 0.0) * cfg.latency_ms * 1e-3)
        top_size = 0.5 * (bid_q + ask_q)
        self.mean_top = top_size if self.mean_top < 0 else 0.98 * self.mean_top + 0.02 * top_size
        mean_top = max(self.mean_top, 1e-300)
        ofi = self.ofi.at(t_ns) / mean_top
        buy, sell = self.buy.at(t_ns), self.sell.at(t_ns)
        tfi = (buy - sell) / (buy + sell) if buy + sell > 0 else 0.0
        rate = self.count.at(t_ns) * self.count.rate * 1e9  # decayed count / mean life
        # the bookTicker counts only when it is newer than the depth book
        fresh = self.ticker is not None and self.ticker_id > book.last_update_id
        tk = self.ticker if fresh and self.ticker is not None else top
        imb = (tk[1] - tk[3]) / (tk[1] + tk[3]) if tk[1] + tk[3] > 0 else 0.0
        tk_mid = 0.5 * (tk[0] + tk[2])
        # microprice: each side's price weighted by the other side's size
        micro = (
            ((tk[0] * tk[3] + tk[2] * tk[1]) / (tk[1] + tk[3]) - tk_mid) * bps
            if tk[1] + tk[3] > 0
            else 0.0
        )
        tk_mid_bps = (tk_mid - mid) * bps
        ss = 10.0**book.size_scale
        distance = max(int(cfg.depth_bps * 1e-4 * mid * 10.0**book.price_scale), 0)
        depth = {
            1: book.depth_within(ASK, distance) / ss,
            -1: book.depth_within(BID, distance) / ss,
        }
        spread_bps = (ask - bid) * bps
        pending = _Pending(t_ns, mid, [], [], [], [], [])
        for k, size in enumerate(cfg.sizes):
            qty = size.value * self.mean_top if size.relative else size.value
            for s in (1, -1):
                px = self._walk(s, qty)
                if px is None:
                    continue
                touch, far = (ask, bid) if s > 0 else (bid, ask)
                tk_touch, tk_far = (tk[2], tk[0]) if s > 0 else (tk[0], tk[2])
                walk_bps = s * (px - mid) * bps
                patched = self._patched_walk(s, qty, tk) if fresh else px
                pending.sides.append(s)
                pending.size_index.append(k)
                pending.qty.append(qty)
                pending.walk_bps.append(walk_bps)
                pending.features.append(
                    [
                        walk_bps,
                        spread_bps,
                        min(qty / depth[s], 10.0) if depth[s] > 0 else 10.0,
                        vol,
                        s * ofi,
                        s * tfi,
                        rate,
                        qty / mean_top,
                        s * (tk_touch - touch) * bps,
                        s * (tk_far - far) * bps,
                        s * imb,
                        s * (patched - px) * bps,
                        s * mid_change,
                        s * micro,
                        s * tk_mid_bps,
                    ]
                )
        return pending if pending.sides else None

    def realize(self, pending: _Pending) -> None:
        """Walk the book as it stands now (``t + latency``) for each pending order."""
        if not self._usable():
            self.out_of_sync += len(pending.sides)
            return
        bps = 1e4 / pending.mid
        out = self.samples
        for i, s in enumerate(pending.sides):
            px = self._walk(s, pending.qty[i])
            if px is None:
                continue
            out.t_ns.append(pending.t_ns)
            out.side.append(s)
            out.size_index.append(pending.size_index[i])
            out.qty.append(pending.qty[i])
            out.walk_bps.append(pending.walk_bps[i])
            out.realized_bps.append(s * (px - pending.mid) * bps)
            out.features.append(pending.features[i])


def _parse_ticker(
    payload: bytes,
) -> tuple[str, int, tuple[float, float, float, float]] | None:
    fields = dict(_TICKER_FIELD.findall(payload))
    uid = _TICKER_ID.search(payload)
    try:
        return (
            fields[b"s"].decode().upper(),
            int(uid.group(1)) if uid else -1,
            (
                float(fields[b"b"]),
                float(fields[b"B"]),
                float(fields[b"a"]),
                float(fields[b"A"]),
            ),
        )
    except (KeyError, ValueError):
        return None


def _replay(files: Sequence[Path], cfg: EvalConfig) -> list[_Tracker]:
    """Replay the session, deciding and realizing virtual orders as the clock passes."""
    replay = ReplaySession()
    rng = np.random.default_rng(cfg.seed)
    trackers: dict[tuple[int, str, str], _Tracker] = {}  # (id(feed), symbol, channel)
    by_feed_symbol: dict[tuple[int, str], list[_Tracker]] = {}
    events: list[tuple[int, int, _Tracker, _Pending | None]] = []
    seq = 0
    every_ns = int(cfg.sample_every_ms * 1e6)
    latency_ns = round(cfg.latency_ms * 1e6)
    warmup_ns = int(cfg.warmup_ms * 1e6)
    slot_start: dict[int, int] = {}  # id(tracker) -> start of its next decision slot
    last_ns = 0
    saw_clock = False

    def schedule_decision(tr: _Tracker, start: int) -> None:
        nonlocal seq
        slot_start[id(tr)] = start + every_ns
        t = start + int(rng.integers(0, every_ns))
        heapq.heappush(events, (t, seq, tr, None))
        seq += 1

    def drain_trades() -> None:
        for feed in replay.feeds.values():
            trades = feed.drain_trades()
            if not len(trades):
                continue
            names = feed.instruments()
            for inst in np.unique(trades["inst"]).tolist():
                targets = by_feed_symbol.get((id(feed), names[inst][0]))
                if not targets:
                    continue
                sel = trades[trades["inst"] == inst]
                qty = sel["size"] / 10.0 ** sel["size_scale"].astype(np.float64)
                for tr in targets:
                    tr.on_trades(last_ns, sel["recv_ns"], sel["side"], qty)

    def run_events(until_ns: int) -> None:
        nonlocal seq
        drained = False
        while events and events[0][0] < until_ns:
            t, _, tr, pending = heapq.heappop(events)
            if not drained:
                drain_trades()
                drained = True
            if pending is not None:
                tr.realize(pending)
                continue
            decided = tr.decide(t)
            if decided is not None:
                heapq.heappush(events, (t + latency_ns, seq, tr, decided))
                seq += 1
            schedule_decision(tr, slot_start[id(tr)])

    def add_trackers(venue: str, feed: FeedType, t_ns: int) -> None:
        for symbol, channel, kind in feed.instruments():
            key = (id(feed), symbol, channel)
            if kind != "book" or key in trackers or feed.book(symbol, channel) is None:
                continue
            tr = _Tracker(venue, feed, symbol, channel, cfg)
            trackers[key] = tr
            by_feed_symbol.setdefault((id(feed), symbol), []).append(tr)
            schedule_decision(tr, t_ns + warmup_ns)

    for file_index, frame in merged_frames(files):
        r = frame.recv_ns
        if r > 0:
            saw_clock = True
        if r < last_ns:
            r = last_ns  # a file whose clock steps back is applied in arrival order
        run_events(r)
        last_ns = r
        for venue, feed, result in replay.on_frame(file_index, frame):
            if result == SNAPSHOT:
                add_trackers(venue, feed, r)
            elif result == TICKER and feed.venue == "binance" and cfg.use_book_ticker:
                parsed = _parse_ticker(frame.payload)
                if parsed is not None:
                    for tr in by_feed_symbol.get((id(feed), parsed[0]), ()):
                        tr.on_ticker(r, parsed[1], parsed[2])
            if result in (UPDATE, SNAPSHOT):
                for (fid, _, _), tr in trackers.items():
                    if fid == id(feed):
                        tr.on_book_change(r)
    if replay.held:
        raise CaptureFormatError(
            "a depth snapshot names no symbol and its file has no depthUpdate to take it from",
            files[0],
        )
    if not saw_clock:
        raise SlippageEvalError("the captures carry no local receive time to use as the clock")
    run_events(last_ns + 1)  # decisions/realizations up to the last frame; later ones drop
    if not trackers:
        raise SlippageEvalError(
            "no order book in the captures (no depth snapshot was replayed): "
            + ", ".join(str(f) for f in files)
        )
    return list(trackers.values())


# ---------------------------------------------------------------------------- fitting


def _fit(
    model: SlippageModel,
    feats: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    iterations: int,
) -> None:
    """Least-absolute-error fit by iteratively reweighted least squares (1 pass = OLS).

    Weights are ``1 / max(|residual|, delta)`` normalised to mean 1, so the weight sum
    stays ``len(y)`` and the ridge keeps its meaning across passes.
    """
    scale = float(np.median(np.abs(y)))
    delta = max(1e-3 * scale, 1e-6)
    w = np.ones(len(y))
    for _ in range(iterations):
        model.reset()
        model.fit(feats, y, w)
        e = np.abs(y - model.predict_many(feats))
        w = 1.0 / np.maximum(e, delta)
        w /= w.mean()


@dataclass(frozen=True)
class _Choice:
    """The model picked on the training part: feature set, ridge, shrinkage."""

    features: str
    ridge: float
    shrinkage: float


def _masked(feats: npt.NDArray[np.float64], names: Sequence[str]) -> npt.NDArray[np.float64]:
    """``feats`` with every column not in ``names`` set to 0 (its coefficient is then 0)."""
    keep = np.array([n in names for n in FEATURE_NAMES])
    return np.ascontiguousarray(np.where(keep, feats, 0.0))


def _select_model(
    feats: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    t: npt.NDArray[np.int64],
    latency_ns: int,
    cfg: EvalConfig,
) -> _Choice | None:
    """Feature set, ridge and shrinkage chosen on the training part only.

    The training decisions after ``validation_start`` are cut into ``validation_folds``
    consecutive blocks; for each block a model is fitted on everything before it
    (embargoed by one latency) and scored on it. A candidate (feature set x ridge x
    shrinkage ``alpha``, prediction ``alpha * correction``) qualifies only if it cuts the
    walk's MAE (a zero residual) by at least ``min_fold_gain`` in every block; the
    qualifying one with the lowest total absolute error wins. ``None`` (no candidate
    qualifies, or too few rows): the walk is kept.
    """
    decisions = np.unique(t)
    k = cfg.validation_folds
    start = cfg.validation_start
    last = len(decisions) - 1
    at = [min(int((start + (1.0 - start) * f / k) * len(decisions)), last) for f in range(k)]
    cuts = [int(decisions[i]) for i in at] + [int(decisions[-1]) + 1]
    folds = []
    for f in range(k):
        fit_rows = t + latency_ns < cuts[f]
        val_rows = (t >= cuts[f]) & (t < cuts[f + 1])
        if fit_rows.sum() >= 4 * (_NF + 1) and val_rows.any():
            folds.append((fit_rows, val_rows))
    if not folds:
        return None
    walk_err = [float(np.sum(np.abs(y[v]))) for _, v in folds]
    best: _Choice | None = None
    best_err = sum(walk_err)
    for set_name, names in FEATURE_SETS.items():
        x = _masked(feats, names)
        for c in RIDGE_GRID:
            preds = []
            for fit_rows, val_rows in folds:
                model = SlippageModel(_NF, 1.0, max(c * float(fit_rows.sum()), cfg.ridge))
                _fit(model, np.ascontiguousarray(x[fit_rows]), y[fit_rows], cfg.irls_iterations)
                preds.append(model.predict_many(np.ascontiguousarray(x[val_rows])))
            for alpha in SHRINKAGE_GRID:
                err = [
                    float(np.sum(np.abs(y[v] - alpha * p)))
                    for (_, v), p in zip(folds, preds, strict=True)
                ]
                if any(
                    e > (1.0 - cfg.min_fold_gain) * w or e >= w
                    for e, w in zip(err, walk_err, strict=True)
                ):
                    continue
                if sum(err) < best_err:
                    best, best_err = _Choice(set_name, c, alpha), sum(err)
    return best


def _errors(pred: npt.NDArray[np.float64], realized: npt.NDArray[np.float64]) -> dict[str, float]:
    err = pred - realized
    if not len(err):
        return {"mae_bps": math.nan, "p90_abs_err_bps": math.nan, "bias_bps": math.nan}
    return {
        "mae_bps": float(np.mean(np.abs(err))),
        "p90_abs_err_bps": float(np.quantile(np.abs(err), 0.9)),
        "bias_bps": float(np.mean(err)),
    }


def _evaluate(tr: _Tracker, cfg: EvalConfig) -> tuple[dict[str, Any], SlippageModel | None]:
    s = tr.samples
    t = np.asarray(s.t_ns, dtype=np.int64)
    walk = np.asarray(s.walk_bps, dtype=np.float64) + cfg.fee_bps
    realized = np.asarray(s.realized_bps, dtype=np.float64) + cfg.fee_bps
    feats = np.asarray(s.features, dtype=np.float64).reshape(len(t), _NF)
    size_index = np.asarray(s.size_index, dtype=np.int64)
    record: dict[str, Any] = {
        "instrument": tr.instrument,
        "venue": tr.venue,
        "market": tr.market,
        "symbol": tr.symbol,
        "channel": tr.channel,
        "orders": len(t),
        "orders_too_thin": tr.partial_fills,
        "orders_book_unusable": tr.out_of_sync,
    }
    decisions = np.unique(t)
    if len(decisions) < 4:
        record.update(n_train=0, n_test=0, model_fitted=False)
        return record, None
    split = int(decisions[int(cfg.train_fraction * len(decisions))])
    latency_ns = round(cfg.latency_ms * 1e6)
    train = t + latency_ns < split  # embargo: realized before the test period starts
    test = t >= split
    resid = realized - walk
    choice: _Choice | None = None
    fitted = int(train.sum()) >= 4 * (_NF + 1)
    if fitted:
        choice = _select_model(feats[train], resid[train], t[train], latency_ns, cfg)
    ridge = cfg.ridge if choice is None else max(choice.ridge * float(train.sum()), cfg.ridge)
    model = SlippageModel(_NF, 1.0, ridge, True, FEATURE_NAMES, tr.instrument)
    if choice is not None:
        # the shrinkage is folded into the model: fitting alpha * y gives alpha * coef
        # (the least-absolute-error weights are scale-free), so a saved model predicts
        # exactly what is scored here
        x = _masked(feats[train], FEATURE_SETS[choice.features])
        _fit(model, x, choice.shrinkage * resid[train], cfg.irls_iterations)
    pred = walk[test] + model.predict_many(np.ascontiguousarray(feats[test]))
    walk_err = _errors(walk[test], realized[test])
    ticker_walk = walk[test] + feats[test, FEATURE_NAMES.index("ticker_walk_bps")]
    model_err = _errors(pred, realized[test])
    by_size: dict[str, Any] = {}
    for k, size in enumerate(cfg.sizes):
        sel = size_index[test] == k
        by_size[size.label] = {
            "n_test": int(sel.sum()),
            "walk_mae_bps": _errors(walk[test][sel], realized[test][sel])["mae_bps"],
            "model_mae_bps": _errors(pred[sel], realized[test][sel])["mae_bps"],
        }
    gain = walk_err["mae_bps"] - model_err["mae_bps"]
    record.update(
        n_train=int(train.sum()),
        n_test=int(test.sum()),
        model_fitted=fitted,
        model_selected="ridge" if choice is not None else "walk",
        ridge=ridge if choice is not None else None,
        feature_set=choice.features if choice is not None else None,
        shrinkage=choice.shrinkage if choice is not None else 0.0,
        mean_realized_bps=float(np.mean(realized[test])) if test.any() else math.nan,
        walk=walk_err,
        walk_book_ticker=_errors(ticker_walk, realized[test]),
        model=model_err,
        improvement={
            "mae_bps": gain,
            "mae_pct": 100.0 * gain / walk_err["mae_bps"] if walk_err["mae_bps"] > 0 else 0.0,
        },
        by_size=by_size,
        coef=dict(
            zip(("intercept", *FEATURE_NAMES), [model.intercept, *model.coef.tolist()], strict=True)
        ),
    )
    return record, model if fitted else None


def _finite(value: Any) -> Any:
    """NaN/inf (no data) as JSON null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def evaluate_files(
    paths: Sequence[str | Path], cfg: EvalConfig
) -> tuple[dict[str, Any], dict[str, SlippageModel]]:
    """Replay a capture session and score walk-at-t and the model out of sample.

    Parameters
    ----------
    paths : sequence of path-like
        Capture files of one recording session (merged by local receive time).
    cfg : EvalConfig
        Latency, sizes, split and feature parameters.

    Returns
    -------
    tuple
        The JSON-ready report ``{"files", "latency_ms", ..., "instruments": [...]}`` (one
        record per book: ``n_train``, ``n_test``, ``walk`` / ``model`` errors,
        ``improvement``, ``by_size``, ``coef``) and the fitted models by instrument id.

    Raises
    ------
    CaptureFormatError
        A file is unreadable or malformed.
    ext.feed.FrameError
        A frame cannot be parsed.
    SlippageEvalError
        No clock, or no order book to place orders in.
    OSError
        A file cannot be opened.
    """
    files = [Path(p) for p in paths]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"no such capture file: {f}")
    trackers = _replay(files, cfg)
    records = []
    models: dict[str, SlippageModel] = {}
    for tr in sorted(trackers, key=lambda x: x.instrument):
        record, model = _evaluate(tr, cfg)
        records.append(record)
        if model is not None:
            models[tr.instrument] = model
    if not any(r["n_test"] for r in records):
        raise SlippageEvalError(
            "no virtual order could be placed and realized (books never usable, or the "
            "captures are shorter than the warm-up plus latency)"
        )
    report = {
        "files": [str(f) for f in files],
        "latency_ms": cfg.latency_ms,
        "sizes": [s.label for s in cfg.sizes],
        "sample_every_ms": cfg.sample_every_ms,
        "train_fraction": cfg.train_fraction,
        "seed": cfg.seed,
        "fee_bps": cfg.fee_bps,
        "features": list(FEATURE_NAMES),
        "target": "realized_bps - walk_bps (model predicts walk + residual)",
        "instruments": records,
    }
    return _finite(report), models


# ---------------------------------------------------------------------------- storage


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


class SlippageModelStore:
    """One saved :class:`~ext.predict.SlippageModel` per instrument in a directory.

    Files are ``<instrument id with unsafe characters as _>.slippage.json`` (the JSON of
    :meth:`ext.predict.SlippageModel.to_bytes`); the instrument id inside the file is the
    key, so :meth:`load_all` never depends on the file name.

    Parameters
    ----------
    directory : path-like
        Where the models live (created on the first :meth:`save`).
    """

    SUFFIX = ".slippage.json"

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, instrument: str) -> Path:
        """File of ``instrument``'s model."""
        if not instrument:
            raise ValueError("instrument id must not be empty")
        return self.directory / (_UNSAFE.sub("_", instrument) + self.SUFFIX)

    def save(self, model: SlippageModel) -> Path:
        """Write ``model`` under its own instrument id; returns the file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(model.instrument)
        model.save(target)
        return target

    def load(self, instrument: str) -> SlippageModel:
        """Model of ``instrument``.

        Raises
        ------
        FileNotFoundError
            No model saved for it.
        ValueError
            The file is not a model of a supported version, or belongs to another instrument.
        """
        model = SlippageModel.load(self.path(instrument))
        if model.instrument != instrument:
            raise ValueError(
                f"{self.path(instrument)} holds the model of {model.instrument!r}, "
                f"not {instrument!r}"
            )
        return model

    def load_all(self) -> dict[str, SlippageModel]:
        """Every model in the directory, by instrument id."""
        if not self.directory.is_dir():
            return {}
        out: dict[str, SlippageModel] = {}
        for p in sorted(self.directory.glob("*" + self.SUFFIX)):
            model = SlippageModel.load(p)
            out[model.instrument] = model
        return out

    def save_all(self, models: Mapping[str, SlippageModel]) -> list[Path]:
        """Save every model; returns the files written."""
        return [self.save(m) for m in models.values()]
