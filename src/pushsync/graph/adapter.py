"""The worker's view of Graph rows: the change types, and the lifecycle events that speak of
their subscription (`lifecycle.py`).

A room's notifications are answered from its stored cursor (`room.sync_state`, the delta link):
one calendarView delta round brings every change since the last one, however many events the
burst named, so a burst costs one call (plus one instances call per changed series) instead
of one GET per event. The worker writes the new cursor in the transaction of the round's
reservations, so a worker that dies before that commit leaves the old cursor and the next
round brings the same changes again. Without a usable cursor (none yet, its window outgrown, or 410
SyncStateNotFound) the named events are fetched one by one as before; a refused cursor is
cleared and the room queued for a full resync, which stores a fresh one (docs/graph.md, "A
burst is one delta round"). A room with no cursor at all is not queued again: it has not had
its first resync yet (due anyway) or is queued already.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
https://learn.microsoft.com/graph/api/event-delta
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pushsync.graph.change_notification import LIFECYCLE_EVENTS
from pushsync.graph.lifecycle import note_graph_rows
from pushsync.model.reservation import Changes
from pushsync.store.connector import Row
from pushsync.store.notification_queue import Claimed
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.adapter import CalendarSource, IncrementalSource

log = logging.getLogger(__name__)
FETCHED_EVENTS = frozenset({"created", "updated"})
GONE_EVENTS = frozenset({"deleted"})


class GraphAdapter:
    def __init__(self, source: CalendarSource, subscriptions: Subscriptions) -> None:
        self._source = source
        self._subscriptions = subscriptions

    @property
    def source(self) -> CalendarSource:
        return self._source

    @property
    def periodic_reads_whole(self) -> bool:
        """No: a delta cursor covers a window 7 days beyond the sync window's end, so the
        daily resync starts from it (one call for a quiet room), and the full round that
        repairs drift comes once that window is outgrown, weekly (docs/graph.md)."""
        return False

    def reports_change(self, event_type: str) -> bool:
        return event_type not in LIFECYCLE_EVENTS

    def items(self, rows: Sequence[Claimed]) -> tuple[set[str], list[str]]:
        gone = _named(rows, GONE_EVENTS)
        fetch = _named(rows, FETCHED_EVENTS)
        return gone, sorted(fetch - gone)

    async def changes_since_cursor(
        self, mailbox: str, rows: Sequence[Claimed], fetch: Sequence[str]
    ) -> Changes | None:
        """Every change since the room's cursor when the rows report any; None when there is
        no usable cursor: the named events are then fetched. A room without one has not been
        read whole yet, or is queued for it; one whose cursor Graph refused (410) or whose
        window it outgrew is queued for a full resync here, once."""
        if not isinstance(self._source, IncrementalSource):
            return None
        if not any(self.reports_change(r.event_type) for r in rows):
            return None
        cursor = await self._subscriptions.sync_state(mailbox)
        if cursor is None:  # not read whole yet (its first resync is due anyway), or queued
            return None
        changes = await self._source.observe_since(mailbox, cursor)
        if changes is None:  # cleared, so that the resync, and the next rows, do not try it
            await self._subscriptions.save_sync_state(mailbox, None)
            await self._subscriptions.request_resync(mailbox, "delta cursor unusable")
            log.info("notifications need a resync", extra={"mailbox": mailbox})
        return changes

    async def note_subscription(
        self, mailbox: str, subscription_id: str, rows: Sequence[Claimed], record: Row | None
    ) -> bool:
        types = [r.event_type for r in rows]
        received_at = rows[-1].received_at
        await note_graph_rows(self._subscriptions, mailbox, subscription_id, types, received_at)
        return False  # note_graph_rows notes it heard (Graph has no watermark)


def _named(rows: Sequence[Claimed], kinds: frozenset[str]) -> set[str]:
    return {
        r.notification.item_id for r in rows if r.event_type in kinds and r.notification.item_id
    }
