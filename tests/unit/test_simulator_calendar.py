"""The simulator's room calendar as plain values: what a room does with bookings (§7)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pushsync.simulator import BookingSettings, Meeting, Person, Recurrence, Response, Room
from pushsync.simulator.calendar import CANCELED_PREFIX, RoomCalendar, UnknownMeeting
from pushsync.simulator.items import Folder

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
ADA = Person("Ada Lovelace", "ada@contoso.example")
BERLIN = "Europe/Berlin"


def calendar(zone: str = BERLIN, **booking: object) -> RoomCalendar:
    room = Room("room-1@contoso.example", "Room 1", zone, BookingSettings(**booking))  # type: ignore[arg-type]
    return RoomCalendar(room, random.Random(1))


def meeting(uid: str = "UID-1", start: datetime | None = None, **fields: object) -> Meeting:
    start = start or datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    values: dict[str, object] = {
        "uid": uid,
        "organizer": ADA,
        "subject": "Board meeting",
        "start": start,
        "end": start + timedelta(hours=1),
        "time_zone": BERLIN,
        "body": "secret agenda",
        "sensitivity": "Private",
    }
    values.update(fields)
    return Meeting(**values)  # type: ignore[arg-type]


def kinds(cal: RoomCalendar, after: int = 0) -> list[tuple[str, bool]]:
    """(event kind, is an item event) for every event after `after`."""
    return [(e.kind, e.item_id is not None) for e in cal.log.since(after)]


def test_booking_lands_tentative_then_the_attendant_accepts_and_rewrites() -> None:
    cal = calendar()
    item = cal.receive(meeting(), NOW)

    assert item.response is Response.TENTATIVE
    assert item.subject == "Board meeting"
    assert kinds(cal) == [("Created", True), ("Modified", False)]
    assert cal.attend(NOW) == []  # the attendant answers after its delay

    later = NOW + timedelta(seconds=2)
    first_change_key = item.change_key
    assert cal.attend(later) == [item]
    assert item.response is Response.ACCEPT
    assert item.subject == ADA.name  # the room's copy shows the organizer, not the subject
    assert item.body == "" and item.sensitivity == "Normal"
    assert item.change_key != first_change_key
    assert kinds(cal, 2) == [("Modified", True), ("Modified", False)]
    assert item.last_modified == later


def test_conflicting_booking_is_declined() -> None:
    cal = calendar()
    cal.receive(meeting("A"), NOW)
    cal.attend(NOW, force=True)
    cal.receive(meeting("B", start=datetime(2026, 3, 3, 9, 30, tzinfo=UTC)), NOW)
    cal.attend(NOW, force=True)

    responses = {i.uid: i.response for i in cal.instances()}
    assert responses == {"A": Response.ACCEPT, "B": Response.DECLINE}


def test_conflicts_allowed_when_the_room_says_so() -> None:
    cal = calendar(decline_conflicts=False)
    cal.receive(meeting("A"), NOW)
    cal.receive(meeting("B"), NOW)
    cal.attend(NOW, force=True)
    assert {i.response for i in cal.instances()} == {Response.ACCEPT}


def test_booking_beyond_the_window_is_declined_and_a_series_is_cut_at_it() -> None:
    cal = calendar(booking_window_days=10)
    cal.receive(meeting("far", start=NOW + timedelta(days=20)), NOW)
    cal.receive(meeting("series", recurrence=Recurrence(interval=1)), NOW)
    cal.attend(NOW, force=True)

    far = cal.by_uid("far")
    series = cal.by_uid("series")
    assert far is not None and far.response is Response.DECLINE
    assert series is not None and series.response is Response.ACCEPT
    last = max(i.start for i in cal.instances() if i.uid == "series")
    assert last < NOW + timedelta(days=11)
    assert series.recurrence is not None and series.recurrence.until == date(2026, 3, 12)


def test_daily_series_keeps_local_time_across_daylight_saving() -> None:
    cal = calendar()
    start = datetime(2026, 3, 27, 9, 0, tzinfo=ZoneInfo(BERLIN)).astimezone(UTC)
    cal.receive(meeting("dst", start=start, recurrence=Recurrence(count=4)), NOW)

    occurrences = cal.instances()
    assert [o.start.hour for o in occurrences] == [8, 8, 7, 7]  # CET then CEST, in UTC
    assert {o.start.astimezone(ZoneInfo(BERLIN)).hour for o in occurrences} == {9}
    assert [o.item_type for o in occurrences] == ["Occurrence"] * 4
    assert all(o.original_start == o.start for o in occurrences)
    assert len({o.item_id for o in occurrences}) == 4


def test_weekly_series_starts_on_its_first_matching_day() -> None:
    cal = calendar()
    monday = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    item = cal.receive(meeting(start=monday, recurrence=Recurrence(weekdays=(2, 4), count=3)), NOW)
    days = [o.start.weekday() for o in cal.instances()]
    assert days == [2, 4, 2]
    assert item.start.weekday() == 2  # a master's Start is its first occurrence


def test_editing_one_occurrence_makes_an_exception_notified_on_the_master() -> None:
    cal = calendar()
    master = cal.receive(meeting(recurrence=Recurrence(count=3)), NOW)
    cal.attend(NOW, force=True)
    second = cal.instances()[1]
    mark = cal.log.sequence

    moved = second.start + timedelta(hours=3)
    cal.receive_occurrence("UID-1", second.original_start, moved, moved + timedelta(hours=1), NOW)  # type: ignore[arg-type]
    cal.attend(NOW, force=True)

    events = cal.log.since(mark)
    assert {e.item_id for e in events if e.item_id} == {master.item_id}
    exception = cal.instances()[1]
    assert exception.item_type == "Exception"
    assert exception.start == moved
    assert exception.original_start == second.original_start
    assert exception.item_id == second.item_id  # same slot, same id
    assert exception.response is Response.ACCEPT
    assert exception.change_key == master.change_key  # shared by master and occurrences


def test_pattern_change_drops_exceptions_and_re_ids_occurrences() -> None:
    cal = calendar()
    master = cal.receive(meeting(recurrence=Recurrence(count=3)), NOW)
    first = cal.instances()[0]
    assert first.original_start is not None
    cal.receive_occurrence(
        "UID-1", first.original_start, first.start, first.end + timedelta(hours=1), NOW
    )
    cal.delete_occurrence("UID-1", cal.instances()[2].original_start, NOW)  # type: ignore[arg-type]
    old_ids = {i.item_id for i in cal.instances()}

    cal.receive(meeting(recurrence=Recurrence(count=4)), NOW)

    after = cal.instances()
    assert len(after) == 4
    assert {i.item_type for i in after} == {"Occurrence"}
    assert not old_ids & {i.item_id for i in after}
    assert {i.master_id for i in after} == {master.item_id}  # the master keeps its id
    assert cal.occurrence(next(iter(old_ids))) is None


def test_deleting_one_occurrence_is_silent_but_modifies_the_master() -> None:
    cal = calendar()
    master = cal.receive(meeting(recurrence=Recurrence(count=3)), NOW)
    second = cal.instances()[1]
    mark = cal.log.sequence

    cal.delete_occurrence("UID-1", second.original_start, NOW)  # type: ignore[arg-type]

    assert second.original_start not in {i.original_start for i in cal.instances()}
    assert kinds(cal, mark) == [("Modified", True), ("Modified", False)]
    assert cal.log.since(mark)[0].item_id == master.item_id
    assert cal.occurrence(second.item_id) is not None  # the id is known, the slot deleted
    with pytest.raises(UnknownMeeting):
        cal.delete_occurrence("UID-1", second.original_start, NOW)  # type: ignore[arg-type]


def test_cancelled_occurrence_stays_as_a_cancelled_exception() -> None:
    cal = calendar()
    cal.receive(meeting(recurrence=Recurrence(count=2)), NOW)
    first = cal.instances()[0]
    cal.cancel_occurrence("UID-1", first.original_start, NOW)  # type: ignore[arg-type]
    assert [(i.cancelled, i.item_type) for i in cal.instances()] == [
        (True, "Exception"),
        (False, "Occurrence"),
    ]


def test_cancelled_meeting_is_kept_with_its_flag_and_prefix() -> None:
    cal = calendar()
    item = cal.receive(meeting(), NOW)
    cal.attend(NOW, force=True)
    cal.cancel("UID-1", NOW)

    [instance] = cal.instances()
    assert instance.cancelled
    assert instance.subject == CANCELED_PREFIX + ADA.name
    assert instance.item_id == item.item_id


def test_cancelled_meeting_is_removed_when_the_room_does_not_keep_them() -> None:
    cal = calendar(keep_cancelled=False)
    cal.receive(meeting(), NOW)
    cal.cancel("UID-1", NOW)
    assert cal.instances() == []
    assert cal.log.since(0)[-3].kind == "Moved"


def test_delete_is_a_move_to_deleted_items_with_a_new_id() -> None:
    cal = calendar()
    item = cal.receive(meeting(), NOW)
    old_id = item.item_id
    mark = cal.log.sequence

    cal.delete("UID-1", NOW)

    moved, *folders = cal.log.since(mark)
    assert moved.kind == "Moved"
    assert moved.old_item_id == old_id and moved.item_id != old_id
    assert moved.old_parent_folder_id == cal.folder_ids[Folder.CALENDAR]
    assert moved.parent_folder_id == cal.folder_ids[Folder.DELETED_ITEMS]
    assert [f.folder_id for f in folders] == [
        cal.folder_ids[Folder.CALENDAR],
        cal.folder_ids[Folder.DELETED_ITEMS],
    ]
    assert cal.instances() == [] and cal.item(old_id) is None
    assert cal.item(moved.item_id) is not None  # still fetchable in Deleted Items


def test_hard_delete_is_a_deleted_event() -> None:
    cal = calendar()
    item = cal.receive(meeting(), NOW)
    mark = cal.log.sequence
    cal.delete("UID-1", NOW, hard=True)
    first = cal.log.since(mark)[0]
    assert (first.kind, first.item_id) == ("Deleted", item.item_id)


def test_accepting_can_show_as_a_delete_plus_a_create() -> None:
    cal = calendar(recreate_rate=1.0)
    first = cal.receive(meeting(), NOW)
    first_id = first.item_id
    mark = cal.log.sequence

    [fresh] = cal.attend(NOW, force=True)

    assert [e.kind for e in cal.log.since(mark) if e.item_id] == ["Moved", "Created"]
    assert fresh.item_id != first_id and fresh.uid == "UID-1"
    [instance] = cal.instances()
    assert instance.item_id == fresh.item_id and instance.response is Response.ACCEPT


def test_all_day_event_is_local_midnight_in_the_room_zone() -> None:
    tokyo = "Asia/Tokyo"
    cal = calendar(zone=tokyo)
    start = datetime(2026, 3, 10, tzinfo=ZoneInfo(tokyo))
    cal.receive(
        meeting(
            start=start.astimezone(UTC),
            end=(start + timedelta(days=1)).astimezone(UTC),
            time_zone=tokyo,
            all_day=True,
        ),
        NOW,
    )
    [instance] = cal.instances()
    assert instance.all_day
    assert instance.start == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    assert instance.end - instance.start == timedelta(days=1)


def test_instances_are_clipped_to_the_window_and_keyed_naturally() -> None:
    cal = calendar()
    cal.receive(meeting("series", recurrence=Recurrence(count=10)), NOW)
    cal.receive(meeting("single", start=datetime(2026, 3, 5, 12, tzinfo=UTC)), NOW)
    window = cal.instances(datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 7, tzinfo=UTC))

    assert [(i.uid, i.original_start) for i in window] == [
        ("series", datetime(2026, 3, 5, 9, tzinfo=UTC)),
        ("single", None),
        ("series", datetime(2026, 3, 6, 9, tzinfo=UTC)),
    ]
    assert window[1].key == ("room-1@contoso.example", "single", None)
