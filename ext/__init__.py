"""Slipstream's compiled hot path (Cython over numpy buffers).

Modules
-------
scaled
    Exact decimal text <-> scaled int64 conversion (the parsers' number core).
book
    ``OrderBook``: L2 book over integer ticks and lots (``book_apply`` C core in ``book.pxd``).
feed
    The machinery the wire parsers share (``Feed``: instruments, counters, scales, trade
    records, result codes, ``FrameError``).
binance, okx
    Wire parsers: ``BinanceFeed`` / ``OkxFeed`` turn frame bytes into book updates and trade
    records with the venues' sequence and checksum rules.

Every compiled module ships a ``.pyi`` stub beside it (checked against the compiled
module by ``make lint`` and the test suite); ``.pxd`` files are the C-level contracts other
Cython modules cimport (``_types``, ``scaled``, ``book``, ``jsonscan``, ``feed``).
"""

from __future__ import annotations
