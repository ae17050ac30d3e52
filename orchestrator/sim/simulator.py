"""The exchange simulator: venue servers, the market driver, and the in-process API.

``async with Simulator(config) as sim:`` binds six loopback ports (WebSocket and REST for
Binance spot, Binance USD-M and OKX), starts the engine driver (one step every
``step_ms``: generate events for every synthetic instrument, push the real-time streams,
flush the interval streams that are due) and, when configured, the capture replay. The
``*_url`` properties give the base URLs a client points at; :meth:`Simulator.true_book`
is the book every correct client must end up with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any, Self

from ext.book import OrderBook
from orchestrator.sim.binance import BinanceHub, BinanceInstrument, BinanceRest
from orchestrator.sim.config import EXCHANGES, Faults, SimConfig
from orchestrator.sim.http import HttpServer
from orchestrator.sim.market import MarketModel
from orchestrator.sim.okx import OkxHub, OkxInstrument, OkxRest
from orchestrator.sim.replay import BinanceReplay

__all__ = ["Simulator"]

logger = logging.getLogger(__name__)

_MAX_CATCH_UP = 50  # steps run back to back when the loop lagged; beyond, time is skipped
_HOUSEKEEPING_S = 0.05


class Simulator:
    """Binance (spot, USD-M) and OKX public market data on loopback.

    Parameters
    ----------
    config
        The configuration (defaults: the instruments of ``conf/exchange``, ephemeral
        ports, no faults).

    Examples
    --------
    >>> async with Simulator(SimConfig(seed=7)) as sim:      # doctest: +SKIP
    ...     url = sim.binance_ws_url + "/stream?streams=btcusdt@depth@100ms"
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        cfg = self.config
        self._faults = cfg.faults
        self.replay = BinanceReplay(cfg.replay) if cfg.replay is not None else None
        get = self._get_faults
        self.binance = BinanceHub("binance", cfg, get)
        self.binance_usdm = BinanceHub("binance_usdm", cfg, get)
        self.okx = OkxHub(cfg, get)
        self._rests: tuple[BinanceRest | OkxRest, ...] = (
            BinanceRest(self.binance, get, cfg.seed),
            BinanceRest(self.binance_usdm, get, cfg.seed),
            OkxRest(self.okx, get, cfg.seed),
        )
        self._http = tuple(HttpServer(self._rests[i], EXCHANGES[i]) for i in range(3))
        self._binance_insts: list[tuple[BinanceHub, BinanceInstrument]] = []
        self._okx_insts: list[OkxInstrument] = []
        replayed = self.replay.exchange if self.replay is not None else ""
        for spec in cfg.instruments:
            if spec.exchange == replayed:
                continue
            model = MarketModel(spec, cfg.market, cfg.seed)
            if spec.exchange.startswith("binance"):
                hub = self.binance if spec.exchange == "binance" else self.binance_usdm
                binst = BinanceInstrument(spec, model, model.book)
                hub.add(binst)
                self._binance_insts.append((hub, binst))
            else:
                oinst = OkxInstrument(spec, model, model.book)
                self.okx.add(oinst)
                self._okx_insts.append(oinst)
        if self.replay is not None:
            hub = self.binance if replayed == "binance" else self.binance_usdm
            for inst in self.replay.instruments():
                hub.add(inst)
            hub.extra_streams |= self.replay.streams()
        self._ports: tuple[int, ...] = ()
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self._resumed = asyncio.Event()
        self._elapsed_ms = 0
        self.steps = 0
        self._started = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind the servers and start the driver (and the replay)."""
        if self._started:
            raise RuntimeError("simulator already started")
        self._started = True
        cfg = self.config
        base = cfg.port_base
        ports: list[int] = []
        try:
            for i, ws in enumerate((self.binance, self.binance_usdm, self.okx)):
                ports.append(await ws.start(cfg.host, base + 2 * i if base else 0))
                ports.append(await self._http[i].start(cfg.host, base + 2 * i + 1 if base else 0))
        except BaseException:
            await self._close_servers()
            raise
        self._ports = tuple(ports)
        self._tasks.append(asyncio.create_task(self._drive(), name="sim-driver"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="sim-housekeeping"))
        if self.replay is not None:
            hub = self.binance if self.replay.exchange == "binance" else self.binance_usdm
            self._tasks.append(asyncio.create_task(self.replay.run(hub), name="sim-replay"))
        logger.info("simulator listening: %s", self.urls())

    async def stop(self) -> None:
        """Stop the tasks, close every connection and server."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._close_servers()

    async def _close_servers(self) -> None:
        for ws in (self.binance, self.binance_usdm, self.okx):
            await ws.close()
        for http in self._http:
            await http.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------- addresses

    def _url(self, index: int, scheme: str, path: str = "") -> str:
        if not self._ports:
            raise RuntimeError("simulator not started")
        return f"{scheme}://{self.config.host}:{self._ports[index]}{path}"

    @property
    def binance_ws_url(self) -> str:
        """Binance spot stream base (append ``/ws/<stream>`` or ``/stream?streams=``)."""
        return self._url(0, "ws")

    @property
    def binance_rest_url(self) -> str:
        """Binance spot REST base (``/api/v3/...``)."""
        return self._url(1, "http")

    @property
    def binance_usdm_ws_url(self) -> str:
        """Binance USD-M stream base (append ``/public/ws/...`` or ``/market/stream?...``)."""
        return self._url(2, "ws")

    @property
    def binance_usdm_rest_url(self) -> str:
        """Binance USD-M REST base (``/fapi/v1/...``)."""
        return self._url(3, "http")

    @property
    def okx_ws_url(self) -> str:
        """OKX public WebSocket URL (``.../ws/v5/public``, as ``conf/exchange/okx.yaml``)."""
        return self._url(4, "ws", "/ws/v5/public")

    @property
    def okx_rest_url(self) -> str:
        """OKX REST base (``/api/v5/...``)."""
        return self._url(5, "http")

    def urls(self) -> dict[str, dict[str, str]]:
        """``{exchange: {"ws_url", "rest_url"}}`` in the shape of ``conf/exchange``."""
        return {
            "binance": {"ws_url": self.binance_ws_url, "rest_url": self.binance_rest_url},
            "binance_usdm": {
                "ws_url": self.binance_usdm_ws_url,
                "rest_url": self.binance_usdm_rest_url,
            },
            "okx": {"ws_url": self.okx_ws_url, "rest_url": self.okx_rest_url},
            "okx_swap": {"ws_url": self.okx_ws_url, "rest_url": self.okx_rest_url},
        }

    # ---------------------------------------------------------------- inspection

    def true_book(self, exchange: str, symbol: str) -> OrderBook:
        """Return the simulator's true book (live object: read it, never change it).

        Parameters
        ----------
        exchange
            ``binance``, ``binance_usdm``, ``okx`` or ``okx_swap``.
        symbol
            Venue symbol (``BTCUSDT``, ``BTC-USDT-SWAP``).

        Raises
        ------
        ValueError
            Unknown exchange or symbol.
        """
        inst: BinanceInstrument | OkxInstrument | None
        if exchange in ("binance", "binance_usdm"):
            hub = self.binance if exchange == "binance" else self.binance_usdm
            inst = hub.instruments.get(symbol.lower())
        elif exchange in ("okx", "okx_swap"):
            inst = self.okx.instruments.get(symbol)
        else:
            raise ValueError(f"exchange must be one of {EXCHANGES}, was {exchange!r}")
        if inst is None:
            raise ValueError(f"{exchange} has no instrument {symbol!r}")
        return inst.book

    def instruments(self, exchange: str) -> list[str]:
        """Symbols served on ``exchange``."""
        if exchange in ("binance", "binance_usdm"):
            hub = self.binance if exchange == "binance" else self.binance_usdm
            return [i.spec.symbol for i in hub.instruments.values()]
        return [s for s, i in self.okx.instruments.items() if i.spec.exchange == exchange]

    @property
    def faults(self) -> Faults:
        """Faults in force (assign a new :class:`Faults` to change them at run time)."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = faults

    def _get_faults(self) -> Faults:
        return self._faults

    def stats(self) -> dict[str, Any]:
        """Counters: steps, connections, frames sent and faults per server, REST."""
        out: dict[str, Any] = {"steps": self.steps}
        for hub in (self.binance, self.binance_usdm, self.okx):
            out[hub.name] = {"open": len(hub.conns), **dict(hub.stats)}
        for rest, name in zip(self._rests, EXCHANGES, strict=False):
            out[f"{name}_rest"] = dict(rest.stats)
        if self.replay is not None:
            out["replay"] = {"sent": self.replay.sent, "done": self.replay.done.is_set()}
        return out

    def drop_connections(self, exchange: str | None = None) -> int:
        """Abruptly close every WebSocket (of one exchange); returns how many."""
        hubs = {"binance": self.binance, "binance_usdm": self.binance_usdm, "okx": self.okx}
        if exchange == "okx_swap":
            exchange = "okx"
        if exchange is not None and exchange not in hubs:
            raise ValueError(f"exchange must be one of {EXCHANGES}, was {exchange!r}")
        return sum(h.drop_all() for n, h in hubs.items() if exchange in (None, n))

    # ---------------------------------------------------------------- driving

    async def pause(self) -> None:
        """Stop the market and push everything pending, so clients can catch up.

        After ``await sim.pause()`` every diff covering the true book's last update id
        has been handed to the sockets (held reorder frames included), so a client that
        reads everything ends with :meth:`true_book`.
        """
        self._paused = True
        self._resumed.clear()
        self._flush(force=True)
        for hub in (self.binance, self.binance_usdm, self.okx):
            hub.release_held()
        await asyncio.sleep(0)

    def resume(self) -> None:
        """Restart the market after :meth:`pause`."""
        self._paused = False
        self._resumed.set()

    async def advance(self, steps: int) -> None:
        """Run ``steps`` engine steps now (also while paused), then flush if paused."""
        for _ in range(steps):
            self._step()
        if self._paused:
            self._flush(force=True)
        await asyncio.sleep(0)

    def _step(self) -> None:
        cfg = self.config
        self._elapsed_ms += cfg.step_ms
        self.steps += 1
        now_ms = time.time_ns() // 1_000_000
        dt = cfg.step_ms / 1000.0
        for hub, inst in self._binance_insts:
            assert inst.model is not None
            events = inst.model.step(dt, now_ms)
            hub.on_events(inst, events, now_ms)
            hub.flush(inst, self._elapsed_ms, now_ms, False)
        for oinst in self._okx_insts:
            assert oinst.model is not None
            events = oinst.model.step(dt, now_ms)
            self.okx.on_events(oinst, events, now_ms)
            self.okx.flush(oinst, self._elapsed_ms, now_ms, False)

    def _flush(self, force: bool) -> None:
        now_ms = time.time_ns() // 1_000_000
        for hub, inst in self._binance_insts:
            hub.flush(inst, self._elapsed_ms, now_ms, force)
        for oinst in self._okx_insts:
            self.okx.flush(oinst, self._elapsed_ms, now_ms, force)

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        step_s = self.config.step_ms / 1000.0
        t0 = loop.time()
        done = 0
        while True:
            if self._paused:
                await self._resumed.wait()
                t0 = loop.time() - done * step_s
            due = int((loop.time() - t0) / step_s)
            if due - done > _MAX_CATCH_UP:
                logger.debug("simulator lagging by %d steps, skipping", due - done)
                t0 += (due - done - _MAX_CATCH_UP) * step_s
                due = done + _MAX_CATCH_UP
            while done < due and not self._paused:
                self._step()
                done += 1
            await asyncio.sleep(max(0.0, t0 + (done + 1) * step_s - loop.time()))

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(_HOUSEKEEPING_S)
            now = time.monotonic()
            self.binance.housekeeping(now)
            self.binance_usdm.housekeeping(now)
            self.okx.housekeeping(now)
