"""Typed configuration schemas: frozen dataclasses, one per config group.

The YAML in ``conf/`` holds values; these classes hold the shape. Hydra validates every
composed config against them (unknown keys and wrong types fail naming the key), and
:func:`orchestrator.config.load_config` turns the result into these frozen objects, so
nothing downstream ever sees a ``DictConfig``.

Secrets never live in the configuration: an exchange names the *environment variables*
that hold its credentials (``credentials.api_key_env``), and
:mod:`orchestrator.config.secrets` reads them at the point of use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING

__all__ = [
    "STRATEGY_SCHEMAS",
    "AppConfig",
    "ArchiveConfig",
    "ArchiveKind",
    "BusKind",
    "CaptureConfig",
    "CeleryBridgeConfig",
    "CeleryConfig",
    "CeleryWorkerConfig",
    "CredentialsConfig",
    "ExchangeConfig",
    "Market",
    "MetricsConfig",
    "ModeConfig",
    "MomentumConfig",
    "ProfileConfig",
    "RunMode",
    "ServicesConfig",
    "StrategyConfig",
    "Venue",
    "ViewConfig",
]


class Venue(Enum):
    """Exchange operator (wire protocol family)."""

    binance = "binance"
    okx = "okx"


class Market(Enum):
    """Market type within a venue."""

    spot = "spot"
    usdm = "usdm"
    swap = "swap"


class BusKind(Enum):
    """Event bus implementation."""

    inproc = "inproc"
    redis = "redis"


class ArchiveKind(Enum):
    """Where events are archived."""

    local = "local"
    postgres = "postgres"


class RunMode(Enum):
    """What the main job does with decisions."""

    paper = "paper"
    live = "live"
    backtest = "backtest"


@dataclass(frozen=True)
class CredentialsConfig:
    """Names of the environment variables holding an exchange's API credentials.

    Each variable may instead be given as ``<NAME>_FILE`` pointing at a file that holds
    the secret (Docker/Kubernetes secrets style). The values are never part of the config.
    """

    api_key_env: str = ""
    api_secret_env: str = ""
    passphrase_env: str = ""


@dataclass(frozen=True)
class ExchangeConfig:
    """One selected exchange (``conf/exchange/<name>.yaml``, lands under ``exchanges.<name>``)."""

    name: str = MISSING
    venue: Venue = MISSING
    market: Market = MISSING
    ws_url: str = MISSING
    rest_url: str = MISSING
    symbols: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    use_simulator: bool = False
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)


@dataclass(frozen=True)
class StrategyConfig:
    """Fields every strategy has; concrete strategies extend it."""

    name: str = MISSING


@dataclass(frozen=True)
class MomentumConfig(StrategyConfig):
    """Momentum strategy parameters (``conf/strategy/momentum.yaml``)."""

    name: str = "momentum"
    lookback: int = 50
    entry_threshold: float = 1.0
    exit_threshold: float = 0.25
    order_notional: float = 100.0
    max_position_notional: float = 1000.0
    slippage_budget_bps: float = 5.0


#: Strategy name -> its schema (a strategy's YAML ``name`` picks the schema to check it).
STRATEGY_SCHEMAS: dict[str, type[StrategyConfig]] = {"momentum": MomentumConfig}


@dataclass(frozen=True)
class ProfileConfig:
    """Infrastructure profile: embedded (no servers) or distributed (Redis, Celery, DB)."""

    name: str = MISSING
    bus: BusKind = MISSING
    archive: ArchiveKind = MISSING
    celery: bool = False
    local_archive_dir: str = "data/archive"


@dataclass(frozen=True)
class ModeConfig:
    """Run mode. ``live`` sends real orders and needs ``confirm_live=true`` as well as keys."""

    name: RunMode = MISSING
    confirm_live: bool = False
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class ServicesConfig:
    """Service endpoints (overridden by ``REDIS_URL``, ``TIMESCALEDB_URL``, ``CELERY_*``)."""

    redis_url: str = MISSING
    database_url: str = MISSING
    celery_broker_url: str = MISSING
    celery_result_backend: str = MISSING


@dataclass(frozen=True)
class ArchiveConfig:
    """PostgreSQL / TimescaleDB archive settings (``orchestrator.data.archive.ArchiveSettings``)."""

    timescale: str = "auto"
    chunk_days: int = 1
    ahead_days: int = 3
    compress_after_days: int | None = 7
    retention_days: dict[str, int | None] = field(
        default_factory=lambda: {
            "deltas": 30,
            "book_snapshots": 30,
            "tops": 30,
            "trades": 365,
            "signals": 90,
            "orders": None,
            "fills": None,
            "ledger": 365,
        }
    )
    bars_refresh_days: int = 2
    max_batch_days: int = 31
    batch_key_days: int = 7
    read_connections: int = 2
    instrument_partitions: int = 4


@dataclass(frozen=True)
class CaptureConfig:
    """Raw capture of every received frame (``slipstream-raw`` gzip files)."""

    record: bool = True
    dir: str = "data/captures"
    flush_every: int = 1000


@dataclass(frozen=True)
class PublishConfig:
    """What the main job publishes besides trades, tops and the ledger.

    ``deltas``: every change of every book (``md:<exchange>:<symbol>:deltas``), held in a
    buffer of ``delta_capacity`` records per exchange between publishes (a full buffer
    re-sends the book whole instead of losing changes). ``snapshot_interval``: seconds
    between whole-book snapshots (``...:snapshots``), the start points of replays; ``null``
    publishes none.
    """

    deltas: bool = True
    delta_capacity: int = 262144
    snapshot_interval: float | None = 60.0


@dataclass(frozen=True)
class ViewConfig:
    """Live terminal view of the main job."""

    enabled: bool = True
    interval: float = 1.0


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus text exposition over HTTP (``/metrics``); ``port: null`` turns it off."""

    host: str = "127.0.0.1"
    port: int | None = 9464


