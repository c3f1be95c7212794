"""Keeps one Graph subscription on every Graph room's events, renewed well before it expires.

https://learn.microsoft.com/graph/api/subscription-post-subscriptions
https://learn.microsoft.com/graph/api/subscription-update
https://learn.microsoft.com/graph/change-notifications-lifecycle-events

A subscription on `/users/{room}/events` (created, updated, deleted) carries our clientState and
a lifecycle URL. Outlook subscriptions last at most 10,080 minutes; each is renewed (PATCH) once
less than `renew_before` is left. The worker turns lifecycle notifications into bookkeeping:
`reauthorizationRequired` marks the subscription broken with that reason, and this manager
answers by renewing it (renewing reauthorizes too; doing both within 10 minutes is refused);
`subscriptionRemoved` marks it broken, and it is recreated and the room resynced; `missed` asks
for a resync only. A renewal answered 404 (Graph dropped the subscription, as it may without a
lifecycle notification for app-only subscriptions) or 400 (Graph will not extend it) marks it
broken the same way, and it is recreated and the room resynced at once (docs/protocol.md §5a).
A 409 on create means one exists already: it is looked up, adopted and renewed.

Graph's limits are rules here, not surprises (docs/graph.md, "Graph's limits"): every write
(create, renew, delete) takes a permit from the write budget all manager processes share
(`throttling.WritePacer`, at most `graph_subscription_write_limit` per window per app and
tenant) and waits while none is left. Renewals are spread: each subscription is due at a point
of its own between `renew_before` and twice that before it expires, set by a hash of its id,
so that subscriptions made together (onboarding, a restart after downtime) are not all renewed
together; due ones are renewed soonest-expiring first.

A 429's Retry-After holds for what it was answered for (`graph/throttling.py`): one mailbox, or
the app (the subscription write limit; this one is shared with every manager process through
the write budget). A short one is waited out in the call; a longer one
leaves that mailbox (or the app) alone until it passes, and at most `max_retry_after`, so one
mailbox never holds up the others. A Retry-After beyond that bound, or the 1,000-subscription
cap, is the room's problem (`room.last_error`, shown by the status page) and the room is tried
again once the bound has passed. A refusal that leaves the room readable (an on-premises
mailbox, an access policy, the cap: `graph/polling.py`) has the worker poll the room meanwhile.
Creating and renewing run as two loops (`run`): a creation round that waits for a throttled
room never delays a renewal that is due. Rooms `pushsync rooms migrate` moved to EWS are left
alone, whatever the settings say.

A subscription we retire (replaced, the room moved to EWS, `pushsync subscriptions retire`)
is dead to us, but Graph keeps posting to it until it expires, days later. A maintenance
round therefore lists Graph's subscriptions and DELETEs those our database holds as retired
(https://learn.microsoft.com/graph/api/subscription-delete): one try each, so a DELETE that was
throttled or failed is simply found again at the next round. It lists only when something may
be found (one retired since the last listing, or one left undeleted by it): the list holds all
50,000 subscriptions of a fleet.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pushsync.errors import ExchangeError, ExchangeUnavailable, Throttled
from pushsync.graph import polling, throttling
from pushsync.graph.change_notification import REAUTHORIZATION_REQUIRED, SUBSCRIPTION_REMOVED
from pushsync.graph.client import (
    Conflict,
    GraphClient,
    GraphSubscription,
    NotFound,
    RenewalRefused,
    Sent,
)
from pushsync.model.clock import utcnow
from pushsync.model.outcome import Outcome
from pushsync.retry import (
    APP,
    MAX_THROTTLED_TRIES,
    Backoff,
    RetryAfterHolds,
    bounded,
    in_turn,
    retryable,
    survive,
)
from pushsync.store.processes import Heartbeat, beating
from pushsync.store.subscriptions import LiveSubscription, Subscriptions
from pushsync.store.write_budget import WriteBudget

log = logging.getLogger(__name__)

MAX_LIFETIME = timedelta(minutes=10080)
SHORT_WAIT = 10.0  # seconds: a Retry-After up to this is waited out within the call
# Graph's subscription write limit per app and tenant (docs/protocol.md §5a)
WRITE_LIMIT = 500
WRITE_WINDOW = 20.0  # seconds
CALL_TIMEOUT = 60.0  # seconds a write may be in flight before its permit counts as answered
WRITES_IN_FLIGHT = 32  # renewals and recreations under way at once in a maintenance round
# Creations under way at once in a creation round. A permit counts from its draw until a window
# after the answer, so a write waiting for a connection would spend the budget doing nothing:
# the round waits here, before its draw, and this with WRITES_IN_FLIGHT stays within the
# client's connections (`client.CONNECTIONS`). It is also what a 50,000-room round holds.
CREATES_IN_FLIGHT = 64
SWEEP_MARGIN = timedelta(minutes=10)  # clocks of processes that retire subscriptions may differ
GONE = "gone at Graph: "  # prefix of a subscription's last_error once Graph no longer has it
T = TypeVar("T")


class GraphSubscriptionManager:
    def __init__(
        self,
        client: GraphClient,
        subscriptions: Subscriptions,
        *,
        notification_url: str,
        client_state: str,
        lifetime: timedelta = timedelta(minutes=10000),
        renew_before: timedelta = timedelta(days=1),
        max_retry_after: timedelta = timedelta(hours=1),
        writes: throttling.WritePacer | None = None,
        clock: Callable[[], datetime] = utcnow,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._client = client
        self._heartbeat = heartbeat  # beaten while `run` runs
        self._subscriptions = subscriptions
        self._url = notification_url
        self._client_state = client_state
        self._lifetime = min(lifetime, MAX_LIFETIME)
        self._renew_before = renew_before
        self._clock = clock
        self._back_off = RetryAfterHolds(max_retry_after.total_seconds())
        self._short_wait = min(SHORT_WAIT, self._back_off.bound)
        self.writes = writes or default_pacer(subscriptions)
        self.given_up: dict[str, str] = {}  # mailbox -> why it will not be subscribed again
        # the start of the last listing of Graph's subscriptions, and how many retired ones it
        # left undeleted (`delete_retired`); None before the first
        self._swept: tuple[datetime, int] | None = None

    async def subscribe_rooms(self, mailboxes: Iterable[str]) -> Outcome:
        """Give every listed room a Graph subscription unless it has a live one already."""
        rooms = list(mailboxes)
        await self._subscriptions.ensure_rooms(rooms, "graph", self._clock())
        return await self.subscribe_missing(rooms)

    async def subscribe_missing(self, rooms: Iterable[str]) -> Outcome:
        """Create a subscription for each room without a live one, except for rooms inside a
        back-off (a later round tries them).

        A room synced before (refused at the cap, its subscription retired by hand) is resynced
        once subscribed: what changed while it had none was never pushed.
        """
        live = {s.mailbox for s in await self._graph_live()}
        moved = await self._subscriptions.moved_off("graph")  # `pushsync rooms migrate`
        rooms = [m for m in rooms if m.lower() not in moved]
        known = await self._subscriptions.rooms()
        awaiting = {r["mailbox"] for r in known if r["needs_resync"]}
        let_go = {r["mailbox"] for r in known if r.get("removed_at")}  # room discovery dropped it
        outcome = Outcome()

        async def one(mailbox: str) -> None:
            if self._held(mailbox):  # a 429 for it came while it waited for its turn
                return
            if await self._create(mailbox, outcome) and mailbox not in awaiting:
                await self._subscriptions.request_resync(mailbox, "subscribed again")

        wanted = [m for m in rooms if m not in live and m not in let_go and not self._held(m)]
        await in_turn(wanted, one, CREATES_IN_FLIGHT)
        return outcome

    async def maintain(self) -> Outcome:
        """Recreate what was removed; renew what is due or asked to be reauthorized,
        soonest-expiring first; delete at Graph what we retired. Rooms inside a back-off wait
        for a later round. Up to WRITES_IN_FLIGHT writes are under way at once (the write
        budget paces them): renewals due together after a downtime are not one at a time."""
        outcome = Outcome()
        now = self._clock()
        recreate, renew = [], []
        for subscription in await self._graph_live():
            if self._held(subscription.mailbox):
                continue
            if subscription.state == "broken" and not await self._reauthorizing(subscription):
                recreate.append(subscription)
            elif subscription.state == "broken" or self._due(subscription, now):
                renew.append(subscription)

        async def each(job: tuple[bool, LiveSubscription]) -> None:
            again, subscription = job
            if again:
                await self._recreate(subscription, outcome, gone=_gone(subscription))
            else:
                await self._renew(subscription, outcome)

        jobs = [(True, s) for s in recreate] + [(False, s) for s in sorted(renew, key=_expiry)]
        await in_turn(jobs, each, WRITES_IN_FLIGHT)
        await self.delete_retired()
        return outcome

    async def delete_retired(self) -> int:
        """DELETE the subscriptions Graph still lists that our database holds as retired.

        One unknown to the database is left alone: another manager may have just created it
        and not yet recorded it. A throttled or unreachable Graph ends the round early.

        Graph is listed only when there may be something to delete (`_sweep_due`): the list
        holds every subscription of the app, 50,000 at fleet size (Graph pages it), and most
        rounds nothing was retired.
        """
        deleted = 0
        if self._held(None):
            return 0
        started = self._clock()
        if not await self._sweep_due():
            return 0
        retired = await self._retired_at_graph()
        if retired is None:
            return 0
        left = len(retired)
        for subscription_id in retired:
            try:  # 404: gone, fine
                delete = functools.partial(self._client.delete_subscription, subscription_id)
                await self._write(None, delete)
            except Throttled as exc:
                self._defer(None, exc)
                _not_deleted(subscription_id, exc)
                break
            except ExchangeUnavailable as exc:
                _not_deleted(subscription_id, exc)
                break
            except ExchangeError as exc:
                _not_deleted(subscription_id, exc)
                continue
            log.info(
                "retired Graph subscription deleted", extra={"subscription_id": subscription_id}
            )
            deleted += 1
        self._swept = (started, left - deleted)
        return deleted

    async def _sweep_due(self) -> bool:
        """Whether to list Graph's subscriptions this round: never listed yet, some retired
        ones were left undeleted last time, or one was retired since the last listing began
        (less `SWEEP_MARGIN`: processes that retire may run on clocks a little apart)."""
        if self._swept is None:
            return True
        began, left = self._swept
        return left > 0 or await self._subscriptions.retired_since("graph", began - SWEEP_MARGIN)

    async def _retired_at_graph(self) -> list[str] | None:
        """The ids Graph lists that we hold as retired; None if Graph could not be listed."""
        try:
            listed = await self._client.subscriptions()
        except ExchangeError as exc:
            log.warning("listing Graph subscriptions failed", extra={"error": str(exc)})
            return None
        live = {s.subscription_id for s in await self._subscriptions.live()}  # read after listing
        candidates = [
            s.subscription_id
            for s in listed
            if s.notification_url == self._url and s.subscription_id not in live
        ]
        return [c for c in candidates if await self._retired(c)]

    async def _retired(self, subscription_id: str) -> bool:
        record = await self._subscriptions.by_id(subscription_id)
        return record is not None and record["state"] == "retired"

    async def run(self, stop: asyncio.Event, rooms: Iterable[str], interval_s: float) -> None:
        """Until `stop`: a creation loop (rooms still without a subscription, each round) beside
        a maintenance loop, so that renewals never wait for a creation round. A room Graph
        refused for a reason that will not pass (`given_up`) is not subscribed again until a
        restart; a round that fails as a whole (the database away) is waited out with a
        back-off, and the loop goes on. `rooms` is read afresh each round: room discovery
        (`graph/room_discovery.py`) changes it while the manager runs."""

        async def create() -> None:
            current = list(rooms)
            await self._ensure_graph_rooms(current)
            await self.subscribe_missing([r for r in current if r not in self.given_up])

        async def maintain() -> None:
            await self.maintain()

        async with beating(self._heartbeat):
            await asyncio.gather(
                _every(stop, interval_s, create, "Graph subscribe", at_once=True),
                _every(stop, interval_s, maintain, "Graph renewals", at_once=False),
            )

    async def _ensure_graph_rooms(self, mailboxes: list[str]) -> None:
        """Record the rooms the database does not hold as Graph's yet. Not all of them each
        round: at 50,000 rooms that was 50,000 upserts in one write transaction every round,
        the receiver and the worker kept waiting for the writer."""
        known = await self._subscriptions.rooms()
        graph = {r["mailbox"] for r in known if r["protocol"] == "graph"}
        unknown = [m for m in mailboxes if m not in graph]
        if unknown:
            await self._subscriptions.ensure_rooms(unknown, "graph", self._clock())

    def _held(self, mailbox: str | None) -> bool:
        """Whether a call about `mailbox` must wait longer than is waited out in a call."""
        return self._back_off.held(mailbox) > self._short_wait

    async def _graph_live(self) -> list[LiveSubscription]:
        return [s for s in await self._subscriptions.live() if s.protocol == "graph"]

    async def _reauthorizing(self, subscription: LiveSubscription) -> bool:
        record = await self._subscriptions.by_id(subscription.subscription_id)
        return record is not None and record["last_error"] == REAUTHORIZATION_REQUIRED

    def _due(self, subscription: LiveSubscription, now: datetime) -> bool:
        return renewal_due(subscription, now, self._renew_before)

    async def _renew(self, subscription: LiveSubscription, outcome: Outcome) -> None:
        expires = self._clock() + self._lifetime
        try:
            granted = await self._call(
                subscription.mailbox,
                lambda: self._write(
                    subscription.mailbox,
                    lambda sent: self._client.renew_subscription(
                        subscription.subscription_id, expires, sent=sent
                    ),
                ),
            )
        except (NotFound, RenewalRefused) as exc:  # Graph dropped it, or will not extend it
            gone = isinstance(exc, NotFound)
            why = f"{GONE if gone else 'renewal refused: '}{exc}"
            await self._subscriptions.mark_gone(subscription.subscription_id, why)
            await self._recreate(subscription, outcome, gone=gone)
            return
        except ExchangeError as exc:
            await self._failed(subscription.mailbox, "renew", exc, outcome)
            return
        await self._subscriptions.renewed(subscription.subscription_id, granted)
        log.info(
            "Graph subscription renewed",
            extra={"mailbox": subscription.mailbox, "expires_at": granted.isoformat()},
        )

    async def _recreate(self, old: LiveSubscription, outcome: Outcome, *, gone: bool) -> None:
        """A new subscription for the room of `old`, then a resync of the room: what changed
        while it had none was never notified. `old` is deleted first unless Graph no longer
        has it (a 404, subscriptionRemoved): one more write spent on nothing."""
        log.warning(
            "recreating Graph subscription",
            extra={"mailbox": old.mailbox, "subscription_id": old.subscription_id},
        )
        if not gone:
            try:
                await self._write(
                    old.mailbox,
                    lambda sent: self._client.delete_subscription(old.subscription_id, sent=sent),
                )
            except ExchangeError as exc:  # retired below: delete_retired tries again
                if isinstance(exc, Throttled):
                    self._defer(old.mailbox, exc)
                _not_deleted(old.subscription_id, exc)
        if await self._create(old.mailbox, outcome, replaces=old.subscription_id):
            await self._subscriptions.request_resync(old.mailbox, "Graph subscription recreated")

    async def _create(self, mailbox: str, outcome: Outcome, *, replaces: str | None = None) -> bool:
        expires = self._clock() + self._lifetime
        try:
            created = await self._call(mailbox, lambda: self._subscribe(mailbox, expires))
        except ExchangeError as exc:
            if not retryable(exc):  # refused, or credentials refused: an operator must act
                self.given_up[mailbox] = str(exc)
            polled = polling.reason(exc) is not None  # its refusal is noted with the polling
            why = await self._failed(mailbox, "subscribe", exc, outcome, note=not polled)
            await self._poll_instead(mailbox, exc, why)
            return False
        if created.subscription_id == replaces:  # a 409 led back to it: Graph still holds it
            await self._subscriptions.renewed(created.subscription_id, created.expires_at)
        else:
            await self._record(mailbox, created, replaces)
        await self._subscriptions.retire_other_protocols(mailbox, "graph", self._clock())
        outcome.subscribed.append(mailbox)
        return True

    async def _poll_instead(self, mailbox: str, exc: ExchangeError, detail: str) -> None:
        """A refusal that will not pass by itself (`graph/polling.py`): the worker polls the
        room meanwhile, and it is tried again after the back-off bound, not given up. The
        refusal is kept as the polling's detail, so that `room.last_error` says whether the
        polls themselves fail."""
        why = polling.reason(exc)
        if why is None:
            return
        self.given_up.pop(mailbox, None)
        if not isinstance(exc, Throttled):  # a 429's own back-off is held already
            self._back_off.defer(mailbox, self._back_off.bound)
        await self._subscriptions.start_polling(mailbox, why, detail, self._clock())

    async def _record(self, mailbox: str, created: GraphSubscription, replaces: str | None) -> None:
        await self._subscriptions.record(
            mailbox,
            created.subscription_id,
            protocol="graph",
            watermark=None,
            status_frequency=None,
            now=self._clock(),
            replaces=replaces,
            reason="Graph subscription replaced" if replaces else None,
            expires_at=created.expires_at,
        )

    async def _subscribe(self, mailbox: str, expires: datetime) -> GraphSubscription:
        try:
            return await self._write(
                mailbox,
                lambda sent: self._client.create_subscription(
                    mailbox,
                    notification_url=self._url,
                    lifecycle_url=self._url,
                    client_state=self._client_state,
                    expires_at=expires,
                    sent=sent,
                ),
            )
        except Conflict:
            existing = await self._existing(mailbox)
            if existing is None:
                raise
            granted = await self._write(
                mailbox,
                lambda sent: self._client.renew_subscription(
                    existing.subscription_id, expires, sent=sent
                ),
            )
            return GraphSubscription(existing.subscription_id, existing.resource, granted)

    async def _existing(self, mailbox: str) -> GraphSubscription | None:
        """The subscription a 409 refers to: same resource, same notification URL."""
        resource = f"/users/{mailbox}/events".lower()
        for subscription in await self._client.subscriptions():
            same_url = subscription.notification_url == self._url
            if same_url and subscription.resource.lower().lstrip("/") == resource.lstrip("/"):
                return subscription
        return None

    async def _write(self, mailbox: str | None, write: Callable[[Sent], Awaitable[T]]) -> T:
        """One subscription write, within the shared write budget: `write` sends its request
        with the `Sent` given, so that the permit counts from when it was sent. A 429 for the
        tenant's write limit holds every manager process, not only this one."""
        async with self.writes.permit(self._short_wait) as sent:
            try:
                return await write(sent)
            except Throttled as exc:
                if throttling.scope(mailbox, exc, self._back_off.bound) == APP:
                    await self.writes.hold(bounded(exc.retry_after, self._back_off.bound))
                raise

    async def _call(self, mailbox: str, call: Callable[[], Awaitable[T]]) -> T:
        """One Graph call about `mailbox`, honouring Retry-After for it and for the app.

        A back-off up to `_short_wait` is slept through here; a 429 asking for longer is raised
        at once, its back-off kept for its scope (at most the bound) for later rounds."""
        wait = 0.0
        for _ in range(MAX_THROTTLED_TRIES):
            held = self._back_off.held(mailbox)
            if held > self._short_wait:
                raise Throttled(f"Graph asked to wait {held:.0f} s more", held)
            if held:
                log.info(
                    "Graph throttled, backing off", extra={"mailbox": mailbox, "seconds": held}
                )
                await asyncio.sleep(held)
            try:
                return await call()
            except Throttled as exc:
                wait = self._defer(mailbox, exc)
                if exc.retry_after > self._short_wait:  # beyond the bound too: not slept through
                    raise
        raise Throttled(f"still throttled after {MAX_THROTTLED_TRIES} tries", wait)

    def _defer(self, mailbox: str | None, exc: Throttled) -> float:
        """Keep the 429's back-off for what it was answered for; returns the wait."""
        key = throttling.scope(mailbox, exc, self._back_off.bound)
        return 0.0 if key is None else self._back_off.defer(key, exc.retry_after)

    async def _failed(
        self, mailbox: str, action: str, exc: ExchangeError, outcome: Outcome, *, note: bool = True
    ) -> str:
        """Note on the room why `action` failed (unless not `note`), and return it; a throttled
        room says which limit and when it is tried again."""
        why = str(exc)
        if isinstance(exc, Throttled):
            left = self._back_off.held(mailbox)
            retry_at = self._clock() + timedelta(seconds=left)
            why = throttling.problem(exc, retry_at, self._back_off.bound)
        if isinstance(exc, Throttled) and not throttling.is_room_problem(exc, self._back_off.bound):
            log.warning(f"Graph {action} throttled", extra={"mailbox": mailbox, "error": why})
        else:
            log.error(f"Graph {action} failed", extra={"mailbox": mailbox, "error": why})
        outcome.failed[mailbox] = why
        if note:
            await self._subscriptions.room_error(mailbox, f"{action}: {why}", self._clock())
        return why


