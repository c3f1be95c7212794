"""SyncFolderItems on a room calendar: what changed in the folder since a sync state.

A state stands for the mailbox's event counter (events.py) up to which the client has seen
every change. Without a state, the first sync lists every item in the folder as a Create, in
pages ordered by item id, and its last page ends on the counter the listing started at, so
whatever changed meanwhile comes again after it. From a state, the item events in the calendar
folder since then are the changes, one per item id: Create when the item arrived (created,
moved or copied in), Update when it changed, Delete when it left (moved to Deleted Items, hard
deleted). An item no longer in the folder is a Delete whatever its events were, as Exchange
reports the folder's current state. At most MaxChangesReturned (1 to 512) changes per answer,
IncludesLastItemInRange="false" while more wait.

A state from another mailbox, a garbled one, one older than the event log keeps (30 days), or
one issued before `Exchange.expire_sync_states` is ErrorInvalidSyncStateData, answered with an
empty SyncState as in Microsoft's example. Only calendar folders are synced.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitems-operation
https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitemsresponsemessage
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/handling-synchronization-related-errors-in-ews-in-exchange
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from pushsync.ews.namespaces import m, t
from pushsync.simulator import ids
from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.events import MailboxEvent
from pushsync.simulator.ews import soap
from pushsync.simulator.ews.calendar_item import (
    ONLY_THE_ID,
    id_only,
    render_item,
    requested_properties,
    shaped,
)
from pushsync.simulator.ews.mailbox import FolderRef, OperationError, folder_ids, resolve_folder
from pushsync.simulator.ews.soap import EwsRequest, SoapFault, sub
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.items import Folder

MAX_CHANGES = 512
INVALID_STATE = "Synchronization state data is corrupt or otherwise invalid."
ARRIVALS = frozenset({"Created", "Moved", "Copied"})


@dataclass(frozen=True, slots=True)
class Page:
    changes: list[tuple[str, str]]  # (Create | Update | Delete, item id), in order
    state: str
    last: bool


def handle(exchange: Exchange, request: EwsRequest) -> bytes:
    found = folder_ids(request, "SyncFolderId")
    if len(found) != 1:
        raise SoapFault("ErrorSchemaValidation", "SyncFolderId must name one folder.")
    try:
        ref = resolve_folder(exchange, request, found[0])
        message = _sync(exchange, ref, request)
    except OperationError as error:
        message = soap.error_message("SyncFolderItems", error.code, error.text)
        sub(message, m("SyncState"))
        sub(message, m("IncludesLastItemInRange"), "true")
    return soap.response("SyncFolderItems", request.version, [message])


def _sync(exchange: Exchange, ref: FolderRef, request: EwsRequest) -> etree._Element:
    if ref.folder is not Folder.CALENDAR:
        raise OperationError("ErrorInvalidOperation", "The simulator syncs calendar folders only.")
    ignored = request.element.find(m("Ignore"))
    page = changes(
        exchange,
        ref.calendar,
        request.element.findtext(m("SyncState")) or None,
        _max_changes(request),
        frozenset(e.get("Id", "") for e in (ignored if ignored is not None else [])),
    )
    message = soap.message("SyncFolderItems")
    sub(message, m("SyncState"), page.state)
    sub(message, m("IncludesLastItemInRange"), "true" if page.last else "false")
    container = sub(message, m("Changes"))
    names = requested_properties(request.element)
    for kind, item_id in page.changes:
        element = sub(container, t(kind))
        item = ref.calendar.item(item_id)
        if kind == "Delete" or item is None:
            sub(element, t("ItemId"), Id=item_id)
        elif names == ONLY_THE_ID:
            element.append(id_only(item.item_id, item.change_key))
        else:
            rendered = render_item(ref.calendar, item, organizer_address=False)
            element.append(shaped(rendered, names))
    return message


def changes(
    exchange: Exchange,
    calendar: RoomCalendar,
    state: str | None,
    limit: int,
    ignored: frozenset[str] = frozenset(),
) -> Page:
    """The next page of changes after `state` (None: the first sync)."""
    epoch = exchange.sync_epochs[calendar.mailbox.lower()]
    if state is None:
        return _listing(calendar, calendar.log.sequence, epoch, None, limit)
    parsed = ids.parse_sync_state(state)
    if (
        parsed is None
        or parsed.mailbox_guid != ids.mailbox_guid(calendar.mailbox)
        or parsed.epoch != epoch
        or not calendar.log.holds(parsed.sequence, exchange.clock.now())
    ):
        raise OperationError("ErrorInvalidSyncStateData", INVALID_STATE)
    if parsed.after is not None:
        return _listing(calendar, parsed.sequence, epoch, parsed.after, limit)
    return _replay(calendar, parsed.sequence, epoch, limit, ignored)


def _listing(
    calendar: RoomCalendar, sequence: int, epoch: int, after: str | None, limit: int
) -> Page:
    """A first sync: the folder's items by id, each a Create, `limit` at a time."""
    pending = sorted(
        item.item_id for item in calendar.items() if after is None or item.item_id > after
    )
    page = pending[:limit]
    last = len(page) == len(pending)
    state = ids.sync_state(calendar.mailbox, sequence, epoch, None if last else page[-1])
    return Page([("Create", item_id) for item_id in page], state, last)


def _replay(
    calendar: RoomCalendar, sequence: int, epoch: int, limit: int, ignored: frozenset[str]
) -> Page:
    """The folder's item events after `sequence`, one change per item, up to `limit` items."""
    folder = calendar.folder_ids[Folder.CALENDAR]
    found: dict[str, str] = {}
    consumed = sequence
    for event in calendar.log.since(sequence):
        change = _change(event, folder)
        if change is not None and change[1] not in ignored:
            kind, item_id = change
            if item_id not in found and len(found) >= limit:
                break
            found[item_id] = _merged(found.get(item_id), kind)
        consumed = event.sequence
    present = {item.item_id for item in calendar.items()}
    listed = [
        (kind if kind == "Delete" or item_id in present else "Delete", item_id)
        for item_id, kind in found.items()
    ]
    state = ids.sync_state(calendar.mailbox, consumed, epoch)
    return Page(listed, state, consumed >= calendar.log.sequence)


def _change(event: MailboxEvent, folder: str) -> tuple[str, str] | None:
    if event.item_id is None:  # a folder's own event
        return None
    if event.parent_folder_id == folder:
        if event.kind == "Deleted":
            return "Delete", event.item_id
        return ("Create" if event.kind in ARRIVALS else "Update"), event.item_id
    if event.old_parent_folder_id == folder and event.old_item_id:  # moved out
        return "Delete", event.old_item_id
    return None


def _merged(before: str | None, kind: str) -> str:
    """Create then Update is still a Create; a Delete ends whatever came before."""
    return "Create" if before == "Create" and kind == "Update" else kind


def _max_changes(request: EwsRequest) -> int:
    text = (request.element.findtext(m("MaxChangesReturned")) or "").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_CHANGES:
        raise SoapFault(
            "ErrorSchemaValidation", f"MaxChangesReturned must be 1 to {MAX_CHANGES}, not {text!r}"
        )
    return int(text)
