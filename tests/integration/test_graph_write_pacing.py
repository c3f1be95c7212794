"""Graph subscription managers keep to the tenant's write limit as Graph counts it.

The simulator plays Graph with its write limit made small (20 writes per 2 seconds, sliding)
and counts every write beyond it; a real `pushsync serve` answers Graph's validation requests.
The managers' database is the engine under test, the receiver keeps its own SQLite file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from pushsync.graph.auth import static_token
from pushsync.graph.client import GraphClient
from pushsync.graph.subscription_manager import GraphSubscriptionManager, default_pacer
from pushsync.simulator import Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.simulator.graph.subscription_limit import SubscriptionWriteLimit
from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade
from pushsync.store.subscriptions import Subscriptions
from tests.acceptance.conftest import ServerProcess, server_factory

__all__ = ["server_factory"]  # the fixture, from the acceptance tests

STATE = "write-pacing-state"
LIMIT, WINDOW = 20, 2.0
ROOMS = 44


@dataclass
class Process:
    """What one `pushsync worker` process holds: its connector, client and manager."""

    connector: Connector
    client: GraphClient
    manager: GraphSubscriptionManager


@dataclass
class Fleet:
    sim: Simulator
    limit: SubscriptionWriteLimit
    start: Callable[[], asyncio.Future[Process]]

    @property
    def rooms(self) -> list[str]:
        return [room.email for room in self.sim.config.rooms]

    def subscribed(self) -> set[str]:
        return {s.calendar.mailbox for s in self.sim.graph.webhooks.active()}


@pytest.fixture
async def fleet(server_factory, database_url: str) -> AsyncIterator[Fleet]:
    server: ServerProcess = server_factory(pushsync_graph_client_state=STATE)
    started: list[Process] = []
    async with Simulator(SimulatorConfig(rooms=generated_rooms(ROOMS))) as sim:
        limit = SubscriptionWriteLimit(LIMIT, WINDOW)
        sim.graph.write_limit = limit

        async def start() -> Process:
            connector = connect(database_url)
            await connector.open()
            await upgrade(connector)
            client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
            subscriptions = Subscriptions(connector)
            manager = GraphSubscriptionManager(
                client,
                subscriptions,
                notification_url=server.url + "/graph/notifications",
                client_state=STATE,
                writes=default_pacer(subscriptions, "graph:t:a", limit=LIMIT, window=WINDOW),
                clock=sim.clock.now,
            )
            started.append(Process(connector, client, manager))
            return started[-1]

        try:
            yield Fleet(sim, limit, start)  # type: ignore[arg-type]
        finally:
            for process in started:
                await process.client.aclose()
                await process.connector.close()


async def test_two_managers_subscribing_together_never_exceed_the_tenant_limit(
    fleet: Fleet,
) -> None:
    first, second = await fleet.start(), await fleet.start()
    half = len(fleet.rooms) // 2

    outcomes = await asyncio.wait_for(
        asyncio.gather(
            first.manager.subscribe_rooms(fleet.rooms[:half]),
            second.manager.subscribe_rooms(fleet.rooms[half:]),
        ),
        120,
    )

    assert fleet.subscribed() == set(fleet.rooms)
    assert not any(o.failed for o in outcomes)
    assert fleet.limit.violations == 0
    assert fleet.limit.most_in_any_window() <= LIMIT
    assert len(fleet.limit.writes) == len(fleet.rooms)  # one create each, none refused
    assert first.manager.writes.waited > 0 or second.manager.writes.waited > 0


async def test_slow_creates_are_paced_at_the_window_not_at_the_window_and_their_latency(
    fleet: Fleet,
) -> None:
    """Graph counts a create when it arrives and answers it after validating the notification
    URL (3 s more here): a write goes a window (and the margin) after the write `LIMIT`
    before it, not a window after that one's answer, and none is refused. Counted from the
    answer, no gap could be shorter than the window and the latency: the bound below is
    that rule's, not a timing this box must meet (it holds however slow the box is, short of
    seconds lost per write)."""
    latency = 3.0
    fleet.sim.graph.create_latency = latency
    process = await fleet.start()

    outcome = await asyncio.wait_for(process.manager.subscribe_rooms(fleet.rooms), 120)

    assert not outcome.failed and fleet.subscribed() == set(fleet.rooms)
    assert fleet.limit.violations == 0
    assert len(fleet.limit.writes) == len(fleet.rooms)  # one create each, none refused
    arrived = [w.at for w in fleet.limit.writes]
    gaps = sorted(b - a for a, b in zip(arrived, arrived[LIMIT:], strict=False))
    median = gaps[len(gaps) // 2]
    # counting from the answer, each gap would be at least WINDOW + latency (5 s)
    assert WINDOW <= median < WINDOW + latency


async def test_a_storm_of_tenant_limit_429s_is_waited_out_and_every_room_subscribed(
    fleet: Fleet,
) -> None:
    """Graph refuses writes for the tenant's limit whatever our rate (another installation of
    the same app, a lowered limit): the manager holds every write for the Retry-After, never
    goes beyond the limit itself, and ends with every room subscribed."""
    process = await fleet.start()
    fleet.limit.storm(12, retry_after=2)
    stop = asyncio.Event()
    running = asyncio.create_task(process.manager.run(stop, fleet.rooms, 0.2))
    try:
        deadline = asyncio.get_running_loop().time() + 120
        while fleet.subscribed() != set(fleet.rooms):
            assert asyncio.get_running_loop().time() < deadline, "not every room subscribed"
            assert not running.done(), running
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)

    refused = [w for w in fleet.limit.writes if w.refused_for]
    assert len(refused) == 12  # the storm was met, and the manager went on
    assert fleet.limit.violations == 0  # no write beyond the limit
    assert fleet.limit.early_writes(grace=1.0) == 0  # none while a Retry-After ran
    rows = await Subscriptions(process.connector).live()
    assert {r.mailbox for r in rows} == set(fleet.rooms)
