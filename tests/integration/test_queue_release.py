"""Releasing throttled rows: back to the queue later, without spending an attempt."""

from __future__ import annotations

from datetime import timedelta

from pushsync.store import Connector
from pushsync.store.notification_queue import NotificationQueue, QueuePolicy
from tests.integration.helpers import Clock, add_rows, event, query


async def test_released_rows_wait_and_keep_their_attempts(
    connector: Connector, database_url: str
) -> None:
    clock = Clock()
    queue = NotificationQueue(connector, owner="w", policy=QueuePolicy(max_attempts=2), clock=clock)
    await add_rows(connector, [event(n) for n in range(3)])

    for _ in range(5):  # more throttles than max_attempts: none of them may fail the rows
        claimed = await queue.claim(10)
        assert len(claimed) == 3
        assert await queue.release([c.id for c in claimed], clock() + timedelta(seconds=30)) == 3
        assert await queue.claim(10) == []  # not before the back-off
        clock.advance(timedelta(seconds=31))

    rows = query(database_url, "SELECT state, attempts, lease_owner FROM sync_notification")
    assert {(r["state"], r["attempts"], r["lease_owner"]) for r in rows} == {("pending", 0, None)}
    assert await NotificationQueue(connector, owner="x", clock=clock).release([1], clock()) == 0
