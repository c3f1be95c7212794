"""Which EWS operation each SOAP body element goes to."""

from __future__ import annotations

from collections.abc import Callable

from pushsync.simulator.ews import (
    convert_id,
    find_item,
    get_folder,
    get_item,
    room_lists,
    subscribe,
    sync_folder_items,
)
from pushsync.simulator.ews.soap import EwsRequest
from pushsync.simulator.exchange import Exchange

Handler = Callable[[Exchange, EwsRequest], bytes]

OPERATIONS: dict[str, Handler] = {
    "ConvertId": convert_id.handle,
    "GetFolder": get_folder.handle,
    "Subscribe": subscribe.handle,
    "GetItem": get_item.handle,
    "FindItem": find_item.handle,
    "SyncFolderItems": sync_folder_items.handle,
    "GetRoomLists": room_lists.get_room_lists,
    "GetRooms": room_lists.get_rooms,
}

# exchangelib's version probe: throttling it would only test exchangelib's start-up.
UNTHROTTLED = frozenset({"ConvertId"})
