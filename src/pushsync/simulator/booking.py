"""How a room mailbox processes what organizers send: the Resource Booking Attendant.

The settings mirror `Set-CalendarProcessing` (defaults as Exchange Online ships them):
https://learn.microsoft.com/powershell/module/exchange/set-calendarprocessing
The room's copy is not the organizer's (docs/protocol.md §7): the subject becomes the
organizer's name, the body and private flag are stripped, cancelled meetings stay, a series is
cut at the booking window, and a conflicting request is declined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pushsync.simulator.items import CalendarItem, Instance, Response


@dataclass(frozen=True, slots=True)
class BookingSettings:
    """Per-room calendar processing."""

    replace_subject: bool = True  # DeleteSubject + AddOrganizerToSubject
    keep_cancelled: bool = True  # RemoveCanceledMeetings = false
    booking_window_days: int = 180  # BookingWindowInDays, with EnforceSchedulingHorizon
    decline_conflicts: bool = True  # AllowConflicts = false, MaximumConflictInstances = 0
    # How often accepting shows up as a delete plus a create of the same meeting (0..1).
    recreate_rate: float = 0.0
    # Exchange time between the tentative write and the attendant's answer.
    attendant_delay_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class Room:
    email: str
    name: str
    time_zone: str  # IANA; rendered to Windows ids on the wire
    booking: BookingSettings = field(default_factory=BookingSettings)


def window_end(room: Room, now: datetime) -> datetime:
    return now + timedelta(days=room.booking.booking_window_days)


def cut_to_window(item: CalendarItem, room: Room, now: datetime) -> None:
    """A series reaching past the booking window is accepted up to the window's last day."""
    if item.recurrence is None:
        return
    last_day = window_end(room, now).astimezone(item.zone).date()
    slots = item.original_starts()
    numbered = item.recurrence.count is not None and bool(slots)
    if numbered and slots[-1].astimezone(item.zone).date() <= last_day:
        return  # a numbered series that ends inside the window stays as it is
    item.recurrence = item.recurrence.cut(last_day)


def decide(item: CalendarItem, booked: list[Instance], room: Room, now: datetime) -> Response:
    """Accept or decline: outside the window, or overlapping an accepted booking, is declined."""
    if item.start >= window_end(room, now):
        return Response.DECLINE
    if not room.booking.decline_conflicts:
        return Response.ACCEPT
    for original_start in item.original_starts():
        if original_start in item.deleted:
            continue
        slot = item.modified.get(original_start)
        start = slot.start if slot else original_start
        end = slot.end if slot else original_start + item.duration
        if overlaps(start, end, booked):
            return Response.DECLINE
    return Response.ACCEPT


def overlaps(start: datetime, end: datetime, booked: list[Instance]) -> bool:
    """Whether [start, end) meets an accepted, not cancelled booking."""
    return any(
        other.start < end and start < other.end
        for other in booked
        if other.response is Response.ACCEPT and not other.cancelled
    )


def rewrite(item: CalendarItem, room: Room) -> None:
    """The room's copy after processing: organizer's name as subject, no body, not private."""
    if room.booking.replace_subject:
        item.subject = item.organizer.name
        for modification in item.modified.values():
            modification.subject = None
    item.body = ""
    item.sensitivity = "Normal"
