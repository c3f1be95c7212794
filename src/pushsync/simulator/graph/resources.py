"""Room calendar items as Graph event JSON, and Graph ids beside EWS ids.

https://learn.microsoft.com/graph/api/resources/event
A Graph (REST) id is the EWS id in URL-safe base64, as `translateExchangeIds` shows. Times are
given in UTC (what `Prefer: outlook.timezone="UTC"` asks for) with seven fractional digits,
except all-day bounds (docs/simulator.md). Only properties the v1.0 event resource lists are
served (tests/unit/test_simulator_graph_events.py holds that list).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pushsync.simulator.ews.calendar_item import windows_zone
from pushsync.simulator.items import CalendarItem, Instance, Response

TYPES = {
    "Single": "singleInstance",
    "Occurrence": "occurrence",
    "Exception": "exception",
    "RecurringMaster": "seriesMaster",
}
RESPONSES = {
    Response.TENTATIVE: "tentativelyAccepted",
    Response.ACCEPT: "accepted",
    Response.DECLINE: "declined",
}


def graph_id(ews_id: str) -> str:
    return ews_id.replace("+", "-").replace("/", "_")


def ews_id(graph: str) -> str:
    return graph.replace("-", "+").replace("_", "/")


def time_json(moment: datetime) -> dict[str, str]:
    utc = moment.astimezone(UTC)
    return {"dateTime": utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0", "timeZone": "UTC"}


def all_day_json(moment: datetime, zone: str) -> dict[str, str]:
    """An all-day bound: the midnight of its date in the event's own zone, unconverted, though
    labelled with the zone asked for (docs/simulator.md, "Graph events")."""
    day = moment.astimezone(ZoneInfo(zone)).date()
    return {"dateTime": f"{day.isoformat()}T00:00:00.0000000", "timeZone": "UTC"}


def offset_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def instance_json(instance: Instance) -> dict[str, Any]:
    """A single event, an occurrence or an exception as calendarView and instances return it:
    v1.0 properties only (no beta `uid`); an occurrence has its own iCalUId, names its master
    in seriesMasterId and its slot in originalStart, which a single event does not carry."""
    body = _event(
        instance.mailbox,
        organizer=instance.organizer.email,
        item_id=instance.item_id,
        item_type=instance.item_type,
        time_zone=instance.time_zone,
        all_day=instance.all_day,
        start=instance.start,
        end=instance.end,
    )
    if instance.original_start is None:
        body |= {"iCalUId": instance.uid, "seriesMasterId": None}
    else:
        body |= {
            "iCalUId": _occurrence_ical_uid(instance.uid, instance.original_start),
            "seriesMasterId": graph_id(instance.master_id or ""),
            "originalStart": offset_time(instance.original_start),
        }
    return body | {
        "subject": instance.subject,
        "location": {"displayName": instance.location},
        "sensitivity": instance.sensitivity.lower(),
        "responseStatus": {"response": RESPONSES[instance.response]},
        "isCancelled": instance.cancelled,
        "changeKey": instance.change_key,
        "lastModifiedDateTime": offset_time(instance.last_modified),
    }


def master_json(mailbox: str, item: CalendarItem) -> dict[str, Any]:
    """A series master or a single item as GET /events/{id} returns it."""
    body = _event(
        mailbox,
        organizer=item.organizer.email,
        item_id=item.item_id,
        item_type=item.item_type,
        time_zone=item.time_zone,
        all_day=item.all_day,
        start=item.start,
        end=item.end,
    )
    return body | {
        "iCalUId": item.uid,
        "seriesMasterId": None,
        "subject": item.subject,
        "location": {"displayName": item.location},
        "sensitivity": item.sensitivity.lower(),
        "responseStatus": {"response": RESPONSES[item.response]},
        "isCancelled": item.cancelled,
        "changeKey": item.change_key,
        "lastModifiedDateTime": offset_time(item.last_modified),
    }


def _event(
    mailbox: str,
    *,
    organizer: str,
    item_id: str,
    item_type: str,
    time_zone: str,
    all_day: bool,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    zone = windows_zone(time_zone)
    bounds = (
        {"start": all_day_json(start, time_zone), "end": all_day_json(end, time_zone)}
        if all_day
        else {"start": time_json(start), "end": time_json(end)}
    )
    return {
        "@odata.etag": "",
        "id": graph_id(item_id),
        "type": TYPES[item_type],
        "organizer": {"emailAddress": {"address": organizer}},
        "originalStartTimeZone": zone,
        "originalEndTimeZone": zone,
        "isAllDay": all_day,
        **bounds,
    }


def _occurrence_ical_uid(uid: str, original_start: datetime) -> str:
    """v1.0 gives each occurrence its own iCalUId; opaque, so a client cannot read the series
    out of it (it must follow seriesMasterId)."""
    digest = hashlib.sha256(f"{uid}|{original_start.isoformat()}".encode()).hexdigest()
    return "040000008200E00074C5B7101A82E008" + digest[:48].upper()
