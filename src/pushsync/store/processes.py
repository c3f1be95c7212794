"""Which pushsync processes live: each receiver, worker and subscription manager beats a row of
`process_heartbeat` on a timer, and anyone reading the table can tell a live process from one
that is gone.

A process registers a row per protocol it serves (a receiver: one row, protocol None), then
updates its `last_beat` every few seconds, one UPDATE by primary key. A clean exit sets
`stopped_at`; a killed or hung process simply stops beating, and its row goes stale: it is down
since its last beat. A restarted process gets a new row, which supersedes the old one of its
kind, protocol and host; rows of processes down for long are deleted (`forget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pushsync.errors import PushsyncError
from pushsync.model.clock import utcnow
from pushsync.store.connector import Connector, Row

log = logging.getLogger(__name__)

Kind = Literal["receiver", "worker", "manager"]


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    kind: str
    protocol: str | None
    host: str
    pid: int
    started_at: datetime
    last_beat: datetime
    stopped_at: datetime | None
    alive: bool
    down_since: datetime | None  # None while alive: its clean exit, or its last beat

    @property
    def name(self) -> str:
        """E.g. "worker (ews) pid 4242 on rooms-1"."""
        protocol = f" ({self.protocol})" if self.protocol else ""
        return f"{self.kind}{protocol} pid {self.pid} on {self.host}"

    def as_json(self) -> dict[str, Any]:
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in ((n, getattr(self, n)) for n in self.__slots__)
        }


class ProcessHeartbeats:
    """The `process_heartbeat` table."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def register(
        self, kind: Kind, protocol: str | None, now: datetime, *, host: str | None = None
    ) -> int:
        """A new row for this process (its host, from the OS unless given, and its pid);
        returns its id."""
        params = {
            "kind": kind,
            "protocol": protocol,
            "host": host or socket.gethostname(),
            "pid": os.getpid(),
            "now": now,
        }
        async with self._connector.session() as session:
            row = await session.fetch_one("process_register", params)
        assert row is not None  # an INSERT … RETURNING returns its row
        return int(row["id"])

    async def beat(self, process_id: int, now: datetime) -> bool:
        """False if the row is gone (forgotten while this process hung) or marked stopped."""
        async with self._connector.session() as session:
            return await session.execute("process_beat", {"id": process_id, "now": now}) == 1

    async def stopped(self, process_id: int, now: datetime) -> None:
        async with self._connector.session() as session:
            await session.execute("process_stopped", {"id": process_id, "now": now})

    async def forget(self, before: datetime) -> int:
        """Delete the rows of processes whose last beat is older than `before`."""
        async with self._connector.session() as session:
            return await session.execute("process_forget", {"before": before})

    async def room_protocols(self) -> set[str]:
        """The protocols of the rooms the room table holds: each needs a worker."""
        async with self._connector.session() as session:
            return {str(row["protocol"]) for row in await session.fetch_all("room_protocols")}

    async def sharing(
        self, protocol: str, now: datetime, dead_after: timedelta
    ) -> set[tuple[str, int]]:
        """The live processes (host, pid) that call `protocol`'s servers: its workers and
        managers, a process running both once."""
        return {
            (s.host, s.pid)
            for s in await self.statuses(now, dead_after)
            if s.alive and s.protocol == protocol and s.kind in ("worker", "manager")
        }

    async def statuses(self, now: datetime, dead_after: timedelta) -> list[ProcessStatus]:
        """Every process the table knows, alive or not, but for those superseded: a process
        down whose kind, protocol and host saw another start after its last beat (its
        restart). Ordered by kind, protocol, host, start."""
        async with self._connector.session() as session:
            rows = await session.fetch_all("process_rows")
        statuses = [_status(row, now, dead_after) for row in rows]
        return [s for s in statuses if not _superseded(s, statuses)]


def this_process() -> tuple[str, int]:
    """(host, pid) as `register` records them by default."""
    return socket.gethostname(), os.getpid()


def _status(row: Row, now: datetime, dead_after: timedelta) -> ProcessStatus:
    stopped, last = row["stopped_at"], row["last_beat"]
    alive = stopped is None and now - last < dead_after
    return ProcessStatus(
        kind=row["kind"],
        protocol=row["protocol"],
        host=row["host"],
        pid=int(row["pid"]),
        started_at=row["started_at"],
        last_beat=last,
        stopped_at=stopped,
        alive=alive,
        down_since=None if alive else (stopped or last),
    )


def _superseded(status: ProcessStatus, statuses: Sequence[ProcessStatus]) -> bool:
    if status.alive:
        return False
    return any(
        (other.kind, other.protocol, other.host) == (status.kind, status.protocol, status.host)
        and other.started_at > status.last_beat
        for other in statuses
    )


class Heartbeat:
    """One process's rows (one per protocol it serves), beaten every `every` while the block
    of `beating()` runs and marked stopped when it ends. A beat that fails (the database away)
    is logged and tried again at the next; it never stops the process it reports on."""

    def __init__(
        self,
        heartbeats: ProcessHeartbeats,
        kind: Kind,
        protocols: Iterable[str | None],
        *,
        every: timedelta,
        forget_after: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._heartbeats = heartbeats
        self._kind: Kind = kind
        self._ids: dict[str | None, int | None] = dict.fromkeys(protocols)
        self._every = every.total_seconds()
        self._forget_after = forget_after
        self._clock = clock

    @contextlib.asynccontextmanager
    async def beating(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._beat_forever(), name=f"heartbeat-{self._kind}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._stop()

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.beat()
            except PushsyncError as exc:
                log.warning(
                    "heartbeat not recorded", extra={"process": self._kind, "error": str(exc)}
                )
            await asyncio.sleep(self._every)

    async def beat(self) -> None:
        """Note once that the process lives (registering its rows at the first beat, and again
        if a row was forgotten meanwhile)."""
        now = self._clock()
        for protocol, process_id in self._ids.items():
            if process_id is None or not await self._heartbeats.beat(process_id, now):
                if process_id is None:
                    await self._heartbeats.forget(now - self._forget_after)
                self._ids[protocol] = await self._heartbeats.register(self._kind, protocol, now)

    async def _stop(self) -> None:
        now = self._clock()
        for process_id in self._ids.values():
            if process_id is None:
                continue
            try:
                await self._heartbeats.stopped(process_id, now)
            except PushsyncError as exc:  # it goes stale instead: down since its last beat
                log.warning("heartbeat: stop not recorded", extra={"error": str(exc)})


def beating(heartbeat: Heartbeat | None) -> contextlib.AbstractAsyncContextManager[None]:
    """`heartbeat.beating()`, or nothing for a loop run without one (tests, one-off commands)."""
    return heartbeat.beating() if heartbeat is not None else contextlib.nullcontext()