def _default_celery_routes() -> dict[str, str]:
    return {
        "orchestrator.data.tasks.persist_*": "persist",
        "orchestrator.backtest.*": "backtest",
        "orchestrator.execution.*": "execute",
    }


@dataclass(frozen=True)
class CeleryWorkerConfig:
    """What ``python -m orchestrator.worker`` starts (shorthands ``queues=``, ``concurrency=``)."""

    queues: list[str] = field(default_factory=lambda: ["persist"])
    concurrency: int = 1
    pool: str = "prefork"
    loglevel: str = "INFO"
    migrate: bool = True


@dataclass(frozen=True)
class CeleryBridgeConfig:
    """The Redis Streams -> Celery bridge (:mod:`orchestrator.data.bridge`)."""

    group: str = "persist"
    pattern: str = "md:*"
    entries_per_task: int = 32
    block_ms: int = 200
    linger_ms: int = 100
    claim_idle_s: float = 60.0


@dataclass(frozen=True)
class CeleryConfig:
    """Celery app settings (broker and backend URLs live under ``services``).

    ``visibility_timeout`` / ``restore_interval`` apply to workers of short-task queues:
    a killed worker's task comes back after about their sum. Workers consuming any of
    ``long_queues`` use ``long_visibility_timeout`` and separate broker bookkeeping keys.
    """

    visibility_timeout: float = 10.0
    restore_interval: float = 1.0
    long_queues: list[str] = field(default_factory=lambda: ["backtest"])
    long_visibility_timeout: float = 21600.0
    retry_backoff_max: float = 4.0
    socket_timeout: float = 5.0
    routes: dict[str, str] = field(default_factory=_default_celery_routes)
    worker: CeleryWorkerConfig = field(default_factory=CeleryWorkerConfig)
    bridge: CeleryBridgeConfig = field(default_factory=CeleryBridgeConfig)


@dataclass(frozen=True)
class AppConfig:
    """The whole composed configuration (``conf/config.yaml``)."""

    run_name: str = "slipstream"
    log_level: str = "INFO"
    duration: float | None = None
    strategy: Any = MISSING
    exchanges: dict[str, ExchangeConfig] = field(default_factory=dict)
    profile: ProfileConfig = MISSING
    mode: ModeConfig = MISSING
    services: ServicesConfig = field(default_factory=ServicesConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    view: ViewConfig = field(default_factory=ViewConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    celery: CeleryConfig = field(default_factory=CeleryConfig)