async def _every(
    stop: asyncio.Event,
    interval_s: float,
    job: Callable[[], Awaitable[None]],
    what: str,
    *,
    at_once: bool,
) -> None:
    """Run `job` every `interval_s` seconds (first at once if `at_once`) until `stop`, each
    round through `survive`: a round that fails for a reason that may pass is waited out."""
    backoff = Backoff()
    if at_once:
        await survive(job, what, backoff, stop)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            await survive(job, what, backoff, stop)


def default_pacer(
    subscriptions: Subscriptions,
    key: str = "graph",
    *,
    limit: int = WRITE_LIMIT,
    window: float = WRITE_WINDOW,
) -> throttling.WritePacer:
    """Graph's write limit for one app and tenant (`key`), shared through the database."""
    budget = WriteBudget(
        subscriptions.connector, key, limit=limit, window=window, lease=CALL_TIMEOUT + window
    )
    return throttling.WritePacer(budget)


def renewal_due(subscription: LiveSubscription, now: datetime, renew_before: timedelta) -> bool:
    """Whether a renewal is due: once less than `renew_before`, stretched by the
    subscription's own share of one more `renew_before`, is left. The share comes from its
    id, so the moment is the same in every process and after a restart, and subscriptions
    that expire together are renewed over a stretch of `renew_before`."""
    expires = subscription.expires_at
    if expires is None:
        return True
    margin = renew_before * (1 + _spread(subscription.subscription_id))
    return _aware(expires) - now < margin


def _spread(subscription_id: str) -> float:
    """A share in [0, 1) fixed by the id, the same in every process and after a restart."""
    digest = hashlib.blake2b(subscription_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _expiry(subscription: LiveSubscription) -> datetime:
    expires = subscription.expires_at
    return datetime.min.replace(tzinfo=UTC) if expires is None else _aware(expires)


def _gone(subscription: LiveSubscription) -> bool:
    """Graph no longer has it: removed (lifecycle), or a renewal answered 404."""
    why = subscription.last_error or ""
    return why == SUBSCRIPTION_REMOVED or why.startswith(GONE)


def _not_deleted(subscription_id: str, exc: ExchangeError) -> None:
    log.warning(
        "Graph subscription not deleted, tried again next round",
        extra={"subscription_id": subscription_id, "error": str(exc)},
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
