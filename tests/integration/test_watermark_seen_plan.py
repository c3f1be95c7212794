"""watermark_seen's first two searches seek the time-led redelivery index (migration 0008).

The results cannot tell the searches apart (the last one, over the whole index, finds every
stored key), so this reads the plans the engines choose: a change to the index or the query
that turned a seek into a scan of the table would pass every other test and cost the worker.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import psycopg

from pushsync.store import connect
from pushsync.store.migrations import upgrade
from pushsync.store.queries import load_queries
from tests.integration.helpers import T0


def _parts(sql: str) -> list[str]:
    """The three searches of the statement, each as a statement of its own."""
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    return [part.strip().removesuffix("LIMIT 1;").strip() for part in body.split("UNION ALL")]


async def _migrate(url: str) -> None:
    connector = connect(url)
    await connector.open()
    try:
        await upgrade(connector)
    finally:
        await connector.close()


def test_sqlite_seeks_the_untimed_key_and_the_window(tmp_path: Path) -> None:
    database = tmp_path / "plan.db"
    asyncio.run(_migrate(f"sqlite:///{database}"))
    params = {"event_key": b"k" * 16, "since": "2026-11-24T11:58:00+00:00", "until": "2026"}
    untimed, window, anywhere = _parts(load_queries("sqlite")["watermark_seen"])

    with sqlite3.connect(database) as db:

        def plan(sql: str) -> str:
            return " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))

        assert "SEARCH sync_notification USING INDEX sync_notification_event_key" in plan(untimed)
        assert "event_key=?" in plan(untimed)
        assert "SEARCH sync_notification USING INDEX sync_notification_event_key" in plan(window)
        assert "COVERING INDEX sync_notification_event_key" in plan(anywhere)


def test_postgresql_seeks_the_untimed_key_and_the_window(postgres_schema_url: str) -> None:
    asyncio.run(_migrate(postgres_schema_url))
    params = {"event_key": b"k" * 16, "since": T0 - timedelta(minutes=2), "until": T0}
    untimed, window, _ = _parts(load_queries("postgresql")["watermark_seen"])

    with psycopg.connect(postgres_schema_url) as db:
        db.execute("SET enable_seqscan = off")  # an empty table: make the choice the index's

        def plan(sql: str) -> str:
            rows = db.execute(f"EXPLAIN {sql}", params).fetchall()
            return " ".join(row[0] for row in rows)

        for sql in (untimed, window):
            assert "Index" in plan(sql) and "sync_notification_event_key" in plan(sql)
            assert "Index Cond" in plan(sql) and "event_key" in plan(sql)
