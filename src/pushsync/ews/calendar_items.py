"""exchangelib calendar items as reservations (the worker's plain values).

Fields: https://learn.microsoft.com/exchange/client-developer/web-service-reference/calendaritem
CalendarItemType (Single, Occurrence, Exception, RecurringMaster) and RecurrenceId / OriginalStart
tell an occurrence's place in its series; MyResponseType is the room's answer to the meeting.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from pushsync.model.reservation import Reservation

UTC = dt.UTC

ITEM_TYPES = {
    "Single": "single",
    "Occurrence": "occurrence",
    "Exception": "exception",
    "RecurringMaster": "master",
}
RESPONSES = {
    "Accept": "accepted",
    "Tentative": "tentative",
    "Decline": "declined",
    "Organizer": "organizer",
    "NoResponseReceived": "none",
    "Unknown": "none",
}


# The CalendarItem fields pushsync reads (to_reservation, the series and folder checks): what
# GetItem asks for, instead of every field exchangelib knows (id and change key come always).
# StartTimeZone and EndTimeZone are what exchangelib turns an all-day event's times into dates by.
ITEM_FIELDS = (
    "uid",
    "type",
    "start",
    "end",
    "original_start",
    "recurrence_id",
    "duration",
    "is_all_day",
    "subject",
    "location",
    "organizer",
    "sensitivity",
    "my_response_type",
    "is_cancelled",
    "last_modified_time",
    "parent_folder_id",
    "_start_timezone",
    "_end_timezone",
)


def is_series_master(item: Any) -> bool:
    return getattr(item, "type", None) == "RecurringMaster"


def to_reservation(mailbox: str, item: Any, *, series_master_id: str | None = None) -> Reservation:
    """One booked occurrence from a CalendarItem (single, occurrence or exception)."""
    zone = _zone(item)
    start = _utc(item.start, zone)
    return Reservation(
        mailbox=mailbox,
        uid=item.uid or item.id,
        original_start=_original_start(item, zone),
        item_id=item.id,
        item_type=ITEM_TYPES.get(item.type or "Single", "single"),
        start=start,
        end=_utc(_end_date(item) or _inclusive_end(item.end), zone),
        subject=item.subject or "",
        organizer=_address(item.organizer),
        series_master_id=series_master_id,
        time_zone=zone.key if zone else None,
        is_all_day=bool(item.is_all_day),
        location=item.location or "",
        sensitivity=(item.sensitivity or "Normal").lower(),
        response_state=RESPONSES.get(item.my_response_type or "Unknown", "none"),
        is_cancelled=bool(item.is_cancelled),
        change_key=item.changekey,
        last_modified=_utc(item.last_modified_time, zone) if item.last_modified_time else None,
    )


def _original_start(item: Any, zone: ZoneInfo | None) -> dt.datetime | None:
    """The slot an occurrence or exception has in its series; None for a single meeting, whose
    key must not change when it is moved (docs/reservation-table.md)."""
    if item.type not in ("Occurrence", "Exception"):
        return None
    original = getattr(item, "recurrence_id", None) or getattr(item, "original_start", None)
    return _utc(original, zone) if original else None


def _zone(item: Any) -> ZoneInfo | None:
    tz = getattr(item, "_start_timezone", None) or getattr(item, "_meeting_timezone", None)
    key = getattr(tz, "key", None)
    return ZoneInfo(key) if key else None


def _utc(moment: Any, zone: ZoneInfo | None) -> dt.datetime:
    """UTC for a tz-aware datetime, or local midnight for an all-day date in the room's zone."""
    if isinstance(moment, dt.datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=zone or UTC)
        return dt.datetime.fromtimestamp(aware.timestamp(), UTC)
    midnight = dt.datetime(moment.year, moment.month, moment.day, tzinfo=zone or UTC)
    return dt.datetime.fromtimestamp(midnight.timestamp(), UTC)


def _end_date(item: Any) -> dt.date | None:
    """An all-day event's end date, from its start date and Duration.

    exchangelib turns an all-day End into a date by subtracting 24 hours *before* going to
    local time, so an event ending on the day after a 23-hour day (daylight saving begins)
    comes back a day short, even before its start. Duration (whole local days, as 23, 24 or
    25 hours per day) does not have that flaw.
    """
    if not item.is_all_day or not isinstance(item.start, dt.date):
        return None
    match = _DURATION.fullmatch(getattr(item, "duration", None) or "")
    if match is None:
        return None
    days, hours = int(match["days"] or 0), int(match["hours"] or 0)
    whole_days = max(round(days + hours / 24), 1)
    start = item.start if not isinstance(item.start, dt.datetime) else item.start.date()
    return start + dt.timedelta(days=whole_days)


_DURATION = re.compile(r"P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:\d+M)?(?:[\d.]+S)?)?")


def _inclusive_end(end: Any) -> Any:
    """exchangelib gives an all-day event's last day as its end; the event ends a day later."""
    if isinstance(end, dt.date) and not isinstance(end, dt.datetime):
        return end + dt.timedelta(days=1)
    return end


def _address(mailbox: Any) -> str:
    if mailbox is None:
        return ""
    return str(getattr(mailbox, "email_address", None) or getattr(mailbox, "name", "") or "")
