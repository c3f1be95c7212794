"""What the error tree (`errors.py`) means for a caller that may try again.

- `Throttled` carries the server's own back-off: it is waited out, a bounded number of times.
- A long-running loop (the worker, the subscription managers) runs each round through
  `survive`: an error that may pass (a storage outage, Exchange away) is logged and waited out
  with a doubling back-off, and the loop goes on; one that will not pass propagates.

Retry-After holds (`RetryAfterHolds`):
How long to leave one mailbox, or the whole app, alone after a server said Retry-After.

A Retry-After holds for what it was answered for: Outlook's limits are per app and mailbox
(https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits), Graph's
subscription write limit per app and tenant. So a subscription manager keeps one back-off per
mailbox and one for the app (`APP`), and never lets one mailbox's hold up the other rooms.

No back-off lasts longer than `bound`: Graph answers a mailbox that holds 1,000 subscriptions
429 with a Retry-After in the year 9999. Such a room is not throttled but needs an admin; it is
tried again once `bound` has passed, and meanwhile shows its problem (docs/graph.md).
Times are the process's monotonic clock: Retry-After counts real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pushsync.errors import ExchangeError, PushsyncError, RowRejected, StorageError, Throttled

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_THROTTLED_TRIES = 8


def retryable(exc: BaseException) -> bool:
    """A database that failed may come back, but not accept a row it refused; an Exchange or
    Graph error says itself whether trying again can help. Anything else is a bug."""
    if isinstance(exc, RowRejected):
        return False
    if isinstance(exc, StorageError):
        return True
    return isinstance(exc, ExchangeError) and exc.retryable


@dataclass
class Backoff:
    """Waits that double from `first` up to `cap`; a success starts them over."""

    first: float = 1.0
    cap: float = 60.0
    _wait: float = 0.0

    def next(self) -> float:
        self._wait = min(self.cap, self._wait * 2 if self._wait else self.first)
        return self._wait

    def reset(self) -> None:
        self._wait = 0.0


async def survive(
    step: Callable[[], Awaitable[T]], what: str, backoff: Backoff, stop: asyncio.Event
) -> T | None:
    """One round of a long-running loop. A retryable error is logged and waited out (or until
    `stop`), and None returned; any other error propagates: no later round would fare better."""
    try:
        result = await step()
    except PushsyncError as exc:
        if not retryable(exc):
            raise
        wait = backoff.next()
        log.warning(
            "round failed, backing off",
            extra={"loop": what, "error": f"{type(exc).__name__}: {exc}", "seconds": wait},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        return None
    backoff.reset()
    return result


async def waiting_out_throttling(
    call: Callable[[], Awaitable[T]], what: str, tries: int = MAX_THROTTLED_TRIES
) -> T:
    """`call()`, again after each Throttled's back-off; Throttled once `tries` are spent."""
    wait = 0.0
    for _ in range(tries):
        try:
            return await call()
        except Throttled as exc:
            wait = exc.retry_after
        log.info("throttled, backing off", extra={"call": what, "seconds": wait})
        await asyncio.sleep(wait)
    raise Throttled(f"{what}: still throttled after {tries} tries", wait)


APP = ""  # the key of the app-wide back-off (no mailbox is named "")


def bounded(retry_after: float, bound: float) -> float:
    """Retry-After in seconds, at least 0 and at most `bound` (NaN counts as 0)."""
    if math.isnan(retry_after):
        return 0.0
    return min(max(retry_after, 0.0), bound)


class RetryAfterHolds:
    """How long to leave one mailbox, or the whole app, alone after a Retry-After."""

    def __init__(self, bound: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.bound = bound  # seconds
        self._monotonic = monotonic
        self._until: dict[str, float] = {}

    def defer(self, key: str, retry_after: float) -> float:
        """Leave `key` alone for Retry-After seconds, at most `bound`; returns the wait."""
        wait = bounded(retry_after, self.bound)
        until = self._monotonic() + wait
        self._until[key.lower()] = max(until, self._until.get(key.lower(), until))
        return wait

    def remaining(self, key: str) -> float:
        """Seconds `key` is still to be left alone; 0 once its back-off is over."""
        until = self._until.get(key.lower())
        if until is None:
            return 0.0
        left = until - self._monotonic()
        if left <= 0:
            del self._until[key.lower()]
            return 0.0
        return left

    def held(self, mailbox: str | None) -> float:
        """Seconds before a call about `mailbox` (None: about none) may go out."""
        app = self.remaining(APP)
        return app if mailbox is None else max(app, self.remaining(mailbox))


async def in_turn(items: list[T], work: Callable[[T], Awaitable[None]], at_once: int) -> None:
    """`work` on every item in order, at most `at_once` under way: that many coroutines pull
    from one list, rather than a task per item (a 50,000-room creation round held 50,000 tasks
    waiting for a slot, some 100 MB, and as many database sessions asked for at once).

    A failure ends the round as a whole, cleanly: no lane takes another item, the items under
    way finish, and the first error is raised. Before, the other lanes went on after the round
    had failed, while `survive` began the next one: both subscribed the rooms still without a
    subscription, and 7,000 of 50,000 rooms got two (bench/fleet, a pool timeout mid-round)."""
    pending = iter(items)
    failed: list[Exception] = []

    async def lane() -> None:
        for item in pending:
            if failed:
                return
            try:
                await work(item)
            except Exception as exc:  # the round's error: raised once every lane has stopped
                failed.append(exc)
                return

    await asyncio.gather(*(lane() for _ in range(min(at_once, len(items)))))
    if failed:
        raise failed[0]
