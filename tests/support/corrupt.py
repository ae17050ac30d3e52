"""Corruption tools: damaged copies of a capture, for testing that verifiers notice.

Load a capture set with :func:`load_frames` (any input format, replay order as in
:mod:`tests.support.reference`), damage the frame list with one of the functions
below, and write it with :func:`write_raw` as a single ``slipstream-raw`` file that
every verifier reads in file order. The functions never modify their input list.

Each kind, with the ``pick_*`` helper that chooses a frame where the damage is
observable, and what :func:`tests.support.reference.verify_reference` reports:

======================  ==========================  ======================================
damage                  Binance (spot / futures)    OKX ``books`` (2022 captures, no seqId)
======================  ==========================  ======================================
:func:`drop_frame`      1 ``sequence_gaps``         ``checksums.mismatched`` >= 1
                        (``U != prev_u+1`` /
                        ``pu != prev_u``)
:func:`change_size`     ``book_ticker.mismatched``  ``checksums.mismatched`` >= 1
                        >= 1, 0 gaps
:func:`swap_frames`     1 ``sequence_gaps``         ``checksums.mismatched`` >= 1
:func:`duplicate_frame` 1 ``sequence_gaps`` (strict ``checksums.mismatched`` >= 1 (the
                        continuity: a repeated      copy is re-inserted after the next
                        diff is not its successor)  update; an adjacent copy would be a
                                                    no-op, as levels are absolute). With
                                                    ``seqId`` it is 1 ``sequence_gaps``.
======================  ==========================  ======================================

A gap puts a Binance book out of sync until the next snapshot, so a capture with a
single snapshot shows exactly one gap and no later comparisons for that symbol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator.capture import CaptureFrame, RawCaptureWriter
from tests.support.reference import (
    OKX_BOOK_CHANNELS,
    OKX_SNAPSHOT_ONLY_CHANNELS,
    BookStats,
    OkxBook,
    read_frames,
)

__all__ = [
    "BookMessage",
    "book_message",
    "change_size",
    "drop_frame",
    "duplicate_frame",
    "load_frames",
    "pick_binance_size_change",
    "pick_book_diff",
    "pick_okx_duplicate",
    "pick_okx_size_change",
    "pick_swap",
    "swap_frames",
    "write_raw",
]


# ---------------------------------------------------------------------------- load/save


def load_frames(paths: Iterable[Path | str]) -> list[CaptureFrame]:
    """Read a capture set into memory in replay order (see ``reference.read_frames``)."""
    return [frame for _, frame in read_frames(list(paths))]


def write_raw(frames: Iterable[CaptureFrame], path: Path | str) -> Path:
    """Write ``frames`` in order to a new ``slipstream-raw`` file and return its path."""
    out = Path(path)
    with RawCaptureWriter(out, mode="w", flush_every=10_000) as writer:
        for frame in frames:
            writer.write(frame)
    return out


# ------------------------------------------------------------------------ classification


class BookMessage(NamedTuple):
    """A decoded order-book message of a frame.

    Attributes
    ----------
    key
        Instrument: ``("binance", market, symbol)`` or ``("okx", channel, instId)``.
    kind
        ``"snapshot"`` or ``"diff"``.
    data
        The Binance event / REST body, or the OKX ``data[0]`` item.
    """

    key: tuple[str, str, str]
    kind: str
    data: dict[str, Any]


def book_message(frame: CaptureFrame) -> BookMessage | None:
    """Decode ``frame`` if it is an order-book snapshot or diff, else return ``None``.

    Binance REST snapshots without a symbol (hftbacktest) get symbol ``""``.
    """
    if frame.kind not in ("ws", "rest"):
        return None
    try:
        message = json.loads(frame.payload)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if frame.venue == "okx":
        arg = message.get("arg")
        if not isinstance(arg, dict) or arg.get("channel") not in OKX_BOOK_CHANNELS:
            return None
        if "event" in message or not message.get("data"):
            return None
        channel = arg["channel"]
        snapshot = channel in OKX_SNAPSHOT_ONLY_CHANNELS or message.get("action") == "snapshot"
        key = ("okx", channel, arg["instId"])
        return BookMessage(key, "snapshot" if snapshot else "diff", message["data"][0])
    if frame.venue != "binance":
        return None
    if frame.kind == "rest":
        if "lastUpdateId" not in message:
            return None
        m = re.search(r"[?&]symbol=([^&]+)", frame.source)
        symbol = message.get("symbol") or (m.group(1) if m else "")
        return BookMessage(("binance", frame.market, str(symbol).upper()), "snapshot", message)
    data = message.get("data") if "stream" in message else message
    if isinstance(data, dict) and data.get("e") == "depthUpdate":
        return BookMessage(("binance", frame.market, data["s"]), "diff", data)
    return None


def _book_messages(frames: Sequence[CaptureFrame]) -> list[BookMessage | None]:
    return [book_message(f) for f in frames]


# ---------------------------------------------------------------------------- damage


def drop_frame(frames: Sequence[CaptureFrame], index: int) -> list[CaptureFrame]:
    """Return a copy of ``frames`` without frame ``index``."""
    _check_index(frames, index)
    return [*frames[:index], *frames[index + 1 :]]


def swap_frames(frames: Sequence[CaptureFrame], i: int, j: int) -> list[CaptureFrame]:
    """Return a copy of ``frames`` with frames ``i`` and ``j`` exchanged (times kept with them)."""
    _check_index(frames, i)
    _check_index(frames, j)
    out = list(frames)
    out[i], out[j] = out[j], out[i]
    return out


def duplicate_frame(
    frames: Sequence[CaptureFrame], index: int, at: int | None = None
) -> list[CaptureFrame]:
    """Return a copy of ``frames`` with frame ``index`` repeated.

    Parameters
    ----------
    frames
        The capture.
    index
        Frame to repeat.
    at
        Position of the copy in the result (default ``index + 1``: right after the
        original). The copy is byte-identical, including its ``recv_ns``.
    """
    _check_index(frames, index)
    pos = index + 1 if at is None else at
    if not 0 <= pos <= len(frames):
        raise IndexError(f"insert position {pos} outside 0..{len(frames)}")
    return [*frames[:pos], frames[index], *frames[pos:]]


def change_size(
    frames: Sequence[CaptureFrame],
    index: int,
    side: str | None = None,
    price: str | None = None,
) -> list[CaptureFrame]:
    """Return a copy of ``frames`` where one level size of book message ``index`` is changed.

    The size ``q`` becomes ``q + 1`` (same number of decimals, still non-zero), edited
    in place in the payload bytes: everything else stays byte-identical and the
    payload stays valid JSON.

    Parameters
    ----------
    frames
        The capture.
    index
        A Binance diff or snapshot, or an OKX book message.
    side
        ``"bid"`` or ``"ask"``; with ``price`` names the level. By default the first
        level with a non-zero size, bids first.
    price
        The level's price string exactly as in the payload.
    """
    _check_index(frames, index)
    frame = frames[index]
    msg = book_message(frame)
    if msg is None:
        raise ValueError(f"frame {index} is not an order-book message")
    keys = _side_keys(frame.venue, frame.kind)
    if side is None or price is None:
        side, price = _first_nonzero_level(msg.data, keys)
    levels = msg.data[keys[side]]
    sizes = [lvl[1] for lvl in levels if lvl[0] == price]
    if len(sizes) != 1:
        raise ValueError(f"frame {index}: {side} price {price!r} occurs {len(sizes)} times")
    old_size = sizes[0]
    new_size = str(Decimal(old_size) + 1)
    payload = _replace_level(frame.payload, keys[side], price, old_size, new_size)
    changed = book_message(frame._replace(payload=payload))
    assert changed is not None
    check = [lvl[1] for lvl in changed.data[keys[side]] if lvl[0] == price]
    assert check == [new_size], (check, new_size)
    out = list(frames)
    out[index] = frame._replace(payload=payload)
    return out


def _check_index(frames: Sequence[CaptureFrame], index: int) -> None:
    if not 0 <= index < len(frames):
        raise IndexError(f"frame index {index} outside 0..{len(frames) - 1}")


def _side_keys(venue: str, kind: str) -> dict[str, str]:
    if venue == "okx" or kind == "rest":
        return {"bid": "bids", "ask": "asks"}
    return {"bid": "b", "ask": "a"}


def _first_nonzero_level(data: dict[str, Any], keys: dict[str, str]) -> tuple[str, str]:
    for side in ("bid", "ask"):
        for level in data.get(keys[side], ()):
            if Decimal(level[1]) != 0:
                return side, level[0]
    raise ValueError("the message has no non-zero level to change")


def _replace_level(payload: bytes, key: str, price: str, old: str, new: str) -> bytes:
    """Replace ``["price","old"`` by ``["price","new"`` inside the ``key`` array."""
    start = re.search(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*\[', payload)
    if start is None:
        raise ValueError(f"no {key!r} array in the payload")
    needle = re.compile(
        rb'\[\s*"' + re.escape(price.encode()) + rb'"\s*,\s*"' + re.escape(old.encode()) + rb'"'
    )
    m = needle.search(payload, start.end() - 1)
    if m is None:
        raise ValueError(f"level [{price!r}, {old!r}] not found in {key!r}")
    level = m.group()
    replaced = level[: level.rindex(old.encode())] + new.encode() + b'"'
    return payload[: m.start()] + replaced + payload[m.end() :]


# ---------------------------------------------------------------------------- pickers


def _applied_diffs(
    msgs: Sequence[BookMessage | None], venue: str | None
) -> list[tuple[int, BookMessage]]:
    """``(index, message)`` of the diffs a replay applies (after a snapshot, not covered).

    A Binance snapshot without a symbol (hftbacktest) stands for every symbol of its
    market. Only the snapshot rule is checked (``u > L`` spot, ``u >= L`` futures);
    the clean fixtures have no gaps.
    """
    snaps: dict[tuple[str, str, str], int] = {}
    out: list[tuple[int, BookMessage]] = []
    for i, msg in enumerate(msgs):
        if msg is None or (venue is not None and msg.key[0] != venue):
            continue
        if msg.kind == "snapshot":
            snaps[msg.key] = int(msg.data.get("lastUpdateId", 0))
            continue
        if msg.key[0] == "okx":
            if msg.key in snaps:
                out.append((i, msg))
            continue
        wildcard = (msg.key[0], msg.key[1], "")
        snap = snaps.get(msg.key, snaps.get(wildcard))
        if snap is None:
            continue
        u = int(msg.data["u"])
        if u > snap or ("pu" in msg.data and u == snap):
            out.append((i, msg))
    return out


def pick_book_diff(
    frames: Sequence[CaptureFrame], venue: str | None = None, *, start: float = 0.5
) -> int:
    """Index of an applied book diff in the middle of the capture, followed by another.

    The first diff at or after ``start * len(frames)`` (of ``venue`` if given) that a
    replay applies (its instrument had a snapshot that does not cover it) and that is
    followed by another diff of the same instrument, so the damage has a consequence.
    """
    first = int(len(frames) * start)
    candidate: dict[tuple[str, str, str], int] = {}
    for i, msg in _applied_diffs(_book_messages(frames), venue):
        if msg.key in candidate:
            return candidate[msg.key]
        if i >= first:
            candidate[msg.key] = i
    raise ValueError("no applied book diff followed by another diff of its instrument")


def pick_swap(
    frames: Sequence[CaptureFrame], venue: str | None = None, *, start: float = 0.5
) -> tuple[int, int]:
    """Indices of two consecutive applied diffs of one instrument, for :func:`swap_frames`.

    For OKX the pair is one where applying the second before the first leaves a
    book whose checksum differs from the second's (checked by replaying the
    clean capture), so the swap is observable.
    """
    first = int(len(frames) * start)
    msgs = _book_messages(frames)
    applied = dict(_applied_diffs(msgs, venue))
    books: dict[tuple[str, str, str], OkxBook] = {}
    #: Per instrument: the last applied diff's index and the book before it.
    last: dict[tuple[str, str, str], tuple[int, OkxBook | None]] = {}
    for i, msg in enumerate(msgs):
        if msg is None or (venue is not None and msg.key[0] != venue):
            continue
        before: OkxBook | None = None
        if msg.key[0] == "okx":
            book = books.setdefault(msg.key, _scratch_okx())
            before = _okx_copy(book)
            book.apply(msg.data, snapshot=msg.kind == "snapshot")
        if i not in applied:
            if msg.kind == "snapshot":
                last.pop(msg.key, None)
            continue
        prev = last.get(msg.key)
        if prev is not None and prev[0] >= first:
            if msg.key[0] != "okx":
                return prev[0], i
            book_before_prev = prev[1]
            assert book_before_prev is not None
            if msg.data.get("checksum"):
                book_before_prev.apply(msg.data, snapshot=False)
                if book_before_prev.checksum() != int(msg.data["checksum"]):
                    return prev[0], i
        last[msg.key] = (i, before)
    raise ValueError("no pair of consecutive diffs whose swap is observable")


def _scratch_okx() -> OkxBook:
    return OkxBook(BookStats("okx", "", "", ""))


def _okx_copy(book: OkxBook) -> OkxBook:
    copy = OkxBook(stats=book.stats)
    copy.bids = book.bids.copy()
    copy.asks = book.asks.copy()
    return copy


def pick_binance_size_change(
    frames: Sequence[CaptureFrame], *, start: float = 0.5
) -> tuple[int, str, str]:
    """Choose a Binance diff level whose changed size a bookTicker cross-check catches.

    Returns ``(index, side, price)`` of a diff at or after ``start * len(frames)``
    that ends at the ``u`` of a bookTicker of the same symbol (received before the
    next diff of that symbol) and sets that ticker's best bid (or ask) level. After
    :func:`change_size` the book's best quantity differs from the ticker's.
    """
    first = int(len(frames) * start)
    tickers: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    pending: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for i, frame in enumerate(frames):
        if frame.venue != "binance" or frame.kind != "ws":
            continue
        message = json.loads(frame.payload)
        data = message.get("data") if "stream" in message else message
        if not isinstance(data, dict):
            continue
        event = data.get("e")
        if event == "depthUpdate":
            key = (frame.market, data["s"])
            # A diff is a candidate until the next diff of its symbol arrives.
            done = pending.pop(key, None)
            if done is not None:
                found = _ticker_level(done[1], tickers.get(key, {}).get(int(done[1]["u"])))
                if found is not None:
                    return done[0], *found
            # Keep the tickers this diff (or a later one) can still end at.
            tickers[key] = {u: t for u, t in tickers.get(key, {}).items() if u >= int(data["u"])}
            if i >= first:
                pending[key] = (i, data)
        elif event == "bookTicker" or (event is None and "u" in data and "B" in data):
            tickers.setdefault((frame.market, data["s"]), {})[int(data["u"])] = data
    for key, (i, data) in pending.items():
        found = _ticker_level(data, tickers.get(key, {}).get(int(data["u"])))
        if found is not None:
            return i, *found
    raise ValueError("no diff whose changed level a bookTicker comparison would see")


def _ticker_level(diff: dict[str, Any], ticker: dict[str, Any] | None) -> tuple[str, str] | None:
    if ticker is None:
        return None
    for side, dkey, tkey in (("bid", "b", "b"), ("ask", "a", "a")):
        for px, qty in diff[dkey]:
            if Decimal(px) == Decimal(ticker[tkey]) and Decimal(qty) != 0:
                return side, px
    return None


def pick_okx_size_change(
    frames: Sequence[CaptureFrame], *, start: float = 0.5
) -> tuple[int, str, str]:
    """Choose an OKX book update level inside the checksum's top 25 after it is applied.

    Returns ``(index, side, price)``; changing that size makes the message's own
    checksum mismatch.
    """
    first = int(len(frames) * start)
    books: dict[tuple[str, str, str], OkxBook] = {}
    for i, msg in enumerate(_book_messages(frames)):
        if msg is None or msg.key[0] != "okx":
            continue
        book = books.setdefault(msg.key, _scratch_okx())
        book.apply(msg.data, snapshot=msg.kind == "snapshot")
        if i < first or msg.kind != "diff" or not msg.data.get("checksum"):
            continue
        bids, asks = book.top()
        top = {("bid", px) for px, _ in bids} | {("ask", px) for px, _ in asks}
        for side, key in (("bid", "bids"), ("ask", "asks")):
            for level in msg.data.get(key, ()):
                if Decimal(level[1]) != 0 and (side, level[0]) in top:
                    return i, side, level[0]
    raise ValueError("no OKX update with a non-zero level in the top 25")


def pick_okx_duplicate(frames: Sequence[CaptureFrame], *, start: float = 0.5) -> tuple[int, int]:
    """Choose an OKX update and where to re-insert its copy so the repeat is observable.

    Returns ``(index, at)`` for :func:`duplicate_frame`: the copy goes right after
    the next update of the same instrument, and re-applying it there leaves a book
    whose checksum differs from the one the copy carries.
    """
    first = int(len(frames) * start)
    books: dict[tuple[str, str, str], OkxBook] = {}
    last: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}
    for i, msg in enumerate(_book_messages(frames)):
        if msg is None or msg.key[0] != "okx":
            continue
        book = books.setdefault(msg.key, _scratch_okx())
        book.apply(msg.data, snapshot=msg.kind == "snapshot")
        prev = last.get(msg.key)
        if msg.kind == "snapshot":
            last.pop(msg.key, None)
            continue
        if prev is not None and prev[0] >= first and prev[1].get("checksum"):
            replay = _okx_copy(book)
            replay.apply(prev[1], snapshot=False)
            if replay.checksum() != int(prev[1]["checksum"]):
                return prev[0], i + 1
        last[msg.key] = (i, msg.data)
    raise ValueError("no OKX update whose repeat would change the checksum")
