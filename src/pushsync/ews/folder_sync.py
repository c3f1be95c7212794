"""Folder events: when Exchange names no item, catch the room up from its sync cursor.

A change to an item is notified as the item's event plus a ModifiedEvent of its folder
(docs/protocol.md §1), but Exchange may coalesce a burst into the folder's event alone, which names
nothing to fetch. So when a mailbox's rows hold an event of its calendar folder itself, the
worker asks the source for every change since the room's stored cursor (`room.sync_state`; EWS:
one SyncFolderItems round), fetches those items together with the ones the rows named (each
once), applies them, and stores the new cursor in the same transaction: a failure or a
throttled call before leaves the old one, and the changes come again. Without a cursor, or with
one Exchange no longer knows, nothing is guessed: the room is queued for a full resync, which
stores a fresh cursor.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pushsync.model.reservation import Changes
from pushsync.store.notification_queue import Claimed
from pushsync.store.subscriptions import Subscriptions

log = logging.getLogger(__name__)

NOT_FOLDER_EVENTS = frozenset({"Status", "Error"})
UNPAIRED_ITEM_EVENTS = frozenset({"FreeBusyChanged", "NewMail"})


@runtime_checkable
class FolderSource(Protocol):
    """A source whose folder events can be caught up from a cursor (EWS)."""

    async def calendar_folder_id(self, mailbox: str) -> str: ...

    async def observe_since(
        self, mailbox: str, cursor: str, also: Sequence[str] = ()
    ) -> Changes | None:
        """Changes since the cursor, with the items `also` names fetched alongside; None when
        the cursor is no longer valid."""


def folder_events(rows: Sequence[Claimed]) -> set[str]:
    """The folders with a change that no item event names.

    Each item change comes with one ModifiedEvent of its folder (of both folders for a move):
    that pair counts once, as the item's fetch covers it. Only folder events beyond the item
    events of their folder say that Exchange coalesced changes into the folder event alone.
    FreeBusyChanged and NewMail come without a folder event of their own, so they pair with
    none. Were Exchange to merge the folder events of several item changes, a change reported
    by its folder event alone could pass unseen here; the next unpaired folder event catches it
    up from the cursor, and the daily full resync at the latest.
    """
    folder_changes: Counter[str] = Counter()
    item_changes: Counter[str] = Counter()
    for r in rows:
        event = r.notification
        if event.event_type in NOT_FOLDER_EVENTS:
            continue
        if event.item_id and event.event_type not in UNPAIRED_ITEM_EVENTS:
            parents = (event.parent_folder_id, event.old_parent_folder_id)
            item_changes.update({folder for folder in parents if folder is not None})
        elif event.folder_id:
            folder_changes[event.folder_id] += 1
    return {folder for folder, n in folder_changes.items() if n > item_changes[folder]}


async def changes_since_cursor(
    subscriptions: Subscriptions,
    source: object,
    mailbox: str,
    rows: Sequence[Claimed],
    also: Sequence[str],
) -> Changes | None:
    """What changed since the room's cursor when the rows hold an event of its calendar folder
    (the caller stores `cursor` once they are applied). None when there is no such event, and
    when a full resync was asked for instead: the rows' own items are then fetched as usual."""
    folders = folder_events(rows)
    if not folders or not isinstance(source, FolderSource):
        return None
    if await source.calendar_folder_id(mailbox) not in folders:
        return None  # a subfolder's event: nothing in the calendar itself changed
    cursor = await subscriptions.sync_state(mailbox)
    changes = await source.observe_since(mailbox, cursor, also) if cursor else None
    if changes is None:
        reason = "sync state expired" if cursor else "no sync state"
        if cursor:  # the resync should not try it again
            await subscriptions.save_sync_state(mailbox, None)
        await subscriptions.request_resync(mailbox, reason)
        log.info("folder event needs a resync", extra={"mailbox": mailbox, "reason": reason})
    return changes
