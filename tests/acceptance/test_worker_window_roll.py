"""The sync window moves with time: occurrences of a series that enter its far end are stored by
the periodic full resync, although no notification announces them (nothing changed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from pushsync.ews.adapter import EwsAdapter
from pushsync.ews.calendar_source import EwsCalendar
from pushsync.processes.sync import build_ews_client
from pushsync.settings import Settings
from pushsync.simulator import Recurrence, SimulatorThread
from pushsync.store import connect
from pushsync.store.migrations import upgrade
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.loop import Worker
from tests.acceptance.simulated_exchange import meeting, running

ROOM = "room-001@contoso.example"
DAY = timedelta(days=1)


def starts_in_window(thread: SimulatorThread, future: timedelta) -> list:
    now = thread.call(thread.sim.clock.now)
    instances = thread.call(thread.sim.exchange.truth, now - DAY, now + future)
    return sorted(i.original_start for i in instances if i.uid == "DAILY")


async def roll(thread: SimulatorThread, database: Path) -> list[tuple[int, list, list]]:
    """Resync rounds: (rooms resynced, starts stored, starts in the window) after each."""
    sim = thread.sim
    client = build_ews_client(
        Settings(
            ews_url=sim.ews_url,
            ews_auth="basic",
            ews_username=sim.config.username,
            ews_password=sim.config.password,
        )
    )
    connector = connect(f"sqlite:///{database}")
    await connector.open()
    try:
        await upgrade(connector)
        subscriptions = Subscriptions(connector)
        await subscriptions.ensure_rooms([ROOM], "ews", sim.clock.now())
        await subscriptions.record(  # a live subscription: the room is being kept in sync
            ROOM,
            "SUB-1",
            protocol="ews",
            watermark="W0",
            status_frequency=15,
            now=sim.clock.now(),
        )
        future = 3 * DAY
        calendar = EwsCalendar(client, past=DAY, future=future, clock=sim.clock.now)
        worker = Worker(
            NotificationQueue(connector),
            Reservations(connector),
            subscriptions,
            {"ews": EwsAdapter(calendar, subscriptions)},
            resync_every=DAY,
            clock=sim.clock.now,
        )
        rounds = []
        for advance in (timedelta(0), timedelta(0), 2 * DAY):
            thread.call(sim.clock.advance, advance.total_seconds())
            done = await worker.resync_pending(limit=2)
            stored = sorted(r.original_start for r in await Reservations(connector).for_room(ROOM))
            rounds.append((done, stored, starts_in_window(thread, future)))
        return rounds
    finally:
        await connector.close()
        client.close()


def test_the_periodic_resync_stores_occurrences_entering_the_window(tmp_path: Path) -> None:
    with running() as thread:
        start = thread.call(thread.sim.clock.now).replace(microsecond=0) + DAY
        series = meeting("DAILY", start, recurrence=Recurrence(count=10))
        thread.call(thread.sim.exchange.book, series, [ROOM])
        thread.call(thread.sim.exchange.settle)

        (first, seen, window), (again, _, _), (later, rolled, moved) = asyncio.run(
            roll(thread, tmp_path / "pushsync.db")
        )

    assert first == 1 and seen == window and len(window) >= 2  # the new room's first resync
    assert again == 0  # synced a moment ago: not due
    assert later == 1  # two days on: due again
    assert len(moved) > len(window)  # later occurrences entered the window's far end
    assert set(moved) <= set(rolled)
