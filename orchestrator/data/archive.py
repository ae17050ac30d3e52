"""The PostgreSQL / TimescaleDB archive: migrations, idempotent binary COPY, replay reads.

:class:`Archive` owns one psycopg 3 connection (autocommit, explicit transactions; one
archive per thread or worker process) and does:

* **Migrations** (:meth:`Archive.migrate`, also :func:`migrate` and
  ``python -m orchestrator.data migrate``): the versioned statements of
  :mod:`orchestrator.data.migrations`, each in its own transaction, recorded in
  ``schema_migrations``, under a session advisory lock so concurrent callers serialize;
  re-running applies nothing. The variant is chosen once: ``timescale`` when the
  ``timescaledb`` extension is available (``pg_available_extensions``), else ``plain``.
* **Partitions** (plain variant): daily range partitions ``<table>_pYYYYMMDD`` created
  ahead of time (:meth:`Archive.ensure_partitions`) and on demand for a batch's days. There
  is no default partition (it would block creating a partition whose range holds rows in
  it). A batch whose partition is missing *and* older than the retention horizon is not
  resurrected: those rows are counted as ``expired`` and skipped.
* **Insertion** (:meth:`Archive.insert`): the records are turned into a PGCOPY binary payload
  with numpy (big-endian fields, one vectorized pass per column), then in one transaction
  COPYed straight into the table inside a savepoint; if a natural key already exists
  (redelivered or overlapping batch) the savepoint is rolled back and the payload goes
  through a temporary staging table and ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``.
  Either way every row is stored exactly once. An optional ``batch_key`` (e.g. a stream id
  range) is recorded in the same transaction so a redelivered batch is skipped outright.
* **Retention** (:meth:`Archive.retention`): plain variant drops whole expired partitions
  only; TimescaleDB uses its retention policies. The ledger and batch keys are pruned by
  ``DELETE``.
* **Bars**: ``bars_1m`` (continuous aggregate or materialized view), refreshed by
  :meth:`Archive.refresh_bars`.
* **Replay** (:meth:`Archive.read`, :meth:`Archive.read_trades`, :meth:`Archive.read_deltas`):
  ``COPY (SELECT ...) TO STDOUT (FORMAT BINARY)`` decoded with one ``numpy.frombuffer``,
  yielding record batches in exchange-time order; with ``read_connections > 1`` a long
  window is read as consecutive time slices on that many connections at once.
* **Coverage** (:meth:`Archive.coverage`): complete windows and gaps per instrument from the
  completeness ledger.

Errors: an unreachable server raises :class:`~orchestrator.errors.ServiceUnavailableError`
(DSN password masked); anything else the archive refuses raises :class:`ArchiveError`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import select
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from orchestrator.config.secrets import redact_url
from orchestrator.data.libpq import copy_drain
from orchestrator.data.migrations import (
    MIGRATIONS,
    TABLE_OF_KIND,
    TABLES,
    Migration,
    TableSpec,
    Variant,
    policy_sql,
)
from orchestrator.data.records import (
    DTYPES,
    InstrumentInfo,
    InstrumentRegistry,
    LedgerKind,
    RecordKind,
    decode_batch,
)
from orchestrator.errors import ServiceUnavailableError, SlipstreamError

__all__ = [
    "Archive",
    "ArchiveError",
    "ArchiveSettings",
    "Coverage",
    "InsertResult",
    "MigrateReport",
    "Window",
    "archive_settings",
    "build_copy_payload",
    "connect",
    "decode_copy_payload",
    "migrate",
]

log = logging.getLogger(__name__)

NS_PER_DAY = 86_400_000_000_000
#: 2000-01-01T00:00Z in Unix microseconds (PostgreSQL's timestamp epoch).
PG_EPOCH_US = 946_684_800_000_000
#: Earliest accepted event time (2010-01-01): catches ms/us stamps passed as ns.
MIN_EVENT_NS = 1_262_304_000_000_000_000
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_HEADER = COPY_SIGNATURE + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
_COPY_CHUNK = 1 << 20
#: ``ext.pgcopy.COPY_CONNECTION_LOST``: the compiled reader lost the connection.
COPY_CONNECTION_LOST = -3
#: A replay window at least this long is split across ``read_connections`` connections.
PARALLEL_READ_MIN_NS = 600 * 10**9

#: Advisory lock keys (arbitrary constants, one per critical section).
MIGRATE_LOCK = 0x534C_5053_4D49_4752  # "SLPSMIGR"
PARTITION_LOCK = 0x534C_5053_5041_5254  # "SLPSPART"
REGISTRY_LOCK = 0x534C_5053_5245_4749  # "SLPSREGI"

_PG_BE = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}


class ArchiveError(SlipstreamError):
    """The archive refused an operation (bad records, bad time range, failed migration)."""


def _default_retention() -> dict[str, int | None]:
    return {
        "deltas": 30,
        "book_snapshots": 30,
        "tops": 30,
        "trades": 365,
        "signals": 90,
        "orders": None,
        "fills": None,
        "ledger": 365,
    }


@dataclass(frozen=True)
class ArchiveSettings:
    """Archive configuration (chunking, ahead-creation, compression, retention).

    Attributes
    ----------
    timescale
        ``"auto"`` uses TimescaleDB when available, ``"off"`` forces plain PostgreSQL,
        ``"require"`` fails without the extension. Only read at the first migration.
    chunk_days
        TimescaleDB chunk interval (plain partitions are always one day).
    ahead_days
        Plain variant: partitions created this many days past today.
    compress_after_days
        TimescaleDB: compress chunks older than this (``None``: no compression policy).
    retention_days
        Table -> keep this many days (``None``: forever).
    bars_refresh_days
        TimescaleDB: the continuous aggregate policy refreshes this far back.
    max_batch_days
        A batch spanning more days is refused (usually a unit mistake in the stamps).
    batch_key_days
        ``ingest_batches`` rows older than this are pruned by :meth:`Archive.retention`.
    read_connections
        Connections one replay read uses: with more than 1, a window of at least
        :data:`PARALLEL_READ_MIN_NS` is split into this many consecutive time slices read
        concurrently on their own connections. One connection's replay is bound by the
        server encoding the fields; with 2 the encoding runs on two backends at once
        (on 2 cores shared with the client: ~1.5x the rows/s of one, ``docs/archive.md``),
        hence the default 2. The extra connections open on the first long read.
    instrument_partitions
        Plain variant: each daily partition is itself hash-partitioned by ``instrument``
        into this many tables (1: not sub-partitioned). Concurrent COPYs of different
        instruments then insert into different key indexes instead of contending for one
        (two persist workers: ~1.2x the rows/s, ``docs/archive.md``). Applies to
        partitions created from then on; a day keeps the layout it was created with.
    """

    timescale: Literal["auto", "off", "require"] = "auto"
    chunk_days: int = 1
    ahead_days: int = 3
    compress_after_days: int | None = 7
    retention_days: Mapping[str, int | None] = field(default_factory=_default_retention)
    bars_refresh_days: int = 2
    max_batch_days: int = 31
    batch_key_days: int = 7
    read_connections: int = 2
    instrument_partitions: int = 4

    def __post_init__(self) -> None:
        if self.timescale not in ("auto", "off", "require"):
            raise ArchiveError(f"timescale must be auto, off or require, was {self.timescale!r}")
        for name in ("chunk_days", "bars_refresh_days", "max_batch_days", "batch_key_days"):
            if getattr(self, name) < 1:
                raise ArchiveError(f"{name} must be >= 1, was {getattr(self, name)}")
        if not 1 <= self.read_connections <= 8:
            raise ArchiveError(f"read_connections must be 1..8, was {self.read_connections}")
        if self.ahead_days < 0:
            raise ArchiveError(f"ahead_days must be >= 0, was {self.ahead_days}")
        if not 1 <= self.instrument_partitions <= 64:
            raise ArchiveError(
                f"instrument_partitions must be 1..64, was {self.instrument_partitions}"
            )
        for table, days in self.retention_days.items():
            if table not in TABLES:
                raise ArchiveError(f"retention_days names unknown table {table!r}")
            if days is not None and days < 1:
                raise ArchiveError(f"retention_days[{table!r}] must be >= 1 or null, was {days}")


def archive_settings(cfg: Any) -> ArchiveSettings:
    """:class:`ArchiveSettings` from the ``archive:`` config section (``ArchiveConfig``).

    Raises
    ------
    ValueError
        If a value is out of range (the message names it).
    """
    return ArchiveSettings(
        timescale=cfg.timescale,
        chunk_days=cfg.chunk_days,
        ahead_days=cfg.ahead_days,
        compress_after_days=cfg.compress_after_days,
        retention_days=dict(cfg.retention_days),
        bars_refresh_days=cfg.bars_refresh_days,
        max_batch_days=cfg.max_batch_days,
        batch_key_days=cfg.batch_key_days,
        read_connections=cfg.read_connections,
        instrument_partitions=cfg.instrument_partitions,
    )


@dataclass(frozen=True)
class MigrateReport:
    """What :meth:`Archive.migrate` did."""

    variant: Variant
    applied: tuple[int, ...]
    partitions_created: int


@dataclass(frozen=True)
class InsertResult:
    """Outcome of :meth:`Archive.insert`.

    ``rows`` offered = ``inserted`` + ``duplicates`` + ``expired``.
    """

    kind: RecordKind
    rows: int
    inserted: int
    duplicates: int
    expired: int = 0
    batch_duplicate: bool = False
    merged: bool = False


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start_ns, end_ns)``; ``reason`` says why it is a gap."""

    start_ns: int
    end_ns: int
    reason: str = ""


