# cython: language_level=3, auto_pickle=False
"""Order concentration: detect walls (unusually large resting levels) in an order book.

A level of a side is a *wall* when, among the side's *band* (its best ``band_levels`` live
levels, cut at ``band_bps`` from the mid if set) holding at least ``min_levels`` levels:

* ``size > median`` and ``size >= k * median`` (median = lower median of the band sizes),
* ``size - median >= k_mad * MAD`` (MAD = lower median of ``|size - median|``), and
* ``size >= min_share * band depth`` (off when ``min_share`` is 0).

Medians are never sorted for: each side keeps the previous median and MAD as hints, one
counting pass says whether they still hold or how far the rank moved, and a nearby rank is
reached by a few min/max passes, a farther one by quickselect (with AVX2 each partition
is one compacting vector pass). The band passes are vectorized (AVX2, chosen at import by
the CPU) with a portable fallback. The MAD is
only computed when some level passes the first test.

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
    #include <stdint.h>
    typedef unsigned __int128 wall_u128;
    /* exact hi * 2**32 + lo (the sums of the halves of the sizes), rounded once */
    static inline double wall_depth_double(uint64_t hi, uint64_t lo) {
        return (double)(((wall_u128)hi << 32) + (wall_u128)lo);
    }

    /* Band passes. Sizes are int64 >= 0, so hints, thresholds and deviations all fit in
       int64 and signed compares are exact. Each kernel is one plain loop compiled twice:
       for the baseline ISA and, on x86-64 with GCC/clang, for AVX2 (auto-vectorized:
       4 levels per instruction), chosen once at import by the CPU's feature bits. */
    typedef struct {
        int64_t lt, le;        /* sizes < h, <= h */
        int64_t ltd, led;      /* |size - h| < d, <= d */
        uint64_t slo, shi;     /* sum of the low / high 32-bit halves of the sizes */
        int64_t vmax;          /* largest size */
    } wall_stats;

    #define WALL_COUNTS_BODY \
        int64_t lt = 0, le = 0, ltd = 0, led = 0, vmax = 0; \
        uint64_t slo = 0, shi = 0; \
        for (Py_ssize_t j = 0; j < n; j++) { \
            int64_t x = v[j]; \
            int64_t a = x > h ? x - h : h - x; \
            lt += x < h; \
            le += x <= h; \
            ltd += a < d; \
            led += a <= d; \
            slo += (uint64_t)x & 0xffffffffu; \
            shi += (uint64_t)x >> 32; \
            vmax = x > vmax ? x : vmax; \
        } \
        st->lt = lt; st->le = le; st->ltd = ltd; st->led = led; \
        st->slo = slo; st->shi = shi; st->vmax = vmax;

    /* nearest value above / below h of x (dev = 0) or of |x - m| (dev = 1); written as
       min / max reductions so that they vectorize (one loop per dev, no branch inside) */
    #define WALL_NEAREST_LOOP(DEV) \
        for (Py_ssize_t j = 0; j < n; j++) { \
            int64_t x = v[j]; \
            int64_t a = DEV ? (x > m ? x - m : m - x) : x; \
            int64_t u = a > h ? a : INT64_MAX; \
            int64_t b = a < h ? a : -1; \
            up = u < up ? u : up; \
            dn = b > dn ? b : dn; \
        }
    #define WALL_NEAREST_BODY \
        int64_t up = INT64_MAX, dn = -1; \
        if (dev) { WALL_NEAREST_LOOP(1) } else { WALL_NEAREST_LOOP(0) } \
        *above = up; *below = dn;

    /* values (dev = 0) or |x - m| (dev = 1) below h and at most h */
    #define WALL_RANK_BODY \
        int64_t lt = 0, le = 0; \
        for (Py_ssize_t j = 0; j < n; j++) { \
            int64_t x = v[j]; \
            int64_t a = dev ? (x > m ? x - m : m - x) : x; \
            lt += a < h; \
            le += a <= h; \
        } \
        *plt = lt; *ple = le;

    #define WALL_DEVS_BODY \
        for (Py_ssize_t j = 0; j < n; j++) { \
            int64_t x = v[j]; \
            out[j] = x > m ? x - m : m - x; \
        }

    static void wall_counts_base(const int64_t* v, Py_ssize_t n, int64_t h, int64_t d,
                                 wall_stats* st) { WALL_COUNTS_BODY }
    static void wall_nearest_base(const int64_t* v, Py_ssize_t n, int dev, int64_t m,
                                  int64_t h, int64_t* above, int64_t* below) {
        WALL_NEAREST_BODY }
    static void wall_rank_base(const int64_t* v, Py_ssize_t n, int dev, int64_t m,
                               int64_t h, int64_t* plt, int64_t* ple) { WALL_RANK_BODY }
    static void wall_devs_base(const int64_t* v, Py_ssize_t n, int64_t m, int64_t* out) {
        WALL_DEVS_BODY }
    static Py_ssize_t wall_collect_base(const int64_t* v, Py_ssize_t n, int64_t t,
                                        Py_ssize_t* out) {
        Py_ssize_t nc = 0;
        for (Py_ssize_t j = 0; j < n; j++)
            if (v[j] >= t) out[nc++] = j;
        return nc;
    }

    /* median of three (the quickselect pivots, both builds) */
    static inline uint64_t wall_med3u(uint64_t a, uint64_t b, uint64_t c) {
        uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
        return c < lo ? lo : (c > hi ? hi : c);
    }

    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    #include <immintrin.h>
    #define WALL_X86 1
    __attribute__((target("avx2")))
    static void wall_counts_avx2(const int64_t* v, Py_ssize_t n, int64_t h, int64_t d,
                                 wall_stats* st) { WALL_COUNTS_BODY }
    /* AVX2 has no 64-bit min/max (GCC leaves these reductions scalar): compare + blend */
    #define WALL_NEAREST_AVX2_LOOP(DEV) \
        for (; j + 4 <= n; j += 4) { \
            __m256i a = _mm256_loadu_si256((const __m256i*)(v + j)); \
            if (DEV) \
                a = _mm256_blendv_epi8(_mm256_sub_epi64(mv, a), _mm256_sub_epi64(a, mv), \
                                       _mm256_cmpgt_epi64(a, mv)); \
            up = _mm256_blendv_epi8(up, a, _mm256_and_si256(_mm256_cmpgt_epi64(a, hv), \
                                                            _mm256_cmpgt_epi64(up, a))); \
            dn = _mm256_blendv_epi8(dn, a, _mm256_and_si256(_mm256_cmpgt_epi64(hv, a), \
                                                            _mm256_cmpgt_epi64(a, dn))); \
        }
    __attribute__((target("avx2")))
    static void wall_nearest_avx2(const int64_t* v, Py_ssize_t n, int dev, int64_t m,
                                  int64_t h, int64_t* above, int64_t* below) {
        __m256i hv = _mm256_set1_epi64x(h), mv = _mm256_set1_epi64x(m);
        __m256i up = _mm256_set1_epi64x(INT64_MAX), dn = _mm256_set1_epi64x(-1);
        int64_t lu[4], ld[4], u = INT64_MAX, d = -1;
        Py_ssize_t j = 0;
        if (dev) { WALL_NEAREST_AVX2_LOOP(1) } else { WALL_NEAREST_AVX2_LOOP(0) }
        _mm256_storeu_si256((__m256i*)lu, up);
        _mm256_storeu_si256((__m256i*)ld, dn);
        for (int i = 0; i < 4; i++) {
            u = lu[i] < u ? lu[i] : u;
            d = ld[i] > d ? ld[i] : d;
        }
        for (; j < n; j++) {
            int64_t x = v[j];
            int64_t a = dev ? (x > m ? x - m : m - x) : x;
            if (a > h && a < u) u = a;
            if (a < h && a > d) d = a;
        }
        *above = u; *below = d;
    }
    __attribute__((target("avx2")))
    static void wall_rank_avx2(const int64_t* v, Py_ssize_t n, int dev, int64_t m,
                               int64_t h, int64_t* plt, int64_t* ple) { WALL_RANK_BODY }
    __attribute__((target("avx2")))
    static void wall_devs_avx2(const int64_t* v, Py_ssize_t n, int64_t m, int64_t* out) {
        WALL_DEVS_BODY }
    /* indexes of the sizes >= t, 4 compares per instruction; t >= 1 */
    __attribute__((target("avx2")))
    static Py_ssize_t wall_collect_avx2(const int64_t* v, Py_ssize_t n, int64_t t,
                                        Py_ssize_t* out) {
        Py_ssize_t nc = 0, j = 0;
        __m256i tv = _mm256_set1_epi64x(t - 1);
        for (; j + 4 <= n; j += 4) {
            __m256i x = _mm256_loadu_si256((const __m256i*)(v + j));
            int msk = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(x, tv)));
            while (msk) {
                out[nc++] = j + __builtin_ctz(msk);
                msk &= msk - 1;
            }
        }
        for (; j < n; j++)
            if (v[j] >= t) out[nc++] = j;
        return nc;
    }

    /* vpermd indexes moving the 64-bit lanes selected by a 4-bit mask to the front, in
       order (the rest is don't-care), and the popcount of each mask */
    static int32_t wall_perm[16][8];
    static const unsigned char wall_pop4[16] = {0,1,1,2,1,2,2,3,1,2,2,3,2,3,3,4};
    static void wall_perm_init(void) {
        for (int m = 0; m < 16; m++) {
            int o = 0;
            for (int i = 0; i < 4; i++)
                if (m >> i & 1) {
                    wall_perm[m][2 * o] = 2 * i;
                    wall_perm[m][2 * o + 1] = 2 * i + 1;
                    o++;
                }
            for (; o < 4; o++) {
                wall_perm[m][2 * o] = 0;
                wall_perm[m][2 * o + 1] = 1;
            }
        }
    }

    /* The k-th smallest (0-based) of src[0:n] (unsigned; src is not written). Quickselect
       whose partition is one out-of-place AVX2 pass: the values < p are compacted into
       one buffer and those > p into another (lane compaction by vpermd and a 16-entry
       table), values == p are dropped (the answer when k falls among them, so flat books
       finish in one pass). The three buffers t[] rotate; each holds n + 4 values (the
       compacting stores write 4 lanes). Pivot: median of 3, of 9 above 64 values. */
    #define WALL_VSMALL 16
    __attribute__((target("avx2")))
    static uint64_t wall_select_avx2(const uint64_t* src, Py_ssize_t n, Py_ssize_t k,
                                     uint64_t* t0, uint64_t* t1, uint64_t* t2) {
        const __m256i flip = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
        uint64_t* t[3] = {t0, t1, t2};
        int cur = -1;
        while (n > WALL_VSMALL) {
            Py_ssize_t m = n >> 1, e;
            uint64_t p;
            if (n > 64) {
                e = n >> 3;
                p = wall_med3u(wall_med3u(src[0], src[e], src[2 * e]),
                               wall_med3u(src[m - e], src[m], src[m + e]),
                               wall_med3u(src[n - 1 - 2 * e], src[n - 1 - e], src[n - 1]));
            } else {
                p = wall_med3u(src[0], src[m], src[n - 1]);
            }
            int il = cur < 0 ? 0 : (cur + 1) % 3, ig = cur < 0 ? 1 : (cur + 2) % 3;
            uint64_t *lo = t[il], *hi = t[ig];
            /* unsigned order through signed compares: flip the top bit of both sides */
            __m256i pv = _mm256_xor_si256(_mm256_set1_epi64x((long long)p), flip);
            Py_ssize_t nl = 0, ng = 0, j = 0;
            for (; j + 4 <= n; j += 4) {
                __m256i x = _mm256_loadu_si256((const __m256i*)(src + j));
                __m256i xs = _mm256_xor_si256(x, flip);
                int ml = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(pv, xs)));
                int mg = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(xs, pv)));
                __m256i pl = _mm256_loadu_si256((const __m256i*)wall_perm[ml]);
                __m256i pg = _mm256_loadu_si256((const __m256i*)wall_perm[mg]);
                _mm256_storeu_si256((__m256i*)(lo + nl), _mm256_permutevar8x32_epi32(x, pl));
                _mm256_storeu_si256((__m256i*)(hi + ng), _mm256_permutevar8x32_epi32(x, pg));
                nl += wall_pop4[ml];
                ng += wall_pop4[mg];
            }
            for (; j < n; j++) {
                uint64_t x = src[j];
                lo[nl] = x;
                hi[ng] = x;
                nl += x < p;
                ng += x > p;
            }
            if (k < nl) {
                cur = il; src = lo; n = nl;
            } else if (k >= n - ng) {
                k -= n - ng;
                cur = ig; src = hi; n = ng;
            } else {
                return p;
            }
        }
        uint64_t small[WALL_VSMALL];
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t x = src[i];
            Py_ssize_t j = i;
            while (j > 0 && small[j - 1] > x) {
                small[j] = small[j - 1];
                j--;
            }
            small[j] = x;
        }
        return small[k];
    }
    #else
    #define WALL_X86 0
    static void wall_perm_init(void) {}
    static uint64_t wall_select_avx2(const uint64_t* src, Py_ssize_t n, Py_ssize_t k,
                                     uint64_t* t0, uint64_t* t1, uint64_t* t2) {
        return 0;  /* never called: wall_use_avx2 stays 0 */
    }
    #endif

    static int wall_use_avx2 = 0;

    /* on = 1: the AVX2 loops if the CPU has AVX2; on = 0: the portable ones */
    static int wall_set_avx2(int on) {
    #if WALL_X86
        wall_perm_init();
        __builtin_cpu_init();
        wall_use_avx2 = on && __builtin_cpu_supports("avx2") ? 1 : 0;
    #endif
        return wall_use_avx2;
    }

    #if WALL_X86
    #define WALL_DISPATCH(name, args) \
        (wall_use_avx2 ? name##_avx2 args : name##_base args)
    #else
    #define WALL_DISPATCH(name, args) (name##_base args)
    #endif

    static inline void wall_counts(const int64_t* v, Py_ssize_t n, int64_t h, int64_t d,
                                   wall_stats* st) {
        WALL_DISPATCH(wall_counts, (v, n, h, d, st));
    }
    static inline void wall_nearest(const int64_t* v, Py_ssize_t n, int dev, int64_t m,
                                    int64_t h, int64_t* above, int64_t* below) {
        WALL_DISPATCH(wall_nearest, (v, n, dev, m, h, above, below));
    }
    static inline void wall_rank(const int64_t* v, Py_ssize_t n, int dev, int64_t m,
                                 int64_t h, int64_t* plt, int64_t* ple) {
        WALL_DISPATCH(wall_rank, (v, n, dev, m, h, plt, ple));
    }
    static inline void wall_devs(const int64_t* v, Py_ssize_t n, int64_t m, int64_t* out) {
        WALL_DISPATCH(wall_devs, (v, n, m, out));
    }
    static inline Py_ssize_t wall_collect(const int64_t* v, Py_ssize_t n, int64_t t,
                                          Py_ssize_t* out) {
        return WALL_DISPATCH(wall_collect, (v, n, t, out));
    }
    """
    ctypedef struct wall_stats:
        int64_t lt, le, ltd, led
        uint64_t slo, shi
        int64_t vmax
    double wall_depth_double(uint64_t hi, uint64_t lo) noexcept nogil
    int wall_set_avx2(int on) noexcept nogil
    int wall_use_avx2
    void wall_counts(const int64_t* v, Py_ssize_t n, int64_t h, int64_t d,
                     wall_stats* st) noexcept nogil
    void wall_nearest(const int64_t* v, Py_ssize_t n, int dev, int64_t m, int64_t h,
                      int64_t* above, int64_t* below) noexcept nogil
    void wall_rank(const int64_t* v, Py_ssize_t n, int dev, int64_t m, int64_t h,
                   int64_t* plt, int64_t* ple) noexcept nogil
    void wall_devs(const int64_t* v, Py_ssize_t n, int64_t m, int64_t* out) noexcept nogil
    Py_ssize_t wall_collect(const int64_t* v, Py_ssize_t n, int64_t t,
                            Py_ssize_t* out) noexcept nogil
    uint64_t wall_select_avx2(const uint64_t* src, Py_ssize_t n, Py_ssize_t k,
                              uint64_t* t0, uint64_t* t1, uint64_t* t2) noexcept nogil
    uint64_t wall_med3u(uint64_t a, uint64_t b, uint64_t c) noexcept nogil

