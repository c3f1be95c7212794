"""What every SQLite connection of pushsync is set to: durable commits, and no temporary files
on the receiver's write path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pushsync.store.connector import Connector, Session
from pushsync.store.inbox import insert_values, utc_text
from pushsync.store.sqlite import SQLiteConnector
from tests.integration.helpers import T0, add_rows, event, query


@pytest.fixture
def connector(sqlite_connector: Connector) -> SQLiteConnector:
    assert isinstance(sqlite_connector, SQLiteConnector)
    return sqlite_connector


async def test_commits_are_durable_in_wal_mode(connector: SQLiteConnector) -> None:
    url = f"sqlite:///{connector.path}"
    assert query(url, "PRAGMA journal_mode") == [{"journal_mode": "wal"}]  # kept in the file
    # synchronous is the connection's own setting, which only that connection can report
    connection = connector._open_connection()
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: flush at COMMIT


def _temporary_files() -> list[str]:
    """Files this process holds open whose names SQLite gives its temporary files."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since listing
            continue
        if "etilqs_" in target:
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
async def test_a_large_batch_keeps_its_statement_journal_in_memory(
    connector: SQLiteConnector,
) -> None:
    """A multi-row INSERT inside a transaction journals every page it changes that was there
    before; past 64 KiB SQLite writes that journal to a temporary file unless temp_store is
    MEMORY. Rows of one event time fall on random leaves of the redelivery index, as a busy
    second's do, so a batch after the first changes dozens of existing pages."""
    await add_rows(connector, [event(n) for n in range(3000)])
    rows = [insert_values(event(n), utc_text(T0)) for n in range(3000, 3600)]
    seen: list[str] = []

    async def work(session: Session) -> None:
        await session.execute_many("insert_notification", rows)
        seen.extend(_temporary_files())  # still inside the transaction: the journal is open

    await connector.transaction(work)
    assert seen == []
    count = query(f"sqlite:///{connector.path}", "SELECT count(*) AS n FROM sync_notification")
    assert count == [{"n": 3600}]
