"""The bridge's hand-over logic when bus calls fail (in-process bus; pure logic, no services).

The failure modelled here is the one a Redis restart produces: a command the server executed
whose reply never reached the client. For ``XREADGROUP`` that leaves entries pending on the
bridge's own consumer that the bridge never saw. The bridge itself never acknowledges (the
persist task does, after its commit), so entries whose task never commits stay pending and
are re-published once idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator.data.bridge import Bridge, Range
from orchestrator.data.bus import Entry, GroupLag, InProcessBus
from orchestrator.errors import ServiceUnavailableError

pytestmark = pytest.mark.unit

STREAM = "md:test:X:trades"


class FlakyBus(InProcessBus):
    """An in-process bus whose chosen ``read`` calls fail.

    ``served_then_fail``: call numbers (1-based) executed on the "server" whose reply is lost;
    ``fail_before``: call numbers that fail without being served. Only reads of the group
    ``persist`` count.
    """

    def __init__(self, served_then_fail: Sequence[int] = (), fail_before: Sequence[int] = ()):
        super().__init__()
        self.calls = 0
        self.served_then_fail = set(served_then_fail)
        self.fail_before = set(fail_before)
        self.lost: list[Entry] = []

    async def read(self, group: str, *args: Any, **kwargs: Any) -> list[Entry]:
        if group != "persist":  # the test's own peeking
            return await super().read(group, *args, **kwargs)
        self.calls += 1
        if self.calls in self.fail_before:
            raise ServiceUnavailableError("bus down (test)")
        got = await super().read(group, *args, **kwargs)
        if self.calls in self.served_then_fail:
            self.lost.extend(got)
            raise ServiceUnavailableError("reply lost (test)")
        return got


async def _fill(bus: InProcessBus, n: int) -> list[str]:
    await bus.ensure_group(STREAM, "persist", "0")
    for k in range(n):
        await bus.publish(STREAM, k.to_bytes(4, "little"))
    assert await bus.flush()
    return [e.id for e in await _all_entries(bus)]


async def _all_entries(bus: InProcessBus) -> list[Entry]:
    await bus.ensure_group(STREAM, "peek", "0")
    return await bus.read("peek", "peek", [STREAM], 1_000_000, 0)


def _ids(ranges: list[Range], all_ids: list[str]) -> list[str]:
    """Ids covered by the published ranges (with their runs)."""
    out: list[str] = []
    for r in ranges:
        spans = r.runs or ((r.first_id, r.last_id),)
        for first, last in spans:
            i, j = all_ids.index(first), all_ids.index(last)
            out.extend(all_ids[i : j + 1])
    return out


def _small_bridge(bus: InProcessBus, ranges: list[Range], **kw: Any) -> Bridge:
    """A bridge on ``STREAM`` handing 4-entry tasks to ``ranges.append``, no lingering."""
    return Bridge(bus, ranges.append, [STREAM], entries_per_task=4, block_ms=10, linger_ms=0, **kw)


def test_entries_whose_read_reply_was_lost_are_recovered_without_waiting_for_a_claim() -> None:
    async def go() -> tuple[list[str], list[Range], FlakyBus, Bridge, GroupLag]:
        bus = FlakyBus(served_then_fail=[2])  # call 1: recover_own at start; 2: first step
        all_ids = await _fill(bus, 10)
        ranges: list[Range] = []
        # a claim would come far too late
        bridge = _small_bridge(bus, ranges, claim_idle_ms=3_600_000)
        runner = asyncio.create_task(bridge.run())
        for _ in range(300):
            await asyncio.sleep(0.01)
            if len(set(_ids(ranges, all_ids))) == len(all_ids):
                break
        bridge.stop()
        await runner
        return all_ids, ranges, bus, bridge, await bus.lag(STREAM, "persist")

    all_ids, ranges, bus, bridge, lag = asyncio.run(go())
    handed = _ids(ranges, all_ids)
    assert [e.id for e in bus.lost] == all_ids[:4]
    assert sorted(set(handed)) == sorted(all_ids)
    assert bridge.stats.recovered == 4 and bridge.stats.bus_failures == 1
    # the recovered entries went out again, one run each, for the task to acknowledge
    again = [r for r in ranges if r.runs]
    assert [r.runs for r in again] == [tuple((i, i) for i in all_ids[:4])]
    assert {r.group for r in ranges} == {"persist"}
    assert (lag.undelivered, lag.pending) == (0, len(all_ids))  # nobody acknowledged yet


def test_a_failed_linger_read_hands_over_the_entries_in_hand() -> None:
    async def go() -> tuple[int, list[Range], list[str], Bridge]:
        bus = FlakyBus(fail_before=[2])  # call 1: the step's first read; 2: its linger read
        all_ids = await _fill(bus, 3)
        ranges: list[Range] = []
        bridge = Bridge(
            bus, ranges.append, [STREAM], entries_per_task=8, block_ms=10, linger_ms=1000
        )
        await bridge.add_streams([STREAM])
        n = await bridge.step()
        return n, ranges, all_ids, bridge

    n, ranges, all_ids, bridge = asyncio.run(go())
    assert n == 3
    assert ranges == [Range(STREAM, all_ids[0], all_ids[-1], 3, (), "persist")]
    assert bridge.stats.entries == 3 and bridge.stats.tasks == 1


def test_entries_no_task_acknowledged_are_re_published_once_idle_until_acknowledged() -> None:
    """A task lost after the broker took it: its entries stay pending and come back."""

    async def go() -> tuple[list[str], list[Range], list[Range], Bridge, GroupLag]:
        bus = InProcessBus()
        all_ids = await _fill(bus, 10)
        ranges: list[Range] = []
        bridge = _small_bridge(bus, ranges, claim_idle_ms=100, claim_every=0.02)
        runner = asyncio.create_task(bridge.run())
        for _ in range(300):  # the first hand-over: 3 tasks, all "lost"
            await asyncio.sleep(0.01)
            if bridge.stats.claimed >= len(all_ids):
                break
        first = list(ranges)
        # the re-published tasks commit: a worker acknowledges their entries
        await bus.ack("persist", [Entry(STREAM, i, b"") for i in all_ids])
        settled = len(ranges)
        await asyncio.sleep(0.3)  # longer than claim_idle_ms: nothing goes out again
        bridge.stop()
        await runner
        assert len(ranges) == settled
        return all_ids, first, ranges, bridge, await bus.lag(STREAM, "persist")

    all_ids, first, ranges, bridge, lag = asyncio.run(go())
    assert sum(r.count for r in first if not r.runs) == len(all_ids)  # read, handed over once
    again = [r for r in ranges if r.runs]
    assert sorted(set(_ids(again, all_ids))) == sorted(all_ids)  # ... and re-published
    assert all(r.count <= 4 and r.group == "persist" for r in again)
    assert bridge.stats.claimed >= len(all_ids) and bridge.stats.recovered == 0
    assert (lag.undelivered, lag.pending) == (0, 0)
