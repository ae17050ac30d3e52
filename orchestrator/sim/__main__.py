"""``python -m orchestrator.sim``: run the exchange simulator until Ctrl-C.

Prints one line per exchange with its WebSocket and REST base URLs, then serves until
SIGINT/SIGTERM (or ``--duration`` seconds) and shuts down cleanly (exit 0). Bad
arguments print one ``error:`` line and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from orchestrator.capture import CaptureFormatError
from orchestrator.sim.config import (
    DEFAULT_INSTRUMENTS,
    Faults,
    InstrumentSpec,
    MarketParams,
    ReplayConfig,
    SimConfig,
    generic_instrument,
    parse_fault,
)
from orchestrator.sim.replay import ReplayError
from orchestrator.sim.simulator import Simulator

__all__ = ["build_config", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> _Parser:
    p = _Parser(
        prog="python -m orchestrator.sim",
        description="Binance (spot, USD-M) and OKX public market data on loopback.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument(
        "--port-base",
        type=int,
        default=0,
        help="first of six consecutive ports (Binance WS, REST, USD-M WS, REST, OKX WS, "
        "REST); 0 = ephemeral",
    )
    p.add_argument("--seed", type=int, default=1, help="market and fault seed")
    p.add_argument(
        "--symbols",
        nargs="+",
        default=None,
        help="symbols to serve (BTCUSDT = Binance spot and USD-M, BTC-USDT = OKX spot, "
        "BTC-USDT-SWAP = OKX swap; comma or space separated)",
    )
    p.add_argument("--event-rate", type=float, default=None, help="events/s per instrument")
    p.add_argument("--volatility", type=float, default=None, help="bps per sqrt(second)")
    p.add_argument("--replay", nargs="+", default=None, metavar="FILE", help="capture files")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (0 = max)")
    p.add_argument(
        "--fault", action="append", default=[], metavar="NAME=VALUE", help="e.g. drop=0.01"
    )
    p.add_argument("--no-okx-checksum", action="store_true", help="send checksum 0 (as OKX now)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after N seconds")
    p.add_argument("--json", action="store_true", help="print the URLs as one JSON line")
    p.add_argument("--log-level", default="WARNING", help="logging level")
    return p


def _instruments(words: Sequence[str]) -> tuple[InstrumentSpec, ...]:
    names = [w for word in words for w in word.split(",") if w]
    out: list[InstrumentSpec] = []
    for name in names:
        found = [
            s
            for s in DEFAULT_INSTRUMENTS
            if s.symbol == name or ("-" not in name and s.symbol == name.upper())
        ]
        if not found:
            found = (
                [generic_instrument(name)]
                if "-" in name
                else [
                    generic_instrument(name.upper(), "binance"),
                    generic_instrument(name.upper(), "binance_usdm"),
                ]
            )
        out.extend(s for s in found if s not in out)
    return tuple(out)


def build_config(args: argparse.Namespace) -> SimConfig:
    """Build the :class:`SimConfig` that parsed arguments describe (``ValueError`` if bad)."""
    faults = Faults()
    for word in args.fault:
        faults = parse_fault(word, faults)
    market = MarketParams()
    if args.event_rate is not None or args.volatility is not None:
        market = MarketParams(
            volatility_bps=market.volatility_bps if args.volatility is None else args.volatility,
            event_rate=market.event_rate if args.event_rate is None else args.event_rate,
        )
    replay = None
    if args.replay:
        replay = ReplayConfig(tuple(args.replay), args.speed, wait_for_subscriber=False)
    instruments = _instruments(args.symbols) if args.symbols else DEFAULT_INSTRUMENTS
    return SimConfig(
        instruments=instruments,
        market=market,
        seed=args.seed,
        host=args.host,
        port_base=args.port_base,
        faults=faults,
        replay=replay,
        okx_checksum=not args.no_okx_checksum,
    )


async def _serve(config: SimConfig, duration: float, as_json: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(config) as sim:
        urls = sim.urls()
        if as_json:
            print(json.dumps(urls), flush=True)
        else:
            for name, u in urls.items():
                symbols = ",".join(sim.instruments(name)) or "-"
                print(f"{name:13} ws={u['ws_url']} rest={u['rest_url']} symbols={symbols}")
            print("simulator running; Ctrl-C to stop", flush=True)
        if duration > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
        else:
            await stop.wait()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        level = logging.getLevelName(args.log_level.upper())
        if not isinstance(level, int):
            raise ValueError(f"--log-level must be a logging level, was {args.log_level!r}")
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        config = build_config(args)
        if config.replay is not None:
            for path in config.replay.paths:
                with open(path, "rb"):
                    pass
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.duration, args.json))
    except (ReplayError, CaptureFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
