"""Bus -> bridge -> Celery persist worker -> PostgreSQL, on real services, with faults.

Every test that kills something starts its own throwaway ``redis-server`` (bus stream in
DB 0, broker in DB 1, results in DB 2; AOF with ``fsync always``) and uses a throwaway
PostgreSQL database (``pg_dsn``). Workers run as subprocesses in their own process group
(``python -m orchestrator.worker ...``) so the whole worker can be ``kill -9``-ed. The
truth every test checks against is the set of trade ids it published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import redis

from orchestrator.celery_app import (
    LONG_KEYS,
    PERSIST_TASK,
    celery_settings,
    create_app,
    lane_of,
    load_app_config,
    transport_options,
)
from orchestrator.config.schema import AppConfig
from orchestrator.data.bridge import Bridge, celery_publisher
from orchestrator.data.bus import RedisStreamsBus, stream_name
from orchestrator.data.records import RecordKind, empty, encode_batch
from orchestrator.data.tasks import close_connections, persist_range
from orchestrator.errors import ConfigError
from orchestrator.worker import parse_args

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
S1 = stream_name("binance", "BTCUSDT", "trades")
S2 = stream_name("okx", "BTC-USDT", "trades")
#: Fast recovery for tests: redelivery ~3.5 s after a kill, retries every <= 1 s.
FAST = ["celery.visibility_timeout=3", "celery.restore_interval=0.5", "celery.retry_backoff_max=1"]
WAIT = 60.0  # generous: a loaded 2-core machine


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A throwaway, durable (AOF fsync always) redis-server this test may kill and restart."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            pytest.skip("redis-server not on PATH")
        self.proc = subprocess.Popen(
            [
                *(exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.tmp)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _connectable(self.port), 10, "private redis-server to start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def await_for(
    cond: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(cond):
            return
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def trades(n: int, first_id: int, inst: int) -> np.ndarray:
    r = empty(RecordKind.TRADE, n)
    now = time.time_ns()
    r["exch_ns"] = now - 60 * 10**9 + np.arange(n, dtype=np.int64) * 1000
    r["recv_ns"] = now
    r["trade_id"] = first_id + np.arange(n, dtype=np.int64)
    r["price"] = 6_000_000 + np.arange(n) % 100
    r["size"] = 1 + np.arange(n) % 7
    r["inst"] = inst
    r["side"] = 1
    r["venue"] = 1
    return r


def batch(n: int, first_id: int, inst: int) -> bytes:
    return encode_batch(RecordKind.TRADE, trades(n, first_id, inst))


def stored(dsn: str) -> list[tuple[int, int]]:
    with psycopg.connect(dsn) as c:
        return [
            (int(i), int(t))
            for i, t in c.execute("SELECT instrument, trade_id FROM trades ORDER BY 1, 2")
        ]


def row_count(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as c:
            row = c.execute("SELECT count(*) FROM trades").fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return -1


def expected(ranges: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Sorted (instrument, trade_id) of published ``(inst, first_id, n)`` batches."""
    return sorted((inst, first + k) for inst, first, n in ranges for k in range(n))


class Stack:
    """Private Redis + throwaway database + worker subprocesses of one test."""

    def __init__(self, tmp: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp
        self.dsn = dsn
        self.redis = PrivateRedis(tmp)
        self.redis.start()
        self.env = {
            "REDIS_URL": self.redis.url(0),
            "CELERY_BROKER_URL": self.redis.url(1),
            "CELERY_RESULT_BACKEND": self.redis.url(2),
            "TIMESCALEDB_URL": dsn,
        }
        for k, v in self.env.items():
            monkeypatch.setenv(k, v)
        self.workers: list[tuple[subprocess.Popen[bytes], Path]] = []
        try:
            self.cfg: AppConfig = load_app_config(FAST)
        except BaseException:
            self.redis.kill()  # a failed set-up leaves no server behind
            raise

    def worker(self, *overrides: str) -> tuple[subprocess.Popen[bytes], Path]:
        logfile = self.tmp / f"worker{len(self.workers)}.log"
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with open(logfile, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.worker", "queues=persist", *FAST, *overrides],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: kill -9 takes main + children
            )
        self.workers.append((proc, logfile))
        wait_for(
            lambda: b" ready." in logfile.read_bytes() or proc.poll() is not None,
            WAIT,
            "the worker to be ready",
            every=0.1,
        )
        assert proc.poll() is None, logfile.read_text(errors="replace")[-3000:]
        return proc, logfile

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url(1))

    def close(self) -> None:
        for proc, _ in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        self.redis.kill()


