# cython: language_level=3
"""Minimal, allocation-free JSON scanning over a byte buffer (inline C helpers).

The wire parsers know the shape of every venue message, so instead of building a DOM they
walk the bytes once: iterate an object's members (key span + value span), iterate an
array's elements, read integers and decimal strings in place. Strings are skipped with
escape handling and nesting is tracked, so a key inside a nested object never matches
at the wrong level. Every function returns -1 on malformed input; the caller reports the
byte offset.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memchr, memcmp


cdef struct Span:
    Py_ssize_t start     # first byte (for strings: after the opening quote)
    Py_ssize_t end       # one past the last byte (for strings: the closing quote)


cdef inline Py_ssize_t skip_ws(const unsigned char* p, Py_ssize_t i,
                               Py_ssize_t n) noexcept nogil:
    while i < n and (p[i] == 32 or p[i] == 10 or p[i] == 13 or p[i] == 9):
        i += 1
    return i


cdef inline Py_ssize_t skip_string(const unsigned char* p, Py_ssize_t i,
                                   Py_ssize_t n) noexcept nogil:
    """``p[i]`` is the opening quote; return the index after the closing quote, or -1.

    Finds the next quote with ``memchr`` and treats it as closing unless an odd number of
    backslashes precedes it.
    """
    cdef const unsigned char* q
    cdef Py_ssize_t j, k, stop
    i += 1
    # short strings (numbers, symbols) end within a few bytes: scan them inline
    stop = i + 24 if i + 24 < n else n
    while i < stop:
        if p[i] == 34:
            return i + 1
        if p[i] == 92:
            i += 2
        else:
            i += 1
    while i < n:
        q = <const unsigned char*>memchr(p + i, 34, <size_t>(n - i))
        if q == NULL:
            return -1
        j = q - p
        k = j - 1
        while k >= i and p[k] == 92:
            k -= 1
        if ((j - 1 - k) & 1) == 0:
            return j + 1
        i = j + 1
    return -1


cdef inline Py_ssize_t skip_value(const unsigned char* p, Py_ssize_t i,
                                  Py_ssize_t n) noexcept nogil:
    """Skip one JSON value starting at ``p[i]``; return the index after it, or -1."""
    cdef int depth = 0
    cdef unsigned char c
    if i >= n:
        return -1
    c = p[i]
    if c == 34:
        return skip_string(p, i, n)
    if c != 123 and c != 91:     # scalar: number / true / false / null
        while i < n:
            c = p[i]
            if c == 44 or c == 125 or c == 93 or c == 32 or c == 10 or c == 13 or c == 9:
                break
            if c == 34 or c == 123 or c == 91:
                return -1
            i += 1
        return i
    while i < n:
        c = p[i]
        if c == 34:
            i = skip_string(p, i, n)
            if i < 0:
                return -1
            continue
        if c == 123 or c == 91:
            depth += 1
        elif c == 125 or c == 93:
            depth -= 1
            if depth == 0:
                return i + 1
            if depth < 0:
                return -1
        i += 1
    return -1


cdef struct Cursor:
    Py_ssize_t pos       # next byte to look at
    Py_ssize_t end       # end of the container's bytes
    bint first           # no member/element read yet


cdef inline int open_container(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                               unsigned char opener, Cursor* cur) noexcept nogil:
    """Start iterating the object (``opener`` '{') or array ('[') at ``p[i]``; 0 or -1."""
    i = skip_ws(p, i, n)
    if i >= n or p[i] != opener:
        return -1
    cur.pos = i + 1
    cur.end = n
    cur.first = True
    return 0


cdef inline int _advance(const unsigned char* p, Cursor* cur,
                         unsigned char closer) noexcept nogil:
    """Move past a separator; 1 = another item follows, 0 = container closed, -1 = bad."""
    cdef Py_ssize_t i = skip_ws(p, cur.pos, cur.end)
    if i >= cur.end:
        return -1
    if p[i] == closer:
        cur.pos = i + 1
        return 0
    if not cur.first:
        if p[i] != 44:           # ','
            return -1
        i = skip_ws(p, i + 1, cur.end)
        if i >= cur.end:
            return -1
    cur.first = False
    cur.pos = i
    return 1


cdef inline int next_key(const unsigned char* p, Cursor* cur, Span* key,
                         Py_ssize_t* value_start) noexcept nogil:
    """Next key of an object, stopping at its value (not skipped): 1, 0 closed, -1 bad.

    The caller either stops iterating or calls :func:`skip_member_value` before the next
    call.
    """
    cdef int r = _advance(p, cur, 125)
    cdef Py_ssize_t i, j
    if r != 1:
        return r
    i = cur.pos
    if p[i] != 34:
        return -1
    j = skip_string(p, i, cur.end)
    if j < 0:
        return -1
    key.start = i + 1
    key.end = j - 1
    i = skip_ws(p, j, cur.end)
    if i >= cur.end or p[i] != 58:
        return -1
    i = skip_ws(p, i + 1, cur.end)
    value_start[0] = i
    cur.pos = i
    return 1


cdef inline int skip_member_value(const unsigned char* p, Cursor* cur) noexcept nogil:
    """Skip the value :func:`next_key` stopped at; 0 or -1."""
    cdef Py_ssize_t j = skip_value(p, cur.pos, cur.end)
    if j < 0:
        return -1
    cur.pos = j
    return 0


cdef inline int next_member(const unsigned char* p, Cursor* cur, Span* key,
                            Span* value) noexcept nogil:
    """Next ``"key": value`` of an object: 1 found, 0 object closed, -1 malformed."""
    cdef Py_ssize_t vstart
    cdef int r = next_key(p, cur, key, &vstart)
    if r != 1:
        return r
    if skip_member_value(p, cur) != 0:
        return -1
    value.start = vstart
    value.end = cur.pos
    return 1


cdef inline int next_element(const unsigned char* p, Cursor* cur,
                             Span* value) noexcept nogil:
    """Next element of an array: 1 found, 0 array closed, -1 malformed."""
    cdef int r = _advance(p, cur, 93)
    cdef Py_ssize_t j
    if r != 1:
        return r
    j = skip_value(p, cur.pos, cur.end)
    if j < 0:
        return -1
    value.start = cur.pos
    value.end = j
    cur.pos = j
    return 1


cdef inline Py_ssize_t skip_levels(const unsigned char* p, Py_ssize_t i,
                                   Py_ssize_t n) noexcept nogil:
    """Skip a book-level array ``[[...],[...]]`` fast; -1 if it is not of that shape.

    Each inner array holds plain strings or numbers, so it ends at the next ``]`` (found
    with ``memchr``). Anything unexpected returns -1 and the caller falls back to
    :func:`skip_value`; the levels are fully validated when they are applied.
    """
    cdef const unsigned char* q
    if i >= n or p[i] != 91:
        return -1
    i = skip_ws(p, i + 1, n)
    if i < n and p[i] == 93:
        return i + 1
    while True:
        if i >= n or p[i] != 91:
            return -1
        q = <const unsigned char*>memchr(p + i + 1, 93, <size_t>(n - i - 1))
        if q == NULL:
            return -1
        i = skip_ws(p, (q - p) + 1, n)
        if i >= n:
            return -1
        if p[i] == 93:
            return i + 1
        if p[i] != 44:
            return -1
        i = skip_ws(p, i + 1, n)


cdef inline bint key_is(const unsigned char* p, Span key, const char* name,
                        Py_ssize_t length) noexcept nogil:
    return key.end - key.start == length and memcmp(p + key.start, name, length) == 0


cdef inline bint is_string(const unsigned char* p, Span v) noexcept nogil:
    return v.end - v.start >= 2 and p[v.start] == 34


cdef inline Span string_body(Span v) noexcept nogil:
    """The characters of a string value without its quotes (no unescaping)."""
    cdef Span s
    s.start = v.start + 1
    s.end = v.end - 1
    return s


cdef inline int parse_int(const unsigned char* p, Span v, int64_t* out) noexcept nogil:
    """Integer value, bare (``123``) or quoted (``"123"``); 0 ok, -1 not an int64."""
    cdef Py_ssize_t i = v.start
    cdef Py_ssize_t e = v.end
    cdef bint neg = False
    cdef uint64_t acc = 0
    cdef uint64_t d
    if e - i >= 2 and p[i] == 34 and p[e - 1] == 34:
        i += 1
        e -= 1
    if i < e and p[i] == 45:
        neg = True
        i += 1
    if i >= e:
        return -1
    if e - i <= 18:                 # cannot overflow: no per-digit check
        while i < e:
            d = <uint64_t>p[i] - 48
            if d > 9:
                return -1
            acc = acc * 10 + d
            i += 1
    else:
        while i < e:
            if p[i] < 48 or p[i] > 57:
                return -1
            d = p[i] - 48
            if acc > (<uint64_t>9223372036854775807ULL - d) // 10:
                return -1
            acc = acc * 10 + d
            i += 1
    out[0] = -<int64_t>acc if neg else <int64_t>acc
    return 0


cdef inline bint span_eq(const unsigned char* p, Span a, const unsigned char* q,
                         Span b) noexcept nogil:
    return a.end - a.start == b.end - b.start and \
        memcmp(p + a.start, q + b.start, a.end - a.start) == 0
