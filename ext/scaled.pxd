# cython: language_level=3
"""Exact decimal text <-> scaled int64: the C core, cimported by the wire parsers.

``parse_scaled(b"64250.10", 2)`` gives ``6425010`` without going through float or
Decimal. A value with more significant fractional digits than ``scale`` is rejected
(``SCALED_TOO_PRECISE``), never rounded.
"""

from libc.stdint cimport int64_t, uint64_t

cdef enum:
    SCALED_OK = 0
    SCALED_EMPTY = 1
    SCALED_BAD_CHAR = 2
    SCALED_TOO_PRECISE = 3
    SCALED_OVERFLOW = 4
    SCALED_BAD_SCALE = 5
    SCALED_MAX_SCALE = 18

cdef extern from *:
    """
    #define SLIP_I64_MAX_DIV10 922337203685477580ULL
    static const unsigned long long SLIP_POW10[19] = {
        1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
        100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
        10000000000000ULL, 100000000000000ULL, 1000000000000000ULL,
        10000000000000000ULL, 100000000000000000ULL, 1000000000000000000ULL};
    """
    const uint64_t SLIP_I64_MAX_DIV10
    const uint64_t SLIP_POW10[19]


cdef extern from *:
    """
    #include <string.h>
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define SLIP_SWAR 1
    #else
    #define SLIP_SWAR 0
    #endif
    #if SLIP_SWAR
    /* Byte k of the result is zero iff byte k of w is an ASCII digit ('0'..'9': high
       nibble 3, and still 3 after adding 6). A byte >= 0xFA carries into the next one,
       but it is itself a non-digit, so the first non-digit byte is always found right. */
    static inline uint64_t slip_nondigits8(uint64_t w) {
        return ((w & 0xF0F0F0F0F0F0F0F0ULL)
                | (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4))
               ^ 0x3333333333333333ULL;
    }
    /* The value of 8 digit values (byte k = digit k, the first digit most significant). */
    static inline uint64_t slip_value8(uint64_t v) {
        v = (v * 10u + (v >> 8)) & 0x00FF00FF00FF00FFULL;
        v = (v * 100u + (v >> 16)) & 0x0000FFFF0000FFFFULL;
        return (v * 10000u + (v >> 32)) & 0xFFFFFFFFULL;
    }
    /* slip_quoted_scaled without a loop for the venues' usual shape: 1-7 integer digits,
       optionally a point and 0-8 fractional digits, the closing quote, scale <= 8, and 9
       readable bytes past the point (17 in all). Each part is one 8-byte load whose first
       non-digit comes from a mask; the integer digits and the fractional digits kept
       (at most `scale`) are shifted next to each other at the top of one word, which
       three multiplies turn into the value (two words when they are more than 8 digits).
       Returns the index after the closing quote, or 0 when anything is unusual: the
       digit loop then decides, so both accept and reject exactly the same texts. The
       gain is on texts of varying length (OKX), whose loop exits mispredict. */
    static inline Py_ssize_t slip_quoted_scaled8(const unsigned char* p, Py_ssize_t i,
                                                 Py_ssize_t n, int scale, int64_t* out) {
        uint64_t w, m, xi, x, v, beyond;
        unsigned c;
        int nd, fd, k;
        Py_ssize_t j;
        if (n - i < 8 || (unsigned)scale > 8u)
            return 0;
        memcpy(&w, p + i, 8);
        m = slip_nondigits8(w);
        if (m == 0)                             /* 8 or more integer digits */
            return 0;
        nd = __builtin_ctzll(m) >> 3;           /* integer digits before the non-digit */
        if (nd == 0)
            return 0;
        c = (unsigned)(w >> (8 * nd)) & 0xFFu;  /* the non-digit */
        /* it may borrow from the bytes above it when '0' is subtracted: all shifted out */
        xi = (w - 0x3030303030303030ULL) << (8 * (8 - nd));
        if (c == 34) {                          /* '"': an integer */
            *out = (int64_t)(slip_value8(xi) * SLIP_POW10[scale]);
            return i + nd + 1;
        }
        if (c != 46)                            /* not '.' */
            return 0;
        j = i + nd + 1;
        if (n - j < 9)
            return 0;
        memcpy(&w, p + j, 8);
        m = slip_nondigits8(w);
        fd = m ? __builtin_ctzll(m) >> 3 : 8;
        if (p[j + fd] != 34)                    /* more than 8 digits, exponent, ... */
            return 0;
        x = w - 0x3030303030303030ULL;          /* digit values in bytes 0 .. fd-1 */
        k = fd < scale ? fd : scale;            /* fractional digits kept */
        if (fd > k) {                           /* digits past the scale must be zeros */
            beyond = x >> (8 * k);
            if (fd - k < 8)
                beyond &= (1ULL << (8 * (fd - k))) - 1u;
            if (beyond)
                return 0;
        }
        if (k == 0)
            v = slip_value8(xi);
        else if (nd + k <= 8)                   /* one word: integer then kept fraction */
            v = slip_value8((xi >> (8 * k)) | (x << (8 * (8 - k))));
        else
            v = slip_value8(xi) * SLIP_POW10[k] + slip_value8(x << (8 * (8 - k)));
        /* nd <= 7 and scale <= 8: the value is below 10**15 */
        *out = (int64_t)(v * SLIP_POW10[scale - k]);
        return j + fd + 1;
    }
    #endif
    /* Wire fast path: the body of a JSON string at p[i] (just after its opening quote),
       of the plain form digits[.digits] with at most 18 digits kept, as the exact integer
       value * 10**scale (0 <= scale <= 18). Fractional digits beyond `scale` must be
       zeros (Binance pads to 8 decimals). Returns the index just after the closing quote,
       or -1 when the text is anything else (sign, exponent, escape, too many digits, a
       non-zero digit beyond the scale, overflow, no closing quote before n): the caller
       then takes the general path, which handles or reports it. Never reads p[n]. */
    #if defined(__GNUC__)
    __attribute__((always_inline))
    #endif
    static inline Py_ssize_t slip_quoted_scaled_loop(const unsigned char* p, Py_ssize_t i,
                                                     Py_ssize_t n, int scale, int64_t* out) {
        uint64_t acc = 0;
        unsigned d;
        Py_ssize_t j = i, nd, frac = 0, stop;
        while (j < n && (d = (unsigned)p[j] - 48u) <= 9u) {
            acc = acc * 10u + d;
            j++;
        }
        nd = j - i;
        if (nd == 0 || nd > 18 || j >= n)
            return -1;
        if (p[j] == 46) {                       /* '.' */
            Py_ssize_t f0 = ++j;
            stop = f0 + scale < n ? f0 + scale : n;
    #if SLIP_SWAR
            while (stop - j >= 8) {             /* eight digits at a time */
                uint64_t w;
                memcpy(&w, p + j, 8);
                if (slip_nondigits8(w) != 0)
                    break;
                acc = acc * 100000000u + slip_value8(w - 0x3030303030303030ULL);
                j += 8;
            }
    #endif
            while (j < stop && (d = (unsigned)p[j] - 48u) <= 9u) {
                acc = acc * 10u + d;
                j++;
            }
            frac = j - f0;
            if (nd + frac > 18)
                return -1;
    #if SLIP_SWAR
            while (n - j >= 8) {                /* zeros beyond the scale, 8 at a time */
                uint64_t w;
                memcpy(&w, p + j, 8);
                w ^= 0x3030303030303030ULL;
                if (w) {
                    j += __builtin_ctzll(w) >> 3;
                    break;
                }
                j += 8;
            }
    #endif
            while (j < n && p[j] == 48)
                j++;
            if (j >= n)
                return -1;
        }
        if (p[j] != 34)                         /* '"' */
            return -1;
        if (frac < scale) {
            /* acc < 10**(nd + frac): the product stays below 10**18 < 2**63 when
               nd + scale <= 18; larger values take the general path */
            if (nd + scale > 18)
                return -1;
            acc *= SLIP_POW10[scale - frac];
        }
        *out = (int64_t)acc;
        return j + 1;
    }
    #if SLIP_SWAR
    /* The digit loop out of line: with the block parser in front it only sees the rare
       texts the blocks leave, and keeping it out of the callers' loops keeps them small
       (inlined at every call site, it made Binance's frames ~5 % slower). */
    __attribute__((noinline, cold))
    static Py_ssize_t slip_quoted_scaled_rest(const unsigned char* p, Py_ssize_t i,
                                              Py_ssize_t n, int scale, int64_t* out) {
        return slip_quoted_scaled_loop(p, i, n, scale, out);
    }
    #endif
    /* The wire fast path: slip_quoted_scaled8, then the digit loop for what it leaves. */
    #if defined(__GNUC__)
    __attribute__((always_inline))
    #endif
    static inline Py_ssize_t slip_quoted_scaled(const unsigned char* p, Py_ssize_t i,
                                                Py_ssize_t n, int scale, int64_t* out) {
    #if SLIP_SWAR
        Py_ssize_t j = slip_quoted_scaled8(p, i, n, scale, out);
        if (__builtin_expect(j > 0, 1))
            return j;
        return slip_quoted_scaled_rest(p, i, n, scale, out);
    #else
        return slip_quoted_scaled_loop(p, i, n, scale, out);
    #endif
    }
    """
    Py_ssize_t slip_quoted_scaled(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                                  int scale, int64_t* out) noexcept nogil
    Py_ssize_t slip_quoted_scaled_loop(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                                       int scale, int64_t* out) noexcept nogil


