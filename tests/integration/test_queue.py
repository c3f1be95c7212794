"""Queue semantics on the notification table, on both engines."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from pushsync.store import Connector, connect
from pushsync.store.notification_queue import (
    Failure,
    NotificationQueue,
    QueuePolicy,
    by_subscription,
)
from tests.integration.helpers import Clock, add_rows, event, query

POLICY = QueuePolicy(
    lease=timedelta(minutes=1),
    max_attempts=3,
    backoff_base=timedelta(seconds=10),
    backoff_cap=timedelta(seconds=25),
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def consumer(connector: Connector, clock: Clock, owner: str) -> NotificationQueue:
    return NotificationQueue(connector, owner=owner, policy=POLICY, clock=clock)


def by_id(url: str) -> dict[int, dict[str, object]]:
    return {row["id"]: row for row in query(url, "SELECT * FROM sync_notification")}


async def test_claim_leases_the_oldest_rows_to_one_consumer(
    connector: Connector, clock: Clock, database_url: str
) -> None:
    await add_rows(connector, [event(n, f"SUB-{n}") for n in range(5)])
    a, b = consumer(connector, clock, "a"), consumer(connector, clock, "b")

    first = await a.claim(3)
    second = await b.claim(3)

    assert [c.notification.watermark for c in first] == ["WM-SUB-0-0", "WM-SUB-1-1", "WM-SUB-2-2"]
    assert [c.notification.watermark for c in second] == ["WM-SUB-3-3", "WM-SUB-4-4"]
    assert await a.claim(3) == []
    rows = by_id(database_url)
    assert {rows[c.id]["lease_owner"] for c in first} == {"a"}
    assert {rows[c.id]["state"] for c in first + second} == {"claimed"}
    assert {c.attempts for c in first + second} == {1}


async def test_a_rooms_rows_go_to_the_consumer_that_holds_some_of_them(
    connector: Connector, clock: Clock
) -> None:
    """Two workers would read one room twice for one burst; its later rows wait for the one
    that holds its earlier ones, until that lease ends."""
    await add_rows(connector, [event(0, "SUB-R")])
    a, b = consumer(connector, clock, "a"), consumer(connector, clock, "b")
    assert [c.subscription_id for c in await a.claim(10)] == ["SUB-R"]
    await add_rows(connector, [event(1, "SUB-R"), event(2, "SUB-S"), event(3, "SUB-R")])

    assert [c.notification.item_id for c in await b.claim(10)] == ["ITEM-2"]  # not R's
    assert [c.notification.item_id for c in await a.claim(10)] == ["ITEM-1", "ITEM-3"]

    await add_rows(connector, [event(4, "SUB-R")])
    clock.advance(POLICY.lease + timedelta(seconds=1))  # a died: its lease ran out
    taken = [c.notification.item_id for c in await b.claim(10) if c.subscription_id == "SUB-R"]
    assert taken == ["ITEM-0", "ITEM-1", "ITEM-3", "ITEM-4"]


async def test_claimed_rows_carry_the_mailbox_of_their_subscription(
    connector: Connector, clock: Clock, database_url: str
) -> None:
    query(
        database_url,
        "INSERT INTO subscription (subscription_id, mailbox, created_at) "
        "VALUES ('SUB-1', 'room-1@example.com', '2026-11-24T12:00:00+00:00')",
    )
    await add_rows(connector, [event(1), event(2, "SUB-2"), event(3)])

    claimed = await consumer(connector, clock, "a").claim(10)

    groups = by_subscription(claimed)
    assert list(groups) == ["SUB-1", "SUB-2"]
    assert [c.notification.item_id for c in groups["SUB-1"]] == ["ITEM-1", "ITEM-3"]
    assert {c.mailbox for c in groups["SUB-1"]} == {"room-1@example.com"}
    assert groups["SUB-2"][0].mailbox is None


async def test_complete_marks_done_and_only_for_the_lease_owner(
    connector: Connector, clock: Clock, database_url: str
) -> None:
    await add_rows(connector, [event(n) for n in range(2)])
    a, b = consumer(connector, clock, "a"), consumer(connector, clock, "b")
    claimed = await a.claim(2)

    assert await b.complete([c.id for c in claimed]) == 0
    assert await a.complete([c.id for c in claimed]) == 2

    rows = by_id(database_url)
    assert {r["state"] for r in rows.values()} == {"done"}
    assert {r["lease_owner"] for r in rows.values()} == {None}
    assert all(r["processed_at"] is not None for r in rows.values())
    assert await a.complete([c.id for c in claimed]) == 0, "done rows are not completed twice"


async def test_fail_backs_off_then_gives_up_with_the_last_error(
    connector: Connector, clock: Clock, database_url: str
) -> None:
    await add_rows(connector, [event(1)])
    queue = consumer(connector, clock, "a")

    (first,) = await queue.claim(1)
    assert await queue.fail(first, "Exchange said ErrorServerBusy") is Failure.RETRY
    assert await queue.claim(1) == [], "backing off"
    clock.advance(timedelta(seconds=9))
    assert await queue.claim(1) == [], "the first back-off is 10 s"
    clock.advance(timedelta(seconds=1))
    (second,) = await queue.claim(1)
    assert second.attempts == 2
    assert await queue.fail(second, "timeout") is Failure.RETRY
    clock.advance(timedelta(seconds=19))
    assert await queue.claim(1) == [], "the second back-off is 20 s"
    clock.advance(timedelta(seconds=1))
    (third,) = await queue.claim(1)
    assert await queue.fail(third, "ErrorItemNotFound, for the third time") is Failure.FAILED

    clock.advance(timedelta(days=1))
    assert await queue.claim(1) == []
    (row,) = by_id(database_url).values()
    assert (row["state"], row["attempts"]) == ("failed", 3)
    assert row["last_error"] == "ErrorItemNotFound, for the third time"
    assert row["processed_at"] is not None


async def test_an_expired_lease_returns_the_row_to_the_queue(
    connector: Connector, clock: Clock, database_url: str
) -> None:
    await add_rows(connector, [event(1)])
    dead, alive = consumer(connector, clock, "dead"), consumer(connector, clock, "alive")
    (held,) = await dead.claim(1)

    clock.advance(timedelta(seconds=59))
    assert await alive.claim(1) == [], "the lease still runs"
    clock.advance(timedelta(seconds=1))
    (taken,) = await alive.claim(1)

    assert (taken.id, taken.attempts) == (held.id, 2)
    assert await dead.complete([held.id]) == 0, "a lost lease completes nothing"
    assert await dead.fail(held, "late") is Failure.LOST
    assert await alive.complete([taken.id]) == 1
    (row,) = by_id(database_url).values()
    assert row["state"] == "done"
    assert row["last_error"] == "lease of dead expired"


async def test_a_lease_that_expires_on_the_last_attempt_fails_the_row(
    connector: Connector, clock: Clock, database_url: str
) -> None:
    await add_rows(connector, [event(1)])
    for n in range(POLICY.max_attempts):
        (claimed,) = await consumer(connector, clock, f"crash-{n}").claim(1)
        clock.advance(POLICY.lease)

    assert claimed.attempts == POLICY.max_attempts
    assert await consumer(connector, clock, "next").release_expired() == 1
    (row,) = by_id(database_url).values()
    assert row["state"] == "failed"
    last_owner = f"crash-{POLICY.max_attempts - 1}"
    assert row["last_error"] == f"lease of {last_owner} expired after the last attempt"


async def test_a_heartbeat_keeps_the_lease(connector: Connector, clock: Clock) -> None:
    await add_rows(connector, [event(1), event(2, "SUB-2")])  # two rooms: one may change hands
    a, b = consumer(connector, clock, "a"), consumer(connector, clock, "b")
    claimed = await a.claim(2)

    clock.advance(timedelta(seconds=50))
    assert await a.extend([claimed[0].id]) == 1
    assert await b.extend([claimed[1].id]) == 0, "only the owner extends"
    clock.advance(timedelta(seconds=50))

    assert [c.id for c in await b.claim(2)] == [claimed[1].id]


async def test_purge_deletes_processed_rows_after_the_retention(
    connector: Connector, clock: Clock, database_url: str
) -> None:
    await add_rows(connector, [event(n) for n in range(5)])
    queue = NotificationQueue(
        connector, owner="a", policy=QueuePolicy(max_attempts=1, purge_batch=2), clock=clock
    )
    old = await queue.claim(3)
    await queue.complete([c.id for c in old[:2]])
    assert await queue.fail(old[2], "gave up") is Failure.FAILED
    clock.advance(timedelta(days=8))
    recent = await queue.claim(1)
    await queue.complete([c.id for c in recent])

    assert await queue.purge(timedelta(days=7)) == 2
    assert sorted(r["state"] for r in by_id(database_url).values()) == ["done", "failed", "pending"]
    assert await queue.purge(timedelta(days=7), failed_after=timedelta(days=7)) == 1
    assert sorted(r["state"] for r in by_id(database_url).values()) == ["done", "pending"]


async def test_concurrent_consumers_never_share_a_row(
    connector: Connector, clock: Clock, database_url: str
) -> None:
    await add_rows(connector, [event(n) for n in range(400)])
    seen: list[int] = []

    async def run(owner: str) -> None:
        own = connect(database_url)
        await own.open()
        try:
            queue = consumer(own, clock, owner)
            while claimed := await queue.claim(7):
                seen.extend(c.id for c in claimed)
                assert await queue.complete([c.id for c in claimed]) == len(claimed)
        finally:
            await own.close()

    await asyncio.gather(*(run(f"c{n}") for n in range(4)))

    assert len(seen) == len(set(seen)) == 400
    assert await consumer(connector, clock, "x").counts() == {
        "pending": 0,
        "claimed": 0,
        "done": 400,
        "failed": 0,
    }


def test_back_off_doubles_up_to_the_cap() -> None:
    assert [POLICY.backoff(n).total_seconds() for n in range(1, 5)] == [10, 20, 25, 25]
    assert QueuePolicy().backoff(1000) == QueuePolicy().backoff_cap
