"""The EWS subscription manager keeps an ErrorServerBusy back-off for its room alone: a long
one is not slept through, and the other rooms are subscribed meanwhile."""

from __future__ import annotations

import asyncio

from pushsync.model.outcome import Outcome
from pushsync.processes.sync import build_ews_client, build_manager
from pushsync.settings import Settings
from pushsync.simulator import generated_rooms
from pushsync.store import open_store
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.manager_checks import active_ids
from tests.acceptance.simulated_exchange import running
from tests.acceptance.sync_loop import sync_settings

TWO_HOURS_MS = 2 * 3600 * 1000


def subscribe_twice(settings: Settings) -> tuple[Outcome, Outcome]:
    """subscribe_rooms, then one more round of subscribe_missing, with one manager."""

    async def run() -> tuple[Outcome, Outcome]:
        client = build_ews_client(settings)
        try:
            async with open_store(settings) as connector:
                manager = build_manager(settings, connector, client)
                first = await asyncio.wait_for(manager.subscribe_rooms(settings.rooms), 60)
                again = await asyncio.wait_for(manager.subscribe_missing(settings.rooms), 60)
                return first, again
        finally:
            client.close()

    return asyncio.run(run())


def test_a_back_off_of_hours_holds_up_only_its_own_room(server: ServerProcess) -> None:
    rooms = generated_rooms(3)
    emails = {room.email for room in rooms}
    with running(rooms=rooms, busy_back_off_ms=TWO_HOURS_MS) as thread:
        exchange = thread.sim.exchange
        thread.call(exchange.refuse_next, "Subscribe", 1)  # whichever room asks first

        first, again = subscribe_twice(sync_settings(server, thread))

        [refused] = first.failed
        assert "ErrorServerBusy" in first.failed[refused]
        assert set(first.subscribed) == emails - {refused}
        assert set(active_ids(server)) == emails - {refused}
        assert again.subscribed == [] and again.failed == {}  # still inside its back-off
        assert thread.call(lambda: exchange.calls["Subscribe"]) == len(emails)  # asked once
