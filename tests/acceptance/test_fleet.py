"""A fleet, small: what bench/fleet found at 500 rooms and more, kept from coming back.

Hundreds of rooms onboarded against a simulator that takes time over each call and enforces
Exchange's limits (EWSMaxConcurrency 27: a request beyond it is refused and counted): every room
subscribed and synced, never a limit exceeded, and through three StatusFrequency periods after
it, with the worker stopped so that every heartbeat waits in the queue, no subscription replaced
for silence (the heartbeats are counted, so the check had something to judge). At this size it
passes with the worker's earlier single loop too: it guards the limits and the alarms, not the
speed of the first sync, which only bench/fleet shows.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from datetime import datetime, timedelta
from typing import Any

from pushsync.simulator import generated_rooms
from pushsync.simulator.exchange import Exchange
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.sync_loop import Workers, stored_rows, sync_settings, truth_rows
from tests.acceptance.worker_loop import read_reservations

ROOMS = 150
SCALE = 60.0  # Exchange seconds per real second
STATUS_FREQUENCY = 10  # minutes: a heartbeat every 10 real seconds, silent after 20
MINUTE = timedelta(seconds=60 / SCALE)


def one(server: ServerProcess, sql: str) -> Any:
    with contextlib.closing(sqlite3.connect(server.database)) as db:
        db.execute("PRAGMA busy_timeout = 10000")
        return db.execute(sql).fetchone()[0]


def replaced_while_heard(server: ServerProcess) -> list[str]:
    """Subscriptions replaced although a heartbeat of theirs had arrived less than twice
    StatusFrequency before: false alarms. (One replaced after a longer silence was right to be:
    on a loaded machine the simulator, like an overloaded Exchange, can be late.)"""
    with contextlib.closing(sqlite3.connect(server.database)) as db:
        rows = db.execute(
            "SELECT s.subscription_id, s.retired_at, max(n.received_at), s.state, s.last_error,"
            " s.created_at FROM subscription s"
            " LEFT JOIN sync_notification n ON n.subscription_id = s.subscription_id"
            " AND n.received_at <= s.retired_at"
            " WHERE s.replaced_by IS NOT NULL GROUP BY s.subscription_id"
        ).fetchall()
    silence = 2 * STATUS_FREQUENCY * MINUTE
    return [
        f"{subscription[:12]} ({why or state}, created {created}, heard {heard}, retired {retired})"
        for subscription, retired, heard, state, why, created in rows
        if heard is not None
        and datetime.fromisoformat(retired) - datetime.fromisoformat(heard) < silence
    ]


def seed(exchange: Exchange) -> None:
    """Two accepted meetings in every room, on the coming days."""
    today = exchange.clock.now().replace(hour=9, minute=0, second=0, microsecond=0)
    for n, mailbox in enumerate(sorted(exchange.calendars)):
        for day in (1, 2):
            start = today + timedelta(days=day, hours=n % 8)
            exchange.book(meeting(f"FLEET-{n}-{day}", start), [mailbox])
    exchange.settle()


def test_a_fleet_onboards_within_the_limits_and_no_heartbeat_is_missed(
    server: ServerProcess,
) -> None:
    """One onboarding, both checks (it takes most of a minute): within Exchange's limits, and
    no subscription replaced while its heartbeats arrived, though the worker was busy with the
    first syncs and they waited in the queue (issue 17: the manager counts the queue's rows)."""
    assert onboard(server) == []


def onboard(server: ServerProcess) -> list[str]:
    """Onboard the fleet, check limits, heartbeats and convergence; the false alarms seen."""
    rooms = generated_rooms(ROOMS)
    with running(rooms=rooms, scale=SCALE, service_ms=5) as thread:
        sim = thread.sim
        thread.call(seed, sim.exchange)
        settings = sync_settings(
            server,
            thread,
            status_frequency_minutes=STATUS_FREQUENCY,
            subscription_check_seconds=1.0,
            resync_interval_hours=0,
        )
        with Workers(settings, sim.clock.now, MINUTE) as workers:
            wait_for(
                lambda: (
                    one(server, "SELECT count(*) FROM subscription WHERE state = 'active'") == ROOMS
                ),
                timeout=240,
            )
            wait_for(
                lambda: (
                    one(
                        server,
                        "SELECT count(*) FROM room WHERE last_synced_at IS NOT NULL"
                        " AND NOT needs_resync",
                    )
                    == ROOMS
                ),
                timeout=240,
            )
            assert workers.failure is None
        # Three StatusFrequency periods of heartbeats, nothing else happening, and the manager
        # alone: with no worker to note them, every heartbeat waits in the queue (a worker
        # busy with a big fleet's first syncs, made certain), and none of them may be missed.
        with Workers(settings, sim.clock.now, MINUTE, count=0) as manager:
            alone_since = time.monotonic()
            while time.monotonic() - alone_since < 3 * STATUS_FREQUENCY * 60 / SCALE:
                time.sleep(0.5)
                assert manager.failure is None
            false_alarms = replaced_while_heard(server)
            broken = one(server, "SELECT count(*) FROM subscription WHERE state = 'broken'")
            heard = one(
                server, "SELECT count(*) FROM sync_notification WHERE event_type LIKE 'Status%'"
            )
            waiting = one(server, "SELECT count(*) FROM sync_notification WHERE state = 'pending'")
        violations = thread.call(lambda: dict(sim.exchange.violations))
        peak = thread.call(lambda: sim.exchange.max_in_flight)
        now = thread.call(sim.clock.now)
        window = (now - timedelta(days=1), now + timedelta(days=60))
        truth = truth_rows(thread, *window)

    assert broken == 0
    assert heard >= 3 * ROOMS  # the heartbeats did arrive: the check above had something to judge
    assert waiting >= ROOMS  # and waited unworked: only the queue told the manager of them
    assert violations == {}  # EWSMaxConcurrency never exceeded
    assert 1 < peak <= 27  # concurrent, and the limit was there to be exceeded
    assert len(truth) == 2 * ROOMS
    assert stored_rows(read_reservations(server.database_url), *window) == truth
    return false_alarms
