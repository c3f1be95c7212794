"""SQLite engine: the embedded default.

One connection, used from one dedicated thread, so the event loop never blocks on disk. The
database runs in WAL mode with synchronous=FULL: a transaction is on disk when COMMIT returns.
Several processes may share the file. Their write transactions queue on an flock()ed lock file
beside the database before BEGIN IMMEDIATE: the kernel wakes the next writer the moment the lock
is free, where SQLite's own busy handler would sleep 1, 2, 5, 10 … ms between polls (measured:
two receivers on one file fell from 3.9k to 2k requests/s with p99 near 1 s). The busy timeout
stays as the guard against writers that are not pushsync.
https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html#pragma_synchronous
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from itertools import chain
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import unquote, urlsplit

from pushsync.errors import ConfigError, RowRejected, StorageError, StorageUnavailable
from pushsync.store import sqlite_types
from pushsync.store.connector import Params, Row, Session, Values
from pushsync.store.queries import load_queries

T = TypeVar("T")


def storage_error(exc: sqlite3.Error) -> StorageError:
    """sqlite3's exception as ours. Data the database refuses is the rows' fault; a statement
    or binding it cannot use is ours, retried request by request; anything else (locked, I/O,
    disk full, a corrupt file, a table missing: OperationalError and DatabaseError) means this
    database cannot write now, whatever the rows."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
        return RowRejected(f"SQLite refused the rows: {exc}")
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return StorageError(f"SQLite: {exc}")
    return StorageUnavailable(f"SQLite: {exc}")


def sqlite_path(url: str) -> str:
    """The file of `sqlite:///relative/path`, `sqlite:////absolute/path` or `sqlite://:memory:`."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigError(f"not a sqlite URL: {url!r}")
    path = unquote(parts.path.removeprefix("/"))
    if not path:
        raise ConfigError(f"sqlite URL {url!r} names no file")
    return path


def require_folder(path: str) -> None:
    """The database's folder must exist: a mistyped path creates nothing, it is named."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ConfigError(f"SQLite database {path}: the folder {folder}/ does not exist")


