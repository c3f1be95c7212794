"""A worker killed mid-batch loses nothing; two workers at once agree with one.

The first test SIGKILLs a real `pushsync worker` process while it holds a claimed batch of
notification rows; after the (short) lease expires another worker claims the same rows again
and the reservations still end equal to the simulator's calendars. The second runs two workers
on one queue under random activity and watches that no row ever goes back to an older version.
"""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pushsync.simulator import Recurrence, generated_rooms
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.sync_loop import Workers, sync_settings
from tests.acceptance.worker_loop import Regressions, converge, versions, worker_process

ITEM_EVENTS = "('Created', 'Modified', 'Moved', 'Deleted')"


def _claimed_by(server: ServerProcess, pid: int) -> list[dict[str, object]]:
    rows = server.rows(
        "SELECT id, lease_owner, event_type FROM sync_notification "
        f"WHERE state = 'claimed' AND event_type IN {ITEM_EVENTS}"
    )
    return [dict(row) for row in rows if f":{pid}:" in (row["lease_owner"] or "")]


def _settled(server: ServerProcess, rooms: int) -> bool:
    """Every room subscribed and resynced, and no row waiting or held."""
    subscribed = server.rows("SELECT DISTINCT mailbox FROM subscription")
    resynced = server.rows("SELECT mailbox FROM room WHERE NOT needs_resync")
    busy = server.rows("SELECT id FROM sync_notification WHERE state IN ('pending', 'claimed')")
    return len(subscribed) == rooms and len(resynced) == rooms and not busy


def test_rows_of_a_killed_worker_are_claimed_again_and_the_state_converges(
    server_factory, tmp_path
) -> None:
    server = server_factory()
    rooms = generated_rooms(3)
    r1, r2, r3 = (room.email for room in rooms)
    # `pushsync worker` places its sync window by the wall clock: Exchange time starts now.
    epoch = datetime.now(UTC).replace(microsecond=0)
    with running(rooms=rooms, scale=1.0, epoch=epoch) as thread:
        sim = thread.sim
        base = epoch.replace(hour=9, minute=0, second=0) + timedelta(days=2)
        thread.call(sim.exchange.book, meeting("BEFORE", base), [r1])
        settings = sync_settings(server, thread, worker_lease_seconds=2.0)
        # A long debounce: the worker holds each batch it claims for 4 s before working on it.
        holding = settings.model_copy(update={"worker_debounce_ms": 4000})
        doomed = worker_process(holding, tmp_path / "doomed.log")
        try:
            wait_for(lambda: _settled(server, len(rooms)), timeout=40)
            weekly = meeting(
                "WEEKLY", base + timedelta(hours=2), recurrence=Recurrence(interval=1, count=6)
            )
            thread.call(sim.exchange.book, weekly, [r2])
            thread.call(sim.exchange.book, meeting("SHARED", base + timedelta(hours=4)), [r1, r3])
            thread.call(sim.exchange.delete, "BEFORE")
            held = wait_for(lambda: _claimed_by(server, doomed.pid), timeout=20)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
        finally:
            if doomed.poll() is None:
                doomed.kill()
        owner = held[0]["lease_owner"]
        ids = sorted({row["id"] for row in held})
        still = server.rows(f"SELECT state, lease_owner FROM sync_notification WHERE id = {ids[0]}")
        assert (still[0]["state"], still[0]["lease_owner"]) == ("claimed", owner)

        # More changes while nobody works; then a fresh worker takes over.
        thread.call(sim.exchange.update, replace(weekly, end=weekly.end + timedelta(minutes=30)))
        with Workers(settings, sim.clock.now, timedelta(minutes=1)) as rescue:
            converge(thread, server.database_url, lambda: rescue.failure)
            wait_for(lambda: _all_done(server, ids), timeout=20)
        rows = server.rows(
            "SELECT id, state, attempts, last_error FROM sync_notification "
            f"WHERE id IN ({','.join(map(str, ids))})"
        )
        assert {row["state"] for row in rows} == {"done"}
        assert all(row["attempts"] >= 2 for row in rows), [dict(r) for r in rows]
        assert all(f"lease of {owner} expired" in (row["last_error"] or "") for row in rows)
        stored_uids = {key[1] for key in versions(thread, server.database_url)[1]}
        assert "BEFORE" not in stored_uids
        assert {"WEEKLY", "SHARED"} <= stored_uids


def _all_done(server: ServerProcess, ids: list[int]) -> bool:
    rows = server.rows(
        f"SELECT state FROM sync_notification WHERE id IN ({','.join(map(str, ids))})"
    )
    return {row["state"] for row in rows} == {"done"}


def test_two_workers_give_the_same_result_without_out_of_order_writes(server_factory) -> None:
    server = server_factory()
    rooms = generated_rooms(4)
    with running(rooms=rooms, scale=60.0, seed=7, activity_per_minute=240) as thread:
        sim = thread.sim
        # Small batches, so both workers hold rows of the same room at the same time.
        settings = sync_settings(server, thread, worker_batch_size=8, worker_debounce_ms=50)
        with (
            Regressions(server.database) as regressions,
            Workers(settings, sim.clock.now, timedelta(seconds=1), count=2) as workers,
        ):
            time.sleep(4)  # four Exchange minutes of random bookings, edits and deletions
            thread.call(sim.pause_activity)
            converge(thread, server.database_url, lambda: workers.failure)
            truth, stored = versions(thread, server.database_url)
        assert regressions.polls > 10, "the watch never read the table"
        assert not regressions.found, f"older versions written over newer: {regressions.found[:3]}"
        assert stored == truth  # same change key and last-modified time on every natural key
        handled = [w.stats.notifications for w in workers.workers]
        assert all(handled), f"one worker did nothing: {handled}"
        assert len(sim.activity.log) > 50
