# cython: language_level=3
"""Microstructure indicators and samplers over trades and order-book tops.

Indicators (each a C struct with ``noexcept nogil`` cores in ``ext/flow.pxd``, a Python
streaming class and a batch function running the same core with the GIL released, so
streaming and batch results are bitwise equal):

* rolling VWAP of trades over a count or time window (``RollingVWAP``, ``rolling_vwap``,
  ``rolling_vwap_trades`` for ``ext.feed.TRADE_DTYPE`` records);
* trade-flow imbalance: signed taker volume and ``(buy - sell) / (buy + sell)``
  (``TradeFlow``, ``trade_flow``, ``trade_flow_trades``);
* order-flow imbalance of Cont, Kukanov and Stoikov from successive best bid/ask
  observations (``OrderFlowImbalance``, ``order_flow_imbalance``);
* top-N book imbalance, optionally weighted by level rank and by distance from the best
  price, read straight from an ``ext.book.OrderBook`` (``book_imbalance``) or from arrays of
  top levels (``book_imbalance_batch``);
* microprice and mid from a book or arrays (``microprice``, ``microprice_batch``, ``mid_batch``);
* samplers: last value on a time grid (``GridSampler``, ``sample_last``) and bars from
  trades by time, volume or notional (``BarBuilder``, ``bars``, ``bars_trades``;
  ``BAR_DTYPE``).

Windows: a count window ``W`` holds the last ``W`` events; a time window ``W`` (int64 ns)
holds the events with ``t > t_now - W``. Warm-up: results are NaN until a count window
holds ``W`` events, or until ``t_now - t_start >= W`` for a time window (``t_start`` = first
event), i.e. until the whole window lies inside observed history. Timestamps must be
non-decreasing per state (equal timestamps allowed); inputs are validated before any
``nogil`` section (``TypeError`` for a wrong type/dtype, ``ValueError`` for shape,
contiguity, order or range, naming the argument and index). Details: ``docs/flow.md``.
"""

cimport cython

import numpy as np

from libc.math cimport NAN, isfinite
from libc.stdint cimport INT64_MIN, int8_t, int64_t, uint64_t

from ext.book cimport OrderBook, book_apply
from ext.feed cimport TradeRec

from ext.feed import TRADE_DTYPE

__all__ = [
    "BAR_DTYPE", "BarBuilder", "GridSampler", "OrderFlowImbalance", "RollingVWAP", "TradeFlow",
    "bars", "bars_trades", "book_imbalance", "book_imbalance_batch", "microprice",
    "microprice_batch", "mid_batch", "order_flow_imbalance", "replay_signals", "rolling_vwap",
    "rolling_vwap_trades", "sample_last", "trade_flow", "trade_flow_trades",
]

#: One bar (104 bytes); field order matches the C struct ``FlowBar``.
BAR_DTYPE = np.dtype([
    ("start_ns", "<i8"), ("first_ns", "<i8"), ("last_ns", "<i8"), ("count", "<i8"),
    ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
    ("volume", "<f8"), ("notional", "<f8"), ("vwap", "<f8"),
    ("buy_volume", "<f8"), ("sell_volume", "<f8"),
])

_WINDOW_KINDS = {"count": FLOW_COUNT, "time": FLOW_TIME}
_BAR_KINDS = {"time": BAR_TIME, "volume": BAR_VOLUME, "notional": BAR_NOTIONAL}
_CLOCKS = ("exch", "recv")

cdef double[19] _POW10          # 10**k, exact in double for k <= 22


cdef void _init_pow10() noexcept:
    cdef int k
    _POW10[0] = 1.0
    for k in range(1, 19):
        _POW10[k] = _POW10[k - 1] * 10.0


_init_pow10()


# ---------------------------------------------------------------- rare paths of the window

cdef int flow_win_grow(FlowWindow* w) noexcept nogil:
    """Double the ring (unwrapping it); FLOW_ENOMEM on failure (ring unchanged)."""
    cdef Py_ssize_t cap = w.mask + 1
    cdef Py_ssize_t new_cap = FLOW_MIN_RING if cap == 0 else 2 * cap
    cdef FlowEvent* p = <FlowEvent*>realloc(w.ev, <size_t>new_cap * sizeof(FlowEvent))
    if p == NULL:
        w.status = FLOW_ENOMEM
        return FLOW_ENOMEM
    if w.head + w.n > cap:
        # wrapped: slots [0, head + n - cap) follow [head, cap); move them after cap
        memcpy(p + cap, p, <size_t>(w.head + w.n - cap) * sizeof(FlowEvent))
    w.ev = p
    w.mask = new_cap - 1
    return FLOW_OK


cdef void flow_win_recompute(FlowWindow* w) noexcept nogil:
    """Sums (and magnitudes) afresh from the events in the ring."""
    cdef Py_ssize_t i
    cdef const FlowEvent* e
    w.sx = 0.0
    w.cx = 0.0
    w.sy = 0.0
    w.cy = 0.0
    w.mx = 0.0
    w.my = 0.0
    for i in range(w.n):
        e = &w.ev[(w.head + i) & w.mask]
        flow_ksum(&w.sx, &w.cx, e.x)
        flow_ksum(&w.sy, &w.cy, e.y)
        w.mx += fabs(e.x)
        w.my += fabs(e.y)


# ---------------------------------------------------------------- validation

cdef int _window_kind(str kind) except -1:
    if kind not in _WINDOW_KINDS:
        raise ValueError(f"kind must be 'count' or 'time', was {kind!r}")
    return _WINDOW_KINDS[kind]


cdef int _not_before(int64_t t, int64_t last) except -1:
    if t < last:
        raise ValueError(f"t = {t} is before the last time {last}")
    return 0


cdef int _check_window(int64_t window) except -1:
    if window <= 0:
        raise ValueError(f"window must be > 0, was {window}")
    return 0


