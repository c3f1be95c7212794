"""The room table's directory columns (migration 0013) and letting go of a room, on both
engines: what Places says of a room reaches `/rooms`; a room let go of loses its subscription
and its reservations (each recorded as a delete) and leaves the status; listed again, it is
taken back and read in full."""

from __future__ import annotations

from datetime import timedelta

from pushsync.admin.room_status import discovery_answers, room_statuses
from pushsync.model.reservation import Plan, Reservation
from pushsync.store import Connector
from pushsync.store.reservation_book import Reservations
from pushsync.store.room_directory import ListedRoom, RoomDirectory
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0

BOARDROOM = ListedRoom(
    "boardroom@contoso.example",
    display_name="Boardroom",
    capacity=12,
    building="Building 1",
    floor_number=3,
    discovered_from="all-rooms@contoso.example",
)
ATRIUM = ListedRoom("atrium@contoso.example", discovered_from="all-rooms@contoso.example")


def booking(mailbox: str, n: int) -> Reservation:
    start = T0 + timedelta(days=n)
    return Reservation(mailbox, f"UID-{n}", None, f"ITEM-{n}", "single", start, start)


async def test_the_directory_s_details_are_stored_and_shown_in_rooms_json(
    connector: Connector,
) -> None:
    directory = RoomDirectory(connector)
    await directory.listed([BOARDROOM, ATRIUM], "graph", T0)

    statuses = {s.mailbox: s.as_json() for s in await room_statuses(connector, T0)}

    assert statuses[BOARDROOM.mailbox] | {"capacity": 12} == statuses[BOARDROOM.mailbox]
    board = statuses[BOARDROOM.mailbox]
    assert (board["display_name"], board["building"], board["floor_number"]) == (
        "Boardroom",
        "Building 1",
        3,
    )
    assert board["protocol"] == "graph" and board["missing_since"] is None
    atrium = statuses[ATRIUM.mailbox]
    assert (atrium["display_name"], atrium["capacity"], atrium["building"]) == (None, None, None)

    renamed = ListedRoom(BOARDROOM.mailbox, display_name="Board", capacity=14)
    await directory.listed([renamed], "graph", T0 + timedelta(hours=1))
    again = {s.mailbox: s for s in await room_statuses(connector, T0)}[BOARDROOM.mailbox]
    assert (again.display_name, again.capacity, again.building) == ("Board", 14, None)


async def test_a_room_let_go_of_loses_its_subscription_and_reservations(
    connector: Connector,
) -> None:
    directory, subscriptions = RoomDirectory(connector), Subscriptions(connector)
    reservations = Reservations(connector)
    await directory.listed([BOARDROOM, ATRIUM], "graph", T0)
    for n, room in enumerate([BOARDROOM, ATRIUM]):
        await subscriptions.record(
            room.mailbox, f"SUB-{n}", protocol="graph", watermark=None, status_frequency=None,
            now=T0, expires_at=T0 + timedelta(days=6),
        )  # fmt: skip
    await reservations.apply(
        Plan(upserts=[booking(BOARDROOM.mailbox, 1), booking(BOARDROOM.mailbox, 2)]), T0
    )
    await reservations.apply(Plan(upserts=[booking(ATRIUM.mailbox, 3)]), T0)
    later = T0 + timedelta(days=2)
    await directory.missing([BOARDROOM.mailbox], T0 + timedelta(days=1))
    await directory.missing([BOARDROOM.mailbox], later)  # the first time is kept

    missing = {r["mailbox"]: r for r in await directory.known()}[BOARDROOM.mailbox]
    assert _naive(missing["missing_since"]) == _naive(T0 + timedelta(days=1))
    assert missing["removed_at"] is None

    deleted = await directory.let_go(BOARDROOM.mailbox, "room no longer listed in Places", later)

    assert deleted == 2
    assert [r.mailbox for r in await reservations.all()] == [ATRIUM.mailbox]
    changes = [c for c in await reservations.changes() if c["change"] == "delete"]
    assert sorted(c["uid"] for c in changes) == ["UID-1", "UID-2"]
    retired = await subscriptions.by_id("SUB-0")
    assert retired is not None and retired["state"] == "retired"
    assert retired["last_error"] == "room no longer listed in Places"
    assert [s.mailbox for s in await subscriptions.live()] == [ATRIUM.mailbox]
    assert [s.mailbox for s in await room_statuses(connector, later)] == [ATRIUM.mailbox]
    assert [r["mailbox"] for r in await directory.active()] == [ATRIUM.mailbox]
    assert await directory.let_go(BOARDROOM.mailbox, "again", later) == 0

    await directory.listed([BOARDROOM], "graph", later + timedelta(hours=1))

    back = {r["mailbox"]: r for r in await subscriptions.rooms()}[BOARDROOM.mailbox]
    assert back["removed_at"] is None and back["missing_since"] is None
    assert back["needs_resync"] and back["resync_reason"] == "listed again"


async def test_a_room_listed_again_before_the_grace_ends_is_no_longer_missing(
    connector: Connector,
) -> None:
    directory = RoomDirectory(connector)
    await directory.listed([ATRIUM], "graph", T0)
    await directory.missing([ATRIUM.mailbox], T0 + timedelta(hours=1))
    await directory.listed([ATRIUM], "graph", T0 + timedelta(hours=2))

    row = (await directory.known())[0]
    assert row["missing_since"] is None and row["removed_at"] is None


def _naive(moment: object) -> str:
    """SQLite hands back naive UTC, PostgreSQL aware: compare the wall time."""
    return str(moment)[:19].replace("T", " ")


async def test_each_source_s_last_answer_is_kept_for_the_status(connector: Connector) -> None:
    directory = RoomDirectory(connector)
    await directory.answered("north@contoso.example", 0, "Places listed no rooms here", T0)
    await directory.answered("south@contoso.example", 4, None, T0)
    await directory.answered("north@contoso.example", 3, None, T0 + timedelta(minutes=5))

    answers = await discovery_answers(connector)

    assert [(a["source"], a["listed"], a["problem"]) for a in answers] == [
        ("north@contoso.example", 3, None),
        ("south@contoso.example", 4, None),
    ]
    assert answers[0]["checked_at"].startswith("2026-11-24")
