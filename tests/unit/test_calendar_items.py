"""exchangelib CalendarItems (built locally, as exchangelib would parse them) as reservations."""

from __future__ import annotations

import datetime as dt

import exchangelib
from exchangelib.properties import Mailbox

from pushsync.ews.calendar_items import is_series_master, to_reservation

BERLIN = exchangelib.EWSTimeZone("Europe/Berlin")
UTC = dt.UTC


def _item(**fields: object) -> exchangelib.CalendarItem:
    base = dict(
        id="ID1",
        changekey="CK",
        uid="UID1",
        subject="Bob",
        type="Single",
        start=exchangelib.EWSDateTime(2026, 12, 1, 9, tzinfo=BERLIN),
        end=exchangelib.EWSDateTime(2026, 12, 1, 10, tzinfo=BERLIN),
        organizer=Mailbox(email_address="bob@example.org"),
        my_response_type="Accept",
        is_cancelled=False,
        is_all_day=False,
        location="Room 1",
        sensitivity="Normal",
        last_modified_time=exchangelib.EWSDateTime(2026, 11, 20, 8, tzinfo=exchangelib.UTC),
    )
    base.update(fields)
    item = exchangelib.CalendarItem(**base)
    item._start_timezone = BERLIN
    return item


def test_single_meeting() -> None:
    row = to_reservation("room@example.org", _item())
    assert (row.uid, row.item_id, row.item_type) == ("UID1", "ID1", "single")
    assert row.start == dt.datetime(2026, 12, 1, 8, tzinfo=UTC)  # 09:00 CET
    assert row.original_start is None  # a single keeps its key when moved
    assert row.organizer == "bob@example.org" and row.response_state == "accepted"
    assert row.time_zone == "Europe/Berlin" and row.sensitivity == "normal"
    assert row.last_modified == dt.datetime(2026, 11, 20, 8, tzinfo=UTC)


def test_occurrence_keys_on_its_original_start() -> None:
    moved = _item(
        type="Exception",
        start=exchangelib.EWSDateTime(2026, 12, 1, 11, tzinfo=BERLIN),
        recurrence_id=exchangelib.EWSDateTime(2026, 12, 1, 8, tzinfo=exchangelib.UTC),
    )
    row = to_reservation("room@example.org", moved, series_master_id="M1")
    assert row.item_type == "exception" and row.series_master_id == "M1"
    assert row.original_start == dt.datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert row.start == dt.datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_all_day_event_is_local_midnight_of_the_room() -> None:
    # exchangelib gives an all-day event's last day as its end (EWS's end minus one day)
    row = to_reservation(
        "room@example.org",
        _item(is_all_day=True, start=dt.date(2026, 12, 24), end=dt.date(2026, 12, 24)),
    )
    assert row.is_all_day
    assert row.start == dt.datetime(2026, 12, 23, 23, tzinfo=UTC)
    assert row.end - row.start == dt.timedelta(days=1)


def test_declined_tentative_cancelled_and_master() -> None:
    assert to_reservation("r", _item(my_response_type="Decline")).response_state == "declined"
    assert to_reservation("r", _item(my_response_type="Tentative")).response_state == "tentative"
    assert to_reservation("r", _item(is_cancelled=True)).is_cancelled
    assert is_series_master(_item(type="RecurringMaster"))
    assert not is_series_master(_item())
