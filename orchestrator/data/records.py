"""Fixed-layout event records, the instrument registry and the binary batch format.

Every event moves as a row of a numpy structured array whose layout is fixed here: explicit
field order, little-endian, natural alignment with explicit padding fields (so the layout
never depends on numpy's ``align`` rules), item sizes multiples of 8. Prices are int64 ticks
and sizes int64 lots at the instrument's scales; times are int64 nanoseconds since the Unix
epoch: ``exch_ns`` (the venue's event time) and ``recv_ns`` (local receive time).

=================  =====  ===========================================================
dtype              bytes  one row is
=================  =====  ===========================================================
``DELTA_DTYPE``       48  a changed price level of a book update (size 0 = removed)
``SNAPSHOT_DTYPE``    48  one level of a periodic book snapshot (one row per level)
``TRADE_DTYPE``       48  a trade; byte-compatible with :data:`ext.feed.TRADE_DTYPE`
``TOP_DTYPE``         64  best bid/ask (top of book)
``SIGNAL_DTYPE``      48  a signal value (``name_id`` names it)
``ORDER_DTYPE``       64  an order state change (new, ack, fill progress, cancel, ...)
``FILL_DTYPE``        72  an execution of one of our orders
``LEDGER_DTYPE``      40  a completeness ledger event (disconnect, gap, resync, stale, ...)
=================  =====  ===========================================================

Snapshots are stored as one row per level (``side``, ``level`` = 0 for the best) rather than
fixed top-N arrays: the depth can differ per venue and per snapshot, rows COPY into a plain
table, and a snapshot is identified by ``(venue, inst, exch_ns, seq)``.

Venue and instrument ids are small integers given by :class:`InstrumentRegistry` (persisted
by the archive in the ``venues`` and ``instruments`` tables). Instrument ids are unique
across venues, so ``inst`` alone identifies an instrument; ``venue`` is carried as well so
a batch can be routed and partitioned without a lookup.

Batches cross process boundaries (Redis Streams, Celery) as bytes made by
:func:`encode_batch`: a 32-byte header (magic ``SLPB``, format version, record kind,
count, a hash of the dtype's layout, item size, CRC-32 of the body) followed by the raw
records. :func:`decode_batch` checks all of it and returns a zero-copy view.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.errors import SlipstreamError

__all__ = [
    "ASK",
    "BATCH_HEADER",
    "BATCH_MAGIC",
    "BATCH_VERSION",
    "BID",
    "DELTA_DTYPE",
    "DTYPES",
    "FEE_SCALE",
    "FILL_DTYPE",
    "FLAG_LAST",
    "FLAG_SNAPSHOT",
    "LEDGER_DTYPE",
    "ORDER_DTYPE",
    "SIGNAL_DTYPE",
    "SNAPSHOT_DTYPE",
    "TOP_DTYPE",
    "TRADE_DTYPE",
    "BatchFormatError",
    "InstrumentInfo",
    "InstrumentRegistry",
    "LedgerKind",
    "Liquidity",
    "OrderStatus",
    "OrderType",
    "RecordKind",
    "RegistryError",
    "decode_batch",
    "deltas_from_feed",
    "dtype_hash",
    "empty",
    "encode_batch",
    "trades_as_feed",
    "trades_from_feed",
]

#: Book sides (the values of :data:`ext.book.BID` / :data:`ext.book.ASK`).
BID = 0
ASK = 1

#: ``DELTA_DTYPE.flags`` bit: the level belongs to a full snapshot (book replaced).
FLAG_SNAPSHOT = 1
#: ``DELTA_DTYPE.flags`` bit: the last level of its venue message (the book is consistent).
FLAG_LAST = 2

#: Decimals of ``FILL_DTYPE.fee`` (fees in 1e-8 units of the fee currency).
FEE_SCALE = 8


class RecordKind(IntEnum):
    """Kind of a record batch (header field and archive table selector)."""

    DELTA = 1
    SNAPSHOT = 2
    TRADE = 3
    TOP = 4
    SIGNAL = 5
    ORDER = 6
    FILL = 7
    LEDGER = 8


class LedgerKind(IntEnum):
    """What a ledger event says about the completeness of an instrument's data.

    ``START``/``STOP`` bracket a recording session. ``DISCONNECT`` opens a break that
    ``RECONNECT`` closes, ``GAP`` (a sequence gap, ``from_seq``..``to_seq`` missing) one
    that ``RESYNC`` closes, ``STALE_START`` one that ``STALE_END`` closes.
    """

    START = 1
    STOP = 2
    DISCONNECT = 3
    RECONNECT = 4
    GAP = 5
    RESYNC = 6
    STALE_START = 7
    STALE_END = 8


class OrderType(IntEnum):
    """``ORDER_DTYPE.ord_type``."""

    MARKET = 1
    LIMIT = 2
    POST_ONLY = 3
    IOC = 4


class OrderStatus(IntEnum):
    """``ORDER_DTYPE.status``: the state the order entered with this event."""

    NEW = 1
    ACKED = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELED = 5
    REJECTED = 6
    EXPIRED = 7


class Liquidity(IntEnum):
    """``FILL_DTYPE.liquidity``."""

    UNKNOWN = 0
    MAKER = 1
    TAKER = 2


def _layout(fields: Sequence[tuple[str, str]], itemsize: int) -> np.dtype[np.void]:
    """Build a dtype from ``(name, code)`` pairs and check it is packed as documented."""
    dt = np.dtype(list(fields))
    if dt.itemsize != itemsize:
        raise AssertionError(f"record layout is {dt.itemsize} bytes, expected {itemsize}")
    for name in dt.names or ():
        sub, offset = dt.fields[name][:2]  # type: ignore[index]
        if offset % sub.alignment:
            raise AssertionError(f"field {name} at offset {offset} is misaligned")
    return dt


#: Book level delta. ``seq`` is the venue's update id (Binance ``u``, OKX ``seqId``).
DELTA_DTYPE = _layout(
    [
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("seq", "<i8"),
        ("price", "<i8"),
        ("size", "<i8"),
        ("inst", "<i4"),
        ("venue", "u1"),
        ("side", "i1"),
        ("flags", "u1"),
        ("_pad", "u1"),
    ],
    48,
)

#: One level of a periodic book snapshot; ``level`` 0 is the best price of ``side``.
SNAPSHOT_DTYPE = _layout(
    [
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("seq", "<i8"),
        ("price", "<i8"),
        ("size", "<i8"),
        ("inst", "<i4"),
        ("venue", "u1"),
        ("side", "i1"),
        ("level", "<u2"),
    ],
    48,
)

#: A trade. Same bytes as ``ext.feed.TRADE_DTYPE`` with its pad byte used for ``venue``
#: (``side`` +1 taker buy, -1 taker sell, 0 unknown).
TRADE_DTYPE = _layout(
    [
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("trade_id", "<i8"),
        ("price", "<i8"),
        ("size", "<i8"),
        ("inst", "<i4"),
        ("side", "i1"),
        ("price_scale", "i1"),
        ("size_scale", "i1"),
        ("venue", "u1"),
    ],
    48,
)

#: Best bid and ask; ``flags`` bit 1 = bid side empty, bit 2 = ask side empty.
TOP_DTYPE = _layout(
    [
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("seq", "<i8"),
        ("bid_price", "<i8"),
        ("bid_size", "<i8"),
        ("ask_price", "<i8"),
        ("ask_size", "<i8"),
        ("inst", "<i4"),
        ("venue", "u1"),
        ("flags", "u1"),
        ("_pad", "<u2"),
    ],
    64,
)

#: A signal value. ``exch_ns`` is the event time it refers to, ``recv_ns`` when it was
#: computed, ``seq`` the input sequence id it includes.
SIGNAL_DTYPE = _layout(
    [
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("seq", "<i8"),
        ("value", "<f8"),
        ("name_id", "<i4"),
        ("inst", "<i4"),
        ("venue", "u1"),
        ("_pad", "V7"),
    ],
    48,
)

#: An order event. ``client_id`` is our numeric client order id, ``order_id`` the venue's
#: (0 until acknowledged); ``filled`` the cumulative filled lots.
ORDER_DTYPE = _layout(
    [
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("client_id", "<i8"),
        ("order_id", "<i8"),
        ("price", "<i8"),
        ("size", "<i8"),
        ("filled", "<i8"),
        ("inst", "<i4"),
        ("venue", "u1"),
        ("side", "i1"),
        ("ord_type", "u1"),
        ("status", "u1"),
    ],
    64,
)

#: A fill of one of our orders; ``fee`` in 1e-8 units (:data:`FEE_SCALE`).
FILL_DTYPE = _layout(
    [
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("client_id", "<i8"),
        ("order_id", "<i8"),
        ("trade_id", "<i8"),
        ("price", "<i8"),
        ("size", "<i8"),
        ("fee", "<i8"),
        ("inst", "<i4"),
        ("venue", "u1"),
        ("side", "i1"),
        ("liquidity", "u1"),
        ("_pad", "u1"),
    ],
    72,
)

#: A completeness ledger event (:class:`LedgerKind`). ``exch_ns`` places it on the
#: exchange-time axis (collectors use their best estimate, e.g. ``recv_ns``, when the venue
#: gives no time); ``from_seq``/``to_seq`` bound a gap; ``detail`` is a reason code.
LEDGER_DTYPE = _layout(
    [
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("from_seq", "<i8"),
        ("to_seq", "<i8"),
        ("inst", "<i4"),
        ("venue", "u1"),
        ("kind", "u1"),
        ("detail", "<u2"),
    ],
    40,
)

#: Record kind -> dtype.
DTYPES: dict[RecordKind, np.dtype[np.void]] = {
    RecordKind.DELTA: DELTA_DTYPE,
    RecordKind.SNAPSHOT: SNAPSHOT_DTYPE,
    RecordKind.TRADE: TRADE_DTYPE,
    RecordKind.TOP: TOP_DTYPE,
    RecordKind.SIGNAL: SIGNAL_DTYPE,
    RecordKind.ORDER: ORDER_DTYPE,
    RecordKind.FILL: FILL_DTYPE,
    RecordKind.LEDGER: LEDGER_DTYPE,
}


def empty(kind: RecordKind, n: int) -> npt.NDArray[np.void]:
    """Zero-filled array of ``n`` records of ``kind`` (padding bytes are zero)."""
    return np.zeros(n, dtype=DTYPES[RecordKind(kind)])


def dtype_hash(dtype: np.dtype[Any]) -> int:
    """64-bit hash of a structured dtype's layout (names, types, offsets, item size).

    It changes whenever a field is renamed, retyped, moved or added, so a reader never
    interprets a buffer written with another layout.
    """
    if dtype.names is None:
        raise TypeError(f"dtype must be structured, was {dtype}")
    parts = [f"{n}:{dtype.fields[n][0].str}:{dtype.fields[n][1]}" for n in dtype.names]  # type: ignore[index]
    text = ";".join(parts) + f"|{dtype.itemsize}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


_HASHES: dict[RecordKind, int] = {k: dtype_hash(dt) for k, dt in DTYPES.items()}

# ------------------------------------------------------------------------- batch format

#: First bytes of an encoded batch.
BATCH_MAGIC = b"SLPB"
#: Version of the batch format written by :func:`encode_batch`.
BATCH_VERSION = 1
#: Header: magic, version u16, kind u16, count u64, dtype hash u64, itemsize u32, crc32 u32.
BATCH_HEADER = struct.Struct("<4sHHQQII")


class BatchFormatError(SlipstreamError, ValueError):
    """An encoded batch is truncated, corrupt or of an unknown kind/layout."""


def encode_batch(kind: RecordKind, records: npt.NDArray[np.void]) -> bytes:
    """Encode ``records`` of ``kind`` as header + raw bytes.

    Parameters
    ----------
    kind
        The record kind; ``records.dtype`` must be its dtype exactly.
    records
        One-dimensional structured array (any contiguity; copied once).

    Returns
    -------
    bytes
        ``BATCH_HEADER.size + len(records) * itemsize`` bytes.

    Raises
    ------
    TypeError
        If ``records`` is not an array of the kind's dtype.
    ValueError
        If ``records`` is not one-dimensional.
    """
    kind = RecordKind(kind)
    dt = DTYPES[kind]
    if not isinstance(records, np.ndarray) or records.dtype != dt:
        got = records.dtype if isinstance(records, np.ndarray) else type(records).__name__
        raise TypeError(f"records must be an array of the {kind.name} dtype, was {got}")
    if records.ndim != 1:
        raise ValueError(f"records must be one-dimensional, had shape {records.shape}")
    body = np.ascontiguousarray(records).tobytes()
    header = BATCH_HEADER.pack(
        BATCH_MAGIC,
        BATCH_VERSION,
        int(kind),
        len(records),
        _HASHES[kind],
        dt.itemsize,
        zlib.crc32(body),
    )
    return header + body


def decode_batch(
    buf: bytes | bytearray | memoryview, expect: RecordKind | None = None
) -> tuple[RecordKind, npt.NDArray[np.void]]:
    """Decode a buffer made by :func:`encode_batch`.

    Parameters
    ----------
    buf
        The encoded batch.
    expect
        If given, the kind the batch must be.

    Returns
    -------
    tuple of (RecordKind, numpy.ndarray)
        The kind and a **read-only view** of the records inside ``buf`` (no copy; valid as
        long as ``buf`` is; ``.copy()`` it to own or modify the data).

    Raises
    ------
    BatchFormatError
        If the buffer is truncated or too long, the magic, version, kind, layout hash or
        item size are wrong, or the body's CRC-32 does not match.
    """
    mv = memoryview(buf).cast("B")
    if len(mv) < BATCH_HEADER.size:
        raise BatchFormatError(
            f"batch is {len(mv)} bytes, shorter than its {BATCH_HEADER.size}-byte header"
        )
    magic, version, kind_no, count, dhash, itemsize, crc = BATCH_HEADER.unpack_from(mv)
    if magic != BATCH_MAGIC:
        raise BatchFormatError(f"batch magic is {bytes(magic)!r}, expected {BATCH_MAGIC!r}")
    if version != BATCH_VERSION:
        raise BatchFormatError(f"batch format version is {version}, expected {BATCH_VERSION}")
    try:
        kind = RecordKind(kind_no)
    except ValueError:
        raise BatchFormatError(f"batch record kind is {kind_no}, not a known kind") from None
    if expect is not None and kind != expect:
        raise BatchFormatError(f"batch holds {kind.name} records, expected {expect.name}")
    dt = DTYPES[kind]
    if dhash != _HASHES[kind] or itemsize != dt.itemsize:
        raise BatchFormatError(
            f"batch of {kind.name} has layout hash {dhash:#018x} / item size {itemsize}, "
            f"this build reads {_HASHES[kind]:#018x} / {dt.itemsize}"
        )
    need = BATCH_HEADER.size + count * itemsize
    if len(mv) != need:
        raise BatchFormatError(
            f"batch of {count} {kind.name} records needs {need} bytes, was {len(mv)}"
            + (" (truncated)" if len(mv) < need else " (trailing bytes)")
        )
    body = mv[BATCH_HEADER.size :]
    if zlib.crc32(body) != crc:
        raise BatchFormatError(f"batch of {count} {kind.name} records fails its CRC-32 check")
    arr = np.frombuffer(body, dtype=dt, count=count)
    arr.flags.writeable = False
    return kind, arr


# ------------------------------------------------------------------ trades <-> ext.feed


def _check_feed_trades(trades: npt.NDArray[np.void]) -> None:
    from ext.feed import TRADE_DTYPE as FEED_TRADE_DTYPE

    if not isinstance(trades, np.ndarray) or trades.dtype != FEED_TRADE_DTYPE:
        got = trades.dtype if isinstance(trades, np.ndarray) else type(trades).__name__
        raise TypeError(f"trades must be an array of ext.feed.TRADE_DTYPE, was {got}")
    if trades.ndim != 1:
        raise ValueError(f"trades must be one-dimensional, had shape {trades.shape}")


def trades_from_feed(
    trades: npt.NDArray[np.void],
    venue: int,
    inst_map: npt.NDArray[np.int32] | None = None,
) -> npt.NDArray[np.void]:
    """Convert ``ext.feed.TRADE_DTYPE`` records (e.g. ``Feed.drain_trades()``) to records.

    One copy of the bytes (the layouts match) plus, when ``inst_map`` is given, one
    vectorized lookup of the instrument ids.

    Parameters
    ----------
    trades
        Array of ``ext.feed.TRADE_DTYPE``.
    venue
        Venue id (1..255) written into every record.
    inst_map
        ``inst_map[feed_index]`` = registry instrument id (see
        :meth:`InstrumentRegistry.feed_map`); ``None`` keeps ``inst`` as it is.

    Returns
    -------
    numpy.ndarray of TRADE_DTYPE
        A new array.

    Raises
    ------
    TypeError
        If ``trades`` is not an array of ``ext.feed.TRADE_DTYPE``.
    ValueError
        If ``venue`` is out of range or a feed index is outside ``inst_map``.
    """
    _check_feed_trades(trades)
    if not 0 < venue < 256:
        raise ValueError(f"venue id must be in 1..255, was {venue}")
    out = np.ascontiguousarray(trades).view(TRADE_DTYPE).copy()
    out["venue"] = venue
    if inst_map is not None and len(out):
        idx = out["inst"]
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= len(inst_map):
            raise ValueError(
                f"feed instrument index {lo if lo < 0 else hi} outside inst_map of {len(inst_map)}"
            )
        out["inst"] = np.asarray(inst_map, dtype=np.int32)[idx]
    return out


def trades_as_feed(records: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """View trade records as ``ext.feed.TRADE_DTYPE`` (zero copy).

    The ``venue`` byte shows up as the feed dtype's ``_pad``; ``inst`` stays the registry
    id. The result shares memory with ``records``.

    Raises
    ------
    TypeError
        If ``records`` is not an array of :data:`TRADE_DTYPE`.
    """
    from ext.feed import TRADE_DTYPE as FEED_TRADE_DTYPE

    if not isinstance(records, np.ndarray) or records.dtype != TRADE_DTYPE:
        got = records.dtype if isinstance(records, np.ndarray) else type(records).__name__
        raise TypeError(f"records must be an array of TRADE_DTYPE, was {got}")
    return records.view(FEED_TRADE_DTYPE)


# --------------------------------------------------------------------------- registry


class RegistryError(SlipstreamError):
    """An instrument or venue id is unknown, out of range or assigned twice."""


@dataclass(frozen=True)
class InstrumentInfo:
    """One registered instrument."""

    instrument_id: int
    venue_id: int
    venue: str
    market: str
    symbol: str
    price_scale: int = -1
    size_scale: int = -1


class InstrumentRegistry:
    """Maps ``(venue, market, symbol)`` <-> small integer ids.

    Venue ids are 1..255 (they fit ``u1`` record fields), instrument ids 1..2**31-1. Ids
    handed out by :meth:`instrument_id` are local to this object; with a PostgreSQL archive
    the database assigns them (:meth:`orchestrator.data.archive.Archive.register`) so all
    processes agree, and :meth:`add` loads them here.
    """

    def __init__(self) -> None:
        self._venues: dict[str, int] = {}
        self._by_key: dict[tuple[str, str, str], InstrumentInfo] = {}
        self._by_id: dict[int, InstrumentInfo] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Any:
        return iter(sorted(self._by_id.values(), key=lambda i: i.instrument_id))

    def add_venue(self, name: str, venue_id: int) -> None:
        """Record that venue ``name`` has id ``venue_id``."""
        if not 0 < venue_id < 256:
            raise RegistryError(f"venue id must be in 1..255, was {venue_id}")
        known = self._venues.get(name)
        if known is not None and known != venue_id:
            raise RegistryError(f"venue {name!r} already has id {known}, not {venue_id}")
        if known is None and venue_id in self._venues.values():
            raise RegistryError(f"venue id {venue_id} is already used")
        self._venues[name] = venue_id

    def venue_id(self, name: str, create: bool = True) -> int:
        """Id of venue ``name`` (a new one if ``create`` and it is unknown)."""
        vid = self._venues.get(name)
        if vid is None:
            if not create:
                raise RegistryError(f"unknown venue {name!r}")
            vid = max(self._venues.values(), default=0) + 1
            if vid > 255:
                raise RegistryError("more than 255 venues")
            self._venues[name] = vid
        return vid

    def venue_name(self, venue_id: int) -> str:
        """Name of venue ``venue_id``."""
        for name, vid in self._venues.items():
            if vid == venue_id:
                return name
        raise RegistryError(f"unknown venue id {venue_id}")

    def add(self, info: InstrumentInfo) -> None:
        """Load an instrument whose id was assigned elsewhere (e.g. by the database)."""
        self.add_venue(info.venue, info.venue_id)
        key = (info.venue, info.market, info.symbol)
        old = self._by_key.get(key)
        if old is not None and old.instrument_id != info.instrument_id:
            raise RegistryError(
                f"{key} already has id {old.instrument_id}, not {info.instrument_id}"
            )
        clash = self._by_id.get(info.instrument_id)
        if clash is not None and (clash.venue, clash.market, clash.symbol) != key:
            raise RegistryError(f"instrument id {info.instrument_id} already names {clash}")
        if not 0 < info.instrument_id < 2**31:
            raise RegistryError(f"instrument id must be in 1..2**31-1, was {info.instrument_id}")
        self._by_key[key] = info
        self._by_id[info.instrument_id] = info

    def instrument_id(self, venue: str, market: str, symbol: str, create: bool = True) -> int:
        """Id of an instrument (a new local id if ``create`` and it is unknown)."""
        info = self._by_key.get((venue, market, symbol))
        if info is None:
            if not create:
                raise RegistryError(f"unknown instrument {venue}/{market}/{symbol}")
            new_id = max(self._by_id, default=0) + 1
            info = InstrumentInfo(new_id, self.venue_id(venue), venue, market, symbol)
            self.add(info)
        return info.instrument_id

    def get(self, instrument_id: int) -> InstrumentInfo:
        """Return the instrument with id ``instrument_id``."""
        try:
            return self._by_id[instrument_id]
        except KeyError:
            raise RegistryError(f"unknown instrument id {instrument_id}") from None

    def feed_map(
        self, venue: str, market: str, names: Iterable[Sequence[str]]
    ) -> npt.NDArray[np.int32]:
        """``feed index -> instrument id`` for ``Feed.instruments()`` (``(symbol, ...)``).

        The result is the ``inst_map`` of :func:`trades_from_feed`; new symbols get ids.
        """
        ids = [self.instrument_id(venue, market, n[0]) for n in names]
        return np.asarray(ids, dtype=np.int32)

    def venue_map(self) -> npt.NDArray[np.uint8]:
        """``instrument id -> venue id`` lookup array (0 for unused ids)."""
        lut = np.zeros(max(self._by_id, default=0) + 1, dtype=np.uint8)
        for info in self._by_id.values():
            lut[info.instrument_id] = info.venue_id
        return lut


# ------------------------------------------------------------------ deltas <-> ext.feed

_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)


def _rescale_up(
    values: npt.NDArray[np.int64], have: npt.NDArray[np.int8], want: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """``values`` at scales ``have`` re-expressed at scales ``want`` (each >= its ``have``)."""
    shift = want - have.astype(np.int64)
    if len(shift) and (int(shift.min()) < 0 or int(shift.max()) > 18):
        raise ValueError("a delta record is at a finer scale than its instrument's target scale")
    factor = _POW10[shift]
    if len(values) and np.any(np.abs(values) > np.iinfo(np.int64).max // factor):
        raise ValueError("a delta record does not fit int64 at its instrument's target scale")
    return values * factor


def deltas_from_feed(
    deltas: npt.NDArray[np.void],
    venue: int,
    inst_map: npt.NDArray[np.int32] | None,
    price_scales: Sequence[int] | npt.NDArray[np.integer[Any]],
    size_scales: Sequence[int] | npt.NDArray[np.integer[Any]],
) -> npt.NDArray[np.void]:
    """Convert ``ext.feed.DELTA_DTYPE`` records (``Feed.drain_deltas()``) to records.

    A feed stamps every level with the scales it was parsed at; a record of
    :data:`DELTA_DTYPE` carries none, so every level is re-expressed at its instrument's
    target scales (normally the book's current ones, which never decrease).

    Parameters
    ----------
    deltas
        Array of ``ext.feed.DELTA_DTYPE``.
    venue
        Venue id (1..255) written into every record.
    inst_map
        ``inst_map[feed_index]`` = registry instrument id; ``None`` keeps the feed index.
    price_scales, size_scales
        Target scales indexed by the feed's instrument index.

    Returns
    -------
    numpy.ndarray of DELTA_DTYPE
        A new array, in the feed's order.

    Raises
    ------
    TypeError
        If ``deltas`` is not an array of ``ext.feed.DELTA_DTYPE``.
    ValueError
        If ``venue`` is out of range, a feed index is outside ``inst_map`` or the scale
        tables, or a level is finer than its target scale.
    """
    from ext.feed import DELTA_DTYPE as FEED_DELTA_DTYPE

    if not isinstance(deltas, np.ndarray) or deltas.dtype != FEED_DELTA_DTYPE:
        got = deltas.dtype if isinstance(deltas, np.ndarray) else type(deltas).__name__
        raise TypeError(f"deltas must be an array of ext.feed.DELTA_DTYPE, was {got}")
    if deltas.ndim != 1:
        raise ValueError(f"deltas must be one-dimensional, had shape {deltas.shape}")
    if not 0 < venue < 256:
        raise ValueError(f"venue id must be in 1..255, was {venue}")
    out = empty(RecordKind.DELTA, len(deltas))
    if not len(deltas):
        return out
    idx = deltas["inst"]
    ps = np.asarray(price_scales, dtype=np.int64)
    ss = np.asarray(size_scales, dtype=np.int64)
    lo, hi = int(idx.min()), int(idx.max())
    tables = [len(ps), len(ss)] + ([len(inst_map)] if inst_map is not None else [])
    if lo < 0 or hi >= min(tables):
        bad = lo if lo < 0 else hi
        raise ValueError(f"feed instrument index {bad} outside the maps of {min(tables)}")
    for name in ("exch_ns", "recv_ns", "seq", "side", "flags"):
        out[name] = deltas[name]
    out["price"] = _rescale_up(deltas["price"], deltas["price_scale"], ps[idx])
    out["size"] = _rescale_up(deltas["size"], deltas["size_scale"], ss[idx])
    out["inst"] = np.asarray(inst_map, dtype=np.int32)[idx] if inst_map is not None else idx
    out["venue"] = venue
    return out
