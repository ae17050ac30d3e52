"""OKX v5 public frames into books and trade records."""

from typing_extensions import disjoint_base

from ext.feed import Feed

CRC32_CLMUL: bool

def crc32(data: bytes | bytearray | memoryview, portable: bool = False) -> int: ...

@disjoint_base
class OkxFeed(Feed):
    def __init__(
        self,
        market: str = "unknown",
        trade_capacity: int = 65536,
        book_capacity: int = 64,
        delta_capacity: int = 0,
    ) -> None: ...
    def on_frame(self, frame: bytes | bytearray | memoryview, recv_ns: int = 0) -> int: ...
