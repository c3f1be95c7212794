"""Migrations: a database upgraded through every version equals one created fresh."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pushsync.store import connect
from pushsync.store.migrations import applied_versions, latest_version, upgrade
from pushsync.store.queries import load_migrations
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
    assert str(list(range(1, latest + 1))) in pushsync("db", "status")
