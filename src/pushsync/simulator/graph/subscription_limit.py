"""Graph's subscription write limit, as the simulator enforces it: 500 writes (create, renew,
delete) per 20 seconds per app and tenant.

https://learn.microsoft.com/graph/throttling-limits#subscription-service-limits
https://learn.microsoft.com/graph/throttling

Microsoft documents the figure and that a throttled request is answered 429 with a Retry-After
to honour; not how the window slides, what the 429 says, or whether refused requests count. The
simulator's guesses (docs/simulator.md): a sliding window in real seconds, the strictest
reading; every write counts in it, refused ones too ("all requests accrue against your usage
limits", Graph's throttling guidance); a write that finds `limit` writes in the last `window`
seconds is refused with Retry-After until the oldest leaves it, worded as the subscription
service's own 429s are reported ("Too many requests from Identifier: … under category:
throttle.aad.ags.subscriptionservice…"). Every such refusal is a `violation` a test can read.

`storm()` makes the next writes fail as if the tenant's limit were reached whatever the rate
(another installation of the same app, Graph lowering the limit), and `early_writes()` counts
writes that came while a Retry-After the simulator gave was still running.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pushsync.simulator.graph.webhooks import APPLICATION_ID, TENANT_ID

LIMIT = 500
WINDOW = 20.0  # seconds
CODE = "TooManyRequests"
MESSAGE = (
    f"Too many requests from Identifier:{TENANT_ID}+{APPLICATION_ID} under category:"
    "throttle.aad.ags.subscriptionservice.dc.write. Please try again later."
)


@dataclass(frozen=True, slots=True)
class Write:
    at: float  # monotonic seconds when it arrived
    refused_for: float  # the Retry-After it was answered, 0 if it went through


class SubscriptionWriteLimit:
    def __init__(
        self,
        limit: int = LIMIT,
        window: float = WINDOW,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._monotonic = monotonic
        self._recent: deque[float] = deque()  # arrival times within the window
        self.writes: list[Write] = []  # every write, for a test to read
        self.violations = 0  # writes that found the window full
        self._storm = 0  # writes still to refuse whatever the rate
        self._storm_retry_after = 1

    def storm(self, writes: int, retry_after: int = 1) -> None:
        """Refuse the next `writes` writes 429 with this Retry-After, whatever the rate."""
        self._storm, self._storm_retry_after = writes, retry_after

    def admit(self) -> int | None:
        """Count one write; None if it may go through, else the Retry-After (seconds)."""
        now = self._monotonic()
        while self._recent and self._recent[0] <= now - self.window:
            self._recent.popleft()
        retry_after = None
        if len(self._recent) >= self.limit:
            self.violations += 1
            retry_after = max(1, math.ceil(self._recent[0] + self.window - now))
        elif self._storm > 0:
            self._storm -= 1
            retry_after = self._storm_retry_after
        self._recent.append(now)
        self.writes.append(Write(now, retry_after or 0))
        return retry_after

    def most_in_any_window(self, since: int = 0) -> int:
        """The most writes any `window` seconds held (refused ones included), of the writes
        from the `since`-th on."""
        return most_in_window([w.at for w in self.writes[since:]], self.window)

    def early_writes(self, grace: float = 0.5) -> int:
        """Writes that arrived more than `grace` seconds after a 429 and before its Retry-After
        ended: the client did not wait. (Within `grace`, a write may have been on its way
        before the client could read the 429.)"""
        refusals = [(w.at, w.at + w.refused_for) for w in self.writes if w.refused_for]
        return sum(
            1 for w in self.writes if any(start + grace < w.at < end for start, end in refusals)
        )


def most_in_window(times: list[float], window: float) -> int:
    """The most of these moments (in order) any `window` seconds holds."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - window:
            first += 1
        most = max(most, last - first + 1)
    return most
