# cython: language_level=3
"""Price-series indicators: EMA, SMA, ROC, MOM, RSI, MACD, Bollinger bands / z-score,
realized volatility, and time-window variants for irregular events.

Each indicator is a C struct with a ``noexcept nogil`` update core in ``ext/indicators.pxd``
(usable from other ext modules with no Python call), a streaming class here (``update``
returns the current value, NaN until warm; ``value``, ``ready``, ``reset``,
``update_batch``) and a batch function over float64 arrays that validates its inputs,
releases the GIL and runs the same core per point, so streaming and batch results are
bitwise equal.

Count indicators follow TA-Lib's definitions, warm-up included (TA-Lib's NaN prefix has the
same length as ours): ``ema``/``sma`` first value at index ``period - 1``, ``roc``/``mom``
at ``period``, ``rsi`` at ``period``, ``macd`` at ``slow + signal - 2``, ``bbands`` /
``stddev`` / ``zscore`` at ``period - 1``; ``realized_vol`` (EWMA of squared log returns)
at 1. Time variants take int64 ns timestamps (non-decreasing, equal allowed): a window
``W`` holds the events with ``t > t_now - W`` and is warm once ``t_now - t_first >= W``;
``ema_time`` decays weights by ``exp(-dt / tau)`` and is defined from the first event.

Inputs are validated before any ``nogil`` section: values become float64 1-D C-contiguous
arrays (``np.ascontiguousarray``), timestamps must be integers, ``out`` arrays must be
float64 1-D C-contiguous, writeable and of the input's length (``TypeError`` for a wrong
type/dtype, ``ValueError`` for shape, order or range, naming the argument and index).
NaN inputs are not rejected: they propagate as in TA-Lib. Details: ``docs/indicators.md``.
"""

cimport cython

import numpy as np

from cpython.float cimport PyFloat_FromDouble
from libc.math cimport NAN, fabs, isfinite, sqrt
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

__all__ = [
    "Bollinger",
    "Ema",
    "EmaTime",
    "Macd",
    "Mom",
    "MomTime",
    "RealizedVol",
    "RealizedVolTime",
    "Roc",
    "RocTime",
    "Rsi",
    "Sma",
    "SmaTime",
    "bbands",
    "ema",
    "ema_time",
    "macd",
    "mom",
    "mom_time",
    "realized_vol",
    "realized_vol_time",
    "roc",
    "roc_time",
    "rsi",
    "sma",
    "sma_time",
    "stddev",
    "zscore",
]

#: Largest accepted count period (rings are allocated up front).
MAX_PERIOD = (1 << 31) - 1


# ---------------------------------------------------------------- rare paths of the .pxd

cdef int ind_tw_grow(IndTimeWin* w) noexcept nogil:
    """Double the ring (keeps event order, oldest at slot 0)."""
    cdef Py_ssize_t cap = (w.mask + 1) * 2 if w.mask >= 0 else IND_MIN_RING
    cdef int64_t* nt = <int64_t*>malloc(cap * sizeof(int64_t))
    cdef double* nv = <double*>malloc(cap * sizeof(double))
    cdef Py_ssize_t i, j
    if nt == NULL or nv == NULL:
        free(nt)
        free(nv)
        return IND_ENOMEM
    for i in range(w.n):
        j = (w.head + i) & w.mask
        nt[i] = w.t[j]
        nv[i] = w.v[j]
    free(w.t)
    free(w.v)
    w.t = nt
    w.v = nv
    w.head = 0
    w.mask = cap - 1
    return IND_OK


cdef void ind_tw_recompute(IndTimeWin* w) noexcept nogil:
    """Exact sums of the window: shift = naive mean, sum = sum of (v - shift)."""
    cdef Py_ssize_t i
    cdef double acc = 0.0
    for i in range(w.n):
        acc += w.v[(w.head + i) & w.mask]
    w.shift = acc / w.n if w.n else 0.0
    acc = 0.0
    for i in range(w.n):
        acc += w.v[(w.head + i) & w.mask] - w.shift
    w.sum = acc
    w.since = 0
    w.mass = 0.0
    acc = 0.0
    for i in range(w.n):
        acc += fabs(w.v[(w.head + i) & w.mask])
    w.asum = acc


# ---------------------------------------------------------------- validation

