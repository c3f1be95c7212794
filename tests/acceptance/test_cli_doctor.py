"""`pushsync doctor` with the real CLI against the simulator (in a thread) and a real
`pushsync serve`: a healthy installation exits 0; each thing broken in turn (the wrong
database, stale address ranges, a token without the calendar permission, the receiver down)
gives its own line with a fix and a non-zero exit. (A receiver that filters the doctor's own
address out, behind the shipped nginx site, is in test_deploy_nginx.)"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from pushsync.cli.sync import _subscribe_all
from pushsync.simulator import SimulatorThread
from pushsync.simulator.access_token import issue
from pushsync.simulator.graph.api import GRAPH_TOKEN
from tests.acceptance.conftest import CALLBACK_TOKEN, ServerProcess, pushsync_command
from tests.acceptance.simulated_exchange import running

STATE = "doctor-client-state"
GRAPH_ROOM, EWS_ROOM = "room-001@contoso.example", "room-002@contoso.example"


def write_ranges(directory: Path, retrieved_at: datetime) -> None:
    """The packaged list, as if `ipranges refresh` had fetched it at `retrieved_at`."""
    packaged = resources.files("pushsync.web.access").joinpath("data/exchange-Worldwide.json")
    document = json.loads(packaged.read_bytes())
    document["retrieved_at"] = retrieved_at.isoformat()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "exchange-Worldwide.json").write_text(json.dumps(document))


def doctor(env: dict[str, str], **changes: str) -> tuple[int, list[str]]:
    result = subprocess.run(
        pushsync_command("doctor"),
        env={**env, **changes},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def line(lines: list[str], start: str) -> str:
    found = [entry for entry in lines if entry.startswith(start)]
    assert found, "\n".join(lines)
    return found[0]


@pytest.fixture
def rig(
    server_factory, tmp_path: Path
) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory(pushsync_graph_client_state=STATE)
    write_ranges(tmp_path / "ranges", datetime.now(UTC) - timedelta(hours=5))
    with running(epoch=datetime.now(UTC), scale=1) as thread:
        sim = thread.sim
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_ROOMS": EWS_ROOM,
            "PUSHSYNC_GRAPH_ROOMS": GRAPH_ROOM,
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_EWS_URL": sim.ews_url,
            "PUSHSYNC_EWS_AUTH": "basic",
            "PUSHSYNC_EWS_USERNAME": sim.config.username,
            "PUSHSYNC_EWS_PASSWORD": sim.config.password,
            "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "PUSHSYNC_IPRANGES_DIR": str(tmp_path / "ranges"),
            "COLUMNS": "400",  # a finding is one line
        }
        subscribe_and_resync(env)
        yield thread, server, env


def subscribe_and_resync(env: dict[str, str]) -> None:
    """What `subscriptions sync` and `resync --all` do, in this process: the doctor is the
    command under test, and each command's start costs seconds on a loaded machine."""
    from pushsync.processes.sync import build_clients, build_worker, room_plan
    from pushsync.settings import Settings
    from pushsync.store import open_store

    variables = {k.removeprefix("PUSHSYNC_").lower(): v for k, v in env.items()}
    settings = Settings(**{k: v for k, v in variables.items() if k in Settings.model_fields})

    async def run() -> None:
        subscribed, failed = await _subscribe_all(settings)
        assert sorted(subscribed) == sorted([EWS_ROOM, GRAPH_ROOM]) and not failed, failed
        clients = build_clients(settings)
        try:
            async with open_store(settings) as connector:
                plan = await room_plan(settings, clients.ews)
                sync = build_worker(settings, connector, clients.ews, graph=clients.graph)
                for mailbox in plan.all:
                    assert await sync.resync(mailbox, plan.protocol_of(mailbox), full=True)
        finally:
            await clients.aclose()

    asyncio.run(run())


def test_a_healthy_installation_passes_and_each_broken_part_is_named(rig, tmp_path: Path) -> None:
    _thread, server, env = rig

    code, lines = doctor(env)
    assert code == 0, "\n".join(lines)
    assert line(lines, "ok   settings").endswith("rooms over ews, graph")
    assert "schema at version" in line(lines, "ok   database")
    assert "5 h old" in line(lines, "ok   address ranges")
    assert "stored (the row was found in this database and removed)" in line(
        lines, "ok   public URL (EWS)"
    )
    assert "validation handshake" in line(lines, "ok   public URL (Graph)")
    line(lines, "ok   clock (Exchange)")
    line(lines, "ok   clock (Graph)")
    assert "Calendars.Read, Place.Read.All" in line(lines, "ok   Graph permissions")
    assert "2 rooms subscribed, 2 of them in sync" in line(lines, "ok   subscriptions")
    assert lines[-1].endswith("0 failed, 0 warnings")
    assert not server.rows(
        "SELECT * FROM sync_notification WHERE subscription_id LIKE 'pushsync-doctor-%'"
    )

    # three parts broken at once (each doctor run costs seconds): each its own line
    write_ranges(tmp_path / "stale", datetime.now(UTC) - timedelta(days=40))
    without = issue("contoso", "pushsync-app", roles=("Place.Read.All",))
    code, lines = doctor(
        env,
        PUSHSYNC_DATABASE_URL=f"sqlite:///{tmp_path}/other.db",
        PUSHSYNC_IPRANGES_DIR=str(tmp_path / "stale"),
        PUSHSYNC_GRAPH_TOKEN=without,
    )
    assert code == 1
    assert "no SQLite database at" in line(lines, "FAIL database")
    # the receiver stored the self-test in its own database, not the one the doctor was given
    assert "the receiver writes to another one" in line(lines, "warn public URL (EWS)")
    assert not (tmp_path / "other.db").exists()
    stale = line(lines, "FAIL address ranges")
    assert "40 days old" in stale and "pushsync ipranges refresh" in stale
    assert "not Calendars.Read" in line(lines, "FAIL Graph permissions")
    assert without not in "\n".join(lines)

    only_calendars = issue("contoso", "pushsync-app", roles=("Calendars.Read",))
    code, lines = doctor(
        env,
        PUSHSYNC_GRAPH_TOKEN=only_calendars,
        PUSHSYNC_CALLBACK_TOKEN="not-the-receivers",
    )
    assert code == 1
    assert "callback token does not match" in line(lines, "FAIL public URL (EWS)")
    # a warning only: room discovery needs the permission, syncing does not
    assert "not Place.Read.All" in line(lines, "warn Graph permissions")

    server.stop()
    code, lines = doctor(env)
    assert code == 1
    assert "does not answer" in line(lines, "FAIL public URL (EWS)")
    assert "pushsync serve" in line(lines, "FAIL public URL (Graph)")
