"""The sync worker: notification rows in, correct reservations out, with few calls to Exchange.

Each round claims a batch of rows (with a lease), lets a burst settle for `debounce`, then
works mailbox by mailbox: heartbeats and error notifications update the subscription record,
every item named in the burst is fetched once (the item + folder ModifiedEvent pair counts
once; folder events alone carry nothing to fetch), and the pure `reservation.plan` decides the
writes. Throttling releases that mailbox's rows until the server's back-off has passed; any
other failure counts an attempt against the rows, which end `failed` after the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Protocol

from pushsync.errors import ExchangeError, Throttled
from pushsync.queue import Claimed, NotificationQueue
from pushsync.reservation import Gone, Observation, RoomSnapshot, plan
from pushsync.reservations import Reservations
from pushsync.subscriptions import Subscriptions

log = logging.getLogger(__name__)

FETCHED_EVENTS = frozenset(
    {"Created", "Modified", "Copied", "Moved", "FreeBusyChanged", "created", "updated"}
)
GONE_EVENTS = frozenset({"Deleted", "deleted"})


class CalendarSource(Protocol):
    """A protocol's way of reading a room's calendar (EWS or Graph)."""

    @property
    def calls(self) -> int:
        """Requests sent to Exchange or Graph so far."""

    async def observe(self, mailbox: str, item_ids: Sequence[str]) -> list[Observation]: ...

    async def observe_room(self, mailbox: str) -> RoomSnapshot: ...


@dataclass
class WorkerStats:
    notifications: int = 0
    lag_seconds: list[float] = field(default_factory=list)  # received -> applied, per row
    resyncs: int = 0
    failures: int = 0

    def record_lag(self, rows: Sequence[Claimed], applied_at: datetime) -> None:
        self.notifications += len(rows)
        self.lag_seconds += [(applied_at - c.row["received_at"]).total_seconds() for c in rows]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Worker:
    def __init__(
        self,
        queue: NotificationQueue,
        reservations: Reservations,
        subscriptions: Subscriptions,
        sources: dict[str, CalendarSource],
        *,
        batch_size: int = 500,
        debounce: timedelta = timedelta(milliseconds=500),
        idle_sleep: float = 0.2,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._queue = queue
        self._reservations = reservations
        self._subscriptions = subscriptions
        self._sources = sources
        self._batch_size = batch_size
        self._debounce = debounce
        self._idle_sleep = idle_sleep
        self._clock = clock
        self.stats = WorkerStats()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            worked = await self.run_once()
            worked += await self.resync_pending(limit=2)
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._idle_sleep)

    async def run_once(self) -> int:
        """Claim, settle, apply; returns how many rows were handled."""
        claimed = await self._queue.claim(self._batch_size)
        if not claimed:
            return 0
        if len(claimed) < self._batch_size and self._debounce:
            await asyncio.sleep(self._debounce.total_seconds())  # let the burst finish arriving
            claimed += await self._queue.claim(self._batch_size - len(claimed))
        by_mailbox: dict[str | None, list[Claimed]] = defaultdict(list)
        for row in claimed:
            by_mailbox[row.mailbox].append(row)
        await asyncio.gather(
            *(self._mailbox(mailbox, rows) for mailbox, rows in by_mailbox.items())
        )
        return len(claimed)

    async def resync_pending(self, limit: int) -> int:
        """Full resync of rooms that asked for one, a few per round (staggered)."""
        done = 0
        for room in await self._subscriptions.rooms_needing_resync(limit):
            done += await self.resync(room["mailbox"], room["protocol"])
        return done

    async def resync(self, mailbox: str, protocol: str = "ews") -> int:
        source = self._sources[protocol]
        try:
            snapshot = await source.observe_room(mailbox)
        except ExchangeError as exc:
            await self._subscriptions.room_error(mailbox, f"resync: {exc}", self._clock())
            return 0
        stored = await self._reservations.for_room(mailbox)
        await self._reservations.apply(plan(stored, [snapshot]), self._clock(), synced_room=mailbox)
        self.stats.resyncs += 1
        log.info(
            "room resynced", extra={"mailbox": mailbox, "occurrences": len(snapshot.occurrences)}
        )
        return 1

    async def _mailbox(self, mailbox: str | None, rows: list[Claimed]) -> None:
        if mailbox is None:  # subscription not recorded yet (its first StatusEvent races Subscribe)
            for row in rows:
                await self._queue.fail(row, "subscription not known (yet)")
            return
        await self._note_subscriptions(mailbox, rows)
        try:
            await self._apply_changes(mailbox, rows)
        except Throttled as exc:
            until = self._clock() + timedelta(seconds=exc.retry_after)
            log.warning("throttled", extra={"mailbox": mailbox, "retry_after": exc.retry_after})
            await self._queue.release([r.id for r in rows], until)
            return
        except ExchangeError as exc:
            self.stats.failures += 1
            await self._subscriptions.room_error(mailbox, str(exc), self._clock())
            for row in rows:
                await self._queue.fail(row, str(exc))
            return
        await self._queue.complete(r.id for r in rows)
        self.stats.record_lag(rows, self._clock())

    async def _apply_changes(self, mailbox: str, rows: list[Claimed]) -> None:
        gone = {r.row["item_id"] for r in rows if r.event_type in GONE_EVENTS and r.row["item_id"]}
        gone |= {
            r.row["old_item_id"] for r in rows if r.event_type == "Moved" and r.row["old_item_id"]
        }
        fetch = sorted(
            {r.row["item_id"] for r in rows if r.event_type in FETCHED_EVENTS and r.row["item_id"]}
            - gone
        )
        if not gone and not fetch:
            return
        protocol = rows[0].protocol
        observations: list[Observation] = [Gone(mailbox, item_id) for item_id in sorted(gone)]
        observations += await self._sources[protocol].observe(mailbox, fetch)
        uids = [o.uid for o in observations if hasattr(o, "uid")]
        stored = await self._reservations.for_meetings(mailbox, uids, [*gone, *fetch])
        await self._reservations.apply(plan(stored, observations), self._clock())

    async def _note_subscriptions(self, mailbox: str, rows: list[Claimed]) -> None:
        """Heartbeats, error notifications and watermark gaps, per subscription in arrival order."""
        by_subscription: dict[str, list[Claimed]] = defaultdict(list)
        for row in rows:
            by_subscription[row.subscription_id].append(row)
        for subscription_id, own in by_subscription.items():
            await self._note_subscription(mailbox, subscription_id, own)

    async def _note_subscription(
        self, mailbox: str, subscription_id: str, rows: list[Claimed]
    ) -> None:
        if rows[0].protocol != "ews":
            return
        errors = [r.row["response_code"] for r in rows if r.event_type == "Error"]
        if errors:
            await self._subscriptions.mark_broken(subscription_id, errors[-1])
            return
        if await self._missed_events(subscription_id, rows):
            await self._subscriptions.mark_broken(
                subscription_id, "watermark gap: events were missed"
            )
            await self._subscriptions.request_resync(mailbox, "watermark gap")
        last = rows[-1]
        await self._subscriptions.heard(
            subscription_id, last.row["received_at"], last.row["watermark"]
        )

    async def _missed_events(self, subscription_id: str, rows: list[Claimed]) -> bool:
        """Whether a notification's PreviousWatermark is one we never received.

        Each notification names the watermark of the last event Exchange believes it delivered;
        it must be the subscription's starting watermark or one of ours, or events went missing.
        (Whether a StatusEvent's own watermark moves that position differs between servers, so
        both the start and every stored watermark count as known.)
        """
        record = await self._subscriptions.by_id(subscription_id)
        known = {record["start_watermark"], record["last_watermark"]} if record else set()
        for previous, group in groupby(rows, key=lambda r: r.row["previous_watermark"]):
            unknown = previous and previous not in known
            if unknown and not await self._subscriptions.watermark_seen(subscription_id, previous):
                return True
            known.update(r.row["watermark"] for r in group)
        return False
