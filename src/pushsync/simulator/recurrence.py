"""Recurrence patterns of room-calendar series, expanded in the room's local time.

A series repeats at the same *local* wall-clock time, so its occurrences move in UTC when
daylight saving starts or ends inside it (docs/protocol.md §7, "Time"). Only the patterns the
booking activity uses are modelled: daily and weekly, ended by a count, a last date or not at all.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/recurrence-recurrencetype
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

# A series without an end is still cut here: a room keeps nothing beyond its booking window anyway.
MAX_OCCURRENCES = 2000

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True, slots=True)
class Recurrence:
    """Every `interval` days (no weekdays) or weeks (on `weekdays`, 0 = Monday)."""

    interval: int = 1
    weekdays: tuple[int, ...] = ()
    count: int | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError("interval must be at least 1")
        if any(not 0 <= day <= 6 for day in self.weekdays):
            raise ValueError("weekdays run from 0 (Monday) to 6 (Sunday)")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")

    @property
    def weekly(self) -> bool:
        return bool(self.weekdays)

    def cut(self, last: date) -> Recurrence:
        """The same pattern ending no later than `last` (a room's booking window)."""
        if self.until is not None and self.until <= last:
            return self
        return replace(self, until=last, count=None)

    def dates(self, first: date) -> Iterator[date]:
        """The local dates of the series, the first on or after `first`."""
        limit = min(self.count or MAX_OCCURRENCES, MAX_OCCURRENCES)
        for produced, day in enumerate(self._candidates(first)):
            if produced >= limit or (self.until is not None and day > self.until):
                return
            yield day

    def _candidates(self, first: date) -> Iterator[date]:
        if not self.weekly:
            day = first
            while True:
                yield day
                day += timedelta(days=self.interval)
        week = first - timedelta(days=first.weekday())
        while True:
            for weekday in sorted(set(self.weekdays)):
                day = week + timedelta(days=weekday)
                if day >= first:
                    yield day
            week += timedelta(weeks=self.interval)


def local_start(day: date, wall_time: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of `day` at the wall-clock time of `wall_time`, in `zone`."""
    local = datetime.combine(day, wall_time.time(), tzinfo=zone)
    return local.astimezone(UTC)


def occurrence_starts(
    first_start: datetime,
    zone: ZoneInfo,
    recurrence: Recurrence,
    until: datetime | None = None,
) -> Iterator[datetime]:
    """UTC starts of the occurrences of a series whose first one begins at `first_start`."""
    wall = first_start.astimezone(zone)
    for day in recurrence.dates(wall.date()):
        start = local_start(day, wall, zone)
        if until is not None and start >= until:
            return
        yield start
