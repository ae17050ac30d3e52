"""``python -m orchestrator.capture verify FILE...``: integrity report of recorded captures.

Exit status: 0 every book and trade stream is intact, 1 an integrity failure was found
(the JSON report says where), 2 a file could not be read or parsed (one-line message).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ext.feed import FrameError
from orchestrator.capture.formats import FORMATS
from orchestrator.capture.records import CaptureFormatError
from orchestrator.capture.verify import verify_files
from orchestrator.instruments import MetadataError, load_scales

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the capture command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.capture")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser(
        "verify",
        help="replay captures through the parsers and books; print a JSON integrity report",
    )
    verify.add_argument("files", nargs="+", help="capture files of one session")
    verify.add_argument(
        "--format", default="auto", choices=("auto", *sorted(FORMATS)), help="default: detect"
    )
    verify.add_argument("--compact", action="store_true", help="one-line JSON")
    verify.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="FILE",
        help="Binance exchangeInfo or OKX instruments JSON: fixes instrument scales",
    )
    args = parser.parse_args(argv)
    try:
        scales = [
            s for path in args.metadata for s in load_scales(Path(path).read_bytes()).values()
        ]
        report = verify_files(args.files, args.format, scales)
    except (CaptureFormatError, FrameError, MetadataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(report, indent=None if args.compact else 2))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: the reader stopped, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
