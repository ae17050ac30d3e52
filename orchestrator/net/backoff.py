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
    """At most ``limit`` units (connection attempts, request weight) per ``period`` seconds.

    A sliding window shared by every user of one venue limit; :meth:`acquire` waits until
    ``cost`` more units fit. :meth:`block` stops everything for a while (a venue ban or a
    ``Retry-After``), :meth:`observe` adopts the usage a venue reports (e.g. Binance's
    ``X-MBX-USED-WEIGHT-1M``) when it is higher than the local count.
    """

    def __init__(
        self, limit: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("budget needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._stamps: deque[tuple[float, int]] = deque()
        self._used = 0
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()

    def block(self, seconds: float) -> None:
        """Refuse every attempt for ``seconds`` (a venue ban or Retry-After)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def _expire(self, now: float) -> None:
        while self._stamps and self._stamps[0][0] <= now - self.period:
            self._used -= self._stamps.popleft()[1]

    @property
    def used(self) -> int:
        """Units used within the current window."""
        self._expire(self._clock())
        return self._used

    def observe(self, used: int) -> None:
        """Adopt a venue-reported usage of the current window if above the local count."""
        now = self._clock()
        self._expire(now)
        if used > self._used:
            self._stamps.append((now, used - self._used))
            self._used = used

    def wait_time(self, cost: int = 1) -> float:
        """Seconds until ``cost`` more units are allowed (0 if now)."""
        if cost > self.limit:
            raise ValueError(f"cost {cost} exceeds the budget limit {self.limit}")
        now = self._clock()
        self._expire(now)
        wait = max(0.0, self._blocked_until - now)
        excess = self._used + cost - self.limit
        for t, units in self._stamps:
            if excess <= 0:
                break
            wait = max(wait, t + self.period - now)
            excess -= units
        return wait

    async def acquire(self, cost: int = 1) -> None:
        """Wait until ``cost`` units are allowed and record them."""
        async with self._lock:
            while (wait := self.wait_time(cost)) > 0:
                await asyncio.sleep(wait)
            self._stamps.append((self._clock(), cost))
            self._used += cost
