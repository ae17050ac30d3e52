# cython: language_level=3
"""Exact book walk for market orders: the C-level contract cimported by other ext code.

A predictor (or any ``ext`` module) fills a ``SlipWalk`` with no Python objects and no GIL::

    from ext.slippage cimport SlipParams, SlipWalk, SLIP_BUY, slip_params_default, slip_walk
    cdef SlipParams p
    cdef SlipWalk w
    slip_params_default(&p)
    if slip_walk(book, SLIP_BUY, qty, &p, &w) == SLIP_OK:
        ... w.avg_price, w.cost_bps ...

Arithmetic (see ``docs/slippage.md``): the walk accumulates ``sum(|price - touch| * take)``
exactly in an unsigned 128-bit integer (``unsigned __int128``; a 64-bit sum of ticks x lots
overflows on real books), the exact notional ``sum(price * take)`` is reported as a signed
128-bit value split into ``notional_hi * 2**64 + notional_lo``. Averages are formed from the
128-bit sum by an integer division (quotient + remainder / filled), so ``avg_price`` is
correct to double precision and non-decreasing in the quantity. Every cost in bps comes
from one routine (``_slip_cost``) shared by the walk and the inverse ``slip_max_qty``, so a
quantity returned by the inverse walks to a cost within the budget, bit for bit.
"""

from libc.math cimport NAN, sqrt
from libc.stdint cimport INT64_MAX, int64_t, uint64_t

from ext.book cimport BOOK_ASK, BOOK_BID, BookSide, OrderBook

cdef extern from *:
    """
    typedef unsigned __int128 slpg_u128;
    typedef __int128 slpg_i128;

    /* acc += d * t (both < 2**63, so the product < 2**126 and no sum of them can wrap
       before the total filled quantity exceeds 2**63) */
    static inline slpg_u128 slpg_madd(slpg_u128 acc, uint64_t d, uint64_t t) {
        return acc + (slpg_u128)d * t;
    }
    /* rel / f as a double, via quotient + remainder / f: correct to double precision and
       monotone in rel (f > 0). */
    static inline double slpg_div(slpg_u128 rel, uint64_t f) {
        if ((rel >> 64) == 0) {
            uint64_t r = (uint64_t)rel;
            return (double)(r / f) + (double)(r % f) / (double)f;
        }
        slpg_u128 q = rel / f;
        return (double)q + (double)(uint64_t)(rel % f) / (double)f;
    }
    static inline double slpg_to_double(slpg_u128 v) { return (double)v; }
    /* best * filled + sgn * rel as a signed 128-bit value split into hi:lo */
    static inline void slpg_notional(int64_t best, int64_t filled, int sgn, slpg_u128 rel,
                                     uint64_t* lo, int64_t* hi) {
        slpg_i128 v = (slpg_i128)best * (slpg_i128)filled;
        v = sgn > 0 ? v + (slpg_i128)rel : v - (slpg_i128)rel;
        *lo = (uint64_t)(slpg_u128)v;
        *hi = (int64_t)(v >> 64);
    }
    """
    ctypedef unsigned long long slpg_u128
    slpg_u128 slpg_madd(slpg_u128 acc, uint64_t d, uint64_t t) noexcept nogil
    double slpg_div(slpg_u128 rel, uint64_t f) noexcept nogil
    double slpg_to_double(slpg_u128 v) noexcept nogil
    void slpg_notional(int64_t best, int64_t filled, int sgn, slpg_u128 rel,
                       uint64_t* lo, int64_t* hi) noexcept nogil

cdef enum:
    SLIP_BUY = 1            # order side: a buy walks the asks
    SLIP_SELL = -1          # a sell walks the bids

cdef enum:
    SLIP_REF_MID = 0        # cost_bps measured from the mid
    SLIP_REF_TOUCH = 1      # cost_bps measured from the best price of the walked side

cdef enum:
    # statuses of slip_walk / slip_max_qty
    SLIP_OK = 0
    SLIP_EQTY = -1          # qty <= 0
    SLIP_ESIDE = -2         # side not SLIP_BUY / SLIP_SELL
    SLIP_EEMPTY = -3        # the walked side has no level
    SLIP_ESYNC = -4         # book.in_sync is False and params.require_in_sync
    SLIP_EREF = -5          # (max_qty) reference price missing (mid of a one-sided book) or <= 0
    SLIP_EBUDGET = -6       # (max_qty) budget is NaN


cdef struct SlipParams:
    double fee_bps          # taker fee, bps of the fill price, added to the cost
    double impact_coef      # dimensionless coefficient of the square-root term
    double sigma_bps        # volatility scale of the impact term, bps
    double depth_scale      # lots; ADV-like scale the shortfall is compared with (> 0)
    int reference           # SLIP_REF_MID or SLIP_REF_TOUCH (reference of cost_bps)
    bint require_in_sync    # refuse (SLIP_ESYNC) books whose in_sync is False


