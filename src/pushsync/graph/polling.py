"""Which refusals of a Graph subscription leave a room to be polled instead.

https://learn.microsoft.com/exchange/troubleshoot/user-and-shared-mailboxes/rest-api-is-not-yet-supported-for-this-mailbox-error
https://learn.microsoft.com/powershell/module/exchange/new-applicationaccesspolicy
https://learn.microsoft.com/graph/outlook-change-notifications-overview

A mailbox still on premises in a hybrid tenant answers 404 MailboxNotEnabledForRESTAPI (or
MailboxNotSupportedForRESTAPI), "REST API is not yet supported for this mailbox"; an
application access policy that leaves the room out answers 403 ErrorAccessDenied; a mailbox
holding 1,000 subscriptions answers 429 SubscriptionCountReached (docs/protocol.md §5a). None of
these passes by itself, yet the room's calendar may still be readable: the worker reads it
every few minutes (`graph_polling_minutes`) while the manager keeps trying to subscribe it.
"""

from __future__ import annotations

from pushsync.errors import AuthenticationFailed, ExchangeError, Throttled
from pushsync.graph.client import SUBSCRIPTION_CAP, NotFound

ON_PREMISES = "on-premises mailbox"
ACCESS_DENIED = "access denied"
CAPPED = "subscription cap"
REASONS = (ON_PREMISES, ACCESS_DENIED, CAPPED)
_ON_PREMISES_CODES = ("mailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi")


def reason(exc: ExchangeError) -> str | None:
    """Why Graph will not subscribe this room, if it is a refusal the room is polled for."""
    detail = str(exc).lower()
    if isinstance(exc, NotFound) and any(code in detail for code in _ON_PREMISES_CODES):
        return ON_PREMISES
    if isinstance(exc, AuthenticationFailed) and "erroraccessdenied" in detail:
        return ACCESS_DENIED
    if isinstance(exc, Throttled) and exc.code == SUBSCRIPTION_CAP:
        return CAPPED
    return None
