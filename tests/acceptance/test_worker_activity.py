"""Room-calendar changes the end-to-end test leaves out, and seeded random activity.

docs/protocol.md §7: a series whose pattern changes re-ids its occurrences and drops its
exceptions; a cancelled occurrence stays, flagged; a hard delete is a DeletedEvent rather than
a move; an all-day series crossing a daylight-saving change keeps local midnights. Then the
simulator's seeded random activity (bookings, moves, cancellations, occurrence edits and
deletions, pattern changes, declined conflicts) must converge as well.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest

from pushsync.simulator import Recurrence, generated_rooms
from tests.acceptance.simulated_exchange import meeting, running
from tests.acceptance.sync_loop import Workers, sync_settings
from tests.acceptance.worker_loop import converge, read_reservations

SCALE = 60.0
MINUTE = timedelta(seconds=60 / SCALE)
BERLIN = ZoneInfo("Europe/Berlin")


def test_pattern_change_cancelled_occurrence_hard_delete_and_all_day_series(
    server_factory,
) -> None:
    server = server_factory()
    rooms = generated_rooms(2)
    r1, r2 = (room.email for room in rooms)
    with running(rooms=rooms, scale=SCALE) as thread:
        sim = thread.sim
        now = sim.clock.now()
        base = now.replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=1)
        series = meeting("PATTERN", base, recurrence=Recurrence(interval=1, count=10))
        cancelled = meeting(
            "PARTLY", base + timedelta(hours=3), recurrence=Recurrence(interval=1, count=4)
        )
        doomed = meeting("HARD", base + timedelta(hours=5))
        # Daily all-day events over the EU daylight-saving change (29 March 2026).
        midnight = datetime.combine(datetime(2026, 3, 27).date(), clock_time(0), BERLIN).astimezone(
            UTC
        )
        all_day = meeting(
            "ALLDAY-DST",
            midnight,
            end=midnight + timedelta(days=1),
            all_day=True,
            recurrence=Recurrence(interval=1, count=4),
        )
        for item, room in ((series, r1), (cancelled, r1), (doomed, r2), (all_day, r2)):
            thread.call(sim.exchange.book, item, [room])
        with Workers(sync_settings(server, thread), sim.clock.now, MINUTE) as workers:
            converge(thread, server.database_url, lambda: workers.failure)
            third = series.start + timedelta(days=2)
            thread.call(
                sim.exchange.edit_occurrence,
                "PATTERN",
                third,
                third + timedelta(hours=1),
                third + timedelta(hours=2),
            )
            thread.call(sim.exchange.settle)
            weekly = Recurrence(interval=1, weekdays=(base.weekday(),), count=3)
            thread.call(sim.exchange.update, replace(series, recurrence=weekly))
            thread.call(sim.exchange.cancel, "PARTLY", cancelled.start + timedelta(days=1))
            thread.call(sim.exchange.delete, "HARD", hard=True)
            converge(thread, server.database_url, lambda: workers.failure)

    stored = read_reservations(server.database_url)
    pattern = sorted(r.start for r in stored if r.uid == "PATTERN")
    assert [s - pattern[0] for s in pattern] == [timedelta(0), timedelta(7), timedelta(14)]
    partly = {r.original_start: r.is_cancelled for r in stored if r.uid == "PARTLY"}
    assert sorted(partly.values()) == [False, False, False, True]
    assert "HARD" not in {r.uid for r in stored}
    days = sorted((r.start, r.end) for r in stored if r.uid == "ALLDAY-DST")
    assert [s.astimezone(BERLIN).time() for s, _ in days] == [clock_time(0)] * 4
    day, short = timedelta(days=1), timedelta(hours=23)
    assert [e - s for s, e in days] == [day, day, short, day]  # 29 March in Berlin: 23 hours


@pytest.mark.parametrize("seed", [3, 17])
def test_seeded_random_activity_converges(server_factory, seed: int) -> None:
    server = server_factory()
    with running(
        rooms=generated_rooms(5), scale=SCALE, seed=seed, activity_per_minute=180
    ) as thread:
        sim = thread.sim
        with Workers(sync_settings(server, thread), sim.clock.now, MINUTE) as workers:
            time.sleep(3)  # three Exchange minutes: about 500 random actions
            thread.call(sim.pause_activity)
            converge(thread, server.database_url, lambda: workers.failure)
        stats = workers.workers[0].stats
    actions = " ".join(sim.activity.log)
    for kind in ("book", "move", "cancel", "delete", "edit one occurrence", "change the pattern"):
        assert kind in actions, f"the activity never did {kind!r}"
    assert stats.notifications > 0 and stats.calls_per_notification < 0.5
    # A follower replaying the change log ends with exactly the table's rows.
    followed: set[tuple[str, str, str]] = set()
    for change in server.rows("SELECT * FROM reservation_change ORDER BY id"):
        key = (change["mailbox"], change["uid"], change["original_start"])
        if change["change"] == "upsert":
            followed.add(key)
        else:
            followed.discard(key)
    table = server.rows("SELECT mailbox, uid, original_start FROM reservation")
    assert followed == {tuple(row) for row in table} and followed
