"""The worker's view of Graph rows: the change types, and the lifecycle events that speak of
their subscription (`lifecycle.py`). Every Graph notification names its item, so no folder
event is caught up here; the delta cursor serves the resyncs (`calendar_source.py`).

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
"""

from __future__ import annotations

from collections.abc import Sequence

from pushsync.graph.change_notification import LIFECYCLE_EVENTS
from pushsync.graph.lifecycle import note_graph_rows
from pushsync.model.reservation import Changes
from pushsync.store.connector import Row
from pushsync.store.notification_queue import Claimed
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.adapter import CalendarSource

FETCHED_EVENTS = frozenset({"created", "updated"})
GONE_EVENTS = frozenset({"deleted"})


class GraphAdapter:
    def __init__(self, source: CalendarSource, subscriptions: Subscriptions) -> None:
        self._source = source
        self._subscriptions = subscriptions

    @property
    def source(self) -> CalendarSource:
        return self._source

    def reports_change(self, event_type: str) -> bool:
        return event_type not in LIFECYCLE_EVENTS

    def items(self, rows: Sequence[Claimed]) -> tuple[set[str], list[str]]:
        gone = _named(rows, GONE_EVENTS)
        fetch = _named(rows, FETCHED_EVENTS)
        return gone, sorted(fetch - gone)

    async def changes_since_cursor(
        self, mailbox: str, rows: Sequence[Claimed], fetch: Sequence[str]
    ) -> Changes | None:
        return None

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
