r"""Readers for recorded captures, one per recorder format, and format detection.

Every reader returns a :class:`~orchestrator.capture.records.CaptureReader`: an
iterator of :class:`~orchestrator.capture.records.CaptureFrame` that reads the
file one line at a time (plain or gzip, recognised by magic bytes), keeps each
payload byte-for-byte, and raises
:class:`~orchestrator.capture.records.CaptureFormatError` with ``path:line`` on
the first malformed line. Blank lines carry nothing and are passed over.

Formats (names as returned by :func:`detect_format`):

``hftbacktest``
    hftbacktest's Binance collector. Each line is ``<local_recv_ns> <json>``;
    ``json`` is a combined-stream frame ``{"stream":"ethusdt@trade","data":{...}}``
    (kind ``ws``, ``conn_id`` the stream name) or a REST depth snapshot
    ``{"lastUpdateId":...}`` (kind ``rest``, empty ``conn_id`` and ``source``: the
    collector keeps no URL). The market comes from the file's directory when it
    is named ``spot``, ``usdm``, ``cm`` or ``coinm`` (the collector's layout);
    otherwise from the first messages
    (symbols with ``_`` are COIN-M, ``pu`` / a futures-style ``bookTicker`` /
    a snapshot with ``E`` mean USD-M, the rest spot), else ``unknown``.
``cryptofeed``
    cryptofeed's raw recorder (``*.ws.*`` and ``*.http.*`` files). Lines are
    ``<url> <-> <ts>`` (connection opened: kind ``meta``, the whole line as
    payload), ``<url> <- <ts>: <json>`` (kind ``sent``), ``<ts>: <json>``
    (received, kind ``ws``, ``conn_id`` the URL of the latest ``<->`` line) and
    ``<url> -> <ts>: <json>`` (kind ``rest``, ``source`` the URL). ``<ts>`` is
    epoch seconds written by Python's float ``repr``; it is converted to
    nanoseconds by decimal string arithmetic (digits past the ninth decimal
    are truncated), never through a float. Venue and market come from the
    file name prefix (``BINANCE``/``BINANCE_US`` spot, ``BINANCE_FUTURES``
    usdm, ``BINANCE_DELIVERY`` coinm, ``OKX`` unknown: OKX instrument types
    come from ``instId`` later), else from the host of the first URL.
``okx-jsonl``
    One OKX v5 push message per line, as in gocryptotrader's test data (last
    line may lack ``\n``). Kind ``ws``, market ``unknown``, empty ``conn_id``.
    The file stores no receive time and ``recv_ns`` is **0**: the ``ts`` inside
    the message is the exchange's time, and using it would pass an exchange
    clock off as a local one (they differ by a second or more in real data).
``slipstream-raw``
    Slipstream's own format, see :mod:`orchestrator.capture.raw`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

from orchestrator.capture.raw import RAW_FORMAT_NAME, read_raw
from orchestrator.capture.records import (
    CaptureFormatError,
    CaptureFrame,
    CaptureReader,
    open_capture_file,
)

__all__ = [
    "FORMATS",
    "detect_format",
    "read_capture",
    "read_cryptofeed",
    "read_hftbacktest",
    "read_okx_jsonl",
    "seconds_to_ns",
]

#: Format names :func:`detect_format` returns and :func:`read_capture` accepts.
FORMATS = ("hftbacktest", "cryptofeed", "okx-jsonl", RAW_FORMAT_NAME)

#: Longest first line :func:`detect_format` reads (CF header URLs run to kilobytes).
_DETECT_LIMIT = 1 << 20
#: Lines :func:`read_hftbacktest` inspects to infer the market when the path is silent.
_MARKET_PEEK_LINES = 2000

_TS = rb"(\d+(?:\.\d+)?)"
_CF_OPEN = re.compile(rb"(\S+) <-> " + _TS + rb"\Z")
_CF_SENT = re.compile(rb"(\S+) <- " + _TS + rb": ")
_CF_REST = re.compile(rb"(\S+) -> " + _TS + rb": ")
_CF_RECV = re.compile(_TS + rb": ")
_HB_FIRST = re.compile(rb"\d+ \{")
_OKX_FIRST = re.compile(rb'\{\s*"(arg|event|op|id)"\s*:')
_TIMESTAMP = re.compile(rb"\d+(?:\.\d+)?\Z")

_HB_PATH_MARKETS = {"spot": "spot", "usdm": "usdm", "cm": "coinm", "coinm": "coinm"}
_CF_PREFIXES = {
    "BINANCE": ("binance", "spot"),
    "BINANCE_US": ("binance", "spot"),
    "BINANCE_FUTURES": ("binance", "usdm"),
    "BINANCE_DELIVERY": ("binance", "coinm"),
    "OKX": ("okx", "unknown"),
}
_HOST_MARKETS = (
    ("fstream.binance.com", ("binance", "usdm")),
    ("fapi.binance.com", ("binance", "usdm")),
    ("dstream.binance.com", ("binance", "coinm")),
    ("dapi.binance.com", ("binance", "coinm")),
    ("binance.com", ("binance", "spot")),
    ("binance.us", ("binance", "spot")),
    ("okx.com", ("okx", "unknown")),
)
_URL_HOST = re.compile(rb"[a-z]+://([^/:?]+)")


def seconds_to_ns(text: bytes | str) -> int:
    """Convert decimal epoch seconds, as written, to integer nanoseconds exactly.

    Parameters
    ----------
    text
        ``"1633998512.0633569"`` or ``"1633998512"``; digits past the ninth
        decimal are truncated.

    Returns
    -------
    int
        ``1633998512063356900`` for the first example.

    Raises
    ------
    ValueError
        If ``text`` is not digits with an optional fraction.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not _TIMESTAMP.match(raw):
        raise ValueError(f"timestamp must be decimal seconds, was {text!r}")
    whole, _, frac = raw.partition(b".")
    return int(whole) * 1_000_000_000 + int(frac[:9].ljust(9, b"0"))


