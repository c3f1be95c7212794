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
for a resync only. A 409 on create means one exists already: it is looked up, adopted and
renewed. 429 is waited out for the server's Retry-After.

A subscription we retire (replaced, the room moved to EWS, `pushsync subscriptions retire`)
is dead to us, but Graph keeps posting to it until it expires, days later. Each maintenance
round therefore lists Graph's subscriptions and DELETEs those our database holds as retired
(https://learn.microsoft.com/graph/api/subscription-delete): one try each, so a DELETE that was
throttled or failed is simply found again at the next round; no state beyond the table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from pushsync.errors import ExchangeError, ExchangeUnavailable, Throttled
from pushsync.graph.change_notification import REAUTHORIZATION_REQUIRED
from pushsync.graph.client import Conflict, GraphClient, GraphSubscription, NotFound
from pushsync.model.clock import utcnow
from pushsync.model.outcome import Outcome
from pushsync.retry import Backoff, retryable, survive, waiting_out_throttling
from pushsync.store.subscriptions import LiveSubscription, Subscriptions

log = logging.getLogger(__name__)

MAX_LIFETIME = timedelta(minutes=10080)


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
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._client = client
        self._subscriptions = subscriptions
        self._url = notification_url
        self._client_state = client_state
        self._lifetime = min(lifetime, MAX_LIFETIME)
        self._renew_before = renew_before
        self._clock = clock
        self.given_up: dict[str, str] = {}  # mailbox -> why it will not be subscribed again

    async def subscribe_rooms(self, mailboxes: Iterable[str]) -> Outcome:
        """Give every listed room a Graph subscription unless it has a live one already."""
        rooms = list(mailboxes)
        await self._subscriptions.ensure_rooms(rooms, "graph", self._clock())
        live = {s.mailbox for s in await self._graph_live()}
        outcome = Outcome()
        await asyncio.gather(*(self._create(m, outcome) for m in rooms if m not in live))
        return outcome

    async def maintain(self) -> Outcome:
        """Renew what expires soon or asked to be reauthorized; recreate what was removed;
        delete at Graph what we retired."""
        outcome = Outcome()
        now = self._clock()
        for subscription in await self._graph_live():
            if subscription.state == "broken" and not await self._reauthorizing(subscription):
                await self._recreate(subscription, outcome)
            elif subscription.state == "broken" or self._expiring(subscription, now):
                await self._renew(subscription, outcome)
        await self.delete_retired()
        return outcome

    async def delete_retired(self) -> int:
        """DELETE the subscriptions Graph still lists that our database holds as retired.

        One unknown to the database is left alone: another manager may have just created it
        and not yet recorded it. A throttled or unreachable Graph ends the round early.
        """
        deleted = 0
        for subscription_id in await self._retired_at_graph():
            try:
                await self._client.delete_subscription(subscription_id)  # 404: gone, fine
            except (Throttled, ExchangeUnavailable) as exc:
                _not_deleted(subscription_id, exc)
                break
            except ExchangeError as exc:
                _not_deleted(subscription_id, exc)
                continue
            log.info(
                "retired Graph subscription deleted", extra={"subscription_id": subscription_id}
            )
            deleted += 1
        return deleted

    async def _retired_at_graph(self) -> list[str]:
        try:
            listed = await self._client.subscriptions()
        except ExchangeError as exc:
            log.warning("listing Graph subscriptions failed", extra={"error": str(exc)})
            return []
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
        """Subscribe the rooms, then maintain them every `interval_s`. A room Graph refused for
        a reason that will not pass (`given_up`) is not subscribed again until a restart; a
        round that fails as a whole (the database away) is waited out with a back-off."""
        rooms = list(rooms)
        backoff = Backoff()
        while not stop.is_set() and not await survive(
            lambda: self.subscribe_rooms(rooms), "Graph subscriptions", backoff, stop
        ):
            pass
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                await survive(lambda: self._maintain(rooms), "Graph subscriptions", backoff, stop)

    async def _maintain(self, rooms: list[str]) -> Outcome:
        """`maintain`, then a subscription for each room that has none (its create failed for
        a reason that may pass, or it was lost), as the EWS manager does."""
        outcome = await self.maintain()
        missing = await self.subscribe_rooms([r for r in rooms if r not in self.given_up])
        outcome.subscribed += missing.subscribed
        outcome.failed |= missing.failed
        return outcome

    async def _graph_live(self) -> list[LiveSubscription]:
        return [s for s in await self._subscriptions.live() if s.protocol == "graph"]

    async def _reauthorizing(self, subscription: LiveSubscription) -> bool:
        record = await self._subscriptions.by_id(subscription.subscription_id)
        return record is not None and record["last_error"] == REAUTHORIZATION_REQUIRED

    def _expiring(self, subscription: LiveSubscription, now: datetime) -> bool:
        expires = subscription.expires_at
        return expires is None or _aware(expires) - now < self._renew_before

    async def _renew(self, subscription: LiveSubscription, outcome: Outcome) -> None:
        expires = self._clock() + self._lifetime
        try:
            granted = await waiting_out_throttling(
                lambda: self._client.renew_subscription(subscription.subscription_id, expires),
                f"renew {subscription.mailbox}",
            )
        except NotFound:  # Graph dropped it meanwhile
            await self._recreate(subscription, outcome)
            return
        except ExchangeError as exc:
            outcome.failed[subscription.mailbox] = str(exc)
            await self._subscriptions.room_error(
                subscription.mailbox, f"renew: {exc}", self._clock()
            )
            return
        await self._subscriptions.renewed(subscription.subscription_id, granted)
        log.info(
            "Graph subscription renewed",
            extra={"mailbox": subscription.mailbox, "expires_at": granted.isoformat()},
        )

    async def _recreate(self, old: LiveSubscription, outcome: Outcome) -> None:
        log.warning(
            "recreating Graph subscription",
            extra={"mailbox": old.mailbox, "subscription_id": old.subscription_id},
        )
        try:  # usually gone already (subscriptionRemoved, a 404 on renew)
            await self._client.delete_subscription(old.subscription_id)
        except ExchangeError as exc:  # retired below: delete_retired tries again
            _not_deleted(old.subscription_id, exc)
        if await self._create(old.mailbox, outcome, replaces=old.subscription_id):
            await self._subscriptions.request_resync(old.mailbox, "Graph subscription recreated")

    async def _create(self, mailbox: str, outcome: Outcome, *, replaces: str | None = None) -> bool:
        expires = self._clock() + self._lifetime
        try:
            created = await waiting_out_throttling(
                lambda: self._subscribe(mailbox, expires), f"subscribe {mailbox}"
            )
        except ExchangeError as exc:
            log.error("Graph subscribe failed", extra={"mailbox": mailbox, "error": str(exc)})
            if not retryable(exc):  # refused, or credentials refused: an operator must act
                self.given_up[mailbox] = str(exc)
            outcome.failed[mailbox] = str(exc)
            await self._subscriptions.room_error(mailbox, f"subscribe: {exc}", self._clock())
            return False
        if created.subscription_id == replaces:  # a 409 led back to it: Graph still holds it
            await self._subscriptions.renewed(created.subscription_id, created.expires_at)
        else:
            await self._record(mailbox, created, replaces)
        await self._subscriptions.retire_other_protocols(mailbox, "graph", self._clock())
        outcome.subscribed.append(mailbox)
        return True

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
            return await self._client.create_subscription(
                mailbox,
                notification_url=self._url,
                lifecycle_url=self._url,
                client_state=self._client_state,
                expires_at=expires,
            )
        except Conflict:
            existing = await self._existing(mailbox)
            if existing is None:
                raise
            granted = await self._client.renew_subscription(existing.subscription_id, expires)
            return GraphSubscription(existing.subscription_id, existing.resource, granted)

    async def _existing(self, mailbox: str) -> GraphSubscription | None:
        """The subscription a 409 refers to: same resource, same notification URL."""
        resource = f"/users/{mailbox}/events".lower()
        for subscription in await self._client.subscriptions():
            same_url = subscription.notification_url == self._url
            if same_url and subscription.resource.lower().lstrip("/") == resource.lstrip("/"):
                return subscription
        return None


def _not_deleted(subscription_id: str, exc: ExchangeError) -> None:
    log.warning(
        "Graph subscription not deleted, tried again next round",
        extra={"subscription_id": subscription_id, "error": str(exc)},
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
