"""The event bus: binary batches on named streams, consumer groups, at-least-once delivery.

Two implementations share one interface (:class:`Bus`):

* :class:`InProcessBus` - the embedded default; asyncio only, no server.
* :class:`RedisStreamsBus` - Redis Streams through ``redis.asyncio`` (hiredis parser when
  installed): one stream per venue/instrument/kind (:func:`stream_name`), one entry per
  *batch* of events (a binary buffer, field ``d``), bounded with ``MAXLEN ~``, consumer groups,
  ``XACK`` once the consumer's work is durable, ``XAUTOCLAIM`` to take over a dead
  consumer's entries.

Publishing never blocks the collector on Redis: :meth:`Bus.publish` appends to a bounded
in-memory buffer that :meth:`Bus.flush` (called when a batch is full, and periodically by
:meth:`Bus.start`'s flusher) writes in one pipeline. While Redis is unreachable the buffer
keeps filling up to ``max_buffer_entries`` / ``max_buffer_bytes``; beyond that the *oldest*
entries are dropped and counted (:attr:`BusStats.dropped`, per stream in
:attr:`BusStats.dropped_by_stream`), and everything still buffered is written once Redis is
back. Entries whose pipeline failed mid-way are written again, so a consumer can see an entry
twice: consumers must be idempotent (the archive inserts on natural keys).

The latest top of book per instrument is cached in a Redis hash (:meth:`Bus.cache_top`,
coalesced: only the newest values per key are written at each flush).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.config.secrets import redact_url
from orchestrator.errors import ServiceUnavailableError, SlipstreamError

__all__ = [
    "Bus",
    "BusError",
    "BusStats",
    "Entry",
    "GroupLag",
    "InProcessBus",
    "RedisStreamsBus",
    "stream_name",
]

log = logging.getLogger(__name__)

#: Field of a stream entry that holds the binary batch.
PAYLOAD_FIELD = b"d"


class BusError(SlipstreamError):
    """A bus operation was used wrongly (unknown group, bad stream name, bad limits)."""


def stream_name(venue: str, instrument: str, kind: str, prefix: str = "md") -> str:
    """Name of the stream carrying ``kind`` batches of one instrument.

    Parameters
    ----------
    venue, instrument, kind
        E.g. ``"binance"``, ``"BTCUSDT"``, ``"trades"``; none may contain ``:`` or spaces.
    prefix
        Namespace of the key (default ``md``).

    Returns
    -------
    str
        ``"<prefix>:<venue>:<instrument>:<kind>"``.
    """
    for part, label in ((venue, "venue"), (instrument, "instrument"), (kind, "kind")):
        if not part or ":" in part or any(ch.isspace() for ch in part):
            raise BusError(f"stream {label} {part!r} must be non-empty, without ':' or spaces")
    return f"{prefix}:{venue}:{instrument}:{kind}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One delivered stream entry.

    Attributes
    ----------
    stream
        Stream name.
    id
        Entry id ``"<ms>-<seq>"`` (Redis stream id; monotonic per stream).
    payload
        The binary batch as published.
    """

    stream: str
    id: str
    payload: bytes

    @property
    def ms(self) -> int:
        """Milliseconds part of the id: when the bus accepted the entry."""
        return int(self.id.split("-", 1)[0])


@dataclass(frozen=True, slots=True)
class GroupLag:
    """How far a consumer group is behind on one stream.

    Attributes
    ----------
    undelivered
        Entries in the stream not yet delivered to the group.
    pending
        Delivered entries not yet acknowledged.
    lag_ms
        Age in ms of the oldest entry the group has not finished (undelivered or pending);
        0 when the group is caught up.
    """

    undelivered: int
    pending: int
    lag_ms: float


@dataclass(slots=True)
class BusStats:
    """Counters of one bus instance (publisher side)."""

    published: int = 0
    flushed: int = 0
    dropped: int = 0
    flush_failures: int = 0
    dropped_by_stream: dict[str, int] = field(default_factory=dict)
    buffered: int = 0
    buffered_bytes: int = 0


