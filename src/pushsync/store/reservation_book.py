"""The reservation table: load what a plan needs, apply a plan in one transaction."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pushsync.model.reservation import Plan, Reservation, ReservationKey
from pushsync.store.connector import Connector, Row, Session

Decide = Callable[[list[Reservation]], Plan]  # stored rows -> the writes to make


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # leave the room's stored cursor as it is
Cursor = str | None | _Keep

# Reservation attribute -> column, where they differ (start and end are SQL keywords)
_COLUMNS = {"start": "start_at", "end": "end_at"}
# A plan's rows go positionally, in these orders (a test holds both dialects' statements to
# them): on PostgreSQL one statement per plan, the rows as one array per column (unnest); on
# SQLite one multi-row INSERT. psycopg's executemany sent a statement per row, and composing
# them was a tenth of the worker's CPU in a 50,000-room onboarding (docs/benchmarks.md).
UPSERT_COLUMNS: tuple[str, ...] = (
    *(_COLUMNS.get(name, name) for name in Reservation.__slots__),
    "last_synced_at",
)
CHANGE_COLUMNS: tuple[str, ...] = ("changed_at", "mailbox", "uid", "original_start", "change")


class Reservations:
    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def for_meetings(
        self, mailbox: str, uids: Iterable[str], item_ids: Iterable[str]
    ) -> list[Reservation]:
        """Stored rows of these meetings (by UID) or items (by item or series master id)."""
        params = {"mailbox": mailbox, "uids": sorted(set(uids)), "item_ids": sorted(set(item_ids))}
        return await self._load("reservations_for_meetings", params)

    async def reconcile(
        self,
        mailbox: str,
        uids: Iterable[str],
        item_ids: Iterable[str],
        decide: Decide,
        now: datetime,
        *,
        resynced: int | None = None,
        cursor: Cursor = KEEP,
    ) -> Plan:
        """Load the rows of these meetings, decide, and write, all in one transaction.

        `resynced`: the room is now up to date as of a resync begun under this resync
        generation (`Subscriptions.resync_generation`); its request is cleared unless a newer
        one came while it read. `cursor`: the room's new sync state (`room.sync_state`, None
        to clear it), written in the same transaction, so that it is never stored without the
        rows it moves past; by default the stored one is kept.

        Loading and writing apart lets two workers interleave: both load the old row, the one
        with the newer item writes first, and the other then overwrites it with its older
        item. Inside one transaction holding the room's lock the second one sees the newer
        row, and `plan` skips its older snapshot.
        """
        params = {"mailbox": mailbox, "uids": sorted(set(uids)), "item_ids": sorted(set(item_ids))}
        return await self._reconcile(
            mailbox,
            "reservations_for_meetings",
            params,
            decide,
            now,
            resynced=resynced,
            cursor=cursor,
        )

    async def reconcile_room(
        self,
        mailbox: str,
        decide: Decide,
        now: datetime,
        *,
        resynced: int,
        cursor: Cursor = KEEP,
        calendar_folder_id: str | None = None,
    ) -> Plan:
        """As `reconcile`, over every row of the room (a full resync). `calendar_folder_id`:
        the room's EWS calendar folder as the read found it (`RoomSnapshot`), stored in the
        same transaction so every worker process has it; None keeps the stored one."""
        params = {"mailbox": mailbox}
        return await self._reconcile(
            mailbox,
            "reservations_for_room",
            params,
            decide,
            now,
            resynced=resynced,
            cursor=cursor,
            calendar_folder_id=calendar_folder_id,
        )

    async def _reconcile(
        self,
        mailbox: str,
        query: str,
        params: dict[str, Any],
        decide: Decide,
        now: datetime,
        *,
        resynced: int | None = None,
        cursor: Cursor = KEEP,
        calendar_folder_id: str | None = None,
    ) -> Plan:
        async with self._connector.session() as session:
            await session.execute("lock_room_reservations", {"mailbox": mailbox})
            decided = decide([_reservation(row) for row in await session.fetch_all(query, params)])
            await _write(session, decided, now)
            if resynced is not None:
                synced = {"mailbox": mailbox, "now": now, "generation": resynced}
                await session.execute("mark_room_synced", synced)
            if cursor is not KEEP:
                state = {"mailbox": mailbox, "state": cursor}
                await session.execute("save_room_sync_state", state)
            if calendar_folder_id is not None:
                folder = {"mailbox": mailbox, "folder_id": calendar_folder_id}
                await session.execute("save_room_calendar_folder_id", folder)
        return decided

    async def series_uids(self, mailbox: str, master_ids: Iterable[str]) -> dict[str, str]:
        """The UID stored for each of these series masters that has a row (one query)."""
        params = {"mailbox": mailbox, "master_ids": sorted(set(master_ids))}
        async with self._connector.session() as session:
            rows = await session.fetch_all("series_uids", params)
        return {row["series_master_id"]: row["uid"] for row in rows}

    async def for_room(self, mailbox: str) -> list[Reservation]:
        return await self._load("reservations_for_room", {"mailbox": mailbox})

    async def all(self) -> list[Reservation]:
        return await self._load("all_reservations", {})

    async def apply(self, plan: Plan, now: datetime) -> None:
        """Write a plan atomically."""
        if plan.empty:
            return
        async with self._connector.session() as session:
            await _write(session, plan, now)

    async def changes(self, after: int = 0, limit: int = 1000) -> list[Row]:
        """The writes after change `after`, oldest first (id, changed_at, mailbox, uid,
        original_start, change: upsert | delete): what a system following the table reads."""
        async with self._connector.session() as session:
            return await session.fetch_all("reservation_changes", {"after": after, "limit": limit})

    async def purge_changes(self, before: datetime, batch: int = 5000) -> int:
        """Delete changes older than `before`, in batches; returns how many."""
        purged = 0
        while True:
            async with self._connector.session() as session:
                n = await session.execute(
                    "purge_reservation_changes", {"before": before, "limit": batch}
                )
            purged += n
            if n < batch:
                return purged

    async def _load(self, query: str, params: dict[str, Any]) -> list[Reservation]:
        async with self._connector.session() as session:
            return [_reservation(row) for row in await session.fetch_all(query, params)]


async def _write(session: Session, plan: Plan, now: datetime) -> None:
    """The plan's writes, each also recorded in `reservation_change` in the same transaction."""
    changes: list[tuple[Any, ...]] = []
    for mailbox, uid, original_start in plan.deletes:
        key = {"mailbox": mailbox, "uid": uid, "original_start": original_start}
        await session.execute("delete_reservation", key)
        changes.append(change_values((mailbox, uid, original_start), "delete", now))
    # one row per key, the last one named (as one statement per row would leave it): one
    # INSERT … ON CONFLICT DO UPDATE may not touch a row twice
    upserts = list({row.key: row for row in plan.upserts}.values())
    if upserts:
        await session.execute_many("upsert_reservation", [upsert_values(r, now) for r in upserts])
        changes += [change_values(row.key, "upsert", now) for row in upserts]
    if changes:
        await session.execute_many("record_reservation_change", changes)


def change_values(key: ReservationKey, change: str, now: datetime) -> tuple[Any, ...]:
    """`record_reservation_change`'s parameters, in `CHANGE_COLUMNS` order."""
    return (now, *key, change)


def upsert_values(row: Reservation, now: datetime) -> tuple[Any, ...]:
    """`upsert_reservation`'s parameters, in `UPSERT_COLUMNS` order."""
    return (*(getattr(row, name) for name in Reservation.__slots__), now)


def _reservation(row: Row) -> Reservation:
    values = {name: row[_COLUMNS.get(name, name)] for name in Reservation.__slots__}
    values["is_all_day"] = bool(values["is_all_day"])
    values["is_cancelled"] = bool(values["is_cancelled"])
    return Reservation(**values)
