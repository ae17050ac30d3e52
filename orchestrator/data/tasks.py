"""Celery tasks of the data plane: persist a range of a bus stream into the archive.

The bridge (:mod:`orchestrator.data.bridge`) hands a task only a *reference*:
``(stream, first_id, last_id)`` of entries it read from a Redis stream. The task

1. ``XRANGE``s that id range from the bus Redis (``services.redis_url``),
2. decodes every entry with :func:`~orchestrator.data.records.decode_batch` (an entry that
   does not decode is logged and skipped: retrying cannot repair it),
3. concatenates the records of each kind and inserts them with one
   :meth:`~orchestrator.data.archive.Archive.insert` per kind, in one transaction together
   with the batch key ``"<stream>:<first_id>-<last_id>"``.

Idempotence: a range already stored is recognised by its batch key and skipped; a range
that overlaps stored rows under another key (a bridge that died between publishing and
acknowledging, a claim of a dead bridge's entries) is merged on the natural keys. Either
way every event is stored once, however often the task runs.

Failures: PostgreSQL or the bus Redis unreachable (:class:`ServiceUnavailableError`)
-> the task retries for ever with capped exponential backoff (jittered, at most
``celery.retry_backoff_max`` seconds), reconnecting each time; any other archive refusal
(:class:`ArchiveError`) is retried three times, then fails loudly. Each worker process keeps
one archive connection and one Redis client, opened lazily (after the fork) and migrated
once.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.celery_app import PERSIST_TASK, app, current_config
from orchestrator.config.secrets import redact_url
from orchestrator.data.archive import Archive, ArchiveError, ArchiveSettings, archive_settings
from orchestrator.data.bus import PAYLOAD_FIELD
from orchestrator.data.records import BatchFormatError, RecordKind, decode_batch
from orchestrator.errors import ServiceUnavailableError

__all__ = [
    "PersistResult",
    "batch_key",
    "close_connections",
    "persist_range",
    "persist_range_task",
]

log = logging.getLogger(__name__)

#: Retries of an :class:`ArchiveError` that is not an outage.
ARCHIVE_ERROR_RETRIES = 3


@dataclass(frozen=True)
class PersistResult:
    """What one persist run did (the task's return value, as a dict).

    Attributes
    ----------
    entries
        Stream entries found in the range.
    rows
        Events offered to the archive.
    inserted, duplicates, expired
        Rows stored now, rows already stored, rows of dropped (expired) partitions.
    bad
        Entries that did not decode (logged, skipped).
    missing
        Entries the bridge announced but the stream no longer has (trimmed by ``MAXLEN``).
    batch_duplicate
        The whole range was stored before (batch key present).
    lag_ms
        Milliseconds from the bus accepting the range's first entry to this commit.
    """

    entries: int = 0
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    expired: int = 0
    bad: int = 0
    missing: int = 0
    batch_duplicate: bool = False
    lag_ms: float = 0.0


class _Handles:
    """Per-process connections, re-created after a fork or a failure."""

    def __init__(self) -> None:
        self.pid = -1
        self.archive: Archive | None = None
        self.redis: Any = None
        self.target = ("", "")

    def reset(self) -> None:
        if self.pid == os.getpid():
            if self.archive is not None:
                try:
                    self.archive.close()
                except Exception:  # closing a broken connection
                    log.debug("closing the archive connection failed", exc_info=True)
            if self.redis is not None:
                try:
                    self.redis.close()
                except Exception:
                    log.debug("closing the Redis client failed", exc_info=True)
        self.archive = None
        self.redis = None
        self.pid = os.getpid()

    def get(self, redis_url: str, dsn: str, settings: ArchiveSettings) -> tuple[Archive, Any]:
        if self.pid != os.getpid():  # forked: never share the parent's sockets
            self.archive = None
            self.redis = None
            self.pid = os.getpid()
        if (redis_url, dsn) != self.target:
            self.reset()
            self.target = (redis_url, dsn)
        if self.redis is None:
            import redis

            self.redis = redis.Redis.from_url(
                redis_url, socket_connect_timeout=5, socket_timeout=30
            )
        if self.archive is None:
            archive = Archive(dsn, settings)
            try:
                archive.migrate()
            except BaseException:
                archive.close()
                raise
            self.archive = archive
        return self.archive, self.redis


_handles = _Handles()


def close_connections() -> None:
    """Close this process's archive connection and Redis client (reopened on next use)."""
    _handles.reset()


def batch_key(stream: str, first_id: str, last_id: str) -> str:
    """Deterministic key of a stream range: ``"<stream>:<first_id>-<last_id>"``."""
    return f"{stream}:{first_id}-{last_id}"


def _sid(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _xrange(client: Any, redis_url: str, stream: str, first_id: str, last_id: str) -> Any:
    import redis

    try:
        return client.xrange(stream, first_id, last_id)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise ServiceUnavailableError(
            f"Redis at {redact_url(redis_url)} is not reachable ({type(exc).__name__})"
        ) from None


def persist_range(
    stream: str,
    first_id: str,
    last_id: str,
    count: int | None = None,
    runs: Sequence[Sequence[str]] | None = None,
    *,
    redis_url: str | None = None,
    dsn: str | None = None,
    settings: ArchiveSettings | None = None,
) -> PersistResult:
    """Store the entries ``first_id``..``last_id`` (inclusive) of ``stream`` exactly once.

    Parameters
    ----------
    stream
        Bus stream name (``md:<venue>:<instrument>:<kind>``).
    first_id, last_id
        Entry ids bounding the range (``"<ms>-<seq>"``), inclusive.
    count
        Entries the caller read in the range; fewer found means the stream was trimmed
        before the task ran (reported as ``missing``, logged as an error).
    runs
        ``[first, last]`` sub-ranges to read instead of the whole range (the bridge's reads
        when several filled one task; entries between them are another consumer's).
    redis_url, dsn, settings
        Bus Redis, archive DSN and archive settings (default: the app's config).

    Returns
    -------
    PersistResult

    Raises
    ------
    ServiceUnavailableError
        If Redis or PostgreSQL cannot be reached (the task retries).
    ArchiveError
        If the archive refuses the records.
    """
    cfg = current_config() if redis_url is None or dsn is None else None
    redis_url = redis_url or (cfg.services.redis_url if cfg else "")
    dsn = dsn or (cfg.services.database_url if cfg else "")
    if settings is None:
        settings = archive_settings((cfg or current_config()).archive)
    archive, client = _handles.get(redis_url, dsn, settings)
    if runs:
        reply = []
        for run_first, run_last in runs:
            reply += _xrange(client, redis_url, stream, str(run_first), str(run_last))
    else:
        reply = _xrange(client, redis_url, stream, first_id, last_id)
    parts: dict[RecordKind, list[npt.NDArray[np.void]]] = {}
    bad = 0
    for eid, fields in reply:
        payload = fields.get(PAYLOAD_FIELD) if fields else None
        try:
            if payload is None:
                raise BatchFormatError("entry has no payload field")
            kind, records = decode_batch(payload)
        except BatchFormatError as exc:
            bad += 1
            log.error("%s %s: entry skipped, it does not decode: %s", stream, _sid(eid), exc)
            continue
        parts.setdefault(kind, []).append(records)
    entries = len(reply)
    missing = max(0, count - entries) if count is not None else 0
    if missing:
        log.error(
            "%s %s..%s: %d of %d entries are gone from the stream (trimmed by MAXLEN before "
            "they were persisted: raise the bus maxlen or add persist workers)",
            stream,
            first_id,
            last_id,
            missing,
            count,
        )
    key = batch_key(stream, first_id, last_id)
    rows = inserted = duplicates = expired = 0
    batch_duplicate = bool(parts)
    for kind, arrays in parts.items():
        records = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        res = archive.insert(
            records, kind, batch_key=key if len(parts) == 1 else f"{key}#{kind.name.lower()}"
        )
        rows += res.rows
        inserted += res.inserted
        duplicates += res.duplicates
        expired += res.expired
        batch_duplicate = batch_duplicate and res.batch_duplicate
    first_ms = int(first_id.split("-", 1)[0]) if first_id[:1].isdigit() else 0
    lag_ms = max(0.0, time.time() * 1000 - first_ms) if first_ms else 0.0
    return PersistResult(
        entries, rows, inserted, duplicates, expired, bad, missing, batch_duplicate, lag_ms
    )


def _backoff(retries: int, cap: float) -> float:
    """Exponential backoff (0.5 s doubling) capped at ``cap``, with 50-100 % jitter."""
    return min(cap, 0.5 * 2.0 ** min(retries, 16)) * (0.5 + random.random() / 2)


def _persist_task(
    self: Any,
    stream: str,
    first_id: str,
    last_id: str,
    count: int | None = None,
    runs: list[list[str]] | None = None,
) -> dict[str, Any]:
    """Celery body of :data:`persist_range_task` (bound: ``self`` is the task)."""
    cap = current_config().celery.retry_backoff_max
    try:
        return asdict(persist_range(stream, first_id, last_id, count, runs))
    except ServiceUnavailableError as exc:
        close_connections()
        delay = _backoff(self.request.retries, cap)
        log.warning("%s %s..%s: %s; retry in %.1f s", stream, first_id, last_id, exc, delay)
        raise self.retry(exc=exc, countdown=delay, max_retries=None) from None
    except ArchiveError as exc:
        close_connections()
        if self.request.retries >= ARCHIVE_ERROR_RETRIES:
            log.error("%s %s..%s: archive refused the batch: %s", stream, first_id, last_id, exc)
            raise
        delay = _backoff(self.request.retries, cap)
        raise self.retry(exc=exc, countdown=delay, max_retries=ARCHIVE_ERROR_RETRIES) from None


#: The persist task: ``persist_range_task.delay(stream, first_id, last_id, count=n)``.
persist_range_task: Any = app.task(
    name=PERSIST_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)(_persist_task)
