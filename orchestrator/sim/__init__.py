"""Exchange simulator: Binance and OKX public market data on loopback.

Serves Binance spot and USD-M market streams and REST market data, and the OKX v5
public WebSocket and REST market data, in the venues' wire formats and under their URL
paths, from a seeded synthetic market (:mod:`orchestrator.sim.market`) or a replayed
Binance capture (:mod:`orchestrator.sim.replay`), with fault injection
(:class:`Faults`). In-process::

    async with Simulator(SimConfig(seed=7)) as sim:
        sim.binance_ws_url, sim.okx_ws_url, sim.true_book("okx", "BTC-USDT")

Command line: ``python -m orchestrator.sim --help``. Guide: ``docs/sim.md``.
"""

from orchestrator.sim.config import (
    DEFAULT_INSTRUMENTS,
    EXCHANGES,
    Faults,
    InstrumentSpec,
    MarketParams,
    ReplayConfig,
    SimConfig,
    parse_fault,
)
from orchestrator.sim.market import BookEvent, Fill, MarketModel
from orchestrator.sim.replay import ReplayError
from orchestrator.sim.simulator import Simulator

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "EXCHANGES",
    "BookEvent",
    "Faults",
    "Fill",
    "InstrumentSpec",
    "MarketModel",
    "MarketParams",
    "ReplayConfig",
    "ReplayError",
    "SimConfig",
    "Simulator",
    "parse_fault",
]
