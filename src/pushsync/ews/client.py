"""The one place pushsync calls Exchange Web Services, through exchangelib.

exchangelib is synchronous; every call runs on a bounded thread pool (EWSMaxConcurrency) so the
async service never blocks, and exchangelib's exceptions are translated here into ours
(`errors.py`). Rooms are reached by impersonation, one mailbox per request; exchangelib sends
`X-AnchorMailbox` itself.

Operations used:
- Subscribe (push): https://learn.microsoft.com/exchange/client-developer/web-service-reference/subscribe-operation
- GetItem: https://learn.microsoft.com/exchange/client-developer/web-service-reference/getitem-operation-calendar-item
- FindItem with CalendarView: https://learn.microsoft.com/exchange/client-developer/web-service-reference/calendarview
- SyncFolderItems: https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitems-operation
- GetRoomLists / GetRooms: https://learn.microsoft.com/exchange/client-developer/web-service-reference/getrooms-operation
Throttling: https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import exchangelib
from exchangelib import errors as exl_errors
from exchangelib.folders import Calendar, Root
from exchangelib.items import ID_ONLY
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.protocol import Protocol
from exchangelib.services import SubscribeToPush, SyncFolderItems

from pushsync.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeUnavailable,
    SubscriptionRefused,
    SyncStateExpired,
    Throttled,
)
from pushsync.ews.auth import EwsCredentials
from pushsync.ews.calendar_items import ITEM_FIELDS
from pushsync.ews.concurrency import CallLimit
from pushsync.ews.item_reads import SyncItemIds, get_items

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENT_TYPES = (
    "CopiedEvent",
    "CreatedEvent",
    "DeletedEvent",
    "ModifiedEvent",
    "MovedEvent",
    "FreeBusyChangedEvent",
)
DEFAULT_BACK_OFF_S = 30.0  # when a 503 or ErrorServerBusy names no BackOffMilliseconds
# Over EWSMaxConcurrency Exchange answers ErrorExceededConnectionCount and suggests no back-off
# ("Suggested backoff time 0 ms", §3): "try again once your other requests have completed".
CONNECTION_COUNT_BACK_OFF_S = 1.0
MAX_SYNC_CHANGES = 512  # the most SyncFolderItems returns per request
READ_SLICE = 64 * 1024  # bytes of an answer handed to the XML parser at once
VIEW_CHUNK = 100  # ids per GetItem of a calendar view (exchangelib's default chunk)

# Subscribe errors that retrying the same request will not fix.
_FINAL_SUBSCRIBE_ERRORS = (
    "ErrorSubscriptionDelegateAccessNotSupported",
    "ErrorInvalidWatermark",
    "ErrorImpersonateUserDenied",
    "ErrorNonExistentMailbox",
    "ErrorExceededSubscriptionCount",
    "ErrorInvalidSubscriptionRequest",
)


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: str
    watermark: str


@dataclass(frozen=True, slots=True)
class Fetched:
    """One GetItem answer: the item, or None when Exchange no longer has it."""

    item_id: str
    item: Any | None  # exchangelib.CalendarItem


@dataclass(frozen=True, slots=True)
class FolderChanges:
    """What SyncFolderItems reported since a sync state, and the state to continue from.

    `changed` holds created and updated item ids, `deleted` the ids gone from the folder
    (IdOnly: the items themselves are fetched with GetItem). ReadFlagChange is left out.
    """

    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    sync_state: str


@dataclass(frozen=True, slots=True)
class _SyncPage:
    changes: list[tuple[str, str]]  # (change type, item id)
    sync_state: str
    last: bool


class EwsClient:
    def __init__(
        self,
        endpoint: str,
        credentials: EwsCredentials,
        *,
        max_concurrency: int = 27,
        version: str | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._credentials = credentials
        self._version = version
        self._max_concurrency = max_concurrency
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="ews")
        self._limit = CallLimit(max_concurrency)  # this process's share of EWSMaxConcurrency
        self._accounts: dict[str, exchangelib.Account] = {}
        self._config: exchangelib.Configuration | None = None
        self._calendars: dict[str, Calendar] = {}
        self._calendar_ids: dict[str, str] = {}
        # One request at a time per mailbox, and after ErrorServerBusy none until the back-off
        # ends (mailbox -> time.monotonic()), whoever asks: worker, resync or manager.
        self._mailbox_locks: dict[str, asyncio.Lock] = {}
        self._paused: dict[str, float] = {}
        self.calls = 0  # EWS requests sent, for "calls per notification"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def concurrency(self) -> int:
        """How many calls this client keeps in flight at most (its share of the account's)."""
        return self._limit.share

    async def share_concurrency(self, processes: int | None) -> None:
        """This process is one of `processes` calling EWS as this account (`concurrency.py`);
        None: not known yet, no new call until it is."""
        if processes is None:
            await self._limit.hold()
        else:
            await self._limit.split(processes)

    async def subscribe(
        self,
        mailbox: str,
        callback_url: str,
        *,
        status_frequency: int,
        watermark: str | None = None,
    ) -> Subscription:
        """A push subscription on the room's calendar folder."""

        def call() -> Subscription:
            calendar = _calendar_id(mailbox)  # no GetFolder first: see `_calendar`
            subscription_id, new_watermark = SubscribeToPush(account=self._account(mailbox)).get(
                folders=[calendar],
                event_types=EVENT_TYPES,
                watermark=watermark,
                status_frequency=status_frequency,
                url=callback_url,
            )
            return Subscription(subscription_id, new_watermark)

        return await self._run(mailbox, call)

    async def calendar_folder_id(self, mailbox: str) -> str:
        """The id of the room's calendar folder: the one known (`known_calendar_id`), else one
        GetFolder per mailbox and process."""
        if mailbox not in self._calendar_ids:
            self._calendar_ids[mailbox] = await self._run(
                mailbox,
                lambda: str(Calendar.get_distinguished(root=self._calendar(mailbox).root).id),
            )
        return self._calendar_ids[mailbox]

    def known_calendar_id(self, mailbox: str) -> str | None:
        """The room's calendar folder id if this client has it, without asking Exchange."""
        return self._calendar_ids.get(mailbox)

    def remember_calendar_id(self, mailbox: str, folder_id: str) -> None:
        """The room's calendar folder id as learnt elsewhere (stored by another process's read,
        or named by this read's items), so that `calendar_folder_id` needs no GetFolder."""
        self._calendar_ids[mailbox] = folder_id

    def _note_calendar_id(self, mailbox: str, items: Sequence[Any]) -> None:
        """The calendar folder's id as the view's items name it (ParentFolderId), so that the
        room's first notification after onboarding needs no GetFolder for it: the items of a
        CalendarView over a folder are that folder's (a shallow FindItem), occurrences too.
        The view's word wins over an id known before (stored by an earlier read, perhaps
        stale), which the room's next full read so corrects.
        https://learn.microsoft.com/exchange/client-developer/web-service-reference/parentfolderid
        """
        for item in items:
            parent = getattr(item, "parent_folder_id", None)
            if parent is not None and parent.id:
                self._calendar_ids[mailbox] = str(parent.id)
                return

    async def masters(
        self, mailbox: str, occurrence_ids: Sequence[str], *, chunk_size: int = 10
    ) -> list[Fetched]:
        """The series masters of occurrences (GetItem with RecurringMasterItemId)."""

        def call() -> list[Fetched]:
            account = self._account(mailbox)
            wanted = [
                exchangelib.CalendarItem(account=account, id=oid).recurring_master()
                for oid in occurrence_ids
            ]
            # only the master's id is read
            found = get_items(
                account, self._calendar(mailbox), wanted, only=(), chunk_size=chunk_size
            )
            return [_fetched(oid, item) for oid, item in zip(occurrence_ids, found, strict=True)]

        return await self._run(mailbox, call, requests=-(-len(occurrence_ids) // chunk_size))

    async def fetch(
        self, mailbox: str, item_ids: Sequence[str], *, chunk_size: int = 10
    ) -> list[Fetched]:
        """GetItem for calendar items, `chunk_size` ids per request (Microsoft suggests ~10)."""

        def call() -> list[Fetched]:
            found = get_items(
                self._account(mailbox),
                self._calendar(mailbox),
                [(item_id, None) for item_id in item_ids],
                only=ITEM_FIELDS,
                chunk_size=chunk_size,
            )
            return [_fetched(item_id, item) for item_id, item in zip(item_ids, found, strict=True)]

        return await self._run(mailbox, call, requests=-(-len(item_ids) // chunk_size))

    async def calendar_view(
        self,
        mailbox: str,
        start: datetime,
        end: datetime,
        *,
        max_items: int = 1000,
        chunk_size: int = VIEW_CHUNK,
    ) -> list[Any]:
        """The expanded occurrences between start and end (at most 2 years, at most max_items):
        FindItem with a CalendarView for their ids, then GetItem for ITEM_FIELDS, `chunk_size`
        ids a request. FindItem leaves out the organizer's address, which exchangelib's own
        view fetches with GetItem too, for every field it knows; none when the view is empty.
        An occurrence deleted between the two requests is left out, as exchangelib's view does.
        """

        def find_ids() -> list[Any]:
            view = self._calendar(mailbox).view(
                start=_ews_time(start), end=_ews_time(end), max_items=max_items
            )
            return list(view.only("id", "changekey"))

        def fetch(ids: list[Any]) -> list[Any]:
            found = get_items(
                self._account(mailbox),
                self._calendar(mailbox),
                ids,
                only=ITEM_FIELDS,
                chunk_size=chunk_size,
            )
            items = []
            for item in found:
                if isinstance(item, exl_errors.ErrorItemNotFound):
                    continue
                if isinstance(item, Exception):
                    raise item
                items.append(item)
            return items

        ids = await self._run(mailbox, find_ids)
        if not ids:
            return []
        items = await self._run(mailbox, partial(fetch, ids), requests=-(-len(ids) // chunk_size))
        self._note_calendar_id(mailbox, items)
        return items

    async def sync_calendar(
        self, mailbox: str, sync_state: str | None, *, max_changes: int = MAX_SYNC_CHANGES
    ) -> FolderChanges:
        """SyncFolderItems over the room's calendar from `sync_state` (None: from the start, every
        item a create), one request per page until IncludesLastItemInRange. A state Exchange
        no longer accepts raises SyncStateExpired."""
        changes: dict[str, str] = {}
        state = sync_state
        while True:
            page = await self._run(mailbox, partial(self._sync_page, mailbox, state, max_changes))
            for change_type, item_id in page.changes:
                changes[item_id] = _later(changes.get(item_id), change_type)
            # exchangelib's own loop also stops when a page leaves the state as it was
            done = page.last or page.sync_state == state
            state = page.sync_state
            if done:
                break
        return FolderChanges(
            changed=tuple(i for i, kind in changes.items() if kind != SyncFolderItems.DELETE),
            deleted=tuple(i for i, kind in changes.items() if kind == SyncFolderItems.DELETE),
            sync_state=state or "",
        )

    def _sync_page(self, mailbox: str, state: str | None, max_changes: int) -> _SyncPage:
        account = self._account(mailbox)
        service = SyncItemIds(account=account)
        found = list(
            service.call(
                folder=_calendar_id(mailbox),
                shape=ID_ONLY,
                additional_fields=set(),
                sync_state=state,
                ignore=None,
                max_changes_returned=max_changes,
                sync_scope=None,
            )
        )
        changes = []
        for entry in found:
            if isinstance(entry, Exception):
                raise entry
            change_type, item = entry
            if change_type == SyncFolderItems.READ_FLAG_CHANGE:
                continue  # a read flag books nothing
            changes.append((change_type, str(item.id)))
        return _SyncPage(
            changes, service.sync_state or "", bool(service.includes_last_item_in_range)
        )

    async def rooms(self, room_list: str | None = None) -> list[str]:
        """SMTP addresses of the rooms in one room list, or in every room list."""

        def call() -> list[str]:
            protocol = self._configuration_protocol()
            lists = (
                [room_list] if room_list else [r.email_address for r in protocol.get_roomlists()]
            )
            return sorted(
                {room.email_address for name in lists for room in protocol.get_rooms(name)}
            )

        return await self._run("", call)

    def _account(self, mailbox: str) -> exchangelib.Account:
        account = self._accounts.get(mailbox)
        if account is None:
            account = exchangelib.Account(
                primary_smtp_address=mailbox,
                config=self._configuration(),
                autodiscover=False,
                access_type=exchangelib.IMPERSONATION,
            )
            self._accounts[mailbox] = account
        self._credentials.refresh()
        return account

    def _calendar(self, mailbox: str) -> Calendar:
        """The room's calendar as a folder exchangelib can query, named by its distinguished id
        and the room's mailbox, never fetched. `account.calendar` would first ask for the root
        and then for the calendar (two GetFolder per mailbox, each behind one lock for every
        account: exchangelib's threaded_cached_property), and `account.fetch` without a folder
        asks for the root. FindItem, GetItem's validation, Subscribe and SyncFolderItems take
        the distinguished id as it is:
        https://learn.microsoft.com/exchange/client-developer/web-service-reference/distinguishedfolderid
        """
        calendar = self._calendars.get(mailbox)
        if calendar is None:
            root = Root(account=self._account(mailbox))
            calendar = Calendar(root=root, _distinguished_id=_calendar_id(mailbox))
            self._calendars[mailbox] = calendar
        return calendar

    def _configuration(self) -> exchangelib.Configuration:
        if self._config is None:
            version = (
                exchangelib.Version(build=exchangelib.version.EXCHANGE_2016)
                if self._version is None
                else None
            )
            self._config = exchangelib.Configuration(
                service_endpoint=self._endpoint,
                credentials=self._credentials.exchangelib_credentials(),
                auth_type=self._credentials.auth_type,
                version=version,
                retry_policy=exchangelib.FailFast(),  # back-off is ours to schedule, per mailbox
                # exchangelib keeps one HTTP session unless told otherwise: every thread of
                # the pool would queue for it and all calls to Exchange would run one by one.
                max_connections=self._max_concurrency,
            )
            # On ErrorServerBusy exchangelib shrinks its session pool, taking a session while
            # holding the pool's lock; with more than one session that can deadlock (seen under
            # the simulator's throttling). Our back-off is per mailbox, so the pool keeps its size.
            protocol = Protocol(config=self._config)
            protocol.decrease_poolsize = _keep_pool_size
            protocol.create_session = partial(_reading_large_slices, protocol.create_session)
        return self._config

    def _configuration_protocol(self) -> Any:
        """The account-independent EWS protocol (GetRoomLists and GetRooms need no mailbox)."""
        self._credentials.refresh()
        return exchangelib.protocol.Protocol(config=self._configuration())

    async def _run(self, mailbox: str, call: Callable[[], T], requests: int = 1) -> T:
        """Run `call` on the pool; `requests` is how many EWS requests it sends (for `calls`)."""
        if not mailbox:
            return await self._call(mailbox, call)
        async with self._mailbox_locks.setdefault(mailbox, asyncio.Lock()):
            wait = self._paused.get(mailbox, 0.0) - time.monotonic()
            if wait > 0:
                raise Throttled(f"{mailbox}: backing off for {wait:.3f} s more", wait)
            self.calls += requests
            try:
                return await self._call(mailbox, call)
            except Throttled as exc:
                self._paused[mailbox] = time.monotonic() + exc.retry_after
                raise

    async def _call(self, mailbox: str, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            async with self._limit.slot():
                return await loop.run_in_executor(self._executor, call)
        except Exception as exc:
            raise translate(exc, mailbox) from exc


def _reading_large_slices(create_session: Callable[[], Any]) -> Any:
    """exchangelib's sessions, each answer read in large slices.

    exchangelib parses every answer from `response.iter_content()`, whose default slice is one
    byte: the whole answer, already read, went to lxml a byte at a time through a Python loop,
    about a fifth of the worker's CPU at onboarding (bench/fleet, issue #17). pushsync uses no
    streaming operation, whose answers would wait here for a slice to fill.
    """
    session = create_session()
    session.hooks["response"].append(_large_slices)
    return session


def _large_slices(response: Any, *args: Any, **kwargs: Any) -> Any:
    """A requests response hook: `iter_content()` without a size reads READ_SLICE at a time."""
    read = response.iter_content

    def iter_content(chunk_size: int | None = READ_SLICE, decode_unicode: bool = False) -> Any:
        return read(chunk_size, decode_unicode)

    response.iter_content = iter_content
    return response


def _keep_pool_size() -> None:
    raise exl_errors.SessionPoolMinSizeReached("pushsync keeps the session pool's size")


def _later(before: str | None, change_type: str) -> str:
    """Two pages may name one item: a create stays a create, a delete ends it."""
    if before is not None and (before, change_type) == ("create", "update"):
        return before
    return change_type


def _fetched(item_id: str, item: Any) -> Fetched:
    if isinstance(item, exl_errors.ErrorItemNotFound):
        return Fetched(item_id, None)
    if isinstance(item, Exception):
        raise item
    return Fetched(item_id, item)


def _calendar_id(mailbox: str) -> DistinguishedFolderId:
    """The impersonated room's calendar, for a request naming a folder."""
    return DistinguishedFolderId(id="calendar", mailbox=Mailbox(email_address=mailbox))


def _ews_time(moment: datetime) -> exchangelib.EWSDateTime:
    return exchangelib.EWSDateTime.from_datetime(moment).astimezone(exchangelib.UTC)


def translate(exc: Exception, mailbox: str) -> ExchangeError:
    """exchangelib's exception as ours, keeping the server's words."""
    where = f"{mailbox}: " if mailbox else ""
    if isinstance(exc, exl_errors.ErrorServerBusy):
        return Throttled(f"{where}ErrorServerBusy", exc.back_off or DEFAULT_BACK_OFF_S)
    if isinstance(exc, exl_errors.ErrorExceededConnectionCount):
        return Throttled(f"{where}ErrorExceededConnectionCount", CONNECTION_COUNT_BACK_OFF_S)
    if isinstance(exc, exl_errors.UnauthorizedError | exl_errors.ErrorAccessDenied):
        return AuthenticationFailed(f"{where}{type(exc).__name__}: {exc}")
    code = type(exc).__name__
    if isinstance(exc, exl_errors.ErrorInvalidSyncStateData):
        return SyncStateExpired(f"{where}{code}: {exc}")
    if code in _FINAL_SUBSCRIBE_ERRORS:
        return SubscriptionRefused(f"{where}{code}: {exc}", code)
    if isinstance(exc, exl_errors.TransportError | exl_errors.RateLimitError | OSError):
        return ExchangeUnavailable(f"{where}{code}: {exc}")
    return ExchangeError(f"{where}{code}: {exc}")
