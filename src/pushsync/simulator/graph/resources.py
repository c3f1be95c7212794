"""Room calendar items as Graph event JSON, and Graph ids beside EWS ids.

https://learn.microsoft.com/graph/api/resources/event
A Graph (REST) id is the EWS id in URL-safe base64, as `translateExchangeIds` shows. Times are
given in UTC (what `Prefer: outlook.timezone="UTC"` asks for) with seven fractional digits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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


def offset_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def instance_json(instance: Instance) -> dict[str, Any]:
    """A single event, an occurrence or an exception as calendarView returns it."""
    body = _common(instance.mailbox, instance.organizer.email)
    body |= {
        "id": graph_id(instance.item_id),
        "type": TYPES[instance.item_type],
        "uid": instance.uid,
        "iCalUId": instance.uid if instance.original_start is None else _ical(instance),
        "seriesMasterId": graph_id(instance.master_id) if instance.master_id else None,
        "originalStart": offset_time(instance.original_start) if instance.original_start else None,
        "subject": instance.subject,
        "start": time_json(instance.start),
        "end": time_json(instance.end),
        "originalStartTimeZone": instance.time_zone,
        "isAllDay": instance.all_day,
        "location": {"displayName": instance.location},
        "sensitivity": instance.sensitivity.lower(),
        "responseStatus": {"response": RESPONSES[instance.response]},
        "isCancelled": instance.cancelled,
        "changeKey": instance.change_key,
        "lastModifiedDateTime": offset_time(instance.last_modified),
    }
    return body


def master_json(mailbox: str, item: CalendarItem) -> dict[str, Any]:
    """A series master or a single item as GET /events/{id} returns it."""
    body = _common(mailbox, item.organizer.email)
    body |= {
        "id": graph_id(item.item_id),
        "type": TYPES[item.item_type],
        "uid": item.uid,
        "iCalUId": item.uid,
        "seriesMasterId": None,
        "subject": item.subject,
        "start": time_json(item.start),
        "end": time_json(item.end),
        "originalStartTimeZone": item.time_zone,
        "isAllDay": item.all_day,
        "location": {"displayName": item.location},
        "sensitivity": item.sensitivity.lower(),
        "responseStatus": {"response": RESPONSES[item.response]},
        "isCancelled": item.cancelled,
        "changeKey": item.change_key,
        "lastModifiedDateTime": offset_time(item.last_modified),
    }
    return body


def _common(mailbox: str, organizer: str) -> dict[str, Any]:
    return {
        "@odata.etag": "",
        "organizer": {"emailAddress": {"address": organizer}},
    }


def _ical(instance: Instance) -> str:
    """Graph's iCalUId differs per occurrence; `uid` is the one shared by the series."""
    stamp = instance.original_start.strftime("%Y%m%dT%H%M%S") if instance.original_start else ""
    return f"{instance.uid}-{stamp}"
