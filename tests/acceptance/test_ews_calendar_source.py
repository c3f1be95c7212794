"""EwsCalendar against the simulator, with a change falling between two of its requests.

A resync or a series expansion reads the calendar in several requests (CalendarView, then
GetItem for the series masters). A series deleted in between must not leave rows behind that
its deletion's notification can no longer match (they would lack the master's id).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from pushsync.ews.calendar_source import EwsCalendar
from pushsync.ews.client import EwsClient
from pushsync.model.reservation import Snapshot
from pushsync.processes.sync import build_ews_client
from pushsync.settings import Settings
from pushsync.simulator import Recurrence, SimulatorThread
from pushsync.simulator.items import Folder
from tests.acceptance.simulated_exchange import meeting, running

ROOM = "room-001@contoso.example"


class DeletesAfterTheView:
    """Wraps the client: the first CalendarView answer is followed by the series' deletion
    (or, given `occurrence`, by the deletion of that one occurrence)."""

    def __init__(
        self,
        client: EwsClient,
        thread: SimulatorThread,
        uid: str,
        occurrence: datetime | None = None,
    ) -> None:
        self._client = client
        self._thread = thread
        self._uid = uid
        self._occurrence = occurrence
        self.deleted = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def calendar_view(self, *args: Any, **kwargs: Any) -> list[Any]:
        found = await self._client.calendar_view(*args, **kwargs)
        if not self.deleted:
            exchange = self._thread.sim.exchange
            if self._occurrence is None:
                self._thread.call(exchange.delete, self._uid)
            else:
                self._thread.call(exchange.delete_occurrence, self._uid, self._occurrence)
            self.deleted = True
        return found


def ews_client(thread: SimulatorThread) -> EwsClient:
    config = thread.sim.config
    settings = Settings(
        ews_url=thread.sim.ews_url,
        ews_auth="basic",
        ews_username=config.username,
        ews_password=config.password,
    )
    return build_ews_client(settings)


def calendar(thread: SimulatorThread, uid: str) -> tuple[EwsCalendar, DeletesAfterTheView]:
    client = DeletesAfterTheView(ews_client(thread), thread, uid)
    source = EwsCalendar(
        client,  # type: ignore[arg-type]
        past=timedelta(days=1),
        future=timedelta(days=30),
        clock=thread.sim.clock.now,
    )
    return source, client


def book_series(thread: SimulatorThread) -> datetime:
    start = thread.call(thread.sim.clock.now).replace(microsecond=0) + timedelta(days=2)
    series = meeting("DAILY", start, recurrence=Recurrence(count=5))
    thread.call(thread.sim.exchange.book, series, [ROOM])
    thread.call(thread.sim.exchange.settle)
    return start


def test_a_resync_leaves_out_a_series_deleted_during_its_read() -> None:
    with running() as thread:
        book_series(thread)
        source, client = calendar(thread, "DAILY")

        snapshot = asyncio.run(source.observe_room(ROOM))

        assert client.deleted
        assert [row for row in snapshot.occurrences if row.uid == "DAILY"] == []


@pytest.mark.parametrize("day", [0, 4], ids=["first", "last"])
def test_a_resync_keeps_a_series_whose_looked_up_occurrence_was_deleted_meanwhile(
    day: int,
) -> None:
    """The master is looked up through an occurrence, then through another if that one went."""
    with running() as thread:
        start = book_series(thread)
        gone = start + timedelta(days=day)
        deleting = DeletesAfterTheView(ews_client(thread), thread, "DAILY", occurrence=gone)
        source = EwsCalendar(
            deleting,  # type: ignore[arg-type]
            past=timedelta(days=1),
            future=timedelta(days=30),
            clock=thread.sim.clock.now,
        )
        master = thread.call(thread.sim.exchange.calendar(ROOM).by_uid, "DAILY")

        snapshot = asyncio.run(source.observe_room(ROOM))

    assert deleting.deleted
    series = [row for row in snapshot.occurrences if row.uid == "DAILY"]
    assert len(series) == 5  # as the view read them; the deletion's own notification follows
    assert {row.series_master_id for row in series} == {master.item_id}


def test_expanding_a_series_deleted_meanwhile_empties_it() -> None:
    with running() as thread:
        start = book_series(thread)
        exchange = thread.sim.exchange
        room = exchange.calendar(ROOM)
        master = thread.call(room.by_uid, "DAILY")
        occurrence_id = thread.call(room.occurrence_id, master, start + timedelta(days=1))
        source, client = calendar(thread, "DAILY")

        observations = asyncio.run(source.observe(ROOM, [occurrence_id]))

        assert client.deleted
        [snapshot] = observations
        assert isinstance(snapshot, Snapshot)
        assert snapshot.uid == "DAILY" and snapshot.occurrences == ()
        assert snapshot.window is not None  # so it empties the stored rows of the series


class RecordsSyncStates:
    """Wraps the client: notes the state each SyncFolderItems round starts from."""

    def __init__(self, client: EwsClient) -> None:
        self._client = client
        self.started_from: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def sync_calendar(self, mailbox: str, state: str | None, **options: Any) -> Any:
        self.started_from.append(state)
        return await self._client.sync_calendar(mailbox, state, **options)


def test_a_full_read_moves_the_stored_cursor_on_and_starts_afresh_only_without_one() -> None:
    with running() as thread:
        book_series(thread)
        client = RecordsSyncStates(ews_client(thread))
        source = EwsCalendar(
            client,  # type: ignore[arg-type]
            past=timedelta(days=1),
            future=timedelta(days=30),
            clock=thread.sim.clock.now,
        )

        async def rounds() -> list[str | None]:
            first = (await source.observe_room(ROOM)).cursor  # no stored cursor: from the start
            moved = (await source.observe_room(ROOM, first)).cursor  # a stored one: moved on
            thread.call(thread.sim.exchange.expire_sync_states, ROOM)
            return [first, (await source.observe_room(ROOM, moved)).cursor]  # expired: afresh

        first, last = asyncio.run(rounds())

    assert first and last
    assert client.started_from[0] is None and client.started_from[1] == first
    assert client.started_from[-1] is None  # the expired state was tried, then dropped
    assert len(client.started_from) == 4


def calls_of(thread: SimulatorThread) -> dict[str, int]:
    return dict(thread.call(lambda: dict(thread.sim.exchange.calls)))


def test_onboarding_a_room_costs_a_subscribe_and_three_reads() -> None:
    """Subscribe, then a first full read: SyncFolderItems for the cursor, FindItem with the
    CalendarView, GetItem for the view's items, and GetItem for the series masters only when
    the view holds occurrences; no GetFolder, not even for the room's first folder event after
    (issue #17: six calls a room before)."""
    with running() as thread:
        start = thread.call(thread.sim.clock.now).replace(microsecond=0) + timedelta(days=1)
        for n in range(10):
            booking = meeting(f"ONE-{n}", start + timedelta(hours=n))
            thread.call(thread.sim.exchange.book, booking, [ROOM])
        thread.call(thread.sim.exchange.settle)
        client = ews_client(thread)
        source = EwsCalendar(
            client, past=timedelta(days=1), future=timedelta(days=30), clock=thread.sim.clock.now
        )
        before = calls_of(thread)

        async def onboard() -> Any:
            await client.subscribe(ROOM, "http://127.0.0.1:9/ews", status_frequency=30)
            return await source.observe_room(ROOM)

        snapshot = asyncio.run(onboard())
        # the view's items named the calendar folder: a folder event needs no GetFolder now
        folder_id = asyncio.run(client.calendar_folder_id(ROOM))
        singles = {k: v - before.get(k, 0) for k, v in calls_of(thread).items()}
        calendar = thread.call(thread.sim.exchange.calendar, ROOM)
        book_series(thread)
        asyncio.run(source.observe_room(ROOM, snapshot.cursor))
        series = {k: v - singles.get(k, 0) - before.get(k, 0) for k, v in calls_of(thread).items()}

    assert {k: v for k, v in singles.items() if v} == {
        "Subscribe": 1,
        "SyncFolderItems": 1,
        "FindItem": 1,
        "GetItem": 1,
    }
    assert client.calls == sum(singles.values()) + sum(series.values())  # counted alike
    assert folder_id == calendar.folder_ids[Folder.CALENDAR]
    assert len(snapshot.occurrences) == 10
    assert {row.organizer for row in snapshot.occurrences} == {"ada@contoso.example"}
    assert {k: v for k, v in series.items() if v} == {
        "SyncFolderItems": 1,
        "FindItem": 1,
        "GetItem": 2,  # the view's items, then the series' master
    }


def test_the_calendar_folder_id_is_one_get_folder_per_room_and_process() -> None:
    with running() as thread:
        client = ews_client(thread)

        async def twice() -> list[str]:
            return [await client.calendar_folder_id(ROOM) for _ in range(2)]

        first, again = asyncio.run(twice())
        calendar = thread.call(thread.sim.exchange.calendar, ROOM)
        asked = calls_of(thread).get("GetFolder", 0)

    assert first == again == calendar.folder_ids[Folder.CALENDAR]
    assert asked == 1
