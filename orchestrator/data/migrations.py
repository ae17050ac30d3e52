"""Archive schema: versioned migrations and the table layouts COPY writes to.

A migration is a frozen list of SQL statements per *variant*:

* ``timescale`` - the ``timescaledb`` extension is available: event tables become
  hypertables (``create_hypertable``), compressed by ``(venue, instrument)`` segments
  ordered by time, and 1-minute bars are a continuous aggregate (``time_bucket``,
  ``first``/``last``).
* ``plain`` - PostgreSQL without the extension: the same tables are declaratively
  partitioned by range of ``ts`` (daily partitions, created ahead of need by
  :meth:`orchestrator.data.archive.Archive.ensure_partitions`, each split by
  ``HASH (instrument)`` per ``ArchiveSettings.instrument_partitions``), and bars are a
  materialized view with a unique index (so it can be refreshed ``CONCURRENTLY``).

Policies that come from configuration (chunk interval, compression and retention ages,
the continuous aggregate's refresh window) are not migrations: :func:`policy_sql` renders
them and :meth:`~orchestrator.data.archive.Archive.migrate` re-applies them on every run.

Never edit a released migration; add a new one. The applied versions, their variant and a
checksum of their SQL are kept in ``schema_migrations``.

Columns shared by every event table: ``ts timestamptz`` (exchange time truncated to
microseconds: the partitioning / hypertable time column, what policies and humans use),
``exch_ns`` and ``recv_ns`` (exact int64 nanoseconds), ``venue`` and ``instrument`` ids.
Primary keys are the natural keys of the events (so a redelivered batch inserts nothing
twice) and contain ``ts`` because a unique index of a partitioned table or hypertable must
contain its partition key; they lead with ``instrument, ts`` so replay reads are index
range scans. There are no foreign keys: per-row checks would slow COPY to a crawl.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from psycopg import sql

from orchestrator.data.records import RecordKind

__all__ = [
    "MIGRATIONS",
    "TABLES",
    "Column",
    "Migration",
    "TableSpec",
    "Variant",
    "bars_sql",
    "migration_sql",
    "policy_sql",
]

Variant = Literal["plain", "timescale"]


@dataclass(frozen=True)
class Column:
    """A column of an event table and the record field that fills it.

    ``source`` is a record field name, or ``"@ts"`` for ``ts`` computed from ``exch_ns``.
    """

    name: str
    pg_type: str
    source: str


@dataclass(frozen=True)
class TableSpec:
    """An event table: its record kind, columns (in COPY order) and natural key."""

    name: str
    kind: RecordKind
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partitioned: bool = True
    #: Columns after ``ts`` in the compression ``orderby`` (the rest of the key).
    order_tail: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in COPY order."""
        return tuple(c.name for c in self.columns)


def _common(*rest: tuple[str, str, str]) -> tuple[Column, ...]:
    head = [
        Column("ts", "timestamptz", "@ts"),
        Column("exch_ns", "int8", "exch_ns"),
        Column("recv_ns", "int8", "recv_ns"),
        Column("venue", "int2", "venue"),
        Column("instrument", "int4", "inst"),
    ]
    return tuple(head + [Column(n, t, s) for n, t, s in rest])


