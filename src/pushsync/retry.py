"""What the error tree means for a caller that may try again (`errors.py` draws the tree).

`Throttled` carries the server's own back-off: it is waited out, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pushsync.errors import Throttled

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_THROTTLED_TRIES = 8


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
