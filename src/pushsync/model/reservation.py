"""What a calendar change does to the reservations: a pure function over plain values.

A reservation is one booked occurrence in a room, keyed on (mailbox, iCalendar UID, original
start). Ids are kept as plain fields because they change (moves, series shifts, accepts that
arrive as delete + create); the UID and original start do not (docs/reservation-table.md).
An occurrence of a series is keyed on its series' UID (the master's iCalUId over Graph) and the
start its pattern gives it; a single meeting on its own UID with no original start (None), so
that moving it changes no part of its key. Both protocols give the same key for one booking.

The worker observes the calendar in two ways, and `plan` turns observations into writes:

- `Snapshot`: what the calendar holds now for one meeting (a single item, or a series expanded
  over a window). It *replaces* the stored set for that UID inside the window, so an occurrence
  that silently disappeared from a series is removed.
- `Gone`: an item id that no longer exists in the calendar (DeletedEvent, MovedEvent out of the
  calendar, ErrorItemNotFound). Its rows go, whether it was a single item or a series master.
- `RoomSnapshot`: a full resync: everything the room's calendar holds inside a window replaces
  every stored row of that room inside the window.

Rules: a meeting the room declined books nothing; a cancelled meeting stays, flagged; a snapshot
older than what is stored (by last-modified time, never by ChangeKey) changes nothing; rows that
are equal are not rewritten, so applying the same observation twice writes nothing the second
time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

ReservationKey = tuple[str, str, datetime | None]  # (mailbox, uid, original_start)


@dataclass(frozen=True, slots=True)
class Reservation:
    mailbox: str
    uid: str
    original_start: datetime | None  # UTC; None for a single meeting
    item_id: str
    item_type: str  # single | occurrence | exception
    start: datetime  # UTC
    end: datetime  # UTC
    subject: str = ""
    organizer: str = ""
    series_master_id: str | None = None
    time_zone: str | None = None
    is_all_day: bool = False
    location: str = ""
    sensitivity: str = "normal"
    response_state: str = "accepted"  # accepted | tentative | declined | none | organizer
    is_cancelled: bool = False
    change_key: str | None = None
    last_modified: datetime | None = None

    @property
    def key(self) -> ReservationKey:
        return (self.mailbox, self.uid, self.original_start)

    @property
    def slot(self) -> datetime:
        """What places the row in a window: its original start, or a single's start."""
        return self.start if self.original_start is None else self.original_start

    @property
    def books_the_room(self) -> bool:
        return self.response_state != "declined"


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The calendar's current state of one meeting (all rows share mailbox and uid).

    `window` is the span a series was expanded over; None for a single item, whose one
    occurrence replaces every stored row of its UID.
    """

    mailbox: str
    uid: str
    occurrences: tuple[Reservation, ...]
    last_modified: datetime | None = None
    window: Window | None = None

    def covers(self, row: Reservation) -> bool:
        if row.mailbox != self.mailbox or row.uid != self.uid:
            return False
        return self.window is None or self.window.holds(row.slot)


@dataclass(frozen=True, slots=True)
class Gone:
    """An item id that is no longer in the room's calendar."""

    mailbox: str
    item_id: str

    def covers(self, row: Reservation) -> bool:
        return row.mailbox == self.mailbox and self.item_id in (row.item_id, row.series_master_id)


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """Every occurrence of one room inside a window (a full resync).

    `taken_at` is Exchange's time when the calendar was read. A resync reads for a while
    (chunks, master lookups, throttling back-offs) while notifications keep being applied; a
    stored row modified after `taken_at` is newer than the snapshot and stays as it is.

    `cursor` is the source's cursor for the room as of this read (EWS: the sync state taken
    before the view; Graph: the round's delta link), to be stored with the rows; None for a
    source that keeps none. It travels with the read rather than being looked up in the
    source afterwards, so that another read of the room in between cannot swap it.
    `calendar_folder_id` travels the same way: the EWS calendar folder's id as this read found
    it, stored with the rows (`room.calendar_folder_id`); None when the read did not learn it
    (an empty calendar; Graph, which needs none).
    """

    mailbox: str
    occurrences: tuple[Reservation, ...]
    window: Window
    taken_at: datetime | None = None
    cursor: str | None = None
    calendar_folder_id: str | None = None

    def newer(self, row: Reservation) -> bool:
        return bool(self.taken_at and row.last_modified and row.last_modified > self.taken_at)

    def covers(self, row: Reservation) -> bool:
        return row.mailbox == self.mailbox and self.window.holds(row.slot)


Observation = Snapshot | Gone | RoomSnapshot


@dataclass(frozen=True)
class Changes:
    """What changed in a room since a stored cursor, and the cursor to store next."""

    observations: list[Observation]
    cursor: str


@dataclass(slots=True)
class Plan:
    upserts: list[Reservation] = field(default_factory=list)
    deletes: list[ReservationKey] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.deletes


def plan(stored: Iterable[Reservation], observations: Sequence[Observation]) -> Plan:
    """The writes that bring `stored` in line with `observations`, applied in order.

    `stored` must include every row the observations can cover (the caller loads rows by
    mailbox and UID or item id). Deletions are applied before snapshots, so a meeting that was
    deleted and re-created under a new id ends up booked once.
    """
    current = {row.key: row for row in stored}
    before = dict(current)
    ordered: list[Observation] = [o for o in observations if isinstance(o, RoomSnapshot)]
    ordered += [o for o in observations if isinstance(o, Gone)]
    ordered += [o for o in observations if isinstance(o, Snapshot)]
    for observation in ordered:
        current = _apply(current, observation)
    return _difference(before, current)


def _apply(
    current: dict[ReservationKey, Reservation], observation: Observation
) -> dict[ReservationKey, Reservation]:
    covered = {key for key, row in current.items() if observation.covers(row)}
    if isinstance(observation, RoomSnapshot):  # rows changed after the read are not the read's
        covered = {key for key in covered if not observation.newer(current[key])}
    kept = {key: row for key, row in current.items() if key not in covered}
    if isinstance(observation, Gone):
        return kept
    if isinstance(observation, Snapshot) and _is_stale(observation, [current[k] for k in covered]):
        return current
    for row in observation.occurrences:
        if not row.books_the_room or (observation.window and not observation.covers(row)):
            continue
        if isinstance(observation, RoomSnapshot) and row.key in kept and row.key not in covered:
            continue  # a newer version of this occurrence is stored already
        kept[row.key] = row
    return kept


def _is_stale(snapshot: Snapshot, covered: list[Reservation]) -> bool:
    """A snapshot older than what is stored for the same meeting must not overwrite it."""
    if snapshot.last_modified is None:
        return False
    return any(row.last_modified and row.last_modified > snapshot.last_modified for row in covered)


def _difference(
    before: dict[ReservationKey, Reservation], after: dict[ReservationKey, Reservation]
) -> Plan:
    result = Plan()
    result.deletes = [key for key in before if key not in after]
    result.upserts = [row for key, row in after.items() if before.get(key) != row]
    return result
