"""Replay speed of the embedded archive: 1 M trades read back in exchange-time order.

Slipstream's ``LocalArchive`` stores record blobs and orders them with numpy; the same-run
reference stores one SQLite row per trade and reads them back with ``ORDER BY`` (the
usual way to keep events in an embedded database). ``extra_info["rows_per_s"]``.

Run: ``python -m pytest benchmarks/test_bench_replay.py --benchmark-only -p no:cacheprovider``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.data.local import LocalArchive
from orchestrator.data.records import RecordKind, empty
from orchestrator.data.replay import replay

N = 1_000_000
T0 = 1_722_470_400 * 10**9


def _trades(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    r = empty(RecordKind.TRADE, n)
    r["exch_ns"] = T0 + np.sort(rng.integers(0, 3600 * 10**9, n))
    r["recv_ns"] = r["exch_ns"] + 1000
    r["trade_id"] = np.arange(n)
    r["price"] = 6_000_000 + rng.integers(-5000, 5000, n)
    r["size"] = rng.integers(1, 10**6, n)
    r["inst"] = 1 + (np.arange(n) % 4)
    r["venue"] = 1
    r["side"] = 1
    return r


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("replay")
    trades = _trades(N)
    with LocalArchive(folder / "local.sqlite") as local:
        for off in range(0, N, 100_000):
            local.insert(trades[off : off + 100_000])
    db = sqlite3.connect(folder / "rows.sqlite")
    db.execute("CREATE TABLE trades (exch_ns INT, inst INT, trade_id INT, price INT, size INT)")
    db.executemany(
        "INSERT INTO trades VALUES (?, ?, ?, ?, ?)",
        zip(
            *(trades[f].tolist() for f in ("exch_ns", "inst", "trade_id", "price", "size")),
            strict=True,
        ),
    )
    db.execute("CREATE INDEX t_idx ON trades (exch_ns)")
    db.commit()
    db.close()
    return folder / "local.sqlite", folder / "rows.sqlite"


def test_replay_local_archive_ext(benchmark: Any, stored: tuple[Path, Path]) -> None:
    benchmark.group = "replay: 1 M trades, embedded archive"
    local = LocalArchive(stored[0])

    def run() -> int:
        return sum(
            len(b)
            for _, b in replay(
                local,
                [1, 2, 3, 4],
                T0,
                T0 + 3600 * 10**9,
                kinds=(RecordKind.TRADE,),
                window_ns=600 * 10**9,
            )
        )

    assert benchmark.pedantic(run, rounds=3, iterations=1) == N
    benchmark.extra_info["rows_per_s"] = round(N / benchmark.stats.stats.min)
    local.close()


def test_replay_sqlite_rows_reference(benchmark: Any, stored: tuple[Path, Path]) -> None:
    benchmark.group = "replay: 1 M trades, embedded archive"
    db = sqlite3.connect(stored[1])

    def run() -> int:
        n = 0
        query = "SELECT exch_ns, inst, trade_id, price, size FROM trades"
        for _ in db.execute(query + " ORDER BY exch_ns, inst, trade_id"):
            n += 1
        return n

    assert benchmark.pedantic(run, rounds=2, iterations=1) == N
    benchmark.extra_info["rows_per_s"] = round(N / benchmark.stats.stats.min)
    db.close()
