"""The answer to SendNotification: keep the subscription (OK) or end it (Unsubscribe).

https://learn.microsoft.com/exchange/client-developer/web-service-reference/sendnotificationresult
https://learn.microsoft.com/exchange/client-developer/web-service-reference/subscriptionstatus
"""

from __future__ import annotations

from enum import Enum

from pushsync.ews.namespaces import MESSAGES, SOAP


class SubscriptionStatus(Enum):
    OK = "OK"
    UNSUBSCRIBE = "Unsubscribe"


def _render(status: SubscriptionStatus) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body>'
        f'<m:SendNotificationResult xmlns:m="{MESSAGES}">'
        f"<m:SubscriptionStatus>{status.value}</m:SubscriptionStatus>"
        "</m:SendNotificationResult></s:Body></s:Envelope>"
    ).encode()


# Rendered once: the answers never vary.
ANSWERS: dict[SubscriptionStatus, bytes] = {
    status: _render(status) for status in SubscriptionStatus
}
