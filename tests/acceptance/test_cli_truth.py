"""No command reports success for something it did not do: `subscriptions retire` with an id
that names nothing (or several), `resync` of an unknown room, `resync --all` with a room that
fails, and the ids the listings print, pasted back. The real CLI against the simulator."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pushsync.simulator import SimulatorThread
from tests.acceptance.conftest import CALLBACK_TOKEN, ServerProcess, pushsync_command, run_pushsync
from tests.acceptance.simulated_exchange import running

ROOMS = ["room-001@contoso.example", "room-002@contoso.example"]
GHOST = "ghost-room@contoso.example"  # configured, but Exchange has no such mailbox


@pytest.fixture
def rig(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory()
    with running(epoch=datetime.now(UTC), scale=1) as thread:
        sim = thread.sim
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_ROOMS": ",".join(ROOMS),
            "PUSHSYNC_EWS_URL": sim.ews_url,
            "PUSHSYNC_EWS_AUTH": "basic",
            "PUSHSYNC_EWS_USERNAME": sim.config.username,
            "PUSHSYNC_EWS_PASSWORD": sim.config.password,
            "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "COLUMNS": "250",
        }
        yield thread, server, env


def fails(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = subprocess.run(
        pushsync_command(*args), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0, result.stdout + result.stderr
    return result.returncode, result.stdout + result.stderr


def subscriptions(server: ServerProcess) -> list[tuple[str, str]]:
    rows = server.rows("SELECT subscription_id, state FROM subscription ORDER BY subscription_id")
    return [(row["subscription_id"], row["state"]) for row in rows]


def test_retire_of_an_unknown_id_fails_naming_it_and_writes_nothing(rig) -> None:
    _, server, env = rig
    run_pushsync("subscriptions", "sync", env=env)
    before = subscriptions(server)

    _, output = fails(env, "subscriptions", "retire", "NO-SUCH-SUBSCRIPTION")

    assert "NO-SUCH-SUBSCRIPTION" in output and "retired" not in output.replace("retire", "")
    assert subscriptions(server) == before
    assert {state for _, state in before} == {"active"}


def test_listed_prefixes_retire_exactly_that_subscription(rig) -> None:
    _, server, env = rig
    run_pushsync("subscriptions", "sync", env=env)
    listing = run_pushsync("subscriptions", "list", env=env)
    ids = [subscription_id for subscription_id, _ in subscriptions(server)]
    printed = [s for s in listing.split() if any(i.startswith(s) and len(s) >= 12 for i in ids)]
    assert len(printed) == 2 and "…" not in listing  # one pasteable prefix per room
    assert set(run_pushsync("subscriptions", "list", "--full-ids", env=env).split()) >= set(ids)

    output = run_pushsync("subscriptions", "retire", printed[0], env=env)

    [target] = [i for i in ids if i.startswith(printed[0])]
    assert target in output
    assert dict(subscriptions(server)) == {i: ("retired" if i == target else "active") for i in ids}
    assert "already retired" in run_pushsync("subscriptions", "retire", target, env=env)


def test_an_ambiguous_prefix_is_refused_naming_the_candidates(rig) -> None:
    _, server, env = rig
    run_pushsync("subscriptions", "sync", env=env)
    ids = [subscription_id for subscription_id, _ in subscriptions(server)]
    shared = ids[0][: next(n for n, (a, b) in enumerate(zip(*ids, strict=False)) if a != b)]
    assert shared, "the simulator's ids share a prefix (as Exchange's do)"

    _, output = fails(env, "subscriptions", "retire", shared)

    assert "several" in output and all(i in output for i in ids)
    assert {state for _, state in subscriptions(server)} == {"active"}


def test_retire_of_an_id_only_seen_in_notifications_records_it_retired(rig) -> None:
    """An orphan (subscribed by some earlier install) is known from its notifications: the row
    written makes the receiver answer it Unsubscribe."""
    _, server, env = rig
    assert subscriptions(server) == []
    with sqlite3.connect(server.database) as connection:
        connection.execute(
            "INSERT INTO sync_notification (received_at, protocol, subscription_id, event_type)"
            " VALUES ('2026-01-01T00:00:00+00:00', 'ews', 'ORPHAN-1', 'Status')"
        )

    fails(env, "subscriptions", "retire", "ORPHAN")  # ids only notified: whole, no prefix
    output = run_pushsync("subscriptions", "retire", "ORPHAN-1", env=env)

    assert "known only from its notifications" in output
    assert subscriptions(server) == [("ORPHAN-1", "retired")]


def test_resync_of_an_unknown_room_fails_naming_it(rig) -> None:
    _, server, env = rig

    _, output = fails(env, "resync", "room-0O1@contoso.example")

    assert "unknown room 'room-0O1@contoso.example'" in output
    assert "resynced" not in output
    assert server.rows("SELECT * FROM reservation") == []


def test_resync_all_reports_each_failing_room_and_exits_non_zero(rig) -> None:
    _, _, env = rig
    env = {**env, "PUSHSYNC_ROOMS": ",".join([*ROOMS, GHOST])}

    _, output = fails(env, "resync", "--all")

    assert "resynced 2 room(s), failed 1" in output
    [line] = [line for line in output.splitlines() if GHOST in line]
    assert "resync" in line and len(line) > len(GHOST) + 5  # the cause is named


def test_resync_of_one_room_in_any_case_is_that_room(rig) -> None:
    _, _, env = rig
    output = run_pushsync("resync", ROOMS[0].upper(), env=env)
    assert "resynced 1 room(s)" in output
    assert f"mailbox={ROOMS[0]} " in output  # the worker's log line names the room as configured
