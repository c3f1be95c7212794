"""The storage interface every engine implements.

A `Connector` owns the connections to one database. Work happens in a `Session`, which is one
transaction: it commits when the `async with` block ends normally and rolls back otherwise.
`transaction(work)` is the same as a function: what the hot path uses, so each engine can run
the whole transaction the cheapest way it has (SQLite: on the event loop's thread, for short
writes such as the receiver's group commit).
Engines translate their own exceptions into `StorageError`: `StorageUnavailable` when the
database cannot write anything now, `RowRejected` for data it refused, so callers never see
sqlite3 or psycopg errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

Params = Mapping[str, Any]
Values = Sequence[Any]  # positional parameters, for statements written with them
Row = dict[str, Any]
T = TypeVar("T")


class Session(Protocol):
    async def execute(self, query: str, params: Params | None = None) -> int:
        """Run a named statement; returns the number of rows it changed."""

    async def execute_many(self, query: str, params: Sequence[Params] | Sequence[Values]) -> None:
        """Run a named statement once per parameter set (named, or positional if it uses them)."""

    async def execute_script(self, script: str) -> None:
        """Run a literal multi-statement script (migrations only)."""

    async def fetch_all(self, query: str, params: Params | None = None) -> list[Row]:
        """Rows of a named query, as dicts."""

    async def fetch_one(self, query: str, params: Params | None = None) -> Row | None:
        """The first row of a named query, or None."""


class Connector(Protocol):
    dialect: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def session(self) -> AbstractAsyncContextManager[Session]:
        """One transaction; durable once the block has exited without error."""

    async def transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """`work` in one transaction, durable when this returns. `work` must await nothing but
        the session it is given, and be short: SQLite runs it on the event loop's thread."""
