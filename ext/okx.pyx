# cython: language_level=3, auto_pickle=False
"""OKX v5 public frames (``books``, ``books5``, ``books50-l2-tbt``, ``books-l2-tbt``,
``bbo-tbt``, ``trades``) into books and trade records.

Sequencing by ``seqId``/``prevSeqId`` (snapshot ``prevSeqId = -1``, heartbeats, resets) and
the legacy CRC32 of the top 25 levels whenever a frame carries a non-zero ``checksum``.

Example frame::

    {"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":
     [["30249.5","50","0","1"]],"bids":[],"ts":"1652459236000","checksum":-1200119424}]}
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from ext.book cimport BOOK_ASK, BOOK_BID, BookSide, OrderBook, book_best_price
from ext.feed cimport (
    K_BOOK,
    K_TRADE,
    MAX_INSTRUMENTS,
    R_CHECKSUM,
    R_CROSSED,
    R_DROPPED,
    R_DUPLICATE,
    R_GAP,
    R_HEARTBEAT,
    R_OTHER,
    R_SNAPSHOT,
    R_TRADE,
    R_UPDATE,
    ST_SYNCED,
    Feed,
    Inst,
    okx_crc32,
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
    skip_levels,
    skip_member_value,
    skip_ws,
    string_body,
)

from ext.feed import FrameError

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


cdef extern from *:
    """
    /* OKX legacy checksum text cache: the "price:size" text of the levels of the last
       checksum of one book, per side, best first. Levels of the next checksum that are
       unchanged (same price and size) copy their text instead of formatting it again. */
    #define SLIP_CK_LEVELS 25
    #define SLIP_CK_TEXT 48
    typedef struct {
        int64_t key[2][SLIP_CK_LEVELS];      /* price (bid) / -price (ask) */
        int64_t size[2][SLIP_CK_LEVELS];
        unsigned char len[2][SLIP_CK_LEVELS];
        char text[2][SLIP_CK_LEVELS][SLIP_CK_TEXT];
        int n[2];
        int ps, ss;                          /* scales the text was made at */
    } SlipCkCache;
    static const char SLIP_OKX_DIGITS2[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    """
    ctypedef struct SlipCkCache:
        int64_t key[2][25]
        int64_t size[2][25]
        unsigned char len[2][25]
        char text[2][25][48]
        int n[2]
        int ps
        int ss
    const char SLIP_OKX_DIGITS2[201]


cdef inline Py_ssize_t _fmt_dec(char* out, int64_t v, int scale) noexcept nogil:
    """Shortest exact decimal text of ``v * 10**-scale`` into ``out``; returns its length.

    Digits are written right to left into a 24-byte scratch (two at a time), the point
    inserted on the way, then copied once.
    """
    cdef char tmp[24]
    cdef Py_ssize_t e = 24, k
    cdef bint neg = v < 0
    cdef uint64_t u = <uint64_t>(-v) if neg else <uint64_t>v
    cdef uint32_t r
    if u == 0:
        out[0] = 48
        return 1
    while scale > 0 and u % 10 == 0:        # trailing fractional zeros are not written
        u //= 10
        scale -= 1
    if scale > 0:
        while scale >= 2:
            r = <uint32_t>(u % 100)
            u //= 100
            e -= 2
            tmp[e] = SLIP_OKX_DIGITS2[2 * r]
            tmp[e + 1] = SLIP_OKX_DIGITS2[2 * r + 1]
            scale -= 2
        if scale == 1:
            e -= 1
            tmp[e] = <char>(48 + u % 10)
            u //= 10
        e -= 1
        tmp[e] = 46                         # '.'
    while u >= 100:
        r = <uint32_t>(u % 100)
        u //= 100
        e -= 2
        tmp[e] = SLIP_OKX_DIGITS2[2 * r]
        tmp[e + 1] = SLIP_OKX_DIGITS2[2 * r + 1]
    if u >= 10:
        e -= 2
        tmp[e] = SLIP_OKX_DIGITS2[2 * u]
        tmp[e + 1] = SLIP_OKX_DIGITS2[2 * u + 1]
    else:
        e -= 1
        tmp[e] = <char>(48 + u)
    if neg:
        e -= 1
        tmp[e] = 45
    k = 24 - e
    memcpy(out, tmp + e, <size_t>k)
    return k


cdef int32_t _okx_checksum_cached(OrderBook book, SlipCkCache* c) noexcept nogil:
    """OKX legacy CRC32 (signed) of the top 25 levels, as ``ext.feed.okx_checksum``, reusing
    the text of levels unchanged since the previous call on the same book (``c``)."""
    cdef char buf[2 * 25 * 48 + 64]
    cdef int64_t nkey[2][25]
    cdef int64_t nsize[2][25]
    cdef unsigned char nlen[2][25]
    cdef char ntext[2][25][48]
    cdef int cnt[2]
    cdef int side, j, ci, ps = book.price_scale, ss = book.size_scale
    cdef Py_ssize_t i, k, m
    cdef const BookSide* s
    cdef int64_t key, sz
    cdef char* t
    if c.ps != ps or c.ss != ss:
        c.n[0] = 0
        c.n[1] = 0
        c.ps = ps
        c.ss = ss
    for side in range(2):
        s = &book.sides[side]
        i = s.n - 1
        j = 0
        ci = 0
        while i >= 0 and j < 25:
            sz = s.sizes[i]
            if sz != 0:
                key = s.keys[i]
                while ci < c.n[side] and c.key[side][ci] > key:
                    ci += 1
                nkey[side][j] = key
                nsize[side][j] = sz
                t = ntext[side][j]
                if ci < c.n[side] and c.key[side][ci] == key and c.size[side][ci] == sz:
                    m = c.len[side][ci]
                    memcpy(t, c.text[side][ci], 48)     # whole slot: a fixed-size copy
                else:
                    m = _fmt_dec(t, -key if side else key, ps)
                    t[m] = 58
                    m += 1
                    m += _fmt_dec(t + m, sz, ss)
                nlen[side][j] = <unsigned char>m
                j += 1
            i -= 1
        cnt[side] = j
    k = 0
    for j in range(25):
        for side in range(2):
            if j < cnt[side]:
                if k:
                    buf[k] = 58
                    k += 1
                memcpy(buf + k, ntext[side][j], 48)     # fixed size; buf has the slack
                k += nlen[side][j]
    memcpy(c.key, nkey, sizeof(nkey))
    memcpy(c.size, nsize, sizeof(nsize))
    memcpy(c.len, nlen, sizeof(nlen))
    memcpy(c.text, ntext, sizeof(ntext))
    c.n[0] = cnt[0]
    c.n[1] = cnt[1]
    return <int32_t>okx_crc32(<const unsigned char*>buf, k)


cdef class OkxFeed(Feed):
    """OKX v5 public frames: ``books``, ``books5``, ``books50-l2-tbt``, ``books-l2-tbt``,
    ``bbo-tbt`` and ``trades``, for spot and derivatives alike.

    Books are keyed ``(instId, channel)``; trades ``(instId, "trades")``. Subscription
    acks, errors, ``pong`` and other channels return ``OTHER``.

    Duplicate detection: with ``seqId`` a repeated message is recognised by its ids; the
    older captures without ``seqId`` carry a ``ts`` per message, and a message repeating
    the previous ``ts`` and ``checksum`` of its instrument is counted as a duplicate.
    """

    cdef Py_ssize_t _obj_end     # end of the data item just parsed
    cdef SlipCkCache** _ck       # checksum text cache per instrument (lazily allocated)

    def __cinit__(self, *args, **kwargs):
        self._ck = <SlipCkCache**>calloc(MAX_INSTRUMENTS, sizeof(SlipCkCache*))
        if self._ck == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef int i
        if self._ck != NULL:
            for i in range(MAX_INSTRUMENTS):
                free(self._ck[i])
            free(self._ck)

    cdef int32_t _checksum(self, int idx, OrderBook book) except? -1:
        """``okx_checksum(book)`` through the instrument's text cache."""
        cdef SlipCkCache* c = self._ck[idx]
        if c == NULL:
            c = <SlipCkCache*>calloc(1, sizeof(SlipCkCache))
            if c == NULL:
                raise MemoryError()
            c.ps = -1
            self._ck[idx] = c
        return _okx_checksum_cached(book, c)


    def __init__(self, str market="unknown", Py_ssize_t trade_capacity=65536,
                 Py_ssize_t book_capacity=64):
        Feed.__init__(self, "okx", market, trade_capacity, 0, book_capacity)

    def on_frame(self, frame not None, int64_t recv_ns=0) -> int:
        """Parse one WebSocket frame and apply it; returns a result code (see module).

        Parameters
        ----------
        frame : bytes, bytearray or memoryview
            The frame's bytes (a C-contiguous byte buffer).
        recv_ns : int, default 0
            Local receive time (ns), stored with trade records.

        Raises
        ------
        FrameError
            On malformed JSON or values (the book concerned is marked out of sync).
        """
        cdef const unsigned char* p
        cdef const unsigned char[::1] view
        cdef Py_ssize_t n
        cdef Cursor cur, dc
        cdef Span key, val, arg, data, action, chan, inst, item
        cdef bint has_arg = False, has_data = False, has_action = False, has_event = False
        cdef int r, ck = 0, code, res
        cdef Py_ssize_t vstart, i
        data.start = 0
        data.end = 0
        if type(frame) is bytes:        # the usual case: no buffer acquisition
            self._p = <const unsigned char*>PyBytes_AS_STRING(frame)
            n = PyBytes_GET_SIZE(frame)
        else:
            view = frame
            n = view.shape[0]
            self._p = &view[0] if n else NULL
        if n == 0:
            raise FrameError("empty frame", self.venue, None, 0)
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
            r = next_key(p, &cur, &key, &vstart)
            if r < 0:
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            if key_is(p, key, "data", 4) and has_arg and not has_event \
                    and (has_action or ck != OKX_INCREMENTAL):
                data.start = vstart         # arg/action came first, as OKX sends them:
                data.end = n                # walk data in place instead of skipping it
                has_data = True
                break
            if skip_member_value(p, &cur) != 0:
                raise self._error("malformed JSON", cur.pos)
            val.start = vstart
            val.end = cur.pos
            if key_is(p, key, "arg", 3):
                arg = val
                has_arg = True
                if _okx_arg(p, arg, &chan, &inst) != 0:
                    raise self._error("arg needs channel and instId strings", arg.start)
                ck = _okx_channel_kind(p, chan)
            elif key_is(p, key, "data", 4):
                data = val
                has_data = True
            elif key_is(p, key, "action", 6):
                action = val
                has_action = True
            elif key_is(p, key, "event", 5):
                has_event = True
        if has_event or not has_arg or not has_data or ck == 0:
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
        i = skip_ws(p, dc.pos, n)
        if i < n and p[i] == 93:
            return res
        while True:
            item.start = i
            item.end = n
            code = self._okx_book(inst, chan, ck, has_action, action, item)
            if code > res or res == R_HEARTBEAT:
                res = code
            i = skip_ws(p, self._obj_end, n)
            if i < n and p[i] == 44:
                i = skip_ws(p, i + 1, n)
            elif i < n and p[i] == 93:
                return res
            else:
                raise self._error("malformed data array", i)

    cdef int _okx_book(self, Span inst, Span chan, int ck, bint has_action, Span action,
                       Span item) except -1:
        """One book data item. An update for an in-sync book is applied while it is read
        (OKX puts ``seqId``/``prevSeqId``/``checksum`` after the levels): a gap found
        afterwards marks the book out of sync anyway, and the only other outcome that
        skips an update, a repeat of the last message, is idempotent with absolute sizes."""
        cdef const unsigned char* p = self._p
        cdef Cursor cur
        cdef Span key, val, asks, bids, act
        cdef bint ha = False, hb = False, has_seq = False, has_prev = False, has_ck = False
        cdef bint snapshot, empty, inline
        cdef int64_t seq = -1, prev = -1, checksum = 0, ts = 0
        cdef int r, idx, res
        cdef Py_ssize_t vstart, j
        cdef Inst* it
        cdef OrderBook book
        if ck == OKX_FULL:
            snapshot = True
        else:
            if not has_action:
                raise self._error("incremental book message without action", item.start)
            act = string_body(action)
            snapshot = key_is(p, act, "snapshot", 8)
            if not snapshot and not key_is(p, act, "update", 6):
                raise self._error("action must be snapshot or update", action.start)
        idx = self._lookup(K_BOOK, p, inst, chan)
        it = &self._inst[idx]
        book = <OrderBook>self._books[idx]
        inline = not snapshot and it.state == ST_SYNCED
        if open_container(p, item.start, item.end, 123, &cur) != 0:
            raise self._error("book data item is not an object", item.start)
        while True:
            r = next_key(p, &cur, &key, &vstart)
            if r < 0:
                if inline:                      # levels may be in: never claim in sync
                    self._desync(idx, book)
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            val.start = vstart
            val.end = cur.end
            if inline and (key_is(p, key, "asks", 4) or key_is(p, key, "bids", 4)):
                try:
                    cur.pos = self._apply_levels(
                        idx, book, BOOK_ASK if p[key.start] == 97 else BOOK_BID, val)
                except BaseException:
                    self._desync(idx, book)
                    raise
            else:
                j = skip_levels(p, vstart, cur.end) if (key_is(p, key, "asks", 4) or
                                                        key_is(p, key, "bids", 4)) else -1
                if j >= 0:
                    cur.pos = j
                elif skip_member_value(p, &cur) != 0:
                    if inline:
                        self._desync(idx, book)
                    raise self._error("malformed JSON", cur.pos)
            val.end = cur.pos
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
        self._obj_end = cur.pos
        if not ha or not hb:
            if inline:
                self._desync(idx, book)
            raise self._error("book message without asks or bids", item.start)
        it.messages += 1
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
                        it.duplicates += 1      # the last message again: re-applying it
                        return R_DUPLICATE      # (inline) left the book unchanged
                    it.gaps += 1
                    self._desync(idx, book)
                    return R_GAP
                if seq < prev:
                    it.seq_resets += 1
            elif it.has_last and ts == it.last_ts and checksum == it.last_checksum \
                    and ts != 0:
                it.duplicates += 1
                return R_DUPLICATE
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
        elif self._checksum(idx, book) == <int32_t>checksum:
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
