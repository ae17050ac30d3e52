"""The archive on a real PostgreSQL: migrations, idempotent COPY, partitions, retention,
bars, coverage, replay, and service errors.

Each test gets a throwaway database (``pg_dsn``). The plain-PostgreSQL variant is forced
(``timescale="off"``); the TimescaleDB test runs only where the extension is available.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import psycopg
import pytest

from orchestrator.data import libpq
from orchestrator.data.archive import (
    COPY_HEADER,
    COPY_SIGNATURE,
    COPY_TRAILER,
    NS_PER_DAY,
    Archive,
    ArchiveError,
    ArchiveSettings,
    _drain_copy,
    build_copy_payload,
    decode_copy_payload,
    migrate,
)
from orchestrator.data.migrations import TABLES
from orchestrator.data.records import (
    ASK,
    BID,
    FLAG_LAST,
    LedgerKind,
    RecordKind,
    empty,
    encode_batch,
)
from orchestrator.errors import ServiceUnavailableError

pytestmark = pytest.mark.integration

SEC = 10**9
MIN = 60 * SEC
PLAIN = ArchiveSettings(timescale="off")
#: A fixed "now" (2024-08-08 12:00 UTC) so partition names are predictable.
NOW = 1_723_118_400 * SEC
TODAY = NOW // NS_PER_DAY


@pytest.fixture
def archive(pg_dsn):
    with Archive(pg_dsn, PLAIN, clock=lambda: NOW) as a:
        a.migrate(NOW)
        yield a


def make_trades(n, inst, venue, t0, step_ns=1000, first_id=1, seed=0):
    rng = np.random.default_rng(seed)
    r = empty(RecordKind.TRADE, n)
    r["exch_ns"] = t0 + np.arange(n, dtype=np.int64) * step_ns
    r["recv_ns"] = r["exch_ns"] + rng.integers(0, 5 * 10**6, n)
    r["trade_id"] = first_id + np.arange(n)
    r["price"] = 6_000_000 + rng.integers(-5000, 5000, n)
    r["size"] = rng.integers(1, 10**6, n)
    r["inst"] = inst
    r["venue"] = venue
    r["side"] = rng.choice([-1, 1], n)
    r["price_scale"] = 2
    r["size_scale"] = 5
    return r


def count(a, table):
    return a.connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -------------------------------------------------------------------- migrations


def test_migrations_apply_then_rerun_is_noop(pg_dsn):
    with Archive(pg_dsn, PLAIN, clock=lambda: NOW) as a:
        first = a.migrate(NOW)
        assert first.variant == "plain"
        assert first.applied == (1, 2)
        assert first.partitions_created > 0
        tables = {
            r[0]
            for r in a.connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
        assert {"trades", "deltas", "ledger", "instruments", "schema_migrations"} <= tables
        again = a.migrate(NOW)
        assert again.applied == () and again.partitions_created == 0
        assert a.applied_versions() == [1, 2]


def test_concurrent_migrate_from_two_connections(pg_dsn):
    results: list[object] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            results.append(migrate(pg_dsn, PLAIN, NOW))
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not [r for r in results if isinstance(r, Exception)], results
    applied = sorted(v for r in results for v in r.applied)  # type: ignore[attr-defined]
    assert applied == [1, 2]  # each migration applied by exactly one caller
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 2


def test_unmigrated_database_says_how_to_migrate(pg_dsn):
    with (
        Archive(pg_dsn, PLAIN, clock=lambda: NOW) as a,
        pytest.raises(ArchiveError, match=r"orchestrator\.data migrate"),
    ):
        a.insert(make_trades(1, 1, 1, NOW))


# ----------------------------------------------------------------- idempotent COPY


def test_copy_100k_then_same_batch_again_stores_once(archive):
    recs = make_trades(100_000, 1, 1, NOW - 3600 * SEC, step_ns=10_000)
    first = archive.insert(recs)
    assert (first.inserted, first.duplicates, first.merged) == (100_000, 0, False)
    second = archive.insert(recs)
    assert (second.inserted, second.duplicates, second.merged) == (0, 100_000, True)
    assert count(archive, "trades") == 100_000
    row = archive.connection.execute(
        "SELECT exch_ns, recv_ns, trade_id, price, size, side, price_scale, size_scale "
        "FROM trades WHERE trade_id = 12345"
    ).fetchone()
    want = recs[recs["trade_id"] == 12345][0]
    fields = ("exch_ns", "recv_ns", "trade_id", "price", "size", "side")
    assert row == tuple(int(want[k]) for k in (*fields, "price_scale", "size_scale"))


def test_partial_overlap_inserts_only_new_rows(archive):
    recs = make_trades(10_000, 1, 1, NOW - 600 * SEC)
    archive.insert(recs[:6000])
    res = archive.insert(recs[4000:])
    assert (res.inserted, res.duplicates) == (4000, 2000)
    assert count(archive, "trades") == 10_000
    dup_within = np.concatenate([recs[:10], recs[:10]])
    res = archive.insert(dup_within)
    assert (res.inserted, res.duplicates) == (0, 20)


def test_batch_key_skips_a_redelivered_batch(archive):
    recs = make_trades(1000, 1, 1, NOW - 60 * SEC)
    payload = encode_batch(RecordKind.TRADE, recs)
    a = archive.insert_batch(payload, batch_key="md:binance:BTCUSDT:trades:1-1")
    b = archive.insert_batch(payload, batch_key="md:binance:BTCUSDT:trades:1-1")
    assert a.inserted == 1000 and not a.batch_duplicate
    assert b.batch_duplicate and b.inserted == 0
    assert count(archive, "trades") == 1000
    stored = archive.connection.execute("SELECT rows_inserted FROM ingest_batches").fetchall()
    assert stored == [(1000,)]


def test_deltas_natural_key_and_multiday_batch(archive):
    d = empty(RecordKind.DELTA, 6)
    d["exch_ns"] = [NOW - 5, NOW - 5, NOW - 5, NOW + NS_PER_DAY, NOW + NS_PER_DAY, NOW - NS_PER_DAY]
    d["seq"] = [10, 10, 10, 11, 11, 9]
    d["side"] = [BID, BID, ASK, BID, ASK, ASK]
    d["price"] = [100, 99, 101, 100, 101, 102]
    d["size"] = [1, 2, 3, 0, 4, 5]
    d["inst"], d["venue"], d["flags"] = 7, 2, FLAG_LAST
    assert archive.insert(d).inserted == 6
    assert archive.insert(d).inserted == 0
    assert count(archive, "deltas") == 6


def test_implausible_times_and_wrong_dtypes_are_refused(archive):
    ms = make_trades(3, 1, 1, NOW // 10**6)  # milliseconds passed as ns
    with pytest.raises(ArchiveError, match="outside 2010-01-01"):
        archive.insert(ms)
    wide = make_trades(2, 1, 1, NOW)
    wide["exch_ns"][1] = NOW - 100 * NS_PER_DAY
    with pytest.raises(ArchiveError, match="spans 101 days"):
        archive.insert(wide)
    with pytest.raises(TypeError, match="not a record dtype"):
        archive.insert(np.zeros(3, dtype=[("x", "<i8")]))
    with pytest.raises(TypeError, match="DELTA dtype"):
        archive.insert(make_trades(1, 1, 1, NOW), RecordKind.DELTA)


# ------------------------------------------------------------ partitions, retention


def _children(a: Archive, parent: str) -> dict[str, int]:
    """Partition name -> rows it holds, of the partitions directly under ``parent``."""
    rows = a.connection.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
        (parent,),
    ).fetchall()
    return {
        r[0]: a.connection.execute(f'SELECT count(*) FROM "{r[0]}"').fetchone()[0] for r in rows
    }


def test_partitions_created_ahead_and_on_demand(archive):
    days = archive.partitions("trades", refresh=True)
    assert set(range(TODAY - 1, TODAY + PLAIN.ahead_days + 1)) <= days
    names = set(_children(archive, "deltas"))
    assert "deltas_p20240808" in names and "deltas_p20240811" in names
    assert not any("default" in n for n in names)
    old = NOW - 20 * NS_PER_DAY  # 2024-07-19: not created ahead, within retention
    res = archive.insert(make_trades(100, 1, 1, old))
    assert res.inserted == 100 and res.expired == 0
    assert "trades_p20240719" in {
        r[0] for r in archive.connection.execute("SELECT tablename FROM pg_tables").fetchall()
    }


@pytest.mark.parametrize("hashed", [1, 3])
def test_daily_partitions_are_hash_split_by_instrument(pg_dsn, hashed):
    settings = ArchiveSettings(timescale="off", instrument_partitions=hashed)
    with Archive(pg_dsn, settings, clock=lambda: NOW) as a:
        a.migrate(NOW)
        recs = np.concatenate([make_trades(40, inst, 1, NOW, seed=inst) for inst in range(1, 9)])
        assert a.insert(recs).inserted == len(recs)
        assert a.insert(recs).duplicates == len(recs)  # the key is enforced per sub-partition
        children = _children(a, "trades_p20240808")
        if hashed == 1:
            assert children == {}
            assert count(a, "trades_p20240808") == len(recs)
        else:
            assert sorted(children) == [f"trades_p20240808_h{r}" for r in range(hashed)]
            assert sum(children.values()) == len(recs)
            # each instrument's rows all sit in one sub-partition, and 8 ids spread out
            assert sum(1 for v in children.values() if v) > 1
            for inst in range(1, 9):
                where = [
                    name
                    for name in children
                    if a.connection.execute(
                        f'SELECT 1 FROM "{name}" WHERE instrument = %s LIMIT 1', (inst,)
                    ).fetchone()
                ]
                assert len(where) == 1
        got = np.concatenate(list(a.read_trades(list(range(1, 9)), NOW - SEC, NOW + SEC)))
        order = np.lexsort((recs["trade_id"], recs["inst"], recs["exch_ns"]))
        assert np.array_equal(np.sort(got, order=["exch_ns", "inst", "trade_id"]), recs[order])
        one = np.concatenate(list(a.read_trades([5], NOW - SEC, NOW + SEC)))
        assert one.tobytes() == recs[recs["inst"] == 5].tobytes()


def test_instrument_partitions_is_checked():
    with pytest.raises(ArchiveError, match=r"instrument_partitions must be 1\.\.64"):
        ArchiveSettings(instrument_partitions=0)


def test_retention_drops_only_expired_partitions(pg_dsn):
    settings = ArchiveSettings(timescale="off", retention_days={"trades": 5, "ledger": 5})
    with Archive(pg_dsn, settings, clock=lambda: NOW) as a:
        a.migrate(NOW)
        # old days exist because the archive ran back then
        for back in range(10, 0, -1):
            a.ensure_partitions(NOW - back * NS_PER_DAY, ahead_days=0, behind_days=0)
        per_day = {}
        for back in range(10, -1, -1):
            recs = make_trades(50, 1, 1, NOW - back * NS_PER_DAY, first_id=1000 * back, seed=back)
            assert a.insert(recs).inserted == 50
            per_day[back] = recs
        led = empty(RecordKind.LEDGER, 2)
        led["exch_ns"] = [NOW - 8 * NS_PER_DAY, NOW - 1 * NS_PER_DAY]
        led["inst"], led["venue"], led["kind"] = 1, 1, int(LedgerKind.START)
        a.insert(led)
        dropped = a.retention(NOW)
        # cutoff = NOW - 5 days = 2024-08-03 12:00: days up to 2024-08-02 end before it
        assert sorted(n for n in dropped if n.startswith("trades_")) == [
            f"trades_p202407{d}" for d in (29, 30, 31)
        ] + [f"trades_p2024080{d}" for d in (1, 2)]
        assert not [n for n in dropped if not n.startswith("trades_")]  # others kept forever
        left = np.concatenate(list(a.read_trades([1], NOW - 30 * NS_PER_DAY, NOW + NS_PER_DAY)))
        want = np.concatenate([per_day[b] for b in range(5, -1, -1)])
        assert left.tobytes() == want.tobytes()  # data of kept days intact
        assert count(a, "ledger") == 1
        assert a.retention(NOW) == []
        # a late row for a dropped day is skipped, not resurrected
        late = a.insert(make_trades(3, 1, 1, NOW - 9 * NS_PER_DAY, first_id=9_999_000))
        assert (late.inserted, late.expired) == (0, 3)
        tables = {r[0] for r in a.connection.execute("SELECT tablename FROM pg_tables").fetchall()}
        assert "trades_p20240730" not in tables
        # the dropped days' instrument sub-partitions went with them; kept days have theirs
        assert not [t for t in tables if t.startswith("trades_p20240730_h")]
        assert {f"trades_p20240804_h{r}" for r in range(PLAIN.instrument_partitions)} <= tables


# ----------------------------------------------------------------------- bars


def test_bars_view_equals_pandas_ohlcv(archive):
    rng = np.random.default_rng(7)
    t0 = NOW - 3600 * SEC
    parts = []
    for inst in (1, 2):
        n = 5000
        r = make_trades(n, inst, 1, t0, seed=inst)
        r["exch_ns"] = t0 + np.sort(rng.integers(0, 30 * MIN, n))
        parts.append(r)
    archive.insert(np.concatenate(parts))
    archive.refresh_bars()
    archive.refresh_bars(concurrently=False)
    for r in parts:
        df = pd.DataFrame({"t": r["exch_ns"] // 1000, "id": r["trade_id"],
                           "px": r["price"], "sz": r["size"]})  # fmt: skip
        df["bucket"] = (df["t"] // 60_000_000) * 60_000_000_000
        df = df.sort_values(["bucket", "id"])
        g = df.groupby("bucket")
        want = pd.DataFrame({"open": g["px"].first(), "high": g["px"].max(),
                             "low": g["px"].min(), "close": g["px"].last(),
                             "volume": g["sz"].sum(), "trades": g["px"].size()})  # fmt: skip
        got = archive.bars(int(r["inst"][0]), t0, NOW)
        assert len(got) == len(want) == 30
        assert np.array_equal(got["bucket_ns"], want.index.to_numpy())
        for col in ("open", "high", "low", "close", "volume", "trades"):
            assert np.array_equal(got[col], want[col].to_numpy()), col


# -------------------------------------------------------------------- coverage


def ledger(*events):
    arr = empty(RecordKind.LEDGER, len(events))
    for i, (t, kind) in enumerate(events):
        arr[i]["exch_ns"] = t
        arr[i]["recv_ns"] = t
        arr[i]["kind"] = int(kind)
    arr["inst"], arr["venue"] = 1, 1
    return arr


def test_coverage_with_ledger_gaps(archive):
    t = NOW - 3600 * SEC
    K = LedgerKind
    archive.insert(
        ledger(
            (t + 0 * MIN, K.START),
            (t + 10 * MIN, K.DISCONNECT),
            (t + 12 * MIN, K.RECONNECT),
            (t + 20 * MIN, K.GAP),
            (t + 21 * MIN, K.STALE_START),
            (t + 22 * MIN, K.RESYNC),  # still stale until STALE_END
            (t + 23 * MIN, K.STALE_END),
            (t + 30 * MIN, K.STOP),
            (t + 40 * MIN, K.START),
        )
    )
    # session 2 crashes: last trade at t+44min, restart at t+50min, then runs on
    archive.insert(make_trades(1, 1, 1, t + 44 * MIN))
    archive.insert(ledger((t + 50 * MIN, K.START)))
    archive.insert(make_trades(1, 1, 1, t + 55 * MIN, first_id=2))
    cov = archive.coverage(1, 1, t - 5 * MIN, t + 60 * MIN)
    w = [(x.start_ns - t, x.end_ns - t) for x in cov.complete]
    assert w == [(0, 10 * MIN), (12 * MIN, 20 * MIN), (23 * MIN, 30 * MIN),
                 (40 * MIN, 44 * MIN + 1), (50 * MIN, 55 * MIN + 1)]  # fmt: skip
    g = [(x.start_ns - t, x.end_ns - t, x.reason) for x in cov.gaps]
    assert g == [
        (-5 * MIN, 0, "unrecorded"),
        (10 * MIN, 12 * MIN, "disconnect"),
        (20 * MIN, 22 * MIN, "gap"),  # gap and stale overlap: the gap is named first
        (22 * MIN, 23 * MIN, "stale"),
        (30 * MIN, 40 * MIN, "unrecorded"),
        (44 * MIN + 1, 50 * MIN, "crash"),
        (55 * MIN + 1, 60 * MIN, "unrecorded"),
    ]
    assert cov.complete_ns == (10 + 8 + 7) * MIN + (4 * MIN + 1) + (5 * MIN + 1)
    inner = archive.coverage(1, 1, t + 5 * MIN, t + 8 * MIN)  # state from before start
    assert [(x.start_ns, x.end_ns) for x in inner.complete] == [(t + 5 * MIN, t + 8 * MIN)]
    assert inner.gaps == ()
    assert archive.coverage(1, 2, t, t + MIN).complete == ()  # other venue id: nothing


# ---------------------------------------------------------------------- replay


def test_replay_equals_ingested_in_exchange_time_order(archive):
    t0 = NOW - 2 * 3600 * SEC
    rng = np.random.default_rng(3)
    parts = []
    for inst in (1, 2, 3):
        r = make_trades(20_000, inst, 1 + inst % 2, t0, seed=inst, first_id=10**6 * inst)
        r["exch_ns"] = t0 + np.sort(rng.integers(0, 2 * 3600 * SEC, len(r)))
        r["exch_ns"][100:110] = r["exch_ns"][100]  # ties within an instrument
        parts.append(r)
    everything = np.concatenate(parts)
    shuffled = everything[rng.permutation(len(everything))]
    for chunk in np.array_split(shuffled, 7):
        archive.insert(chunk)
    order = np.lexsort((everything["trade_id"], everything["inst"], everything["exch_ns"]))
    want = everything[order]
    got = list(archive.read_trades([1, 2, 3], t0, NOW, window_ns=1800 * SEC, chunk_rows=5000))
    assert all(len(b) <= 5000 for b in got) and len(got) >= 12
    got_all = np.concatenate(got)
    assert got_all.dtype == want.dtype
    assert got_all.tobytes() == want.tobytes()
    sub = np.concatenate(list(archive.read_trades([2], t0 + 600 * SEC, t0 + 1200 * SEC)))
    m = (
        (want["inst"] == 2)
        & (want["exch_ns"] >= t0 + 600 * SEC)
        & (want["exch_ns"] < t0 + 1200 * SEC)
    )
    assert sub.tobytes() == want[m].tobytes()
    assert list(archive.read_trades([4], t0, NOW)) == [] or all(
        len(b) == 0 for b in archive.read_trades([4], t0, NOW)
    )


def test_replay_deltas_and_nearest_snapshot(archive):
    t0 = NOW - 600 * SEC
    d = empty(RecordKind.DELTA, 4000)
    msg = np.repeat(np.arange(1000), 4)
    d["exch_ns"] = t0 + msg * 1000
    d["seq"] = 5000 + msg
    d["side"] = np.tile([BID, BID, ASK, ASK], 1000)
    d["price"] = np.tile([98, 99, 101, 102], 1000) + msg  # canonical: side, price
    d["size"] = np.arange(4000)
    d["flags"] = np.tile([0, 0, 0, FLAG_LAST], 1000)
    d["inst"], d["venue"] = 5, 1
    archive.insert(d[::-1].copy())
    got = np.concatenate(list(archive.read_deltas([5], t0, NOW)))
    assert got.tobytes() == d.tobytes()
    s = empty(RecordKind.SNAPSHOT, 6)
    s["exch_ns"] = [t0 + 10, t0 + 10, t0 + 10, t0 + 500, t0 + 500, t0 + 500]
    s["seq"] = [1, 1, 1, 2, 2, 2]
    s["side"] = [BID, BID, ASK, BID, ASK, ASK]
    s["level"] = [0, 1, 0, 0, 0, 1]
    s["price"] = [10, 9, 11, 20, 21, 22]
    s["inst"], s["venue"] = 5, 1
    archive.insert(s)
    assert archive.read_snapshot(5, t0 + 499).tobytes() == s[:3].tobytes()
    assert archive.read_snapshot(5, NOW).tobytes() == s[3:].tobytes()
    assert len(archive.read_snapshot(5, t0)) == 0


def test_replay_in_parallel_slices_equals_one_connection(pg_dsn, archive):
    t0 = NOW - 2 * 3600 * SEC
    rng = np.random.default_rng(11)
    parts = []
    for inst in (1, 2):
        r = make_trades(30_000, inst, 1, t0, seed=inst, first_id=10**6 * inst)
        r["exch_ns"] = t0 + np.sort(rng.integers(0, 2 * 3600 * SEC, len(r)))
        parts.append(r)
    everything = np.concatenate(parts)
    archive.insert(everything[rng.permutation(len(everything))])
    want = everything[
        np.lexsort((everything["trade_id"], everything["inst"], everything["exch_ns"]))
    ]
    # a slice boundary falls between rows of one nanosecond: nothing lost or repeated
    cut = int(want["exch_ns"][len(want) // 2])
    for k in (2, 3):
        settings = ArchiveSettings(timescale="off", read_connections=k)
        with Archive(pg_dsn, settings, clock=lambda: NOW) as a:
            for start, window in (
                (t0, 2 * 3600 * SEC),
                (t0, 1200 * SEC),
                (cut - 600 * SEC, 1200 * SEC),
            ):
                end = min(NOW, start + 2 * 3600 * SEC)
                got = list(a.read_trades([1, 2], start, end, window_ns=window, chunk_rows=7000))
                assert all(len(b) <= 7000 for b in got)
                m = (want["exch_ns"] >= start) & (want["exch_ns"] < end)
                assert np.concatenate(got).tobytes() == want[m].tobytes(), (k, start, window)
            assert len([c for c in a._aux if c is not None]) == k - 1
            # a read connection killed between reads: that read fails as an outage, the
            # next one reconnects
            victim = a._aux[0]
            assert victim is not None
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
            time.sleep(0.2)
            with pytest.raises(ServiceUnavailableError, match="not reachable"):
                list(a.read_trades([1, 2], t0, NOW))
            again = np.concatenate(list(a.read_trades([1, 2], t0, NOW)))
            assert again.tobytes() == want.tobytes()
        assert victim.closed


def test_compiled_copy_reader_is_used_and_equals_the_python_loop(archive, monkeypatch):
    drain = libpq.copy_drain()
    assert drain is not None, "psycopg's libpq was not identified on this machine"
    assert libpq.libpq_path() is not None or psycopg.pq.__impl__ == "python"
    t0 = NOW - 3600 * SEC
    recs = make_trades(50_000, 4, 2, t0, seed=5)
    archive.insert(recs)
    query = (
        b"COPY (SELECT exch_ns, trade_id FROM trades ORDER BY exch_ns) TO STDOUT (FORMAT BINARY)"
    )
    fast = _drain_copy(archive.connection, query, "reading", archive.dsn)
    assert isinstance(fast, np.ndarray) and fast.dtype == np.uint8
    got = list(archive.read_trades([4], t0, NOW))
    monkeypatch.setattr(libpq, "_cached", (True, None))
    slow = _drain_copy(archive.connection, query, "reading", archive.dsn)
    assert isinstance(slow, bytearray)
    assert fast.tobytes() == bytes(slow)
    assert (
        np.concatenate(got).tobytes()
        == np.concatenate(list(archive.read_trades([4], t0, NOW))).tobytes()
        == recs.tobytes()
    )
    empty_out = b"COPY (SELECT 1::int8 WHERE false) TO STDOUT (FORMAT BINARY)"
    monkeypatch.setattr(libpq, "_cached", (True, drain))
    assert _drain_copy(archive.connection, empty_out, "x", "").tobytes() == (
        COPY_HEADER + COPY_TRAILER
    )


@pytest.mark.parametrize("compiled", [True, False])
def test_copy_out_failing_midway_is_an_archive_error_and_the_connection_stays_usable(
    archive, monkeypatch, compiled
):
    if not compiled:
        monkeypatch.setattr(libpq, "_cached", (True, None))
    query = (
        b"COPY (SELECT 1 / (x - 30000) FROM generate_series(1, 40000) x) TO STDOUT (FORMAT BINARY)"
    )
    with pytest.raises(ArchiveError, match="division by zero"):
        _drain_copy(archive.connection, query, "reading", archive.dsn)
    assert archive.connection.execute("SELECT 7").fetchone() == (7,)


@pytest.mark.parametrize("compiled", [True, False])
def test_copy_out_connection_lost_midway_is_an_outage(pg_dsn, monkeypatch, compiled):
    if not compiled:
        monkeypatch.setattr(libpq, "_cached", (True, None))
    query = (
        b"COPY (SELECT CASE WHEN x = 30000 THEN pg_terminate_backend(pg_backend_pid()) END "
        b"FROM generate_series(1, 40000) x) TO STDOUT (FORMAT BINARY)"
    )
    with Archive(pg_dsn, PLAIN, clock=lambda: NOW) as a:
        with pytest.raises(ServiceUnavailableError, match="not reachable") as err:
            _drain_copy(a.connection, query, "reading", "postgresql://u:secret@h/db")
        assert "secret" not in str(err.value)


def test_compiled_copy_reader_honours_ctrl_c(archive):
    assert libpq.copy_drain() is not None
    timer = threading.Timer(
        0.3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
    )
    timer.start()
    t = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            _drain_copy(
                archive.connection,
                b"COPY (SELECT pg_sleep(3)) TO STDOUT (FORMAT BINARY)",
                "reading",
                archive.dsn,
            )
    finally:
        timer.cancel()
    assert time.monotonic() - t < 1.5
    archive.connection.cancel_safe()


def test_copy_drain_rejects_null_addresses():
    from ext.pgcopy import CopyDrain

    with pytest.raises(ValueError, match="non-zero"):
        CopyDrain(0, 1, 1, 1)
    with pytest.raises(ValueError, match="PGconn"):
        CopyDrain(1, 1, 1, 1).drain(0)


def test_copy_output_decoder_checks_header_and_every_length():
    spec = TABLES["trades"]
    cols = [(c.name, c.pg_type) for c in spec.columns]
    recs = make_trades(4, 1, 1, NOW)
    rows = build_copy_payload(spec, recs).tobytes()
    want = decode_copy_payload(COPY_HEADER + rows + COPY_TRAILER, cols)
    # a header extension area (allowed by the format) is skipped
    ext = COPY_SIGNATURE + struct.pack(">ii", 0, 5) + b"12345"
    got = decode_copy_payload(ext + rows + COPY_TRAILER, cols)
    assert got.tobytes() == want.tobytes() and len(got) == 4
    assert len(decode_copy_payload(COPY_HEADER + COPY_TRAILER, cols)) == 0
    with pytest.raises(ArchiveError, match="header flags"):  # OIDs included
        decode_copy_payload(COPY_SIGNATURE + struct.pack(">ii", 1 << 16, 0) + rows, cols)
    with pytest.raises(ArchiveError, match="extension length"):
        decode_copy_payload(COPY_SIGNATURE + struct.pack(">ii", 0, -4) + rows, cols)
    row = len(rows) // 4
    # a NULL (-1, no data) in the last field of row 2, padded so the length still fits
    null = bytearray(rows)
    last_len = row - 2 - 4  # offset of the last field's length word in a row (int2 field)
    struct.pack_into(">i", null, row + last_len, -1)
    with pytest.raises(ArchiveError, match="framing"):
        decode_copy_payload(COPY_HEADER + bytes(null) + COPY_TRAILER, cols)
    wrong = bytearray(rows)
    struct.pack_into(">i", wrong, 3 * row + 2, 4)  # ts announced as 4 bytes
    with pytest.raises(ArchiveError, match="framing"):
        decode_copy_payload(COPY_HEADER + bytes(wrong) + COPY_TRAILER, cols)
    with pytest.raises(ArchiveError, match="whole rows"):  # no trailer
        decode_copy_payload(COPY_HEADER + rows, cols)
    with pytest.raises(ArchiveError, match="whole rows"):  # truncated mid-row
        decode_copy_payload(COPY_HEADER + rows[:-7] + COPY_TRAILER, cols)


def test_registry_persisted_and_shared(pg_dsn, archive):
    a = archive.register("binance", "spot", "BTCUSDT", 2, 5)
    b = archive.register("okx", "swap", "BTC-USDT-SWAP")
    with Archive(pg_dsn, PLAIN, clock=lambda: NOW) as other:
        again = other.register("binance", "spot", "BTCUSDT")
        reg = other.load_registry()
    assert again == a
    assert (a.venue_id, b.venue_id) == (1, 2) and a.instrument_id != b.instrument_id
    assert reg.instrument_id("okx", "swap", "BTC-USDT-SWAP", create=False) == b.instrument_id
    assert reg.get(a.instrument_id).price_scale == 2
    assert archive.signal_name_id("roc_50") == archive.signal_name_id("roc_50")


# ------------------------------------------------------------------ service errors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_postgres_down_raises_service_unavailable_without_secret():
    dsn = f"postgresql://postgres:hunter2@127.0.0.1:{_free_port()}/x"
    with pytest.raises(ServiceUnavailableError, match="not reachable") as info:
        Archive(dsn, PLAIN, timeout=1)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_cli_reports_unreachable_server_cleanly():
    dsn = f"postgresql://postgres@127.0.0.1:{_free_port()}/x"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.data", "migrate", "--dsn", dsn],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 3
    assert "not reachable" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_migrate_retention_coverage(pg_dsn):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.data", *args, "--dsn", pg_dsn, "--plain"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    out = cli("migrate")
    assert out.returncode == 0, out.stderr
    assert '"applied": [\n    1,\n    2\n  ]' in out.stdout and '"version": 2' in out.stdout
    assert cli("migrate").returncode == 0
    assert cli("retention").returncode == 0
    assert cli("refresh-bars").returncode == 0
    bad = cli("coverage", "--venue", "x", "--market", "spot", "--symbol", "Y",
              "--start", "2024-08-08T00:00Z", "--end", "2024-08-09T00:00Z")  # fmt: skip
    assert bad.returncode == 1 and "unknown instrument" in bad.stderr


def test_server_gone_mid_session_is_service_unavailable(pg_dsn):
    a = Archive(pg_dsn, PLAIN, clock=lambda: NOW)
    a.migrate(NOW)
    pid = a.connection.info.backend_pid
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)
    with pytest.raises(ServiceUnavailableError, match="not reachable"):
        a.insert(make_trades(10, 1, 1, NOW))
    a.close()


# ------------------------------------------------------------------- TimescaleDB


def test_timescale_variant_live(pg_dsn):
    with psycopg.connect(pg_dsn) as c:
        available = c.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    if not available:
        pytest.skip("timescaledb extension is not available on this server (plain PostgreSQL)")
    with Archive(pg_dsn, ArchiveSettings(timescale="require")) as a:
        rep = a.migrate()
        assert rep.variant == "timescale"
        n = a.connection.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
        ).fetchone()[0]
        assert n == 7
        a.insert(make_trades(1000, 1, 1, time.time_ns() - 3600 * SEC))
        a.refresh_bars()
        assert count(a, "bars_1m") > 0
        assert a.migrate().applied == ()
