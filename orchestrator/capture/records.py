"""Capture records: the frame type, the format error, and the reader every format returns.

A capture file, whatever recorder wrote it, is read as a sequence of
:class:`CaptureFrame` records that keep the exact bytes of each frame. Parsing
the payload (JSON, sequence numbers, books) is done later by the venue parsers;
nothing here decodes or re-encodes a payload.

:class:`CaptureReader` is the iterator every reader in :mod:`orchestrator.capture`
returns. It reads a file line by line (plain or gzip), never the whole file, and
records whether the file ended in a truncated gzip stream or a partial last line.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import zlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

from orchestrator.errors import SlipstreamError

__all__ = [
    "GZIP_MAGIC",
    "KINDS",
    "MAX_LINE_BYTES",
    "CaptureFormatError",
    "CaptureFrame",
    "CaptureReader",
    "open_capture_file",
]

logger = logging.getLogger(__name__)

#: First two bytes of every gzip member.
GZIP_MAGIC = b"\x1f\x8b"

#: Longest line a reader accepts (a guard against reading a non-line file into memory).
MAX_LINE_BYTES = 64 * 1024 * 1024

#: Record kinds: received WebSocket frame, REST response, frame we sent, connection event.
KINDS = frozenset({"ws", "rest", "sent", "meta"})


class CaptureFormatError(SlipstreamError):
    """A capture file cannot be recognised or holds a malformed line.

    Parameters
    ----------
    message
        What is wrong, naming the offending value.
    path
        The capture file.
    line
        1-based line number of the offending line (of the decompressed text for
        gzip files), or ``None`` when the problem is not tied to one line.
    """

    def __init__(self, message: str, path: str | os.PathLike[str], line: int | None = None) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.reason = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


class CaptureFrame(NamedTuple):
    """One recorded frame, with its payload exactly as recorded.

    Attributes
    ----------
    recv_ns
        Local receive time in nanoseconds since the Unix epoch (0 when the
        recorder did not store one).
    venue
        Exchange, e.g. ``"binance"`` or ``"okx"``.
    market
        ``"spot"``, ``"usdm"``, ``"coinm"``, ``"swap"``, or ``"unknown"`` when the
        file mixes markets or does not say.
    conn_id
        Connection or stream id (a WebSocket URL or a stream name); ``""`` when
        the recorder kept none (REST records, for example).
    kind
        ``"ws"`` received frame, ``"rest"`` REST response, ``"sent"`` frame we
        sent, ``"meta"`` connection event.
    source
        Where a REST response came from (its URL) when known, else ``""``.
    payload
        The frame bytes as recorded, without the line terminator.
    """

    recv_ns: int
    venue: str
    market: str
    conn_id: str
    kind: str
    source: str
    payload: bytes


def open_capture_file(path: str | os.PathLike[str]) -> io.BufferedIOBase:
    """Open a capture file for binary reading, decompressing it if it is gzip.

    Parameters
    ----------
    path
        The file; gzip is recognised by its magic bytes, not by its name.

    Returns
    -------
    io.BufferedIOBase
        A binary stream of the (decompressed) content. The caller closes it.
    """
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller or to GzipFile
    try:
        magic = raw.read(2)
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    if magic == GZIP_MAGIC:
        # GzipFile does not close a passed fileobj; wrap so closing closes both.
        return _ClosingGzip(raw)
    return raw


class _ClosingGzip(gzip.GzipFile):
    """A read-only :class:`gzip.GzipFile` that also closes the file it wraps."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


#: Turns ``(line_no, line)`` into a frame, or ``None`` to skip the line.
LineParser = Callable[[int, bytes], CaptureFrame | None]


class CaptureReader(Iterator[CaptureFrame]):
    r"""Iterator over the frames of one capture file, read one line at a time.

    Readers of every format return this class; build it through them
    (:func:`orchestrator.capture.read_capture` and friends), not directly.

    Parameters
    ----------
    path
        The capture file (plain or gzip).
    format
        Name of the format, for messages.
    parse_line
        Called with the 1-based line number and the line without its ``\n``;
        returns a frame, ``None`` to skip the line, or raises
        :class:`CaptureFormatError`.
    strict_last_line
        If true, a last line without ``\n`` counts as truncated and is dropped
        (formats whose writer always ends lines). If false it is parsed like any
        other line.
    skip_lines
        Number of leading lines to pass over unparsed (a header already checked).

    Attributes
    ----------
    truncated
        ``True`` once the reader met a gzip stream that ends early (a writer that
        crashed) or a dropped partial last line. Lines before it were all read.
    lines_read
        Lines consumed so far, including skipped ones.
    frames_read
        Frames yielded so far.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str,
        parse_line: LineParser,
        *,
        strict_last_line: bool = False,
        skip_lines: int = 0,
    ) -> None:
        self.path = Path(path)
        self.format = format
        self.truncated = False
        self.lines_read = 0
        self.frames_read = 0
        self._parse_line = parse_line
        self._strict_last_line = strict_last_line
        self._skip_lines = skip_lines
        self._stream: io.BufferedIOBase | None = open_capture_file(path)
        self._frames: Generator[CaptureFrame, None, None] = self._generate()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> CaptureFrame:
        return next(self._frames)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying file; further iteration stops."""
        self._frames.close()
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _generate(self) -> Generator[CaptureFrame, None, None]:
        stream = self._stream
        assert stream is not None
        try:
            for line_no, line in self._lines(stream):
                if line_no <= self._skip_lines:
                    continue
                frame = self._parse_line(line_no, line)
                if frame is not None:
                    self.frames_read += 1
                    yield frame
        finally:
            stream.close()
            self._stream = None

    def _lines(self, stream: io.BufferedIOBase) -> Iterator[tuple[int, bytes]]:
        line_no = 0
        while True:
            try:
                line = stream.readline(MAX_LINE_BYTES + 1)
            except EOFError:
                # gzip stream without its end marker: the writer stopped mid-stream.
                self._mark_truncated(line_no + 1, "gzip stream ends early")
                return
            except (gzip.BadGzipFile, zlib.error) as exc:
                raise CaptureFormatError(
                    f"corrupt compressed data ({exc})", self.path, line_no + 1
                ) from exc
            if not line:
                return
            line_no += 1
            if len(line) > MAX_LINE_BYTES:
                raise CaptureFormatError(
                    f"line longer than {MAX_LINE_BYTES} bytes", self.path, line_no
                )
            self.lines_read = line_no
            if line.endswith(b"\n"):
                yield line_no, line[:-1]
            elif self._strict_last_line:
                self._mark_truncated(line_no, "last line has no line end")
                return
            else:
                yield line_no, line

    def _mark_truncated(self, line_no: int, why: str) -> None:
        self.truncated = True
        logger.warning(
            "%s:%d: %s; stopped after %d frames (earlier lines are intact)",
            self.path,
            line_no,
            why,
            self.frames_read,
        )
