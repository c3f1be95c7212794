"""Push subscriptions and their delivery, the way Exchange does it (docs/protocol.md §1-2).

Each subscription has its own queue and delivery task. A StatusEvent goes out at once after
subscribing and then whenever nothing was sent for StatusFrequency minutes. Events go out in
batches of at most `max_events_per_notification`, with MoreEvents=true while more wait, and
PreviousWatermark naming the last event delivered. A failed delivery is retried, unchanged, after
30 s, then 60, 120 … seconds until StatusFrequency minutes have passed since the first failure;
then the subscription is dead and its events are dropped. An `Unsubscribe` answer ends it.
With `folder_only_rate`, that share of item events is left out and the change is notified by
its folder's ModifiedEvent alone (Exchange coalesces bursts this way).
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/notification-subscriptions-mailbox-events-and-ews-in-exchange
https://learn.microsoft.com/exchange/client-developer/web-service-reference/statusfrequency
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

import httpx

from pushsync.simulator import ids
from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.clock import SimClock
from pushsync.simulator.config import SimulatorConfig
from pushsync.simulator.events import MailboxEvent
from pushsync.simulator.ews import notification
from pushsync.simulator.listener_client import ListenerClient

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30.0


class Exchange(Protocol):
    """What the push engine reads of the simulated Exchange (`exchange.py`), which holds the
    engine in turn: the engine's view of it, so the two modules do not import each other."""

    config: SimulatorConfig
    clock: SimClock
    rng: random.Random
    calendars: dict[str, RoomCalendar]
    mailbox_added: list[Callable[[RoomCalendar], None]]


class State(Enum):
    ACTIVE = "active"
    DEAD = "dead"  # deliveries failed for StatusFrequency minutes
    UNSUBSCRIBED = "unsubscribed"  # the listener answered Unsubscribe
    FAILED = "failed"  # an error notification was sent (e.g. ErrorReadEventsFailed)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST to the listener, kept for tests and the CLI."""

    at: datetime
    subscription_id: str
    status: str  # OK, Unsubscribe, or what went wrong
    events: int


@dataclass(eq=False)
class Subscription:
    id: str
    calendar: RoomCalendar
    folder_id: str | None  # None: SubscribeToAllFolders
    url: str
    event_types: frozenset[str]  # element names without "Event"
    status_frequency: int  # minutes
    version: str
    delivered: str  # watermark of the last event delivered: the next PreviousWatermark
    created: datetime
    state: State = State.ACTIVE
    queue: deque[MailboxEvent] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    error_code: str | None = None
    end_on_error: bool = True  # False: go on posting after the error notification
    status_ticks: int = 0
    task: asyncio.Task[None] | None = None

    @property
    def mailbox(self) -> str:
        return self.calendar.mailbox

    def wants(self, event: MailboxEvent) -> bool:
        if event.kind not in self.event_types:
            return False
        return self.folder_id is None or event.touches(self.folder_id)