cdef object _values(object x, str name):
    """``x`` as a float64 1-D C-contiguous array (converting array-likes)."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of float64, was {type(x).__name__}")
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be convertible to a float64 array: {exc}") from None
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, was {a.ndim}-D")
    return a


cdef object _times(object t, Py_ssize_t n, int64_t after, bint started, str name):
    """``t`` as int64 1-D C-contiguous of length ``n``, non-decreasing (and ``>= after``
    when ``started``)."""
    if isinstance(t, (str, bytes)):
        raise TypeError(f"{name} must be an array of int64 ns, was {type(t).__name__}")
    a = np.asarray(t)
    if a.size == 0 and a.dtype.kind == "f":
        a = a.astype(np.int64)  # an empty list
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer ns timestamps, was dtype {a.dtype}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values above the int64 range")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, was {a.ndim}-D")
    if a.shape[0] != n:
        raise ValueError(f"{name} has length {a.shape[0]}, expected {n} (length of x)")
    cdef const int64_t[::1] v = a
    cdef Py_ssize_t i = -1
    if n:
        with nogil:
            i = _first_decrease(&v[0], n, after, started)
    if i == 0:
        raise ValueError(f"{name}[0] = {v[0]} is before the state's last time {after}")
    if i > 0:
        raise ValueError(f"{name} must be non-decreasing: {name}[{i}] = {v[i]} < "
                         f"{name}[{i - 1}] = {v[i - 1]}")
    return a


cdef Py_ssize_t _first_decrease(const int64_t* t, Py_ssize_t n, int64_t after,
                                bint started) noexcept nogil:
    cdef Py_ssize_t i
    if started and t[0] < after:
        return 0
    for i in range(1, n):
        if t[i] < t[i - 1]:
            return i
    return -1


cdef object _out(object out, Py_ssize_t n, str name):
    """A new float64 array of length ``n``, or ``out`` checked to be one."""
    if out is None:
        return np.empty(n, dtype=np.float64)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float64, was {type(out).__name__}")
    if out.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, was {out.dtype}")
    if out.ndim != 1 or not out.flags.c_contiguous:
        raise ValueError(f"{name} must be a 1-D C-contiguous array")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    if out.shape[0] != n:
        raise ValueError(f"{name} has length {out.shape[0]}, expected {n} (length of x)")
    return out


cdef tuple _in_out(object x, object out, bint prices=False):
    """``(x as float64 array, out checked or new)``; ``prices``: values must be > 0. When
    ``out`` overlaps ``x`` (in place), ``x`` is copied first: kernels may read ``x``
    behind the point they write."""
    xa = _values(x, "x")
    if prices:
        _prices(xa, "x")
    o = _out(out, xa.shape[0], "out")
    if out is not None and np.may_share_memory(xa, o):
        xa = xa.copy()
    return xa, o


cdef object _outs(object out, Py_ssize_t n, Py_ssize_t k, str name):
    """A tuple of ``k`` float64 arrays of length ``n`` (new, or ``out`` checked)."""
    if out is None:
        return tuple([np.empty(n, dtype=np.float64) for _ in range(k)])
    if not isinstance(out, (tuple, list)) or len(out) != k:
        raise TypeError(f"{name} must be a tuple of {k} float64 arrays or None")
    res = tuple([_out(o, n, f"{name}[{i}]") for i, o in enumerate(out)])
    for i in range(k):
        for j in range(i):
            if np.shares_memory(res[i], res[j]):
                raise ValueError(f"{name}[{i}] and {name}[{j}] overlap")
    return res


cdef int _period(Py_ssize_t p, Py_ssize_t lo, str name) except -1:
    if p < lo or p > MAX_PERIOD:
        raise ValueError(f"{name} must be in [{lo}, {MAX_PERIOD}], was {p}")
    return 0


cdef int _window(int64_t w, str name) except -1:
    if w <= 0:
        raise ValueError(f"{name} must be > 0 ns, was {w}")
    return 0


cdef int _positive(double v, str name) except -1:
    if not (v > 0.0 and isfinite(v)):
        raise ValueError(f"{name} must be finite and > 0, was {v}")
    return 0


cdef int _lam(double lam) except -1:
    if not (0.0 <= lam < 1.0):
        raise ValueError(f"lam must be in [0, 1), was {lam}")
    return 0


cdef Py_ssize_t _first_nonpositive(const double* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint bad = False
    for i in range(n):
        bad |= not (x[i] > 0.0)
    if not bad:
        return -1
    for i in range(n):
        if not (x[i] > 0.0):
            return i
    return -1


cdef int _prices(object a, str name) except -1:
    """Realized volatility needs prices > 0 (NaN rejected too)."""
    cdef const double[::1] v = a
    cdef Py_ssize_t i = -1
    if v.shape[0]:
        with nogil:
            i = _first_nonpositive(&v[0], v.shape[0])
    if i >= 0:
        raise ValueError(f"{name} must be > 0: {name}[{i}] = {v[i]}")
    return 0


cdef int _alloc(int rc) except -1:
    if rc != IND_OK:
        raise MemoryError("indicator ring allocation failed")
    return 0


cdef inline const double* _cptr(object a):
    cdef const double[::1] v = a
    return &v[0] if v.shape[0] else NULL


cdef inline double* _ptr(object a):
    cdef double[::1] v = a
    return &v[0] if v.shape[0] else NULL


cdef inline const int64_t* _tptr(object a):
    cdef const int64_t[::1] v = a
    return &v[0] if v.shape[0] else NULL


# ---------------------------------------------------------------- SIMD spans (C)
# Lane-wise the same IEEE operations, in the same order, as the scalar cores of the .pxd,
# so results are bitwise equal to the streaming path (tested). SSE2 is part of x86-64;
# elsewhere the spans do nothing and the scalar loops cover every point.

cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    /* sqrt as one sqrtsd (correctly rounded, as libm's), with no errno branch. */
    static inline double ind_sqrt(double v) {
        __m128d a = _mm_set_sd(v);
        return _mm_cvtsd_f64(_mm_sqrt_sd(a, a));
    }
    /* ind_roc_of on pairs: r = (x / old - 1) * 100, 0 where old == 0 (NaN stays NaN). */
    static Py_ssize_t ind_roc_span2(const double* x, const double* old, double* o,
                                    Py_ssize_t n) {
        const __m128d one = _mm_set1_pd(1.0), hundred = _mm_set1_pd(100.0);
        const __m128d zero = _mm_setzero_pd();
        Py_ssize_t i = 0;
        for (; i + 2 <= n; i += 2) {
            __m128d a = _mm_loadu_pd(x + i), b = _mm_loadu_pd(old + i);
            __m128d r = _mm_mul_pd(_mm_sub_pd(_mm_div_pd(a, b), one), hundred);
            _mm_storeu_pd(o + i, _mm_and_pd(r, _mm_cmpneq_pd(b, zero)));
        }
        return i;
    }
    /* Bollinger outputs of pairs from window means m and sums of squared deviations m2
       (0 for a constant window, NaN in warm-up): variance = 0 if m2 <= 0 else m2 * ip
       (ind_boll_var_of), sd = sqrt(variance), upper = m + up * sd, lower = m - dn * sd,
       z = (x - m) / sd if sd > 0, 0 if sd == 0, NaN otherwise (ind_boll_upper_of /
       ind_boll_lower_of / ind_boll_z_of). */
    static Py_ssize_t ind_boll_out2(const double* x, const double* m, const double* v,
                                    Py_ssize_t n, double ip, double up, double dn,
                                    double* ou, double* ol, double* oz, double* osd) {
        const __m128d vup = _mm_set1_pd(up), vdn = _mm_set1_pd(dn), vip = _mm_set1_pd(ip);
        const __m128d zero = _mm_setzero_pd(), nan = _mm_set1_pd(NAN);
        Py_ssize_t i = 0;
        for (; i + 2 <= n; i += 2) {
            __m128d mm = _mm_loadu_pd(m + i);
            __m128d m2 = _mm_loadu_pd(v + i);
            __m128d sd = _mm_sqrt_pd(_mm_andnot_pd(_mm_cmple_pd(m2, zero),
                                                   _mm_mul_pd(m2, vip)));
            if (ou) {
                _mm_storeu_pd(ou + i, _mm_add_pd(mm, _mm_mul_pd(vup, sd)));
                _mm_storeu_pd(ol + i, _mm_sub_pd(mm, _mm_mul_pd(vdn, sd)));
            }
            if (oz) {
                __m128d z = _mm_div_pd(_mm_sub_pd(_mm_loadu_pd(x + i), mm), sd);
                __m128d gt = _mm_cmpgt_pd(sd, zero);
                __m128d def = _mm_or_pd(gt, _mm_cmpeq_pd(sd, zero));
                _mm_storeu_pd(oz + i, _mm_or_pd(_mm_and_pd(gt, z), _mm_andnot_pd(def, nan)));
            }
            if (osd) _mm_storeu_pd(osd + i, sd);
        }
        return i;
    }
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #include <immintrin.h>
    #define IND_HAVE_AVX_SPAN 1
    /* ind_boll_out2 four points at a time (AVX; chosen at run time when the CPU has it).
       Same IEEE operations lane by lane (no FMA: the target is plain "avx"). A packed
       sqrt or division costs about what a scalar one does, per instruction. */
    __attribute__((target("avx")))
    static Py_ssize_t ind_boll_out4(const double* x, const double* m, const double* v,
                                    Py_ssize_t n, double ip, double up, double dn,
                                    double* ou, double* ol, double* oz, double* osd) {
        const __m256d vup = _mm256_set1_pd(up), vdn = _mm256_set1_pd(dn);
        const __m256d vip = _mm256_set1_pd(ip);
        const __m256d zero = _mm256_setzero_pd(), nan = _mm256_set1_pd(NAN);
        Py_ssize_t i = 0;
        for (; i + 4 <= n; i += 4) {
            __m256d mm = _mm256_loadu_pd(m + i);
            __m256d m2 = _mm256_loadu_pd(v + i);
            __m256d sd = _mm256_sqrt_pd(_mm256_andnot_pd(_mm256_cmp_pd(m2, zero, _CMP_LE_OQ),
                                                         _mm256_mul_pd(m2, vip)));
            if (ou) {
                _mm256_storeu_pd(ou + i, _mm256_add_pd(mm, _mm256_mul_pd(vup, sd)));
                _mm256_storeu_pd(ol + i, _mm256_sub_pd(mm, _mm256_mul_pd(vdn, sd)));
            }
            if (oz) {
                __m256d z = _mm256_div_pd(_mm256_sub_pd(_mm256_loadu_pd(x + i), mm), sd);
                __m256d gt = _mm256_cmp_pd(sd, zero, _CMP_GT_OQ);
                __m256d def = _mm256_or_pd(gt, _mm256_cmp_pd(sd, zero, _CMP_EQ_OQ));
                _mm256_storeu_pd(oz + i, _mm256_or_pd(_mm256_and_pd(gt, z),
                                                      _mm256_andnot_pd(def, nan)));
            }
            if (osd) _mm256_storeu_pd(osd + i, sd);
        }
        return i;
    }
    static int ind_avx = -1;     /* -1: not checked yet */
    static int ind_cpu_avx(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx") ? 1 : 0;
    }
    static inline int ind_use_avx(void) {
        if (ind_avx < 0)
            ind_avx = ind_cpu_avx();
        return ind_avx;
    }
    /* Tests: allow (on != 0, if the CPU has it) or forbid the AVX spans; returns the
       setting now in force. */
    static int ind_set_avx(int on) {
        ind_avx = on ? ind_cpu_avx() : 0;
        return ind_avx;
    }
    #else
    static int ind_set_avx(int on) { (void)on; return 0; }
    #endif
    /* Outputs of the points 0 .. (returned) - 1, the widest way the CPU allows. */
    static Py_ssize_t ind_boll_outv(const double* x, const double* m, const double* v,
                                    Py_ssize_t n, double ip, double up, double dn,
                                    double* ou, double* ol, double* oz, double* osd) {
        Py_ssize_t i = 0;
    #ifdef IND_HAVE_AVX_SPAN
        if (n >= 4 && ind_use_avx())
            i = ind_boll_out4(x, m, v, n, ip, up, dn, ou, ol, oz, osd);
    #endif
        return i + ind_boll_out2(x + i, m + i, v + i, n - i, ip, up, dn, ou ? ou + i : ou,
                                 ol ? ol + i : ol, oz ? oz + i : oz, osd ? osd + i : osd);
    }
    /* ind_boll_add for the points x[0:n] (n <= IND_BOLL_BLOCK; shift sh, 1/period ip;
       no window constant) storing their means (mp) and sums of squared deviations (vb),
       until the first point due for an exact recompute (returned; its step not taken; n
       if none). The parts of the step that do not depend on the running sums (x - old,
       the deviations from the shift, the rounding bound) are computed for the whole span
       first, where the compiler vectorizes them: the same IEEE operations on the same
       values as ind_boll_add, in the same order (no FMA in either target). */
    #define IND_BOLL_BLOCK 64
    #define IND_BOLL_SPAN_BODY \
        double dd[IND_BOLL_BLOCK], ea[IND_BOLL_BLOCK], eb[IND_BOLL_BLOCK], ma[IND_BOLL_BLOCK]; \
        const double* xo = x - p; \
        double sm = *sm_, m2 = *m2_, mass = *mass_, mo = *mo_; \
        Py_ssize_t k; \
        for (k = 0; k < n; k++) { \
            double d = x[k] - xo[k], a = x[k] - sh, b = xo[k] - sh; \
            dd[k] = d; ea[k] = a; eb[k] = b; \
            ma[k] = fabs(d) * (fabs(a) + fabs(b)); \
        } \
        for (k = 0; k < n; k++) { \
            double t = sm + dd[k]; \
            double m_new = t * ip; \
            double m2n = m2 + dd[k] * ((ea[k] - m_new) + (eb[k] - mo)); \
            double massn = mass + ma[k]; \
            if (__builtin_expect(m2n < massn * guard, 0)) break; \
            sm = t; m2 = m2n; mass = massn; mo = m_new; \
            mp[k] = sh + m_new; \
            vb[k] = m2; \
        } \
        *sm_ = sm; *m2_ = m2; *mass_ = mass; *mo_ = mo; \
        return k;
    static Py_ssize_t ind_boll_span_sse2(double* sm_, double* m2_, double* mass_,
                                         double* mo_, const double* x, Py_ssize_t p,
                                         Py_ssize_t n, double sh, double ip, double guard,
                                         double* mp, double* vb) {
        IND_BOLL_SPAN_BODY
    }
    #ifdef IND_HAVE_AVX_SPAN
    /* The same C compiled for AVX: three-operand instructions, fewer register copies. */
    __attribute__((target("avx")))
    static Py_ssize_t ind_boll_span_avx(double* sm_, double* m2_, double* mass_,
                                        double* mo_, const double* x, Py_ssize_t p,
                                        Py_ssize_t n, double sh, double ip, double guard,
                                        double* mp, double* vb) {
        IND_BOLL_SPAN_BODY
    }
    #endif
    static Py_ssize_t ind_boll_span(double* sm_, double* m2_, double* mass_, double* mo_,
                                    const double* x, Py_ssize_t p, Py_ssize_t n,
                                    double sh, double ip, double guard, double* mp,
                                    double* vb) {
    #ifdef IND_HAVE_AVX_SPAN
        if (ind_use_avx())
            return ind_boll_span_avx(sm_, m2_, mass_, mo_, x, p, n, sh, ip, guard, mp, vb);
    #endif
        return ind_boll_span_sse2(sm_, m2_, mass_, mo_, x, p, n, sh, ip, guard, mp, vb);
    }
    /* ind_sma_add for the points x[0:n] (n <= IND_SMA_BLOCK; shift sh, 1/period ip; no
       window constant) writing their means sh + sum * ip to o, until the first point due
       for an exact recompute (returned; its step not taken; n if none). As
       ind_boll_span, x - old and |x| - |old| are computed for the span first (the same
       IEEE operations); with their largest magnitudes they bound, with a margin of 2^-30
       that covers every rounding of the span (< 2^-46 relative), the rounding bound
       (mass) and the scale (asum) of all points of the span: when even the largest mass
       is far from due against the smallest asum, the sums run without the per-point
       test (NaN only ever makes a point not due: a NaN dropped from a maximum is safe). */
    #define IND_SMA_BLOCK 64
    typedef double ind_v4d __attribute__((vector_size(32), aligned(8)));
    typedef long long ind_v4l __attribute__((vector_size(32), aligned(8)));
    #define IND_V4_ABS(v) ((ind_v4d)((ind_v4l)(v) & ~(ind_v4l)sign))
    #define IND_V4_MAX(m, v) ((ind_v4d)(((ind_v4l)((v) > (m)) & (ind_v4l)(v)) \
                                        | (~(ind_v4l)((v) > (m)) & (ind_v4l)(m))))
    #define IND_SMA_SPAN_BODY \
        double dd[IND_SMA_BLOCK], da[IND_SMA_BLOCK]; \
        const double* xo = x - p; \
        double sm = *sm_, mass = *mass_, asum = *asum_; \
        const ind_v4d sign = {-0.0, -0.0, -0.0, -0.0}; \
        ind_v4d mdd = {0.0, 0.0, 0.0, 0.0}, mda = {0.0, 0.0, 0.0, 0.0}; \
        double hi, lo, L = (double)n, md, ma; \
        Py_ssize_t k = 0; \
        for (; k + 4 <= n; k += 4) { \
            ind_v4d a = *(const ind_v4d*)(x + k), b = *(const ind_v4d*)(xo + k); \
            ind_v4d d = a - b, e = IND_V4_ABS(a) - IND_V4_ABS(b); \
            ind_v4d ad = IND_V4_ABS(d), ae = IND_V4_ABS(e); \
            *(ind_v4d*)(dd + k) = d; \
            *(ind_v4d*)(da + k) = e; \
            mdd = IND_V4_MAX(mdd, ad); \
            mda = IND_V4_MAX(mda, ae); \
        } \
        md = mdd[0] > mdd[1] ? mdd[0] : mdd[1]; \
        md = mdd[2] > md ? mdd[2] : md; \
        md = mdd[3] > md ? mdd[3] : md; \
        ma = mda[0] > mda[1] ? mda[0] : mda[1]; \
        ma = mda[2] > ma ? mda[2] : ma; \
        ma = mda[3] > ma ? mda[3] : ma; \
        for (; k < n; k++) { \
            double d = x[k] - xo[k], e = fabs(x[k]) - fabs(xo[k]); \
            dd[k] = d; \
            da[k] = e; \
            md = fabs(d) > md ? fabs(d) : md; \
            ma = fabs(e) > ma ? fabs(e) : ma; \
        } \
        hi = (mass + L * (fabs(sm) + L * md)) * (1.0 + 0x1p-30); \
        lo = asum - L * ma * (1.0 + 0x1p-30) - fabs(asum) * 0x1p-30; \
        if (hi * guard < lo && lo > 0x1p-1000) { \
            _Pragma("GCC unroll 4") \
            for (k = 0; k < n; k++) { \
                double t = sm + dd[k]; \
                sm = t; \
                mass += fabs(t); \
                asum += da[k]; \
                o[k] = t; \
            } \
            for (k = 0; k + 4 <= n; k += 4) { \
                ind_v4d t = *(ind_v4d*)(o + k); \
                *(ind_v4d*)(o + k) = sh + t * ip; \
            } \
            for (; k < n; k++) \
                o[k] = sh + o[k] * ip; \
        } else { \
            for (k = 0; k < n; k++) { \
                double t = sm + dd[k]; \
                double massn = mass + fabs(t); \
                double asumn = asum + da[k]; \
                if (__builtin_expect(massn * guard > asumn, 0)) break; \
                sm = t; mass = massn; asum = asumn; \
                o[k] = sh + t * ip; \
            } \
        } \
        *sm_ = sm; *mass_ = mass; *asum_ = asum; \
        return k;
    static Py_ssize_t ind_sma_span_sse2(double* sm_, double* mass_, double* asum_,
                                        const double* x, Py_ssize_t p, Py_ssize_t n,
                                        double sh, double ip, double guard, double* o) {
        IND_SMA_SPAN_BODY
    }
    #ifdef IND_HAVE_AVX_SPAN
    /* With AVX the maxima are one vmaxpd each: MAXPD(v, m) is exactly v > m ? v : m
       (NaN v keeps m), which the compiler does not see in the generic form. */
    #undef IND_V4_MAX
    #define IND_V4_MAX(m, v) ((ind_v4d)_mm256_max_pd((__m256d)(v), (__m256d)(m)))
    __attribute__((target("avx")))
    static Py_ssize_t ind_sma_span_avx(double* sm_, double* mass_, double* asum_,
                                       const double* x, Py_ssize_t p, Py_ssize_t n,
                                       double sh, double ip, double guard, double* o) {
        IND_SMA_SPAN_BODY
    }
    #endif
    static Py_ssize_t ind_sma_span(double* sm_, double* mass_, double* asum_,
                                   const double* x, Py_ssize_t p, Py_ssize_t n, double sh,
                                   double ip, double guard, double* o) {
    #ifdef IND_HAVE_AVX_SPAN
        if (ind_use_avx())
            return ind_sma_span_avx(sm_, mass_, asum_, x, p, n, sh, ip, guard, o);
    #endif
        return ind_sma_span_sse2(sm_, mass_, asum_, x, p, n, sh, ip, guard, o);
    }
    #else
    #include <math.h>
    static int ind_set_avx(int on) { (void)on; return 0; }
    static inline double ind_sqrt(double v) { return sqrt(v); }
    static Py_ssize_t ind_boll_outv(const double* x, const double* m, const double* v,
                                    Py_ssize_t n, double ip, double up, double dn,
                                    double* ou, double* ol, double* oz, double* osd) {
        return 0;
    }
    static Py_ssize_t ind_roc_span2(const double* x, const double* old, double* o,
                                    Py_ssize_t n) { return 0; }
    static Py_ssize_t ind_boll_span(double* sm_, double* m2_, double* mass_, double* mo_,
                                    const double* x, Py_ssize_t p, Py_ssize_t n,
                                    double sh, double ip, double guard, double* mp,
                                    double* vb) { return 0; }
    static Py_ssize_t ind_sma_span(double* sm_, double* mass_, double* asum_,
                                   const double* x, Py_ssize_t p, Py_ssize_t n, double sh,
                                   double ip, double guard, double* o) { return 0; }
    #endif
    """
    int ind_set_avx(int on) noexcept nogil
    Py_ssize_t ind_roc_span2(const double* x, const double* old, double* o,
                             Py_ssize_t n) noexcept nogil
    double ind_sqrt(double v) noexcept nogil
    Py_ssize_t ind_boll_outv(const double* x, const double* m, const double* v,
                             Py_ssize_t n, double ip, double up, double dn, double* ou,
                             double* ol, double* oz, double* osd) noexcept nogil
    Py_ssize_t ind_boll_span(double* sm_, double* m2_, double* mass_, double* mo_,
                             const double* x, Py_ssize_t p, Py_ssize_t n, double sh,
                             double ip, double guard, double* mp, double* vb) noexcept nogil
    Py_ssize_t ind_sma_span(double* sm_, double* mass_, double* asum_, const double* x,
                            Py_ssize_t p, Py_ssize_t n, double sh, double ip, double guard,
                            double* o) noexcept nogil


