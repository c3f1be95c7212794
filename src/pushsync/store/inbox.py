"""The inbox: appending notification rows to the notification table, with group commit.

Every request hands its rows to `Inbox.append` and waits. One writer task takes everything that
is waiting, writes it in a single transaction and wakes the requests only after COMMIT has
returned, so a request is acknowledged only once its rows are durable, and concurrent requests
share one disk flush. While one commit is in flight the next batch gathers by itself; there is
no timer to tune.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pushsync.errors import RowRejected, StorageError, StorageUnavailable
from pushsync.model.notification import Notification, UnknownSubscriptions
from pushsync.store.connector import Connector, Session

log = logging.getLogger(__name__)


class Verdict(Enum):
    STORED = "stored"  # rows durable (or already there): answer OK
    UNSUBSCRIBE = "unsubscribe"  # every subscription in the request is retired: answer Unsubscribe


class _Pending:
    __slots__ = ("done", "received_at", "rows")

    def __init__(
        self, rows: list[Notification], received_at: datetime, done: asyncio.Future[Verdict]
    ) -> None:
        self.rows = rows
        self.received_at = received_at
        self.done = done


class Inbox:
    """Appends rows durably; one instance per process, started in the app's lifespan."""

    def __init__(
        self,
        connector: Connector,
        *,
        unknown_subscriptions: UnknownSubscriptions = UnknownSubscriptions.ACCEPT,
        max_batch_rows: int = 2000,
    ) -> None:
        self._connector = connector
        self._unknown = unknown_subscriptions
        self._max_batch_rows = max_batch_rows
        self._waiting: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the writer's, where requests wait
        self.commits = 0  # transactions written, for metrics and the group-commit test
        self.requests_committed = 0  # requests / commits = how far group commit shares a flush

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = self._loop.create_task(self._write_forever(), name="inbox-writer")

    async def stop(self) -> None:
        if self.commits:
            log.info(
                "inbox stopped",
                extra={
                    "commits": self.commits,
                    "requests": self.requests_committed,
                    "requests_per_commit": round(self.requests_committed / self.commits, 1),
                },
            )
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        _fail(self._waiting, StorageUnavailable("the inbox is shutting down"))
        self._waiting.clear()

    async def append(self, rows: list[Notification], received_at: datetime) -> Verdict:
        """Store one request's rows; returns once they are committed. Raises StorageError."""
        if self._writer is None or self._loop is None:
            raise StorageUnavailable("the inbox is not running")
        pending = _Pending(rows, received_at, self._loop.create_future())
        self._waiting.append(pending)
        self._wakeup.set()
        # No shield: if the request goes away its rows are still written, and the writer skips
        # futures that are already done (shielding cost a second future per request).
        return await pending.done

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                batch = self._take_batch()
                try:
                    await self._commit(batch, top_up=True)
                except asyncio.CancelledError:  # stopped mid-batch or mid-retry: 503, not silence
                    _fail(batch, StorageUnavailable("the inbox is shutting down"))
                    raise

    def _take_batch(self, rows: int = 0) -> list[_Pending]:
        """The oldest waiting requests, up to the row budget (`rows` of it already used)."""
        taken = 0
        for pending in self._waiting:
            if (taken or rows) and rows + len(pending.rows) > self._max_batch_rows:
                break
            taken += 1
            rows += len(pending.rows)
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    async def _commit(self, batch: list[_Pending], *, top_up: bool = False) -> bool:
        """Write `batch` and answer each of its requests; False if the storage is down.

        Only a down database fails a whole batch (503 for all: every request would fail alike).
        Whatever else goes wrong, a refused row, a value an engine cannot take or a bug, may
        be one request's doing: the batch is written again request by request, so only the
        request that cannot be stored is refused (RowRejected, 400)."""
        try:
            verdicts = await self._write(batch, top_up=top_up)
        except StorageUnavailable as exc:
            log.error("storage unavailable, %d requests answered 503: %s", len(batch), exc)
            _fail(batch, exc)
            return False
        except Exception as exc:  # never leave a request hanging, whatever went wrong
            if len(batch) > 1:
                log.warning(
                    "batch failed (%r); retrying its %d requests one by one", exc, len(batch)
                )
                return await self._commit_each(batch)
            _fail(batch, _unstorable(exc))
            return True
        self.commits += 1
        self.requests_committed += len(batch)
        for pending, verdict in zip(batch, verdicts, strict=True):
            if not pending.done.done():
                pending.done.set_result(verdict)
        return True

    async def _commit_each(self, batch: list[_Pending]) -> bool:
        for index, pending in enumerate(batch):
            if not await self._commit([pending]):
                # Down while retrying: the rest would wait out the same failure one by one.
                _fail(batch[index + 1 :], StorageUnavailable("storage failed during the retry"))
                return False
        return True

    async def _write(self, batch: list[_Pending], *, top_up: bool) -> list[Verdict]:
        """`batch` in one transaction; with `top_up`, also the requests that arrived while the
        transaction waited to begin (SQLite: for the other receiver's writer lock), which would
        otherwise wait for the next commit and its own turn at the lock (docs/benchmarks.md,
        fifth round). The batch grows in place, so a failure answers all of it."""

        async def work(session: Session) -> list[Verdict]:
            if top_up and self._waiting:
                batch.extend(self._take_batch(sum(len(p.rows) for p in batch)))
            return await self._write_batch(session, batch)

        return await self._connector.transaction(work)

    async def _write_batch(self, session: Session, batch: list[_Pending]) -> list[Verdict]:
        ids = {row.subscription_id for pending in batch for row in pending.rows}
        states = await self._subscription_states(session, ids)
        # Decided once per subscription of the batch, not per row; usually none is refused.
        refused = {sid for sid in ids if not self._accepts(states.get(sid))}
        params: list[list[Any]] = []
        verdicts = []
        for pending in batch:
            keep = pending.rows
            if refused:
                keep = [row for row in keep if row.subscription_id not in refused]
            verdicts.append(Verdict.STORED if keep else Verdict.UNSUBSCRIBE)
            received_at = utc_text(pending.received_at)
            params.extend(insert_values(row, received_at) for row in keep)
        if params:
            await session.execute_many("insert_notification", params)
        return verdicts

    async def _subscription_states(self, session: Session, ids: set[str]) -> dict[str, str]:
        found = await session.fetch_all("subscription_states", {"subscription_ids": sorted(ids)})
        return {row["subscription_id"]: row["state"] for row in found}

    def _accepts(self, state: str | None) -> bool:
        if state is None:
            return self._unknown is UnknownSubscriptions.ACCEPT
        return state != "retired"


