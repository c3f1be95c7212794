"""Graph's subscription write limit, shared through the database by several manager processes.

Each manager process has its own connector; two connectors on one database behave as two
processes do (SQLite: separate connections and writer locks; PostgreSQL: separate sessions).
The limit is made small (10 writes per second) so that a test spans a few windows in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from pushsync.errors import Throttled
from pushsync.graph.throttling import WritePacer
from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade
from pushsync.store.write_budget import WriteBudget

LIMIT = 10
WINDOW = 1.0  # seconds


@pytest.fixture
async def connectors(database_url: str) -> AsyncIterator[list[Connector]]:
    """Two connectors on one database at the latest schema: two manager processes."""
    opened = [connect(database_url), connect(database_url)]
    for connector in opened:
        await connector.open()
    await upgrade(opened[0])
    yield opened
    for connector in opened:
        await connector.close()


def _pacer(connector: Connector, key: str = "graph:tenant:app") -> WritePacer:
    budget = WriteBudget(connector, key, limit=LIMIT, window=WINDOW, lease=30.0)
    return WritePacer(budget)


def most_in_any_window(spans: list[tuple[float, float]], window: float) -> int:
    """The most writes that Graph could have seen within one window, each write arriving at
    some moment of its (start, end) span: the writes whose spans a window can all touch."""
    most = 0
    for start, _ in spans:
        touched = [s for s in spans if s[1] >= start and s[0] < start + window]
        most = max(most, len(touched))
    return most


async def _writes(pacer: WritePacer, count: int, spans: list[tuple[float, float]]) -> None:
    async def one() -> None:
        async with pacer.permit(max_hold=10.0):
            began = time.monotonic()
            await asyncio.sleep(0.01)  # the request on its way to Graph and back
            spans.append((began, time.monotonic()))

    await asyncio.gather(*(one() for _ in range(count)))


async def test_two_processes_together_stay_within_the_limit(connectors: list[Connector]) -> None:
    first, second = (_pacer(c) for c in connectors)
    spans: list[tuple[float, float]] = []
    started = time.monotonic()

    await asyncio.wait_for(
        asyncio.gather(_writes(first, 25, spans), _writes(second, 25, spans)), 60
    )

    assert len(spans) == 50
    assert most_in_any_window(spans, WINDOW) <= LIMIT
    # 50 writes at 10 per second cannot all have gone in the first four windows
    assert time.monotonic() - started >= 4 * WINDOW
    assert first.writes + second.writes == 50 and first.waited > 0 and second.waited > 0


async def test_budgets_of_different_tenants_do_not_share(connectors: list[Connector]) -> None:
    one, other = _pacer(connectors[0], "graph:a:app"), _pacer(connectors[1], "graph:b:app")
    spans_one: list[tuple[float, float]] = []
    spans_other: list[tuple[float, float]] = []

    await asyncio.gather(_writes(one, LIMIT, spans_one), _writes(other, LIMIT, spans_other))

    assert one.waited == 0 and other.waited == 0  # each had its whole budget


async def test_a_retry_after_told_to_one_process_holds_the_other(
    connectors: list[Connector],
) -> None:
    told, other = (_pacer(c) for c in connectors)
    await told.hold(30.0)  # Graph answered one of told's writes 429, Retry-After 30

    with pytest.raises(Throttled) as refused:
        async with other.permit(max_hold=5.0):
            pass
    assert 25 < refused.value.retry_after <= 30
    assert other.writes == 0

    # asked again at once, it answers without a trip to the database
    with pytest.raises(Throttled):
        async with other.permit(max_hold=5.0):
            pass


async def test_a_short_retry_after_is_waited_out(connectors: list[Connector]) -> None:
    told, other = (_pacer(c) for c in connectors)
    await told.hold(0.5)
    started = time.monotonic()

    async with other.permit(max_hold=5.0):
        waited = time.monotonic() - started

    assert waited >= 0.4 and other.writes == 1


async def test_a_permit_never_given_back_counts_until_its_lease_ends(
    connectors: list[Connector],
) -> None:
    """A process that died in the middle of its writes does not take the budget for ever."""
    dead = WriteBudget(connectors[0], "graph:t:a", limit=2, window=WINDOW, lease=WINDOW)
    alive = WriteBudget(connectors[1], "graph:t:a", limit=2, window=WINDOW, lease=WINDOW)
    assert len((await dead.draw(5)).permit_ids) == 2  # what is left, not what was asked

    full = await alive.draw()
    assert full.permit_ids == () and not full.held and 0 < full.wait <= WINDOW

    await asyncio.sleep(full.wait + 0.05)
    assert len((await alive.draw()).permit_ids) == 1


async def test_permits_given_back_count_a_window_more_from_then(
    connectors: list[Connector],
) -> None:
    budget = WriteBudget(connectors[0], "graph:t:a", limit=3, window=WINDOW, lease=30.0)
    drawn = (await budget.draw(3)).permit_ids
    await budget.release(drawn)  # answered now: free again one window later, not after 30 s

    full = await budget.draw()
    assert full.permit_ids == () and 0.5 * WINDOW < full.wait <= WINDOW
    await asyncio.sleep(full.wait + 0.05)
    assert len((await budget.draw(3)).permit_ids) == 3


async def test_one_process_draws_for_all_its_waiting_writes_at_once(
    connectors: list[Connector],
) -> None:
    pacer = _pacer(connectors[0])
    draws = 0
    draw = pacer.budget.draw

    async def counted(count: int = 1):  # the real draw, counted
        nonlocal draws
        draws += 1
        return await draw(count)

    pacer.budget.draw = counted  # type: ignore[method-assign]
    spans: list[tuple[float, float]] = []

    await _writes(pacer, LIMIT, spans)

    assert len(spans) == LIMIT and draws < LIMIT / 2