wall_set_avx2(1)


def _use_avx2(bint on) -> bool:
    """Run the band passes with their AVX2 loops (``on``, if the CPU has AVX2) or with the
    portable ones; returns whether AVX2 is in use. For tests and benchmarks; process-wide,
    do not call while another thread scans."""
    return bool(wall_set_avx2(on))

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
    _STEPS = 3      # distinct values stepped through from a hint before that


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
            p = wall_med3u(wall_med3u(a[lo], a[lo + e], a[lo + 2 * e]),
                           wall_med3u(a[m - e], a[m], a[m + e]),
                           wall_med3u(a[hi - 1 - 2 * e], a[hi - 1 - e], a[hi - 1]))
        else:
            p = wall_med3u(a[lo], a[m], a[hi - 1])
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

cdef inline Py_ssize_t _band_floor(const BookSide* s, double key_lim) noexcept nogil:
    """First slot whose key, as a double, is ``>= key_lim`` (``s.n`` if none).

    The band cut is the same double comparison the rule states, so bisecting on it
    (keys ascend, the conversion is monotone) finds exactly where the band ends.
    """
    cdef Py_ssize_t lo = 0, hi = s.n, m
    while lo < hi:
        m = (lo + hi) >> 1
        if <double>s.keys[m] < key_lim:
            lo = m + 1
        else:
            hi = m
    return lo


