"""The simulator's Graph serves events as v1.0 does, and nothing v1.0 does not have.

V1_EVENT_PROPERTIES is the property table of the v1.0 event resource page,
https://learn.microsoft.com/graph/api/resources/event?view=graph-rest-1.0
(microsoftgraph/microsoft-graph-docs-contrib, api-reference/v1.0/resources/event.md), read
December 2026. `uid`, `occurrenceId`, `cancelledOccurrences`, `exceptionOccurrences` are beta
only and must not appear. `@odata.*` entries are OData annotations, not properties; `@removed`
marks a delta entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pushsync.graph.auth import static_token
from pushsync.graph.client import GraphClient
from pushsync.simulator import Recurrence, Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.simulator.graph.resources import graph_id
from tests.acceptance.simulated_exchange import meeting

V1_EVENT_PROPERTIES = frozenset(
    {
        "allowNewTimeProposals", "attendees", "body", "bodyPreview", "categories", "changeKey",
        "createdDateTime", "end", "hasAttachments", "hideAttendees", "iCalUId", "id",
        "importance", "isAllDay", "isCancelled", "isDraft", "isOnlineMeeting", "isOrganizer",
        "isReminderOn", "lastModifiedDateTime", "location", "locations", "onlineMeeting",
        "onlineMeetingProvider", "onlineMeetingUrl", "organizer", "originalEndTimeZone",
        "originalStart", "originalStartTimeZone", "recurrence", "reminderMinutesBeforeStart",
        "responseRequested", "responseStatus", "sensitivity", "seriesMasterId", "showAs",
        "start", "subject", "transactionId", "type", "webLink",
    }
)  # fmt: skip
ROOM = "room-001@contoso.example"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(rooms=generated_rooms(1), scale=60)) as sim:
        yield sim


def _not_v1(event: dict[str, Any]) -> set[str]:
    return {k for k in event if not k.startswith("@odata.") and k != "@removed"} - set(
        V1_EVENT_PROPERTIES
    )


async def test_events_carry_only_v1_properties_and_series_are_told_by_their_master(
    sim: Simulator,
) -> None:
    base = sim.clock.now().replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)
    weekly = meeting("SERIES-UID", base, recurrence=Recurrence(weekdays=(base.weekday(),), count=4))
    sim.exchange.book(weekly, [ROOM])
    sim.exchange.book(meeting("SINGLE-UID", base + timedelta(hours=3)), [ROOM])
    sim.exchange.settle()
    second = weekly.start + timedelta(weeks=1)
    sim.exchange.edit_occurrence("SERIES-UID", second, second + timedelta(hours=1),
                                 second + timedelta(hours=2))  # fmt: skip
    sim.exchange.settle()
    client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
    try:
        now = sim.clock.now()
        view = await client.calendar_view_delta(ROOM, now, now + timedelta(days=60))
        master_id = graph_id(sim.exchange.calendar(ROOM).by_uid("SERIES-UID").item_id)
        master = await client.event(ROOM, master_id)
        instances = await client.instances(ROOM, master_id, now, now + timedelta(days=60))
        one = await client.event(ROOM, view.events[0]["id"])
    finally:
        await client.aclose()

    assert master is not None and instances is not None and one is not None
    for event in [*view.events, master, *instances, one]:
        assert _not_v1(event) == set(), event.get("type")
    members = [e for e in view.events if e["type"] in ("occurrence", "exception")]
    [single] = [e for e in view.events if e["type"] == "singleInstance"]
    assert {e["type"] for e in members} == {"occurrence", "exception"}
    assert {e["seriesMasterId"] for e in members} == {master_id}
    assert len({e["iCalUId"] for e in members}) == 4  # one each, none the master's
    assert master["iCalUId"] == "SERIES-UID" and "SERIES-UID" not in {e["iCalUId"] for e in members}
    assert all(e["originalStart"].endswith("Z") for e in members)
    assert "originalStart" not in single and single["iCalUId"] == "SINGLE-UID"
    assert single["originalStartTimeZone"] == "W. Europe Standard Time"  # Windows, not IANA


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo"])
async def test_all_day_midnights_are_the_events_own_dates_not_converted_to_utc(
    sim: Simulator, zone: str
) -> None:
    day = sim.clock.now().date() + timedelta(days=2)
    midnight = datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC)
    sim.exchange.book(
        meeting("ALLDAY", midnight, end=midnight + timedelta(days=1), all_day=True,
                time_zone=zone),
        [ROOM],
    )  # fmt: skip
    sim.exchange.settle()
    client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
    try:
        now = sim.clock.now()
        [event] = (await client.calendar_view_delta(ROOM, now, now + timedelta(days=9))).events
    finally:
        await client.aclose()

    assert event["isAllDay"] is True
    assert event["start"] == {"dateTime": f"{day}T00:00:00.0000000", "timeZone": "UTC"}
    assert event["end"]["dateTime"] == f"{day + timedelta(days=1)}T00:00:00.0000000"


async def test_a_token_is_checked_and_must_carry_the_calendar_permission(sim: Simulator) -> None:
    import httpx

    from pushsync.simulator.access_token import issue

    now = sim.clock.now()
    end = now + timedelta(days=1)
    window = f"startDateTime={now:%Y-%m-%dT%H:%M:%SZ}&endDateTime={end:%Y-%m-%dT%H:%M:%SZ}"
    url = f"{sim.graph_url}/users/{ROOM}/calendarView/delta?{window}"
    without = issue("contoso", "app", roles=("Place.Read.All",))
    expired = issue("contoso", "app", issued_at=1767225600, lifetime=60)
    forged = GRAPH_TOKEN[:-4] + ("AAAA" if not GRAPH_TOKEN.endswith("AAAA") else "BBBB")
    async with httpx.AsyncClient() as client:
        answers = {
            name: await client.get(url, headers={"Authorization": f"Bearer {token}"})
            for name, token in [
                ("granted", GRAPH_TOKEN), ("without", without), ("expired", expired),
                ("forged", forged),
            ]
        }  # fmt: skip
    assert answers["granted"].status_code == 200
    assert answers["without"].status_code == 403
    assert answers["without"].json()["error"]["code"] == "ErrorAccessDenied"
    assert answers["expired"].status_code == 401 and answers["forged"].status_code == 401
