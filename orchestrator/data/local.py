"""The embedded archive: record batches in one SQLite file, same replay API as the server one.

The default (embedded) profile has no PostgreSQL. :class:`LocalArchive` keeps what the
bus carries in a single SQLite database (``<profile.local_archive_dir>/archive.sqlite``,
write-ahead log): one row per *batch and instrument* holding the raw fixed-layout
records as a blob, indexed by record kind, instrument and exchange-time range. Writing
a batch is one ``INSERT`` of bytes (no per-record Python work); reading selects the
blobs overlapping a window, and numpy filters, de-duplicates and orders them.

It keeps the guarantees of :class:`orchestrator.data.archive.Archive`:

* idempotent: records whose natural key (the same key columns as the PostgreSQL tables)
  is already stored are dropped before writing, and an optional ``batch_key`` makes a
  redelivered batch a no-op;
* :meth:`LocalArchive.read` yields batches in exchange-time order (ties: instrument, then
  the natural key), like ``Archive.read``;
* :meth:`LocalArchive.coverage` applies the same completeness-ledger rules
  (:func:`orchestrator.data.archive.coverage_segments`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from orchestrator.data.archive import (
    Archive,
    Coverage,
    InsertResult,
    coverage_segments,
    coverage_windows,
)
from orchestrator.data.migrations import TABLE_OF_KIND
from orchestrator.data.records import DTYPES, LedgerKind, RecordKind, decode_batch
from orchestrator.errors import SlipstreamError

__all__ = ["LocalArchive", "LocalArchiveError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    instrument INTEGER NOT NULL,
    venue INTEGER NOT NULL,
    min_ns INTEGER NOT NULL,
    max_ns INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_lookup ON batches (kind, instrument, min_ns, max_ns);
CREATE TABLE IF NOT EXISTS batch_keys (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('format', 'slipstream-local-archive 1');
"""


class LocalArchiveError(SlipstreamError):
    """The local archive file is unusable (not ours, another version, corrupt)."""


def _key_fields(kind: RecordKind) -> list[str]:
    """Record fields forming the natural key of ``kind`` (the table's key columns)."""
    spec = TABLE_OF_KIND[kind]
    source = {c.name: c.source for c in spec.columns}
    fields = []
    for col in spec.key:
        src = source[col]
        name = "exch_ns" if src == "@ts" else src
        if name not in fields:
            fields.append(name)
    return fields


def _key_view(records: npt.NDArray[np.void], fields: list[str]) -> npt.NDArray[np.void]:
    """Copy the key fields into a compact structured array (for ``np.isin``/``unique``)."""
    out = np.empty(len(records), dtype=[(f, records.dtype[f]) for f in fields])
    for f in fields:
        out[f] = records[f]
    return out


