# cython: language_level=3
"""Microstructure indicators and samplers: the C-level contract (see ``docs/flow.md``).

Every indicator is a plain C struct plus ``cdef inline ... noexcept nogil`` functions, so
another ext module (a parser, a strategy kernel, the backtester) can update it per event
with no Python call and no GIL. The Python classes of ``ext/flow.pyx`` own one struct each
and call these same functions from their scalar and batch entry points, so streaming and
batch results are bitwise equal.

Preconditions the C functions do not check (the Python entry points do): timestamps
non-decreasing per state, windows > 0, sampler/bar steps > 0, ``out`` buffers large enough
where stated.

Rolling windows (``FlowWindow``)
--------------------------------
A ring of ``(t, x, y)`` events with two compensated (Neumaier) running sums, recomputed
from the ring when one cancels to below ``SLIP_FLOW_RECOMPUTE`` of the magnitude that
passed through it (``exact`` windows of integer values use plain sums). Count window
``W``: the last ``W`` events. Time window ``W`` ns: the events with ``t > t_now - W``
(``t_now`` = time of the newest event, or of ``flow_win_evict``). The ring grows by
doubling (``realloc``, no GIL); a failed growth sets ``status = FLOW_ENOMEM`` and the
update reports NaN. Warm-up: a count window is ready once it holds ``W`` events, a time
window once ``t_now - t_start >= W`` (``t_start`` = first event / observation), i.e. once
the whole window lies inside observed history.
"""

from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.math cimport NAN, fabs
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

from ext.book cimport BOOK_ASK, BOOK_BID, BookSide, OrderBook, book_best_price, book_best_size

cdef enum:
    FLOW_COUNT = 0          # window counted in events
    FLOW_TIME = 1           # window in nanoseconds

cdef enum:
    FLOW_OK = 0
    FLOW_ENOMEM = -1

cdef enum:
    BAR_TIME = 0
    BAR_VOLUME = 1
    BAR_NOTIONAL = 2

cdef enum:
    FLOW_MIN_RING = 16

cdef extern from *:
    """
    #define SLIP_FLOW_RECOMPUTE 9.313225746154785e-10  /* 2**-30 */
    """
    # A running sum is recomputed from the ring when it falls below this fraction of the
    # magnitude that passed through it (cancellation), so the relative error of a window
    # sum stays near double precision whatever left the window.
    const double SLIP_FLOW_RECOMPUTE


cdef struct FlowEvent:
    int64_t t
    double x
    double y


cdef struct FlowWindow:
    FlowEvent* ev           # ring, capacity mask + 1 (a power of two), owned
    Py_ssize_t head         # slot of the oldest event
    Py_ssize_t n            # events in the window
    Py_ssize_t mask
    int kind                # FLOW_COUNT / FLOW_TIME
    int status              # FLOW_OK or FLOW_ENOMEM (sticky)
    int64_t window          # events or ns
    double sx, cx           # sum of x and its compensation
    double sy, cy           # sum of y and its compensation
    double mx, my           # sum of |x| / |y| added or removed since the last recompute
    bint exact              # inputs are integers (sums exact below 2**53): no recompute
    int64_t t_start         # first event / observation (warm-up of time windows)
    int64_t t_last
    bint started


cdef struct FlowOfi:
    FlowWindow w            # x = e_n
    int64_t bp, bq, ap, aq  # previous best bid/ask price and size
    bint has_prev


cdef struct FlowSampler:
    int64_t interval        # grid step, ns
    int64_t origin          # grid times are origin + k * interval
    int64_t next_t          # next grid time not emitted yet
    double last             # last value seen
    bint has


# Field order and types match BAR_DTYPE (13 x 8 bytes, no padding).
cdef struct FlowBar:
    int64_t start_ns        # time bars: bucket start; others: first trade time
    int64_t first_ns
    int64_t last_ns
    int64_t count
    double open
    double high
    double low
    double close
    double volume
    double notional
    double vwap
    double buy_volume
    double sell_volume


