"""Replay archived events in exchange-time order, as the batches the live path produces.

:func:`replay` reads an instrument set and a time window from either archive
(:class:`~orchestrator.data.archive.Archive` on PostgreSQL or the embedded
:class:`~orchestrator.data.local.LocalArchive`) and yields ``(kind, records)`` batches:

* first, per instrument, the nearest stored book snapshot at or before ``start_ns`` (the
  rows of that snapshot), and the book deltas between it and ``start_ns``, so a consumer
  can rebuild the book as it stood at ``start_ns``;
* then every record of the requested kinds in exchange-time order (ties: the order of
  ``kinds``, then each table's natural key), as runs of one kind - a batch never mixes
  kinds, and consecutive batches of different kinds interleave exactly by time;
* the completeness ledger (``LEDGER`` records: disconnects, gaps, resyncs, stale
  intervals) interleaved at its place in time, so gaps are marked in the stream itself;
  :func:`coverage` gives the same as windows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from orchestrator.data.archive import Coverage
from orchestrator.data.records import DTYPES, RecordKind

__all__ = ["ReplaySource", "coverage", "replay"]

DEFAULT_KINDS = (RecordKind.LEDGER, RecordKind.DELTA, RecordKind.TOP, RecordKind.TRADE)


class ReplaySource(Protocol):
    """What :func:`replay` needs from an archive (both archives provide it)."""

    def read(
        self,
        kind: RecordKind,
        instruments: Sequence[int],
        start_ns: int,
        end_ns: int,
        window_ns: int = ...,
        chunk_rows: int = ...,
    ) -> Iterator[npt.NDArray[np.void]]:
        """Record batches of one kind in exchange-time order."""
        ...

    def coverage(self, venue: int, instrument: int, start_ns: int, end_ns: int) -> Coverage:
        """Complete windows and gaps of one instrument."""
        ...


def _all(
    source: ReplaySource, kind: RecordKind, insts: Sequence[int], a: int, b: int
) -> npt.NDArray[np.void]:
    parts = list(source.read(kind, insts, a, b))
    return np.concatenate(parts) if parts else np.empty(0, dtype=DTYPES[kind])


def _start_books(
    source: ReplaySource, insts: Sequence[int], start_ns: int, lookback_ns: int
) -> Iterator[tuple[RecordKind, npt.NDArray[np.void]]]:
    """Nearest snapshot per instrument at or before ``start_ns`` and the deltas after it."""
    snaps = _all(source, RecordKind.SNAPSHOT, insts, start_ns - lookback_ns, start_ns + 1)
    for inst in insts:
        mine = snaps[snaps["inst"] == inst]
        if not len(mine):
            continue
        t = int(mine["exch_ns"].max())
        last = mine[mine["exch_ns"] == t]
        last = last[last["seq"] == last["seq"].max()]
        yield RecordKind.SNAPSHOT, last
        deltas = _all(source, RecordKind.DELTA, [inst], t, start_ns)
        deltas = deltas[deltas["seq"] > int(last["seq"][0])]
        if len(deltas):
            yield RecordKind.DELTA, deltas


def replay(
    source: ReplaySource,
    instruments: Sequence[int],
    start_ns: int,
    end_ns: int,
    kinds: Sequence[RecordKind] = DEFAULT_KINDS,
    window_ns: int = 60 * 10**9,
    snapshot_lookback_ns: int = 86_400 * 10**9,
) -> Iterator[tuple[RecordKind, npt.NDArray[np.void]]]:
    """Yield ``(kind, records)`` in exchange-time order (see the module docstring).

    Parameters
    ----------
    source
        ``Archive`` or ``LocalArchive``.
    instruments
        Instrument ids.
    start_ns, end_ns
        Half-open exchange-time window.
    kinds
        Record kinds to merge (``LEDGER`` marks gaps; drop it to leave them out). When
        ``DELTA`` is among them, each book starts from its nearest snapshot.
    window_ns
        Time read per step (memory ~ events in one window).
    snapshot_lookback_ns
        How far before ``start_ns`` to look for a snapshot.
    """
    if end_ns <= start_ns or window_ns < 1:
        return
    insts = sorted({int(i) for i in instruments})
    order = [RecordKind(k) for k in kinds]
    if RecordKind.DELTA in order:
        yield from _start_books(source, insts, start_ns, snapshot_lookback_ns)
    t = start_ns
    while t < end_ns:
        u = min(end_ns, t + window_ns)
        arrays = [(k, _all(source, k, insts, t, u)) for k in order]
        arrays = [(k, a) for k, a in arrays if len(a)]
        t = u
        if not arrays:
            continue
        if len(arrays) == 1:
            yield arrays[0]
            continue
        times = np.concatenate([a["exch_ns"] for _, a in arrays])
        which = np.concatenate(
            [np.full(len(a), i, dtype=np.int32) for i, (_, a) in enumerate(arrays)]
        )
        pos = np.concatenate([np.arange(len(a), dtype=np.int64) for _, a in arrays])
        idx = np.lexsort([pos, which, times])  # each array is already in its own order
        which, pos = which[idx], pos[idx]
        cuts = np.flatnonzero(np.diff(which)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(which)], strict=True):
            kind, arr = arrays[int(which[lo])]
            yield kind, arr[pos[lo:hi]]


def coverage(
    source: ReplaySource, venue: int, instruments: Sequence[int], start_ns: int, end_ns: int
) -> dict[int, Coverage]:
    """Completeness of each instrument over the window (``source.coverage`` per instrument)."""
    return {int(i): source.coverage(venue, int(i), start_ns, end_ns) for i in instruments}