class LocalArchive:
    """Archive in one SQLite file (embedded profile).

    Parameters
    ----------
    path
        Database file (created with its folder if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise LocalArchiveError(f"{self.path}: not a usable archive ({exc})") from None
        if row is None or row[0] != "slipstream-local-archive 1":
            raise LocalArchiveError(f"{self.path}: unknown archive format {row and row[0]!r}")

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def insert_batch(
        self, payload: bytes | bytearray | memoryview, batch_key: str | None = None
    ) -> InsertResult:
        """Store an encoded batch (:func:`orchestrator.data.records.encode_batch`)."""
        kind, records = decode_batch(payload)
        return self.insert(records, kind, batch_key)

    def insert(
        self,
        records: npt.NDArray[np.void],
        kind: RecordKind | None = None,
        batch_key: str | None = None,
    ) -> InsertResult:
        """Store ``records`` exactly once (natural keys; ``batch_key`` skips a redelivery).

        One transaction per call; the result counts as ``Archive.insert``'s does.
        """
        kind = Archive._kind_of(records, kind)
        offered = len(records)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch_key is not None:
                cur = db.execute("INSERT OR IGNORE INTO batch_keys VALUES (?)", (batch_key,))
                if cur.rowcount == 0:
                    db.execute("ROLLBACK")
                    return InsertResult(kind, offered, 0, offered, batch_duplicate=True)
            stored = 0
            fields = _key_fields(kind)
            insts = records["inst"]
            for inst in np.unique(insts):
                part = records[insts == inst]
                part = part[np.argsort(part["exch_ns"], kind="stable")]
                lo, hi = int(part["exch_ns"][0]), int(part["exch_ns"][-1])
                keys = _key_view(part, fields)
                keys, first = np.unique(keys, return_index=True)
                part = part[np.sort(first)]
                keys = _key_view(part, fields)
                old = self._load(kind, [int(inst)], lo, hi + 1)
                if len(old):
                    part = part[~np.isin(keys, _key_view(old, fields))]
                if not len(part):
                    continue
                db.execute(
                    "INSERT INTO batches (kind, instrument, venue, min_ns, max_ns, n, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        int(kind),
                        int(inst),
                        int(part["venue"][0]),
                        int(part["exch_ns"].min()),
                        int(part["exch_ns"].max()),
                        len(part),
                        part.tobytes(),
                    ),
                )
                stored += len(part)
            db.execute("COMMIT")
            return InsertResult(kind, offered, stored, offered - stored)
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- reading ----------------------------------------------------------------------------

    def _load(
        self, kind: RecordKind, instruments: Sequence[int], start_ns: int, end_ns: int
    ) -> npt.NDArray[np.void]:
        marks = ",".join("?" * len(instruments))
        rows = self._db.execute(
            f"SELECT data FROM batches WHERE kind = ? AND instrument IN ({marks}) "
            "AND max_ns >= ? AND min_ns < ? ORDER BY min_ns",
            (int(kind), *instruments, start_ns, end_ns),
        ).fetchall()
        dtype = DTYPES[kind]
        if not rows:
            return np.empty(0, dtype=dtype)
        arr = np.frombuffer(b"".join(r[0] for r in rows), dtype=dtype)
        sel = (arr["exch_ns"] >= start_ns) & (arr["exch_ns"] < end_ns)
        return arr[sel].copy()

    def read(
        self,
        kind: RecordKind,
        instruments: Sequence[int],
        start_ns: int,
        end_ns: int,
        window_ns: int = 3600 * 10**9,
        chunk_rows: int = 1 << 20,
    ) -> Iterator[npt.NDArray[np.void]]:
        """Record batches with ``start_ns <= exch_ns < end_ns``, as ``Archive.read`` gives them.

        Exchange-time order; ties by instrument, then the natural key. At most
        ``chunk_rows`` records per batch, read ``window_ns`` of time at a time.
        """
        kind = RecordKind(kind)
        if window_ns < 1 or chunk_rows < 1:
            raise ValueError(
                f"window_ns and chunk_rows must be >= 1, were {window_ns}, {chunk_rows}"
            )
        ids = sorted({int(i) for i in instruments})
        if not ids or end_ns <= start_ns:
            return
        fields = _key_fields(kind)
        order = ["exch_ns", "inst", *[f for f in fields if f not in ("exch_ns", "inst", "venue")]]
        t = start_ns
        while t < end_ns:
            u = min(end_ns, t + window_ns)
            arr = self._load(kind, ids, t, u)
            if len(arr):
                arr = arr[np.lexsort([arr[f] for f in reversed(order)])]
                for off in range(0, len(arr), chunk_rows):
                    yield arr[off : off + chunk_rows]
            t = u

    def count(self, kind: RecordKind) -> int:
        """Return how many records of ``kind`` are stored."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(n), 0) FROM batches WHERE kind = ?", (int(kind),)
        ).fetchone()
        return int(row[0])

    def coverage(self, venue: int, instrument: int, start_ns: int, end_ns: int) -> Coverage:
        """Complete windows and gaps of one instrument (same rules as ``Archive.coverage``)."""
        if end_ns <= start_ns:
            raise ValueError(f"end_ns must be after start_ns, were {start_ns}, {end_ns}")
        ledger = self._load(RecordKind.LEDGER, [instrument], -(2**62), 2**62)
        ledger = ledger[ledger["venue"] == venue]
        ledger = ledger[np.lexsort([ledger["kind"], ledger["recv_ns"], ledger["exch_ns"]])]
        starts = ledger["exch_ns"][
            (ledger["kind"] == LedgerKind.START) & (ledger["exch_ns"] <= start_ns)
        ]
        lo = int(starts.max()) if len(starts) else start_ns
        inside = ledger[(ledger["exch_ns"] >= lo) & (ledger["exch_ns"] < end_ns)]
        after = ledger[ledger["exch_ns"] >= end_ns]
        events = [(int(t), int(k)) for t, k in zip(inside["exch_ns"], inside["kind"], strict=True)]

        def last_data(a: int, b: int) -> int | None:
            best: int | None = None
            for kind in (RecordKind.TRADE, RecordKind.DELTA, RecordKind.TOP):
                arr = self._load(kind, [instrument], a, b)
                arr = arr[arr["venue"] == venue]
                if len(arr):
                    m = int(arr["exch_ns"].max())
                    best = m if best is None else max(best, m)
            return best

        segs = coverage_segments(
            events, lo, end_ns, last_data, int(after["kind"][0]) if len(after) else None
        )
        complete, gaps = coverage_windows(segs, start_ns, end_ns)
        return Coverage(venue, instrument, start_ns, end_ns, complete, gaps)

    def stats(self) -> dict[str, Any]:
        """Batches and records per kind."""
        rows = self._db.execute(
            "SELECT kind, COUNT(*), SUM(n) FROM batches GROUP BY kind"
        ).fetchall()
        return {RecordKind(k).name.lower(): {"batches": b, "records": n} for k, b, n in rows}
