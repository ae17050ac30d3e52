"""ext.feed: venue sequencing rules (EXCHANGES.md §8 vectors), checksums, scales, fuzzing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ext import feed as F
from ext.binance import BinanceFeed
from ext.book import ASK, BID
from ext.okx import OkxFeed
from tests.support.frames import depth, okx, snapshot

pytestmark = pytest.mark.unit


def test_binance_spot_sequencing_vector():
    # book id 100; (95,100) ignore; (96,103) apply -> 103; (104,110) apply; (112,115) gap
    f = BinanceFeed("spot")
    assert f.on_frame(depth(95, 100, [["99.0", "1"]])) == F.BUFFERED
    assert f.on_snapshot("BTCUSDT", snapshot(100)) == F.SNAPSHOT
    assert f.on_frame(depth(96, 103, [["99.5", "2"]])) == F.UPDATE
    assert f.book("BTCUSDT", "depth").last_update_id == 103
    assert f.on_frame(depth(104, 110, [["99.6", "2"]])) == F.UPDATE
    assert f.on_frame(depth(112, 115)) == F.GAP
    book = f.book("BTCUSDT", "depth")
    assert not book.in_sync
    [s] = [x for x in f.stats() if x["kind"] == "book"]
    assert (s["updates_dropped"], s["updates_applied"], s["sequence_gaps"]) == (1, 2, 1)
    # after a gap diffs wait for the next snapshot, which bridges them: a resync
    assert f.on_frame(depth(116, 120, [["99.7", "3"]])) == F.BUFFERED
    assert f.on_snapshot("BTCUSDT", snapshot(118)) == F.SNAPSHOT
    assert book.in_sync and book.last_update_id == 120
    assert f.stats()[0]["resyncs"] == 1


def test_binance_futures_sequencing_vector():
    # L = 500; (480,499,470) drop; (495,505,499) first; (506,509,505) ok; (510,512,508) resync
    f = BinanceFeed("usdm")
    f.on_frame(depth(480, 499, pu=470))
    f.on_frame(depth(495, 505, [["100.5", "1"]], pu=499))
    assert f.on_snapshot("BTCUSDT", snapshot(500)) == F.SNAPSHOT
    s = f.stats()[0]
    assert (s["updates_dropped"], s["updates_applied"]) == (1, 1)
    assert f.on_frame(depth(506, 509, pu=505)) == F.UPDATE
    assert f.on_frame(depth(510, 512, pu=508)) == F.GAP


def test_binance_futures_snapshot_older_than_buffer_is_stale():
    f = BinanceFeed("usdm")
    f.on_frame(depth(495, 505, pu=490))
    assert f.on_snapshot("BTCUSDT", snapshot(480)) == F.STALE_SNAPSHOT  # U=495 > L=480
    assert f.on_snapshot("BTCUSDT", snapshot(500)) == F.SNAPSHOT  # U <= 500 <= u bridges


def test_binance_snapshot_older_than_buffer_is_stale_and_buffer_kept():
    f = BinanceFeed("spot")
    f.on_frame(depth(105, 108, [["99.0", "1"]]))
    f.on_frame(depth(109, 110, [["99.1", "1"]]))
    assert f.on_snapshot("BTCUSDT", snapshot(100)) == F.STALE_SNAPSHOT
    assert f.book("BTCUSDT", "depth").bid_levels == 0
    assert f.on_snapshot("BTCUSDT", snapshot(106)) == F.SNAPSHOT
    book = f.book("BTCUSDT", "depth")
    assert book.in_sync and book.last_update_id == 110
    s = f.stats()[0]
    assert (s["stale_snapshots"], s["updates_applied"], s["sequence_gaps"]) == (1, 2, 0)


def test_binance_duplicate_diff_is_counted_not_applied():
    f = BinanceFeed("spot")
    f.on_snapshot("BTCUSDT", snapshot(10))
    frame = depth(11, 12, [["99.0", "5"]])
    assert f.on_frame(frame) == F.UPDATE
    assert f.on_frame(frame) == F.DUPLICATE
    assert f.stats()[0]["duplicates"] == 1 and f.book("BTCUSDT", "depth").in_sync


def test_binance_crossed_book_is_reported_and_desyncs():
    f = BinanceFeed("spot")
    f.on_snapshot("BTCUSDT", snapshot(10))
    assert f.on_frame(depth(11, 11, [["101.5", "1"]])) == F.CROSSED
    assert not f.book("BTCUSDT", "depth").in_sync


def test_book_ticker_held_until_its_diff_then_compared():
    f = BinanceFeed("spot")
    f.on_snapshot("BTCUSDT", snapshot(10))
    tick = {"u": 12, "s": "BTCUSDT", "b": "100.5", "B": "2", "a": "101.0", "A": "1"}
    assert f.on_frame(json.dumps(tick).encode()) == F.TICKER  # ahead of the book: held
    assert f.on_frame(depth(11, 12, [["100.5", "2"]])) == F.UPDATE
    assert f.stats()[0]["book_ticker"] == {"compared": 1, "matched": 1, "mismatched": 0}
    bad = dict(tick, B="3")
    assert f.on_frame(json.dumps(bad).encode()) == F.TICKER_MISMATCH
    assert not f.book("BTCUSDT", "depth").in_sync


def test_okx_sequencing_vector():
    # snapshot seq 10 (prev -1); (10,15) apply; (15,15 empty) heartbeat;
    # (15,3) reset; (3,5) apply; (4,9) gap
    f = OkxFeed()
    assert f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 10, -1)) == F.SNAPSHOT
    assert f.on_frame(okx("update", [("101", "2")], [], 15, 10)) == F.UPDATE
    assert f.on_frame(okx("update", [], [], 15, 15)) == F.HEARTBEAT
    assert f.on_frame(okx("update", [("102", "1")], [], 3, 15)) == F.UPDATE
    assert f.on_frame(okx("update", [], [("99", "1")], 5, 3)) == F.UPDATE
    assert f.on_frame(okx("update", [], [("98", "1")], 9, 4)) == F.GAP
    s = f.stats()[0]
    assert (s["seq_resets"], s["heartbeats"], s["sequence_gaps"], s["updates_applied"]) == (
        1,
        1,
        1,
        3,
    )
    assert f.on_frame(okx("update", [], [("97", "1")], 10, 9)) == F.DROPPED  # until a snapshot
    assert f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 20, -1)) == F.SNAPSHOT
    assert f.stats()[0]["resyncs"] == 1


def test_okx_duplicate_with_seq_ids():
    f = OkxFeed()
    f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 10, -1))
    frame = okx("update", [("101", "2")], [], 11, 10)
    assert f.on_frame(frame) == F.UPDATE
    assert f.on_frame(frame) == F.DUPLICATE


@pytest.mark.parametrize(
    ("text", "crc"),
    [
        ("3366.1:7:3366.8:9:3366:6:3368:8", -1881014294),
        ("3366.1:7:3366.8:9:3368:8:3372:8", 831078360),
        ("64250.1:12:64250.2:5:64250:3:64250.6:1:64249.5:40", -204565051),
        ("0.00001000:1:0.00001100:2", -1586254587),
    ],
)
def test_okx_crc_vectors(text, crc):
    assert F.okx_checksum_text(text) == crc


def test_okx_checksum_from_book_matches_vectors():
    f = OkxFeed()
    frame = okx(
        "snapshot",
        [("3366.8", "9"), ("3368", "8")],
        [("3366.1", "7"), ("3366", "6")],
        checksum=-1881014294,
    )
    assert f.on_frame(frame) == F.SNAPSHOT
    book = f.book("BTC-USDT", "books")
    assert F.book_checksum(book) == -1881014294
    assert f.stats()[0]["checksums"]["verified"] == 1
    bad = okx("update", [("3368", "7")], [], checksum=12345, ts="2")
    assert f.on_frame(bad) == F.CHECKSUM_MISMATCH and not book.in_sync


def test_checksum_zero_is_not_sent_not_a_mismatch():
    f = OkxFeed()
    f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 1, -1, checksum=0))
    assert f.stats()[0]["checksums"] == {"verified": 0, "mismatched": 0, "not_sent": 1}


def test_scales_inferred_then_raised_exactly():
    f = OkxFeed()
    f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 1, -1))
    book = f.book("BTC-USDT", "books")
    assert (book.price_scale, book.size_scale) == (0, 0)
    f.on_frame(okx("update", [("100.00000000001", "2500000000.5")], [], 2, 1))
    assert (book.price_scale, book.size_scale) == (11, 1)
    assert book.best_bid() == (100 * 10**11, 10)
    assert book.best_ask() == (10_000_000_000_001, 25_000_000_005)


@pytest.mark.parametrize("deep", [0, 7, 8, 9, 30])
@pytest.mark.parametrize("column", ["price", "size"])
def test_snapshot_scales_cover_a_finer_level_past_the_probed_ones(deep, column):
    # the fast snapshot path infers scales from the best 8 levels a side first; a level
    # further down that needs more decimals must still raise them (and be exact)
    n = 40
    bids = [(f"{1000 - i}.5", f"{i + 1}.25") for i in range(n)]
    asks = [(f"{2000 + i}.5", "3") for i in range(n)]
    if column == "price":
        bids[deep] = (f"{1000 - deep}.125", bids[deep][1])
    else:
        asks[deep] = (asks[deep][0], "0.0001")

    def frame(seq: int) -> bytes:  # compact, as OKX sends it (the fast path's shape)
        d = {
            "asks": [[p, q, "0", "1"] for p, q in asks],
            "bids": [[p, q, "0", "1"] for p, q in bids],
            "ts": "1",
            "checksum": 0,
            "seqId": seq,
            "prevSeqId": -1,
        }
        msg = {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot"}
        return json.dumps({**msg, "data": [d]}, separators=(",", ":")).encode()

    f = OkxFeed()
    assert f.on_frame(frame(1)) == F.SNAPSHOT
    book = f.book("BTC-USDT", "books")
    ps, ss = (3, 2) if column == "price" else (1, 4)
    assert (book.price_scale, book.size_scale) == (ps, ss)
    bp, bq = book.top_copy(BID, n)
    ap, aq = book.top_copy(ASK, n)
    from decimal import Decimal

    def scaled(text: str, k: int) -> int:
        return int(Decimal(text).scaleb(k))

    assert bp.tolist() == [scaled(p, ps) for p, _ in bids]
    assert bq.tolist() == [scaled(q, ss) for _, q in bids]
    assert ap.tolist() == [scaled(p, ps) for p, _ in asks]
    assert aq.tolist() == [scaled(q, ss) for _, q in asks]
    # the next snapshot at known scales loads the same way
    assert f.on_frame(frame(5)) == F.SNAPSHOT
    assert book.top_copy(BID, n)[0].tolist() == bp.tolist()


def test_locked_scale_rejects_finer_value():
    f = BinanceFeed("spot")
    f.set_scales("BTCUSDT", "depth", 2, 5)
    f.on_snapshot("BTCUSDT", snapshot(10, bids=(("100.00", "1.00000"),), asks=(("101.00", "1"),)))
    with pytest.raises(F.FrameError, match="needs 3 decimals") as info:
        f.on_frame(depth(11, 11, [["100.001", "1"]]))
    assert info.value.venue == "binance" and info.value.channel == "depthUpdate"
    assert info.value.offset > 0
    assert not f.book("BTCUSDT", "depth").in_sync


def test_trades_are_recorded_with_ids_checked():
    f = BinanceFeed("spot")
    for tid in (5, 6, 8):
        msg = {
            "e": "trade",
            "E": 2,
            "s": "ETHUSDT",
            "t": tid,
            "p": "2500.10",
            "q": "0.5",
            "T": 1_700_000_000_000,
            "m": tid == 6,
        }
        assert f.on_frame(json.dumps(msg).encode(), recv_ns=123) == F.TRADE
    trades = f.drain_trades()
    assert trades.dtype == F.TRADE_DTYPE and len(trades) == 3
    assert trades["trade_id"].tolist() == [5, 6, 8]
    assert trades["side"].tolist() == [1, -1, 1]
    assert trades["price"][0] == 25001 and trades["price_scale"][0] == 1  # "2500.10"
    assert trades["exch_ns"][0] == 1_700_000_000_000 * 10**6 and trades["recv_ns"][0] == 123
    [s] = [x for x in f.stats() if x["kind"] == "trades"]
    assert (s["count"], s["id_gaps"], s["id_backwards"]) == (3, 1, 0)
    assert f.pending_trades == 0


def test_okx_trades_with_count():
    f = OkxFeed()
    msg = {
        "arg": {"channel": "trades", "instId": "BTC-USDT-SWAP"},
        "data": [
            {
                "instId": "BTC-USDT-SWAP",
                "tradeId": "100",
                "px": "1.5",
                "sz": "3",
                "side": "sell",
                "ts": "1",
                "count": "1",
            },
            {
                "instId": "BTC-USDT-SWAP",
                "tradeId": "102",
                "px": "1.5",
                "sz": "3",
                "side": "buy",
                "ts": "1",
                "count": "2",
            },
        ],
    }
    assert f.on_frame(json.dumps(msg).encode()) == F.TRADE
    [s] = f.stats()
    assert (s["count"], s["id_gaps"]) == (2, 0)


@pytest.mark.parametrize(
    "frame",
    [
        b"pong",
        b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}',
        b'{"event":"error","code":"60012","msg":"Invalid request"}',
        b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"last":"1"}]}',
    ],
)
def test_okx_non_market_frames_are_other(frame):
    f = OkxFeed()
    assert f.on_frame(frame) == F.OTHER
    assert f.other_frames == 1 and f.instruments() == []


@pytest.mark.parametrize(
    "frame",
    [b'{"result":null,"id":1}', b'{"stream":"x@kline_1m","data":{"e":"kline","s":"X","k":{}}}'],
)
def test_binance_non_market_frames_are_other(frame):
    assert BinanceFeed("spot").on_frame(frame) == F.OTHER


@pytest.mark.parametrize(
    ("frame", "what"),
    [
        (
            b'{"stream":"x","data":{"e":"depthUpdate","s":"X","U":1,"u":2,"b":[["1"]],"a":[]}}',
            "malformed level",
        ),
        (
            b'{"stream":"x","data":{"e":"depthUpdate","s":"X","U":1,"u":2,"b":[["1","x"]],"a":[]}}',
            "bad decimal",
        ),
        (b'{"stream":"x","data":{"e":"depthUpdate","s":"X","U":1,', "malformed JSON"),
        (b'{"e":"depthUpdate","s":"X","u":2,"b":[],"a":[]}', "without U"),
    ],
)
def test_malformed_binance_frames_raise_frame_error(frame, what):
    f = BinanceFeed("spot")
    f.on_snapshot("X", snapshot(0))
    with pytest.raises(F.FrameError, match=what):
        f.on_frame(frame)


VALID = [
    depth(11, 12, [["100.5", "2"]], [["101.5", "0"]]),
    json.dumps({"u": 12, "s": "BTCUSDT", "b": "100.5", "B": "2", "a": "101.0", "A": "1"}).encode(),
    okx("update", [("101", "2")], [("100.5", "1")], 11, 10),
    json.dumps(
        {
            "arg": {"channel": "trades", "instId": "A-B"},
            "data": [{"tradeId": "7", "px": "1.5", "sz": "2", "side": "buy", "ts": "1"}],
        }
    ).encode(),
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_fuzz_mutated_frames_never_crash(base, data):
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[pos:]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    for feed in (BinanceFeed("spot"), OkxFeed()):
        if isinstance(feed, BinanceFeed):
            feed.on_snapshot("BTCUSDT", snapshot(10))
        else:
            feed.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 10, -1))
        try:
            code = feed.on_frame(bytes(raw))
        except F.FrameError:
            continue
        assert code in F.RESULT_NAMES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_never_crash(raw):
    for feed in (BinanceFeed("spot"), OkxFeed()):
        try:
            code = feed.on_frame(raw) if raw else F.OTHER
        except F.FrameError:
            continue
        assert code in F.RESULT_NAMES


def test_book_side_constants_match():
    assert (BID, ASK) == (0, 1)
    assert np.dtype(F.TRADE_DTYPE).itemsize == 48


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 12),
    st.integers(0, 12),
    st.lists(st.tuples(st.integers(1, 10**12), st.integers(1, 10**15)), min_size=0, max_size=40),
)
def test_book_checksum_text_matches_independent_formatting(ps, ss, levels):
    import zlib

    from ext.book import OrderBook
    from ext.scaled import format_scaled

    book = OrderBook(ps, ss)
    prices = sorted({p for p, _ in levels})
    mid = len(prices) // 2
    sizes = dict(levels)
    for p in prices[:mid]:
        book.apply(BID, p, sizes[p])
    for p in prices[mid:]:
        book.apply(ASK, p, sizes[p])
    bids = [(p, sizes[p]) for p in reversed(prices[:mid])][:25]
    asks = [(p, sizes[p]) for p in prices[mid:]][:25]
    parts = []
    for i in range(25):
        for side in (bids, asks):
            if i < len(side):
                parts += [format_scaled(side[i][0], ps), format_scaled(side[i][1], ss)]
    crc = zlib.crc32(":".join(parts).encode())
    assert F.book_checksum(book) == (crc - 2**32 if crc >= 2**31 else crc)


# ---------------------------------------------------------------------------- review cases


def test_truncated_after_comma_is_a_frame_error_not_a_crash():
    for feed, frame in (
        (OkxFeed(), b'{"arg":{"channel":"trades","instId":"BTC-USDT"},'),
        (BinanceFeed("spot"), b'{"e":"trade",'),
        (
            BinanceFeed("spot"),
            b'{"stream":"x","data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":',
        ),
    ):
        view = memoryview(bytearray(frame))  # no trailing NUL to hide an over-read
        with pytest.raises(F.FrameError):
            feed.on_frame(view)


def test_binance_malformed_after_first_side_leaves_book_out_of_sync():
    f = BinanceFeed("spot")
    f.on_snapshot("BTCUSDT", snapshot(10))
    bad = (
        b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
        b'"U":11,"u":12,"b":[["100.05","7"]]6"a":[]}}'
    )
    with pytest.raises(F.FrameError):
        f.on_frame(bad)
    assert not f.book("BTCUSDT", "depth").in_sync


def test_okx_malformed_after_inline_apply_leaves_book_out_of_sync():
    f = OkxFeed()
    f.on_frame(okx("snapshot", [("101", "1")], [("100", "1")], 10, -1))
    bad = (
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],'
        b'"bids":[["100.5","7","0","1"]],"ts":"2","checksum":0,"prevSeqId":10,"seqId":11,}]}'
    )
    with pytest.raises(F.FrameError):
        f.on_frame(bad)
    assert not f.book("BTC-USDT", "books").in_sync


def test_book_ticker_with_mixed_decimals_is_compared_at_one_scale():
    f = BinanceFeed("spot")
    f.on_snapshot("BTCUSDT", snapshot(10, bids=(("100.5", "1"),), asks=(("101.0", "1"),)))
    tick = {"u": 12, "s": "BTCUSDT", "b": "100.5", "B": "1", "a": "100.75", "A": "2"}
    f.on_frame(json.dumps(tick).encode())
    assert f.on_frame(depth(11, 12, [], [["101.0", "0"], ["100.75", "2"]])) == F.UPDATE
    assert f.stats()[0]["book_ticker"] == {"compared": 1, "matched": 1, "mismatched": 0}


def test_malformed_buffered_diff_raises_and_keeps_later_diffs():
    f = BinanceFeed("spot")
    f.on_frame(
        b'{"stream":"b","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":11,"u":12,'
        b'"b":[["1"]],"a":[]}}'
    )
    f.on_frame(depth(13, 14, [["99.5", "1"]]))
    with pytest.raises(F.FrameError, match="malformed level"):
        f.on_snapshot("BTCUSDT", snapshot(10))
    assert f.on_snapshot("BTCUSDT", snapshot(12)) == F.SNAPSHOT
    assert f.book("BTCUSDT", "depth").last_update_id == 14


def test_older_snapshot_does_not_replace_a_synced_book():
    f = BinanceFeed("spot")
    f.on_snapshot("BTCUSDT", snapshot(10))
    f.on_frame(depth(11, 20, [["99.5", "1"]]))
    assert f.on_snapshot("BTCUSDT", snapshot(15)) == F.STALE_SNAPSHOT
    assert f.book("BTCUSDT", "depth").last_update_id == 20
    assert f.on_frame(depth(21, 22)) == F.UPDATE


def test_diff_revealing_a_gap_is_kept_for_bridging():
    f = BinanceFeed("spot")
    f.on_snapshot("BTCUSDT", snapshot(10))
    assert f.on_frame(depth(13, 20, [["99.5", "1"]])) == F.GAP
    assert f.on_frame(depth(21, 25, [["99.6", "1"]])) == F.BUFFERED
    assert f.on_snapshot("BTCUSDT", snapshot(15)) == F.SNAPSHOT
    assert f.book("BTCUSDT", "depth").last_update_id == 25


def test_stale_check_survives_buffer_overflow():
    f = BinanceFeed("spot", max_pending=2)
    for u in (11, 12, 13):
        f.on_frame(depth(u, u))
    assert f.on_snapshot("BTCUSDT", snapshot(5)) == F.STALE_SNAPSHOT


def test_unusual_key_order_falls_back_to_two_passes():
    f = BinanceFeed("spot")
    f.on_snapshot("BTCUSDT", snapshot(10))
    frame = (
        b'{"e":"depthUpdate","s":"BTCUSDT","b":[["99.5","1"]],"U":11,"u":12,"a":[["102.5","1"]]}'
    )
    assert f.on_frame(frame) == F.UPDATE
    book = f.book("BTCUSDT", "depth")
    assert (book.bid_levels, book.ask_levels, book.in_sync) == (2, 2, True)


def test_unrepresentable_rescale_is_a_frame_error():
    f = BinanceFeed("spot")
    f.on_snapshot(
        "BTCUSDT", snapshot(10, bids=(("5000000000000", "1"),), asks=(("5000000000001", "1"),))
    )
    with pytest.raises(F.FrameError, match="rescale"):
        f.on_frame(depth(11, 11, [["1.000001", "1"]]))
    with pytest.raises(F.FrameError, match="more than 18 decimals"):
        BinanceFeed("spot").on_snapshot("X", snapshot(1, bids=(("1e-19", "1"),)))


# ---------------------------------------------------------------------------- CRC-32 paths


def _cpu_has_pclmul() -> bool:
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((ln for ln in fh if ln.startswith("flags")), "")
    except OSError:
        return False
    return " pclmulqdq" in flags and " sse4_1" in flags


def test_crc32_dispatch_uses_pclmul_where_the_cpu_has_it():
    from ext import okx as O

    assert _cpu_has_pclmul() == O.CRC32_CLMUL


def test_crc32_both_paths_match_zlib_all_lengths_and_alignments():
    import random
    import zlib

    from ext import okx as O

    buf = random.Random(7).randbytes(2048 + 64)
    view = memoryview(buf)
    for off in range(17):
        for n in range(2049):
            part = view[off : off + n]
            want = zlib.crc32(part)
            assert O.crc32(part) == want, (off, n)
            assert O.crc32(part, portable=True) == want, (off, n)
    assert O.crc32(bytearray(b"")) == 0
    assert O.crc32(b"\xff" * 4096) == zlib.crc32(b"\xff" * 4096)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.integers(0, 15))
def test_crc32_random_buffers_match_zlib(data, off):
    import zlib

    from ext import okx as O

    part = memoryview(bytes(off) + data)[off:]
    assert O.crc32(part) == zlib.crc32(data) == O.crc32(part, portable=True)


def _dec(v: int, scale: int) -> str:
    """Shortest exact decimal text of v * 10**-scale (as OKX sends canonical values)."""
    from decimal import Decimal

    return f"{Decimal(v).scaleb(-scale).normalize():f}"


def _ref_checksum(bids: dict[int, int], asks: dict[int, int], ps: int, ss: int) -> int:
    import zlib

    b = sorted(bids.items(), reverse=True)[:25]
    a = sorted(asks.items())[:25]
    parts = []
    for i in range(25):
        for side in (b, a):
            if i < len(side):
                parts += [_dec(side[i][0], ps), _dec(side[i][1], ss)]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - 2**32 if crc >= 2**31 else crc


def _okx_compact(action, bids, asks, seq, prev, checksum, ps, ss):
    d = {
        "asks": [[_dec(p, ps), _dec(q, ss), "0", "1"] for p, q in asks],
        "bids": [[_dec(p, ps), _dec(q, ss), "0", "12"] for p, q in bids],
        "ts": str(seq),
        "checksum": checksum,
        "prevSeqId": prev,
        "seqId": seq,
    }
    msg = {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action, "data": [d]}
    return json.dumps(msg, separators=(",", ":")).encode()


def test_okx_book_checksum_with_inferred_scales_below_the_drawn_ones():
    # Found by hypothesis: size 10 at scale 1 is sent as "1", so the book infers scale 0
    # and holds 1; its checksum text must be "1000001:1" (the value), not "...:10".
    f = OkxFeed()
    asks = {10**6 + 1: 10}
    ck = _ref_checksum({}, asks, 0, 1)
    assert f.on_frame(_okx_compact("snapshot", [], sorted(asks.items()), 1, -1, ck, 0, 1)) == (
        F.SNAPSHOT
    )
    assert f.on_frame(_okx_compact("update", [], [], 2, 1, ck, 0, 1)) in (F.UPDATE, F.HEARTBEAT)
    book = f.book("BTC-USDT", "books")
    assert (book.price_scale, book.size_scale) == (0, 0)
    assert F.book_checksum(book) == ck == _ref_checksum({}, {10**6 + 1: 1}, 0, 0)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_okx_checksum_cache_matches_reference_over_update_sequences(data):
    # Compact frames (the fast level path), the cached checksum text against an independent
    # Python text + zlib on every frame: levels inserted above, deleted within and changed
    # below the top 25, rank shifts, frames that leave the top 25 as it was.
    ps = data.draw(st.integers(0, 4), label="ps")
    ss = data.draw(st.integers(0, 8), label="ss")
    mid = 10**6
    offs = st.integers(1, 45)
    sizes = st.integers(1, 10**9)
    bdraw = data.draw(st.dictionaries(offs, sizes, max_size=40), label="b")
    bids = {mid - o: q for o, q in bdraw.items()}
    adraw = data.draw(st.dictionaries(offs, sizes, max_size=40), label="a")
    asks = {mid + o: q for o, q in adraw.items()}
    f = OkxFeed()
    if data.draw(st.booleans(), label="locked"):
        f.set_scales("BTC-USDT", "books", ps, ss)
    ck = _ref_checksum(bids, asks, ps, ss)
    snap = _okx_compact(
        "snapshot", sorted(bids.items(), reverse=True), sorted(asks.items()), 1, -1, ck, ps, ss
    )
    assert f.on_frame(snap) == F.SNAPSHOT
    seq = 1
    for _ in range(data.draw(st.integers(1, 12), label="frames")):
        changes = data.draw(
            st.lists(st.tuples(st.booleans(), offs, st.integers(0, 10**9)), max_size=8),
            label="changes",
        )
        ub: dict[int, int] = {}
        ua: dict[int, int] = {}
        for is_bid, o, q in changes:
            (ub if is_bid else ua)[(mid - o) if is_bid else (mid + o)] = q
        for book_side, upd in ((bids, ub), (asks, ua)):
            for p, q in upd.items():
                if q:
                    book_side[p] = q
                else:
                    book_side.pop(p, None)
        ck = _ref_checksum(bids, asks, ps, ss)
        frame = _okx_compact(
            "update", sorted(ub.items(), reverse=True), sorted(ua.items()), seq + 1, seq, ck, ps, ss
        )
        seq += 1
        res = f.on_frame(frame)
        if ck == 0:
            assert res in (F.UPDATE, F.HEARTBEAT)
            continue
        assert res in (F.UPDATE, F.HEARTBEAT), F.RESULT_NAMES[res]
    book = f.book("BTC-USDT", "books")
    # the drawn integers are at (ps, ss); the book may hold them at inferred scales
    assert F.book_checksum(book) == _ref_checksum(bids, asks, ps, ss)
    stats = f.stats()[0]["checksums"]
    assert stats["mismatched"] == 0
    bad = _okx_compact("update", [], [], seq + 1, seq, (ck + 1) or 1, ps, ss)
    if ck + 1 != 0:
        assert f.on_frame(bad) == F.CHECKSUM_MISMATCH and not book.in_sync


def test_okx_checksum_reused_when_top_25_unchanged_and_recomputed_after():
    f = OkxFeed()
    bids = {1000 - i: 10 + i for i in range(30)}
    asks = {1001 + i: 20 + i for i in range(30)}
    snap = _okx_compact(
        "snapshot",
        sorted(bids.items(), reverse=True),
        sorted(asks.items()),
        1,
        -1,
        _ref_checksum(bids, asks, 0, 0),
        0,
        0,
    )
    assert f.on_frame(snap) == F.SNAPSHOT
    # rank 28 changes: the text of the top 25 is the previous one
    bids[1000 - 28] = 7
    ck = _ref_checksum(bids, asks, 0, 0)
    assert f.on_frame(_okx_compact("update", [(1000 - 28, 7)], [], 2, 1, ck, 0, 0)) == F.UPDATE
    # a wrong checksum while the text is unchanged is still a mismatch
    assert (
        f.on_frame(_okx_compact("update", [], [(1001 + 29, 3)], 3, 2, ck ^ 1, 0, 0))
        == F.CHECKSUM_MISMATCH
    )
    assert f.on_frame(snap) == F.SNAPSHOT  # back in sync, at the snapshot's levels
    bids[1000 - 28] = 10 + 28
    # the best bid goes away, then a new best ask: every rank shifts
    del bids[1000]
    ck = _ref_checksum(bids, asks, 0, 0)
    assert f.on_frame(_okx_compact("update", [(1000, 0)], [], 2, 1, ck, 0, 0)) == F.UPDATE
    asks[1000] = 5
    ck = _ref_checksum(bids, asks, 0, 0)
    assert f.on_frame(_okx_compact("update", [], [(1000, 5)], 3, 2, ck, 0, 0)) == F.UPDATE
    # the same text again (a level beyond 25 removed): reused, still right
    del asks[1001 + 29]
    ck2 = _ref_checksum(bids, asks, 0, 0)
    assert ck2 == ck
    assert f.on_frame(_okx_compact("update", [], [(1001 + 29, 0)], 4, 3, ck2, 0, 0)) == F.UPDATE
    # a finer size rescales the book: the cached text (made at scale 0) must not be reused
    bids10 = {p: q * 10 for p, q in bids.items()} | {1000 - 1: 125}
    ck = _ref_checksum(bids10, {p: q * 10 for p, q in asks.items()}, 0, 1)
    upd = _okx_compact("update", [], [], 5, 4, ck, 0, 0).replace(
        b'"bids":[]', b'"bids":[["999","12.5","0","1"]]'
    )
    assert f.on_frame(upd) == F.UPDATE
    assert f.stats()[0]["checksums"]["mismatched"] == 1


def test_okx_checksum_after_the_last_level_of_a_short_side_goes():
    # every remaining level is unchanged at its rank: only the level count tells the texts apart
    f = OkxFeed()
    bids = {100: 1, 99: 2, 98: 3}
    asks = {101: 1, 102: 2}
    ck = _ref_checksum(bids, asks, 0, 0)
    snap = _okx_compact(
        "snapshot", sorted(bids.items(), reverse=True), sorted(asks.items()), 1, -1, ck, 0, 0
    )
    assert f.on_frame(snap) == F.SNAPSHOT
    del bids[98]
    ck = _ref_checksum(bids, asks, 0, 0)
    assert f.on_frame(_okx_compact("update", [(98, 0)], [], 2, 1, ck, 0, 0)) == F.UPDATE
    del asks[102]
    ck = _ref_checksum(bids, asks, 0, 0)
    assert f.on_frame(_okx_compact("update", [], [(102, 0)], 3, 2, ck, 0, 0)) == F.UPDATE
    assert f.stats()[0]["checksums"] == {"verified": 3, "mismatched": 0, "not_sent": 0}


def test_okx_repeated_envelope_is_parsed_as_the_first_one():
    # frames starting with the last frame's envelope bytes skip re-reading it: same results,
    # errors still name the channel, another instrument or channel is not confused with it
    f = OkxFeed()
    snap = _okx_compact("snapshot", [(100, 1)], [(101, 1)], 1, -1, 0, 0, 0)
    assert f.on_frame(snap) == F.SNAPSHOT
    upd = _okx_compact("update", [(99, 2)], [], 2, 1, 0, 0, 0)
    assert f.on_frame(upd) == F.UPDATE
    env = upd[: upd.index(b'"data":') + len(b'"data":')]
    with pytest.raises(F.FrameError) as err:
        f.on_frame(env + b'[{"asks":[["1x","1","0","1"]],"bids":[]}]}')
    assert err.value.channel == "books"
    assert not f.book("BTC-USDT", "books").in_sync
    with pytest.raises(F.FrameError):
        f.on_frame(env)  # nothing after the envelope
    other = snap.replace(b"BTC-USDT", b"ETH-USDT")
    assert f.on_frame(other) == F.SNAPSHOT
    assert f.on_frame(upd) == F.DROPPED  # BTC-USDT waits for a snapshot, ETH-USDT untouched
    assert f.book("ETH-USDT", "books").in_sync
    assert f.on_frame(snap.replace(b'"books"', b'"books5"')) == F.SNAPSHOT
    assert [i[:2] for i in f.instruments()] == [
        ("BTC-USDT", "books"),
        ("ETH-USDT", "books"),
        ("BTC-USDT", "books5"),
    ]
