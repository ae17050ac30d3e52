"""Capture files: read recorded exchange frames byte-for-byte, and write Slipstream's own.

``read_capture(path)`` detects the format from the content and yields
:class:`CaptureFrame` records one line at a time. :class:`RawCaptureWriter` and
:func:`read_raw` implement the ``slipstream-raw`` format specified in
:mod:`orchestrator.capture.raw`.
"""

from __future__ import annotations

from orchestrator.capture.formats import (
    FORMATS,
    detect_format,
    read_capture,
    read_cryptofeed,
    read_hftbacktest,
    read_okx_jsonl,
    seconds_to_ns,
)
from orchestrator.capture.raw import (
    RAW_FORMAT_NAME,
    RAW_FORMAT_VERSION,
    RAW_HEADER,
    RawCaptureWriter,
    read_raw,
    recover_raw,
)
from orchestrator.capture.records import (
    KINDS,
    CaptureFormatError,
    CaptureFrame,
    CaptureReader,
)

__all__ = [
    "FORMATS",
    "KINDS",
    "RAW_FORMAT_NAME",
    "RAW_FORMAT_VERSION",
    "RAW_HEADER",
    "CaptureFormatError",
    "CaptureFrame",
    "CaptureReader",
    "RawCaptureWriter",
    "detect_format",
    "read_capture",
    "read_cryptofeed",
    "read_hftbacktest",
    "read_okx_jsonl",
    "read_raw",
    "recover_raw",
    "seconds_to_ns",
]