cdef extern from *:
    enum: BOLL_BLOCK "IND_BOLL_BLOCK"   # points per block of _boll_loop (64, C side)
    enum: SMA_BLOCK "IND_SMA_BLOCK"     # points per ind_sma_span call (64, C side)


# ---------------------------------------------------------------- batch loops (nogil)
# Each loop runs the .pxd core per point on a local copy of the state (registers), then
# stores the state back, so a streaming object can continue where a batch stopped.

cdef void _ema_loop(IndEma* s0, const double* x, double* o, Py_ssize_t n) noexcept nogil:
    cdef IndEma s = s0[0]
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = ind_ema_update(&s, x[i])
    s0[0] = s


cdef enum:
    RUN_CHUNK = 256           # points per run check of the windowed batch kernels


cdef bint _no_constant_window(const double* x, Py_ssize_t b, Py_ssize_t e, Py_ssize_t chg,
                              Py_ssize_t p) noexcept nogil:
    """True if no point of ``x[b:e]`` ends a run of ``p`` equal values (``chg``: index where
    the run holding ``x[b - 1]`` started; ``b >= 1``). Conservative (False may be a false
    alarm), cheap: a run of ``p`` values ending in ``[b, e)`` either continues the run at
    ``b - 1`` (checked from its length and the leading equalities of the span) or holds
    ``p - 1 >= 2 s - 1`` consecutive equalities ``x[j] == x[j - 1]`` inside the span, hence
    a whole segment of ``s = p // 2`` of them aligned at ``b``; each segment is rejected at
    its first inequality (usually its first comparison)."""
    cdef Py_ssize_t s = p // 2, k, j, run = b - chg
    if s < 1:
        return False
    k = b
    while k < e and x[k] == x[k - 1]:
        run += 1
        if run >= p:
            return False
        k += 1
    k = b
    while k + s <= e:
        if x[k] == x[k - 1]:
            j = k + 1
            while j < k + s and x[j] == x[j - 1]:
                j += 1
            if j == k + s:
                return False
        k += s
    return True


cdef Py_ssize_t _run_start(const double* x, Py_ssize_t b, Py_ssize_t e,
                           Py_ssize_t chg) noexcept nogil:
    """Index where the run of equal values holding ``x[e - 1]`` started, given ``chg`` for
    ``x[b - 1]`` (``b < e``)."""
    cdef Py_ssize_t j = e - 1
    while j > b and x[j] == x[j - 1]:
        j -= 1
    if j == b and x[b] == x[b - 1]:
        return chg
    return j


