"""Folder events alone: the worker catches a room up with SyncFolderItems from its stored cursor.

The simulator notifies changes as the calendar folder's ModifiedEvent only (`folder_only_rate`),
as Exchange does when it coalesces; push goes to a real receiver, and the worker runs in this
process over real HTTP to the simulator and a real SQLite database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from pushsync.processes.sync import build_ews_client, build_manager, build_worker
from pushsync.simulator import Recurrence, SimulatorThread, generated_rooms
from pushsync.store import open_store
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.loop import Worker
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.simulated_exchange import meeting, running
from tests.acceptance.sync_loop import Workers, stored_rows, sync_settings, truth_rows
from tests.acceptance.worker_loop import converge

SCALE = 60.0
ROOMS = generated_rooms(2)
ROOM = ROOMS[0].email


@dataclass
class Rig:
    thread: SimulatorThread
    server: ServerProcess
    worker: Worker
    subscriptions: Subscriptions
    reservations: Reservations

    def calls(self, operation: str) -> int:
        return int(self.thread.sim.exchange.calls[operation])

    def book(self, uid: str, days: int, **fields: object) -> None:
        exchange = self.thread.sim.exchange
        start = self.thread.call(self.thread.sim.clock.now) + timedelta(days=days)
        self.thread.call(
            exchange.book, meeting(uid, start.replace(microsecond=0), **fields), [ROOM]
        )
        self.thread.call(exchange.settle)

    async def folder_rows(self, count: int) -> None:
        """Wait until `count` folder events of the room are pending (none of its items)."""
        sql = (
            "SELECT count(*) FROM sync_notification n JOIN subscription s USING (subscription_id) "
            f"WHERE s.mailbox = '{ROOM}' AND n.state = 'pending' AND n.folder_id IS NOT NULL"
        )
        deadline = time.monotonic() + 30
        while self.server.rows(sql)[0][0] < count:
            assert time.monotonic() < deadline, "the folder events did not arrive"
            await asyncio.sleep(0.05)

    async def matches_calendar(self) -> bool:
        now = self.thread.call(self.thread.sim.clock.now)
        start, end = now - timedelta(days=1), now + timedelta(days=120)
        truth = {row for row in truth_rows(self.thread, start, end) if row[0] == ROOM}
        stored = stored_rows(await self.reservations.all(), start, end)
        return bool(truth) and truth == {row for row in stored if row[0] == ROOM}

    def room(self) -> dict[str, object]:
        [row] = self.server.rows(f"SELECT * FROM room WHERE mailbox = '{ROOM}'")
        return dict(row)


@asynccontextmanager
async def rig(server: ServerProcess, thread: SimulatorThread) -> AsyncIterator[Rig]:
    """Rooms subscribed and resynced in full (which stores their cursors), heartbeats worked."""
    settings = sync_settings(server, thread, rooms=[room.email for room in ROOMS])
    client = build_ews_client(settings)
    try:
        async with open_store(settings) as connector:
            manager = build_manager(settings, connector, client)
            worker = build_worker(settings, connector, client, thread.sim.clock.now)
            await manager.subscribe_rooms(settings.rooms)
            assert await worker.resync_pending(limit=len(ROOMS)) == len(ROOMS)
            while await worker.run_once():  # the first StatusEvents
                pass
            yield Rig(thread, server, worker, Subscriptions(connector), Reservations(connector))
    finally:
        client.close()


def test_folder_events_alone_bring_one_sync_folder_items_and_the_right_reservations(
    server_factory,
) -> None:
    server = server_factory()
    with running(rooms=ROOMS, scale=SCALE, folder_only_rate=1.0) as thread:

        async def scenario() -> None:
            async with rig(server, thread) as r:
                cursor = await r.subscriptions.sync_state(ROOM)
                assert cursor, "a full resync stores the room's cursor"
                r.book("SINGLE", 1)
                r.book("SERIES", 2, recurrence=Recurrence(count=4))
                r.book("OTHER", 3)
                await r.folder_rows(6)  # two writes per booking (tentative, accepted)
                assert not r.server.rows(
                    "SELECT id FROM sync_notification WHERE state = 'pending' "
                    "AND item_id IS NOT NULL"
                ), "the simulator sent item events: this test proves nothing"
                syncs = r.calls("SyncFolderItems")

                await r.worker.run_once()

                assert r.calls("SyncFolderItems") == syncs + 1
                assert r.worker.stats.folder_syncs == 1
                assert await r.matches_calendar()
                assert await r.subscriptions.sync_state(ROOM) not in (None, cursor)
                assert not r.room()["needs_resync"]

        asyncio.run(scenario())


def test_a_throttled_fetch_leaves_the_old_cursor_and_the_rows_come_again(server_factory) -> None:
    server = server_factory()
    with running(rooms=ROOMS, scale=SCALE, folder_only_rate=1.0, busy_back_off_ms=300) as thread:

        async def scenario() -> None:
            async with rig(server, thread) as r:
                cursor = await r.subscriptions.sync_state(ROOM)
                r.book("SINGLE", 1)
                await r.folder_rows(2)
                thread.call(thread.sim.exchange.refuse_next, "GetItem")

                await r.worker.run_once()  # SyncFolderItems answers, then GetItem is refused

                assert r.worker.stats.throttled == 1
                assert await r.subscriptions.sync_state(ROOM) == cursor
                assert not await r.matches_calendar()
                await asyncio.sleep(0.4)  # the back-off, after which the rows are available

                await r.worker.run_once()

                assert await r.matches_calendar()
                assert await r.subscriptions.sync_state(ROOM) != cursor

        asyncio.run(scenario())


def test_an_expired_or_missing_cursor_asks_for_a_full_resync(server_factory) -> None:
    server = server_factory()
    with running(rooms=ROOMS, scale=SCALE, folder_only_rate=1.0) as thread:

        async def scenario() -> None:
            async with rig(server, thread) as r:
                thread.call(thread.sim.exchange.expire_sync_states, ROOM)
                r.book("SINGLE", 1)
                await r.folder_rows(2)

                await r.worker.run_once()

                room = r.room()
                assert room["needs_resync"] and room["resync_reason"] == "sync state expired"
                assert room["sync_state"] is None
                assert not r.server.rows(
                    "SELECT id FROM sync_notification WHERE folder_id IS NOT NULL "
                    "AND state <> 'done'"
                ), "the rows are done: the resync takes over"
                assert await r.worker.resync_pending(limit=1) == 1
                assert await r.matches_calendar()
                assert await r.subscriptions.sync_state(ROOM)

                await r.subscriptions.save_sync_state(ROOM, None)
                r.book("OTHER", 2)
                await r.folder_rows(2)
                syncs = r.calls("SyncFolderItems")

                await r.worker.run_once()

                assert r.calls("SyncFolderItems") == syncs, "no cursor: nothing to sync from"
                assert r.room()["resync_reason"] == "no sync state"

        asyncio.run(scenario())


def test_reservations_converge_when_half_the_changes_come_as_folder_events(
    server_factory,
) -> None:
    server = server_factory()
    config = {"activity_per_minute": 40, "folder_only_rate": 0.5, "seed": 5}
    with running(rooms=generated_rooms(3), scale=SCALE, **config) as thread:
        sim = thread.sim
        settings = sync_settings(server, thread)
        with Workers(settings, sim.clock.now, timedelta(seconds=60 / SCALE)) as workers:
            time.sleep(4)  # four Exchange minutes of random bookings
            thread.call(sim.pause_activity)
            converge(thread, server.database_url, lambda: workers.failure, deadline_s=60)
        stats = workers.workers[0].stats
    assert stats.folder_syncs > 0
    assert not server.rows("SELECT id FROM sync_notification WHERE state = 'failed'")
