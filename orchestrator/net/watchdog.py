"""Adaptive stall detection per channel: a quiet market is not a dead socket.

Each channel learns its typical gap between messages (an exponentially weighted mean of
the inter-arrival times, which follows a market getting busier or quieter). A channel is
stalled when it has been silent for longer than ``factor`` times that typical gap, and never
before ``floor`` seconds (so a burst does not make the threshold tiny) nor later than
``ceiling`` seconds (so a connection that delivers nothing at all is caught, EXCHANGES.md
pitfall P5). Channels with a fixed push interval (Binance ``@depth@100ms``) can give it as
``expected`` to start from the right threshold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["StallWatchdog"]


@dataclass(slots=True)
class _Channel:
    last: float
    mean_gap: float
    seen: int = 0


class StallWatchdog:
    """Silence thresholds learnt per channel.

    Parameters
    ----------
    factor
        Silence longer than ``factor`` x the typical gap is a stall.
    floor, ceiling
        Bounds of the threshold in seconds.
    alpha
        Weight of the newest inter-arrival time in the running mean.
    clock
        Monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        factor: float = 10.0,
        floor: float = 5.0,
        ceiling: float = 60.0,
        alpha: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if factor <= 1 or floor <= 0 or ceiling < floor or not 0 < alpha <= 1:
            raise ValueError("watchdog needs factor > 1, 0 < floor <= ceiling, 0 < alpha <= 1")
        self.factor = factor
        self.floor = floor
        self.ceiling = ceiling
        self.alpha = alpha
        self._clock = clock
        self._channels: dict[str, _Channel] = {}

    def watch(self, channel: str, expected: float | None = None) -> None:
        """Start watching ``channel`` now (e.g. after subscribing)."""
        self._channels[channel] = _Channel(self._clock(), expected or self.floor / self.factor)

    def forget(self, channel: str) -> None:
        """Stop watching ``channel``."""
        self._channels.pop(channel, None)

    def seen(self, channel: str) -> None:
        """Record a message arriving on ``channel``."""
        now = self._clock()
        ch = self._channels.get(channel)
        if ch is None:
            self._channels[channel] = _Channel(now, self.floor / self.factor, 1)
            return
        gap = now - ch.last
        ch.mean_gap += self.alpha * (gap - ch.mean_gap) if ch.seen else gap - ch.mean_gap
        ch.last = now
        ch.seen += 1

    def threshold(self, channel: str) -> float:
        """Return the current silence threshold of ``channel`` in seconds."""
        ch = self._channels[channel]
        return min(self.ceiling, max(self.floor, self.factor * ch.mean_gap))

    def stalled(self) -> list[tuple[str, float]]:
        """Channels silent beyond their threshold, with their silence in seconds."""
        now = self._clock()
        out = []
        for name, ch in self._channels.items():
            silence = now - ch.last
            if silence > min(self.ceiling, max(self.floor, self.factor * ch.mean_gap)):
                out.append((name, silence))
        return out
