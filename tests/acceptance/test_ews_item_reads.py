"""ews/item_reads.py against exchangelib's own reading of the same simulator answers.

pushsync reads GetItem's calendar items field by field (ReadItem) and SyncFolderItems' changes
as ids only, instead of exchangelib's whole CalendarItem. Both readings of one calendar must
give the same reservations, ids, change keys and folder, and the same sync changes: single,
all-day (across a daylight-saving change), recurring with an edited and a cancelled occurrence,
private, in another time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exchangelib.services import SyncFolderItems

from pushsync.ews.calendar_items import ITEM_FIELDS, to_reservation
from pushsync.ews.item_reads import ReadItem, SyncItemIds, get_items
from pushsync.simulator import Recurrence, SimulatorThread
from tests.acceptance.simulated_exchange import account, meeting, running

ROOM = "room-001@contoso.example"
START = datetime(2026, 3, 23, 8, tzinfo=UTC)  # Berlin goes to summer time on 29 March


def book_a_varied_calendar(thread: SimulatorThread) -> None:
    exchange = thread.sim.exchange
    book = [
        meeting("SINGLE", START + timedelta(hours=1)),
        meeting(
            "ALLDAY-DST",
            datetime(2026, 3, 28, tzinfo=UTC),
            end=datetime(2026, 3, 30, tzinfo=UTC),
            all_day=True,
        ),
        meeting("PRIVATE", START + timedelta(days=1), sensitivity="Private", location="Hall"),
        meeting("TOKYO", START + timedelta(days=2, hours=2), time_zone="Asia/Tokyo"),
        meeting("DAILY", START + timedelta(hours=4), recurrence=Recurrence(count=8)),
    ]
    for one in book:
        thread.call(exchange.book, one, [ROOM])
    thread.call(
        exchange.edit_occurrence,
        "DAILY",
        START + timedelta(days=2, hours=4),
        START + timedelta(days=2, hours=6),
        START + timedelta(days=2, hours=7),
        "Moved",
    )
    thread.call(exchange.cancel, "DAILY", START + timedelta(days=3, hours=4))
    thread.call(exchange.settle)


def both_readings(thread: SimulatorThread) -> tuple[list, list]:  # type: ignore[type-arg]
    room = account(thread, ROOM)
    ids = list(
        room.calendar.view(start=START - timedelta(days=1), end=START + timedelta(days=14)).only(
            "id", "changekey"
        )
    )
    theirs = list(room.fetch(ids=ids, folder=room.calendar, only_fields=ITEM_FIELDS))
    ours = list(get_items(room, room.calendar, ids, only=ITEM_FIELDS, chunk_size=10))
    return theirs, ours


def test_read_items_give_the_reservations_exchangelib_items_give() -> None:
    with running() as thread:
        book_a_varied_calendar(thread)
        theirs, ours = both_readings(thread)

    assert len(ours) == len(theirs) >= 12
    assert all(isinstance(item, ReadItem) for item in ours)
    assert [to_reservation(ROOM, item) for item in ours] == [
        to_reservation(ROOM, item) for item in theirs
    ]
    assert [(i.id, i.changekey, i.type, i.parent_folder_id) for i in ours] == [
        (i.id, i.changekey, i.type, i.parent_folder_id) for i in theirs
    ]
    # the raw values too: an all-day event's dates, as exchangelib makes them (a day short of
    # the end across the daylight-saving change, which to_reservation mends by Duration)
    assert [(i.start, i.end, i.is_all_day) for i in ours] == [
        (i.start, i.end, i.is_all_day) for i in theirs
    ]
    assert any(i.is_all_day and i.uid == "ALLDAY-DST" for i in ours)


def test_a_missing_id_is_its_error_in_its_place() -> None:
    with running() as thread:
        book_a_varied_calendar(thread)
        room = account(thread, ROOM)
        [first, *_] = room.calendar.view(
            start=START - timedelta(days=1), end=START + timedelta(days=14)
        ).only("id", "changekey")
        gone = (first.id[:-4] + "AAAA", None)
        theirs = list(room.fetch(ids=[gone, first], folder=room.calendar, only_fields=["uid"]))
        ours = list(get_items(room, room.calendar, [gone, first], only=["uid"], chunk_size=10))

    assert type(ours[0]) is type(theirs[0]) and isinstance(ours[0], Exception)
    assert (ours[1].id, ours[1].uid) == (theirs[1].id, theirs[1].uid)
    assert not hasattr(ours[1], "subject")  # a field not asked for is not there to be misread


def test_sync_item_ids_report_the_changes_exchangelib_reports() -> None:
    with running() as thread:
        book_a_varied_calendar(thread)
        room = account(thread, ROOM)

        def changes(service_class: type) -> list[tuple[str, str]]:
            service = service_class(account=room)
            found = service.call(
                folder=room.calendar,
                shape="IdOnly",
                additional_fields=set(),
                sync_state=None,
                ignore=None,
                max_changes_returned=512,
                sync_scope=None,
            )
            return [(kind, str(item.id)) for kind, item in found]

        theirs = changes(SyncFolderItems)
        ours = changes(SyncItemIds)

    assert ours == theirs and len(ours) >= 5
