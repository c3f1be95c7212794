"""The reservation and subscription tables on both engines."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pushsync.model.reservation import Plan, Reservation
from pushsync.store import Connector
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0, add_rows, event

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


async def test_a_plan_naming_a_row_twice_writes_the_last_once(connector: Connector) -> None:
    """A plan's upserts go as one statement, which may not touch a row twice: the last one
    named wins, as it did when each was a statement of its own, and it is one change."""
    store = Reservations(connector)
    await Subscriptions(connector).ensure_rooms([ROOM], "ews", NOW)
    first = _row("A", NOW + timedelta(days=1))
    last = replace(first, subject="moved", start=first.start + timedelta(hours=2))
    single = _row("S", NOW + timedelta(days=3), original_start=None)
    await store.apply(Plan(upserts=[first, single, last, replace(single, subject="kept")]), NOW)

    assert await store.all() == [last, replace(single, subject="kept")]
    async with connector.session() as session:
        changes = await session.fetch_all("reservation_changes", {"after": 0, "limit": 10})
    assert [(c["uid"], c["change"]) for c in changes] == [("A", "upsert"), ("S", "upsert")]


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


async def subscribe(subscriptions: Subscriptions, *rooms: str) -> None:
    """Record a live subscription for each room, as its manager does once Subscribe answered."""
    for room in rooms:
        await subscriptions.record(
            room, f"SUB-{room}", protocol="ews", watermark="W0", status_frequency=15, now=NOW
        )


async def claim(subscriptions: Subscriptions, **options: Any) -> list[tuple[str, bool]]:
    options = {"protocols": ["ews"], "now": NOW, "lease": timedelta(minutes=10)} | options
    rows = await subscriptions.claim_resyncs(10, **options)
    return [(row["mailbox"], bool(row["due"])) for row in rows]


async def test_the_series_uid_of_a_master_is_read_from_its_stored_occurrences(
    connector: Connector,
) -> None:
    """What a Graph delta round keys a changed series on, without fetching its master."""
    store = Reservations(connector)
    await Subscriptions(connector).ensure_rooms([ROOM], "graph", NOW)
    occurrences = [
        _row("SERIES", NOW + timedelta(days=n), item_id=f"OCC-{n}", series_master_id="MASTER")
        for n in range(3)
    ]
    await store.apply(Plan(upserts=[*occurrences, _row("SINGLE", NOW)]), NOW)

    assert await store.series_uids(ROOM, ["MASTER", "UNKNOWN"]) == {"MASTER": "SERIES"}
    assert await store.series_uids(ROOM, []) == {}
    assert await store.series_uids("other@example.org", ["MASTER"]) == {}


async def test_a_cursor_is_written_in_the_transaction_of_the_rows_it_moves_past(
    connector: Connector,
) -> None:
    store, subscriptions = Reservations(connector), Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "graph", NOW)
    await subscriptions.save_sync_state(ROOM, "old")
    row = _row("A", NOW + timedelta(days=1))

    await store.reconcile(ROOM, ["A"], [], lambda _: Plan(upserts=[row]), NOW, cursor="new")
    assert await subscriptions.sync_state(ROOM) == "new" and await store.all() == [row]
    await store.reconcile(ROOM, ["A"], [], lambda _: Plan(), NOW)  # kept by default
    assert await subscriptions.sync_state(ROOM) == "new"
    await store.reconcile_room(ROOM, lambda _: Plan(), NOW, resynced=0, cursor=None)
    assert await subscriptions.sync_state(ROOM) is None

    def refused(_: object) -> Plan:
        raise RuntimeError("the write failed")

    await subscriptions.save_sync_state(ROOM, "old")
    with pytest.raises(RuntimeError):
        await store.reconcile(ROOM, ["A"], [], refused, NOW, cursor="lost")
    assert await subscriptions.sync_state(ROOM) == "old"


async def test_a_resync_request_made_during_a_resync_outlives_it(connector: Connector) -> None:
    subscriptions, reservations = Subscriptions(connector), Reservations(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", NOW)  # a new room: resync requested
    await subscribe(subscriptions, ROOM)
    assert await claim(subscriptions) == [(ROOM, True)]
    started_under = await subscriptions.resync_generation(ROOM)
    await subscriptions.request_resync(ROOM, "watermark gap")  # while the resync reads

    await reservations.reconcile_room(ROOM, lambda _stored: Plan(), NOW, resynced=started_under)

    (room,) = await subscriptions.rooms()
    assert room["needs_resync"] and room["resync_reason"] == "watermark gap"
    assert room["resync_generation"] == started_under + 1
    assert room["last_synced_at"] == NOW  # the read itself counts as a sync
    assert await claim(subscriptions) == [(ROOM, True)]  # the lease ended with the read

    again = room["resync_generation"]
    await reservations.reconcile_room(ROOM, lambda _stored: Plan(), NOW, resynced=again)
    assert await claim(subscriptions) == []


async def test_requested_resyncs_come_first_then_the_least_recently_synced_rooms(
    connector: Connector,
) -> None:
    subscriptions, reservations = Subscriptions(connector), Reservations(connector)
    rooms = ["a@example.org", "b@example.org", "c@example.org", "new@example.org"]
    await subscriptions.ensure_rooms(rooms, "ews", NOW)
    for room, hours_ago in zip(rooms[:3], (2, 30, 26), strict=True):
        synced_at = NOW - timedelta(hours=hours_ago)
        await reservations.reconcile_room(room, lambda _stored: Plan(), synced_at, resynced=0)
    await subscriptions.request_resync("a@example.org", "watermark gap")
    day_ago = NOW - timedelta(hours=24)
    assert await claim(subscriptions, synced_before=day_ago, now=NOW - timedelta(hours=1)) == [
        ("a@example.org", True),
    ]  # without a live subscription a room is not kept in sync, read each day, nor first read
    await subscribe(subscriptions, *rooms)
    await subscriptions.release_resync("a@example.org")

    first = await claim(subscriptions, synced_before=day_ago)
    again = await claim(subscriptions, synced_before=day_ago)  # another worker, meanwhile
    later = await claim(subscriptions, synced_before=day_ago, now=NOW + timedelta(minutes=11))

    requested = [("a@example.org", True), ("new@example.org", True)]
    periodic = [("b@example.org", False), ("c@example.org", False)]
    assert first == requested + periodic
    assert again == []  # leased: no room is read by two workers at once
    assert later == requested + periodic  # nothing cleared them: the leases ran out
    assert await claim(subscriptions, protocols=["graph"], now=NOW + timedelta(hours=1)) == []


async def test_a_rooms_first_read_waits_for_its_subscription_or_its_polling(
    connector: Connector,
) -> None:
    """Read before its Subscribe, a room would miss what changed between the two: neither the
    read saw it nor was it pushed (docs/decisions.md, "Resyncs run at once")."""
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM, "polled@example.org"], "ews", NOW)
    assert await claim(subscriptions) == []
    await subscriptions.start_polling("polled@example.org", "refused", "no push here", NOW)
    assert await claim(subscriptions) == [("polled@example.org", True)]
    await subscribe(subscriptions, ROOM)
    assert await claim(subscriptions) == [(ROOM, True)]


async def test_a_read_begun_before_the_rooms_subscription_does_not_clear_its_request(
    connector: Connector,
) -> None:
    """A room read while it had no subscription (its old one lost) and subscribed meanwhile:
    what changed between the read and the Subscribe was never pushed, so it is read again."""
    subscriptions, reservations = Subscriptions(connector), Reservations(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", NOW)
    await reservations.reconcile_room(ROOM, lambda _stored: Plan(), NOW, resynced=0)
    await subscriptions.request_resync(ROOM, "by hand")
    (claimed,) = await subscriptions.claim_resyncs(
        1, protocols=["ews"], now=NOW, lease=timedelta(minutes=10)
    )
    await subscribe(subscriptions, ROOM)  # while the read is under way
    generation = claimed["resync_generation"]
    await reservations.reconcile_room(ROOM, lambda _stored: Plan(), NOW, resynced=generation)
    (room,) = await subscriptions.rooms()
    assert room["needs_resync"] and room["resync_reason"] == "by hand"
    assert await claim(subscriptions) == [(ROOM, True)]


async def test_the_oldest_rooms_are_claimed_first_never_synced_ones_before_all(
    connector: Connector,
) -> None:
    subscriptions, reservations = Subscriptions(connector), Reservations(connector)
    await subscriptions.ensure_rooms(["old@example.org", "new@example.org"], "ews", NOW)
    await subscribe(subscriptions, "old@example.org", "new@example.org")
    await reservations.reconcile_room(
        "old@example.org", lambda _stored: Plan(), NOW - timedelta(days=2), resynced=0
    )
    await subscriptions.request_resync("old@example.org", "watermark gap")
    rows = await subscriptions.claim_resyncs(
        1, protocols=["ews"], now=NOW, lease=timedelta(minutes=10)
    )
    assert [row["mailbox"] for row in rows] == ["new@example.org"]


async def test_a_throttled_or_paused_room_is_not_claimed(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", NOW)
    await subscribe(subscriptions, ROOM)
    await subscriptions.pause(ROOM, NOW + timedelta(seconds=30))
    assert await claim(subscriptions) == []
    assert await claim(subscriptions, now=NOW + timedelta(seconds=31)) == [(ROOM, True)]
    await subscriptions.release_resync(ROOM)  # its read was throttled: give it back at once
    assert await claim(subscriptions, now=NOW + timedelta(seconds=31)) == [(ROOM, True)]


async def test_a_rooms_back_off_is_shared_and_only_ever_lengthened(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM, "other@example.org"], "ews", NOW)
    await subscriptions.pause(ROOM, NOW + timedelta(seconds=30))
    await subscriptions.pause(ROOM, NOW + timedelta(seconds=10))  # does not cut the first short

    assert await subscriptions.paused(NOW) == {ROOM: NOW + timedelta(seconds=30)}
    assert await subscriptions.paused(NOW + timedelta(seconds=30)) == {}


async def test_every_write_is_in_the_change_log_in_order_and_old_changes_are_purged(
    connector: Connector,
) -> None:
    store = Reservations(connector)
    first, second = _row("A", NOW + timedelta(days=1)), _row("B", NOW + timedelta(days=2))
    await store.reconcile(ROOM, ["A", "B"], [], lambda _s: Plan(upserts=[first, second]), NOW)
    later = NOW + timedelta(minutes=5)
    moved = replace(first, start=first.start + timedelta(hours=1))
    await store.reconcile(
        ROOM, ["A", "B"], [], lambda _s: Plan(upserts=[moved], deletes=[second.key]), later
    )
    await store.reconcile(ROOM, ["A"], [], lambda _s: Plan(), later)  # nothing changed

    changes = await store.changes()
    assert [(c["uid"], c["change"], c["changed_at"]) for c in changes] == [
        ("A", "upsert", NOW),
        ("B", "upsert", NOW),
        ("B", "delete", later),
        ("A", "upsert", later),
    ]
    assert changes[2]["original_start"] == second.original_start
    ids = [c["id"] for c in changes]
    assert ids == sorted(ids)
    assert [c["uid"] for c in await store.changes(after=ids[1])] == ["B", "A"]
    assert await store.changes(after=ids[-1]) == []

    assert await store.purge_changes(later, batch=1) == 2  # the two at NOW, one per batch
    assert [c["id"] for c in await store.changes()] == ids[2:]


async def test_many_subscriptions_are_read_and_heard_at_once(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    for n in (1, 2):
        await subscriptions.record(
            ROOM, f"S{n}", protocol="ews", watermark="W0", status_frequency=15, now=NOW
        )
    later = NOW + timedelta(minutes=3)

    await subscriptions.heard_many([("S1", later, "W7"), ("S2", later, None)])

    records = await subscriptions.by_ids(["S1", "S2", "unknown"])
    assert sorted(records) == ["S1", "S2"]
    assert (records["S1"]["last_event_at"], records["S1"]["last_watermark"]) == (later, "W7")
    assert (records["S2"]["last_event_at"], records["S2"]["last_watermark"]) == (later, "W0")
    await subscriptions.heard_many([])  # nothing to write, no error


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


async def test_watermark_seen_looks_near_the_naming_event_then_everywhere(
    connector: Connector,
) -> None:
    """The redelivery index is led by the event's time (migration 0008): an untimed
    StatusEvent, an event of the minutes before, and one from days before are all found."""
    status = event(1)._replace(event_type="Status", event_time=None, item_id=None)
    recent = event(2)._replace(event_time=T0 - timedelta(minutes=1))
    old = event(3)._replace(event_time=T0 - timedelta(days=3))
    await add_rows(connector, [status, recent, old])
    subscriptions = Subscriptions(connector)

    for found in (status, recent, old):
        assert await subscriptions.watermark_seen("SUB-1", str(found.watermark), before=T0)
        assert await subscriptions.watermark_seen("SUB-1", str(found.watermark))
    assert not await subscriptions.watermark_seen("SUB-1", "never-sent", before=T0)
    assert not await subscriptions.watermark_seen("SUB-2", str(recent.watermark), before=T0)


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


async def test_a_single_meeting_has_no_original_start_and_a_move_rewrites_its_one_row(
    connector: Connector,
) -> None:
    """NULL is the key part of every single: one row per UID (a plain UNIQUE would let NULLs
    repeat), found, moved and deleted by its key on both engines."""
    store = Reservations(connector)
    single = _row("S", NOW + timedelta(days=1), original_start=None)
    occurrence = _row("S", NOW + timedelta(days=1), item_type="occurrence", series_master_id="M")
    await store.apply(Plan(upserts=[single, occurrence]), NOW)
    moved = replace(single, start=single.start + timedelta(hours=3), end=single.end + timedelta(3))
    await store.apply(Plan(upserts=[moved]), NOW)

    assert sorted(await store.for_room(ROOM), key=lambda r: r.original_start is not None) == [
        moved,
        occurrence,
    ]
    await store.apply(Plan(deletes=[single.key]), NOW)
    assert await store.for_room(ROOM) == [occurrence]
    changes = [(c["original_start"], c["change"]) for c in await store.changes()]
    assert changes == [
        (None, "upsert"),
        (occurrence.original_start, "upsert"),
        (None, "upsert"),
        (None, "delete"),
    ]
