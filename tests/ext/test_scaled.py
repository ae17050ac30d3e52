"""ext.scaled against Python's Decimal (the independent reference)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ext.scaled import (
    MAX_SCALE,
    decimals_needed,
    format_scaled,
    quoted_scaled,
    to_scaled,
    to_scaled_many,
)

pytestmark = pytest.mark.unit

INT64_MAX = 2**63 - 1


def reference(text: str, scale: int) -> int | None:
    """Exact value * 10**scale via Decimal, or None when not representable."""
    try:
        d = Decimal(text)
    except Exception:
        return None
    if not d.is_finite():
        return None
    v = d.scaleb(scale)
    if v != v.to_integral_value():
        return None
    i = int(v)
    return i if -INT64_MAX <= i <= INT64_MAX else None


decimal_text = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{'.' + frac if frac is not None else ''}{exp}",
    st.sampled_from(["", "-", "+"]),
    st.from_regex(r"[0-9]{1,20}", fullmatch=True),
    st.one_of(st.none(), st.from_regex(r"[0-9]{0,20}", fullmatch=True)),
    st.one_of(st.just(""), st.builds(lambda e: f"e{e}", st.integers(-25, 25))),
)


@given(decimal_text, st.integers(0, MAX_SCALE))
def test_matches_decimal(text, scale):
    expected = reference(text, scale)
    if expected is None:
        with pytest.raises(ValueError, match="cannot scale"):
            to_scaled(text, scale)
    else:
        assert to_scaled(text, scale) == expected
        assert to_scaled(text.encode(), scale) == expected


@given(st.integers(-(10**17), 10**17), st.integers(0, MAX_SCALE))
def test_format_round_trips(value, scale):
    text = format_scaled(value, scale)
    assert "e" not in text.lower()
    assert Decimal(text) == Decimal(value).scaleb(-scale)
    assert to_scaled(text, scale) == value


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("64250.10", 2, 6425010),
        ("64250.10", 1, 642501),
        ("0.00000000001", 11, 1),
        ("1e-11", 11, 1),
        ("3366.0", 0, 3366),
        ("0.000", 0, 0),
        ("-0", 3, 0),
        ("9223372036854775807", 0, INT64_MAX),
        ("1.5E+3", 0, 1500),
        ("12000000000.00000000", 0, 12_000_000_000),
    ],
)
def test_known_values(text, scale, expected):
    assert to_scaled(text, scale) == expected


@pytest.mark.parametrize(
    ("text", "scale", "reason"),
    [
        ("64250.15", 1, "more fractional digits"),
        ("", 2, "empty"),
        ("abc", 2, "not a decimal"),
        ("1..2", 2, "not a decimal"),
        ("1e", 2, "not a decimal"),
        ("-", 2, "not a decimal"),
        (".", 2, "not a decimal"),
        ("9223372036854775808", 0, "out of int64"),
        ("1", 19, "scale must be"),
        ("1", -1, "scale must be"),
        ("nan", 2, "not a decimal"),
        ("1 ", 2, "not a decimal"),
    ],
)
def test_rejects_with_reason(text, scale, reason):
    with pytest.raises(ValueError, match=reason):
        to_scaled(text, scale)


@pytest.mark.parametrize(
    ("text", "n"), [("5", 0), ("0.0100", 2), ("1e-11", 11), ("100", 0), ("2.5e1", 0), ("0", 0)]
)
def test_decimals_needed(text, n):
    assert decimals_needed(text) == n


def test_decimals_needed_rejects_garbage():
    with pytest.raises(ValueError, match="not a decimal"):
        decimals_needed("x1")


def fields(values: list[str]) -> tuple[bytes, np.ndarray, np.ndarray]:
    buf = b""
    starts, ends = [], []
    for v in values:
        buf += b'"'
        starts.append(len(buf))
        buf += v.encode()
        ends.append(len(buf))
        buf += b'",'
    return buf, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


@given(st.lists(st.decimals(min_value=-(10**9), max_value=10**9, places=6), max_size=50))
def test_batch_equals_scalar(values):
    texts = [str(v) for v in values]
    buf, starts, ends = fields(texts)
    out = np.zeros(len(texts), dtype=np.int64)
    assert to_scaled_many(buf, starts, ends, 6, out) == len(texts)
    assert out.tolist() == [to_scaled(t, 6) for t in texts]


def test_batch_reports_index_and_offset_of_bad_field():
    buf, starts, ends = fields(["1.5", "2.25", "x"])
    out = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match=r"field 1 at byte 7 \(b'2\.25'\)"):
        to_scaled_many(buf, starts, ends, 1, out)


def test_batch_validates_arguments():
    buf, starts, ends = fields(["1", "2"])
    with pytest.raises(ValueError, match="out has room for 1"):
        to_scaled_many(buf, starts, ends, 0, np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match="ends has 1 entries"):
        to_scaled_many(buf, starts, ends[:1], 0, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="outside a buffer"):
        to_scaled_many(buf, starts, ends + 100, 0, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="scale must be"):
        to_scaled_many(buf, starts, ends, 40, np.zeros(2, dtype=np.int64))
    assert to_scaled_many(b"", starts[:0], ends[:0], 0, np.zeros(0, dtype=np.int64)) == 0


# ------------------------------------------------- the wire parsers' quoted fast path


def _quoted(body: str, pad: bytes = b"],[") -> bytes:
    return b'["' + body.encode() + b'"' + pad


@pytest.mark.parametrize(
    ("body", "scale", "want"),
    [
        ("96534.2", 1, 965342),  # OKX price
        ("0.06981371", 8, 6981371),  # OKX size, 8 fractional digits
        ("3456.78000000", 2, 345678),  # Binance pads to 8 decimals
        ("3456.78000000", 8, 345678000000),
        ("0", 4, 0),  # a delete
        ("5.", 3, 5000),
        ("7", 0, 7),
        ("1234567", 8, 123456700000000),  # 7 integer digits: the block parser's limit
        ("12345678.5", 1, 123456785),  # 8 integer digits: the digit loop
        ("0.000000001", 9, 1),  # scale 9: the digit loop
        ("1.123456789", 9, 1123456789),  # 9 fractional digits: the digit loop
        ("1.5", 0, None),  # finer than the scale
        ("2.000000010", 8, 200000001),  # only zeros past the scale
        ("2.000000011", 8, None),  # a non-zero digit past the scale, 9 digits
        ("2.00000001", 7, None),  # ... within the 8-digit block
        ("-1", 2, None),
        (".5", 2, None),
        ("", 2, None),
        ("1e5", 2, None),
        ("1.5e1", 2, None),
    ],
)
def test_quoted_scaled_known_texts(body, scale, want):
    for pad in (b"],[" + b" " * 20, b""):  # room for the 8-byte blocks, and none
        buf = _quoted(body, pad)
        got = quoted_scaled(buf, 2, scale)
        assert got == quoted_scaled(buf, 2, scale, loop_only=True)
        assert got == (None if want is None else (want, 3 + len(body)))


@given(
    st.text(alphabet="0123456789.", min_size=0, max_size=22),
    st.integers(0, MAX_SCALE),
    st.binary(max_size=12),
    st.sampled_from([b'"', b"", b"0", b"x", b"."]),
)
def test_quoted_scaled_block_parser_equals_the_digit_loop(body, scale, pad, end):
    """The 8-byte block parser accepts and rejects exactly what the digit loop does, at
    any distance from the end of the buffer, and accepted values equal Decimal's."""
    buf = b'["' + body.encode() + end + pad
    got = quoted_scaled(buf, 2, scale)
    assert got == quoted_scaled(buf, 2, scale, loop_only=True)
    whole = body.partition(".")[0]
    value = reference(body, scale) if body[:1].isdigit() and body.count(".") <= 1 else None
    accepted = end == b'"' and value is not None and len(whole) + scale <= 18
    assert got == ((value, 3 + len(body)) if accepted else None)
