# cython: language_level=3, auto_pickle=False
"""Wire parsers: Binance and OKX market-data frames straight into books and trade records.

A feed object owns one :class:`ext.book.OrderBook` per instrument and channel and applies
each frame in one call: the JSON bytes are walked once (``ext/jsonscan.pxd``), decimal
strings become scaled integers exactly (``ext/scaled.pxd``), levels go into the book with
``book_apply``, and the venue's integrity rules run on the way:

* Binance spot: ``U``/``u`` continuity, snapshot bridging by ``lastUpdateId``
  (drop ``u <= L``; the first diff applied must have ``U <= L + 1``).
* Binance USD-M / COIN-M: ``pu`` equals the previous ``u``; bridging drops ``u < L`` and
  needs ``U <= L <= u``.
* OKX: ``seqId``/``prevSeqId`` chain (snapshot ``prevSeqId = -1``, heartbeats, sequence
  resets), CRC32 checksum of the top 25 levels whenever a frame carries a non-zero
  ``checksum``.

A frame that fails a check is reported by the return code, counted, and the instrument's
book is marked out of sync (``OrderBook.in_sync`` false) until a new snapshot arrives; diffs
for it are buffered (Binance) or dropped (OKX) meanwhile. A book is never silently wrong.

Scales: each instrument has a price and a size scale (decimals). :meth:`set_scales` fixes
them from venue metadata; a value that needs more decimals is then a :class:`FrameError`.
Without metadata the scales are inferred from the data and raised exactly (the book is
rescaled) when a finer increment appears, so legitimate data is never rejected.

Frames that are not market data for a known channel (subscription acks, errors, pongs,
other channels) return ``OTHER`` without touching any state: the caller hands them to
its slower Python path.

Example frames::

    {"stream":"ethusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,
     "s":"ETHUSDT","U":35346513499,"u":35346513512,"b":[["2608.61","0.0064"]],"a":[]}}
    {"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":
     [["30249.5","50","0","1"]],"bids":[],"ts":"1652459236000","checksum":-1200119424}]}
"""

import numpy as np

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport INT64_MAX, INT64_MIN, int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

from ext.book cimport (
    BOOK_ASK,
    BOOK_BID,
    BOOK_CHANGED,
    BOOK_EINVAL,
    BOOK_ENOMEM,
    BookSide,
    OrderBook,
    book_apply,
    book_best_price,
    book_best_size,
)
from ext.jsonscan cimport (
    Cursor,
    Span,
    is_string,
    key_is,
    next_element,
    next_key,
    next_member,
    open_container,
    parse_int,
    skip_member_value,
    skip_ws,
    string_body,
)
from ext.scaled cimport (
    SCALED_MAX_SCALE,
    SCALED_OK,
    SCALED_TOO_PRECISE,
    parse_scaled,
    significant_decimals,
)

# ---------------------------------------------------------------------------- results

cdef enum:
    R_UPDATE = 0          # book diff applied
    R_SNAPSHOT = 1        # book (re)loaded from a snapshot
    R_BUFFERED = 2        # diff held until a snapshot bridges it
    R_DROPPED = 3         # diff already covered by the snapshot / book waiting for one
    R_TRADE = 4           # trade(s) recorded
    R_TICKER = 5          # best bid/offer frame (compared with the book when possible)
    R_HEARTBEAT = 6       # OKX no-change book message
    R_OTHER = 7           # not market data of a known channel: caller's slow path
    R_GAP = 8             # sequence gap: book now out of sync
    R_CHECKSUM = 9        # checksum mismatch: book now out of sync
    R_CROSSED = 10        # best bid >= best ask after applying: book now out of sync
    R_TICKER_MISMATCH = 11  # bookTicker disagrees with the book at the same update id
    R_DUPLICATE = 12      # the same diff again (ignored; counted)

UPDATE = R_UPDATE
SNAPSHOT = R_SNAPSHOT
BUFFERED = R_BUFFERED
DROPPED = R_DROPPED
TRADE = R_TRADE
TICKER = R_TICKER
HEARTBEAT = R_HEARTBEAT
OTHER = R_OTHER
GAP = R_GAP
CHECKSUM_MISMATCH = R_CHECKSUM
CROSSED = R_CROSSED
TICKER_MISMATCH = R_TICKER_MISMATCH
DUPLICATE = R_DUPLICATE

RESULT_NAMES = {
    R_UPDATE: "update", R_SNAPSHOT: "snapshot", R_BUFFERED: "buffered",
    R_DROPPED: "dropped", R_TRADE: "trade", R_TICKER: "ticker", R_HEARTBEAT: "heartbeat",
    R_OTHER: "other", R_GAP: "gap", R_CHECKSUM: "checksum_mismatch", R_CROSSED: "crossed",
    R_TICKER_MISMATCH: "ticker_mismatch", R_DUPLICATE: "duplicate",
}

# instrument sync states
cdef enum:
    ST_WAIT = 0           # no snapshot yet (or out of sync): Binance buffers, OKX drops
    ST_BRIDGE = 1         # Binance: snapshot loaded, first diff not applied yet
    ST_SYNCED = 2

cdef enum:
    K_BOOK = 0
    K_TRADE = 1

cdef enum:
    MAX_KEY = 64
    TABLE_SIZE = 8192     # open addressing, power of two, > 2 * max instruments
    MAX_INSTRUMENTS = 4096

TRADE_DTYPE = np.dtype([
    ("exch_ns", "<i8"), ("recv_ns", "<i8"), ("trade_id", "<i8"), ("price", "<i8"),
    ("size", "<i8"), ("inst", "<i4"), ("side", "i1"), ("price_scale", "i1"),
    ("size_scale", "i1"), ("_pad", "u1"),
])

cdef packed struct TradeRec:
    int64_t exch_ns
    int64_t recv_ns
    int64_t trade_id
    int64_t price
    int64_t size
    int32_t inst
    int8_t side
    int8_t price_scale
    int8_t size_scale
    uint8_t pad


cdef struct HeldTicker:
    int64_t u
    int64_t bp
    int64_t bs
    int64_t ap
    int64_t asz
    int ps
    int ss

cdef enum:
    HELD_CAP = 256


cdef struct Inst:
    HeldTicker* held           # ring of bookTickers ahead of the book (Binance), lazily
    int held_head
    int held_n
    int kind
    int state
    bint locked
    bint ever_synced
    int price_scale
    int size_scale
    int64_t snap_id            # Binance: lastUpdateId of the loaded snapshot
    int64_t last_id            # Binance: last applied u; OKX: last seqId; trades: last id
    int64_t last_ts            # OKX: ts of the last book message (duplicate detection)
    int64_t last_checksum
    bint has_last
    int64_t messages
    int64_t snapshots
    int64_t applied
    int64_t dropped
    int64_t buffered
    int64_t gaps
    int64_t seq_resets
    int64_t resyncs
    int64_t crossed
    int64_t duplicates
    int64_t ck_ok
    int64_t ck_bad
    int64_t ck_none
    int64_t tk_cmp
    int64_t tk_ok
    int64_t tk_bad
    int64_t heartbeats
    int64_t count               # trades
    int64_t id_gaps
    int64_t id_back


class FrameError(ValueError):
    """A frame that cannot be parsed: names venue, channel and the byte offset."""

    def __init__(self, message, venue, channel, offset):
        super().__init__(f"{venue} {channel or '?'} frame, byte {offset}: {message}")
        self.venue = venue
        self.channel = channel
        self.offset = offset


