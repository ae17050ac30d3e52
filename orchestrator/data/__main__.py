"""Archive maintenance commands.

.. code-block:: console

   $ python -m orchestrator.data migrate [--dsn DSN]            # schema, policies, partitions
   $ python -m orchestrator.data retention [--dsn DSN] [--now ISO]
   $ python -m orchestrator.data refresh-bars [--dsn DSN]
   $ python -m orchestrator.data coverage --venue binance --market spot --symbol BTCUSDT
         --start 2024-08-08T00:00Z --end 2024-08-09T00:00Z [--dsn DSN]

The DSN defaults to ``TIMESCALEDB_URL`` or ``postgresql://postgres@127.0.0.1:5432/slipstream``.
Output is JSON on stdout. Exit status: 0 ok, 1 the archive refused the operation,
2 bad arguments, 3 PostgreSQL unreachable (the message says which endpoint, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from orchestrator.data.archive import Archive, ArchiveError, ArchiveSettings
from orchestrator.data.records import RegistryError
from orchestrator.errors import ServiceUnavailableError

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/slipstream"


def _time_ns(text: str) -> int:
    """ISO-8601 time (``Z`` or an offset; naive = UTC) or integer nanoseconds."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time or ns integer: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m orchestrator.data", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="command", required=True)
    dsn_help = "PostgreSQL DSN (default: $TIMESCALEDB_URL or " + DEFAULT_DSN + ")"
    for name, text in (
        ("migrate", "apply pending migrations, policies and partitions ahead"),
        ("retention", "drop expired partitions and prune the ledger"),
        ("refresh-bars", "refresh the 1-minute bars"),
        ("coverage", "complete windows and gaps of one instrument"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--dsn", default=None, help=dsn_help)
        sp.add_argument(
            "--plain", action="store_true", help="never use TimescaleDB (first migration only)"
        )
        if name in ("migrate", "retention"):
            sp.add_argument("--now", type=_time_ns, default=None, help="override the clock")
        if name == "coverage":
            sp.add_argument("--venue", required=True)
            sp.add_argument("--market", required=True)
            sp.add_argument("--symbol", required=True)
            sp.add_argument("--start", type=_time_ns, required=True)
            sp.add_argument("--end", type=_time_ns, required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = _parser().parse_args(argv)
    dsn = args.dsn or os.environ.get("TIMESCALEDB_URL") or DEFAULT_DSN
    settings = ArchiveSettings(timescale="off" if args.plain else "auto")
    out: dict[str, object]
    try:
        with Archive(dsn, settings) as archive:
            if args.command == "migrate":
                rep = archive.migrate(args.now)
                out = {
                    "variant": rep.variant,
                    "applied": list(rep.applied),
                    "version": max(archive.applied_versions(), default=0),
                    "partitions_created": rep.partitions_created,
                }
            elif args.command == "retention":
                out = {"dropped": archive.retention(args.now)}
            elif args.command == "refresh-bars":
                archive.refresh_bars()
                out = {"refreshed": "bars_1m"}
            else:
                reg = archive.load_registry()
                iid = reg.instrument_id(args.venue, args.market, args.symbol, create=False)
                cov = archive.coverage(reg.get(iid).venue_id, iid, args.start, args.end)
                out = {
                    "instrument": iid,
                    "complete": [[w.start_ns, w.end_ns] for w in cov.complete],
                    "gaps": [[w.start_ns, w.end_ns, w.reason] for w in cov.gaps],
                    "complete_fraction": cov.complete_ns / (args.end - args.start),
                }
    except ServiceUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (ArchiveError, RegistryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
