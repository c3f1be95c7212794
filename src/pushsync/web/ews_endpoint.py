"""POST /Webservices/SyncNotification.svc: check, parse, append in one commit, answer.

The handler does the minimum (docs/architecture.md, "Rules of the house"). It answers OK only
after the inbox has committed the rows; a storage failure is a 503, which Exchange treats as a
failed delivery and retries. Every check that needs no body runs before the body is read,
cheapest first.
"""

from __future__ import annotations

from pushsync.errors import MethodNotAllowed, RejectedRequest, UnsupportedMediaType
from pushsync.ews.namespaces import SEND_NOTIFICATION_ACTION
from pushsync.ews.send_notification import parse_send_notification
from pushsync.ews.send_notification_result import ANSWERS, SubscriptionStatus
from pushsync.store.inbox import Inbox, Verdict
from pushsync.web.access.callback_token import CallbackToken
from pushsync.web.asgi import Receive, Send, send_response
from pushsync.web.metrics import count_answered
from pushsync.web.request import Request, read_body

_XML = b"text/xml; charset=utf-8"
_XML_TYPES = frozenset({"text/xml", "application/soap+xml", "application/xml"})
# The answers never vary, nor their headers (what `respond` would build for each request).
_HEADERS = {
    status: ((b"content-type", _XML), (b"content-length", b"%d" % len(answer)))
    for status, answer in ANSWERS.items()
}


class EwsEndpoint:
    def __init__(self, inbox: Inbox, token: CallbackToken, *, max_body_bytes: int) -> None:
        self._inbox = inbox
        self._token = token
        self._max_body_bytes = max_body_bytes

    async def __call__(self, request: Request, receive: Receive, send: Send) -> None:
        if request.method != "POST":
            raise MethodNotAllowed(f"method {request.method} not allowed")
        self._token.check(request.query)
        check_packet(request)
        body = await read_body(request, receive, self._max_body_bytes)
        rows = parse_send_notification(body, remote_addr=request.remote_addr)
        verdict = await self._inbox.append(rows, request.received_at)
        status = (
            SubscriptionStatus.OK if verdict is Verdict.STORED else SubscriptionStatus.UNSUBSCRIBE
        )
        count_answered()
        await send_response(send, 200, _HEADERS[status], ANSWERS[status])


def check_packet(request: Request) -> None:
    """The packet-inspection rules of the product page that need no body."""
    action = (request.header(b"soapaction") or "").strip().strip('"')
    if action != SEND_NOTIFICATION_ACTION:
        raise RejectedRequest(
            f"SOAPAction {action[:200]!r} is not SendNotification", status=400, reason="soap_action"
        )
    content_type = (request.header(b"content-type") or "").split(";", 1)[0].strip().lower()
    if content_type not in _XML_TYPES:
        raise UnsupportedMediaType(f"content type {content_type[:100]!r} is not XML")
    # Exchange never compresses what it posts; a compressed body could expand far past the
    # size limit, so it is refused rather than inflated.
    encoding = (request.header(b"content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(
            f"content encoding {encoding[:50]!r} refused", reason="content_encoding"
        )
