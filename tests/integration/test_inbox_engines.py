"""The same Inbox (group commit) on both engines: durable, idempotent, isolating bad rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from pushsync.errors import RowRejected, StorageError, StorageUnavailable
from pushsync.model.notification import Notification
from pushsync.store import Connector, connect
from pushsync.store.inbox import Inbox, Verdict
from tests.integration.conftest import free_port
from tests.integration.helpers import T0, event, query


@pytest.fixture
async def inbox(connector: Connector) -> AsyncIterator[Inbox]:
    inbox = Inbox(connector)
    await inbox.start()
    yield inbox
    await inbox.stop()


def watermarks(url: str) -> list[str]:
    rows = query(url, "SELECT watermark FROM sync_notification ORDER BY id")
    return [row["watermark"] for row in rows]


async def test_rows_are_committed_when_append_returns(inbox: Inbox, database_url: str) -> None:
    assert await inbox.append([event(1), event(2)], T0) is Verdict.STORED
    assert watermarks(database_url) == ["WM-SUB-1-1", "WM-SUB-1-2"]


async def test_a_redelivered_event_adds_no_row(inbox: Inbox, database_url: str) -> None:
    await inbox.append([event(1), event(2)], T0)
    assert await inbox.append([event(2), event(3)], T0) is Verdict.STORED
    assert watermarks(database_url) == ["WM-SUB-1-1", "WM-SUB-1-2", "WM-SUB-1-3"]


async def test_a_redelivery_is_one_row_with_or_without_an_event_time(
    inbox: Inbox, database_url: str
) -> None:
    """The key is unique together with the event's time (migration 0008); a StatusEvent has
    none, and its redelivery is still one row."""
    status = event(2)._replace(event_type="Status", event_time=None, item_id=None)
    await inbox.append([event(1), status], T0)
    await inbox.append([status, event(1), event(3)], T0)
    assert watermarks(database_url) == ["WM-SUB-1-1", "WM-SUB-1-2", "WM-SUB-1-3"]


async def test_stopping_during_the_one_by_one_retry_answers_every_request(
    inbox: Inbox, database_url: str
) -> None:
    """A refused row makes the writer retry its batch request by request; stopping the inbox
    meanwhile must answer the requests not retried yet, not leave them waiting."""
    bad = Notification(protocol="carrier-pigeon", subscription_id="S", event_type="x")  # type: ignore[arg-type]
    requests = [asyncio.ensure_future(inbox.append([bad], T0))]
    requests += [asyncio.ensure_future(inbox.append([event(n)], T0)) for n in range(200)]
    first_answer = asyncio.Event()  # the batch failed and the retry began
    for r in requests:
        r.add_done_callback(lambda _: first_answer.set())
    await asyncio.wait_for(first_answer.wait(), 10)

    await inbox.stop()

    assert all(r.done() for r in requests)
    for r in requests:
        assert r.cancelled() or r.exception() is None or isinstance(r.exception(), StorageError)


async def test_concurrent_requests_share_commits(inbox: Inbox, database_url: str) -> None:
    verdicts = await asyncio.gather(*(inbox.append([event(n)], T0) for n in range(200)))

    assert set(verdicts) == {Verdict.STORED}
    assert len(watermarks(database_url)) == 200
    assert inbox.commits < 200


async def test_a_refused_row_fails_only_its_own_request(inbox: Inbox, database_url: str) -> None:
    bad = Notification(protocol="carrier-pigeon", subscription_id="S", event_type="x")  # type: ignore[arg-type]
    requests = [[event(1)], [bad, event(2)], [event(3)]]

    results = await asyncio.gather(
        *(inbox.append(rows, T0) for rows in requests), return_exceptions=True
    )

    assert results[0] is Verdict.STORED and results[2] is Verdict.STORED
    assert isinstance(results[1], RowRejected)
    assert watermarks(database_url) == ["WM-SUB-1-1", "WM-SUB-1-3"]


@pytest.mark.postgres
async def test_an_unreachable_server_is_a_storage_error(postgres_url: str) -> None:
    connector = connect(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    await connector.open()
    inbox = Inbox(connector)
    await inbox.start()
    try:
        with pytest.raises(StorageUnavailable):
            await inbox.append([event(1)], T0)
    finally:
        await inbox.stop()
        await connector.close()


async def test_rows_no_engine_can_hold_fail_only_their_own_requests(
    inbox: Inbox, database_url: str
) -> None:
    """The issue's rows, as they reached the inbox before the parser bounded them: a time whose
    UTC instant is past year 9999 (OverflowError while formatting), a count past 64 bits
    (OverflowError binding it in SQLite; out of range on PostgreSQL). Each sits in a group
    commit with a hundred valid requests and is refused alone, as unstorable, not 503."""
    late = datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1)))
    poisoned = {
        50: [event(1000)._replace(event_time=late)],
        120: [event(1001)._replace(unread_count=2**70)],
        121: [event(1002), event(1003)._replace(unread_count=2**31)],  # PostgreSQL's INTEGER
    }
    requests = [poisoned.get(n, [event(n)]) for n in range(150)]

    results = await asyncio.gather(
        *(inbox.append(rows, T0) for rows in requests), return_exceptions=True
    )

    for n, result in enumerate(results):
        if n in poisoned and (n != 121 or database_url.startswith("postgresql")):
            assert isinstance(result, RowRejected), (n, result)
        else:
            assert result is Verdict.STORED, (n, result)
    stored = watermarks(database_url)
    assert [w for w in stored if w in {f"WM-SUB-1-{n}" for n in range(150)}] == [
        f"WM-SUB-1-{n}" for n in range(150) if n not in poisoned
    ]
    assert inbox.commits < 150  # they did share commits