cdef struct SlipWalk:
    # Layout == ext.slippage.WALK_DTYPE (sixteen 8-byte fields, no padding).
    int64_t qty             # lots asked
    int64_t filled          # lots the visible book fills
    int64_t shortfall       # qty - filled
    int64_t levels          # live levels consumed (the last one possibly in part)
    int64_t best_price      # touch of the walked side, ticks
    int64_t worst_price     # price of the last level consumed, ticks
    uint64_t notional_lo    # exact sum(price * take) = notional_hi * 2**64 + notional_lo
    int64_t notional_hi
    double avg_price        # VWAP of the filled lots, ticks
    double mid              # ticks; NaN unless both sides have levels
    double slippage_touch_bps   # (avg - touch) / touch, cost-positive, no fee/impact
    double slippage_mid_bps     # (avg - mid) / mid, cost-positive; NaN without mid
    double impact_bps       # sqrt impact of the shortfall lots (0 without shortfall)
    double expected_price   # average price of all qty lots incl. impacted shortfall, ticks
    double effective_price  # expected_price with the taker fee applied
    double cost_bps         # effective_price vs the reference, cost-positive


cdef struct SlipCtx:
    # Everything the cost of a walk depends on besides (rel, filled, shortfall).
    int book_side
    int sgn                 # +1 buy (price above touch costs), -1 sell
    int64_t best            # touch price of the walked side
    double ref              # reference price (mid or touch); NaN if unavailable
    double a                # 1 + sgn * fee
    double b                # sgn * (best - ref) + best * fee
    double scale            # 1e4 / ref
    double imp_k            # impact_coef * sigma_bps / sqrt(depth_scale)


cdef class WalkParams:
    cdef SlipParams c


cdef class WalkResult:
    cdef SlipWalk r


cdef inline void slip_params_default(SlipParams* p) noexcept nogil:
    """No fee, no impact, cost from the mid, in-sync books only."""
    p.fee_bps = 0.0
    p.impact_coef = 0.0
    p.sigma_bps = 0.0
    p.depth_scale = 1.0
    p.reference = SLIP_REF_MID
    p.require_in_sync = True


cdef inline int _slip_ctx(OrderBook book, int side, const SlipParams* p,
                          SlipCtx* c) noexcept nogil:
    """Fill ``c`` for walking ``book`` on order side ``side``; a ``SLIP_*`` status."""
    cdef const BookSide* s
    cdef const BookSide* o
    cdef double fee, half
    cdef int64_t other
    if side == SLIP_BUY:
        c.book_side = BOOK_ASK
    elif side == SLIP_SELL:
        c.book_side = BOOK_BID
    else:
        return SLIP_ESIDE
    if p.require_in_sync and not book.in_sync:
        return SLIP_ESYNC
    s = &book.sides[c.book_side]
    if s.n == 0:
        return SLIP_EEMPTY
    o = &book.sides[1 - c.book_side]
    c.sgn = side
    c.best = -s.keys[s.n - 1] if c.book_side == BOOK_ASK else s.keys[s.n - 1]
    fee = p.fee_bps * 1e-4
    if p.reference == SLIP_REF_TOUCH:
        c.ref = <double>c.best
        c.b = 0.0
    elif o.n != 0:
        # sgn * (best - ref) = sgn * (best - other) / 2, exact (integer difference < 2**63)
        other = -o.keys[o.n - 1] if c.book_side == BOOK_BID else o.keys[o.n - 1]
        c.ref = 0.5 * (<double>c.best + <double>other)
        half = 0.5 * <double>(c.best - other)
        c.b = half if side == SLIP_BUY else -half
    else:
        c.ref = NAN
        c.b = 0.0
    c.b += <double>c.best * fee
    c.a = 1.0 + c.sgn * fee
    c.scale = 1e4 / c.ref if c.ref > 0.0 else NAN
    c.imp_k = p.impact_coef * p.sigma_bps / sqrt(p.depth_scale)
    return SLIP_OK


cdef inline double _slip_impact_bps(const SlipCtx* c, int64_t shortfall) noexcept nogil:
    """Square-root impact in bps of ``shortfall`` lots beyond the visible depth."""
    if shortfall <= 0 or c.imp_k == 0.0:
        return 0.0
    return c.imp_k * sqrt(<double>shortfall)


