"""A Graph fleet, small: what bench/fleet --protocol graph measures at 10,000 rooms and more,
kept from coming back.

More rooms than two of Graph's write windows hold (500 subscription writes per 20 s per app and
tenant, https://learn.microsoft.com/graph/throttling-limits#subscription-service-limits),
onboarded by the Graph manager and the worker as `pushsync worker` builds them
(processes/sync.py), against a simulator that counts the limit on its own clock and refuses a
write beyond it: every room subscribed and its first sync equal to the simulator's calendar,
not one write refused, and no 20 s window of Exchange time holding more than 500 writes. The
manager's write window is the simulator's 20 s in real seconds, as bench/fleet sets it. No
figure of speed is asserted: how close onboarding comes to the limit is bench/fleet's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

from pushsync.processes.sync import build_clients, build_graph_manager, build_worker
from pushsync.settings import Settings
from pushsync.simulator import Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.demo import stored_rows, truth_rows
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.store import open_store
from pushsync.store.reservation_book import Reservations
from tests.acceptance.conftest import CALLBACK_TOKEN, ServerProcess
from tests.acceptance.simulated_exchange import meeting

ROOMS = 1_100  # three write windows: the pacer must wait twice
SCALE = 4.0  # Exchange seconds per real second: a window is 5 real seconds
STATE = "graph-fleet-state"
LIMIT, WINDOW = 500, 20.0  # Graph's, on the simulator's clock


def seed(exchange: Exchange) -> None:
    """One accepted meeting in every room, on the coming days."""
    today = exchange.clock.now().replace(hour=9, minute=0, second=0, microsecond=0)
    for n, mailbox in enumerate(sorted(exchange.calendars)):
        start = today + timedelta(days=1 + n % 5, hours=n % 8)
        exchange.book(meeting(f"GRAPH-FLEET-{n}", start), [mailbox])
    exchange.settle()


def settings_for(server: ServerProcess, sim: Simulator) -> Settings:
    return Settings(
        database_url=server.database_url,
        public_url=server.url,
        callback_token=CALLBACK_TOKEN,
        protocol="graph",
        graph_url=sim.graph_url,
        graph_token=GRAPH_TOKEN,
        graph_client_state=STATE,
        rooms=[room.email for room in sim.config.rooms],
        subscription_check_seconds=1.0,
        resync_interval_hours=0,
        sync_window_past_days=1,
        sync_window_future_days=60,
        graph_subscription_write_limit=LIMIT,
        graph_subscription_write_window_seconds=WINDOW / SCALE,  # the pacer counts real time
    )


async def until(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def test_a_graph_fleet_is_onboarded_within_the_write_limit_and_converges(
    server_factory,
) -> None:
    server = server_factory(pushsync_graph_client_state=STATE)
    config = SimulatorConfig(
        rooms=generated_rooms(ROOMS),
        scale=SCALE,
        service_ms=5,
        graph_subscription_writes=LIMIT,
        graph_subscription_window_seconds=WINDOW,
    )
    async with Simulator(config) as sim:
        assert sim.graph is not None
        seed(sim.exchange)
        settings = settings_for(server, sim)
        clients = build_clients(settings)
        stop = asyncio.Event()
        async with open_store(settings) as connector:
            manager = build_graph_manager(settings, connector, clients.graph, sim.clock.now)
            worker = build_worker(settings, connector, None, sim.clock.now, graph=clients.graph)
            every = settings.subscription_check_seconds
            running = asyncio.gather(worker.run(stop), manager.run(stop, settings.rooms, every))
            try:
                await until(lambda: active(server) == ROOMS, "every room subscribed", 300)
                await until(lambda: synced(server) == ROOMS, "every room's first sync", 600)
            finally:
                stop.set()
                await running
            stored = await Reservations(connector).all()
        await clients.aclose()
        limit = sim.graph.write_limit
        refused = [w for w in limit.writes if w.refused_for]
        window = (sim.clock.now() - timedelta(days=1), sim.clock.now() + timedelta(days=60))
        truth = sim.exchange.truth(*window)

    assert manager.given_up == {}
    assert refused == [] and sim.exchange.violations == {}
    assert len(limit.writes) >= ROOMS  # one create each (a renewal, were one due, counts too)
    assert limit.most_in_any_window() <= LIMIT
    assert len(truth) == ROOMS
    assert stored_rows(stored, *window) == truth_rows(truth)


def active(server: ServerProcess) -> int:
    [row] = server.rows("SELECT count(*) AS n FROM subscription WHERE state = 'active'")
    return int(row["n"])


def synced(server: ServerProcess) -> int:
    [row] = server.rows(
        "SELECT count(*) AS n FROM room WHERE last_synced_at IS NOT NULL AND NOT needs_resync"
    )
    return int(row["n"])
