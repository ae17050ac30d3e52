# cython: language_level=3
"""L2 order book: the C-level contract cimported by the wire parsers.

A parser holding an ``OrderBook`` calls ``book_apply(book, side, price, size)`` per level
with no Python objects and no GIL, and reads or writes ``book.last_update_id`` and
``book.in_sync`` directly. ``book_apply`` is the one core shared with the Python-visible
``OrderBook.apply`` and ``OrderBook.apply_batch``.

Layout (see ``docs/book.md``): one sorted array of slots per side, the best level in the
LAST slot. Keys are ``price`` on the bid side and ``-price`` on the ask side, so both sides
are ascending and "better" means "larger key". A deleted level becomes a tombstone (size 0,
key kept) so a price that comes back is revived in place without moving memory; an
insert far below the top fills a tombstone within ``BOOK_NEAR_DEAD`` slots instead of
shifting the whole tail; the last slot of a side is never a tombstone, tombstones are
compacted away once they are half of the slots.
"""

from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint64_t
from libc.string cimport memmove

from ext._types cimport lots_t, ticks_t

cdef extern from *:
    """
    #define SLIP_BOOK_MAX_PRICE 4611686018427387903LL
    #define slip_prefetch(p) __builtin_prefetch(p)
    """
    # Prices must satisfy -MAX_PRICE <= price <= MAX_PRICE (2**62 - 1) so that negation,
    # differences and sums of two prices never overflow int64.
    const int64_t SLIP_BOOK_MAX_PRICE
    void slip_prefetch(const void* p) noexcept nogil

cdef enum:
    BOOK_BID = 0
    BOOK_ASK = 1

cdef enum:
    # book_apply results
    BOOK_CHANGED = 1      # level inserted, resized or deleted
    BOOK_NOOP = 0         # delete of an absent level (counted in absent_deletes)
    BOOK_ENOMEM = -1      # growing the side failed; the book is unchanged
    BOOK_EINVAL = -2      # side not 0/1, price out of range or size < 0; unchanged

cdef enum:
    BOOK_MIN_CAPACITY = 16
    BOOK_COMPACT_MIN_DEAD = 32
    # an insert that would shift more slots than this fills a tombstone this near instead
    BOOK_NEAR_DEAD = 16


cdef struct BookSide:
    int64_t* keys         # ascending; price (bid) or -price (ask); best at keys[n - 1]
    int64_t* sizes        # lots; 0 marks a tombstone
    Py_ssize_t n          # slots in use (live + dead)
    Py_ssize_t dead       # tombstones among the n slots
    Py_ssize_t cap        # allocated slots
    uint64_t layout       # bumped whenever slot positions may change (insert, trim, compact)


cdef class OrderBook:
    cdef BookSide sides[2]
    cdef int64_t[:, ::1] _bid_buf     # row 0 keys, row 1 sizes; owns sides[0] memory
    cdef int64_t[:, ::1] _ask_buf     # same for sides[1]
    cdef Py_ssize_t _min_capacity
    cdef readonly int price_scale
    cdef readonly int size_scale
    # Writable from C (sequence logic of the parsers), read-only from Python.
    cdef readonly int64_t last_update_id
    cdef readonly bint in_sync
    cdef readonly int64_t absent_deletes

    cdef int _grow(self, int side) noexcept nogil
    cdef void _compact(self, int side) noexcept nogil
    cdef int _reserve(self, int side, Py_ssize_t cap) except -1
    cdef void _bind(self, int side) noexcept
    cdef _install(self, int side, const int64_t[::1] keys, const int64_t[::1] sizes)


cdef inline Py_ssize_t book_bracket(const int64_t* keys, Py_ssize_t n, int64_t key,
                                    Py_ssize_t* m) noexcept nogil:
    """Start ``lo`` and width ``m[0]`` of the slots to bisect for ``key``.

    The lower bound of ``key`` lies in ``[lo, lo + m[0]]`` and ``keys[lo + m[0]] >= key``;
    ``m[0] == -1`` means ``key`` is above every slot (lower bound ``n``). Keys are distinct
    integers, so a key ``d`` ticks below the best key lies at most ``d`` slots below the
    top: the bracket is ``[n - 1 - d, n - 1]``, short for the frequent updates a few ticks
    from the top of book.
    """
    cdef int64_t d
    if n == 0 or keys[n - 1] < key:
        m[0] = -1
        return n
    d = keys[n - 1] - key           # >= 0, no overflow: |keys| <= 2**62 - 1
    if d >= n - 1:
        m[0] = n - 1
        return 0
    m[0] = <Py_ssize_t>d
    return n - 1 - <Py_ssize_t>d    # keys[n - 1 - d] <= key


