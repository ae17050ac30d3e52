# cython: language_level=3
"""Price-series indicators: the C-level contract (see ``docs/indicators.md``).

Every indicator is a plain C struct plus ``cdef inline ... noexcept nogil`` functions, so
another ext module (a strategy kernel, the backtester) can run it per event with no Python
call and no GIL. ``ext/indicators.pyx`` wraps each struct in a streaming class and runs the
same ``*_update`` function per point in its batch kernels (on a local copy of the struct, so
the C compiler keeps the state in registers), hence streaming and batch results are bitwise
equal.

Usage from another module::

    cdef IndEma e
    ind_ema_init(&e, 20)
    for i in range(n):
        y = ind_ema_update(&e, price[i])      # NaN until warm

Structs holding a ring (``IndLag``, ``IndSma``, ``IndBoll``, ``IndTimeWin`` and the
structs built on them) allocate in ``*_init`` (return ``IND_ENOMEM`` on failure) and must
be released with the matching ``*_free``; the others need no freeing. A struct may be
copied by value only while the copy is the single one in use (the ring is shared).

Preconditions the C functions do not check (the Python entry points do): periods in range
(see each ``*_init``), ``fast < slow`` for MACD, timestamps non-decreasing per state, windows
and ``tau`` > 0, prices > 0 for realized volatility.

Numerics: rolling sums are kept relative to a shift (the window mean at the last exact
recompute) and recomputed exactly from the ring every ``ind_recompute_every(period)``
updates, so rounding drift is bounded however long a stream runs; a window whose values are
all equal reports exactly that value as its mean and exactly 0 as its deviation.
"""

