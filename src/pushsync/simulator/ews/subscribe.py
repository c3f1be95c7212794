"""Subscribe with a PushSubscriptionRequest: one room's calendar, by impersonation.

Delegate access is refused with ErrorSubscriptionDelegateAccessNotSupported; a watermark the
mailbox no longer holds gives ErrorInvalidWatermark; more than EWSMaxSubscriptions active
subscriptions on one mailbox give ErrorExceededSubscriptionCount.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/subscribe-operation
https://learn.microsoft.com/exchange/client-developer/web-service-reference/pushsubscriptionrequest
"""

from __future__ import annotations

from urllib.parse import urlsplit

from lxml import etree

from pushsync.ews.namespaces import m, t
from pushsync.simulator import ids
from pushsync.simulator.ews import soap
from pushsync.simulator.ews.mailbox import OperationError, acting_mailbox, resolve_folder
from pushsync.simulator.ews.soap import EwsRequest, SoapFault, sub
from pushsync.simulator.exchange import Exchange

EVENT_TYPES = frozenset(
    {"Copied", "Created", "Deleted", "Modified", "Moved", "NewMail", "FreeBusyChanged"}
)


def handle(exchange: Exchange, request: EwsRequest) -> bytes:
    push = request.element.find(m("PushSubscriptionRequest"))
    if push is None:
        raise SoapFault("ErrorInvalidSubscriptionRequest", "Only push subscriptions are served.")
    try:
        message = _subscribe(exchange, request, push)
    except OperationError as error:
        message = soap.error_message("Subscribe", error.code, error.text)
    return soap.response("Subscribe", request.version, [message])


def _subscribe(exchange: Exchange, request: EwsRequest, push: etree._Element) -> etree._Element:
    assert exchange.push is not None
    acting = acting_mailbox(exchange, request)
    all_folders = push.get("SubscribeToAllFolders") in ("true", "1")
    container = push.find(t("FolderIds"))
    folder_elements = list(container) if container is not None else []
    if not all_folders and len(folder_elements) != 1:
        raise OperationError("ErrorInvalidSubscriptionRequest", "Subscribe to one folder.")
    ref = resolve_folder(exchange, request, folder_elements[0]) if folder_elements else None
    if (ref is not None and ref.delegate) or acting is None:
        raise OperationError(
            "ErrorSubscriptionDelegateAccessNotSupported",
            "Subscriptions are not supported for delegate user access.",
        )
    calendar = acting
    if len(exchange.push.active(calendar.mailbox)) >= exchange.config.max_subscriptions_per_mailbox:
        raise OperationError(
            "ErrorExceededSubscriptionCount", "The maximum number of subscriptions was reached."
        )
    subscription = exchange.push.subscribe(
        calendar,
        folder_id=None if all_folders or ref is None else ref.folder_id,
        url=_url(push),
        event_types=_event_types(push),
        status_frequency=_status_frequency(push),
        version=request.version,
        after=_start(exchange, calendar.mailbox, push),
    )
    message = soap.message("Subscribe")
    sub(message, m("SubscriptionId"), subscription.id)
    sub(message, m("Watermark"), subscription.delivered)
    return message


def _url(push: etree._Element) -> str:
    url = (push.findtext(t("URL")) or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OperationError("ErrorInvalidPushSubscriptionUrl", "The URL is not valid.")
    return url


def _event_types(push: etree._Element) -> frozenset[str]:
    container = push.find(t("EventTypes"))
    names = [(e.text or "").strip() for e in (container if container is not None else [])]
    types = frozenset(name.removesuffix("Event") for name in names)
    if not types or not types <= EVENT_TYPES:
        raise SoapFault("ErrorSchemaValidation", f"Invalid EventTypes {sorted(names)}.")
    return types


def _status_frequency(push: etree._Element) -> int:
    text = (push.findtext(t("StatusFrequency")) or "30").strip()
    if not text.isdigit() or not 1 <= int(text) <= 1440:
        raise SoapFault("ErrorSchemaValidation", "StatusFrequency must lie in 1..1440.")
    return int(text)


def _start(exchange: Exchange, mailbox: str, push: etree._Element) -> int:
    """The event counter to deliver after: the given watermark's, or now."""
    calendar = exchange.calendar(mailbox)
    assert calendar is not None
    text = push.findtext(m("Watermark")) or push.findtext(t("Watermark"))
    if not text:
        return calendar.log.sequence
    parsed = ids.parse_watermark(text.strip())
    now = exchange.clock.now()
    if (
        parsed is None
        or parsed[0] != ids.mailbox_guid(mailbox)
        or not calendar.log.holds(parsed[1], now)
    ):
        raise OperationError("ErrorInvalidWatermark", "The watermark is not valid.")
    return parsed[1]