cdef struct FlowBars:
    int kind                # BAR_TIME / BAR_VOLUME / BAR_NOTIONAL
    int64_t interval        # time bars, ns
    int64_t origin          # time bars: buckets start at origin + k * interval
    double threshold        # volume / notional bars
    int64_t bucket_end      # time bars: end (exclusive) of the open bar
    bint is_open
    FlowBar cur


# ---------------------------------------------------------------- small helpers

cdef inline int64_t flow_floor_div(int64_t a, int64_t b) noexcept nogil:
    """Floor of ``a / b`` for ``b > 0`` (C division truncates towards zero)."""
    cdef int64_t q = a // b if a >= 0 else -((-a + b - 1) // b)
    return q


cdef inline void flow_ksum(double* s, double* c, double v) noexcept nogil:
    """Neumaier compensated ``s += v``; the sum is ``s + c``."""
    cdef double a = s[0]
    cdef double t = a + v
    # branch-free: both corrections are computed, one is selected (no mispredictions)
    cdef double big = a if fabs(a) >= fabs(v) else v
    cdef double small = v if fabs(a) >= fabs(v) else a
    c[0] += (big - t) + small
    s[0] = t


# ---------------------------------------------------------------- rolling window

cdef inline void flow_win_init(FlowWindow* w, int kind, int64_t window) noexcept nogil:
    """Empty window (no memory yet); ``flow_win_free`` releases what pushes allocate."""
    w.ev = NULL
    w.head = 0
    w.n = 0
    w.mask = -1
    w.kind = kind
    w.status = FLOW_OK
    w.window = window
    w.sx = 0.0
    w.cx = 0.0
    w.sy = 0.0
    w.cy = 0.0
    w.mx = 0.0
    w.my = 0.0
    w.exact = False
    w.t_start = 0
    w.t_last = INT64_MIN
    w.started = False


cdef inline void flow_win_free(FlowWindow* w) noexcept nogil:
    free(w.ev)
    w.ev = NULL
    w.n = 0
    w.head = 0
    w.mask = -1


cdef inline void flow_win_clear(FlowWindow* w) noexcept nogil:
    """Forget every event and the warm-up; keeps the memory."""
    w.head = 0
    w.n = 0
    w.status = FLOW_OK
    w.sx = 0.0
    w.cx = 0.0
    w.sy = 0.0
    w.cy = 0.0
    w.mx = 0.0
    w.my = 0.0
    w.t_start = 0
    w.t_last = INT64_MIN
    w.started = False


# Rare paths, not inlined (defined in flow.pyx, reached through the module's C API).
cdef int flow_win_grow(FlowWindow* w) noexcept nogil
cdef void flow_win_recompute(FlowWindow* w) noexcept nogil


cdef inline int _flow_win_grow_via_copy(FlowWindow* w) noexcept nogil:
    # The out-of-line call gets the address of a copy, never of ``w[0]``: when ``w`` is a
    # loop's local state, its address does not escape and the compiler keeps the sums in
    # registers (measured ~2x faster batches).
    cdef FlowWindow tmp = w[0]
    cdef int rc = flow_win_grow(&tmp)
    w[0] = tmp
    return rc


cdef inline void _flow_win_recompute_via_copy(FlowWindow* w) noexcept nogil:
    cdef FlowWindow tmp = w[0]
    flow_win_recompute(&tmp)
    w[0] = tmp


cdef inline void flow_win_pop(FlowWindow* w) noexcept nogil:
    """Drop the oldest event; an emptied window restarts its sums from exact zero, a sum
    that cancelled to below ``SLIP_FLOW_RECOMPUTE`` of what passed through is recomputed."""
    cdef FlowEvent* e = &w.ev[w.head]
    w.head = (w.head + 1) & w.mask
    w.n -= 1
    if w.n == 0:
        w.sx = 0.0
        w.cx = 0.0
        w.sy = 0.0
        w.cy = 0.0
        w.mx = 0.0
        w.my = 0.0
        w.head = 0
        return
    if w.exact:                 # integers below 2**53: plain sums are exact
        w.sx -= e.x
        w.sy -= e.y
        return
    flow_ksum(&w.sx, &w.cx, -e.x)
    flow_ksum(&w.sy, &w.cy, -e.y)
    w.mx += fabs(e.x)
    w.my += fabs(e.y)
    if fabs(w.sx + w.cx) < w.mx * SLIP_FLOW_RECOMPUTE \
            or fabs(w.sy + w.cy) < w.my * SLIP_FLOW_RECOMPUTE:
        _flow_win_recompute_via_copy(w)


