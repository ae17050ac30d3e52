r"""The bridge from Redis Streams to Celery: one persist task per range of stream entries.

Celery's Redis transport consumes lists, not streams, so a small asyncio process sits in
between. It is a member (``consumer``) of the bus consumer group ``group`` on every stream it
serves and loops:

1. ``XREADGROUP`` up to ``entries_per_task`` new entries per stream (blocking
   ``block_ms``), then keeps collecting for up to ``linger_ms`` until a stream has
   ``entries_per_task`` (full tasks at high rates, bounded latency at low ones);
2. for each stream's entries, publishes **one** Celery task carrying only the reference
   ``(stream, first_id, last_id, count=n[, runs], group=group)`` (``send_task`` runs in a
   thread: it is synchronous; ``runs`` lists the contiguous sub-ranges when several reads
   filled it); if the broker is down the entries stay in hand and publishing is retried
   with backoff.

The bridge never acknowledges. The **task** ``XACK``\ s the entries after its commit
(:func:`orchestrator.data.tasks.persist_range`), so an entry leaves the group's pending
list only once it is in the archive, whatever happens in between.

Recovery
    Every ``claim_every`` seconds the bridge claims entries pending for ``claim_idle_ms`` on
    any consumer of the group, its own included (doubling the wait with each delivery an
    entry already had, up to 64 times), and re-publishes them: their task was lost (a broker
    restart can drop a message Celery had popped but not yet recorded as unacknowledged), is
    stuck behind an outage, or belonged to a dead bridge. At start, and after any failed bus
    call, it re-publishes all its own pending entries at once: Redis may have served an
    ``XREADGROUP`` whose reply the outage swallowed, and the outage may have cost the broker
    messages, so everything not yet committed goes out again rather than waiting
    ``claim_idle_ms``. A failure while lingering hands over the entries already in hand.
    Re-published entries go out in tasks of up to ``entries_per_task`` entries, each entry
    its own run; the persist task is idempotent, so a task that was only late costs a
    duplicate check, never a duplicate row.

Durability chain
    A stream entry stays pending until its rows are committed, so the chain's guarantee
    rests only on the bus Redis being durable (AOF) and on the stream's ``MAXLEN`` holding
    more than the worst backlog (the task reads the entries back; it reports entries
    trimmed away as ``missing``). The broker's own durability (``acks_late``,
    ``reject_on_worker_lost``, the short visibility timeout) decides how fast a task comes
    back after a worker dies, not whether its events survive. ``claim_idle_ms`` should
    exceed the usual time from read to commit (queue wait + run); shorter only costs
    duplicate tasks, fewer with each doubling.

Lag
    :meth:`Bridge.measure_lag` records the group's lag per stream (undelivered entries, and
    pending ones, i.e. read but not yet committed, with the age of the oldest unfinished
    one) in :attr:`Bridge.stats`, and every read records how old the oldest entry it got
    was (``read_lag_ms``).

Command line::

    python -m orchestrator.data.bridge [hydra overrides, e.g. celery.bridge.pattern='md:*:trades']
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.celery_app import PERSIST_TASK
from orchestrator.data.bus import Bus, BusError, Entry, GroupLag
from orchestrator.errors import ServiceUnavailableError, SlipstreamError

__all__ = ["Bridge", "BridgeStats", "Publisher", "Range", "celery_publisher", "main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Range:
    """A run of entries of one stream handed to one task.

    Attributes
    ----------
    stream
        Stream name.
    first_id, last_id
        Ids of the first and last entry (inclusive).
    count
        Entries in the range.
    runs
        When the range was read in several reads: ``(first_id, last_id)`` of each read's
        run (each contiguous in the stream; entries between runs may belong to another
        consumer of the group); for re-published entries one run per entry. Empty when
        the range is one contiguous run.
    group
        Consumer group the task acknowledges the entries in after its commit (empty: the
        task acknowledges nothing).
    """

    stream: str
    first_id: str
    last_id: str
    count: int
    runs: tuple[tuple[str, str], ...] = ()
    group: str = ""


#: ``publish(range)``: hand a range to the broker (blocking; raises when it cannot).
Publisher = Callable[[Range], None]


@dataclass(slots=True)
class BridgeStats:
    """Counters of one bridge.

    Attributes
    ----------
    reads
        ``XREADGROUP`` calls that returned entries.
    entries, tasks
        Entries handed over, tasks published (including re-published ones).
    recovered, claimed
        Own pending entries re-published at start and after a failed bus call; entries
        pending longer than ``claim_idle_ms`` (on this or a dead consumer) claimed and
        re-published.
    publish_failures, bus_failures
        Failed publish attempts (broker down) and failed bus calls (Redis down).
    read_lag_ms
        Age of the oldest entry of the latest read (ms since the bus accepted it).
    lag
        Stream -> the group's lag at the latest :meth:`Bridge.measure_lag`.
    """

    reads: int = 0
    entries: int = 0
    tasks: int = 0
    recovered: int = 0
    claimed: int = 0
    publish_failures: int = 0
    bus_failures: int = 0
    read_lag_ms: float = 0.0
    lag: dict[str, GroupLag] = field(default_factory=dict)

    @property
    def max_lag_ms(self) -> float:
        """Largest group lag over the served streams (ms)."""
        return max((g.lag_ms for g in self.lag.values()), default=0.0)


def celery_publisher(
    celery_app: Any, queue: str = "persist", task: str = PERSIST_TASK
) -> Publisher:
    """Build a :data:`Publisher` sending ``task`` by name through ``celery_app`` to ``queue``."""

    def publish(rng: Range) -> None:
        kwargs: dict[str, Any] = {"count": rng.count}
        if rng.runs:
            kwargs["runs"] = [list(r) for r in rng.runs]
        if rng.group:
            kwargs["group"] = rng.group
        celery_app.send_task(
            task, args=(rng.stream, rng.first_id, rng.last_id), kwargs=kwargs, queue=queue
        )

    return publish


class Bridge:
    """Consumer-group reader of the bus that turns entry ranges into persist tasks.

    Parameters
    ----------
    bus
        A :class:`~orchestrator.data.bus.RedisStreamsBus` (the tasks read the entries back
        from the same Redis).
    publish
        Hands one range to the broker; see :func:`celery_publisher`. Whatever runs the
        range must ``XACK`` its entries in ``group`` once they are durable (the persist
        task does); the bridge never does.
    streams
        Streams to serve from the start.
    pattern
        Also serve every stream whose key matches this glob (``SCAN ... TYPE stream``),
        re-scanned every ``discover_every`` seconds; ``None``: only ``streams``.
    group
        Consumer group (created at the beginning of each stream when missing).
    consumer
        This bridge's name in the group; keep it stable across restarts of the same bridge
        so it finds its own pending entries (default ``bridge-<host>-<pid>``).
    entries_per_task
        Entries read per stream per call, handed over as one task.
    block_ms
        How long a read waits for new entries.
    linger_ms
        After the first new entries, how long to keep collecting more for the same task
        (bounds the added latency; fills tasks at high rates).
    claim_idle_ms, claim_every
        Re-publish entries pending this long on any consumer (this one included), checking
        this often (s); must exceed the usual read-to-commit time.
    lag_every
        Seconds between lag measurements.
    """

    def __init__(
        self,
        bus: Bus,
        publish: Publisher,
        streams: Sequence[str] = (),
        *,
        pattern: str | None = None,
        group: str = "persist",
        consumer: str | None = None,
        entries_per_task: int = 32,
        block_ms: int = 200,
        linger_ms: int = 100,
        claim_idle_ms: int = 60_000,
        claim_every: float = 5.0,
        lag_every: float = 1.0,
        discover_every: float = 5.0,
        max_backoff: float = 2.0,
    ) -> None:
        if entries_per_task < 1 or block_ms < 0 or linger_ms < 0 or claim_idle_ms < 1:
            raise BusError(
                "entries_per_task and claim_idle_ms must be >= 1, block_ms and linger_ms >= 0"
            )
        self.bus = bus
        self.publish = publish
        self.pattern = pattern
        self.group = group
        self.consumer = consumer or f"bridge-{socket.gethostname()}-{os.getpid()}"
        self.entries_per_task = entries_per_task
        self.block_ms = block_ms
        self.linger_ms = linger_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every = claim_every
        self.lag_every = lag_every
        self.discover_every = discover_every
        self.max_backoff = max_backoff
        self.stats = BridgeStats()
        self._streams: list[str] = []
        self._grouped: set[str] = set()
        self._wanted = list(dict.fromkeys(streams))
        self._scanner: Any = None
        self._stop = asyncio.Event()
        #: A bus call failed: an ``XREADGROUP`` may have been served without its reply, so
        #: this consumer may own pending entries it never saw; re-read them before going on.
        self._lost_reply = False

    @property
    def streams(self) -> list[str]:
        """Streams served so far."""
        return list(self._streams)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current step (unfinished entries stay pending)."""
        self._stop.set()

    # -- setup ---------------------------------------------------------------------------

    async def add_streams(self, streams: Sequence[str]) -> None:
        """Serve ``streams`` too (creates the group on each)."""
        for s in streams:
            if s not in self._grouped:
                await self.bus.ensure_group(s, self.group, "0")
                self._grouped.add(s)
                self._streams.append(s)
                log.info("bridge %s serves %s (group %s)", self.consumer, s, self.group)

    async def discover(self) -> list[str]:
        """Scan for streams matching :attr:`pattern`; returns the new ones."""
        if self.pattern is None:
            await self.add_streams(self._wanted)
            return []
        url = getattr(self.bus, "url", None)
        if url is None:
            raise BusError("stream discovery by pattern needs a RedisStreamsBus")
        import redis
        import redis.asyncio as aioredis

        if self._scanner is None:
            self._scanner = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        found: list[str] = []
        try:
            async for key in self._scanner.scan_iter(
                match=self.pattern, count=1000, _type="stream"
            ):
                name = key.decode() if isinstance(key, bytes) else str(key)
                if name not in self._grouped:
                    found.append(name)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise ServiceUnavailableError(
                f"Redis is not reachable for stream discovery ({type(exc).__name__})"
            ) from None
        await self.add_streams([*self._wanted, *sorted(found)])
        return found

    # -- handing over --------------------------------------------------------------------

    async def _backoff(self, delay: float) -> float:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay * (0.5 + random.random() / 2))
        return min(self.max_backoff, delay * 2)

    async def _publish(self, rng: Range) -> bool:
        """Publish until the broker accepts (``True``) or the bridge stops (``False``)."""
        delay = 0.05
        while True:
            try:
                await asyncio.to_thread(self.publish, rng)
                self.stats.tasks += 1
                return True
            except Exception as exc:  # kombu/redis raise many types when down
                self.stats.publish_failures += 1
                log.warning(
                    "bridge: broker did not take %s %s..%s (%s: %s); retrying",
                    rng.stream,
                    rng.first_id,
                    rng.last_id,
                    type(exc).__name__,
                    exc,
                )
            if self._stop.is_set():
                return False
            delay = await self._backoff(delay)

    async def hand_over(self, reads: Sequence[Sequence[Entry]], republish: bool = False) -> int:
        """Publish the entries of ``reads`` as tasks (the tasks acknowledge them).

        Parameters
        ----------
        reads
            Results of successive reads (within one read, a stream's entries are one
            contiguous run).
        republish
            Entries read back from the pending list (own or claimed): they go out in tasks
            of up to ``entries_per_task`` entries, each entry its own run, since entries
            between them may belong to other tasks.

        Returns
        -------
        int
            Entries handed over (fewer than given only when the bridge stops).
        """
        by_stream: dict[str, list[list[Entry]]] = {}
        for read in reads:
            runs: dict[str, list[Entry]] = {}
            for e in read:
                runs.setdefault(e.stream, []).append(e)
            for stream, run in runs.items():
                by_stream.setdefault(stream, []).append(run)
        done = 0
        n = self.entries_per_task
        for stream, stream_runs in by_stream.items():
            if republish:
                flat_all = [e for run in stream_runs for e in run]
                chunks = [[[e] for e in flat_all[k : k + n]] for k in range(0, len(flat_all), n)]
            else:
                chunks = [stream_runs]  # one task per stream
            for chunk in chunks:
                flat = [e for run in chunk for e in run]
                parts = tuple((r[0].id, r[-1].id) for r in chunk) if len(chunk) > 1 else ()
                rng = Range(stream, flat[0].id, flat[-1].id, len(flat), parts, self.group)
                if not await self._publish(rng):
                    return done
                self.stats.entries += len(flat)
                done += len(flat)
        return done

    async def step(self) -> int:
        """One read + hand-over cycle; returns the entries handed over (0 on timeout).

        After the first entries arrive the bridge keeps collecting for up to ``linger_ms``
        (polling every 10 ms) until one stream has ``entries_per_task`` entries: at high
        rates tasks are full, at low rates an entry waits at most ``linger_ms``.

        Raises
        ------
        ServiceUnavailableError
            If the bus Redis is unreachable.
        """
        if not self._streams:
            await self.discover()
            if not self._streams:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.block_ms / 1000 or 0.05)
                return 0
        first = await self.bus.read(
            self.group, self.consumer, self._streams, self.entries_per_task, self.block_ms
        )
        if not first:
            return 0
        reads = [first]
        have: dict[str, int] = {}
        for e in first:
            have[e.stream] = have.get(e.stream, 0) + 1
        deadline = time.monotonic() + self.linger_ms / 1000
        while max(have.values()) < self.entries_per_task and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, 0.01))
            try:
                more = await self.bus.read(
                    self.group,
                    self.consumer,
                    self._streams,
                    self.entries_per_task - max(have.values()),
                    0,
                )
            except ServiceUnavailableError:
                self._lost_reply = True  # that read may have been served: recover_own finds it
                break  # hand over what is in hand; the outage shows again on the next read
            if more:
                reads.append(more)
                for e in more:
                    have[e.stream] = have.get(e.stream, 0) + 1
        self.stats.reads += len(reads)
        self.stats.read_lag_ms = max(0.0, time.time() * 1000 - min(e.ms for e in first))
        return await self.hand_over(reads)

    async def recover_own(self) -> int:
        """Re-publish every entry pending on this consumer (read, not yet committed).

        Runs at start and after a failed bus call: a served ``XREADGROUP`` whose reply was
        lost left entries this bridge never saw, and the outage may have cost the broker
        tasks. Entries whose task is merely queued go out twice; the task is idempotent.
        """
        total = 0
        for stream in list(self._streams):
            after = "0"
            while not self._stop.is_set():
                mine = await self.bus.read(
                    self.group,
                    self.consumer,
                    [stream],
                    max(self.entries_per_task, 256),
                    0,
                    pending=True,
                    after=after,
                )
                if not mine:
                    break
                n = await self.hand_over([mine], republish=True)
                total += n
                if n < len(mine):
                    break
                after = mine[-1].id
        self.stats.recovered += total
        if total:
            log.warning("bridge %s re-published %d own pending entries", self.consumer, total)
        return total

    async def claim(self) -> int:
        """Claim and re-publish entries pending for ``claim_idle_ms`` on any consumer.

        Their task was lost, is stuck behind an outage, or belonged to a dead bridge.
        Claiming resets their idle time, and an entry already handed out ``d`` times waits
        ``claim_idle_ms * 2**min(d - 1, 6)``: a backlog that only delays tasks does not
        multiply them.
        """
        total = 0
        for stream in self._streams:
            got = await self.bus.claim_stale(
                stream, self.group, self.consumer, self.claim_idle_ms, count=1000, backoff=True
            )
            if got:
                n = await self.hand_over([got], republish=True)
                total += n
                log.warning(
                    "bridge %s re-published %d entries of %s pending for over %d ms",
                    self.consumer,
                    n,
                    stream,
                    self.claim_idle_ms,
                )
        self.stats.claimed += total
        return total

    async def measure_lag(self) -> dict[str, GroupLag]:
        """Group lag per served stream (also stored in :attr:`stats`)."""
        for stream in self._streams:
            self.stats.lag[stream] = await self.bus.lag(stream, self.group)
        return dict(self.stats.lag)

    # -- main loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop`; survives bus and broker outages (backs off, retries)."""
        self._stop.clear()
        started = False
        next_discover = next_claim = next_lag = 0.0
        delay = 0.05
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if not started:
                    await self.discover()
                    await self.recover_own()
                    started = True
                    next_discover = now + self.discover_every
                    next_claim = now + self.claim_every
                    self._lost_reply = False
                elif self._lost_reply:
                    await self.recover_own()
                    self._lost_reply = False
                if now >= next_discover:
                    await self.discover()
                    next_discover = now + self.discover_every
                if now >= next_claim:
                    await self.claim()
                    next_claim = now + self.claim_every
                if now >= next_lag:
                    await self.measure_lag()
                    next_lag = now + self.lag_every
                await self.step()
                delay = 0.05
            except ServiceUnavailableError as exc:
                self.stats.bus_failures += 1
                self._lost_reply = True
                log.warning("bridge: bus unavailable (%s); retrying", exc)
                delay = await self._backoff(delay)
            except BusError as exc:  # e.g. Redis came back empty: groups must be re-created
                self.stats.bus_failures += 1
                log.warning("bridge: %s; re-creating consumer groups", exc)
                self._grouped.clear()
                self._streams.clear()
                started = False
                delay = await self._backoff(delay)

    async def aclose(self) -> None:
        """Release the discovery client (the bus is the caller's)."""
        if self._scanner is not None:
            await self._scanner.aclose()
            self._scanner = None


