"""The notification table as a work queue for its consumers (the sync worker).

A consumer claims a batch of pending rows with a lease, works on them, then completes them or
fails them. Claiming is one statement per engine (`sql/<dialect>/queue.sql`): on PostgreSQL
`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`, on SQLite the same UPDATE
inside the immediate transaction every session opens. So any number of consumers, in any number
of processes, never hold the same row at once.

Lifecycle of a row (the `state` column):

    pending ──claim──> claimed ──complete──> done ──(retention)──> purged
       ^                  │
       └──fail, retry─────┤   lease expired: back to pending, or failed after the last attempt
                          └──fail, last attempt──> failed (keeps last_error)

`attempts` counts claims, so a row whose consumer keeps dying (a poison row) also ends in
`failed` after `max_attempts`. Every change after the claim names the lease owner: a consumer
whose lease expired and whose row went to another consumer changes nothing, and learns so from
the count returned. Times come from the consumer's clock; keep hosts on NTP and leases much
longer than any clock skew.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from pushsync.model.clock import Clock, utcnow
from pushsync.model.notification import Notification
from pushsync.store.connector import Connector, Row, Session


def default_owner() -> str:
    """Unique per consumer: host, process, and a random part for several consumers per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 5
    backoff_base: timedelta = timedelta(seconds=10)
    backoff_cap: timedelta = timedelta(hours=1)
    purge_batch: int = 5000

    def backoff(self, attempts: int) -> timedelta:
        """Wait before the next attempt: base, 2 x base, 4 x base … up to the cap."""
        factor = 1 << min(max(attempts - 1, 0), 30)
        return min(self.backoff_base * factor, self.backoff_cap)


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed row: the notification as it arrived, and what the queue keeps of it.
    `mailbox` comes from the subscription table (None when unknown)."""

    id: int
    attempts: int
    mailbox: str | None
    received_at: datetime
    notification: Notification = field(repr=False)

    @property
    def protocol(self) -> str:
        return self.notification.protocol

    @property
    def subscription_id(self) -> str:
        return self.notification.subscription_id

    @property
    def event_type(self) -> str:
        return self.notification.event_type

    @classmethod
    def from_row(cls, row: Row) -> Claimed:
        values = {name: row[name] for name in Notification._fields}
        if values["more_events"] is not None:  # SQLite keeps a boolean as 0 or 1
            values["more_events"] = bool(values["more_events"])
        return cls(
            id=row["id"],
            attempts=row["attempts"],
            mailbox=row["mailbox"],
            received_at=row["received_at"],
            notification=Notification(**values),
        )


class Failure(Enum):
    RETRY = "retry"  # back to pending, available again after the back-off
    FAILED = "failed"  # that was the last attempt: the row is failed with its error
    LOST = "lost"  # our lease had expired and the row moved on: nothing changed


class NotificationQueue:
    """Claim, complete and fail rows of the notification table; one instance per consumer."""

    def __init__(
        self,
        connector: Connector,
        *,
        owner: str | None = None,
        policy: QueuePolicy | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._connector = connector
        self.owner = owner or default_owner()
        self.policy = policy or QueuePolicy()
        self._clock = clock

    async def claim(self, limit: int) -> list[Claimed]:
        """Up to `limit` available rows, oldest first, leased to this consumer.

        Leases that expired are returned to the queue in the same transaction first, so no
        separate reaper is needed for rows held by a consumer that died.
        """
        now = self._clock()
        params = self._lease_params(now) | {"limit": limit}
        async with self._connector.session() as session:
            await self._release_expired(session, now)
            rows = await session.fetch_all("claim_notifications", params)
        return sorted((Claimed.from_row(row) for row in rows), key=lambda c: c.id)

    async def release_expired(self) -> int:
        """Return rows with an expired lease to the queue (or fail them); returns how many."""
        async with self._connector.session() as session:
            return await self._release_expired(session, self._clock())

    async def _release_expired(self, session: Session, now: datetime) -> int:
        params = {"now": now, "max_attempts": self.policy.max_attempts}
        failed = await session.execute("fail_expired_leases", params)
        requeued = await session.execute("requeue_expired_leases", params)
        return failed + requeued

    async def extend(self, ids: Iterable[int]) -> int:
        """Heartbeat: push our leases on these rows forward; returns how many we still hold."""
        params = self._lease_params(self._clock()) | {"ids": list(ids)}
        async with self._connector.session() as session:
            return await session.execute("extend_leases", params)

    async def complete(self, ids: Iterable[int]) -> int:
        """Mark rows done; returns how many were still ours (fewer means a lease was lost)."""
        params = {"ids": list(ids), "owner": self.owner, "now": self._clock()}
        async with self._connector.session() as session:
            return await session.execute("complete_notifications", params)

    async def fail(self, claimed: Claimed, error: str, *, retry: bool = True) -> Failure:
        """Record a failed attempt: retry after a back-off, or give up after the last attempt
        (at once unless `retry`: an error that trying again will not mend)."""
        now = self._clock()
        params: dict[str, Any] = {"id": claimed.id, "owner": self.owner, "error": error}
        give_up = not retry or claimed.attempts >= self.policy.max_attempts
        async with self._connector.session() as session:
            if give_up:
                changed = await session.execute("give_up_notification", params | {"now": now})
            else:
                available_at = now + self.policy.backoff(claimed.attempts)
                changed = await session.execute(
                    "retry_notification", params | {"available_at": available_at}
                )
        if not changed:
            return Failure.LOST
        return Failure.FAILED if give_up else Failure.RETRY

    async def listed(
        self, limit: int, state: str | None = None, room: str | None = None
    ) -> list[Row]:
        """The newest rows, with their room, optionally of one state or room
        (`pushsync notifications list`)."""
        params = {"state": state, "room": room, "limit": limit}
        async with self._connector.session() as session:
            return await session.fetch_all("notifications_newest", params)

    async def release(self, ids: Iterable[int], available_at: datetime) -> int:
        """Give rows back untried until `available_at` (throttling is not the rows' fault, so
        the claim does not count as an attempt); returns how many were still ours."""
        params = {"ids": list(ids), "owner": self.owner, "available_at": available_at}
        async with self._connector.session() as session:
            return await session.execute("release_notifications", params)

    async def purge(self, done_after: timedelta, failed_after: timedelta | None = None) -> int:
        """Delete rows processed longer ago than the retention; failed rows only if asked.

        Deletes in batches of `policy.purge_batch`, one transaction each, so a large purge never
        holds locks long enough to stall the receivers.
        """
        purged = await self._purge("done", self._clock() - done_after)
        if failed_after is not None:
            purged += await self._purge("failed", self._clock() - failed_after)
        return purged

    async def _purge(self, state: str, before: datetime) -> int:
        total = 0
        params = {"state": state, "before": before, "limit": self.policy.purge_batch}
        while True:
            async with self._connector.session() as session:
                deleted = await session.execute("purge_processed", params)
            total += deleted
            if deleted < self.policy.purge_batch:
                return total

    async def counts(self) -> dict[str, int]:
        """Rows per state (states without rows are 0)."""
        async with self._connector.session() as session:
            rows = await session.fetch_all("queue_counts")
        counts = dict.fromkeys(("pending", "claimed", "done", "failed"), 0)
        counts.update({row["state"]: int(row["n"]) for row in rows})
        return counts

    def _lease_params(self, now: datetime) -> dict[str, Any]:
        return {"now": now, "owner": self.owner, "lease_expires_at": now + self.policy.lease}


def by_subscription(claimed: Iterable[Claimed]) -> dict[str, list[Claimed]]:
    """Claimed rows grouped by subscription, each group in id order (the order they arrived)."""
    groups: dict[str, list[Claimed]] = {}
    for item in sorted(claimed, key=lambda c: c.id):
        groups.setdefault(item.subscription_id, []).append(item)
    return groups
