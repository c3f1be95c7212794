"""Migrations: a database upgraded through every version equals one created fresh."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pushsync.model.reservation import Plan
from pushsync.store import Connector, connect
from pushsync.store.migrations import applied_versions, latest_version, upgrade
from pushsync.store.queries import load_migrations
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from tests.integration.catalog import describe

SNAPSHOTS = Path(__file__).parent / "schema"


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> str:
    """A second empty database on the same engine, for the snapshot."""
    if database_url.startswith("sqlite:"):
        return f"sqlite:///{tmp_path}/fresh.db"
    new_schema: Callable[[], str] = request.getfixturevalue("postgres_schemas")
    return new_schema()


async def _run_script(url: str, script: str) -> None:
    connector = connect(url)
    await connector.open()
    try:
        async with connector.session() as session:
            await session.execute_script(script)
    finally:
        await connector.close()


async def _upgrade(url: str) -> list[int]:
    connector = connect(url)
    await connector.open()
    try:
        return await upgrade(connector)
    finally:
        await connector.close()


async def test_migrated_database_equals_the_current_schema_snapshot(
    database_url: str, fresh_url: str
) -> None:
    dialect = "sqlite" if database_url.startswith("sqlite:") else "postgresql"
    await _upgrade(database_url)
    await _run_script(fresh_url, (SNAPSHOTS / f"{dialect}.sql").read_text())

    migrated, fresh = describe(database_url), describe(fresh_url)

    assert {"sync_notification", "subscription"} <= set(migrated)
    assert sorted(migrated) == sorted(fresh), f"tables differ: update schema/{dialect}.sql"
    for table in migrated:
        assert migrated[table] == fresh[table], f"{table} differs: update schema/{dialect}.sql"


async def test_upgrade_applies_every_version_once(database_url: str) -> None:
    dialect = "sqlite" if database_url.startswith("sqlite:") else "postgresql"
    versions = [version for version, _, _ in load_migrations(dialect)]

    first = await asyncio.gather(*(_upgrade(database_url) for _ in range(3)))
    again = await _upgrade(database_url)

    assert sorted(v for applied in first for v in applied) == versions
    assert again == []
    assert versions[-1] == latest_version(dialect)
    connector = connect(database_url)
    await connector.open()
    try:
        assert await applied_versions(connector) == versions
    finally:
        await connector.close()


def test_both_dialects_have_the_same_migration_versions() -> None:
    names = {d: [(v, n) for v, n, _ in load_migrations(d)] for d in ("sqlite", "postgresql")}
    assert names["sqlite"] == names["postgresql"]


def test_the_cli_upgrades_and_reports(database_url: str) -> None:
    def pushsync(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pushsync", *args, "--database-url", database_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    dialect = "sqlite" if database_url.startswith("sqlite:") else "postgresql"
    latest = latest_version(dialect)
    assert f"schema at version {latest}" in pushsync("db", "upgrade")
    versions = [version for version, _, _ in load_migrations(dialect)]  # numbered with gaps
    assert str(versions) in pushsync("db", "status")  # while branches are merged


async def test_0009_rekeys_single_meetings_and_logs_the_new_keys(database_url: str) -> None:
    """Rows written before 0009 (a single keyed on its start) get the single's new key, a
    follower of the change log sees the old key deleted and the new one upserted, and Graph
    rooms (keyed on beta `uid` or per-occurrence iCalUIds) are asked for a resync."""
    dialect = "sqlite" if database_url.startswith("sqlite:") else "postgresql"
    connector = connect(database_url)
    await connector.open()
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    try:
        for version, name, script in load_migrations(dialect):
            if version >= 9:
                break
            async with connector.session() as session:
                await session.execute("schema_version_table")
                await session.execute_script(script)
                record = {"version": version, "name": name, "applied_at": start}
                await session.execute("record_version", record)
        async with connector.session() as session:  # today's upsert names later columns
            await session.execute_script(_OLD_ROOMS)
        await Reservations(connector).reconcile_room(
            "graph@x.org", lambda _s: Plan(), start, resynced=1
        )
        async with connector.session() as session:  # as the SQL before 0009 wrote them
            await session.execute_script(_OLD_ROWS)
        later = [version for version, _, _ in load_migrations(dialect) if version >= 9]
        assert await upgrade(connector) == later

        stored = {r.uid: r.original_start for r in await Reservations(connector).all()}
        assert stored == {"S": None, "R": start}
        tail = [(c["uid"], c["original_start"], c["change"]) for c in await _changes(connector)]
        assert tail[-2:] == [("S", start, "delete"), ("S", None, "upsert")]
        rooms = {r["mailbox"]: r for r in await Subscriptions(connector).rooms()}
        assert rooms["graph@x.org"]["needs_resync"]
        assert rooms["graph@x.org"]["resync_reason"] == "reservation key changed"
    finally:
        await connector.close()


_OLD_ROOMS = """
INSERT INTO room (mailbox, protocol, created_at)
VALUES ('ews@x.org', 'ews', '2026-12-01T09:00:00+00:00'),
       ('graph@x.org', 'graph', '2026-12-01T09:00:00+00:00');
"""

_OLD_ROWS = """
INSERT INTO reservation (mailbox, uid, original_start, item_id, item_type, start_at, end_at,
                         response_state, last_synced_at)
VALUES ('ews@x.org', 'S', '2026-12-01T09:00:00+00:00', 'ID-S', 'single',
        '2026-12-01T09:00:00+00:00', '2026-12-01T10:00:00+00:00', 'accepted',
        '2026-12-01T09:00:00+00:00'),
       ('ews@x.org', 'R', '2026-12-01T09:00:00+00:00', 'ID-R', 'occurrence',
        '2026-12-01T09:00:00+00:00', '2026-12-01T10:00:00+00:00', 'accepted',
        '2026-12-01T09:00:00+00:00');
"""


async def _changes(connector: Connector) -> list[Any]:
    return list(await Reservations(connector).changes())
