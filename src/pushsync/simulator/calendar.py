"""One room mailbox's calendar: the organizer's requests come in, the room's copy is written.

Everything here is plain values and a supplied `now`, so the behaviour (docs/protocol.md §7) is
tested without a server: a booking lands tentative and the attendant answers later (several
writes), a change to one occurrence is a write to the master, a pattern change drops the
exceptions and re-ids the occurrences, a delete moves the item to Deleted Items under a new id,
a cancelled meeting stays with IsCancelled.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pushsync.simulator import booking, ids
from pushsync.simulator.booking import Room
from pushsync.simulator.events import EventLog
from pushsync.simulator.items import (
    CalendarItem,
    Folder,
    Instance,
    Meeting,
    Modification,
    Response,
)

CANCELED_PREFIX = "Canceled: "


class UnknownMeeting(LookupError):
    """No item with that UID (or no such occurrence) in the room's calendar."""


class RoomCalendar:
    def __init__(
        self, room: Room, rng: random.Random | None = None, *, seed: str | None = None
    ) -> None:
        self.room = room
        # Made on first use: a generator's state is 2.5 KB, and at 50,000 rooms most calendars
        # of a quiet organisation are never written to.
        self._rng = rng
        self._seed = seed if seed is not None else room.email
        self.folder_ids = {folder: ids.folder_id(room.email, folder.value) for folder in Folder}
        self.root_folder_id = ids.folder_id(room.email, "msgfolderroot")
        self.log = EventLog(room.email, self.root_folder_id)
        self._items: dict[str, CalendarItem] = {}  # every item, the Deleted Items ones too
        self._pending: dict[str, datetime] = {}  # item id -> when the attendant answers
        self._occurrences: dict[str, tuple[str, datetime]] = {}  # occurrence id -> master, slot

    @property
    def mailbox(self) -> str:
        return self.room.email

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng

    # -- what organizers send ---------------------------------------------------------------

    def receive(self, meeting: Meeting, now: datetime) -> CalendarItem:
        """A meeting request or update lands tentatively; the attendant answers later."""
        item = self.by_uid(meeting.uid)
        if item is None:
            item = self._new_item(meeting, now)
            self._write(item, "Created", now)
        else:
            self._update(item, meeting)
            self._write(item, "Modified", now)
        self._pending[item.item_id] = now
        return item

    def receive_occurrence(
        self,
        uid: str,
        original_start: datetime,
        start: datetime,
        end: datetime,
        now: datetime,
        *,
        subject: str | None = None,
    ) -> CalendarItem:
        """One occurrence moved or renamed: an exception, written to and notified as the master."""
        master = self._master(uid, original_start)
        master.modified[original_start] = Modification(
            start=start, end=end, subject=subject, response=Response.TENTATIVE
        )
        self._write(master, "Modified", now)
        self._pending[master.item_id] = now
        return master

    def cancel(self, uid: str, now: datetime) -> None:
        """The organizer cancelled the meeting: kept with IsCancelled, or removed."""
        item = self._require(uid)
        self._pending.pop(item.item_id, None)
        if not self.room.booking.keep_cancelled:
            self._move_to_deleted_items(item, now)
            return
        item.cancelled = True
        item.subject = CANCELED_PREFIX + item.subject.removeprefix(CANCELED_PREFIX)
        self._write(item, "Modified", now)

    def cancel_occurrence(self, uid: str, original_start: datetime, now: datetime) -> None:
        """One occurrence cancelled: kept as a cancelled exception, or removed like a delete."""
        master = self._master(uid, original_start)
        if not self.room.booking.keep_cancelled:
            self.delete_occurrence(uid, original_start, now)
            return
        slot = master.modified.get(original_start) or Modification(
            start=original_start, end=_end(master, original_start)
        )
        slot.cancelled = True
        master.modified[original_start] = slot
        self._write(master, "Modified", now)

    def delete_occurrence(self, uid: str, original_start: datetime, now: datetime) -> None:
        """One occurrence deleted: silent in any view, notified as a change of the master."""
        master = self._master(uid, original_start)
        master.modified.pop(original_start, None)
        master.deleted.add(original_start)
        self._write(master, "Modified", now)

    def delete(self, uid: str, now: datetime, *, hard: bool = False) -> None:
        """Soft delete: a MovedEvent to Deleted Items with a new ItemId. Hard: DeletedEvent."""
        item = self._require(uid)
        self._pending.pop(item.item_id, None)
        if hard:
            del self._items[item.item_id]
            self._forget_occurrences(item)
            self.log.item_event(
                "Deleted",
                now,
                item_id=item.item_id,
                change_key=item.change_key,
                parent=self.folder_ids[Folder.CALENDAR],
            )
            return
        self._move_to_deleted_items(item, now)

    # -- what the room does -----------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether a booking waits for the attendant's answer."""
        return bool(self._pending)

    def due(self, now: datetime) -> bool:
        delay = self.room.booking.attendant_delay_seconds
        return any((now - since).total_seconds() >= delay for since in self._pending.values())

    def attend(self, now: datetime, *, force: bool = False) -> list[CalendarItem]:
        """The Resource Booking Attendant answers what waited long enough (or all, if forced)."""
        delay = self.room.booking.attendant_delay_seconds
        ready = [
            item_id
            for item_id, since in self._pending.items()
            if force or (now - since).total_seconds() >= delay
        ]
        answered = []
        for item_id in ready:
            del self._pending[item_id]
            answered.append(self._answer(self._items[item_id], now))
        return answered

    def _answer(self, item: CalendarItem, now: datetime) -> CalendarItem:
        booked = [i for i in self.instances() if i.uid != item.uid]
        if item.response is Response.TENTATIVE:
            booking.cut_to_window(item, self.room, now)
            item.response = booking.decide(item, booked, self.room, now)
        for slot in item.modified.values():
            if slot.response is Response.TENTATIVE:
                free = not booking.overlaps(slot.start, slot.end, booked)
                keep = free or not self.room.booking.decline_conflicts
                slot.response = Response.ACCEPT if keep else Response.DECLINE
        booking.rewrite(item, self.room)
        if self.rng.random() < self.room.booking.recreate_rate:
            return self._recreate(item, now)
        self._write(item, "Modified", now)
        return item

    def _recreate(self, item: CalendarItem, now: datetime) -> CalendarItem:
        """Accepting shown as a delete plus a create of the same meeting (docs/protocol.md §7)."""
        self._move_to_deleted_items(item, now)
        fresh = replace(
            item,
            item_id=ids.item_id(self.rng, self.mailbox),
            folder=Folder.CALENDAR,
            created=now,
            modified=dict(item.modified),
            deleted=set(item.deleted),
        )
        self._items[fresh.item_id] = fresh
        self._write(fresh, "Created", now)
        return fresh

    # -- reading ----------------------------------------------------------------------------

    def by_uid(self, uid: str) -> CalendarItem | None:
        for item in self._items.values():
            if item.uid == uid and item.folder is Folder.CALENDAR:
                return item
        return None

    def items(self, folder: Folder = Folder.CALENDAR) -> list[CalendarItem]:
        return [item for item in self._items.values() if item.folder is folder]

    def item(self, item_id: str) -> CalendarItem | None:
        return self._items.get(item_id)

    def occurrence(self, occurrence_id: str) -> tuple[CalendarItem, datetime] | None:
        """The master and original start behind an occurrence id, if it is current."""
        found = self._occurrences.get(occurrence_id)
        if found is None:
            return None
        master_id, original_start = found
        return self._items[master_id], original_start

    def occurrence_id(self, master: CalendarItem, original_start: datetime) -> str:
        return ids.occurrence_id(master.item_id, master.generation, original_start.isoformat())

    def instances(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        of: Iterable[CalendarItem] | None = None,
    ) -> list[Instance]:
        """Singles, occurrences and exceptions overlapping [start, end), sorted by start: of
        every calendar item, or of those `of` names."""
        found = [
            instance
            for item in (self.items() if of is None else of)
            for instance in self._expand(item, end)
            if (start is None or instance.end > start) and (end is None or instance.start < end)
        ]
        return sorted(found, key=lambda i: (i.start, i.uid))

    def _expand(self, item: CalendarItem, until: datetime | None) -> Iterator[Instance]:
        if item.recurrence is None:
            yield self.instance(item)
            return
        slots = set(item.original_starts(until)) | set(item.modified)
        for original_start in sorted(slots - item.deleted):
            yield self.instance(item, original_start)

    def instance(self, item: CalendarItem, original_start: datetime | None = None) -> Instance:
        """The view of a single item, or of one slot of a series."""
        if original_start is None:
            return _instance(self.mailbox, item, item.item_id, None, item.item_type, None)
        slot = item.modified.get(original_start)
        item_type = "Exception" if slot is not None else "Occurrence"
        occurrence_id = self.occurrence_id(item, original_start)
        return _instance(self.mailbox, item, occurrence_id, original_start, item_type, slot)

    # -- writes -----------------------------------------------------------------------------

    def _new_item(self, meeting: Meeting, now: datetime) -> CalendarItem:
        item = CalendarItem(
            item_id=ids.item_id(self.rng, self.mailbox),
            uid=meeting.uid,
            organizer=meeting.organizer,
            subject=meeting.subject,
            start=meeting.start,
            end=meeting.end,
            time_zone=meeting.time_zone,
            all_day=meeting.all_day,
            location=meeting.location,
            sensitivity=meeting.sensitivity,
            body=meeting.body,
            recurrence=meeting.recurrence,
            response=Response.TENTATIVE,
            change_key="",
            created=now,
            last_modified=now,
        )
        _first_occurrence(item)
        self._items[item.item_id] = item
        return item

    def _update(self, item: CalendarItem, meeting: Meeting) -> None:
        pattern_changed = (meeting.recurrence, meeting.start, meeting.end) != (
            item.recurrence,
            item.start,
            item.end,
        )
        if pattern_changed and item.recurrence is not None:
            # A new pattern or series time drops every exception and re-ids the occurrences.
            self._forget_occurrences(item)
            item.modified.clear()
            item.deleted.clear()
            item.generation += 1
        item.subject, item.location = meeting.subject, meeting.location
        item.start, item.end, item.all_day = meeting.start, meeting.end, meeting.all_day
        item.time_zone, item.recurrence = meeting.time_zone, meeting.recurrence
        item.body, item.sensitivity = meeting.body, meeting.sensitivity
        item.cancelled, item.response = False, Response.TENTATIVE
        item.sequence += 1
        _first_occurrence(item)

    def _write(self, item: CalendarItem, kind: str, now: datetime) -> None:
        item.change_key = ids.change_key(self.rng)
        item.last_modified = now
        if item.recurrence is not None:
            self._reindex(item)
        self.log.item_event(
            kind,
            now,
            item_id=item.item_id,
            change_key=item.change_key,
            parent=self.folder_ids[item.folder],
        )

    def _move_to_deleted_items(self, item: CalendarItem, now: datetime) -> None:
        old_id = item.item_id
        del self._items[old_id]
        self._forget_occurrences(item)
        item.item_id = ids.item_id(self.rng, self.mailbox)
        item.folder = Folder.DELETED_ITEMS
        item.change_key = ids.change_key(self.rng)
        item.last_modified = now
        self._items[item.item_id] = item
        self.log.item_event(
            "Moved",
            now,
            item_id=item.item_id,
            change_key=item.change_key,
            parent=self.folder_ids[Folder.DELETED_ITEMS],
            old_item_id=old_id,
            old_parent=self.folder_ids[Folder.CALENDAR],
        )

    def _reindex(self, master: CalendarItem) -> None:
        self._forget_occurrences(master)
        for original_start in set(master.original_starts()) | set(master.modified):
            occurrence_id = self.occurrence_id(master, original_start)
            self._occurrences[occurrence_id] = (master.item_id, original_start)

    def _forget_occurrences(self, master: CalendarItem) -> None:
        stale = [k for k, (m, _) in self._occurrences.items() if m == master.item_id]
        for occurrence_id in stale:
            del self._occurrences[occurrence_id]

    def _require(self, uid: str) -> CalendarItem:
        item = self.by_uid(uid)
        if item is None:
            raise UnknownMeeting(f"{self.mailbox} holds no meeting {uid}")
        return item

    def _master(self, uid: str, original_start: datetime) -> CalendarItem:
        master = self._require(uid)
        if master.recurrence is None or original_start not in master.original_starts():
            raise UnknownMeeting(f"{uid} has no occurrence at {original_start.isoformat()}")
        if original_start in master.deleted:
            raise UnknownMeeting(f"the occurrence at {original_start.isoformat()} is deleted")
        return master


