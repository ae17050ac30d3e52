"""ext.walls against a pure-Python/numpy reference of the documented wall rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ext.binance import BinanceFeed
from ext.book import ASK, BID, OrderBook
from ext.walls import (
    APPEARED,
    EVENT_DTYPE,
    FADED,
    FILLED,
    PULLED,
    WALL_DTYPE,
    WallDetector,
    WallParams,
    _use_avx2,
    select_kth,
)
from orchestrator.capture import read_capture
from tests.support.fixtures import HB

pytestmark = pytest.mark.unit

ETH = HB / "spot" / "ethusdt_20240808.gz"


# ---------------------------------------------------------------- reference


def ref_walls(book: OrderBook, p: WallParams) -> list[dict[str, float | int]]:
    """Walls of ``book`` by the rule of docs/slippage.md, with sorted() for the medians."""
    if book.bid_levels == 0 or book.ask_levels == 0:
        return []
    mid = 0.5 * (float(book.best_bid_price) + float(book.best_ask_price))
    out: list[dict[str, float | int]] = []
    for side in (BID, ASK):
        prices, sizes = book.top_copy(side, p.band_levels)
        band = []
        for price, size in zip(prices.tolist(), sizes.tolist(), strict=True):
            if p.band_bps > 0:
                if side == BID and price < mid * (1.0 - p.band_bps * 1e-4):
                    break
                if side == ASK and price > mid * (1.0 + p.band_bps * 1e-4):
                    break
            band.append((price, size))
        n = len(band)
        if n < p.min_levels:
            continue
        vals = [s for _, s in band]
        med = sorted(vals)[(n - 1) // 2]
        mad = sorted(abs(v - med) for v in vals)[(n - 1) // 2]
        thr = max(p.k * float(med), p.min_share * float(sum(vals)))
        need = max(math.ceil(thr), med + 1)
        for level, (price, size) in enumerate(band):
            if size >= need and float(size - med) >= p.k_mad * float(mad):
                dist = (mid - price) / mid * 1e4 if side == BID else (price - mid) / mid * 1e4
                out.append(
                    {
                        "side": side,
                        "price": price,
                        "size": size,
                        "level": level,
                        "distance_bps": dist,
                        "median": float(med),
                        "mad": float(mad),
                        "multiple": size / med,
                        "share": size / float(sum(vals)),
                    }
                )
    return out


def assert_same_walls(got: np.ndarray, expect: list[dict[str, float | int]]) -> None:
    assert got.dtype == WALL_DTYPE
    assert len(got) == len(expect)
    for rec, e in zip(got, expect, strict=True):
        for name in ("side", "price", "size", "level"):
            assert int(rec[name]) == e[name], name
        for name in ("distance_bps", "median", "mad", "multiple", "share"):
            assert float(rec[name]) == pytest.approx(e[name], rel=1e-12, abs=1e-12), name


def make_book(bid_sizes, ask_sizes, bid0: int = 100_000, tick: int = 1) -> OrderBook:
    """Bids bid0, bid0 - tick, ...; asks bid0 + tick, ... with the given sizes (best first)."""
    book = OrderBook(price_scale=2, size_scale=3)
    nb, na = len(bid_sizes), len(ask_sizes)
    book.load_snapshot(
        np.array([bid0 - i * tick for i in range(nb)], dtype=np.int64),
        np.asarray(bid_sizes, dtype=np.int64),
        np.array([bid0 + (i + 1) * tick for i in range(na)], dtype=np.int64),
        np.asarray(ask_sizes, dtype=np.int64),
    )
    return book


def noisy(n: int, seed: int, lo: int = 100, hi: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, n)


# ---------------------------------------------------------------- selection


@pytest.fixture(params=[True, False], ids=["avx2", "portable"])
def routine(request):
    """Run with the AVX2 selection (where the CPU has it) or the portable quickselect."""
    _use_avx2(request.param)
    yield request.param
    _use_avx2(True)


# values drawn from a few small pools too, so equal values (the pivot's rank range) abound
values_st = st.one_of(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=500),
    st.lists(st.sampled_from([0, 1, 5, 2**63 - 1, 2**63, 2**64 - 1]), min_size=1, max_size=300),
    st.lists(st.integers(0, 40), min_size=1, max_size=800),
)


@given(values_st, st.data())
@settings(  # the fixture only picks the routine: the same for every example
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_select_kth_equals_sorting(routine, values, data):
    arr = np.array(values, dtype=np.uint64)
    k = data.draw(st.integers(0, len(values) - 1))
    assert select_kth(arr, k) == sorted(values)[k]
    assert arr.tolist() == values  # input untouched


def test_select_kth_on_many_duplicates_and_bad_k(routine):
    arr = np.array([7] * 300 + [1] * 5 + [9] * 2, dtype=np.uint64)
    assert select_kth(arr, 0) == 1 and select_kth(arr, 150) == 7 and select_kth(arr, 306) == 9
    with pytest.raises(ValueError, match=r"k must be within 0\.\.306, was 307"):
        select_kth(arr, 307)


def test_select_kth_every_rank_of_sorted_reversed_and_organ_pipe_inputs(routine):
    """Orders that defeat fixed pivot positions; every k, against sorting."""
    base = np.random.default_rng(3).integers(0, 10**6, 257).astype(np.uint64)
    srt = np.sort(base)
    pipe = np.concatenate([srt[::2], srt[1::2][::-1]])
    for arr in (srt, srt[::-1].copy(), pipe):
        assert [select_kth(arr, k) for k in range(len(arr))] == srt.tolist()


# ---------------------------------------------------------------- detection


def test_planted_walls_are_found_with_price_size_distance():
    bids, asks = noisy(200, 1), noisy(200, 2)
    bids[17] = 9_000
    asks[3] = 4_000
    asks[150] = 12_345
    book = make_book(bids, asks, bid0=100_000, tick=5)
    det = WallDetector(WallParams(band_levels=200))
    assert det.update(book, 1_000) == 3
    w = det.walls()
    assert w["side"].tolist() == [BID, ASK, ASK]
    assert w["price"].tolist() == [100_000 - 17 * 5, 100_005 + 3 * 5, 100_005 + 150 * 5]
    assert w["size"].tolist() == [9_000, 4_000, 12_345]
    assert w["level"].tolist() == [17, 3, 150]
    mid = 100_002.5
    assert w["distance_bps"][0] == pytest.approx((mid - 99_915) / mid * 1e4, rel=1e-12)
    assert w["distance_bps"][2] == pytest.approx((100_755 - mid) / mid * 1e4, rel=1e-12)
    assert (w["multiple"] > 5).all()
    assert_same_walls(w, ref_walls(book, det.params))
    ev = det.drain_events()
    assert ev.dtype == EVENT_DTYPE
    assert ev["kind"].tolist() == [APPEARED] * 3
    assert ev["ts_ns"].tolist() == [1_000] * 3


def test_flat_and_smooth_books_have_no_walls():
    det = WallDetector(WallParams(band_levels=400, k=3.0, k_mad=3.0))
    flat = make_book([500] * 400, [500] * 400)
    assert det.update(flat, 1) == 0
    # smoothly growing with depth (x4 over the band) and a gentle wave
    x = np.arange(400)
    smooth = (1_000 + 3_000 * x / 399 + 200 * np.sin(x / 15)).astype(np.int64)
    assert det.update(make_book(smooth, smooth[::-1].copy()), 2) == 0
    assert det.walls().size == 0
    assert det.drain_events().size == 0


def test_thresholds_k_mad_share_and_band():
    sizes = noisy(100, 3, 100, 300)
    sizes[40] = 2_000
    base = make_book(sizes, sizes.copy())
    assert WallDetector(WallParams(k=5.0)).update(base, 1) == 2
    med = sorted(sizes.tolist())[49]
    assert WallDetector(WallParams(k=2_000 / med + 0.01)).update(base, 1) == 0
    assert WallDetector(WallParams(k=2_000 / med - 0.01)).update(base, 1) == 2
    assert WallDetector(WallParams(k=2.0, k_mad=1e6)).update(base, 1) == 0
    assert WallDetector(WallParams(min_share=0.5)).update(base, 1) == 0
    assert WallDetector(WallParams(band_levels=40)).update(base, 1) == 0  # level 40 outside
    assert WallDetector(WallParams(band_levels=41)).update(base, 1) == 2
    # ticks of 100 around 100,000: level 40 lies 4,050 ticks = 404.8 bps from the mid
    wide = make_book(sizes, sizes.copy(), bid0=100_000, tick=100)
    assert WallDetector(WallParams(band_bps=395.0)).update(wide, 1) == 0
    assert WallDetector(WallParams(band_bps=410.0)).update(wide, 1) == 2
    assert WallDetector(WallParams(min_levels=100)).update(base, 1) == 2
    assert WallDetector(WallParams(band_bps=1.0, min_levels=5)).update(wide, 1) == 0


@st.composite
def random_books(draw: st.DrawFn) -> tuple[OrderBook, list[int]]:
    nb = draw(st.integers(0, 120))
    na = draw(st.integers(0, 120))
    size = st.one_of(st.integers(1, 1_000), st.integers(1, 10**12), st.sampled_from([5, 500]))
    bids = draw(st.lists(size, min_size=nb, max_size=nb))
    asks = draw(st.lists(size, min_size=na, max_size=na))
    tick = draw(st.integers(1, 500))
    book = make_book(bids, asks, bid0=10**7, tick=tick)
    for i in draw(st.lists(st.integers(0, 240), max_size=15)):
        side = BID if i % 2 == 0 else ASK
        n = nb if side == BID else na
        if i // 2 < n:
            price = 10**7 - (i // 2) * tick if side == BID else 10**7 + (i // 2 + 1) * tick
            book.apply(side, price, 0)  # tombstones
    return book, [nb, na]


wall_params_st = st.builds(
    WallParams,
    k=st.sampled_from([1.0, 2.0, 5.0]),
    k_mad=st.sampled_from([0.0, 2.0, 5.0]),
    min_share=st.sampled_from([0.0, 0.05]),
    band_levels=st.sampled_from([10, 50, 400]),
    band_bps=st.sampled_from([0.0, 30.0, 5_000.0]),
    min_levels=st.sampled_from([1, 5]),
)


@given(st.lists(random_books(), min_size=1, max_size=4), wall_params_st)
@settings(max_examples=200, deadline=None)
def test_random_books_match_reference_and_never_crash(books, params):
    det = WallDetector(params, event_capacity=8)
    for ts, (book, _) in enumerate(books):
        n = det.update(book, ts * 10)
        assert n == det.n_walls
        assert_same_walls(det.walls(), ref_walls(book, params))
    ev = det.drain_events()
    assert len(ev) + det.events_dropped >= 0
    assert set(ev["kind"].tolist()) <= {APPEARED, PULLED, FILLED, FADED}


@st.composite
def evolving_books(draw: st.DrawFn) -> list[OrderBook]:
    """A stream of states of one book: a few levels resized, added, deleted (tombstones)
    or the touch moved per step, so consecutive medians and MADs are close (the hinted
    paths: same rank, next distinct value, a few values away) or jump (selection)."""
    seed = draw(st.integers(0, 2**32 - 1))
    steps = draw(st.integers(2, 25))
    n = draw(st.integers(3, 260))
    scale = draw(st.sampled_from([3, 50, 10**4, 10**15]))
    heavy = draw(st.booleans())
    rng = np.random.default_rng(seed)

    def sizes(k: int) -> np.ndarray:
        if heavy:
            return (rng.lognormal(0.0, 1.2, k) * scale).astype(np.int64) + 1
        return rng.integers(1, scale + 1, k)

    bid0, tick = 10**7, 3
    book = make_book(sizes(n), sizes(n), bid0=bid0, tick=tick)
    states = [book]
    for _ in range(steps):
        nxt = OrderBook(price_scale=2, size_scale=3)
        bp, bs = book.top_copy(BID, 10**6)
        ap, asz = book.top_copy(ASK, 10**6)
        nxt.load_snapshot(bp, bs, ap, asz)
        moves = draw(st.integers(0, 12))
        for _ in range(moves):
            side = BID if rng.random() < 0.5 else ASK
            depth = int(rng.integers(0, n + 5))
            price = bid0 - depth * tick if side == BID else bid0 + (depth + 1) * tick
            op = rng.random()
            if op < 0.25 and depth > 0:
                nxt.apply(side, price, 0)  # delete: a tombstone (unless never there)
            elif op < 0.3:
                nxt.apply(side, price, int(sizes(1)[0]) * 40)  # a planted wall
            else:
                nxt.apply(side, price, int(sizes(1)[0]))
        if not nxt.is_crossed() and nxt.bid_levels and nxt.ask_levels:
            book = nxt
        states.append(book)
    return states


@pytest.mark.parametrize("avx2", [True, False], ids=["avx2", "portable"])
@given(states=evolving_books(), params=wall_params_st)
@settings(max_examples=150, deadline=None)
def test_streams_of_close_books_match_reference(avx2, states, params):
    # the band loops run in their AVX2 build (where the CPU has it) or the portable one
    _use_avx2(avx2)
    try:
        det = WallDetector(params, event_capacity=1 << 12)
        for ts, book in enumerate(states):
            n = det.update(book, ts)
            assert n == det.n_walls
            assert_same_walls(det.walls(), ref_walls(book, params))
    finally:
        _use_avx2(True)


def test_portable_and_avx2_loops_agree_on_a_stream():
    if not _use_avx2(True):
        pytest.skip("no AVX2 on this CPU")
    rng = np.random.default_rng(5)
    base = (rng.lognormal(0.0, 1.0, 400) * 1_000).astype(np.int64) + 1
    books = []
    for _ in range(40):
        sizes = base.copy()
        sizes[rng.integers(0, 400, 6)] = rng.integers(1, 60_000, 6)
        books.append(make_book(sizes, sizes[::-1].copy()))
    params = WallParams(k=8.0, k_mad=4.0, band_levels=400)
    got = {}
    for mode in (True, False):
        _use_avx2(mode)
        det = WallDetector(params)
        got[mode] = [(det.update(b, i), det.walls().tobytes()) for i, b in enumerate(books)]
    _use_avx2(True)
    assert got[True] == got[False]
    assert sum(n for n, _ in got[True]) > 20


# ---------------------------------------------------------------- streaming


def wall_book(wall: int, other: int = 150) -> OrderBook:
    sizes = noisy(60, 5, 100, 200)
    sizes[10] = wall
    return make_book(sizes, np.full(60, other))


WALL_PRICE = 100_000 - 10


def test_age_increases_and_first_seen_is_kept():
    det = WallDetector()
    for ts in (1_000, 5_000, 12_000):
        assert det.update(wall_book(5_000), ts) == 1
        w = det.walls()[0]
        assert (w["first_seen_ns"], w["age_ns"]) == (1_000, ts - 1_000)
    assert det.drain_events()["kind"].tolist() == [APPEARED]


def test_pulled_when_removed_without_trades():
    det = WallDetector()
    det.update(wall_book(5_000), 1)
    det.on_trade(WALL_PRICE + 1, 5_000, 2)  # another price does not count
    book = wall_book(5_000)
    book.apply(BID, WALL_PRICE, 0)
    assert det.update(book, 3) == 0
    ev = det.drain_events()
    assert ev["kind"].tolist() == [APPEARED, PULLED]
    e = ev[1]
    assert (e["price"], e["size"], e["remaining"], e["traded"], e["age_ns"], e["side"]) == (
        WALL_PRICE,
        5_000,
        0,
        0,
        2,
        BID,
    )


def test_filled_when_trades_at_its_price_explain_the_loss():
    det = WallDetector(WallParams(fill_ratio=0.5))
    det.update(wall_book(5_000), 1)
    det.on_trade(WALL_PRICE, 2_000, 2)
    det.on_trades(np.array([WALL_PRICE, 7], dtype=np.int64), np.array([900, 10**6], dtype=np.int64))
    # shrank below the threshold (to 300 lots): lost 4,700, traded 2,900 >= 0.5 x 4,700
    assert det.update(wall_book(300), 3) == 0
    e = det.drain_events()[-1]
    assert (e["kind"], e["remaining"], e["traded"]) == (FILLED, 300, 2_900)
    # the same loss with too few trades is a pull
    det.update(wall_book(5_000), 4)
    det.on_trade(WALL_PRICE, 1_000, 5)
    det.update(wall_book(300), 6)
    assert det.drain_events()["kind"].tolist() == [APPEARED, PULLED]


def test_traded_resets_each_update_and_partial_fills_keep_the_wall():
    det = WallDetector()
    det.update(wall_book(5_000), 1)
    det.on_trade(WALL_PRICE, 4_000, 2)
    assert det.walls()["traded"].tolist() == [4_000]
    assert det.update(wall_book(4_000), 3) == 1  # still a wall, no event
    assert det.walls()["traded"].tolist() == [0]
    det.update(wall_book(100), 4)
    assert det.drain_events()["kind"].tolist() == [APPEARED, PULLED]


def test_faded_when_the_rest_of_the_book_grows():
    det = WallDetector(WallParams(band_levels=60))
    det.update(wall_book(5_000), 1)
    sizes = noisy(60, 5, 2_000, 3_000)
    sizes[10] = 5_000
    assert det.update(make_book(sizes, np.full(60, 150)), 2) == 0
    e = det.drain_events()[-1]
    assert (e["kind"], e["remaining"], e["size"]) == (FADED, 5_000, 5_000)


def test_book_without_mid_forgets_walls_silently():
    det = WallDetector()
    det.update(wall_book(5_000), 1)
    det.drain_events()
    book = wall_book(5_000)
    book.clear()
    assert det.update(book, 2) == 0
    assert det.drain_events().size == 0
    assert det.update(wall_book(5_000), 3) == 1
    assert det.walls()[0]["first_seen_ns"] == 3


def test_event_overflow_is_counted():
    det = WallDetector(event_capacity=2)
    for ts in range(5):
        det.update(wall_book(5_000 if ts % 2 == 0 else 100), ts)
    assert det.pending_events == 2
    assert det.events_dropped == 3
    assert len(det.drain_events()) == 2 and det.pending_events == 0
    det.reset()
    assert (det.events_dropped, det.last_ts, det.updates, det.n_walls) == (0, 0, 0, 0)


# ---------------------------------------------------------------- real capture


def to_scale(values: np.ndarray, scales: np.ndarray, scale: int) -> np.ndarray:
    """Trade prices/sizes (each with its own decimals) in the book's units; -1 if inexact."""
    out = np.empty(len(values), dtype=np.int64)
    for i, (v, s) in enumerate(zip(values.tolist(), scales.tolist(), strict=True)):
        if s <= scale:
            out[i] = v * 10 ** (scale - s)
        else:
            q, r = divmod(v, 10 ** (s - scale))
            out[i] = q if r == 0 else -1
    return out


