"""One booking, one row, whichever protocol reads the room (docs/reservation-table.md).

The same simulated calendars are synced over EWS into one database and over Graph into
another: first a full read, then the changes from each room's cursor (SyncFolderItems over
EWS, calendarView delta over Graph, which fetch the changed items and expand their series),
then a full read again. The two `reservation` tables must be equal row for row, apart from the
protocol's own ids and versions (item_id, series_master_id, change_key, last_modified), and
equal to the simulator's calendars. Then a room read over EWS moves to Graph: its bookings keep
their keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pushsync.ews.calendar_source import EwsCalendar
from pushsync.graph.auth import static_token
from pushsync.graph.calendar_source import GraphCalendar
from pushsync.graph.client import GraphClient
from pushsync.model.reservation import Reservation
from pushsync.processes.sync import build_ews_client, protocol_adapter
from pushsync.settings import Settings
from pushsync.simulator import (
    Recurrence,
    Response,
    Room,
    Simulator,
    SimulatorConfig,
)
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.adapter import CalendarSource
from pushsync.worker.loop import Worker
from tests.acceptance.simulated_exchange import meeting
from tests.acceptance.sync_loop import RESPONSES

LA, BERLIN, TOKYO = (
    "room-la@contoso.example",
    "room-ber@contoso.example",
    "room-tyo@contoso.example",
)
ROOMS = (
    Room(LA, "Los Angeles", "America/Los_Angeles"),
    Room(BERLIN, "Berlin", "Europe/Berlin"),
    Room(TOKYO, "Tokyo", "Asia/Tokyo"),
)
PAST, FUTURE = timedelta(days=1), timedelta(days=60)


@dataclass
class Side:
    protocol: str
    connector: Connector
    worker: Worker

    async def rows(self) -> list[Reservation]:
        return await Reservations(self.connector).all()

    async def changes(self) -> list[Any]:
        return list(await Reservations(self.connector).changes())

    async def resync_all(self, *, full: bool = False) -> None:
        for room in (LA, BERLIN, TOKYO):
            assert await self.worker.resync(room, self.protocol, full=full) == 1


async def _side(
    tmp_path: Path, protocol: str, source: CalendarSource, now: datetime
) -> AsyncIterator[Side]:
    connector = connect(f"sqlite:///{tmp_path}/{protocol}.db")
    await connector.open()
    await upgrade(connector)
    await Subscriptions(connector).ensure_rooms([LA, BERLIN, TOKYO], protocol, now)
    worker = Worker(
        NotificationQueue(connector),
        Reservations(connector),
        Subscriptions(connector),
        {protocol: protocol_adapter(protocol, source, Subscriptions(connector))},
    )
    try:
        yield Side(protocol, connector, worker)
    finally:
        await connector.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(rooms=ROOMS, scale=60)) as sim:
        yield sim


@pytest.fixture
async def ews(sim: Simulator, tmp_path: Path) -> AsyncIterator[Side]:
    settings = Settings(
        ews_url=sim.ews_url,
        ews_auth="basic",
        ews_username=sim.config.username,
        ews_password=sim.config.password,
    )
    source = EwsCalendar(build_ews_client(settings), past=PAST, future=FUTURE, clock=sim.clock.now)
    async for side in _side(tmp_path, "ews", source, sim.clock.now()):
        yield side


@pytest.fixture
async def graph_client(sim: Simulator) -> AsyncIterator[GraphClient]:
    client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
    yield client
    await client.aclose()


@pytest.fixture
async def graph(sim: Simulator, graph_client: GraphClient, tmp_path: Path) -> AsyncIterator[Side]:
    source = GraphCalendar(graph_client, past=PAST, future=FUTURE, clock=sim.clock.now)
    async for side in _side(tmp_path, "graph", source, sim.clock.now()):
        yield side


def _comparable(rows: list[Reservation]) -> list[tuple[Any, ...]]:
    """Every column but the protocol's own ids and versions."""
    return sorted(
        (
            r.mailbox, r.uid, r.original_start or datetime.min.replace(tzinfo=UTC), r.item_type,
            r.start, r.end, r.is_all_day, r.subject, r.organizer, r.is_cancelled,
            r.response_state, r.time_zone, r.location, r.sensitivity,
        )
        for r in rows
    )  # fmt: skip


