"""A real `pushsync serve` on a migrated database of either engine, SendNotification bodies
built from parts, and the rows the table holds read back with the engine's own driver."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from pushsync.store import connect
from pushsync.store.migrations import upgrade
from tests.integration.conftest import ENGINES, with_search_path
from tests.integration.helpers import query
from tests.integration.receiver import EWS_HEADERS, EWS_PATH, Receiver

__all__ = [
    "EWS_HEADERS",
    "EWS_PATH",
    "envelope",
    "last_id",
    "migrate",
    "running_receiver",
    "stored_since",
]

STORED = (
    "id, subscription_id, event_type, watermark, previous_watermark, more_events, event_time, "
    "item_id, item_change_key, folder_id, folder_change_key, parent_folder_id, "
    "parent_folder_change_key, old_item_id, old_folder_id, old_parent_folder_id, unread_count, "
    "response_code"
)


def envelope(notification: str) -> bytes:
    """One Success response message around a Notification element's content."""
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<m:SendNotification xmlns:m="http://schemas.microsoft.com/exchange/services/2006/'
        'messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        '<m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass="Success">'
        f"<m:ResponseCode>NoError</m:ResponseCode><m:Notification>{notification}"
        "</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages>"
        "</m:SendNotification></soap:Body></soap:Envelope>"
    ).encode()


async def _migrate(url: str) -> None:
    connector = connect(url)
    await connector.open()
    try:
        await upgrade(connector)
    finally:
        await connector.close()


@contextmanager
def running_receiver(database_url: str, log_dir: Path) -> Iterator[Receiver]:
    """A receiver on `database_url`, migrated first (the tests may add to the schema)."""
    migrate(database_url)
    receiver = Receiver(database_url, log_dir)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def migrate(database_url: str) -> None:
    asyncio.run(_migrate(database_url))


@dataclass(frozen=True)
class Engine:
    """One engine's database and the receiver in front of it."""

    name: str
    url: str
    receiver: Receiver

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(
            self.receiver.url + EWS_PATH, content=body, headers=EWS_HEADERS, timeout=30
        )


@pytest.fixture(scope="module", params=ENGINES)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A receiver per engine for a whole module: starting one takes seconds on a busy machine,
    and each test reads only the rows it added (`last_id`, `stored_since`)."""
    log_dir = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        with running_receiver(f"sqlite:///{log_dir}/pushsync.db", log_dir) as receiver:
            yield Engine("sqlite", f"sqlite:///{log_dir}/pushsync.db", receiver)
        return
    admin_url = str(request.getfixturevalue("postgres_url"))
    name = f"pushsync_test_{uuid.uuid4().hex[:12]}"
    schema = sql.Identifier(name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    url = with_search_path(admin_url, name)
    try:
        with running_receiver(url, log_dir) as receiver:
            yield Engine("postgresql", url, receiver)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


def last_id(database_url: str) -> int:
    rows = query(database_url, "SELECT max(id) AS last FROM sync_notification")
    return int(rows[0]["last"] or 0)


def stored_since(database_url: str, after: int) -> list[dict[str, Any]]:
    """Rows added after id `after`, in order, with SQLite's raw values as psycopg's types."""
    statement = f"SELECT {STORED} FROM sync_notification WHERE id > {int(after)} ORDER BY id"
    return [_same_types(row) for row in query(database_url, statement)]


def _same_types(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    del out["id"]
    if isinstance(out["event_time"], str):
        out["event_time"] = datetime.fromisoformat(out["event_time"])
    if isinstance(out["more_events"], int) and not isinstance(out["more_events"], bool):
        out["more_events"] = bool(out["more_events"])
    return out
