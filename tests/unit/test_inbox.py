"""The inbox on a real SQLite database: durable group commit, redelivery, Unsubscribe, failure."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pushsync.errors import StorageUnavailable
from pushsync.ews.send_notification import parse_send_notification
from pushsync.model.notification import Notification, UnknownSubscriptions
from pushsync.store import Connector, connect
from pushsync.store.inbox import Inbox, Verdict, insert_values
from pushsync.store.migrations import upgrade
from pushsync.store.sqlite import sqlite_path
from tests.conftest import EWS_CORPUS

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _rows(url: str, sql: str = "SELECT * FROM sync_notification ORDER BY id") -> list[sqlite3.Row]:
    connection = sqlite3.connect(sqlite_path(url))
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def _event(subscription: str, watermark: str | None, event_type: str = "Modified") -> Notification:
    return Notification(
        protocol="ews",
        subscription_id=subscription,
        event_type=event_type,
        watermark=watermark,
        item_id="ITEM",
        event_time=NOW,
    )


@pytest.fixture
async def inbox(sqlite_connector: Connector) -> Inbox:
    inbox = Inbox(sqlite_connector)
    await inbox.start()
    yield inbox
    await inbox.stop()


async def test_rows_are_in_the_table_when_append_returns(inbox: Inbox, sqlite_url: str) -> None:
    body = (EWS_CORPUS / "valid-005.xml").read_bytes()
    rows = parse_send_notification(body, remote_addr="203.0.113.9")

    assert await inbox.append(rows, NOW) is Verdict.STORED

    stored = _rows(sqlite_url)
    assert [r["watermark"] for r in stored] == [r.watermark for r in rows]
    assert {r["received_at"] for r in stored} == {NOW.isoformat()}
    assert {r["state"] for r in stored} == {"pending"}
    assert stored[0]["remote_addr"] == "203.0.113.9"
    assert stored[0]["id"] < stored[-1]["id"]


async def test_redelivery_adds_no_row(inbox: Inbox, sqlite_url: str) -> None:
    rows = parse_send_notification((EWS_CORPUS / "valid-003.xml").read_bytes())
    await inbox.append(rows, NOW)
    assert await inbox.append(rows, NOW) is Verdict.STORED
    assert len(_rows(sqlite_url)) == len(rows)


async def test_rows_without_watermark_are_all_kept(inbox: Inbox, sqlite_url: str) -> None:
    error = _event("SUB", None, "Error")
    await inbox.append([error], NOW)
    await inbox.append([error], NOW)
    assert len(_rows(sqlite_url)) == 2


async def test_retired_subscription_is_answered_unsubscribe_and_not_stored(
    inbox: Inbox, sqlite_connector: Connector, sqlite_url: str
) -> None:
    async with sqlite_connector.session() as session:
        await session.execute(
            "retire_subscription", {"subscription_id": "OLD", "protocol": "ews", "now": NOW}
        )

    assert await inbox.append([_event("OLD", "W1")], NOW) is Verdict.UNSUBSCRIBE
    assert await inbox.append([_event("LIVE", "W1")], NOW) is Verdict.STORED
    assert [r["subscription_id"] for r in _rows(sqlite_url)] == ["LIVE"]


async def test_unknown_subscriptions_can_be_refused(
    sqlite_connector: Connector, sqlite_url: str
) -> None:
    inbox = Inbox(sqlite_connector, unknown_subscriptions=UnknownSubscriptions.UNSUBSCRIBE)
    await inbox.start()
    try:
        assert await inbox.append([_event("STRANGER", "W1")], NOW) is Verdict.UNSUBSCRIBE
    finally:
        await inbox.stop()
    assert _rows(sqlite_url) == []


async def test_concurrent_requests_share_commits(inbox: Inbox, sqlite_url: str) -> None:
    requests = [[_event(f"SUB{i % 7}", f"W{i}")] for i in range(300)]

    verdicts = await asyncio.gather(*(inbox.append(rows, NOW) for rows in requests))

    assert set(verdicts) == {Verdict.STORED}
    assert len(_rows(sqlite_url)) == 300
    assert inbox.commits < 300 / 5, f"{inbox.commits} commits for 300 requests: no group commit"


async def test_storage_failure_raises_and_writes_nothing(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/locked.db"
    connector = connect(url, busy_timeout_ms=50)
    await connector.open()
    await upgrade(connector)
    inbox = Inbox(connector)
    await inbox.start()
    blocker = sqlite3.connect(sqlite_path(url), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        with pytest.raises(StorageUnavailable):  # locked: down for everyone, 503, not 400
            await inbox.append([_event("SUB", "W1"), _event("SUB", "W2")], NOW)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert _rows(url) == []
    # and it recovers by itself once the database is free again
    assert await inbox.append([_event("SUB", "W1")], NOW) is Verdict.STORED
    assert len(_rows(url)) == 1
    await inbox.stop()
    await connector.close()


async def test_a_database_that_cannot_write_fails_the_whole_batch_at_once(tmp_path) -> None:
    """No table at all (never migrated): every request would fail alike, so the batch is not
    retried one by one and nobody is told its rows are unstorable; all are answered 503."""
    connector = connect(f"sqlite:///{tmp_path}/empty.db")
    await connector.open()
    inbox = Inbox(connector)
    await inbox.start()
    try:
        results = await asyncio.gather(
            *(inbox.append([_event("SUB", f"W{n}")], NOW) for n in range(50)),
            return_exceptions=True,
        )
    finally:
        await inbox.stop()
        await connector.close()
    assert all(isinstance(r, StorageUnavailable) for r in results), results
    assert inbox.commits == 0


async def test_upgrade_is_idempotent(sqlite_connector: Connector) -> None:
    assert await upgrade(sqlite_connector) == []


async def test_event_times_are_stored_in_utc_whatever_their_zone(
    inbox: Inbox, sqlite_url: str
) -> None:
    """Times are written as UTC text, remembered per instant: the same instant given in
    another zone is the same text, so its redelivery is still one row."""
    paris = timezone(timedelta(hours=1))
    in_paris = _event("SUB", "W1")._replace(event_time=NOW.astimezone(paris))
    await inbox.append([_event("SUB", "W1"), _event("SUB", "W2")], NOW)
    assert await inbox.append([in_paris], NOW) is Verdict.STORED
    stored = _rows(sqlite_url, "SELECT event_time FROM sync_notification ORDER BY id")
    assert [r["event_time"] for r in stored] == [NOW.isoformat(), NOW.isoformat()]


def test_insert_values_formats_every_time_past_the_remembered_ones() -> None:
    position = 1 + Notification._fields.index("event_time")  # received_at comes first
    for second in range(5000):  # more distinct times than are remembered
        at = (NOW + timedelta(seconds=second)).astimezone(timezone(timedelta(hours=-5)))
        values = insert_values(_event("SUB", f"W{second}")._replace(event_time=at), "now")
        assert values[position] == (NOW + timedelta(seconds=second)).isoformat()