from libc.math cimport NAN, exp, fabs, log, log1p, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define IND_LIKELY(x) __builtin_expect(!!(x), 1)
    #define IND_UNLIKELY(x) __builtin_expect(!!(x), 0)
    #else
    #define IND_LIKELY(x) (x)
    #define IND_UNLIKELY(x) (x)
    #endif
    """
    bint IND_LIKELY(bint) noexcept nogil        # branch hints for the C compiler
    bint IND_UNLIKELY(bint) noexcept nogil


cdef inline Py_ssize_t ind_run_next(Py_ssize_t run, double x, double last) noexcept nogil:
    """Length of the trailing run of equal values after ``x`` (branchless)."""
    return (run & -<Py_ssize_t>(x == last)) + 1


cdef enum:
    IND_OK = 0
    IND_ENOMEM = -1

cdef enum:
    IND_RECOMPUTE_MIN = 4096    # exact recompute of rolling sums at least this far apart
    IND_RECOMPUTE_MUL = 64      # ... and at least this many windows apart
    IND_MIN_RING = 16


# Bollinger: recompute exactly once the rounding bound accumulated in the sum of squared
# deviations (``mass``) exceeds 2**12 times that sum, i.e. when the variance has become
# small compared with what passed through it (relative error stays <~ 1e-12).
cdef inline double ind_m2_guard() noexcept nogil:
    return 2.44140625e-04


# Rolling sums: recompute exactly once what passed through the sum since the last
# recompute (``mass``) exceeds 2**10 times the window's sum of |x| (e.g. a large value
# left the window), so the mean's error stays <~ 1e-12 of the window's mean |x|.
cdef inline double ind_sum_guard() noexcept nogil:
    return 9.765625e-04


cdef inline Py_ssize_t ind_recompute_every(Py_ssize_t period) noexcept nogil:
    """Updates between two exact recomputes of a count window of ``period`` values."""
    if period > IND_RECOMPUTE_MIN // IND_RECOMPUTE_MUL:
        return period * IND_RECOMPUTE_MUL
    return IND_RECOMPUTE_MIN


# ---------------------------------------------------------------- EMA (count)

cdef struct IndEma:
    double k                # 2 / (period + 1)
    double a                # 1 - k
    double y                # EMA once warm; running sum of the seed values before
    Py_ssize_t period
    Py_ssize_t n            # values seen, saturates at period


cdef inline void ind_ema_init(IndEma* s, Py_ssize_t period) noexcept nogil:
    """``period >= 1``; smoothing ``k = 2 / (period + 1)``."""
    s.k = 2.0 / (period + 1.0)
    s.a = 1.0 - s.k
    s.y = 0.0
    s.period = period
    s.n = 0


cdef inline bint ind_ema_ready(const IndEma* s) noexcept nogil:
    return s.n >= s.period


cdef inline double ind_ema_value(const IndEma* s) noexcept nogil:
    return s.y if s.n >= s.period else NAN


cdef inline double ind_ema_update(IndEma* s, double x) noexcept nogil:
    """Add ``x``; returns the EMA (NaN for the first ``period - 1`` values).

    TA-Lib seeding: the value at index ``period - 1`` is the mean of the first ``period``
    values, then ``y = (1 - k) * y + k * x``.
    """
    if s.n >= s.period:
        s.y = s.a * s.y + s.k * x
        return s.y
    s.y += x
    s.n += 1
    if s.n == s.period:
        s.y = s.y / s.period
        return s.y
    return NAN


# ---------------------------------------------------------------- lag (ROC / MOM)

cdef struct IndLag:
    double* ring            # last ``period`` values, owned
    Py_ssize_t period
    Py_ssize_t pos          # slot of the oldest value (next to overwrite)
    Py_ssize_t n            # values seen, saturates at period


cdef inline int ind_lag_init(IndLag* s, Py_ssize_t period) noexcept nogil:
    """``period >= 1``; allocates the ring (``IND_ENOMEM`` on failure)."""
    s.ring = <double*>malloc(period * sizeof(double))
    s.period = period
    s.pos = 0
    s.n = 0
    return IND_OK if s.ring != NULL else IND_ENOMEM


cdef inline void ind_lag_free(IndLag* s) noexcept nogil:
    free(s.ring)
    s.ring = NULL


cdef inline void ind_lag_clear(IndLag* s) noexcept nogil:
    s.pos = 0
    s.n = 0


cdef inline double ind_lag_push(IndLag* s, double x) noexcept nogil:
    """Add ``x``; returns the value ``period`` steps back (NaN while there is none)."""
    # Fields are read before and written after the ring store (which may alias them for
    # the C compiler), so a caller's loop keeps them in registers.
    cdef double* ring = s.ring
    cdef Py_ssize_t pos = s.pos
    cdef Py_ssize_t n = s.n
    cdef Py_ssize_t p = s.period
    cdef double old = NAN
    if n >= p:
        old = ring[pos]
    else:
        n += 1
    ring[pos] = x
    pos += 1
    if pos == p:
        pos = 0
    s.pos = pos
    s.n = n
    return old


cdef inline double ind_mom_of(double x, double old) noexcept nogil:
    return x - old


cdef inline double ind_roc_of(double x, double old) noexcept nogil:
    """TA-Lib ROC: ``(x / old - 1) * 100``, 0 when ``old == 0`` (NaN in, NaN out).

    Branch-free (the quotient is computed, then discarded when ``old == 0``) so the batch
    kernel vectorizes; the FP exception flags are not part of the contract.
    """
    cdef double r = (x / old - 1.0) * 100.0
    return r if old != 0.0 else 0.0


cdef inline double ind_mom_update(IndLag* s, double x) noexcept nogil:
    """``x - x[-period]``; NaN for the first ``period`` values."""
    return ind_mom_of(x, ind_lag_push(s, x))


cdef inline double ind_roc_update(IndLag* s, double x) noexcept nogil:
    """``(x / x[-period] - 1) * 100``; NaN for the first ``period`` values."""
    return ind_roc_of(x, ind_lag_push(s, x))


# ---------------------------------------------------------------- RSI (Wilder)

cdef struct IndRsi:
    double a                # (period - 1) / period
    double sg               # period * average gain
    double sl               # period * average loss
    double prev             # previous input
    double value
    Py_ssize_t period
    Py_ssize_t n            # values seen, saturates at period + 1


cdef inline void ind_rsi_init(IndRsi* s, Py_ssize_t period) noexcept nogil:
    """``period >= 2``."""
    s.a = (period - 1.0) / period
    s.sg = 0.0
    s.sl = 0.0
    s.prev = 0.0
    s.value = NAN
    s.period = period
    s.n = 0


cdef inline double ind_rsi_of(double sg, double sl) noexcept nogil:
    cdef double t = sg + sl
    if t != 0.0:
        return 100.0 * (sg / t)
    return 0.0


cdef inline double ind_rsi_update(IndRsi* s, double x) noexcept nogil:
    """Add ``x``; returns the RSI in [0, 100] (NaN for the first ``period`` values).

    Wilder smoothing as TA-Lib: the first value (index ``period``) uses the plain averages
    of the first ``period`` gains and losses, then ``avg = (avg * (period - 1) + g) / period``;
    RSI = ``100 * avg_gain / (avg_gain + avg_loss)``, 0 when both are 0.
    """
    cdef double d = x - s.prev
    cdef double g = d if d > 0.0 else 0.0
    cdef double l = g - d
    s.prev = x
    if s.n > s.period:
        s.sg = s.sg * s.a + g
        s.sl = s.sl * s.a + l
        s.value = ind_rsi_of(s.sg, s.sl)
        return s.value
    s.n += 1
    if s.n == 1:
        return NAN
    s.sg += g
    s.sl += l
    if s.n > s.period:
        s.value = ind_rsi_of(s.sg, s.sl)
        return s.value
    return NAN


# ---------------------------------------------------------------- MACD

cdef struct IndMacd:
    IndEma fast
    IndEma slow
    IndEma sig
    Py_ssize_t skip         # slow - fast: values the fast EMA does not see (TA-Lib)
    Py_ssize_t n            # values seen, saturates at skip + 1
    double macd
    double signal
    double hist
    bint ready


cdef inline void ind_macd_init(IndMacd* s, Py_ssize_t fast, Py_ssize_t slow,
                               Py_ssize_t signal) noexcept nogil:
    """``2 <= fast < slow``, ``signal >= 1``."""
    ind_ema_init(&s.fast, fast)
    ind_ema_init(&s.slow, slow)
    ind_ema_init(&s.sig, signal)
    s.skip = slow - fast
    s.n = 0
    s.macd = NAN
    s.signal = NAN
    s.hist = NAN
    s.ready = False


cdef inline double ind_macd_update(IndMacd* s, double x) noexcept nogil:
    """Add ``x``; returns the MACD line (NaN for the first ``slow + signal - 2`` values).

    As TA-Lib: both EMAs are seeded at index ``slow - 1`` with the mean of their last
    ``period`` values (so the fast EMA ignores the first ``slow - fast`` inputs); the
    signal EMA is seeded with the mean of the first ``signal`` MACD values.
    """
    cdef double f, sl, line, sg
    if s.ready:
        sl = s.slow.a * s.slow.y + s.slow.k * x
        f = s.fast.a * s.fast.y + s.fast.k * x
        s.slow.y = sl
        s.fast.y = f
        line = f - sl
        sg = s.sig.a * s.sig.y + s.sig.k * line
        s.sig.y = sg
        s.macd = line
        s.signal = sg
        s.hist = line - sg
        return line
    sl = ind_ema_update(&s.slow, x)
    if s.n < s.skip:
        s.n += 1
        return NAN
    f = ind_ema_update(&s.fast, x)
    if not ind_ema_ready(&s.slow):
        return NAN
    line = f - sl
    sg = ind_ema_update(&s.sig, line)
    if not ind_ema_ready(&s.sig):
        return NAN
    s.ready = True
    s.macd = line
    s.signal = sg
    s.hist = line - sg
    return line


# ---------------------------------------------------------------- rolling mean / deviation

cdef struct IndSma:
    double* ring            # last ``period`` values, owned
    double inv_p            # 1 / period
    double shift            # sums are of (x - shift)
    double sum              # sum of (x - shift) over the window
    double last             # newest value
    Py_ssize_t period
    Py_ssize_t pos          # slot of the oldest value
    Py_ssize_t n            # values in the ring (saturates at period)
    Py_ssize_t run          # trailing run of equal values
    Py_ssize_t since        # updates since the last exact recompute
    Py_ssize_t every        # ind_recompute_every(period)
    double mass             # sum of |sum| over the updates since (rounding bound / eps)
    double asum             # sum of |x| over the window (scale; approximate)


cdef struct IndBoll:
    IndSma w                # mean part (the SMA's arithmetic; its own exact recomputes)
    double m2               # sum of squared deviations from the window mean
    double mass             # bound of the rounding accumulated in m2 (in units of eps)
    double up               # band width multipliers (TA-Lib nbdevup / nbdevdn)
    double dn


cdef inline void ind_sma_exact(IndSma* s, const double* a, Py_ssize_t na, const double* b,
                               Py_ssize_t nb) noexcept nogil:
    """Exact sums of a full window given as ``a[:na]`` then ``b[:nb]`` (chronological,
    ``na + nb == period``): shift = naive mean, sum = sum of (x - shift), asum = sum of
    |x|. The ring (streaming) and the input array (batch) give the same bits."""
    cdef Py_ssize_t i
    cdef double acc = 0.0, sh
    for i in range(na):
        acc += a[i]
    for i in range(nb):
        acc += b[i]
    sh = acc * s.inv_p
    acc = 0.0
    for i in range(na):
        acc += a[i] - sh
    for i in range(nb):
        acc += b[i] - sh
    s.shift = sh
    s.sum = acc
    acc = 0.0
    for i in range(na):
        acc += fabs(a[i])
    for i in range(nb):
        acc += fabs(b[i])
    s.asum = acc
    s.since = 0
    s.mass = 0.0


cdef inline void ind_sma_recompute(IndSma* s) noexcept nogil:
    """``ind_sma_exact`` over the ring (full), oldest value first."""
    ind_sma_exact(s, s.ring + s.pos, s.period - s.pos, s.ring, s.pos)


cdef inline double ind_boll_m2_exact(const IndSma* w, const double* a, Py_ssize_t na,
                                     const double* b, Py_ssize_t nb) noexcept nogil:
    """Two-pass sum of squared deviations of the window ``a[:na]``, ``b[:nb]`` from its
    mean, after ``ind_sma_exact`` of the same window."""
    cdef Py_ssize_t i
    cdef double acc = 0.0, d, m = w.sum * w.inv_p, sh = w.shift
    for i in range(na):
        d = (a[i] - sh) - m
        acc += d * d
    for i in range(nb):
        d = (b[i] - sh) - m
        acc += d * d
    return acc


cdef inline void ind_boll_exact(IndBoll* s, const double* a, Py_ssize_t na, const double* b,
                                Py_ssize_t nb) noexcept nogil:
    """``ind_sma_exact`` plus the exact sum of squared deviations (two-pass)."""
    ind_sma_exact(&s.w, a, na, b, nb)
    s.m2 = ind_boll_m2_exact(&s.w, a, na, b, nb)
    s.mass = s.m2


cdef inline void ind_boll_recompute(IndBoll* s) noexcept nogil:
    """``ind_boll_exact`` over the ring (full), oldest value first."""
    ind_boll_exact(s, s.w.ring + s.w.pos, s.w.period - s.w.pos, s.w.ring, s.w.pos)


cdef inline int ind_sma_init(IndSma* s, Py_ssize_t period) noexcept nogil:
    """``period >= 1``; allocates the ring (``IND_ENOMEM`` on failure)."""
    s.ring = <double*>malloc(period * sizeof(double))
    s.inv_p = 1.0 / period
    s.shift = 0.0
    s.sum = 0.0
    s.last = NAN
    s.period = period
    s.pos = 0
    s.n = 0
    s.run = 0
    s.since = 0
    s.every = ind_recompute_every(period)
    s.mass = 0.0
    s.asum = 0.0
    return IND_OK if s.ring != NULL else IND_ENOMEM


cdef inline void ind_sma_free(IndSma* s) noexcept nogil:
    free(s.ring)
    s.ring = NULL


cdef inline void ind_sma_clear(IndSma* s) noexcept nogil:
    s.shift = 0.0
    s.sum = 0.0
    s.mass = 0.0
    s.asum = 0.0
    s.last = NAN
    s.pos = 0
    s.n = 0
    s.run = 0
    s.since = 0


cdef inline bint ind_sma_ready(const IndSma* s) noexcept nogil:
    return s.n >= s.period


cdef inline double ind_sma_mean(const IndSma* s) noexcept nogil:
    """Window mean (``NaN`` before the window is full)."""
    if IND_UNLIKELY(s.n < s.period):
        return NAN
    if IND_UNLIKELY(s.run >= s.period):
        return s.last
    return s.shift + s.sum * s.inv_p


cdef inline double ind_sma_mean_of(const IndSma* s, double sum, double last,
                                   Py_ssize_t run) noexcept nogil:
    """Mean of a full window from its (register) sums."""
    if IND_UNLIKELY(run >= s.period):
        return last
    return s.shift + sum * s.inv_p


cdef inline double ind_sma_push(IndSma* s, double x, Py_ssize_t* run) noexcept nogil:
    """Ring step of a full window shared by SMA and Bollinger: stores ``x`` and returns the
    value it replaced; ``run`` receives the new run of equal values. Writes ``pos``,
    ``last``, ``run``, ``since`` (read before the ring store, which may alias them)."""
    cdef double* ring = s.ring
    cdef Py_ssize_t pos = s.pos
    cdef Py_ssize_t p = s.period
    cdef Py_ssize_t r = ind_run_next(s.run, x, s.last)
    cdef Py_ssize_t since = s.since + 1
    cdef double old = ring[pos]
    ring[pos] = x
    pos += 1
    if pos == p:
        pos = 0
    s.pos = pos
    s.run = r
    s.last = x
    s.since = since
    run[0] = r
    return old


cdef inline bint ind_sma_fill(IndSma* s, double x) noexcept nogil:
    """Warm-up step: store ``x``; True once the window is full (sums then exact)."""
    s.ring[s.pos] = x
    s.pos += 1
    if s.pos == s.period:
        s.pos = 0
    s.run = ind_run_next(s.run, x, s.last)
    s.last = x
    s.n += 1
    return s.n == s.period


cdef inline void ind_sma_add(double* sm, double* mass, double* asum, double x,
                             double old) noexcept nogil:
    """Arithmetic core of a full-window SMA step (``x`` in, ``old`` out) on the register
    sums: the streaming update and the batch kernel both run it."""
    cdef double t = sm[0] + (x - old)
    sm[0] = t
    mass[0] += fabs(t)      # bounds the rounding of this step, in units of eps
    asum[0] += fabs(x) - fabs(old)


cdef inline bint ind_sma_due(const IndSma* s, double mass, double asum,
                             Py_ssize_t since) noexcept nogil:
    """Time for an exact recompute (rounding bound or update count)."""
    return mass * ind_sum_guard() > asum or since >= s.every


cdef inline double ind_sma_update(IndSma* s, double x) noexcept nogil:
    """Add ``x``; returns the mean of the last ``period`` values (NaN for the first
    ``period - 1``)."""
    cdef double old, sm, mass, asum
    cdef Py_ssize_t run
    if IND_LIKELY(s.n >= s.period):
        sm = s.sum
        mass = s.mass
        asum = s.asum
        old = ind_sma_push(s, x, &run)
        ind_sma_add(&sm, &mass, &asum, x, old)
        s.sum = sm
        s.mass = mass
        s.asum = asum
        if IND_UNLIKELY(ind_sma_due(s, mass, asum, s.since)):
            ind_sma_recompute(s)
            return ind_sma_mean(s)
        return ind_sma_mean_of(s, sm, x, run)
    if ind_sma_fill(s, x):
        ind_sma_recompute(s)
        return ind_sma_mean(s)
    return NAN


cdef inline int ind_boll_init(IndBoll* s, Py_ssize_t period, double up,
                              double dn) noexcept nogil:
    """``period >= 1``; allocates the ring (``IND_ENOMEM`` on failure)."""
    s.m2 = 0.0
    s.mass = 0.0
    s.up = up
    s.dn = dn
    return ind_sma_init(&s.w, period)


cdef inline void ind_boll_free(IndBoll* s) noexcept nogil:
    ind_sma_free(&s.w)


cdef inline void ind_boll_clear(IndBoll* s) noexcept nogil:
    ind_sma_clear(&s.w)
    s.m2 = 0.0
    s.mass = 0.0


cdef inline double ind_boll_var(const IndBoll* s) noexcept nogil:
    """Population variance of the window (NaN before it is full, exactly 0 if constant)."""
    if IND_UNLIKELY(s.w.n < s.w.period):
        return NAN
    if IND_UNLIKELY(s.w.run >= s.w.period or s.m2 <= 0.0):
        return 0.0
    return s.m2 * s.w.inv_p


cdef inline double ind_boll_std(const IndBoll* s) noexcept nogil:
    return sqrt(ind_boll_var(s))


cdef inline double ind_boll_upper_of(const IndBoll* s, double mean, double sd) noexcept nogil:
    """``mean + nbdev_up * sd`` (TA-Lib ``BBANDS`` upper band)."""
    return mean + s.up * sd


cdef inline double ind_boll_lower_of(const IndBoll* s, double mean, double sd) noexcept nogil:
    """``mean - nbdev_dn * sd`` (TA-Lib ``BBANDS`` lower band)."""
    return mean - s.dn * sd


cdef inline double ind_boll_z_of(double x, double mean, double sd) noexcept nogil:
    """``(x - mean) / sd``, 0 for a constant window (``sd == 0``), NaN in warm-up."""
    if sd > 0.0:
        return (x - mean) / sd
    return 0.0 if sd == 0.0 else NAN


cdef inline double ind_boll_z(const IndBoll* s) noexcept nogil:
    return ind_boll_z_of(s.w.last, ind_sma_mean(&s.w), ind_boll_std(s))


cdef inline double ind_boll_var_of(const IndBoll* s, double m2,
                                   Py_ssize_t run) noexcept nogil:
    """Variance of a full window from its (register) sums."""
    if IND_UNLIKELY(run >= s.w.period or m2 <= 0.0):
        return 0.0
    return m2 * s.w.inv_p


cdef inline double ind_boll_add(double* sm, double* m2, double* mass, double x, double old,
                                double sh, double ip, double m_old) noexcept nogil:
    """Arithmetic core of a full-window Bollinger step (``x`` in, ``old`` out) on the
    register sums (shift ``sh``, ``1 / period`` ``ip``, ``m_old == sm * ip``): windowed
    Welford update of the sum of squared deviations and its rounding bound. Returns the
    new ``sm * ip`` (the mean is ``sh`` plus it). Streaming and batch both run it."""
    cdef double d = x - old
    cdef double t = sm[0] + d
    cdef double m_new = t * ip
    cdef double ea = x - sh
    cdef double eb = old - sh
    sm[0] = t
    m2[0] += d * ((ea - m_new) + (eb - m_old))
    mass[0] += fabs(d) * (fabs(ea) + fabs(eb))
    return m_new


cdef inline bint ind_boll_due(double m2, double mass) noexcept nogil:
    """The sum of squared deviations has become small against its rounding bound."""
    return m2 < mass * ind_m2_guard()


cdef inline void ind_boll_step(IndBoll* s, double x) noexcept nogil:
    """Add ``x`` (read the result with ``ind_boll_var`` / ``ind_sma_mean``)."""
    cdef double old, sm, m2, mass
    cdef Py_ssize_t run
    if IND_LIKELY(s.w.n >= s.w.period):
        sm = s.w.sum
        m2 = s.m2
        mass = s.mass
        old = ind_sma_push(&s.w, x, &run)
        ind_boll_add(&sm, &m2, &mass, x, old, s.w.shift, s.w.inv_p, sm * s.w.inv_p)
        s.w.sum = sm
        s.m2 = m2
        s.mass = mass
        if IND_UNLIKELY(ind_boll_due(m2, mass) or s.w.since >= s.w.every):
            ind_boll_recompute(s)
        return
    if ind_sma_fill(&s.w, x):
        ind_boll_recompute(s)


cdef inline double ind_boll_update(IndBoll* s, double x) noexcept nogil:
    """Add ``x``; returns the z-score ``(x - mean) / stdev`` of the last ``period`` values
    (population stdev; NaN for the first ``period - 1`` values).

    ``ind_boll_step`` then ``ind_boll_z``; past the warm-up, without a recompute, the
    z-score is taken from the register sums (the same operations: ``mean = shift + sum /
    period``, ``stdev = sqrt(m2 / period)``; a constant window gives 0)."""
    cdef double old, sm, m2, mass, mean, sd
    cdef Py_ssize_t run
    if IND_LIKELY(s.w.n >= s.w.period):
        sm = s.w.sum
        m2 = s.m2
        mass = s.mass
        old = ind_sma_push(&s.w, x, &run)
        mean = s.w.shift + ind_boll_add(&sm, &m2, &mass, x, old, s.w.shift, s.w.inv_p,
                                        sm * s.w.inv_p)
        s.w.sum = sm
        s.m2 = m2
        s.mass = mass
        if IND_UNLIKELY(ind_boll_due(m2, mass) or s.w.since >= s.w.every):
            ind_boll_recompute(s)
            return ind_boll_z(s)
        if IND_UNLIKELY(run >= s.w.period):
            return 0.0
        sd = sqrt(ind_boll_var_of(s, m2, run))
        return ind_boll_z_of(x, mean, sd)
    ind_boll_step(s, x)
    return ind_boll_z(s)


# ---------------------------------------------------------------- realized volatility (EWMA)

cdef inline double ind_log_return(double x, double prev, double inv_prev) noexcept nogil:
    """``log(x / prev)`` for prices ``x, prev > 0`` (``inv_prev = 1 / prev``, computed when
    ``prev`` arrived, so no division waits here), as ``log1p(d)`` with ``d = (x - prev) *
    inv_prev``: ``x - prev`` is exact when the prices are within a factor 2, so the return
    keeps full relative precision (~2 ulp; a difference of two logs of ~10 loses
    ~|log x| / |r| ulps to cancellation: up to ~5e-9 relative for a one-tick move). For
    ``|d| < 2**-7`` (moves under ~0.8 %) the series ``d - d**2/2 + ... + d**9/9`` is summed
    inline (Estrin; the next term is below 2**-63 of ``d``); larger moves within a factor 2
    call libm's ``log1p(d)``, and beyond it ``log(x * inv_prev)`` (``d`` is then no longer
    exact, while the ratio is within an ulp)."""
    cdef double d = (x - prev) * inv_prev
    cdef double d2, d4
    if IND_LIKELY(fabs(d) < 0.0078125):
        d2 = d * d
        d4 = d2 * d2
        return d + d2 * (
            ((-0.5 + d * 0.3333333333333333) + d2 * (-0.25 + d * 0.2))
            + d4 * ((-0.16666666666666666 + d * 0.14285714285714285)
                    + d2 * (-0.125 + d * 0.1111111111111111)))
    if -0.5 <= d <= 1.0:
        return log1p(d)
    return log(x * inv_prev)


cdef struct IndLogRet:
    double prev             # the previous price
    double inv_prev         # 1 / prev


cdef inline void ind_logret_start(IndLogRet* s, double x) noexcept nogil:
    """Take ``x`` as the previous price."""
    s.prev = x
    s.inv_prev = 1.0 / x


cdef inline double ind_logret_next(IndLogRet* s, double x) noexcept nogil:
    """``log(x / previous price)``, then ``x`` becomes the previous price."""
    cdef double r = ind_log_return(x, s.prev, s.inv_prev)
    ind_logret_start(s, x)
    return r


cdef struct IndRvol:
    double lam              # decay per return
    double one_m_lam        # 1 - lam
    double var              # EWMA of squared log returns
    IndLogRet p             # the previous price
    Py_ssize_t n            # prices seen, saturates at 2


cdef inline void ind_rvol_init(IndRvol* s, double lam) noexcept nogil:
    """``0 <= lam < 1``."""
    s.lam = lam
    s.one_m_lam = 1.0 - lam
    s.var = 0.0
    ind_logret_start(&s.p, 1.0)
    s.n = 0


cdef inline void ind_rvol_step(IndRvol* s, double x) noexcept nogil:
    """Add the price ``x > 0`` without taking the square root (read it with
    ``ind_rvol_value`` when needed). The EWMA starts at the first squared return, then
    ``var = lam * var + (1 - lam) * r**2`` (pandas ``ewm(alpha=1 - lam, adjust=False)``)."""
    cdef double r = ind_logret_next(&s.p, x)
    if IND_LIKELY(s.n >= 2):
        s.var = s.lam * s.var + s.one_m_lam * (r * r)
        return
    s.n += 1
    if s.n == 2:
        s.var = r * r


cdef inline double ind_rvol_value(const IndRvol* s) noexcept nogil:
    """``sqrt(EWMA(r**2))`` (NaN before the second price)."""
    return sqrt(s.var) if s.n >= 2 else NAN


cdef inline double ind_rvol_update(IndRvol* s, double x) noexcept nogil:
    """Add the price ``x > 0``; returns ``sqrt(EWMA(r**2))`` of the log returns ``r``
    (NaN for the first price): ``ind_rvol_step`` then ``ind_rvol_value``."""
    ind_rvol_step(s, x)
    return ind_rvol_value(s)


# ---------------------------------------------------------------- EMA by time decay

cdef struct IndEmaTime:
    double inv_tau          # 1 / tau (ns)
    double y                # current value
    double w                # total weight (sum of decayed unit weights)
    int64_t t_last
    bint started


cdef inline void ind_ema_time_init(IndEmaTime* s, double tau) noexcept nogil:
    """``tau > 0`` in ns (half-life = ``tau * ln 2``)."""
    s.inv_tau = 1.0 / tau
    s.y = NAN
    s.w = 0.0
    s.t_last = 0
    s.started = False


cdef inline double ind_ema_time_update(IndEmaTime* s, int64_t t, double x) noexcept nogil:
    """Add ``x`` observed at ``t``; returns ``sum_i w_i x_i / sum_i w_i`` with
    ``w_i = exp(-(t - t_i) / tau)`` over every event so far (pandas ``ewm(times=...,
    halflife=tau * ln 2)``, adjusted). Equal timestamps weigh equally, a gap of many ``tau``
    forgets the past. Defined from the first event."""
    cdef double dt, wd
    if s.started:
        dt = <double>(<uint64_t>t - <uint64_t>s.t_last)
        wd = s.w * exp(-dt * s.inv_tau) if dt != 0.0 else s.w
        s.w = wd + 1.0
        s.y = (s.y * wd + x) / s.w      # no subtractive cancellation for same-sign x
    else:
        s.started = True
        s.w = 1.0
        s.y = x
    s.t_last = t
    return s.y


# ---------------------------------------------------------------- time windows

cdef struct IndTimeWin:
    int64_t* t              # ring of event times, capacity mask + 1 (power of two), owned
    double* v               # ring of values
    Py_ssize_t head         # slot of the oldest event
    Py_ssize_t n            # events in the window
    Py_ssize_t mask
    int status              # IND_OK or IND_ENOMEM (sticky)
    int64_t window          # ns
    int64_t t_first         # first event (warm-up)
    int64_t t_last
    bint started
    double shift            # sum is of (v - shift)
    double sum
    double last             # newest value
    double evicted          # last value that left the window (as-of value at t - window)
    bint has_evicted
    Py_ssize_t run          # trailing run of equal values
    Py_ssize_t since        # pushes since the last exact recompute
    double mass             # sum of |v - shift| added and removed since (rounding bound)
    double asum             # sum of |v| over the window (scale; approximate)


cdef int ind_tw_grow(IndTimeWin* w) noexcept nogil
cdef void ind_tw_recompute(IndTimeWin* w) noexcept nogil


cdef inline void ind_tw_init(IndTimeWin* w, int64_t window) noexcept nogil:
    """``window > 0`` ns; no memory until the first push (``ind_tw_free`` releases it)."""
    w.t = NULL
    w.v = NULL
    w.head = 0
    w.n = 0
    w.mask = -1
    w.status = IND_OK
    w.window = window
    w.t_first = 0
    w.t_last = 0
    w.started = False
    w.shift = 0.0
    w.sum = 0.0
    w.mass = 0.0
    w.asum = 0.0
    w.last = NAN
    w.evicted = NAN
    w.has_evicted = False
    w.run = 0
    w.since = 0


cdef inline void ind_tw_free(IndTimeWin* w) noexcept nogil:
    free(w.t)
    free(w.v)
    w.t = NULL
    w.v = NULL
    w.mask = -1
    w.n = 0
    w.head = 0


cdef inline void ind_tw_clear(IndTimeWin* w) noexcept nogil:
    """Forget every event and the warm-up; keeps the memory."""
    w.head = 0
    w.n = 0
    w.status = IND_OK
    w.t_first = 0
    w.t_last = 0
    w.started = False
    w.shift = 0.0
    w.sum = 0.0
    w.mass = 0.0
    w.asum = 0.0
    w.last = NAN
    w.evicted = NAN
    w.has_evicted = False
    w.run = 0
    w.since = 0


cdef inline bint ind_tw_ready(const IndTimeWin* w) noexcept nogil:
    """The whole window lies inside observed history: ``t_now - t_first >= window``."""
    return (w.started and w.status == IND_OK
            and <uint64_t>w.t_last - <uint64_t>w.t_first >= <uint64_t>w.window)


cdef inline int ind_tw_push(IndTimeWin* w, int64_t t, double v) noexcept nogil:
    """Add ``(t, v)`` after evicting the events with ``t_i <= t - window``."""
    cdef Py_ssize_t slot
    if not w.started:
        w.started = True
        w.t_first = t
        w.shift = v
    w.t_last = t
    while w.n != 0 and <uint64_t>t - <uint64_t>w.t[w.head] >= <uint64_t>w.window:
        w.evicted = w.v[w.head]
        w.has_evicted = True
        w.sum -= w.evicted - w.shift
        w.mass += fabs(w.evicted - w.shift)
        w.asum -= fabs(w.evicted)
        w.head = (w.head + 1) & w.mask
        w.n -= 1
    if w.n > w.mask:
        if ind_tw_grow(w) != IND_OK:
            w.status = IND_ENOMEM
            return IND_ENOMEM
    slot = (w.head + w.n) & w.mask
    w.t[slot] = t
    w.v[slot] = v
    w.n += 1
    w.sum += v - w.shift
    w.mass += fabs(v - w.shift)
    w.asum += fabs(v)
    w.run = ind_run_next(w.run, v, w.last)
    w.last = v
    w.since += 1
    if (w.n == 1 or w.mass * ind_sum_guard() > w.asum
            or w.since >= IND_RECOMPUTE_MIN + IND_RECOMPUTE_MUL * w.n):
        ind_tw_recompute(w)
    return IND_OK


cdef inline double ind_tw_mean(const IndTimeWin* w) noexcept nogil:
    """Mean of the window's values (NaN in warm-up)."""
    if not ind_tw_ready(w):
        return NAN
    if w.run >= w.n:
        return w.last
    return w.shift + w.sum / w.n


