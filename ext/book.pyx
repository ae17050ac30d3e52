# cython: language_level=3, auto_pickle=False
"""Compiled L2 order book over integer ticks and lots.

``OrderBook`` keeps absolute-size price levels (Binance / OKX L2 semantics: a size replaces
the level, size 0 deletes it, deleting an absent level is a counted no-op) in numpy buffers
it owns, and answers top-of-book questions in C: best bid/ask, mid, spread, microprice,
top-N levels, depth near the mid, VWAP fill price of a quantity, quantity within a limit,
crossed-book detection.

Prices are int64 *ticks* in units of ``10**-price_scale``; sizes are int64 *lots* in units
of ``10**-size_scale`` (``ext.scaled.to_scaled`` makes them from decimal text). Prices must
lie within ``[-MAX_PRICE, MAX_PRICE]`` (``2**62 - 1``), sizes must be ``>= 0``.

Layout and memory
-----------------
One sorted array of slots per side with the best level in the last slot, so the frequent
changes near the top of book move few elements; a level is found by galloping down from
the top and bisecting (O(log d) for a level d slots from the top). A slot is 16 bytes
(int64 key + int64 size). Deleted levels are left as tombstones so that a price that
comes back (the common case on real streams) costs no memory move; tombstones are never
the best slot and are compacted away once they make up half of a side's slots (and at
least ``32``). Capacity starts at ``capacity`` slots and doubles when full (amortized O(1),
never shrinks except on ``load_snapshot``/``clear``). Hence a side holding L live levels
uses at most ``16 * (2 * L + 32)`` bytes of slots, times at most 2 for capacity slack.

Empty sides
-----------
``best_bid()`` / ``best_ask()`` return ``(NO_BID_PRICE, 0)`` / ``(NO_ASK_PRICE, 0)`` on an
empty side: ``NO_BID_PRICE`` is ``INT64_MIN`` and ``NO_ASK_PRICE`` is ``INT64_MAX``, so
``price >= best_ask_price`` style comparisons stay correct without a branch, and a size of
0 means "no level". ``mid()`` and ``microprice()`` return NaN and ``spread()`` returns
``NO_SPREAD`` (``INT64_MAX``) unless both sides have a level.

Threading
---------
A book is not thread-safe: one owner thread. ``apply_batch`` releases the GIL while it
runs, so no other thread may touch the same book meanwhile.
"""

import numpy as np

from libc.math cimport NAN
from libc.stdint cimport INT64_MAX, INT64_MIN, int8_t, int64_t, uint64_t
from libc.string cimport memcpy

cimport numpy as cnp

from ext._types cimport lots_t, ticks_t
from ext.book cimport (
    BOOK_ASK,
    BOOK_BID,
    BOOK_CHANGED,
    BOOK_EINVAL,
    BOOK_ENOMEM,
    BOOK_MIN_CAPACITY,
    SLIP_BOOK_MAX_PRICE,
    BookSide,
    book_apply,
    book_apply_at,
    book_lower_bound_near,
    book_best_price,
    book_best_size,
)

BID = BOOK_BID
ASK = BOOK_ASK
MAX_PRICE = SLIP_BOOK_MAX_PRICE
MAX_SCALE = 18
NO_BID_PRICE = INT64_MIN
NO_ASK_PRICE = INT64_MAX
NO_SPREAD = INT64_MAX

cdef int64_t[19] _POW10
cdef Py_ssize_t[2] _apply_hint  # last slot per side of OrderBook.apply (a search hint only)
_apply_hint[0] = -1
_apply_hint[1] = -1
# best_bid()/best_ask() hand out the same (immutable) tuple while the values are unchanged,
# whichever book asked: building two ints and a tuple per call costs more than the query.
cdef tuple _bid_tuple = (INT64_MIN, 0)
cdef int64_t _bid_p = INT64_MIN
cdef int64_t _bid_q = 0
cdef tuple _ask_tuple = (INT64_MAX, 0)
cdef int64_t _ask_p = INT64_MAX
cdef int64_t _ask_q = 0
_POW10[0] = 1
for _i in range(1, 19):
    _POW10[_i] = _POW10[_i - 1] * 10


cdef inline int _check_side(int side) except -1:
    if side != BOOK_BID and side != BOOK_ASK:
        raise ValueError(f"side must be BID (0) or ASK (1), was {side}")
    return 0


cdef inline int _check_level(str what, int64_t price, int64_t size) except -1:
    if price > SLIP_BOOK_MAX_PRICE or price < -SLIP_BOOK_MAX_PRICE:
        raise ValueError(f"{what}price must be within +-{SLIP_BOOK_MAX_PRICE}, was {price}")
    if size < 0:
        raise ValueError(f"{what}size must be >= 0, was {size}")
    return 0