cdef inline Py_ssize_t book_lower_bound(const int64_t* keys, Py_ssize_t n,
                                        int64_t key) noexcept nogil:
    """First slot whose key is >= ``key`` (``n`` if none).

    Bisects the ``book_bracket`` branch-free (conditional moves): ~log2(min(d, n))
    dependent loads and no mispredicted branches (a branchy gallop-from-the-top search
    measured ~1.7x slower on the Binance ETHUSDT stream).
    """
    cdef Py_ssize_t m, half
    cdef Py_ssize_t lo = book_bracket(keys, n, key, &m)
    cdef const int64_t* b = keys + lo
    if m < 0:
        return n
    while m > 1:
        half = m >> 1
        slip_prefetch(b + (half >> 1))
        slip_prefetch(b + half + (half >> 1))
        b = b + half if b[half] < key else b
        m -= half
    return (b - keys) + (b[0] < key)


cdef inline Py_ssize_t book_bracket_near(const int64_t* keys, Py_ssize_t n, int64_t key,
                                         Py_ssize_t h, Py_ssize_t* m) noexcept nogil:
    """``book_bracket`` narrowed by an anchor slot ``h`` (e.g. the previous update's).

    Same contract as ``book_bracket`` (start ``lo``; the lower bound of ``key`` lies in
    ``[lo, lo + m[0]]``; ``m[0] == -1``: above every slot). Any ``h`` is safe: outside
    ``[0, n)`` it is ignored, inside it narrows the bracket only through ``keys[h]``
    itself (keys are distinct integers, so ``key`` lies at most ``|keys[h] - key|`` slots
    from ``h``). Levels of one venue message arrive best first, a few ticks apart, so the
    bracket around the previous level is usually much shorter than the one from the top.
    """
    cdef Py_ssize_t lo, hi, lo2, hi2, dd
    cdef int64_t d, kh
    cdef bint up
    if n == 0 or keys[n - 1] < key:
        m[0] = -1
        return n
    d = keys[n - 1] - key
    lo = 0 if d >= n - 1 else n - 1 - <Py_ssize_t>d
    hi = n - 1
    if <size_t>h < <size_t>n:
        # branch-free (conditional moves): the comparisons are unpredictable
        kh = keys[h]
        up = kh >= key
        d = kh - key if up else key - kh
        dd = <Py_ssize_t>d if d < n else n
        lo2 = (h - dd if dd < h else 0) if up else h + 1   # up: [h - d, h]
        hi2 = h if up else h + dd                           # else: [h + 1, h + d]
        lo = lo2 if lo2 > lo else lo
        hi = hi2 if hi2 < hi else hi
    m[0] = hi - lo
    return lo


cdef inline Py_ssize_t book_lower_bound_near(const int64_t* keys, Py_ssize_t n,
                                             int64_t key, Py_ssize_t h) noexcept nogil:
    """``book_lower_bound`` with the bracket of ``book_bracket_near`` (exact for any ``h``)."""
    cdef Py_ssize_t m, half
    cdef const int64_t* b = keys + book_bracket_near(keys, n, key, h, &m)
    if m < 0:
        return n
    while m > 1:
        half = m >> 1
        slip_prefetch(b + (half >> 1))
        slip_prefetch(b + half + (half >> 1))
        b = b + half if b[half] < key else b
        m -= half
    return (b - keys) + (b[0] < key)


cdef inline bint book_fill_dead(BookSide* s, int64_t key, lots_t size,
                                Py_ssize_t i) noexcept nogil:
    """Insert ``key`` (absent; ``i`` its lower bound, ``i + BOOK_NEAR_DEAD < n``) into the
    nearest tombstone within ``BOOK_NEAR_DEAD`` slots above ``i`` or below it.

    Above (slot ``j >= i``): slots ``[i, j)`` move up one and ``key`` takes slot ``i``.
    Below (``j < i``): slots ``(j, i)`` move down one and ``key`` takes slot ``i - 1``.
    Either way the keys stay ascending (the tombstone's key is dropped), ``n`` is unchanged
    and one tombstone fewer remains. Returns False (nothing changed) when no tombstone is
    that near; the caller then shifts the whole tail as usual.
    """
    cdef int64_t* keys = s.keys
    cdef int64_t* sizes = s.sizes
    cdef Py_ssize_t j, lo
    for j in range(i, i + BOOK_NEAR_DEAD):
        if sizes[j] == 0:
            while j > i:
                keys[j] = keys[j - 1]
                sizes[j] = sizes[j - 1]
                j -= 1
            keys[i] = key
            sizes[i] = size
            s.dead -= 1
            s.layout += 1
            return True
    lo = i - BOOK_NEAR_DEAD if i > BOOK_NEAR_DEAD else 0
    j = i - 1
    while j >= lo:
        if sizes[j] == 0:
            while j < i - 1:
                keys[j] = keys[j + 1]
                sizes[j] = sizes[j + 1]
                j += 1
            keys[i - 1] = key
            sizes[i - 1] = size
            s.dead -= 1
            s.layout += 1
            return True
        j -= 1
    return False


