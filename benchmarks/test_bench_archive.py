"""Archive throughput on the local PostgreSQL: binary COPY in, replay out.

Groups (each with a same-run reference):

* ``archive-copy``: rows/s into the partitioned ``trades`` table (natural-key primary key,
  logged) from prebuilt PGCOPY buffers (``_ext``), the whole idempotent ``Archive.insert``
  path including building the buffer, and psycopg's ``executemany`` INSERT as reference.
  A COPY into an unindexed table shows what the key index costs; two connections each
  COPYing another instrument's half at once show what two persist workers reach (the day
  partition is split by ``HASH (instrument)``, so instruments 1 and 2 land in different
  sub-partitions and key indexes).
* ``archive-replay``: rows/s of ``Archive.read_trades`` (binary COPY out collected by the
  compiled reader ``ext.pgcopy``, decoded by numpy), the same with the window split over
  ``read_connections=2``, the same with the COPY stream read from Python (the fallback),
  and a plain ``fetchall`` into a numpy array.

Besides wall time, ``extra_info`` has the server backends' CPU seconds of the best round
(from ``/proc``; the machine is shared, so CPU per row is the steadier A/B figure).

Skipped when PostgreSQL does not answer on ``PGHOST``/``PGPORT`` (default 127.0.0.1:5432).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from orchestrator.data import libpq
from orchestrator.data.archive import Archive, ArchiveSettings, build_copy_payload
from orchestrator.data.migrations import TABLES
from orchestrator.data.records import TRADE_DTYPE, RecordKind, empty

psycopg = pytest.importorskip("psycopg")

SEC = 10**9
NOW = 1_723_118_400 * SEC  # 2024-08-08 12:00 UTC, fixed so partitions are predictable
N_COPY = 1_000_000
N_REPLAY = 1_000_000
N_REF = 20_000


def _admin() -> str:
    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    return f"postgresql://postgres@{host}:{port}"


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    name = f"slipstream_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(f"{_admin()}/postgres", autocommit=True, connect_timeout=2) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not available: {type(exc).__name__}")
    try:
        with Archive(
            f"{_admin()}/{name}", ArchiveSettings(timescale="off"), clock=lambda: NOW
        ) as a:
            a.migrate(NOW)
        yield f"{_admin()}/{name}"
    finally:
        with psycopg.connect(f"{_admin()}/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def archive(dsn: str) -> Iterator[Archive]:
    with Archive(dsn, ArchiveSettings(timescale="off"), clock=lambda: NOW) as a:
        yield a


def trades(
    n: int, inst: int = 1, t0: int = NOW - 3 * 3600 * SEC, step_ns: int = 5000
) -> np.ndarray:
    rng = np.random.default_rng(inst)
    r = empty(RecordKind.TRADE, n)
    r["exch_ns"] = t0 + np.arange(n, dtype=np.int64) * step_ns
    r["recv_ns"] = r["exch_ns"] + rng.integers(0, 10**6, n)
    r["trade_id"] = np.arange(n) + 1
    r["price"] = 6_000_000 + rng.integers(-5000, 5000, n)
    r["size"] = rng.integers(1, 10**6, n)
    r["inst"], r["venue"], r["side"] = inst, 1, 1
    r["price_scale"], r["size_scale"] = 2, 5
    return r


def _rate(benchmark, rows: int, cpu: list[tuple[float, float]] | None = None) -> None:
    best = benchmark.stats.stats.min
    benchmark.extra_info["rows"] = rows
    benchmark.extra_info["M rows/s (best)"] = round(rows / best / 1e6, 3)
    benchmark.extra_info["ns per row (best)"] = round(best / rows * 1e9, 1)
    server = [s for s, _ in cpu or [] if s == s]  # drop NaN (a connection opened mid-round)
    if server:
        benchmark.extra_info["server cpu s (min)"] = round(min(server), 2)
        benchmark.extra_info["client cpu s (min)"] = round(min(c for _, c in cpu or []), 2)


def _backend_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the server backends ``pids`` used so far (same host)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _cpu_timed(
    fn: Callable[[], object], pids: Callable[[], list[int]], out: list[tuple[float, float]]
):
    """Wrap ``fn`` to append (server backends' CPU s, this process's CPU s) per call."""

    def run() -> object:
        p = pids()
        s0, c0 = _backend_cpu(p), time.process_time()
        res = fn()
        client = time.process_time() - c0
        out.append((_backend_cpu(pids()) - s0 if pids() == p else float("nan"), client))
        return res

    return run


def _truncate(archive: Archive, table: str = "trades") -> None:
    archive.connection.execute(f"TRUNCATE {table}")
    archive.connection.execute("CHECKPOINT")


# ------------------------------------------------------------------------ COPY in


@pytest.mark.benchmark(group="archive-copy")
def test_copy_prebuilt_buffer_ext(benchmark, archive):
    spec = TABLES["trades"]
    rows = build_copy_payload(spec, trades(N_COPY))

    def run() -> None:
        with archive.connection.transaction():
            archive._copy("trades", spec, rows)

    cpu: list[tuple[float, float]] = []
    pids = lambda: [archive.connection.info.backend_pid]  # noqa: E731
    benchmark.pedantic(
        _cpu_timed(run, pids, cpu), setup=lambda: _truncate(archive), rounds=3, iterations=1
    )
    _rate(benchmark, N_COPY, cpu)
    assert archive.connection.execute("SELECT count(*) FROM trades").fetchone()[0] == N_COPY


@pytest.mark.benchmark(group="archive-copy")
def test_copy_two_connections_ext(benchmark, archive, dsn):
    """Two connections COPY another instrument's 500 k rows each at once (2 persist workers)."""
    spec = TABLES["trades"]
    halves = [build_copy_payload(spec, trades(N_COPY // 2, inst=i)) for i in (1, 2)]
    with Archive(dsn, ArchiveSettings(timescale="off"), clock=lambda: NOW) as other:
        archives = (archive, other)

        def copy(a: Archive, rows: np.ndarray) -> None:
            with a.connection.transaction():
                a._copy("trades", spec, rows)

        def run() -> None:
            threads = [
                threading.Thread(target=copy, args=(a, r))
                for a, r in zip(archives, halves, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        cpu: list[tuple[float, float]] = []
        pids = lambda: [a.connection.info.backend_pid for a in archives]  # noqa: E731
        benchmark.pedantic(
            _cpu_timed(run, pids, cpu), setup=lambda: _truncate(archive), rounds=3, iterations=1
        )
    _rate(benchmark, N_COPY, cpu)
    assert archive.connection.execute("SELECT count(*) FROM trades").fetchone()[0] == N_COPY
    homes = archive.connection.execute("SELECT count(DISTINCT tableoid) FROM trades").fetchone()[0]
    benchmark.extra_info["sub-partitions written"] = homes
    assert homes == 2  # the two instruments went to their own key indexes


@pytest.mark.benchmark(group="archive-copy")
def test_insert_idempotent_records_ext(benchmark, archive):
    recs = trades(N_COPY)

    def run() -> None:
        res = archive.insert(recs)
        assert res.inserted == N_COPY

    benchmark.pedantic(run, setup=lambda: _truncate(archive), rounds=3, iterations=1)
    _rate(benchmark, N_COPY)


@pytest.mark.benchmark(group="archive-copy")
def test_copy_prebuilt_buffer_unindexed_peer(benchmark, archive):
    """What the natural-key index costs: same COPY into a table without any index."""
    spec = TABLES["trades"]
    archive.connection.execute("CREATE TABLE IF NOT EXISTS trades_noidx (LIKE trades)")
    rows = build_copy_payload(spec, trades(N_COPY))

    def run() -> None:
        with archive.connection.transaction():
            archive._copy("trades_noidx", spec, rows)

    cpu: list[tuple[float, float]] = []
    pids = lambda: [archive.connection.info.backend_pid]  # noqa: E731
    benchmark.pedantic(
        _cpu_timed(run, pids, cpu),
        setup=lambda: _truncate(archive, "trades_noidx"),
        rounds=3,
        iterations=1,
    )
    _rate(benchmark, N_COPY, cpu)


@pytest.mark.benchmark(group="archive-copy")
def test_copy_reference_executemany(benchmark, archive):
    recs = trades(N_REF, inst=9)
    cols = [c.name for c in TABLES["trades"].columns]
    params = [
        (int(r["exch_ns"]) // 1000, *[int(r[c.source]) for c in TABLES["trades"].columns[1:]])
        for r in recs
    ]
    stmt = (
        f"INSERT INTO trades ({', '.join(cols)}) VALUES "
        f"(to_timestamp(%s / 1e6), {', '.join(['%s'] * (len(cols) - 1))}) "
        "ON CONFLICT DO NOTHING"
    )

    def run() -> None:
        with archive.connection.transaction(), archive.connection.cursor() as cur:
            cur.executemany(stmt, params)

    benchmark.pedantic(run, setup=lambda: _truncate(archive), rounds=2, iterations=1)
    _rate(benchmark, N_REF)


# ---------------------------------------------------------------------- replay out


@pytest.fixture(scope="module")
def replay_data(archive: Archive) -> np.ndarray:
    _truncate(archive)
    # spread over the whole replay window (one trade every 14.4 ms), as a real hour of
    # trades is: the time slices of read_connections=2 then hold half of the rows each
    recs = trades(N_REPLAY, inst=3, t0=NOW - 4 * 3600 * SEC, step_ns=4 * 3600 * SEC // N_REPLAY)
    archive.insert(recs)
    archive.connection.execute("VACUUM ANALYZE trades")
    return recs


def _replay(benchmark, a: Archive, want: np.ndarray) -> None:
    start, end = NOW - 4 * 3600 * SEC, NOW
    sizes: list[int] = []

    def run() -> int:
        sizes.clear()
        for b in a.read_trades([3], start, end, window_ns=4 * 3600 * SEC):
            sizes.append(len(b))
            last = b
        assert last.tobytes() == want[-len(last) :].tobytes()
        return sum(sizes)

    cpu: list[tuple[float, float]] = []
    pids = lambda: [c.info.backend_pid for c in (a.connection, *a._aux) if c is not None]  # noqa: E731
    got = benchmark.pedantic(_cpu_timed(run, pids, cpu), rounds=5, iterations=1, warmup_rounds=1)
    assert got == N_REPLAY
    _rate(benchmark, N_REPLAY, cpu)


@pytest.mark.benchmark(group="archive-replay")
def test_replay_trades_ext(benchmark, dsn, replay_data):
    """One connection (``read_connections=1``)."""
    settings = ArchiveSettings(timescale="off", read_connections=1)
    with Archive(dsn, settings, clock=lambda: NOW) as one:
        _replay(benchmark, one, replay_data)


@pytest.mark.benchmark(group="archive-replay")
def test_replay_trades_two_connections_ext(benchmark, dsn, replay_data):
    """The window split into 2 time slices read at once on 2 connections."""
    settings = ArchiveSettings(timescale="off", read_connections=2)
    with Archive(dsn, settings, clock=lambda: NOW) as two:
        _replay(benchmark, two, replay_data)


@pytest.mark.benchmark(group="archive-replay")
def test_replay_trades_python_loop(benchmark, dsn, replay_data, monkeypatch):
    """One connection, the stream read by libpq calls from Python (the fallback)."""
    monkeypatch.setattr(libpq, "_cached", (True, None))
    settings = ArchiveSettings(timescale="off", read_connections=1)
    with Archive(dsn, settings, clock=lambda: NOW) as one:
        _replay(benchmark, one, replay_data)


@pytest.mark.benchmark(group="archive-replay")
def test_replay_trades_two_connections_python_loop(benchmark, dsn, replay_data, monkeypatch):
    """``read_connections=2`` with the Python loop: the two drains share the GIL."""
    monkeypatch.setattr(libpq, "_cached", (True, None))
    settings = ArchiveSettings(timescale="off", read_connections=2)
    with Archive(dsn, settings, clock=lambda: NOW) as two:
        _replay(benchmark, two, replay_data)


@pytest.mark.benchmark(group="archive-replay")
def test_replay_reference_fetchall(benchmark, archive, replay_data):
    n = N_REPLAY // 5
    cols = [c.name for c in TABLES["trades"].columns if c.source != "@ts"]
    query = (
        f"SELECT {', '.join(cols)} FROM trades WHERE instrument = 3 "
        f"ORDER BY exch_ns, trade_id LIMIT {n}"
    )
    order = [c.source for c in TABLES["trades"].columns if c.source != "@ts"]
    dt = np.dtype([(name, TRADE_DTYPE.fields[name][0]) for name in order])

    def run() -> int:
        rows = archive.connection.execute(query).fetchall()
        return len(np.array(rows, dtype=dt))

    got = benchmark.pedantic(run, rounds=3, iterations=1)
    assert got == n
    _rate(benchmark, n)
