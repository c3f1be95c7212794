"""The worker's minute samples for the status page's charts (`store/fleet_samples.py`).

Every `every` seconds (at most a minute) the sampler adds to this process's row of the current
minute what happened since its last turn: the notification rows that arrived (a range of the
table's ids), the rows the worker worked off and their lag, the calls to Exchange and Graph
(managers included), the back-offs servers asked for, and how many rooms are out of sync now.
It also notes since when each room has been out of sync, and deletes samples older than
`RETENTION`. A worker that is down writes nothing: the charts show the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from pushsync.admin.room_status import room_statuses_on_a_thread
from pushsync.errors import StorageError
from pushsync.model.clock import utcnow
from pushsync.store import Connector
from pushsync.store.fleet_samples import RETENTION, FleetSamples, Sample
from pushsync.worker.loop import Worker

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(hours=1)


def percentile(ordered: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values (None for none)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(round(share * len(ordered), 9)))  # 0.99 * 100 is 99.000…01
    return ordered[min(rank, len(ordered)) - 1]


class FleetSampler:
    def __init__(
        self,
        connector: Connector,
        worker: Worker,
        calls: Callable[[], int],
        *,
        process: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._connector = connector
        self._samples = FleetSamples(connector)
        self._worker = worker
        self._calls = calls  # requests sent so far by every client of the process
        self.process = process or f"{socket.gethostname()}:{os.getpid()}"
        self._clock = clock
        self._seen_id: int | None = None  # the highest notification id counted
        self._worked = worker.stats.notifications
        self._lags = len(worker.stats.lag_seconds)
        self._throttled = worker.stats.throttled
        self._sent = calls()
        self._purged_at: datetime | None = None

    async def run(self, stop: asyncio.Event, every: float) -> None:
        """Sample until `stop`; a database away skips turns (the charts show the gap)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            try:
                await self.sample()
            except StorageError as exc:
                log.warning("status sample not written", extra={"error": str(exc)})

    async def sample(self) -> Sample:
        """Add what happened since the last turn to this minute's row; returns what was added."""
        now = self._clock()
        if self._seen_id is None:  # rows from before this process started are not counted
            self._seen_id = await self._samples.newest_notification()
        arrived, self._seen_id = await self._samples.arrived_after(self._seen_id)
        stats = self._worker.stats
        lags = sorted(stats.lag_seconds[self._lags :])
        calls = self._calls()
        sample = Sample(
            minute_at=now.replace(second=0, microsecond=0),
            process=self.process,
            received=arrived,
            worked=stats.notifications - self._worked,
            lag_p50_seconds=percentile(lags, 0.50),
            lag_p99_seconds=percentile(lags, 0.99),
            rooms_out_of_sync=await self._note_rooms(now),
            calls=calls - self._sent,
            throttled=stats.throttled - self._throttled,
        )
        await self._samples.add(sample)
        self._worked, self._lags = stats.notifications, len(stats.lag_seconds)
        self._throttled, self._sent = stats.throttled, calls
        if self._purged_at is None or now - self._purged_at >= PURGE_EVERY:
            await self._samples.purge(now - RETENTION)
            self._purged_at = now
        return sample

    async def _note_rooms(self, now: datetime) -> int:
        """Count the rooms out of sync, and note which began or ended being so. Judged from the
        rows alone: this worker is alive, and the page judges the other processes itself."""
        statuses = await room_statuses_on_a_thread(self._connector, now)
        noted = await self._samples.out_of_sync()
        troubled = {s.mailbox: s.kind or "" for s in statuses if s.problem}
        begun = [(m, kind) for m, kind in troubled.items() if noted.get(m, (None, ""))[1] != kind]
        ended = [m for m in noted if m not in troubled]
        await self._samples.note_out_of_sync(begun, ended, now)
        return len(troubled)
