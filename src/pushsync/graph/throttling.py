"""What a Graph 429 was answered for, and how a room's problem says it.

https://learn.microsoft.com/graph/throttling
https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
https://learn.microsoft.com/graph/api/subscription-list

Outlook's limits (10,000 requests per 10 minutes, 4 in flight, upload bytes) are per app and
mailbox, and their 429 says so: "Application is over its MailboxConcurrency limit." (also
RequestRate, IncomingBytes). The per-mailbox cap of 1,000 subscriptions, all apps together,
answers 429 with "Resource 'SubscriptionCountReached' has reached limit of '1000'" and a
Retry-After in the year 9999. Any other 429 on a subscription write is taken for Graph's
subscription write limit, which is per app and tenant (500 writes per 20 s).
"""

from __future__ import annotations

from datetime import datetime

from pushsync.errors import Throttled
from pushsync.graph.client import SUBSCRIPTION_CAP
from pushsync.retry import APP

# Outlook's per-mailbox limits name themselves so ("Application is over its … limit.").
_MAILBOX_WORDING = ("application is over its", "mailbox")
DAY = 86400.0


def scope(mailbox: str | None, exc: Throttled, bound: float) -> str | None:
    """The back-off key the 429 holds for: the mailbox, or `APP` for the whole app; None when
    it holds for nothing we could name (a far Retry-After on a call about no mailbox).

    A Retry-After beyond `bound` never belongs to the app: the subscription write limit counts
    over 20 seconds, so it does not ask for hours; such a 429 is the mailbox's own limit."""
    if exc.code == SUBSCRIPTION_CAP or exc.retry_after > bound:
        return mailbox
    if mailbox is None:
        return APP
    detail = str(exc).lower()
    return mailbox if any(words in detail for words in _MAILBOX_WORDING) else APP


def is_room_problem(exc: Throttled, bound: float) -> bool:
    """A limit an admin must lift (the cap, or a wait of days), not load that passes."""
    return exc.code == SUBSCRIPTION_CAP or exc.retry_after > bound


def problem(exc: Throttled, retry_at: datetime, bound: float) -> str:
    """The room's problem as an operator reads it: which limit, what to do, when we try again."""
    again = f"tried again at {retry_at:%Y-%m-%d %H:%M} UTC"
    if exc.code == SUBSCRIPTION_CAP:
        return (
            "Graph's cap of 1,000 subscriptions per mailbox is reached (SubscriptionCountReached;"
            " all apps together): an admin must delete subscriptions other apps hold on this"
            " room. List them with GET /subscriptions signed in as an admin with the delegated"
            " permission Subscription.Read.All (Graph Explorer, or Get-MgSubscription in"
            " Microsoft Graph PowerShell) and look for this room in `resource`; " + again
        )
    if exc.retry_after > bound:
        return (
            f"Graph asked to wait {_span(exc.retry_after)} before calling this mailbox again:"
            " a limit of the mailbox, not load; an admin must find which (the subscriptions"
            " on it: GET /subscriptions as an admin with Subscription.Read.All); "
            f"{again} ({exc})"
        )
    return f"throttled by Graph until {retry_at:%H:%M:%S} UTC ({exc})"


def _span(seconds: float) -> str:
    if seconds >= 365 * DAY:
        return f"{seconds / (365 * DAY):,.0f} years"
    if seconds >= DAY:
        return f"{seconds / DAY:,.0f} days"
    return f"{seconds / 3600:,.1f} hours"
