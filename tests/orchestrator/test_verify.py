"""``orchestrator.capture verify`` (compiled parsers + books) against the reference verifier.

The reference (``tests/support/reference.py``: json, Decimal, sortedcontainers) is checked
against the independent results shipped with the data; here the compiled path must agree
with it on every recorded capture, catch every kind of damage, and behave as a command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.capture import CaptureFrame
from orchestrator.capture.verify import verify_files
from tests.support import corrupt
from tests.support.fixtures import SETS
from tests.support.reference import verify_reference

pytestmark = pytest.mark.replay

COMMON_BOOK = [
    "venue",
    "market",
    "symbol",
    "channel",
    "messages",
    "snapshots",
    "updates_applied",
    "updates_dropped",
    "sequence_gaps",
    "seq_resets",
    "resyncs",
    "crossed_books",
    "checksums",
    "book_ticker",
    "ok",
]
COMMON_TRADE = ["venue", "market", "symbol", "channel", "count", "id_gaps", "id_backwards", "ok"]


def _key(r: dict[str, Any]) -> tuple[str, ...]:
    # the reference does not tell Binance.US from Binance: compare the rest
    return (r["venue"].replace("binance_us", "binance"), r["market"], r["symbol"], r["channel"])


def _common(r: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    out = {k: r[k] for k in keys}
    out["venue"] = out["venue"].replace("binance_us", "binance")
    return out


@pytest.fixture(scope="module")
def reference_reports() -> dict[str, dict[str, Any]]:
    return {name: verify_reference(paths) for name, paths in SETS.items()}


@pytest.mark.parametrize("name", sorted(SETS))
def test_compiled_verify_equals_reference(name, reference_reports):
    got = verify_files(SETS[name])
    want = reference_reports[name]
    assert got["ok"] is True and want["ok"] is True
    assert [_key(r) for r in got["instruments"]] == [_key(r) for r in want["instruments"]]
    for g, w in zip(got["instruments"], want["instruments"], strict=True):
        assert _common(g, COMMON_BOOK) == _common(w, COMMON_BOOK), _key(g)
        assert g["in_sync"] and g["duplicates"] == 0
    assert [_common(r, COMMON_TRADE) for r in got["trades"]] == [
        _common(r, COMMON_TRADE) for r in want["trades"]
    ]


def test_binance_us_is_reported_apart_from_binance():
    report = verify_files(SETS["cf-binance-us"])
    assert {r["venue"] for r in report["instruments"]} == {"binance_us"}


def test_okx_checksums_all_verified():
    report = verify_files(SETS["cf-okx"])
    verified = sum(r["checksums"]["verified"] for r in report["instruments"])
    mismatched = sum(r["checksums"]["mismatched"] for r in report["instruments"])
    assert (verified, mismatched) == (290, 0)


def test_every_book_ticker_cross_check_matches():
    for name in ("hb-spot-ethusdt", "hb-usdm-btcusdt", "cf-binance-delivery"):
        for r in verify_files(SETS[name])["instruments"]:
            bt = r["book_ticker"]
            assert bt["mismatched"] == 0 and bt["matched"] == bt["compared"]


# ---------------------------------------------------------------------------- damage


def _verify_copy(frames: list[CaptureFrame], tmp_path: Path) -> dict[str, Any]:
    return verify_files([corrupt.write_raw(frames, tmp_path / "copy.raw.gz")])


def _bad(report: dict[str, Any]) -> list[dict[str, Any]]:
    assert report["ok"] is False
    return [r for r in report["instruments"] if not r["ok"]]


@pytest.fixture(scope="module", params=["cf-binance", "cf-binance-futures"])
def binance_frames(request) -> list[CaptureFrame]:
    return corrupt.load_frames(SETS[request.param])


@pytest.fixture(scope="module")
def okx_frames() -> list[CaptureFrame]:
    return corrupt.load_frames(SETS["cf-okx"])


def test_raw_copy_of_clean_capture_verifies_clean(binance_frames, tmp_path):
    assert _verify_copy(binance_frames, tmp_path)["ok"] is True


@pytest.mark.parametrize("damage", ["drop", "swap"])
def test_binance_sequence_damage_is_a_gap(binance_frames, damage, tmp_path):
    if damage == "drop":
        damaged = corrupt.drop_frame(binance_frames, corrupt.pick_book_diff(binance_frames))
    else:
        damaged = corrupt.swap_frames(binance_frames, *corrupt.pick_swap(binance_frames))
    [inst] = _bad(_verify_copy(damaged, tmp_path))
    assert inst["sequence_gaps"] == 1 and not inst["in_sync"]


def test_binance_duplicated_diff_is_a_duplicate(binance_frames, tmp_path):
    damaged = corrupt.duplicate_frame(binance_frames, corrupt.pick_book_diff(binance_frames))
    [inst] = _bad(_verify_copy(damaged, tmp_path))
    # the venue rule ignores a diff the book already has (u <= last u); it is counted
    assert inst["duplicates"] == 1 and inst["sequence_gaps"] == 0 and inst["in_sync"]


def test_binance_changed_size_is_a_book_ticker_mismatch(binance_frames, tmp_path):
    index, side, price = corrupt.pick_binance_size_change(binance_frames)
    damaged = corrupt.change_size(binance_frames, index, side, price)
    [inst] = _bad(_verify_copy(damaged, tmp_path))
    assert inst["book_ticker"]["mismatched"] == 1 and inst["sequence_gaps"] == 0


@pytest.mark.parametrize("damage", ["drop", "swap", "duplicate", "size"])
def test_okx_damage_is_a_checksum_mismatch(okx_frames, damage, tmp_path):
    if damage == "drop":
        damaged = corrupt.drop_frame(okx_frames, corrupt.pick_book_diff(okx_frames, "okx"))
    elif damage == "swap":
        damaged = corrupt.swap_frames(okx_frames, *corrupt.pick_swap(okx_frames, "okx"))
    elif damage == "duplicate":
        damaged = corrupt.duplicate_frame(okx_frames, *corrupt.pick_okx_duplicate(okx_frames))
    else:
        damaged = corrupt.change_size(okx_frames, *corrupt.pick_okx_size_change(okx_frames))
    [inst] = _bad(_verify_copy(damaged, tmp_path))
    assert inst["checksums"]["mismatched"] >= 1 and not inst["in_sync"]


def test_okx_adjacent_duplicate_is_a_duplicate(okx_frames, tmp_path):
    index = corrupt.pick_book_diff(okx_frames, "okx")
    [inst] = _bad(_verify_copy(corrupt.duplicate_frame(okx_frames, index), tmp_path))
    assert inst["duplicates"] == 1 and inst["checksums"]["mismatched"] == 0


def test_hftbacktest_dropped_diff_is_a_gap(tmp_path):
    frames = corrupt.load_frames(SETS["hb-spot-ethusdt"])
    damaged = corrupt.drop_frame(frames, corrupt.pick_book_diff(frames))
    [inst] = _bad(_verify_copy(damaged, tmp_path))
    assert inst["sequence_gaps"] == 1


# ---------------------------------------------------------------------------- command


def run_verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.capture", "verify", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_clean_capture_exits_0_with_json():
    res = run_verify(*map(str, SETS["cf-okx"]))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] and report["format"] == "cryptofeed"
    assert {r["symbol"] for r in report["instruments"]} == {
        "BTC-USDT",
        "UNI-USD-SWAP",
        "BTC-USD-220527",
    }


def test_cli_damaged_capture_exits_1(okx_frames, tmp_path):
    index = corrupt.pick_book_diff(okx_frames, "okx")
    path = corrupt.write_raw(corrupt.drop_frame(okx_frames, index), tmp_path / "bad.raw.gz")
    res = run_verify(str(path))
    assert res.returncode == 1
    assert json.loads(res.stdout)["ok"] is False


def test_cli_malformed_frame_exits_2_naming_offset(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot",'
        '"data":[{"asks":[["1.5","x"]],"bids":[],"ts":"1","checksum":0}]}\n'
    )
    res = run_verify(str(path))
    assert res.returncode == 2
    assert "okx books frame, byte" in res.stderr and "Traceback" not in res.stderr


def test_cli_missing_file_exits_2(tmp_path):
    res = run_verify(str(tmp_path / "nope.gz"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
