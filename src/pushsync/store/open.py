"""Where a process gets its store: `connect` picks the engine from the URL, `open_store` opens
it (and migrates when the settings say so) for the life of the process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pushsync.errors import ConfigError
from pushsync.settings import DEFAULT_DATABASE_URL, Settings
from pushsync.store.connector import Connector
from pushsync.store.migrations import upgrade
from pushsync.store.sqlite import SQLiteConnector, sqlite_path


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
    make_default_folder(settings.database_url)
    connector = connect(settings.database_url, **settings.connector_options())
    await connector.open()
    try:
        if settings.auto_migrate if migrate is None else migrate:
            await upgrade(connector)
        yield connector
    finally:
        await connector.close()


def make_default_folder(url: str) -> None:
    """The default database's folder (`var/`) is made on first use, so that `pushsync serve`
    runs out of the box; a folder the operator named and that is missing stays an error (a
    mistyped path creates nothing)."""
    if url == DEFAULT_DATABASE_URL:
        Path(sqlite_path(url)).parent.mkdir(parents=True, exist_ok=True)
