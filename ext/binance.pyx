# cython: language_level=3, auto_pickle=False
"""Binance market-data frames (spot, USD-M, COIN-M) into books and trade records.

Combined-stream wrapper and raw frames: ``depthUpdate``, ``trade``, ``aggTrade``,
``bookTicker``; REST depth snapshots via :meth:`BinanceFeed.on_snapshot`. Sequencing:

* spot: drop ``u <= L`` while bridging, the first diff applied needs ``U <= L + 1``;
  then ``u <= id`` is a repeat (ignored, counted) and ``U > id + 1`` a gap;
* USD-M / COIN-M: drop ``u < L``, the first needs ``U <= L <= u``; then ``pu == id``.

Example frame::

    {"stream":"ethusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,
     "s":"ETHUSDT","U":35346513499,"u":35346513512,"b":[["2608.61","0.0064"]],"a":[]}}
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc

from ext.book cimport BOOK_ASK, BOOK_BID, OrderBook, book_best_price, book_best_size
from ext.feed cimport (
    HELD_CAP,
    K_BOOK,
    K_TRADE,
    D_LAST,
    D_SNAPSHOT,
    R_BUFFERED,
    R_CHECKSUM,
    R_CROSSED,
    R_DROPPED,
    R_DUPLICATE,
    R_GAP,
    R_OTHER,
    R_SNAPSHOT,
    R_STALE_SNAPSHOT,
    R_TICKER,
    R_TICKER_MISMATCH,
    R_TRADE,
    R_UPDATE,
    ST_BRIDGE,
    ST_SYNCED,
    ST_WAIT,
    Feed,
    HeldTicker,
    Inst,
)
from ext.jsonscan cimport (
    Cursor,
    Span,
    is_string,
    key_is,
    next_key,
    next_member,
    open_container,
    parse_int,
    skip_member_value,
    string_body,
)
from ext.scaled cimport SLIP_POW10

from ext.feed import FrameError

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
    book_capacity : int
        Initial levels per side of each book.
    delta_capacity : int
        Book delta records held until :meth:`drain_deltas` (0: none recorded). A diff's
        records carry its ``T`` (futures) or ``E`` and ``seq = u``; a snapshot's are
        stamped no later than the first diff it bridges, with ``seq = lastUpdateId``.
    """

    cdef bint futures

    def __init__(self, str market="spot", Py_ssize_t trade_capacity=65536,
                 Py_ssize_t max_pending=100000, Py_ssize_t book_capacity=64,
                 Py_ssize_t delta_capacity=0):
        if market not in ("spot", "usdm", "coinm"):
            raise ValueError(f"market must be spot, usdm or coinm, was {market!r}")
        Feed.__init__(self, "binance", market, trade_capacity, max_pending, book_capacity,
                      delta_capacity)
        self.futures = market != "spot"

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
        cdef const unsigned char[::1] view
        if type(frame) is bytes:        # the usual case: no buffer acquisition
            self._p = <const unsigned char*>PyBytes_AS_STRING(frame)
            self._plen = PyBytes_GET_SIZE(frame)
        else:
            view = frame
            self._plen = view.shape[0]
            self._p = &view[0] if self._plen else NULL
        if self._plen == 0:
            raise FrameError("empty frame", self.venue, None, 0)
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
                if gated:                        # some levels are in: never claim in sync
                    self._desync(idx, book)
                raise self._error("malformed JSON", cur.pos)
            if r == 0:
                break
            c = p[key.start] if key.end - key.start == 1 else 0
            if (c == 98 or c == 97) and is_depth and has_s and has_U and has_u \
                    and (has_pu or not self.futures) and vstart < cur.end \
                    and p[vstart] == 91 and (gated or not (has_b or has_a)):
                if not gated:
                    sym = string_body(s)
                    idx = self._depth_index(sym)
                    self._msg_ns = (tt if tt else exch) * 1000000
                    code = self._depth_arrival(idx, frame, U)
                    if code != R_UPDATE:
                        return code
                    book = <OrderBook>self._books[idx]
                    code = self._depth_gate(idx, book, U, u, pu)
                    if code == R_GAP:
                        self._buffer(idx, frame, U)   # needed to bridge the next snapshot
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
                if gated:
                    self._desync(idx, book)
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
            self._msg_ns = (tt if tt else exch) * 1000000
            code = self._depth_arrival(idx, frame, U)
            if code != R_UPDATE:
                return code
            code = self._apply_depth(idx, <OrderBook>self._books[idx], U, u, pu, b, a)
            if code == R_GAP:
                self._buffer(idx, frame, U)
            return code
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

    cdef int _depth_arrival(self, int idx, object frame, int64_t U) except -1:
        """Count a diff; buffer it (``R_BUFFERED``) while the book waits for a snapshot."""
        cdef Inst* it = &self._inst[idx]
        self._nd = self._dmark                  # a new message: drop unfinished records
        if not self._replaying:
            it.messages += 1
            it.last_ts = self._msg_ns
        if it.state != ST_WAIT:
            return R_UPDATE
        self._buffer(idx, frame, U)
        return R_BUFFERED

    cdef int _buffer(self, int idx, object frame, int64_t U) except -1:
        """Keep ``(U, frame bytes)`` until a snapshot can bridge it (bounded, oldest dropped)."""
        cdef Inst* it = &self._inst[idx]
        cdef list pending = <list>self._pending[idx]
        if len(pending) >= self._max_pending and pending:
            del pending[0]
            it.dropped += 1
        pending.append((U, bytes(frame)))
        if not self._replaying:
            it.buffered += 1
        return 0

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
        self._deltas_end(idx, book, res != R_CROSSED, u)
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
        self._ensure_scales(idx, b, a, bq, aq)  # one scale for all four values
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
        cdef int64_t fp = SLIP_POW10[it.price_scale - t.ps]
        cdef int64_t fs = SLIP_POW10[it.size_scale - t.ss]
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
        venue rule. Returns ``SNAPSHOT``; ``STALE_SNAPSHOT`` (book and buffer untouched)
        when the snapshot is older than the oldest buffered diff, so the caller fetches a
        newer one; or ``GAP`` if the buffered diffs cannot be bridged (the book then waits
        for another snapshot).
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
        cdef Py_ssize_t g1
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
        pending = self._pending[idx]
        if (pending and ((pending[0][0] > L + 1) if not self.futures else (pending[0][0] > L))) \
                or (it.state != ST_WAIT and L < it.last_id):
            # older than the oldest buffered diff (or than the book it would replace):
            # keep everything as it is and let the caller fetch a newer snapshot
            it.stale_snapshots += 1
            return R_STALE_SNAPSHOT
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
        self._msg_ns = it.last_ts if it.last_ts else recv_ns
        self._deltas_book(idx, book, L)
        g1 = 0 if it.dbroken else self._dmark   # 0: no group written (buffer full)
        self._pending[idx] = []
        first_error = None
        for _, raw in pending:
            try:
                code = self._replay(raw)
            except FrameError as exc:      # a malformed buffered diff: the book is now out
                if first_error is None:    # of sync; the rest is re-buffered by the replay
                    first_error = exc
                continue
            if code == R_GAP or code == R_CROSSED or code == R_CHECKSUM:
                res = R_GAP
        self._stamp_bridged(idx, g1)
        if first_error is not None:
            raise first_error
        return res

    cdef void _stamp_bridged(self, int idx, Py_ssize_t g1) noexcept:
        """Re-stamp the snapshot group ending at ``g1`` 1 ns before the first diff it
        bridged (records from ``g1`` on), so ordering by time keeps it first and its rows
        never share a key ``(exch_ns, seq, side, price)`` with that diff's."""
        cdef Py_ssize_t g0 = g1, i
        cdef int64_t t
        if not self._dcap or g1 == 0 or g1 >= self._dmark:
            return
        if not (self._dp[g1 - 1].flags & D_SNAPSHOT) or self._dp[g1 - 1].inst != idx:
            return
        t = self._dp[g1].exch_ns - 1           # strictly first, and never the diff's key
        if t >= self._dp[g1 - 1].exch_ns:
            return
        while g0 > 0 and self._dp[g0 - 1].inst == idx and (self._dp[g0 - 1].flags & D_SNAPSHOT) \
                and (g0 == g1 or not (self._dp[g0 - 1].flags & D_LAST)):
            g0 -= 1
        for i in range(g0, g1):
            self._dp[i].exch_ns = t

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

