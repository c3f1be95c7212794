"""A self-test notification: what `pushsync doctor` posts to the public URL, as Exchange would.

One SendNotification with a single StatusEvent (the keep-alive Exchange sends every
StatusFrequency minutes) for a subscription id made up for the test, in the shape of
https://learn.microsoft.com/exchange/client-developer/web-service-reference/sendnotification
and the answer read back: OK or Unsubscribe
(https://learn.microsoft.com/exchange/client-developer/web-service-reference/sendnotificationresult).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from pushsync.errors import MalformedNotification
from pushsync.ews.namespaces import MESSAGES, SEND_NOTIFICATION_ACTION, SOAP, TYPES, m
from pushsync.ews.send_notification_result import SubscriptionStatus
from pushsync.ews.xml import parse_document

HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SEND_NOTIFICATION_ACTION}"'}


def self_test_notification(subscription_id: str, watermark: str = "cHVzaHN5bmMtZG9jdG9y") -> bytes:
    """A well-formed SendNotification holding one StatusEvent for `subscription_id`."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'
        f'<SendNotification xmlns="{MESSAGES}" xmlns:t="{TYPES}"><ResponseMessages>'
        '<SendNotificationResponseMessage ResponseClass="Success">'
        "<ResponseCode>NoError</ResponseCode><Notification>"
        f"<t:SubscriptionId>{escape(subscription_id)}</t:SubscriptionId>"
        f"<t:PreviousWatermark>{escape(watermark)}</t:PreviousWatermark>"
        f"<t:StatusEvent><t:Watermark>{escape(watermark)}</t:Watermark></t:StatusEvent>"
        "</Notification></SendNotificationResponseMessage></ResponseMessages>"
        "</SendNotification></soap:Body></soap:Envelope>"
    ).encode()


def answered_status(body: bytes) -> SubscriptionStatus | None:
    """The SubscriptionStatus of a SendNotificationResult; None if the body is not one."""
    try:
        root = parse_document(body)
    except MalformedNotification:
        return None
    found = root.find(f".//{m('SubscriptionStatus')}")
    text = (found.text or "").strip() if found is not None else ""
    return next((status for status in SubscriptionStatus if status.value == text), None)
