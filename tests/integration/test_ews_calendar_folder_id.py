"""A room's EWS calendar folder id is stored with its full read, so that a worker process that
did not read the room (another process, or this one restarted) asks Exchange no GetFolder for
it: real rows on both engines, the Exchange simulator counting the calls per operation.

Each worker has an EwsClient of its own, as two processes would: the second knows nothing of
the room but what the database holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest

from pushsync.ews.adapter import EwsAdapter
from pushsync.ews.calendar_source import EwsCalendar
from pushsync.ews.client import EwsClient
from pushsync.model.notification import Notification
from pushsync.model.reservation import Plan
from pushsync.processes.sync import build_ews_client
from pushsync.settings import Settings
from pushsync.simulator import SimulatorThread
from pushsync.simulator.items import Folder
from pushsync.store import Connector
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.loop import Worker
from tests.acceptance.simulated_exchange import meeting, running
from tests.acceptance.sync_loop import stored_rows, truth_rows
from tests.integration.helpers import T0, add_rows, query

ROOM = "room-001@contoso.example"


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    with running() as thread:
        yield thread


@pytest.fixture
def clients(simulator: SimulatorThread) -> Iterator[list[EwsClient]]:
    sim = simulator.sim
    settings = Settings(
        ews_url=sim.ews_url,
        ews_auth="basic",
        ews_username=sim.config.username,
        ews_password=sim.config.password,
    )
    made = [build_ews_client(settings) for _ in range(2)]
    yield made
    for client in made:
        client.close()


def calendar(connector: Connector, client: EwsClient, thread: SimulatorThread) -> EwsCalendar:
    """The worker's source as `build_worker` makes it: the stored id looked up in the room."""
    return EwsCalendar(
        client,
        past=timedelta(days=1),
        future=timedelta(days=30),
        clock=thread.sim.clock.now,
        stored_calendar_id=Subscriptions(connector).calendar_folder_id,
    )


def worker(
    connector: Connector,
    client: EwsClient,
    thread: SimulatorThread,
    source: EwsCalendar | None = None,
) -> Worker:
    subscriptions = Subscriptions(connector)
    source = source or calendar(connector, client, thread)
    return Worker(
        NotificationQueue(connector),
        Reservations(connector),
        subscriptions,
        {"ews": EwsAdapter(source, subscriptions)},
        debounce=timedelta(0),
    )


def book(thread: SimulatorThread, uid: str, days: int) -> str:
    """A meeting in the room, `days` from Exchange's now; its item id."""
    start = thread.call(thread.sim.clock.now).replace(microsecond=0) + timedelta(days=days)
    exchange = thread.sim.exchange
    thread.call(exchange.book, meeting(uid, start), [ROOM])
    thread.call(exchange.settle)
    return str(thread.call(exchange.calendar(ROOM).by_uid, uid).item_id)


def calendar_folder(thread: SimulatorThread) -> str:
    return str(thread.call(thread.sim.exchange.calendar, ROOM).folder_ids[Folder.CALENDAR])


def calls(thread: SimulatorThread, operation: str) -> int:
    return int(thread.call(lambda: thread.sim.exchange.calls[operation]))


async def matches_calendar(thread: SimulatorThread, connector: Connector) -> bool:
    now = thread.call(thread.sim.clock.now)
    start, end = now - timedelta(days=1), now + timedelta(days=30)
    truth = {row for row in truth_rows(thread, start, end) if row[0] == ROOM}
    stored = stored_rows(await Reservations(connector).all(), start, end)
    return bool(truth) and truth == {row for row in stored if row[0] == ROOM}


async def read_by_one_worker(
    connector: Connector, client: EwsClient, thread: SimulatorThread
) -> Subscriptions:
    """The room subscribed and read in full by the first worker process."""
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", T0)
    await subscriptions.record(
        ROOM, "S1", protocol="ews", watermark="W0", status_frequency=15, now=T0
    )
    book(thread, "FIRST", 1)
    book(thread, "SECOND", 2)
    assert await worker(connector, client, thread).resync(ROOM) == 1
    return subscriptions


def folder_event(folder_id: str) -> Notification:
    """A ModifiedEvent of the calendar folder alone: Exchange coalesced the change into it."""
    return Notification(
        protocol="ews", subscription_id="S1", event_type="Modified", watermark="W1",
        previous_watermark="W0", folder_id=folder_id, event_time=T0,
    )  # fmt: skip


def item_event(item_id: str, folder_id: str) -> Notification:
    return Notification(
        protocol="ews", subscription_id="S1", event_type="Created", watermark="W1",
        previous_watermark="W0", item_id=item_id, parent_folder_id=folder_id, event_time=T0,
    )  # fmt: skip