# ---------------------------------------------------------------------------- CRC32

cdef uint32_t[256] _CRC_TABLE
cdef int64_t[19] _POW10

cdef void _init_tables() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = <uint32_t>i
        for k in range(8):
            c = (0xEDB88320U ^ (c >> 1)) if (c & 1) else (c >> 1)
        _CRC_TABLE[i] = c
    _POW10[0] = 1
    for i in range(1, 19):
        _POW10[i] = _POW10[i - 1] * 10

_init_tables()


cdef inline uint32_t _crc32(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef uint32_t c = 0xFFFFFFFFU
    cdef Py_ssize_t i
    for i in range(n):
        c = _CRC_TABLE[(c ^ p[i]) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFU


cdef inline Py_ssize_t _fmt_scaled(char* out, int64_t v, int scale) noexcept nogil:
    """Shortest exact decimal text of ``v * 10**-scale`` into ``out``; returns its length."""
    cdef char tmp[24]
    cdef Py_ssize_t n = 0, k = 0, i
    cdef bint neg = v < 0
    cdef uint64_t u = <uint64_t>(-v) if neg else <uint64_t>v
    cdef int frac
    # digits, least significant first
    while True:
        tmp[n] = <char>(48 + u % 10)
        u //= 10
        n += 1
        if u == 0:
            break
    while n <= scale:
        tmp[n] = 48
        n += 1
    frac = scale
    while frac > 0 and tmp[scale - frac] == 48:
        frac -= 1
    if neg:
        out[k] = 45
        k += 1
    for i in range(n - 1, scale - 1, -1):
        out[k] = tmp[i]
        k += 1
    if frac > 0:
        out[k] = 46
        k += 1
        for i in range(scale - 1, scale - 1 - frac, -1):
            out[k] = tmp[i]
            k += 1
    return k



cdef int32_t okx_checksum(OrderBook book) noexcept:
    """OKX legacy CRC32 (signed) of the top 25 levels, text rebuilt exactly from the ints."""
    cdef char buf[8192]
    cdef Py_ssize_t k = 0, i
    cdef const BookSide* b = &book.sides[BOOK_BID]
    cdef const BookSide* a = &book.sides[BOOK_ASK]
    cdef Py_ssize_t bi = b.n - 1, ai = a.n - 1
    cdef int ps = book.price_scale, ss = book.size_scale
    cdef bint first = True
    for i in range(25):
        while bi >= 0 and b.sizes[bi] == 0:
            bi -= 1
        if bi >= 0:
            if not first:
                buf[k] = 58
                k += 1
            first = False
            k += _fmt_scaled(buf + k, b.keys[bi], ps)
            buf[k] = 58
            k += 1
            k += _fmt_scaled(buf + k, b.sizes[bi], ss)
            bi -= 1
        while ai >= 0 and a.sizes[ai] == 0:
            ai -= 1
        if ai >= 0:
            if not first:
                buf[k] = 58
                k += 1
            first = False
            k += _fmt_scaled(buf + k, -a.keys[ai], ps)
            buf[k] = 58
            k += 1
            k += _fmt_scaled(buf + k, a.sizes[ai], ss)
            ai -= 1
    return <int32_t>_crc32(<const unsigned char*>buf, k)


def okx_checksum_text(str text) -> int:
    """Signed CRC32 of ``text`` as OKX computes its legacy book checksum (for tests).

    Parameters
    ----------
    text : str
        ``"bidPx:bidSz:askPx:askSz:..."``.

    Returns
    -------
    int
        The CRC32 interpreted as a signed 32-bit integer.
    """
    cdef bytes b = text.encode("ascii")
    return <int32_t>_crc32(<const unsigned char*>b, len(b))


def book_checksum(OrderBook book not None) -> int:
    """OKX legacy checksum of ``book``'s top 25 levels (signed CRC32).

    Parameters
    ----------
    book : OrderBook
        The book; its scales give the decimal text of each level.

    Returns
    -------
    int
        Signed 32-bit CRC32 of ``bidPx:bidSz:askPx:askSz:...``.
    """
    return okx_checksum(book)


# ---------------------------------------------------------------------------- base feed

cdef class Feed:
    """Instrument table, books, counters and the trade buffer shared by the venue feeds.

    Not instantiated directly: use :class:`BinanceFeed` or :class:`OkxFeed`.
    """

    cdef readonly str venue
    cdef readonly str market
    cdef Inst* _inst
    cdef int32_t* _table
    cdef char* _keys
    cdef int* _keylen
    cdef int _n
    cdef list _books
    cdef list _names
    cdef list _pending
    cdef Py_ssize_t _max_pending
    cdef Py_ssize_t _book_capacity
    cdef object _trades_arr
    cdef TradeRec[::1] _trades
    cdef Py_ssize_t _ntrades
    cdef readonly int64_t trades_overflow
    cdef readonly int64_t frames
    cdef readonly int64_t other_frames
    cdef const unsigned char* _p      # frame being parsed (valid during one call)
    cdef Py_ssize_t _plen
    cdef int64_t _recv_ns
    cdef str _channel                 # channel name for errors (constants only)
    cdef Span _chan                   # OKX: channel in the frame, named only on error
    cdef bint _replaying

    def __cinit__(self, *args, **kwargs):
        self._inst = <Inst*>malloc(MAX_INSTRUMENTS * sizeof(Inst))
        self._table = <int32_t*>malloc(TABLE_SIZE * sizeof(int32_t))
        self._keys = <char*>malloc(MAX_INSTRUMENTS * MAX_KEY)
        self._keylen = <int*>malloc(MAX_INSTRUMENTS * sizeof(int))
        if not self._inst or not self._table or not self._keys or not self._keylen:
            raise MemoryError()
        memset(self._table, 0xFF, TABLE_SIZE * sizeof(int32_t))
        self._n = 0
        self._books = []
        self._names = []
        self._pending = []

    def __dealloc__(self):
        cdef int i
        if self._inst:
            for i in range(self._n):
                free(self._inst[i].held)
        free(self._inst)
        free(self._table)
        free(self._keys)
        free(self._keylen)

    def __init__(self, str venue, str market, Py_ssize_t trade_capacity=65536,
                 Py_ssize_t max_pending=100000, Py_ssize_t book_capacity=64):
        if trade_capacity < 1:
            raise ValueError(f"trade_capacity must be >= 1, was {trade_capacity}")
        if max_pending < 0:
            raise ValueError(f"max_pending must be >= 0, was {max_pending}")
        self.venue = venue
        self.market = market
        self._max_pending = max_pending
        self._book_capacity = book_capacity
        self._trades_arr = np.empty(trade_capacity, dtype=TRADE_DTYPE)
        self._trades = self._trades_arr
        self._ntrades = 0

    # ------------------------------------------------------------------ lookup

    cdef int _find(self, int kind, const unsigned char* a, Py_ssize_t alen,
                   const unsigned char* b, Py_ssize_t blen) noexcept:
        """Index of instrument (kind, a, b) or -1. ``a`` symbol, ``b`` channel."""
        cdef char key[MAX_KEY]
        cdef Py_ssize_t klen = _make_key(key, kind, a, alen, b, blen)
        cdef uint32_t h, slot
        cdef int32_t idx
        if klen < 0:
            return -1
        h = _fnv(key, klen)
        slot = h & (TABLE_SIZE - 1)
        while True:
            idx = self._table[slot]
            if idx < 0:
                return -1
            if self._keylen[idx] == klen and memcmp(self._keys + idx * MAX_KEY, key, klen) == 0:
                return idx
            slot = (slot + 1) & (TABLE_SIZE - 1)

    cdef int _add(self, int kind, const unsigned char* a, Py_ssize_t alen,
                  const unsigned char* b, Py_ssize_t blen) except -1:
        cdef char key[MAX_KEY]
        cdef Py_ssize_t klen = _make_key(key, kind, a, alen, b, blen)
        cdef uint32_t slot
        cdef int idx = self._n
        cdef Inst* it
        if klen < 0:
            raise self._error("symbol or channel name too long", a - self._p)
        if idx >= MAX_INSTRUMENTS:
            raise self._error(f"more than {MAX_INSTRUMENTS} instruments on one feed", 0)
        slot = _fnv(key, klen) & (TABLE_SIZE - 1)
        while self._table[slot] >= 0:
            slot = (slot + 1) & (TABLE_SIZE - 1)
        self._table[slot] = idx
        memcpy(self._keys + idx * MAX_KEY, key, klen)
        self._keylen[idx] = klen
        it = &self._inst[idx]
        memset(it, 0, sizeof(Inst))
        it.kind = kind
        it.state = ST_WAIT
        it.last_id = -1
        symbol = PyBytes_FromStringAndSize(<const char*>a, alen).decode("ascii", "replace")
        channel = PyBytes_FromStringAndSize(<const char*>b, blen).decode("ascii", "replace")
        self._names.append((symbol, channel, kind))
        self._books.append(OrderBook(0, 0, self._book_capacity) if kind == K_BOOK else None)
        self._pending.append([])
        self._n = idx + 1
        return idx

    cdef int _lookup(self, int kind, const unsigned char* p, Span sym, Span chan) except -1:
        cdef int idx = self._find(kind, p + sym.start, sym.end - sym.start,
                                  p + chan.start, chan.end - chan.start)
        if idx < 0:
            idx = self._add(kind, p + sym.start, sym.end - sym.start,
                            p + chan.start, chan.end - chan.start)
        return idx

    cdef object _error(self, str message, Py_ssize_t offset):
        channel = self._channel
        if channel is None and self._chan.end > self._chan.start:
            channel = PyBytes_FromStringAndSize(
                <const char*>(self._p + self._chan.start),
                self._chan.end - self._chan.start).decode("ascii", "replace")
        return FrameError(message, self.venue, channel, offset)

    # ------------------------------------------------------------------ numbers

    cdef int _rescale(self, int idx, int ps, int ss) except -1:
        cdef Inst* it = &self._inst[idx]
        book = self._books[idx]
        if book is not None:
            (<OrderBook>book).rescale(ps, ss)
        it.price_scale = ps
        it.size_scale = ss
        return 0

    cdef int64_t _decimal(self, int idx, Span v, bint is_price) except? -1:
        """Scaled value of the decimal string ``v`` for instrument ``idx`` (may rescale)."""
        cdef const unsigned char* p = self._p
        cdef Inst* it = &self._inst[idx]
        cdef int64_t out = 0
        cdef int st, need
        cdef Span s
        if not is_string(p, v):
            raise self._error("expected a decimal string", v.start)
        s = string_body(v)
        while True:
            st = parse_scaled(p + s.start, s.end - s.start,
                              it.price_scale if is_price else it.size_scale, &out)
            if st == SCALED_OK:
                return out
            if st != SCALED_TOO_PRECISE:
                text = PyBytes_FromStringAndSize(<const char*>(p + s.start), s.end - s.start)
                raise self._error(f"bad decimal {text!r}", s.start)
            need = significant_decimals(p + s.start, s.end - s.start)
            text = PyBytes_FromStringAndSize(<const char*>(p + s.start), s.end - s.start)
            if it.locked:
                raise self._error(
                    f"{text!r} needs {need} decimals, instrument scale is "
                    f"{it.price_scale if is_price else it.size_scale} (from metadata)", s.start)
            if need < 0 or need > SCALED_MAX_SCALE:
                raise self._error(f"{text!r} needs more than 18 decimals", s.start)
            if is_price:
                self._rescale(idx, need, it.size_scale)
            else:
                self._rescale(idx, it.price_scale, need)

    cdef Py_ssize_t _apply_levels(self, int idx, OrderBook book, int side,
                                  Span arr) except -1:
        """Apply ``[[px, sz, ...], ...]`` starting at ``arr.start`` to ``side``.

        Returns the index just after the array's closing bracket (``arr.end`` only bounds
        the scan, so a caller may pass the end of the enclosing object).
        """
        cdef const unsigned char* p = self._p
        cdef Cursor outer, inner
        cdef Span lvl, px, sz
        cdef int r, st
        cdef int64_t price, size
        if open_container(p, arr.start, arr.end, 91, &outer) != 0:
            raise self._error("expected an array of levels", arr.start)
        while True:
            r = next_element(p, &outer, &lvl)
            if r == 0:
                return outer.pos
            if r < 0 or open_container(p, lvl.start, lvl.end, 91, &inner) != 0 \
                    or next_element(p, &inner, &px) != 1 or next_element(p, &inner, &sz) != 1:
                raise self._error("malformed level", outer.pos)
            price = self._decimal(idx, px, True)
            size = self._decimal(idx, sz, False)
            st = book_apply(book, side, price, size)
            if st == BOOK_EINVAL:
                raise self._error("level out of range (negative size or huge price)", px.start)
            if st == BOOK_ENOMEM:
                raise MemoryError()

    cdef int _scan_decimals(self, Span arr, Py_ssize_t* count, int* ps, int* ss) except -1:
        """Count the levels of ``arr`` and raise ``ps``/``ss`` to the decimals they need."""
        cdef const unsigned char* p = self._p
        cdef Cursor outer, inner
        cdef Span lvl, px, sz
        cdef int r, d
        if open_container(p, arr.start, arr.end, 91, &outer) != 0:
            raise self._error("expected an array of levels", arr.start)
        while True:
            r = next_element(p, &outer, &lvl)
            if r == 0:
                return 0
            if r < 0 or open_container(p, lvl.start, lvl.end, 91, &inner) != 0 \
                    or next_element(p, &inner, &px) != 1 or next_element(p, &inner, &sz) != 1 \
                    or not is_string(p, px) or not is_string(p, sz):
                raise self._error("malformed level", outer.pos)
            px = string_body(px)
            sz = string_body(sz)
            d = significant_decimals(p + px.start, px.end - px.start)
            if d > ps[0]:
                ps[0] = d
            d = significant_decimals(p + sz.start, sz.end - sz.start)
            if d > ss[0]:
                ss[0] = d
            count[0] += 1

    cdef int _fill_levels(self, int idx, Span arr, int64_t[::1] prices,
                          int64_t[::1] sizes) except -1:
        cdef const unsigned char* p = self._p
        cdef Cursor outer, inner
        cdef Span lvl, px, sz
        cdef Py_ssize_t i = 0
        open_container(p, arr.start, arr.end, 91, &outer)
        while next_element(p, &outer, &lvl) == 1:
            open_container(p, lvl.start, lvl.end, 91, &inner)
            next_element(p, &inner, &px)
            next_element(p, &inner, &sz)
            prices[i] = self._decimal(idx, px, True)
            sizes[i] = self._decimal(idx, sz, False)
            i += 1
        return 0

    cdef int _load_snapshot(self, int idx, OrderBook book, Span bids, Span asks,
                            int64_t last_id) except -1:
        """Replace the book from two level arrays in O(n log n) (``load_snapshot``).

        A first pass finds the decimals the snapshot needs, so an unlocked instrument is
        rescaled once before any value is parsed (values parsed at an older scale would
        be wrong); with locked scales the parse pass raises on the first finer value.
        """
        cdef Inst* it = &self._inst[idx]
        cdef Py_ssize_t nb = 0, na = 0
        cdef int ps = it.price_scale, ss = it.size_scale
        self._scan_decimals(bids, &nb, &ps, &ss)
        self._scan_decimals(asks, &na, &ps, &ss)
        book.clear()
        if not it.locked and (ps > it.price_scale or ss > it.size_scale):
            self._rescale(idx, max(ps, it.price_scale), max(ss, it.size_scale))
        bp = np.empty(nb, dtype=np.int64)
        bs = np.empty(nb, dtype=np.int64)
        ap = np.empty(na, dtype=np.int64)
        asz = np.empty(na, dtype=np.int64)
        self._fill_levels(idx, bids, bp, bs)
        self._fill_levels(idx, asks, ap, asz)
        try:
            book.load_snapshot(bp, bs, ap, asz, last_id)
        except ValueError as exc:
            raise self._error(f"bad snapshot: {exc}", bids.start) from None
        return 0

    cdef int _record_trade(self, int idx, int64_t exch_ns, int64_t trade_id, Span px,
                           Span sz, int side) except -1:
        cdef Inst* it = &self._inst[idx]
        cdef int64_t price = self._decimal(idx, px, True)
        cdef int64_t size = self._decimal(idx, sz, False)
        cdef TradeRec* t
        if self._ntrades >= self._trades.shape[0]:
            self.trades_overflow += 1
            return 0
        t = &self._trades[self._ntrades]
        t.exch_ns = exch_ns
        t.recv_ns = self._recv_ns
        t.trade_id = trade_id
        t.price = price
        t.size = size
        t.inst = idx
        t.side = side
        t.price_scale = it.price_scale
        t.size_scale = it.size_scale
        self._ntrades += 1
        return 0

    cdef int _check_trade_id(self, int idx, int64_t first_id, int64_t last_id) noexcept:
        cdef Inst* it = &self._inst[idx]
        it.count += 1
        if it.has_last:
            if first_id <= it.last_id:
                it.id_back += 1
            elif first_id != it.last_id + 1:
                it.id_gaps += 1
        if not it.has_last or last_id > it.last_id:
            it.last_id = last_id
        it.has_last = True
        return 0

    cdef int _after_apply(self, int idx, OrderBook book) noexcept:
        """Crossed-book check after a diff; marks out of sync and returns R_CROSSED."""
        cdef Inst* it = &self._inst[idx]
        if book.sides[BOOK_BID].n and book.sides[BOOK_ASK].n and \
                book_best_price(book, BOOK_BID) >= book_best_price(book, BOOK_ASK):
            it.crossed += 1
            self._desync(idx, book)
            return R_CROSSED
        return R_UPDATE

    cdef void _desync(self, int idx, OrderBook book) noexcept:
        self._inst[idx].state = ST_WAIT
        book.in_sync = False

    cdef int _synced(self, int idx, OrderBook book) noexcept:
        cdef Inst* it = &self._inst[idx]
        if it.ever_synced and it.state == ST_WAIT:
            it.resyncs += 1
        it.ever_synced = True
        book.in_sync = True
        return 0

    # ------------------------------------------------------------------ Python surface

    def set_scales(self, str symbol, str channel, int price_scale, int size_scale) -> None:
        """Fix an instrument's scales from venue metadata (tick / lot decimals).

        Parameters
        ----------
        symbol : str
            Venue symbol (``ETHUSDT``, ``BTC-USDT``).
        channel : str
            Book channel (``depth`` for Binance, ``books`` etc. for OKX) or the trade
            channel (``trade``, ``aggTrade``, ``trades``).
        price_scale, size_scale : int
            Decimals of the tick and lot size, 0..18. Values needing more decimals are then
            a :class:`FrameError` instead of a rescale.
        """
        cdef bytes s = symbol.encode("ascii")
        cdef bytes c = channel.encode("ascii")
        cdef int kind = K_TRADE if channel in ("trade", "aggTrade", "trades") else K_BOOK
        cdef Inst* it
        cdef int idx
        if not 0 <= price_scale <= 18 or not 0 <= size_scale <= 18:
            raise ValueError(f"scales must be within 0..18, were {price_scale}, {size_scale}")
        idx = self._find(kind, <const unsigned char*>s, len(s),
                         <const unsigned char*>c, len(c))
        if idx < 0:
            self._p = <const unsigned char*>s
            idx = self._add(kind, <const unsigned char*>s, len(s),
                            <const unsigned char*>c, len(c))
        it = &self._inst[idx]
        book = self._books[idx]
        if book is not None:
            # a book at other scales cannot be kept: it waits for the next snapshot
            (<OrderBook>book).clear()
            (<OrderBook>book).price_scale = price_scale
            (<OrderBook>book).size_scale = size_scale
            it.state = ST_WAIT
        it.price_scale = price_scale
        it.size_scale = size_scale
        it.locked = True

    def instruments(self) -> list:
        """``(symbol, channel, kind)`` of every instrument seen, in index order."""
        return [(s, c, "book" if k == K_BOOK else "trades") for s, c, k in self._names]

    def book(self, str symbol, str channel) -> OrderBook:
        """The book of ``symbol`` on ``channel``, or ``None`` if none was seen yet."""
        for i, (s, c, k) in enumerate(self._names):
            if s == symbol and c == channel and k == K_BOOK:
                return self._books[i]
        return None

    def stats(self) -> list:
        """Counters per instrument (slow path): dicts as used by the verify report."""
        cdef Inst* it
        cdef int i
        out = []
        for i in range(self._n):
            it = &self._inst[i]
            symbol, channel, kind = self._names[i]
            base = {"venue": self.venue, "market": self.market, "symbol": symbol,
                    "channel": channel}
            if kind == K_BOOK:
                base.update({
                    "messages": it.messages, "snapshots": it.snapshots,
                    "updates_applied": it.applied, "updates_dropped": it.dropped,
                    "updates_buffered": it.buffered, "duplicates": it.duplicates,
                    "sequence_gaps": it.gaps, "seq_resets": it.seq_resets,
                    "resyncs": it.resyncs, "crossed_books": it.crossed,
                    "heartbeats": it.heartbeats,
                    "checksums": {"verified": it.ck_ok, "mismatched": it.ck_bad,
                                  "not_sent": it.ck_none},
                    "book_ticker": {"compared": it.tk_cmp, "matched": it.tk_ok,
                                    "mismatched": it.tk_bad},
                    "in_sync": it.state == ST_SYNCED,
                    "price_scale": it.price_scale, "size_scale": it.size_scale,
                })
                base["kind"] = "book"
            else:
                base.update({"count": it.count, "id_gaps": it.id_gaps,
                             "id_backwards": it.id_back, "price_scale": it.price_scale,
                             "size_scale": it.size_scale, "kind": "trades"})
            out.append(base)
        return out

    def drain_trades(self):
        """Copy out the trade records gathered so far and empty the buffer.

        Returns
        -------
        numpy.ndarray
            Structured array of ``TRADE_DTYPE`` (``inst`` indexes :meth:`instruments`;
            ``side`` is +1 taker buy, -1 taker sell, 0 unknown; price/size are scaled by the
            record's own ``price_scale``/``size_scale``).
        """
        out = self._trades_arr[:self._ntrades].copy()
        self._ntrades = 0
        return out

    @property
    def pending_trades(self) -> int:
        """Trade records waiting in the buffer."""
        return self._ntrades


cdef inline Py_ssize_t _make_key(char* key, int kind, const unsigned char* a, Py_ssize_t alen,
                                 const unsigned char* b, Py_ssize_t blen) noexcept nogil:
    if alen + blen + 2 > MAX_KEY or alen < 0 or blen < 0:
        return -1
    key[0] = <char>(48 + kind)
    memcpy(key + 1, a, alen)
    key[1 + alen] = 0
    memcpy(key + 2 + alen, b, blen)
    return alen + blen + 2


cdef inline uint32_t _fnv(const char* key, Py_ssize_t n) noexcept nogil:
    cdef uint32_t h = 2166136261
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ <unsigned char>key[i]) * 16777619
    return h


# ---------------------------------------------------------------------------- Binance

cdef const char* _DEPTH_S = b"depth"


cdef class BinanceFeed(Feed):
    """Binance market-data frames for one market (``spot``, ``usdm`` or ``coinm``).

    Handles the combined-stream wrapper and raw frames: ``depthUpdate``, ``trade``,
    ``aggTrade``, ``bookTicker``; REST depth snapshots go through :meth:`on_snapshot`.
    Books are keyed ``(symbol, "depth")``; trades ``(symbol, "trade"|"aggTrade")``.

    Parameters
    ----------
    market : str
        ``spot`` (``U``/``u`` rule) or ``usdm`` / ``coinm`` (``pu`` rule).
    trade_capacity : int
        Trade records held until :meth:`drain_trades` (more are counted in
        ``trades_overflow``).
    max_pending : int
        Diffs buffered per symbol while waiting for a snapshot (older ones are dropped
        and counted).
    """

    cdef bint futures

    def __init__(self, str market="spot", Py_ssize_t trade_capacity=65536,
                 Py_ssize_t max_pending=100000, Py_ssize_t book_capacity=64):
        if market not in ("spot", "usdm", "coinm"):
            raise ValueError(f"market must be spot, usdm or coinm, was {market!r}")
        Feed.__init__(self, "binance", market, trade_capacity, max_pending, book_capacity)
        self.futures = market != "spot"

    def on_frame(self, const unsigned char[::1] frame not None, int64_t recv_ns=0) -> int:
        """Parse one WebSocket frame and apply it; returns a result code (see module).

        Raises
        ------
        FrameError
            On malformed JSON or values (the book concerned is marked out of sync).
        """
        if frame.shape[0] == 0:
            raise FrameError("empty frame", self.venue, None, 0)
        self._p = &frame[0]
        self._plen = frame.shape[0]
        self._recv_ns = recv_ns
        self._channel = None
        self.frames += 1
        return self._frame(frame)

    cdef int _frame(self, object frame) except -1:
        cdef const unsigned char* p = self._p
        cdef Py_ssize_t n = self._plen
        cdef Cursor cur
        cdef Span key, data
        cdef Py_ssize_t vstart
        cdef int r
        data.start = 0
        data.end = n
        if open_container(p, 0, n, 123, &cur) != 0:
            self.other_frames += 1
            return R_OTHER
        while True:
            r = next_key(p, &cur, &key, &vstart)
            if r < 0:
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            if key_is(p, key, "data", 4) and vstart < n and p[vstart] == 123:
                data.start = vstart      # its own braces bound it: no need to skip it
                break
            if skip_member_value(p, &cur) != 0:
                raise self._error("malformed JSON", cur.pos)
        return self._event(data, frame)

    cdef int _event(self, Span data, object frame) except -1:
        """One Binance event object. A ``depthUpdate`` whose ``e``, ``s``, ``U``, ``u``
        (and ``pu``) precede its level arrays, as the venue sends them, is sequenced when
        the first array is reached and its levels are applied in the same pass; any other
        key order falls back to collecting spans first."""
        cdef const unsigned char* p = self._p
        cdef Cursor cur
        cdef Span key, val
        cdef Span e, s, b, a, bq, aq, pv, qv, sym
        cdef int64_t U = 0, u = -1, pu = -1, tid = -1, exch = 0, tt = 0
        cdef bint has_e = False, has_s = False, has_b = False, has_a = False
        cdef bint has_U = False, has_u = False, has_pu = False
        cdef bint has_B = False, has_A = False, has_t = False, has_p = False, has_q = False
        cdef bint is_depth = False, gated = False, done_b = False, done_a = False
        cdef int side = 0, r, code, idx = -1
        cdef Py_ssize_t vstart
        cdef unsigned char c
        cdef OrderBook book = None
        if open_container(p, data.start, data.end, 123, &cur) != 0:
            self.other_frames += 1
            return R_OTHER
        while True:
            r = next_key(p, &cur, &key, &vstart)
            if r < 0:
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            c = p[key.start] if key.end - key.start == 1 else 0
            if (c == 98 or c == 97) and is_depth and has_s and has_U and has_u \
                    and (has_pu or not self.futures) and p[vstart] == 91:
                if not gated:
                    sym = string_body(s)
                    idx = self._depth_index(sym)
                    code = self._depth_arrival(idx, frame)
                    if code != R_UPDATE:
                        return code
                    book = <OrderBook>self._books[idx]
                    code = self._depth_gate(idx, book, U, u, pu)
                    if code != R_UPDATE:
                        return code
                    gated = True
                val.start = vstart
                val.end = cur.end
                try:
                    cur.pos = self._apply_levels(idx, book, BOOK_BID if c == 98 else BOOK_ASK,
                                                 val)
                except BaseException:
                    self._desync(idx, book)
                    raise
                if c == 98:
                    done_b = True
                else:
                    done_a = True
                continue
            if skip_member_value(p, &cur) != 0:
                raise self._error("malformed JSON", cur.pos)
            val.start = vstart
            val.end = cur.pos
            if c != 0:
                if c == 101:                     # e
                    e = val
                    has_e = True
                    is_depth = is_string(p, val) and key_is(p, string_body(val), "depthUpdate", 11)
                    if is_depth:
                        self._channel = "depthUpdate"
                elif c == 115:                   # s
                    s = val
                    has_s = is_string(p, val)
                elif c == 98:                    # b
                    b = val
                    has_b = True
                elif c == 97:                    # a
                    a = val
                    has_a = True
                elif c == 85:                    # U
                    has_U = parse_int(p, val, &U) == 0
                elif c == 117:                   # u
                    has_u = parse_int(p, val, &u) == 0
                elif c == 66:                    # B
                    bq = val
                    has_B = True
                elif c == 65:                    # A
                    aq = val
                    has_A = True
                elif c == 116:                   # t
                    has_t = parse_int(p, val, &tid) == 0
                elif c == 112:                   # p
                    pv = val
                    has_p = True
                elif c == 113:                   # q
                    qv = val
                    has_q = True
                elif c == 69:                    # E
                    parse_int(p, val, &exch)
                elif c == 84:                    # T
                    parse_int(p, val, &tt)
                elif c == 109:                   # m
                    side = -1 if p[val.start] == 116 else 1
            elif key_is(p, key, "pu", 2):
                has_pu = parse_int(p, val, &pu) == 0
        if gated:
            self._channel = "depthUpdate"
            if not (done_b and done_a):
                self._desync(idx, book)
                raise self._error("depthUpdate without b or a", data.start)
            return self._depth_done(idx, book, u)
        if not has_e:
            if has_u and has_s and has_b and has_B and has_a and has_A:
                self._channel = "bookTicker"
                return self._ticker(s, u, b, bq, a, aq)
            self.other_frames += 1
            return R_OTHER
        if not has_s:
            self.other_frames += 1
            return R_OTHER
        e = string_body(e)
        if is_depth:
            self._channel = "depthUpdate"
            if not (has_U and has_u and has_b and has_a):
                raise self._error("depthUpdate without U, u, b or a", data.start)
            if self.futures and not has_pu:
                raise self._error("futures depthUpdate without pu", data.start)
            idx = self._depth_index(string_body(s))
            code = self._depth_arrival(idx, frame)
            if code != R_UPDATE:
                return code
            return self._apply_depth(idx, <OrderBook>self._books[idx], U, u, pu, b, a)
        if key_is(p, e, "trade", 5) or key_is(p, e, "aggTrade", 8):
            self._channel = "trade" if e.end - e.start == 5 else "aggTrade"
            if e.end - e.start == 8:
                has_t = has_a and parse_int(p, a, &tid) == 0
            if not (has_t and has_p and has_q):
                raise self._error(f"{self._channel} without id, p or q", data.start)
            return self._trade(string_body(s), e, tid, tt if tt else exch, pv, qv, side)
        if key_is(p, e, "bookTicker", 10):
            self._channel = "bookTicker"
            if not (has_u and has_b and has_B and has_a and has_A):
                raise self._error("bookTicker without u, b, B, a or A", data.start)
            return self._ticker(s, u, b, bq, a, aq)
        self.other_frames += 1
        return R_OTHER

    cdef int _depth_index(self, Span sym) except -1:
        cdef int idx = self._find(K_BOOK, self._p + sym.start, sym.end - sym.start,
                                  <const unsigned char*>_DEPTH_S, 5)
        if idx < 0:
            idx = self._add(K_BOOK, self._p + sym.start, sym.end - sym.start,
                            <const unsigned char*>_DEPTH_S, 5)
        return idx

    cdef int _depth_arrival(self, int idx, object frame) except -1:
        """Count a diff; buffer it (``R_BUFFERED``) while the book waits for a snapshot."""
        cdef Inst* it = &self._inst[idx]
        cdef list pending
        if not self._replaying:
            it.messages += 1
        if it.state != ST_WAIT:
            return R_UPDATE
        pending = <list>self._pending[idx]
        if len(pending) >= self._max_pending and pending:
            del pending[0]
            it.dropped += 1
        pending.append(bytes(frame))
        if not self._replaying:
            it.buffered += 1
        return R_BUFFERED

    cdef int _depth_gate(self, int idx, OrderBook book, int64_t U, int64_t u,
                         int64_t pu) noexcept:
        """Venue sequencing before a diff is applied: ``R_UPDATE`` means apply it.

        Spot (current rule): drop ``u <= L`` while bridging and need ``U <= L + 1``;
        afterwards ``u <= id`` is a repeat and ``U > id + 1`` a gap (overlapping diffs
        apply). Futures: drop ``u < L``, need ``U <= L <= u``; afterwards ``pu == id``.
        """
        cdef Inst* it = &self._inst[idx]
        cdef int64_t L
        if it.state == ST_BRIDGE:
            L = it.snap_id
            if (u <= L) if not self.futures else (u < L):
                it.dropped += 1
                return R_DROPPED
            if (U > L + 1) if not self.futures else (U > L):
                it.gaps += 1
                self._desync(idx, book)
                return R_GAP
            return R_UPDATE
        if u <= it.last_id:
            it.duplicates += 1
            return R_DUPLICATE
        if (U > it.last_id + 1) if not self.futures else (pu != it.last_id):
            it.gaps += 1
            self._desync(idx, book)
            return R_GAP
        return R_UPDATE

    cdef int _depth_done(self, int idx, OrderBook book, int64_t u) noexcept:
        cdef Inst* it = &self._inst[idx]
        cdef int res
        it.applied += 1
        it.last_id = u
        book.last_update_id = u
        it.state = ST_SYNCED
        res = self._after_apply(idx, book)
        if it.held_n and self._release_held(idx, u) == R_TICKER_MISMATCH and res == R_UPDATE:
            res = R_TICKER_MISMATCH
        return res

    cdef int _apply_depth(self, int idx, OrderBook book, int64_t U, int64_t u, int64_t pu,
                          Span b, Span a) except -1:
        cdef int code = self._depth_gate(idx, book, U, u, pu)
        if code != R_UPDATE:
            return code
        try:
            self._apply_levels(idx, book, BOOK_BID, b)
            self._apply_levels(idx, book, BOOK_ASK, a)
        except BaseException:
            self._desync(idx, book)
            raise
        return self._depth_done(idx, book, u)

    cdef int _ticker(self, Span s, int64_t u, Span b, Span bq, Span a, Span aq) except -1:
        """Compare a bookTicker with the book after update id ``u``.

        The ticker stream is real time and usually arrives before the diff batch that
        ends at its ``u``: such a ticker is held (bounded ring) and compared right after
        that diff is applied. Tickers whose ``u`` ends no applied diff are never compared.
        """
        cdef const unsigned char* p = self._p
        cdef Span sym
        cdef HeldTicker t
        cdef HeldTicker* slot
        cdef Inst* it
        cdef int idx
        if not is_string(p, s):
            raise self._error("bookTicker symbol is not a string", s.start)
        sym = string_body(s)
        idx = self._find(K_BOOK, p + sym.start, sym.end - sym.start,
                         <const unsigned char*>_DEPTH_S, 5)
        if idx < 0:
            return R_TICKER
        it = &self._inst[idx]
        if it.state == ST_SYNCED and u < it.last_id:
            return R_TICKER
        t.u = u
        t.bp = self._decimal(idx, b, True)
        t.bs = self._decimal(idx, bq, False)
        t.ap = self._decimal(idx, a, True)
        t.asz = self._decimal(idx, aq, False)
        t.ps = it.price_scale
        t.ss = it.size_scale
        if it.state == ST_SYNCED and u == it.last_id:
            return self._compare_ticker(idx, &t)
        if it.held == NULL:
            it.held = <HeldTicker*>malloc(HELD_CAP * sizeof(HeldTicker))
            if it.held == NULL:
                raise MemoryError()
        if it.held_n == HELD_CAP:
            it.held_head = (it.held_head + 1) % HELD_CAP
            it.held_n -= 1
        slot = &it.held[(it.held_head + it.held_n) % HELD_CAP]
        slot[0] = t
        it.held_n += 1
        return R_TICKER

    cdef int _compare_ticker(self, int idx, HeldTicker* t) noexcept:
        cdef Inst* it = &self._inst[idx]
        cdef OrderBook book = <OrderBook>self._books[idx]
        cdef int64_t fp = _POW10[it.price_scale - t.ps]
        cdef int64_t fs = _POW10[it.size_scale - t.ss]
        it.tk_cmp += 1
        if t.bp * fp == book_best_price(book, BOOK_BID) \
                and t.bs * fs == book_best_size(book, BOOK_BID) \
                and t.ap * fp == book_best_price(book, BOOK_ASK) \
                and t.asz * fs == book_best_size(book, BOOK_ASK):
            it.tk_ok += 1
            return R_TICKER
        it.tk_bad += 1
        self._desync(idx, book)
        return R_TICKER_MISMATCH

    cdef int _release_held(self, int idx, int64_t u) noexcept:
        """After the diff ending at ``u``: drop older held tickers, compare one at ``u``."""
        cdef Inst* it = &self._inst[idx]
        cdef HeldTicker* t
        cdef int res = R_UPDATE
        while it.held_n:
            t = &it.held[it.held_head]
            if t.u > u:
                break
            if t.u == u:
                res = self._compare_ticker(idx, t)
            it.held_head = (it.held_head + 1) % HELD_CAP
            it.held_n -= 1
        return res

    cdef int _trade(self, Span sym, Span e, int64_t tid, int64_t ms, Span pv, Span qv,
                    int side) except -1:
        cdef int idx = self._lookup(K_TRADE, self._p, sym, e)
        self._check_trade_id(idx, tid, tid)
        self._record_trade(idx, ms * 1000000, tid, pv, qv, side)
        return R_TRADE

    def on_snapshot(self, str symbol, const unsigned char[::1] payload not None,
                    int64_t recv_ns=0) -> int:
        """Load a REST depth snapshot (``{"lastUpdateId":..,"bids":..,"asks":..}``).

        The book is replaced, then the diffs buffered for ``symbol`` are bridged by the
        venue rule. Returns ``SNAPSHOT``, or ``GAP`` if the buffered diffs cannot be
        bridged (the book then waits for another snapshot).
        """
        cdef const unsigned char* p
        cdef Py_ssize_t n = payload.shape[0]
        cdef Cursor cur
        cdef Span key, val, bids, asks
        cdef int64_t L = -1
        cdef bint hb = False, ha = False
        cdef int r, idx, res = R_SNAPSHOT, code
        cdef Inst* it
        cdef OrderBook book
        if n == 0:
            raise FrameError("empty snapshot", self.venue, "depth", 0)
        self._p = &payload[0]
        self._plen = n
        self._recv_ns = recv_ns
        self._channel = "depthSnapshot"
        p = self._p
        if open_container(p, 0, n, 123, &cur) != 0:
            raise self._error("snapshot is not a JSON object", 0)
        while True:
            r = next_member(p, &cur, &key, &val)
            if r < 0:
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            if key_is(p, key, "lastUpdateId", 12):
                if parse_int(p, val, &L) != 0:
                    raise self._error("bad lastUpdateId", val.start)
            elif key_is(p, key, "bids", 4):
                bids = val
                hb = True
            elif key_is(p, key, "asks", 4):
                asks = val
                ha = True
        if L < 0 or not hb or not ha:
            raise self._error("snapshot needs lastUpdateId, bids and asks", 0)
        sb = symbol.encode("ascii")
        idx = self._find(K_BOOK, <const unsigned char*>(<bytes>sb), len(sb),
                         <const unsigned char*>_DEPTH_S, 5)
        if idx < 0:
            idx = self._add(K_BOOK, <const unsigned char*>(<bytes>sb), len(sb),
                            <const unsigned char*>_DEPTH_S, 5)
        it = &self._inst[idx]
        book = <OrderBook>self._books[idx]
        it.messages += 1
        try:
            self._load_snapshot(idx, book, bids, asks, L)
        except BaseException:
            self._desync(idx, book)
            raise
        it.snapshots += 1
        it.snap_id = L
        it.last_id = L
        if book.sides[BOOK_BID].n and book.sides[BOOK_ASK].n and \
                book_best_price(book, BOOK_BID) >= book_best_price(book, BOOK_ASK):
            it.crossed += 1
            self._desync(idx, book)
            return R_CROSSED
        self._synced(idx, book)
        it.state = ST_BRIDGE
        pending = self._pending[idx]
        self._pending[idx] = []
        for raw in pending:
            code = self._replay(raw)
            if code == R_GAP or code == R_CROSSED or code == R_CHECKSUM:
                res = R_GAP
        return res

    cdef int _replay(self, bytes raw) except -1:
        """Re-run a buffered diff (its arrival was already counted)."""
        cdef const unsigned char[::1] view = raw
        cdef int code
        self._p = &view[0]
        self._plen = view.shape[0]
        self._replaying = True
        try:
            code = self._frame(raw)
        finally:
            self._replaying = False
        return code


# ---------------------------------------------------------------------------- OKX

cdef enum:
    OKX_INCREMENTAL = 1   # books, books50-l2-tbt, books-l2-tbt: snapshot + updates
    OKX_FULL = 2          # books5, bbo-tbt: every message is the whole (top-N) book
    OKX_TRADES = 3


cdef int _okx_channel_kind(const unsigned char* p, Span c) noexcept:
    if key_is(p, c, "books", 5) or key_is(p, c, "books-l2-tbt", 12) \
            or key_is(p, c, "books50-l2-tbt", 14):
        return OKX_INCREMENTAL
    if key_is(p, c, "books5", 6) or key_is(p, c, "bbo-tbt", 7):
        return OKX_FULL
    if key_is(p, c, "trades", 6):
        return OKX_TRADES
    return 0


cdef class OkxFeed(Feed):
    """OKX v5 public frames: ``books``, ``books5``, ``books50-l2-tbt``, ``books-l2-tbt``,
    ``bbo-tbt`` and ``trades``, for spot and derivatives alike.

    Books are keyed ``(instId, channel)``; trades ``(instId, "trades")``. Subscription
    acks, errors, ``pong`` and other channels return ``OTHER``.

    Duplicate detection: with ``seqId`` a repeated message is recognised by its ids; the
    older captures without ``seqId`` carry a ``ts`` per message, and a message repeating
    the previous ``ts`` and ``checksum`` of its instrument is counted as a duplicate.
    """

    def __init__(self, str market="unknown", Py_ssize_t trade_capacity=65536,
                 Py_ssize_t book_capacity=64):
        Feed.__init__(self, "okx", market, trade_capacity, 0, book_capacity)

    def on_frame(self, const unsigned char[::1] frame not None, int64_t recv_ns=0) -> int:
        """Parse one WebSocket frame and apply it; returns a result code (see module).

        Raises
        ------
        FrameError
            On malformed JSON or values (the book concerned is marked out of sync).
        """
        cdef const unsigned char* p
        cdef Py_ssize_t n = frame.shape[0]
        cdef Cursor cur, dc
        cdef Span key, val, arg, data, action, chan, inst, item
        cdef bint has_arg = False, has_data = False, has_action = False, has_event = False
        cdef int r, ck, code, res
        if n == 0:
            raise FrameError("empty frame", self.venue, None, 0)
        self._p = &frame[0]
        self._plen = n
        self._recv_ns = recv_ns
        self._channel = None
        self._chan.start = 0
        self._chan.end = 0
        self.frames += 1
        p = self._p
        if open_container(p, 0, n, 123, &cur) != 0:
            self.other_frames += 1          # e.g. the text frame "pong"
            return R_OTHER
        while True:
            r = next_member(p, &cur, &key, &val)
            if r < 0:
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            if key_is(p, key, "arg", 3):
                arg = val
                has_arg = True
            elif key_is(p, key, "data", 4):
                data = val
                has_data = True
            elif key_is(p, key, "action", 6):
                action = val
                has_action = True
            elif key_is(p, key, "event", 5):
                has_event = True
        if has_event or not has_arg or not has_data:
            self.other_frames += 1
            return R_OTHER
        if _okx_arg(p, arg, &chan, &inst) != 0:
            raise self._error("arg needs channel and instId strings", arg.start)
        ck = _okx_channel_kind(p, chan)
        if ck == 0:
            self.other_frames += 1
            return R_OTHER
        self._chan = chan
        if open_container(p, data.start, data.end, 91, &dc) != 0:
            raise self._error("data is not an array", data.start)
        if ck == OKX_TRADES:
            res = R_TRADE
            while True:
                r = next_element(p, &dc, &item)
                if r < 0:
                    raise self._error("malformed data array", dc.pos)
                if r == 0:
                    return res
                self._okx_trade(inst, chan, item)
        res = R_HEARTBEAT
        while True:
            r = next_element(p, &dc, &item)
            if r < 0:
                raise self._error("malformed data array", dc.pos)
            if r == 0:
                return res
            code = self._okx_book(inst, chan, ck, has_action, action, item)
            if code > res or res == R_HEARTBEAT:
                res = code

    cdef int _okx_book(self, Span inst, Span chan, int ck, bint has_action, Span action,
                       Span item) except -1:
        cdef const unsigned char* p = self._p
        cdef Cursor cur
        cdef Span key, val, asks, bids, act
        cdef bint ha = False, hb = False, has_seq = False, has_prev = False, has_ck = False
        cdef bint snapshot, empty
        cdef int64_t seq = -1, prev = -1, checksum = 0, ts = 0
        cdef int r, idx, res, nlev
        cdef Inst* it
        cdef OrderBook book
        if open_container(p, item.start, item.end, 123, &cur) != 0:
            raise self._error("book data item is not an object", item.start)
        while True:
            r = next_member(p, &cur, &key, &val)
            if r < 0:
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            if key_is(p, key, "asks", 4):
                asks = val
                ha = True
            elif key_is(p, key, "bids", 4):
                bids = val
                hb = True
            elif key_is(p, key, "seqId", 5):
                has_seq = parse_int(p, val, &seq) == 0
            elif key_is(p, key, "prevSeqId", 9):
                has_prev = parse_int(p, val, &prev) == 0
            elif key_is(p, key, "checksum", 8):
                has_ck = parse_int(p, val, &checksum) == 0
            elif key_is(p, key, "ts", 2):
                parse_int(p, val, &ts)
        if not ha or not hb:
            raise self._error("book message without asks or bids", item.start)
        idx = self._lookup(K_BOOK, p, inst, chan)
        it = &self._inst[idx]
        book = <OrderBook>self._books[idx]
        it.messages += 1
        if ck == OKX_FULL:
            snapshot = True
        else:
            if not has_action:
                raise self._error("incremental book message without action", item.start)
            act = string_body(action)
            snapshot = key_is(p, act, "snapshot", 8)
            if not snapshot and not key_is(p, act, "update", 6):
                raise self._error("action must be snapshot or update", action.start)
        if snapshot:
            try:
                if ck == OKX_FULL:      # top 5 / top 1: cheaper than building arrays
                    book.clear()
                    self._apply_levels(idx, book, BOOK_BID, bids)
                    self._apply_levels(idx, book, BOOK_ASK, asks)
                else:
                    self._load_snapshot(idx, book, bids, asks, seq)
            except BaseException:
                self._desync(idx, book)
                raise
            it.snapshots += 1
            self._synced(idx, book)
            it.state = ST_SYNCED
            res = R_SNAPSHOT
        else:
            if it.state != ST_SYNCED:
                it.dropped += 1
                return R_DROPPED
            empty = _is_empty_array(p, asks) and _is_empty_array(p, bids)
            if has_seq and has_prev:
                if seq == prev and empty and prev == it.last_id:
                    it.heartbeats += 1
                    return R_HEARTBEAT
                if prev != it.last_id:
                    if seq == it.last_id:
                        it.duplicates += 1
                        return R_DUPLICATE
                    it.gaps += 1
                    self._desync(idx, book)
                    return R_GAP
                if seq < prev:
                    it.seq_resets += 1
            elif it.has_last and ts == it.last_ts and checksum == it.last_checksum \
                    and ts != 0:
                it.duplicates += 1
                return R_DUPLICATE
            try:
                self._apply_levels(idx, book, BOOK_BID, bids)
                self._apply_levels(idx, book, BOOK_ASK, asks)
            except BaseException:
                self._desync(idx, book)
                raise
            it.applied += 1
            res = R_UPDATE
        it.last_id = seq
        it.last_ts = ts
        it.last_checksum = checksum
        it.has_last = True
        book.last_update_id = seq
        if book.sides[BOOK_BID].n and book.sides[BOOK_ASK].n and \
                book_best_price(book, BOOK_BID) >= book_best_price(book, BOOK_ASK):
            it.crossed += 1
            self._desync(idx, book)
            return R_CROSSED
        if not has_ck or checksum == 0:
            it.ck_none += 1
        elif okx_checksum(book) == <int32_t>checksum:
            it.ck_ok += 1
        else:
            it.ck_bad += 1
            self._desync(idx, book)
            return R_CHECKSUM
        return res

    cdef int _okx_trade(self, Span inst, Span chan, Span item) except -1:
        cdef const unsigned char* p = self._p
        cdef Cursor cur
        cdef Span key, val, px, sz, sd
        cdef bint hp = False, hs = False, hid = False, hside = False
        cdef int64_t tid = 0, ts = 0, count = 1
        cdef int r, idx, side = 0
        if open_container(p, item.start, item.end, 123, &cur) != 0:
            raise self._error("trade item is not an object", item.start)
        while True:
            r = next_member(p, &cur, &key, &val)
            if r < 0:
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            if key_is(p, key, "px", 2):
                px = val
                hp = True
            elif key_is(p, key, "sz", 2):
                sz = val
                hs = True
            elif key_is(p, key, "tradeId", 7):
                hid = parse_int(p, val, &tid) == 0
            elif key_is(p, key, "ts", 2):
                parse_int(p, val, &ts)
            elif key_is(p, key, "count", 5):
                if parse_int(p, val, &count) != 0 or count < 1:
                    count = 1
            elif key_is(p, key, "side", 4):
                sd = string_body(val)
                side = 1 if key_is(p, sd, "buy", 3) else (-1 if key_is(p, sd, "sell", 4) else 0)
        if not (hp and hs and hid):
            raise self._error("trade without tradeId, px or sz", item.start)
        idx = self._lookup(K_TRADE, p, inst, chan)
        self._check_trade_id(idx, tid - count + 1, tid)
        self._record_trade(idx, ts * 1000000, tid, px, sz, side)
        return 0


cdef int _okx_arg(const unsigned char* p, Span arg, Span* chan, Span* inst) noexcept:
    cdef Cursor cur
    cdef Span key, val
    cdef bint hc = False, hi = False
    cdef int r
    if open_container(p, arg.start, arg.end, 123, &cur) != 0:
        return -1
    while True:
        r = next_member(p, &cur, &key, &val)
        if r < 0:
            return -1
        if r == 0:
            break
        if key_is(p, key, "channel", 7) and is_string(p, val):
            chan[0] = string_body(val)
            hc = True
        elif key_is(p, key, "instId", 6) and is_string(p, val):
            inst[0] = string_body(val)
            hi = True
    return 0 if hc and hi else -1


cdef bint _is_empty_array(const unsigned char* p, Span v) noexcept:
    cdef Py_ssize_t i = skip_ws(p, v.start + 1, v.end)
    return p[v.start] == 91 and i < v.end and p[i] == 93
