"""The real CLI with one room over Graph and one over EWS push: `subscriptions sync|list`,
`resync` and `pushsync worker`, against the simulator (in a thread) and a real `pushsync serve`.

The simulator's clock runs at real speed from now, so the CLI's own sync window fits it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pushsync.simulator import SimulatorThread
from pushsync.simulator.graph.api import GRAPH_TOKEN
from tests.acceptance.conftest import CALLBACK_TOKEN, ServerProcess, pushsync_command, run_pushsync
from tests.acceptance.simulated_exchange import meeting, running, wait_for

STATE = "cli-graph-client-state"
GRAPH_ROOM, EWS_ROOM = "room-001@contoso.example", "room-002@contoso.example"


@pytest.fixture
def rig(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory(pushsync_graph_client_state=STATE)
    with running(epoch=datetime.now(UTC), scale=1) as thread:
        sim = thread.sim
        assert {r.email for r in sim.config.rooms} >= {GRAPH_ROOM, EWS_ROOM}
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_ROOMS": EWS_ROOM,  # protocol defaults to ews
            "PUSHSYNC_GRAPH_ROOMS": GRAPH_ROOM,
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_EWS_URL": sim.ews_url,
            "PUSHSYNC_EWS_AUTH": "basic",
            "PUSHSYNC_EWS_USERNAME": sim.config.username,
            "PUSHSYNC_EWS_PASSWORD": sim.config.password,
            "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
            "COLUMNS": "200",  # rich tables in full width
        }
        yield thread, server, env


def cli(env: dict[str, str], *args: str) -> str:
    return run_pushsync(*args, env=env)


def booked(server: ServerProcess) -> set[tuple[str, str]]:
    return {(r["mailbox"], r["uid"]) for r in server.rows("SELECT * FROM reservation")}


def test_subscriptions_sync_uses_graph_for_graph_rooms_and_ews_for_the_others(rig) -> None:
    thread, server, env = rig

    output = cli(env, "subscriptions", "sync")

    assert "subscribed 2, failed 0" in output
    [made] = thread.call(thread.sim.graph.webhooks.active, GRAPH_ROOM)
    assert made.notification_url == made.lifecycle_url == server.url + "/graph/notifications"
    assert made.client_state == STATE
    rows = server.rows("SELECT mailbox, protocol, subscription_id FROM subscription")
    assert {(r["mailbox"], r["protocol"]) for r in rows} == {
        (GRAPH_ROOM, "graph"),
        (EWS_ROOM, "ews"),
    }
    rooms = server.rows("SELECT mailbox, protocol FROM room")
    assert {(r["mailbox"], r["protocol"]) for r in rooms} == {
        (GRAPH_ROOM, "graph"),
        (EWS_ROOM, "ews"),
    }
    assert not thread.call(thread.sim.graph.webhooks.active, EWS_ROOM)

    listing = cli(env, "subscriptions", "list")
    assert GRAPH_ROOM in listing and "graph" in listing and "ews" in listing

    assert "subscribed 0, failed 0" in cli(env, "subscriptions", "sync")  # live ones are kept


def test_resync_all_reads_each_room_over_its_own_protocol(rig) -> None:
    thread, server, env = rig
    start = thread.sim.clock.now() + timedelta(days=1)
    thread.call(thread.sim.exchange.book, meeting("OVER-GRAPH", start), [GRAPH_ROOM])
    thread.call(thread.sim.exchange.book, meeting("OVER-EWS", start), [EWS_ROOM])
    thread.call(thread.sim.exchange.settle)
    graph_calls = thread.sim.graph.calls["delta"]

    assert "resynced 2 room(s)" in cli(env, "resync", "--all")

    assert booked(server) == {(GRAPH_ROOM, "OVER-GRAPH"), (EWS_ROOM, "OVER-EWS")}
    assert thread.sim.graph.calls["delta"] > graph_calls  # the Graph room was read over Graph

    thread.call(thread.sim.exchange.cancel, "OVER-GRAPH")
    assert "resynced 1 room(s)" in cli(env, "resync", GRAPH_ROOM)
    [row] = server.rows(f"SELECT * FROM reservation WHERE mailbox = '{GRAPH_ROOM}'")
    assert row["is_cancelled"]


def test_pushsync_worker_follows_both_rooms_until_sigterm(rig) -> None:
    thread, server, env = rig
    worker = subprocess.Popen(
        pushsync_command("worker"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: len(server.rows("SELECT * FROM subscription WHERE state = 'active'")) == 2)
        start = thread.sim.clock.now() + timedelta(days=2)
        thread.call(thread.sim.exchange.book, meeting("PUSHED-G", start), [GRAPH_ROOM])
        thread.call(thread.sim.exchange.book, meeting("PUSHED-E", start), [EWS_ROOM])
        wait_for(lambda: booked(server) == {(GRAPH_ROOM, "PUSHED-G"), (EWS_ROOM, "PUSHED-E")})
        created = {
            (r["protocol"], r["mailbox"])
            for r in server.rows(
                "SELECT n.protocol, s.mailbox FROM sync_notification n"
                " JOIN subscription s USING (subscription_id)"
                " WHERE n.event_type IN ('created', 'Created')"
            )
        }
        assert created == {("graph", GRAPH_ROOM), ("ews", EWS_ROOM)}  # each over its own push
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=20)[0].decode()
    assert worker.returncode == 0, output