cdef inline double _slip_offset(const SlipCtx* c, slpg_u128 rel, int64_t filled,
                                int64_t shortfall, int64_t worst_off, int64_t worst,
                                double impact_bps) noexcept nogil:
    """Cost-direction distance from the touch of the average price of all lots, ticks.

    ``rel`` = sum(|price - touch| * take) over ``filled`` lots; ``shortfall`` extra lots
    priced at the worst visible price moved by ``impact_bps`` against the order.
    """
    if shortfall == 0:
        return slpg_div(rel, <uint64_t>filled)
    return (slpg_to_double(rel) + <double>shortfall * (
        <double>worst_off + <double>worst * impact_bps * 1e-4)) / (
        <double>filled + <double>shortfall)


cdef inline double _slip_cost(const SlipCtx* c, double off) noexcept nogil:
    """Cost in bps vs the reference, fee included, of an average ``off`` ticks past touch.

    ``(off * (1 + sgn * fee) + sgn * (touch - ref) + touch * fee) * 1e4 / ref``: the
    effective (fee-adjusted) price minus the reference, cost-positive for both sides,
    written so that no term cancels (exact when ``off`` is 0 and there is no fee).
    """
    return (off * c.a + c.b) * c.scale


cdef inline void _slip_fill(const SlipCtx* c, OrderBook book, int64_t qty, int64_t filled,
                            slpg_u128 rel, int64_t levels, int64_t worst_off,
                            SlipWalk* out) noexcept nogil:
    """Derive every field of ``out`` from the integer results of a walk."""
    cdef const BookSide* o = &book.sides[1 - c.book_side]
    cdef int64_t shortfall = qty - filled
    cdef int64_t worst = c.best + c.sgn * worst_off
    cdef double off_vis = slpg_div(rel, <uint64_t>filled)
    cdef double imp = _slip_impact_bps(c, shortfall)
    cdef double off_all
    cdef double half
    cdef int64_t other
    out.qty = qty
    out.filled = filled
    out.shortfall = shortfall
    out.levels = levels
    out.best_price = c.best
    out.worst_price = worst
    slpg_notional(c.best, filled, c.sgn, rel, &out.notional_lo, &out.notional_hi)
    out.avg_price = <double>c.best + c.sgn * off_vis
    out.slippage_touch_bps = off_vis / <double>c.best * 1e4 if c.best > 0 else NAN
    if o.n != 0:
        other = -o.keys[o.n - 1] if c.book_side == BOOK_BID else o.keys[o.n - 1]
        out.mid = 0.5 * (<double>c.best + <double>other)
        half = 0.5 * <double>(c.best - other)
        half = half if c.sgn > 0 else -half
        out.slippage_mid_bps = (off_vis + half) / out.mid * 1e4 if out.mid > 0.0 else NAN
    else:
        out.mid = NAN
        out.slippage_mid_bps = NAN
    out.impact_bps = imp
    off_all = off_vis if shortfall == 0 else _slip_offset(
        c, rel, filled, shortfall, worst_off, worst, imp)
    out.expected_price = <double>c.best + c.sgn * off_all
    out.effective_price = out.expected_price * c.a
    out.cost_bps = _slip_cost(c, off_all)


cdef inline int slip_walk(OrderBook book, int side, int64_t qty, const SlipParams* p,
                          SlipWalk* out) noexcept nogil:
    """Walk ``qty`` lots of a market order on order side ``side`` through ``book``.

    Fills ``out`` and returns ``SLIP_OK``, or an error status (``out`` untouched). Skips
    tombstones; stops at the first level that completes the order.
    """
    cdef SlipCtx c
    cdef const BookSide* s
    cdef Py_ssize_t i
    cdef int64_t k0, klast, left, take, sz, levels = 0
    cdef slpg_u128 rel = 0
    cdef int st
    if qty <= 0:
        return SLIP_EQTY
    st = _slip_ctx(book, side, p, &c)
    if st != SLIP_OK:
        return st
    s = &book.sides[c.book_side]
    i = s.n - 1
    k0 = s.keys[i]
    klast = k0
    left = qty
    while i >= 0 and left > 0:
        sz = s.sizes[i]
        if sz != 0:
            take = sz if sz < left else left
            klast = s.keys[i]
            rel = slpg_madd(rel, <uint64_t>(k0 - klast), <uint64_t>take)
            left -= take
            levels += 1
        i -= 1
    _slip_fill(&c, book, qty, qty - left, rel, levels, k0 - klast, out)
    return SLIP_OK


