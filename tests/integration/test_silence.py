"""Silence is judged on what the receiver stored, not only on what the worker has noted.

A subscription looks silent by `last_event_at` (noted by the worker as it works rows off) while
its heartbeat waits in the queue behind a busy worker; replacing it would be a false alarm
(issue 17). `Subscriptions.still_dead`, which the EWS manager asks before replacing, counts any
row received for it within its silence window (2 x StatusFrequency), processed or not.
"""

from __future__ import annotations

from datetime import timedelta

from pushsync.store import Connector
from pushsync.store.inbox import insert_values, utc_text
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0, event, query

STATUS_FREQUENCY = 15  # minutes: silent after 30
NOW = T0 + timedelta(minutes=40)  # every subscription, created at T0, looks silent by now
ROOMS = {
    "queued": "S-QUEUED",  # a heartbeat received 15 minutes ago, still pending
    "claimed": "S-CLAIMED",  # one a worker holds, not yet done
    "done": "S-DONE",  # one processed, its last_event_at not yet written
    "stale": "S-STALE",  # one received 35 minutes ago: outside the window
    "quiet": "S-QUIET",  # nothing at all
    "broken": "S-BROKEN",  # an error notification: replaced whatever it heard
}


async def heartbeat(connector: Connector, n: int, subscription: str, minutes_ago: int) -> None:
    row = event(n, subscription)._replace(event_type="StatusEvent", item_id=None)
    received_at = utc_text(NOW - timedelta(minutes=minutes_ago))
    async with connector.session() as session:
        await session.execute_many("insert_notification", [insert_values(row, received_at)])


async def test_a_row_received_in_the_window_proves_a_subscription_alive(
    connector: Connector, database_url: str
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([f"{room}@x.example" for room in ROOMS], "ews", T0)
    for room, subscription in ROOMS.items():
        await subscriptions.record(
            f"{room}@x.example",
            subscription,
            protocol="ews",
            watermark="W0",
            status_frequency=STATUS_FREQUENCY,
            now=T0,
        )
    for n, subscription in enumerate(["S-QUEUED", "S-CLAIMED", "S-DONE", "S-BROKEN"]):
        await heartbeat(connector, n, subscription, minutes_ago=15)
    await heartbeat(connector, 9, "S-STALE", minutes_ago=35)
    query(
        database_url,
        "UPDATE sync_notification SET state = 'claimed', attempts = 1"
        " WHERE subscription_id = 'S-CLAIMED'",
    )
    processed = utc_text(NOW - timedelta(minutes=10))
    query(
        database_url,
        f"UPDATE sync_notification SET state = 'done', processed_at = '{processed}'"
        " WHERE subscription_id = 'S-DONE'",
    )
    await subscriptions.mark_broken("S-BROKEN", "ErrorMissedNotificationEvents")

    candidates = [s for s in await subscriptions.live() if s.is_dead(NOW)]
    assert len(candidates) == len(ROOMS)  # by last_event_at alone, every one is dead

    dead = await subscriptions.still_dead(candidates, NOW)

    assert sorted(s.subscription_id for s in dead) == ["S-BROKEN", "S-QUIET", "S-STALE"]
    assert all(s.last_event_at == T0 for s in dead)  # the stale row is no proof of life
    received = await subscriptions.last_received(ROOMS.values(), NOW - timedelta(minutes=30))
    assert received == {
        "S-QUEUED": NOW - timedelta(minutes=15),
        "S-CLAIMED": NOW - timedelta(minutes=15),
        "S-DONE": NOW - timedelta(minutes=15),
        "S-BROKEN": NOW - timedelta(minutes=15),
    }
    # later, without a new heartbeat, the queued one is silent after all
    later = NOW + timedelta(minutes=16)
    assert {s.subscription_id for s in await subscriptions.still_dead(candidates, later)} == {
        *ROOMS.values()
    }


async def test_nothing_to_ask_when_no_candidate_is_silent(connector: Connector) -> None:
    assert await Subscriptions(connector).still_dead([], NOW) == []
