# cython: language_level=3
"""C-level contract of the feed machinery shared by the venue parsers (``binance``, ``okx``).

``Feed`` holds the instrument table, books, counters and trade buffer; a venue module
subclasses it in Cython and adds the message handling.
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t

from ext.book cimport OrderBook
from ext.jsonscan cimport Span

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
    R_STALE_SNAPSHOT = 13  # Binance: snapshot older than the buffered diffs (refetch it)

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

cdef enum:
    D_SNAPSHOT = 1        # DeltaRec.flags: the level belongs to a whole-book dump
    D_LAST = 2            # DeltaRec.flags: the last level of its venue message

cdef packed struct DeltaRec:
    int64_t exch_ns
    int64_t recv_ns
    int64_t seq
    int64_t price
    int64_t size
    int32_t inst
    int8_t side
    uint8_t flags
    int8_t price_scale
    int8_t size_scale

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
    int64_t stale_snapshots
    int64_t last_id            # Binance: last applied u; OKX: last seqId; trades: last id
    int64_t last_ts            # OKX: ts (ms) of the last book message; Binance: its time (ns)
    bint dbroken               # delta records of this book were lost: dump it next
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


cdef class Feed:
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
    cdef dict _preset                 # symbol -> (price_scale, size_scale) from metadata
    cdef Py_ssize_t _max_pending
    cdef Py_ssize_t _book_capacity
    cdef object _trades_arr
    cdef TradeRec[::1] _trades
    cdef Py_ssize_t _ntrades
    cdef readonly int64_t trades_overflow
    cdef readonly int64_t frames
    cdef readonly int64_t other_frames
    cdef const unsigned char* _p      # the frame being parsed, valid during one call
    cdef Py_ssize_t _plen
    cdef int64_t _recv_ns
    cdef str _channel                 # channel name for errors (constants only)
    cdef Span _chan                   # OKX: channel in the frame, named only on error
    cdef bint _replaying
    cdef object _deltas_arr           # book delta records (0 capacity: not recorded)
    cdef DeltaRec* _dp
    cdef Py_ssize_t _dcap
    cdef Py_ssize_t _nd               # records written, the open message's included
    cdef Py_ssize_t _dmark            # end of the records of finished messages
    cdef int64_t _msg_ns              # venue time of the book message being handled
    cdef readonly int64_t deltas_overflow

    cdef int _find(self, int kind, const unsigned char* a, Py_ssize_t alen,
                   const unsigned char* b, Py_ssize_t blen) noexcept
    cdef int _add(self, int kind, const unsigned char* a, Py_ssize_t alen,
                  const unsigned char* b, Py_ssize_t blen) except -1
    cdef int _lookup(self, int kind, const unsigned char* p, Span sym, Span chan) except -1
    cdef object _error(self, str message, Py_ssize_t offset)
    cdef int _rescale(self, int idx, int ps, int ss) except -1
    cdef int _ensure_scales(self, int idx, Span p1, Span p2, Span s1, Span s2) except -1
    cdef int64_t _decimal(self, int idx, Span v, bint is_price) except? -1
    cdef int64_t _decimal_body(self, int idx, Span s, bint is_price) except? -1
    cdef Py_ssize_t _apply_levels(self, int idx, OrderBook book, int side,
                                  Span arr) except -1
    cdef int _scan_decimals(self, Span arr, Py_ssize_t* count, int* ps, int* ss) except -1
    cdef int _fill_levels(self, int idx, Span arr, int64_t[::1] prices,
                          int64_t[::1] sizes) except -1
    cdef int _load_snapshot(self, int idx, OrderBook book, Span bids, Span asks,
                            int64_t last_id) except -1
    cdef int _record_trade(self, int idx, int64_t exch_ns, int64_t trade_id, Span px,
                           Span sz, int side) except -1
    cdef int _check_trade_id(self, int idx, int64_t first_id, int64_t last_id) noexcept
    cdef int _after_apply(self, int idx, OrderBook book) noexcept
    cdef void _desync(self, int idx, OrderBook book) noexcept
    cdef int _deltas_end(self, int idx, OrderBook book, bint keep, int64_t seq) noexcept
    cdef int _deltas_book(self, int idx, OrderBook book, int64_t seq) noexcept
    cdef int _synced(self, int idx, OrderBook book) noexcept


cdef int32_t okx_checksum(OrderBook book) noexcept
cdef uint32_t okx_crc32(const unsigned char* p, Py_ssize_t n) noexcept nogil
cdef uint32_t crc32_portable(const unsigned char* p, Py_ssize_t n) noexcept nogil
cdef bint crc32_uses_clmul() noexcept nogil
