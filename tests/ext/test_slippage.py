"""ext.slippage against a pure-Python walk over sortedcontainers books (exact fractions)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedDict

from ext.binance import BinanceFeed
from ext.book import ASK, BID, MAX_PRICE, OrderBook
from ext.slippage import BUY, SELL, WALK_DTYPE, WalkParams, WalkResult, max_qty, walk, walk_many
from orchestrator.capture import read_capture
from tests.support.fixtures import HB

pytestmark = pytest.mark.unit

ETH = HB / "spot" / "ethusdt_20240808.gz"
INT_FIELDS = ("qty", "filled", "shortfall", "levels", "best_price", "worst_price", "notional")
FLOAT_FIELDS = (
    "avg_price",
    "mid",
    "slippage_touch_bps",
    "slippage_mid_bps",
    "impact_bps",
    "expected_price",
    "effective_price",
    "cost_bps",
)


# ---------------------------------------------------------------- reference


class RefBook:
    """Price -> size per side in SortedDicts (the independent book)."""

    def __init__(self, bids: dict[int, int], asks: dict[int, int]) -> None:
        self.bids = SortedDict({p: q for p, q in bids.items() if q})
        self.asks = SortedDict({p: q for p, q in asks.items() if q})

    def levels(self, side: int) -> list[tuple[int, int]]:
        """Levels a market order of ``side`` walks, best first."""
        if side == BUY:
            return list(self.asks.items())
        return [(p, self.bids[p]) for p in reversed(self.bids)]


def ref_walk(
    ref: RefBook,
    side: int,
    qty: int,
    fee_bps: float = 0.0,
    impact_coef: float = 0.0,
    sigma_bps: float = 0.0,
    depth_scale: float = 1.0,
    reference: str = "mid",
) -> dict[str, float | int]:
    """The walk in exact rational arithmetic, straight from the documented formulas."""
    levels = ref.levels(side)
    sgn = 1 if side == BUY else -1
    left, notional, used, worst = qty, 0, 0, levels[0][0]
    for price, size in levels:
        if left == 0:
            break
        take = min(size, left)
        notional += price * take
        left -= take
        used += 1
        worst = price
    filled = qty - left
    best = levels[0][0]
    avg = Fraction(notional, filled)
    off = sgn * (avg - best)
    mid = (
        Fraction(ref.bids.peekitem(-1)[0] + ref.asks.peekitem(0)[0], 2)
        if ref.bids and ref.asks
        else None
    )
    impact = impact_coef * sigma_bps * math.sqrt(left / depth_scale) if left else 0.0
    if left:
        sf_price = worst + sgn * Fraction(worst) * Fraction(impact) / 10_000
        expected = (notional + left * sf_price) / qty
    else:
        expected = avg
    fee = Fraction(fee_bps) / 10_000
    effective = expected * (1 + sgn * fee)
    ref_price = Fraction(best) if reference == "touch" else mid
    return {
        "qty": qty,
        "filled": filled,
        "shortfall": left,
        "levels": used,
        "best_price": best,
        "worst_price": worst,
        "notional": notional,
        "avg_price": float(avg),
        "mid": float(mid) if mid is not None else math.nan,
        "slippage_touch_bps": float(off / best * 10_000),
        "slippage_mid_bps": float(sgn * (avg - mid) / mid * 10_000) if mid else math.nan,
        "impact_bps": impact,
        "expected_price": float(expected),
        "effective_price": float(effective),
        "cost_bps": float(sgn * (effective - ref_price) / ref_price * 10_000)
        if ref_price
        else math.nan,
    }


def assert_matches(res: WalkResult, expect: dict[str, float | int]) -> None:
    got = res.as_dict()
    for name in INT_FIELDS:
        assert got[name] == expect[name], name
    for name in FLOAT_FIELDS:
        e = expect[name]
        if math.isnan(e):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(e, rel=1e-12, abs=1e-9), name


def make_book(bids: dict[int, int], asks: dict[int, int]) -> OrderBook:
    book = OrderBook(capacity=16)
    book.load_snapshot(
        np.array(list(bids), dtype=np.int64),
        np.array(list(bids.values()), dtype=np.int64),
        np.array(list(asks), dtype=np.int64),
        np.array(list(asks.values()), dtype=np.int64),
    )
    return book


def ladder(n: int = 10, size: int = 100) -> tuple[dict[int, int], dict[int, int]]:
    """Bids 10000, 9999, ...; asks 10001, 10002, ... with ``size`` lots each."""
    return (
        {10_000 - i: size for i in range(n)},
        {10_001 + i: size for i in range(n)},
    )


# ---------------------------------------------------------------- random books

levels_st = st.dictionaries(st.integers(1, 5_000), st.integers(1, 10**9), min_size=1, max_size=60)


@st.composite
def books(draw: st.DrawFn) -> tuple[dict[int, int], dict[int, int], list[int]]:
    """An uncrossed book (asks above bids) plus prices deleted afterwards (tombstones)."""
    bids = draw(levels_st)
    gap = draw(st.integers(1, 50))
    top = max(bids)
    asks = {top + gap + p - 1: q for p, q in draw(levels_st).items()}
    deletes = draw(st.lists(st.sampled_from(sorted(bids) + sorted(asks)), max_size=10))
    return bids, asks, deletes


@given(
    books(),
    st.integers(1, 3 * 10**10),
    st.sampled_from([BUY, SELL]),
    st.sampled_from([0.0, 7.5, -1.0]),
    st.sampled_from([0.0, 0.5]),
    st.sampled_from(["mid", "touch"]),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_books_match_reference(book_spec, qty, side, fee, coef, reference):
    bids, asks, deletes = book_spec
    book = make_book(bids, asks)
    for p in deletes:
        # delete through the book (leaves tombstones), keep at least one level per side
        if p in bids and len(bids) > 1:
            book.apply(BID, p, 0)
            del bids[p]
        elif p in asks and len(asks) > 1:
            book.apply(ASK, p, 0)
            del asks[p]
    params = WalkParams(
        fee_bps=fee, impact_coef=coef, sigma_bps=80.0, depth_scale=1e9, reference=reference
    )
    res = walk(book, side, qty, params)
    expect = ref_walk(RefBook(bids, asks), side, qty, fee, coef, 80.0, 1e9, reference)
    assert_matches(res, expect)


@given(books(), st.lists(st.integers(1, 10**10), min_size=1, max_size=20), st.booleans())
@settings(max_examples=100, deadline=None)
def test_walk_many_equals_walk(book_spec, qtys, buy):
    bids, asks, _ = book_spec
    book = make_book(bids, asks)
    side = BUY if buy else SELL
    params = WalkParams(fee_bps=2.0, impact_coef=1.0, sigma_bps=50.0, depth_scale=1e6)
    out = np.zeros(len(qtys) + 2, dtype=WALK_DTYPE)
    assert walk_many(book, side, np.array(qtys, dtype=np.int64), out, params) == len(qtys)
    for i, q in enumerate(qtys):
        one = walk(book, side, q, params).as_dict()
        rec = out[i]
        for name in WALK_DTYPE.names:
            if name.startswith("notional"):
                continue
            assert rec[name] == one[name] or (math.isnan(rec[name]) and math.isnan(one[name]))
        assert (int(rec["notional_hi"]) << 64) + int(rec["notional_lo"]) == one["notional"]
    assert out[len(qtys)]["qty"] == 0  # nothing written past n


# ---------------------------------------------------------------- budget inverse


@given(
    books(),
    st.floats(-5.0, 400.0),
    st.sampled_from([BUY, SELL]),
    st.sampled_from([0.0, 4.0]),
    st.sampled_from([0.0, 2.0]),
    st.sampled_from(["mid", "touch"]),
)
@settings(max_examples=300, deadline=None)
def test_max_qty_is_the_exact_boundary(book_spec, budget, side, fee, coef, reference):
    bids, asks, _ = book_spec
    book = make_book(bids, asks)
    params = WalkParams(
        fee_bps=fee, impact_coef=coef, sigma_bps=30.0, depth_scale=1e8, reference=reference
    )
    q = max_qty(book, side, budget, params)
    visible = sum((asks if side == BUY else bids).values())
    assert q >= 0
    if q > 0:
        assert walk(book, side, q, params).cost_bps <= budget
    if q < 2**63 - 1:
        over = walk(book, side, q + 1, params).cost_bps
        if coef == 0.0 and q == visible:
            pass  # documented: no price for lots beyond the visible book without impact
        else:
            assert over > budget
    if coef == 0.0:
        assert q <= visible


def test_max_qty_zero_when_first_lot_exceeds_budget():
    book = make_book(*ladder())
    # touch reference, no fee: the first lot costs 0 bps; a fee of 5 bps makes it 5 bps
    assert max_qty(book, BUY, 4.99, WalkParams(fee_bps=5.0, reference="touch")) == 0
    assert max_qty(book, BUY, 5.0, WalkParams(fee_bps=5.0, reference="touch")) >= 100


def test_max_qty_within_first_level_and_across_levels():
    book = make_book(*ladder(size=100))
    touch = WalkParams(reference="touch")
    assert max_qty(book, BUY, 0.0, touch) == 100  # the whole touch level costs 0
    # levels 2 and 3 at +1 / +2 ticks: 200 lots cost 100 / 200 / 10001 * 1e4 = 0.49995 bps
    assert max_qty(book, BUY, 0.5, touch) == 200
    # 200 + t lots: (100 + 2 t) / (200 + t) <= 0.6 * 10001 / 1e4  <=>  t <= 14.29
    q = max_qty(book, BUY, 0.6, touch)
    assert walk(book, BUY, q, touch).cost_bps <= 0.6 < walk(book, BUY, q + 1, touch).cost_bps
    assert q == 214


def test_max_qty_goes_past_visible_depth_only_with_impact():
    book = make_book(*ladder(n=3, size=10))
    assert max_qty(book, BUY, 1e6) == 30
    p = WalkParams(impact_coef=1.0, sigma_bps=100.0, depth_scale=1000.0)
    q = max_qty(book, BUY, 50.0, p)
    assert q > 30
    assert walk(book, BUY, q, p).cost_bps <= 50.0 < walk(book, BUY, q + 1, p).cost_bps


# ---------------------------------------------------------------- exact arithmetic


def test_notional_beyond_int64_is_exact():
    big = MAX_PRICE - 10
    bids = {big - 100: 2**62, big - 101: 2**62}
    asks = {big: 2**62, big + 1: 2**62 - 7, big + 5: 2**62}
    book = make_book(bids, asks)
    qty = 2**63 - 1
    res = walk(book, BUY, qty)
    assert res.notional == big * 2**62 + (big + 1) * (2**62 - 7) + (big + 5) * (qty - 2**63 + 7)
    assert res.notional > 2**120
    assert_matches(res, ref_walk(RefBook(bids, asks), BUY, qty))
    sell = walk(book, SELL, 2**62 + 5)
    assert_matches(sell, ref_walk(RefBook(bids, asks), SELL, 2**62 + 5))


def test_avg_price_is_not_rounded_through_int64_or_float_notional():
    # 3 lots at 10**15 + 1 and 1 lot at 10**15 + 2 -> avg 10**15 + 1.25 exactly
    book = make_book({10**15 - 5: 1}, {10**15 + 1: 3, 10**15 + 2: 1})
    res = walk(book, BUY, 4)
    assert res.avg_price == 10**15 + 1.25
    assert res.slippage_touch_bps == pytest.approx(0.25 / (10**15 + 1) * 1e4, rel=1e-15)


# ---------------------------------------------------------------- fees, shortfall, impact


def test_fee_is_added_to_the_effective_price_and_cost():
    book = make_book(*ladder(size=100))
    no_fee = walk(book, BUY, 150, WalkParams(reference="touch"))
    fee = walk(book, BUY, 150, WalkParams(fee_bps=10.0, reference="touch"))
    assert fee.avg_price == no_fee.avg_price
    assert fee.effective_price == pytest.approx(no_fee.avg_price * 1.001, rel=1e-15)
    assert fee.cost_bps == pytest.approx(
        (no_fee.avg_price * 1.001 - 10_001) / 10_001 * 1e4, rel=1e-12
    )
    sell = walk(book, SELL, 150, WalkParams(fee_bps=10.0, reference="touch"))
    assert sell.effective_price == pytest.approx(sell.avg_price * 0.999, rel=1e-15)
    assert sell.cost_bps > sell.slippage_touch_bps


def test_shortfall_and_sqrt_impact():
    book = make_book(*ladder(n=3, size=10))
    p = WalkParams(impact_coef=0.5, sigma_bps=200.0, depth_scale=400.0)
    res = walk(book, BUY, 130, p)
    assert (res.filled, res.shortfall, res.levels, res.worst_price) == (30, 100, 3, 10_003)
    assert res.impact_bps == pytest.approx(0.5 * 200.0 * math.sqrt(100 / 400), rel=1e-15)
    sf_price = 10_003 * (1 + res.impact_bps / 1e4)
    assert res.expected_price == pytest.approx(
        (10 * (10_001 + 10_002 + 10_003) + 100 * sf_price) / 130
    )
    # without impact the shortfall is priced at the worst visible price
    flat = walk(book, BUY, 130)
    assert flat.impact_bps == 0.0
    assert flat.expected_price == pytest.approx((10 * (10_001 + 10_002) + 110 * 10_003) / 130)
    # impact grows like sqrt(shortfall)
    r1 = walk(book, BUY, 30 + 100, p).impact_bps
    r4 = walk(book, BUY, 30 + 400, p).impact_bps
    assert r4 == pytest.approx(2 * r1, rel=1e-15)


def test_sell_walks_bids_best_first_and_costs_are_positive():
    book = make_book(*ladder(size=5))
    res = walk(book, SELL, 12)
    assert (res.best_price, res.worst_price, res.levels, res.filled) == (10_000, 9_998, 3, 12)
    assert res.avg_price == pytest.approx((5 * 10_000 + 5 * 9_999 + 2 * 9_998) / 12, rel=1e-15)
    assert res.slippage_touch_bps > 0 and res.slippage_mid_bps > res.slippage_touch_bps


def test_one_sided_book_has_no_mid_but_walks():
    book = make_book({}, {101: 5, 102: 5})
    res = walk(book, BUY, 7)
    assert res.filled == 7
    assert math.isnan(res.mid) and math.isnan(res.slippage_mid_bps) and math.isnan(res.cost_bps)
    touch = walk(book, BUY, 7, WalkParams(reference="touch"))
    assert touch.cost_bps == pytest.approx((101 * 5 + 102 * 2) / 7 / 101 * 1e4 - 1e4)
    with pytest.raises(ValueError, match="reference price"):
        max_qty(book, BUY, 10.0)


def test_agrees_with_order_book_fill_price():
    bids, asks = ladder(n=20, size=37)
    book = make_book(bids, asks)
    for q in (1, 36, 37, 38, 500, 740, 741, 10_000):
        for side, book_side in ((BUY, ASK), (SELL, BID)):
            vwap, filled = book.fill_price(book_side, q)
            res = walk(book, side, q)
            assert res.filled == filled
            assert res.avg_price == pytest.approx(vwap, rel=1e-15)


# ---------------------------------------------------------------- real capture


def _replay_points() -> list[OrderBook]:
    """Copies of the ETHUSDT book at a few points of the capture replay."""
    feed = BinanceFeed("spot")
    out: list[OrderBook] = []
    for i, frame in enumerate(read_capture(ETH)):
        if frame.kind == "rest":
            feed.on_snapshot("ETHUSDT", frame.payload, frame.recv_ns)
        elif frame.kind == "ws":
            feed.on_frame(frame.payload, frame.recv_ns)
        book = feed.book("ETHUSDT", "depth")
        if i % 3000 == 2999 and book is not None and book.in_sync:
            copy = OrderBook(book.price_scale, book.size_scale)
            bp, bs = book.top_copy(BID, 10**6)
            ap, asz = book.top_copy(ASK, 10**6)
            copy.load_snapshot(bp, bs, ap, asz)
            out.append(copy)
    return out


@pytest.mark.replay
def test_real_ethusdt_books_match_reference():
    books_seen = _replay_points()
    assert len(books_seen) >= 8
    scale = 10 ** books_seen[0].size_scale
    params = WalkParams(fee_bps=7.5, impact_coef=0.7, sigma_bps=120.0, depth_scale=500.0 * scale)
    for book in books_seen:
        bp, bs = book.top_copy(BID, 10**6)
        ap, asz = book.top_copy(ASK, 10**6)
        ref = RefBook(
            dict(zip(bp.tolist(), bs.tolist(), strict=True)),
            dict(zip(ap.tolist(), asz.tolist(), strict=True)),
        )
        for lots in (0.001, 0.5, 3, 25, 120, 800, 5_000):
            qty = max(1, int(lots * scale))
            for side in (BUY, SELL):
                assert_matches(walk(book, side, qty), ref_walk(ref, side, qty))
                assert_matches(
                    walk(book, side, qty, params),
                    ref_walk(ref, side, qty, 7.5, 0.7, 120.0, 500.0 * scale),
                )
        q = max_qty(book, BUY, 2.0)
        assert walk(book, BUY, q).cost_bps <= 2.0 < walk(book, BUY, q + 1).cost_bps


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    book = make_book(*ladder())
    with pytest.raises(ValueError, match="qty must be > 0, was 0"):
        walk(book, BUY, 0)
    with pytest.raises(ValueError, match="qty must be > 0, was -3"):
        walk(book, SELL, -3)
    with pytest.raises(ValueError, match=r"side must be BUY \(1\) or SELL \(-1\), was 0"):
        walk(book, 0, 5)
    with pytest.raises(ValueError, match="side must be"):
        max_qty(book, 2, 5.0)
    with pytest.raises(ValueError, match="NaN"):
        max_qty(book, BUY, math.nan)
    with pytest.raises(OverflowError):
        walk(book, BUY, 2**63)
    with pytest.raises(TypeError):
        walk(None, BUY, 5)  # type: ignore[arg-type]
    empty = make_book({100: 1}, {})
    with pytest.raises(ValueError, match="ask side of the book is empty"):
        walk(empty, BUY, 1)
    with pytest.raises(ValueError, match="empty"):
        max_qty(empty, BUY, 10.0)


def test_out_of_sync_book_is_refused_unless_allowed():
    book = OrderBook()
    book.apply(BID, 99, 5)
    book.apply(ASK, 101, 5)
    assert not book.in_sync
    with pytest.raises(RuntimeError, match="out of sync"):
        walk(book, BUY, 1)
    with pytest.raises(RuntimeError, match="out of sync"):
        walk_many(book, BUY, np.array([1], dtype=np.int64), np.zeros(1, WALK_DTYPE))
    res = walk(book, BUY, 1, WalkParams(require_in_sync=False))
    assert res.avg_price == 101.0


def test_walk_many_validates_before_writing():
    book = make_book(*ladder())
    out = np.zeros(3, dtype=WALK_DTYPE)
    with pytest.raises(ValueError, match=r"qtys\[1\] must be > 0, was 0"):
        walk_many(book, BUY, np.array([5, 0, 1], dtype=np.int64), out)
    assert (out["qty"] == 0).all()
    with pytest.raises(ValueError, match="out has 3 records, qtys has 4"):
        walk_many(book, BUY, np.ones(4, dtype=np.int64), out)
    with pytest.raises(TypeError, match="WALK_DTYPE"):
        walk_many(book, BUY, np.ones(2, dtype=np.int64), np.zeros(3, dtype=np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        walk_many(book, BUY, np.ones(2, dtype=np.int64), np.zeros(6, dtype=WALK_DTYPE)[::2])
    with pytest.raises(ValueError, match=r"Buffer dtype mismatch|int64|long"):
        walk_many(book, BUY, np.ones(2, dtype=np.int32), out)
    assert walk_many(book, BUY, np.ones(0, dtype=np.int64), out) == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"fee_bps": math.nan}, "fee_bps"),
        ({"fee_bps": 1e4}, "fee_bps"),
        ({"impact_coef": -1.0}, "impact_coef"),
        ({"sigma_bps": math.inf}, "sigma_bps"),
        ({"depth_scale": 0.0}, "depth_scale"),
        ({"reference": "last"}, "reference"),
    ],
)
def test_bad_params_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WalkParams(**kwargs)


def test_result_is_not_constructible_and_params_round_trip():
    with pytest.raises(TypeError):
        WalkResult()
    p = WalkParams(fee_bps=1.5, impact_coef=0.2, sigma_bps=3.0, depth_scale=7.0, reference="touch")
    assert (p.fee_bps, p.impact_coef, p.sigma_bps, p.depth_scale, p.reference) == (
        1.5,
        0.2,
        3.0,
        7.0,
        "touch",
    )
    assert p.require_in_sync is True
    assert "touch" in repr(p)
