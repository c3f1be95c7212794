"""The reservation and subscription tables on both engines."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pushsync.reservation import Plan, Reservation
from pushsync.reservations import Reservations
from pushsync.store import Connector
from pushsync.store.connector import Row
from pushsync.subscriptions import Subscriptions
from tests.integration.helpers import add_rows, event

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
ROOM = "room-1@example.org"


def _row(uid: str, start: datetime, **changes: object) -> Reservation:
    base = Reservation(
        mailbox=ROOM,
        uid=uid,
        original_start=start,
        item_id=f"ID-{uid}",
        item_type="single",
        start=start,
        end=start + timedelta(hours=1),
        subject="Alice",
        organizer="alice@example.org",
        time_zone="Europe/Berlin",
        last_modified=NOW - timedelta(days=1),
        change_key="CK",
    )
    return replace(base, **changes)


async def test_plans_round_trip_exactly(connector: Connector) -> None:
    store = Reservations(connector)
    await Subscriptions(connector).ensure_rooms([ROOM], "ews", NOW)
    first = _row("A", NOW + timedelta(days=1), is_all_day=True, is_cancelled=True)
    second = _row(
        "B",
        NOW + timedelta(days=2, microseconds=123456),
        series_master_id="M",
        item_type="occurrence",
        response_state="tentative",
    )
    await store.apply(Plan(upserts=[first, second]), NOW)

    assert await store.all() == [first, second]
    assert await store.for_meetings(ROOM, ["A"], []) == [first]
    assert await store.for_meetings(ROOM, [], ["M"]) == [second]
    assert await store.for_meetings("other@example.org", ["A"], ["M"]) == []

    moved = replace(first, subject="changed")
    change = Plan(upserts=[moved], deletes=[second.key])
    await store.reconcile_room(ROOM, lambda _stored: change, NOW, resynced=0)
    assert await store.for_room(ROOM) == [moved]
    (room,) = await Subscriptions(connector).rooms()
    assert not room["needs_resync"] and room["last_synced_at"] == NOW


async def test_a_resync_request_made_during_a_resync_outlives_it(connector: Connector) -> None:
    subscriptions, reservations = Subscriptions(connector), Reservations(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", NOW)  # a new room: resync requested
    started_under = await subscriptions.resync_generation(ROOM)
    await subscriptions.request_resync(ROOM, "watermark gap")  # while the resync reads

    await reservations.reconcile_room(ROOM, lambda _stored: Plan(), NOW, resynced=started_under)

    (room,) = await subscriptions.rooms_needing_resync(10)
    assert room["resync_reason"] == "watermark gap"
    assert room["resync_generation"] == started_under + 1
    (room,) = await subscriptions.rooms()
    assert room["last_synced_at"] == NOW  # the read itself counts as a sync

    again = room["resync_generation"]
    await reservations.reconcile_room(ROOM, lambda _stored: Plan(), NOW, resynced=again)
    assert await subscriptions.rooms_needing_resync(10) == []


async def test_requested_resyncs_come_first_then_the_least_recently_synced_rooms(
    connector: Connector,
) -> None:
    subscriptions, reservations = Subscriptions(connector), Reservations(connector)
    rooms = ["a@example.org", "b@example.org", "c@example.org"]
    await subscriptions.ensure_rooms(rooms, "ews", NOW)
    for room, hours_ago in zip(rooms, (2, 30, 26), strict=True):
        synced_at = NOW - timedelta(hours=hours_ago)
        await reservations.reconcile_room(room, lambda _stored: Plan(), synced_at, resynced=0)
    await subscriptions.request_resync("a@example.org", "watermark gap")

    def names(rows: list[Row]) -> list[tuple[str, bool]]:
        return [(row["mailbox"], bool(row["due"])) for row in rows]

    assert names(await subscriptions.rooms_needing_resync(10)) == [("a@example.org", True)]
    day_ago = NOW - timedelta(hours=24)
    due = await subscriptions.rooms_needing_resync(10, synced_before=day_ago)
    assert names(due) == [
        ("a@example.org", True),
        ("b@example.org", False),
        ("c@example.org", False),
    ]

    await subscriptions.room_error("b@example.org", "resync: ErrorMailboxMoveInProgress", NOW)
    waiting = await subscriptions.rooms_needing_resync(
        10, synced_before=day_ago, failed_before=NOW - timedelta(minutes=1)
    )
    assert names(waiting) == [("a@example.org", True), ("c@example.org", False)]
    retried = await subscriptions.rooms_needing_resync(
        10, synced_before=day_ago, failed_before=NOW + timedelta(seconds=1)
    )
    assert [name for name, _ in names(retried)] == rooms


async def test_a_rooms_back_off_is_shared_and_only_ever_lengthened(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM, "other@example.org"], "ews", NOW)
    await subscriptions.pause(ROOM, NOW + timedelta(seconds=30))
    await subscriptions.pause(ROOM, NOW + timedelta(seconds=10))  # does not cut the first short

    assert await subscriptions.paused(NOW) == {ROOM: NOW + timedelta(seconds=30)}
    assert await subscriptions.paused(NOW + timedelta(seconds=30)) == {}


async def test_subscription_lifecycle(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", NOW)
    await subscriptions.record(
        ROOM, "S1", protocol="ews", watermark="W0", status_frequency=15, now=NOW
    )
    (live,) = await subscriptions.live()
    assert (live.subscription_id, live.state, live.last_watermark) == ("S1", "active", "W0")
    assert not live.is_dead(NOW + timedelta(minutes=29))
    assert live.is_dead(NOW + timedelta(minutes=31))

    await subscriptions.heard("S1", NOW + timedelta(minutes=20), "W1")
    (live,) = await subscriptions.live()
    assert live.last_watermark == "W1" and not live.is_dead(NOW + timedelta(minutes=31))

    await subscriptions.mark_broken("S1", "ErrorReadEventsFailed")
    assert (await subscriptions.live())[0].is_dead(NOW)

    await subscriptions.record(
        ROOM,
        "S2",
        protocol="ews",
        watermark="W5",
        status_frequency=15,
        now=NOW,
        replaces="S1",
        reason="broken",
    )
    assert [s.subscription_id for s in await subscriptions.live()] == ["S2"]
    old = await subscriptions.by_id("S1")
    assert old is not None and (old["state"], old["replaced_by"]) == ("retired", "S2")
    await subscriptions.request_resync(ROOM, "subscription replaced")
    (overview,) = await subscriptions.overview()
    assert overview["subscription_id"] == "S2" and overview["needs_resync"]
    assert overview["resync_reason"] == "subscription replaced"


async def test_watermark_seen_finds_stored_events_only(connector: Connector) -> None:
    await add_rows(connector, [event(1)])
    subscriptions = Subscriptions(connector)
    assert await subscriptions.watermark_seen("SUB-1", event(1).watermark)
    assert not await subscriptions.watermark_seen("SUB-1", "never-sent")
    assert not await subscriptions.watermark_seen("SUB-2", event(1).watermark)


async def test_a_rooms_cursor_is_kept_and_an_incremental_reconcile_clears_its_resync(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "graph", NOW)
    assert await subscriptions.sync_state(ROOM) is None
    assert await subscriptions.sync_state("nowhere@example.org") is None

    await subscriptions.save_sync_state(ROOM, '{"delta_link": "https://graph/…?$deltatoken=1"}')
    assert await subscriptions.sync_state(ROOM) == '{"delta_link": "https://graph/…?$deltatoken=1"}'

    row = _row("A", NOW + timedelta(days=1))
    await Reservations(connector).reconcile(
        ROOM, ["A"], [], lambda _stored: Plan(upserts=[row]), NOW, resynced=0
    )
    (room,) = await subscriptions.rooms()
    assert not room["needs_resync"] and room["sync_state"].endswith('deltatoken=1"}')
    await subscriptions.save_sync_state(ROOM, None)
    assert await subscriptions.sync_state(ROOM) is None


async def test_moving_a_room_retires_its_subscription_over_the_other_protocol(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM, "room-2@example.org"], "ews", NOW)
    await subscriptions.record(
        ROOM, "EWS-1", protocol="ews", watermark="W", status_frequency=15, now=NOW
    )
    await subscriptions.record(
        "room-2@example.org", "EWS-2", protocol="ews", watermark="W", status_frequency=15, now=NOW
    )
    await subscriptions.record(
        ROOM, "GRAPH-1", protocol="graph", watermark=None, status_frequency=None, now=NOW
    )

    assert await subscriptions.retire_other_protocols(ROOM, "graph", NOW) == 1

    assert sorted(s.subscription_id for s in await subscriptions.live()) == ["EWS-2", "GRAPH-1"]
    retired = await subscriptions.by_id("EWS-1")
    assert retired is not None and retired["state"] == "retired"
    assert retired["last_error"] == "room moved to graph"