cdef inline void flow_win_start(FlowWindow* w, int64_t t) noexcept nogil:
    """Mark the start of observed history (done by the first push if not called)."""
    if not w.started:
        w.started = True
        w.t_start = t


cdef inline void flow_win_evict(FlowWindow* w, int64_t t) noexcept nogil:
    """Time windows: drop events with ``t_i <= t - window`` (time ``t`` has come)."""
    cdef int64_t cutoff
    if w.kind == FLOW_TIME:
        cutoff = t - w.window
        while w.n != 0 and w.ev[w.head].t <= cutoff:
            flow_win_pop(w)
    if t > w.t_last:
        w.t_last = t


cdef inline int flow_win_push(FlowWindow* w, int64_t t, double x, double y) noexcept nogil:
    """Add the event ``(t, x, y)`` after evicting what leaves the window."""
    cdef FlowEvent* e
    # one eviction loop for both kinds keeps a single inlined copy of flow_win_pop
    cdef int64_t cutoff = t - w.window if w.kind == FLOW_TIME else INT64_MIN
    cdef Py_ssize_t keep = w.window - 1 if w.kind == FLOW_COUNT else PY_SSIZE_T_MAX
    if not w.started:
        flow_win_start(w, t)
    while w.n != 0 and (w.n > keep or w.ev[w.head].t <= cutoff):
        flow_win_pop(w)
    if t > w.t_last:
        w.t_last = t
    if w.n > w.mask:
        if _flow_win_grow_via_copy(w) != FLOW_OK:
            return FLOW_ENOMEM
    e = &w.ev[(w.head + w.n) & w.mask]
    e.t = t
    e.x = x
    e.y = y
    w.n += 1
    if w.exact:
        w.sx += x
        w.sy += y
        return FLOW_OK
    flow_ksum(&w.sx, &w.cx, x)
    flow_ksum(&w.sy, &w.cy, y)
    w.mx += fabs(x)
    w.my += fabs(y)
    return FLOW_OK


cdef inline bint flow_win_ready(const FlowWindow* w) noexcept nogil:
    """Warm-up done (see the module docstring) and no allocation failure."""
    if w.status != FLOW_OK or not w.started:
        return False
    if w.kind == FLOW_COUNT:
        return w.n >= w.window
    return w.t_last - w.t_start >= w.window


cdef inline double flow_win_x(const FlowWindow* w) noexcept nogil:
    return w.sx + w.cx


cdef inline double flow_win_y(const FlowWindow* w) noexcept nogil:
    return w.sy + w.cy


# ---------------------------------------------------------------- rolling VWAP

cdef inline double flow_vwap_value(const FlowWindow* w) noexcept nogil:
    """VWAP of the window (x = price * size, y = size); NaN in warm-up or no volume."""
    cdef double v
    if not flow_win_ready(w):
        return NAN
    v = flow_win_y(w)
    if v <= 0.0:
        return NAN
    return flow_win_x(w) / v


cdef inline double flow_vwap_update(FlowWindow* w, int64_t t, double price,
                                    double size) noexcept nogil:
    """Add one trade and return the rolling VWAP."""
    if flow_win_push(w, t, price * size, size) != FLOW_OK:
        return NAN
    return flow_vwap_value(w)


# ---------------------------------------------------------------- trade flow

cdef inline double flow_tfi_signed(const FlowWindow* w) noexcept nogil:
    """Buy-taker minus sell-taker volume of the window (x = buy, y = sell); NaN in warm-up."""
    if not flow_win_ready(w):
        return NAN
    return flow_win_x(w) - flow_win_y(w)


cdef inline double flow_tfi_imbalance(const FlowWindow* w) noexcept nogil:
    """``(buy - sell) / (buy + sell)`` in [-1, 1]; NaN in warm-up or with no volume."""
    cdef double b, s
    if not flow_win_ready(w):
        return NAN
    b = flow_win_x(w)
    s = flow_win_y(w)
    if b + s <= 0.0:
        return NAN
    return (b - s) / (b + s)


