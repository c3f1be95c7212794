"""The values a room calendar holds: meetings as organizers send them, the room's stored items,
and the expanded instances a CalendarView (or a test's ground truth) sees.

EWS calendar item types: Single, RecurringMaster, Occurrence, Exception. Occurrences and
exceptions live inside their master, not as items of their own.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/calendaritemtype
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from pushsync.simulator.recurrence import Recurrence, occurrence_starts


class Response(Enum):
    """The room's answer, as MyResponseType shows it."""

    TENTATIVE = "Tentative"
    ACCEPT = "Accept"
    DECLINE = "Decline"

    @property
    def free_busy(self) -> str:
        """LegacyFreeBusyStatus that goes with the answer."""
        return {"Tentative": "Tentative", "Accept": "Busy", "Decline": "Free"}[self.value]


class Folder(Enum):
    CALENDAR = "calendar"
    DELETED_ITEMS = "deleteditems"


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Meeting:
    """A meeting as its organizer sends it to one or more rooms (shared iCalendar UID)."""

    uid: str
    organizer: Person
    subject: str
    start: datetime
    end: datetime
    time_zone: str
    all_day: bool = False
    location: str = ""
    sensitivity: str = "Normal"
    body: str = ""
    recurrence: Recurrence | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("meeting times must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("a meeting must end after it starts")


@dataclass(slots=True)
class Modification:
    """One occurrence changed from its pattern: an exception (or a cancelled occurrence)."""

    start: datetime
    end: datetime
    subject: str | None = None
    location: str | None = None
    cancelled: bool = False
    response: Response | None = None


@dataclass(slots=True)
class CalendarItem:
    """A stored item: a single meeting or a recurring master with its exceptions."""

    item_id: str
    uid: str
    organizer: Person
    subject: str
    start: datetime
    end: datetime
    time_zone: str
    all_day: bool
    location: str
    sensitivity: str
    body: str
    recurrence: Recurrence | None
    response: Response
    change_key: str
    created: datetime
    last_modified: datetime
    cancelled: bool = False
    folder: Folder = Folder.CALENDAR
    generation: int = 0
    sequence: int = 0
    modified: dict[datetime, Modification] = field(default_factory=dict)
    deleted: set[datetime] = field(default_factory=set)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def item_type(self) -> str:
        return "RecurringMaster" if self.recurrence is not None else "Single"

    def original_starts(self, until: datetime | None = None) -> list[datetime]:
        """Every slot of the pattern (deleted ones included), in order."""
        if self.recurrence is None:
            return [self.start]
        return list(occurrence_starts(self.start, self.zone, self.recurrence, until))


@dataclass(frozen=True, slots=True)
class Instance:
    """One booked slot as a CalendarView returns it; the ground truth tests compare against.

    `original_start` is None for a Single item (EWS has no OriginalStart for it); for an
    occurrence or exception it is the slot's start in the pattern, which never moves.
    """

    mailbox: str
    uid: str
    original_start: datetime | None
    item_id: str
    master_id: str | None
    item_type: str
    subject: str
    organizer: Person
    start: datetime
    end: datetime
    time_zone: str
    all_day: bool
    location: str
    sensitivity: str
    response: Response
    cancelled: bool
    change_key: str
    last_modified: datetime

    @property
    def key(self) -> tuple[str, str, datetime | None]:
        """The natural key a reservation table uses: (mailbox, UID, original start)."""
        return (self.mailbox, self.uid, self.original_start)
