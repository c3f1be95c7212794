"""The whole loop over EWS: simulator -> push -> receiver -> worker -> reservations.

The simulator's calendars are the ground truth: after scripted booking activity settles, the
reservation table must equal them on the natural key, with times, cancelled flag and response.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from pushsync.simulator import Meeting, Recurrence, SimulatorThread, generated_rooms
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.simulated_exchange import ADA, running
from tests.acceptance.sync_loop import SyncLoop, stored_rows, sync_settings, truth_rows
from tests.acceptance.worker_loop import read_reservations

SCALE = 60.0  # one Exchange minute per real second
MINUTE = timedelta(seconds=60 / SCALE)


def converge(
    thread: SimulatorThread, server: ServerProcess, loop: SyncLoop, deadline_s: float = 60
) -> None:
    """Wait until the reservations equal the simulator's calendars; fail with the difference."""
    now = thread.call(thread.sim.clock.now)
    start, end = now - timedelta(days=1), now + timedelta(days=120)
    deadline = time.monotonic() + deadline_s
    while True:
        thread.call(thread.sim.exchange.settle)
        truth = truth_rows(thread, start, end)
        stored = stored_rows(read_reservations(server.database_url), start, end)
        if truth == stored and truth:
            return
        assert loop.failure is None, f"the sync loop died: {loop.failure!r}"
        if time.monotonic() > deadline:
            missing, extra = sorted(truth - stored), sorted(stored - truth)
            raise AssertionError(f"not converged; missing {missing[:5]}; extra {extra[:5]}")
        time.sleep(0.3)


def meeting(uid: str, start: datetime, hours: float = 1, **fields: object) -> Meeting:
    values: dict[str, object] = {
        "uid": uid,
        "organizer": ADA,
        "subject": "Planning",
        "start": start,
        "end": start + timedelta(hours=hours),
        "time_zone": "Europe/Berlin",
    }
    values.update(fields)
    return Meeting(**values)  # type: ignore[arg-type]


def test_reservations_equal_the_simulator_calendars(server_factory) -> None:
    server = server_factory()
    rooms = generated_rooms(4)
    r1, r2, r3, r4 = (room.email for room in rooms)
    with running(rooms=rooms, scale=SCALE) as thread:
        sim = thread.sim
        base = sim.clock.now().replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(
            days=1
        )
        single = meeting("SINGLE", base)
        weekly = meeting(
            "WEEKLY",
            base + timedelta(hours=2),  # crosses both DST changes
            recurrence=Recurrence(interval=1, weekdays=(base.weekday(),), count=8),
        )
        daily = meeting(
            "DAILY", base + timedelta(hours=5), recurrence=Recurrence(interval=1, count=5)
        )
        shared = meeting("SHARED", base + timedelta(days=2))
        berlin_midnight = datetime.combine(
            base.date() + timedelta(days=3), clock_time(0), ZoneInfo("Europe/Berlin")
        )
        all_day = meeting("ALLDAY", berlin_midnight.astimezone(UTC), hours=24, all_day=True)
        conflict = meeting("CONFLICT", base + timedelta(minutes=30))
        thread.call(sim.exchange.book, single, [r1])
        thread.call(sim.exchange.book, weekly, [r2])
        thread.call(sim.exchange.book, daily, [r2])
        thread.call(sim.exchange.book, shared, [r1, r3])
        thread.call(sim.exchange.book, all_day, [r4])

        settings = sync_settings(server, thread)
        with SyncLoop(settings, sim.clock.now, MINUTE) as loop:
            converge(thread, server, loop)  # the initial resync, then the first pushes

            thread.call(sim.exchange.book, conflict, [r1])  # overlaps SINGLE: declined
            thread.call(sim.exchange.settle)
            second = weekly.start + timedelta(weeks=1)
            thread.call(
                sim.exchange.edit_occurrence,
                "WEEKLY",
                second,
                second + timedelta(hours=1),
                second + timedelta(hours=2),
                "moved",
            )
            thread.call(sim.exchange.delete_occurrence, "WEEKLY", weekly.start + timedelta(weeks=3))
            thread.call(
                sim.exchange.update,
                replace(
                    daily,
                    start=daily.start + timedelta(hours=1),
                    end=daily.end + timedelta(hours=1),
                ),
            )
            thread.call(sim.exchange.cancel, "SHARED")
            thread.call(sim.exchange.delete, "SINGLE")
            thread.call(sim.exchange.update, replace(all_day, end=all_day.end + timedelta(days=1)))
            converge(thread, server, loop)

        assert loop.failure is None
        stored = read_reservations(server.database_url)
        assert {r.uid for r in stored} >= {"WEEKLY", "DAILY", "SHARED", "ALLDAY"}
        assert "SINGLE" not in {r.uid for r in stored}  # deleted = moved to Deleted Items
        assert "CONFLICT" not in {r.uid for r in stored}  # declined by the room
        assert all(r.is_cancelled for r in stored if r.uid == "SHARED")
        assert {r.mailbox.lower() for r in stored if r.uid == "SHARED"} == {r1, r3}
        assert len([r for r in stored if r.uid == "WEEKLY"]) == 7
        assert {r.series_master_id is not None for r in stored if r.uid == "WEEKLY"} == {True}
