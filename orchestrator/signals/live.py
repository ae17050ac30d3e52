"""Signals of the live books, sampled by the main job.

Each LIVE book is sampled every ``interval`` (100 ms by default): mid and microprice feed
streaming EMAs (fast and slow, their gap in bps is the momentum), a Wilder RSI and a
rolling order-flow imbalance (Cont-Kukanov-Stoikov, over the sampled best levels), and
the top-10 book imbalance is read straight from the book - every update is one call into
``ext`` (``ext.indicators``, ``ext.flow``), no per-level Python work. Sampling keeps the
cost per book fixed whatever the message rate; a stale book is not sampled, so its signals
simply pause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ext.book import OrderBook
from ext.flow import OrderFlowImbalance, book_imbalance, microprice
from ext.indicators import Ema, Rsi

__all__ = ["BookSignals"]


@dataclass(slots=True)
class BookSignals:
    """Streaming signals of one book.

    Parameters
    ----------
    fast, slow
        EMA periods in samples.
    rsi_period
        RSI period in samples.
    ofi_window_ns
        Time window of the order-flow imbalance.
    """

    fast: int = 20
    slow: int = 100
    rsi_period: int = 14
    ofi_window_ns: int = 10_000_000_000
    ema_fast: Ema = field(init=False)
    ema_slow: Ema = field(init=False)
    rsi: Rsi = field(init=False)
    ofi: OrderFlowImbalance = field(init=False)
    imbalance: float = math.nan
    micro: float = math.nan
    samples: int = 0

    def __post_init__(self) -> None:
        self.ema_fast = Ema(self.fast)
        self.ema_slow = Ema(self.slow)
        self.rsi = Rsi(self.rsi_period)
        self.ofi = OrderFlowImbalance(self.ofi_window_ns, "time")

    def sample(self, book: OrderBook, t_ns: int) -> None:
        """Update every signal from ``book`` (LIVE, both sides present) at time ``t_ns``."""
        scale = 10.0**-book.price_scale
        mid = book.mid() * scale
        self.ema_fast.update(mid)
        self.ema_slow.update(mid)
        self.rsi.update(mid)
        self.ofi.update_book(book, t_ns)
        self.imbalance = book_imbalance(book, 10)
        self.micro = microprice(book) * scale
        self.samples += 1

    @property
    def momentum_bps(self) -> float:
        """Fast EMA over slow EMA, in basis points (NaN until both are warm)."""
        slow = self.ema_slow.value
        return (self.ema_fast.value / slow - 1.0) * 1e4 if slow == slow and slow else math.nan
