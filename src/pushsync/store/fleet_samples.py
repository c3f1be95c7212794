"""The status page's history: a row a minute per worker process (`fleet_sample`), since when
each room has been out of sync (`room_out_of_sync`), and the recent rows of one room.

The worker writes (`pushsync.processes.fleet_sampler`); the admin listener reads. Every read
is a range of an index: 24 hours of samples are at most 1,440 rows per worker whatever the
number of rooms, and a room's recent notifications and changes are looked for among the newest
rows of their tables only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from pushsync.store.connector import Connector, Row

RETENTION = timedelta(days=2)  # samples older than this are deleted
RECENT_ROWS = 100_000  # a room's recent notifications and changes: among this many newest rows


@dataclass(frozen=True, slots=True)
class Sample:
    minute_at: datetime
    process: str
    received: int = 0
    worked: int = 0
    lag_p50_seconds: float | None = None
    lag_p99_seconds: float | None = None
    rooms_out_of_sync: int | None = None
    calls: int = 0
    throttled: int = 0


@dataclass(frozen=True, slots=True)
class RoomHistory:
    subscriptions: list[Row]
    notifications: list[Row]  # newest first, among the RECENT_ROWS newest of the table
    failed: list[Row]  # failed notification rows, newest first
    changes: list[Row]  # reservation changes, newest first, among the RECENT_ROWS newest


class FleetSamples:
    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def add(self, sample: Sample) -> None:
        async with self._connector.session() as session:
            await session.execute("fleet_sample_add", asdict(sample))

    async def purge(self, before: datetime) -> int:
        async with self._connector.session() as session:
            return await session.execute("fleet_sample_purge", {"before": before})

    async def history(self, since: datetime) -> list[Row]:
        """One row per minute since `since` (only minutes some worker wrote), oldest first."""
        async with self._connector.session() as session:
            rows = await session.fetch_all("fleet_history", {"since": since})
        for row in rows:  # SQLite gives a grouped timestamp back as text
            if isinstance(row["minute_at"], str):
                row["minute_at"] = datetime.fromisoformat(row["minute_at"])
        return rows

    async def newest_notification(self) -> int:
        async with self._connector.session() as session:
            row = await session.fetch_one("notification_top")
        return int(row["top"]) if row else 0

    async def arrived_after(self, after: int) -> tuple[int, int]:
        """How many notification rows have an id above `after`, and the highest id now."""
        async with self._connector.session() as session:
            row = await session.fetch_one("notifications_after", {"after": after})
        if row is None or not row["arrived"]:
            return 0, after
        return int(row["arrived"]), int(row["top"])

    async def out_of_sync(self) -> dict[str, tuple[datetime, str]]:
        """mailbox -> (since when, the problem's kind) for every room noted out of sync."""
        async with self._connector.session() as session:
            rows = await session.fetch_all("rooms_out_of_sync")
        return {row["mailbox"]: (row["since"], row["kind"]) for row in rows}

    async def note_out_of_sync(
        self, begun: Iterable[tuple[str, str]], ended: Iterable[str], now: datetime
    ) -> None:
        """`begun`: (mailbox, kind) of rooms out of sync now (a room already noted keeps its
        `since`); `ended`: rooms in sync again."""
        begins = [{"mailbox": m, "since": now, "kind": kind} for m, kind in begun]
        ends = [{"mailbox": m} for m in ended]

        if not begins and not ends:
            return
        async with self._connector.session() as session:  # one transaction
            if begins:
                await session.execute_many("room_out_of_sync_begins", begins)
            if ends:
                await session.execute_many("room_out_of_sync_ends", ends)

    async def room_since(self, mailbox: str) -> datetime | None:
        async with self._connector.session() as session:
            row = await session.fetch_one("room_out_of_sync_one", {"mailbox": mailbox})
        return row["since"] if row else None

    async def room_history(self, mailbox: str, limit: int = 25) -> RoomHistory:
        async with self._connector.session() as session:
            top = await session.fetch_one("notification_top")
            changes_top = await session.fetch_one("reservation_change_top")
            recent = {"mailbox": mailbox, "limit": limit}
            subscriptions = await session.fetch_all("room_subscription_history", recent)
            notifications = await session.fetch_all(
                "room_recent_notifications",
                recent | {"after": int(top["top"] if top else 0) - RECENT_ROWS},
            )
            failed = await session.fetch_all("room_failed_notifications", recent)
            changes = await session.fetch_all(
                "room_recent_changes",
                recent | {"after": int(changes_top["top"] if changes_top else 0) - RECENT_ROWS},
            )
        return RoomHistory(subscriptions, notifications, failed, changes)