def _truth(sim: Simulator) -> set[tuple[Any, ...]]:
    now = sim.clock.now()
    return {
        (i.mailbox, i.uid, i.original_start, i.start, i.end, i.cancelled, RESPONSES[i.response])
        for i in sim.exchange.truth(now - PAST, now + FUTURE)
        if i.response is not Response.DECLINE and i.start >= now - PAST
    }


def _keys(rows: list[Reservation]) -> set[tuple[Any, ...]]:
    return {
        (r.mailbox, r.uid, r.original_start, r.start, r.end, r.is_cancelled, r.response_state)
        for r in rows
    }


def _all_day(uid: str, day: datetime, zone: str, days: int = 1) -> Any:
    start = datetime.combine(day.date(), time(0), ZoneInfo(zone)).astimezone(UTC)
    end = datetime.combine(day.date() + timedelta(days=days), time(0), ZoneInfo(zone))
    return meeting(uid, start, end=end.astimezone(UTC), all_day=True, time_zone=zone)


class Scenario:
    """Series with an edited, a deleted and a cancelled occurrence, a pattern change, singles
    moved, cancelled and deleted, a declined conflict, all-day events in three zones (one
    west of UTC, one crossing a daylight-saving change), a meeting in two rooms."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.base = sim.clock.now().replace(hour=9, minute=0, second=0, microsecond=0) + (
            timedelta(days=1)
        )
        base = self.base
        self.weekly = meeting(
            "WEEKLY", base, recurrence=Recurrence(weekdays=(base.weekday(),), count=6)
        )
        self.daily = meeting(
            "DAILY",
            base + timedelta(hours=4),
            time_zone="America/Los_Angeles",
            recurrence=Recurrence(interval=1, count=5),
        )
        self.moving = meeting("MOVING", base + timedelta(days=2), time_zone="Asia/Tokyo")
        self.all_day_la = _all_day("ALLDAY-LA", base + timedelta(days=8), "America/Los_Angeles")

    def book(self) -> None:
        exchange, base = self.sim.exchange, self.base
        exchange.book(self.weekly, [BERLIN])
        exchange.book(self.daily, [LA])
        exchange.book(self.moving, [TOKYO])
        exchange.book(meeting("CANCELLED", base + timedelta(hours=2)), [BERLIN])
        exchange.book(meeting("DELETED", base + timedelta(hours=6)), [TOKYO])
        exchange.book(meeting("SHARED", base + timedelta(days=4)), [LA, TOKYO])
        exchange.book(self.all_day_la, [LA])
        # Europe changes to summer time on 29 March: a 23-hour all-day event
        exchange.book(_all_day("ALLDAY-BER", datetime(2026, 3, 29, tzinfo=UTC), "Europe/Berlin"),
                      [BERLIN])  # fmt: skip
        exchange.book(_all_day("ALLDAY-TYO", base + timedelta(days=5), "Asia/Tokyo", 2), [TOKYO])
        exchange.settle()
        exchange.book(meeting("CONFLICT", base + timedelta(minutes=30)), [BERLIN])  # declined
        exchange.settle()

    def change(self) -> None:
        exchange = self.sim.exchange
        slots = exchange.calendar(BERLIN).by_uid("WEEKLY").original_starts()  # type: ignore[union-attr]
        second, fourth, fifth = slots[1], slots[3], slots[4]  # in UTC they cross 29 March
        exchange.edit_occurrence(
            "WEEKLY", second, second + timedelta(hours=1), second + timedelta(hours=2), "moved"
        )
        exchange.delete_occurrence("WEEKLY", fourth)
        exchange.cancel("WEEKLY", fifth)
        shift = timedelta(hours=1)
        exchange.update(replace(self.daily, start=self.daily.start + shift,
                                end=self.daily.end + shift))  # fmt: skip
        move = timedelta(hours=3)
        exchange.update(replace(self.moving, start=self.moving.start + move,
                                end=self.moving.end + move))  # fmt: skip
        exchange.cancel("CANCELLED")
        exchange.delete("DELETED")
        exchange.update(replace(self.all_day_la, end=self.all_day_la.end + timedelta(days=1)))
        exchange.settle()


async def test_ews_and_graph_give_the_same_reservation_table_row_for_row(
    sim: Simulator, ews: Side, graph: Side
) -> None:
    assert sim.graph is not None
    scenario = Scenario(sim)
    scenario.book()
    await ews.resync_all()
    masters_asked = sim.graph.calls["event"]
    await graph.resync_all()
    assert sim.graph.calls["event"] - masters_asked == 2  # WEEKLY's and DAILY's, once each
    assert _comparable(await ews.rows()) == _comparable(await graph.rows())
    assert _keys(await graph.rows()) == _truth(sim)
    before = {side.protocol: len(await side.changes()) for side in (ews, graph)}

    scenario.change()
    await ews.resync_all()  # from each room's cursor: the changed items, series expanded
    await graph.resync_all()

    assert ews.worker.stats.incremental_resyncs == graph.worker.stats.incremental_resyncs == 3
    ews_rows, graph_rows = await ews.rows(), await graph.rows()
    assert _comparable(ews_rows) == _comparable(graph_rows)
    assert _keys(graph_rows) == _truth(sim)
    zones = {r.uid: r.time_zone for r in graph_rows if r.is_all_day}
    assert zones == {
        "ALLDAY-LA": "America/Los_Angeles",
        "ALLDAY-BER": "Europe/Berlin",
        "ALLDAY-TYO": "Asia/Tokyo",
    }
    assert {r.uid for r in graph_rows} >= {"WEEKLY", "DAILY", "MOVING", "CANCELLED", "SHARED"}
    assert "CONFLICT" not in {r.uid for r in graph_rows}
    for side in (ews, graph):  # the moved single kept its key: updates only, no delete
        moved = [c for c in (await side.changes())[before[side.protocol] :] if c["uid"] == "MOVING"]
        assert [(c["original_start"], c["change"]) for c in moved] == [(None, "upsert")]

    await ews.resync_all(full=True)
    await graph.resync_all(full=True)
    assert _comparable(await ews.rows()) == _comparable(graph_rows) == _comparable(ews_rows)


async def test_a_room_moved_from_ews_to_graph_keeps_the_keys_of_its_bookings(
    sim: Simulator, ews: Side, graph_client: GraphClient
) -> None:
    """One database: the room is read over EWS, then its protocol becomes Graph and a Graph
    worker reads it in full. Unchanged bookings are rewritten in place (new ids), never
    deleted and inserted again; only what changed meanwhile shows as changed."""
    scenario = Scenario(sim)
    scenario.book()
    await ews.resync_all()
    keys = {r.key for r in await ews.rows()}
    logged = len(await ews.changes())

    source = GraphCalendar(graph_client, past=PAST, future=FUTURE, clock=sim.clock.now)
    worker = Worker(
        NotificationQueue(ews.connector),
        Reservations(ews.connector),
        Subscriptions(ews.connector),
        {"graph": protocol_adapter("graph", source, Subscriptions(ews.connector))},
    )
    for room in (LA, BERLIN, TOKYO):
        assert await worker.resync(room, "graph", full=True) == 1

    after = await ews.rows()
    assert {r.key for r in after} == keys
    moved_in = await ews.changes()
    assert [c for c in moved_in[logged:] if c["change"] == "delete"] == []
    assert {r.item_id for r in after}.isdisjoint({""})
    assert _keys(after) == _truth(sim)
