"""The simulated organisation's state: room calendars, subscriptions, throttling, call counts.

One `Exchange` lives on the simulator's event loop; the HTTP handlers, the push deliveries and
the booking activity all run there, so the state needs no locks.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING

from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.clock import SimClock
from pushsync.simulator.config import SimulatorConfig

if TYPE_CHECKING:
    from pushsync.simulator.push import PushEngine


class Exchange:
    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.calendars = {
            room.email.lower(): RoomCalendar(room, random.Random(f"{config.seed}:{room.email}"))
            for room in config.rooms
        }
        self.calls: Counter[str] = Counter()  # operation -> requests answered
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once (a concurrency cap's proof)
        self.push: PushEngine | None = None  # set once the simulator's event loop runs

    def calendar(self, mailbox: str) -> RoomCalendar | None:
        return self.calendars.get(mailbox.lower())

    def busy(self) -> bool:
        """Whether this operation is refused with ErrorServerBusy (the configured share)."""
        return self.config.busy_rate > 0 and self.rng.random() < self.config.busy_rate

    def attend(self) -> None:
        """Let every room's attendant answer the requests that waited long enough."""
        now = self.clock.now()
        for calendar in self.calendars.values():
            if calendar.due(now):
                calendar.attend(now)
