"""Two worker processes share Exchange's back-off: when one is refused for a room, the other sends
that room nothing until the back-off has passed (the pause is kept in `room.paused_until`).

Each worker has its own EWS client, as two processes would, and they share one database.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from pushsync.processes.sync import build_ews_client, build_manager, build_worker
from pushsync.simulator import SimulatorThread, generated_rooms
from pushsync.simulator.exchange import Request
from pushsync.store import open_store
from pushsync.store.reservation_book import Reservations
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.simulated_exchange import meeting, running
from tests.acceptance.sync_loop import stored_rows, sync_settings, truth_rows

ROOMS = generated_rooms(2)
ROOM = ROOMS[0].email
BACK_OFF_MS = 2000


def book(thread: SimulatorThread, uid: str, days: int) -> None:
    start = thread.call(thread.sim.clock.now).replace(microsecond=0) + timedelta(days=days)
    thread.call(thread.sim.exchange.book, meeting(uid, start), [ROOM])
    thread.call(thread.sim.exchange.settle)


def pending_item_rows(server: ServerProcess) -> int:
    sql = (
        "SELECT count(*) FROM sync_notification n JOIN subscription s USING (subscription_id) "
        f"WHERE s.mailbox = '{ROOM}' AND n.state = 'pending' AND n.item_id IS NOT NULL"
    )
    return int(server.rows(sql)[0][0])


async def more_rows(server: ServerProcess, than: int) -> None:
    deadline = time.monotonic() + 30
    while pending_item_rows(server) <= than:
        assert time.monotonic() < deadline, "the booking's notifications did not arrive"
        await asyncio.sleep(0.05)


async def scenario(server: ServerProcess, thread: SimulatorThread) -> tuple[list[Request], ...]:
    settings = sync_settings(server, thread, rooms=[room.email for room in ROOMS])
    first, second = build_ews_client(settings), build_ews_client(settings)
    try:
        async with open_store(settings) as connector:
            manager = build_manager(settings, connector, first)
            one = build_worker(settings, connector, first, thread.sim.clock.now)
            two = build_worker(settings, connector, second, thread.sim.clock.now)
            await manager.subscribe_rooms(settings.rooms)
            while await one.resync_pending(limit=len(ROOMS)):
                pass
            while await one.run_once():
                pass

            book(thread, "FIRST", 1)
            await more_rows(server, 0)
            thread.call(thread.sim.exchange.refuse_next, "GetItem")
            before: list[Request] = []
            thread.call(setattr, thread.sim.exchange, "journal", before)
            await one.run_once()  # refused: FIRST's rows wait out the back-off
            thread.call(setattr, thread.sim.exchange, "journal", None)
            assert one.stats.throttled == 1

            book(thread, "SECOND", 2)
            await more_rows(server, pending_item_rows(server))
            during: list[Request] = []
            thread.call(setattr, thread.sim.exchange, "journal", during)
            await two.run_once()  # SECOND's rows: the other process's pause holds
            thread.call(setattr, thread.sim.exchange, "journal", None)
            assert two.stats.throttled == 0 and two.paused_until(ROOM) is not None

            await asyncio.sleep(BACK_OFF_MS / 1000)
            while await two.run_once():
                pass
            now = thread.call(thread.sim.clock.now)
            start, end = now - timedelta(days=1), now + timedelta(days=120)
            truth = {row for row in truth_rows(thread, start, end) if row[0] == ROOM}
            stored = stored_rows(await Reservations(connector).for_room(ROOM), start, end)
            assert {row[1] for row in truth} == {"FIRST", "SECOND"}
            assert stored == truth
            return before, during
    finally:
        first.close()
        second.close()


def test_a_back_off_one_worker_was_given_holds_for_the_other(server: ServerProcess) -> None:
    with running(rooms=ROOMS, scale=60, busy_back_off_ms=BACK_OFF_MS) as thread:
        before, during = asyncio.run(scenario(server, thread))

    refused = [r for r in before if r.busy]
    assert [r.operation for r in refused] == ["GetItem"]
    assert refused[0].mailbox is not None and refused[0].mailbox.lower() == ROOM
    assert [r for r in during if (r.mailbox or "").lower() == ROOM] == []
    released = server.rows(
        "SELECT count(*) FROM sync_notification WHERE state = 'done' AND available_at IS NOT NULL"
    )
    assert released[0][0] >= 2  # FIRST's rows by the one, SECOND's by the other
