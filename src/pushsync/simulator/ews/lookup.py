"""Finding the item an id names: ItemId, OccurrenceItemId or RecurringMasterItemId.

An occurrence id names one slot of a series; RecurringMasterItemId turns an occurrence id into
its master, OccurrenceItemId a master id plus a 1-based InstanceIndex into one occurrence.
An id that moved away (a delete is a move with a new id) is ErrorItemNotFound.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/itemids
https://learn.microsoft.com/exchange/client-developer/web-service-reference/recurringmasteritemid
https://learn.microsoft.com/exchange/client-developer/web-service-reference/occurrenceitemid
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from pushsync.ews.namespaces import t
from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.ews.mailbox import OperationError, acting_mailbox
from pushsync.simulator.ews.soap import EwsRequest
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.items import CalendarItem

NOT_FOUND = "The specified object was not found in the store."


@dataclass(frozen=True, slots=True)
class Found:
    calendar: RoomCalendar
    item: CalendarItem
    original_start: datetime | None  # set when the id names one occurrence


def find(exchange: Exchange, request: EwsRequest, element: etree._Element) -> Found:
    calendars = _searched(exchange, request)
    if element.tag == t("ItemId"):
        return _by_id(calendars, element.get("Id", ""))
    if element.tag == t("RecurringMasterItemId"):
        found = _by_id(calendars, element.get("OccurrenceId", ""))
        if found.original_start is None:
            raise OperationError("ErrorItemNotFound", "The id is not an occurrence id.")
        return Found(found.calendar, found.item, None)
    if element.tag == t("OccurrenceItemId"):
        return _by_index(calendars, element)
    raise OperationError("ErrorInvalidIdMalformed", "Id is malformed.")


def _searched(exchange: Exchange, request: EwsRequest) -> list[RoomCalendar]:
    """The impersonated mailbox only; without impersonation, any (FullAccess delegate)."""
    acting = acting_mailbox(exchange, request)
    return [acting] if acting is not None else list(exchange.calendars.values())


def _by_id(calendars: list[RoomCalendar], item_id: str) -> Found:
    _check_shape(item_id)
    for calendar in calendars:
        item = calendar.item(item_id)
        if item is not None:
            return Found(calendar, item, None)
        occurrence = calendar.occurrence(item_id)
        if occurrence is not None:
            master, original_start = occurrence
            if original_start in master.deleted:
                break
            return Found(calendar, master, original_start)
    raise OperationError("ErrorItemNotFound", NOT_FOUND)


def _by_index(calendars: list[RoomCalendar], element: etree._Element) -> Found:
    master = _by_id(calendars, element.get("RecurringMasterId", ""))
    index = element.get("InstanceIndex", "")
    if master.item.recurrence is None or not index.isdigit() or int(index) < 1:
        raise OperationError("ErrorInvalidIdMalformed", "Not an occurrence of a series.")
    slots = master.item.original_starts()
    if int(index) > len(slots):
        raise OperationError(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange", "No such occurrence."
        )
    original_start = slots[int(index) - 1]
    if original_start in master.item.deleted:
        raise OperationError(
            "ErrorCalendarOccurrenceIsDeletedFromRecurrence", "The occurrence was deleted."
        )
    return Found(master.calendar, master.item, original_start)


def _check_shape(item_id: str) -> None:
    try:
        raw = base64.b64decode(item_id, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) < 20:
        raise OperationError("ErrorInvalidIdMalformed", "Id is malformed.")
