"""The simulated organisation's state: room calendars, subscriptions, throttling, call counts.

One `Exchange` lives on the simulator's event loop; the HTTP handlers, the push deliveries and
the booking activity all run there, so the state needs no locks.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pushsync.simulator import ids
from pushsync.simulator.booking import Room
from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.clock import SimClock
from pushsync.simulator.config import SimulatorConfig
from pushsync.simulator.events import MailboxEvent
from pushsync.simulator.items import Instance, Meeting

if TYPE_CHECKING:
    from pushsync.simulator.push import PushEngine


@dataclass(frozen=True, slots=True)
class Request:
    at: float  # time.monotonic() when it was answered
    operation: str
    mailbox: str | None  # the impersonated room
    busy: bool  # answered ErrorServerBusy


class Exchange:
    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.calendars = {
            room.email.lower(): RoomCalendar(room, seed=f"{config.seed}:{room.email}")
            for room in config.rooms
        }
        # mailbox GUID (inside every folder and item id) -> calendar, so that an id is looked
        # up without walking 50,000 calendars
        self.by_guid = {ids.mailbox_guid(c.mailbox): c for c in self.calendars.values()}
        # meeting uid -> the rooms it was sent to (`book`), so that an organizer's change finds
        # its rooms without asking 50,000 calendars (a 50,000-room burst's 20,000 updates would
        # each have walked every item of every room)
        self._sent_to: defaultdict[str, set[str]] = defaultdict(set)
        self.calls: Counter[str] = Counter()  # operation -> requests answered
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once (a concurrency cap's proof)
        self.operations_in_flight: Counter[str] = Counter()
        self.max_in_flight_by_operation: Counter[str] = Counter()  # operation -> its most at once
        self.push: PushEngine | None = None  # set once the simulator's event loop runs
        # Every request (operation, impersonated mailbox, refused as busy?) when a test sets a
        # list here: what reached Exchange per mailbox, e.g. to check back-off was honoured.
        self.journal: list[Request] | None = None
        self.refusals: Counter[str] = Counter()  # operation -> next requests refused as busy
        self.sync_epochs: Counter[str] = Counter()  # mailbox -> SyncFolderItems state epoch
        # called with each mailbox `add_mailbox` creates (push and Graph webhooks watch it)
        self.mailbox_added: list[Callable[[RoomCalendar], None]] = []
        # Requests refused because the client went beyond one of Exchange's or Graph's limits
        # ("ews.concurrency", "graph.concurrency", "graph.requests", "graph.subscription_writes"):
        # a well-behaved client keeps every count at 0.
        self.violations: Counter[str] = Counter()
        self.account_in_flight: Counter[str] = Counter()  # service account -> EWS requests
        # Calendars with a booking the attendant has not answered yet: its round visits only
        # these (all 50,000 every Exchange second would be most of the simulator's time).
        self._waiting: set[str] = set()
        for calendar in self.calendars.values():
            calendar.log.listen(functools.partial(self._written, calendar.mailbox.lower()))

    def calendar(self, mailbox: str) -> RoomCalendar | None:
        return self.calendars.get(mailbox.lower())

    def add_mailbox(self, room: Room) -> RoomCalendar:
        """A room mailbox created while the organisation runs (an admin's New-Mailbox -Room)."""
        key = room.email.lower()
        if key not in self.calendars:
            self.calendars[key] = RoomCalendar(room, random.Random(f"{self.config.seed}:{key}"))
            for watch in self.mailbox_added:
                watch(self.calendars[key])
        return self.calendars[key]

    def busy(self, operation: str = "") -> bool:
        """Whether this operation is refused with ErrorServerBusy (the configured share, or
        one of the refusals a test asked for with `refuse_next`)."""
        if self.refusals[operation] > 0:
            self.refusals[operation] -= 1
            return True
        return self.config.busy_rate > 0 and self.rng.random() < self.config.busy_rate

    def refuse_next(self, operation: str, count: int = 1) -> None:
        """Answer the next `count` requests of `operation` with ErrorServerBusy (for tests)."""
        self.refusals[operation] += count

    def expire_sync_states(self, mailbox: str) -> None:
        """Forget every SyncFolderItems state issued for this mailbox so far: the next request
        with one gets ErrorInvalidSyncStateData, as an old or foreign state does in Exchange."""
        self.sync_epochs[mailbox.lower()] += 1

    def over_concurrency(self, account: str) -> bool:
        """Whether one more EWS request of this service account would exceed EWSMaxConcurrency
        (counted as a violation if so)."""
        limit = self.config.ews_max_concurrency
        if limit > 0 and self.account_in_flight[account.lower()] >= limit:
            self.violations["ews.concurrency"] += 1
            return True
        return False

    @contextlib.contextmanager
    def account_serving(self, account: str) -> Iterator[None]:
        """Count one request of the service account in flight while the block runs."""
        key = account.lower()
        self.account_in_flight[key] += 1
        try:
            yield
        finally:
            self.account_in_flight[key] -= 1

    @contextlib.contextmanager
    def serving(self, operation: str) -> Iterator[None]:
        """Count one request of `operation` in flight while the block runs."""
        self.in_flight += 1
        self.operations_in_flight[operation] += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_in_flight_by_operation[operation] = max(
            self.max_in_flight_by_operation[operation], self.operations_in_flight[operation]
        )
        try:
            yield
        finally:
            self.in_flight -= 1
            self.operations_in_flight[operation] -= 1

    def note(self, operation: str, mailbox: str | None, busy: bool) -> None:
        if self.journal is not None:
            self.journal.append(Request(time.monotonic(), operation, mailbox, busy))

    # -- what organizers do: each acts on every room holding the meeting --------------------

    def book(self, meeting: Meeting, rooms: Sequence[str]) -> None:
        """Send a meeting (new or updated) to rooms; one meeting may book several rooms."""
        now = self.clock.now()
        for room in rooms:
            self._require(room).receive(meeting, now)
            self._sent_to[meeting.uid].add(room.lower())

    def update(self, meeting: Meeting) -> None:
        """The organizer changed the meeting (moved, extended, new pattern…) in all its rooms."""
        self.book(meeting, self.rooms_of(meeting.uid))

    def edit_occurrence(
        self,
        uid: str,
        original_start: datetime,
        start: datetime,
        end: datetime,
        subject: str | None = None,
    ) -> None:
        now = self.clock.now()
        for room in self.rooms_of(uid):
            self._require(room).receive_occurrence(
                uid, original_start, start, end, now, subject=subject
            )

    def cancel(self, uid: str, original_start: datetime | None = None) -> None:
        now = self.clock.now()
        for room in self.rooms_of(uid):
            calendar = self._require(room)
            if original_start is None:
                calendar.cancel(uid, now)
            else:
                calendar.cancel_occurrence(uid, original_start, now)

    def delete_occurrence(self, uid: str, original_start: datetime) -> None:
        now = self.clock.now()
        for room in self.rooms_of(uid):
            self._require(room).delete_occurrence(uid, original_start, now)

    def delete(self, uid: str, *, hard: bool = False) -> None:
        now = self.clock.now()
        for room in self.rooms_of(uid):
            self._require(room).delete(uid, now, hard=hard)

    def settle(self) -> None:
        """Let every attendant answer now, however recent the request."""
        now = self.clock.now()
        for mailbox in list(self._waiting):
            self.calendars[mailbox].attend(now, force=True)
            self._waiting.discard(mailbox)

    def rooms_of(self, uid: str) -> list[str]:
        """The rooms whose calendar holds the meeting: among those it was sent to, or, for a
        meeting that reached a calendar another way, among all of them."""
        sent_to = self._sent_to.get(uid)
        if sent_to:
            candidates = [c for m in sorted(sent_to) if (c := self.calendars.get(m)) is not None]
        else:
            candidates = list(self.calendars.values())
        return [c.mailbox for c in candidates if c.by_uid(uid) is not None]

    def truth(self, start: datetime | None = None, end: datetime | None = None) -> list[Instance]:
        """The ground truth: every room's expanded instances in the window, by natural key."""
        return [i for c in self.calendars.values() for i in c.instances(start, end)]

    def _require(self, mailbox: str) -> RoomCalendar:
        calendar = self.calendar(mailbox)
        if calendar is None:
            raise LookupError(f"no room {mailbox}")
        return calendar

    def attend(self, mailbox: str | None = None) -> None:
        """Let the attendant answer the requests that waited long enough (one room, or all)."""
        now = self.clock.now()
        for key in [mailbox.lower()] if mailbox else list(self._waiting):
            calendar = self.calendars.get(key)
            if calendar is None or key not in self._waiting:
                continue
            if calendar.due(now):
                calendar.attend(now)
            if not calendar.waiting:
                self._waiting.discard(key)

    def _written(self, mailbox: str, event: MailboxEvent) -> None:
        """Every write may leave a booking for the attendant (a test may write to a calendar
        directly, so the event log, not `book`, is what tells)."""
        self._waiting.add(mailbox)
