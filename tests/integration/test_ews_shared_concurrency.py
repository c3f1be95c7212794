"""EWSMaxConcurrency shared by two processes of one account (`ews/concurrency.py`): each takes
half once the process table counts both, and together they stay under the simulator's cap,
which two clients with the whole cap each exceed. Real rows on both engines, a real simulator.

The simulator holds each request `service_ms`, so calls overlap as against a real server and
the cap is reached; without that, the first assertion (the cap exceeded) would not hold and
the test would prove nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from pydantic import SecretStr

from pushsync.ews.auth import EwsCredentials
from pushsync.ews.client import EwsClient
from pushsync.model.clock import utcnow
from pushsync.processes.sync import share_ews_concurrency
from pushsync.settings import Settings
from pushsync.simulator import SimulatorConfig, SimulatorThread, generated_rooms
from pushsync.store import Connector
from pushsync.store.processes import ProcessHeartbeats, this_process

CAP = 6
ROOMS = generated_rooms(4 * CAP)


def clients(thread: SimulatorThread) -> list[EwsClient]:
    """Two clients as two processes would have: exchangelib keeps one connection pool per
    endpoint and credentials in a process, so the second reaches the simulator by another
    name (localhost) to get a pool of its own."""
    sim = thread.sim
    credentials = EwsCredentials(
        kind="basic", username=sim.config.username, password=SecretStr(sim.config.password)
    )
    other_name = sim.ews_url.replace("127.0.0.1", "localhost")
    assert other_name != sim.ews_url
    return [EwsClient(url, credentials, max_concurrency=CAP) for url in (sim.ews_url, other_name)]


async def read_calendars(clients: Sequence[EwsClient]) -> None:
    """Every room's calendar through every client at once (one SyncFolderItems each)."""
    await asyncio.gather(
        *(c.sync_calendar(room.email, None) for c in clients for room in ROOMS),
        return_exceptions=True,  # refused calls are the simulator's count, not the test's
    )


@contextlib.asynccontextmanager
async def sharing(
    settings: Settings, connector: Connector, clients: Sequence[EwsClient]
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(share_ews_concurrency(settings, connector, c, stop)) for c in clients
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*loops)


async def test_two_processes_take_half_each_and_stay_under_the_cap(
    connector: Connector, database_url: str
) -> None:
    config = SimulatorConfig(rooms=ROOMS, service_ms=40, ews_max_concurrency=CAP)
    with SimulatorThread(config) as thread:
        exchange = thread.sim.exchange
        alone = clients(thread)
        try:
            await read_calendars(alone)
        finally:
            for c in alone:
                c.close()
        assert thread.call(lambda: exchange.violations["ews.concurrency"]) > 0  # proof of cap

        heartbeats = ProcessHeartbeats(connector)
        now = utcnow()
        await heartbeats.register("worker", "ews", now)  # this process, as its heartbeat does
        await heartbeats.register("manager", "ews", now)  # the same process, counted once
        await heartbeats.register("worker", "ews", now, host="rooms-2")
        await heartbeats.register("worker", "graph", now, host="rooms-3")  # not EWS's share
        settings = Settings(database_url=database_url)
        shared = clients(thread)
        thread.call(lambda: exchange.violations.clear())
        try:
            async with sharing(settings, connector, shared):
                for _ in range(100):
                    if all(c.concurrency == CAP // 2 for c in shared):
                        break
                    await asyncio.sleep(0.05)
                assert [c.concurrency for c in shared] == [CAP // 2, CAP // 2]
                await read_calendars(shared)
        finally:
            for c in shared:
                c.close()
        assert thread.call(lambda: exchange.violations["ews.concurrency"]) == 0
        assert thread.call(lambda: exchange.calls["SyncFolderItems"]) >= 4 * len(ROOMS)


async def test_the_share_counts_live_ews_processes_only(
    connector: Connector, database_url: str
) -> None:
    heartbeats = ProcessHeartbeats(connector)
    now = utcnow()
    await heartbeats.register("worker", "ews", now)
    other = await heartbeats.register("worker", "ews", now, host="rooms-2")
    dead_after = timedelta(seconds=60)
    assert len(await heartbeats.sharing("ews", now, dead_after)) == 2

    await heartbeats.stopped(other, now)
    assert await heartbeats.sharing("ews", now, dead_after) == {this_process()}
    assert await heartbeats.sharing("graph", now, dead_after) == set()


async def test_a_starting_process_calls_nothing_until_the_table_shows_it(
    connector: Connector, database_url: str
) -> None:
    config = SimulatorConfig(rooms=ROOMS, ews_max_concurrency=CAP)
    with SimulatorThread(config) as thread:
        (first, _) = clients(thread)
        settings = Settings(database_url=database_url)
        try:
            async with sharing(settings, connector, [first]):
                call = asyncio.create_task(first.sync_calendar(ROOMS[0].email, None))
                await asyncio.sleep(1.5)  # a count or two: the table does not show it yet
                assert not call.done() and first.concurrency == 0
                await ProcessHeartbeats(connector).register("worker", "ews", utcnow())
                await asyncio.wait_for(call, 10)  # seen, counted again: the call goes
                assert first.concurrency == CAP
        finally:
            first.close()
