"""The real `pushsync worker` when Graph refuses a renewal: 404 (Graph dropped the subscription
without a word, as it may for app-only subscriptions) and 400 (Graph will not extend it).

Either way the subscription is recreated and the room resynced, so that a booking made while
the room had no working subscription, never notified, still reaches the reservation table.
A subscription Graph no longer has is not DELETEd first (a write spent on nothing); one that
Graph still holds is, so that no second subscription on the room stays behind.

The simulator's clock runs at real speed from now; subscriptions are granted 30 seconds of
life and renewed at every round (renew_before is longer than that).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pushsync.simulator import SimulatorThread, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from tests.acceptance.conftest import ServerProcess, pushsync_command
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.worker_loop import stop_worker

STATE = "renewal-refused-client-state"
ROOMS = generated_rooms(3)
DROPPED, REFUSED, CALM = (room.email for room in ROOMS)


@pytest.fixture
def rig(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, subprocess.Popen[bytes]]]:
    server = server_factory(pushsync_graph_client_state=STATE)
    with running(epoch=datetime.now(UTC), scale=1, rooms=ROOMS) as thread:
        sim = thread.sim

        def shorten() -> None:
            sim.graph.max_lifetime = timedelta(seconds=30)

        thread.call(shorten)
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_GRAPH_ROOMS": ",".join(room.email for room in ROOMS),
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_GRAPH_RENEW_BEFORE_MINUTES": "1",  # more than the lifetime: every round
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
        }
        log = server.database.with_name("worker.log")  # a file: a full pipe would stall it
        with log.open("wb") as out:
            worker = subprocess.Popen(
                pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            yield thread, server, worker
        finally:
            output = stop_worker(worker, log, server)
            assert worker.returncode == 0, output
            assert "Traceback" not in output


def active_id(thread: SimulatorThread, mailbox: str) -> str | None:
    active = thread.call(thread.sim.graph.webhooks.active, mailbox)
    return active[0].id if len(active) == 1 else None


def states(server: ServerProcess, mailbox: str) -> dict[str, str]:
    rows = server.rows(f"SELECT * FROM subscription WHERE mailbox = '{mailbox}'")
    return {r["subscription_id"]: r["state"] for r in rows}


def booked(server: ServerProcess) -> set[tuple[str, str]]:
    return {(r["mailbox"], r["uid"]) for r in server.rows("SELECT * FROM reservation")}


def generations(server: ServerProcess) -> dict[str, int]:
    rows = server.rows("SELECT mailbox, resync_generation FROM room")
    return {r["mailbox"]: r["resync_generation"] for r in rows}


def in_sync(server: ServerProcess) -> bool:
    rows = server.rows("SELECT needs_resync, last_synced_at FROM room")
    return len(rows) == len(ROOMS) and all(
        not r["needs_resync"] and r["last_synced_at"] for r in rows
    )


def test_renewals_answered_404_or_400_recreate_the_subscription_and_resync_the_room(rig) -> None:
    thread, server, _worker = rig
    sim = thread.sim
    wait_for(lambda: all(active_id(thread, room.email) for room in ROOMS), timeout=60)
    wait_for(lambda: in_sync(server), timeout=60)  # each room's first resync is done
    dropped, refused, calm = (active_id(thread, room) for room in (DROPPED, REFUSED, CALM))
    asked = generations(server)
    deletes_before = thread.call(lambda: sim.graph.calls["unsubscribe"])
    start = sim.clock.now() + timedelta(days=1)

    def drop_then_book() -> None:
        # one step on the simulator's loop: no subscription exists when the booking is made,
        # so it is never notified; only a resync finds it
        sim.graph.drop(dropped)
        sim.exchange.book(meeting("WHILE-GONE", start), [DROPPED])

    thread.call(drop_then_book)
    thread.call(sim.graph.refuse_renewal, refused)

    wait_for(lambda: active_id(thread, DROPPED) not in (None, dropped), timeout=60)
    wait_for(lambda: active_id(thread, REFUSED) not in (None, refused), timeout=60)
    wait_for(lambda: (DROPPED, "WHILE-GONE") in booked(server), timeout=60)
    wait_for(lambda: in_sync(server), timeout=60)

    new_dropped, new_refused = active_id(thread, DROPPED), active_id(thread, REFUSED)
    assert states(server, DROPPED) == {dropped: "retired", new_dropped: "active"}
    assert states(server, REFUSED) == {refused: "retired", new_refused: "active"}
    assert active_id(thread, CALM) == calm  # renewed all along, never recreated
    assert states(server, CALM) == {calm: "active"}
    assert generations(server) == {  # a resync was asked for each recreated room only
        DROPPED: asked[DROPPED] + 1,
        REFUSED: asked[REFUSED] + 1,
        CALM: asked[CALM],
    }
    # the refused one was still at Graph and was deleted; the dropped one was not asked for
    assert thread.call(lambda: sim.graph.calls["unsubscribe"]) - deletes_before == 1
    assert refused not in thread.call(lambda: dict(sim.graph.webhooks.subscriptions))

    # the recreated subscriptions carry notifications again
    thread.call(sim.exchange.book, meeting("PUSHED-AFTER", start + timedelta(hours=2)), [DROPPED])
    wait_for(lambda: (DROPPED, "PUSHED-AFTER") in booked(server), timeout=60)
