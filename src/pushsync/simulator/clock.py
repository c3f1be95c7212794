"""The simulated clock: Exchange time that runs `scale` times faster than the wall clock.

Retries after 30 s, StatusFrequency minutes and booking delays are Exchange-time facts; with a
scale of 600 a test lives through ten Exchange minutes in one real second. Every component of the
simulator reads time from one `SimClock` and sleeps through it, so nothing mixes the two scales.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

# A Monday a week before the US daylight-saving change (8 March 2026) and four weeks before the
# EU one (29 March): daily series booked at the start cross both.
DEFAULT_EPOCH = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


class SimClock:
    """Simulated time = epoch + (real seconds elapsed) * scale, plus any manual advance."""

    def __init__(self, *, epoch: datetime = DEFAULT_EPOCH, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("the time scale must be positive")
        if epoch.tzinfo is None:
            raise ValueError("the epoch must be timezone-aware")
        self.epoch = epoch.astimezone(UTC)
        self.scale = scale
        self._started = time.monotonic()
        self._advanced = 0.0

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._started) * self.scale + self._advanced
        return self.epoch + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        """Jump forward in Exchange time (for tests of the calendar model)."""
        self._advanced += seconds

    def real_seconds(self, seconds: float) -> float:
        return max(seconds, 0.0) / self.scale

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of Exchange time."""
        await asyncio.sleep(self.real_seconds(seconds))