cdef inline int decompose_decimal(const unsigned char* p, Py_ssize_t n, uint64_t* mant,
                                  int* expo10, bint* negative) noexcept nogil:
    """Split ``[+-]digits[.digits][(e|E)[+-]digits]`` into ``mant * 10**expo10``.

    ``mant`` has no trailing zero digit (or is 0); it must fit in int64.
    Returns a ``SCALED_*`` status.
    """
    cdef Py_ssize_t i = 0
    cdef bint seen_digit = False
    cdef bint in_frac = False
    cdef uint64_t acc = 0
    cdef uint64_t d
    cdef int frac = 0            # fractional digits folded into acc
    cdef int pending = 0         # zero digits after the last non-zero digit
    cdef int pending_frac = 0    # ... of which fractional
    cdef int e = 0
    cdef bint e_neg = False
    cdef unsigned char c

    negative[0] = False
    if n <= 0:
        return SCALED_EMPTY
    c = p[0]
    if c == 45:                  # '-'
        negative[0] = True
        i = 1
    elif c == 43:                # '+'
        i = 1
    while i < n:
        c = p[i]
        if c == 48:              # '0'
            seen_digit = True
            if acc == 0:
                if in_frac:
                    frac += 1
            else:
                pending += 1
                if in_frac:
                    pending_frac += 1
        elif 49 <= c <= 57:      # '1'..'9'
            seen_digit = True
            while pending > 0:
                if acc > SLIP_I64_MAX_DIV10:
                    return SCALED_OVERFLOW
                acc *= 10
                pending -= 1
            frac += pending_frac
            pending_frac = 0
            d = c - 48
            if acc > SLIP_I64_MAX_DIV10 or (acc == SLIP_I64_MAX_DIV10 and d > 7):
                return SCALED_OVERFLOW
            acc = acc * 10 + d
            if in_frac:
                frac += 1
        elif c == 46 and not in_frac:                # '.'
            in_frac = True
        elif (c == 101 or c == 69) and seen_digit:   # 'e' / 'E'
            i += 1
            if i < n and (p[i] == 45 or p[i] == 43):
                e_neg = p[i] == 45
                i += 1
            if i >= n:
                return SCALED_BAD_CHAR
            while i < n:
                c = p[i]
                if c < 48 or c > 57:
                    return SCALED_BAD_CHAR
                if e < 100000:
                    e = e * 10 + (c - 48)
                i += 1
            break
        else:
            return SCALED_BAD_CHAR
        i += 1
    if not seen_digit:
        return SCALED_BAD_CHAR
    mant[0] = acc
    if acc == 0:
        expo10[0] = 0
        return SCALED_OK
    expo10[0] = (pending - pending_frac) - frac + (-e if e_neg else e)
    return SCALED_OK