cdef inline int _check_scale(str name, int scale) except -1:
    if scale < 0 or scale > MAX_SCALE:
        raise ValueError(f"{name} must be within 0..{MAX_SCALE}, was {scale}")
    return 0


cdef inline Py_ssize_t _first_bad_level(const int64_t* prices, const int64_t* sizes,
                                        Py_ssize_t n) noexcept nogil:
    """Index of the first level with a price out of range or a negative size, else -1."""
    cdef Py_ssize_t i
    for i in range(n):
        if prices[i] > SLIP_BOOK_MAX_PRICE or prices[i] < -SLIP_BOOK_MAX_PRICE \
                or sizes[i] < 0:
            return i
    return -1


cdef extern from *:
    """
    static inline double slip_microprice(int64_t pb, int64_t qb, int64_t pa, int64_t qa) {
        __int128 num = (__int128)pb * qa + (__int128)pa * qb;
        __int128 den = (__int128)qb + qa;
        return (double)num / (double)den;
    }
    """
    double slip_microprice(int64_t pb, int64_t qb, int64_t pa, int64_t qa) noexcept nogil


cdef extern from *:
    """
    /* Lower bounds of four keys in (up to) four sorted int64 arrays at once, by the
       bracket of book_bracket and a branch-free bisection run on all four in lockstep,
       so the four chains of dependent loads overlap. Exact for every input. */
    static inline void slip_lower_bound4(const int64_t* const* keys, const Py_ssize_t* ns,
                                         const int64_t* key, Py_ssize_t* out) {
        const int64_t* b[4];
        Py_ssize_t m[4];
        int above[4];
        int j;
        for (j = 0; j < 4; j++) {
            Py_ssize_t n = ns[j];
            const int64_t* k = keys[j];
            above[j] = n == 0 || k[n - 1] < key[j];
            if (above[j]) {
                b[j] = k;           /* any readable slot: capacity is never 0 */
                m[j] = 0;
            } else {
                uint64_t d = (uint64_t)(k[n - 1] - key[j]);
                if (d >= (uint64_t)(n - 1)) { b[j] = k; m[j] = n - 1; }
                else { b[j] = k + (n - 1 - (Py_ssize_t)d); m[j] = (Py_ssize_t)d; }
            }
        }
        while ((m[0] > 1) | (m[1] > 1) | (m[2] > 1) | (m[3] > 1)) {
            for (j = 0; j < 4; j++) {
                Py_ssize_t h = m[j] >> 1;
                b[j] = (b[j][h] < key[j]) ? b[j] + h : b[j];
                m[j] -= h;
            }
        }
        for (j = 0; j < 4; j++)
            out[j] = above[j] ? ns[j] : (b[j] - keys[j]) + (b[j][0] < key[j]);
    }
    """
    void slip_lower_bound4(const int64_t** keys, const Py_ssize_t* ns, const int64_t* key,
                           Py_ssize_t* out) noexcept nogil


cnp.import_array()


