"""Graph's limits on subscriptions: what a 429 was answered for, how a room's problem says
it, and the pacing of subscription writes to the tenant's limit.

https://learn.microsoft.com/graph/throttling
https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
https://learn.microsoft.com/graph/throttling-limits#subscription-service-limits
https://learn.microsoft.com/graph/api/subscription-list

Outlook's limits (10,000 requests per 10 minutes, 4 in flight, upload bytes) are per app and
mailbox, and their 429 says so: "Application is over its MailboxConcurrency limit." (also
RequestRate, IncomingBytes). The per-mailbox cap of 1,000 subscriptions, all apps together,
answers 429 with "Resource 'SubscriptionCountReached' has reached limit of '1000'" and a
Retry-After in the year 9999. Any other 429 on a subscription write is taken for Graph's
subscription write limit, which is per app and tenant (500 writes per 20 s, docs/protocol.md
§5a): `WritePacer` keeps every write of every manager process within it, and a 429 for it
holds every process (`WritePacer.hold`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from pushsync.errors import StorageError, Throttled
from pushsync.graph.client import SUBSCRIPTION_CAP
from pushsync.retry import APP
from pushsync.store.write_budget import WriteBudget

log = logging.getLogger(__name__)

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
            "mailbox has 1,000 subscriptions, Graph's cap per mailbox for all apps together"
            " (SubscriptionCountReached); pushsync holds at most one, the others are other"
            " apps'. pushsync's own GET /subscriptions lists only its own: an admin finds the"
            " others with GET /subscriptions signed in with the delegated permission"
            " Subscription.Read.All (Graph Explorer, or Get-MgSubscription in Microsoft Graph"
            " PowerShell), looking for this room in `resource` and at `applicationId`, and"
            " deletes the stale ones or stops the app that makes them; " + again
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


class WritePacer:
    """Every subscription write of this process goes through `permit()`, which draws on the
    write budget shared by all manager processes (`store/write_budget.py`) and waits while
    none is left, or while Graph told any of them to wait.

    Draws queue here one at a time, so a creation round of thousands of rooms costs the
    database one draw per write, not one per waiting room. A shared Retry-After longer than a
    caller will wait (`max_hold`) is remembered and raised as `Throttled` at once to the
    callers after it, until it has passed.
    """

    def __init__(
        self,
        budget: WriteBudget,
        *,
        poll: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        # A full budget frees a permit when the oldest write leaves the window; one in flight
        # frees later than the draw can know, so a full budget is looked at again this often.
        self._poll = poll if poll is not None else min(1.0, budget.window / 10)
        self._monotonic = monotonic
        self._turn = asyncio.Lock()
        self._held_until = 0.0  # monotonic end of a shared Retry-After too long to wait out
        self.writes = 0
        self.waited = 0.0  # seconds spent waiting for a permit or a Retry-After

    @asynccontextmanager
    async def permit(self, max_hold: float) -> AsyncIterator[None]:
        """One write's permit, held while the write is in flight and given back after."""
        permit_id = await self._take(max_hold)
        try:
            yield
        finally:
            await self._give_back(permit_id)

    async def hold(self, seconds: float) -> None:
        """Graph answered a write 429 for the tenant's limit: every process waits `seconds`."""
        self._held_until = max(self._held_until, self._monotonic() + seconds)
        await self.budget.hold(seconds)

    async def _take(self, max_hold: float) -> str:
        async with self._turn:
            while True:
                self._refuse_if_held(max_hold)
                draw = await self.budget.draw()
                if draw.permit_id is not None:
                    self.writes += 1
                    return draw.permit_id
                if draw.held:
                    self._held_until = max(self._held_until, self._monotonic() + draw.wait)
                    self._refuse_if_held(max_hold)
                    wait = draw.wait
                else:
                    wait = min(max(draw.wait, 0.001), self._poll)
                self.waited += wait
                await asyncio.sleep(wait)

    def _refuse_if_held(self, max_hold: float) -> None:
        left = self._held_until - self._monotonic()
        if left > max_hold:
            raise Throttled(
                f"Graph's subscription write limit: this app was asked to wait {left:.0f} s"
                " more in this tenant",
                left,
            )

    async def _give_back(self, permit_id: str) -> None:
        try:
            await self.budget.release(permit_id)
        except StorageError as exc:  # the permit counts until its lease ends: on the safe side
            log.warning("write permit not given back", extra={"error": str(exc)})
