"""POST /graph/notifications: Graph's validation handshake, change and lifecycle notifications.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
https://learn.microsoft.com/graph/change-notifications-lifecycle-events

The handler does the minimum (docs/architecture.md, "Rules of the house"): answer the handshake,
or check, parse, append the genuine items in one commit, and answer 202 only after it. A storage
failure is a 503 (Graph retries a 5xx for up to four hours). A POST with no genuine item at all
is a 403 and writes nothing; forged items beside genuine ones are dropped and logged. The same
path serves as the notification URL and the lifecycle notification URL.
"""

from __future__ import annotations

import logging

from pushsync.errors import Forbidden, MethodNotAllowed, UnsupportedMediaType
from pushsync.graph.change_notification import ClientStateCheck, parse_change_notifications
from pushsync.graph.validation import validation_token
from pushsync.store.inbox import Inbox
from pushsync.web.asgi import Receive, Send, respond
from pushsync.web.metrics import count_answered, count_rejection
from pushsync.web.request import Request, read_body

log = logging.getLogger("pushsync.receiver")

_PLAIN = b"text/plain; charset=utf-8"
# The token goes back as inert text: no sniffing it into HTML, no script, no framing.
_HANDSHAKE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
    (b"connection", b"close"),  # the handshake's body (normally empty) is never read
]


class GraphEndpoint:
    def __init__(self, inbox: Inbox, check: ClientStateCheck, *, max_body_bytes: int) -> None:
        self._inbox = inbox
        self._check = check
        self._max_body_bytes = max_body_bytes

    async def __call__(self, request: Request, receive: Receive, send: Send) -> None:
        if request.method != "POST":
            raise MethodNotAllowed(f"method {request.method} not allowed")
        token = validation_token(request.query)
        if token is not None:
            await respond(send, 200, token.encode(), _PLAIN, _HANDSHAKE_HEADERS)
            return
        check_json(request)
        body = await read_body(request, receive, self._max_body_bytes)
        batch = parse_change_notifications(body, self._check, remote_addr=request.remote_addr)
        if batch.forged:
            log.warning(
                "forged Graph notifications dropped",
                extra={"remote_addr": request.remote_addr, "forged": batch.forged},
            )
        if not batch.rows:
            raise Forbidden("clientState does not match", reason="client_state")
        if batch.forged:
            count_rejection("client_state")
        await self._inbox.append(batch.rows, request.received_at)
        count_answered()
        await respond(send, 202, b"", _PLAIN)


def check_json(request: Request) -> None:
    content_type = (request.header(b"content-type") or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType(f"content type {content_type[:100]!r} is not JSON")
    encoding = (request.header(b"content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(
            f"content encoding {encoding[:50]!r} refused", reason="content_encoding"
        )
