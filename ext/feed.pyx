# cython: language_level=3, auto_pickle=False
"""Feed machinery shared by the wire parsers (``ext.binance``, ``ext.okx``).

A feed owns one :class:`ext.book.OrderBook` per instrument and channel and applies each
frame in one call: the JSON bytes are walked once or twice in place
(``ext/jsonscan.pxd``), decimal strings become scaled integers exactly
(``ext/scaled.pxd``), levels go into the book with ``book_apply`` and trades into a
preallocated record buffer (``TRADE_DTYPE``). This module holds what the venues share:
the instrument table (a C hash table, no Python object per message), counters, scale
handling, snapshot loading, trade records, crossed-book and checksum helpers, the result
codes and :class:`FrameError`. The venue rules live in ``binance.pyx`` and ``okx.pyx``.

Book deltas (``delta_capacity > 0``): every level a frame changes in a book is also
written to a second preallocated buffer as a ``DELTA_DTYPE`` record, stamped when the
message is accepted with its venue time, receive time and update id (the last level of a
message carries ``DELTA_LAST``). A message the rules reject leaves no record. A snapshot
(and a book whose records were lost to a full buffer) is written as the whole book, every
level flagged ``DELTA_SNAPSHOT``: a consumer replaces its book with such a group. Replaying
the records rebuilds every accepted book state exactly (``tests/ext/test_feed_deltas.py``).

A frame that fails a check is reported by the return code, counted, and the instrument's
book is marked out of sync (``OrderBook.in_sync`` false) until a new snapshot arrives. A
book is never silently wrong.

Scales: each instrument has a price and a size scale (decimals). :meth:`Feed.set_scales`
fixes them from venue metadata; a value that needs more decimals is then a
:class:`FrameError`. Without metadata the scales are inferred from the data and raised
exactly (the book is rescaled) when a finer increment appears, so legitimate data is never
rejected.

Frames that are not market data of a known channel (subscription acks, errors, pongs,
other channels) return ``OTHER`` without touching any state: the caller hands them to its
slower Python path.
"""

import numpy as np

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
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
    SLIP_BOOK_MAX_PRICE,
    book_apply,
    book_apply_at,
    book_best_price,
    book_lower_bound_near,
)
from ext.jsonscan cimport (
    Cursor,
    Span,
    is_string,
    next_element,
    open_container,
    skip_value,
    skip_ws,
    string_body,
)
from ext.scaled cimport (
    SCALED_MAX_SCALE,
    SCALED_OK,
    SCALED_TOO_PRECISE,
    parse_scaled,
    significant_decimals,
    slip_quoted_scaled,
)

# ---------------------------------------------------------------------------- results

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
STALE_SNAPSHOT = R_STALE_SNAPSHOT

RESULT_NAMES = {
    R_UPDATE: "update", R_SNAPSHOT: "snapshot", R_BUFFERED: "buffered",
    R_DROPPED: "dropped", R_TRADE: "trade", R_TICKER: "ticker", R_HEARTBEAT: "heartbeat",
    R_OTHER: "other", R_GAP: "gap", R_CHECKSUM: "checksum_mismatch", R_CROSSED: "crossed",
    R_TICKER_MISMATCH: "ticker_mismatch", R_DUPLICATE: "duplicate",
    R_STALE_SNAPSHOT: "stale_snapshot",
}

TRADE_DTYPE = np.dtype([
    ("exch_ns", "<i8"), ("recv_ns", "<i8"), ("trade_id", "<i8"), ("price", "<i8"),
    ("size", "<i8"), ("inst", "<i4"), ("side", "i1"), ("price_scale", "i1"),
    ("size_scale", "i1"), ("_pad", "u1"),
])

DELTA_DTYPE = np.dtype([
    ("exch_ns", "<i8"), ("recv_ns", "<i8"), ("seq", "<i8"), ("price", "<i8"),
    ("size", "<i8"), ("inst", "<i4"), ("side", "i1"), ("flags", "u1"),
    ("price_scale", "i1"), ("size_scale", "i1"),
])
DELTA_SNAPSHOT = D_SNAPSHOT
DELTA_LAST = D_LAST


class FrameError(ValueError):
    """A frame that cannot be parsed: names venue, channel and the byte offset."""

    def __init__(self, message, venue, channel, offset):
        super().__init__(f"{venue} {channel or '?'} frame, byte {offset}: {message}")
        self.venue = venue
        self.channel = channel
        self.offset = offset


# ---------------------------------------------------------------------------- CRC32

cdef uint32_t[8][256] _CRC_TABLE   # slice-by-8 tables; [0] is the classic one
cdef int64_t[19] _POW10

cdef void _init_tables() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = <uint32_t>i
        for k in range(8):
            c = (0xEDB88320U ^ (c >> 1)) if (c & 1) else (c >> 1)
        _CRC_TABLE[0][i] = c
    for i in range(256):
        for k in range(1, 8):
            c = _CRC_TABLE[k - 1][i]
            _CRC_TABLE[k][i] = (c >> 8) ^ _CRC_TABLE[0][c & 0xFF]
    _POW10[0] = 1
    for i in range(1, 19):
        _POW10[i] = _POW10[i - 1] * 10

_init_tables()


