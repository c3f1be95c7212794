"""One row of the notification table, whatever protocol brought it.

The column names are a public interface (see docs/notification-table.md); the receiver of each
protocol turns an inbound request into a list of these and the inbox writes them in one commit.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal, NamedTuple

Protocol = Literal["ews", "graph"]


class UnknownSubscriptions(StrEnum):
    """What to do with a notification whose subscription id is not in the subscription table."""

    ACCEPT = "accept"  # store it (the default until the subscription manager owns the table)
    UNSUBSCRIBE = "unsubscribe"  # store nothing and tell Exchange to end the subscription


class Notification(NamedTuple):
    """One event as it arrived. Ids are opaque, case-sensitive strings.

    A named tuple rather than a frozen dataclass: as immutable, and much cheaper to build (a
    frozen dataclass sets each field through object.__setattr__), which counts on the
    receiver's hot path, where every request builds one per event.
    """

    protocol: Protocol
    subscription_id: str
    event_type: str
    watermark: str | None = None
    previous_watermark: str | None = None
    more_events: bool | None = None
    event_time: datetime | None = None
    item_id: str | None = None
    item_change_key: str | None = None
    folder_id: str | None = None
    folder_change_key: str | None = None
    parent_folder_id: str | None = None
    parent_folder_change_key: str | None = None
    old_item_id: str | None = None
    old_folder_id: str | None = None
    old_parent_folder_id: str | None = None
    unread_count: int | None = None
    response_code: str | None = None
    resource: str | None = None
    remote_addr: str | None = None

    def event_key(self) -> bytes | None:
        """What makes a redelivered event the same event. EWS: protocol, subscription and
        watermark. Graph has no watermark; a change is its subscription, change type, item and
        the item's version (`@odata.etag`, kept as the change key), so Graph's duplicate and
        redelivered notifications of one change add one row (none without an etag)."""
        if self.protocol == "graph":
            if self.item_change_key is None:
                return None
            change = (
                f"{self.event_type}\x00{self.item_id or self.resource}\x00{self.item_change_key}"
            )
            return event_key("graph", self.subscription_id, change)
        return event_key(self.protocol, self.subscription_id, self.watermark)


def event_key(protocol: str, subscription_id: str, watermark: str | None) -> bytes | None:
    """The redelivery key of the `sync_notification` row for one event (NULL without watermark)."""
    if watermark is None:
        return None
    key = f"{protocol}\x00{subscription_id}\x00{watermark}".encode()
    return hashlib.blake2b(key, digest_size=16).digest()
