"""Keeps one healthy push subscription on every room's calendar.

A push subscription dies quietly (docs/protocol.md §2-3): when Exchange cannot deliver for
StatusFrequency minutes it stops and drops what it held. The manager replaces a subscription
that is broken (error notification, watermark gap) or silent for more than 2 x StatusFrequency
(nothing received for it: neither a row the worker noted nor one still in the queue),
resubscribing from the last watermark when Exchange still honours it, and marks the room for a
full resync because events may have been lost. Throttling is honoured: ErrorServerBusy's back-off
is kept for that room alone, and at most `concurrency` Subscribe calls are in flight. A short
back-off is waited out in the call; a longer one (at most `max_retry_after`) leaves the room to
a later round, so one room's back-off never holds up replacing the others' dead subscriptions.
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/notification-subscriptions-mailbox-events-and-ews-in-exchange
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from pushsync.errors import ExchangeError, SubscriptionRefused, Throttled
from pushsync.ews.client import EwsClient, Subscription
from pushsync.model.clock import utcnow
from pushsync.model.outcome import Outcome
from pushsync.retry import (
    MAX_THROTTLED_TRIES,
    Backoff,
    RetryAfterHolds,
    in_turn,
    retryable,
    survive,
)
from pushsync.store.processes import Heartbeat, beating
from pushsync.store.subscriptions import LiveSubscription, Subscriptions

log = logging.getLogger(__name__)

WATERMARK_LIFETIME = timedelta(days=29)  # Exchange keeps about 30 days of events
SHORT_WAIT = 10.0  # seconds: a back-off up to this is waited out within the call
# Subscribes under way at once in a round: more than the client's share of EWSMaxConcurrency
# (27), so that its calls never wait for a lane, and few enough that a round's database writes
# do not ask the pool for 50,000 sessions at once
SUBSCRIBES_IN_FLIGHT = 64

Progress = Callable[[str, bool], None]  # (mailbox, subscribed) after each room


class SubscriptionManager:
    def __init__(
        self,
        client: EwsClient,
        subscriptions: Subscriptions,
        *,
        callback_url: str,
        status_frequency: int,
        concurrency: int = 27,
        minute: timedelta = timedelta(minutes=1),
        clock: Callable[[], datetime] = utcnow,
        max_retry_after: timedelta = timedelta(hours=1),
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._client = client
        self._heartbeat = heartbeat  # beaten while `run` runs
        self._subscriptions = subscriptions
        self._callback_url = callback_url
        self._status_frequency = status_frequency
        self._slots = asyncio.Semaphore(concurrency)
        self._minute = minute
        self._clock = clock
        self._back_off = RetryAfterHolds(max_retry_after.total_seconds())
        self.given_up: dict[str, str] = {}  # mailbox -> why Subscribe will not be tried again

    async def subscribe_rooms(
        self, mailboxes: Iterable[str], progress: Progress | None = None
    ) -> Outcome:
        """Give every listed room a subscription unless it has a live one already."""
        rooms = list(mailboxes)
        await self._subscriptions.ensure_rooms(rooms, "ews", self._clock())
        return await self.subscribe_missing(rooms, progress)

    async def subscribe_missing(
        self, rooms: list[str], progress: Progress | None = None
    ) -> Outcome:
        """Subscribe the rooms (already known) that have no live subscription.

        A room synced before (its subscription retired by hand, or lost) is resynced once
        subscribed: what changed while it had none was never pushed.
        """
        live = {s.mailbox for s in await self._subscriptions.live() if s.protocol == "ews"}
        moved = await self._subscriptions.moved_off("ews")  # `pushsync rooms migrate`
        rooms = [m for m in rooms if m.lower() not in moved]
        awaiting = {r["mailbox"] for r in await self._subscriptions.rooms() if r["needs_resync"]}
        outcome = Outcome()

        async def one(mailbox: str) -> None:
            held = self._held(mailbox)  # a later round tries it
            ok = mailbox in live or (not held and await self._subscribe(mailbox, outcome))
            if mailbox not in live and ok:  # a room moved back from Graph leaves its Graph one
                await self._subscriptions.retire_other_protocols(mailbox, "ews", self._clock())
            if mailbox not in live and ok and mailbox not in awaiting:
                await self._subscriptions.request_resync(mailbox, "subscribed again")
            if progress is not None:
                progress(mailbox, ok)

        await in_turn(rooms, one, SUBSCRIBES_IN_FLIGHT)
        return outcome

    async def replace_dead(self) -> Outcome:
        """Replace every broken or silent subscription; its room is marked for a resync."""
        now = self._clock()
        outcome = Outcome()
        live = [s for s in await self._subscriptions.live() if s.protocol == "ews"]
        dead = [  # Graph's: graph/subscriptions
            s for s in live if s.is_dead(now, self._minute) and not self._held(s.mailbox)
        ]
        dead = await self._subscriptions.still_dead(dead, now, self._minute)  # the queue too

        async def replace(subscription: LiveSubscription) -> None:
            await self._replace(subscription, now, outcome)

        await in_turn(dead, replace, SUBSCRIBES_IN_FLIGHT)
        return outcome

    async def run(self, stop: asyncio.Event, rooms: Iterable[str], interval_s: float) -> None:
        """The long-running loop of the main process.

        A room whose Subscribe failed for a reason that may pass (throttled too long, Exchange
        away) is tried again every round: without it, a room that failed at start-up would never
        get a subscription. One refused for good (`given_up`) is not, until a restart. A round
        that fails as a whole (the database away) is waited out with a back-off.
        """
        async with beating(self._heartbeat):
            await self._run(stop, list(rooms), interval_s)

    async def _run(self, stop: asyncio.Event, rooms: list[str], interval_s: float) -> None:
        backoff = Backoff()
        while not stop.is_set() and not await survive(
            lambda: self.subscribe_rooms(rooms), "EWS subscriptions", backoff, stop
        ):
            pass
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                await survive(lambda: self._maintain(rooms), "EWS subscriptions", backoff, stop)

    async def _maintain(self, rooms: list[str]) -> Outcome:
        await self.replace_dead()
        return await self.subscribe_missing([r for r in rooms if r not in self.given_up])

    async def _replace(self, old: LiveSubscription, now: datetime, outcome: Outcome) -> None:
        reason = (
            f"broken ({old.last_error or 'no reason given'})"
            if old.state == "broken"
            else f"silent since {old.last_event_at:%Y-%m-%dT%H:%M:%SZ}"
        )
        log.warning(
            "replacing subscription",
            extra={
                "mailbox": old.mailbox,
                "reason": reason,
                "subscription_id": old.subscription_id,
            },
        )
        fresh_enough = old.silent_since(now) < WATERMARK_LIFETIME
        await self._subscribe(
            old.mailbox,
            outcome,
            replaces=old.subscription_id,
            reason=reason,
            watermark=old.last_watermark if fresh_enough else None,
        )
        if old.mailbox in outcome.expired:
            reason += "; watermark expired"
        await self._subscriptions.request_resync(old.mailbox, f"subscription replaced: {reason}")

    async def _subscribe(
        self,
        mailbox: str,
        outcome: Outcome,
        *,
        watermark: str | None = None,
        replaces: str | None = None,
        reason: str | None = None,
    ) -> bool:
        try:
            subscription = await self._call_subscribe(mailbox, watermark)
        except SubscriptionRefused as exc:
            if exc.code != "ErrorInvalidWatermark" or watermark is None:
                return await self._failed(mailbox, exc, outcome)
            # Events since the watermark are gone: subscribe afresh; the caller asks for the
            # resync once the new subscription is recorded (earlier, changes could slip between).
            log.warning("watermark expired, subscribing afresh", extra={"mailbox": mailbox})
            outcome.expired.append(mailbox)
            return await self._subscribe(mailbox, outcome, replaces=replaces, reason=reason)
        except ExchangeError as exc:
            return await self._failed(mailbox, exc, outcome)
        await self._subscriptions.record(
            mailbox,
            subscription.subscription_id,
            protocol="ews",
            watermark=subscription.watermark,
            status_frequency=self._status_frequency,
            now=self._clock(),
            replaces=replaces,
            reason=reason,
        )
        outcome.subscribed.append(mailbox)
        return True

    async def _call_subscribe(self, mailbox: str, watermark: str | None) -> Subscription:
        wait = 0.0
        for _ in range(MAX_THROTTLED_TRIES):
            async with self._slots:
                try:
                    return await self._client.subscribe(
                        mailbox,
                        self._callback_url,
                        status_frequency=self._status_frequency,
                        watermark=watermark,
                    )
                except Throttled as exc:
                    wait = self._back_off.defer(mailbox, exc.retry_after)
                    if exc.retry_after > SHORT_WAIT:  # kept for later rounds, not slept through
                        raise
            log.info("throttled, backing off", extra={"mailbox": mailbox, "seconds": wait})
            await asyncio.sleep(wait)
        raise Throttled(f"{mailbox}: still throttled after {MAX_THROTTLED_TRIES} tries", wait)

    def _held(self, mailbox: str) -> bool:
        """Inside a back-off longer than is waited out in a call."""
        return self._back_off.remaining(mailbox) > SHORT_WAIT

    async def _failed(self, mailbox: str, exc: ExchangeError, outcome: Outcome) -> bool:
        log.error("subscribe failed", extra={"mailbox": mailbox, "error": str(exc)})
        if not retryable(exc):  # refused, or credentials refused: an operator must act
            self.given_up[mailbox] = str(exc)
        outcome.failed[mailbox] = str(exc)
        await self._subscriptions.room_error(mailbox, f"subscribe: {exc}", self._clock())
        return False
