"""EWSMaxConcurrency, shared by the pushsync processes of one account.

Exchange counts the EWS requests one account has in flight, across all its connections
(EWSMaxConcurrency, 27 in Exchange Online), and answers the surplus ErrorExceededConnectionCount.
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange
Two worker processes that each kept 27 calls in flight would exceed it together. So each process
takes an even share, the limit divided by the live EWS processes the process table knows
(`store/processes.py`; a process running the manager and the worker counts once), counted again
every second. A process that starts holds its calls until the table shows its own row and a
second count after it: by then every process already running has counted it too, so two
processes started together never keep the whole limit each (the surplus would be refused,
ErrorExceededConnectionCount, and taken as a back-off: `client.CONNECTION_COUNT_BACK_OFF_S`).
A process gone without a word keeps its share until its row is stale (`process_dead_after`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class CallLimit:
    """At most `share` calls at once; `share` is `limit` split among `processes`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.share = limit
        self._in_flight = 0
        self._changed = asyncio.Condition()

    async def hold(self) -> None:
        """No new call until the next `split` (calls in flight finish)."""
        self.share = 0

    async def split(self, processes: int) -> None:
        """This process is one of `processes` on the account (at least itself)."""
        share = max(1, self._limit // max(1, processes))
        if share == self.share:
            return
        async with self._changed:
            self.share = share
            self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight < self.share)
            self._in_flight += 1
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight -= 1
                self._changed.notify()
