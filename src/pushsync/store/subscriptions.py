"""Rooms and their push subscriptions: the bookkeeping both the manager and the worker use.

A room has at most one live subscription. A subscription is `active` while notifications or
heartbeats arrive, `broken` after an error notification or a watermark gap, and `retired` once
replaced (the receiver then answers Exchange `Unsubscribe` for it). A room is marked
`needs_resync` whenever events may have been lost, and when it is new.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pushsync.model.notification import event_key
from pushsync.store.connector import Connector, Row

DEFAULT_STATUS_FREQUENCY = 15  # minutes; Exchange retries a failed delivery for this long
# How far before an event its subscription's previous event is looked for first (the search
# reads every key of that stretch of the redelivery index); further back it reads the whole
# index (watermark_seen). The lookup runs when rows of one subscription are processed out of
# order, so the previous event is seconds old.
# prefix of a room error that says its protocol's token authority was away, not the room
UNREACHABLE = "unreachable: "
WATERMARK_SEARCH_WINDOW = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class LiveSubscription:
    subscription_id: str
    mailbox: str
    protocol: str
    state: str
    status_frequency: int
    last_event_at: datetime
    last_watermark: str | None
    expires_at: datetime | None
    last_error: str | None = None  # why it broke (the error notification's ResponseCode, …)

    def silent_since(self, now: datetime) -> timedelta:
        return now - self.last_event_at

    def is_dead(self, now: datetime, minute: timedelta = timedelta(minutes=1)) -> bool:
        """Broken, or silent for more than twice StatusFrequency (Exchange gave up on us).

        `minute` is one minute of Exchange time; tests against the simulator shrink it.
        """
        if self.state == "broken":
            return True
        return self.silent_since(now) > self.silence(minute)

    def silence(self, minute: timedelta = timedelta(minutes=1)) -> timedelta:
        """How long it may go unheard: twice StatusFrequency."""
        return 2 * self.status_frequency * minute

    def heard_at(self, at: datetime | None) -> LiveSubscription:
        """This subscription, heard at `at` too (a row received for it) if that is later."""
        if at is None or at <= self.last_event_at:
            return self
        return replace(self, last_event_at=at)


class Subscriptions:
    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    @property
    def connector(self) -> Connector:
        return self._connector

    async def ensure_rooms(self, mailboxes: Iterable[str], protocol: str, now: datetime) -> None:
        async with self._connector.session() as session:
            await session.execute_many(
                "upsert_room", [{"mailbox": m, "protocol": protocol, "now": now} for m in mailboxes]
            )

    async def rooms(self) -> list[Row]:
        return await self._fetch("list_rooms")

    async def live(self) -> list[LiveSubscription]:
        return [_live(row) for row in await self._fetch("live_subscriptions")]

    async def last_received(
        self, subscription_ids: Iterable[str], since: datetime
    ) -> dict[str, datetime]:
        """The latest row the receiver stored for each of these subscriptions since `since`,
        processed or not (one query): what `last_event_at`, noted by the worker as it works the
        rows off, does not show yet while it is busy. Subscriptions without one are left out."""
        params = {"ids": sorted(set(subscription_ids)), "since": since}
        rows = await self._fetch("last_received", params)
        return {row["subscription_id"]: _time(row["received_at"]) for row in rows}

    async def still_dead(
        self,
        candidates: list[LiveSubscription],
        now: datetime,
        minute: timedelta = timedelta(minutes=1),
    ) -> list[LiveSubscription]:
        """The candidates (dead by `is_dead`) less those silent only by `last_event_at`: a row
        the receiver stored for one within its silence window proves Exchange reaches us,
        though the worker, busy (a fleet's first syncs), has not noted it yet. One query, for
        the silent candidates alone; the ones returned carry the latest time they were heard."""
        silent = [s for s in candidates if s.state != "broken"]
        if not silent:
            return candidates
        since = now - max(s.silence(minute) for s in silent)
        received = await self.last_received((s.subscription_id for s in silent), since)
        heard = [s.heard_at(received.get(s.subscription_id)) for s in candidates]
        return [s for s in heard if s.is_dead(now, minute)]

    async def overview(self) -> list[Row]:
        """One row per room with its live subscription, for `subscriptions list` and status."""
        return await self._fetch("subscription_overview")

    async def record(
        self,
        mailbox: str,
        subscription_id: str,
        *,
        protocol: str,
        watermark: str | None,
        status_frequency: int | None,
        now: datetime,
        replaces: str | None = None,
        reason: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        """Store a new subscription; the one it replaces is retired in the same transaction,
        and the room is no longer polled (`start_polling`)."""
        async with self._connector.session() as session:
            await session.execute(
                "insert_subscription",
                {
                    "subscription_id": subscription_id,
                    "protocol": protocol,
                    "mailbox": mailbox,
                    "watermark": watermark,
                    "status_frequency": status_frequency,
                    "now": now,
                    "expires_at": expires_at,
                },
            )
            await session.execute("room_subscribed", {"mailbox": mailbox})
            if replaces is not None:
                await session.execute(
                    "retire_replaced_subscription",
                    {
                        "subscription_id": replaces,
                        "replaced_by": subscription_id,
                        "now": now,
                        "reason": reason,
                    },
                )

    async def retire_other_protocols(self, mailbox: str, protocol: str, now: datetime) -> int:
        """A room moved to `protocol`: its subscriptions over the other protocol are retired, so
        the receiver answers their next notification Unsubscribe (EWS) or drops it (Graph)."""
        params = {
            "mailbox": mailbox,
            "protocol": protocol,
            "now": now,
            "reason": f"room moved to {protocol}",
        }
        async with self._connector.session() as session:
            return await session.execute("retire_other_protocols", params)

    async def heard(self, subscription_id: str, at: datetime, watermark: str | None) -> None:
        await self._execute(
            "subscription_heard",
            {"subscription_id": subscription_id, "at": at, "watermark": watermark},
        )

    async def heard_many(self, heard: Iterable[tuple[str, datetime, str | None]]) -> None:
        """`heard` for many subscriptions in one transaction: (id, at, watermark) each."""
        params = [{"subscription_id": s, "at": at, "watermark": w} for s, at, w in heard]
        if params:
            async with self._connector.session() as session:
                await session.execute_many("subscription_heard", params)

    async def mark_broken(self, subscription_id: str, error: str) -> None:
        await self._execute(
            "subscription_broken", {"subscription_id": subscription_id, "error": error}
        )

    async def mark_gone(self, subscription_id: str, error: str) -> None:
        """The server no longer has it (a renewal answered 404 or 400): broken for this reason,
        whatever reason it was broken for before."""
        params = {"subscription_id": subscription_id, "error": error}
        await self._execute("subscription_gone", params)

    async def renewed(self, subscription_id: str, expires_at: datetime) -> None:
        """A Graph subscription renewed (or reauthorized): active again until `expires_at`."""
        await self._execute(
            "subscription_renewed", {"subscription_id": subscription_id, "expires_at": expires_at}
        )

    async def request_resync(self, mailbox: str, reason: str) -> None:
        await self._execute("request_resync", {"mailbox": mailbox, "reason": reason})

    async def room_error(self, mailbox: str, error: str, now: datetime) -> None:
        await self._execute("room_error", {"mailbox": mailbox, "error": error[:2000], "now": now})

    async def pause(self, mailbox: str, until: datetime) -> None:
        """Exchange asked for a back-off on this room: every worker process waits it out."""
        await self._execute("pause_room", {"mailbox": mailbox, "until": until})

    async def paused(self, now: datetime) -> dict[str, datetime]:
        """Rooms still inside a back-off, with its end."""
        rows = await self._fetch("paused_rooms", {"now": now})
        return {row["mailbox"]: row["paused_until"] for row in rows}

    async def resync_generation(self, mailbox: str) -> int:
        """How many resyncs the room was asked for: a resync notes it before reading, and clears
        the request afterwards only if it did not grow meanwhile (`Reservations.reconcile`)."""
        async with self._connector.session() as session:
            row = await session.fetch_one("room_resync_generation", {"mailbox": mailbox})
        return int(row["resync_generation"]) if row else 0

    async def claim_resyncs(
        self,
        limit: int,
        *,
        protocols: Iterable[str],
        now: datetime,
        lease: timedelta,
        synced_before: datetime | None = None,
    ) -> list[Row]:
        """Rooms to resync now, leased to the caller until now + lease: those that asked for one
        (`due`), then, given `synced_before`, those last synced before it (their periodic
        read). Rooms inside Exchange's back-off or leased by another worker are left out."""
        params = {
            "limit": limit,
            "protocols": sorted(protocols),
            "now": now,
            "lease_until": now + lease,
            "periodic": synced_before is not None,
            "synced_before": synced_before,
        }
        async with self._connector.session() as session:
            rows = await session.fetch_all("claim_resyncs", params)
        return sorted(rows, key=lambda row: (not row["due"], row["mailbox"]))

    async def start_polling(self, mailbox: str, reason: str, detail: str, now: datetime) -> None:
        """The room's protocol refused it a subscription for `reason` (`detail`: in its words):
        the worker reads it every few minutes instead (`claim_polls`) until a subscription is
        created (`record`)."""
        params = {"mailbox": mailbox, "reason": reason, "detail": detail[:2000], "now": now}
        await self._execute("start_polling", params)

    async def claim_polls(
        self,
        limit: int,
        *,
        protocols: Iterable[str],
        now: datetime,
        every: timedelta,
        lease: timedelta,
    ) -> list[Row]:
        """Polled rooms last read more than `every` ago, leased to the caller like a resync."""
        params = {
            "limit": limit,
            "protocols": sorted(protocols),
            "now": now,
            "lease_until": now + lease,
            "polled_before": now - every,
        }
        async with self._connector.session() as session:
            return await session.fetch_all("claim_polls", params)

    async def moved_off(self, protocol: str) -> set[str]:
        """Rooms (lower-cased) `pushsync rooms migrate` moved to another protocol: the settings
        may still list them under this one, and its manager leaves them alone."""
        rows = await self._fetch("rooms_moved_off", {"protocol": protocol})
        return {row["mailbox"].lower() for row in rows}

    async def release_resync(self, mailbox: str) -> None:
        """Give a claimed room back before its lease ends (its resync was throttled)."""
        await self._execute("release_resync", {"mailbox": mailbox})

    async def watermark_seen(
        self, subscription_id: str, watermark: str, *, before: datetime | None = None
    ) -> bool:
        """Whether an event with this watermark of this subscription is in the table.

        `before` is the time of the event that names it: the search starts with the minutes
        before then, a short stretch of the redelivery index (migration 0008).
        """
        params = {
            "event_key": event_key("ews", subscription_id, watermark),
            "since": None if before is None else before - WATERMARK_SEARCH_WINDOW,
            "until": before,
        }
        async with self._connector.session() as session:
            return await session.fetch_one("watermark_seen", params) is not None

    async def sync_state(self, mailbox: str) -> str | None:
        """The room's stored cursor (a Graph room's delta link), if any."""
        async with self._connector.session() as session:
            row = await session.fetch_one("room_sync_state", {"mailbox": mailbox})
        return row["sync_state"] if row else None

    async def save_sync_state(self, mailbox: str, state: str | None) -> None:
        await self._execute("save_room_sync_state", {"mailbox": mailbox, "state": state})

    async def calendar_folder_id(self, mailbox: str) -> str | None:
        """The room's EWS calendar folder id as its last full read stored it (None: never
        read over EWS)."""
        async with self._connector.session() as session:
            row = await session.fetch_one("room_calendar_folder_id", {"mailbox": mailbox})
        return row["calendar_folder_id"] if row else None

    async def by_ids(self, subscription_ids: Iterable[str]) -> dict[str, Row]:
        """The records of these subscriptions (one query), by id; unknown ids are left out."""
        rows = await self._fetch("subscriptions_by_ids", {"ids": sorted(set(subscription_ids))})
        return {row["subscription_id"]: row for row in rows}

    async def by_id(self, subscription_id: str) -> Row | None:
        async with self._connector.session() as session:
            return await session.fetch_one(
                "subscription_by_id", {"subscription_id": subscription_id}
            )

    async def retired_since(self, protocol: str, since: datetime) -> bool:
        """Whether a subscription of `protocol` was retired at or after `since`."""
        [row] = await self._fetch("retired_since", {"protocol": protocol, "since": since})
        return int(row["retired"]) > 0

    async def _fetch(self, query: str, params: dict[str, Any] | None = None) -> list[Row]:
        async with self._connector.session() as session:
            return await session.fetch_all(query, params)

    async def _execute(self, query: str, params: dict[str, Any]) -> None:
        async with self._connector.session() as session:
            await session.execute(query, params)


def _live(row: Row) -> LiveSubscription:
    return LiveSubscription(
        subscription_id=row["subscription_id"],
        mailbox=row["mailbox"],
        protocol=row["protocol"],
        state=row["state"],
        status_frequency=row["status_frequency"] or DEFAULT_STATUS_FREQUENCY,
        last_event_at=row["last_event_at"] or row["created_at"],
        last_watermark=row["last_watermark"],
        expires_at=row["expires_at"],
        last_error=row["last_error"],
    )


def _time(value: datetime | str) -> datetime:
    """An aggregate's timestamp: SQLite gives it back as the stored text (no declared type)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value
