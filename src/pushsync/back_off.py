"""How long to leave one mailbox, or the whole app, alone after a server said Retry-After.

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

import math
import time
from collections.abc import Callable

APP = ""  # the key of the app-wide back-off (no mailbox is named "")


def bounded(retry_after: float, bound: float) -> float:
    """Retry-After in seconds, at least 0 and at most `bound` (NaN counts as 0)."""
    if math.isnan(retry_after):
        return 0.0
    return min(max(retry_after, 0.0), bound)


class BackOff:
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
