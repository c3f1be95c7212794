"""exchangelib, unmodified, against the Exchange simulator over real HTTP."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from exchangelib import DELEGATE, EWSDateTime
from exchangelib.errors import (
    ErrorCalendarViewRangeTooBig,
    ErrorExceededFindCountLimit,
    ErrorImpersonateUserDenied,
    ErrorInvalidWatermark,
    ErrorServerBusy,
    ErrorSubscriptionDelegateAccessNotSupported,
)
from exchangelib.items import CalendarItem

from pushsync.simulator import BookingSettings, Recurrence, Room, generated_rooms
from tests.acceptance.simulated_exchange import account, at, meeting, running

ROOM = "room-001@contoso.example"
CALLBACK = "http://127.0.0.1:9/Webservices/SyncNotification.svc?Default"


def ews(value) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC))


def test_exchangelib_subscribes_to_a_room_calendar_by_impersonation() -> None:
    with running() as thread:
        calendar = account(thread, ROOM).calendar

        subscription_id, watermark = calendar.subscribe_to_push(CALLBACK, status_frequency=30)
        again, _ = calendar.subscribe_to_push(CALLBACK, status_frequency=30)

        [subscription] = thread.call(thread.sim.push.active, ROOM)[:1]
        assert subscription.id == subscription_id and again != subscription_id
        assert subscription.url == CALLBACK  # the query string is kept
        assert subscription.status_frequency == 30
        assert (
            subscription.folder_id
            == thread.sim.exchange.calendar(ROOM).folder_ids[
                next(iter(thread.sim.exchange.calendar(ROOM).folder_ids))
            ]
        )
        assert watermark == subscription.delivered


def test_delegate_access_to_a_room_cannot_subscribe() -> None:
    with running() as thread:
        calendar = account(thread, ROOM, access_type=DELEGATE).calendar  # reading is allowed
        with pytest.raises(ErrorSubscriptionDelegateAccessNotSupported):
            calendar.subscribe_to_push(CALLBACK, status_frequency=30)


def test_impersonation_needs_the_role() -> None:
    with running(impersonators=frozenset()) as thread, pytest.raises(ErrorImpersonateUserDenied):
        account(thread, ROOM).calendar  # noqa: B018 - the property makes the first call


def test_a_watermark_from_another_mailbox_is_invalid() -> None:
    with running() as thread:
        _, foreign = account(thread, "room-002@contoso.example").calendar.subscribe_to_push(
            CALLBACK, status_frequency=30
        )
        with pytest.raises(ErrorInvalidWatermark):
            account(thread, ROOM).calendar.subscribe_to_push(
                CALLBACK, watermark=foreign, status_frequency=30
            )


def test_calendar_view_and_get_item_read_back_the_ground_truth() -> None:
    with running() as thread:
        exchange = thread.sim.exchange
        series = meeting("SERIES", at(3, 8), recurrence=Recurrence(count=5))
        thread.call(exchange.book, series, [ROOM, "room-002@contoso.example"])
        thread.call(exchange.book, meeting("SINGLE", at(4, 12)), [ROOM])
        thread.call(exchange.settle)
        truth = thread.call(exchange.truth, at(2, 0), at(20, 0))
        third = next(i for i in truth if i.mailbox == ROOM and i.start == at(5, 8))
        thread.call(exchange.edit_occurrence, "SERIES", third.original_start, at(5, 14), at(5, 15))
        thread.call(exchange.delete_occurrence, "SERIES", at(6, 8))
        thread.call(exchange.settle)
        truth = [i for i in thread.call(exchange.truth, at(2, 0), at(20, 0)) if i.mailbox == ROOM]

        room = account(thread, ROOM)
        view = list(room.calendar.view(ews(at(2, 0)), ews(at(20, 0))))

        assert [(v.uid, v.start, v.type) for v in view] == [
            (i.uid, i.start, i.item_type) for i in truth
        ]
        assert [v.id for v in view] == [i.item_id for i in truth]
        exception = next(v for v in view if v.type == "Exception")
        assert exception.original_start == at(5, 8) and exception.start == at(5, 14)
        assert all(v.subject == "Ada Lovelace" for v in view)  # the room's copy
        assert all(v.my_response_type == "Accept" for v in view)

        fetched = list(room.fetch(ids=[(v.id, v.changekey) for v in view]))
        assert all(isinstance(f, CalendarItem) for f in fetched)
        assert [f.uid for f in fetched] == [i.uid for i in truth]
        assert fetched[0].organizer.email_address == "ada@contoso.example"
        assert str(fetched[0]._start_timezone) == "Europe/Berlin"

        masters = [i for i in room.calendar.all() if i.type == "RecurringMaster"]
        assert len(masters) == 1
        master = masters[0]
        assert master.recurrence.boundary.number == 5
        assert [o.original_start for o in master.modified_occurrences] == [at(5, 8)]
        assert [o.start for o in master.deleted_occurrences] == [at(6, 8)]


def test_all_day_event_reads_back_as_local_dates() -> None:
    rooms = (Room(ROOM, "Room 1", "Asia/Tokyo"),)
    with running(rooms=rooms) as thread:
        start = at(9, 15)  # 10 March 00:00 in Tokyo
        booked = meeting(
            "ALLDAY", start, end=start + timedelta(days=1), time_zone="Asia/Tokyo", all_day=True
        )
        thread.call(thread.sim.exchange.book, booked, [ROOM])
        thread.call(thread.sim.exchange.settle)
        [item] = list(account(thread, ROOM).calendar.view(ews(at(9, 0)), ews(at(12, 0))))
        assert item.is_all_day
        assert str(item.start) == "2026-03-10"


def test_calendar_view_refuses_more_than_two_years() -> None:
    with running() as thread:
        calendar = account(thread, ROOM).calendar
        with pytest.raises(ErrorCalendarViewRangeTooBig):
            list(calendar.view(ews(at(2, 0)), ews(at(2, 0) + timedelta(days=800))))


def test_calendar_view_refuses_more_than_1000_items() -> None:
    booking = BookingSettings(booking_window_days=1000)
    rooms = (Room(ROOM, "Room 1", "Europe/Berlin", booking),)
    with running(rooms=rooms) as thread:
        for n, hour in enumerate((8, 10)):
            series = meeting(f"S{n}", at(3, hour), recurrence=Recurrence(count=600))
            thread.call(thread.sim.exchange.book, series, [ROOM])
        calendar = account(thread, ROOM).calendar
        with pytest.raises(ErrorExceededFindCountLimit):
            list(calendar.view(ews(at(2, 0)), ews(at(2, 0) + timedelta(days=700))))
        end = at(2, 0) + timedelta(days=300)
        expected = thread.call(thread.sim.exchange.truth, at(2, 0), end)
        assert len(list(calendar.view(ews(at(2, 0)), ews(end)))) == len(expected) > 500


def test_server_busy_carries_a_back_off() -> None:
    with running(busy_rate=1.0, busy_back_off_ms=1500) as thread:
        with pytest.raises(ErrorServerBusy) as busy:
            account(thread, ROOM).calendar  # noqa: B018
        assert busy.value.back_off == 1.5
        assert thread.sim.exchange.calls["GetFolder"] >= 1


def test_generated_rooms_span_time_zones() -> None:
    zones = {room.time_zone for room in generated_rooms(6)}
    assert {"Europe/Berlin", "America/New_York", "Asia/Tokyo"} <= zones


def test_an_id_only_shape_gets_the_named_properties_alone() -> None:
    """GetItem and FindItem with IdOnly + AdditionalProperties answer the ItemId and what was
    named: a property not asked for is absent, as on Exchange, not filled in."""
    with running() as thread:
        booked = meeting("SHAPED", at(3, 9), location="Hall", subject="Budget")
        thread.call(thread.sim.exchange.book, booked, [ROOM])
        room = account(thread, ROOM)
        view = room.calendar.view(start=ews(at(3, 0)), end=ews(at(4, 0)))
        [listed] = list(view.only("subject"))
        [named] = list(room.fetch(ids=[listed], only_fields=["subject"]))
        [whole] = list(room.fetch(ids=[listed]))

    assert (listed.subject, listed.location, listed.uid) == ("Budget", None, None)
    assert (named.subject, named.location, named.organizer) == ("Budget", None, None)
    assert (whole.subject, whole.location, whole.uid) == ("Budget", "Hall", "SHAPED")
