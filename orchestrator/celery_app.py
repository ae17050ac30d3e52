"""The Celery application: configured from the Hydra config, three routed queues.

Queues and routing
    ``persist`` (archive writes from the bus, :mod:`orchestrator.data.tasks`), ``backtest``
    (long runs), ``execute`` (order execution) and ``default`` for anything unrouted. Task
    names are routed by the glob patterns of ``celery.routes`` in ``conf/config.yaml``.

Delivery guarantees
    ``task_acks_late`` (a message is acknowledged only after its task returned),
    ``task_reject_on_worker_lost`` (a pool child killed mid-task puts the message back at
    once) and ``worker_prefetch_multiplier = 1`` (a worker holds at most one message per
    pool process beyond the running one).

Redelivery after a killed worker (the whole worker, not just a pool child)
    With the Redis broker an unacknowledged message sits in the broker's ``unacked`` hash
    and index; any live worker puts it back into its queue once it is older than
    ``visibility_timeout``, scanning every ``unacked_restore_interval`` seconds (kombu's
    default sweep is 10 s x a throttle of 10, which made recovery take ~90 s). Workers of the
    short-task queues use ``celery.visibility_timeout`` (10 s) with a 1 s unthrottled sweep,
    so a ``kill -9``-ed persist worker's task runs again on another worker ~11 s later.

Long tasks (the two *lanes*)
    A visibility timeout of 10 s would redeliver any task still running after 10 s, so a
    backtest would run twice, then three times... The timeout is a property of the consuming
    connection, and the sweep of *any* worker restores *every* expired entry of the index it
    scans. So a worker that consumes one of ``celery.long_queues`` (``backtest``) runs in the
    **long lane**: ``long_visibility_timeout`` (6 h) and its own bookkeeping keys
    (``unacked_long``, ``unacked_index_long``, ``unacked_mutex_long``) that short-lane
    sweeps never look at. Publishing is the same for both lanes (one app, one broker URL;
    queues are plain Redis lists); only the worker side differs, chosen automatically from
    the queues a worker consumes (:func:`lane_of`, applied in the ``celeryd_init`` signal,
    so it works for ``python -m orchestrator.worker`` and the ``celery`` CLI alike). A worker
    that mixes short and long queues runs in the long lane (its short tasks then recover
    after the long timeout); start one worker per lane instead.

    Retries with a countdown (ETA) are held unacknowledged by the worker until due, so the
    persist task's retry backoff is capped below half the short visibility timeout
    (``celery.retry_backoff_max``), else the sweep would duplicate waiting retries.

Configuration
    :func:`current_config` composes ``conf/`` (environment overrides ``CELERY_BROKER_URL``,
    ``CELERY_RESULT_BACKEND``, ``REDIS_URL``, ``TIMESCALEDB_URL`` apply) the first time the
    app's settings are needed; :func:`configure` installs an already composed config
    (``python -m orchestrator.worker`` does that with its command-line overrides).

Start a worker::

    python -m orchestrator.worker queues=persist
    celery -A orchestrator.celery_app worker -Q persist -c 1 --without-gossip --without-mingle
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from celery import Celery, signals
from kombu.entity import Queue as _KombuQueue

from orchestrator.config.schema import AppConfig, CeleryConfig
from orchestrator.errors import ConfigError, ServiceUnavailableError, SlipstreamError

__all__ = [
    "DEFAULT_QUEUE",
    "LONG_KEYS",
    "PERSIST_TASK",
    "QUEUES",
    "Lane",
    "app",
    "celery_settings",
    "configure",
    "create_app",
    "current_config",
    "lane_of",
    "load_app_config",
    "transport_options",
]

log = logging.getLogger(__name__)

Lane = Literal["short", "long"]

#: The routed queues (plus :data:`DEFAULT_QUEUE` for unrouted tasks).
QUEUES: tuple[str, ...] = ("persist", "backtest", "execute")
DEFAULT_QUEUE = "default"
#: Name of the persist task (``orchestrator.data.tasks``); the bridge sends it by name.
PERSIST_TASK = "orchestrator.data.tasks.persist_range"
#: Broker bookkeeping keys of the long lane (kombu transport options).
LONG_KEYS = {
    "unacked_key": "unacked_long",
    "unacked_index_key": "unacked_index_long",
    "unacked_mutex_key": "unacked_mutex_long",
}

#: kombu's queue class (untyped).
_Queue: Any = _KombuQueue

_lock = threading.Lock()
_config: AppConfig | None = None


def load_app_config(overrides: Sequence[str] = ()) -> AppConfig:
    """Compose ``conf/config.yaml`` with Hydra ``overrides`` into a frozen :class:`AppConfig`.

    Works both outside Hydra (initializes it for the call) and inside a ``@hydra.main``
    application (uses the running instance).

    Raises
    ------
    ConfigError
        If the overrides or the composed values are invalid.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from orchestrator.config import load_config, setup
    from orchestrator.config.paths import config_dir

    setup()
    try:
        if GlobalHydra.instance().is_initialized():
            composed = compose(config_name="config", overrides=list(overrides))
        else:
            with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                composed = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"invalid config override: {first}") from None
    return load_config(composed)


