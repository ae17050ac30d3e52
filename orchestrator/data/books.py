"""Rebuild order books from archived or published book deltas and snapshots.

The collectors publish every change of a book as :data:`~orchestrator.data.records.DELTA_DTYPE`
rows (``md:<exchange>:<symbol>:deltas``) and, periodically, the whole book as
:data:`~orchestrator.data.records.SNAPSHOT_DTYPE` rows; :func:`orchestrator.data.replay.replay`
yields the nearest stored snapshot and the deltas after it. :class:`ReplayBooks` turns
either stream back into :class:`ext.book.OrderBook` objects.

Rows are grouped by venue message: ``(inst, exch_ns, seq)``. A group whose rows carry
:data:`~orchestrator.data.records.FLAG_SNAPSHOT` replaced the whole book when the feed
(re)loaded it, so it does here too; any other group is applied level by level (size 0 =
removed). The order inside a group does not matter (a message never names a price twice),
so rows may come in the archive's key order as well as in the feed's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from ext.book import OrderBook
from orchestrator.data.records import ASK, BID, DELTA_DTYPE, FLAG_SNAPSHOT, SNAPSHOT_DTYPE
from orchestrator.errors import SlipstreamError

__all__ = ["ReplayBooks", "ReplayBooksError"]


class ReplayBooksError(SlipstreamError, ValueError):
    """Rows that cannot be applied: unknown dtype or instrument, or out of range values."""


class ReplayBooks:
    """Order books per instrument id, rebuilt from delta and snapshot rows.

    Parameters
    ----------
    scales
        ``{inst: (price_scale, size_scale)}``: the scales the rows are expressed at (the
        instrument's registered scales). Rows of other instruments raise.
    capacity
        Initial levels per side of each book.
    """

    def __init__(self, scales: Mapping[int, tuple[int, int]], capacity: int = 64) -> None:
        self._scales = {int(k): (int(v[0]), int(v[1])) for k, v in scales.items()}
        self._capacity = capacity
        self.books: dict[int, OrderBook] = {}
        #: seq of the last group applied per instrument (-1 before any)
        self.last_seq: dict[int, int] = {}
        #: exch_ns of the last group applied per instrument
        self.last_ns: dict[int, int] = {}
        self._snap_seq: dict[int, int] = {}
        self.messages = 0
        self.snapshots = 0

    def book(self, inst: int) -> OrderBook:
        """Return the book of ``inst`` (created empty on first use)."""
        b = self.books.get(inst)
        if b is None:
            if inst not in self._scales:
                raise ReplayBooksError(f"no scales for instrument {inst}")
            ps, ss = self._scales[inst]
            b = OrderBook(price_scale=ps, size_scale=ss, capacity=self._capacity)
            self.books[inst] = b
        return b

    def apply(self, rows: npt.NDArray[np.void]) -> None:
        """Apply ``DELTA_DTYPE`` or ``SNAPSHOT_DTYPE`` rows (in time order between groups).

        Raises
        ------
        ReplayBooksError
            For another dtype, an instrument without scales or a level out of range.
        """
        if not isinstance(rows, np.ndarray) or rows.dtype not in (DELTA_DTYPE, SNAPSHOT_DTYPE):
            got = rows.dtype if isinstance(rows, np.ndarray) else type(rows).__name__
            raise ReplayBooksError(f"rows must be DELTA_DTYPE or SNAPSHOT_DTYPE, was {got}")
        if not len(rows):
            return
        snapshot_rows = rows.dtype == SNAPSHOT_DTYPE
        inst = rows["inst"]
        ts = rows["exch_ns"]
        seq = rows["seq"]
        new = np.empty(len(rows), dtype=bool)
        new[0] = True
        new[1:] = (inst[1:] != inst[:-1]) | (ts[1:] != ts[:-1]) | (seq[1:] != seq[:-1])
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], len(rows)]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            part = rows[lo:hi]
            i = int(inst[lo])
            s = int(seq[lo])
            full = snapshot_rows or bool(part["flags"][0] & FLAG_SNAPSHOT)
            if not full and s <= self._snap_seq.get(i, -(2**62)) and s >= 0:
                continue  # already inside the snapshot this book was loaded from
            self._group(i, part, full)
            if full:
                self._snap_seq[i] = s
                self.snapshots += 1
            else:
                self._snap_seq.pop(i, None)
            self.last_seq[i] = s
            self.last_ns[i] = int(ts[lo])
            self.messages += 1

    def apply_all(self, batches: Iterable[npt.NDArray[np.void]]) -> None:
        """:meth:`apply` every array of ``batches`` in turn."""
        for rows in batches:
            self.apply(rows)

    def _group(self, inst: int, part: npt.NDArray[np.void], full: bool) -> None:
        book = self.book(inst)
        side = part["side"]
        if np.any((side != BID) & (side != ASK)):
            raise ReplayBooksError(f"instrument {inst}: side must be {BID} or {ASK}")
        prices = np.ascontiguousarray(part["price"], dtype=np.int64)
        sizes = np.ascontiguousarray(part["size"], dtype=np.int64)
        try:
            if full:
                b = side == BID
                a = ~b
                bp, bs = prices[b], sizes[b]
                ap, az = prices[a], sizes[a]
                ob, oa = np.argsort(-bp, kind="stable"), np.argsort(ap, kind="stable")
                book.load_snapshot(bp[ob], bs[ob], ap[oa], az[oa], int(part["seq"][0]))
            else:
                book.apply_batch(side.astype(np.int8), prices, sizes)
        except ValueError as exc:
            raise ReplayBooksError(f"instrument {inst}: {exc}") from None