async def test_the_first_full_read_stores_the_calendar_folder_id(
    connector: Connector, database_url: str, simulator: SimulatorThread, clients: list[EwsClient]
) -> None:
    subscriptions = await read_by_one_worker(connector, clients[0], simulator)

    assert await subscriptions.calendar_folder_id(ROOM) == calendar_folder(simulator)
    [room] = query(database_url, f"SELECT * FROM room WHERE mailbox = '{ROOM}'")
    assert room["sync_state"], "written with the cursor"


@pytest.mark.parametrize("event", ["folder", "item"])
async def test_another_worker_asks_no_get_folder_for_a_room_read_before(
    connector: Connector, simulator: SimulatorThread, clients: list[EwsClient], event: str
) -> None:
    """A folder event (is it the calendar's own?) and an item event (is the item still in the
    calendar?) both need the id; the second worker takes it from the database."""
    first, second = clients
    await read_by_one_worker(connector, first, simulator)
    folder_id = calendar_folder(simulator)
    added = book(simulator, "THIRD", 3)
    row = folder_event(folder_id) if event == "folder" else item_event(added, folder_id)
    await add_rows(connector, [row])
    asked = calls(simulator, "GetFolder")
    other = worker(connector, second, simulator)

    assert await other.run_once() == 1

    assert calls(simulator, "GetFolder") == asked == 0
    assert other.stats.folder_syncs == (1 if event == "folder" else 0)
    assert await matches_calendar(simulator, connector)
    [done] = await NotificationQueue(connector).listed(1)
    assert done["state"] == "done"


async def test_a_room_without_a_stored_id_costs_the_other_worker_one_get_folder(
    connector: Connector, database_url: str, simulator: SimulatorThread, clients: list[EwsClient]
) -> None:
    """The control: as a room read before migration 0019, the id is asked of Exchange (so the
    test above counts GetFolder where it would be sent), once per process."""
    first, second = clients
    await read_by_one_worker(connector, first, simulator)
    query(database_url, "UPDATE room SET calendar_folder_id = NULL")
    book(simulator, "THIRD", 3)
    await add_rows(connector, [folder_event(calendar_folder(simulator))])
    other = worker(connector, second, simulator)

    assert await other.run_once() == 1

    assert calls(simulator, "GetFolder") == 1
    assert await matches_calendar(simulator, connector)


async def test_a_full_read_replaces_a_stored_id_its_items_contradict(
    connector: Connector, database_url: str, simulator: SimulatorThread, clients: list[EwsClient]
) -> None:
    """A stale id would make every fetched item look moved out of the calendar: the items of
    the next full read name the folder, and their word is kept and stored, over the stale one
    the process had taken from the database."""
    subscriptions = await read_by_one_worker(connector, clients[0], simulator)
    query(database_url, "UPDATE room SET calendar_folder_id = 'STALE'")
    source = calendar(connector, clients[1], simulator)
    assert await source.calendar_folder_id(ROOM) == "STALE"

    assert await worker(connector, clients[1], simulator, source).resync(ROOM, full=True) == 1

    assert await subscriptions.calendar_folder_id(ROOM) == calendar_folder(simulator)
    assert await source.calendar_folder_id(ROOM) == calendar_folder(simulator)


async def test_a_read_that_names_no_folder_keeps_the_stored_id(connector: Connector) -> None:
    """A Graph room's read, or an empty calendar's, carries no id: the stored one stays."""
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", T0)
    reservations = Reservations(connector)

    async def full_read(folder_id: str | None) -> str | None:
        await reservations.reconcile_room(
            ROOM, lambda _stored: Plan(), T0, resynced=0, calendar_folder_id=folder_id
        )
        return await subscriptions.calendar_folder_id(ROOM)

    assert await subscriptions.calendar_folder_id(ROOM) is None
    assert await full_read(None) is None
    assert await full_read("CAL-1") == "CAL-1"
    assert await full_read(None) == "CAL-1"


def test_the_id_travels_with_the_snapshot(
    simulator: SimulatorThread, clients: list[EwsClient]
) -> None:
    """EwsCalendar alone: the snapshot carries the id the view's items named, no GetFolder."""
    book(simulator, "FIRST", 1)
    source = EwsCalendar(
        clients[0], past=timedelta(days=1), future=timedelta(days=30), clock=simulator.sim.clock.now
    )
    snapshot = asyncio.run(source.observe_room(ROOM))

    assert snapshot.calendar_folder_id == calendar_folder(simulator)
    assert calls(simulator, "GetFolder") == 0
