"""The SendNotification request Exchange POSTs to a push subscription's URL, and its answer.

https://learn.microsoft.com/exchange/client-developer/web-service-reference/sendnotification
https://learn.microsoft.com/exchange/client-developer/web-service-reference/notification-ex15websvcsotherref
https://learn.microsoft.com/exchange/client-developer/web-service-reference/sendnotificationresult
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from pushsync.errors import MalformedNotification
from pushsync.ews.namespaces import MESSAGES, SOAP, TYPES, m, soap, t
from pushsync.ews.xml import parse_document
from pushsync.simulator.events import MailboxEvent
from pushsync.simulator.ews.soap import sub

SOAP_ACTION = f'"{MESSAGES}/SendNotification"'
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}


def xs_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def events_body(
    subscription_id: str,
    previous_watermark: str,
    more_events: bool,
    events: list[tuple[str, MailboxEvent | None]],
    version: str,
) -> bytes:
    """A Success notification; each event is (its watermark, the event or None for a status)."""
    root, notification = _message("Success", version)
    sub(notification, t("SubscriptionId"), subscription_id)
    sub(notification, t("PreviousWatermark"), previous_watermark)
    sub(notification, t("MoreEvents"), "true" if more_events else "false")
    for watermark, event in events:
        _event(notification, watermark, event)
    return _document(root)


def error_body(subscription_id: str, code: str, text: str, version: str) -> bytes:
    """An error notification: no Notification element, the id only in MessageXml."""
    root, message = _message("Error", version, notification=False)
    sub(message, m("MessageText"), text)
    sub(message, m("ResponseCode"), code)
    sub(message, m("DescriptiveLinkKey"), "0")
    xml = sub(message, m("MessageXml"))
    sub(xml, t("Value"), subscription_id, Name="SubscriptionId")
    return _document(root)


def subscription_status(body: bytes) -> str | None:
    """OK or Unsubscribe from the listener's SendNotificationResult, None if unreadable."""
    try:
        root = parse_document(body)
    except MalformedNotification:
        return None
    status = root.findtext(
        f"{soap('Body')}/{m('SendNotificationResult')}/{m('SubscriptionStatus')}"
    )
    status = (status or "").strip()
    return status if status in ("OK", "Unsubscribe") else None


def _message(
    response_class: str, version: str, *, notification: bool = True
) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(soap("Envelope"), nsmap={"soap11": SOAP, "m": MESSAGES, "t": TYPES})
    header = sub(root, soap("Header"))
    sub(header, t("RequestServerVersion"), Version=version)
    body = sub(root, soap("Body"))
    send = sub(body, m("SendNotification"))
    messages = sub(send, m("ResponseMessages"))
    message = sub(messages, m("SendNotificationResponseMessage"), ResponseClass=response_class)
    if not notification:
        return root, message
    sub(message, m("ResponseCode"), "NoError")
    return root, sub(message, m("Notification"))


def _event(parent: etree._Element, watermark: str, event: MailboxEvent | None) -> None:
    if event is None:
        status = sub(parent, t("StatusEvent"))
        sub(status, t("Watermark"), watermark)
        return
    element = sub(parent, t(event.kind + "Event"))
    sub(element, t("Watermark"), watermark)
    sub(element, t("TimeStamp"), xs_datetime(event.timestamp))
    if event.item_id is not None:
        _id(element, "ItemId", event.item_id, event.change_key)
    else:
        _id(element, "FolderId", event.folder_id or "", "AQAAABYAAAA=")
    _id(element, "ParentFolderId", event.parent_folder_id, "AQAAAA==")
    if event.old_item_id is not None:
        sub(element, t("OldItemId"), Id=event.old_item_id)
    if event.old_parent_folder_id is not None:
        sub(element, t("OldParentFolderId"), Id=event.old_parent_folder_id)
    if event.kind == "Modified" and event.item_id is None:
        sub(element, t("UnreadCount"), "0")


def _id(parent: etree._Element, tag: str, value: str, change_key: str | None) -> None:
    element = sub(parent, t(tag), Id=value)
    if change_key:
        element.set("ChangeKey", change_key)


def _document(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root.getroottree(), xml_declaration=True, encoding="utf-8"))
