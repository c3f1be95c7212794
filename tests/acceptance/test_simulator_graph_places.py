"""The simulator's Graph Places, read through pushsync's `Places`: the v1.0 room resource's
properties only, pages of at most 100 with @odata.nextLink, 403 without Place.Read.All, empty
lists while Places is not set up, 404 for a room list it does not know, and rooms added to or
removed from a list while it runs.

V1_ROOM_PROPERTIES is the property table of the v1.0 room resource page,
https://learn.microsoft.com/graph/api/resources/room?view=graph-rest-1.0, as the simulator
serves it (docs/simulator.md lists what it leaves out).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from pushsync.errors import AuthenticationFailed
from pushsync.graph.auth import static_token
from pushsync.graph.client import GraphClient, NotFound
from pushsync.graph.places import Places
from pushsync.simulator import Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.booking import Room
from pushsync.simulator.config import RoomList
from pushsync.simulator.graph.api import GRAPH_TOKEN

V1_ROOM_PROPERTIES = frozenset(
    {
        "address", "audioDeviceName", "bookingType", "building", "capacity",
        "displayDeviceName", "displayName", "emailAddress", "floorLabel", "floorNumber",
        "geoCoordinates", "id", "isWheelChairAccessible", "label", "nickname", "phone", "tags",
        "videoDeviceName",
    }
)  # fmt: skip
ROOMS = generated_rooms(230)
SMALL = RoomList("small@contoso.example", "Small rooms", (ROOMS[0].email, ROOMS[1].email))
ALL = RoomList("all-rooms@contoso.example", "All Rooms")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(rooms=ROOMS, room_lists=(ALL, SMALL))
    async with Simulator(config) as sim:
        yield sim


@pytest.fixture
async def graph(sim: Simulator) -> AsyncIterator[GraphClient]:
    client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
    yield client
    await client.aclose()


async def test_rooms_come_in_pages_of_100_with_v1_properties_only(
    sim: Simulator, graph: GraphClient
) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {GRAPH_TOKEN}"}) as http:
        first = (await http.get(f"{sim.graph_url}/places/microsoft.graph.room")).json()
        small = await http.get(f"{sim.graph_url}/places/microsoft.graph.room?$top=7")

    assert len(first["value"]) == 100 and "@odata.nextLink" in first
    assert len(small.json()["value"]) == 7
    for room in first["value"]:
        assert room["@odata.type"] == "#microsoft.graph.room"
        assert {k for k in room if not k.startswith("@odata.")} == V1_ROOM_PROPERTIES
    rooms = await Places(graph).all_rooms()
    assert sorted(r.mailbox for r in rooms) == sorted(r.email for r in ROOMS)  # 3 pages
    assert sim.graph is not None and sim.graph.calls["places"] == 2 + 3
    [one] = [r for r in rooms if r.mailbox == ROOMS[5].email]
    place = sim.graph.places.rooms[ROOMS[5].email]
    assert (one.display_name, one.capacity, one.building, one.floor_number) == (
        place.display_name,
        place.capacity,
        place.building,
        place.floor_number,
    )


async def test_room_lists_and_their_rooms_change_while_running(
    sim: Simulator, graph: GraphClient
) -> None:
    places = Places(graph)
    assert await places.room_lists() == [ALL.email, SMALL.email]
    assert [r.mailbox for r in await places.rooms_in(SMALL.email)] == list(SMALL.members or ())
    assert {r.discovered_from for r in await places.rooms_in(SMALL.email)} == {SMALL.email}
    assert sim.graph is not None
    annex = Room("annex@contoso.example", "Annex", "Europe/Berlin")

    sim.graph.places.add_room(annex, SMALL.email, capacity=40)
    sim.graph.places.remove_room(ROOMS[0].email, SMALL.email)

    listed = {r.mailbox: r for r in await places.rooms_in(SMALL.email)}
    assert sorted(listed) == sorted([annex.email, ROOMS[1].email])
    assert listed[annex.email].capacity == 40
    assert sim.exchange.calendar(annex.email) is not None  # a mailbox pushsync can read
    assert len(await places.all_rooms()) == len(ROOMS) + 1  # removed from a list only


async def test_places_fails_as_graph_does(sim: Simulator, graph: GraphClient) -> None:
    places = Places(graph)
    assert sim.graph is not None
    with pytest.raises(NotFound):
        await places.rooms_in("nobody@contoso.example")

    sim.graph.places.enabled = False  # Set-PlacesSettings -EnableBuildings never run
    assert await places.all_rooms() == []
    assert await places.rooms_in(SMALL.email) == []

    sim.graph.places.permission_granted = False  # no Place.Read.All
    with pytest.raises(AuthenticationFailed, match="403"):
        await places.all_rooms()