cdef extern from *:
    """
    /* CRC-32 (zlib, reflected polynomial 0xEDB88320) by carry-less multiplication.
       The byte stream is read 16 bytes at a time as 128-bit reflected polynomials (bit j of
       a register <-> x^(127-j)); a register is moved D bits forward by multiplying its two
       64-bit halves with x^(64+D) mod P and x^D mod P and adding the product to the register
       D bits further on. A 64x64 product of reflected operands carries one extra factor x,
       so every constant is stored as x^(k-1) mod P, reflected into a 64-bit lane (degree m
       at bit 63-m). Derivation and a bit-exact model: docs/book.md, "OKX checksum CRC-32". */
    #if defined(__x86_64__) && defined(__GNUC__)
    #define SLIP_CRC_CLMUL 1
    #include <stdint.h>
    #include <wmmintrin.h>
    #include <smmintrin.h>

    #define SLIP_CRC_K4_HI 0x653d982200000000ULL   /* x^(64+512-1) mod P: fold by 64 bytes */
    #define SLIP_CRC_K4_LO 0xcad38e8f00000000ULL   /* x^(512-1) mod P */
    #define SLIP_CRC_K1_HI 0x65673b4600000000ULL   /* x^(64+128-1) mod P: fold by 16 bytes */
    #define SLIP_CRC_K1_LO 0x9ba54c6f00000000ULL   /* x^(128-1) mod P */
    #define SLIP_CRC_K96   0xccaa009e00000000ULL   /* x^(96-1) mod P: 128 -> 96 bits */
    #define SLIP_CRC_K64   0xb8bc676500000000ULL   /* x^(64-1) mod P: 96 -> 64 bits */
    #define SLIP_CRC_MU    0x1f7011641ULL          /* floor(x^64 / P), reflected 33 bits */
    #define SLIP_CRC_POLY  0x1db710641ULL          /* P, reflected 33 bits */

    __attribute__((target("pclmul,sse4.1")))
    static inline __m128i slip_crc_fold(__m128i x, __m128i k) {
        return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
    }

    /* Raw CRC register (no pre/post inversion) after `n` bytes, n a multiple of 16, n >= 16. */
    __attribute__((target("pclmul,sse4.1")))
    static uint32_t slip_crc32_clmul(uint32_t crc, const unsigned char* p, size_t n) {
        __m128i x0, x1, x2, x3, k, t;
        x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i*)p), _mm_cvtsi32_si128((int)crc));
        p += 16;
        n -= 16;
        if (n >= 48) {
            x1 = _mm_loadu_si128((const __m128i*)p);
            x2 = _mm_loadu_si128((const __m128i*)(p + 16));
            x3 = _mm_loadu_si128((const __m128i*)(p + 32));
            p += 48;
            n -= 48;
            k = _mm_set_epi64x((long long)SLIP_CRC_K4_LO, (long long)SLIP_CRC_K4_HI);
            while (n >= 64) {
                x0 = _mm_xor_si128(slip_crc_fold(x0, k), _mm_loadu_si128((const __m128i*)p));
                x1 = _mm_xor_si128(slip_crc_fold(x1, k), _mm_loadu_si128((const __m128i*)(p + 16)));
                x2 = _mm_xor_si128(slip_crc_fold(x2, k), _mm_loadu_si128((const __m128i*)(p + 32)));
                x3 = _mm_xor_si128(slip_crc_fold(x3, k), _mm_loadu_si128((const __m128i*)(p + 48)));
                p += 64;
                n -= 64;
            }
            k = _mm_set_epi64x((long long)SLIP_CRC_K1_LO, (long long)SLIP_CRC_K1_HI);
            x0 = _mm_xor_si128(slip_crc_fold(x0, k), x1);
            x0 = _mm_xor_si128(slip_crc_fold(x0, k), x2);
            x0 = _mm_xor_si128(slip_crc_fold(x0, k), x3);
        }
        k = _mm_set_epi64x((long long)SLIP_CRC_K1_LO, (long long)SLIP_CRC_K1_HI);
        while (n >= 16) {
            x0 = _mm_xor_si128(slip_crc_fold(x0, k), _mm_loadu_si128((const __m128i*)p));
            p += 16;
            n -= 16;
        }
        /* x0 * x^32 mod P: the high-degree half (low qword) times x^96, the other half moved
           to bits 32..95 (times x^32); then bits 32..63 (degrees 64..95) times x^64 */
        t = _mm_xor_si128(_mm_clmulepi64_si128(x0, _mm_cvtsi64_si128((long long)SLIP_CRC_K96), 0x00),
                          _mm_slli_si128(_mm_srli_si128(x0, 8), 4));
        t = _mm_xor_si128(_mm_clmulepi64_si128(t, _mm_cvtsi64_si128((long long)SLIP_CRC_K64), 0x00), t);
        t = _mm_srli_si128(t, 8);           /* the 64-bit remainder T, reflected, in the low qword */
        /* Barrett: q = floor(T_hi * mu / x^32) (low 32 bits of the product), T mod P =
           T_lo + q*P mod x^32 (bits 32..63 of the product) */
        x1 = _mm_clmulepi64_si128(_mm_and_si128(t, _mm_cvtsi32_si128(-1)),
                                  _mm_cvtsi64_si128((long long)SLIP_CRC_MU), 0x00);
        x1 = _mm_clmulepi64_si128(_mm_and_si128(x1, _mm_cvtsi32_si128(-1)),
                                  _mm_cvtsi64_si128((long long)SLIP_CRC_POLY), 0x00);
        return (uint32_t)_mm_extract_epi32(_mm_xor_si128(x1, t), 1);
    }

    static int slip_crc_has_clmul(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    }
    #else
    #define SLIP_CRC_CLMUL 0
    static uint32_t slip_crc32_clmul(uint32_t crc, const unsigned char* p, size_t n) {
        (void)p; (void)n; return crc;   /* never called: slip_crc_has_clmul() is 0 */
    }
    static int slip_crc_has_clmul(void) { return 0; }
    #endif
    """
    uint32_t slip_crc32_clmul(uint32_t crc, const unsigned char* p, size_t n) noexcept nogil
    int slip_crc_has_clmul() noexcept nogil