class PushEngine:
    def __init__(self, exchange: Exchange, http: ListenerClient) -> None:
        self.exchange = exchange
        self.clock = exchange.clock
        self.http = http
        self.subscriptions: dict[str, Subscription] = {}
        # mailbox -> its subscriptions, so that an event is not matched against 50,000 of them
        self._by_mailbox: defaultdict[str, list[Subscription]] = defaultdict(list)
        self.deliveries: list[Delivery] = []
        self._coalesce = random.Random(f"{exchange.config.seed}:folder-only")
        for calendar in exchange.calendars.values():
            self._watch(calendar)
        exchange.mailbox_added.append(self._watch)  # a room created while running

    def _watch(self, calendar: RoomCalendar) -> None:
        calendar.log.listen(functools.partial(self._on_event, calendar))

    def active(self, mailbox: str | None = None) -> list[Subscription]:
        every = (
            self.subscriptions.values() if mailbox is None else self._by_mailbox[mailbox.lower()]
        )
        return [s for s in every if s.state is State.ACTIVE]

    def subscribe(
        self,
        calendar: RoomCalendar,
        *,
        folder_id: str | None,
        url: str,
        event_types: frozenset[str],
        status_frequency: int,
        version: str,
        after: int,
    ) -> Subscription:
        """A new subscription delivering events after sequence `after` (a watermark's)."""
        subscription = Subscription(
            id=ids.subscription_id(self.exchange.rng, calendar.mailbox),
            calendar=calendar,
            folder_id=folder_id,
            url=url,
            event_types=event_types,
            status_frequency=status_frequency,
            version=version,
            delivered=ids.watermark(calendar.mailbox, after),
            created=self.clock.now(),
        )
        subscription.queue.extend(e for e in calendar.log.since(after) if subscription.wants(e))
        self.subscriptions[subscription.id] = subscription
        self._by_mailbox[calendar.mailbox.lower()].append(subscription)
        subscription.task = asyncio.create_task(self._run(subscription))
        return subscription

    def fail(
        self, subscription_id: str, code: str = "ErrorReadEventsFailed", *, then_end: bool = True
    ) -> None:
        """Send an error notification next, then stop: the subscription is broken.

        `then_end=False` keeps the subscription posting afterwards (a transient error, or a
        retried error notification): the listener, having replaced it, must answer Unsubscribe.
        """
        subscription = self.subscriptions[subscription_id]
        subscription.error_code = code
        subscription.end_on_error = then_end
        subscription.wake.set()

    async def close(self) -> None:
        tasks = [s.task for s in self.subscriptions.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_event(self, calendar: RoomCalendar, event: MailboxEvent) -> None:
        if event.item_id is not None and self._folder_only():
            return  # coalesced: only the folder's ModifiedEvent that follows goes out
        for subscription in self._by_mailbox.get(calendar.mailbox.lower(), ()):
            if (
                subscription.calendar is calendar
                and subscription.state is State.ACTIVE
                and subscription.wants(event)
            ):
                subscription.queue.append(event)
                subscription.wake.set()

    def _folder_only(self) -> bool:
        rate = self.exchange.config.folder_only_rate
        return rate > 0 and self._coalesce.random() < rate

    async def _run(self, subscription: Subscription) -> None:
        status_due = self.clock.now()  # the first StatusEvent goes out at once
        while subscription.state is State.ACTIVE:
            if subscription.error_code is not None:
                await self._send_error(subscription)
                continue
            if not subscription.queue and self.clock.now() < status_due:
                await self._wait(subscription, status_due)
                continue
            if not await self._send_batch(subscription):
                return
            status_due = self.clock.now() + _minutes(subscription.status_frequency)

    async def _wait(self, subscription: Subscription, until: datetime) -> None:
        remaining = (until - self.clock.now()).total_seconds()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscription.wake.wait(), self.clock.real_seconds(remaining))
        subscription.wake.clear()

    async def _send_batch(self, subscription: Subscription) -> bool:
        limit = self.exchange.config.max_events_per_notification
        batch = [subscription.queue[i] for i in range(min(limit, len(subscription.queue)))]
        mailbox = subscription.mailbox
        events: list[tuple[str, MailboxEvent | None]]
        if batch:
            events = [(ids.watermark(mailbox, e.sequence), e) for e in batch]
        else:
            subscription.status_ticks += 1
            sequence = ids.parse_watermark(subscription.delivered)
            at = sequence[1] if sequence else 0
            events = [(ids.watermark(mailbox, at, subscription.status_ticks), None)]
        body = notification.events_body(
            subscription.id,
            subscription.delivered,
            len(subscription.queue) > len(batch),
            events,
            subscription.version,
        )
        if not await self._deliver(subscription, body, len(batch)):
            return False
        for _ in batch:
            subscription.queue.popleft()
        if batch:
            subscription.delivered = events[-1][0]
        return True

    async def _deliver(self, subscription: Subscription, body: bytes, count: int) -> bool:
        """POST until answered; False when the subscription ended (dead or unsubscribed)."""
        first_failure: datetime | None = None
        wait = FIRST_RETRY_SECONDS
        window = _minutes(subscription.status_frequency)
        while True:
            status = await self._post(subscription, body, count)
            if status == "OK":
                return True
            if status == "Unsubscribe":
                self._end(subscription, State.UNSUBSCRIBED)
                return False
            now = self.clock.now()
            first_failure = first_failure or now
            if (now - first_failure).total_seconds() + wait > window.total_seconds():
                self._end(subscription, State.DEAD)
                return False
            await self.clock.sleep(wait)
            wait *= 2

    async def _post(self, subscription: Subscription, body: bytes, count: int) -> str:
        try:
            answer = await self.http.post(
                subscription.url, content=body, headers=notification.HEADERS
            )
        except httpx.HTTPError as exc:
            status = f"transport error: {type(exc).__name__}"
        else:
            parsed = notification.subscription_status(answer.content)
            status = (
                parsed if answer.status_code == 200 and parsed else f"HTTP {answer.status_code}"
            )
        self.deliveries.append(Delivery(self.clock.now(), subscription.id, status, count))
        log.debug("push %s to %s: %s", subscription.id[:12], subscription.url, status)
        return status

    async def _send_error(self, subscription: Subscription) -> None:
        code = subscription.error_code or "ErrorReadEventsFailed"
        body = notification.error_body(
            subscription.id, code, "Events could not be read.", subscription.version
        )
        subscription.error_code = None
        if subscription.end_on_error:
            self._end(subscription, State.FAILED)
            await self._post(subscription, body, 0)  # sent once: the subscription is over anyway
        elif await self._post(subscription, body, 0) == "Unsubscribe":
            self._end(subscription, State.UNSUBSCRIBED)

    def _end(self, subscription: Subscription, state: State) -> None:
        subscription.state = state
        subscription.queue.clear()  # Exchange drops what it held


def _minutes(value: int) -> timedelta:
    return timedelta(minutes=value)
