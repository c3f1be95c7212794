"""A fleet subscribed against a throttling simulator: it finishes, stays under the cap, reports
progress for every room; and the real `pushsync subscriptions sync` does the same.

The fleet is many times the cap, which is what the cap needs to be seen at work; its size
beyond that is not the point here (it was 500 rooms, for a quarter of the suite's time).

The simulator takes `service_ms` over each request so requests overlap as they do against a
real server; without it the cap could not be seen exceeded, and the assertion would prove nothing.
"""

from __future__ import annotations

import asyncio
import os

from pushsync.model.outcome import Outcome
from pushsync.processes.sync import build_ews_client, build_manager
from pushsync.settings import Settings
from pushsync.simulator import generated_rooms
from pushsync.store import open_store
from tests.acceptance.conftest import CALLBACK_TOKEN, ServerProcess, run_pushsync
from tests.acceptance.manager_checks import active_ids
from tests.acceptance.simulated_exchange import running
from tests.acceptance.sync_loop import sync_settings

ROOMS = 120  # fifteen times the cap
CLI_ROOMS = 40  # the command's own run: five times the cap
CAP = 8


def subscribe(settings: Settings, progress: list[tuple[str, bool]]) -> Outcome:
    async def run() -> Outcome:
        client = build_ews_client(settings)
        try:
            async with open_store(settings) as connector:
                manager = build_manager(settings, connector, client)
                return await manager.subscribe_rooms(
                    settings.rooms, lambda room, ok: progress.append((room, ok))
                )
        finally:
            client.close()

    return asyncio.run(run())


def test_a_fleet_under_throttling_stays_under_the_concurrency_cap(server: ServerProcess) -> None:
    rooms = generated_rooms(ROOMS)
    emails = [room.email for room in rooms]
    # One in five calls is refused with ErrorServerBusy (back off 20 ms); 5 ms per request.
    with running(rooms=rooms, scale=60, busy_rate=0.2, busy_back_off_ms=20, service_ms=5) as thread:
        exchange = thread.sim.exchange
        settings = sync_settings(
            server, thread, ews_max_concurrency=CAP, status_frequency_minutes=30
        )
        progress: list[tuple[str, bool]] = []

        outcome = subscribe(settings, progress)

        assert outcome.failed == {}
        assert sorted(outcome.subscribed) == emails
        assert sorted(room for room, ok in progress if ok) == emails  # each room, once
        assert len(progress) == ROOMS
        assert set(active_ids(server)) == set(emails)
        subscribes = thread.call(lambda: exchange.calls["Subscribe"])
        assert subscribes > ROOMS  # some were refused as busy and sent again
        peak = thread.call(lambda: exchange.max_in_flight_by_operation["Subscribe"])
        assert 1 < peak <= CAP  # concurrent, never above the cap

        # The real command, on a database of its own: exits 0 and says how many it subscribed.
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": f"sqlite:///{server.database.with_name('cli.db')}",
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "PUSHSYNC_ROOMS": ",".join(emails[:CLI_ROOMS]),
            "PUSHSYNC_EWS_URL": thread.sim.ews_url,
            "PUSHSYNC_EWS_AUTH": "basic",
            "PUSHSYNC_EWS_USERNAME": thread.sim.config.username,
            "PUSHSYNC_EWS_PASSWORD": thread.sim.config.password,
            "PUSHSYNC_EWS_MAX_CONCURRENCY": str(CAP),
            "PUSHSYNC_STATUS_FREQUENCY_MINUTES": "30",
        }
        thread.call(lambda: exchange.max_in_flight_by_operation.clear())
        output = run_pushsync("subscriptions", "sync", env=env, timeout=120)
        assert f"subscribed {CLI_ROOMS}, failed 0" in output
        assert thread.call(lambda: exchange.max_in_flight_by_operation["Subscribe"]) <= CAP
