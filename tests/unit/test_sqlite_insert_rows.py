"""Positional INSERTs go to SQLite in multi-row statements: same rows, same order, same dedupe."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushsync.errors import StorageError
from pushsync.store.sqlite import SQLiteConnector, _values_head

INSERT = "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING"


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