def detect_format(path: str | os.PathLike[str]) -> str:
    """Tell a capture file's format from its content (magic bytes and first line).

    Parameters
    ----------
    path
        The capture file; its name is not used.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    CaptureFormatError
        If the file is empty or its first non-blank line matches no format.
    """
    line_no, line = _first_line(path)
    if line.startswith(RAW_FORMAT_NAME.encode() + b"\t"):
        return RAW_FORMAT_NAME
    if _HB_FIRST.match(line):
        return "hftbacktest"
    if _CF_OPEN.match(line) or _CF_SENT.match(line) or _CF_REST.match(line) or _CF_RECV.match(line):
        return "cryptofeed"
    if _OKX_FIRST.match(line):
        return "okx-jsonl"
    raise CaptureFormatError(
        f"unrecognised capture format, line starts with {line[:80]!r}", path, line_no
    )


def _first_line(path: str | os.PathLike[str]) -> tuple[int, bytes]:
    with open_capture_file(path) as stream:
        line_no = 0
        try:
            while line := stream.readline(_DETECT_LIMIT):
                line_no += 1
                line = line.rstrip(b"\r\n")
                if line.strip():
                    return line_no, line
        except EOFError:
            raise CaptureFormatError(
                "gzip stream ends before the first line is complete", path, line_no + 1
            ) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise CaptureFormatError(
                f"corrupt compressed data ({exc})", path, line_no + 1
            ) from None
    raise CaptureFormatError("empty file (no non-blank line)", path, None)


def read_capture(path: str | os.PathLike[str], format: str = "auto") -> CaptureReader:
    """Read any supported capture file, one frame at a time.

    Parameters
    ----------
    path
        The capture file.
    format
        ``"auto"`` (detect from content) or one of :data:`FORMATS`.

    Returns
    -------
    CaptureReader
        Iterator over the file's frames.

    Raises
    ------
    ValueError
        If ``format`` is not ``"auto"`` or a known format.
    CaptureFormatError
        If the format cannot be detected or a line is malformed.
    """
    name = detect_format(path) if format == "auto" else format
    try:
        reader = _READERS[name]
    except KeyError:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, was {format!r}") from None
    return reader(path)


