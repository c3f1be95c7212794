"""A dead worker is seen at once: real `pushsync serve` and `pushsync worker` processes against
the simulator. Killed with SIGKILL, the worker stops beating; `/readyz`, `/rooms`, `/metrics`, the
status page and `pushsync status` then name it, with since when, and stop calling its rooms in
sync. A worker never started is named too; a restarted one supersedes the dead one, and a clean
stop says "stopped". Heartbeats every 0.2 s, dead after 3 s: the test waits on conditions."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pushsync.simulator import generated_rooms
from pushsync.store import connect
from pushsync.store.subscriptions import Subscriptions
from tests.acceptance.alert_rules import firing
from tests.acceptance.conftest import ServerProcess, pushsync_command
from tests.acceptance.simulated_exchange import running, wait_for
from tests.acceptance.sync_loop import sync_settings
from tests.acceptance.worker_loop import worker_process

LIVENESS = {"process_heartbeat_seconds": "0.2", "process_dead_after_seconds": "3"}
SERVER_LIVENESS = {f"pushsync_{name}": value for name, value in LIVENESS.items()}


def admin(server: ServerProcess, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.admin_port}{path}", timeout=10)


def status(server: ServerProcess, **env: str) -> subprocess.CompletedProcess[str]:
    """`pushsync status` against the server's database, as an operator runs it."""
    environment = {
        **os.environ,
        "COLUMNS": "200",  # rich wraps table cells at the terminal's width
        "PUSHSYNC_DATABASE_URL": server.database_url,
        **{f"PUSHSYNC_{k.upper()}": v for k, v in (LIVENESS | env).items()},
    }
    return subprocess.run(
        pushsync_command("status"),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def up_samples(metrics: str, kind: str) -> dict[str, float]:
    """pushsync_process_up of one kind, by host."""
    samples = {}
    for labels, value in re.findall(r"^pushsync_process_up\{(.*)\} (\S+)$", metrics, re.MULTILINE):
        named = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if named["kind"] == kind:
            samples[named["host"]] = float(value)
    return samples


async def record_rooms(server: ServerProcess, mailboxes: list[str]) -> None:
    connector = connect(server.database_url)
    await connector.open()
    try:
        await Subscriptions(connector).ensure_rooms(mailboxes, "ews", datetime.now(UTC))
    finally:
        await connector.close()


def rooms_in_sync(server: ServerProcess, count: int) -> dict[str, Any] | None:
    listing = admin(server, "/rooms").json()
    return listing if listing["rooms"] == count and listing["in_sync"] == count else None


def test_a_killed_worker_is_named_everywhere_and_its_rooms_are_not_in_sync(
    server_factory, tmp_path: Path
) -> None:
    server = server_factory(**SERVER_LIVENESS)
    rooms = generated_rooms(2)
    with running(rooms=rooms, scale=1.0, epoch=datetime.now(UTC).replace(microsecond=0)) as sim:
        settings = sync_settings(
            server, sim, process_heartbeat_seconds=0.2, process_dead_after_seconds=3.0
        )
        doomed = worker_process(settings, tmp_path / "doomed.log")
        try:
            wait_for(lambda: rooms_in_sync(server, 2), timeout=90)
            healthy = status(server)
            assert healthy.returncode == 0, healthy.stdout + healthy.stderr
            assert "2 of 2 rooms in sync" in healthy.stdout
            assert re.search(rf"worker +│ ews .*│ {doomed.pid} +│ alive", healthy.stdout)
            assert not firing("PushsyncWorkerDown", admin(server, "/metrics").text)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
        finally:
            if doomed.poll() is None:
                doomed.kill()

        name = f"worker (ews) pid {doomed.pid}"
        down = wait_for(
            lambda: [p for p in admin(server, "/readyz").json()["processes_down"] if name in p],
            timeout=60,
        )
        assert "down since" in down[0] and "no heartbeat" in down[0]
        assert admin(server, "/readyz").status_code == 200  # the receiver still stores rows

        listing = admin(server, "/rooms").json()
        assert listing["in_sync"] == 0
        assert {s["kind"] for s in listing["statuses"]} == {"no worker"}
        assert all("no live ews worker since" in s["problem"] for s in listing["statuses"])
        (dead,) = [
            p for p in listing["processes"] if p["pid"] == doomed.pid and p["kind"] == "worker"
        ]
        assert dead["alive"] is False and dead["down_since"] and dead["stopped_at"] is None

        metrics = admin(server, "/metrics").text
        assert set(up_samples(metrics, "worker").values()) == {0.0}
        assert firing("PushsyncWorkerDown", metrics)
        assert set(up_samples(metrics, "receiver").values()) == {1.0}
        assert 'pushsync_rooms{status="no worker"} 2.0' in metrics
        assert "pushsync_process_last_heartbeat_timestamp_seconds{" in metrics

        page = admin(server, "/").text
        assert "0 of 2 rooms in sync" in page and "2 no worker" in page
        assert name in page and "Every room is in sync" not in page

        told = status(server)
        assert told.returncode == 3, told.stdout + told.stderr
        assert name in told.stdout and "0 of 2 rooms in sync" in told.stdout
        assert "not syncing: no live ews worker since" in told.stdout
        assert "start `pushsync worker`" in told.stdout

        # a new worker supersedes the dead one; stopped cleanly, it says "stopped"
        rescue = worker_process(settings, tmp_path / "rescue.log")
        try:
            wait_for(lambda: rooms_in_sync(server, 2), timeout=90)
            assert status(server).returncode == 0
            rescue.send_signal(signal.SIGTERM)
            assert rescue.wait(30) == 0
        finally:
            if rescue.poll() is None:
                rescue.kill()
        stopped = status(server)
        assert stopped.returncode == 3
        assert re.search(rf"worker +│ ews .*│ {rescue.pid} +│ stopped at", stopped.stdout)
        assert str(doomed.pid) not in stopped.stdout  # superseded by its restart


def test_a_worker_never_started_is_named_and_no_room_is_called_in_sync(server_factory) -> None:
    rooms = "room-1@contoso.example,room-2@contoso.example"
    server = server_factory(pushsync_rooms=rooms, **SERVER_LIVENESS)

    ready = wait_for(lambda: admin(server, "/readyz").json()["processes_down"], timeout=30)
    assert "no worker (ews) has run: start `pushsync worker`" in ready
    page = admin(server, "/").text
    assert "no worker (ews) has run" in page and "Every room is in sync" not in page
    asyncio.run(record_rooms(server, rooms.split(",")))  # as `subscriptions sync` would
    listing = admin(server, "/rooms").json()
    assert (listing["rooms"], listing["in_sync"]) == (2, 0)
    assert {s["problem"] for s in listing["statuses"]} == {
        "not syncing: no ews worker has run (start `pushsync worker`)"
    }
    assert "0 of 2 rooms in sync" in admin(server, "/").text
    metrics = admin(server, "/metrics").text
    assert up_samples(metrics, "worker") == {"": 0.0}  # what the worker-down alert reads

    told = status(server, rooms=rooms)
    assert told.returncode == 3, told.stdout + told.stderr
    assert re.search(r"worker +│ ews +│ +│ +│ never ran", told.stdout)
    assert "no worker (ews) has run" in told.stdout
    assert "not syncing: no ews worker has run" in told.stdout

    # a clean stop marks the receiver stopped (SIGTERM, waited for: under load the fixture's
    # ten seconds may end in a kill, which leaves the row alive until it goes stale)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(90) == 0
    after = status(server, rooms=rooms)
    assert re.search(r"receiver +│ +│ .*│ stopped at", after.stdout), after.stdout


def test_status_names_its_exit_codes_and_creates_no_database(tmp_path: Path) -> None:
    help_text = subprocess.run(
        pushsync_command("status", "--help"),
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "3: a process is down or missing, or a room is out of sync" in help_text
    missing = tmp_path / "nowhere.db"
    result = subprocess.run(
        pushsync_command("status", "--database-url", f"sqlite:///{missing}"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "no SQLite database at" in result.stderr
    assert not missing.exists()