class SQLiteConnector:
    dialect = "sqlite"

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = sqlite_path(url)
        self.busy_timeout_ms = busy_timeout_ms
        self.queries = load_queries(self.dialect)
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._lock_fd: int | None = None
        self._given_up: Future[None] | None = None  # a lock wait whose task was cancelled

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection = await self._run(self._connect)

    async def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._connection is not None:
            await self._run(self._connection.close)
            self._connection = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _connect(self) -> sqlite3.Connection:
        sqlite_types.install()
        if self.path != ":memory:":
            require_folder(self.path)
            self._lock_fd = os.open(self.path + ".writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
        connection = sqlite3.connect(
            self.path,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # only ever used from our one thread
            detect_types=sqlite3.PARSE_DECLTYPES,
        )
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        # Switching a new file to WAL needs an exclusive lock, and SQLite refuses it at once
        # ("database is locked") rather than waiting when another process is starting too.
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
        finally:
            self._unlock()
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        # A multi-row INSERT inside a transaction keeps a statement journal, a copy of every page
        # it changes, so that a failing row undoes only that statement. Past 64 KiB SQLite
        # spills it to a temporary file: as many page writes as the WAL itself, one syscall
        # each. In memory it is a memcpy, and a failed batch is rolled back whole anyway.
        connection.execute("PRAGMA temp_store = MEMORY")
        return connection

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StorageUnavailable("the SQLite connector is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SQLiteSession]:
        async with self._lock:
            connection = self._open_connection()
            await self._run(self._begin, connection)
            try:
                yield SQLiteSession(self, connection, self._run)
            except BaseException:
                await self._run(self._rollback, connection)
                raise
            await self._run(self._commit, connection)

    async def transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """Run `work` as one short write transaction on the event loop's own thread.

        This is the receiver's group commit. Only waiting for another process's writer lock
        goes to the SQLite thread; the statements and COMMIT run here. On the thread, every
        statement of a batch was a hand-over: the thread waited for the loop to give up the GIL
        and for a core, while holding the lock that the other receivers queue on. With the
        two-worker receiver that lock was held nearly all the time and the cores sat 20 % idle
        (docs/benchmarks.md, fifth round). Here the loop stops for the batch's SQL and the
        COMMIT's flush (~1-2 ms per group commit), while the other worker parses. `work` must
        await nothing but the session. Pushsync's writers all take the lock first; a program
        outside pushsync that writes makes BEGIN wait, and that wait goes to the thread too.
        """
        async with self._lock:
            connection = self._open_connection()
            await self._lock_writer()
            try:
                if not self._begin_at_once(connection):
                    await self._run(connection.execute, "BEGIN IMMEDIATE")
                try:
                    session = SQLiteSession(self, connection, _at_once)
                    result = _run_to_completion(cast(Coroutine[Any, Any, T], work(session)))
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise storage_error(exc) from exc
            finally:
                self._unlock()
            return result

    def _begin_at_once(self, connection: sqlite3.Connection) -> bool:
        """BEGIN IMMEDIATE if SQLite's write lock is free now; False if a writer outside
        pushsync holds it, rather than sitting on the event loop in SQLite's busy wait."""
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            return False
        finally:
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        return True

    async def _lock_writer(self) -> None:
        """Take the writers' lock: at once if it is free, else wait for it on the thread."""
        if self._lock_fd is None:
            return
        if self._given_up is not None:
            # A wait given up before may still be taking the lock on this same file, where a
            # LOCK_NB would succeed and then be undone by that wait letting go: let it finish.
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(self._given_up)
            self._given_up = None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if self._executor is None:
            raise StorageUnavailable("the SQLite connector is not open")
        wait = _LockWait(self._lock_fd)
        waiting = self._executor.submit(wait.run)
        try:
            await asyncio.wrap_future(waiting)
        except asyncio.CancelledError:
            wait.give_up()
            self._given_up = waiting
            raise

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StorageUnavailable("the SQLite connector is not open")
        return self._connection

    def _begin(self, connection: sqlite3.Connection) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._unlock()
            raise

    def _commit(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("COMMIT")
        except sqlite3.Error:
            self._rollback(connection)
            raise
        self._unlock()

    def _rollback(self, connection: sqlite3.Connection) -> None:
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)


class _LockWait:
    """Waiting for the writers' lock on the connector's thread, which the event loop may give
    up (its task cancelled): whichever side comes second lets the lock go, never both."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._guard = threading.Lock()
        self._given_up = False
        self._taken = False

    def run(self) -> None:  # on the thread
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        with self._guard:
            if self._given_up:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            else:
                self._taken = True

    def give_up(self) -> None:  # on the event loop
        with self._guard:
            self._given_up = True
            if self._taken:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class Call(Protocol):
    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


async def _at_once(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


def _run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (its session statements run at once)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("work inside SQLiteConnector.transaction awaited something else")


class SQLiteSession:
    def __init__(
        self, connector: SQLiteConnector, connection: sqlite3.Connection, call: Call
    ) -> None:
        self._connector = connector
        self._connection = connection
        self._call = call  # a trip to the SQLite thread, or a direct call when already on it

    def _sql(self, query: str) -> str:
        return self._connector.queries[query]

    async def execute(self, query: str, params: Params | None = None) -> int:
        sql = self._sql(query)
        cursor = await self._call(self._connection.execute, sql, params or {})
        return cursor.rowcount

    async def execute_many(self, query: str, params: Sequence[Params] | Sequence[Values]) -> None:
        sql = self._sql(query)
        if params and not isinstance(params[0], Mapping) and (head := _values_head(sql)):
            await self._call(_insert_rows, self._connection, head, params)
        else:
            await self._call(self._connection.executemany, sql, params)

    async def execute_script(self, script: str) -> None:
        def run() -> None:
            # executescript would COMMIT first; run statement by statement inside our transaction
            for statement in _split_script(script):
                self._connection.execute(statement)

        await self._call(run)

    async def fetch_all(self, query: str, params: Params | None = None) -> list[Row]:
        sql = self._sql(query)

        def run() -> list[Row]:
            return [dict(row) for row in self._connection.execute(sql, params or {})]

        return await self._call(run)

    async def fetch_one(self, query: str, params: Params | None = None) -> Row | None:
        rows = await self.fetch_all(query, params)
        return rows[0] if rows else None


# An INSERT with positional parameters goes in multi-row statements: executemany steps once
# per row, and pysqlite gives up the GIL and takes it back around every step, each time behind
# a busy event loop thread: the largest single cost of a receiver's request before this
# (docs/benchmarks.md). Statements hold a power of two of rows, at most 64 (64 x 22 parameters
# stay far below SQLite's 32766), so that a connection prepares and caches few of them: one
# statement per row count would keep dozens of large prepared statements per worker.
MAX_ROWS_PER_STATEMENT = 64
_VALUES = re.compile(r"\bVALUES\s*(\([?,\s]*\))", re.IGNORECASE)


@functools.lru_cache(maxsize=32)  # the same few INSERTs every commit: find the group once
def _values_head(sql: str) -> tuple[str, str, str] | None:
    """An INSERT's text before, in and after its one `VALUES (?, …)` group; None for others."""
    found = list(_VALUES.finditer(sql))
    if len(found) != 1:
        return None
    group = found[0]
    return sql[: group.start(1)], group.group(1), sql[group.end(1) :]


@functools.lru_cache(maxsize=16)
def _rows_statement(head: tuple[str, str, str], rows: int) -> str:
    """The statement with its VALUES group repeated for `rows` rows."""
    before, group, after = head
    return before + ", ".join([group] * rows) + after


def _insert_rows(
    connection: sqlite3.Connection,
    head: tuple[str, str, str],
    rows: Sequence[Values],
) -> None:
    start = 0
    while start < len(rows):
        count = min(MAX_ROWS_PER_STATEMENT, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start : start + count]
        width = head[1].count("?")
        if any(len(row) != width for row in chunk):
            raise sqlite3.ProgrammingError(f"rows of an INSERT of {width} columns differ in length")
        connection.execute(_rows_statement(head, count), list(chain.from_iterable(chunk)))
        start += count


def _split_script(script: str) -> list[str]:
    """Complete statements of a script, using SQLite's own notion of completeness."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in current.splitlines()
    ):
        raise ConfigError(f"incomplete SQL statement in migration: {current.strip()[:80]!r}")
    return statements
