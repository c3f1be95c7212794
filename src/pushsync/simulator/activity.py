"""Seeded random booking activity: what a busy building does to its room calendars.

Each step picks an action (book, move, extend, cancel, edit / cancel / delete one occurrence,
delete, change a series' pattern) and a target; the same seed gives the same sequence of
actions for the same calendar state. New bookings include recurring series (some crossing a
daylight-saving change), all-day events, meetings in several rooms, and conflicts the rooms
decline.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.items import CalendarItem, Meeting, Person
from pushsync.simulator.recurrence import Recurrence

ORGANIZERS = tuple(
    Person(name, f"{name.split()[0].lower()}@contoso.example")
    for name in ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov")
)
SUBJECTS = ("Weekly sync", "Design review", "1:1", "Planning", "Interview", "Retro", "Offsite")

ACTIONS = (
    ("book", 30),
    ("move", 10),
    ("extend", 8),
    ("cancel", 6),
    ("edit_occurrence", 10),
    ("cancel_occurrence", 5),
    ("delete_occurrence", 6),
    ("delete", 6),
    ("change_pattern", 3),
)


class Activity:
    def __init__(self, exchange: Exchange, seed: int) -> None:
        self.exchange = exchange
        self.rng = random.Random(seed)
        self.log: list[str] = []

    def step(self) -> str:
        """Do one random action and return what was done."""
        names = [name for name, _ in ACTIONS]
        weights = [weight for _, weight in ACTIONS]
        action = self.rng.choices(names, weights)[0]
        done = getattr(self, "_" + action)() or self._book()
        self.log.append(done)
        return done

    def _book(self) -> str:
        calendars = list(self.exchange.calendars.values())
        count = 1 if self.rng.random() < 0.85 else min(len(calendars), self.rng.randint(2, 3))
        rooms = self.rng.sample(calendars, count)
        meeting = self._meeting(rooms[0])
        self.exchange.book(meeting, [c.mailbox for c in rooms])
        return f"book {meeting.uid[:8]} in {len(rooms)} room(s)"

    def _meeting(self, calendar: RoomCalendar) -> Meeting:
        zone = ZoneInfo(calendar.room.time_zone)
        today = self.exchange.clock.now().astimezone(zone).date()
        day = today + timedelta(days=self.rng.randint(0, 20))
        organizer = self.rng.choice(ORGANIZERS)
        uid = uuid.UUID(int=self.rng.getrandbits(128)).hex.upper()
        kind = self.rng.random()
        if kind < 0.1:  # all-day: local midnight to midnight in the room's zone
            start = datetime.combine(day, time(), tzinfo=zone)
            return Meeting(uid, organizer, self.rng.choice(SUBJECTS), start.astimezone(UTC),
                           (start + timedelta(days=1)).astimezone(UTC), calendar.room.time_zone,
                           all_day=True)  # fmt: skip
        start = datetime.combine(day, time(self.rng.randint(8, 17), self.rng.choice((0, 30))), zone)
        end = start + timedelta(minutes=self.rng.choice((30, 60, 90)))
        recurrence = self._pattern() if kind < 0.35 else None
        return Meeting(
            uid,
            organizer,
            self.rng.choice(SUBJECTS),
            start.astimezone(UTC),
            end.astimezone(UTC),
            calendar.room.time_zone,
            location=calendar.room.name,
            recurrence=recurrence,
        )

    def _pattern(self) -> Recurrence:
        if self.rng.random() < 0.5:
            return Recurrence(interval=1, count=self.rng.randint(5, 30))
        weekdays = tuple(sorted(self.rng.sample(range(5), self.rng.randint(1, 2))))
        return Recurrence(interval=1, weekdays=weekdays, count=self.rng.randint(4, 12))

    def _pick(self, *, series: bool | None = None) -> CalendarItem | None:
        items = [
            item
            for calendar in self.exchange.calendars.values()
            for item in calendar.items()
            if not item.cancelled and (series is None or (item.recurrence is not None) == series)
        ]
        return self.rng.choice(items) if items else None

    def _slot(self, item: CalendarItem) -> datetime | None:
        slots = [s for s in item.original_starts() if s not in item.deleted]
        return self.rng.choice(slots) if slots else None

    def _move(self) -> str | None:
        item = self._pick()
        if item is None or item.all_day:
            return None
        shift = timedelta(minutes=self.rng.choice((-60, -30, 30, 60, 24 * 60)))
        self.exchange.update(_organizers_copy(item, item.start + shift, item.end + shift))
        return f"move {item.uid[:8]} by {shift}"

    def _extend(self) -> str | None:
        item = self._pick()
        if item is None or item.all_day:
            return None
        self.exchange.update(_organizers_copy(item, item.start, item.end + timedelta(minutes=30)))
        return f"extend {item.uid[:8]}"

    def _cancel(self) -> str | None:
        item = self._pick()
        if item is None:
            return None
        self.exchange.cancel(item.uid)
        return f"cancel {item.uid[:8]}"

    def _delete(self) -> str | None:
        item = self._pick()
        if item is None:
            return None
        self.exchange.delete(item.uid, hard=self.rng.random() < 0.2)
        return f"delete {item.uid[:8]}"

    def _edit_occurrence(self) -> str | None:
        item = self._pick(series=True)
        slot = self._slot(item) if item else None
        if item is None or slot is None or item.all_day:
            return None
        shift = timedelta(minutes=self.rng.choice((-30, 30, 60)))
        self.exchange.edit_occurrence(item.uid, slot, slot + shift, slot + shift + item.duration)
        return f"edit one occurrence of {item.uid[:8]}"

    def _cancel_occurrence(self) -> str | None:
        item = self._pick(series=True)
        slot = self._slot(item) if item else None
        if item is None or slot is None:
            return None
        self.exchange.cancel(item.uid, slot)
        return f"cancel one occurrence of {item.uid[:8]}"

    def _delete_occurrence(self) -> str | None:
        item = self._pick(series=True)
        slot = self._slot(item) if item else None
        if item is None or slot is None:
            return None
        self.exchange.delete_occurrence(item.uid, slot)
        return f"delete one occurrence of {item.uid[:8]}"

    def _change_pattern(self) -> str | None:
        item = self._pick(series=True)
        if item is None or item.all_day:
            return None
        meeting = _organizers_copy(item, item.start, item.end)
        self.exchange.update(replace(meeting, recurrence=self._pattern()))
        return f"change the pattern of {item.uid[:8]}"


def _organizers_copy(item: CalendarItem, start: datetime, end: datetime) -> Meeting:
    """The organizer's version of a room's item, with new times (the room rewrote the subject)."""
    return Meeting(
        uid=item.uid,
        organizer=item.organizer,
        subject=item.subject,
        start=start,
        end=end,
        time_zone=item.time_zone,
        all_day=item.all_day,
        location=item.location,
        recurrence=item.recurrence,
    )
