"""The real `pushsync worker` with one capped room among four Graph rooms.

The capped room's mailbox already holds 1,000 subscriptions of other apps, so Graph answers 429
SubscriptionCountReached with a Retry-After in the year 9999. The other rooms must be
subscribed, renewed before their (shortened) lifetimes run out and synced; the capped room is
reported with its problem on the admin listener and is not counted as in sync, is asked again
every `max_retry_after_seconds`, and catches up once an admin has made room.

The simulator's clock runs at real speed from now (as in test_cli_graph); it grants
subscriptions 5 seconds of life, so the worker must renew them several times here.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pushsync.simulator import SimulatorThread, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from tests.acceptance.conftest import ServerProcess, pushsync_command
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.worker_loop import stop_worker

STATE = "capped-room-client-state"
ROOMS = generated_rooms(4)
CAPPED = ROOMS[-1].email
OTHERS = [room.email for room in ROOMS[:-1]]
LIFETIME = timedelta(seconds=5)  # renewed every 0.5 s round: ten rounds of margin
BOUND_S = 2  # max_retry_after_seconds: how often the capped room is asked again


@pytest.fixture
def rig(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory(pushsync_graph_client_state=STATE)
    with running(epoch=datetime.now(UTC), scale=1, rooms=ROOMS) as thread:
        sim = thread.sim

        def cap() -> None:
            sim.graph.max_lifetime = LIFETIME
            sim.graph.hold_subscriptions(CAPPED)  # other apps fill the mailbox
            sim.exchange.journal = []

        thread.call(cap)
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_GRAPH_ROOMS": ",".join(room.email for room in ROOMS),
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_GRAPH_RENEW_BEFORE_MINUTES": "1",  # more than the lifetime: every round
            "PUSHSYNC_MAX_RETRY_AFTER_SECONDS": str(BOUND_S),
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
        }
        yield thread, server, env


def rooms_json(server: ServerProcess) -> dict[str, Any]:
    answer = httpx.get(f"http://127.0.0.1:{server.admin_port}/rooms", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def status_of(server: ServerProcess, mailbox: str) -> dict[str, Any]:
    [status] = [s for s in rooms_json(server)["statuses"] if s["mailbox"] == mailbox]
    return dict(status)


def subscribe_calls(thread: SimulatorThread, mailbox: str) -> int:
    journal = thread.call(lambda: list(thread.sim.exchange.journal))
    return sum(1 for r in journal if (r.operation, r.mailbox) == ("graph.subscribe", mailbox))


def active_ids(thread: SimulatorThread, mailbox: str) -> list[str]:
    return [s.id for s in thread.call(thread.sim.graph.webhooks.active, mailbox)]


def booked(server: ServerProcess) -> set[tuple[str, str]]:
    return {(r["mailbox"], r["uid"]) for r in server.rows("SELECT * FROM reservation")}


def test_a_capped_room_is_reported_while_every_other_room_is_subscribed_renewed_and_synced(
    rig,
) -> None:
    thread, server, env = rig
    log = server.database.with_name("worker.log")  # a file: a full pipe would stall the worker
    with log.open("wb") as out:
        worker = subprocess.Popen(
            pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: all(active_ids(thread, room) for room in OTHERS), timeout=60)
        first = {room: active_ids(thread, room) for room in OTHERS}
        started = time.monotonic()

        # Renewed before expiry: after three lifetimes each room still has the subscription
        # it was given first, alive at Graph, and none was ever recreated.
        wait_for(lambda: time.monotonic() - started > 3 * LIFETIME.total_seconds(), timeout=60)
        assert {room: active_ids(thread, room) for room in OTHERS} == first
        assert thread.sim.graph.calls["renew"] >= 3 * len(OTHERS)
        rows = server.rows("SELECT mailbox, state FROM subscription")
        assert sorted((r["mailbox"], r["state"]) for r in rows) == [(m, "active") for m in OTHERS]

        # The capped room: asked again at the bound, refused each time, shown with its problem.
        wait_for(lambda: subscribe_calls(thread, CAPPED) >= 2, timeout=60)
        assert active_ids(thread, CAPPED) == []
        wait_for(lambda: rooms_json(server)["in_sync"] == len(OTHERS), timeout=60)
        # Polled meanwhile (issue 18), with Graph's refusal kept beside it.
        wait_for(lambda: "SubscriptionCountReached" in (status_of(server, CAPPED)["problem"]))
        capped = status_of(server, CAPPED)
        assert capped["subscription_state"] is None and capped["kind"] == "polling"
        assert capped["polling_reason"] == "subscription cap"
        assert "mailbox has 1,000 subscriptions" in capped["problem"]
        assert "SubscriptionCountReached" in capped["problem"]
        assert "GET /subscriptions" in capped["problem"]
        assert "Subscription.Read.All" in capped["problem"]
        page = httpx.get(f"http://127.0.0.1:{server.admin_port}/", timeout=10).text
        assert f"{len(OTHERS)} of {len(ROOMS)} rooms in sync" in page and CAPPED in page

        # The other rooms sync what is booked in them.
        start = thread.sim.clock.now() + timedelta(days=1)
        for n, room in enumerate(OTHERS):
            thread.call(thread.sim.exchange.book, meeting(f"PUSHED-{n}", start), [room])
        wanted = {(room, f"PUSHED-{n}") for n, room in enumerate(OTHERS)}
        wait_for(lambda: booked(server) >= wanted, timeout=60)

        # An admin makes room: the capped room is subscribed at the next try and catches up.
        thread.call(thread.sim.graph.hold_subscriptions, CAPPED, 999)
        wait_for(lambda: active_ids(thread, CAPPED), timeout=60)
        wait_for(lambda: rooms_json(server)["in_sync"] == len(ROOMS), timeout=60)
    finally:
        output = stop_worker(worker, log, server)
    assert worker.returncode == 0, output
    assert "Traceback" not in output
    assert "251606135815" not in output  # the year-9999 Retry-After was never slept through
