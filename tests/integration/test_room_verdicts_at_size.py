"""The operator's pages over a fleet of 2,000 rooms, on both engines: the status page's counts
are the rooms' own verdicts counted, /rooms a page at a time lists every room exactly once (in
all, and per state), /metrics says the same counts, and the CLI's listing agrees.

The rooms are written through pushsync's own store functions, with a share of problems of
several kinds; the EWS worker is alive and the Graph one never ran, so the Graph rooms are
"no worker" whatever their rows say. The admin listener judges at its own clock (now), so the
rows are placed far from every threshold.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import httpx
import pytest

from pushsync.admin.app import AdminApp
from pushsync.admin.room_status import PROBLEM_KINDS, room_statuses
from pushsync.model.reservation import Plan
from pushsync.settings import Settings
from pushsync.store import Connector
from pushsync.store.notification_queue import NotificationQueue, QueuePolicy
from pushsync.store.processes import ProcessHeartbeats
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.web.app import address_filter
from tests.integration.helpers import add_rows, event

ROOMS = 2000
GRAPH_ROOMS = 40
PAGE = 137  # not a divisor of anything here: the last page is a short one


def mailbox(index: int) -> str:
    return f"room-{index:05d}@contoso.example"


async def fleet_of(connector: Connector, now: datetime) -> None:
    """2,000 EWS rooms, one in ten with a problem, and 40 Graph rooms without a worker."""
    subscriptions = Subscriptions(connector)
    ews = [mailbox(i) for i in range(ROOMS - GRAPH_ROOMS)]
    graph = [mailbox(i) for i in range(ROOMS - GRAPH_ROOMS, ROOMS)]
    await subscriptions.ensure_rooms(ews, "ews", now - timedelta(days=1))
    await subscriptions.ensure_rooms(graph, "graph", now - timedelta(days=1))
    for i, room in enumerate(ews):
        if i % 10 == 3:
            continue  # never subscribed: "no subscription"
        await subscriptions.record(
            room, f"SUB-{i}", protocol="ews", watermark="W0", status_frequency=15, now=now
        )
        await subscriptions.heard(f"SUB-{i}", now, "W1")
    reservations = Reservations(connector)
    for i, room in enumerate(ews):
        if i % 20 != 3:  # the others wait for their first resync
            # read under the generation the room has now (its Subscribe bumped a waiting one)
            generation = await subscriptions.resync_generation(room)
            await reservations.reconcile_room(room, lambda _: Plan(), now, resynced=generation)
    for i in range(5, len(ews), 50):
        await subscriptions.mark_broken(f"SUB-{i}", "ErrorReadEventsFailed")
    for i in range(7, len(ews), 50):
        await subscriptions.pause(ews[i], now + timedelta(hours=2))
    for i in range(9, len(ews), 100):
        await subscriptions.room_error(ews[i], "resync: ErrorServerBusy", now)
    await add_rows(connector, [event(n, f"SUB-{i}") for n, i in enumerate(range(1, 400, 40))])
    queue = NotificationQueue(connector, policy=QueuePolicy(max_attempts=1))
    for claimed in await queue.claim(5):
        await queue.fail(claimed, "ErrorItemCorrupt")
    heartbeats = ProcessHeartbeats(connector)
    for kind in ("worker", "manager"):
        await heartbeats.register(kind, "ews", now)
    await heartbeats.register("receiver", None, now)


def admin_app(database_url: str) -> AdminApp:
    settings = Settings(
        database_url=database_url,
        allow_callbacks_without_token=True,
        use_microsoft_ranges=False,
        process_dead_after_seconds=3600,
    )
    return AdminApp(settings, address_filter(settings), None)


async def pages(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    """Every room /rooms lists from `path`, following `next` to the end."""
    statuses: list[dict[str, Any]] = []
    following: str | None = path
    while following is not None:
        answer = (await client.get(following)).json()
        assert len(answer["statuses"]) <= answer["limit"]
        statuses += answer["statuses"]
        following = answer["next"]
    return statuses


@pytest.fixture
async def fleet(connector: Connector) -> datetime:
    now = datetime.now(UTC)
    await fleet_of(connector, now)
    return now


async def test_the_status_page_counts_are_the_rooms_own_verdicts(
    database_url: str, connector: Connector, fleet: datetime
) -> None:
    app = admin_app(database_url)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://admin"
    ) as client:
        listed = await pages(client, f"/rooms?limit={PAGE}")
        page = unescape((await client.get("/")).text)
        metrics = (await client.get("/metrics")).text
    await app.close()

    kinds = Counter(s["kind"] for s in listed)
    assert len(listed) == ROOMS
    assert {"no worker", "no subscription", "subscription broken", "throttled", "error"} <= set(
        kinds
    )
    assert f"pushsync: {kinds[None]} of {ROOMS} rooms in sync" in page
    for kind, n in kinds.items():
        if kind is not None:
            assert f">{n} {kind}</a>" in page  # the header's count, linked to its list
            assert f'pushsync_rooms{{status="{kind}"}} {n}.0' in metrics
    assert f"Rooms out of sync ({ROOMS - kinds[None]})" in page
    shown = re.findall(r'<tr data-room="([^"]+)">', page)
    worst = [s["mailbox"] for s in listed if s["kind"]][: len(shown)]
    assert shown == worst  # the worst first, as /rooms lists them
    # the per-room judgement without the processes agrees but for the rooms without a worker
    rows_only = {s.mailbox: s.kind for s in await room_statuses(connector, fleet)}
    assert {s["mailbox"] for s in listed if s["kind"] == "no worker"} == {
        mailbox(i) for i in range(ROOMS - GRAPH_ROOMS, ROOMS)
    }
    assert all(rows_only[s["mailbox"]] == s["kind"] for s in listed if s["kind"] != "no worker")


async def test_pages_list_every_room_exactly_once_in_all_and_per_state(
    database_url: str, connector: Connector, fleet: datetime
) -> None:
    app = admin_app(database_url)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://admin"
    ) as client:
        everything = await pages(client, f"/rooms?limit={PAGE}")
        first = (await client.get("/rooms")).json()
        by_state = {
            state: await pages(client, f"/rooms?state={state}&limit={PAGE}")
            for state in ("in sync", *PROBLEM_KINDS)
        }
        problems = await pages(client, f"/rooms?state=problem&limit={PAGE}")
        refused = await client.get("/rooms?state=sideways")
    await app.close()

    mailboxes = [s["mailbox"] for s in everything]
    assert sorted(mailboxes) == [mailbox(i) for i in range(ROOMS)]  # each once
    assert len(first["statuses"]) == 1000 and first["next"]  # one page by default
    assert first["rooms"] == ROOMS and first["by_status"]["in sync"] == first["in_sync"]
    per_state = [s["mailbox"] for listed in by_state.values() for s in listed]
    assert sorted(per_state) == sorted(mailboxes)
    for state, listed in by_state.items():
        assert {s["kind"] or "in sync" for s in listed} <= {state}
        assert len(listed) == first["by_status"].get(state, 0)
    assert [s["mailbox"] for s in problems] == [s["mailbox"] for s in everything if s["kind"]]
    assert refused.status_code == 400 and "unknown state" in refused.text
