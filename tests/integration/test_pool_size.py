"""PUSHSYNC_DATABASE_POOL_SIZE: the most PostgreSQL connections one process holds."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from pushsync.errors import ConfigError, StorageError
from pushsync.settings import Settings, load_settings
from pushsync.store import Connector, connect

pytestmark = pytest.mark.postgres


def test_each_engine_gets_its_own_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHSYNC_DATABASE_POOL_SIZE", "3")
    postgres = Settings(database_url="postgresql://u@db/rooms")
    sqlite = Settings(database_url="sqlite:///x.db", sqlite_busy_timeout_ms=250)

    assert postgres.connector_options() == {"max_size": 3}
    assert sqlite.connector_options() == {"busy_timeout_ms": 250}
    with pytest.raises(ConfigError, match="database_pool_size"):
        load_settings(database_pool_size=0)


@pytest.mark.parametrize("size", [2, 3])
async def test_a_process_holds_at_most_pool_size_connections(
    postgres_schema_url: str, size: int
) -> None:
    settings = Settings(database_url=postgres_schema_url, database_pool_size=size)
    connector = connect(settings.database_url, **settings.connector_options(), timeout_s=0.5)
    await connector.open()
    try:
        async with AsyncExitStack() as held:
            for _ in range(2):  # two sessions, each on a connection of its own, kept open
                await held.enter_async_context(connector.session())
            third = _one_more(connector)
            if size == 2:
                with pytest.raises(StorageError):  # the pool is full: no third connection
                    await third
            else:
                assert await third == 1
    finally:
        await connector.close()


async def _one_more(connector: Connector) -> int:
    async with connector.session() as session:  # a session holds its connection throughout
        await session.execute_script("SELECT 1")
        return 1
