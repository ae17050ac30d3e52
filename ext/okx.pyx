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
from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy

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
    crc32_portable,
    crc32_uses_clmul,
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

CRC32_CLMUL = bool(crc32_uses_clmul())   # the checksum CRC folds with PCLMULQDQ here


def crc32(data, bint portable=False) -> int:
    """CRC-32 (zlib polynomial) of ``data`` as the OKX checksum computes it (for tests).

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        A C-contiguous byte buffer (any alignment).
    portable : bool, default False
        Use the slice-by-8 tables even where the PCLMULQDQ path is available.

    Returns
    -------
    int
        The unsigned CRC-32, as ``zlib.crc32(data)``.
    """
    cdef const unsigned char[::1] v = data
    cdef const unsigned char* p = &v[0] if v.shape[0] else NULL
    if portable:
        return crc32_portable(p, v.shape[0])
    return okx_crc32(p, v.shape[0])

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
    /* OKX legacy checksum text cache of one book: the text of the last checksum
       ("bid:size:ask:size:..." of the top 25 levels) and, per side and rank, the level's
       key, size and where its "price:size" sits in that text. Two generations: the next
       checksum is written into the other one, copying the text of every level that is
       unchanged (same price and size) from the last one instead of formatting it again.
       A level's text is at most 43 bytes (two 21-character decimals and a colon), so a
       fixed 48-byte copy is always enough; the buffers have the slack for it. */
    #define SLIP_CK_LEVELS 25
    #define SLIP_CK_COPY 48
    #define SLIP_CK_BUF (2 * SLIP_CK_LEVELS * 44 + 2 * SLIP_CK_COPY + 64)
    typedef struct {
        int64_t key[2][2][SLIP_CK_LEVELS];   /* [generation][side][rank]: price / -price */
        int64_t size[2][2][SLIP_CK_LEVELS];
        uint16_t off[2][2][SLIP_CK_LEVELS];
        unsigned char len[2][2][SLIP_CK_LEVELS];
        int n[2][2];
        char text[2][SLIP_CK_BUF];
        int gen;                             /* generation of the last checksum */
        int ps, ss;                          /* scales its text was made at */
        int has_crc;
        uint32_t crc;                        /* CRC-32 of the last text */
    } SlipCkCache;
    static const char SLIP_OKX_DIGITS2[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    """
    ctypedef struct SlipCkCache:
        int64_t key[2][2][25]
        int64_t size[2][2][25]
        uint16_t off[2][2][25]
        unsigned char len[2][2][25]
        int n[2][2]
        char text[2][1]                     # SLIP_CK_BUF bytes each (C side)
        int gen
        int ps
        int ss
        bint has_crc
        uint32_t crc
    const char SLIP_OKX_DIGITS2[201]
    const int SLIP_CK_COPY


cdef inline Py_ssize_t _fmt_dec(char* out, int64_t v, int scale) noexcept nogil:
    """Shortest exact decimal text of ``v * 10**-scale`` into ``out``; returns its length.

    Digits are written right to left into a scratch (two at a time), the point inserted on
    the way, then copied with one fixed 24-byte move: ``out`` needs 24 writable bytes.
    """
    cdef char tmp[48]
    cdef Py_ssize_t e = 24
    cdef bint neg = v < 0
    cdef uint64_t u = (<uint64_t>0 - <uint64_t>v) if neg else <uint64_t>v
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
    memcpy(out, tmp + e, 24)                # fixed size: the bytes past 24 - e are junk
    return 24 - e


cdef inline int _ck_walk(const BookSide* s, const int64_t* pkey, const int64_t* psize,
                         int pn, int64_t* nkey, int64_t* nsize, int* src) noexcept nogil:
    """The side's top 25 live levels (best first) into ``nkey``/``nsize``; ``src[j]`` is the
    index of the same level (price and size) in the previous text's levels, or -1.
    Returns the count. Locals only in the loop (the build has -fno-strict-aliasing)."""
    cdef const int64_t* keys = s.keys
    cdef const int64_t* sizes = s.sizes
    cdef Py_ssize_t i = s.n - 1
    cdef int j = 0, ci = 0
    cdef int64_t key, sz
    while j < 25:
        while i >= 0 and sizes[i] == 0:         # tombstones
            i -= 1
        if i < 0:
            break
        key = keys[i]
        sz = sizes[i]
        i -= 1
        while ci < pn and pkey[ci] > key:       # previous levels better than this one
            ci += 1
        src[j] = ci if ci < pn and pkey[ci] == key and psize[ci] == sz else -1
        nkey[j] = key
        nsize[j] = sz
        j += 1
    return j


cdef inline Py_ssize_t _ck_text(char* buf, Py_ssize_t k, int src, const char* ptext,
                                const uint16_t* poff, const unsigned char* plen, int64_t price,
                                int64_t size, int ps, int ss, uint16_t* off,
                                unsigned char* ln) noexcept nogil:
    """Append ``[:]price:size`` to ``buf[:k]`` (copied from the previous text when ``src``
    >= 0); records where it went; returns the new length."""
    cdef Py_ssize_t m
    cdef char* t
    if k:
        buf[k] = 58
        k += 1
    t = buf + k
    if src >= 0:
        memcpy(t, ptext + poff[src], SLIP_CK_COPY)
        m = plen[src]
    else:
        m = _fmt_dec(t, price, ps)
        t[m] = 58
        m += 1
        m += _fmt_dec(t + m, size, ss)
    off[0] = <uint16_t>k
    ln[0] = <unsigned char>m
    return k + m


cdef int32_t _okx_checksum_cached(OrderBook book, SlipCkCache* c) noexcept nogil:
    """OKX legacy CRC32 (signed) of the top 25 levels, as ``ext.feed.okx_checksum``, reusing
    the text of levels unchanged since the previous call on the same book (``c``).

    Each side's top 25 is found and matched against the previous levels first; the text
    is then written straight into the cache's other generation, interleaved (bid, ask,
    bid, ...). When every level equals the previous one at the same rank the text is the
    previous text and its CRC is reused.
    """
    cdef int prev = c.gen, cur = 1 - c.gen, j, nb, na
    cdef int ps = book.price_scale, ss = book.size_scale
    cdef Py_ssize_t k = 0
    cdef int sb[25]
    cdef int sa[25]
    cdef bint same = c.has_crc
    cdef const char* ptext
    cdef char* buf
    cdef uint32_t crc
    if c.ps != ps or c.ss != ss:
        c.n[prev][0] = 0
        c.n[prev][1] = 0
        c.ps = ps
        c.ss = ss
        same = False
    nb = _ck_walk(&book.sides[0], c.key[prev][0], c.size[prev][0], c.n[prev][0],
                  c.key[cur][0], c.size[cur][0], sb)
    na = _ck_walk(&book.sides[1], c.key[prev][1], c.size[prev][1], c.n[prev][1],
                  c.key[cur][1], c.size[cur][1], sa)
    if nb != c.n[prev][0] or na != c.n[prev][1]:
        same = False
    ptext = c.text[prev]
    buf = c.text[cur]
    for j in range(max(nb, na)):
        if j < nb:
            same = same and sb[j] == j
            k = _ck_text(buf, k, sb[j], ptext, c.off[prev][0], c.len[prev][0],
                         c.key[cur][0][j], c.size[cur][0][j], ps, ss,
                         &c.off[cur][0][j], &c.len[cur][0][j])
        if j < na:
            same = same and sa[j] == j
            k = _ck_text(buf, k, sa[j], ptext, c.off[prev][1], c.len[prev][1],
                         -c.key[cur][1][j], c.size[cur][1][j], ps, ss,
                         &c.off[cur][1][j], &c.len[cur][1][j])
    c.n[cur][0] = nb
    c.n[cur][1] = na
    c.gen = cur
    if same:
        crc = c.crc                                 # the very same text as last time
    else:
        crc = okx_crc32(<const unsigned char*>buf, k)
        c.crc = crc
        c.has_crc = True
    return <int32_t>crc


cdef class OkxFeed(Feed):
    """OKX v5 public frames: ``books``, ``books5``, ``books50-l2-tbt``, ``books-l2-tbt``,
    ``bbo-tbt`` and ``trades``, for spot and derivatives alike.

    Books are keyed ``(instId, channel)``; trades ``(instId, "trades")``. Subscription
    acks, errors, ``pong`` and other channels return ``OTHER``.

    Duplicate detection: with ``seqId`` a repeated message is recognised by its ids; the
    older captures without ``seqId`` carry a ``ts`` per message, and a message repeating
    the previous ``ts`` and ``checksum`` of its instrument is counted as a duplicate.

    ``delta_capacity > 0`` records book deltas (:meth:`drain_deltas`): an accepted update's
    changed levels with its ``ts`` and ``seq = seqId`` (-1 in captures without one), a
    snapshot as the whole book.
    """

    cdef Py_ssize_t _obj_end     # end of the data item just parsed
    cdef SlipCkCache** _ck       # checksum text cache per instrument (lazily allocated)
    # the envelope of the last data frame (its bytes up to the data array) and what it
    # parsed to: a frame starting with the same bytes parses the same, so it is not re-read
    cdef unsigned char _env[128]
    cdef Py_ssize_t _env_len
    cdef Span _env_chan, _env_inst, _env_action
    cdef int _env_ck
    cdef bint _env_has_action

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
                 Py_ssize_t book_capacity=64, Py_ssize_t delta_capacity=0):
        Feed.__init__(self, "okx", market, trade_capacity, 0, book_capacity, delta_capacity)

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
        cdef bint env_hit = False
        cdef int r, ck = 0, code, res
        cdef Py_ssize_t vstart, i
        data.start = 0
        data.end = 0
        action.start = 0
        action.end = 0
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
        if 0 < self._env_len < n and memcmp(p, self._env, <size_t>self._env_len) == 0:
            chan = self._env_chan           # the same envelope bytes as the last frame
            inst = self._env_inst
            action = self._env_action
            has_action = self._env_has_action
            ck = self._env_ck
            has_arg = True
            has_data = True
            env_hit = True
            data.start = self._env_len
            data.end = n
        elif open_container(p, 0, n, 123, &cur) != 0:
            self.other_frames += 1          # e.g. the text frame "pong"
            return R_OTHER
        while not env_hit:
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
                if vstart <= 128:           # remember the envelope for the next frame
                    memcpy(self._env, p, <size_t>vstart)
                    self._env_len = vstart
                    self._env_chan = chan
                    self._env_inst = inst
                    self._env_action = action
                    self._env_has_action = has_action
                    self._env_ck = ck
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
        self._nd = self._dmark                  # a new message: drop unfinished records
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
        if self._dcap:
            self._msg_ns = ts * 1000000
            if snapshot:
                self._deltas_book(idx, book, seq)
            else:
                self._deltas_end(idx, book, True, seq)
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
