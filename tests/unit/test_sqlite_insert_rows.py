"""Positional INSERTs go to SQLite in multi-row statements: same rows, same order, same dedupe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pushsync.errors import StorageError
from pushsync.store import sqlite as sqlite_store
from pushsync.store.sqlite import SQLiteConnector, _values_head

INSERT = "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING"


@pytest.fixture(autouse=True)
def no_null_patterns_yet() -> None:
    """Each test starts with no NULL pattern learnt (they are kept per INSERT text)."""
    sqlite_store._patterns.clear()
    sqlite_store._bound_columns.cache_clear()


@pytest.fixture
async def connector(tmp_path: Path) -> SQLiteConnector:
    connector = SQLiteConnector(f"sqlite:///{tmp_path / 'rows.db'}")
    await connector.open()
    connector.queries["insert_t"] = INSERT
    async with connector.session() as session:
        await session.execute_script("CREATE TABLE t (k INTEGER UNIQUE, v TEXT);")
    return connector


@pytest.mark.parametrize("count", [1, 2, 3, 63, 64, 65, 200])
async def test_every_row_lands_in_order(connector: SQLiteConnector, count: int) -> None:
    rows = [(n, f"row {n}") for n in range(count)]
    async with connector.session() as session:
        await session.execute_many("insert_t", rows)
    assert await _stored(connector) == rows
    await connector.close()


async def test_a_key_twice_in_one_batch_is_stored_once(connector: SQLiteConnector) -> None:
    async with connector.session() as session:
        await session.execute_many("insert_t", [(1, "first"), (2, "two"), (1, "again")])
    assert await _stored(connector) == [(1, "first"), (2, "two")]
    await connector.close()


@pytest.mark.parametrize("count", [1, 2, 5, 64, 70])
async def test_nulls_land_where_they_were_given(connector: SQLiteConnector, count: int) -> None:
    # Column v is NULL in some rows only, w in every row but the last: each statement binds
    # what any of its rows fills and writes NULL for the rest, never shifting a value.
    rows = [
        (n, None if n % 3 else f"v{n}", f"w{n}" if n == count - 1 else None) for n in range(count)
    ]
    await _with_three_columns(connector)
    async with connector.session() as session:
        await session.execute_many("insert_t3", rows)
    assert await _stored_three(connector) == rows
    await connector.close()


async def test_a_column_no_row_fills_is_not_bound(
    connector: SQLiteConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pysqlite's per-None adapter lookup is what this saves; SQLite's trace shows bound values
    # expanded, so the statement text is taken where it is made.
    statements: list[str] = []

    def recorded(*args: Any) -> str:
        statements.append(make_statement(*args))
        return statements[-1]

    make_statement = sqlite_store._rows_statement
    monkeypatch.setattr(sqlite_store, "_rows_statement", recorded)
    await _with_three_columns(connector)
    async with connector.session() as session:
        await session.execute_many("insert_t3", [(1, None, None), (2, "two", None)])
    assert statements == ["INSERT INTO t3 (k, v, w) VALUES (?, ?, NULL), (?, ?, NULL)"]
    assert await _stored_three(connector) == [(1, None, None), (2, "two", None)]
    await connector.close()


async def test_many_null_patterns_share_a_few_statements(
    connector: SQLiteConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every pattern of four nullable columns, a statement each: each is stored as given, and
    # the statements bind columns in no more than the allowed patterns, plus "all".
    patterns: set[tuple[bool, ...]] = set()

    def recorded(head: Any, rows: int, bound: tuple[bool, ...]) -> str:
        patterns.add(bound)
        return make_statement(head, rows, bound)

    make_statement = sqlite_store._rows_statement
    monkeypatch.setattr(sqlite_store, "_rows_statement", recorded)
    connector.queries["insert_t5"] = "INSERT INTO t5 (k, a, b, c, d) VALUES (?, ?, ?, ?, ?)"
    rows = [
        (n, *(f"{n}{column}" if n >> i & 1 else None for i, column in enumerate("abcd")))
        for n in range(16)
    ]
    async with connector.session() as session:
        await session.execute_script("CREATE TABLE t5 (k INTEGER, a, b, c, d);")
        for row in rows:
            await session.execute_many("insert_t5", [row])
    connector.queries["all_t5"] = "SELECT k, a, b, c, d FROM t5 ORDER BY rowid"
    async with connector.session() as session:
        stored = [tuple(row.values()) for row in await session.fetch_all("all_t5")]
    assert stored == rows
    assert len(patterns) <= sqlite_store._NULL_PATTERNS + 1 < len(rows)  # not one per pattern
    await connector.close()


async def test_rows_of_different_lengths_are_a_storage_error(connector: SQLiteConnector) -> None:
    await _with_three_columns(connector)
    with pytest.raises(StorageError):
        async with connector.session() as session:
            await session.execute_many("insert_t3", [(1, "a", "x"), (2,)])
    assert await _stored_three(connector) == []
    await connector.close()


def test_only_a_single_values_group_is_repeated() -> None:
    assert _values_head(INSERT) is not None
    assert _values_head("UPDATE t SET v = ? WHERE k = ?") is None
    assert _values_head("INSERT INTO t (k, v) VALUES (:k, :v)") is None


async def _stored(connector: SQLiteConnector) -> list[tuple[int, str]]:
    connector.queries["all_t"] = "SELECT k, v FROM t ORDER BY rowid"
    async with connector.session() as session:
        rows = await session.fetch_all("all_t")
    return [(row["k"], row["v"]) for row in rows]


async def _with_three_columns(connector: SQLiteConnector) -> None:
    connector.queries["insert_t3"] = "INSERT INTO t3 (k, v, w) VALUES (?, ?, ?)"
    async with connector.session() as session:
        await session.execute_script("CREATE TABLE t3 (k INTEGER, v TEXT, w TEXT);")


async def _stored_three(connector: SQLiteConnector) -> list[tuple[int, str | None, str | None]]:
    connector.queries["all_t3"] = "SELECT k, v, w FROM t3 ORDER BY rowid"
    async with connector.session() as session:
        rows = await session.fetch_all("all_t3")
    return [(row["k"], row["v"], row["w"]) for row in rows]
