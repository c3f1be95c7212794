"""PostgreSQL engine: what a user grows into (several receivers and workers, one database).

psycopg 3 with an async connection pool. A session is one transaction on one pooled connection;
COMMIT returns once PostgreSQL has flushed it (synchronous_commit=on, the server default), so
acknowledging after the session has the same meaning as on SQLite.
https://www.psycopg.org/psycopg3/docs/advanced/pool.html
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from pushsync.errors import RowRejected, StorageError
from pushsync.store.connector import Params, Row
from pushsync.store.queries import load_queries


class PostgreSQLConnector:
    dialect = "postgresql"

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 8, timeout_s: float = 5.0
    ) -> None:
        self.url = url.replace("postgres://", "postgresql://", 1)
        self.queries = load_queries(self.dialect)
        self._pool = AsyncConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": False},
            check=AsyncConnectionPool.check_connection,
        )

    async def open(self) -> None:
        try:
            await self._pool.open(wait=False)
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PostgreSQLSession]:
        try:
            async with self._pool.connection() as connection, connection.transaction():
                yield PostgreSQLSession(self, connection)
        except psycopg.errors.IntegrityError as exc:
            raise RowRejected(f"PostgreSQL refused the rows: {exc}") from exc
        except (psycopg.Error, TimeoutError) as exc:
            # the pool raises PoolTimeout (a psycopg.OperationalError) when the server is down
            raise StorageError(f"PostgreSQL: {exc}") from exc


class PostgreSQLSession:
    def __init__(self, connector: PostgreSQLConnector, connection: psycopg.AsyncConnection[Any]):
        self._queries = connector.queries
        self._connection = connection

    async def execute(self, query: str, params: Params | None = None) -> int:
        cursor = await self._connection.execute(self._queries[query], params)
        return cursor.rowcount

    async def execute_many(self, query: str, params: Sequence[Params]) -> None:
        async with self._connection.cursor() as cursor:
            await cursor.executemany(self._queries[query], params)

    async def execute_script(self, script: str) -> None:
        await self._connection.execute(script.encode())

    async def fetch_all(self, query: str, params: Params | None = None) -> list[Row]:
        cursor = await self._connection.execute(self._queries[query], params)
        return list(await cursor.fetchall())

    async def fetch_one(self, query: str, params: Params | None = None) -> Row | None:
        cursor = await self._connection.execute(self._queries[query], params)
        row: Row | None = await cursor.fetchone()
        return row