cdef bint _CRC_CLMUL = slip_crc_has_clmul() != 0   # chosen once, at import


cdef inline uint32_t _crc32_table(uint32_t c, const unsigned char* p,
                                  Py_ssize_t n) noexcept nogil:
    """Raw CRC-32 register ``c`` (zlib polynomial) after ``p[:n]``, slice-by-8: eight table
    lookups per 8 bytes in parallel, then byte by byte."""
    cdef uint32_t one, two
    while n >= 8:
        one = (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
               | (<uint32_t>p[3] << 24)) ^ c
        two = <uint32_t>p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16) \
            | (<uint32_t>p[7] << 24)
        c = (_CRC_TABLE[7][one & 0xFF] ^ _CRC_TABLE[6][(one >> 8) & 0xFF]
             ^ _CRC_TABLE[5][(one >> 16) & 0xFF] ^ _CRC_TABLE[4][one >> 24]
             ^ _CRC_TABLE[3][two & 0xFF] ^ _CRC_TABLE[2][(two >> 8) & 0xFF]
             ^ _CRC_TABLE[1][(two >> 16) & 0xFF] ^ _CRC_TABLE[0][two >> 24])
        p += 8
        n -= 8
    while n > 0:
        c = _CRC_TABLE[0][(c ^ p[0]) & 0xFF] ^ (c >> 8)
        p += 1
        n -= 1
    return c