cdef inline int book_apply_at(OrderBook book, int side, int64_t key, lots_t size,
                              Py_ssize_t i) noexcept nogil:
    """The mutation of ``book_apply`` once ``i = book_lower_bound(keys, n, key)`` is known.

    ``key`` is ``price`` (bid) or ``-price`` (ask), already validated. Bumps
    ``sides[side].layout`` when slot positions change, so a caller that searched ahead
    (``apply_batch``) knows when to search again.
    """
    cdef BookSide* s = &book.sides[side]
    cdef Py_ssize_t n = s.n
    if i < n and s.keys[i] == key:
        if s.sizes[i] != 0:
            s.sizes[i] = size
            if size == 0:
                s.dead += 1
                if i == n - 1:
                    # keep the best slot live: drop trailing tombstones
                    while n > 0 and s.sizes[n - 1] == 0:
                        n -= 1
                        s.dead -= 1
                    s.n = n
                    s.layout += 1
                if s.dead >= BOOK_COMPACT_MIN_DEAD and 2 * s.dead > s.n:
                    book._compact(side)
            return BOOK_CHANGED
        if size == 0:
            book.absent_deletes += 1
            return BOOK_NOOP
        s.sizes[i] = size           # revive a tombstone in place
        s.dead -= 1
        return BOOK_CHANGED
    if size == 0:
        book.absent_deletes += 1
        return BOOK_NOOP
    if s.dead != 0 and n - i > BOOK_NEAR_DEAD:
        # a long shift: move only the slots up to a nearby tombstone and reuse it
        if book_fill_dead(s, key, size, i):
            return BOOK_CHANGED
    if n == s.cap:
        if book._grow(side) != 0:
            return BOOK_ENOMEM
    if i < n:
        memmove(s.keys + i + 1, s.keys + i, <size_t>(n - i) * sizeof(int64_t))
        memmove(s.sizes + i + 1, s.sizes + i, <size_t>(n - i) * sizeof(int64_t))
    s.keys[i] = key
    s.sizes[i] = size
    s.n = n + 1
    s.layout += 1
    return BOOK_CHANGED


cdef inline int book_apply(OrderBook book, int side, ticks_t price,
                           lots_t size) noexcept nogil:
    """Set the level ``price`` of ``side`` to the absolute ``size``; ``size == 0`` deletes.

    Returns ``BOOK_CHANGED``, ``BOOK_NOOP`` (delete of an absent level, counted in
    ``book.absent_deletes``), ``BOOK_EINVAL`` or ``BOOK_ENOMEM`` (book unchanged on both).
    Does not look at ``in_sync`` or ``last_update_id``: sequencing is the caller's job.
    May briefly take the GIL when a side must grow.
    """
    cdef BookSide* s
    cdef int64_t key
    if (side >> 1) != 0 or size < 0 or price > SLIP_BOOK_MAX_PRICE \
            or price < -SLIP_BOOK_MAX_PRICE:
        return BOOK_EINVAL
    s = &book.sides[side]
    key = -price if side else price
    return book_apply_at(book, side, key, size, book_lower_bound(s.keys, s.n, key))


cdef inline ticks_t book_best_price(OrderBook book, int side) noexcept nogil:
    """Best price of ``side`` (0 bid, 1 ask); ``INT64_MIN`` / ``INT64_MAX`` when empty."""
    cdef BookSide* s = &book.sides[side]
    if s.n == 0:
        return INT64_MIN if side == BOOK_BID else INT64_MAX
    return -s.keys[s.n - 1] if side else s.keys[s.n - 1]


cdef inline lots_t book_best_size(OrderBook book, int side) noexcept nogil:
    """Size at the best price of ``side``; 0 when the side is empty."""
    cdef BookSide* s = &book.sides[side]
    return s.sizes[s.n - 1] if s.n else 0
