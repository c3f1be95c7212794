"""FindItem on a room calendar: a CalendarView (expanded) or a plain page of stored items.

A CalendarView returns singles, occurrences and exceptions overlapping the range, never
masters. Its range is at most two years (ErrorCalendarViewRangeTooBig) and it returns at most
1000 items (ErrorExceededFindCountLimit); MaxEntriesReturned cuts the answer short with
IncludesLastItemInRange="false". There is no paging (docs/protocol.md §7). FindItem leaves out the
organizer's address.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/finditem-operation
https://learn.microsoft.com/exchange/client-developer/web-service-reference/calendarview
"""

from __future__ import annotations

from datetime import datetime, timedelta

from lxml import etree

from pushsync.ews.namespaces import m, t
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
from pushsync.simulator.items import CalendarItem

MAX_RANGE = timedelta(days=731)  # two years, a leap day included
FIND_COUNT_LIMIT = 1000


def handle(exchange: Exchange, request: EwsRequest) -> bytes:
    messages = []
    for element in folder_ids(request, "ParentFolderIds"):
        try:
            ref = resolve_folder(exchange, request, element)
            messages.append(_find(ref, request))
        except OperationError as error:
            messages.append(soap.error_message("FindItem", error.code, error.text))
    return soap.response("FindItem", request.version, messages)


def _find(ref: FolderRef, request: EwsRequest) -> etree._Element:
    if ref.folder is None:
        raise OperationError("ErrorInvalidOperation", "FindItem needs an item folder.")
    view = request.element.find(m("CalendarView"))
    if view is not None:
        return _calendar_view(ref, request, view)
    return _page(ref, request)


def _calendar_view(ref: FolderRef, request: EwsRequest, view: etree._Element) -> etree._Element:
    start, end = _moment(view.get("StartDate")), _moment(view.get("EndDate"))
    if end < start:
        raise OperationError("ErrorCalendarEndDateIsEarlierThanStartDate", "End before start.")
    if end - start > MAX_RANGE:
        raise OperationError(
            "ErrorCalendarViewRangeTooBig", "The calendar view range is larger than 2 years."
        )
    calendar = ref.calendar
    instances = calendar.instances(start, end)
    if len(instances) > FIND_COUNT_LIMIT:
        raise OperationError(
            "ErrorExceededFindCountLimit",
            "You have exceeded the maximum number of objects that can be returned.",
        )
    limit = _int(view.get("MaxEntriesReturned"), len(instances))
    shown = instances[:limit]
    names = requested_properties(request.element)
    message = soap.message("FindItem")
    root = sub(
        message,
        m("RootFolder"),
        TotalItemsInView=str(len(shown)),
        IncludesLastItemInRange="true" if len(shown) == len(instances) else "false",
    )
    items = sub(root, t("Items"))
    for instance in shown:
        if names == ONLY_THE_ID:
            items.append(id_only(instance.item_id, instance.change_key))
            continue
        stored = calendar.item(instance.master_id or instance.item_id)
        assert stored is not None
        rendered = render_item(calendar, stored, instance.original_start, organizer_address=False)
        items.append(shaped(rendered, names))
    return message


def _page(ref: FolderRef, request: EwsRequest) -> etree._Element:
    """IndexedPageItemView over the stored items (masters, not occurrences)."""
    assert ref.folder is not None
    stored = sorted(ref.calendar.items(ref.folder), key=lambda i: (i.start, i.item_id))
    paging = request.element.find(m("IndexedPageItemView"))
    offset = _int(paging.get("Offset") if paging is not None else None, 0)
    limit = _int(paging.get("MaxEntriesReturned") if paging is not None else None, len(stored))
    page = stored[offset : offset + limit]
    message = soap.message("FindItem")
    last = offset + len(page) >= len(stored)
    root = sub(
        message,
        m("RootFolder"),
        IndexedPagingOffset=str(offset + len(page)),
        TotalItemsInView=str(len(stored)),
        IncludesLastItemInRange="true" if last else "false",
    )
    items = sub(root, t("Items"))
    names = requested_properties(request.element)
    for item in page:
        items.append(_listed(ref, names, item))
    return message


def _listed(ref: FolderRef, names: frozenset[str] | None, item: CalendarItem) -> etree._Element:
    if names == ONLY_THE_ID:
        return id_only(item.item_id, item.change_key)
    return shaped(render_item(ref.calendar, item, organizer_address=False), names)


def _moment(value: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        raise SoapFault("ErrorSchemaValidation", f"{value!r} is not an xs:dateTime") from None
    if moment.tzinfo is None:
        raise SoapFault("ErrorSchemaValidation", f"{value!r} has no time zone")
    return moment


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise SoapFault("ErrorSchemaValidation", f"{value!r} is not a non-negative integer")
    return int(value)
