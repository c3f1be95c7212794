"""A burst of Graph notifications for one room is answered by one calendarView delta round.

The simulator speaks Graph and pushes to a real `pushsync serve`; the Graph subscription
manager subscribes, and the real worker (the adapter and calendar source the composition root
builds, series keys read from the reservation table) works the rows off. Calls are counted by
the simulator, reservations compared with its calendars.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from pushsync.graph.adapter import GraphAdapter
from pushsync.graph.auth import static_token
from pushsync.graph.calendar_source import GraphCalendar
from pushsync.graph.client import GraphClient
from pushsync.graph.subscription_manager import GraphSubscriptionManager
from pushsync.processes.sync import build_worker
from pushsync.settings import Settings
from pushsync.simulator import Recurrence, Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.store import Connector, connect
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.loop import Worker
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.sync_loop import RESPONSES
from tests.acceptance.test_sync_end_to_end import meeting

STATE = "graph-burst-state"
SCALE = 60.0
PAST, FUTURE = timedelta(days=1), timedelta(days=60)


@dataclass
class Rig:
    sim: Simulator
    server: ServerProcess
    connector: Connector
    manager: GraphSubscriptionManager
    worker: Worker

    @property
    def room(self) -> str:
        return self.sim.config.rooms[0].email

    def calls(self) -> int:
        return sum(self.sim.graph.calls[op] for op in ("event", "instances", "delta"))

    def sync_state(self) -> dict[str, str] | None:
        [row] = self.server.rows(f"SELECT sync_state FROM room WHERE mailbox = '{self.room}'")
        return json.loads(row["sync_state"]) if row["sync_state"] else None


@pytest.fixture
async def rig(server_factory) -> AsyncIterator[Rig]:
    server = server_factory(pushsync_graph_client_state=STATE)
    config = SimulatorConfig(rooms=generated_rooms(1), scale=SCALE)
    async with Simulator(config) as sim:
        settings = Settings(
            database_url=server.database_url,
            graph_url=sim.graph_url,
            graph_token=GRAPH_TOKEN,
            graph_client_state=STATE,
            sync_window_past_days=PAST.days,
            sync_window_future_days=FUTURE.days,
            worker_debounce_ms=50,
        )  # type: ignore[call-arg]
        connector = connect(server.database_url)
        await connector.open()
        client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
        manager = GraphSubscriptionManager(
            client,
            Subscriptions(connector),
            notification_url=server.url + "/graph/notifications",
            client_state=STATE,
            clock=sim.clock.now,
        )
        worker = build_worker(settings, connector, None, sim.clock.now, graph=client)
        try:
            yield Rig(sim, server, connector, manager, worker)
        finally:
            await client.aclose()
            await connector.close()


async def wait_until(condition: Callable[[], object], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def delivered(rig: Rig) -> int:
    """Wait until Graph has pushed every change made so far and the rows are stored (their
    count stays the same for a second); returns how many notification rows there are."""
    rig.sim.exchange.settle()
    await wait_until(
        lambda: not any(s.queue for s in rig.sim.graph.webhooks.active()), "Graph's pushes"
    )
    count, since = -1, time.monotonic()
    while time.monotonic() - since < 1.0:
        now = len(rig.server.rows("SELECT id FROM sync_notification"))
        if now != count:
            count, since = now, time.monotonic()
        await asyncio.sleep(0.1)
    return count


async def work_off(rig: Rig) -> None:
    while await rig.worker.run_once():
        pass


def truth(rig: Rig) -> set[tuple]:
    now = rig.sim.clock.now()
    return {
        (i.uid, i.original_start, i.start, i.end, i.cancelled, i.subject)
        for i in rig.sim.exchange.truth(now - PAST, now + FUTURE)
        if RESPONSES[i.response] != "declined"
    }


async def stored(rig: Rig) -> set[tuple]:
    now = rig.sim.clock.now()
    start, end = now - PAST, now + FUTURE
    return {
        (r.uid, r.original_start, r.start, r.end, r.is_cancelled, r.subject)
        for r in await Reservations(rig.connector).all()
        if r.end > start and r.start < end
    }


async def equal_to_the_calendar(rig: Rig) -> None:
    rig.sim.exchange.settle()
    expected, found = truth(rig), await stored(rig)
    assert expected and found == expected, (
        f"missing {sorted(expected - found)[:3]}; extra {sorted(found - expected)[:3]}"
    )


def nine_tomorrow(rig: Rig) -> datetime:
    now = rig.sim.clock.now()
    return now.replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)


async def onboarded(rig: Rig) -> None:
    """The room subscribed, its first (full) resync done: a cursor stored, rows worked off."""
    await rig.manager.subscribe_rooms([rig.room])
    assert await rig.worker.resync_pending(limit=1) == 1
    await delivered(rig)
    await work_off(rig)
    assert rig.sync_state() is not None


async def test_a_burst_of_changes_to_one_room_costs_at_most_two_calls(rig: Rig) -> None:
    sim, room, base = rig.sim, rig.room, nine_tomorrow(rig)
    singles = [meeting(f"S{n}", base + timedelta(days=n, hours=n % 4)) for n in range(6)]
    weekly = meeting(
        "WEEKLY",
        base + timedelta(hours=5),
        recurrence=Recurrence(interval=1, weekdays=(base.weekday(),), count=6),
    )
    for booked in [*singles, weekly]:
        sim.exchange.book(booked, [room])
    await onboarded(rig)
    await equal_to_the_calendar(rig)
    rows_before, calls_before = await delivered(rig), rig.calls()
    cursor_before = rig.sync_state()

    # the burst: creates, updates (moves, a cancel), deletes, an exception, a series change
    for n in range(3):
        sim.exchange.book(meeting(f"NEW{n}", base + timedelta(days=n, hours=7)), [room])
    moved = replace(singles[0], start=singles[0].start + timedelta(minutes=30))
    sim.exchange.update(replace(moved, end=moved.end + timedelta(minutes=30)))
    sim.exchange.update(replace(singles[1], subject="renamed"))
    sim.exchange.cancel("S2")
    sim.exchange.delete("S3")
    sim.exchange.delete("S4")
    second = weekly.start + timedelta(weeks=1)
    sim.exchange.edit_occurrence(
        "WEEKLY", second, second + timedelta(hours=1), second + timedelta(hours=2), "moved"
    )
    sim.exchange.delete_occurrence("WEEKLY", weekly.start + timedelta(weeks=3))
    longer = timedelta(minutes=30)
    sim.exchange.update(replace(weekly, end=weekly.end + longer))  # the series master
    notifications = await delivered(rig) - rows_before
    await work_off(rig)

    calls = rig.calls() - calls_before
    assert notifications >= 10
    assert calls <= 2, f"{calls} calls for a burst of {notifications} notifications"
    await equal_to_the_calendar(rig)
    stored_weekly = [r for r in await Reservations(rig.connector).all() if r.uid == "WEEKLY"]
    assert weekly.end + longer - weekly.start in {r.end - r.start for r in stored_weekly}
    assert rig.sync_state() not in (None, cursor_before)  # the cursor moved on, once applied
    assert not rig.server.rows(
        "SELECT id FROM sync_notification WHERE state IN ('pending', 'claimed', 'failed')"
    )


async def test_a_new_series_in_a_burst_is_keyed_on_its_master(rig: Rig) -> None:
    """Nothing is stored of a new series yet: its master is fetched once for its key."""
    sim, room, base = rig.sim, rig.room, nine_tomorrow(rig)
    sim.exchange.book(meeting("FIRST", base), [room])
    await onboarded(rig)
    calls_before = rig.calls()
    sim.exchange.book(
        meeting("DAILY", base + timedelta(hours=3), recurrence=Recurrence(interval=1, count=4)),
        [room],
    )
    await delivered(rig)
    await work_off(rig)

    assert rig.calls() - calls_before == 3  # the delta, the master, its instances
    await equal_to_the_calendar(rig)
    assert len([r for r in await Reservations(rig.connector).all() if r.uid == "DAILY"]) == 4


async def test_a_410_falls_back_to_a_full_resync_and_a_fresh_cursor(rig: Rig) -> None:
    sim, room, base = rig.sim, rig.room, nine_tomorrow(rig)
    sim.exchange.book(meeting("KEPT", base), [room])
    await onboarded(rig)
    old = rig.sync_state()
    sim.graph.expire_delta_tokens()
    sim.exchange.book(meeting("AFTER", base + timedelta(hours=2)), [room])
    sim.exchange.delete("KEPT")
    await delivered(rig)
    await work_off(rig)  # 410: the named events are read one by one, a resync is queued

    [row] = rig.server.rows(f"SELECT needs_resync FROM room WHERE mailbox = '{room}'")
    assert row["needs_resync"] and rig.sync_state() is None
    await equal_to_the_calendar(rig)
    deltas = sim.graph.calls["delta"]
    assert await rig.worker.resync_pending(limit=1) == 1  # the full round

    assert sim.graph.calls["delta"] == deltas + 1
    fresh = rig.sync_state()
    assert fresh is not None and old is not None and fresh["delta_link"] != old["delta_link"]
    await equal_to_the_calendar(rig)
    sim.exchange.book(meeting("LATER", base + timedelta(hours=4)), [room])
    await delivered(rig)
    calls = rig.calls()
    await work_off(rig)
    assert rig.calls() - calls == 1  # the fresh cursor answers the next burst
    await equal_to_the_calendar(rig)


async def test_a_cursor_made_for_an_older_window_is_replaced_when_the_window_rolls(
    rig: Rig,
) -> None:
    """A delta token keeps the window of its first round (7 days beyond the sync window's
    end). Once the sync window reaches past it, the cursor is not used: the room's events are
    read one by one, a full round makes a cursor for the new window, and the series
    occurrences that entered the window are stored."""
    sim, room, base = rig.sim, rig.room, nine_tomorrow(rig)
    weekly = meeting(
        "WEEKLY", base, recurrence=Recurrence(interval=1, weekdays=(base.weekday(),), count=30)
    )
    sim.exchange.book(weekly, [room])
    await onboarded(rig)
    first = rig.sync_state()
    assert first is not None
    for _ in range(2):  # 8 days on, the subscription renewed on the way
        sim.clock.advance(timedelta(days=4).total_seconds())
        await rig.manager.maintain()
    assert sim.graph.webhooks.active(room)
    deltas = sim.graph.calls["delta"]
    sim.exchange.book(meeting("ROLLED", sim.clock.now() + timedelta(days=2)), [room])
    await delivered(rig)
    await work_off(rig)

    assert sim.graph.calls["delta"] == deltas  # the old cursor was not asked
    assert "ROLLED" in {r.uid for r in await Reservations(rig.connector).all()}
    assert await rig.worker.resync_pending(limit=1) == 1
    fresh = rig.sync_state()
    assert fresh is not None and fresh["covers_until"] > first["covers_until"]
    await equal_to_the_calendar(rig)  # the occurrences 60 days out are there


async def test_a_quiet_room_costs_few_calls_a_day_and_is_read_whole_every_week(rig: Rig) -> None:
    """The periodic resync of a Graph room reads from the cursor (one delta call when nothing
    changed); a full calendarView round, the drift repair, comes once the cursor's window is
    outgrown, a week after the last one. The worker here runs on the simulator's clock, so a
    simulated day makes the room due."""
    sim, room, base = rig.sim, rig.room, nine_tomorrow(rig)
    weekly = meeting(
        "WEEKLY", base, recurrence=Recurrence(interval=1, weekdays=(base.weekday(),), count=30)
    )
    sim.exchange.book(weekly, [room])
    for n in range(8):
        sim.exchange.book(meeting(f"S{n}", base + timedelta(days=n, hours=3)), [room])
    client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
    calendar = GraphCalendar(
        client,
        past=PAST,
        future=FUTURE,
        clock=sim.clock.now,
        series_uids=Reservations(rig.connector).series_uids,
    )
    daily = Worker(
        NotificationQueue(rig.connector),
        Reservations(rig.connector),
        Subscriptions(rig.connector),
        {"graph": GraphAdapter(calendar, Subscriptions(rig.connector))},
        resync_every=timedelta(hours=24),
        clock=sim.clock.now,
    )
    await rig.manager.subscribe_rooms([room])
    calls, days = rig.calls(), 14
    try:
        assert await daily.resync_pending(limit=1) == 1  # the first, full, round
        calls = rig.calls()
        for _ in range(days):
            sim.clock.advance(timedelta(days=1, minutes=1).total_seconds())
            await rig.manager.maintain()  # renewals: not the worker's calls
            assert await daily.resync_pending(limit=1) == 1
    finally:
        await client.aclose()

    per_day = (rig.calls() - calls) / days
    full_rounds = daily.stats.resyncs - daily.stats.incremental_resyncs - 1  # the first aside
    assert per_day <= 5, f"{per_day:.2f} calls per room per day"
    assert full_rounds >= 1 and daily.stats.incremental_resyncs >= days - 2
    await equal_to_the_calendar(rig)  # occurrences that entered the window are there
