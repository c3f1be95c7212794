"""Graph end to end: the simulator speaking Graph, a real `pushsync serve`, the Graph
subscription manager and the worker over Graph, against one SQLite database.

Everything async runs on the test's loop (simulator included); the receiver is its own process.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import httpx
import pytest

from pushsync.errors import Throttled
from pushsync.graph.adapter import GraphAdapter
from pushsync.graph.auth import static_token
from pushsync.graph.calendar_source import GraphCalendar
from pushsync.graph.client import GraphClient
from pushsync.graph.subscription_manager import GraphSubscriptionManager
from pushsync.simulator import Recurrence, Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.store import Connector, connect
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.loop import Worker
from tests.acceptance.conftest import EWS_HEADERS, EWS_PATH, ServerProcess
from tests.acceptance.sync_loop import RESPONSES
from tests.acceptance.test_sync_end_to_end import meeting
from tests.conftest import FIXTURES

STATE = "graph-acceptance-state"
SCALE = 60.0


@dataclass
class Rig:
    sim: Simulator
    server: ServerProcess
    connector: Connector
    client: GraphClient
    manager: GraphSubscriptionManager
    worker: Worker
    calendar: GraphCalendar

    @property
    def rooms(self) -> list[str]:
        return [room.email for room in self.sim.config.rooms]

    def subscriptions(self) -> list:
        return self.server.rows("SELECT * FROM subscription ORDER BY created_at")

    def room(self, mailbox: str):
        [row] = self.server.rows(f"SELECT * FROM room WHERE mailbox = '{mailbox}'")
        return row


async def wait_until(condition: Callable[[], object], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def rig(server_factory) -> AsyncIterator[Rig]:
    server = server_factory(pushsync_graph_client_state=STATE)
    config = SimulatorConfig(rooms=generated_rooms(3), scale=SCALE)
    async with Simulator(config) as sim:
        connector = connect(server.database_url)
        await connector.open()
        client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
        calendar = GraphCalendar(
            client, past=timedelta(days=1), future=timedelta(days=120), clock=sim.clock.now
        )
        manager = GraphSubscriptionManager(
            client,
            Subscriptions(connector),
            notification_url=server.url + "/graph/notifications",
            client_state=STATE,
            clock=sim.clock.now,
        )
        worker = Worker(
            NotificationQueue(connector),
            Reservations(connector),
            Subscriptions(connector),
            {"graph": GraphAdapter(calendar, Subscriptions(connector))},
            debounce=timedelta(milliseconds=50),
            idle_sleep=0.05,
        )
        try:
            yield Rig(sim, server, connector, client, manager, worker, calendar)
        finally:
            await client.aclose()
            await connector.close()


async def test_subscribe_gives_each_room_a_validated_subscription_with_lifecycle_url(
    rig: Rig,
) -> None:
    room = rig.rooms[0]
    outcome = await rig.manager.subscribe_rooms([room])

    assert outcome.subscribed == [room] and not outcome.failed
    [made] = rig.sim.graph.webhooks.active(room)
    assert made.lifecycle_url == made.notification_url == rig.server.url + "/graph/notifications"
    assert made.client_state == STATE
    assert made.change_types == {"created", "updated", "deleted"}
    assert made.resource == f"/users/{room}/events"
    [row] = rig.subscriptions()
    assert (row["subscription_id"], row["protocol"], row["mailbox"]) == (made.id, "graph", room)
    assert row["expires_at"] is not None

    again = await rig.manager.subscribe_rooms([room])  # a live one is kept
    assert again.subscribed == [] and len(rig.sim.graph.webhooks.active(room)) == 1

    rig.sim.exchange.book(meeting("PUSHED", rig.sim.clock.now() + timedelta(days=1)), [room])
    await wait_until(lambda: rig.server.rows(), "a Graph notification row")
    row = rig.server.rows()[0]
    assert (row["protocol"], row["subscription_id"], row["event_type"]) == (
        "graph",
        made.id,
        "created",
    )


async def test_an_idle_subscription_costs_no_task_and_an_expired_one_delivers_nothing(
    rig: Rig,
) -> None:
    """At 50,000 rooms the simulator must not keep a task and a timer per idle subscription
    (docs/simulator.md): one delivers while it has something queued, and once it has expired
    nothing is posted for it, as Graph stops at expirationDateTime."""
    first, second = rig.rooms[0], rig.rooms[1]
    rig.sim.graph.max_lifetime = timedelta(minutes=30)  # 30 real seconds at x60
    await rig.manager.subscribe_rooms([first, second])
    made = {s.calendar.mailbox: s for s in rig.sim.graph.webhooks.active()}
    assert all(s.task is None for s in made.values())

    rig.sim.exchange.book(meeting("IDLE-1", rig.sim.clock.now() + timedelta(days=1)), [first])
    await wait_until(lambda: rig.server.rows(), "a Graph notification row")
    await wait_until(lambda: made[first].task is None, "the delivery task to end")

    rig.sim.clock.advance(31 * 60)  # past the expiry of both
    rig.sim.exchange.book(meeting("IDLE-2", rig.sim.clock.now() + timedelta(days=1)), [second])
    await asyncio.sleep(0.5)
    assert {r["subscription_id"] for r in rig.server.rows()} == {made[first].id}
    assert rig.sim.graph.webhooks.active() == []


async def test_a_subscription_is_renewed_before_it_expires_and_not_before(rig: Rig) -> None:
    room = rig.rooms[0]
    await rig.manager.subscribe_rooms([room])
    [made] = rig.sim.graph.webhooks.active(room)
    first_expiry = made.expires

    await rig.manager.maintain()  # 10,000 minutes left, more than a day: nothing to do
    assert rig.sim.graph.calls["renew"] == 0

    rig.manager._renew_before = timedelta(days=8)  # now less is left than the margin
    await asyncio.sleep(0.05)  # let Exchange time move on, so the new expiry is later
    await rig.manager.maintain()

    assert rig.sim.graph.calls["renew"] == 1
    assert made.expires > first_expiry
    [row] = rig.subscriptions()
    assert row["state"] == "active" and row["expires_at"].startswith(
        made.expires.strftime("%Y-%m-%d")
    )


async def test_409_on_create_adopts_the_existing_subscription(rig: Rig) -> None:
    room = rig.rooms[1]
    existing = await rig.client.create_subscription(
        room,
        notification_url=rig.server.url + "/graph/notifications",
        lifecycle_url=rig.server.url + "/graph/notifications",
        client_state=STATE,
        expires_at=rig.sim.clock.now() + timedelta(days=2),
    )

    outcome = await rig.manager.subscribe_rooms([room])

    assert outcome.subscribed == [room] and not outcome.failed
    assert [s.id for s in rig.sim.graph.webhooks.active(room)] == [existing.subscription_id]
    assert [r["subscription_id"] for r in rig.subscriptions()] == [existing.subscription_id]
    assert rig.sim.graph.calls["renew"] == 1  # adopted for the full lifetime


async def test_429_is_waited_out_for_retry_after(rig: Rig) -> None:
    room = rig.rooms[2]
    rig.sim.exchange.journal = []
    rig.sim.graph.throttle(room, 2)

    with pytest.raises(Throttled) as refused:
        await rig.client.event(room, "AAMk-any")
    assert refused.value.retry_after == 1.0
    outcome = await rig.manager.subscribe_rooms([room])

    assert outcome.subscribed == [room]
    calls = [r for r in rig.sim.exchange.journal if r.mailbox == room]
    assert [r.busy for r in calls] == [True, True, False]
    assert calls[2].at - calls[1].at >= 1.0  # the manager waited Retry-After before retrying


async def _lifecycle(rig: Rig, event: str) -> str:
    room = rig.rooms[0]
    await rig.manager.subscribe_rooms([room])
    await rig.worker.resync_pending(limit=3)  # the new room's first resync
    [made] = rig.sim.graph.webhooks.active(room)
    rig.sim.graph.webhooks.lifecycle(made.id, event)
    await wait_until(
        lambda: any(r["event_type"] == event for r in rig.server.rows()), f"a {event} row"
    )
    while await rig.worker.run_once():
        pass
    return made.id


async def test_reauthorization_required_is_answered_by_a_renewal(rig: Rig) -> None:
    subscription_id = await _lifecycle(rig, "reauthorizationRequired")
    [row] = rig.subscriptions()
    assert (row["state"], row["last_error"]) == ("broken", "reauthorizationRequired")

    await rig.manager.maintain()

    assert rig.sim.graph.calls["renew"] == 1 and rig.sim.graph.calls["subscribe"] == 1
    [row] = rig.subscriptions()
    assert (row["subscription_id"], row["state"]) == (subscription_id, "active")


async def test_subscription_removed_is_recreated_and_the_room_resynced(rig: Rig) -> None:
    old = await _lifecycle(rig, "subscriptionRemoved")
    assert not rig.room(rig.rooms[0])["needs_resync"]

    await rig.manager.maintain()

    [new] = rig.sim.graph.webhooks.active(rig.rooms[0])
    assert new.id != old
    states = {r["subscription_id"]: r["state"] for r in rig.subscriptions()}
    assert states == {old: "retired", new.id: "active"}
    assert rig.room(rig.rooms[0])["needs_resync"]


async def test_missed_asks_for_a_full_resync(rig: Rig) -> None:
    await _lifecycle(rig, "missed")
    room = rig.room(rig.rooms[0])
    assert room["needs_resync"] and "missed" in room["resync_reason"]
    assert rig.sim.graph.calls["subscribe"] == 1  # the subscription itself is fine
    assert await rig.worker.resync_pending(limit=3) == 1


async def test_an_expired_delta_token_means_a_full_round(rig: Rig) -> None:
    room = rig.rooms[0]
    rig.sim.exchange.book(meeting("DELTA", rig.sim.clock.now() + timedelta(days=1)), [room])
    rig.sim.exchange.settle()
    snapshot = await rig.calendar.observe_room(room)
    assert [r.uid for r in snapshot.occurrences] == ["DELTA"]
    assert await rig.calendar.changes_since(room) == []

    rig.sim.exchange.cancel("DELTA")
    [changed] = await rig.calendar.changes_since(room)
    assert changed["isCancelled"] is True

    rig.sim.graph.expire_delta_tokens()
    assert await rig.calendar.changes_since(room) is None  # 410: start over
    assert room not in rig.calendar.delta_links


def _truth(sim: Simulator, start: datetime, end: datetime) -> set[tuple]:
    return {
        (
            i.mailbox,
            i.uid,
            i.original_start,
            i.start,
            i.end,
            i.cancelled,
            RESPONSES[i.response],
            i.all_day,
        )
        for i in sim.exchange.truth(start, end)
        if RESPONSES[i.response] != "declined"
    }


async def _stored(rig: Rig, start: datetime, end: datetime) -> set[tuple]:
    return {
        (
            r.mailbox,
            r.uid,
            r.original_start,
            r.start,
            r.end,
            r.is_cancelled,
            r.response_state,
            r.is_all_day,
        )
        for r in await Reservations(rig.connector).all()
        if r.end > start and r.start < end
    }


async def _converge(rig: Rig, seconds: float = 40) -> None:
    now = rig.sim.clock.now()
    start, end = now - timedelta(days=1), now + timedelta(days=120)
    deadline = time.monotonic() + seconds
    while True:
        rig.sim.exchange.settle()
        truth, stored = _truth(rig.sim, start, end), await _stored(rig, start, end)
        if truth == stored and truth:
            return
        if time.monotonic() > deadline:
            missing, extra = sorted(truth - stored), sorted(stored - truth)
            raise AssertionError(f"not converged; missing {missing[:3]}; extra {extra[:3]}")
        await asyncio.sleep(0.2)


async def test_reservations_equal_the_simulator_calendars_over_graph(rig: Rig) -> None:
    sim = rig.sim
    r1, r2, r3 = rig.rooms
    base = sim.clock.now().replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)
    single = meeting("SINGLE", base)
    weekly = meeting(
        "WEEKLY",
        base + timedelta(hours=2),
        recurrence=Recurrence(interval=1, weekdays=(base.weekday(),), count=8),
    )
    daily = meeting("DAILY", base + timedelta(hours=5), recurrence=Recurrence(interval=1, count=5))
    shared = meeting("SHARED", base + timedelta(days=2))
    berlin = datetime.combine(
        base.date() + timedelta(days=3), clock_time(0), ZoneInfo("Europe/Berlin")
    )
    all_day = meeting("ALLDAY", berlin.astimezone(UTC), hours=24, all_day=True)
    sim.exchange.book(single, [r1])
    sim.exchange.book(weekly, [r2])
    sim.exchange.book(daily, [r2])
    sim.exchange.book(shared, [r1, r3])
    sim.exchange.book(all_day, [r3])

    stop = asyncio.Event()
    running = asyncio.gather(rig.manager.run(stop, rig.rooms, 0.2), rig.worker.run(stop))
    try:
        await _converge(rig)  # the first resync of each room, then the pushes
        sim.exchange.book(meeting("CONFLICT", base + timedelta(minutes=30)), [r1])  # declined
        sim.exchange.settle()
        second = weekly.start + timedelta(weeks=1)
        sim.exchange.edit_occurrence(
            "WEEKLY", second, second + timedelta(hours=1), second + timedelta(hours=2), "moved"
        )
        sim.exchange.delete_occurrence("WEEKLY", weekly.start + timedelta(weeks=3))
        sim.exchange.update(
            replace(
                daily, start=daily.start + timedelta(hours=1), end=daily.end + timedelta(hours=1)
            )
        )
        sim.exchange.cancel("SHARED")
        sim.exchange.delete("SINGLE")
        sim.exchange.update(replace(all_day, end=all_day.end + timedelta(days=1)))
        await _converge(rig)
    finally:
        stop.set()
        await running

    stored = await Reservations(rig.connector).all()
    assert "SINGLE" not in {r.uid for r in stored}
    assert "CONFLICT" not in {r.uid for r in stored}
    assert len([r for r in stored if r.uid == "WEEKLY"]) == 7
    assert {r.series_master_id is not None for r in stored if r.uid == "WEEKLY"} == {True}
    assert rig.worker.stats.notifications > 0  # pushes, not only resyncs, did the work
    assert {d.status for d in rig.sim.graph.webhooks.deliveries} == {202}


async def _graph_room(rig: Rig) -> str:
    room = rig.rooms[1]
    await Subscriptions(rig.connector).ensure_rooms([room], "graph", rig.sim.clock.now())
    return room


async def _equal_to_the_calendar(rig: Rig, room: str) -> None:
    now = rig.sim.clock.now()
    start, end = now - timedelta(days=1), now + timedelta(days=120)
    truth = {t for t in _truth(rig.sim, start, end) if t[0] == room}
    stored = {s for s in await _stored(rig, start, end) if s[0] == room}
    assert truth and stored == truth


async def test_a_resync_starts_from_the_stored_delta_link_and_a_410_means_a_full_round(
    rig: Rig,
) -> None:
    sim = rig.sim
    room = await _graph_room(rig)
    base = sim.clock.now().replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)
    weekly = meeting(
        "WEEKLY", base, recurrence=Recurrence(interval=1, weekdays=(base.weekday(),), count=6)
    )
    sim.exchange.book(weekly, [room])
    sim.exchange.book(meeting("SINGLE", base + timedelta(hours=3)), [room])
    sim.exchange.settle()

    assert await rig.worker.resync(room, "graph") == 1  # no cursor yet: a full round
    first_cursor = rig.room(room)["sync_state"]
    assert first_cursor and rig.worker.stats.incremental_resyncs == 0
    await _equal_to_the_calendar(rig, room)

    sim.exchange.cancel("SINGLE")
    sim.exchange.delete_occurrence("WEEKLY", weekly.start + timedelta(weeks=2))  # silent in delta
    sim.exchange.book(meeting("LATER", base + timedelta(days=3)), [room])
    sim.exchange.settle()
    assert await rig.worker.resync(room, "graph") == 1

    assert rig.worker.stats.incremental_resyncs == 1
    assert rig.room(room)["sync_state"] not in (None, first_cursor)
    assert not rig.room(room)["needs_resync"]
    await _equal_to_the_calendar(rig, room)
    assert len([r for r in await Reservations(rig.connector).all() if r.uid == "WEEKLY"]) == 5

    sim.graph.expire_delta_tokens()
    sim.exchange.delete("LATER")
    sim.exchange.settle()
    deltas = sim.graph.calls["delta"]
    assert await rig.worker.resync(room, "graph") == 1

    assert rig.worker.stats.incremental_resyncs == 1  # the 410 was followed by a full round
    assert sim.graph.calls["delta"] == deltas + 2
    await _equal_to_the_calendar(rig, room)


async def test_a_cursor_whose_window_has_been_outgrown_is_not_used(rig: Rig) -> None:
    room = await _graph_room(rig)
    rig.sim.exchange.book(meeting("SOON", rig.sim.clock.now() + timedelta(days=1)), [room])
    rig.sim.exchange.settle()
    await rig.worker.resync(room, "graph")
    cursor = rig.room(room)["sync_state"]

    assert await rig.calendar.observe_since(room, cursor) is not None  # still covers the window
    rig.sim.clock.advance(timedelta(days=8).total_seconds())  # past the cursor's 7-day margin
    deltas = rig.sim.graph.calls["delta"]
    assert await rig.calendar.observe_since(room, cursor) is None
    assert rig.sim.graph.calls["delta"] == deltas  # refused without asking Graph

    assert await rig.calendar.observe_since(room, "not a cursor") is None
    assert await rig.worker.resync(room, "graph") == 1  # a full round instead
    assert rig.worker.stats.incremental_resyncs == 0


async def test_a_full_resync_ignores_the_cursor(rig: Rig) -> None:
    room = await _graph_room(rig)
    rig.sim.exchange.book(meeting("ANY", rig.sim.clock.now() + timedelta(days=1)), [room])
    rig.sim.exchange.settle()
    await rig.worker.resync(room, "graph")

    await rig.worker.resync(room, "graph", full=True)

    assert rig.worker.stats.incremental_resyncs == 0 and rig.worker.stats.resyncs == 2


async def test_rows_of_a_protocol_the_room_left_are_not_read_with_the_other_one(
    rig: Rig,
) -> None:
    """While a room moves from EWS to Graph its old EWS subscription may still deliver; a
    Graph-only worker must neither hand EWS item ids to Graph nor stop on them."""
    room = rig.rooms[0]
    await rig.manager.subscribe_rooms([room])
    await rig.worker.resync_pending(limit=3)
    packet = (FIXTURES / "product-page-packet.xml").read_bytes()
    ews_id = re.search(rb"SubscriptionId>([^<]+)<", packet).group(1).decode()
    await Subscriptions(rig.connector).record(
        room, ews_id, protocol="ews", watermark=None, status_frequency=15, now=rig.sim.clock.now()
    )
    async with httpx.AsyncClient() as http:
        posted = await http.post(
            rig.server.url + EWS_PATH + "?Default", content=packet, headers=EWS_HEADERS
        )
    assert posted.status_code == 200
    rig.sim.exchange.book(meeting("MOVED", rig.sim.clock.now() + timedelta(days=1)), [room])
    await wait_until(lambda: {r["protocol"] for r in rig.server.rows()} == {"ews", "graph"}, "rows")
    events_asked, deltas = rig.sim.graph.calls["event"], rig.sim.graph.calls["delta"]

    while await rig.worker.run_once():
        pass

    states = {(r["protocol"], r["state"]) for r in rig.server.rows()}
    assert "failed" not in {state for _, state in states} and "pending" not in {
        s for _, s in states
    }
    assert "MOVED" in {r.uid for r in await Reservations(rig.connector).all()}
    # the Graph rows were answered from the room's delta link: no id of either kind was asked
    assert rig.sim.graph.calls["event"] == events_asked
    assert rig.sim.graph.calls["delta"] > deltas


async def _lose_a_booking(rig: Rig) -> str:
    """A booking whose notifications Graph dropped: they never reach the worker."""
    room = rig.rooms[0]
    await rig.manager.subscribe_rooms([room])
    await rig.worker.resync_pending(limit=3)  # the new room's first resync
    rig.sim.exchange.book(meeting("LOST", rig.sim.clock.now() + timedelta(days=1)), [room])
    rig.sim.exchange.settle()
    await wait_until(
        lambda: any(r["event_type"] == "updated" for r in rig.server.rows()), "the pushes"
    )
    connection = sqlite3.connect(rig.server.database)
    with connection:
        connection.execute("DELETE FROM sync_notification")
    connection.close()
    return room


@pytest.mark.parametrize("event", ["missed", "subscriptionRemoved"])
async def test_a_lifecycle_event_brings_in_what_graph_did_not_notify(rig: Rig, event: str) -> None:
    room = await _lose_a_booking(rig)
    [made] = rig.sim.graph.webhooks.active(room)
    rig.sim.graph.webhooks.lifecycle(made.id, event)
    await wait_until(
        lambda: any(r["event_type"] == event for r in rig.server.rows()), f"a {event} row"
    )
    while await rig.worker.run_once():
        pass
    await rig.manager.maintain()  # subscriptionRemoved: recreated, and the room resynced

    assert "LOST" not in {r.uid for r in await Reservations(rig.connector).all()}
    assert await rig.worker.resync_pending(limit=3) == 1
    assert "LOST" in {r.uid for r in await Reservations(rig.connector).all()}
    await _equal_to_the_calendar(rig, room)
