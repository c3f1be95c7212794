"""Carrying out `pushsync rooms migrate`: a room moved from one protocol to the other, with no
change lost on the way.

Each round takes every move not yet over (`store/room_migrations.py`) one step on:

1. `requested`: the room is given to the new protocol (`room.protocol_override`, so the old
   protocol's manager no longer subscribes it) and the new protocol's manager subscribes it
   (in its own round if the settings already list the room under it, else at our call). The old
   subscription stays live: both deliver for a while, and the worker applies each protocol's
   rows through its own source.
2. `subscribed`: the room is read over the new protocol from now on and resynced in full. The
   new subscription was live before that read began, so every change is either in the read or
   notified after it.
3. `resynced`: only now is the old subscription retired (EWS is answered Unsubscribe at its next
   notification; a Graph one is deleted at Graph by the Graph manager's next round).

A step that fails (Graph refused the room, the resync was throttled) notes why on the move and
is tried again next round. Reservations keep their keys: both protocols key a reservation on
the room, the meeting's iCalendar UID and the occurrence's original start (model/reservation.py).
Each round also keeps the rooms moved earlier subscribed: the managers' own room lists come from
the settings, which do not name them under their new protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime

from pushsync.model.clock import utcnow
from pushsync.model.outcome import Outcome
from pushsync.retry import Backoff, survive
from pushsync.store.connector import Row
from pushsync.store.room_migrations import RoomMigrations
from pushsync.store.subscriptions import Subscriptions

log = logging.getLogger(__name__)

Subscribe = Callable[[list[str]], Awaitable[Outcome]]  # a manager's `subscribe_missing`
Resync = Callable[[str, str], Awaitable[int]]  # (mailbox, protocol) -> 1 once read in full


class Migrator:
    def __init__(
        self,
        migrations: RoomMigrations,
        subscriptions: Subscriptions,
        subscribe: Mapping[str, Subscribe],
        resync: Resync,
        *,
        covered: Mapping[str, Iterable[str]] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._migrations = migrations
        self._subscriptions = subscriptions
        self._subscribe = dict(subscribe)  # protocol -> its manager's subscribe_missing
        # protocol -> rooms its manager's own rounds subscribe (the settings'): those are left
        # to it, so that two creators never race to subscribe one room twice
        self._covered = {p: {m.lower() for m in rooms} for p, rooms in (covered or {}).items()}
        self._resync = resync
        self._clock = clock

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """A round every `interval_s` until `stop`; a failed round is waited out."""
        backoff = Backoff()
        while not stop.is_set():
            await survive(self.round, "room migrations", backoff, stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def round(self) -> int:
        """Every open move one step on (as far as it goes); returns the moves that ended."""
        ended = 0
        for move in await self._migrations.open():
            ended += await self.advance(move)
        await self._keep_moved_subscribed()
        return ended

    async def advance(self, move: Row) -> int:
        """Take one move through as many steps as go through now; 1 if it ended."""
        steps = {"requested": self._subscribe_new, "subscribed": self._read_new}
        state = move["state"]
        while state in steps:
            state = await steps[state](move["mailbox"], move["target"]) or ""
        if state == "resynced":
            return await self._retire_old(move["mailbox"], move["target"])
        return 0

    async def _subscribe_new(self, mailbox: str, target: str) -> str | None:
        subscribe = self._subscribe.get(target)
        if subscribe is None:
            why = f"this worker does not run {target} (restart `pushsync worker` to carry it out)"
            await self._migrations.failed(mailbox, why, self._clock())
            return None
        await self._migrations.override(mailbox, target)
        outcome = Outcome() if self._covers(target, mailbox) else await subscribe([mailbox])
        if not await self._live_over(mailbox, target):
            why = outcome.failed.get(mailbox) or f"waiting for the {target} manager's next round"
            await self._migrations.failed(mailbox, f"subscribe: {why}", self._clock())
            return None
        await self._migrations.switch(mailbox, target)
        return await self._step(mailbox, target, "requested", "subscribed")

    async def _read_new(self, mailbox: str, target: str) -> str | None:
        if not await self._resync(mailbox, target):
            why = await self._room_error(mailbox)
            await self._migrations.failed(mailbox, f"resync: {why}", self._clock())
            return None
        return await self._step(mailbox, target, "subscribed", "resynced")

    async def _retire_old(self, mailbox: str, target: str) -> int:
        if await self._step(mailbox, target, "resynced", "retired") is None:
            return 0
        retired = await self._subscriptions.retire_other_protocols(mailbox, target, self._clock())
        log.info("room moved", extra={"mailbox": mailbox, "protocol": target, "retired": retired})
        return 1

    def _covers(self, protocol: str, mailbox: str) -> bool:
        return mailbox.lower() in self._covered.get(protocol, set())

    async def _step(self, mailbox: str, target: str, seen: str, state: str) -> str | None:
        moved = await self._migrations.step(mailbox, target, seen, state, self._clock())
        return state if moved else None

    async def _live_over(self, mailbox: str, protocol: str) -> bool:
        live = await self._subscriptions.live()
        return any(s.mailbox.lower() == mailbox.lower() and s.protocol == protocol for s in live)

    async def _room_error(self, mailbox: str) -> str:
        rooms = {row["mailbox"]: row for row in await self._subscriptions.rooms()}
        room = rooms.get(mailbox)
        return (room["last_error"] if room else None) or "not read (throttled or unreachable)"

    async def _keep_moved_subscribed(self) -> None:
        """Rooms moved and done get a subscription again if theirs was lost (the managers'
        own creation rounds cover only the rooms the settings give them)."""
        moving = {move["mailbox"] for move in await self._migrations.open()}
        by_protocol: dict[str, list[str]] = {}
        for mailbox, protocol in (await self._migrations.overridden()).items():
            if mailbox not in moving and protocol in self._subscribe:
                if self._covers(protocol, mailbox):
                    continue
                by_protocol.setdefault(protocol, []).append(mailbox)
        for protocol, rooms in by_protocol.items():
            await self._subscribe[protocol](rooms)
