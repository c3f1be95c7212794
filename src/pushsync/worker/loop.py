"""The sync worker: notification rows in, correct reservations out, with few calls to Exchange.

Each round claims a batch of rows (with a lease), lets a burst settle for `debounce`, then
works mailbox by mailbox: heartbeats and error notifications update the subscription record,
every item named in the burst is fetched once, an event of the calendar folder itself (which
names no item: Exchange may notify a change that way alone) brings in everything changed since
the room's cursor (EWS: `ews/folder_sync.py`), and the pure `reservation.plan` decides the
writes. What a row means is its protocol's adapter's to say (`adapter.py`).
Throttling pauses that mailbox: its rows (and any that arrive meanwhile) are released until
the server's back-off has passed, and no call goes to it before then, from any worker process
(the pause is kept in `room.paused_until`, which each batch reads). A token authority that
cannot be reached (`TokenUnavailable`) is the installation's outage, not the rows' fault: no
call of that protocol is made until a growing back-off has passed, its rows are released
uncounted and its resyncs wait, and each room it stopped shows "unreachable"; a room whose own
server does not answer (`ExchangeUnavailable`: refused, timed out, 5xx) waits the same way,
alone. Any other failure counts an attempt against the rows, which end `failed` after the last.
While a batch is worked on, its leases are extended (a heartbeat), so only a dead worker's rows
expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pushsync.errors import (
    ExchangeError,
    ExchangeUnavailable,
    RowRejected,
    StorageError,
    Throttled,
    TokenUnavailable,
)
from pushsync.model.clock import utcnow
from pushsync.model.reservation import Gone, Observation, plan
from pushsync.retry import Backoff, bounded, retryable, survive
from pushsync.store.notification_queue import Claimed, NotificationQueue
from pushsync.store.processes import Heartbeat, beating
from pushsync.store.reservation_book import KEEP, Cursor, Reservations
from pushsync.store.subscriptions import UNREACHABLE, Subscriptions
from pushsync.worker.adapter import CalendarSource, IncrementalSource, ProtocolAdapter

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    notifications: int = 0
    # received -> applied, per row that reports a change (heartbeats and error notifications
    # lead to no reservation, so they have no lag to report)
    lag_seconds: list[float] = field(default_factory=list)
    calls: int = 0  # requests to Exchange / Graph while working on notification rows
    resync_calls: int = 0  # requests spent on full resyncs
    resyncs: int = 0
    incremental_resyncs: int = 0  # of those, from a stored cursor
    folder_syncs: int = 0  # folder events caught up from the cursor (EWS: SyncFolderItems)
    failures: int = 0
    throttled: int = 0  # times a mailbox was paused by the server's back-off
    unavailable: int = 0  # times a protocol's token authority could not be reached

    @property
    def calls_per_notification(self) -> float:
        return self.calls / self.notifications if self.notifications else 0.0

    def record_lag(self, rows: Sequence[Claimed], applied_at: datetime) -> None:
        """`rows` are those that report a change, of `notifications` rows worked off."""
        self.lag_seconds += [(applied_at - c.received_at).total_seconds() for c in rows]


OUTAGE_FIRST_WAIT = timedelta(seconds=2)
OUTAGE_MAX_WAIT = timedelta(minutes=5)


class Outages:
    """Growing waits for what cannot be reached, by key (a protocol's token authority, or one
    mailbox's Exchange or Graph): twice as long after each failure, up to a cap, forgotten on
    the first success. A failure while a wait is on (calls that were in flight when it began)
    joins that wait rather than lengthen it."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._waits: dict[str, tuple[datetime, timedelta]] = {}  # key -> (until, wait)

    def until(self, key: str) -> datetime | None:
        found = self._waits.get(key)
        return found[0] if found and found[0] > self._clock() else None

    def failed(self, key: str) -> tuple[datetime, bool]:
        """The end of `key`'s wait, and whether this failure began a new one."""
        now, last = self._clock(), self._waits.get(key)
        if last is not None and last[0] > now:
            return last[0], False
        wait = min(last[1] * 2, OUTAGE_MAX_WAIT) if last else OUTAGE_FIRST_WAIT
        self._waits[key] = (now + wait, wait)
        return now + wait, True

    def over(self, key: str) -> None:
        self._waits.pop(key, None)


class Worker:
    def __init__(
        self,
        queue: NotificationQueue,
        reservations: Reservations,
        subscriptions: Subscriptions,
        adapters: Mapping[str, ProtocolAdapter],
        *,
        batch_size: int = 500,
        debounce: timedelta = timedelta(milliseconds=500),
        idle_sleep: float = 0.2,
        resync_every: timedelta | None = None,
        poll_every: timedelta = timedelta(minutes=5),
        resync_lease: timedelta = timedelta(minutes=10),
        resync_concurrency: int = 2,
        max_pause: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = utcnow,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._queue = queue
        self._liveness = heartbeat  # beaten while `run` runs: this worker lives
        self._reservations = reservations
        self._subscriptions = subscriptions
        self._adapters = dict(adapters)  # protocol -> its adapter
        self._sources: dict[str, CalendarSource] = {p: a.source for p, a in adapters.items()}
        self._batch_size = batch_size
        self._debounce = debounce
        self._idle_sleep = idle_sleep
        self._max_pause = max_pause  # a Retry-After of years would pause the room forever
        self._resync_every = resync_every
        self._poll_every = poll_every  # a room refused a subscription is read this often
        # polls are looked for a few times per interval, not every round (a write each time)
        self._poll_check = min(poll_every / 4, timedelta(seconds=15))
        self._next_poll_check = clock()
        self._resync_lease = resync_lease  # a read's longest time; also the wait after a failure
        # rooms read at once per round: at 50,000 rooms one at a time would take the first
        # sync hours; the client's pool (EWSMaxConcurrency) still bounds the calls
        self._resync_concurrency = resync_concurrency
        self._clock = clock
        self._paused: dict[str, datetime] = {}  # mailbox -> end of the server's back-off
        self._outages = Outages(clock)  # by protocol: its token authority is away
        self._unreachable = Outages(clock)  # by mailbox: its Exchange or Graph does not answer
        self.stats = WorkerStats()

    def paused_until(self, mailbox: str) -> datetime | None:
        """When a throttled mailbox may be called again (None: it is not paused)."""
        until = self._paused.get(mailbox)
        if until is not None and until <= self._clock():
            del self._paused[mailbox]
            return None
        return until

    def outage_until(self, protocol: str) -> datetime | None:
        """Until when no call of this protocol is made (its token authority is away)."""
        return self._outages.until(protocol)

    def _outage(self, protocol: str, exc: TokenUnavailable) -> datetime:
        """Note the authority failed again: wait twice as long as last time, up to a cap.
        Calls that were in flight when the outage began (other mailboxes of the same batch)
        fail too; they join the current wait rather than lengthen it."""
        until, new = self._outages.failed(protocol)
        if new:
            self.stats.unavailable += 1
            log.warning(
                "token authority unreachable, waiting",
                extra={"protocol": protocol, "until": until.isoformat(), "error": str(exc)},
            )
        return until

    def _sources_calls(self) -> int:
        return sum(source.calls for source in self._sources.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop`: the notifications waiting, then a few rooms resynced at once.
        A storage outage or an unreachable Exchange is waited out."""
        backoff = Backoff()
        async with beating(self._liveness):
            while not stop.is_set():
                worked = await survive(self._round, "sync worker", backoff, stop)
                if not worked:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self._idle_sleep)

    async def _round(self) -> int:
        worked = await self.run_once()
        # periodic reads only when no notification waits, so they never delay one
        limit = self._resync_concurrency
        worked += await self.resync_pending(limit=limit, periodic=not worked)
        return worked + await self.poll_pending(limit=2)

    async def run_once(self) -> int:
        """Claim, settle, apply; returns how many rows were handled."""
        claimed = await self._queue.claim(self._batch_size)
        if not claimed:
            return 0
        ids = [row.id for row in claimed]
        heartbeat = asyncio.create_task(self._heartbeat(ids))
        try:
            changes = [row for row in claimed if self._reports_change(row)]
            if changes and len(claimed) < self._batch_size and self._debounce:
                await asyncio.sleep(self._settle_seconds(changes))  # let the burst finish
                claimed += await self._queue.claim(self._batch_size - len(claimed))
                ids[:] = [row.id for row in claimed]
            await self._work(claimed)
        finally:
            heartbeat.cancel()
        return len(claimed)

    def _reports_change(self, row: Claimed) -> bool:
        adapter = self._adapters.get(row.protocol)
        return adapter is not None and adapter.reports_change(row.event_type)

    def _settle_seconds(self, rows: list[Claimed]) -> float:
        """How long until the newest row is `debounce` old: time it waited in the queue counts."""
        newest: datetime = max(row.received_at for row in rows)
        left = (self._debounce - (self._clock() - newest)).total_seconds()
        return min(max(left, 0.0), self._debounce.total_seconds())

    async def _work(self, claimed: list[Claimed]) -> None:
        await self._learn_pauses()
        await self._note_subscriptions(claimed)
        by_mailbox: dict[str | None, list[Claimed]] = defaultdict(list)
        for row in claimed:
            by_mailbox[row.mailbox].append(row)
        calls = self._sources_calls()
        try:
            await asyncio.gather(
                *(self._mailbox(mailbox, rows) for mailbox, rows in by_mailbox.items())
            )
        finally:
            self.stats.calls += self._sources_calls() - calls

    async def _heartbeat(self, ids: list[int]) -> None:
        """Keep our leases alive while the batch settles and is worked on (`ids` may grow)."""
        period = self._queue.policy.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self._queue.extend(ids)
            except StorageError as exc:  # the next beat may pass; the lease outlasts two more
                log.warning("lease not extended", extra={"error": str(exc)})

    async def resync_pending(self, limit: int, *, periodic: bool = True) -> int:
        """Resync rooms that asked for one, then rooms due for their periodic resync (a
        series' occurrences entering the window's far end are notified by nothing), `limit`
        per round, read at once. The periodic one reads the whole window unless the room's
        protocol says its cursor serves it (`ProtocolAdapter.periodic_reads_whole`). A room's
        first read waits for its subscription (`claim_resyncs`; docs/decisions.md, "Resyncs
        run at once")."""
        now = self._clock()
        every = self._resync_every if periodic else None
        reachable = [p for p in self._sources if self.outage_until(p) is None]
        if not reachable:
            return 0
        rooms = await self._subscriptions.claim_resyncs(
            limit,
            protocols=reachable,
            now=now,
            lease=self._resync_lease,
            synced_before=now - every if every else None,
        )
        return await _all_of(
            self.resync(
                room["mailbox"],
                room["protocol"],
                full=not room["due"] and self._reads_whole(room["protocol"]),
                generation=room["resync_generation"],
            )
            for room in rooms
        )

    def _reads_whole(self, protocol: str) -> bool:
        """Whether a periodic resync of this protocol's rooms reads the whole window."""
        adapter = self._adapters.get(protocol)
        return adapter is None or adapter.periodic_reads_whole

    async def poll_pending(self, limit: int) -> int:
        """Read the rooms that are polled (their protocol refused them a subscription: a
        hybrid tenant's on-premises mailbox, an access policy, Graph's cap) and whose last read
        is `poll_every` old, a few per round."""
        now = self._clock()
        reachable = [p for p in self._sources if self.outage_until(p) is None]
        if not reachable or now < self._next_poll_check:
            return 0
        self._next_poll_check = now + self._poll_check
        rooms = await self._subscriptions.claim_polls(
            limit,
            protocols=reachable,
            now=now,
            every=self._poll_every,
            lease=self._resync_lease,
        )
        if len(rooms) == limit:  # more may be due: look again next round
            self._next_poll_check = now
        done = 0
        for room in rooms:
            done += await self.poll(room["mailbox"], room["protocol"], room["resync_generation"])
        return done

    async def poll(self, mailbox: str, protocol: str, generation: int | None = None) -> int:
        """One poll of a room without a subscription: what changed since its last read. The
        one way a room is polled, so that how (today a resync, from the stored cursor where the
        source keeps one) can change in one place."""
        return await self.resync(mailbox, protocol, generation=generation)

    async def resync(
        self,
        mailbox: str,
        protocol: str = "ews",
        *,
        full: bool = False,
        generation: int | None = None,
    ) -> int:
        """Bring a room up to date: from its stored cursor when the source keeps one (unless
        `full`), else by reading the whole window. `generation`: the room's resync generation
        when it was claimed (read here when not given)."""
        source = self._sources.get(protocol)
        if source is None:
            log.warning("no source for this room", extra={"mailbox": mailbox, "protocol": protocol})
            return 0
        calls = source.calls
        try:
            if generation is None:
                generation = await self._subscriptions.resync_generation(mailbox)
            how = await self._resync(mailbox, source, full, generation)
        except Throttled as exc:
            await self._pause(mailbox, exc)  # the room keeps its resync request
            await self._subscriptions.release_resync(mailbox)
            return 0
        except TokenUnavailable as exc:  # claimed again once the outage's back-off is over
            self._outage(protocol, exc)
            await self._subscriptions.release_resync(mailbox)
            await self._subscriptions.room_error(mailbox, f"{UNREACHABLE}{exc}", self._clock())
            return 0
        except ExchangeError as exc:
            await self._subscriptions.room_error(mailbox, f"resync: {exc}", self._clock())
            return 0
        except StorageError:  # the database's fault, not the room's: claimable again at once
            with contextlib.suppress(StorageError):  # else its lease runs out
                await self._subscriptions.release_resync(mailbox)
            raise
        finally:
            self.stats.resync_calls += source.calls - calls
        self.stats.resyncs += 1
        self._outages.over(protocol)
        log.info("room resynced", extra={"mailbox": mailbox, "how": how})
        return 1

    async def _resync(
        self, mailbox: str, source: CalendarSource, full: bool, generation: int
    ) -> str:
        cursor = await self._subscriptions.sync_state(mailbox)
        if isinstance(source, IncrementalSource) and not full and cursor:
            changes = await source.observe_since(mailbox, cursor)
            if changes is not None:  # the cursor is written with the rows it moves past
                await self._reconcile(
                    mailbox, changes.observations, [], resynced=generation, cursor=changes.cursor
                )
                self.stats.incremental_resyncs += 1
                return "from cursor"
        snapshot = await source.observe_room(mailbox, cursor)
        await self._reservations.reconcile_room(
            mailbox,
            lambda stored: plan(stored, [snapshot]),
            self._clock(),
            resynced=generation,
            cursor=KEEP if snapshot.cursor is None else snapshot.cursor,
            calendar_folder_id=snapshot.calendar_folder_id,
        )
        return f"full, {len(snapshot.occurrences)} occurrences"

    async def _mailbox(self, mailbox: str | None, rows: list[Claimed]) -> None:
        if mailbox is None:  # subscription not recorded yet (its first StatusEvent races Subscribe)
            for row in rows:
                await self._queue.fail(row, "subscription not known (yet)")
            return
        paused = (
            self.paused_until(mailbox)
            or self._rows_outage(rows)
            or self._unreachable.until(mailbox)
        )
        if paused is not None:  # rows that arrived while the mailbox waits out its back-off
            await self._queue.release([r.id for r in rows], paused)
            return
        try:
            await self._apply_changes(mailbox, rows)
        except Throttled as exc:
            until = await self._pause(mailbox, exc)
            await self._queue.release([r.id for r in rows], until)
            return
        except TokenUnavailable as exc:  # not the rows' fault: they wait, uncounted
            await self._queue.release(
                [r.id for r in rows], self._rows_outage(rows) or self._clock()
            )
            await self._subscriptions.room_error(mailbox, f"{UNREACHABLE}{exc}", self._clock())
            return
        except ExchangeUnavailable as exc:  # this room's server away: its rows wait, uncounted
            await self._queue.release([r.id for r in rows], self._room_unreachable(mailbox, exc))
            await self._subscriptions.room_error(mailbox, f"{UNREACHABLE}{exc}", self._clock())
            return
        except (ExchangeError, RowRejected) as exc:
            await self._failed(mailbox, rows, exc)
            return
        self._unreachable.over(mailbox)
        await self._queue.complete(r.id for r in rows)
        self.stats.notifications += len(rows)
        self.stats.record_lag([r for r in rows if self._reports_change(r)], self._clock())
        for protocol in {r.protocol for r in rows}:
            self._outages.over(protocol)

    def _room_unreachable(self, mailbox: str, exc: ExchangeUnavailable) -> datetime:
        """No answer from this room's server (connection refused, timeout, 5xx): not the rows'
        fault, so no attempt is counted and none ends `failed`; they come again after a
        growing wait, and the room shows "unreachable" meanwhile."""
        until, new = self._unreachable.failed(mailbox)
        if new:
            self.stats.unavailable += 1
            log.warning(
                "server unreachable, the room's rows wait",
                extra={"mailbox": mailbox, "until": until.isoformat(), "error": str(exc)},
            )
        return until

    def _rows_outage(self, rows: list[Claimed]) -> datetime | None:
        """The latest end of an outage of these rows' protocols, if any is on."""
        ends = [until for r in rows if (until := self.outage_until(r.protocol)) is not None]
        return max(ends, default=None)

    async def _failed(
        self, mailbox: str, rows: list[Claimed], exc: ExchangeError | RowRejected
    ) -> None:
        """The rows come again after a back-off if trying again may help (Exchange away), else
        they fail at once (credentials refused, a write the database refused)."""
        self.stats.failures += 1
        await self._subscriptions.room_error(mailbox, str(exc), self._clock())
        for row in rows:
            await self._queue.fail(row, str(exc), retry=retryable(exc))

    async def _pause(self, mailbox: str, exc: Throttled) -> datetime:
        wait = bounded(exc.retry_after, self._max_pause.total_seconds())
        until = self._clock() + timedelta(seconds=wait)
        self._paused[mailbox] = max(until, self._paused.get(mailbox, until))
        self.stats.throttled += 1
        log.warning("throttled", extra={"mailbox": mailbox, "retry_after": exc.retry_after})
        await self._subscriptions.pause(mailbox, self._paused[mailbox])
        return self._paused[mailbox]

    async def _learn_pauses(self) -> None:
        """Back-offs other worker processes were given (one query per batch and round)."""
        for mailbox, until in (await self._subscriptions.paused(self._clock())).items():
            self._paused[mailbox] = max(until, self._paused.get(mailbox, until))

    async def _apply_changes(self, mailbox: str, rows: list[Claimed]) -> None:
        """Per protocol: while a room moves from EWS to Graph, both subscriptions may deliver,
        and each protocol's item ids mean something to its own source only."""
        by_protocol: dict[str, list[Claimed]] = defaultdict(list)
        for row in rows:
            by_protocol[row.protocol].append(row)
        for protocol, own in by_protocol.items():
            if protocol not in self._adapters:  # a room moved off this protocol: nothing reads it
                log.warning(
                    "no source for these rows", extra={"mailbox": mailbox, "protocol": protocol}
                )
                continue
            try:
                await self._apply_protocol(mailbox, protocol, own)
            except TokenUnavailable as exc:
                self._outage(protocol, exc)
                raise

    async def _apply_protocol(self, mailbox: str, protocol: str, rows: list[Claimed]) -> None:
        adapter = self._adapters[protocol]
        gone, fetch = adapter.items(rows)
        changes = await adapter.changes_since_cursor(mailbox, rows, fetch)
        if changes is None and not gone and not fetch:
            return
        observations: list[Observation] = [Gone(mailbox, item_id) for item_id in sorted(gone)]
        if changes is not None:
            observations += changes.observations
        else:
            observations += await adapter.source.observe(mailbox, fetch)
        # the new cursor is written in the rows' transaction: a failure before leaves the old
        await self._reconcile(
            mailbox, observations, fetch, cursor=KEEP if changes is None else changes.cursor
        )
        if changes is not None:
            self.stats.folder_syncs += 1

    async def _reconcile(
        self,
        mailbox: str,
        observations: list[Observation],
        item_ids: list[str],
        *,
        resynced: int | None = None,
        cursor: Cursor = KEEP,
    ) -> None:
        """Write what the observations decide, over the rows of their meetings and items (and
        the room's new cursor, if given, in the same transaction)."""
        uids = [o.uid for o in observations if hasattr(o, "uid")]
        gone = [o.item_id for o in observations if isinstance(o, Gone)]
        await self._reservations.reconcile(
            mailbox,
            uids,
            [*gone, *item_ids],
            lambda stored: plan(stored, observations),
            self._clock(),
            resynced=resynced,
            cursor=cursor,
        )

    async def _note_subscriptions(self, claimed: list[Claimed]) -> None:
        """What a batch says of its subscriptions, per subscription in arrival order (each
        protocol's adapter decides): one read of the subscriptions involved and one write of
        what was heard, so a wave of heartbeats from thousands of rooms costs two queries."""
        by_subscription: dict[str, list[Claimed]] = defaultdict(list)
        for row in claimed:
            if row.mailbox is not None and row.protocol in self._adapters:
                by_subscription[row.subscription_id].append(row)
        if not by_subscription:
            return
        records = await self._subscriptions.by_ids(by_subscription)
        heard = []
        for subscription_id, rows in by_subscription.items():
            mailbox, record = rows[0].mailbox or "", records.get(subscription_id)
            adapter = self._adapters[rows[0].protocol]
            if await adapter.note_subscription(mailbox, subscription_id, rows, record):
                last = rows[-1]
                heard.append((subscription_id, last.received_at, last.notification.watermark))
        await self._subscriptions.heard_many(heard)


async def _all_of(reads: Iterable[Awaitable[int]]) -> int:
    """Run the reads at once and add up what they did. Each runs to its end even when another
    fails, so that no room is left leased by a read cut short; the first failure is raised
    then."""
    done = await asyncio.gather(*reads, return_exceptions=True)
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    return sum(n for n in done if isinstance(n, int))