cdef inline double flow_tfi_update(FlowWindow* w, int64_t t, double size, int side,
                                   double* imbalance) noexcept nogil:
    """Add one trade (``side`` +1 taker buy, -1 taker sell, 0 unknown: counted in neither).

    Returns the signed volume and writes the normalized imbalance to ``imbalance[0]``.
    """
    # arithmetic, not branches: taker sides are unpredictable
    cdef double b = size * <double>(side > 0)
    cdef double s = size * <double>(side < 0)
    if flow_win_push(w, t, b, s) != FLOW_OK:
        imbalance[0] = NAN
        return NAN
    imbalance[0] = flow_tfi_imbalance(w)
    return flow_tfi_signed(w)


# ---------------------------------------------------------------- order-flow imbalance

cdef inline double flow_ofi_event(int64_t bp0, int64_t bq0, int64_t ap0, int64_t aq0,
                                  int64_t bp, int64_t bq, int64_t ap,
                                  int64_t aq) noexcept nogil:
    """Cont-Kukanov-Stoikov e_n between two best bid/ask observations (lots)."""
    # branch-free (price moves are unpredictable): multiply by the 0/1 indicators
    cdef int64_t e = (bq * <int64_t>(bp >= bp0) - bq0 * <int64_t>(bp <= bp0)
                      - aq * <int64_t>(ap <= ap0) + aq0 * <int64_t>(ap >= ap0))
    return <double>e


cdef inline void flow_ofi_init(FlowOfi* s, int kind, int64_t window) noexcept nogil:
    flow_win_init(&s.w, kind, window)
    s.w.exact = True
    s.has_prev = False
    s.bp = 0
    s.bq = 0
    s.ap = 0
    s.aq = 0


cdef inline double flow_ofi_value(const FlowOfi* s) noexcept nogil:
    """Sum of e_n over the window; NaN in warm-up."""
    if not flow_win_ready(&s.w):
        return NAN
    return flow_win_x(&s.w)


cdef inline double flow_ofi_update(FlowOfi* s, int64_t t, int64_t bp, int64_t bq,
                                   int64_t ap, int64_t aq) noexcept nogil:
    """One best bid/ask observation; the first only sets the reference (returns NaN).

    An empty side is ``(INT64_MIN, 0)`` (bid) / ``(INT64_MAX, 0)`` (ask), as the book reports.
    """
    cdef double e
    if not s.has_prev:
        flow_win_start(&s.w, t)
        flow_win_evict(&s.w, t)
        s.has_prev = True
    else:
        e = flow_ofi_event(s.bp, s.bq, s.ap, s.aq, bp, bq, ap, aq)
        if flow_win_push(&s.w, t, e, 0.0) != FLOW_OK:
            return NAN
    s.bp = bp
    s.bq = bq
    s.ap = ap
    s.aq = aq
    return flow_ofi_value(s)


cdef inline double flow_ofi_update_book(FlowOfi* s, OrderBook book, int64_t t) noexcept nogil:
    """``flow_ofi_update`` with the book's current best bid/ask."""
    return flow_ofi_update(s, t, book_best_price(book, BOOK_BID), book_best_size(book, BOOK_BID),
                           book_best_price(book, BOOK_ASK), book_best_size(book, BOOK_ASK))


# ---------------------------------------------------------------- book imbalance

cdef inline int64_t flow_levels_sum(const int64_t* sizes, Py_ssize_t step, Py_ssize_t count,
                                    Py_ssize_t depth) noexcept nogil:
    """Sum of the first ``depth`` non-zero sizes among ``count`` slots walked by ``step``.

    A book side is walked from its last (best) slot with ``step = -1`` (zero sizes are
    tombstones); a best-first array row with ``step = 1`` (zero = no level).
    """
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t k = 0
    cdef int64_t q
    cdef int64_t total = 0
    while j < count and k < depth:
        q = sizes[j * step]
        total += q
        k += q != 0
        j += 1
    return total


