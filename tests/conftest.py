"""Shared fixtures: isolated environment, Hydra compose, real Redis and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"

#: Variables that change what the config resolves to; tests start without them.
CONFIG_ENV = (
    "REDIS_URL",
    "TIMESCALEDB_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "SUPPORTED_EXCHANGES",
)

#: Redis DB index reserved for the test suite (flushed before and after each use).
TEST_REDIS_DB = 15


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove the config-affecting environment variables for one test."""
    for name in CONFIG_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def compose(clean_env: pytest.MonkeyPatch) -> Iterator[Callable[..., object]]:
    """Compose ``conf/`` through Hydra's compose API, as ``python -m orchestrator`` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from orchestrator.config import setup
    from orchestrator.config.paths import config_dir

    setup()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):

        def _compose(*overrides: str) -> object:
            return hydra_compose(config_name="config", overrides=list(overrides))

        yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """URL of the test Redis DB (index 15), empty before and after the test."""
    import redis

    host = os.environ.get("REDIS_HOST", "127.0.0.1")
    port = int(os.environ.get("REDIS_PORT", "6379"))
    url = f"redis://{host}:{port}/{TEST_REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """DSN of a throwaway PostgreSQL database, dropped after the test."""
    import psycopg

    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    admin = f"postgresql://postgres@{host}:{port}/postgres"
    name = f"slipstream_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