cdef inline int64_t _slip_level_take(const SlipCtx* c, slpg_u128 rel, int64_t filled,
                                     int64_t d, int64_t sz, double budget) noexcept nogil:
    """Largest ``t`` in ``[0, sz)`` whose walk cost is within ``budget``.

    The level at distance ``d`` with ``sz`` lots is known to exceed the budget when taken
    whole, and ``filled`` lots (``rel``) before it are within it (or ``filled == 0``).
    A closed-form estimate is verified with the exact cost; bisection otherwise.
    """
    cdef long double target, est
    cdef int64_t lo, hi, mid_t, t0
    # off(t) = (rel + d t) / (filled + t) <= target  <=>  t <= (target*filled - rel)/(d - target)
    target = (<long double>budget / <long double>c.scale - c.b) / c.a
    if <long double>d > target:
        est = (target * filled - <long double>slpg_to_double(rel)) / (<long double>d - target)
    else:
        est = sz - 1
    if est != est or est < 0:
        t0 = 0
    elif est >= sz - 1:
        t0 = sz - 1
    else:
        t0 = <int64_t>est
    lo = 0
    hi = sz
    if t0 > 0:
        if _slip_cost(c, slpg_div(slpg_madd(rel, <uint64_t>d, <uint64_t>t0),
                                  <uint64_t>(filled + t0))) <= budget:
            lo = t0
            if t0 + 1 < sz and _slip_cost(c, slpg_div(
                    slpg_madd(rel, <uint64_t>d, <uint64_t>(t0 + 1)),
                    <uint64_t>(filled + t0 + 1))) > budget:
                return t0
        else:
            hi = t0
    # invariant: lo is within budget (0: nothing more), hi is not
    while hi - lo > 1:
        mid_t = lo + ((hi - lo) >> 1)
        if _slip_cost(c, slpg_div(slpg_madd(rel, <uint64_t>d, <uint64_t>mid_t),
                                  <uint64_t>(filled + mid_t))) <= budget:
            lo = mid_t
        else:
            hi = mid_t
    return lo


cdef inline double _slip_sf_cost(const SlipCtx* c, slpg_u128 rel, int64_t filled,
                                 int64_t s, int64_t worst_off, int64_t worst) noexcept nogil:
    return _slip_cost(c, _slip_offset(c, rel, filled, s, worst_off, worst,
                                      _slip_impact_bps(c, s)))


cdef inline int slip_max_qty(OrderBook book, int side, double budget_bps,
                             const SlipParams* p, int64_t* out_qty) noexcept nogil:
    """Largest quantity whose walk ``cost_bps`` is ``<= budget_bps`` (size for max slippage).

    Walks the visible levels; inside the level where the budget runs out, the exact answer
    is found with the same cost routine as ``slip_walk``. When the whole visible side fits,
    the search continues into the shortfall region if the impact term is enabled
    (``impact_coef * sigma_bps > 0``), capped at ``INT64_MAX``; without it the answer is the
    visible depth (the model has no price for lots beyond it). 0 when even one lot exceeds
    the budget.
    """
    cdef SlipCtx c
    cdef const BookSide* s
    cdef Py_ssize_t i
    cdef int64_t k0, d = 0, sz, filled = 0, worst, lo, hi, mid_s
    cdef slpg_u128 rel = 0, nrel
    cdef int st
    if budget_bps != budget_bps:
        return SLIP_EBUDGET
    st = _slip_ctx(book, side, p, &c)
    if st != SLIP_OK:
        return st
    if not (c.ref > 0.0):
        return SLIP_EREF
    s = &book.sides[c.book_side]
    i = s.n - 1
    k0 = s.keys[i]
    while i >= 0:
        sz = s.sizes[i]
        if sz != 0:
            d = k0 - s.keys[i]
            if sz > INT64_MAX - filled:
                sz = INT64_MAX - filled
            nrel = slpg_madd(rel, <uint64_t>d, <uint64_t>sz)
            if _slip_cost(&c, slpg_div(nrel, <uint64_t>(filled + sz))) > budget_bps:
                out_qty[0] = filled + _slip_level_take(&c, rel, filled, d, sz, budget_bps)
                return SLIP_OK
            rel = nrel
            filled += sz
            if filled == INT64_MAX:
                out_qty[0] = filled
                return SLIP_OK
        i -= 1
    # the whole visible side is within budget
    if c.imp_k == 0.0 or c.imp_k != c.imp_k:
        out_qty[0] = filled
        return SLIP_OK
    worst = c.best + c.sgn * d
    lo = 0
    hi = 1
    while _slip_sf_cost(&c, rel, filled, hi, d, worst) <= budget_bps:
        lo = hi
        if hi > (INT64_MAX - filled) >> 1:
            hi = INT64_MAX - filled
            if _slip_sf_cost(&c, rel, filled, hi, d, worst) <= budget_bps:
                out_qty[0] = INT64_MAX
                return SLIP_OK
            break
        hi <<= 1
    while hi - lo > 1:
        mid_s = lo + ((hi - lo) >> 1)
        if _slip_sf_cost(&c, rel, filled, mid_s, d, worst) <= budget_bps:
            lo = mid_s
        else:
            hi = mid_s
    out_qty[0] = filled + lo
    return SLIP_OK