cdef inline int parse_scaled(const unsigned char* p, Py_ssize_t n, int scale,
                             int64_t* out) noexcept nogil:
    """Parse ``p[0:n]`` into the exact integer ``value * 10**scale``.

    Returns a ``SCALED_*`` status; ``out`` is written only on ``SCALED_OK``.

    Fast path for the wire's usual shape (``[-]digits[.digits]``, at most 18 digits, no
    exponent): one pass accumulating the digits, then one exact division or
    multiplication by a power of ten. Everything else goes through
    :func:`decompose_decimal`.
    """
    cdef uint64_t mant, acc = 0, acc_nz = 0, f
    cdef unsigned int d
    cdef int expo10, shift, digits = 0, frac = -1, frac_nz = 0
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef int st
    if scale < 0 or scale > SCALED_MAX_SCALE:
        return SCALED_BAD_SCALE
    if n > 0 and p[0] == 45:
        neg = True
        i = 1
    while i < n:
        d = <unsigned int>p[i] - 48
        if d <= 9:
            acc = acc * 10 + d
            digits += 1
            if frac < 0:
                acc_nz = acc                # integer digits always count
            else:
                frac += 1
                if d != 0:                  # value without trailing fractional zeros
                    acc_nz = acc
                    frac_nz = frac
        elif p[i] == 46 and frac < 0:
            frac = 0
        else:
            break
        i += 1
    if i == n and 0 < digits <= 18:
        # acc_nz * 10**-frac_nz is the value with trailing zeros dropped: no division
        if frac_nz > scale:
            return SCALED_TOO_PRECISE
        if frac_nz < scale:
            f = SLIP_POW10[scale - frac_nz]
            if acc_nz > <uint64_t>9223372036854775807ULL // f:
                return SCALED_OVERFLOW
            acc_nz = acc_nz * f
        out[0] = -<int64_t>acc_nz if neg else <int64_t>acc_nz
        return SCALED_OK
    # general path: exponents, signs, long digit strings, errors
    st = decompose_decimal(p, n, &mant, &expo10, &neg)
    if st != SCALED_OK:
        return st
    if mant == 0:
        out[0] = 0
        return SCALED_OK
    shift = scale + expo10
    if shift < 0:
        return SCALED_TOO_PRECISE
    if shift > 18:
        return SCALED_OVERFLOW
    while shift > 0:
        if mant > SLIP_I64_MAX_DIV10:
            return SCALED_OVERFLOW
        mant *= 10
        shift -= 1
    if mant > <uint64_t>9223372036854775807ULL:
        return SCALED_OVERFLOW
    out[0] = -<int64_t>mant if neg else <int64_t>mant
    return SCALED_OK


cdef inline int significant_decimals(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Fractional digits needed to hold ``p[0:n]`` exactly (0 for integers), -1 if invalid."""
    cdef uint64_t mant
    cdef int expo10
    cdef bint neg
    if decompose_decimal(p, n, &mant, &expo10, &neg) != SCALED_OK:
        return -1
    return -expo10 if expo10 < 0 else 0