# ---------------------------------------------------------------------------- hftbacktest


def read_hftbacktest(path: str | os.PathLike[str]) -> CaptureReader:
    """Read an hftbacktest Binance collector file (``<local_recv_ns> <json>`` lines).

    Parameters
    ----------
    path
        The file, usually gzip, e.g. ``.../spot/ethusdt_20240808.gz``.

    Returns
    -------
    CaptureReader
        Frames of venue ``binance``: combined-stream frames as kind ``ws`` with the
        stream name as ``conn_id``, the depth snapshot as kind ``rest``.
    """
    file_path = Path(path)
    market = _hb_market_from_path(file_path) or _hb_market_from_content(file_path)

    def parse_line(line_no: int, line: bytes) -> CaptureFrame | None:
        if not line:
            return None
        recv, _, payload = line.partition(b" ")
        if not recv.isdigit() or payload[:1] != b"{" or payload[-1:] != b"}":
            raise CaptureFormatError(
                f"expected '<recv_ns> <json object>', got {line[:80]!r}", file_path, line_no
            )
        if payload.startswith(b'{"stream":"'):
            end = payload.find(b'"', 11)
            try:
                stream = payload[11:end].decode("utf-8")
            except UnicodeDecodeError:
                raise CaptureFormatError("stream name is not UTF-8", file_path, line_no) from None
            return CaptureFrame(int(recv), "binance", market, stream, "ws", "", payload)
        if payload.startswith(b'{"lastUpdateId":'):
            return CaptureFrame(int(recv), "binance", market, "", "rest", "", payload)
        raise CaptureFormatError(
            f"neither a combined-stream frame nor a depth snapshot: {payload[:60]!r}",
            file_path,
            line_no,
        )

    return CaptureReader(file_path, "hftbacktest", parse_line)


def _hb_market_from_path(path: Path) -> str | None:
    return _HB_PATH_MARKETS.get(path.parent.name)


def _hb_market_from_content(path: Path) -> str:
    with open_capture_file(path) as stream:
        try:
            for line in islice(stream, _MARKET_PEEK_LINES):
                _, _, payload = line.partition(b" ")
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue  # the reader reports malformed lines with their number
                hint = _binance_market_hint(message) if isinstance(message, dict) else None
                if hint is not None:
                    return hint
        except (EOFError, gzip.BadGzipFile, zlib.error):
            pass  # the reader reports a damaged file with its line number
    return "unknown"


def _binance_market_hint(message: dict[str, Any]) -> str | None:
    """Guess spot / usdm / coinm from one Binance message, or ``None`` if it cannot tell."""
    if "lastUpdateId" in message:
        if "_" in str(message.get("symbol", "")):
            return "coinm"
        return "usdm" if "E" in message else "spot"
    data = message.get("data")
    if not isinstance(data, dict):
        return None
    if "_" in str(data.get("s", "")) or "ps" in data:
        return "coinm"
    if "pu" in data or data.get("e") == "bookTicker":
        return "usdm"
    stream = str(message.get("stream", ""))
    if stream.endswith("@bookTicker") or data.get("e") == "depthUpdate":
        return "spot"
    return None


# ---------------------------------------------------------------------------- cryptofeed


