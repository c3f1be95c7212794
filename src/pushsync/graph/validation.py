"""The subscription validation handshake.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation

When a subscription is created, Graph POSTs to the notification URL with `?validationToken=…`
and expects, within 10 seconds, 200 with `text/plain` and the URL-decoded token as the body.
The token is opaque; it goes back as plain text only, never as HTML, so a token that looks like
markup cannot become script in anyone's browser.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from pushsync.errors import RejectedRequest

MAX_TOKEN_LENGTH = 1024


def validation_token(query_string: bytes) -> str | None:
    """The decoded validationToken of a request's query string, or None if there is none."""
    if b"validationToken" not in query_string:
        return None
    values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True).get("validationToken")
    if not values:
        return None
    if len(values) > 1 or not values[0] or len(values[0]) > MAX_TOKEN_LENGTH:
        raise RejectedRequest(
            "validationToken must appear once, 1 to 1024 characters",
            status=400,
            reason="validation_token",
        )
    return values[0]