@dataclass(frozen=True)
class Coverage:
    """Complete windows and gaps of one instrument within ``[start_ns, end_ns)``."""

    venue: int
    instrument: int
    start_ns: int
    end_ns: int
    complete: tuple[Window, ...]
    gaps: tuple[Window, ...]

    @property
    def complete_ns(self) -> int:
        """Total nanoseconds covered by complete windows."""
        return sum(w.end_ns - w.start_ns for w in self.complete)


# ------------------------------------------------------------------- COPY payloads


def _copy_row_dtype(columns: Sequence[tuple[str, str]]) -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("_nf", ">i2")]
    for i, (name, pg_type) in enumerate(columns):
        fields += [(f"_l{i}", ">i4"), (name, _PG_BE[pg_type])]
    return np.dtype(fields)


def _copy_template(columns: Sequence[tuple[str, str]]) -> npt.NDArray[np.void]:
    dt = _copy_row_dtype(columns)
    tmpl = np.zeros(1, dtype=dt)
    tmpl["_nf"] = len(columns)
    for i, (name, _) in enumerate(columns):
        tmpl[f"_l{i}"] = dt.fields[name][0].itemsize  # type: ignore[index]
    return tmpl


_TEMPLATES: dict[str, npt.NDArray[np.void]] = {
    name: _copy_template([(c.name, c.pg_type) for c in spec.columns])
    for name, spec in TABLES.items()
}


def build_copy_payload(spec: TableSpec, records: npt.NDArray[np.void]) -> npt.NDArray[np.uint8]:
    """PGCOPY binary rows (no header/trailer) for ``records`` into ``spec``'s columns.

    The constant field-count/length words are broadcast from a template row, then one
    structured assignment (fields matched by position) converts every record column to
    big-endian at once; ``ts`` is ``exch_ns`` floored to microseconds, relative to
    2000-01-01.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(n, row bytes)``: the rows; send ``COPY_HEADER``, its
        bytes, ``COPY_TRAILER``.
    """
    tmpl = _TEMPLATES[spec.name]
    n = len(records)
    out = np.empty(n, dtype=tmpl.dtype)
    out[...] = tmpl[0]
    plain = [c for c in spec.columns if c.source != "@ts"]
    out[[c.name for c in plain]] = records[[c.source for c in plain]]
    for col in spec.columns:
        if col.source == "@ts":
            out[col.name] = records["exch_ns"] // 1000 - PG_EPOCH_US
    return out.view(np.uint8).reshape(n, tmpl.dtype.itemsize)


