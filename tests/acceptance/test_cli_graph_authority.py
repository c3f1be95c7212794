"""`pushsync worker` over Graph with real msal against the simulator's token authority: while
the authority cannot be reached the worker keeps running, backs off and shows the rooms as
unreachable; once it is back the rooms are subscribed and synced, with no restart. Later the
token endpoint answers 503 for a while: the notification rows wait and none is lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pushsync.simulator.authority import AuthorityServer, TokenAuthority
from tests.acceptance.conftest import pushsync_command, run_pushsync
from tests.acceptance.simulated_exchange import meeting, running, wait_for

STATE = "cli-graph-authority-state"
ROOM = "room-001@contoso.example"
TENANT, CLIENT, SECRET = "contoso-tenant", "pushsync-app", "app-secret-not-logged"


def free_port() -> int:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        return int(spare.getsockname()[1])


def test_the_worker_outlives_an_unreachable_token_authority_and_syncs_once_it_is_back(
    server_factory, tmp_path: Path
) -> None:
    server = server_factory(pushsync_graph_client_state=STATE)
    port = free_port()  # where the authority will listen, once it is back
    authority = AuthorityServer(TokenAuthority(TENANT, CLIENT, SECRET), tmp_path, port)
    authority.authority.expires_in = 1  # msal asks again at every use: outages show at once
    with running(epoch=datetime.now(UTC), scale=1) as thread:
        sim = thread.sim
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_GRAPH_ROOMS": ROOM,
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_TENANT_ID": TENANT,
            "PUSHSYNC_CLIENT_ID": CLIENT,
            "PUSHSYNC_CLIENT_SECRET": SECRET,
            "PUSHSYNC_AUTHORITY_HOST": authority.url,
            "PUSHSYNC_AUTHORITY_DISCOVERY": "false",
            "PUSHSYNC_AUTHORITY_CA_BUNDLE": authority.ca_bundle,
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
            "COLUMNS": "200",
        }
        start = sim.clock.now() + timedelta(days=1)
        thread.call(sim.exchange.book, meeting("BEFORE", start), [ROOM])
        thread.call(sim.exchange.settle)
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            # several rounds, each noted on the room (the log writes a repeated warning once a
            # minute, so it is the room's error time that shows the manager trying again)
            attempts: set[str] = set()
            wait_for(lambda: len(unreachable_since(server, attempts)) >= 3, 60)
            assert worker.poll() is None, log.read_text()  # still running
            listing = run_pushsync("subscriptions", "list", env=env)
            assert "token authority unreachable" in listing and "0 of 1 rooms in sync" in listing
            assert server.rows("SELECT * FROM reservation") == []

            thread.call(asyncio.ensure_future, authority.start())  # the authority is back
            wait_for(lambda: server.rows("SELECT * FROM subscription WHERE state = 'active'"), 60)
            wait_for(lambda: booked(server) >= {"BEFORE"}, 60)  # the room's first resync
            thread.call(sim.exchange.book, meeting("PUSHED", start + timedelta(hours=2)), [ROOM])
            wait_for(lambda: booked(server) == {"BEFORE", "PUSHED"}, 60)
            assert authority.authority.issued >= 1
            assert "1 of 1 rooms in sync" in run_pushsync("subscriptions", "list", env=env)

            authority.authority.failing = True  # the token endpoint answers 503 for a while
            failures = log.read_text().count("token authority unreachable")
            thread.call(sim.exchange.book, meeting("DURING", start + timedelta(hours=4)), [ROOM])
            wait_for(lambda: log.read_text().count("token authority unreachable") >= failures + 2)
            assert worker.poll() is None and "DURING" not in booked(server)
            authority.authority.failing = False
            wait_for(lambda: "DURING" in booked(server), 60)  # its rows waited, none was lost
            states = {r["state"] for r in server.rows()}
            assert "failed" not in states, states
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
            thread.call(asyncio.ensure_future, authority.stop())
        output = log.read_text()
    assert worker.returncode == 0, output
    assert SECRET not in output


def booked(server) -> set[str]:
    return {r["uid"] for r in server.rows("SELECT uid FROM reservation")}


def unreachable_since(server, attempts: set[str]) -> set[str]:
    """`attempts`, grown by the room's error time if its last error is the unreachable authority."""
    for row in server.rows("SELECT last_error, last_error_at FROM room"):
        if "token authority unreachable" in (row["last_error"] or ""):
            attempts.add(str(row["last_error_at"]))
    return attempts