INSERT_COLUMNS: tuple[str, ...] = ("received_at", *Notification._fields, "event_key")
"""The columns of `insert_notification`, in its order (both dialects; a test holds the SQL to
it). Positional, because binding a dozen parameters by name is a cost on every request."""


def insert_values(row: Notification, received_at: str) -> list[Any]:
    """The positional parameters of `insert_notification`, in `INSERT_COLUMNS` order. Times go
    as ISO-8601 UTC text, which both engines take for a timestamp, so that no adapter runs."""
    values: list[Any] = [received_at, *row, row.event_key()]
    event_time = values[_EVENT_TIME_VALUE]
    if event_time is not None:
        values[_EVENT_TIME_VALUE] = utc_text(event_time)
    return values


_EVENT_TIME_VALUE = INSERT_COLUMNS.index("event_time")


def utc_text(value: datetime) -> str:
    """The same text SQLite's datetime adapter stores (pushsync.store.sqlite)."""
    if value.tzinfo is UTC:  # the usual case: parsed with a Z, or datetime.now(UTC)
        return value.isoformat()
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; use UTC")
    return value.astimezone(UTC).isoformat()


def _unstorable(exc: Exception) -> RowRejected:
    """What a request alone answers when its rows failed and the storage is up: the rows cannot
    be stored. A failure that is not the database refusing data is logged in full (a bug)."""
    if isinstance(exc, RowRejected):
        log.warning("request refused by the storage: %s", exc)
        return exc
    if not isinstance(exc, StorageError):
        log.error("a request's rows could not be written", exc_info=exc)
    else:
        log.warning("request refused by the storage: %s", exc)
    rejected = RowRejected(f"the rows cannot be stored: {exc}")
    rejected.__cause__ = exc
    return rejected


def _fail(batch: list[_Pending], exc: StorageError) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(exc)