cdef inline int64_t* _plain_i64(object a, Py_ssize_t* n) noexcept:
    """Data and length of ``a`` if it is exactly a writeable, aligned, C-contiguous, native
    1-d int64 ndarray, else NULL (the caller then takes a typed memoryview, which checks
    and reports). Exporting a buffer costs ~200 ns per array with numpy 2.4; this is a
    few field reads. The pointer is valid while the caller holds ``a`` and the GIL."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_CheckExact(a):
        return NULL
    arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != cnp.NPY_INT64 or cnp.PyArray_NDIM(arr) != 1 \
            or not cnp.PyArray_ISCARRAY(arr) or not cnp.PyArray_ISNOTSWAPPED(arr):
        return NULL
    n[0] = cnp.PyArray_DIM(arr, 0)
    return <int64_t*>cnp.PyArray_DATA(arr)


cdef inline Py_ssize_t _top_into(const BookSide* s, int side, int64_t* out_p,
                                 int64_t* out_s, Py_ssize_t k) noexcept nogil:
    """Write up to ``k`` live levels best first; returns how many were written."""
    cdef Py_ssize_t i = s.n - 1
    cdef Py_ssize_t j = 0
    cdef int64_t sz
    while i >= 0 and j < k:
        sz = s.sizes[i]
        if sz != 0:
            out_p[j] = -s.keys[i] if side else s.keys[i]
            out_s[j] = sz
            j += 1
        i -= 1
    return j


cdef inline int64_t _sum_from_top(const BookSide* s, int64_t min_key) noexcept nogil:
    """Sum of sizes of slots with ``key >= min_key`` (saturating at INT64_MAX)."""
    cdef Py_ssize_t i = s.n - 1
    cdef int64_t total = 0
    cdef int64_t sz
    while i >= 0 and s.keys[i] >= min_key:
        sz = s.sizes[i]
        if total > INT64_MAX - sz:
            return INT64_MAX
        total += sz
        i -= 1
    return total


cdef class OrderBook:
    """L2 order book of one instrument: absolute-size levels in int64 ticks and lots.

    Parameters
    ----------
    price_scale : int, default 0
        Decimal places of the price unit, 0..18 (a price of ``p`` means
        ``p * 10**-price_scale``).
    size_scale : int, default 0
        Decimal places of the size unit, 0..18.
    capacity : int, default 64
        Initial slots per side (at least 16). Sides double when full; 16 bytes per slot.

    Notes
    -----
    Side encoding: ``BID == 0``, ``ASK == 1``. Prices within ``[-MAX_PRICE, MAX_PRICE]``,
    sizes ``>= 0``. The book has no venue sequencing logic; it only records
    ``last_update_id`` and an ``in_sync`` flag for the code that has (see ``docs/book.md``).

    Examples
    --------
    >>> book = OrderBook(price_scale=2, size_scale=8)
    >>> book.apply(BID, 268380, 302920000)
    True
    >>> book.best_bid()
    (268380, 302920000)
    """

    def __cinit__(self):
        # a usable empty book even if __init__ is bypassed
        self._min_capacity = BOOK_MIN_CAPACITY
        self.last_update_id = -1
        self._reserve(BOOK_BID, BOOK_MIN_CAPACITY)
        self._reserve(BOOK_ASK, BOOK_MIN_CAPACITY)

    def __init__(self, int price_scale=0, int size_scale=0, Py_ssize_t capacity=64):
        _check_scale("price_scale", price_scale)
        _check_scale("size_scale", size_scale)
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, was {capacity}")
        self.price_scale = price_scale
        self.size_scale = size_scale
        self._min_capacity = max(capacity, BOOK_MIN_CAPACITY)
        self.clear()

    # ------------------------------------------------------------------ internals

    cdef void _bind(self, int side) noexcept:
        cdef int64_t[:, ::1] buf = self._bid_buf if side == BOOK_BID else self._ask_buf
        self.sides[side].keys = &buf[0, 0]
        self.sides[side].sizes = &buf[1, 0]
        self.sides[side].cap = buf.shape[1]

    cdef int _reserve(self, int side, Py_ssize_t cap) except -1:
        """Reallocate ``side`` to exactly ``cap`` slots keeping its ``n`` slots."""
        cdef BookSide* s = &self.sides[side]
        cdef int64_t[:, ::1] buf = np.empty((2, cap), dtype=np.int64)
        if s.n:
            memcpy(&buf[0, 0], s.keys, <size_t>s.n * sizeof(int64_t))
            memcpy(&buf[1, 0], s.sizes, <size_t>s.n * sizeof(int64_t))
        if side == BOOK_BID:
            self._bid_buf = buf
        else:
            self._ask_buf = buf
        self._bind(side)
        self.sides[side].layout += 1
        return 0

    cdef int _grow(self, int side) noexcept nogil:
        """Double the capacity of ``side`` (takes the GIL); 0 on success, -1 on failure."""
        with gil:
            try:
                self._reserve(side, 2 * self.sides[side].cap)
            except BaseException:
                return -1
        return 0

    cdef void _compact(self, int side) noexcept nogil:
        """Drop all tombstones of ``side`` in place (order kept)."""
        cdef BookSide* s = &self.sides[side]
        cdef Py_ssize_t i, j = 0
        for i in range(s.n):
            if s.sizes[i] != 0:
                s.keys[j] = s.keys[i]
                s.sizes[j] = s.sizes[i]
                j += 1
        s.n = j
        s.dead = 0
        s.layout += 1

    # ------------------------------------------------------------------ state

    @property
    def bid_levels(self) -> int:
        """Number of bid levels (live, excluding tombstones)."""
        return self.sides[BOOK_BID].n - self.sides[BOOK_BID].dead

    @property
    def ask_levels(self) -> int:
        """Number of ask levels (live, excluding tombstones)."""
        return self.sides[BOOK_ASK].n - self.sides[BOOK_ASK].dead

    def capacity(self, int side) -> int:
        """Allocated slots of ``side`` (each 16 bytes; grows by doubling).

        Parameters
        ----------
        side : int
            ``BID`` (0) or ``ASK`` (1).

        Returns
        -------
        int
            The capacity in slots.
        """
        _check_side(side)
        return self.sides[side].cap

    def nbytes(self) -> int:
        """Bytes held by the level buffers of both sides (capacity * 16 per side)."""
        return 16 * (self.sides[BOOK_BID].cap + self.sides[BOOK_ASK].cap)

    def mark_out_of_sync(self) -> None:
        """Set ``in_sync`` to False (the next ``load_snapshot`` sets it back).

        Updates can still be applied to an out-of-sync book; whether to do so (e.g. while
        buffering for a resync) is the parser's decision.
        """
        self.in_sync = False

    def clear(self) -> None:
        """Remove every level, shrink to the initial capacity, mark out of sync.

        ``last_update_id`` becomes -1; ``absent_deletes`` is kept (it is cumulative).
        """
        self.sides[BOOK_BID].n = 0
        self.sides[BOOK_BID].dead = 0
        self.sides[BOOK_BID].layout += 1
        self.sides[BOOK_ASK].n = 0
        self.sides[BOOK_ASK].dead = 0
        self.sides[BOOK_ASK].layout += 1
        if self.sides[BOOK_BID].cap != self._min_capacity:
            self._reserve(BOOK_BID, self._min_capacity)
        if self.sides[BOOK_ASK].cap != self._min_capacity:
            self._reserve(BOOK_ASK, self._min_capacity)
        self.in_sync = False
        self.last_update_id = -1

    def load_snapshot(self, const int64_t[::1] bid_prices not None,
                      const int64_t[::1] bid_sizes not None,
                      const int64_t[::1] ask_prices not None,
                      const int64_t[::1] ask_sizes not None,
                      int64_t last_update_id=-1) -> None:
        """Replace the whole book by a snapshot and mark it in sync.

        Parameters
        ----------
        bid_prices, bid_sizes, ask_prices, ask_sizes : numpy.ndarray of int64
            Levels of each side in any order (C-contiguous int64). Levels of size 0 are
            skipped (absent); a price may appear only once per side.
        last_update_id : int, default -1
            Stored in ``last_update_id`` (e.g. Binance ``lastUpdateId``, OKX ``seqId``).

        Raises
        ------
        ValueError
            On length mismatch, a price out of range, a negative size or a duplicate price
            (the message names the argument and the value). The book is unchanged then.

        Notes
        -----
        A crossed snapshot is accepted (``is_crossed()`` reports it). Capacity is reset to
        ``max(capacity, 2 * levels)`` slots so memory follows the snapshot depth.
        """
        cdef Py_ssize_t nb = bid_prices.shape[0]
        cdef Py_ssize_t na = ask_prices.shape[0]
        cdef Py_ssize_t i
        if bid_sizes.shape[0] != nb:
            raise ValueError(f"bid_sizes has {bid_sizes.shape[0]} entries, bid_prices has {nb}")
        if ask_sizes.shape[0] != na:
            raise ValueError(f"ask_sizes has {ask_sizes.shape[0]} entries, ask_prices has {na}")
        i = _first_bad_level(&bid_prices[0] if nb else NULL, &bid_sizes[0] if nb else NULL, nb)
        if i >= 0:
            _check_level("bid_prices/bid_sizes: ", bid_prices[i], bid_sizes[i])
        i = _first_bad_level(&ask_prices[0] if na else NULL, &ask_sizes[0] if na else NULL, na)
        if i >= 0:
            _check_level("ask_prices/ask_sizes: ", ask_prices[i], ask_sizes[i])
        # keys ascending (best last): bids by price, asks by -price
        bp = np.asarray(bid_prices)
        bs = np.asarray(bid_sizes)
        ap = np.asarray(ask_prices)
        asz = np.asarray(ask_sizes)
        bkeep = bs != 0
        akeep = asz != 0
        bk = bp[bkeep]
        bv = bs[bkeep]
        ak = -ap[akeep]
        av = asz[akeep]
        bo = np.argsort(bk, kind="stable")
        ao = np.argsort(ak, kind="stable")
        bk = np.ascontiguousarray(bk[bo])
        bv = np.ascontiguousarray(bv[bo])
        ak = np.ascontiguousarray(ak[ao])
        av = np.ascontiguousarray(av[ao])
        dup = np.flatnonzero(np.diff(bk) == 0)
        if dup.size:
            raise ValueError(f"bid_prices: duplicate price {int(bk[dup[0]])}")
        dup = np.flatnonzero(np.diff(ak) == 0)
        if dup.size:
            raise ValueError(f"ask_prices: duplicate price {int(-ak[dup[0]])}")
        self._install(BOOK_BID, bk, bv)
        self._install(BOOK_ASK, ak, av)
        self.last_update_id = last_update_id
        self.in_sync = True

    cdef _install(self, int side, const int64_t[::1] keys, const int64_t[::1] sizes):
        cdef Py_ssize_t n = keys.shape[0]
        cdef BookSide* s = &self.sides[side]
        s.n = 0
        s.dead = 0
        self._reserve(side, max(self._min_capacity, 2 * n))
        if n:
            memcpy(s.keys, &keys[0], <size_t>n * sizeof(int64_t))
            memcpy(s.sizes, &sizes[0], <size_t>n * sizeof(int64_t))
        s.n = n

    # ------------------------------------------------------------------ updates

    def apply(self, int side, int64_t price, int64_t size) -> bool:
        """Set one level to an absolute size (``size == 0`` deletes it).

        Parameters
        ----------
        side : int
            ``BID`` (0) or ``ASK`` (1).
        price : int
            Price in ticks, within ``[-MAX_PRICE, MAX_PRICE]``.
        size : int
            New absolute size in lots, ``>= 0``; 0 deletes the level.

        Returns
        -------
        bool
            True if the book changed; False for the delete of an absent level (a no-op
            counted in ``absent_deletes``).

        Raises
        ------
        ValueError
            If ``side``, ``price`` or ``size`` is invalid (book unchanged).

        Notes
        -----
        Works whatever ``in_sync`` says; ``last_update_id`` is not touched.
        """
        cdef int st = BOOK_EINVAL
        cdef BookSide* s
        cdef int64_t key
        cdef Py_ssize_t r
        if (side >> 1) == 0 and size >= 0 and price <= SLIP_BOOK_MAX_PRICE \
                and price >= -SLIP_BOOK_MAX_PRICE:
            # book_apply with the slot of the previous call on this side as the search
            # anchor (any anchor is exact; see book_lower_bound_near)
            s = &self.sides[side]
            key = -price if side else price
            r = book_lower_bound_near(s.keys, s.n, key, _apply_hint[side])
            st = book_apply_at(self, side, key, size, r)
            _apply_hint[side] = r
        if st >= 0:
            return st == BOOK_CHANGED
        if st == BOOK_ENOMEM:
            raise MemoryError("cannot grow the order book")
        _check_side(side)
        _check_level("", price, size)
        raise AssertionError("unreachable")

    def apply_batch(self, const int8_t[::1] sides not None, const int64_t[::1] prices not None,
                    const int64_t[::1] sizes not None, update_id=None) -> int:
        """Apply many absolute-size level updates in order, with the GIL released.

        Parameters
        ----------
        sides : numpy.ndarray of int8
            ``BID`` (0) or ``ASK`` (1) per update.
        prices : numpy.ndarray of int64
            Prices in ticks.
        sizes : numpy.ndarray of int64
            Absolute sizes in lots; 0 deletes.
        update_id : int or None, default None
            If given, stored in ``last_update_id`` after the batch.

        Returns
        -------
        int
            Number of updates that changed the book; the rest were deletes of absent
            levels (also added to ``absent_deletes``).

        Raises
        ------
        ValueError
            On length mismatch or the first invalid entry (its index and value are named);
            inputs are validated before anything is applied, so the book is unchanged.
        MemoryError
            If a side could not grow; updates before the failing one are applied.
        """
        cdef Py_ssize_t n = sides.shape[0]
        cdef Py_ssize_t i = 0, applied = 0
        cdef int st = 0
        cdef int64_t uid = 0
        cdef int sj, j
        cdef int gs[4]
        cdef int64_t gk[4]
        cdef const int64_t* gkeys[4]
        cdef Py_ssize_t gn[4]
        cdef Py_ssize_t gr[4]
        cdef uint64_t lay[2]
        cdef BookSide* a
        if prices.shape[0] != n:
            raise ValueError(f"prices has {prices.shape[0]} entries, sides has {n}")
        if sizes.shape[0] != n:
            raise ValueError(f"sizes has {sizes.shape[0]} entries, sides has {n}")
        if update_id is not None:
            uid = update_id
        for i in range(n):
            if sides[i] != BOOK_BID and sides[i] != BOOK_ASK:
                raise ValueError(f"sides[{i}] must be BID (0) or ASK (1), was {sides[i]}")
            if prices[i] > SLIP_BOOK_MAX_PRICE or prices[i] < -SLIP_BOOK_MAX_PRICE:
                raise ValueError(
                    f"prices[{i}] must be within +-{SLIP_BOOK_MAX_PRICE}, was {prices[i]}")
            if sizes[i] < 0:
                raise ValueError(f"sizes[{i}] must be >= 0, was {sizes[i]}")
        if n:
            with nogil:
                # Four updates per step: their searches run interleaved (four independent
                # chains of dependent loads overlap, slip_lower_bound4), then they are
                # applied in order. An update whose side moved slots since the search
                # (an insert, trim or compaction by an earlier update of the group) is
                # searched again, anchored at its stale slot (book_lower_bound_near).
                i = 0
                while i + 4 <= n and st >= 0:
                    for j in range(4):
                        sj = sides[i + j]
                        gs[j] = sj
                        gk[j] = -prices[i + j] if sj else prices[i + j]
                        gkeys[j] = self.sides[sj].keys
                        gn[j] = self.sides[sj].n
                    lay[0] = self.sides[0].layout
                    lay[1] = self.sides[1].layout
                    slip_lower_bound4(gkeys, gn, gk, gr)
                    for j in range(4):
                        sj = gs[j]
                        a = &self.sides[sj]
                        if a.layout != lay[sj]:
                            gr[j] = book_lower_bound_near(a.keys, a.n, gk[j], gr[j])
                        st = book_apply_at(self, sj, gk[j], sizes[i], gr[j])
                        if st < 0:
                            break
                        applied += st
                        i += 1
                while st >= 0 and i < n:
                    st = book_apply(self, sides[i], prices[i], sizes[i])
                    if st < 0:
                        break
                    applied += st
                    i += 1
        if st == BOOK_ENOMEM:
            raise MemoryError(f"cannot grow the order book at update {i}")
        if update_id is not None:
            self.last_update_id = uid
        return applied

    def rescale(self, int new_price_scale, int new_size_scale) -> None:
        """Switch to finer units, multiplying stored prices and sizes exactly by 10**k.

        Parameters
        ----------
        new_price_scale : int
            New price decimals, ``price_scale <= new_price_scale <= 18``.
        new_size_scale : int
            New size decimals, ``size_scale <= new_size_scale <= 18``.

        Raises
        ------
        ValueError
            If a scale would decrease or leave 0..18, or a stored price would leave
            ``[-MAX_PRICE, MAX_PRICE]`` / a size would overflow int64. The book is
            unchanged then.
        """
        cdef int64_t fp, fs, k, v
        cdef Py_ssize_t i
        cdef int side
        cdef BookSide* s
        _check_scale("new_price_scale", new_price_scale)
        _check_scale("new_size_scale", new_size_scale)
        if new_price_scale < self.price_scale:
            raise ValueError(f"new_price_scale must be >= price_scale ({self.price_scale}), "
                             f"was {new_price_scale}")
        if new_size_scale < self.size_scale:
            raise ValueError(f"new_size_scale must be >= size_scale ({self.size_scale}), "
                             f"was {new_size_scale}")
        fp = _POW10[new_price_scale - self.price_scale]
        fs = _POW10[new_size_scale - self.size_scale]
        for side in range(2):
            self._compact(side)
            s = &self.sides[side]
            for i in range(s.n):
                k = s.keys[i]
                v = s.sizes[i]
                if k > SLIP_BOOK_MAX_PRICE // fp or k < -(SLIP_BOOK_MAX_PRICE // fp):
                    raise ValueError(
                        f"new_price_scale={new_price_scale}: price "
                        f"{-k if side else k} would leave +-{SLIP_BOOK_MAX_PRICE}")
                if v > INT64_MAX // fs:
                    raise ValueError(
                        f"new_size_scale={new_size_scale}: size {v} would overflow int64")
        for side in range(2):
            s = &self.sides[side]
            for i in range(s.n):
                s.keys[i] *= fp
                s.sizes[i] *= fs
            s.layout += 1
        self.price_scale = new_price_scale
        self.size_scale = new_size_scale

    # ------------------------------------------------------------------ queries

    @property
    def best_bid_price(self) -> int:
        """Best bid price in ticks, ``NO_BID_PRICE`` (INT64_MIN) if no bids."""
        return book_best_price(self, BOOK_BID)

    @property
    def best_ask_price(self) -> int:
        """Best ask price in ticks, ``NO_ASK_PRICE`` (INT64_MAX) if no asks."""
        return book_best_price(self, BOOK_ASK)

    @property
    def best_bid_size(self) -> int:
        """Size at the best bid in lots, 0 if no bids."""
        return book_best_size(self, BOOK_BID)

    @property
    def best_ask_size(self) -> int:
        """Size at the best ask in lots, 0 if no asks."""
        return book_best_size(self, BOOK_ASK)

    def best_bid(self) -> tuple:
        """Best bid as ``(price, size)``; ``(NO_BID_PRICE, 0)`` if there are no bids."""
        global _bid_tuple, _bid_p, _bid_q
        cdef int64_t p = book_best_price(self, BOOK_BID)
        cdef int64_t q = book_best_size(self, BOOK_BID)
        if p != _bid_p or q != _bid_q:     # the top of book rarely changes between calls
            _bid_tuple = (p, q)
            _bid_p = p
            _bid_q = q
        return _bid_tuple

    def best_ask(self) -> tuple:
        """Best ask as ``(price, size)``; ``(NO_ASK_PRICE, 0)`` if there are no asks."""
        global _ask_tuple, _ask_p, _ask_q
        cdef int64_t p = book_best_price(self, BOOK_ASK)
        cdef int64_t q = book_best_size(self, BOOK_ASK)
        if p != _ask_p or q != _ask_q:
            _ask_tuple = (p, q)
            _ask_p = p
            _ask_q = q
        return _ask_tuple

    def is_crossed(self) -> bool:
        """True if both sides have levels and best bid >= best ask (crossed or locked)."""
        return book_best_price(self, BOOK_BID) >= book_best_price(self, BOOK_ASK)

    def mid(self) -> float:
        """Mid price ``(best_bid + best_ask) / 2`` in ticks; NaN unless both sides exist."""
        if self.sides[BOOK_BID].n == 0 or self.sides[BOOK_ASK].n == 0:
            return NAN
        return 0.5 * (<double>book_best_price(self, BOOK_BID)
                      + <double>book_best_price(self, BOOK_ASK))

    def spread(self) -> int:
        """``best_ask - best_bid`` in ticks (<= 0 when crossed); ``NO_SPREAD`` unless both
        sides exist."""
        if self.sides[BOOK_BID].n == 0 or self.sides[BOOK_ASK].n == 0:
            return NO_SPREAD
        return book_best_price(self, BOOK_ASK) - book_best_price(self, BOOK_BID)

    def microprice(self) -> float:
        """Size-weighted mid ``(bid * ask_size + ask * bid_size) / (bid_size + ask_size)``.

        In ticks; leans towards the side with less size (the price likely to move next).
        NaN unless both sides exist.
        """
        if self.sides[BOOK_BID].n == 0 or self.sides[BOOK_ASK].n == 0:
            return NAN
        # numerator and denominator exact in 128 bits (|price| < 2**62, sizes < 2**63),
        # then one division: relative error ~2**-52 even when the terms nearly cancel
        return slip_microprice(book_best_price(self, BOOK_BID), book_best_size(self, BOOK_BID),
                               book_best_price(self, BOOK_ASK), book_best_size(self, BOOK_ASK))

    def level_count(self, int side) -> int:
        """Number of (live) levels on ``side``."""
        _check_side(side)
        return self.sides[side].n - self.sides[side].dead

    def top_into(self, int side, out_prices, out_sizes) -> int:
        """Write the best levels of ``side`` best first into caller-owned arrays.

        Parameters
        ----------
        side : int
            ``BID`` (0) or ``ASK`` (1).
        out_prices, out_sizes : numpy.ndarray of int64
            Receive prices (ticks) and sizes (lots); as many levels as the shorter holds.

        Returns
        -------
        int
            Levels written (fewer than the array length when the side is shallower);
            entries past that are left untouched.
        """
        _check_side(side)
        cdef Py_ssize_t np_ = 0, ns = 0, k
        cdef int64_t* pp = _plain_i64(out_prices, &np_)
        cdef int64_t* ps = _plain_i64(out_sizes, &ns)
        cdef int64_t[::1] vp, vs
        if pp == NULL or ps == NULL:            # any other int64 buffer, or an error
            if out_prices is None or out_sizes is None:
                raise TypeError("out_prices and out_sizes must be int64 arrays, not None")
            vp = out_prices
            vs = out_sizes
            np_ = vp.shape[0]
            ns = vs.shape[0]
            pp = &vp[0] if np_ else NULL
            ps = &vs[0] if ns else NULL
        k = min(np_, ns)
        if k == 0:
            return 0
        return _top_into(&self.sides[side], side, pp, ps, k)

    def top_copy(self, int side, Py_ssize_t n) -> tuple:
        """Best ``n`` levels of ``side`` as new arrays ``(prices, sizes)`` (best first).

        Parameters
        ----------
        side : int
            ``BID`` (0) or ``ASK`` (1).
        n : int
            Maximum number of levels, ``>= 0``.

        Returns
        -------
        tuple of numpy.ndarray
            int64 ``prices`` and ``sizes`` of length ``min(n, level_count(side))``.
        """
        _check_side(side)
        if n < 0:
            raise ValueError(f"n must be >= 0, was {n}")
        cdef Py_ssize_t live = self.sides[side].n - self.sides[side].dead
        if n > live:
            n = live
        cdef int64_t[::1] p = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] q = np.empty(n, dtype=np.int64)
        if n:
            _top_into(&self.sides[side], side, &p[0], &q[0], n)
        return np.asarray(p), np.asarray(q)

    def depth_within(self, int side, int64_t distance) -> int:
        """Total size of ``side`` at prices within ``distance`` ticks of the mid.

        Bids with ``price >= mid - distance`` or asks with ``price <= mid + distance``
        (inclusive; the mid may be a half tick).

        Parameters
        ----------
        side : int
            ``BID`` (0) or ``ASK`` (1).
        distance : int
            Ticks from the mid, ``>= 0``.

        Returns
        -------
        int
            Lots (saturating at INT64_MAX); 0 unless both sides have levels.
        """
        cdef int64_t s2
        _check_side(side)
        if distance < 0:
            raise ValueError(f"distance must be >= 0, was {distance}")
        if self.sides[BOOK_BID].n == 0 or self.sides[BOOK_ASK].n == 0:
            return 0
        if distance > SLIP_BOOK_MAX_PRICE + 1:
            distance = SLIP_BOOK_MAX_PRICE + 1
        s2 = book_best_price(self, BOOK_BID) + book_best_price(self, BOOK_ASK)
        if side == BOOK_BID:
            # price >= s2/2 - d  <=>  price >= ceil(s2/2) - d
            return _sum_from_top(&self.sides[side], ((s2 + 1) >> 1) - distance)
        # price <= s2/2 + d  <=>  price <= floor(s2/2) + d  <=>  -price >= -(floor + d)
        return _sum_from_top(&self.sides[side], -((s2 >> 1) + distance))

    def qty_within(self, int side, int64_t limit_price) -> int:
        """Total size of ``side`` at prices at or better than ``limit_price``.

        Bids priced ``>= limit_price`` or asks priced ``<= limit_price``: what a sell
        (resp. buy) limit order at ``limit_price`` could take.

        Parameters
        ----------
        side : int
            ``BID`` (0) or ``ASK`` (1).
        limit_price : int
            Limit in ticks (clamped to ``[-MAX_PRICE, MAX_PRICE]``).

        Returns
        -------
        int
            Lots, saturating at INT64_MAX.
        """
        _check_side(side)
        if limit_price > SLIP_BOOK_MAX_PRICE:
            limit_price = SLIP_BOOK_MAX_PRICE
        elif limit_price < -SLIP_BOOK_MAX_PRICE:
            limit_price = -SLIP_BOOK_MAX_PRICE
        return _sum_from_top(&self.sides[side], -limit_price if side else limit_price)

    def fill_price(self, int side, int64_t qty) -> tuple:
        """VWAP of taking ``qty`` lots from ``side`` walking from the best level.

        A buy walks ``ASK``, a sell walks ``BID``.

        Parameters
        ----------
        side : int
            The side to consume, ``BID`` (0) or ``ASK`` (1).
        qty : int
            Lots wanted, ``>= 0``.

        Returns
        -------
        tuple of (float, int)
            ``(vwap, filled)``: average price in ticks (double) of the ``filled`` lots.
            ``filled < qty`` when the side is too thin (a partial fill over the whole
            side); ``(nan, 0)`` when nothing can be filled (``qty == 0`` or empty side).
        """
        cdef const BookSide* s
        cdef Py_ssize_t i
        cdef int64_t left, take, sz, k0
        cdef double acc = 0.0
        _check_side(side)
        if qty < 0:
            raise ValueError(f"qty must be >= 0, was {qty}")
        s = &self.sides[side]
        if qty == 0 or s.n == 0:
            return NAN, 0
        left = qty
        i = s.n - 1
        k0 = s.keys[i]
        while i >= 0 and left > 0:
            sz = s.sizes[i]
            take = sz if sz < left else left
            acc += <double>(k0 - s.keys[i]) * <double>take
            left -= take
            i -= 1
        # keys are prices (bid) or -prices (ask); k0 - key is the distance from the best
        if side == BOOK_BID:
            return <double>k0 - acc / <double>(qty - left), qty - left
        return <double>(-k0) + acc / <double>(qty - left), qty - left

    def __repr__(self) -> str:
        return (f"OrderBook(price_scale={self.price_scale}, size_scale={self.size_scale}, "
                f"bids={self.bid_levels}, asks={self.ask_levels}, in_sync={self.in_sync}, "
                f"last_update_id={self.last_update_id})")
