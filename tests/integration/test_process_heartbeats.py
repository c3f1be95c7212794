"""Which process lives: the heartbeat table over real rows on both engines (alive, stale,
stopped, superseded by a restart, forgotten), the timer that beats it, and the room verdicts
read against it (no worker: not syncing, whatever the rows say)."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import timedelta

from pushsync.admin.process_status import fleet_of_rooms
from pushsync.admin.room_status import overview, room_statuses
from pushsync.model.clock import utcnow
from pushsync.store import Connector
from pushsync.store.processes import Heartbeat, ProcessHeartbeats
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0

DEAD_AFTER = timedelta(seconds=60)
ROOM = "room-1@contoso.example"
GRAPH_ROOM = "room-2@contoso.example"


async def test_a_beating_process_is_alive_and_a_stale_one_down_since_its_last_beat(
    connector: Connector,
) -> None:
    heartbeats = ProcessHeartbeats(connector)
    worker = await heartbeats.register("worker", "ews", T0)
    assert await heartbeats.beat(worker, T0 + timedelta(seconds=30))

    (alive,) = await heartbeats.statuses(T0 + timedelta(seconds=80), DEAD_AFTER)
    assert (alive.alive, alive.down_since) == (True, None)
    assert (alive.kind, alive.protocol, alive.pid) == ("worker", "ews", os.getpid())
    assert alive.host == socket.gethostname() and alive.started_at == T0

    (stale,) = await heartbeats.statuses(T0 + timedelta(seconds=91), DEAD_AFTER)
    assert stale.alive is False and stale.stopped_at is None
    assert stale.down_since == T0 + timedelta(seconds=30)  # killed: down since its last beat


async def test_a_clean_exit_is_stopped_at_once_and_beats_no_more(connector: Connector) -> None:
    heartbeats = ProcessHeartbeats(connector)
    receiver = await heartbeats.register("receiver", None, T0)
    await heartbeats.stopped(receiver, T0 + timedelta(seconds=5))

    (stopped,) = await heartbeats.statuses(T0 + timedelta(seconds=6), DEAD_AFTER)
    assert stopped.alive is False and stopped.protocol is None
    assert stopped.down_since == stopped.stopped_at == T0 + timedelta(seconds=5)
    assert not await heartbeats.beat(receiver, T0 + timedelta(seconds=7))


async def test_a_restart_on_the_same_host_supersedes_the_dead_row_but_not_elsewhere(
    connector: Connector,
) -> None:
    heartbeats = ProcessHeartbeats(connector)
    await heartbeats.register("worker", "ews", T0, host="rooms-1")
    await heartbeats.register("worker", "ews", T0, host="rooms-2")
    later = T0 + timedelta(minutes=10)
    await heartbeats.register("worker", "ews", later, host="rooms-1")  # its restart

    statuses = await heartbeats.statuses(later, DEAD_AFTER)
    assert sorted((s.host, s.alive) for s in statuses) == [("rooms-1", True), ("rooms-2", False)]


async def test_two_workers_at_once_one_killed_the_dead_one_still_shows(
    connector: Connector,
) -> None:
    heartbeats = ProcessHeartbeats(connector)
    first = await heartbeats.register("worker", "ews", T0, host="rooms-1")
    second = await heartbeats.register("worker", "ews", T0 + timedelta(seconds=1), host="rooms-1")
    await heartbeats.beat(first, T0 + timedelta(seconds=2))  # first dies after this
    await heartbeats.beat(second, T0 + timedelta(minutes=5))

    statuses = await heartbeats.statuses(T0 + timedelta(minutes=5), DEAD_AFTER)
    assert sorted(s.alive for s in statuses) == [False, True]


async def test_rows_down_for_long_are_forgotten_and_a_hung_process_registers_again(
    connector: Connector,
) -> None:
    heartbeats = ProcessHeartbeats(connector)
    old = await heartbeats.register("manager", "graph", T0)
    await heartbeats.register("manager", "ews", T0 + timedelta(days=8))
    assert await heartbeats.forget(T0 + timedelta(days=7)) == 1
    (kept,) = await heartbeats.statuses(T0 + timedelta(days=8), DEAD_AFTER)
    assert kept.protocol == "ews"
    assert not await heartbeats.beat(old, T0 + timedelta(days=8))  # its row is gone

    clock = [T0]
    beat = Heartbeat(
        heartbeats,
        "worker",
        ["graph"],
        every=timedelta(seconds=10),
        forget_after=timedelta(days=7),
        clock=lambda: clock[0],
    )
    await beat.beat()  # first beat: registers
    await connector_delete_all(connector)
    clock[0] = T0 + timedelta(seconds=20)
    await beat.beat()  # its row was deleted meanwhile: a new one
    (again,) = await heartbeats.statuses(clock[0], DEAD_AFTER)
    assert again.alive and again.started_at == clock[0]


async def connector_delete_all(connector: Connector) -> None:
    await ProcessHeartbeats(connector).forget(T0 + timedelta(days=365))


async def test_the_timer_beats_one_row_per_protocol_and_marks_them_stopped_at_the_end(
    connector: Connector,
) -> None:
    heartbeats = ProcessHeartbeats(connector)
    beat = Heartbeat(
        heartbeats,
        "worker",
        ["ews", "graph"],
        every=timedelta(milliseconds=20),
        forget_after=timedelta(days=7),
    )
    async with beat.beating():
        for _ in range(500):  # the first beat, or up to ten seconds on a loaded box
            rows = await heartbeats.statuses(utcnow(), timedelta(hours=1))
            if len(rows) == 2 and all(r.last_beat > r.started_at for r in rows):
                break
            await asyncio.sleep(0.02)
        assert sorted(r.protocol for r in rows) == ["ews", "graph"]
        assert all(r.last_beat > r.started_at for r in rows)  # beaten, not only registered
    after = await heartbeats.statuses(utcnow(), timedelta(hours=1))
    assert len(after) == 2 and all(r.stopped_at is not None and not r.alive for r in after)


async def test_rooms_are_not_in_sync_while_no_worker_lives_for_their_protocol(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", T0)
    await subscriptions.ensure_rooms([GRAPH_ROOM], "graph", T0)
    for mailbox, protocol in ((ROOM, "ews"), (GRAPH_ROOM, "graph")):
        await subscriptions.record(
            mailbox,
            f"SUB-{protocol}",
            protocol=protocol,
            watermark="W0",
            status_frequency=15,
            now=T0,
        )

    never = await overview(connector, T0, DEAD_AFTER)
    assert {s.kind for s in never.rooms} == {"no worker"} and never.in_sync == 0
    problems = {s.mailbox: s.problem for s in never.rooms}
    assert problems[ROOM] == "not syncing: no ews worker has run (start `pushsync worker`)"
    assert ("worker", "ews") in never.fleet.missing()
    assert "no worker (graph) has run: start `pushsync worker`" in never.fleet.problems()
    cheap = await fleet_of_rooms(connector, T0, DEAD_AFTER)  # what /readyz reads
    assert cheap.problems() == never.fleet.problems()

    heartbeats = ProcessHeartbeats(connector)
    worker = await heartbeats.register("worker", "ews", T0)
    live = {s.mailbox: s for s in (await overview(connector, T0, DEAD_AFTER)).rooms}
    assert live[ROOM].kind != "no worker"  # judged on its rows again
    assert live[GRAPH_ROOM].kind == "no worker"  # an EWS worker does not sync Graph rooms

    await heartbeats.beat(worker, T0 + timedelta(minutes=3))
    later = T0 + timedelta(minutes=10)
    dead = await overview(connector, later, DEAD_AFTER)
    ews_room = next(s for s in dead.rooms if s.mailbox == ROOM)
    assert ews_room.kind == "no worker"
    assert ews_room.problem == (
        "not syncing: no live ews worker since 2026-11-24 12:03 UTC (start `pushsync worker`)"
    )
    (line,) = [p for p in dead.fleet.problems() if p.startswith("worker (ews)")]
    assert "down since 2026-11-24 12:03:00 UTC" in line and "no heartbeat" in line

    # judged on the rows alone, the same rooms have no problem of that kind
    rows_only = await room_statuses(connector, later)
    assert "no worker" not in {s.kind for s in rows_only}


async def test_configured_protocols_need_a_worker_before_any_room_is_recorded(
    connector: Connector,
) -> None:
    found = await fleet_of_rooms(connector, T0, DEAD_AFTER, configured=["graph"])
    assert found.missing() == [("receiver", None), ("worker", "graph"), ("manager", "graph")]
    assert await fleet_of_rooms(connector, T0, DEAD_AFTER) == type(found)([], frozenset())
