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
from pushsync.graph.client import SUBSCRIPTION_CAP, Sent
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

    Draws queue here one at a time, each for every write waiting then (up to `MAX_DRAW`), and
    permits given back while a release is under way go together in the next one: the budget
    costs the database about two transactions per batch of writes, not per write, and a
    creation round of thousands of rooms costs no more than its writes. A shared Retry-After
    longer than a caller will wait (`max_hold`) is remembered and raised as `Throttled` at
    once to the callers after it, until it has passed. Each permit gives its write a `Sent`,
    and tells the budget at release how long ago the request was sent: Graph counts the write
    from then, not from its answer (store/write_budget.py).
    """

    MAX_DRAW = 64
    # A permit drawn for a caller that then went away is used by a later one only this soon
    # after its draw; older ones are given back (a permit counts until its lease ends, so one
    # used late could leave the window before its write reaches Graph).
    FRESH = 5.0  # seconds

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
        self._waiting = 0  # callers inside `_take`
        self._drawn: list[str] = []  # permits drawn for callers still queued for their turn
        self._drawn_at = 0.0  # monotonic
        self._returned: dict[str, Sent | None] = {}  # to give back in the next release
        self._releasing = False
        self._held_until = 0.0  # monotonic end of a shared Retry-After this process knows of
        self.writes = 0
        self.waited = 0.0  # seconds spent waiting for a permit or a Retry-After

    @asynccontextmanager
    async def permit(self, max_hold: float) -> AsyncIterator[Sent]:
        """One write's permit, held while the write is in flight and given back after; the
        write's request is to be sent with the `Sent` it gives (GraphClient's `sent=`)."""
        permit_id = await self._take(max_hold)
        sent = Sent()
        try:
            yield sent
        finally:
            await self._give_back(permit_id, sent)

    async def hold(self, seconds: float) -> None:
        """Graph answered a write 429 for the tenant's limit: every process waits `seconds`."""
        self._held_until = max(self._held_until, self._monotonic() + seconds)
        await self.budget.hold(seconds)

    async def _take(self, max_hold: float) -> str:
        self._waiting += 1
        try:
            async with self._turn:
                return await self._next(max_hold)
        finally:
            self._waiting -= 1

    async def _next(self, max_hold: float) -> str:
        while True:
            left = self._held_until - self._monotonic()
            if left > max_hold:
                raise Throttled(
                    f"Graph's subscription write limit: this app was asked to wait {left:.0f}"
                    " s more in this tenant",
                    left,
                )
            if left > 0:
                await self._sleep(left)
                continue
            if self._drawn and self._monotonic() - self._drawn_at > self.FRESH:
                stale, self._drawn = self._drawn, []
                for permit_id in stale:
                    await self._give_back(permit_id, None)
            if self._drawn:
                self.writes += 1
                return self._drawn.pop()
            draw = await self.budget.draw(min(self._waiting, self.MAX_DRAW))
            if draw.permit_ids:
                self._drawn, self._drawn_at = list(draw.permit_ids), self._monotonic()
            elif draw.held:
                self._held_until = max(self._held_until, self._monotonic() + draw.wait)
            else:
                await self._sleep(min(max(draw.wait, 0.001), self._poll))

    async def _sleep(self, seconds: float) -> None:
        self.waited += seconds
        await asyncio.sleep(seconds)

    async def _give_back(self, permit_id: str, sent: Sent | None) -> None:
        """Give the permit back, with any others given back meanwhile, in one release; how long
        ago each was sent is read as the release starts (late: on the safe side)."""
        self._returned[permit_id] = sent
        if self._releasing:
            return  # the release under way takes it next
        self._releasing = True
        try:
            while self._returned:
                batch, self._returned = self._returned, {}
                sent_ago = {p: None if s is None else s.seconds_ago() for p, s in batch.items()}
                try:
                    await self.budget.release(sent_ago)
                except StorageError as exc:  # they count until their lease ends: safe side
                    log.warning("write permits not given back", extra={"error": str(exc)})
        finally:
            self._releasing = False