cdef inline double ind_tw_total(const IndTimeWin* w) noexcept nogil:
    """Sum of the window's values (NaN in warm-up)."""
    if not ind_tw_ready(w):
        return NAN
    if w.run >= w.n:
        return w.last * w.n
    return w.shift * w.n + w.sum


cdef inline double ind_sma_time_update(IndTimeWin* w, int64_t t, double x) noexcept nogil:
    """Add ``x`` at ``t``; returns the mean of the events with ``t_i > t - window``
    (NaN until ``t - t_first >= window``)."""
    if ind_tw_push(w, t, x) != IND_OK:
        return NAN
    return ind_tw_mean(w)


cdef inline double ind_mom_time_update(IndTimeWin* w, int64_t t, double x) noexcept nogil:
    """``x - x_asof(t - window)``: the as-of value is the last event with
    ``t_i <= t - window`` (NaN while there is none)."""
    if ind_tw_push(w, t, x) != IND_OK or not w.has_evicted:
        return NAN
    return ind_mom_of(x, w.evicted)


cdef inline double ind_roc_time_update(IndTimeWin* w, int64_t t, double x) noexcept nogil:
    """``(x / x_asof(t - window) - 1) * 100`` (see ``ind_mom_time_update``)."""
    if ind_tw_push(w, t, x) != IND_OK or not w.has_evicted:
        return NAN
    return ind_roc_of(x, w.evicted)


cdef struct IndRvolTime:
    IndTimeWin w            # values: squared log returns, stamped with the later price
    IndLogRet p             # the previous price
    bint has_prev


cdef inline void ind_rvol_time_init(IndRvolTime* s, int64_t window) noexcept nogil:
    ind_tw_init(&s.w, window)
    ind_logret_start(&s.p, 1.0)
    s.has_prev = False


cdef inline double ind_rvol_time_update(IndRvolTime* s, int64_t t, double x) noexcept nogil:
    """Add the price ``x > 0`` at ``t``; returns ``sqrt(sum r_i**2)`` over the log returns
    stamped ``t_i > t - window`` (NaN until ``t - t_first_price >= window``)."""
    cdef double r
    cdef double tot
    if not s.has_prev:
        s.has_prev = True
        ind_logret_start(&s.p, x)
        s.w.started = True
        s.w.t_first = t
        s.w.t_last = t
        return NAN
    r = ind_logret_next(&s.p, x)
    if ind_tw_push(&s.w, t, r * r) != IND_OK:
        return NAN
    tot = ind_tw_total(&s.w)
    return sqrt(tot) if tot > 0.0 else (0.0 if tot == tot else NAN)
