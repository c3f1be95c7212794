"""One group-commit batch of rows, written the way each engine writes it fastest (SQLite:
multi-row VALUES statements; PostgreSQL: one INSERT … SELECT FROM unnest of one array per column)
stores the same rows, in order, once per redelivery key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pushsync.model.notification import Notification, UnknownSubscriptions
from pushsync.store import Connector, connect
from pushsync.store.inbox import Inbox, Verdict
from pushsync.store.migrations import upgrade
from tests.integration.helpers import T0, add_rows, event, query

COLUMNS = (
    "received_at, protocol, subscription_id, event_type, watermark, previous_watermark, "
    "more_events, event_time, item_id, item_change_key, folder_id, folder_change_key, "
    "parent_folder_id, parent_folder_change_key, old_item_id, old_folder_id, "
    "old_parent_folder_id, unread_count, response_code, resource, remote_addr, event_key, state"
)


def full(n: int) -> Notification:
    """An EWS row with every column set, the unusual values included."""
    return Notification(
        protocol="ews",
        subscription_id='SUB-é,{"x"}',  # characters an array literal would have to quote
        event_type="Moved",
        watermark=f"WM-{n}",
        previous_watermark="WM-0 NULL",
        more_events=n % 2 == 0,
        event_time=T0 + timedelta(microseconds=n),
        item_id=f"ITEM-{n}",
        item_change_key="CK\\1",
        folder_id="F",
        folder_change_key="FCK",
        parent_folder_id="P",
        parent_folder_change_key="PCK",
        old_item_id="OLD-I",
        old_folder_id="OLD-F",
        old_parent_folder_id="OLD-P",
        unread_count=2**31 - 1 if n == 1 else n,
        response_code="NoError",
        resource=None,
        remote_addr="10.0.0.7",
    )


def graph(n: int) -> Notification:
    """A Graph row without an etag (item_change_key): no redelivery key, never a conflict."""
    return Notification(
        protocol="graph",
        subscription_id="G-SUB",
        event_type="updated",
        resource=f"Users/room/Events/{n}",
        event_time=None,
        remote_addr=None,
    )


@pytest.fixture
async def engines(tmp_path: Path, postgres_schema_url: str) -> AsyncIterator[list[Connector]]:
    connectors = [connect(f"sqlite:///{tmp_path}/pushsync.db"), connect(postgres_schema_url)]
    for connector in connectors:
        await connector.open()
        await upgrade(connector)
    yield connectors
    for connector in connectors:
        await connector.close()


def stored(url: str) -> list[dict[str, Any]]:
    return [
        _same_types(row)
        for row in query(url, f"SELECT {COLUMNS} FROM sync_notification ORDER BY id")
    ]


@pytest.mark.postgres
async def test_both_engines_store_identical_rows(
    engines: list[Connector], tmp_path: Path, postgres_schema_url: str
) -> None:
    rows = [full(1), graph(1), full(2), event(3), graph(1), full(4)]
    for connector in engines:
        await add_rows(connector, rows)

    sqlite_rows = stored(f"sqlite:///{tmp_path}/pushsync.db")
    assert sqlite_rows == stored(postgres_schema_url)
    assert [row["watermark"] for row in sqlite_rows] == [
        "WM-1",
        None,
        "WM-2",
        "WM-SUB-1-3",
        None,
        "WM-4",
    ]
    assert sqlite_rows[0]["unread_count"] == 2**31 - 1
    assert sqlite_rows[0]["subscription_id"] == 'SUB-é,{"x"}'


@pytest.mark.parametrize("count", [1, 2, 65, 300])
async def test_every_row_of_a_batch_lands_in_order(
    connector: Connector, database_url: str, count: int
) -> None:
    await add_rows(connector, [event(n) for n in range(count)])

    rows = query(database_url, "SELECT watermark FROM sync_notification ORDER BY id")
    assert [row["watermark"] for row in rows] == [f"WM-SUB-1-{n}" for n in range(count)]


async def test_a_key_twice_in_one_batch_is_stored_once(
    connector: Connector, database_url: str
) -> None:
    first, again = event(1), event(1)._replace(item_id="ITEM-again")

    await add_rows(connector, [first, event(2), again, event(3)])
    await add_rows(connector, [event(2), event(4)])  # a redelivery in a later batch too

    rows = query(database_url, "SELECT watermark, item_id FROM sync_notification ORDER BY id")
    assert [(row["watermark"], row["item_id"]) for row in rows] == [
        ("WM-SUB-1-1", "ITEM-1"),
        ("WM-SUB-1-2", "ITEM-2"),
        ("WM-SUB-1-3", "ITEM-3"),
        ("WM-SUB-1-4", "ITEM-4"),
    ]


async def test_rows_of_retired_subscriptions_are_not_stored(
    connector: Connector, database_url: str
) -> None:
    async with connector.session() as session:
        params = {"subscription_id": "SUB-OLD", "protocol": "ews", "now": T0}
        await session.execute("retire_subscription", params)
    inbox = Inbox(connector, unknown_subscriptions=UnknownSubscriptions.ACCEPT)
    await inbox.start()
    try:
        verdicts = [
            await inbox.append([event(1, "SUB-OLD"), event(2, "SUB-OLD")], T0),
            await inbox.append([event(3, "SUB-NEW"), event(4, "SUB-OLD")], T0),
        ]
    finally:
        await inbox.stop()

    assert verdicts == [Verdict.UNSUBSCRIBE, Verdict.STORED]
    rows = query(database_url, "SELECT watermark FROM sync_notification ORDER BY id")
    assert [row["watermark"] for row in rows] == ["WM-SUB-NEW-3"]


def _same_types(row: dict[str, Any]) -> dict[str, Any]:
    """SQLite's raw values as PostgreSQL's driver returns them (times, booleans, bytes)."""
    from datetime import datetime

    out = dict(row)
    for name in ("received_at", "event_time"):
        if isinstance(out[name], str):
            out[name] = datetime.fromisoformat(out[name])
    if isinstance(out["more_events"], int) and not isinstance(out["more_events"], bool):
        out["more_events"] = bool(out["more_events"])
    if isinstance(out["event_key"], memoryview):
        out["event_key"] = bytes(out["event_key"])
    return out
