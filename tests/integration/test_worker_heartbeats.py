"""The worker's reading of heartbeats and watermarks, over real rows on both engines: a batch's
StatusEvents are noted together, and a PreviousWatermark never received breaks the
subscription and asks for a resync of its room."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pushsync.ews.adapter import EwsAdapter
from pushsync.model.notification import Notification
from pushsync.model.reservation import Observation, RoomSnapshot
from pushsync.store import Connector
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.loop import Worker
from tests.integration.helpers import T0, add_rows

ROOMS = ["room-1@example.org", "room-2@example.org"]


def status(subscription: str, watermark: str, previous: str) -> Notification:
    return Notification(
        protocol="ews",
        subscription_id=subscription,
        event_type="Status",
        watermark=watermark,
        previous_watermark=previous,
    )


class NoCalendar:
    """Heartbeats and watermarks need no calendar: any read fails the test."""

    calls = 0

    async def observe(self, mailbox: str, item_ids: Sequence[str]) -> list[Observation]:
        raise AssertionError(f"read {mailbox}'s items for a heartbeat")

    async def observe_room(self, mailbox: str, cursor: str | None = None) -> RoomSnapshot:
        raise AssertionError(f"read {mailbox}'s calendar for a heartbeat")


async def worker_with_rooms(connector: Connector) -> tuple[Worker, Subscriptions]:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms(ROOMS, "ews", T0)
    for n, room in enumerate(ROOMS, 1):
        await subscriptions.record(
            room, f"S{n}", protocol="ews", watermark="W0", status_frequency=15, now=T0
        )
    worker = Worker(
        NotificationQueue(connector),
        Reservations(connector),
        subscriptions,
        {"ews": EwsAdapter(NoCalendar(), subscriptions)},
        debounce=timedelta(0),
    )
    return worker, subscriptions


async def test_a_wave_of_heartbeats_is_noted_for_every_subscription(connector: Connector) -> None:
    worker, subscriptions = await worker_with_rooms(connector)
    await add_rows(connector, [status("S1", "W1", "W0"), status("S2", "W1", "W0")])

    assert await worker.run_once() == 2

    records = await subscriptions.by_ids(["S1", "S2"])
    assert {s: (r["state"], r["last_watermark"]) for s, r in records.items()} == {
        "S1": ("active", "W1"),
        "S2": ("active", "W1"),
    }
    assert all(r["last_event_at"] == T0 for r in records.values())  # the rows' received_at


async def test_a_previous_watermark_never_received_is_a_gap(connector: Connector) -> None:
    worker, subscriptions = await worker_with_rooms(connector)
    await add_rows(connector, [status("S1", "W1", "W0")])
    await worker.run_once()
    await add_rows(connector, [status("S1", "W3", "W2"), status("S2", "W2", "W0")])

    await worker.run_once()

    records = await subscriptions.by_ids(["S1", "S2"])
    assert records["S1"]["state"] == "broken"
    assert records["S1"]["last_error"] == "watermark gap: events were missed"
    assert records["S2"]["state"] == "active"  # its PreviousWatermark is its start
    rooms = {row["mailbox"]: row for row in await subscriptions.rooms()}
    assert rooms[ROOMS[0]]["resync_reason"] == "watermark gap"
