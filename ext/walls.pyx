# cython: language_level=3, auto_pickle=False
"""Order concentration: detect walls (unusually large resting levels) in an order book.

A level of a side is a *wall* when, among the side's *band* (its best ``band_levels`` live
levels, cut at ``band_bps`` from the mid if set) holding at least ``min_levels`` levels:

* ``size > median`` and ``size >= k * median`` (median = lower median of the band sizes),
* ``size - median >= k_mad * MAD`` (MAD = lower median of ``|size - median|``), and
* ``size >= min_share * band depth`` (off when ``min_share`` is 0).

Medians come from a selection (quickselect, branch-free partition) on a scratch buffer,
never a sort; the MAD is only computed when some level passes the first test.

``WallDetector`` streams: ``update(book, ts_ns)`` rescans the book and matches walls with
the previous scan by side and price, so each wall keeps its ``first_seen_ns`` / age;
``on_trade(price, size, ts_ns)`` counts traded lots at current wall prices, which tells a
wall that was *filled* from one that was *pulled* when it disappears or shrinks below the
threshold. ``walls()`` and ``drain_events()`` return structured arrays (``WALL_DTYPE``,
``EVENT_DTYPE``). See ``docs/slippage.md``.
"""

cimport cython

import math

import numpy as np

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport ceil
from libc.stdint cimport INT64_MAX, UINT64_MAX, int32_t, int64_t, uint64_t
from libc.string cimport memcpy

from ext.book cimport BOOK_ASK, BOOK_BID, BookSide, OrderBook, book_lower_bound
from ext.walls cimport (
    WALL_APPEARED,
    WALL_FADED,
    WALL_FILLED,
    WALL_PULLED,
    WallCfg,
    WallEvent,
    WallRec,
)

cdef extern from *:
    """
    typedef unsigned __int128 wall_u128;
    static inline double wall_u128_to_double(wall_u128 v) { return (double)v; }
    """
    ctypedef unsigned long long wall_u128
    double wall_u128_to_double(wall_u128 v) noexcept nogil

APPEARED = WALL_APPEARED
PULLED = WALL_PULLED
FILLED = WALL_FILLED
FADED = WALL_FADED
EVENT_NAMES = {WALL_APPEARED: "appeared", WALL_PULLED: "pulled", WALL_FILLED: "filled",
               WALL_FADED: "faded"}

#: Current walls (``WallDetector.walls()``), layout of the C struct ``WallRec``.
WALL_DTYPE = np.dtype([
    ("price", np.int64),
    ("size", np.int64),
    ("first_seen_ns", np.int64),
    ("age_ns", np.int64),
    ("traded", np.int64),
    ("distance_bps", np.float64),
    ("multiple", np.float64),
    ("share", np.float64),
    ("median", np.float64),
    ("mad", np.float64),
    ("side", np.int32),
    ("level", np.int32),
])

#: Wall events (``WallDetector.drain_events()``), layout of the C struct ``WallEvent``.
EVENT_DTYPE = np.dtype([
    ("ts_ns", np.int64),
    ("price", np.int64),
    ("size", np.int64),
    ("remaining", np.int64),
    ("traded", np.int64),
    ("age_ns", np.int64),
    ("distance_bps", np.float64),
    ("kind", np.int32),
    ("side", np.int32),
])
if WALL_DTYPE.itemsize != sizeof(WallRec) or EVENT_DTYPE.itemsize != sizeof(WallEvent):
    raise ImportError("WALL_DTYPE / EVENT_DTYPE do not match the C structs")

cdef enum:
    _SMALL = 24     # below this many values, selection finishes by insertion sort
    _NEAR = 32      # rank distance from a hint resolved by one tracking pass


# ---------------------------------------------------------------------- selection

