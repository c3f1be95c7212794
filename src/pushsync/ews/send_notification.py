"""Read a SendNotification request that Exchange POSTs to the listener.

Implements the request side of the push notification operation:
https://learn.microsoft.com/exchange/client-developer/web-service-reference/sendnotification
(schema: messages.xsd SendNotificationResponseType, types.xsd NotificationType; MS-OXWSPSNTIF).

Every event becomes one `Notification` row. An error notification (ResponseClass Error or
Warning without a Notification element) becomes one row with event_type "Error" and the
subscription id taken from MessageXml.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from lxml import etree

from pushsync.errors import MalformedNotification
from pushsync.ews.namespaces import m, soap, t
from pushsync.ews.xml import parse_document
from pushsync.ews.xsd import bounded, read_boolean, read_datetime, read_int, text_of
from pushsync.model.notification import Notification

# Event element (local name) -> event_type column. StatusEvent is the keep-alive.
EVENT_TYPES: dict[str, str] = {
    t(name + "Event"): name
    for name in (
        "Status",
        "Created",
        "Deleted",
        "Modified",
        "Moved",
        "Copied",
        "NewMail",
        "FreeBusyChanged",
    )
}

_ENVELOPE = soap("Envelope")
_BODY = soap("Body")
_SEND_NOTIFICATION = m("SendNotification")
_RESPONSE_MESSAGES = m("ResponseMessages")
_RESPONSE_MESSAGE = m("SendNotificationResponseMessage")
_NOTIFICATION = m("Notification")
_RESPONSE_CODE = m("ResponseCode")
_MESSAGE_XML = m("MessageXml")
_VALUE = t("Value")
_SUBSCRIPTION_ID = t("SubscriptionId")
_PREVIOUS_WATERMARK = t("PreviousWatermark")
_MORE_EVENTS = t("MoreEvents")
_WATERMARK = t("Watermark")
_TIMESTAMP = t("TimeStamp")
_UNREAD_COUNT = t("UnreadCount")

# Rows are built positionally, from a list in the column order of `Notification`: keyword
# construction of the 20-field named tuple costs several times more, once per event.
_COLUMN = {name: index for index, name in enumerate(Notification._fields)}
_EVENT_TYPE = _COLUMN["event_type"]
_WATERMARK_COLUMN = _COLUMN["watermark"]
_EVENT_TIME = _COLUMN["event_time"]
_UNREAD_COUNT_COLUMN = _COLUMN["unread_count"]
_SUBSCRIPTION_ID_COLUMN = _COLUMN["subscription_id"]
_PREVIOUS_WATERMARK_COLUMN = _COLUMN["previous_watermark"]
_MORE_EVENTS_COLUMN = _COLUMN["more_events"]
_REMOTE_ADDR_COLUMN = _COLUMN["remote_addr"]
# An EWS row with every column at its default; each event's row starts from a copy.
_BLANK_ROW: list[Any] = list(Notification(protocol="ews", subscription_id="", event_type=""))

# Id elements of an event: element -> (id column, change key column or None), as positions.
_ID_COLUMNS: dict[str, tuple[int, int | None]] = {
    t("ItemId"): (_COLUMN["item_id"], _COLUMN["item_change_key"]),
    t("FolderId"): (_COLUMN["folder_id"], _COLUMN["folder_change_key"]),
    t("ParentFolderId"): (_COLUMN["parent_folder_id"], _COLUMN["parent_folder_change_key"]),
    t("OldItemId"): (_COLUMN["old_item_id"], None),
    t("OldFolderId"): (_COLUMN["old_folder_id"], None),
    t("OldParentFolderId"): (_COLUMN["old_parent_folder_id"], None),
}


def parse_send_notification(body: bytes, *, remote_addr: str | None = None) -> list[Notification]:
    """Parse a SendNotification envelope into rows, or raise MalformedNotification."""
    root = parse_document(body)
    if root.tag != _ENVELOPE:
        raise MalformedNotification(f"root element is {root.tag}, not a SOAP 1.1 Envelope")
    messages = _child(_find_send_notification(root), _RESPONSE_MESSAGES)
    if messages is None:
        raise MalformedNotification("SendNotification has no ResponseMessages")
    rows: list[Notification] = []
    for message in messages:
        if message.tag == _RESPONSE_MESSAGE:
            rows.extend(_parse_message(message, remote_addr))
    if not rows:
        raise MalformedNotification("SendNotification holds no response message")
    return rows


# The walk below visits each element once, comparing tags itself: lxml's find() runs its
# ElementPath machinery on every call and cost more than the rest of the walk (measured in
# bench/ingest, docs/benchmarks.md); this function is the receiver's hot path.


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    for child in parent:
        if child.tag == tag:
            return child
    return None


def _find_send_notification(root: etree._Element) -> etree._Element:
    body = _child(root, _BODY)
    if body is None:
        raise MalformedNotification("SOAP envelope has no Body")
    send = _child(body, _SEND_NOTIFICATION)
    if send is None:
        raise MalformedNotification("SOAP Body holds no SendNotification in the EWS namespace")
    return send


def _parse_message(message: etree._Element, remote_addr: str | None) -> list[Notification]:
    response_code = notification = None
    for child in message:
        tag = child.tag
        if tag == _NOTIFICATION:
            if notification is not None:
                raise MalformedNotification("a response message with two Notifications")
            notification = child
        elif tag == _RESPONSE_CODE:
            if response_code is not None:
                raise MalformedNotification("a response message with two ResponseCodes")
            response_code = text_of(child, "ResponseCode") or ""
    if notification is None:
        if message.get("ResponseClass") not in ("Error", "Warning"):
            raise MalformedNotification("a Success response message without a Notification")
        return [_error_row(message, response_code, remote_addr)]
    return _parse_notification(notification, remote_addr)


def _parse_notification(
    notification: etree._Element, remote_addr: str | None
) -> list[Notification]:
    shared = _BLANK_ROW.copy()  # what the Notification element gives every event
    seen: set[str] = set()
    events: list[tuple[etree._Element, str]] = []
    for child in notification:
        tag = child.tag
        if (event_type := EVENT_TYPES.get(tag)) is not None:
            events.append((child, event_type))
            continue
        if tag == _SUBSCRIPTION_ID:
            shared[_SUBSCRIPTION_ID_COLUMN] = text_of(child, "SubscriptionId")
        elif tag == _PREVIOUS_WATERMARK:
            shared[_PREVIOUS_WATERMARK_COLUMN] = text_of(child, "PreviousWatermark")
        elif tag == _MORE_EVENTS:
            shared[_MORE_EVENTS_COLUMN] = read_boolean(text_of(child, "MoreEvents"), "MoreEvents")
        else:
            continue
        _once(seen, tag, child)
    if not shared[_SUBSCRIPTION_ID_COLUMN]:
        raise MalformedNotification("missing SubscriptionId")
    if not events:
        raise MalformedNotification("Notification holds no event")
    shared[_REMOTE_ADDR_COLUMN] = remote_addr
    return [_event_row(event, event_type, shared) for event, event_type in events]


def _error_row(
    message: etree._Element, response_code: str | None, remote_addr: str | None
) -> Notification:
    subscription_id = None
    message_xml = _child(message, _MESSAGE_XML)
    if message_xml is not None:
        for value in message_xml.iterchildren(_VALUE):
            if value.get("Name") == "SubscriptionId":
                if subscription_id is not None:
                    raise MalformedNotification("MessageXml names two SubscriptionIds")
                subscription_id = text_of(value, "SubscriptionId") or ""
    if not subscription_id:
        raise MalformedNotification("error notification without a SubscriptionId in MessageXml")
    return Notification(
        protocol="ews",
        subscription_id=subscription_id,
        event_type="Error",
        response_code=response_code or "ErrorUnknown",
        remote_addr=remote_addr,
    )


def _event_row(event: etree._Element, event_type: str, shared: list[Any]) -> Notification:
    """One event's row: `shared` holds the columns the Notification element gives every event.

    Each stored element may appear once (the schema's maxOccurs; of two, neither is "as
    sent"). A column already set means its element came before: ids, times and counts are
    never None once read, and the watermark, which may be empty, has its own flag."""
    values = shared.copy()
    values[_EVENT_TYPE] = event_type
    watermark_read = False
    for child in event:
        if child.tag == _WATERMARK:
            if watermark_read:
                raise _twice(child)
            watermark_read = True
            values[_WATERMARK_COLUMN] = text_of(child, "Watermark")
        else:
            _read_event_child(child, values)
    if values[_EVENT_TIME] is None and event_type != "Status":
        raise MalformedNotification(f"{event_type}Event without a TimeStamp")
    return Notification._make(values)


def _read_event_child(child: etree._Element, values: list[Any]) -> None:
    """An event's id, TimeStamp or UnreadCount into its column; other children are not stored."""
    tag = child.tag
    if (columns := _ID_COLUMNS.get(tag)) is not None:
        id_column, key_column = columns
        _set_once(values, id_column, child, _id(child))
        if key_column is not None and (key := child.get("ChangeKey")) is not None:
            values[key_column] = bounded(key, "ChangeKey")
    elif tag == _TIMESTAMP:
        _set_once(values, _EVENT_TIME, child, _read_timestamp(text_of(child, "TimeStamp")))
    elif tag == _UNREAD_COUNT:
        count = read_int(text_of(child, "UnreadCount"), "UnreadCount")
        _set_once(values, _UNREAD_COUNT_COLUMN, child, count)


def _set_once(values: list[Any], column: int, child: etree._Element, value: Any) -> None:
    if values[column] is not None:
        raise _twice(child)
    values[column] = value


def _once(seen: set[str], tag: str, element: etree._Element) -> None:
    """Each stored element at most once (the schema's maxOccurs): of two, neither is "as sent"."""
    if tag in seen:
        raise _twice(element)
    seen.add(tag)


def _twice(element: etree._Element) -> MalformedNotification:
    return MalformedNotification(f"{etree.QName(element).localname} appears twice")


def _id(element: etree._Element) -> str:
    """The Id attribute exactly as sent (attributes carry no layout whitespace)."""
    value = element.get("Id")
    if not value:
        raise MalformedNotification(f"{etree.QName(element).localname} without Id")
    return bounded(value, "Id")


# Exchange stamps events in whole seconds, so a busy second brings the same text many times: it
# is read once. Equal texts then share one datetime, whose hash is kept in it for the inbox's
# own memo of its UTC text (pushsync.store.inbox). A text that fails raises again; none is kept.
@functools.lru_cache(maxsize=4096)
def _read_timestamp(text: str | None) -> datetime:
    return read_datetime(text, "TimeStamp")