@pytest.fixture
def stack(tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    s = Stack(tmp_path, pg_dsn, monkeypatch)
    try:
        yield s
    finally:
        s.close()


def explain(stack: Stack, bridge: Bridge) -> str:
    """What a failed wait needs: rows, stored ids, bridge, stream group, broker, worker logs."""
    lines = [f"rows: {row_count(stack.dsn)}", f"bridge: {bridge.stats}"]
    with contextlib.suppress(Exception):
        have = stored(stack.dsn)
        firsts = sorted({t - t % 200 for _, t in have})
        lines.append(f"stored batches (first trade ids): {firsts}")
    with contextlib.suppress(Exception):
        bus = redis.Redis.from_url(stack.redis.url(0))
        for s in bus.scan_iter(match="md:*", _type="stream"):
            lines.append(f"{s!r}: len {bus.xlen(s)}, groups {bus.xinfo_groups(s)}")
            lines.append(f"  pending: {bus.xpending_range(s, 'persist', '-', '+', 100)}")
        bus.close()
    with contextlib.suppress(Exception):
        broker = stack.broker()
        lines.append(f"broker: persist {broker.llen('persist')}, unacked {broker.hlen('unacked')}")
        broker.close()
    for _, logfile in stack.workers:
        with contextlib.suppress(OSError):
            text = logfile.read_text(errors="replace").splitlines()
            lines.append(f"--- {logfile.name} (warnings and errors)")
            lines += [ln for ln in text if "WARNING" in ln or "ERROR" in ln][-40:]
    return "\n".join(lines)


def make_bridge(stack: Stack, bus: RedisStreamsBus, per_task: int, **kw: Any) -> Bridge:
    return Bridge(
        bus,
        celery_publisher(create_app(stack.cfg)),
        pattern="md:*",
        entries_per_task=per_task,
        block_ms=100,
        discover_every=0.5,
        lag_every=0.2,
        **kw,
    )


# -- configuration, routing, lanes --------------------------------------------------------


def test_config_lanes_and_worker_arguments(clean_env: pytest.MonkeyPatch) -> None:
    overrides = parse_args(["queues=persist,backtest", "concurrency=2", "celery.socket_timeout=3"])
    assert overrides == [
        "celery.worker.queues=[persist,backtest]",
        "celery.worker.concurrency=2",
        "celery.socket_timeout=3",
    ]
    cfg = load_app_config(overrides)
    assert cfg.celery.worker.queues == ["persist", "backtest"]
    assert cfg.celery.worker.concurrency == 2
    assert lane_of(cfg.celery, cfg.celery.worker.queues) == "long"
    assert lane_of(cfg.celery, ["persist", "execute"]) == "short"
    short = transport_options(cfg.celery, "short")
    assert short["visibility_timeout"] == 10.0 and short["unacked_restore_throttle"] == 1
    assert "unacked_key" not in short
    long = transport_options(cfg.celery, "long")
    assert long["visibility_timeout"] == 21600.0
    assert {k: long[k] for k in LONG_KEYS} == LONG_KEYS
    settings = celery_settings(cfg)
    assert settings["task_acks_late"] and settings["task_reject_on_worker_lost"]
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["broker_url"] == "redis://127.0.0.1:6379/1"
    with pytest.raises(ConfigError, match="retry_backoff_max"):
        celery_settings(load_app_config(["celery.retry_backoff_max=30"]))
    with pytest.raises(ConfigError, match="unknown queue"):
        celery_settings(load_app_config(["celery.long_queues=[backtets]"]))
    with pytest.raises(ConfigError, match="unknown queue"):
        celery_settings(load_app_config(parse_args(["queues=persist,nope"])))
    with pytest.raises(ConfigError, match="key=value"):
        parse_args(["persist"])


def test_routes_put_each_task_in_its_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        monkeypatch.setenv("CELERY_BROKER_URL", server.url(1))
        monkeypatch.setenv("CELERY_RESULT_BACKEND", server.url(2))
        app = create_app(load_app_config())
        app.send_task(PERSIST_TASK, args=(S1, "1-0", "2-0"))
        app.send_task("orchestrator.backtest.run_backtest", args=(1,))
        app.send_task("orchestrator.execution.place_order", args=(1,))
        app.send_task("somewhere.else", args=(1,))
        broker = redis.Redis.from_url(server.url(1))
        lengths = {q: broker.llen(q) for q in ("persist", "backtest", "execute", "default")}
        assert lengths == {"persist": 1, "backtest": 1, "execute": 1, "default": 1}
        body = json.loads(broker.lindex("persist", 0))
        assert body["headers"]["task"] == PERSIST_TASK
        broker.close()
        app.close()
    finally:
        server.kill()


# -- the persist task itself (in-process) -------------------------------------------------


def test_same_range_twice_is_stored_once(redis_url: str, pg_dsn: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ids = [client.xadd(S1, {b"d": batch(300, 1000 * k, 7)}).decode() for k in range(6)]
    kw = {"redis_url": redis_url, "dsn": pg_dsn}
    try:
        first = persist_range(S1, ids[0], ids[3], 4, **kw)
        assert (first.entries, first.rows, first.inserted, first.batch_duplicate) == (
            4,
            1200,
            1200,
            False,
        )
        again = persist_range(S1, ids[0], ids[3], 4, **kw)  # redelivered task
        assert again.batch_duplicate and again.inserted == 0
        overlap = persist_range(S1, ids[2], ids[5], 4, **kw)  # another key, half stored
        assert (overlap.inserted, overlap.duplicates) == (600, 600)
        assert stored(pg_dsn) == expected([(7, 1000 * k, 300) for k in range(6)])

        # an entry that does not decode is skipped and counted, the rest is stored
        bad = client.xadd(S2, {b"d": b"SLPB garbage"}).decode()
        good = client.xadd(S2, {b"d": batch(10, 0, 8)}).decode()
        res = persist_range(S2, bad, good, 2, **kw)
        assert (res.bad, res.inserted) == (1, 10)
        # entries trimmed away before the task ran are reported as missing
        client.xtrim(S2, maxlen=0)
        gone = persist_range(S2, bad, good, 2, **kw)
        assert (gone.entries, gone.missing, gone.rows) == (0, 2, 0)
        assert len(stored(pg_dsn)) == 1810
        # a task filled by two reads carries their runs: only those entries are read
        s3 = stream_name("okx", "ETH-USDT", "trades")
        ids3 = [client.xadd(s3, {b"d": batch(5, 100 * k, 9)}).decode() for k in range(6)]
        runs = [[ids3[0], ids3[1]], [ids3[4], ids3[5]]]
        two = persist_range(s3, ids3[0], ids3[5], 4, runs, **kw)
        assert (two.entries, two.inserted, two.missing) == (4, 20, 0)
        assert [t for i, t in stored(pg_dsn) if i == 9] == sorted(
            100 * k + j for k in (0, 1, 4, 5) for j in range(5)
        )
        # the whole range with the same ends is another batch: its two other entries land
        client.xgroup_create(s3, "persist", id="0")
        client.xreadgroup("persist", "bridge-x", {s3: ">"})  # all six pending on the bridge
        whole = persist_range(s3, ids3[0], ids3[5], 6, group="persist", **kw)
        assert (whole.entries, whole.inserted, whole.duplicates, whole.acked) == (6, 10, 20, 6)
        assert whole.batch_duplicate is False
        assert client.xpending(s3, "persist")["pending"] == 0  # acknowledged after the commit
        assert len([t for i, t in stored(pg_dsn) if i == 9]) == 30
    finally:
        close_connections()
        client.close()


# -- the pipeline with worker subprocesses -------------------------------------------------


def test_pipeline_stores_every_event_once_and_absorbs_redelivery(stack: Stack) -> None:
    stack.worker()
    published = [(inst, k * 10_000, 500) for k in range(30) for inst in (1, 2)]

    async def go() -> Bridge:
        bus = RedisStreamsBus(stack.env["REDIS_URL"], flush_batch=16)
        bridge = make_bridge(stack, bus, per_task=8)
        runner = asyncio.create_task(bridge.run())
        for inst, first, n in published:
            await bus.publish(S1 if inst == 1 else S2, batch(n, first, inst))
        await bus.flush()
        await await_for(lambda: row_count(stack.dsn) == 30_000, WAIT, "30000 rows")
        await await_for(
            lambda: set(bridge.stats.lag) == {S1, S2} and bridge.stats.max_lag_ms == 0.0,
            10,
            "the group lag of both streams to be measured as 0",
        )
        bridge.stop()
        await runner
        await bridge.aclose()
        await bus.aclose()
        return bridge

    bridge = run(go())
    assert stored(stack.dsn) == expected(published)
    assert bridge.stats.entries == 60 and bridge.stats.recovered == bridge.stats.claimed == 0
    assert set(bridge.stats.lag) == {S1, S2}
    assert all(g.pending == 0 and g.undelivered == 0 for g in bridge.stats.lag.values())

    # the same range delivered twice more, then an overlapping one: still stored once
    with psycopg.connect(stack.dsn) as c:
        keys = [k for (k,) in c.execute("SELECT batch_key FROM ingest_batches ORDER BY 1")]
    assert len(keys) == bridge.stats.tasks
    key = next(k for k in keys if "+" not in k)  # one contiguous range (no runs digest)
    stream, _, rng = key.rpartition(":")  # "<stream>:<ms>-<seq>-<ms>-<seq>"
    ms1, seq1, ms2, seq2 = rng.split("-")
    first_id, last_id = f"{ms1}-{seq1}", f"{ms2}-{seq2}"
    app = create_app(stack.cfg)
    for _ in range(2):
        app.send_task(PERSIST_TASK, args=(stream, first_id, last_id), queue="persist")
    app.send_task(PERSIST_TASK, args=(stream, "0-0", last_id), queue="persist")
    overlap_key = f"{stream}:0-0-{last_id}"

    def merged() -> bool:
        with psycopg.connect(stack.dsn) as c:
            return (
                c.execute(
                    "SELECT 1 FROM ingest_batches WHERE batch_key = %s", (overlap_key,)
                ).fetchone()
                is not None
            )

    wait_for(merged, WAIT, "the overlapping range to be processed", every=0.1)
    assert stored(stack.dsn) == expected(published)
    app.close()


def test_tasks_the_broker_loses_are_re_published_and_stored_once(stack: Stack) -> None:
    """Entries stay pending until their task commits: lost tasks come back by themselves."""
    published = [(5, k * 1000, 100) for k in range(12)]
    broker = stack.broker()

    async def go() -> tuple[Bridge, int]:
        bus = RedisStreamsBus(stack.env["REDIS_URL"], flush_batch=1000)
        bridge = make_bridge(stack, bus, per_task=4, claim_idle_ms=2000, claim_every=0.25)
        runner = asyncio.create_task(bridge.run())
        for inst, first, n in published:
            await bus.publish(S1, batch(n, first, inst))
        await bus.flush()
        await await_for(
            lambda: bridge.stats.entries == 12 and broker.llen("persist") == bridge.stats.tasks,
            WAIT,
            "the tasks to be queued",
        )
        lost = int(broker.llen("persist"))
        assert broker.delete("persist") == 1  # the broker loses every queued task
        await asyncio.to_thread(stack.worker)
        await await_for(lambda: row_count(stack.dsn) == 1200, WAIT, "1200 rows")
        await await_for(
            lambda: bridge.stats.lag.get(S1) is not None and bridge.stats.lag[S1].pending == 0,
            WAIT,
            "every entry acknowledged",
        )
        bridge.stop()
        await runner
        await bridge.aclose()
        await bus.aclose()
        return bridge, lost

    bridge, lost = run(go())
    assert lost >= 1
    assert stored(stack.dsn) == expected(published)
    assert bridge.stats.claimed >= 12 and bridge.stats.recovered == 0
    broker.close()


def test_kill9_of_the_persist_worker_mid_batch_loses_and_duplicates_nothing(
    stack: Stack,
) -> None:
    worker, _ = stack.worker()
    # three big tasks (100k rows each: hundreds of ms of work) so the kill lands inside one
    published = [(1, k * 5000, 5000) for k in range(60)]
    broker = stack.broker()

    async def publish_and_bridge(kill: Callable[[], None]) -> None:
        bus = RedisStreamsBus(stack.env["REDIS_URL"], flush_batch=1000)
        bridge = make_bridge(stack, bus, per_task=20)
        for inst, first, n in published:
            await bus.publish(S1, batch(n, first, inst))
        await bus.flush()
        runner = asyncio.create_task(bridge.run())
        await await_for(lambda: broker.hlen("unacked") >= 1, WAIT, "a task in flight", 0.01)
        await asyncio.sleep(0.1)
        kill()
        await await_for(lambda: bridge.stats.entries == 60, WAIT, "the bridge to hand over")
        bridge.stop()
        await runner
        await bridge.aclose()
        await bus.aclose()

    run(publish_and_bridge(lambda: stack.kill(worker)))
    # the killed worker's task is still unacknowledged in the broker: it died mid-task
    in_flight = broker.hlen("unacked")
    assert in_flight >= 1
    before = row_count(stack.dsn)
    assert before < 300_000

    # a long-lane entry planted with an old timestamp must survive short-lane sweeps
    broker.hset(LONG_KEYS["unacked_key"], "planted", json.dumps([{}, "", "backtest"]))
    broker.zadd(LONG_KEYS["unacked_index_key"], {"planted": time.time() - 3600})

    t_kill = time.monotonic()
    stack.worker()
    wait_for(lambda: row_count(stack.dsn) == 300_000, WAIT, "all 300000 rows", every=0.1)
    recovered_s = time.monotonic() - t_kill
    assert stored(stack.dsn) == expected(published)
    wait_for(lambda: broker.hlen("unacked") == 0, WAIT, "the broker's unacked hash to drain")
    assert broker.hexists(LONG_KEYS["unacked_key"], "planted")
    assert broker.llen("backtest") == 0
    print(
        f"in flight at kill: {in_flight}, rows before: {before}, recovered in {recovered_s:.1f} s"
    )
    broker.close()


def test_postgres_outage_tasks_retry_and_nothing_is_lost(stack: Stack) -> None:
    _, logfile = stack.worker()
    name = stack.dsn.rsplit("/", 1)[1]
    admin = stack.dsn.rsplit("/", 1)[0] + "/postgres"
    published = [(3, k * 1000, 400) for k in range(20)]

    def allow(on: bool) -> None:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if on else "false"}')
            if not on:
                c.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )

    async def go() -> None:
        bus = RedisStreamsBus(stack.env["REDIS_URL"], flush_batch=1000)
        bridge = make_bridge(stack, bus, per_task=2)
        runner = asyncio.create_task(bridge.run())
        for inst, first, n in published[:10]:
            await bus.publish(S1, batch(n, first, inst))
        await bus.flush()
        await await_for(lambda: row_count(stack.dsn) == 4000, WAIT, "the first 4000 rows")
        allow(False)
        try:
            for inst, first, n in published[10:]:
                await bus.publish(S1, batch(n, first, inst))
            await bus.flush()
            await await_for(
                lambda: logfile.read_bytes().count(b"retry in") >= 3, WAIT, "three retries"
            )
            assert row_count(stack.dsn) == -1  # really down
        finally:
            allow(True)
        await await_for(lambda: row_count(stack.dsn) == 8000, WAIT, "all 8000 rows")
        bridge.stop()
        await runner
        await bridge.aclose()
        await bus.aclose()

    run(go())
    assert stored(stack.dsn) == expected(published)
    assert b"is not reachable" in logfile.read_bytes()