cdef inline double flow_levels_weighted(const int64_t* prices, const int64_t* sizes,
                                        Py_ssize_t step, Py_ssize_t count, int64_t sign,
                                        Py_ssize_t depth, const double* weights,
                                        double tau) noexcept nogil:
    """Weighted size of the first ``depth`` live levels (walk as ``flow_levels_sum``).

    Level ``k`` (0 = best) at ``d`` ticks from the side's best price weighs
    ``weights[k]`` (1 if ``weights`` is NULL) times ``tau / (tau + d)`` if ``tau > 0``.
    The price of a slot is ``sign * prices[j * step]`` (book asks store ``-price``).
    """
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t k = 0
    cdef int64_t q, p, d
    cdef int64_t best = 0
    cdef double w
    cdef double acc = 0.0
    while j < count and k < depth:
        q = sizes[j * step]
        if q != 0:
            w = weights[k] if weights != NULL else 1.0
            if tau > 0.0:
                p = sign * prices[j * step]
                if k == 0:
                    best = p
                d = p - best if p >= best else best - p
                w = w * (tau / (tau + <double>d))
            acc += w * <double>q
            k += 1
        j += 1
    return acc


cdef inline double flow_imbalance_ratio(double b, double a) noexcept nogil:
    """``(b - a) / (b + a)``; NaN when both are 0."""
    if b + a == 0.0:
        return NAN
    return (b - a) / (b + a)


cdef inline double flow_book_imbalance(OrderBook book, Py_ssize_t depth) noexcept nogil:
    """``(bid - ask) / (bid + ask)`` over the top ``depth`` live levels of each side.

    +1 / -1 when only one side has levels, NaN when the book is empty. Reads the slots
    directly (best level last, tombstones skipped).
    """
    cdef const BookSide* b = &book.sides[BOOK_BID]
    cdef const BookSide* a = &book.sides[BOOK_ASK]
    cdef int64_t qb = flow_levels_sum(b.sizes + b.n - 1, -1, b.n, depth) if b.n else 0
    cdef int64_t qa = flow_levels_sum(a.sizes + a.n - 1, -1, a.n, depth) if a.n else 0
    return flow_imbalance_ratio(<double>qb, <double>qa)


cdef inline double flow_book_imbalance_weighted(OrderBook book, Py_ssize_t depth,
                                                const double* weights,
                                                double tau) noexcept nogil:
    """Weighted ``flow_book_imbalance`` (weights as in ``flow_levels_weighted``)."""
    cdef const BookSide* b = &book.sides[BOOK_BID]
    cdef const BookSide* a = &book.sides[BOOK_ASK]
    cdef double wb = 0.0
    cdef double wa = 0.0
    if b.n:
        wb = flow_levels_weighted(b.keys + b.n - 1, b.sizes + b.n - 1, -1, b.n, 1, depth,
                                  weights, tau)
    if a.n:
        wa = flow_levels_weighted(a.keys + a.n - 1, a.sizes + a.n - 1, -1, a.n, -1, depth,
                                  weights, tau)
    return flow_imbalance_ratio(wb, wa)


# ---------------------------------------------------------------- microprice and mid

cdef inline double flow_microprice(int64_t bp, int64_t bq, int64_t ap, int64_t aq) noexcept nogil:
    """Size-weighted mid ``(bp * aq + ap * bq) / (bq + aq)`` in ticks, evaluated as
    ``bp + (ap - bp) * bq / (bq + aq)`` (the expression of ``OrderBook.microprice``).

    NaN unless both sizes are > 0 (a size of 0 marks an empty side).
    """
    cdef double pb, pa, qb, qa
    if bq <= 0 or aq <= 0:
        return NAN
    pb = <double>bp
    pa = <double>ap
    qb = <double>bq
    qa = <double>aq
    return pb + (pa - pb) * qb / (qb + qa)


cdef inline double flow_mid(int64_t bp, int64_t bq, int64_t ap, int64_t aq) noexcept nogil:
    """``(bp + ap) / 2`` in ticks (as ``OrderBook.mid``); NaN unless both sizes are > 0."""
    if bq <= 0 or aq <= 0:
        return NAN
    return 0.5 * (<double>bp + <double>ap)