cdef inline void _isort(uint64_t* a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Insertion sort of ``a[lo:hi]``."""
    cdef Py_ssize_t i, j
    cdef uint64_t x
    for i in range(lo + 1, hi):
        x = a[i]
        j = i
        while j > lo and a[j - 1] > x:
            a[j] = a[j - 1]
            j -= 1
        a[j] = x


cdef inline Py_ssize_t _part_lt(uint64_t* a, Py_ssize_t lo, Py_ssize_t hi,
                                uint64_t p) noexcept nogil:
    """Branch-free partition of ``a[lo:hi]``: values ``< p`` first; returns the split."""
    cdef Py_ssize_t i = lo, j
    cdef uint64_t x
    for j in range(lo, hi):
        x = a[j]
        a[j] = a[i]
        a[i] = x
        i += x < p
    return i


cdef inline Py_ssize_t _part_le(uint64_t* a, Py_ssize_t lo, Py_ssize_t hi,
                                uint64_t p) noexcept nogil:
    """Branch-free partition of ``a[lo:hi]``: values ``<= p`` first; returns the split."""
    cdef Py_ssize_t i = lo, j
    cdef uint64_t x
    for j in range(lo, hi):
        x = a[j]
        a[j] = a[i]
        a[i] = x
        i += x <= p
    return i


cdef inline uint64_t _med3(uint64_t a, uint64_t b, uint64_t c) noexcept nogil:
    cdef uint64_t lo = a if a < b else b
    cdef uint64_t hi = b if a < b else a
    return lo if c < lo else (hi if c > hi else c)


cdef uint64_t wall_select(uint64_t* a, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The ``k``-th smallest (0-based) of ``a[0:n]`` (``0 <= k < n``); reorders ``a``.

    Quickselect with a median-of-3 (median-of-9 above 128 values) pivot and two
    branch-free partitions (``< p`` then ``== p``), so runs of equal sizes (flat books)
    cost linear time.
    """
    cdef Py_ssize_t lo = 0, hi = n, i, j, m, e
    cdef uint64_t p
    while hi - lo > _SMALL:
        m = lo + ((hi - lo) >> 1)
        if hi - lo > 128:
            e = (hi - lo) >> 3
            p = _med3(_med3(a[lo], a[lo + e], a[lo + 2 * e]),
                      _med3(a[m - e], a[m], a[m + e]),
                      _med3(a[hi - 1 - 2 * e], a[hi - 1 - e], a[hi - 1]))
        else:
            p = _med3(a[lo], a[m], a[hi - 1])
        i = _part_lt(a, lo, hi, p)
        if k < i:
            hi = i
            continue
        j = _part_le(a, i, hi, p)
        if k < j:
            return p
        lo = j
    _isort(a, lo, hi)
    return a[k]


cdef uint64_t _kth_below(const uint64_t* a, Py_ssize_t n, uint64_t h,
                         Py_ssize_t d) noexcept nogil:
    """The ``d``-th largest (0-based) of the values ``< h`` in ``a[0:n]`` (``d < _NEAR``).

    One pass keeping the ``d + 1`` largest values below ``h`` seen so far; the caller
    guarantees that more than ``d`` values are below ``h``.
    """
    cdef uint64_t top[_NEAR]
    cdef Py_ssize_t cnt = 0, j, i
    cdef uint64_t x
    top[0] = 0
    for j in range(n):
        x = a[j]
        if (x < h) & ((cnt <= d) | (x > top[d if cnt > d else 0])):
            i = cnt if cnt <= d else d
            while i > 0 and top[i - 1] < x:
                top[i] = top[i - 1]
                i -= 1
            top[i] = x
            if cnt <= d:
                cnt += 1
    return top[d]


cdef uint64_t _kth_above(const uint64_t* a, Py_ssize_t n, uint64_t h,
                         Py_ssize_t d) noexcept nogil:
    """The ``d``-th smallest (0-based) of the values ``> h`` in ``a[0:n]`` (``d < _NEAR``)."""
    cdef uint64_t top[_NEAR]
    cdef Py_ssize_t cnt = 0, j, i
    cdef uint64_t x
    top[0] = 0
    for j in range(n):
        x = a[j]
        if (x > h) & ((cnt <= d) | (x < top[d if cnt > d else 0])):
            i = cnt if cnt <= d else d
            while i > 0 and top[i - 1] > x:
                top[i] = top[i - 1]
                i -= 1
            top[i] = x
            if cnt <= d:
                cnt += 1
    return top[d]


cdef inline uint64_t _select_hinted(uint64_t* a, Py_ssize_t n, Py_ssize_t k, uint64_t h,
                                    Py_ssize_t lt, Py_ssize_t le) noexcept nogil:
    """``k``-th smallest of ``a[0:n]`` given ``lt``/``le`` = counts of values ``<``/``<= h``.

    Exact whatever the hint: ``h`` itself when its rank range holds ``k``, one tracking
    pass when ``k`` is within ``_NEAR`` ranks of it, else a full selection (reorders ``a``).
    """
    if lt <= k < le:
        return h
    if k < lt and lt - 1 - k < _NEAR:
        return _kth_below(a, n, h, lt - 1 - k)
    if k >= le and k - le < _NEAR:
        return _kth_above(a, n, h, k - le)
    return wall_select(a, n, k)


# ---------------------------------------------------------------------- parameters

cdef inline int _check_range(str name, double v, double lo, double hi) except -1:
    if not (v >= lo and v <= hi):
        raise ValueError(f"{name} must be within [{lo}, {hi}], was {v}")
    return 0


@cython.final
cdef class WallParams:
    """Thresholds of the wall detector (see the module docstring).

    Parameters
    ----------
    k : float, default 5.0
        Minimum multiple of the band median, ``>= 1``.
    k_mad : float, default 3.0
        Minimum distance above the median in MADs, ``>= 0``.
    min_share : float, default 0.0
        Minimum share of the band depth, ``0..1`` (0 disables the test).
    band_levels : int, default 100
        Live levels per side in the band, ``1..1_000_000``.
    band_bps : float, default 0.0
        If ``> 0``, the band also stops at levels farther than this from the mid (bps).
    min_levels : int, default 5
        A side whose band has fewer levels reports no wall, ``1..band_levels``.
    fill_ratio : float, default 0.5
        When a wall ends having lost ``lost`` lots, it was FILLED if at least
        ``max(1, fill_ratio * lost)`` lots traded at its price since the previous update,
        else PULLED (``0..1``).
    """

    def __init__(self, double k=5.0, double k_mad=3.0, double min_share=0.0,
                 Py_ssize_t band_levels=100, double band_bps=0.0, Py_ssize_t min_levels=5,
                 double fill_ratio=0.5):
        _check_range("k", k, 1.0, 1e300)
        _check_range("k_mad", k_mad, 0.0, 1e300)
        _check_range("min_share", min_share, 0.0, 1.0)
        _check_range("band_bps", band_bps, 0.0, 1e300)
        _check_range("fill_ratio", fill_ratio, 0.0, 1.0)
        if band_levels < 1 or band_levels > 1_000_000:
            raise ValueError(f"band_levels must be within 1..1000000, was {band_levels}")
        if min_levels < 1 or min_levels > band_levels:
            raise ValueError(f"min_levels must be within 1..band_levels ({band_levels}), "
                             f"was {min_levels}")
        self.c.k = k
        self.c.k_mad = k_mad
        self.c.min_share = min_share
        self.c.band_levels = band_levels
        self.c.band_bps = band_bps
        self.c.min_levels = min_levels
        self.c.fill_ratio = fill_ratio

    @property
    def k(self) -> float:
        """Minimum multiple of the band median."""
        return self.c.k

    @property
    def k_mad(self) -> float:
        """Minimum distance above the median in MADs."""
        return self.c.k_mad

    @property
    def min_share(self) -> float:
        """Minimum share of the band depth (0: off)."""
        return self.c.min_share

    @property
    def band_levels(self) -> int:
        """Live levels per side in the band."""
        return self.c.band_levels

    @property
    def band_bps(self) -> float:
        """Band cut from the mid in bps (0: no cut)."""
        return self.c.band_bps

    @property
    def min_levels(self) -> int:
        """Minimum band levels for a side to report walls."""
        return self.c.min_levels

    @property
    def fill_ratio(self) -> float:
        """Share of the lost size that trades must explain for a FILLED event."""
        return self.c.fill_ratio

    def __repr__(self) -> str:
        return (f"WallParams(k={self.c.k!r}, k_mad={self.c.k_mad!r}, "
                f"min_share={self.c.min_share!r}, band_levels={self.c.band_levels}, "
                f"band_bps={self.c.band_bps!r}, min_levels={self.c.min_levels}, "
                f"fill_ratio={self.c.fill_ratio!r})")


# ---------------------------------------------------------------------- detector core

cdef inline void _emit(WallDetector self, int64_t ts, int kind, const WallRec* w,
                       int64_t remaining, int64_t age) noexcept nogil:
    cdef WallEvent* e
    if self.n_ev >= self.ev_cap:
        self.events_dropped += 1
        return
    e = &self.ev[self.n_ev]
    self.n_ev += 1
    e.ts_ns = ts
    e.price = w.price
    e.size = w.size
    e.remaining = remaining
    e.traded = w.traded
    e.age_ns = age
    e.distance_bps = w.distance_bps
    e.kind = kind
    e.side = w.side

cdef inline Py_ssize_t _scan_side(WallDetector self, OrderBook book, int side, double mid,
                                  WallRec* out) noexcept nogil:
    """Walls of one side into ``out`` (best level first); returns how many."""
    cdef const BookSide* s = &book.sides[side]
    cdef Py_ssize_t i = s.n - 1, n = 0, nc = 0, j
    cdef Py_ssize_t cap = self.cfg.band_levels
    cdef uint64_t* vals = self.vals
    cdef int64_t* prices = self.prices
    cdef uint64_t x, med, mad = 0, ithr, vmax = 0
    cdef int64_t sz, key
    cdef double key_lim, thr, depth_d, med_d, mad_thr
    cdef wall_u128 depth = 0
    cdef bint cut = self.cfg.band_bps > 0.0
    cdef WallRec* w
    cdef uint64_t h = self.med_hint[side]
    cdef Py_ssize_t lt = 0, le = 0, k
    # key = price (bid) / -price (ask); "beyond the band" is key < key_lim on both sides
    if side == BOOK_BID:
        key_lim = mid * (1.0 - self.cfg.band_bps * 1e-4)
    else:
        key_lim = -(mid * (1.0 + self.cfg.band_bps * 1e-4))
    while i >= 0 and n < cap:
        sz = s.sizes[i]
        if sz != 0:
            key = s.keys[i]
            if cut and <double>key < key_lim:
                break
            vals[n] = <uint64_t>sz
            prices[n] = -key if side == BOOK_ASK else key
            depth += <uint64_t>sz
            lt += <uint64_t>sz < h
            le += <uint64_t>sz <= h
            vmax = <uint64_t>sz if <uint64_t>sz > vmax else vmax
            n += 1
        i -= 1
    if n < self.cfg.min_levels:
        return 0
    k = (n - 1) >> 1
    if lt <= k < le:
        med = h
    else:
        memcpy(self.sel, vals, n * sizeof(uint64_t))
        med = _select_hinted(self.sel, n, k, h, lt, le)
        self.med_hint[side] = med
    med_d = <double>med
    depth_d = wall_u128_to_double(depth)
    # smallest qualifying size: ceil(max(k * median, min_share * depth)), above the median
    thr = self.cfg.k * med_d
    if self.cfg.min_share * depth_d > thr:
        thr = self.cfg.min_share * depth_d
    ithr = <uint64_t>ceil(thr) if thr < 1.8446744073709552e19 else UINT64_MAX
    if ithr <= med:
        ithr = med + 1
    if vmax < ithr:                 # no candidate: no MAD needed
        return 0
    # one pass: candidates, |size - median| and the MAD hint's rank counts
    h = self.mad_hint[side]
    lt = 0
    le = 0
    for j in range(n):
        x = vals[j]
        self.cand[nc] = j
        nc += x >= ithr
        x = x - med if x > med else med - x
        self.sel[j] = x
        lt += x < h
        le += x <= h
    if nc == 0:
        return 0
    mad = _select_hinted(self.sel, n, k, h, lt, le)
    self.mad_hint[side] = mad
    mad_thr = self.cfg.k_mad * <double>mad
    i = 0
    for j in range(nc):
        x = vals[self.cand[j]]
        if <double>(x - med) < mad_thr:
            continue
        w = &out[i]
        i += 1
        w.price = prices[self.cand[j]]
        w.size = <int64_t>x
        w.first_seen_ns = 0
        w.age_ns = 0
        w.traded = 0
        if side == BOOK_BID:
            w.distance_bps = (mid - <double>w.price) / mid * 1e4
        else:
            w.distance_bps = (<double>w.price - mid) / mid * 1e4
        w.multiple = <double>x / med_d
        w.share = <double>x / depth_d
        w.median = med_d
        w.mad = <double>mad
        w.side = side
        w.level = <int32_t>self.cand[j]
    return i

cdef inline int64_t _size_at(WallDetector self, OrderBook book, int side,
                             int64_t price) noexcept nogil:
    cdef const BookSide* s = &book.sides[side]
    cdef int64_t key = -price if side == BOOK_ASK else price
    cdef Py_ssize_t i = book_lower_bound(s.keys, s.n, key)
    if i < s.n and s.keys[i] == key:
        return s.sizes[i]
    return 0

cdef inline void _ended(WallDetector self, OrderBook book, const WallRec* w,
                        int64_t ts) noexcept nogil:
    cdef int64_t remaining = _size_at(self, book, w.side, w.price)
    cdef int64_t lost = w.size - remaining
    cdef int kind
    if lost <= 0:
        kind = WALL_FADED
    elif w.traded > 0 and <double>w.traded >= self.cfg.fill_ratio * <double>lost:
        kind = WALL_FILLED
    else:
        kind = WALL_PULLED
    _emit(self, ts, kind, w, remaining, ts - w.first_seen_ns)



# ---------------------------------------------------------------------- detector

@cython.final
cdef class WallDetector:
    """Streaming wall detector over successive states of one order book.

    Parameters
    ----------
    params : WallParams, optional
        Thresholds; default ``WallParams()``.
    event_capacity : int, default 4096
        Events kept between two ``drain_events()`` calls; later ones are counted in
        ``events_dropped`` and lost.

    Notes
    -----
    One owner thread. ``update`` and ``on_trades`` release the GIL while they run. A book
    without both sides (no mid, e.g. after ``clear()``) makes the detector forget its walls
    silently (no events: nothing can be said about them) and report none.
    """

    def __cinit__(self, WallParams params=None, Py_ssize_t event_capacity=4096):
        cdef Py_ssize_t m
        if params is None:
            params = WallParams()
        if event_capacity < 1:
            raise ValueError(f"event_capacity must be >= 1, was {event_capacity}")
        self.cfg = params.c
        m = self.cfg.band_levels
        self.cap_walls = 2 * m
        self.ev_cap = event_capacity
        self.vals = <uint64_t*>PyMem_Malloc(m * sizeof(uint64_t))
        self.sel = <uint64_t*>PyMem_Malloc(m * sizeof(uint64_t))
        self.prices = <int64_t*>PyMem_Malloc(m * sizeof(int64_t))
        self.cand = <Py_ssize_t*>PyMem_Malloc(m * sizeof(Py_ssize_t))
        self.cur = <WallRec*>PyMem_Malloc(self.cap_walls * sizeof(WallRec))
        self.nxt = <WallRec*>PyMem_Malloc(self.cap_walls * sizeof(WallRec))
        self.ev = <WallEvent*>PyMem_Malloc(event_capacity * sizeof(WallEvent))
        if (self.vals == NULL or self.sel == NULL or self.prices == NULL or self.cand == NULL
                or self.cur == NULL or self.nxt == NULL or self.ev == NULL):
            raise MemoryError("cannot allocate the wall detector")

    def __init__(self, WallParams params=None, Py_ssize_t event_capacity=4096):
        pass  # everything happens in __cinit__ (the C buffers must exist before any call)

    def __dealloc__(self):
        PyMem_Free(self.vals)
        PyMem_Free(self.sel)
        PyMem_Free(self.prices)
        PyMem_Free(self.cand)
        PyMem_Free(self.cur)
        PyMem_Free(self.nxt)
        PyMem_Free(self.ev)

    # ------------------------------------------------------------------ C core

    cdef Py_ssize_t scan(self, OrderBook book, int64_t ts_ns) noexcept nogil:
        """Rescan ``book`` at ``ts_ns``: new current walls, events; returns the count."""
        cdef const BookSide* b = &book.sides[BOOK_BID]
        cdef const BookSide* a = &book.sides[BOOK_ASK]
        cdef Py_ssize_t m, i = 0, j = 0
        cdef double mid
        cdef WallRec* tmp
        cdef WallRec* o
        cdef WallRec* c
        cdef int64_t ko, kc
        self.last_ts = ts_ns
        self.updates += 1
        if b.n == 0 or a.n == 0:
            self.n_cur = 0
            return 0
        mid = 0.5 * (<double>b.keys[b.n - 1] + <double>(-a.keys[a.n - 1]))
        m = _scan_side(self, book, BOOK_BID, mid, self.nxt)
        m += _scan_side(self, book, BOOK_ASK, mid, self.nxt + m)
        # merge with the previous walls: both lists are (side, best-first) ordered
        while i < self.n_cur or j < m:
            c = &self.cur[i] if i < self.n_cur else NULL
            o = &self.nxt[j] if j < m else NULL
            if c != NULL and o != NULL and c.side == o.side:
                kc = -c.price if c.side == BOOK_ASK else c.price
                ko = -o.price if o.side == BOOK_ASK else o.price
            elif c != NULL and o != NULL:
                kc = 1 if c.side < o.side else 0
                ko = 1 - kc
            else:
                kc = 1 if o == NULL else 0
                ko = 1 - kc
            if kc == ko:            # same wall
                o.first_seen_ns = c.first_seen_ns
                o.age_ns = ts_ns - c.first_seen_ns
                i += 1
                j += 1
            elif kc > ko:           # c comes first: it has no successor
                _ended(self, book, c, ts_ns)
                i += 1
            else:                   # o is new
                o.first_seen_ns = ts_ns
                o.age_ns = 0
                _emit(self, ts_ns, WALL_APPEARED, o, o.size, 0)
                j += 1
        tmp = self.cur
        self.cur = self.nxt
        self.nxt = tmp
        self.n_cur = m
        return m

    cdef void trade(self, int64_t price, int64_t size) noexcept nogil:
        """Count ``size`` lots traded at ``price`` against the current walls there."""
        cdef Py_ssize_t i
        for i in range(self.n_cur):
            if self.cur[i].price == price:
                if self.cur[i].traded > INT64_MAX - size:
                    self.cur[i].traded = INT64_MAX
                else:
                    self.cur[i].traded += size

    # ------------------------------------------------------------------ Python API

    def update(self, OrderBook book not None, int64_t ts_ns) -> int:
        """Rescan ``book`` as of ``ts_ns`` and update the walls and their events.

        Parameters
        ----------
        book : ext.book.OrderBook
            The book (not modified). Its ``in_sync`` flag is not looked at.
        ts_ns : int
            Timestamp (ns), ``>= 0`` and not before the previous update.

        Returns
        -------
        int
            Number of current walls (both sides).

        Raises
        ------
        ValueError
            ``ts_ns`` negative or earlier than the previous update.
        """
        cdef Py_ssize_t n
        if ts_ns < 0 or ts_ns < self.last_ts:
            raise ValueError(f"ts_ns must be >= 0 and >= the previous update "
                             f"({self.last_ts}), was {ts_ns}")
        with nogil:
            n = self.scan(book, ts_ns)
        return n

    def on_trade(self, int64_t price, int64_t size, int64_t ts_ns) -> None:
        """Record a trade of ``size`` lots at ``price`` (ticks) at ``ts_ns``.

        Only trades at the exact price of a current wall count; they decide whether the
        wall was filled or pulled if it ends at the next ``update``. ``ts_ns`` is
        informative (trades are attributed to the interval before the next update).

        Raises
        ------
        ValueError
            ``size`` negative.
        """
        if size < 0:
            raise ValueError(f"size must be >= 0, was {size}")
        self.trade(price, size)

    def on_trades(self, const int64_t[::1] prices not None,
                  const int64_t[::1] sizes not None) -> None:
        """Record many trades (``on_trade`` for each), GIL released.

        Raises
        ------
        ValueError
            Length mismatch or a negative size (index named); nothing is recorded then.
        """
        cdef Py_ssize_t n = prices.shape[0], i
        if sizes.shape[0] != n:
            raise ValueError(f"sizes has {sizes.shape[0]} entries, prices has {n}")
        for i in range(n):
            if sizes[i] < 0:
                raise ValueError(f"sizes[{i}] must be >= 0, was {sizes[i]}")
        with nogil:
            for i in range(n):
                self.trade(prices[i], sizes[i])

    def walls(self):
        """Current walls as a new array of ``WALL_DTYPE`` (bids then asks, best first)."""
        out = np.empty(self.n_cur, dtype=WALL_DTYPE)
        cdef WallRec[::1] v
        if self.n_cur:
            v = out
            memcpy(&v[0], self.cur, self.n_cur * sizeof(WallRec))
        return out

    def drain_events(self):
        """Events since the last call as a new array of ``EVENT_DTYPE``; clears them."""
        out = np.empty(self.n_ev, dtype=EVENT_DTYPE)
        cdef WallEvent[::1] v
        if self.n_ev:
            v = out
            memcpy(&v[0], self.ev, self.n_ev * sizeof(WallEvent))
        self.n_ev = 0
        return out

    def reset(self) -> None:
        """Forget walls, pending events, counters and the last timestamp."""
        self.n_cur = 0
        self.n_ev = 0
        self.events_dropped = 0
        self.last_ts = 0
        self.updates = 0

    @property
    def n_walls(self) -> int:
        """Number of current walls."""
        return self.n_cur

    @property
    def pending_events(self) -> int:
        """Events waiting for ``drain_events()``."""
        return self.n_ev

    @property
    def params(self) -> WallParams:
        """A copy of the thresholds in use."""
        cdef WallParams p = WallParams.__new__(WallParams)
        p.c = self.cfg
        return p


def select_kth(const uint64_t[::1] values not None, Py_ssize_t k) -> int:
    """The ``k``-th smallest (0-based) of ``values`` by the detector's selection routine.

    Exposed for tests and benchmarks; ``values`` is not modified (a copy is reordered).

    Raises
    ------
    ValueError
        ``k`` outside ``0..len(values) - 1``.
    """
    cdef Py_ssize_t n = values.shape[0]
    if k < 0 or k >= n:
        raise ValueError(f"k must be within 0..{n - 1}, was {k}")
    cdef uint64_t[::1] tmp = np.array(values, dtype=np.uint64)
    cdef uint64_t r
    with nogil:
        r = wall_select(&tmp[0], n, k)
    return r
