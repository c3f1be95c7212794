"""A `pushsync worker` killed between a Graph delta round and its commit loses nothing.

The worker reads a burst's changes with one delta round from the room's stored cursor and
stores the new cursor only with the reservations. Here a real `pushsync worker` process is
SIGKILLed after Graph answered its delta round and before it could write: the simulator's
hook takes SQLite's writer lock as it answers, so the worker's next write waits, and the test
kills it meanwhile. The cursor must still be the old one, and a fresh worker, once the lease
has expired, reads the same changes again from it and converges on the calendar.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pushsync.settings import Settings
from pushsync.simulator import Recurrence, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.worker_loop import converge, read_reservations, worker_process

STATE = "graph-kill-state"


def _cursor(server: ServerProcess, room: str) -> str | None:
    rows = server.rows(f"SELECT sync_state FROM room WHERE mailbox = '{room}'")
    return rows[0]["sync_state"] if rows else None


def _idle(server: ServerProcess) -> bool:
    busy = server.rows("SELECT id FROM sync_notification WHERE state IN ('pending', 'claimed')")
    return not busy


def test_a_worker_killed_between_the_delta_and_its_commit_loses_nothing(
    server_factory, tmp_path
) -> None:
    server = server_factory(pushsync_graph_client_state=STATE)
    rooms = generated_rooms(1)
    room = rooms[0].email
    epoch = datetime.now(UTC).replace(microsecond=0)  # `pushsync worker` uses the wall clock
    with running(rooms=rooms, scale=1.0, epoch=epoch) as thread:
        sim = thread.sim
        base = epoch.replace(hour=9, minute=0, second=0) + timedelta(days=2)
        weekly = meeting("WEEKLY", base, recurrence=Recurrence(interval=1, count=5))
        thread.call(sim.exchange.book, meeting("BEFORE", base + timedelta(hours=3)), [room])
        thread.call(sim.exchange.book, weekly, [room])
        settings = Settings(
            database_url=server.database_url,
            protocol="graph",
            rooms=[room],
            public_url=server.url,
            graph_url=sim.graph_url,
            graph_token=GRAPH_TOKEN,
            graph_client_state=STATE,
            subscription_check_seconds=0.2,
            worker_debounce_ms=100,
            worker_lease_seconds=2.0,
            sync_window_past_days=1,
            sync_window_future_days=60,
        )  # type: ignore[call-arg]

        answered = threading.Event()
        lock = sqlite3.connect(server.database, check_same_thread=False, isolation_level=None)

        def hold_the_database(mailbox: str) -> None:
            """Graph answers the round; the worker's next write must wait for this lock."""
            if mailbox == room and not answered.is_set():
                lock.execute("BEGIN IMMEDIATE")
                answered.set()

        doomed = worker_process(settings, tmp_path / "doomed.log")
        try:
            wait_for(lambda: _cursor(server, room) is not None and _idle(server), timeout=40)
            before = _cursor(server, room)
            thread.call(setattr, sim.graph, "on_delta_round", hold_the_database)
            thread.call(sim.exchange.book, meeting("NEW", base + timedelta(hours=5)), [room])
            thread.call(sim.exchange.delete, "BEFORE")
            second = weekly.start + timedelta(days=1)
            thread.call(
                sim.exchange.edit_occurrence,
                "WEEKLY",
                second,
                second + timedelta(hours=1),
                second + timedelta(hours=2),
                "moved",
            )
            thread.call(sim.exchange.settle)
            assert answered.wait(30), "the worker never asked for the delta round"
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
        finally:
            if doomed.poll() is None:
                doomed.kill()
            if lock.in_transaction:
                lock.execute("ROLLBACK")
            lock.close()
        thread.call(setattr, sim.graph, "on_delta_round", None)

        assert _cursor(server, room) == before  # the dead worker's round was never stored
        uids = {r.uid for r in read_reservations(server.database_url)}
        assert "NEW" not in uids and "BEFORE" in uids

        thread.call(sim.exchange.update, replace(weekly, end=weekly.end + timedelta(minutes=30)))
        rescue = worker_process(settings, tmp_path / "rescue.log")
        try:
            converge(thread, server.database_url)
            wait_for(lambda: _idle(server) and _cursor(server, room) != before, timeout=40)
        finally:
            rescue.send_signal(signal.SIGTERM)
            rescue.wait(20)
        failed = server.rows("SELECT id FROM sync_notification WHERE state = 'failed'")
        assert not failed
        uids = {r.uid for r in read_reservations(server.database_url)}
        assert "NEW" in uids and "BEFORE" not in uids
