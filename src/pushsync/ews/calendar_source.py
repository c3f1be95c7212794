"""How the worker learns a room's calendar over EWS: GetItem for notified items, CalendarView to
expand series and to resync, in chunks that respect Exchange's limits, and SyncFolderItems for
what changed since a stored cursor.

CalendarView covers at most two years (ErrorCalendarViewRangeTooBig) and returns at most 1000
items without paging, and a truncated answer can look complete; so a window is split into
chunks, and a chunk that comes back full is split again rather than trusted.
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-get-appointments-and-meetings-by-using-ews-in-exchange

The cursor (handed back with the read, in its `RoomSnapshot` or `Changes`, and stored by the
worker in `room.sync_state` with the rows) is a SyncFolderItems sync state of the room's
calendar folder. A full read takes it *before* the CalendarView, so a change made while the
view is read comes again from the cursor; replaying it is harmless (plans are idempotent and an
older snapshot never overwrites a newer row). `observe_since` turns the
changes since a cursor into observations: created and updated items go through `observe`
(GetItem, series expanded), deleted ids are Gone; None when Exchange no longer knows the state.
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-synchronize-items-by-using-ews-in-exchange

The room's calendar folder id (is a fetched item still in the calendar? is a folder event the
calendar's own?) is learnt from the full read's items (their ParentFolderId), handed back in
its `RoomSnapshot` and stored by the worker with the rows (`room.calendar_folder_id`). A room's
notifications may go to any worker process, and a restarted one knows nothing: so when the
client has no id for a room, the stored one is asked for (`stored_calendar_id`, a lookup the
composition root gives, as Graph's `series_uids`: this module stays free of the store) and kept
in the client, before any GetFolder. GetFolder is left for a room never read (or whose reads
found its calendar empty).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pushsync.errors import SyncStateExpired
from pushsync.ews.calendar_items import is_series_master, to_reservation
from pushsync.ews.client import EwsClient, FolderChanges
from pushsync.model.reservation import Changes, Gone, Observation, RoomSnapshot, Snapshot, Window

MAX_VIEW_ITEMS = 1000
MAX_CHUNK = timedelta(days=180)
MIN_CHUNK = timedelta(hours=1)
# mailbox -> the calendar folder id stored by the room's last full read, if any
StoredCalendarId = Callable[[str], Awaitable[str | None]]


async def _none_stored(mailbox: str) -> str | None:
    return None


class EwsCalendar:
    def __init__(
        self,
        client: EwsClient,
        *,
        past: timedelta,
        future: timedelta,
        clock: Callable[[], datetime],
        fetch_chunk: int = 25,
        stored_calendar_id: StoredCalendarId = _none_stored,
    ) -> None:
        self._client = client
        self._stored_calendar_id = stored_calendar_id
        self._past = past
        self._future = future
        self._clock = clock
        self._fetch_chunk = fetch_chunk

    def window(self) -> Window:
        now = self._clock()
        return Window(now - self._past, now + self._future)

    @property
    def calls(self) -> int:
        return self._client.calls

    async def observe(self, mailbox: str, item_ids: Sequence[str]) -> list[Observation]:
        """What the calendar says now about these items (one GetItem batch, one view if series)."""
        if not item_ids:
            return []
        calendar_id = await self.calendar_folder_id(mailbox)
        fetched = await self._client.fetch(mailbox, item_ids, chunk_size=self._fetch_chunk)
        observations: list[Observation] = []
        masters = []
        for result in fetched:
            item = result.item
            if item is None or _folder_id(item) not in (None, calendar_id):
                observations.append(Gone(mailbox, result.item_id))
            elif is_series_master(item) or item.type in ("Occurrence", "Exception"):
                masters.append(item)
            else:
                row = to_reservation(mailbox, item)
                observations.append(
                    Snapshot(mailbox, row.uid, (row,), last_modified=row.last_modified)
                )
        if masters:
            observations += await self._expand(mailbox, masters)
        return observations

    async def calendar_folder_id(self, mailbox: str) -> str:
        """The client's id of the room's calendar folder, else the stored one (then kept in
        the client: one lookup per room and process), else the client's GetFolder."""
        if self._client.known_calendar_id(mailbox) is None:
            stored = await self._stored_calendar_id(mailbox)
            if stored:
                self._client.remember_calendar_id(mailbox, stored)
        return await self._client.calendar_folder_id(mailbox)

    async def observe_since(
        self, mailbox: str, cursor: str, also: Sequence[str] = ()
    ) -> Changes | None:
        """The changes since a stored cursor (SyncFolderItems), with the items `also` named
        fetched in the same GetItem batches; None when a full round is needed."""
        try:
            changes = await self._client.sync_calendar(mailbox, cursor)
        except SyncStateExpired:
            return None
        deleted = set(changes.deleted)
        fetch = sorted({*changes.changed, *also} - deleted)
        observations: list[Observation] = [Gone(mailbox, item_id) for item_id in sorted(deleted)]
        observations += await self.observe(mailbox, fetch)
        return Changes(observations, changes.sync_state)

    async def observe_room(self, mailbox: str, cursor: str | None = None) -> RoomSnapshot:
        """Everything in the room's calendar inside the sync window (a full resync). The
        cursor is taken first, so nothing between it and the view is lost: the stored one moved
        on (one short SyncFolderItems) when there is one, else from an empty state (paging
        through every item id the calendar ever held). The changes themselves are ignored: the
        view that follows holds them."""
        start = await self._start_cursor(mailbox, cursor)
        window = self.window()
        taken_at = self._clock()
        items = await self._view(mailbox, window)  # the client notes the calendar's id
        occurrences: dict[str, list[str]] = defaultdict(list)  # uid -> its occurrences' ids
        for item in items:
            if item.type in ("Occurrence", "Exception"):
                occurrences[item.uid].append(item.id)
        master_ids = await self._series_masters(mailbox, occurrences)
        # A series deleted between the view and the lookup has no master any more: its
        # occurrences are gone too, and rows stored without the master's id could never be
        # matched by the deletion's notification.
        gone = {uid for uid in occurrences if uid not in master_ids}
        rows = tuple(
            to_reservation(mailbox, item, series_master_id=master_ids.get(item.uid))
            for item in items
            if item.uid not in gone
        )
        return RoomSnapshot(
            mailbox,
            rows,
            window,
            taken_at,
            cursor=start.sync_state,
            calendar_folder_id=self._client.known_calendar_id(mailbox),
        )

    async def _series_masters(
        self, mailbox: str, occurrences: dict[str, list[str]]
    ) -> dict[str, str]:
        """uid -> its series master's id, looked up through one occurrence of each series. An
        occurrence deleted since the view hides its master: another of the series (the last
        one) is tried, and only a series whose second lookup fails too counts as deleted."""
        found: dict[str, str] = {}
        for pick in (0, -1):
            ask = {
                uid: ids[pick]
                for uid, ids in occurrences.items()
                if uid not in found and (pick == 0 or len(ids) > 1)
            }
            if not ask:
                break
            answers = await self._client.masters(
                mailbox, list(ask.values()), chunk_size=self._fetch_chunk
            )
            found |= {
                uid: a.item.id for uid, a in zip(ask, answers, strict=True) if a.item is not None
            }
        return found

    async def _start_cursor(self, mailbox: str, cursor: str | None) -> FolderChanges:
        if cursor:
            with contextlib.suppress(SyncStateExpired):
                return await self._client.sync_calendar(mailbox, cursor)
        return await self._client.sync_calendar(mailbox, None)

    async def _expand(self, mailbox: str, masters: list[Any]) -> list[Observation]:
        window = self.window()
        by_uid: dict[str, list[Any]] = defaultdict(list)
        for item in await self._view(mailbox, window):
            by_uid[item.uid].append(item)
        observations: list[Observation] = []
        master_ids = await self._master_ids(mailbox, masters)
        for master in masters:
            master_id = master_ids.get(master.id)
            if master_id is None:  # the series was deleted since GetItem: nothing of it is left
                observations.append(Snapshot(mailbox, master.uid, (), window=window))
                continue
            rows = tuple(
                to_reservation(mailbox, occ, series_master_id=master_id)
                for occ in by_uid[master.uid]
            )
            last_modified = to_reservation(mailbox, master).last_modified if master.start else None
            observations.append(
                Snapshot(mailbox, master.uid, rows, last_modified=last_modified, window=window)
            )
        return observations

    async def _master_ids(self, mailbox: str, items: list[Any]) -> dict[str, str]:
        """Item id -> its series master's id. A notification may name an occurrence or an
        exception instead of the master; rows stored without the master's id could never be
        matched when the whole series is deleted, so those are looked up (RecurringMasterItemId).
        """
        ids = {item.id: item.id for item in items if is_series_master(item)}
        members = [item.id for item in items if not is_series_master(item)]
        if members:
            found = await self._client.masters(mailbox, members, chunk_size=self._fetch_chunk)
            ids.update({f.item_id: f.item.id for f in found if f.item is not None})
        return ids

    async def _view(self, mailbox: str, window: Window) -> list[Any]:
        """CalendarView over the window in chunks; a full chunk is halved until it is not."""
        items: dict[tuple[str, Any], Any] = {}
        pending = _chunks(window.start, window.end, MAX_CHUNK)
        while pending:
            start, end = pending.pop(0)
            found = await self._client.calendar_view(mailbox, start, end, max_items=MAX_VIEW_ITEMS)
            if len(found) >= MAX_VIEW_ITEMS and end - start > MIN_CHUNK:
                middle = start + (end - start) / 2
                pending[:0] = [(start, middle), (middle, end)]
                continue
            for item in found:  # an item spanning two chunks comes back from both
                items[(item.id, item.start)] = item
        return list(items.values())


def _chunks(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    chunks = []
    while start < end:
        chunks.append((start, min(start + size, end)))
        start += size
    return chunks


def _folder_id(item: Any) -> str | None:
    parent = getattr(item, "parent_folder_id", None)
    return getattr(parent, "id", None)
