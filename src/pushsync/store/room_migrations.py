"""Rooms moved between protocols by `pushsync rooms migrate`, step by step, in the database.

A move goes `requested` -> `subscribed` (the room has a subscription over its new protocol and
is read over it from now on) -> `resynced` (read in full over the new protocol, after that
subscription began: nothing changed since is missed) -> `retired` (the old protocol's
subscription is retired; the move is over). The command records the request; the worker
carries it out (`worker/migration.py`), so a restart takes it up where it stopped. A moved room
keeps its new protocol in `room.protocol_override`, which outranks the settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pushsync.store.connector import Connector, Row

STEPS = ("requested", "subscribed", "resynced", "retired")


class RoomMigrations:
    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def request(self, moves: Iterable[tuple[str, str, str]], now: datetime) -> int:
        """Record (mailbox, source, target) moves in one transaction; a room already moving
        starts over towards its new target. Returns how many were recorded."""
        params = [
            {"mailbox": mailbox, "source": source, "target": target, "now": now}
            for mailbox, source, target in moves
        ]
        if params:
            async with self._connector.session() as session:
                await session.execute_many("request_migration", params)
        return len(params)

    async def open(self) -> list[Row]:
        """The moves not yet over, oldest request first."""
        return await self._fetch("open_migrations")

    async def of(self, mailbox: str) -> Row | None:
        async with self._connector.session() as session:
            return await session.fetch_one("migration_of", {"mailbox": mailbox})

    async def step(self, mailbox: str, target: str, seen: str, state: str, now: datetime) -> bool:
        """Move one step on from `seen`; False when the row was no longer there (another worker
        took the step, or the room was asked to move elsewhere)."""
        params = {"mailbox": mailbox, "target": target, "seen": seen, "state": state, "now": now}
        async with self._connector.session() as session:
            return bool(await session.execute("migration_step", params))

    async def failed(self, mailbox: str, error: str, now: datetime) -> None:
        """Why the current step did not go through (it is tried again next round)."""
        params = {"mailbox": mailbox, "error": error[:2000], "now": now}
        await self._execute("migration_error", params)

    async def override(self, mailbox: str, protocol: str) -> None:
        """The room belongs to `protocol` now, whatever the settings say."""
        await self._execute("override_protocol", {"mailbox": mailbox, "protocol": protocol})

    async def switch(self, mailbox: str, protocol: str) -> None:
        """Read the room over `protocol` from now on (its old cursor is dropped)."""
        await self._execute("switch_protocol", {"mailbox": mailbox, "protocol": protocol})

    async def overridden(self) -> dict[str, str]:
        """Rooms with a protocol override: mailbox -> protocol."""
        rows = await self._fetch("overridden_rooms")
        return {row["mailbox"]: row["protocol_override"] for row in rows}

    async def _fetch(self, query: str, params: dict[str, Any] | None = None) -> list[Row]:
        async with self._connector.session() as session:
            return await session.fetch_all(query, params)

    async def _execute(self, query: str, params: dict[str, Any]) -> None:
        async with self._connector.session() as session:
            await session.execute(query, params)
