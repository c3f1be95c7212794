"""Graph subscriptions and their webhook deliveries, as Microsoft Graph behaves.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
https://learn.microsoft.com/graph/change-notifications-lifecycle-events

Creating a subscription first validates each URL (POST `?validationToken=…`, 200 text/plain with
the token back within 10 s). Each room write becomes one item (created, updated, deleted) with
the subscription's clientState, batched per subscription. A delivery that is not answered 2xx
is retried with a growing delay for up to four hours (Exchange time); what cannot be delivered
then is dropped and a `missed` lifecycle notification follows. A subscription stops at its
expiration time. `lifecycle()` lets a test send reauthorizationRequired, subscriptionRemoved or
missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, unquote

import httpx

from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.events import MailboxEvent
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.graph.resources import graph_id, offset_time
from pushsync.simulator.items import Folder
from pushsync.simulator.listener_client import ListenerClient

log = logging.getLogger(__name__)

MAX_EXPIRATION = timedelta(minutes=10080)  # Outlook resources
MAX_BATCH = 50
FIRST_RETRY_SECONDS = 10.0
RETRY_FOR = timedelta(hours=4)
TENANT_ID = "00000000-0000-4000-8000-00000000c0de"
APPLICATION_ID = "00000000-0000-4000-8000-0000000000a1"  # pushsync's app registration
KINDS = {"Created": "created", "Modified": "updated", "Deleted": "deleted", "Moved": "deleted"}


def mailbox_of(resource: str) -> str:
    """The mailbox of a `/users/{mailbox}/events` resource (as it is written, lower-cased)."""
    parts = resource.strip("/").split("/")
    return unquote(parts[1]).lower() if len(parts) > 1 else ""


class ValidationFailed(Exception):
    """The notification URL did not answer the handshake."""


@dataclass(eq=False)
class GraphSubscription:
    id: str
    calendar: RoomCalendar
    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: datetime
    active: bool = True
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    lifecycle_queue: deque[str] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None  # delivering; None while nothing is queued

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "changeType": ",".join(sorted(self.change_types)),
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "clientState": self.client_state,
            "expirationDateTime": offset_time(self.expires),
            "applicationId": APPLICATION_ID,
        }


@dataclass(frozen=True, slots=True)
class GraphDelivery:
    at: datetime
    subscription_id: str
    status: int | str  # the HTTP status, or what went wrong
    items: int
    lifecycle: str | None = None


class GraphWebhooks:
    def __init__(self, exchange: Exchange, http: ListenerClient) -> None:
        self.exchange = exchange
        self.clock = exchange.clock
        self.http = http
        self.subscriptions: dict[str, GraphSubscription] = {}
        # mailbox -> its subscriptions, so that an event or a create does not walk them all
        self._by_mailbox: defaultdict[str, list[GraphSubscription]] = defaultdict(list)
        self.deliveries: list[GraphDelivery] = []
        for calendar in exchange.calendars.values():
            self._watch(calendar)
        exchange.mailbox_added.append(self._watch)  # a room created while running

    def _watch(self, calendar: RoomCalendar) -> None:
        calendar.log.listen(functools.partial(self._on_event, calendar))

    def active(self, mailbox: str | None = None) -> list[GraphSubscription]:
        now = self.clock.now()
        every = (
            self.subscriptions.values() if mailbox is None else self._by_mailbox[mailbox.lower()]
        )
        return [s for s in every if s.active and s.expires > now]

    async def create(
        self,
        calendar: RoomCalendar,
        *,
        resource: str,
        change_types: frozenset[str],
        notification_url: str,
        lifecycle_url: str | None,
        client_state: str | None,
        expires: datetime,
    ) -> GraphSubscription:
        for url in dict.fromkeys(u for u in (notification_url, lifecycle_url) if u):
            await self._validate(url)
        subscription = GraphSubscription(
            id=str(uuid.UUID(bytes=self.exchange.rng.randbytes(16), version=4)),
            calendar=calendar,
            resource=resource,
            change_types=change_types,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            client_state=client_state,
            expires=expires,
        )
        self.subscriptions[subscription.id] = subscription
        self._by_mailbox[calendar.mailbox.lower()].append(subscription)
        return subscription

    def duplicate(
        self, resource: str, notification_url: str, change_types: frozenset[str]
    ) -> GraphSubscription | None:
        for s in self.active(mailbox_of(resource)):
            same = (s.resource.lower(), s.notification_url, s.change_types)
            if same == (resource.lower(), notification_url, change_types):
                return s
        return None

    def delete(self, subscription_id: str) -> bool:
        subscription = self.subscriptions.pop(subscription_id, None)
        if subscription is None:
            return False
        self._by_mailbox[subscription.calendar.mailbox.lower()].remove(subscription)
        self._stop(subscription)
        return True

    def lifecycle(self, subscription_id: str, event: str) -> None:
        """Send a lifecycle notification; subscriptionRemoved also ends the subscription."""
        subscription = self.subscriptions[subscription_id]
        subscription.lifecycle_queue.append(event)
        self._wake(subscription)

    async def close(self) -> None:
        tasks = [s.task for s in self.subscriptions.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _validate(self, url: str) -> None:
        token = f"Validation: Testing client application reachability {uuid.uuid4()} <&+/>"
        target = url + ("&" if "?" in url else "?") + "validationToken=" + quote_plus(token)
        try:
            answer = await self.http.post(
                target, content=b"", headers={"Content-Type": "text/plain; charset=utf-8"}
            )
        except httpx.HTTPError as exc:
            raise ValidationFailed(f"{url}: {type(exc).__name__}") from None
        plain = answer.headers.get("content-type", "").startswith("text/plain")
        if answer.status_code != 200 or not plain or answer.text != token:
            raise ValidationFailed(f"{url}: answered {answer.status_code}, not the token")

    def _on_event(self, calendar: RoomCalendar, event: MailboxEvent) -> None:
        kind = KINDS.get(event.kind)
        if kind is None or event.item_id is None:
            return  # folder events carry nothing for Graph
        in_calendar = calendar.folder_ids[Folder.CALENDAR]
        if event.kind == "Moved":  # out of the calendar: Graph says the event was deleted
            if event.old_item_id is None or event.old_parent_folder_id != in_calendar:
                return
            item = event.old_item_id
        elif event.parent_folder_id == in_calendar:
            item = event.item_id
        else:
            return
        for subscription in self.active(calendar.mailbox):
            if kind in subscription.change_types:
                subscription.queue.append(self._item(subscription, kind, item, event.change_key))
                self._wake(subscription)

    def _item(
        self, subscription: GraphSubscription, kind: str, ews_item: str, change_key: str | None
    ) -> dict[str, Any]:
        event_id = graph_id(ews_item)
        resource = f"Users/{subscription.calendar.mailbox}/Events/{event_id}"
        return {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": offset_time(subscription.expires),
            "changeType": kind,
            "resource": resource,
            "tenantId": TENANT_ID,
            "clientState": subscription.client_state,
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.Event",
                "@odata.id": resource,
                "@odata.etag": f'W/"{change_key or ""}"',  # the item's version, as Graph's
                "id": event_id,
            },
        }

    def _wake(self, subscription: GraphSubscription) -> None:
        """Start delivering what the subscription has queued, unless it is under way. A
        subscription with nothing to send has no task and no timer: 50,000 idle rooms cost
        their records only; expiry is read from `expires` where it matters (`active`)."""
        if subscription.task is None:
            subscription.task = asyncio.create_task(self._run(subscription))

    async def _run(self, subscription: GraphSubscription) -> None:
        try:
            while subscription.active:
                if subscription.expires <= self.clock.now():
                    self._stop(subscription, drop_task=False)
                    return
                if subscription.lifecycle_queue:
                    event = subscription.lifecycle_queue.popleft()
                    await self._send_lifecycle(subscription, event)
                    continue
                if not subscription.queue:
                    return
                count = min(MAX_BATCH, len(subscription.queue))
                batch = [subscription.queue.popleft() for _ in range(count)]
                if not await self._deliver(subscription, subscription.notification_url, batch):
                    subscription.lifecycle_queue.append("missed")  # dropped: tell the app
        finally:
            subscription.task = None  # nothing queued is left behind: see `_wake`

    async def _send_lifecycle(self, subscription: GraphSubscription, event: str) -> None:
        item = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": offset_time(subscription.expires),
            "tenantId": TENANT_ID,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        url = subscription.lifecycle_url or subscription.notification_url
        if event == "subscriptionRemoved":
            self._stop(subscription, drop_task=False)
        await self._deliver(subscription, url, [item], lifecycle=event)

    async def _deliver(
        self,
        subscription: GraphSubscription,
        url: str,
        items: list[dict[str, Any]],
        lifecycle: str | None = None,
    ) -> bool:
        """POST until a 2xx; False when four hours of retries went by (the items are lost)."""
        body = json.dumps({"value": items}).encode()
        first_failure: datetime | None = None
        wait = FIRST_RETRY_SECONDS
        while True:
            status = await self._post(subscription, url, body, len(items), lifecycle)
            if isinstance(status, int) and 200 <= status < 300:
                return True
            now = self.clock.now()
            first_failure = first_failure or now
            if now - first_failure + timedelta(seconds=wait) > RETRY_FOR:
                return False
            await self.clock.sleep(wait)
            wait = min(wait * 2, 1800.0)

    async def _post(
        self,
        subscription: GraphSubscription,
        url: str,
        body: bytes,
        count: int,
        lifecycle: str | None,
    ) -> int | str:
        try:
            answer = await self.http.post(
                url, content=body, headers={"Content-Type": "application/json; charset=utf-8"}
            )
            status: int | str = answer.status_code
        except httpx.HTTPError as exc:
            status = f"transport error: {type(exc).__name__}"
        self.deliveries.append(
            GraphDelivery(self.clock.now(), subscription.id, status, count, lifecycle)
        )
        return status

    def _stop(self, subscription: GraphSubscription, *, drop_task: bool = True) -> None:
        subscription.active = False
        subscription.queue.clear()
        if drop_task and subscription.task is not None:
            subscription.task.cancel()
