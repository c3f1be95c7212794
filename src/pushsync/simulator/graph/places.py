"""The simulator's Graph Places API (v1.0): the organisation's rooms and room lists.

| request | answer |
|---|---|
| GET /places/microsoft.graph.room | every listed room |
| GET /places/microsoft.graph.roomlist | every room list |
| GET /places/{list-email}/microsoft.graph.roomlist/rooms | the rooms of one list; 404 if none |

https://learn.microsoft.com/graph/api/place-list ("By default, this operation returns 100
places per page"; `$top` is supported), https://learn.microsoft.com/graph/api/resources/room,
https://learn.microsoft.com/graph/api/resources/roomlist. Pages hold `$top` places (at most
100, the default) and end with `@odata.nextLink` while more follow. A room carries the
v1.0 room resource's properties only. The lists start as the configuration's
(`SimulatorConfig.room_lists`, every room by default); `add_room` and `remove_room` change them
while the simulator runs. `enabled = False` plays a tenant whose admin never set Places up
(`Set-PlacesSettings -EnableBuildings`): every answer is an empty list. `permission_granted =
False` plays an app without Place.Read.All: 403, as Graph answers. Guesses: docs/simulator.md.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from pushsync.simulator.booking import Room
from pushsync.simulator.exchange import Exchange

PAGE_SIZE = 100  # Places' default and, here, its most
ROOMS = "/places/microsoft.graph.room"
ROOM_LISTS = "/places/microsoft.graph.roomlist"
_LIST_ROOMS = re.compile(r"^/places/([^/]+)/microsoft\.graph\.roomlist/rooms$", re.IGNORECASE)

Document = dict[str, Any]


class PlacesError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class PlaceRoom:
    """What Places holds for one room (Set-PlaceV3's fields)."""

    email: str
    display_name: str
    capacity: int | None = None
    building: str | None = None
    floor_number: int | None = None
    floor_label: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class PlaceList:
    email: str
    display_name: str
    members: list[str] = field(default_factory=list)  # room emails, lower case


class Places:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.enabled = True  # Set-PlacesSettings -EnableBuildings 'Default:true' was run
        self.permission_granted = True  # the app holds Place.Read.All (application)
        self.rooms: dict[str, PlaceRoom] = {}
        self.lists: dict[str, PlaceList] = {}
        for n, room in enumerate(exchange.config.rooms):
            self.rooms[room.email.lower()] = _place(room, n)
        for room_list in exchange.config.room_lists:
            members = [r.email.lower() for r in exchange.config.rooms if room_list.holds(r.email)]
            self.lists[room_list.email.lower()] = PlaceList(
                room_list.email, room_list.name, members
            )

    # -- what tests and the demo change ------------------------------------------------------

    def add_room(self, room: Room, room_list: str | None = None, **details: Any) -> None:
        """A new room mailbox, set up in Places and added to `room_list` (if given); `details`
        are PlaceRoom's (capacity, building, floor_number, …)."""
        self.exchange.add_mailbox(room)
        place = _place(room, len(self.rooms))
        for name, value in details.items():
            setattr(place, name, value)
        self.rooms[room.email.lower()] = place
        if room_list is not None:
            members = self.lists[room_list.lower()].members
            if room.email.lower() not in members:
                members.append(room.email.lower())

    def remove_room(self, mailbox: str, room_list: str | None = None) -> None:
        """Take the room out of one list, or (no list) out of Places altogether; its mailbox
        and calendar stay, as they do when an admin edits a room list."""
        key = mailbox.lower()
        for place_list in self.lists.values():
            chosen = room_list is None or place_list.email.lower() == room_list.lower()
            if chosen and key in place_list.members:
                place_list.members.remove(key)
        if room_list is None:
            self.rooms.pop(key, None)

    # -- serving -----------------------------------------------------------------------------

    def serves(self, path: str) -> bool:
        return path.lower().startswith("/places/")

    def answer(self, method: str, path: str, query: dict[str, str], base_url: str) -> Document:
        if method != "GET":
            raise PlacesError(405, "MethodNotAllowed", f"{method} not allowed")
        if not self.permission_granted:
            raise PlacesError(403, "ErrorAccessDenied", "Access is denied. Check credentials.")
        if path.lower() == ROOMS:
            items = [_room_json(r) for r in self._rooms(list(self.rooms))]
        elif path.lower() == ROOM_LISTS:
            items = [_list_json(p) for p in self.lists.values()] if self.enabled else []
        elif match := _LIST_ROOMS.match(path):
            place_list = self.lists.get(unquote(match.group(1)).lower())
            if place_list is None:
                raise PlacesError(404, "ErrorItemNotFound", "The specified object was not found.")
            items = [_room_json(r) for r in self._rooms(place_list.members)]
        else:
            raise PlacesError(404, "ResourceNotFound", f"{method} {path} is not served")
        return _page(items, path, query, base_url)

    def _rooms(self, emails: list[str]) -> list[PlaceRoom]:
        if not self.enabled:
            return []
        return [self.rooms[e] for e in sorted(emails) if e in self.rooms]


def _page(items: list[Document], path: str, query: dict[str, str], base_url: str) -> Document:
    """One page of `$top` (at most 100) items from the `$skiptoken`'s offset."""
    try:
        top = min(int(query.get("$top", PAGE_SIZE)), PAGE_SIZE)
        start = int(base64.urlsafe_b64decode(query["$skiptoken"])) if "$skiptoken" in query else 0
    except ValueError:
        raise PlacesError(400, "BadRequest", "invalid $top or $skiptoken") from None
    if top < 1:
        raise PlacesError(400, "BadRequest", "$top must be positive")
    document: Document = {
        "@odata.context": f"{base_url}/v1.0/$metadata#places",
        "value": items[start : start + top],
    }
    if start + top < len(items):
        token = base64.urlsafe_b64encode(str(start + top).encode()).decode()
        document["@odata.nextLink"] = f"{base_url}/v1.0{path}?$top={top}&$skiptoken={quote(token)}"
    return document


def _place(room: Room, n: int) -> PlaceRoom:
    return PlaceRoom(
        email=room.email,
        display_name=room.name,
        capacity=4 + 2 * (n % 8),
        building=f"Building {1 + n % 3}",
        floor_number=n % 5,
    )


def _room_json(room: PlaceRoom) -> Document:
    """The v1.0 room resource's properties (docs/simulator.md), with Graph's nulls."""
    return {
        "@odata.type": "#microsoft.graph.room",
        "id": _id(room.email),
        "emailAddress": room.email,
        "displayName": room.display_name,
        "address": None,
        "geoCoordinates": None,
        "phone": None,
        "nickname": room.display_name,
        "label": None,
        "capacity": room.capacity,
        "building": room.building,
        "floorNumber": room.floor_number,
        "floorLabel": room.floor_label,
        "isWheelChairAccessible": False,
        "bookingType": "standard",
        "tags": list(room.tags),
        "audioDeviceName": None,
        "videoDeviceName": None,
        "displayDeviceName": None,
    }


def _list_json(place_list: PlaceList) -> Document:
    return {
        "@odata.type": "#microsoft.graph.roomList",
        "id": _id(place_list.email),
        "displayName": place_list.display_name,
        "address": None,
        "geoCoordinates": None,
        "phone": None,
        "emailAddress": place_list.email,
    }


def _id(email: str) -> str:
    """A stable opaque id (Graph's is a GUID that may change with the mailbox)."""
    digest = hashlib.sha256(email.lower().encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
