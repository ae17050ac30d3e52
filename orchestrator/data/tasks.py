"""Celery tasks of the data plane: persist a range of a bus stream into the archive.

The bridge (:mod:`orchestrator.data.bridge`) hands a task only a *reference*:
``(stream, first_id, last_id)`` of entries it read from a Redis stream. The task

1. ``XRANGE``s that id range from the bus Redis (``services.redis_url``),
2. decodes every entry with :func:`~orchestrator.data.records.decode_batch` (an entry that
   does not decode is logged and skipped: retrying cannot repair it),
3. concatenates the records of each kind and inserts them with one
   :meth:`~orchestrator.data.archive.Archive.insert` per kind, in one transaction together
   with the batch key ``"<stream>:<first_id>-<last_id>"``,
4. when the bridge named its consumer group (``group=``), acknowledges the entries it read,
   **after** the commit: an entry leaves the group's pending list only once it is durable,
   so a task lost anywhere between the bridge and the commit (broker restart, a message
   popped but never recorded as unacknowledged, a retry that could not be queued) leaves
   its entries pending, and the bridge re-publishes them.

Idempotence: a range already stored is recognised by its batch key and skipped; a range
that overlaps stored rows under another key (entries the bridge re-published because their
task was lost or is late, a claim of a dead bridge's entries) is merged on the natural
keys. Either way every event is stored once, however often the task runs.

Failures: PostgreSQL or the bus Redis unreachable (:class:`ServiceUnavailableError`)
-> the task retries for ever with capped exponential backoff (jittered, at most
``celery.retry_backoff_max`` seconds), reconnecting each time; any other archive refusal
(:class:`ArchiveError`) is retried three times, then fails loudly. A retry that cannot be
queued because the broker is down too requeues the message (``Reject(requeue=True)``)
instead of Celery's default of dropping it; if even that cannot reach the broker the
message stays in the broker's unacknowledged set and comes back after the visibility
timeout.

Each worker process keeps one archive connection and one Redis client, opened lazily (after
the fork) and migrated once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

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
    acked
        Entries acknowledged in the consumer group after the commit (0 without ``group``).
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
    acked: int = 0


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


def batch_key(
    stream: str, first_id: str, last_id: str, runs: Sequence[Sequence[str]] | None = None
) -> str:
    """Deterministic key of a stream range: ``"<stream>:<first_id>-<last_id>"``.

    A range read as ``runs`` holds only those runs' entries, so its key adds a digest of
    them (``"...+<16 hex>"``): two tasks with the same ends but different entries must
    never share a key, else the second would be skipped as already stored.
    """
    key = f"{stream}:{first_id}-{last_id}"
    if runs:
        spans = ",".join(f"{a}-{b}" for a, b in runs)
        key += "+" + hashlib.blake2b(spans.encode(), digest_size=8).hexdigest()
    return key


def _sid(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read_spans(
    client: Any, redis_url: str, stream: str, spans: Sequence[tuple[str, str]]
) -> list[Any]:
    """``XRANGE`` each ``(first, last)`` span (pipelined when there are several)."""
    import redis

    try:
        if len(spans) == 1:
            return list(client.xrange(stream, spans[0][0], spans[0][1]))
        pipe = client.pipeline(transaction=False)
        for first, last in spans:
            pipe.xrange(stream, first, last)
        return [entry for part in pipe.execute() for entry in part]
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise ServiceUnavailableError(
            f"Redis at {redact_url(redis_url)} is not reachable ({type(exc).__name__})"
        ) from None


def _xack(client: Any, redis_url: str, stream: str, group: str, ids: Sequence[Any]) -> int:
    import redis

    try:
        return int(client.xack(stream, group, *ids))
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise ServiceUnavailableError(
            f"Redis at {redact_url(redis_url)} is not reachable to acknowledge "
            f"({type(exc).__name__}); the batch is stored, the retry only acknowledges"
        ) from None
    except redis.ResponseError as exc:  # the group was deleted: nothing left to acknowledge
        log.warning("%s: XACK in group %r refused: %s", stream, group, exc)
        return 0


def persist_range(
    stream: str,
    first_id: str,
    last_id: str,
    count: int | None = None,
    runs: Sequence[Sequence[str]] | None = None,
    group: str | None = None,
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
        when several filled one task, or the single entries it re-publishes; entries
        between them may be another consumer's).
    group
        Consumer group to ``XACK`` the entries in once they are committed (the bridge's);
        ``None``: acknowledge nothing.
    redis_url, dsn, settings
        Bus Redis, archive DSN and archive settings (default: the app's config).

    Returns
    -------
    PersistResult

    Raises
    ------
    ServiceUnavailableError
        If Redis or PostgreSQL cannot be reached (the task retries; a retry after the
        commit finds the batch stored and only acknowledges).
    ArchiveError
        If the archive refuses the records.
    """
    cfg = current_config() if redis_url is None or dsn is None else None
    redis_url = redis_url or (cfg.services.redis_url if cfg else "")
    dsn = dsn or (cfg.services.database_url if cfg else "")
    if settings is None:
        settings = archive_settings((cfg or current_config()).archive)
    archive, client = _handles.get(redis_url, dsn, settings)
    spans = [(str(a), str(b)) for a, b in runs] if runs else [(first_id, last_id)]
    reply = _read_spans(client, redis_url, stream, spans)
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
    key = batch_key(stream, first_id, last_id, runs)
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
    acked = 0
    if group and reply:
        acked = _xack(client, redis_url, stream, group, [eid for eid, _ in reply])
    first_ms = int(first_id.split("-", 1)[0]) if first_id[:1].isdigit() else 0
    lag_ms = max(0.0, time.time() * 1000 - first_ms) if first_ms else 0.0
    return PersistResult(
        entries, rows, inserted, duplicates, expired, bad, missing, batch_duplicate, lag_ms, acked
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
    group: str | None = None,
) -> dict[str, Any]:
    """Celery body of :data:`persist_range_task` (bound: ``self`` is the task)."""
    cap = current_config().celery.retry_backoff_max
    try:
        return asdict(persist_range(stream, first_id, last_id, count, runs, group))
    except ServiceUnavailableError as exc:
        close_connections()
        delay = _backoff(self.request.retries, cap)
        log.warning("%s %s..%s: %s; retry in %.1f s", stream, first_id, last_id, exc, delay)
        _retry(self, exc, delay, None)
    except ArchiveError as exc:
        close_connections()
        if self.request.retries >= ARCHIVE_ERROR_RETRIES:
            log.error("%s %s..%s: archive refused the batch: %s", stream, first_id, last_id, exc)
            raise
        delay = _backoff(self.request.retries, cap)
        _retry(self, exc, delay, ARCHIVE_ERROR_RETRIES)


def _retry(task: Any, exc: Exception, delay: float, max_retries: int | None) -> NoReturn:
    """``task.retry``, but a retry the broker cannot take requeues instead of dropping.

    Celery queues a retry as a new message and acknowledges the running one; when that
    publish fails it raises ``Reject(requeue=False)``, which deletes the message: with the
    broker down (a Redis restart) the batch would be gone from the broker. Requeueing keeps
    it; a requeue that cannot reach the broker leaves it unacknowledged, restored after the
    visibility timeout.
    """
    from celery.exceptions import Reject

    try:
        retry = task.retry(exc=exc, countdown=delay, max_retries=max_retries, throw=False)
    except Reject as rej:
        log.warning("retry could not be queued (%s); requeueing the message", rej.reason)
        raise Reject(rej.reason, requeue=True) from None
    raise retry from None


#: The persist task: ``persist_range_task.delay(stream, first_id, last_id, count=n)``.
persist_range_task: Any = app.task(
    name=PERSIST_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)(_persist_task)