#: Event tables, keyed by table name.
TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "trades",
            RecordKind.TRADE,
            _common(
                ("trade_id", "int8", "trade_id"),
                ("price", "int8", "price"),
                ("size", "int8", "size"),
                ("side", "int2", "side"),
                ("price_scale", "int2", "price_scale"),
                ("size_scale", "int2", "size_scale"),
            ),
            ("instrument", "ts", "trade_id", "venue"),
            order_tail=("trade_id",),
        ),
        TableSpec(
            "deltas",
            RecordKind.DELTA,
            _common(
                ("seq", "int8", "seq"),
                ("side", "int2", "side"),
                ("price", "int8", "price"),
                ("size", "int8", "size"),
                ("flags", "int2", "flags"),
            ),
            ("instrument", "ts", "seq", "side", "price", "venue"),
            order_tail=("seq", "side", "price"),
        ),
        TableSpec(
            "book_snapshots",
            RecordKind.SNAPSHOT,
            _common(
                ("seq", "int8", "seq"),
                ("side", "int2", "side"),
                ("level", "int4", "level"),
                ("price", "int8", "price"),
                ("size", "int8", "size"),
            ),
            ("instrument", "ts", "seq", "side", "level", "venue"),
            order_tail=("seq", "side", "level"),
        ),
        TableSpec(
            "tops",
            RecordKind.TOP,
            _common(
                ("seq", "int8", "seq"),
                ("bid_price", "int8", "bid_price"),
                ("bid_size", "int8", "bid_size"),
                ("ask_price", "int8", "ask_price"),
                ("ask_size", "int8", "ask_size"),
                ("flags", "int2", "flags"),
            ),
            ("instrument", "ts", "exch_ns", "seq", "venue"),
            order_tail=("exch_ns", "seq"),
        ),
        TableSpec(
            "signals",
            RecordKind.SIGNAL,
            _common(
                ("name_id", "int4", "name_id"),
                ("seq", "int8", "seq"),
                ("value", "float8", "value"),
            ),
            ("instrument", "ts", "name_id", "exch_ns", "seq", "venue"),
            order_tail=("name_id", "exch_ns", "seq"),
        ),
        TableSpec(
            "orders",
            RecordKind.ORDER,
            _common(
                ("client_id", "int8", "client_id"),
                ("order_id", "int8", "order_id"),
                ("side", "int2", "side"),
                ("ord_type", "int2", "ord_type"),
                ("status", "int2", "status"),
                ("price", "int8", "price"),
                ("size", "int8", "size"),
                ("filled", "int8", "filled"),
            ),
            ("instrument", "ts", "client_id", "exch_ns", "status", "filled", "venue"),
            order_tail=("client_id", "exch_ns", "status", "filled"),
        ),
        TableSpec(
            "fills",
            RecordKind.FILL,
            _common(
                ("client_id", "int8", "client_id"),
                ("order_id", "int8", "order_id"),
                ("trade_id", "int8", "trade_id"),
                ("side", "int2", "side"),
                ("liquidity", "int2", "liquidity"),
                ("price", "int8", "price"),
                ("size", "int8", "size"),
                ("fee", "int8", "fee"),
            ),
            ("instrument", "ts", "trade_id", "order_id", "venue"),
            order_tail=("trade_id", "order_id"),
        ),
        TableSpec(
            "ledger",
            RecordKind.LEDGER,
            _common(
                ("kind", "int2", "kind"),
                ("from_seq", "int8", "from_seq"),
                ("to_seq", "int8", "to_seq"),
                ("detail", "int4", "detail"),
            ),
            ("instrument", "ts", "exch_ns", "kind", "from_seq", "to_seq", "venue"),
            partitioned=False,
        ),
    )
}

#: Record kind -> its table.
TABLE_OF_KIND: dict[RecordKind, TableSpec] = {t.kind: t for t in TABLES.values()}


def _create_table(spec: TableSpec, variant: Variant) -> str:
    cols = ",\n    ".join(f"{c.name} {c.pg_type} NOT NULL" for c in spec.columns)
    key = ", ".join(spec.key)
    tail = " PARTITION BY RANGE (ts)" if spec.partitioned and variant == "plain" else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {spec.name} (\n    {cols},\n"
        f"    CONSTRAINT {spec.name}_pkey PRIMARY KEY ({key})\n){tail}"
    )


def _hypertable(spec: TableSpec) -> list[str]:
    order = ", ".join(("ts DESC", *spec.order_tail))
    return [
        f"SELECT create_hypertable('{spec.name}', 'ts', "
        "chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE)",
        f"ALTER TABLE {spec.name} SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'venue, instrument', "
        f"timescaledb.compress_orderby = '{order}')",
    ]


def _v1_core(variant: Variant) -> list[str]:
    stmts = [
        """CREATE TABLE IF NOT EXISTS venues (
    venue_id smallint PRIMARY KEY CHECK (venue_id BETWEEN 1 AND 255),
    name text NOT NULL UNIQUE
)""",
        """CREATE TABLE IF NOT EXISTS instruments (
    instrument_id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    venue_id smallint NOT NULL REFERENCES venues (venue_id),
    market text NOT NULL,
    symbol text NOT NULL,
    price_scale smallint NOT NULL DEFAULT -1,
    size_scale smallint NOT NULL DEFAULT -1,
    UNIQUE (venue_id, market, symbol)
)""",
        """CREATE TABLE IF NOT EXISTS signal_names (
    name_id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE
)""",
        """CREATE TABLE IF NOT EXISTS ingest_batches (
    batch_key text PRIMARY KEY,
    kind smallint NOT NULL,
    rows_inserted bigint NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
)""",
    ]
    for spec in TABLES.values():
        stmts.append(_create_table(spec, variant))
        if variant == "timescale" and spec.partitioned:
            stmts.extend(_hypertable(spec))
    stmts.append("CREATE INDEX IF NOT EXISTS ledger_ts ON ledger (ts)")
    return stmts