class Bus(ABC):
    """Binary batches on named streams with consumer groups (at-least-once).

    Parameters
    ----------
    maxlen
        Approximate bound of every stream (entries; ``MAXLEN ~``).
    flush_batch
        :meth:`publish` flushes by itself once this many entries are buffered.
    max_buffer_entries, max_buffer_bytes
        Bound of the publish buffer; beyond it the oldest buffered entries are dropped and
        counted.
    """

    def __init__(
        self,
        maxlen: int = 100_000,
        flush_batch: int = 256,
        max_buffer_entries: int = 100_000,
        max_buffer_bytes: int = 256 << 20,
    ) -> None:
        if maxlen < 1 or flush_batch < 1 or max_buffer_entries < 1 or max_buffer_bytes < 1:
            raise BusError("maxlen, flush_batch and the buffer bounds must be >= 1")
        self.maxlen = maxlen
        self.flush_batch = flush_batch
        self.max_buffer_entries = max_buffer_entries
        self.max_buffer_bytes = max_buffer_bytes
        self.stats = BusStats()
        self._buffer: deque[tuple[str, bytes]] = deque()
        self._tops: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, stream: str, payload: bytes) -> None:
        """Queue one binary batch for ``stream``; flushes when ``flush_batch`` are queued.

        Never raises because the backend is down: the entry stays buffered (or the oldest
        buffered entries are dropped and counted once the buffer bound is reached).
        """
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise BusError(f"payload must be bytes, not {type(payload).__name__}")
        data = bytes(payload)
        self._buffer.append((stream, data))
        self.stats.published += 1
        self.stats.buffered_bytes += len(data)
        self._enforce_bound()
        if len(self._buffer) >= self.flush_batch:
            await self.flush()

    def cache_top(self, key: str, values: Mapping[str, object]) -> None:
        """Remember the latest top of book (or any summary) for ``key``; written at flush."""
        self._tops[key] = {k: str(v) for k, v in values.items()}
        self._tops.move_to_end(key)

    def _enforce_bound(self) -> None:
        while self._buffer and (
            len(self._buffer) > self.max_buffer_entries
            or self.stats.buffered_bytes > self.max_buffer_bytes
        ):
            stream, data = self._buffer.popleft()
            self.stats.buffered_bytes -= len(data)
            self.stats.dropped += 1
            self.stats.dropped_by_stream[stream] = self.stats.dropped_by_stream.get(stream, 0) + 1
        self.stats.buffered = len(self._buffer)

    async def flush(self) -> bool:
        """Write every buffered entry and cached top; ``False`` if the backend is down.

        On failure the entries stay buffered (in order) for the next attempt.
        """
        async with self._flush_lock:
            if not self._buffer and not self._tops:
                return True
            batch = list(self._buffer)
            tops = dict(self._tops)
            try:
                await self._write(batch, tops)
            except ServiceUnavailableError as exc:
                self.stats.flush_failures += 1
                log.warning("bus flush deferred, %d entries buffered: %s", len(self._buffer), exc)
                return False
            for _ in range(len(batch)):
                _, data = self._buffer.popleft()
                self.stats.buffered_bytes -= len(data)
            for key, values in tops.items():
                if self._tops.get(key) is values:
                    del self._tops[key]
            self.stats.flushed += len(batch)
            self.stats.buffered = len(self._buffer)
            return True

    def start(self, interval: float = 0.05, max_backoff: float = 5.0) -> None:
        """Start the background flusher (every ``interval`` s; backs off while down)."""
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(interval, max_backoff))

    async def _flush_loop(self, interval: float, max_backoff: float) -> None:
        delay = interval
        while True:
            await asyncio.sleep(delay)
            ok = await self.flush()
            delay = interval if ok else min(max_backoff, delay * 2) * (0.5 + random.random() / 2)

    async def aclose(self) -> None:
        """Stop the flusher, try a last flush, release connections."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
        await self._close()

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- backend ----------------------------------------------------------------------------

    @abstractmethod
    async def _write(
        self, batch: Sequence[tuple[str, bytes]], tops: Mapping[str, Mapping[str, str]]
    ) -> None:
        """Append ``batch`` and store ``tops``; raise ServiceUnavailableError when down."""

    async def _close(self) -> None:  # noqa: B027 - optional hook
        """Release backend resources."""

    @abstractmethod
    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        """Create consumer group ``group`` on ``stream`` (and the stream) if missing."""

    @abstractmethod
    async def read(
        self,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int = 100,
        block_ms: int = 1000,
        pending: bool = False,
        after: str = "0",
    ) -> list[Entry]:
        """Deliver up to ``count`` new entries per stream to ``consumer`` of ``group``.

        Waits up to ``block_ms`` when nothing is available (0: do not wait). With
        ``pending=True`` re-delivers this consumer's own unacknowledged entries with ids
        after ``after`` instead (what a restarted consumer does first; page with the last
        id returned).
        """

    @abstractmethod
    async def ack(self, group: str, entries: Sequence[Entry]) -> int:
        """Acknowledge ``entries`` (after their work is durable); returns how many were pending."""

    @abstractmethod
    async def claim_stale(
        self,
        stream: str,
        group: str,
        consumer: str,
        min_idle_ms: int,
        count: int = 100,
        backoff: bool = False,
    ) -> list[Entry]:
        """Take over entries pending for at least ``min_idle_ms`` on any consumer.

        ``consumer`` itself included: an entry whose work was lost comes back to whoever
        claims it; claiming resets its idle time and counts a delivery. With ``backoff``
        an entry already delivered ``d`` times needs ``min_idle_ms * 2**min(d - 1, 6)``
        of idle time, so work that is only slow (a backlog) is not handed out again and
        again. Entries trimmed from the stream leave the pending list and are not
        returned.
        """

    @abstractmethod
    async def lag(self, stream: str, group: str) -> GroupLag:
        """Consumer lag of ``group`` on ``stream``."""

    @abstractmethod
    async def get_top(self, key: str) -> dict[str, str]:
        """Return the cached values of ``key`` (empty when never written)."""

    @abstractmethod
    async def length(self, stream: str) -> int:
        """Entries currently kept in ``stream``."""


# ------------------------------------------------------------------------------------------
# In-process implementation
# ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int


@dataclass(slots=True)
class _Group:
    last_seq: int  # index (1-based sequence) of the last delivered entry
    pending: dict[str, _Pending] = field(default_factory=dict)


@dataclass(slots=True)
class _Stream:
    entries: deque[tuple[int, str, bytes]] = field(default_factory=deque)  # (seq, id, data)
    seq: int = 0
    last_ms: int = 0
    last_sub: int = 0
    groups: dict[str, _Group] = field(default_factory=dict)


class InProcessBus(Bus):
    """The bus inside one process (embedded profile): same semantics as Redis Streams.

    Streams are bounded deques (``maxlen`` exact rather than approximate); ids follow Redis'
    ``<ms>-<seq>`` form; consumer groups keep pending lists, so redelivery, acknowledgement,
    stale claims and lag behave as with :class:`RedisStreamsBus`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._streams: dict[str, _Stream] = {}
        self._top_store: dict[str, dict[str, str]] = {}
        self._arrived = asyncio.Event()

    def _stream(self, name: str) -> _Stream:
        s = self._streams.get(name)
        if s is None:
            s = self._streams[name] = _Stream()
        return s

    async def _write(
        self, batch: Sequence[tuple[str, bytes]], tops: Mapping[str, Mapping[str, str]]
    ) -> None:
        for name, data in batch:
            s = self._stream(name)
            ms = int(time.time() * 1000)
            if ms <= s.last_ms:
                ms, sub = s.last_ms, s.last_sub + 1
            else:
                sub = 0
            s.last_ms, s.last_sub = ms, sub
            s.seq += 1
            s.entries.append((s.seq, f"{ms}-{sub}", data))
            while len(s.entries) > self.maxlen:
                s.entries.popleft()
        for key, values in tops.items():
            self._top_store.setdefault(key, {}).update(values)
        self._arrived.set()

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        """See :meth:`Bus.ensure_group`."""
        s = self._stream(stream)
        if group not in s.groups:
            if start not in ("0", "$"):
                raise BusError(f"group start must be '0' or '$', not {start!r}")
            s.groups[group] = _Group(last_seq=0 if start == "0" else s.seq)

    def _group(self, stream: str, group: str) -> tuple[_Stream, _Group]:
        s = self._streams.get(stream)
        g = s.groups.get(group) if s is not None else None
        if s is None or g is None:
            raise BusError(
                f"no consumer group {group!r} on stream {stream!r}; call ensure_group first"
            )
        return s, g

    def _collect(
        self,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int,
        pending: bool,
        after: str = "0",
    ) -> list[Entry]:
        out: list[Entry] = []
        now = time.monotonic()
        floor = _id_key(after)
        for name in streams:
            s, g = self._group(name, group)
            if pending:
                taken = 0
                for _seq, eid, data in s.entries:
                    p = g.pending.get(eid)
                    if (
                        p is not None
                        and p.consumer == consumer
                        and taken < count
                        and _id_key(eid) > floor
                    ):
                        p.delivered_at, p.deliveries = now, p.deliveries + 1
                        out.append(Entry(name, eid, data))
                        taken += 1
                continue
            taken = 0
            for seq, eid, data in s.entries:
                if seq <= g.last_seq:
                    continue
                if taken >= count:
                    break
                g.last_seq = seq
                g.pending[eid] = _Pending(consumer, now, 1)
                out.append(Entry(name, eid, data))
                taken += 1
        return out

    async def read(
        self,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int = 100,
        block_ms: int = 1000,
        pending: bool = False,
        after: str = "0",
    ) -> list[Entry]:
        """See :meth:`Bus.read`."""
        deadline = time.monotonic() + block_ms / 1000
        while True:
            self._arrived.clear()
            out = self._collect(group, consumer, streams, count, pending, after)
            remaining = deadline - time.monotonic()
            if out or pending or remaining <= 0:
                return out
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def ack(self, group: str, entries: Sequence[Entry]) -> int:
        """See :meth:`Bus.ack`."""
        done = 0
        for e in entries:
            _, g = self._group(e.stream, group)
            if g.pending.pop(e.id, None) is not None:
                done += 1
        return done

    async def claim_stale(
        self,
        stream: str,
        group: str,
        consumer: str,
        min_idle_ms: int,
        count: int = 100,
        backoff: bool = False,
    ) -> list[Entry]:
        """See :meth:`Bus.claim_stale`."""
        s, g = self._group(stream, group)
        now = time.monotonic()
        kept = {eid: data for _, eid, data in s.entries}
        out: list[Entry] = []
        for eid, p in list(g.pending.items()):
            if len(out) >= count:
                break
            if (now - p.delivered_at) * 1000 < min_idle_ms * _backoff_factor(p.deliveries, backoff):
                continue
            if eid not in kept:  # trimmed away: Redis reports it deleted and drops it
                del g.pending[eid]
                continue
            p.consumer, p.delivered_at, p.deliveries = consumer, now, p.deliveries + 1
            out.append(Entry(stream, eid, kept[eid]))
        return out

    async def lag(self, stream: str, group: str) -> GroupLag:
        """See :meth:`Bus.lag`."""
        s, g = self._group(stream, group)
        undelivered = sum(1 for seq, _, _ in s.entries if seq > g.last_seq)
        oldest: int | None = None
        for seq, eid, _ in s.entries:
            if seq > g.last_seq or eid in g.pending:
                oldest = int(eid.split("-", 1)[0])
                break
        lag_ms = max(0.0, time.time() * 1000 - oldest) if oldest is not None else 0.0
        return GroupLag(undelivered, len(g.pending), lag_ms)

    async def get_top(self, key: str) -> dict[str, str]:
        """See :meth:`Bus.get_top`."""
        return dict(self._top_store.get(key, {}))

    async def length(self, stream: str) -> int:
        """See :meth:`Bus.length`."""
        s = self._streams.get(stream)
        return len(s.entries) if s is not None else 0


