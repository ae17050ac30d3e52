"""The real services answer over real connections (dedicated DB / DB index, cleaned up)."""

from __future__ import annotations

import socket

import psycopg
import pytest
import redis

from orchestrator.errors import ServiceUnavailableError
from orchestrator.services import check_postgres, check_redis

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redis_round_trip_in_test_db(redis_url):
    assert check_redis(redis_url).startswith("7.")
    client = redis.Redis.from_url(redis_url)
    client.xadd("slipstream:test", {b"k": b"v"})
    assert client.xlen("slipstream:test") == 1
    client.close()


def test_postgres_round_trip_in_throwaway_db(pg_dsn):
    assert check_postgres(pg_dsn).startswith("15")
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE t (ts timestamptz NOT NULL, px bigint NOT NULL)")
        conn.execute("INSERT INTO t VALUES (now(), 6425010)")
        assert conn.execute("SELECT px FROM t").fetchone() == (6425010,)


def test_unreachable_redis_is_a_clear_error():
    with pytest.raises(
        ServiceUnavailableError, match=r"Redis at redis://:\*\*\*@127\.0\.0\.1"
    ) as info:
        check_redis(f"redis://:pw@127.0.0.1:{free_port()}/0", timeout=0.5)
    assert "pw@" not in str(info.value)


def test_unreachable_postgres_is_a_clear_error():
    with pytest.raises(ServiceUnavailableError, match="PostgreSQL at"):
        check_postgres(f"postgresql://postgres@127.0.0.1:{free_port()}/x", timeout=1)
