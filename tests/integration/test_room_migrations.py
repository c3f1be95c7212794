"""The state of `pushsync rooms migrate` and of polled rooms, on real rows, on both engines:
the migration table's steps, the protocol override against the settings, the old subscription
kept until the room is resynced over the new one, polling claimed and ended, and what the status
says of both."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta

from pushsync.admin.room_status import room_statuses
from pushsync.admin.status_page import render
from pushsync.model.reservation import Plan
from pushsync.store import Connector, connect
from pushsync.store.connector import Row
from pushsync.store.reservation_book import Reservations
from pushsync.store.room_migrations import RoomMigrations
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0

ROOM, OTHER = "moving@contoso.example", "staying@contoso.example"
LEASE = timedelta(minutes=10)


async def subscribe(subscriptions: Subscriptions, mailbox: str, protocol: str, sid: str) -> None:
    await subscriptions.record(
        mailbox, sid, protocol=protocol, watermark=None, status_frequency=15, now=T0
    )


async def live(subscriptions: Subscriptions, mailbox: str) -> list[tuple[str, str]]:
    return sorted((s.protocol, s.state) for s in await subscriptions.live() if s.mailbox == mailbox)


async def test_a_move_goes_step_by_step_and_survives_a_new_connection(
    connector: Connector, database_url: str
) -> None:
    migrations = RoomMigrations(connector)
    await Subscriptions(connector).ensure_rooms([ROOM, OTHER], "ews", T0)
    assert await migrations.request([(ROOM, "ews", "graph")], T0) == 1
    [move] = await migrations.open()
    assert (move["mailbox"], move["source"], move["target"], move["state"]) == (
        ROOM,
        "ews",
        "graph",
        "requested",
    )
    assert await migrations.step(ROOM, "graph", "requested", "subscribed", T0)
    assert not await migrations.step(ROOM, "graph", "requested", "subscribed", T0)  # taken
    assert not await migrations.step(ROOM, "ews", "subscribed", "resynced", T0)  # other target
    await migrations.failed(ROOM, "resync: throttled", T0)
    assert (await migrations.of(ROOM) or {})["last_error"] == "resync: throttled"
    assert await migrations.step(ROOM, "graph", "subscribed", "resynced", T0)
    assert (await migrations.of(ROOM) or {})["last_error"] is None  # a step clears it

    again = connect(database_url)  # a restarted worker reads where the move stood
    await again.open()
    try:
        [move] = await RoomMigrations(again).open()
        assert move["state"] == "resynced"
        assert await RoomMigrations(again).step(ROOM, "graph", "resynced", "retired", T0)
        assert await RoomMigrations(again).open() == []
    finally:
        await again.close()
    # asked again, it starts over towards the new target
    await migrations.request([(ROOM, "graph", "ews")], T0 + timedelta(hours=1))
    [move] = await migrations.open()
    assert (move["source"], move["target"], move["state"]) == ("graph", "ews", "requested")


async def test_the_override_outranks_the_settings_and_the_old_manager_leaves_the_room(
    connector: Connector,
) -> None:
    subscriptions, migrations = Subscriptions(connector), RoomMigrations(connector)
    await subscriptions.ensure_rooms([ROOM, OTHER], "ews", T0)
    await migrations.override(ROOM, "graph")
    await migrations.switch(ROOM, "graph")
    await subscriptions.save_sync_state(OTHER, "ews-sync-state")
    await subscriptions.ensure_rooms([ROOM, OTHER], "ews", T0)  # the EWS manager's next round
    rooms = {r["mailbox"]: r for r in await subscriptions.rooms()}
    assert (rooms[ROOM]["protocol"], rooms[ROOM]["protocol_override"]) == ("graph", "graph")
    assert rooms[OTHER]["protocol"] == "ews"
    assert await subscriptions.moved_off("ews") == {ROOM}
    assert await subscriptions.moved_off("graph") == set()
    assert await migrations.overridden() == {ROOM: "graph"}


async def test_the_old_subscription_is_kept_until_the_room_is_resynced_over_the_new_one(
    connector: Connector,
) -> None:
    subscriptions, migrations = Subscriptions(connector), RoomMigrations(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", T0)
    await subscribe(subscriptions, ROOM, "ews", "EWS-1")
    await subscriptions.save_sync_state(ROOM, "ews-sync-state")
    await migrations.request([(ROOM, "ews", "graph")], T0)
    await subscribe(subscriptions, ROOM, "graph", "GRAPH-1")
    # what a Graph manager does right after creating: refused while the move is under way
    assert await subscriptions.retire_other_protocols(ROOM, "graph", T0) == 0
    assert await live(subscriptions, ROOM) == [("ews", "active"), ("graph", "active")]
    await subscriptions.start_polling(ROOM, "subscription cap", "429 …", T0)  # an old refusal
    await migrations.switch(ROOM, "graph")
    assert await subscriptions.sync_state(ROOM) is None  # EWS's cursor means nothing to Graph
    [room] = [r for r in await subscriptions.rooms() if r["mailbox"] == ROOM]
    assert (room["protocol"], room["poll_reason"], room["poll_since"]) == ("graph", None, None)
    await migrations.step(ROOM, "graph", "requested", "subscribed", T0)
    assert await subscriptions.retire_other_protocols(ROOM, "graph", T0) == 0
    await migrations.step(ROOM, "graph", "subscribed", "resynced", T0)
    assert await subscriptions.retire_other_protocols(ROOM, "graph", T0) == 1
    assert await live(subscriptions, ROOM) == [("graph", "active")]


async def test_a_polled_room_is_claimed_when_due_and_polling_ends_with_a_subscription(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM, OTHER], "graph", T0)
    for mailbox in (ROOM, OTHER):  # both read once (their "new room" resync)
        await Reservations(connector).reconcile_room(mailbox, lambda _s: Plan(), T0, resynced=1)
    await subscriptions.start_polling(ROOM, "on-premises mailbox", "404 …", T0)
    rooms = {r["mailbox"]: r for r in await subscriptions.rooms()}
    assert rooms[ROOM]["needs_resync"] and rooms[ROOM]["resync_reason"] == "polling begins"
    await subscriptions.start_polling(ROOM, "on-premises mailbox", "404 again", T0)
    again = {r["mailbox"]: r for r in await subscriptions.rooms()}[ROOM]
    assert again["resync_generation"] == rooms[ROOM]["resync_generation"]  # one read, not two

    def claim(at: timedelta) -> Awaitable[list[Row]]:
        return subscriptions.claim_polls(
            5, protocols=["graph"], now=T0 + at, every=timedelta(minutes=5), lease=LEASE
        )

    assert await claim(timedelta(minutes=1)) == []  # read a minute ago
    [due] = await claim(timedelta(minutes=6))
    assert (due["mailbox"], due["protocol"]) == (ROOM, "graph")
    assert await claim(timedelta(minutes=7)) == []  # leased
    assert (
        await subscriptions.claim_polls(
            5, protocols=["ews"], now=T0 + LEASE * 2, every=timedelta(minutes=5), lease=LEASE
        )
        == []
    )
    [status] = [
        s for s in await room_statuses(connector, T0 + timedelta(minutes=8)) if s.mailbox == ROOM
    ]
    assert (status.kind, status.polling_reason) == ("polling", "on-premises mailbox")
    assert "404 again" in (status.problem or "")

    await subscribe(subscriptions, ROOM, "graph", "GRAPH-1")  # Graph took it at last
    assert await claim(LEASE * 2) == []
    rooms = {r["mailbox"]: r for r in await subscriptions.rooms()}
    assert rooms[ROOM]["poll_reason"] is None and rooms[ROOM]["poll_since"] is None


async def test_polling_that_fails_is_shown_broken_and_a_move_under_way_is_shown(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM, OTHER], "graph", T0)
    await subscriptions.start_polling(ROOM, "access denied", "403 ErrorAccessDenied", T0)
    await subscriptions.room_error(ROOM, "resync: 403 ErrorAccessDenied", T0)
    await RoomMigrations(connector).request([(OTHER, "graph", "ews")], T0)
    await RoomMigrations(connector).failed(OTHER, "subscribe: Exchange away", T0)
    statuses = {s.mailbox: s for s in await room_statuses(connector, T0 + timedelta(minutes=1))}
    denied = statuses[ROOM]
    assert denied.kind == "polling failed" and denied.polling_reason == "access denied"
    assert (denied.problem or "").startswith("broken: polling fails too: resync: 403")
    assert statuses[OTHER].migration == "to ews: requested (subscribe: Exchange away)"
    assert statuses[ROOM].migration is None
    page = render(list(statuses.values()), T0).decode()
    assert "Moving between protocols: 1" in page
    assert "to ews: requested (subscribe: Exchange away)" in page
    assert "broken: polling fails too" in page