# ------------------------------------------------------------------------------------------
# Redis Streams implementation
# ------------------------------------------------------------------------------------------


def _backoff_factor(deliveries: int, backoff: bool) -> int:
    """Idle-time multiple an entry delivered ``deliveries`` times needs before a claim."""
    return 1 << min(max(deliveries - 1, 0), 6) if backoff else 1


def _id_key(eid: str) -> tuple[int, int]:
    """Order of a stream id (``"<ms>-<seq>"``, ``"<ms>"`` or ``"0"``)."""
    ms, _, seq = eid.partition("-")
    return int(ms), int(seq or 0)


def _sid(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamsBus(Bus):
    """The bus on Redis Streams (distributed profile).

    Parameters
    ----------
    url
        ``redis://host:port/db``; the password, if any, is never logged.
    timeout
        Socket connect/read timeout in seconds for publishing and bookkeeping commands.
    **kwargs
        Bounds of :class:`Bus`.

    Notes
    -----
    Blocking reads use a connection of their own per call path (redis-py takes one from
    the pool for the duration of ``XREADGROUP BLOCK``), so a blocked consumer never stalls
    publishing on the same bus object.
    """

    def __init__(self, url: str, timeout: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import redis.asyncio as aioredis

        self.url = url
        self._safe_url = redact_url(url)
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=10
        )
        self._reader = aioredis.Redis.from_url(url, socket_connect_timeout=timeout)

    def _down(self, exc: Exception) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"Redis at {self._safe_url} is not reachable ({type(exc).__name__})"
        )

    async def _call(self, *args: Any, reader: bool = False) -> Any:
        import redis

        client = self._reader if reader else self._redis
        try:
            return await client.execute_command(*args)  # type: ignore[no-untyped-call]
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise self._down(exc) from None

    async def _write(
        self, batch: Sequence[tuple[str, bytes]], tops: Mapping[str, Mapping[str, str]]
    ) -> None:
        import redis

        if not batch and not tops:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for name, data in batch:
                pipe.execute_command(
                    "XADD", name, "MAXLEN", "~", self.maxlen, "*", PAYLOAD_FIELD, data
                )
            for key, values in tops.items():
                flat: list[str] = []
                for k, v in values.items():
                    flat += [k, v]
                pipe.execute_command("HSET", key, *flat)
            await pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise self._down(exc) from None

    async def _close(self) -> None:
        await self._redis.aclose()
        await self._reader.aclose()

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        """See :meth:`Bus.ensure_group`."""
        import redis

        try:
            await self._call("XGROUP", "CREATE", stream, group, start, "MKSTREAM")
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise BusError(f"cannot create group {group!r} on {stream!r}: {exc}") from None

    @staticmethod
    def _entries(reply: Any) -> list[Entry]:
        """Entries of an ``XREADGROUP``-shaped reply ``[[stream, [(id, fields)...]]...]``."""
        out: list[Entry] = []
        for name, entries in reply or ():
            stream = _sid(name)
            for eid, fields in entries:
                if fields is None:  # trimmed by MAXLEN while pending
                    continue
                out.append(Entry(stream, _sid(eid), bytes(fields.get(PAYLOAD_FIELD, b""))))
        return out

    async def read(
        self,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int = 100,
        block_ms: int = 1000,
        pending: bool = False,
        after: str = "0",
    ) -> list[Entry]:
        """See :meth:`Bus.read`."""
        import redis

        ids = [after if pending else ">"] * len(streams)
        args: list[Any] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if not pending and block_ms > 0:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", *streams, *ids]
        try:
            reply = await self._call(*args, reader=True)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                raise BusError(
                    f"no consumer group {group!r} on {list(streams)}; call ensure_group first"
                ) from None
            raise
        return self._entries(reply)

    async def ack(self, group: str, entries: Sequence[Entry]) -> int:
        """See :meth:`Bus.ack`."""
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        done = 0
        for stream, ids in by_stream.items():
            done += int(await self._call("XACK", stream, group, *ids))
        return done

    async def claim_stale(
        self,
        stream: str,
        group: str,
        consumer: str,
        min_idle_ms: int,
        count: int = 100,
        backoff: bool = False,
    ) -> list[Entry]:
        """See :meth:`Bus.claim_stale`."""
        if backoff:
            return await self._claim_backoff(stream, group, consumer, min_idle_ms, count)
        out: list[Entry] = []
        start = "0-0"
        while len(out) < count:
            reply = await self._call(
                "XAUTOCLAIM", stream, group, consumer, min_idle_ms, start, "COUNT", count - len(out)
            )
            start = _sid(reply[0])
            out += self._entries([(stream, reply[1])])
            if start == "0-0":
                break
        return out

    async def _claim_backoff(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Entry]:
        """``XPENDING ... IDLE`` pages, filtered by delivery count, then ``XCLAIM``."""
        import redis

        out: list[Entry] = []
        start = "-"
        page = 256
        try:
            while len(out) < count:
                rows: list[dict[str, Any]] = await self._redis.xpending_range(
                    stream, group, start, "+", page, idle=min_idle_ms
                )
                if not rows:
                    break
                due: list[Any] = [
                    r["message_id"]
                    for r in rows
                    if int(r["time_since_delivered"])
                    >= min_idle_ms * _backoff_factor(int(r["times_delivered"]), True)
                ][: count - len(out)]
                if due:
                    got = await self._redis.xclaim(stream, group, consumer, min_idle_ms, due)
                    out += self._entries([(stream, got)])  # trimmed ones come back empty
                if len(rows) < page:
                    break
                start = "(" + _sid(rows[-1]["message_id"])
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise self._down(exc) from None
        return out

    async def lag(self, stream: str, group: str) -> GroupLag:
        """See :meth:`Bus.lag`."""
        import redis

        try:
            groups = await self._redis.xinfo_groups(stream)
        except redis.ResponseError as exc:
            raise BusError(f"no stream {stream!r}: {exc}") from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise self._down(exc) from None
        info = next((g for g in groups if _sid(g["name"]) == group), None)
        if info is None:
            raise BusError(f"no consumer group {group!r} on stream {stream!r}")
        pending = int(info["pending"])
        undelivered = info.get("lag")
        last_delivered = _sid(info["last-delivered-id"])
        oldest_ms: int | None = None
        if pending:
            summary = await self._call("XPENDING", stream, group)
            oldest_ms = int(_sid(summary["min"]).split("-", 1)[0])
        if undelivered is None:  # Redis could not tell (trimmed / deleted entries): count them
            undelivered = len(await self._call("XRANGE", stream, f"({last_delivered}", "+"))
        undelivered = int(undelivered)
        if undelivered and oldest_ms is None:
            nxt = await self._call("XRANGE", stream, f"({last_delivered}", "+", "COUNT", 1)
            if nxt:
                oldest_ms = int(_sid(nxt[0][0]).split("-", 1)[0])
        lag_ms = max(0.0, time.time() * 1000 - oldest_ms) if oldest_ms is not None else 0.0
        return GroupLag(undelivered, pending, lag_ms)

    async def get_top(self, key: str) -> dict[str, str]:
        """See :meth:`Bus.get_top`."""
        raw = await self._call("HGETALL", key)
        return {_sid(k): _sid(v) for k, v in raw.items()}

    async def length(self, stream: str) -> int:
        """See :meth:`Bus.length`."""
        return int(await self._call("XLEN", stream))
