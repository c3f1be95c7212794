"""`pushsync rooms migrate`: a room moved from EWS push to Graph and back by the real CLI and
the real `pushsync worker`, with bookings created, changed and deleted throughout the move.

Afterwards the reservations equal the calendars, no change made during the move is lost, the
reservations of meetings nobody touched keep their keys (and were never deleted on the way),
and each protocol's subscription was retired only once the room was read over the other one.
The simulator's clock runs at real speed from now, as in test_cli_graph.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pushsync.simulator import Recurrence, SimulatorThread, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from tests.acceptance.conftest import (
    CALLBACK_TOKEN,
    ServerProcess,
    pushsync_command,
    run_pushsync,
)
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.worker_loop import converge, stop_worker

STATE = "migration-client-state"
ROOMS = generated_rooms(2)
MOVED, STAYS = (room.email for room in ROOMS)


@pytest.fixture
def rig(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory(pushsync_graph_client_state=STATE)
    with running(epoch=datetime.now(UTC), scale=1, rooms=ROOMS) as thread:
        sim = thread.sim
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_EWS_ROOMS": f"{MOVED},{STAYS}",  # the settings never name Graph
            "PUSHSYNC_EWS_URL": sim.ews_url,
            "PUSHSYNC_EWS_AUTH": "basic",
            "PUSHSYNC_EWS_USERNAME": sim.config.username,
            "PUSHSYNC_EWS_PASSWORD": sim.config.password,
            "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
            "PUSHSYNC_SYNC_WINDOW_PAST_DAYS": "1",
            "PUSHSYNC_SYNC_WINDOW_FUTURE_DAYS": "120",
            "COLUMNS": "300",
        }
        yield thread, server, env


class Activity:
    """Bookings made, moved and deleted in both rooms on a thread until stopped."""

    def __init__(self, thread: SimulatorThread, start: datetime, tag: str) -> None:
        self._thread, self._start, self._tag = thread, start, tag
        self._stop = threading.Event()
        self._runner = threading.Thread(target=self._run, daemon=True)
        self.actions = 0

    def __enter__(self) -> Activity:
        self._runner.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._runner.join(timeout=30)

    def _run(self) -> None:
        exchange = self._thread.sim.exchange
        n = 0
        while not self._stop.wait(0.15):
            n += 1
            at = self._start + timedelta(hours=n)
            item = meeting(f"{self._tag}-{n}", at)
            room = (MOVED, STAYS)[n % 2]
            self._thread.call(exchange.book, item, [room])
            if n % 3 == 0:  # moved an hour later
                later = replace(item, start=at + timedelta(hours=1), end=at + timedelta(hours=2))
                self._thread.call(exchange.update, later)
            if n % 4 == 0:  # an earlier one cancelled by its organizer
                self._thread.call(exchange.delete, f"{self._tag}-{n - 1}")
            self.actions += 1


def migration(server: ServerProcess) -> dict[str, Any]:
    rows = server.rows(f"SELECT * FROM room_migration WHERE mailbox = '{MOVED}'")
    return dict(rows[0]) if rows else {}


def subscriptions(server: ServerProcess, mailbox: str) -> list[tuple[str, str]]:
    rows = server.rows("SELECT mailbox, protocol, state FROM subscription ORDER BY created_at")
    return [(r["protocol"], r["state"]) for r in rows if r["mailbox"] == mailbox]


def keys(server: ServerProcess, uids: set[str]) -> set[tuple[str, str, str | None]]:
    rows = server.rows("SELECT mailbox, uid, original_start FROM reservation")
    return {(r["mailbox"], r["uid"], r["original_start"]) for r in rows if r["uid"] in uids}


def deletions_since(server: ServerProcess, after: int) -> set[str]:
    rows = server.rows("SELECT id, uid, change FROM reservation_change")
    return {r["uid"] for r in rows if r["id"] > after and r["change"] == "delete"}


def last_change(server: ServerProcess) -> int:
    rows = server.rows("SELECT max(id) AS last FROM reservation_change")
    return int(rows[0]["last"] or 0)


def test_a_room_moves_to_graph_and_back_under_live_activity(rig) -> None:
    thread, server, env = rig
    sim = thread.sim
    start = sim.clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    thread.call(sim.exchange.book, meeting("KEEP-SINGLE", start), [MOVED])
    at = start + timedelta(hours=3)  # not at the single's time: the room would decline it
    series = meeting("KEEP-SERIES", at, recurrence=Recurrence(interval=1, count=5))
    thread.call(sim.exchange.book, series, [MOVED])
    thread.call(sim.exchange.book, meeting("KEEP-OTHER", start), [STAYS])

    log = server.database.with_name("worker.log")
    with log.open("wb") as out:
        worker = subprocess.Popen(
            pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        converge(thread, server.database_url)
        assert subscriptions(server, MOVED) == [("ews", "active")]
        # Every reservation so far is of a meeting nobody touches again.
        untouched = {r["uid"] for r in server.rows("SELECT uid FROM reservation")}
        kept = keys(server, untouched)
        assert len(kept) == 7  # two singles and five occurrences
        mark = last_change(server)

        # To Graph, with bookings made, moved and cancelled before, during and after the move.
        with Activity(thread, start + timedelta(days=1), "LIVE") as activity:
            wait_for(lambda: activity.actions >= 5, timeout=30)
            said = run_pushsync("rooms", "migrate", "--to", "graph", MOVED, env=env)
            assert "migration of 1 room(s) to graph requested" in said
            assert "follow with `pushsync subscriptions list`" in said
            wait_for(lambda: migration(server).get("state") == "retired", timeout=90)
            done = activity.actions
            wait_for(lambda: activity.actions >= done + 5, timeout=30)
        converge(thread, server.database_url, deadline_s=90)

        assert subscriptions(server, MOVED) == [("ews", "retired"), ("graph", "active")]
        assert subscriptions(server, STAYS) == [("ews", "active")]
        [room] = server.rows(f"SELECT * FROM room WHERE mailbox = '{MOVED}'")
        assert (room["protocol"], room["protocol_override"]) == ("graph", "graph")
        assert keys(server, untouched) == kept
        assert untouched.isdisjoint(deletions_since(server, mark))
        graph_ids = [s.id for s in thread.call(sim.graph.webhooks.active, MOVED)]
        assert len(graph_ids) == 1
        listed = run_pushsync("subscriptions", "list", env=env)
        assert next(line for line in listed.splitlines() if MOVED in line).count("graph")

        # A change now reaches the room over Graph alone.
        thread.call(sim.exchange.book, meeting("AFTER-GRAPH", start + timedelta(hours=6)), [MOVED])
        converge(thread, server.database_url, deadline_s=60)

        # And back to EWS, again under activity.
        mark = last_change(server)
        with Activity(thread, start + timedelta(days=3), "BACK") as activity:
            wait_for(lambda: activity.actions >= 3, timeout=30)
            said = run_pushsync("rooms", "migrate", "--to", "ews", MOVED, env=env)
            assert "migration of 1 room(s) to ews requested" in said
            wait_for(lambda: migration(server).get("state") == "retired", timeout=90)
            done = activity.actions
            wait_for(lambda: activity.actions >= done + 5, timeout=30)
        converge(thread, server.database_url, deadline_s=90)
        assert sorted(subscriptions(server, MOVED)) == [
            ("ews", "active"),
            ("ews", "retired"),
            ("graph", "retired"),
        ]
        assert keys(server, untouched) == kept
        assert untouched.isdisjoint(deletions_since(server, mark))
        wait_for(lambda: not thread.call(sim.graph.webhooks.active, MOVED), timeout=60)

        # A room pushsync does not know: a clear error, non-zero exit, nothing recorded.
        before = server.rows("SELECT * FROM room_migration")
        refused = subprocess.run(
            pushsync_command("rooms", "migrate", "--to", "graph", MOVED, "nobody@x.example"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1
        assert "unknown room(s): nobody@x.example" in refused.stderr
        assert [dict(r) for r in server.rows("SELECT * FROM room_migration")] == [
            dict(r) for r in before
        ]
    finally:
        output = stop_worker(worker, log, server)
    assert worker.returncode == 0, output
    assert "Traceback" not in output


def test_a_move_the_settings_cannot_carry_out_is_refused_and_nothing_is_written(
    tmp_path,
) -> None:
    url = f"sqlite:///{tmp_path}/pushsync.db"
    env = {**os.environ, "PUSHSYNC_DATABASE_URL": url, "COLUMNS": "300"}
    run_pushsync("db", "upgrade", env=env)

    def migrate(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            pushsync_command("rooms", "migrate", *args),
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    no_url = migrate("--to", "graph", MOVED)
    assert no_url.returncode == 2
    assert "rooms cannot be moved to graph: PUSHSYNC_PUBLIC_URL is not set" in no_url.stderr
    graph = {"PUSHSYNC_PUBLIC_URL": "https://pushsync.example"}
    no_state = migrate("--to", "graph", MOVED, **graph)
    assert no_state.returncode == 2 and "PUSHSYNC_GRAPH_CLIENT_STATE" in no_state.stderr
    no_ews = migrate("--to", "ews", "--all", **graph)
    assert no_ews.returncode == 2 and "PUSHSYNC_EWS_URL is not set" in no_ews.stderr
    both = migrate("--to", "graph", MOVED, "--all", **graph)
    assert both.returncode == 2 and "name one or more ROOMs or give --all" in both.stderr
    configured = {**graph, "PUSHSYNC_GRAPH_CLIENT_STATE": STATE, "PUSHSYNC_GRAPH_TOKEN": "t"}
    unknown = migrate("--to", "graph", MOVED, **configured)
    assert unknown.returncode == 1 and f"unknown room(s): {MOVED}" in unknown.stderr
    nothing = migrate("--to", "graph", "--all", **configured)
    assert nothing.returncode == 0 and "nothing to migrate" in nothing.stdout
    with sqlite3.connect(tmp_path / "pushsync.db") as db:
        assert db.execute("SELECT count(*) FROM room_migration").fetchone() == (0,)
