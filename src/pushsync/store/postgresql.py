"""PostgreSQL engine: what a user grows into (several receivers and workers, one database).

psycopg 3 with an async connection pool. A session is one transaction on one pooled connection;
COMMIT returns once PostgreSQL has flushed it (synchronous_commit=on, the server default), so
acknowledging after the session has the same meaning as on SQLite.
https://www.psycopg.org/psycopg3/docs/advanced/pool.html

Outages: a session that cannot get a working connection within `timeout_s` raises
StorageUnavailable (the receiver answers 503). The pool gives up a reconnection attempt after the
same time instead of psycopg's five minutes of growing back-off, so the next session after the
database returns starts a fresh attempt and the service recovers within seconds of the server,
not minutes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pushsync.errors import ConfigError, RowRejected, StorageError, StorageUnavailable
from pushsync.store.connector import Params, Row, Session, Values
from pushsync.store.queries import load_queries

T = TypeVar("T")

# libpq settings used unless the URL names its own: fail a connect or a write on a dead network
# path in bounded time, rather than after the kernel's TCP retransmission limit (~15 minutes).
_LIBPQ_DEFAULTS = {
    "connect_timeout": "3",
    "tcp_user_timeout": "10000",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "application_name": "pushsync",
}


def postgresql_conninfo(url: str) -> str:
    """The connection string for `url`, with pushsync's defaults for what it leaves out."""
    url = url.replace("postgres://", "postgresql://", 1)
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"database URL: {exc}") from None
    missing = {k: v for k, v in _LIBPQ_DEFAULTS.items() if k not in given}
    return make_conninfo(url, **missing)


def one_line(message: str) -> str:
    """libpq's messages span lines ("connection failed: …\nFATAL:  …"): one line for a log."""
    return " ".join(message.split())


class _LastFailure:
    """The server's own reason for the pool's last failed connection attempt, kept so that a
    session that times out waiting for the pool names it ("database … does not exist")."""

    message: str | None = None


def _recording_connection(failure: _LastFailure) -> type[psycopg.AsyncConnection[Any]]:
    class RecordingConnection(psycopg.AsyncConnection[Any]):
        @classmethod
        async def connect(cls, *args: Any, **kwargs: Any) -> RecordingConnection:
            try:
                connection = await super().connect(*args, **kwargs)
            except psycopg.Error as exc:
                failure.message = one_line(str(exc))
                raise
            failure.message = None
            return connection

    return RecordingConnection


# SQLSTATE classes that say the server cannot do any work now, whatever the rows: connection
# exception, invalid transaction state, transaction rollback, syntax error or access rule
# violation (a schema that is not there), insufficient resources, object not in prerequisite
# state, operator intervention, system error, internal error.
# https://www.postgresql.org/docs/current/errcodes-appendix.html
_UNAVAILABLE_CLASSES = frozenset({"08", "25", "40", "42", "53", "55", "57", "58", "XX"})


def storage_error(exc: psycopg.Error) -> StorageError:
    """psycopg's exception as ours: refused data (class 22 data exception, 23 integrity, e.g. a
    NUL byte in text) is the rows' fault; OperationalError and InterfaceError (no connection,
    PoolTimeout within timeout_s) and the classes above mean the server is down or unusable; the
    rest (a client-side ProgrammingError, a trigger's own error) is retried request by request."""
    if isinstance(exc, psycopg.errors.IntegrityError | psycopg.errors.DataError):
        return RowRejected(f"PostgreSQL refused the rows: {exc}")
    unusable = (exc.sqlstate or "")[:2] in _UNAVAILABLE_CLASSES
    if unusable or isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StorageUnavailable(f"PostgreSQL: {one_line(str(exc))}")
    return StorageError(f"PostgreSQL: {one_line(str(exc))}")


