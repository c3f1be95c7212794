"""What the error tree (`errors.py`) means for a caller that may try again.

- `Throttled` carries the server's own back-off: it is waited out, a bounded number of times.
- A long-running loop (the worker, the subscription managers) runs each round through
  `survive`: an error that may pass (a storage outage, Exchange away) is logged and waited out
  with a doubling back-off, and the loop goes on; one that will not pass propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