@pytest.mark.replay
def test_replay_ethusdt_matches_reference_and_emits_events():
    feed = BinanceFeed("spot")
    params = WallParams(k=4.0, k_mad=3.0, band_levels=200)
    det = WallDetector(params, event_capacity=100_000)
    checked = walls_seen = 0
    for i, frame in enumerate(read_capture(ETH)):
        if frame.kind == "rest":
            feed.on_snapshot("ETHUSDT", frame.payload, frame.recv_ns)
            continue
        feed.on_frame(frame.payload, frame.recv_ns)
        book = feed.book("ETHUSDT", "depth")
        trades = feed.drain_trades()
        if book is None or not book.in_sync:
            continue
        if len(trades):
            det.on_trades(
                to_scale(trades["price"], trades["price_scale"], book.price_scale),
                to_scale(trades["size"], trades["size_scale"], book.size_scale),
            )
        det.update(book, frame.recv_ns)
        walls_seen += det.n_walls
        if i % 200 == 0:
            assert_same_walls(det.walls(), ref_walls(book, params))
            checked += 1
    assert checked > 100 and walls_seen > 0
    ev = det.drain_events()
    kinds = set(ev["kind"].tolist())
    assert APPEARED in kinds and kinds & {PULLED, FILLED, FADED}
    assert (ev["age_ns"] >= 0).all()


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    det = WallDetector()
    det.update(wall_book(5_000), 100)
    with pytest.raises(ValueError, match="ts_ns must be >= 0 and >= the previous update"):
        det.update(wall_book(5_000), 99)
    with pytest.raises(ValueError, match="was -1"):
        WallDetector().update(wall_book(5_000), -1)
    with pytest.raises(ValueError, match="size must be >= 0, was -5"):
        det.on_trade(1, -5, 0)
    with pytest.raises(ValueError, match=r"sizes\[1\] must be >= 0"):
        det.on_trades(np.array([1, 2], dtype=np.int64), np.array([1, -1], dtype=np.int64))
    with pytest.raises(ValueError, match="sizes has 1 entries, prices has 2"):
        det.on_trades(np.array([1, 2], dtype=np.int64), np.array([1], dtype=np.int64))
    with pytest.raises(TypeError):
        det.update(None, 200)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="event_capacity"):
        WallDetector(event_capacity=0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"k": 0.5}, "k"),
        ({"k_mad": -1.0}, "k_mad"),
        ({"min_share": 1.5}, "min_share"),
        ({"band_levels": 0}, "band_levels"),
        ({"band_bps": math.nan}, "band_bps"),
        ({"min_levels": 101}, "min_levels"),
        ({"fill_ratio": 2.0}, "fill_ratio"),
    ],
)
def test_bad_params_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WallParams(**kwargs)
