"""Small helpers for the integration tests: rows in, rows out, a clock the test moves."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pushsync.model.notification import Notification
from pushsync.store import Connector
from pushsync.store.inbox import insert_values, utc_text
from pushsync.store.sqlite import sqlite_path

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    """The time a queue sees; tests move it instead of sleeping."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def event(n: int, subscription: str = "SUB-1", watermark: str | None = "") -> Notification:
    return Notification(
        protocol="ews",
        subscription_id=subscription,
        event_type="Modified",
        watermark=f"WM-{subscription}-{n}" if watermark == "" else watermark,
        item_id=f"ITEM-{n}",
        event_time=T0,
    )


async def add_rows(connector: Connector, rows: list[Notification]) -> None:
    params = [insert_values(row, utc_text(T0)) for row in rows]
    async with connector.session() as session:
        await session.execute_many("insert_notification", params)


def query(url: str, statement: str) -> list[dict[str, Any]]:
    """Run literal SQL with the engine's own driver, outside pushsync: the independent view."""
    if url.startswith("sqlite:"):
        connection = sqlite3.connect(sqlite_path(url))
        connection.row_factory = sqlite3.Row
        try:
            with connection:
                return [dict(row) for row in connection.execute(statement)]
        finally:
            connection.close()
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as pg:
        cursor = pg.execute(statement.encode())
        return list(cursor.fetchall()) if cursor.description else []
