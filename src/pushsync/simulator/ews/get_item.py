"""GetItem for calendar items: singles, masters and occurrences, with what a sync needs.

One response message per requested id, in order; a missing id is ErrorItemNotFound in its own
message while the others succeed.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/getitem-operation-calendar-item
"""

from __future__ import annotations

from pushsync.ews.namespaces import m
from pushsync.simulator.ews import soap
from pushsync.simulator.ews.calendar_item import render_item, requested_properties, shaped
from pushsync.simulator.ews.lookup import find
from pushsync.simulator.ews.mailbox import OperationError
from pushsync.simulator.ews.soap import EwsRequest, sub
from pushsync.simulator.exchange import Exchange


def handle(exchange: Exchange, request: EwsRequest) -> bytes:
    container = request.element.find(m("ItemIds"))
    names = requested_properties(request.element)
    messages = []
    for element in container if container is not None else []:
        try:
            found = find(exchange, request, element)
        except OperationError as error:
            message = soap.error_message("GetItem", error.code, error.text)
            sub(message, m("Items"))
            messages.append(message)
            continue
        message = soap.message("GetItem")
        items = sub(message, m("Items"))
        items.append(shaped(render_item(found.calendar, found.item, found.original_start), names))
        messages.append(message)
    return soap.response("GetItem", request.version, messages)
