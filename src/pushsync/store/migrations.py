"""Versioned schema migrations, one folder of numbered scripts per dialect.

`upgrade` applies, each in its own transaction, every script newer than the database. Concurrent
upgraders (several receivers starting at once) serialise on a lock taken inside the transaction,
then re-read the applied versions, so each script runs exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pushsync.store.connector import Connector
from pushsync.store.queries import load_migrations


async def applied_versions(connector: Connector) -> list[int]:
    async with connector.session() as session:
        await session.execute("schema_version_table")
        return [row["version"] for row in await session.fetch_all("applied_versions")]


async def upgrade(connector: Connector) -> list[int]:
    """Apply every pending migration; returns the versions applied now."""
    applied_now = []
    for version, name, script in load_migrations(connector.dialect):
        async with connector.session() as session:
            await session.execute("migrations_lock")
            await session.execute("schema_version_table")
            done = {row["version"] for row in await session.fetch_all("applied_versions")}
            if version in done:
                continue
            await session.execute_script(script)
            await session.execute(
                "record_version",
                {"version": version, "name": name, "applied_at": datetime.now(UTC)},
            )
            applied_now.append(version)
    return applied_now


def latest_version(dialect: str) -> int:
    migrations = load_migrations(dialect)
    return migrations[-1][0] if migrations else 0
