"""POST /Webservices/SyncNotification.svc: check, parse, append in one commit, answer.

The handler does the minimum (STYLE.md 3). It answers OK only after the inbox has committed the
rows; a storage failure is a 503, which Exchange treats as a failed delivery and retries.
"""

from __future__ import annotations

from pushsync.errors import RejectedRequest
from pushsync.ews.namespaces import SEND_NOTIFICATION_ACTION
from pushsync.ews.send_notification import parse_send_notification
from pushsync.ews.send_notification_result import ANSWERS, SubscriptionStatus
from pushsync.inbox import Inbox, Verdict
from pushsync.web.asgi import Receive, Send, respond
from pushsync.web.request import Request, read_body

_XML = b"text/xml; charset=utf-8"


class EwsEndpoint:
    def __init__(self, inbox: Inbox, *, max_body_bytes: int) -> None:
        self._inbox = inbox
        self._max_body_bytes = max_body_bytes

    async def __call__(self, request: Request, receive: Receive, send: Send) -> None:
        check_packet(request)
        body = await read_body(request, receive, self._max_body_bytes)
        rows = parse_send_notification(body, remote_addr=request.remote_addr)
        verdict = await self._inbox.append(rows, request.received_at)
        status = (
            SubscriptionStatus.OK if verdict is Verdict.STORED else SubscriptionStatus.UNSUBSCRIBE
        )
        await respond(send, 200, ANSWERS[status], _XML)


def check_packet(request: Request) -> None:
    """The packet-inspection rules of the product page, before the body is read."""
    if request.method != "POST":
        raise RejectedRequest(f"method {request.method} not allowed", status=405, reason="method")
    action = (request.header(b"soapaction") or "").strip().strip('"')
    if action != SEND_NOTIFICATION_ACTION:
        raise RejectedRequest(
            f"SOAPAction {action!r} is not SendNotification", status=400, reason="soap_action"
        )
    content_type = (request.header(b"content-type") or "").split(";", 1)[0].strip().lower()
    if content_type not in ("text/xml", "application/soap+xml", "application/xml"):
        raise RejectedRequest(
            f"content type {content_type!r} is not XML", status=415, reason="content_type"
        )
