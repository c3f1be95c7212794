"""Room discovery's rules, in process against the simulator's Places, with a clock the test
moves: a room is let go of only after it has been missing for the grace period in answers that
listed rooms; a list that fails or comes back empty says nothing about its rooms, even while
another list answers; a room configured by hand is never let go of; a room back in its list
before the grace ends is simply kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from pushsync.graph.auth import static_token
from pushsync.graph.client import GraphClient
from pushsync.graph.places import Places
from pushsync.graph.room_discovery import RoomDiscovery, Roster
from pushsync.simulator import Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.config import RoomList
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.simulator.graph.places import Places as SimulatedPlaces
from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade
from pushsync.store.room_directory import RoomDirectory
from tests.integration.helpers import Clock

ROOMS = generated_rooms(5)
NORTH = RoomList("north@contoso.example", "North", tuple(r.email for r in ROOMS[:3]))
SOUTH = RoomList("south@contoso.example", "South", tuple(r.email for r in ROOMS[3:]))
GRACE = timedelta(hours=24)
PINNED = ROOMS[2].email  # also in `graph_rooms`


@pytest.fixture
async def places(tmp_path: Path) -> AsyncIterator[tuple[SimulatedPlaces, Places, Connector]]:
    config = SimulatorConfig(rooms=ROOMS, room_lists=(NORTH, SOUTH))
    connector = connect(f"sqlite:///{tmp_path}/pushsync.db")
    await connector.open()
    await upgrade(connector)
    async with Simulator(config) as sim:
        client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
        assert sim.graph is not None
        yield sim.graph.places, Places(client), connector
        await client.aclose()
    await connector.close()


def discovery(places: Places, connector: Connector, clock: Clock, roster: Roster) -> RoomDiscovery:
    return RoomDiscovery(
        places,
        RoomDirectory(connector),
        room_lists=[NORTH.email, SOUTH.email],
        all_rooms=False,
        grace=GRACE,
        configured=[PINNED],
        roster=roster,
        clock=clock,
    )


async def test_rooms_are_let_go_of_only_after_the_grace_in_answers_that_listed_rooms(
    places: tuple[SimulatedPlaces, Places, Connector],
) -> None:
    simulated, client, connector = places
    clock, roster = Clock(), Roster()
    rooms = discovery(client, connector, clock, roster)

    first = await rooms.refresh()
    roster.replace(await rooms.rooms())
    assert first.added == sorted(r.email for r in ROOMS) and not first.problems
    assert list(roster) == sorted(r.email for r in ROOMS)

    # North loses two rooms (one of them pinned by hand), South loses one but then fails.
    simulated.remove_room(ROOMS[0].email, NORTH.email)
    simulated.remove_room(PINNED, NORTH.email)
    simulated.remove_room(ROOMS[3].email, SOUTH.email)
    clock.advance(timedelta(hours=1))
    noted = await rooms.refresh()
    assert noted.missing == [ROOMS[0].email, ROOMS[3].email] and noted.let_go == []

    simulated.lists[SOUTH.email].members.clear()  # South answers empty from now on
    clock.advance(GRACE)
    later = await rooms.refresh()
    assert later.let_go == [ROOMS[0].email]  # North still lists rooms and not this one
    assert ROOMS[0].email not in roster  # left the roster before it was let go of
    kept = await rooms.rooms()
    assert ROOMS[3].email in kept and ROOMS[4].email in kept  # South said nothing
    assert PINNED in kept  # configured by hand

    # Places empty altogether, for days: nothing changes.
    simulated.enabled = False
    clock.advance(10 * GRACE)
    empty = await rooms.refresh()
    assert (empty.let_go, empty.missing, empty.added) == ([], [], [])
    assert "Set-PlacesSettings -EnableBuildings" in empty.problems[0]
    assert await rooms.rooms() == kept


async def test_a_room_back_before_the_grace_ends_is_kept_and_a_failed_list_is_no_answer(
    places: tuple[SimulatedPlaces, Places, Connector],
) -> None:
    simulated, client, connector = places
    clock, roster = Clock(), Roster()
    rooms = discovery(client, connector, clock, roster)
    await rooms.refresh()

    simulated.remove_room(ROOMS[1].email, NORTH.email)
    clock.advance(timedelta(hours=1))
    assert (await rooms.refresh()).missing == [ROOMS[1].email]
    simulated.lists[NORTH.email].members.append(ROOMS[1].email)
    clock.advance(timedelta(hours=2))
    back = await rooms.refresh()
    assert back.missing == [] and back.let_go == []
    clock.advance(2 * GRACE)
    assert (await rooms.refresh()).let_go == []  # its missing_since was cleared

    simulated.permission_granted = False
    simulated.remove_room(ROOMS[4].email, SOUTH.email)
    clock.advance(2 * GRACE)
    refused = await rooms.refresh()
    assert refused.let_go == [] and refused.missing == []
    assert all("Place.Read.All" in problem for problem in refused.problems)
    assert len(await rooms.rooms()) == len(ROOMS)
