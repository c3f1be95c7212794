"""What a Graph lifecycle notification means for our bookkeeping (the worker applies it).

https://learn.microsoft.com/graph/change-notifications-lifecycle-events

- `reauthorizationRequired`: the subscription needs renewing soon; it is marked broken with
  that reason and the Graph subscription manager renews it (which reauthorizes too).
- `subscriptionRemoved`: Graph ended it; marked broken, so the manager recreates it (with no
  DELETE: Graph no longer has it) and asks for a resync of the room, whose changes in between
  were not notified. A renewal answered 404 or 400 is read the same way by the manager
  (`Subscriptions.mark_gone`), since app-only subscriptions may end without this event.
- `missed`: some notifications were dropped; the room gets a full resync.
Any Graph row is also a sign of life of its subscription.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pushsync.graph.change_notification import (
    MISSED,
    REAUTHORIZATION_REQUIRED,
    SUBSCRIPTION_REMOVED,
)
from pushsync.store.subscriptions import Subscriptions


async def note_graph_rows(
    subscriptions: Subscriptions,
    mailbox: str,
    subscription_id: str,
    event_types: Sequence[str],
    last_received_at: datetime,
) -> None:
    """Apply one subscription's lifecycle events (in arrival order) and note it was heard."""
    await subscriptions.heard(subscription_id, last_received_at, None)
    kinds = set(event_types)
    if SUBSCRIPTION_REMOVED in kinds:
        await subscriptions.mark_broken(subscription_id, SUBSCRIPTION_REMOVED)
    elif REAUTHORIZATION_REQUIRED in kinds:
        await subscriptions.mark_broken(subscription_id, REAUTHORIZATION_REQUIRED)
    if MISSED in kinds:
        await subscriptions.request_resync(mailbox, "Graph notifications missed")