cdef inline double flow_book_microprice(OrderBook book) noexcept nogil:
    return flow_microprice(book_best_price(book, BOOK_BID), book_best_size(book, BOOK_BID),
                           book_best_price(book, BOOK_ASK), book_best_size(book, BOOK_ASK))


cdef inline double flow_book_mid(OrderBook book) noexcept nogil:
    return flow_mid(book_best_price(book, BOOK_BID), book_best_size(book, BOOK_BID),
                    book_best_price(book, BOOK_ASK), book_best_size(book, BOOK_ASK))


# ---------------------------------------------------------------- grid sampler

cdef inline void flow_sampler_init(FlowSampler* s, int64_t interval, int64_t origin) noexcept nogil:
    s.interval = interval
    s.origin = origin
    s.next_t = 0
    s.last = NAN
    s.has = False


cdef inline Py_ssize_t flow_sampler_close(FlowSampler* s, int64_t t, int64_t* out_t,
                                          double* out_v, Py_ssize_t cap,
                                          int64_t* dropped) noexcept nogil:
    """Emit every grid time ``g < t`` not emitted yet with the last value (time ``t`` has
    come, so no event at or before ``g`` can follow). Writes at most ``cap`` points;
    the rest are counted in ``dropped[0]`` and skipped. Returns points written."""
    cdef int64_t npts, k, w
    if not s.has or s.next_t >= t:
        return 0
    npts = (t - s.next_t + s.interval - 1) // s.interval
    w = npts if npts <= cap else cap
    for k in range(w):
        out_t[k] = s.next_t + k * s.interval
        out_v[k] = s.last
    dropped[0] += npts - w
    s.next_t += npts * s.interval
    return <Py_ssize_t>w


cdef inline Py_ssize_t flow_sampler_push(FlowSampler* s, int64_t t, double v, int64_t* out_t,
                                         double* out_v, Py_ssize_t cap,
                                         int64_t* dropped) noexcept nogil:
    """Event ``(t, v)``: emit the grid times before ``t``, then remember ``v``.

    The first event sets the grid start: the first ``origin + k * interval >= t``.
    """
    cdef Py_ssize_t w = 0
    if not s.has:
        s.has = True
        s.next_t = s.origin + (flow_floor_div(t - s.origin - 1, s.interval) + 1) * s.interval
    else:
        w = flow_sampler_close(s, t, out_t, out_v, cap, dropped)
    s.last = v
    return w


cdef inline Py_ssize_t flow_first_after(const int64_t* t, Py_ssize_t i, Py_ssize_t n,
                                         int64_t x) noexcept nogil:
    """First ``j >= i`` with ``t[j] > x`` (``n`` if none); ``t`` non-decreasing.

    Galloping (1, 2, 4, ... ahead) then bisection: O(log(j - i)).
    """
    cdef Py_ssize_t lo = i, step = 1, hi, mid
    if lo >= n or t[lo] > x:
        return lo
    # invariant: t[lo] <= x
    while True:
        hi = lo + step
        if hi >= n:
            hi = n
            break
        if t[hi] > x:
            break
        lo = hi
        step *= 2
    # t[lo] <= x, and t[hi] > x or hi == n
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if t[mid] > x:
            hi = mid
        else:
            lo = mid
    return hi


cdef inline Py_ssize_t flow_sampler_feed(FlowSampler* s, const int64_t* t, const double* v,
                                         Py_ssize_t n, int64_t* out_t, double* out_v,
                                         Py_ssize_t cap, int64_t* dropped) noexcept nogil:
    """``flow_sampler_push`` for ``n`` events; returns the grid points written.

    Events at or before the next pending grid time only replace the last value, so runs
    of them are skipped by galloping over ``t`` (the batch cost is per grid point, not
    per event). Identical results to pushing the events one by one.
    """
    cdef Py_ssize_t i = 0, j, w = 0
    if n <= 0:
        return 0
    if not s.has:
        w = flow_sampler_push(s, t[0], v[0], out_t, out_v, cap, dropped)
        i = 1
    while i < n:
        if t[i] <= s.next_t:
            j = flow_first_after(t, i, n, s.next_t)
            s.last = v[j - 1]
            i = j
            if i == n:
                break
        w += flow_sampler_push(s, t[i], v[i], out_t + w, out_v + w, cap - w, dropped)
        i += 1
    return w


