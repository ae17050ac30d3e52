r"""Slipstream's own raw capture format: every frame, exactly as received, with its context.

Format ``slipstream-raw``, version 1
====================================

A file is a gzip stream (one or more concatenated gzip members) of
``\n``-terminated lines. Readers also accept the same text uncompressed.

Line 1 is the header, the format name and the version separated by one tab::

    slipstream-raw<TAB>1

Every later line is one frame, eight fields separated by single tabs::

    recv_ns<TAB>venue<TAB>market<TAB>kind<TAB>conn_id<TAB>source<TAB>enc<TAB>payload

``recv_ns``
    Local receive time, nanoseconds since the Unix epoch, ASCII decimal digits,
    ``0 <= recv_ns < 2**63``.
``venue``, ``market``
    Lower-case tokens matching ``[a-z0-9_]+`` (``binance``, ``okx``; ``spot``,
    ``usdm``, ``coinm``, ``swap``, ``unknown``).
``kind``
    One of ``ws``, ``rest``, ``sent``, ``meta``.
``conn_id``, ``source``
    UTF-8 text (may be empty) in which exactly four characters are escaped:
    ``%`` as ``%25``, TAB as ``%09``, LF as ``%0A``, CR as ``%0D``. Any other
    ``%`` sequence is an error.
``enc`` and ``payload``
    ``t``: the payload bytes follow verbatim. Used when the payload is valid
    UTF-8 and holds no TAB, LF or CR, which is the case for every JSON frame an
    exchange sends, so files stay greppable with ``zcat | grep``.
    ``b``: the payload is standard base64 (RFC 4648, ``+/`` alphabet, with
    ``=`` padding). Used for every other payload (binary frames, non-UTF-8
    bytes, embedded TAB/LF/CR).

Any byte string therefore round-trips exactly. Nothing is ever re-encoded: a
``t`` payload is the received bytes themselves.

Crash safety and appending
--------------------------
:class:`RawCaptureWriter` writes each frame line with one call and, every
``flush_every`` frames and on :meth:`~RawCaptureWriter.flush`, issues a zlib sync
flush, so everything written before the last flush can be decompressed even if
the process dies before the gzip trailer is written. :func:`read_raw` then reads
every complete line, stops cleanly at the truncated tail, sets
``reader.truncated`` and logs a warning. Opening a writer with ``mode="a"`` adds a
new gzip member after a complete file (gzip readers concatenate members); an
existing file that ends truncated is refused, because bytes appended after a cut
deflate stream could not be decoded. :func:`recover_raw` copies the readable
frames of such a file into a new, complete one.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import os
import re
import zlib
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from orchestrator.capture.records import KINDS, CaptureFormatError, CaptureFrame, CaptureReader

__all__ = [
    "RAW_FORMAT_NAME",
    "RAW_FORMAT_VERSION",
    "RAW_HEADER",
    "RawCaptureWriter",
    "read_raw",
    "recover_raw",
]

#: Format name on the header line.
RAW_FORMAT_NAME = "slipstream-raw"
#: Version on the header line this module writes and reads.
RAW_FORMAT_VERSION = 1
#: Header line, without its ``\n``.
RAW_HEADER = f"{RAW_FORMAT_NAME}\t{RAW_FORMAT_VERSION}".encode("ascii")

_MAX_RECV_NS = 2**63
_TOKEN = re.compile(r"[a-z0-9_]+\Z")
_TOKEN_BYTES = re.compile(rb"[a-z0-9_]+\Z")
_ESCAPE_TABLE = str.maketrans({"%": "%25", "\t": "%09", "\n": "%0A", "\r": "%0D"})
_UNESCAPES = {"%25": "%", "%09": "\t", "%0A": "\n", "%0D": "\r"}
_PERCENT = re.compile(r"%.{0,2}", re.DOTALL)
_TEXT_UNSAFE = re.compile(rb"[\t\n\r]")


def _escape(value: str) -> bytes:
    return value.translate(_ESCAPE_TABLE).encode("utf-8")


def _unescape(text: str) -> str:
    if "%" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        try:
            return _UNESCAPES[match.group()]
        except KeyError:
            raise ValueError(f"bad escape {match.group()!r}") from None

    return _PERCENT.sub(replace, text)


def _encode_frame(frame: CaptureFrame) -> bytes:
    """Return the frame's line, LF included; ``ValueError`` names a bad field."""
    recv_ns, venue, market, conn_id, kind, source, payload = frame
    if type(recv_ns) is not int or not 0 <= recv_ns < _MAX_RECV_NS:
        raise ValueError(f"recv_ns must be an int in [0, 2**63), was {recv_ns!r}")
    if not isinstance(venue, str) or not _TOKEN.match(venue):
        raise ValueError(f"venue must match [a-z0-9_]+, was {venue!r}")
    if not isinstance(market, str) or not _TOKEN.match(market):
        raise ValueError(f"market must match [a-z0-9_]+, was {market!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, was {kind!r}")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ValueError(f"payload must be bytes, was {type(payload).__name__}")
    payload = bytes(payload)
    if not isinstance(conn_id, str) or not isinstance(source, str):
        raise ValueError(f"conn_id and source must be str, were {conn_id!r}, {source!r}")
    try:
        conn = _escape(conn_id)
        src = _escape(source)
    except UnicodeEncodeError as exc:
        raise ValueError(f"conn_id and source must be encodable as UTF-8 ({exc})") from None
    try:
        payload.decode("utf-8")
        text = _TEXT_UNSAFE.search(payload) is None
    except UnicodeDecodeError:
        text = False
    enc, body = (b"t", payload) if text else (b"b", base64.b64encode(payload))
    head = b"%d\t%s\t%s\t%s\t" % (recv_ns, venue.encode(), market.encode(), kind.encode())
    return b"".join((head, conn, b"\t", src, b"\t", enc, b"\t", body, b"\n"))


