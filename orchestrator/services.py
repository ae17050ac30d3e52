"""Reachability checks for the external services (Redis, PostgreSQL).

They return quickly with a :class:`ServiceUnavailableError` that says which endpoint
failed and how to start it, instead of a driver traceback.
"""

from __future__ import annotations

from orchestrator.config.secrets import redact_url
from orchestrator.errors import ServiceUnavailableError

__all__ = ["check_postgres", "check_redis"]


def check_redis(url: str, timeout: float = 2.0) -> str:
    """Ping Redis at ``url`` and return its server version.

    Raises
    ------
    ServiceUnavailableError
        If the server does not answer within ``timeout`` seconds.
    """
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
        return str(client.info("server")["redis_version"])
    except redis.RedisError as exc:
        raise ServiceUnavailableError(
            f"Redis at {redact_url(url)} is not reachable ({type(exc).__name__}); "
            "start it with `make services` or set REDIS_URL"
        ) from None
    finally:
        client.close()


def check_postgres(dsn: str, timeout: float = 2.0) -> str:
    """Connect to PostgreSQL at ``dsn`` and return ``server_version``.

    Raises
    ------
    ServiceUnavailableError
        If no connection can be made within ``timeout`` seconds.
    """
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout))) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except psycopg.Error as exc:
        raise ServiceUnavailableError(
            f"PostgreSQL at {redact_url(dsn)} is not reachable ({type(exc).__name__}); "
            "start it with `make services` or set TIMESCALEDB_URL"
        ) from None
