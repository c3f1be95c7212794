"""Helpers for tests against the Exchange simulator: a running one, exchangelib accounts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from exchangelib import IMPERSONATION, Account, Configuration, Credentials, FailFast

from pushsync.simulator import Meeting, Person, SimulatorConfig, SimulatorThread, generated_rooms

ADA = Person("Ada Lovelace", "ada@contoso.example")


@contextmanager
def running(**config: Any) -> Iterator[SimulatorThread]:
    config.setdefault("rooms", generated_rooms(3))
    with SimulatorThread(SimulatorConfig(**config)) as thread:
        yield thread


def account(thread: SimulatorThread, room: str, access_type: str = IMPERSONATION) -> Account:
    sim = thread.sim
    configuration = Configuration(
        service_endpoint=sim.ews_url,
        credentials=Credentials(sim.config.username, sim.config.password),
        retry_policy=FailFast(),
    )
    return Account(room, config=configuration, autodiscover=False, access_type=access_type)


def meeting(uid: str, start: datetime, **fields: Any) -> Meeting:
    values: dict[str, Any] = {
        "uid": uid,
        "organizer": ADA,
        "subject": "Planning",
        "start": start,
        "end": start + timedelta(hours=1),
        "time_zone": "Europe/Berlin",
    }
    values.update(fields)
    return Meeting(**values)


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll until `condition` returns something truthy (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met before the deadline")
