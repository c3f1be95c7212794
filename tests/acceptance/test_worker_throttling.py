"""Throttling: with Exchange refusing 30% of requests, the worker waits out every back-off,
fails no row for it, and still ends equal to the calendars.

Honouring is checked from Exchange's side: the simulator's journal lists every request per
mailbox, and after an ErrorServerBusy no request (the worker's or the subscription manager's:
they share the EWS client, which pauses the mailbox) reaches that mailbox before
BackOffMilliseconds have passed.
"""

from __future__ import annotations

import time
from datetime import timedelta

from pushsync.simulator import generated_rooms
from pushsync.simulator.exchange import Request
from tests.acceptance.simulated_exchange import running
from tests.acceptance.sync_loop import Workers, sync_settings
from tests.acceptance.worker_loop import converge

SCALE = 60.0
BACK_OFF_MS = 400
# The worker's operations (Subscribe is the subscription manager's).
WORKER_OPERATIONS = frozenset({"GetItem", "FindItem", "GetFolder", "SyncFolderItems"})


def early_calls(journal: list[Request], back_off_s: float) -> list[tuple[Request, Request]]:
    """(busy answer, later request) pairs where the request came before the back-off ended."""
    early = []
    refused: dict[str, Request] = {}
    for request in journal:
        if request.mailbox is None:
            continue
        mailbox = request.mailbox.lower()
        busy = refused.get(mailbox)
        if busy is not None and request.at < busy.at + back_off_s:
            early.append((busy, request))
        if request.busy:
            refused[mailbox] = request
    return early


def test_back_off_is_honoured_and_nothing_is_lost(server_factory) -> None:
    server = server_factory()
    rooms = generated_rooms(4)
    config = {"busy_rate": 0.3, "busy_back_off_ms": BACK_OFF_MS, "activity_per_minute": 120}
    with running(rooms=rooms, scale=SCALE, seed=11, **config) as thread:
        sim = thread.sim
        journal: list[Request] = []
        sim.exchange.journal = journal  # a plain attribute; the list is appended on sim's loop
        settings = sync_settings(server, thread, worker_debounce_ms=100)
        with Workers(settings, sim.clock.now, timedelta(seconds=60 / SCALE)) as workers:
            time.sleep(3)  # three Exchange minutes of bookings while 30% of requests are refused
            thread.call(sim.pause_activity)
            converge(thread, server.database_url, lambda: workers.failure, deadline_s=60)
        worker = workers.workers[0]

    refused = [r for r in journal if r.busy and r.operation in WORKER_OPERATIONS]
    assert len(refused) >= 5, "Exchange hardly refused the worker: the test proves nothing"
    assert worker.stats.throttled >= len(refused) * 0.8  # nearly every refusal paused a room
    early = early_calls(journal, BACK_OFF_MS / 1000)
    assert not early, early[:3]
    failed = server.rows("SELECT id, last_error FROM sync_notification WHERE state = 'failed'")
    assert not failed, [dict(row) for row in failed[:3]]
    released = server.rows(
        "SELECT id FROM sync_notification WHERE state = 'done' AND available_at IS NOT NULL"
    )
    assert released, "no row was released for a back-off"
    errors = server.rows("SELECT mailbox, last_error FROM room WHERE last_error IS NOT NULL")
    assert not errors, [dict(row) for row in errors]
