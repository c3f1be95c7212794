"""Graph v1.0 event JSON as reservations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pushsync.graph.events import (
    UnreadableEvent,
    iana_zone,
    is_series_master,
    parse_time,
    to_reservation,
)

EVENT = {
    "id": "AAMk-1",
    "iCalUId": "040000-OCCURRENCE-OWN",  # v1.0: different for each occurrence
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
SINGLE = {k: v for k, v in EVENT.items() if k not in ("originalStart", "seriesMasterId")} | {
    "type": "singleInstance",
    "iCalUId": "040000-SINGLE",
}


def test_an_exception_is_keyed_on_its_masters_ical_uid_and_original_start() -> None:
    row = to_reservation("room@example.org", EVENT, series_uid="040000-MASTER")
    assert (row.uid, row.item_id, row.series_master_id, row.item_type) == (
        "040000-MASTER",
        "AAMk-1",
        "AAMk-M",
        "exception",
    )
    assert row.original_start == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert row.start == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert row.time_zone == "Europe/Berlin"  # Windows name mapped to IANA
    assert row.response_state == "tentative" and row.sensitivity == "private"
    assert row.organizer == "carol@example.org" and row.location == "Room 1"
    assert row.last_modified == datetime(2026, 11, 20, 10, 11, 12, 123456, tzinfo=UTC)


def test_an_occurrence_without_its_series_is_refused_not_keyed_on_its_own_ical_uid() -> None:
    with pytest.raises(UnreadableEvent):
        to_reservation("r", EVENT)
    with pytest.raises(UnreadableEvent):
        to_reservation(
            "r", {k: v for k, v in EVENT.items() if k != "originalStart"}, series_uid="M"
        )


def test_a_single_keys_on_its_ical_uid_alone_and_declined_is_kept_as_declined() -> None:
    row = to_reservation("r", SINGLE | {"responseStatus": {"response": "declined"}})
    assert (row.uid, row.original_start, row.item_type) == ("040000-SINGLE", None, "single")
    assert not row.books_the_room
    moved = to_reservation(
        "r", SINGLE | {"start": {"dateTime": "2026-12-02T08:30:00", "timeZone": "UTC"}}
    )
    assert moved.key == row.key


@pytest.mark.parametrize(
    ("windows", "first_instant"),
    [
        ("Pacific Standard Time", datetime(2026, 12, 1, 8, tzinfo=UTC)),  # west of UTC
        ("W. Europe Standard Time", datetime(2026, 11, 30, 23, tzinfo=UTC)),
        ("Tokyo Standard Time", datetime(2026, 11, 30, 15, tzinfo=UTC)),
    ],
)
def test_an_all_day_events_midnights_are_dates_in_its_own_zone(
    windows: str, first_instant: datetime
) -> None:
    """Graph does not convert all-day midnights to the zone asked for (docs/graph.md): the
    dates are the event's, in originalStartTimeZone, whatever the pair is labelled."""
    event = SINGLE | {
        "isAllDay": True,
        "originalStartTimeZone": windows,
        "start": {"dateTime": "2026-12-01T00:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-03T00:00:00.0000000", "timeZone": "UTC"},
    }
    row = to_reservation("r", event)
    assert row.is_all_day and row.start == first_instant
    assert (row.end - row.start).days == 2
    assert row.time_zone == iana_zone(windows).key  # type: ignore[union-attr]


def test_times_zones_and_masters() -> None:
    assert parse_time("2026-03-29T01:00:00.1234567") == datetime(
        2026, 3, 29, 1, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_time("2026-03-29T01:00:00+02:00") == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert is_series_master({"type": "seriesMaster"}) and not is_series_master(EVENT)
    assert iana_zone("tzone://Microsoft/Custom") is None and iana_zone(None) is None
    assert iana_zone("Europe/Paris").key == "Europe/Paris"  # type: ignore[union-attr]
    labelled = SINGLE | {
        "start": {"dateTime": "2026-12-01T09:30:00", "timeZone": "Tokyo Standard Time"}
    }
    assert to_reservation("r", labelled).start == datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