cdef inline uint32_t _crc32(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """CRC-32 (zlib polynomial) of ``p[:n]``: whole 16-byte blocks by carry-less multiply
    folding where the CPU has PCLMULQDQ (x86-64, checked at import), the rest (and
    everything elsewhere) by the slice-by-8 tables."""
    cdef uint32_t c = 0xFFFFFFFFU
    cdef Py_ssize_t m
    if _CRC_CLMUL and n >= 32:
        m = n & ~(<Py_ssize_t>15)
        c = slip_crc32_clmul(c, p, <size_t>m)
        p += m
        n -= m
    return _crc32_table(c, p, n) ^ 0xFFFFFFFFU


cdef uint32_t crc32_portable(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """CRC-32 of ``p[:n]`` by the tables only (the fallback path, for tests)."""
    return _crc32_table(0xFFFFFFFFU, p, n) ^ 0xFFFFFFFFU


cdef bint crc32_uses_clmul() noexcept nogil:
    """Whether :func:`okx_crc32` folds with PCLMULQDQ on this CPU."""
    return _CRC_CLMUL


cdef extern from *:
    """
    static const char SLIP_DIGITS2[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    """
    const char SLIP_DIGITS2[201]


cdef inline Py_ssize_t _fmt_scaled(char* out, int64_t v, int scale) noexcept nogil:
    """Shortest exact decimal text of ``v * 10**-scale`` into ``out``; returns its length.

    Trailing fractional zeros are dropped first, then digits are produced two at a time.
    """
    cdef char tmp[24]
    cdef Py_ssize_t n = 0, k = 0, i
    cdef bint neg = v < 0
    cdef uint64_t u = <uint64_t>(-v) if neg else <uint64_t>v
    cdef uint32_t r
    if u == 0:
        out[0] = 48
        return 1
    while scale > 0 and u % 10 == 0:
        u //= 10
        scale -= 1
    while u >= 100:               # least significant first
        r = <uint32_t>(u % 100)
        u //= 100
        tmp[n] = SLIP_DIGITS2[2 * r + 1]
        tmp[n + 1] = SLIP_DIGITS2[2 * r]
        n += 2
    if u >= 10:
        tmp[n] = SLIP_DIGITS2[2 * u + 1]
        tmp[n + 1] = SLIP_DIGITS2[2 * u]
        n += 2
    else:
        tmp[n] = <char>(48 + u)
        n += 1
    while n <= scale:
        tmp[n] = 48
        n += 1
    if neg:
        out[k] = 45
        k += 1
    for i in range(n - 1, scale - 1, -1):
        out[k] = tmp[i]
        k += 1
    if scale > 0:
        out[k] = 46
        k += 1
        for i in range(scale - 1, -1, -1):
            out[k] = tmp[i]
            k += 1
    return k



cdef inline Py_ssize_t _put_level(char* buf, Py_ssize_t k, int64_t price, int64_t size,
                                 int ps, int ss) noexcept nogil:
    """Append ``[:]price:size`` (a colon first unless the text is empty); new length."""
    if k:
        buf[k] = 58
        k += 1
    k += _fmt_scaled(buf + k, price, ps)
    buf[k] = 58
    k += 1
    return k + _fmt_scaled(buf + k, size, ss)


cdef uint32_t okx_crc32(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """CRC-32 (zlib polynomial) of ``p[:n]``; shared with ``ext.okx``'s cached checksum."""
    return _crc32(p, n)


cdef int32_t okx_checksum(OrderBook book) noexcept:
    """OKX legacy CRC32 (signed) of the top 25 levels, text rebuilt exactly from the ints."""
    cdef char buf[8192]
    cdef Py_ssize_t k = 0, i
    cdef const BookSide* b = &book.sides[BOOK_BID]
    cdef const BookSide* a = &book.sides[BOOK_ASK]
    cdef Py_ssize_t bi = b.n - 1, ai = a.n - 1
    cdef int ps = book.price_scale, ss = book.size_scale
    for i in range(25):
        while bi >= 0 and b.sizes[bi] == 0:
            bi -= 1
        if bi >= 0:
            k = _put_level(buf, k, b.keys[bi], b.sizes[bi], ps, ss)
            bi -= 1
        while ai >= 0 and a.sizes[ai] == 0:
            ai -= 1
        if ai >= 0:
            k = _put_level(buf, k, -a.keys[ai], a.sizes[ai], ps, ss)
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
        self._preset = {}

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
                 Py_ssize_t max_pending=100000, Py_ssize_t book_capacity=64,
                 Py_ssize_t delta_capacity=0):
        if trade_capacity < 1:
            raise ValueError(f"trade_capacity must be >= 1, was {trade_capacity}")
        if delta_capacity < 0:
            raise ValueError(f"delta_capacity must be >= 0, was {delta_capacity}")
        if max_pending < 0:
            raise ValueError(f"max_pending must be >= 0, was {max_pending}")
        self.venue = venue
        self.market = market
        self._max_pending = max_pending
        self._book_capacity = book_capacity
        self._trades_arr = np.empty(trade_capacity, dtype=TRADE_DTYPE)
        self._trades = self._trades_arr
        self._ntrades = 0
        cdef DeltaRec[::1] dv
        self._deltas_arr = np.zeros(max(delta_capacity, 1), dtype=DELTA_DTYPE)
        dv = self._deltas_arr
        self._dp = &dv[0]           # the array is kept alive by ``_deltas_arr``
        self._dcap = delta_capacity
        self._nd = 0
        self._dmark = 0

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
        preset = self._preset.get(symbol) if self._preset else None
        if preset is not None:          # scales from venue metadata: fixed from the start
            it.price_scale, it.size_scale = preset
            it.locked = True
        self._books.append(OrderBook(it.price_scale, it.size_scale, self._book_capacity)
                           if kind == K_BOOK else None)
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
        if ps > SCALED_MAX_SCALE or ss > SCALED_MAX_SCALE:
            raise self._error(f"a value needs more than {SCALED_MAX_SCALE} decimals", 0)
        if book is not None:
            try:
                (<OrderBook>book).rescale(ps, ss)
            except ValueError as exc:
                self._desync(idx, <OrderBook>book)
                raise self._error(f"cannot rescale the book exactly: {exc}", 0) from None
        it.price_scale = ps
        it.size_scale = ss
        return 0

    cdef int64_t _decimal(self, int idx, Span v, bint is_price) except? -1:
        """Scaled value of the decimal string ``v`` for instrument ``idx`` (may rescale)."""
        cdef const unsigned char* p = self._p
        if not is_string(p, v):
            raise self._error("expected a decimal string", v.start)
        return self._decimal_body(idx, string_body(v), is_price)

    cdef int64_t _decimal_body(self, int idx, Span s, bint is_price) except? -1:
        """Scaled value of the decimal text ``s`` (no quotes) for instrument ``idx``."""
        cdef const unsigned char* p = self._p
        cdef Inst* it = &self._inst[idx]
        cdef int64_t out = 0
        cdef int st, need
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

    cdef int _ensure_scales(self, int idx, Span p1, Span p2, Span s1, Span s2) except -1:
        """Raise an unlocked instrument's scales once so that prices ``p1``, ``p2`` and sizes
        ``s1``, ``s2`` (quoted strings) all parse at the same scales."""
        cdef const unsigned char* p = self._p
        cdef Inst* it = &self._inst[idx]
        cdef int ps = it.price_scale, ss = it.size_scale
        if it.locked:
            return 0
        ps = max(ps, _decimals_of(p, p1), _decimals_of(p, p2))
        ss = max(ss, _decimals_of(p, s1), _decimals_of(p, s2))
        if ps != it.price_scale or ss != it.size_scale:
            self._rescale(idx, ps, ss)
        return 0

    cdef Py_ssize_t _apply_levels(self, int idx, OrderBook book, int side,
                                  Span arr) except -1:
        """Apply ``[[px, sz, ...], ...]`` starting at ``arr.start`` to ``side``.

        One pass over the bytes: each level's two decimal strings are located with a
        quote scan and parsed in place (extra elements such as OKX's ``"0","4"`` are
        skipped). Returns the index just after the array's closing bracket (``arr.end``
        only bounds the scan, so a caller may pass the end of the enclosing object).
        """
        cdef const unsigned char* p = self._p
        cdef Py_ssize_t n = arr.end
        cdef Py_ssize_t i = skip_ws(p, arr.start, n)
        cdef Py_ssize_t lvl_start, j
        cdef Py_ssize_t hint = -1
        cdef Span px, sz
        cdef int st
        cdef int64_t price = 0, size = 0
        cdef Inst* it = &self._inst[idx]
        if i >= n or p[i] != 91:
            raise self._error("expected an array of levels", i)
        i = skip_ws(p, i + 1, n)
        if i < n and p[i] == 93:
            return i + 1
        while True:
            lvl_start = i
            # Fast path for the venues' exact shape ``["px","sz"(,...)]`` with plain
            # decimals that fit the current scales; anything else (whitespace, a finer
            # value that needs a rescale, errors) takes the general path below.
            j = -1
            if i + 1 < n and p[i] == 91 and p[i + 1] == 34:
                j = slip_quoted_scaled(p, i + 2, n, it.price_scale, &price)
                if j > 0 and j + 1 < n and p[j] == 44 and p[j + 1] == 34:
                    px.start = i + 2
                    j = slip_quoted_scaled(p, j + 2, n, it.size_scale, &size)
                    while j > 0 and j < n and p[j] == 44:    # OKX: further elements
                        j = _skip_digits_elem(p, j + 1, n)
                    if j >= n or p[j] != 93:
                        j = -1
                else:
                    j = -1
            if j > 0:
                i = j
            else:
                if i >= n or p[i] != 91:
                    raise self._error("malformed level", i)
                i = _quoted(p, skip_ws(p, i + 1, n), n, &px)
                if i < 0:
                    raise self._error("malformed level", lvl_start)
                i = skip_ws(p, i, n)
                if i >= n or p[i] != 44:
                    raise self._error("malformed level", lvl_start)
                i = _quoted(p, skip_ws(p, i + 1, n), n, &sz)
                if i < 0:
                    raise self._error("malformed level", lvl_start)
                i = skip_ws(p, i, n)
                while i < n and p[i] == 44:          # further elements of the level
                    i = skip_value(p, skip_ws(p, i + 1, n), n)
                    if i < 0:
                        raise self._error("malformed level", lvl_start)
                    i = skip_ws(p, i, n)
                if i >= n or p[i] != 93:
                    raise self._error("malformed level", lvl_start)
                price = self._decimal_body(idx, px, True)
                size = self._decimal_body(idx, sz, False)
            st = _apply_near(book, side, price, size, &hint)
            if st == BOOK_CHANGED:
                if self._dcap:
                    _put_delta(self, it, idx, side, price, size)
            elif st == BOOK_EINVAL:
                raise self._error("level out of range (negative size or huge price)", px.start)
            elif st == BOOK_ENOMEM:
                raise MemoryError()
            if i + 2 < n and p[i + 1] == 44 and p[i + 2] == 91:
                i += 2                              # "],[": the next level, no whitespace
                continue
            i = skip_ws(p, i + 1, n)
            if i < n and p[i] == 44:
                i = skip_ws(p, i + 1, n)
            elif i < n and p[i] == 93:
                return i + 1
            else:
                raise self._error("malformed array of levels", i)

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
        if open_container(p, arr.start, arr.end, 91, &outer) != 0:
            raise self._error("expected an array of levels", arr.start)
        while next_element(p, &outer, &lvl) == 1:       # shape checked by _scan_decimals
            if open_container(p, lvl.start, lvl.end, 91, &inner) != 0 \
                    or next_element(p, &inner, &px) != 1 or next_element(p, &inner, &sz) != 1:
                raise self._error("malformed level", lvl.start)
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
        if _snapshot_fast(self, idx, book, bids, asks, last_id):
            return 0
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

    cdef int _deltas_end(self, int idx, OrderBook book, bint keep, int64_t seq) noexcept:
        """Close the delta records of the book message just handled.

        ``keep``: the message was accepted, so its records get the message's venue time
        (``_msg_ns``), receive time and ``seq``, and the last one ``D_LAST``; otherwise
        they are discarded. A book whose records were lost is dumped whole instead.
        """
        if not self._dcap:
            return 0
        if not keep:
            self._nd = self._dmark
            return 0
        if self._inst[idx].dbroken:
            return self._deltas_book(idx, book, seq)
        _close_records(self, seq, 0)
        return 0

    cdef int _deltas_book(self, int idx, OrderBook book, int64_t seq) noexcept:
        """Write the whole book as one group flagged ``D_SNAPSHOT`` (the records of the
        open message are replaced). An empty book is one record of size 0 (clear). If the
        buffer cannot hold it, the book stays marked and is dumped after a later message.
        """
        cdef Inst* it = &self._inst[idx]
        cdef const BookSide* s
        cdef Py_ssize_t live, i
        cdef int side
        if not self._dcap:
            return 0
        self._nd = self._dmark
        live = (book.sides[BOOK_BID].n - book.sides[BOOK_BID].dead
                + book.sides[BOOK_ASK].n - book.sides[BOOK_ASK].dead)
        if self._dmark + max(live, 1) > self._dcap:
            _mark_lost(self, it)
            return 0
        for side in range(2):
            s = &book.sides[side]
            i = s.n - 1
            while i >= 0:                   # best first
                if s.sizes[i] != 0:
                    _put_delta(self, it, idx, side, -s.keys[i] if side else s.keys[i],
                               s.sizes[i])
                i -= 1
        if live == 0:
            _put_delta(self, it, idx, BOOK_BID, 0, 0)
        _close_records(self, seq, D_SNAPSHOT)
        it.dbroken = False
        return 0

    cdef int _synced(self, int idx, OrderBook book) noexcept:
        cdef Inst* it = &self._inst[idx]
        if it.ever_synced and it.state == ST_WAIT:
            it.resyncs += 1
        it.ever_synced = True
        book.in_sync = True
        return 0

    # ------------------------------------------------------------------ Python surface

    def desync(self, str symbol, str channel) -> bool:
        """Mark a book out of sync because frames were lost outside the parser.

        A dropped connection loses diffs no sequence check can see until the next one
        arrives; the collector calls this on disconnect so the book is resynced (Binance
        buffers diffs from then on for the next snapshot; OKX waits for a snapshot).

        Returns
        -------
        bool
            ``False`` when the feed has no such book (nothing to do).
        """
        cdef bytes s = symbol.encode("ascii")
        cdef bytes c = channel.encode("ascii")
        cdef int idx = self._find(K_BOOK, <const unsigned char*>s, len(s),
                                  <const unsigned char*>c, len(c))
        if idx < 0 or self._books[idx] is None:
            return False
        self._desync(idx, <OrderBook>self._books[idx])
        return True

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
        it.held_n = 0                   # held tickers were parsed at the old scales
        it.price_scale = price_scale
        it.size_scale = size_scale
        it.locked = True

    def preset_scales(self, dict scales not None) -> None:
        """Scales from venue metadata, applied when each instrument is first seen.

        Parameters
        ----------
        scales : dict
            ``symbol -> (price_scale, size_scale)``. Unlike :meth:`set_scales` nothing is
            created up front, so a whole exchangeInfo can be given. Instruments already
            seen keep their scales.
        """
        for symbol, pair in scales.items():
            ps, ss = pair
            if not 0 <= ps <= 18 or not 0 <= ss <= 18:
                raise ValueError(f"scales of {symbol!r} must be within 0..18, were {ps}, {ss}")
        self._preset.update(scales)

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
                    "stale_snapshots": it.stale_snapshots,
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

    def drain_deltas(self):
        """Copy out the book delta records of the messages handled so far; empty the buffer.

        Returns
        -------
        numpy.ndarray
            Structured array of ``DELTA_DTYPE`` in the order the messages were accepted
            (``inst`` indexes :meth:`instruments`; ``side`` 0 bid, 1 ask; ``size`` 0
            removes the level; ``flags``: ``DELTA_SNAPSHOT`` marks a whole-book group that
            replaces the book, ``DELTA_LAST`` the last record of each message; price/size
            are scaled by the record's own ``price_scale``/``size_scale``). Empty when the
            feed was made with ``delta_capacity=0``.
        """
        out = self._deltas_arr[:self._dmark].copy()
        self._nd = 0
        self._dmark = 0
        return out

    @property
    def pending_deltas(self) -> int:
        """Delta records of finished messages waiting in the buffer."""
        return self._dmark

    @property
    def delta_capacity(self) -> int:
        """Records the delta buffer holds (0: deltas are not recorded)."""
        return self._dcap


cdef inline int _decimals_of(const unsigned char* p, Span v) noexcept nogil:
    """Decimals the quoted decimal ``v`` needs (-1 if it is not one; parsing reports it)."""
    if v.end - v.start < 2 or p[v.start] != 34:
        return -1
    return significant_decimals(p + v.start + 1, v.end - v.start - 2)


cdef inline Py_ssize_t _make_key(char* key, int kind, const unsigned char* a, Py_ssize_t alen,
                                 const unsigned char* b, Py_ssize_t blen) noexcept nogil:
    if alen + blen + 2 > MAX_KEY or alen < 0 or blen < 0:
        return -1
    key[0] = <char>(48 + kind)
    memcpy(key + 1, a, alen)
    key[1 + alen] = 0
    memcpy(key + 2 + alen, b, blen)
    return alen + blen + 2


cdef inline Py_ssize_t _quoted(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                              Span* body) noexcept nogil:
    """``p[i]`` must open a string without escapes (a number); its body goes to ``body``.

    Returns the index after the closing quote, or -1.
    """
    cdef Py_ssize_t j
    if i >= n or p[i] != 34:
        return -1
    j = i + 1
    while j < n and p[j] != 34:
        if p[j] == 92:
            return -1
        j += 1
    if j >= n:
        return -1
    body.start = i + 1
    body.end = j
    return j + 1


cdef inline uint32_t _fnv(const char* key, Py_ssize_t n) noexcept nogil:
    cdef uint32_t h = 2166136261
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ <unsigned char>key[i]) * 16777619
    return h


cdef inline void _close_records(Feed self, int64_t seq, uint8_t flags) noexcept:
    """Stamp the open message's records (venue time, receive time, ``seq``, ``flags``; the
    last one also ``D_LAST``) and make them part of what ``drain_deltas`` returns."""
    cdef DeltaRec* d
    cdef Py_ssize_t i
    if self._nd == self._dmark:
        return
    for i in range(self._dmark, self._nd):
        d = &self._dp[i]
        d.exch_ns = self._msg_ns
        d.recv_ns = self._recv_ns
        d.seq = seq
        d.flags = flags
    self._dp[self._nd - 1].flags = flags | D_LAST
    self._dmark = self._nd


cdef inline void _put_delta(Feed self, Inst* it, int idx, int side, int64_t price,
                            int64_t size) noexcept:
    """Append one changed level of the open message (stamped by ``_deltas_end``)."""
    cdef DeltaRec* d
    if self._nd < self._dcap:
        d = &self._dp[self._nd]
        d.price = price
        d.size = size
        d.inst = idx
        d.side = <int8_t>side
        d.price_scale = <int8_t>it.price_scale
        d.size_scale = <int8_t>it.size_scale
        self._nd += 1
    else:
        _mark_lost(self, it)


cdef inline void _mark_lost(Feed self, Inst* it) noexcept:
    """Records of ``it``'s book were lost: count it once; the book is written whole later."""
    if not it.dbroken:
        it.dbroken = True
        self.deltas_overflow += 1


cdef inline int _apply_near(OrderBook book, int side, int64_t price, int64_t size,
                            Py_ssize_t* hint) noexcept nogil:
    """``book_apply`` searching from the slot of the previous level of the same array
    (``hint``, updated; any value is exact, see ``book_lower_bound_near``)."""
    cdef BookSide* s
    cdef int64_t key
    cdef Py_ssize_t r
    if size < 0 or price > SLIP_BOOK_MAX_PRICE or price < -SLIP_BOOK_MAX_PRICE:
        return BOOK_EINVAL
    s = &book.sides[side]
    key = -price if side else price
    r = book_lower_bound_near(s.keys, s.n, key, hint[0])
    hint[0] = r
    return book_apply_at(book, side, key, size, r)


cdef Py_ssize_t _levels_fast(const unsigned char* p, Span arr, int ps, int ss,
                             int64_t* prices, int64_t* sizes, Py_ssize_t cap) noexcept nogil:
    """Parse ``[["px","sz"(,...)],...]`` (no whitespace, plain decimals fitting the scales)
    into ``prices``/``sizes``; the count, or -1 for anything else (general path then)."""
    cdef Py_ssize_t n = arr.end, i = skip_ws(p, arr.start, arr.end), j, cnt = 0
    cdef int64_t price = 0, size = 0
    if i >= n or p[i] != 91:
        return -1
    i += 1
    if i < n and p[i] == 93:
        return 0
    while True:
        if i + 1 >= n or p[i] != 91 or p[i + 1] != 34:
            return -1
        j = slip_quoted_scaled(p, i + 2, n, ps, &price)
        if j < 0 or j + 1 >= n or p[j] != 44 or p[j + 1] != 34:
            return -1
        j = slip_quoted_scaled(p, j + 2, n, ss, &size)
        while j > 0 and j < n and p[j] == 44:       # OKX: further elements
            j = _skip_digits_elem(p, j + 1, n)
        if j < 0 or j >= n or p[j] != 93 or cnt >= cap:
            return -1
        prices[cnt] = price
        sizes[cnt] = size
        cnt += 1
        i = j + 1
        if i < n and p[i] == 44:
            i += 1
        elif i < n and p[i] == 93:
            return cnt
        else:
            return -1


cdef int _install_side(OrderBook book, int side, const int64_t* prices,
                       const int64_t* sizes, Py_ssize_t cnt) except -1:
    """Install levels listed best first (keys strictly decreasing, checked by the caller)
    as ``OrderBook.load_snapshot`` would: zero sizes skipped, capacity 2x the levels."""
    cdef BookSide* s = &book.sides[side]
    cdef Py_ssize_t live = 0, j, k
    for j in range(cnt):
        live += sizes[j] != 0
    s.n = 0
    s.dead = 0
    book._reserve(side, max(book._min_capacity, 2 * live))
    k = live
    for j in range(cnt):
        if sizes[j] != 0:
            k -= 1
            s.keys[k] = -prices[j] if side else prices[j]
            s.sizes[k] = sizes[j]
    s.n = live
    return 0


cdef enum:
    SNAP_SCALE_PROBE = 8    # levels per side the first scale inference of a snapshot reads


cdef bint _snapshot_fast(Feed self, int idx, OrderBook book, Span bids, Span asks,
                         int64_t last_id) except -1:
    """Load a snapshot whose levels all parse at the instrument's current scales and come
    in venue order (bids strictly descending, asks strictly ascending): one pass, no
    sort. Returns False (nothing changed) for anything else: the general path decides."""
    cdef Inst* it = &self._inst[idx]
    cdef Py_ssize_t cap_b = (bids.end - bids.start) // 9 + 1
    cdef Py_ssize_t cap_a = (asks.end - asks.start) // 9 + 1
    cdef Py_ssize_t nb, na, j
    cdef bint ok = True
    cdef int64_t* mem
    cdef int64_t* bp
    cdef int64_t* bs
    cdef int64_t* ap
    cdef int64_t* asz
    cdef int ps, ss, attempt, limit
    mem = <int64_t*>PyMem_Malloc(<size_t>(2 * (cap_b + cap_a)) * sizeof(int64_t))
    if mem == NULL:
        raise MemoryError()
    try:
        bp = mem
        bs = mem + cap_b
        ap = mem + 2 * cap_b
        asz = ap + cap_a
        nb = na = -1
        for attempt in range(2):
            if not it.locked:
                # scale inference as in the general path: raise the scales up front. The
                # first attempt looks at the best SNAP_SCALE_PROBE levels of each side
                # only: if every level then parses at those scales, no level needs more
                # decimals (the same scales as a scan of all of them); otherwise the
                # second attempt scans them all.
                ps = it.price_scale
                ss = it.size_scale
                limit = SNAP_SCALE_PROBE if attempt == 0 else -1
                if _levels_decimals(self._p, bids, &ps, &ss, limit) != 0 \
                        or _levels_decimals(self._p, asks, &ps, &ss, limit) != 0:
                    return False
                if ps > SCALED_MAX_SCALE or ss > SCALED_MAX_SCALE:
                    return False
                if ps > it.price_scale or ss > it.size_scale:
                    book.clear()
                    self._rescale(idx, max(ps, it.price_scale), max(ss, it.size_scale))
                elif attempt == 1:
                    return False    # nothing needs more decimals: another shape
            elif attempt == 1:
                return False
            nb = _levels_fast(self._p, bids, it.price_scale, it.size_scale, bp, bs, cap_b)
            na = _levels_fast(self._p, asks, it.price_scale, it.size_scale, ap, asz, cap_a) \
                if nb >= 0 else -1
            if nb >= 0 and na >= 0:
                break
        if nb < 0 or na < 0:
            return False
        for j in range(1, nb):
            ok &= bp[j] < bp[j - 1]
        for j in range(1, na):
            ok &= ap[j] > ap[j - 1]
        if not ok:
            return False
        book.clear()
        _install_side(book, BOOK_BID, bp, bs, nb)
        _install_side(book, BOOK_ASK, ap, asz, na)
        book.last_update_id = last_id
        book.in_sync = True
        return True
    finally:
        PyMem_Free(mem)


cdef inline Py_ssize_t _frac_digits(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                                    int* d) noexcept nogil:
    """Decimals needed by the plain decimal ``digits[.digits]`` at ``p[i]`` ending with a
    quote (trailing zeros do not count) into ``d``; index after the quote, or -1."""
    cdef Py_ssize_t j = i, f0, last = -1
    while j < n and <unsigned int>p[j] - 48 <= 9:
        j += 1
    if j == i or j >= n:
        return -1
    d[0] = 0
    if p[j] == 46:
        j += 1
        f0 = j
        while j < n and <unsigned int>p[j] - 48 <= 9:
            if p[j] != 48:
                last = j
            j += 1
        if last >= 0:
            d[0] = <int>(last - f0 + 1)
    if j >= n or p[j] != 34:
        return -1
    return j + 1


cdef int _levels_decimals(const unsigned char* p, Span arr, int* ps, int* ss,
                          Py_ssize_t limit) noexcept nogil:
    """Raise ``ps``/``ss`` to the decimals the levels of ``arr`` need (shape as
    ``_levels_fast``), looking at the first ``limit`` levels only when ``limit >= 0``;
    0, or -1 for any other shape (of the levels looked at)."""
    cdef Py_ssize_t n = arr.end, i = skip_ws(p, arr.start, arr.end), j
    cdef int d = 0
    if i >= n or p[i] != 91:
        return -1
    i += 1
    if i < n and p[i] == 93:
        return 0
    while True:
        if limit == 0:
            return 0
        limit -= 1
        if i + 1 >= n or p[i] != 91 or p[i + 1] != 34:
            return -1
        j = _frac_digits(p, i + 2, n, &d)
        if j < 0 or j + 1 >= n or p[j] != 44 or p[j + 1] != 34:
            return -1
        if d > ps[0]:
            ps[0] = d
        j = _frac_digits(p, j + 2, n, &d)
        if j < 0:
            return -1
        if d > ss[0]:
            ss[0] = d
        while j < n and p[j] == 44:                 # OKX: further elements
            j = _skip_digits_elem(p, j + 1, n)
            if j < 0:
                return -1
        if j >= n or p[j] != 93:
            return -1
        i = j + 1
        if i < n and p[i] == 44:
            i += 1
        elif i < n and p[i] == 93:
            return 0
        else:
            return -1


cdef inline Py_ssize_t _skip_elem(const unsigned char* p, Py_ssize_t i,
                                  Py_ssize_t n) noexcept nogil:
    """``skip_value`` with the common case inline: a short string without escapes."""
    cdef Py_ssize_t j
    if i < n and p[i] == 34:
        j = i + 1
        while j < n and j < i + 24:
            if p[j] == 34:
                return j + 1
            if p[j] == 92:
                break
            j += 1
    return skip_value(p, i, n)


cdef inline Py_ssize_t _skip_digits_elem(const unsigned char* p, Py_ssize_t i,
                                         Py_ssize_t n) noexcept nogil:
    """``_skip_elem`` for OKX's usual extra level elements, strings of digits only
    (``"0"``, ``"4"``): a digits-only run closed by a quote is a whole JSON string."""
    cdef Py_ssize_t j
    if i < n and p[i] == 34:
        j = i + 1
        while j < n and <unsigned int>p[j] - 48 <= 9:
            j += 1
        if j < n and p[j] == 34:
            return j + 1
    return _skip_elem(p, i, n)
