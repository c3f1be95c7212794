"""Where a process gets its store: `connect` picks the engine from the URL, `open_store` opens
it (and migrates when the settings say so) for the life of the process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pushsync.errors import ConfigError
from pushsync.settings import Settings
from pushsync.store.connector import Connector
from pushsync.store.migrations import upgrade
from pushsync.store.sqlite import SQLiteConnector


def connect(url: str, **options: Any) -> Connector:
    """A connector for `sqlite:///path` or `postgresql://…` (not yet opened)."""
    if url.startswith("sqlite:"):
        return SQLiteConnector(url, **options)
    if url.startswith(("postgresql:", "postgres:")):
        # on demand: an SQLite installation does not pay for importing psycopg
        from pushsync.store.postgresql import PostgreSQLConnector

        return PostgreSQLConnector(url, **options)
    raise ConfigError(f"database URL {url!r}: use sqlite:///path or postgresql://…")


@contextlib.asynccontextmanager
async def open_store(
    settings: Settings, *, migrate: bool | None = None
) -> AsyncIterator[Connector]:
    """The store, open until the block ends; migrated first if `migrate` (default: the
    `auto_migrate` setting)."""
    connector = connect(settings.database_url, **settings.connector_options())
    await connector.open()
    try:
        if settings.auto_migrate if migrate is None else migrate:
            await upgrade(connector)
        yield connector
    finally:
        await connector.close()
