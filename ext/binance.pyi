"""Binance market-data frames (spot, USD-M, COIN-M) into books and trade records."""

from typing_extensions import disjoint_base

from ext.feed import Feed

@disjoint_base
class BinanceFeed(Feed):
    def __init__(
        self,
        market: str = "spot",
        trade_capacity: int = 65536,
        max_pending: int = 100000,
        book_capacity: int = 64,
        delta_capacity: int = 0,
    ) -> None: ...
    def on_frame(self, frame: bytes | bytearray | memoryview, recv_ns: int = 0) -> int: ...
    def on_snapshot(
        self, symbol: str, payload: bytes | bytearray | memoryview, recv_ns: int = 0
    ) -> int: ...
