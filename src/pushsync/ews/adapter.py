"""The worker's view of EWS rows: the event kinds, what a heartbeat or an error notification
says of its subscription, the watermark gap, and folder events caught up from the cursor.

https://learn.microsoft.com/exchange/client-developer/exchange-web-services/notification-subscriptions-mailbox-events-and-ews-in-exchange
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from pushsync.ews.folder_sync import changes_since_cursor
from pushsync.model.reservation import Changes
from pushsync.store.connector import Row
from pushsync.store.notification_queue import Claimed
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.adapter import CalendarSource

FETCHED_EVENTS = frozenset({"Created", "Modified", "Copied", "Moved", "FreeBusyChanged"})
GONE_EVENTS = frozenset({"Deleted"})
NO_CHANGE_EVENTS = frozenset({"Status", "Error"})  # a heartbeat; a subscription's error


class EwsAdapter:
    def __init__(self, source: CalendarSource, subscriptions: Subscriptions) -> None:
        self._source = source
        self._subscriptions = subscriptions

    @property
    def source(self) -> CalendarSource:
        return self._source

    @property
    def periodic_reads_whole(self) -> bool:
        """SyncFolderItems reports changed items, not occurrences entering the window: the
        daily resync reads the window whole (docs/operations.md)."""
        return True

    def reports_change(self, event_type: str) -> bool:
        return event_type not in NO_CHANGE_EVENTS

    def items(self, rows: Sequence[Claimed]) -> tuple[set[str], list[str]]:
        """A move reports its old item id gone: the item lives on under the new one."""
        gone = _named(rows, GONE_EVENTS)
        gone |= {
            r.notification.old_item_id
            for r in rows
            if r.event_type == "Moved" and r.notification.old_item_id
        }
        fetch = _named(rows, FETCHED_EVENTS)
        return gone, sorted(fetch - gone)

    async def changes_since_cursor(
        self, mailbox: str, rows: Sequence[Claimed], fetch: Sequence[str]
    ) -> Changes | None:
        return await changes_since_cursor(self._subscriptions, self._source, mailbox, rows, fetch)

    async def note_subscription(
        self, mailbox: str, subscription_id: str, rows: Sequence[Claimed], record: Row | None
    ) -> bool:
        errors = [r.notification.response_code for r in rows if r.event_type == "Error"]
        if errors:
            await self._subscriptions.mark_broken(subscription_id, errors[-1] or "Error")
            return False
        if await self._missed_events(subscription_id, rows, record):
            await self._subscriptions.mark_broken(
                subscription_id, "watermark gap: events were missed"
            )
            await self._subscriptions.request_resync(mailbox, "watermark gap")
        return True

    async def _missed_events(
        self, subscription_id: str, rows: Sequence[Claimed], record: Row | None
    ) -> bool:
        """Whether a notification's PreviousWatermark is one we never received.

        Each notification names the watermark of the last event Exchange believes it delivered;
        it must be the subscription's starting watermark or one of ours, or events went missing.
        (Whether a StatusEvent's own watermark moves that position differs between servers, so
        both the start and every stored watermark count as known.)
        """
        known = {record["start_watermark"], record["last_watermark"]} if record else set()
        for previous, group in groupby(rows, key=lambda r: r.notification.previous_watermark):
            members = list(group)
            if previous and previous not in known:
                first = members[0]  # a StatusEvent has no time: Exchange's, else ours
                before = first.notification.event_time or first.received_at
                seen = self._subscriptions.watermark_seen(subscription_id, previous, before=before)
                if not await seen:
                    return True
            known.update(r.notification.watermark for r in members)
        return False


def _named(rows: Sequence[Claimed], kinds: frozenset[str]) -> set[str]:
    return {
        r.notification.item_id for r in rows if r.event_type in kinds and r.notification.item_id
    }
