"""PUSHSYNC_DATABASE_POOL_SIZE: the most PostgreSQL connections one process holds;
PUSHSYNC_DATABASE_BUSY_WAIT_SECONDS: how long a session waits while the process's own sessions
hold all of them."""

from __future__ import annotations

import asyncio
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

    assert postgres.connector_options() == {"max_size": 3, "busy_wait_s": 30.0}
    assert sqlite.connector_options() == {"busy_timeout_ms": 250}
    with pytest.raises(ConfigError, match="database_pool_size"):
        load_settings(database_pool_size=0)


@pytest.mark.parametrize("size", [2, 3])
async def test_a_process_holds_at_most_pool_size_connections(
    postgres_schema_url: str, size: int
) -> None:
    settings = Settings(database_url=postgres_schema_url, database_pool_size=size)
    options = settings.connector_options() | {"busy_wait_s": 0.5}
    connector = connect(settings.database_url, **options, timeout_s=0.5)
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


async def test_a_session_waits_its_turn_while_the_process_holds_every_connection(
    postgres_schema_url: str,
) -> None:
    """The pool's 2 s wait says the server is away; a pool whose connections all work for this
    process's own sessions is busy, not away: the next session waits for one to come back."""
    connector = connect(postgres_schema_url, max_size=1, timeout_s=0.3, busy_wait_s=10.0)
    await connector.open()
    try:
        released = asyncio.Event()

        async def hold() -> None:
            async with connector.session() as session:
                await session.execute_script("SELECT 1")
                await asyncio.sleep(1.0)  # three of the pool's own waits
            released.set()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.1)
        assert await _one_more(connector) == 1  # not StorageUnavailable after 0.3 s
        assert released.is_set()
        await holder
    finally:
        await connector.close()


async def test_a_busy_pool_still_fails_once_busy_wait_is_over(postgres_schema_url: str) -> None:
    connector = connect(postgres_schema_url, max_size=1, timeout_s=0.3, busy_wait_s=0.6)
    await connector.open()
    try:
        async with connector.session() as session:
            await session.execute_script("SELECT 1")
            with pytest.raises(StorageError, match="all 1 connections in use"):
                await _one_more(connector)
    finally:
        await connector.close()
