"""Graph's subscription write limit, shared through the database by several manager processes.

Each manager process has its own connector; two connectors on one database behave as two
processes do (SQLite: separate connections and writer locks; PostgreSQL: separate sessions).
The limit is made small (10 writes per second) so that a test spans a few windows in seconds.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from pushsync.errors import Throttled
from pushsync.graph.throttling import WritePacer
from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade
from pushsync.store.write_budget import SENT_MARGIN, WriteBudget
from tests.integration.conftest import free_port

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


@asynccontextmanager
async def slow_server(answer_after: float) -> AsyncIterator[str]:
    """A server that reads a request whole, then answers 201 `answer_after` seconds later (a
    Graph validating the notification URL); its URL."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
        await reader.readexactly(int(length.group(1)) if length else 0)
        await asyncio.sleep(answer_after)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/subscriptions"


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


async def test_permits_given_back_not_known_sent_count_a_window_more_from_then(
    connectors: list[Connector],
) -> None:
    budget = WriteBudget(connectors[0], "graph:t:a", limit=3, window=WINDOW, lease=30.0)
    drawn = (await budget.draw(3)).permit_ids
    # answered now, sent when not known: free again one window later, not after 30 s
    await budget.release(dict.fromkeys(drawn))

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


async def test_a_permit_sent_a_while_ago_counts_a_window_from_when_it_was_sent(
    connectors: list[Connector],
) -> None:
    """Graph counts a write when its request arrives, within `SENT_MARGIN` of its being sent,
    however long its answer took (the URL's validation): the permit counts from then."""
    window = 2.0
    budget = WriteBudget(connectors[0], "graph:t:a", limit=1, window=window, lease=30.0)
    (permit_id,) = (await budget.draw()).permit_ids
    began = time.monotonic()
    await budget.release({permit_id: 1.5})  # sent 1.5 s ago, answered just now

    full = await budget.draw()
    elapsed = time.monotonic() - began  # the wait shrinks by what passed since the release
    counts_for = window + SENT_MARGIN - 1.5
    assert full.permit_ids == () and counts_for - elapsed - 0.01 <= full.wait <= counts_for
    await asyncio.sleep(full.wait + 0.05)
    assert len((await budget.draw()).permit_ids) == 1


async def test_a_permit_sent_just_now_counts_no_longer_than_a_window_from_its_release(
    connectors: list[Connector],
) -> None:
    """The margin never makes a permit count longer than the rule it improves on: the request
    had arrived by its answer."""
    budget = WriteBudget(connectors[0], "graph:t:a", limit=1, window=WINDOW, lease=30.0)
    (permit_id,) = (await budget.draw()).permit_ids
    await budget.release({permit_id: SENT_MARGIN / 5})

    full = await budget.draw()
    assert full.permit_ids == () and 0.7 * WINDOW < full.wait <= WINDOW


async def test_a_write_sent_over_http_is_counted_from_when_it_was_sent(
    connectors: list[Connector],
) -> None:
    """The pacer hands each write a `Sent`; a request sent with it says, through httpcore's
    trace, how long ago it was sent, and a slow answer (1.2 s here) costs the budget nothing."""
    answer_after = 1.2
    window = 2.0
    budget = WriteBudget(connectors[0], "graph:t:a", limit=1, window=window, lease=30.0)
    pacer = WritePacer(budget)

    async with slow_server(answer_after) as url, httpx.AsyncClient() as http:
        async with pacer.permit(max_hold=10.0) as sent:
            await http.post(url, content=b"{}", extensions={"trace": sent.trace})
        assert sent.at is not None

        full = await budget.draw()
        # counted from the answer it would be about a whole window; a loaded box only makes
        # the request older by the release, and the wait shorter
        counts_for = window + SENT_MARGIN - answer_after
        assert full.permit_ids == () and full.wait <= counts_for


async def test_a_write_never_sent_counts_a_window_from_its_release(
    connectors: list[Connector],
) -> None:
    budget = WriteBudget(connectors[0], "graph:t:a", limit=1, window=WINDOW, lease=30.0)
    pacer = WritePacer(budget)

    async with httpx.AsyncClient() as http:
        async with pacer.permit(max_hold=10.0) as sent:
            with pytest.raises(httpx.ConnectError):  # nothing listens there
                await http.post(
                    f"http://127.0.0.1:{free_port()}/", extensions={"trace": sent.trace}
                )
        assert sent.at is None

    full = await budget.draw()
    assert full.permit_ids == () and 0.7 * WINDOW < full.wait <= WINDOW
