"""The reference verifier (tests/support/reference.py) and the corruption tools.

The reference is the oracle for the compiled parsers, so it is itself checked here:
it must reproduce the independent results in ``../shared/data/CHECKS.txt`` (outside the repo) on
every fixture, the OKX CRC and sequencing vectors of EXCHANGES.md §8, and catch each
kind of damage :mod:`tests.support.corrupt` makes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.capture import CaptureFrame
from tests.support import corrupt
from tests.support.fixtures import SETS
from tests.support.reference import (
    okx_checksum,
    okx_checksum_string,
    signed_crc32,
    verify_frames,
    verify_reference,
)

pytestmark = pytest.mark.replay

# Numbers copied from CHECKS.txt. Binance books: symbol -> (market, depth_msgs, applied,
# bookTicker_cmp) with 1 snapshot each, every cmp a match, and depth_msgs - applied
# diffs dropped as covered by the snapshot. OKX books: instId -> (market, snapshots,
# updates, checksums verified). Trades: (channel, symbol) -> count.
EXPECTED: dict[str, dict[str, dict[Any, Any]]] = {
    "hb-spot-ethusdt": {
        "binance": {"ETHUSDT": ("spot", 6470, 6468, 1056)},
        "trades": {("trade", "ETHUSDT"): 14515},
    },
    "hb-usdm-btcusdt": {
        "binance": {"BTCUSDT": ("usdm", 6551, 6547, 629)},
        "trades": {("trade", "BTCUSDT"): 21313},
    },
    "hb-coinm-btcusd": {
        "binance": {"BTCUSD_PERP": ("coinm", 44795, 44772, 1885)},
        "trades": {("trade", "BTCUSD_PERP"): 5235},
    },
    "hb-coinm-ethusd": {
        "binance": {"ETHUSD_PERP": ("coinm", 39155, 39133, 2278)},
        "trades": {("trade", "ETHUSD_PERP"): 3595},
    },
    "cf-binance": {
        "binance": {
            "BLZETH": ("spot", 10, 9, 1),
            "LRCBTC": ("spot", 15, 13, 6),
            "NKNUSDT": ("spot", 150, 149, 19),
            "RUNEEUR": ("spot", 2, 1, 0),
        },
        "trades": {("aggTrade", "LRCBTC"): 1, ("aggTrade", "NKNUSDT"): 1},
    },
    "cf-binance-futures": {
        "binance": {
            "AKROUSDT": ("usdm", 189, 188, 7),
            "CTKUSDT": ("usdm", 185, 180, 18),
            "KEEPUSDT": ("usdm", 135, 132, 13),
            "SUSHIUSDT": ("usdm", 255, 252, 12),
        },
        "trades": {
            ("aggTrade", "AKROUSDT"): 8,
            ("aggTrade", "CTKUSDT"): 38,
            ("aggTrade", "KEEPUSDT"): 5,
            ("aggTrade", "SUSHIUSDT"): 40,
        },
    },
    "cf-binance-delivery": {
        "binance": {
            "BCHUSD_210924": ("coinm", 116, 101, 13),
            "BCHUSD_PERP": ("coinm", 215, 208, 62),
            "BTCUSD_211231": ("coinm", 227, 191, 14),
            "EOSUSD_PERP": ("coinm", 222, 180, 8),
            "ETCUSD_PERP": ("coinm", 238, 215, 23),
            "ETHUSD_210924": ("coinm", 258, 228, 11),
            "LINKUSD_211231": ("coinm", 152, 122, 12),
            "LINKUSD_PERP": ("coinm", 238, 228, 12),
            "TRXUSD_PERP": ("coinm", 170, 139, 13),
            "XRPUSD_PERP": ("coinm", 211, 176, 44),
        },
        "trades": {
            ("aggTrade", "BCHUSD_PERP"): 2,
            ("aggTrade", "BTCUSD_211231"): 2,
            ("aggTrade", "EOSUSD_PERP"): 3,
            ("aggTrade", "ETCUSD_PERP"): 14,
            ("aggTrade", "ETHUSD_210924"): 10,
            ("aggTrade", "LINKUSD_PERP"): 5,
            ("aggTrade", "XRPUSD_PERP"): 15,
        },
    },
    "cf-binance-us": {
        "binance": {
            "COMPUSDT": ("spot", 107, 106, 21),
            "CRVUSDT": ("spot", 29, 28, 5),
            "OMGBUSD": ("spot", 159, 158, 19),
            "ZRXUSDT": ("spot", 41, 40, 11),
        },
        "trades": {("aggTrade", "OMGBUSD"): 11},
    },
    "cf-okx": {
        "okx": {
            "BTC-USD-220527": ("futures", 1, 98, 99),
            "BTC-USDT": ("spot", 1, 97, 98),
            "UNI-USD-SWAP": ("swap", 1, 92, 93),
        },
        "trades": {
            ("trades", "BTC-USD-220527"): 4,
            ("trades", "BTC-USDT"): 69,
            ("trades", "UNI-USD-SWAP"): 1,
        },
    },
    "cf-binance-70789232": {
        "binance": {
            "AAVEUPUSDT": ("spot", 177, 172, 43),
            "ADARUB": ("spot", 6, 4, 1),
            "BUSDTRY": ("spot", 10, 9, 6),
            "GTOBTC": ("spot", 27, 26, 13),
            "ONTTRY": ("spot", 18, 16, 7),
            "PERLBNB": ("spot", 42, 39, 7),
            "QSPBTC": ("spot", 20, 19, 2),
            "STEEMETH": ("spot", 9, 7, 0),
            "SWRVBUSD": ("spot", 131, 129, 57),
            "VETETH": ("spot", 174, 169, 63),
        },
        "trades": {
            ("aggTrade", "AAVEUPUSDT"): 4,
            ("aggTrade", "BUSDTRY"): 3,
            ("aggTrade", "ONTTRY"): 9,
            ("aggTrade", "QSPBTC"): 1,
            ("aggTrade", "SWRVBUSD"): 2,
            ("aggTrade", "VETETH"): 5,
        },
    },
    "gc-okx-trades": {"trades": {("trades", "BTC-USDT"): 2}},
}

FORMATS = {"hb": "hftbacktest", "cf": "cryptofeed", "gc": "okx-jsonl"}


def _zero_problems(inst: dict[str, Any]) -> None:
    assert inst["sequence_gaps"] == 0
    assert inst["seq_resets"] == 0
    assert inst["resyncs"] == 0
    assert inst["crossed_books"] == 0
    assert inst["checksums"]["mismatched"] == 0
    assert inst["book_ticker"]["mismatched"] == 0
    assert inst["ok"] is True


@pytest.mark.parametrize("name", list(SETS))
def test_reference_reproduces_checks(name: str) -> None:
    report = verify_reference(SETS[name])
    json.dumps(report)  # JSON-serialisable
    assert report["files"] == [str(p) for p in SETS[name]]
    assert report["format"] == FORMATS[name[:2]]
    expected = EXPECTED[name]
    books = {i["symbol"]: i for i in report["instruments"]}
    assert set(books) == set(expected.get("binance", {})) | set(expected.get("okx", {}))
    keys = [(i["venue"], i["market"], i["symbol"], i["channel"]) for i in report["instruments"]]
    assert keys == sorted(keys)
    for symbol, (market, depth_msgs, applied, bt_cmp) in expected.get("binance", {}).items():
        inst = books[symbol]
        assert (inst["venue"], inst["market"], inst["channel"]) == ("binance", market, "depth")
        assert inst["messages"] == depth_msgs + 1
        assert inst["snapshots"] == 1
        assert inst["updates_applied"] == applied
        assert inst["updates_dropped"] == depth_msgs - applied
        assert inst["book_ticker"] == {"compared": bt_cmp, "matched": bt_cmp, "mismatched": 0}
        assert inst["checksums"] == {"verified": 0, "mismatched": 0, "not_sent": 0}
        _zero_problems(inst)
    for inst_id, (market, snaps, updates, verified) in expected.get("okx", {}).items():
        inst = books[inst_id]
        assert (inst["venue"], inst["market"], inst["channel"]) == ("okx", market, "books")
        assert inst["messages"] == snaps + updates
        assert inst["snapshots"] == snaps
        assert inst["updates_applied"] == updates
        assert inst["updates_dropped"] == 0
        assert inst["checksums"] == {"verified": verified, "mismatched": 0, "not_sent": 0}
        _zero_problems(inst)
    trades = {(t["channel"], t["symbol"]): t for t in report["trades"]}
    assert {k: t["count"] for k, t in trades.items()} == expected["trades"]
    for t in trades.values():
        assert (t["id_gaps"], t["id_backwards"], t["ok"]) == (0, 0, True)
    assert report["ok"] is True


def test_okx_total_checksums() -> None:
    report = verify_reference(SETS["cf-okx"])
    verified = sum(i["checksums"]["verified"] for i in report["instruments"])
    assert verified == 290  # CHECKS.txt: 290/290 over 3 snapshots + 287 updates


# ---------------------------------------------------------------------------- CRC vectors


@pytest.mark.parametrize(
    ("bids", "asks", "text", "crc"),
    [
        (
            [("3366.1", "7"), ("3366", "6")],
            [("3366.8", "9"), ("3368", "8")],
            "3366.1:7:3366.8:9:3366:6:3368:8",
            -1881014294,
        ),
        (
            [("3366.1", "7")],
            [("3366.8", "9"), ("3368", "8"), ("3372", "8")],
            "3366.1:7:3366.8:9:3368:8:3372:8",
            831078360,
        ),
        (
            [("64250.1", "12"), ("64250", "3"), ("64249.5", "40")],
            [("64250.2", "5"), ("64250.6", "1")],
            "64250.1:12:64250.2:5:64250:3:64250.6:1:64249.5:40",
            -204565051,
        ),
    ],
)
def test_okx_crc_vectors(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]], text: str, crc: int
) -> None:
    assert okx_checksum_string(bids, asks) == text
    assert signed_crc32(text) == crc
    assert okx_checksum(bids, asks) == crc


def test_okx_crc_float_pitfall() -> None:
    assert signed_crc32("0.00001000:1:0.00001100:2") == -1586254587
    assert signed_crc32("1e-05:1:1.1e-05:2") == 486334678


def test_okx_checksum_uses_top_25_only() -> None:
    bids = [(str(100 - i), "1") for i in range(30)]
    asks = [(str(200 + i), "2") for i in range(26)]
    assert okx_checksum(bids, asks) == okx_checksum(bids[:25], asks[:25])


# ----------------------------------------------------------------- sequencing vectors (§8)


def _bn(market: str, data: dict[str, Any], ns: int) -> CaptureFrame:
    stream = data["s"].lower() + ("@depth@100ms" if data.get("e") else "@bookTicker")
    payload = json.dumps({"stream": stream, "data": data}).encode()
    return CaptureFrame(ns, "binance", market, stream, "ws", "", payload)


def _diff(u0: int, u1: int, pu: int | None = None, bids: Any = (), asks: Any = ()) -> dict:
    d: dict[str, Any] = {
        "e": "depthUpdate",
        "E": 1,
        "s": "BTCUSDT",
        "U": u0,
        "u": u1,
        "b": list(bids),
        "a": list(asks),
    }
    if pu is not None:
        d["pu"] = pu
    return d


def _snap(market: str, last: int, ns: int) -> CaptureFrame:
    body = {"lastUpdateId": last, "bids": [["100.0", "1"]], "asks": [["101.0", "1"]]}
    url = "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"
    return CaptureFrame(ns, "binance", market, "", "rest", url, json.dumps(body).encode())


def _only(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["instruments"]) == 1
    inst: dict[str, Any] = report["instruments"][0]
    return inst


def test_binance_spot_sequencing_vector() -> None:
    # book id 100; (95,100) ignore; (96,103) apply; (104,110) apply; (112,115) gap.
    frames = [_snap("spot", 100, 1)] + [
        _bn("spot", _diff(a, b), n)
        for n, (a, b) in enumerate([(95, 100), (96, 103), (104, 110), (112, 115)], start=2)
    ]
    inst = _only(verify_frames(frames))
    assert (inst["updates_dropped"], inst["updates_applied"], inst["sequence_gaps"]) == (1, 2, 1)
    assert inst["ok"] is False


def test_binance_futures_sequencing_vector() -> None:
    # L=500; (480,499,470) drop; (495,505,499) first; (506,509,505) ok; (510,512,508) gap.
    diffs = [(480, 499, 470), (495, 505, 499), (506, 509, 505), (510, 512, 508)]
    frames = [_bn("usdm", _diff(*d), n) for n, d in enumerate(diffs[:1])]
    frames.append(_snap("usdm", 500, 10))
    frames += [_bn("usdm", _diff(*d), 20 + n) for n, d in enumerate(diffs[1:])]
    inst = _only(verify_frames(frames))
    assert (inst["updates_dropped"], inst["updates_applied"], inst["sequence_gaps"]) == (1, 2, 1)


def test_binance_resync_after_gap() -> None:
    frames = [
        _snap("spot", 100, 1),
        _bn("spot", _diff(101, 105), 2),
        _bn("spot", _diff(110, 112), 3),  # gap: out of sync, buffered
        _bn("spot", _diff(113, 120), 4),  # buffered
        _snap("spot", 115, 5),  # resync: (110,112) dropped, (113,120) bridges
        _bn("spot", _diff(121, 121), 6),
    ]
    inst = _only(verify_frames(frames))
    assert inst["snapshots"] == 2
    assert inst["resyncs"] == 1
    assert inst["sequence_gaps"] == 1
    assert inst["updates_dropped"] == 1
    assert inst["updates_applied"] == 3


def test_binance_book_ticker_and_crossed() -> None:
    ticker = {"u": 102, "s": "BTCUSDT", "b": "100.0", "B": "2", "a": "101.0", "A": "1"}
    frames = [
        _snap("spot", 100, 1),
        _bn("spot", ticker, 2),  # ahead of the book: held until u=102 is applied
        _bn("spot", _diff(101, 102, bids=[["100.0", "2.000"]]), 3),
        _bn("spot", dict(ticker, B="3"), 4),  # same u, book unchanged: compared, mismatch
        _bn("spot", _diff(103, 103, bids=[["101.5", "1"]]), 5),  # crosses 101.0
    ]
    inst = _only(verify_frames(frames))
    assert inst["book_ticker"] == {"compared": 2, "matched": 1, "mismatched": 1}
    assert inst["crossed_books"] == 1
    assert inst["ok"] is False


def test_binance_updates_without_snapshot_not_ok() -> None:
    inst = _only(verify_frames([_bn("spot", _diff(1, 2), 1)]))
    assert (inst["messages"], inst["snapshots"], inst["updates_applied"]) == (1, 0, 0)
    assert inst["ok"] is False


def _okx(action: str, prev: int | None, seq: int, bids: Any = (), asks: Any = ()) -> CaptureFrame:
    data: dict[str, Any] = {
        "asks": list(asks),
        "bids": list(bids),
        "ts": "1",
        "checksum": 0,
        "seqId": seq,
    }
    if prev is not None:
        data["prevSeqId"] = prev
    msg = {"arg": {"channel": "books", "instId": "BTC-USDT-SWAP"}, "action": action, "data": [data]}
    return CaptureFrame(seq, "okx", "unknown", "", "ws", "", json.dumps(msg).encode())


def test_okx_sequencing_vector() -> None:
    # snapshot 10 (prev -1); (10,15) apply; (15,15) heartbeat; (15,3) reset; (3,5); (4,9) gap.
    frames = [
        _okx("snapshot", -1, 10, bids=[["1.0", "1", "0", "1"]], asks=[["2.0", "1", "0", "1"]]),
        _okx("update", 10, 15, bids=[["1.5", "2", "0", "1"]]),
        _okx("update", 15, 15),
        _okx("update", 15, 3, asks=[["2.0", "0", "0", "0"]]),
        _okx("update", 3, 5, asks=[["2.5", "1", "0", "1"]]),
        _okx("update", 4, 9),
        _okx("update", 9, 11),  # dropped: out of sync
        _okx("snapshot", -1, 20, bids=[["1.0", "1", "0", "1"]]),
        _okx("update", 20, 21),
    ]
    inst = _only(verify_frames(frames))
    assert (inst["venue"], inst["market"], inst["symbol"]) == ("okx", "swap", "BTC-USDT-SWAP")
    assert inst["messages"] == 9
    assert inst["snapshots"] == 2
    assert inst["updates_applied"] == 5
    assert inst["seq_resets"] == 1
    assert inst["sequence_gaps"] == 1
    assert inst["resyncs"] == 1
    assert inst["checksums"] == {"verified": 0, "mismatched": 0, "not_sent": 7}
    assert inst["ok"] is False


def test_okx_duplicated_update_with_seq_is_gap() -> None:
    frames = [_okx("snapshot", -1, 10), _okx("update", 10, 11), _okx("update", 10, 11)]
    assert _only(verify_frames(frames))["sequence_gaps"] == 1


def test_okx_update_before_snapshot_not_ok() -> None:
    inst = _only(verify_frames([_okx("update", 9, 10), _okx("snapshot", -1, 11)]))
    assert inst["updates_applied"] == 0
    assert inst["ok"] is False


def test_trade_id_gaps_and_backwards() -> None:
    def trade(t: int) -> CaptureFrame:
        data = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": t, "p": "1", "q": "1"}
        return _bn("spot", data, t)

    report = verify_frames([trade(t) for t in (1, 2, 4, 3, 5, 5, 6)])
    assert report["trades"] == [
        {
            "venue": "binance",
            "market": "spot",
            "symbol": "BTCUSDT",
            "channel": "trade",
            "count": 7,
            "id_gaps": 1,
            "id_backwards": 2,
            "ok": False,
        }
    ]
    assert report["ok"] is False


# ------------------------------------------------------------------------------ corruption


def _verify_copy(frames: list[CaptureFrame], tmp_path: Path) -> dict[str, Any]:
    path = corrupt.write_raw(frames, tmp_path / "copy.raw.gz")
    report = verify_reference([path])
    assert report["format"] == "slipstream-raw"
    return report


def _bad(report: dict[str, Any]) -> list[dict[str, Any]]:
    assert report["ok"] is False
    return [i for i in report["instruments"] if not i["ok"]]


@pytest.fixture(scope="module")
def spot_frames() -> list[CaptureFrame]:
    return corrupt.load_frames(SETS["cf-binance"])


@pytest.fixture(scope="module")
def usdm_frames() -> list[CaptureFrame]:
    return corrupt.load_frames(SETS["cf-binance-futures"])


@pytest.fixture(scope="module")
def okx_frames() -> list[CaptureFrame]:
    return corrupt.load_frames(SETS["cf-okx"])


def test_raw_copy_of_clean_capture_is_clean(
    spot_frames: list[CaptureFrame], tmp_path: Path
) -> None:
    copy = _verify_copy(spot_frames, tmp_path)
    original = verify_reference(SETS["cf-binance"])
    assert copy["instruments"] == original["instruments"]
    assert copy["trades"] == original["trades"]


@pytest.mark.parametrize("market", ["spot", "usdm"])
@pytest.mark.parametrize("damage", ["drop", "swap", "duplicate"])
def test_binance_sequence_damage_is_a_gap(
    damage: str, market: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    frames: list[CaptureFrame] = request.getfixturevalue(f"{market}_frames")
    if damage == "drop":
        damaged = corrupt.drop_frame(frames, corrupt.pick_book_diff(frames))
    elif damage == "swap":
        damaged = corrupt.swap_frames(frames, *corrupt.pick_swap(frames))
    else:
        damaged = corrupt.duplicate_frame(frames, corrupt.pick_book_diff(frames))
    [inst] = _bad(_verify_copy(damaged, tmp_path))
    assert inst["sequence_gaps"] == 1
    assert inst["crossed_books"] == 0
    assert inst["book_ticker"]["mismatched"] == 0


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_binance_changed_size_is_a_book_ticker_mismatch(
    market: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    frames: list[CaptureFrame] = request.getfixturevalue(f"{market}_frames")
    index, side, price = corrupt.pick_binance_size_change(frames)
    damaged = corrupt.change_size(frames, index, side, price)
    assert len(damaged[index].payload) - len(frames[index].payload) in (0, 1)  # q -> q+1
    [inst] = _bad(_verify_copy(damaged, tmp_path))
    assert inst["sequence_gaps"] == 0
    assert inst["book_ticker"]["mismatched"] >= 1


@pytest.mark.parametrize("damage", ["drop", "swap", "duplicate", "change"])
def test_okx_damage_is_a_checksum_mismatch(
    damage: str, okx_frames: list[CaptureFrame], tmp_path: Path
) -> None:
    frames = okx_frames
    if damage == "drop":
        damaged = corrupt.drop_frame(frames, corrupt.pick_book_diff(frames, "okx"))
    elif damage == "swap":
        damaged = corrupt.swap_frames(frames, *corrupt.pick_swap(frames, "okx"))
    elif damage == "duplicate":
        damaged = corrupt.duplicate_frame(frames, *corrupt.pick_okx_duplicate(frames))
    else:
        damaged = corrupt.change_size(frames, *corrupt.pick_okx_size_change(frames))
    [inst] = _bad(_verify_copy(damaged, tmp_path))
    assert inst["checksums"]["mismatched"] >= 1
    assert inst["sequence_gaps"] == 0  # these 2022 captures carry no seqId


def test_hftbacktest_dropped_diff_is_a_gap(tmp_path: Path) -> None:
    frames = corrupt.load_frames(SETS["hb-spot-ethusdt"])
    index = corrupt.pick_book_diff(frames)
    [inst] = _bad(_verify_copy(corrupt.drop_frame(frames, index), tmp_path))
    assert inst["symbol"] == "ETHUSDT"
    assert inst["sequence_gaps"] == 1
    assert inst["updates_applied"] < 6468
    assert inst["book_ticker"]["mismatched"] == 0


def test_change_size_keeps_other_bytes(okx_frames: list[CaptureFrame]) -> None:
    index, side, price = corrupt.pick_okx_size_change(okx_frames)
    before = okx_frames[index].payload
    after = corrupt.change_size(okx_frames, index, side, price)[index].payload
    diff = [i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b]
    assert diff and len(after) - len(before) in (0, 1)
    json.loads(after)