def test_redis_restart_loses_no_acknowledged_event_and_counts_drops(stack: Stack) -> None:
    stack.worker()
    before = [(4, k * 1000, 200) for k in range(20)]
    during = [(4, 100_000 + k * 1000, 200) for k in range(30)]
    after = [(4, 200_000 + k * 1000, 200) for k in range(20)]

    async def go() -> RedisStreamsBus:
        bus = RedisStreamsBus(
            stack.env["REDIS_URL"], timeout=0.5, flush_batch=10_000, max_buffer_entries=20
        )
        # a task the broker loses comes back within claim_idle_ms (it is never acknowledged)
        bridge = make_bridge(stack, bus, per_task=4, claim_idle_ms=10_000, claim_every=1.0)
        runner = asyncio.create_task(bridge.run())
        for inst, first, n in before:
            await bus.publish(S1, batch(n, first, inst))
        assert await bus.flush()
        await await_for(lambda: row_count(stack.dsn) > 0, WAIT, "the first rows")
        stack.redis.kill()
        for inst, first, n in during:
            await bus.publish(S1, batch(n, first, inst))  # buffered; the oldest 10 dropped
        assert not await bus.flush()
        await asyncio.sleep(1.0)  # bridge and worker see the outage
        stack.redis.start()
        assert await bus.flush()
        for inst, first, n in after:
            await bus.publish(S1, batch(n, first, inst))
        assert await bus.flush()
        want = 200 * (len(before) + len(during) - 10 + len(after))
        try:
            await await_for(lambda: row_count(stack.dsn) == want, WAIT, f"{want} rows")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{explain(stack, bridge)}") from None
        bridge.stop()
        await runner
        await bridge.aclose()
        await bus.aclose()
        return bus

    bus = run(go())
    assert bus.stats.dropped == 10 and bus.stats.dropped_by_stream == {S1: 10}
    assert bus.stats.published == 70 and bus.stats.flushed == 60
    # exactly the acknowledged events: everything but the 10 oldest buffered during the outage
    assert stored(stack.dsn) == expected(before + during[10:] + after)