async def _serve(overrides: Sequence[str]) -> int:
    from orchestrator.celery_app import configure, create_app, load_app_config
    from orchestrator.data.bus import RedisStreamsBus

    cfg = load_app_config(overrides)
    configure(cfg)
    b = cfg.celery.bridge
    bus = RedisStreamsBus(cfg.services.redis_url)
    bridge = Bridge(
        bus,
        celery_publisher(create_app(cfg)),
        pattern=b.pattern,
        group=b.group,
        consumer=f"bridge-{socket.gethostname()}",
        entries_per_task=b.entries_per_task,
        block_ms=b.block_ms,
        linger_ms=b.linger_ms,
        claim_idle_ms=int(b.claim_idle_s * 1000),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, bridge.stop)

    async def report() -> None:
        while True:
            await asyncio.sleep(10)
            s = bridge.stats
            log.info(
                "bridge: %d entries -> %d tasks, %d re-published, lag max %.0f ms, "
                "read lag %.0f ms",
                s.entries,
                s.tasks,
                s.recovered + s.claimed,
                s.max_lag_ms,
                s.read_lag_ms,
            )

    reporter = asyncio.create_task(report())
    try:
        await bridge.run()
    finally:
        reporter.cancel()
        await bridge.aclose()
        await bus.aclose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m orchestrator.data.bridge [hydra overrides]``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return asyncio.run(_serve(list(sys.argv[1:] if argv is None else argv)))
    except SlipstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