# ---------------------------------------------------------------- bars

cdef inline void flow_bars_init(FlowBars* b, int kind, int64_t interval, double threshold,
                                int64_t origin) noexcept nogil:
    b.kind = kind
    b.interval = interval
    b.threshold = threshold
    b.origin = origin
    b.bucket_end = 0
    b.is_open = False


cdef inline int flow_bars_emit(FlowBars* b, FlowBar* out) noexcept nogil:
    """Close the open bar into ``out[0]`` (returns 1), or return 0 if none is open."""
    if not b.is_open:
        return 0
    b.cur.vwap = b.cur.notional / b.cur.volume if b.cur.volume > 0.0 else NAN
    out[0] = b.cur
    b.is_open = False
    return 1


cdef inline int flow_bars_advance(FlowBars* b, int64_t t, FlowBar* out) noexcept nogil:
    """Time ``t`` has come: a time bar whose bucket ends at or before ``t`` closes."""
    if b.kind == BAR_TIME and b.is_open and t >= b.bucket_end:
        return flow_bars_emit(b, out)
    return 0


cdef inline int flow_bars_push(FlowBars* b, int64_t t, double price, double size, int side,
                               FlowBar* out) noexcept nogil:
    """Add one trade; returns the number of bars completed into ``out`` (0 or 1).

    Time bars: bucket ``[origin + k * interval, origin + (k + 1) * interval)``; the open
    bar closes when a trade (or ``flow_bars_advance``) reaches its end; empty buckets make
    no bar. Volume / notional bars: a bar closes at the first trade that brings its
    cumulative volume / notional to ``>= threshold``; trades are never split.
    """
    cdef int done = 0
    cdef FlowBar* c = &b.cur
    cdef double notional = price * size
    cdef int64_t start
    if b.kind == BAR_TIME:
        if b.is_open and t >= b.bucket_end:
            done = flow_bars_emit(b, out)
    if not b.is_open:
        b.is_open = True
        if b.kind == BAR_TIME:
            start = b.origin + flow_floor_div(t - b.origin, b.interval) * b.interval
            b.bucket_end = start + b.interval
            c.start_ns = start
        else:
            c.start_ns = t
        c.first_ns = t
        c.count = 0
        c.open = price
        c.high = price
        c.low = price
        c.volume = 0.0
        c.notional = 0.0
        c.buy_volume = 0.0
        c.sell_volume = 0.0
    c.last_ns = t
    c.count += 1
    if price > c.high:
        c.high = price
    if price < c.low:
        c.low = price
    c.close = price
    c.volume += size
    c.notional += notional
    c.buy_volume += size * <double>(side > 0)
    c.sell_volume += size * <double>(side < 0)
    if b.kind == BAR_VOLUME:
        if c.volume >= b.threshold:
            done += flow_bars_emit(b, out + done)
    elif b.kind == BAR_NOTIONAL:
        if c.notional >= b.threshold:
            done += flow_bars_emit(b, out + done)
    return done


# ---------------------------------------------------------------- Python-visible owners

cdef class RollingVWAP:
    cdef FlowWindow w
    cdef readonly double value


cdef class TradeFlow:
    cdef FlowWindow w
    cdef readonly double signed_volume
    cdef readonly double imbalance


cdef class OrderFlowImbalance:
    cdef FlowOfi s
    cdef readonly double value


cdef class GridSampler:
    cdef FlowSampler s
    cdef object _t_arr
    cdef object _v_arr
    cdef int64_t[::1] _t
    cdef double[::1] _v
    cdef Py_ssize_t _n
    cdef int64_t _t_last
    cdef readonly int64_t overflow


cdef class BarBuilder:
    cdef FlowBars b
    cdef FlowBar _tmp
    cdef object _arr
    cdef FlowBar[::1] _out
    cdef Py_ssize_t _n
    cdef int64_t _t_last
    cdef readonly int64_t overflow
