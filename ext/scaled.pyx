# cython: language_level=3
"""Exact conversion between decimal text and scaled int64 integers.

Exchanges send prices and sizes as decimal strings (``"64250.10"``). The book keeps them
as integers in units of ``10**-scale`` (``6425010`` at ``scale=2``). Conversion is exact:
a value needing more fractional digits than ``scale`` is an error, never a rounding.

The C core lives in ``scaled.pxd`` (``parse_scaled``) so the wire parsers inline it; the
functions here are its Python surface: a scalar ``to_scaled`` for slow paths and tests, and
the batch ``to_scaled_many`` that parses many fields of one buffer in a single call with
the GIL released.
"""

from libc.stdint cimport int64_t, uint8_t

from ext.scaled cimport (
    SCALED_BAD_CHAR,
    SCALED_BAD_SCALE,
    SCALED_EMPTY,
    SCALED_MAX_SCALE,
    SCALED_OK,
    SCALED_OVERFLOW,
    SCALED_TOO_PRECISE,
    parse_scaled,
    significant_decimals,
    slip_quoted_scaled,
    slip_quoted_scaled_loop,
)

MAX_SCALE = SCALED_MAX_SCALE

_REASONS = {
    SCALED_EMPTY: "empty value",
    SCALED_BAD_CHAR: "not a decimal number",
    SCALED_TOO_PRECISE: "more fractional digits than the scale allows",
    SCALED_OVERFLOW: "out of int64 range at this scale",
    SCALED_BAD_SCALE: f"scale must be within 0..{SCALED_MAX_SCALE}",
}


def _reason(int status) -> str:
    return _REASONS.get(status, f"status {status}")


cdef inline bytes _as_bytes(value):
    if isinstance(value, bytes):
        return <bytes>value
    if isinstance(value, str):
        return (<str>value).encode("ascii", "replace")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"expected str or bytes, got {type(value).__name__}")


def to_scaled(value, int scale) -> int:
    """Convert one decimal string to the exact integer ``value * 10**scale``.

    Parameters
    ----------
    value : str or bytes
        Decimal text such as ``"64250.10"``, ``"-0.5"`` or ``"1e-11"``.
    scale : int
        Number of decimal places of the integer unit, 0..18.

    Returns
    -------
    int
        The scaled integer.

    Raises
    ------
    ValueError
        If the text is not a decimal number, needs more than ``scale`` fractional digits,
        or does not fit in int64 at this scale. The message names the value.

    Examples
    --------
    >>> to_scaled("64250.10", 2)
    6425010
    """
    cdef bytes b = _as_bytes(value)
    cdef int64_t out = 0
    cdef int st = parse_scaled(<const unsigned char*>b, len(b), scale, &out)
    if st != SCALED_OK:
        raise ValueError(f"cannot scale {value!r} to {scale} decimals: {_reason(st)}")
    return out


def decimals_needed(value) -> int:
    """Fractional digits needed to hold ``value`` exactly (``"0.0100"`` -> 2, ``"5"`` -> 0).

    Parameters
    ----------
    value : str or bytes
        Decimal text.

    Returns
    -------
    int
        The smallest ``scale`` at which ``to_scaled(value, scale)`` is exact.

    Raises
    ------
    ValueError
        If ``value`` is not a decimal number.
    """
    cdef bytes b = _as_bytes(value)
    cdef int d = significant_decimals(<const unsigned char*>b, len(b))
    if d < 0:
        raise ValueError(f"not a decimal number: {value!r}")
    return d


