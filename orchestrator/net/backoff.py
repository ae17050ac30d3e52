"""Reconnect pacing: capped exponential backoff with full jitter, and connection budgets.

The venue rules (``EXCHANGES.md`` section 6): exponential backoff with full jitter, base
0.5 s, cap 30 s, reset after 60 s of healthy data; a server-imposed wait (HTTP 429/418
``Retry-After``) is honoured as a floor; per-IP connection budgets (Binance spot at most
300 connects per 5 min, keep headroom; OKX at most 3 per second) are shared by every
connection of a venue so a mass reconnect cannot turn into a storm.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

__all__ = ["Backoff", "ConnectBudget"]


class Backoff:
    """Capped exponential backoff with full jitter.

    Parameters
    ----------
    base
        First ceiling in seconds; the n-th consecutive failure waits
        ``uniform(0, min(cap, base * 2**n))``.
    cap
        Largest ceiling in seconds.
    healthy_after
        A connection that stayed healthy this long resets the failure count
        (:meth:`healthy`).
    rng
        Random source (seeded in tests).
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        healthy_after: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base or healthy_after < 0:
            raise ValueError("backoff needs 0 < base <= cap and healthy_after >= 0")
        self.base = base
        self.cap = cap
        self.healthy_after = healthy_after
        self.failures = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """Upper bound of the next delay."""
        return float(min(self.cap, self.base * 2.0 ** min(self.failures, 62)))

    def next_delay(self, retry_after: float | None = None) -> float:
        """Delay before the next attempt; counts one more failure.

        ``retry_after`` (seconds, from the server) is a floor: the delay is never shorter.
        """
        delay = self._rng.uniform(0.0, self.ceiling())
        self.failures += 1
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return delay

    def healthy(self, uptime: float) -> None:
        """Report how long the last connection delivered data; resets when long enough."""
        if uptime >= self.healthy_after:
            self.failures = 0


class ConnectBudget:
    """At most ``limit`` connection attempts per ``period`` seconds (sliding window).

    Shared by every connection of a venue; :meth:`acquire` waits until an attempt is
    allowed. ``blocked_until`` lets a 418/429 answer stop all attempts for a while.
    """

    def __init__(
        self, limit: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("connect budget needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()

    def block(self, seconds: float) -> None:
        """Refuse every attempt for ``seconds`` (a venue ban or Retry-After)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def wait_time(self) -> float:
        """Seconds until the next attempt is allowed (0 if now)."""
        now = self._clock()
        while self._stamps and self._stamps[0] <= now - self.period:
            self._stamps.popleft()
        wait = max(0.0, self._blocked_until - now)
        if len(self._stamps) >= self.limit:
            wait = max(wait, self._stamps[0] + self.period - now)
        return wait

    async def acquire(self) -> None:
        """Wait for an allowed attempt and record it."""
        async with self._lock:
            while (wait := self.wait_time()) > 0:
                await asyncio.sleep(wait)
            self._stamps.append(self._clock())