def _first_occurrence(item: CalendarItem) -> None:
    """A master's Start/End are its first occurrence's (a weekly pattern may skip the day given)."""
    if item.recurrence is None:
        return
    first = next(iter(item.original_starts()), None)
    if first is not None and first != item.start:
        item.start, item.end = first, first + item.duration


def _end(item: CalendarItem, start: datetime) -> datetime:
    """An occurrence's end; all-day ones end at a local midnight, so across a daylight-saving
    change their UTC length is 23 or 25 hours, not the first occurrence's."""
    if not item.all_day:
        return start + item.duration
    zone = ZoneInfo(item.time_zone)
    local = start.astimezone(zone)
    days = round(item.duration / timedelta(days=1))
    midnight = datetime.combine(local.date() + timedelta(days=days), time(0), zone)
    return midnight.astimezone(UTC)


def _instance(
    mailbox: str,
    item: CalendarItem,
    item_id: str,
    original_start: datetime | None,
    item_type: str,
    slot: Modification | None,
) -> Instance:
    start = slot.start if slot else (original_start or item.start)
    end = slot.end if slot else _end(item, start)
    response = slot.response if slot and slot.response else item.response
    subject = slot.subject if slot and slot.subject else item.subject
    return Instance(
        mailbox=mailbox,
        uid=item.uid,
        original_start=original_start,
        item_id=item_id,
        master_id=item.item_id if original_start is not None else None,
        item_type=item_type,
        subject=subject,
        organizer=item.organizer,
        start=start,
        end=end,
        time_zone=item.time_zone,
        all_day=item.all_day,
        location=slot.location if slot and slot.location else item.location,
        sensitivity=item.sensitivity,
        response=response,
        cancelled=item.cancelled or bool(slot and slot.cancelled),
        change_key=item.change_key,
        last_modified=item.last_modified,
    )
