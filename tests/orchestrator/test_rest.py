"""REST client against a real HTTP server on loopback: answers, venue errors, rate limits."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from orchestrator.net.backoff import Backoff, ConnectBudget
from orchestrator.net.rest import RateLimitedError, RestClient, RestError

pytestmark = pytest.mark.integration


def serve(
    routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    body: Callable[[str], Awaitable[None]],
) -> None:
    async def go() -> None:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            await body(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_json_answer_params_and_weight_header() -> None:
    seen: list[dict[str, str]] = []

    async def depth(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response(
            {"lastUpdateId": 7, "bids": [["1.00", "2"]], "asks": []},
            headers={"X-MBX-USED-WEIGHT-1M": "4321"},
        )

    async def body(base: str) -> None:
        async with RestClient(base, "binance") as rest:
            data = await rest.get_json(
                "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 1000}, weight=250
            )
            assert data["lastUpdateId"] == 7
            assert rest.budget.used == 4321  # the venue's count wins when higher

    serve({"/api/v3/depth": depth}, body)
    assert seen == [{"symbol": "BTCUSDT", "limit": "1000"}]


def test_429_and_418_block_the_venue() -> None:
    async def limited(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "3"})

    async def banned(request: web.Request) -> web.Response:
        return web.Response(status=418, headers={"Retry-After": "120"})

    async def body(base: str) -> None:
        async with RestClient(base, "binance") as rest:
            with pytest.raises(RateLimitedError) as err:
                await rest.get_json("/limited")
            assert err.value.status == 429 and err.value.retry_after == 3 and err.value.retryable
            assert "retry after 3 s" in str(err.value)
            assert 2.5 < rest.budget.wait_time() <= 3
            rest.budget = ConnectBudget(6000, 60)
            with pytest.raises(RateLimitedError, match="IP banned"):
                await rest.get_json("/banned")
            assert rest.budget.wait_time() > 100

    serve({"/limited": limited, "/banned": banned}, body)


def test_venue_error_bodies_carry_their_codes() -> None:
    async def binance(request: web.Request) -> web.Response:
        return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)

    async def okx(request: web.Request) -> web.Response:
        return web.json_response(
            {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
        )

    async def okx_ok(request: web.Request) -> web.Response:
        return web.json_response({"code": "0", "msg": "", "data": [{"ts": "1"}]})

    async def body(base: str) -> None:
        async with RestClient(base, "okx", weight_header=None) as rest:
            with pytest.raises(RestError, match="Invalid symbol") as err:
                await rest.get_json("/binance")
            assert (err.value.status, err.value.code, err.value.retryable) == (400, "-1121", False)
            with pytest.raises(RestError, match="Instrument ID does not exist") as err:
                await rest.get_json("/okx")
            assert (err.value.status, err.value.code) == (200, "51001")
            assert (await rest.get_json("/okx_ok"))["data"] == [{"ts": "1"}]

    serve({"/binance": binance, "/okx": okx, "/okx_ok": okx_ok}, body)


def test_fetch_retries_5xx_then_succeeds_and_gives_up_on_client_errors() -> None:
    calls = {"flaky": 0, "bad": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            return web.Response(status=503, text="maintenance")
        return web.json_response({"serverTime": 1})

    async def bad(request: web.Request) -> web.Response:
        calls["bad"] += 1
        return web.json_response({"code": -1100, "msg": "Illegal characters"}, status=400)

    async def body(base: str) -> None:
        pacing = Backoff(base=0.01, cap=0.02, rng=random.Random(0))
        async with RestClient(base, "binance") as rest:
            assert await rest.fetch("/flaky", backoff=pacing) == {"serverTime": 1}
            with pytest.raises(RestError, match="-1100"):
                await rest.fetch("/bad", backoff=pacing)
            with pytest.raises(RestError, match="HTTP 503"):
                calls["flaky"] = -10
                await rest.fetch("/flaky", attempts=2, backoff=pacing)

    serve({"/flaky": flaky, "/bad": bad}, body)
    assert calls["bad"] == 1


def test_unreachable_and_slow_servers_are_retryable_errors() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    async def body(base: str) -> None:
        async with RestClient(base, "okx", timeout=0.2) as rest:
            with pytest.raises(RestError, match="timed out") as err:
                await rest.get_json("/slow")
            assert err.value.retryable

    serve({"/slow": slow}, body)

    async def unreachable() -> None:
        async with RestClient("http://user:hunter2@127.0.0.1:1", "binance") as rest:
            with pytest.raises(RestError) as err:
                await rest.get_json("/api/v3/time")
            assert err.value.retryable and "hunter2" not in str(err.value)
            assert "binance GET" in str(err.value)

    asyncio.run(unreachable())


@pytest.mark.unit
def test_weight_budget_waits_for_the_window() -> None:
    now = [0.0]
    budget = ConnectBudget(10, 1.0, clock=lambda: now[0])

    async def go() -> Any:
        await budget.acquire(6)
        now[0] = 0.5
        await budget.acquire(4)
        assert budget.wait_time(1) == pytest.approx(0.5)  # the first 6 expire at 1.0
        now[0] = 1.0
        assert budget.wait_time(6) == 0
        assert budget.wait_time(7) == pytest.approx(0.5)
        with pytest.raises(ValueError, match="exceeds"):
            budget.wait_time(11)

    asyncio.run(go())


def test_bad_base_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="http"):
        RestClient("ftp://x", "binance")