def to_scaled_many(const uint8_t[::1] buf not None, const int64_t[::1] starts not None,
                   const int64_t[::1] ends not None, int scale,
                   int64_t[::1] out not None) -> int:
    """Parse many decimal fields of one buffer into ``out`` in one call (GIL released).

    Parameters
    ----------
    buf : numpy.ndarray of uint8 or bytes-like
        The text holding the fields.
    starts, ends : numpy.ndarray of int64
        Byte offsets ``[start, end)`` of each field in ``buf``.
    scale : int
        Decimal places of the integer unit, 0..18.
    out : numpy.ndarray of int64
        Receives the scaled values; at least ``len(starts)`` long.

    Returns
    -------
    int
        Number of values written (``len(starts)``).

    Raises
    ------
    ValueError
        On mismatched lengths, offsets outside ``buf``, a bad scale, or the first field that
        does not convert exactly (the message gives its index and byte offset).
    """
    cdef Py_ssize_t n = starts.shape[0]
    cdef Py_ssize_t size = buf.shape[0]
    cdef Py_ssize_t i, bad = -1
    cdef int st = SCALED_OK
    cdef int64_t s, e
    if ends.shape[0] != n:
        raise ValueError(f"ends has {ends.shape[0]} entries, starts has {n}")
    if out.shape[0] < n:
        raise ValueError(f"out has room for {out.shape[0]} values, {n} needed")
    if scale < 0 or scale > SCALED_MAX_SCALE:
        raise ValueError(f"scale must be within 0..{SCALED_MAX_SCALE}, was {scale}")
    for i in range(n):
        if starts[i] < 0 or ends[i] < starts[i] or ends[i] > size:
            raise ValueError(
                f"field {i} spans [{starts[i]}, {ends[i]}), outside a buffer of {size} bytes")
    if n == 0:
        return 0
    with nogil:
        for i in range(n):
            s = starts[i]
            e = ends[i]
            st = parse_scaled(&buf[0] + s, e - s, scale, &out[i])
            if st != SCALED_OK:
                bad = i
                break
    if bad >= 0:
        text = bytes(buf[starts[bad]:ends[bad]])
        raise ValueError(
            f"field {bad} at byte {starts[bad]} ({text!r}): {_reason(st)} at scale {scale}")
    return n


def format_scaled(long long value, int scale) -> str:
    """Format a scaled integer back to decimal text without exponent (exact inverse).

    Parameters
    ----------
    value : int
        The scaled integer.
    scale : int
        Its decimal places, 0..18.

    Returns
    -------
    str
        Shortest exact decimal text (``format_scaled(6425010, 2) == "64250.1"``).
    """
    if scale < 0 or scale > SCALED_MAX_SCALE:
        raise ValueError(f"scale must be within 0..{SCALED_MAX_SCALE}, was {scale}")
    sign = "-" if value < 0 else ""
    digits = str(-value if value < 0 else value)
    if scale == 0:
        return sign + digits
    digits = digits.rjust(scale + 1, "0")
    whole, frac = digits[:-scale], digits[-scale:].rstrip("0")
    return f"{sign}{whole}.{frac}" if frac else sign + whole


def quoted_scaled(const uint8_t[::1] buf not None, Py_ssize_t start, int scale,
                  bint loop_only=False):
    """The wire parsers' fast path on ``buf[start:]`` (the body of a JSON string; for tests).

    Parameters
    ----------
    buf : bytes-like
        The frame bytes; the parser never reads past ``len(buf)``.
    start : int
        Index just after the opening quote.
    scale : int
        Decimal places of the result, 0..18.
    loop_only : bool, default False
        Use the digit loop alone, without the 8-byte block parser in front of it.

    Returns
    -------
    tuple of (int, int) or None
        ``(value * 10**scale, index after the closing quote)``, or None when the text is
        not a plain ``digits[.digits]`` that fits (the parsers' general path takes it).
    """
    cdef int64_t v = 0
    cdef Py_ssize_t n = buf.shape[0], j
    if not 0 <= scale <= SCALED_MAX_SCALE:
        raise ValueError(f"scale must be within 0..{SCALED_MAX_SCALE}, was {scale}")
    if not 0 <= start <= n:
        raise ValueError(f"start must be within 0..{n}, was {start}")
    if n == 0:
        return None
    if loop_only:
        j = slip_quoted_scaled_loop(&buf[0], start, n, scale, &v)
    else:
        j = slip_quoted_scaled(&buf[0], start, n, scale, &v)
    return None if j < 0 else (v, j)
