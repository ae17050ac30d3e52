"""Async REST client for venue market data: depth snapshots, instrument metadata, server time.

One :class:`RestClient` per venue base URL (aiohttp, one keep-alive connection pool). Every
request first takes its *weight* from the venue's :class:`~orchestrator.net.backoff.ConnectBudget`
(Binance: ``REQUEST_WEIGHT`` 6000 per minute, adopted from ``X-MBX-USED-WEIGHT-1M`` when the
venue reports more; OKX public endpoints: request counts per 2 s). Answers map to typed
errors:

* HTTP 429 / 418 -> :class:`RateLimitedError` with the server's ``Retry-After``, and the
  whole venue's budget is blocked for that long (Binance bans IPs that keep going);
* HTTP 5xx, timeouts, connection failures -> :class:`RestError` with ``retryable=True``;
* venue error bodies (Binance ``{"code": -1121, "msg": ...}``, OKX ``{"code": "51001", ...}``
  with a non-zero code) -> :class:`RestError` carrying the venue code, not retryable.

:meth:`RestClient.get_json` makes one attempt; :meth:`RestClient.fetch` retries what is
retryable with capped exponential backoff (honouring ``Retry-After``). URLs in messages never
carry credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from orchestrator.config.secrets import redact_url
from orchestrator.errors import SlipstreamError
from orchestrator.net.backoff import Backoff, ConnectBudget

__all__ = ["RateLimitedError", "RestClient", "RestError"]

log = logging.getLogger(__name__)


class RestError(SlipstreamError):
    """A REST request failed.

    Attributes
    ----------
    venue
        Venue label.
    status
        HTTP status (0 when no answer came).
    code
        Venue error code from the body, if any.
    retryable
        Whether trying again later can succeed (5xx, timeouts, 429).
    retry_after
        Seconds the server asked us to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        venue: str,
        status: int = 0,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.venue = venue
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


class RateLimitedError(RestError):
    """HTTP 429 / 418: the venue wants us to slow down (or has banned the IP for a while)."""


def _retry_after(headers: Mapping[str, str], status: int) -> float:
    value = headers.get("Retry-After")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    return 60.0 if status == 429 else 120.0


class RestClient:
    """REST market-data client of one venue.

    Parameters
    ----------
    base_url
        E.g. ``https://api.binance.com`` or the simulator's ``http://127.0.0.1:PORT``.
    venue
        Label used in errors and logs.
    budget
        Request-weight budget (default: 6000 per 60 s, Binance spot's documented limit).
    timeout
        Total seconds per request.
    weight_header
        Response header that reports the used weight of the window (Binance).
    """

    def __init__(
        self,
        base_url: str,
        venue: str,
        budget: ConnectBudget | None = None,
        timeout: float = 10.0,
        weight_header: str | None = "X-MBX-USED-WEIGHT-1M",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"{venue}: REST base URL must be http(s)://, not {redact_url(base_url)!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.venue = venue
        self.budget = budget or ConnectBudget(6000, 60.0)
        self.timeout = timeout
        self.weight_header = weight_header
        self._session: aiohttp.ClientSession | None = None
        self._safe_base = redact_url(self.base_url)

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "slipstream"},
            )
        return self._session

    async def _request(
        self, path: str, params: Mapping[str, str | int] | None, weight: int
    ) -> tuple[int, bytes, str]:
        await self.budget.acquire(weight)
        url = self.base_url + path
        where = f"{self.venue} GET {self._safe_base}{path}"
        try:
            async with self._client().get(url, params=params) as resp:
                status = resp.status
                body = await resp.read()
                headers = resp.headers
        except TimeoutError:
            raise RestError(
                f"{where}: timed out after {self.timeout:g} s", self.venue, retryable=True
            ) from None
        except aiohttp.ClientError as exc:
            raise RestError(
                f"{where}: {type(exc).__name__}: {exc}", self.venue, retryable=True
            ) from None
        if self.weight_header is not None and (used := headers.get(self.weight_header)):
            with contextlib.suppress(ValueError):
                self.budget.observe(int(used))
        if status in (418, 429):
            wait = _retry_after(headers, status)
            self.budget.block(wait)
            raise RateLimitedError(
                f"{where}: HTTP {status} ({'IP banned' if status == 418 else 'rate limited'}), "
                f"retry after {wait:g} s",
                self.venue,
                status,
                retryable=True,
                retry_after=wait,
            )
        if status >= 500:
            raise RestError(f"{where}: HTTP {status}", self.venue, status, retryable=True)
        return status, body, where

    def _check(self, status: int, body: bytes, where: str, data: Any) -> None:
        code = self._venue_code(data)
        if status >= 400 or code is not None:
            msg = data.get("msg") if isinstance(data, dict) else None
            detail = f" code {code}" if code is not None else ""
            raise RestError(
                f"{where}: HTTP {status}{detail}: {msg or body[:200]!r}", self.venue, status, code
            )

    async def get_json(
        self, path: str, params: Mapping[str, str | int] | None = None, weight: int = 1
    ) -> Any:
        """GET ``path`` once and return the decoded JSON body.

        Raises
        ------
        RateLimitedError
            On HTTP 429/418 (the venue budget is blocked for ``retry_after``).
        RestError
            On any other failure (``retryable`` tells whether to try again).
        """
        status, body, where = await self._request(path, params, weight)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        self._check(status, body, where, data)
        if data is None:
            raise RestError(f"{where}: answer is not JSON", self.venue, status, retryable=True)
        return data

    async def get_bytes(
        self, path: str, params: Mapping[str, str | int] | None = None, weight: int = 1
    ) -> bytes:
        """GET ``path`` once and return the raw body (for the compiled parsers).

        A 2xx body is returned undecoded; error answers raise as in :meth:`get_json`.
        """
        status, body, where = await self._request(path, params, weight)
        if status >= 300:
            try:
                data = json.loads(body) if body else None
            except ValueError:
                data = None
            self._check(status, body, where, data)
        return body

    @staticmethod
    def _venue_code(data: Any) -> str | None:
        if isinstance(data, dict) and "code" in data:
            code = data["code"]
            if isinstance(code, int) and code < 0:  # Binance error
                return str(code)
            if isinstance(code, str) and code not in ("0", ""):  # OKX error
                return code
        return None

    async def fetch(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        weight: int = 1,
        attempts: int = 5,
        backoff: Backoff | None = None,
        raw: bool = False,
    ) -> Any:
        """:meth:`get_json` (``raw``: :meth:`get_bytes`) retrying retryable failures.

        Waits a capped exponential backoff with jitter between attempts, never less than
        the server's ``Retry-After``.
        """
        pacing = backoff or Backoff(base=0.5, cap=30.0)
        for attempt in range(1, attempts + 1):
            try:
                if raw:
                    return await self.get_bytes(path, params, weight)
                return await self.get_json(path, params, weight)
            except RestError as exc:
                if not exc.retryable or attempt == attempts:
                    raise
                delay = pacing.next_delay(exc.retry_after)
                log.warning("%s (attempt %d/%d); retrying in %.1f s", exc, attempt, attempts, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