cdef void _sma_loop(IndSma* s0, const double* x, double* o, Py_ssize_t n) noexcept nogil:
    """``ind_sma_update`` per point. The first ``period`` points go through the ring; past
    them the value leaving the window is ``x[i - period]`` and an exact recompute reads the
    window from ``x``: the same operations on the same values, so the same bits, without
    the ring traffic. The run of equal values is kept as the index ``chg`` where it
    started, ``since`` as the index ``ilim`` where it reaches ``every``; the inner loop
    leaves for a recompute. Spans of ``RUN_CHUNK`` points where no window can be constant
    (``_no_constant_window``) run without tracking the run. ``x`` and ``o`` must not
    overlap."""
    cdef IndSma s = s0[0]
    cdef Py_ssize_t i, j, k, b, e, p = s.period, m = n if n < p else p
    cdef Py_ssize_t chg, ilim
    cdef double sm, mass, asum, last, xi, sh, ip, r_sm, r_mass, r_asum
    cdef bint fast
    for i in range(m):
        o[i] = ind_sma_update(&s, x[i])
    if n <= p:
        s0[0] = s
        return
    sm = s.sum
    mass = s.mass
    asum = s.asum
    chg = p - s.run                     # the run at index p - 1 is s.run
    ilim = p - 1 - s.since + s.every    # since at index i is i - (ilim - every)
    i = p
    while i < n:
        b = i
        e = i + RUN_CHUNK if n - i > RUN_CHUNK else n
        fast = _no_constant_window(x, b, e, chg, p)
        while fast and i < e and ilim >= i + SMA_BLOCK:
            r_sm = sm           # copies: the sums themselves keep no address
            r_mass = mass
            r_asum = asum
            j = e - i if e - i < SMA_BLOCK else SMA_BLOCK
            k = ind_sma_span(&r_sm, &r_mass, &r_asum, x + i, p, j, s.shift, s.inv_p,
                             ind_sum_guard(), o + i)
            i += k
            sm = r_sm
            mass = r_mass
            asum = r_asum
            if k < j:
                break
        while i < e:
            sh = s.shift
            ip = s.inv_p
            j = ilim if ilim < e else e
            if fast:
                while i < j:
                    xi = x[i]
                    ind_sma_add(&sm, &mass, &asum, xi, x[i - p])
                    if IND_UNLIKELY(ind_sma_due(&s, mass, asum, 0)):
                        break
                    o[i] = sh + sm * ip     # ind_sma_mean_of: no window here is constant
                    i += 1
                else:
                    if i >= e:
                        break
                    # i == ilim: the recompute by count, after this point's step
                    xi = x[i]
                    ind_sma_add(&sm, &mass, &asum, xi, x[i - p])
            else:
                last = x[i - 1]
                while i < j:
                    xi = x[i]
                    chg = chg if xi == last else i
                    last = xi
                    ind_sma_add(&sm, &mass, &asum, xi, x[i - p])
                    if IND_UNLIKELY(ind_sma_due(&s, mass, asum, 0)):
                        break
                    o[i] = sh + sm * ip if i - chg + 1 < p else xi
                    i += 1
                else:
                    if i >= e:
                        break
                    xi = x[i]
                    chg = chg if xi == last else i
                    ind_sma_add(&sm, &mass, &asum, xi, x[i - p])
            ind_sma_exact(&s, x + i - p + 1, p, NULL, 0)
            sm = s.sum
            mass = s.mass
            asum = s.asum
            ilim = i + s.every
            o[i] = ind_sma_mean_of(&s, sm, xi, 1 if fast else i - chg + 1)
            i += 1
            if i >= e:
                break
        if fast:
            chg = _run_start(x, b, e, chg)
    s.sum = sm
    s.mass = mass
    s.asum = asum
    s.last = x[n - 1]
    s.run = n - chg
    s.since = n - 1 - (ilim - s.every)
    memcpy(s.ring, x + n - p, p * sizeof(double))
    s.pos = 0
    s0[0] = s


cdef Py_ssize_t _lag_head(IndLag* s, const double* x, double* o, Py_ssize_t n,
                          bint roc) noexcept nogil:
    """Points whose lagged value is still in the ring (at most ``period``): run through the
    ring; returns how many were done."""
    cdef Py_ssize_t i, m = n if n < s.period else s.period
    if roc:
        for i in range(m):
            o[i] = ind_roc_update(s, x[i])
    else:
        for i in range(m):
            o[i] = ind_mom_update(s, x[i])
    return m


cdef void _lag_tail(IndLag* s, const double* x, Py_ssize_t n) noexcept nogil:
    """After a batch of ``n > period`` points read lagged values from ``x`` directly: leave
    the ring as the per-point pushes would have (the last ``period`` values, oldest first)."""
    memcpy(s.ring, x + n - s.period, s.period * sizeof(double))
    s.pos = 0
    s.n = s.period


cdef void _mom_loop(IndLag* s, const double* x, double* o, Py_ssize_t n) noexcept nogil:
    """``x`` and ``o`` must not overlap (points past the head read ``x[i - period]``)."""
    cdef Py_ssize_t i, p = s.period
    if _lag_head(s, x, o, n, False) == n:
        return
    for i in range(p, n):
        o[i] = ind_mom_of(x[i], x[i - p])
    _lag_tail(s, x, n)


cdef void _roc_loop(IndLag* s, const double* x, double* o, Py_ssize_t n) noexcept nogil:
    """As ``_mom_loop``; two points per SSE2 step (``ind_roc_of`` lane by lane)."""
    cdef Py_ssize_t i, p = s.period
    if _lag_head(s, x, o, n, True) == n:
        return
    i = p + ind_roc_span2(x + p, x, o + p, n - p)
    while i < n:
        o[i] = ind_roc_of(x[i], x[i - p])
        i += 1
    _lag_tail(s, x, n)


cdef void _rsi_loop(IndRsi* s0, const double* x, double* o, Py_ssize_t n) noexcept nogil:
    cdef IndRsi s = s0[0]
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = ind_rsi_update(&s, x[i])
    s0[0] = s


cdef void _macd_loop(IndMacd* s0, const double* x, double* om, double* osg, double* oh,
                     Py_ssize_t n) noexcept nogil:
    cdef IndMacd s = s0[0]
    cdef Py_ssize_t i
    for i in range(n):
        om[i] = ind_macd_update(&s, x[i])
        osg[i] = s.signal
        oh[i] = s.hist
    s0[0] = s


cdef void _boll_out(IndBoll* s, const double* x, const double* mb, const double* vb,
                    Py_ssize_t n, double* ou, double* om, double* ol, double* oz,
                    double* osd) noexcept nogil:
    """Outputs of ``n`` points from their window means ``mb`` and sums of squared
    deviations ``vb`` (0 for a constant window, NaN in warm-up; any output may be NULL;
    ``om`` may be ``mb``): variances, square roots and outputs four (AVX, if the CPU has
    it) or two (SSE2) points at a time, the rest scalar."""
    cdef double ip = s.w.inv_p
    cdef Py_ssize_t i = ind_boll_outv(x, mb, vb, n, ip, s.up, s.dn, ou, ol, oz, osd)
    cdef double m, sd
    while i < n:
        m = mb[i]
        sd = ind_sqrt(0.0 if vb[i] <= 0.0 else vb[i] * ip)  # ind_boll_var_of
        if ou != NULL:
            ou[i] = ind_boll_upper_of(s, m, sd)
            ol[i] = ind_boll_lower_of(s, m, sd)
        if oz != NULL:
            oz[i] = ind_boll_z_of(x[i], m, sd)
        if osd != NULL:
            osd[i] = sd
        i += 1
    if om != NULL and om != mb:
        memcpy(om, mb, n * sizeof(double))


cdef void _boll_loop(IndBoll* s0, const double* x, double* ou, double* om, double* ol,
                     double* oz, double* osd, Py_ssize_t n) noexcept nogil:
    """``ind_boll_step`` per point plus the wanted outputs (any may be NULL).

    As ``_sma_loop``: the first ``period`` points through the ring, then the leaving value
    is ``x[i - period]`` and recomputes read the window from ``x`` (same operations, same
    bits); blocks where no window can be constant (``_no_constant_window``) skip the run
    tracking. Means and variances of a block of points are kept, then the square roots and
    outputs of the block are taken several at a time (``_boll_out``). ``x`` must not
    overlap the outputs."""
    cdef IndBoll s = s0[0]
    cdef Py_ssize_t i, j, k0, end, p = s.w.period, m = n if n < p else p
    cdef Py_ssize_t chg, ilim
    cdef double sm, m2, mass, last, xi, sh, ip, mo, r_sm, r_m2, r_mass, r_mo
    cdef double mb[BOLL_BLOCK]
    cdef double vb[BOLL_BLOCK]
    cdef double* mp
    cdef bint fast
    for i in range(m):
        ind_boll_step(&s, x[i])
        mb[0] = ind_sma_mean(&s.w)
        vb[0] = (NAN if s.w.n < s.w.period
                 else 0.0 if s.w.run >= s.w.period else s.m2)     # ind_boll_var
        _boll_out(&s, x + i, mb, vb, 1, _at(ou, i), _at(om, i), _at(ol, i), _at(oz, i),
                  _at(osd, i))
    if n <= p:
        s0[0] = s
        return
    sm = s.w.sum
    m2 = s.m2
    mass = s.mass
    chg = p - s.w.run                       # the run at index p - 1 is s.w.run
    ilim = p - 1 - s.w.since + s.w.every    # since at index i is i - (ilim - every)
    i = p
    mo = sm * s.w.inv_p
    while i < n:
        k0 = i
        end = i + BOLL_BLOCK if n - i > BOLL_BLOCK else n
        mp = om + k0 if om != NULL else mb      # the means go straight to om
        fast = _no_constant_window(x, k0, end, chg, p)
        if fast and ilim >= end:
            r_sm = sm           # copies: the sums themselves keep no address
            r_m2 = m2
            r_mass = mass
            r_mo = mo
            i += ind_boll_span(&r_sm, &r_m2, &r_mass, &r_mo, x + i, p, end - i, s.w.shift,
                               s.w.inv_p, ind_m2_guard(), mp, vb)
            sm = r_sm
            m2 = r_m2
            mass = r_mass
            mo = r_mo
        while i < end:
            sh = s.w.shift
            ip = s.w.inv_p
            j = ilim if ilim < end else end
            if fast:
                # ind_sma_mean_of / ind_boll_var_of of a window that is not constant
                while i < j:
                    xi = x[i]
                    mo = ind_boll_add(&sm, &m2, &mass, xi, x[i - p], sh, ip, mo)
                    if IND_UNLIKELY(ind_boll_due(m2, mass)):
                        break
                    mp[i - k0] = sh + mo
                    vb[i - k0] = m2
                    i += 1
                else:
                    if i >= end:
                        break
                    # i == ilim: the recompute by count, after this point's step
                    xi = x[i]
                    mo = ind_boll_add(&sm, &m2, &mass, xi, x[i - p], sh, ip, mo)
            else:
                last = x[i - 1]
                while i < j:
                    xi = x[i]
                    chg = chg if xi == last else i
                    last = xi
                    mo = ind_boll_add(&sm, &m2, &mass, xi, x[i - p], sh, ip, mo)
                    if IND_UNLIKELY(ind_boll_due(m2, mass)):
                        break
                    # ind_sma_mean_of / ind_boll_var_of with sh + sm * ip == sh + mo
                    if IND_UNLIKELY(i - chg + 1 >= p):
                        mp[i - k0] = xi
                        vb[i - k0] = 0.0
                    else:
                        mp[i - k0] = sh + mo
                        vb[i - k0] = m2
                    i += 1
                else:
                    if i >= end:
                        break
                    xi = x[i]
                    chg = chg if xi == last else i
                    mo = ind_boll_add(&sm, &m2, &mass, xi, x[i - p], sh, ip, mo)
            ind_boll_exact(&s, x + i - p + 1, p, NULL, 0)
            mo = s.w.sum * s.w.inv_p
            sm = s.w.sum
            m2 = s.m2
            mass = s.mass
            ilim = i + s.w.every
            mp[i - k0] = ind_sma_mean_of(&s.w, sm, xi, 1 if fast else i - chg + 1)
            vb[i - k0] = m2 if fast or i - chg + 1 < p else 0.0
            i += 1
            if i >= end:
                break
        if fast:
            chg = _run_start(x, k0, end, chg)
        _boll_out(&s, x + k0, mp, vb, i - k0, _at(ou, k0), _at(om, k0), _at(ol, k0),
                  _at(oz, k0), _at(osd, k0))
    s.w.sum = sm
    s.m2 = m2
    s.mass = mass
    s.w.last = x[n - 1]
    s.w.run = n - chg
    s.w.since = n - 1 - (ilim - s.w.every)
    memcpy(s.w.ring, x + n - p, p * sizeof(double))
    s.w.pos = 0
    s0[0] = s


