"""The secret in the callback URL that authenticates each EWS notification.

Microsoft publishes no source list for Exchange Online's outgoing push (docs/protocol.md §6), so the
address filter alone cannot tell Exchange from anyone else in Azure. pushsync registers its
callback URL with a secret (`…/SyncNotification.svc?token=…`, one per installation); Exchange
posts to that URL unchanged, and the receiver compares the token in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

from pushsync.errors import Forbidden

PARAMETER = "token"
_PREFIX = PARAMETER.encode() + b"="


def new_token() -> str:
    """A fresh secret suitable for the URL as it is (URL-safe base64, 256 bits)."""
    return secrets.token_urlsafe(32)


def callback_url(base_url: str, token: str | None) -> str:
    """The URL to register with Exchange: `base_url` with `token=…` added to its query.

    An existing query (the product page's `?Default`) is kept; without a token (legacy
    mode) the URL is returned unchanged.
    """
    if not token:
        return base_url
    parts = urlsplit(base_url)
    pair = f"{PARAMETER}={quote(token, safe='')}"
    query = f"{parts.query}&{pair}" if parts.query else pair
    return urlunsplit(parts._replace(query=query))


class CallbackToken:
    """Checks the token of a request's query string against the accepted secrets.

    Several secrets may be accepted at once so a secret can be rotated: subscriptions made with
    the old one keep working until they are renewed with the new one (docs/deploying.md).
    """

    def __init__(self, accepted: Iterable[str], *, allow_missing: bool) -> None:
        self._accepted = tuple(secret.encode() for secret in accepted if secret)
        self._allow_missing = allow_missing

    def check(self, query: bytes) -> None:
        """Raise Forbidden unless the query carries an accepted token (or none, in legacy mode)."""
        if not self._accepted and self._allow_missing:
            return  # legacy only: other software's URLs may carry anything
        presented = _find(query)
        if presented is None:
            if self._allow_missing:
                return
            raise Forbidden("callback URL carries no token", reason="token_missing")
        # compare with every secret, whatever the outcome, so timing tells nothing
        matched = False
        for secret in self._accepted:
            matched |= hmac.compare_digest(presented, secret)
        if not matched:
            raise Forbidden("callback token does not match", reason="token_invalid")


def _find(query: bytes) -> bytes | None:
    if _PREFIX not in query:
        return None
    for pair in query.split(b"&"):
        if pair.startswith(_PREFIX):
            value = pair[len(_PREFIX) :]
            return unquote_to_bytes(value) if b"%" in value else value
    return None
