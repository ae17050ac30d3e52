"""The embedded archive against the PostgreSQL one: same records back, same order, same coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.data.archive import Archive, ArchiveSettings
from orchestrator.data.local import LocalArchive, LocalArchiveError
from orchestrator.data.records import LedgerKind, RecordKind, empty, encode_batch

pytestmark = pytest.mark.integration

DAY = 86_400 * 10**9
NOW = 1_722_470_400 * 10**9 + DAY // 2  # 2024-08-01 12:00 UTC
PLAIN = ArchiveSettings(timescale="off")


def make_trades(
    n: int, inst: int, venue: int, t0: int, first_id: int = 1, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = empty(RecordKind.TRADE, n)
    r["exch_ns"] = t0 + np.sort(rng.integers(0, n * 1000, n))  # equal timestamps happen
    r["recv_ns"] = r["exch_ns"] + 5
    r["trade_id"] = first_id + np.arange(n)
    r["price"] = 6_000_000 + rng.integers(-5000, 5000, n)
    r["size"] = rng.integers(1, 10**6, n)
    r["inst"] = inst
    r["venue"] = venue
    r["side"] = rng.choice([-1, 1], n)
    r["price_scale"] = 2
    r["size_scale"] = 5
    return r


def ledger(rows: list[tuple[int, LedgerKind]], inst: int, venue: int) -> np.ndarray:
    out = empty(RecordKind.LEDGER, len(rows))
    for i, (t, k) in enumerate(rows):
        out[i]["exch_ns"] = t
        out[i]["recv_ns"] = t
        out[i]["inst"] = inst
        out[i]["venue"] = venue
        out[i]["kind"] = int(k)
    return out


def test_insert_is_idempotent_and_read_is_ordered(tmp_path: Path) -> None:
    a = make_trades(5000, 1, 1, NOW)
    b = make_trades(3000, 2, 1, NOW, first_id=10_000, seed=1)
    with LocalArchive(tmp_path / "archive.sqlite") as local:
        assert local.insert(a).inserted == 5000
        res = local.insert(a)
        assert (res.inserted, res.duplicates) == (0, 5000)
        overlap = np.concatenate([a[-100:], make_trades(50, 1, 1, NOW + 10**9, first_id=5001)])
        assert local.insert(overlap).inserted == 50
        assert (
            local.insert_batch(encode_batch(RecordKind.TRADE, b), batch_key="s:1-2").inserted
            == 3000
        )
        again = local.insert_batch(encode_batch(RecordKind.TRADE, b), batch_key="s:1-2")
        assert again.batch_duplicate and again.inserted == 0
        got = np.concatenate(
            list(local.read(RecordKind.TRADE, [1, 2], NOW, NOW + DAY, chunk_rows=777))
        )
        assert len(got) == 8050 and local.count(RecordKind.TRADE) == 8050
        order = np.lexsort([got["trade_id"], got["inst"], got["exch_ns"]])
        assert np.array_equal(order, np.arange(len(got)))
        window = np.concatenate(
            list(local.read(RecordKind.TRADE, [2], NOW + 1000, NOW + 2_000_000))
        )
        want = b[(b["exch_ns"] >= NOW + 1000) & (b["exch_ns"] < NOW + 2_000_000)]
        assert np.array_equal(np.sort(window["trade_id"]), np.sort(want["trade_id"]))
    with LocalArchive(tmp_path / "archive.sqlite") as reopened:  # durable across reopen
        assert reopened.count(RecordKind.TRADE) == 8050


def test_replay_and_coverage_equal_the_postgresql_archive(tmp_path: Path, pg_dsn: str) -> None:
    trades = np.concatenate(
        [make_trades(4000, 1, 1, NOW, seed=3), make_trades(2500, 2, 1, NOW, first_id=9000, seed=4)]
    )
    events = ledger(
        [
            (NOW - 10**9, LedgerKind.START),
            (NOW + 10**6, LedgerKind.DISCONNECT),
            (NOW + 2 * 10**6, LedgerKind.RECONNECT),
            (NOW + 3 * 10**6, LedgerKind.GAP),
            (NOW + 3_500_000, LedgerKind.RESYNC),
            (NOW + 4 * 10**6, LedgerKind.START),  # a restart without STOP: crash gap
            (NOW + 5 * 10**9, LedgerKind.STOP),
        ],
        1,
        1,
    )
    with (
        Archive(pg_dsn, PLAIN, clock=lambda: NOW) as pg,
        LocalArchive(tmp_path / "a.sqlite") as local,
    ):
        pg.migrate(NOW)
        for target in (pg, local):
            target.insert(trades)
            target.insert(events)
        want = np.concatenate(list(pg.read(RecordKind.TRADE, [1, 2], NOW, NOW + DAY)))
        got = np.concatenate(list(local.read(RecordKind.TRADE, [1, 2], NOW, NOW + DAY)))
        assert want.tobytes() == got.tobytes()
        for start, end in [(NOW - 2 * 10**9, NOW + 6 * 10**9), (NOW, NOW + 3_200_000)]:
            assert local.coverage(1, 1, start, end) == pg.coverage(1, 1, start, end)
        cov = local.coverage(1, 1, NOW - 2 * 10**9, NOW + 6 * 10**9)
        assert {g.reason for g in cov.gaps} >= {"unrecorded", "disconnect", "gap", "crash"}


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LocalArchiveError, match="not a usable archive"):
        LocalArchive(bad)
    with (
        LocalArchive(tmp_path / "ok.sqlite") as local,
        pytest.raises(TypeError, match="record dtype"),
    ):
        local.insert(np.zeros(3, dtype=np.int64))
