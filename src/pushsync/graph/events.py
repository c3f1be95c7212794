"""Graph v1.0 events as reservations (the worker's plain values).

https://learn.microsoft.com/graph/api/resources/event (v1.0; docs/graph.md, "Reading events")
- Key: v1.0 has no `uid` (beta only), and `iCalUId` is "different for each occurrence in a
  recurring series". So a single meeting is keyed on its own iCalUId, and an occurrence or
  exception on its series master's iCalUId (`series_uid`, the caller fetched the master named
  by `seriesMasterId`) plus `originalStart`, which v1.0 gives only to occurrences and
  exceptions. iCalUId is opaque: nothing is read out of it.
- `type` is singleInstance, occurrence, exception or seriesMaster; `responseStatus.response`
  is the room's answer.
- Times: `{dateTime, timeZone}` pairs with up to 7 fractional digits; we ask for UTC
  (`Prefer: outlook.timezone="UTC"`) and honour whatever zone a pair names. All-day events
  are midnights that Graph does not convert (our reading of "start and end time must be set to
  midnight and be in the same time zone"): their dates are taken in the event's own zone,
  `originalStartTimeZone`, a Windows name mapped to IANA as exchangelib maps it for EWS, so
  one booking reads the same over both protocols.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pushsync.errors import ExchangeError
from pushsync.model.reservation import Reservation

ITEM_TYPES = {
    "singleInstance": "single",
    "occurrence": "occurrence",
    "exception": "exception",
    "seriesMaster": "master",
}
RESPONSES = {
    "accepted": "accepted",
    "tentativelyAccepted": "tentative",
    "declined": "declined",
    "organizer": "organizer",
    "none": "none",
    "notResponded": "none",
}
SERIES_MEMBERS = frozenset({"occurrence", "exception"})
_FRACTION = re.compile(r"\.(\d{6})\d+")


class UnreadableEvent(ExchangeError):
    """An event Graph served without what v1.0 documents for its type."""

    retryable = False


def parse_time(value: str) -> datetime:
    """An ISO time with up to 7 fractional digits; naive means UTC (we ask Graph for UTC)."""
    moment = datetime.fromisoformat(_FRACTION.sub(r".\1", value.replace("Z", "+00:00")))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_series_master(event: dict[str, Any]) -> bool:
    return event.get("type") == "seriesMaster"


def is_series_member(event: dict[str, Any]) -> bool:
    """An occurrence or exception: keyed on its master, which it names in seriesMasterId."""
    return event.get("type") in SERIES_MEMBERS


def iana_zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone of a Graph time-zone name (Windows, or IANA already); None when it is
    not one (`tzone://Microsoft/Custom`, empty)."""
    if not name:
        return None
    # on demand: importing exchangelib (its package loads whole) takes seconds, and the
    # receiver imports this module without ever reading an event
    from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

    key = MS_TIMEZONE_TO_IANA_MAP.get(name, name)
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def to_reservation(
    mailbox: str, event: dict[str, Any], *, series_uid: str | None = None
) -> Reservation:
    """One booked occurrence from a Graph event: a single (keyed on its iCalUId), or an
    occurrence or exception of the series whose master's iCalUId is `series_uid`."""
    member = is_series_member(event)
    if member and not (series_uid and event.get("originalStart")):
        raise UnreadableEvent(f"occurrence {event.get('id')} without its series or originalStart")
    zone = iana_zone(event.get("originalStartTimeZone"))
    all_day = bool(event.get("isAllDay"))
    return Reservation(
        mailbox=mailbox,
        uid=str(series_uid if member else event.get("iCalUId") or event["id"]),
        original_start=parse_time(event["originalStart"]) if member else None,
        item_id=event["id"],
        item_type=ITEM_TYPES.get(event.get("type", "singleInstance"), "single"),
        start=_instant(event["start"], zone, all_day),
        end=_instant(event["end"], zone, all_day),
        subject=event.get("subject") or "",
        organizer=((event.get("organizer") or {}).get("emailAddress") or {}).get("address") or "",
        series_master_id=event.get("seriesMasterId"),
        time_zone=zone.key if zone else None,
        is_all_day=all_day,
        location=(event.get("location") or {}).get("displayName") or "",
        sensitivity=(event.get("sensitivity") or "normal").lower(),
        response_state=RESPONSES.get(
            (event.get("responseStatus") or {}).get("response", "none"), "none"
        ),
        is_cancelled=bool(event.get("isCancelled")),
        change_key=event.get("changeKey"),
        last_modified=parse_time(event["lastModifiedDateTime"])
        if event.get("lastModifiedDateTime")
        else None,
    )


def _instant(pair: dict[str, Any], zone: ZoneInfo | None, all_day: bool) -> datetime:
    """UTC of a dateTimeTimeZone pair. An all-day one is a date: midnight in the event's zone,
    whatever zone the pair is labelled with."""
    value = str(pair["dateTime"])
    if all_day:
        day = datetime.fromisoformat(_FRACTION.sub(r".\1", value.replace("Z", ""))[:10])
        return day.replace(tzinfo=zone or UTC).astimezone(UTC)
    moment = datetime.fromisoformat(_FRACTION.sub(r".\1", value.replace("Z", "+00:00")))
    if moment.tzinfo is None:  # the pair's zone: UTC, as asked, unless it names another
        named: tzinfo = iana_zone(pair.get("timeZone")) or UTC
        moment = moment.replace(tzinfo=named)
    return moment.astimezone(UTC)