cdef inline uint64_t _select_near(const int64_t* v, Py_ssize_t n, bint dev, int64_t m,
                                  WallDetector det, Py_ssize_t k, int64_t h, int64_t lt,
                                  int64_t le) noexcept nogil:
    """``k``-th smallest of ``w = v`` (``dev`` false) or ``w = |v - m|`` (``dev`` true).

    ``lt`` / ``le`` count the ``w`` below / at most the hint ``h``. Exact whatever the
    hint: ``h`` itself when its rank range holds ``k``; else up to ``_STEPS`` times the
    nearest distinct ``w`` towards rank ``k`` (one min/max pass: the answer if it is at
    the next rank, else a counting pass gives its rank range); past that ``w`` is written
    to ``det.sel`` (unless ``dev`` is false: then ``v`` is read as it is) and a selection
    finishes: with AVX2 the vectorized one (through ``det.sel``/``sel2``/``sel3``), else a
    tracking pass within ``_NEAR`` ranks or quickselect on a copy in ``det.sel``.
    """
    cdef int64_t above, below
    cdef int step, steps
    cdef const uint64_t* src = <const uint64_t*>v
    if lt <= k < le:
        return <uint64_t>h
    # a few rank steps from the hint: next distinct value, its rank counts, again (each
    # step moves at least one rank, so only when k is that close); the portable loops
    # only take the first (two scalar passes per step cost more than one tracking pass)
    steps = _STEPS if wall_use_avx2 else 1
    for step in range(steps if lt - 1 - k < steps and k - le < steps else 0):
        wall_nearest(v, n, dev, m, h, &above, &below)
        if k == le:
            return <uint64_t>above
        if k == lt - 1:
            return <uint64_t>below
        h = above if k >= le else below
        wall_rank(v, n, dev, m, h, &lt, &le)
        if lt <= k < le:
            return <uint64_t>h
    if dev:
        wall_devs(v, n, m, <int64_t*>det.sel)
        src = det.sel
    if wall_use_avx2:
        # a vectorized selection costs less than a tracking pass (a branchy insertion per
        # value); its first pass may compact into det.sel while reading it (never ahead)
        return wall_select_avx2(src, n, k, det.sel, det.sel2, det.sel3)
    if k < lt and lt - 1 - k < _NEAR:
        return _kth_below(src, n, <uint64_t>h, lt - 1 - k)
    if k >= le and k - le < _NEAR:
        return _kth_above(src, n, <uint64_t>h, k - le)
    if not dev:
        memcpy(det.sel, v, n * sizeof(int64_t))
    return wall_select(det.sel, n, k)