def bars_sql(variant: Variant) -> list[str]:
    """Statements creating ``bars_1m``: 1-minute OHLCV bars per instrument from trades.

    ``open``/``close`` are the prices of the lowest/highest ``trade_id`` of the minute (the
    venue's execution order), ``volume`` the summed lots, ``trades`` the count.
    """
    if variant == "timescale":
        return [
            """CREATE MATERIALIZED VIEW IF NOT EXISTS bars_1m
WITH (timescaledb.continuous) AS
SELECT instrument, venue, time_bucket(INTERVAL '1 minute', ts) AS bucket,
       first(price, trade_id) AS open, max(price) AS high, min(price) AS low,
       last(price, trade_id) AS close, sum(size)::bigint AS volume, count(*) AS trades
FROM trades
GROUP BY instrument, venue, time_bucket(INTERVAL '1 minute', ts)
WITH NO DATA""",
        ]
    return [
        """CREATE MATERIALIZED VIEW IF NOT EXISTS bars_1m AS
SELECT instrument, venue,
       date_bin(INTERVAL '1 minute', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       (array_agg(price ORDER BY trade_id))[1] AS open, max(price) AS high,
       min(price) AS low, (array_agg(price ORDER BY trade_id DESC))[1] AS close,
       sum(size)::bigint AS volume, count(*) AS trades
FROM trades
GROUP BY 1, 2, 3
WITH DATA""",
        "CREATE UNIQUE INDEX IF NOT EXISTS bars_1m_key ON bars_1m (instrument, bucket, venue)",
    ]


@dataclass(frozen=True)
class Migration:
    """One schema version: a name and its statements per variant."""

    version: int
    name: str
    plain: tuple[str, ...]
    timescale: tuple[str, ...]

    def statements(self, variant: Variant) -> tuple[str, ...]:
        """Return the statements of ``variant``."""
        return self.plain if variant == "plain" else self.timescale

    def checksum(self, variant: Variant) -> str:
        """SHA-256 of the statements (detects an edited, already applied migration)."""
        return hashlib.sha256("\n;\n".join(self.statements(variant)).encode()).hexdigest()


#: All migrations in version order.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables", tuple(_v1_core("plain")), tuple(_v1_core("timescale"))),
    Migration(2, "1-minute bars", tuple(bars_sql("plain")), tuple(bars_sql("timescale"))),
)


def migration_sql(variant: Variant) -> list[str]:
    """Every migration's statements for ``variant``, in order (for review and tests)."""
    return [s for m in MIGRATIONS for s in m.statements(variant)]


def policy_sql(
    chunk_days: int,
    compress_after_days: int | None,
    retention_days: Mapping[str, int | None],
    bars_refresh_days: int,
    tables: Sequence[str] | None = None,
) -> list[sql.Composed]:
    """TimescaleDB policy statements from configuration (idempotent: replace, then add).

    Parameters
    ----------
    chunk_days
        Chunk interval of new chunks.
    compress_after_days
        Compress chunks older than this; ``None`` disables compression policies.
    retention_days
        Table name -> drop chunks older than this many days (``None``: keep).
    bars_refresh_days
        The continuous aggregate's refresh policy covers this many days back.
    tables
        Hypertables to cover (default: every partitioned event table).
    """
    names = (
        list(tables) if tables is not None else [t.name for t in TABLES.values() if t.partitioned]
    )
    out: list[sql.Composed] = []

    def days(n: int) -> sql.Composed:
        return sql.SQL("INTERVAL {}").format(sql.Literal(f"{int(n)} days"))

    for name in names:
        tbl = sql.Literal(name)
        out.append(sql.SQL("SELECT set_chunk_time_interval({}, {})").format(tbl, days(chunk_days)))
        out.append(sql.SQL("SELECT remove_compression_policy({}, if_exists => TRUE)").format(tbl))
        if compress_after_days is not None:
            out.append(
                sql.SQL("SELECT add_compression_policy({}, {}, if_not_exists => TRUE)").format(
                    tbl, days(compress_after_days)
                )
            )
        out.append(sql.SQL("SELECT remove_retention_policy({}, if_exists => TRUE)").format(tbl))
        keep = retention_days.get(name)
        if keep is not None:
            out.append(
                sql.SQL("SELECT add_retention_policy({}, {}, if_not_exists => TRUE)").format(
                    tbl, days(keep)
                )
            )
    bars = sql.Literal("bars_1m")
    out.append(
        sql.SQL("SELECT remove_continuous_aggregate_policy({}, if_exists => TRUE)").format(bars)
    )
    out.append(
        sql.SQL(
            "SELECT add_continuous_aggregate_policy({}, start_offset => {}, "
            "end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', "
            "if_not_exists => TRUE)"
        ).format(bars, days(bars_refresh_days))
    )
    return out
