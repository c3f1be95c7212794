"""The simulator's calendarView delta follows event-delta (v1.0), not pushsync's convenience.

https://learn.microsoft.com/graph/api/event-delta: the first request's window is the token's
for good; `$select`, `$expand`, `$filter`, `$orderby`, `$search` are not supported;
`Prefer: odata.maxpagesize` caps a page; series masters are not returned; events outside the
range that changed since the token come under `@removed`. Plain HTTP, no pushsync client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pushsync.simulator import Recurrence, Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.simulator.graph.resources import graph_id
from tests.acceptance.simulated_exchange import meeting

ROOM = "room-001@contoso.example"
AUTH = {"Authorization": f"Bearer {GRAPH_TOKEN}"}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(rooms=generated_rooms(1), scale=60)) as sim:
        yield sim


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _round(
    http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> tuple[list[list[dict[str, Any]]], str]:
    """Every page of a round (their events, page by page) and the deltaLink."""
    pages: list[list[dict[str, Any]]] = []
    while True:
        answer = await http.get(url, headers=AUTH | (headers or {}))
        assert answer.status_code == 200, answer.text
        document = answer.json()
        pages.append(document["value"])
        if "@odata.deltaLink" in document:
            return pages, document["@odata.deltaLink"]
        url = document["@odata.nextLink"]


async def test_delta_keeps_its_window_pages_as_asked_and_reports_what_left_the_window(
    sim: Simulator,
) -> None:
    now = sim.clock.now()
    base = now.replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)
    singles = [meeting(f"S{n}", base + timedelta(days=n)) for n in range(5)]
    for single in singles:
        sim.exchange.book(single, [ROOM])
    weekly = meeting("W", base + timedelta(hours=3), recurrence=Recurrence(interval=1, count=3))
    sim.exchange.book(weekly, [ROOM])
    sim.exchange.settle()
    start, end = now, now + timedelta(days=20)
    first = (
        f"{sim.graph_url}/users/{ROOM}/calendarView/delta"
        f"?startDateTime={_z(start)}&endDateTime={_z(end)}"
    )
    async with httpx.AsyncClient() as http:
        for name in ("$select", "$filter", "$orderby", "$expand", "$search"):
            refused = await http.get(f"{first}&{name}=subject", headers=AUTH)
            assert refused.status_code == 400, name

        pages, link = await _round(http, first, {"Prefer": "odata.maxpagesize=3"})
        assert [len(page) for page in pages] == [3, 3, 2]  # 5 singles + 3 occurrences
        events = [e for page in pages for e in page]
        assert {e["type"] for e in events} == {"singleInstance", "occurrence"}  # no master

        calendar = sim.exchange.calendar(ROOM)
        assert calendar is not None
        ids = {uid: graph_id(calendar.by_uid(uid).item_id) for uid in ("S0", "S1", "S2")}
        moved = replace(singles[0], start=now + timedelta(days=40), end=now + timedelta(days=41))
        sim.exchange.update(moved)  # out of the token's window
        sim.exchange.update(replace(singles[1], end=singles[1].end + timedelta(minutes=30)))
        sim.exchange.delete("S2")
        sim.exchange.settle()
        # a later window asked for alongside the token is not read: the token keeps its own
        pages, _ = await _round(http, f"{link}&endDateTime={_z(now + timedelta(days=60))}")

    changed = [e for page in pages for e in page]
    removed = {e["id"]: e["@removed"] for e in changed if "@removed" in e}
    assert removed == {ids["S0"]: {"reason": "deleted"}, ids["S2"]: {"reason": "deleted"}}
    assert [e["id"] for e in changed if "@removed" not in e] == [ids["S1"]]