cdef inline Py_ssize_t _scan_side(WallDetector self, OrderBook book, int side, double mid,
                                  WallRec* out) noexcept nogil:
    """Walls of one side into ``out`` (best level first); returns how many.

    The band is read in place when the side has no tombstone (worst level first), else
    its live sizes are first compacted into ``vals`` (best first, branch-free). One
    counting pass then takes the depth, the largest size and the rank counts of ``hm``
    (the previous median) and of ``hd`` (the previous MAD) among the deviations from
    ``hm``. On a stream the median and MAD mostly stay or move to a neighbouring rank:
    a hint whose rank range holds the target is the answer, a neighbour costs one
    min/max pass, anything else a tracking pass or a selection on a copy. A moved
    median needs a second counting pass for the MAD. The candidates (sizes at or above
    the threshold) come from one compare pass.
    """
    cdef const BookSide* s = &book.sides[side]
    cdef const int64_t* sizes = s.sizes
    cdef Py_ssize_t i = s.n - 1, n = 0, nc, j, imin = 0, base = 0, lvl, slot
    cdef Py_ssize_t cap = self.cfg.band_levels
    cdef const int64_t* v
    cdef int64_t* vals = <int64_t*>self.vals
    cdef Py_ssize_t* cand = self.cand
    cdef int64_t x, hm = <int64_t>self.med_hint[side], hd = <int64_t>self.mad_hint[side]
    cdef uint64_t med, mad, ithr
    cdef double key_lim, thr, depth_d, med_d, mad_thr
    cdef WallRec* w
    cdef wall_stats st
    cdef Py_ssize_t k
    cdef bint direct = s.dead == 0
    if self.cfg.band_bps > 0.0:
        # key = price (bid) / -price (ask); "beyond the band" is key < key_lim on both sides
        if side == BOOK_BID:
            key_lim = mid * (1.0 - self.cfg.band_bps * 1e-4)
        else:
            key_lim = -(mid * (1.0 + self.cfg.band_bps * 1e-4))
        imin = _band_floor(s, key_lim)
    if direct:
        # no tombstone: the band is the slots [base, s.n), read in place, worst first
        base = s.n - cap if s.n - cap > imin else imin
        n = s.n - base
        v = sizes + base
    else:
        # live sizes of the band, best first, and their slots (a tombstone's slot is
        # overwritten by the next live level)
        while i >= imin and n < cap:
            x = sizes[i]
            vals[n] = x
            self.slots[n] = i
            n += x != 0
            i -= 1
        v = vals
    if n < self.cfg.min_levels:
        return 0
    wall_counts(v, n, hm, hd, &st)
    k = (n - 1) >> 1
    med = _select_near(v, n, False, 0, self, k, hm, st.lt, st.le)
    self.med_hint[side] = med
    med_d = <double>med
    depth_d = wall_depth_double(st.shi, st.slo)
    # smallest qualifying size: ceil(max(k * median, min_share * depth)), above the median
    thr = self.cfg.k * med_d
    if self.cfg.min_share * depth_d > thr:
        thr = self.cfg.min_share * depth_d
    ithr = <uint64_t>ceil(thr) if thr < 1.8446744073709552e19 else UINT64_MAX
    if ithr <= med:
        ithr = med + 1
    if <uint64_t>st.vmax < ithr:     # no candidate: no MAD needed
        return 0
    nc = wall_collect(v, n, <int64_t>ithr, cand)   # ithr <= vmax < 2**63
    if <int64_t>med != hm:         # the MAD hint's counts around the new median
        wall_rank(v, n, True, <int64_t>med, hd, &st.ltd, &st.led)
    mad = _select_near(v, n, True, <int64_t>med, self, k, hd, st.ltd, st.led)
    self.mad_hint[side] = mad
    mad_thr = self.cfg.k_mad * <double>mad
    i = 0
    for j in range(nc):
        # best level first: in place the band runs worst first
        lvl = cand[nc - 1 - j] if direct else cand[j]
        x = v[lvl]
        if <double>(<uint64_t>x - med) < mad_thr:
            continue
        if direct:
            slot = base + lvl
            lvl = n - 1 - lvl
        else:
            slot = self.slots[lvl]
        w = &out[i]
        i += 1
        w.price = -s.keys[slot] if side == BOOK_ASK else s.keys[slot]
        w.size = x
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
        w.level = <int32_t>lvl
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
        # + 4: the AVX2 selection's compacting stores write whole 4-lane vectors
        self.sel = <uint64_t*>PyMem_Malloc((m + 4) * sizeof(uint64_t))
        self.sel2 = <uint64_t*>PyMem_Malloc((m + 4) * sizeof(uint64_t))
        self.sel3 = <uint64_t*>PyMem_Malloc((m + 4) * sizeof(uint64_t))
        self.slots = <Py_ssize_t*>PyMem_Malloc(m * sizeof(Py_ssize_t))
        self.cand = <Py_ssize_t*>PyMem_Malloc(m * sizeof(Py_ssize_t))
        self.cur = <WallRec*>PyMem_Malloc(self.cap_walls * sizeof(WallRec))
        self.nxt = <WallRec*>PyMem_Malloc(self.cap_walls * sizeof(WallRec))
        self.ev = <WallEvent*>PyMem_Malloc(event_capacity * sizeof(WallEvent))
        if (self.vals == NULL or self.sel == NULL or self.sel2 == NULL or self.sel3 == NULL
                or self.slots == NULL or self.cand == NULL
                or self.cur == NULL or self.nxt == NULL or self.ev == NULL):
            raise MemoryError("cannot allocate the wall detector")

    def __init__(self, WallParams params=None, Py_ssize_t event_capacity=4096):
        pass  # everything happens in __cinit__ (the C buffers must exist before any call)

    def __dealloc__(self):
        PyMem_Free(self.vals)
        PyMem_Free(self.sel)
        PyMem_Free(self.sel2)
        PyMem_Free(self.sel3)
        PyMem_Free(self.slots)
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

    The AVX2 routine where the CPU has it and ``_use_avx2`` left it on, else the portable
    one. Exposed for tests and benchmarks; ``values`` is not modified (copies are used).

    Raises
    ------
    ValueError
        ``k`` outside ``0..len(values) - 1``.
    """
    cdef Py_ssize_t n = values.shape[0]
    if k < 0 or k >= n:
        raise ValueError(f"k must be within 0..{n - 1}, was {k}")
    cdef uint64_t[::1] tmp = np.array(values, dtype=np.uint64)
    cdef uint64_t[::1] t = np.empty(3 * (n + 4), dtype=np.uint64)
    cdef uint64_t r
    with nogil:
        if wall_use_avx2:   # the detector's choice: AVX2 where the CPU has it
            r = wall_select_avx2(&tmp[0], n, k, &t[0], &t[n + 4], &t[2 * (n + 4)])
        else:
            r = wall_select(&tmp[0], n, k)
    return r