def decode_copy_payload(
    data: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    columns: Sequence[tuple[str, str]],
) -> npt.NDArray[np.void]:
    """Decode ``COPY ... TO STDOUT (FORMAT BINARY)`` output of NOT NULL fixed-width columns.

    Returns
    -------
    numpy.ndarray
        Big-endian structured view of the rows (fields named after ``columns``).

    Raises
    ------
    ArchiveError
        If the signature, header, row framing or trailer is not as expected.
    """
    dt = _copy_row_dtype(columns)
    mv = memoryview(data).cast("B")  # type: ignore[arg-type]  # ndarray exports a buffer
    head = len(COPY_HEADER)
    if len(mv) < head + 2 or bytes(mv[: len(COPY_SIGNATURE)]) != COPY_SIGNATURE:
        raise ArchiveError("COPY output lacks the PGCOPY signature")
    flags, ext_len = struct.unpack_from(">ii", mv, len(COPY_SIGNATURE))
    if flags & 0x1FFFF or ext_len < 0:  # bits 0-15 critical, bit 16 = OIDs included
        raise ArchiveError(
            f"COPY output has unsupported header flags {flags:#x} or extension length {ext_len}"
        )
    head += ext_len
    body = len(mv) - head - 2
    if body < 0 or body % dt.itemsize or bytes(mv[-2:]) != COPY_TRAILER:
        raise ArchiveError(f"COPY output of {len(mv)} bytes is not whole rows of {dt.itemsize}")
    rows = np.frombuffer(mv, dtype=dt, count=body // dt.itemsize, offset=head)
    if len(rows):
        tmpl = _copy_template(columns)
        frame = ["_nf"] + [f"_l{i}" for i in range(len(columns))]
        for name in frame:
            if not (rows[name] == tmpl[name][0]).all():
                raise ArchiveError(f"COPY output has unexpected framing in {name} (a NULL?)")
    return rows


# ------------------------------------------------------------------- helpers


def _sorted(spec: TableSpec, records: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Return ``records`` in replay order: ``exch_ns``, instrument, then the key's tail.

    Rows usually come back from PostgreSQL in insertion order, which is nearly sorted, so
    the common case is one comparison pass and no sort at all.
    """
    if len(records) < 2:
        return records
    tail = [records[k] for k in spec.order_tail if k != "exch_ns"]
    keys = [records["exch_ns"], records["inst"], *tail]
    prev = np.zeros(len(records) - 1, dtype=bool)  # earlier keys equal so far
    ordered = True
    for i, key in enumerate(keys):
        a, b = key[:-1], key[1:]
        if i == 0:
            if bool((b < a).any()):
                ordered = False
                break
            prev = b == a
        else:
            if bool((prev & (b < a)).any()):
                ordered = False
                break
            prev &= b == a
        if not prev.any():
            break
    if ordered:
        return records
    return records[np.lexsort(tuple(reversed(keys)))]


def _ns_to_dt(ns: int) -> datetime:
    """Datetime (UTC, microseconds, floored) of ``ns``."""
    us = ns // 1000
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


def _day_name(table: str, day: int) -> str:
    d = datetime.fromtimestamp(day * 86_400, tz=UTC)
    return f"{table}_p{d:%Y%m%d}"


def _name_day(table: str, name: str) -> int | None:
    prefix = f"{table}_p"
    if not name.startswith(prefix) or len(name) != len(prefix) + 8:
        return None
    try:
        d = datetime.strptime(name[len(prefix) :], "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(d.timestamp()) // 86_400


def _unreachable(dsn: str, exc: BaseException) -> ServiceUnavailableError:
    detail = type(exc).__name__
    return ServiceUnavailableError(
        f"PostgreSQL at {redact_url(dsn)} is not reachable ({detail}); "
        "start it with `make services` or set TIMESCALEDB_URL"
    )


def _server_message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return str(primary or exc).strip()


def connect(dsn: str, timeout: float = 5.0) -> psycopg.Connection[Any]:
    """Open an autocommit connection, or raise :class:`ServiceUnavailableError`."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(timeout)))
    except psycopg.OperationalError as exc:
        raise _unreachable(dsn, exc) from None
    except psycopg.ProgrammingError as exc:
        raise ArchiveError(f"invalid PostgreSQL DSN {redact_url(dsn)!r}: {exc}") from None


def _read_session(conn: psycopg.Connection[Any]) -> None:
    """Session settings for replay reads.

    ``synchronize_seqscans = off``: a sequential scan of a table larger than a quarter of
    ``shared_buffers`` otherwise starts where another (or the previous) scan of it is,
    so rows come back rotated, not in insertion (≈ exchange-time) order, and every replay
    window needs a full sort on the client.
    """
    conn.execute("SET synchronize_seqscans = off")


def _wait_readable(pg: Any) -> None:
    """Block (GIL released) until the server sent something, then read it into libpq."""
    select.select([pg.socket], [], [])
    pg.consume_input()


def _drain_copy(
    conn: psycopg.Connection[Any], query: bytes, what: str, dsn: str
) -> bytearray | npt.NDArray[np.uint8]:
    """Run ``COPY ... TO STDOUT`` on ``conn`` and return the whole stream (header to trailer).

    The rows are collected by the compiled reader (:func:`orchestrator.data.libpq.copy_drain`,
    one C loop with the GIL released) when psycopg's libpq could be identified, else by
    libpq's non-blocking calls from Python (one CopyData message, i.e. one row, per call;
    a thread waiting for the server releases the GIL). Slices of one replay are read
    concurrently either way. Raises :class:`ArchiveError` on a server error, or
    :class:`~orchestrator.errors.ServiceUnavailableError` if the connection is lost.
    """
    pq = psycopg.pq
    pg = conn.pgconn
    pg.send_query(query)
    while pg.is_busy():
        _wait_readable(pg)
    res = pg.get_result()
    if res is None or res.status != pq.ExecStatus.COPY_OUT:
        msg = res.error_message.decode(errors="replace") if res is not None else ""
        while pg.get_result() is not None:
            pass
        if pg.status != pq.ConnStatus.OK:
            raise _unreachable(dsn, ConnectionError("connection lost"))
        raise ArchiveError(f"{what} failed: {msg.strip()}")
    drain = copy_drain()
    buf: bytearray | npt.NDArray[np.uint8]
    if drain is not None:
        nbytes, buf = drain.drain(pg.pgconn_ptr)  # type: ignore[attr-defined]
    else:
        buf = bytearray()
        get = pg.get_copy_data
        extend = buf.extend
        while True:
            nbytes, chunk = get(1)
            if nbytes > 0:
                extend(chunk)
            elif nbytes == 0:
                _wait_readable(pg)
            else:
                break
    if nbytes == COPY_CONNECTION_LOST:
        raise _unreachable(dsn, ConnectionError("connection lost during COPY"))
    while pg.is_busy():
        _wait_readable(pg)
    res = pg.get_result()
    while pg.get_result() is not None:
        pass
    if nbytes == -2 or res is None or res.status != pq.ExecStatus.COMMAND_OK:
        if pg.status != pq.ConnStatus.OK:
            raise _unreachable(dsn, ConnectionError("connection lost"))
        msg = res.error_message.decode(errors="replace") if res is not None else ""
        raise ArchiveError(f"{what} failed: {msg.strip()}")
    return buf


# ------------------------------------------------------------------- the archive


class Archive:
    """One connection to the archive database; see the module docstring.

    Parameters
    ----------
    dsn
        libpq connection string or URL.
    settings
        Chunking, partitioning and retention settings.
    timeout
        Connect timeout in seconds.
    clock
        Source of "now" in Unix nanoseconds (partitions ahead, retention horizon, the
        plausibility limit of event times); tests pass a fixed clock.

    Raises
    ------
    ServiceUnavailableError
        If the server cannot be reached.
    """

    def __init__(
        self,
        dsn: str,
        settings: ArchiveSettings | None = None,
        timeout: float = 5.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.dsn = dsn
        self._clock = clock
        self.settings = settings or ArchiveSettings()
        self._timeout = timeout
        self._conn = connect(dsn, timeout)
        with self._guard("configuring the session"):
            _read_session(self._conn)
        self._variant: Variant | None = None
        self._parts: dict[str, set[int]] = {}
        #: Extra replay connections (``read_connections - 1``, opened on first use).
        self._aux: list[psycopg.Connection[Any] | None] = []
        self._pool: ThreadPoolExecutor | None = None
        self._read_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections (and the replay read threads)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for conn in self._aux:
            if conn is not None:
                conn.close()
        self._aux.clear()
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The underlying autocommit connection (for ad-hoc queries and tests)."""
        return self._conn

    @contextlib.contextmanager
    def _guard(self, what: str, conn: psycopg.Connection[Any] | None = None) -> Iterator[None]:
        """Map driver errors: lost server -> ServiceUnavailableError, others -> ArchiveError.

        ``conn`` is the connection the block uses (default: the archive's own).
        """
        c = self._conn if conn is None else conn
        try:
            yield
        except psycopg.Error as exc:
            if c.closed or c.broken or c.pgconn.status != psycopg.pq.ConnStatus.OK:
                raise _unreachable(self.dsn, exc) from None
            raise ArchiveError(f"{what} failed: {_server_message(exc)}") from None

    # -- migrations ------------------------------------------------------------------

    @property
    def variant(self) -> Variant:
        """``timescale`` or ``plain``, as recorded by the first migration.

        Raises
        ------
        ArchiveError
            If the database has not been migrated.
        """
        if self._variant is None:
            with self._guard("reading schema_migrations"):
                row = self._conn.execute(
                    "SELECT to_regclass('schema_migrations') IS NOT NULL"
                ).fetchone()
                found = None
                if row and row[0]:
                    found = self._conn.execute(
                        "SELECT variant FROM schema_migrations ORDER BY version LIMIT 1"
                    ).fetchone()
            if not found:
                raise ArchiveError(
                    "the archive database is not migrated; "
                    "run `python -m orchestrator.data migrate`"
                )
            self._variant = "timescale" if found[0] == "timescale" else "plain"
        return self._variant

    def timescale_available(self) -> bool:
        """Whether the server can install the ``timescaledb`` extension."""
        with self._guard("checking extensions"):
            row = self._conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).fetchone()
        return row is not None

    def _choose_variant(self) -> Variant:
        row = self._conn.execute(
            "SELECT variant FROM schema_migrations ORDER BY version LIMIT 1"
        ).fetchone()
        if row:
            return "timescale" if row[0] == "timescale" else "plain"
        mode = self.settings.timescale
        if mode == "off":
            return "plain"
        available = self.timescale_available()
        if mode == "require" and not available:
            raise ArchiveError(
                "settings require TimescaleDB but the timescaledb extension is not available"
            )
        return "timescale" if available else "plain"

    def migrate(self, now_ns: int | None = None) -> MigrateReport:
        """Apply pending migrations (and policies / partitions); safe to call concurrently.

        Parameters
        ----------
        now_ns
            "Now" for creating partitions ahead (default: the clock).

        Returns
        -------
        MigrateReport
            The variant, the versions applied by this call, partitions created.
        """
        applied: list[int] = []
        with self._guard("migration"):
            self._conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
            try:
                self._conn.execute(
                    """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    variant text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
                )
                variant = self._choose_variant()
                if variant == "timescale":
                    self._conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                for mig in MIGRATIONS:
                    if self._apply(mig, variant):
                        applied.append(mig.version)
                if variant == "timescale":
                    s = self.settings
                    with self._conn.transaction():
                        for stmt in policy_sql(
                            s.chunk_days,
                            s.compress_after_days,
                            s.retention_days,
                            s.bars_refresh_days,
                        ):
                            self._conn.execute(stmt)
            finally:
                if not self._conn.broken:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
        self._variant = variant
        created = 0
        if variant == "plain":
            created = self.ensure_partitions(now_ns, self.settings.ahead_days)
        if applied:
            log.info("archive migrated to version %d (%s)", applied[-1], variant)
        return MigrateReport(variant, tuple(applied), created)

    def _apply(self, mig: Migration, variant: Variant) -> bool:
        version, name, stmts = mig.version, mig.name, mig.statements(variant)
        checksum = mig.checksum(variant)
        with self._conn.transaction():
            row = self._conn.execute(
                "SELECT checksum FROM schema_migrations WHERE version = %s", (version,)
            ).fetchone()
            if row is not None:
                if row[0] != checksum:
                    log.warning("migration %d (%s) changed since it was applied", version, name)
                return False
            try:
                for stmt in stmts:
                    self._conn.execute(stmt.encode())
            except psycopg.Error as exc:
                if self._conn.broken:
                    raise
                raise ArchiveError(
                    f"migration {version} ({name}) failed: {_server_message(exc)}"
                ) from None
            self._conn.execute(
                "INSERT INTO schema_migrations (version, name, variant, checksum) "
                "VALUES (%s, %s, %s, %s)",
                (version, name, variant, checksum),
            )
        return True

    def applied_versions(self) -> list[int]:
        """Versions recorded in ``schema_migrations``."""
        with self._guard("reading schema_migrations"):
            rows = self._conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        return [int(r[0]) for r in rows]

    # -- partitions (plain variant) --------------------------------------------------

    def partitions(self, table: str, refresh: bool = False) -> set[int]:
        """Days (Unix day numbers) that have a partition of ``table``."""
        if refresh or table not in self._parts:
            with self._guard("listing partitions"):
                rows = self._conn.execute(
                    "SELECT c.relname FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent "
                    "WHERE p.relname = %s AND p.relnamespace = to_regnamespace(current_schema())",
                    (table,),
                ).fetchall()
            days = {_name_day(table, r[0]) for r in rows}
            self._parts[table] = {d for d in days if d is not None}
        return self._parts[table]

    def _create_partitions(self, table: str, days: Sequence[int]) -> int:
        if not days:
            return 0
        created = 0
        with self._guard(f"creating partitions of {table}"), self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            existing = self.partitions(table, refresh=True)
            hashed = self.settings.instrument_partitions
            for day in days:
                if day in existing:
                    continue
                name = _day_name(table, day)
                stmt = sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({}){}"
                ).format(
                    sql.Identifier(name),
                    sql.Identifier(table),
                    sql.Literal(datetime.fromtimestamp(day * 86_400, tz=UTC)),
                    sql.Literal(datetime.fromtimestamp((day + 1) * 86_400, tz=UTC)),
                    sql.SQL(" PARTITION BY HASH (instrument)" if hashed > 1 else ""),
                )
                self._conn.execute(stmt)
                for rem in range(hashed) if hashed > 1 else ():
                    self._conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} "
                            "FOR VALUES WITH (MODULUS {}, REMAINDER {})"
                        ).format(
                            sql.Identifier(f"{name}_h{rem}"),
                            sql.Identifier(name),
                            sql.Literal(hashed),
                            sql.Literal(rem),
                        )
                    )
                existing.add(day)
                created += 1
        return created

    def ensure_partitions(
        self, now_ns: int | None = None, ahead_days: int | None = None, behind_days: int = 1
    ) -> int:
        """Create the daily partitions of every partitioned table around ``now_ns``.

        Days ``today - behind_days`` .. ``today + ahead_days`` are covered. A no-op with
        TimescaleDB (chunks are automatic).

        Returns
        -------
        int
            Number of partitions created.
        """
        if self.variant != "plain":
            return 0
        now = self._clock() if now_ns is None else now_ns
        ahead = self.settings.ahead_days if ahead_days is None else ahead_days
        today = now // NS_PER_DAY
        days = list(range(today - behind_days, today + ahead + 1))
        return sum(self._create_partitions(t.name, days) for t in TABLES.values() if t.partitioned)

    def retention(self, now_ns: int | None = None) -> list[str]:
        """Apply retention: drop expired partitions (plain), prune ledger and batch keys.

        A partition is dropped only when its whole day ends at or before
        ``now - retention_days``. TimescaleDB drops chunks through its own policies.

        Returns
        -------
        list of str
            Names of the dropped partitions.
        """
        now = self._clock() if now_ns is None else now_ns
        dropped: list[str] = []
        keep = self.settings.retention_days
        plain = self.variant == "plain"
        with self._guard("retention"), self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            for spec in TABLES.values():
                days_kept = keep.get(spec.name)
                if days_kept is None:
                    continue
                cutoff = now - days_kept * NS_PER_DAY
                if not spec.partitioned:
                    self._conn.execute(
                        sql.SQL("DELETE FROM {} WHERE ts < {}").format(
                            sql.Identifier(spec.name), sql.Literal(_ns_to_dt(cutoff))
                        )
                    )
                    continue
                if not plain:
                    continue
                for day in sorted(self.partitions(spec.name, refresh=True)):
                    if (day + 1) * NS_PER_DAY <= cutoff:
                        name = _day_name(spec.name, day)
                        self._conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                        self._parts[spec.name].discard(day)
                        dropped.append(name)
            self._conn.execute(
                "DELETE FROM ingest_batches WHERE stored_at < now() - make_interval(days => %s)",
                (self.settings.batch_key_days,),
            )
        if dropped:
            log.info("retention dropped %d partitions", len(dropped))
        return dropped

    def refresh_bars(self, concurrently: bool = True) -> None:
        """Refresh ``bars_1m`` (materialized view) or the continuous aggregate's window."""
        with self._guard("refreshing bars_1m"):
            if self.variant == "timescale":
                self._conn.execute(
                    "CALL refresh_continuous_aggregate('bars_1m', NULL, "
                    "date_trunc('minute', now()))"
                )
            elif concurrently:
                self._conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY bars_1m")
            else:
                self._conn.execute("REFRESH MATERIALIZED VIEW bars_1m")

    def bars(self, instrument: int, start_ns: int, end_ns: int) -> npt.NDArray[np.void]:
        """1-minute bars of ``instrument`` with buckets in ``[start_ns, end_ns)``.

        Returns
        -------
        numpy.ndarray
            Fields ``bucket_ns, open, high, low, close, volume, trades`` (int64).
        """
        dt = np.dtype(
            [(n, "<i8") for n in ("bucket_ns", "open", "high", "low", "close", "volume", "trades")]
        )
        with self._guard("reading bars"):
            rows = self._conn.execute(
                "SELECT (extract(epoch FROM bucket) * 1000000)::int8 * 1000, open, high, low, "
                "close, volume, trades FROM bars_1m WHERE instrument = %s AND bucket >= %s "
                "AND bucket < %s ORDER BY bucket",
                (instrument, _ns_to_dt(start_ns), _ns_to_dt(end_ns)),
            ).fetchall()
        return np.array([tuple(r) for r in rows], dtype=dt)

    # -- registry --------------------------------------------------------------------

    def register(
        self,
        venue: str,
        market: str,
        symbol: str,
        price_scale: int = -1,
        size_scale: int = -1,
    ) -> InstrumentInfo:
        """Id of an instrument, assigned by the database if new (same in every process)."""
        with self._guard("registering an instrument"), self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (REGISTRY_LOCK,))
            row = self._conn.execute(
                "SELECT venue_id FROM venues WHERE name = %s", (venue,)
            ).fetchone()
            if row is None:
                row = self._conn.execute(
                    "INSERT INTO venues (venue_id, name) "
                    "SELECT coalesce(max(venue_id), 0) + 1, %s FROM venues RETURNING venue_id",
                    (venue,),
                ).fetchone()
            assert row is not None
            vid = int(row[0])
            self._conn.execute(
                "INSERT INTO instruments (venue_id, market, symbol, price_scale, size_scale) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (venue_id, market, symbol) DO UPDATE "
                "SET price_scale = CASE WHEN EXCLUDED.price_scale >= 0 THEN "
                "EXCLUDED.price_scale ELSE instruments.price_scale END, "
                "size_scale = CASE WHEN EXCLUDED.size_scale >= 0 THEN "
                "EXCLUDED.size_scale ELSE instruments.size_scale END",
                (vid, market, symbol, price_scale, size_scale),
            )
            got = self._conn.execute(
                "SELECT instrument_id, price_scale, size_scale FROM instruments "
                "WHERE venue_id = %s AND market = %s AND symbol = %s",
                (vid, market, symbol),
            ).fetchone()
        assert got is not None
        return InstrumentInfo(int(got[0]), vid, venue, market, symbol, int(got[1]), int(got[2]))

    def load_registry(self) -> InstrumentRegistry:
        """Every venue and instrument stored in the archive."""
        reg = InstrumentRegistry()
        with self._guard("loading the instrument registry"):
            for vid, name in self._conn.execute("SELECT venue_id, name FROM venues").fetchall():
                reg.add_venue(name, int(vid))
            rows = self._conn.execute(
                "SELECT i.instrument_id, i.venue_id, v.name, i.market, i.symbol, "
                "i.price_scale, i.size_scale FROM instruments i JOIN venues v USING (venue_id)"
            ).fetchall()
        for r in rows:
            reg.add(InstrumentInfo(int(r[0]), int(r[1]), r[2], r[3], r[4], int(r[5]), int(r[6])))
        return reg

    def signal_name_id(self, name: str) -> int:
        """Id of signal ``name`` (assigned if new)."""
        with self._guard("registering a signal name"), self._conn.transaction():
            self._conn.execute(
                "INSERT INTO signal_names (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,)
            )
            row = self._conn.execute(
                "SELECT name_id FROM signal_names WHERE name = %s", (name,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    # -- insertion -------------------------------------------------------------------

    def insert_batch(
        self, payload: bytes | bytearray | memoryview, batch_key: str | None = None
    ) -> InsertResult:
        """Decode an :func:`~orchestrator.data.records.encode_batch` buffer and insert it."""
        kind, records = decode_batch(payload)
        return self.insert(records, kind, batch_key)

    def insert(
        self,
        records: npt.NDArray[np.void],
        kind: RecordKind | None = None,
        batch_key: str | None = None,
    ) -> InsertResult:
        """Store ``records`` exactly once (idempotent on the natural keys).

        Parameters
        ----------
        records
            One-dimensional array of one of the record dtypes.
        kind
            The record kind (default: recognised from the dtype).
        batch_key
            Optional unique name of this batch (e.g. ``"md:binance:BTCUSDT:trades:1-5"``);
            a batch whose key is already stored is skipped without touching the data.

        Returns
        -------
        InsertResult
            Rows offered, inserted, already present, and skipped as expired.

        Raises
        ------
        TypeError
            If ``records`` is not an array of a record dtype.
        ArchiveError
            If event times are implausible or span more than ``max_batch_days``.
        ServiceUnavailableError
            If the server is unreachable.
        """
        kind = self._kind_of(records, kind)
        spec = TABLE_OF_KIND[kind]
        n = len(records)
        if n == 0:
            return InsertResult(kind, 0, 0, 0)
        exch = records["exch_ns"]
        lo, hi = int(exch.min()), int(exch.max())
        limit = self._clock() + 366 * NS_PER_DAY
        if lo < MIN_EVENT_NS or hi > limit:
            bad = lo if lo < MIN_EVENT_NS else hi
            raise ArchiveError(
                f"{spec.name}: exch_ns {bad} is outside 2010-01-01 .. now+1y "
                "(nanoseconds since the Unix epoch expected)"
            )
        expired = 0
        if spec.partitioned and self.variant == "plain":
            records, expired = self._prepare_partitions(spec, records, lo, hi)
        if len(records) == 0:
            return InsertResult(kind, n, 0, 0, expired)
        rows = build_copy_payload(spec, records)
        with self._guard(f"inserting into {spec.name}"), self._conn.transaction():
            if batch_key is not None:
                fresh = self._conn.execute(
                    "INSERT INTO ingest_batches (batch_key, kind, rows_inserted) "
                    "VALUES (%s, %s, 0) ON CONFLICT DO NOTHING RETURNING 1",
                    (batch_key, int(kind)),
                ).fetchone()
                if fresh is None:
                    return InsertResult(kind, n, 0, n - expired, expired, batch_duplicate=True)
            merged = False
            try:
                with self._conn.transaction():
                    self._copy(spec.name, spec, rows)
                inserted = len(rows)
            except psycopg.errors.UniqueViolation:
                merged = True
                inserted = self._merge(spec, rows)
            if batch_key is not None:
                self._conn.execute(
                    "UPDATE ingest_batches SET rows_inserted = %s WHERE batch_key = %s",
                    (inserted, batch_key),
                )
        return InsertResult(
            kind, n, inserted, len(rows) - inserted, expired, batch_duplicate=False, merged=merged
        )

    @staticmethod
    def _kind_of(records: npt.NDArray[np.void], kind: RecordKind | None) -> RecordKind:
        if not isinstance(records, np.ndarray):
            raise TypeError(f"records must be a numpy array, was {type(records).__name__}")
        if records.ndim != 1:
            raise ValueError(f"records must be one-dimensional, had shape {records.shape}")
        if kind is None:
            for k, dt in DTYPES.items():
                if records.dtype == dt:
                    return k
            raise TypeError(f"records dtype {records.dtype} is not a record dtype")
        kind = RecordKind(kind)
        if records.dtype != DTYPES[kind]:
            raise TypeError(f"records must have the {kind.name} dtype, was {records.dtype}")
        return kind

    def _prepare_partitions(
        self, spec: TableSpec, records: npt.NDArray[np.void], lo: int, hi: int
    ) -> tuple[npt.NDArray[np.void], int]:
        first, last = lo // NS_PER_DAY, hi // NS_PER_DAY
        if last - first + 1 > self.settings.max_batch_days:
            raise ArchiveError(
                f"{spec.name}: batch spans {last - first + 1} days "
                f"(max_batch_days={self.settings.max_batch_days})"
            )
        have = self.partitions(spec.name)
        missing = [d for d in range(first, last + 1) if d not in have]
        if not missing:
            return records, 0
        have = self.partitions(spec.name, refresh=True)
        missing = [d for d in missing if d not in have]
        keep = self.settings.retention_days.get(spec.name)
        horizon = None if keep is None else (self._clock() - keep * NS_PER_DAY) // NS_PER_DAY
        expired_days = [d for d in missing if horizon is not None and d < horizon]
        self._create_partitions(spec.name, [d for d in missing if d not in expired_days])
        if not expired_days:
            return records, 0
        day = records["exch_ns"] // NS_PER_DAY
        gone = np.isin(day, np.asarray(expired_days, dtype=np.int64))
        count = int(gone.sum())
        log.warning("%s: %d rows fall in expired, dropped partitions; skipped", spec.name, count)
        return records[~gone], count

    def _copy(self, table: str, spec: TableSpec, rows: npt.NDArray[np.uint8]) -> None:
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, spec.column_names))
        )
        data = memoryview(rows.reshape(-1).data)
        with self._conn.cursor() as cur, cur.copy(stmt) as cp:
            cp.write(COPY_HEADER)
            for off in range(0, len(data), _COPY_CHUNK):
                cp.write(data[off : off + _COPY_CHUNK])
            cp.write(COPY_TRAILER)

    def _merge(self, spec: TableSpec, rows: npt.NDArray[np.uint8]) -> int:
        stage = f"_stage_{spec.name}"
        self._conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
                sql.Identifier(stage), sql.Identifier(spec.name)
            )
        )
        self._copy(stage, spec, rows)
        cols = sql.SQL(", ").join(map(sql.Identifier, spec.column_names))
        cur = self._conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                sql.Identifier(spec.name), cols, cols, sql.Identifier(stage)
            )
        )
        self._conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(stage)))
        return max(cur.rowcount, 0)

    # -- replay ----------------------------------------------------------------------

    def _reader(self, i: int) -> psycopg.Connection[Any]:
        """Return the connection of replay slice ``i`` (0: the archive's own; others lazily)."""
        if i == 0:
            return self._conn
        while len(self._aux) < i:
            self._aux.append(None)
        conn = self._aux[i - 1]
        if conn is None or conn.closed or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
            if conn is not None:
                conn.close()
            self._aux[i - 1] = None
            conn = connect(self.dsn, self._timeout)
            with self._guard("configuring a read connection", conn):
                _read_session(conn)
            self._aux[i - 1] = conn
        return conn

    def _copy_out(self, spec: TableSpec, where: sql.Composable) -> npt.NDArray[np.void]:
        """Rows of ``spec`` matching ``where`` as records, in replay order (:func:`_sorted`)."""
        (rows,) = self._copy_out_slices(spec, [where])
        return rows

    def _copy_out_slices(
        self,
        spec: TableSpec,
        wheres: Sequence[sql.Composable],
        constant: Mapping[str, int] | None = None,
    ) -> list[npt.NDArray[np.void]]:
        """Rows of ``spec`` matching each of ``wheres``, one array per slice.

        Slice ``i`` is read on connection ``i`` (:meth:`_reader`), the others in the read
        pool's threads while this thread reads slice 0; each slice is put in replay order
        (:func:`_sorted`) in its thread. For consecutive exchange-time slices the arrays,
        in order, are the whole result in replay order (no concatenation). ``constant``
        maps column names that every matching row has the same value in (``wheres`` pins
        them) to that value: the server does not send them (each field sent costs it ~60
        ns a row).
        """
        constant = constant or {}
        cols = [c for c in spec.columns if c.source != "@ts" and c.name not in constant]
        fill = {c.source: constant[c.name] for c in spec.columns if c.name in constant}
        fields = [(c.name, c.pg_type) for c in cols]
        names = [c.name for c in cols]
        rec = DTYPES[spec.kind]
        # the record dtype's column fields only (padding left out), in COPY column order
        layout: dict[str, Any] = {
            "names": names,
            "formats": [rec.fields[c.source][0] for c in cols],  # type: ignore[index]
            "offsets": [rec.fields[c.source][1] for c in cols],  # type: ignore[index]
            "itemsize": rec.itemsize,
        }
        target = np.dtype(layout)  # type: ignore[call-overload]
        what = f"reading {spec.name}"
        texts = [
            sql.SQL("COPY (SELECT {} FROM {} WHERE {}) TO STDOUT (FORMAT BINARY)")
            .format(
                sql.SQL(", ").join(sql.Identifier(c.name) for c in cols),
                sql.Identifier(spec.name),
                where,
            )
            .as_string(self._conn)
            .encode()
            for where in wheres
        ]
        if self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise ArchiveError("replay reads need an idle connection (no open transaction)")

        def one(i: int, conn: psycopg.Connection[Any]) -> npt.NDArray[np.void]:
            with self._guard(what, conn):
                buf = _drain_copy(conn, texts[i], what, self.dsn)
            be = decode_copy_payload(buf, fields)
            out = np.zeros(len(be), dtype=DTYPES[spec.kind])
            out.view(target)[...] = be[names]  # one structured cast: by position, swaps bytes
            for source, value in fill.items():
                out[source] = value
            return _sorted(spec, out)

        if len(texts) == 1:
            return [one(0, self._conn)]
        with self._read_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.settings.read_connections - 1,
                    thread_name_prefix="archive-read",
                )
            conns = [self._reader(i) for i in range(len(texts))]
            futures: list[Future[npt.NDArray[np.void]]] = [
                self._pool.submit(one, i, conns[i]) for i in range(1, len(texts))
            ]
            parts: list[npt.NDArray[np.void]] = []
            error: BaseException | None = None
            try:
                parts.append(one(0, conns[0]))
            except BaseException as exc:  # wait for the other slices before raising
                error = exc
            for fut in futures:  # every slice finishes before its connection is reused
                try:
                    parts.append(fut.result())
                except BaseException as exc:
                    error = error or exc
            if error is not None:
                raise error
        return parts

    def read(
        self,
        kind: RecordKind,
        instruments: Sequence[int],
        start_ns: int,
        end_ns: int,
        window_ns: int = 3600 * 10**9,
        chunk_rows: int = 1 << 20,
    ) -> Iterator[npt.NDArray[np.void]]:
        """Record batches of ``instruments`` with ``start_ns <= exch_ns < end_ns``.

        Batches come in exchange-time order (ties: instrument, then the table's natural key,
        e.g. ``trade_id`` or ``seq, side, price``); each holds at most ``chunk_rows``
        records and is a new array the caller owns.

        Parameters
        ----------
        kind
            Record kind (table) to read.
        instruments
            Instrument ids.
        start_ns, end_ns
            Half-open exchange-time window in nanoseconds.
        window_ns
            Time span read per query (memory ~ rows in one window).
        chunk_rows
            Largest batch yielded.
        """
        spec = TABLE_OF_KIND[RecordKind(kind)]
        if window_ns < 1 or chunk_rows < 1:
            raise ValueError(
                f"window_ns and chunk_rows must be >= 1, were {window_ns}, {chunk_rows}"
            )
        ids = sorted({int(i) for i in instruments})
        if not ids or end_ns <= start_ns:
            return
        k = self.settings.read_connections
        t = start_ns
        while t < end_ns:
            u = min(end_ns, t + window_ns)
            # consecutive time slices, read concurrently (one per connection)
            n = k if u - t >= max(PARALLEL_READ_MIN_NS, k) else 1
            cuts = [t + (u - t) * i // n for i in range(n + 1)]
            wheres = [
                sql.SQL(
                    "instrument = ANY({}::int4[]) AND ts >= {} AND ts <= {} "
                    "AND exch_ns >= {} AND exch_ns < {}"
                ).format(
                    sql.Literal(ids),
                    sql.Literal(_ns_to_dt(a)),
                    sql.Literal(_ns_to_dt(b - 1)),
                    sql.Literal(a),
                    sql.Literal(b),
                )
                for a, b in itertools.pairwise(cuts)
            ]
            # one instrument: the WHERE pins the column, so the server need not send it
            parts = self._copy_out_slices(
                spec, wheres, {"instrument": ids[0]} if len(ids) == 1 else None
            )
            for arr in parts:
                for off in range(0, len(arr), chunk_rows):
                    yield arr[off : off + chunk_rows]
            t = u

    def read_trades(
        self, instruments: Sequence[int], start_ns: int, end_ns: int, **kw: int
    ) -> Iterator[npt.NDArray[np.void]]:
        """:meth:`read` of trades (``TRADE_DTYPE`` batches)."""
        return self.read(RecordKind.TRADE, instruments, start_ns, end_ns, **kw)

    def read_deltas(
        self, instruments: Sequence[int], start_ns: int, end_ns: int, **kw: int
    ) -> Iterator[npt.NDArray[np.void]]:
        """:meth:`read` of book deltas (``DELTA_DTYPE`` batches)."""
        return self.read(RecordKind.DELTA, instruments, start_ns, end_ns, **kw)

    def read_snapshot(self, instrument: int, at_ns: int) -> npt.NDArray[np.void]:
        """Levels of the latest stored snapshot of ``instrument`` at or before ``at_ns``.

        Returns
        -------
        numpy.ndarray of SNAPSHOT_DTYPE
            Ordered by side then level; empty if there is none.
        """
        with self._guard("finding a snapshot"):
            row = self._conn.execute(
                "SELECT ts, exch_ns, seq FROM book_snapshots WHERE instrument = %s "
                "AND ts <= %s AND exch_ns <= %s ORDER BY ts DESC, exch_ns DESC, seq DESC LIMIT 1",
                (instrument, _ns_to_dt(at_ns), at_ns),
            ).fetchone()
        spec = TABLES["book_snapshots"]
        if row is None:
            return np.zeros(0, dtype=DTYPES[spec.kind])
        where = sql.SQL("instrument = {} AND ts = {} AND exch_ns = {} AND seq = {}").format(
            sql.Literal(instrument), sql.Literal(row[0]), sql.Literal(row[1]), sql.Literal(row[2])
        )
        return self._copy_out(spec, where)

    # -- coverage --------------------------------------------------------------------

    def _last_data_ns(self, venue: int, instrument: int, lo: int, hi: int) -> int | None:
        best: int | None = None
        for table in ("trades", "deltas", "tops"):
            row = self._conn.execute(
                sql.SQL(
                    "SELECT max(exch_ns) FROM {} WHERE instrument = %s AND venue = %s "
                    "AND ts >= %s AND ts <= %s AND exch_ns >= %s AND exch_ns < %s"
                ).format(sql.Identifier(table)),
                (instrument, venue, _ns_to_dt(lo), _ns_to_dt(hi), lo, hi),
            ).fetchone()
            if row and row[0] is not None:
                best = int(row[0]) if best is None else max(best, int(row[0]))
        return best

    def coverage(self, venue: int, instrument: int, start_ns: int, end_ns: int) -> Coverage:
        """Which parts of ``[start_ns, end_ns)`` are complete for one instrument.

        A window is complete while a recording session is open (``START`` .. ``STOP``)
        and no break is open: ``DISCONNECT`` .. ``RECONNECT``, ``GAP`` .. ``RESYNC``,
        ``STALE_START`` .. ``STALE_END`` (breaks are tracked separately; all must be
        closed). A ``START`` inside an open session means the collector died: the session
        counts as complete only up to the last stored event (trade, delta or top) or ledger
        event before the restart, the rest is a ``crash`` gap. A session still open at
        ``end_ns`` is complete through ``end_ns`` if the ledger shows it going on (a later
        non-``START`` event), else only up to its last stored event. Everything else is a
        gap with a ``reason`` (``unrecorded``, ``disconnect``, ``gap``, ``stale``, ``crash``).
        """
        if end_ns <= start_ns:
            raise ValueError(f"end_ns must be after start_ns, were {start_ns}, {end_ns}")
        with self._guard("computing coverage"):
            first = self._conn.execute(
                "SELECT max(exch_ns) FROM ledger WHERE venue = %s AND instrument = %s "
                "AND kind = %s AND exch_ns <= %s",
                (venue, instrument, int(LedgerKind.START), start_ns),
            ).fetchone()
            lo = int(first[0]) if first and first[0] is not None else start_ns
            events = self._conn.execute(
                "SELECT exch_ns, kind FROM ledger WHERE venue = %s AND instrument = %s "
                "AND exch_ns >= %s AND exch_ns < %s ORDER BY exch_ns, recv_ns, kind",
                (venue, instrument, lo, end_ns),
            ).fetchall()
            segs = self._segments(
                venue, instrument, [(int(t), int(k)) for t, k in events], lo, end_ns
            )
        complete, gaps = coverage_windows(segs, start_ns, end_ns)
        return Coverage(venue, instrument, start_ns, end_ns, complete, gaps)

    def _segments(
        self, venue: int, instrument: int, events: list[tuple[int, int]], lo: int, end: int
    ) -> list[tuple[int, int, str]]:
        nxt = self._conn.execute(
            "SELECT kind FROM ledger WHERE venue = %s AND instrument = %s AND exch_ns >= %s "
            "ORDER BY exch_ns, recv_ns, kind LIMIT 1",
            (venue, instrument, end),
        ).fetchone()
        return coverage_segments(
            events,
            lo,
            end,
            lambda a, b: self._last_data_ns(venue, instrument, a, b),
            int(nxt[0]) if nxt is not None else None,
        )


def coverage_segments(
    events: Sequence[tuple[int, int]],
    lo: int,
    end: int,
    last_data_ns: Callable[[int, int], int | None],
    next_kind: int | None,
) -> list[tuple[int, int, str]]:
    """Split ``[lo, end)`` into ``(start, end, reason)`` segments from ledger events.

    ``events`` are ``(exch_ns, LedgerKind)`` in time order; ``last_data_ns(a, b)`` is the
    latest stored event time in ``[a, b)`` (None if none); ``next_kind`` is the kind of the
    first ledger event at or after ``end`` (None if none). ``reason`` is ``""`` for a
    complete segment (see :meth:`Archive.coverage` for the rules).
    """
    opens = {LedgerKind.DISCONNECT: "disconnect", LedgerKind.GAP: "gap",
             LedgerKind.STALE_START: "stale"}  # fmt: skip
    closes = {LedgerKind.RECONNECT: "disconnect", LedgerKind.RESYNC: "gap",
              LedgerKind.STALE_END: "stale"}  # fmt: skip
    order = ("disconnect", "gap", "stale")
    segs: list[tuple[int, int, str]] = []
    in_session = False
    breaks: set[str] = set()
    last_seen = lo
    cur = lo

    def status() -> str:
        if not in_session:
            return "unrecorded"
        return next((r for r in order if r in breaks), "")

    def close_session_at(t: int, tail: str = "crash") -> None:
        nonlocal cur
        data = last_data_ns(last_seen, t)
        edge = max(last_seen, data + 1 if data is not None else last_seen)
        edge = min(edge, t)
        segs.append((cur, edge, status()))
        segs.append((edge, t, tail))
        cur = t

    for t, k in events:
        try:
            kind = LedgerKind(k)
        except ValueError:
            continue
        if kind == LedgerKind.START and in_session:
            close_session_at(t)
            breaks.clear()
        elif t > cur:
            segs.append((cur, t, status()))
            cur = t
        if kind == LedgerKind.START:
            in_session = True
            breaks.clear()
        elif kind == LedgerKind.STOP:
            in_session = False
            breaks.clear()
        elif kind in opens:
            breaks.add(opens[kind])
        elif kind in closes:
            breaks.discard(closes[kind])
        last_seen = t
    if cur < end:
        if not in_session:
            segs.append((cur, end, "unrecorded"))
        elif next_kind is not None and next_kind != LedgerKind.START:
            segs.append((cur, end, status()))  # the session went on past the window
        else:
            close_session_at(end, "crash" if next_kind is not None else "unrecorded")
    return segs


def coverage_windows(
    segs: Sequence[tuple[int, int, str]], start_ns: int, end_ns: int
) -> tuple[tuple[Window, ...], tuple[Window, ...]]:
    """Merge segments clipped to ``[start_ns, end_ns)`` into complete windows and gaps."""
    complete: list[Window] = []
    gaps: list[Window] = []
    for a, b, reason in segs:
        a, b = max(a, start_ns), min(b, end_ns)
        if a >= b:
            continue
        target = complete if not reason else gaps
        if target and target[-1].end_ns == a and target[-1].reason == reason:
            target[-1] = Window(target[-1].start_ns, b, reason)
        else:
            target.append(Window(a, b, reason))
    return tuple(complete), tuple(gaps)


def migrate(
    dsn: str, settings: ArchiveSettings | None = None, now_ns: int | None = None
) -> MigrateReport:
    """Connect, apply pending migrations, create partitions ahead, disconnect.

    Call it at start-up of every process that writes to the archive; it is cheap when
    nothing is pending.
    """
    with Archive(dsn, settings) as archive:
        return archive.migrate(now_ns)