def _decode_frame(line: bytes, path: Path, line_no: int) -> CaptureFrame:
    fields = line.split(b"\t", 7)
    if len(fields) != 8:
        raise CaptureFormatError(
            f"expected 8 tab-separated fields, found {len(fields)}", path, line_no
        )
    recv, venue, market, kind, conn, src, enc, body = fields
    if not recv.isdigit() or len(recv.lstrip(b"0")) > 19 or int(recv) >= _MAX_RECV_NS:
        raise CaptureFormatError(
            f"recv_ns is not a decimal integer below 2**63: {recv[:40]!r}", path, line_no
        )
    for name, token in (("venue", venue), ("market", market)):
        if not _TOKEN_BYTES.match(token):
            raise CaptureFormatError(f"{name} must match [a-z0-9_]+, was {token!r}", path, line_no)
    kind_text = kind.decode("ascii", "replace")
    if kind_text not in KINDS:
        raise CaptureFormatError(f"unknown kind {kind!r}", path, line_no)
    try:
        conn_id = _unescape(conn.decode("utf-8"))
        source = _unescape(src.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise CaptureFormatError(f"bad conn_id/source text ({exc})", path, line_no) from None
    if enc == b"t":
        payload = body
    elif enc == b"b":
        try:
            payload = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise CaptureFormatError(f"bad base64 payload ({exc})", path, line_no) from None
    else:
        raise CaptureFormatError(f"payload encoding must be 't' or 'b', was {enc!r}", path, line_no)
    return CaptureFrame(
        int(recv), venue.decode(), market.decode(), conn_id, kind_text, source, payload
    )


def _check_header(line: bytes, path: Path) -> None:
    name, sep, version = line.partition(b"\t")
    if name != RAW_FORMAT_NAME.encode() or not sep:
        raise CaptureFormatError(
            f"not a {RAW_FORMAT_NAME} file, header line is {line[:60]!r}", path, 1
        )
    if version != str(RAW_FORMAT_VERSION).encode():
        raise CaptureFormatError(
            f"unsupported {RAW_FORMAT_NAME} version {version[:20]!r} "
            f"(this reader handles {RAW_FORMAT_VERSION})",
            path,
            1,
        )


def read_raw(path: str | os.PathLike[str]) -> CaptureReader:
    """Read a ``slipstream-raw`` capture one line at a time.

    Parameters
    ----------
    path
        The capture file (gzip, possibly truncated by a crash, or plain text).

    Returns
    -------
    CaptureReader
        Iterator over the frames. After iteration, ``reader.truncated`` tells
        whether the file ended in a cut gzip stream or a partial line; the frames
        before it are all returned.

    Raises
    ------
    CaptureFormatError
        On an empty file, a wrong header or version, or a malformed line
        (the error carries the path and line number).
    """
    file_path = Path(path)
    if file_path.stat().st_size == 0:
        raise CaptureFormatError("empty file, expected a slipstream-raw header", file_path, None)

    def parse_line(line_no: int, line: bytes) -> CaptureFrame | None:
        if line_no == 1:
            _check_header(line, file_path)
            return None
        return _decode_frame(line, file_path, line_no)

    return CaptureReader(file_path, RAW_FORMAT_NAME, parse_line, strict_last_line=True)


class RawCaptureWriter:
    """Write frames to a ``slipstream-raw`` gzip file (see the module docstring).

    Parameters
    ----------
    path
        Destination file.
    mode
        ``"x"`` (default) creates a new file and fails if it exists; ``"w"``
        replaces any file; ``"a"`` appends to a complete ``slipstream-raw`` file
        (a new gzip member, no second header) or creates it. Appending first
        reads the existing file through once to check it is complete.
    flush_every
        Sync-flush after this many frames (1 flushes every frame). Frames written
        since the last flush may be lost on a crash; earlier ones never are.
    compresslevel
        zlib level, 1 (fast) to 9 (small).

    Raises
    ------
    CaptureFormatError
        With ``mode="a"``, if the existing file is not a complete
        ``slipstream-raw`` file (use :func:`recover_raw` first).

    Examples
    --------
    >>> with RawCaptureWriter("btc.raw.gz") as out:  # doctest: +SKIP
    ...     out.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: Literal["x", "w", "a"] = "x",
        flush_every: int = 100,
        compresslevel: int = 6,
    ) -> None:
        if mode not in ("x", "w", "a"):
            raise ValueError(f"mode must be 'x', 'w' or 'a', was {mode!r}")
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, was {flush_every}")
        self.path = Path(path)
        self.frames_written = 0
        self._flush_every = flush_every
        self._pending = 0
        need_header = True
        if mode == "a" and self.path.exists() and self.path.stat().st_size > 0:
            self._check_appendable()
            need_header = False
        self._file: IO[bytes] = open(self.path, mode + "b")  # noqa: SIM115 - closed in close()
        try:
            self._gz: gzip.GzipFile | None = gzip.GzipFile(
                filename="", fileobj=self._file, mode="wb", compresslevel=compresslevel, mtime=0
            )
            if need_header:
                self._gz.write(RAW_HEADER + b"\n")
            self.flush()
        except BaseException:
            self._file.close()
            raise

    def _check_appendable(self) -> None:
        reader = read_raw(self.path)
        with reader:
            for _ in reader:
                pass
        if reader.truncated:
            raise CaptureFormatError(
                "ends truncated (a writer crashed); appending would make the new frames "
                "unreadable, copy it with recover_raw() first",
                self.path,
                reader.lines_read,
            )

    def write(self, frame: CaptureFrame) -> None:
        """Append one frame.

        Parameters
        ----------
        frame
            The frame; its fields must satisfy the format (``ValueError`` names
            the offending field otherwise, and nothing is written).
        """
        if self._gz is None:
            raise RuntimeError(f"writer for {self.path} is closed")
        self._gz.write(_encode_frame(frame))
        self.frames_written += 1
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def flush(self, *, fsync: bool = False) -> None:
        """Make every frame written so far decodable from the file on disk.

        Parameters
        ----------
        fsync
            Also ask the OS to put the bytes on stable storage.
        """
        if self._gz is None:
            raise RuntimeError(f"writer for {self.path} is closed")
        self._gz.flush(zlib.Z_SYNC_FLUSH)
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())
        self._pending = 0

    def close(self) -> None:
        """Finish the gzip member and close the file (idempotent)."""
        if self._gz is None:
            return
        try:
            self._gz.close()
        finally:
            self._gz = None
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def recover_raw(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> int:
    """Copy the readable frames of a (possibly truncated) raw capture to a new file.

    Parameters
    ----------
    src
        The damaged or complete ``slipstream-raw`` file.
    dst
        A new file (must not exist) that receives every readable frame.

    Returns
    -------
    int
        Number of frames copied.
    """
    with read_raw(src) as reader, RawCaptureWriter(dst, mode="x", flush_every=10_000) as out:
        for frame in reader:
            out.write(frame)
        return out.frames_written