def read_cryptofeed(path: str | os.PathLike[str]) -> CaptureReader:
    """Read a cryptofeed raw-recorder file (``EXCHANGE.ws.N.M`` or ``EXCHANGE.http.N.M``).

    Parameters
    ----------
    path
        The file; its name prefix gives venue and market.

    Returns
    -------
    CaptureReader
        ``meta``, ``sent``, ``ws`` and ``rest`` frames, with exact nanosecond times.

    Raises
    ------
    CaptureFormatError
        If neither the file name nor the first URL tells the venue, or a line
        matches none of the four line shapes.
    """
    file_path = Path(path)
    venue, market = _cf_venue_market(file_path)
    conn_id = ""

    def parse_line(line_no: int, line: bytes) -> CaptureFrame | None:
        nonlocal conn_id
        if not line:
            return None
        try:
            if m := _CF_RECV.match(line):
                return _cf_frame(m, line, "ws", conn_id, "")
            if m := _CF_REST.match(line):
                url = m.group(1).decode("utf-8")
                return _cf_frame(m, line, "rest", "", url, skip=1)
            if m := _CF_SENT.match(line):
                url = m.group(1).decode("utf-8")
                return _cf_frame(m, line, "sent", url, "", skip=1)
            if m := _CF_OPEN.match(line):
                conn_id = m.group(1).decode("utf-8")
                ns = seconds_to_ns(m.group(2))
                return CaptureFrame(ns, venue, market, conn_id, "meta", "", line)
        except CaptureFormatError as exc:
            raise CaptureFormatError(exc.reason, file_path, line_no) from None
        except UnicodeDecodeError:
            raise CaptureFormatError("URL is not UTF-8", file_path, line_no) from None
        raise CaptureFormatError(
            f"matches no cryptofeed line shape: {line[:80]!r}", file_path, line_no
        )

    def _cf_frame(
        m: re.Match[bytes], line: bytes, kind: str, conn: str, source: str, skip: int = 0
    ) -> CaptureFrame:
        payload = line[m.end() :]
        if not payload:
            raise CaptureFormatError("empty payload", file_path, None)
        ns = seconds_to_ns(m.group(1 + skip))
        return CaptureFrame(ns, venue, market, conn, kind, source, payload)

    return CaptureReader(file_path, "cryptofeed", parse_line)


def _cf_venue_market(path: Path) -> tuple[str, str]:
    prefix = path.name.split(".", 1)[0].upper()
    if prefix in _CF_PREFIXES:
        return _CF_PREFIXES[prefix]
    _, first = _first_line(path)
    m = _URL_HOST.match(first)
    if m is not None:
        host = m.group(1).decode("ascii", "replace").lower()
        for suffix, venue_market in _HOST_MARKETS:
            if host == suffix or host.endswith("." + suffix):
                return venue_market
    raise CaptureFormatError(
        f"cannot tell the venue: file name prefix {prefix!r} is not one of "
        f"{sorted(_CF_PREFIXES)} and the first line names no known host",
        path,
        None,
    )


# ---------------------------------------------------------------------------- OKX JSON lines


def read_okx_jsonl(path: str | os.PathLike[str]) -> CaptureReader:
    """Read OKX v5 push messages stored one JSON object per line.

    Parameters
    ----------
    path
        The file, e.g. gocryptotrader's ``wsAllTrades.json``.

    Returns
    -------
    CaptureReader
        Kind ``ws`` frames of venue ``okx``, market ``unknown``, with ``recv_ns``
        0 (the file has no receive time; see the module docstring).

    Raises
    ------
    CaptureFormatError
        If a non-blank line is not a JSON object.
    """
    file_path = Path(path)

    def parse_line(line_no: int, line: bytes) -> CaptureFrame | None:
        if not line.strip():
            return None
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise CaptureFormatError(f"not JSON ({exc})", file_path, line_no) from None
        if not isinstance(message, dict):
            raise CaptureFormatError(
                f"expected a JSON object, got {type(message).__name__}", file_path, line_no
            )
        return CaptureFrame(0, "okx", "unknown", "", "ws", "", line)

    return CaptureReader(file_path, "okx-jsonl", parse_line)


_READERS: dict[str, Callable[[str | os.PathLike[str]], CaptureReader]] = {
    "hftbacktest": read_hftbacktest,
    "cryptofeed": read_cryptofeed,
    "okx-jsonl": read_okx_jsonl,
    RAW_FORMAT_NAME: read_raw,
}