class PostgreSQLConnector:
    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        timeout_s: float = 2.0,
        busy_wait_s: float = 30.0,
    ) -> None:
        self.conninfo = postgresql_conninfo(url)
        self.queries = load_queries(self.dialect)
        self.column_queries = frozenset(
            name for name, sql in self.queries.items() if _UNNEST.search(sql)
        )
        self._last_failure = _LastFailure()
        self._max_size, self._timeout_s, self._busy_wait_s = max_size, timeout_s, busy_wait_s
        self._pool = AsyncConnectionPool(
            self.conninfo,
            connection_class=_recording_connection(self._last_failure),
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            reconnect_timeout=timeout_s,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": False},
            check=AsyncConnectionPool.check_connection,
        )

    async def open(self) -> None:
        try:
            await self._pool.open(wait=False)
        except psycopg.Error as exc:
            raise StorageUnavailable(f"PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PostgreSQLSession]:
        try:
            async with self._connection() as connection, connection.transaction():
                yield PostgreSQLSession(self, connection)
        except psycopg.Error as exc:
            raise storage_error(exc) from exc

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection. None within timeout_s means the server is away, unless each
        connection of the full pool is lent to this process's own sessions, the last attempt
        to connect having worked: then the session waits its turn, up to busy_wait_s (at
        50,000 rooms a manager's 64 Subscribe lanes and a worker's 40 resyncs share 8
        connections on a loaded box; an outage declared there failed a whole round)."""
        waited = 0.0
        while True:
            try:
                connection = await self._pool.getconn()
                break
            except PoolTimeout as exc:
                waited += self._timeout_s
                busy = self._busy()
                if not busy or waited >= self._busy_wait_s:
                    # say why the pool's attempts failed, or that every connection was lent
                    cause = self._last_failure.message or str(exc)
                    if busy:
                        cause = f"all {self._max_size} connections in use for {waited:g} s"
                    raise StorageUnavailable(f"PostgreSQL: {cause}") from exc
        try:
            yield connection
        finally:
            await self._pool.putconn(connection)

    def _busy(self) -> bool:
        """Whether every connection the pool may hold is open and lent out."""
        stats = self._pool.get_stats()
        full = stats.get("pool_size", 0) >= self._max_size
        return full and stats.get("pool_available", 0) == 0 and self._last_failure.message is None

    async def transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        async with self.session() as session:
            return await work(session)


class PostgreSQLSession:
    def __init__(self, connector: PostgreSQLConnector, connection: psycopg.AsyncConnection[Any]):
        self._queries = connector.queries
        self._column_queries = connector.column_queries
        self._connection = connection

    async def execute(self, query: str, params: Params | None = None) -> int:
        cursor = await self._connection.execute(self._queries[query], params)
        return cursor.rowcount

    async def execute_many(self, query: str, params: Sequence[Params] | Sequence[Values]) -> None:
        sql = self._queries[query]
        if params and query in self._column_queries and not isinstance(params[0], Mapping):
            # one execution: the rows as one array per column (see insert_notification)
            columns = [list(column) for column in zip(*cast(Sequence[Values], params), strict=True)]
            await self._connection.execute(sql, columns)
            return
        async with self._connection.cursor() as cursor:
            await cursor.executemany(sql, params)

    async def execute_script(self, script: str) -> None:
        # without parameters psycopg sends the simple query protocol: several statements at once
        await self._connection.execute(script.encode())

    async def fetch_all(self, query: str, params: Params | None = None) -> list[Row]:
        cursor = await self._connection.execute(self._queries[query], params)
        return list(await cursor.fetchall())

    async def fetch_one(self, query: str, params: Params | None = None) -> Row | None:
        cursor = await self._connection.execute(self._queries[query], params)
        row: Row | None = await cursor.fetchone()
        return row


# A statement that reads its rows `FROM unnest(…)` takes one array per column: execute_many sends
# all its parameter sets in one execution, where executemany would run the statement per row.
_UNNEST = re.compile(r"\bFROM\s+unnest\s*\(", re.IGNORECASE)
