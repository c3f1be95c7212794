"""A fleet's first syncs, many rooms read at once while their subscriptions are being created and
their calendars keep changing: every room ends as the simulator's calendar says.

What lost bookings when resyncs first ran at once (docs/decisions.md, "Resyncs run at once"): a
room read before its Subscribe missed whatever changed between the two, as the read had not
seen it and no notification told of it. Each EWS request here takes a few milliseconds and the
client's pool is small, so subscribing the fleet takes a while and the manager's Subscribe calls
and the worker's reads overlap, as they do at a fleet's start.
"""

from __future__ import annotations

import time
from datetime import timedelta

from pushsync.simulator import generated_rooms
from tests.acceptance.simulated_exchange import running
from tests.acceptance.sync_loop import Workers, sync_settings
from tests.acceptance.worker_loop import converge

SCALE = 60.0
MINUTE = timedelta(seconds=60 / SCALE)
ROOMS = 120
CONCURRENCY = 16
# A small pool, shared by the manager's Subscribes and the worker's reads, and a service time:
# the fleet is subscribed over a second or so, while the worker reads rooms 16 at once.
POOL = 4


def test_rooms_read_at_once_while_subscribed_and_booked_all_converge(server_factory) -> None:
    server = server_factory()
    with running(
        rooms=generated_rooms(ROOMS),
        scale=SCALE,
        seed=29,
        activity_per_minute=240,
        service_ms=10,
    ) as thread:
        sim = thread.sim
        settings = sync_settings(
            server, thread, worker_resync_concurrency=CONCURRENCY, ews_max_concurrency=POOL
        )
        with Workers(settings, sim.clock.now, MINUTE) as workers:
            time.sleep(2)  # two Exchange minutes of bookings while the rooms are first read
            thread.call(sim.pause_activity)
            converge(thread, server.database_url, lambda: workers.failure)
        stats = workers.workers[0].stats
    assert stats.resyncs >= ROOMS and stats.notifications > 0
