"""Graph events as reservations (the worker's plain values).

https://learn.microsoft.com/graph/api/resources/event
`uid` is shared by a series master and all its instances; `originalStart` places an occurrence
or exception in its series; `type` is singleInstance, occurrence, exception or seriesMaster;
`responseStatus.response` is the room's answer. Times come as `{dateTime, timeZone}` pairs with
up to 7 fractional digits; we ask for UTC (`Prefer: outlook.timezone="UTC"`) and keep the
event's own zone from `originalStartTimeZone`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

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
_FRACTION = re.compile(r"\.(\d{6})\d+")


def parse_time(value: str) -> datetime:
    """An ISO time with up to 7 fractional digits; naive means UTC (we ask Graph for UTC)."""
    moment = datetime.fromisoformat(_FRACTION.sub(r".\1", value.replace("Z", "+00:00")))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_series_master(event: dict[str, Any]) -> bool:
    return event.get("type") == "seriesMaster"


def to_reservation(mailbox: str, event: dict[str, Any]) -> Reservation:
    start = parse_time(event["start"]["dateTime"])
    original = event.get("originalStart")
    return Reservation(
        mailbox=mailbox,
        uid=event.get("uid") or event.get("iCalUId") or event["id"],
        original_start=parse_time(original) if original else start,
        item_id=event["id"],
        item_type=ITEM_TYPES.get(event.get("type", "singleInstance"), "single"),
        start=start,
        end=parse_time(event["end"]["dateTime"]),
        subject=event.get("subject") or "",
        organizer=((event.get("organizer") or {}).get("emailAddress") or {}).get("address") or "",
        series_master_id=event.get("seriesMasterId"),
        time_zone=event.get("originalStartTimeZone"),
        is_all_day=bool(event.get("isAllDay")),
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