def current_config() -> AppConfig:
    """Return the app's config: installed by :func:`configure`, else composed once."""
    global _config
    with _lock:
        if _config is None:
            _config = load_app_config()
        return _config


def _check(c: CeleryConfig) -> None:
    for name in ("visibility_timeout", "restore_interval", "long_visibility_timeout"):
        if getattr(c, name) <= 0:
            raise ConfigError(f"celery.{name} must be > 0, was {getattr(c, name)}")
    if c.socket_timeout <= 0:
        raise ConfigError(f"celery.socket_timeout must be > 0, was {c.socket_timeout}")
    if not 0 < c.retry_backoff_max <= c.visibility_timeout / 2:
        raise ConfigError(
            f"celery.retry_backoff_max must be in (0, visibility_timeout / 2 = "
            f"{c.visibility_timeout / 2:g}], was {c.retry_backoff_max}: a retry waiting "
            "longer than the visibility timeout is redelivered while it waits"
        )
    unknown = [q for q in (*c.long_queues, *c.routes.values()) if q not in (*QUEUES, DEFAULT_QUEUE)]
    if unknown:
        raise ConfigError(
            f"celery names unknown queue(s) {', '.join(sorted(set(unknown)))}; "
            f"known: {', '.join((*QUEUES, DEFAULT_QUEUE))}"
        )
    w = c.worker
    if w.concurrency < 1:
        raise ConfigError(f"celery.worker.concurrency must be >= 1, was {w.concurrency}")
    if not w.queues:
        raise ConfigError("celery.worker.queues is empty: name at least one queue")
    unknown = [q for q in w.queues if q not in (*QUEUES, DEFAULT_QUEUE)]
    if unknown:
        raise ConfigError(
            f"celery.worker.queues names unknown queue(s) {', '.join(unknown)}; "
            f"known: {', '.join((*QUEUES, DEFAULT_QUEUE))}"
        )
    b = c.bridge
    if b.entries_per_task < 1 or b.block_ms < 0 or b.claim_idle_s <= 0:
        raise ConfigError(
            "celery.bridge: entries_per_task must be >= 1, block_ms >= 0, claim_idle_s > 0"
        )


def lane_of(c: CeleryConfig, queues: Iterable[str]) -> Lane:
    """``"long"`` when ``queues`` contains one of ``c.long_queues``, else ``"short"``."""
    return "long" if set(queues) & set(c.long_queues) else "short"


def transport_options(c: CeleryConfig, lane: Lane = "short") -> dict[str, Any]:
    """Return the kombu Redis transport options of a worker (or publisher) of ``lane``.

    Short lane: ``visibility_timeout`` with an unthrottled sweep every ``restore_interval``
    seconds. Long lane: ``long_visibility_timeout`` and :data:`LONG_KEYS` (separate unacked
    bookkeeping, invisible to short-lane sweeps).
    """
    opts: dict[str, Any] = {
        "socket_timeout": c.socket_timeout,
        "socket_connect_timeout": c.socket_timeout,
        "socket_keepalive": True,
    }
    if lane == "short":
        opts.update(
            visibility_timeout=c.visibility_timeout,
            unacked_restore_interval=c.restore_interval,
            unacked_restore_throttle=1,
        )
    else:
        opts.update(visibility_timeout=c.long_visibility_timeout, **LONG_KEYS)
    return opts


