"""The real `pushsync worker` of a Graph-only installation (no `ews_url`) given one room list.

Its rooms come from Graph's Places (the simulator's), read again every ~1 s: every room of the
list is subscribed and synced, with what Places says of it in `/rooms`; a room added to the
list while the worker runs is picked up; answers that say nothing (Places empty, the app
without Place.Read.All) change nothing however long they last; a room taken out of the list is
let go of (its subscription deleted at Graph, its reservations deleted) only once it has been
missing for the grace period.

The second test plays the issue's whole scenario on such an installation: a hybrid room
converges by polling, a capped room is reported and not shown as in sync, and Graph's tenant
write limit (cut to 3 per 2 s) is never exceeded while rooms come and go.

The simulator's clock runs at real speed from now, so pushsync's clock and Graph's agree.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pushsync.simulator import SimulatorThread, generated_rooms
from pushsync.simulator.booking import Room
from pushsync.simulator.config import RoomList
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.simulator.graph.subscription_limit import SubscriptionWriteLimit
from tests.acceptance.conftest import ServerProcess, pushsync_command
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.worker_loop import stop_worker

STATE = "discovery-client-state"
ROOMS = generated_rooms(4)  # the fourth is in no list: never synced
HQ = RoomList("hq-rooms@contoso.example", "HQ Rooms", tuple(r.email for r in ROOMS[:3]))
LISTED = [room.email for room in ROOMS[:3]]
OUTSIDE = ROOMS[3].email
NEW = Room("annex-1@contoso.example", "Annex 1", "Europe/Berlin")
LEAVING = LISTED[1]
GRACE_HOURS = 0.002  # 7.2 s
GRACE_S = GRACE_HOURS * 3600


@pytest.fixture
def rig(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory(pushsync_graph_client_state=STATE)
    with running(epoch=datetime.now(UTC), scale=1, rooms=ROOMS, room_lists=(HQ,)) as thread:
        sim = thread.sim
        env = {key: value for key, value in os.environ.items() if not key.startswith("PUSHSYNC_")}
        env |= {
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_PROTOCOL": "graph",
            "PUSHSYNC_ROOM_LISTS": HQ.email,
            "PUSHSYNC_ROOM_DISCOVERY_MINUTES": "0.02",
            "PUSHSYNC_ROOM_REMOVAL_GRACE_HOURS": str(GRACE_HOURS),
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
        }
        yield thread, server, env


def statuses(server: ServerProcess) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"http://127.0.0.1:{server.admin_port}/rooms", timeout=10)
    assert answer.status_code == 200, answer.text
    return {s["mailbox"]: s for s in answer.json()["statuses"]}


def discovery_status(server: ServerProcess) -> list[dict[str, Any]]:
    answer = httpx.get(f"http://127.0.0.1:{server.admin_port}/rooms", timeout=10)
    return list(answer.json()["room_discovery"])


def in_sync(server: ServerProcess) -> set[str]:
    return {m for m, s in statuses(server).items() if s["problem"] is None}


def active_ids(thread: SimulatorThread, mailbox: str) -> list[str]:
    return [s.id for s in thread.call(thread.sim.graph.webhooks.active, mailbox)]


def booked(server: ServerProcess) -> set[tuple[str, str]]:
    return {(r["mailbox"], r["uid"]) for r in server.rows("SELECT * FROM reservation")}


def places_calls(thread: SimulatorThread) -> int:
    return int(thread.call(lambda: thread.sim.graph.calls["places"]))


def book(thread: SimulatorThread, uid: str, room: str, days: int = 1) -> tuple[str, str]:
    """A one-hour meeting `days` ahead (rooms decline a meeting that overlaps another)."""
    start = thread.sim.clock.now() + timedelta(days=days)
    thread.call(thread.sim.exchange.book, meeting(uid, start), [room])
    return room, uid


def quiet_for(thread: SimulatorThread, seconds: float, rounds: int) -> None:
    """Wait until `seconds` have passed and pushsync has asked Places `rounds` more times."""
    started, calls = time.monotonic(), places_calls(thread)
    wait_for(
        lambda: time.monotonic() - started > seconds and places_calls(thread) >= calls + rounds,
        timeout=seconds + 60,
    )


def test_a_graph_only_installation_follows_its_room_list(rig) -> None:
    thread, server, env = rig
    places = thread.sim.graph.places
    log = server.database.with_name("worker.log")
    with log.open("wb") as out:
        worker = subprocess.Popen(
            pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        # Every room of the list, and no other, is subscribed and synced.
        wait_for(lambda: in_sync(server) == set(LISTED), timeout=90)
        assert all(active_ids(thread, room) for room in LISTED)
        assert active_ids(thread, OUTSIDE) == []
        shown = statuses(server)
        for room in LISTED:
            place = places.rooms[room]
            assert (shown[room]["display_name"], shown[room]["capacity"]) == (
                place.display_name,
                place.capacity,
            )
            assert shown[room]["building"] == place.building
            assert shown[room]["floor_number"] == place.floor_number
            assert shown[room]["protocol"] == "graph"
        wanted = {book(thread, f"FIRST-{n}", room) for n, room in enumerate(LISTED)}
        wait_for(lambda: booked(server) >= wanted, timeout=60)

        # Places empty (never set up), then refusing the app: nothing is let go of, however
        # long it lasts; both say why in the log.
        thread.call(setattr, places, "enabled", False)
        quiet_for(thread, 1.5 * GRACE_S, rounds=3)
        [answer] = discovery_status(server)
        assert answer["source"] == HQ.email and answer["listed"] == 0
        assert "Set-PlacesSettings -EnableBuildings" in answer["problem"]
        page = httpx.get(f"http://127.0.0.1:{server.admin_port}/", timeout=10).text
        assert "Room discovery changed nothing" in page and "Set-PlacesSettings" in page
        thread.call(setattr, places, "enabled", True)
        thread.call(setattr, places, "permission_granted", False)
        quiet_for(thread, 1.5 * GRACE_S, rounds=3)
        assert "Place.Read.All" in discovery_status(server)[0]["problem"]
        thread.call(setattr, places, "permission_granted", True)
        wait_for(lambda: discovery_status(server)[0]["problem"] is None, timeout=60)
        assert discovery_status(server)[0]["listed"] == len(LISTED)
        assert all(active_ids(thread, room) for room in LISTED)
        assert in_sync(server) == set(LISTED)
        rows = server.rows("SELECT mailbox, missing_since, removed_at FROM room")
        assert all(r["missing_since"] is None and r["removed_at"] is None for r in rows)
        output = log.read_text()
        assert "Set-PlacesSettings -EnableBuildings" in output
        assert "Place.Read.All" in output

        # A room added to the list while running is subscribed and synced.
        thread.call(places.add_room, NEW, HQ.email, capacity=30, building="Annex")
        wait_for(lambda: active_ids(thread, NEW.email), timeout=60)
        new_booking = book(thread, "ANNEX-1", NEW.email)
        wait_for(lambda: new_booking in booked(server), timeout=60)
        wait_for(lambda: NEW.email in in_sync(server), timeout=60)
        assert statuses(server)[NEW.email]["capacity"] == 30
        assert statuses(server)[NEW.email]["building"] == "Annex"

        # A room taken out of the list is kept through the grace period, then let go of.
        [leaving_id] = active_ids(thread, LEAVING)
        thread.call(places.remove_room, LEAVING, HQ.email)
        wait_for(lambda: statuses(server)[LEAVING]["missing_since"] is not None, timeout=60)
        assert active_ids(thread, LEAVING) == [leaving_id]  # noted, not dropped
        wait_for(lambda: LEAVING not in statuses(server), timeout=60 + GRACE_S)
        wait_for(lambda: active_ids(thread, LEAVING) == [], timeout=60)
        [gone] = server.rows(f"SELECT * FROM room WHERE mailbox = '{LEAVING}'")
        missing = datetime.fromisoformat(gone["missing_since"])
        assert datetime.fromisoformat(gone["removed_at"]) - missing >= timedelta(seconds=GRACE_S)
        assert not {b for b in booked(server) if b[0] == LEAVING}
        deletes = server.rows(
            f"SELECT uid FROM reservation_change WHERE mailbox = '{LEAVING}' AND change = 'delete'"
        )
        assert [r["uid"] for r in deletes] == ["FIRST-1"]
        [subscription] = server.rows(
            f"SELECT * FROM subscription WHERE subscription_id = '{leaving_id}'"
        )
        assert subscription["state"] == "retired"

        # The rooms still listed go on: their reservations equal the calendars.
        still = {*LISTED, NEW.email} - {LEAVING}
        assert in_sync(server) == still
        more = {book(thread, f"LATER-{n}", room, days=2) for n, room in enumerate(sorted(still))}
        wait_for(lambda: booked(server) >= more, timeout=60)
        truth = {(i.mailbox, i.uid) for i in thread.call(thread.sim.exchange.truth)}
        assert booked(server) == {b for b in truth if b[0] in still}
    finally:
        output = stop_worker(worker, log, server)
    assert worker.returncode == 0, output
    assert "Traceback" not in output
    assert "PUSHSYNC_EWS_URL" not in output


# The whole scenario: the list also holds a room whose mailbox is still on premises
# (Graph refuses its subscription, reads work) and one whose mailbox holds other apps' 1,000
# subscriptions; Graph's tenant write limit is cut to 3 per 2 s, pushsync told the same.
FLEET = generated_rooms(5)
ORDINARY = [room.email for room in FLEET[:3]]
HYBRID, CAPPED = FLEET[3].email, FLEET[4].email
CAMPUS = RoomList("campus@contoso.example", "Campus", tuple(r.email for r in FLEET))
WRITES, WINDOW_S = 3, 2.0


@pytest.fixture
def fleet(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory(pushsync_graph_client_state=STATE)
    config: dict[str, Any] = {
        "epoch": datetime.now(UTC),
        "scale": 1,
        "rooms": FLEET,
        "room_lists": (CAMPUS,),
        "on_premises_rooms": frozenset({HYBRID}),
    }
    with running(**config) as thread:
        sim = thread.sim

        def limits() -> None:
            sim.graph.write_limit = SubscriptionWriteLimit(limit=WRITES, window=WINDOW_S)
            sim.graph.hold_subscriptions(CAPPED)  # other apps fill the mailbox
            sim.graph.max_lifetime = timedelta(seconds=10)  # renewals, i.e. writes, all along

        thread.call(limits)
        env = {key: value for key, value in os.environ.items() if not key.startswith("PUSHSYNC_")}
        env |= {
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_PROTOCOL": "graph",
            "PUSHSYNC_ROOM_LISTS": CAMPUS.email,
            "PUSHSYNC_ROOM_DISCOVERY_MINUTES": "0.02",
            "PUSHSYNC_ROOM_REMOVAL_GRACE_HOURS": str(GRACE_HOURS),
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_GRAPH_SUBSCRIPTION_WRITE_LIMIT": str(WRITES),
            "PUSHSYNC_GRAPH_SUBSCRIPTION_WRITE_WINDOW_SECONDS": str(WINDOW_S),
            "PUSHSYNC_GRAPH_RENEW_BEFORE_MINUTES": "1",  # more than the lifetime: every round
            "PUSHSYNC_GRAPH_POLLING_MINUTES": "0.05",  # every 3 seconds
            "PUSHSYNC_MAX_RETRY_AFTER_SECONDS": "2",
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
        }
        yield thread, server, env


def test_a_graph_only_fleet_with_a_hybrid_and_a_capped_room_keeps_graph_s_write_limit(
    fleet,
) -> None:
    thread, server, env = fleet
    places = thread.sim.graph.places
    log = server.database.with_name("worker.log")
    with log.open("wb") as out:
        worker = subprocess.Popen(
            pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        # Every room of the list is found; the ordinary ones are subscribed and in sync.
        wait_for(lambda: set(statuses(server)) == {r.email for r in FLEET}, timeout=90)
        wait_for(lambda: in_sync(server) == set(ORDINARY), timeout=90)
        assert all(active_ids(thread, room) for room in ORDINARY)

        # The hybrid room converges by polling, shown as such, not as in sync.
        wanted = {book(thread, f"FLEET-{n}", room) for n, room in enumerate([*ORDINARY, HYBRID])}
        wait_for(lambda: booked(server) >= wanted, timeout=90)
        hybrid = statuses(server)[HYBRID]
        assert hybrid["kind"] == "polling" and hybrid["polling_reason"] == "on-premises mailbox"
        assert active_ids(thread, HYBRID) == []

        # The capped room is reported with its problem and not counted as in sync.
        wait_for(lambda: "1,000 subscriptions" in (statuses(server)[CAPPED]["problem"] or ""))
        capped = statuses(server)[CAPPED]
        assert capped["subscription_state"] is None and CAPPED not in in_sync(server)
        assert active_ids(thread, CAPPED) == []

        # Discovery goes on meanwhile: a room added is subscribed, one removed let go of.
        thread.call(places.add_room, NEW, CAMPUS.email)
        wait_for(lambda: NEW.email in in_sync(server), timeout=90)
        thread.call(places.remove_room, ORDINARY[0], CAMPUS.email)
        wait_for(lambda: ORDINARY[0] not in statuses(server), timeout=90 + GRACE_S)
        wait_for(lambda: active_ids(thread, ORDINARY[0]) == [], timeout=60)
        assert in_sync(server) == {*ORDINARY[1:], NEW.email}

        # Subscriptions were created, renewed and deleted all along, never beyond the limit.
        limit = thread.sim.graph.write_limit
        assert thread.call(lambda: len(limit.writes)) > 4 * WRITES
        assert thread.call(lambda: limit.violations) == 0
        assert thread.call(lambda: limit.most_in_any_window()) <= WRITES
    finally:
        output = stop_worker(worker, log, server)
    assert worker.returncode == 0, output
    assert "Traceback" not in output


def test_a_wrong_room_list_or_a_missing_permission_stops_the_start_and_writes_nothing(
    tmp_path: Path,
) -> None:
    database = tmp_path / "start.db"
    with running(rooms=ROOMS, room_lists=(HQ,)) as thread:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSYNC_")}
        env |= {
            "PUSHSYNC_DATABASE_URL": f"sqlite:///{database}",
            "PUSHSYNC_PUBLIC_URL": "http://127.0.0.1:9",
            "PUSHSYNC_PROTOCOL": "graph",
            "PUSHSYNC_GRAPH_URL": thread.sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
        }

        def sync(room_list: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                pushsync_command("subscriptions", "sync"),
                env=env | {"PUSHSYNC_ROOM_LISTS": room_list},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        unknown = sync("nobody@contoso.example")
        thread.call(setattr, thread.sim.graph.places, "permission_granted", False)
        refused = sync(HQ.email)

    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert "nobody@contoso.example is not a room list Places knows" in unknown.stderr
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "the app needs Place.Read.All" in refused.stderr
    for done in (unknown, refused):
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    connection = sqlite3.connect(database)
    try:
        written = [
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("room", "room_discovery", "subscription")
        ]
    finally:
        connection.close()
    assert written == [0, 0, 0]
    assert thread.sim.graph.calls["subscribe"] == 0
