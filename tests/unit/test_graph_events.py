"""Graph event JSON as reservations."""

from __future__ import annotations

from datetime import UTC, datetime

from pushsync.graph.events import is_series_master, parse_time, to_reservation

EVENT = {
    "id": "AAMk-1",
    "uid": "UID-1",
    "type": "exception",
    "seriesMasterId": "AAMk-M",
    "subject": "Carol",
    "changeKey": "CK",
    "isAllDay": False,
    "isCancelled": False,
    "start": {"dateTime": "2026-12-01T08:30:00.0000000", "timeZone": "UTC"},
    "end": {"dateTime": "2026-12-01T09:30:00.0000000", "timeZone": "UTC"},
    "originalStart": "2026-12-01T08:00:00Z",
    "originalStartTimeZone": "W. Europe Standard Time",
    "organizer": {"emailAddress": {"address": "carol@example.org"}},
    "location": {"displayName": "Room 1"},
    "sensitivity": "private",
    "responseStatus": {"response": "tentativelyAccepted"},
    "lastModifiedDateTime": "2026-11-20T10:11:12.1234567Z",
}


def test_exception_of_a_series() -> None:
    row = to_reservation("room@example.org", EVENT)
    assert (row.uid, row.item_id, row.series_master_id, row.item_type) == (
        "UID-1",
        "AAMk-1",
        "AAMk-M",
        "exception",
    )
    assert row.original_start == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert row.start == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert row.response_state == "tentative" and row.sensitivity == "private"
    assert row.organizer == "carol@example.org" and row.location == "Room 1"
    assert row.last_modified == datetime(2026, 11, 20, 10, 11, 12, 123456, tzinfo=UTC)


def test_single_instance_keys_on_its_start_and_declined_is_kept_as_declined() -> None:
    event = {k: v for k, v in EVENT.items() if k not in ("originalStart", "seriesMasterId")}
    row = to_reservation(
        "r", event | {"type": "singleInstance", "responseStatus": {"response": "declined"}}
    )
    assert row.original_start == row.start and row.item_type == "single"
    assert not row.books_the_room


def test_times_and_masters() -> None:
    assert parse_time("2026-03-29T01:00:00.1234567") == datetime(
        2026, 3, 29, 1, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_time("2026-03-29T01:00:00+02:00") == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert is_series_master({"type": "seriesMaster"}) and not is_series_master(EVENT)
