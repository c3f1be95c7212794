"""Rooms found in the directory (Graph's Places API), and letting go of those it stops listing.

A listed room is a row of `room` with its details (display name, capacity, building, floor) and
`discovered_from` (the room list's address, or `ALL_ROOMS`). A room the directory no longer
lists gets `missing_since`; only once `RoomDiscovery` decides the grace period is over is it
let go of (`let_go`): its subscriptions retired, its reservations deleted with a `delete` in
`reservation_change` each, and `removed_at` set, all in one transaction. A room listed again
is taken back and read in full.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pushsync.store.connector import Connector, Row
from pushsync.store.reservation_book import change_values

ALL_ROOMS = "all rooms"  # `discovered_from` of a room found by listing every room


@dataclass(frozen=True, slots=True)
class ListedRoom:
    """One room as the directory describes it."""

    mailbox: str
    display_name: str | None = None
    capacity: int | None = None
    building: str | None = None
    floor_number: int | None = None
    discovered_from: str = ALL_ROOMS


class RoomDirectory:
    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def listed(self, rooms: Iterable[ListedRoom], protocol: str, now: datetime) -> None:
        """Record the rooms the directory lists now (new ones, refreshed details)."""
        params = [
            {
                "mailbox": room.mailbox,
                "protocol": protocol,
                "now": now,
                "display_name": room.display_name,
                "capacity": room.capacity,
                "building": room.building,
                "floor_number": room.floor_number,
                "discovered_from": room.discovered_from,
            }
            for room in rooms
        ]
        if params:
            async with self._connector.session() as session:
                await session.execute_many("upsert_listed_room", params)

    async def known(self) -> list[Row]:
        """Every room the directory gave us: mailbox, discovered_from, missing_since,
        removed_at (None while pushsync keeps it)."""
        async with self._connector.session() as session:
            return await session.fetch_all("listed_rooms")

    async def missing(self, mailboxes: Iterable[str], now: datetime) -> None:
        """These rooms are no longer listed (their first time keeps `missing_since`)."""
        params = [{"mailbox": m, "now": now} for m in mailboxes]
        if params:
            async with self._connector.session() as session:
                await session.execute_many("mark_room_missing", params)

    async def let_go(self, mailbox: str, reason: str, now: datetime) -> int:
        """Stop keeping the room: retire its subscriptions, delete its reservations (each
        recorded as a `delete` change), mark it removed. Returns the reservations deleted."""
        async with self._connector.session() as session:
            await session.execute("lock_room_reservations", {"mailbox": mailbox})
            keys = await session.fetch_all("room_reservation_keys", {"mailbox": mailbox})
            for key in keys:
                await session.execute("delete_reservation", dict(key))
            changes = [
                change_values((key["mailbox"], key["uid"], key["original_start"]), "delete", now)
                for key in keys
            ]
            if changes:
                await session.execute_many("record_reservation_change", changes)
            await session.execute(
                "retire_room_subscriptions", {"mailbox": mailbox, "now": now, "reason": reason}
            )
            await session.execute("let_go_of_room", {"mailbox": mailbox, "now": now})
        return len(keys)

    async def answered(self, source: str, listed: int, problem: str | None, now: datetime) -> None:
        """Note a source's last answer: how many rooms, and why it changed nothing, if so."""
        params = {"source": source, "listed": listed, "problem": problem, "now": now}
        async with self._connector.session() as session:
            await session.execute("record_discovery_answer", params)

    async def answers(self) -> list[Row]:
        """Each source's last answer (source, checked_at, listed, problem)."""
        async with self._connector.session() as session:
            return await session.fetch_all("discovery_answers")

    async def active(self) -> list[Row]:
        """Rooms pushsync keeps in sync (not let go of): mailbox, protocol."""
        async with self._connector.session() as session:
            return await session.fetch_all("active_rooms")
