"""The rooms of a tenant from Graph's Places API (docs/protocol.md §5a).

https://learn.microsoft.com/graph/api/place-list
https://learn.microsoft.com/graph/api/resources/room
https://learn.microsoft.com/graph/api/resources/roomlist

`GET /places/microsoft.graph.room` lists every room, `/places/microsoft.graph.roomlist` the
room lists, and `/places/{roomlist-email}/microsoft.graph.roomlist/rooms` the rooms of one list
(a list is addressed by its email). Pages hold 100 places by default, followed by
`@odata.nextLink`. The app needs the application permission Place.Read.All; without it Graph
answers 403 (`AuthenticationFailed` here). Rooms hidden from the address book are not listed.
Places is empty until the tenant's admin has set it up (`Set-PlacesSettings -EnableBuildings`),
so an empty answer is not taken to mean "no rooms": see `graph/room_discovery.py`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pushsync.graph.client import GraphClient
from pushsync.store.room_directory import ALL_ROOMS, ListedRoom

ROOMS = "/places/microsoft.graph.room"
ROOM_LISTS = "/places/microsoft.graph.roomlist"
PAGE = {"$top": "100"}  # Places' own default page size, asked for explicitly
PERMISSION = "Place.Read.All"


class Places:
    def __init__(self, client: GraphClient) -> None:
        self._client = client

    async def all_rooms(self) -> list[ListedRoom]:
        """Every room of the tenant that Places knows."""
        return _rooms(await self._client.collection(ROOMS, PAGE), ALL_ROOMS)

    async def rooms_in(self, room_list: str) -> list[ListedRoom]:
        """The rooms of one room list (by its email address)."""
        path = f"/places/{quote(room_list)}/microsoft.graph.roomlist/rooms"
        return _rooms(await self._client.collection(path, PAGE), room_list)

    async def room_lists(self) -> list[str]:
        """The email addresses of the tenant's room lists."""
        lists = await self._client.collection(ROOM_LISTS, PAGE)
        return [str(item["emailAddress"]) for item in lists if item.get("emailAddress")]


def _rooms(items: list[Any], source: str) -> list[ListedRoom]:
    """Rooms with an email address (the mailbox pushsync subscribes to); others are left out."""
    return [
        ListedRoom(
            mailbox=str(item["emailAddress"]),
            display_name=_text(item.get("displayName")),
            capacity=_number(item.get("capacity")),
            building=_text(item.get("building")),
            floor_number=_number(item.get("floorNumber")),
            discovered_from=source,
        )
        for item in items
        if isinstance(item, dict) and item.get("emailAddress")
    ]


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
