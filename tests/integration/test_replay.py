"""Replay: merged exchange-time order, book start from the nearest snapshot, ledger in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.data.archive import Archive, ArchiveSettings
from orchestrator.data.local import LocalArchive
from orchestrator.data.records import LedgerKind, RecordKind, empty
from orchestrator.data.replay import coverage, replay

pytestmark = pytest.mark.integration

S = 10**9
NOW = 1_722_470_400 * S + 43_200 * S  # 2024-08-01 12:00 UTC
PLAIN = ArchiveSettings(timescale="off")


def dataset(seed: int = 0) -> dict[RecordKind, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[RecordKind, np.ndarray] = {}
    # a snapshot of 2 x 5 levels at NOW - 10 s, deltas from NOW - 20 s on
    snap = empty(RecordKind.SNAPSHOT, 10)
    snap["exch_ns"] = NOW - 10 * S
    snap["recv_ns"] = NOW - 10 * S
    snap["seq"] = 190  # the delta stream reaches seq 190 at NOW - 10 s
    snap["side"] = [0] * 5 + [1] * 5
    snap["level"] = list(range(5)) * 2
    snap["price"] = [999, 998, 997, 996, 995, 1001, 1002, 1003, 1004, 1005]
    snap["size"] = rng.integers(1, 100, 10)
    snap["inst"] = 1
    snap["venue"] = 1
    out[RecordKind.SNAPSHOT] = snap
    n = 400
    d = empty(RecordKind.DELTA, n)
    d["exch_ns"] = NOW - 20 * S + np.arange(n) * (S // 10)  # 40 s of deltas, every 100 ms
    d["recv_ns"] = d["exch_ns"] + 1
    d["seq"] = 90 + np.arange(n)
    d["side"] = rng.integers(0, 2, n)
    d["price"] = np.where(d["side"] == 0, 999 - rng.integers(0, 5, n), 1001 + rng.integers(0, 5, n))
    d["size"] = rng.integers(0, 100, n)
    d["inst"] = 1
    d["venue"] = 1
    out[RecordKind.DELTA] = d
    m = 300
    tr = empty(RecordKind.TRADE, m)
    tr["exch_ns"] = NOW + np.sort(rng.integers(0, 20 * S, m))
    tr["exch_ns"][10] = tr["exch_ns"][11] = d["exch_ns"][250]  # same time as a delta
    tr["exch_ns"] = np.sort(tr["exch_ns"])
    tr["recv_ns"] = tr["exch_ns"] + 3
    tr["trade_id"] = 5000 + np.arange(m)
    tr["price"] = 1000
    tr["size"] = 1
    tr["inst"] = 1
    tr["venue"] = 1
    tr["side"] = 1
    tr["price_scale"] = 2
    tr["size_scale"] = 0
    out[RecordKind.TRADE] = tr
    lg = empty(RecordKind.LEDGER, 4)
    lg["exch_ns"] = [NOW - 30 * S, NOW + 5 * S, NOW + 6 * S, NOW + 60 * S]
    lg["recv_ns"] = lg["exch_ns"]
    lg["kind"] = [LedgerKind.START, LedgerKind.GAP, LedgerKind.RESYNC, LedgerKind.STOP]
    lg["inst"] = 1
    lg["venue"] = 1
    out[RecordKind.LEDGER] = lg
    return out


def collect(source: Any) -> list[tuple[RecordKind, np.ndarray]]:
    kinds = (RecordKind.LEDGER, RecordKind.DELTA, RecordKind.TRADE)
    return list(replay(source, [1], NOW, NOW + 20 * S, kinds=kinds, window_ns=7 * S))


def check(batches: list[tuple[RecordKind, np.ndarray]], data: dict[RecordKind, np.ndarray]) -> None:
    # the book starts from the snapshot, then the deltas after it up to the start
    assert batches[0][0] is RecordKind.SNAPSHOT and len(batches[0][1]) == 10
    kind, pre = batches[1]
    d = data[RecordKind.DELTA]
    assert kind is RecordKind.DELTA
    want_pre = d[(d["seq"] > 190) & (d["exch_ns"] < NOW)]
    assert np.array_equal(pre["seq"], want_pre["seq"])
    stream = batches[2:]
    times = np.concatenate([b["exch_ns"] for _, b in stream])
    assert np.all(np.diff(times) >= 0)  # one exchange-time order across kinds
    assert all(len(b) for _, b in stream)
    assert any(stream[i][0] is not stream[i + 1][0] for i in range(len(stream) - 1))
    for k in (RecordKind.DELTA, RecordKind.TRADE, RecordKind.LEDGER):
        got = np.concatenate([b for kk, b in stream if kk is k])
        src = data[k]
        want = src[(src["exch_ns"] >= NOW) & (src["exch_ns"] < NOW + 20 * S)]
        assert len(got) == len(want), k
        assert np.array_equal(np.sort(got["exch_ns"]), np.sort(want["exch_ns"]))
    ledger = [LedgerKind(int(x)) for _, b in stream if _ is RecordKind.LEDGER for x in b["kind"]]
    assert ledger == [LedgerKind.GAP, LedgerKind.RESYNC]  # the gap is marked in place


def test_replay_from_local_and_postgres_is_identical(tmp_path: Path, pg_dsn: str) -> None:
    data = dataset()
    with (
        Archive(pg_dsn, PLAIN, clock=lambda: NOW) as pg,
        LocalArchive(tmp_path / "a.sqlite") as local,
    ):
        pg.migrate(NOW)
        for target in (pg, local):
            for records in data.values():
                target.insert(records)
        a, b = collect(local), collect(pg)
        check(a, data)
        assert [k for k, _ in a] == [k for k, _ in b]
        assert all(x.tobytes() == y.tobytes() for (_, x), (_, y) in zip(a, b, strict=True))
        cov = coverage(local, 1, [1], NOW, NOW + 20 * S)[1]
        assert [(g.start_ns, g.end_ns, g.reason) for g in cov.gaps] == [
            (NOW + 5 * S, NOW + 6 * S, "gap")
        ]
        assert cov == pg.coverage(1, 1, NOW, NOW + 20 * S)


def test_replay_without_deltas_needs_no_snapshot(tmp_path: Path) -> None:
    data = dataset(1)
    with LocalArchive(tmp_path / "a.sqlite") as local:
        local.insert(data[RecordKind.TRADE])
        got = list(replay(local, [1], NOW, NOW + 20 * S, kinds=(RecordKind.TRADE,)))
        assert {k for k, _ in got} == {RecordKind.TRADE}
        assert sum(len(b) for _, b in got) == 300
        assert list(replay(local, [1], NOW, NOW)) == []