cdef inline double* _at(double* o, Py_ssize_t i) noexcept nogil:
    return o + i if o != NULL else NULL


cdef void _rvol_loop(IndRvol* s0, const double* x, double* o, Py_ssize_t n) noexcept nogil:
    cdef IndRvol s = s0[0]
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = ind_rvol_update(&s, x[i])
    s0[0] = s


cdef void _ema_time_loop(IndEmaTime* s0, const int64_t* t, const double* x, double* o,
                         Py_ssize_t n) noexcept nogil:
    cdef IndEmaTime s = s0[0]
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = ind_ema_time_update(&s, t[i], x[i])
    s0[0] = s


cdef void _tw_loop(IndTimeWin* w, int kind, const int64_t* t, const double* x, double* o,
                   Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if kind == 0:
        for i in range(n):
            o[i] = ind_sma_time_update(w, t[i], x[i])
    elif kind == 1:
        for i in range(n):
            o[i] = ind_mom_time_update(w, t[i], x[i])
    else:
        for i in range(n):
            o[i] = ind_roc_time_update(w, t[i], x[i])


cdef void _rvol_time_loop(IndRvolTime* s, const int64_t* t, const double* x, double* o,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = ind_rvol_time_update(s, t[i], x[i])


# ---------------------------------------------------------------- streaming classes

@cython.final
cdef class Ema:
    """Streaming exponential moving average (TA-Lib ``EMA``).

    Parameters
    ----------
    period : int
        ``>= 1``; smoothing ``k = 2 / (period + 1)``.

    Notes
    -----
    NaN for the first ``period - 1`` values; the value at index ``period - 1`` is the mean
    of the first ``period`` values, then ``y = (1 - k) * y + k * x``.
    """

    cdef IndEma s
    cdef object _v          # ``value``: a read-only member (see _value_member)

    def __init__(self, Py_ssize_t period):
        _period(period, 1, "period")
        ind_ema_init(&self.s, period)
        self._v = ind_ema_value(&self.s)

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Add ``x`` and return the EMA (NaN until warm)."""
        v = PyFloat_FromDouble(ind_ema_update(&self.s, x))
        self._v = v
        return v

    @property
    def ready(self) -> bool:
        """True once ``period`` values were seen."""
        return ind_ema_ready(&self.s)

    @property
    def period(self) -> int:
        return self.s.period

    def reset(self) -> None:
        """Forget every value (warm-up starts again)."""
        ind_ema_init(&self.s, self.s.period)
        self._v = ind_ema_value(&self.s)

    def update_batch(self, x, out=None):
        """``update`` for each value of ``x``; returns the EMA after each (float64)."""
        xa, o = _in_out(x, out)
        cdef Py_ssize_t n = xa.shape[0]
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _ema_loop(&self.s, px, po, n)
        self._v = ind_ema_value(&self.s)
        return o


@cython.final
cdef class Sma:
    """Streaming simple moving average of the last ``period`` values (TA-Lib ``SMA``).

    Parameters
    ----------
    period : int
        ``>= 1``.

    Notes
    -----
    NaN for the first ``period - 1`` values. O(1) per update: a running sum relative to a
    shift, recomputed exactly every ``max(4096, 64 * period)`` updates or once its rounding
    bound nears 1e-12 of the window's scale; a window of equal values reports exactly that
    value.
    """

    cdef IndSma s
    cdef object _v          # ``value``: a read-only member (see _value_member)

    def __init__(self, Py_ssize_t period):
        _period(period, 1, "period")
        ind_sma_free(&self.s)
        _alloc(ind_sma_init(&self.s, period))
        self._v = NAN

    def __dealloc__(self):
        ind_sma_free(&self.s)

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Add ``x`` and return the mean of the last ``period`` values (NaN until warm)."""
        v = PyFloat_FromDouble(ind_sma_update(&self.s, x))
        self._v = v
        return v

    @property
    def ready(self) -> bool:
        """True once ``period`` values were seen."""
        return ind_sma_ready(&self.s)

    @property
    def period(self) -> int:
        return self.s.period

    def reset(self) -> None:
        """Forget every value (warm-up starts again)."""
        ind_sma_clear(&self.s)
        self._v = NAN

    def update_batch(self, x, out=None):
        """``update`` for each value of ``x``; returns the SMA after each (float64)."""
        xa, o = _in_out(x, out)
        cdef Py_ssize_t n = xa.shape[0]
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _sma_loop(&self.s, px, po, n)
        self._v = ind_sma_mean(&self.s)
        return o


cdef class _Lag:
    """Shared part of ``Mom`` and ``Roc`` (a ring of the last ``period`` values)."""

    cdef IndLag s
    cdef double last
    cdef object _v          # ``value``: a read-only member (see _value_member)

    def __init__(self, Py_ssize_t period):
        _period(period, 1, "period")
        ind_lag_free(&self.s)
        _alloc(ind_lag_init(&self.s, period))
        self.last = NAN
        self._v = NAN

    def __dealloc__(self):
        ind_lag_free(&self.s)

    @property
    def ready(self) -> bool:
        """True once ``period + 1`` values were seen (a value ``period`` steps back)."""
        return self.s.n >= self.s.period and self.last == self.last

    @property
    def period(self) -> int:
        return self.s.period

    def reset(self) -> None:
        """Forget every value (warm-up starts again)."""
        ind_lag_clear(&self.s)
        self.last = NAN
        self._v = NAN


@cython.final
cdef class Mom(_Lag):
    """Streaming momentum ``x - x[-period]`` (TA-Lib ``MOM``).

    Parameters
    ----------
    period : int
        Lag in values, ``>= 1``.

    Notes
    -----
    NaN for the first ``period`` values.
    """

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Add ``x`` and return ``x - x[-period]`` (NaN until warm)."""
        self.last = ind_mom_update(&self.s, x)
        v = PyFloat_FromDouble(self.last)
        self._v = v
        return v

    def update_batch(self, x, out=None):
        """``update`` for each value of ``x``; returns the momentum after each (float64)."""
        xa, o = _in_out(x, out)
        cdef Py_ssize_t n = xa.shape[0]
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _mom_loop(&self.s, px, po, n)
        if n:
            self.last = po[n - 1]
            self._v = self.last
        return o


@cython.final
cdef class Roc(_Lag):
    """Streaming rate of change ``(x / x[-period] - 1) * 100`` (TA-Lib ``ROC``).

    Parameters
    ----------
    period : int
        Lag in values, ``>= 1``.

    Notes
    -----
    NaN for the first ``period`` values; 0 when ``x[-period] == 0`` (as TA-Lib).
    """

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Add ``x`` and return the rate of change in percent (NaN until warm)."""
        self.last = ind_roc_update(&self.s, x)
        v = PyFloat_FromDouble(self.last)
        self._v = v
        return v

    def update_batch(self, x, out=None):
        """``update`` for each value of ``x``; returns the ROC after each (float64)."""
        xa, o = _in_out(x, out)
        cdef Py_ssize_t n = xa.shape[0]
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _roc_loop(&self.s, px, po, n)
        if n:
            self.last = po[n - 1]
            self._v = self.last
        return o


@cython.final
cdef class Rsi:
    """Streaming relative strength index with Wilder smoothing (TA-Lib ``RSI``).

    Parameters
    ----------
    period : int
        ``>= 2``.

    Notes
    -----
    NaN for the first ``period`` values; the value at index ``period`` uses the plain
    averages of the first ``period`` gains and losses, then Wilder's smoothing
    ``avg = (avg * (period - 1) + g) / period``. 0 when there was neither gain nor loss.
    """

    cdef IndRsi s
    cdef object _v          # ``value``: a read-only member (see _value_member)

    def __init__(self, Py_ssize_t period):
        _period(period, 2, "period")
        ind_rsi_init(&self.s, period)
        self._v = self.s.value

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Add ``x`` and return the RSI in [0, 100] (NaN until warm)."""
        v = PyFloat_FromDouble(ind_rsi_update(&self.s, x))
        self._v = v
        return v

    @property
    def ready(self) -> bool:
        """True once ``period + 1`` values were seen."""
        return self.s.n > self.s.period

    @property
    def period(self) -> int:
        return self.s.period

    def reset(self) -> None:
        """Forget every value (warm-up starts again)."""
        ind_rsi_init(&self.s, self.s.period)
        self._v = self.s.value

    def update_batch(self, x, out=None):
        """``update`` for each value of ``x``; returns the RSI after each (float64)."""
        xa, o = _in_out(x, out)
        cdef Py_ssize_t n = xa.shape[0]
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _rsi_loop(&self.s, px, po, n)
        self._v = self.s.value
        return o


cdef int _macd_periods(Py_ssize_t fast, Py_ssize_t slow, Py_ssize_t signal) except -1:
    _period(fast, 2, "fast")
    _period(slow, 2, "slow")
    _period(signal, 1, "signal")
    if fast >= slow:
        raise ValueError(f"fast must be < slow, was fast={fast}, slow={slow}")
    return 0


@cython.final
cdef class Macd:
    """Streaming MACD: line, signal and histogram (TA-Lib ``MACD``).

    Parameters
    ----------
    fast, slow : int
        EMA periods, ``2 <= fast < slow``.
    signal : int
        Signal EMA period, ``>= 1``.

    Notes
    -----
    ``update`` returns the MACD line; ``signal`` and ``hist`` hold the other outputs. All
    are NaN for the first ``slow + signal - 2`` values. As TA-Lib, both EMAs are seeded at
    index ``slow - 1`` with the mean of their last ``period`` values (the fast EMA ignores
    the first ``slow - fast`` inputs) and the signal EMA with the mean of the first
    ``signal`` MACD values.
    """

    cdef IndMacd s
    cdef object _v          # ``value``: a read-only member (see _value_member)

    def __init__(self, Py_ssize_t fast=12, Py_ssize_t slow=26, Py_ssize_t signal=9):
        _macd_periods(fast, slow, signal)
        ind_macd_init(&self.s, fast, slow, signal)
        self._v = self.s.macd

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Add ``x`` and return the MACD line (NaN until warm)."""
        v = PyFloat_FromDouble(ind_macd_update(&self.s, x))
        self._v = v
        return v

    @property
    def signal(self) -> float:
        """Signal line (EMA of the MACD line; NaN until warm)."""
        return self.s.signal

    @property
    def hist(self) -> float:
        """Histogram, MACD line - signal (NaN until warm)."""
        return self.s.hist

    @property
    def ready(self) -> bool:
        """True once ``slow + signal - 1`` values were seen."""
        return self.s.ready

    def reset(self) -> None:
        """Forget every value (warm-up starts again)."""
        ind_macd_init(&self.s, self.s.fast.period, self.s.slow.period, self.s.sig.period)
        self._v = self.s.macd

    def update_batch(self, x, out=None):
        """``update`` for each value of ``x``; returns ``(macd, signal, hist)`` arrays."""
        xa = _values(x, "x")
        cdef Py_ssize_t n = xa.shape[0]
        o = _outs(out, n, 3, "out")
        cdef const double* px = _cptr(xa)
        cdef double* pm = _ptr(o[0])
        cdef double* ps = _ptr(o[1])
        cdef double* ph = _ptr(o[2])
        with nogil:
            _macd_loop(&self.s, px, pm, ps, ph, n)
        self._v = self.s.macd
        return o


@cython.final
cdef class Bollinger:
    """Streaming Bollinger bands and z-score over the last ``period`` values.

    Parameters
    ----------
    period : int
        ``>= 1``.
    nbdev_up, nbdev_dn : float
        Band widths in standard deviations (TA-Lib ``BBANDS`` ``nbdevup`` / ``nbdevdn``).

    Notes
    -----
    ``update`` returns the z-score ``(x - mean) / stdev`` with the population stdev (as
    TA-Lib ``STDDEV``/``BBANDS``); 0 when the window is constant. NaN for the first
    ``period - 1`` values. O(1) per update (windowed Welford update relative to a shift,
    recomputed exactly every ``max(4096, 64 * period)`` updates or once the rounding bound
    exceeds 2**-12 of the sum of squared deviations).
    """

    cdef IndBoll s
    cdef object _v          # ``value``: a read-only member (see _value_member)

    def __init__(self, Py_ssize_t period=20, double nbdev_up=2.0, double nbdev_dn=2.0):
        _period(period, 1, "period")
        if not (isfinite(nbdev_up) and isfinite(nbdev_dn)):
            raise ValueError(f"nbdev_up / nbdev_dn must be finite, was {nbdev_up}, {nbdev_dn}")
        ind_boll_free(&self.s)
        _alloc(ind_boll_init(&self.s, period, nbdev_up, nbdev_dn))
        self._v = NAN

    def __dealloc__(self):
        ind_boll_free(&self.s)

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Add ``x`` and return its z-score in the window (NaN until warm)."""
        v = PyFloat_FromDouble(ind_boll_update(&self.s, x))
        self._v = v
        return v

    @property
    def mean(self) -> float:
        """Window mean, the middle band (NaN until warm)."""
        return ind_sma_mean(&self.s.w)

    @property
    def stdev(self) -> float:
        """Population standard deviation of the window (NaN until warm)."""
        return ind_boll_std(&self.s)

    @property
    def upper(self) -> float:
        """``mean + nbdev_up * stdev`` (NaN until warm)."""
        return ind_boll_upper_of(&self.s, ind_sma_mean(&self.s.w), ind_boll_std(&self.s))

    @property
    def lower(self) -> float:
        """``mean - nbdev_dn * stdev`` (NaN until warm)."""
        return ind_boll_lower_of(&self.s, ind_sma_mean(&self.s.w), ind_boll_std(&self.s))

    @property
    def ready(self) -> bool:
        """True once ``period`` values were seen."""
        return ind_sma_ready(&self.s.w)

    @property
    def period(self) -> int:
        return self.s.w.period

    def reset(self) -> None:
        """Forget every value (warm-up starts again)."""
        ind_boll_clear(&self.s)
        self._v = NAN

    def update_batch(self, x, out=None):
        """``update`` for each value of ``x``; returns the z-score after each (float64)."""
        xa, o = _in_out(x, out)
        cdef Py_ssize_t n = xa.shape[0]
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _boll_loop(&self.s, px, NULL, NULL, NULL, po, NULL, n)
        self._v = ind_boll_z(&self.s)
        return o


@cython.final
cdef class RealizedVol:
    """Streaming realized volatility: ``sqrt`` of an EWMA of squared log returns.

    Parameters
    ----------
    lam : float
        Decay per return, ``0 <= lam < 1`` (RiskMetrics daily: 0.94). A half-life of ``h``
        returns is ``lam = 0.5 ** (1 / h)``.

    Notes
    -----
    NaN for the first price; then ``var = r1**2`` and ``var = lam * var + (1 - lam) * r**2``
    (pandas ``ewm(alpha=1 - lam, adjust=False)``); the value is ``sqrt(var)`` per return
    (not annualized). Prices must be > 0.
    """

    cdef IndRvol s
    cdef object _v          # ``value``: a read-only member (see _value_member)
    cdef double last

    def __init__(self, double lam=0.94):
        _lam(lam)
        ind_rvol_init(&self.s, lam)
        self.last = NAN
        self._v = NAN

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Add the price ``x > 0`` and return the volatility (NaN for the first price)."""
        if not x > 0.0:
            raise ValueError(f"price must be > 0, was {x}")
        self.last = ind_rvol_update(&self.s, x)
        v = PyFloat_FromDouble(self.last)
        self._v = v
        return v

    @property
    def ready(self) -> bool:
        """True once two prices were seen."""
        return self.s.n >= 2

    @property
    def lam(self) -> float:
        return self.s.lam

    def reset(self) -> None:
        """Forget every price (warm-up starts again)."""
        ind_rvol_init(&self.s, self.s.lam)
        self.last = NAN
        self._v = NAN

    def update_batch(self, x, out=None):
        """``update`` for each price of ``x``; returns the volatility after each."""
        xa, o = _in_out(x, out, True)
        cdef Py_ssize_t n = xa.shape[0]
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _rvol_loop(&self.s, px, po, n)
        if n:
            self.last = po[n - 1]
            self._v = self.last
        return o


@cython.final
cdef class EmaTime:
    """Streaming EMA of irregular events with time decay ``exp(-dt / tau)``.

    Parameters
    ----------
    tau : float
        Time constant in ns, ``> 0`` (half-life ``tau * ln 2``).

    Notes
    -----
    The value is ``sum_i w_i x_i / sum_i w_i`` with ``w_i = exp(-(t - t_i) / tau)`` over
    every event so far (pandas ``ewm(halflife=tau * ln 2, times=t)``): equal timestamps weigh
    equally, a long gap forgets the past. Defined from the first event.
    """

    cdef IndEmaTime s
    cdef double tau

    def __init__(self, double tau):
        _positive(tau, "tau")
        self.tau = tau
        ind_ema_time_init(&self.s, tau)

    cpdef double update(self, int64_t t, double x):
        """Add ``x`` observed at ``t`` ns (non-decreasing) and return the EMA."""
        if self.s.started and t < self.s.t_last:
            raise ValueError(f"t = {t} is before the last time {self.s.t_last}")
        return ind_ema_time_update(&self.s, t, x)

    @property
    def value(self) -> float:
        """Current EMA (NaN before the first event)."""
        return self.s.y

    @property
    def ready(self) -> bool:
        """True once an event was seen."""
        return self.s.started

    def reset(self) -> None:
        """Forget every event."""
        ind_ema_time_init(&self.s, self.tau)

    def update_batch(self, t, x, out=None):
        """``update`` for each ``(t[i], x[i])``; returns the EMA after each (float64)."""
        xa = _values(x, "x")
        cdef Py_ssize_t n = xa.shape[0]
        ta = _times(t, n, self.s.t_last, self.s.started, "t")
        o = _out(out, n, "out")
        cdef const int64_t* pt = _tptr(ta)
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _ema_time_loop(&self.s, pt, px, po, n)
        return o


cdef class _TimeWin:
    """Shared part of ``SmaTime``, ``MomTime`` and ``RocTime`` (a time-window ring)."""

    cdef IndTimeWin w
    cdef double last
    cdef int kind

    def __cinit__(self):
        ind_tw_init(&self.w, 1)
        self.last = NAN

    def __init__(self, int64_t window):
        _window(window, "window")
        ind_tw_free(&self.w)
        ind_tw_init(&self.w, window)

    def __dealloc__(self):
        ind_tw_free(&self.w)

    @property
    def value(self) -> float:
        """Current value (NaN until warm)."""
        return self.last

    @property
    def ready(self) -> bool:
        """True once ``t_now - t_first >= window``."""
        return ind_tw_ready(&self.w)

    @property
    def count(self) -> int:
        """Events in the window."""
        return self.w.n

    @property
    def window(self) -> int:
        return self.w.window

    def reset(self) -> None:
        """Forget every event (warm-up starts again)."""
        ind_tw_clear(&self.w)
        self.last = NAN

    cdef int _check(self, int64_t t) except -1:
        if self.w.started and t < self.w.t_last:
            raise ValueError(f"t = {t} is before the last time {self.w.t_last}")
        return 0

    cdef int _check_alloc(self) except -1:
        if self.w.status != IND_OK:
            raise MemoryError("time-window ring allocation failed")
        return 0

    def update_batch(self, t, x, out=None):
        """``update`` for each ``(t[i], x[i])``; returns the value after each (float64)."""
        xa = _values(x, "x")
        cdef Py_ssize_t n = xa.shape[0]
        ta = _times(t, n, self.w.t_last, self.w.started, "t")
        o = _out(out, n, "out")
        cdef const int64_t* pt = _tptr(ta)
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _tw_loop(&self.w, self.kind, pt, px, po, n)
        self._check_alloc()
        if n:
            self.last = po[n - 1]
        return o


@cython.final
cdef class SmaTime(_TimeWin):
    """Streaming mean of the events in the last ``window`` ns.

    Parameters
    ----------
    window : int
        ns, ``> 0``; the window holds the events with ``t > t_now - window``.

    Notes
    -----
    NaN until ``t_now - t_first >= window``. Equal timestamps: every event at ``t`` so far
    is in the window. Matches pandas ``rolling(pd.Timedelta(window, "ns")).mean()`` once
    warm.
    """

    cpdef double update(self, int64_t t, double x):
        """Add ``x`` at ``t`` ns (non-decreasing) and return the window mean."""
        self._check(t)
        self.last = ind_sma_time_update(&self.w, t, x)
        self._check_alloc()
        return self.last


@cython.final
cdef class MomTime(_TimeWin):
    """Streaming momentum over a time lag: ``x - x_asof(t - window)``.

    Parameters
    ----------
    window : int
        Lag in ns, ``> 0``.

    Notes
    -----
    The as-of value is the last event with ``t_i <= t - window``; NaN while there is none
    (i.e. until ``t_now - t_first >= window``).
    """

    def __init__(self, int64_t window):
        _TimeWin.__init__(self, window)
        self.kind = 1

    cpdef double update(self, int64_t t, double x):
        """Add ``x`` at ``t`` ns (non-decreasing) and return the momentum."""
        self._check(t)
        self.last = ind_mom_time_update(&self.w, t, x)
        self._check_alloc()
        return self.last


@cython.final
cdef class RocTime(_TimeWin):
    """Streaming rate of change over a time lag: ``(x / x_asof(t - window) - 1) * 100``.

    Parameters
    ----------
    window : int
        Lag in ns, ``> 0``.

    Notes
    -----
    As ``MomTime``; 0 when the as-of value is 0 (as TA-Lib ``ROC``).
    """

    def __init__(self, int64_t window):
        _TimeWin.__init__(self, window)
        self.kind = 2

    cpdef double update(self, int64_t t, double x):
        """Add ``x`` at ``t`` ns (non-decreasing) and return the rate of change (%)."""
        self._check(t)
        self.last = ind_roc_time_update(&self.w, t, x)
        self._check_alloc()
        return self.last


@cython.final
cdef class RealizedVolTime:
    """Streaming realized volatility over a time window: ``sqrt(sum r_i**2)``.

    Parameters
    ----------
    window : int
        ns, ``> 0``; sums the squared log returns stamped ``t_i > t_now - window`` (a return
        is stamped with the time of its later price).

    Notes
    -----
    NaN until ``t_now - t_first >= window``; 0 when the price did not move. Not annualized:
    the value is the volatility over ``window``. Prices must be > 0.
    """

    cdef IndRvolTime s
    cdef double last

    def __cinit__(self):
        ind_rvol_time_init(&self.s, 1)
        self.last = NAN

    def __init__(self, int64_t window):
        _window(window, "window")
        ind_tw_free(&self.s.w)
        ind_rvol_time_init(&self.s, window)

    def __dealloc__(self):
        ind_tw_free(&self.s.w)

    cpdef double update(self, int64_t t, double x):
        """Add the price ``x > 0`` at ``t`` ns (non-decreasing) and return the volatility."""
        if self.s.w.started and t < self.s.w.t_last:
            raise ValueError(f"t = {t} is before the last time {self.s.w.t_last}")
        if not x > 0.0:
            raise ValueError(f"price must be > 0, was {x}")
        self.last = ind_rvol_time_update(&self.s, t, x)
        if self.s.w.status != IND_OK:
            raise MemoryError("time-window ring allocation failed")
        return self.last

    @property
    def value(self) -> float:
        """Current volatility over the window (NaN until warm)."""
        return self.last

    @property
    def ready(self) -> bool:
        """True once ``t_now - t_first >= window``."""
        return ind_tw_ready(&self.s.w)

    @property
    def window(self) -> int:
        return self.s.w.window

    def reset(self) -> None:
        """Forget every price (warm-up starts again)."""
        ind_tw_clear(&self.s.w)
        self.s.has_prev = False
        self.last = NAN

    def update_batch(self, t, x, out=None):
        """``update`` for each ``(t[i], x[i])``; returns the volatility after each."""
        xa = _values(x, "x")
        _prices(xa, "x")
        cdef Py_ssize_t n = xa.shape[0]
        ta = _times(t, n, self.s.w.t_last, self.s.w.started, "t")
        o = _out(out, n, "out")
        cdef const int64_t* pt = _tptr(ta)
        cdef const double* px = _cptr(xa)
        cdef double* po = _ptr(o)
        with nogil:
            _rvol_time_loop(&self.s, pt, px, po, n)
        if self.s.w.status != IND_OK:
            raise MemoryError("time-window ring allocation failed")
        if n:
            self.last = po[n - 1]
        return o


# ---------------------------------------------------------------- ``value`` as a slot
# ``value`` of the count classes is the float object ``update`` returned (kept in ``_v``),
# exposed as a read-only member descriptor (``T_OBJECT_EX``): CPython specializes reading
# such a slot (``LOAD_ATTR_SLOT``), where a property or a Cython ``readonly`` double goes
# through the generic attribute lookup and a new float per read (~20 ns more).

cdef extern from *:
    """
    #include <structmember.h>
    #define IND_N_VALUE_MEMBERS 8
    static PyMemberDef ind_value_members[IND_N_VALUE_MEMBERS];
    static int ind_n_value_members = 0;
    static int ind_value_member(PyTypeObject* t, Py_ssize_t offset, const char* doc) {
        PyMemberDef* m;
        PyObject* d;
        int rc;
        if (ind_n_value_members >= IND_N_VALUE_MEMBERS) {
            PyErr_SetString(PyExc_RuntimeError, "too many value members");
            return -1;
        }
        m = &ind_value_members[ind_n_value_members++];
        m->name = "value";
        m->type = T_OBJECT_EX;
        m->offset = offset;
        m->flags = READONLY;
        m->doc = doc;
        d = PyDescr_NewMember(t, m);
        if (d == NULL)
            return -1;
        rc = PyDict_SetItemString(t->tp_dict, "value", d);
        Py_DECREF(d);
        PyType_Modified(t);
        return rc;
    }
    #define IND_VOFF(cls) ((Py_ssize_t)offsetof(struct __pyx_obj_3ext_10indicators_##cls, _v))
    """
    int ind_value_member(type t, Py_ssize_t offset, const char* doc) except -1
    Py_ssize_t _VOFF_Ema "IND_VOFF(Ema)"
    Py_ssize_t _VOFF_Sma "IND_VOFF(Sma)"
    Py_ssize_t _VOFF_Lag "IND_VOFF(_Lag)"
    Py_ssize_t _VOFF_Rsi "IND_VOFF(Rsi)"
    Py_ssize_t _VOFF_Macd "IND_VOFF(Macd)"
    Py_ssize_t _VOFF_Bollinger "IND_VOFF(Bollinger)"
    Py_ssize_t _VOFF_RealizedVol "IND_VOFF(RealizedVol)"


ind_value_member(Ema, _VOFF_Ema, "Current EMA (NaN until warm).")
ind_value_member(Sma, _VOFF_Sma, "Current mean (NaN until warm).")
ind_value_member(_Lag, _VOFF_Lag, "Latest value (NaN until warm).")
ind_value_member(Rsi, _VOFF_Rsi, "Current RSI (NaN until warm).")
ind_value_member(Macd, _VOFF_Macd, "Current MACD line (NaN until warm).")
ind_value_member(Bollinger, _VOFF_Bollinger, "Z-score of the newest value (NaN until warm).")
ind_value_member(RealizedVol, _VOFF_RealizedVol,
                 "Current volatility per return (NaN until warm).")


# ---------------------------------------------------------------- batch functions
# Common parameters: ``x`` values (array_like, converted to float64 1-D C-contiguous);
# ``t`` int64 ns times (non-decreasing, equal allowed); ``out`` an optional float64 array
# (or tuple of arrays) of ``len(x)`` to write into, returned.


def ema(x, Py_ssize_t period, out=None):
    """Exponential moving average (TA-Lib ``EMA``).

    Parameters
    ----------
    x, out : array_like, numpy.ndarray or None
        Values and optional output (see above).
    period : int
        ``>= 1``; smoothing ``k = 2 / (period + 1)``.

    Returns
    -------
    numpy.ndarray
        NaN for the first ``period - 1`` points, then seeded with the mean of the first
        ``period`` values.
    """
    _period(period, 1, "period")
    return Ema(period).update_batch(x, out)


def sma(x, Py_ssize_t period, out=None):
    """Simple moving average of the last ``period >= 1`` values (TA-Lib ``SMA``).

    Returns
    -------
    numpy.ndarray
        NaN for the first ``period - 1`` points.
    """
    _period(period, 1, "period")
    return Sma(period).update_batch(x, out)


def mom(x, Py_ssize_t period, out=None):
    """Momentum ``x - x[-period]``, ``period >= 1`` (TA-Lib ``MOM``).

    Returns
    -------
    numpy.ndarray
        NaN for the first ``period`` points.
    """
    _period(period, 1, "period")
    return Mom(period).update_batch(x, out)


def roc(x, Py_ssize_t period, out=None):
    """Rate of change ``(x / x[-period] - 1) * 100``, ``period >= 1`` (TA-Lib ``ROC``).

    Returns
    -------
    numpy.ndarray
        NaN for the first ``period`` points, 0 where ``x[-period] == 0``.
    """
    _period(period, 1, "period")
    return Roc(period).update_batch(x, out)


def rsi(x, Py_ssize_t period=14, out=None):
    """Relative strength index, Wilder smoothing, ``period >= 2`` (TA-Lib ``RSI``).

    Returns
    -------
    numpy.ndarray
        RSI in [0, 100]; NaN for the first ``period`` points.
    """
    _period(period, 2, "period")
    return Rsi(period).update_batch(x, out)


def macd(x, Py_ssize_t fast=12, Py_ssize_t slow=26, Py_ssize_t signal=9, out=None):
    """MACD line, signal and histogram (TA-Lib ``MACD``).

    Parameters
    ----------
    x, out : array_like, tuple of 3 numpy.ndarray or None
        Values and optional outputs.
    fast, slow, signal : int
        EMA periods, ``2 <= fast < slow``, ``signal >= 1``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(macd, signal, hist)``; NaN for the first ``slow + signal - 2`` points.
    """
    _macd_periods(fast, slow, signal)
    return Macd(fast, slow, signal).update_batch(x, out)


def bbands(x, Py_ssize_t period=20, double nbdev_up=2.0, double nbdev_dn=2.0, out=None):
    """Bollinger bands around the simple moving average (TA-Lib ``BBANDS``, ``matype=0``).

    Parameters
    ----------
    x, out : array_like, tuple of 3 numpy.ndarray or None
        Values and optional outputs.
    period : int
        ``>= 1``.
    nbdev_up, nbdev_dn : float
        Band widths in population standard deviations.

    Returns
    -------
    tuple of numpy.ndarray
        ``(upper, middle, lower)``; NaN for the first ``period - 1`` points.
    """
    b = Bollinger(period, nbdev_up, nbdev_dn)
    xa = _values(x, "x")
    cdef Py_ssize_t n = xa.shape[0]
    o = _outs(out, n, 3, "out")
    if out is not None and any([np.may_share_memory(xa, a) for a in o]):
        xa = xa.copy()
    cdef const double* px = _cptr(xa)
    cdef double* pu = _ptr(o[0])
    cdef double* pm = _ptr(o[1])
    cdef double* pl = _ptr(o[2])
    with nogil:
        _boll_loop(&b.s, px, pu, pm, pl, NULL, NULL, n)
    return o


def stddev(x, Py_ssize_t period, double nbdev=1.0, out=None):
    """Rolling population standard deviation times ``nbdev`` (TA-Lib ``STDDEV``).

    Returns
    -------
    numpy.ndarray
        NaN for the first ``period - 1`` points, exactly 0 for a constant window.
    """
    if not isfinite(nbdev):
        raise ValueError(f"nbdev must be finite, was {nbdev}")
    b = Bollinger(period)
    xa, o = _in_out(x, out)
    cdef Py_ssize_t n = xa.shape[0]
    cdef const double* px = _cptr(xa)
    cdef double* po = _ptr(o)
    with nogil:
        _boll_loop(&b.s, px, NULL, NULL, NULL, NULL, po, n)
    if nbdev != 1.0:
        np.multiply(o, nbdev, out=o)
    return o


def zscore(x, Py_ssize_t period=20, out=None):
    """Bollinger z-score ``(x - mean) / stdev`` of the last ``period >= 1`` values.

    Returns
    -------
    numpy.ndarray
        Population stdev; NaN for the first ``period - 1`` points, 0 for a constant window.
    """
    return Bollinger(period).update_batch(x, out)


def realized_vol(x, double lam=0.94, out=None):
    """Realized volatility: ``sqrt`` of an EWMA (decay ``0 <= lam < 1``) of squared log
    returns of the prices ``x > 0``.

    Returns
    -------
    numpy.ndarray
        Volatility per return (not annualized); NaN for the first point.
    """
    _lam(lam)
    return RealizedVol(lam).update_batch(x, out)


def ema_time(t, x, double tau, out=None):
    """EMA of irregular events with time decay ``exp(-dt / tau)``, ``tau > 0`` ns.

    Returns
    -------
    numpy.ndarray
        ``sum_i w_i x_i / sum_i w_i`` with ``w_i = exp(-(t - t_i) / tau)`` per point.
    """
    _positive(tau, "tau")
    return EmaTime(tau).update_batch(t, x, out)


def sma_time(t, x, int64_t window, out=None):
    """Mean of the events with ``t_i > t - window``, ``window > 0`` ns.

    Returns
    -------
    numpy.ndarray
        NaN until ``t - t[0] >= window`` (pandas time-based ``rolling`` after that).
    """
    _window(window, "window")
    return SmaTime(window).update_batch(t, x, out)


def mom_time(t, x, int64_t window, out=None):
    """Momentum over a time lag: ``x - x_asof(t - window)``, ``window > 0`` ns.

    Returns
    -------
    numpy.ndarray
        NaN while no event has ``t_i <= t - window``.
    """
    _window(window, "window")
    return MomTime(window).update_batch(t, x, out)


def roc_time(t, x, int64_t window, out=None):
    """Rate of change over a time lag: ``(x / x_asof(t - window) - 1) * 100``.

    Returns
    -------
    numpy.ndarray
        NaN while no event has ``t_i <= t - window``.
    """
    _window(window, "window")
    return RocTime(window).update_batch(t, x, out)


def realized_vol_time(t, x, int64_t window, out=None):
    """Realized volatility over a time window: ``sqrt(sum r_i**2)`` over the log returns
    stamped ``t_i > t - window`` (prices ``x > 0``, ``window > 0`` ns).

    Returns
    -------
    numpy.ndarray
        NaN until ``t - t[0] >= window``.
    """
    _window(window, "window")
    return RealizedVolTime(window).update_batch(t, x, out)


# ---------------------------------------------------------------- in-ext streaming cost

cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


_STREAM_KINDS = ("ema", "sma", "mom", "roc", "rsi", "macd", "bollinger", "rvol", "all",
                 "bollinger-step", "rvol-step", "sqrt-div-floor")


cdef struct _States:
    IndEma e
    IndLag g
    IndLag g2
    IndSma sm
    IndRsi r
    IndMacd m
    IndBoll b
    IndRvol v


def _bench_stream_core(str kind, x):
    """ns per update of the streaming core called from C on a heap state, as another ext
    module would (benchmark helper; ``kind`` in ``_STREAM_KINDS``; ``"all"``: every count
    indicator (EMA 20, SMA 20, MOM 10, ROC 10, RSI 14, MACD 12/26/9, Bollinger 20,
    realized vol) updated with each value, i.e. the set for one book update;
    ``"bollinger-step"`` / ``"rvol-step"``: the state advanced without the value (its
    square root and division), which is read once at the end; ``"sqrt-div-floor"``: one
    correctly rounded square root and one division per value and nothing else, the
    divider's floor under a z-score on this CPU, as a same-run reference)."""
    if kind not in _STREAM_KINDS:
        raise ValueError(f"kind must be one of {_STREAM_KINDS}, was {kind!r}")
    xa = _values(x, "x")
    if xa.shape[0] == 0:
        raise ValueError("x must be non-empty")
    cdef const double* px = _cptr(xa)
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef int k = _STREAM_KINDS.index(kind)
    cdef int64_t t0, t1
    cdef double acc = 0.0
    cdef _States* s = <_States*>calloc(1, sizeof(_States))
    if s == NULL:
        raise MemoryError()
    ind_ema_init(&s.e, 20)
    ind_rsi_init(&s.r, 14)
    ind_macd_init(&s.m, 12, 26, 9)
    ind_rvol_init(&s.v, 0.94)
    cdef int rc = (ind_lag_init(&s.g, 10) | ind_lag_init(&s.g2, 10) | ind_sma_init(&s.sm, 20)
                   | ind_boll_init(&s.b, 20, 2, 2))
    with nogil:
        t0 = _now_ns()
        if rc != IND_OK:
            n = 0
        if k == 0:
            for i in range(n):
                acc += ind_ema_update(&s.e, px[i])
        elif k == 1:
            for i in range(n):
                acc += ind_sma_update(&s.sm, px[i])
        elif k == 2:
            for i in range(n):
                acc += ind_mom_update(&s.g, px[i])
        elif k == 3:
            for i in range(n):
                acc += ind_roc_update(&s.g, px[i])
        elif k == 4:
            for i in range(n):
                acc += ind_rsi_update(&s.r, px[i])
        elif k == 5:
            for i in range(n):
                acc += ind_macd_update(&s.m, px[i])
        elif k == 6:
            for i in range(n):
                acc += ind_boll_update(&s.b, px[i])
        elif k == 7:
            for i in range(n):
                acc += ind_rvol_update(&s.v, px[i])
        elif k == 9:
            for i in range(n):
                ind_boll_step(&s.b, px[i])
            acc += ind_boll_z(&s.b)
        elif k == 10:
            for i in range(n):
                ind_rvol_step(&s.v, px[i])
            acc += ind_rvol_value(&s.v)
        elif k == 11:
            for i in range(n):
                acc += (px[i] - 1.0) / ind_sqrt(px[i])
        else:
            for i in range(n):
                acc += (ind_ema_update(&s.e, px[i]) + ind_sma_update(&s.sm, px[i])
                        + ind_mom_update(&s.g, px[i]) + ind_roc_update(&s.g2, px[i])
                        + ind_rsi_update(&s.r, px[i]) + ind_macd_update(&s.m, px[i])
                        + ind_boll_update(&s.b, px[i]) + ind_rvol_update(&s.v, px[i]))
        t1 = _now_ns()
    ind_lag_free(&s.g)
    ind_lag_free(&s.g2)
    ind_sma_free(&s.sm)
    ind_boll_free(&s.b)
    free(s)
    if rc != IND_OK:
        raise MemoryError()
    if acc == 1.2345e300:  # keep ``acc`` alive
        return 0.0
    return (t1 - t0) / <double>xa.shape[0]


def _simd_avx(bint on):
    """Allow (``on``, if the CPU has AVX) or forbid the AVX spans of the batch kernels (the
    SSE2 ones run instead); returns whether they are now used. For tests: both give the
    same bits."""
    return bool(ind_set_avx(on))
