"""Feed machinery shared by the wire parsers (ext.binance, ext.okx)."""

from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

from ext.book import OrderBook

UPDATE: int
SNAPSHOT: int
BUFFERED: int
DROPPED: int
TRADE: int
TICKER: int
HEARTBEAT: int
OTHER: int
GAP: int
CHECKSUM_MISMATCH: int
CROSSED: int
TICKER_MISMATCH: int
DUPLICATE: int
STALE_SNAPSHOT: int
RESULT_NAMES: dict[int, str]
__pyx_capi__: dict[str, Any]  # C functions exported to ext.okx (okx_checksum)
TRADE_DTYPE: np.dtype[np.void]
DELTA_DTYPE: np.dtype[np.void]
DELTA_SNAPSHOT: int
DELTA_LAST: int

class FrameError(ValueError):
    venue: str
    channel: str | None
    offset: int
    def __init__(self, message: str, venue: str, channel: str | None, offset: int) -> None: ...

def okx_checksum_text(text: str) -> int: ...
def book_checksum(book: OrderBook) -> int: ...
@disjoint_base
class Feed:
    @property
    def venue(self) -> str: ...
    @property
    def market(self) -> str: ...
    @property
    def trades_overflow(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def other_frames(self) -> int: ...
    @property
    def pending_trades(self) -> int: ...
    @property
    def pending_deltas(self) -> int: ...
    @property
    def delta_capacity(self) -> int: ...
    @property
    def deltas_overflow(self) -> int: ...
    def __init__(
        self,
        venue: str,
        market: str,
        trade_capacity: int = 65536,
        max_pending: int = 100000,
        book_capacity: int = 64,
        delta_capacity: int = 0,
    ) -> None: ...
    def desync(self, symbol: str, channel: str) -> bool: ...
    def set_scales(self, symbol: str, channel: str, price_scale: int, size_scale: int) -> None: ...
    def preset_scales(self, scales: dict[str, tuple[int, int]]) -> None: ...
    def instruments(self) -> list[tuple[str, str, str]]: ...
    def book(self, symbol: str, channel: str) -> OrderBook | None: ...
    def stats(self) -> list[dict[str, Any]]: ...
    def drain_trades(self) -> npt.NDArray[np.void]: ...
    def drain_deltas(self) -> npt.NDArray[np.void]: ...
