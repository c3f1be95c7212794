"""The status page's history on both engines: the worker's minute samples add up within a
minute and over workers, old ones are deleted, rooms keep the time they went out of sync, one
room's rows are found, and the admin listener draws the page and takes a "resync now" only
from its own page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from pushsync.admin.app import AdminApp
from pushsync.model.notification import Notification
from pushsync.processes.fleet_sampler import FleetSampler, percentile
from pushsync.settings import Settings
from pushsync.store import Connector
from pushsync.store.fleet_samples import FleetSamples, Sample
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.web.app import address_filter
from pushsync.worker.loop import Worker
from tests.integration.helpers import T0, add_rows

ROOMS = ["room-1@example.org", "room-2@example.org"]


def heartbeat(subscription: str, watermark: str) -> Notification:
    return Notification(
        protocol="ews", subscription_id=subscription, event_type="Status", watermark=watermark
    )


async def test_samples_add_up_within_a_minute_and_over_workers(connector: Connector) -> None:
    samples = FleetSamples(connector)
    minute = T0.replace(second=0)
    await samples.add(Sample(minute, "a:1", received=5, worked=3, lag_p99_seconds=2.0, calls=4))
    await samples.add(
        Sample(minute, "a:1", received=1, worked=1, lag_p99_seconds=1.0, rooms_out_of_sync=2)
    )
    await samples.add(Sample(minute, "b:2", received=6, worked=2, calls=1, throttled=1))
    await samples.add(Sample(minute - timedelta(days=3), "a:1", worked=99))

    (row,) = await samples.history(minute - timedelta(hours=24))
    assert row["minute_at"] == minute
    # arrivals are the fleet's (each worker counts them all): the largest; work adds up
    assert (row["received"], row["worked"], row["calls"], row["throttled"]) == (6, 6, 5, 1)
    assert (row["lag_p99_seconds"], row["rooms_out_of_sync"]) == (2.0, 2)
    assert await samples.purge(minute - timedelta(days=2)) == 1


async def test_a_room_keeps_the_time_it_went_out_of_sync(connector: Connector) -> None:
    samples = FleetSamples(connector)
    await samples.note_out_of_sync([(ROOMS[0], "behind")], [], T0)
    await samples.note_out_of_sync([(ROOMS[0], "error")], [], T0 + timedelta(minutes=5))
    assert await samples.out_of_sync() == {ROOMS[0]: (T0, "error")}
    await samples.note_out_of_sync([], [ROOMS[0]], T0 + timedelta(minutes=6))
    assert await samples.out_of_sync() == {}


async def test_the_sampler_counts_what_happened_since_its_last_turn(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms(ROOMS, "ews", T0)
    await subscriptions.record(
        ROOMS[0], "S1", protocol="ews", watermark="W0", status_frequency=15, now=T0
    )
    await subscriptions.room_error(ROOMS[1], "subscribe: ErrorNonExistentMailbox", T0)
    worker = Worker(NotificationQueue(connector), Reservations(connector), subscriptions, {})
    calls = [10]
    clock = [T0]
    await add_rows(connector, [heartbeat("S1", "W-old")])  # before the sampler: not counted
    sampler = FleetSampler(
        connector, worker, lambda: calls[0], process="p:1", clock=lambda: clock[0]
    )

    first = await sampler.sample()
    assert (first.received, first.worked, first.calls) == (0, 0, 0)
    await add_rows(connector, [heartbeat("S1", "W1"), heartbeat("S1", "W2")])
    worker.stats.notifications += 2
    worker.stats.lag_seconds += [0.5, 3.0]
    worker.stats.throttled += 1
    calls[0] = 13
    clock[0] = T0 + timedelta(seconds=20)
    second = await sampler.sample()

    assert (second.received, second.worked, second.calls, second.throttled) == (2, 2, 3, 1)
    assert (second.lag_p50_seconds, second.lag_p99_seconds) == (0.5, 3.0)
    # room-1 waits for its first resync; room-2 has no subscription (its Subscribe failed)
    assert second.rooms_out_of_sync == 2
    noted = await FleetSamples(connector).out_of_sync()
    assert noted == {ROOMS[0]: (T0, "resync waiting"), ROOMS[1]: (T0, "no subscription")}
    (row,) = await FleetSamples(connector).history(T0 - timedelta(hours=1))
    assert (row["received"], row["worked"], row["calls"]) == (2, 2, 3)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.99) == 99.0


async def test_the_pages_and_the_resync_button(database_url: str, connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms(ROOMS, "ews", T0)
    await subscriptions.record(
        ROOMS[0], "S1", protocol="ews", watermark="W0", status_frequency=15, now=T0
    )
    await add_rows(connector, [heartbeat("S1", "W1")])
    await FleetSamples(connector).add(
        Sample(datetime.now(UTC).replace(second=0, microsecond=0), "p:1", received=3, worked=3)
    )
    settings = Settings(
        database_url=database_url, allow_callbacks_without_token=True, use_microsoft_ranges=False
    )
    app = AdminApp(settings, address_filter(settings), None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9090") as client:
        status = await client.get("/")
        room = await client.get(f"/rooms/{ROOMS[0].upper()}")  # any case names the room
        unknown = await client.get("/rooms/nobody@example.org")
        token = re.search(r'name="token" value="(\w+)"', room.text)
        assert token is not None
        form = {"token": token.group(1)}
        path = f"/rooms/{ROOMS[0]}/resync"
        cross = await client.post(path, data=form, headers={"origin": "http://evil.example"})
        tokenless = await client.post(path, data={"token": "0"})
        rebound = await client.post(path, data=form, headers={"host": "evil.example:9090"})
        before = (await connector_room(connector))["resync_generation"]
        asked = await client.post(path, data=form, headers={"origin": "http://127.0.0.1:9090"})
        after = await connector_room(connector)
    await app.close()

    assert status.status_code == 200 and status.text.count("<svg") == 5
    assert "Notifications per minute" in status.text
    assert room.status_code == 200 and "S1" in room.text and "Status" in room.text
    assert unknown.status_code == 404 and "No such room" in unknown.text
    assert (cross.status_code, tokenless.status_code, rebound.status_code) == (403, 403, 403)
    assert asked.status_code == 303
    assert asked.headers["location"] == f"/rooms/{ROOMS[0]}?queued=1"
    assert after["needs_resync"] and after["resync_reason"] == "asked for on the status page"
    assert after["resync_generation"] == before + 1


async def connector_room(connector: Connector) -> dict[str, object]:
    async with connector.session() as session:
        row = await session.fetch_one("room_by_mailbox", {"mailbox": ROOMS[0]})
    assert row is not None
    return row