cdef object _array(object x, object dtype, str name, Py_ssize_t n=-1):
    """``x`` as a 1-D C-contiguous ndarray of ``dtype`` (of length ``n`` if ``n >= 0``),
    else TypeError / ValueError."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {np.dtype(dtype)}, "
                        f"was {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, was {x.dtype}")
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, was {x.ndim}-D")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if n >= 0:
        _same_length(n, x, name)
    return x


cdef int _same_length(Py_ssize_t n, object x, str name) except -1:
    if x.shape[0] != n:
        raise ValueError(f"{name} has length {x.shape[0]}, expected {n}")
    return 0


cdef Py_ssize_t _first_decrease(const int64_t* t, Py_ssize_t n, int64_t after) noexcept nogil:
    """Index of the first ``t[i] < t[i - 1]`` (``t[-1]`` = ``after``), or -1."""
    cdef Py_ssize_t i
    cdef int64_t prev = after
    for i in range(n):
        if t[i] < prev:
            return i
        prev = t[i]
    return -1


cdef int _check_times(const int64_t* t, Py_ssize_t n, int64_t after, str name) except -1:
    cdef Py_ssize_t i
    with nogil:
        i = _first_decrease(t, n, after)
    if i < 0:
        return 0
    if i == 0:
        raise ValueError(f"{name}[0] = {t[0]} is before the state's last time {after}")
    raise ValueError(f"{name} must be non-decreasing: {name}[{i}] = {t[i]} < "
                     f"{name}[{i - 1}] = {t[i - 1]}")


cdef Py_ssize_t _first_bad(const double* x, Py_ssize_t n, bint nonneg) noexcept nogil:
    """Index of the first value that is not finite (or negative if ``nonneg``), or -1."""
    cdef Py_ssize_t i
    cdef const uint64_t* b = <const uint64_t*>x
    cdef uint64_t exp_mask = 0x7FF0000000000000ULL
    cdef uint64_t sign_mask = 0x8000000000000000ULL if nonneg else 0
    cdef uint64_t suspect = 0
    # vectorizable screen on the bits (inf/nan: exponent all ones; sign bit set); the
    # exact loop below runs only if something looks wrong (e.g. -0.0, which is fine)
    for i in range(n):
        suspect |= ((b[i] & exp_mask) == exp_mask) | ((b[i] & sign_mask) != 0)
    if not suspect:
        return -1
    for i in range(n):
        if not isfinite(x[i]) or (nonneg and x[i] < 0.0):
            return i
    return -1


cdef int _check_values(object a, str name, bint nonneg) except -1:
    """``a`` (validated float64 1-D) must be finite (and >= 0 if ``nonneg``)."""
    cdef const double[::1] v = a
    cdef Py_ssize_t i = -1
    if v.shape[0]:
        with nogil:
            i = _first_bad(&v[0], v.shape[0], nonneg)
    if i >= 0:
        need = "finite and >= 0" if nonneg else "finite"
        raise ValueError(f"{name} must be {need}: {name}[{i}] = {v[i]}")
    return 0


cdef int _check_value(double x, str name, bint nonneg) except -1:
    if not isfinite(x) or (nonneg and x < 0.0):
        need = "finite and >= 0" if nonneg else "finite"
        raise ValueError(f"{name} must be {need}, was {x}")
    return 0


cdef int _check_sizes_i64(object a, str name) except -1:
    cdef const int64_t[::1] v = a
    cdef Py_ssize_t i
    for i in range(v.shape[0]):
        if v[i] < 0:
            raise ValueError(f"{name} must be >= 0: {name}[{i}] = {v[i]}")
    return 0


cdef inline const int64_t* _i64(object a):
    cdef const int64_t[::1] v = a
    return &v[0] if v.shape[0] else NULL


cdef inline const double* _f64(object a):
    cdef const double[::1] v = a
    return &v[0] if v.shape[0] else NULL


cdef inline const int8_t* _i8(object a):
    cdef const int8_t[::1] v = a
    return &v[0] if v.shape[0] else NULL


cdef inline int64_t _rec_t(const TradeRec* r, bint recv) noexcept nogil:
    return r.recv_ns if recv else r.exch_ns


cdef object _trades(object trades, str clock, int64_t after):
    """Validate an array of ``TRADE_DTYPE`` records (one instrument, scales 0..18,
    non-decreasing ``exch_ns`` / ``recv_ns`` per ``clock``)."""
    cdef const TradeRec[::1] r
    cdef Py_ssize_t i, n
    if not isinstance(trades, np.ndarray):
        raise TypeError(f"trades must be a numpy.ndarray of ext.feed.TRADE_DTYPE, "
                        f"was {type(trades).__name__}")
    if trades.dtype != TRADE_DTYPE:
        raise TypeError(f"trades must have dtype ext.feed.TRADE_DTYPE, was {trades.dtype}")
    if trades.ndim != 1 or not trades.flags.c_contiguous:
        raise ValueError("trades must be a 1-D C-contiguous array")
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be 'exch' or 'recv', was {clock!r}")
    n = trades.shape[0]
    if n == 0:
        return trades
    r = trades
    for i in range(n):
        if r[i].inst != r[0].inst:
            raise ValueError(f"trades mix instruments: trades[{i}].inst = {r[i].inst}, "
                             f"trades[0].inst = {r[0].inst} (filter by 'inst' first)")
        if r[i].size < 0:
            raise ValueError(f"trades[{i}] has size {r[i].size} < 0")
        if not (0 <= r[i].price_scale <= 18 and 0 <= r[i].size_scale <= 18):
            raise ValueError(f"trades[{i}] has scales ({r[i].price_scale}, "
                             f"{r[i].size_scale}) outside 0..18")
    cdef bint recv = clock == "recv"
    cdef int64_t prev = after
    for i in range(n):
        if _rec_t(&r[i], recv) < prev:
            if i == 0:
                raise ValueError(f"trades[0]['{clock}_ns'] = {_rec_t(&r[0], recv)} is before "
                                 f"the state's last time {after}")
            raise ValueError(f"trades['{clock}_ns'] must be non-decreasing: "
                             f"trades[{i}]['{clock}_ns'] = {_rec_t(&r[i], recv)} < "
                             f"trades[{i - 1}]['{clock}_ns'] = {prev}")
        prev = _rec_t(&r[i], recv)
    return trades


@cython.final
cdef class _TradeView:
    """Raw pointer access to validated trade records (no Python per record)."""
    cdef const TradeRec* p
    cdef Py_ssize_t n
    cdef bint recv
    cdef object keep

    @staticmethod
    cdef _TradeView of(object trades, str clock, int64_t after):
        cdef _TradeView v = _TradeView.__new__(_TradeView)
        cdef const TradeRec[::1] r = _trades(trades, clock, after)
        v.keep = trades
        v.n = r.shape[0]
        v.p = &r[0] if v.n else NULL
        v.recv = clock == "recv"
        return v


cdef inline double _rec_price(const TradeRec* r) noexcept nogil:
    return <double>r.price / _POW10[r.price_scale]


cdef inline double _rec_size(const TradeRec* r) noexcept nogil:
    return <double>r.size / _POW10[r.size_scale]


cdef int _check_alloc(const FlowWindow* w) except -1:
    if w.status != FLOW_OK:
        raise MemoryError("flow window ring could not grow")
    return 0


# ---------------------------------------------------------------- trade records in chunks

# Each core is called from ONE loop per indicator (scalar calls pass n = 1, records are
# converted in chunks of REC_CHUNK): with few call sites the C compiler inlines the core
# into the loop (with many, its unit-growth limit stops inlining: ~1.5x slower).
cdef enum:
    REC_CHUNK = 256


cdef struct RecChunk:
    int64_t t[REC_CHUNK]
    double price[REC_CHUNK]
    double size[REC_CHUNK]
    int8_t side[REC_CHUNK]


cdef inline Py_ssize_t _rec_chunk(const TradeRec* r, Py_ssize_t n, bint recv,
                                  RecChunk* c) noexcept nogil:
    """Convert up to REC_CHUNK records to units; returns how many."""
    cdef Py_ssize_t i
    if n > REC_CHUNK:
        n = REC_CHUNK
    for i in range(n):
        c.t[i] = _rec_t(&r[i], recv)
        c.price[i] = _rec_price(&r[i])
        c.size[i] = _rec_size(&r[i])
        c.side[i] = r[i].side
    return n


# ---------------------------------------------------------------- rolling VWAP

cdef void _vwap_loop(FlowWindow* w, const int64_t* t, const double* px, const double* sz,
                     double* out, Py_ssize_t n) noexcept nogil:
    cdef FlowWindow loc = w[0]      # local state: kept in registers (see flow.pxd)
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = flow_vwap_update(&loc, t[i], px[i], sz[i])
    w[0] = loc


cdef void _vwap_loop_rec(FlowWindow* w, const TradeRec* r, bint recv, double* out,
                         Py_ssize_t n) noexcept nogil:
    cdef RecChunk c
    cdef Py_ssize_t i = 0, m
    while i < n:
        m = _rec_chunk(r + i, n - i, recv, &c)
        _vwap_loop(w, c.t, c.price, c.size, out + i, m)
        i += m


@cython.final
cdef class RollingVWAP:
    """Streaming VWAP of trades over the last ``window`` trades or nanoseconds.

    Parameters
    ----------
    window : int
        Events (``kind="count"``) or nanoseconds (``kind="time"``), ``> 0``.
    kind : {"count", "time"}
        Window kind; a time window keeps trades with ``t > t_now - window``.

    Notes
    -----
    ``update`` returns NaN during warm-up (module docstring) and when the window holds no
    volume. Prices and sizes are float64 in any unit; the VWAP is in the price unit.
    """

    def __cinit__(self):
        flow_win_init(&self.w, FLOW_COUNT, 1)
        self.value = NAN

    def __init__(self, int64_t window, str kind="count"):
        _check_window(window)
        flow_win_free(&self.w)
        flow_win_init(&self.w, _window_kind(kind), window)

    def __dealloc__(self):
        flow_win_free(&self.w)

    @property
    def count(self) -> int:
        """Trades currently in the window."""
        return self.w.n

    def reset(self) -> None:
        """Forget every trade (warm-up starts again)."""
        flow_win_clear(&self.w)
        self.value = NAN

    def update(self, int64_t t, double price, double size) -> float:
        """Add one trade at ``t`` ns and return the VWAP (NaN in warm-up)."""
        _not_before(t, self.w.t_last)
        _check_value(price, "price", False)
        _check_value(size, "size", True)
        _vwap_loop(&self.w, &t, &price, &size, &self.value, 1)
        _check_alloc(&self.w)
        return self.value

    def advance(self, int64_t t) -> float:
        """Time ``t`` has come without a trade: evict old trades, return the VWAP."""
        _not_before(t, self.w.t_last)
        flow_win_evict(&self.w, t)
        self.value = flow_vwap_value(&self.w)
        return self.value

    def update_batch(self, t, price, size):
        """``update`` for each trade of the arrays (int64 ns, float64, float64); returns
        the VWAP after each as a new float64 array."""
        cdef Py_ssize_t n = _array(t, np.int64, "t").shape[0]
        _array(price, np.float64, "price", n)
        _array(size, np.float64, "size", n)
        _check_values(price, "price", False)
        _check_values(size, "size", True)
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        _check_times(_i64(t), n, self.w.t_last, "t")
        cdef double[::1] o = out
        cdef const int64_t* pt = _i64(t)
        cdef const double* pp = _f64(price)
        cdef const double* ps = _f64(size)
        with nogil:
            _vwap_loop(&self.w, pt, pp, ps, &o[0], n)
        self.value = o[n - 1]
        _check_alloc(&self.w)
        return out

    def update_trades(self, trades, str clock="exch"):
        """``update`` for each ``TRADE_DTYPE`` record (price and size converted with the
        record's own scales; time ``exch_ns`` or ``recv_ns``); returns the VWAPs."""
        cdef _TradeView v = _TradeView.of(trades, clock, self.w.t_last)
        out = np.empty(v.n, dtype=np.float64)
        if v.n == 0:
            return out
        cdef double[::1] o = out
        with nogil:
            _vwap_loop_rec(&self.w, v.p, v.recv, &o[0], v.n)
        self.value = o[v.n - 1]
        _check_alloc(&self.w)
        return out


def rolling_vwap(t, price, size, int64_t window, str kind="count"):
    """Rolling VWAP after each trade.

    Parameters
    ----------
    t : numpy.ndarray of int64
        Trade times in ns, non-decreasing.
    price, size : numpy.ndarray of float64
        Same length as ``t``.
    window : int
        Trades (``kind="count"``) or ns (``kind="time"``), ``> 0``.
    kind : {"count", "time"}

    Returns
    -------
    numpy.ndarray of float64
        ``sum(price * size) / sum(size)`` over the window ending at each trade; NaN during
        warm-up or when the window's volume is 0.
    """
    return RollingVWAP(window, kind).update_batch(t, price, size)


def rolling_vwap_trades(trades, int64_t window, str kind="count", str clock="exch"):
    """``rolling_vwap`` over ``ext.feed.TRADE_DTYPE`` records of one instrument.

    Prices and sizes are converted with each record's ``price_scale`` / ``size_scale``
    (``price / 10**price_scale``), so the VWAP is in price units; ``clock`` picks
    ``exch_ns`` or ``recv_ns`` as the time.
    """
    return RollingVWAP(window, kind).update_trades(trades, clock)


# ---------------------------------------------------------------- trade flow

cdef void _tfi_loop(FlowWindow* w, const int64_t* t, const double* sz, const int8_t* side,
                    double* signed, double* imb, Py_ssize_t n) noexcept nogil:
    cdef FlowWindow loc = w[0]
    cdef Py_ssize_t i
    for i in range(n):
        signed[i] = flow_tfi_update(&loc, t[i], sz[i], side[i], &imb[i])
    w[0] = loc


cdef void _tfi_loop_rec(FlowWindow* w, const TradeRec* r, bint recv, double* signed,
                        double* imb, Py_ssize_t n) noexcept nogil:
    cdef RecChunk c
    cdef Py_ssize_t i = 0, m
    while i < n:
        m = _rec_chunk(r + i, n - i, recv, &c)
        _tfi_loop(w, c.t, c.size, c.side, signed + i, imb + i, m)
        i += m


@cython.final
cdef class TradeFlow:
    """Streaming trade-flow imbalance over a count or time window.

    ``signed_volume`` = buy-taker volume - sell-taker volume; ``imbalance`` =
    ``(buy - sell) / (buy + sell)`` in [-1, 1]. A trade of side 0 (unknown aggressor)
    enters the window (it counts for a count window) but in neither volume.

    Parameters
    ----------
    window : int
        Trades or ns, ``> 0``.
    kind : {"count", "time"}
    """

    def __cinit__(self):
        flow_win_init(&self.w, FLOW_COUNT, 1)
        self.signed_volume = NAN
        self.imbalance = NAN

    def __init__(self, int64_t window, str kind="count"):
        _check_window(window)
        flow_win_free(&self.w)
        flow_win_init(&self.w, _window_kind(kind), window)

    def __dealloc__(self):
        flow_win_free(&self.w)

    @property
    def count(self) -> int:
        """Trades currently in the window."""
        return self.w.n

    @property
    def buy_volume(self) -> float:
        """Buy-taker volume in the window (no warm-up)."""
        return flow_win_x(&self.w)

    @property
    def sell_volume(self) -> float:
        """Sell-taker volume in the window (no warm-up)."""
        return flow_win_y(&self.w)

    def reset(self) -> None:
        """Forget every trade (warm-up starts again)."""
        flow_win_clear(&self.w)
        self.signed_volume = NAN
        self.imbalance = NAN

    def update(self, int64_t t, double size, int side) -> float:
        """Add a trade (``side`` +1 taker buy, -1 taker sell, 0 unknown); returns the
        signed volume (NaN in warm-up); ``imbalance`` is updated too."""
        _not_before(t, self.w.t_last)
        _check_value(size, "size", True)
        cdef int8_t sd = 1 if side > 0 else (-1 if side < 0 else 0)
        _tfi_loop(&self.w, &t, &size, &sd, &self.signed_volume, &self.imbalance, 1)
        _check_alloc(&self.w)
        return self.signed_volume

    def advance(self, int64_t t) -> float:
        """Time ``t`` has come without a trade: evict old trades, return the signed volume."""
        _not_before(t, self.w.t_last)
        flow_win_evict(&self.w, t)
        self.signed_volume = flow_tfi_signed(&self.w)
        self.imbalance = flow_tfi_imbalance(&self.w)
        return self.signed_volume

    def update_batch(self, t, size, side):
        """``update`` per trade (int64 ns, float64 sizes, int8 sides); returns
        ``(signed_volume, imbalance)`` float64 arrays."""
        cdef Py_ssize_t n = _array(t, np.int64, "t").shape[0]
        _array(size, np.float64, "size", n)
        _array(side, np.int8, "side", n)
        _check_values(size, "size", True)
        sv = np.empty(n, dtype=np.float64)
        im = np.empty(n, dtype=np.float64)
        if n == 0:
            return sv, im
        _check_times(_i64(t), n, self.w.t_last, "t")
        cdef double[::1] o1 = sv
        cdef double[::1] o2 = im
        cdef const int64_t* pt = _i64(t)
        cdef const double* ps = _f64(size)
        cdef const int8_t* pd = _i8(side)
        with nogil:
            _tfi_loop(&self.w, pt, ps, pd, &o1[0], &o2[0], n)
        self.signed_volume = o1[n - 1]
        self.imbalance = o2[n - 1]
        _check_alloc(&self.w)
        return sv, im

    def update_trades(self, trades, str clock="exch"):
        """``update`` per ``TRADE_DTYPE`` record (size in units via ``size_scale``, side
        from the record); returns ``(signed_volume, imbalance)``."""
        cdef _TradeView v = _TradeView.of(trades, clock, self.w.t_last)
        sv = np.empty(v.n, dtype=np.float64)
        im = np.empty(v.n, dtype=np.float64)
        if v.n == 0:
            return sv, im
        cdef double[::1] o1 = sv
        cdef double[::1] o2 = im
        with nogil:
            _tfi_loop_rec(&self.w, v.p, v.recv, &o1[0], &o2[0], v.n)
        self.signed_volume = o1[v.n - 1]
        self.imbalance = o2[v.n - 1]
        _check_alloc(&self.w)
        return sv, im


def trade_flow(t, size, side, int64_t window, str kind="count"):
    """Signed taker volume and normalized imbalance after each trade.

    Parameters
    ----------
    t : numpy.ndarray of int64
        Trade times in ns, non-decreasing.
    size : numpy.ndarray of float64
    side : numpy.ndarray of int8
        +1 taker buy, -1 taker sell, 0 unknown (in the window, in neither volume).
    window : int
        Trades or ns, ``> 0``.
    kind : {"count", "time"}

    Returns
    -------
    tuple of numpy.ndarray
        ``(signed_volume, imbalance)`` float64; NaN during warm-up, ``imbalance`` also NaN
        when the window has no buy or sell volume.
    """
    return TradeFlow(window, kind).update_batch(t, size, side)


def trade_flow_trades(trades, int64_t window, str kind="count", str clock="exch"):
    """``trade_flow`` over ``ext.feed.TRADE_DTYPE`` records of one instrument."""
    return TradeFlow(window, kind).update_trades(trades, clock)


# ---------------------------------------------------------------- order-flow imbalance

cdef void _ofi_loop(FlowOfi* s, const int64_t* t, const int64_t* bp, const int64_t* bq,
                    const int64_t* ap, const int64_t* aq, double* out,
                    Py_ssize_t n) noexcept nogil:
    cdef FlowOfi loc = s[0]
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = flow_ofi_update(&loc, t[i], bp[i], bq[i], ap[i], aq[i])
    s[0] = loc


@cython.final
cdef class OrderFlowImbalance:
    """Streaming order-flow imbalance (Cont, Kukanov, Stoikov 2014) over a window.

    Each best bid/ask observation ``n`` after the first contributes
    ``e_n = 1{Pb_n >= Pb_n-1} qb_n - 1{Pb_n <= Pb_n-1} qb_n-1
    - 1{Pa_n <= Pa_n-1} qa_n + 1{Pa_n >= Pa_n-1} qa_n-1`` (lots); the value is the sum of
    ``e_n`` over the last ``window`` observations / ns. An empty side is
    ``(INT64_MIN, 0)`` for bids and ``(INT64_MAX, 0)`` for asks, as ``OrderBook`` reports.

    Parameters
    ----------
    window : int
        Observations (``e_n`` terms) or ns, ``> 0``.
    kind : {"count", "time"}

    Notes
    -----
    Warm-up: NaN until ``window`` terms exist (count) or until ``window`` ns after the
    first observation (time). Every observation counts, also an unchanged top (``e_n = 0``).
    """

    def __cinit__(self):
        flow_ofi_init(&self.s, FLOW_COUNT, 1)
        self.value = NAN

    def __init__(self, int64_t window, str kind="count"):
        _check_window(window)
        flow_win_free(&self.s.w)
        flow_ofi_init(&self.s, _window_kind(kind), window)

    def __dealloc__(self):
        flow_win_free(&self.s.w)

    @property
    def count(self) -> int:
        """``e_n`` terms currently in the window."""
        return self.s.w.n

    def reset(self) -> None:
        """Forget every observation."""
        flow_win_clear(&self.s.w)
        self.s.has_prev = False
        self.value = NAN

    def update(self, int64_t t, int64_t bid_price, int64_t bid_size, int64_t ask_price,
               int64_t ask_size) -> float:
        """One best bid/ask observation at ``t`` ns; returns the windowed OFI (lots)."""
        _not_before(t, self.s.w.t_last)
        if bid_size < 0 or ask_size < 0:
            raise ValueError(f"sizes must be >= 0, were {bid_size} and {ask_size}")
        self.value = flow_ofi_update(&self.s, t, bid_price, bid_size, ask_price, ask_size)
        _check_alloc(&self.s.w)
        return self.value

    def update_book(self, OrderBook book not None, int64_t t) -> float:
        """``update`` with ``book``'s current best bid and ask."""
        _not_before(t, self.s.w.t_last)
        self.value = flow_ofi_update_book(&self.s, book, t)
        _check_alloc(&self.s.w)
        return self.value

    def advance(self, int64_t t) -> float:
        """Time ``t`` has come without an observation: evict, return the OFI."""
        _not_before(t, self.s.w.t_last)
        flow_win_evict(&self.s.w, t)
        self.value = flow_ofi_value(&self.s)
        return self.value

    def update_batch(self, t, bid_price, bid_size, ask_price, ask_size):
        """``update`` per observation (all int64 arrays of one length); returns the OFI
        after each as float64."""
        cdef Py_ssize_t n = _array(t, np.int64, "t").shape[0]
        _tops(bid_price, bid_size, ask_price, ask_size, n)
        _check_sizes_i64(bid_size, "bid_size")
        _check_sizes_i64(ask_size, "ask_size")
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        _check_times(_i64(t), n, self.s.w.t_last, "t")
        cdef double[::1] o = out
        cdef const int64_t* pt = _i64(t)
        cdef const int64_t* bp = _i64(bid_price)
        cdef const int64_t* bq = _i64(bid_size)
        cdef const int64_t* ap = _i64(ask_price)
        cdef const int64_t* aq = _i64(ask_size)
        with nogil:
            _ofi_loop(&self.s, pt, bp, bq, ap, aq, &o[0], n)
        self.value = o[n - 1]
        _check_alloc(&self.s.w)
        return out


def order_flow_imbalance(t, bid_price, bid_size, ask_price, ask_size, int64_t window,
                         str kind="count"):
    """Windowed order-flow imbalance after each best bid/ask observation.

    Parameters
    ----------
    t : numpy.ndarray of int64
        Observation times in ns, non-decreasing.
    bid_price, bid_size, ask_price, ask_size : numpy.ndarray of int64
        Best levels in ticks and lots (an empty side: size 0 with price ``INT64_MIN`` for
        bids / ``INT64_MAX`` for asks).
    window : int
        ``e_n`` terms or ns, ``> 0``.
    kind : {"count", "time"}

    Returns
    -------
    numpy.ndarray of float64
        Sum of ``e_n`` over the window (exact while below 2**53 lots); NaN for the first
        observation and during warm-up.
    """
    return OrderFlowImbalance(window, kind).update_batch(t, bid_price, bid_size,
                                                         ask_price, ask_size)


# ---------------------------------------------------------------- book imbalance, microprice

cdef object _weights_array(object weights, Py_ssize_t depth):
    if weights is None:
        return None
    _array(weights, np.float64, "weights")
    if weights.shape[0] < depth:
        raise ValueError(f"weights has length {weights.shape[0]}, needs >= depth = {depth}")
    return weights


cdef int _check_depth_tau(Py_ssize_t depth, double tau) except -1:
    if depth <= 0:
        raise ValueError(f"depth must be > 0, was {depth}")
    if not tau >= 0.0:
        raise ValueError(f"tau must be >= 0, was {tau}")
    return 0


def book_imbalance(OrderBook book not None, Py_ssize_t depth=10, weights=None,
                   double tau=0.0) -> float:
    """Top-``depth`` size imbalance ``(bid - ask) / (bid + ask)`` of ``book``.

    Parameters
    ----------
    book : ext.book.OrderBook
    depth : int, default 10
        Live levels per side (fewer if the side is shallower), ``> 0``.
    weights : numpy.ndarray of float64, optional
        Weight of the level of rank ``k`` (0 = best), length ``>= depth``.
    tau : float, default 0
        If ``> 0``, a level ``d`` ticks from its side's best price also weighs
        ``tau / (tau + d)``.

    Returns
    -------
    float
        In [-1, 1]; +1 / -1 when only one side has levels; NaN for an empty book.
    """
    _check_depth_tau(depth, tau)
    w = _weights_array(weights, depth)
    if w is None and tau == 0.0:
        return flow_book_imbalance(book, depth)
    return flow_book_imbalance_weighted(book, depth, _f64(w) if w is not None else NULL, tau)


cdef object _levels_2d(object x, str name, object shape):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of int64, was {type(x).__name__}")
    if x.dtype != np.int64:
        raise TypeError(f"{name} must have dtype int64, was {x.dtype}")
    if x.ndim != 2 or not x.flags.c_contiguous:
        raise ValueError(f"{name} must be a 2-D C-contiguous array")
    if shape is not None and x.shape != shape:
        raise ValueError(f"{name} has shape {x.shape}, expected {shape}")
    return x


def book_imbalance_batch(bid_price, bid_size, ask_price, ask_size, Py_ssize_t depth=10,
                         weights=None, double tau=0.0):
    """``book_imbalance`` for many snapshots of top levels.

    Parameters
    ----------
    bid_price, bid_size, ask_price, ask_size : numpy.ndarray of int64, shape (m, k)
        Row ``i`` holds snapshot ``i``'s levels best first (``OrderBook.top_copy`` order);
        a size of 0 is no level (skipped).
    depth, weights, tau
        As in ``book_imbalance``.

    Returns
    -------
    numpy.ndarray of float64, shape (m,)
    """
    _check_depth_tau(depth, tau)
    _levels_2d(bid_size, "bid_size", None)
    shape = bid_size.shape
    _levels_2d(ask_size, "ask_size", shape)
    _levels_2d(bid_price, "bid_price", shape)
    _levels_2d(ask_price, "ask_price", shape)
    w = _weights_array(weights, depth)
    cdef Py_ssize_t m = shape[0], k = shape[1], i
    cdef bint plain = w is None and tau == 0.0
    cdef const double* pw = _f64(w) if w is not None else NULL
    out = np.empty(m, dtype=np.float64)
    if m == 0:
        return out
    cdef double[::1] o = out
    cdef const int64_t[:, ::1] bp = bid_price
    cdef const int64_t[:, ::1] bq = bid_size
    cdef const int64_t[:, ::1] ap = ask_price
    cdef const int64_t[:, ::1] aq = ask_size
    if k == 0:
        out.fill(NAN)
        return out
    with nogil:
        for i in range(m):
            if plain:
                o[i] = flow_imbalance_ratio(
                    <double>flow_levels_sum(&bq[i, 0], 1, k, depth),
                    <double>flow_levels_sum(&aq[i, 0], 1, k, depth))
            else:
                o[i] = flow_imbalance_ratio(
                    flow_levels_weighted(&bp[i, 0], &bq[i, 0], 1, k, 1, depth, pw, tau),
                    flow_levels_weighted(&ap[i, 0], &aq[i, 0], 1, k, 1, depth, pw, tau))
    return out


def microprice(OrderBook book not None) -> float:
    """Size-weighted mid of ``book`` in ticks; equals ``book.microprice()`` bit for bit."""
    return flow_book_microprice(book)


cdef Py_ssize_t _tops(object bid_price, object bid_size, object ask_price, object ask_size,
                      Py_ssize_t n=-1) except -1:
    """Validate best bid/ask int64 arrays of one length (``n`` if given); returns it."""
    n = _array(bid_price, np.int64, "bid_price", n).shape[0]
    _array(bid_size, np.int64, "bid_size", n)
    _array(ask_price, np.int64, "ask_price", n)
    _array(ask_size, np.int64, "ask_size", n)
    return n


cdef object _top_prices(object bid_price, object bid_size, object ask_price, object ask_size,
                        bint micro):
    cdef Py_ssize_t n = _tops(bid_price, bid_size, ask_price, ask_size), i
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    cdef double[::1] o = out
    cdef const int64_t* bp = _i64(bid_price)
    cdef const int64_t* bq = _i64(bid_size)
    cdef const int64_t* ap = _i64(ask_price)
    cdef const int64_t* aq = _i64(ask_size)
    with nogil:
        for i in range(n):
            o[i] = flow_microprice(bp[i], bq[i], ap[i], aq[i]) if micro else \
                flow_mid(bp[i], bq[i], ap[i], aq[i])
    return out


def microprice_batch(bid_price, bid_size, ask_price, ask_size):
    """Microprice ``(bp * aq + ap * bq) / (bq + aq)`` per row (int64 arrays, ticks/lots).

    Returns float64 ticks; NaN where a size is 0 (empty side).
    """
    return _top_prices(bid_price, bid_size, ask_price, ask_size, True)


def mid_batch(bid_price, bid_size, ask_price, ask_size):
    """Mid ``(bp + ap) / 2`` per row in ticks; NaN where a size is 0 (empty side)."""
    return _top_prices(bid_price, bid_size, ask_price, ask_size, False)


# ---------------------------------------------------------------- grid sampler

cdef int _check_step(int64_t interval, str name) except -1:
    if interval <= 0:
        raise ValueError(f"{name} must be > 0, was {interval}")
    return 0


cdef int _set_time(int64_t* last, int64_t t) except -1:
    _not_before(t, last[0])
    last[0] = t
    return 0


@cython.final
cdef class GridSampler:
    """Last value at or before each grid time ``origin + k * interval`` (forward fill).

    The grid starts at the first grid time at or after the first event (no NaN points
    before data). A grid time ``g`` is emitted once it is final: when an event (or
    ``advance``) at a time ``> g`` arrives, since more events at time ``g`` could still
    come. Emitted points wait in a buffer of ``capacity`` points until ``drain``;
    points that do not fit are counted in ``overflow`` and lost.

    Parameters
    ----------
    interval : int
        Grid step in ns, ``> 0``.
    origin : int, default 0
        Grid alignment in ns (0: multiples of ``interval`` since the Unix epoch).
    capacity : int, default 65536
    """

    def __init__(self, int64_t interval, int64_t origin=0, Py_ssize_t capacity=65536):
        _check_step(interval, "interval")
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, was {capacity}")
        flow_sampler_init(&self.s, interval, origin)
        self._t_arr = np.empty(capacity, dtype=np.int64)
        self._v_arr = np.empty(capacity, dtype=np.float64)
        self._t = self._t_arr
        self._v = self._v_arr
        self._n = 0
        self._t_last = INT64_MIN
        self.overflow = 0

    @property
    def pending(self) -> int:
        """Points emitted and not drained yet."""
        return self._n

    @property
    def last(self) -> float:
        """The last value seen (NaN before the first event)."""
        return self.s.last


    def update(self, int64_t t, double value) -> int:
        """Event ``value`` at ``t`` ns; returns the number of grid points it completed."""
        _set_time(&self._t_last, t)
        cdef Py_ssize_t w = flow_sampler_feed(&self.s, &t, &value, 1, &self._t[0] + self._n,
                                              &self._v[0] + self._n,
                                              self._t.shape[0] - self._n, &self.overflow)
        self._n += w
        return w

    def update_book(self, OrderBook book not None, int64_t t, str what="microprice") -> int:
        """``update`` with the book's ``"microprice"`` or ``"mid"`` (ticks; NaN if a side
        is empty)."""
        cdef double v
        if what == "microprice":
            v = flow_book_microprice(book)
        elif what == "mid":
            v = flow_book_mid(book)
        else:
            raise ValueError(f"what must be 'microprice' or 'mid', was {what!r}")
        return self.update(t, v)

    def update_batch(self, t, values) -> int:
        """``update`` per event (int64 ns, float64 values); returns points completed."""
        cdef Py_ssize_t n = _array(t, np.int64, "t").shape[0], w = 0
        _array(values, np.float64, "values", n)
        if n == 0:
            return 0
        _check_times(_i64(t), n, self._t_last, "t")
        cdef const int64_t* pt = _i64(t)
        cdef const double* pv = _f64(values)
        cdef int64_t* ot = &self._t[0]
        cdef double* ov = &self._v[0]
        cdef Py_ssize_t cap = self._t.shape[0]
        with nogil:
            w = flow_sampler_feed(&self.s, pt, pv, n, ot + self._n, ov + self._n,
                                  cap - self._n, &self.overflow)
        self._n += w
        self._t_last = pt[n - 1]
        return w

    def advance(self, int64_t t) -> int:
        """No event before ``t`` will come: emit grid times ``< t``; returns how many."""
        _set_time(&self._t_last, t)
        cdef Py_ssize_t w = flow_sampler_close(&self.s, t, &self._t[0] + self._n,
                                               &self._v[0] + self._n, self._t.shape[0] - self._n,
                                               &self.overflow)
        self._n += w
        return w

    def drain(self):
        """Copy out the emitted points and empty the buffer: ``(times, values)``."""
        t = self._t_arr[:self._n].copy()
        v = self._v_arr[:self._n].copy()
        self._n = 0
        return t, v


def sample_last(t, values, int64_t interval, int64_t origin=0):
    """Sample an event series on a regular time grid (last value at or before each time).

    Parameters
    ----------
    t : numpy.ndarray of int64
        Event times in ns, non-decreasing.
    values : numpy.ndarray of float64
        E.g. ``microprice_batch(...)`` or ``mid_batch(...)``.
    interval : int
        Grid step in ns, ``> 0``.
    origin : int, default 0
        Grid times are ``origin + k * interval``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(grid_times, sampled)``: every grid time from the first at or after ``t[0]``
        to the last at or before ``t[-1]``; the value of the last event with time ``<=``
        the grid time (forward fill). Equals a ``GridSampler`` fed the same events and then
        ``advance(t[-1] + 1)``.
    """
    _check_step(interval, "interval")
    cdef Py_ssize_t n = _array(t, np.int64, "t").shape[0]
    _array(values, np.float64, "values", n)
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    _check_times(_i64(t), n, INT64_MIN, "t")
    cdef const int64_t* pt = _i64(t)
    cdef int64_t g0 = origin + (flow_floor_div(pt[0] - origin - 1, interval) + 1) * interval
    cdef Py_ssize_t m = 0
    if g0 <= pt[n - 1]:
        m = <Py_ssize_t>((pt[n - 1] - g0) // interval + 1)
    out_t = np.empty(m, dtype=np.int64)
    out_v = np.empty(m, dtype=np.float64)
    if m == 0:
        return out_t, out_v
    cdef int64_t[::1] ot = out_t
    cdef double[::1] ov = out_v
    cdef const double* pv = _f64(values)
    cdef FlowSampler s
    cdef Py_ssize_t w = 0
    cdef int64_t dropped = 0
    flow_sampler_init(&s, interval, origin)
    with nogil:
        w = flow_sampler_feed(&s, pt, pv, n, &ot[0], &ov[0], m, &dropped)
        w += flow_sampler_close(&s, pt[n - 1] + 1, &ot[0] + w, &ov[0] + w, m - w, &dropped)
    assert w == m and dropped == 0
    return out_t, out_v


# ---------------------------------------------------------------- bars

cdef Py_ssize_t _bars_loop(FlowBars* b, const int64_t* t, const double* px, const double* sz,
                           const int8_t* side, Py_ssize_t n, FlowBar* out, Py_ssize_t cap,
                           Py_ssize_t* nb, int64_t* overflow) noexcept nogil:
    """Push ``n`` trades (``side`` may be NULL); completed bars go to ``out[nb[0]]``.

    When the buffer is full: with ``overflow`` NULL, stop before the next trade and return
    how many trades were consumed; otherwise count the bars that do not fit in
    ``overflow[0]`` (and drop them). The one call site of ``flow_bars_push``.
    """
    cdef FlowBar tmp
    cdef FlowBars loc = b[0]        # local state: not aliased by the stores to ``out``
    cdef Py_ssize_t i
    for i in range(n):
        if nb[0] >= cap and overflow == NULL:
            b[0] = loc
            return i
        if flow_bars_push(&loc, t[i], px[i], sz[i], side[i] if side != NULL else 0, &tmp):
            if nb[0] < cap:
                out[nb[0]] = tmp
                nb[0] += 1
            else:
                overflow[0] += 1
    b[0] = loc
    return n


cdef Py_ssize_t _bars_loop_rec(FlowBars* b, const TradeRec* r, bint recv, Py_ssize_t n,
                               FlowBar* out, Py_ssize_t cap, Py_ssize_t* nb,
                               int64_t* overflow) noexcept nogil:
    """``_bars_loop`` over trade records (converted in chunks)."""
    cdef RecChunk c
    cdef Py_ssize_t i = 0, m, k
    while i < n:
        m = _rec_chunk(r + i, n - i, recv, &c)
        k = _bars_loop(b, c.t, c.price, c.size, c.side, m, out, cap, nb, overflow)
        i += k
        if k < m:
            break
    return i


cdef int _bar_args(str kind, double step, int* code, int64_t* interval,
                   double* threshold) except -1:
    if kind not in _BAR_KINDS:
        raise ValueError(f"kind must be 'time', 'volume' or 'notional', was {kind!r}")
    code[0] = _BAR_KINDS[kind]
    if not step > 0.0:
        raise ValueError(f"step must be > 0, was {step}")
    if code[0] == BAR_TIME:
        if step != <double>(<int64_t>step) or step > 9.2e18:
            raise ValueError(f"step of time bars must be a whole number of ns, was {step}")
        interval[0] = <int64_t>step
        threshold[0] = 0.0
    else:
        interval[0] = 1
        threshold[0] = step
    return 0


cdef int _store(BarBuilder bb, int done):
    """Keep the bar in ``bb._tmp`` (if ``done``) in the buffer, or count it as overflow."""
    if done:
        if bb._n < bb._out.shape[0]:
            bb._out[bb._n] = bb._tmp
            bb._n += 1
        else:
            bb.overflow += 1
    return done


@cython.final
cdef class BarBuilder:
    """Streaming bars (``BAR_DTYPE``) from trades.

    Parameters
    ----------
    kind : {"time", "volume", "notional"}
    step : float
        Time bars: bar length in ns (whole); volume bars: volume per bar; notional bars:
        ``price * size`` per bar.
    origin : int, default 0
        Time bars cover ``[origin + k * step, origin + (k + 1) * step)``.
    capacity : int, default 4096
        Completed bars held until ``drain``; bars that do not fit are counted in
        ``overflow`` and lost.

    Notes
    -----
    A time bar completes when a trade (or ``advance``) reaches its end; buckets without a
    trade make no bar. A volume / notional bar completes at the first trade that brings its
    cumulative volume / notional to ``>= step``; that trade belongs wholly to the bar (no
    splitting), the next trade opens a new bar. ``flush`` emits the open bar (incomplete).
    """

    def __init__(self, str kind, double step, int64_t origin=0, Py_ssize_t capacity=4096):
        cdef int code
        cdef int64_t interval
        cdef double threshold
        _bar_args(kind, step, &code, &interval, &threshold)
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, was {capacity}")
        flow_bars_init(&self.b, code, interval, threshold, origin)
        self._arr = np.empty(capacity, dtype=BAR_DTYPE)
        self._out = self._arr
        self._n = 0
        self._t_last = INT64_MIN
        self.overflow = 0

    @property
    def pending(self) -> int:
        """Completed bars not drained yet."""
        return self._n

    @property
    def is_open(self) -> bool:
        """A bar has trades and is not complete yet."""
        return self.b.is_open


    def update(self, int64_t t, double price, double size, int side=0) -> int:
        """Add a trade (``side`` +1 taker buy, -1 taker sell, 0 unknown); returns bars
        completed (0 or 1)."""
        _check_value(price, "price", False)
        _check_value(size, "size", True)
        _set_time(&self._t_last, t)
        cdef int8_t sd = 1 if side > 0 else (-1 if side < 0 else 0)
        cdef Py_ssize_t before = self._n
        cdef int64_t lost = self.overflow
        _bars_loop(&self.b, &t, &price, &size, &sd, 1, &self._out[0], self._out.shape[0],
                   &self._n, &self.overflow)
        return (self._n - before) + (self.overflow - lost)

    def update_batch(self, t, price, size, side=None) -> int:
        """``update`` per trade (int64 ns, float64, float64, optional int8 sides)."""
        cdef Py_ssize_t n = _array(t, np.int64, "t").shape[0]
        _array(price, np.float64, "price", n)
        _array(size, np.float64, "size", n)
        if side is not None:
            _array(side, np.int8, "side", n)
        _check_values(price, "price", False)
        _check_values(size, "size", True)
        if n == 0:
            return 0
        _check_times(_i64(t), n, self._t_last, "t")
        cdef const int64_t* pt = _i64(t)
        cdef const double* pp = _f64(price)
        cdef const double* ps = _f64(size)
        cdef const int8_t* pd = _i8(side) if side is not None else NULL
        cdef Py_ssize_t before = self._n
        cdef int64_t lost = self.overflow
        cdef FlowBar* out = &self._out[0]
        cdef Py_ssize_t cap = self._out.shape[0]
        with nogil:
            _bars_loop(&self.b, pt, pp, ps, pd, n, out, cap, &self._n, &self.overflow)
        self._t_last = pt[n - 1]
        return (self._n - before) + (self.overflow - lost)

    def update_trades(self, trades, str clock="exch") -> int:
        """``update`` per ``TRADE_DTYPE`` record (one instrument)."""
        cdef _TradeView v = _TradeView.of(trades, clock, self._t_last)
        cdef const TradeRec* r = v.p
        if v.n == 0:
            return 0
        cdef Py_ssize_t before = self._n
        cdef int64_t lost = self.overflow
        cdef FlowBar* out = &self._out[0]
        cdef Py_ssize_t cap = self._out.shape[0]
        with nogil:
            _bars_loop_rec(&self.b, r, v.recv, v.n, out, cap, &self._n, &self.overflow)
        self._t_last = _rec_t(&r[v.n - 1], v.recv)
        return (self._n - before) + (self.overflow - lost)

    def advance(self, int64_t t) -> int:
        """Time ``t`` has come: a time bar ending at or before ``t`` completes."""
        _set_time(&self._t_last, t)
        return _store(self, flow_bars_advance(&self.b, t, &self._tmp))

    def flush(self) -> int:
        """Emit the open (incomplete) bar, if any."""
        return _store(self, flow_bars_emit(&self.b, &self._tmp))

    def drain(self):
        """Copy out the completed bars (``BAR_DTYPE``) and empty the buffer."""
        out = self._arr[:self._n].copy()
        self._n = 0
        return out


cdef object _bars_run(FlowBars* b, Py_ssize_t n, const int64_t* t, const double* px,
                      const double* sz, const int8_t* side, const TradeRec* rec, bint recv,
                      bint include_partial):
    """Bars of ``n`` trades (arrays, or records if ``rec``); grows the output as needed."""
    cdef Py_ssize_t cap = 1024 if n > 1024 else n + 1
    cdef Py_ssize_t nb = 0, i = 0
    arr = np.empty(cap, dtype=BAR_DTYPE)
    cdef FlowBar[::1] out = arr
    cdef FlowBar* o
    while True:
        o = &out[0]
        with nogil:
            if rec != NULL:
                i += _bars_loop_rec(b, rec + i, recv, n - i, o, cap, &nb, NULL)
            else:
                i += _bars_loop(b, t + i, px + i, sz + i, side + i if side != NULL else NULL,
                                n - i, o, cap, &nb, NULL)
        if i >= n and nb < cap:
            break
        cap *= 2
        arr = np.resize(arr, cap)
        out = arr
    if include_partial:
        nb += flow_bars_emit(b, &out[nb])
    return arr[:nb].copy()


def bars(t, price, size, str kind, double step, side=None, int64_t origin=0,
         bint include_partial=True):
    """Bars (``BAR_DTYPE``) from trades: time, volume or notional bars.

    Parameters
    ----------
    t : numpy.ndarray of int64
        Trade times in ns, non-decreasing.
    price, size : numpy.ndarray of float64
    kind : {"time", "volume", "notional"}
    step : float
        Bar length in ns (time bars, whole number), or volume / notional per bar.
    side : numpy.ndarray of int8, optional
        +1 taker buy, -1 taker sell (fills ``buy_volume`` / ``sell_volume``).
    origin : int, default 0
        Time-bar alignment: buckets ``[origin + k * step, origin + (k + 1) * step)``.
    include_partial : bool, default True
        Also return the last, incomplete bar (as ``BarBuilder.flush``).

    Returns
    -------
    numpy.ndarray of BAR_DTYPE
        One record per non-empty bar: ``start_ns`` (bucket start for time bars, first trade
        time otherwise), ``first_ns``, ``last_ns``, ``count``, ``open``, ``high``, ``low``,
        ``close``, ``volume``, ``notional``, ``vwap`` (= notional / volume), ``buy_volume``,
        ``sell_volume``. Rules as in ``BarBuilder``.
    """
    cdef int code
    cdef int64_t interval
    cdef double threshold
    cdef FlowBars b
    _bar_args(kind, step, &code, &interval, &threshold)
    cdef Py_ssize_t n = _array(t, np.int64, "t").shape[0]
    _array(price, np.float64, "price", n)
    _array(size, np.float64, "size", n)
    if side is not None:
        _array(side, np.int8, "side", n)
    _check_values(price, "price", False)
    _check_values(size, "size", True)
    if n:
        _check_times(_i64(t), n, INT64_MIN, "t")
    flow_bars_init(&b, code, interval, threshold, origin)
    return _bars_run(&b, n, _i64(t), _f64(price), _f64(size),
                     _i8(side) if side is not None else NULL, NULL, False, include_partial)


def bars_trades(trades, str kind, double step, str clock="exch", int64_t origin=0,
                bint include_partial=True):
    """``bars`` over ``ext.feed.TRADE_DTYPE`` records of one instrument (prices and sizes
    in units via each record's scales, sides from the records, time per ``clock``)."""
    cdef int code
    cdef int64_t interval
    cdef double threshold
    cdef FlowBars b
    _bar_args(kind, step, &code, &interval, &threshold)
    cdef _TradeView v = _TradeView.of(trades, clock, INT64_MIN)
    flow_bars_init(&b, code, interval, threshold, origin)
    return _bars_run(&b, v.n, NULL, NULL, NULL, NULL, v.p, v.recv, include_partial)


# ---------------------------------------------------------------- replay with signals

def replay_signals(OrderBook book not None, t, side, price, size,
                   OrderFlowImbalance ofi not None, Py_ssize_t depth=10):
    """Apply level updates to ``book`` and compute signals after each, all in C.

    The kernel a backtest runs per book update: ``book_apply`` (``ext.book``), then
    microprice, top-``depth`` imbalance and ``ofi.update_book``, without a Python call.

    Parameters
    ----------
    book : ext.book.OrderBook
        Updated in place.
    t : numpy.ndarray of int64
        Update times in ns, non-decreasing (and not before ``ofi``'s last time).
    side, price, size : numpy.ndarray
        int8 sides (0 bid, 1 ask), int64 prices (ticks), int64 sizes (lots, 0 deletes).
    ofi : OrderFlowImbalance
        Updated with the best bid/ask after every update.
    depth : int, default 10

    Returns
    -------
    tuple of numpy.ndarray
        float64 ``(microprice, imbalance, ofi)`` after each update.

    Raises
    ------
    ValueError
        Bad arrays, or an update the book rejects (side, price range, negative size);
        updates before it stay applied (as in a loop of ``OrderBook.apply``).
    """
    cdef Py_ssize_t n = _array(t, np.int64, "t").shape[0], i, bad = -1
    _array(side, np.int8, "side", n)
    _array(price, np.int64, "price", n)
    _array(size, np.int64, "size", n)
    if depth <= 0:
        raise ValueError(f"depth must be > 0, was {depth}")
    mp = np.empty(n, dtype=np.float64)
    im = np.empty(n, dtype=np.float64)
    of = np.empty(n, dtype=np.float64)
    if n == 0:
        return mp, im, of
    _check_times(_i64(t), n, ofi.s.w.t_last, "t")
    cdef double[::1] o1 = mp
    cdef double[::1] o2 = im
    cdef double[::1] o3 = of
    cdef const int64_t* pt = _i64(t)
    cdef const int8_t* ps = _i8(side)
    cdef const int64_t* pp = _i64(price)
    cdef const int64_t* pq = _i64(size)
    cdef int rc
    cdef FlowOfi loc = ofi.s        # local state: kept in registers (see flow.pxd)
    with nogil:
        for i in range(n):
            rc = book_apply(book, ps[i], pp[i], pq[i])
            if rc < 0:
                bad = i
                break
            o1[i] = flow_book_microprice(book)
            o2[i] = flow_book_imbalance(book, depth)
            o3[i] = flow_ofi_update_book(&loc, book, pt[i])
    ofi.s = loc
    _check_alloc(&ofi.s.w)
    cdef Py_ssize_t done = bad if bad >= 0 else n
    if done:
        ofi.value = o3[done - 1]
    if bad >= 0:
        raise ValueError(f"update {bad} rejected by the book (side {ps[bad]}, price "
                         f"{pp[bad]}, size {pq[bad]})")
    return mp, im, of