def celery_settings(cfg: AppConfig, lane: Lane = "short") -> dict[str, Any]:
    """Celery settings (``app.conf``) from the composed config.

    Raises
    ------
    ConfigError
        If a ``celery`` value is out of range (see ``conf/config.yaml``).
    """
    c = cfg.celery
    _check(c)
    return {
        "broker_url": cfg.services.celery_broker_url,
        "result_backend": cfg.services.celery_result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "enable_utc": True,
        "timezone": "UTC",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_queues": tuple(_Queue(q, routing_key=q) for q in (*QUEUES, DEFAULT_QUEUE)),
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_routing_key": DEFAULT_QUEUE,
        "task_routes": {pattern: {"queue": q} for pattern, q in c.routes.items()},
        "broker_transport_options": transport_options(c, lane),
        "result_backend_transport_options": {
            "socket_timeout": c.socket_timeout,
            "socket_connect_timeout": c.socket_timeout,
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": c.socket_timeout,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.0,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
        "result_expires": 86_400,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_redirect_stdouts_level": "INFO",
    }


def create_app(cfg: AppConfig | None = None, name: str = "slipstream") -> Any:
    """Build a new Celery app configured from ``cfg`` (default: :func:`current_config`).

    Use it to publish with other endpoints than the module's :data:`app` (tests, tools);
    tasks are sent by name (``app.send_task(PERSIST_TASK, ...)``).
    """
    new = Celery(name)
    new.conf.update(celery_settings(cfg or current_config()))
    return new


def configure(cfg: AppConfig) -> None:
    """Install ``cfg`` as the config of :data:`app` (before a worker starts)."""
    global _config
    settings = celery_settings(cfg)
    with _lock:
        _config = cfg
    app.conf.update(settings)


#: The application (``celery -A orchestrator.celery_app``); settings load on first use.
app: Any = Celery("slipstream", include=["orchestrator.data.tasks"])
app.add_defaults(lambda: celery_settings(current_config()))


def _queue_names(raw: object) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [q.strip() for q in raw.split(",") if q.strip()]
    if isinstance(raw, Iterable):
        out: list[str] = []
        for item in raw:
            out += _queue_names(item)
        return out
    return []


_started: dict[str, Any] = {}


def _on_worker_init(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    """``celeryd_init`` (before any broker connection): pick the lane from the queues."""
    if instance is None or getattr(instance, "app", None) is not app:
        return
    cfg = current_config()
    options = kwargs.get("options") or {}
    queues = _queue_names(options.get("queues")) or [*QUEUES, DEFAULT_QUEUE]
    lane = lane_of(cfg.celery, queues)
    conf: Any = kwargs["conf"] if kwargs.get("conf") is not None else instance.app.conf
    conf.broker_transport_options = transport_options(cfg.celery, lane)
    _started.update(queues=queues, lane=lane)


def _on_worker_setup(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    """``celeryd_after_setup`` (logging is set up): report the lane; migrate the archive."""
    if instance is None or getattr(instance, "app", None) is not app or not _started:
        return
    cfg = current_config()
    queues: list[str] = _started["queues"]
    lane: Lane = _started["lane"]
    vt = transport_options(cfg.celery, lane)["visibility_timeout"]
    log.info("worker %s: queues %s, %s lane (visibility timeout %g s)", sender, queues, lane, vt)
    short = [q for q in queues if q not in cfg.celery.long_queues]
    if lane == "long" and short:
        log.warning(
            "worker consumes long-lane queue(s) and %s: all of them use the long visibility "
            "timeout (%g s); start one worker per lane for fast recovery of short tasks",
            ",".join(short),
            vt,
        )
    if "persist" in queues and cfg.celery.worker.migrate:
        from orchestrator.data.archive import archive_settings, migrate

        try:
            report = migrate(cfg.services.database_url, archive_settings(cfg.archive))
            log.info("archive migrated (%s, applied %s)", report.variant, list(report.applied))
        except ServiceUnavailableError as exc:
            log.warning("archive not migrated at start (tasks migrate when it is back): %s", exc)
        except SlipstreamError as exc:
            log.error("archive migration failed: %s", exc)
            raise


signals.celeryd_init.connect(_on_worker_init, weak=False)
signals.celeryd_after_setup.connect(_on_worker_setup, weak=False)
