"""A mailbox's event log: what push subscriptions deliver and SyncFolderItems replays.

Each write to an item produces the item's event and a ModifiedEvent of every folder it touched
(docs/protocol.md §1: "the usual two ModifiedEvents per change"). Events are numbered per mailbox; a
watermark is that number, so a subscription can resume after it while the event is still kept
(about 30 days, then ErrorInvalidWatermark).
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/notification-subscriptions-mailbox-events-and-ews-in-exchange
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pushsync.simulator import ids

RETENTION = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class MailboxEvent:
    """One event, with the ids EWS puts in it (ItemId or FolderId, parents, old ids for moves)."""

    sequence: int
    kind: str  # Created, Modified, Moved, Deleted (the element name without "Event")
    timestamp: datetime
    parent_folder_id: str
    item_id: str | None = None
    folder_id: str | None = None
    change_key: str | None = None
    old_item_id: str | None = None
    old_parent_folder_id: str | None = None

    def touches(self, folder: str) -> bool:
        """True when a subscription on `folder` sees this event."""
        return folder in (self.parent_folder_id, self.old_parent_folder_id, self.folder_id)


Listener = Callable[[MailboxEvent], None]


class EventLog:
    def __init__(self, mailbox: str, root_folder_id: str) -> None:
        self.mailbox = mailbox
        self.root_folder_id = root_folder_id
        self.sequence = 0
        self._events: list[MailboxEvent] = []
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def watermark(self) -> str:
        return ids.watermark(self.mailbox, self.sequence)

    def item_event(
        self,
        kind: str,
        now: datetime,
        *,
        item_id: str,
        change_key: str | None,
        parent: str,
        old_item_id: str | None = None,
        old_parent: str | None = None,
    ) -> None:
        """Record an item event followed by a ModifiedEvent of each folder involved."""
        self._append(
            kind,
            now,
            parent_folder_id=parent,
            item_id=item_id,
            change_key=change_key,
            old_item_id=old_item_id,
            old_parent_folder_id=old_parent,
        )
        for folder in dict.fromkeys(f for f in (old_parent, parent) if f is not None):
            self._append("Modified", now, parent_folder_id=self.root_folder_id, folder_id=folder)

    def since(self, sequence: int) -> list[MailboxEvent]:
        return [event for event in self._events if event.sequence > sequence]

    def holds(self, sequence: int, now: datetime) -> bool:
        """Whether a watermark at `sequence` can still be resumed from."""
        self._trim(now)
        oldest = self._events[0].sequence - 1 if self._events else self.sequence
        return oldest <= sequence <= self.sequence

    def _append(self, kind: str, now: datetime, **fields: str | None) -> None:
        self.sequence += 1
        event = MailboxEvent(sequence=self.sequence, kind=kind, timestamp=now, **fields)  # type: ignore[arg-type]
        self._events.append(event)
        for listener in list(self._listeners):
            listener(event)

    def _trim(self, now: datetime) -> None:
        cutoff = now - RETENTION
        while self._events and self._events[0].timestamp < cutoff:
            self._events.pop(0)
